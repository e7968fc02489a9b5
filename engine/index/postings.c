/*
 * postings.c - the postings codec and cursor.
 *
 * One term's postings in a segment (at TERMIDX.post_off in SEC_POSTINGS):
 *
 *   [skip table]   present only when the term has more than one block:
 *                  nblocks records of 32 bytes, little-endian:
 *                    u32 last_doc   last doc id of the block
 *                    u32 doc_off    byte offset of the block, counted from
 *                                   the end of the skip table
 *                    u64 pos_off    byte offset of the block's positions,
 *                                   counted from the term's pos_off
 *                    u32 max_tft    largest title frequency in the block
 *                    u32 max_tfb    largest body frequency in the block
 *                    u32 min_lent   smallest title length of its docs
 *                    u32 min_lenb   smallest body length of its docs
 *                  (the last four bound any BM25F score in the block,
 *                  whatever the weights: the block-max bound)
 *                    f32 max_x      the block impact: the largest BM25F
 *                                   x of its docs (search.c) at b = 0.75,
 *                                   title weight 3 and the segment's
 *                                   average lengths (META sums / ndocs),
 *                                   raised by 1e-6 and rounded up to an
 *                                   IEEE binary32, stored as its u32 bits
 *                  (format version 3: records of 36 bytes).  max_x bounds
 *                  the x of any doc of the block under other averages
 *                  and title weights too, once scaled by max(1, a / a0)
 *                  per field and max(1, w / 3): a norm 1 - b + b * len / a
 *                  shrinks by at most a0 / a when a grows from a0.  It is
 *                  tight where the four above are not: they may come
 *                  from four different docs, max_x comes from one.
 *   blocks         nblocks = ceil(df / 128); block j holds docs
 *                  [128j, min(128(j+1), df)).  A block of 128 docs is
 *                  bit-packed:
 *                    u8 wd, u8 wt, u8 wb     bit widths, each 0..32
 *                    16*wd bytes             128 doc gaps
 *                    16*wt bytes             128 title tfs
 *                    16*wb bytes             128 body tfs
 *                  a shorter (last) block is LEB128 varints, per doc:
 *                    gap, tft, tfb
 *                  gap = doc - prev - 1, prev = the previous doc of the
 *                  term (-1 before the first), so gaps are >= 0.
 *
 * A packed stream of 128 values of w bits (format version 2) uses eight
 * interleaved lanes, so that one 256-bit AVX2 register, or two SSE
 * registers, decode eight values with one shift and one mask: value i
 * is the (i / 8)-th value of lane i % 8.  Each lane is a stream of 16w
 * bits, value j at bits [j*w, (j+1)*w), LSB first, cut into 32-bit words;
 * word m of lane l is the little-endian u32 at byte 32m + 4l.  An odd w
 * leaves each lane a last half-word of 16 bits: those eight are u16 at
 * byte 32*(w/2) + 2l, so a stream is exactly 16w bytes whatever w.
 * Decoding the gaps folds in the prefix sum that turns them into doc ids.
 *
 * Positions (at TERMIDX.pos_off in SEC_POSITIONS), per doc in doc order:
 * its tft title positions then its tfb body positions, each run as LEB128
 * varints: the first absolute, the others as differences (>= 0: after
 * stemming, a hyphenated whole and its first part may share a term and a
 * position).  Phrase matching reads runs through sh_read_gaps (eight
 * bytes at a time where every gap in them takes one or two bytes: a
 * shuffle and a prefix sum, not a byte at a time), or, for many runs read
 * as one, sh_read_gaps_padded (whose eight-byte steps do not wait on each
 * other: it stores past the run and takes a varint cut by a step's start
 * as two pieces), and steps over the runs of docs it does not need with
 * sh_skip_varints (the varints' last bytes counted, 32 bytes at a time
 * with AVX2); all give what a plain LEB128 reader would, or report a run
 * it would not accept.
 *
 * The cursor decodes a block's doc ids when it enters the block, and its
 * tfs only when they are first asked for (most blocks an intersection or
 * a block-max query enters are left without scoring a doc); a single-
 * block term decodes everything at once, since its block is the one it
 * will ever hold.  advance() jumps over blocks with the skip table
 * (galloping, then binary search over last_doc) and finds the doc in the
 * block without branches on the data (sh_postings_seek_in_block).
 *
 * Invariants checked while decoding (damage -> SAHEL_ECORRUPT, never a
 * wild read): every byte read lies inside the term's range, bit widths
 * are at most 32, doc ids are strictly increasing and < ndocs, a skip
 * record's last_doc is its block's, tft + tfb >= 1 and no tf exceeds the
 * bytes left in the term's positions from its block's start (a position
 * takes at least one byte: this bounds what a caller allocates from a tf),
 * positions lie inside the term's range.  Damage found by the lazy tf
 * decode, which cannot return an error, reads as tfs of 0 and is reported
 * by the cursor's next call.
 */
#include <math.h>

#include "index.h"

/* The SIMD routines carry their own target attributes and are chosen at
 * run time, so they are there whatever -march the build uses. */
#if defined(__x86_64__) && defined(__GNUC__)
#define SH_X86 1
#include <immintrin.h>
#include <pthread.h>
#else
#define SH_X86 0
#endif

/* ---- which instruction set decodes ------------------------------------- */

static int best_isa(void) {
#if SH_X86
    return SH_CPU_AVX2() ? SH_ISA_AVX2 : SH_CPU_SSE41() ? SH_ISA_SSE41 : SH_ISA_SCALAR;
#else
    return SH_ISA_SCALAR;
#endif
}

/* -1 until first used; read and written with relaxed atomics so that
 * cursors in several threads may race to set it to the same value. */
static int g_isa = -1;

static inline int isa_now(void) {
    int v = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (SH_UNLIKELY(v < 0)) {
        v = best_isa();
        __atomic_store_n(&g_isa, v, __ATOMIC_RELAXED);
    }
    return v;
}

int sh_codec_isa(void) { return isa_now(); }

int sh_codec_set_isa(int isa) {
    int best = best_isa();
    if (isa < SH_ISA_SCALAR || isa > best) isa = best;
    __atomic_store_n(&g_isa, isa, __ATOMIC_RELAXED);
    return isa;
}

/* ---- bit packing: the eight-lane layout --------------------------------- */

unsigned sh_bits_needed(const uint32_t *v, size_t n) {
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= v[i];
    return acc ? 32u - (unsigned)__builtin_clz(acc) : 0u;
}

static inline uint32_t width_mask(unsigned w) {
    return w >= 32 ? UINT32_MAX : (uint32_t)((1ull << w) - 1);
}

size_t sh_bitpack128(const uint32_t *in, unsigned width, uint8_t *out) {
    if (width == 0) return 0;
    uint32_t mask = width_mask(width);
    for (unsigned l = 0; l < 8; l++) {
        uint64_t acc = 0;
        unsigned fill = 0, m = 0;
        for (unsigned j = 0; j < 16; j++) {
            acc |= (uint64_t)(in[8 * j + l] & mask) << fill;
            fill += width;
            if (fill >= 32) {
                sh_store_u32(out + 32 * m + 4 * l, (uint32_t)acc);
                acc >>= 32;
                fill -= 32;
                m++;
            }
        }
        if (fill) { /* odd width: the lane's last 16 bits */
            uint8_t h[2] = {(uint8_t)acc, (uint8_t)(acc >> 8)};
            memcpy(out + 32 * m + 2 * l, h, 2);
        }
    }
    return SH_PACKED_BYTES(width);
}

/* Word m of lane l of a stream of width w (the half-word tail of an odd
 * width reads as a word whose top 16 bits are 0). */
static inline uint32_t lane_word(const uint8_t *in, unsigned w, unsigned l, unsigned m) {
    return m < w / 2 ? sh_load_u32(in + 32 * m + 4 * l) : sh_load_u16(in + 32 * m + 2 * l);
}

static void unpack_scalar(const uint8_t *in, unsigned w, uint32_t *out) {
    if (w == 0) {
        memset(out, 0, SH_BLOCK * sizeof *out);
        return;
    }
    uint32_t mask = width_mask(w);
    for (unsigned l = 0; l < 8; l++) {
        uint64_t acc = 0;
        unsigned fill = 0, m = 0;
        for (unsigned j = 0; j < 16; j++) {
            if (fill < w) {
                acc |= (uint64_t)lane_word(in, w, l, m++) << fill;
                fill += 32;
            }
            out[8 * j + l] = (uint32_t)acc & mask;
            acc >>= w;
            fill -= w;
        }
    }
}

static void docs_scalar(const uint8_t *in, unsigned w, uint32_t prev, uint32_t *out) {
    unpack_scalar(in, w, out);
    for (unsigned i = 0; i < SH_BLOCK; i++) out[i] = prev += out[i] + 1;
}

