/*
 * test_merge.c - indexing on several threads and merging at the level of
 * postings (merge.c) give exactly the index a single writer builds.
 *
 * The reference is a build with one thread (the caller's) and the default
 * budget: one segment, never merged.  Against it:
 *   threads   builds with 2, 3 and 4 threads and budgets from tiny (a flush
 *             every few articles, so many segments to merge, interleaved
 *             across threads) to the default: the single segment they end
 *             with has every section byte for byte equal to the
 *             reference's, except the document store, whose blocks may be
 *             cut elsewhere; every stored article is equal.
 *   merge     sh_merge_write on segments built apart, with documents
 *             dropped (deleted): the output equals a fresh build of the
 *             kept articles, section by section as above; a map that is
 *             not one to one is refused without writing anything.
 *   threads   a one-thread build that flushes keeps its store in one file:
 *             even the store's sections equal the reference's.
 *   threads   also: more than 64 threads is an error; a writer closed
 *             without commit leaves no file behind; duplicates are refused
 *             while builders run; allocation failures from any point on
 *             (any thread: the test allocator is atomic) give SAHEL_ENOMEM
 *             and no file, or a whole index, and never a leak or a hang;
 *             so do they on one thread, whose flushes keep the store.
 *
 * The corpus is random (fixed seeds): words from a small vocabulary with a
 * skew, so terms have long and short postings lists, one and many blocks;
 * some articles have no title or no words at all; hyphenated words give
 * terms sharing a position.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index.h"
#include "sahel.h"
#include "support/failalloc.h"
#include "support/rng.h"
#include "support/run.h"

#define PATH_LEN 1024

static const char *const vocab[] = {
    "mali", "niger", "burkina", "faso", "junta", "coup", "army", "wagner", "sahel", "alliance",
    "states", "defense", "pact", "mutual", "bamako", "niamey", "ouagadougou", "goita", "tiani",
    "traore", "ecowas", "sanctions", "jihadist", "insurgency", "gold", "mine", "uranium",
    "election", "transition", "referendum", "liptako", "gourma", "attack", "drone", "convoy",
    "president", "minister", "border", "refugees", "humanitarian", "aid", "france", "russia",
    "troops", "withdrawal", "mission", "minusma", "peace", "talks", "algiers", "accord", "tuareg",
    "azawad", "kidal", "gao", "timbuktu", "mopti", "menaka", "villagers", "killed", "wounded",
    "ambush", "soldiers", "volunteers", "vdp", "cross-border", "so-called", "well-known", "the",
    "of", "and", "in", "a", "to"};
#define NVOCAB (sizeof vocab / sizeof vocab[0])

static uint64_t rng_state;
static uint64_t rng_next(void) { return sh_test_splitmix64(&rng_state); }
static uint32_t rng_below(uint32_t n) { return (uint32_t)(rng_next() % n); }

/* Skewed: low indexes (and the stop words at the end) far more often. */
static const char *word(void) {
    uint32_t r = rng_below(100);
    if (r < 20) return vocab[NVOCAB - 1 - rng_below(5)];
    if (r < 60) return vocab[rng_below(12)];
    return vocab[rng_below(NVOCAB)];
}

typedef struct corpus {
    sahel_doc *docs;
    char **bufs; /* 3 per doc: id, title, body */
    uint32_t n;
} corpus;

static char *words(uint32_t n) {
    size_t cap = 16 + (size_t)n * 14, len = 0;
    char *s = malloc(cap);
    cr_assert(s);
    s[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        const char *w = word();
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? " " : "", w);
    }
    return s;
}

