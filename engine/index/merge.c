/*
 * merge.c - several segments into one, at the level of postings.
 *
 * A merge reads the source segments through their cursors and writes a
 * new segment whose documents are the kept documents of the sources,
 * renumbered by a map the caller gives (sh_merge_src.newdoc): a document
 * mapped to SH_NO_DOC is dropped (deleted), the others take the numbers
 * 0..ndocs-1, each exactly once, and ascending within each source.  Two
 * callers: the commit's merge policy (sources in order, deleted documents
 * dropped: a concatenation) and a build on several threads (each thread's
 * segments hold interleaved runs of the article stream: the map restores
 * the order in which articles arrived).
 *
 * Nothing is re-analysed: terms are merged in dictionary order, each
 * term's doc ids and frequencies are decoded, renumbered, interleaved and
 * encoded again with postings.c, and each doc's positions are copied as
 * they are encoded (a doc's run does not depend on its number; its extent
 * is checked), so the output is exactly the segment a single writer
 * would have built from the same articles in the same order (the document
 * store aside: its blocks may be cut differently).  Stored records are
 * copied: a whole compressed block when its documents are all kept and
 * stay consecutive, else record by record into new blocks.
 *
 * Memory stays small whatever the size of the output: the postings
 * section is written to the file as it grows, and the other per-term
 * streams (positions, dictionary, term index) go through temporary files
 * in the index directory (unlinked at once) and are copied in at the end.
 * Positions are not, when one part merges and every doc is kept (a
 * build's flushes): their section is then exactly as long as the
 * sources', so its room is reserved ahead of POSTINGS and they are
 * written there as they come, once.  A one-thread build's store is
 * written once too (sh_merge_out): its flushes hold none, and the last
 * merge goes on in the file that holds it.
 * What is held is per-document (lengths, ids, hashes: tens of bytes per
 * article) and one term's doc entries at a time (its positions stay in
 * the sources' maps until they are copied).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zstd.h>

#include "index.h"

#define SPILL_CHUNK SH_SPILL_CHUNK

/* The sources' pages read so far leave the resident set every this many
 * bytes of output: each release walks the page tables of every source's
 * whole map (a 1 GB merge made 12,000 such calls at 256-512 KB, 3,850 at
 * 1 MiB); at 4 MiB a build at the least budget, 16 MiB, peaked at 19 MB
 * instead of 14. */
#define RELEASE_EVERY ((uint64_t)1 << 20)

/* ---- the merge ---------------------------------------------------------- */

typedef struct term_run {
    uint32_t first, count; /* entries of one source for the current term */
} term_run;

/* What every part reads: the sources and the per-output-doc arrays. */
typedef struct merger {
    const sh_merge_src *src;
    size_t nsrc;
    uint32_t ndocs;
    sahel_error *err;
    /* per output doc */
    uint32_t *lent, *lenb;
    uint32_t *src_of, *loc_of;
    /* per source: its docs are numbered base + d, all kept (the usual case
     * when a build combines its flushes), or not (SH_NO_DOC: read the
     * map).  A posting's new number then costs no load: the map is 4
     * bytes a doc read at random, a cache miss a posting on a big merge */
    uint32_t base[SH_MERGE_MAX_SOURCES];
    /* the lengths with their sums, the ones META will record: the block
     * impacts are taken at the merged segment's averages */
    sh_lens lens;
    /* parts in flight; a term needing over sh_merge_big_term bytes is
     * merged by one part at a time (big_busy), so that parts add up to
     * what one merge holds plus small terms */
    size_t nparts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int big_busy;
} merger;

/* What merging a term holds, estimated from its sources: its entries
 * (48 bytes a doc, gathered and interleaved) and its encoded output;
 * tests lower the threshold to see parts take turns. */
uint64_t sh_merge_big_term = (uint64_t)8 << 20;

/* A range of the dictionary, merged on a thread of its own: its streams
 * go to spills (the first part's postings straight to the file), with
 * offsets from the start of the part. */
typedef struct part {
    const merger *m;
    sahel_error err;
    int rc;
    /* the current term, gathered from its sources: per entry its doc, tfs
     * and the bytes of its positions (in the source's map) */
    uint32_t *docs, *tft, *tfb, *spanl;
    const uint8_t **spanp;
    size_t nent, capent;
    uint64_t npos; /* positions of the term */
    /* the same, put in output order */
    uint32_t *odocs, *otft, *otfb, *ospanl;
    const uint8_t **ospanp;
    term_run *runs;
    /* dictionary walk: per source its next term and the end of the range */
    uint32_t *next_term, *end_term;
    uint32_t *heap; /* source indexes, by their next term */
    size_t nheap;
    /* output */
    sh_segw *sw; /* the first part: POSTINGS is begun, written as it grows */
    sh_spill post, pos, terms, termidx;
    uint64_t post_total; /* postings bytes written */
    uint64_t nterms, ntokens;
    pthread_t thread;
    int started;
    uint64_t term_cost; /* of the term being gathered (sh_merge_big_term) */
    int holds_big;
} part;

static int grow_entries(part *m, size_t need) {
    if (need <= m->capent) return 0;
    size_t c = m->capent ? m->capent : 1024;
    while (c < need) c *= 2;
    uint32_t **arrs[] = {&m->docs, &m->tft, &m->tfb, &m->spanl, &m->odocs, &m->otft, &m->otfb,
                         &m->ospanl};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        uint32_t *n = sh_reallocarray(*arrs[i], c, sizeof *n);
        if (!n) return SAHEL_ENOMEM;
        *arrs[i] = n;
    }
    const uint8_t ***sp[] = {&m->spanp, &m->ospanp};
    for (size_t i = 0; i < 2; i++) {
        const uint8_t **n = sh_reallocarray((void *)*sp[i], c, sizeof *n);
        if (!n) return SAHEL_ENOMEM;
        *sp[i] = n;
    }
    m->capent = c;
    return 0;
}

