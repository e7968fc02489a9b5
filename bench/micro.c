/*
 * micro.c - micro benchmarks of sahelsearch's hot paths, each a timed
 * section of its own, so that a change to one stage shows in one figure:
 *
 *   micro CORPUS.jsonl [--quick] [--name NAME] [--max-mb MB]
 *
 *   tokenize   the tokenizer over the titles and bodies of the corpus
 *              (MB/s of text, tokens/s), class -: sh_tokenize_batch, the
 *              interface the analyzer (and so indexing) uses, with the
 *              driver the engine picks; class per-token: sh_tokenize, one
 *              callback a token; class scalar: the batches with the
 *              portable driver forced (when the CPU has the AVX2 one)
 *   analyze    sh_analyze with the "english" analyzer (fold, cached
 *              Snowball stemming, strip), MB/s and tokens/s; class -:
 *              every timed pass starts from a new analyzer, so its stem
 *              cache starts empty as an indexing run's does, and the hit
 *              rate of such a pass is reported; class warm: one analyzer
 *              for all passes, its cache filled by the warm-up pass.
 *              Class - is the figure of record: each pass stems every
 *              distinct form once (2% of the tokens of Reuters-21578),
 *              as indexing a corpus does; class warm stems nothing, which
 *              indexing never sees (no document is analysed twice), so it
 *              bounds what the cache alone can give
 *   bitunpack  sh_bitunpack128 of 128-value blocks of widths 1..20 bits
 *              (integers/s), on random values from a fixed seed, and
 *              sh_bitunpack128_docs (gaps to doc ids, the prefix sum
 *              included); class wN with the decoder the engine picks,
 *              wN-sse41 and wN-scalar with the fallbacks forced
 *   postings   sh_postings_next over every posting list of an index built
 *              from the corpus (class all), and over its 64 longest lists
 *              (class top64), reading every doc's tfs, in docs/s; and the
 *              64 longest without the tfs (top64-docs)
 *   and        "a AND b" through sahel_search (k = 10) on a synthetic index
 *              whose document frequencies are set by construction: two
 *              lists of similar length (class similar) and lists of 1:100
 *              (class skewed100); postings/s = (len(a) + len(b)) / time;
 *              the same conjunctions at the cursor level, integers/s of
 *              the two lists: leapfrogging next/advance (and_cursor, -tf
 *              reading the common docs' tfs) and sh_postings_intersect, a
 *              block at a time (and_block)
 *   or         ranked OR top-10 through sahel_search on the corpus index,
 *              two and three words drawn from its titles (queries/s)
 *
 * Method (STYLE.md, "Tests and benchmarks"): every input is loaded, and
 * every index built, before timing; each section runs once as a warm-up,
 * then R timed passes (R = 7, or 2 with --quick, the CI smoke run); the
 * figure from the median pass and the one from the fastest are both
 * reported.  Random choices come from fixed seeds, so two runs do the same
 * work.  A pass that counts different work from the warm-up (tokens,
 * postings, hits) stops the program: the figures would not be comparable.
 *
 * Output: RESULT lines as the harness writes them, metric M for the median
 * pass and M_best for the fastest, e.g.
 *   RESULT engine=sahel corpus=reuters21578 metric=tokenize_mbps class=- value=...
 * (corpus=random for bitunpack, synthetic for the AND index), and a
 * human summary on stderr.  MB means 10^6 bytes.
 *
 * The corpus is read through the harness (the articles sahel_ingest would
 * take), at most --max-mb MB of title and body text (default 64), so that
 * a large corpus does not make the run long.  Indexes are built in a
 * temporary directory, removed at the end.  Program-level code: failures
 * exit with a message (bench_die).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/analysis.h"
#include "harness/harness.h"
#include "index/index.h"
#include "sahel.h"

#define DEFAULT_MAX_MB 64
#define REPS_FULL 7
#define REPS_QUICK 2
#define SEED UINT64_C(20240601)

/* bitunpack: 2048 blocks of 128 values per width (640 KB packed at width
 * 20: the size of a long posting list, mostly in cache as a hot one is),
 * unpacked INNER times a pass so that a pass lasts milliseconds. */
#define UNPACK_BLOCKS 2048
#define UNPACK_INNER 16
#define UNPACK_MAX_WIDTH 20

/* postings: the longest lists, where the bit-packed blocks dominate. */
#define TOP_LISTS 64

/* The synthetic AND index: documents, and the probability of each
 * controlled term per document.  similar: alpha and bravo, 25% each;
 * skewed100: charlie 50%, delta 0.5% (1:100). */
#define SYNTH_DOCS 200000
#define SYNTH_DOCS_QUICK 20000
#define P_ALPHA 0.25
#define P_BRAVO 0.25
#define P_CHARLIE 0.5
#define P_DELTA 0.005
/* AND passes run the query until about this many postings are processed. */
#define AND_POSTINGS_PER_PASS 4000000.0

/* Ranked OR: queries per class, and the document-frequency window of their
 * words (common enough to make work, rare enough not to be stop words,
 * which sahel drops from ranked OR). */
#define OR_QUERIES 200
#define OR_QUERIES_QUICK 50
#define OR_MIN_DF_FRACTION 0.002
#define OR_MAX_DF_FRACTION 0.1
#define WORD_MIN 4
#define WORD_MAX 20

/* ---- timing ---------------------------------------------------------------- */