static corpus make_corpus(uint32_t n, uint64_t seed) {
    rng_state = seed;
    corpus c = {calloc(n, sizeof(sahel_doc)), calloc((size_t)n * 3, sizeof(char *)), n};
    cr_assert(c.docs && c.bufs);
    for (uint32_t d = 0; d < n; d++) {
        char **b = &c.bufs[3 * d];
        b[0] = malloc(32);
        cr_assert(b[0]);
        /* ids not in doc order, so that the id order section is a real
         * permutation */
        snprintf(b[0], 32, "a%08x-%u", (unsigned)(rng_next() & 0xffffffffu), d);
        uint32_t kind = rng_below(20);
        b[1] = words(kind == 0 ? 0 : 1 + rng_below(6));
        b[2] = words(kind == 1 ? 0 : rng_below(10) == 0 ? 300 + rng_below(400) : 5 + rng_below(80));
        c.docs[d] = (sahel_doc){.id = b[0], .id_len = strlen(b[0]), .title = b[1],
                                .title_len = strlen(b[1]), .body = b[2], .body_len = strlen(b[2]),
                                .url = "https://example.org/a", .url_len = 21, .line = d + 1};
    }
    return c;
}

static void free_corpus(corpus *c) {
    for (size_t i = 0; i < (size_t)c->n * 3; i++) free(c->bufs[i]);
    free(c->bufs);
    free(c->docs);
}

static void scratch(char *out, const char *name) {
    mkdir(SAHEL_TEST_TMP, 0755);
    char base[PATH_LEN / 2];
    snprintf(base, sizeof base, "%s/merge", SAHEL_TEST_TMP);
    mkdir(base, 0755);
    snprintf(out, PATH_LEN, "%s/%.100s", base, name);
    cr_assert_eq(sh_test_rm_rf(out), 0, "cannot clear %s", out);
}

/* Build c's articles [0, n) but those with skip[d] set. */
static void build(const char *dir, const corpus *c, const uint8_t *skip, unsigned threads,
                  size_t budget) {
    sahel_writer_opts o = {.memory_budget = budget, .threads = threads};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    for (uint32_t d = 0; d < c->n; d++)
        if (!skip || !skip[d])
            cr_assert_eq(sahel_writer_add(w, &c->docs[d], &err), SAHEL_ADDED, "add %u: %s", d,
                         err.msg);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
}

/* The single segment of the index in dir. */
static void open_only_segment(const char *dir, sh_segment *seg) {
    sh_manifest m;
    sahel_error err = {0};
    cr_assert_eq(sh_manifest_read(dir, &m, &err), 0, "%s", err.msg);
    cr_assert_eq(m.nsegs, 1, "%s: %zu segments, expected one", dir, m.nsegs);
    cr_assert_eq(sh_segment_open(dir, m.segs[0].name, seg, &err), 0, "%s", err.msg);
    sh_manifest_free(&m);
    cr_assert_eq(sh_segment_verify(seg, &err), 0, "%s", err.msg);
}

static size_t count_files(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "seg-", 4) == 0) n++;
    closedir(d);
    return n;
}

/* Every section equal but the store's two; every stored article equal. */
static void assert_same_segment(const sh_segment *a, const sh_segment *b, const char *what) {
    static const char *const names[SH_SEC_COUNT] = {
        "", "meta", "terms", "term index", "postings", "positions", "doc lengths",
        "ids", "id order", "doc hashes", "store", "store index"};
    cr_assert_eq(a->ndocs, b->ndocs, "%s: %u vs %u docs", what, a->ndocs, b->ndocs);
    for (int id = 1; id < SH_SEC_COUNT; id++) {
        if (id == SH_SEC_STORE || id == SH_SEC_STOREIDX) continue;
        cr_assert_eq(a->sec[id].len, b->sec[id].len, "%s: section %s: %llu vs %llu bytes", what,
                     names[id], (unsigned long long)a->sec[id].len,
                     (unsigned long long)b->sec[id].len);
        cr_assert(memcmp(a->sec[id].p, b->sec[id].p, a->sec[id].len) == 0,
                  "%s: section %s differs", what, names[id]);
    }
    sh_buf ba = {0}, bb = {0};
    uint32_t ca = UINT32_MAX, cb = UINT32_MAX;
    sahel_error err = {0};
    for (uint32_t d = 0; d < a->ndocs; d++) {
        sh_stored sa, sb;
        cr_assert_eq(sh_store_get(a, d, &ba, &ca, &sa, &err), 0, "%s", err.msg);
        cr_assert_eq(sh_store_get(b, d, &bb, &cb, &sb, &err), 0, "%s", err.msg);
        for (int f = 0; f < SH_STORE_NFIELDS; f++) {
            cr_assert_eq(sa.len[f], sb.len[f], "%s: doc %u field %d", what, d, f);
            if (sa.len[f]) cr_assert(memcmp(sa.f[f], sb.f[f], sa.len[f]) == 0, "%s: doc %u field %d", what, d, f);
        }
        cr_assert_eq(sa.line, sb.line);
    }
    sh_buf_free(&ba);
    sh_buf_free(&bb);
}

