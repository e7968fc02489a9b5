/*
 * search.c - query evaluation: AST -> plan -> per-segment scorers -> top-k.
 *
 *   plan     The parsed query with prefixes expanded against the whole
 *            index and every distinct term given its index-wide document
 *            frequency and idf, so that a query ranks alike over one
 *            segment or ten.  Each term's dictionary entry in every
 *            segment is looked up once, here, and kept.
 *   scorers  For each segment the plan becomes a tree of cursors, each
 *            positioned on its first matching document when made, with
 *            next (the following match) and advance (the first match >= a
 *            target): a term (postings), a phrase (a conjunction of terms
 *            whose positions line up) and a boolean (MUST conjunction,
 *            SHOULD disjunction, MUST_NOT exclusion).
 *   top-k    Document at a time: every match is scored and offered to a
 *            min-heap of the k best (ties: the earlier document wins).
 *            Three common shapes have their own loops, which skip what
 *            cannot enter the top k and return the very same hits:
 *              - a ranked OR of plain terms (one term included): block-max
 *                MaxScore over windows of documents, the docs of a much
 *                rarer term scored first to set the bar;
 *              - a conjunction of plain terms: leapfrog led by the rarest,
 *                windows whose summed block bounds are too low skipped;
 *              - a single phrase: the same, and per document a bound from
 *                the terms' frequencies before any position is read.
 *            Candidates are held against per-document bounds that need no
 *            division (bm_tangent) before they are scored exactly.
 *
 * Skipping is exact: a bound is only ever compared with the k-th best
 * score lowered by a hair (topk_limit), and documents are visited in
 * increasing order, so a skipped document could at best have tied the
 * k-th hit, and the earlier document wins ties.  The bounds come from the
 * skip records (postings.c: per block the largest title and body
 * frequencies and the smallest title and body lengths), are computed with
 * the same expression as the score, and are monotone in each input for
 * 0 <= b <= 1; with b > 1 (a length can make a norm negative) no fast
 * loop is used.  At b = 0.75 a skip record's block impact, the largest x
 * of one of its docs, scaled to the plan's averages and title weight
 * (impact_scale), bounds a term of every field far more tightly.  Per
 * candidate, a doc's lengths are the one random read of a large index:
 * bounds from its tfs over its block's smallest lengths come first
 * (x_skip, tf_bound).  A document's score is always the sum of its clauses'
 * scores in clause order, whatever loop found it: the same bits.
 *
 * With threads (opts.threads), a heavy query on a large segment runs on
 * ranges of its docs at once (run_split): each range is its cursors'
 * (sh_postings_range), each thread keeps its own heap, and the heaps share
 * the best of their limits.  A thread's limit is the k-th score of real
 * hits lowered by a hair, so another thread may skip by it as by its own,
 * and the top k of the heaps together is the top k of one thread.
 *
 * Positions are read only for documents that hold every phrase term in a
 * field and whose bound can still enter (the rarest term's frequency alone
 * is tried first, before the other cursors move); the positions of the
 * block's earlier documents are stepped over by counting varint ends.  A
 * two-word phrase, the common case, is counted by phrase2_freqs: each
 * run decoded without per-byte bounds checks where 5 bytes a value are
 * there, the two merged by compares rather than branches.  Where both
 * words are common and most of their docs would be read that way (two
 * common words, almost never side by side: the bound never rises), the
 * single-phrase loop reads windows of up to 128 docs at once instead
 * (phrase2_window): each word's runs there decoded by one call, made into
 * keys of doc, field and position, and the phrase's starts found by one
 * merge of the two key lists.
 *
 * Scoring (README "Ranking" has the derivation; tests/test_oracle.c checks
 * every result against a brute-force scorer):
 *   idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))     df, N over the index
 *   norm_f  = 1 - b + b * len_f / avg_f                f in {title, body}
 *             (computed as (1 - b) + (b / avg_f) * len_f: no division)
 *   x       = w_title * tf_title / norm_title + tf_body / norm_body
 *             (only the named field's part for title: / body: terms)
 *   term    = idf * x / (k1 + x)                       BM25F, Lucene's form
 *   phrase  = the same with phrase frequencies, idf = sum of the terms' idfs
 *             (a phrase frequency counts start positions: a hyphenated
 *             whole and its first part sharing one start count once)
 *   boolean = sum of the scores of the clauses that match.
 * All arithmetic is in double.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, pthread_attr_setaffinity_np (run_split) */
#endif
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "../index/index.h"
#include "query.h"
#include "search.h"

/* A prefix may expand to at most this many terms: beyond it the query
 * would touch a large part of the index for little meaning. */
#define SH_PREFIX_MAX_TERMS 4096

/* ---- the query's terms -------------------------------------------------- */

static int qterm_grow(sh_plan *pl) {
    size_t cap = pl->tcap ? pl->tcap * 2 : 64;
    uint32_t *slots = sh_calloc(cap, sizeof *slots);
    if (!slots) return SAHEL_ENOMEM;
    for (size_t i = 0; i < pl->nterms; i++) {
        size_t h = (size_t)pl->terms[i].hash & (cap - 1);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = (uint32_t)i + 1;
    }
    sh_free(pl->slots);
    pl->slots = slots;
    pl->tcap = cap;
    return 0;
}

/* Index of term s in the plan's table, adding it (df computed over every
 * segment) when new. */
static int qterm_get(sh_plan *pl, const char *s, size_t len, int positive, uint32_t *out) {
    if ((pl->nterms + 1) * 2 > pl->tcap && qterm_grow(pl)) return SAHEL_ENOMEM;
    uint64_t hash = XXH3_64bits(s, len);
    size_t h = (size_t)hash & (pl->tcap - 1);
    while (pl->slots[h]) {
        sh_qterm *t = &pl->terms[pl->slots[h] - 1];
        if (t->hash == hash && t->len == len && memcmp(t->s, s, len) == 0) {
            t->positive |= positive;
            *out = pl->slots[h] - 1;
            return 0;
        }
        h = (h + 1) & (pl->tcap - 1);
    }
    size_t nsegs = pl->ix->nsegs;
    if (pl->nterms == pl->cap_terms) {
        size_t cap = pl->cap_terms ? pl->cap_terms * 2 : 32;
        sh_qterm *t = sh_reallocarray(pl->terms, cap, sizeof *t);
        if (!t) return SAHEL_ENOMEM;
        pl->terms = t;
        if (nsegs) {
            sh_terminfo *ti = sh_reallocarray(pl->tinfo, cap * nsegs, sizeof *ti);
            if (!ti) return SAHEL_ENOMEM;
            pl->tinfo = ti;
        }
        pl->cap_terms = cap;
    }
    sh_qterm *t = &pl->terms[pl->nterms];
    memset(t, 0, sizeof *t);
    t->s = sh_strndup(s, len);
    if (!t->s) return SAHEL_ENOMEM;
    t->len = len;
    t->hash = hash;
    t->positive = positive;
    uint64_t df = 0;
    for (size_t i = 0; i < nsegs; i++) {
        sh_terminfo *ti = &pl->tinfo[pl->nterms * nsegs + i];
        int rc = sh_segment_lookup(&pl->ix->segs[i], s, len, ti, pl->err);
        if (rc < 0) {
            sh_free(t->s);
            return rc;
        }
        if (rc)
            df += ti->df;
        else
            ti->idx = SH_TERM_ABSENT;
    }
    t->df = df;
    double N = (double)pl->ix->ndocs;
    t->idf = log(1.0 + (N - (double)df + 0.5) / ((double)df + 0.5));
    pl->slots[h] = (uint32_t)pl->nterms + 1;
    *out = (uint32_t)pl->nterms++;
    return 0;
}

/* ---- plan --------------------------------------------------------------- */

static void pnode_free(sh_pnode *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nkids; i++) pnode_free(n->kids[i]);
    sh_free(n->kids);
    sh_free(n->occur);
    sh_free(n->tids);
    sh_free(n->pos);
    sh_free(n);
}

static int pnode_add(sh_pnode *b, sh_pnode *kid, sh_occur occ) {
    if (b->nkids == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        sh_pnode **k = sh_reallocarray(b->kids, cap, sizeof *k);
        if (!k) return SAHEL_ENOMEM;
        b->kids = k;
        sh_occur *o = sh_reallocarray(b->occur, cap, sizeof *o);
        if (!o) return SAHEL_ENOMEM;
        b->occur = o;
        b->cap = cap;
    }
    b->kids[b->nkids] = kid;
    b->occur[b->nkids++] = occ;
    return 0;
}

static int oom(sh_plan *pl) { return sh_err(pl->err, SAHEL_ENOMEM, "out of memory running the query"); }

/* Every distinct indexed term that starts with prefix, in byte order. */
static int expand_prefix(sh_plan *pl, const sh_qnode *q, sh_pnode *b, int positive) {
    size_t n = 0;
    uint32_t mark = ++pl->nmarks;
    for (size_t i = 0; i < pl->ix->nsegs; i++) {
        const sh_segment *seg = &pl->ix->segs[i];
        for (uint32_t t = sh_segment_lower_bound(seg, q->text, q->len); t < seg->nterms; t++) {
            const char *s;
            size_t len;
            int rc = sh_segment_term(seg, t, &s, &len, NULL, pl->err);
            if (rc) return rc;
            if (len < q->len || memcmp(s, q->text, q->len) != 0) break;
            uint32_t tid;
            if ((rc = qterm_get(pl, s, len, positive, &tid))) return rc == SAHEL_ENOMEM ? oom(pl) : rc;
            if (pl->terms[tid].mark == mark) continue; /* seen in an earlier segment */
            pl->terms[tid].mark = mark;
            if (++n > SH_PREFIX_MAX_TERMS)
                return sh_err(pl->err, SAHEL_ETOOBIG,
                              "column %u: %s* matches more than %d terms; make the prefix longer",
                              q->col, q->text, SH_PREFIX_MAX_TERMS);
            sh_pnode *k = sh_calloc(1, sizeof *k);
            if (!k) return oom(pl);
            k->kind = SH_Q_TERM;
            k->field = q->field;
            k->tid = tid;
            if (pnode_add(b, k, SH_OCCUR_SHOULD)) {
                sh_free(k);
                return oom(pl);
            }
        }
    }
    return 0;
}

