/*
 * treceval.c - the project's own retrieval evaluator: reads TREC qrels and a
 * TREC run and prints the measures we track (MAP, nDCG@10, P@10,
 * Recall@100, MRR) in the output format of trec_eval, so that its numbers
 * can be checked against trec_eval itself.
 *
 *   usage: treceval [-q] QRELS RUN        (RUN may be "-" for stdin)
 *
 * Input (whitespace-separated fields; blank lines are skipped; a trailing
 * CR is ignored):
 *   QRELS  "qid iter docid grade"          iter is ignored (TREC: always 0)
 *   RUN    "qid Q0 docid rank score tag"   Q0, rank and tag are ignored
 * Any other line (wrong field count, grade not an integer, score not a
 * finite number, a NUL byte), a (qid, docid) pair judged twice or
 * retrieved twice for one query is an error: the message names file:line
 * and the exit status is 2.  Success is 0.
 *
 * Definitions (trec_eval 9 semantics; its measure names are printed):
 *   - Relevant (binary measures) means grade >= 1, trec_eval's default
 *     "-l 1".  Unjudged documents are not relevant.
 *   - The run's rank column is ignored: per query the documents are ordered
 *     by score descending, ties by docid descending (strcmp), which is how
 *     trec_eval orders a run.  A run whose scores tie therefore evaluates
 *     the same here as under trec_eval, whatever ranks it prints.
 *   - Evaluated queries are those of the qrels with at least one relevant
 *     document.  A query the run lacks scores 0 on every measure (as with
 *     trec_eval -c); run queries absent from the qrels are ignored.
 *   - map          mean over queries of AP = sum over relevant retrieved
 *                  documents of precision at their rank, / num_rel
 *   - recip_rank   1 / rank of the first relevant document (0 if none)
 *   - P_10         relevant documents in the first 10, / 10
 *   - recall_100   relevant documents in the first 100, / num_rel
 *   - ndcg_cut_10  DCG@10 / ideal DCG@10 with gain = grade (negative grades
 *                  gain 0) and discount log2(rank + 1); the ideal ranking is
 *                  all judged grades of the query sorted descending.  This is
 *                  trec_eval's ndcg_cut with its default linear gains.
 *   - num_q, num_ret, num_rel, num_rel_ret are sums over evaluated queries.
 * With -q the measures of each evaluated query are printed first, queries
 * in natural order (digit-only ids numerically), then the "all" lines.
 *
 * Invariants: every string read is copied once into one growing pool and
 * named by its offset until reading ends (the pool may move while it grows);
 * (qid, docid) pairs live in one open-addressing hash table, so the cost is
 * O(lines log lines) for any input size, with no fixed limits.  The program
 * is standalone (libc and libm only) so that it can be built with a bare
 * `cc -std=c17 treceval.c -lm`, independent of the engine it measures; it
 * therefore uses libc allocation, checked by the x* wrappers below.
 */
/* getline and getopt are POSIX.1-2008; the build defines this too. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* trec_eval's cut-offs for the measures we report. */
#define CUT_P 10
#define CUT_NDCG 10
#define CUT_RECALL 100

/* Relevance threshold for binary measures: trec_eval's default -l 1. */
#define REL_LEVEL 1

#define ENTRY_JUDGED 1u
#define ENTRY_RETRIEVED 2u

/* The only way out on an internal allocation failure: the tool cannot go on. */
static void out_of_memory(void)
{
    fputs("treceval: out of memory\n", stderr);
    exit(2);
}

static void *xrealloc_array(void *p, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        out_of_memory();
    void *q = realloc(p, n * size == 0 ? 1 : n * size);
    if (q == NULL)
        out_of_memory();
    return q;
}

/* Grow *cap so that it holds at least `need` elements (doubling). */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap < 16 ? 16 : *cap;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            out_of_memory();
        c *= 2;
    }
    *cap = c;
    return xrealloc_array(p, c, size);
}

/* ---- string pool --------------------------------------------------------- */

typedef struct pool {
    char *p;
    size_t len, cap;
} pool;

