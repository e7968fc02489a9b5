/*
 * alloc.c - the one door through which the library allocates memory.
 *
 * Routing every allocation through sh_malloc & co. lets the tests install
 * an allocator that fails the Nth call (allocation-failure injection) and
 * lets an embedding program account for the engine's memory.
 */
#include <stdlib.h>

#include "common.h"

static sahel_allocator g_alloc; /* all-NULL: use libc */

void sahel_set_allocator(const sahel_allocator *a) {
    if (a)
        g_alloc = *a;
    else
        memset(&g_alloc, 0, sizeof g_alloc);
}

void *sh_malloc(size_t size) {
    if (size == 0) size = 1; /* a unique pointer, never NULL-on-success */
    if (g_alloc.malloc_fn) return g_alloc.malloc_fn(size, g_alloc.ctx);
    return malloc(size);
}

void *sh_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t total = n * size;
    void *p = sh_malloc(total);
    if (p) memset(p, 0, total ? total : 1);
    return p;
}

void *sh_realloc(void *p, size_t size) {
    if (size == 0) size = 1;
    if (g_alloc.realloc_fn) return g_alloc.realloc_fn(p, size, g_alloc.ctx);
    return realloc(p, size);
}

void *sh_reallocarray(void *p, size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return sh_realloc(p, n * size);
}

void sh_free(void *p) {
    if (!p) return;
    if (g_alloc.free_fn)
        g_alloc.free_fn(p, g_alloc.ctx);
    else
        free(p);
}

char *sh_strndup(const char *s, size_t len) {
    char *d = sh_malloc(len + 1);
    if (!d) return NULL;
    if (len) memcpy(d, s, len);
    d[len] = '\0';
    return d;
}