static int plan_node(sh_plan *pl, const sh_qnode *q, int positive, sh_pnode **out) {
    sh_pnode *n = sh_calloc(1, sizeof *n);
    if (!n) return oom(pl);
    n->kind = q->kind == SH_Q_PREFIX ? SH_Q_BOOL : q->kind;
    n->field = q->field;
    int rc = 0;
    switch (q->kind) {
    case SH_Q_TERM:
        if ((rc = qterm_get(pl, q->text, q->len, positive, &n->tid)))
            rc = rc == SAHEL_ENOMEM ? oom(pl) : rc;
        break;
    case SH_Q_PHRASE:
        n->tids = sh_calloc(q->nterms ? q->nterms : 1, sizeof *n->tids);
        n->pos = sh_calloc(q->nterms ? q->nterms : 1, sizeof *n->pos);
        if (!n->tids || !n->pos) {
            rc = oom(pl);
            break;
        }
        n->nterms = q->nterms;
        for (size_t i = 0; i < q->nterms && !rc; i++) {
            n->pos[i] = q->pos[i];
            if ((rc = qterm_get(pl, q->terms[i], q->lens[i], positive, &n->tids[i])))
                rc = rc == SAHEL_ENOMEM ? oom(pl) : rc;
            else
                n->idf += pl->terms[n->tids[i]].idf;
        }
        break;
    case SH_Q_PREFIX:
        rc = expand_prefix(pl, q, n, positive);
        break;
    case SH_Q_BOOL:
        for (size_t i = 0; i < q->nkids && !rc; i++) {
            sh_pnode *k;
            int kpos = positive && q->occur[i] != SH_OCCUR_MUST_NOT;
            if ((rc = plan_node(pl, q->kids[i], kpos, &k))) break;
            if (pnode_add(n, k, q->occur[i])) {
                pnode_free(k);
                rc = oom(pl);
            }
        }
        break;
    }
    if (rc) {
        pnode_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

void sh_plan_free(sh_plan *pl) {
    if (!pl) return;
    pnode_free(pl->root);
    for (size_t i = 0; i < pl->nterms; i++) sh_free(pl->terms[i].s);
    sh_free(pl->terms);
    sh_free(pl->tinfo);
    sh_free(pl->slots);
    memset(pl, 0, sizeof *pl);
}

int sh_plan_build(sahel_index *ix, const char *query, size_t len, const sahel_search_opts *o,
                  sh_plan *pl, sahel_error *err) {
    memset(pl, 0, sizeof *pl);
    pl->ix = ix;
    pl->err = err;
    pl->k1 = o && o->k1 > 0 ? o->k1 : 1.2;
    pl->b = !o || o->b == 0 ? 0.75 : o->b < 0 ? 0.0 : o->b;
    pl->wt = o && o->title_weight > 0 ? o->title_weight : SAHEL_DEFAULT_TITLE_WEIGHT;
    double N = (double)ix->ndocs;
    pl->avgt = ix->ndocs && ix->sum_len_title ? (double)ix->sum_len_title / N : 1.0;
    pl->avgb = ix->ndocs && ix->sum_len_body ? (double)ix->sum_len_body / N : 1.0;
    pl->norm0 = 1 - pl->b;
    pl->normt = pl->b / pl->avgt;
    pl->normb = pl->b / pl->avgb;
    sh_qnode *q = NULL;
    int rc = sh_query_parse(ix->analyzer, query, len, &q, err);
    if (rc) return rc;
    rc = plan_node(pl, q, 1, &pl->root);
    sh_qnode_free(q);
    if (rc) sh_plan_free(pl);
    return rc;
}

/* ---- scorers ------------------------------------------------------------ */

typedef struct scorer scorer;
typedef struct scorer_ops {
    int (*next)(scorer *s);
    int (*advance)(scorer *s, uint32_t target);
    double (*score)(scorer *s);
    int (*explain)(scorer *s, sh_buf *out, int depth);
    void (*destroy)(scorer *s);
} scorer_ops;

struct scorer {
    const scorer_ops *ops;
    uint32_t doc;  /* current match; SH_NO_DOC when exhausted */
    uint64_t cost; /* about how many documents it matches: conjunctions
                      are driven by their cheapest clause */
};

typedef struct seg_ctx {
    const sh_plan *pl;
    const sh_segment *seg;
    uint32_t si; /* the segment's number in the index */
    sahel_error *err;
    double xscale; /* the skip records' block impacts times this bound x;
                      0: they do not apply (impact_scale) */
    uint32_t lo, hi; /* the docs searched: [lo, hi) (a part of the segment
                        when the search is split over the cores) */
} seg_ctx;

/* Term tid's dictionary entry in the context's segment, as the plan
 * looked it up: 1 and *ti, or 0 when the segment does not hold it. */
static int seg_term(const seg_ctx *c, uint32_t tid, sh_terminfo *ti) {
    const sh_terminfo *x = &c->pl->tinfo[(size_t)tid * c->pl->ix->nsegs + c->si];
    if (x->idx == SH_TERM_ABSENT) return 0;
    *ti = *x;
    return 1;
}

static double bm25(const seg_ctx *c, sh_field field, double idf, uint32_t tft, uint32_t tfb,
                   uint32_t doc, double *xout) {
    const sh_plan *pl = c->pl;
    double x = 0;
    if (field != SH_FIELD_BODY && tft)
        x += pl->wt * tft / (pl->norm0 + pl->normt * sh_segment_len_title(c->seg, doc));
    if (field != SH_FIELD_TITLE && tfb)
        x += tfb / (pl->norm0 + pl->normb * sh_segment_len_body(c->seg, doc));
    if (xout) *xout = x;
    return x > 0 ? idf * x / (pl->k1 + x) : 0.0;
}

/* -- term -- */

typedef struct term_scorer {
    scorer base;
    const seg_ctx *c;
    const sh_qterm *t;
    sh_field field;
    sh_postings pc;
} term_scorer;

static int term_fits(const term_scorer *s) {
    return s->field == SH_FIELD_ANY ||
           (s->field == SH_FIELD_TITLE ? sh_postings_tft(&s->pc) : sh_postings_tfb(&s->pc)) > 0;
}

static int term_settle(term_scorer *s) {
    while (s->pc.doc != SH_NO_DOC && !term_fits(s)) {
        int rc = sh_postings_next(&s->pc);
        if (rc) return rc;
    }
    s->base.doc = s->pc.doc;
    return 0;
}

static int term_next(scorer *b) {
    term_scorer *s = (term_scorer *)b;
    int rc = sh_postings_next(&s->pc);
    return rc ? rc : term_settle(s);
}

static int term_advance(scorer *b, uint32_t target) {
    term_scorer *s = (term_scorer *)b;
    if (b->doc != SH_NO_DOC && b->doc >= target) return 0;
    int rc = sh_postings_advance(&s->pc, target);
    return rc ? rc : term_settle(s);
}

static double term_score(scorer *b) {
    term_scorer *s = (term_scorer *)b;
    return bm25(s->c, s->field, s->t->idf, sh_postings_tft(&s->pc), sh_postings_tfb(&s->pc),
                b->doc, NULL);
}

static const char *field_name(sh_field f) {
    return f == SH_FIELD_TITLE ? "title:" : f == SH_FIELD_BODY ? "body:" : "";
}

static int explain_tf(const seg_ctx *c, sh_buf *out, int depth, const char *what, sh_field field,
                      double idf, uint64_t df, uint32_t tft, uint32_t tfb, uint32_t doc) {
    double x;
    /* a field-restricted clause shows only the field it scores */
    if (field == SH_FIELD_TITLE) tfb = 0;
    if (field == SH_FIELD_BODY) tft = 0;
    double sc = bm25(c, field, idf, tft, tfb, doc, &x);
    const sh_plan *pl = c->pl;
    return sh_buf_printf(out,
                         "%*s%.4f  %s%s: idf %.4f (df %llu of %llu) * x/(k1+x), x = %.4f "
                         "[title tf %u len %u avg %.1f w %.2f | body tf %u len %u avg %.1f]\n",
                         depth * 2, "", sc, field_name(field), what, idf, (unsigned long long)df,
                         (unsigned long long)pl->ix->ndocs, x, tft,
                         sh_segment_len_title(c->seg, doc), pl->avgt, pl->wt, tfb,
                         sh_segment_len_body(c->seg, doc), pl->avgb);
}

static int term_explain(scorer *b, sh_buf *out, int depth) {
    term_scorer *s = (term_scorer *)b;
    return explain_tf(s->c, out, depth, s->t->s, s->field, s->t->idf, s->t->df,
                      sh_postings_tft(&s->pc), sh_postings_tfb(&s->pc), b->doc);
}

static void plain_destroy(scorer *b) { sh_free(b); }

static const scorer_ops term_ops = {term_next, term_advance, term_score, term_explain,
                                    plain_destroy};

/* Set up *s (zeroed by the caller) over the postings of term node n, on
 * its first match.  *found = 0, with nothing to undo, when the segment
 * does not hold the term.  A term scorer owns no memory of its own. */
static int term_init(term_scorer *s, const seg_ctx *c, const sh_pnode *n, int *found) {
    *found = 0;
    sh_terminfo ti;
    if (!seg_term(c, n->tid, &ti)) return 0;
    s->base.ops = &term_ops;
    s->base.doc = SH_NO_DOC;
    s->base.cost = ti.df;
    s->c = c;
    s->t = &c->pl->terms[n->tid];
    s->field = n->field;
    *found = 1;
    int rc;
    if ((rc = sh_postings_init(&s->pc, c->seg, &ti, c->err)) ||
        (rc = sh_postings_range(&s->pc, c->lo, c->hi)) || (rc = term_settle(s)))
        return rc;
    return 0;
}

/* Returns 0 with *out NULL when the term is not in this segment. */
static int term_make(const seg_ctx *c, const sh_pnode *n, scorer **out) {
    *out = NULL;
    sh_terminfo ti;
    if (!seg_term(c, n->tid, &ti)) return 0;
    term_scorer *s = sh_calloc(1, sizeof *s);
    if (!s) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    int found, rc = term_init(s, c, n, &found);
    if (rc) {
        sh_free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* -- phrase -- */

/* Where a phrase term's positions are being read: p points at those of
 * doc i of block blk (blk UINT32_MAX: nowhere yet). */
typedef struct posrun {
    const uint8_t *p;
    uint32_t blk, i;
    uint32_t cblk;              /* the block cum is of (UINT32_MAX: none) */
    uint32_t ncum;              /* cum[0, ncum] hold, filled as far as asked */
    uint64_t cum[SH_BLOCK + 1]; /* varints before doc j's runs in block cblk (64 bits: the
                                   sum of damaged tfs, each checked alone, may pass 32) */
} posrun;

/* cum[0, to] of the held block (to <= n), filled on from what is there:
 * a phrase that reads a few docs of a block sums no more than those. */
static inline const uint64_t *run_cum(posrun *r, const sh_postings *pc, uint32_t to) {
    if (r->cblk != pc->block) {
        if (!pc->tf_ready) sh_postings_load_tfs(pc);
        r->cum[0] = 0;
        r->ncum = 0;
        r->cblk = pc->block;
    }
    if (to > r->ncum) {
        uint64_t c = r->cum[r->ncum];
        for (uint32_t j = r->ncum; j < to; j++) {
            c += (uint64_t)pc->tft[j] + pc->tfb[j];
            r->cum[j + 1] = c;
        }
        r->ncum = to;
    }
    return r->cum;
}

typedef struct phrase_scorer {
    scorer base;
    const seg_ctx *c;
    const sh_pnode *n;
    size_t nt;
    sh_postings *pc;         /* one cursor per phrase term */
    posrun *run;             /* one per phrase term */
    uint32_t **pos;          /* positions scratch: [2i] title, [2i + 1] body of term i */
    uint32_t *cap;           /* capacity of pos[j] (2nt), then how many it holds (2nt) */
    uint32_t pft, pfb;       /* phrase frequencies of the current doc */
    size_t lead;             /* the cursor with the fewest documents */
    uint64_t *bits;          /* count_pairs_bits's bitmap, all zero between uses */
    size_t nbits;            /* its length in words */
} phrase_scorer;

static int grow_pos(phrase_scorer *s, size_t i, uint32_t need) {
    if (need <= s->cap[i]) return 0;
    uint32_t cap = need < 64 ? 64 : need;
    uint32_t *p = sh_reallocarray(s->pos[i], cap, sizeof *p);
    if (!p) return sh_err(s->c->err, SAHEL_ENOMEM, "out of memory");
    s->pos[i] = p;
    s->cap[i] = cap;
    return 0;
}

/* Step over n LEB128 varints in [*pp, end) (sh_skip_varints): -1 when
 * the input ends first. */
static int skip_varints(const uint8_t **pp, const uint8_t *end, uint64_t n) {
    if (!n) return 0; /* a field the doc lacks: no call */
    const uint8_t *p = sh_skip_varints(*pp, end, n);
    if (!p) return -1;
    *pp = p;
    return 0;
}

/* Decode a run of n positions (the first absolute, then differences). */
static int read_positions(const uint8_t **pp, const uint8_t *end, uint32_t n, uint32_t *out) {
    const uint8_t *p = *pp;
    if ((uint64_t)(end - p) >= 5 * (uint64_t)n) {
        const uint8_t *q = sh_read_gaps(p, end, n, out);
        if (q) {
            *pp = q;
            return 0;
        }
    }
    uint32_t last = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t v;
        if (sh_varint_get32(&p, end, &v)) return -1;
        if (k) {
            if (v > UINT32_MAX - last) return -1;
            v += last;
        }
        out[k] = v;
        last = v;
    }
    *pp = p;
    return 0;
}

static int positions_damaged(const phrase_scorer *s, size_t i) {
    const sh_segment *seg = s->c->seg;
    const sh_postings *pc = &s->pc[i];
    return sh_err(s->c->err, SAHEL_ECORRUPT, "%s: damaged positions of term %u at byte %llu",
                  seg->path, pc->ti.idx,
                  (unsigned long long)(seg->sec[SH_SEC_POSITIONS].off + pc->ti.pos_off));
}

/* Move term i's position reader to the current doc's runs (postings.c:
 * per doc its title run, then its body run; a block's first doc at the
 * skip record's pos_off), stepping over the block's earlier docs: the
 * start of the doc's runs, or NULL when the positions are damaged. */
static const uint8_t *phrase_seek(phrase_scorer *s, size_t i) {
    sh_postings *pc = &s->pc[i];
    (void)sh_postings_tft(pc); /* the held block's tfs, when a cursor defers them */
    posrun *r = &s->run[i];
    if (r->blk != pc->block || r->i > pc->i) {
        uint64_t off = 0;
        if (pc->skip) off = sh_load_u64(pc->skip + (size_t)pc->block * SH_SKIPREC + 8);
        if (off > pc->ti.pos_len) return NULL;
        r->p = pc->posbase + off;
        r->blk = pc->block;
        r->i = 0;
    }
    uint64_t skip = 0;
    for (uint32_t j = r->i; j < pc->i; j++) skip += (uint64_t)pc->tft[j] + pc->tfb[j];
    if (skip_varints(&r->p, pc->posend, skip)) return NULL;
    r->i = pc->i;
    return r->p;
}

/* Term i's positions in the current doc, for the fields asked for, into
 * pos[2i] (title) and pos[2i + 1] (body). */
static int phrase_load(phrase_scorer *s, size_t i, int want_t, int want_b) {
    const uint8_t *p = phrase_seek(s, i), *end = s->pc[i].posend;
    if (!p) return positions_damaged(s, i);
    uint32_t tft = sh_postings_tft(&s->pc[i]), tfb = sh_postings_tfb(&s->pc[i]);
    uint32_t *held = s->cap + 2 * s->nt;
    int rc = 0;
    if ((want_t && (rc = grow_pos(s, 2 * i, tft))) || (want_b && (rc = grow_pos(s, 2 * i + 1, tfb))))
        return rc;
    if (want_t ? read_positions(&p, end, tft, s->pos[2 * i]) : want_b && skip_varints(&p, end, tft))
        return positions_damaged(s, i);
    if (want_b && read_positions(&p, end, tfb, s->pos[2 * i + 1])) return positions_damaged(s, i);
    held[2 * i] = want_t ? tft : 0;
    held[2 * i + 1] = want_b ? tfb : 0;
    return 0;
}

/* Count starts s with term i at s + rel[i] for all i, within one field:
 * a merge walk, every list ascending.  A start is counted once, even
 * where two tokens of the first term share it (a hyphenated whole and
 * its first part). */
static uint32_t count_phrase(const phrase_scorer *s, int body) {
    size_t nt = s->nt;
    const uint32_t *held = s->cap + 2 * s->nt;
    uint32_t idx[64]; /* phrases are limited to 64 terms (phrase_open) */
    for (size_t i = 0; i < nt; i++) idx[i] = 0;
    const uint32_t *p0 = s->pos[body];
    uint32_t n0 = held[body], pf = 0;
    for (uint32_t a = 0; a < n0; a++) {
        if (a && p0[a] == p0[a - 1]) continue;
        uint64_t start = p0[a]; /* rel[0] is 0 */
        int ok = 1;
        for (size_t i = 1; i < nt && ok; i++) {
            uint64_t want = start + s->n->pos[i];
            const uint32_t *pi = s->pos[2 * i + (size_t)body];
            uint32_t ni = held[2 * i + (size_t)body];
            while (idx[i] < ni && pi[idx[i]] < want) idx[i]++;
            ok = idx[i] < ni && pi[idx[i]] == want;
        }
        pf += (uint32_t)ok;
    }
    return pf;
}

/* The smallest title and body frequencies of the phrase's terms in the
 * current doc (every cursor on it): bounds on the phrase frequencies, 0
 * for a field the phrase does not search. */
static void phrase_min_tfs(const phrase_scorer *s, uint32_t *mt, uint32_t *mb) {
    uint32_t t = UINT32_MAX, b = UINT32_MAX;
    for (size_t i = 0; i < s->nt; i++) {
        t = SH_MIN(t, sh_postings_tft(&s->pc[i]));
        b = SH_MIN(b, sh_postings_tfb(&s->pc[i]));
    }
    *mt = s->n->field == SH_FIELD_BODY ? 0 : t;
    *mb = s->n->field == SH_FIELD_TITLE ? 0 : b;
}

/* count_phrase of two lists: a merge whose steps are compares, not
 * branches.  On a match both lists move; a start of term 0 that repeats
 * the one before it is not counted again. */
static uint32_t count_pairs(const uint32_t *a, uint32_t na, const uint32_t *b, uint32_t nb,
                            uint64_t rel) {
    uint32_t i = 0, j = 0, pf = 0;
    while (i < na && j < nb) {
        uint64_t x = a[i] + rel, y = b[j];
        pf += (uint32_t)(x == y && (i == 0 || a[i] != a[i - 1]));
        i += x <= y;
        j += y <= x;
    }
    return pf;
}

/* count_pairs through a bitmap: the bits of the shorter list set (a's
 * shifted by rel), those of the longer tested, and the set ones cleared
 * again (the bitmap is all zero between calls).  The count is of the
 * distinct values the two share, a start counted once either way.  No
 * step waits on the one before, where the merge's every step waits on
 * its last compare.  Positions from PHRASE_BITMAP_MAX on, or no memory
 * for the bitmap: the merge. */
#define PHRASE_BITMAP_MAX (1u << 22) /* a bitmap of 512 KiB at most */

static uint32_t count_pairs_bits(phrase_scorer *s, const uint32_t *a, uint32_t na,
                                 const uint32_t *b, uint32_t nb, uint64_t rel) {
    if (!na || !nb) return 0;
    /* set: the list whose bits are set, shifted by sshift; test: the other */
    int seta = na < nb;
    const uint32_t *set = seta ? a : b, *test = seta ? b : a;
    uint32_t nset = seta ? na : nb, ntest = seta ? nb : na;
    uint64_t sshift = seta ? rel : 0, tshift = seta ? 0 : rel;
    uint64_t smax = set[nset - 1] + sshift;
    if (smax >= PHRASE_BITMAP_MAX) return count_pairs(a, na, b, nb, rel);
    size_t words = (size_t)(smax >> 6) + 1;
    if (words > s->nbits) {
        size_t want = SH_MAX(words, 2 * s->nbits);
        uint64_t *nbits = sh_reallocarray(s->bits, want, sizeof *nbits);
        if (!nbits) return count_pairs(a, na, b, nb, rel);
        memset(nbits + s->nbits, 0, (want - s->nbits) * sizeof *nbits);
        s->bits = nbits;
        s->nbits = want;
    }
    uint64_t *bits = s->bits;
    for (uint32_t k = 0; k < nset; k++) {
        uint64_t x = set[k] + sshift;
        bits[x >> 6] |= 1ull << (x & 63);
    }
    uint32_t pf = 0, prev = test[0] + 1; /* not test[0], even where that wraps */
    for (uint32_t k = 0; k < ntest; k++) {
        uint64_t x = test[k] + tshift;
        if (x > smax) break; /* the list ascends: nothing later is set */
        /* a value the list repeats counted once (two tokens of a word
         * that share a position: a hyphenated whole and its first part) */
        pf += (uint32_t)((bits[x >> 6] >> (x & 63)) & 1) & (test[k] != prev);
        prev = test[k];
    }
    for (uint32_t k = 0; k < nset; k++) bits[(set[k] + sshift) >> 6] = 0;
    return pf;
}

/* phrase_freqs of a two-word phrase, the common case: each term's runs
 * read once from where phrase_seek finds them, and the position reader
 * left past them for the next doc.  0 when done (*rc set); 1 when the
 * runs are short of 5 bytes a varint or hold a value the checked path
 * must judge (nothing has changed: it starts over). */
static int phrase2_freqs(phrase_scorer *s, uint32_t mt, uint32_t mb, int *rc) {
    const uint8_t *p[2];
    uint32_t tf[2][2]; /* [term][title, body] */
    *rc = 0;
    for (size_t i = 0; i < 2; i++) {
        sh_postings *pc = &s->pc[i];
        if (!(p[i] = phrase_seek(s, i))) {
            *rc = positions_damaged(s, i);
            return 0;
        }
        tf[i][0] = sh_postings_tft(pc);
        tf[i][1] = sh_postings_tfb(pc);
        if ((uint64_t)(pc->posend - p[i]) < 5 * ((uint64_t)tf[i][0] + tf[i][1])) return 1;
        if ((mt && (*rc = grow_pos(s, 2 * i, tf[i][0] + SH_GAPS_PAD))) ||
            (mb && (*rc = grow_pos(s, 2 * i + 1, tf[i][1] + SH_GAPS_PAD))))
            return 0;
    }
    uint32_t pf[2] = {0, 0};
    for (int f = 0; f < 2; f++) {
        if (!(f ? mb : mt)) {
            if (f) break;
            /* not read by the checked path either: stepped over */
            for (size_t i = 0; i < 2; i++)
                if (skip_varints(&p[i], s->pc[i].posend, tf[i][0])) return 1;
            continue;
        }
        for (size_t i = 0; i < 2; i++)
            if (!(p[i] = sh_read_gaps_padded(p[i], s->pc[i].posend, tf[i][f],
                                             s->pos[2 * i + (size_t)f])))
                return 1;
        pf[f] = count_pairs_bits(s, s->pos[f], tf[0][f], s->pos[2 + f], tf[1][f], s->n->pos[1]);
        if (f)
            for (size_t i = 0; i < 2; i++) {
                s->run[i].p = p[i];
                s->run[i].i = s->pc[i].i + 1;
            }
    }
    s->pft = pf[0];
    s->pfb = pf[1];
    return 0;
}

/* Phrase frequencies of the current doc; a field is read only when every
 * term occurs in it (mt, mb from phrase_min_tfs). */
static int phrase_freqs(phrase_scorer *s, uint32_t mt, uint32_t mb) {
    s->pft = s->pfb = 0;
    if (!mt && !mb) return 0;
    int rc;
    if (s->nt == 2 && !phrase2_freqs(s, mt, mb, &rc)) return rc;
    for (size_t i = 0; i < s->nt; i++)
        if ((rc = phrase_load(s, i, mt > 0, mb > 0))) return rc;
    if (mt) s->pft = count_phrase(s, 0);
    if (mb) s->pfb = count_phrase(s, 1);
    return 0;
}

/* From the cursors' current state, find the next doc where every term is
 * present and the phrase occurs.  The rarest term leads: the others are
 * only advanced to its documents. */
static int phrase_settle(phrase_scorer *s) {
    sh_postings *lead = &s->pc[s->lead];
    for (;;) {
        uint32_t d = lead->doc;
        if (d == SH_NO_DOC) break;
        int aligned = 1;
        for (size_t i = 0; i < s->nt; i++) {
            if (i == s->lead) continue;
            int rc = sh_postings_advance(&s->pc[i], d);
            if (rc) return rc;
            if (s->pc[i].doc == SH_NO_DOC) {
                s->base.doc = SH_NO_DOC;
                return 0;
            }
            if (s->pc[i].doc != d) {
                if ((rc = sh_postings_advance(lead, s->pc[i].doc))) return rc;
                aligned = 0;
                break;
            }
        }
        if (!aligned) continue;
        uint32_t mt, mb;
        phrase_min_tfs(s, &mt, &mb);
        int rc = phrase_freqs(s, mt, mb);
        if (rc) return rc;
        if (s->pft + s->pfb > 0) {
            s->base.doc = d;
            return 0;
        }
        if ((rc = sh_postings_next(lead))) return rc;
    }
    s->base.doc = SH_NO_DOC;
    return 0;
}

static int phrase_next(scorer *b) {
    phrase_scorer *s = (phrase_scorer *)b;
    int rc = sh_postings_next(&s->pc[s->lead]);
    return rc ? rc : phrase_settle(s);
}

static int phrase_advance(scorer *b, uint32_t target) {
    phrase_scorer *s = (phrase_scorer *)b;
    if (b->doc != SH_NO_DOC && b->doc >= target) return 0;
    int rc = sh_postings_advance(&s->pc[s->lead], target);
    return rc ? rc : phrase_settle(s);
}

static double phrase_score(scorer *b) {
    phrase_scorer *s = (phrase_scorer *)b;
    return bm25(s->c, s->n->field, s->n->idf, s->pft, s->pfb, b->doc, NULL);
}

static int phrase_explain(scorer *b, sh_buf *out, int depth) {
    phrase_scorer *s = (phrase_scorer *)b;
    sh_buf name = {0};
    int rc = sh_buf_putc(&name, '"');
    for (size_t i = 0; i < s->nt && !rc; i++)
        rc = sh_buf_printf(&name, "%s%s", i ? " " : "", s->c->pl->terms[s->n->tids[i]].s);
    if (!rc) rc = sh_buf_printf(&name, "\"");
    if (!rc)
        rc = explain_tf(s->c, out, depth, (const char *)name.p, s->n->field, s->n->idf, 0, s->pft,
                        s->pfb, b->doc);
    sh_buf_free(&name);
    return rc;
}

static void phrase_destroy(scorer *b) {
    phrase_scorer *s = (phrase_scorer *)b;
    if (s->pos)
        for (size_t i = 0; i < 2 * s->nt; i++) sh_free(s->pos[i]);
    sh_free(s->pos);
    sh_free(s->bits);
    sh_free(s->cap);
    sh_free(s->run);
    sh_free(s->pc);
    sh_free(s);
}

static const scorer_ops phrase_ops = {phrase_next, phrase_advance, phrase_score, phrase_explain,
                                      phrase_destroy};

/* The phrase's cursors, each on its term's first doc, not yet settled on
 * a match; *out NULL when a term is missing from the segment. */
static int phrase_open(const seg_ctx *c, const sh_pnode *n, phrase_scorer **out) {
    *out = NULL;
    if (n->nterms == 0) return 0;
    if (n->nterms > 64)
        return sh_err(c->err, SAHEL_ETOOBIG, "a phrase may hold at most 64 words");
    sh_terminfo ti[64];
    for (size_t i = 0; i < n->nterms; i++)
        if (!seg_term(c, n->tids[i], &ti[i])) return 0; /* the phrase cannot match here */
    phrase_scorer *s = sh_calloc(1, sizeof *s);
    if (!s) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    s->base.ops = &phrase_ops;
    s->c = c;
    s->n = n;
    s->nt = n->nterms;
    s->pc = sh_calloc(s->nt, sizeof *s->pc);
    s->run = sh_calloc(s->nt, sizeof *s->run);
    s->pos = sh_calloc(2 * s->nt, sizeof *s->pos);
    s->cap = sh_calloc(4 * s->nt, sizeof *s->cap);
    int rc = 0;
    if (!s->pc || !s->run || !s->pos || !s->cap) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->nt; i++) {
        s->run[i].blk = s->run[i].cblk = UINT32_MAX;
        if ((rc = sh_postings_init(&s->pc[i], c->seg, &ti[i], c->err)) ||
            (rc = sh_postings_range(&s->pc[i], c->lo, c->hi)))
            goto fail;
        if (s->pc[i].ti.df < s->pc[s->lead].ti.df) s->lead = i;
    }
    s->base.cost = s->pc[s->lead].ti.df;
    *out = s;
    return 0;
fail:
    phrase_destroy(&s->base);
    return rc;
}

static int phrase_make(const seg_ctx *c, const sh_pnode *n, scorer **out) {
    *out = NULL;
    phrase_scorer *s;
    int rc = phrase_open(c, n, &s);
    if (rc || !s) return rc;
    if ((rc = phrase_settle(s))) {
        phrase_destroy(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* -- boolean -- */

typedef struct bool_scorer {
    scorer base;
    scorer **must, **should, **not;
    scorer **drive; /* the MUST clauses, cheapest first (must: clause order,
                       in which scores are added) */
    size_t nmust, nshould, nnot;
} bool_scorer;

static int excluded(bool_scorer *s, uint32_t d, int *out) {
    *out = 0;
    for (size_t i = 0; i < s->nnot; i++) {
        int rc = s->not[i]->ops->advance(s->not[i], d);
        if (rc) return rc;
        if (s->not[i]->doc == d) {
            *out = 1;
            return 0;
        }
    }
    return 0;
}

/* Conjunction: from target on, the first doc every MUST clause holds. */
static int conj_from(bool_scorer *s, uint32_t target) {
    uint32_t d = target;
    for (;;) {
        int moved = 0;
        for (size_t i = 0; i < s->nmust; i++) {
            scorer *m = s->drive[i];
            int rc = m->ops->advance(m, d);
            if (rc) return rc;
            if (m->doc == SH_NO_DOC) {
                s->base.doc = SH_NO_DOC;
                return 0;
            }
            if (m->doc != d) {
                d = m->doc;
                moved = 1;
            }
        }
        if (moved) continue;
        int ex;
        int rc = excluded(s, d, &ex);
        if (rc) return rc;
        if (!ex) break;
        if (d == SH_NO_DOC - 1) {
            s->base.doc = SH_NO_DOC;
            return 0;
        }
        d++;
    }
    s->base.doc = d;
    return 0;
}

static uint32_t min_should(const bool_scorer *s) {
    uint32_t d = SH_NO_DOC;
    for (size_t i = 0; i < s->nshould; i++) d = SH_MIN(d, s->should[i]->doc);
    return d;
}

/* Disjunction: settle on the smallest SHOULD doc not excluded. */
static int disj_settle(bool_scorer *s) {
    for (;;) {
        uint32_t d = min_should(s);
        s->base.doc = d;
        if (d == SH_NO_DOC) return 0;
        int ex;
        int rc = excluded(s, d, &ex);
        if (rc) return rc;
        if (!ex) return 0;
        for (size_t i = 0; i < s->nshould; i++)
            if (s->should[i]->doc == d && (rc = s->should[i]->ops->next(s->should[i]))) return rc;
    }
}

static int bool_next(scorer *b) {
    bool_scorer *s = (bool_scorer *)b;
    if (b->doc == SH_NO_DOC) return 0;
    if (s->nmust) return b->doc == SH_NO_DOC - 1 ? (b->doc = SH_NO_DOC, 0) : conj_from(s, b->doc + 1);
    for (size_t i = 0; i < s->nshould; i++)
        if (s->should[i]->doc == b->doc) {
            int rc = s->should[i]->ops->next(s->should[i]);
            if (rc) return rc;
        }
    return disj_settle(s);
}

static int bool_advance(scorer *b, uint32_t target) {
    bool_scorer *s = (bool_scorer *)b;
    if (b->doc == SH_NO_DOC || b->doc >= target) return 0;
    if (s->nmust) return conj_from(s, target);
    for (size_t i = 0; i < s->nshould; i++) {
        int rc = s->should[i]->ops->advance(s->should[i], target);
        if (rc) return rc;
    }
    return disj_settle(s);
}

/* Score of the current doc; SHOULD clauses of a conjunction are moved up
 * to it here (they only add score there). */
static int bool_sum(bool_scorer *s, double *sum, sh_buf *explain, int depth) {
    uint32_t d = s->base.doc;
    double total = 0;
    int rc = 0;
    for (size_t i = 0; i < s->nmust && !rc; i++) {
        total += s->must[i]->ops->score(s->must[i]);
        if (explain) rc = s->must[i]->ops->explain(s->must[i], explain, depth);
    }
    for (size_t i = 0; i < s->nshould && !rc; i++) {
        scorer *k = s->should[i];
        if (k->doc < d && (rc = k->ops->advance(k, d))) break;
        if (k->doc == d) {
            total += k->ops->score(k);
            if (explain) rc = k->ops->explain(k, explain, depth);
        }
    }
    *sum = total;
    return rc;
}

static double bool_score(scorer *b) {
    double sum = 0;
    /* advancing optional clauses can only fail on damaged postings, which
     * the same cursor reports again on its next move */
    (void)bool_sum((bool_scorer *)b, &sum, NULL, 0);
    return sum;
}

static int bool_explain(scorer *b, sh_buf *out, int depth) {
    bool_scorer *s = (bool_scorer *)b;
    double sum;
    sh_buf inner = {0};
    int rc = bool_sum(s, &sum, &inner, depth + 1);
    if (!rc) rc = sh_buf_printf(out, "%*s%.4f  sum of:\n", depth * 2, "", sum);
    if (!rc && inner.len) rc = sh_buf_put(out, inner.p, inner.len);
    if (!rc) rc = sh_buf_reserve(out, 1);
    if (!rc) out->p[out->len] = '\0';
    sh_buf_free(&inner);
    return rc;
}

static void bool_destroy(scorer *b) {
    bool_scorer *s = (bool_scorer *)b;
    scorer **lists[3] = {s->must, s->should, s->not};
    size_t ns[3] = {s->nmust, s->nshould, s->nnot};
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < ns[l]; i++) lists[l][i]->ops->destroy(lists[l][i]);
        sh_free(lists[l]);
    }
    sh_free(s->drive);
    sh_free(s);
}

static const scorer_ops bool_ops = {bool_next, bool_advance, bool_score, bool_explain,
                                    bool_destroy};

static int scorer_make(const seg_ctx *c, const sh_pnode *n, scorer **out);

static int bool_make(const seg_ctx *c, const sh_pnode *n, scorer **out) {
    *out = NULL;
    bool_scorer *s = sh_calloc(1, sizeof *s);
    if (!s) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    s->base.ops = &bool_ops;
    size_t cap = n->nkids ? n->nkids : 1;
    s->must = sh_calloc(cap, sizeof *s->must);
    s->should = sh_calloc(cap, sizeof *s->should);
    s->not = sh_calloc(cap, sizeof *s->not);
    s->drive = sh_calloc(cap, sizeof *s->drive);
    int rc = 0;
    if (!s->must || !s->should || !s->not || !s->drive) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n->nkids; i++) {
        scorer *k;
        if ((rc = scorer_make(c, n->kids[i], &k))) goto fail;
        if (!k) {
            if (n->occur[i] == SH_OCCUR_MUST) goto none; /* a required clause cannot match */
            continue;
        }
        if (k->doc == SH_NO_DOC && n->occur[i] == SH_OCCUR_MUST) {
            k->ops->destroy(k);
            goto none;
        }
        if (n->occur[i] == SH_OCCUR_MUST)
            s->must[s->nmust++] = k;
        else if (n->occur[i] == SH_OCCUR_SHOULD)
            s->should[s->nshould++] = k;
        else
            s->not[s->nnot++] = k;
    }
    if (s->nmust == 0 && s->nshould == 0) goto none;
    for (size_t i = 0; i < s->nmust; i++) { /* insertion sort: few clauses */
        size_t j = i;
        for (; j > 0 && s->drive[j - 1]->cost > s->must[i]->cost; j--) s->drive[j] = s->drive[j - 1];
        s->drive[j] = s->must[i];
    }
    s->base.cost = s->nmust ? s->drive[0]->cost : 0;
    if (!s->nmust)
        for (size_t i = 0; i < s->nshould; i++) s->base.cost += s->should[i]->cost;
    rc = s->nmust ? conj_from(s, 0) : disj_settle(s);
    if (rc) goto fail;
    *out = &s->base;
    return 0;
none:
    bool_destroy(&s->base);
    return 0;
fail:
    bool_destroy(&s->base);
    return rc;
}

static int scorer_make(const seg_ctx *c, const sh_pnode *n, scorer **out) {
    switch (n->kind) {
    case SH_Q_TERM: return term_make(c, n, out);
    case SH_Q_PHRASE: return phrase_make(c, n, out);
    default: return bool_make(c, n, out);
    }
}

/* ---- top-k -------------------------------------------------------------- */

/* a is better than b: higher score, then earlier (segment, doc) */
static int better(const sh_hitref *a, const sh_hitref *b) {
    if (a->score != b->score) return a->score > b->score;
    if (a->seg != b->seg) return a->seg < b->seg;
    return a->doc < b->doc;
}

/* min-heap on "better": the root is the worst kept hit */
static void sift_down(sh_hitref *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && better(&h[m], &h[l])) m = l;
        if (r < n && better(&h[m], &h[r])) m = r;
        if (m == i) return;
        sh_hitref t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(sh_hitref *h, size_t i) {
    while (i) {
        size_t p = (i - 1) / 2;
        if (!better(&h[p], &h[i])) return;
        sh_hitref t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int cmp_hit(const void *a, const void *b) {
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* The k best so far: a min-heap on "better", the root the worst kept.
 * A search split over threads gives each its own heap, and they share the
 * best of their limits (shared, NULL when alone): a thread whose heap
 * holds k hits that all score at least L tells the others that nothing
 * below L can enter the k best of them all. */
typedef struct topk {
    sh_hitref *h;
    size_t n, cap;
    _Atomic uint64_t *shared; /* the bits of a double */
} topk;

/* The heap's own limit (see topk_limit). */
static double own_limit(const topk *t) {
    if (t->n < t->cap || t->cap == 0) return -HUGE_VAL;
    double th = t->h[0].score;
    return th - fabs(th) * 1e-9;
}

static double shared_get(_Atomic uint64_t *sh) {
    uint64_t u = atomic_load_explicit(sh, memory_order_relaxed);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The shared limit raised to v if below it. */
static void shared_raise(_Atomic uint64_t *sh, double v) {
    uint64_t cur = atomic_load_explicit(sh, memory_order_relaxed), u;
    memcpy(&u, &v, sizeof u);
    for (;;) {
        double c;
        memcpy(&c, &cur, sizeof c);
        if (!(v > c)) return;
        if (atomic_compare_exchange_weak_explicit(sh, &cur, u, memory_order_relaxed,
                                                  memory_order_relaxed))
            return;
    }
}

static void topk_offer(topk *t, const sh_hitref *h) {
    if (t->n == t->cap && h->score < t->h[0].score) return; /* the common case, early */
    if (t->n < t->cap) {
        t->h[t->n] = *h;
        sift_up(t->h, t->n++);
    } else if (t->cap && better(h, &t->h[0])) {
        t->h[0] = *h;
        sift_down(t->h, t->n, 0);
    } else {
        return;
    }
    if (t->shared && t->n == t->cap) shared_raise(t->shared, own_limit(t));
}

/* A score a document must beat to enter the top k, lowered by a hair so
 * that rounding in a sum of bounds never prunes a document that could
 * enter: skipping stays exact.  It only ever rises. */
static double topk_limit(const topk *t) {
    double own = own_limit(t);
    if (t->shared) {
        double s = shared_get(t->shared);
        if (s > own) return s;
    }
    return own;
}

/* ---- block bounds ------------------------------------------------------- */

/* What a skip record says of its block (postings.c): every doc in it has
 * tft <= max_tft and tfb <= max_tfb, title length >= min_lent and body
 * length >= min_lenb. */
typedef struct blockrec {
    uint32_t max_tft, max_tfb, min_lent, min_lenb;
} blockrec;

static const blockrec EMPTY_BLOCK = {0, 0, UINT32_MAX, UINT32_MAX};

/* A bound on any score idf * x / (k1 + x) of documents within r: bm25's
 * own expression at the largest frequencies and smallest lengths, so
 * that for 0 <= b <= 1 it is at least the score, rounding included (each
 * step is monotone), but for the last division, whose rounding the
 * margin of topk_limit absorbs.  A zero norm (b = 1, an empty field)
 * makes x infinite: the bound is then idf, the supremum. */
static double bound_of(const sh_plan *pl, sh_field field, double idf, const blockrec *r) {
    double x = 0;
    if (field != SH_FIELD_BODY && r->max_tft)
        x += pl->wt * r->max_tft / (pl->norm0 + pl->normt * r->min_lent);
    if (field != SH_FIELD_TITLE && r->max_tfb)
        x += r->max_tfb / (pl->norm0 + pl->normb * r->min_lenb);
    if (!(x > 0)) return 0;
    return isinf(x) ? idf : idf * x / (pl->k1 + x);
}

/* How much the block impacts of segment seg must be scaled to bound x
 * under this plan (postings.c): they hold for b = SH_IMPACT_B at the
 * segment's own averages and title weight SH_IMPACT_WT; the index's
 * averages and the plan's weight can only raise x by their ratios where
 * these are above 1.  0 (not used) for any other b. */
static double impact_scale(const sh_plan *pl, const sh_segment *seg) {
    if (pl->b != SH_IMPACT_B) return 0;
    double at = sh_impact_avg(seg->sum_len_title, seg->ndocs);
    double ab = sh_impact_avg(seg->sum_len_body, seg->ndocs);
    double fa = SH_MAX(1.0, SH_MAX(pl->avgt / at, pl->avgb / ab));
    return fa * SH_MAX(1.0, pl->wt / SH_IMPACT_WT);
}

/* The bound a block impact gives a term of every field (the stored x has
 * a margin of 1e-6 far above the rounding of the scaling). */
static double impact_bound(const seg_ctx *c, double idf, double max_x) {
    double x = max_x * c->xscale;
    if (!(x > 0)) return 0;
    return isinf(x) ? idf : idf * x / (c->pl->k1 + x);
}

/* A shallow cursor over one term's blocks: the block that advance(target)
 * would land in and what its skip record says, read from the skip table
 * alone: nothing is decoded and the real cursor does not move.  A term of
 * one block has no skip table: its record is made from the block, which
 * its cursor holds whole from the first doc on. */
typedef struct shallow {
    const sh_postings *pc;
    uint32_t blk;  /* nblocks once no doc >= the target is left */
    uint32_t last; /* the block's last doc; SH_NO_DOC past the end */
    blockrec r;
    double max_x; /* the block's impact (postings.c); 0 past the end */
} shallow;

static void shallow_load(shallow *sh) {
    const sh_postings *pc = sh->pc;
    if (sh->blk >= pc->nblocks) {
        sh->last = SH_NO_DOC;
        sh->r = EMPTY_BLOCK;
        sh->max_x = 0;
        return;
    }
    const uint8_t *rec = pc->skip + (size_t)sh->blk * SH_SKIPREC;
    sh->last = sh_load_u32(rec);
    sh->r.max_tft = sh_load_u32(rec + 16);
    sh->r.max_tfb = sh_load_u32(rec + 20);
    sh->r.min_lent = sh_load_u32(rec + 24);
    sh->r.min_lenb = sh_load_u32(rec + 28);
    sh->max_x = sh_postings_impact(rec);
}

/* pc must be on a doc (not exhausted). */
static void shallow_init(shallow *sh, const sh_postings *pc) {
    sh->pc = pc;
    sh->blk = 0;
    if (pc->skip) {
        shallow_load(sh);
        return;
    }
    (void)sh_postings_tft(pc); /* the block's tfs decoded, if the cursor defers it */
    sh->r = EMPTY_BLOCK;
    sh->max_x = HUGE_VAL; /* no impact: the block is scanned (one_block_max) */
    for (uint32_t i = 0; i < pc->n; i++) {
        uint32_t d = pc->docs[i];
        sh->r.max_tft = SH_MAX(sh->r.max_tft, pc->tft[i]);
        sh->r.max_tfb = SH_MAX(sh->r.max_tfb, pc->tfb[i]);
        sh->r.min_lent = SH_MIN(sh->r.min_lent, sh_segment_len_title(pc->seg, d));
        sh->r.min_lenb = SH_MIN(sh->r.min_lenb, sh_segment_len_body(pc->seg, d));
    }
    sh->last = pc->n ? pc->docs[pc->n - 1] : SH_NO_DOC;
}

/* Move to the block of the first doc >= target (never back): 1 when the
 * block changed. */
static int shallow_to(shallow *sh, uint32_t target) {
    if (SH_LIKELY(sh->last >= target)) return 0; /* also past the end: SH_NO_DOC */
    const sh_postings *pc = sh->pc;
    sh->blk = pc->skip ? sh_postings_find_block(pc, sh->blk + 1, target) : pc->nblocks;
    shallow_load(sh);
    return 1;
}

/* Widen the shallow block over the blocks after it, up to the one
 * holding upto (or the last): their records combined, the largest
 * frequencies and impact and the smallest lengths, bound any doc of them.
 * 1 when it widened. */
static int shallow_span(shallow *sh, uint32_t upto) {
    const sh_postings *pc = sh->pc;
    if (!pc->skip || sh->last >= upto) return 0; /* also past the end */
    int moved = 0;
    while (sh->last < upto && sh->blk + 1 < pc->nblocks) {
        const uint8_t *rec = pc->skip + (size_t)++sh->blk * SH_SKIPREC;
        sh->last = sh_load_u32(rec);
        sh->r.max_tft = SH_MAX(sh->r.max_tft, sh_load_u32(rec + 16));
        sh->r.max_tfb = SH_MAX(sh->r.max_tfb, sh_load_u32(rec + 20));
        sh->r.min_lent = SH_MIN(sh->r.min_lent, sh_load_u32(rec + 24));
        sh->r.min_lenb = SH_MIN(sh->r.min_lenb, sh_load_u32(rec + 28));
        sh->max_x = SH_MAX(sh->max_x, sh_postings_impact(rec));
        moved = 1;
    }
    return moved;
}

/* -- a term with its shallow cursor -- */

typedef struct bm_term {
    term_scorer s;
    shallow sh;
    double one_ub;  /* a term of one block: the best score it gives */
    double ub;      /* bound on its score in the shallow block */
    double ta, tb;  /* its score is at most ta + tb * x (bm_tangent) */
    double tv;      /* the score at which that tangent was taken */
    double contrib; /* its score at doc cdoc, when computed there */
    double it, ib;  /* w_title / and 1 / the norms of the shallow block's
                       smallest lengths (0 for a field not scored): x is
                       at most tft * it + tfb * ib there (tf_bound) */
    uint32_t cdoc;
    uint32_t at; /* conj_bulk: the index of its last candidate in the held block */
} bm_term;

/* The best score a term of one block gives: its block scanned. */
static double one_block_max(term_scorer *s) {
    const sh_postings *pc = &s->pc;
    (void)sh_postings_tft(pc);
    double best = 0;
    for (uint32_t i = 0; i < pc->n; i++) {
        uint32_t tft = pc->tft[i], tfb = pc->tfb[i];
        if (s->field == SH_FIELD_TITLE) tfb = 0;
        if (s->field == SH_FIELD_BODY) tft = 0;
        best = SH_MAX(best, bm25(s->c, s->field, s->t->idf, tft, tfb, pc->docs[i], NULL));
    }
    return best;
}

static void bm_term_bound(bm_term *b) {
    const sh_plan *pl = b->s.c->pl;
    if (b->sh.last == SH_NO_DOC)
        b->ub = 0;
    else if (!b->s.pc.skip)
        b->ub = b->one_ub;
    else {
        b->ub = bound_of(pl, b->s.field, b->s.t->idf, &b->sh.r);
        /* the impact, of one doc, is the tighter where it applies */
        if (b->s.c->xscale > 0 && b->s.field == SH_FIELD_ANY)
            b->ub = SH_MIN(b->ub, impact_bound(b->s.c, b->s.t->idf, b->sh.max_x));
    }
    /* a zero norm (b = 1, an empty field) makes these infinite: tf_bound
     * then gives the supremum, idf */
    b->it = b->s.field == SH_FIELD_BODY ? 0 : pl->wt / (pl->norm0 + pl->normt * b->sh.r.min_lent);
    b->ib = b->s.field == SH_FIELD_TITLE ? 0 : 1 / (pl->norm0 + pl->normb * b->sh.r.min_lenb);
}

/* Per-document bounds without division.  The score idf * x / (k1 + x)
 * is concave in x, so any tangent lies above it: ta + tb * x with the
 * tangent taken where the score is v, the share of the k-th best score
 * that the term would have to bring, is tight for the documents near the
 * cut (past saturation the constant idf is used).  All terms at a doc
 * share its norms nt and nb, and x * nt * nb = w_title * tft * nb +
 * tfb * nt, so the bound of a doc, scaled by p = nt * nb, costs a few
 * products per term, where its score costs three divisions.  It is only
 * ever compared as (bound) * (1 + 1e-7) < limit * p: the margin is far
 * above the rounding of either side, so no doc that could enter is
 * skipped, and one that passes is then scored exactly. */
#define BOUND_MARGIN (1 + 1e-7)

static void bm_tangent(bm_term *b, double k1, double v) {
    if (v == b->tv) return; /* made already */
    b->tv = v;
    double idf = b->s.t->idf;
    if (!(v > 0)) { /* the tangent at 0 */
        b->ta = 0;
        b->tb = idf / k1;
    } else if (!(v < idf * (1 - 1e-6))) {
        b->ta = idf;
        b->tb = 0;
    } else {
        double x0 = k1 * v / (idf - v), den = (k1 + x0) * (k1 + x0);
        b->ta = idf * x0 * x0 / den;
        b->tb = idf * k1 / den;
    }
}

/* Tangents for terms [0, n) of ts chosen by idx (NULL: all).  In a
 * conjunction (share) every doc holds every term: the k-th best score is
 * shared among them in proportion to their block bounds.  In a ranked OR
 * most docs hold one of the terms, which must then reach the k-th best
 * score alone: the tangent is taken there (or at the term's bound). */
static void bm_tangents(bm_term *ts, const size_t *idx, size_t n, double k1, double limit,
                        int share) {
    double sum = 0;
    for (size_t j = 0; j < n; j++) sum += ts[idx ? idx[j] : j].ub;
    for (size_t j = 0; j < n; j++) {
        bm_term *b = &ts[idx ? idx[j] : j];
        double v = share ? (sum > 0 ? limit * b->ub / sum : 0) : SH_MIN(limit, b->ub);
        bm_tangent(b, k1, v);
    }
}

/* Small functions of the per-candidate loops that GCC kept as calls: a
 * few instructions each around the cost of a call, once a candidate.
 * (Inlining bm25 and term_score as well ran more instructions.) */
#define SH_HOT static inline __attribute__((always_inline))

/* The norms of doc d: nt, nb; and p = nt * nb. */
SH_HOT double doc_norms(const seg_ctx *c, uint32_t d, double *nt, double *nb) {
    const sh_plan *pl = c->pl;
    *nt = pl->norm0 + pl->normt * sh_segment_len_title(c->seg, d);
    *nb = pl->norm0 + pl->normb * sh_segment_len_body(c->seg, d);
    return *nt * *nb;
}

/* Term b's bound at its current doc, scaled by p: the smaller of its
 * tangent and its block bound. */
SH_HOT double scaled_bound(const bm_term *b, double nt, double nb, double p) {
    const term_scorer *s = &b->s;
    uint32_t tft = s->field == SH_FIELD_BODY ? 0 : sh_postings_tft(&s->pc);
    uint32_t tfb = s->field == SH_FIELD_TITLE ? 0 : sh_postings_tfb(&s->pc);
    double y = s->c->pl->wt * tft * nb + tfb * nt;
    double t = b->ta * p + b->tb * y, u = b->ub * p;
    return t < u ? t : u;
}

/* Term b's bound at its current doc, in the shallow block, from its tfs
 * and the block's smallest lengths alone (it, ib): no length of the doc
 * is read, and one division.  Its rounding, a few ulps, is far inside the
 * margin of topk_limit. */
static double tf_bound(const bm_term *b) {
    const term_scorer *s = &b->s;
    uint32_t tft = sh_postings_tft(&s->pc), tfb = sh_postings_tfb(&s->pc);
    double x = 0;
    if (tft && b->it > 0) x += tft * b->it;
    if (tfb && b->ib > 0) x += tfb * b->ib;
    if (!(x > 0)) return 0;
    double u = isinf(x) ? s->t->idf : s->t->idf * x / (s->c->pl->k1 + x);
    return u < b->ub ? u : b->ub;
}

/* What term b, on doc d, adds to d's running sum: its exact score, kept
 * for d (contrib, cdoc), or while not exact only its tf bound. */
static inline double probe(bm_term *b, uint32_t d, int exact) {
    if (!exact) return tf_bound(b);
    b->cdoc = d;
    return b->contrib = term_score(&b->s.base);
}

/* Set up the terms of `kids` (TERM nodes) that this segment holds and
 * that match something in it, in clause order: *out (NULL when none) and
 * *nout.  The caller frees *out. */
static int bm_terms_make(const seg_ctx *c, sh_pnode *const *kids, size_t nkids, bm_term **out,
                         size_t *nout) {
    *out = NULL;
    *nout = 0;
    size_t have = 0;
    sh_terminfo ti;
    for (size_t i = 0; i < nkids; i++) have += (size_t)seg_term(c, kids[i]->tid, &ti);
    if (!have) return 0;
    bm_term *ts = sh_calloc(have, sizeof *ts);
    if (!ts) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < nkids; i++) {
        bm_term *b = &ts[n];
        int found, rc = term_init(&b->s, c, kids[i], &found);
        if (rc) {
            sh_free(ts);
            return rc;
        }
        if (!found) continue;
        if (b->s.base.doc == SH_NO_DOC) { /* a field restriction left nothing */
            memset(b, 0, sizeof *b);
            continue;
        }
        shallow_init(&b->sh, &b->s.pc);
        b->cdoc = SH_NO_DOC;
        b->tv = -1; /* no tangent yet (scores are never negative) */
        b->one_ub = b->s.pc.skip ? 0 : one_block_max(&b->s);
        bm_term_bound(b);
        n++;
    }
    *out = ts;
    *nout = n;
    return 0;
}

/* ---- block-max MaxScore for a ranked OR of terms ------------------------ */

/* Is this plan a ranked OR of plain terms (the common query, one term
 * included)? */
/* Required terms are met first when that should leave at most one in
 * REQ_GAIN of the essential terms' docs as candidates. */
#define REQ_GAIN 4.0

/* MaxScore widens the non-essential terms' blocks to the essential
 * terms' (below) when there are at most MS_SPAN_TERMS of them and the
 * window grows MS_SPAN_GAIN times or more. */
#define MS_SPAN_TERMS 8u
#define MS_SPAN_GAIN 4u

/* How far ahead in an essential term's block MaxScore asks for lengths:
 * far enough to cover a miss, near enough that the line is still there. */
#define LENS_AHEAD 4u

static int maxscore_applies(const sh_pnode *root) {
    if (root->kind != SH_Q_BOOL || root->nkids == 0) return 0;
    for (size_t i = 0; i < root->nkids; i++)
        if (root->occur[i] != SH_OCCUR_SHOULD || root->kids[i]->kind != SH_Q_TERM) return 0;
    return 1;
}

/* When a single term is essential, a doc of it can only enter if the
 * term's score reaches need = limit - (the non-essential bounds), that
 * is (the score rising with x) if x >= k1 * need / (idf - need).  Tested
 * as x * nt * nb >= that * nt * nb, in products, it costs no division.
 * The threshold is lowered by margins far above any rounding, so the test
 * only ever lets too much through (the doc is then scored exactly); 0,
 * no test, where need is not positive or the inversion is ill-conditioned
 * (need within a millionth of idf). */
static double x_needed(const sh_plan *pl, double idf, double limit, double nonessential) {
    double need = limit - nonessential - fabs(limit) * 1e-7;
    if (!(need > 0) || !(need < idf * (1 - 1e-6))) return 0;
    return pl->k1 * need / (idf - need) * (1 - 1e-7);
}

/* Past this many docs a doc's lengths are most often out of the core's
 * L2 (DOCLENS, bit-packed, takes about 2 bytes a doc): x_skip tries a
 * bound from the tfs alone first.  Below, the lengths are at hand and the
 * extra, poorly predicted, test only costs (Reuters, 19,000 docs: +20%
 * per word).  No lengths are prefetched ahead: when DOCLENS was a table
 * of 8 bytes a doc that paid, but the prefetch kept that table's address
 * after the packing and fetched lines far from the lengths; removing it
 * made the 300 term, or2 and or3 querygen queries on the 1 GB generated
 * corpus 11-14% faster (best and mean of 5 alternated rounds), and
 * fetching the packed lengths ahead instead gained less than that. */
#define SH_LENS_CACHED 131072

/* Move term b (the only essential one) past the docs up to wlast whose
 * x falls short of xneed, reading its cursor directly: a doc outside a
 * restricted field has x = 0 and falls short too.  Its tfs over the
 * norms of its block's smallest lengths bound x first on a large
 * segment: most docs are passed on that alone, without reading their
 * lengths (a read in the packed lengths, a cache miss a candidate there).
 * *skipped: whether any doc was passed over. */
static int x_skip(bm_term *b, double xneed, uint32_t wlast, int *skipped) {
    term_scorer *s = &b->s;
    const sh_plan *pl = s->c->pl;
    const sh_segment *seg = s->c->seg;
    sh_postings *pc = &s->pc;
    uint32_t mt = s->field == SH_FIELD_BODY ? 0 : UINT32_MAX;
    uint32_t mb = s->field == SH_FIELD_TITLE ? 0 : UINT32_MAX;
    /* every doc up to wlast lies in the shallow block (the window ends
     * with it): its norms are at least these */
    double ntm = pl->norm0 + pl->normt * b->sh.r.min_lent;
    double nbm = pl->norm0 + pl->normb * b->sh.r.min_lenb;
    double wnbm = pl->wt * nbm, cutm = xneed * ntm * nbm;
    int tf_first = seg->ndocs > SH_LENS_CACHED;
    int moved = 0;
    /* the held block's arrays walked directly, the cursor set once at the
     * end of each block's walk */
    while (pc->doc != SH_NO_DOC && pc->doc <= wlast) {
        if (SH_UNLIKELY(!pc->tf_ready)) sh_postings_load_tfs(pc);
        const uint32_t *docs = pc->docs, *tfa = pc->tft, *tfz = pc->tfb;
        uint32_t i = pc->i, n = pc->n;
        for (; i < n && docs[i] <= wlast; i++) {
            uint32_t doc = docs[i], tft = tfa[i] & mt, tfb = tfz[i] & mb;
            if (!tf_first || wnbm * tft + tfb * ntm >= cutm) {
                double nt = pl->norm0 + pl->normt * sh_segment_len_title(seg, doc);
                double nb = pl->norm0 + pl->normb * sh_segment_len_body(seg, doc);
                if (pl->wt * tft * nb + tfb * nt >= xneed * nt * nb) break;
            }
        }
        moved |= i != pc->i;
        if (i < n) { /* a doc that stands, or the first past wlast */
            pc->i = i;
            pc->doc = docs[i];
            break;
        }
        pc->i = n - 1; /* every doc of the block passed: on to the next */
        int rc = sh_postings_next(pc);
        if (rc) return rc;
        moved = 1;
    }
    if (!moved) return 0; /* the common case: the candidate stands */
    *skipped = 1;
    return term_settle(s);
}

/* A term of the current window, in the order of their bounds. */
typedef struct bm_slot {
    double ub;  /* the term's bound in the window */
    double pre; /* the sum of the bounds of this slot and those before */
    size_t t;   /* the term */
} bm_slot;

static int cmp_slot(const void *a, const void *b) {
    const bm_slot *x = a, *y = b;
    return x->ub < y->ub ? -1 : x->ub > y->ub;
}

static void sort_slots(bm_slot *o, size_t n) {
    if (n > 16) {
        qsort(o, n, sizeof *o, cmp_slot);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        bm_slot x = o[i];
        size_t j = i;
        for (; j > 0 && o[j - 1].ub > x.ub; j--) o[j] = o[j - 1];
        o[j] = x;
    }
}

/* The slots of o[0..live) that a doc must hold to reach limit: without
 * one, the bounds of all the others add up to less.  On a large index
 * the k-th best score soon passes the bound of any one frequent word, and
 * a disjunction of them is then a conjunction plus optional terms: only
 * docs holding the required ones are candidates.  The margin keeps a
 * rounding of the sums from ever ruling out a doc that could enter.
 * Worth it only when it rules out most of the docs the essential terms
 * (slots [e, live)) would bring: with words found in most documents
 * (long speeches) nearly every doc holds them all, and meeting them costs
 * more than it saves; 0 then, as when none is required. */
static size_t required_slots(const bm_term *ts, const bm_slot *o, size_t live, size_t e,
                             double limit, uint32_t ndocs, size_t *req) {
    size_t nreq = 0;
    if (!live || limit == -HUGE_VAL || !ndocs) return 0;
    double total = o[live - 1].pre;
    for (size_t q = 0; q < live; q++)
        if (total - o[q].ub + fabs(limit) * 1e-7 < limit) req[nreq++] = q;
    if (!nreq) return 0;
    /* the docs they share, if the words fell independently, against the
     * docs of the essential terms */
    double brought = 0, least = HUGE_VAL, share = 1;
    for (size_t q = e; q < live; q++) brought += (double)ts[o[q].t].s.base.cost;
    for (size_t r = 0; r < nreq; r++) {
        double cost = (double)ts[o[req[r]].t].s.base.cost;
        least = SH_MIN(least, cost);
        share *= SH_MIN(1.0, cost / ndocs);
    }
    double kept = share / SH_MIN(1.0, least / ndocs) * least; /* the rarest's docs, filtered */
    return kept * REQ_GAIN <= brought ? nreq : 0;
}

/* The docs two required terms share in their held blocks, from where
 * their cursors were when it was made: stepping two frequent words doc by
 * doc to their common docs costs a call per doc of either, where one SIMD
 * intersection per pair of blocks (sh_intersect_sorted) finds them all. */
typedef struct req_common {
    const sh_postings *pc[2];
    uint32_t blk[2];
    uint32_t n, i;
    uint32_t doc[SH_BLOCK + 4];
} req_common;

/* The first doc >= *hi that terms a and b share, both moved to it, or
 * SH_NO_DOC when one of them runs out. */
static int common_of_two(bm_term *a, bm_term *b, req_common *cm, uint32_t *hi) {
    scorer *sa = &a->s.base, *sb = &b->s.base;
    const sh_postings *pa = &a->s.pc, *pb = &b->s.pc;
    uint32_t h = *hi;
    for (;;) {
        int rc;
        if ((rc = term_advance(sa, h)) || (rc = term_advance(sb, h))) return rc;
        if (sa->doc == SH_NO_DOC || sb->doc == SH_NO_DOC) {
            *hi = SH_NO_DOC;
            return 0;
        }
        if (sa->doc == sb->doc) {
            *hi = sa->doc;
            return 0;
        }
        h = SH_MAX(sa->doc, sb->doc);
        if (cm->pc[0] != pa || cm->pc[1] != pb || cm->blk[0] != pa->block ||
            cm->blk[1] != pb->block) {
            cm->pc[0] = pa;
            cm->pc[1] = pb;
            cm->blk[0] = pa->block;
            cm->blk[1] = pb->block;
            cm->n = (uint32_t)sh_intersect_sorted(pa->docs + pa->i, pa->n - pa->i,
                                                  pb->docs + pb->i, pb->n - pb->i, cm->doc);
            cm->i = 0;
        }
        while (cm->i < cm->n && cm->doc[cm->i] < h) cm->i++;
        if (cm->i < cm->n) {
            h = cm->doc[cm->i]; /* both move there; a field test may pass it */
            continue;
        }
        /* nothing shared in what is left of the two blocks: past the one
         * that ends first */
        h = SH_MAX(h, SH_MIN(pa->docs[pa->n - 1], pb->docs[pb->n - 1]) + 1);
    }
}

/* Move the required terms (slots req[0..nreq) of o) to the first doc >=
 * *d that all of them hold: *d, or SH_NO_DOC when one runs out.  The
 * first two find their common docs by blocks (common_of_two). */
static int required_align(bm_term *ts, const bm_slot *o, const size_t *req, size_t nreq,
                          req_common *common, uint32_t *d) {
    uint32_t hi = *d;
    for (int agree = 0; !agree && hi != SH_NO_DOC;) {
        agree = 1;
        size_t r = 0;
        if (nreq >= 2) {
            int rc = common_of_two(&ts[o[req[0]].t], &ts[o[req[1]].t], common, &hi);
            if (rc) return rc;
            r = 2;
        }
        for (; r < nreq && hi != SH_NO_DOC; r++) {
            scorer *sc = &ts[o[req[r]].t].s.base;
            int rc;
            if (sc->doc < hi && (rc = term_advance(sc, hi))) return rc;
            if (sc->doc != hi) { /* past hi: every term must reach it */
                agree = 0;
                hi = sc->doc;
            }
        }
    }
    *d = hi;
    return 0;
}

/* Prefill: when one term is much rarer than the others, its documents
 * are scored first, fully (every other term probed with cursors of its
 * own), and offered, so that the k-th best score is high from the start
 * and the long lists are mostly skipped.  The heap orders hits by score,
 * then (segment, doc), a total order, so the k best do not depend on
 * the order in which documents are offered; *seen (ascending) lists the
 * documents offered here, which the main loop must not offer again. */
#define PREFILL_RATIO 16   /* the rarest term's df at most 1/16 of the others' */
#define PREFILL_MAX 65536  /* and at most this: the list of docs seen is kept */
#define PREFILL_MAX_IMPACTS 4096 /* ... or this where block impacts apply */

static int maxscore_prefill(const seg_ctx *c, const bm_term *ts, size_t n, topk *t,
                            uint64_t *total, uint32_t **seen, size_t *nseen) {
    *seen = NULL;
    *nseen = 0;
    if (n < 2 || t->cap == 0) return 0;
    size_t r = 0;
    uint64_t others = 0;
    for (size_t j = 1; j < n; j++)
        if (ts[j].s.base.cost < ts[r].s.base.cost) r = j;
    for (size_t j = 0; j < n; j++)
        if (j != r) others += ts[j].s.base.cost;
    uint64_t df = ts[r].s.base.cost;
    /* worth it only when its docs fill the heap: the k-th score is then known */
    if (df > PREFILL_MAX || df * PREFILL_RATIO > others || t->n + df < t->cap) return 0;
    /* with block impacts the windows' bounds are tight enough that the
     * main loop sets the bar about as fast: scoring every doc of a rare
     * term that is not that rare costs more than it saves (1.2 M docs,
     * "zada said zubu", zada in 23,480: 9.0 ms -> 5.1 ms without) */
    if (c->xscale > 0 && df > PREFILL_MAX_IMPACTS) return 0;
    term_scorer *tmp = sh_calloc(n, sizeof *tmp);
    uint32_t *docs = sh_calloc(df ? df : 1, sizeof *docs);
    int rc = 0;
    if (!tmp || !docs) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < n; j++) {
        const term_scorer *src = &ts[j].s;
        term_scorer *s = &tmp[j];
        s->base = src->base;
        s->c = src->c;
        s->t = src->t;
        s->field = src->field;
        if ((rc = sh_postings_init(&s->pc, c->seg, &src->pc.ti, c->err)) ||
            (rc = sh_postings_range(&s->pc, c->lo, c->hi)) || (rc = term_settle(s)))
            goto fail;
    }
    const uint8_t *deleted = c->seg->deleted;
    size_t nd = 0;
    for (scorer *lead = &tmp[r].base; lead->doc != SH_NO_DOC && nd < df;) {
        uint32_t d = lead->doc;
        if (!sh_bit_get(deleted, d)) {
            double sum = 0; /* in clause order, as everywhere */
            for (size_t j = 0; j < n; j++) {
                if (j != r && (rc = term_advance(&tmp[j].base, d))) goto fail;
                if (tmp[j].base.doc == d) sum += term_score(&tmp[j].base);
            }
            sh_hitref h = {sum, c->si, d};
            (*total)++;
            topk_offer(t, &h);
            docs[nd++] = d;
        }
        if ((rc = term_next(lead))) goto fail;
    }
    sh_free(tmp);
    *seen = docs;
    *nseen = nd;
    return 0;
fail:
    sh_free(tmp);
    sh_free(docs);
    return rc;
}

/* MaxScore (Turtle and Flood, 1995) over windows of documents, with the
 * bounds of the blocks in each window (block-max MaxScore, as in Lucene's
 * MaxScoreBulkScorer).  A window runs from the smallest doc still to see
 * to the first end of a block among the terms, so that every term's bound
 * in it is its block's.  Terms are sorted by that bound; the longest
 * prefix whose bounds add up to less than the k-th best score is
 * "non-essential": a document holding none of the other terms cannot
 * enter.  A window whose bounds all add up to less is skipped without
 * decoding a block; in the others only the essential terms' postings are
 * walked, a candidate held against its bounds: without division when
 * one term is essential (x_skip) or all are (tangents); else the
 * essential terms' exact scores, then the non-essential terms probed
 * (advance) while their bounds say it could still enter. */
static int maxscore_segment(const seg_ctx *c, topk *t, uint64_t *total, int *pruned) {
    const sh_pnode *root = c->pl->root;
    bm_term *ts;
    size_t n;
    int rc = bm_terms_make(c, root->kids, root->nkids, &ts, &n);
    if (rc || !n) {
        sh_free(ts);
        return rc;
    }
    uint32_t *seen = NULL;
    size_t nseen = 0, iseen = 0;
    bm_slot *o = sh_calloc(n, sizeof *o);
    size_t *ord = sh_calloc(n, sizeof *ord); /* the terms of o, in its order */
    size_t *req = sh_calloc(n, sizeof *req); /* required slots of o */
    req_common common = {0};
    if (!o || !ord || !req) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = maxscore_prefill(c, ts, n, t, total, &seen, &nseen))) goto out;
    const uint8_t *deleted = c->seg->deleted;
    double limit = topk_limit(t);
    uint32_t start = SH_NO_DOC;
    /* a widening that did not keep the non-essential terms so is not
     * tried again for the windows that start up to here */
    int64_t no_span_to = -1;
    for (size_t j = 0; j < n; j++) start = SH_MIN(start, ts[j].s.base.doc);
    while (start != SH_NO_DOC) {
        /* the other threads' hits may have raised the bar */
        if (t->shared) limit = SH_MAX(limit, topk_limit(t));
        uint32_t wlast = SH_NO_DOC; /* the window is [start, wlast] */
        size_t live = 0;
        for (size_t j = 0; j < n; j++) {
            bm_term *b = &ts[j];
            uint32_t d = b->s.base.doc;
            if (d == SH_NO_DOC) continue;
            if (shallow_to(&b->sh, SH_MAX(start, d))) bm_term_bound(b);
            wlast = SH_MIN(wlast, b->sh.last);
            o[live++].t = j;
        }
        for (size_t q = 0; q < live; q++) o[q].ub = ts[o[q].t].ub;
        sort_slots(o, live);
        for (size_t q = 0; q < live; q++) o[q].pre = (q ? o[q - 1].pre : 0) + o[q].ub;
        size_t e = 0; /* slots [0, e) are non-essential */
        while (e < live && o[e].pre < limit) e++;
        /* the window ends with the essential terms' blocks: a frequent
         * word, non-essential, has blocks of a few hundred docs, and a
         * window per block of it costs more in bounds and sorting than
         * its candidates do; its blocks up to that end are bounded together
         * (shallow_span), and the slots are made again with those bounds */
        if (e && e < live && e <= MS_SPAN_TERMS && (int64_t)start > no_span_to) {
            uint32_t wess = SH_NO_DOC;
            for (size_t q = e; q < live; q++) wess = SH_MIN(wess, ts[o[q].t].sh.last);
            /* worth it when it saves many windows: the wider bounds are
             * looser, and probing pays for that */
            if (wess != SH_NO_DOC && wess - start > MS_SPAN_GAIN * ((uint64_t)wlast - start + 1)) {
                struct {
                    shallow sh;
                    double ub, it, ib;
                } keep[MS_SPAN_TERMS];
                for (size_t q = 0; q < e; q++) {
                    bm_term *b = &ts[o[q].t];
                    keep[q].sh = b->sh;
                    keep[q].ub = b->ub;
                    keep[q].it = b->it;
                    keep[q].ib = b->ib;
                    if (shallow_span(&b->sh, wess)) bm_term_bound(b);
                }
                double pre = 0;
                size_t e2 = 0;
                for (; e2 < e; e2++) { /* the widened bounds, smallest first */
                    pre += ts[o[e2].t].ub;
                    if (!(pre < limit)) break;
                }
                if (e2 == e) { /* the same terms stay non-essential */
                    wlast = wess;
                    for (size_t q = 0; q < live; q++) o[q].ub = ts[o[q].t].ub;
                    sort_slots(o, live);
                    for (size_t q = 0; q < live; q++)
                        o[q].pre = (q ? o[q - 1].pre : 0) + o[q].ub;
                    e = 0;
                    while (e < live && o[e].pre < limit) e++;
                } else {
                    /* as they were.  Not again before wess: the windows
                     * up to it would widen the same blocks to the same
                     * end, a window per block of the frequent word (a
                     * rare word with two frequent ones, 1.1 M docs,
                     * "matade pct could": 129 M -> 19 M instructions) */
                    no_span_to = wess;
                    for (size_t q = 0; q < e; q++) {
                        bm_term *b = &ts[o[q].t];
                        b->sh = keep[q].sh;
                        b->ub = keep[q].ub;
                        b->it = keep[q].it;
                        b->ib = keep[q].ib;
                    }
                }
            }
        }
        if (e) *pruned = 1;
        for (size_t q = e; q < live; q++) {
            scorer *sc = &ts[o[q].t].s.base;
            if (sc->doc < start && (rc = term_advance(sc, start))) goto out;
        }
        double xneed = 0;
        int tangents = 0; /* made when a candidate first needs them */
        for (size_t q = 0; q < live; q++) ord[q] = o[q].t;
        if (limit > -HUGE_VAL && e + 1 == live)
            xneed = x_needed(c->pl, ts[o[e].t].s.t->idf, limit, e ? o[e - 1].pre : 0);
        size_t nreq = required_slots(ts, o, live, e, limit, c->seg->ndocs, req);
        while (e < live) {
            uint32_t d = SH_NO_DOC;
            for (size_t q = e; q < live; q++) {
                /* most of the essential terms' docs become candidates and
                 * have their lengths read, a cache miss each on a large
                 * index: ask for them a few docs ahead */
                const sh_postings *pc = &ts[o[q].t].s.pc;
                if (pc->i + LENS_AHEAD < pc->n)
                    sh_segment_lens_prefetch(c->seg, pc->docs[pc->i + LENS_AHEAD]);
                d = SH_MIN(d, ts[o[q].t].s.base.doc);
            }
            if (d == SH_NO_DOC || d > wlast) break;
            if (xneed > 0) {
                term_scorer *es = &ts[o[e].t].s;
                if ((rc = x_skip(&ts[o[e].t], xneed, wlast, pruned))) goto out;
                d = es->base.doc;
                if (d == SH_NO_DOC || d > wlast) break;
            }
            /* the required terms' next common doc; with one essential
             * term, also one whose x can reach xneed (x_skip rules a doc
             * out by its tfs, before its lengths are read): both moves
             * again until they agree */
            while (nreq) {
                if ((rc = required_align(ts, o, req, nreq, &common, &d))) goto out;
                if (d == SH_NO_DOC || d > wlast) break;
                for (size_t q = e; q < live; q++) { /* every essential term at d or past */
                    scorer *sc = &ts[o[q].t].s.base;
                    if (sc->doc < d && (rc = term_advance(sc, d))) goto out;
                }
                if (!(xneed > 0)) break;
                term_scorer *es = &ts[o[e].t].s;
                if ((rc = x_skip(&ts[o[e].t], xneed, wlast, pruned))) goto out;
                if (es->base.doc == d) break;
                d = es->base.doc;
                if (d == SH_NO_DOC || d > wlast) break;
            }
            if (d == SH_NO_DOC || d > wlast) break;
            while (iseen < nseen && seen[iseen] < d) iseen++;
            int keep = !sh_bit_get(deleted, d) && !(iseen < nseen && seen[iseen] == d);
            if (keep && limit > -HUGE_VAL) {
                if (e) {
                    /* the essential terms' scores, then the others
                     * probed, best first, while their bounds could still
                     * lift d: probing a long list costs blocks, which
                     * exact scores save better than bounds.  Exact where
                     * x_skip has read d's lengths; else bounds from the
                     * tfs (tf_bound), no length read (a cache miss a
                     * candidate on a large index) until d has shown it
                     * holds enough of the terms: it is then scored
                     * exactly below */
                    int exact = xneed > 0;
                    double sum = 0;
                    for (size_t q = e; q < live; q++) {
                        bm_term *b = &ts[o[q].t];
                        if (b->s.base.doc == d) sum += probe(b, d, exact);
                    }
                    for (size_t q = e; q-- > 0;) {
                        if (sum + o[q].pre < limit) {
                            keep = 0;
                            *pruned = 1;
                            break;
                        }
                        bm_term *b = &ts[o[q].t];
                        if ((rc = term_advance(&b->s.base, d))) goto out;
                        if (b->s.base.doc == d) sum += probe(b, d, exact);
                    }
                    if (keep && sum < limit) { /* every term probed: the bounds fall short */
                        keep = 0;
                        *pruned = 1;
                    }
                } else {
                    /* every term essential: nothing to probe, and the
                     * bounds without division settle most candidates */
                    if (!tangents) {
                        bm_tangents(ts, ord, live, c->pl->k1, limit, 0);
                        tangents = 1;
                    }
                    double nt, nb, p = doc_norms(c, d, &nt, &nb), sum = 0;
                    for (size_t q = 0; q < live; q++) {
                        const bm_term *b = &ts[o[q].t];
                        if (b->s.base.doc == d) sum += scaled_bound(b, nt, nb, p);
                    }
                    if (sum * BOUND_MARGIN < limit * p) {
                        keep = 0;
                        *pruned = 1;
                    }
                }
            } else if (keep) {
                for (size_t q = 0; q < e; q++)
                    if ((rc = term_advance(&ts[o[q].t].s.base, d))) goto out;
            }
            if (keep) {
                /* every term is at d or past it: the exact score, summed
                 * in clause order as the generic path does */
                double sum = 0;
                for (size_t j = 0; j < n; j++) {
                    bm_term *b = &ts[j];
                    if (b->s.base.doc == d)
                        sum += b->cdoc == d ? b->contrib : term_score(&b->s.base);
                }
                sh_hitref h = {sum, c->si, d};
                (*total)++;
                topk_offer(t, &h);
                double nl = topk_limit(t);
                if (nl > limit) {
                    limit = nl;
                    while (e < live && o[e].pre < limit) e++;
                    if (e) *pruned = 1;
                    if (e + 1 == live)
                        xneed = x_needed(c->pl, ts[o[e].t].s.t->idf, limit, e ? o[e - 1].pre : 0);
                    nreq = required_slots(ts, o, live, e, limit, c->seg->ndocs, req);
                    tangents = 0;
                }
            }
            for (size_t q = e; q < live; q++) {
                scorer *sc = &ts[o[q].t].s.base;
                if (sc->doc == d && (rc = term_next(sc))) goto out;
            }
        }
        if (wlast == SH_NO_DOC) break; /* the window ran to the end */
        start = SH_NO_DOC;
        for (size_t j = 0; j < n; j++) {
            uint32_t d = ts[j].s.base.doc;
            if (d != SH_NO_DOC) start = SH_MIN(start, SH_MAX(d, wlast + 1));
        }
    }
out:
    sh_free(seen);
    sh_free(o);
    sh_free(ord);
    sh_free(req);
    sh_free(ts);
    return rc;
}

/* ---- block-max conjunction of terms ------------------------------------ */

/* Is this plan a conjunction of plain terms ("a AND b", "+a +b")?  The
 * BOOL whose clauses are those terms, or NULL.  Either way the score is
 * the sum of the terms' scores in clause order. */
static const sh_pnode *conj_applies(const sh_pnode *root) {
    if (root->kind != SH_Q_BOOL || root->nkids == 0) return NULL;
    const sh_pnode *b = root;
    if (root->nkids == 1 && root->occur[0] != SH_OCCUR_MUST_NOT &&
        root->kids[0]->kind == SH_Q_BOOL)
        b = root->kids[0];
    if (b->nkids == 0) return NULL;
    for (size_t i = 0; i < b->nkids; i++)
        if (b->occur[i] != SH_OCCUR_MUST || b->kids[i]->kind != SH_Q_TERM) return NULL;
    return b;
}

static int cmp_cost(const void *a, const void *b) {
    const bm_term *const *x = a, *const *y = b;
    uint64_t cx = (*x)->s.base.cost, cy = (*y)->s.base.cost;
    return cx < cy ? -1 : cx > cy;
}

/* The first k >= i with docs[k] >= x (n if none), docs ascending: the
 * seek of a cursor (its next eight docs counted without a branch, the
 * candidates of a conjunction of like lists lying a few docs apart, then
 * a binary search for those of a rare lead, far apart). */
static inline uint32_t conj_find(const uint32_t *docs, uint32_t i, uint32_t n, uint32_t x) {
    if (i >= n || docs[n - 1] < x) return n;
    return sh_postings_seek_in_block(docs, i, n, x);
}

/* Move term scorer s to its first doc >= x, x at most its held block's
 * last doc (and at or after its doc): what term_advance does, without its
 * calls.  1 when x is its doc then, 0 when not (*rc set on an error, or
 * the doc SH_NO_DOC when a field restriction left no docs). */
static inline int conj_seek(term_scorer *s, uint32_t x, int *rc) {
    if (s->base.doc >= x) return s->base.doc == x; /* there already, or past x */
    if (s->field != SH_FIELD_ANY) {
        if ((*rc = term_advance(&s->base, x)) || s->base.doc == SH_NO_DOC) return 0;
        return s->base.doc == x;
    }
    sh_postings *pc = &s->pc;
    pc->i = conj_find(pc->docs, pc->i, pc->n, x);
    pc->doc = s->base.doc = pc->docs[pc->i];
    return pc->doc == x;
}

/* Compared a block at a time only with terms at most this many times as
 * frequent as the lead: past it, a doc of the lead's is a few probes of a
 * block (skip table, then binary search) and the compares would mostly
 * pass docs the lead does not have. */
#define WINDOW_SKEW 8

/* A conjunction's evaluation in one segment: its terms (ts, clause
 * order), the k-th best score so far, the sum of the bounds of the blocks
 * holding the current doc (bsum) and those the tangents were made for.
 * The functions that share it are inlined into conj_segment (CONJ_AI),
 * so that it never leaves registers for memory in the per-doc loops. */
typedef struct conj_state {
    const seg_ctx *c;
    bm_term *ts;
    size_t n;
    topk *t;
    uint64_t *total;
    int *pruned;
    double limit, bsum, tsum, tlimit;
} conj_state;

/* The tangents for the current blocks and k-th best score. */
#define CONJ_AI static inline __attribute__((always_inline))

CONJ_AI void conj_tangents(conj_state *st) {
    if (st->bsum != st->tsum || st->limit != st->tlimit) {
        bm_tangents(st->ts, NULL, st->n, st->c->pl->k1, st->limit, 1);
        st->tsum = st->bsum;
        st->tlimit = st->limit;
    }
}

/* Doc x, every cursor on it: bounded by its terms' frequencies (p >= 0:
 * its norms nt, nb, p already worked out) and, unless that rules it out,
 * scored and offered. */
CONJ_AI void conj_offer(conj_state *st, uint32_t x, double nt, double nb, double p) {
    if (sh_bit_get(st->c->seg->deleted, x)) return;
    if (st->limit > -HUGE_VAL) {
        conj_tangents(st);
        double sum = 0;
        if (p < 0) p = doc_norms(st->c, x, &nt, &nb);
        for (size_t j = 0; j < st->n; j++) sum += scaled_bound(&st->ts[j], nt, nb, p);
        if (sum * BOUND_MARGIN < st->limit * p) {
            *st->pruned = 1;
            return;
        }
    }
    double sum = 0;
    for (size_t j = 0; j < st->n; j++) sum += term_score(&st->ts[j].s.base);
    sh_hitref h = {sum, st->c->si, x};
    (*st->total)++;
    topk_offer(st->t, &h);
    st->limit = topk_limit(st->t);
}

/* The blocks holding doc d, shallow: their bounds added up into bsum;
 * the first end of one of them, or SH_NO_DOC when a term has no doc >= d. */
CONJ_AI uint32_t conj_blocks(conj_state *st, uint32_t d) {
    uint32_t wend = SH_NO_DOC;
    st->bsum = 0;
    for (size_t j = 0; j < st->n; j++) {
        if (shallow_to(&st->ts[j].sh, d)) bm_term_bound(&st->ts[j]);
        st->bsum += st->ts[j].ub;
        wend = SH_MIN(wend, st->ts[j].sh.last);
    }
    return wend;
}

/* Leapfrog led by the rarest term, for a lead far rarer than the other
 * terms.  Before the others are moved to a candidate, the bounds of the
 * blocks holding it are added up: when they cannot reach the k-th best
 * score, every doc up to the first end of one of those blocks is
 * skipped. */
CONJ_AI int conj_leapfrog(conj_state *st, bm_term **drive) {
    scorer *lead = &drive[0]->s.base;
    uint32_t d = lead->doc;
    for (;;) {
        int rc = term_advance(lead, d);
        if (rc) return rc;
        d = lead->doc;
        if (d == SH_NO_DOC) return 0;
        if (st->limit > -HUGE_VAL) {
            uint32_t wlast = conj_blocks(st, d);
            if (wlast == SH_NO_DOC) return 0; /* a term has no doc >= d */
            if (st->bsum < st->limit) {
                *st->pruned = 1;
                d = wlast + 1;
                continue;
            }
        }
        int aligned = 1;
        for (size_t j = 1; j < st->n; j++) {
            scorer *sc = &drive[j]->s.base;
            if ((rc = term_advance(sc, d))) return rc;
            if (sc->doc == SH_NO_DOC) return 0;
            if (sc->doc != d) {
                d = sc->doc;
                aligned = 0;
                break;
            }
        }
        if (!aligned) continue;
        conj_offer(st, d, 0, 0, -1);
        d++; /* d < ndocs <= SH_NO_DOC - 1 */
    }
}

/* The candidates of a window cand[0..ncand) up to wend, when every one of
 * them holds every term (all compared, none restricted to a field) and
 * the k-th best score is known: each bounded by its terms' frequencies,
 * read where the held blocks have them, before any cursor moves to it.
 * Those the bound rules out are left out; the others go to keep, their
 * norms (nt, nb, p) to nrm.  Ruled out with the k-th best score of the
 * window's start and the tangents of then, a doc is one conj_offer would
 * rule out too: the k-th best only rises, and any tangent bounds the
 * score.  Nearly every candidate of two frequent words is ruled out here
 * (130,000 of 131,000 for 'year AND share' on 1 GB of generated news), in
 * a loop with no branch on the data but the verdict: moving the cursors
 * to each first, and a trial of the blocks' largest frequencies before
 * that, cost a third more.  Returns how many were kept. */
CONJ_AI size_t conj_bulk(conj_state *st, bm_term **drive, const uint32_t *cand, size_t ncand,
                         uint32_t wend, uint32_t *keep, double (*nrm)[3]) {
    size_t n = st->n, k = 0;
    conj_tangents(st);
    for (size_t j = 0; j < n; j++) {
        const sh_postings *pc = &drive[j]->s.pc;
        if (!pc->tf_ready) sh_postings_load_tfs(pc);
        drive[j]->at = pc->i;
    }
    const double wt = st->c->pl->wt, limit = st->limit;
    for (size_t ci = 0; ci < ncand && cand[ci] <= wend; ci++) {
        uint32_t x = cand[ci];
        double nt, nb, p = doc_norms(st->c, x, &nt, &nb), sum = 0;
        for (size_t j = 0; j < n; j++) {
            bm_term *b = drive[j];
            const sh_postings *pc = &b->s.pc;
            /* x is in the block: counted, not looped to (a branch a doc) */
            uint32_t a = b->at = sh_postings_seek_in_block(pc->docs, b->at, pc->n, x);
            double y = wt * pc->tft[a] * nb + pc->tfb[a] * nt;
            double t = b->ta * p + b->tb * y, u = b->ub * p;
            sum += t < u ? t : u;
        }
        if (sum * BOUND_MARGIN < limit * p) {
            *st->pruned = 1;
            continue;
        }
        keep[k] = x;
        nrm[k][0] = nt;
        nrm[k][1] = nb;
        nrm[k][2] = p;
        k++;
    }
    return k;
}

/* Led by the rarest term, a window at a time: the docs from d to the
 * first end of a block held by one of the terms.  Before the other terms
 * are moved into a window, the bounds of the blocks holding it are added
 * up: when they cannot reach the k-th best score, the window is skipped.
 * Otherwise the candidates are the docs the held blocks share in the
 * window, found by SIMD compares (sh_intersect_sorted) rather than by
 * moving cursors doc by doc; a term far more frequent than the lead is
 * not compared but sought, candidate by candidate.  Only the candidates
 * are visited, in doc order, as the leapfrog would find them: the same
 * docs are bounded, scored and offered in the same order, so the results
 * are those of the leapfrog (and of the generic BOOL scorer).  A term
 * restricted to a field may hold a candidate outside that field: moving
 * its cursor to the candidate then passes it, and the candidate is
 * dropped. */
CONJ_AI int conj_windows(conj_state *st, bm_term **drive) {
    size_t n = st->n;
    scorer *lead = &drive[0]->s.base;
    uint32_t d = lead->doc;
    /* candidates: two buffers, for the running intersection of 3+ terms */
    uint32_t cbuf[2][SH_BLOCK + 4];
    /* the candidates conj_bulk keeps, and their norms */
    uint32_t kbuf[SH_BLOCK + 4];
    double knrm[SH_BLOCK + 4][3];
    /* every candidate a match (all terms compared, none restricted to a
     * field): bounded all at once (conj_bulk) */
    int matches = drive[n - 1]->s.base.cost <= lead->cost * WINDOW_SKEW;
    for (size_t j = 0; j < n; j++) matches &= drive[j]->s.field == SH_FIELD_ANY;
    for (;;) {
        int rc = term_advance(lead, d);
        if (rc) return rc;
        d = lead->doc;
        if (d == SH_NO_DOC) return 0;
        uint32_t wend = SH_NO_DOC; /* the window's last doc */
        int bounded = st->limit > -HUGE_VAL;
        if (bounded) {
            wend = conj_blocks(st, d);
            if (wend == SH_NO_DOC) return 0; /* a term has no doc >= d */
            if (st->bsum < st->limit) {
                *st->pruned = 1;
                d = wend + 1;
                continue;
            }
        }
        /* every cursor on a block holding docs >= d */
        for (size_t j = 1; j < n; j++) {
            scorer *sc = &drive[j]->s.base;
            if ((rc = term_advance(sc, d))) return rc;
            if (sc->doc == SH_NO_DOC) return 0;
        }
        for (size_t j = 0; j < n; j++) {
            const sh_postings *pc = &drive[j]->s.pc;
            wend = SH_MIN(wend, pc->docs[pc->n - 1]);
        }
        uint32_t next = wend + 1; /* wend < ndocs <= SH_NO_DOC - 1 */
        const sh_postings *lp = &drive[0]->s.pc;
        const uint32_t *cand = lp->docs + lp->i;
        size_t ncand = lp->n - lp->i;
        for (size_t j = 1; j < n; j++) {
            const sh_postings *pc = &drive[j]->s.pc;
            if (lead->cost * WINDOW_SKEW < drive[j]->s.base.cost) continue; /* sought instead */
            uint32_t *o = cbuf[(j - 1) & 1];
            ncand = sh_intersect_sorted(cand, ncand, pc->docs + pc->i, pc->n - pc->i, o);
            cand = o;
        }
        int bulk = bounded && matches;
        if (bulk) {
            /* every candidate will have its lengths read */
            for (size_t ci = 0; ci < ncand && cand[ci] <= wend; ci++)
                sh_segment_lens_prefetch(st->c->seg, cand[ci]);
            ncand = conj_bulk(st, drive, cand, ncand, wend, kbuf, knrm);
            cand = kbuf;
        }
        for (size_t ci = 0; ci < ncand && cand[ci] <= wend; ci++) {
            uint32_t x = cand[ci];
            if (bounded && st->bsum < st->limit) { /* the k-th best rose past the blocks' bound */
                *st->pruned = 1;
                break;
            }
            double nt = 0, nb = 0, p = -1; /* x's norms, once worked out (p >= 0) */
            if (bulk) {
                nt = knrm[ci][0];
                nb = knrm[ci][1];
                p = knrm[ci][2];
            }
            int aligned = 1;
            for (size_t j = 0; j < n && aligned; j++) {
                aligned = conj_seek(&drive[j]->s, x, &rc);
                if (rc) return rc;
                if (drive[j]->s.base.doc == SH_NO_DOC) return 0;
            }
            if (!aligned) continue;
            conj_offer(st, x, nt, nb, p);
            if (!bounded && st->limit > -HUGE_VAL) {
                /* the k-th best is known from here on: the blocks' bounds
                 * are worked out for the docs after x */
                next = x + 1;
                break;
            }
        }
        d = next;
    }
}

/* A conjunction of terms in one segment: by windows (conj_windows), or
 * doc by doc (conj_leapfrog) when the rarest term is far rarer than every
 * other. */
static int conj_segment(const seg_ctx *c, const sh_pnode *b, topk *t, uint64_t *total,
                        int *pruned) {
    bm_term *ts;
    size_t n;
    int rc = bm_terms_make(c, b->kids, b->nkids, &ts, &n);
    if (rc || n < b->nkids) { /* a term the segment lacks: nothing matches here */
        sh_free(ts);
        return rc;
    }
    bm_term **drive = sh_calloc(n, sizeof *drive);
    if (!drive) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t j = 0; j < n; j++) drive[j] = &ts[j];
    qsort(drive, n, sizeof *drive, cmp_cost);
    conj_state st = {c, ts, n, t, total, pruned, topk_limit(t), 0, -1, -HUGE_VAL};
    if (n > 1 && drive[0]->s.base.cost * WINDOW_SKEW < drive[1]->s.base.cost)
        rc = conj_leapfrog(&st, drive);
    else
        rc = conj_windows(&st, drive);
out:
    sh_free(drive);
    sh_free(ts);
    return rc;
}

/* ---- block-max phrase --------------------------------------------------- */

/* Is this plan a single phrase?  The phrase node, or NULL. */
static const sh_pnode *phrase_applies(const sh_pnode *root) {
    if (root->kind != SH_Q_BOOL || root->nkids != 1 || root->occur[0] == SH_OCCUR_MUST_NOT ||
        root->kids[0]->kind != SH_Q_PHRASE)
        return NULL;
    return root->kids[0];
}

/* The least body x (bm25's tf / norm) a document must exceed to have a
 * score of at least limit, lowered by a margin far above rounding: a
 * document with no title part and tfb < xcut * norm cannot enter, and no
 * division is needed to see it.  0 (nothing ruled out this way) when the
 * limit is not in (0, idf). */
static double phrase_xcut(const sh_plan *pl, double idf, double limit) {
    if (!(limit > 0 && limit < idf)) return 0;
    return pl->k1 * limit / (idf - limit) * (1 - 1e-6);
}

/* The window loop of a two-word phrase (phrase2_window).  A window
 * spans at most PHRASE_WINDOW_SPAN doc ids: 7 bits of a 32-bit key, a
 * field bit, and 24 bits of position (PHRASE_KEY_POS; a window whose
 * positions reach it goes one doc at a time).  It is tried only where
 * both terms have PHRASE_WINDOW_MIN docs in it, and taken when its
 * position bytes, plus PHRASE_WINDOW_FIXED for the work of any window,
 * are at most PHRASE_WINDOW_RATIO per doc whose positions the doc at a
 * time loop would read.  The numbers are measured (bench/macro.sh's
 * phrase2 class on UNGDC): a read there costs about as much as 96 bytes
 * of positions here; below 16 docs the fixed costs dominate. */
#define PHRASE_WINDOW_SPAN 128u
#define PHRASE_KEY_POS (1u << 24)
#define PHRASE_WINDOW_MIN 16u
#define PHRASE_WINDOW_FIXED 128u
#define PHRASE_WINDOW_RATIO 96u
/* Windows not worth it in a row double the stretch of docs gone through
 * one at a time before the next try, up to this many windows: a phrase
 * the windows do not suit pays for few tries. */
#define PHRASE_WINDOW_BACKOFF 16u
/* More values than this in a window (a word hundreds of thousands of
 * times in each of its docs) go one doc at a time: the window's buffers
 * stay far from 32-bit sizes. */
#define PHRASE_WINDOW_VALUES (1u << 28)

/* Keys of term i's runs for docs [i0, i1) of its held block, g holding
 * their values decoded as one (nv of them, then room for one more): doc
 * (less d) in bits 25..31, field in bit 24 (title 0, body 1), position
 * plus add below.  A run's positions are g less the value before the run
 * (0 for the first): that difference D is the same over a run, so its
 * steps are put at the runs' starts in z and summed as the keys are
 * written, one pass with no branch per run. */
static void window_keys(const sh_postings *pc, const posrun *r, uint32_t i0, uint32_t i1,
                        uint32_t d, uint32_t add, uint32_t *g, uint32_t nv, uint32_t *z) {
    memset(z, 0, ((size_t)nv + 1) * sizeof *z);
    uint32_t prev = 0;
    uint64_t c0 = r->cum[i0];
    for (uint32_t j = i0; j < i1; j++) {
        uint32_t at = (uint32_t)(r->cum[j] - c0), kb = ((pc->docs[j] - d) << 25) + add;
        uint32_t D = kb - (at ? g[at - 1] : 0);
        z[at] += D - prev;
        prev = D;
        at += pc->tft[j];
        D = kb + PHRASE_KEY_POS - (at ? g[at - 1] : 0);
        z[at] += D - prev;
        prev = D;
    }
    uint32_t acc = 0;
    for (uint32_t x = 0; x < nv; x++) {
        acc += z[x];
        g[x] += acc;
    }
}

/* The bytes of the held block's positions (from the skip records; a
 * term of one block has them all). */
static uint64_t block_pos_bytes(const sh_postings *pc) {
    if (!pc->skip) return pc->ti.pos_len;
    uint64_t end = pc->block + 1 < pc->nblocks
                       ? sh_load_u64(pc->skip + (size_t)(pc->block + 1) * SH_SKIPREC + 8)
                       : pc->ti.pos_len;
    return end > pc->block_pos_off ? end - pc->block_pos_off : 0;
}

/* A two-word phrase over a window of documents at once: from d (the
 * lead's doc) to the end of the first of the two held blocks to end, at
 * most PHRASE_WINDOW_SPAN ids.  Each term's runs there are decoded by one
 * call and made into keys (window_keys) that sort by doc, field and
 * position, term 0's shifted by the phrase offset, so that the phrase's
 * starts in every doc are the keys the two lists share: one merge
 * (sh_intersect_sorted) instead of, per doc, a seek, two decodes and a
 * count, each a loop of a few steps whose end the CPU mispredicts.  Every
 * doc of the window is counted exactly (nothing is pruned), and its hits
 * are offered in doc order as the doc at a time loop would.  It pays
 * where most docs of the window would have their positions read: the
 * docs of the lead that its frequency does not rule out (as in that
 * loop), against the window's share of the two blocks' position bytes
 * (PHRASE_WINDOW_RATIO).  Returns 0 when done, *next the doc to go on
 * from; PHRASE_WINDOW_COST when not worth it, PHRASE_WINDOW_SHORT when
 * a block ends first (or a value the checked path must judge), the docs
 * up to *next then go one at a time; < 0: an error. */
enum { PHRASE_WINDOW_COST = 1, PHRASE_WINDOW_SHORT = 2 };

static int phrase2_window(const seg_ctx *c, phrase_scorer *s, uint32_t d, topk *t,
                          uint64_t *total, double *limit, double *xcut, uint32_t *next) {
    const sh_pnode *pn = s->n;
    const sh_plan *pl = c->pl;
    size_t li = s->lead;
    sh_postings *lead = &s->pc[li], *other = &s->pc[1 - li];
    uint32_t rel = pn->pos[1] - pn->pos[0];
    *next = d;
    if (rel >= PHRASE_KEY_POS) {
        *next = SH_NO_DOC - 1; /* never: one at a time throughout */
        return PHRASE_WINDOW_SHORT;
    }
    /* the lead alone first: a sparse one costs no move of the other */
    uint32_t last =
        d < SH_NO_DOC - PHRASE_WINDOW_SPAN ? d + (PHRASE_WINDOW_SPAN - 1) : SH_NO_DOC - 1;
    if (lead->n - lead->i < PHRASE_WINDOW_MIN) {
        *next = lead->docs[lead->n - 1];
        return PHRASE_WINDOW_SHORT;
    }
    if (lead->docs[lead->i + PHRASE_WINDOW_MIN - 1] > last) return PHRASE_WINDOW_COST;
    int rc = sh_postings_advance(other, d);
    if (rc) return rc;
    if (other->doc == SH_NO_DOC || other->doc > lead->docs[lead->n - 1])
        return PHRASE_WINDOW_SHORT; /* the doc at a time loop moves on */
    uint32_t wend = SH_MIN(lead->docs[lead->n - 1], other->docs[other->n - 1]);
    wend = SH_MIN(wend, last);
    *next = wend;
    uint32_t i0[2], i1[2], nv[2];
    for (size_t i = 0; i < 2; i++) {
        sh_postings *pc = &s->pc[i];
        i0[i] = pc->i;
        i1[i] = pc->docs[pc->n - 1] > wend
                    ? sh_postings_seek_in_block(pc->docs, pc->i, pc->n, wend + 1)
                    : pc->n;
        if (i1[i] - i0[i] < PHRASE_WINDOW_MIN) return PHRASE_WINDOW_SHORT;
    }
    /* first from what is known without a loop: each term's share of its
     * block's position bytes (a value takes one or two), against the
     * docs of the sparser term */
    uint32_t ndocs = SH_MIN(i1[0] - i0[0], i1[1] - i0[1]);
    uint64_t bytes = PHRASE_WINDOW_FIXED;
    for (size_t i = 0; i < 2; i++)
        bytes += block_pos_bytes(&s->pc[i]) * (i1[i] - i0[i]) / s->pc[i].n;
    if (bytes > (uint64_t)PHRASE_WINDOW_RATIO * ndocs) return PHRASE_WINDOW_COST;
    if (*xcut > 0 && pn->field != SH_FIELD_TITLE) {
        if (!lead->tf_ready) sh_postings_load_tfs(lead);
        uint32_t reads = 0;
        for (uint32_t j = i0[li]; j < i1[li]; j++)
            reads += (pn->field != SH_FIELD_BODY && lead->tft[j]) ||
                     lead->tfb[j] >= *xcut * (pl->norm0 + pl->normb * sh_segment_len_body(
                                                                         c->seg, lead->docs[j]));
        if (reads < PHRASE_WINDOW_MIN || bytes > (uint64_t)PHRASE_WINDOW_RATIO * reads)
            return PHRASE_WINDOW_COST;
    }
    /* each term's values into pos[2i]; nothing changes until all decode */
    const uint8_t *q[2];
    for (size_t i = 0; i < 2; i++) {
        sh_postings *pc = &s->pc[i];
        const uint64_t *cum = run_cum(&s->run[i], pc, i1[i]);
        const uint8_t *p = phrase_seek(s, i);
        if (!p) return positions_damaged(s, i);
        /* a value takes a byte at least: damaged tfs (0 once found, or
         * too many) go to the doc at a time loop, which reports them */
        uint64_t want = cum[i1[i]] - cum[i0[i]];
        if (!want || want > (uint64_t)(pc->posend - p) || want > PHRASE_WINDOW_VALUES)
            return PHRASE_WINDOW_SHORT;
        nv[i] = (uint32_t)want;
        if ((rc = grow_pos(s, 2 * i, nv[i] + SH_GAPS_PAD))) return rc;
        q[i] = sh_read_gaps_padded(p, pc->posend, nv[i], s->pos[2 * i]);
        /* the last value bounds every position: all must fit a key */
        if (!q[i] || s->pos[2 * i][nv[i] - 1] >= PHRASE_KEY_POS - rel) return PHRASE_WINDOW_SHORT;
    }
    size_t cap = (size_t)nv[0] + nv[1] + SH_POSTINGS_AND_ROOM;
    if ((rc = grow_pos(s, 1, SH_MAX(nv[0], nv[1]) + 1)) || (rc = grow_pos(s, 3, (uint32_t)cap)))
        return rc;
    for (size_t i = 0; i < 2; i++) {
        window_keys(&s->pc[i], &s->run[i], i0[i], i1[i], d, i ? 0 : rel, s->pos[2 * i], nv[i],
                    s->pos[1]);
        s->run[i].p = q[i];
        s->run[i].i = i1[i];
    }
    /* the shared keys, ascending, each at least once (sh_intersect_sorted
     * on lists that may repeat a value: two tokens at one position) */
    uint32_t *m = s->pos[3];
    size_t nm = sh_intersect_sorted(s->pos[0], nv[0], s->pos[2], nv[1], m);
    const uint8_t *deleted = c->seg->deleted;
    for (size_t k = 0; k < nm;) {
        uint32_t doc = d + (m[k] >> 25), pf[2] = {0, 0}; /* title, body */
        for (uint32_t hi = m[k] >> 25; k < nm && m[k] >> 25 == hi;) {
            uint32_t x = m[k];
            pf[(x >> 24) & 1]++;
            while (k < nm && m[k] == x) k++; /* a start counted once */
        }
        if (pn->field == SH_FIELD_BODY) pf[0] = 0;
        if (pn->field == SH_FIELD_TITLE) pf[1] = 0;
        if (pf[0] + pf[1] == 0 || sh_bit_get(deleted, doc)) continue;
        sh_hitref h = {bm25(c, pn->field, pn->idf, pf[0], pf[1], doc, NULL), c->si, doc};
        (*total)++;
        topk_offer(t, &h);
        double nl = topk_limit(t);
        if (nl != *limit) {
            *limit = nl;
            *xcut = phrase_xcut(pl, pn->idf, nl);
        }
    }
    *next = wend + 1;
    return 0;
}

/* The first doc of the lead, from its cursor, that its own frequencies
 * do not rule out (a phrase not restricted to titles: tfb below xcut
 * times the doc's body norm, and no title occurrence unless the phrase is
 * restricted to bodies), looked for in one loop over the held block up to
 * wlast: the cursor is moved there when it is in the block.  Returns
 * that doc, or, none standing there, the doc after wlast or after the
 * block, whichever comes first.  In the doc at a time loop each of those
 * docs went round the whole loop (cursor, blocks, bounds) to be passed:
 * for "said company" on 1 GB of generated news, 414,000 docs of the lead
 * and 29,000 that stand. */
static uint32_t phrase_lead_pass(const seg_ctx *c, const sh_pnode *pn, sh_postings *lead,
                                 double xcut, uint32_t wlast, int *pruned) {
    const sh_plan *pl = c->pl;
    if (!lead->tf_ready) sh_postings_load_tfs(lead);
    const uint32_t *docs = lead->docs, *tft = lead->tft, *tfb = lead->tfb;
    const int title = pn->field != SH_FIELD_BODY;
    uint32_t i = lead->i, n = lead->n;
    for (; i < n && docs[i] <= wlast; i++)
        if ((title && tft[i]) ||
            tfb[i] >= xcut * (pl->norm0 + pl->normb * sh_segment_len_body(c->seg, docs[i])))
            break;
    if (i != lead->i) *pruned = 1;
    if (i < n && docs[i] <= wlast) {
        lead->i = i;
        lead->doc = docs[i];
        return docs[i];
    }
    /* docs[n - 1] < wlast <= SH_NO_DOC - 1, or docs[i] > wlast */
    return i < n ? wlast + 1 : docs[n - 1] + 1;
}

/* A phrase's frequency in a field is at most the frequency of each of its
 * terms there (a start is counted once, and each start puts term i on a
 * distinct position), so the blocks holding a candidate bound its score
 * by their smallest largest frequencies and largest smallest lengths, and
 * the candidate's own term frequencies bound it more tightly.  Positions
 * are read only when neither bound rules the candidate out.  The blocks'
 * bound is worked out again only when a block or the limit changes. */
static int phrase_segment(const seg_ctx *c, const sh_pnode *pn, topk *t, uint64_t *total,
                          int *pruned) {
    phrase_scorer *s;
    int rc = phrase_open(c, pn, &s);
    if (rc || !s) return rc;
    size_t nt = s->nt;
    shallow *sh = sh_calloc(nt, sizeof *sh);
    if (!sh) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nt; i++) {
        if (s->pc[i].doc == SH_NO_DOC) goto out;
        shallow_init(&sh[i], &s->pc[i]);
    }
    const sh_plan *pl = c->pl;
    const uint8_t *deleted = c->seg->deleted;
    double limit = topk_limit(t), xcut = phrase_xcut(pl, pn->idf, limit), bbound = 0;
    int bstale = 1;
    sh_postings *lead = &s->pc[s->lead];
    /* docs below single_to go one at a time (PHRASE_WINDOW_BACKOFF) */
    uint32_t d = lead->doc, single_to = 0, backoff = 0;
    for (;;) {
        if ((rc = sh_postings_advance(lead, d))) goto out;
        d = lead->doc;
        if (d == SH_NO_DOC) break;
        uint32_t wlast = SH_NO_DOC; /* the first end of a block holding d */
        if (limit > -HUGE_VAL) {
            for (size_t i = 0; i < nt; i++) {
                bstale |= shallow_to(&sh[i], d);
                wlast = SH_MIN(wlast, sh[i].last);
            }
            if (wlast == SH_NO_DOC) break; /* a term has no doc >= d */
            if (bstale) {
                blockrec r = {UINT32_MAX, UINT32_MAX, 0, 0};
                for (size_t i = 0; i < nt; i++) {
                    r.max_tft = SH_MIN(r.max_tft, sh[i].r.max_tft);
                    r.max_tfb = SH_MIN(r.max_tfb, sh[i].r.max_tfb);
                    r.min_lent = SH_MAX(r.min_lent, sh[i].r.min_lent);
                    r.min_lenb = SH_MAX(r.min_lenb, sh[i].r.min_lenb);
                }
                bbound = bound_of(pl, pn->field, pn->idf, &r);
                bstale = 0;
            }
            if (bbound < limit) {
                *pruned = 1;
                d = wlast + 1;
                continue;
            }
        }
        if (nt == 2 && d >= single_to) {
            uint32_t next;
            if ((rc = phrase2_window(c, s, d, t, total, &limit, &xcut, &next)) < 0) goto out;
            if (rc == 0) {
                backoff = 0;
                d = next;
                continue;
            }
            uint32_t more = rc == PHRASE_WINDOW_COST ? backoff : 0;
            single_to = next >= SH_NO_DOC - 1 - more ? SH_NO_DOC : next + 1 + more;
            if (rc == PHRASE_WINDOW_COST)
                backoff = SH_MIN(2 * backoff + PHRASE_WINDOW_SPAN,
                                 PHRASE_WINDOW_BACKOFF * PHRASE_WINDOW_SPAN);
            rc = 0;
        }
        /* the lead's own frequencies bound the phrase's too: the docs they
         * rule out are passed without moving the other cursors */
        if (xcut > 0 && pn->field != SH_FIELD_TITLE) {
            uint32_t stand = phrase_lead_pass(c, pn, lead, xcut, wlast, pruned);
            if (stand != d) { /* past d: its blocks and window are looked at again */
                d = stand;
                continue;
            }
        }
        int aligned = 1;
        for (size_t i = 0; i < nt; i++) {
            if (i == s->lead) continue;
            if ((rc = sh_postings_advance(&s->pc[i], d))) goto out;
            if (s->pc[i].doc == SH_NO_DOC) goto out;
            if (s->pc[i].doc != d) {
                d = s->pc[i].doc;
                aligned = 0;
                break;
            }
        }
        if (!aligned) continue;
        uint32_t mt, mb;
        phrase_min_tfs(s, &mt, &mb);
        if ((mt || mb) && !sh_bit_get(deleted, d)) {
            if (limit > -HUGE_VAL &&
                (!mt ? mb < xcut * (pl->norm0 + pl->normb * sh_segment_len_body(c->seg, d))
                     : bm25(c, pn->field, pn->idf, mt, mb, d, NULL) < limit)) {
                *pruned = 1;
            } else {
                if ((rc = phrase_freqs(s, mt, mb))) goto out;
                if (s->pft + s->pfb > 0) {
                    sh_hitref h = {bm25(c, pn->field, pn->idf, s->pft, s->pfb, d, NULL), c->si, d};
                    (*total)++;
                    topk_offer(t, &h);
                    double nl = topk_limit(t);
                    if (nl != limit) {
                        limit = nl;
                        xcut = phrase_xcut(pl, pn->idf, limit);
                    }
                }
            }
        }
        d++; /* d < ndocs <= SH_NO_DOC - 1 */
    }
out:
    sh_free(sh);
    phrase_destroy(&s->base);
    return rc;
}