#if SH_X86

/* The routines below are written once as always-inline bodies with the
 * width a parameter, then stamped out for every width 0..32 (SH_WIDTHS):
 * with W a constant and the 16 steps unrolled, every shift count, word
 * index and branch is known at compile time, so each instance is
 * straight-line code of loads, shifts, masks and stores. */
#define SH_AI static inline __attribute__((always_inline, target("sse4.1")))
#define SH_AI_AVX2 static inline __attribute__((always_inline, target("avx2")))

#define SH_WIDTHS(X)                                                                        \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)  \
    X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) X(24) X(25) X(26) X(27) X(28) X(29)   \
    X(30) X(31) X(32)

/* -- SSE4.1: lanes 0-3 in one register, 4-7 in another -- */

SH_AI void sse_word(const uint8_t *in, unsigned W, unsigned m, __m128i *lo, __m128i *hi) {
    if (m < W / 2) {
        *lo = _mm_loadu_si128((const __m128i *)(const void *)(in + 32 * m));
        *hi = _mm_loadu_si128((const __m128i *)(const void *)(in + 32 * m + 16));
    } else {
        __m128i t = _mm_loadu_si128((const __m128i *)(const void *)(in + 32 * m));
        *lo = _mm_cvtepu16_epi32(t);
        *hi = _mm_cvtepu16_epi32(_mm_srli_si128(t, 8));
    }
}

/* Unpack 128 values of W bits; with delta, turn them from gaps into doc
 * ids after `prev` (each doc = the one before + gap + 1). */
SH_AI void sse_unpack(const uint8_t *in, uint32_t *out, const unsigned W, const int delta,
                      uint32_t prev) {
    const __m128i mask = _mm_set1_epi32((int)width_mask(W));
    const __m128i c1234 = _mm_setr_epi32(1, 2, 3, 4), c4 = _mm_set1_epi32(4),
                  c8 = _mm_set1_epi32(8);
    __m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128();
    __m128i base = _mm_set1_epi32((int)prev);
    if (W) sse_word(in, W, 0, &lo, &hi);
#pragma GCC unroll 16
    for (unsigned j = 0; j < 16; j++) {
        const unsigned bit = j * W, m = bit / 32, s = bit % 32;
        __m128i vlo = _mm_setzero_si128(), vhi = _mm_setzero_si128();
        if (W) {
            vlo = s ? _mm_srli_epi32(lo, (int)s) : lo;
            vhi = s ? _mm_srli_epi32(hi, (int)s) : hi;
            if (s + W > 32 || (s + W == 32 && j < 15)) {
                sse_word(in, W, m + 1, &lo, &hi);
                if (s + W > 32) {
                    vlo = _mm_or_si128(vlo, _mm_slli_epi32(lo, (int)(32 - s)));
                    vhi = _mm_or_si128(vhi, _mm_slli_epi32(hi, (int)(32 - s)));
                }
            }
            if (W < 32) {
                vlo = _mm_and_si128(vlo, mask);
                vhi = _mm_and_si128(vhi, mask);
            }
        }
        if (delta) {
            /* in-register prefix sums; the running base is the only
             * dependency from one group of eight to the next */
            __m128i plo = _mm_add_epi32(vlo, _mm_slli_si128(vlo, 4));
            plo = _mm_add_epi32(plo, _mm_slli_si128(plo, 8));
            __m128i phi = _mm_add_epi32(vhi, _mm_slli_si128(vhi, 4));
            phi = _mm_add_epi32(phi, _mm_slli_si128(phi, 8));
            __m128i tlo = _mm_shuffle_epi32(plo, 0xFF), thi = _mm_shuffle_epi32(phi, 0xFF);
            __m128i b1 = _mm_add_epi32(base, c1234);
            vlo = _mm_add_epi32(b1, plo);
            vhi = _mm_add_epi32(_mm_add_epi32(b1, c4), _mm_add_epi32(tlo, phi));
            base = _mm_add_epi32(base, _mm_add_epi32(c8, _mm_add_epi32(tlo, thi)));
        }
        _mm_storeu_si128((__m128i *)(void *)(out + 8 * j), vlo);
        _mm_storeu_si128((__m128i *)(void *)(out + 8 * j + 4), vhi);
    }
}

/* -- AVX2: all eight lanes in one register -- */

SH_AI_AVX2 __m256i avx2_word(const uint8_t *in, unsigned W, unsigned m) {
    if (m < W / 2) return _mm256_loadu_si256((const __m256i *)(const void *)(in + 32 * m));
    return _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(in + 32 * m)));
}

SH_AI_AVX2 void avx2_unpack(const uint8_t *in, uint32_t *out, const unsigned W, const int delta,
                            uint32_t prev) {
    const __m256i mask = _mm256_set1_epi32((int)width_mask(W));
    const __m256i c8 = _mm256_set1_epi32(8), zero = _mm256_setzero_si256();
    __m256i w = _mm256_setzero_si256();
    /* base + (1..8): the doc each lane would hold were all gaps 0 */
    __m256i base = _mm256_add_epi32(_mm256_set1_epi32((int)prev),
                                    _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8));
    if (W) w = avx2_word(in, W, 0);
#pragma GCC unroll 16
    for (unsigned j = 0; j < 16; j++) {
        const unsigned bit = j * W, m = bit / 32, s = bit % 32;
        __m256i v = _mm256_setzero_si256();
        if (W) {
            v = s ? _mm256_srli_epi32(w, (int)s) : w;
            if (s + W > 32 || (s + W == 32 && j < 15)) {
                w = avx2_word(in, W, m + 1);
                if (s + W > 32) v = _mm256_or_si256(v, _mm256_slli_epi32(w, (int)(32 - s)));
            }
            if (W < 32) v = _mm256_and_si256(v, mask);
        }
        if (delta) {
            /* prefix sum within each 128-bit half; the halves' totals,
             * swapped, give the high half its carry (a blend, not a
             * shuffle) and the group's total; the running base is the
             * only dependency from one group of eight to the next */
            __m256i p = _mm256_add_epi32(v, _mm256_slli_si256(v, 4));
            p = _mm256_add_epi32(p, _mm256_slli_si256(p, 8));
            __m256i t = _mm256_shuffle_epi32(p, 0xFF);
            __m256i sw = _mm256_permute2x128_si256(t, t, 0x01);
            __m256i carry = _mm256_blend_epi32(zero, sw, 0xF0);
            v = _mm256_add_epi32(base, _mm256_add_epi32(p, carry));
            base = _mm256_add_epi32(base, _mm256_add_epi32(_mm256_add_epi32(t, sw), c8));
        }
        _mm256_storeu_si256((__m256i *)(void *)(out + 8 * j), v);
    }
}

typedef void unpack_fn(const uint8_t *in, uint32_t *out);
typedef void docs_fn(const uint8_t *in, uint32_t *out, uint32_t prev);

#define SH_DEF_SSE(W)                                                                  \
    __attribute__((target("sse4.1"))) static void unpack_sse_##W(const uint8_t *in,    \
                                                                  uint32_t *out) {     \
        sse_unpack(in, out, W, 0, 0);                                                  \
    }                                                                                  \
    __attribute__((target("sse4.1"))) static void docs_sse_##W(const uint8_t *in,      \
                                                                uint32_t *out,         \
                                                                uint32_t prev) {       \
        sse_unpack(in, out, W, 1, prev);                                               \
    }
#define SH_DEF_AVX2(W)                                                                 \
    __attribute__((target("avx2"))) static void unpack_avx2_##W(const uint8_t *in,     \
                                                                 uint32_t *out) {      \
        avx2_unpack(in, out, W, 0, 0);                                                 \
    }                                                                                  \
    __attribute__((target("avx2"))) static void docs_avx2_##W(const uint8_t *in,       \
                                                               uint32_t *out,          \
                                                               uint32_t prev) {        \
        avx2_unpack(in, out, W, 1, prev);                                              \
    }
SH_WIDTHS(SH_DEF_SSE)
SH_WIDTHS(SH_DEF_AVX2)

#define SH_REF_UNPACK_SSE(W) unpack_sse_##W,
#define SH_REF_DOCS_SSE(W) docs_sse_##W,
#define SH_REF_UNPACK_AVX2(W) unpack_avx2_##W,
#define SH_REF_DOCS_AVX2(W) docs_avx2_##W,
static unpack_fn *const unpack_sse_tab[33] = {SH_WIDTHS(SH_REF_UNPACK_SSE)};
static docs_fn *const docs_sse_tab[33] = {SH_WIDTHS(SH_REF_DOCS_SSE)};
static unpack_fn *const unpack_avx2_tab[33] = {SH_WIDTHS(SH_REF_UNPACK_AVX2)};
static docs_fn *const docs_avx2_tab[33] = {SH_WIDTHS(SH_REF_DOCS_AVX2)};

