/*
 * sahel.h - the public API of sahelsearch, a full-text search engine for
 * news archives.
 *
 * Two objects do all the work:
 *
 *   sahel_writer   builds an index directory from articles (sahel_doc), fed
 *                  one by one or by sahel_ingest() from .txt / .jsonl files.
 *   sahel_index    a read-only snapshot of an index directory, opened with
 *                  mmap; sahel_search() runs a query against it and returns
 *                  sahel_hits, from which ids, stored fields, snippets and
 *                  score explanations are read.
 *
 * Conventions (see STYLE.md):
 *   - Text is (const char *s, size_t len), UTF-8, not NUL-terminated unless
 *     a comment says so.
 *   - Fallible calls return int: 0 on success, a negative SAHEL_E* code on
 *     failure.  Every such call takes a `sahel_error *err` (may be NULL)
 *     which receives the code and a message naming where the problem is
 *     (file and offset, query column, ...).
 *   - The library never prints, never exits, never aborts on input.
 *   - Whoever opens/new's an object closes/free's it; every release call
 *     accepts NULL.  Pointers lent by the library state how long they live.
 *   - Objects are not thread-safe; distinct objects may be used from
 *     distinct threads.
 */
#ifndef SAHEL_H
#define SAHEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAHEL_VERSION_STRING "0.1.0"

/* ---- Errors ------------------------------------------------------------ */

enum {
    SAHEL_OK = 0,
    SAHEL_ENOMEM = -1,     /* an allocation failed */
    SAHEL_EIO = -2,        /* a system call failed (message has errno text) */
    SAHEL_ECORRUPT = -3,   /* an index file is damaged (message: file, offset) */
    SAHEL_EVERSION = -4,   /* an index file has a format version we can't read */
    SAHEL_ESYNTAX = -5,    /* a query is malformed (message: column) */
    SAHEL_EINVAL = -6,     /* a bad argument or bad input record */
    SAHEL_ENOTINDEX = -7,  /* a directory is not a sahelsearch index */
    SAHEL_EEXIST = -8,     /* an index already exists where a new one was asked */
    SAHEL_EDUPLICATE = -9, /* an article id was already added to this writer */
    SAHEL_ETOOBIG = -10,   /* an input exceeds a documented limit */
    SAHEL_ELOCKED = -11,   /* the index is locked by another writer */
};

#define SAHEL_ERROR_MSG_MAX 512

typedef struct sahel_error {
    int code;                       /* last SAHEL_E* code, 0 if none */
    char msg[SAHEL_ERROR_MSG_MAX];  /* NUL-terminated, human readable */
} sahel_error;

/* A static, NUL-terminated name for a code ("corrupt index", ...). */
const char *sahel_strerror(int code);

/* ---- Memory hook (tests inject allocation failures through it) ---------- */

typedef struct sahel_allocator {
    void *(*malloc_fn)(size_t size, void *ctx);
    void *(*realloc_fn)(void *ptr, size_t size, void *ctx);
    void (*free_fn)(void *ptr, void *ctx);
    void *ctx;
} sahel_allocator;

/* Replace the allocator used by the whole library; NULL restores libc's.
 * Call it only while no sahelsearch object exists. */
void sahel_set_allocator(const sahel_allocator *a);

/* ---- Articles ----------------------------------------------------------- */

/* One article, as handed to a writer.  All strings are borrowed for the
 * duration of the call; any may be NULL with length 0 except id and body.
 * Lengths are bytes.  Text must be valid UTF-8 (sahel_ingest repairs it). */
typedef struct sahel_doc {
    const char *id;     size_t id_len;      /* unique within the index */
    const char *title;  size_t title_len;
    const char *body;   size_t body_len;
    const char *date;   size_t date_len;    /* as written by the source */
    const char *source; size_t source_len;  /* outlet name */
    const char *url;    size_t url_len;
    const char *lang;   size_t lang_len;    /* BCP 47 tag, e.g. "en" */
    const char *path;   size_t path_len;    /* file it was read from */
    uint64_t line;                          /* 1-based line in path, 0 = whole file */
} sahel_doc;

/* ---- Writer ------------------------------------------------------------- */