/* ---- running a plan ----------------------------------------------------- */

/* How a plan is run: which loop. */
typedef struct run_mode {
    int fast; /* the loops that skip (see sh_plan_run) */
    int ms;
    const sh_pnode *conj, *phrase;
} run_mode;

/* One segment, or the docs [c->lo, c->hi) of it, into t. */
static int run_segment(const seg_ctx *c, const run_mode *m, topk *t, uint64_t *total,
                       int *pruned) {
    if (m->ms) return maxscore_segment(c, t, total, pruned);
    if (m->conj) return conj_segment(c, m->conj, t, total, pruned);
    if (m->phrase) return phrase_segment(c, m->phrase, t, total, pruned);
    scorer *s;
    int rc = scorer_make(c, c->pl->root, &s);
    if (rc || !s) return rc;
    const uint8_t *deleted = c->seg->deleted;
    while (s->doc != SH_NO_DOC) {
        if (!sh_bit_get(deleted, s->doc)) {
            sh_hitref h = {s->ops->score(s), c->si, s->doc};
            (*total)++;
            topk_offer(t, &h);
        }
        if ((rc = s->ops->next(s))) break;
    }
    s->ops->destroy(s);
    return rc;
}

/* A segment is split over the threads when it holds at least this many
 * docs and the query's terms at least sh_split_min_postings postings in
 * it: below, a thread's start (about 40-180 microseconds here, the first
 * in a process the most) costs more than the search saves.  Postings are
 * a rough measure (a frequent word alone is often skipped through in a
 * fraction of a millisecond): 100,000 against 300,000, whole sahelsearch
 * processes on the 1 GB benchmark corpus, 500 queries, the two binaries
 * alternated per query in both orders: p50 2.37 -> 2.28 ms, p95 4.61 ->
 * 4.28 ms, p99 5.74 -> 5.31 ms; 80-87 queries 10% faster, 22-28 slower. */
