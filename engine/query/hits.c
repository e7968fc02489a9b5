/*
 * hits.c - the public face of a search: sahel_search and the sahel_hits it
 * returns (stored fields, snippets, score explanations).
 *
 * A sahel_hits keeps the query's plan: its terms say what to highlight and
 * it can rebuild a hit's scorer to explain the score.  Stored articles are
 * loaded lazily, when a hit is first read, and copied into the hit so that
 * the strings lent to the caller live as long as the hits.  Reading a hit
 * loads, with it, every other hit stored in the same block: a block is
 * decompressed whole, so its other records come for free now and would
 * cost the block again later, once another block has taken the reader's
 * place.
 *
 * Snippets: the index's positions say where in the body each query term
 * occurs (every surface form whose term the query holds, whatever its
 * case, accents or inflection); the body is then only tokenized, with the
 * same tokenizer as at indexing time, to turn positions into bytes.  The window chosen
 * is the one, of at most max_bytes, with the most distinct query terms,
 * then the most matches, then the earliest; it is then widened with
 * context on both sides and cut at word boundaries.  The window ends
 * within max_bytes of the last match's start, so tokenizing stops past
 * that point: no later token can change the snippet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "search.h"

typedef struct hit {
    sh_hitref ref;
    int loaded;
    char *rec;          /* the stored fields, copied */
    sh_stored st;
    char *explain;
} hit;

struct sahel_hits {
    sahel_index *ix;
    sh_plan plan;
    hit *h;
    size_t n;
    uint64_t total;
    int total_exact;
    int explain;
    sh_store_reader store;
    /* the hits by (segment, doc), made on the first load: where to find
     * the other hits of a block; NULL until then, or if it could not be
     * made (hits are then loaded one by one) */
    struct hkey {
        uint64_t key; /* seg << 32 | doc */
        size_t i;
    } *bydoc;
    int bydoc_tried;
    /* snippet scratch */
    struct stok {
        uint32_t start, end;
        int32_t term; /* plan term index, or -1 */
    } *toks;
    size_t ntoks, cap_toks;
    sahel_span *spans;
    size_t nspans, cap_spans;
    uint32_t *seen;
    size_t cap_seen;
    int tok_rc;
    int64_t last_pos;     /* the last position holding a query term, or -1 */
    size_t snip_max;      /* the snippet's max_bytes */
    size_t tok_stop;      /* no token starting here or later matters (once past last_pos) */
    int32_t *pos_terms; /* per body position: the query term there, or -1 */
    size_t npos_terms, cap_pos_terms;
    sh_buf posbuf;
};

void sahel_hits_free(sahel_hits *hits) {
    if (!hits) return;
    for (size_t i = 0; i < hits->n; i++) {
        sh_free(hits->h[i].rec);
        sh_free(hits->h[i].explain);
    }
    sh_free(hits->h);
    sh_plan_free(&hits->plan);
    sh_store_reader_free(&hits->store);
    sh_free(hits->bydoc);
    sh_free(hits->toks);
    sh_free(hits->spans);
    sh_free(hits->seen);
    sh_free(hits->pos_terms);
    sh_buf_free(&hits->posbuf);
    sh_free(hits);
}

size_t sahel_hits_count(const sahel_hits *hits) { return hits ? hits->n : 0; }
uint64_t sahel_hits_total(const sahel_hits *hits) { return hits ? hits->total : 0; }
int sahel_hits_total_exact(const sahel_hits *hits) { return hits ? hits->total_exact : 0; }