/* Copy s[0..len) plus a NUL into the pool; returns its offset. */
static size_t pool_add(pool *sp, const char *s, size_t len)
{
    size_t off = sp->len;
    if (len > SIZE_MAX - off - 1)
        out_of_memory();
    sp->p = grow(sp->p, &sp->cap, off + len + 1, 1);
    memcpy(sp->p + off, s, len);
    sp->p[off + len] = '\0';
    sp->len = off + len + 1;
    return off;
}

/* ---- records ------------------------------------------------------------- */

typedef struct query {
    size_t name;         /* pool offset of the qid */
    bool in_qrels;
    size_t num_rel;      /* judged with grade >= REL_LEVEL */
} query;

/* One (query, docid) pair, judged, retrieved or both. */
typedef struct entry {
    size_t q;            /* index into queries */
    size_t doc;          /* pool offset of the docid */
    long grade;          /* 0 when not judged */
    unsigned flags;      /* ENTRY_* */
    size_t line;         /* line that added it, for duplicate messages */
} entry;

/* One run line. doc is filled in once the pool has stopped moving. */
typedef struct hit {
    size_t q;
    size_t ent;
    double score;
    const char *doc;
} hit;

typedef struct measures {
    size_t num_ret, num_rel, num_rel_ret;
    double ap, rr, p10, r100, ndcg10;
} measures;

/* Open-addressing table of indices (slot value = index + 1; 0 = empty). */
typedef struct table {
    size_t *slot;
    size_t mask;         /* capacity - 1; capacity is a power of two */
    size_t count;
} table;

typedef struct state {
    pool sp;
    query *queries;
    size_t nqueries, queries_cap;
    entry *entries;
    size_t nentries, entries_cap;
    hit *hits;
    size_t nhits, hits_cap;
    table qtab;          /* qid -> query index */
    table etab;          /* (query index, docid) -> entry index */
} state;

/* FNV-1a, 64-bit (Fowler, Noll, Vo): tiny, good enough for id strings. */
#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t hash_pair(size_t q, const char *doc, size_t len)
{
    uint64_t qq = q;
    return fnv1a(fnv1a(FNV_OFFSET, &qq, sizeof qq), doc, len);
}

static void table_init(table *t)
{
    t->mask = 1023;
    t->count = 0;
    t->slot = xrealloc_array(NULL, t->mask + 1, sizeof *t->slot);
    memset(t->slot, 0, (t->mask + 1) * sizeof *t->slot);
}

/* Keys are not stored in the table: rehashing asks for each index's hash. */
typedef uint64_t (*hash_of_fn)(const state *st, size_t index);

static uint64_t hash_of_query(const state *st, size_t i)
{
    const char *s = st->sp.p + st->queries[i].name;
    return fnv1a(FNV_OFFSET, s, strlen(s));
}

static uint64_t hash_of_entry(const state *st, size_t i)
{
    const char *s = st->sp.p + st->entries[i].doc;
    return hash_pair(st->entries[i].q, s, strlen(s));
}

