/*
 * analyzer.c - turn raw tokens into index terms: fold case, stem, strip
 * diacritics (sh_analyzer).
 *
 * The order is fold -> stem -> strip because Snowball stemmers for accented
 * languages read the accents (French: attaquées -> attaqu, but attaquees ->
 * attaque), so accents may only go once the stem is known.
 *
 *   fold   ASCII through a 256-entry table; any other token through
 *          utf8proc (full case folding, then NFC: ß -> ss, Σ -> σ).
 *   stem   Snowball in UTF-8, skipped for SH_ANALYZE_NOSTEM, for the
 *          language "none" and for tokens with a digit.
 *   strip  canonical decomposition, combining diacritics dropped, NFC again
 *          (Goïta -> goita).  Only the diacritic blocks are dropped (Latin,
 *          Greek and Cyrillic combining marks, Hebrew points, Arabic
 *          harakat), not every M*: Indic vowel signs and the kana voicing
 *          marks are letters in all but name, and dropping them would merge
 *          unrelated words.  Pure ASCII skips it.
 *
 * Stem cache.  Stemming costs far more than tokenizing, and news text
 * repeats a small vocabulary, so each distinct folded form is stemmed once:
 *   - an open-addressing table (linear probing, load <= 1/2, power-of-two
 *     size) of {XXH3 hash, record pointer}; the hash is seeded with the
 *     mode (stemmed or not) so NOSTEM lookups never see stemmed terms;
 *   - records live in an arena of CHUNK_SIZE chunks, laid out as
 *       u8 key_len | u8 term_len | u8 mode | key bytes | term bytes
 *     (both lengths <= SH_MAX_TERM_LEN, so one byte each); no per-entry
 *     allocation;
 *   - bounded: past CACHE_MAX_ENTRIES records or CACHE_MAX_BYTES of arena
 *     the cache is emptied and refills with the current vocabulary.
 * ASCII tokens that are not stemmed bypass the cache (folding them is
 * cheaper than a lookup), so hits + misses count the other tokens.
 *
 * Invariants: every term handed out is valid UTF-8 of 1..SH_MAX_TERM_LEN
 * bytes (an empty result is not reported); keys are the folded form cut
 * to SH_MAX_TERM_LEN at a character boundary.
 */
#include <libstemmer.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "analysis.h"

/* Arena chunk: big enough that chunk allocation is rare (one per ~50,000
 * records at news-text term lengths). */
#define CHUNK_SIZE ((size_t)1 << 20)
/* Bounds of the cache: 1M distinct forms is more than a year of news
 * vocabulary, and 64 MiB of records plus 32 MiB of table is an acceptable
 * ceiling for an indexing process. */
#define CACHE_MAX_ENTRIES ((size_t)1 << 20)
#define CACHE_MAX_BYTES ((size_t)64 << 20)
#define CACHE_MIN_SLOTS ((size_t)1 << 12)
/* A record: u8 key length, u8 term length, u8 mode, u8[8] the caller's
 * memo (sh_token.memo), then the key and the term. */
#define REC_MEMO 3
#define REC_HEADER 11

/* utf8proc options: fold = full case folding then NFC; decomposition for
 * the strip step = canonical (NFD), recomposed to NFC afterwards.  STABLE
 * keeps results stable across Unicode versions, as indexes outlive them. */
#define FOLD_OPTS (UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_STABLE)
#define NFC_OPTS (UTF8PROC_COMPOSE | UTF8PROC_STABLE)

typedef struct chunk {
    struct chunk *next;
    size_t used;
    uint8_t data[];
} chunk;

typedef struct slot {
    uint64_t hash;
    const uint8_t *rec; /* NULL: empty */
} slot;

struct sh_analyzer {
    char *lang;
    struct sb_stemmer *stemmer; /* NULL for "none" */

    slot *slots;
    size_t nslots, count;
    chunk *chunks;      /* newest first; records are bumped from the head */
    size_t arena_bytes; /* bytes of records, for the bound */
    uint64_t hits, misses;