typedef struct sahel_writer sahel_writer;

/* The least memory budget with which indexing works as designed: below
 * it the writer's own buffers leave a thread too little room, and it writes
 * a segment every few articles (accepted as it is, as tests use kilobytes
 * to make many segments; sahelindex refuses it).  From it up, a budget that
 * cannot give every requested thread that room indexes on fewer threads. */
#define SAHEL_MIN_MEMORY_BUDGET ((size_t)16 << 20)

typedef struct sahel_writer_opts {
    int force;              /* build: replace an existing index at commit */
    size_t memory_budget;   /* bytes of buffered postings before a segment
                               is flushed; 0 = default (256 MiB); see
                               SAHEL_MIN_MEMORY_BUDGET */
    int update;             /* 1: open an existing index to add, replace and
                               delete articles (sahelindex update) */
    unsigned threads;       /* indexing threads: 0 = one per core; 1 = the
                               caller's thread only, no queue; at most 64,
                               and fewer when the budget cannot give each
                               thread its room (SAHEL_MIN_MEMORY_BUDGET).
                               The index is the same whatever the number. */
} sahel_writer_opts;

/* Outcomes of sahel_writer_add (non-negative: not errors). */
enum {
    SAHEL_ADDED = 0,     /* a new article */
    SAHEL_UNCHANGED = 1, /* update: the index holds the same article already */
    SAHEL_REPLACED = 2,  /* update: the article changed; the old version is deleted */
};

/* Start a new index in directory `dir` (created if missing, must be empty
 * of any index unless opts->force), or with opts->update open the existing
 * one to change it.  The writer holds the index's lock until closed:
 * another writer gets SAHEL_ELOCKED naming this process.  Nothing is
 * visible to readers until sahel_writer_commit() returns 0. */
int sahel_writer_open(const char *dir, const sahel_writer_opts *opts,
                      sahel_writer **out, sahel_error *err);

/* Analyse and buffer one article: SAHEL_ADDED, or when updating
 * SAHEL_UNCHANGED (same id, same content: nothing to do) or SAHEL_REPLACED.
 * SAHEL_EDUPLICATE (the first is kept) when this writer was given its id
 * before; SAHEL_EINVAL for an empty id. */
int sahel_writer_add(sahel_writer *w, const sahel_doc *doc, sahel_error *err);

/* Update: delete the article with this id.  0, or 1 when no live article
 * of the index has it. */
int sahel_writer_delete(sahel_writer *w, const char *id, size_t id_len, sahel_error *err);

/* Update: make the commit merge every segment into one (as few as the
 * memory budget allows), purging deleted articles (sahelindex merge). */
int sahel_writer_optimize(sahel_writer *w, sahel_error *err);

/* Flush what is buffered and publish the index atomically (segments
 * written and fsynced, then the manifest written, fsynced and renamed). */
int sahel_writer_commit(sahel_writer *w, sahel_error *err);

/* Abandon uncommitted work (its files are removed) and free the writer. */
void sahel_writer_close(sahel_writer *w);

typedef struct sahel_writer_stats {
    uint64_t ndocs;        /* articles indexed (added or replaced) */
    uint64_t nadded;       /* new articles */
    uint64_t nreplaced;    /* changed articles indexed again */
    uint64_t nunchanged;   /* articles found as they were */
    uint64_t ndeleted;     /* articles deleted (gone from their source, or asked) */
    uint64_t nmerged;      /* segments rewritten by merges */
    uint64_t nunchanged_files; /* source files skipped: size and time as recorded */
    uint64_t nterms;       /* distinct terms (after commit; summed over segments) */
    uint64_t ntokens;      /* tokens indexed */
    uint64_t bytes_in;     /* bytes of article text (title + body) */
    uint64_t nsegments;    /* segments written */
    uint64_t nflushed;     /* of which, before combining: the segments the
                              budget made the indexing threads write */
    uint64_t ncombined;    /* articles written by the merges that combine
                              those into one (each article once, at best) */
    uint64_t nlive_segments; /* segments of the index after commit */
    unsigned nthreads;     /* indexing threads: as asked, or fewer when the
                              budget is too small for them */
    int stale_lock_pid;    /* a dead writer whose lock was taken over, or 0 */
} sahel_writer_stats;

