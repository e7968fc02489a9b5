/*
 * analyzer.c - turn raw tokens into index terms: fold case, stem, strip
 * diacritics (sh_analyzer).
 *
 * The order is fold -> stem -> strip because Snowball stemmers for accented
 * languages read the accents (French: attaquées -> attaqu, but attaquees ->
 * attaque), so accents may only go once the stem is known.
 *
 *   fold   ASCII 16 bytes at a time (SSE2; 8 with SWAR, lower_word, where
 *          there is no SSE2 and past 16 bytes); any other token through
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
 *   - keys (folded forms) sit in buffers and records zero-padded to
 *     key_pad(len) bytes: a multiple of 8, at least SHORT_KEY (16), so a
 *     short key, nearly every word, is two words that are folded, hashed
 *     and compared with no branch on its length (token lengths are random:
 *     such branches mispredict);
 *   - an open-addressing table (linear probing, load <= 3/4, power-of-two
 *     size, made with the analyzer) of 8-byte slots {u32 tag, u32 record
 *     reference}.  The tag is the low 32 bits of the key's hash
 *     (key_hash: of its padded bytes, seeded with its length and the mode,
 *     stemmed or not, so that NOSTEM lookups never see stemmed terms; a
 *     multiply-fold of the two words of a short key, XXH3 for a longer
 *     one).  The home slot is tag & mask, so the table grows without
 *     rehashing keys.  Slots are small so that the table of a news
 *     vocabulary (50,000 forms: 64K slots, 512 KiB) mostly stays in L2,
 *     and the probe compares the tag before it touches a record.  The load
 *     bound is 3/4 rather than 1/2 for the same reason: eight slots share
 *     a cache line, so the longer probes cost a few compares, while the
 *     table of half the size had a fifth fewer L2 misses and page faults
 *     on Reuters-21578 (cachegrind).  Slots of 32 bytes holding the key's
 *     first 16 bytes, so that a hit reads no record, were tried too: half
 *     the L1 misses of a lookup, but 4 MiB of table for that vocabulary,
 *     twice the page faults of a new analyzer and more instructions; no
 *     faster there, and the writer reads the record for its memo anyway;
 *   - records live in an arena of CHUNK_SIZE chunks, laid out as
 *       u8 key_len | u8 term_len | u8 mode | u8[8] memo
 *       | key bytes, zero-padded to key_pad(key_len) | term bytes
 *     (both lengths <= SH_MAX_TERM_LEN, so one byte each); no per-entry
 *     allocation.  A reference is 1 + (chunk index << CHUNK_BITS | offset),
 *     0 meaning an empty slot;
 *   - bounded: past CACHE_MAX_ENTRIES records or CACHE_MAX_BYTES of arena
 *     the cache is emptied and refills with the current vocabulary.
 * ASCII tokens that are not stemmed bypass the cache (folding them is
 * cheaper than a lookup), so hits + misses count the other tokens.
 *
 * sh_analyze runs each batch of tokens through a short pipeline that
 * prefetches the slot of every token of the batch before the first lookup
 * (see "the pipeline" below); sh_analyzer_term looks one word up directly.
 * utf8proc is called only for tokens with a byte >= 0x80.
 *
 * Invariants: every term handed out is valid UTF-8 of 1..SH_MAX_TERM_LEN
 * bytes (an empty result is not reported); keys are the folded form cut
 * to SH_MAX_TERM_LEN at a character boundary.
 */
#include <libstemmer.h>
#include <utf8proc.h>
/* XXH3 compiled in (its header is the implementation), for keys longer
 * than SHORT_KEY: the keys are a few bytes long, and a call into the
 * shared library cost more than the hashing itself. */
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "analysis.h"

/* Arena chunk: big enough that chunk allocation is rare (one per ~40,000
 * records at news-text term lengths). */
#define CHUNK_BITS 20
#define CHUNK_SIZE ((size_t)1 << CHUNK_BITS)
/* Bounds of the cache: 1M distinct forms is more than a year of news
 * vocabulary, and 64 MiB of records plus 32 MiB of table is an acceptable
 * ceiling for an indexing process. */
