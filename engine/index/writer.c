/*
 * writer.c - sahel_writer: articles in, segment files and a manifest out.
 *
 * Indexing is in-memory inversion, on every core.  The caller's thread
 * checks each article (id, duplicates, what an update changes) and copies
 * it into a batch of about a megabyte; full batches go through a bounded
 * queue to the builders, one thread each.  A builder analyses its
 * articles (title, then body), groups their tokens by term, and appends
 * each term's postings to that term's own growing buffer as LEB128 varints:
 *     doc gap, tft, tfb, tft title positions (delta), tfb body positions (delta)
 * When its share of the memory budget is used up, and at commit, a
 * builder sorts its terms and re-encodes the buffers into a segment file
 * in the block format of postings.c (segment.c has the file layout).
 *
 * The order of articles is kept: every article has a number in the
 * stream given to the writer, a builder takes whole batches in queue
 * order (so its articles ascend in that order), and at commit the
 * builders' segments are merged into one whose documents are numbered by
 * the stream (merge.c, at the level of postings): the same segment a
 * single thread would have built, so scores and the order of ties do not
 * depend on the number of threads.  Store blocks are cut at batch ends so
 * that this merge copies compressed blocks instead of recompressing them.
 * On one thread nothing is copied: the store goes on in the first
 * segment's file across flushes, and the last merge writes the rest of
 * that file (builder.keep), so that each byte of the index is written
 * once, postings twice, when a build flushes.
 * Nothing is visible until commit writes the manifest naming the
 * segments (manifest.c).
 *
 * Updating (opts.update) opens the index's current snapshot under the
 * writer lock and compares each article given with the version the index
 * holds, by id and by the XXH3 hash of its stored record: the same hash is
 * SAHEL_UNCHANGED and costs a lookup; a different one deletes the old
 * version (a bit in its segment's deletion bitmap, deletes.c) and indexes
 * the new.  What ingest reports about source files (sh_writer_source_*)
 * feeds the sources table (sources.c): files as recorded are not read at
 * all, and the articles of files gone from a folder being updated, or gone
 * from a file read again, are deleted at commit.
 *
 * Commit: new segments, then merges (below), then deletion bitmaps and the
 * sources table, each written to a temporary name, fsynced and renamed;
 * the directory fsynced; then the manifest (manifest.c); only then are the
 * files it no longer names removed.  A crash at any point leaves the
 * previous manifest and every file it names intact.
 *
 * Merge policy (logarithmic, as Lucene's LogMergePolicy): a segment's
 * level is floor(log10(live documents)); whenever SH_MERGE_FACTOR (10)
 * neighbouring segments share a level they are rewritten as one, so an
 * index has at most 9 segments per level, a few dozen in all, however many
 * updates it has seen.  A segment more than half deleted is rewritten
 * alone, and one wholly deleted is dropped.  Merging keeps the order of
 * documents, so ties rank as before, and works on postings (merge.c).
 *
 * Memory: the budget is shared by the batches in flight and the builders;
 * a builder flushes when its share is used, counting what its flush will
 * add (the encoded postings of the largest term).
 *
 * Threads: only the caller's thread touches the writer's own fields; a
 * builder touches its own, and the queue, the new-segment list and the
 * first asynchronous error are under `mu`.
 *
 * Invariants: term ids are dense indexes into `terms`; `table` is an open-
 * addressing hash table (power-of-two size, at most half full) of term
 * id + 1; doc ids are dense per segment; ids seen by this writer are kept
 * across segments so a duplicate is refused wherever it appears.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
/* glibc's malloc_trim gives back what the allocator freed.  Not under
 * AddressSanitizer: its allocator replaces glibc's, which is then never
 * set up, and two builders trimming at once both set it up: a race that
 * crashed in glibc (mtrim on a null arena) one threaded test run in
 * three. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define SH_TRIM 1
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

#define DEFAULT_BUDGET ((size_t)256 << 20)
#define SH_LANG "english"
#define SH_MERGE_FACTOR 10
/* articles go to the builders in batches of about this many bytes */
#define SH_BATCH_BYTES ((size_t)1 << 20)
#define SH_MAX_THREADS 64

/* A term's postings grow in slices of the builder's pages (below): 16
 * bytes, then twice as many each time up to SLICE_MAX, each ending in the
 * address of the next.  Small terms, most of a vocabulary, cost 16 bytes
 * and no allocation of their own, and the memory a builder holds is its
 * pages, which it keeps from one segment to the next. */
typedef struct term_ent {
    uint64_t hash;
    uint32_t str_off, len; /* into pool */
    uint32_t next_doc;     /* last doc + 1, for gaps */
    uint32_t df;
    uint8_t *head;         /* first slice, NULL before the first posting */
    uint8_t *wp, *wend;    /* where the next byte goes; end of its slice's data */
    uint32_t nbytes;       /* bytes of postings written */
    uint32_t level;        /* of the slice being written */
} term_ent;

#define PAGE_BYTES ((size_t)1 << 20)
#define SLICE_MIN 16u
#define SLICE_MAX 32768u
#define SLICE_LINK sizeof(uint8_t *)

/* What every token touches of its term, apart from the rest so that the
 * array stays in cache (8 bytes a term: a vocabulary of 100,000 terms
 * fits in a core's L2): the article it was last seen in and its entry
 * there.  The article's entries (doc_term) are a small dense array; each
 * has its term's tokens of the article in a list through doc_tok.next,
 * in arrival order (title first, positions ascending), so that no sort
 * is needed. */
typedef struct term_hot {
    uint32_t cur; /* doc + 1 of the article `loc` belongs to */
    uint32_t loc; /* the term's doc_term in that article */
} term_hot;

typedef struct doc_term {
    uint32_t id;
    uint32_t head, tail, tft, tfb;
} doc_term;

/* Terms that come without a stem-cache memo (numbers: the analyzer does
 * not cache them) would each cost a term-table probe, three cache misses
 * in a big table; a small direct-mapped memo of short ones, in L2, keeps
 * the frequent ones (years, small counts) to one.  Valid for memo_epoch. */
#define PLAIN_SLOTS 4096u
#define PLAIN_MAX_LEN 16u
typedef struct plain_memo {
    uint64_t k0, k1; /* the term's bytes, zero-padded */
    uint32_t len, epoch, id;
} plain_memo;

typedef struct doc_tok {
    uint32_t pos;
    uint32_t field; /* 0 title, 1 body */
    uint32_t next;  /* next token of the same term, or UINT32_MAX */
} doc_tok;

typedef struct idset {
    uint32_t *slots; /* id index + 1 */
    size_t cap, n;
    sh_buf pool;
    sh_buf offs; /* u64 offsets into pool, n + 1 */
} idset;

/* An article in a batch: its fields lie one after the other in the
 * batch's bytes from `off`, in sahel_doc order. */
typedef struct batch_doc {
    size_t off;
    size_t len[8]; /* id, title, body, date, source, url, lang, path */
    uint64_t line;
} batch_doc;

typedef struct batch {
    uint32_t first; /* stream number of its first article */
    sh_buf bytes;
    batch_doc *docs;
    size_t ndocs, cap_docs;
} batch;

/* One thread's segment under construction. */
typedef struct builder {
    sahel_writer *w;
    sh_analyzer *an;
    pthread_t thread;
    int started;
    size_t share; /* of the memory budget */

    term_ent *terms;
    term_hot *hot; /* parallel to terms */
    uint8_t **pages; /* PAGE_BYTES each; kept across segments */
    size_t npages, cap_pages, page_at, page_off; /* see slice_alloc */
    size_t nterms, cap_terms;
    uint32_t *table;
    size_t table_cap;
    sh_buf pool;
    size_t mem;
    size_t max_post; /* largest term buffer: what a flush adds */
    uint32_t ndocs;
    sh_buf lent, lenb;   /* u32 per doc */
    sh_buf ids, id_offs; /* id bytes; u32 offsets (ndocs + 1) */
    sh_buf hashes;       /* u64 per doc */
    sh_buf gseq;         /* u32 per doc: its number in the writer's stream */
    uint64_t sum_lent, sum_lenb, ntokens;
    uint64_t pos_bytes; /* of the positions runs: the flush's POSITIONS */
    sh_storew store;
    /* the segment's file, open from its first article: its STORE section
     * is written as blocks are compressed, so that the compressed articles
     * (often the largest part of a segment) hold no memory of the budget */
    sh_segw sw;
    int sw_open;
    size_t slot; /* its entry in the writer's list */
    /* A one-thread build that flushes keeps its store in one file, the
     * one its final segment becomes: the STORE section of its first
     * segment, which goes on across flushes (the blocks are numbered by
     * the stream), and its flushes hold no stored articles.  Written once,
     * then, not again by the merge of the flushes: at 1 GB the store is
     * three fifths of the index. */
    sh_segw keep;
    int keep_open;
    size_t keep_slot;

    /* per-article scratch */
    doc_tok *toks;
    size_t ntoks, cap_toks;
    doc_term *dterms; /* distinct terms of the article, in order of appearance */
    size_t ndterms, cap_dterms;
    uint32_t cur_doc; /* doc number + 1 of the article being inverted */
    uint32_t memo_epoch; /* term ids memoized in the stem cache hold for this
                            epoch only: it changes whenever ids restart */
    plain_memo *plain;   /* PLAIN_SLOTS */
    uint32_t field;
    int tok_rc;

    uint64_t total_tokens; /* over all its segments */
    size_t shared_mem;     /* its part of what the writer holds for all
                              builders (ids seen): taken off its share */
    int rc;                /* first error; it then only drains the queue */
} builder;

/* A segment this writer made, not yet committed. */
typedef struct newseg {
    char *name;
    uint32_t ndocs;
    uint64_t nterms;
    uint32_t *gseq; /* builder output: stream numbers of its docs */
    int gone;       /* merged into another before commit; file removed */
    int unsynced;   /* written without fsync: synced only if the commit names it */
} newseg;

struct sahel_writer {
    char *dir;
    int force, committed, failed;
    size_t budget;
    uint64_t generation;
    char lang[32];

    /* builders and the queue between them and the caller */
    builder *b;
    size_t nthreads;
    int threads_running;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_free;
    batch **queue; /* ring of full batches */
    size_t qcap, qhead, qlen;
    batch **freeb; /* empty batches */
    size_t nfree;
    batch *cur;    /* being filled by the caller */
    size_t nbatches;
    int closing;
    int abandon;   /* close without commit: builders write nothing */
    int async_rc;  /* first builder error, and its message */
    sahel_error async_err;
    uint64_t stream; /* articles handed to builders */
    size_t shared_mem; /* shared_memory(), as of the last batch (under mu) */

    idset seen;

    /* a one-thread build's store, once its builder is done (see
     * builder.keep): the file and its slot, and STOREIDX */
    sh_segw keep;
    int keep_open;
    size_t keep_slot;
    sh_buf keep_idx;

    /* segments written, not yet committed (under mu while builders run) */
    newseg *segs;
    size_t nsegs, cap_segs;
    sahel_writer_stats stats;
    int lock_fd;
    int optimize;

    /* update: the snapshot being changed */
    int update;
    sahel_index *ix;
    uint8_t **bits;  /* per old segment: writable deletion bitmap, or NULL */
    uint32_t *ndel;  /* per old segment: deleted documents */
    sh_buf scratch;  /* a record, for its hash */

    /* sources: the recorded table (update), its entries' fate, new entries */
    sh_srctab oldsrc;
    uint8_t *oldstate;
    struct newsrc {
        size_t path_off, path_len, ids_off, ids_len;
        uint64_t size, ino;
        int64_t mtime_ns;
        uint32_t nids;
    } *newsrc;
    size_t nnewsrc, cap_newsrc;
    sh_buf srcpool;
    struct root {
        size_t given_off, given_len, real_off, real_len, file;
    } *roots;
    size_t nroots;
    long cur_new;  /* newsrc entry being read, or -1 */
    long cur_old;  /* its recorded entry, or -1 */
};

/* fate of a recorded source file in this update */
enum { SRC_UNVISITED = 0, SRC_CARRIED, SRC_REREAD, SRC_FAILED };

/* ---- id set ------------------------------------------------------------- */

static const char *idset_get(const idset *s, uint32_t i, size_t *len) {
    uint64_t a = sh_load_u64(s->offs.p + (size_t)i * 8), b = sh_load_u64(s->offs.p + (size_t)i * 8 + 8);
    *len = (size_t)(b - a);
    return (const char *)s->pool.p + a;
}

