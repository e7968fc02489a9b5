/*
 * failalloc.c - test support: the failing, counting allocator of the
 * allocation-failure tests (see failalloc.h).
 *
 * Blocks come from libc.  live counts a block when malloc, or realloc of
 * NULL, hands it out and uncounts it when it is freed; a realloc of a
 * block keeps its count (on failure the old block stays live, as in libc).
 * With builder threads running, which call is the fail_at-th depends on
 * their timing, but the counts themselves stay exact.
 */
#include <stdlib.h>

#include "failalloc.h"
#include "sahel.h"

static int should_fail(sh_test_failalloc *fa) {
    uint64_t call = __atomic_add_fetch(&fa->calls, 1, __ATOMIC_RELAXED);
    int fail = fa->fail_at && (fa->persistent ? call >= fa->fail_at : call == fa->fail_at);
    if (fail) __atomic_add_fetch(&fa->failures, 1, __ATOMIC_RELAXED);
    return fail;
}

static void *fa_malloc(size_t size, void *ctx) {
    sh_test_failalloc *fa = ctx;
    if (should_fail(fa)) return NULL;
    void *p = malloc(size);
    if (p) __atomic_add_fetch(&fa->live, 1, __ATOMIC_RELAXED);
    return p;
}

static void *fa_realloc(void *ptr, size_t size, void *ctx) {
    sh_test_failalloc *fa = ctx;
    if (should_fail(fa)) return NULL;
    void *p = realloc(ptr, size);
    if (p && !ptr) __atomic_add_fetch(&fa->live, 1, __ATOMIC_RELAXED);
    return p;
}

static void fa_free(void *ptr, void *ctx) {
    sh_test_failalloc *fa = ctx;
    if (ptr) __atomic_sub_fetch(&fa->live, 1, __ATOMIC_RELAXED);
    free(ptr);
}

void sh_test_failalloc_install(sh_test_failalloc *fa) {
    sahel_allocator a = {fa_malloc, fa_realloc, fa_free, fa};
    sahel_set_allocator(&a);
}
