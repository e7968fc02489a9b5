/*
 * strbuf.c - test support: allocation helpers that abort instead of
 * returning NULL, the growable string the tests build texts in and the
 * growable uint32 array (see strbuf.h).
 *
 * Invariant of sh_test_str: cap is 0 with p NULL, or p holds cap bytes and
 * len + 1 <= cap with p[len] == '\0'.  Of sh_test_u32vec: n <= cap, p holds
 * cap values.  Capacities double (from 64 bytes, 16 values), so appending
 * one at a time costs O(1) amortised.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

static void out_of_memory(void) {
    fprintf(stderr, "test: out of memory\n");
    abort();
}

void *sh_test_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory();
    return p;
}

void *sh_test_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory();
    return q;
}

void *sh_test_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory();
    return p;
}

char *sh_test_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = sh_test_xrealloc(NULL, n);
    memcpy(p, s, n);
    return p;
}

/* vsnprintf into a new block of the exact size; *len gets the length. */
static char *vfmt(size_t *len, const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0) {
        /* only an invalid format gets here: a bug in the test */
        fprintf(stderr, "test: bad format \"%s\"\n", fmt);
        abort();
    }
    char *p = sh_test_xrealloc(NULL, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, again);
    va_end(again);
    *len = (size_t)n;
    return p;
}

char *sh_test_xfmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t len;
    char *p = vfmt(&len, fmt, ap);
    va_end(ap);
    return p;
}

void sh_test_str_put(sh_test_str *b, const void *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = sh_test_xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sh_test_str_puts(sh_test_str *b, const char *s) { sh_test_str_put(b, s, strlen(s)); }

void sh_test_str_printf(sh_test_str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t len;
    char *tmp = vfmt(&len, fmt, ap);
    va_end(ap);
    sh_test_str_put(b, tmp, len);
    free(tmp);
}

const char *sh_test_str_get(const sh_test_str *b) { return b->p ? b->p : ""; }

char *sh_test_str_take(sh_test_str *b) {
    char *p = b->p ? b->p : sh_test_xstrdup("");
    memset(b, 0, sizeof *b);
    return p;
}

void sh_test_str_free(sh_test_str *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void sh_test_u32vec_push(sh_test_u32vec *v, uint32_t x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->p = sh_test_xrealloc(v->p, v->cap * sizeof *v->p);
    }
    v->p[v->n++] = x;
}