static void entries_free(part *m) {
    uint32_t **arrs[] = {&m->docs, &m->tft, &m->tfb, &m->spanl, &m->odocs, &m->otft, &m->otfb,
                         &m->ospanl};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        sh_free(*arrs[i]);
        *arrs[i] = NULL;
    }
    sh_free((void *)m->spanp);
    sh_free((void *)m->ospanp);
    m->spanp = m->ospanp = NULL;
    m->capent = 0;
}

/* The term source s is at. */
static int term_at(part *p, size_t s, const char **t, size_t *len) {
    const sh_segment *sg = p->m->src[s].seg;
    return sh_segment_term(sg, p->next_term[s], t, len, NULL, &p->err);
}

static int cmp_terms(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, SH_MIN(al, bl));
    return c ? c : (al < bl ? -1 : al > bl);
}

/* heap order: by next term, then by source index (so that equal terms
 * come out in source order) */
static int heap_less(part *m, uint32_t a, uint32_t b) {
    const char *ta, *tb;
    size_t la, lb;
    term_at(m, a, &ta, &la); /* both checked when they entered the heap */
    term_at(m, b, &tb, &lb);
    int c = cmp_terms(ta, la, tb, lb);
    return c ? c < 0 : a < b;
}

static void heap_down(part *m, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < m->nheap && heap_less(m, m->heap[l], m->heap[s])) s = l;
        if (r < m->nheap && heap_less(m, m->heap[r], m->heap[s])) s = r;
        if (s == i) return;
        uint32_t t = m->heap[i];
        m->heap[i] = m->heap[s];
        m->heap[s] = t;
        i = s;
    }
}

static void heap_up(part *m, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(m, m->heap[i], m->heap[p])) return;
        uint32_t t = m->heap[i];
        m->heap[i] = m->heap[p];
        m->heap[p] = t;
        i = p;
    }
}

/* Put source s in the heap if it has a term left in the range (its
 * bytes checked). */
static int heap_push(part *m, uint32_t s) {
    if (m->next_term[s] >= m->end_term[s]) return 0;
    const char *t;
    size_t len;
    int rc = term_at(m, s, &t, &len);
    if (rc) return rc;
    m->heap[m->nheap++] = s;
    heap_up(m, m->nheap - 1);
    return 0;
}

static void big_release(part *p) {
    merger *m = (merger *)(uintptr_t)p->m;
    if (!p->holds_big) return;
    pthread_mutex_lock(&m->mu);
    m->big_busy = 0;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    p->holds_big = 0;
}

/* The term being gathered has grown big: wait for the right to hold it.
 * A part holds the right for one term at most, and never waits while it
 * holds it: no deadlock. */
static void big_acquire(part *p) {
    merger *m = (merger *)(uintptr_t)p->m;
    if (p->holds_big || m->nparts < 2) return;
    pthread_mutex_lock(&m->mu);
    while (m->big_busy) pthread_cond_wait(&m->cv, &m->mu);
    m->big_busy = 1;
    pthread_mutex_unlock(&m->mu);
    p->holds_big = 1;
}

/* The kept postings of source s for its current term, appended to the
 * gathered entries. */
static int gather(part *m, uint32_t s, term_run *run) {
    const sh_segment *sg = m->m->src[s].seg;
    const uint32_t *newdoc = m->m->src[s].newdoc;
    uint32_t base = m->m->base[s];
    sh_terminfo ti;
    int rc = sh_segment_term(sg, m->next_term[s], NULL, NULL, &ti, &m->err);
    if (rc) return rc;
    m->term_cost += (uint64_t)ti.df * 48 + ti.post_len + ti.pos_len;
    if (m->term_cost > sh_merge_big_term) big_acquire(m);
    sh_postings pc;
    if ((rc = sh_postings_init(&pc, sg, &ti, &m->err))) return rc;
    /* room for all of them at once (df counts the deleted too) */
    if (grow_entries(m, m->nent + ti.df))
        return sh_err(&m->err, SAHEL_ENOMEM, "out of memory merging segments");
    run->first = (uint32_t)m->nent;
    while (!(rc = sh_postings_next(&pc)) && pc.doc != SH_NO_DOC) {
        uint32_t nd = base != SH_NO_DOC ? base + pc.doc : newdoc[pc.doc];
        if (nd == SH_NO_DOC) continue;
        uint32_t t = sh_postings_tft(&pc), b = sh_postings_tfb(&pc);
        const uint8_t *sp;
        size_t sl;
        if ((rc = sh_postings_position_span(&pc, &sp, &sl))) return rc;
        if (SH_UNLIKELY(m->nent >= m->capent)) /* the cursor stops at df: cannot happen */
            return sh_err(&m->err, SAHEL_ECORRUPT, "%s: damaged postings (more than df)",
                          sg->path);
        m->docs[m->nent] = nd;
        m->tft[m->nent] = t;
        m->tfb[m->nent] = b;
        m->spanp[m->nent] = sp;
        m->spanl[m->nent] = (uint32_t)sl; /* inside the term's positions: under 4 GiB */
        m->nent++;
        m->npos += (uint64_t)t + b;
    }
    run->count = (uint32_t)m->nent - run->first;
    return rc;
}

