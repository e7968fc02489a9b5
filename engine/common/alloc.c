/*
 * alloc.c - the one door through which the library allocates memory.
 *
 * Routing every allocation through sh_malloc & co. lets the tests install
 * an allocator that fails the Nth call (allocation-failure injection) and
 * lets an embedding program account for the engine's memory.
 */
#define _GNU_SOURCE /* mremap */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

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

#if defined(__SANITIZE_ADDRESS__)
#define SH_BIG_MAPPED 0 /* ASan watches the heap, not mappings */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SH_BIG_MAPPED 0
#endif
#endif
#ifndef SH_BIG_MAPPED
#define SH_BIG_MAPPED 1
#endif

static size_t page_round(size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return n > SIZE_MAX - pg ? 0 : (n + pg - 1) / pg * pg;
}

static int big_mapped(void) { return SH_BIG_MAPPED && !g_alloc.malloc_fn; }

void *sh_big_alloc(size_t size) {
    if (!big_mapped()) return sh_calloc(1, size);
    size_t n = page_round(size ? size : 1);
    if (!n) return NULL;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *sh_big_realloc(void *p, size_t old, size_t size) {
    if (!p) return sh_big_alloc(size);
    if (!big_mapped()) {
        uint8_t *q = sh_realloc(p, size);
        if (q && size > old) memset(q + old, 0, size - old);
        return q;
    }
    size_t a = page_round(old ? old : 1), b = page_round(size ? size : 1);
    if (!b) return NULL;
    /* bytes past `old` in its last page are zeroed here; pages past it
     * come zeroed from the kernel */
    if (size > old) memset((uint8_t *)p + old, 0, SH_MIN(size, a) - old);
    if (a == b) return p;
    void *q = mremap(p, a, b, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

void sh_big_free(void *p, size_t size) {
    if (!p) return;
    if (!big_mapped()) {
        sh_free(p);
        return;
    }
    (void)munmap(p, page_round(size ? size : 1));
}
