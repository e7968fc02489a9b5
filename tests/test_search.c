/*
 * test_search.c - the fast loops of query evaluation (engine/query/search.c)
 * against its generic scorers, on an index with deletions.
 *
 * search.c answers three common shapes with loops of their own that skip
 * documents by bounds: a ranked OR of words (block-max MaxScore, with a
 * prefill from a rare word), a conjunction of words, and a single phrase.
 * With opts.count_all every match is scored by the generic scorers
 * instead.  Both must give the same hits in the same order with the same
 * scores, bit for bit (a score is always summed in clause order), and no
 * deleted article may come back.  test_oracle.c checks both against a
 * brute-force scorer on fresh indexes; this file adds what the oracle
 * does not model: deletions (the skipped documents of a segment's bitmap)
 * and articles replaced in later segments, over several segments.
 *
 * The corpus is generated (fixed seed): a small, steep vocabulary, so that
 * frequent words span many 128-document blocks and the bounds bite, plus a
 * tail of rare words.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_setaffinity (the one-core test) */
#endif
#include <criterion/criterion.h>

#include <dirent.h>
#include <sched.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index/index.h"
#include "query/search.h"
#include "sahel.h"
#include "support/rng.h"
#include "support/run.h"

#define NDOCS 4000
#define NVOCAB 80
#define NQUERIES 60 /* per family */

/* ---- a deterministic corpus --------------------------------------------- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { return sh_test_splitmix64(&r->s); }

static uint32_t rng_below(rng *r, uint32_t n) { return (uint32_t)(rng_next(r) % n); }
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static const char *const SYLL[] = {"ka", "lo", "mi", "ra", "du", "se", "ti", "na",
                                   "bo", "gu", "fe", "zi", "wa", "ye", "po", "sa"};

typedef struct corpus {
    char word[NVOCAB][16];
    double cdf[NVOCAB]; /* Zipf, exponent 1.1 */
    char *title[NDOCS], *body[NDOCS];
} corpus;

static uint32_t zipf(const corpus *c, rng *r) {
    double u = rng_unit(r);
    uint32_t lo = 0, hi = NVOCAB - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (c->cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static char *gen_text(const corpus *c, rng *r, uint32_t nwords) {
    char *s = malloc((size_t)nwords * 17 + 1);
    cr_assert_not_null(s);
    size_t len = 0;
    for (uint32_t i = 0; i < nwords; i++)
        len += (size_t)sprintf(s + len, "%s%s", i ? " " : "", c->word[zipf(c, r)]);
    s[len] = '\0';
    return s;
}

static void corpus_make(corpus *c, uint64_t seed) {
    rng r = {seed};
    for (uint32_t w = 0; w < NVOCAB; w++) /* distinct: three syllables from w's digits */
        snprintf(c->word[w], sizeof c->word[w], "%s%s%s", SYLL[w % 16], SYLL[(w / 16) % 16],
                 SYLL[(w * 7 + 3) % 16]);
    double sum = 0;
    for (uint32_t w = 0; w < NVOCAB; w++) sum += 1 / pow(w + 1, 1.1);
    double acc = 0;
    for (uint32_t w = 0; w < NVOCAB; w++) c->cdf[w] = (acc += 1 / pow(w + 1, 1.1) / sum);
    c->cdf[NVOCAB - 1] = 1;
    for (uint32_t d = 0; d < NDOCS; d++) {
        /* some empty titles: their norm is 0 when b = 1 */
        c->title[d] = gen_text(c, &r, rng_below(&r, 5) ? 1 + rng_below(&r, 8) : 0);
        c->body[d] = gen_text(c, &r, 1 + rng_below(&r, 80));
    }
}

static void corpus_free(corpus *c) {
    for (uint32_t d = 0; d < NDOCS; d++) {
        free(c->title[d]);
        free(c->body[d]);
    }
}

/* ---- the index ---------------------------------------------------------- */

static void rm_rf(const char *path) {
    cr_assert_eq(sh_test_rm_rf(path), 0, "cannot remove %s", path);
}

static void add_doc(sahel_writer *w, uint32_t id, const char *title, const char *body) {
    char ids[16];
    snprintf(ids, sizeof ids, "d%u", id);
    sahel_doc doc = {.id = ids, .id_len = strlen(ids), .title = title,
                     .title_len = strlen(title), .body = body, .body_len = strlen(body)};
    sahel_error err = {0};
    int rc = sahel_writer_add(w, &doc, &err);
    cr_assert(rc >= 0, "sahel_writer_add(%s): %s", ids, err.msg);
}

static sahel_writer *writer(const char *dir, int update) {
    sahel_writer_opts wo = {.force = !update, .update = update, .threads = 1};
    sahel_writer *w = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_open(dir, &wo, &w, &err), 0, "open %s: %s", dir, err.msg);
    return w;
}

static void commit(sahel_writer *w) {
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_commit(w, &err), 0, "commit: %s", err.msg);
    sahel_writer_close(w);
}

static void delete_doc(sahel_writer *w, uint32_t id) {
    char ids[16];
    snprintf(ids, sizeof ids, "d%u", id);
    sahel_error err = {0};
    cr_assert_eq(sahel_writer_delete(w, ids, strlen(ids), &err), 0, "delete %s: %s", ids, err.msg);
}

/* A writer for a new index in SAHEL_TEST_TMP/name (its path into dir). */
static sahel_writer *fresh_writer(char *dir, size_t cap, const char *name) {
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, cap, "%s/%s", SAHEL_TEST_TMP, name);
    rm_rf(dir);
    return writer(dir, 0);
}

static sahel_index *open_index(const char *dir) {
    sahel_index *ix = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_index_open(dir, &ix, &err), 0, "open %s: %s", dir, err.msg);
    return ix;
}

/* An update of the index in dir deleting articles first, first + step, ...
 * below n. */
static void delete_every(const char *dir, uint32_t first, uint32_t step, uint32_t n) {
    sahel_writer *w = writer(dir, 1);
    for (uint32_t d = first; d < n; d += step) delete_doc(w, d);
    commit(w);
}

/* Three commits of a third of the corpus each (three segments), then an
 * update that deletes every 7th article and replaces every 11th: deletion
 * bitmaps in all three, the replacements in a fourth segment.  dead[d]:
 * article d is gone (deleted, not replaced). */
static void build(const corpus *c, const char *dir, uint8_t *dead) {
    rm_rf(dir);
    for (uint32_t part = 0; part < 3; part++) {
        sahel_writer *w = writer(dir, part > 0);
        for (uint32_t d = part * NDOCS / 3; d < (part + 1) * NDOCS / 3; d++)
            add_doc(w, d, c->title[d], c->body[d]);
        commit(w);
    }
    sahel_writer *w = writer(dir, 1);
    memset(dead, 0, NDOCS);
    for (uint32_t d = 0; d < NDOCS; d++) {
        if (d % 11 == 5) {
            add_doc(w, d, c->body[d], c->title[d]); /* title and body swapped */
        } else if (d % 7 == 3) {
            delete_doc(w, d);
            dead[d] = 1;
        }
    }
    commit(w);
}

/* ---- queries ------------------------------------------------------------ */

