/*
 * test_index.c - unit tests of the storage layer (engine/index): bit
 * packing, the postings codec and cursor, the dictionary, the document
 * store, the manifest, the segment file layout, corruption handling, the
 * writer's behaviours and allocation-failure injection.
 *
 * The comments at the top of postings.c, segment.c, docstore.c and
 * manifest.c are the format specification.  Where this file checks bytes
 * it computes them from that text with its own small encoders (a bit
 * writer, LEB128, the record layout) and never with the engine's code, so
 * that a change of format has to change both.  The one liberty: bit widths
 * are expected to be the smallest that hold a block's values (the spec
 * names the width without saying how it is chosen; a wider one would also
 * decode, but would waste space).
 *
 * Indexes are built through the public writer (sahel_writer_*) into
 * scratch directories under SAHEL_TEST_TMP/index, one per test because
 * criterion runs tests in parallel processes, and read through
 * sahel_index_open; the internal views (ix->segs, sh_segment_*,
 * sh_postings_*, sh_store_get) come from index.h.  Randomness is a
 * fixed-seed splitmix64, so every failure reproduces.
 *
 * Tests of the suite `regression` pin down defects found in the engine;
 * each names the defect it guards against.
 *
 * No test sets .timeout: criterion 2.4.1's runner leaks a little memory
 * when several tests with timeouts run in parallel (--jobs 2), which
 * LeakSanitizer turns into a failure of the whole file; ctest's limit
 * applies instead.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "index/index.h"
#include "sahel.h"
#include "support/failalloc.h"
#include "support/rng.h"
#include "support/run.h"
#include "support/strbuf.h"

#define TMP_ROOT SAHEL_TEST_TMP "/index"
#define PATH_LEN 1024

/* ---- small utilities ---------------------------------------------------- */

/* splitmix64: tiny, fixed seed, good enough to pick test data */
static uint64_t g_rng;

static void rng_seed(uint64_t s) { g_rng = s; }

static uint64_t rng_next(void) { return sh_test_splitmix64(&g_rng); }

static uint32_t rng_below(uint32_t n) { return n ? (uint32_t)(rng_next() % n) : 0; }

static void shuffle_u32(uint32_t *v, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below((uint32_t)i);
        uint32_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* A growable byte buffer owned by the tests (kept apart from sh_buf so
 * that the spec encoders share no code with the engine), NUL-terminated. */
typedef struct tbuf {
    uint8_t *p;
    size_t len, cap;
} tbuf;

static void tb_reserve(tbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->p = sh_test_xrealloc(b->p, cap);
    b->cap = cap;
}

static void tb_put(tbuf *b, const void *d, size_t n) {
    tb_reserve(b, n);
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void tb_putc(tbuf *b, uint8_t c) { tb_put(b, &c, 1); }
static void tb_str(tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }

static void tb_zeros(tbuf *b, size_t n) {
    tb_reserve(b, n);
    memset(b->p + b->len, 0, n);
    b->len += n;
    b->p[b->len] = 0;
}

__attribute__((format(printf, 2, 3))) static void tb_printf(tbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0);
    tb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* little-endian integers and LEB128, from the format comments */
static void tb_u32(tbuf *b, uint32_t v) {
    for (int i = 0; i < 4; i++) tb_putc(b, (uint8_t)(v >> (8 * i)));
}

static void tb_u64(tbuf *b, uint64_t v) {
    for (int i = 0; i < 8; i++) tb_putc(b, (uint8_t)(v >> (8 * i)));
}

static void tb_varint(tbuf *b, uint64_t v) {
    while (v >= 0x80) {
        tb_putc(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    tb_putc(b, (uint8_t)v);
}

static void tb_free(tbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* DOCLENS from the format comment in index.h, bit by bit: a header for
 * each block of 128 articles (u32 title base, u32 body base, u32 data
 * offset in 16-byte units, u8 title bits, u8 body bits, u16 0), then each
 * block's 128 title values and 128 body values less their bases, least
 * significant bit first, then 8 zero bytes. */
static void tb_doclens(tbuf *b, const uint32_t *lent, const uint32_t *lenb, uint32_t n) {
    uint32_t nb = (n + 127) / 128, units = 0;
    tbuf data = {0};
    for (uint32_t blk = 0; blk < nb; blk++) {
        uint32_t first = blk * 128, k = n - first < 128 ? n - first : 128;
        const uint32_t *f[2] = {lent + first, lenb + first};
        uint32_t base[2], w[2];
        for (int j = 0; j < 2; j++) {
            uint32_t lo = UINT32_MAX, hi = 0;
            for (uint32_t i = 0; i < k; i++) {
                if (f[j][i] < lo) lo = f[j][i];
                if (f[j][i] > hi) hi = f[j][i];
            }
            base[j] = lo;
            w[j] = 0;
            while (w[j] < 32 && ((uint64_t)(hi - lo) >> w[j])) w[j]++;
        }
        tb_u32(b, base[0]);
        tb_u32(b, base[1]);
        tb_u32(b, units);
        tb_putc(b, (uint8_t)w[0]);
        tb_putc(b, (uint8_t)w[1]);
        tb_zeros(b, 2);
        for (int j = 0; j < 2; j++) {
            size_t at = data.len;
            tb_zeros(&data, 16 * (size_t)w[j]);
            for (uint32_t i = 0; i < k; i++)
                for (uint32_t bit = 0; bit < w[j]; bit++)
                    if (((f[j][i] - base[j]) >> bit) & 1) {
                        size_t x = (size_t)i * w[j] + bit;
                        data.p[at + x / 8] |= (uint8_t)(1u << (x % 8));
                    }
        }
        units += w[0] + w[1];
    }
    tb_put(b, data.p, data.len);
    tb_zeros(b, 8);
    tb_free(&data);
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- scratch directories and index helpers ------------------------------- */

/* TMP_ROOT/name, removed if it exists (not created). */
static void scratch(char *out, const char *name) {
    cr_assert_eq(sh_test_mkdir_p(TMP_ROOT), 0, "cannot create %s", TMP_ROOT);
    snprintf(out, PATH_LEN, "%s/%s", TMP_ROOT, name);
    cr_assert_eq(sh_test_rm_rf(out), 0, "cannot clear %s", out);
}

static void join(char *out, const char *dir, const char *name) {
    int n = snprintf(out, PATH_LEN, "%s/%s", dir, name);
    cr_assert(n > 0 && n < PATH_LEN, "path too long: %s/%s", dir, name);
}

static int file_exists(const char *dir, const char *name) {
    char p[PATH_LEN];
    join(p, dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Names in dir, sorted, joined by '\n' (for comparing directory states). */
static char *list_dir(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d, "cannot list %s", dir);
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        names = sh_test_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    tbuf b = {0};
    tb_str(&b, "");
    for (size_t i = 0; i < n; i++) {
        tb_str(&b, names[i]);
        tb_putc(&b, '\n');
        free(names[i]);
    }
    free(names);
    return (char *)b.p;
}

/* Number of files in dir whose name starts with "seg-" (segments and their
 * temporaries). */
static size_t count_segment_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "seg-", 4)) n++;
    closedir(d);
    return n;
}

static sahel_doc mkdoc(const char *id, const char *title, const char *body) {
    sahel_doc d;
    memset(&d, 0, sizeof d);
    d.id = id;
    d.id_len = strlen(id);
    if (title) {
        d.title = title;
        d.title_len = strlen(title);
    }
    d.body = body ? body : "";
    d.body_len = body ? strlen(body) : 0;
    return d;
}

static void build_index(const char *dir, const sahel_doc *docs, size_t n, size_t budget) {
    sahel_writer_opts o = {.force = 0, .memory_budget = budget};
    sahel_writer *w;
    sahel_error err = {0};
    int rc = sahel_writer_open(dir, &o, &w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_open(%s): %s", dir, err.msg);
    for (size_t i = 0; i < n; i++) {
        rc = sahel_writer_add(w, &docs[i], &err);
        cr_assert_eq(rc, 0, "sahel_writer_add(%zu): %s", i, err.msg);
    }
    rc = sahel_writer_commit(w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_commit: %s", err.msg);
    sahel_writer_close(w);
}

/* An index of one segment per commit: a build of docs[0], then an update
 * for each other article (fewer than the merge factor of 10, so nothing is
 * merged).  A build merges what it flushes, so several commits are how an
 * index gets several segments. */
static void build_in_commits(const char *dir, const sahel_doc *docs, size_t n, size_t per) {
    for (size_t i = 0; i < n; i += per) {
        sahel_writer_opts o = {.update = i > 0};
        sahel_writer *w;
        sahel_error err = {0};
        cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
        for (size_t k = i; k < n && k < i + per; k++)
            cr_assert_eq(sahel_writer_add(w, &docs[k], &err), 0, "add %zu: %s", k, err.msg);
        cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
        sahel_writer_close(w);
    }
}

static sahel_index *open_index(const char *dir) {
    sahel_index *ix;
    sahel_error err = {0};
    int rc = sahel_index_open(dir, &ix, &err);
    cr_assert_eq(rc, 0, "sahel_index_open(%s): %s", dir, err.msg);
    return ix;
}

/* The top hits of a query: ids and scores. */
#define MAX_RESULTS 64
typedef struct results {
    size_t n;
    uint64_t total;
    char ids[MAX_RESULTS][64];
    double score[MAX_RESULTS];
} results;

static void search_ok(sahel_index *ix, const char *q, size_t k, results *r) {
    sahel_search_opts o = {0};
    o.k = k;
    sahel_hits *h;
    sahel_error err = {0};
    int rc = sahel_search(ix, q, strlen(q), &o, &h, &err);
    cr_assert_eq(rc, 0, "search '%s': %s", q, err.msg);
    memset(r, 0, sizeof *r);
    r->n = sahel_hits_count(h);
    r->total = sahel_hits_total(h);
    cr_assert_leq(r->n, MAX_RESULTS);
    for (size_t i = 0; i < r->n; i++) {
        const char *id;
        size_t len;
        rc = sahel_hits_id(h, i, &id, &len, &r->score[i], &err);
        cr_assert_eq(rc, 0, "hit %zu of '%s': %s", i, q, err.msg);
        snprintf(r->ids[i], sizeof r->ids[i], "%.*s", (int)len, id);
    }
    sahel_hits_free(h);
}

/* The segment file of a one-segment index. */
static void segment_path(const char *dir, char *out) {
    sahel_index *ix = open_index(dir);
    cr_assert_eq(ix->nsegs, 1);
    join(out, dir, ix->segs[0].name);
    sahel_index_close(ix);
}

static uint8_t *read_whole(const char *path, size_t *len) {
    uint8_t *p = (uint8_t *)sh_test_read_file(path, len);
    cr_assert(p, "cannot read %s", path);
    return p;
}

static void write_whole(const char *path, const void *p, size_t len) {
    cr_assert_eq(sh_test_write_file(path, p, len), 0, "cannot write %s", path);
}

/* ==== 1. bit packing ===================================================== */

/* An independent bit writer for the eight-lane layout of postings.c: value
 * i is value j = i / 8 of lane l = i % 8; bit k of that value is bit
 * b = j*w + k of the lane's stream; stream bit b lies in word m = b / 32
 * at bit b % 32, and word m of lane l is the u32 at byte 32m + 4l, except
 * the 16-bit last word of an odd width, the u16 at byte 32m + 2l. */
static void spec_pack(tbuf *b, const uint32_t *v, unsigned w) {
    size_t start = b->len;
    tb_zeros(b, 16u * w);
    for (unsigned i = 0; i < 128; i++) {
        unsigned l = i % 8, j = i / 8;
        for (unsigned k = 0; k < w; k++) {
            if (!((v[i] >> k) & 1u)) continue;
            unsigned bit = j * w + k, m = bit / 32, in = bit % 32;
            size_t byte = m < w / 2 ? 32u * m + 4u * l + in / 8 : 32u * m + 2u * l + in / 8;
            b->p[start + byte] |= (uint8_t)(1u << (in % 8));
        }
    }
}

static unsigned spec_width(const uint32_t *v, size_t n) {
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    unsigned w = 0;
    while (w < 32 && (m >> w)) w++;
    return w;
}

/* The decoders the CPU has, best last; each test runs on all of them. */
static int isas(int *out) {
    int n = 0;
    int best = sh_codec_set_isa(-1);
    for (int isa = SH_ISA_SCALAR; isa <= best; isa++) out[n++] = isa;
    return n;
}

static const char *isa_name(int isa) {
    return isa == SH_ISA_AVX2 ? "avx2" : isa == SH_ISA_SSE41 ? "sse4.1" : "scalar";
}

Test(bitpack, golden_width1_is_eight_u16_lanes) {
    /* w = 1: no whole word, each lane one u16 whose bit j is value 8j + l */
    uint32_t v[128] = {0}, back[128];
    v[0] = v[9] = v[127] = 1; /* lane 0 bit 0; lane 1 bit 1; lane 7 bit 15 */
    uint8_t out[17];
    memset(out, 0xEE, sizeof out);
    cr_assert_eq(sh_bitpack128(v, 1, out), 16);
    static const uint8_t want[16] = {0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80};
    cr_assert_arr_eq(out, want, 16);
    cr_assert_eq(out[16], 0xEE, "packing wrote past its 16 bytes");
    int is[3], ni = isas(is);
    for (int k = 0; k < ni; k++) {
        sh_codec_set_isa(is[k]);
        memset(back, 0xA5, sizeof back);
        sh_bitunpack128(out, 1, back);
        cr_assert_arr_eq(back, v, sizeof v, "%s", isa_name(is[k]));
    }
    sh_codec_set_isa(-1);
}

Test(bitpack, golden_width3_lanes_words_and_half_word_tails) {
    /* v_i = i % 8: lane l holds sixteen copies of l, 48 bits: a word of
     * ten values and two bits of the eleventh, then a 16-bit tail.
     * lane 1: bits 0, 3, ..., 30 = 0x49249249; tail bits 1, 4, 7, 10, 13
     * (stream bits 33..45) = 0x2492.  lane 7: all ones.  lane 0: zeros. */
    uint32_t v[128];
    for (int i = 0; i < 128; i++) v[i] = (uint32_t)i % 8;
    uint8_t out[48];
    cr_assert_eq(sh_bitpack128(v, 3, out), 48);
    cr_assert_eq(le32(out + 0), 0, "lane 0 word 0");
    cr_assert_eq(le32(out + 4), 0x49249249u, "lane 1 word 0");
    cr_assert_eq(le32(out + 28), 0xFFFFFFFFu, "lane 7 word 0");
    cr_assert_eq(out[32] | out[33] << 8, 0, "lane 0 tail");
    cr_assert_eq(out[34] | out[35] << 8, 0x2492, "lane 1 tail");
    cr_assert_eq(out[46] | out[47] << 8, 0xFFFF, "lane 7 tail");
    tbuf spec = {0};
    spec_pack(&spec, v, 3);
    cr_assert_arr_eq(out, spec.p, 48);
    tb_free(&spec);
}

Test(bitpack, golden_width32_is_the_little_endian_array) {
    /* w = 32: value j of lane l is word j, at byte 32j + 4l = 4i */
    uint32_t v[128], back[128];
    for (int i = 0; i < 128; i++) v[i] = 0x01020304u * (uint32_t)i ^ 0xA0B0C0D0u;
    uint8_t out[512];
    cr_assert_eq(sh_bitpack128(v, 32, out), 512);
    for (int i = 0; i < 128; i++) cr_assert_eq(le32(out + 4 * i), v[i], "value %d", i);
    int is[3], ni = isas(is);
    for (int k = 0; k < ni; k++) {
        sh_codec_set_isa(is[k]);
        sh_bitunpack128(out, 32, back);
        cr_assert_arr_eq(back, v, sizeof v, "%s", isa_name(is[k]));
    }
    sh_codec_set_isa(-1);
}

Test(bitpack, width0_writes_nothing_and_unpacks_zeros) {
    uint32_t v[128] = {0}, back[128];
    uint8_t out[1] = {0xEE};
    cr_assert_eq(sh_bitpack128(v, 0, out), 0);
    cr_assert_eq(out[0], 0xEE);
    int is[3], ni = isas(is);
    for (int k = 0; k < ni; k++) {
        sh_codec_set_isa(is[k]);
        memset(back, 0xFF, sizeof back);
        sh_bitunpack128(out, 0, back);
        cr_assert_arr_eq(back, v, sizeof v, "%s", isa_name(is[k]));
        sh_bitunpack128_docs(out, 0, 41, back);
        for (uint32_t i = 0; i < 128; i++)
            cr_assert_eq(back[i], 42 + i, "%s: gaps of 0 are consecutive docs", isa_name(is[k]));
    }
    sh_codec_set_isa(-1);
    cr_assert_eq(sh_bits_needed(v, 128), 0);
}

/* Every width 0..32, on every decoder: random values (fixed seed), the
 * largest value of the width, and runs of it; packed into a heap buffer of
 * exactly 16w bytes (ASan catches a write or read past it), compared with
 * the independent bit writer, unpacked from an exact-size copy, and
 * unpacked as gaps into doc ids against a scalar prefix sum (which wraps
 * mod 2^32 as the decoder does). */
Test(bitpack, roundtrip_every_width_on_every_decoder) {
    int is[3], ni = isas(is);
    cr_assert_geq(ni, 2, "x86-64-v2 has SSE4.1 at least");
    rng_seed(0xB17);
    for (unsigned w = 0; w <= 32; w++) {
        uint32_t mask = w == 32 ? UINT32_MAX : (uint32_t)((1ull << w) - 1);
        for (int rep = 0; rep < 6; rep++) {
            uint32_t v[128], back[128], want[128];
            for (size_t i = 0; i < 128; i++) v[i] = (uint32_t)rng_next() & mask;
            if (rep == 0) v[rng_below(128)] = mask; /* the full width is used */
            if (rep == 1)
                for (size_t i = 0; i < 128; i++) v[i] = mask;
            if (rep == 2) /* small values in a wide stream */
                for (size_t i = 0; i < 128; i++) v[i] &= 3;
            size_t nbytes = 16u * w;
            uint8_t *out = sh_test_xmalloc(nbytes);
            cr_assert_eq(sh_bitpack128(v, w, out), nbytes, "w=%u", w);
            tbuf spec = {0};
            spec_pack(&spec, v, w);
            cr_assert(nbytes == 0 || memcmp(out, spec.p, nbytes) == 0,
                      "w=%u rep=%d: bytes differ from the eight-lane layout", w, rep);
            tb_free(&spec);
            if (rep < 2) cr_assert_eq(sh_bits_needed(v, 128), w, "bits_needed, w=%u", w);
            uint32_t prev = rep == 3 ? UINT32_MAX : (uint32_t)rng_next();
            uint32_t d = prev;
            for (size_t i = 0; i < 128; i++) want[i] = d += v[i] + 1;
            for (int k = 0; k < ni; k++) {
                sh_codec_set_isa(is[k]);
                memset(back, 0xA5, sizeof back);
                sh_bitunpack128(out, w, back);
                cr_assert_arr_eq(back, v, sizeof v, "%s w=%u rep=%d", isa_name(is[k]), w, rep);
                memset(back, 0xA5, sizeof back);
                sh_bitunpack128_docs(out, w, prev, back);
                cr_assert_arr_eq(back, want, sizeof want, "%s docs w=%u rep=%d",
                                 isa_name(is[k]), w, rep);
            }
            sh_codec_set_isa(-1);
            free(out);
        }
    }
}

Test(bitpack, forcing_a_decoder_clamps_to_what_the_cpu_has) {
    int best = sh_codec_set_isa(-1);
    cr_assert_eq(sh_codec_isa(), best);
    cr_assert_eq(sh_codec_set_isa(SH_ISA_SCALAR), SH_ISA_SCALAR);
    cr_assert_eq(sh_codec_isa(), SH_ISA_SCALAR);
    cr_assert_eq(sh_codec_set_isa(99), best, "an unknown one means the best");
    cr_assert_geq(best, SH_ISA_SSE41);
    cr_assert_eq(best == SH_ISA_AVX2, __builtin_cpu_supports("avx2") != 0);
}

/* ==== 2. postings codec ================================================== */

/* One term's postings and positions, encoded from postings.c's comment
 * alone.  positions: per doc its tft title positions, then its tfb body
 * positions.  pos receives the term's positions stream (pos_off 0). */
static void spec_postings(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                          const uint32_t *positions, size_t n, const sh_lens *L, tbuf *post,
                          tbuf *pos) {
    const uint32_t *lent = L->lent, *lenb = L->lenb;
    double avgt = L->ndocs && L->sum_lent ? (double)L->sum_lent / L->ndocs : 1.0;
    double avgb = L->ndocs && L->sum_lenb ? (double)L->sum_lenb / L->ndocs : 1.0;
    size_t nblocks = (n + 127) / 128;
    tbuf skip = {0}, blocks = {0};
    const uint32_t *pp = positions;
    size_t pos_start = pos->len; /* skip records count from the term's pos_off */
    uint32_t prev_plus1 = 0;     /* prev = -1 before the first doc */
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t first = blk * 128, cnt = n - first < 128 ? n - first : 128;
        uint32_t gaps[128];
        uint32_t max_tft = 0, max_tfb = 0, min_lent = UINT32_MAX, min_lenb = UINT32_MAX;
        double max_x = 0;
        size_t doc_off = blocks.len, pos_off = pos->len - pos_start;
        for (size_t i = 0; i < cnt; i++) {
            uint32_t d = docs[first + i];
            gaps[i] = d - prev_plus1;
            prev_plus1 = d + 1;
            max_tft = tft[first + i] > max_tft ? tft[first + i] : max_tft;
            max_tfb = tfb[first + i] > max_tfb ? tfb[first + i] : max_tfb;
            min_lent = lent[d] < min_lent ? lent[d] : min_lent;
            min_lenb = lenb[d] < min_lenb ? lenb[d] : min_lenb;
            double x = 0;
            if (tft[first + i]) x += 3.0 * tft[first + i] / (0.25 + 0.75 / avgt * lent[d]);
            if (tfb[first + i]) x += tfb[first + i] / (0.25 + 0.75 / avgb * lenb[d]);
            max_x = x > max_x ? x : max_x;
        }
        if (cnt == 128) {
            const uint32_t *arr[3] = {gaps, tft + first, tfb + first};
            unsigned w[3];
            for (int k = 0; k < 3; k++) tb_putc(&blocks, (uint8_t)(w[k] = spec_width(arr[k], 128)));
            for (int k = 0; k < 3; k++) spec_pack(&blocks, arr[k], w[k]);
        } else {
            for (size_t i = 0; i < cnt; i++) {
                tb_varint(&blocks, gaps[i]);
                tb_varint(&blocks, tft[first + i]);
                tb_varint(&blocks, tfb[first + i]);
            }
        }
        for (size_t i = 0; i < cnt; i++) {
            uint32_t runs[2] = {tft[first + i], tfb[first + i]};
            for (int r = 0; r < 2; r++)
                for (uint32_t k = 0; k < runs[r]; k++, pp++)
                    tb_varint(pos, k ? pp[0] - pp[-1] : pp[0]);
        }
        tb_u32(&skip, docs[first + cnt - 1]);
        tb_u32(&skip, (uint32_t)doc_off);
        tb_u64(&skip, pos_off);
        tb_u32(&skip, max_tft);
        tb_u32(&skip, max_tfb);
        tb_u32(&skip, min_lent);
        tb_u32(&skip, min_lenb);
        /* the impact: raised by 1e-6, rounded up to a binary32 */
        double up = max_x * (1 + 1e-6);
        float f = (float)up;
        if ((double)f < up) f = nextafterf(f, HUGE_VALF);
        uint32_t fbits;
        memcpy(&fbits, &f, sizeof fbits);
        tb_u32(&skip, fbits);
    }
    if (nblocks > 1) tb_put(post, skip.p, skip.len);
    tb_put(post, blocks.p, blocks.len);
    tb_free(&skip);
    tb_free(&blocks);
}

/* The lengths of a universe of ndocs docs, with their sums. */
static sh_lens lens_of(const uint32_t *lent, const uint32_t *lenb, uint32_t ndocs) {
    sh_lens L = {lent, lenb, ndocs, 0, 0};
    for (uint32_t d = 0; d < ndocs; d++) {
        L.sum_lent += lent[d];
        L.sum_lenb += lenb[d];
    }
    return L;
}

/* -- the postings corpus: 3000 articles built through the writer --------- */

/* Planned terms (tokens with a digit, which the analyzer neither stems nor
 * splits, so each is one term at one position) with chosen document sets;
 * then PC_NFILL filler terms "w0".."w399" sprinkled at random. */
#define PC_NDOCS 3000u
#define PC_NFILL 400u
enum { T_ONE, T_E128, T_E129, T_E1000, T_DENSE, T_SPARSE, T_B256, T_BIG, T_TONLY, T_NPLANNED };
static const char *const pc_names[T_NPLANNED] = {"one1",    "e128", "e129", "e1000", "dense9",
                                                 "sparse9", "b256", "big9", "tonly9"};
#define PC_NTERMS (T_NPLANNED + PC_NFILL)

typedef struct pcorpus {
    uint32_t *tok[PC_NDOCS][2]; /* term numbers of title [0] and body [1], in order */
    uint32_t ntok[PC_NDOCS][2];
    uint8_t sparse[PC_NDOCS];
    char dir[PATH_LEN];
    sahel_index *ix;
    const sh_segment *seg;
} pcorpus;

static pcorpus g_pc;

static int pc_member(uint32_t k, uint32_t d) {
    switch (k) {
    case T_ONE: return d == 1234;
    case T_E128: return d % 23 == 5 && d / 23 < 128; /* 128 docs, the last 2926 */
    case T_E129: return d % 23 == 7 && d / 23 < 129; /* 129 docs, the last 2951 */
    case T_E1000: return d % 3 == 1;                 /* exactly 1000 docs */
    case T_DENSE: return 1;                          /* every doc */
    case T_SPARSE: return g_pc.sparse[d];
    case T_B256: return d >= 100 && d < 356; /* two full blocks, no tail */
    case T_BIG: return d % 500 == 0;         /* 6 docs with tf > 300 */
    case T_TONLY: return d % 10 == 3;        /* title only: body widths 0 */
    default: return 0;
    }
}

static void pc_name(uint32_t k, char *out, size_t cap) {
    if (k < T_NPLANNED)
        snprintf(out, cap, "%s", pc_names[k]);
    else
        snprintf(out, cap, "w%u", k - T_NPLANNED);
}

/* Generates the corpus, builds it (one segment) and opens it. */
static void pc_build(const char *name) {
    memset(&g_pc, 0, sizeof g_pc);
    rng_seed(0x5AE1);
    for (uint32_t d = 0; d < PC_NDOCS; d++)
        g_pc.sparse[d] = d == 0 || d == PC_NDOCS - 1 || rng_below(16) == 0;
    sahel_doc *docs = sh_test_xmalloc(PC_NDOCS * sizeof *docs);
    tbuf *text = calloc(PC_NDOCS * 3, sizeof *text);
    cr_assert(text);
    for (uint32_t d = 0; d < PC_NDOCS; d++) {
        sh_test_u32vec f[2] = {{0}, {0}};
        for (uint32_t k = 0; k < T_NPLANNED; k++) {
            if (!pc_member(k, d)) continue;
            uint32_t t, b;
            if (k == T_ONE) {
                t = 1, b = 2;
            } else if (k == T_TONLY) {
                t = 1 + rng_below(3), b = 0;
            } else if (k == T_BIG) {
                t = 0, b = 300 + d / 100;
            } else {
                uint32_t r = rng_below(8);
                if (r == 0)
                    t = 1 + rng_below(3), b = 0;
                else if (r == 1)
                    t = 1 + rng_below(2), b = 1 + rng_below(3);
                else
                    t = 0, b = 1 + rng_below(3);
                if (k == T_DENSE && rng_below(50) == 0) b = 20 + rng_below(30);
            }
            for (uint32_t i = 0; i < t; i++) sh_test_u32vec_push(&f[0], k);
            for (uint32_t i = 0; i < b; i++) sh_test_u32vec_push(&f[1], k);
        }
        for (uint32_t i = rng_below(3); i > 0; i--)
            sh_test_u32vec_push(&f[0], T_NPLANNED + rng_below(PC_NFILL));
        for (uint32_t i = rng_below(6); i > 0; i--)
            sh_test_u32vec_push(&f[1], T_NPLANNED + rng_below(PC_NFILL));
        tbuf *id = &text[3 * d], *tt = &text[3 * d + 1], *bt = &text[3 * d + 2];
        tb_printf(id, "p%04u", d);
        for (int fl = 0; fl < 2; fl++) {
            shuffle_u32(f[fl].p, f[fl].n);
            g_pc.tok[d][fl] = f[fl].p;
            g_pc.ntok[d][fl] = (uint32_t)f[fl].n;
            tbuf *out = fl ? bt : tt;
            tb_str(out, "");
            for (size_t i = 0; i < f[fl].n; i++) {
                char nm[32];
                pc_name(f[fl].p[i], nm, sizeof nm);
                if (i) tb_putc(out, ' ');
                tb_str(out, nm);
            }
        }
        docs[d] = mkdoc((const char *)id->p, (const char *)tt->p, (const char *)bt->p);
    }
    scratch(g_pc.dir, name);
    build_index(g_pc.dir, docs, PC_NDOCS, 0);
    for (size_t i = 0; i < PC_NDOCS * 3; i++) tb_free(&text[i]);
    free(text);
    free(docs);
    g_pc.ix = open_index(g_pc.dir);
    cr_assert_eq(g_pc.ix->nsegs, 1, "the default budget should give one segment");
    g_pc.seg = &g_pc.ix->segs[0];
    cr_assert_eq(g_pc.seg->ndocs, PC_NDOCS);
}

static void pc_free(void) {
    sahel_index_close(g_pc.ix);
    for (uint32_t d = 0; d < PC_NDOCS; d++) {
        free(g_pc.tok[d][0]);
        free(g_pc.tok[d][1]);
    }
}

/* Positions of term k in field fl of doc d (out may be NULL); the count. */
static uint32_t pc_positions(uint32_t k, uint32_t d, int fl, uint32_t *out) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < g_pc.ntok[d][fl]; i++)
        if (g_pc.tok[d][fl][i] == k) {
            if (out) out[n] = i;
            n++;
        }
    return n;
}

/* The expected postings of term k: docs holding it, ascending. */
static size_t pc_docs(uint32_t k, uint32_t *docs) {
    size_t n = 0;
    for (uint32_t d = 0; d < PC_NDOCS; d++)
        if (pc_positions(k, d, 0, NULL) + pc_positions(k, d, 1, NULL) > 0) docs[n++] = d;
    return n;
}

#define PC_MAXTF 512

/* The cursor sits on doc d: check tfs and both runs of positions (twice:
 * reading positions must not move the cursor). */
static void pc_check_current(sh_postings *pc, uint32_t k, uint32_t d, const char *how) {
    char nm[32];
    pc_name(k, nm, sizeof nm);
    cr_assert_eq(pc->doc, d, "%s: term %s: at doc %u, expected %u", how, nm, pc->doc, d);
    uint32_t et[PC_MAXTF], eb[PC_MAXTF], at[PC_MAXTF], ab[PC_MAXTF];
    uint32_t nt = pc_positions(k, d, 0, et), nb = pc_positions(k, d, 1, eb);
    cr_assert_eq(sh_postings_tft(pc), nt, "%s: term %s doc %u: tft %u, expected %u", how, nm, d,
                 sh_postings_tft(pc), nt);
    cr_assert_eq(sh_postings_tfb(pc), nb, "%s: term %s doc %u: tfb %u, expected %u", how, nm, d,
                 sh_postings_tfb(pc), nb);
    for (int rep = 0; rep < 2; rep++) {
        int rc = sh_postings_positions(pc, at, ab);
        cr_assert_eq(rc, 0, "%s: positions of %s in doc %u: %s", how, nm, d,
                     pc->err ? pc->err->msg : "");
        cr_assert_arr_eq(at, et, nt * sizeof *et, "%s: title positions of %s in doc %u", how, nm,
                         d);
        cr_assert_arr_eq(ab, eb, nb * sizeof *eb, "%s: body positions of %s in doc %u", how, nm, d);
    }
}

static void pc_lookup(uint32_t k, sh_terminfo *ti) {
    char nm[32];
    pc_name(k, nm, sizeof nm);
    sahel_error err = {0};
    int rc = sh_segment_lookup(g_pc.seg, nm, strlen(nm), ti, &err);
    cr_assert_eq(rc, 1, "term %s not found (%d: %s)", nm, rc, err.msg);
}

Test(postings, every_term_decodes_with_tfs_and_positions) {
    pc_build("postings-decode");
    static uint32_t docs[PC_NDOCS];
    static const uint32_t want_df[] = {1, 128, 129, 1000, PC_NDOCS, 0, 256, 6, 300};
    for (uint32_t d = 0; d < PC_NDOCS; d++) {
        cr_assert_eq(sh_segment_len_title(g_pc.seg, d), g_pc.ntok[d][0], "title length of %u", d);
        cr_assert_eq(sh_segment_len_body(g_pc.seg, d), g_pc.ntok[d][1], "body length of %u", d);
    }
    for (uint32_t k = 0; k < PC_NTERMS; k++) {
        size_t n = pc_docs(k, docs);
        if (n == 0) continue; /* a filler never drawn */
        if (k < T_NPLANNED && want_df[k])
            cr_assert_eq(n, want_df[k], "corpus df of %s", pc_names[k]);
        sh_terminfo ti;
        pc_lookup(k, &ti);
        cr_assert_eq(ti.df, n, "df of term %u", k);
        sh_postings pc;
        sahel_error err = {0};
        cr_assert_eq(sh_postings_init(&pc, g_pc.seg, &ti, &err), 0, "%s", err.msg);
        cr_assert_eq(pc.doc, SH_NO_DOC, "before the first next()");
        cr_assert_eq(pc.nblocks, (n + 127) / 128);
        cr_assert_eq(pc.skip == NULL, n <= 128, "a skip table only with several blocks");
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(sh_postings_next(&pc), 0, "next: %s", err.msg);
            pc_check_current(&pc, k, docs[i], "next");
        }
        for (int rep = 0; rep < 3; rep++) {
            cr_assert_eq(sh_postings_next(&pc), 0);
            cr_assert_eq(pc.doc, SH_NO_DOC, "past the end, term %u", k);
        }
        cr_assert_eq(sh_postings_advance(&pc, 0), 0);
        cr_assert_eq(pc.doc, SH_NO_DOC, "an exhausted cursor stays exhausted");
    }
    pc_free();
}

Test(postings, term_bytes_match_the_format_spec) {
    pc_build("postings-spec");
    static uint32_t docs[PC_NDOCS], tft[PC_NDOCS], tfb[PC_NDOCS], lent[PC_NDOCS], lenb[PC_NDOCS];
    for (uint32_t d = 0; d < PC_NDOCS; d++) {
        lent[d] = g_pc.ntok[d][0];
        lenb[d] = g_pc.ntok[d][1];
    }
    const sh_segment *seg = g_pc.seg;
    size_t nterms_seen = 0;
    for (uint32_t k = 0; k < PC_NTERMS; k++) {
        size_t n = pc_docs(k, docs);
        if (n == 0) continue;
        nterms_seen++;
        sh_test_u32vec positions = {0};
        for (size_t i = 0; i < n; i++) {
            uint32_t tmp[PC_MAXTF];
            tft[i] = pc_positions(k, docs[i], 0, tmp);
            for (uint32_t j = 0; j < tft[i]; j++) sh_test_u32vec_push(&positions, tmp[j]);
            tfb[i] = pc_positions(k, docs[i], 1, tmp);
            for (uint32_t j = 0; j < tfb[i]; j++) sh_test_u32vec_push(&positions, tmp[j]);
        }
        tbuf post = {0}, pos = {0};
        /* the writer takes the impacts at the averages META records */
        const sh_lens L = {lent, lenb, seg->ndocs, seg->sum_len_title, seg->sum_len_body};
        spec_postings(docs, tft, tfb, positions.p, n, &L, &post, &pos);
        sh_terminfo ti;
        pc_lookup(k, &ti);
        char nm[32];
        pc_name(k, nm, sizeof nm);
        cr_assert_eq(ti.post_len, post.len, "postings length of %s: %llu, spec %zu", nm,
                     (unsigned long long)ti.post_len, post.len);
        cr_assert(memcmp(seg->sec[SH_SEC_POSTINGS].p + ti.post_off, post.p, post.len) == 0,
                  "postings bytes of %s differ from the spec", nm);
        cr_assert_eq(ti.pos_len, pos.len, "positions length of %s", nm);
        cr_assert(memcmp(seg->sec[SH_SEC_POSITIONS].p + ti.pos_off, pos.p, pos.len) == 0,
                  "positions bytes of %s differ from the spec", nm);
        tb_free(&post);
        tb_free(&pos);
        free(positions.p);
    }
    cr_assert_eq(seg->nterms, nterms_seen, "the dictionary holds exactly the corpus's terms");
    /* the terms' ranges tile the two streams in dictionary order */
    cr_assert_eq(le64(seg->sec[SH_SEC_TERMIDX].p + (size_t)seg->nterms * SH_TERMREC),
                 seg->sec[SH_SEC_POSTINGS].len);
    pc_free();
}

/* advance() to random increasing targets (some equal to or below the
 * current doc, some past the end), with next() mixed in, against a linear
 * scan of the expected list; tfs and positions checked at every stop. */
Test(postings, advance_matches_linear_scan) {
    pc_build("postings-advance");
    static uint32_t docs[PC_NDOCS];
    for (uint32_t k = 0; k < T_NPLANNED + 40; k++) {
        size_t n = pc_docs(k, docs);
        if (n == 0) continue;
        uint32_t avg_gap = PC_NDOCS / (uint32_t)n;
        for (int round = 0; round < 6; round++) {
            rng_seed(0xADD0 + k * 16 + (uint64_t)round);
            sh_terminfo ti;
            pc_lookup(k, &ti);
            sh_postings pc;
            sahel_error err = {0};
            cr_assert_eq(sh_postings_init(&pc, g_pc.seg, &ti, &err), 0);
            size_t at = SIZE_MAX; /* index of the current doc; SIZE_MAX = not started */
            uint32_t target = 0;
            for (int step = 0; step < 4000; step++) {
                uint32_t r = rng_below(8);
                if (r == 0 && at != SIZE_MAX) {
                    cr_assert_eq(sh_postings_next(&pc), 0, "%s", err.msg);
                    at = at + 1 > n ? n : at + 1;
                } else {
                    if (r == 1 && at != SIZE_MAX && at < n)
                        target = docs[at] - rng_below(3) * (docs[at] > 2); /* at or below */
                    else if (r == 2)
                        target += 1;
                    else
                        target += rng_below(2 * avg_gap * (1 + (uint32_t)round) + 2);
                    cr_assert_eq(sh_postings_advance(&pc, target), 0, "%s", err.msg);
                    size_t lb = 0;
                    while (lb < n && docs[lb] < target) lb++;
                    /* advance never moves back, nor off a doc >= target */
                    if (at == SIZE_MAX || (at < n && docs[at] < target)) at = lb;
                }
                if (at >= n) {
                    cr_assert_eq(pc.doc, SH_NO_DOC,
                                 "term %u round %d step %d: expected the end, at %u", k, round,
                                 step, pc.doc);
                    break;
                }
                pc_check_current(&pc, k, docs[at], "advance");
            }
            cr_assert_eq(sh_postings_advance(&pc, UINT32_MAX - 1), 0);
            cr_assert_eq(pc.doc, SH_NO_DOC);
            cr_assert_eq(sh_postings_next(&pc), 0);
            cr_assert_eq(pc.doc, SH_NO_DOC);
        }
        /* every doc of the list, and every doc + 1, as a fresh target */
        for (size_t i = 0; i < n; i += 1 + n / 200) {
            sh_terminfo ti;
            pc_lookup(k, &ti);
            sh_postings pc;
            sahel_error err = {0};
            cr_assert_eq(sh_postings_init(&pc, g_pc.seg, &ti, &err), 0);
            cr_assert_eq(sh_postings_advance(&pc, docs[i]), 0);
            pc_check_current(&pc, k, docs[i], "advance to a doc");
            cr_assert_eq(sh_postings_advance(&pc, docs[i] + 1), 0);
            if (i + 1 < n)
                pc_check_current(&pc, k, docs[i + 1], "advance past a doc");
            else
                cr_assert_eq(pc.doc, SH_NO_DOC);
        }
    }
    pc_free();
}

/* Title "attack-s": the whole "attacks" stems to "attack" at position 0,
 * the part "attack" is also at 0, "s" at 1.  Body: Attacks(0) on(1)
 * the(2) attack-s(whole 3, attack 3, s 4) front(5) attack(6). */
Test(postings, hyphenated_whole_and_part_share_a_position) {
    char dir[PATH_LEN];
    scratch(dir, "postings-hyphen");
    sahel_doc docs[2] = {mkdoc("h1", "attack-s", "Attacks on the attack-s front attack"),
                         mkdoc("h2", "Mali", "nothing here")};
    build_index(dir, docs, 2, 0);
    sahel_index *ix = open_index(dir);
    const sh_segment *seg = &ix->segs[0];
    cr_assert_eq(sh_segment_len_title(seg, 0), 2);
    cr_assert_eq(sh_segment_len_body(seg, 0), 7);
    sahel_error err = {0};
    sh_terminfo ti;
    cr_assert_eq(sh_segment_lookup(seg, "attack", 6, &ti, &err), 1);
    cr_assert_eq(ti.df, 1);
    sh_postings pc;
    cr_assert_eq(sh_postings_init(&pc, seg, &ti, &err), 0);
    cr_assert_eq(sh_postings_next(&pc), 0);
    cr_assert_eq(pc.doc, 0);
    cr_assert_eq(sh_postings_tft(&pc), 2, "whole and part both count in the title");
    cr_assert_eq(sh_postings_tfb(&pc), 4);
    uint32_t t[2], b[4];
    cr_assert_eq(sh_postings_positions(&pc, t, b), 0);
    static const uint32_t want_t[2] = {0, 0}, want_b[4] = {0, 3, 3, 6};
    cr_assert_arr_eq(t, want_t, sizeof t);
    cr_assert_arr_eq(b, want_b, sizeof b);
    /* positions stream: title 0, +0; body 0, +3, +0, +3 */
    static const uint8_t want_pos[6] = {0, 0, 0, 3, 0, 3};
    cr_assert_eq(ti.pos_len, 6);
    cr_assert_arr_eq(seg->sec[SH_SEC_POSITIONS].p + ti.pos_off, want_pos, 6);
    cr_assert_eq(sh_postings_next(&pc), 0);
    cr_assert_eq(pc.doc, SH_NO_DOC);
    /* "s": title 1, body 4 */
    cr_assert_eq(sh_segment_lookup(seg, "s", 1, &ti, &err), 1);
    cr_assert_eq(sh_postings_init(&pc, seg, &ti, &err), 0);
    cr_assert_eq(sh_postings_next(&pc), 0);
    cr_assert_eq(sh_postings_tft(&pc), 1);
    cr_assert_eq(sh_postings_tfb(&pc), 1);
    cr_assert_eq(sh_postings_positions(&pc, t, b), 0);
    cr_assert_eq(t[0], 1);
    cr_assert_eq(b[0], 4);
    cr_assert_eq(sahel_index_verify(ix, &err), 0, "%s", err.msg);
    sahel_index_close(ix);
}

/* Random lists with wide gaps, tfs and positions: sh_postings_encode must
 * produce the spec's bytes. */
#define WIDE_UNIVERSE (1u << 18)

typedef struct plist {
    uint32_t *docs, *tft, *tfb;
    sh_test_u32vec pos;
    size_t n;
} plist;

static void make_plist(plist *l, size_t n, uint32_t *lent, uint32_t *lenb) {
    memset(l, 0, sizeof *l);
    l->docs = sh_test_xmalloc(n * sizeof *l->docs);
    l->tft = sh_test_xmalloc(n * sizeof *l->tft);
    l->tfb = sh_test_xmalloc(n * sizeof *l->tfb);
    l->n = n;
    /* spread n docs over the universe, with occasional huge gaps */
    uint32_t d = rng_below(4);
    for (size_t i = 0; i < n; i++) {
        l->docs[i] = d;
        uint32_t room = (uint32_t)((WIDE_UNIVERSE - 1 - d) / (n - i + 1));
        d += 1 + (rng_below(10) == 0 ? rng_below(room) : rng_below(room / 8 + 1));
    }
    cr_assert_lt(l->docs[n - 1], WIDE_UNIVERSE);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rng_below(40);
        uint32_t t = r == 0 ? 1000 + rng_below(20000) : rng_below(4);
        uint32_t b = r == 1 ? 1000 + rng_below(70000) : rng_below(6);
        if (t + b == 0) b = 1;
        l->tft[i] = t;
        l->tfb[i] = b;
        uint32_t runs[2] = {t, b};
        for (int f = 0; f < 2; f++) {
            uint32_t p = rng_below(8) == 0 ? rng_next() >> 33 : rng_below(50);
            for (uint32_t k = 0; k < runs[f]; k++) {
                sh_test_u32vec_push(&l->pos, p);
                p += rng_below(4) == 0 ? 0 : rng_below(3000); /* repeats allowed */
                if (p > (1u << 31)) p = 1u << 31;
            }
        }
        /* lists may share a doc: its lengths bound every list's tfs */
        uint32_t *lt = &lent[l->docs[i]], *lb = &lenb[l->docs[i]];
        uint32_t want_t = t + rng_below(5), want_b = b + rng_below(5);
        if (want_t > *lt) *lt = want_t;
        if (want_b > *lb) *lb = want_b;
    }
}

static void free_plist(plist *l) {
    free(l->docs);
    free(l->tft);
    free(l->tfb);
    free(l->pos.p);
}

Test(postings, encode_matches_spec_for_wide_random_lists) {
    static const size_t sizes[] = {1, 2, 127, 128, 129, 255, 256, 257, 700};
    uint32_t *lent = calloc(WIDE_UNIVERSE, sizeof *lent),
             *lenb = calloc(WIDE_UNIVERSE, sizeof *lenb);
    cr_assert(lent && lenb);
    rng_seed(0xE7C0DE);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        plist l;
        make_plist(&l, sizes[s], lent, lenb);
        sh_buf post = {0}, pos = {0};
        /* something already in the buffers: offsets are relative to the term */
        sh_buf_put(&post, "xyz", 3);
        sh_buf_put(&pos, "q", 1);
        const sh_lens L = lens_of(lent, lenb, WIDE_UNIVERSE);
        cr_assert_eq(sh_postings_encode(l.docs, l.tft, l.tfb, l.pos.p, l.n, &L, &post, &pos), 0);
        tbuf sp = {0}, spos = {0};
        tb_str(&sp, "xyz");
        tb_str(&spos, "q");
        spec_postings(l.docs, l.tft, l.tfb, l.pos.p, l.n, &L, &sp, &spos);
        cr_assert_eq(post.len, sp.len, "n=%zu: postings %zu bytes, spec %zu", l.n, post.len,
                     sp.len);
        cr_assert(memcmp(post.p, sp.p, sp.len) == 0, "n=%zu: postings bytes differ", l.n);
        cr_assert_eq(pos.len, spos.len, "n=%zu: positions length", l.n);
        cr_assert(memcmp(pos.p, spos.p, spos.len) == 0, "n=%zu: positions bytes differ", l.n);
        sh_buf_free(&post);
        sh_buf_free(&pos);
        tb_free(&sp);
        tb_free(&spos);
        free_plist(&l);
    }
    free(lent);
    free(lenb);
}