typedef struct section {
    void (*prepare)(void *ctx); /* untimed, before every pass (may be NULL) */
    void (*run)(void *ctx);     /* the timed work */
    void *ctx;
} section;

typedef struct timing {
    double min_s, med_s;
} timing;

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

static timing measure(const section *s, int reps) {
    if (s->prepare) s->prepare(s->ctx);
    s->run(s->ctx); /* warm-up: caches, page faults, branch predictors */
    double *t = bench_xmalloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        if (s->prepare) s->prepare(s->ctx);
        uint64_t t0 = bench_now_ns();
        s->run(s->ctx);
        uint64_t t1 = bench_now_ns();
        t[r] = (double)(t1 - t0) / 1e9;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    timing tm = {.min_s = t[0],
                 .med_s = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2};
    free(t);
    if (tm.min_s <= 0) tm.min_s = 1e-9; /* a pass below the clock's resolution */
    if (tm.med_s <= 0) tm.med_s = 1e-9;
    return tm;
}

/* RESULT lines for `units` of work per pass: M from the median pass, M_best
 * from the fastest. */
static void report_rate(const char *corpus, const char *metric, const char *cls, double units,
                        timing tm) {
    char best[64];
    snprintf(best, sizeof best, "%s_best", metric);
    bench_result("sahel", corpus, metric, cls, units / tm.med_s);
    bench_result("sahel", corpus, best, cls, units / tm.min_s);
    fprintf(stderr, "  %-22s %-10s %14.4g /s median %14.4g /s best  (pass %.4f s / %.4f s)\n",
            metric, cls, units / tm.med_s, units / tm.min_s, tm.med_s, tm.min_s);
}

/* ---- the corpus, copied out of the file ------------------------------------- */

typedef struct article {
    size_t id, id_len, title, title_len, body, body_len; /* offsets into pool */
} article;

typedef struct texts {
    char *pool;
    size_t pool_len, pool_cap;
    article *a;
    size_t n, cap;
    uint64_t text_bytes; /* titles + bodies */
} texts;

static size_t pool_add(texts *t, const char *s, size_t len) {
    if (t->pool_len + len > t->pool_cap) {
        t->pool_cap = 2 * (t->pool_len + len) + (1u << 20);
        t->pool = bench_xrealloc(t->pool, t->pool_cap);
    }
    memcpy(t->pool + t->pool_len, s, len);
    t->pool_len += len;
    return t->pool_len - len;
}

static void load_texts(const char *path, uint64_t max_bytes, texts *t) {
    bench_corpus *c = bench_corpus_open(path);
    bench_doc d;
    while (t->text_bytes < max_bytes && bench_corpus_next(c, &d)) {
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 4096;
            t->a = bench_xrealloc(t->a, t->cap * sizeof *t->a);
        }
        article *a = &t->a[t->n++];
        a->id = pool_add(t, d.id, d.id_len);
        a->id_len = d.id_len;
        a->title = pool_add(t, d.title, d.title_len);
        a->title_len = d.title_len;
        a->body = pool_add(t, d.body, d.body_len);
        a->body_len = d.body_len;
        t->text_bytes += d.title_len + d.body_len;
    }
    bench_corpus_close(c);
    if (!t->n) bench_die("%s: no articles", path);
}

/* ---- tokenize ---------------------------------------------------------------- */

typedef struct count_ctx {
    const texts *t;
    sh_analyzer *an;
    uint64_t ntokens, term_bytes;
    uint64_t expect; /* tokens of the warm-up pass */
    int each;        /* tokenize: sh_tokenize, a callback a token */
} count_ctx;

static int count_token(void *ctx, const sh_token *tok) {
    count_ctx *c = ctx;
    c->ntokens++;
    c->term_bytes += tok->term_len;
    return 0;
}

static void check_count(count_ctx *c, const char *what) {
    if (!c->expect) c->expect = c->ntokens;
    if (c->ntokens != c->expect)
        bench_die("%s: %llu tokens in a pass, %llu in the first", what,
                  (unsigned long long)c->ntokens, (unsigned long long)c->expect);
    bench_sink += c->term_bytes;
}

static int count_tokens(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    count_ctx *c = ctx;
    (void)stop;
    c->ntokens += n;
    for (size_t i = 0; i < n; i++) c->term_bytes += toks[i].term_len;
    return 0;
}

/* The articles' titles and bodies through the tokenizer: in batches, as
 * the analyzer takes them, or (each) a callback a token. */
static void run_tokenize(void *ctx) {
    count_ctx *c = ctx;
    c->ntokens = c->term_bytes = 0;
    for (size_t i = 0; i < c->t->n; i++) {
        const article *a = &c->t->a[i];
        const char *title = c->t->pool + a->title, *body = c->t->pool + a->body;
        uint32_t npos = 0;
        int rc = c->each ? sh_tokenize(title, a->title_len, 0, count_token, c, &npos) ||
                               sh_tokenize(body, a->body_len, npos, count_token, c, NULL)
                         : sh_tokenize_batch(title, a->title_len, 0, count_tokens, c, &npos) ||
                               sh_tokenize_batch(body, a->body_len, npos, count_tokens, c, NULL);
        if (rc) bench_die("the tokenizer failed on article %zu", i);
    }
    check_count(c, "tokenize");
}

/* ---- analyze ----------------------------------------------------------------- */