enum { FAM_TERM, FAM_OR, FAM_RARE_OR, FAM_AND, FAM_PHRASE, FAM_FIELDS, FAM_COUNT };
static const char *const FAM_NAME[FAM_COUNT] = {"one word", "ranked OR", "rare word OR",
                                                "conjunction", "phrase", "fields"};

static const char *freq_word(const corpus *c, rng *r) { return c->word[zipf(c, r)]; }
static const char *rare_word(const corpus *c, rng *r) {
    return c->word[NVOCAB - 1 - rng_below(r, NVOCAB / 5)];
}

static void gen_query(const corpus *c, rng *r, int fam, char *q, size_t cap) {
    size_t len = 0;
#define PUT(...) (len += (size_t)snprintf(q + len, cap - len, __VA_ARGS__))
    uint32_t n = 2 + rng_below(r, 2);
    switch (fam) {
    case FAM_TERM:
        PUT("%s", rng_below(r, 4) ? freq_word(c, r) : rare_word(c, r));
        break;
    case FAM_OR:
        for (uint32_t i = 0; i < n; i++) PUT("%s%s", i ? " " : "", freq_word(c, r));
        break;
    case FAM_RARE_OR:
        PUT("%s %s", freq_word(c, r), rare_word(c, r));
        if (rng_below(r, 2)) PUT(" %s", freq_word(c, r));
        break;
    case FAM_AND:
        for (uint32_t i = 0; i < n; i++) PUT("%s%s", i ? " AND " : "", freq_word(c, r));
        break;
    case FAM_PHRASE: { /* two words that stand side by side in some body */
        const char *b = c->body[rng_below(r, NDOCS)];
        const char *sp = strchr(b, ' ');
        if (!sp) {
            PUT("\"%s %s\"", freq_word(c, r), freq_word(c, r));
            break;
        }
        const char *end = strchr(sp + 1, ' ');
        size_t l = end ? (size_t)(end - b) : strlen(b);
        PUT("\"%.*s\"", (int)l, b);
        break;
    }
    default:
        for (uint32_t i = 0; i < n; i++)
            PUT("%s%s%s", i ? (rng_below(r, 2) ? " AND " : " ") : "",
                rng_below(r, 3) ? (rng_below(r, 2) ? "title:" : "body:") : "", freq_word(c, r));
        break;
    }
#undef PUT
    cr_assert_lt(len, cap);
}

typedef struct hit {
    char id[16];
    double score;
} hit;

/* Run q; the hits into out (at most cap), their number returned. */
static size_t search(sahel_index *ix, const char *q, const sahel_search_opts *o, hit *out,
                     size_t cap, uint64_t *total, int *exact) {
    sahel_hits *hits = NULL;
    sahel_error err = {0};
    cr_assert_eq(sahel_search(ix, q, strlen(q), o, &hits, &err), 0, "%s: %s", q, err.msg);
    size_t n = sahel_hits_count(hits);
    cr_assert_leq(n, cap);
    for (size_t i = 0; i < n; i++) {
        const char *id;
        size_t len;
        cr_assert_eq(sahel_hits_id(hits, i, &id, &len, &out[i].score, &err), 0, "%s", err.msg);
        cr_assert_lt(len, sizeof out[i].id);
        memcpy(out[i].id, id, len);
        out[i].id[len] = '\0';
    }
    *total = sahel_hits_total(hits);
    *exact = sahel_hits_total_exact(hits);
    sahel_hits_free(hits);
    return n;
}

/* The corpus of `seed` built (build) in SAHEL_TEST_TMP/name, whose path
 * goes to dir, and opened; dead[d] as build says. */
static sahel_index *build_open(corpus *c, uint64_t seed, const char *name, char *dir, size_t cap,
                               uint8_t *dead) {
    corpus_make(c, seed);
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, cap, "%s/%s", SAHEL_TEST_TMP, name);
    build(c, dir, dead);
    sahel_index *ix = open_index(dir);
    return ix;
}

Test(search, fast_loops_give_the_generic_hits_bit_for_bit_despite_deletions) {
    static corpus c;
    char dir[512];
    static uint8_t dead[NDOCS];
    sahel_index *ix = build_open(&c, 20240611, "search-deletions", dir, sizeof dir, dead);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_geq(info.nsegments, 2, "one segment: the test needs several");

    rng r = {77};
    static const size_t K[] = {1, 5, 10, 10, 50};
    static const double B[] = {0, 0, 1.0, 0.3};
    static hit fast[64], all[64];
    uint64_t skipped[FAM_COUNT] = {0};
    for (int fam = 0; fam < FAM_COUNT; fam++)
        for (int i = 0; i < NQUERIES; i++) {
            char q[256];
            gen_query(&c, &r, fam, q, sizeof q);
            sahel_search_opts o = {.k = K[rng_below(&r, 5)], .b = B[rng_below(&r, 4)],
                                   .title_weight = rng_below(&r, 2) ? 0 : 1.5};
            uint64_t tf, ta;
            int ef, ea;
            size_t nf = search(ix, q, &o, fast, 64, &tf, &ef);
            o.count_all = 1;
            size_t na = search(ix, q, &o, all, 64, &ta, &ea);
            cr_assert(ea, "%s: count_all gave an inexact total", q);
            cr_assert_eq(nf, na, "%s (k %zu, b %g): %zu hits, %zu from the generic path", q, o.k,
                         o.b, nf, na);
            for (size_t h = 0; h < nf; h++) {
                cr_assert_str_eq(fast[h].id, all[h].id, "%s (k %zu, b %g): hit %zu", q, o.k, o.b,
                                 h);
                cr_assert(fast[h].score == all[h].score,
                          "%s (k %zu, b %g): hit %zu scores %.17g, the generic path %.17g", q,
                          o.k, o.b, h, fast[h].score, all[h].score);
                uint32_t d = (uint32_t)strtoul(fast[h].id + 1, NULL, 10);
                cr_assert(d < NDOCS && !dead[d], "%s: deleted article %s returned", q,
                          fast[h].id);
            }
            if (ef)
                cr_assert_eq(tf, ta, "%s: an exact total of %llu, count_all says %llu", q,
                             (unsigned long long)tf, (unsigned long long)ta);
            else
                cr_assert_leq(tf, ta, "%s: a lower bound above the true total", q);
            skipped[fam] += !ef;
        }
    sahel_index_close(ix);
    rm_rf(dir);
    corpus_free(&c);
    for (int fam = 0; fam < FAM_COUNT; fam++)
        cr_expect_gt(skipped[fam] * 4, NQUERIES, "%s: %llu of %d searches skipped anything",
                     FAM_NAME[fam], (unsigned long long)skipped[fam], NQUERIES);
}

/* Long documents: a phrase's positions are read gap by gap, and a gap of
 * a document this long takes one, two or three bytes.  Doc j (0..4) holds
 * "alpha beta" j times, 17000 words apart, among 60000 words, and the two
 * words apart and in the other order, placed so that the gaps of the two
 * words differ (a three-byte gap of alpha where beta has two two-byte
 * ones); doc 5 holds the phrase in its title only.  All bodies are alike
 * in length, so that more occurrences rank higher. */
