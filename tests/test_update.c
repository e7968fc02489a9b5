/*
 * test_update.c - incremental updates (sahelindex update / merge): an index
 * changed in place must answer exactly like one built from scratch.
 *
 * What is checked, suite by suite:
 *   update_property  random corpora (fixed seeds) built in random batches,
 *                    the first by a build, each next by an update, against
 *                    a fresh build of the same articles in the same order:
 *                    for many random queries (ranked OR, AND, phrases,
 *                    prefixes, fields, required and excluded words) the
 *                    same ids in the same order, scores equal to 1e-9
 *                    relative.  With no deletion the ranking statistics of
 *                    many segments are those of one (reader.c), so this is
 *                    exact; tiny batches make the merge policy merge.
 *   update           outcomes of sahel_writer_add / _delete, generations,
 *                    snapshots, abandoned updates, errors.
 *   sources          sahel_ingest on folders: files as recorded are not
 *                    read, changed ones are, and what is gone from a folder
 *                    being updated is deleted; folders not named and files
 *                    that cannot be read keep their articles.
 *   merge            optimize purges deletions (then scores equal a fresh
 *                    build of the live articles); many small updates keep
 *                    the segment count bounded; the per-segment rules.
 *   lock             one writer at a time, naming the holder; a dead
 *                    writer's lock and files are taken over.
 *   cli              sahelindex update / build / merge / stats / verify.
 *   files            after every commit the directory holds MANIFEST, LOCK
 *                    and exactly the files the manifest names.
 *   regression       engine bugs found here (see each test's comment).
 *
 * The model of an updated index used below: its live articles in index
 * order, where an addition or a replacement goes to the end and a deletion
 * removes; merges keep that order (writer.c), so a fresh build that adds
 * the model's articles in order must tie-break exactly alike.
 *
 * Scratch directories live under SAHEL_TEST_TMP/update-<test>.  File times
 * are set explicitly (utimensat) so that no check depends on the clock's
 * granularity.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "index/index.h"
#include "sahel.h"
#include "support/run.h"
#include "support/strbuf.h"

/* Relative tolerance of score comparisons: the brief's acceptance bound. */
#define SCORE_TOL 1e-9
/* Hits compared per query: deep enough to reach the long tail of ties. */
#define TOPK 40
/* The merge policy keeps at most 9 segments per level; a few hundred
 * articles have three levels, so 30 leaves room and still catches a
 * policy that never merges. */
#define SEG_BOUND 30
/* File times handed out by next_mtime(): a fixed past second, then one
 * second more per call, so every write is a new time. */
#define MTIME_BASE 1600000000

/* ---- small utilities ---------------------------------------------------- */

/* xorshift64*: tiny and plenty for test data; never seeded with 0. */
typedef struct prng {
    uint64_t s;
} prng;

static prng prng_seed(uint64_t seed) {
    prng r = {seed * 0x9E3779B97F4A7C15u + 0x632BE59BD9B4E019u};
    if (!r.s) r.s = 1;
    return r;
}

static uint64_t prng_next(prng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Du;
}

static uint32_t prng_below(prng *r, uint32_t n) { return (uint32_t)((prng_next(r) >> 32) % n); }

static double prng_unit(prng *r) { return (double)(prng_next(r) >> 11) * 0x1.0p-53; }

/* A fresh scratch path SAHEL_TEST_TMP/update-<name> (removed, not made). */
static char *scratch(const char *name) {
    cr_assert_eq(sh_test_mkdir_p(SAHEL_TEST_TMP), 0, "cannot create %s", SAHEL_TEST_TMP);
    char *p = sh_test_xfmt("%s/update-%s", SAHEL_TEST_TMP, name);
    cr_assert_eq(sh_test_rm_rf(p), 0, "cannot clear %s", p);
    return p;
}

static int64_t mtime_counter;

static int64_t next_mtime(void) { return MTIME_BASE + mtime_counter++; }

static void set_mtime(const char *path, int64_t sec) {
    struct timespec ts[2] = {{.tv_sec = (time_t)sec}, {.tv_sec = (time_t)sec}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "utimensat %s: %s", path, strerror(errno));
}

/* Write a file and give it a time no earlier write had. */
static void put_file(const char *path, const char *text) {
    cr_assert_eq(sh_test_write_file(path, text, strlen(text)), 0, "cannot write %s", path);
    set_mtime(path, next_mtime());
}

/* ---- articles and random corpora ---------------------------------------- */

typedef struct art {
    char *id;
    char *title;     /* NULL: no title */
    char *body;
    uint32_t *words; /* body words as vocabulary indexes, for phrases */
    size_t nwords;
} art;

static void art_free(art *a) {
    free(a->id);
    free(a->title);
    free(a->body);
    free(a->words);
    memset(a, 0, sizeof *a);
}

static art art_new(const char *id, const char *title, const char *body) {
    return (art){sh_test_xstrdup(id), title ? sh_test_xstrdup(title) : NULL, sh_test_xstrdup(body),
                 NULL, 0};
}

static art art_copy(const art *a) { return art_new(a->id, a->title, a->body); }

static sahel_doc art_doc(const art *a) {
    return (sahel_doc){.id = a->id,
                       .id_len = strlen(a->id),
                       .title = a->title,
                       .title_len = a->title ? strlen(a->title) : 0,
                       .body = a->body,
                       .body_len = strlen(a->body)};
}

/* Words of a dry-lands newswire, with stem families and stop words. */
static const char *const BASE_WORDS[] = {
    "river",   "rivers",   "harvest",  "harvests", "harvested", "convoy",  "convoys", "market",
    "markets", "council",  "rainfall", "drought",  "herder",    "herders", "cattle",  "village",
    "border",  "patrol",   "patrols",  "patrolled", "mayor",    "school",  "teacher", "clinic",
    "vaccine", "election", "ballot",   "budget",   "tariff",    "cotton",  "millet",  "sorghum",
    "gold",    "mine",     "miners",   "mining",   "bridge",    "flood",   "floods",  "flooded",
    "storm",   "radio",    "reporter", "reported", "reports",   "talks",   "treaty",  "minister",
    "troops",  "camp",     "refugee",  "refugees", "aid",       "water",   "well",    "wells",
    "road",    "roads",    "fuel",     "price",    "prices",    "north",   "south",   "desert",
    "oasis",   "caravan",  "salt",     "trade",    "traders",   "the",     "of",      "and",
    "in",      "to",       "a",        "for",      "on",        "with",    "was",     "by",
};

static const char *const SYLLABLES[] = {"ba", "ko", "ri", "mu", "te",  "la",  "zo",  "ni",
                                        "pe", "gu", "da", "vo", "sha", "dor", "kel", "tam"};

typedef struct vocab {
    char **w;
    uint32_t n;
} vocab;

/* Base words and synthetic ones, shuffled so that each seed has its own
 * frequent words. */
static void vocab_make(vocab *v, prng *r) {
    size_t nbase = sizeof BASE_WORDS / sizeof BASE_WORDS[0];
    uint32_t nsyn = 90;
    v->n = (uint32_t)nbase + nsyn;
    v->w = sh_test_xrealloc(NULL, v->n * sizeof *v->w);
    for (size_t i = 0; i < nbase; i++) v->w[i] = sh_test_xstrdup(BASE_WORDS[i]);
    for (uint32_t i = 0; i < nsyn; i++) {
        char w[32] = "";
        uint32_t nsyl = 2 + prng_below(r, 2);
        for (uint32_t s = 0; s < nsyl; s++)
            strcat(w, SYLLABLES[prng_below(r, sizeof SYLLABLES / sizeof SYLLABLES[0])]);
        v->w[nbase + i] = sh_test_xstrdup(w);
    }
    for (uint32_t i = v->n; i > 1; i--) {
        uint32_t j = prng_below(r, i);
        char *t = v->w[i - 1];
        v->w[i - 1] = v->w[j];
        v->w[j] = t;
    }
}

static void vocab_free(vocab *v) {
    for (uint32_t i = 0; i < v->n; i++) free(v->w[i]);
    free(v->w);
    memset(v, 0, sizeof *v);
}

/* Skewed towards the first words (u^3: half the draws in the first 1/8):
 * some words in most articles, a long tail in few. */
static uint32_t vocab_pick(const vocab *v, prng *r) {
    double u = prng_unit(r);
    uint32_t i = (uint32_t)(u * u * u * v->n);
    return i < v->n ? i : v->n - 1;
}

/* nwords random words with varied separators; their indexes to *words. */
static char *gen_text(const vocab *v, prng *r, uint32_t nwords, uint32_t **words, size_t *nw) {
    static const char *const SEP[] = {" ", " ", " ", " ", ", ", ". ", "; ", "\n", " (", ") "};
    sh_test_str b = {0};
    if (words) {
        *words = sh_test_xrealloc(NULL, (nwords ? nwords : 1) * sizeof **words);
        *nw = nwords;
    }
    for (uint32_t i = 0; i < nwords; i++) {
        if (i) sh_test_str_puts(&b, SEP[prng_below(r, sizeof SEP / sizeof SEP[0])]);
        uint32_t w = vocab_pick(v, r);
        size_t start = b.len;
        sh_test_str_puts(&b, v->w[w]);
        if (prng_below(r, 7) == 0 && b.p[start] >= 'a' && b.p[start] <= 'z')
            b.p[start] = (char)(b.p[start] - 'a' + 'A');
        if (words) (*words)[i] = w;
    }
    return sh_test_str_take(&b);
}

typedef struct corpus {
    vocab v;
    art *a;
    size_t n;
} corpus;

/* n articles with ids <prefix>NNNN; about one in twelve repeats an earlier
 * article's text exactly, so that scores tie and tie-breaking shows. */
static void corpus_make(corpus *c, uint64_t seed, size_t n, const char *prefix) {
    prng r = prng_seed(seed);
    memset(c, 0, sizeof *c);
    vocab_make(&c->v, &r);
    c->n = n;
    c->a = sh_test_xrealloc(NULL, n * sizeof *c->a);
    for (size_t i = 0; i < n; i++) {
        art *a = &c->a[i];
        memset(a, 0, sizeof *a);
        a->id = sh_test_xfmt("%s%04zu", prefix, i);
        if (i > 0 && prng_below(&r, 12) == 0) {
            const art *o = &c->a[prng_below(&r, (uint32_t)i)];
            a->title = o->title ? sh_test_xstrdup(o->title) : NULL;
            a->body = sh_test_xstrdup(o->body);
            a->words = sh_test_xrealloc(NULL, (o->nwords ? o->nwords : 1) * sizeof *a->words);
            if (o->nwords) memcpy(a->words, o->words, o->nwords * sizeof *a->words);
            a->nwords = o->nwords;
            continue;
        }
        uint32_t nt = prng_below(&r, 5) == 0 ? 0 : 1 + prng_below(&r, 6);
        a->title = nt ? gen_text(&c->v, &r, nt, NULL, NULL) : NULL;
        uint32_t nb = prng_below(&r, 25) == 0 ? 0 : 1 + prng_below(&r, 50);
        a->body = gen_text(&c->v, &r, nb, &a->words, &a->nwords);
    }
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++) art_free(&c->a[i]);
    free(c->a);
    vocab_free(&c->v);
    memset(c, 0, sizeof *c);
}

/* ---- random queries ----------------------------------------------------- */

static const char *qword(const corpus *c, prng *r) { return c->v.w[vocab_pick(&c->v, r)]; }