#endif /* SH_X86 */

void sh_bitunpack128(const uint8_t *in, unsigned width, uint32_t *out) {
#if SH_X86
    int isa = isa_now();
    if (isa == SH_ISA_AVX2) {
        unpack_avx2_tab[width](in, out);
        return;
    }
    if (isa == SH_ISA_SSE41) {
        unpack_sse_tab[width](in, out);
        return;
    }
#endif
    unpack_scalar(in, width, out);
}

void sh_bitunpack128_docs(const uint8_t *in, unsigned width, uint32_t prev, uint32_t *out) {
#if SH_X86
    int isa = isa_now();
    if (isa == SH_ISA_AVX2) {
        docs_avx2_tab[width](in, out, prev);
        return;
    }
    if (isa == SH_ISA_SSE41) {
        docs_sse_tab[width](in, out, prev);
        return;
    }
#endif
    docs_scalar(in, width, prev, out);
}

/* ---- encoding ----------------------------------------------------------- */

/* Positions come either as numbers (positions) or, for a merge, as each
 * doc's bytes already encoded (span, span_len): a doc's run does not
 * depend on its number, so it is copied as it is. */
/* The block impact as stored: x raised by a margin far above the rounding
 * of the sums that make it, then rounded up to a binary32. */
static uint32_t impact_bits(double x) {
    double up = x * (1 + 1e-6);
    float f = (float)up;
    if ((double)f < up) f = nextafterf(f, HUGE_VALF);
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* How many docs ahead encode asks for lengths. */
#define LENS_AHEAD 16u

static int encode(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                  const uint32_t *positions, const uint8_t *const *span,
                  const uint32_t *span_len, size_t n, const sh_lens *lens, sh_buf *post,
                  sh_buf *pos) {
    const uint32_t *lent = lens->lent, *lenb = lens->lenb;
    /* bm25's norms (search.c) at the impact's reference b and averages */
    const double n0 = 1 - SH_IMPACT_B;
    const double nt = SH_IMPACT_B / sh_impact_avg(lens->sum_lent, lens->ndocs);
    const double nb = SH_IMPACT_B / sh_impact_avg(lens->sum_lenb, lens->ndocs);
    size_t nblocks = (n + SH_BLOCK - 1) / SH_BLOCK;
    size_t skip_at = post->len;
    if (nblocks > 1 && sh_buf_reserve(post, nblocks * SH_SKIPREC)) return SAHEL_ENOMEM;
    if (nblocks > 1) {
        memset(post->p + post->len, 0, nblocks * SH_SKIPREC);
        post->len += nblocks * SH_SKIPREC;
    }
    size_t data_at = post->len;
    size_t pos_at = pos->len;
    uint32_t gaps[SH_BLOCK];
    uint32_t prev_plus1 = 0;
    const uint32_t *pp = positions;
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t first = blk * SH_BLOCK;
        size_t cnt = SH_MIN((size_t)SH_BLOCK, n - first);
        uint32_t max_tft = 0, max_tfb = 0, min_lent = UINT32_MAX, min_lenb = UINT32_MAX;
        double max_x = 0;
        size_t block_off = post->len - data_at;
        size_t block_pos = pos->len - pos_at;
        if (nblocks == 1) {
            /* a list of one block has no skip record: no maxima, no
             * impact, no lengths to read (most terms, and their docs are
             * the scattered ones, a cache miss each) */
            for (size_t i = 0; i < cnt; i++) {
                gaps[i] = docs[i] - prev_plus1;
                prev_plus1 = docs[i] + 1;
            }
        }
        /* the lengths are read at random, a cache miss each when a merge
         * encodes a big segment's terms: ask for them ahead */
        for (size_t i = 0; nblocks > 1 && blk == 0 && i < LENS_AHEAD; i++) {
            __builtin_prefetch(&lent[docs[i]]);
            __builtin_prefetch(&lenb[docs[i]]);
        }
        for (size_t i = 0; nblocks > 1 && i < cnt; i++) {
            uint32_t d = docs[first + i];
            if (first + i + LENS_AHEAD < n) { /* into the next block too */
                __builtin_prefetch(&lent[docs[first + i + LENS_AHEAD]]);
                __builtin_prefetch(&lenb[docs[first + i + LENS_AHEAD]]);
            }
            gaps[i] = d - prev_plus1;
            prev_plus1 = d + 1;
            max_tft = SH_MAX(max_tft, tft[first + i]);
            max_tfb = SH_MAX(max_tfb, tfb[first + i]);
            min_lent = SH_MIN(min_lent, lent[d]);
            min_lenb = SH_MIN(min_lenb, lenb[d]);
            double x = 0;
            if (tft[first + i]) x += SH_IMPACT_WT * tft[first + i] / (n0 + nt * lent[d]);
            if (tfb[first + i]) x += tfb[first + i] / (n0 + nb * lenb[d]);
            max_x = SH_MAX(max_x, x);
        }
        if (cnt == SH_BLOCK) {
            const uint32_t *arr[3] = {gaps, tft + first, tfb + first};
            unsigned w[3];
            for (int k = 0; k < 3; k++) w[k] = sh_bits_needed(arr[k], SH_BLOCK);
            size_t need = 3 + SH_PACKED_BYTES(w[0] + w[1] + w[2]);
            if (sh_buf_reserve(post, need)) return SAHEL_ENOMEM;
            uint8_t *o = post->p + post->len;
            for (int k = 0; k < 3; k++) *o++ = (uint8_t)w[k];
            for (int k = 0; k < 3; k++) o += sh_bitpack128(arr[k], w[k], o);
            post->len += need;
        } else {
            for (size_t i = 0; i < cnt; i++)
                if (sh_buf_put_varint(post, gaps[i]) || sh_buf_put_varint(post, tft[first + i]) ||
                    sh_buf_put_varint(post, tfb[first + i]))
                    return SAHEL_ENOMEM;
        }
        if (span) {
            size_t total = 0;
            for (size_t i = 0; i < cnt; i++) total += span_len[first + i];
            if (sh_buf_reserve(pos, total)) return SAHEL_ENOMEM;
            /* a doc's run is a few bytes, and the runs of docs that were
             * neighbours in one source lie end to end: one copy each */
            const uint8_t *run = NULL;
            size_t rl = 0;
            for (size_t i = 0; i < cnt; i++) {
                const uint8_t *sp = span[first + i];
                if (rl && run + rl == sp) {
                    rl += span_len[first + i];
                    continue;
                }
                if (rl) memcpy(pos->p + pos->len, run, rl);
                pos->len += rl;
                run = sp;
                rl = span_len[first + i];
            }
            if (rl) memcpy(pos->p + pos->len, run, rl);
            pos->len += rl;
        }
        for (size_t i = 0; i < cnt && !span; i++) {
            uint32_t runs[2] = {tft[first + i], tfb[first + i]};
            for (int r = 0; r < 2; r++) {
                uint32_t last = 0;
                for (uint32_t k = 0; k < runs[r]; k++) {
                    uint32_t p = *pp++;
                    if (sh_buf_put_varint(pos, k ? p - last : p)) return SAHEL_ENOMEM;
                    last = p;
                }
            }
        }
        if (nblocks > 1) {
            uint8_t *rec = post->p + skip_at + blk * SH_SKIPREC;
            sh_store_u32(rec, docs[first + cnt - 1]);
            sh_store_u32(rec + 4, (uint32_t)block_off);
            sh_store_u64(rec + 8, block_pos);
            sh_store_u32(rec + 16, max_tft);
            sh_store_u32(rec + 20, max_tfb);
            sh_store_u32(rec + 24, min_lent);
            sh_store_u32(rec + 28, min_lenb);
            sh_store_u32(rec + 32, impact_bits(max_x));
            if (post->len - data_at > UINT32_MAX) return SAHEL_ETOOBIG;
        }
    }
    return 0;
}

int sh_postings_encode(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                       const uint32_t *positions, size_t n, const sh_lens *lens, sh_buf *post,
                       sh_buf *pos) {
    return encode(docs, tft, tfb, positions, NULL, NULL, n, lens, post, pos);
}

int sh_postings_encode_spans(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                             const uint8_t *const *span, const uint32_t *span_len, size_t n,
                             const sh_lens *lens, sh_buf *post, sh_buf *pos) {
    return encode(docs, tft, tfb, NULL, span, span_len, n, lens, post, pos);
}

/* ---- cursor ------------------------------------------------------------- */