/* Wide lists decoded through a segment assembled here with sh_segw_*: one
 * term per list, every other section minimal but valid for the checks
 * the cursor relies on (DOCLENS bounds the tfs). */
Test(postings, wide_lists_roundtrip_through_a_handmade_segment) {
    char dir[PATH_LEN];
    scratch(dir, "postings-handmade");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    const uint32_t ndocs = WIDE_UNIVERSE;
    uint32_t *lent = calloc(ndocs, sizeof *lent), *lenb = calloc(ndocs, sizeof *lenb);
    cr_assert(lent && lenb);
    rng_seed(0x4A4D);
    enum { NL = 4 };
    static const size_t sizes[NL] = {1, 128, 129, 900};
    plist l[NL];
    for (int i = 0; i < NL; i++) make_plist(&l[i], sizes[i], lent, lenb);
    sh_buf post = {0}, pos = {0};
    tbuf terms = {0}, termidx = {0}, meta = {0}, lens = {0}, ids = {0}, idsort = {0}, hashes = {0},
         storeidx = {0};
    for (int i = 0; i < NL; i++) {
        tb_u64(&termidx, post.len);
        tb_u64(&termidx, pos.len);
        tb_u32(&termidx, (uint32_t)terms.len);
        tb_u32(&termidx, (uint32_t)l[i].n);
        tb_printf(&terms, "t%d", i); /* t0 < t1 < t2 < t3 */
        const sh_lens L = lens_of(lent, lenb, ndocs);
        cr_assert_eq(
            sh_postings_encode(l[i].docs, l[i].tft, l[i].tfb, l[i].pos.p, l[i].n, &L, &post, &pos),
            0);
    }
    tb_u64(&termidx, post.len);
    tb_u64(&termidx, pos.len);
    tb_u32(&termidx, (uint32_t)terms.len);
    tb_u32(&termidx, 0);
    tb_u32(&meta, ndocs);
    tb_u32(&meta, NL);
    tb_u64(&meta, 0);
    tb_u64(&meta, 0);
    tb_u64(&meta, 0);
    tb_str(&meta, "english");
    tb_zeros(&meta, 32 - 7);
    tb_doclens(&lens, lent, lenb, ndocs);
    for (uint32_t d = 0; d < ndocs; d++) tb_u32(&idsort, d);
    tb_zeros(&ids, ((size_t)ndocs + 1) * 4); /* every id empty */
    tb_zeros(&hashes, (size_t)ndocs * 8);
    tb_u64(&storeidx, 0);
    tb_u32(&storeidx, ndocs);
    tb_u32(&storeidx, 0);
    sh_segw sw;
    sahel_error err = {0};
    cr_assert_eq(sh_segw_open(&sw, dir, "hand.sseg", &err), 0, "%s", err.msg);
    struct {
        uint32_t id;
        const void *p;
        size_t len;
    } secs[] = {
        {SH_SEC_META, meta.p, meta.len},
        {SH_SEC_TERMS, terms.p, terms.len},
        {SH_SEC_TERMIDX, termidx.p, termidx.len},
        {SH_SEC_POSTINGS, post.p, post.len},
        {SH_SEC_POSITIONS, pos.p, pos.len},
        {SH_SEC_DOCLENS, lens.p, lens.len},
        {SH_SEC_IDS, ids.p, ids.len},
        {SH_SEC_IDSORT, idsort.p, idsort.len},
        {SH_SEC_DOCHASH, hashes.p, hashes.len},
        {SH_SEC_STORE, "", 0},
        {SH_SEC_STOREIDX, storeidx.p, storeidx.len},
    };
    /* POSITIONS is reserved first and written in place in two pieces,
     * one before and one after the sections that follow its room */
    sh_spill ps;
    cr_assert_eq(sh_spill_reserve(&ps, &sw, SH_SEC_POSITIONS, pos.len, &err), 0, "%s", err.msg);
    size_t half = pos.len / 3;
    cr_assert_eq(sh_spill_put(&ps, pos.p, half, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++)
        if (secs[i].id != SH_SEC_POSITIONS)
            cr_assert_eq(sh_segw_section(&sw, secs[i].id, secs[i].p, secs[i].len, &err), 0, "%s",
                         err.msg);
    cr_assert_eq(sh_spill_put(&ps, pos.p + half, pos.len - half, &err), 0, "%s", err.msg);
    cr_assert_eq(sh_spill_copy(&ps, &sw, SH_SEC_POSITIONS, &err), 0, "%s", err.msg);
    sh_spill_close(&ps);
    cr_assert_eq(sh_segw_finish(&sw, &err), 0, "%s", err.msg);
    sh_segment seg;
    cr_assert_eq(sh_segment_open(dir, "hand.sseg", &seg, &err), 0, "%s", err.msg);
    /* open checked every section's checksum: the file is a few MB */
    cr_assert_eq(seg.sec[SH_SEC_POSITIONS].off, SH_SEG_HEADER, "the room is where the file was");
    cr_assert_eq(seg.ndocs, ndocs);
    uint32_t *tb = sh_test_xmalloc(100000 * sizeof *tb), *bb = sh_test_xmalloc(100000 * sizeof *bb);
    for (int i = 0; i < NL; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "t%d", i);
        sh_terminfo ti;
        cr_assert_eq(sh_segment_lookup(&seg, nm, strlen(nm), &ti, &err), 1);
        sh_postings pc;
        cr_assert_eq(sh_postings_init(&pc, &seg, &ti, &err), 0, "%s", err.msg);
        const uint32_t *pp = l[i].pos.p;
        for (size_t j = 0; j < l[i].n; j++) {
            cr_assert_eq(sh_postings_next(&pc), 0, "list %d doc %zu: %s", i, j, err.msg);
            cr_assert_eq(pc.doc, l[i].docs[j], "list %d entry %zu", i, j);
            cr_assert_eq(sh_postings_tft(&pc), l[i].tft[j]);
            cr_assert_eq(sh_postings_tfb(&pc), l[i].tfb[j]);
            cr_assert_eq(sh_postings_positions(&pc, tb, bb), 0, "%s", err.msg);
            cr_assert_arr_eq(tb, pp, l[i].tft[j] * sizeof *tb, "list %d entry %zu title", i, j);
            pp += l[i].tft[j];
            cr_assert_arr_eq(bb, pp, l[i].tfb[j] * sizeof *bb, "list %d entry %zu body", i, j);
            pp += l[i].tfb[j];
        }
        cr_assert_eq(sh_postings_next(&pc), 0);
        cr_assert_eq(pc.doc, SH_NO_DOC);
        /* skipping with wide gaps: every 7th doc as a target */
        cr_assert_eq(sh_postings_init(&pc, &seg, &ti, &err), 0);
        for (size_t j = 0; j < l[i].n; j += 7) {
            cr_assert_eq(sh_postings_advance(&pc, l[i].docs[j]), 0, "%s", err.msg);
            cr_assert_eq(pc.doc, l[i].docs[j]);
            cr_assert_eq(sh_postings_tfb(&pc), l[i].tfb[j]);
        }
    }
    free(tb);
    free(bb);
    sh_segment_close(&seg);
    for (int i = 0; i < NL; i++) free_plist(&l[i]);
    sh_buf_free(&post);
    sh_buf_free(&pos);
    tb_free(&terms);
    tb_free(&termidx);
    tb_free(&meta);
    tb_free(&lens);
    tb_free(&ids);
    tb_free(&idsort);
    tb_free(&hashes);
    tb_free(&storeidx);
    free(lent);
    free(lenb);
}