/* Every kind of query the language has, from the corpus's words. */
static char *gen_query(const corpus *c, prng *r) {
    sh_test_str q = {0};
    switch (prng_below(r, 9)) {
    case 0:
    case 1: { /* ranked OR */
        uint32_t n = 1 + prng_below(r, 4);
        for (uint32_t i = 0; i < n; i++) sh_test_str_printf(&q, "%s%s", i ? " " : "", qword(c, r));
        break;
    }
    case 2:
        sh_test_str_printf(&q, "%s AND %s", qword(c, r), qword(c, r));
        break;
    case 3: { /* a phrase that occurs: consecutive words of some body */
        const art *a = &c->a[prng_below(r, (uint32_t)c->n)];
        if (a->nwords < 2) {
            sh_test_str_printf(&q, "\"%s %s\"", qword(c, r), qword(c, r));
            break;
        }
        uint32_t len = 2 + prng_below(r, 2);
        if (len > a->nwords) len = (uint32_t)a->nwords;
        uint32_t at = prng_below(r, (uint32_t)(a->nwords - len + 1));
        sh_test_str_puts(&q, "\"");
        for (uint32_t i = 0; i < len; i++)
            sh_test_str_printf(&q, "%s%s", i ? " " : "", c->v.w[a->words[at + i]]);
        sh_test_str_puts(&q, "\"");
        break;
    }
    case 4: { /* prefix, alone or with a word */
        const char *w = qword(c, r);
        size_t len = strlen(w);
        size_t keep = 2 + prng_below(r, 3);
        if (keep > len) keep = len;
        sh_test_str_put(&q, w, keep);
        sh_test_str_puts(&q, "*");
        if (prng_below(r, 2)) sh_test_str_printf(&q, " %s", qword(c, r));
        break;
    }
    case 5:
        if (prng_below(r, 2))
            sh_test_str_printf(&q, "title:%s %s", qword(c, r), qword(c, r));
        else
            sh_test_str_printf(&q, "body:\"%s %s\" %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    case 6:
        sh_test_str_printf(&q, "+%s %s %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    case 7:
        sh_test_str_printf(&q, "%s %s -%s", qword(c, r), qword(c, r), qword(c, r));
        break;
    default:
        sh_test_str_printf(&q, "(%s OR %s) AND %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    }
    return sh_test_str_take(&q);
}

/* ---- indexes and hit lists ---------------------------------------------- */

static sahel_index *ix_open(const char *dir) {
    sahel_index *ix = NULL;
    sahel_error err = {0};
    int rc = sahel_index_open(dir, &ix, &err);
    cr_assert_eq(rc, 0, "sahel_index_open(%s): %d %s", dir, rc, err.msg);
    return ix;
}

static sahel_index_info ix_info(const char *dir) {
    sahel_index *ix = ix_open(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    sahel_index_close(ix);
    info.language = NULL; /* it lived with ix */
    return info;
}

static int ix_has(const char *dir, const char *id) {
    sahel_index *ix = ix_open(dir);
    sahel_error err = {0};
    int rc = sahel_index_has_id(ix, id, strlen(id), &err);
    sahel_index_close(ix);
    cr_assert_geq(rc, 0, "sahel_index_has_id(%s): %s", id, err.msg);
    return rc;
}

static void ix_verify(const char *dir) {
    sahel_index *ix = ix_open(dir);
    sahel_error err = {0};
    int rc = sahel_index_verify(ix, &err);
    sahel_index_close(ix);
    cr_assert_eq(rc, 0, "verify %s: %s", dir, err.msg);
}

/* The top TOPK of a query.  Not sahel_hits_total: a ranked OR may skip
 * documents that cannot enter the top k, which makes it a lower bound
 * that depends on how the index is cut into segments; the number of hits
 * up to TOPK is exact either way. */
typedef struct hitlist {
    int rc;
    size_t n;
    char **id;
    double *score;
} hitlist;

static void hitlist_run(sahel_index *ix, const char *q, hitlist *h) {
    memset(h, 0, sizeof *h);
    sahel_search_opts o = {.k = TOPK};
    sahel_hits *hits = NULL;
    sahel_error err = {0};
    h->rc = sahel_search(ix, q, strlen(q), &o, &hits, &err);
    if (h->rc) return;
    h->n = sahel_hits_count(hits);
    h->id = sh_test_xrealloc(NULL, (h->n ? h->n : 1) * sizeof *h->id);
    h->score = sh_test_xrealloc(NULL, (h->n ? h->n : 1) * sizeof *h->score);
    for (size_t i = 0; i < h->n; i++) {
        const char *id;
        size_t len;
        int rc = sahel_hits_id(hits, i, &id, &len, &h->score[i], &err);
        cr_assert_eq(rc, 0, "sahel_hits_id(%zu) for [%s]: %s", i, q, err.msg);
        h->id[i] = sh_test_xrealloc(NULL, len + 1);
        memcpy(h->id[i], id, len);
        h->id[i][len] = '\0';
    }
    sahel_hits_free(hits);
}

static void hitlist_free(hitlist *h) {
    for (size_t i = 0; i < h->n; i++) free(h->id[i]);
    free(h->id);
    free(h->score);
    memset(h, 0, sizeof *h);
}

static int score_close(double a, double b) {
    return fabs(a - b) <= SCORE_TOL * fmax(fabs(a), fabs(b));
}

/* 0 when a and b are the same answer (as many hits, ids in order, scores
 * to SCORE_TOL), else 1 with the first difference in *why. */
static int hitlists_differ(const hitlist *a, const hitlist *b, sh_test_str *why) {
    if (a->rc != b->rc) {
        sh_test_str_printf(why, "search returned %d and %d", a->rc, b->rc);
        return 1;
    }
    if (a->n != b->n) {
        sh_test_str_printf(why, "%zu and %zu hits", a->n, b->n);
        return 1;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->id[i], b->id[i]) != 0 || !score_close(a->score[i], b->score[i])) {
            sh_test_str_printf(why, "rank %zu: %s %.17g vs %s %.17g", i + 1, a->id[i], a->score[i],
                               b->id[i], b->score[i]);
            return 1;
        }
    }
    return 0;
}

/* Run nq random queries (seed qseed) on both indexes.  want_same: every
 * answer must agree (the failure names the query); otherwise the number
 * of queries that differ is returned.  *with_hits counts queries with
 * hits, so that a test can tell that its queries were not vacuous. */
static size_t compare_indexes(const char *dir_a, const char *dir_b, const corpus *c,
                              uint64_t qseed, size_t nq, int want_same, size_t *with_hits,
                              const char *what) {
    sahel_index *a = ix_open(dir_a), *b = ix_open(dir_b);
    prng r = prng_seed(qseed);
    size_t ndiff = 0, nhit = 0;
    for (size_t i = 0; i < nq; i++) {
        char *q = gen_query(c, &r);
        hitlist ha, hb;
        hitlist_run(a, q, &ha);
        hitlist_run(b, q, &hb);
        cr_assert_eq(ha.rc, 0, "%s: query %zu [%s] failed: %d", what, i, q, ha.rc);
        sh_test_str why = {0};
        int differ = hitlists_differ(&ha, &hb, &why);
        if (want_same)
            cr_assert_eq(differ, 0, "%s: query %zu [%s] (seed %llu): %s", what, i, q,
                         (unsigned long long)qseed, sh_test_str_get(&why));
        ndiff += (size_t)differ;
        nhit += ha.n > 0;
        sh_test_str_free(&why);
        hitlist_free(&ha);
        hitlist_free(&hb);
        free(q);
    }
    sahel_index_close(a);
    sahel_index_close(b);
    if (with_hits) *with_hits = nhit;
    return ndiff;
}

/* Hits of q on dir: their number (fewer than TOPK: all of them), and the
 * first id in *first (malloc'd, or NULL). */
static size_t search_total(const char *dir, const char *q, char **first) {
    sahel_index *ix = ix_open(dir);
    hitlist h;
    hitlist_run(ix, q, &h);
    cr_assert_eq(h.rc, 0, "query [%s] failed: %d", q, h.rc);
    cr_assert_lt(h.n, TOPK, "query [%s] has more hits than this count sees", q);
    if (first) *first = h.n ? sh_test_xstrdup(h.id[0]) : NULL;
    size_t total = h.n;
    hitlist_free(&h);
    sahel_index_close(ix);
    return total;
}

/* ---- writers ------------------------------------------------------------ */

static sahel_writer *w_open(const char *dir, int update, size_t budget) {
    sahel_writer_opts o = {.update = update, .memory_budget = budget};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    int rc = sahel_writer_open(dir, &o, &w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_open(%s, update %d): %d %s", dir, update, rc, err.msg);
    return w;
}

static void w_add(sahel_writer *w, const art *a, int want) {
    sahel_doc d = art_doc(a);
    sahel_error err = {0};
    int rc = sahel_writer_add(w, &d, &err);
    cr_assert_eq(rc, want, "sahel_writer_add(%s) = %d, expected %d (%s)", a->id, rc, want,
                 err.msg);
}

static void w_delete(sahel_writer *w, const char *id, int want) {
    sahel_error err = {0};
    int rc = sahel_writer_delete(w, id, strlen(id), &err);
    cr_assert_eq(rc, want, "sahel_writer_delete(%s) = %d, expected %d (%s)", id, rc, want,
                 err.msg);
}

/* Commit, read the statistics (st may be NULL), close. */
static void w_commit(sahel_writer *w, sahel_writer_stats *st) {
    sahel_error err = {0};
    int rc = sahel_writer_commit(w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_commit: %d %s", rc, err.msg);
    if (st) sahel_writer_get_stats(w, st);
    sahel_writer_close(w);
}

/* A new index of a[0..n) (replacing any in dir). */
static void build_arts(const char *dir, const art *a, size_t n) {
    sahel_writer_opts o = {.force = 1};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    int rc = sahel_writer_open(dir, &o, &w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_open(%s): %s", dir, err.msg);
    for (size_t i = 0; i < n; i++) w_add(w, &a[i], SAHEL_ADDED);
    w_commit(w, NULL);
}

/* ---- the files of an index ---------------------------------------------- */

/* The directory holds MANIFEST, maybe LOCK, and exactly the segments,
 * deletion bitmaps and sources table the manifest names: no temporary
 * file, nothing unreferenced, nothing named missing. */
static void assert_only_manifest_files(const char *dir) {
    sh_manifest m;
    sahel_error err = {0};
    int rc = sh_manifest_read(dir, &m, &err);
    cr_assert_eq(rc, 0, "manifest of %s: %s", dir, err.msg);
    size_t cap = 2 * m.nsegs + 3, n = 0;
    char **want = sh_test_xrealloc(NULL, cap * sizeof *want);
    int *seen = calloc(cap, sizeof *seen);
    cr_assert_not_null(seen);
    want[n++] = sh_test_xstrdup(SH_MANIFEST);
    for (size_t i = 0; i < m.nsegs; i++) {
        want[n++] = sh_test_xstrdup(m.segs[i].name);
        if (m.segs[i].del_gen) {
            char del[256];
            sh_del_name(del, sizeof del, m.segs[i].name, m.segs[i].del_gen);
            want[n++] = sh_test_xstrdup(del);
        }
    }
    if (m.sources_gen)
        want[n++] = sh_test_xfmt("sources-%06llu.ssrc", (unsigned long long)m.sources_gen);
    sh_manifest_free(&m);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, SH_LOCK_FILE))
            continue;
        size_t i = 0;
        while (i < n && strcmp(want[i], e->d_name) != 0) i++;
        if (i == n) {
            closedir(d);
            cr_assert_fail("%s holds %s, which its manifest does not name", dir, e->d_name);
        }
        seen[i] = 1;
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        cr_assert(seen[i], "%s: the manifest names %s, which is missing", dir, want[i]);
        free(want[i]);
    }
    free(want);
    free(seen);
}

/* Segment files in dir that the manifest does not name (a writer's
 * leftovers). */
static size_t count_unreferenced(const char *dir) {
    sh_manifest m;
    sahel_error err = {0};
    cr_assert_eq(sh_manifest_read(dir, &m, &err), 0, "manifest of %s: %s", dir, err.msg);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "seg-", 4) != 0 || len < 5 || strcmp(e->d_name + len - 5, ".sseg"))
            continue;
        int named = 0;
        for (size_t i = 0; i < m.nsegs && !named; i++) named = !strcmp(m.segs[i].name, e->d_name);
        n += !named;
    }
    closedir(d);
    sh_manifest_free(&m);
    return n;
}