static int corrupt(const sh_postings *pc, const char *what, const uint8_t *at) {
    const sh_section *s = &pc->seg->sec[SH_SEC_POSTINGS];
    uint64_t off = at ? (uint64_t)(at - pc->seg->map) : s->off + pc->ti.post_off;
    return sh_err(pc->err, SAHEL_ECORRUPT, "%s: damaged postings (%s) at byte %llu",
                  pc->seg->path, what, (unsigned long long)off);
}

/* Damage is sticky: the cursor keeps what it found and every later call
 * that moves it or reads positions reports it again, so that a caller who
 * goes on after an error never reads a block that did not check out. */
static int damage(sh_postings *pc, const char *what, const uint8_t *at) {
    pc->bad_what = what;
    pc->bad_at = at ? at : pc->data;
    pc->n = 0; /* next() and advance() leave their fast paths */
    return corrupt(pc, what, at);
}

static int pending(const sh_postings *pc) { return corrupt(pc, pc->bad_what, pc->bad_at); }

int sh_postings_init(sh_postings *pc, const sh_segment *seg, const sh_terminfo *ti,
                     sahel_error *err) {
    pc->seg = seg;
    pc->err = err;
    pc->ti = *ti;
    pc->doc = SH_NO_DOC;
    pc->block = UINT32_MAX;
    pc->n = pc->i = 0;
    pc->prev_last = SH_NO_DOC;
    pc->tf_ready = 0;
    pc->tf_p = NULL;
    pc->wt = pc->wb = 0;
    pc->bad_at = NULL;
    pc->bad_what = NULL;
    pc->block_pos_off = 0;
    pc->pos_p = NULL;
    pc->pos_i = 0;
    pc->hi = SH_NO_DOC;
    pc->cut = 0;
    const uint8_t *base = seg->sec[SH_SEC_POSTINGS].p + ti->post_off;
    pc->end = base + ti->post_len;
    pc->posbase = seg->sec[SH_SEC_POSITIONS].p + ti->pos_off;
    pc->posend = pc->posbase + ti->pos_len;
    pc->nblocks = 0;
    pc->skip = NULL;
    pc->data = pc->next_block = base;
    if (ti->df == 0 || ti->df > seg->ndocs) return damage(pc, "document frequency", NULL);
    pc->nblocks = (ti->df + SH_BLOCK - 1) / SH_BLOCK;
    if (pc->nblocks > 1) {
        if ((uint64_t)pc->nblocks * SH_SKIPREC > ti->post_len)
            return damage(pc, "skip table", NULL);
        pc->skip = base;
        pc->data = base + (size_t)pc->nblocks * SH_SKIPREC;
    }
    pc->next_block = pc->data;
    return 0;
}

/* The tfs of a block: no tf may exceed the position bytes left from the
 * block's start, and no doc may have both tfs 0.  1 when they hold. */
static int tfs_ok_scalar(const uint32_t *tft, const uint32_t *tfb, uint32_t n, uint64_t room) {
    uint32_t mx = 0, nonzero = 1;
    for (uint32_t i = 0; i < n; i++) {
        mx = SH_MAX(mx, SH_MAX(tft[i], tfb[i]));
        nonzero &= (tft[i] | tfb[i]) != 0;
    }
    return nonzero && mx <= room;
}

#if SH_X86
__attribute__((target("sse4.1"))) static int tfs_ok_sse(const uint32_t *tft, const uint32_t *tfb,
                                                         uint32_t n, uint64_t room) {
    __m128i vmx = _mm_setzero_si128(), vz = _mm_setzero_si128(), zero = _mm_setzero_si128();
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m128i t = _mm_loadu_si128((const __m128i *)(const void *)(tft + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(tfb + i));
        vmx = _mm_max_epu32(vmx, _mm_max_epu32(t, b));
        vz = _mm_or_si128(vz, _mm_cmpeq_epi32(_mm_or_si128(t, b), zero)); /* a doc of tfs 0 */
    }
    vmx = _mm_max_epu32(vmx, _mm_shuffle_epi32(vmx, 0x4E));
    vmx = _mm_max_epu32(vmx, _mm_shuffle_epi32(vmx, 0xB1));
    uint32_t mx = (uint32_t)_mm_cvtsi128_si32(vmx);
    return _mm_testz_si128(vz, vz) && mx <= room && tfs_ok_scalar(tft + i, tfb + i, n - i, room);
}
#endif

static int tfs_ok(const uint32_t *tft, const uint32_t *tfb, uint32_t n, uint64_t room) {
#if SH_X86
    if (isa_now() >= SH_ISA_SSE41) return tfs_ok_sse(tft, tfb, n, room);
#endif
    return tfs_ok_scalar(tft, tfb, n, room);
}

static int load_tfs(sh_postings *pc) {
    if (pc->n == 0) { /* not started or exhausted: nothing to score */
        memset(pc->tft, 0, sizeof pc->tft);
        memset(pc->tfb, 0, sizeof pc->tfb);
        pc->tf_ready = 1;
        return 0;
    }
    sh_bitunpack128(pc->tf_p, pc->wt, pc->tft);
    sh_bitunpack128(pc->tf_p + SH_PACKED_BYTES(pc->wt), pc->wb, pc->tfb);
    pc->tf_ready = 1;
    if (!tfs_ok(pc->tft, pc->tfb, SH_BLOCK, pc->ti.pos_len - pc->block_pos_off)) {
        memset(pc->tft, 0, sizeof pc->tft);
        memset(pc->tfb, 0, sizeof pc->tfb);
        return SAHEL_ECORRUPT;
    }
    return 0;
}

void sh_postings_load_tfs(const sh_postings *cpc) {
    /* The tf arrays are a cache of the held block, filled on first use:
     * logically the cursor does not change, so the accessors take it
     * const (a C++ `mutable` member). */
    sh_postings *pc = (sh_postings *)(uintptr_t)cpc;
    if (load_tfs(pc)) (void)damage(pc, "term frequency", pc->tf_p);
}

/* Decode block `blk` starting at byte `p`; prev_plus1 is one past the
 * previous block's last doc (0 for the first block). */
static int load_block(sh_postings *pc, uint32_t blk, const uint8_t *p, uint32_t prev_plus1) {
    uint32_t cnt = blk + 1 < pc->nblocks ? SH_BLOCK : pc->ti.df - blk * SH_BLOCK;
    const uint8_t *end = pc->end;
    const sh_segment *seg = pc->seg;
    pc->n = 0; /* nothing held until the block checks out */
    if (p < pc->data || p > end) return damage(pc, "block offset", p);
    if (pc->skip) {
        const uint8_t *rec = pc->skip + (size_t)blk * SH_SKIPREC;
        uint64_t po = sh_load_u64(rec + 8);
        if (po > pc->ti.pos_len) return damage(pc, "positions offset", rec);
        pc->block_pos_off = po;
    } else {
        pc->block_pos_off = 0;
    }
    if (cnt == SH_BLOCK) {
        if (end - p < 3) return damage(pc, "truncated block", p);
        unsigned wd = p[0], wt = p[1], wb = p[2];
        if (wd > 32 || wt > 32 || wb > 32) return damage(pc, "bit width", p);
        size_t need = 3 + SH_PACKED_BYTES((size_t)wd + wt + wb);
        if ((size_t)(end - p) < need) return damage(pc, "truncated block", p);
        sh_bitunpack128_docs(p + 3, wd, prev_plus1 - 1, pc->docs);
        /* Gaps below 2^25 add up to less than 2^32 over a block, so the
         * 32-bit prefix sums wrapped iff the last doc fell below the first
         * possible one; wider gaps are checked one by one. */
        int ok = pc->docs[0] >= prev_plus1 && pc->docs[SH_BLOCK - 1] < seg->ndocs;
        if (ok && wd > 25)
            for (uint32_t i = 1; i < SH_BLOCK; i++) ok &= pc->docs[i] > pc->docs[i - 1];
        else if (ok)
            ok = pc->docs[SH_BLOCK - 1] >= prev_plus1;
        if (!ok) return damage(pc, "doc id out of range", p);
        pc->tf_p = p + 3 + SH_PACKED_BYTES(wd);
        pc->wt = (uint8_t)wt;
        pc->wb = (uint8_t)wb;
        pc->tf_ready = 0;
        pc->next_block = p + need;
    } else {
        uint64_t d = prev_plus1;
        for (uint32_t i = 0; i < cnt; i++) {
            uint32_t g;
            if (sh_varint_get32(&p, end, &g) || sh_varint_get32(&p, end, &pc->tft[i]) ||
                sh_varint_get32(&p, end, &pc->tfb[i]))
                return damage(pc, "truncated varint block", p);
            d += g;
            if (d >= seg->ndocs) return damage(pc, "doc id out of range", p);
            pc->docs[i] = (uint32_t)d++;
        }
        if (!tfs_ok(pc->tft, pc->tfb, cnt, pc->ti.pos_len - pc->block_pos_off))
            return damage(pc, "term frequency", p);
        pc->tf_ready = 1;
        pc->next_block = p;
    }
    if (pc->skip && sh_load_u32(pc->skip + (size_t)blk * SH_SKIPREC) != pc->docs[cnt - 1])
        return damage(pc, "skip record", pc->skip + (size_t)blk * SH_SKIPREC);
    pc->prev_last = prev_plus1 - 1;
    pc->block = blk;
    pc->n = cnt;
    pc->i = 0;
    pc->pos_p = pc->posbase + pc->block_pos_off;
    pc->pos_i = 0;
    /* the only block this cursor will hold: decode all of it now (and
     * callers may read its arrays directly, as MaxScore's bound does) */
    if (!pc->tf_ready && !pc->skip && load_tfs(pc)) return damage(pc, "term frequency", pc->tf_p);
    if (SH_UNLIKELY(pc->docs[cnt - 1] >= pc->hi)) {
        /* the range ends in this block: only its docs below hi are held
         * (none: the cursor is at its end, n 0, for the caller to see) */
        pc->n = sh_postings_seek_in_block(pc->docs, 0, cnt, pc->hi);
        pc->cut = 1;
    }
    return 0;
}