/* dir_a/name and dir_b/name hold the same bytes. */
static void assert_same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[PATH_LEN + 64], pb[PATH_LEN + 64];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    cr_assert(fa && fb, "%s, %s", pa, pb);
    uint64_t at = 0;
    for (;;) {
        int a = getc(fa), b = getc(fb);
        cr_assert_eq(a, b, "%s and %s differ at byte %llu", pa, pb, (unsigned long long)at);
        if (a == EOF) break;
        at++;
    }
    fclose(fa);
    fclose(fb);
}

typedef struct build_run {
    unsigned threads;
    size_t budget;
} build_run;

/* Each run's build of c (directories named after tag) must be one
 * segment equal to the reference, a build on one thread at the default
 * budget: every section but the store's two, those too when with_store,
 * and every stored article. */
static void assert_builds_equal_reference(const corpus *c, const char *tag, const build_run *runs,
                                          size_t n, int with_store) {
    char ref[PATH_LEN], name[64];
    snprintf(name, sizeof name, "%s-ref", tag);
    scratch(ref, name);
    build(ref, c, NULL, 1, 0);
    sh_segment rs;
    open_only_segment(ref, &rs);
    for (size_t r = 0; r < n; r++) {
        char dir[PATH_LEN], what[96];
        snprintf(name, sizeof name, "%s-t%u-b%zu", tag, runs[r].threads, runs[r].budget);
        snprintf(what, sizeof what, "%u threads, budget %zu", runs[r].threads, runs[r].budget);
        scratch(dir, name);
        build(dir, c, NULL, runs[r].threads, runs[r].budget);
        cr_assert_eq(count_files(dir), 1, "%s: the flushed segments were removed", what);
        sh_segment s;
        open_only_segment(dir, &s);
        assert_same_segment(&rs, &s, what);
        for (int id = SH_SEC_STORE; with_store && id <= SH_SEC_STOREIDX; id++) {
            cr_assert_eq(s.sec[id].len, rs.sec[id].len, "%s: store section %d: %llu vs %llu bytes",
                         what, id, (unsigned long long)s.sec[id].len,
                         (unsigned long long)rs.sec[id].len);
            cr_assert(memcmp(s.sec[id].p, rs.sec[id].p, s.sec[id].len) == 0,
                      "%s: store section %d differs", what, id);
        }
        sh_segment_close(&s);
    }
    sh_segment_close(&rs);
}

Test(threads, any_number_of_threads_and_any_budget_give_the_same_segment) {
    sh_merge_split_min = 0; /* the final merges split too, small as they are */
    sh_merge_big_term = 1 << 12; /* and their threads take turns on frequent terms */
    corpus c = make_corpus(800, 0x7EADull);
    static const build_run runs[] = {{2, 0}, {3, 0}, {2, 96 * 1024}, {4, 32 * 1024}, {1, 64 * 1024}};
    assert_builds_equal_reference(&c, "any", runs, sizeof runs / sizeof runs[0], 0);
    free_corpus(&c);
}

/* A one-thread build that flushes writes its stored articles once, to
 * the file its final segment becomes (writer.c, builder.keep): its blocks
 * are then cut where an unflushed build cuts them, and the store's two
 * sections are equal too.  At 16 KiB every article flushes, so the
 * flushes (more than SH_MERGE_FACTOR) take several rounds of merges, the
 * first ones without a store; at 40 KiB a few articles make a flush. */