int sahel_search(sahel_index *ix, const char *query, size_t query_len,
                 const sahel_search_opts *opts, sahel_hits **out, sahel_error *err) {
    *out = NULL;
    if (!ix || (!query && query_len)) return sh_err(err, SAHEL_EINVAL, "no index or no query");
    sahel_hits *hits = sh_calloc(1, sizeof *hits);
    if (!hits) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    hits->ix = ix;
    hits->explain = opts && opts->explain;
    size_t k = opts && opts->k ? opts->k : 10;
    sh_hitref *refs = NULL;
    size_t n = 0;
    int rc = sh_plan_build(ix, query ? query : "", query_len, opts, &hits->plan, err);
    if (!rc)
        rc = sh_plan_run(&hits->plan, k, opts && opts->count_all, opts ? opts->threads : 1,
                         &refs, &n, &hits->total, &hits->total_exact, err);
    if (rc) goto fail;
    hits->h = sh_calloc(n ? n : 1, sizeof *hits->h);
    if (!hits->h) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) hits->h[i].ref = refs[i];
    hits->n = n;
    sh_free(refs);
    refs = NULL;
    if (hits->explain)
        for (size_t i = 0; i < n; i++) {
            sh_buf b = {0};
            if ((rc = sh_plan_explain(&hits->plan, &hits->h[i].ref, &b, err))) {
                sh_buf_free(&b);
                goto fail;
            }
            hits->h[i].explain = (char *)b.p;
        }
    *out = hits;
    return 0;
fail:
    sh_free(refs);
    sahel_hits_free(hits);
    return rc;
}

/* Copy record st into hit h. */
static int keep(hit *h, const sh_stored *st, sahel_error *err) {
    size_t total = 0;
    for (int f = 0; f < SH_STORE_NFIELDS; f++) total += st->len[f] + 1;
    h->rec = sh_malloc(total);
    if (!h->rec) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    char *p = h->rec;
    for (int f = 0; f < SH_STORE_NFIELDS; f++) {
        if (st->f[f]) {
            memcpy(p, st->f[f], st->len[f]);
            p[st->len[f]] = '\0';
            h->st.f[f] = p;
        } else {
            h->st.f[f] = NULL;
        }
        h->st.len[f] = st->len[f];
        p += st->len[f] + 1;
    }
    h->st.line = st->line;
    h->loaded = 1;
    return 0;
}

static int hkey_cmp(const void *a, const void *b) {
    uint64_t x = ((const struct hkey *)a)->key, y = ((const struct hkey *)b)->key;
    return (x > y) - (x < y);
}

/* Load, from the block the reader holds, the other hits stored in it.  An
 * optimisation only: a hit that fails here is left for its own load to
 * read again and report. */
static void load_block_mates(sahel_hits *hits, uint32_t seg) {
    if (!hits->bydoc_tried) {
        hits->bydoc_tried = 1;
        hits->bydoc = sh_reallocarray(NULL, hits->n, sizeof *hits->bydoc);
        if (hits->bydoc) {
            for (size_t j = 0; j < hits->n; j++)
                hits->bydoc[j] = (struct hkey){(uint64_t)hits->h[j].ref.seg << 32 |
                                                   hits->h[j].ref.doc,
                                               j};
            qsort(hits->bydoc, hits->n, sizeof *hits->bydoc, hkey_cmp);
        }
    }
    if (!hits->bydoc) return;
    uint64_t lo = (uint64_t)seg << 32 | hits->store.first;
    uint64_t hi = (uint64_t)seg << 32 | hits->store.next;
    size_t a = 0, b = hits->n; /* first key >= lo */
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        if (hits->bydoc[mid].key < lo) a = mid + 1;
        else b = mid;
    }
    const sh_segment *sg = &hits->ix->segs[seg];
    for (; a < hits->n && hits->bydoc[a].key < hi; a++) {
        hit *m = &hits->h[hits->bydoc[a].i];
        if (m->loaded) continue;
        sahel_error ignored = {0};
        sh_stored st;
        /* the block is held: no decompression, and no error but damage
         * to this record, or memory */
        if (sh_store_read(&hits->store, sg, m->ref.doc, &st, &ignored) == 0)
            (void)keep(m, &st, &ignored);
    }
}