static int idset_grow(idset *s) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint32_t *slots = sh_calloc(cap, sizeof *slots);
    if (!slots) return SAHEL_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        size_t len;
        const char *id = idset_get(s, (uint32_t)i, &len);
        size_t h = (size_t)XXH3_64bits(id, len) & (cap - 1);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = (uint32_t)i + 1;
    }
    sh_free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

/* 1 if added, 0 if already there, <0 on error */
static int idset_add(idset *s, const char *id, size_t len) {
    if ((s->n + 1) * 2 > s->cap && idset_grow(s)) return SAHEL_ENOMEM;
    if (s->n >= UINT32_MAX - 1) return SAHEL_ETOOBIG;
    size_t h = (size_t)XXH3_64bits(id, len) & (s->cap - 1);
    while (s->slots[h]) {
        size_t l2;
        const char *o = idset_get(s, s->slots[h] - 1, &l2);
        if (l2 == len && memcmp(o, id, len) == 0) return 0;
        h = (h + 1) & (s->cap - 1);
    }
    if (s->offs.len == 0 && sh_buf_put_u64(&s->offs, 0)) return SAHEL_ENOMEM;
    if (sh_buf_put(&s->pool, id, len) || sh_buf_put_u64(&s->offs, s->pool.len)) return SAHEL_ENOMEM;
    s->slots[h] = (uint32_t)s->n + 1;
    s->n++;
    return 1;
}

static size_t idset_memory(const idset *s) {
    return s->cap * sizeof *s->slots + s->pool.cap + s->offs.cap;
}

static void idset_free(idset *s) {
    sh_free(s->slots);
    sh_buf_free(&s->pool);
    sh_buf_free(&s->offs);
    memset(s, 0, sizeof *s);
}
/* ---- term table --------------------------------------------------------- */

static int table_grow(builder *b) {
    size_t cap = b->table_cap ? b->table_cap * 2 : 1u << 14;
    uint32_t *t = sh_big_alloc(cap * sizeof *t);
    if (!t) return SAHEL_ENOMEM;
    for (size_t i = 0; i < b->nterms; i++) {
        size_t h = (size_t)b->terms[i].hash & (cap - 1);
        while (t[h]) h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    b->mem += (cap - b->table_cap) * sizeof *t;
    sh_big_free(b->table, b->table_cap * sizeof *t);
    b->table = t;
    b->table_cap = cap;
    return 0;
}

static int term_id(builder *b, const char *s, size_t len, uint32_t *out) {
    if ((b->nterms + 1) * 2 > b->table_cap && table_grow(b)) return SAHEL_ENOMEM;
    uint64_t hash = XXH3_64bits(s, len);
    size_t h = (size_t)hash & (b->table_cap - 1);
    while (b->table[h]) {
        term_ent *e = &b->terms[b->table[h] - 1];
        if (e->hash == hash && e->len == len && memcmp(b->pool.p + e->str_off, s, len) == 0) {
            *out = b->table[h] - 1;
            return 0;
        }
        h = (h + 1) & (b->table_cap - 1);
    }
    if (b->nterms == b->cap_terms) {
        size_t cap = b->cap_terms ? b->cap_terms * 2 : 4096;
        term_ent *t = sh_big_realloc(b->terms, b->cap_terms * sizeof *t, cap * sizeof *t);
        if (!t) return SAHEL_ENOMEM;
        b->terms = t;
        term_hot *ht = sh_big_realloc(b->hot, b->cap_terms * sizeof *ht, cap * sizeof *ht);
        if (!ht) {
            /* back to the size cap_terms says: the size its free gives */
            term_ent *back = sh_big_realloc(t, cap * sizeof *t, b->cap_terms * sizeof *t);
            if (back) b->terms = back;
            return SAHEL_ENOMEM;
        }
        b->hot = ht;
        b->mem += (cap - b->cap_terms) * (sizeof *t + sizeof *ht);
        b->cap_terms = cap;
    }
    if (b->pool.len + len > UINT32_MAX) return SAHEL_ETOOBIG;
    size_t before = b->pool.cap;
    if (sh_buf_put(&b->pool, s, len)) return SAHEL_ENOMEM;
    b->mem += b->pool.cap - before;
    term_ent *e = &b->terms[b->nterms];
    memset(e, 0, sizeof *e);
    memset(&b->hot[b->nterms], 0, sizeof b->hot[0]);
    e->hash = hash;
    e->str_off = (uint32_t)(b->pool.len - len);
    e->len = (uint32_t)len;
    b->table[h] = (uint32_t)b->nterms + 1;
    *out = (uint32_t)b->nterms++;
    return 0;
}

static size_t slice_size(uint32_t level) {
    return level >= 11 ? SLICE_MAX : SLICE_MIN << level;
}

/* A slice of `size` bytes from the builder's pages; NULL when out of
 * memory.  pages[0..page_at) are in use, the last up to page_off. */
static uint8_t *slice_alloc(builder *b, size_t size) {
    if (b->page_at == 0 || b->page_off + size > PAGE_BYTES) {
        if (b->page_at == b->npages) {
            if (b->npages == b->cap_pages) {
                size_t cap = b->cap_pages ? b->cap_pages * 2 : 16;
                uint8_t **p = sh_reallocarray(b->pages, cap, sizeof *p);
                if (!p) return NULL;
                b->pages = p;
                b->cap_pages = cap;
            }
            if (!(b->pages[b->npages] = sh_big_alloc(PAGE_BYTES))) return NULL;
            b->npages++;
            b->mem += PAGE_BYTES; /* counted while held, in use or not */
        }
        b->page_at++;
        b->page_off = 0;
    }
    uint8_t *s = b->pages[b->page_at - 1] + b->page_off;
    b->page_off += size;
    return s;
}

/* The term's current slice is full: link a bigger one. */
static int slice_next(builder *b, term_ent *e) {
    uint32_t level = e->head ? e->level + 1 : 0;
    size_t size = slice_size(level);
    uint8_t *s = slice_alloc(b, size);
    if (!s) return SAHEL_ENOMEM;
    if (e->head)
        memcpy(e->wend, &s, SLICE_LINK);
    else
        e->head = s;
    e->level = level;
    e->wp = s;
    e->wend = s + size - SLICE_LINK;
    return 0;
}

/* v as a varint at p, which has room for 5 bytes; returns the end. */
static inline uint8_t *put_varint32(uint8_t *p, uint32_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline __attribute__((always_inline)) int term_put_varint(builder *b, term_ent *e,
                                                                  uint32_t v) {
    if (SH_LIKELY(e->wend - e->wp >= 5)) { /* room for any varint */
        uint8_t *p = put_varint32(e->wp, v);
        e->nbytes += (uint32_t)(p - e->wp);
        e->wp = p;
        return 0;
    }
    for (;;) {
        if (SH_UNLIKELY(e->wp == e->wend) && slice_next(b, e)) return SAHEL_ENOMEM;
        e->nbytes++;
        if (v < 0x80) {
            *e->wp++ = (uint8_t)v;
            return 0;
        }
        *e->wp++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
}

/* The term id of a short term without a stem-cache memo, through the
 * plain memo. */
static int plain_id(builder *b, const char *s, uint32_t len, uint32_t *out) {
    uint64_t k0 = 0, k1 = 0;
    memcpy(&k0, s, SH_MIN(len, 8u));
    if (len > 8) memcpy(&k1, s + 8, len - 8);
    uint64_t h = (k0 ^ (k1 * 0xC2B2AE3D27D4EB4Full) ^ len) * 0x9E3779B97F4A7C15ull;
    plain_memo *m = &b->plain[h >> 52]; /* 12 bits: PLAIN_SLOTS */
    if (m->len == len && m->epoch == b->memo_epoch && m->k0 == k0 && m->k1 == k1) {
        *out = m->id;
        return 0;
    }
    int rc = term_id(b, s, len, out);
    if (!rc) *m = (plain_memo){k0, k1, len, b->memo_epoch, *out};
    return rc;
}

/* The term id of a token: from its stem-cache memo (the cache remembers
 * this form's term id for the segment being built: u32 epoch, u32 id),
 * from the plain memo, or from the term table. */
static inline int token_id(builder *b, const sh_token *tok, uint32_t *id) {
    uint32_t epoch;
    if (tok->memo && (memcpy(&epoch, tok->memo, 4), epoch == b->memo_epoch)) {
        memcpy(id, tok->memo + 4, 4);
        return 0;
    }
    if (!tok->memo && tok->term_len <= PLAIN_MAX_LEN)
        return plain_id(b, tok->term, tok->term_len, id);
    int rc = term_id(b, tok->term, tok->term_len, id);
    if (!rc && tok->memo) {
        memcpy(tok->memo, &b->memo_epoch, 4);
        memcpy(tok->memo + 4, id, 4);
    }
    return rc;
}

/* An article's scratch array *p of *cap elements of `size` bytes, grown
 * (doubling from `first`) to hold `need`. */
static int grow_scratch(void **p, size_t *cap, size_t need, size_t first, size_t size) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    void *q = sh_reallocarray(*p, c, size);
    if (!q) return SAHEL_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* A batch of the article's tokens (sh_analyze_batched): first every
 * token's term id, fetching its per-article entry (term_hot), then the
 * entries.  Most entries of a big vocabulary are out of cache; asked for
 * together, their misses overlap instead of following one another.  A
 * term's first token in the article also fetches the term's entry, which
 * index_doc writes once the article is read. */
static int on_tokens(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    builder *b = ctx;
    uint32_t ids[SH_TOKEN_BATCH];
    for (size_t i = 0; i < n; i++) {
        int rc = token_id(b, &toks[i], &ids[i]);
        if (rc) { /* the article is lost (index_doc): none of the batch is kept */
            *stop = 0;
            return b->tok_rc = rc;
        }
        __builtin_prefetch(&b->hot[ids[i]], 1);
    }
    if (grow_scratch((void **)&b->toks, &b->cap_toks, b->ntoks + n, 4096, sizeof *b->toks) ||
        grow_scratch((void **)&b->dterms, &b->cap_dterms, b->ndterms + n, 1024,
                     sizeof *b->dterms)) {
        *stop = 0;
        return b->tok_rc = SAHEL_ENOMEM;
    }
    if (b->ntoks + n >= UINT32_MAX) {
        *stop = 0;
        return b->tok_rc = SAHEL_ETOOBIG;
    }
    const uint32_t field = b->field, cur = b->cur_doc;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i], idx = (uint32_t)b->ntoks++;
        b->toks[idx] = (doc_tok){toks[i].pos, field, UINT32_MAX};
        term_hot *h = &b->hot[id];
        doc_term *e;
        if (h->cur != cur) {
            __builtin_prefetch(&b->terms[id], 1);
            h->cur = cur;
            h->loc = (uint32_t)b->ndterms;
            e = &b->dterms[b->ndterms++];
            *e = (doc_term){id, idx, idx, 0, 0};
        } else {
            e = &b->dterms[h->loc];
            b->toks[e->tail].next = idx;
            e->tail = idx;
        }
        if (field)
            e->tfb++;
        else
            e->tft++;
    }
    return 0;
}

/* ---- open --------------------------------------------------------------- */

static int is_ours(const char *name);

/* A directory that holds no index may hold only our own leftovers (a
 * lock file, the files of an interrupted first build): a build never
 * writes among someone else's files. */
static int refuse_foreign(const char *dir, sahel_error *err) {
    DIR *d = opendir(dir);
    if (!d) return sh_err_errno(err, SAHEL_EIO, errno, "cannot read %s", dir);
    struct dirent *e;
    int foreign = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, SH_LOCK_FILE) &&
            !is_ours(e->d_name))
            foreign = 1;
    closedir(d);
    if (foreign)
        return sh_err(err, SAHEL_EINVAL,
                      "%s is not empty and holds no index: refusing to write into it", dir);
    return 0;
}

/* Build, under the lock: check what `dir` holds; sets the generation. */
static int prepare_build_dir(sahel_writer *w, const char *dir, sahel_error *err) {
    sh_manifest old;
    sahel_error e2 = {0};
    int mrc = sh_manifest_read(dir, &old, &e2);
    if (mrc == 0) {
        w->generation = old.generation + 1;
        sh_manifest_free(&old);
        if (!w->force) return sh_err(err, SAHEL_EEXIST, "an index already exists in %s", dir);
        return 0;
    }
    if (mrc == SAHEL_ENOTINDEX) return refuse_foreign(dir, err);
    if (mrc == SAHEL_ENOMEM || mrc == SAHEL_EIO) return sh_err(err, mrc, "%s", e2.msg);
    if (!w->force) return sh_err(err, SAHEL_EEXIST, "%s holds a damaged index (%s)", dir, e2.msg);
    return 0;
}