Test(threads, one_thread_flushes_keep_the_store_as_an_unflushed_build_cuts_it) {
    corpus c = make_corpus(300, 0x57023ull);
    static const build_run runs[] = {{1, 16 * 1024}, {1, 40 * 1024}};
    assert_builds_equal_reference(&c, "keep", runs, sizeof runs / sizeof runs[0], 1);
    free_corpus(&c);
}

Test(threads, more_than_64_threads_is_an_error) {
    char dir[PATH_LEN];
    scratch(dir, "too-many");
    sahel_writer_opts o = {.threads = 65};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), SAHEL_EINVAL);
    cr_assert(strstr(err.msg, "64"), "%s", err.msg);
    cr_assert_null(w);
}

Test(threads, abandoned_threaded_writer_leaves_no_file) {
    corpus c = make_corpus(400, 0xAB);
    char dir[PATH_LEN];
    scratch(dir, "abandon");
    sahel_writer_opts o = {.memory_budget = 16 * 1024, .threads = 3};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    for (uint32_t d = 0; d < c.n; d++) cr_assert_eq(sahel_writer_add(w, &c.docs[d], &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    cr_assert_eq(count_files(dir), 0, "no segment or temporary file left");
    free_corpus(&c);
}

Test(threads, duplicate_ids_are_refused_while_threads_index) {
    corpus c = make_corpus(300, 0xD0);
    char dir[PATH_LEN];
    scratch(dir, "dup");
    sahel_writer_opts o = {.memory_budget = 32 * 1024, .threads = 2};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), 0, "%s", err.msg);
    for (uint32_t d = 0; d < c.n; d++) cr_assert_eq(sahel_writer_add(w, &c.docs[d], &err), 0, "%s", err.msg);
    cr_assert_eq(sahel_writer_add(w, &c.docs[7], &err), SAHEL_EDUPLICATE);
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "%s", err.msg);
    sahel_writer_close(w);
    sh_segment s;
    open_only_segment(dir, &s);
    cr_assert_eq(s.ndocs, c.n);
    sh_segment_close(&s);
    free_corpus(&c);
}

/* Three segments built apart (a third of the corpus each), merged with
 * some documents dropped, against a fresh build of the kept ones. */
/* The 900 articles of c built as three segments of 300, merged without
 * the skipped ones into dir `name`; the merge must equal a fresh build of
 * the kept articles.  Returns what the test needs for more merges of the
 * same sources (the caller closes and frees them). */
typedef struct three_parts {
    sh_segment seg[3];
    sh_merge_src src[3];
    uint32_t *maps[3];
    uint32_t kept;
    uint64_t nterms;
    char out[PATH_LEN];
} three_parts;

static void merge_three_parts(three_parts *tp, const corpus *c, const uint8_t *skip,
                              const char *name) {
    cr_assert_eq(c->n, 900);
    tp->kept = 0;
    for (int p = 0; p < 3; p++) {
        char dir[PATH_LEN], pname[64];
        snprintf(pname, sizeof pname, "%s-part%d", name, p);
        scratch(dir, pname);
        corpus part = *c;
        part.docs = c->docs + 300 * p;
        part.n = 300;
        build(dir, &part, NULL, 1, 0);
        open_only_segment(dir, &tp->seg[p]);
        tp->maps[p] = malloc(300 * sizeof *tp->maps[p]);
        cr_assert(tp->maps[p]);
        for (uint32_t d = 0; d < 300; d++)
            tp->maps[p][d] = skip[300 * p + d] ? SH_NO_DOC : tp->kept++;
        tp->src[p] = (sh_merge_src){&tp->seg[p], tp->maps[p]};
    }
    scratch(tp->out, name);
    cr_assert_eq(mkdir(tp->out, 0755), 0);
    sahel_error err = {0};
    tp->nterms = 0;
    cr_assert_eq(sh_merge_write(tp->out, "seg-000001-0000.sseg", tp->src, 3, tp->kept, "english", 1,
                                &tp->nterms, &err),
                 0, "%s", err.msg);
    sh_segment m;
    cr_assert_eq(sh_segment_open(tp->out, "seg-000001-0000.sseg", &m, &err), 0, "%s", err.msg);
    cr_assert_eq(sh_segment_verify(&m, &err), 0, "%s", err.msg);
    cr_assert_eq(tp->nterms, m.nterms);
    char ref[PATH_LEN], rname[64];
    snprintf(rname, sizeof rname, "%s-ref", name);
    scratch(ref, rname);
    build(ref, c, skip, 1, 0);
    sh_segment rs;
    open_only_segment(ref, &rs);
    assert_same_segment(&rs, &m, name);
    sh_segment_close(&rs);
    sh_segment_close(&m);
}