static void prepare_analyze(void *ctx) {
    count_ctx *c = ctx;
    sh_analyzer_free(c->an);
    c->an = NULL;
    sahel_error err = {0};
    if (sh_analyzer_new("english", &c->an, &err)) bench_die("english analyzer: %s", err.msg);
}

static void run_analyze(void *ctx) {
    count_ctx *c = ctx;
    c->ntokens = c->term_bytes = 0;
    for (size_t i = 0; i < c->t->n; i++) {
        const article *a = &c->t->a[i];
        uint32_t npos = 0;
        if (sh_analyze(c->an, c->t->pool + a->title, a->title_len, 0, 0, count_token, c, &npos) ||
            sh_analyze(c->an, c->t->pool + a->body, a->body_len, npos, 0, count_token, c, NULL))
            bench_die("sh_analyze failed on article %zu", i);
    }
    check_count(c, "analyze");
}

/* ---- bitunpack ---------------------------------------------------------------- */

typedef struct unpack_ctx {
    const uint8_t *packed;
    unsigned width;
    int docs; /* sh_bitunpack128_docs (gaps to doc ids) rather than plain values */
    uint32_t out[SH_BLOCK];
} unpack_ctx;

static void run_unpack(void *ctx) {
    unpack_ctx *u = ctx;
    size_t stride = SH_PACKED_BYTES(u->width);
    uint64_t acc = 0;
    for (int k = 0; k < UNPACK_INNER; k++)
        for (size_t b = 0; b < UNPACK_BLOCKS; b++) {
            if (u->docs)
                sh_bitunpack128_docs(u->packed + b * stride, u->width, (uint32_t)b, u->out);
            else
                sh_bitunpack128(u->packed + b * stride, u->width, u->out);
            acc += u->out[b % SH_BLOCK];
        }
    bench_sink += acc;
}

/* Every decoder the CPU has, at every width 1..UNPACK_MAX_WIDTH: plain
 * values (bitunpack_ints_per_s, as for tfs) and gaps turned into doc ids
 * (bitunpack_docs_ints_per_s).  Class wN is the decoder the engine uses,
 * wN-sse41 and wN-scalar the fallbacks, forced. */
static void bench_unpack(int reps) {
    fprintf(stderr, "bitunpack: %d blocks of %d values, %d times a pass\n", UNPACK_BLOCKS,
            SH_BLOCK, UNPACK_INNER);
    uint64_t seed = SEED;
    uint32_t *vals = bench_xmalloc((size_t)UNPACK_BLOCKS * SH_BLOCK * sizeof *vals);
    uint8_t *packed = bench_xmalloc((size_t)UNPACK_BLOCKS * SH_BLOCK * 4);
    unpack_ctx *u = bench_xmalloc(sizeof *u);
    int best = sh_codec_set_isa(-1);
    static const char *const isa_suffix[3] = {"-scalar", "-sse41", ""};
    for (int isa = best; isa >= SH_ISA_SCALAR; isa--) {
        sh_codec_set_isa(isa);
        fprintf(stderr, "bitunpack: decoder %s\n",
                isa == SH_ISA_AVX2 ? "avx2" : isa == SH_ISA_SSE41 ? "sse4.1" : "scalar");
        for (unsigned w = 1; w <= UNPACK_MAX_WIDTH; w++) {
            uint32_t mask = (1u << w) - 1;
            size_t stride = SH_PACKED_BYTES(w);
            for (size_t i = 0; i < (size_t)UNPACK_BLOCKS * SH_BLOCK; i++)
                vals[i] = (uint32_t)bench_rng_next(&seed) & mask;
            for (size_t b = 0; b < UNPACK_BLOCKS; b++)
                if (sh_bitpack128(vals + b * SH_BLOCK, w, packed + b * stride) != stride)
                    bench_die("sh_bitpack128: unexpected size at width %u", w);
            /* the codec must give back what it was given, or the figure means nothing */
            for (size_t b = 0; b < UNPACK_BLOCKS; b++) {
                sh_bitunpack128(packed + b * stride, w, u->out);
                if (memcmp(u->out, vals + b * SH_BLOCK, sizeof u->out))
                    bench_die("sh_bitunpack128: wrong values at width %u, block %zu", w, b);
                sh_bitunpack128_docs(packed + b * stride, w, 7, u->out);
                uint32_t d = 7;
                for (size_t i = 0; i < SH_BLOCK; i++)
                    if (u->out[i] != (d += vals[b * SH_BLOCK + i] + 1))
                        bench_die("sh_bitunpack128_docs: wrong doc at width %u, block %zu", w, b);
            }
            u->packed = packed;
            u->width = w;
            char cls[32];
            snprintf(cls, sizeof cls, "w%u%s", w, isa == best ? "" : isa_suffix[isa]);
            for (int docs = 0; docs < 2; docs++) {
                u->docs = docs;
                section s = {.run = run_unpack, .ctx = u};
                timing tm = measure(&s, reps);
                report_rate("random", docs ? "bitunpack_docs_ints_per_s" : "bitunpack_ints_per_s",
                            cls, (double)UNPACK_INNER * UNPACK_BLOCKS * SH_BLOCK, tm);
            }
        }
    }
    sh_codec_set_isa(best);
    free(u);
    free(packed);
    free(vals);
}

/* ---- indexes ------------------------------------------------------------------ */

/* Remove the files of a flat directory (an index), then the directory. */
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
        if (unlink(path)) fprintf(stderr, "micro: cannot remove %s: %s\n", path, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir)) fprintf(stderr, "micro: cannot remove %s: %s\n", dir, strerror(errno));
}