/* Build: the directory must exist (it is made) and hold no foreign files
 * before a lock file is put in it. */
static int make_build_dir(const char *dir, sahel_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (mkdir(dir, 0755) != 0)
            return sh_err_errno(err, SAHEL_EIO, errno, "cannot create index directory %s", dir);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return sh_err(err, SAHEL_EINVAL, "%s exists and is not a directory", dir);
    sh_manifest m;
    sahel_error e2 = {0};
    int mrc = sh_manifest_read(dir, &m, &e2);
    if (mrc == 0) sh_manifest_free(&m);
    if (mrc != SAHEL_ENOTINDEX) return 0; /* an index: judged under the lock */
    return refuse_foreign(dir, err);
}
/* ---- builders ----------------------------------------------------------- */

static int append_u32(sh_buf *b, uint32_t v, size_t *mem) {
    size_t before = b->cap;
    int rc = sh_buf_put_u32(b, v);
    *mem += b->cap - before;
    return rc;
}

static int flush_builder(builder *b, int last, sahel_error *err);

/* What a flush allocates beside what the builder holds: the sort keys of
 * its terms and ids (24 bytes each), the id order; one term at a time, its bytes joined and an entry of
 * 24 bytes per doc (a doc takes 3 bytes at least); the output chunks and
 * spill buffers (SH_SPILL_CHUNK each, a few, plus one term's output). */
static size_t flush_overhead(const builder *b) {
    return SH_MAX(b->nterms, (size_t)b->ndocs) * 24 + (size_t)b->ndocs * 4 +
           9 * (size_t)b->max_post + 6 * SH_SPILL_CHUNK;
}

static int new_segment_slot(sahel_writer *w, size_t *slot, sahel_error *err);

/* The builder's next segment: its name, its file, STORE begun. */
static int begin_segment(builder *b, sahel_error *err) {
    sahel_writer *w = b->w;
    int rc = new_segment_slot(w, &b->slot, err);
    if (rc) return rc;
    pthread_mutex_lock(&w->mu);
    const char *name = w->segs[b->slot].name;
    pthread_mutex_unlock(&w->mu);
    if ((rc = sh_segw_open(&b->sw, w->dir, name, err))) return rc;
    b->sw_open = 1;
    /* most builder segments are merged before any commit names them:
     * they are synced at commit, and only if they are named then */
    b->sw.no_sync = 1;
    return b->keep_open ? 0 : sh_segw_begin(&b->sw, SH_SEC_STORE, err);
}

/* The compressed blocks gathered so far to the file, once they fill a
 * chunk (or all of them). */
static int drain_store(builder *b, int all, sahel_error *err) {
    sh_storew *st = &b->store;
    if (st->store.len < (all ? 1 : SH_SPILL_CHUNK)) return 0;
    int rc = sh_segw_append(b->keep_open ? &b->keep : &b->sw, st->store.p, st->store.len, err);
    if (rc) return rc;
    st->drained += st->store.len;
    st->store.len = 0;
    return 0;
}

/* A builder's own room, which what the writer holds for all builders
 * never takes: its fixed buffers (stem cache, output chunks, a slice page)
 * and a few megabytes of articles. */
#define BUILDER_ROOM ((size_t)6 << 20)

/* The part of what the writer holds for all builders (shared_memory())
 * that this builder counts against its share: all of it, but never its
 * room.  Past that (the ids of many articles, long ones, under a small
 * budget) the budget cannot be kept; a builder left no room would write a
 * segment for every article or two, thousands of them to merge (30 MB of
 * articles with 160-byte ids at 16 MiB took 24 s, not 0.7 s). */
static size_t shared_charge(const builder *b) {
    return SH_MIN(b->shared_mem, b->share > BUILDER_ROOM ? b->share - BUILDER_ROOM : 0);
}

/* Invert one article, number `gseq` of the stream, into b's segment. */
static int index_doc(builder *b, const sahel_doc *doc, uint32_t gseq, sahel_error *err) {
    int rc;
    if (b->ndocs == UINT32_MAX - 1 && (rc = flush_builder(b, 0, err))) return rc;
    if (!b->sw_open && (rc = begin_segment(b, err))) return rc;
    uint32_t doc_no = b->ndocs;
    uint32_t lt = 0, lb = 0;
    b->ntoks = 0;
    b->ndterms = 0;
    b->tok_rc = 0;
    b->field = 0;
    b->cur_doc = doc_no + 1;
    rc = sh_analyze_batched(b->an, doc->title ? doc->title : "", doc->title ? doc->title_len : 0,
                            0, 0, on_tokens, b, &lt);
    if (!rc) {
        b->field = 1;
        rc = sh_analyze_batched(b->an, doc->body ? doc->body : "", doc->body ? doc->body_len : 0,
                                0, 0, on_tokens, b, &lb);
    }
    if (rc || b->tok_rc) goto nomem;
    for (size_t i = 0; i < b->ndterms; i++) {
        /* the article's terms are scattered over the table and their
         * slices over the pages: fetch both a few terms ahead */
        if (i + 16 < b->ndterms) __builtin_prefetch(&b->terms[b->dterms[i + 16].id], 1);
        if (i + 8 < b->ndterms) __builtin_prefetch(b->terms[b->dterms[i + 8].id].wp, 1);
        term_ent *e = &b->terms[b->dterms[i].id];
        const doc_term *h = &b->dterms[i];
        uint32_t last = 0, field = 0;
        /* the whole entry at its longest (5 bytes a value) fits in the
         * slice, nearly always: written through a local pointer, with one
         * check, not one per value (the entry's fields, read back after
         * every byte store, were most of the work) */
        if (SH_LIKELY((size_t)(e->wend - e->wp) >= 5 * (3 + (size_t)h->tft + h->tfb))) {
            uint8_t *p = e->wp;
            p = put_varint32(p, doc_no - e->next_doc);
            p = put_varint32(p, h->tft);
            p = put_varint32(p, h->tfb);
            const uint8_t *run = p;
            for (uint32_t k = h->head; k != UINT32_MAX; k = b->toks[k].next) {
                if (k == h->head || b->toks[k].field != field) last = 0;
                field = b->toks[k].field;
                p = put_varint32(p, b->toks[k].pos - last);
                last = b->toks[k].pos;
            }
            b->pos_bytes += (uint64_t)(p - run);
            e->nbytes += (uint32_t)(p - e->wp);
            e->wp = p;
        } else {
            if (term_put_varint(b, e, doc_no - e->next_doc) || term_put_varint(b, e, h->tft) ||
                term_put_varint(b, e, h->tfb))
                goto nomem;
            for (uint32_t k = h->head; k != UINT32_MAX; k = b->toks[k].next) {
                if (k == h->head || b->toks[k].field != field) last = 0;
                field = b->toks[k].field;
                if (term_put_varint(b, e, b->toks[k].pos - last)) goto nomem;
                b->pos_bytes += sh_varint_len(b->toks[k].pos - last);
                last = b->toks[k].pos;
            }
        }
        if (e->nbytes > b->max_post) b->max_post = e->nbytes;
        e->next_doc = doc_no + 1;
        e->df++;
    }
    uint64_t hash;
    size_t before = sh_storew_memory(&b->store);
    if (sh_storew_add(&b->store, doc, &hash)) goto nomem;
    b->mem += sh_storew_memory(&b->store) - before;
    if ((rc = drain_store(b, 0, err))) return rc;
    if (b->id_offs.len == 0 && append_u32(&b->id_offs, 0, &b->mem)) goto nomem;
    before = b->ids.cap;
    if (sh_buf_put(&b->ids, doc->id, doc->id_len)) goto nomem;
    b->mem += b->ids.cap - before;
    if (b->ids.len > UINT32_MAX) return sh_err(err, SAHEL_ETOOBIG, "too many id bytes in one segment");
    before = b->hashes.cap;
    if (append_u32(&b->id_offs, (uint32_t)b->ids.len, &b->mem) ||
        append_u32(&b->lent, lt, &b->mem) || append_u32(&b->lenb, lb, &b->mem) ||
        append_u32(&b->gseq, gseq, &b->mem) || sh_buf_put_u64(&b->hashes, hash))
        goto nomem;
    b->mem += b->hashes.cap - before;
    b->ndocs++;
    b->sum_lent += lt;
    b->sum_lenb += lb;
    b->ntokens += b->ntoks;
    size_t held = b->mem + sh_analyzer_memory(b->an) + PLAIN_SLOTS * sizeof *b->plain;
    if (held + flush_overhead(b) + shared_charge(b) >= b->share) return flush_builder(b, 0, err);
    return 0;
nomem:
    /* the term buffers may hold part of this article: the segment is lost */
    return sh_err(err, SAHEL_ENOMEM, "out of memory indexing article %.*s",
                  (int)SH_MIN(doc->id_len, 200), doc->id);
}

/* ---- the queue between the caller and the builders ---------------------- */

static void batch_free(batch *bt) {
    if (!bt) return;
    sh_buf_free(&bt->bytes);
    sh_free(bt->docs);
    sh_free(bt);
}

/* The first error of any builder, as the caller's error. */
static int async_error(sahel_writer *w, sahel_error *err) {
    pthread_mutex_lock(&w->mu);
    int rc = w->async_rc;
    if (rc && err) *err = w->async_err;
    pthread_mutex_unlock(&w->mu);
    if (rc) w->failed = 1;
    return rc;
}

static void set_async_error(sahel_writer *w, int rc, const sahel_error *e) {
    pthread_mutex_lock(&w->mu);
    if (!w->async_rc) {
        w->async_rc = rc;
        w->async_err = *e;
        w->async_err.code = rc;
    }
    pthread_mutex_unlock(&w->mu);
}

static int index_batch(builder *b, const batch *bt, sahel_error *err) {
    int rc = 0;
    for (size_t i = 0; i < bt->ndocs && !rc; i++) {
        const batch_doc *bd = &bt->docs[i];
        const char *p = (const char *)bt->bytes.p + bd->off;
        const char *f[8];
        for (int k = 0; k < 8; k++) {
            f[k] = bd->len[k] ? p : NULL;
            p += bd->len[k];
        }
        sahel_doc doc = {f[0], bd->len[0], f[1], bd->len[1], f[2], bd->len[2], f[3], bd->len[3],
                         f[4], bd->len[4], f[5], bd->len[5], f[6], bd->len[6], f[7], bd->len[7],
                         bd->line};
        rc = index_doc(b, &doc, bt->first + (uint32_t)i, err);
    }
    /* a store block never spans two batches: the final merge can then copy
     * every block whole */
    if (!rc) {
        size_t before = sh_storew_memory(&b->store);
        if (sh_storew_cut(&b->store)) rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        b->mem += sh_storew_memory(&b->store) - before;
        if (!rc && (b->sw_open || b->keep_open)) rc = drain_store(b, 0, err);
    }
    return rc;
}

static void *builder_main(void *arg) {
    builder *b = arg;
    sahel_writer *w = b->w;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->qlen && !w->closing) pthread_cond_wait(&w->cv_work, &w->mu);
        if (!w->qlen) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        batch *bt = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % w->qcap;
        w->qlen--;
        int skip = w->abandon;
        b->shared_mem = w->shared_mem / w->nthreads;
        pthread_mutex_unlock(&w->mu);
        sahel_error e = {0};
        /* after an error the builder only drains the queue */
        if (!skip && !b->rc && (b->rc = index_batch(b, bt, &e))) set_async_error(w, b->rc, &e);
        pthread_mutex_lock(&w->mu);
        bt->bytes.len = 0;
        bt->ndocs = 0;
        w->freeb[w->nfree++] = bt;
        pthread_cond_signal(&w->cv_free);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_mutex_lock(&w->mu);
    int skip = w->abandon;
    pthread_mutex_unlock(&w->mu);
    sahel_error e = {0};
    if (!skip && !b->rc && (b->rc = flush_builder(b, 1, &e))) set_async_error(w, b->rc, &e);
    return NULL;
}

static int start_builders(sahel_writer *w, sahel_error *err) {
    size_t n = w->nthreads;
    w->qcap = n;
    w->nbatches = 2 * n + 1;
    w->queue = sh_calloc(w->qcap, sizeof *w->queue);
    w->freeb = sh_calloc(w->nbatches, sizeof *w->freeb);
    if (!w->queue || !w->freeb) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < w->nbatches; i++) {
        w->freeb[i] = sh_calloc(1, sizeof **w->freeb);
        if (!w->freeb[i]) return sh_err(err, SAHEL_ENOMEM, "out of memory");
        w->nfree++;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = pthread_create(&w->b[i].thread, NULL, builder_main, &w->b[i]);
        if (rc) {
            w->failed = 1;
            return sh_err_errno(err, SAHEL_ENOMEM, rc, "cannot start an indexing thread");
        }
        w->b[i].started = 1;
    }
    w->threads_running = 1;
    return 0;
}