static void exhaust(sh_postings *pc) {
    pc->doc = SH_NO_DOC;
    pc->block = pc->nblocks;
    pc->n = pc->i = 0;
}

/* After load_block: 1 (the cursor exhausted) when the range's end left the
 * block no doc. */
static int cut_to_nothing(sh_postings *pc) {
    if (pc->n) return 0;
    exhaust(pc);
    return 1;
}

int sh_postings_next_block(sh_postings *pc) {
    if (pc->bad_at) return pending(pc);
    if (pc->block == pc->nblocks) { /* exhausted: stay so */
        pc->doc = SH_NO_DOC;
        return 0;
    }
    uint32_t blk = pc->block == UINT32_MAX ? 0 : pc->block + 1;
    if (blk >= pc->nblocks || pc->cut) { /* the list's end, or the range's */
        exhaust(pc);
        return 0;
    }
    uint32_t prev_plus1 = blk == 0 ? 0 : pc->docs[pc->n - 1] + 1;
    int rc = load_block(pc, blk, pc->next_block, prev_plus1);
    if (rc) return rc;
    if (cut_to_nothing(pc)) return 0;
    pc->doc = pc->docs[0];
    return 0;
}

static inline uint32_t skip_last(const sh_postings *pc, uint32_t blk) {
    return sh_load_u32(pc->skip + (size_t)blk * SH_SKIPREC);
}

uint32_t sh_postings_find_block(const sh_postings *pc, uint32_t from, uint32_t target) {
    uint32_t nb = pc->nblocks;
    if (!pc->skip) {
        if (from > 0 || nb == 0 || pc->block == nb) return nb;
        /* one block: held once next() has run; before, it may hold target */
        return pc->n && pc->docs[pc->n - 1] < target ? nb : 0;
    }
    if (from >= nb) return nb;
    if (skip_last(pc, from) >= target) return from;
    /* gallop: last_doc[lo] < target; find hi with last_doc[hi] >= target */
    uint32_t lo = from, step = 1, hi;
    for (;;) {
        hi = lo + step;
        if (hi >= nb || hi < lo) {
            hi = nb - 1;
            if (skip_last(pc, hi) < target) return nb;
            break;
        }
        if (skip_last(pc, hi) >= target) break;
        lo = hi;
        step *= 2;
    }
    /* binary search in (lo, hi]: hi only ever moves to a block whose
     * last_doc was seen >= target, even if the table is damaged */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (skip_last(pc, mid) >= target)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

int sh_postings_advance_block(sh_postings *pc, uint32_t target) {
    if (pc->bad_at) return pending(pc);
    if (pc->block == pc->nblocks) {
        pc->doc = SH_NO_DOC;
        return 0;
    }
    /* past the range's end; or the held block, cut, holds the range's
     * last docs and all of them are below target (else the inline half
     * would have moved within it) */
    if (target >= pc->hi || pc->cut) {
        exhaust(pc);
        return 0;
    }
    if (!pc->skip) {
        if (pc->block == UINT32_MAX) {
            int rc = sh_postings_next_block(pc);
            if (rc) return rc;
            if (pc->n && pc->docs[pc->n - 1] >= target) {
                pc->i = sh_postings_seek_in_block(pc->docs, 0, pc->n, target);
                pc->doc = pc->docs[pc->i];
                return 0;
            }
        }
        exhaust(pc);
        return 0;
    }
    uint32_t from = pc->block == UINT32_MAX ? 0 : pc->block + 1;
    uint32_t blk = sh_postings_find_block(pc, from, target);
    if (blk >= pc->nblocks) {
        exhaust(pc);
        return 0;
    }
    int rc;
    if (blk == from && pc->block != UINT32_MAX) {
        /* the next block: no need to trust the skip record's offset */
        rc = load_block(pc, blk, pc->next_block, pc->docs[pc->n - 1] + 1);
    } else {
        const uint8_t *rec = pc->skip + (size_t)blk * SH_SKIPREC;
        uint64_t off = sh_load_u32(rec + 4);
        uint32_t prev_plus1 = blk ? skip_last(pc, blk - 1) + 1 : 0;
        if (off > (uint64_t)(pc->end - pc->data)) return damage(pc, "skip offset", rec);
        rc = load_block(pc, blk, pc->data + off, prev_plus1);
    }
    if (rc) return rc;
    /* the skip record matched the block's last doc, which is >= target;
     * if the range's end cut the block, its last doc may not be */
    if (cut_to_nothing(pc)) return 0;
    if (SH_UNLIKELY(pc->docs[pc->n - 1] < target)) {
        exhaust(pc);
        return 0;
    }
    pc->i = sh_postings_seek_in_block(pc->docs, 0, pc->n, target);
    pc->doc = pc->docs[pc->i];
    return 0;
}

int sh_postings_range(sh_postings *pc, uint32_t lo, uint32_t hi) {
    pc->hi = hi;
    return lo ? sh_postings_advance(pc, lo) : sh_postings_next(pc);
}

uint32_t sh_postings_block_last(const sh_postings *pc, uint32_t blk) {
    if (blk >= pc->nblocks) return SH_NO_DOC;
    if (pc->skip) return skip_last(pc, blk);
    return pc->n ? pc->docs[pc->n - 1] : SH_NO_DOC;
}

double sh_postings_impact(const uint8_t *rec) {
    uint32_t u = sh_load_u32(rec + 32);
    float f;
    memcpy(&f, &u, sizeof f);
    /* damage (negative, NaN) reads as no bound at all: never a wrong skip
     * that a NaN in a comparison might make */
    return f >= 0 ? (double)f : HUGE_VAL;
}

void sh_postings_block_bound(const sh_postings *pc, uint32_t blk, sh_block_bound *out) {
    if (pc->skip && blk < pc->nblocks) {
        const uint8_t *r = pc->skip + (size_t)blk * SH_SKIPREC;
        out->max_tft = sh_load_u32(r + 16);
        out->max_tfb = sh_load_u32(r + 20);
        out->min_lent = sh_load_u32(r + 24);
        out->min_lenb = sh_load_u32(r + 28);
        out->max_x = sh_postings_impact(r);
        return;
    }
    /* a single block, decoded whole when loaded: scanned (no impact) */
    out->max_x = HUGE_VAL;
    out->max_tft = out->max_tfb = 0;
    out->min_lent = out->min_lenb = UINT32_MAX;
    if (pc->skip || blk != 0 || !pc->tf_ready) return;
    for (uint32_t i = 0; i < pc->n; i++) {
        out->max_tft = SH_MAX(out->max_tft, pc->tft[i]);
        out->max_tfb = SH_MAX(out->max_tfb, pc->tfb[i]);
        out->min_lent = SH_MIN(out->min_lent, sh_segment_len_title(pc->seg, pc->docs[i]));
        out->min_lenb = SH_MIN(out->min_lenb, sh_segment_len_body(pc->seg, pc->docs[i]));
    }
}

/* ---- intersection ------------------------------------------------------- */

/* The docs two ascending arrays share, into out; returns how many.  out
 * needs min(na, nb) + 3 slots (the SIMD path stores four at a time). */
static size_t and_scalar(const uint32_t *A, size_t na, const uint32_t *B, size_t nb,
                         uint32_t *out, size_t *end) {
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        uint32_t x = A[i], y = B[j];
        out[k] = x;
        k += x == y;
        i += x <= y;
        j += y <= x;
    }
    end[0] = i;
    end[1] = j;
    return k;
}

#if SH_X86
/* Row m: the bytes of the 32-bit lanes whose bit is set in m, packed to
 * the front (0x80 makes pshufb write a zero): a lane compress. */