/* ---- 1. property: updated in batches = built at once -------------------- */

typedef struct batch_plan {
    uint64_t seed;
    size_t ndocs;
    uint32_t min_batch, max_batch; /* articles per batch */
    size_t budget;                 /* writer memory budget (0: default) */
    int want_merge;                /* the merge policy must have merged */
    const char *name;
} batch_plan;

/* Build c->a in random contiguous batches (a build, then updates) and
 * compare with fresh builds: halfway through and at the end. */
static void check_batches(const batch_plan *p) {
    corpus c;
    corpus_make(&c, p->seed, p->ndocs, "p");
    char *inc_name = sh_test_xfmt("%s-inc", p->name),
         *fresh_name = sh_test_xfmt("%s-fresh", p->name);
    char *inc = scratch(inc_name), *fresh = scratch(fresh_name);
    prng r = prng_seed(p->seed ^ 0xBA7C4E5u);
    size_t pos = 0, nbatches = 0, mid_checked = 0, with_hits = 0;
    uint64_t merged = 0, max_segs = 0;
    while (pos < c.n) {
        size_t len = p->min_batch + prng_below(&r, p->max_batch - p->min_batch + 1);
        if (len > c.n - pos) len = c.n - pos;
        sahel_writer *w = w_open(inc, pos > 0, p->budget);
        for (size_t i = pos; i < pos + len; i++) w_add(w, &c.a[i], SAHEL_ADDED);
        sahel_writer_stats ws;
        w_commit(w, &ws);
        cr_assert_eq(ws.nadded, len, "batch %zu: %llu added of %zu", nbatches,
                     (unsigned long long)ws.nadded, len);
        merged += ws.nmerged;
        pos += len;
        nbatches++;
        sahel_index_info info = ix_info(inc);
        cr_assert_eq(info.ndocs, pos, "%s: %llu live documents after %zu articles", p->name,
                     (unsigned long long)info.ndocs, pos);
        cr_assert_eq(info.ndeleted, 0, "%s: additions deleted something", p->name);
        cr_assert_eq(info.nsegments, ws.nlive_segments);
        if (info.nsegments > max_segs) max_segs = info.nsegments;
        if (!mid_checked && pos >= c.n / 2 && pos < c.n) {
            build_arts(fresh, c.a, pos);
            compare_indexes(inc, fresh, &c, p->seed + 1, 60, 1, &with_hits, p->name);
            mid_checked = 1;
        }
    }
    build_arts(fresh, c.a, c.n);
    cr_assert_eq(ix_info(fresh).nsegments, 1, "the fresh build should be one segment");
    compare_indexes(inc, fresh, &c, p->seed + 2, 150, 1, &with_hits, p->name);
    cr_assert_gt(with_hits, 100, "%s: only %zu of 150 queries had hits", p->name, with_hits);
    cr_assert_gt(max_segs, 1, "%s: the updates never made a second segment", p->name);
    if (p->want_merge) {
        cr_assert_gt(merged, 0, "%s: %zu batches and no merge", p->name, nbatches);
        cr_assert_lt(ix_info(inc).nsegments, nbatches, "%s: no fewer segments than batches",
                     p->name);
    }
    ix_verify(inc);
    assert_only_manifest_files(inc);
    sh_test_rm_rf(inc);
    sh_test_rm_rf(fresh);
    free(inc);
    free(fresh);
    free(inc_name);
    free(fresh_name);
    corpus_free(&c);
}

Test(update_property, large_batches_rank_like_a_fresh_build) {
    batch_plan p = {.seed = 11, .ndocs = 300, .min_batch = 25, .max_batch = 110,
                    .name = "large-11"};
    check_batches(&p);
    batch_plan q = {.seed = 12, .ndocs = 260, .min_batch = 10, .max_batch = 90,
                    .name = "large-12"};
    check_batches(&q);
}

/* More than ten batches of under ten articles: level-0 segments that the
 * policy must merge, ten at a time, and merged ones again. */
Test(update_property, tiny_batches_merge_and_rank_like_a_fresh_build) {
    batch_plan p = {.seed = 21, .ndocs = 220, .min_batch = 1, .max_batch = 9,
                    .want_merge = 1, .name = "tiny-21"};
    check_batches(&p);
}

/* A budget of one byte writes a segment per article, in the updates too,
 * so one commit merges segments of its own; a merge cut by the budget
 * into as many segments must stop rather than loop. */
Test(update_property, one_article_segments_rank_like_a_fresh_build) {
    batch_plan p = {.seed = 31, .ndocs = 70, .min_batch = 8, .max_batch = 24, .budget = 1,
                    .name = "perdoc-31"};
    check_batches(&p);
}

/* The comparison itself: one article fewer changes N and so every score;
 * the same articles in reverse order swap every exact tie.  Both must be
 * caught, or the tests above could pass by comparing nothing. */
Test(update_property, comparison_catches_other_statistics_and_tie_order) {
    corpus c;
    corpus_make(&c, 11, 300, "p");
    char *a = scratch("control-a"), *b = scratch("control-b");
    build_arts(a, c.a, c.n);
    build_arts(b, c.a, c.n - 1);
    size_t with_hits = 0;
    size_t ndiff = compare_indexes(a, b, &c, 5, 60, 0, &with_hits, "one fewer");
    cr_assert_gt(ndiff, with_hits / 2, "one article fewer changed only %zu of %zu answers",
                 ndiff, with_hits);
    art *rev = sh_test_xrealloc(NULL, c.n * sizeof *rev);
    for (size_t i = 0; i < c.n; i++) rev[i] = c.a[c.n - 1 - i];
    build_arts(b, rev, c.n);
    free(rev);
    ndiff = compare_indexes(a, b, &c, 5, 60, 0, NULL, "reversed");
    cr_assert_gt(ndiff, 0, "reversing the articles changed no tie order");
    sh_test_rm_rf(a);
    sh_test_rm_rf(b);
    free(a);
    free(b);
    corpus_free(&c);
}

/* ---- 2. update semantics ------------------------------------------------ */

/* A small index of hand-written articles (k0..k5) and the fixed words the
 * tests look for. */
static const char *const SMALL_BODIES[] = {
    "the granary by the river was flooded and the xylarch harvest lost",
    "herders moved their cattle south before the drought",
    "a convoy of fuel trucks reached the oasis market",
    "the council voted a budget for wells and roads",
    "miners protested the price of salt at the mine",
    "radio reporters covered the treaty talks in the desert",
};

static void small_index(const char *dir) {
    sahel_writer *w = w_open(dir, 0, 0);
    for (size_t i = 0; i < sizeof SMALL_BODIES / sizeof SMALL_BODIES[0]; i++) {
        char id[32], title[32];
        snprintf(id, sizeof id, "k%zu", i);
        snprintf(title, sizeof title, "Dispatch %zu", i);
        art a = art_new(id, title, SMALL_BODIES[i]);
        w_add(w, &a, SAHEL_ADDED);
        art_free(&a);
    }
    w_commit(w, NULL);
}

static art small_art(size_t i) {
    char id[32], title[32];
    snprintf(id, sizeof id, "k%zu", i);
    snprintf(title, sizeof title, "Dispatch %zu", i);
    return art_new(id, title, SMALL_BODIES[i]);
}

#define NSMALL (sizeof SMALL_BODIES / sizeof SMALL_BODIES[0])

Test(update, identical_articles_are_unchanged_and_index_nothing) {
    char *dir = scratch("unchanged");
    small_index(dir);
    sahel_index_info before = ix_info(dir);
    sahel_index *ix = ix_open(dir);
    sahel_segment_info si;
    cr_assert_eq(sahel_index_segment_info(ix, 0, &si), 0);
    char *segname = sh_test_xstrdup(si.name);
    sahel_index_close(ix);

    sahel_writer *w = w_open(dir, 1, 0);
    for (size_t i = 0; i < NSMALL; i++) {
        art a = small_art(i);
        w_add(w, &a, SAHEL_UNCHANGED);
        art_free(&a);
    }
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.nunchanged, NSMALL);
    cr_assert_eq(ws.ndocs + ws.nadded + ws.nreplaced + ws.ndeleted, 0,
                 "nothing should have been indexed or deleted");
    cr_assert_eq(ws.nsegments, 0, "a segment was written for unchanged articles");

    sahel_index_info after = ix_info(dir);
    cr_assert_eq(after.generation, before.generation + 1);
    cr_assert_eq(after.nsegments, before.nsegments);
    cr_assert_eq(after.ndocs, before.ndocs);
    cr_assert_eq(after.ndeleted, 0);
    ix = ix_open(dir);
    cr_assert_eq(sahel_index_segment_info(ix, 0, &si), 0);
    cr_assert_str_eq(si.name, segname, "the segment was rewritten");
    sahel_index_close(ix);
    assert_only_manifest_files(dir);
    free(segname);
    free(dir);
}

Test(update, changed_body_replaces_the_old_version) {
    char *dir = scratch("replace");
    small_index(dir);
    cr_assert_eq(search_total(dir, "xylarch", NULL), 1);
    sahel_writer *w = w_open(dir, 1, 0);
    art a = art_new("k0", "Dispatch 0", "the granary by the river was rebuilt near the qorvant well");
    w_add(w, &a, SAHEL_REPLACED);
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.nreplaced, 1);
    cr_assert_eq(ws.nadded, 0);
    cr_assert_eq(ws.ndeleted, 0, "a replacement is not counted as a deletion");

    cr_assert_eq(search_total(dir, "xylarch", NULL), 0, "the old version is still found");
    char *first = NULL;
    cr_assert_eq(search_total(dir, "qorvant", &first), 1, "the new version is not found");
    cr_assert_str_eq(first, "k0");
    free(first);
    cr_assert_eq(search_total(dir, "granary", NULL), 1, "one version only");
    cr_assert_eq(ix_has(dir, "k0"), 1);
    sahel_index_info info = ix_info(dir);
    cr_assert_eq(info.ndocs, NSMALL);
    cr_assert_eq(info.ndeleted, 1);
    cr_assert_eq(info.nsegments, 2);

    /* replaced again: the second version goes too */
    w = w_open(dir, 1, 0);
    art b = art_new("k0", "Dispatch 0", "the granary stands empty");
    w_add(w, &b, SAHEL_REPLACED);
    w_commit(w, NULL);
    cr_assert_eq(search_total(dir, "qorvant", NULL), 0);
    cr_assert_eq(search_total(dir, "granary", NULL), 1);
    /* the second segment held only the second version: wholly deleted, it
     * is dropped, and its deletion with it */
    info = ix_info(dir);
    cr_assert_eq(info.ndeleted, 1);
    cr_assert_eq(info.nsegments, 2);
    cr_assert_eq(info.ndocs, NSMALL);
    ix_verify(dir);
    assert_only_manifest_files(dir);
    art_free(&a);
    art_free(&b);
    free(dir);
}