Test(search, phrase_in_long_documents_counts_every_occurrence) {
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-long", SAHEL_TEST_TMP);
    rm_rf(dir);
    enum { LEN = 60000 };
    char *body = malloc((size_t)LEN * 6 + 1);
    cr_assert(body);
    sahel_writer *w = writer(dir, 0);
    for (uint32_t j = 0; j < 6; j++) {
        size_t len = 0;
        for (uint32_t p = 0; p < LEN; p++) {
            const char *word = "zz";
            /* alpha without beta next, beta without alpha before */
            if (p == 100 || p == 301 || p == 25000 || p == 40002) word = "alpha";
            if (p == 200 || p == 300 || p == 10000 || p == 59000) word = "beta";
            for (uint32_t k = 0; k < j && j < 5; k++) {
                if (p == 3 + k * 17000) word = "alpha";
                if (p == 4 + k * 17000) word = "beta";
            }
            len += (size_t)sprintf(body + len, "%s%s", p ? " " : "", word);
        }
        add_doc(w, j, j == 5 ? "alpha beta gamma" : "plain", body);
    }
    commit(w);
    free(body);
    sahel_index *ix = open_index(dir);
    static hit fast[16], all[16];
    for (int ca = 0; ca < 2; ca++) {
        sahel_search_opts o = {.k = 10, .count_all = ca};
        uint64_t total;
        int exact;
        hit *h = ca ? all : fast;
        size_t n = search(ix, "\"alpha beta\"", &o, h, 16, &total, &exact);
        cr_assert_eq(n, 5, "%zu hits", n);
        cr_assert_eq(total, 5);
        uint32_t next = 4; /* docs 4, 3, 2, 1 in turn, doc 5 anywhere */
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(h[i].id, "d5")) continue;
            char want[16];
            snprintf(want, sizeof want, "d%u", next--);
            cr_assert_str_eq(h[i].id, want, "hit %zu", i);
        }
        n = search(ix, "\"beta alpha\"", &o, h, 16, &total, &exact);
        cr_assert_eq(n, 6, "\"beta alpha\": %zu hits", n); /* words 300, 301 of every doc */
    }
    for (size_t i = 0; i < 5; i++) cr_assert(fast[i].score == all[i].score);
    sahel_index_close(ix);
    rm_rf(dir);
}

/* ---- conjunctions of dense lists, phrases against a brute-force count --- */

/* A corpus of controlled words: w0..w3 in a doc's title and body with the
 * probabilities below, independently, among 2 to 40 filler words, so that
 * a conjunction's lists share a block's docs by the dozen (the candidates
 * of one window) and a field-restricted term holds docs outside its field.
 * Written in two segments, with every 5th article deleted. */
static const double DENSE_P[4] = {0.5, 0.3, 0.25, 0.04};

static void build_dense(const char *dir, uint32_t ndocs) {
    rm_rf(dir);
    rng r = {4242};
    static char title[256], body[1024];
    for (int part = 0; part < 2; part++) {
        sahel_writer *w = writer(dir, part > 0);
        for (uint32_t d = part * ndocs / 2; d < (part + 1) * ndocs / 2; d++) {
            char *f[2] = {title, body};
            for (int k = 0; k < 2; k++) {
                size_t len = 0;
                uint32_t nfill = 2 + rng_below(&r, k ? 39 : 5);
                for (uint32_t i = 0; i < nfill; i++)
                    len += (size_t)sprintf(f[k] + len, "%s%s%s", len ? " " : "",
                                           SYLL[rng_below(&r, 16)], SYLL[rng_below(&r, 16)]);
                for (int t = 0; t < 4; t++)
                    if (rng_unit(&r) < DENSE_P[t] / (k ? 1 : 3))
                        len += (size_t)sprintf(f[k] + len, " w%dx", t);
            }
            add_doc(w, d, title, body);
        }
        commit(w);
    }
    delete_every(dir, 3, 5, ndocs);
}

Test(search, conjunction_of_dense_lists_gives_the_generic_hits) {
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-dense-and", SAHEL_TEST_TMP);
    build_dense(dir, 6000);
    sahel_index *ix = open_index(dir);
    static const char *const Q[] = {
        "w0x AND w1x",         "w1x AND w0x AND w2x", "w3x AND w0x",
        "title:w0x AND w1x",   "w0x AND body:w2x",    "title:w1x AND title:w0x",
        "+w0x +w1x +w2x +w3x", "w2x AND w2x",
    };
    static const size_t K[] = {1, 3, 10, 64};
    static const double B[] = {0.75, 0, 1.0};
    static hit fast[64], all[64];
    for (size_t q = 0; q < sizeof Q / sizeof *Q; q++)
        for (size_t k = 0; k < 4; k++)
            for (size_t bi = 0; bi < 3; bi++) {
                sahel_search_opts o = {.k = K[k], .b = B[bi]};
                uint64_t tf, ta;
                int ef, ea;
                size_t nf = search(ix, Q[q], &o, fast, 64, &tf, &ef);
                o.count_all = 1;
                size_t na = search(ix, Q[q], &o, all, 64, &ta, &ea);
                cr_assert_eq(nf, na, "%s (k %zu): %zu hits, the generic path %zu", Q[q], o.k,
                             nf, na);
                for (size_t h = 0; h < nf; h++) {
                    cr_assert_str_eq(fast[h].id, all[h].id, "%s (k %zu, b %g): hit %zu", Q[q],
                                     o.k, o.b, h);
                    cr_assert(fast[h].score == all[h].score,
                              "%s (k %zu): hit %zu scores %.17g, not %.17g", Q[q], o.k, h,
                              fast[h].score, all[h].score);
                    uint32_t d = (uint32_t)strtoul(fast[h].id + 1, NULL, 10);
                    cr_assert_neq(d % 5, 3, "%s: deleted article %s returned", Q[q], fast[h].id);
                }
                if (ef)
                    cr_assert_eq(tf, ta, "%s: exact total %llu, count_all says %llu", Q[q],
                                 (unsigned long long)tf, (unsigned long long)ta);
            }
    sahel_index_close(ix);
    rm_rf(dir);
}

/* Two-word phrases on bodies of 3 words drawn with a doc's own odds, from
 * a few words to 40000 (position gaps of one, two and three bytes, runs
 * of 1 to thousands of positions, a word repeated: "aa aa aa"), and
 * titles of the same words: each hit's phrase frequencies, read from its
 * explanation, against a count over the words as written, and every doc
 * with a count above 0 found. */
static const char *const PW[3] = {"aax", "bbx", "ccx"};

static uint32_t count_bigram(const uint8_t *tok, uint32_t n, int x, int y) {
    uint32_t c = 0;
    for (uint32_t i = 0; i + 1 < n; i++) c += tok[i] == x && tok[i + 1] == y;
    return c;
}

/* The "title tf" and "body tf" of a phrase's explanation line. */
static void explained_tfs(const char *text, uint32_t *t, uint32_t *b) {
    const char *pt = strstr(text, "title tf "), *pb = strstr(text, "body tf ");
    cr_assert(pt && pb, "no tfs in: %s", text);
    *t = (uint32_t)strtoul(pt + 9, NULL, 10);
    *b = (uint32_t)strtoul(pb + 8, NULL, 10);
}

