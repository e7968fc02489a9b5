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
 *     the common case) or built in the buffer of SH_MAX_TERM_LEN bytes
 *     that belongs to its slot of the batch, in the per-call state: no
 *     allocation at all.  A longer term is cut at a character boundary
 *     and the rest of its surface still consumed.  A term read in place
 *     with fewer than SH_TERM_READABLE bytes of text after its start is
 *     copied to its slot's buffer, so that every term has that many
 *     readable bytes (the analyzer loads short terms whole).
 *   - Tokens go to the callback in batches of up to SH_TOKEN_BATCH
 *     (sh_tokenize_batch; sh_tokenize loops over each batch), so the
 *     scan runs ahead of the callbacks by up to a batch; a callback that
 *     stops the scan sees the same tokens and *npos as if it had not.
 *   - A hyphenated chain is scanned twice (once to build the whole, which
 *     must be emitted first, once to emit the parts), so memory stays
 *     bounded for chains of any length; both scans see the same bytes and
 *     so give the same parts.
 *   - ASCII, nearly all of English news text, is classified without
 *     decoding; only bytes >= 0x80 are decoded and classified with
 *     utf8proc_category.
 *
 * Two drivers find the tokens; both hand every case they do not settle
 * themselves to the same general scanner (emit_word, emit_cjk), so they
 * give the same tokens for every input (tests/test_analysis.c compares
 * them on random and real text):
 *   - scalar: one 256-entry table lookup per byte; portable, the
 *     reference.
 *   - AVX2 (x86-64 with AVX2 and BMI1/2, chosen at run time; the build
 *     needs no -mavx2): 64 bytes at a time are classified into bit masks
 *     (ASCII letters and digits, digits, bytes >= 0x80, ' - , .) with
 *     compares and movemask.  In a block of ASCII, a ',' or '.' between
 *     digits is glue (part of the word), so word starts and ends are two
 *     masks, walked in step with tzcnt/blsr.  A word is read in place
 *     unless a third mask, of the ends of words that need more (a group
 *     comma inside, something that may join at the end, the end of the
 *     text near), has its end bit; those go out of the loop to
 *     ascii_word_slow, which still settles in the block the plain
 *     possessive 's, the group commas, a hyphen that joins nothing and a
 *     hyphenated chain (the whole, then the parts) that the block holds
 *     whole, and gives the rest (other apostrophes, chains that leave the
 *     block, a ',' or '.' after a digit at the block's end) to emit_word.
 *     A block with a byte >= 0x80 reads its plain ASCII words the same way
 *     and gives everything else to the scalar step.  A word that runs past
 *     a block starts the next block.
 *   Measured on Reuters-21578 (16.7 MB of news text, 2.8M tokens, counting
 *   callback, one core of a shared Zen 4 VM, thread CPU time, -O2): the
 *   scalar driver about 290 MB/s, the AVX2 one about 0.9 GB/s.  Reading
 *   hyphenated chains in the block (they were a tenth of the AVX2
 *   driver's time, all through emit_word) and the one-branch fast path
 *   gained a fifth over the AVX2 driver of issue 4.  Tried since and
 *   dropped, being no faster there (thread CPU, best of 25-60 passes,
 *   alternated): an AVX-512BW classifier as a third driver (each class
 *   one compare into a mask register, some 40 instructions fewer a
 *   block), 1-2% slower than AVX2 with 64-byte registers and with
 *   AVX-512VL compares of the two halves; and taking the start of the
 *   word that runs past a block out of block_ascii's walk beforehand (one
 *   exit from the walk, one test fewer a word: 1 instruction a token
 *   fewer, the same time).
 */
#include <stdatomic.h>
#include <utf8proc.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SH_HAVE_AVX2_PATH 1
#else
#define SH_HAVE_AVX2_PATH 0
#endif

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

/* Tokens go out in batches of SH_TOKEN_BATCH (sh_tokenize_batch): a term
 * is read in place from the text, or built in the slot of copies[] that
 * belongs to its token (tok[n] for the next one), so that no term of a
 * batch overwrites another. */
typedef struct tokenizer {
    sh_tokens_fn fn;
    void *ctx;
    uint32_t pos;    /* position of the next non-WHOLE token */
    size_t n;        /* tokens in tok[] */
    bool stopped;    /* fn stopped the scan ... */
    uint32_t stop_pos; /* ... and this is the position after its token */
    sh_token tok[SH_TOKEN_BATCH];
    uint8_t copies[SH_TOKEN_BATCH][SH_MAX_TERM_LEN];
    uint8_t whole_buf[SH_MAX_TERM_LEN]; /* a hyphenated whole while its parts are scanned */
} tokenizer;

static inline uint32_t numeric_flag(uint16_t classes) {
    return (classes & CL_NUMBER) ? SH_TOK_NUMERIC : 0;
}

/* block_ascii writes start and end, then pos and flags, as two words
 * (the index format, hence the build, is little-endian only). */
_Static_assert(offsetof(sh_token, end) == offsetof(sh_token, start) + 4 &&
                   offsetof(sh_token, flags) == offsetof(sh_token, pos) + 4,
               "sh_token keeps start, end and pos, flags next to each other");

/* Hand the batch to fn; remember where it stopped, if it did. */
static int flush(tokenizer *tz) {
    size_t n = tz->n, stop = 0;
    tz->n = 0;
    int rc = tz->fn(tz->ctx, tz->tok, n, &stop);
    if (rc) {
        const sh_token *t = &tz->tok[stop < n ? stop : n - 1];
        tz->stopped = true;
        tz->stop_pos = t->pos + !(t->flags & SH_TOK_WHOLE);
    }
    return rc;
}

/* The buffer for the term of the next token. */
static inline uint8_t *next_copy(tokenizer *tz) { return tz->copies[tz->n]; }

/* A term read in place, s[start..start + tl): the text itself, or a copy
 * when fewer than SH_TERM_READABLE bytes of the text follow its start. */
static inline const uint8_t *in_place(tokenizer *tz, const uint8_t *s, size_t len, size_t start,
                                      size_t tl) {
    if (SH_LIKELY(len - start >= SH_TERM_READABLE)) return s + start;
    memcpy(next_copy(tz), s + start, tl);
    return next_copy(tz);
}

/* Add a token to the batch; t is in_place or next_copy(tz). */
static inline int emit(tokenizer *tz, const uint8_t *t, uint32_t tlen, size_t start, size_t end,
                       uint32_t flags) {
    /* field by field: GCC builds a compound literal on the stack first */
    sh_token *tok = &tz->tok[tz->n];
    tok->term = (const char *)t;
    tok->term_len = tlen;
    tok->start = (uint32_t)start;
    tok->end = (uint32_t)end;
    tok->pos = tz->pos;
    tok->flags = flags;
    tok->memo = NULL;
    tz->pos += !(flags & SH_TOK_WHOLE);
    return ++tz->n == SH_TOKEN_BATCH ? flush(tz) : 0;
}

/* Emit the word (maybe a hyphenated chain) starting at s[*ip]. */
static int emit_word(tokenizer *tz, const uint8_t *s, size_t len, size_t *ip) {
    term pt = {.p = next_copy(tz)};
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
    memcpy(next_copy(tz), whole.p, whole.len);
    int rc = emit(tz, next_copy(tz), whole.len, start, i, SH_TOK_WHOLE | numeric_flag(acc));
    if (rc) return rc;

    i = start;
    for (;;) {
        pt.p = next_copy(tz);
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
    term t = {.p = next_copy(tz)};
    term_put(&t, s + start, i - start);
    return emit(tz, t.p, t.len, start, i, numeric_flag(k));
}

/* Classes that, ending an ASCII run of word characters, may join it to
 * what follows; ',' and '.' join only after a digit. */
#define CL_JOINERS (CL_APOS | CL_HYPHEN | CL_MB | CL_COMMA | CL_DOT)

/* Whether an ASCII word s[start..end) (end > start) that the byte at end
 * (if any) stops is a whole token by itself: nothing after it can join. */
static inline bool ends_plain(const uint8_t *s, size_t len, size_t end) {
    if (end >= len) return true;
    uint16_t k = k_class[s[end]];
    if (!(k & CL_JOINERS)) return true;
    return !(k & (CL_APOS | CL_HYPHEN | CL_MB)) && !(k_class[s[end - 1]] & CL_DIGIT);
}

/* One step of the scalar driver at s[*ip]: a token (maybe a hyphenated
 * chain, maybe CJK) starting there, or one separator character skipped. */
static inline int step_scalar(tokenizer *tz, const uint8_t *s, size_t len, size_t *ip) {
    size_t i = *ip, n = 1;
    uint16_t k = k_class[s[i]];
    if (k & CL_START) {
        /* Fast path: an ASCII word ended by a plain separator is its own
         * term, read in place.  Anything that may join (apostrophe, hyphen,
         * a digit before ',' or '.', a non-ASCII character) sends the word
         * back through the general scanner. */
        size_t start = i;
        uint16_t acc = 0;
        do {
            acc |= k;
            i++;
        } while (i < len && ((k = k_class[s[i]]) & CL_WORD));
        if (ends_plain(s, len, i)) {
            *ip = i;
            size_t tl = SH_MIN(i - start, (size_t)SH_MAX_TERM_LEN);
            return emit(tz, in_place(tz, s, len, start, tl), (uint32_t)tl, start, i,
                        numeric_flag(acc));
        }
        return emit_word(tz, s, len, ip);
    }
    if (k & CL_MB) k = class_mb(s, len, i, &n);
    if (k & CL_START) return emit_word(tz, s, len, ip);
    if (k & CL_IDEO) return emit_cjk(tz, s, len, ip, n, k);
    *ip = i + n;
    return 0;
}

static int tokenize_scalar(tokenizer *tz, const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        /* ASCII separators, the most common bytes after letters, skipped
         * here rather than one step call each */
        if (!(k_class[s[i]] & (CL_START | CL_MB))) {
            i++;
            continue;
        }
        int rc = step_scalar(tz, s, len, &i);
        if (rc) return rc;
    }
    return 0;
}

#if SH_HAVE_AVX2_PATH

/* The AVX2 driver's functions are compiled for AVX2 and BMI1/2 whatever
 * the build's -march; they run only when cpu_has_avx2() says so. */
#define AVX2_FN __attribute__((target("avx2,bmi,bmi2")))

/* Bit masks of the 64 bytes of a block, bit j for byte j. */
typedef struct masks {
    uint64_t word;   /* ASCII letters and digits: the ASCII CL_WORD bytes */
    uint64_t digit;  /* ASCII digits */
    uint64_t high;   /* bytes >= 0x80 */
    uint64_t apos;   /* ' */
    uint64_t hyphen; /* - */
    uint64_t comma;  /* , */
    uint64_t dot;    /* . */
} masks;

AVX2_FN static inline uint64_t eq64(__m256i lo, __m256i hi, char c) {
    __m256i k = _mm256_set1_epi8(c);
    uint32_t a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, k));
    uint32_t b = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, k));
    return a | (uint64_t)b << 32;
}

