/*
 * tokenize.c - split UTF-8 text into raw tokens (sh_tokenize).
 *
 * A token is a maximal run of Unicode letters (L*), marks (M*) and numbers
 * (N*) of any script, started by a letter or a number; each CJK character
 * (Han, Hiragana, Katakana), with the marks that follow it, is a token of
 * its own, because those scripts do not separate words with spaces.  Inside
 * a run a few punctuation characters join rather than split:
 *
 *   '  U+2019 U+02BC   a trailing 's after a word character is a possessive
 *                      and dropped (the surface span still covers it, so
 *                      highlighting marks "Faso's"); between letters the
 *                      apostrophe is removed and the sides joined (don't ->
 *                      dont, O'Brien -> OBrien).
 *   ,                  between digits: dropped (5,100 -> 5100).
 *   .                  between digits: kept (2.5).
 *   - U+2010 U+2011    between word characters: each part is a token
 *                      (SH_TOK_PART) at consecutive positions, and the parts
 *                      joined without hyphens are one more token
 *                      (SH_TOK_WHOLE) at the first part's position, emitted
 *                      just before the first part.
 *
 * Invariants:
 *   - Every byte is read through a bounds check against len; the UTF-8
 *     decoder accepts only well-formed sequences (no overlongs, surrogates
 *     or code points above U+10FFFF), and every byte it rejects is a
 *     separator, so any input is safe and every term is valid UTF-8.
 *   - A term is either read in place (an ASCII word that nothing joins,
 *     the common case) or built in one of two fixed buffers of
 *     SH_MAX_TERM_LEN bytes in the per-call state: no allocation at all.
 *     A longer term is cut at a character boundary and the rest of its
 *     surface still consumed.
 *   - A hyphenated chain is scanned twice (once to build the whole, which
 *     must be emitted first, once to emit the parts), so memory stays
 *     bounded for chains of any length; both scans see the same bytes and
 *     so give the same parts.
 *   - ASCII, nearly all of English news text, is classified with one
 *     256-entry table lookup per byte; only bytes >= 0x80 are decoded and
 *     classified with utf8proc_category.  (About 350 MB/s on Reuters-21578
 *     JSONL with an empty callback, -O2, one core.)
 */
#include <utf8proc.h>

#include "analysis.h"

enum {
    CL_START = 1 << 0,  /* letter or number outside CJK: may start a word */
    CL_WORD = 1 << 1,   /* letter, mark or number outside CJK: continues a word */
    CL_ALPHA = 1 << 2,  /* L*: apostrophes join only letters */
    CL_MARK = 1 << 3,   /* M* */
    CL_DIGIT = 1 << 4,  /* Nd: ',' and '.' join only digits */
    CL_NUMBER = 1 << 5, /* any N*: the token gets SH_TOK_NUMERIC */
    CL_IDEO = 1 << 6,   /* Han, Hiragana, Katakana: one token per character */
    CL_APOS = 1 << 7,
    CL_HYPHEN = 1 << 8,
    CL_COMMA = 1 << 9,
    CL_DOT = 1 << 10,
    CL_MB = 1 << 11,    /* a byte >= 0x80: decode the sequence to classify it */
};

/* Classes of the bytes, for the ASCII fast path. */
#define A_ (CL_START | CL_WORD | CL_ALPHA)
#define D_ (CL_START | CL_WORD | CL_DIGIT | CL_NUMBER)
#define Q_ CL_APOS
#define H_ CL_HYPHEN
#define C_ CL_COMMA
#define P_ CL_DOT
#define M_ CL_MB
#define M16_ M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_, M_
static const uint16_t k_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    0,  0,  0,  0,  0,  0,  0,  Q_, 0,  0,  0,  0,  C_, H_, P_, 0,  /* 0x20 */
    D_, D_, D_, D_, D_, D_, D_, D_, D_, D_, 0,  0,  0,  0,  0,  0,  /* 0x30 */
    0,  A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 0x40 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, 0,  0,  0,  0,  0,  /* 0x50 */
    0,  A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, /* 0x60 */
    A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, A_, 0,  0,  0,  0,  0,  /* 0x70 */
    M16_, M16_, M16_, M16_, M16_, M16_, M16_, M16_,                 /* 0x80-0xff */
};
#undef A_
#undef D_
#undef Q_
#undef H_
#undef C_
#undef P_
#undef M_
#undef M16_

