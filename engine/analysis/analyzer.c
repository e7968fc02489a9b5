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
 *   stem   Snowball, skipped for SH_ANALYZE_NOSTEM, for the language
 *          "none" and for tokens with a digit.  A pure ASCII key goes to
 *          the language's ISO-8859-1 stemmer where libstemmer has one (the
 *          Latin-script languages), any other to its UTF-8 one.  ASCII is
 *          the same bytes in both encodings and both stemmers are made
 *          from one Snowball source, so they give the same stems (checked
 *          for every such language on 10^6 random ASCII words and on
 *          Reuters-21578's vocabulary); the byte-wide one skips decoding
 *          UTF-8 and took a sixth less time a word on that vocabulary.
 *   strip  canonical decomposition, combining diacritics dropped, NFC again
 *          (Goïta -> goita).  Only the diacritic blocks are dropped (Latin,
 *          Greek and Cyrillic combining marks, Hebrew points, Arabic
 *          harakat), not every M*: Indic vowel signs and the kana voicing
 *          marks are letters in all but name, and dropping them would merge
 *          unrelated words.  Pure ASCII skips it.
 *
 * Stem cache.  Stemming costs far more than tokenizing (about 200 ns a
 * word), and news text repeats a small vocabulary, so each distinct folded
 * form is stemmed once:
 *   - keys (folded forms) sit in key buffers zero-padded to key_pad(len)
 *     bytes: a multiple of 8, at least SHORT_KEY (16), so a short key,
 *     nearly every word, is folded, hashed and compared whole with no
 *     branch on its length (token lengths are random: such branches
 *     mispredict);
 *   - an open-addressing table (linear probing, load <= 3/4, power-of-two
 *     size, made with the analyzer) of 32-byte slots, two to a cache line,
 *     each a whole entry:
 *       u8[16] key | u32 ref | u8 klen | u8 mode | u8 tlen | u8 0 | u8[8] memo
 *     key: the key's first 16 bytes, zero-padded; ref: its record (below);
 *     klen: the key's length, 0 for an empty slot; mode: 1 stemmed, 0 not,
 *     so that NOSTEM lookups never see stemmed terms; tlen: the term's
 *     length; memo: the caller's 8 bytes (sh_token.memo), zero when the
 *     entry is made.  The home slot is key_hash & mask (key_hash: of the
 *     padded key, seeded with its length and mode).  A probe compares the
 *     16 key bytes (one SSE2 compare) and the klen and mode bytes; a key
 *     longer than 16 bytes also compares its tail in the record.  Mode
 *     bit MODE_SLOW keeps such keys, and terms that are empty, off the
 *     pipeline's fast path;
 *   - records, in an arena of CHUNK_SIZE chunks, hold the term and, for a
 *     key longer than 16 bytes, the rest of the key first, unpadded:
 *       u8[klen - 16, if klen > 16] key tail | u8[tlen] term
 *     A reference is chunk index << CHUNK_BITS | the term's offset.  Records
 *     are never moved nor written while cached, so a term stays where it
 *     is until the cache is cleared; slots move when the table grows
 *     (their keys are hashed again: a short key from its slot alone);
 *   - the table grows 4 times over while small, then 2 (table_next);
 *   - bounded: past TABLE_MAX_SLOTS * 3/4 entries, CACHE_MAX_BYTES of
 *     arena, or the caller's limit on chunks and table together, the
 *     cache is emptied and refills with the current vocabulary.
 * Why whole entries in the slots: a hit then reads one line, the one the
 * pipeline prefetched.  The layout before this one had 8-byte slots {u32
 * hash tag, u32 record reference} and the records {lengths, mode, memo,
 * key padded to 16 bytes, term} in the arena, 2.1 MB in all for
 * Reuters-21578's 47,000 forms (2 MB of table here), but a hit read the
 * slot and then the record, whose load waited on the slot's and was not
 * prefetched.  Measured on that corpus from an empty cache (cachegrind):
 * the lookups' L1 misses fell from 2.6M to 1.1M a pass, their misses of a
 * 1 MiB L2 from 172,000 to 145,000, and the analyzer's own instructions
 * (tokenizer and stemmer aside) from 138 to 104 a token.  Tried and
 * dropped: stemming the misses of a batch back to back (their slots made
 * ahead of their tokens), so that the stemmer's tables and branch history
 * stay warm: a stem costs about 330 ns between lookups against 190 ns in
 * a row, but too few misses share a batch, and the extra probes cost more
 * than it saved (5% slower); prefetching the slots to L2 only
 * (prefetcht1), to spare the stemmer's lines in L1: a fifth slower.
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
 * to SH_MAX_TERM_LEN at a character boundary; the table is never full (an
 * empty slot ends every probe).
 */
#include <stddef.h>

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

/* Arena chunk: records are a term (7 bytes on average in news text), so
 * one chunk holds the vocabulary of a large corpus. */
#define CHUNK_BITS 20
#define CHUNK_SIZE ((size_t)1 << CHUNK_BITS)
/* Bounds of the cache: 786,432 distinct forms (3/4 of 2^20 slots) is
 * more than a year of news vocabulary, and 32 MiB of table plus 64 MiB of
 * records is an acceptable ceiling for an indexing process. */
#define TABLE_MAX_SLOTS ((size_t)1 << 20)
#define CACHE_MAX_BYTES ((size_t)64 << 20)
/* The first table: 2 KiB, for an analyzer that sees a query or two (a
 * whole sahelsearch run): one of 128 KiB was zeroed page by page, 32
 * page faults, a seventh of those of a one-shot search on the 1 GB
 * generated corpus.  An indexing analyzer quadruples it three more times
 * than it used to, rehashing under 3,100 entries in all (table_next). */
#define CACHE_MIN_SLOTS ((size_t)1 << 6)
#define GROW4_SLOTS ((size_t)1 << 16)
/* The smallest table sh_analyzer_cap_table makes: room for a probe to
 * wrap around, with a few entries. */
#define TABLE_TINY_SLOTS ((size_t)16)
/* Chunks the arena can hold before the byte bound clears it: each chunk
 * but the last is filled to within one record (REC_MAX bytes) of its size,
 * so CACHE_MAX_BYTES / (CHUNK_SIZE - REC_MAX) + 1 = 65 of them; the table
 * of chunks has room for a few more, and cache_insert checks it anyway. */
#define CHUNK_MAX 72
#define REC_MAX (2 * SH_MAX_TERM_LEN)
/* Slots are aligned to a cache line (64 bytes on every x86-64 and the
 * usual arm64), so that no slot straddles two. */
#define LINE 64

/* utf8proc options: fold = full case folding then NFC; decomposition for
 * the strip step = canonical (NFD), recomposed to NFC afterwards.  STABLE
 * keeps results stable across Unicode versions, as indexes outlive them. */
#define FOLD_OPTS (UTF8PROC_CASEFOLD | UTF8PROC_COMPOSE | UTF8PROC_STABLE)
#define NFC_OPTS (UTF8PROC_COMPOSE | UTF8PROC_STABLE)

/* A slot of the stem cache: one entry (see the top of the file). */
typedef struct slot {
    uint8_t key[16];
    uint32_t ref;
    uint8_t klen; /* 0: the slot is empty */
    uint8_t mode;
    uint8_t tlen;
    uint8_t spare; /* 0 */
    uint8_t memo[8];
} slot;

_Static_assert(sizeof(slot) == 32 && LINE % sizeof(slot) == 0,
               "slots are 32 bytes, two to an aligned line");
_Static_assert(offsetof(slot, mode) == offsetof(slot, klen) + 1,
               "klen and mode are compared as one 16-bit word");

struct sh_analyzer {
    char *lang;
    struct sb_stemmer *stemmer; /* UTF-8; NULL for "none" */
    struct sb_stemmer *latin1;  /* ISO-8859-1, for ASCII keys; NULL when libstemmer has none */

    slot *slots;     /* nslots, LINE-aligned inside slots_mem */
    void *slots_mem;
    size_t nslots, mask, count; /* mask: nslots - 1 */
    size_t max_slots;           /* the table grows up to this */
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

    /* the caller of sh_analyze, for the token callback; or of
     * sh_analyze_batched, for the batch callback (bfn not NULL) and the
     * tokens it gets: bout, their indexes in the batch in bidx */
    sh_token_fn fn;
    sh_tokens_fn bfn;
    void *ctx;
    sh_token bout[SH_TOKEN_BATCH];
    uint8_t bidx[SH_TOKEN_BATCH];
    bool stem; /* stemming on for this sh_analyze: a stemmer, no NOSTEM */
    /* the batch in sh_analyze (see "the pipeline"): each token's folded
     * key (zero-padded), cache hash, key length and FOLD_* kind */
    uint8_t bkeys[SH_TOKEN_BATCH][SH_MAX_TERM_LEN];
    uint64_t bhash[SH_TOKEN_BATCH];
    uint16_t bmeta[SH_TOKEN_BATCH]; /* key length | FOLD_* kind << 8 */
};

_Static_assert(SH_MAX_TERM_LEN % 8 == 0 && SH_MAX_TERM_LEN < 256,
               "keys are padded to 8-byte words in a buffer of SH_MAX_TERM_LEN bytes, "
               "and a slot's lengths are one byte");

/* Bytes a key takes in a key buffer: a multiple of 8, at
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

/* Whether s[0..n) is ASCII, 8 bytes at a time: a byte loop cost a
 * mispredicted exit and a dozen instructions for each miss of the cache. */
static bool is_ascii(const uint8_t *s, size_t n) {
    uint64_t hi = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        hi |= w;
    }
    for (; i < n; i++) hi |= s[i];
    return !(hi & BYTES(0x80));
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

/* ---- hashing ------------------------------------------------------------ */

/* The hash of a short key: its two words, each xor-ed with a constant,
 * multiplied into 128 bits, the halves xor-ed (the "mum" step of wyhash),
 * the seed mixed into one side.  About six instructions where XXH3's
 * 9-16 byte path took three times that, and perf put 8% of sh_analyze on
 * it; the table needs well-mixed low bits, not a hash for the outside
 * world.  Neither factor is ever zero for a key: the constants (from
 * wyhash) have a byte >= 0x80 after an ASCII byte, so no valid UTF-8 word
 * equals one, and the seed is below 2^9, so it cannot cancel the high
 * bytes of the second.  Keys longer than SHORT_KEY, rare, go through XXH3;
 * the seed has the length, so the two kinds never meet.  Two CRC32C
 * steps (SSE4.2, as the release preset allows) made the whole analysis
 * 6% slower on Reuters-21578. */
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

/* ---- stem cache --------------------------------------------------------- */

_Static_assert(sizeof(((slot *)NULL)->key) == SHORT_KEY, "a slot holds a short key whole");

/* Where a reference points: a term, after its key's tail if any. */
static inline uint8_t *rec_at(const sh_analyzer *a, uint32_t ref) {
    return a->chunks[ref >> CHUNK_BITS] + (ref & (CHUNK_SIZE - 1));
}

/* Whether the SHORT_KEY bytes at x and y are equal. */
static inline bool key16_eq(const uint8_t *x, const uint8_t *y) {
#if defined(__SSE2__)
    __m128i vx = _mm_loadu_si128((const __m128i *)(const void *)x);
    __m128i vy = _mm_loadu_si128((const __m128i *)(const void *)y);
    return _mm_movemask_epi8(_mm_cmpeq_epi8(vx, vy)) == 0xffff;
#else
    uint64_t x0, x1, y0, y1;
    memcpy(&x0, x, 8);
    memcpy(&x1, x + 8, 8);
    memcpy(&y0, y, 8);
    memcpy(&y1, y + 8, 8);
    return !((x0 ^ y0) | (x1 ^ y1));
#endif
}

/* A slot's klen and mode bytes as one word, to compare with a key's. */
static inline unsigned slot_klen_mode(const slot *s) { return s->klen | (unsigned)s->mode << 8; }

/* A bit of a slot's mode byte: the entry is not for the pipeline's fast
 * path, which compares the 16 key bytes, klen and mode and hands the
 * term out: its key is longer than 16 bytes (its tail is to compare) or
 * its term is empty (not to hand out).  Lookups mask it off. */
#define MODE_SLOW 2u

/* The slot of key (padded, klen bytes; h its key_hash) in mode, or NULL;
 * then *empty receives the empty slot where the probe ended, where the
 * key goes if inserted before the table changes.  A key of up to
 * SHORT_KEY bytes is told from another by its padded bytes and length
 * (the length too: a key may end in zero bytes, from sh_analyzer_term). */
static inline slot *cache_find(const sh_analyzer *a, uint64_t h, unsigned mode, const uint8_t *key,
                               size_t klen, size_t *empty) {
    size_t mask = a->nslots - 1, i = (size_t)h & mask;
    unsigned want = (unsigned)klen | mode << 8;
    for (;; i = (i + 1) & mask) {
        slot *s = &a->slots[i];
        if (key16_eq(s->key, key) && (slot_klen_mode(s) & ~(MODE_SLOW << 8)) == want &&
            (klen <= SHORT_KEY || memcmp(rec_at(a, s->ref) - (klen - SHORT_KEY),
                                         key + SHORT_KEY, klen - SHORT_KEY) == 0))
            return s;
        if (!s->klen) break;
    }
    *empty = i;
    return NULL;
}

/* The cache hash of a slot's key, to move it to a new table: a short key
 * is whole in the slot, a longer one ends in its record. */
static uint64_t slot_hash(const sh_analyzer *a, const slot *s) {
    size_t klen = s->klen;
    unsigned mode = s->mode & ~MODE_SLOW;
    if (klen <= SHORT_KEY) return key_hash(s->key, klen, mode);
    uint8_t key[SH_MAX_TERM_LEN];
    memcpy(key, s->key, SHORT_KEY);
    memcpy(key + SHORT_KEY, rec_at(a, s->ref) - (klen - SHORT_KEY), klen - SHORT_KEY);
    return key_hash(key, klen, mode);
}

/* The empty slot where a key of hash h goes in slots[0..mask]. */
static size_t free_slot(const slot *slots, size_t mask, uint64_t h) {
    size_t i = (size_t)h & mask;
    while (slots[i].klen) i = (i + 1) & mask;
    return i;
}

/* Move the cache's entries to a new table of n slots (a power of two,
 * more than 4/3 of the entries).  On failure the old table stays. */
static int table_resize(sh_analyzer *a, size_t n) {
    /* a LINE-aligned block, so that no slot straddles two lines */
    uint8_t *mem = sh_calloc(n * sizeof(slot) + LINE - 1, 1);
    if (!mem) return SAHEL_ENOMEM;
    slot *s = (slot *)(void *)(mem + (-(uintptr_t)mem & (LINE - 1)));
    for (size_t i = 0; i < a->nslots; i++)
        if (a->slots[i].klen) s[free_slot(s, n - 1, slot_hash(a, &a->slots[i]))] = a->slots[i];
    sh_free(a->slots_mem);
    a->slots_mem = mem;
    a->slots = s;
    a->nslots = n;
    a->mask = n - 1;
    return 0;
}

static void cache_clear(sh_analyzer *a) {
    /* keep one chunk for reuse, free the rest */
    for (size_t c = 1; c < a->nchunks; c++) sh_free(a->chunks[c]);
    if (a->nchunks) a->nchunks = 1;
    a->used = 0;
    memset(a->slots, 0, a->nslots * sizeof *a->slots);
    a->count = 0;
    a->arena_bytes = 0;
}

/* Whether one more entry would take the table past its load bound, 3/4:
 * with whole entries in the slots, a longer probe reads the next slot,
 * most often in the same or the next line, which the hardware fetches
 * along. */
static inline bool table_full(const sh_analyzer *a) { return (a->count + 1) * 4 > a->nslots * 3; }

/* The size the full table grows to, with chunks_after bytes of chunks,
 * or 0 when it may not grow (the cache is to be emptied instead): 4
 * times over while it is below GROW4_SLOTS, else (or when that would
 * pass the caller's limit) 2, within max_slots and max_bytes.  Every
 * growth allocates a new table and touches all of it (sh_calloc zeroes
 * it), a page fault for every 4 KiB (2.3 us each on the benchmark
 * machine), and rehashes every entry; quadrupling the small tables halves
 * their number, for at most 2 MiB of table (GROW4_SLOTS slots) where
 * doubling would have stopped at half that. */
static size_t table_next(const sh_analyzer *a, size_t chunks_after) {
    size_t n = a->nslots;
    for (size_t next = n < GROW4_SLOTS ? 4 * n : 2 * n; next > n; next /= 2)
        if (next <= a->max_slots && chunks_after + next * sizeof(slot) <= a->max_bytes)
            return next;
    return 0;
}

/* Whether the last chunk has room for a record of need bytes.  A record
 * never ends a chunk exactly, so that the offset of its term, even an
 * empty one, stays below CHUNK_SIZE. */
static inline bool chunk_fits(const sh_analyzer *a, size_t need) {
    return a->nchunks && CHUNK_SIZE - a->used > need;
}

/* Store key -> term; *out receives its slot.  at: the empty slot
 * cache_find left for this key, valid while the table does not change. */
static int cache_insert(sh_analyzer *a, uint64_t h, size_t at, unsigned mode, const uint8_t *key,
                        size_t klen, const uint8_t *term, size_t tlen, slot **out) {
    size_t tail = klen > SHORT_KEY ? klen - SHORT_KEY : 0, need = tail + tlen;
    bool moved = false; /* the table changed: find the empty slot again */
    /* the chunks (allocated a megabyte at a time) and the table together
     * stay within max_bytes */
    size_t chunks_after = (a->nchunks + !chunk_fits(a, need)) * CHUNK_SIZE;
    size_t grow_to = table_full(a) ? table_next(a, chunks_after) : 0;
    if ((table_full(a) && !grow_to) || a->arena_bytes + need > CACHE_MAX_BYTES ||
        (a->count && chunks_after + a->nslots * sizeof(slot) > a->max_bytes)) {
        cache_clear(a);
        moved = true;
    }
    if (!chunk_fits(a, need)) {
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
        /* not cleared, so it may grow to grow_to */
        int rc = table_resize(a, grow_to);
        if (rc) return rc;
        moved = true;
    }
    if (moved) at = free_slot(a->slots, a->nslots - 1, h);
    size_t c = a->nchunks - 1;
    uint8_t *rec = a->chunks[c] + a->used;
    if (tail) memcpy(rec, key + SHORT_KEY, tail);
    memcpy(rec + tail, term, tlen);
    slot *s = &a->slots[at];
    memcpy(s->key, key, SHORT_KEY);
    s->ref = (uint32_t)(c << CHUNK_BITS | (a->used + tail));
    s->klen = (uint8_t)klen;
    s->mode = (uint8_t)(mode | (klen > SHORT_KEY || !tlen ? MODE_SLOW : 0));
    s->tlen = (uint8_t)tlen;
    s->spare = 0;
    memset(s->memo, 0, sizeof s->memo);
    a->used += need;
    a->arena_bytes += need;
    a->count++;
    *out = s;
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

/* Stem key (klen bytes, padded) into the stemmer's buffer.  An ASCII
 * key goes to the ISO-8859-1 stemmer when there is one (see the top of
 * the file); should that ever answer with a byte >= 0x80, a Latin-1
 * byte, the UTF-8 stemmer stems the key again, so that terms are always
 * UTF-8. */
static int stem_key(sh_analyzer *a, const uint8_t *key, size_t klen, const uint8_t **out,
                    size_t *out_len) {
    if (a->latin1 && is_ascii(key, key_pad(klen))) {
        const uint8_t *t = sb_stemmer_stem(a->latin1, key, (int)klen);
        if (!t) return SAHEL_ENOMEM;
        size_t tlen = (size_t)sb_stemmer_length(a->latin1);
        if (SH_LIKELY(is_ascii(t, tlen))) {
            *out = t;
            *out_len = tlen;
            return 0;
        }
    }
    const uint8_t *t = sb_stemmer_stem(a->stemmer, key, (int)klen);
    if (!t) return SAHEL_ENOMEM;
    *out = t;
    *out_len = (size_t)sb_stemmer_length(a->stemmer);
    return 0;
}

/* A miss: stem (mode 1) or not, strip, cache.  Out of line, so that the
 * hit path around its call stays small. */
static __attribute__((noinline)) int make_record(sh_analyzer *a, const uint8_t *key, size_t klen,
                                                 uint64_t h, size_t at, unsigned mode,
                                                 slot **out) {
    a->misses++;
    const uint8_t *t = key;
    size_t tlen = klen;
    if (mode) {
        int rc = stem_key(a, key, klen, &t, &tlen);
        if (rc) return rc;
    }
    if (!is_ascii(t, tlen)) {
        int rc = strip_utf8(a, t, tlen, &t, &tlen);
        if (rc) return rc;
    }
    tlen = utf8_cut(t, tlen, SH_MAX_TERM_LEN);
    return cache_insert(a, h, at, mode, key, klen, t, tlen, out);
}

/* The cache slot of key (klen bytes, padded; h its key_hash), made on a
 * miss. */
static inline int lookup(sh_analyzer *a, const uint8_t *key, size_t klen, uint64_t h,
                         unsigned mode, slot **out) {
    size_t at = 0;
    slot *s = cache_find(a, h, mode, key, klen, &at);
    if (SH_UNLIKELY(!s)) return make_record(a, key, klen, h, at, mode, out);
    a->hits++;
    *out = s;
    return 0;
}

/* The term of a slot, and its memo.  The memo moves with the slot, so it
 * is the caller's until the cache is cleared, but its address holds only
 * until the table next changes. */
static inline void slot_term(const sh_analyzer *a, slot *s, const uint8_t **out, size_t *out_len,
                             uint8_t **memo) {
    *out = rec_at(a, s->ref);
    *out_len = s->tlen;
    *memo = s->memo;
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
    slot *sl;
    int rc = lookup(a, a->key, klen, key_hash(a->key, klen, mode), mode, &sl);
    if (rc) return rc;
    slot_term(a, sl, out, out_len, memo);
    return 0;
}

/* sh_analyze is a pipeline over each of the tokenizer's batches
 * (sh_tokenize_batch), in two passes: every token of the batch is folded
 * and hashed, and the cache slot it will probe is prefetched; then every
 * token is looked up and handed to the caller.  A slot is a whole entry,
 * so that prefetch is all a hit reads, and the misses of a batch overlap
 * each other and the folding instead of stalling the lookups.  The second
 * pass settles a short key found in its home slot inline, 19 hits in
 * 20 on news text (the slot's 16 key bytes and its klen and mode word
 * against the key's), and leaves the rest to lookup_rare.  Tokens go
 * out in order, each looked up just before its callback exactly as one at
 * a time would be; the passes keep keys and hashes, never slots, so
 * whatever the caller does to the cache in a callback (sh_analyzer_term,
 * which may grow or clear it) leaves no stale pointer, and a prefetch of
 * a slot that has moved since is wasted, not wrong.  Folding ahead of the
 * callbacks is safe too: the keys are the batch's own (bkeys), whatever a
 * callback does to the analyzer's scratch.  A callback that stops the
 * scan stops it at its token, which the tokenizer counts as the last
 * position used (*stop). */

/* Fold a token that is not a short ASCII one (longer than SHORT_KEY, or
 * with a byte >= 0x80) of kind FOLD_PLAIN or FOLD_STEMMED into key.
 * Returns the key's length | its kind << 8 (a non-ASCII token that is
 * not to be stemmed is FOLD_CACHED), or a negative SAHEL_E* code.  Out of
 * line: about one token in a hundred in news text. */
static __attribute__((noinline)) int fold_rare(sh_analyzer *a, const uint8_t *term, size_t n,
                                               uint8_t *key, unsigned kind) {
    if (!fold_ascii(key, term, n)) return (int)(n | kind << 8);
    size_t klen;
    int rc = fold_utf8(a, term, n, key, &klen);
    if (rc) return rc;
    return (int)(klen | (kind == FOLD_PLAIN ? FOLD_CACHED : kind) << 8);
}

/* The slot of a key of the batch, as lookup() finds or makes it, when
 * the key is not a short one in its home slot.  Out of line, so that the
 * pipeline's loop stays small. */
static __attribute__((noinline)) int lookup_rare(sh_analyzer *a, const uint8_t *key, size_t klen,
                                                 uint64_t h, unsigned mode, uint64_t *hits,
                                                 slot **out) {
    size_t at = 0;
    slot *s = cache_find(a, h, mode, key, klen, &at);
    if (!s) return make_record(a, key, klen, h, at, mode, out);
    ++*hits;
    *out = s;
    return 0;
}

/* Hand the *m tokens gathered for a batch callback to it.  On a stop,
 * *j becomes the batch index of the token that stopped it. */
static int deliver(sh_analyzer *a, size_t *m, size_t *j) {
    size_t st = 0;
    int rc = a->bfn(a->ctx, a->bout, *m, &st);
    if (rc) *j = a->bidx[st < *m ? st : *m - 1];
    *m = 0;
    return rc;
}

static int analyze_batch(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    sh_analyzer *a = ctx;
    const unsigned stem_kind = a->stem ? FOLD_STEMMED : FOLD_PLAIN;
    const slot *slots = a->slots;
    const size_t mask = a->mask;
    size_t nfolded = n; /* tokens folded: all, or those before a failed fold */
    int rc = 0;
    for (size_t j = 0; j < n; j++) {
        uint8_t *key = a->bkeys[j];
        const uint8_t *term = (const uint8_t *)toks[j].term;
        size_t klen = toks[j].term_len; /* >= 1: the tokenizer makes no empty terms */
        unsigned kind = toks[j].flags & SH_TOK_NUMERIC ? FOLD_PLAIN : stem_kind;
        if (SH_UNLIKELY(klen > SHORT_KEY || fold_ascii(key, term, klen))) {
            int r = fold_rare(a, term, klen, key, kind);
            if (r < 0) {
                /* the tokens before this one go out first, as they would have */
                rc = r;
                nfolded = j;
                break;
            }
            klen = (size_t)r & 0xff;
            kind = (unsigned)r >> 8;
        }
        /* plain tokens are hashed too, and their slot prefetched in vain:
         * a branch on the kind mispredicted at every number */
        uint64_t h = key_hash(key, klen, (kind - 1) & 1);
        __builtin_prefetch(&slots[h & mask]);
        a->bhash[j] = h;
        a->bmeta[j] = (uint16_t)(klen | kind << 8);
    }
    int fold_rc = rc;
    rc = 0;
    uint64_t hits = 0;
    size_t j = 0, m = 0; /* m: tokens gathered for a batch callback */
    for (; j < nfolded; j++) {
        unsigned meta = a->bmeta[j];
        const char *term;
        uint32_t tlen;
        uint8_t *memo;
        if (meta >> 8 == FOLD_PLAIN) {
            term = (const char *)a->bkeys[j];
            tlen = meta & 0xff;
            memo = NULL;
        } else {
            slot *s = &a->slots[a->bhash[j] & a->mask];
            /* klen | mode << 8 is meta - 1 << 8; a slot marked MODE_SLOW
             * never passes */
            if (SH_LIKELY(key16_eq(s->key, a->bkeys[j]) && slot_klen_mode(s) == meta - (1u << 8))) {
                hits++;
            } else {
                /* a lookup may move or drop the entries the gathered
                 * tokens point into: they go out first */
                if (m && (rc = deliver(a, &m, &j))) break;
                if ((rc = lookup_rare(a, a->bkeys[j], meta & 0xff, a->bhash[j], (meta >> 8) - 1,
                                      &hits, &s)))
                    break;
                if (!s->tlen) continue;
            }
            term = (const char *)rec_at(a, s->ref);
            tlen = s->tlen;
            memo = s->memo;
        }
        /* the token is written where it goes, field by field: a whole
         * token built on the stack and copied is read back before its
         * narrow stores have landed, a stall of its own on every token */
        sh_token one, *out = a->bfn ? &a->bout[m] : &one;
        *out = toks[j];
        out->term = term;
        out->term_len = tlen;
        out->memo = memo;
        if (a->bfn)
            a->bidx[m++] = (uint8_t)j;
        else if ((rc = a->fn(a->ctx, out)))
            break;
    }
    if (!rc && m) rc = deliver(a, &m, &j);
    a->hits += hits;
    *stop = j;
    return rc ? rc : fold_rc;
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
    a->max_slots = TABLE_MAX_SLOTS;
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
        /* NULL when the language has no ISO-8859-1 stemmer (or it could
         * not be made): ASCII keys then go to the UTF-8 one, same stems */
        a->latin1 = sb_stemmer_new(lang, "ISO_8859_1");
    }
    /* room for a token of SH_MAX_TERM_LEN one-byte characters, each folded
     * to up to 3 code points; decompose() grows it if ever needed */
    a->ncps = 4 * SH_MAX_TERM_LEN;
    a->cps = sh_calloc(a->ncps, sizeof *a->cps);
    if (!a->cps) goto fail_free;
    /* the table exists from the start: lookups need not check for it */
    if (table_resize(a, CACHE_MIN_SLOTS)) goto fail_free;
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

int sh_analyzer_cap_table(sh_analyzer *a, size_t nslots) {
    size_t n = TABLE_TINY_SLOTS;
    while (n < nslots && n < TABLE_MAX_SLOTS) n *= 2;
    cache_clear(a);
    if (n != a->nslots) {
        /* the cache is empty: nothing to move */
        int rc = table_resize(a, n);
        if (rc) return rc;
    }
    a->max_slots = n;
    return 0;
}

size_t sh_analyzer_memory(const sh_analyzer *a) {
    return sizeof *a + a->nchunks * CHUNK_SIZE + a->nslots * sizeof(slot) + LINE +
           a->ncps * sizeof *a->cps;
}

void sh_analyzer_free(sh_analyzer *a) {
    if (!a) return;
    for (size_t c = 0; c < a->nchunks; c++) sh_free(a->chunks[c]);
    sh_free(a->slots_mem);
    sh_free(a->cps);
    sb_stemmer_delete(a->stemmer);
    sb_stemmer_delete(a->latin1);
    sh_free(a->lang);
    sh_free(a);
}

const char *sh_analyzer_lang(const sh_analyzer *a) { return a->lang; }

int sh_analyze(sh_analyzer *a, const char *text, size_t len, uint32_t first_pos, unsigned flags,
               sh_token_fn fn, void *ctx, uint32_t *npos) {
    a->fn = fn;
    a->bfn = NULL;
    a->ctx = ctx;
    a->stem = a->stemmer && !(flags & SH_ANALYZE_NOSTEM);
    return sh_tokenize_batch(text, len, first_pos, analyze_batch, a, npos);
}

int sh_analyze_batched(sh_analyzer *a, const char *text, size_t len, uint32_t first_pos,
                       unsigned flags, sh_tokens_fn fn, void *ctx, uint32_t *npos) {
    a->fn = NULL;
    a->bfn = fn;
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