/* x is in [lo, lo + n] (unsigned) iff min(x - lo, n) == x - lo. */
AVX2_FN static inline __m256i in_range(__m256i v, char lo, char n) {
    __m256i d = _mm256_sub_epi8(v, _mm256_set1_epi8(lo));
    return _mm256_cmpeq_epi8(_mm256_min_epu8(d, _mm256_set1_epi8(n)), d);
}

/* One half (32 bytes) of a block: its word, digit and high masks. */
AVX2_FN static inline void classify32(__m256i v, uint32_t *w, uint32_t *d, uint32_t *h) {
    __m256i is_digit = in_range(v, '0', 9);
    /* | 0x20 maps A-Z onto a-z and no other byte into a-z */
    __m256i is_alpha = in_range(_mm256_or_si256(v, _mm256_set1_epi8(0x20)), 'a', 25);
    *w = (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(is_digit, is_alpha));
    *d = (uint32_t)_mm256_movemask_epi8(is_digit);
    *h = (uint32_t)_mm256_movemask_epi8(v);
}

/* The two halves are written out rather than looped over: GCC -O2 does not
 * unroll such a loop, and it then kept the vectors and masks in arrays on
 * the stack, storing and reloading them (perf put a tenth of the
 * tokenizer's time on one of those reloads). */