size_t sh_split_min_docs = 65536;
uint64_t sh_split_min_postings = 100000;
_Atomic uint64_t sh_split_searches;

/* A part of the search: segment si, docs [lo, hi). */
typedef struct run_task {
    uint32_t si, lo, hi;
} run_task;

/* A thread of a split search: it takes the next task left until none
 * is, into its own heap. */
typedef struct run_worker {
    const sh_plan *pl;
    const run_mode *mode;
    const run_task *tasks;
    size_t ntasks;
    _Atomic size_t *next;
    topk t;
    uint64_t total;
    int pruned, rc;
    sahel_error err;
#ifdef __linux__
    const cpu_set_t *allowed; /* started on one core: then free to move (run_split) */
#endif
} run_worker;

static void *run_worker_main(void *arg) {
    run_worker *w = arg;
#ifdef __linux__
    if (w->allowed) (void)pthread_setaffinity_np(pthread_self(), sizeof *w->allowed, w->allowed);
#endif
    for (;;) {
        size_t i = atomic_fetch_add_explicit(w->next, 1, memory_order_relaxed);
        if (i >= w->ntasks) break;
        const run_task *k = &w->tasks[i];
        const sh_segment *seg = &w->pl->ix->segs[k->si];
        seg_ctx c = {w->pl, seg, k->si, &w->err, impact_scale(w->pl, seg), k->lo, k->hi};
        if ((w->rc = run_segment(&c, w->mode, &w->t, &w->total, &w->pruned))) {
            /* the others stop at their next task: the search has failed */
            atomic_store_explicit(w->next, w->ntasks, memory_order_relaxed);
            break;
        }
    }
    return NULL;
}

