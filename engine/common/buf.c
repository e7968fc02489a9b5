/*
 * buf.c - growable byte buffers.
 *
 * Invariant: p is NULL with cap 0, or a heap block of cap bytes of which
 * the first len are the content.  Growth doubles, so appends are amortised
 * O(1); a failed growth leaves the buffer as it was.
 */
#include <stdio.h>

#include "common.h"

int sh_buf_reserve(sh_buf *b, size_t extra) {
    if (extra <= b->cap - b->len) return 0;
    if (extra > SIZE_MAX - b->len) return SAHEL_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = sh_realloc(b->p, cap);
    if (!p) return SAHEL_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int sh_buf_put(sh_buf *b, const void *data, size_t len) {
    if (sh_buf_reserve(b, len)) return SAHEL_ENOMEM;
    if (len) memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

int sh_buf_putc(sh_buf *b, uint8_t c) {
    if (b->len == b->cap && sh_buf_reserve(b, 1)) return SAHEL_ENOMEM;
    b->p[b->len++] = c;
    return 0;
}

int sh_buf_put_u16(sh_buf *b, uint16_t v) {
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return sh_buf_put(b, t, 2);
}

int sh_buf_put_u32(sh_buf *b, uint32_t v) {
    if (sh_buf_reserve(b, 4)) return SAHEL_ENOMEM;
    sh_store_u32(b->p + b->len, v);
    b->len += 4;
    return 0;
}

int sh_buf_put_u64(sh_buf *b, uint64_t v) {
    if (sh_buf_reserve(b, 8)) return SAHEL_ENOMEM;
    sh_store_u64(b->p + b->len, v);
    b->len += 8;
    return 0;
}

int sh_buf_put_varint_slow(sh_buf *b, uint64_t v) {
    if (sh_buf_reserve(b, 10)) return SAHEL_ENOMEM;
    uint8_t *o = b->p + b->len;
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    b->len = (size_t)(o - b->p);
    return 0;
}

int sh_buf_printf(sh_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return SAHEL_EINVAL;
    if (sh_buf_reserve(b, (size_t)n + 1)) return SAHEL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int sh_buf_pad(sh_buf *b, size_t align) {
    while (b->len % align)
        if (sh_buf_putc(b, 0)) return SAHEL_ENOMEM;
    return 0;
}

void sh_buf_free(sh_buf *b) {
    sh_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