static void add_or_die(sahel_writer *w, const sahel_doc *doc) {
    sahel_error err = {0};
    int rc = sahel_writer_add(w, doc, &err);
    if (rc < 0 && rc != SAHEL_EDUPLICATE) bench_die("sahel_writer_add: %s", err.msg);
}

static void build_corpus_index(const texts *t, const char *dir) {
    sahel_error err = {0};
    sahel_writer *w = NULL;
    sahel_writer_opts o = {0};
    if (sahel_writer_open(dir, &o, &w, &err)) bench_die("sahel_writer_open: %s", err.msg);
    for (size_t i = 0; i < t->n; i++) {
        const article *a = &t->a[i];
        sahel_doc d = {.id = t->pool + a->id, .id_len = a->id_len,
                       .title = t->pool + a->title, .title_len = a->title_len,
                       .body = t->pool + a->body, .body_len = a->body_len};
        add_or_die(w, &d);
    }
    if (sahel_writer_commit(w, &err)) bench_die("sahel_writer_commit: %s", err.msg);
    sahel_writer_close(w);
}

static sahel_index *open_or_die(const char *dir) {
    sahel_error err = {0};
    sahel_index *ix = NULL;
    if (sahel_index_open(dir, &ix, &err)) bench_die("sahel_index_open: %s", err.msg);
    return ix;
}

/* ---- postings walk ------------------------------------------------------------- */

typedef struct list_ref {
    const sh_segment *seg;
    sh_terminfo ti;
} list_ref;

typedef struct walk_ctx {
    const list_ref *lists;
    size_t n;
    int tfs;          /* read each doc's tfs, as scoring does */
    uint64_t ndocs;   /* postings walked in the pass */
    uint64_t expect;  /* the sum of the lists' df */
    sh_postings pc;
} walk_ctx;

static void run_walk(void *ctx) {
    walk_ctx *c = ctx;
    sahel_error err = {0};
    uint64_t n = 0, tf = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (sh_postings_init(&c->pc, c->lists[i].seg, &c->lists[i].ti, &err))
            bench_die("sh_postings_init: %s", err.msg);
        for (;;) {
            if (sh_postings_next(&c->pc)) bench_die("sh_postings_next: %s", err.msg);
            if (c->pc.doc == SH_NO_DOC) break;
            n++;
            if (c->tfs) tf += sh_postings_tft(&c->pc) + sh_postings_tfb(&c->pc);
        }
    }
    if (n != c->expect)
        bench_die("postings walk: %llu docs, the lists' df add up to %llu",
                  (unsigned long long)n, (unsigned long long)c->expect);
    c->ndocs = n;
    bench_sink += tf;
}

static int cmp_df_desc(const void *pa, const void *pb) {
    const list_ref *a = pa, *b = pb;
    return a->ti.df > b->ti.df ? -1 : a->ti.df < b->ti.df;
}

static void bench_walk(const char *corpus, sahel_index *ix, int reps) {
    size_t n = 0;
    for (size_t s = 0; s < ix->nsegs; s++) n += ix->segs[s].nterms;
    list_ref *lists = bench_xmalloc(n * sizeof *lists);
    size_t k = 0;
    uint64_t total = 0;
    sahel_error err = {0};
    for (size_t s = 0; s < ix->nsegs; s++)
        for (uint32_t i = 0; i < ix->segs[s].nterms; i++) {
            lists[k].seg = &ix->segs[s];
            if (sh_segment_term(&ix->segs[s], i, NULL, NULL, &lists[k].ti, &err))
                bench_die("sh_segment_term: %s", err.msg);
            total += lists[k].ti.df;
            k++;
        }
    walk_ctx *c = bench_xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    c->lists = lists;
    c->n = n;
    c->expect = total;
    c->tfs = 1;
    fprintf(stderr, "postings: %zu lists in %zu segment%s, %llu postings\n", n, ix->nsegs,
            ix->nsegs == 1 ? "" : "s", (unsigned long long)total);
    section s = {.run = run_walk, .ctx = c};
    report_rate(corpus, "postings_docs_per_s", "all", (double)total, measure(&s, reps));

    qsort(lists, n, sizeof *lists, cmp_df_desc);
    c->n = n < TOP_LISTS ? n : TOP_LISTS;
    c->expect = 0;
    for (size_t i = 0; i < c->n; i++) c->expect += lists[i].ti.df;
    fprintf(stderr, "postings: the %zu longest lists, %llu postings\n", c->n,
            (unsigned long long)c->expect);
    report_rate(corpus, "postings_docs_per_s", "top64", (double)c->expect, measure(&s, reps));
    c->tfs = 0; /* doc ids alone, as an intersection reads most of them */
    report_rate(corpus, "postings_docs_per_s", "top64-docs", (double)c->expect,
                measure(&s, reps));
    free(c);
    free(lists);
}

/* ---- queries through the public API -------------------------------------------- */

typedef struct query_ctx {
    sahel_index *ix;
    char **q;          /* NUL-terminated query strings */
    size_t nq;
    int inner;         /* times each query runs in a pass */
    uint64_t hits;     /* hits read in the pass */
    uint64_t expect;   /* ... in the warm-up */
} query_ctx;