    int32_t *cps; /* utf8proc scratch: code points, then UTF-8 in place */
    size_t ncps;
    uint8_t key[SH_MAX_TERM_LEN]; /* folded form of the current token */
    uint8_t word[SH_MAX_TERM_LEN]; /* sh_analyzer_term's input, cut */

    /* the caller of sh_analyze, for the token callback */
    sh_token_fn fn;
    void *ctx;
    unsigned flags;
};

/* ASCII case folding: A-Z to a-z, every other byte unchanged. */
#define ROW(b)                                                                          \
    (b) + 0, (b) + 1, (b) + 2, (b) + 3, (b) + 4, (b) + 5, (b) + 6, (b) + 7, (b) + 8,      \
        (b) + 9, (b) + 10, (b) + 11, (b) + 12, (b) + 13, (b) + 14, (b) + 15
static const uint8_t k_lower[256] = {
    ROW(0x00), ROW(0x10), ROW(0x20), ROW(0x30),
    0x40, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, /* @ A-G */
    0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, /* H-O */
    0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, /* P-W */
    0x78, 0x79, 0x7a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, /* X-Z [ \ ] ^ _ */
    ROW(0x60), ROW(0x70), ROW(0x80), ROW(0x90), ROW(0xa0), ROW(0xb0),
    ROW(0xc0), ROW(0xd0), ROW(0xe0), ROW(0xf0),
};
#undef ROW

/* Length of the longest prefix of UTF-8 s[0..n) that fits max bytes
 * without splitting a character. */
static size_t utf8_cut(const uint8_t *s, size_t n, size_t max) {
    if (n <= max) return n;
    while (max > 0 && (s[max] & 0xC0) == 0x80) max--;
    return max;
}

static bool is_ascii(const uint8_t *s, size_t n) {
    uint8_t hi = 0;
    for (size_t i = 0; i < n; i++) hi |= s[i];
    return hi < 0x80;
}

/* The combining marks that are diacritics (see the top of the file). */
static bool is_diacritic(int32_t cp) {
    return (cp >= 0x0300 && cp <= 0x036F) ||  /* Combining Diacritical Marks */
           (cp >= 0x0483 && cp <= 0x0489) ||  /* Cyrillic combining marks */
           (cp >= 0x0591 && cp <= 0x05BD) ||  /* Hebrew accents and points */
           cp == 0x05BF || cp == 0x05C1 || cp == 0x05C2 || cp == 0x05C4 || cp == 0x05C5 ||
           cp == 0x05C7 || (cp >= 0x064B && cp <= 0x065F) || /* Arabic harakat */
           cp == 0x0670 ||                                  /* Arabic superscript alef */
           (cp >= 0x1AB0 && cp <= 0x1AFF) ||  /* Combining Diacritical Marks Extended */
           (cp >= 0x1DC0 && cp <= 0x1DFF) ||  /* ... Supplement */
           (cp >= 0x20D0 && cp <= 0x20FF) ||  /* ... for Symbols */
           (cp >= 0xFE20 && cp <= 0xFE2F);    /* Combining Half Marks */
}

/* Decompose UTF-8 s[0..n) into a->cps with utf8proc options opts, growing
 * the scratch when needed.  Returns the number of code points, or a
 * negative SAHEL_E* code (SAHEL_EINVAL for invalid UTF-8). */
static ptrdiff_t decompose(sh_analyzer *a, const uint8_t *s, size_t n, utf8proc_option_t opts) {
    for (;;) {
        utf8proc_ssize_t r =
            utf8proc_decompose(s, (utf8proc_ssize_t)n, a->cps, (utf8proc_ssize_t)a->ncps, opts);
        if (r < 0) return r == UTF8PROC_ERROR_NOMEM ? SAHEL_ENOMEM : SAHEL_EINVAL;
        /* reencode writes up to 4 bytes per code point plus a NUL in place */
        if ((size_t)r < a->ncps) return r;
        size_t want = SH_MAX((size_t)r + 1, a->ncps * 2);
        int32_t *p = sh_reallocarray(a->cps, want, sizeof *p);
        if (!p) return SAHEL_ENOMEM;
        a->cps = p;
        a->ncps = want;
    }
}