/* What the writer holds for the whole build, beside its builders, and
 * which grows with every article: the id set, the stream numbers of the
 * segments' articles, and the ids recorded per source file (for the next
 * update).  The builders flush early enough to leave room for it: left
 * out, the source ids took a 2 GB build 13% past its budget. */
static size_t shared_memory(const sahel_writer *w) {
    return idset_memory(&w->seen) + (size_t)w->stream * 4 + w->srcpool.cap +
           w->cap_newsrc * sizeof *w->newsrc;
}

/* Hand the batch being filled to the builders. */
static void submit_batch(sahel_writer *w) {
    batch *bt = w->cur;
    w->cur = NULL;
    if (!bt) return;
    if (!bt->ndocs) {
        pthread_mutex_lock(&w->mu);
        w->freeb[w->nfree++] = bt;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    size_t shared = shared_memory(w);
    pthread_mutex_lock(&w->mu);
    w->shared_mem = shared;
    /* there is always room: batches in the ring are fewer than qcap + 1
     * only while the caller holds one, and it waits for a free one */
    while (w->qlen == w->qcap) pthread_cond_wait(&w->cv_free, &w->mu);
    w->queue[(w->qhead + w->qlen) % w->qcap] = bt;
    w->qlen++;
    pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
}

/* Stop the builders: each flushes what it holds. */
static void stop_builders(sahel_writer *w) {
    if (!w->threads_running) return;
    submit_batch(w);
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    pthread_cond_broadcast(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < w->nthreads; i++)
        if (w->b[i].started) {
            pthread_join(w->b[i].thread, NULL);
            w->b[i].started = 0;
        }
    w->threads_running = 0;
}

static size_t batch_target(const sahel_writer *w) {
    size_t t = w->budget / (4 * w->nthreads);
    return t < 1 ? 1 : SH_MIN(t, SH_BATCH_BYTES);
}

/* Copy the article into the batch being filled; pass the batch on when
 * it is full. */
static int enqueue_doc(sahel_writer *w, const sahel_doc *doc, sahel_error *err) {
    int rc;
    if (!w->threads_running && (rc = start_builders(w, err))) return rc;
    if ((rc = async_error(w, err))) return rc;
    if (!w->cur) {
        pthread_mutex_lock(&w->mu);
        while (!w->nfree) pthread_cond_wait(&w->cv_free, &w->mu);
        w->cur = w->freeb[--w->nfree];
        pthread_mutex_unlock(&w->mu);
        w->cur->first = (uint32_t)w->stream;
    }
    batch *bt = w->cur;
    const char *f[8] = {doc->id, doc->title, doc->body, doc->date,
                        doc->source, doc->url, doc->lang, doc->path};
    size_t l[8] = {doc->id_len, doc->title_len, doc->body_len, doc->date_len,
                   doc->source_len, doc->url_len, doc->lang_len, doc->path_len};
    if (bt->ndocs == bt->cap_docs) {
        size_t cap = bt->cap_docs ? bt->cap_docs * 2 : 256;
        batch_doc *d = sh_reallocarray(bt->docs, cap, sizeof *d);
        if (!d) goto nomem;
        bt->docs = d;
        bt->cap_docs = cap;
    }
    batch_doc *bd = &bt->docs[bt->ndocs];
    bd->off = bt->bytes.len;
    bd->line = doc->line;
    for (int k = 0; k < 8; k++) {
        bd->len[k] = f[k] ? l[k] : 0;
        if (bd->len[k] && sh_buf_put(&bt->bytes, f[k], bd->len[k])) goto nomem;
    }
    bt->ndocs++;
    w->stream++;
    if (bt->bytes.len >= batch_target(w)) submit_batch(w);
    return 0;
nomem:
    w->failed = 1;
    return sh_err(err, SAHEL_ENOMEM, "out of memory queueing article %.*s",
                  (int)SH_MIN(doc->id_len, 200), doc->id);
}

/* ---- open --------------------------------------------------------------- */

static size_t default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (size_t)SH_MIN(n, (long)SH_MAX_THREADS);
}

/* What each of the writer's w->nthreads builders may hold. */
static size_t builder_share(const sahel_writer *w) {
    /* the batches in flight come off the top of the budget (a batch's
     * buffer may grow to twice its target) */
    size_t reserve = w->nthreads > 1 ? (2 * w->nthreads + 1) * 2 * batch_target(w) : 0;
    /* and what no builder counts: the process's own (libraries, stdio,
     * the reading side's buffers, compression contexts), about 4 MiB, and
     * a margin of 5% for the allocator's own overhead */
    size_t fixed = ((size_t)4 << 20) + reserve + w->budget / 20;
    size_t share = (w->budget > fixed ? w->budget - fixed : 0) / w->nthreads;
    /* a budget too small for all that still gets its flushes (tests use
     * kilobytes to make many segments) */
    share = SH_MAX(share, SH_MIN(w->budget / w->nthreads, (size_t)1 << 20));
    return SH_MAX(share, (size_t)1);
}

/* The least a builder should have: with less, its fixed buffers (stem
 * cache, output chunks, a slice page) leave it room for a few articles, and
 * it writes a segment every few (one thread at 10 MiB, a share of 5.5 MiB,
 * took 52 s over 30 MB of articles that it indexes in 1.1 s at 12 MiB). */
#define MIN_BUILDER_SHARE ((size_t)8 << 20)

/* Fewer threads when the budget cannot give each builder that room (two
 * threads at 16 MiB took 72 s over those articles): the index is the same
 * whatever the number of threads.  A budget below SAHEL_MIN_MEMORY_BUDGET
 * is taken as it is: segments of a few articles is what the caller asked
 * for. */
static void fit_threads(sahel_writer *w) {
    if (w->budget < SAHEL_MIN_MEMORY_BUDGET) return;
    while (w->nthreads > 1 && builder_share(w) < MIN_BUILDER_SHARE) w->nthreads--;
}

static int init_builders(sahel_writer *w, sahel_error *err) {
    w->b = sh_calloc(w->nthreads, sizeof *w->b);
    if (!w->b) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    size_t share = builder_share(w);
    for (size_t i = 0; i < w->nthreads; i++) {
        builder *b = &w->b[i];
        b->w = w;
        b->share = share;
        b->memo_epoch = 1; /* a fresh memo is zero: never a valid epoch */
        int rc = sh_analyzer_new(w->lang, &b->an, err);
        if (rc) return rc;
        if (!(b->plain = sh_calloc(PLAIN_SLOTS, sizeof *b->plain)))
            return sh_err(err, SAHEL_ENOMEM, "out of memory");
        /* the stem cache is part of the builder's share */
        sh_analyzer_set_cache_limit(b->an, b->share / 8);
    }
    return 0;
}