/* The content hash covers every stored field, not only the text. */
Test(update, changed_stored_field_replaces) {
    char *dir = scratch("field");
    small_index(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    art a = small_art(2);
    sahel_doc d = art_doc(&a);
    d.date = "2024-01-05";
    d.date_len = strlen(d.date);
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_add(w, &d, &err), SAHEL_REPLACED, "%s", err.msg);
    w_commit(w, NULL);
    sahel_index *ix = ix_open(dir);
    sahel_hits *hits = NULL;
    cr_assert_eq(sahel_search(ix, "convoy", 6, NULL, &hits, &err), 0, "%s", err.msg);
    cr_assert_eq(sahel_hits_count(hits), 1);
    sahel_hit h;
    cr_assert_eq(sahel_hits_get(hits, 0, &h, &err), 0, "%s", err.msg);
    cr_assert_eq(h.date_len, 10);
    cr_assert_eq(memcmp(h.date, "2024-01-05", 10), 0, "the stored date is the old one");
    sahel_hits_free(hits);
    sahel_index_close(ix);
    art_free(&a);
    free(dir);
}

Test(update, delete_removes_from_search_and_has_id) {
    char *dir = scratch("delete");
    small_index(dir);
    cr_assert_eq(ix_has(dir, "k1"), 1);
    cr_assert_eq(search_total(dir, "cattle", NULL), 1);
    sahel_writer *w = w_open(dir, 1, 0);
    w_delete(w, "k1", 0);
    w_delete(w, "k4", 0);
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.ndeleted, 2);
    cr_assert_eq(search_total(dir, "cattle", NULL), 0, "a deleted article is found");
    cr_assert_eq(search_total(dir, "miners OR cattle OR convoy", NULL), 1);
    cr_assert_eq(ix_has(dir, "k1"), 0);
    cr_assert_eq(ix_has(dir, "k4"), 0);
    cr_assert_eq(ix_has(dir, "k2"), 1);
    sahel_index_info info = ix_info(dir);
    cr_assert_eq(info.ndocs, NSMALL - 2);
    cr_assert_eq(info.ndeleted, 2);
    sahel_index *ix = ix_open(dir);
    uint64_t seg_deleted = 0;
    sahel_segment_info si;
    for (size_t i = 0; sahel_index_segment_info(ix, i, &si) == 0; i++) seg_deleted += si.ndeleted;
    sahel_index_close(ix);
    cr_assert_eq(seg_deleted, 2, "segment infos count %llu deletions",
                 (unsigned long long)seg_deleted);
    ix_verify(dir);
    assert_only_manifest_files(dir);
    free(dir);
}

Test(update, delete_of_unknown_or_already_deleted_id_returns_1) {
    char *dir = scratch("delete-unknown");
    small_index(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    w_delete(w, "no-such-article", 1);
    w_delete(w, "k3", 0);
    w_delete(w, "k3", 1);
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.ndeleted, 1);
    w = w_open(dir, 1, 0);
    w_delete(w, "k3", 1);
    w_commit(w, NULL);
    cr_assert_eq(ix_info(dir).ndeleted, 1);
    free(dir);
}

Test(update, duplicate_id_within_one_update_is_refused_and_the_first_kept) {
    char *dir = scratch("dup");
    small_index(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    art n1 = art_new("new1", NULL, "a bridge of stone over the wadi");
    art n2 = art_new("new1", NULL, "a bridge of rope over the gorge");
    w_add(w, &n1, SAHEL_ADDED);
    w_add(w, &n2, SAHEL_EDUPLICATE);
    art k = small_art(5);
    w_add(w, &k, SAHEL_UNCHANGED);
    w_add(w, &k, SAHEL_EDUPLICATE);
    art k2 = art_new("k2", "Dispatch 2", "a convoy turned back at the checkpoint");
    w_add(w, &k2, SAHEL_REPLACED);
    w_add(w, &k2, SAHEL_EDUPLICATE);
    w_commit(w, NULL);
    cr_assert_eq(search_total(dir, "wadi", NULL), 1, "the first version was not kept");
    cr_assert_eq(search_total(dir, "gorge", NULL), 0, "the duplicate was indexed");
    cr_assert_eq(search_total(dir, "convoy", NULL), 1);
    cr_assert_eq(ix_info(dir).ndocs, NSMALL + 1);
    art_free(&n1);
    art_free(&n2);
    art_free(&k);
    art_free(&k2);
    free(dir);
}

Test(update, delete_then_add_in_one_update_keeps_one_copy) {
    char *dir = scratch("delete-add");
    small_index(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    w_delete(w, "k3", 0);
    art a = small_art(3);
    w_add(w, &a, SAHEL_ADDED);
    w_commit(w, NULL);
    cr_assert_eq(ix_has(dir, "k3"), 1);
    cr_assert_eq(search_total(dir, "budget", NULL), 1, "not exactly one copy of k3");
    cr_assert_eq(ix_info(dir).ndocs, NSMALL);
    art_free(&a);
    free(dir);
}

Test(update, update_without_an_index_is_not_an_index) {
    char *missing = scratch("no-index");
    sahel_writer_opts o = {.update = 1};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(missing, &o, &w, &err), SAHEL_ENOTINDEX, "%s", err.msg);
    cr_assert_null(w);
    struct stat st;
    cr_assert_neq(stat(missing, &st), 0, "update created the directory");

    cr_assert_eq(sh_test_mkdir_p(missing), 0);
    memset(&err, 0, sizeof err);
    cr_assert_eq(sahel_writer_open(missing, &o, &w, &err), SAHEL_ENOTINDEX, "%s", err.msg);
    cr_assert_null(w);
    DIR *d = opendir(missing);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        cr_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."),
                  "update left %s in a folder without an index", e->d_name);
    closedir(d);
    free(missing);
}

Test(update, build_over_an_index_without_force_is_refused) {
    char *dir = scratch("build-exists");
    small_index(dir);
    sahel_writer_opts o = {0};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &o, &w, &err), SAHEL_EEXIST, "%s", err.msg);
    cr_assert_eq(ix_info(dir).ndocs, NSMALL);
    free(dir);
}

Test(update, abandoned_update_changes_nothing) {
    char *dir = scratch("abandon");
    small_index(dir);
    sahel_index_info before = ix_info(dir);
    sahel_writer *w = w_open(dir, 1, 1);
    art a = art_new("k0", "Dispatch 0", "rewritten entirely");
    w_add(w, &a, SAHEL_REPLACED);
    art b = art_new("fresh", NULL, "a brand new qorvant article");
    w_add(w, &b, SAHEL_ADDED);
    w_delete(w, "k1", 0);
    sahel_writer_close(w);
    sahel_index_info after = ix_info(dir);
    cr_assert_eq(after.generation, before.generation);
    cr_assert_eq(after.ndocs, before.ndocs);
    cr_assert_eq(after.ndeleted, 0);
    cr_assert_eq(search_total(dir, "xylarch", NULL), 1);
    cr_assert_eq(search_total(dir, "qorvant", NULL), 0);
    cr_assert_eq(ix_has(dir, "k1"), 1);
    assert_only_manifest_files(dir);
    art_free(&a);
    art_free(&b);
    free(dir);
}

Test(update, reader_keeps_its_snapshot_across_an_update) {
    char *dir = scratch("snapshot");
    small_index(dir);
    sahel_index *old = ix_open(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    art a = art_new("k0", "Dispatch 0", "the qorvant granary");
    w_add(w, &a, SAHEL_REPLACED);
    w_delete(w, "k1", 0);
    w_commit(w, NULL);
    /* a merge too, which removes the segment the old reader maps */
    w = w_open(dir, 1, 0);
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_optimize(w, &err), 0);
    w_commit(w, NULL);
    cr_assert_eq(ix_info(dir).nsegments, 1);

    hitlist h;
    hitlist_run(old, "xylarch", &h);
    cr_assert_eq(h.n, 1, "the old snapshot lost the old version");
    hitlist_free(&h);
    hitlist_run(old, "cattle", &h);
    cr_assert_eq(h.n, 1, "the old snapshot lost a deleted article");
    hitlist_free(&h);
    hitlist_run(old, "qorvant", &h);
    cr_assert_eq(h.n, 0, "the old snapshot sees the new version");
    hitlist_free(&h);
    cr_assert_eq(sahel_index_has_id(old, "k1", 2, &err), 1);
    sahel_index_close(old);
    cr_assert_eq(search_total(dir, "qorvant", NULL), 1);
    cr_assert_eq(search_total(dir, "xylarch OR cattle", NULL), 0);
    art_free(&a);
    free(dir);
}

/* ---- 3. sources: folders of .txt and .jsonl files ----------------------- */

/* root/A: alpha.txt, beta.txt, sub/gamma.txt, feed.jsonl (f1-f3),
 * more.jsonl (m1, m2); root/B: other.txt, list.jsonl (b1, b2); root/idx
 * the index.  11 articles in 7 files, 8 of them in A's 5 files. */
typedef struct srctree {
    char *root, *a, *b, *idx;
} srctree;

#define A_FILES 5
#define A_ARTICLES 8
#define ALL_FILES 7
#define ALL_ARTICLES 11

static const char FEED3[] =
    "{\"id\":\"f1\",\"title\":\"Feed one\",\"text\":\"the fuel convoy reached the oasis\"}\n"
    "{\"id\":\"f2\",\"title\":\"Feed two\",\"text\":\"herders crossed the dry riverbed\"}\n"
    "{\"id\":\"f3\",\"title\":\"Feed three\",\"text\":\"a tariff on cotton was lifted\"}\n";
static const char F4[] =
    "{\"id\":\"f4\",\"title\":\"Feed four\",\"text\":\"the vorpalite mine reopened\"}\n";
static const char M1[] =
    "{\"id\":\"m1\",\"text\":\"teachers in the quenzal district went on strike\"}\n";
static const char M2[] = "{\"id\":\"m2\",\"text\":\"a clinic opened beside the well\"}\n";

static char *tpath(const srctree *t, const char *rel) {
    return sh_test_xfmt("%s/%s", t->root, rel);
}

static void tput(const srctree *t, const char *rel, const char *text) {
    char *p = tpath(t, rel);
    put_file(p, text);
    free(p);
}

static void tremove(const srctree *t, const char *rel) {
    char *p = tpath(t, rel);
    cr_assert_eq(sh_test_rm_rf(p), 0, "cannot remove %s", p);
    free(p);
}

static void srctree_make(srctree *t, const char *name) {
    t->root = scratch(name);
    t->a = tpath(t, "A");
    t->b = tpath(t, "B");
    t->idx = tpath(t, "idx");
    char *sub = tpath(t, "A/sub");
    cr_assert_eq(sh_test_mkdir_p(sub), 0);
    cr_assert_eq(sh_test_mkdir_p(t->b), 0);
    free(sub);
    tput(t, "A/alpha.txt", "Alpha granary report\nThe granary of alpha held millet.\n");
    tput(t, "A/beta.txt", "Beta title\nbeta body about the xylarch harvest\n");
    tput(t, "A/sub/gamma.txt", "Gamma\ngamma body about a caravan of salt\n");
    tput(t, "A/feed.jsonl", FEED3);
    sh_test_str m = {0};
    sh_test_str_puts(&m, M1);
    sh_test_str_puts(&m, M2);
    tput(t, "A/more.jsonl", sh_test_str_get(&m));
    sh_test_str_free(&m);
    tput(t, "B/other.txt", "Other\nthe senate debated the budget\n");
    tput(t, "B/list.jsonl",
         "{\"id\":\"b1\",\"text\":\"floods closed the northern road\"}\n"
         "{\"id\":\"b2\",\"text\":\"radio stations reported the storm\"}\n");
}