/* Keep the load factor at or below 1/2 so that probe runs stay short. */
static void table_reserve(table *t, const state *st, hash_of_fn hash_of)
{
    if ((t->count + 1) * 2 <= t->mask + 1)
        return;
    size_t cap = (t->mask + 1) * 2;
    if (cap == 0 || cap > SIZE_MAX / sizeof *t->slot)
        out_of_memory();
    size_t *ns = xrealloc_array(NULL, cap, sizeof *ns);
    memset(ns, 0, cap * sizeof *ns);
    for (size_t i = 0; i <= t->mask; i++) {
        if (t->slot[i] == 0)
            continue;
        size_t j = (size_t)hash_of(st, t->slot[i] - 1) & (cap - 1);
        while (ns[j] != 0)
            j = (j + 1) & (cap - 1);
        ns[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = ns;
    t->mask = cap - 1;
}

/* Find the query named s[0..len) or add it; returns its index. */
static size_t intern_query(state *st, const char *s, size_t len)
{
    table_reserve(&st->qtab, st, hash_of_query);
    size_t j = (size_t)fnv1a(FNV_OFFSET, s, len) & st->qtab.mask;
    for (; st->qtab.slot[j] != 0; j = (j + 1) & st->qtab.mask) {
        const char *name = st->sp.p + st->queries[st->qtab.slot[j] - 1].name;
        if (strncmp(name, s, len) == 0 && name[len] == '\0')
            return st->qtab.slot[j] - 1;
    }
    st->queries = grow(st->queries, &st->queries_cap, st->nqueries + 1, sizeof *st->queries);
    query *q = &st->queries[st->nqueries];
    q->name = pool_add(&st->sp, s, len);
    q->in_qrels = false;
    q->num_rel = 0;
    st->qtab.slot[j] = ++st->nqueries;
    st->qtab.count++;
    return st->nqueries - 1;
}

/* Find the (q, doc) entry; if absent add one with no flags. *found says which. */
static size_t intern_entry(state *st, size_t q, const char *doc, size_t len, size_t line,
                           bool *found)
{
    table_reserve(&st->etab, st, hash_of_entry);
    size_t j = (size_t)hash_pair(q, doc, len) & st->etab.mask;
    for (; st->etab.slot[j] != 0; j = (j + 1) & st->etab.mask) {
        const entry *e = &st->entries[st->etab.slot[j] - 1];
        const char *name = st->sp.p + e->doc;
        if (e->q == q && strncmp(name, doc, len) == 0 && name[len] == '\0') {
            *found = true;
            return st->etab.slot[j] - 1;
        }
    }
    st->entries = grow(st->entries, &st->entries_cap, st->nentries + 1, sizeof *st->entries);
    entry *e = &st->entries[st->nentries];
    e->q = q;
    e->doc = pool_add(&st->sp, doc, len);
    e->grade = 0;
    e->flags = 0;
    e->line = line;
    st->etab.slot[j] = ++st->nentries;
    st->etab.count++;
    *found = false;
    return st->nentries - 1;
}

/* ---- reading ------------------------------------------------------------- */

typedef struct field {
    const char *s;
    size_t len;
} field;

/* Split line[0..len) on blanks into at most max fields; returns the count
 * found (which may exceed max: the extra fields are counted, not stored). */
static size_t split_fields(const char *line, size_t len, field *out, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            i++;
        if (n < max) {
            out[n].s = line + start;
            out[n].len = i - start;
        }
        n++;
    }
    return n;
}

/* Parse a whole field as a decimal integer; false if it is anything else. */
static bool parse_long(const field *f, long *out)
{
    char buf[32];
    if (f->len == 0 || f->len >= sizeof buf)
        return false;
    memcpy(buf, f->s, f->len);
    buf[f->len] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* Parse a whole field as a finite number; false if it is anything else. */
static bool parse_double(const field *f, double *out)
{
    /* Long enough for any decimal double a program prints with %.17g or %f
     * of realistic magnitude; longer fields are refused, not truncated. */
    char buf[512];
    if (f->len == 0 || f->len >= sizeof buf)
        return false;
    memcpy(buf, f->s, f->len);
    buf[f->len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || !isfinite(v) || (errno == ERANGE && fabs(v) > 1.0))
        return false;
    *out = v;
    return true;
}

typedef int (*line_fn)(state *st, const char *path, size_t lineno, const field *f, size_t nf);

static int qrels_line(state *st, const char *path, size_t lineno, const field *f, size_t nf)
{
    if (nf != 4) {
        fprintf(stderr, "treceval: %s:%zu: expected 4 fields (qid iter docid grade), found %zu\n",
                path, lineno, nf);
        return -1;
    }
    long grade;
    if (!parse_long(&f[3], &grade)) {
        fprintf(stderr, "treceval: %s:%zu: grade \"%.*s\" is not an integer\n", path, lineno,
                (int)(f[3].len > 64 ? 64 : f[3].len), f[3].s);
        return -1;
    }
    size_t q = intern_query(st, f[0].s, f[0].len);
    bool found;
    size_t e = intern_entry(st, q, f[2].s, f[2].len, lineno, &found);
    if (found) {
        fprintf(stderr, "treceval: %s:%zu: query %s, document %s judged twice (first at line %zu)\n",
                path, lineno, st->sp.p + st->queries[q].name, st->sp.p + st->entries[e].doc,
                st->entries[e].line);
        return -1;
    }
    st->entries[e].grade = grade;
    st->entries[e].flags = ENTRY_JUDGED;
    st->queries[q].in_qrels = true;
    if (grade >= REL_LEVEL)
        st->queries[q].num_rel++;
    return 0;
}

static int run_line(state *st, const char *path, size_t lineno, const field *f, size_t nf)
{
    if (nf != 6) {
        fprintf(stderr,
                "treceval: %s:%zu: expected 6 fields (qid Q0 docid rank score tag), found %zu\n",
                path, lineno, nf);
        return -1;
    }
    long rank;
    if (!parse_long(&f[3], &rank)) {
        fprintf(stderr, "treceval: %s:%zu: rank \"%.*s\" is not an integer\n", path, lineno,
                (int)(f[3].len > 64 ? 64 : f[3].len), f[3].s);
        return -1;
    }
    double score;
    if (!parse_double(&f[4], &score)) {
        fprintf(stderr, "treceval: %s:%zu: score \"%.*s\" is not a finite number\n", path,
                lineno, (int)(f[4].len > 64 ? 64 : f[4].len), f[4].s);
        return -1;
    }
    size_t q = intern_query(st, f[0].s, f[0].len);
    bool found;
    size_t e = intern_entry(st, q, f[2].s, f[2].len, lineno, &found);
    if (found && (st->entries[e].flags & ENTRY_RETRIEVED)) {
        fprintf(stderr,
                "treceval: %s:%zu: query %s retrieves document %s twice (first at line %zu)\n",
                path, lineno, st->sp.p + st->queries[q].name, st->sp.p + st->entries[e].doc,
                st->entries[e].line);
        return -1;
    }
    st->entries[e].flags |= ENTRY_RETRIEVED;
    st->entries[e].line = lineno;
    st->hits = grow(st->hits, &st->hits_cap, st->nhits + 1, sizeof *st->hits);
    st->hits[st->nhits++] = (hit){.q = q, .ent = e, .score = score, .doc = NULL};
    return 0;
}

/* Feed every non-blank line of `path` ("-" = stdin) to fn; 0 or -1. */
static int read_lines(state *st, const char *path, line_fn fn)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *fp = is_stdin ? stdin : fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "treceval: %s: %s\n", path, strerror(errno));
        return -1;
    }
    const char *name = is_stdin ? "<stdin>" : path;
    char *line = NULL;
    size_t linecap = 0;
    size_t lineno = 0;
    int rc = 0;
    ssize_t got;
    errno = 0;
    while ((got = getline(&line, &linecap, fp)) != -1) {
        lineno++;
        size_t len = (size_t)got;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (memchr(line, '\0', len) != NULL) {
            fprintf(stderr, "treceval: %s:%zu: line holds a NUL byte\n", name, lineno);
            rc = -1;
            goto close_file;
        }
        field f[6];
        size_t nf = split_fields(line, len, f, 6);
        if (nf == 0)
            continue;
        if (fn(st, name, lineno, f, nf) != 0) {
            rc = -1;
            goto close_file;
        }
        errno = 0;
    }
    if (ferror(fp)) {
        fprintf(stderr, "treceval: %s: read error: %s\n", name, strerror(errno));
        rc = -1;
    } else if (errno == ENOMEM) {
        out_of_memory();
    }
