/*
 * search.h - query evaluation internals shared by search.c (plan, scorers,
 * top-k) and hits.c (the public sahel_search / sahel_hits API, snippets).
 */
#ifndef SAHEL_SEARCH_H
#define SAHEL_SEARCH_H

#include <stdatomic.h>

#include "../index/index.h"
#include "query.h"

/* A distinct term of the query, with index-wide statistics. */
typedef struct sh_qterm {
    char *s;
    size_t len;
    uint64_t hash;
    uint64_t df;   /* documents holding it, over every segment */
    double idf;
    int positive;  /* appears outside any exclusion: highlight it */
    uint32_t mark; /* last prefix expansion that took it (dedupe over segments) */
} sh_qterm;

/* The query with prefixes expanded and terms resolved.  PREFIX nodes have
 * become BOOLs of SHOULD TERMs. */
typedef struct sh_pnode sh_pnode;
struct sh_pnode {
    sh_qkind kind; /* TERM, PHRASE or BOOL */
    sh_field field;
    uint32_t tid;  /* TERM: index in plan->terms */
    uint32_t *tids, *pos; /* PHRASE */
    size_t nterms;
    double idf;    /* PHRASE: sum of its terms' idfs */
    sh_pnode **kids;
    sh_occur *occur;
    size_t nkids, cap;
};

#define SH_TERM_ABSENT UINT32_MAX

typedef struct sh_plan {
    sahel_index *ix;
    sahel_error *err;
    double k1, b, wt, avgt, avgb;
    double norm0, normt, normb; /* 1 - b, b / avgt, b / avgb: the norm of a
                                   field is norm0 + norm{t,b} * its length */
    sh_pnode *root;
    sh_qterm *terms;
    size_t nterms, cap_terms;
    /* each term's dictionary entry in each segment, looked up once:
     * term t in segment s at [t * ix->nsegs + s]; idx SH_TERM_ABSENT when
     * the segment does not hold it */
    sh_terminfo *tinfo;
    uint32_t *slots; /* hash table over terms: index + 1 */
    size_t tcap;
    uint32_t nmarks; /* prefix expansions made so far */
} sh_plan;

typedef struct sh_hitref {
    double score;
    uint32_t seg, doc;
} sh_hitref;

int sh_plan_build(sahel_index *ix, const char *query, size_t len, const sahel_search_opts *o,
                  sh_plan *pl, sahel_error *err);
void sh_plan_free(sh_plan *pl);
/* Top k hits, best first, in a new array.  *total counts the matches
 * scored: all of them (*total_exact = 1) with count_all, or when no
 * document was skipped; else at least the hits returned.  threads > 1:
 * a query that costs much in a large segment is run over that many
 * threads, each on a range of its docs; the hits are the same. */
int sh_plan_run(const sh_plan *pl, size_t k, int count_all, size_t threads, sh_hitref **out,
                size_t *nout, uint64_t *total, int *total_exact, sahel_error *err);
/* The smallest segment (docs) and query cost in it (postings of its
 * terms) that a search splits over threads; tests lower them. */
extern size_t sh_split_min_docs;
extern uint64_t sh_split_min_postings;
/* Searches run split so far (tests check that theirs were). */
extern _Atomic uint64_t sh_split_searches;
/* Append a NUL-terminated account of hit h's score. */
int sh_plan_explain(const sh_plan *pl, const sh_hitref *h, sh_buf *out, sahel_error *err);

#endif /* SAHEL_SEARCH_H */