void sahel_writer_get_stats(const sahel_writer *w, sahel_writer_stats *st);

/* ---- Ingest: files and folders of articles ------------------------------ */

/* Called once per problem found in the input: `path` names the file, `line`
 * the 1-based line (0 when the problem concerns the whole file), `msg` what
 * is wrong and what was done about it.  Strings live for the call only. */
typedef void (*sahel_warn_fn)(void *ctx, const char *path, uint64_t line,
                              const char *msg);

/* Called as files are read, with the bytes read so far and the total bytes
 * of the files found (for a progress display). */
typedef void (*sahel_progress_fn)(void *ctx, uint64_t bytes_done,
                                  uint64_t bytes_total, uint64_t ndocs);

typedef struct sahel_ingest_opts {
    sahel_warn_fn warn;          /* may be NULL */
    sahel_progress_fn progress;  /* may be NULL */
    void *ctx;                   /* handed to both */
} sahel_ingest_opts;

typedef struct sahel_ingest_stats {
    uint64_t files;          /* article files read (.txt and .jsonl) */
    uint64_t articles;       /* articles indexed (added, or replaced when updating) */
    uint64_t replaced;       /* update: of those, articles that changed */
    uint64_t unchanged;      /* update: articles found as the index holds them */
    uint64_t unchanged_files; /* update: files not read, as recorded (size, time) */
    uint64_t bytes;          /* bytes of input files read */
    uint64_t warnings;       /* problems reported through warn */
    uint64_t skipped;        /* articles or files skipped because of a problem */
    uint64_t repaired;       /* articles whose invalid UTF-8 was replaced by U+FFFD */
    uint64_t duplicates;     /* articles skipped because their id was seen before */
    uint64_t ignored_files;  /* files in folders skipped for their extension */
} sahel_ingest_stats;

/* Read `path` (a .txt or .jsonl file, or a folder searched recursively in
 * byte order of names) and add every article in it to `w`.  Bad input never
 * stops it: each problem is reported through opts->warn and counted in
 * *st (which accumulates over calls).  Returns a negative code only when
 * `path` itself cannot be read or the writer fails. */
int sahel_ingest(sahel_writer *w, const char *path, const sahel_ingest_opts *opts,
                 sahel_ingest_stats *st, sahel_error *err);

/* ---- Reader ------------------------------------------------------------- */

typedef struct sahel_index sahel_index;

/* Open the snapshot named by `dir`'s manifest.  SAHEL_ENOTINDEX when `dir`
 * is missing or holds no index; SAHEL_ECORRUPT / SAHEL_EVERSION name the
 * damaged file. */
int sahel_index_open(const char *dir, sahel_index **out, sahel_error *err);
void sahel_index_close(sahel_index *ix);

typedef struct sahel_index_info {
    uint64_t ndocs;        /* live documents */
    uint64_t ndeleted;     /* deleted documents not yet purged by a merge */
    uint64_t nsegments;
    uint64_t nterms;       /* distinct terms summed over segments */
    uint64_t bytes;        /* size of the index files */
    uint64_t generation;   /* manifest generation */
    double avg_title_len;  /* tokens */
    double avg_body_len;   /* tokens */
    const char *language;  /* analysis language; lives as long as ix */
} sahel_index_info;

void sahel_index_get_info(const sahel_index *ix, sahel_index_info *info);

typedef struct sahel_segment_info {
    const char *name;      /* file name; lives as long as ix */
    uint64_t ndocs;        /* documents written in it */
    uint64_t ndeleted;     /* of which deleted */
    uint64_t nterms;
    uint64_t bytes;
} sahel_segment_info;

/* Segment i (0-based, oldest first) of the snapshot; SAHEL_EINVAL past the end. */
int sahel_index_segment_info(const sahel_index *ix, size_t i, sahel_segment_info *info);

/* 1 when a live article has this id, 0 when none does, or a negative code. */
int sahel_index_has_id(sahel_index *ix, const char *id, size_t id_len, sahel_error *err);

