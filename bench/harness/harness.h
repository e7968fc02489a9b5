/*
 * harness.h - what the benchmark programs share, so that sahelsearch and its
 * peers (SQLite FTS5, Xapian) are measured by the same code: corpus
 * reading, query-set reading, timers, peak RSS, index size, percentiles,
 * the RESULT lines, and the two commands every engine program has:
 *
 *   PROG build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]
 *   PROG query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]
 *
 * An engine program only supplies callbacks (bench_build_spec,
 * bench_query_spec) and calls bench_main(); the harness does the timing,
 * so that every engine is timed around the same work.  C and C++
 * (peer_xapian.cc) include this header.
 *
 * Results go to stdout as one line per figure,
 *   RESULT engine=E corpus=C metric=M class=K value=V
 * and a human summary to stderr.  MB means 10^6 bytes throughout.
 */
#ifndef SAHEL_BENCH_HARNESS_H
#define SAHEL_BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- printing and failing ---------------------------------------------- */

/* The name messages start with (argv[0] without its folder). */
void bench_set_prog(const char *argv0);

/* Print "PROG: message" to stderr and exit(1): benchmark programs stop at
 * the first thing that would make their figures wrong. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* malloc, calloc and realloc that never return NULL: they die instead. */
void *bench_xmalloc(size_t n);
void *bench_xcalloc(size_t n, size_t size);
void *bench_xrealloc(void *p, size_t n);

/* splitmix64 (Steele, Lea, Flood 2014): small and good enough to pick
 * documents and words; the same seed gives the same stream everywhere. */
static inline uint64_t bench_rng_next(uint64_t *s) {
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double bench_rng_unit(uint64_t *s) {
    return (double)(bench_rng_next(s) >> 11) * 0x1.0p-53;
}

/* One RESULT line on stdout; `cls` is "-" for figures of no query class. */
void bench_result(const char *engine, const char *corpus, const char *metric,
                  const char *cls, double value);

/* ---- clocks and resources ---------------------------------------------- */

uint64_t bench_now_ns(void);       /* CLOCK_MONOTONIC */
double bench_peak_rss_mb(void);    /* the process's peak RSS (VmHWM, else ru_maxrss), MB */
/* Start the peak RSS over from the current RSS (Linux clear_refs "5");
 * returns 0, or -1 when the kernel does not offer it. */
int bench_reset_peak_rss(void);
/* Bytes of the regular files under path (or of path itself), st_size. */
uint64_t bench_path_bytes(const char *path);

/* ---- corpus: a JSONL file read through the engine's own JSON reader ----- */

/* One article.  Strings are borrowed until the next bench_corpus_next. */
typedef struct bench_doc {
    const char *id;    size_t id_len;
    const char *title; size_t title_len;   /* "" when absent */
    const char *body;  size_t body_len;    /* the "text" member */
    uint64_t ordinal;                      /* 1-based among kept articles */
} bench_doc;

typedef struct bench_corpus bench_corpus;

/* Map the file and read it through once (which also brings it into the
 * page cache and counts what the timed passes will see): lines that
 * sahel_ingest would skip (blank, invalid JSON, no text, no or empty id,
 * a NUL byte) and later duplicates of an id are skipped by every pass.
 * Exits when the file cannot be read. */
bench_corpus *bench_corpus_open(const char *path);
/* Next kept article: 1, or 0 at the end. */
int bench_corpus_next(bench_corpus *c, bench_doc *doc);
void bench_corpus_rewind(bench_corpus *c);
uint64_t bench_corpus_ndocs(const bench_corpus *c);    /* kept articles */
uint64_t bench_corpus_bytes(const bench_corpus *c);    /* file size */
uint64_t bench_corpus_nskipped(const bench_corpus *c); /* lines skipped */
void bench_corpus_close(bench_corpus *c);

/* ---- query sets (written by querygen) ----------------------------------- */

#define BENCH_MAX_WORDS 3

typedef enum bench_qkind {
    BENCH_Q_OR,      /* ranked OR of the words (term1 is an OR of one) */
    BENCH_Q_AND,     /* all the words */
    BENCH_Q_PHRASE,  /* the words next to each other, in order */
} bench_qkind;

typedef struct bench_query {
    char cls[16];                    /* "term1", "or2", "and2", "or3", "phrase2" */
    char qid[24];
    bench_qkind kind;                /* from the class name's prefix */
    size_t nwords;
    const char *words[BENCH_MAX_WORDS]; /* NUL-terminated, lower case */
} bench_query;

/* ---- the engine programs ------------------------------------------------ */

typedef struct bench_build_spec {
    const char *engine;    /* "sahel", "fts5", "xapian" */
    const char *settings;  /* one line: what the engine was told (stderr) */
    /* 1: the engine reads CORPUS.jsonl itself (sahel_ingest); the harness
     * then only reads it beforehand to bring it into the page cache and
     * passes c == NULL.  0: the engine takes articles from c (already
     * mapped and paged in; each bench_corpus_next parses one line, inside
     * the timed region, as sahel_ingest does). */
    int reads_file;
    /* Build an index in `dir`, an empty directory that exists.  Returns the
     * number of articles indexed, or -1 after printing why to stderr.
     * Everything up to a durable index with its handles closed is timed. */
    long long (*build)(bench_corpus *c, const char *corpus_path, const char *dir);
} bench_build_spec;

typedef struct bench_query_spec {
    const char *engine;
    const char *settings;
    /* Open the index in dir (not timed); NULL after printing why. */
    void *(*open)(const char *dir);
    void (*close)(void *ctx);
    /* Write q in the engine's query syntax to out (cap bytes, with a NUL);
     * return its length, or -1 when it does not fit.  Not timed. */
    int (*render)(const bench_query *q, char *out, size_t cap);
    /* Run one query (timed): parse it, search, and read the ids of the up
     * to k best hits.  Returns the number of hits read, or -1 after
     * printing why. */
    long (*run)(void *ctx, const bench_query *q, const char *text, size_t len, size_t k);
} bench_query_spec;

/* Parse argv as the two commands above and run them; returns the exit
 * status for main. */
int bench_main(int argc, char **argv, const bench_build_spec *build,
               const bench_query_spec *query);

/* Where an engine stores the ids it reads, so that the compiler cannot
 * drop the reads as dead code. */
extern volatile uint64_t bench_sink;

#ifdef __cplusplus
}
#endif
#endif /* SAHEL_BENCH_HARNESS_H */