/* The postings of the plan's terms in segment si: about what searching
 * it costs. */
static uint64_t segment_cost(const sh_plan *pl, size_t si) {
    uint64_t cost = 0;
    for (size_t t = 0; t < pl->nterms; t++) {
        const sh_terminfo *x = &pl->tinfo[t * pl->ix->nsegs + si];
        if (x->idx != SH_TERM_ABSENT) cost += x->df;
    }
    return cost;
}

/* Whether segment si is worth cutting into `threads` ranges. */
static int worth_cutting(const sh_plan *pl, size_t si, size_t threads) {
    uint32_t nd = pl->ix->segs[si].ndocs;
    return nd >= sh_split_min_docs && nd >= threads &&
           segment_cost(pl, si) >= sh_split_min_postings;
}

/* The tasks of a search over `threads` threads: every segment, the large
 * ones a query costs much in cut into `threads` equal ranges of docs.
 * *out NULL when nothing is worth splitting. */
static int split_tasks(const sh_plan *pl, size_t threads, run_task **out, size_t *nout) {
    *out = NULL;
    *nout = 0;
    const sahel_index *ix = pl->ix;
    size_t n = 0, split = 0;
    for (size_t si = 0; si < ix->nsegs; si++) {
        int cut = worth_cutting(pl, si, threads);
        n += cut ? threads : 1;
        split |= cut;
    }
    if (!split) return 0;
    run_task *t = sh_calloc(n, sizeof *t);
    if (!t) return SAHEL_ENOMEM;
    size_t j = 0;
    for (size_t si = 0; si < ix->nsegs; si++) {
        uint32_t nd = ix->segs[si].ndocs;
        if (worth_cutting(pl, si, threads))
            for (size_t p = 0; p < threads; p++)
                t[j++] = (run_task){(uint32_t)si, (uint32_t)((uint64_t)nd * p / threads),
                                    (uint32_t)((uint64_t)nd * (p + 1) / threads)};
        else
            t[j++] = (run_task){(uint32_t)si, 0, SH_NO_DOC};
    }
    *out = t;
    *nout = n;
    return 0;
}