static void srctree_free(srctree *t) {
    sh_test_rm_rf(t->root);
    free(t->root);
    free(t->a);
    free(t->b);
    free(t->idx);
}

static void count_warning(void *ctx, const char *path, uint64_t line, const char *msg) {
    (void)path;
    (void)line;
    (void)msg;
    (*(uint64_t *)ctx)++;
}

/* Build (update = 0) or update dir from the sources; statistics out. */
static void ingest_run(const char *dir, int update, const char *const *srcs, size_t nsrc,
                       sahel_ingest_stats *st, sahel_writer_stats *ws) {
    sahel_writer_opts o = {.update = update, .force = !update};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    int rc = sahel_writer_open(dir, &o, &w, &err);
    cr_assert_eq(rc, 0, "sahel_writer_open(%s): %s", dir, err.msg);
    uint64_t nwarn = 0;
    sahel_ingest_opts io = {.warn = count_warning, .ctx = &nwarn};
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < nsrc; i++) {
        rc = sahel_ingest(w, srcs[i], &io, st, &err);
        cr_assert_eq(rc, 0, "sahel_ingest(%s): %s", srcs[i], err.msg);
    }
    cr_assert_eq(nwarn, st->warnings);
    w_commit(w, ws);
}

static void tree_build(const srctree *t) {
    const char *srcs[] = {t->a, t->b};
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    ingest_run(t->idx, 0, srcs, 2, &st, &ws);
    cr_assert_eq(st.files, ALL_FILES);
    cr_assert_eq(st.articles, ALL_ARTICLES);
    cr_assert_eq(st.warnings, 0);
}

static void update_a(const srctree *t, sahel_ingest_stats *st, sahel_writer_stats *ws) {
    const char *srcs[] = {t->a};
    ingest_run(t->idx, 1, srcs, 1, st, ws);
}

Test(sources, unchanged_files_are_not_read) {
    srctree t;
    srctree_make(&t, "src-unchanged");
    tree_build(&t);
    sahel_index_info before = ix_info(t.idx);
    const char *srcs[] = {t.a, t.b};
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    ingest_run(t.idx, 1, srcs, 2, &st, &ws);
    cr_assert_eq(st.unchanged_files, ALL_FILES);
    cr_assert_eq(st.files, 0, "%llu files were read", (unsigned long long)st.files);
    cr_assert_eq(st.bytes, 0);
    cr_assert_eq(st.articles, 0);
    cr_assert_eq(ws.nunchanged, ALL_ARTICLES);
    cr_assert_eq(ws.nunchanged_files, ALL_FILES);
    cr_assert_eq(ws.ndocs + ws.ndeleted + ws.nsegments, 0);
    sahel_index_info after = ix_info(t.idx);
    cr_assert_eq(after.generation, before.generation + 1);
    cr_assert_eq(after.nsegments, before.nsegments);
    cr_assert_eq(after.ndocs, ALL_ARTICLES);

    update_a(&t, &st, &ws);
    cr_assert_eq(st.unchanged_files, A_FILES);
    cr_assert_eq(st.files, 0);
    cr_assert_eq(ws.ndeleted, 0);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES);
    assert_only_manifest_files(t.idx);
    srctree_free(&t);
}

Test(sources, touched_file_is_read_and_its_articles_unchanged) {
    srctree t;
    srctree_make(&t, "src-touch");
    tree_build(&t);
    sahel_index_info before = ix_info(t.idx);
    char *feed = tpath(&t, "A/feed.jsonl");
    set_mtime(feed, next_mtime());
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(st.files, 1, "the touched file was not read");
    cr_assert_eq(st.unchanged_files, A_FILES - 1);
    cr_assert_eq(st.unchanged, 3);
    cr_assert_eq(st.articles, 0);
    cr_assert_eq(ws.ndocs + ws.ndeleted + ws.nsegments, 0, "something was indexed again");
    sahel_index_info after = ix_info(t.idx);
    cr_assert_eq(after.nsegments, before.nsegments);
    cr_assert_eq(after.ndeleted, 0);

    /* the new time is recorded: not read the next time */
    update_a(&t, &st, &ws);
    cr_assert_eq(st.files, 0);
    cr_assert_eq(st.unchanged_files, A_FILES);
    free(feed);
    srctree_free(&t);
}

Test(sources, appended_jsonl_article_is_added_and_the_rest_unchanged) {
    srctree t;
    srctree_make(&t, "src-append");
    tree_build(&t);
    sh_test_str f = {0};
    sh_test_str_puts(&f, FEED3);
    sh_test_str_puts(&f, F4);
    tput(&t, "A/feed.jsonl", sh_test_str_get(&f));
    sh_test_str_free(&f);
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.articles, 1);
    cr_assert_eq(st.replaced, 0);
    cr_assert_eq(st.unchanged, 3);
    cr_assert_eq(ws.nadded, 1);
    cr_assert_eq(ws.ndeleted, 0);
    cr_assert_eq(ix_has(t.idx, "f4"), 1);
    cr_assert_eq(search_total(t.idx, "vorpalite", NULL), 1);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES + 1);
    assert_only_manifest_files(t.idx);
    srctree_free(&t);
}

Test(sources, edited_txt_is_replaced) {
    srctree t;
    srctree_make(&t, "src-edit");
    tree_build(&t);
    tput(&t, "A/beta.txt", "Beta title\nbeta body about the brennock harvest\n");
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(st.articles, 1);
    cr_assert_eq(st.replaced, 1);
    cr_assert_eq(ws.nreplaced, 1);
    cr_assert_eq(search_total(t.idx, "xylarch", NULL), 0, "the old text is still found");
    cr_assert_eq(search_total(t.idx, "brennock", NULL), 1);
    sahel_index_info info = ix_info(t.idx);
    cr_assert_eq(info.ndocs, ALL_ARTICLES);
    cr_assert_eq(info.ndeleted, 1);
    srctree_free(&t);
}

Test(sources, deleted_files_and_folders_take_their_articles) {
    srctree t;
    srctree_make(&t, "src-delete");
    tree_build(&t);
    tremove(&t, "A/alpha.txt");
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 1);
    cr_assert_eq(st.files, 0);
    cr_assert_eq(st.unchanged_files, A_FILES - 1);
    cr_assert_eq(ix_has(t.idx, "alpha"), 0);
    cr_assert_eq(search_total(t.idx, "granary", NULL), 0);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES - 1);

    tremove(&t, "A/sub");
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 1);
    cr_assert_eq(ix_has(t.idx, "gamma"), 0);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES - 2);
    cr_assert_eq(ix_has(t.idx, "b1"), 1);
    assert_only_manifest_files(t.idx);
    srctree_free(&t);
}

Test(sources, line_removed_from_jsonl_deletes_its_article) {
    srctree t;
    srctree_make(&t, "src-line");
    tree_build(&t);
    tput(&t, "A/more.jsonl", M2);
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(st.files, 1);
    cr_assert_eq(ws.ndeleted, 1);
    cr_assert_eq(ix_has(t.idx, "m1"), 0);
    cr_assert_eq(search_total(t.idx, "quenzal", NULL), 0);
    cr_assert_eq(ix_has(t.idx, "m2"), 1);
    cr_assert_eq(search_total(t.idx, "clinic", NULL), 1);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES - 1);
    srctree_free(&t);
}

Test(sources, folder_not_named_in_the_update_keeps_its_articles) {
    srctree t;
    srctree_make(&t, "src-other");
    tree_build(&t);
    tremove(&t, "B/other.txt");
    tremove(&t, "A/beta.txt");
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 1, "only A's article goes");
    cr_assert_eq(ix_has(t.idx, "beta"), 0);
    cr_assert_eq(ix_has(t.idx, "other"), 1, "B was not named, yet its article went");
    cr_assert_eq(ix_has(t.idx, "b1"), 1);
    cr_assert_eq(ix_has(t.idx, "b2"), 1);
    /* B's record survived too: an update of B sees what is gone from it */
    const char *srcs[] = {t.b};
    ingest_run(t.idx, 1, srcs, 1, &st, &ws);
    cr_assert_eq(st.unchanged_files, 1);
    cr_assert_eq(ws.ndeleted, 1);
    cr_assert_eq(ix_has(t.idx, "other"), 0);
    cr_assert_eq(ix_has(t.idx, "b2"), 1);
    cr_assert_eq(ix_has(t.idx, "f1"), 1);
    srctree_free(&t);
}

/* An article that changes file but not id is the same article: a rename,
 * or a move between files in either byte order, loses nothing. */
Test(sources, renamed_file_and_moved_articles_are_kept) {
    srctree t;
    srctree_make(&t, "src-move");
    tree_build(&t);
    char *from = tpath(&t, "A/more.jsonl"), *to = tpath(&t, "A/zmore.jsonl");
    cr_assert_eq(rename(from, to), 0);
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 0);
    cr_assert_eq(ix_has(t.idx, "m1"), 1);
    cr_assert_eq(search_total(t.idx, "quenzal", NULL), 1);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES);

    /* f2 from feed.jsonl to the later zmore.jsonl */
    tput(&t, "A/feed.jsonl",
         "{\"id\":\"f1\",\"title\":\"Feed one\",\"text\":\"the fuel convoy reached the oasis\"}\n"
         "{\"id\":\"f3\",\"title\":\"Feed three\",\"text\":\"a tariff on cotton was lifted\"}\n");
    sh_test_str z = {0};
    sh_test_str_puts(&z, M1);
    sh_test_str_puts(&z, M2);
    sh_test_str_puts(&z, "{\"id\":\"f2\",\"title\":\"Feed two\",\"text\":\"herders crossed the "
                         "dry riverbed\"}\n");
    tput(&t, "A/zmore.jsonl", sh_test_str_get(&z));
    sh_test_str_free(&z);
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 0);
    cr_assert_eq(ix_has(t.idx, "f2"), 1);
    cr_assert_eq(search_total(t.idx, "riverbed", NULL), 1);

    /* m1 from zmore.jsonl to the earlier feed.jsonl */
    sh_test_str f = {0};
    sh_test_str_puts(&f, "{\"id\":\"f1\",\"title\":\"Feed one\",\"text\":\"the fuel convoy reached "
                         "the oasis\"}\n");
    sh_test_str_puts(&f, M1);
    tput(&t, "A/feed.jsonl", sh_test_str_get(&f));
    sh_test_str_free(&f);
    tput(&t, "A/zmore.jsonl",
         "{\"id\":\"f3\",\"title\":\"Feed three\",\"text\":\"a tariff on cotton was lifted\"}\n"
         "{\"id\":\"m2\",\"text\":\"a clinic opened beside the well\"}\n"
         "{\"id\":\"f2\",\"title\":\"Feed two\",\"text\":\"herders crossed the dry riverbed\"}\n");
    update_a(&t, &st, &ws);
    cr_assert_eq(ws.ndeleted, 0);
    for (const char *const *id = (const char *const[]){"f1", "f2", "f3", "m1", "m2", NULL}; *id;
         id++)
        cr_assert_eq(ix_has(t.idx, *id), 1, "%s was lost", *id);
    cr_assert_eq(search_total(t.idx, "quenzal", NULL), 1);
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES);
    free(from);
    free(to);
    srctree_free(&t);
}

/* The table is keyed by canonical paths: "A/", a symlink to A, or one file
 * of A name the same files. */