#define CACHE_MAX_ENTRIES ((size_t)1 << 20)
#define CACHE_MAX_BYTES ((size_t)64 << 20)
#define CACHE_MIN_SLOTS ((size_t)1 << 12)
/* Chunks the arena can hold before the byte bound clears it: each chunk
 * but the last is filled to within one record (REC_MAX bytes) of its size,
 * so CACHE_MAX_BYTES / (CHUNK_SIZE - REC_MAX) + 1 = 65 of them; the table
 * of chunks has room for a few more, and cache_insert checks it anyway. */
#define CHUNK_MAX 72
/* A record: u8 key length, u8 term length, u8 mode, u8[8] the caller's
 * memo (sh_token.memo), then the key and the term. */
#define REC_MEMO 3
#define REC_HEADER 11
#define REC_MAX (REC_HEADER + 2 * SH_MAX_TERM_LEN)

/* utf8proc options: fold = full case folding then NFC; decomposition for
 * the strip step = canonical (NFD), recomposed to NFC afterwards.  STABLE
 * keeps results stable across Unicode versions, as indexes outlive them. */
#define FOLD_OPTS (UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_STABLE)
#define NFC_OPTS (UTF8PROC_COMPOSE | UTF8PROC_STABLE)

typedef struct slot {
    uint32_t tag; /* low 32 bits of the key's hash */
    uint32_t ref; /* 0: empty; else 1 + (chunk index << CHUNK_BITS | offset) */
} slot;

struct sh_analyzer {
    char *lang;
    struct sb_stemmer *stemmer; /* NULL for "none" */

    slot *slots;
    size_t nslots, count;
    uint8_t *chunks[CHUNK_MAX]; /* records are bumped from the last one */
    size_t nchunks, used;       /* used: bytes of the last chunk */
    size_t arena_bytes;         /* bytes of records, for the bound */
    size_t max_bytes;           /* the bound on chunks and table together */
    uint64_t hits, misses;

    int32_t *cps; /* utf8proc scratch: code points, then UTF-8 in place */
    size_t ncps;
    /* sh_analyzer_term's folded form, zero-padded to key_pad bytes
     * (SH_MAX_TERM_LEN is a multiple of 8, at least SHORT_KEY) */
    uint8_t key[SH_MAX_TERM_LEN];
    uint8_t word[SH_MAX_TERM_LEN]; /* sh_analyzer_term's input, cut */

    /* the caller of sh_analyze, for the token callback */
    sh_token_fn fn;
    void *ctx;
    bool stem; /* stemming on for this sh_analyze: a stemmer, no NOSTEM */
    /* the batch in sh_analyze (see "the pipeline"): each token's folded
     * key (zero-padded), its length, cache hash and FOLD_* kind */
    uint8_t bkeys[SH_TOKEN_BATCH][SH_MAX_TERM_LEN];
    uint64_t bhash[SH_TOKEN_BATCH];
    uint32_t bklen[SH_TOKEN_BATCH];
    uint8_t bkind[SH_TOKEN_BATCH];
};

_Static_assert(SH_MAX_TERM_LEN % 8 == 0 && SH_MAX_TERM_LEN < 256,
               "keys are padded to 8-byte words in a buffer of SH_MAX_TERM_LEN bytes, "
               "and record lengths are one byte");

/* Bytes a key takes in a key buffer or a record: a multiple of 8, at
 * least SHORT_KEY, zero past its length.  Keys of up to SHORT_KEY bytes
 * (nearly all words) are then two words, folded, hashed and compared
 * without a branch on their length: token lengths are random, and the
 * mispredicted branches of a length switch cost more than the work. */
#define SHORT_KEY SH_TERM_READABLE
_Static_assert(SHORT_KEY == 16 && SH_MAX_TERM_LEN >= SHORT_KEY,
               "a short key is two 8-byte words, and fits any key buffer");
static inline size_t key_pad(size_t n) {
    return n <= SHORT_KEY ? SHORT_KEY : (n + 7) & ~(size_t)7;
}

#define BYTES(c) (UINT64_C(0x0101010101010101) * (uint8_t)(c))

#if !defined(__SSE2__)
/* k_mask[n] keeps the first n bytes of a little-endian 16-byte load:
 * word 0 in [n][0], word 1 in [n][1]. */