Test(search, phrase_frequencies_match_a_count_over_the_words) {
    enum { NPD = 48, MAXLEN = 40000 };
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-phrase-count", SAHEL_TEST_TMP);
    rm_rf(dir);
    rng r = {2718};
    static uint8_t btok[NPD][MAXLEN], ttok[NPD][8];
    static uint32_t blen[NPD], tlen[NPD];
    char *body = malloc((size_t)MAXLEN * 4 + 1);
    cr_assert(body);
    sahel_writer *w = writer(dir, 0);
    for (uint32_t d = 0; d < NPD; d++) {
        static const uint32_t LEN[] = {3, 50, 700, 5000, MAXLEN};
        static const double SPARSE[] = {0, 0.9, 0.99, 0.9995};
        blen[d] = 1 + rng_below(&r, LEN[d % 5]);
        double sparse = SPARSE[d % 4]; /* the odds of "zz", not a phrase word */
        size_t len = 0;
        for (uint32_t i = 0; i < blen[d]; i++) {
            int t = rng_unit(&r) < sparse ? 3 : (int)rng_below(&r, 3);
            btok[d][i] = (uint8_t)t;
            len += (size_t)sprintf(body + len, "%s%s", i ? " " : "", t == 3 ? "zz" : PW[t]);
        }
        char title[64];
        size_t tl = 0;
        tlen[d] = rng_below(&r, 7);
        for (uint32_t i = 0; i < tlen[d]; i++) {
            ttok[d][i] = (uint8_t)rng_below(&r, 3);
            tl += (size_t)sprintf(title + tl, "%s%s", i ? " " : "", PW[ttok[d][i]]);
        }
        title[tl] = '\0';
        add_doc(w, d, title, body);
    }
    commit(w);
    free(body);
    sahel_index *ix = open_index(dir);
    for (int x = 0; x < 3; x++)
        for (int y = 0; y < 3; y++)
            for (int ca = 0; ca < 2; ca++) {
                char q[32];
                snprintf(q, sizeof q, "\"%s %s\"", PW[x], PW[y]);
                sahel_search_opts o = {.k = NPD, .count_all = ca, .explain = 1};
                sahel_hits *hits = NULL;
                sahel_error err = {0};
                cr_assert_eq(sahel_search(ix, q, strlen(q), &o, &hits, &err), 0, "%s", err.msg);
                size_t n = sahel_hits_count(hits), want = 0;
                for (uint32_t d = 0; d < NPD; d++)
                    want += count_bigram(btok[d], blen[d], x, y) +
                                count_bigram(ttok[d], tlen[d], x, y) >
                            0;
                cr_assert_eq(n, want, "%s: %zu hits, %zu docs hold it", q, n, want);
                for (size_t i = 0; i < n; i++) {
                    const char *id, *text;
                    size_t len;
                    cr_assert_eq(sahel_hits_id(hits, i, &id, &len, NULL, &err), 0, "%s", err.msg);
                    cr_assert_eq(sahel_hits_explain(hits, i, &text, &err), 0, "%s", err.msg);
                    uint32_t d = (uint32_t)strtoul(id + 1, NULL, 10), pt, pb;
                    explained_tfs(text, &pt, &pb);
                    cr_assert_eq(pb, count_bigram(btok[d], blen[d], x, y), "%s in d%u's body", q,
                                 d);
                    cr_assert_eq(pt, count_bigram(ttok[d], tlen[d], x, y), "%s in d%u's title", q,
                                 d);
                }
                sahel_hits_free(hits);
            }
    sahel_index_close(ix);
    rm_rf(dir);
}

/* ==== block impacts ======================================================
 * Each skip record holds its block's impact (postings.c): the largest x of
 * its docs at b = 0.75, title weight 3 and the segment's own average
 * lengths, which the ranked-OR and conjunction loops scale to the index's
 * averages and the query's weight to skip whole blocks.  Checked here: the
 * impact bounds every doc of its block (and is that max, not something
 * looser), under other averages and weights once scaled, in segments the
 * writer made and in the one a merge made; and the fast loops still give
 * the generic hits with a title weight above 3 (the weight's scale above
 * 1) over segments whose averages differ from the index's. */

/* bm25's x of a doc (search.c), at b = 0.75. */
static double impact_x(uint32_t tft, uint32_t tfb, uint32_t lent, uint32_t lenb, double w,
                       double avgt, double avgb) {
    double x = 0;
    if (tft) x += w * tft / (0.25 + 0.75 / avgt * lent);
    if (tfb) x += tfb / (0.25 + 0.75 / avgb * lenb);
    return x;
}

/* Every block of every term of more than one block in every segment of
 * ix; returns how many blocks were checked. */
static size_t check_impacts(const sahel_index *ix) {
    size_t nchecked = 0;
    /* other averages and a heavier title: the impact, scaled, still bounds */
    const double W2 = 7.5, GROW = 1.37;
    for (size_t si = 0; si < ix->nsegs; si++) {
        const sh_segment *seg = &ix->segs[si];
        double at = sh_impact_avg(seg->sum_len_title, seg->ndocs);
        double ab = sh_impact_avg(seg->sum_len_body, seg->ndocs);
        for (uint32_t t = 0; t < seg->nterms; t++) {
            const char *term;
            size_t len;
            sh_terminfo ti;
            sahel_error err = {0};
            cr_assert_eq(sh_segment_term(seg, t, &term, &len, &ti, &err), 0, "%s", err.msg);
            if (ti.df <= SH_BLOCK) continue;
            sh_postings pc;
            cr_assert_eq(sh_postings_init(&pc, seg, &ti, &err), 0, "%s", err.msg);
            cr_assert_eq(sh_postings_next(&pc), 0, "%s", err.msg);
            while (pc.doc != SH_NO_DOC) {
                uint32_t blk = pc.block;
                double mx = 0, mx2 = 0;
                while (pc.doc != SH_NO_DOC && pc.block == blk) {
                    uint32_t d = pc.doc, tft = sh_postings_tft(&pc), tfb = sh_postings_tfb(&pc);
                    uint32_t lt = sh_segment_len_title(seg, d), lb = sh_segment_len_body(seg, d);
                    mx = fmax(mx, impact_x(tft, tfb, lt, lb, 3.0, at, ab));
                    mx2 = fmax(mx2, impact_x(tft, tfb, lt, lb, W2, at * GROW, ab));
                    cr_assert_eq(sh_postings_next(&pc), 0, "%s", err.msg);
                }
                double imp = sh_postings_impact(pc.skip + (size_t)blk * SH_SKIPREC);
                cr_assert(mx > 0 && mx <= imp, "%.*s block %u: x %.17g above its impact %.17g",
                          (int)len, term, blk, mx, imp);
                cr_assert(imp <= mx * (1 + 2e-6), "%.*s block %u: impact %.17g, max x %.17g",
                          (int)len, term, blk, imp, mx);
                cr_assert(mx2 <= imp * (W2 / 3.0) * GROW,
                          "%.*s block %u: scaled impact below x %.17g", (int)len, term, blk, mx2);
                nchecked++;
            }
        }
    }
    return nchecked;
}

/* The fast loops against the generic path for the query families at
 * title weight w (b left at its default 0.75, where impacts apply). */