/* Re-encode the first ncp code points of a->cps as NFC UTF-8, in place.
 * Returns the byte length, or a negative SAHEL_E* code. */
static ptrdiff_t recompose(sh_analyzer *a, ptrdiff_t ncp) {
    utf8proc_ssize_t r = utf8proc_reencode(a->cps, ncp, NFC_OPTS);
    return r < 0 ? SAHEL_EINVAL : r;
}

/* Fold non-ASCII UTF-8 s[0..n) into a->key; *klen receives its length. */
static int fold_utf8(sh_analyzer *a, const uint8_t *s, size_t n, size_t *klen) {
    ptrdiff_t r = decompose(a, s, n, FOLD_OPTS);
    if (r < 0) return (int)r;
    r = recompose(a, r);
    if (r < 0) return (int)r;
    const uint8_t *u = (const uint8_t *)a->cps;
    *klen = utf8_cut(u, (size_t)r, SH_MAX_TERM_LEN);
    memcpy(a->key, u, *klen);
    return 0;
}

/* Strip diacritics from UTF-8 s[0..n); the result is left in a->cps. */
static int strip_utf8(sh_analyzer *a, const uint8_t *s, size_t n, const uint8_t **out,
                      size_t *out_len) {
    ptrdiff_t r = decompose(a, s, n, NFC_OPTS);
    if (r < 0) return (int)r;
    ptrdiff_t m = 0;
    for (ptrdiff_t i = 0; i < r; i++)
        if (!is_diacritic(a->cps[i])) a->cps[m++] = a->cps[i];
    r = recompose(a, m);
    if (r < 0) return (int)r;
    *out = (const uint8_t *)a->cps;
    *out_len = (size_t)r;
    return 0;
}

/* ---- stem cache --------------------------------------------------------- */

static const uint8_t *cache_find(const sh_analyzer *a, uint64_t h, unsigned mode,
                                 const uint8_t *key, size_t klen) {
    size_t mask = a->nslots - 1;
    for (size_t i = (size_t)h & mask; a->slots[i].rec; i = (i + 1) & mask) {
        const uint8_t *rec = a->slots[i].rec;
        if (a->slots[i].hash == h && rec[0] == klen && rec[2] == mode &&
            memcmp(rec + REC_HEADER, key, klen) == 0)
            return rec;
    }
    return NULL;
}

static void cache_place(slot *slots, size_t nslots, uint64_t h, const uint8_t *rec) {
    size_t mask = nslots - 1, i = (size_t)h & mask;
    while (slots[i].rec) i = (i + 1) & mask;
    slots[i].hash = h;
    slots[i].rec = rec;
}

static void cache_clear(sh_analyzer *a) {
    /* keep the newest chunk for reuse, free the rest */
    if (a->chunks) {
        chunk *c = a->chunks->next;
        while (c) {
            chunk *next = c->next;
            sh_free(c);
            c = next;
        }
        a->chunks->next = NULL;
        a->chunks->used = 0;
    }
    if (a->slots) memset(a->slots, 0, a->nslots * sizeof *a->slots);
    a->count = 0;
    a->arena_bytes = 0;
}

static int cache_grow(sh_analyzer *a) {
    size_t n = a->nslots ? a->nslots * 2 : CACHE_MIN_SLOTS;
    slot *s = sh_calloc(n, sizeof *s);
    if (!s) return SAHEL_ENOMEM;
    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i].rec) cache_place(s, n, a->slots[i].hash, a->slots[i].rec);
    sh_free(a->slots);
    a->slots = s;
    a->nslots = n;
    return 0;
}