AVX2_FN static inline masks classify64(const uint8_t *p) {
    __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
    __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
    uint32_t w0, d0, h0, w1, d1, h1;
    classify32(lo, &w0, &d0, &h0);
    classify32(hi, &w1, &d1, &h1);
    return (masks){
        .word = w0 | (uint64_t)w1 << 32,
        .digit = d0 | (uint64_t)d1 << 32,
        .high = h0 | (uint64_t)h1 << 32,
        .apos = eq64(lo, hi, '\''),
        .hyphen = eq64(lo, hi, '-'),
        .comma = eq64(lo, hi, ','),
        .dot = eq64(lo, hi, '.'),
    };
}

/* Bits at and above j (j < 64). */
static inline uint64_t from_bit(unsigned j) { return ~UINT64_C(0) << j; }

/* The masks block_ascii and ascii_word_slow derive from a block's: a ','
 * or '.' with digits on both sides is glue, part of the word (the scalar
 * scan joins it the same way: the ',' dropped, the '.' kept). */
typedef struct words {
    uint64_t after_digit; /* ',' and '.' after a digit */
    uint64_t word;        /* word bytes and glue */
    uint64_t ends;        /* the first byte after each word */
    uint64_t commas;      /* glue commas, left out of the term */
} words;

static inline words block_words(const masks *mk) {
    words w;
    w.after_digit = (mk->comma | mk->dot) & (mk->digit << 1);
    uint64_t glue = w.after_digit & (mk->digit >> 1);
    w.word = mk->word | glue;
    w.ends = ~w.word & (w.word << 1);
    w.commas = glue & mk->comma;
    return w;
}