static const uint8_t compress_lut[16][16] = {
    {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 4, 5, 6, 7, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {8, 9, 10, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 8, 9, 10, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {4, 5, 6, 7, 8, 9, 10, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x80, 0x80, 0x80, 0x80},
    {12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {4, 5, 6, 7, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80},
    {8, 9, 10, 11, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80},
    {4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0x80, 0x80, 0x80, 0x80},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
};

/* Four docs of A against four of B, all pairs (the three rotations of B),
 * then the block whose largest doc is smaller moves on (both on a tie):
 * no branch depends on the data but the loop's own. */
__attribute__((target("sse4.1"))) static size_t and_sse(const uint32_t *A, size_t na,
                                                         const uint32_t *B, size_t nb,
                                                         uint32_t *out, size_t *end) {
    size_t i = 0, j = 0, k = 0;
    while (i + 4 <= na && j + 4 <= nb) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(A + i));
        __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(B + j));
        __m128i eq = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi32(va, vb),
                         _mm_cmpeq_epi32(va, _mm_shuffle_epi32(vb, 0x39))),
            _mm_or_si128(_mm_cmpeq_epi32(va, _mm_shuffle_epi32(vb, 0x4E)),
                         _mm_cmpeq_epi32(va, _mm_shuffle_epi32(vb, 0x93))));
        unsigned m = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(eq));
        __m128i sel = _mm_loadu_si128((const __m128i *)(const void *)compress_lut[m]);
        _mm_storeu_si128((__m128i *)(void *)(out + k), _mm_shuffle_epi8(va, sel));
        k += (0x4332322132212110u >> (4 * m)) & 0xF; /* popcount of 4 bits */
        /* amax <= bmax iff bmax - amax does not borrow: sign arithmetic
         * rather than a comparison the compiler would turn into a branch
         * (mispredicted half the time on lists of like density) */
        uint64_t amax = A[i + 3], bmax = B[j + 3];
        i += (1 - ((bmax - amax) >> 63)) << 2;
        j += (1 - ((amax - bmax) >> 63)) << 2;
    }
    /* what is left of either is fewer than four docs: matches already
     * written lie below B[j] (or A[i]), so none is written twice */
    k += and_scalar(A + i, na - i, B + j, nb - j, out + k, end);
    end[0] += i;
    end[1] += j;
    return k;
}

/* The same eight against eight: the four rotations within each 128-bit
 * half of B and of B with its halves swapped cover all 64 pairs; the
 * matches of each half of A are compressed and stored separately.  The
 * last few docs of either array go through the same steps (a tail
 * through the SSE and scalar loops mispredicted a branch or two per
 * block: a quarter of the mispredictions of intersecting blocks of like
 * density, 5% of the time): their eights are loaded with a mask and
 * filled with copies of the array's last value, which match nothing new
 * in B and are left out of the matches in A, and the moves are decided
 * by the real last values. */
__attribute__((target("avx2,popcnt"))) static inline __m256i load_tail(const uint32_t *p, size_t left) {
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane);
    __m256i v = _mm256_maskload_epi32((const int *)(const void *)p, mask);
    return _mm256_blendv_epi8(_mm256_set1_epi32((int)p[left - 1]), v, mask);
}

/* One step: A's eight values at va (those of the lanes set in amask)
 * against B's at vb, their matches stored at out; returns how many.  The
 * counts are POPCNTs (every AVX2 CPU has it): the 4-bit table shifted
 * by the mask, as the SSE step counts, was on the path from the compares
 * to the next store, and the block intersection ran 10-15% slower. */
__attribute__((target("avx2,popcnt"))) static inline size_t and8x8(__m256i va, __m256i vb,
                                                            unsigned amask, uint32_t *out) {
    __m256i vs = _mm256_permute2x128_si256(vb, vb, 0x01);
    __m256i e0 = _mm256_or_si256(_mm256_cmpeq_epi32(va, vb),
                                 _mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vb, 0x39)));
    __m256i e1 = _mm256_or_si256(_mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vb, 0x4E)),
                                 _mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vb, 0x93)));
    __m256i e2 = _mm256_or_si256(_mm256_cmpeq_epi32(va, vs),
                                 _mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vs, 0x39)));
    __m256i e3 = _mm256_or_si256(_mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vs, 0x4E)),
                                 _mm256_cmpeq_epi32(va, _mm256_shuffle_epi32(vs, 0x93)));
    __m256i eq = _mm256_or_si256(_mm256_or_si256(e0, e1), _mm256_or_si256(e2, e3));
    unsigned m = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(eq)) & amask;
    unsigned lo = m & 15, hi = m >> 4;
    __m128i sl = _mm_loadu_si128((const __m128i *)(const void *)compress_lut[lo]);
    __m128i sh = _mm_loadu_si128((const __m128i *)(const void *)compress_lut[hi]);
    size_t k = (size_t)__builtin_popcount(lo);
    _mm_storeu_si128((__m128i *)(void *)out, _mm_shuffle_epi8(_mm256_castsi256_si128(va), sl));
    _mm_storeu_si128((__m128i *)(void *)(out + k),
                     _mm_shuffle_epi8(_mm256_extracti128_si256(va, 1), sh));
    return (size_t)__builtin_popcount(m);
}

__attribute__((target("avx2,popcnt"))) static size_t and_avx2(const uint32_t *A, size_t na,
                                                       const uint32_t *B, size_t nb,
                                                       uint32_t *out, size_t *end) {
    size_t i = 0, j = 0, k = 0;
    while (i + 8 <= na && j + 8 <= nb) {
        k += and8x8(_mm256_loadu_si256((const __m256i *)(const void *)(A + i)),
                    _mm256_loadu_si256((const __m256i *)(const void *)(B + j)), 0xFF, out + k);
        uint64_t amax = A[i + 7], bmax = B[j + 7];
        i += (1 - ((bmax - amax) >> 63)) << 3;
        j += (1 - ((amax - bmax) >> 63)) << 3;
    }
    while (i < na && j < nb) { /* the last few of either */
        size_t la = SH_MIN(na - i, (size_t)8), lb = SH_MIN(nb - j, (size_t)8);
        k += and8x8(load_tail(A + i, la), load_tail(B + j, lb), (1u << la) - 1, out + k);
        uint64_t amax = A[SH_MIN(i + 7, na - 1)], bmax = B[SH_MIN(j + 7, nb - 1)];
        i += (1 - ((bmax - amax) >> 63)) << 3;
        j += (1 - ((amax - bmax) >> 63)) << 3;
    }
    end[0] = SH_MIN(i, na);
    end[1] = SH_MIN(j, nb);
    return k;
}
#endif

/* sh_intersect_sorted, and in end[0], end[1] how far it got in A and B:
 * one of them is at its array's end, and every value before the other is
 * at most that array's last. */
static size_t intersect_sorted_end(const uint32_t *A, size_t na, const uint32_t *B, size_t nb,
                                   uint32_t *out, size_t *end) {
#if SH_X86
    int isa = isa_now();
    if (isa == SH_ISA_AVX2) return and_avx2(A, na, B, nb, out, end);
    if (isa == SH_ISA_SSE41) return and_sse(A, na, B, nb, out, end);
#endif
    return and_scalar(A, na, B, nb, out, end);
}

size_t sh_intersect_sorted(const uint32_t *A, size_t na, const uint32_t *B, size_t nb,
                           uint32_t *out) {
    size_t end[2];
    return intersect_sorted_end(A, na, B, nb, out, end);
}

/* Move a cursor past doc `last` of its held block (the block's last doc
 * or one below it), given that the docs before index `from` of the block
 * are at most `last` and that the first one past it is among the eight
 * from there (where sh_postings_intersect's step stopped): the docs at
 * most `last` among those eight are counted, no branch on any of them
 * (a seek's short steps mispredicted there); anything else seeks. */
static int move_past(sh_postings *pc, uint32_t last, uint32_t from) {
    if (pc->docs[pc->n - 1] == last) {
        pc->i = pc->n - 1;
        return sh_postings_next(pc);
    }
    uint32_t f = SH_MIN(from, pc->n - 1), m = SH_MIN(pc->n - f, 8u), c = 0;
    for (uint32_t t = 0; t < m; t++) c += pc->docs[f + t] <= last;
    uint32_t i = f + c;
    if (SH_UNLIKELY(i == pc->n || pc->docs[i] <= last || (i > 0 && pc->docs[i - 1] > last)))
        i = sh_postings_seek_in_block(pc->docs, pc->i, pc->n, last + 1);
    pc->i = i;
    pc->doc = pc->docs[i];
    return 0;
}

