/*
 * writer.c - sahel_writer: articles in, segment files and a manifest out.
 *
 * Indexing is in-memory inversion: each article is analysed (title, then
 * body), its tokens grouped by term, and each term's postings appended to
 * that term's own growing buffer as LEB128 varints:
 *     doc gap, tft, tfb, tft title positions (delta), tfb body positions (delta)
 * When the buffered data passes the memory budget, or at commit, the terms
 * are sorted and the buffers re-encoded into a segment file in the block
 * format of postings.c (segment.c has the file layout).  Nothing is visible
 * until commit writes the manifest naming the segments (manifest.c).
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
 * documents, so ties rank as before.  A merge re-indexes the live stored
 * articles (the analysis is deterministic, so the terms are the same).
 *
 * Invariants: term ids are dense indexes into `terms`; `table` is an open-
 * addressing hash table (power-of-two size, at most half full) of term
 * id + 1; doc ids are dense per segment; ids seen by this writer are kept
 * across segments so a duplicate is refused wherever it appears.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

#define DEFAULT_BUDGET ((size_t)256 << 20)
#define SH_LANG "english"
#define SH_MERGE_FACTOR 10

typedef struct term_ent {
    uint64_t hash;
    uint32_t str_off, len; /* into pool */
    uint32_t next_doc;     /* last doc + 1, for gaps */
    uint32_t df;
    sh_buf post;
    /* the article being inverted: its tokens of this term form a list
     * through doc_tok.next, in arrival order (title first, positions
     * ascending), so that no sort is needed */
    uint32_t cur;          /* doc + 1 the list belongs to */
    uint32_t head, tail, tft, tfb;
} term_ent;

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

struct sahel_writer {
    char *dir;
    int force, committed, failed;
    size_t budget;
    sh_analyzer *an;
    uint64_t generation;
    char lang[32];

    /* the segment being built */
    term_ent *terms;
    size_t nterms, cap_terms;
    uint32_t *table;
    size_t table_cap;
    sh_buf pool;
    size_t mem;
    uint32_t ndocs;
    sh_buf lent, lenb; /* u32 per doc */
    sh_buf ids, id_offs; /* id bytes; u32 offsets (ndocs + 1) */
    sh_buf hashes;       /* u64 per doc */
    uint64_t sum_lent, sum_lenb, ntokens;
    sh_storew store;

    /* per-article scratch */
    doc_tok *toks;
    size_t ntoks, cap_toks;
    uint32_t *dterms; /* distinct terms of the article, in order of appearance */
    size_t ndterms, cap_dterms;
    uint32_t cur_doc; /* doc number + 1 of the article being inverted */
    uint32_t memo_epoch; /* term ids memoized in the stem cache hold for this
                            epoch only: it changes whenever ids restart */
    uint32_t field;
    int tok_rc;

    idset seen;

