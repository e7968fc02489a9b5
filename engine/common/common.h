/*
 * common.h - the small base every stage of the engine uses: allocation
 * (through one hookable allocator), error reporting, growable byte buffers,
 * varints and little-endian loads/stores.
 *
 * Sections by implementing file:
 *   alloc.c   sh_malloc & co.
 *   error.c   sh_err, sahel_strerror
 *   buf.c     sh_buf
 */
#ifndef SAHEL_COMMON_H
#define SAHEL_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sahel.h"

#define SH_UNUSED(x) ((void)(x))
#define SH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SH_MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define SH_LIKELY(x) __builtin_expect(!!(x), 1)
#define SH_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SH_LIKELY(x) (x)
#define SH_UNLIKELY(x) (x)
#define SH_PRINTF(f, a)
#endif

/* CPU features, for the SIMD paths chosen at run time (the SSE4.1 level
 * includes POPCNT, which came a generation later, so that its code may
 * count bits in one instruction).  glibc records
 * them once, in the loader, before main; reading that record costs
 * nothing.  libgcc's __builtin_cpu_supports runs its own dozen cpuid
 * instructions at every start, and in a virtual machine each traps to
 * the hypervisor: about 0.08 ms of a one-shot search.  Both say whether
 * the OS saves the registers too (AVX2 needs XSAVE of the YMM state). */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_include)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#define SH_CPU_AVX2() CPU_FEATURE_ACTIVE(AVX2)
#define SH_CPU_SSE41() (CPU_FEATURE_ACTIVE(SSE4_1) && CPU_FEATURE_ACTIVE(POPCNT))
#define SH_CPU_BMI() (CPU_FEATURE_ACTIVE(BMI1) && CPU_FEATURE_ACTIVE(BMI2))
#endif
#endif
#if defined(__x86_64__) && !defined(SH_CPU_AVX2)
#define SH_CPU_AVX2() (__builtin_cpu_init(), __builtin_cpu_supports("avx2"))
#define SH_CPU_SSE41() \
    (__builtin_cpu_init(), __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("popcnt"))
#define SH_CPU_BMI() (__builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2"))
#endif

/* ---- alloc.c ------------------------------------------------------------ */

/* All library allocation goes through these, so that sahel_set_allocator
 * can inject failures.  sh_malloc(0) returns a unique non-NULL pointer. */
void *sh_malloc(size_t size);
void *sh_calloc(size_t n, size_t size); /* overflow-checked, zeroed */
void *sh_realloc(void *p, size_t size);
void sh_free(void *p);
/* n * size with overflow check, for growing arrays; NULL on overflow. */
void *sh_reallocarray(void *p, size_t n, size_t size);
char *sh_strndup(const char *s, size_t len); /* NUL-terminated copy */

/* Large blocks that come and go with each segment a writer builds (its
 * term arrays, its pages of postings): mapped from the kernel, so that a
 * freed one goes back at once and a grown one is remapped.  From malloc's
 * heap they left holes that a long build's peak RSS carried (a 1 GB build
 * under the default 256 MiB budget peaked at 277 MiB; mapped, 243).  With
 * an allocator installed (sahel_set_allocator), or in a sanitizer build,
 * they are that allocator's (malloc's) like any other.  Zeroed, and
 * zeroed past `old` when grown; NULL on failure (the block unchanged). */
void *sh_big_alloc(size_t size);
void *sh_big_realloc(void *p, size_t old, size_t size);
void sh_big_free(void *p, size_t size);

/* ---- error.c ------------------------------------------------------------ */

/* Record `code` and a formatted message in *err (if err != NULL) and
 * return `code`, so that callers can write `return sh_err(err, ...)`. */
int sh_err(sahel_error *err, int code, const char *fmt, ...) SH_PRINTF(3, 4);
/* Same, appending ": strerror(errno_value)". */
int sh_err_errno(sahel_error *err, int code, int errno_value, const char *fmt, ...)
    SH_PRINTF(4, 5);

/* ---- buf.c -------------------------------------------------------------- */

typedef struct sh_buf {
    uint8_t *p;
    size_t len, cap;
} sh_buf;

/* Ensure room for `extra` more bytes; SAHEL_ENOMEM on failure. */
int sh_buf_reserve(sh_buf *b, size_t extra);
int sh_buf_put(sh_buf *b, const void *data, size_t len);
int sh_buf_putc(sh_buf *b, uint8_t c);
int sh_buf_put_u16(sh_buf *b, uint16_t v); /* little-endian */
int sh_buf_put_u32(sh_buf *b, uint32_t v);
int sh_buf_put_u64(sh_buf *b, uint64_t v);
int sh_buf_put_varint_slow(sh_buf *b, uint64_t v); /* grows, then writes */
int sh_buf_printf(sh_buf *b, const char *fmt, ...) SH_PRINTF(2, 3); /* keeps a NUL after len */
int sh_buf_pad(sh_buf *b, size_t align); /* zero bytes up to a multiple of align */
void sh_buf_free(sh_buf *b);
static inline void sh_buf_reset(sh_buf *b) { b->len = 0; }

/* ---- little-endian and varints (inline: they sit on hot paths) --------- */

static inline uint16_t sh_load_u16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t sh_load_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4); /* all supported targets are little-endian (checked in CMake) */
    return v;
}
static inline uint64_t sh_load_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void sh_store_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void sh_store_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Decode one LEB128 varint from [*p, end).  Returns 0 and advances *p, or
 * -1 when the input ends inside the varint or it is longer than 10 bytes. */
static inline int sh_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    const uint8_t *s = *p;
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (SH_UNLIKELY(s >= end)) return -1;
        uint8_t c = *s++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *p = s;
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* Same, for values that must fit 32 bits. */
static inline int sh_varint_get32(const uint8_t **p, const uint8_t *end, uint32_t *out) {
    uint64_t v;
    if (sh_varint_get(p, end, &v) || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Append v as LEB128 (1..10 bytes).  Inline: the writer appends several
 * per posting, and a call each cost a tenth of indexing time. */
static inline int sh_buf_put_varint(sh_buf *b, uint64_t v) {
    if (SH_UNLIKELY(b->cap - b->len < 10)) return sh_buf_put_varint_slow(b, v);
    uint8_t *o = b->p + b->len;
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    b->len = (size_t)(o - b->p);
    return 0;
}

/* Bytes sh_buf_put_varint will write for v. */
static inline size_t sh_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

#endif /* SAHEL_COMMON_H */