/* Block bits t..e-1 (t <= e < 64). */
static inline uint64_t bits_between(unsigned t, unsigned e) { return from_bit(t) & ~from_bit(e); }

/* Copy the block's bytes t..e-1 into dst, leaving out those whose bits
 * are in drop (group commas, or the hyphens of a chain); the result is
 * shorter than a block, so never cut.  Returns the length. */
static uint32_t copy_except(uint8_t *dst, const uint8_t *blk, unsigned t, unsigned e,
                            uint64_t drop) {
    uint32_t n = 0;
    for (unsigned j = t; j < e; j++) {
        dst[n] = blk[j];
        n += !((drop >> j) & 1);
    }
    return n;
}

/* The tokens of the chain of hyphenated ASCII words that starts with the
 * word t..e-1 of the block (the byte at e is a hyphen and the one after
 * it a word byte), when the whole chain, and what ends it, is inside the
 * block and has no group commas: the whole (its parts joined) and then
 * each part, as emit_word gives them.  Returns 1 when the chain is not
 * such (nothing emitted; emit_word is to read it), else 0 or the
 * callback's value, with *ip past the chain. */
static int ascii_chain(tokenizer *tz, const uint8_t *s, size_t len, size_t b, const uint8_t *blk,
                       const masks *mk, const words *w, unsigned t, unsigned e, size_t *ip) {
    enum { MAX_PARTS = 16 }; /* a chain of more goes to emit_word */
    unsigned pend[MAX_PARTS], np = 1;
    pend[0] = e;
    /* a part's hyphen must have a word byte after it, and that part must
     * end inside the block: at e + 2 at the earliest */
    while (e <= 61 && ((mk->hyphen >> e) & 1) && ((w->word >> (e + 1)) & 1)) {
        uint64_t next = w->ends & from_bit(e + 2);
        if (!next || np == MAX_PARTS) return 1;
        e = (unsigned)__builtin_ctzll(next);
        pend[np++] = e;
    }
    /* what ends the chain must join nothing: an apostrophe (a possessive
     * or not), a hyphen with a word byte after it (a part that would end
     * past the block), and a hyphen or a ',' or '.' after a digit in the
     * block's last byte, whose right neighbour is in the next block, are
     * emit_word's */
    uint64_t bit = UINT64_C(1) << e;
    if ((mk->apos & bit) || ((mk->hyphen & bit) && (e == 63 || ((w->word >> (e + 1)) & 1))) ||
        ((w->after_digit & bit) && e == 63) || (w->commas & bits_between(t, e)))
        return 1;
    uint64_t chain = bits_between(t, e);
    uint8_t *whole = next_copy(tz);
    uint32_t wl = copy_except(whole, blk, t, e, mk->hyphen);
    uint32_t flags = (mk->digit & chain) ? SH_TOK_NUMERIC : 0;
    int rc = emit(tz, whole, wl, b + t, b + e, SH_TOK_WHOLE | flags);
    if (rc) return rc;
    unsigned ps = t;
    for (unsigned k = 0; k < np; k++) {
        unsigned pe = pend[k];
        flags = (mk->digit & bits_between(ps, pe)) ? SH_TOK_NUMERIC : 0;
        rc = emit(tz, in_place(tz, s, len, b + ps, pe - ps), pe - ps, b + ps, b + pe,
                  SH_TOK_PART | flags);
        if (rc) return rc;
        ps = pe + 1;
    }
    *ip = b + e;
    return 0;
}

