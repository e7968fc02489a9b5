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
 * Invariants: term ids are dense indexes into `terms`; `table` is an open-
 * addressing hash table (power-of-two size, at most half full) of term
 * id + 1; doc ids are dense per segment; ids seen by this writer are kept
 * across segments so a duplicate is refused wherever it appears.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

#define DEFAULT_BUDGET ((size_t)256 << 20)
#define SH_LANG "english"

typedef struct term_ent {
    uint64_t hash;
    uint32_t str_off, len; /* into pool */
    uint32_t next_doc;     /* last doc + 1, for gaps */
    uint32_t df;
    sh_buf post;
} term_ent;

typedef struct doc_tok {
    uint32_t term;
    uint32_t seq; /* arrival order: title tokens first, positions ascending */
    uint32_t pos;
    uint32_t field; /* 0 title, 1 body */
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
    uint32_t field;
    int tok_rc;

    idset seen;

    /* segments written, not yet committed */
    sh_manifest_seg *segs;
    size_t nsegs;
    sahel_writer_stats stats;
};

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
    uint32_t id;
    int rc = term_id(w, tok->term, tok->term_len, &id);
    if (rc) return w->tok_rc = rc;
    if (w->ntoks == w->cap_toks) {
        size_t cap = w->cap_toks ? w->cap_toks * 2 : 4096;
        doc_tok *t = sh_reallocarray(w->toks, cap, sizeof *t);
        if (!t) return w->tok_rc = SAHEL_ENOMEM;
        w->toks = t;
        w->cap_toks = cap;
    }
    w->toks[w->ntoks] = (doc_tok){id, (uint32_t)w->ntoks, tok->pos, w->field};
    w->ntoks++;
    return 0;
}

static int cmp_tok(const void *a, const void *b) {
    const doc_tok *x = a, *y = b;
    if (x->term != y->term) return x->term < y->term ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- open --------------------------------------------------------------- */

static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

int sahel_writer_open(const char *dir, const sahel_writer_opts *opts, sahel_writer **out,
                      sahel_error *err) {
    *out = NULL;
    if (!dir || !*dir) return sh_err(err, SAHEL_EINVAL, "no index directory given");
    sahel_writer *w = sh_calloc(1, sizeof *w);
    if (!w) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc;
    w->force = opts && opts->force;
    w->budget = opts && opts->memory_budget ? opts->memory_budget : DEFAULT_BUDGET;
    w->dir = sh_strndup(dir, strlen(dir));
    if (!w->dir) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(w->lang, sizeof w->lang, "%s", SH_LANG);
    w->generation = 1;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            rc = sh_err(err, SAHEL_EINVAL, "%s exists and is not a directory", dir);
            goto fail;
        }
        sh_manifest old;
        sahel_error e2 = {0};
        int mrc = sh_manifest_read(dir, &old, &e2);
        if (mrc == 0) {
            w->generation = old.generation + 1;
            sh_manifest_free(&old);
            if (!w->force) {
                rc = sh_err(err, SAHEL_EEXIST, "an index already exists in %s", dir);
                goto fail;
            }
        } else if (mrc == SAHEL_ENOTINDEX && !dir_is_empty(dir)) {
            rc = sh_err(err, SAHEL_EINVAL,
                        "%s is not empty and holds no index: refusing to write into it", dir);
            goto fail;
        } else if (mrc == SAHEL_ENOMEM || mrc == SAHEL_EIO) {
            rc = sh_err(err, mrc, "%s", e2.msg);
            goto fail;
        } else if (mrc != SAHEL_ENOTINDEX && !w->force) {
            rc = sh_err(err, SAHEL_EEXIST, "%s holds a damaged index (%s)", dir, e2.msg);
            goto fail;
        }
    } else if (mkdir(dir, 0755) != 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "cannot create index directory %s", dir);
        goto fail;
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