static void fast_equals_generic(sahel_index *ix, const corpus *c, double w, uint64_t seed) {
    rng r = {seed};
    static hit fast[64], all[64];
    for (int fam = 0; fam < FAM_COUNT; fam++)
        for (int i = 0; i < NQUERIES / 2; i++) {
            char q[256];
            gen_query(c, &r, fam, q, sizeof q);
            sahel_search_opts o = {.k = rng_below(&r, 2) ? 10 : 3, .title_weight = w};
            uint64_t tf, ta;
            int ef, ea;
            size_t nf = search(ix, q, &o, fast, 64, &tf, &ef);
            o.count_all = 1;
            size_t na = search(ix, q, &o, all, 64, &ta, &ea);
            cr_assert_eq(nf, na, "%s (w %g): %zu hits, %zu from the generic path", q, w, nf, na);
            for (size_t h = 0; h < nf; h++) {
                cr_assert_str_eq(fast[h].id, all[h].id, "%s (w %g): hit %zu", q, w, h);
                cr_assert(fast[h].score == all[h].score, "%s (w %g): hit %zu scores %.17g, %.17g",
                          q, w, h, fast[h].score, all[h].score);
            }
        }
}

Test(search, block_impacts_bound_their_blocks_before_and_after_a_merge) {
    static corpus c;
    char dir[512];
    static uint8_t dead[NDOCS];
    sahel_index *ix = build_open(&c, 20251123, "search-impacts", dir, sizeof dir, dead);
    sahel_error err = {0};
    cr_assert_geq(ix->nsegs, 2);
    cr_assert_gt(check_impacts(ix), 100, "too few blocks to say anything");
    fast_equals_generic(ix, &c, 6.0, 91);
    fast_equals_generic(ix, &c, 0, 92);
    sahel_index_close(ix);

    sahel_writer *w = writer(dir, 1);
    cr_assert_eq(sahel_writer_optimize(w, &err), 0, "%s", err.msg);
    commit(w);
    ix = open_index(dir);
    cr_assert_eq(ix->nsegs, 1, "the merge left %zu segments", ix->nsegs);
    cr_assert_gt(check_impacts(ix), 100);
    fast_equals_generic(ix, &c, 4.5, 93);
    sahel_index_close(ix);
    rm_rf(dir);
    corpus_free(&c);
}

/* q run with o on the fast paths and on the generic one (count_all):
 * the same hits, bit for bit, in fast[0..n), n returned. */
static size_t same_as_generic(sahel_index *ix, const char *q, sahel_search_opts o, hit *fast,
                              hit *all, size_t cap) {
    uint64_t tf, ta;
    int ef, ea;
    size_t nf = search(ix, q, &o, fast, cap, &tf, &ef);
    o.count_all = 1;
    size_t na = search(ix, q, &o, all, cap, &ta, &ea);
    cr_assert_eq(nf, na, "%s (k %zu): %zu hits, %zu from the generic path", q, o.k, nf, na);
    for (size_t h = 0; h < nf; h++) {
        cr_assert_str_eq(fast[h].id, all[h].id, "%s (k %zu): hit %zu", q, o.k, h);
        cr_assert(fast[h].score == all[h].score, "%s (k %zu): hit %zu scores %.17g, %.17g", q,
                  o.k, h, fast[h].score, all[h].score);
    }
    return nf;
}

/* A segment past SH_LENS_CACHED docs (search.c): the ranked-OR loop tries
 * each candidate's tfs over its block's smallest lengths before its own
 * lengths, and must still give the generic hits.  Short articles over a
 * small vocabulary, so that words span many blocks, some with long
 * titles and bodies (weak tfs) and some short (strong). */
#define BIG_NDOCS 140000u
Test(search, ranked_or_on_a_segment_too_large_for_the_cache_gives_the_generic_hits) {
    static const char *const V[] = {"alpha", "bravo", "delta", "echo", "golf", "hotel",
                                    "india", "kilo", "lima", "mike", "oscar", "papa"};
    enum { NV = sizeof V / sizeof V[0] };
    char dir[512];
    sahel_writer *w = fresh_writer(dir, sizeof dir, "search-big");
    rng r = {4242};
    for (uint32_t d = 0; d < BIG_NDOCS; d++) {
        char title[64], body[256];
        size_t tl = 0, bl = 0;
        uint32_t nt = 1 + rng_below(&r, 3), nb = rng_below(&r, 4) ? 2 + rng_below(&r, 6)
                                                                   : 20 + rng_below(&r, 10);
        for (uint32_t i = 0; i < nt; i++)
            tl += (size_t)snprintf(title + tl, sizeof title - tl, "%s ",
                                   V[rng_below(&r, 1 + rng_below(&r, NV))]);
        for (uint32_t i = 0; i < nb; i++)
            bl += (size_t)snprintf(body + bl, sizeof body - bl, "%s ",
                                   V[rng_below(&r, 1 + rng_below(&r, NV))]);
        add_doc(w, d, title, body);
    }
    commit(w);
    sahel_index *ix = open_index(dir);
    static hit fast[64], all[64];
    for (int i = 0; i < 40; i++) {
        char q[128];
        size_t len = 0;
        uint32_t nw = 1 + (uint32_t)i % 3;
        for (uint32_t j = 0; j < nw; j++)
            len += (size_t)snprintf(q + len, sizeof q - len, "%s%s", j ? " " : "",
                                    V[rng_below(&r, NV)]);
        sahel_search_opts o = {.k = 10, .title_weight = i % 4 == 3 ? 5.0 : 0};
        same_as_generic(ix, q, o, fast, all, 64);
    }
    sahel_index_close(ix);
    rm_rf(dir);
}

/* ==== two-word phrases a window of documents at a time ===================
 * search.c reads a two-word phrase over windows of up to 128 documents at
 * once where both words are common (phrase2_window): each word's runs in
 * the window decoded by one call (sh_read_gaps_padded), made into keys of
 * doc, field and position, and the shared keys found by one merge
 * (sh_intersect_sorted, on lists that may repeat a value).  Checked here:
 * the reader and the merge on their own, then the phrase counts against a
 * count over the words as written, on a corpus that sends most documents
 * through the windows. */