/* -- the cursor on in-memory segments ------------------------------------ */

/* A segment held in heap buffers of exactly the terms' bytes (no file, no
 * mapping), so that ASan reports any read past a term's postings or
 * positions.  Only what the cursor reads is set: ndocs, POSTINGS,
 * POSITIONS and DOCLENS (all lengths 1). */
typedef struct memseg {
    sh_segment seg;
    uint8_t *post, *pos, *lens;
} memseg;

static void memseg_make(memseg *m, uint32_t ndocs, const uint8_t *post, size_t post_len,
                        const uint8_t *pos, size_t pos_len) {
    memset(m, 0, sizeof *m);
    m->post = sh_test_xmalloc(post_len);
    m->pos = sh_test_xmalloc(pos_len);
    if (post_len) memcpy(m->post, post, post_len);
    if (pos_len) memcpy(m->pos, pos, pos_len);
    uint32_t *ones = sh_test_xmalloc(((size_t)ndocs + 1) * sizeof *ones);
    for (uint32_t d = 0; d < ndocs; d++) ones[d] = 1;
    tbuf lens = {0};
    tb_doclens(&lens, ones, ones, ndocs);
    free(ones);
    m->lens = lens.p;
    m->seg.sec[SH_SEC_DOCLENS].len = lens.len;
    m->seg.path = (char *)"memory";
    m->seg.map = m->post;
    m->seg.ndocs = ndocs;
    m->seg.sec[SH_SEC_POSTINGS].p = m->post;
    m->seg.sec[SH_SEC_POSTINGS].len = post_len;
    m->seg.sec[SH_SEC_POSITIONS].p = m->pos;
    m->seg.sec[SH_SEC_POSITIONS].len = pos_len;
    m->seg.sec[SH_SEC_DOCLENS].p = m->lens;
}

static void memseg_free(memseg *m) {
    free(m->post);
    free(m->pos);
    free(m->lens);
}

/* n distinct docs below `universe`, ascending (selection sampling), with
 * tfs mostly small and now and then large, and their positions. */
static void make_random_plist(plist *l, size_t n, uint32_t universe) {
    memset(l, 0, sizeof *l);
    l->docs = sh_test_xmalloc(n * sizeof *l->docs);
    l->tft = sh_test_xmalloc(n * sizeof *l->tft);
    l->tfb = sh_test_xmalloc(n * sizeof *l->tfb);
    l->n = n;
    size_t k = 0;
    for (uint32_t d = 0; d < universe && k < n; d++)
        if ((uint64_t)rng_below(universe - d) < n - k) l->docs[k++] = d;
    cr_assert_eq(k, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t r = rng_below(50);
        l->tft[i] = r == 0 ? 100 + rng_below(900) : rng_below(3);
        l->tfb[i] = r == 1 ? 1000 + rng_below(5000) : rng_below(5) + (l->tft[i] == 0);
        uint32_t runs[2] = {l->tft[i], l->tfb[i]};
        for (int f = 0; f < 2; f++) {
            uint32_t p = rng_below(100);
            for (uint32_t j = 0; j < runs[f]; j++, p += rng_below(20))
                sh_test_u32vec_push(&l->pos, p);
        }
    }
}

/* Lists of every shape: a doc, a tail, exact blocks, block + 1, sparse,
 * dense, every doc of the universe; term t lies at post_off[t]. */
#define RL_UNIVERSE 40000u
#define RL_N 12
static const size_t rl_sizes[RL_N] = {1, 5, 127, 128, 129, 256, 300, 1000, 4000, 12000, 30000,
                                      RL_UNIVERSE};

typedef struct rlists {
    plist l[RL_N];
    sh_terminfo ti[RL_N];
    memseg m;
} rlists;

static void rlists_make(rlists *r, uint64_t seed) {
    rng_seed(seed);
    static uint32_t lent[RL_UNIVERSE], lenb[RL_UNIVERSE];
    for (uint32_t d = 0; d < RL_UNIVERSE; d++) lent[d] = lenb[d] = 1;
    sh_buf post = {0}, pos = {0};
    const sh_lens L = lens_of(lent, lenb, RL_UNIVERSE);
    for (int t = 0; t < RL_N; t++) {
        make_random_plist(&r->l[t], rl_sizes[t], RL_UNIVERSE);
        sh_terminfo *ti = &r->ti[t];
        memset(ti, 0, sizeof *ti);
        ti->idx = (uint32_t)t;
        ti->df = (uint32_t)r->l[t].n;
        ti->post_off = post.len;
        ti->pos_off = pos.len;
        cr_assert_eq(sh_postings_encode(r->l[t].docs, r->l[t].tft, r->l[t].tfb, r->l[t].pos.p,
                                        r->l[t].n, &L, &post, &pos),
                     0);
        ti->post_len = post.len - ti->post_off;
        ti->pos_len = pos.len - ti->pos_off;
    }
    memseg_make(&r->m, RL_UNIVERSE, post.p, post.len, pos.p, pos.len);
    sh_buf_free(&post);
    sh_buf_free(&pos);
}

static void rlists_free(rlists *r) {
    for (int t = 0; t < RL_N; t++) free_plist(&r->l[t]);
    memseg_free(&r->m);
}