/* Put the gathered runs in output order (they are each ascending). */
static int interleave(part *m, size_t nruns, const uint32_t **docs, const uint32_t **tft,
                      const uint32_t **tfb, const uint8_t *const **spanp, const uint32_t **spanl) {
    int ordered = 1;
    uint32_t last = 0;
    int any = 0;
    for (size_t r = 0; r < nruns && ordered; r++) {
        if (!m->runs[r].count) continue;
        if (any && m->docs[m->runs[r].first] <= last) ordered = 0;
        last = m->docs[m->runs[r].first + m->runs[r].count - 1];
        any = 1;
    }
    if (ordered) { /* concatenation: the gathered arrays are the output */
        *docs = m->docs;
        *tft = m->tft;
        *tfb = m->tfb;
        *spanp = m->spanp;
        *spanl = m->spanl;
        return 0;
    }
    /* a run at a time: the run with the least head goes on while its docs
     * are below every other head (a builder's docs come in batches, so
     * runs are long, and the heads are compared once a run, not once a
     * doc) */
    uint32_t at[SH_MERGE_MAX_SOURCES];
    for (size_t r = 0; r < nruns; r++) at[r] = 0;
    for (size_t o = 0; o < m->nent;) {
        size_t best = SIZE_MAX;
        uint32_t bd = UINT32_MAX, next = UINT32_MAX; /* the least head, the one after it */
        for (size_t r = 0; r < nruns; r++) {
            if (at[r] >= m->runs[r].count) continue;
            uint32_t h = m->docs[m->runs[r].first + at[r]];
            if (h < bd) {
                next = bd;
                bd = h;
                best = r;
            } else if (h < next) {
                next = h;
            }
        }
        if (best == SIZE_MAX) break; /* cannot happen: counts add up to nent */
        if (o && bd <= m->odocs[o - 1])
            return sh_err(&m->err, SAHEL_EINVAL, "internal error: merge map is not one to one");
        size_t e = m->runs[best].first + at[best];
        size_t end = m->runs[best].first + m->runs[best].count;
        do { /* the first always: an equal head is caught as a repeat next */
            m->odocs[o] = m->docs[e];
            m->otft[o] = m->tft[e];
            m->otfb[o] = m->tfb[e];
            m->ospanp[o] = m->spanp[e];
            m->ospanl[o] = m->spanl[e];
            o++;
            e++;
        } while (e < end && m->docs[e] < next);
        at[best] = (uint32_t)(e - m->runs[best].first);
    }
    *docs = m->odocs;
    *tft = m->otft;
    *tfb = m->otfb;
    *spanp = m->ospanp;
    *spanl = m->ospanl;
    return 0;
}

/* The terms of part p, in dictionary order, to its streams. */
static int merge_terms(part *p) {
    const merger *m = p->m;
    sh_buf post = {0}, pbuf = {0};
    uint64_t released = 0;
    int rc = 0;
    for (uint32_t s = 0; s < m->nsrc; s++)
        if ((rc = heap_push(p, s))) goto out;
    uint8_t trec[SH_TERMREC];
    while (p->nheap) {
        big_release(p); /* the last term's, if it was big */
        p->term_cost = 0;
        const char *t;
        size_t tlen;
        term_at(p, p->heap[0], &t, &tlen);
        size_t nruns = 0;
        p->nent = 0;
        p->npos = 0;
        /* every source holding this term, in source order */
        while (p->nheap) {
            uint32_t s = p->heap[0];
            const char *t2;
            size_t l2;
            term_at(p, s, &t2, &l2);
            if (cmp_terms(t, tlen, t2, l2) != 0) break;
            if ((rc = gather(p, s, &p->runs[nruns++]))) goto out;
            p->heap[0] = p->heap[--p->nheap];
            heap_down(p, 0);
            p->next_term[s]++;
            /* t points into a source's map: it stays valid */
            if ((rc = heap_push(p, s))) goto out;
        }
        if (p->nent == 0) continue; /* every holder deleted */
        const uint32_t *d = NULL, *tf1 = NULL, *tf2 = NULL, *sl = NULL;
        const uint8_t *const *sp = NULL;
        if ((rc = interleave(p, nruns, &d, &tf1, &tf2, &sp, &sl))) goto out;
        if (p->terms.total + tlen > UINT32_MAX) {
            rc = sh_err(&p->err, SAHEL_ETOOBIG, "segment too large: dictionary over 4 GiB");
            goto out;
        }
        sh_store_u64(trec, p->post_total + post.len);
        sh_store_u64(trec + 8, p->pos.total + pbuf.len);
        sh_store_u32(trec + 16, (uint32_t)p->terms.total);
        sh_store_u32(trec + 20, (uint32_t)p->nent);
        if ((rc = sh_spill_put(&p->termidx, trec, sizeof trec, &p->err)) ||
            (rc = sh_spill_put(&p->terms, t, tlen, &p->err)))
            goto out;
        rc = sh_postings_encode_spans(d, tf1, tf2, sp, sl, p->nent, &m->lens, &post, &pbuf);
        if (rc == SAHEL_ENOMEM) {
            rc = sh_err(&p->err, rc, "out of memory merging segments");
            goto out;
        }
        if (rc) {
            rc = sh_err(&p->err, rc, "a term's postings exceed the format's limits");
            goto out;
        }
        p->nterms++;
        p->ntokens += p->npos;
        if (post.len >= SPILL_CHUNK) {
            rc = p->sw ? sh_segw_append(p->sw, post.p, post.len, &p->err)
                       : sh_spill_put(&p->post, post.p, post.len, &p->err);
            if (rc) goto out;
            p->post_total += post.len;
            post.len = 0;
        }
        if (pbuf.len >= SPILL_CHUNK) {
            if ((rc = sh_spill_put(&p->pos, pbuf.p, pbuf.len, &p->err))) goto out;
            pbuf.len = 0;
        }
        /* the sources are read front to back, about as many bytes as are
         * written: what was read leaves the resident set (it stays in the
         * page cache) every few megabytes */
        uint64_t written = p->post_total + post.len + p->pos.total + pbuf.len;
        if (written - released >= RELEASE_EVERY) {
            for (size_t i = 0; i < m->nsrc; i++) sh_segment_release(m->src[i].seg);
            released = written;
        }
        if (p->term_cost > sh_merge_big_term && m->nparts > 1) {
            /* what a big term made the buffers grow to goes back (before
             * another thread may take its turn); a lone part keeps them
             * for the next big term, which would grow them again, page
             * fault by page fault (a quarter of a 1 GB build's faults) */
            rc = p->sw ? sh_segw_append(p->sw, post.p, post.len, &p->err)
                       : sh_spill_put(&p->post, post.p, post.len, &p->err);
            if (rc || (rc = sh_spill_put(&p->pos, pbuf.p, pbuf.len, &p->err))) goto out;
            p->post_total += post.len;
            sh_buf_free(&post);
            sh_buf_free(&pbuf);
            entries_free(p);
        }
    }
    rc = p->sw ? sh_segw_append(p->sw, post.p, post.len, &p->err)
               : sh_spill_put(&p->post, post.p, post.len, &p->err);
    if (rc) goto out;
    p->post_total += post.len;
    rc = sh_spill_put(&p->pos, pbuf.p, pbuf.len, &p->err);
out:
    big_release(p);
    sh_buf_free(&post);
    sh_buf_free(&pbuf);
    return rc;
}

