/*
 * utf8.c - validation and repair of UTF-8 text read from outside.
 *
 * Well-formed UTF-8 is exactly the byte sequences of Unicode Table 3-7
 * (Unicode 15, section 3.9): no overlong forms, no surrogates (U+D800..
 * U+DFFF), nothing above U+10FFFF, no 5- or 6-byte forms.  Everything else
 * the engine receives from files is repaired before it goes further, so the
 * analysis and the index may assume well-formed text.
 *
 * Repair follows "substitution of maximal subparts" (Unicode section 3.9,
 * U+FFFD Substitution of Maximal Subparts; the W3C Encoding Standard's
 * decoder does the same): each maximal prefix of a well-formed sequence
 * that cannot be completed becomes one U+FFFD, and each byte that cannot
 * start any sequence becomes one U+FFFD.  So "\xE2\x82" followed by "A" is
 * one replacement, "\xED\xA0\x80" (an encoded surrogate) is three.
 *
 * Invariant: neither function reads outside [s, s+len).
 */
#include "ingest.h"

/* The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER. */
static const char k_replacement[3] = {'\xEF', '\xBF', '\xBD'};

/* Length (2..4) of the well-formed multi-byte sequence at p[0..n), n >= 1
 * and p[0] >= 0x80; or 0 when none starts there, with *sub set to the
 * length (>= 1) of the maximal subpart to replace.  Ranges: Table 3-7. */
static size_t seq_len(const uint8_t *p, size_t n, size_t *sub) {
    uint8_t c = p[0];
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    size_t need;                  /* continuation bytes after the lead */
    if (c < 0xC2) {               /* continuation byte, or overlong C0/C1 lead */
        *sub = 1;
        return 0;
    } else if (c < 0xE0) {
        need = 1;
    } else if (c < 0xF0) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;      /* below: overlong */
        else if (c == 0xED) hi = 0x9F; /* above: surrogates */
    } else if (c < 0xF5) {
        need = 3;
        if (c == 0xF0) lo = 0x90;      /* below: overlong */
        else if (c == 0xF4) hi = 0x8F; /* above: beyond U+10FFFF */
    } else {                           /* F5..FF never appear in UTF-8 */
        *sub = 1;
        return 0;
    }
    size_t i = 1;
    while (i <= need && i < n && p[i] >= lo && p[i] <= hi) {
        lo = 0x80; /* only the second byte has a narrowed range */
        hi = 0xBF;
        i++;
    }
    if (i == need + 1) return i;
    *sub = i;
    return 0;
}

size_t sh_utf8_valid_prefix(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        /* ASCII fast path, 8 bytes at a time: most news text is ASCII. */
        while (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & UINT64_C(0x8080808080808080)) break;
            i += 8;
        }
        if (i >= len) break;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t sub;
        size_t n = seq_len(p + i, len - i, &sub);
        if (!n) return i;
        i += n;
    }
    return len;
}

int sh_utf8_valid(const char *s, size_t len) {
    return sh_utf8_valid_prefix(s, len) == len;
}

int sh_utf8_repair(const char *s, size_t len, sh_buf *out, size_t *nrepl) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, n = 0;
    if (nrepl) *nrepl = 0;
    /* Most input needs at most a few replacements: reserve once. */
    if (sh_buf_reserve(out, len)) return SAHEL_ENOMEM;
    while (i < len) {
        size_t ok = sh_utf8_valid_prefix(s + i, len - i);
        if (sh_buf_put(out, s + i, ok)) return SAHEL_ENOMEM;
        i += ok;
        if (i == len) break;
        size_t sub = 1;
        seq_len(p + i, len - i, &sub);
        if (sh_buf_put(out, k_replacement, sizeof k_replacement)) return SAHEL_ENOMEM;
        n++;
        i += sub;
        if (nrepl) *nrepl = n;
    }
    return 0;
}