int sh_postings_intersect(sh_postings *a, sh_postings *b, uint32_t *out, size_t cap,
                          size_t *nout) {
    size_t k = 0;
    int rc = 0;
    *nout = 0;
    if ((!a->n && (rc = sh_postings_next(a))) || (!b->n && (rc = sh_postings_next(b)))) return rc;
    while (a->doc != SH_NO_DOC && b->doc != SH_NO_DOC) {
        uint32_t la = a->docs[a->n - 1], lb = b->docs[b->n - 1];
        if (la < b->doc) {
            rc = sh_postings_advance(a, b->doc); /* whole blocks skipped */
        } else if (lb < a->doc) {
            rc = sh_postings_advance(b, a->doc);
        } else {
            if (cap - k < SH_POSTINGS_AND_ROOM) break;
            /* where the intersection stopped in the block that goes on:
             * the doc past l is at most a step of eight from there */
            size_t end[2];
            k += intersect_sorted_end(a->docs + a->i, a->n - a->i, b->docs + b->i, b->n - b->i,
                                      out + k, end);
            uint32_t l = SH_MIN(la, lb);
            if (!(rc = move_past(a, l, a->i + (uint32_t)end[0])))
                rc = move_past(b, l, b->i + (uint32_t)end[1]);
        }
        if (rc) break;
    }
    *nout = k;
    return rc;
}

/* ---- runs of position gaps --------------------------------------------- */

/* One gap: *acc advanced by it, *pp moved past it; 0, or -1 for a varint
 * longer than 5 bytes.  The length of a one- or two-byte gap (every gap
 * of a document under 16384 words) is taken from its first byte's top
 * bit, not branched on. */
static inline int gap_step(const uint8_t **pp, uint64_t *acc) {
    const uint8_t *p = *pp;
    uint32_t w = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    uint32_t two = (w >> 7) & 1;
    if (SH_UNLIKELY(two & (w >> 15))) { /* three bytes or more */
        uint64_t v = (w & 0x7f) | ((w >> 8) & 0x7f) << 7;
        unsigned len = 2;
        for (;;) {
            uint64_t c = p[len];
            v |= (c & 0x7f) << (7 * len);
            len++;
            if (c < 0x80) break;
            if (len == 5) return -1;
        }
        *acc += v;
        *pp = p + len;
        return 0;
    }
    *acc += (w & 0x7f) | (((w >> 8) & 0x7f) << 7 & (0u - two));
    *pp = p + 1 + two;
    return 0;
}

static const uint8_t *gaps_scalar(const uint8_t *p, uint32_t n, uint32_t *out, uint64_t acc) {
    for (uint32_t k = 0; k < n; k++) {
        if (gap_step(&p, &acc)) return NULL;
        out[k] = (uint32_t)acc;
    }
    return acc > UINT32_MAX ? NULL : p;
}

/* gaps_scalar that reads nothing past end: gap_step (which reads at most
 * 5 bytes) while 5 are left, a checked reader for the last few. */
static const uint8_t *gaps_checked(const uint8_t *p, const uint8_t *end, uint32_t n,
                                   uint32_t *out, uint64_t acc) {
    for (uint32_t k = 0; k < n; k++) {
        if (end - p >= 5) {
            if (gap_step(&p, &acc)) return NULL;
        } else {
            uint32_t v;
            if (sh_varint_get32(&p, end, &v)) return NULL;
            acc += v;
        }
        out[k] = (uint32_t)acc;
    }
    return acc > UINT32_MAX ? NULL : p;
}

#if SH_X86
/* Row m, for the stop bytes m (bit i: byte i of 8 is below 0x80, the end
 * of a varint) of 8 bytes that hold varints of one or two bytes only:
 * the pshufb control that puts varint j's bytes in 16-bit lane j (0x80:
 * a zero byte).  Made once, on first use. */
static uint8_t gap_shuf[256][16];
static pthread_once_t gap_shuf_once = PTHREAD_ONCE_INIT;
static int gap_shuf_ready; /* set (release) once made: no pthread_once call after */

static void gap_shuf_make(void) {
    for (unsigned m = 0; m < 256; m++) {
        unsigned start = 0, lane = 0;
        memset(gap_shuf[m], 0x80, 16);
        for (unsigned i = 0; i < 8; i++) {
            if (!(m >> i & 1)) continue;
            if (i - start <= 1) { /* the rows used are those of such varints only */
                gap_shuf[m][2 * lane] = (uint8_t)start;
                if (i > start) gap_shuf[m][2 * lane + 1] = (uint8_t)i;
            }
            lane++;
            start = i + 1;
        }
    }
    __atomic_store_n(&gap_shuf_ready, 1, __ATOMIC_RELEASE);
}

/* Eight bytes at a time: their stop bytes give how many whole varints
 * they hold and where the last ends, so that where the next eight start
 * waits on one load and a few operations, not on every varint's decode
 * (a varint's length is only known from its bytes).  When those varints
 * are of one or two bytes (a gap under 16384), a shuffle puts each in a
 * 16-bit lane, two masks drop the continuation bits, and a prefix sum
 * in registers turns gaps into positions; otherwise one gap is decoded
 * alone.  Fewer than eight values left: the ends past the last wanted
 * one are dropped from the stop bytes (first_ends), so that a short run,
 * the common case, is one step too.  Eight slots are stored at a time:
 * with pad, straight into out (which has room for 8 past n); without,
 * the last values go through a buffer of eight. */
static inline unsigned first_ends(uint64_t w, unsigned m, uint32_t r) {
    /* byte i of cnt: the ends among bytes 0..i (at most 8, so that adding
     * 0x80 - r carries into no other byte); the first byte where it
     * reaches r holds the r-th end */
    const uint64_t ones = 0x0101010101010101u;
    uint64_t cnt = ((~w >> 7) & ones) * ones;
    uint64_t ge = (cnt + (0x80 - (uint64_t)r) * ones) & (ones << 7);
    return ge ? m & ((2u << (__builtin_ctzll(ge) >> 3)) - 1) : m;
}

/* The varints that end in the eight bytes of v (m: their stop bytes, each
 * of one or two bytes) as values, prefix-summed into eight 32-bit lanes,
 * a (0-3) and b (4-7); lanes past the last varint repeat the total, so
 * b's last lane is the sum of the step. */
__attribute__((always_inline, target("sse4.1,popcnt"))) static inline void
gap_lanes(__m128i v, unsigned m, __m128i *a, __m128i *b) {
    const __m128i lo7 = _mm_set1_epi16(0x7f), hi7 = _mm_set1_epi16(0x3f80);
    __m128i ctl = _mm_loadu_si128((const __m128i *)(const void *)gap_shuf[m]);
    __m128i x = _mm_shuffle_epi8(v, ctl);
    x = _mm_or_si128(_mm_and_si128(x, lo7), _mm_and_si128(_mm_srli_epi16(x, 1), hi7));
    __m128i lo = _mm_cvtepu16_epi32(x), hi = _mm_cvtepu16_epi32(_mm_srli_si128(x, 8));
    lo = _mm_add_epi32(lo, _mm_slli_si128(lo, 4));
    lo = _mm_add_epi32(lo, _mm_slli_si128(lo, 8));
    hi = _mm_add_epi32(hi, _mm_slli_si128(hi, 4));
    hi = _mm_add_epi32(hi, _mm_slli_si128(hi, 8));
    *a = lo;
    *b = _mm_add_epi32(hi, _mm_shuffle_epi32(lo, 0xFF));
}

__attribute__((always_inline, target("sse4.1,popcnt"))) static inline const uint8_t *
gaps_sse_body(const uint8_t *p, const uint8_t *end, uint32_t n, uint32_t *out, const int pad,
              uint32_t k, uint64_t acc) {
    while (k < n && end - p >= 8) {
        uint64_t w = sh_load_u64(p);
        __m128i v = _mm_cvtsi64_si128((long long)w);
        unsigned m = ~(unsigned)_mm_movemask_epi8(v) & 0xFFu;
        if (n - k < 8) m = first_ends(w, m, n - k);
        unsigned used = m ? 32u - (unsigned)__builtin_clz(m) : 0; /* bytes up to the last end */
        unsigned cont = ~m & ((1u << used) - 1);
        if (SH_UNLIKELY(!m || (cont & (cont >> 1)))) { /* a varint of 3 bytes or more */
            if (gap_step(&p, &acc)) return NULL;
            out[k++] = (uint32_t)acc;
            continue;
        }
        __m128i a, b;
        gap_lanes(v, m, &a, &b);
        __m128i base = _mm_set1_epi32((int)(uint32_t)acc);
        uint32_t c = (uint32_t)__builtin_popcount(m);
        if (pad || n - k >= 8) {
            _mm_storeu_si128((__m128i *)(void *)(out + k), _mm_add_epi32(a, base));
            _mm_storeu_si128((__m128i *)(void *)(out + k + 4), _mm_add_epi32(b, base));
        } else {
            uint32_t tmp[8];
            _mm_storeu_si128((__m128i *)(void *)tmp, _mm_add_epi32(a, base));
            _mm_storeu_si128((__m128i *)(void *)(tmp + 4), _mm_add_epi32(b, base));
            for (uint32_t j = 0; j < c; j++) out[k + j] = tmp[j];
        }
        acc += (uint32_t)_mm_extract_epi32(b, 3);
        k += c;
        p += used;
    }
    return pad ? gaps_checked(p, end, n - k, out + k, acc) : gaps_scalar(p, n - k, out + k, acc);
}

