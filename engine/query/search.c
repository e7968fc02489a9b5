/*
 * search.c - query evaluation: AST -> plan -> per-segment scorers -> top-k.
 *
 *   plan     The parsed query with prefixes expanded against the whole
 *            index and every distinct term given its index-wide document
 *            frequency and idf, so that a query ranks alike over one
 *            segment or ten.
 *   scorers  For each segment the plan becomes a tree of cursors, each
 *            positioned on its first matching document when made, with
 *            next (the following match) and advance (the first match >= a
 *            target): a term (postings), a phrase (a conjunction of terms
 *            whose positions line up) and a boolean (MUST conjunction,
 *            SHOULD disjunction, MUST_NOT exclusion).
 *   top-k    Document at a time: every match is scored and offered to a
 *            min-heap of the k best (ties: the earlier document wins).
 *            A ranked OR of plain terms, the common query, goes through
 *            MaxScore instead (below), which skips documents that cannot
 *            enter the top k and returns the very same hits.
 *
 * Scoring (README "Ranking" has the derivation; tests/test_oracle.c checks
 * every result against a brute-force scorer):
 *   idf(t)  = ln(1 + (N - df + 0.5) / (df + 0.5))     df, N over the index
 *   norm_f  = 1 - b + b * len_f / avg_f                f in {title, body}
 *   x       = w_title * tf_title / norm_title + tf_body / norm_body
 *             (only the named field's part for title: / body: terms)
 *   term    = idf * x / (k1 + x)                       BM25F, Lucene's form
 *   phrase  = the same with phrase frequencies, idf = sum of the terms' idfs
 *   boolean = sum of the scores of the clauses that match.
 * All arithmetic is in double.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (pl->nterms == pl->cap_terms) {
        size_t cap = pl->cap_terms ? pl->cap_terms * 2 : 32;
        sh_qterm *t = sh_reallocarray(pl->terms, cap, sizeof *t);
        if (!t) return SAHEL_ENOMEM;
        pl->terms = t;
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
    for (size_t i = 0; i < pl->ix->nsegs; i++) {
        sh_terminfo ti;
        int rc = sh_segment_lookup(&pl->ix->segs[i], s, len, &ti, pl->err);
        if (rc < 0) {
            sh_free(t->s);
            return rc;
        }
        if (rc) df += ti.df;
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
    sahel_error *err;
} seg_ctx;

static double bm25(const seg_ctx *c, sh_field field, double idf, uint32_t tft, uint32_t tfb,
                   uint32_t doc, double *xout) {
    const sh_plan *pl = c->pl;
    double x = 0;
    if (field != SH_FIELD_BODY && tft)
        x += pl->wt * tft / (1 - pl->b + pl->b * sh_segment_len_title(c->seg, doc) / pl->avgt);
    if (field != SH_FIELD_TITLE && tfb)
        x += tfb / (1 - pl->b + pl->b * sh_segment_len_body(c->seg, doc) / pl->avgb);
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

/* Returns 0 with *out NULL when the term is not in this segment. */
static int term_make(const seg_ctx *c, const sh_pnode *n, uint32_t tid, scorer **out) {
    *out = NULL;
    const sh_qterm *t = &c->pl->terms[tid];
    sh_terminfo ti;
    int rc = sh_segment_lookup(c->seg, t->s, t->len, &ti, c->err);
    if (rc <= 0) return rc;
    term_scorer *s = sh_calloc(1, sizeof *s);
    if (!s) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    s->base.ops = &term_ops;
    s->base.cost = ti.df;
    s->c = c;
    s->t = t;
    s->field = n->field;
    if ((rc = sh_postings_init(&s->pc, c->seg, &ti, c->err)) || (rc = sh_postings_next(&s->pc)) ||
        (rc = term_settle(s))) {
        sh_free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* -- phrase -- */

typedef struct phrase_scorer {
    scorer base;
    const seg_ctx *c;
    const sh_pnode *n;
    size_t nt;
    sh_postings *pc;         /* one cursor per phrase term */
    uint32_t **pos;          /* positions scratch per term */
    uint32_t *cap;           /* capacity of pos[i] */
    uint32_t pft, pfb;       /* phrase frequencies of the current doc */
    size_t lead;             /* the cursor with the fewest documents */
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

/* Count starts s with term i at s + rel[i] for all i, within one field:
 * a merge walk, every list ascending. */
static uint32_t count_phrase(phrase_scorer *s, int body) {
    size_t nt = s->nt;
    uint32_t cnt[64];
    uint32_t *counts = nt <= 64 ? cnt : NULL;
    uint32_t pf = 0;
    if (!counts) return 0; /* phrases are limited to 64 terms at plan time */
    for (size_t i = 0; i < nt; i++)
        counts[i] = body ? sh_postings_tfb(&s->pc[i]) : sh_postings_tft(&s->pc[i]);
    size_t base = body ? 1 : 0;
    uint32_t *idx = s->cap + 2 * nt; /* scratch cursors, nt of them, after the 2nt capacities */
    for (size_t i = 0; i < nt; i++) idx[i] = 0;
    const uint32_t *p0 = s->pos[2 * 0 + base];
    for (uint32_t a = 0; a < counts[0]; a++) {
        uint64_t start = (uint64_t)p0[a] - 0; /* rel[0] is 0 */
        int ok = 1;
        for (size_t i = 1; i < nt && ok; i++) {
            uint64_t want = start + s->n->pos[i];
            const uint32_t *pi = s->pos[2 * i + base];
            while (idx[i] < counts[i] && pi[idx[i]] < want) idx[i]++;
            ok = idx[i] < counts[i] && pi[idx[i]] == want;
        }
        if (ok) pf++;
    }
    return pf;
}

static int phrase_check(phrase_scorer *s) {
    /* load positions for every term of the current doc */
    for (size_t i = 0; i < s->nt; i++) {
        uint32_t t = sh_postings_tft(&s->pc[i]), b = sh_postings_tfb(&s->pc[i]);
        int rc;
        if ((rc = grow_pos(s, 2 * i, t)) || (rc = grow_pos(s, 2 * i + 1, b)) ||
            (rc = sh_postings_positions(&s->pc[i], s->pos[2 * i], s->pos[2 * i + 1])))
            return rc;
    }
    s->pft = s->n->field != SH_FIELD_BODY ? count_phrase(s, 0) : 0;
    s->pfb = s->n->field != SH_FIELD_TITLE ? count_phrase(s, 1) : 0;
    return s->pft + s->pfb > 0;
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
        int ok = phrase_check(s);
        if (ok < 0) return ok;
        if (ok) {
            s->base.doc = d;
            return 0;
        }
        int rc = sh_postings_next(lead);
        if (rc) return rc;
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
    sh_free(s->cap);
    sh_free(s->pc);
    sh_free(s);
}

static const scorer_ops phrase_ops = {phrase_next, phrase_advance, phrase_score, phrase_explain,
                                      phrase_destroy};

static int phrase_make(const seg_ctx *c, const sh_pnode *n, scorer **out) {
    *out = NULL;
    if (n->nterms == 0) return 0;
    if (n->nterms > 64)
        return sh_err(c->err, SAHEL_ETOOBIG, "a phrase may hold at most 64 words");
    phrase_scorer *s = sh_calloc(1, sizeof *s);
    if (!s) return sh_err(c->err, SAHEL_ENOMEM, "out of memory");
    s->base.ops = &phrase_ops;
    s->c = c;
    s->n = n;
    s->nt = n->nterms;
    s->pc = sh_calloc(s->nt, sizeof *s->pc);
    s->pos = sh_calloc(2 * s->nt, sizeof *s->pos);
    s->cap = sh_calloc(3 * s->nt, sizeof *s->cap); /* 2nt capacities + nt cursors */
    int rc = 0;
    if (!s->pc || !s->pos || !s->cap) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < s->nt; i++) {
        const sh_qterm *t = &c->pl->terms[n->tids[i]];
        sh_terminfo ti;
        rc = sh_segment_lookup(c->seg, t->s, t->len, &ti, c->err);
        if (rc <= 0) goto fail; /* a missing word: the phrase cannot match here */
        if ((rc = sh_postings_init(&s->pc[i], c->seg, &ti, c->err))) goto fail;
    }
    for (size_t i = 0; i < s->nt; i++) {
        if ((rc = sh_postings_next(&s->pc[i]))) goto fail;
        if (s->pc[i].ti.df < s->pc[s->lead].ti.df) s->lead = i;
    }
    s->base.cost = s->pc[s->lead].ti.df;
    if ((rc = phrase_settle(s))) goto fail;
    *out = &s->base;
    return 0;
fail:
    phrase_destroy(&s->base);
    return rc;
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
    case SH_Q_TERM: return term_make(c, n, n->tid, out);
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

/* The k best so far: a min-heap on "better", the root the worst kept. */
typedef struct topk {
    sh_hitref *h;
    size_t n, cap;
} topk;

static void topk_offer(topk *t, const sh_hitref *h) {
    if (t->n < t->cap) {
        t->h[t->n] = *h;
        sift_up(t->h, t->n++);
    } else if (t->cap && better(h, &t->h[0])) {
        t->h[0] = *h;
        sift_down(t->h, t->n, 0);
    }
}

/* A score a document must beat to enter the top k, lowered by a hair so
 * that rounding in a sum of bounds never prunes a document that could
 * enter: skipping stays exact. */
static double topk_limit(const topk *t) {
    if (t->n < t->cap || t->cap == 0) return -HUGE_VAL;
    double th = t->h[0].score;
    return th - fabs(th) * 1e-9;
}

/* ---- MaxScore ----------------------------------------------------------- */

/* The largest score term scorer s can give any document of its segment.
 * With a skip table: from each block's maximum frequencies and minimum
 * lengths (a bound, whatever the weights); a single block is scanned. */
static double term_bound(term_scorer *s) {
    const sh_plan *pl = s->c->pl;
    const sh_postings *pc = &s->pc;
    double best = 0;
    if (pc->skip) {
        for (uint32_t b = 0; b < pc->nblocks; b++) {
            const uint8_t *r = pc->skip + (size_t)b * SH_SKIPREC;
            uint32_t max_tft = sh_load_u32(r + 16), max_tfb = sh_load_u32(r + 20);
            uint32_t min_lent = sh_load_u32(r + 24), min_lenb = sh_load_u32(r + 28);
            double x = 0;
            if (s->field != SH_FIELD_BODY && max_tft)
                x += pl->wt * max_tft / (1 - pl->b + pl->b * min_lent / pl->avgt);
            if (s->field != SH_FIELD_TITLE && max_tfb)
                x += max_tfb / (1 - pl->b + pl->b * min_lenb / pl->avgb);
            best = SH_MAX(best, x);
        }
        return s->t->idf * best / (pl->k1 + best);
    }
    /* one block, held by the cursor since it was made */
    for (uint32_t i = 0; i < pc->n; i++) {
        double x;
        uint32_t tft = pc->tft[i], tfb = pc->tfb[i];
        if (s->field == SH_FIELD_TITLE) tfb = 0;
        if (s->field == SH_FIELD_BODY) tft = 0;
        (void)bm25(s->c, s->field, s->t->idf, tft, tfb, pc->docs[i], &x);
        best = SH_MAX(best, x);
    }
    return s->t->idf * best / (pl->k1 + best);
}

typedef struct ms_term {
    term_scorer *s;
    double ub;
    double contrib; /* its score for the current candidate */
    size_t kid;     /* its clause number: scores are added in clause order */
} ms_term;

static int cmp_ub(const void *a, const void *b) {
    const ms_term *x = a, *y = b;
    return x->ub < y->ub ? -1 : x->ub > y->ub;
}

/* Is this plan a ranked OR of plain terms (the common query), which
 * MaxScore can answer without scoring every matching document? */
static int maxscore_applies(const sh_pnode *root) {
    if (root->kind != SH_Q_BOOL || root->nkids == 0) return 0;
    for (size_t i = 0; i < root->nkids; i++)
        if (root->occur[i] != SH_OCCUR_SHOULD || root->kids[i]->kind != SH_Q_TERM) return 0;
    return 1;
}

/* MaxScore (Turtle and Flood, 1995), document at a time: terms sorted by
 * their score bound; the longest prefix whose bounds add up to less than
 * the k-th best score is "non-essential": a document holding none of the
 * other terms cannot enter, so only the essential terms' postings are
 * walked, and non-essential ones are probed (advance) for candidates,
 * stopping as soon as the bound says the candidate cannot enter. */
static int maxscore_segment(const seg_ctx *c, uint32_t si, topk *t, uint64_t *total, int *pruned) {
    const sh_pnode *root = c->pl->root;
    size_t n = 0;
    int rc = 0;
    ms_term *ts = sh_calloc(root->nkids, sizeof *ts);
    double *prefix = sh_calloc(root->nkids, sizeof *prefix);
    size_t *byclause = sh_calloc(root->nkids, sizeof *byclause);
    if (!ts || !prefix || !byclause) {
        rc = sh_err(c->err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < root->nkids; i++) {
        scorer *sc;
        if ((rc = term_make(c, root->kids[i], root->kids[i]->tid, &sc))) goto out;
        if (!sc) continue;
        if (sc->doc == SH_NO_DOC) {
            sc->ops->destroy(sc);
            continue;
        }
        ts[n].s = (term_scorer *)sc;
        ts[n].ub = term_bound(ts[n].s);
        ts[n].kid = i;
        n++;
    }
    qsort(ts, n, sizeof *ts, cmp_ub);
    /* byclause[j]: the term of the j-th clause present here, so that a
     * document's score is summed in clause order, as the generic path
     * does: the same bits whatever the segments or the skipping */
    for (size_t i = 0; i < n; i++) byclause[i] = i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ts[byclause[j - 1]].kid > ts[byclause[j]].kid; j--) {
            size_t t2 = byclause[j];
            byclause[j] = byclause[j - 1];
            byclause[j - 1] = t2;
        }
    for (size_t i = 0; i < n; i++) prefix[i] = (i ? prefix[i - 1] : 0) + ts[i].ub;
    const uint8_t *deleted = c->seg->deleted;
    double limit = topk_limit(t);
    size_t e = 0; /* terms [0, e) are non-essential */
    while (e < n && prefix[e] < limit) e++;
    if (e) *pruned = 1;
    for (;;) {
        uint32_t d = SH_NO_DOC;
        for (size_t i = e; i < n; i++) d = SH_MIN(d, ts[i].s->base.doc);
        if (d == SH_NO_DOC) break;
        double sum = 0;
        for (size_t i = e; i < n; i++)
            if (ts[i].s->base.doc == d) sum += ts[i].contrib = term_score(&ts[i].s->base);
        int keep = !sh_bit_get(deleted, d);
        for (size_t i = e; keep && i-- > 0;) {
            if (sum + prefix[i] < limit) {
                keep = 0;
                *pruned = 1;
                break;
            }
            scorer *sc = &ts[i].s->base;
            if ((rc = term_advance(sc, d))) goto out;
            if (sc->doc == d) sum += ts[i].contrib = term_score(sc);
        }
        if (keep) {
            /* every term is now at d or past it: the exact score */
            sum = 0;
            for (size_t j = 0; j < n; j++)
                if (ts[byclause[j]].s->base.doc == d) sum += ts[byclause[j]].contrib;
            sh_hitref h = {sum, si, d};
            (*total)++;
            topk_offer(t, &h);
            double nl = topk_limit(t);
            if (nl > limit) {
                limit = nl;
                while (e < n && prefix[e] < limit) e++;
                if (e) *pruned = 1;
            }
        }
        for (size_t i = e; i < n; i++)
            if (ts[i].s->base.doc == d && (rc = term_next(&ts[i].s->base))) goto out;
    }
out:
    for (size_t i = 0; i < n; i++) ts[i].s->base.ops->destroy(&ts[i].s->base);
    sh_free(ts);
    sh_free(prefix);
    sh_free(byclause);
    return rc;
}

int sh_plan_run(const sh_plan *pl, size_t k, int count_all, sh_hitref **out, size_t *nout,
                uint64_t *total, int *total_exact, sahel_error *err) {
    *out = NULL;
    *nout = 0;
    *total = 0;
    *total_exact = 1;
    topk t = {NULL, 0, SH_MIN(k, (size_t)pl->ix->ndocs)};
    t.h = sh_calloc(t.cap ? t.cap : 1, sizeof *t.h);
    if (!t.h) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc = 0, pruned = 0;
    int fast = !count_all && maxscore_applies(pl->root);
    for (size_t si = 0; si < pl->ix->nsegs && !rc; si++) {
        seg_ctx c = {pl, &pl->ix->segs[si], err};
        if (fast) {
            rc = maxscore_segment(&c, (uint32_t)si, &t, total, &pruned);
            continue;
        }
        scorer *s;
        if ((rc = scorer_make(&c, pl->root, &s)) || !s) continue;
        const uint8_t *deleted = pl->ix->segs[si].deleted;
        while (s->doc != SH_NO_DOC) {
            if (!sh_bit_get(deleted, s->doc)) {
                sh_hitref h = {s->ops->score(s), (uint32_t)si, s->doc};
                (*total)++;
                topk_offer(&t, &h);
            }
            if ((rc = s->ops->next(s))) break;
        }
        s->ops->destroy(s);
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
    seg_ctx c = {pl, &pl->ix->segs[h->seg], err};
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