Test(sources, same_files_by_another_spelling_are_recognised) {
    srctree t;
    srctree_make(&t, "src-spelling");
    tree_build(&t);
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    char *slash = sh_test_xfmt("%s//", t.a);
    const char *s1[] = {slash};
    ingest_run(t.idx, 1, s1, 1, &st, &ws);
    cr_assert_eq(st.unchanged_files, A_FILES, "via %s", slash);
    cr_assert_eq(st.files, 0);

    char *link = tpath(&t, "linkA");
    cr_assert_eq(symlink(t.a, link), 0, "symlink: %s", strerror(errno));
    const char *s2[] = {link};
    ingest_run(t.idx, 1, s2, 1, &st, &ws);
    cr_assert_eq(st.unchanged_files, A_FILES, "via a symlink");
    cr_assert_eq(ws.ndeleted, 0);

    char *one = tpath(&t, "A/feed.jsonl");
    const char *s3[] = {one};
    ingest_run(t.idx, 1, s3, 1, &st, &ws);
    cr_assert_eq(st.unchanged_files, 1, "one file of A");
    cr_assert_eq(st.files, 0);
    cr_assert_eq(ws.ndeleted, 0, "naming one file deleted the rest of its folder");
    cr_assert_eq(ix_info(t.idx).ndocs, ALL_ARTICLES);
    free(slash);
    free(link);
    free(one);
    srctree_free(&t);
}

/* Drop the capabilities that let root read any file, so that a mode of
 * 000 means unreadable even to root (the suite runs as root in some
 * containers).  0, or -1 when they cannot be dropped. */
static int drop_file_read_override(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return -1;
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    return syscall(SYS_capset, &h, d) == 0 ? 0 : -1;
}

/* Child exit codes of the unreadable-file test. */
#define CHILD_CANNOT_TEST 77
#define CHILD_FAILED 78

Test(sources, unreadable_file_keeps_its_articles) {
    srctree t;
    srctree_make(&t, "src-unreadable");
    tree_build(&t);
    char *feed = tpath(&t, "A/feed.jsonl");
    /* a new time, or it would not even be opened (as recorded) */
    set_mtime(feed, next_mtime());
    cr_assert_eq(chmod(feed, 0), 0);
    tremove(&t, "A/alpha.txt"); /* the update does do something */
    /* in a child: it may have to give up root's right to read anything */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && drop_file_read_override() != 0) _exit(CHILD_CANNOT_TEST);
        int fd = open(feed, O_RDONLY);
        if (fd >= 0) _exit(CHILD_CANNOT_TEST);
        sahel_writer_opts o = {.update = 1};
        sahel_writer *w = NULL;
        if (sahel_writer_open(t.idx, &o, &w, NULL) != 0) _exit(CHILD_FAILED);
        uint64_t nwarn = 0;
        sahel_ingest_opts io = {.warn = count_warning, .ctx = &nwarn};
        sahel_ingest_stats st = {0};
        if (sahel_ingest(w, t.a, &io, &st, NULL) != 0 || sahel_writer_commit(w, NULL) != 0)
            _exit(CHILD_FAILED);
        sahel_writer_stats ws;
        sahel_writer_get_stats(w, &ws);
        sahel_writer_close(w);
        if (write(fds[1], &st, sizeof st) != (ssize_t)sizeof st ||
            write(fds[1], &ws, sizeof ws) != (ssize_t)sizeof ws)
            _exit(CHILD_FAILED);
        _exit(0);
    }
    close(fds[1]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    ssize_t n1 = read(fds[0], &st, sizeof st), n2 = read(fds[0], &ws, sizeof ws);
    close(fds[0]);
    chmod(feed, 0644);
    cr_assert(WIFEXITED(status), "the child died");
    if (WEXITSTATUS(status) == CHILD_CANNOT_TEST) {
        free(feed);
        srctree_free(&t);
        cr_skip_test("cannot make a file unreadable here (root without capset)");
    }
    cr_assert_eq(WEXITSTATUS(status), 0, "the child's update failed");
    cr_assert_eq(n1, (ssize_t)sizeof st);
    cr_assert_eq(n2, (ssize_t)sizeof ws);
    cr_assert_geq(st.warnings, 1, "no warning for the unreadable file");
    cr_assert_eq(ws.ndeleted, 1, "only alpha should go");
    for (const char *const *id = (const char *const[]){"f1", "f2", "f3", NULL}; *id; id++)
        cr_assert_eq(ix_has(t.idx, *id), 1, "%s of the unreadable file was deleted", *id);
    cr_assert_eq(ix_has(t.idx, "alpha"), 0);
    /* readable again: its old record was kept, which the new time does
     * not match, so it is read now, and its articles are as indexed */
    sahel_ingest_stats st2;
    update_a(&t, &st2, &ws);
    cr_assert_eq(st2.files, 1);
    cr_assert_eq(st2.unchanged, 3);
    cr_assert_eq(ws.ndeleted + ws.ndocs, 0);
    cr_assert_eq(ix_has(t.idx, "f2"), 1);
    free(feed);
    srctree_free(&t);
}

/* ---- 4. merges ---------------------------------------------------------- */

/* The live articles of an updated index, in index order (file comment). */
typedef struct model {
    art *a;
    size_t n, cap;
} model;

static void model_push(model *m, art a) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->a = sh_test_xrealloc(m->a, m->cap * sizeof *m->a);
    }
    m->a[m->n++] = a;
}

/* Remove entry i (freed). */
static void model_remove(model *m, size_t i) {
    art_free(&m->a[i]);
    memmove(m->a + i, m->a + i + 1, (m->n - i - 1) * sizeof *m->a);
    m->n--;
}

static void model_free(model *m) {
    for (size_t i = 0; i < m->n; i++) art_free(&m->a[i]);
    free(m->a);
    memset(m, 0, sizeof *m);
}

/* Three updates that add, replace and delete, then a merge: before it the
 * deleted documents still count in N, df and the average lengths, so the
 * scores differ from a build of the live articles; after it they must be
 * the same, hit for hit. */
Test(merge, optimize_purges_deletions_and_scores_like_a_fresh_build) {
    corpus c;
    corpus_make(&c, 41, 270, "m");
    char *dir = scratch("optimize"), *fresh = scratch("optimize-fresh");
    model m = {0};
    char **gone = NULL; /* ids deleted for good */
    size_t ngone = 0;
    sahel_writer *w = w_open(dir, 0, 0);
    for (size_t i = 0; i < 150; i++) {
        w_add(w, &c.a[i], SAHEL_ADDED);
        model_push(&m, art_copy(&c.a[i]));
    }
    w_commit(w, NULL);
    prng r = prng_seed(4242);
    size_t next = 150;
    uint64_t ndeleted = 0;
    for (int u = 0; u < 3; u++) {
        w = w_open(dir, 1, 0);
        /* entries [0, untouched) have not been changed by this update */
        size_t untouched = m.n;
        for (int k = 0; k < 15; k++, untouched--) {
            size_t i = prng_below(&r, (uint32_t)untouched);
            uint32_t *words = NULL;
            size_t nw = 0;
            char *text = gen_text(&c.v, &r, 5 + prng_below(&r, 30), &words, &nw);
            char *body = sh_test_xfmt("%s revision%d", text, u);
            art v = art_new(m.a[i].id, m.a[i].title, body);
            free(text);
            free(body);
            free(words);
            w_add(w, &v, SAHEL_REPLACED);
            model_remove(&m, i);
            model_push(&m, v);
            ndeleted++;
        }
        for (int k = 0; k < 12; k++, untouched--) {
            size_t i = prng_below(&r, (uint32_t)untouched);
            w_delete(w, m.a[i].id, 0);
            gone = sh_test_xrealloc(gone, (ngone + 1) * sizeof *gone);
            gone[ngone++] = sh_test_xstrdup(m.a[i].id);
            model_remove(&m, i);
            ndeleted++;
        }
        for (int k = 0; k < 40; k++, next++) {
            w_add(w, &c.a[next], SAHEL_ADDED);
            model_push(&m, art_copy(&c.a[next]));
        }
        w_commit(w, NULL);
    }
    sahel_index_info info = ix_info(dir);
    cr_assert_eq(info.ndocs, m.n);
    cr_assert_gt(info.ndeleted, 0);
    cr_assert_leq(info.ndeleted, ndeleted);
    cr_assert_gt(info.nsegments, 1);
    for (size_t i = 0; i < m.n; i++) cr_assert_eq(ix_has(dir, m.a[i].id), 1, "%s", m.a[i].id);
    for (size_t i = 0; i < ngone; i++) cr_assert_eq(ix_has(dir, gone[i]), 0, "%s", gone[i]);

    build_arts(fresh, m.a, m.n);
    size_t with_hits = 0;
    size_t ndiff = compare_indexes(dir, fresh, &c, 77, 60, 0, &with_hits, "before the merge");
    cr_assert_gt(ndiff, 0, "deleted documents should still count in the statistics");

    w = w_open(dir, 1, 0);
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_optimize(w, &err), 0, "%s", err.msg);
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.nlive_segments, 1);
    cr_assert_geq(ws.nmerged, info.nsegments);
    info = ix_info(dir);
    cr_assert_eq(info.nsegments, 1);
    cr_assert_eq(info.ndeleted, 0);
    cr_assert_eq(info.ndocs, m.n);
    for (size_t i = 0; i < m.n; i++) cr_assert_eq(ix_has(dir, m.a[i].id), 1, "%s", m.a[i].id);
    for (size_t i = 0; i < ngone; i++) cr_assert_eq(ix_has(dir, gone[i]), 0, "%s", gone[i]);
    compare_indexes(dir, fresh, &c, 77, 150, 1, &with_hits, "after the merge");
    cr_assert_gt(with_hits, 100);
    ix_verify(dir);
    assert_only_manifest_files(dir);

    /* a merge of one clean segment has nothing to do */
    w = w_open(dir, 1, 0);
    cr_assert_eq(sahel_writer_optimize(w, &err), 0);
    w_commit(w, &ws);
    cr_assert_eq(ws.nmerged, 0);
    cr_assert_eq(ix_info(dir).nsegments, 1);

    for (size_t i = 0; i < ngone; i++) free(gone[i]);
    free(gone);
    model_free(&m);
    corpus_free(&c);
    sh_test_rm_rf(dir);
    sh_test_rm_rf(fresh);
    free(dir);
    free(fresh);
}

/* A word of its own for article n: "zq" and three consonants that no
 * English suffix rule touches, so it stems to itself and to no other. */
static void uniq_word(size_t n, char out[8]) {
    static const char L[] = "bcfghjkmpqvwxz";
    out[0] = 'z';
    out[1] = 'q';
    out[2] = L[n / 196 % 14];
    out[3] = L[n / 14 % 14];
    out[4] = L[n % 14];
    out[5] = '\0';
}

static art uniq_art(const vocab *v, prng *r, size_t n, int version) {
    char id[32], w[8];
    snprintf(id, sizeof id, "u%04zu", n);
    uniq_word(n, w);
    char *text = gen_text(v, r, 3 + prng_below(r, 12), NULL, NULL);
    char *body = sh_test_xfmt("%s %s version%d", text, w, version);
    art a = art_new(id, NULL, body);
    free(text);
    free(body);
    return a;
}