__attribute__((target("sse4.1,popcnt"))) static const uint8_t *
gaps_sse(const uint8_t *p, const uint8_t *end, uint32_t n, uint32_t *out) {
    return gaps_sse_body(p, end, n, out, 0, 0, 0);
}

/* The padded decoder steps eight bytes at a time whatever they hold, so
 * that where the next eight start does not wait on the last ones' ends:
 * the steps overlap in the CPU, where the loop above runs one after the
 * other.  A step takes the varints that end in its eight bytes (their
 * stop bytes, gap_shuf as above); one that began in the byte before (a
 * continuation byte there) is read as its last byte alone, and the rest
 * of it, (last << 7 | first & 0x7f) less last, is added to the base.  Two
 * continuation bytes in a row (a gap of 16384 or more, in the step or
 * across its start): the loop above goes on from the first varint not yet
 * read.  Nothing past end is read (gaps_checked for the last bytes). */
__attribute__((target("sse4.1,popcnt"))) static const uint8_t *
gaps_sse_pad(const uint8_t *p, const uint8_t *end, uint32_t n, uint32_t *out) {
    const uint64_t cont = 0x8080808080808080u;
    const uint8_t *q = p, *next = p; /* next: after the last end read */
    uint64_t acc = 0, prev = 0;      /* prev: the byte before q (0: none) */
    uint32_t k = 0;
    while (k < n && end - q >= 8) {
        uint64_t w = sh_load_u64(q);
        if (SH_UNLIKELY(w & (w << 8 | prev) & cont)) break;
        __m128i v = _mm_cvtsi64_si128((long long)w);
        unsigned m = ~(unsigned)_mm_movemask_epi8(v) & 0xFFu;
        if (n - k < 8) m = first_ends(w, m, n - k);
        /* the varint begun before q: byte q ends it (else the break) */
        uint32_t rest =
            (uint32_t)(prev >> 7) * ((uint32_t)(w & 0x7f) * 127 + (uint32_t)(prev & 0x7f));
        __m128i a, b;
        gap_lanes(v, m, &a, &b);
        acc += rest;
        __m128i base = _mm_set1_epi32((int)(uint32_t)acc);
        _mm_storeu_si128((__m128i *)(void *)(out + k), _mm_add_epi32(a, base));
        _mm_storeu_si128((__m128i *)(void *)(out + k + 4), _mm_add_epi32(b, base));
        acc += (uint32_t)_mm_extract_epi32(b, 3);
        k += (uint32_t)__builtin_popcount(m);
        next = m ? q + 32 - __builtin_clz(m) : next;
        prev = w >> 56;
        q += 8;
    }
    if (k == n) return acc > UINT32_MAX ? NULL : next;
    return gaps_sse_body(next, end, n, out, 1, k, acc);
}

#endif

#if SH_X86
/* sh_skip_varints 32 bytes at a time, while the n-th end lies past them;
 * *n is left counting the ends still to pass. */
__attribute__((target("avx2,popcnt"))) static const uint8_t *skip_avx2(const uint8_t *p,
                                                                      const uint8_t *end,
                                                                      uint64_t *n) {
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
        uint64_t c = (uint64_t)__builtin_popcount(~(unsigned)_mm256_movemask_epi8(v));
        if (c >= *n) break;
        *n -= c;
        p += 32;
    }
    return p;
}
#endif

const uint8_t *sh_skip_varints(const uint8_t *p, const uint8_t *end, uint64_t n) {
#if SH_X86
    if (n > 32 && isa_now() == SH_ISA_AVX2) p = skip_avx2(p, end, &n);
#endif
    /* 8 bytes at a time, dropping one end per varint passed; no popcount:
     * the baseline x86-64 has none, and libgcc's costs more than this for
     * the few positions a doc has (longer runs took the AVX2 path) */
    while (n && end - p >= 8) {
        uint64_t stops = ~sh_load_u64(p) & 0x8080808080808080u;
        for (; stops && n > 1; n--) stops &= stops - 1;
        if (!stops) {
            p += 8;
            continue;
        }
        p += (unsigned)__builtin_ctzll(stops) / 8 + 1; /* the n-th end */
        n = 0;
    }
    for (; n; n--) {
        do {
            if (p >= end) return NULL;
        } while (*p++ & 0x80);
    }
    return p;
}

/* 1 once the shuffle rows are there (made on first use). */
static inline int gap_shuf_here(void) {
#if SH_X86
    return __atomic_load_n(&gap_shuf_ready, __ATOMIC_ACQUIRE) ||
           (!pthread_once(&gap_shuf_once, gap_shuf_make) &&
            __atomic_load_n(&gap_shuf_ready, __ATOMIC_ACQUIRE));
#else
    return 0;
#endif
}

const uint8_t *sh_read_gaps_padded(const uint8_t *p, const uint8_t *end, uint32_t n,
                                   uint32_t *out) {
#if SH_X86
    if (n >= 2 && isa_now() >= SH_ISA_SSE41 && gap_shuf_here())
        return gaps_sse_pad(p, end, n, out);
#endif
    return gaps_checked(p, end, n, out, 0);
}

const uint8_t *sh_read_gaps(const uint8_t *p, const uint8_t *end, uint32_t n, uint32_t *out) {
#if SH_X86
    if (n >= 2 && isa_now() >= SH_ISA_SSE41 && gap_shuf_here()) return gaps_sse(p, end, n, out);
#endif
    (void)end;
    return gaps_scalar(p, n, out, 0);
}

static int read_run(sh_postings *pc, uint32_t n, uint32_t *out) {
    uint32_t last = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t v;
        if (sh_varint_get32(&pc->pos_p, pc->posend, &v)) return corrupt(pc, "positions", pc->pos_p);
        if (k) {
            if (v > UINT32_MAX - last) return corrupt(pc, "position overflow", pc->pos_p);
            v += last;
        }
        if (out) out[k] = v;
        last = v;
    }
    return 0;
}

/* pos_p at the current doc's positions: the runs of the docs before it
 * in the block are skipped (from the block's start if the cursor moved
 * back within it). */
static int seek_positions(sh_postings *pc) {
    if (!pc->tf_ready) sh_postings_load_tfs(pc);
    if (pc->bad_at) return pending(pc);
    if (pc->pos_i > pc->i) {
        pc->pos_p = pc->posbase + pc->block_pos_off;
        pc->pos_i = 0;
    }
    while (pc->pos_i < pc->i) {
        /* skipped, not decoded: as many varint ends as positions */
        uint64_t n = (uint64_t)pc->tft[pc->pos_i] + pc->tfb[pc->pos_i];
        const uint8_t *q = sh_skip_varints(pc->pos_p, pc->posend, n);
        if (!q) return corrupt(pc, "positions", pc->posend);
        pc->pos_p = q;
        pc->pos_i++;
    }
    return 0;
}

int sh_postings_position_span(sh_postings *pc, const uint8_t **p, size_t *len) {
    *p = NULL;
    *len = 0;
    if (pc->doc == SH_NO_DOC) return 0;
    int rc = seek_positions(pc);
    if (rc) return rc;
    /* the run's end: as many varint ends as positions, inside the term's
     * positions (the values are copied, not used: no need to decode them) */
    uint64_t n = (uint64_t)pc->tft[pc->i] + pc->tfb[pc->i];
    const uint8_t *q = sh_skip_varints(pc->pos_p, pc->posend, n);
    if (!q) return corrupt(pc, "positions", pc->posend);
    *p = pc->pos_p;
    *len = (size_t)(q - pc->pos_p);
    /* the next doc's run starts here: a merge reads every doc in turn */
    pc->pos_p = q;
    pc->pos_i = pc->i + 1;
    return 0;
}

int sh_postings_positions(sh_postings *pc, uint32_t *t, uint32_t *b) {
    if (pc->doc == SH_NO_DOC) return 0;
    int rc = seek_positions(pc);
    if (rc) return rc;
    const uint8_t *save = pc->pos_p;
    rc = read_run(pc, pc->tft[pc->i], t);
    if (!rc) rc = read_run(pc, pc->tfb[pc->i], b);
    pc->pos_p = save; /* reading is idempotent for the current doc */
    return rc;
}