static size_t lower_bound_u32(const uint32_t *v, size_t n, uint32_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A cursor limited to [lo, hi) (sh_postings_range, a search split over
 * threads) holds exactly the list's docs in the range, walked or
 * advanced, with their tfs: ranges that start and end inside a block, on
 * its first or last doc, on a block's edge, past the list, or hold none
 * of it. */
Test(postings, a_range_cursor_holds_exactly_the_docs_of_its_range) {
    rlists *r = sh_test_xmalloc(sizeof *r);
    rlists_make(r, 0x5EED2);
    for (int t = 0; t < RL_N; t++) {
        const plist *l = &r->l[t];
        uint32_t cuts[16];
        size_t nc = 0;
        cuts[nc++] = 0;
        cuts[nc++] = RL_UNIVERSE;
        cuts[nc++] = l->docs[0];
        cuts[nc++] = l->docs[0] + 1;
        cuts[nc++] = l->docs[l->n - 1];
        cuts[nc++] = l->docs[l->n - 1] + 1;
        if (l->n > 128) {
            cuts[nc++] = l->docs[127];     /* a block's last doc */
            cuts[nc++] = l->docs[127] + 1; /* just past it */
            cuts[nc++] = l->docs[128];     /* the next block's first */
        }
        while (nc < 16) cuts[nc++] = rng_below(RL_UNIVERSE + 1);
        for (size_t a = 0; a < nc; a++)
            for (size_t b = 0; b < nc; b++) {
                uint32_t lo = cuts[a], hi = cuts[b];
                if (lo > hi) continue;
                size_t first = lower_bound_u32(l->docs, l->n, lo);
                size_t end = lower_bound_u32(l->docs, l->n, hi);
                if (end < first) end = first;
                sahel_error err = {0};
                sh_postings pc;
                /* walked */
                cr_assert_eq(sh_postings_init(&pc, &r->m.seg, &r->ti[t], &err), 0);
                cr_assert_eq(sh_postings_range(&pc, lo, hi), 0, "%s", err.msg);
                for (size_t j = first; j < end; j++) {
                    cr_assert_eq(pc.doc, l->docs[j], "list %d [%u, %u): doc %zu", t, lo, hi, j);
                    cr_assert_eq(sh_postings_tft(&pc), l->tft[j]);
                    cr_assert_eq(sh_postings_tfb(&pc), l->tfb[j]);
                    cr_assert_eq(sh_postings_next(&pc), 0);
                }
                cr_assert_eq(pc.doc, SH_NO_DOC, "list %d [%u, %u): past the range", t, lo, hi);
                cr_assert_eq(sh_postings_next(&pc), 0);
                cr_assert_eq(pc.doc, SH_NO_DOC);
                /* advanced, by random steps, to the range's end and past it */
                cr_assert_eq(sh_postings_init(&pc, &r->m.seg, &r->ti[t], &err), 0);
                cr_assert_eq(sh_postings_range(&pc, lo, hi), 0, "%s", err.msg);
                uint32_t target = lo;
                for (;;) {
                    target += 1 + rng_below(rng_below(3) ? 64 : 2000);
                    cr_assert_eq(sh_postings_advance(&pc, target), 0, "%s", err.msg);
                    size_t at = lower_bound_u32(l->docs, l->n, target);
                    if (at >= end) {
                        cr_assert_eq(pc.doc, SH_NO_DOC, "list %d [%u, %u): advance to %u", t,
                                     lo, hi, target);
                        break;
                    }
                    cr_assert_eq(pc.doc, l->docs[at], "list %d [%u, %u): advance to %u", t, lo,
                                 hi, target);
                    cr_assert_eq(sh_postings_tft(&pc), l->tft[at]);
                }
                cr_assert_eq(sh_postings_advance(&pc, hi + 1000), 0);
                cr_assert_eq(pc.doc, SH_NO_DOC);
            }
    }
    rlists_free(r);
    free(r);
}

/* Walk, advance, block bounds and intersection of random lists, on every
 * decoder, against the lists themselves. */
Test(postings, random_lists_decode_and_advance_alike_on_every_decoder) {
    rlists *r = sh_test_xmalloc(sizeof *r);
    rlists_make(r, 0x5EED1);
    int is[3], ni = isas(is);
    uint32_t *tb = sh_test_xmalloc(8000 * sizeof *tb), *bb = sh_test_xmalloc(8000 * sizeof *bb);
    for (int k = 0; k < ni; k++) {
        sh_codec_set_isa(is[k]);
        const char *nm = isa_name(is[k]);
        for (int t = 0; t < RL_N; t++) {
            const plist *l = &r->l[t];
            sahel_error err = {0};
            sh_postings pc;
            /* every doc, its tfs and positions, in order */
            cr_assert_eq(sh_postings_init(&pc, &r->m.seg, &r->ti[t], &err), 0, "%s", err.msg);
            const uint32_t *pp = l->pos.p;
            for (size_t j = 0; j < l->n; j++) {
                cr_assert_eq(sh_postings_next(&pc), 0, "%s list %d: %s", nm, t, err.msg);
                cr_assert_eq(pc.doc, l->docs[j], "%s list %d doc %zu", nm, t, j);
                cr_assert_eq(sh_postings_tft(&pc), l->tft[j], "%s list %d doc %zu", nm, t, j);
                cr_assert_eq(sh_postings_tfb(&pc), l->tfb[j], "%s list %d doc %zu", nm, t, j);
                if (j % 7 == 0 || l->n < 300) {
                    cr_assert_eq(sh_postings_positions(&pc, tb, bb), 0, "%s", err.msg);
                    cr_assert_arr_eq(tb, pp, l->tft[j] * sizeof *tb);
                    cr_assert_arr_eq(bb, pp + l->tft[j], l->tfb[j] * sizeof *bb);
                }
                pp += l->tft[j] + l->tfb[j];
            }
            cr_assert_eq(sh_postings_next(&pc), 0);
            cr_assert_eq(pc.doc, SH_NO_DOC);
            /* advance to random increasing targets, short and long steps */
            cr_assert_eq(sh_postings_init(&pc, &r->m.seg, &r->ti[t], &err), 0);
            uint32_t target = 0;
            for (;;) {
                uint32_t step = rng_below(4) == 0 ? rng_below(RL_UNIVERSE / 8)
                                                  : rng_below(2 * RL_UNIVERSE / (uint32_t)l->n + 2);
                target += step;
                cr_assert_eq(sh_postings_advance(&pc, target), 0, "%s", err.msg);
                size_t at = lower_bound_u32(l->docs, l->n, target);
                if (at == l->n) {
                    cr_assert_eq(pc.doc, SH_NO_DOC, "%s list %d target %u", nm, t, target);
                    break;
                }
                /* advance never moves back: the doc may lie past target */
                if (pc.doc != l->docs[at]) {
                    size_t cur = lower_bound_u32(l->docs, l->n, pc.doc);
                    cr_assert(cur < l->n && l->docs[cur] == pc.doc && pc.doc > target,
                              "%s list %d target %u: at %u", nm, t, target, pc.doc);
                    at = cur;
                }
                cr_assert_eq(sh_postings_tfb(&pc), l->tfb[at]);
                /* the shallow view agrees with the block the cursor holds */
                uint32_t blk = sh_postings_find_block(&pc, 0, pc.doc);
                cr_assert_eq(blk, at / 128, "%s list %d: find_block", nm, t);
                cr_assert_eq(sh_postings_block_last(&pc, blk),
                             l->docs[SH_MIN(l->n, 128 * (size_t)blk + 128) - 1]);
                sh_block_bound bd;
                sh_postings_block_bound(&pc, blk, &bd);
                uint32_t mt = 0, mb = 0;
                for (size_t j = 128 * (size_t)blk; j < SH_MIN(l->n, 128 * (size_t)blk + 128); j++) {
                    mt = SH_MAX(mt, l->tft[j]);
                    mb = SH_MAX(mb, l->tfb[j]);
                }
                cr_assert_eq(bd.max_tft, mt);
                cr_assert_eq(bd.max_tfb, mb);
                cr_assert_eq(bd.min_lent, 1);
                target = pc.doc;
            }
            cr_assert_eq(sh_postings_find_block(&pc, 0, UINT32_MAX - 1), pc.nblocks);
        }
        /* every pair of lists intersected, with the least room the call
         * takes, so that it stops and resumes often */
        for (int a = 0; a < RL_N; a += 1 + (a > 6)) {
            for (int b = 0; b < RL_N; b += 1 + (b > 6)) {
                const plist *la = &r->l[a], *lb = &r->l[b];
                uint32_t *want = sh_test_xmalloc(SH_MIN(la->n, lb->n) * sizeof *want);
                size_t nw = 0;
                for (size_t i = 0, j = 0; i < la->n && j < lb->n;) {
                    uint32_t x = la->docs[i], y = lb->docs[j];
                    if (x == y) want[nw++] = x;
                    if (x <= y) i++;
                    if (y <= x) j++;
                }
                sh_postings pa, pb;
                sahel_error err = {0};
                cr_assert_eq(sh_postings_init(&pa, &r->m.seg, &r->ti[a], &err), 0);
                cr_assert_eq(sh_postings_init(&pb, &r->m.seg, &r->ti[b], &err), 0);
                uint32_t out[SH_POSTINGS_AND_ROOM];
                size_t got = 0, n;
                do {
                    cr_assert_eq(sh_postings_intersect(&pa, &pb, out, SH_POSTINGS_AND_ROOM, &n), 0,
                                 "%s", err.msg);
                    cr_assert_leq(got + n, nw, "%s lists %d & %d: too many", nm, a, b);
                    cr_assert_arr_eq(out, want + got, n * sizeof *out, "%s lists %d & %d", nm, a,
                                     b);
                    got += n;
                    /* nothing below both cursors is left out */
                    uint32_t low = SH_MIN(pa.doc, pb.doc);
                    cr_assert_eq(got, lower_bound_u32(want, nw, low));
                } while (pa.doc != SH_NO_DOC && pb.doc != SH_NO_DOC);
                cr_assert_eq(got, nw, "%s lists %d & %d: %zu of %zu", nm, a, b, got, nw);
                free(want);
            }
        }
    }
    sh_codec_set_isa(-1);
    free(tb);
    free(bb);
    rlists_free(r);
    free(r);
}

/* Everything a damaged term can make the cursor do: each call returns 0
 * or SAHEL_ECORRUPT and reads nothing outside the term (heap buffers of
 * the exact size: ASan).  Returns the first error. */
static int exercise_cursor(const sh_segment *seg, const sh_terminfo *ti, const sh_terminfo *other) {
    static uint32_t tb[1u << 16], bb[1u << 16];
    sahel_error err = {0};
    sh_postings pc, po;
    int rc = sh_postings_init(&pc, seg, ti, &err);
    int first = rc;
    for (int steps = 0; !rc && steps < 100000; steps++) {
        rc = sh_postings_next(&pc);
        if (rc || pc.doc == SH_NO_DOC) break;
        uint32_t nt = sh_postings_tft(&pc), nb = sh_postings_tfb(&pc);
        if (nt <= (1u << 16) && nb <= (1u << 16)) rc = sh_postings_positions(&pc, tb, bb);
    }
    if (!first) first = rc;
    if (!sh_postings_init(&pc, seg, ti, &err))
        for (uint32_t t = 0; !(rc = sh_postings_advance(&pc, t)) && pc.doc != SH_NO_DOC; t += 37)
            (void)sh_postings_tfb(&pc);
    if (!first) first = rc;
    /* limited to a range of docs (a search split over threads): walked and
     * advanced, the range ending inside a block */
    for (uint32_t lo = 0; lo < seg->ndocs; lo += seg->ndocs / 3 + 1) {
        uint32_t hi = lo + seg->ndocs / 3 + 7;
        if (sh_postings_init(&pc, seg, ti, &err)) break;
        for (rc = sh_postings_range(&pc, lo, hi); !rc && pc.doc != SH_NO_DOC;
             rc = sh_postings_next(&pc)) {
            cr_assert(pc.doc >= lo && pc.doc < hi, "doc %u outside [%u, %u)", pc.doc, lo, hi);
            (void)sh_postings_tft(&pc);
        }
        if (!first) first = rc;
        if (sh_postings_init(&pc, seg, ti, &err)) break;
        rc = sh_postings_range(&pc, lo, hi);
        for (uint32_t t = lo; !rc && t < hi + 50; t += 29) {
            if ((rc = sh_postings_advance(&pc, t)) || pc.doc == SH_NO_DOC) break;
            cr_assert(pc.doc >= t && pc.doc < hi, "doc %u outside [%u, %u)", pc.doc, t, hi);
        }
        if (!first) first = rc;
    }
    if (!sh_postings_init(&pc, seg, ti, &err) && !sh_postings_init(&po, seg, other, &err)) {
        uint32_t out[SH_POSTINGS_AND_ROOM];
        size_t n;
        while (!(rc = sh_postings_intersect(&pc, &po, out, SH_POSTINGS_AND_ROOM, &n)) &&
               pc.doc != SH_NO_DOC && po.doc != SH_NO_DOC)
            ;
    }
    if (!first) first = rc;
    cr_assert(first == 0 || first == SAHEL_ECORRUPT, "unexpected code %d", first);
    if (first) cr_assert(strstr(err.msg, "damaged postings") != NULL, "message: %s", err.msg);
    return first;
}

/* Every truncation and every byte set to 0x00, 0xFF or a random value,
 * of a term of three blocks (skip table, two packed blocks, a tail). */
Test(postings, damaged_terms_are_reported_never_followed) {
    rng_seed(0xDA3A6E);
    static uint32_t lent[4096], lenb[4096];
    plist l;
    make_random_plist(&l, 300, 4096);
    sh_buf post = {0}, pos = {0};
    const sh_lens lens = lens_of(lent, lenb, 4096);
    cr_assert_eq(sh_postings_encode(l.docs, l.tft, l.tfb, l.pos.p, l.n, &lens, &post, &pos), 0);
    /* a clean second list in its own segment, to intersect with */
    size_t L = post.len;
    sh_terminfo ti = {.df = 300, .post_off = 0, .post_len = L, .pos_off = 0, .pos_len = pos.len};
    memseg m;
    memseg_make(&m, 4096, post.p, L, pos.p, pos.len);
    cr_assert_eq(exercise_cursor(&m.seg, &ti, &ti), 0, "the intact term decodes");
    memseg_free(&m);
    size_t bad = 0;
    for (size_t cut = 0; cut < L; cut += 1 + (cut > 64) * 5) {
        sh_terminfo tc = ti;
        tc.post_len = cut;
        memseg_make(&m, 4096, post.p, cut, pos.p, pos.len);
        bad += exercise_cursor(&m.seg, &tc, &tc) != 0;
        memseg_free(&m);
    }
    cr_assert_gt(bad, 0);
    uint8_t *copy = sh_test_xmalloc(L);
    for (size_t at = 0; at < L; at++) {
        for (int v = 0; v < 3; v++) {
            memcpy(copy, post.p, L);
            copy[at] = v == 0 ? 0x00 : v == 1 ? 0xFF : (uint8_t)rng_next();
            memseg_make(&m, 4096, copy, L, pos.p, pos.len);
            (void)exercise_cursor(&m.seg, &ti, &ti);
            memseg_free(&m);
        }
    }
    free(copy);
    sh_buf_free(&post);
    sh_buf_free(&pos);
    free_plist(&l);
}

/* Damage of a known kind, with the message it must give and the call that
 * must give it: bit widths, doc ids that wrap or pass ndocs, a skip record
 * that lies, and tfs that only the lazy tf decode sees. */
Test(postings, each_kind_of_damage_names_itself) {
    /* two packed blocks: docs 0..255, tft 0, tfb 1 (16 bytes of ones),
     * one body position 0 each; block 1 at doc_off 19 */
    tbuf p = {0}, pos = {0};
    for (int b = 0; b < 2; b++) {
        tb_u32(&p, 127 + 128 * (uint32_t)b);
        tb_u32(&p, 19 * (uint32_t)b);
        tb_u64(&p, 128 * (uint64_t)b);
        tb_u32(&p, 0);
        tb_u32(&p, 1);
        tb_u32(&p, 1);
        tb_u32(&p, 1);
        tb_u32(&p, 0x7F800000); /* impact: +infinity, no bound */
    }
    for (int b = 0; b < 2; b++) {
        tb_putc(&p, 0);
        tb_putc(&p, 0);
        tb_putc(&p, 1);
        for (int i = 0; i < 16; i++) tb_putc(&p, 0xFF);
    }
    tb_zeros(&pos, 256);
    sh_terminfo ti = {.df = 256, .post_len = p.len, .pos_len = pos.len};
    const size_t B1 = 2 * 36 + 19; /* block 1 */
    struct {
        size_t at;
        uint8_t v;
        uint32_t ndocs;
        int lazy; /* found only when block 1's tfs are asked for */
        const char *what;
    } cases[] = {
        {B1, 33, 256, 0, "bit width"},
        {B1 + 1, 200, 256, 0, "bit width"},
        {B1 + 2, 32, 256, 0, "truncated block"}, /* wb 32: 512 bytes past the end */
        {36, 0xF0, 256, 0, "skip record"}, /* block 1 last_doc 240, not 255 */
        {0, 126, 256, 0, "skip record"},
        {B1 + 3, 0x00, 256, 1, "term frequency"}, /* docs 128 and 136: tfs 0 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t *copy = sh_test_xmalloc(p.len);
        memcpy(copy, p.p, p.len);
        copy[cases[c].at] = cases[c].v;
        memseg m;
        memseg_make(&m, cases[c].ndocs, copy, p.len, pos.p, pos.len);
        sahel_error err = {0};
        sh_postings pc;
        cr_assert_eq(sh_postings_init(&pc, &m.seg, &ti, &err), 0);
        int rc = sh_postings_advance(&pc, 130);
        if (cases[c].lazy) {
            cr_assert_eq(rc, 0, "case %zu: the doc ids are intact", c);
            cr_assert_eq(pc.doc, 130);
            cr_assert_eq(sh_postings_tfb(&pc), 0, "case %zu: damaged tfs read as 0", c);
            rc = sh_postings_next(&pc);
        }
        cr_assert_eq(rc, SAHEL_ECORRUPT, "case %zu (%s): rc %d", c, cases[c].what, rc);
        cr_assert(strstr(err.msg, cases[c].what), "case %zu: message %s", c, err.msg);
        /* damage stays: the cursor goes no further */
        memset(&err, 0, sizeof err);
        cr_assert_eq(sh_postings_next(&pc), SAHEL_ECORRUPT, "case %zu: sticky", c);
        cr_assert_eq(sh_postings_advance(&pc, 250), SAHEL_ECORRUPT, "case %zu: sticky", c);
        cr_assert(strstr(err.msg, cases[c].what), "case %zu: again %s", c, err.msg);
        memseg_free(&m);
        free(copy);
    }
    /* doc ids past ndocs, or wrapping: a varint tail (gap 250 in a
     * segment of 200 docs), a packed block of gaps 255 (width 8: doc
     * 32767), and one of width 32 whose second gap wraps to doc 0 */
    for (int c = 0; c < 3; c++) {
        tbuf t = {0};
        uint32_t df = c == 0 ? 2 : 128, ndocs = c == 0 ? 200 : 256;
        if (c == 0) {
            static const uint8_t tail[] = {0, 0, 1, 0xFA, 0x01, 0, 1};
            tb_put(&t, tail, sizeof tail);
        } else {
            uint32_t w = c == 1 ? 8 : 32, g[128], one[128];
            for (int i = 0; i < 128; i++) {
                g[i] = c == 1 ? 255 : i == 1 ? UINT32_MAX : 0;
                one[i] = 1;
            }
            uint8_t packed[512];
            tb_putc(&t, (uint8_t)w);
            tb_putc(&t, 0);
            tb_putc(&t, 1);
            tb_put(&t, packed, sh_bitpack128(g, w, packed));
            tb_put(&t, packed, sh_bitpack128(one, 1, packed));
        }
        sh_terminfo tt = {.df = df, .post_len = t.len, .pos_len = pos.len};
        memseg m;
        memseg_make(&m, ndocs, t.p, t.len, pos.p, pos.len);
        sahel_error err = {0};
        sh_postings pc;
        cr_assert_eq(sh_postings_init(&pc, &m.seg, &tt, &err), 0);
        cr_assert_eq(sh_postings_next(&pc), SAHEL_ECORRUPT, "doc case %d", c);
        cr_assert(strstr(err.msg, "doc id out of range"), "doc case %d: %s", c, err.msg);
        memseg_free(&m);
        tb_free(&t);
    }
    /* a tf larger than the positions left to the block */
    tbuf q = {0};
    tb_put(&q, p.p, 64 + 19);
    tb_putc(&q, 0);
    tb_putc(&q, 0);
    tb_putc(&q, 32);
    for (uint32_t i = 0; i < 128; i++) tb_u32(&q, i == 5 ? 129 : 1);
    sh_terminfo tq = ti;
    tq.post_len = q.len;
    memseg m;
    memseg_make(&m, 256, q.p, q.len, pos.p, pos.len);
    sahel_error err = {0};
    sh_postings pc;
    cr_assert_eq(sh_postings_init(&pc, &m.seg, &tq, &err), 0);
    cr_assert_eq(sh_postings_advance(&pc, 128), 0, "%s", err.msg);
    cr_assert_eq(sh_postings_tfb(&pc), 0);
    uint32_t t[4], b[4];
    cr_assert_eq(sh_postings_positions(&pc, t, b), SAHEL_ECORRUPT);
    cr_assert(strstr(err.msg, "term frequency"), "%s", err.msg);
    memseg_free(&m);
    tb_free(&q);
    tb_free(&p);
    tb_free(&pos);
}

static void two_article_index(char *dir, const char *name);

/* A segment of format version 1 (horizontal bit packing) must be refused
 * by name, with the way out, never decoded with the new layout. */
Test(postings, an_index_of_the_old_format_is_refused_with_a_rebuild_hint) {
    char dir[PATH_LEN], path[PATH_LEN];
    two_article_index(dir, "postings-v1");
    segment_path(dir, path);
    size_t size;
    uint8_t *m = read_whole(path, &size);
    cr_assert_eq(le32(m + 8), 4);
    m[8] = 1;
    write_whole(path, m, size);
    free(m);
    sahel_index *ix = NULL;
    sahel_error err = {0};
    int rc = sahel_index_open(dir, &ix, &err);
    cr_assert_eq(rc, SAHEL_EVERSION, "open gave %d: %s", rc, err.msg);
    cr_assert(strstr(err.msg, "format version 1"), "%s", err.msg);
    cr_assert(strstr(err.msg, "reads 4"), "%s", err.msg);
    cr_assert(strstr(err.msg, "sahelindex build --force"), "%s", err.msg);
}

/* ==== 3. dictionary ====================================================== */

/* Terms chosen for the order of their bytes: prefixes of one another,
 * digits before letters, and multi-byte UTF-8 (Greek 0xCE, Cyrillic 0xD0,
 * Arabic 0xD8 lead bytes) that a signed comparison would put first.  Each
 * is what the analyzer makes of itself (tokens with a digit are not
 * stemmed); then 1000 generated terms k00000, k00003, ... for depth. */
static const char *const dict_fixed[] = {"a1",  "a10",  "a100", "a1000", "a2", "ab3",
                                         "b1",  "z9",   "ж1",   "ж10",   "λ1", "λ12",
                                         "100", "1000", "2.5",  "ب1",    "ж2", "λ3"};
#define DICT_NFIXED (sizeof dict_fixed / sizeof dict_fixed[0])
#define DICT_NGEN 1000u
#define DICT_NTERMS (DICT_NFIXED + DICT_NGEN)
#define DICT_NDOCS 50u

typedef struct dict_env {
    char dir[PATH_LEN];
    sahel_index *ix;
    const sh_segment *seg;
    char *terms[DICT_NTERMS]; /* sorted by memcmp */
} dict_env;

static int cmp_cstr_bytes(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    int c = memcmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

static void dict_build(dict_env *e, const char *name) {
    memset(e, 0, sizeof *e);
    for (size_t i = 0; i < DICT_NFIXED; i++) e->terms[i] = strdup(dict_fixed[i]);
    for (uint32_t i = 0; i < DICT_NGEN; i++) {
        char t[16];
        snprintf(t, sizeof t, "k%05u", 3 * i);
        e->terms[DICT_NFIXED + i] = strdup(t);
    }
    tbuf body[DICT_NDOCS] = {{0}};
    char ids[DICT_NDOCS][8];
    sahel_doc docs[DICT_NDOCS];
    rng_seed(0xD1C7);
    for (size_t i = 0; i < DICT_NTERMS; i++) {
        tb_str(&body[i % DICT_NDOCS], e->terms[i]);
        tb_putc(&body[i % DICT_NDOCS], ' ');
        uint32_t extra = rng_below(DICT_NDOCS);
        tb_str(&body[extra], e->terms[i]);
        tb_putc(&body[extra], ' ');
    }
    for (uint32_t d = 0; d < DICT_NDOCS; d++) {
        snprintf(ids[d], sizeof ids[d], "d%u", d);
        docs[d] = mkdoc(ids[d], NULL, (const char *)body[d].p);
    }
    scratch(e->dir, name);
    build_index(e->dir, docs, DICT_NDOCS, 0);
    for (uint32_t d = 0; d < DICT_NDOCS; d++) tb_free(&body[d]);
    qsort(e->terms, DICT_NTERMS, sizeof e->terms[0], cmp_cstr_bytes);
    e->ix = open_index(e->dir);
    e->seg = &e->ix->segs[0];
}

static void dict_free(dict_env *e) {
    sahel_index_close(e->ix);
    for (size_t i = 0; i < DICT_NTERMS; i++) free(e->terms[i]);
}

Test(dictionary, terms_are_the_corpus_terms_in_memcmp_order) {
    dict_env e;
    dict_build(&e, "dict-order");
    cr_assert_eq(e.seg->nterms, DICT_NTERMS);
    /* spot checks of the byte order that a signed or locale compare breaks */
    cr_assert_str_eq(e.terms[0], "100");
    cr_assert_str_eq(e.terms[DICT_NTERMS - 1], "ب1");
    for (uint32_t i = 0; i < e.seg->nterms; i++) {
        const char *t;
        size_t len;
        sh_terminfo ti;
        sahel_error err = {0};
        cr_assert_eq(sh_segment_term(e.seg, i, &t, &len, &ti, &err), 0, "%s", err.msg);
        cr_assert_eq(len, strlen(e.terms[i]), "term %u length", i);
        cr_assert(memcmp(t, e.terms[i], len) == 0, "term %u is '%.*s', expected '%s'", i, (int)len,
                  t, e.terms[i]);
        cr_assert_eq(ti.idx, i);
        cr_assert_geq(ti.df, 1);
        cr_assert_leq(ti.df, 2);
    }
    dict_free(&e);
}

Test(dictionary, lookup_finds_every_term_and_rejects_absent_ones) {
    dict_env e;
    dict_build(&e, "dict-lookup");
    sahel_error err = {0};
    for (uint32_t i = 0; i < DICT_NTERMS; i++) {
        sh_terminfo ti;
        cr_assert_eq(sh_segment_lookup(e.seg, e.terms[i], strlen(e.terms[i]), &ti, &err), 1,
                     "'%s' not found", e.terms[i]);
        cr_assert_eq(ti.idx, i, "'%s' found at %u, expected %u", e.terms[i], ti.idx, i);
        /* the term followed by a NUL byte sorts between it and the next */
        char key[64];
        size_t len = strlen(e.terms[i]);
        memcpy(key, e.terms[i], len);
        key[len] = '\0';
        cr_assert_eq(sh_segment_lookup(e.seg, key, len + 1, &ti, &err), 0, "'%s\\0'", e.terms[i]);
        /* and every proper prefix that is not itself a term is absent */
        for (size_t p = 0; p < len; p++) {
            int is_term = 0;
            for (uint32_t j = 0; j < DICT_NTERMS && !is_term; j++)
                is_term = strlen(e.terms[j]) == p && memcmp(e.terms[j], key, p) == 0;
            if (!is_term)
                cr_assert_eq(sh_segment_lookup(e.seg, key, p, &ti, &err), 0, "prefix %zu of '%s'",
                             p, e.terms[i]);
        }
    }
    /* four before the first term ("100"), nine between two terms, four
     * after the last ("ب1") */
    static const char *const absent[] = {
        "",   "0", "10",  "0zzz", "a11", "a3",           "ab",   "k00001",      "k02998",
        "λ2", "m", "ж11", "ж",    "ب2",  "\xef\xbf\xbf", "\xff", "\xff\xff\xff"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        sh_terminfo ti;
        cr_assert_eq(sh_segment_lookup(e.seg, absent[i], strlen(absent[i]), &ti, &err), 0,
                     "absent term '%s' found", absent[i]);
    }
    dict_free(&e);
}

/* Brute force: first index whose term is >= key, and the terms that start
 * with a prefix. */
static uint32_t brute_lower_bound(const dict_env *e, const char *key, size_t len) {
    for (uint32_t i = 0; i < DICT_NTERMS; i++) {
        size_t tl = strlen(e->terms[i]);
        int c = memcmp(e->terms[i], key, tl < len ? tl : len);
        if (c > 0 || (c == 0 && tl >= len)) return i;
    }
    return DICT_NTERMS;
}

Test(dictionary, lower_bound_and_prefix_ranges) {
    dict_env e;
    dict_build(&e, "dict-range");
    static const char *const keys[] = {
        "",    "0",   "1", "100", "1000", "10000", "2",     "a",      "a1",     "a10", "a1000",
        "a11", "b",   "k", "k0",  "k00",  "k000",  "k0299", "k02997", "k02998", "k1",  "z",
        "z9",  "z99", "λ", "λ1",  "λ2",   "ж",     "ж1",    "ب",      "ب1",     "\xff"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len = strlen(keys[i]);
        uint32_t lb = sh_segment_lower_bound(e.seg, keys[i], len);
        cr_assert_eq(lb, brute_lower_bound(&e, keys[i], len), "lower_bound('%s') = %u", keys[i],
                     lb);
        /* the prefix range: [lb, first term not starting with the key) */
        uint32_t end = lb;
        while (end < e.seg->nterms) {
            const char *t;
            size_t tl;
            sahel_error err = {0};
            cr_assert_eq(sh_segment_term(e.seg, end, &t, &tl, NULL, &err), 0);
            if (tl < len || memcmp(t, keys[i], len) != 0) break;
            end++;
        }
        uint32_t want = 0;
        for (uint32_t j = 0; j < DICT_NTERMS; j++)
            want += strlen(e.terms[j]) >= len && memcmp(e.terms[j], keys[i], len) == 0;
        cr_assert_eq(end - lb, want, "prefix '%s': %u terms in range, %u expected", keys[i],
                     end - lb, want);
    }
    cr_assert_eq(sh_segment_lower_bound(e.seg, "", 0), 0);
    cr_assert_eq(sh_segment_lower_bound(e.seg, "\xff", 1), DICT_NTERMS);
    for (uint32_t i = 0; i < DICT_NTERMS; i++)
        cr_assert_eq(sh_segment_lower_bound(e.seg, e.terms[i], strlen(e.terms[i])), i);
    dict_free(&e);
}

/* ==== 4. document store ================================================== */

#define DS_NDOCS 80u
#define DS_BIG 37u /* the article larger than a block */

typedef struct ds_env {
    char dir[PATH_LEN];
    tbuf f[DS_NDOCS][SH_STORE_NFIELDS];
    int present[DS_NDOCS][SH_STORE_NFIELDS]; /* 0: the field was passed as NULL */
    uint64_t line[DS_NDOCS];
    sahel_index *ix;
    const sh_segment *seg;
} ds_env;

static ds_env g_ds;

/* Articles of 0.5 to 6 KiB of mixed-script words (and one of ~100 KiB),
 * some fields absent, one holding a NUL byte, lines up to UINT64_MAX. */
static void ds_build(const char *name) {
    static const char *const words[] = {"Bamako",   "Goïta",  "junte",       "مالي",
                                        "النيجر",   "中文",   "Ouagadougou", "ⵜⴰⵎⴰⵣⵖⵜ",
                                        "🇲🇱",       "naïve",  "Ségou",       "Tombouctou",
                                        "İstanbul", "Straße", "Ελλάδα",      "Liptako-Gourma",
                                        "5,100",    "2.5",    "l'armée",     "Faso's"};
    const size_t nwords = sizeof words / sizeof words[0];
    ds_env *e = &g_ds;
    memset(e, 0, sizeof *e);
    rng_seed(0xD0C5);
    sahel_doc docs[DS_NDOCS];
    for (uint32_t d = 0; d < DS_NDOCS; d++) {
        tbuf *f = e->f[d];
        tb_printf(&f[SH_STORE_ID], d == 5 ? "ид-%u" : "doc-%03u", d);
        tb_printf(&f[SH_STORE_TITLE], "Titre %u : Goïta — مالي 🇲🇱", d);
        size_t target = d == DS_BIG ? 100u * 1024u : 500 + rng_below(5600);
        tb_str(&f[SH_STORE_BODY], "");
        while (f[SH_STORE_BODY].len < target) {
            tb_str(&f[SH_STORE_BODY], words[rng_below((uint32_t)nwords)]);
            tb_str(&f[SH_STORE_BODY], rng_below(12) == 0 ? ".\n" : " ");
        }
        tb_printf(&f[SH_STORE_DATE], "2024-%02u-%02u", 1 + d % 12, 1 + d % 28);
        if (d == 9)
            tb_put(&f[SH_STORE_SOURCE], "AFP\0Reuters", 11); /* lengths, not NULs, delimit */
        else
            tb_str(&f[SH_STORE_SOURCE], d % 2 ? "Le Monde Afrique" : "Jeune Afrique");
        tb_printf(&f[SH_STORE_URL], "https://example.org/%u/%s", d, d % 3 ? "a" : "ségou");
        tb_str(&f[SH_STORE_LANG], d % 4 == 0 ? "ar" : "fr");
        tb_printf(&f[SH_STORE_PATH], "corpus/%02u/articles.jsonl", d / 10);
        e->line[d] = d == 3 ? UINT64_MAX : d == 4 ? 0 : (uint64_t)d * 3 + 1;
        for (int k = 0; k < SH_STORE_NFIELDS; k++) e->present[d][k] = 1;
        if (d % 7 == 0) e->present[d][SH_STORE_DATE] = 0;
        if (d % 5 == 0) e->present[d][SH_STORE_SOURCE] = 0;
        if (d == 11) e->present[d][SH_STORE_TITLE] = 0;
        if (d == 12) e->present[d][SH_STORE_URL] = 0;
        sahel_doc *doc = &docs[d];
        memset(doc, 0, sizeof *doc);
        const char **ptr[SH_STORE_NFIELDS] = {&doc->id,     &doc->title, &doc->body, &doc->date,
                                              &doc->source, &doc->url,   &doc->lang, &doc->path};
        size_t *len[SH_STORE_NFIELDS] = {&doc->id_len,   &doc->title_len,  &doc->body_len,
                                         &doc->date_len, &doc->source_len, &doc->url_len,
                                         &doc->lang_len, &doc->path_len};
        for (int k = 0; k < SH_STORE_NFIELDS; k++)
            if (e->present[d][k]) {
                *ptr[k] = (const char *)f[k].p;
                *len[k] = f[k].len;
            }
        doc->line = e->line[d];
    }
    scratch(e->dir, name);
    build_index(e->dir, docs, DS_NDOCS, 0);
    e->ix = open_index(e->dir);
    e->seg = &e->ix->segs[0];
}

static void ds_free(void) {
    sahel_index_close(g_ds.ix);
    for (uint32_t d = 0; d < DS_NDOCS; d++)
        for (int k = 0; k < SH_STORE_NFIELDS; k++) tb_free(&g_ds.f[d][k]);
}

static void ds_check(uint32_t d, const sh_stored *s) {
    static const char *const names[SH_STORE_NFIELDS] = {"id",     "title", "body", "date",
                                                        "source", "url",   "lang", "path"};
    for (int k = 0; k < SH_STORE_NFIELDS; k++) {
        size_t want = g_ds.present[d][k] ? g_ds.f[d][k].len : 0;
        cr_assert_eq(s->len[k], want, "doc %u field %s: length %zu, expected %zu", d, names[k],
                     s->len[k], want);
        if (want)
            cr_assert(memcmp(s->f[k], g_ds.f[d][k].p, want) == 0, "doc %u field %s differs", d,
                      names[k]);
        else
            cr_assert_null(s->f[k], "doc %u: an absent field reads as NULL", d);
    }
    cr_assert_eq(s->line, g_ds.line[d], "doc %u line", d);
}

Test(docstore, every_field_roundtrips_in_any_order) {
    ds_build("docstore-fields");
    const sh_segment *seg = g_ds.seg;
    uint32_t nblocks = (uint32_t)(seg->sec[SH_SEC_STOREIDX].len / SH_STOREREC) - 1;
    cr_assert_geq(nblocks, 5, "%u blocks: the corpus should span several store blocks", nblocks);
    sahel_error err = {0};
    sh_buf block = {0};
    uint32_t cached = UINT32_MAX;
    sh_stored s;
    for (uint32_t d = 0; d < DS_NDOCS; d++) { /* forward: each block loaded once */
        cr_assert_eq(sh_store_get(seg, d, &block, &cached, &s, &err), 0, "doc %u: %s", d, err.msg);
        ds_check(d, &s);
    }
    for (uint32_t d = DS_NDOCS; d-- > 0;) { /* backward */
        cr_assert_eq(sh_store_get(seg, d, &block, &cached, &s, &err), 0, "doc %u: %s", d, err.msg);
        ds_check(d, &s);
    }
    uint32_t order[DS_NDOCS];
    for (uint32_t d = 0; d < DS_NDOCS; d++) order[d] = d;
    rng_seed(0x0DE7);
    shuffle_u32(order, DS_NDOCS);
    for (uint32_t i = 0; i < DS_NDOCS; i++) { /* random, the cache going back and forth */
        cr_assert_eq(sh_store_get(seg, order[i], &block, &cached, &s, &err), 0, "%s", err.msg);
        ds_check(order[i], &s);
    }
    for (uint32_t i = 0; i < DS_NDOCS; i++) { /* cold cache each time */
        sh_buf fresh = {0};
        uint32_t none = UINT32_MAX;
        cr_assert_eq(sh_store_get(seg, order[i], &fresh, &none, &s, &err), 0, "%s", err.msg);
        ds_check(order[i], &s);
        sh_buf_free(&fresh);
    }
    cr_assert_neq(sh_store_get(seg, DS_NDOCS, &block, &cached, &s, &err), 0,
                  "a doc number past the end is an error");
    sh_buf_free(&block);
    /* the same through the public API */
    sahel_hits *h;
    cr_assert_eq(sahel_search(g_ds.ix, "Tombouctou", 10, NULL, &h, &err), 0, "%s", err.msg);
    cr_assert_gt(sahel_hits_count(h), 0);
    for (size_t i = 0; i < sahel_hits_count(h); i++) {
        sahel_hit hit;
        cr_assert_eq(sahel_hits_get(h, i, &hit, &err), 0, "%s", err.msg);
        uint32_t d = UINT32_MAX;
        for (uint32_t j = 0; j < DS_NDOCS; j++)
            if (g_ds.f[j][SH_STORE_ID].len == hit.id_len &&
                !memcmp(g_ds.f[j][SH_STORE_ID].p, hit.id, hit.id_len))
                d = j;
        cr_assert_neq(d, UINT32_MAX, "hit id '%.*s' unknown", (int)hit.id_len, hit.id);
        cr_assert_eq(hit.body_len, g_ds.f[d][SH_STORE_BODY].len);
        cr_assert(!memcmp(hit.body, g_ds.f[d][SH_STORE_BODY].p, hit.body_len));
        cr_assert_eq(hit.line, g_ds.line[d]);
    }
    sahel_hits_free(h);
    cr_assert_eq(sahel_index_verify(g_ds.ix, &err), 0, "%s", err.msg);
    ds_free();
}

/* One record laid out from docstore.c's comment: eight LEB128-length
 * prefixed values, then the line as LEB128. */
static void spec_record(tbuf *out, uint32_t d) {
    for (int k = 0; k < SH_STORE_NFIELDS; k++) {
        size_t len = g_ds.present[d][k] ? g_ds.f[d][k].len : 0;
        tb_varint(out, len);
        tb_put(out, g_ds.f[d][k].p, len);
    }
    tb_varint(out, g_ds.line[d]);
}

/* STOREIDX, every zstd frame and DOCHASH against the spec: frames hold the
 * records of their docs in order and nothing else, blocks close as soon as
 * they reach SH_STORE_BLOCK bytes, and each doc's hash is XXH3_64bits of
 * its record. */
Test(docstore, records_blocks_and_hashes_match_the_format_spec) {
    ds_build("docstore-spec");
    const sh_segment *seg = g_ds.seg;
    const sh_section *ix = &seg->sec[SH_SEC_STOREIDX], *st = &seg->sec[SH_SEC_STORE];
    cr_assert_eq(ix->len % 16, 0);
    uint32_t nblocks = (uint32_t)(ix->len / 16) - 1;
    const uint8_t *sent = ix->p + (size_t)nblocks * 16;
    cr_assert_eq(le64(sent), st->len, "sentinel: STORE length");
    cr_assert_eq(le32(sent + 8), DS_NDOCS, "sentinel: ndocs");
    cr_assert_eq(le32(sent + 12), 0);
    uint32_t big_block = UINT32_MAX;
    for (uint32_t b = 0; b < nblocks; b++) {
        const uint8_t *r = ix->p + (size_t)b * 16;
        uint64_t off = le64(r), next_off = le64(r + 16);
        uint32_t first = le32(r + 8), next = le32(r + 24);
        cr_assert_eq(le32(r + 12), 0, "reserved word of block %u", b);
        cr_assert_lt(off, next_off);
        cr_assert_lt(first, next);
        if (b == 0) cr_assert_eq(off, 0);
        if (b == 0) cr_assert_eq(first, 0);
        unsigned long long size = ZSTD_getFrameContentSize(st->p + off, next_off - off);
        cr_assert(size != ZSTD_CONTENTSIZE_ERROR && size != ZSTD_CONTENTSIZE_UNKNOWN,
                  "block %u: the frame records its content size", b);
        cr_assert_eq(ZSTD_findFrameCompressedSize(st->p + off, next_off - off), next_off - off,
                     "block %u is exactly one frame", b);
        uint8_t *raw = sh_test_xmalloc((size_t)size);
        size_t got = ZSTD_decompress(raw, (size_t)size, st->p + off, next_off - off);
        cr_assert(!ZSTD_isError(got) && got == size, "block %u decompresses", b);
        tbuf want = {0};
        size_t last_rec = 0;
        for (uint32_t d = first; d < next; d++) {
            size_t before = want.len;
            spec_record(&want, d);
            last_rec = want.len - before;
            cr_assert_eq(le64(seg->sec[SH_SEC_DOCHASH].p + (size_t)d * 8),
                         XXH3_64bits(want.p + before, last_rec), "DOCHASH of doc %u", d);
            if (d == DS_BIG) big_block = b;
        }
        cr_assert_eq(got, want.len, "block %u: %zu bytes, records of docs %u..%u make %zu", b, got,
                     first, next - 1, want.len);
        cr_assert(memcmp(raw, want.p, got) == 0, "block %u content differs from its records", b);
        if (b + 1 < nblocks) {
            cr_assert_geq(got, SH_STORE_BLOCK, "block %u closed early (%zu bytes)", b, got);
            cr_assert_lt(got - last_rec, SH_STORE_BLOCK, "block %u closed late", b);
        }
        tb_free(&want);
        free(raw);
    }
    cr_assert_neq(big_block, UINT32_MAX);
    ds_free();
}

/* ==== 5. manifest ======================================================== */

/* The fixed manifest, laid out by hand from manifest.c's comment. */
static void golden_manifest(tbuf *b) {
    static const uint8_t head[64] = {
        'S', 'A', 'H', 'L', 'M', 'A', 'N', '1', /* magic */
        1,   0,   0,   0,                       /* version 1 */
        2,   0,   0,   0,                       /* nsegs 2 */
        7,   0,   0,   0,   0,   0,   0,   0,   /* generation 7 */
        'e', 'n', 'g', 'l', 'i', 's', 'h', 0,   /* language, NUL padded to 32 */
        0,   0,   0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        9,   0,   0,   0,   0,   0,   0,   0};  /* sources generation 9 */
    static const uint8_t seg1[28] = {10,  0,   's', 'e', 'g', '-', 'a', '.',
                                     's', 's', 'e', 'g', /* u16 name length, name */
                                     3,   0,   0,   0,   /* ndocs 3 */
                                     0,   0,   0,   0,   0,   0,   0,   0,  /* del_gen 0 */
                                     0,   0,   0,   0};  /* ndeleted 0 */
    static const uint8_t seg2[19] = {1,    0,    'b',                       /* name "b" */
                                     0x04, 0x03, 0x02, 0x01,                /* ndocs 0x01020304 */
                                     0x88, 0x77, 0x66, 0x55,
                                     0x44, 0x33, 0x22, 0x11, /* del_gen 0x1122334455667788 */
                                     5,    0,    0,    0};   /* ndeleted 5 */
    tb_put(b, head, sizeof head);
    tb_put(b, seg1, sizeof seg1);
    tb_put(b, seg2, sizeof seg2);
    tb_u64(b, XXH3_64bits(b->p, b->len)); /* every byte above */
}

static void fixed_manifest(sh_manifest *m, sh_manifest_seg segs[2]) {
    memset(m, 0, sizeof *m);
    m->generation = 7;
    m->sources_gen = 9;
    snprintf(m->lang, sizeof m->lang, "english");
    segs[0] = (sh_manifest_seg){"seg-a.sseg", 3, 0, 0};
    segs[1] = (sh_manifest_seg){"b", 0x01020304u, 0x1122334455667788ull, 5};
    m->segs = segs;
    m->nsegs = 2;
}

Test(manifest, golden_bytes_and_roundtrip) {
    char dir[PATH_LEN], path[PATH_LEN];
    scratch(dir, "manifest-golden");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    sh_manifest m, back;
    sh_manifest_seg segs[2];
    fixed_manifest(&m, segs);
    sahel_error err = {0};
    cr_assert_eq(sh_manifest_write(dir, &m, NULL, &err), 0, "%s", err.msg);
    cr_assert(!file_exists(dir, "MANIFEST.tmp"), "the temporary is renamed away");
    join(path, dir, "MANIFEST");
    size_t len;
    uint8_t *got = read_whole(path, &len);
    tbuf want = {0};
    golden_manifest(&want);
    cr_assert_eq(len, 119, "64 + 28 + 19 + 8 bytes, got %zu", len);
    cr_assert_eq(want.len, 119);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(got[i], want.p[i], "byte %zu is 0x%02x, expected 0x%02x", i, got[i],
                     want.p[i]);
    cr_assert_eq(sh_manifest_read(dir, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back.generation, 7);
    cr_assert_str_eq(back.lang, "english");
    cr_assert_eq(back.nsegs, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(back.segs[i].name, segs[i].name);
        cr_assert_eq(back.segs[i].ndocs, segs[i].ndocs);
        cr_assert_eq(back.segs[i].del_gen, segs[i].del_gen);
    }
    sh_manifest_free(&back);
    /* a manifest with no segment at all */
    m.nsegs = 0;
    m.generation = 1;
    cr_assert_eq(sh_manifest_write(dir, &m, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(sh_manifest_read(dir, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back.nsegs, 0);
    cr_assert_eq(back.generation, 1);
    sh_manifest_free(&back);
    free(got);
    tb_free(&want);
}

static int manifest_read_rc(const char *dir, sahel_error *err) {
    sh_manifest m;
    memset(err, 0, sizeof *err);
    int rc = sh_manifest_read(dir, &m, err);
    if (rc == 0) sh_manifest_free(&m);
    return rc;
}

Test(manifest, every_flipped_byte_is_rejected) {
    char dir[PATH_LEN], path[PATH_LEN];
    scratch(dir, "manifest-flip");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    join(path, dir, "MANIFEST");
    tbuf good = {0};
    golden_manifest(&good);
    static const uint8_t masks[] = {0x01, 0x80, 0xFF, 0x5A};
    for (size_t off = 0; off < good.len; off++)
        for (size_t k = 0; k < sizeof masks; k++) {
            good.p[off] ^= masks[k];
            write_whole(path, good.p, good.len);
            good.p[off] ^= masks[k];
            sahel_error err;
            int rc = manifest_read_rc(dir, &err);
            /* the magic identifies the file: without it, it is not ours */
            int want = off < 8 ? SAHEL_ENOTINDEX : SAHEL_ECORRUPT;
            cr_assert_eq(rc, want, "byte %zu ^ 0x%02x: rc %d (%s)", off, masks[k], rc, err.msg);
            cr_assert_eq(err.code, rc);
            cr_assert(strstr(err.msg, dir), "the message names the index: %s", err.msg);
        }
    tb_free(&good);
}

Test(manifest, every_truncation_and_extension_is_rejected) {
    char dir[PATH_LEN], path[PATH_LEN];
    scratch(dir, "manifest-trunc");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    join(path, dir, "MANIFEST");
    tbuf good = {0};
    golden_manifest(&good);
    for (size_t len = 0; len < good.len; len++) {
        write_whole(path, good.p, len);
        sahel_error err;
        int rc = manifest_read_rc(dir, &err);
        cr_assert_eq(rc, SAHEL_ECORRUPT, "truncated to %zu: rc %d (%s)", len, rc, err.msg);
        cr_assert(strstr(err.msg, "MANIFEST"), "%s", err.msg);
    }
    tbuf longer = {0};
    tb_put(&longer, good.p, good.len);
    tb_str(&longer, "junk");
    write_whole(path, longer.p, longer.len);
    sahel_error err;
    cr_assert_eq(manifest_read_rc(dir, &err), SAHEL_ECORRUPT, "trailing bytes");
    tb_free(&good);
    tb_free(&longer);
}

/* Edits that keep the checksum right (it is recomputed): only the checks
 * of the fields themselves can refuse them. */
static void reseal_manifest(tbuf *b) { put_le64(b->p + b->len - 8, XXH3_64bits(b->p, b->len - 8)); }

Test(manifest, resealed_bad_fields_are_rejected) {
    char dir[PATH_LEN], path[PATH_LEN];
    scratch(dir, "manifest-fields");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    join(path, dir, "MANIFEST");
    struct {
        size_t off;
        uint8_t val;
        int want;
        const char *what;
    } edits[] = {
        {8, 2, SAHEL_EVERSION, "version 2"},
        {12, 3, SAHEL_ECORRUPT, "nsegs 3 with two entries"},
        {12, 1, SAHEL_ECORRUPT, "nsegs 1 with two entries (trailing bytes)"},
        {15, 0x80, SAHEL_ECORRUPT, "nsegs huge"},
        {64, 200, SAHEL_ECORRUPT, "name length past the end"},
        {64, 0, SAHEL_ECORRUPT, "empty name"},
        {66, '.', SAHEL_ECORRUPT, "name starting with a dot"},
        {69, '/', SAHEL_ECORRUPT, "name with a slash"},
        {70, ' ', SAHEL_ECORRUPT, "name with a space"},
        {70, 0x80, SAHEL_ECORRUPT, "name with a non-ASCII byte"},
        {92, 0, SAHEL_ECORRUPT, "second name length 0"},
        {88, 9, SAHEL_ECORRUPT, "ndeleted 9 of 3 documents"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        tbuf b = {0};
        golden_manifest(&b);
        b.p[edits[i].off] = edits[i].val;
        reseal_manifest(&b);
        write_whole(path, b.p, b.len);
        sahel_error err;
        int rc = manifest_read_rc(dir, &err);
        cr_assert_eq(rc, edits[i].want, "%s: rc %d (%s)", edits[i].what, rc, err.msg);
        tb_free(&b);
    }
}

Test(manifest, missing_or_foreign_is_not_an_index) {
    char dir[PATH_LEN], p[PATH_LEN];
    scratch(dir, "manifest-missing");
    sahel_index *ix = (sahel_index *)&ix; /* must be reset to NULL */
    sahel_error err = {0};
    cr_assert_eq(sahel_index_open(dir, &ix, &err), SAHEL_ENOTINDEX, "missing directory: %s",
                 err.msg);
    cr_assert_null(ix);
    cr_assert(strstr(err.msg, dir), "%s", err.msg);
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    cr_assert_eq(sahel_index_open(dir, &ix, &err), SAHEL_ENOTINDEX, "empty directory: %s", err.msg);
    join(p, dir, "notes.txt");
    write_whole(p, "hello\n", 6);
    join(p, dir, "seg-000001-0000.sseg");
    write_whole(p, "SAHLSEG1", 8);
    cr_assert_eq(sahel_index_open(dir, &ix, &err), SAHEL_ENOTINDEX, "files but no MANIFEST: %s",
                 err.msg);
    join(p, dir, "notes.txt");
    cr_assert_eq(sahel_index_open(p, &ix, &err), SAHEL_ENOTINDEX, "a regular file: %s", err.msg);
    cr_assert_eq(sahel_index_open("", &ix, &err), SAHEL_EINVAL);
    /* a MANIFEST that is something else entirely */
    join(p, dir, "MANIFEST");
    write_whole(p, "this is a shopping list, not an index manifest at all, no no no.\n", 66);
    cr_assert_eq(sahel_index_open(dir, &ix, &err), SAHEL_ENOTINDEX, "foreign MANIFEST: %s",
                 err.msg);
    cr_assert_null(ix);
}

/* The manifest and the segments must agree. */
Test(manifest, disagreeing_with_its_segments_is_damage) {
    char dir[PATH_LEN], path[PATH_LEN];
    scratch(dir, "manifest-disagree");
    sahel_doc docs[2] = {mkdoc("a", "Mali", "junta"), mkdoc("b", "Niger", "coup")};
    build_index(dir, docs, 2, 0);
    join(path, dir, "MANIFEST");
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    cr_assert_eq(len, 64 + 2 + 20 + 16 + 8, "one segment named seg-000001-0000.sseg");
    cr_assert(!memcmp(orig + 66, "seg-000001-0000.sseg", 20));
    struct {
        size_t off;
        uint8_t val;
        const char *what;
    } edits[] = {
        {86, 3, "ndocs 3, the segment holds 2"},
        {24, 'f', "language 'fnglish'"},
        {70, '9', "a segment file that does not exist"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        tbuf b = {0};
        tb_put(&b, orig, len);
        b.p[edits[i].off] = edits[i].val;
        reseal_manifest(&b);
        write_whole(path, b.p, b.len);
        sahel_index *ix;
        sahel_error err = {0};
        int rc = sahel_index_open(dir, &ix, &err);
        cr_assert_eq(rc, SAHEL_ECORRUPT, "%s: rc %d (%s)", edits[i].what, rc, err.msg);
        cr_assert(strstr(err.msg, ".sseg"), "%s: the message names the segment: %s", edits[i].what,
                  err.msg);
        tb_free(&b);
    }
    write_whole(path, orig, len);
    sahel_index_close(open_index(dir));
    free(orig);
}

/* ==== 6. segment file layout ============================================= */

/* Two articles whose analysis is worked out by hand:
 *   doc 0 "a1": title "Mali junta" -> mali 0, junta 1                (2)
 *               body "The junta in Mali signed a pact." -> the 0, junta 1,
 *               in 2, mali 3, sign 4, a 5, pact 6                     (7)
 *   doc 1 "b2": title "Niger" -> niger 0                             (1)
 *               body "Niger and Mali." -> niger 0, and 1, mali 2     (3)
 * Terms in byte order: a and in junta mali niger pact sign the. */
static void two_article_index(char *dir, const char *name) {
    scratch(dir, name);
    sahel_doc docs[2] = {mkdoc("a1", "Mali junta", "The junta in Mali signed a pact."),
                         mkdoc("b2", "Niger", "Niger and Mali.")};
    docs[0].date = "2024-03-01";
    docs[0].date_len = 10;
    docs[1].line = 7;
    build_index(dir, docs, 2, 0);
}

/* A section reserved for `room` bytes in a new segment file of dir, given
 * `put` bytes, then ended as section `end` (0: the segment is finished
 * instead): the put must return want_put and, if it succeeded, the end
 * want_end with msg in its message (msg NULL: any).  The file is then
 * given up. */
static void reserve_case(const char *dir, uint64_t room, size_t put, uint32_t end, int want_put,
                         int want_end, const char *msg) {
    static uint8_t big[SH_SPILL_CHUNK + 1];
    sahel_error err = {0};
    sh_segw sw;
    sh_spill s;
    cr_assert_eq(sh_segw_open(&sw, dir, "r.sseg", &err), 0, "%s", err.msg);
    cr_assert_eq(sh_spill_reserve(&s, &sw, SH_SEC_POSITIONS, room, &err), 0, "%s", err.msg);
    cr_assert_eq(sh_spill_put(&s, big, put, &err), want_put, "room %llu, put %zu",
                 (unsigned long long)room, put);
    if (!want_put) {
        int rc = end ? sh_spill_copy(&s, &sw, end, &err) : sh_segw_finish(&sw, &err);
        cr_assert_eq(rc, want_end, "room %llu, put %zu, end %u: %d (%s)", (unsigned long long)room,
                     put, end, rc, err.msg);
        if (msg) cr_assert(strstr(err.msg, msg), "room %llu, put %zu: %s", (unsigned long long)room,
                           put, err.msg);
    }
    sh_spill_close(&s);
    sh_segw_abort(&sw);
}

/* A reserved section (sh_spill_reserve) takes exactly the bytes it was
 * reserved for: more or fewer is an error when they come or when it
 * ends, and a segment with a reservation not ended cannot be finished.
 * Each failed file is given up and leaves nothing behind. */
Test(segment, a_reserved_section_takes_exactly_its_length) {
    char dir[PATH_LEN];
    scratch(dir, "segment-reserve");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    /* buffered, one byte too many: found when it ends */
    reserve_case(dir, 10, 11, SH_SEC_POSITIONS, 0, SAHEL_EINVAL, "outgrows its room");
    /* a piece of a chunk goes straight in: one byte over, at once */
    reserve_case(dir, SH_SPILL_CHUNK, SH_SPILL_CHUNK + 1, SH_SEC_POSITIONS, SAHEL_EINVAL, 0, NULL);
    /* one byte short */
    reserve_case(dir, 10, 9, SH_SEC_POSITIONS, 0, SAHEL_EINVAL, "of 10 bytes got 9");
    /* ended as another section */
    reserve_case(dir, 4, 4, SH_SEC_TERMS, 0, SAHEL_EINVAL, "reserved for another section");
    /* all its bytes, never ended: the segment cannot be finished */
    reserve_case(dir, 10, 10, 0, 0, SAHEL_EINVAL, "reserved section is not written");
    /* and all its bytes, ended: a reservation by itself is fine */
    reserve_case(dir, 10, 10, SH_SEC_POSITIONS, 0, 0, NULL);
    DIR *d = opendir(dir);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));)
        cr_assert(e->d_name[0] == '.', "%s was left behind", e->d_name);
    closedir(d);
}

Test(segment, golden_structure_of_a_two_article_index) {
    char dir[PATH_LEN], path[PATH_LEN];
    two_article_index(dir, "segment-golden");
    segment_path(dir, path);
    size_t size;
    uint8_t *m = read_whole(path, &size);
    cr_assert_geq(size, 48);
    /* header */
    cr_assert(!memcmp(m, "SAHLSEG1", 8), "header magic");
    cr_assert_eq(le32(m + 8), 4, "format version at offset 8");
    cr_assert_eq(le32(m + 12), 0, "flags");
    /* footer */
    const uint8_t *foot = m + size - 32;
    cr_assert(!memcmp(foot + 24, "SAHLEND1", 8), "footer magic at the end");
    uint64_t T = le64(foot);
    uint32_t n = le32(foot + 8);
    cr_assert_eq(le32(foot + 12), 4, "footer version");
    cr_assert_eq(n, 11, "eleven sections");
    cr_assert_eq(T + 32ull * n, size - 32, "the table ends where the footer starts");
    cr_assert_eq(T % 8, 0);
    tbuf tsum = {0};
    tb_put(&tsum, m + T, 32ull * n);
    tb_put(&tsum, foot, 16);
    cr_assert_eq(le64(foot + 16), XXH3_64bits(tsum.p, tsum.len), "table checksum");
    tb_free(&tsum);
    /* section table: ids 1..11 in order, each 8-aligned, inside the file,
     * with its checksum; the sections' bytes, in file order (the store
     * first: writer.c writes it as articles arrive), do not overlap and
     * have zero padding between */
    const uint8_t *sec[SH_SEC_COUNT] = {0};
    uint64_t len[SH_SEC_COUNT] = {0}, offs[SH_SEC_COUNT] = {0};
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = m + T + 32ull * i;
        uint32_t id = le32(e);
        uint64_t off = le64(e + 8), l = le64(e + 16);
        cr_assert_eq(id, i + 1, "entry %u holds section %u", i, id);
        cr_assert_eq(le32(e + 4), 0, "reserved word of entry %u", i);
        cr_assert_eq(off % 8, 0, "section %u at %llu is not 8-aligned", id,
                     (unsigned long long)off);
        cr_assert_leq(off + l, T, "section %u runs into the table", id);
        cr_assert_eq(le64(e + 24), XXH3_64bits(m + off, l), "checksum of section %u", id);
        sec[id] = m + off;
        len[id] = l;
        offs[id] = off;
    }
    cr_assert_eq(offs[SH_SEC_STORE], 16, "the store comes first");
    uint64_t prev_end = 16;
    for (uint32_t k = 0; k < n; k++) {
        /* the section that starts next (an empty one first at a tie) */
        int next = 0;
        for (int id = 1; id <= (int)n; id++)
            if (offs[id] >= prev_end && offs[id] != UINT64_MAX &&
                (!next || offs[id] < offs[next] ||
                 (offs[id] == offs[next] && len[id] < len[next])))
                next = id;
        cr_assert(next, "section bytes overlap");
        cr_assert_lt(offs[next] - prev_end, 8, "section %d: more than 7 bytes of padding", next);
        for (uint64_t p = prev_end; p < offs[next]; p++)
            cr_assert_eq(m[p], 0, "padding byte %llu", (unsigned long long)p);
        prev_end = offs[next] + len[next];
        offs[next] = UINT64_MAX;
    }
    cr_assert_lt(T - prev_end, 8);
    /* META */
    const uint8_t *meta = sec[SH_SEC_META];
    cr_assert_eq(len[SH_SEC_META], 64);
    cr_assert_eq(le32(meta), 2, "ndocs");
    cr_assert_eq(le32(meta + 4), 9, "nterms");
    cr_assert_eq(le64(meta + 8), 3, "sum of title lengths 2 + 1");
    cr_assert_eq(le64(meta + 16), 10, "sum of body lengths 7 + 3");
    cr_assert_eq(le64(meta + 24), 13, "tokens indexed");
    uint8_t lang[32] = "english";
    cr_assert_arr_eq(meta + 32, lang, 32, "language, NUL padded");
    /* TERMS and TERMIDX */
    static const char terms[] = "aandinjuntamalinigerpactsignthe";
    cr_assert_eq(len[SH_SEC_TERMS], sizeof terms - 1);
    cr_assert(!memcmp(sec[SH_SEC_TERMS], terms, sizeof terms - 1), "terms: %.*s",
              (int)len[SH_SEC_TERMS], sec[SH_SEC_TERMS]);
    static const uint32_t str_off[10] = {0, 1, 4, 6, 11, 15, 20, 24, 28, 31};
    static const uint32_t df[10] = {1, 1, 1, 1, 2, 1, 1, 1, 1, 0};
    cr_assert_eq(len[SH_SEC_TERMIDX], 10 * 24);
    uint64_t prev_post = 0, prev_pos = 0;
    for (int i = 0; i < 10; i++) {
        const uint8_t *r = sec[SH_SEC_TERMIDX] + 24 * i;
        cr_assert_eq(le32(r + 16), str_off[i], "str_off of record %d", i);
        cr_assert_eq(le32(r + 20), df[i], "df of record %d", i);
        cr_assert_geq(le64(r), prev_post);
        cr_assert_geq(le64(r + 8), prev_pos);
        prev_post = le64(r);
        prev_pos = le64(r + 8);
    }
    cr_assert_eq(prev_post, len[SH_SEC_POSTINGS], "sentinel: postings length");
    cr_assert_eq(prev_pos, len[SH_SEC_POSITIONS], "sentinel: positions length");
    /* "mali" (record 4): one varint block: doc 0 gap 0 tft 1 tfb 1, doc 1
     * gap 0 tft 0 tfb 1; positions: title 0, body 3; body 2 */
    const uint8_t *r = sec[SH_SEC_TERMIDX] + 24 * 4;
    static const uint8_t mali_post[6] = {0, 1, 1, 0, 0, 1}, mali_pos[3] = {0, 3, 2};
    cr_assert_eq(le64(r + 24) - le64(r), 6);
    cr_assert_arr_eq(sec[SH_SEC_POSTINGS] + le64(r), mali_post, 6);
    cr_assert_eq(le64(r + 32) - le64(r + 8), 3);
    cr_assert_arr_eq(sec[SH_SEC_POSITIONS] + le64(r + 8), mali_pos, 3);
    /* DOCLENS, IDS, IDSORT */
    /* lengths title 2, body 7 and title 1, body 3: bases 1 and 3, widths
     * 1 and 3 bits; title values 1, 0; body values 4, 0 */
    uint8_t doclens[88] = {1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0};
    doclens[16] = 1;      /* 16 bytes of title values */
    doclens[16 + 16] = 4; /* 48 bytes of body values, then 8 zeros */
    cr_assert_eq(len[SH_SEC_DOCLENS], 88);
    cr_assert_arr_eq(sec[SH_SEC_DOCLENS], doclens, 88);
    static const uint8_t ids[16] = {0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 'a', '1', 'b', '2'};
    cr_assert_eq(len[SH_SEC_IDS], 16);
    cr_assert_arr_eq(sec[SH_SEC_IDS], ids, 16);
    static const uint8_t idsort[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    cr_assert_eq(len[SH_SEC_IDSORT], 8);
    cr_assert_arr_eq(sec[SH_SEC_IDSORT], idsort, 8);
    /* DOCHASH: XXH3 of each stored record */
    static const uint8_t rec0[] = {2,   'a', '1', 10,  'M', 'a', 'l', 'i', ' ', 'j', 'u', 'n', 't',
                                   'a', 32,  'T', 'h', 'e', ' ', 'j', 'u', 'n', 't', 'a', ' ', 'i',
                                   'n', ' ', 'M', 'a', 'l', 'i', ' ', 's', 'i', 'g', 'n', 'e', 'd',
                                   ' ', 'a', ' ', 'p', 'a', 'c', 't', '.', 10,  '2', '0', '2', '4',
                                   '-', '0', '3', '-', '0', '1', 0,   0,   0,   0,   0};
    static const uint8_t rec1[] = {2,   'b', '2', 5,   'N', 'i', 'g', 'e', 'r', 15,  'N',
                                   'i', 'g', 'e', 'r', ' ', 'a', 'n', 'd', ' ', 'M', 'a',
                                   'l', 'i', '.', 0,   0,   0,   0,   0,   7};
    cr_assert_eq(len[SH_SEC_DOCHASH], 16);
    cr_assert_eq(le64(sec[SH_SEC_DOCHASH]), XXH3_64bits(rec0, sizeof rec0), "hash of record 0");
    cr_assert_eq(le64(sec[SH_SEC_DOCHASH] + 8), XXH3_64bits(rec1, sizeof rec1), "hash of record 1");
    /* STORE is one frame of both records; STOREIDX: block 0, then the sentinel */
    cr_assert_eq(len[SH_SEC_STOREIDX], 32);
    const uint8_t *si = sec[SH_SEC_STOREIDX];
    cr_assert_eq(le64(si), 0);
    cr_assert_eq(le32(si + 8), 0);
    cr_assert_eq(le64(si + 16), len[SH_SEC_STORE]);
    cr_assert_eq(le32(si + 24), 2);
    uint8_t raw[256];
    size_t got = ZSTD_decompress(raw, sizeof raw, sec[SH_SEC_STORE], len[SH_SEC_STORE]);
    cr_assert(!ZSTD_isError(got));
    cr_assert_eq(got, sizeof rec0 + sizeof rec1);
    cr_assert_arr_eq(raw, rec0, sizeof rec0);
    cr_assert_arr_eq(raw + sizeof rec0, rec1, sizeof rec1);
    free(m);
    /* and the reader sees the same */
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 2);
    cr_assert_eq(info.nterms, 9);
    cr_assert_eq(info.nsegments, 1);
    cr_assert_eq(info.generation, 1);
    cr_assert_float_eq(info.avg_title_len, 1.5, 1e-12);
    cr_assert_float_eq(info.avg_body_len, 5.0, 1e-12);
    cr_assert_str_eq(info.language, "english");
    cr_assert_eq(info.bytes, size);
    sahel_index_close(ix);
}

/* ==== 7. corruption ====================================================== */

static const char *const sweep_words[] = {
    "mali",     "niger",     "burkina",    "junta",    "coup",    "wagner",
    "army",     "attack",    "jihadist",   "sahel",    "bamako",  "niamey",
    "election", "sanction",  "ecowas",     "alliance", "troops",  "drone",
    "village",  "refugees",  "gold",       "mine",     "uranium", "france",
    "russia",   "president", "transition", "militia",  "border",  "Liptako-Gourma",
    "Goïta",    "Tiani",     "Traoré",     "security", "mutual",  "defense",
    "pact"};
#define SWEEP_NWORDS (sizeof sweep_words / sizeof sweep_words[0])

static const char *const sweep_queries[] = {
    "mali",           "junta coup",      "\"mutual defense pact\"",
    "jiha*",          "title:niger",     "+army -drone",
    "Liptako-Gourma", "sahel OR wagner", "body:\"gold mine\""};
#define SWEEP_NQUERIES (sizeof sweep_queries / sizeof sweep_queries[0])

/* ndocs articles of random words from sweep_words, with ids s000...,
 * built with the given memory budget (0: default). */
/* The sweep corpus, built with `budget` (per == 0) or in commits of `per`
 * articles. */
static void sweep_build(char *dir, const char *name, uint32_t ndocs, uint64_t seed, size_t budget,
                        size_t per) {
    scratch(dir, name);
    rng_seed(seed);
    sahel_doc *docs = sh_test_xmalloc(ndocs * sizeof *docs);
    tbuf *text = calloc((size_t)ndocs * 3, sizeof *text);
    cr_assert(text);
    for (uint32_t d = 0; d < ndocs; d++) {
        tb_printf(&text[3 * d], "s%03u", d);
        for (int f = 1; f <= 2; f++) {
            uint32_t nw = f == 1 ? 2 + rng_below(3) : 10 + rng_below(25);
            tb_str(&text[3 * d + f], "");
            for (uint32_t i = 0; i < nw; i++) {
                if (i) tb_putc(&text[3 * d + f], ' ');
                tb_str(&text[3 * d + f], sweep_words[rng_below(SWEEP_NWORDS)]);
            }
        }
        docs[d] = mkdoc((const char *)text[3 * d].p, (const char *)text[3 * d + 1].p,
                        (const char *)text[3 * d + 2].p);
    }
    if (per)
        build_in_commits(dir, docs, ndocs, per);
    else
        build_index(dir, docs, ndocs, budget);
    for (size_t i = 0; i < (size_t)ndocs * 3; i++) tb_free(&text[i]);
    free(text);
    free(docs);
}

static void sweep_index(char *dir, const char *name, uint32_t ndocs, uint64_t seed, size_t budget) {
    sweep_build(dir, name, ndocs, seed, budget, 0);
}

static void sweep_docs(char *dir, const char *name, uint32_t ndocs, uint64_t seed, size_t per) {
    sweep_build(dir, name, ndocs, seed, 0, per);
}

/* Every query, every hit, its stored fields and snippet, on an index that
 * may be damaged: errors are fine, crashes are not (ASan watches).  An
 * error must carry its code in err. */
static void exercise_searches(sahel_index *ix) {
    for (size_t q = 0; q < SWEEP_NQUERIES; q++) {
        sahel_hits *h = NULL;
        sahel_error err = {0};
        int rc = sahel_search(ix, sweep_queries[q], strlen(sweep_queries[q]), NULL, &h, &err);
        cr_assert_leq(rc, 0);
        if (rc) {
            cr_assert_eq(err.code, rc);
            cr_assert_null(h);
            continue;
        }
        for (size_t i = 0; i < sahel_hits_count(h) && i < 4; i++) {
            sahel_hit hit;
            const char *id;
            size_t idlen;
            double score;
            rc = sahel_hits_id(h, i, &id, &idlen, &score, &err);
            cr_assert_leq(rc, 0);
            rc = sahel_hits_get(h, i, &hit, &err);
            cr_assert_leq(rc, 0);
            sahel_snippet snip;
            rc = sahel_hits_snippet(h, i, 120, &snip, &err);
            cr_assert_leq(rc, 0);
            if (rc == 0)
                for (size_t s = 0; s < snip.nspans; s++)
                    cr_assert(snip.spans[s].start < snip.spans[s].end &&
                              snip.spans[s].end <= snip.len);
        }
        sahel_hits_free(h);
    }
}

static int is_damage_code(int rc) {
    return rc == SAHEL_ECORRUPT || rc == SAHEL_EVERSION || rc == SAHEL_ENOTINDEX;
}

/* Packed document lengths: the engine's encoder writes the bytes the
 * format comment describes (tb_doclens), and the readers give back every
 * length, over block edges, widths 0 to 32 and a partial last block.  The
 * section lies in a heap buffer of exactly its size, so that ASan reports
 * any read past it. */
Test(segment, packed_lengths_match_the_spec_and_read_back) {
    static const uint32_t counts[] = {0, 1, 127, 128, 129, 1000, 5003};
    rng_seed(0x5ea1);
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
        for (int shape = 0; shape < 4; shape++) {
            uint32_t n = counts[c];
            uint32_t *lt = sh_test_xmalloc(((size_t)n + 1) * 4);
            uint32_t *lb = sh_test_xmalloc(((size_t)n + 1) * 4);
            for (uint32_t d = 0; d < n; d++) {
                switch (shape) {
                case 0: /* news: short titles, bodies of a few hundred */
                    lt[d] = 3 + rng_below(12);
                    lb[d] = 40 + rng_below(900);
                    break;
                case 1: /* every length alike: width 0 */
                    lt[d] = 7;
                    lb[d] = 300;
                    break;
                case 2: /* the extremes side by side: width 32 */
                    lt[d] = (d & 1) ? UINT32_MAX : 0;
                    lb[d] = (d % 3) ? 0 : UINT32_MAX - rng_below(5);
                    break;
                default: /* any width */
                    lt[d] = (uint32_t)rng_next() >> rng_below(32);
                    lb[d] = (uint32_t)rng_next() >> rng_below(32);
                }
            }
            sh_buf enc = {0};
            cr_assert_eq(sh_doclens_encode(lt, lb, n, &enc), 0);
            tbuf spec = {0};
            tb_doclens(&spec, lt, lb, n);
            cr_assert_eq(enc.len, spec.len, "n %u shape %d: %zu bytes, spec %zu", n, shape,
                         enc.len, spec.len);
            cr_assert_arr_eq(enc.p, spec.p, spec.len, "n %u shape %d", n, shape);
            cr_assert_eq(sh_doclens_check(enc.p, enc.len, n), 0);
            uint8_t *exact = sh_test_xmalloc(enc.len);
            memcpy(exact, enc.p, enc.len);
            sh_segment seg = {0};
            seg.ndocs = n;
            seg.sec[SH_SEC_DOCLENS].p = exact;
            seg.sec[SH_SEC_DOCLENS].len = enc.len;
            for (uint32_t d = 0; d < n; d++) {
                cr_assert_eq(sh_segment_len_title(&seg, d), lt[d], "n %u shape %d doc %u", n,
                             shape, d);
                cr_assert_eq(sh_segment_len_body(&seg, d), lb[d], "n %u shape %d doc %u", n,
                             shape, d);
            }
            free(exact);
            sh_buf_free(&enc);
            tb_free(&spec);
            free(lt);
            free(lb);
        }
}

/* A DOCLENS whose headers could send a reader out of the section is
 * refused: widths over 32, offsets out of sequence, a nonzero spare field,
 * a length one byte off either way, a header count for other articles. */
Test(segment, damaged_length_blocks_are_refused) {
    uint32_t n = 300, lt[300], lb[300];
    rng_seed(0xd0c5);
    for (uint32_t d = 0; d < n; d++) {
        lt[d] = 2 + rng_below(20);
        lb[d] = rng_below(5000);
    }
    tbuf ok = {0};
    tb_doclens(&ok, lt, lb, n);
    cr_assert_eq(sh_doclens_check(ok.p, ok.len, n), 0);
    cr_assert_neq(sh_doclens_check(ok.p, ok.len - 1, n), 0, "one byte short");
    cr_assert_neq(sh_doclens_check(ok.p, ok.len + 1, n), 0, "one byte over");
    cr_assert_neq(sh_doclens_check(ok.p, ok.len, n + 128), 0, "a header missing");
    cr_assert_neq(sh_doclens_check(ok.p, ok.len, 100), 0, "a header too many");
    cr_assert_neq(sh_doclens_check(ok.p, 4, n), 0, "shorter than the headers");
    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } bad[] = {
        {12, 33, "title width 33"},      {16 + 13, 40, "body width 40"},
        {16 + 8, 0, "second offset 0"},  {32 + 8, 1, "third offset 1"},
        {14, 1, "spare field nonzero"}, {16 + 12, 0, "width changed, offsets not"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *m = sh_test_xmalloc(ok.len + 1);
        memcpy(m, ok.p, ok.len);
        cr_assert_neq(m[bad[i].at], bad[i].value, "%s: the test must change a byte", bad[i].what);
        m[bad[i].at] = bad[i].value;
        cr_assert_neq(sh_doclens_check(m, ok.len, n), 0, "%s", bad[i].what);
        free(m);
    }
    tb_free(&ok);
}


Test(corruption, truncated_segment_never_opens) {
    char dir[PATH_LEN], path[PATH_LEN];
    sweep_index(dir, "corrupt-trunc", 30, 0x7A1, 0);
    segment_path(dir, path);
    const char *name = strrchr(path, '/') + 1;
    size_t size;
    uint8_t *orig = read_whole(path, &size);
    size_t lens[64], n = 0;
    size_t fixed[] = {0,        1,         15,        16,        17,       47,       48,
                      size / 2, size - 33, size - 32, size - 31, size - 9, size - 8, size - 1};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) lens[n++] = fixed[i];
    for (size_t l = 7; l < size && n < 64; l += size / 48) lens[n++] = l;
    for (size_t i = 0; i < n; i++) {
        write_whole(path, orig, lens[i]);
        sahel_index *ix = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(dir, &ix, &err);
        cr_assert(is_damage_code(rc), "truncated to %zu of %zu bytes: open gave %d (%s)", lens[i],
                  size, rc, err.msg);
        cr_assert_null(ix);
        cr_assert(strstr(err.msg, name), "truncated to %zu: the message names %s: %s", lens[i],
                  name, err.msg);
    }
    write_whole(path, orig, size);
    sahel_index *ix = open_index(dir);
    sahel_error err = {0};
    cr_assert_eq(sahel_index_verify(ix, &err), 0, "%s", err.msg);
    sahel_index_close(ix);
    free(orig);
}

/* Describes where byte off of a segment file lies, for failure messages. */
static void describe_offset(const uint8_t *m, size_t size, size_t off, char *out, size_t cap) {
    uint64_t T = le64(m + size - 32);
    uint32_t n = le32(m + size - 24);
    const char *where = off < 8            ? "header magic"
                        : off < 12         ? "header version"
                        : off < 16         ? "header flags"
                        : off >= size - 32 ? "footer"
                        : off >= T         ? "section table"
                                           : NULL;
    for (uint32_t i = 0; i < n && !where; i++) {
        const uint8_t *e = m + T + 32ull * i;
        if (off >= le64(e + 8) && off < le64(e + 8) + le64(e + 16)) {
            snprintf(out, cap, "section %u", le32(e));
            return;
        }
    }
    snprintf(out, cap, "%s", where ? where : "padding between sections");
}

/* One byte changed: open fails with a damage code naming the file, or it
 * succeeds and verify fails naming the file.  Searching whatever opened
 * must not crash. */
Test(corruption, flipped_byte_fails_open_or_verify) {
    char dir[PATH_LEN], path[PATH_LEN];
    sweep_index(dir, "corrupt-flip", 30, 0xF11, 0);
    segment_path(dir, path);
    const char *name = strrchr(path, '/') + 1;
    size_t size;
    uint8_t *orig = read_whole(path, &size);
    uint8_t *m = sh_test_xmalloc(size);
    rng_seed(0xF1195);
    tbuf undetected = {0};
    size_t nflips = 0, nopened = 0;
    for (size_t off = 0; off < size; off++) {
        /* every 7th byte, and all of the header and footer */
        if (off % 7 != 0 && off >= 16 && off < size - 32) continue;
        memcpy(m, orig, size);
        m[off] ^= (uint8_t)(1 + rng_below(255));
        write_whole(path, m, size);
        nflips++;
        sahel_index *ix = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(dir, &ix, &err);
        if (rc) {
            cr_assert(is_damage_code(rc), "byte %zu: open gave %d (%s)", off, rc, err.msg);
            cr_assert(strstr(err.msg, name), "byte %zu: message does not name %s: %s", off, name,
                      err.msg);
            continue;
        }
        nopened++;
        rc = sahel_index_verify(ix, &err);
        if (rc) {
            cr_assert_eq(rc, SAHEL_ECORRUPT, "byte %zu: verify gave %d (%s)", off, rc, err.msg);
            cr_assert(strstr(err.msg, name), "byte %zu: %s", off, err.msg);
        } else {
            char where[64];
            describe_offset(orig, size, off, where, sizeof where);
            tb_printf(&undetected, " %zu (%s)", off, where);
        }
        exercise_searches(ix);
        sahel_index_close(ix);
    }
    cr_log_info("%zu flips, %zu opened", nflips, nopened);
    write_whole(path, orig, size);
    cr_expect_eq(undetected.len, 0,
                 "changed bytes that neither open nor verify noticed (see the regression tests):%s",
                 undetected.p ? (const char *)undetected.p : "");
    tb_free(&undetected);
    free(m);
    free(orig);
}

/* Recompute every section checksum and the table checksum after changing
 * bytes inside sections: damage that checksums cannot see, as a crafted
 * file or a bug in a writer would make. */
static void reseal_segment(uint8_t *m, size_t size) {
    uint64_t T = le64(m + size - 32);
    uint32_t n = le32(m + size - 24);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = m + T + 32ull * i;
        put_le64(e + 24, XXH3_64bits(m + le64(e + 8), le64(e + 16)));
    }
    tbuf t = {0};
    tb_put(&t, m + T, 32ull * n);
    tb_put(&t, m + size - 32, 16);
    put_le64(m + size - 16, XXH3_64bits(t.p, t.len));
    tb_free(&t);
}

/* Resealed damage inside the sections of a 300-article index (postings
 * in several blocks): open may succeed, then verify, searches, stored
 * fields and snippets run on it; any of them may fail with an error, none
 * may crash, and failures from open or verify must be damage codes naming
 * the file. */
Test(corruption, resealed_damage_never_crashes_search) {
    char dir[PATH_LEN], path[PATH_LEN];
    sweep_index(dir, "corrupt-reseal", 300, 0x5EA1, 0);
    segment_path(dir, path);
    const char *name = strrchr(path, '/') + 1;
    size_t size;
    uint8_t *orig = read_whole(path, &size);
    uint64_t T = le64(orig + size - 32);
    uint8_t *m = sh_test_xmalloc(size);
    rng_seed(0x5EA15);
    size_t nflips = 0, nopened = 0, nverified = 0;
    size_t stride = (size_t)(T / 700) | 1;
    for (size_t off = 16 + rng_below(5); off < T; off += stride) {
        memcpy(m, orig, size);
        m[off] ^= (uint8_t)(1 + rng_below(255));
        /* sometimes a second byte nearby, to reach past a first check */
        if (rng_below(4) == 0 && off + 1 < T) m[off + 1] ^= (uint8_t)(1 + rng_below(255));
        reseal_segment(m, size);
        write_whole(path, m, size);
        nflips++;
        sahel_index *ix = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(dir, &ix, &err);
        if (rc) {
            cr_assert(is_damage_code(rc), "byte %zu: open gave %d (%s)", off, rc, err.msg);
            cr_assert(strstr(err.msg, name), "byte %zu: %s", off, err.msg);
            continue;
        }
        nopened++;
        rc = sahel_index_verify(ix, &err);
        if (rc) {
            cr_assert_eq(rc, SAHEL_ECORRUPT, "byte %zu: verify gave %d (%s)", off, rc, err.msg);
            cr_assert(strstr(err.msg, name), "byte %zu: %s", off, err.msg);
        } else {
            nverified++;
        }
        exercise_searches(ix);
        sahel_index_close(ix);
    }
    cr_log_info("%zu resealed flips: %zu opened, %zu passed verify", nflips, nopened, nverified);
    cr_assert_gt(nopened, 0, "the sweep should reach the readers");
    write_whole(path, orig, size);
    free(m);
    free(orig);
}

/* Header bytes 12..15 are "u32 flags (0)" (segment.c) but nothing reads
 * them: a segment with unknown flags set opens and verifies as if they
 * were zero, so a future format that sets a flag would be misread
 * silently.  Expected: open fails (SAHEL_EVERSION or SAHEL_ECORRUPT). */
Test(regression, segment_header_flags_are_not_checked) {
    char dir[PATH_LEN], path[PATH_LEN];
    two_article_index(dir, "bug-flags");
    segment_path(dir, path);
    size_t size;
    uint8_t *m = read_whole(path, &size);
    m[12] = 1;
    write_whole(path, m, size);
    sahel_index *ix = NULL;
    sahel_error err = {0};
    free(m);
    int rc = sahel_index_open(dir, &ix, &err);
    if (rc == 0) {
        rc = sahel_index_verify(ix, &err);
        sahel_index_close(ix);
    }
    cr_assert(rc == SAHEL_EVERSION || rc == SAHEL_ECORRUPT,
              "segment.c (sh_segment_open): flags word 0x00000001 accepted by open and verify");
}

/* The zero padding between sections (segment.c: "each starting at a
 * multiple of 8 (zero padding)") is covered by no checksum and no check:
 * a changed padding byte goes unnoticed by open and verify, against
 * DESIGN.md's "every byte on disk is checked". */
Test(regression, segment_padding_is_not_checked) {
    char dir[PATH_LEN], path[PATH_LEN];
    two_article_index(dir, "bug-padding");
    segment_path(dir, path);
    size_t size;
    uint8_t *m = read_whole(path, &size);
    /* TERMS (section 2) is 31 bytes long: one byte of padding follows it */
    uint64_t T = le64(m + size - 32);
    const uint8_t *e = m + T + 32;
    cr_assert_eq(le32(e), SH_SEC_TERMS);
    size_t pad = (size_t)(le64(e + 8) + le64(e + 16));
    cr_assert_eq(pad % 8, 7, "layout assumption: one padding byte after TERMS");
    cr_assert_eq(m[pad], 0);
    m[pad] = 0xA5;
    write_whole(path, m, size);
    free(m);
    sahel_index *ix = NULL;
    sahel_error err = {0};
    int rc = sahel_index_open(dir, &ix, &err);
    if (rc == 0) {
        rc = sahel_index_verify(ix, &err);
        sahel_index_close(ix);
    }
    cr_assert_eq(rc, SAHEL_ECORRUPT,
                 "segment.c: padding byte %zu changed to 0xA5, open and verify both succeed", pad);
}

/* ==== 8. writer behaviours =============================================== */

Test(writer, duplicate_id_is_refused_and_the_first_kept) {
    char dir[PATH_LEN];
    scratch(dir, "writer-dup");
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), 0, "%s", err.msg);
    sahel_doc a = mkdoc("x1", "first timbuktu", "the original article");
    sahel_doc b = mkdoc("x1", "second ouagadougou", "a replacement that must not win");
    sahel_doc c = mkdoc("x2", "other", "another article");
    cr_assert_eq(sahel_writer_add(w, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(sahel_writer_add(w, &b, &err), SAHEL_EDUPLICATE);
    cr_assert_eq(err.code, SAHEL_EDUPLICATE);
    cr_assert(strstr(err.msg, "x1"), "the message names the id: %s", err.msg);
    cr_assert_eq(sahel_writer_add(w, &c, &err), 0, "the writer goes on after a duplicate: %s",
                 err.msg);
    cr_assert_eq(sahel_writer_add(w, &b, &err), SAHEL_EDUPLICATE);
    sahel_writer_stats st;
    sahel_writer_get_stats(w, &st);
    cr_assert_eq(st.ndocs, 2);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 2);
    results r;
    search_ok(ix, "timbuktu", 10, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ids[0], "x1");
    search_ok(ix, "ouagadougou", 10, &r);
    cr_assert_eq(r.n, 0, "the duplicate's words were not indexed");
    search_ok(ix, "replacement", 10, &r);
    cr_assert_eq(r.n, 0);
    sahel_index_close(ix);
}

/* Commit w, close it and return its stats. */
static sahel_writer_stats commit_close(sahel_writer *w) {
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_stats st;
    sahel_writer_get_stats(w, &st);
    sahel_writer_close(w);
    return st;
}

/* How many hits the index in dir gives q (at most k). */
static size_t hits_in(const char *dir, const char *q, size_t k) {
    sahel_index *ix = open_index(dir);
    results r;
    search_ok(ix, q, k, &r);
    sahel_index_close(ix);
    return r.n;
}

/* q finds exactly one article in the index in dir, and it is want. */
static void only_hit_in(const char *dir, const char *q, const char *want) {
    sahel_index *ix = open_index(dir);
    results r;
    search_ok(ix, q, 10, &r);
    cr_assert_eq(r.n, 1, "%s: %zu hits", q, r.n);
    cr_assert_str_eq(r.ids[0], want, "%s", q);
    sahel_index_close(ix);
}

/* A budget that cannot give every thread its room indexes on fewer; one
 * below the least is taken as it is (tests make many segments with it). */
Test(writer, a_small_budget_indexes_on_fewer_threads) {
    static const struct {
        unsigned threads;
        size_t budget;
        unsigned want;
    } cases[] = {
        {4, SAHEL_MIN_MEMORY_BUDGET, 1},
        {2, 0, 2},
        {4, (size_t)256 << 20, 4},
        {4, 64 * 1024, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[PATH_LEN], name[64];
        snprintf(name, sizeof name, "writer-fit-%zu", i);
        scratch(dir, name);
        sahel_writer_opts o = {.memory_budget = cases[i].budget, .threads = cases[i].threads};
        sahel_writer *w;
        sahel_error err = {0};
        cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
        sahel_writer_stats st;
        sahel_writer_get_stats(w, &st);
        cr_assert_eq(st.nthreads, cases[i].want, "case %zu: %u threads", i, st.nthreads);
        sahel_doc d = mkdoc("fit1", "niamey", "the threads that index this article");
        cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "%s", err.msg);
        commit_close(w);
        cr_assert_eq(hits_in(dir, "niamey", 10), 1);
    }
}

/* The ids of many articles take most of a small budget: it cannot be kept,
 * but the builder keeps its room and writes a few segments, not one for
 * every article or two (thousands to merge). */
Test(writer, long_ids_under_a_small_budget_leave_the_builder_its_room) {
    char dir[PATH_LEN];
    scratch(dir, "writer-long-ids");
    sahel_writer_opts o = {.memory_budget = SAHEL_MIN_MEMORY_BUDGET, .threads = 1};
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    enum { N = 12000, IDLEN = 700 };
    static char id[IDLEN + 1], body[256];
    memset(id, 'u', IDLEN);
    for (uint32_t i = 0; i < N; i++) {
        snprintf(id, sizeof id, "https://example.org/%08u/", i);
        id[strlen(id)] = 'u'; /* the rest of the id stays as it was: 700 bytes */
        id[IDLEN] = '\0';
        snprintf(body, sizeof body, "report %u from gao and kidal number w%u and w%u", i, i % 97,
                 i % 1013);
        sahel_doc d = mkdoc(id, "sahel", body);
        cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "article %u: %s", i, err.msg);
    }
    sahel_writer_stats st = commit_close(w);
    cr_assert_lt(st.nflushed, 40, "%llu segments for %u short articles",
                 (unsigned long long)st.nflushed, (unsigned)N);
    cr_assert_eq(st.nsegments, 1);
    cr_assert_eq(st.nlive_segments, 1);
    cr_assert_gt(hits_in(dir, "w96", 10), 0);
}