/* The word t..e-1 of an ASCII block (blk: its bytes), when block_ascii's
 * fast path cannot take it: something may join at e (a hyphen, an
 * apostrophe, a ',' or '.' after a digit in the block's last byte), it
 * has group commas, or it is near the end of the text (in_place may have
 * to copy it).  Emits it, with what joins it, and sets *ip past what it
 * consumed; returns 0 or the callback's value.  Out of line: block_ascii's
 * loop keeps its registers for the common words. */
static __attribute__((noinline)) int ascii_word_slow(tokenizer *tz, const uint8_t *s, size_t len,
                                                     size_t b, const uint8_t *blk,
                                                     const masks *mk, unsigned t, unsigned e,
                                                     size_t *ip) {
    words w = block_words(mk);
    size_t start = b + t, end = b + e, surface_end = end;
    bool at_hyphen = (mk->hyphen >> e) & 1, at_apos = (mk->apos >> e) & 1;
    if (at_hyphen && e < 63 && ((w.word >> (e + 1)) & 1)) {
        int rc = ascii_chain(tz, s, len, b, blk, mk, &w, t, e, ip);
        if (rc != 1) return rc;
        *ip = start;
        return emit_word(tz, s, len, ip);
    }
    if (at_apos) {
        /* a possessive 's, then anything but a word byte or a hyphen, is
         * read here; the rest of the joining rules are emit_word's */
        if (e + 2 > 63 || (blk[e + 1] | 0x20) != 's' || ((mk->word | mk->hyphen) >> (e + 2)) & 1) {
            *ip = start;
            return emit_word(tz, s, len, ip);
        }
        surface_end = end + 2;
    } else if (e == 63 && (at_hyphen || ((w.after_digit >> e) & 1))) {
        *ip = start;
        return emit_word(tz, s, len, ip);
    }
    /* a hyphen here joins nothing: no word byte follows it */
    uint64_t in_word = bits_between(t, e);
    uint32_t flags = (mk->digit & in_word) ? SH_TOK_NUMERIC : 0;
    *ip = surface_end;
    if (w.commas & in_word) {
        uint32_t tl = copy_except(next_copy(tz), blk, t, e, w.commas);
        return emit(tz, next_copy(tz), tl, start, surface_end, flags);
    }
    return emit(tz, in_place(tz, s, len, start, e - t), e - t, start, surface_end, flags);
}

/* Tokens of the block at s + b, which has no byte >= 0x80; blk is s + b,
 * or the zeroed copy of the last block.  Sets *ip past what it consumed:
 * the block's end, or the start of a word that runs past it (to classify
 * again from there).
 *
 * Word starts and ends are two masks walked in step, so one token's
 * bookkeeping does not wait for the last one's.  A word is read in place
 * unless the bit of its end is in `special` (ascii_word_slow's cases);
 * that mask, and `numeric` (the ends of words with a digit), are made
 * with one addition each: adding a bit inside a run of word bits carries
 * through the run to its end bit, and a second bit in the same run lands
 * on a bit the first carry cleared, so it carries no further.  The batch
 * count and the position are kept in locals (stores to the batch would
 * make the compiler reload them from *tz) and written back around every
 * call. */