close_file:
    free(line);
    if (!is_stdin)
        fclose(fp);
    return rc;
}

/* ---- ordering ------------------------------------------------------------ */

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Digit-only ids compare as numbers (of any length), anything else by strcmp. */
static int natural_cmp(const char *a, const char *b)
{
    if (all_digits(a) && all_digits(b)) {
        while (*a == '0' && a[1] != '\0')
            a++;
        while (*b == '0' && b[1] != '\0')
            b++;
        size_t la = strlen(a), lb = strlen(b);
        if (la != lb)
            return la < lb ? -1 : 1;
    }
    return strcmp(a, b);
}

/* qsort cannot pass a context, and the comparators need the pool. */
static const state *sort_state;

static int cmp_query_index(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    return natural_cmp(sort_state->sp.p + sort_state->queries[a].name,
                       sort_state->sp.p + sort_state->queries[b].name);
}

/* Query, then score descending, then docid descending (trec_eval's order). */
static int cmp_hit(const void *pa, const void *pb)
{
    const hit *a = pa, *b = pb;
    if (a->q != b->q)
        return a->q < b->q ? -1 : 1;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return strcmp(b->doc, a->doc);
}

/* ---- measures ------------------------------------------------------------ */

static double gain_of(long grade)
{
    return grade > 0 ? (double)grade : 0.0;
}