static void *part_main(void *arg) {
    part *p = arg;
    p->rc = merge_terms(p);
    return NULL;
}

static void part_free(part *m) {
    entries_free(m);
    sh_free(m->runs);
    sh_free(m->next_term);
    sh_free(m->end_term);
    sh_free(m->heap);
    sh_spill *sp[] = {&m->post, &m->pos, &m->terms, &m->termidx};
    for (size_t i = 0; i < 4; i++) sh_spill_close(sp[i]);
}

static void merger_free(merger *m) {
    sh_free(m->lent);
    sh_free(m->lenb);
    sh_free(m->src_of);
    sh_free(m->loc_of);
}

/* Check the maps and fill the per-output-doc arrays. */
static int map_docs(merger *m) {
    uint32_t n = m->ndocs;
    size_t cnt = n ? n : 1;
    m->lent = sh_calloc(cnt, sizeof *m->lent);
    m->lenb = sh_calloc(cnt, sizeof *m->lenb);
    m->src_of = sh_malloc(cnt * sizeof *m->src_of);
    m->loc_of = sh_malloc(cnt * sizeof *m->loc_of);
    if (!m->lent || !m->lenb || !m->src_of || !m->loc_of)
        return sh_err(m->err, SAHEL_ENOMEM, "out of memory merging segments");
    for (uint32_t i = 0; i < n; i++) m->src_of[i] = UINT32_MAX;
    for (size_t s = 0; s < m->nsrc; s++) {
        const sh_segment *sg = m->src[s].seg;
        uint32_t prev = 0;
        int any = 0;
        m->base[s] = sg->ndocs ? m->src[s].newdoc[0] : SH_NO_DOC;
        for (uint32_t d = 0; d < sg->ndocs; d++) {
            uint32_t nd = m->src[s].newdoc[d];
            if (m->base[s] != SH_NO_DOC && nd != m->base[s] + d) m->base[s] = SH_NO_DOC;
            if (nd == SH_NO_DOC) continue;
            if (nd >= n || (any && nd <= prev) || m->src_of[nd] != UINT32_MAX)
                return sh_err(m->err, SAHEL_EINVAL, "internal error: bad merge map");
            m->src_of[nd] = (uint32_t)s;
            m->loc_of[nd] = d;
            m->lent[nd] = sh_segment_len_title(sg, d);
            m->lenb[nd] = sh_segment_len_body(sg, d);
            prev = nd;
            any = 1;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        if (m->src_of[i] == UINT32_MAX)
            return sh_err(m->err, SAHEL_EINVAL, "internal error: merge map leaves a gap");
    return 0;
}

/* DOCLENS, IDS, IDSORT, DOCHASH. */
static int write_doc_sections(merger *m, sh_segw *sw, uint64_t *sum_t, uint64_t *sum_b) {
    int rc;
    uint32_t n = m->ndocs;
    sh_buf b = {0};
    sh_strkey *keys = NULL;
    *sum_t = *sum_b = 0;
    for (uint32_t d = 0; d < n; d++) {
        *sum_t += m->lent[d];
        *sum_b += m->lenb[d];
    }
    /* packed, the lengths are 2-3 bytes an article: one buffer for all */
    if (sh_doclens_encode(m->lent, m->lenb, n, &b)) goto nomem;
    if ((rc = sh_segw_section(sw, SH_SEC_DOCLENS, b.p, b.len, m->err))) goto out;
    b.len = 0;

    keys = sh_malloc((n ? n : 1) * sizeof *keys);
    if (!keys) goto nomem;
    uint64_t idbytes = 0;
    for (uint32_t d = 0; d < n; d++) {
        const char *id;
        size_t len;
        if ((rc = sh_segment_doc_id(m->src[m->src_of[d]].seg, m->loc_of[d], &id, &len, m->err)))
            goto out;
        keys[d] = sh_strkey_make((const uint8_t *)id, (uint32_t)len, d);
        idbytes += len;
    }
    if (idbytes > UINT32_MAX) {
        rc = sh_err(m->err, SAHEL_ETOOBIG, "too many id bytes in one segment");
        goto out;
    }
    if ((rc = sh_segw_begin(sw, SH_SEC_IDS, m->err))) goto out;
    uint32_t off = 0;
    for (uint32_t d = 0; d <= n; d++) {
        if (sh_buf_put_u32(&b, off)) goto nomem;
        if (d < n) off += keys[d].len;
        if (b.len >= SPILL_CHUNK || d == n) {
            if ((rc = sh_segw_append(sw, b.p, b.len, m->err))) goto out;
            b.len = 0;
        }
    }
    for (uint32_t d = 0; d < n; d++) {
        if (sh_buf_put(&b, keys[d].p, keys[d].len)) goto nomem;
        if (b.len >= SPILL_CHUNK || d + 1 == n) {
            if ((rc = sh_segw_append(sw, b.p, b.len, m->err))) goto out;
            b.len = 0;
        }
    }
    sh_segw_end(sw);

    if ((rc = sh_segw_begin(sw, SH_SEC_DOCHASH, m->err))) goto out;
    for (uint32_t d = 0; d < n; d++) {
        const sh_segment *sg = m->src[m->src_of[d]].seg;
        if (sh_buf_put(&b, sg->sec[SH_SEC_DOCHASH].p + (size_t)m->loc_of[d] * 8, 8)) goto nomem;
        if (b.len >= SPILL_CHUNK || d + 1 == n) {
            if ((rc = sh_segw_append(sw, b.p, b.len, m->err))) goto out;
            b.len = 0;
        }
    }
    sh_segw_end(sw);

    sh_strkeys_sort(keys, n);
    if ((rc = sh_segw_begin(sw, SH_SEC_IDSORT, m->err))) goto out;
    for (uint32_t d = 0; d < n; d++) {
        if (sh_buf_put_u32(&b, keys[d].idx)) goto nomem;
        if (b.len >= SPILL_CHUNK || d + 1 == n) {
            if ((rc = sh_segw_append(sw, b.p, b.len, m->err))) goto out;
            b.len = 0;
        }
    }
    sh_segw_end(sw);
    goto out;
nomem:
    rc = sh_err(m->err, SAHEL_ENOMEM, "out of memory merging segments");
out:
    sh_buf_free(&b);
    sh_free(keys);
    return rc;
}

/* The blocks compressed in st so far, appended to STORE and their index
 * records (offsets moved to the output's) to idx. */
static int drain(sh_storew *st, sh_segw *sw, sh_spill *idx, uint64_t *out_off, sahel_error *err) {
    uint8_t rec[SH_STOREREC];
    int rc;
    for (size_t k = 0; k < st->index.len; k += SH_STOREREC) {
        memcpy(rec, st->index.p + k, SH_STOREREC);
        sh_store_u64(rec, sh_load_u64(rec) + *out_off);
        if ((rc = sh_spill_put(idx, rec, SH_STOREREC, err))) return rc;
    }
    if ((rc = sh_segw_append(sw, st->store.p, st->store.len, err))) return rc;
    *out_off += st->store.len;
    st->store.len = st->index.len = 0;
    return 0;
}

/* STORE and STOREIDX: whole frames copied where a source block's
 * documents are all kept and consecutive in the output, records
 * recompressed elsewhere. */
/* Whole compressed blocks are copied in runs of at most this many bytes. */
#define STORE_RUN_MAX ((uint64_t)4 << 20)

/* The run of whole blocks in hand, bytes [a, b) of *sg's STORE section,
 * to the output; none is in hand afterwards. */
static int run_flush(sh_segw *sw, const sh_segment **sg, uint64_t a, uint64_t b,
                     sahel_error *err) {
    int rc = 0;
    if (*sg && b > a) rc = sh_segw_append(sw, (*sg)->sec[SH_SEC_STORE].p + a, (size_t)(b - a), err);
    *sg = NULL;
    return rc;
}

static int write_store(merger *m, sh_segw *sw, sh_spill *idx) {
    int rc = 0;
    sh_storew st = {0};
    sh_buf blk = {0};
    void *dctx = NULL; /* one decompression context for every block split */
    uint64_t out_off = 0;  /* bytes of STORE written */
    uint64_t released = 0; /* out_off when the sources were last released */
    uint32_t cached_src = UINT32_MAX, cached_blk = UINT32_MAX;
    const uint8_t *rp = NULL, *rend = NULL; /* next record in the cached block */
    uint32_t rdoc = 0;                      /* the doc it belongs to */
    uint8_t rec[SH_STOREREC];
    /* whole blocks that follow each other in one source are written
     * together: a gigabyte merge copied some 30,000 blocks of about 13 KB,
     * a write each */
    const sh_segment *run_sg = NULL;
    uint64_t run_a = 0, run_b = 0; /* bytes of its STORE section */
    if ((rc = sh_segw_begin(sw, SH_SEC_STORE, m->err))) return rc;
    for (uint32_t d = 0; d < m->ndocs;) {
        uint32_t s = m->src_of[d], l = m->loc_of[d];
        const sh_segment *sg = m->src[s].seg;
        const sh_section *ix = &sg->sec[SH_SEC_STOREIDX];
        uint32_t lo, first, next;
        if ((rc = sh_store_block_of(sg, l, &lo, &first, &next, m->err))) goto out;
        int whole = l == first && next - first <= m->ndocs - d;
        for (uint32_t k = 0; whole && k < next - first; k++)
            whole = m->src_of[d + k] == s && m->loc_of[d + k] == first + k;
        if (whole) {
            /* what was gathered before goes first */
            if (sh_storew_cut(&st)) goto nomem;
            if (st.store.len && (rc = run_flush(sw, &run_sg, run_a, run_b, m->err))) goto out;
            if ((rc = drain(&st, sw, idx, &out_off, m->err))) goto out;
            uint64_t a = sh_load_u64(ix->p + (size_t)lo * SH_STOREREC);
            uint64_t b = sh_load_u64(ix->p + (size_t)(lo + 1) * SH_STOREREC);
            if (a > b || b > sg->sec[SH_SEC_STORE].len) {
                rc = sh_err(m->err, SAHEL_ECORRUPT,
                            "%s: index file is damaged: document store block offset", sg->path);
                goto out;
            }
            sh_store_u64(rec, out_off);
            sh_store_u32(rec + 8, d);
            sh_store_u32(rec + 12, 0);
            if ((rc = sh_spill_put(idx, rec, SH_STOREREC, m->err))) goto out;
            if (run_sg != sg || run_b != a || run_b - run_a >= STORE_RUN_MAX) {
                if ((rc = run_flush(sw, &run_sg, run_a, run_b, m->err))) goto out;
                run_sg = sg;
                run_a = a;
            }
            run_b = b;
            out_off += b - a;
            d += next - first;
            if (out_off - released >= RELEASE_EVERY) {
                /* the run in hand is written before its pages are let go */
                if ((rc = run_flush(sw, &run_sg, run_a, run_b, m->err))) goto out;
                for (size_t i = 0; i < m->nsrc; i++) sh_segment_release(m->src[i].seg);
                released = out_off;
            }
            st.ndocs = st.block_first = d;
            continue;
        }
        if (cached_src != s || cached_blk != lo || rdoc > l) {
            if ((rc = sh_store_load_block(sg, lo, &dctx, &blk, m->err))) goto out;
            cached_src = s;
            cached_blk = lo;
            rp = blk.p;
            rend = blk.p + blk.len;
            rdoc = first;
        }
        for (;;) {
            const uint8_t *start = rp;
            sh_stored rs;
            if (sh_store_parse_record(&rp, rend, &rs)) {
                rc = sh_err(m->err, SAHEL_ECORRUPT,
                            "%s: index file is damaged: document store record", sg->path);
                goto out;
            }
            if (rdoc++ == l) {
                if (sh_storew_add_raw(&st, start, (size_t)(rp - start))) goto nomem;
                break;
            }
        }
        if (st.store.len >= SPILL_CHUNK) {
            if ((rc = run_flush(sw, &run_sg, run_a, run_b, m->err)) ||
                (rc = drain(&st, sw, idx, &out_off, m->err)))
                goto out;
            if (out_off - released >= RELEASE_EVERY) {
                for (size_t i = 0; i < m->nsrc; i++) sh_segment_release(m->src[i].seg);
                released = out_off;
            }
        }
        d++;
    }
    if (sh_storew_cut(&st)) goto nomem;
    if ((rc = run_flush(sw, &run_sg, run_a, run_b, m->err)) ||
        (rc = drain(&st, sw, idx, &out_off, m->err)))
        goto out;
    sh_segw_end(sw);
    sh_store_u64(rec, out_off);
    sh_store_u32(rec + 8, m->ndocs);
    sh_store_u32(rec + 12, 0);
    rc = sh_spill_put(idx, rec, SH_STOREREC, m->err);
    goto out;
nomem:
    rc = sh_err(m->err, SAHEL_ENOMEM, "out of memory merging segments");
out:
    sh_storew_free(&st);
    sh_buf_free(&blk);
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* A merge smaller than this (postings and positions of the sources) is
 * not worth a thread; tests lower it to see small merges split. */
uint64_t sh_merge_split_min = (uint64_t)1 << 20;
#define MAX_PARTS 8

static uint64_t term_weight(const sh_segment *sg, uint32_t i) {
    const uint8_t *r = sg->sec[SH_SEC_TERMIDX].p + (size_t)i * SH_TERMREC;
    return sh_load_u64(r) + sh_load_u64(r + 8);
}

/* Where the parts begin: terms of the source with the most postings and
 * positions, at equal shares of its bytes (the others follow it closely
 * enough: they hold the same language).  Returns the number of parts;
 * part k > 0 begins at bound[k]. */
static size_t choose_parts(const merger *m, size_t want, const char **bound, size_t *blen) {
    uint64_t all = 0, best = 0;
    size_t ref = 0;
    for (size_t s = 0; s < m->nsrc; s++) {
        const sh_segment *sg = m->src[s].seg;
        uint64_t w = sg->sec[SH_SEC_POSTINGS].len + sg->sec[SH_SEC_POSITIONS].len;
        all += w;
        if (w > best) best = w, ref = s;
    }
    if (want <= 1 || all < sh_merge_split_min) return 1;
    const sh_segment *sg = m->src[ref].seg;
    uint64_t total = term_weight(sg, sg->nterms);
    size_t n = 1;
    uint32_t prev = 0;
    for (size_t k = 1; k < want; k++) {
        uint64_t goal = total / want * k;
        uint32_t lo = prev + 1, hi = sg->nterms; /* first term with weight >= goal */
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (term_weight(sg, mid) < goal)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= sg->nterms) break;
        sahel_error e;
        if (sh_segment_term(sg, lo, &bound[n], &blen[n], NULL, &e)) return 1;
        prev = lo;
        n++;
    }
    return n;
}

/* Part k of n: its range in every source, its buffers and spills. */
static int part_init(part *p, const merger *m, size_t k, size_t n, const char **bound,
                     const size_t *blen, const char *dir, const char *name, sahel_error *err) {
    p->m = m;
    p->post.fd = p->pos.fd = p->terms.fd = p->termidx.fd = -1;
    p->runs = sh_calloc(m->nsrc ? m->nsrc : 1, sizeof *p->runs);
    p->next_term = sh_calloc(m->nsrc ? m->nsrc : 1, sizeof *p->next_term);
    p->end_term = sh_calloc(m->nsrc ? m->nsrc : 1, sizeof *p->end_term);
    p->heap = sh_calloc(m->nsrc ? m->nsrc : 1, sizeof *p->heap);
    if (!p->runs || !p->next_term || !p->end_term || !p->heap)
        return sh_err(err, SAHEL_ENOMEM, "out of memory merging segments");
    for (size_t s = 0; s < m->nsrc; s++) {
        const sh_segment *sg = m->src[s].seg;
        p->next_term[s] = k ? sh_segment_lower_bound(sg, bound[k], blen[k]) : 0;
        p->end_term[s] = k + 1 < n ? sh_segment_lower_bound(sg, bound[k + 1], blen[k + 1])
                                   : sg->nterms;
    }
    /* spills 0..3 are the whole merge's */
    sh_spill *sp[] = {&p->post, &p->pos, &p->terms, &p->termidx};
    int rc = 0;
    for (int i = k ? 0 : 1; i < 4 && !rc; i++)
        rc = sh_spill_open(sp[i], dir, name, 4 + 4 * (int)k + i, err);
    return rc;
}

/* TERMIDX from the parts' records, their offsets moved by what the parts
 * before them wrote, and the closing record. */
static int write_termidx(part *parts, size_t n, sh_segw *sw, sahel_error *err) {
    enum { RECS = 1024 };
    uint8_t *buf = sh_malloc((size_t)RECS * SH_TERMREC);
    if (!buf) return sh_err(err, SAHEL_ENOMEM, "out of memory merging segments");
    uint64_t pb = 0, xb = 0, tb = 0;
    int rc = sh_segw_begin(sw, SH_SEC_TERMIDX, err);
    for (size_t k = 0; k < n && !rc; k++) {
        part *p = &parts[k];
        if ((rc = sh_spill_rewind(&p->termidx, err))) break;
        for (uint64_t left = p->nterms; left && !rc;) {
            size_t c = (size_t)SH_MIN(left, (uint64_t)RECS);
            if ((rc = sh_spill_read(&p->termidx, buf, c * SH_TERMREC, err))) break;
            for (size_t i = 0; i < c; i++) {
                uint8_t *r = buf + i * SH_TERMREC;
                sh_store_u64(r, sh_load_u64(r) + pb);
                sh_store_u64(r + 8, sh_load_u64(r + 8) + xb);
                sh_store_u32(r + 16, (uint32_t)(sh_load_u32(r + 16) + tb));
            }
            rc = sh_segw_append(sw, buf, c * SH_TERMREC, err);
            left -= c;
        }
        pb += p->post_total;
        xb += p->pos.total;
        tb += p->terms.total;
    }
    if (!rc) {
        uint8_t trec[SH_TERMREC];
        sh_store_u64(trec, pb);
        sh_store_u64(trec + 8, xb);
        sh_store_u32(trec + 16, (uint32_t)tb);
        sh_store_u32(trec + 20, 0);
        if (!(rc = sh_segw_append(sw, trec, sizeof trec, err))) sh_segw_end(sw);
    }
    sh_free(buf);
    return rc;
}

int sh_merge_write(const char *dir, const char *name, const sh_merge_src *src, size_t nsrc,
                   uint32_t ndocs, const char *lang, unsigned threads, uint64_t *nterms_out,
                   sahel_error *err) {
    return sh_merge_write_out(dir, name, src, nsrc, ndocs, lang, threads, NULL, nterms_out, err);
}

int sh_merge_write_out(const char *dir, const char *name, const sh_merge_src *src, size_t nsrc,
                       uint32_t ndocs, const char *lang, unsigned threads, const sh_merge_out *out,
                       uint64_t *nterms_out, sahel_error *err) {
    sh_segw sw;
    sh_segw *swp = out && out->sw ? out->sw : &sw;
    int sw_open = swp != &sw, rc;
    if (nsrc > SH_MERGE_MAX_SOURCES) {
        rc = sh_err(err, SAHEL_EINVAL, "internal error: more than %d segments in one merge",
                    SH_MERGE_MAX_SOURCES);
        if (sw_open) sh_segw_abort(swp);
        return rc;
    }
    if (sw_open && (out->storeidx_len < SH_STOREREC || out->storeidx_len % SH_STOREREC ||
                    sh_load_u32(out->storeidx + out->storeidx_len - SH_STOREREC + 8) != ndocs)) {
        sh_segw_abort(swp);
        return sh_err(err, SAHEL_EINVAL,
                      "internal error: the stored articles are not the %lu merged",
                      (unsigned long)ndocs);
    }
    merger m = {0};
    pthread_mutex_init(&m.mu, NULL);
    pthread_cond_init(&m.cv, NULL);
    m.src = src;
    m.nsrc = nsrc;
    m.ndocs = ndocs;
    m.err = err;
    sh_spill storeidx;
    memset(&storeidx, 0, sizeof storeidx);
    storeidx.fd = -1;
    part parts[MAX_PARTS];
    size_t nparts = 0;
    uint64_t nterms = 0, ntokens = 0, termbytes = 0;
    /* opening a small segment reads it whole (its checksums): start from
     * an empty resident set, then keep it small as the sources are read */
    for (size_t i = 0; i < nsrc; i++) {
        sh_segment_release(src[i].seg);
        /* no read-around: a merge of many sources reads a little of each
         * at a time, and pages brought in around those reads would add up
         * to a megabyte a source between two releases */
        if (src[i].seg->map) madvise(src[i].seg->map, src[i].seg->size, MADV_RANDOM);
    }
    if ((rc = map_docs(&m))) goto out;
    m.lens = (sh_lens){m.lent, m.lenb, m.ndocs, 0, 0};
    for (uint32_t d = 0; d < m.ndocs; d++) {
        m.lens.sum_lent += m.lent[d];
        m.lens.sum_lenb += m.lenb[d];
    }
    const char *bound[MAX_PARTS];
    size_t blen[MAX_PARTS];
    size_t want = SH_MIN(threads ? (size_t)threads : 1, (size_t)MAX_PARTS);
    size_t n = choose_parts(&m, want, bound, blen);
    m.nparts = n;
    memset(parts, 0, sizeof parts);
    for (size_t k = 0; k < n; k++) {
        nparts++;
        if ((rc = part_init(&parts[k], &m, k, n, bound, blen, dir, name, err))) goto out;
    }
    if (!out && (rc = sh_spill_open(&storeidx, dir, name, 3, err))) goto out;
    if (!sw_open) {
        if ((rc = sh_segw_open(&sw, dir, name, err))) goto out;
        sw_open = 1;
    }

    /* one part keeping every doc: the positions runs are copied whole,
     * so POSITIONS is as long as the sources' together, and is written in
     * place as it grows, not spilled and copied */
    uint64_t src_docs = 0, src_pos = 0;
    for (size_t i = 0; i < nsrc; i++) {
        src_docs += src[i].seg->ndocs;
        src_pos += src[i].seg->sec[SH_SEC_POSITIONS].len;
    }
    if (n == 1 && src_docs == ndocs) {
        sh_spill_close(&parts[0].pos);
        if ((rc = sh_spill_reserve(&parts[0].pos, swp, SH_SEC_POSITIONS, src_pos, err))) goto out;
    }
    /* terms in dictionary order, a range per part; the first part on this
     * thread, writing POSTINGS as it grows */
    if ((rc = sh_segw_begin(swp, SH_SEC_POSTINGS, err))) goto out;
    parts[0].sw = swp;
    for (size_t k = 1; k < n; k++)
        parts[k].started = pthread_create(&parts[k].thread, NULL, part_main, &parts[k]) == 0;
    part_main(&parts[0]);
    for (size_t k = 1; k < n; k++) {
        if (parts[k].started)
            pthread_join(parts[k].thread, NULL);
        else if (!parts[0].rc) /* no thread to be had: in turn, then */
            part_main(&parts[k]);
        else
            parts[k].rc = parts[0].rc;
    }
    for (size_t k = 0; k < n; k++)
        if (parts[k].rc) {
            rc = parts[k].rc;
            *err = parts[k].err;
            goto out;
        }
    for (size_t k = 0; k < n; k++) {
        nterms += parts[k].nterms;
        ntokens += parts[k].ntokens;
        termbytes += parts[k].terms.total;
    }
    if (nterms > UINT32_MAX || termbytes > UINT32_MAX) {
        rc = sh_err(err, SAHEL_ETOOBIG, "segment too large: %s",
                    nterms > UINT32_MAX ? "too many terms" : "dictionary over 4 GiB");
        goto out;
    }
    for (size_t k = 1; k < n; k++)
        if ((rc = sh_spill_append(&parts[k].post, swp, err))) goto out;
    sh_segw_end(swp);
    if (parts[0].pos.seg) {
        if ((rc = sh_spill_copy(&parts[0].pos, swp, SH_SEC_POSITIONS, err))) goto out;
    } else {
        if ((rc = sh_segw_begin(swp, SH_SEC_POSITIONS, err))) goto out;
        for (size_t k = 0; k < n; k++)
            if ((rc = sh_spill_append(&parts[k].pos, swp, err))) goto out;
        sh_segw_end(swp);
    }
    if ((rc = sh_segw_begin(swp, SH_SEC_TERMS, err))) goto out;
    for (size_t k = 0; k < n; k++)
        if ((rc = sh_spill_append(&parts[k].terms, swp, err))) goto out;
    sh_segw_end(swp);
    if ((rc = write_termidx(parts, n, swp, err))) goto out;
    for (size_t k = 0; k < n; k++) part_free(&parts[k]);
    nparts = 0;

    uint64_t sum_t, sum_b;
    if ((rc = write_doc_sections(&m, swp, &sum_t, &sum_b))) goto out;
    if (out && out->sw)
        rc = sh_segw_section(swp, SH_SEC_STOREIDX, out->storeidx, out->storeidx_len, err);
    else if (out && out->storeless)
        rc = sh_store_write_none(swp, ndocs, err);
    else if (!(rc = write_store(&m, swp, &storeidx)))
        rc = sh_spill_copy(&storeidx, swp, SH_SEC_STOREIDX, err);
    if (rc) goto out;

    uint8_t meta[64] = {0};
    sh_store_u32(meta, ndocs);
    sh_store_u32(meta + 4, (uint32_t)nterms);
    sh_store_u64(meta + 8, sum_t);
    sh_store_u64(meta + 16, sum_b);
    sh_store_u64(meta + 24, ntokens);
    memcpy(meta + 32, lang, SH_MIN(strlen(lang), (size_t)31));
    if ((rc = sh_segw_section(swp, SH_SEC_META, meta, sizeof meta, err)) ||
        (rc = sh_segw_finish(swp, err)))
        goto out;
    sw_open = 0;
    if (nterms_out) *nterms_out = nterms;
out:
    if (sw_open) sh_segw_abort(swp);
    for (size_t k = 0; k < nparts; k++) part_free(&parts[k]);
    sh_spill_close(&storeidx);
    merger_free(&m);
    pthread_cond_destroy(&m.cv);
    pthread_mutex_destroy(&m.mu);
    return rc;
}