/* Thirteen flushed segments of one article each: merged ten at a time,
 * the first merge takes the four smallest, so that the last one takes ten
 * and no article is written more than twice: 4 + 13 articles written, not
 * 10 + 13 as when the first ten went first. */
Test(writer, segments_are_combined_in_the_fewest_writes) {
    char dir[PATH_LEN];
    scratch(dir, "writer-combine");
    sahel_writer_opts o = {.memory_budget = 16 * 1024, .threads = 1}; /* a segment an article */
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    char id[16], body[64];
    for (int i = 0; i < 13; i++) {
        snprintf(id, sizeof id, "c%02d", i);
        snprintf(body, sizeof body, "dispatch %d from timbuktu word%d", i, i);
        sahel_doc d = mkdoc(id, "combine", body);
        cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "%s", err.msg);
    }
    sahel_writer_stats st = commit_close(w);
    cr_assert_eq(st.nflushed, 13);
    cr_assert_eq(st.ncombined, 4 + 13, "%llu articles written", (unsigned long long)st.ncombined);
    cr_assert_eq(st.nsegments, 1);
    cr_assert_eq(hits_in(dir, "timbuktu", 20), 13);
    only_hit_in(dir, "word7", "c07");
}

Test(writer, duplicate_id_is_refused_across_segments) {
    char dir[PATH_LEN];
    scratch(dir, "writer-dup-segs");
    sahel_writer_opts o = {.force = 0, .memory_budget = 16 * 1024}; /* every article flushes a segment */
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    sahel_doc a = mkdoc("same", "first", "alpha");
    sahel_doc b = mkdoc("other", "second", "beta");
    cr_assert_eq(sahel_writer_add(w, &a, &err), 0);
    cr_assert_eq(sahel_writer_add(w, &b, &err), 0);
    cr_assert_eq(sahel_writer_add(w, &a, &err), SAHEL_EDUPLICATE);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 2);
    sahel_index_close(ix);
}