/* LEB128 of v at p; its length. */
static size_t put_varint(uint8_t *p, uint32_t v) {
    size_t n = 0;
    for (; v >= 0x80; v >>= 7) p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* Runs of 0 to 70 gaps of one, two, three and five bytes, with varints
 * of other runs before and after (the reader steps eight bytes at a time
 * whatever they hold, and a varint may begin in the byte before a step),
 * under each instruction set: the values and the end a plain reader
 * gives; NULL for a sum past 32 bits or a run the input ends inside,
 * which must not be read past its end (ASan). */
Test(search, padded_gap_reader_matches_a_plain_leb128_reader) {
    static uint8_t buf[4096];
    static uint32_t got[80 + SH_GAPS_PAD], want[80];
    rng r = {1234};
    int best = sh_codec_set_isa(-1);
    for (int isa = SH_ISA_SCALAR; isa <= best; isa++) {
        sh_codec_set_isa(isa);
        for (int t = 0; t < 20000; t++) {
            uint32_t n = rng_below(&r, 71), kind = rng_below(&r, 5);
            size_t len = 0;
            for (uint32_t i = rng_below(&r, 9); i > 0; i--)
                len += put_varint(buf + len, rng_below(&r, 400));
            size_t start = len;
            uint64_t sum = 0;
            for (uint32_t i = 0; i < n; i++) {
                uint32_t v = kind == 0   ? rng_below(&r, 128)          /* one byte */
                             : kind == 1 ? 128 + rng_below(&r, 16256)   /* two */
                             : kind == 2 ? rng_below(&r, 20000)         /* one to three */
                             : kind == 3 ? (rng_below(&r, 9) ? rng_below(&r, 300)
                                                             : rng_below(&r, 1u << 22))
                                         : (i == n / 2 || i == n / 2 + 1 ? 1u << 31
                                                                         : rng_below(&r, 99));
                len += put_varint(buf + len, v);
                sum += v;
                want[i] = (uint32_t)sum;
            }
            size_t stop = len;
            for (uint32_t i = rng_below(&r, 12); i > 0; i--)
                len += put_varint(buf + len, rng_below(&r, 70000));
            int cut = n && !rng_below(&r, 8); /* the input ends inside the run */
            if (cut) len = start + rng_below(&r, (uint32_t)(stop - start));
            /* a copy of exactly the input, so that ASan sees a read past it */
            uint8_t *in = malloc(len ? len : 1);
            cr_assert_not_null(in);
            memcpy(in, buf, len);
            const uint8_t *end = sh_read_gaps_padded(in + start, in + len, n, got);
            ptrdiff_t at = end ? end - in : -1; /* -1: refused */
            free(in);
            if (cut) {
                cr_assert_eq(at, -1, "isa %d, run %d: a run cut short read", isa, t);
                continue;
            }
            if (sum > UINT32_MAX) {
                cr_assert_eq(at, -1, "isa %d, run %d: a sum past 32 bits read", isa, t);
                continue;
            }
            cr_assert_eq(at, (ptrdiff_t)stop,
                         "isa %d, run %d (%u gaps, kind %u): ends at %td, not %zu", isa, t, n,
                         kind, at, stop);
            for (uint32_t i = 0; i < n; i++)
                cr_assert_eq(got[i], want[i], "isa %d, run %d (kind %u): value %u is %u, not %u",
                             isa, t, kind, i, got[i], want[i]);
        }
    }
    sh_codec_set_isa(-1);
}

/* Two ascending lists with repeated values (two tokens at one position):
 * every value they share comes out at least once, ascending, nothing
 * else, and no more than na + nb of them. */
Test(search, merge_of_lists_that_repeat_values_finds_every_shared_one) {
    enum { MAXN = 300 };
    static uint32_t a[MAXN], b[MAXN], out[2 * MAXN + SH_POSTINGS_AND_ROOM];
    rng r = {99};
    int best = sh_codec_set_isa(-1);
    for (int isa = SH_ISA_SCALAR; isa <= best; isa++) {
        sh_codec_set_isa(isa);
        for (int t = 0; t < 3000; t++) {
            uint32_t na = rng_below(&r, MAXN), nb = rng_below(&r, MAXN);
            uint32_t span = 1 + rng_below(&r, 600);
            uint32_t *l[2] = {a, b}, n[2] = {na, nb};
            for (int k = 0; k < 2; k++) {
                uint32_t v = rng_below(&r, 4);
                for (uint32_t i = 0; i < n[k]; i++) {
                    if (rng_below(&r, 3)) v += rng_below(&r, 1 + span / 50); /* else a repeat */
                    l[k][i] = v;
                }
            }
            size_t m = sh_intersect_sorted(a, na, b, nb, out);
            cr_assert_leq(m, (size_t)na + nb);
            for (size_t i = 1; i < m; i++)
                cr_assert_leq(out[i - 1], out[i], "isa %d, run %d: not ascending", isa, t);
            /* each distinct value of a: in out iff in b */
            size_t j = 0, o = 0;
            for (uint32_t i = 0; i < na; i++) {
                if (i && a[i] == a[i - 1]) continue;
                while (j < nb && b[j] < a[i]) j++;
                int shared = j < nb && b[j] == a[i];
                while (o < m && out[o] < a[i]) {
                    cr_assert_fail("isa %d, run %d: %u written, not shared", isa, t, out[o]);
                    o++;
                }
                int written = o < m && out[o] == a[i];
                cr_assert_eq(written, shared, "isa %d, run %d: value %u shared %d, written %d",
                             isa, t, a[i], shared, written);
                while (o < m && out[o] == a[i]) o++;
            }
            cr_assert_eq(o, m, "isa %d, run %d: %u written past a's values", isa, t, out[o]);
        }
    }
    sh_codec_set_isa(-1);
}

/* A corpus where "pw qw" is read a window at a time: both words in almost
 * every body, a few times each among filler words, so that the windows
 * hold dozens of docs with short runs.  Planted: the phrase at a body's
 * first position and at its last, in titles, "pw pw qw qw" (a word
 * repeated), in the first and last docs of the 128-doc blocks, and in
 * long bodies past word 16384 (position gaps of three bytes).  qw is left
 * out of every 9th body and pw of every 13th, so that the two words'
 * blocks, and the windows' ends, fall at different docs.  Two segments;
 * every 7th article deleted. */
#define WIN_NDOCS 2600u
#define WIN_LONG 20000u /* the words of a long body */

typedef struct wdoc {
    uint8_t *tok; /* 0 filler, 1 pw, 2 qw */
    uint32_t n;
    uint8_t ttok[4];
    uint32_t tn;
} wdoc;

static void wdoc_make(wdoc *w, uint32_t d, rng *r) {
    int longdoc = d % 97 == 50;
    w->n = longdoc ? WIN_LONG : 20 + rng_below(r, 300);
    w->tok = calloc(w->n, 1);
    cr_assert_not_null(w->tok);
    uint32_t occ = 1 + rng_below(r, 6);
    for (uint32_t k = 0; k < occ; k++) {
        if (d % 13 != 7) w->tok[rng_below(r, w->n)] = 1;
        if (d % 9 != 4) w->tok[rng_below(r, w->n)] = 2;
    }
    uint32_t inblock = d % SH_BLOCK;
    if (rng_below(r, 6) == 0 || inblock == 0 || inblock == SH_BLOCK - 1 || d == WIN_NDOCS - 1) {
        uint32_t at = rng_below(r, w->n - 1);
        if (longdoc) at = 16384 + rng_below(r, WIN_LONG - 16385);
        w->tok[at] = 1, w->tok[at + 1] = 2;
    }
    if (d % 17 == 1) w->tok[0] = 1, w->tok[1] = 2;               /* at position 0 */
    if (d % 19 == 2) w->tok[w->n - 2] = 1, w->tok[w->n - 1] = 2; /* at the last */
    if (d % 23 == 3) {                                           /* pw pw qw qw */
        uint32_t at = rng_below(r, w->n - 3);
        w->tok[at] = w->tok[at + 1] = 1;
        w->tok[at + 2] = w->tok[at + 3] = 2;
    }
    w->tn = rng_below(r, 4);
    for (uint32_t i = 0; i < w->tn; i++) w->ttok[i] = (uint8_t)rng_below(r, 3);
}

static uint32_t wcount(const uint8_t *tok, uint32_t n, int x, int y) {
    uint32_t c = 0;
    for (uint32_t i = 0; i + 1 < n; i++) c += tok[i] == x && tok[i + 1] == y;
    return c;
}

static char *wtext(const uint8_t *tok, uint32_t n, rng *r) {
    static const char *const FILL[] = {"lo", "mi", "ra", "du", "se", "ti"};
    char *s = malloc((size_t)n * 4 + 1);
    cr_assert_not_null(s);
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%s%s", i ? " " : "",
                               tok[i] == 1 ? "pw" : tok[i] == 2 ? "qw" : FILL[rng_below(r, 6)]);
    s[len] = '\0';
    return s;
}