static void three_parts_free(three_parts *tp) {
    for (int p = 0; p < 3; p++) {
        sh_segment_close(&tp->seg[p]);
        free(tp->maps[p]);
    }
}

Test(merge, merged_segments_with_deletions_equal_a_fresh_build) {
    corpus c = make_corpus(900, 0x3E16ull);
    uint8_t *skip = calloc(c.n, 1);
    cr_assert(skip);
    rng_state = 0x5EED;
    for (uint32_t d = 0; d < c.n; d++) skip[d] = rng_below(4) == 0;
    skip[0] = skip[299] = skip[300] = 1; /* the ends of the parts too */
    three_parts tp;
    merge_three_parts(&tp, &c, skip, "merged");
    /* on several threads, each merging a range of the dictionary: the
     * very same file */
    sahel_error err = {0};
    sh_merge_split_min = 0;
    for (unsigned t = 2; t <= 9; t += 7) {
        sh_merge_big_term = t == 2 ? 0 : 1 << 12; /* every term, then the frequent ones, in turns */
        char outt[PATH_LEN], name[32];
        snprintf(name, sizeof name, "merged-t%u", t);
        scratch(outt, name);
        cr_assert_eq(mkdir(outt, 0755), 0);
        uint64_t nt = 0;
        cr_assert_eq(sh_merge_write(outt, "seg-000001-0000.sseg", tp.src, 3, tp.kept, "english", t,
                                    &nt, &err),
                     0, "%s", err.msg);
        cr_assert_eq(nt, tp.nterms);
        assert_same_file(tp.out, outt, "seg-000001-0000.sseg");
    }
    three_parts_free(&tp);
    free(skip);
    free_corpus(&c);
}

/* Few deletions: most store blocks survive whole and are copied, several
 * in a row from one source written together, with the records of the
 * blocks that lost an article recompressed between them; the deleted
 * articles sit at a part's start, its middle and the corpus's end. */
Test(merge, store_blocks_copied_in_runs_around_recompressed_ones) {
    corpus c = make_corpus(900, 0x51A7ull);
    uint8_t *skip = calloc(c.n, 1);
    cr_assert(skip);
    skip[300] = skip[450] = skip[899] = 1;
    three_parts tp;
    merge_three_parts(&tp, &c, skip, "runs");
    /* the sources do have several blocks each, so runs are longer than one */
    for (int p = 0; p < 3; p++)
        cr_assert_gt(tp.seg[p].sec[SH_SEC_STOREIDX].len / SH_STOREREC, 4,
                     "part %d has too few store blocks for this test", p);
    three_parts_free(&tp);
    free(skip);
    free_corpus(&c);
}