/* The search over `threads` threads (this one and threads - 1 more), each
 * with its own heap, merged into t. */
static int run_split(const sh_plan *pl, const run_mode *m, const run_task *tasks, size_t ntasks,
                     size_t threads, topk *t, uint64_t *total, int *pruned, sahel_error *err) {
    threads = SH_MIN(threads, ntasks);
    atomic_fetch_add_explicit(&sh_split_searches, 1, memory_order_relaxed);
    run_worker *w = sh_calloc(threads, sizeof *w);
    pthread_t *tid = sh_calloc(threads, sizeof *tid);
    sh_hitref *heaps = sh_calloc(threads * (t->cap ? t->cap : 1), sizeof *heaps);
    if (!w || !tid || !heaps) {
        sh_free(w);
        sh_free(tid);
        sh_free(heaps);
        return sh_err(err, SAHEL_ENOMEM, "out of memory");
    }
    _Atomic size_t next = 0;
    double none = -HUGE_VAL;
    uint64_t nb;
    memcpy(&nb, &none, sizeof nb);
    _Atomic uint64_t shared = nb;
    for (size_t i = 0; i < threads; i++)
        w[i] = (run_worker){.pl = pl,
                            .mode = m,
                            .tasks = tasks,
                            .ntasks = ntasks,
                            .next = &next,
                            .t = {heaps + i * (t->cap ? t->cap : 1), 0, t->cap, &shared}};
    size_t started = 1;
#ifdef __linux__
    /* Each thread is started on a core of its own, other than this one's:
     * left to the scheduler, a new thread is most often queued behind its
     * creator on the same core and moved only milliseconds later, when a
     * search of a few milliseconds is over (one-shot searches of the 1 GB
     * benchmark corpus took as long on two threads as on one).  Once
     * running, it may move again (run_worker_main restores the mask). */
    cpu_set_t allowed;
    int here = sched_getcpu(), pin = here >= 0 && !sched_getaffinity(0, sizeof allowed, &allowed);
    int cpu = -1;
    for (; started < threads; started++) {
        pthread_attr_t attr;
        int have_attr = pin && pthread_attr_init(&attr) == 0;
        if (have_attr) {
            int found = 0; /* the next allowed core but this one, if any */
            for (int tries = 0; tries < CPU_SETSIZE && !found; tries++) {
                cpu = (cpu + 1) % CPU_SETSIZE;
                found = cpu != here && CPU_ISSET(cpu, &allowed);
            }
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (found && pthread_attr_setaffinity_np(&attr, sizeof one, &one) == 0)
                w[started].allowed = &allowed;
        }
        int bad = pthread_create(&tid[started], have_attr ? &attr : NULL, run_worker_main,
                                 &w[started]);
        if (have_attr) pthread_attr_destroy(&attr);
        if (bad) break;
    }
#else
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, run_worker_main, &w[started]) != 0) break;
#endif
    run_worker_main(&w[0]); /* with as many threads as started: the tasks are shared out */
    for (size_t i = 1; i < started; i++) pthread_join(tid[i], NULL);
    int rc = 0;
    for (size_t i = 0; i < started; i++) {
        if (w[i].rc && !rc) {
            rc = w[i].rc;
            *err = w[i].err;
        }
        for (size_t j = 0; j < w[i].t.n; j++) topk_offer(t, &w[i].t.h[j]);
        *total += w[i].total;
        *pruned |= w[i].pruned;
    }
    sh_free(w);
    sh_free(tid);
    sh_free(heaps);
    return rc;
}