/* Check every checksum and structural invariant of every file of the
 * index.  Returns 0, or SAHEL_ECORRUPT with the first damage found. */
int sahel_index_verify(sahel_index *ix, sahel_error *err);

/* ---- Search ------------------------------------------------------------- */

typedef struct sahel_hits sahel_hits;

typedef struct sahel_search_opts {
    size_t k;            /* hits wanted; 0 = 10 */
    double title_weight; /* BM25F weight of the title field; 0 = default */
    double k1;           /* 0 = 1.2 */
    double b;            /* 0 = 0.75 (a negative value means b = 0) */
    int explain;         /* 1: keep per-term score parts for sahel_hits_explain */
    int count_all;       /* 1: score every matching document so that
                            sahel_hits_total is exact (slower: no skipping) */
    size_t threads;      /* up to this many threads for one query; 0 or 1 =
                            this thread only.  A query that costs much in a
                            large segment (about 65,000 docs and more) is
                            run on ranges of its docs at once, the hits the
                            same as on one thread. */
} sahel_search_opts;

#define SAHEL_DEFAULT_TITLE_WEIGHT 3.0

/* Parse and run `query` (see README, "Query language").  On success *out
 * holds up to k hits in decreasing score order (ties: earlier document
 * first); it may hold none.  The hits borrow `ix`: free them before
 * closing it. */
int sahel_search(sahel_index *ix, const char *query, size_t query_len,
                 const sahel_search_opts *opts, sahel_hits **out,
                 sahel_error *err);

void sahel_hits_free(sahel_hits *hits);
size_t sahel_hits_count(const sahel_hits *hits);
/* Documents that matched: all of them when sahel_hits_total_exact says
 * so (always with opts.count_all); otherwise a lower bound, since ranked
 * OR, AND and phrase evaluation skip documents that cannot enter the top k
 * (as Lucene's totalHits). */
uint64_t sahel_hits_total(const sahel_hits *hits);
int sahel_hits_total_exact(const sahel_hits *hits);

/* A hit and its stored fields.  Strings are borrowed from `hits` and stay
 * valid until sahel_hits_free; absent fields are NULL with length 0. */
typedef struct sahel_hit {
    double score;
    const char *id;     size_t id_len;
    const char *title;  size_t title_len;
    const char *body;   size_t body_len;
    const char *date;   size_t date_len;
    const char *source; size_t source_len;
    const char *url;    size_t url_len;
    const char *lang;   size_t lang_len;
    const char *path;   size_t path_len;
    uint64_t line;
} sahel_hit;

/* Id and score of result i (0-based) without loading the stored article:
 * the cheap call for result lists (TREC runs).  *id is borrowed from the
 * index and lives until sahel_index_close. */
int sahel_hits_id(const sahel_hits *hits, size_t i, const char **id, size_t *id_len,
                  double *score, sahel_error *err);

/* Fill *hit for result i (0-based); loads the stored article on first use. */
int sahel_hits_get(sahel_hits *hits, size_t i, sahel_hit *hit, sahel_error *err);

/* A highlighted stretch of a snippet: bytes [start, end) of the text. */
typedef struct sahel_span {
    size_t start, end;
} sahel_span;

typedef struct sahel_snippet {
    const char *text; size_t len;   /* excerpt of the article body */
    const sahel_span *spans;        /* matched words, in order */
    size_t nspans;
    int cut_before, cut_after;      /* 1 when text does not start/end the body */
} sahel_snippet;

/* The best window of about `max_bytes` bytes of hit i's body: the one that
 * holds the most distinct query terms, then the most matches.  Borrowed
 * from `hits` until the next call for the same hits or sahel_hits_free. */
int sahel_hits_snippet(sahel_hits *hits, size_t i, size_t max_bytes,
                       sahel_snippet *snip, sahel_error *err);

/* A multi-line, NUL-terminated account of hit i's score: per term and
 * field, tf, document length, idf and contribution.  Needs opts.explain.
 * Borrowed from `hits` until sahel_hits_free. */
int sahel_hits_explain(sahel_hits *hits, size_t i, const char **text,
                       sahel_error *err);

#ifdef __cplusplus
}
#endif
#endif /* SAHEL_H */