AVX2_FN static inline __attribute__((always_inline)) int
block_ascii(tokenizer *tz, const uint8_t *s, size_t len, size_t b, const uint8_t *blk,
            const masks *mk, bool near_end, size_t *ip) {
    const uint64_t top = UINT64_C(1) << 63;
    words w = block_words(mk);
    uint64_t starts = w.word & ~(w.word << 1);
    uint64_t ends = w.ends;
    /* a hyphen joins only when a word byte follows it; the last byte's
     * neighbour is in the next block */
    uint64_t joins = mk->apos | (mk->hyphen & ((w.word >> 1) | top)) | (w.after_digit & top);
    uint64_t special = joins | (ends & (w.word + w.commas));
    uint64_t numeric = ends & (w.word + mk->digit);
    sh_token *toks = tz->tok;
    size_t n = tz->n;
    uint32_t pos = tz->pos;
    int rc = 0;
    for (;;) {
        if (!starts) {
            *ip = b + 64;
            break;
        }
        unsigned t = (unsigned)__builtin_ctzll(starts);
        size_t start = b + t;
        if (SH_UNLIKELY(!ends)) {
            /* the last word runs past the block: classify again from its
             * start, where it will most likely end inside; a word that
             * fills the whole block goes through the scalar step */
            *ip = start;
            if (t) break;
            tz->n = n;
            tz->pos = pos;
            return step_scalar(tz, s, len, ip);
        }
        unsigned e = (unsigned)__builtin_ctzll(ends);
        if (SH_UNLIKELY((special >> e) & 1)) {
            size_t i;
            tz->n = n;
            tz->pos = pos;
            rc = ascii_word_slow(tz, s, len, b, blk, mk, t, e, &i);
            n = tz->n;
            pos = tz->pos;
            if (rc) return rc;
            if (i - b >= 64) {
                *ip = i;
                break;
            }
            /* what the word consumed is no longer to be read */
            starts &= from_bit((unsigned)(i - b));
            ends &= from_bit((unsigned)(i - b)) << 1;
            continue;
        }
        sh_token *tok = &toks[n];
        tok->term = (const char *)s + start;
        tok->term_len = e - t; /* < 64: no cut */
        if (near_end && len - start < SH_TERM_READABLE) {
            memcpy(tz->copies[n], s + start, e - t);
            tok->term = (const char *)tz->copies[n];
        }
        /* start and end, pos and flags: two 8-byte stores (GCC would
         * otherwise assemble the four in a vector register) */
        uint64_t se = (uint64_t)start | (uint64_t)(b + e) << 32;
        uint64_t pf = (uint64_t)pos++ | (((numeric >> e) & 1) * SH_TOK_NUMERIC) << 32;
        memcpy(&tok->start, &se, 8);
        memcpy(&tok->pos, &pf, 8);
        tok->memo = NULL;
        if (SH_UNLIKELY(++n == SH_TOKEN_BATCH)) {
            tz->n = n;
            tz->pos = pos;
            rc = flush(tz);
            if (rc) return rc;
            n = 0;
        }
        starts &= starts - 1;
        ends &= ends - 1;
    }
    tz->n = n;
    tz->pos = pos;
    return 0;
}

/* Tokens of a block with a byte >= 0x80: its ASCII words that nothing
 * joins are read here, everything else goes through the scalar step. */
AVX2_FN static inline int block_mixed(tokenizer *tz, const uint8_t *s, size_t len, size_t b,
                                      const masks *mk, size_t *ip) {
    uint64_t todo = mk->word | mk->high;
    for (;;) {
        if (!todo) {
            *ip = b + 64;
            return 0;
        }
        unsigned t = (unsigned)__builtin_ctzll(todo);
        size_t start = b + t, i = start;
        uint64_t stop = ~mk->word & from_bit(t);
        int rc;
        if (!((mk->high >> t) & 1) && stop) {
            unsigned e = (unsigned)__builtin_ctzll(stop);
            size_t end = b + e;
            if (ends_plain(s, len, end)) {
                uint64_t in_word = from_bit(t) & ~from_bit(e);
                uint32_t flags = (mk->digit & in_word) ? SH_TOK_NUMERIC : 0;
                size_t tl = SH_MIN((size_t)(e - t), (size_t)SH_MAX_TERM_LEN);
                rc = emit(tz, in_place(tz, s, len, start, tl), (uint32_t)tl, start, end, flags);
                if (rc) return rc;
                todo &= from_bit(e);
                continue;
            }
            rc = emit_word(tz, s, len, &i);
        } else if (!stop && t > 0) {
            *ip = start; /* as in block_ascii: classify again from here */
            return 0;
        } else {
            /* a byte >= 0x80, or a run of 64 word bytes */
            rc = step_scalar(tz, s, len, &i);
        }
        if (rc) return rc;
        if (i - b >= 64) {
            *ip = i;
            return 0;
        }
        todo &= from_bit((unsigned)(i - b));
    }
}

/* The AVX2 driver.  A block is the 64 bytes from i (the last one copied
 * into a zeroed buffer first; zeros are separators).  It starts where the
 * last one stopped: the end of a block or of a token, or the start of a
 * word that ran past the last block; so a block never starts inside a
 * word, and every token starts at a set bit of word | high, as the scalar
 * driver skips only ASCII separators between tokens. */