static int load(sahel_hits *hits, size_t i, sahel_error *err) {
    hit *h = &hits->h[i];
    if (h->loaded) return 0;
    sh_stored st;
    int rc = sh_store_read(&hits->store, &hits->ix->segs[h->ref.seg], h->ref.doc, &st, err);
    if (!rc) rc = keep(h, &st, err);
    if (rc) return rc;
    load_block_mates(hits, h->ref.seg);
    return 0;
}

int sahel_hits_get(sahel_hits *hits, size_t i, sahel_hit *out, sahel_error *err) {
    if (!hits || i >= hits->n) return sh_err(err, SAHEL_EINVAL, "no hit number %zu", i);
    int rc = load(hits, i, err);
    if (rc) return rc;
    const sh_stored *s = &hits->h[i].st;
    memset(out, 0, sizeof *out);
    out->score = hits->h[i].ref.score;
    out->id = s->f[SH_STORE_ID], out->id_len = s->len[SH_STORE_ID];
    out->title = s->f[SH_STORE_TITLE], out->title_len = s->len[SH_STORE_TITLE];
    out->body = s->f[SH_STORE_BODY], out->body_len = s->len[SH_STORE_BODY];
    out->date = s->f[SH_STORE_DATE], out->date_len = s->len[SH_STORE_DATE];
    out->source = s->f[SH_STORE_SOURCE], out->source_len = s->len[SH_STORE_SOURCE];
    out->url = s->f[SH_STORE_URL], out->url_len = s->len[SH_STORE_URL];
    out->lang = s->f[SH_STORE_LANG], out->lang_len = s->len[SH_STORE_LANG];
    out->path = s->f[SH_STORE_PATH], out->path_len = s->len[SH_STORE_PATH];
    out->line = s->line;
    return 0;
}

int sahel_hits_id(const sahel_hits *hits, size_t i, const char **id, size_t *id_len,
                  double *score, sahel_error *err) {
    if (!hits || i >= hits->n) return sh_err(err, SAHEL_EINVAL, "no hit number %zu", i);
    const sh_hitref *r = &hits->h[i].ref;
    if (score) *score = r->score;
    return sh_segment_doc_id(&hits->ix->segs[r->seg], r->doc, id, id_len, err);
}

int sahel_hits_explain(sahel_hits *hits, size_t i, const char **text, sahel_error *err) {
    if (!hits || i >= hits->n) return sh_err(err, SAHEL_EINVAL, "no hit number %zu", i);
    if (!hits->explain || !hits->h[i].explain)
        return sh_err(err, SAHEL_EINVAL, "explanations were not asked for (opts.explain)");
    *text = hits->h[i].explain;
    return 0;
}

/* ---- snippets ----------------------------------------------------------- */

/* What on_snip_tokens returns to stop the scan when the rest of the body
 * cannot change the snippet (any non-zero value stops it). */
#define SNIP_ENOUGH 1

static int on_snip_tokens(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    sahel_hits *hits = ctx;
    if (hits->cap_toks - hits->ntoks < n) {
        size_t cap = hits->cap_toks ? hits->cap_toks * 2 : 1024;
        struct stok *t = sh_reallocarray(hits->toks, cap, sizeof *t);
        if (!t) {
            *stop = 0;
            return hits->tok_rc = SAHEL_ENOMEM;
        }
        hits->toks = t;
        hits->cap_toks = cap;
    }
    for (size_t k = 0; k < n; k++) {
        const sh_token *tok = &toks[k];
        /* tokens come in order of start and of position: past the last
         * match, one that starts where no window can reach ends the scan */
        if ((int64_t)tok->pos > hits->last_pos && tok->start >= hits->tok_stop) {
            *stop = k;
            return SNIP_ENOUGH;
        }
        /* the term matched at this position, known from the postings; a
         * hyphenated whole shares its first part's position and span start */
        int32_t term = tok->pos < hits->npos_terms ? hits->pos_terms[tok->pos] : -1;
        if (term >= 0) hits->tok_stop = (size_t)tok->start + hits->snip_max;
        hits->toks[hits->ntoks++] = (struct stok){tok->start, tok->end, term};
    }
    return 0;
}