static void run_queries(void *ctx) {
    query_ctx *c = ctx;
    sahel_error err = {0};
    sahel_search_opts opts = {.k = 10};
    uint64_t hits = 0, sink = 0;
    for (int r = 0; r < c->inner; r++)
        for (size_t i = 0; i < c->nq; i++) {
            sahel_hits *h = NULL;
            if (sahel_search(c->ix, c->q[i], strlen(c->q[i]), &opts, &h, &err))
                bench_die("sahel_search \"%s\": %s", c->q[i], err.msg);
            size_t n = sahel_hits_count(h);
            for (size_t j = 0; j < n; j++) {
                const char *id;
                size_t len;
                if (sahel_hits_id(h, j, &id, &len, NULL, &err))
                    bench_die("sahel_hits_id: %s", err.msg);
                sink += len;
            }
            hits += n;
            sahel_hits_free(h);
        }
    if (!c->expect) c->expect = hits;
    if (hits != c->expect)
        bench_die("queries: %llu hits in a pass, %llu in the first", (unsigned long long)hits,
                  (unsigned long long)c->expect);
    c->hits = hits;
    bench_sink += sink;
}

/* A synthetic index: N documents of filler words, each holding alpha,
 * bravo, charlie and delta with the probabilities above, independently.
 * Filler words are consonant-vowel syllable pairs, which cannot spell the
 * four controlled words, so the document frequencies are exactly known. */
static void build_synthetic(const char *dir, size_t ndocs, uint32_t df[4]) {
    static const char cons[] = "bdfgklmnprstvz";
    static const char vow[] = "aeiou";
    static const char *const ctl[4] = {"alpha", "bravo", "charlie", "delta"};
    static const double p[4] = {P_ALPHA, P_BRAVO, P_CHARLIE, P_DELTA};
    sahel_error err = {0};
    sahel_writer *w = NULL;
    sahel_writer_opts o = {0};
    if (sahel_writer_open(dir, &o, &w, &err)) bench_die("sahel_writer_open: %s", err.msg);
    uint64_t seed = SEED ^ 0x5151;
    char body[512], id[32];
    memset(df, 0, 4 * sizeof *df);
    for (size_t d = 0; d < ndocs; d++) {
        size_t len = 0;
        int nfill = 4 + (int)(bench_rng_next(&seed) % 9); /* 4..12 filler words */
        for (int f = 0; f < nfill; f++) {
            uint64_t r = bench_rng_next(&seed);
            body[len++] = cons[r % 14];
            body[len++] = vow[(r >> 8) % 5];
            body[len++] = cons[(r >> 16) % 14];
            body[len++] = vow[(r >> 24) % 5];
            body[len++] = ' ';
        }
        for (int t = 0; t < 4; t++)
            if (bench_rng_unit(&seed) < p[t]) {
                size_t l = strlen(ctl[t]);
                memcpy(body + len, ctl[t], l);
                len += l;
                body[len++] = ' ';
                df[t]++;
            }
        int idlen = snprintf(id, sizeof id, "s%zu", d);
        sahel_doc doc = {.id = id, .id_len = (size_t)idlen, .body = body, .body_len = len};
        add_or_die(w, &doc);
    }
    if (sahel_writer_commit(w, &err)) bench_die("sahel_writer_commit: %s", err.msg);
    sahel_writer_close(w);
}

/* The cursor-level AND: two terms' cursors leapfrogging over every
 * segment (the smaller df leads), as a conjunction's evaluation moves
 * them; with tfs, each common doc's tfs are read as scoring would. */
typedef struct cand_ctx {
    const sh_segment *seg[64];
    sh_terminfo ti[64][2];
    size_t nseg;
    int tfs;          /* 1: read the common docs' tfs; -1: sh_postings_intersect */
    int inner;        /* times the lists are intersected in a pass */
    uint64_t common, expect;
    sh_postings a, b;
} cand_ctx;

/* sh_postings_intersect, a block at a time, into a buffer */
static void and_blocks(cand_ctx *c, uint64_t *common, uint64_t *sink) {
    sahel_error err = {0};
    uint32_t out[1024];
    for (size_t s = 0; s < c->nseg; s++) {
        if (sh_postings_init(&c->a, c->seg[s], &c->ti[s][0], &err) ||
            sh_postings_init(&c->b, c->seg[s], &c->ti[s][1], &err))
            bench_die("block AND: %s", err.msg);
        size_t n;
        do {
            if (sh_postings_intersect(&c->a, &c->b, out, 1024, &n))
                bench_die("block AND: %s", err.msg);
            *common += n;
            if (n) *sink += out[n - 1];
        } while (c->a.doc != SH_NO_DOC && c->b.doc != SH_NO_DOC);
    }
}

static void and_once(cand_ctx *c, uint64_t *common, uint64_t *tf) {
    if (c->tfs < 0) {
        and_blocks(c, common, tf);
        return;
    }
    sahel_error err = {0};
    sh_postings *a = &c->a, *b = &c->b;
    for (size_t s = 0; s < c->nseg; s++) {
        if (sh_postings_init(a, c->seg[s], &c->ti[s][0], &err) ||
            sh_postings_init(b, c->seg[s], &c->ti[s][1], &err) || sh_postings_next(a))
            bench_die("cursor AND: %s", err.msg);
        while (a->doc != SH_NO_DOC) {
            if (sh_postings_advance(b, a->doc)) bench_die("cursor AND: %s", err.msg);
            if (b->doc == SH_NO_DOC) break;
            if (b->doc == a->doc) {
                ++*common;
                if (c->tfs)
                    *tf += sh_postings_tft(a) + sh_postings_tfb(a) + sh_postings_tft(b) +
                           sh_postings_tfb(b);
                if (sh_postings_next(a)) bench_die("cursor AND: %s", err.msg);
            } else if (sh_postings_advance(a, b->doc)) {
                bench_die("cursor AND: %s", err.msg);
            }
        }
    }
}