    /* segments written, not yet committed */
    sh_manifest_seg *segs;
    size_t nsegs;
    uint32_t seg_counter; /* for unique names within the generation */
    sahel_writer_stats stats;
    int lock_fd;
    int optimize;
    int merge_stuck; /* a merge made no fewer segments: stop merging */

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

static void idset_free(idset *s) {
    sh_free(s->slots);
    sh_buf_free(&s->pool);
    sh_buf_free(&s->offs);
    memset(s, 0, sizeof *s);
}

/* ---- term table --------------------------------------------------------- */

static int table_grow(sahel_writer *w) {
    size_t cap = w->table_cap ? w->table_cap * 2 : 1u << 14;
    uint32_t *t = sh_calloc(cap, sizeof *t);
    if (!t) return SAHEL_ENOMEM;
    for (size_t i = 0; i < w->nterms; i++) {
        size_t h = (size_t)w->terms[i].hash & (cap - 1);
        while (t[h]) h = (h + 1) & (cap - 1);
        t[h] = (uint32_t)i + 1;
    }
    w->mem += (cap - w->table_cap) * sizeof *t;
    sh_free(w->table);
    w->table = t;
    w->table_cap = cap;
    return 0;
}

static int term_id(sahel_writer *w, const char *s, size_t len, uint32_t *out) {
    if ((w->nterms + 1) * 2 > w->table_cap && table_grow(w)) return SAHEL_ENOMEM;
    uint64_t hash = XXH3_64bits(s, len);
    size_t h = (size_t)hash & (w->table_cap - 1);
    while (w->table[h]) {
        term_ent *e = &w->terms[w->table[h] - 1];
        if (e->hash == hash && e->len == len && memcmp(w->pool.p + e->str_off, s, len) == 0) {
            *out = w->table[h] - 1;
            return 0;
        }
        h = (h + 1) & (w->table_cap - 1);
    }
    if (w->nterms == w->cap_terms) {
        size_t cap = w->cap_terms ? w->cap_terms * 2 : 4096;
        term_ent *t = sh_reallocarray(w->terms, cap, sizeof *t);
        if (!t) return SAHEL_ENOMEM;
        w->mem += (cap - w->cap_terms) * sizeof *t;
        w->terms = t;
        w->cap_terms = cap;
    }
    if (w->pool.len + len > UINT32_MAX) return SAHEL_ETOOBIG;
    size_t before = w->pool.cap;
    if (sh_buf_put(&w->pool, s, len)) return SAHEL_ENOMEM;
    w->mem += w->pool.cap - before;
    term_ent *e = &w->terms[w->nterms];
    memset(e, 0, sizeof *e);
    e->hash = hash;
    e->str_off = (uint32_t)(w->pool.len - len);
    e->len = (uint32_t)len;
    w->table[h] = (uint32_t)w->nterms + 1;
    *out = (uint32_t)w->nterms++;
    return 0;
}

static int on_token(void *ctx, const sh_token *tok) {
    sahel_writer *w = ctx;
    uint32_t id, epoch;
    /* the stem cache remembers this form's term id for the segment being
     * built (memo: u32 epoch, u32 id): no second hash lookup */
    if (tok->memo && (memcpy(&epoch, tok->memo, 4), epoch == w->memo_epoch)) {
        memcpy(&id, tok->memo + 4, 4);
    } else {
        int rc = term_id(w, tok->term, tok->term_len, &id);
        if (rc) return w->tok_rc = rc;
        if (tok->memo) {
            memcpy(tok->memo, &w->memo_epoch, 4);
            memcpy(tok->memo + 4, &id, 4);
        }
    }
    if (w->ntoks == w->cap_toks) {
        size_t cap = w->cap_toks ? w->cap_toks * 2 : 4096;
        doc_tok *t = sh_reallocarray(w->toks, cap, sizeof *t);
        if (!t) return w->tok_rc = SAHEL_ENOMEM;
        w->toks = t;
        w->cap_toks = cap;
    }
    if (w->ntoks >= UINT32_MAX) return w->tok_rc = SAHEL_ETOOBIG;
    uint32_t idx = (uint32_t)w->ntoks++;
    w->toks[idx] = (doc_tok){tok->pos, w->field, UINT32_MAX};
    term_ent *e = &w->terms[id];
    if (e->cur != w->cur_doc) {
        if (w->ndterms == w->cap_dterms) {
            size_t cap = w->cap_dterms ? w->cap_dterms * 2 : 1024;
            uint32_t *d = sh_reallocarray(w->dterms, cap, sizeof *d);
            if (!d) return w->tok_rc = SAHEL_ENOMEM;
            w->dterms = d;
            w->cap_dterms = cap;
        }
        w->dterms[w->ndterms++] = id;
        e->cur = w->cur_doc;
        e->head = idx;
        e->tft = e->tfb = 0;
    } else {
        w->toks[e->tail].next = idx;
    }
    e->tail = idx;
    if (w->field)
        e->tfb++;
    else
        e->tft++;
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

int sahel_writer_open(const char *dir, const sahel_writer_opts *opts, sahel_writer **out,
                      sahel_error *err) {
    *out = NULL;
    if (!dir || !*dir) return sh_err(err, SAHEL_EINVAL, "no index directory given");
    sahel_writer *w = sh_calloc(1, sizeof *w);
    if (!w) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc;
    w->lock_fd = -1;
    w->cur_new = w->cur_old = -1;
    w->memo_epoch = 1; /* a fresh memo is zero: never a valid epoch */
    w->force = opts && opts->force;
    w->update = opts && opts->update;
    w->budget = opts && opts->memory_budget ? opts->memory_budget : DEFAULT_BUDGET;
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
    if ((rc = sh_analyzer_new(w->lang, &w->an, err))) goto fail;
    *out = w;
    return 0;
fail:
    sahel_writer_close(w);
    return rc;
}

/* ---- add ---------------------------------------------------------------- */

static int flush_segment(sahel_writer *w, sahel_error *err);

static int append_u32(sh_buf *b, uint32_t v, size_t *mem) {
    size_t before = b->cap;
    int rc = sh_buf_put_u32(b, v);
    *mem += b->cap - before;
    return rc;
}

/* Invert one article into the segment being built. */
static int index_doc(sahel_writer *w, const sahel_doc *doc, sahel_error *err) {
    int rc;
    if (w->ndocs == UINT32_MAX - 1 && (rc = flush_segment(w, err))) return rc;
    uint32_t doc_no = w->ndocs;
    uint32_t lt = 0, lb = 0;
    w->ntoks = 0;
    w->ndterms = 0;
    w->tok_rc = 0;
    w->field = 0;
    w->cur_doc = doc_no + 1;
    rc = sh_analyze(w->an, doc->title ? doc->title : "", doc->title ? doc->title_len : 0, 0, 0,
                    on_token, w, &lt);
    if (!rc) {
        w->field = 1;
        rc = sh_analyze(w->an, doc->body ? doc->body : "", doc->body ? doc->body_len : 0, 0, 0,
                        on_token, w, &lb);
    }
    if (rc || w->tok_rc) goto nomem;
    for (size_t i = 0; i < w->ndterms; i++) {
        term_ent *e = &w->terms[w->dterms[i]];
        size_t before = e->post.cap;
        if (sh_buf_put_varint(&e->post, doc_no - e->next_doc) ||
            sh_buf_put_varint(&e->post, e->tft) || sh_buf_put_varint(&e->post, e->tfb))
            goto nomem;
        uint32_t last = 0, field = 0;
        for (uint32_t k = e->head; k != UINT32_MAX; k = w->toks[k].next) {
            if (k == e->head || w->toks[k].field != field) last = 0;
            field = w->toks[k].field;
            if (sh_buf_put_varint(&e->post, w->toks[k].pos - last)) goto nomem;
            last = w->toks[k].pos;
        }
        w->mem += e->post.cap - before;
        e->next_doc = doc_no + 1;
        e->df++;
    }
    uint64_t hash;
    size_t before = sh_storew_memory(&w->store);
    if (sh_storew_add(&w->store, doc, &hash)) goto nomem;
    w->mem += sh_storew_memory(&w->store) - before;
    if (w->id_offs.len == 0 && append_u32(&w->id_offs, 0, &w->mem)) goto nomem;
    before = w->ids.cap;
    if (sh_buf_put(&w->ids, doc->id, doc->id_len)) goto nomem;
    w->mem += w->ids.cap - before;
    if (w->ids.len > UINT32_MAX) {
        w->failed = 1;
        return sh_err(err, SAHEL_ETOOBIG, "too many id bytes in one segment");
    }
    before = w->hashes.cap;
    if (append_u32(&w->id_offs, (uint32_t)w->ids.len, &w->mem) ||
        append_u32(&w->lent, lt, &w->mem) || append_u32(&w->lenb, lb, &w->mem) ||
        sh_buf_put_u64(&w->hashes, hash))
        goto nomem;
    w->mem += w->hashes.cap - before;
    w->ndocs++;
    w->sum_lent += lt;
    w->sum_lenb += lb;
    w->ntokens += w->ntoks;
    w->stats.ntokens += w->ntoks;
    w->stats.bytes_in += doc->title_len + doc->body_len;
    if (w->mem >= w->budget) return flush_segment(w, err);
    return 0;
nomem:
    /* the term buffers may hold part of this article: the segment is lost */
    w->failed = 1;
    return sh_err(err, SAHEL_ENOMEM, "out of memory indexing article %.*s",
                  (int)SH_MIN(doc->id_len, 200), doc->id);
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
    if ((rc = index_doc(w, doc, err))) return rc;
    w->stats.ndocs++;
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

/* Sort keys: a view of the bytes and the index they belong to. */
typedef struct sort_key {
    const uint8_t *p;
    uint32_t len, idx;
} sort_key;

static int cmp_key(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    int c = memcmp(x->p, y->p, SH_MIN(x->len, y->len));
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static void reset_segment(sahel_writer *w) {
    w->memo_epoch++; /* term ids restart with the next segment */
    for (size_t i = 0; i < w->nterms; i++) sh_buf_free(&w->terms[i].post);
    sh_free(w->terms);
    w->terms = NULL;
    w->nterms = w->cap_terms = 0;
    sh_free(w->table);
    w->table = NULL;
    w->table_cap = 0;
    sh_buf_free(&w->pool);
    sh_buf_free(&w->lent);
    sh_buf_free(&w->lenb);
    sh_buf_free(&w->ids);
    sh_buf_free(&w->id_offs);
    sh_buf_free(&w->hashes);
    sh_storew_free(&w->store);
    w->ndocs = 0;
    w->sum_lent = w->sum_lenb = w->ntokens = 0;
    w->mem = 0;
}

/* Growable u32 scratch */
typedef struct u32v {
    uint32_t *v;
    size_t n, cap;
} u32v;

static int u32v_push(u32v *a, uint32_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        uint32_t *v = sh_reallocarray(a->v, cap, sizeof *v);
        if (!v) return SAHEL_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* Decode a term's in-memory postings back into arrays. */
static int unpack_term(const term_ent *e, u32v *docs, u32v *tft, u32v *tfb, u32v *pos) {
    docs->n = tft->n = tfb->n = pos->n = 0;
    const uint8_t *p = e->post.p, *end = e->post.p + e->post.len;
    uint32_t next = 0;
    while (p < end) {
        uint32_t gap, t, b;
        if (sh_varint_get32(&p, end, &gap) || sh_varint_get32(&p, end, &t) ||
            sh_varint_get32(&p, end, &b))
            return SAHEL_EINVAL;
        uint32_t d = next + gap;
        next = d + 1;
        if (u32v_push(docs, d) || u32v_push(tft, t) || u32v_push(tfb, b)) return SAHEL_ENOMEM;
        uint32_t runs[2] = {t, b};
        for (int r = 0; r < 2; r++) {
            uint32_t last = 0;
            for (uint32_t k = 0; k < runs[r]; k++) {
                uint32_t delta;
                if (sh_varint_get32(&p, end, &delta)) return SAHEL_EINVAL;
                last += delta;
                if (u32v_push(pos, last)) return SAHEL_ENOMEM;
            }
        }
    }
    return 0;
}

static int flush_segment(sahel_writer *w, sahel_error *err) {
    if (w->ndocs == 0) return 0;
    int rc = 0;
    uint32_t *order = NULL, *idorder = NULL;
    sort_key *keys = NULL;
    sh_buf terms = {0}, termidx = {0}, post = {0}, pos = {0}, meta = {0};
    u32v docs = {0}, tft = {0}, tfb = {0}, positions = {0};
    sh_segw sw;
    int sw_open = 0, reserved = 0;
    char name[64];
    snprintf(name, sizeof name, "seg-%06llu-%04zu.sseg", (unsigned long long)w->generation,
             w->nsegs);

    order = sh_reallocarray(NULL, w->nterms ? w->nterms : 1, sizeof *order);
    idorder = sh_reallocarray(NULL, w->ndocs, sizeof *idorder);
    keys = sh_reallocarray(NULL, SH_MAX(w->nterms, (size_t)w->ndocs), sizeof *keys);
    if (!order || !idorder || !keys) goto nomem;
    for (size_t i = 0; i < w->nterms; i++)
        keys[i] = (sort_key){w->pool.p + w->terms[i].str_off, w->terms[i].len, (uint32_t)i};
    qsort(keys, w->nterms, sizeof *keys, cmp_key);
    for (size_t i = 0; i < w->nterms; i++) order[i] = keys[i].idx;
    for (uint32_t i = 0; i < w->ndocs; i++) {
        uint32_t a = sh_load_u32(w->id_offs.p + (size_t)i * 4);
        uint32_t b = sh_load_u32(w->id_offs.p + (size_t)i * 4 + 4);
        keys[i] = (sort_key){w->ids.p + a, b - a, i};
    }
    qsort(keys, w->ndocs, sizeof *keys, cmp_key);
    for (uint32_t i = 0; i < w->ndocs; i++) idorder[i] = keys[i].idx;

    const uint32_t *lent = (const uint32_t *)(const void *)w->lent.p;
    const uint32_t *lenb = (const uint32_t *)(const void *)w->lenb.p;
    for (size_t i = 0; i < w->nterms; i++) {
        const term_ent *e = &w->terms[order[i]];
        if (post.len > UINT64_MAX / 2 || terms.len + e->len > UINT32_MAX) {
            rc = sh_err(err, SAHEL_ETOOBIG, "segment too large");
            goto out;
        }
        if (sh_buf_put_u64(&termidx, post.len) || sh_buf_put_u64(&termidx, pos.len) ||
            sh_buf_put_u32(&termidx, (uint32_t)terms.len) || sh_buf_put_u32(&termidx, e->df) ||
            sh_buf_put(&terms, w->pool.p + e->str_off, e->len))
            goto nomem;
        rc = unpack_term(e, &docs, &tft, &tfb, &positions);
        if (rc == SAHEL_ENOMEM) goto nomem;
        if (rc) {
            rc = sh_err(err, SAHEL_EINVAL, "internal error: bad in-memory postings");
            goto out;
        }
        rc = sh_postings_encode(docs.v, tft.v, tfb.v, positions.v, docs.n, lent, lenb, &post, &pos);
        if (rc == SAHEL_ENOMEM) goto nomem;
        if (rc) {
            rc = sh_err(err, rc, "a term's postings exceed the format's limits");
            goto out;
        }
    }
    if (sh_buf_put_u64(&termidx, post.len) || sh_buf_put_u64(&termidx, pos.len) ||
        sh_buf_put_u32(&termidx, (uint32_t)terms.len) || sh_buf_put_u32(&termidx, 0))
        goto nomem;
    if (sh_storew_finish(&w->store)) goto nomem;
    uint8_t lang[32] = {0};
    memcpy(lang, w->lang, SH_MIN(strlen(w->lang), sizeof lang - 1));
    if (sh_buf_put_u32(&meta, w->ndocs) || sh_buf_put_u32(&meta, (uint32_t)w->nterms) ||
        sh_buf_put_u64(&meta, w->sum_lent) || sh_buf_put_u64(&meta, w->sum_lenb) ||
        sh_buf_put_u64(&meta, w->ntokens) || sh_buf_put(&meta, lang, sizeof lang))
        goto nomem;

    /* the manifest entry is made before the file is put in place, so that
     * a file that exists is always one the writer knows about */
    sh_manifest_seg *segs = sh_reallocarray(w->segs, w->nsegs + 1, sizeof *segs);
    if (!segs) goto nomem;
    w->segs = segs;
    if (!(w->segs[w->nsegs].name = sh_strndup(name, strlen(name)))) goto nomem;
    reserved = 1;
    w->segs[w->nsegs].ndocs = w->ndocs;
    w->segs[w->nsegs].del_gen = 0;
    if ((rc = sh_segw_open(&sw, w->dir, name, err))) goto out;
    sw_open = 1;
    struct {
        uint32_t id;
        const void *p;
        size_t len;
    } secs[] = {
        {SH_SEC_META, meta.p, meta.len},
        {SH_SEC_TERMS, terms.p, terms.len},
        {SH_SEC_TERMIDX, termidx.p, termidx.len},
        {SH_SEC_POSTINGS, post.p, post.len},
        {SH_SEC_POSITIONS, pos.p, pos.len},
        {SH_SEC_DOCLENS, NULL, (size_t)w->ndocs * 8},
        {SH_SEC_IDS, NULL, 0},
        {SH_SEC_IDSORT, idorder, (size_t)w->ndocs * 4},
        {SH_SEC_DOCHASH, w->hashes.p, w->hashes.len},
        {SH_SEC_STORE, w->store.store.p, w->store.store.len},
        {SH_SEC_STOREIDX, w->store.index.p, w->store.index.len},
    };
    /* DOCLENS interleaves the two length arrays; IDS joins offsets and bytes */
    sh_buf lens = {0}, ids = {0};
    for (uint32_t d = 0; d < w->ndocs; d++)
        if (sh_buf_put_u32(&lens, lent[d]) || sh_buf_put_u32(&lens, lenb[d])) {
            sh_buf_free(&lens);
            goto nomem;
        }
    if (sh_buf_put(&ids, w->id_offs.p, w->id_offs.len) || sh_buf_put(&ids, w->ids.p, w->ids.len)) {
        sh_buf_free(&lens);
        sh_buf_free(&ids);
        goto nomem;
    }
    secs[5].p = lens.p;
    secs[6].p = ids.p;
    secs[6].len = ids.len;
    for (size_t i = 0; i < sizeof secs / sizeof secs[0] && !rc; i++)
        rc = sh_segw_section(&sw, secs[i].id, secs[i].p ? secs[i].p : "", secs[i].len, err);
    sh_buf_free(&lens);
    sh_buf_free(&ids);
    if (rc || (rc = sh_segw_finish(&sw, err))) goto out;
    sw_open = 0;
    reserved = 0;
    w->nsegs++;
    w->stats.nterms += w->nterms;
    w->stats.nsegments = w->nsegs;
    reset_segment(w);
    goto out;
nomem:
    rc = sh_err(err, SAHEL_ENOMEM, "out of memory writing segment %s", name);
out:
    if (sw_open) sh_segw_abort(&sw);
    if (reserved) sh_free(w->segs[w->nsegs].name);
    if (rc) w->failed = 1;
    sh_free(order);
    sh_free(idorder);
    sh_free(keys);
    sh_buf_free(&terms);
    sh_buf_free(&termidx);
    sh_buf_free(&post);
    sh_buf_free(&pos);
    sh_buf_free(&meta);
    sh_free(docs.v);
    sh_free(tft.v);
    sh_free(tfb.v);
    sh_free(positions.v);
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

/* Re-index the live articles of f[a..b) into new segments and put those
 * in their place. */
static int merge_run(sahel_writer *w, fseg **fp, size_t *nf, size_t a, size_t b, sahel_error *err) {
    fseg *f = *fp;
    int rc = 0;
    sh_buf block = {0};
    size_t first_new = w->nsegs;
    for (size_t i = a; i < b && !rc; i++) {
        sh_segment tmp, *sg;
        if (f[i].old != SIZE_MAX) {
            sg = &w->ix->segs[f[i].old];
        } else {
            if ((rc = sh_segment_open(w->dir, f[i].name, &tmp, err))) break;
            sg = &tmp;
        }
        uint32_t cached = UINT32_MAX;
        for (uint32_t d = 0; d < sg->ndocs && !rc; d++) {
            if (sh_bit_get(f[i].bits, d)) continue;
            sh_stored st;
            if ((rc = sh_store_get(sg, d, &block, &cached, &st, err))) break;
            sahel_doc doc = {
                st.f[SH_STORE_ID],    st.len[SH_STORE_ID],    st.f[SH_STORE_TITLE],
                st.len[SH_STORE_TITLE], st.f[SH_STORE_BODY],  st.len[SH_STORE_BODY],
                st.f[SH_STORE_DATE],  st.len[SH_STORE_DATE],  st.f[SH_STORE_SOURCE],
                st.len[SH_STORE_SOURCE], st.f[SH_STORE_URL],  st.len[SH_STORE_URL],
                st.f[SH_STORE_LANG],  st.len[SH_STORE_LANG],  st.f[SH_STORE_PATH],
                st.len[SH_STORE_PATH], st.line};
            rc = index_doc(w, &doc, err);
        }
        if (sg == &tmp) sh_segment_close(&tmp);
    }
    sh_buf_free(&block);
    if (!rc) rc = flush_segment(w, err);
    if (rc) return rc;
    size_t nnew = w->nsegs - first_new;
    w->stats.nmerged += b - a;
    if (nnew > b - a) { /* the memory budget cut the output in several */
        f = sh_reallocarray(f, *nf + nnew, sizeof *f);
        if (!f) return sh_err(err, SAHEL_ENOMEM, "out of memory");
        *fp = f;
    }
    memmove(f + a + nnew, f + b, (*nf - b) * sizeof *f);
    for (size_t k = 0; k < nnew; k++)
        f[a + k] = (fseg){w->segs[first_new + k].name, w->segs[first_new + k].ndocs, 0, 0, NULL,
                          0, SIZE_MAX};
    *nf = *nf - (b - a) + nnew;
    /* a memory budget smaller than the run cuts it into as many segments:
     * merging it again would never end */
    if (nnew >= b - a && b - a > 1) w->merge_stuck = 1;
    return 0;
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
        if (*nf > 1 || any_deleted) return merge_run(w, fp, nf, 0, *nf, err);
        return 0;
    }
    for (size_t i = 0; i < *nf; i++)
        if ((*fp)[i].ndeleted * 2 > (*fp)[i].ndocs && (rc = merge_run(w, fp, nf, i, i + 1, err)))
            return rc;
    f = *fp;
    for (int again = 1; again && !w->merge_stuck;) {
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
    int rc = flush_segment(w, err);
    if (rc) return rc;
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

void sahel_writer_get_stats(const sahel_writer *w, sahel_writer_stats *st) {
    *st = w->stats;
    st->nterms += w->nterms; /* the segment not yet flushed */
}

void sahel_writer_close(sahel_writer *w) {
    if (!w) return;
    if (!w->committed)
        for (size_t i = 0; i < w->nsegs; i++) {
            /* no allocation here: cleanup must work when memory has run out */
            char p[4096];
            if ((size_t)snprintf(p, sizeof p, "%s/%s", w->dir, w->segs[i].name) < sizeof p)
                unlink(p);
        }
    for (size_t i = 0; i < w->nsegs; i++) sh_free(w->segs[i].name);
    sh_free(w->segs);
    reset_segment(w);
    idset_free(&w->seen);
    sh_free(w->toks);
    sh_free(w->dterms);
    sh_analyzer_free(w->an);
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
    sh_free(w->dir);
    sh_free(w);
}
