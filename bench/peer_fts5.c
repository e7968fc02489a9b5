/*
 * peer_fts5.c - the SQLite FTS5 side of the speed comparison: the same two
 * commands as bench_sahel, measured by the same harness.
 *
 *   peer_fts5 build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]
 *   peer_fts5 query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]
 *
 * The index is INDEXDIR/fts5.db holding
 *   CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize='porter unicode61')
 * (an ordinary FTS5 table: it stores the text too, as sahel's document store
 * does), rowid = the article's 1-based ordinal in the corpus.
 *
 * Build settings, chosen so that the work matches sahel's: one connection,
 * one thread, every INSERT in one transaction; journal_mode=OFF (sahel
 * keeps no journal either: a failed build is thrown away) and
 * synchronous=NORMAL, which with the journal off makes the commit fsync
 * the database file once, as sahel fsyncs its segment; cache_size 256 MiB,
 * sahel's default memory budget.  After the commit, the FTS5 'optimize'
 * command merges the b-tree segments into one (timed: sahel's build also
 * ends with its postings in one segment per memory budget).
 *
 * Queries: SELECT rowid FROM docs WHERE docs MATCH ?1 ORDER BY bm25(docs)
 * LIMIT ?2, prepared once (not timed); timed are bind, the steps that
 * read the k rowids, and reset.  The database is opened read-only with
 * mmap_size 1 GiB (sahel mmaps its index) and the same cache size.
 * Rendering, each word an FTS5 string so that no word is taken for an
 * operator: or -> "w1" OR "w2", and -> "w1" AND "w2", phrase -> "w1 w2".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "harness/harness.h"

#define DB_NAME "fts5.db"

/* sahel's default memory budget (256 MiB), as a cache_size in KiB (negative
 * cache_size means KiB to SQLite). */
#define CACHE_PRAGMA "PRAGMA cache_size=-262144"

static int exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static long long build(bench_corpus *c, const char *corpus_path, const char *dir) {
    (void)corpus_path;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, DB_NAME) >= sizeof path) return -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    long long n = -1, added = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: %s: %s\n", path, sqlite3_errmsg(db));
        goto close_db;
    }
    if (exec(db, "PRAGMA journal_mode=OFF") || exec(db, "PRAGMA synchronous=NORMAL") ||
        exec(db, CACHE_PRAGMA) ||
        exec(db, "CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize='porter unicode61')") ||
        exec(db, "BEGIN"))
        goto close_db;
    if (sqlite3_prepare_v2(db, "INSERT INTO docs(rowid, title, body) VALUES(?1, ?2, ?3)", -1,
                           &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: prepare: %s\n", sqlite3_errmsg(db));
        goto close_db;
    }
    bench_doc d;
    while (bench_corpus_next(c, &d)) {
        /* SQLITE_STATIC: the strings outlive the step that reads them. */
        if (sqlite3_bind_int64(ins, 1, (sqlite3_int64)d.ordinal) != SQLITE_OK ||
            sqlite3_bind_text(ins, 2, d.title, (int)d.title_len, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(ins, 3, d.body, (int)d.body_len, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(ins) != SQLITE_DONE) {
            fprintf(stderr, "peer_fts5: insert of article %llu: %s\n",
                    (unsigned long long)d.ordinal, sqlite3_errmsg(db));
            goto close_db;
        }
        sqlite3_reset(ins);
        added++;
    }
    sqlite3_finalize(ins);
    ins = NULL;
    if (exec(db, "COMMIT") || exec(db, "INSERT INTO docs(docs) VALUES('optimize')")) goto close_db;
    n = added;
close_db:
    sqlite3_finalize(ins);
    if (sqlite3_close(db) != SQLITE_OK) n = -1;
    return n;
}

typedef struct qctx {
    sqlite3 *db;
    sqlite3_stmt *st;
} qctx;

static void close_index(void *p) {
    qctx *q = p;
    if (!q) return;
    sqlite3_finalize(q->st);
    sqlite3_close(q->db);
    free(q);
}

static void *open_index(const char *dir) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, DB_NAME) >= sizeof path) return NULL;
    qctx *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: %s: %s\n", path, sqlite3_errmsg(q->db));
        close_index(q);
        return NULL;
    }
    if (exec(q->db, "PRAGMA mmap_size=1073741824") || exec(q->db, CACHE_PRAGMA) ||
        sqlite3_prepare_v2(q->db,
                           "SELECT rowid FROM docs WHERE docs MATCH ?1 ORDER BY bm25(docs) LIMIT ?2",
                           -1, &q->st, NULL) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: prepare: %s\n", sqlite3_errmsg(q->db));
        close_index(q);
        return NULL;
    }
    return q;
}

static int render(const bench_query *q, char *out, size_t cap) {
    size_t len = 0;
    int n;
    if (q->kind == BENCH_Q_PHRASE) {
        n = snprintf(out, cap, "\"");
        if (n < 0) return -1;
        len = (size_t)n;
        for (size_t i = 0; i < q->nwords && len < cap; i++) {
            n = snprintf(out + len, cap - len, "%s%s", i ? " " : "", q->words[i]);
            if (n < 0) return -1;
            len += (size_t)n;
        }
        if (len < cap) {
            n = snprintf(out + len, cap - len, "\"");
            if (n < 0) return -1;
            len += (size_t)n;
        }
        return len < cap ? (int)len : -1;
    }
    const char *op = q->kind == BENCH_Q_AND ? " AND " : " OR ";
    for (size_t i = 0; i < q->nwords && len < cap; i++) {
        n = snprintf(out + len, cap - len, "%s\"%s\"", i ? op : "", q->words[i]);
        if (n < 0) return -1;
        len += (size_t)n;
    }
    return len < cap ? (int)len : -1;
}

static long run(void *p, const bench_query *q, const char *text, size_t len, size_t k) {
    (void)q;
    qctx *c = p;
    long n = 0;
    uint64_t sink = 0;
    if (sqlite3_bind_text(c->st, 1, text, (int)len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(c->st, 2, (sqlite3_int64)k) != SQLITE_OK) {
        fprintf(stderr, "peer_fts5: bind: %s\n", sqlite3_errmsg(c->db));
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(c->st)) == SQLITE_ROW) {
        sink += (uint64_t)sqlite3_column_int64(c->st, 0);
        n++;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "peer_fts5: %s: %s\n", text, sqlite3_errmsg(c->db));
        n = -1;
    }
    sqlite3_reset(c->st);
    bench_sink += sink;
    return n;
}

int main(int argc, char **argv) {
    static char build_settings[256], query_settings[256];
    snprintf(build_settings, sizeof build_settings,
             "SQLite %s FTS5, porter unicode61; one transaction, journal_mode=OFF, "
             "synchronous=NORMAL, cache 256 MiB; 'optimize' after commit (timed)",
             sqlite3_libversion());
    snprintf(query_settings, sizeof query_settings,
             "SQLite %s: MATCH ... ORDER BY bm25(docs) LIMIT k, prepared once; read-only, "
             "mmap_size 1 GiB, cache 256 MiB; rowids read",
             sqlite3_libversion());
    const bench_build_spec b = {
        .engine = "fts5",
        .settings = build_settings,
        .reads_file = 0,
        .build = build,
    };
    const bench_query_spec q = {
        .engine = "fts5",
        .settings = query_settings,
        .open = open_index,
        .close = close_index,
        .render = render,
        .run = run,
    };
    return bench_main(argc, argv, &b, &q);
}