static void run_cursor_and(void *ctx) {
    cand_ctx *c = ctx;
    uint64_t common = 0, tf = 0;
    for (int r = 0; r < c->inner; r++) and_once(c, &common, &tf);
    if (!c->expect) c->expect = common;
    if (common != c->expect)
        bench_die("cursor AND: %llu common docs in a pass, %llu in the first",
                  (unsigned long long)common, (unsigned long long)c->expect);
    c->common = common / (uint64_t)c->inner;
    bench_sink += tf;
}

/* The two words' lists, segment by segment (the rarer word's first). */
static void cursor_lists(sahel_index *ix, const char *w0, const char *w1, cand_ctx *c) {
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    sh_analyzer *an = NULL;
    sahel_error err = {0};
    if (sh_analyzer_new(info.language, &an, &err)) bench_die("analyzer: %s", err.msg);
    const char *w[2] = {w0, w1};
    c->nseg = 0;
    for (size_t s = 0; s < ix->nsegs && s < 64; s++) {
        sh_terminfo ti[2];
        int found = 1;
        for (int k = 0; k < 2; k++) {
            const char *term;
            size_t len;
            if (sh_analyzer_term(an, w[k], strlen(w[k]), 0, &term, &len)) bench_die("analyzer");
            int rc = sh_segment_lookup(&ix->segs[s], term, len, &ti[k], &err);
            if (rc < 0) bench_die("sh_segment_lookup: %s", err.msg);
            found &= rc == 1;
        }
        if (!found) continue;
        int swap = ti[1].df < ti[0].df;
        c->seg[c->nseg] = &ix->segs[s];
        c->ti[c->nseg][0] = ti[swap];
        c->ti[c->nseg][1] = ti[!swap];
        c->nseg++;
    }
    sh_analyzer_free(an);
}

static void bench_and(const char *tmpdir, int quick, int reps) {
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/synthetic", tmpdir) >= sizeof dir)
        bench_die("%s: path too long", tmpdir);
    size_t ndocs = quick ? SYNTH_DOCS_QUICK : SYNTH_DOCS;
    uint32_t df[4];
    build_synthetic(dir, ndocs, df);
    sahel_index *ix = open_or_die(dir);
    fprintf(stderr, "and: synthetic index of %zu docs: alpha %u, bravo %u, charlie %u, delta %u\n",
            ndocs, df[0], df[1], df[2], df[3]);
    static const char *const cls[2] = {"similar", "skewed100"};
    char qa[] = "alpha AND bravo", qb[] = "charlie AND delta";
    char *q[2] = {qa, qb};
    double per_query[2] = {(double)df[0] + df[1], (double)df[2] + df[3]};
    for (int i = 0; i < 2; i++) {
        int inner = (int)ceil(AND_POSTINGS_PER_PASS / per_query[i]);
        if (quick) inner = (inner + 3) / 4;
        query_ctx c = {.ix = ix, .q = &q[i], .nq = 1, .inner = inner};
        section s = {.run = run_queries, .ctx = &c};
        timing tm = measure(&s, reps);
        report_rate("synthetic", "and_postings_per_s", cls[i], per_query[i] * inner, tm);
        report_rate("synthetic", "and_queries_per_s", cls[i], (double)inner, tm);
    }
    /* the same two conjunctions at the cursor level: integers = the two
     * lists' lengths, as for the query figure */
    static const char *const words[2][2] = {{"alpha", "bravo"}, {"delta", "charlie"}};
    cand_ctx *cc = bench_xmalloc(sizeof *cc);
    for (int i = 0; i < 2; i++) {
        memset(cc, 0, sizeof *cc);
        cursor_lists(ix, words[i][0], words[i][1], cc);
        int inner = (int)ceil(AND_POSTINGS_PER_PASS / per_query[i]);
        for (int tfs = -1; tfs < 2; tfs++) {
            cc->tfs = tfs;
            cc->expect = 0;
            cc->inner = inner;
            section s = {.run = run_cursor_and, .ctx = cc};
            timing tm = measure(&s, reps);
            char c2[32];
            snprintf(c2, sizeof c2, "%s%s", cls[i], tfs > 0 ? "-tf" : "");
            report_rate("synthetic", tfs < 0 ? "and_block_ints_per_s" : "and_cursor_ints_per_s", c2,
                        per_query[i] * inner, tm);
        }
        fprintf(stderr, "  (cursor AND %s: %llu common docs)\n", cls[i],
                (unsigned long long)cc->common);
    }
    free(cc);
    sahel_index_close(ix);
    remove_flat_dir(dir);
}

/* Title words of ASCII letters that the index holds in a useful number of
 * documents: the pool ranked-OR queries are drawn from. */
typedef struct words {
    char **w;
    size_t n, cap;
} words;

typedef struct title_ctx {
    const char *text;
    words *out;
} title_ctx;

