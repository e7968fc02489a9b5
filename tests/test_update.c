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
#include <stdarg.h>
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

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xrealloc(NULL, n);
    memcpy(p, s, n);
    return p;
}

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xfmt(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *p = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* A growable NUL-terminated string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_addf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    char *tmp = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, tmp, (size_t)n);
    free(tmp);
}

/* The string built so far (the caller frees it); b is empty again. */
static char *sb_take(sbuf *b) {
    char *p = b->p ? b->p : xstrdup("");
    memset(b, 0, sizeof *b);
    return p;
}

static const char *sb_str(const sbuf *b) { return b->p ? b->p : ""; }

static void sb_free(sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

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
    char *p = xfmt("%s/update-%s", SAHEL_TEST_TMP, name);
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
    return (art){xstrdup(id), title ? xstrdup(title) : NULL, xstrdup(body), NULL, 0};
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
    v->w = xrealloc(NULL, v->n * sizeof *v->w);
    for (size_t i = 0; i < nbase; i++) v->w[i] = xstrdup(BASE_WORDS[i]);
    for (uint32_t i = 0; i < nsyn; i++) {
        char w[32] = "";
        uint32_t nsyl = 2 + prng_below(r, 2);
        for (uint32_t s = 0; s < nsyl; s++)
            strcat(w, SYLLABLES[prng_below(r, sizeof SYLLABLES / sizeof SYLLABLES[0])]);
        v->w[nbase + i] = xstrdup(w);
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
    sbuf b = {0};
    if (words) {
        *words = xrealloc(NULL, (nwords ? nwords : 1) * sizeof **words);
        *nw = nwords;
    }
    for (uint32_t i = 0; i < nwords; i++) {
        if (i) sb_adds(&b, SEP[prng_below(r, sizeof SEP / sizeof SEP[0])]);
        uint32_t w = vocab_pick(v, r);
        size_t start = b.len;
        sb_adds(&b, v->w[w]);
        if (prng_below(r, 7) == 0 && b.p[start] >= 'a' && b.p[start] <= 'z')
            b.p[start] = (char)(b.p[start] - 'a' + 'A');
        if (words) (*words)[i] = w;
    }
    return sb_take(&b);
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
    c->a = xrealloc(NULL, n * sizeof *c->a);
    for (size_t i = 0; i < n; i++) {
        art *a = &c->a[i];
        memset(a, 0, sizeof *a);
        a->id = xfmt("%s%04zu", prefix, i);
        if (i > 0 && prng_below(&r, 12) == 0) {
            const art *o = &c->a[prng_below(&r, (uint32_t)i)];
            a->title = o->title ? xstrdup(o->title) : NULL;
            a->body = xstrdup(o->body);
            a->words = xrealloc(NULL, (o->nwords ? o->nwords : 1) * sizeof *a->words);
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
    sbuf q = {0};
    switch (prng_below(r, 9)) {
    case 0:
    case 1: { /* ranked OR */
        uint32_t n = 1 + prng_below(r, 4);
        for (uint32_t i = 0; i < n; i++) sb_addf(&q, "%s%s", i ? " " : "", qword(c, r));
        break;
    }
    case 2:
        sb_addf(&q, "%s AND %s", qword(c, r), qword(c, r));
        break;
    case 3: { /* a phrase that occurs: consecutive words of some body */
        const art *a = &c->a[prng_below(r, (uint32_t)c->n)];
        if (a->nwords < 2) {
            sb_addf(&q, "\"%s %s\"", qword(c, r), qword(c, r));
            break;
        }
        uint32_t len = 2 + prng_below(r, 2);
        if (len > a->nwords) len = (uint32_t)a->nwords;
        uint32_t at = prng_below(r, (uint32_t)(a->nwords - len + 1));
        sb_adds(&q, "\"");
        for (uint32_t i = 0; i < len; i++)
            sb_addf(&q, "%s%s", i ? " " : "", c->v.w[a->words[at + i]]);
        sb_adds(&q, "\"");
        break;
    }
    case 4: { /* prefix, alone or with a word */
        const char *w = qword(c, r);
        size_t len = strlen(w);
        size_t keep = 2 + prng_below(r, 3);
        if (keep > len) keep = len;
        sb_add(&q, w, keep);
        sb_adds(&q, "*");
        if (prng_below(r, 2)) sb_addf(&q, " %s", qword(c, r));
        break;
    }
    case 5:
        if (prng_below(r, 2))
            sb_addf(&q, "title:%s %s", qword(c, r), qword(c, r));
        else
            sb_addf(&q, "body:\"%s %s\" %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    case 6:
        sb_addf(&q, "+%s %s %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    case 7:
        sb_addf(&q, "%s %s -%s", qword(c, r), qword(c, r), qword(c, r));
        break;
    default:
        sb_addf(&q, "(%s OR %s) AND %s", qword(c, r), qword(c, r), qword(c, r));
        break;
    }
    return sb_take(&q);
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

typedef struct hitlist {
    int rc;
    size_t n;
    uint64_t total;
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
    h->total = sahel_hits_total(hits);
    h->id = xrealloc(NULL, (h->n ? h->n : 1) * sizeof *h->id);
    h->score = xrealloc(NULL, (h->n ? h->n : 1) * sizeof *h->score);
    for (size_t i = 0; i < h->n; i++) {
        const char *id;
        size_t len;
        int rc = sahel_hits_id(hits, i, &id, &len, &h->score[i], &err);
        cr_assert_eq(rc, 0, "sahel_hits_id(%zu) for [%s]: %s", i, q, err.msg);
        h->id[i] = xrealloc(NULL, len + 1);
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

/* 0 when a and b are the same answer (ids in order, scores to SCORE_TOL,
 * totals), else 1 with the first difference in *why. */
static int hitlists_differ(const hitlist *a, const hitlist *b, sbuf *why) {
    if (a->rc != b->rc) {
        sb_addf(why, "search returned %d and %d", a->rc, b->rc);
        return 1;
    }
    if (a->total != b->total) {
        sb_addf(why, "%llu and %llu documents matched", (unsigned long long)a->total,
                (unsigned long long)b->total);
        return 1;
    }
    if (a->n != b->n) {
        sb_addf(why, "%zu and %zu hits", a->n, b->n);
        return 1;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->id[i], b->id[i]) != 0 || !score_close(a->score[i], b->score[i])) {
            sb_addf(why, "rank %zu: %s %.17g vs %s %.17g", i + 1, a->id[i], a->score[i],
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
        sbuf why = {0};
        int differ = hitlists_differ(&ha, &hb, &why);
        if (want_same)
            cr_assert_eq(differ, 0, "%s: query %zu [%s] (seed %llu): %s", what, i, q,
                         (unsigned long long)qseed, sb_str(&why));
        ndiff += (size_t)differ;
        nhit += ha.n > 0;
        sb_free(&why);
        hitlist_free(&ha);
        hitlist_free(&hb);
        free(q);
    }
    sahel_index_close(a);
    sahel_index_close(b);
    if (with_hits) *with_hits = nhit;
    return ndiff;
}

/* Hits of q on dir: their number (total), and the first id in *first
 * (malloc'd, or NULL). */
static uint64_t search_total(const char *dir, const char *q, char **first) {
    sahel_index *ix = ix_open(dir);
    hitlist h;
    hitlist_run(ix, q, &h);
    cr_assert_eq(h.rc, 0, "query [%s] failed: %d", q, h.rc);
    if (first) *first = h.n ? xstrdup(h.id[0]) : NULL;
    uint64_t total = h.total;
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
    char **want = xrealloc(NULL, cap * sizeof *want);
    int *seen = calloc(cap, sizeof *seen);
    cr_assert_not_null(seen);
    want[n++] = xstrdup(SH_MANIFEST);
    for (size_t i = 0; i < m.nsegs; i++) {
        want[n++] = xstrdup(m.segs[i].name);
        if (m.segs[i].del_gen) {
            char del[256];
            sh_del_name(del, sizeof del, m.segs[i].name, m.segs[i].del_gen);
            want[n++] = xstrdup(del);
        }
    }
    if (m.sources_gen) want[n++] = xfmt("sources-%06llu.ssrc", (unsigned long long)m.sources_gen);
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
    char *inc_name = xfmt("%s-inc", p->name), *fresh_name = xfmt("%s-fresh", p->name);
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
    art *rev = xrealloc(NULL, c.n * sizeof *rev);
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
        char id[16], title[32];
        snprintf(id, sizeof id, "k%zu", i);
        snprintf(title, sizeof title, "Dispatch %zu", i);
        art a = art_new(id, title, SMALL_BODIES[i]);
        w_add(w, &a, SAHEL_ADDED);
        art_free(&a);
    }
    w_commit(w, NULL);
}

static art small_art(size_t i) {
    char id[16], title[32];
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
    char *segname = xstrdup(si.name);
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
    cr_assert_eq(h.total, 1, "the old snapshot lost the old version");
    hitlist_free(&h);
    hitlist_run(old, "cattle", &h);
    cr_assert_eq(h.total, 1, "the old snapshot lost a deleted article");
    hitlist_free(&h);
    hitlist_run(old, "qorvant", &h);
    cr_assert_eq(h.total, 0, "the old snapshot sees the new version");
    hitlist_free(&h);
    cr_assert_eq(sahel_index_has_id(old, "k1", 2, &err), 1);
    sahel_index_close(old);
    cr_assert_eq(search_total(dir, "qorvant", NULL), 1);
    cr_assert_eq(search_total(dir, "xylarch OR cattle", NULL), 0);
    art_free(&a);
    free(dir);
}