Test(writer, empty_id_is_invalid) {
    char dir[PATH_LEN];
    scratch(dir, "writer-empty-id");
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), 0, "%s", err.msg);
    sahel_doc d = mkdoc("", "title", "body");
    cr_assert_eq(sahel_writer_add(w, &d, &err), SAHEL_EINVAL);
    cr_assert_eq(err.code, SAHEL_EINVAL);
    d.id = NULL;
    cr_assert_eq(sahel_writer_add(w, &d, &err), SAHEL_EINVAL);
    d.id = "ok";
    d.id_len = 2;
    cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "the writer is still usable: %s", err.msg);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 1);
    sahel_index_close(ix);
}

Test(writer, add_or_commit_after_commit_is_invalid) {
    char dir[PATH_LEN];
    scratch(dir, "writer-after-commit");
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), 0, "%s", err.msg);
    sahel_doc d = mkdoc("a", "t", "b");
    cr_assert_eq(sahel_writer_add(w, &d, &err), 0);
    cr_assert_eq(sahel_writer_commit(w, &err), 0);
    sahel_doc e = mkdoc("b", "t", "b");
    cr_assert_eq(sahel_writer_add(w, &e, &err), SAHEL_EINVAL);
    cr_assert_eq(sahel_writer_commit(w, &err), SAHEL_EINVAL);
    sahel_writer_close(w);
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 1, "closing a committed writer keeps its index");
    sahel_index_close(ix);
}