Test(merge, many_small_updates_keep_segments_bounded_and_find_everything) {
    char *dir = scratch("many");
    prng r = prng_seed(99);
    vocab v;
    vocab_make(&v, &r);
    enum { MAXART = 400, NUPDATES = 120 };
    int live[MAXART] = {0}, touched[MAXART] = {0};
    size_t n = 0;
    sahel_writer *w = w_open(dir, 0, 0);
    for (; n < 5; n++) {
        art a = uniq_art(&v, &r, n, 0);
        w_add(w, &a, SAHEL_ADDED);
        art_free(&a);
        live[n] = 1;
    }
    w_commit(w, NULL);
    uint64_t merged = 0, max_segs = 0;
    for (int u = 1; u <= NUPDATES; u++) {
        w = w_open(dir, 1, 0);
        uint32_t nops = 1 + prng_below(&r, 3);
        for (uint32_t k = 0; k < nops; k++) {
            uint32_t kind = prng_below(&r, 10);
            size_t pick = prng_below(&r, (uint32_t)n);
            if (kind < 6 || !live[pick] || touched[pick] == u) {
                art a = uniq_art(&v, &r, n, u);
                w_add(w, &a, SAHEL_ADDED);
                art_free(&a);
                live[n] = 1;
                touched[n++] = u;
            } else if (kind < 9) {
                art a = uniq_art(&v, &r, pick, u);
                w_add(w, &a, SAHEL_REPLACED);
                art_free(&a);
                touched[pick] = u;
            } else {
                char id[32];
                snprintf(id, sizeof id, "u%04zu", pick);
                w_delete(w, id, 0);
                live[pick] = 0;
                touched[pick] = u;
            }
        }
        sahel_writer_stats ws;
        w_commit(w, &ws);
        merged += ws.nmerged;
        cr_assert_leq(ws.nlive_segments, SEG_BOUND, "update %d: %llu segments", u,
                      (unsigned long long)ws.nlive_segments);
        if (ws.nlive_segments > max_segs) max_segs = ws.nlive_segments;
    }
    cr_assert_gt(merged, 0, "120 updates and no merge");
    cr_assert_gt(max_segs, 9, "the policy merged before ten segments of a level");
    size_t nlive = 0;
    sahel_index *ix = ix_open(dir);
    for (size_t i = 0; i < n; i++) {
        char w5[8], id[32];
        uniq_word(i, w5);
        snprintf(id, sizeof id, "u%04zu", i);
        hitlist h;
        hitlist_run(ix, w5, &h);
        cr_assert_eq(h.rc, 0);
        cr_assert_eq(h.n, (size_t)live[i], "%s (%s): %zu hits, %s", id, w5, h.n,
                     live[i] ? "live" : "deleted");
        if (live[i]) cr_assert_str_eq(h.id[0], id);
        hitlist_free(&h);
        sahel_error err = {0};
        cr_assert_eq(sahel_index_has_id(ix, id, strlen(id), &err), live[i], "%s", id);
        nlive += (size_t)live[i];
    }
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    sahel_index_close(ix);
    cr_assert_eq(info.ndocs, nlive);
    ix_verify(dir);
    assert_only_manifest_files(dir);
    vocab_free(&v);
    sh_test_rm_rf(dir);
    free(dir);
}

/* A segment more than half deleted is rewritten alone by the next commit;
 * one wholly deleted is dropped without a rewrite. */
Test(merge, mostly_deleted_segment_is_rewritten_and_wholly_deleted_one_dropped) {
    char *dir = scratch("per-segment");
    corpus c;
    corpus_make(&c, 7, 40, "s");
    build_arts(dir, c.a, 20);
    sahel_writer *w = w_open(dir, 1, 0);
    for (size_t i = 20; i < 30; i++) w_add(w, &c.a[i], SAHEL_ADDED);
    w_commit(w, NULL);
    cr_assert_eq(ix_info(dir).nsegments, 2);

    /* 11 of the first segment's 20: more than half */
    w = w_open(dir, 1, 0);
    for (size_t i = 0; i < 11; i++) w_delete(w, c.a[i].id, 0);
    sahel_writer_stats ws;
    w_commit(w, &ws);
    cr_assert_eq(ws.nmerged, 1);
    sahel_index_info info = ix_info(dir);
    cr_assert_eq(info.ndeleted, 0, "the mostly deleted segment was not rewritten");
    cr_assert_eq(info.ndocs, 19);
    cr_assert_eq(info.nsegments, 2);
    /* at most half: kept as it is */
    w = w_open(dir, 1, 0);
    for (size_t i = 20; i < 25; i++) w_delete(w, c.a[i].id, 0);
    w_commit(w, &ws);
    cr_assert_eq(ws.nmerged, 0);
    cr_assert_eq(ix_info(dir).ndeleted, 5);
    /* the rest of it: dropped */
    w = w_open(dir, 1, 0);
    for (size_t i = 25; i < 30; i++) w_delete(w, c.a[i].id, 0);
    w_commit(w, &ws);
    info = ix_info(dir);
    cr_assert_eq(info.nsegments, 1);
    cr_assert_eq(info.ndeleted, 0);
    cr_assert_eq(info.ndocs, 9);
    for (size_t i = 0; i < 30; i++) cr_assert_eq(ix_has(dir, c.a[i].id), i >= 11 && i < 20);
    /* and the rewritten segment answers like a build of what is left */
    char *fresh = scratch("per-segment-fresh");
    build_arts(fresh, c.a + 11, 9);
    compare_indexes(dir, fresh, &c, 3, 60, 1, NULL, "after the rewrites");
    assert_only_manifest_files(dir);
    corpus_free(&c);
    free(fresh);
    free(dir);
}

/* ---- 5. the writer lock ------------------------------------------------- */

static int open_rc(const char *dir, int update, int force, sahel_error *err) {
    sahel_writer_opts o = {.update = update, .force = force};
    sahel_writer *w = NULL;
    int rc = sahel_writer_open(dir, &o, &w, err);
    cr_assert_eq(rc != 0, w == NULL, "a writer and an error, or neither");
    sahel_writer_close(w);
    return rc;
}