int sh_plan_run(const sh_plan *pl, size_t k, int count_all, size_t threads, sh_hitref **out,
                size_t *nout, uint64_t *total, int *total_exact, sahel_error *err) {
    *out = NULL;
    *nout = 0;
    *total = 0;
    *total_exact = 1;
    topk t = {NULL, 0, SH_MIN(k, (size_t)pl->ix->ndocs), NULL};
    t.h = sh_calloc(t.cap ? t.cap : 1, sizeof *t.h);
    if (!t.h) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc = 0, pruned = 0;
    run_mode m = {0};
    /* the fast loops skip by bounds, which need 0 <= b <= 1 (see above) */
    m.fast = !count_all && pl->b >= 0 && pl->b <= 1;
    m.ms = m.fast && maxscore_applies(pl->root);
    if (m.fast && !m.ms && !(m.conj = conj_applies(pl->root))) m.phrase = phrase_applies(pl->root);
    run_task *tasks = NULL;
    size_t ntasks = 0;
    if (threads > 1 && split_tasks(pl, threads, &tasks, &ntasks)) {
        sh_free(t.h);
        return sh_err(err, SAHEL_ENOMEM, "out of memory");
    }
    if (tasks) {
        rc = run_split(pl, &m, tasks, ntasks, threads, &t, total, &pruned, err);
        sh_free(tasks);
    } else {
        for (size_t si = 0; si < pl->ix->nsegs && !rc; si++) {
            const sh_segment *seg = &pl->ix->segs[si];
            seg_ctx c = {pl, seg, (uint32_t)si, err, impact_scale(pl, seg), 0, SH_NO_DOC};
            rc = run_segment(&c, &m, &t, total, &pruned);
        }
    }
    if (rc) {
        sh_free(t.h);
        return rc;
    }
    qsort(t.h, t.n, sizeof *t.h, cmp_hit);
    *out = t.h;
    *nout = t.n;
    *total_exact = !pruned;
    return 0;
}

int sh_plan_explain(const sh_plan *pl, const sh_hitref *h, sh_buf *out, sahel_error *err) {
    seg_ctx c = {pl, &pl->ix->segs[h->seg], h->seg, err, 0, 0, SH_NO_DOC}; /* no bounds */
    scorer *s;
    int rc = scorer_make(&c, pl->root, &s);
    if (rc) return rc;
    if (!s) return sh_err(err, SAHEL_EINVAL, "nothing to explain");
    if (!(rc = s->ops->advance(s, h->doc)) && s->doc == h->doc)
        rc = s->ops->explain(s, out, 0);
    s->ops->destroy(s);
    if (!rc && sh_buf_reserve(out, 1) == 0) out->p[out->len] = '\0';
    return rc;
}