Test(writer, existing_index_without_force_is_kept) {
    char dir[PATH_LEN];
    two_article_index(dir, "writer-exists");
    char *before = list_dir(dir);
    sahel_writer *w = (sahel_writer *)&w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), SAHEL_EEXIST, "rc: %s", err.msg);
    cr_assert_null(w);
    cr_assert(strstr(err.msg, dir), "%s", err.msg);
    sahel_writer_opts o = {.force = 0, .memory_budget = 0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), SAHEL_EEXIST);
    char *after = list_dir(dir);
    cr_assert_str_eq(after, before, "the directory was not touched");
    only_hit_in(dir, "junta", "a1");
    free(before);
    free(after);
}

Test(writer, force_replaces_the_index_and_removes_old_segments) {
    char dir[PATH_LEN];
    scratch(dir, "writer-force");
    /* the old index: three segments */
    sahel_doc old[3] = {mkdoc("o1", "Mali", "junta"), mkdoc("o2", "Niger", "coup"),
                        mkdoc("o3", "Burkina", "army")};
    build_in_commits(dir, old, 3, 1);
    sahel_index *ix = open_index(dir);
    cr_assert_eq(ix->nsegs, 3);
    char old_names[3][64];
    for (int i = 0; i < 3; i++) snprintf(old_names[i], sizeof old_names[i], "%s", ix->segs[i].name);
    sahel_index_close(ix);
    /* a reader opened before the replacement keeps its snapshot */
    sahel_index *snap = open_index(dir);
    sahel_writer_opts o = {.force = 1, .memory_budget = 0};
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    sahel_doc neu = mkdoc("n1", "Chad", "election");
    cr_assert_eq(sahel_writer_add(w, &neu, &err), 0, "%s", err.msg);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    for (int i = 0; i < 3; i++)
        cr_assert(!file_exists(dir, old_names[i]), "old segment %s still there", old_names[i]);
    cr_assert_eq(count_segment_files(dir), 1, "only the new segment remains");
    ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 1);
    cr_assert_eq(info.generation, 4, "three commits, then the replacement: the next generation");
    results r;
    search_ok(ix, "junta", 10, &r);
    cr_assert_eq(r.n, 0, "old articles are gone");
    search_ok(ix, "election", 10, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ids[0], "n1");
    sahel_index_close(ix);
    search_ok(snap, "junta", 10, &r); /* its files are unlinked but still mapped */
    cr_assert_eq(r.n, 1);
    cr_assert_str_eq(r.ids[0], "o1");
    sahel_index_close(snap);
}

Test(writer, close_without_commit_leaves_nothing_behind) {
    char dir[PATH_LEN];
    scratch(dir, "writer-abandon");
    /* one thread (the caller's) and a tiny budget: segments get written
     * before the close */
    sahel_writer_opts o = {.force = 0, .memory_budget = 16 * 1024, .threads = 1};
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "a%d", i);
        sahel_doc d = mkdoc(id, "Mali", "junta coup army");
        cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "%s", err.msg);
    }
    cr_assert_gt(count_segment_files(dir), 0, "segments were flushed before the close");
    sahel_writer_close(w);
    cr_assert(!file_exists(dir, "MANIFEST"));
    cr_assert_eq(count_segment_files(dir), 0, "no segment or temporary left");
    sahel_index *ix = NULL;
    cr_assert_eq(sahel_index_open(dir, &ix, &err), SAHEL_ENOTINDEX);
    /* the directory is usable for a new index */
    sahel_doc d = mkdoc("z", "Niger", "coup");
    build_index(dir, &d, 1, 0);
    sahel_index_close(open_index(dir));
}

Test(writer, abandoned_forced_rebuild_keeps_the_old_index) {
    char dir[PATH_LEN];
    two_article_index(dir, "writer-abandon-force");
    char *before = list_dir(dir);
    sahel_writer_opts o = {.force = 1, .memory_budget = 16 * 1024};
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    sahel_doc d = mkdoc("n", "Chad", "election");
    cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    char *after = list_dir(dir);
    cr_assert_str_eq(after, before, "only the abandoned writer's files were removed");
    cr_assert_eq(hits_in(dir, "junta", 10), 1);
    free(before);
    free(after);
}

Test(writer, non_empty_non_index_directory_is_refused_untouched) {
    char dir[PATH_LEN], p[PATH_LEN];
    scratch(dir, "writer-foreign");
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    join(p, dir, "thesis.tex");
    write_whole(p, "\\documentclass{article}\n", 24);
    char *before = list_dir(dir);
    for (int force = 0; force <= 1; force++) {
        sahel_writer_opts o = {.force = force, .memory_budget = 0};
        sahel_writer *w = (sahel_writer *)&w;
        sahel_error err = {0};
        int rc = sahel_writer_open(dir, &o, &w, &err);
        cr_assert_lt(rc, 0, "force=%d: a foreign directory must be refused", force);
        cr_assert_null(w);
        cr_assert(strstr(err.msg, dir), "%s", err.msg);
        char *after = list_dir(dir);
        cr_assert_str_eq(after, before, "force=%d: nothing written", force);
        free(after);
    }
    size_t len;
    char *text = sh_test_read_file(p, &len);
    cr_assert_str_eq(text, "\\documentclass{article}\n");
    free(text);
    /* a path that is a file */
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_lt(sahel_writer_open(p, NULL, &w, &err), 0);
    cr_assert_null(w);
    free(before);
}

/* A corpus cut into one segment per article (the 16 KiB budget is below
 * the writer's first hash table) must rank exactly like one segment:
 * N, df and average lengths are global. */
Test(writer, tiny_budget_and_several_commits_give_the_same_results) {
    char one[PATH_LEN], tiny[PATH_LEN], many[PATH_LEN];
    sweep_index(one, "writer-budget-one", 60, 0xB0D6, 0);
    /* the same articles: flushed every few articles, then merged at commit */
    sweep_index(tiny, "writer-budget-tiny", 60, 0xB0D6, 16 * 1024);
    /* the same articles again, six commits of ten: six segments */
    sweep_docs(many, "writer-budget-commits", 60, 0xB0D6, 10);
    sahel_index *a = open_index(one), *t = open_index(tiny), *b = open_index(many);
    sahel_index_info ia, it, ib;
    sahel_index_get_info(a, &ia);
    sahel_index_get_info(t, &it);
    sahel_index_get_info(b, &ib);
    cr_assert_eq(ia.nsegments, 1);
    cr_assert_eq(it.nsegments, 1, "a build merges what its budget flushed");
    cr_assert_eq(ib.nsegments, 6);
    cr_assert_eq(count_segment_files(tiny), 1, "the flushed segments are gone");
    sahel_error err = {0};
    sahel_index *ixs[2] = {t, b};
    sahel_index_info *infos[2] = {&it, &ib};
    for (int k = 0; k < 2; k++) {
        sahel_index *x = ixs[k];
        cr_assert_eq(ia.ndocs, infos[k]->ndocs);
        cr_assert_float_eq(ia.avg_title_len, infos[k]->avg_title_len, 1e-12);
        cr_assert_float_eq(ia.avg_body_len, infos[k]->avg_body_len, 1e-12);
        cr_assert_eq(sahel_index_verify(x, &err), 0, "%s", err.msg);
        static const char *const extra[] = {"mali niger burkina", "title:(junta coup)", "m*",
                                            "\"liptako gourma\"", "gold AND mine"};
        for (size_t q = 0; q < SWEEP_NQUERIES + 5; q++) {
            const char *query = q < SWEEP_NQUERIES ? sweep_queries[q] : extra[q - SWEEP_NQUERIES];
            results ra, rb;
            search_ok(a, query, 60, &ra);
            search_ok(x, query, 60, &rb);
            cr_assert_eq(ra.total, rb.total, "'%s': %llu vs %llu matches", query,
                         (unsigned long long)ra.total, (unsigned long long)rb.total);
            cr_assert_eq(ra.n, rb.n, "'%s'", query);
            for (size_t i = 0; i < ra.n; i++) {
                cr_assert_str_eq(ra.ids[i], rb.ids[i], "'%s' rank %zu", query, i);
                cr_assert_float_eq(ra.score[i], rb.score[i], 1e-9 * ra.score[i],
                                   "'%s' rank %zu: %.17g vs %.17g", query, i, ra.score[i],
                                   rb.score[i]);
            }
        }
    }
    sahel_index_close(a);
    sahel_index_close(t);
    sahel_index_close(b);
}

Test(writer, zero_articles_commit_and_search) {
    char dir[PATH_LEN];
    scratch(dir, "writer-zero");
    sahel_writer *w;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), 0, "%s", err.msg);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    cr_assert(file_exists(dir, "MANIFEST"));
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.ndocs, 0);
    cr_assert_eq(info.nsegments, 0);
    cr_assert_eq(info.avg_body_len, 0);
    cr_assert_eq(sahel_index_verify(ix, &err), 0, "%s", err.msg);
    static const char *const qs[] = {"mali", "\"mutual defense\"", "jiha*", "title:niger", "+a -b"};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        results r;
        search_ok(ix, qs[i], 10, &r);
        cr_assert_eq(r.n, 0, "'%s'", qs[i]);
        cr_assert_eq(r.total, 0);
    }
    sahel_index_close(ix);
}

/* Articles whose text holds no token at all make a segment with no terms.
 * writer.c:321, sahel_writer_add: qsort(w->toks, 0, ...) with w->toks
 * still NULL (no article so far had a token) is undefined behaviour
 * (qsort's pointer is declared nonnull): UBSan stops the asan build here.
 * Fix: skip the sort when ntoks < 2.  Passes in the plain debug build. */
Test(regression, wordless_articles_sort_a_null_token_array) {
    char dir[PATH_LEN];
    scratch(dir, "writer-no-terms");
    sahel_doc docs[2] = {mkdoc("p1", "...", "!!! --- ???"), mkdoc("p2", NULL, "")};
    build_index(dir, docs, 2, 0);
    sahel_index *ix = open_index(dir);
    cr_assert_eq(ix->segs[0].nterms, 0);
    cr_assert_eq(ix->segs[0].ndocs, 2);
    sahel_error err = {0};
    cr_assert_eq(sahel_index_verify(ix, &err), 0, "%s", err.msg);
    results r;
    search_ok(ix, "anything", 10, &r);
    cr_assert_eq(r.n, 0);
    search_ok(ix, "a*", 10, &r);
    cr_assert_eq(r.n, 0);
    sh_buf block = {0};
    uint32_t cached = UINT32_MAX;
    sh_stored s;
    cr_assert_eq(sh_store_get(&ix->segs[0], 0, &block, &cached, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(s.len[SH_STORE_BODY], 11);
    cr_assert(!memcmp(s.f[SH_STORE_BODY], "!!! --- ???", 11));
    sh_buf_free(&block);
    sahel_index_close(ix);
}

/* ==== 9. allocation failures ============================================= */

/* The allocator (support/failalloc.h) fails the Nth call (malloc or
 * realloc), once or from then on, and counts the blocks it handed out and
 * got back: the library must return every one of them whatever failed.
 * (libstemmer and zstd allocate on their own, outside this hook.)  The
 * writer allocates on its builder threads too, so which call fails then
 * depends on the threads' timing, and every outcome must be sound. */

static const char *const alloc_bodies[] = {
    "The junta in Mali signed a mutual defense pact with Niger and Burkina Faso.",
    "Wagner troops left Bamako; the Africa Corps arrived in Liptako-Gourma.",
    "Niger's junta expelled French troops and suspended uranium exports.",
    "Burkina Faso's transition postponed the election; jihadist attacks rose.",
    "ECOWAS lifted sanctions on Mali and Niger after the summit in Abuja.",
    "Drone strikes hit villages near the border; refugees fled to Mauritania."};
#define ALLOC_NDOCS (sizeof alloc_bodies / sizeof alloc_bodies[0])

/* Build, commit, open, search (ranked, phrase, prefix), read hits and
 * snippets, verify.  Stops at the first failing call and returns its code
 * (0 when everything succeeded); *step says which call failed. */
static int alloc_scenario(const char *dir, size_t budget, sahel_error *err, const char **step) {
    static const char *const queries[] = {"junta niger", "\"mutual defense pact\"", "jiha*",
                                          "title:mali +troops"};
    sahel_writer *w = NULL;
    sahel_index *ix = NULL;
    sahel_hits *h = NULL;
    int rc;
    sahel_writer_opts o = {.force = 0, .memory_budget = budget};
    *step = "writer_open";
    if ((rc = sahel_writer_open(dir, &o, &w, err))) goto out;
    *step = "writer_add";
    for (size_t i = 0; i < ALLOC_NDOCS; i++) {
        char id[8], title[16];
        snprintf(id, sizeof id, "m%zu", i);
        snprintf(title, sizeof title, i % 2 ? "Mali %zu" : "Niger %zu", i);
        sahel_doc d = mkdoc(id, title, alloc_bodies[i]);
        if ((rc = sahel_writer_add(w, &d, err))) goto out;
    }
    *step = "writer_commit";
    if ((rc = sahel_writer_commit(w, err))) goto out;
    sahel_writer_close(w);
    w = NULL;
    *step = "index_open";
    if ((rc = sahel_index_open(dir, &ix, err))) goto out;
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        *step = "search";
        if ((rc = sahel_search(ix, queries[q], strlen(queries[q]), NULL, &h, err))) goto out;
        for (size_t i = 0; i < sahel_hits_count(h) && i < 2; i++) {
            sahel_hit hit;
            sahel_snippet snip;
            *step = "hits_get";
            if ((rc = sahel_hits_get(h, i, &hit, err))) goto out;
            *step = "hits_snippet";
            if ((rc = sahel_hits_snippet(h, i, 60, &snip, err))) goto out;
        }
        sahel_hits_free(h);
        h = NULL;
    }
    *step = "index_verify";
    rc = sahel_index_verify(ix, err);
out:
    sahel_hits_free(h);
    sahel_index_close(ix);
    sahel_writer_close(w);
    return rc;
}

/* Problems are gathered rather than asserted one by one, so that a run
 * shows every kind at once; the first few are spelled out. */
static size_t g_nproblems;

__attribute__((format(printf, 2, 3))) static void problem(tbuf *b, const char *fmt, ...) {
    if (g_nproblems++ >= 16) return;
    va_list ap;
    va_start(ap, fmt);
    char line[768];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tb_str(b, "\n  ");
    tb_str(b, line);
}

/* Runs the scenario in a fresh, existing, empty directory under the
 * failing allocator; checks the outcome and what is left on disk. */
static void alloc_run(const char *dir, size_t budget, sh_test_failalloc *fa, tbuf *problems) {
    cr_assert_eq(sh_test_rm_rf(dir), 0);
    cr_assert_eq(sh_test_mkdir_p(dir), 0);
    sh_test_failalloc_install(fa);
    sahel_error err = {0};
    const char *step;
    int rc = alloc_scenario(dir, budget, &err, &step);
    sahel_set_allocator(NULL);
    const char *mode = budget ? (fa->persistent ? "from (small budget)" : "at (small budget)")
                              : (fa->persistent ? "from" : "at");
    cr_assert_leq(rc, 0);
    if (rc)
        cr_assert_eq(err.code, rc, "fail %s %llu: code in err", mode,
                     (unsigned long long)fa->fail_at);
    if (fa->live != 0)
        problem(problems, "fail %s %llu: %s returned %d, %lld blocks leaked", mode,
                (unsigned long long)fa->fail_at, step, rc, (long long)fa->live);
    /* a failure must say what it is: out of memory, not something else */
    if (rc && rc != SAHEL_ENOMEM)
        problem(problems, "fail %s %llu: %s returned %d (%s)", mode,
                (unsigned long long)fa->fail_at, step, rc, err.msg);
    /* a build either committed whole or left no file behind */
    if (file_exists(dir, "MANIFEST")) {
        sahel_index *ix = open_index(dir);
        sahel_index_info info;
        sahel_index_get_info(ix, &info);
        cr_assert_eq(info.ndocs, ALLOC_NDOCS, "fail %s %llu: a committed index holds every article",
                     mode, (unsigned long long)fa->fail_at);
        sahel_error e2 = {0};
        cr_assert_eq(sahel_index_verify(ix, &e2), 0, "%s", e2.msg);
        sahel_index_close(ix);
    } else if (count_segment_files(dir) != 0) {
        problem(problems, "fail %s %llu: %s returned %d (%s), no MANIFEST but %zu seg-* files left",
                mode, (unsigned long long)fa->fail_at, step, rc, err.msg, count_segment_files(dir));
    }
}

/* Twice: with the default budget (one segment at commit) and with a 16 KiB
 * one (a segment flushed by every article, so flushes fail mid-build). */
Test(alloc, every_failing_allocation_is_an_error_never_a_crash_or_leak) {
    char dir[PATH_LEN];
    scratch(dir, "alloc");
    tbuf problems = {0};
    static const size_t budgets[2] = {0, 16 * 1024};
    for (int b = 0; b < 2; b++) {
        sh_test_failalloc fa = {0};
        size_t before = g_nproblems;
        alloc_run(dir, budgets[b], &fa, &problems);
        cr_assert_eq(g_nproblems, before, "without failures: %s", (const char *)problems.p);
        uint64_t total = fa.calls;
        cr_log_info("budget %zu: the scenario makes %llu allocation calls", budgets[b],
                    (unsigned long long)total);
        cr_assert_gt(total, 50);
        uint64_t nfailed = 0;
        for (uint64_t n = 1; n <= total + 1; n++) {
            sh_test_failalloc f = {0};
            f.fail_at = n;
            alloc_run(dir, budgets[b], &f, &problems);
            nfailed += f.failures > 0;
        }
        cr_assert_eq(nfailed, total, "every allocation call was failed once");
        for (uint64_t n = 1; n <= total; n += 1 + total / 97) {
            sh_test_failalloc f = {0};
            f.fail_at = n;
            f.persistent = 1;
            alloc_run(dir, budgets[b], &f, &problems);
        }
    }
    cr_expect_eq(g_nproblems, 0, "%zu allocation failures mishandled (see the regression tests):%s%s",
                 g_nproblems, problems.p ? (const char *)problems.p : "",
                 g_nproblems > 16 ? "\n  ..." : "");
    tb_free(&problems);
}

/* ==== engine bugs found by these tests (each fails until fixed) ========== */

/* postings.c, load_block: "each tf is at most the field's length for that
 * doc" does not hold for every index the writer makes.  A field's length
 * counts positions (tokens without SH_TOK_WHOLE), its tfs count tokens
 * including WHOLE ones; when a hyphenated word's whole and all its parts
 * normalise to the same term, tf = parts + 1 > length.  Two 130-digit
 * numbers joined by a hyphen do it: each part and the whole are cut to the
 * same 128 digits (SH_MAX_TERM_LEN), so the term has tf 3 in a field of
 * length 2.  The writer writes it, then the reader calls the postings
 * "damaged (term frequency)": verify fails and every search for the term
 * fails with SAHEL_ECORRUPT.  (Either bound tf by length plus the wholes,
 * or make the writer's lengths and tfs agree.) */
Test(regression, tf_above_field_length_from_truncated_hyphen_parts) {
    char dir[PATH_LEN];
    scratch(dir, "bug-tf-len");
    char title[300], term[129];
    memset(title, '1', 130);
    title[130] = '-';
    memset(title + 131, '1', 130);
    title[261] = '\0';
    memset(term, '1', 128);
    term[128] = '\0';
    sahel_doc docs[2] = {mkdoc("t1", title, "numbers"), mkdoc("t2", "other", "words")};
    build_index(dir, docs, 2, 0);
    sahel_index *ix = open_index(dir);
    cr_assert_eq(sh_segment_len_title(&ix->segs[0], 0), 2, "two positions in the title");
    sahel_error err = {0};
    int rc = sahel_index_verify(ix, &err);
    cr_expect_eq(rc, 0, "an index the writer just made fails verify: %s", err.msg);
    sahel_hits *h = NULL;
    rc = sahel_search(ix, term, 128, NULL, &h, &err);
    cr_expect_eq(rc, 0, "searching the term fails: %s", err.msg);
    if (rc == 0) cr_expect_eq(sahel_hits_count(h), 1);
    sahel_hits_free(h);
    sahel_index_close(ix);
}

/* A canary allocator: each block carries its size before it and 16 guard
 * bytes after it, checked when it is freed or resized, so that a heap
 * overflow fails the test in builds without ASan too. */
#define CANARY 0xC5
static unsigned g_canary_hits;

static int canary_ok(const uint8_t *base) {
    size_t size;
    memcpy(&size, base, sizeof size);
    for (size_t i = 0; i < 16; i++)
        if (base[16 + size + i] != CANARY) return 0;
    return 1;
}

static void *canary_wrap(uint8_t *base, size_t size) {
    if (!base) return NULL;
    memcpy(base, &size, sizeof size);
    memset(base + 16 + size, CANARY, 16);
    return base + 16;
}

static void *canary_malloc(size_t size, void *ctx) {
    (void)ctx;
    return canary_wrap(malloc(size + 32), size);
}

static void *canary_realloc(void *ptr, size_t size, void *ctx) {
    (void)ctx;
    uint8_t *base = ptr ? (uint8_t *)ptr - 16 : NULL;
    if (base && !canary_ok(base)) g_canary_hits++;
    return canary_wrap(realloc(base, size + 32), size);
}

static void canary_free(void *ptr, void *ctx) {
    (void)ctx;
    if (!ptr) return;
    uint8_t *base = (uint8_t *)ptr - 16;
    if (!canary_ok(base)) g_canary_hits++;
    free(base);
}

/* query/search.c, count_phrase: the scratch cursors are taken at
 * `s->cap + nt`, but cap[] holds 2*nt capacities (one per field per term;
 * phrase_make allocates 3*nt words: "2nt capacities + nt cursors").  So
 * resetting and advancing the cursors overwrites the capacities of the
 * later terms' position buffers; grow_pos then trusts a capacity larger
 * than the buffer and sh_postings_positions writes past its end.  Doc 0
 * has "xc1" once in its title (its title buffer gets 64 slots) and makes
 * the cursor of "xb1" walk 100 body positions (idx[1] is cap[4], the
 * capacity of "xc1"'s title buffer: it becomes 100); doc 1 has "xc1" 80
 * times in its title: 80 positions go into the 64-slot buffer.
 * Fix: idx = s->cap + 2 * nt. */
Test(regression, phrase_cursors_overwrite_position_buffer_capacities) {
    char dir[PATH_LEN];
    scratch(dir, "bug-phrase");
    tbuf body0 = {0}, title1 = {0};
    for (int i = 0; i < 100; i++) tb_str(&body0, "xb1 ");
    tb_str(&body0, "xa1 xb1 xc1");
    for (int i = 0; i < 80; i++) tb_str(&title1, "xc1 ");
    sahel_doc docs[2] = {mkdoc("A", "first xc1", (const char *)body0.p),
                         mkdoc("B", (const char *)title1.p, "xa1 xb1")};
    build_index(dir, docs, 2, 0);
    g_canary_hits = 0;
    sahel_allocator a = {canary_malloc, canary_realloc, canary_free, NULL};
    sahel_set_allocator(&a);
    sahel_index *ix;
    sahel_error err = {0};
    int rc = sahel_index_open(dir, &ix, &err);
    sahel_hits *h = NULL;
    if (rc == 0) rc = sahel_search(ix, "\"xa1 xb1 xc1\"", 13, NULL, &h, &err);
    size_t n = sahel_hits_count(h);
    sahel_hits_free(h);
    if (ix) sahel_index_close(ix);
    sahel_set_allocator(NULL);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(g_canary_hits, 0, "heap overflow: %u guard zones overwritten", g_canary_hits);
    cr_assert_eq(n, 1, "only A holds the phrase");
    tb_free(&body0);
    tb_free(&title1);
}

/* query/search.c, phrase_destroy (line ~512) frees s->pos[i] for every i
 * without checking that s->pos itself was allocated: when one of the
 * three sh_calloc calls in phrase_make fails, its failure path
 * dereferences NULL.  Any phrase search under memory pressure crashes
 * instead of returning SAHEL_ENOMEM.  Here every allocation of one phrase
 * search is failed in turn. */
Test(regression, phrase_search_out_of_memory_crashes) {
    char dir[PATH_LEN];
    scratch(dir, "bug-phrase-oom");
    sahel_doc docs[2] = {mkdoc("a", "Mali", "a mutual defense pact"),
                         mkdoc("b", "Niger", "defense of the mutual pact")};
    build_index(dir, docs, 2, 0);
    for (uint64_t n = 1; n < 400; n++) {
        sh_test_failalloc fa = {0};
        fa.fail_at = n;
        sh_test_failalloc_install(&fa);
        sahel_index *ix = NULL;
        sahel_hits *h = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(dir, &ix, &err);
        if (rc == 0) rc = sahel_search(ix, "\"mutual defense pact\"", 21, NULL, &h, &err);
        sahel_hits_free(h);
        sahel_index_close(ix);
        sahel_set_allocator(NULL);
        cr_assert(rc == 0 || rc == SAHEL_ENOMEM, "fail at %llu: rc %d", (unsigned long long)n, rc);
        cr_assert_eq(fa.live, 0, "fail at %llu: %lld blocks leaked", (unsigned long long)n,
                     (long long)fa.live);
        if (!fa.failures) break; /* past the last allocation */
    }
}

/* writer.c, sahel_writer_open: in an existing directory, any failure of
 * sh_manifest_read other than SAHEL_ENOTINDEX is taken for a damaged
 * index, so an allocation failure (or an I/O error) is reported as
 * SAHEL_EEXIST "holds a damaged index (out of memory)".  Expected:
 * SAHEL_ENOMEM (and SAHEL_EIO) passed through as they are. */
Test(regression, writer_open_out_of_memory_reported_as_existing_index) {
    char dir[PATH_LEN];
    scratch(dir, "bug-open-oom");
    tbuf problems = {0};
    for (uint64_t n = 1; n < 100; n++) {
        cr_assert_eq(sh_test_mkdir_p(dir), 0); /* exists, empty */
        sh_test_failalloc fa = {0};
        fa.fail_at = n;
        sh_test_failalloc_install(&fa);
        sahel_writer *w = NULL;
        sahel_error err = {0};
        int rc = sahel_writer_open(dir, NULL, &w, &err);
        sahel_writer_close(w);
        sahel_set_allocator(NULL);
        cr_assert_eq(fa.live, 0);
        if (rc != 0 && rc != SAHEL_ENOMEM)
            tb_printf(&problems, "\n  fail at %llu: rc %d (%s)", (unsigned long long)n, rc,
                      err.msg);
        if (!fa.failures) break;
    }
    cr_expect_eq(problems.len, 0, "out of memory misreported:%s",
                 problems.p ? (const char *)problems.p : "");
    tb_free(&problems);
}

/* writer.c, flush_segment: after sh_segw_finish has renamed the segment
 * into place, growing w->segs (sh_reallocarray) or copying its name
 * (sh_strndup) can still fail; the file is then recorded nowhere, so
 * sahel_writer_close does not remove it and an abandoned build leaves a
 * segment file behind.  (Also: sahel_writer_close builds each path with
 * sh_path_join, so under persistent memory pressure it removes nothing.)
 * Expected: a failed commit followed by close leaves no seg-* file. */
Test(regression, failed_commit_leaves_a_segment_file) {
    char dir[PATH_LEN];
    scratch(dir, "bug-commit-oom");
    tbuf problems = {0};
    for (uint64_t n = 1; n < 400; n++) {
        cr_assert_eq(sh_test_rm_rf(dir), 0);
        sahel_writer *w;
        sahel_error err = {0};
        cr_assert_eq(sahel_writer_open(dir, NULL, &w, &err), 0, "%s", err.msg);
        for (size_t i = 0; i < ALLOC_NDOCS; i++) {
            char id[8];
            snprintf(id, sizeof id, "m%zu", i);
            sahel_doc d = mkdoc(id, "title", alloc_bodies[i]);
            cr_assert_eq(sahel_writer_add(w, &d, &err), 0, "%s", err.msg);
        }
        sh_test_failalloc fa = {0};
        fa.fail_at = n;
        sh_test_failalloc_install(&fa);
        int rc = sahel_writer_commit(w, &err);
        sahel_set_allocator(NULL); /* close with the real allocator */
        sahel_writer_close(w);
        if (rc && count_segment_files(dir)) {
            char *files = list_dir(dir);
            tb_printf(&problems, "\n  fail at %llu: commit gave %d (%s); left: %s",
                      (unsigned long long)n, rc, err.msg, files);
            free(files);
        }
        if (!fa.failures) break;
    }
    cr_expect_eq(problems.len, 0, "abandoned builds left files:%s",
                 problems.p ? (const char *)problems.p : "");
    tb_free(&problems);
}

/* ---- positions runs and sorted intersection (postings.c) --------------- */

/* A run as the positions section holds it: the first position, then the
 * differences, each LEB128 (tb_varint). */
static void put_run(tbuf *b, const uint32_t *pos, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) tb_varint(b, k ? pos[k] - pos[k - 1] : pos[k]);
}