/* Store key -> term; *rec_out receives the record. */
static int cache_insert(sh_analyzer *a, uint64_t h, unsigned mode, const uint8_t *key,
                        size_t klen, const uint8_t *term, size_t tlen, const uint8_t **rec_out) {
    size_t need = REC_HEADER + klen + tlen;
    if (a->count >= CACHE_MAX_ENTRIES || a->arena_bytes + need > CACHE_MAX_BYTES) cache_clear(a);
    if ((a->count + 1) * 2 > a->nslots) {
        int rc = cache_grow(a);
        if (rc) return rc;
    }
    chunk *c = a->chunks;
    if (!c || CHUNK_SIZE - c->used < need) {
        c = sh_malloc(sizeof *c + CHUNK_SIZE);
        if (!c) return SAHEL_ENOMEM;
        c->next = a->chunks;
        c->used = 0;
        a->chunks = c;
    }
    uint8_t *rec = c->data + c->used;
    c->used += need;
    a->arena_bytes += need;
    rec[0] = (uint8_t)klen;
    rec[1] = (uint8_t)tlen;
    rec[2] = (uint8_t)mode;
    memset(rec + REC_MEMO, 0, 8);
    memcpy(rec + REC_HEADER, key, klen);
    memcpy(rec + REC_HEADER + klen, term, tlen);
    cache_place(a->slots, a->nslots, h, rec);
    a->count++;
    *rec_out = rec;
    return 0;
}

/* ---- the pipeline ------------------------------------------------------- */

/* Normalise raw token s[0..n), n <= SH_MAX_TERM_LEN, valid UTF-8.  The
 * result points into a->key or the cache arena. */
static int normalise(sh_analyzer *a, const uint8_t *s, size_t n, bool stem, const uint8_t **out,
                     size_t *out_len, uint8_t **memo) {
    *memo = NULL;
    if (!n) {
        *out = a->key;
        *out_len = 0;
        return 0;
    }
    uint8_t hi = 0;
    for (size_t i = 0; i < n; i++) {
        a->key[i] = k_lower[s[i]];
        hi |= s[i];
    }
    size_t klen = n;
    bool ascii = hi < 0x80;
    if (ascii && !stem) {
        *out = a->key;
        *out_len = klen;
        return 0;
    }
    if (!ascii) {
        int rc = fold_utf8(a, s, n, &klen);
        if (rc) return rc;
    }

    unsigned mode = stem;
    uint64_t h = XXH3_64bits_withSeed(a->key, klen, mode);
    const uint8_t *rec = a->nslots ? cache_find(a, h, mode, a->key, klen) : NULL;
    if (rec) {
        a->hits++;
    } else {
        a->misses++;
        const uint8_t *t = a->key;
        size_t tlen = klen;
        if (stem) {
            t = sb_stemmer_stem(a->stemmer, a->key, (int)klen);
            if (!t) return SAHEL_ENOMEM;
            tlen = (size_t)sb_stemmer_length(a->stemmer);
        }
        if (!is_ascii(t, tlen)) {
            int rc = strip_utf8(a, t, tlen, &t, &tlen);
            if (rc) return rc;
        }
        tlen = utf8_cut(t, tlen, SH_MAX_TERM_LEN);
        int rc = cache_insert(a, h, mode, a->key, klen, t, tlen, &rec);
        if (rc) return rc;
    }
    *out = rec + REC_HEADER + rec[0];
    *out_len = rec[1];
    /* records are never moved or written while cached: the memo is the
     * caller's until the cache is cleared */
    *memo = (uint8_t *)(uintptr_t)(rec + REC_MEMO);
    return 0;
}

static int on_token(void *ctx, const sh_token *tok) {
    sh_analyzer *a = ctx;
    bool stem = a->stemmer && !(a->flags & SH_ANALYZE_NOSTEM) && !(tok->flags & SH_TOK_NUMERIC);
    const uint8_t *t;
    size_t tlen;
    uint8_t *memo;
    int rc = normalise(a, (const uint8_t *)tok->term, tok->term_len, stem, &t, &tlen, &memo);
    if (rc) return rc;
    if (!tlen) return 0;
    sh_token out = *tok;
    out.term = (const char *)t;
    out.term_len = (uint32_t)tlen;
    out.memo = memo;
    return a->fn(a->ctx, &out);
}

/* ---- public ------------------------------------------------------------- */