Test(lock, second_writer_is_refused_naming_the_holder) {
    char *dir = scratch("lock");
    small_index(dir);
    sahel_writer *w = w_open(dir, 1, 0);
    char want[64];
    snprintf(want, sizeof want, "locked by pid %d", (int)getpid());
    sahel_error err = {0};
    cr_assert_eq(open_rc(dir, 0, 1, &err), SAHEL_ELOCKED, "build --force: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, want), "message: %s", err.msg);
    memset(&err, 0, sizeof err);
    cr_assert_eq(open_rc(dir, 1, 0, &err), SAHEL_ELOCKED, "update: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, want), "message: %s", err.msg);
    cr_assert_eq(err.code, SAHEL_ELOCKED);

    /* the tool says the same and fails */
    char *src = scratch("lock-src");
    cr_assert_eq(sh_test_mkdir_p(src), 0);
    char *f = sh_test_xfmt("%s/one.txt", src);
    put_file(f, "One\nan article\n");
    const char *argv[] = {SAHEL_BIN_DIR "/sahelindex", "update", "--index", dir, src, NULL};
    sh_test_run run;
    cr_assert_eq(sh_test_run_argv(&run, NULL, NULL, argv), 0);
    cr_assert_eq(run.status, 2, "stderr: %s", run.err);
    cr_assert_not_null(strstr(run.err, want), "stderr: %s", run.err);
    sh_test_run_free(&run);

    /* readers do not care; the holder was not disturbed */
    cr_assert_eq(ix_info(dir).ndocs, NSMALL);
    art a = art_new("late", NULL, "written while others were refused");
    w_add(w, &a, SAHEL_ADDED);
    w_commit(w, NULL);
    cr_assert_eq(ix_has(dir, "late"), 1);

    /* released: anyone may write now, and no dead writer is reported */
    sahel_writer *w2 = w_open(dir, 1, 0);
    sahel_writer_stats ws;
    sahel_writer_get_stats(w2, &ws);
    cr_assert_eq(ws.stale_lock_pid, 0, "a clean close left pid %d", ws.stale_lock_pid);
    sahel_writer_close(w2);
    memset(&err, 0, sizeof err);
    cr_assert_eq(open_rc(dir, 0, 1, &err), 0, "build --force after release: %s", err.msg);
    art_free(&a);
    sh_test_rm_rf(src);
    free(src);
    free(f);
    free(dir);
}

/* A writer killed mid-update (segments written, nothing committed): its
 * lock goes with it, the next writer reports its pid, the index is as of
 * the last commit, and the next commit removes the dead writer's files. */
Test(lock, dead_writer_is_taken_over_and_its_files_removed) {
    char *dir = scratch("stale");
    small_index(dir);
    sahel_index_info before = ix_info(dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* one thread (the caller's) and a one-byte budget: a segment per
         * article, written at once */
        sahel_writer_opts o = {.update = 1, .memory_budget = 1, .threads = 1};
        sahel_writer *w = NULL;
        if (sahel_writer_open(dir, &o, &w, NULL) != 0) _exit(CHILD_FAILED);
        for (int i = 0; i < 3; i++) {
            char id[32];
            snprintf(id, sizeof id, "dead%d", i);
            sahel_doc d = {.id = id, .id_len = strlen(id), .body = "never committed",
                           .body_len = 15};
            if (sahel_writer_add(w, &d, NULL) != SAHEL_ADDED) _exit(CHILD_FAILED);
        }
        if (sahel_writer_delete(w, "k0", 2, NULL) != 0) _exit(CHILD_FAILED);
        raise(SIGKILL);
        _exit(CHILD_FAILED);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the child did not die by SIGKILL (exit %d)",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    cr_assert_gt(count_unreferenced(dir), 0, "the dead writer left no segment behind");
    sahel_index_info mid = ix_info(dir);
    cr_assert_eq(mid.generation, before.generation);
    cr_assert_eq(ix_has(dir, "dead0"), 0);
    cr_assert_eq(ix_has(dir, "k0"), 1);

    sahel_writer *w = w_open(dir, 1, 0);
    sahel_writer_stats ws;
    sahel_writer_get_stats(w, &ws);
    cr_assert_eq(ws.stale_lock_pid, (int)pid, "stale_lock_pid %d, the dead writer was %d",
                 ws.stale_lock_pid, (int)pid);
    art a = art_new("alive", NULL, "committed by the survivor");
    w_add(w, &a, SAHEL_ADDED);
    w_commit(w, NULL);
    cr_assert_eq(count_unreferenced(dir), 0);
    assert_only_manifest_files(dir);
    cr_assert_eq(ix_has(dir, "alive"), 1);
    cr_assert_eq(ix_has(dir, "dead1"), 0);
    cr_assert_eq(ix_has(dir, "k0"), 1);
    w = w_open(dir, 1, 0);
    sahel_writer_get_stats(w, &ws);
    cr_assert_eq(ws.stale_lock_pid, 0);
    sahel_writer_close(w);
    art_free(&a);
    free(dir);
}

/* ---- 6. the command line ------------------------------------------------ */

/* Run sahelindex with up to five arguments. */
static void sahelindex(sh_test_run *run, const char *a1, const char *a2, const char *a3,
                       const char *a4, const char *a5) {
    const char *argv[] = {SAHEL_BIN_DIR "/sahelindex", a1, a2, a3, a4, a5, NULL};
    memset(run, 0, sizeof *run);
    cr_assert_eq(sh_test_run_argv(run, NULL, (const char *const[]){"SAHEL_INDEX", NULL}, argv),
                 0, "cannot run sahelindex");
}

/* root/docs: one.txt, two.txt, three.txt, feed.jsonl (2 articles). */
static void cli_tree(const char *root, char **docs) {
    *docs = sh_test_xfmt("%s/docs", root);
    cr_assert_eq(sh_test_mkdir_p(*docs), 0);
    char *p;
    put_file(p = sh_test_xfmt("%s/one.txt", *docs), "One\nthe first dispatch about millet\n");
    free(p);
    put_file(p = sh_test_xfmt("%s/two.txt", *docs), "Two\nthe second dispatch about sorghum\n");
    free(p);
    put_file(p = sh_test_xfmt("%s/three.txt", *docs), "Three\nthe third dispatch about cotton\n");
    free(p);
    put_file(p = sh_test_xfmt("%s/feed.jsonl", *docs),
             "{\"id\":\"j1\",\"text\":\"caravans of salt\"}\n"
             "{\"id\":\"j2\",\"text\":\"wells ran dry\"}\n");
    free(p);
}

Test(cli, update_merge_stats_and_verify_end_to_end) {
    char *root = scratch("cli"), *docs = NULL;
    cli_tree(root, &docs);
    char *idx = sh_test_xfmt("%s/idx", root);
    sh_test_run run;
    sahelindex(&run, "build", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 0, "build: %s", run.err);
    sh_test_run_free(&run);

    /* nothing changed */
    sahelindex(&run, "update", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 0, "update: %s", run.err);
    cr_assert_not_null(strstr(run.out, "0 added, 0 replaced, 0 deleted, 5 unchanged"),
                       "stdout: %s", run.out);
    cr_assert_not_null(strstr(run.out, "4 unchanged files skipped"), "stdout: %s", run.out);
    sh_test_run_free(&run);

    /* one of each */
    char *p;
    put_file(p = sh_test_xfmt("%s/four.txt", docs), "Four\nthe fourth dispatch about gold\n");
    free(p);
    put_file(p = sh_test_xfmt("%s/two.txt", docs),
             "Two\nthe second dispatch, corrected: about rice\n");
    free(p);
    cr_assert_eq(unlink(p = sh_test_xfmt("%s/three.txt", docs)), 0);
    free(p);
    sahelindex(&run, "update", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 0, "update: %s", run.err);
    cr_assert_not_null(strstr(run.out, "1 added, 1 replaced, 1 deleted, 3 unchanged"),
                       "stdout: %s", run.out);
    cr_assert_not_null(strstr(run.out, "2 files read"), "stdout: %s", run.out);
    sh_test_run_free(&run);
    sahelindex(&run, "verify", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 0, "verify after update: %s", run.err);
    cr_assert_not_null(strstr(run.out, "ok: 5 documents"), "stdout: %s", run.out);
    sh_test_run_free(&run);
    sahelindex(&run, "stats", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 0);
    cr_assert_not_null(strstr(run.out, "deleted:     2"), "stdout: %s", run.out);
    sh_test_run_free(&run);

    sahelindex(&run, "merge", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 0, "merge: %s", run.err);
    cr_assert_not_null(strstr(run.out, "into 1"), "stdout: %s", run.out);
    sh_test_run_free(&run);
    sahelindex(&run, "stats", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 0, "stats: %s", run.err);
    cr_assert_not_null(strstr(run.out, "segments:    1\n"), "stdout: %s", run.out);
    cr_assert_not_null(strstr(run.out, "deleted:     0"), "stdout: %s", run.out);
    cr_assert_not_null(strstr(run.out, "documents:   5\n"), "stdout: %s", run.out);
    sh_test_run_free(&run);
    sahelindex(&run, "verify", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 0, "verify after merge: %s", run.err);
    sh_test_run_free(&run);
    cr_assert_eq(ix_has(idx, "three"), 0);
    cr_assert_eq(ix_has(idx, "four"), 1);
    cr_assert_eq(search_total(idx, "rice", NULL), 1);
    cr_assert_eq(search_total(idx, "sorghum", NULL), 0);

    /* the sources table survived the merge: still nothing to read */
    sahelindex(&run, "update", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 0, "update: %s", run.err);
    cr_assert_not_null(strstr(run.out, "0 added, 0 replaced, 0 deleted, 5 unchanged"),
                       "stdout: %s", run.out);
    sh_test_run_free(&run);
    assert_only_manifest_files(idx);
    sh_test_rm_rf(root);
    free(root);
    free(docs);
    free(idx);
}

Test(cli, build_over_an_index_exits_2_with_a_hint) {
    char *root = scratch("cli-build"), *docs = NULL;
    cli_tree(root, &docs);
    char *idx = sh_test_xfmt("%s/idx", root);
    sh_test_run run;
    sahelindex(&run, "build", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 0, "build: %s", run.err);
    sh_test_run_free(&run);
    sahelindex(&run, "build", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 2, "a second build: %s", run.out);
    cr_assert(strstr(run.err, "update") || strstr(run.err, "--force"), "stderr: %s", run.err);
    sh_test_run_free(&run);
    sahelindex(&run, "build", "--force", "--index", idx, docs);
    cr_assert_eq(run.status, 0, "build --force: %s", run.err);
    sh_test_run_free(&run);
    sh_test_rm_rf(root);
    free(root);
    free(docs);
    free(idx);
}

Test(cli, update_or_merge_of_a_missing_index_exits_2) {
    char *root = scratch("cli-missing"), *docs = NULL;
    cli_tree(root, &docs);
    char *idx = sh_test_xfmt("%s/idx", root);
    sh_test_run run;
    sahelindex(&run, "update", "--index", idx, docs, NULL);
    cr_assert_eq(run.status, 2, "update of nothing: %s", run.out);
    cr_assert_gt(run.err_len, 0);
    cr_assert_eq(run.out_len, 0, "stdout: %s", run.out);
    sh_test_run_free(&run);
    sahelindex(&run, "merge", "--index", idx, NULL, NULL);
    cr_assert_eq(run.status, 2);
    sh_test_run_free(&run);
    struct stat st;
    cr_assert_neq(stat(idx, &st), 0, "a failed update created %s", idx);
    sh_test_rm_rf(root);
    free(root);
    free(docs);
    free(idx);
}

/* ---- 7. the files of the directory -------------------------------------- */

Test(files, only_what_the_manifest_names_after_each_commit) {
    char *dir = scratch("files");
    corpus c;
    corpus_make(&c, 5, 120, "x");
    build_arts(dir, c.a, 30);
    assert_only_manifest_files(dir);
    size_t next = 30;
    for (int u = 0; u < 14; u++) {
        sahel_writer *w = w_open(dir, 1, u % 5 == 4 ? 1 : 0);
        for (int k = 0; k < 4; k++) w_add(w, &c.a[next++], SAHEL_ADDED);
        /* the oldest live article replaced, another deleted */
        art v = art_new(c.a[2 * u].id, NULL, "replaced text");
        w_add(w, &v, SAHEL_REPLACED);
        art_free(&v);
        w_delete(w, c.a[2 * u + 1].id, 0);
        if (u == 9) {
            sahel_error err = {0};
            cr_assert_eq(sahel_writer_optimize(w, &err), 0);
        }
        w_commit(w, NULL);
        assert_only_manifest_files(dir);
    }
    /* nothing changed: a new generation of the same files */
    sahel_writer *w = w_open(dir, 1, 0);
    w_commit(w, NULL);
    assert_only_manifest_files(dir);
    ix_verify(dir);
    corpus_free(&c);
    free(dir);
}

/* ---- regression: engine bugs found by this file ------------------------- */

/* writer.c: the ids of a file carried unread (sh_writer_source_begin
 * returns 1, as recorded) never enter the writer's set of ids seen
 * (w->seen), so an update does not know that the file still holds them:
 *   (1) a new file repeating such an id, later in byte order, replaces the
 *       article (sahel_writer_add finds the indexed version and compares
 *       hashes) instead of being refused as a duplicate the way a build
 *       of the same folder refuses it (st.duplicates, the first kept);
 *   (2) worse, once that new file is removed, settle_sources ->
 *       delete_unseen deletes the id from the index although the
 *       unchanged file still holds it: an article of an untouched file
 *       vanishes until that file is touched. */
Test(regression, id_of_an_unread_file_repeated_in_a_new_file_is_lost_when_that_file_goes) {
    srctree t;
    srctree_make(&t, "src-dupfile");
    tree_build(&t);
    tput(&t, "A/zdup.jsonl", "{\"id\":\"f1\",\"text\":\"an impostor wyvern article\"}\n");
    sahel_ingest_stats st;
    sahel_writer_stats ws;
    update_a(&t, &st, &ws);
    /* what a build of A would do: f1 first seen in feed.jsonl, kept */
    cr_expect_eq(st.duplicates, 1, "the repeated id was not refused as a duplicate");
    cr_expect_eq(search_total(t.idx, "wyvern", NULL), 0, "the duplicate replaced the article");
    cr_expect_eq(search_total(t.idx, "fuel convoy", NULL), 1, "f1 of feed.jsonl is gone");

    tremove(&t, "A/zdup.jsonl");
    update_a(&t, &st, &ws);
    cr_expect_eq(st.unchanged_files, A_FILES, "feed.jsonl is as recorded");
    cr_expect_eq(ix_has(t.idx, "f1"), 1,
                 "f1 is deleted although feed.jsonl, unchanged, still holds it");
    srctree_free(&t);
}

/* search.c (uncommitted MaxScore path for ranked ORs of plain terms, as of
 * this writing): maxscore_segment sorts the terms by their per-segment
 * score bound (qsort by cmp_ub) and adds the essential terms' scores, then
 * the non-essential ones in reverse, the split point moving as the k-th
 * score rises.  The same document's score is thus a sum taken in an order
 * that depends on its segment and on when it is scored, and identical
 * articles get scores a few ulps apart: ties break by rounding noise, not
 * by document order, and an index of many segments no longer ranks like
 * one (update_property fails the same way).  Summing in one fixed order
 * (the query's term order) whatever the pruning would restore it. */
Test(regression, copies_of_an_article_score_identically_and_rank_in_index_order) {
    corpus c;
    corpus_make(&c, 12, 260, "t");
    char *one = scratch("ties-one"), *many = scratch("ties-many");
    build_arts(one, c.a, c.n);
    sahel_writer *w = w_open(many, 0, 0);
    for (size_t i = 0; i < c.n; i++) {
        w_add(w, &c.a[i], SAHEL_ADDED);
        if (i % 37 == 36) { /* segments of unequal mixes of words */
            w_commit(w, NULL);
            w = w_open(many, 1, 0);
        }
    }
    w_commit(w, NULL);
    const char *dirs[] = {one, many};
    size_t npairs = 0;
    for (size_t di = 0; di < 2; di++) {
        sahel_index *ix = ix_open(dirs[di]);
        prng r = prng_seed(14);
        for (int qi = 0; qi < 200; qi++) {
            char *q = gen_query(&c, &r);
            hitlist h;
            hitlist_run(ix, q, &h);
            cr_assert_eq(h.rc, 0);
            for (size_t i = 0; i < h.n; i++)
                for (size_t j = i + 1; j < h.n; j++) {
                    const art *a = &c.a[strtoul(h.id[i] + 1, NULL, 10)];
                    const art *b = &c.a[strtoul(h.id[j] + 1, NULL, 10)];
                    int same = strcmp(a->body, b->body) == 0 &&
                               (a->title && b->title ? strcmp(a->title, b->title) == 0
                                                     : a->title == b->title);
                    if (!same) continue;
                    npairs++;
                    cr_expect(h.score[i] == h.score[j] && strcmp(h.id[i], h.id[j]) < 0,
                              "%s index, [%s]: copies %s (rank %zu, %.17g) and %s (rank %zu, "
                              "%.17g) should tie exactly, the earlier first",
                              di ? "many-segment" : "one-segment", q, h.id[i], i + 1,
                              h.score[i], h.id[j], j + 1, h.score[j]);
                }
            hitlist_free(&h);
            free(q);
        }
        sahel_index_close(ix);
    }
    cr_assert_gt(npairs, 20, "too few copies met to test anything");
    corpus_free(&c);
    sh_test_rm_rf(one);
    sh_test_rm_rf(many);
    free(one);
    free(many);
}