static const uint64_t k_mask[SHORT_KEY + 1][2] = {
    {0x0000000000000000, 0x0000000000000000}, /*  0 */
    {0x00000000000000ff, 0x0000000000000000}, /*  1 */
    {0x000000000000ffff, 0x0000000000000000}, /*  2 */
    {0x0000000000ffffff, 0x0000000000000000}, /*  3 */
    {0x00000000ffffffff, 0x0000000000000000}, /*  4 */
    {0x000000ffffffffff, 0x0000000000000000}, /*  5 */
    {0x0000ffffffffffff, 0x0000000000000000}, /*  6 */
    {0x00ffffffffffffff, 0x0000000000000000}, /*  7 */
    {0xffffffffffffffff, 0x0000000000000000}, /*  8 */
    {0xffffffffffffffff, 0x00000000000000ff}, /*  9 */
    {0xffffffffffffffff, 0x000000000000ffff}, /* 10 */
    {0xffffffffffffffff, 0x0000000000ffffff}, /* 11 */
    {0xffffffffffffffff, 0x00000000ffffffff}, /* 12 */
    {0xffffffffffffffff, 0x000000ffffffffff}, /* 13 */
    {0xffffffffffffffff, 0x0000ffffffffffff}, /* 14 */
    {0xffffffffffffffff, 0x00ffffffffffffff}, /* 15 */
    {0xffffffffffffffff, 0xffffffffffffffff}, /* 16 */
};
#endif

/* ASCII case folding of one word: A-Z to a-z in each byte, every other
 * byte unchanged (bytes >= 0x80 too).  A byte b is upper case when b | 0x80
 * minus 'A' keeps the top bit (b >= 'A') and minus 'Z' + 1 loses it
 * (b <= 'Z'); b < 0x80 as well.  No carry crosses bytes: each byte of
 * (w & 0x7f..) | 0x80.. is in [0x80, 0xff] and is lowered by at most 0x5b. */
static inline uint64_t lower_word(uint64_t w) {
    uint64_t h = (w & BYTES(0x7f)) | BYTES(0x80);
    uint64_t upper = (h - BYTES('A')) & ~(h - BYTES('Z' + 1)) & ~w & BYTES(0x80);
    return w | upper >> 2;
}

/* Lower-case s[0..n) (n <= SH_MAX_TERM_LEN) into key, zero-padded to
 * key_pad(n) bytes.  s[0..SHORT_KEY) must be readable even when n is less
 * (sh_tokenize_batch guarantees it for its terms; the analyzer's own
 * buffers are SH_MAX_TERM_LEN long): the bytes past n are masked off.
 * Returns non-zero when some byte is >= 0x80. */
static inline uint64_t fold_ascii(uint8_t *key, const uint8_t *s, size_t n) {
    uint64_t w0, hi;
#if defined(__SSE2__)
    /* SSE2 (every x86-64): the 16 bytes in one register, about a third of
     * the instructions of the two SWAR words (cachegrind: lower_word was
     * 29 of sh_analyze's ~180 instructions a token) */
    if (SH_LIKELY(n <= SHORT_KEY)) {
        /* bytes past n are zeroed: the 16 bytes of k_keep from 16 - n are
         * n of 0xff, then zeros */
        static const uint8_t k_keep[2 * SHORT_KEY] = {
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        };
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        v = _mm_and_si128(v, _mm_loadu_si128((const __m128i *)(const void *)(k_keep + 16 - n)));
        int high = _mm_movemask_epi8(v);
        /* b + 63 maps A-Z, and only those, onto -128..-103 as signed
         * bytes (bytes >= 0x80 land on -65..62); those get 0x20 */
        __m128i upper = _mm_cmpgt_epi8(_mm_set1_epi8(-102), _mm_add_epi8(v, _mm_set1_epi8(63)));
        v = _mm_or_si128(v, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
        _mm_storeu_si128((__m128i *)(void *)key, v);
        return (uint64_t)high;
    }
#else
    if (SH_LIKELY(n <= SHORT_KEY)) {
        uint64_t w1;
        memcpy(&w0, s, 8);
        memcpy(&w1, s + 8, 8);
        w0 &= k_mask[n][0];
        w1 &= k_mask[n][1];
        hi = w0 | w1;
        w0 = lower_word(w0);
        w1 = lower_word(w1);
        memcpy(key, &w0, 8);
        memcpy(key + 8, &w1, 8);
        return hi & BYTES(0x80);
    }
#endif
    hi = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w0, s + i, 8);
        hi |= w0;
        w0 = lower_word(w0);
        memcpy(key + i, &w0, 8);
    }
    if (i < n) {
        w0 = 0;
        memcpy(&w0, s + i, n - i);
        hi |= w0;
        w0 = lower_word(w0);
        memcpy(key + i, &w0, 8);
    }
    return hi & BYTES(0x80);
}