Test(search, phrase_read_a_window_at_a_time_counts_every_occurrence) {
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-phrase-window", SAHEL_TEST_TMP);
    rm_rf(dir);
    static wdoc doc[WIN_NDOCS];
    rng r = {5150};
    for (int part = 0; part < 2; part++) {
        sahel_writer *w = writer(dir, part > 0);
        for (uint32_t d = part * WIN_NDOCS / 2; d < (part + 1) * WIN_NDOCS / 2; d++) {
            wdoc_make(&doc[d], d, &r);
            char *title = wtext(doc[d].ttok, doc[d].tn, &r);
            char *body = wtext(doc[d].tok, doc[d].n, &r);
            add_doc(w, d, title, body);
            free(title);
            free(body);
        }
        commit(w);
    }
    delete_every(dir, 6, 7, WIN_NDOCS);
    sahel_index *ix = open_index(dir);

    static const int Q[][2] = {{1, 2}, {2, 1}, {1, 1}, {2, 2}};
    static hit fast[WIN_NDOCS], all[WIN_NDOCS];
    for (size_t q = 0; q < sizeof Q / sizeof *Q; q++) {
        int x = Q[q][0], y = Q[q][1];
        char qs[32];
        snprintf(qs, sizeof qs, "\"%s %s\"", x == 1 ? "pw" : "qw", y == 1 ? "pw" : "qw");
        size_t want = 0;
        for (uint32_t d = 0; d < WIN_NDOCS; d++)
            want += d % 7 != 6 && wcount(doc[d].tok, doc[d].n, x, y) +
                                          wcount(doc[d].ttok, doc[d].tn, x, y) >
                                      0;
        cr_assert_gt(want, WIN_NDOCS / 10, "%s: too few docs hold it to say anything", qs);
        /* every hit, with its counts from the explanation */
        sahel_search_opts o = {.k = WIN_NDOCS, .explain = 1};
        sahel_hits *hits = NULL;
        sahel_error err = {0};
        cr_assert_eq(sahel_search(ix, qs, strlen(qs), &o, &hits, &err), 0, "%s", err.msg);
        size_t n = sahel_hits_count(hits);
        cr_assert_eq(n, want, "%s: %zu hits, %zu live docs hold it", qs, n, want);
        for (size_t i = 0; i < n; i++) {
            const char *id, *text;
            size_t len;
            cr_assert_eq(sahel_hits_id(hits, i, &id, &len, NULL, &err), 0, "%s", err.msg);
            uint32_t d = (uint32_t)strtoul(id + 1, NULL, 10), pt, pb;
            cr_assert(d < WIN_NDOCS && d % 7 != 6, "%s: deleted d%u returned", qs, d);
            if (i % 7 && d % SH_BLOCK > 1 && d % SH_BLOCK < SH_BLOCK - 2 && d % 97 != 50)
                continue; /* explanations are slow: a sample, and every planted case */
            cr_assert_eq(sahel_hits_explain(hits, i, &text, &err), 0, "%s", err.msg);
            explained_tfs(text, &pt, &pb);
            cr_assert_eq(pb, wcount(doc[d].tok, doc[d].n, x, y), "%s in d%u's body", qs, d);
            cr_assert_eq(pt, wcount(doc[d].ttok, doc[d].tn, x, y), "%s in d%u's title", qs, d);
        }
        sahel_hits_free(hits);
        /* the same hits, scores to the bit, as the generic path, at each k */
        static const size_t K[] = {1, 10, 100, WIN_NDOCS};
        for (size_t k = 0; k < 4; k++) {
            sahel_search_opts of = {.k = K[k]};
            uint64_t tf, ta;
            int ef, ea;
            size_t nf = search(ix, qs, &of, fast, WIN_NDOCS, &tf, &ef);
            of.count_all = 1;
            size_t na = search(ix, qs, &of, all, WIN_NDOCS, &ta, &ea);
            cr_assert_eq(nf, na, "%s (k %zu): %zu hits, the generic path %zu", qs, K[k], nf, na);
            for (size_t h = 0; h < nf; h++) {
                cr_assert_str_eq(fast[h].id, all[h].id, "%s (k %zu): hit %zu", qs, K[k], h);
                cr_assert(fast[h].score == all[h].score,
                          "%s (k %zu): hit %zu scores %.17g, not %.17g", qs, K[k], h,
                          fast[h].score, all[h].score);
            }
            if (ef) cr_assert_eq(tf, ta, "%s (k %zu): exact total %llu, not %llu", qs, K[k],
                                 (unsigned long long)tf, (unsigned long long)ta);
        }
    }
    sahel_index_close(ix);
    rm_rf(dir);
    for (uint32_t d = 0; d < WIN_NDOCS; d++) free(doc[d].tok);
}

/* Ranked OR bounds a frequent word's blocks together over a window as wide
 * as a rare word's block (search.c, shallow_span), and it must bound every
 * block it covers: here the frequent word is weak in its early blocks
 * (once in long articles) and strong in its late ones (five times in
 * five-word articles, without the rare word), and those late articles
 * outscore the rare word's (long articles, once).  A bound taken from the
 * early blocks alone would leave them out. */
Test(search, ranked_or_windows_bound_every_block_they_cover) {
    static const char *const F[] = {"alpha", "delta", "echo", "golf", "hotel", "india"};
    char dir[512];
    sahel_writer *w = fresh_writer(dir, sizeof dir, "search-windows");
    rng r = {977};
    enum { N = 4000 };
    static char body[4096];
    for (uint32_t d = 0; d < N; d++) {
        size_t bl = 0, nfill = 20 + rng_below(&r, 30);
        int rare = d % 200 == 7, strong = d >= N / 2 && d % 97 == 3 && !rare;
        if (strong) {
            bl = (size_t)snprintf(body, sizeof body, "bravo bravo bravo bravo bravo");
        } else {
            if (rare) {
                nfill = 200;
                bl += (size_t)snprintf(body + bl, sizeof body - bl, "zulu ");
            }
            if (d % 3 == 0) bl += (size_t)snprintf(body + bl, sizeof body - bl, "bravo ");
            for (size_t i = 0; i < nfill; i++)
                bl += (size_t)snprintf(body + bl, sizeof body - bl, "%s ", F[rng_below(&r, 6)]);
        }
        add_doc(w, d, "", body);
    }
    commit(w);
    sahel_index *ix = open_index(dir);
    static hit fast[64], all[64];
    static const size_t K[] = {1, 3, 10, 25};
    int strong_seen = 0;
    for (size_t i = 0; i < sizeof K / sizeof K[0]; i++) {
        sahel_search_opts o = {.k = K[i]};
        size_t nf = same_as_generic(ix, "zulu bravo", o, fast, all, 64);
        for (size_t h = 0; h < nf; h++) {
            unsigned long d = strtoul(fast[h].id + 1, NULL, 10);
            strong_seen |= d >= N / 2 && d % 97 == 3;
        }
    }
    cr_assert(strong_seen, "the strong late articles must rank: the corpus lost its shape");
    sahel_index_close(ix);
    rm_rf(dir);
}