static int collect_word(void *ctx, const sh_token *tok) {
    title_ctx *c = ctx;
    if (tok->flags & (SH_TOK_WHOLE | SH_TOK_NUMERIC)) return 0;
    size_t len = tok->end - tok->start;
    if (len < WORD_MIN || len > WORD_MAX) return 0;
    char buf[WORD_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        char ch = c->text[tok->start + i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) return 0;
        buf[i] = (char)(ch | 0x20);
    }
    buf[len] = '\0';
    words *w = c->out;
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 1024;
        w->w = bench_xrealloc(w->w, w->cap * sizeof *w->w);
    }
    w->w[w->n] = bench_xmalloc(len + 1);
    memcpy(w->w[w->n++], buf, len + 1);
    return 0;
}

static int cmp_str(const void *pa, const void *pb) {
    return strcmp(*(char *const *)pa, *(char *const *)pb);
}

static uint64_t index_df(sahel_index *ix, sh_analyzer *an, const char *word) {
    const char *term;
    size_t len;
    if (sh_analyzer_term(an, word, strlen(word), 0, &term, &len)) return 0;
    uint64_t df = 0;
    sahel_error err = {0};
    for (size_t s = 0; s < ix->nsegs; s++) {
        sh_terminfo ti;
        int rc = sh_segment_lookup(&ix->segs[s], term, len, &ti, &err);
        if (rc < 0) bench_die("sh_segment_lookup: %s", err.msg);
        if (rc == 1) df += ti.df;
    }
    return df;
}

static void query_words(const texts *t, sahel_index *ix, words *pool) {
    words all = {0};
    for (size_t i = 0; i < t->n; i++) {
        title_ctx c = {.text = t->pool + t->a[i].title, .out = &all};
        if (sh_tokenize(c.text, t->a[i].title_len, 0, collect_word, &c, NULL))
            bench_die("sh_tokenize failed on title %zu", i);
    }
    if (all.n) qsort(all.w, all.n, sizeof *all.w, cmp_str);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    sh_analyzer *an = NULL;
    sahel_error err = {0};
    if (sh_analyzer_new(info.language, &an, &err)) bench_die("analyzer: %s", err.msg);
    double lo = fmax(5, OR_MIN_DF_FRACTION * (double)info.ndocs);
    double hi = OR_MAX_DF_FRACTION * (double)info.ndocs;
    const char *prev = NULL; /* the word before, still allocated (here or in the pool) */
    for (size_t i = 0; i < all.n; i++) {
        int keep = !prev || strcmp(all.w[i], prev); /* sorted: repeats are adjacent */
        prev = all.w[i];
        if (keep) {
            double df = (double)index_df(ix, an, all.w[i]);
            keep = df >= lo && df <= hi;
        }
        if (!keep) continue;
        if (pool->n == pool->cap) {
            pool->cap = pool->cap ? 2 * pool->cap : 256;
            pool->w = bench_xrealloc(pool->w, pool->cap * sizeof *pool->w);
        }
        pool->w[pool->n] = all.w[i];
        all.w[i] = NULL; /* now the pool's */
        pool->n++;
    }
    for (size_t i = 0; i < all.n; i++) free(all.w[i]);
    free(all.w);
    sh_analyzer_free(an);
}

static void bench_or(const char *corpus, const texts *t, sahel_index *ix, int quick, int reps) {
    words pool = {0};
    query_words(t, ix, &pool);
    if (pool.n < 3) {
        fprintf(stderr, "or: fewer than 3 title words with a useful df; skipped\n");
        free(pool.w);
        return;
    }
    size_t nq = quick ? OR_QUERIES_QUICK : OR_QUERIES;
    fprintf(stderr, "or: %zu queries per class from %zu title words\n", nq, pool.n);
    uint64_t seed = SEED ^ 0x0202;
    char **q = bench_xmalloc(nq * sizeof *q);
    for (int nw = 2; nw <= 3; nw++) {
        for (size_t i = 0; i < nq; i++) {
            size_t pick[3];
            for (int j = 0; j < nw; j++) {
                int again;
                do {
                    pick[j] = (size_t)(bench_rng_next(&seed) % pool.n);
                    again = 0;
                    for (int m = 0; m < j; m++) again |= pick[m] == pick[j];
                } while (again);
            }
            size_t len = 0;
            for (int j = 0; j < nw; j++) len += strlen(pool.w[pick[j]]) + 1;
            q[i] = bench_xmalloc(len);
            len = 0;
            for (int j = 0; j < nw; j++)
                len += (size_t)sprintf(q[i] + len, "%s%s", j ? " " : "", pool.w[pick[j]]);
        }
        query_ctx c = {.ix = ix, .q = q, .nq = nq, .inner = 1};
        section s = {.run = run_queries, .ctx = &c};
        timing tm = measure(&s, reps);
        report_rate(corpus, "or_queries_per_s", nw == 2 ? "or2" : "or3", (double)nq, tm);
        for (size_t i = 0; i < nq; i++) free(q[i]);
    }
    free(q);
    for (size_t i = 0; i < pool.n; i++) free(pool.w[i]);
    free(pool.w);
}

/* ---- main ----------------------------------------------------------------------- */

/* The corpus name of the RESULT lines, as the harness derives it: the
 * file's name without extension, its folder's for a generic docs.jsonl. */