/* Zero key[n..key_pad(n)), after a fold that wrote n bytes. */
static inline void pad_key(uint8_t *key, size_t n) {
    size_t end = key_pad(n);
    if (end > n) memset(key + n, 0, end - n);
}

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

/* Fold non-ASCII UTF-8 s[0..n) into key (SH_MAX_TERM_LEN bytes),
 * zero-padded; *klen receives its length. */
static int fold_utf8(sh_analyzer *a, const uint8_t *s, size_t n, uint8_t *key, size_t *klen) {
    ptrdiff_t r = decompose(a, s, n, FOLD_OPTS);
    if (r < 0) return (int)r;
    r = recompose(a, r);
    if (r < 0) return (int)r;
    const uint8_t *u = (const uint8_t *)a->cps;
    *klen = utf8_cut(u, (size_t)r, SH_MAX_TERM_LEN);
    memcpy(key, u, *klen);
    pad_key(key, *klen);
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

static inline const uint8_t *rec_at(const sh_analyzer *a, uint32_t ref) {
    uint32_t r = ref - 1;
    return a->chunks[r >> CHUNK_BITS] + (r & (CHUNK_SIZE - 1));
}

/* Whether the padded keys at x and y, of key_pad(klen) bytes, are equal. */
static inline bool key_eq(const uint8_t *x, const uint8_t *y, size_t klen) {
    uint64_t x0, x1, y0, y1;
    memcpy(&x0, x, 8);
    memcpy(&x1, x + 8, 8);
    memcpy(&y0, y, 8);
    memcpy(&y1, y + 8, 8);
    if ((x0 ^ y0) | (x1 ^ y1)) return false;
    for (size_t i = SHORT_KEY; i < klen; i += 8) {
        memcpy(&x0, x + i, 8);
        memcpy(&y0, y + i, 8);
        if (x0 != y0) return false;
    }
    return true;
}

/* The record of key (padded) in mode, or NULL; then *empty receives the
 * free slot where the probe ended, where the key goes if inserted before
 * the table changes. */
static inline const uint8_t *cache_find(const sh_analyzer *a, uint64_t h, unsigned mode,
                                        const uint8_t *key, size_t klen, size_t *empty) {
    size_t mask = a->nslots - 1;
    uint32_t tag = (uint32_t)h;
    size_t i = tag & mask;
    for (;; i = (i + 1) & mask) {
        slot sl = a->slots[i];
        if (!sl.ref) break;
        if (sl.tag != tag) continue;
        const uint8_t *rec = rec_at(a, sl.ref);
        /* key length and mode in one compare: bytes 0 and 2 of the header */
        uint32_t hdr;
        memcpy(&hdr, rec, 4);
        if ((hdr & 0xff00ffu) == (klen | mode << 16) && key_eq(rec + REC_HEADER, key, klen))
            return rec;
    }
    *empty = i;
    return NULL;
}

static size_t cache_free_slot(const slot *slots, size_t nslots, uint32_t tag) {
    size_t mask = nslots - 1, i = tag & mask;
    while (slots[i].ref) i = (i + 1) & mask;
    return i;
}

static void cache_clear(sh_analyzer *a) {
    /* keep one chunk for reuse, free the rest */
    for (size_t c = 1; c < a->nchunks; c++) sh_free(a->chunks[c]);
    if (a->nchunks) a->nchunks = 1;
    a->used = 0;
    if (a->slots) memset(a->slots, 0, a->nslots * sizeof *a->slots);
    a->count = 0;
    a->arena_bytes = 0;
}

static int cache_grow(sh_analyzer *a) {
    size_t n = a->nslots ? a->nslots * 2 : CACHE_MIN_SLOTS;
    slot *s = sh_calloc(n, sizeof *s);
    if (!s) return SAHEL_ENOMEM;
    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i].ref) s[cache_free_slot(s, n, a->slots[i].tag)] = a->slots[i];
    sh_free(a->slots);
    a->slots = s;
    a->nslots = n;
    return 0;
}

/* Whether one more entry would take the table past its load bound, 3/4
 * (see the top of the file). */
static inline bool table_full(const sh_analyzer *a) { return (a->count + 1) * 4 > a->nslots * 3; }