/* Mark, for each body position of hit h, the query term found there: read
 * from the positions in the index, so that the body needs only to be
 * tokenized again (to map positions to bytes), not analysed. */
static int mark_positions(sahel_hits *hits, const sh_hitref *h, sahel_error *err) {
    const sh_segment *seg = &hits->ix->segs[h->seg];
    uint32_t npos = sh_segment_len_body(seg, h->doc);
    if (hits->cap_pos_terms < npos) {
        int32_t *p = sh_reallocarray(hits->pos_terms, npos, sizeof *p);
        if (!p) return sh_err(err, SAHEL_ENOMEM, "out of memory making a snippet");
        hits->pos_terms = p;
        hits->cap_pos_terms = npos;
    }
    hits->npos_terms = npos;
    hits->last_pos = -1;
    for (uint32_t i = 0; i < npos; i++) hits->pos_terms[i] = -1;
    const sh_plan *pl = &hits->plan;
    size_t nsegs = hits->ix->nsegs;
    for (size_t t = 0; t < pl->nterms; t++) {
        if (!pl->terms[t].positive) continue;
        /* the plan looked every term up in every segment */
        const sh_terminfo *ti = &pl->tinfo[t * nsegs + h->seg];
        if (ti->idx == SH_TERM_ABSENT) continue;
        sh_postings pc;
        int rc;
        if ((rc = sh_postings_init(&pc, seg, ti, err)) || (rc = sh_postings_advance(&pc, h->doc)))
            return rc;
        if (pc.doc != h->doc || sh_postings_tfb(&pc) == 0) continue;
        uint32_t nt = sh_postings_tft(&pc), nb = sh_postings_tfb(&pc);
        sh_buf_reset(&hits->posbuf);
        if (sh_buf_reserve(&hits->posbuf, ((size_t)nt + nb) * sizeof(uint32_t)))
            return sh_err(err, SAHEL_ENOMEM, "out of memory making a snippet");
        uint32_t *buf = (uint32_t *)(void *)hits->posbuf.p;
        if ((rc = sh_postings_positions(&pc, buf, buf + nt))) return rc;
        for (uint32_t k = 0; k < nb; k++)
            if (buf[nt + k] < npos && hits->pos_terms[buf[nt + k]] < 0) {
                hits->pos_terms[buf[nt + k]] = (int32_t)t;
                if ((int64_t)buf[nt + k] > hits->last_pos) hits->last_pos = buf[nt + k];
            }
    }
    return 0;
}

static int add_span(sahel_hits *hits, size_t start, size_t end) {
    if (hits->nspans && start <= hits->spans[hits->nspans - 1].end) {
        sahel_span *last = &hits->spans[hits->nspans - 1];
        if (end > last->end) last->end = end;
        return 0;
    }
    if (hits->nspans == hits->cap_spans) {
        size_t cap = hits->cap_spans ? hits->cap_spans * 2 : 16;
        sahel_span *s = sh_reallocarray(hits->spans, cap, sizeof *s);
        if (!s) return SAHEL_ENOMEM;
        hits->spans = s;
        hits->cap_spans = cap;
    }
    hits->spans[hits->nspans++] = (sahel_span){start, end};
    return 0;
}