typedef struct judged {
    size_t q;
    long grade;
} judged;

/* Query ascending, then grade descending: each query's ideal ranking. */
static int cmp_judged(const void *pa, const void *pb)
{
    const judged *a = pa, *b = pb;
    if (a->q != b->q)
        return a->q < b->q ? -1 : 1;
    return (a->grade < b->grade) - (a->grade > b->grade);
}

/* Ideal DCG@CUT_NDCG of every query (idcg[q]): its judged grades sorted
 * descending, all queries in one sort. */
static void ideal_dcgs(const state *st, double *idcg)
{
    judged *j = xrealloc_array(NULL, st->nentries, sizeof *j);
    size_t n = 0;
    for (size_t i = 0; i < st->nentries; i++)
        if (st->entries[i].flags & ENTRY_JUDGED)
            j[n++] = (judged){.q = st->entries[i].q, .grade = st->entries[i].grade};
    qsort(j, n, sizeof *j, cmp_judged);
    for (size_t q = 0; q < st->nqueries; q++)
        idcg[q] = 0.0;
    for (size_t i = 0, rank = 1; i < n; i++, rank++) {
        if (i > 0 && j[i].q != j[i - 1].q)
            rank = 1;
        if (rank <= CUT_NDCG)
            idcg[j[i].q] += gain_of(j[i].grade) / log2((double)rank + 1.0);
    }
    free(j);
}

/* Measures of query q over its hits h[0..n), already in ranking order. */
static measures evaluate(const state *st, size_t q, const hit *h, size_t n, double idcg)
{
    measures m = {0};
    m.num_ret = n;
    m.num_rel = st->queries[q].num_rel;
    double dcg = 0.0;
    for (size_t i = 0; i < n; i++) {
        long grade = st->entries[h[i].ent].grade;
        size_t rank = i + 1;
        if (rank <= CUT_NDCG)
            dcg += gain_of(grade) / log2((double)rank + 1.0);
        if (grade < REL_LEVEL)
            continue;
        m.num_rel_ret++;
        m.ap += (double)m.num_rel_ret / (double)rank;
        if (m.rr == 0.0)
            m.rr = 1.0 / (double)rank;
        if (rank <= CUT_P)
            m.p10 += 1.0;
        if (rank <= CUT_RECALL)
            m.r100 += 1.0;
    }
    m.p10 /= CUT_P;
    if (m.num_rel > 0) {
        m.ap /= (double)m.num_rel;
        m.r100 /= (double)m.num_rel;
    }
    m.ndcg10 = idcg > 0.0 ? dcg / idcg : 0.0;
    return m;
}