static void corpus_name(const char *path, char *out, size_t cap) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    char *base = strrchr(tmp, '/');
    char *dot = strrchr(base ? base + 1 : tmp, '.');
    if (dot && dot != (base ? base + 1 : tmp)) *dot = '\0';
    if (base && !strcmp(base + 1, "docs")) {
        *base = '\0';
        char *parent = strrchr(tmp, '/');
        if ((size_t)snprintf(out, cap, "%s", parent ? parent + 1 : tmp) >= cap) out[cap - 1] = '\0';
    } else if ((size_t)snprintf(out, cap, "%s", base ? base + 1 : tmp) >= cap) {
        out[cap - 1] = '\0';
    }
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    if (!out[0]) snprintf(out, cap, "corpus");
}

static void usage(FILE *f) {
    fputs("usage: micro CORPUS.jsonl [--quick] [--name NAME] [--max-mb MB]\n", f);
}

int main(int argc, char **argv) {
    bench_set_prog(argv[0]);
    const char *path = NULL, *name = NULL;
    int quick = 0;
    long max_mb = DEFAULT_MAX_MB;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
            name = argv[++i];
        } else if (!strcmp(argv[i], "--max-mb") && i + 1 < argc) {
            char *end;
            max_mb = strtol(argv[++i], &end, 10);
            if (*end || max_mb < 1 || max_mb > 1000000) bench_die("--max-mb needs 1..1000000");
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    int reps = quick ? REPS_QUICK : REPS_FULL;
    char cname[256];
    if (name)
        snprintf(cname, sizeof cname, "%s", name);
    else
        corpus_name(path, cname, sizeof cname);

    texts t = {0};
    load_texts(path, (uint64_t)max_mb * 1000000u, &t);
    double mb = (double)t.text_bytes / 1e6;
    fprintf(stderr, "micro: %s: %zu articles, %.2f MB of title and body text; "
                    "1 warm-up + %d timed passes per section\n",
            path, t.n, mb, reps);

    count_ctx cc = {.t = &t};
    section tok = {.run = run_tokenize, .ctx = &cc};
    timing tm = measure(&tok, reps);
    fprintf(stderr, "tokenize: %llu tokens a pass\n", (unsigned long long)cc.ntokens);
    report_rate(cname, "tokenize_mbps", "-", mb, tm);
    report_rate(cname, "tokenize_tokens_per_s", "-", (double)cc.ntokens, tm);
    cc.each = 1;
    tm = measure(&tok, reps);
    cc.each = 0;
    report_rate(cname, "tokenize_mbps", "per-token", mb, tm);
    if (sh_tokenize_avx2_available()) {
        /* the portable driver as well, as bitunpack reports its fallbacks;
         * check_count also holds it to the AVX2 driver's token count */
        if (sh_tokenize_use(SH_TOKENIZE_SCALAR)) bench_die("cannot force the scalar tokenizer");
        tm = measure(&tok, reps);
        if (sh_tokenize_use(SH_TOKENIZE_AUTO)) bench_die("cannot reset the tokenizer driver");
        report_rate(cname, "tokenize_mbps", "scalar", mb, tm);
    }

    count_ctx ac = {.t = &t};
    section ana = {.prepare = prepare_analyze, .run = run_analyze, .ctx = &ac};
    tm = measure(&ana, reps);
    uint64_t hits = 0, misses = 0;
    sh_analyzer_cache_stats(ac.an, &hits, &misses);
    sh_analyzer_free(ac.an);
    double rate = hits + misses ? (double)hits / (double)(hits + misses) : 0;
    fprintf(stderr, "analyze: %llu tokens a pass; stem cache from empty: %llu hits, %llu misses\n",
            (unsigned long long)ac.ntokens, (unsigned long long)hits, (unsigned long long)misses);
    report_rate(cname, "analyze_mbps", "-", mb, tm);
    report_rate(cname, "analyze_tokens_per_s", "-", (double)ac.ntokens, tm);
    bench_result("sahel", cname, "stem_cache_hit_rate", "-", rate);
    /* class warm: one analyzer for every pass, its cache filled by the
     * warm-up, as a long indexing run's is after its first documents */
    section warm = {.run = run_analyze, .ctx = &ac};
    ac.an = NULL; /* freed above */
    ac.expect = 0;
    prepare_analyze(&ac);
    tm = measure(&warm, reps);
    sh_analyzer_free(ac.an);
    ac.an = NULL;
    report_rate(cname, "analyze_mbps", "warm", mb, tm);

    bench_unpack(reps);

    char tmpdir[4096];
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sahel-micro.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) bench_die("mkdtemp %s: %s", tmpdir, strerror(errno));
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/corpus", tmpdir) >= sizeof dir)
        bench_die("%s: path too long", tmpdir);
    uint64_t t0 = bench_now_ns();
    build_corpus_index(&t, dir);
    fprintf(stderr, "index of %s built in %.2f s (not a benchmark figure: see macro.sh)\n", cname,
            (double)(bench_now_ns() - t0) / 1e9);
    sahel_index *ix = open_or_die(dir);
    bench_walk(cname, ix, reps);
    bench_or(cname, &t, ix, quick, reps);
    sahel_index_close(ix);
    remove_flat_dir(dir);

    bench_and(tmpdir, quick, reps);
    if (rmdir(tmpdir)) fprintf(stderr, "micro: cannot remove %s: %s\n", tmpdir, strerror(errno));

    bench_result("sahel", cname, "micro_peak_rss_mb", "-", bench_peak_rss_mb());
    free(t.pool);
    free(t.a);
    return 0;
}