/* A search split over threads (every segment cut into ranges, the split
 * minimums lowered) meets damage as one thread does: the same error,
 * naming the damaged postings and the file, or, where the damage lies
 * outside what a query reads, the same hits.  The index is one segment
 * over SH_VERIFY_ON_OPEN (8 MiB), so that opening it does not checksum
 * the postings and the searches are what finds the damage. */
Test(search, a_split_search_meets_damage_as_one_thread_does, .timeout = 120) {
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-split-damage", SAHEL_TEST_TMP);
    rm_rf(dir);
    rng r = {515};
    static char title[128], body[4096];
    sahel_writer *w = writer(dir, 0);
    for (uint32_t d = 0; d < 24000; d++) {
        size_t len = 0;
        snprintf(title, sizeof title, "%s%s w%ux", SYLL[rng_below(&r, 16)], SYLL[rng_below(&r, 16)],
                 rng_below(&r, 4));
        for (uint32_t i = 0, nw = 80 + rng_below(&r, 120); i < nw; i++)
            len += (size_t)sprintf(body + len, "%s%s%s%s", len ? " " : "", SYLL[rng_below(&r, 16)],
                                   SYLL[rng_below(&r, 16)], SYLL[rng_below(&r, 16)]);
        for (int t = 0; t < 4; t++)
            if (rng_unit(&r) < DENSE_P[t]) len += (size_t)sprintf(body + len, " w%dx", t);
        add_doc(w, d, title, body);
    }
    commit(w);

    /* the segment's postings section, from its own table */
    sahel_index *ix = open_index(dir);
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    cr_assert_eq(info.nsegments, 1);
    sahel_index_close(ix);
    DIR *dd = opendir(dir);
    cr_assert_not_null(dd);
    char name[256] = "";
    for (struct dirent *de; (de = readdir(dd));)
        if (strstr(de->d_name, ".sseg") && strlen(de->d_name) < sizeof name)
            snprintf(name, sizeof name, "%s", de->d_name);
    closedir(dd);
    cr_assert(name[0], "no segment in %s", dir);
    sh_segment seg;
    sahel_error err = {0};
    cr_assert_eq(sh_segment_open(dir, name, &seg, &err), 0, "%s", err.msg);
    cr_assert_gt(seg.size, (size_t)8 << 20, "the segment must not be checksummed at open");
    uint64_t off = seg.sec[SH_SEC_POSTINGS].off, plen = seg.sec[SH_SEC_POSTINGS].len;
    sh_segment_close(&seg);
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    static uint8_t junk[4096];
    memset(junk, 0xFF, sizeof junk);
    /* the last two thirds: the w words' lists come last (memcmp order) */
    uint64_t from = plen / 3, n = plen - from;
    cr_assert_eq(fseek(f, (long)(off + from), SEEK_SET), 0);
    for (uint64_t done = 0; done < n; done += sizeof junk)
        cr_assert_eq(fwrite(junk, 1, (size_t)SH_MIN((uint64_t)sizeof junk, n - done), f),
                     (size_t)SH_MIN((uint64_t)sizeof junk, n - done));
    cr_assert_eq(fclose(f), 0);

    ix = open_index(dir);
    size_t min_docs = sh_split_min_docs;
    uint64_t min_postings = sh_split_min_postings;
    sh_split_min_docs = 1;
    sh_split_min_postings = 0;
    static const char *const Q[] = {"w0x", "w0x w1x", "w0x AND w1x", "\"w1x w2x\"", "w3x",
                                    "kaka", "w2x lomi", "w0x AND w3x"};
    int damaged = 0, clean = 0;
    for (size_t q = 0; q < sizeof Q / sizeof *Q; q++) {
        sahel_hits *h[3] = {NULL, NULL, NULL};
        int rc[3];
        sahel_error e[3];
        for (int t = 0; t < 3; t++) {
            sahel_search_opts o = {.k = 10, .threads = (size_t)t + 1};
            memset(&e[t], 0, sizeof e[t]);
            rc[t] = sahel_search(ix, Q[q], strlen(Q[q]), &o, &h[t], &e[t]);
        }
        for (int t = 1; t < 3; t++) {
            cr_assert_eq(rc[t], rc[0], "%s on %d threads: %d (%s), on one: %d (%s)", Q[q], t + 1,
                         rc[t], e[t].msg, rc[0], e[0].msg);
            if (rc[0]) {
                cr_assert_eq(rc[t], SAHEL_ECORRUPT);
                cr_assert(strstr(e[t].msg, "damaged postings") && strstr(e[t].msg, name),
                          "%s: %s", Q[q], e[t].msg);
                continue;
            }
            cr_assert_eq(sahel_hits_count(h[t]), sahel_hits_count(h[0]), "%s", Q[q]);
            for (size_t i = 0; i < sahel_hits_count(h[0]); i++) {
                const char *a, *b;
                size_t la, lb;
                double sa, sb;
                cr_assert_eq(sahel_hits_id(h[0], i, &a, &la, &sa, &err), 0);
                cr_assert_eq(sahel_hits_id(h[t], i, &b, &lb, &sb, &err), 0);
                cr_assert(la == lb && !memcmp(a, b, la) && sa == sb, "%s: hit %zu", Q[q], i);
            }
        }
        damaged += rc[0] != 0;
        clean += rc[0] == 0;
        for (int t = 0; t < 3; t++) sahel_hits_free(h[t]);
    }
    sh_split_min_docs = min_docs;
    sh_split_min_postings = min_postings;
    sahel_index_close(ix);
    cr_assert_gt(damaged, 0, "no query met the damage");
    cr_assert_gt(clean, 0, "every query met the damage");
    rm_rf(dir);
}

/* Confined to one core (taskset, a cgroup), a split search starts its
 * threads where it can and gives the same hits. */
Test(search, a_split_search_confined_to_one_core_gives_the_same_hits) {
#ifdef __linux__
    char dir[512];
    mkdir(SAHEL_TEST_TMP, 0755);
    snprintf(dir, sizeof dir, "%s/search-split-one-core", SAHEL_TEST_TMP);
    build_dense(dir, 3000);
    sahel_index *ix = open_index(dir);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    size_t min_docs = sh_split_min_docs;
    uint64_t min_postings = sh_split_min_postings, splits = sh_split_searches;
    sh_split_min_docs = 1;
    sh_split_min_postings = 0;
    static const char *const Q[] = {"w0x w1x", "w0x AND w2x", "\"w1x w0x\"", "w3x -w0x"};
    static hit a[10], b[10];
    for (size_t q = 0; q < sizeof Q / sizeof *Q; q++) {
        sahel_search_opts o1 = {.k = 10, .threads = 1}, o3 = {.k = 10, .threads = 3};
        uint64_t t1, t3;
        int e1, e3;
        size_t n1 = search(ix, Q[q], &o1, a, 10, &t1, &e1);
        size_t n3 = search(ix, Q[q], &o3, b, 10, &t3, &e3);
        cr_assert_eq(n3, n1, "%s", Q[q]);
        for (size_t i = 0; i < n1; i++)
            cr_assert(!strcmp(a[i].id, b[i].id) && a[i].score == b[i].score, "%s: hit %zu",
                      Q[q], i);
    }
    cr_assert_eq(sh_split_searches - splits, sizeof Q / sizeof *Q, "every search ran split");
    sh_split_min_docs = min_docs;
    sh_split_min_postings = min_postings;
    sahel_index_close(ix);
    rm_rf(dir);
#endif
}