/* Store key -> term; *rec_out receives the record.  at: the free slot
 * cache_find left for this key, valid while the table does not change. */
static int cache_insert(sh_analyzer *a, uint64_t h, size_t at, unsigned mode, const uint8_t *key,
                        size_t klen, const uint8_t *term, size_t tlen, const uint8_t **rec_out) {
    size_t kpad = key_pad(klen), need = REC_HEADER + kpad + tlen;
    bool moved = false; /* the table changed: find the free slot again */
    /* the chunks (allocated a megabyte at a time) and the table together
     * stay within max_bytes */
    size_t chunks_after = (a->nchunks + (!a->nchunks || CHUNK_SIZE - a->used < need)) * CHUNK_SIZE;
    size_t slots_after = (table_full(a) ? 2 * a->nslots : a->nslots) * sizeof(slot);
    if (a->count >= CACHE_MAX_ENTRIES || a->arena_bytes + need > CACHE_MAX_BYTES ||
        (a->count && chunks_after + slots_after > a->max_bytes)) {
        cache_clear(a);
        moved = true;
    }
    if (!a->nchunks || CHUNK_SIZE - a->used < need) {
        if (a->nchunks == CHUNK_MAX) {
            /* not reached while CHUNK_MAX covers the byte bound */
            cache_clear(a);
            moved = true;
        } else {
            uint8_t *c = sh_malloc(CHUNK_SIZE);
            if (!c) return SAHEL_ENOMEM;
            a->chunks[a->nchunks++] = c;
            a->used = 0;
        }
    }
    if (table_full(a)) {
        int rc = cache_grow(a);
        if (rc) return rc;
        moved = true;
    }
    uint32_t tag = (uint32_t)h;
    if (moved) at = cache_free_slot(a->slots, a->nslots, tag);
    size_t c = a->nchunks - 1;
    uint8_t *rec = a->chunks[c] + a->used;
    a->slots[at] = (slot){.tag = tag, .ref = (uint32_t)(1 + (c << CHUNK_BITS | a->used))};
    a->used += need;
    a->arena_bytes += need;
    a->count++;
    rec[0] = (uint8_t)klen;
    rec[1] = (uint8_t)tlen;
    rec[2] = (uint8_t)mode;
    memset(rec + REC_MEMO, 0, 8);
    memcpy(rec + REC_HEADER, key, kpad);
    memcpy(rec + REC_HEADER + kpad, term, tlen);
    *rec_out = rec;
    return 0;
}

/* ---- the pipeline ------------------------------------------------------- */

/* How a folded token is to be finished; for the cached kinds, kind - 1 is
 * the cache mode (stemmed or not). */
enum {
    FOLD_PLAIN = 0,  /* an ASCII token not to be stemmed: the folded key is the term */
    FOLD_CACHED = 1, /* looked up in the stem cache, not stemmed on a miss */
    FOLD_STEMMED = 2, /* looked up in the stem cache, stemmed on a miss */
};

/* Fold raw token s[0..n) (n <= SH_MAX_TERM_LEN, valid UTF-8) into key,
 * zero-padded; *klen receives its length.  Returns a FOLD_* kind or a
 * negative SAHEL_E* code.  An empty token is plain: it never reaches the
 * cache (nor its counters). */
static inline int fold(sh_analyzer *a, const uint8_t *s, size_t n, bool stem, uint8_t *key,
                       size_t *klen) {
    *klen = n;
    if (SH_LIKELY(!fold_ascii(key, s, n))) return stem && n ? FOLD_STEMMED : FOLD_PLAIN;
    int rc = fold_utf8(a, s, n, key, klen);
    return rc ? rc : stem ? FOLD_STEMMED : FOLD_CACHED;
}

/* The hash of a short key: its two words, each xor-ed with a constant,
 * multiplied into 128 bits, the halves xor-ed (the "mum" step of wyhash),
 * the seed mixed into one side.  About six instructions where XXH3's
 * 9-16 byte path took three times that, and perf put 8% of sh_analyze on
 * it; the table needs well-mixed low bits, not a hash for the outside
 * world.  Neither factor is ever zero for a key: the constants (from
 * wyhash) have a byte >= 0x80 after an ASCII byte, so no valid UTF-8 word
 * equals one, and the seed is below 2^9, so it cannot cancel the high
 * bytes of the second.  Keys longer than SHORT_KEY, rare, go through XXH3;
 * the seed has the length, so the two kinds never meet. */