/* Whether lang is one of libstemmer's canonical names, to tell an unknown
 * language from a failed allocation (sb_stemmer_new returns NULL for both). */
static bool stemmer_known(const char *lang) {
    for (const char **l = sb_stemmer_list(); *l; l++)
        if (strcmp(*l, lang) == 0) return true;
    return false;
}

int sh_analyzer_new(const char *lang, sh_analyzer **out, sahel_error *err) {
    *out = NULL;
    if (!lang) return sh_err(err, SAHEL_EINVAL, "analyzer: no language given");
    sh_analyzer *a = sh_calloc(1, sizeof *a);
    if (!a) goto fail_nomem;
    a->lang = sh_strndup(lang, strlen(lang));
    if (!a->lang) goto fail_free;
    if (strcmp(lang, "none") != 0) {
        a->stemmer = sb_stemmer_new(lang, "UTF_8");
        if (!a->stemmer) {
            bool known = stemmer_known(lang);
            sh_analyzer_free(a);
            if (known) goto fail_nomem;
            return sh_err(err, SAHEL_EINVAL,
                          "analyzer: unknown language \"%s\" (not a Snowball stemmer, nor \"none\")",
                          lang);
        }
    }
    /* room for a token of SH_MAX_TERM_LEN one-byte characters, each folded
     * to up to 3 code points; decompose() grows it if ever needed */
    a->ncps = 4 * SH_MAX_TERM_LEN;
    a->cps = sh_calloc(a->ncps, sizeof *a->cps);
    if (!a->cps) goto fail_free;
    *out = a;
    return 0;

fail_free:
    sh_analyzer_free(a);
fail_nomem:
    return sh_err(err, SAHEL_ENOMEM, "analyzer: out of memory creating the \"%s\" analyzer", lang);
}

void sh_analyzer_free(sh_analyzer *a) {
    if (!a) return;
    chunk *c = a->chunks;
    while (c) {
        chunk *next = c->next;
        sh_free(c);
        c = next;
    }
    sh_free(a->slots);
    sh_free(a->cps);
    sb_stemmer_delete(a->stemmer);
    sh_free(a->lang);
    sh_free(a);
}

const char *sh_analyzer_lang(const sh_analyzer *a) { return a->lang; }

int sh_analyze(sh_analyzer *a, const char *text, size_t len, uint32_t first_pos, unsigned flags,
               sh_token_fn fn, void *ctx, uint32_t *npos) {
    a->fn = fn;
    a->ctx = ctx;
    a->flags = flags;
    return sh_tokenize(text, len, first_pos, on_token, a, npos);
}

int sh_analyzer_term(sh_analyzer *a, const char *word, size_t len, unsigned flags,
                     const char **out, size_t *out_len) {
    const uint8_t *s = (const uint8_t *)word;
    bool numeric = false;
    size_t n = 0; /* the prefix kept, cut as the tokenizer cuts */
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t k = 1;
        if (s[i] < 0x80) {
            cp = s[i];
        } else {
            utf8proc_ssize_t r = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);
            if (r <= 0) return SAHEL_EINVAL;
            k = (size_t)r;
        }
        if (n == i && i + k <= SH_MAX_TERM_LEN) n = i + k;
        if (cp < 0x80) {
            numeric |= cp >= '0' && cp <= '9';
        } else {
            utf8proc_category_t cat = utf8proc_category(cp);
            numeric |= cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
                       cat == UTF8PROC_CATEGORY_NO;
        }
        i += k;
    }
    if (n) memcpy(a->word, s, n);
    bool stem = a->stemmer && !(flags & SH_ANALYZE_NOSTEM) && !numeric;
    const uint8_t *t;
    uint8_t *memo;
    int rc = normalise(a, a->word, n, stem, &t, out_len, &memo);
    if (rc) return rc;
    *out = (const char *)t;
    return 0;
}

void sh_analyzer_cache_stats(const sh_analyzer *a, uint64_t *hits, uint64_t *misses) {
    if (hits) *hits = a->hits;
    if (misses) *misses = a->misses;
}