/* Decode one well-formed UTF-8 sequence (RFC 3629 table 3-7) at s[0..n).
 * Returns its length, or 0 when the bytes are not a valid sequence. */
static size_t utf8_decode(const uint8_t *s, size_t n, int32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0; /* stray continuation byte or overlong lead */
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((int32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* UTF-16 surrogate */
        *cp = ((int32_t)(c & 0x0F) << 12) | ((int32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        *cp = ((int32_t)(c & 0x07) << 18) | ((int32_t)(s[1] & 0x3F) << 12) |
              ((int32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

/* Han, Hiragana and Katakana letters and numbers: the CJK Unified
 * Ideographs blocks and extensions (U+3400.., U+4E00.., planes 2 and 3),
 * compatibility ideographs, the kana blocks (with their supplement and
 * halfwidth forms) and the ideographic iteration/number marks of the CJK
 * Symbols block (々 〆 〇, U+3021.., U+3031.., U+3038..). */
static bool is_cjk(int32_t cp) {
    if (cp < 0x3005) return false;
    return (cp <= 0x3007) || (cp >= 0x3021 && cp <= 0x3029) || (cp >= 0x3031 && cp <= 0x3035) ||
           (cp >= 0x3038 && cp <= 0x303C) || (cp >= 0x3040 && cp <= 0x30FF) ||
           (cp >= 0x31F0 && cp <= 0x31FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0xFF66 && cp <= 0xFF9F) || (cp >= 0x1B000 && cp <= 0x1B16F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

static uint16_t class_cp(int32_t cp) {
    switch (cp) {
    case 0x2019: /* RIGHT SINGLE QUOTATION MARK, the typographic apostrophe */
    case 0x02BC: /* MODIFIER LETTER APOSTROPHE: an Lm, but used as an apostrophe */
        return CL_APOS;
    case 0x2010: /* HYPHEN */
    case 0x2011: /* NON-BREAKING HYPHEN */
        return CL_HYPHEN;
    default: break;
    }
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return is_cjk(cp) ? CL_IDEO : (CL_START | CL_WORD | CL_ALPHA);
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
        return CL_WORD | CL_MARK;
    case UTF8PROC_CATEGORY_ND:
        return CL_START | CL_WORD | CL_DIGIT | CL_NUMBER;
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return is_cjk(cp) ? (CL_IDEO | CL_NUMBER) : (CL_START | CL_WORD | CL_NUMBER);
    default:
        return 0;
    }
}

/* Class of the character at s[i] (i < len) and its length in *n; an
 * invalid byte is a separator of length 1. */
static uint16_t class_mb(const uint8_t *s, size_t len, size_t i, size_t *n) {
    int32_t cp;
    size_t k = utf8_decode(s + i, len - i, &cp);
    if (!k) {
        *n = 1;
        return 0;
    }
    *n = k;
    return class_cp(cp);
}

static inline uint16_t class_at(const uint8_t *s, size_t len, size_t i, size_t *n) {
    uint16_t k = k_class[s[i]];
    if (SH_LIKELY(!(k & CL_MB))) {
        *n = 1;
        return k;
    }
    return class_mb(s, len, i, n);
}

/* Class of the character at s[i], or 0 past the end. */
static inline uint16_t class_or_end(const uint8_t *s, size_t len, size_t i) {
    size_t n;
    return i < len ? class_at(s, len, i, &n) : 0;
}

/* A term being built in a buffer of SH_MAX_TERM_LEN bytes. */
typedef struct term {
    uint8_t *p;
    uint32_t len;
    bool cut; /* full: a character did not fit, so nothing more is added */
} term;

/* Append valid UTF-8 src[0..n); what does not fit is cut at the start of
 * the character that would straddle the limit. */
static void term_put(term *t, const uint8_t *src, size_t n) {
    if (t->cut) return;
    size_t room = SH_MAX_TERM_LEN - t->len;
    if (n > room) {
        n = room;
        while (n > 0 && (src[n] & 0xC0) == 0x80) n--;
        t->cut = true;
    }
    if (n) memcpy(t->p + t->len, src, n);
    t->len += (uint32_t)n;
}

typedef struct part {
    size_t start, end; /* surface bytes */
    uint16_t classes;  /* OR of the classes of its characters */
} part;

/* Scan one part (the whole word when it has no hyphen) starting at s[i],
 * a CL_START character, into t; returns the offset just past it. */
static size_t scan_part(const uint8_t *s, size_t len, size_t i, term *t, part *p) {
    uint16_t acc = 0, last = 0;
    size_t n;
    p->start = i;
    t->len = 0;
    t->cut = false;
    for (;;) {
        size_t seg = i;
        while (i < len) {
            uint16_t k = k_class[s[i]];
            if (k & CL_WORD) {
                acc |= k;
                last = k;
                i++;
                continue;
            }
            if (!(k & CL_MB)) break;
            k = class_mb(s, len, i, &n);
            if (!(k & CL_WORD)) break;
            acc |= k;
            last = k;
            i += n;
        }
        term_put(t, s + seg, i - seg);
        if (i >= len) break;
        uint16_t k = class_at(s, len, i, &n);
        if (k & CL_APOS) {
            size_t j = i + n;
            if (j < len && (s[j] == 's' || s[j] == 'S') && !(class_or_end(s, len, j + 1) & CL_WORD)) {
                i = j + 1; /* possessive: consumed, not part of the term */
                break;
            }
            if ((last & (CL_ALPHA | CL_MARK)) && (class_or_end(s, len, j) & CL_ALPHA)) {
                i = j;
                continue;
            }
        } else if (k & (CL_COMMA | CL_DOT)) {
            if ((last & CL_DIGIT) && (class_or_end(s, len, i + 1) & CL_DIGIT)) {
                if (k & CL_DOT) term_put(t, s + i, 1);
                i++;
                continue;
            }
        }
        break;
    }
    p->end = i;
    p->classes = acc;
    return i;
}

/* Length of a hyphen at s[i] that joins two parts (one followed by a
 * character that may start a part), else 0.  What precedes it always ends
 * a part, hence is a word character. */
static inline size_t joining_hyphen(const uint8_t *s, size_t len, size_t i) {
    size_t n;
    if (i >= len || !(k_class[s[i]] & (CL_HYPHEN | CL_MB))) return 0;
    if (!(class_at(s, len, i, &n) & CL_HYPHEN)) return 0;
    return (class_or_end(s, len, i + n) & CL_START) ? n : 0;
}

typedef struct tokenizer {
    sh_token_fn fn;
    void *ctx;
    uint32_t pos; /* position of the next non-WHOLE token */
    uint8_t part_buf[SH_MAX_TERM_LEN];
    uint8_t whole_buf[SH_MAX_TERM_LEN];
} tokenizer;

static inline uint32_t numeric_flag(uint16_t classes) {
    return (classes & CL_NUMBER) ? SH_TOK_NUMERIC : 0;
}

static int emit(tokenizer *tz, const uint8_t *t, uint32_t tlen, size_t start, size_t end,
                uint32_t flags) {
    sh_token tok = {
        .term = (const char *)t,
        .term_len = tlen,
        .start = (uint32_t)start,
        .end = (uint32_t)end,
        .pos = tz->pos,
        .flags = flags,
    };
    if (!(flags & SH_TOK_WHOLE)) tz->pos++;
    return tz->fn(tz->ctx, &tok);
}

/* Emit the word (maybe a hyphenated chain) starting at s[*ip]. */
static int emit_word(tokenizer *tz, const uint8_t *s, size_t len, size_t *ip) {
    term pt = {.p = tz->part_buf};
    part p;
    size_t i = scan_part(s, len, *ip, &pt, &p);
    size_t h = joining_hyphen(s, len, i);
    if (!h) {
        *ip = i;
        return emit(tz, pt.p, pt.len, p.start, p.end, numeric_flag(p.classes));
    }

    /* A chain: build the whole first, as it goes out before the parts. */
    size_t start = p.start;
    uint16_t acc = p.classes;
    term whole = {.p = tz->whole_buf};
    term_put(&whole, pt.p, pt.len);
    do {
        i = scan_part(s, len, i + h, &pt, &p);
        term_put(&whole, pt.p, pt.len);
        acc |= p.classes;
        h = joining_hyphen(s, len, i);
    } while (h);
    *ip = i;
    int rc = emit(tz, whole.p, whole.len, start, i, SH_TOK_WHOLE | numeric_flag(acc));
    if (rc) return rc;

    i = start;
    for (;;) {
        i = scan_part(s, len, i, &pt, &p);
        rc = emit(tz, pt.p, pt.len, p.start, p.end, SH_TOK_PART | numeric_flag(p.classes));
        if (rc) return rc;
        h = joining_hyphen(s, len, i);
        if (!h) return 0;
        i += h;
    }
}

/* Emit the CJK character at s[*ip] (n bytes) with the marks after it. */
static int emit_cjk(tokenizer *tz, const uint8_t *s, size_t len, size_t *ip, size_t n,
                    uint16_t k) {
    size_t start = *ip, i = start + n, m;
    while (i < len && s[i] >= 0x80 && (class_mb(s, len, i, &m) & CL_MARK)) i += m;
    *ip = i;
    term t = {.p = tz->part_buf};
    term_put(&t, s + start, i - start);
    return emit(tz, t.p, t.len, start, i, numeric_flag(k));
}

int sh_tokenize(const char *text, size_t len, uint32_t first_pos, sh_token_fn fn, void *ctx,
                uint32_t *npos) {
    if (npos) *npos = 0;
    /* Offsets are 32-bit; callers split larger inputs (documents are far
     * smaller than this). */
    if (len > UINT32_MAX) return SAHEL_ETOOBIG;
    const uint8_t *s = (const uint8_t *)text;
    tokenizer tz = {.fn = fn, .ctx = ctx, .pos = first_pos};
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        uint16_t k = k_class[s[i]];
        size_t n = 1;
        if (k & CL_START) {
            /* Fast path: an ASCII word ended by a plain separator is its
             * own term, read in place.  Anything that may join (apostrophe,
             * hyphen, a digit before ',' or '.', a non-ASCII character)
             * sends the word back through the general scanner. */
            size_t start = i;
            uint16_t acc = 0;
            do {
                acc |= k;
                i++;
            } while (i < len && ((k = k_class[s[i]]) & CL_WORD));
            if (i >= len || !(k & (CL_APOS | CL_HYPHEN | CL_MB | CL_COMMA | CL_DOT)) ||
                (!(k & (CL_APOS | CL_HYPHEN | CL_MB)) && !(k_class[s[i - 1]] & CL_DIGIT))) {
                size_t tl = SH_MIN(i - start, (size_t)SH_MAX_TERM_LEN);
                rc = emit(&tz, s + start, (uint32_t)tl, start, i, numeric_flag(acc));
            } else {
                i = start;
                rc = emit_word(&tz, s, len, &i);
            }
            if (rc) break;
            continue;
        }
        if (k & CL_MB) k = class_mb(s, len, i, &n);
        if (k & CL_START)
            rc = emit_word(&tz, s, len, &i);
        else if (k & CL_IDEO)
            rc = emit_cjk(&tz, s, len, &i, n, k);
        else
            i += n;
        if (rc) break;
    }
    if (npos) *npos = tz.pos - first_pos;
    return rc;
}
