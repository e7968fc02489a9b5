/*
 * strbuf.h - test support: allocation that cannot fail, and growable
 * buffers: a NUL-terminated string and an array of uint32.
 *
 * Tests build query texts, corpora and failure reports with these; running
 * out of memory there is not something a test can recover from, so the x
 * helpers print a line and abort instead of returning NULL.  They use libc
 * directly, never the engine's hookable allocator, so a test's own memory
 * is never counted or failed by an allocator it installs.
 */
#ifndef SAHEL_TEST_STRBUF_H
#define SAHEL_TEST_STRBUF_H

#include <stddef.h>
#include <stdint.h>

/* malloc / realloc / calloc / strdup that abort on failure; a size of 0
 * still gives a unique pointer. */
void *sh_test_xmalloc(size_t n);
void *sh_test_xrealloc(void *p, size_t n);
void *sh_test_xcalloc(size_t n, size_t size);
char *sh_test_xstrdup(const char *s);
/* A new string formatted as by printf (free it). */
char *sh_test_xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable string: {0} is the empty one.  After any call p is NULL or
 * NUL-terminated at p[len]; the bytes may include NULs. */
typedef struct sh_test_str {
    char *p;
    size_t len, cap;
} sh_test_str;

void sh_test_str_put(sh_test_str *b, const void *s, size_t n);
void sh_test_str_puts(sh_test_str *b, const char *s);
void sh_test_str_printf(sh_test_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far, "" when nothing was added; valid until the next call. */
const char *sh_test_str_get(const sh_test_str *b);
/* The text so far, now the caller's to free; b is empty again. */
char *sh_test_str_take(sh_test_str *b);
/* Frees the text; b is empty again. */
void sh_test_str_free(sh_test_str *b);

/* A growable array of uint32: {0} is the empty one; free(v.p) frees it. */
typedef struct sh_test_u32vec {
    uint32_t *p;
    size_t n, cap;
} sh_test_u32vec;

void sh_test_u32vec_push(sh_test_u32vec *v, uint32_t x);

#endif /* SAHEL_TEST_STRBUF_H */