/* A gap of 1 to 4 bytes, or 0 (a hyphenated word's two terms share a
 * position), so that every 8-byte window mixes lengths. */
static uint32_t some_gap(void) {
    switch (rng_below(8)) {
    case 0: return 0;
    case 1: case 2: case 3: return rng_below(128);
    case 4: case 5: return 128 + rng_below(16384 - 128);
    case 6: return 16384 + rng_below((1u << 21) - 16384);
    default: return (1u << 21) + rng_below(1u << 22);
    }
}

Test(postings, read_gaps_decodes_runs_of_every_gap_length_at_every_isa) {
    rng_seed(0x6a9);
    int is[3], ni = isas(is);
    static uint32_t pos[400], got[400];
    for (int trial = 0; trial < 600; trial++) {
        /* mostly one- and two-byte gaps (as in text), sometimes any */
        int mixed = trial % 3 == 0;
        uint32_t n = rng_below(trial % 5 == 0 ? 400 : 40), last = 0;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t g = mixed ? some_gap() : rng_below(trial % 2 ? 128 : 16384);
            pos[k] = last += k ? g : rng_below(3000);
        }
        tbuf b = {0};
        put_run(&b, pos, n);
        size_t len = b.len;
        /* what follows the run (another term's, another doc's) is not read
         * as part of it; the room a caller checks is there */
        for (uint32_t k = 0; k < 5 * n + 8; k++) tb_putc(&b, (uint8_t)rng_next());
        for (int k = 0; k < ni; k++) {
            sh_codec_set_isa(is[k]);
            memset(got, 0xA5, sizeof got);
            const uint8_t *end = sh_read_gaps(b.p, b.p + b.len, n, got);
            cr_assert_eq(end, b.p + len, "%s, trial %d: the run of %u ends at %td, not %zu",
                         isa_name(is[k]), trial, n, end ? end - b.p : -1, len);
            cr_assert_arr_eq(got, pos, n * sizeof *pos, "%s, trial %d", isa_name(is[k]), trial);
        }
        tb_free(&b);
    }
    sh_codec_set_isa(-1);
}

Test(postings, read_gaps_leaves_what_no_writer_makes_to_the_checked_decoder) {
    int is[3], ni = isas(is);
    for (int k = 0; k < ni; k++) {
        sh_codec_set_isa(is[k]);
        uint32_t got[32];
        /* a six-byte varint among short ones */
        tbuf b = {0};
        for (int i = 0; i < 12; i++) tb_varint(&b, 5);
        static const uint8_t six[] = {0x81, 0x80, 0x80, 0x80, 0x80, 0x00};
        for (size_t i = 0; i < sizeof six; i++) tb_putc(&b, six[i]);
        for (int i = 0; i < 12; i++) tb_varint(&b, 5);
        for (int i = 0; i < 200; i++) tb_putc(&b, 0);
        cr_assert_null(sh_read_gaps(b.p, b.p + b.len, 25, got), "%s", isa_name(is[k]));
        /* positions that add up past 32 bits */
        b.len = 0;
        for (int i = 0; i < 12; i++) tb_varint(&b, 0x7FFFFFF0u);
        for (int i = 0; i < 100; i++) tb_putc(&b, 0);
        cr_assert_null(sh_read_gaps(b.p, b.p + b.len, 12, got), "%s", isa_name(is[k]));
        /* five bytes whose sum still fits: read */
        b.len = 0;
        tb_varint(&b, 0xFFFFFFF0u);
        for (int i = 0; i < 15; i++) tb_varint(&b, 1);
        for (int i = 0; i < 100; i++) tb_putc(&b, 0);
        cr_assert_not_null(sh_read_gaps(b.p, b.p + b.len, 16, got), "%s", isa_name(is[k]));
        cr_assert_eq(got[15], 0xFFFFFFFFu, "%s", isa_name(is[k]));
        tb_free(&b);
    }
    sh_codec_set_isa(-1);
}

Test(postings, skip_varints_stops_after_the_nth_end_or_fails_at_the_input_end) {
    rng_seed(0x5c1);
    int is[3], ni = isas(is);
    static size_t ends[2000];
    for (int trial = 0; trial < 200; trial++) {
        tbuf b = {0};
        uint32_t count = rng_below(2000);
        for (uint32_t k = 0; k < count; k++) {
            tb_varint(&b, rng_below(4) ? rng_below(300) : (uint32_t)rng_next());
            ends[k] = b.len;
        }
        for (int k = 0; k < ni; k++) {
            sh_codec_set_isa(is[k]);
            for (int probe = 0; probe < 20; probe++) {
                uint64_t n = rng_below(count + 1);
                const uint8_t *q = sh_skip_varints(b.p, b.p + b.len, n);
                cr_assert_eq(q, b.p + (n ? ends[n - 1] : 0), "%s: past %llu of %u varints",
                             isa_name(is[k]), (unsigned long long)n, count);
            }
            cr_assert_null(sh_skip_varints(b.p, b.p + b.len, (uint64_t)count + 1), "%s",
                           isa_name(is[k]));
        }
        tb_free(&b);
    }
    sh_codec_set_isa(-1);
}

/* A strictly ascending array of n values, about one in `every` taken. */
static void ascending(uint32_t *v, uint32_t n, uint32_t every) {
    uint32_t x = rng_below(every);
    for (uint32_t k = 0; k < n; k++) {
        v[k] = x;
        x += 1 + rng_below(2 * every);
    }
}

/* The values a[0..na) and b[0..nb) (each strictly ascending) share, by a
 * plain merge: what every intersection must give.  Returns how many. */
static size_t merge_shared(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb,
                           uint32_t *want) {
    size_t nw = 0;
    for (uint32_t i = 0, j = 0; i < na && j < nb;) {
        if (a[i] == b[j]) want[nw++] = a[i];
        uint32_t x = a[i], y = b[j];
        i += x <= y;
        j += y <= x;
    }
    return nw;
}

Test(postings, intersect_sorted_matches_a_merge_at_every_isa) {
    rng_seed(0x1a7);
    int is[3], ni = isas(is);
    static uint32_t a[300], b[300], want[300], got[300 + 4 + 1];
    static const uint32_t every[] = {1, 2, 4, 16, 200};
    for (int trial = 0; trial < 3000; trial++) {
        uint32_t na = rng_below(trial % 4 ? 140 : 300), nb = rng_below(trial % 4 ? 140 : 300);
        ascending(a, na, every[rng_below(5)]);
        ascending(b, nb, every[rng_below(5)]);
        size_t nw = merge_shared(a, na, b, nb, want);
        size_t room = SH_MIN(na, nb) + 4;
        for (int k = 0; k < ni; k++) {
            sh_codec_set_isa(is[k]);
            got[room] = 0xC0FFEE;
            size_t n = sh_intersect_sorted(a, na, b, nb, got);
            cr_assert_eq(n, nw, "%s, trial %d: %zu shared, want %zu", isa_name(is[k]), trial, n,
                         nw);
            cr_assert_arr_eq(got, want, nw * sizeof *want, "%s, trial %d", isa_name(is[k]),
                             trial);
            cr_assert_eq(got[room], 0xC0FFEE, "%s: stored past min(na, nb) + 4",
                         isa_name(is[k]));
        }
    }
    sh_codec_set_isa(-1);
}

/* sh_postings_seek_in_block against a plain scan: from every start, for
 * targets at, between and around the docs, with the answer in the eight
 * it counts, past them (the binary search) and at the block's last doc. */
Test(postings, seek_in_block_finds_the_first_doc_at_or_past_the_target) {
    rng_seed(0x5ee4);
    static uint32_t docs[SH_BLOCK];
    for (int trial = 0; trial < 400; trial++) {
        uint32_t n = 1 + rng_below(SH_BLOCK);
        static const uint32_t every[] = {1, 2, 3, 50, 100000};
        ascending(docs, n, every[rng_below(5)]);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t lo = i ? docs[i - 1] : 0;
            for (int k = 0; k < 6; k++) {
                /* a target above docs[i - 1] (the caller's cursor is past
                 * those) and at most docs[n - 1] */
                uint64_t span = (uint64_t)docs[n - 1] - lo;
                uint32_t target = lo + (i ? 1 : 0) + (uint32_t)(rng_next() % (span + 1));
                if (target > docs[n - 1]) target = docs[n - 1];
                if (i && target <= docs[i - 1]) continue;
                uint32_t want = i;
                while (docs[want] < target) want++;
                uint32_t got = sh_postings_seek_in_block(docs, i, n, target);
                cr_assert_eq(got, want, "n %u, from %u, target %u: %u, want %u", n, i, target,
                             got, want);
            }
        }
    }
}

/* Values up to UINT32_MAX, and tails of every length against each other:
 * the SIMD paths fill short eights with the array's last value, and must
 * neither match that filling nor lose a match next to it. */
Test(postings, intersect_sorted_handles_the_top_of_the_range_and_every_tail) {
    int is[3], ni = isas(is);
    static uint32_t a[40], b[40], want[40], got[40 + 4];
    for (uint32_t na = 1; na <= 20; na++)
        for (uint32_t nb = 1; nb <= 20; nb++)
            for (int shift = 0; shift < 3; shift++) {
                /* a: every value down from UINT32_MAX; b: every other one,
                 * shifted so that its top differs from a's or not */
                for (uint32_t i = 0; i < na; i++) a[i] = UINT32_MAX - (na - 1 - i);
                for (uint32_t j = 0; j < nb; j++) b[j] = UINT32_MAX - (uint32_t)shift - 2 * (nb - 1 - j);
                size_t nw = merge_shared(a, na, b, nb, want);
                for (int k = 0; k < ni; k++) {
                    sh_codec_set_isa(is[k]);
                    size_t n = sh_intersect_sorted(a, na, b, nb, got);
                    cr_assert_eq(n, nw, "%s, %u against %u, shift %d: %zu shared, want %zu",
                                 isa_name(is[k]), na, nb, shift, n, nw);
                    cr_assert_arr_eq(got, want, nw * sizeof *want, "%s, %u against %u",
                                     isa_name(is[k]), na, nb);
                    n = sh_intersect_sorted(b, nb, a, na, got);
                    cr_assert_eq(n, nw, "%s, %u against %u swapped", isa_name(is[k]), nb, na);
                    cr_assert_arr_eq(got, want, nw * sizeof *want, "%s, swapped", isa_name(is[k]));
                }
            }
    sh_codec_set_isa(-1);
}

/* ---- keysort.c ---------------------------------------------------------- */

static int memcmp_order(const void *a, const void *b) {
    const sh_strkey *x = a, *y = b;
    int c = memcmp(x->p, y->p, SH_MIN(x->len, y->len));
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* Sort n keys of `strs` (laid out by the caller) at the given depth
 * (UINT_MAX: sh_strkeys_sort's own) and expect qsort's memcmp order of the
 * strings, every index once. */
static void expect_sorted_like_memcmp(const uint8_t *const *strs, const uint32_t *lens, size_t n,
                                      unsigned depth, const char *what) {
    sh_strkey *k = malloc((n ? n : 1) * sizeof *k), *want = malloc((n ? n : 1) * sizeof *want);
    uint8_t *seen = calloc(n ? n : 1, 1);
    cr_assert(k && want && seen);
    for (size_t i = 0; i < n; i++) want[i] = k[i] = sh_strkey_make(strs[i], lens[i], (uint32_t)i);
    qsort(want, n, sizeof *want, memcmp_order);
    if (depth == UINT_MAX)
        sh_strkeys_sort(k, n);
    else
        sh_strkeys_sort_depth(k, n, depth);
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(k[i].idx, n);
        cr_assert_eq(seen[k[i].idx]++, 0, "%s: index %u twice", what, k[i].idx);
        cr_assert_eq(k[i].p, strs[k[i].idx], "%s: key %zu lost its string", what, i);
        cr_assert_eq(memcmp_order(&k[i], &want[i]), 0, "%s (n %zu, depth %u): key %zu out of order",
                     what, n, depth, i);
    }
    free(k);
    free(want);
    free(seen);
}

Test(keysort, memcmp_order_on_shared_prefixes_zero_bytes_and_every_arrangement) {
    /* strings over a 3-letter alphabet with zero bytes, 0 to 20 bytes
     * long, so that 8-byte prefixes tie often, and a string and its
     * zero-padded extension ("ab", "ab\0") are told apart */
    enum { N = 3000, MAXLEN = 20 };
    uint8_t *pool = malloc((size_t)N * MAXLEN);
    const uint8_t **strs = malloc(N * sizeof *strs);
    uint32_t *lens = malloc(N * sizeof *lens);
    cr_assert(pool && strs && lens);
    rng_seed(77);
    static const uint8_t alphabet[3] = {0, 'a', 0xff};
    for (size_t i = 0; i < N; i++) {
        uint8_t *s = pool + i * MAXLEN;
        lens[i] = rng_below(MAXLEN + 1);
        uint32_t shared = rng_below(2) ? 9 : 0; /* half share 9 bytes of 'a' */
        for (uint32_t j = 0; j < lens[i]; j++) s[j] = j < shared ? 'a' : alphabet[rng_below(3)];
        strs[i] = s;
    }
    static const size_t sizes[] = {0, 1, 2, 16, 17, 100, 1000, N};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        size_t n = sizes[z];
        /* random order, at every depth the sort can be forced to */
        expect_sorted_like_memcmp(strs, lens, n, UINT_MAX, "random");
        expect_sorted_like_memcmp(strs, lens, n, 0, "random, heapsort");
        expect_sorted_like_memcmp(strs, lens, n, 3, "random, heapsort below 3 levels");
        /* sorted, reversed, all equal, organ pipe */
        sh_strkey *k = malloc((n ? n : 1) * sizeof *k);
        const uint8_t **arranged = malloc((n ? n : 1) * sizeof *arranged);
        uint32_t *alens = malloc((n ? n : 1) * sizeof *alens);
        cr_assert(k && arranged && alens);
        for (size_t i = 0; i < n; i++) k[i] = sh_strkey_make(strs[i], lens[i], (uint32_t)i);
        qsort(k, n, sizeof *k, memcmp_order);
        for (int kind = 0; kind < 4; kind++) {
            for (size_t i = 0; i < n; i++) {
                size_t from = kind == 0   ? i
                              : kind == 1 ? n - 1 - i
                              : kind == 2 ? 0
                                          : (i < n / 2 ? 2 * i : 2 * (n - 1 - i) + 1) % n;
                arranged[i] = k[from].p;
                alens[i] = k[from].len;
            }
            expect_sorted_like_memcmp(arranged, alens, n, UINT_MAX, "arranged");
            expect_sorted_like_memcmp(arranged, alens, n, 0, "arranged, heapsort");
        }
        free(k);
        free(arranged);
        free(alens);
    }
    free(pool);
    free(strs);
    free(lens);
}

/* ---- alloc.c: large blocks (sh_big_*) ------------------------------------ */

/* Grow a block page by page past several pages and back, checking that
 * what was written stays, that grown bytes read zero, and that the hook
 * (when installed) sees every block and gets each one back. */
static void exercise_big_blocks(void) {
    size_t size = 100;
    uint8_t *p = sh_big_alloc(size);
    cr_assert_not_null(p);
    for (size_t i = 0; i < size; i++) cr_assert_eq(p[i], 0, "byte %zu of a new block", i);
    memset(p, 0xab, size);
    static const size_t steps[] = {4000, 4096, 4097, 70000, 1 << 20, 3000000, 5000, 200000};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        size_t next = steps[k];
        uint8_t *q = sh_big_realloc(p, size, next);
        cr_assert_not_null(q, "growing %zu -> %zu", size, next);
        size_t kept = SH_MIN(size, next);
        for (size_t i = 0; i < kept; i++)
            cr_assert_eq(q[i], 0xab, "byte %zu lost going %zu -> %zu", i, size, next);
        for (size_t i = kept; i < next; i++)
            cr_assert_eq(q[i], 0, "byte %zu not zero going %zu -> %zu", i, size, next);
        memset(q, 0xab, next);
        p = q;
        size = next;
    }
    sh_big_free(p, size);
    sh_big_free(NULL, 0);
    uint8_t *z = sh_big_realloc(NULL, 0, 10); /* NULL grows like an allocation */
    cr_assert_not_null(z);
    cr_assert_eq(z[9], 0);
    sh_big_free(z, 10);
}

Test(big_blocks, mapped_blocks_keep_their_bytes_and_grow_zeroed) { exercise_big_blocks(); }

Test(big_blocks, with_an_allocator_installed_every_block_goes_through_it) {
    sh_test_failalloc fa = {0};
    sh_test_failalloc_install(&fa);
    exercise_big_blocks();
    uint64_t calls = fa.calls;
    int64_t live = fa.live;
    /* and a failure is NULL with the block as it was */
    uint8_t *p = sh_big_alloc(64);
    cr_assert_not_null(p);
    p[0] = 7;
    fa.fail_at = fa.calls + 1;
    cr_expect_null(sh_big_realloc(p, 64, 1 << 20));
    cr_expect_eq(p[0], 7);
    sh_big_free(p, 64);
    fa.fail_at = fa.calls + 1;
    cr_expect_null(sh_big_alloc(128), "a failed allocation");
    sahel_set_allocator(NULL);
    cr_expect_geq(calls, 10, "the allocator saw %llu calls", (unsigned long long)calls);
    cr_expect_eq(live, 0, "blocks left with the allocator: %lld", (long long)live);
}