/* Byte offset of the start of the UTF-8 character holding byte i. */
static size_t char_start(const char *s, size_t i) {
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

int sahel_hits_snippet(sahel_hits *hits, size_t i, size_t max_bytes, sahel_snippet *snip,
                       sahel_error *err) {
    memset(snip, 0, sizeof *snip);
    int rc = load(hits, i, err);
    if (rc) return rc;
    if (max_bytes < 16) max_bytes = 16;
    const char *body = hits->h[i].st.f[SH_STORE_BODY];
    size_t blen = hits->h[i].st.len[SH_STORE_BODY];
    if (!body || !blen) return 0;
    hits->ntoks = 0;
    hits->nspans = 0;
    hits->tok_rc = 0;
    if ((rc = mark_positions(hits, &hits->h[i].ref, err))) return rc;
    /* with no match the snippet is the body's first max_bytes */
    hits->snip_max = max_bytes;
    hits->tok_stop = max_bytes;
    rc = sh_tokenize_batch(body, blen, 0, on_snip_tokens, hits, NULL);
    if ((rc && rc != SNIP_ENOUGH) || hits->tok_rc)
        return sh_err(err, SAHEL_ENOMEM, "out of memory making a snippet");
    size_t nt = hits->ntoks;
    struct stok *t = hits->toks;
    if (hits->cap_seen < hits->plan.nterms) {
        uint32_t *s = sh_reallocarray(hits->seen, hits->plan.nterms, sizeof *s);
        if (!s) return sh_err(err, SAHEL_ENOMEM, "out of memory making a snippet");
        hits->seen = s;
        hits->cap_seen = hits->plan.nterms;
    }
    if (hits->plan.nterms) memset(hits->seen, 0, hits->plan.nterms * sizeof *hits->seen);

    /* sliding window over matched tokens: [a, b] both matches, span <= max */
    size_t best_a = SIZE_MAX, best_b = 0, best_distinct = 0, best_count = 0;
    size_t a = 0, distinct = 0, count = 0;
    for (size_t b = 0; b < nt; b++) {
        if (t[b].term < 0) continue;
        if (hits->seen[t[b].term]++ == 0) distinct++;
        count++;
        for (;;) {
            while (a < b && t[a].term < 0) a++;
            if (a == b || t[b].end - t[a].start <= max_bytes) break;
            if (--hits->seen[t[a].term] == 0) distinct--;
            count--;
            a++;
        }
        if (distinct > best_distinct || (distinct == best_distinct && count > best_count)) {
            best_distinct = distinct;
            best_count = count;
            best_a = a;
            best_b = b;
        }
    }
    size_t start, end;
    if (best_a == SIZE_MAX) {
        start = 0;
        end = SH_MIN(blen, max_bytes);
    } else {
        size_t lo = t[best_a].start, hi = t[best_b].end;
        size_t slack = max_bytes > hi - lo ? max_bytes - (hi - lo) : 0;
        /* a third of the room before the matches, the rest after */
        size_t before = slack / 3;
        start = lo > before ? lo - before : 0;
        end = SH_MIN(blen, start + max_bytes);
        if (end - start < max_bytes && start > 0) start = end > max_bytes ? end - max_bytes : 0;
    }
    /* cut at word boundaries: start at a token start, end at a token end */
    if (start > 0) {
        size_t s2 = start;
        for (size_t k = 0; k < nt; k++)
            if (t[k].start >= start) {
                s2 = t[k].start;
                break;
            }
        if (best_a == SIZE_MAX || s2 <= t[best_a].start) start = s2;
    }
    if (end < blen) {
        size_t e2 = start;
        for (size_t k = 0; k < nt && t[k].start < end; k++)
            if (t[k].end <= end) e2 = SH_MAX(e2, (size_t)t[k].end);
        if (e2 > start) end = e2;
        else end = char_start(body, end);
    }
    /* skip leading whitespace and punctuation left by the cut */
    while (start < end && (body[start] == ' ' || body[start] == '\n' || body[start] == '\t' ||
                           body[start] == '\r'))
        start++;
    for (size_t k = 0; k < nt; k++)
        if (t[k].term >= 0 && t[k].start >= start && t[k].end <= end &&
            add_span(hits, t[k].start - start, t[k].end - start))
            return sh_err(err, SAHEL_ENOMEM, "out of memory making a snippet");
    snip->text = body + start;
    snip->len = end - start;
    snip->spans = hits->spans;
    snip->nspans = hits->nspans;
    snip->cut_before = start > 0;
    snip->cut_after = end < blen;
    return 0;
}