#define MUM_K0 UINT64_C(0xa0761d6478bd642f)
#define MUM_K1 UINT64_C(0xe7037ed1a0b428db)
static inline uint64_t hash_short(const uint8_t *key, uint64_t seed) {
    uint64_t w0, w1;
    memcpy(&w0, key, 8);
    memcpy(&w1, key + 8, 8);
    unsigned __int128 p = (unsigned __int128)(w0 ^ MUM_K0) * (w1 ^ MUM_K1 ^ seed);
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/* The cache hash of a key: of its padded bytes, seeded with its length
 * and the cache mode (the padding hides the length; the mode keeps
 * NOSTEM lookups from ever seeing stemmed terms). */
static inline uint64_t key_hash(const uint8_t *key, size_t klen, unsigned mode) {
    uint64_t seed = (uint64_t)klen << 1 | mode;
    if (SH_LIKELY(klen <= SHORT_KEY)) return hash_short(key, seed);
    return XXH3_64bits_withSeed(key, klen, seed);
}

/* A miss: stem (mode 1) or not, strip, cache.  Out of line, so that the
 * hit path around its call stays small. */
static __attribute__((noinline)) int make_record(sh_analyzer *a, const uint8_t *key, size_t klen,
                                                 uint64_t h, size_t at, unsigned mode,
                                                 const uint8_t **rec_out) {
    a->misses++;
    const uint8_t *t = key;
    size_t tlen = klen;
    if (mode) {
        t = sb_stemmer_stem(a->stemmer, key, (int)klen);
        if (!t) return SAHEL_ENOMEM;
        tlen = (size_t)sb_stemmer_length(a->stemmer);
    }
    if (!is_ascii(t, tlen)) {
        int rc = strip_utf8(a, t, tlen, &t, &tlen);
        if (rc) return rc;
    }
    tlen = utf8_cut(t, tlen, SH_MAX_TERM_LEN);
    return cache_insert(a, h, at, mode, key, klen, t, tlen, rec_out);
}

/* The cached record of key (klen bytes, padded; h its key_hash), made on
 * a miss. */
static inline int lookup(sh_analyzer *a, const uint8_t *key, size_t klen, uint64_t h,
                         unsigned mode, const uint8_t **rec_out) {
    size_t at = 0;
    const uint8_t *rec = cache_find(a, h, mode, key, klen, &at);
    if (SH_UNLIKELY(!rec)) return make_record(a, key, klen, h, at, mode, rec_out);
    a->hits++;
    *rec_out = rec;
    return 0;
}

/* The term of a record, and its memo.  Records are never moved or written
 * while cached: the memo is the caller's until the cache is cleared. */
static inline void rec_term(const uint8_t *rec, const uint8_t **out, size_t *out_len,
                            uint8_t **memo) {
    *out = rec + REC_HEADER + key_pad(rec[0]);
    *out_len = rec[1];
    *memo = (uint8_t *)(uintptr_t)(rec + REC_MEMO);
}

/* Normalise one raw token s[0..n) (n <= SH_MAX_TERM_LEN, valid UTF-8),
 * for sh_analyzer_term.  The result points into a->key or the cache. */
static int normalise(sh_analyzer *a, const uint8_t *s, size_t n, bool stem, const uint8_t **out,
                     size_t *out_len, uint8_t **memo) {
    *memo = NULL;
    size_t klen;
    int kind = fold(a, s, n, stem, a->key, &klen);
    if (kind < 0) return kind;
    if (kind == FOLD_PLAIN || !klen) {
        *out = a->key;
        *out_len = klen;
        return 0;
    }
    unsigned mode = (unsigned)kind - 1;
    const uint8_t *rec;
    int rc = lookup(a, a->key, klen, key_hash(a->key, klen, mode), mode, &rec);
    if (rc) return rc;
    rec_term(rec, out, out_len, memo);
    return 0;
}

/* sh_analyze is a pipeline over each of the tokenizer's batches
 * (sh_tokenize_batch), in two passes: every token of the batch is folded
 * and hashed, and the cache slot it will probe is prefetched; then every
 * token is looked up and handed to the caller.  So the slot misses of a
 * batch (the table of a news vocabulary outgrows L2) overlap each other
 * and the folding instead of stalling the lookups, and each pass is a
 * short loop.  Measured on Reuters-21578 against what this replaced (a
 * ring carrying the pipeline across batches a token at a time, prefetching
 * the record too): the ring's bookkeeping cost more than its prefetches
 * saved, and a pass prefetching the records of the batch, between these
 * two, made it slower, not faster.  Tokens go out in order, each looked
 * up just before its callback exactly as one at a time would be; the
 * passes keep keys and hashes, never records, so whatever the caller does
 * to the cache in a callback (sh_analyzer_term, a clear) leaves no stale
 * pointer, and a prefetch of a slot that has changed since is wasted, not
 * wrong.  Folding ahead of the callbacks is safe too: the keys are the
 * batch's own (bkeys), whatever a callback does to the analyzer's
 * scratch.  A callback that stops the scan stops it at its token, which
 * the tokenizer counts as the last position used (*stop). */

static int analyze_batch(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    sh_analyzer *a = ctx;
    const bool stem_on = a->stem;
    const slot *slots = a->slots;
    const size_t mask = a->nslots - 1;
    size_t nfolded = n; /* tokens folded: all, or those before a failed fold */
    int fold_rc = 0;
    for (size_t j = 0; j < n; j++) {
        uint8_t *key = a->bkeys[j];
        const uint8_t *term = (const uint8_t *)toks[j].term;
        size_t klen = toks[j].term_len; /* >= 1: the tokenizer makes no empty terms */
        bool stem = stem_on && !(toks[j].flags & SH_TOK_NUMERIC);
        int kind = stem ? FOLD_STEMMED : FOLD_PLAIN;
        if (SH_UNLIKELY(fold_ascii(key, term, klen))) {
            fold_rc = fold_utf8(a, term, klen, key, &klen);
            if (fold_rc) {
                /* the tokens before this one go out first, as they would have */
                nfolded = j;
                break;
            }
            kind = stem ? FOLD_STEMMED : FOLD_CACHED;
        }
        uint64_t h = 0;
        if (kind != FOLD_PLAIN) {
            h = key_hash(key, klen, (unsigned)kind - 1);
            __builtin_prefetch(&slots[h & mask]);
        }
        a->bhash[j] = h;
        a->bklen[j] = (uint32_t)klen;
        a->bkind[j] = (uint8_t)kind;
    }
    for (size_t j = 0; j < nfolded; j++) {
        const uint8_t *t = a->bkeys[j];
        size_t tlen = a->bklen[j];
        uint8_t *memo = NULL;
        int rc;
        if (a->bkind[j] != FOLD_PLAIN) {
            const uint8_t *rec;
            rc = lookup(a, t, tlen, a->bhash[j], (unsigned)a->bkind[j] - 1, &rec);
            if (rc) {
                *stop = j;
                return rc;
            }
            rec_term(rec, &t, &tlen, &memo);
        }
        if (!tlen) continue;
        sh_token out = toks[j];
        out.term = (const char *)t;
        out.term_len = (uint32_t)tlen;
        out.memo = memo;
        rc = a->fn(a->ctx, &out);
        if (rc) {
            *stop = j;
            return rc;
        }
    }
    *stop = nfolded;
    return fold_rc;
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
    a->max_bytes = SIZE_MAX;
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
    /* the table exists from the start: lookups need not check for it */
    if (cache_grow(a)) goto fail_free;
    *out = a;
    return 0;

fail_free:
    sh_analyzer_free(a);
fail_nomem:
    return sh_err(err, SAHEL_ENOMEM, "analyzer: out of memory creating the \"%s\" analyzer", lang);
}

void sh_analyzer_set_cache_limit(sh_analyzer *a, size_t bytes) {
    /* two chunks at least: below that the cache would empty itself every
     * few thousand words */
    a->max_bytes = SH_MAX(bytes, 2 * CHUNK_SIZE);
}

size_t sh_analyzer_memory(const sh_analyzer *a) {
    return sizeof *a + a->nchunks * CHUNK_SIZE + a->nslots * sizeof(slot) +
           a->ncps * sizeof *a->cps;
}

void sh_analyzer_free(sh_analyzer *a) {
    if (!a) return;
    for (size_t c = 0; c < a->nchunks; c++) sh_free(a->chunks[c]);
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
    a->stem = a->stemmer && !(flags & SH_ANALYZE_NOSTEM);
    return sh_tokenize_batch(text, len, first_pos, analyze_batch, a, npos);
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
