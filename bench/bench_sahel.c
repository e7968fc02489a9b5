/*
 * bench_sahel.c - in-process benchmark of sahelsearch, the side of the
 * comparison with peer_fts5 and peer_xapian that measures our engine.
 *
 *   bench_sahel build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]
 *   bench_sahel query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]
 *
 * build times sahel_writer_open + sahel_ingest of the file + commit +
 * close, the path `sahelindex build` takes, with default options (one
 * thread, 256 MiB memory budget, fsync at commit).  query times
 * sahel_search with default ranking (BM25F, title weight 3) plus reading
 * the ids of the k hits (sahel_hits_id), as a result list would.  The
 * timing, repeats and statistics are the harness's (harness/harness.c),
 * shared with the peers.  Only the public API is used.
 *
 * Query rendering (sahelsearch's query language): or -> "w1 w2",
 * and -> "w1 AND w2", phrase -> "\"w1 w2\"".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"
#include "sahel.h"

/* Warnings are counted, and the first few shown: a warning costs a skipped
 * article, which the harness's article count then shows too. */
#define SHOWN_WARNINGS 5

static void on_warn(void *ctx, const char *path, uint64_t line, const char *msg) {
    unsigned long *n = ctx;
    if (++*n <= SHOWN_WARNINGS)
        fprintf(stderr, "bench_sahel: %s:%llu: %s\n", path, (unsigned long long)line, msg);
}

static long long build(bench_corpus *c, const char *corpus_path, const char *dir) {
    (void)c;
    sahel_error err = {0};
    sahel_writer *w = NULL;
    /* one indexing thread, as the peers; SAHEL_BENCH_THREADS=0 gives one
     * per core (macro.sh's "sahel-mt" build row) */
    const char *th = getenv("SAHEL_BENCH_THREADS");
    sahel_writer_opts wopts = {.threads = th ? (unsigned)strtoul(th, NULL, 10) : 1};
    unsigned long nwarn = 0;
    sahel_ingest_opts iopts = {.warn = on_warn, .ctx = &nwarn};
    sahel_ingest_stats st = {0};
    if (sahel_writer_open(dir, &wopts, &w, &err) || sahel_ingest(w, corpus_path, &iopts, &st, &err) ||
        sahel_writer_commit(w, &err)) {
        fprintf(stderr, "bench_sahel: %s\n", err.msg);
        sahel_writer_close(w);
        return -1;
    }
    sahel_writer_close(w);
    if (nwarn) fprintf(stderr, "bench_sahel: %lu ingest warnings\n", nwarn);
    return (long long)st.articles;
}

static void *open_index(const char *dir) {
    sahel_error err = {0};
    sahel_index *ix = NULL;
    if (sahel_index_open(dir, &ix, &err)) {
        fprintf(stderr, "bench_sahel: %s\n", err.msg);
        return NULL;
    }
    return ix;
}

static void close_index(void *ctx) { sahel_index_close(ctx); }

static int render(const bench_query *q, char *out, size_t cap) {
    size_t len = 0;
    const char *sep = q->kind == BENCH_Q_AND ? " AND " : " ";
    int n = snprintf(out, cap, "%s", q->kind == BENCH_Q_PHRASE ? "\"" : "");
    if (n < 0) return -1;
    len = (size_t)n;
    for (size_t i = 0; i < q->nwords && len < cap; i++) {
        n = snprintf(out + len, cap - len, "%s%s", i ? sep : "", q->words[i]);
        if (n < 0) return -1;
        len += (size_t)n;
    }
    if (len < cap && q->kind == BENCH_Q_PHRASE) {
        n = snprintf(out + len, cap - len, "\"");
        if (n < 0) return -1;
        len += (size_t)n;
    }
    return len < cap ? (int)len : -1;
}

static long run(void *ctx, const bench_query *q, const char *text, size_t len, size_t k) {
    (void)q;
    sahel_error err = {0};
    sahel_search_opts opts = {.k = k};
    sahel_hits *hits = NULL;
    if (sahel_search(ctx, text, len, &opts, &hits, &err)) {
        fprintf(stderr, "bench_sahel: %s: %s\n", text, err.msg);
        return -1;
    }
    size_t n = sahel_hits_count(hits);
    uint64_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        const char *id;
        size_t id_len;
        if (sahel_hits_id(hits, i, &id, &id_len, NULL, &err)) {
            fprintf(stderr, "bench_sahel: %s: hit %zu: %s\n", text, i, err.msg);
            sahel_hits_free(hits);
            return -1;
        }
        sink += id_len ? (uint8_t)id[id_len - 1] : 0;
    }
    sahel_hits_free(hits);
    bench_sink += sink;
    return (long)n;
}

int main(int argc, char **argv) {
    const char *th = getenv("SAHEL_BENCH_THREADS");
    bench_build_spec b = {
        .engine = th && strcmp(th, "1") != 0 ? "sahel-mt" : "sahel",
        .settings = "sahelsearch " SAHEL_VERSION_STRING ": sahel_ingest, default writer options "
                    "(256 MiB budget, fsync at commit), one indexing thread unless "
                    "SAHEL_BENCH_THREADS says otherwise (0: one per core)",
        .reads_file = 1,
        .build = build,
    };
    static const bench_query_spec q = {
        .engine = "sahel",
        .settings = "sahel_search, BM25F (k1 1.2, b 0.75, title weight 3), index mmap'ed; "
                    "ids read with sahel_hits_id",
        .open = open_index,
        .close = close_index,
        .render = render,
        .run = run,
    };
    return bench_main(argc, argv, &b, &q);
}