int sahel_writer_add(sahel_writer *w, const sahel_doc *doc, sahel_error *err) {
    if (w->committed || w->failed)
        return sh_err(err, SAHEL_EINVAL, "writer is %s", w->committed ? "committed" : "failed");
    if (!doc->id || doc->id_len == 0) return sh_err(err, SAHEL_EINVAL, "article has no id");
    if (doc->id_len > 4096) return sh_err(err, SAHEL_ETOOBIG, "article id longer than 4096 bytes");
    if (doc->title_len > UINT32_MAX / 2 || doc->body_len > UINT32_MAX / 2)
        return sh_err(err, SAHEL_ETOOBIG, "article %.*s is larger than 2 GiB", (int)SH_MIN(doc->id_len, 64), doc->id);
    int rc;
    if (w->ndocs == UINT32_MAX - 1 && (rc = flush_segment(w, err))) return rc;
    rc = idset_add(&w->seen, doc->id, doc->id_len);
    if (rc < 0) return sh_err(err, rc, "out of memory");
    if (rc == 0)
        return sh_err(err, SAHEL_EDUPLICATE, "duplicate id %.*s", (int)SH_MIN(doc->id_len, 200),
                      doc->id);

    uint32_t doc_no = w->ndocs;
    uint32_t lt = 0, lb = 0;
    w->ntoks = 0;
    w->tok_rc = 0;
    w->field = 0;
    rc = sh_analyze(w->an, doc->title ? doc->title : "", doc->title ? doc->title_len : 0, 0, 0,
                    on_token, w, &lt);
    if (!rc) {
        w->field = 1;
        rc = sh_analyze(w->an, doc->body ? doc->body : "", doc->body ? doc->body_len : 0, 0, 0,
                        on_token, w, &lb);
    }
    if (rc || w->tok_rc) goto nomem;
    if (w->ntoks) qsort(w->toks, w->ntoks, sizeof *w->toks, cmp_tok);
    for (size_t i = 0; i < w->ntoks;) {
        size_t j = i;
        uint32_t tft = 0, tfb = 0;
        while (j < w->ntoks && w->toks[j].term == w->toks[i].term) {
            if (w->toks[j].field)
                tfb++;
            else
                tft++;
            j++;
        }
        term_ent *e = &w->terms[w->toks[i].term];
        size_t before = e->post.cap;
        if (sh_buf_put_varint(&e->post, doc_no - e->next_doc) || sh_buf_put_varint(&e->post, tft) ||
            sh_buf_put_varint(&e->post, tfb))
            goto nomem;
        uint32_t last = 0, field = 0;
        for (size_t k = i; k < j; k++) {
            if (k == i || w->toks[k].field != field) last = 0;
            field = w->toks[k].field;
            if (sh_buf_put_varint(&e->post, w->toks[k].pos - last)) goto nomem;
            last = w->toks[k].pos;
        }
        w->mem += e->post.cap - before;
        e->next_doc = doc_no + 1;
        e->df++;
        i = j;
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
    w->stats.ndocs++;
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

static int referenced(const sahel_writer *w, const char *name) {
    for (size_t i = 0; i < w->nsegs; i++)
        if (strcmp(w->segs[i].name, name) == 0) return 1;
    return 0;
}

static int is_ours(const char *name) {
    size_t n = strlen(name);
    return strncmp(name, "seg-", 4) == 0 &&
           ((n > 5 && strcmp(name + n - 5, ".sseg") == 0) ||
            (n > 9 && strcmp(name + n - 9, ".sseg.tmp") == 0));
}

/* After a commit: remove segment files the new manifest does not name
 * (those of the index it replaced, or left by an interrupted build). */
static void remove_unreferenced(const sahel_writer *w) {
    DIR *d = opendir(w->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_ours(e->d_name) || referenced(w, e->d_name)) continue;
        char *p = sh_path_join(w->dir, e->d_name);
        if (p) unlink(p);
        sh_free(p);
    }
    closedir(d);
}

int sahel_writer_commit(sahel_writer *w, sahel_error *err) {
    if (w->committed) return sh_err(err, SAHEL_EINVAL, "writer already committed");
    if (w->failed) return sh_err(err, SAHEL_EINVAL, "writer failed earlier; nothing committed");
    int rc = flush_segment(w, err);
    if (rc) return rc;
    sh_manifest m = {0};
    m.generation = w->generation;
    snprintf(m.lang, sizeof m.lang, "%s", w->lang);
    m.segs = w->segs;
    m.nsegs = w->nsegs;
    if ((rc = sh_manifest_write(w->dir, &m, err))) {
        w->failed = 1;
        return rc;
    }
    w->committed = 1;
    remove_unreferenced(w);
    return 0;
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
    sh_analyzer_free(w->an);
    sh_free(w->dir);
    sh_free(w);
}