/* trec_eval's layout: name padded to 22, tab, query id, tab, value. */
static void print_measures(const char *qid, const measures *m)
{
    printf("%-22s\t%s\t%zu\n", "num_ret", qid, m->num_ret);
    printf("%-22s\t%s\t%zu\n", "num_rel", qid, m->num_rel);
    printf("%-22s\t%s\t%zu\n", "num_rel_ret", qid, m->num_rel_ret);
    printf("%-22s\t%s\t%.4f\n", "map", qid, m->ap);
    printf("%-22s\t%s\t%.4f\n", "recip_rank", qid, m->rr);
    printf("%-22s\t%s\t%.4f\n", "P_10", qid, m->p10);
    printf("%-22s\t%s\t%.4f\n", "recall_100", qid, m->r100);
    printf("%-22s\t%s\t%.4f\n", "ndcg_cut_10", qid, m->ndcg10);
}

static void report(state *st, bool per_query)
{
    for (size_t i = 0; i < st->nhits; i++)
        st->hits[i].doc = st->sp.p + st->entries[st->hits[i].ent].doc;
    sort_state = st;
    qsort(st->hits, st->nhits, sizeof *st->hits, cmp_hit);

    /* first[q]..first[q+1]: the hits of query q, now contiguous */
    size_t *first = xrealloc_array(NULL, st->nqueries + 1, sizeof *first);
    size_t *order = xrealloc_array(NULL, st->nqueries, sizeof *order);
    double *idcg = xrealloc_array(NULL, st->nqueries, sizeof *idcg);
    ideal_dcgs(st, idcg);
    size_t h = 0;
    for (size_t q = 0; q <= st->nqueries; q++) {
        first[q] = h;
        while (h < st->nhits && st->hits[h].q == q)
            h++;
    }
    size_t norder = 0;
    for (size_t q = 0; q < st->nqueries; q++)
        if (st->queries[q].in_qrels && st->queries[q].num_rel > 0)
            order[norder++] = q;
    qsort(order, norder, sizeof *order, cmp_query_index);

    measures sum = {0};
    for (size_t k = 0; k < norder; k++) {
        size_t q = order[k];
        measures m = evaluate(st, q, st->hits + first[q], first[q + 1] - first[q], idcg[q]);
        if (per_query)
            print_measures(st->sp.p + st->queries[q].name, &m);
        sum.num_ret += m.num_ret;
        sum.num_rel += m.num_rel;
        sum.num_rel_ret += m.num_rel_ret;
        sum.ap += m.ap;
        sum.rr += m.rr;
        sum.p10 += m.p10;
        sum.r100 += m.r100;
        sum.ndcg10 += m.ndcg10;
    }
    if (norder > 0) {
        double n = (double)norder;
        sum.ap /= n;
        sum.rr /= n;
        sum.p10 /= n;
        sum.r100 /= n;
        sum.ndcg10 /= n;
    }
    printf("%-22s\t%s\t%zu\n", "num_q", "all", norder);
    print_measures("all", &sum);
    free(idcg);
    free(order);
    free(first);
}

static void usage(void)
{
    fputs("usage: treceval [-q] QRELS RUN\n"
          "  QRELS  lines \"qid iter docid grade\" (grade >= 1 is relevant)\n"
          "  RUN    lines \"qid Q0 docid rank score tag\" (\"-\" reads stdin)\n"
          "  -q     also print the measures of each query\n",
          stderr);
}

int main(int argc, char **argv)
{
    bool per_query = false;
    int c;
    while ((c = getopt(argc, argv, "qh")) != -1) {
        switch (c) {
        case 'q':
            per_query = true;
            break;
        case 'h':
            usage();
            return 0;
        default:
            usage();
            return 2;
        }
    }
    if (argc - optind != 2) {
        usage();
        return 2;
    }

    state st = {0};
    table_init(&st.qtab);
    table_init(&st.etab);
    int status = 2;
    if (read_lines(&st, argv[optind], qrels_line) != 0)
        goto free_state;
    if (read_lines(&st, argv[optind + 1], run_line) != 0)
        goto free_state;
    report(&st, per_query);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "treceval: writing the results: %s\n", strerror(errno));
        goto free_state;
    }
    status = 0;
free_state:
    free(st.etab.slot);
    free(st.qtab.slot);
    free(st.hits);
    free(st.entries);
    free(st.queries);
    free(st.sp.p);
    return status;
}