AVX2_FN static int tokenize_avx2(tokenizer *tz, const uint8_t *s, size_t len) {
    uint8_t tail[64];
    size_t i = 0;
    while (i < len) {
        const uint8_t *blk = s + i;
        if (len - i < 64) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, s + i, len - i);
            blk = tail;
        }
        masks mk = classify64(blk);
        /* near the end of the text a word may start with fewer than
         * SH_TERM_READABLE bytes after it, to be copied: block_ascii is
         * made twice, so that the other blocks do not test for it */
        int rc;
        if (SH_UNLIKELY(mk.high))
            rc = block_mixed(tz, s, len, i, &mk, &i);
        else if (SH_LIKELY(len - i >= 64 + SH_TERM_READABLE))
            rc = block_ascii(tz, s, len, i, blk, &mk, false, &i);
        else
            rc = block_ascii(tz, s, len, i, blk, &mk, true, &i);
        if (rc) return rc;
    }
    return 0;
}

/* Whether the CPU (and the OS, which must save the YMM registers) runs
 * AVX2; asked once (common.h), then cached.  A race between two first
 * calls is harmless: both store the same answer. */
static bool cpu_has_avx2(void) {
    static _Atomic int known = -1;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (SH_UNLIKELY(k < 0)) {
        /* BMI1/2 (tzcnt, blsr, shlx) come with every AVX2 CPU made, but
         * they are separate CPUID bits */
        k = SH_CPU_AVX2() && SH_CPU_BMI();
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k;
}

#else

static bool cpu_has_avx2(void) { return false; }

#endif /* SH_HAVE_AVX2_PATH */

/* The driver sh_tokenize uses (sh_tokenize_impl); AUTO until a test or a
 * benchmark forces one.  Atomic so that a change is never a data race;
 * relaxed, as nothing else is ordered by it. */
static _Atomic int g_impl = SH_TOKENIZE_AUTO;

bool sh_tokenize_avx2_available(void) { return cpu_has_avx2(); }

int sh_tokenize_use(sh_tokenize_impl impl) {
    if (impl != SH_TOKENIZE_AUTO && impl != SH_TOKENIZE_SCALAR && impl != SH_TOKENIZE_AVX2)
        return SAHEL_EINVAL;
    if (impl == SH_TOKENIZE_AVX2 && !cpu_has_avx2()) return SAHEL_EINVAL;
    atomic_store_explicit(&g_impl, (int)impl, memory_order_relaxed);
    return 0;
}

int sh_tokenize_batch(const char *text, size_t len, uint32_t first_pos, sh_tokens_fn fn,
                      void *ctx, uint32_t *npos) {
    if (npos) *npos = 0;
    /* Offsets are 32-bit; callers split larger inputs (documents are far
     * smaller than this). */
    if (len > UINT32_MAX) return SAHEL_ETOOBIG;
    const uint8_t *s = (const uint8_t *)text;
    tokenizer tz;
    tz.fn = fn;
    tz.ctx = ctx;
    tz.pos = first_pos;
    tz.n = 0;
    tz.stopped = false;
    int impl = atomic_load_explicit(&g_impl, memory_order_relaxed);
    int rc;
#if SH_HAVE_AVX2_PATH
    if (impl == SH_TOKENIZE_AVX2 || (impl == SH_TOKENIZE_AUTO && cpu_has_avx2()))
        rc = tokenize_avx2(&tz, s, len);
    else
        rc = tokenize_scalar(&tz, s, len);
#else
    (void)impl;
    rc = tokenize_scalar(&tz, s, len);
#endif
    if (!rc && tz.n) rc = flush(&tz);
    /* the scan ran ahead of the token that stopped it by up to a batch */
    if (npos) *npos = (tz.stopped ? tz.stop_pos : tz.pos) - first_pos;
    return rc;
}

typedef struct each_ctx {
    sh_token_fn fn;
    void *ctx;
} each_ctx;

static int call_each(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    const each_ctx *e = ctx;
    for (size_t i = 0; i < n; i++) {
        int rc = e->fn(e->ctx, &toks[i]);
        if (rc) {
            *stop = i;
            return rc;
        }
    }
    return 0;
}

int sh_tokenize(const char *text, size_t len, uint32_t first_pos, sh_token_fn fn, void *ctx,
                uint32_t *npos) {
    each_ctx e = {.fn = fn, .ctx = ctx};
    return sh_tokenize_batch(text, len, first_pos, call_each, &e, npos);
}