int sahel_writer_open(const char *dir, const sahel_writer_opts *opts, sahel_writer **out,
                      sahel_error *err) {
    *out = NULL;
    if (!dir || !*dir) return sh_err(err, SAHEL_EINVAL, "no index directory given");
    if (opts && opts->threads > SH_MAX_THREADS)
        return sh_err(err, SAHEL_EINVAL, "at most %d indexing threads", SH_MAX_THREADS);
    sahel_writer *w = sh_calloc(1, sizeof *w);
    if (!w) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_free, NULL);
    w->lock_fd = -1;
    w->cur_new = w->cur_old = -1;
    w->force = opts && opts->force;
    w->update = opts && opts->update;
    w->budget = opts && opts->memory_budget ? opts->memory_budget : DEFAULT_BUDGET;
    w->nthreads = opts && opts->threads ? opts->threads : default_threads();
    fit_threads(w);
    w->stats.nthreads = (unsigned)w->nthreads;
    w->dir = sh_strndup(dir, strlen(dir));
    if (!w->dir) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(w->lang, sizeof w->lang, "%s", SH_LANG);
    w->generation = 1;
    if (w->update) {
        sh_manifest m;
        if ((rc = sh_manifest_read(dir, &m, err))) goto fail; /* no index: ENOTINDEX */
        sh_manifest_free(&m);
    } else if ((rc = make_build_dir(dir, err))) {
        goto fail;
    }
    if ((rc = sh_lock_acquire(dir, &w->lock_fd, &w->stats.stale_lock_pid, err))) goto fail;
    /* the generation is read under the lock, so that no other writer can
     * commit the names this one will use */
    if (!w->update && (rc = prepare_build_dir(w, dir, err))) goto fail;
    if (w->update) {
        /* the snapshot is read under the lock: no commit can race it */
        if ((rc = sahel_index_open(dir, &w->ix, err))) goto fail;
        w->generation = w->ix->man.generation + 1;
        snprintf(w->lang, sizeof w->lang, "%s", w->ix->man.lang);
        size_t n = w->ix->nsegs ? w->ix->nsegs : 1;
        w->bits = sh_calloc(n, sizeof *w->bits);
        w->ndel = sh_calloc(n, sizeof *w->ndel);
        if (!w->bits || !w->ndel) {
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < w->ix->nsegs; i++) w->ndel[i] = w->ix->segs[i].ndeleted;
        if (w->ix->man.sources_gen) {
            if ((rc = sh_srctab_read(dir, w->ix->man.sources_gen, &w->oldsrc, err))) goto fail;
            w->oldstate = sh_calloc(w->oldsrc.n ? w->oldsrc.n : 1, 1);
            if (!w->oldstate) {
                rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    if ((rc = init_builders(w, err))) goto fail;
    *out = w;
    return 0;
fail:
    sahel_writer_close(w);
    return rc;
}

/* ---- update: what the index holds already ------------------------------ */

/* The live version of `id` in the snapshot being updated: 1 and (seg, doc),
 * newest segment first, or 0. */
static int find_old(sahel_writer *w, const char *id, size_t len, size_t *seg, uint32_t *doc,
                    sahel_error *err) {
    if (!w->ix) return 0;
    for (size_t i = w->ix->nsegs; i-- > 0;) {
        const sh_segment *sg = &w->ix->segs[i];
        int rc = sh_segment_find_id(sg, id, len, doc, err);
        if (rc < 0) return rc;
        if (rc && !sh_bit_get(w->bits[i], *doc)) {
            *seg = i;
            return 1;
        }
    }
    return 0;
}

static int delete_old(sahel_writer *w, size_t seg, uint32_t doc, sahel_error *err) {
    const sh_segment *sg = &w->ix->segs[seg];
    if (!w->bits[seg]) {
        size_t n = ((size_t)sg->ndocs + 7) / 8;
        w->bits[seg] = sh_calloc(n ? n : 1, 1);
        if (!w->bits[seg]) return sh_err(err, SAHEL_ENOMEM, "out of memory");
        if (sg->deleted) memcpy(w->bits[seg], sg->deleted, n);
    }
    if (!sh_bit_get(w->bits[seg], doc)) {
        sh_bit_set(w->bits[seg], doc);
        w->ndel[seg]++;
        w->stats.ndeleted++;
    }
    return 0;
}

/* The current source file holds this id: remember it in its entry. */
static int note_source_id(sahel_writer *w, const char *id, size_t len) {
    if (w->cur_new < 0) return 0;
    struct newsrc *e = &w->newsrc[w->cur_new];
    if (sh_buf_put_u16(&w->srcpool, (uint16_t)len) || sh_buf_put(&w->srcpool, id, len))
        return SAHEL_ENOMEM;
    e->nids++;
    e->ids_len += 2 + len;
    return 0;
}
int sahel_writer_add(sahel_writer *w, const sahel_doc *doc, sahel_error *err) {
    if (w->committed || w->failed)
        return sh_err(err, SAHEL_EINVAL, "writer is %s", w->committed ? "committed" : "failed");
    if (!doc->id || doc->id_len == 0) return sh_err(err, SAHEL_EINVAL, "article has no id");
    if (doc->id_len > 4096) return sh_err(err, SAHEL_ETOOBIG, "article id longer than 4096 bytes");
    if (doc->title_len > UINT32_MAX / 2 || doc->body_len > UINT32_MAX / 2)
        return sh_err(err, SAHEL_ETOOBIG, "article %.*s is larger than 2 GiB",
                      (int)SH_MIN(doc->id_len, 64), doc->id);
    if (w->stream >= UINT32_MAX - 1)
        return sh_err(err, SAHEL_ETOOBIG, "one writer takes at most %u articles", UINT32_MAX - 2);
    int rc = idset_add(&w->seen, doc->id, doc->id_len);
    if (rc < 0) return sh_err(err, rc, "out of memory");
    if (rc == 0)
        return sh_err(err, SAHEL_EDUPLICATE, "duplicate id %.*s", (int)SH_MIN(doc->id_len, 200),
                      doc->id);
    int outcome = SAHEL_ADDED;
    size_t seg;
    uint32_t d;
    if ((rc = find_old(w, doc->id, doc->id_len, &seg, &d, err)) < 0) return rc;
    if (rc) {
        sh_buf_reset(&w->scratch);
        if (sh_store_record(&w->scratch, doc)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
        uint64_t old = sh_load_u64(w->ix->segs[seg].sec[SH_SEC_DOCHASH].p + (size_t)d * 8);
        if (old == XXH3_64bits(w->scratch.p, w->scratch.len)) {
            w->stats.nunchanged++;
            if (note_source_id(w, doc->id, doc->id_len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
            return SAHEL_UNCHANGED;
        }
        if ((rc = delete_old(w, seg, d, err))) return rc;
        w->stats.ndeleted--; /* a replacement, counted as such */
        outcome = SAHEL_REPLACED;
    }
    if (w->nthreads == 1) {
        /* one thread: the caller's own, no queue */
        w->b[0].shared_mem = shared_memory(w);
        if ((rc = index_doc(&w->b[0], doc, (uint32_t)w->stream, err))) {
            w->failed = 1;
            return rc;
        }
        w->stream++;
    } else if ((rc = enqueue_doc(w, doc, err))) {
        return rc;
    }
    w->stats.ndocs++;
    w->stats.bytes_in += doc->title_len + doc->body_len;
    if (outcome == SAHEL_REPLACED)
        w->stats.nreplaced++;
    else
        w->stats.nadded++;
    if (note_source_id(w, doc->id, doc->id_len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    return outcome;
}

int sahel_writer_delete(sahel_writer *w, const char *id, size_t id_len, sahel_error *err) {
    if (w->committed || w->failed)
        return sh_err(err, SAHEL_EINVAL, "writer is %s", w->committed ? "committed" : "failed");
    size_t seg;
    uint32_t d;
    int rc = find_old(w, id, id_len, &seg, &d, err);
    if (rc <= 0) return rc < 0 ? rc : 1;
    return delete_old(w, seg, d, err);
}

int sahel_writer_optimize(sahel_writer *w, sahel_error *err) {
    if (w->committed || w->failed)
        return sh_err(err, SAHEL_EINVAL, "writer is %s", w->committed ? "committed" : "failed");
    w->optimize = 1;
    return 0;
}

/* ---- sources: the files articles come from ------------------------------ */

int sh_writer_source_root(sahel_writer *w, const char *path, size_t len, sahel_error *err) {
    char given[4096], real[PATH_MAX];
    if (len >= sizeof given) return sh_err(err, SAHEL_ETOOBIG, "path too long");
    memcpy(given, path, len);
    given[len] = '\0';
    if (!realpath(given, real)) return sh_err_errno(err, SAHEL_EIO, errno, "cannot resolve %s", given);
    struct root *r = sh_reallocarray(w->roots, w->nroots + 1, sizeof *r);
    if (!r) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    w->roots = r;
    r = &w->roots[w->nroots];
    r->given_off = w->srcpool.len;
    r->given_len = len;
    if (sh_buf_put(&w->srcpool, given, len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    r->real_off = w->srcpool.len;
    r->real_len = strlen(real);
    if (sh_buf_put(&w->srcpool, real, r->real_len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    w->nroots++;
    return 0;
}

/* The ids a recorded file holds count as seen in this update: a new file
 * repeating one is a duplicate, and a vanished file does not take an
 * article that an unread file still holds. */
static int see_ids(sahel_writer *w, const sh_srcent *e, sahel_error *err) {
    const uint8_t *p = e->ids;
    for (uint32_t k = 0; k < e->nids; k++) {
        size_t len = sh_load_u16(p);
        if (idset_add(&w->seen, (const char *)p + 2, len) < 0)
            return sh_err(err, SAHEL_ENOMEM, "out of memory");
        p += 2 + len;
    }
    return 0;
}

int sh_writer_source_begin(sahel_writer *w, const char *path, uint64_t size, int64_t mtime_ns,
                           uint64_t ino, sahel_error *err) {
    w->cur_new = w->cur_old = -1;
    if (!w->nroots) return 0;
    const struct root *r = &w->roots[w->nroots - 1];
    size_t plen = strlen(path);
    /* canonical path: the root's realpath, then the path below it */
    const char *rest = "";
    size_t rest_len = 0;
    if (plen > r->given_len && memcmp(path, w->srcpool.p + r->given_off, r->given_len) == 0) {
        rest = path + r->given_len;
        rest_len = plen - r->given_len;
    }
    if (r->real_len + rest_len > UINT16_MAX) return 0; /* not tracked: always read */
    struct newsrc e = {0};
    e.path_off = w->srcpool.len;
    e.path_len = r->real_len + rest_len;
    if (sh_buf_reserve(&w->srcpool, e.path_len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    memcpy(w->srcpool.p + w->srcpool.len, w->srcpool.p + r->real_off, r->real_len);
    memcpy(w->srcpool.p + w->srcpool.len + r->real_len, rest, rest_len);
    w->srcpool.len += e.path_len;
    e.size = size;
    e.mtime_ns = mtime_ns;
    e.ino = ino;
    e.ids_off = w->srcpool.len;
    sh_srcent *old = w->oldsrc.n ? sh_srctab_find(&w->oldsrc, (const char *)w->srcpool.p + e.path_off,
                                                  e.path_len)
                                 : NULL;
    if (old) {
        long oi = (long)(old - w->oldsrc.e);
        if (w->oldstate[oi] != SRC_UNVISITED) return 0; /* met twice: read it again */
        if (old->size == size && old->mtime_ns == mtime_ns && old->ino == ino) {
            w->oldstate[oi] = SRC_CARRIED;
            w->srcpool.len = e.path_off;
            w->stats.nunchanged_files++;
            w->stats.nunchanged += old->nids;
            /* its articles are still there: seen, as if read */
            int rc = see_ids(w, old, err);
            return rc ? rc : 1;
        }
        w->cur_old = oi;
    }
    if (w->nnewsrc == w->cap_newsrc) {
        size_t cap = w->cap_newsrc ? w->cap_newsrc * 2 : 64;
        struct newsrc *n = sh_reallocarray(w->newsrc, cap, sizeof *n);
        if (!n) return sh_err(err, SAHEL_ENOMEM, "out of memory");
        w->newsrc = n;
        w->cap_newsrc = cap;
    }
    w->newsrc[w->nnewsrc] = e;
    w->cur_new = (long)w->nnewsrc++;
    return 0;
}

void sh_writer_source_end(sahel_writer *w, int ok) {
    if (w->cur_old >= 0) {
        w->oldstate[w->cur_old] = ok ? SRC_REREAD : SRC_FAILED;
        /* a file that could not be read still holds its articles; if the
         * ids cannot be noted for want of memory, the commit fails below */
        if (!ok && see_ids(w, &w->oldsrc.e[w->cur_old], NULL)) w->failed = 1;
    }
    if (!ok && w->cur_new >= 0 && w->cur_new == (long)w->nnewsrc - 1) {
        /* a file that could not be read keeps its recorded entry */
        w->srcpool.len = w->newsrc[w->cur_new].path_off;
        w->nnewsrc--;
    }
    w->cur_new = w->cur_old = -1;
}
/* ---- flush: the in-memory segment to a file ----------------------------- */

static void reset_builder(builder *b) {
    b->memo_epoch++; /* term ids restart with the next segment */
    /* the pages stay, for the next segment's slices, as many as it may
     * use: what the writer holds for all builders grows meanwhile */
    size_t used = b->page_at;
    b->page_at = b->page_off = 0;
    size_t keep = (b->share - shared_charge(b)) / PAGE_BYTES;
    keep = SH_MIN(keep, used);
    while (b->npages > keep) sh_big_free(b->pages[--b->npages], PAGE_BYTES);
    sh_big_free(b->terms, b->cap_terms * sizeof *b->terms);
    sh_big_free(b->hot, b->cap_terms * sizeof *b->hot);
    b->terms = NULL;
    b->hot = NULL;
    b->nterms = b->cap_terms = 0;
    sh_big_free(b->table, b->table_cap * sizeof *b->table);
    b->table = NULL;
    b->table_cap = 0;
    sh_buf_free(&b->pool);
    sh_buf_free(&b->lent);
    sh_buf_free(&b->lenb);
    sh_buf_free(&b->ids);
    sh_buf_free(&b->id_offs);
    sh_buf_free(&b->hashes);
    sh_buf_free(&b->gseq);
    if (!b->keep_open) sh_storew_free(&b->store); /* else it goes on */
    b->ndocs = 0;
    b->sum_lent = b->sum_lenb = b->ntokens = b->pos_bytes = 0;
    /* the pages kept are resident: they count against the budget of the
     * next segment, which will use about as many (left out, a 2 GB build
     * held up to 50 MiB of kept, unused pages beyond its budget) */
    b->mem = b->npages * PAGE_BYTES + (b->keep_open ? sh_storew_memory(&b->store) : 0);
    b->max_post = 0;
}

/* Everything a builder holds once it has flushed for the last time (or
 * when its segment is given up: its file goes). */
static void builder_release(builder *b) {
    if (b->sw_open) {
        sh_segw_abort(&b->sw);
        b->sw_open = 0;
    }
    if (b->keep_open) {
        sh_segw_abort(&b->keep);
        b->keep_open = 0;
    }
    reset_builder(b);
    for (size_t k = 0; k < b->npages; k++) sh_big_free(b->pages[k], PAGE_BYTES);
    sh_free(b->pages);
    b->pages = NULL;
    b->npages = b->cap_pages = b->page_at = b->page_off = 0;
    b->mem = 0;
    sh_free(b->toks);
    sh_free(b->dterms);
    b->toks = NULL;
    b->dterms = NULL;
    b->ntoks = b->cap_toks = b->ndterms = b->cap_dterms = 0;
    sh_analyzer_free(b->an);
    b->an = NULL;
    sh_free(b->plain);
    b->plain = NULL;
}

/* A new entry in the list of segments this writer made; its name is
 * unique within the generation. */
static int new_segment_slot(sahel_writer *w, size_t *slot, sahel_error *err) {
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    if (w->nsegs == w->cap_segs) {
        size_t cap = w->cap_segs ? w->cap_segs * 2 : 16;
        newseg *s = sh_reallocarray(w->segs, cap, sizeof *s);
        if (!s) {
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
            goto out;
        }
        w->segs = s;
        w->cap_segs = cap;
    }
    char name[64];
    snprintf(name, sizeof name, "seg-%06llu-%04zu.sseg", (unsigned long long)w->generation,
             w->nsegs);
    newseg *s = &w->segs[w->nsegs];
    memset(s, 0, sizeof *s);
    if (!(s->name = sh_strndup(name, strlen(name)))) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    /* named before the file exists: a file of ours is always one the
     * writer knows about, and removes if it is not committed */
    s->gone = 1;
    *slot = w->nsegs++;
out:
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* One term's postings, decoded for the encoder: per doc its number, tfs
 * and the bytes of its positions, which the in-memory form already holds
 * as the segment stores them (postings.c), so they are pointed at, not
 * decoded.  Arrays hold `cap` entries. */
typedef struct term_out {
    uint32_t *docs, *tft, *tfb, *span_len;
    const uint8_t **span;
    size_t n, cap;
} term_out;

static int term_out_reserve(term_out *o, size_t n) {
    if (n <= o->cap) return 0;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < n) cap *= 2;
    uint32_t **arrs[] = {&o->docs, &o->tft, &o->tfb, &o->span_len};
    for (size_t i = 0; i < 4; i++) {
        uint32_t *v = sh_reallocarray(*arrs[i], cap, sizeof *v);
        if (!v) return SAHEL_ENOMEM;
        *arrs[i] = v;
    }
    const uint8_t **sp = sh_reallocarray((void *)o->span, cap, sizeof *sp);
    if (!sp) return SAHEL_ENOMEM;
    o->span = sp;
    o->cap = cap;
    return 0;
}

static void term_out_free(term_out *o) {
    sh_free(o->docs);
    sh_free(o->tft);
    sh_free(o->tfb);
    sh_free(o->span_len);
    sh_free((void *)o->span);
    memset(o, 0, sizeof *o);
}

/* A term's in-memory postings into `o`; its slices are joined in `bytes`
 * first (o's spans point into it). */
static int unpack_term(const term_ent *e, sh_buf *bytes, term_out *o) {
    o->n = 0;
    bytes->len = 0;
    if (term_out_reserve(o, e->df)) return SAHEL_ENOMEM;
    const uint8_t *p = e->head, *end = e->head ? e->head + e->nbytes : NULL;
    if (e->level > 0) { /* several slices (else the one is read in place) */
        if (sh_buf_reserve(bytes, e->nbytes)) return SAHEL_ENOMEM;
        const uint8_t *s = e->head;
        for (uint32_t level = 0, left = e->nbytes; left; level++) {
            size_t n = SH_MIN((size_t)left, slice_size(level) - SLICE_LINK);
            memcpy(bytes->p + bytes->len, s, n);
            bytes->len += n;
            left -= (uint32_t)n;
            if (left) memcpy(&s, s + n, SLICE_LINK);
        }
        p = bytes->p;
        end = bytes->p + bytes->len;
    }
    uint32_t next = 0;
    while (p < end) {
        uint32_t gap, t, b;
        const uint8_t *q;
        if (o->n == o->cap) return SAHEL_EINVAL;
        uint64_t w;
        /* most docs: gap, tft and tfb a byte each and their few positions
         * in the next 8 bytes, read without a check per byte (a fifth of a
         * Reuters-21578 flush went to the three varint reads and the call
         * to step over the positions) */
        if (SH_LIKELY(end - p >= 16) && !((w = sh_load_u64(p)) & 0x808080u)) {
            gap = (uint32_t)w & 0x7f;
            t = (uint32_t)(w >> 8) & 0x7f;
            b = (uint32_t)(w >> 16) & 0x7f;
            p += 3;
            uint32_t n = t + b;
            uint64_t stops = ~sh_load_u64(p) & 0x8080808080808080u; /* varint ends */
            for (uint32_t k = 1; k < n && stops; k++) stops &= stops - 1;
            if (n && stops)
                q = p + (unsigned)__builtin_ctzll(stops) / 8 + 1;
            else if (!(q = sh_skip_varints(p, end, n)))
                return SAHEL_EINVAL;
        } else {
            if (sh_varint_get32(&p, end, &gap) || sh_varint_get32(&p, end, &t) ||
                sh_varint_get32(&p, end, &b))
                return SAHEL_EINVAL;
            q = sh_skip_varints(p, end, (uint64_t)t + b);
            if (!q) return SAHEL_EINVAL;
        }
        uint32_t d = next + gap;
        next = d + 1;
        o->docs[o->n] = d;
        o->tft[o->n] = t;
        o->tfb[o->n] = b;
        o->span[o->n] = p;
        o->span_len[o->n] = (uint32_t)(q - p);
        o->n++;
        p = q;
    }
    return 0;
}

/* The kept store is complete: its file and STOREIDX go to the writer,
 * whose last merge of the flushes writes the rest of the file. */
static int hand_over_store(builder *b, sahel_error *err) {
    sahel_writer *w = b->w;
    if (sh_storew_finish(&b->store)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc = drain_store(b, 1, err);
    if (rc) return rc;
    sh_segw_end(&b->keep);
    w->keep = b->keep;
    w->keep_slot = b->keep_slot;
    w->keep_open = 1;
    w->keep_idx = b->store.index;
    b->store.index = (sh_buf){0};
    b->keep_open = 0;
    return 0;
}

/* The builder's articles so far to a segment file; `last`: no more will
 * come.  Postings go to the file as they are encoded, positions to their
 * reserved room, the other per-term streams to spills, each term's buffer
 * freed once encoded: a flush holds little beyond what it frees. */
static int flush_builder(builder *b, int last, sahel_error *err) {
    if (b->ndocs == 0) return last && b->keep_open ? hand_over_store(b, err) : 0;
    sahel_writer *w = b->w;
    int rc = 0;
    uint32_t *idorder = NULL;
    sh_strkey *keys = NULL;
    sh_buf post = {0}, pos = {0}, joined = {0};
    term_out to = {0};
    sh_spill pspill, tspill, ispill;
    sh_spill *spills[3] = {&pspill, &tspill, &ispill};
    for (int k = 0; k < 3; k++) {
        memset(spills[k], 0, sizeof pspill);
        spills[k]->fd = -1;
    }
    sh_segw *sw = &b->sw;
    /* one thread, and more articles to come or a store kept already: the
     * store is kept (see builder.keep) */
    int storeless = w->nthreads == 1 && (b->keep_open || !last);
    if (storeless && !b->keep_open) {
        /* the first flush: this file keeps the store, and the flush goes
         * to a file of its own */
        b->keep = b->sw;
        b->keep_slot = b->slot;
        b->keep_open = 1;
        b->sw_open = 0;
        if ((rc = new_segment_slot(w, &b->slot, err))) return rc;
        pthread_mutex_lock(&w->mu);
        const char *fname = w->segs[b->slot].name;
        pthread_mutex_unlock(&w->mu);
        if ((rc = sh_segw_open(sw, w->dir, fname, err))) return rc;
        b->sw_open = 1;
        sw->no_sync = 1;
    }
    size_t slot = b->slot;
    pthread_mutex_lock(&w->mu);
    const char *name = w->segs[slot].name;
    pthread_mutex_unlock(&w->mu);
    if (storeless) {
        if ((rc = last ? hand_over_store(b, err) : drain_store(b, 0, err))) goto out;
    } else {
        /* STORE, begun with the segment, ends with its last block */
        if (sh_storew_finish(&b->store)) goto nomem;
        if ((rc = drain_store(b, 1, err))) goto out;
        sh_segw_end(sw);
    }

    keys = sh_reallocarray(NULL, SH_MAX(b->nterms, (size_t)b->ndocs), sizeof *keys);
    if (!keys) goto nomem;
    for (size_t i = 0; i < b->nterms; i++)
        keys[i] = sh_strkey_make(b->pool.p + b->terms[i].str_off, b->terms[i].len, (uint32_t)i);
    sh_strkeys_sort(keys, b->nterms);
    /* POSITIONS, whose length is known, is written in place as it is
     * encoded; POSTINGS streams on after it */
    if ((rc = sh_spill_reserve(&pspill, sw, SH_SEC_POSITIONS, b->pos_bytes, err))) goto out;
    for (int k = 1; k < 3; k++)
        if ((rc = sh_spill_open(spills[k], w->dir, name, k, err))) goto out;
    if ((rc = sh_segw_begin(sw, SH_SEC_POSTINGS, err))) goto out;

    const uint32_t *lent = (const uint32_t *)(const void *)b->lent.p;
    const uint32_t *lenb = (const uint32_t *)(const void *)b->lenb.p;
    const sh_lens blens = {lent, lenb, b->ndocs, b->sum_lent, b->sum_lenb};
    uint64_t post_total = 0;
    uint8_t trec[SH_TERMREC];
    for (size_t i = 0; i < b->nterms; i++) {
        /* keys visit the terms in string order, which is random in memory:
         * fetch entries 16 ahead, and their strings and first postings 8
         * ahead, or every term waits on three cache misses */
        if (i + 16 < b->nterms) __builtin_prefetch(&b->terms[keys[i + 16].idx]);
        if (i + 8 < b->nterms) {
            const term_ent *f = &b->terms[keys[i + 8].idx];
            __builtin_prefetch(b->pool.p + f->str_off);
            __builtin_prefetch(f->head);
        }
        term_ent *e = &b->terms[keys[i].idx];
        if (tspill.total + e->len > UINT32_MAX) {
            rc = sh_err(err, SAHEL_ETOOBIG, "segment too large: dictionary over 4 GiB");
            goto out;
        }
        sh_store_u64(trec, post_total + post.len);
        sh_store_u64(trec + 8, pspill.total + pos.len);
        sh_store_u32(trec + 16, (uint32_t)tspill.total);
        sh_store_u32(trec + 20, e->df);
        if ((rc = sh_spill_put(&ispill, trec, sizeof trec, err)) ||
            (rc = sh_spill_put(&tspill, b->pool.p + e->str_off, e->len, err)))
            goto out;
        rc = unpack_term(e, &joined, &to);
        if (rc == SAHEL_ENOMEM) goto nomem;
        if (rc) {
            rc = sh_err(err, SAHEL_EINVAL, "internal error: bad in-memory postings");
            goto out;
        }
        rc = sh_postings_encode_spans(to.docs, to.tft, to.tfb, to.span, to.span_len, to.n, &blens,
                                      &post, &pos);
        if (rc == SAHEL_ENOMEM) goto nomem;
        if (rc) {
            rc = sh_err(err, rc, "a term's postings exceed the format's limits");
            goto out;
        }
        if (post.len >= SH_SPILL_CHUNK) {
            if ((rc = sh_segw_append(sw, post.p, post.len, err))) goto out;
            post_total += post.len;
            post.len = 0;
        }
        if (pos.len >= SH_SPILL_CHUNK) {
            if ((rc = sh_spill_put(&pspill, pos.p, pos.len, err))) goto out;
            pos.len = 0;
        }
    }
    if ((rc = sh_segw_append(sw, post.p, post.len, err))) goto out;
    post_total += post.len;
    sh_segw_end(sw);
    if ((rc = sh_spill_put(&pspill, pos.p, pos.len, err))) goto out;
    sh_store_u64(trec, post_total);
    sh_store_u64(trec + 8, pspill.total);
    sh_store_u32(trec + 16, (uint32_t)tspill.total);
    sh_store_u32(trec + 20, 0);
    if ((rc = sh_spill_put(&ispill, trec, sizeof trec, err)) ||
        (rc = sh_spill_copy(&pspill, sw, SH_SEC_POSITIONS, err)) ||
        (rc = sh_spill_copy(&tspill, sw, SH_SEC_TERMS, err)) ||
        (rc = sh_spill_copy(&ispill, sw, SH_SEC_TERMIDX, err)))
        goto out;
    for (int k = 0; k < 3; k++) sh_spill_close(spills[k]);

    /* the per-document sections */
    idorder = sh_reallocarray(NULL, b->ndocs, sizeof *idorder);
    if (!idorder) goto nomem;
    for (uint32_t i = 0; i < b->ndocs; i++) {
        uint32_t x = sh_load_u32(b->id_offs.p + (size_t)i * 4);
        uint32_t y = sh_load_u32(b->id_offs.p + (size_t)i * 4 + 4);
        keys[i] = sh_strkey_make(b->ids.p + x, y - x, i);
    }
    sh_strkeys_sort(keys, b->ndocs);
    for (uint32_t i = 0; i < b->ndocs; i++) idorder[i] = keys[i].idx;
    joined.len = 0; /* reused: the postings are written */
    if (sh_doclens_encode(lent, lenb, b->ndocs, &joined)) goto nomem;
    if ((rc = sh_segw_section(sw, SH_SEC_DOCLENS, joined.p, joined.len, err))) goto out;
    if ((rc = sh_segw_begin(sw, SH_SEC_IDS, err)) ||
        (rc = sh_segw_append(sw, b->id_offs.p, b->id_offs.len, err)) ||
        (rc = sh_segw_append(sw, b->ids.p, b->ids.len, err)))
        goto out;
    sh_segw_end(sw);
    uint8_t meta[64] = {0};
    sh_store_u32(meta, b->ndocs);
    sh_store_u32(meta + 4, (uint32_t)b->nterms);
    sh_store_u64(meta + 8, b->sum_lent);
    sh_store_u64(meta + 16, b->sum_lenb);
    sh_store_u64(meta + 24, b->ntokens);
    memcpy(meta + 32, w->lang, SH_MIN(strlen(w->lang), (size_t)31));
    if ((rc = sh_segw_section(sw, SH_SEC_IDSORT, idorder, (size_t)b->ndocs * 4, err)) ||
        (rc = sh_segw_section(sw, SH_SEC_DOCHASH, b->hashes.p, b->hashes.len, err)) ||
        (rc = storeless ? sh_store_write_none(sw, b->ndocs, err)
                        : sh_segw_section(sw, SH_SEC_STOREIDX, b->store.index.p,
                                          b->store.index.len, err)) ||
        (rc = sh_segw_section(sw, SH_SEC_META, meta, sizeof meta, err)) ||
        (rc = sh_segw_finish(sw, err)))
        goto out;
    b->sw_open = 0;
    b->total_tokens += b->ntokens;
    pthread_mutex_lock(&w->mu);
    newseg *s = &w->segs[slot];
    s->ndocs = b->ndocs;
    s->nterms = b->nterms;
    s->gseq = (uint32_t *)(void *)b->gseq.p; /* the array moves to the segment's entry */
    s->gone = 0;
    s->unsynced = sw->no_sync;
    pthread_mutex_unlock(&w->mu);
    b->gseq = (sh_buf){0};
    reset_builder(b);
#ifdef SH_TRIM
    /* the term table and its arrays grow anew in every segment: without
     * this, what they freed stays in the thread's arena, and a long build
     * crept 5-10% over its budget (a 1 GB corpus, default budget) */
    malloc_trim(0);
#endif
    goto out;
nomem:
    rc = sh_err(err, SAHEL_ENOMEM, "out of memory writing segment %s", name);
out:
    if (rc && b->sw_open) {
        sh_segw_abort(sw);
        b->sw_open = 0;
    }
    for (int k = 0; k < 3; k++) sh_spill_close(spills[k]);
    sh_free(idorder);
    sh_free(keys);
    sh_buf_free(&post);
    sh_buf_free(&pos);
    sh_buf_free(&joined);
    term_out_free(&to);
    return rc;
}

/* ---- the builders' segments into one ------------------------------------ */

/* Merge segments[from..to) of this writer's builder outputs (slot numbers
 * in `slots`) into one, numbered by their stream order.  `last`: the
 * merge that leaves one segment, which takes a kept store. */
static int combine_group(sahel_writer *w, const size_t *slots, size_t n, int last,
                         sahel_error *err) {
    int rc = 0;
    uint64_t nstream = w->stream ? w->stream : 1;
    uint8_t *mark = sh_calloc((size_t)(nstream + 7) / 8, 1);
    uint32_t *rank = sh_malloc((size_t)nstream * sizeof *rank);
    sh_segment *segs = sh_calloc(n, sizeof *segs);
    sh_merge_src *src = sh_calloc(n, sizeof *src);
    uint32_t **maps = sh_calloc(n, sizeof *maps);
    uint32_t *gseq = NULL;
    if (!mark || !rank || !segs || !src || !maps) goto nomem;
    uint32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const newseg *s = &w->segs[slots[i]];
        for (uint32_t d = 0; d < s->ndocs; d++) sh_bit_set(mark, s->gseq[d]);
        total += s->ndocs;
    }
    gseq = sh_malloc((total ? total : 1) * sizeof *gseq);
    if (!gseq) goto nomem;
    uint32_t r = 0;
    for (uint32_t g = 0; g < (uint32_t)w->stream; g++)
        if (sh_bit_get(mark, g)) {
            gseq[r] = g;
            rank[g] = r++;
        }
    for (size_t i = 0; i < n && !rc; i++) {
        const newseg *s = &w->segs[slots[i]];
        if ((rc = sh_segment_open(w->dir, s->name, &segs[i], err))) break;
        sh_segment_release(&segs[i]); /* opening it checked it whole */
        maps[i] = sh_malloc((s->ndocs ? s->ndocs : 1) * sizeof *maps[i]);
        if (!maps[i]) goto nomem;
        for (uint32_t d = 0; d < s->ndocs; d++) maps[i][d] = rank[s->gseq[d]];
        src[i] = (sh_merge_src){&segs[i], maps[i]};
    }
    if (rc) goto out;
    /* what only made the maps goes before the merge, whose per-article
     * arrays then take its room (9 bytes an article: a 2 GB build on two
     * threads peaked in this merge, past its budget); a failed merge fails
     * the writer, so the sources' stream numbers are not needed again */
    sh_free(mark);
    sh_free(rank);
    mark = NULL;
    rank = NULL;
    for (size_t i = 0; i < n; i++) {
        newseg *s = &w->segs[slots[i]];
        sh_free(s->gseq);
        s->gseq = NULL;
    }
    size_t slot;
    sh_merge_out mo = {.storeless = w->keep_open};
    if (w->keep_open && last) {
        slot = w->keep_slot;
        mo.sw = &w->keep;
        mo.storeidx = w->keep_idx.p;
        mo.storeidx_len = w->keep_idx.len;
        /* the commit names it: what it holds goes to the disk now, the
         * rest as it is written, and it is fsynced as it is finished */
        sh_segw_will_sync(&w->keep);
        w->keep_open = 0; /* finished or aborted by the merge */
    } else if ((rc = new_segment_slot(w, &slot, err)))
        goto out;
    uint64_t nterms = 0;
    rc = sh_merge_write_out(w->dir, w->segs[slot].name, src, n, total, w->lang,
                            (unsigned)w->nthreads, mo.storeless ? &mo : NULL, &nterms, err);
    if (mo.sw) sh_buf_free(&w->keep_idx);
    if (rc) goto out;
    w->stats.ncombined += total;
    newseg *o = &w->segs[slot];
    o->ndocs = total;
    o->nterms = nterms;
    o->gseq = gseq;
    o->gone = 0;
    gseq = NULL;
    for (size_t i = 0; i < n; i++) {
        newseg *s = &w->segs[slots[i]];
        char path[4096];
        s->gone = 1;
        sh_free(s->gseq);
        s->gseq = NULL;
        /* never committed: nobody can have it open but us */
        if ((size_t)snprintf(path, sizeof path, "%s/%s", w->dir, s->name) < sizeof path) unlink(path);
    }
    goto out;
nomem:
    rc = sh_err(err, SAHEL_ENOMEM, "out of memory merging the new segments");
out:
    for (size_t i = 0; i < n; i++) {
        if (segs && segs[i].map) sh_segment_close(&segs[i]);
        if (maps) sh_free(maps[i]);
    }
    sh_free(mark);
    sh_free(rank);
    sh_free(segs);
    sh_free(src);
    sh_free(maps);
    sh_free(gseq);
    return rc;
}

/* The stream number of a new segment's first doc (an empty one sorts first). */
static uint32_t first_stream(const newseg *s) { return s->ndocs ? s->gseq[0] : 0; }

/* The segments the builders wrote become one, in stream order: the index
 * is then the same whatever the number of threads or flushes. */
typedef struct live_seg {
    uint32_t first; /* first_stream */
    size_t slot;
} live_seg;

static int cmp_live(const void *a, const void *b) {
    const live_seg *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int combine_new(sahel_writer *w, sahel_error *err) {
    /* every merge leaves fewer live segments than there were: room for
     * those live now is room for all later rounds */
    live_seg *ls = sh_malloc((w->nsegs ? w->nsegs : 1) * sizeof *ls);
    if (!ls) return sh_err(err, SAHEL_ENOMEM, "out of memory merging the new segments");
    int rc = 0;
    for (;;) {
        size_t live = 0;
        for (size_t i = 0; i < w->nsegs; i++)
            if (!w->segs[i].gone) ls[live++] = (live_seg){first_stream(&w->segs[i]), i};
        /* a kept store waits for the last merge, even of one segment */
        if (live <= 1 && !(w->keep_open && live == 1)) break;
        qsort(ls, live, sizeof *ls, cmp_live);
        /* at most SH_MERGE_FACTOR at a time: a merge maps a little of
         * every source at once, and the kernel maps file pages by the
         * folio, so many sources would add up in the resident set.  With
         * more, the first merge takes just enough that every later one
         * takes SH_MERGE_FACTOR (taking the first ten, 13 segments of a
         * 2 GB build wrote 23 segments' worth, not 17).  Each takes the
         * run of segments next to each other in stream order with the
         * fewest docs: a builder's segments hold consecutive ranges of
         * the stream, so on one thread every merge concatenates each
         * term's postings instead of interleaving them doc by doc (the
         * smallest segments wherever they lay made a 2 GB build merge
         * its first flush with its last, and then interleave every term) */
        size_t want = live <= SH_MERGE_FACTOR ? live : (live - 2) % (SH_MERGE_FACTOR - 1) + 2;
        uint64_t sum = 0, best = UINT64_MAX;
        size_t at = 0;
        for (size_t i = 0; i < live; i++) {
            sum += w->segs[ls[i].slot].ndocs;
            if (i >= want) sum -= w->segs[ls[i - want].slot].ndocs;
            if (i + 1 >= want && sum <= best) { /* the later of equals: the small last flush */
                best = sum;
                at = i + 1 - want;
            }
        }
        size_t slots[SH_MERGE_FACTOR];
        for (size_t i = 0; i < want; i++) slots[i] = ls[at + i].slot;
        if ((rc = combine_group(w, slots, want, want == live, err))) break;
    }
    sh_free(ls);
    return rc;
}

/* ---- commit ------------------------------------------------------------- */

static int idset_has(const idset *s, const char *id, size_t len) {
    if (!s->cap) return 0;
    size_t h = (size_t)XXH3_64bits(id, len) & (s->cap - 1);
    while (s->slots[h]) {
        size_t l2;
        const char *o = idset_get(s, s->slots[h] - 1, &l2);
        if (l2 == len && memcmp(o, id, len) == 0) return 1;
        h = (h + 1) & (s->cap - 1);
    }
    return 0;
}

/* Delete the articles a recorded source held that this update did not
 * see again (the file is gone, or they are gone from it). */
static int delete_unseen(sahel_writer *w, const sh_srcent *e, sahel_error *err) {
    const uint8_t *p = e->ids;
    for (uint32_t k = 0; k < e->nids; k++) {
        size_t len = sh_load_u16(p);
        const char *id = (const char *)p + 2;
        p += 2 + len;
        if (idset_has(&w->seen, id, len)) continue;
        size_t seg;
        uint32_t d;
        int rc = find_old(w, id, len, &seg, &d, err);
        if (rc < 0) return rc;
        if (rc && (rc = delete_old(w, seg, d, err))) return rc;
    }
    return 0;
}

static int under_a_root(const sahel_writer *w, const sh_srcent *e) {
    for (size_t i = 0; i < w->nroots; i++) {
        const struct root *r = &w->roots[i];
        const char *real = (const char *)w->srcpool.p + r->real_off;
        if (e->path_len >= r->real_len && memcmp(e->path, real, r->real_len) == 0 &&
            (e->path_len == r->real_len || e->path[r->real_len] == '/' ||
             (r->real_len == 1 && real[0] == '/')))
            return 1;
    }
    return 0;
}

/* The sources table of the new commit: recorded entries kept, then the
 * files read now; deletes what disappeared.  *out is a new array. */
static int settle_sources(sahel_writer *w, sh_srcent **out, size_t *nout, sahel_error *err) {
    *out = NULL;
    *nout = 0;
    sh_srcent *e = sh_calloc(w->oldsrc.n + w->nnewsrc + 1, sizeof *e);
    if (!e) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < w->oldsrc.n && !rc; i++) {
        const sh_srcent *o = &w->oldsrc.e[i];
        int st = w->oldstate[i];
        if (st == SRC_CARRIED || st == SRC_FAILED || (st == SRC_UNVISITED && !under_a_root(w, o)))
            e[n++] = *o;
        else
            rc = delete_unseen(w, o, err);
    }
    for (size_t i = 0; i < w->nnewsrc && !rc; i++) {
        const struct newsrc *s = &w->newsrc[i];
        e[n++] = (sh_srcent){(const char *)w->srcpool.p + s->path_off, (uint32_t)s->path_len,
                             s->nids, s->size, s->mtime_ns, s->ino,
                             w->srcpool.p + s->ids_off, s->ids_len};
    }
    if (rc) {
        sh_free(e);
        return rc;
    }
    *out = e;
    *nout = n;
    return 0;
}

/* A segment of the commit being prepared. */
typedef struct fseg {
    const char *name;
    uint32_t ndocs, ndeleted;
    uint64_t del_gen;      /* deletion bitmap in force (0: none) */
    const uint8_t *bits;   /* deletions to honour */
    int dirty;             /* deletions made now: write a bitmap */
    size_t old;            /* index in the snapshot, or SIZE_MAX */
} fseg;

static unsigned level_of(uint32_t live) {
    unsigned l = 0;
    while (live >= SH_MERGE_FACTOR) {
        live /= SH_MERGE_FACTOR;
        l++;
    }
    return l;
}
/* Merge the live articles of f[a..b) into one new segment, at the level
 * of postings (merge.c), and put it in their place. */
static int merge_run(sahel_writer *w, fseg **fp, size_t *nf, size_t a, size_t b, sahel_error *err) {
    fseg *f = *fp;
    int rc = 0;
    size_t n = b - a;
    sh_segment *tmp = sh_calloc(n, sizeof *tmp);
    sh_merge_src *src = sh_calloc(n, sizeof *src);
    uint32_t **maps = sh_calloc(n, sizeof *maps);
    const char *name = NULL;
    if (!tmp || !src || !maps) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    uint64_t kept = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const fseg *g = &f[a + i];
        if (g->old != SIZE_MAX) {
            src[i].seg = &w->ix->segs[g->old];
        } else {
            if ((rc = sh_segment_open(w->dir, g->name, &tmp[i], err))) break;
            sh_segment_release(&tmp[i]); /* opening it checked it whole */
            src[i].seg = &tmp[i];
        }
        uint32_t nd = src[i].seg->ndocs;
        maps[i] = sh_malloc((nd ? nd : 1) * sizeof *maps[i]);
        if (!maps[i]) {
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
            break;
        }
        for (uint32_t d = 0; d < nd; d++)
            maps[i][d] = sh_bit_get(g->bits, d) ? SH_NO_DOC : (uint32_t)kept++;
        src[i].newdoc = maps[i];
        if (kept >= UINT32_MAX) rc = sh_err(err, SAHEL_ETOOBIG, "too many documents to merge into one segment");
    }
    if (rc) goto out;
    uint64_t nterms = 0;
    size_t slot;
    if ((rc = new_segment_slot(w, &slot, err))) goto out;
    name = w->segs[slot].name;
    if ((rc = sh_merge_write(w->dir, name, src, n, (uint32_t)kept, w->lang, (unsigned)w->nthreads,
                             &nterms, err)))
        goto out;
    w->segs[slot].ndocs = (uint32_t)kept;
    w->segs[slot].nterms = nterms;
    w->segs[slot].gone = 0;
    w->stats.nmerged += n;
    memmove(f + a + 1, f + b, (*nf - b) * sizeof *f);
    f[a] = (fseg){name, (uint32_t)kept, 0, 0, NULL, 0, SIZE_MAX};
    *nf = *nf - n + 1;
out:
    for (size_t i = 0; i < n; i++) {
        if (tmp && tmp[i].map) sh_segment_close(&tmp[i]);
        if (maps) sh_free(maps[i]);
    }
    sh_free(tmp);
    sh_free(src);
    sh_free(maps);
    return rc;
}

static int apply_merge_policy(sahel_writer *w, fseg **fp, size_t *nf, sahel_error *err) {
    int rc;
    fseg *f = *fp;
    /* wholly deleted segments go without a rewrite */
    size_t k = 0;
    for (size_t i = 0; i < *nf; i++)
        if (f[i].ndeleted < f[i].ndocs) f[k++] = f[i];
        else w->stats.nmerged++;
    *nf = k;
    if (w->optimize) {
        int any_deleted = 0;
        for (size_t i = 0; i < *nf; i++) any_deleted |= f[i].ndeleted > 0;
        if (!any_deleted && *nf <= 1) return 0;
        /* a merge takes SH_MERGE_MAX_SOURCES at most: more are merged in
         * turns, the first sources first, so that order is kept */
        do {
            if ((rc = merge_run(w, fp, nf, 0, SH_MIN(*nf, (size_t)SH_MERGE_MAX_SOURCES), err)))
                return rc;
        } while (*nf > 1);
        return 0;
    }
    for (size_t i = 0; i < *nf; i++)
        if ((*fp)[i].ndeleted * 2 > (*fp)[i].ndocs && (rc = merge_run(w, fp, nf, i, i + 1, err)))
            return rc;
    f = *fp;
    for (int again = 1; again;) {
        again = 0;
        for (size_t i = 0; i < *nf;) {
            unsigned lv = level_of(f[i].ndocs - f[i].ndeleted);
            size_t j = i + 1;
            while (j < *nf && j - i < SH_MERGE_FACTOR && level_of(f[j].ndocs - f[j].ndeleted) == lv)
                j++;
            if (j - i >= SH_MERGE_FACTOR) {
                if ((rc = merge_run(w, fp, nf, i, j, err))) return rc;
                f = *fp;
                again = 1;
                break;
            }
            i = j;
        }
    }
    return 0;
}

static int is_ours(const char *name) {
    static const char *const pre[] = {"seg-", "sources-", SH_MANIFEST ".tmp"};
    static const char *const suf[] = {".sseg", ".sdel", ".ssrc"};
    size_t n = strlen(name);
    if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) n -= 4;
    for (size_t i = 0; i < 3; i++)
        if (strncmp(name, pre[i], strlen(pre[i])) == 0) {
            if (i == 2) return 1;
            for (size_t j = 0; j < 3; j++)
                if (n > 5 && memcmp(name + n - 5, suf[j], 5) == 0) return 1;
        }
    return 0;
}

/* After a commit: remove the index files the new manifest does not name
 * (those it replaced, merged or deleted, or left by an interrupted
 * writer).  Readers that mapped them keep their mappings. */
static void remove_unreferenced(const sahel_writer *w, const sh_manifest *m) {
    DIR *d = opendir(w->dir);
    if (!d) return;
    struct dirent *e;
    char keep[256], path[4096];
    if (m->sources_gen) snprintf(keep, sizeof keep, "sources-%06llu.ssrc",
                                 (unsigned long long)m->sources_gen);
    while ((e = readdir(d))) {
        if (!is_ours(e->d_name)) continue;
        int used = m->sources_gen && strcmp(e->d_name, keep) == 0;
        for (size_t i = 0; i < m->nsegs && !used; i++) {
            used = strcmp(e->d_name, m->segs[i].name) == 0;
            if (!used && m->segs[i].del_gen) {
                char del[256];
                sh_del_name(del, sizeof del, m->segs[i].name, m->segs[i].del_gen);
                used = strcmp(e->d_name, del) == 0;
            }
        }
        if (used) continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", w->dir, e->d_name) < sizeof path)
            unlink(path);
    }
    closedir(d);
}
int sahel_writer_commit(sahel_writer *w, sahel_error *err) {
    if (w->committed) return sh_err(err, SAHEL_EINVAL, "writer already committed");
    if (w->failed) return sh_err(err, SAHEL_EINVAL, "writer failed earlier; nothing committed");
    int rc;
    if (w->nthreads == 1) {
        /* a build whose one builder never flushed before: this segment
         * is the one the commit names, so it is synced as it is finished,
         * its stored articles (written as they came) going to the disk
         * while the rest is computed, not all at once after */
        if (!w->ix && w->nsegs == 1 && w->b[0].sw_open) sh_segw_will_sync(&w->b[0].sw);
        rc = flush_builder(&w->b[0], 1, err);
    } else {
        stop_builders(w);
        rc = async_error(w, err);
    }
    /* the builders are done: their memory goes back before the merge
     * runs, so that the two do not add up */
    for (size_t i = 0; i < w->nthreads; i++) builder_release(&w->b[i]);
    /* a build has no recorded sources to settle: the ids seen are done */
    if (!w->ix) idset_free(&w->seen);
    for (size_t i = 0; i < w->nfree; i++) batch_free(w->freeb[i]);
    w->nfree = 0;
#ifdef SH_TRIM
    malloc_trim(0);
#endif
    w->stats.nflushed = 0;
    for (size_t i = 0; i < w->nsegs; i++) w->stats.nflushed += !w->segs[i].gone;
    if (!rc) rc = combine_new(w, err);
    if (rc) {
        w->failed = 1;
        return rc;
    }
    w->stats.nterms = w->stats.ntokens = w->stats.nsegments = 0;
    for (size_t i = 0; i < w->nthreads; i++) w->stats.ntokens += w->b[i].total_tokens;
    for (size_t i = 0; i < w->nsegs; i++)
        if (!w->segs[i].gone) {
            w->stats.nterms += w->segs[i].nterms;
            w->stats.nsegments++;
        }
    sh_srcent *src = NULL;
    size_t nsrc = 0;
    fseg *f = NULL;
    sh_manifest m = {0};
    if ((rc = settle_sources(w, &src, &nsrc, err))) goto out;

    size_t nold = w->ix ? w->ix->nsegs : 0, nf = 0;
    f = sh_calloc(nold + w->nsegs + 1, sizeof *f);
    if (!f) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nold; i++) {
        const sh_segment *sg = &w->ix->segs[i];
        const sh_manifest_seg *ms = &w->ix->man.segs[i];
        f[nf++] = (fseg){ms->name, sg->ndocs, w->ndel[i], ms->del_gen,
                         w->bits[i] ? w->bits[i] : sg->deleted, w->bits[i] != NULL, i};
    }
    for (size_t i = 0; i < w->nsegs; i++)
        if (!w->segs[i].gone)
            f[nf++] = (fseg){w->segs[i].name, w->segs[i].ndocs, 0, 0, NULL, 0, SIZE_MAX};
    if ((rc = apply_merge_policy(w, &f, &nf, err))) goto out;

    m.generation = w->generation;
    snprintf(m.lang, sizeof m.lang, "%s", w->lang);
    m.segs = sh_calloc(nf ? nf : 1, sizeof *m.segs);
    if (!m.segs) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        if (f[i].dirty) {
            if ((rc = sh_del_write(w->dir, f[i].name, w->generation, f[i].bits, f[i].ndocs, err)))
                goto out;
            f[i].del_gen = w->generation;
        }
        m.segs[i] = (sh_manifest_seg){(char *)(uintptr_t)f[i].name, f[i].ndocs,
                                      f[i].ndeleted ? f[i].del_gen : 0, f[i].ndeleted};
    }
    m.nsegs = nf;
    if (nsrc) {
        if ((rc = sh_srctab_write(w->dir, w->generation, src, nsrc, err))) goto out;
        m.sources_gen = w->generation;
    }
    /* every file the manifest names is durable before the manifest is */
    for (size_t i = 0; i < w->nsegs; i++)
        if (!w->segs[i].gone && w->segs[i].unsynced) {
            if ((rc = sh_fsync_file(w->dir, w->segs[i].name, err))) goto out;
            w->segs[i].unsynced = 0;
        }
    int renamed = 0;
    if ((rc = sh_fsync_dir(w->dir, err)) || (rc = sh_manifest_write(w->dir, &m, &renamed, err))) {
        if (renamed) {
            /* the new manifest is in place and names the new files: they
             * must stay; only its durability is in doubt */
            w->committed = 1;
            w->stats.nlive_segments = nf;
            char why[SAHEL_ERROR_MSG_MAX];
            snprintf(why, sizeof why, "%s", err ? err->msg : "");
            sh_err(err, rc, "committed, but perhaps not durable yet: %s", why);
        }
        goto out;
    }
    w->committed = 1;
    w->stats.nlive_segments = nf;
    remove_unreferenced(w, &m);
out:
    if (rc && !w->committed) w->failed = 1;
    sh_free(m.segs);
    sh_free(f);
    sh_free(src);
    return rc;
}

void sahel_writer_get_stats(const sahel_writer *w, sahel_writer_stats *st) { *st = w->stats; }

void sahel_writer_close(sahel_writer *w) {
    if (!w) return;
    if (w->threads_running) {
        /* abandoned: the builders stop without writing what they hold */
        pthread_mutex_lock(&w->mu);
        w->abandon = 1;
        pthread_mutex_unlock(&w->mu);
        stop_builders(w);
    }
    if (!w->committed)
        for (size_t i = 0; i < w->nsegs; i++) {
            /* no allocation here: cleanup must work when memory has run out */
            char p[4096];
            if ((size_t)snprintf(p, sizeof p, "%s/%s", w->dir, w->segs[i].name) < sizeof p)
                unlink(p);
        }
    for (size_t i = 0; i < w->nsegs; i++) {
        sh_free(w->segs[i].name);
        sh_free(w->segs[i].gseq);
    }
    sh_free(w->segs);
    for (size_t i = 0; w->b && i < w->nthreads; i++) {
        builder_release(&w->b[i]);
    }
    sh_free(w->b);
    if (w->keep_open) sh_segw_abort(&w->keep);
    sh_buf_free(&w->keep_idx);
    for (size_t i = 0; i < w->nfree; i++) batch_free(w->freeb[i]);
    for (size_t i = 0; i < w->qlen; i++) batch_free(w->queue[(w->qhead + i) % w->qcap]);
    batch_free(w->cur);
    sh_free(w->freeb);
    sh_free(w->queue);
    idset_free(&w->seen);
    if (w->ix)
        for (size_t i = 0; i < w->ix->nsegs; i++) sh_free(w->bits[i]);
    sh_free(w->bits);
    sh_free(w->ndel);
    sahel_index_close(w->ix);
    sh_buf_free(&w->scratch);
    sh_srctab_free(&w->oldsrc);
    sh_free(w->oldstate);
    sh_free(w->newsrc);
    sh_buf_free(&w->srcpool);
    sh_free(w->roots);
    sh_lock_release(w->lock_fd);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_free);
    pthread_mutex_destroy(&w->mu);
    sh_free(w->dir);
    sh_free(w);
}