Test(merge, a_map_that_is_not_one_to_one_is_refused) {
    corpus c = make_corpus(50, 0x11);
    char dir[PATH_LEN], out[PATH_LEN];
    scratch(dir, "badmap");
    build(dir, &c, NULL, 1, 0);
    sh_segment s;
    open_only_segment(dir, &s);
    uint32_t map[50];
    for (uint32_t d = 0; d < 50; d++) map[d] = d;
    map[10] = 9; /* twice 9, and 10 never */
    sh_merge_src src = {&s, map};
    scratch(out, "badmap-out");
    cr_assert_eq(mkdir(out, 0755), 0);
    sahel_error err = {0};
    cr_assert_eq(sh_merge_write(out, "seg-000001-0000.sseg", &src, 1, 50, "english", 1, NULL, &err),
                 SAHEL_EINVAL);
    cr_assert(strstr(err.msg, "merge map"), "%s", err.msg);
    cr_assert_eq(count_files(out), 0, "nothing written");
    map[10] = 10;
    map[49] = SH_NO_DOC; /* a gap: 49 documents said, 50 numbers */
    cr_assert_eq(sh_merge_write(out, "seg-000001-0000.sseg", &src, 1, 50, "english", 1, NULL, &err),
                 SAHEL_EINVAL);
    cr_assert_eq(count_files(out), 0, "nothing written");
    sh_segment_close(&s);
    free_corpus(&c);
}

/* ---- allocation failures while builders run ---------------------------- */

/* One threaded build under the failing allocator: SAHEL_ENOMEM reported
 * (from add or commit, whichever sees it first) and nothing left behind,
 * or a committed index holding every article; never a leak or a hang. */
static void oom_build(const char *dir, const corpus *c, sh_test_failalloc *f, unsigned threads) {
    cr_assert_eq(sh_test_rm_rf(dir), 0, "cannot clear %s", dir);
    sh_test_failalloc_install(f);
    sahel_writer_opts o = {.memory_budget = 24 * 1024, .threads = threads};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    int rc = sahel_writer_open(dir, &o, &w, &err);
    for (uint32_t d = 0; !rc && d < c->n; d++) rc = sahel_writer_add(w, &c->docs[d], &err);
    if (!rc) rc = sahel_writer_commit(w, &err);
    sahel_writer_close(w);
    sahel_set_allocator(NULL);
    cr_assert_eq(f->live, 0, "fail from call %llu: %lld blocks leaked",
                 (unsigned long long)f->fail_at, (long long)f->live);
    if (rc) {
        cr_assert_eq(rc, SAHEL_ENOMEM, "fail from call %llu: %d (%s)",
                     (unsigned long long)f->fail_at, rc, err.msg);
        cr_assert_eq(err.code, rc);
        struct stat st;
        if (stat(dir, &st) == 0)
            cr_assert_eq(count_files(dir), 0, "fail from call %llu: files left behind",
                         (unsigned long long)f->fail_at);
    } else {
        sh_segment s;
        open_only_segment(dir, &s);
        cr_assert_eq(s.ndocs, c->n);
        sh_segment_close(&s);
    }
}

/* A build of 240 articles on `threads` threads, failing from each of
 * `points` allocations spread over it, from the first call on: early in
 * open, while builders invert and flush, in the final merge. */
static void oom_sweep(const char *name, uint64_t seed, unsigned threads, uint64_t points) {
    corpus c = make_corpus(240, seed);
    char dir[PATH_LEN];
    scratch(dir, name);
    sh_test_failalloc f = {0};
    oom_build(dir, &c, &f, threads);
    uint64_t total = f.calls;
    cr_assert_gt(total, 100);
    for (uint64_t k = 0; k < points; k++) {
        sh_test_failalloc g = {0};
        g.fail_at = 1 + k * total / points;
        g.persistent = 1; /* memory stays short once it has run out */
        oom_build(dir, &c, &g, threads);
    }
    free_corpus(&c);
}

Test(threads, running_out_of_memory_on_any_thread_is_an_error_never_a_leak) {
    sh_merge_split_min = 0; /* the merge's own threads fail too */
    sh_merge_big_term = 1 << 12; /* holding the turn for a frequent term too */
    oom_sweep("oom", 0x00F, 3, 40);
}

/* The same on one thread, whose flushes leave the store in the first
 * segment's file (writer.c, builder.keep) until the last merge writes the
 * rest of it: a failure anywhere, the file kept open in between
 * included, leaks nothing and leaves no file. */
Test(threads, running_out_of_memory_in_a_one_thread_build_that_keeps_its_store) {
    oom_sweep("oom-keep", 0x01F, 1, 60);
}
