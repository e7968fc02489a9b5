/*
 * failalloc.h - test support: an allocator for the engine's hook
 * (sahel_set_allocator) that fails a chosen call, once or from then on,
 * and counts the blocks it hands out and gets back, so that allocation-
 * failure tests can require an error (never a crash) and no leak.
 */
#ifndef SAHEL_TEST_FAILALLOC_H
#define SAHEL_TEST_FAILALLOC_H

#include <stdint.h>

/* {0} never fails.  The counters are updated atomically: the engine
 * allocates on its builder and merge threads too. */
typedef struct sh_test_failalloc {
    uint64_t calls;    /* malloc and realloc calls so far (free is not one) */
    uint64_t fail_at;  /* the call (from 1) that fails; 0: none */
    int persistent;    /* 1: every call from fail_at on fails, not just it */
    uint64_t failures; /* calls failed so far */
    int64_t live;      /* blocks handed out and not yet freed */
} sh_test_failalloc;

/* Make fa the library's allocator (until sahel_set_allocator(NULL)); fa
 * must outlive that. */
void sh_test_failalloc_install(sh_test_failalloc *fa);

#endif /* SAHEL_TEST_FAILALLOC_H */
