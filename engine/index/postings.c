/*
 * postings.c - the postings codec and cursor.
 *
 * One term's postings in a segment (at TERMIDX.post_off in SEC_POSTINGS):
 *
 *   [skip table]   present only when the term has more than one block:
 *                  nblocks records of 32 bytes, little-endian:
 *                    u32 last_doc   last doc id of the block
 *                    u32 doc_off    byte offset of the block, counted from
 *                                   the end of the skip table
 *                    u64 pos_off    byte offset of the block's positions,
 *                                   counted from the term's pos_off
 *                    u32 max_tft    largest title frequency in the block
 *                    u32 max_tfb    largest body frequency in the block
 *                    u32 min_lent   smallest title length of its docs
 *                    u32 min_lenb   smallest body length of its docs
 *                  (the last four bound any BM25F score in the block,
 *                  whatever the weights: room for block-max evaluation)
 *   blocks         nblocks = ceil(df / 128); block j holds docs
 *                  [128j, min(128(j+1), df)).  A block of 128 docs is
 *                  bit-packed:
 *                    u8 wd, 128 doc gaps of wd bits  (16*wd bytes)
 *                    u8 wt, 128 title tfs of wt bits
 *                    u8 wb, 128 body tfs of wb bits
 *                  a shorter (last) block is LEB128 varints, per doc:
 *                    gap, tft, tfb
 *                  gap = doc - prev - 1, prev = the previous doc of the
 *                  term (-1 before the first), so gaps are >= 0.
 *                  Bits are packed LSB first into little-endian bytes.
 *
 * Positions (at TERMIDX.pos_off in SEC_POSITIONS), per doc in doc order:
 * its tft title positions then its tfb body positions, each run as LEB128
 * varints: the first absolute, the others as differences (>= 0: after
 * stemming, a hyphenated whole and its first part may share a term and a
 * position).
 *
 * Invariants checked while decoding (damage -> SAHEL_ECORRUPT, never a
 * wild read): every byte read lies inside the term's range, doc ids are
 * increasing and < ndocs, tft + tfb >= 1 and each tf is at most twice the
 * field's length for that doc (a position holds one token, plus the joined
 * whole of a hyphenated word), positions lie inside the term's range.
 */
#include "index.h"

/* ---- bit packing -------------------------------------------------------- */

unsigned sh_bits_needed(const uint32_t *v, size_t n) {
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= v[i];
    return acc ? 32u - (unsigned)__builtin_clz(acc) : 0u;
}

size_t sh_bitpack(const uint32_t *in, size_t n, unsigned width, uint8_t *out) {
    size_t nbytes = (n * width + 7) / 8;
    if (width == 0) return 0;
    memset(out, 0, nbytes);
    uint64_t acc = 0;
    unsigned fill = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= (uint64_t)in[i] << fill;
        fill += width;
        while (fill >= 8) {
            out[o++] = (uint8_t)acc;
            acc >>= 8;
            fill -= 8;
        }
    }
    if (fill) out[o++] = (uint8_t)acc;
    return nbytes;
}

void sh_bitunpack(const uint8_t *in, size_t n, unsigned width, uint32_t *out) {
    if (width == 0) {
        memset(out, 0, n * sizeof *out);
        return;
    }
    uint64_t mask = width == 32 ? 0xffffffffu : ((1u << width) - 1);
    uint64_t acc = 0;
    unsigned fill = 0;
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        while (fill < width) {
            acc |= (uint64_t)in[p++] << fill;
            fill += 8;
        }
        out[i] = (uint32_t)(acc & mask);
        acc >>= width;
        fill -= width;
    }
}

/* ---- encoding ----------------------------------------------------------- */

static int put_packed(sh_buf *b, const uint32_t *v, size_t n) {
    unsigned w = sh_bits_needed(v, n);
    if (sh_buf_putc(b, (uint8_t)w) || sh_buf_reserve(b, (n * w + 7) / 8)) return SAHEL_ENOMEM;
    b->len += sh_bitpack(v, n, w, b->p + b->len);
    return 0;
}

int sh_postings_encode(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                       const uint32_t *positions, size_t n, const uint32_t *lent,
                       const uint32_t *lenb, sh_buf *post, sh_buf *pos) {
    size_t nblocks = (n + SH_BLOCK - 1) / SH_BLOCK;
    size_t skip_at = post->len;
    if (nblocks > 1 && sh_buf_reserve(post, nblocks * SH_SKIPREC)) return SAHEL_ENOMEM;
    if (nblocks > 1) {
        memset(post->p + post->len, 0, nblocks * SH_SKIPREC);
        post->len += nblocks * SH_SKIPREC;
    }
    size_t data_at = post->len;
    size_t pos_at = pos->len;
    uint32_t gaps[SH_BLOCK];
    uint32_t prev_plus1 = 0;
    const uint32_t *pp = positions;
    for (size_t blk = 0; blk < nblocks; blk++) {
        size_t first = blk * SH_BLOCK;
        size_t cnt = SH_MIN((size_t)SH_BLOCK, n - first);
        uint32_t max_tft = 0, max_tfb = 0, min_lent = UINT32_MAX, min_lenb = UINT32_MAX;
        size_t block_off = post->len - data_at;
        size_t block_pos = pos->len - pos_at;
        for (size_t i = 0; i < cnt; i++) {
            uint32_t d = docs[first + i];
            gaps[i] = d - prev_plus1;
            prev_plus1 = d + 1;
            max_tft = SH_MAX(max_tft, tft[first + i]);
            max_tfb = SH_MAX(max_tfb, tfb[first + i]);
            min_lent = SH_MIN(min_lent, lent[d]);
            min_lenb = SH_MIN(min_lenb, lenb[d]);
        }
        if (cnt == SH_BLOCK) {
            if (put_packed(post, gaps, cnt) || put_packed(post, tft + first, cnt) ||
                put_packed(post, tfb + first, cnt))
                return SAHEL_ENOMEM;
        } else {
            for (size_t i = 0; i < cnt; i++)
                if (sh_buf_put_varint(post, gaps[i]) || sh_buf_put_varint(post, tft[first + i]) ||
                    sh_buf_put_varint(post, tfb[first + i]))
                    return SAHEL_ENOMEM;
        }
        for (size_t i = 0; i < cnt; i++) {
            uint32_t runs[2] = {tft[first + i], tfb[first + i]};
            for (int r = 0; r < 2; r++) {
                uint32_t last = 0;
                for (uint32_t k = 0; k < runs[r]; k++) {
                    uint32_t p = *pp++;
                    if (sh_buf_put_varint(pos, k ? p - last : p)) return SAHEL_ENOMEM;
                    last = p;
                }
            }
        }
        if (nblocks > 1) {
            uint8_t *rec = post->p + skip_at + blk * SH_SKIPREC;
            sh_store_u32(rec, docs[first + cnt - 1]);
            sh_store_u32(rec + 4, (uint32_t)block_off);
            sh_store_u64(rec + 8, block_pos);
            sh_store_u32(rec + 16, max_tft);
            sh_store_u32(rec + 20, max_tfb);
            sh_store_u32(rec + 24, min_lent);
            sh_store_u32(rec + 28, min_lenb);
            if (post->len - data_at > UINT32_MAX) return SAHEL_ETOOBIG;
        }
    }
    return 0;
}

/* ---- cursor ------------------------------------------------------------- */

static int corrupt(sh_postings *pc, const char *what, const uint8_t *at) {
    const sh_section *s = &pc->seg->sec[SH_SEC_POSTINGS];
    uint64_t off = at ? (uint64_t)(at - pc->seg->map) : s->off + pc->ti.post_off;
    return sh_err(pc->err, SAHEL_ECORRUPT, "%s: damaged postings (%s) at byte %llu",
                  pc->seg->path, what, (unsigned long long)off);
}

int sh_postings_init(sh_postings *pc, const sh_segment *seg, const sh_terminfo *ti,
                     sahel_error *err) {
    pc->seg = seg;
    pc->err = err;
    pc->ti = *ti;
    pc->doc = SH_NO_DOC;
    pc->block = UINT32_MAX;
    pc->n = pc->i = 0;
    pc->prev_last = 0;
    const uint8_t *base = seg->sec[SH_SEC_POSTINGS].p + ti->post_off;
    pc->end = base + ti->post_len;
    pc->posbase = seg->sec[SH_SEC_POSITIONS].p + ti->pos_off;
    pc->posend = pc->posbase + ti->pos_len;
    if (ti->df == 0 || ti->df > seg->ndocs) return corrupt(pc, "document frequency", NULL);
    pc->nblocks = (ti->df + SH_BLOCK - 1) / SH_BLOCK;
    if (pc->nblocks > 1) {
        if ((uint64_t)pc->nblocks * SH_SKIPREC > ti->post_len)
            return corrupt(pc, "skip table", NULL);
        pc->skip = base;
        pc->data = base + (size_t)pc->nblocks * SH_SKIPREC;
    } else {
        pc->skip = NULL;
        pc->data = base;
    }
    pc->next_block = pc->data;
    return 0;
}

/* Decode block `blk` starting at byte `p`; prev_plus1 is one past the
 * previous block's last doc (0 for the first block). */
static int load_block(sh_postings *pc, uint32_t blk, const uint8_t *p, uint32_t prev_plus1) {
    uint32_t cnt = blk + 1 < pc->nblocks ? SH_BLOCK : pc->ti.df - blk * SH_BLOCK;
    const uint8_t *end = pc->end;
    if (p < pc->data || p > end) return corrupt(pc, "block offset", p);
    if (cnt == SH_BLOCK) {
        uint32_t *dst[3] = {pc->docs, pc->tft, pc->tfb};
        for (int k = 0; k < 3; k++) {
            if (p >= end) return corrupt(pc, "truncated block", p);
            unsigned w = *p++;
            size_t nb = (SH_BLOCK * (size_t)w + 7) / 8;
            if (w > 32 || (size_t)(end - p) < nb) return corrupt(pc, "bit width", p - 1);
            sh_bitunpack(p, SH_BLOCK, w, dst[k]);
            p += nb;
        }
    } else {
        for (uint32_t i = 0; i < cnt; i++)
            if (sh_varint_get32(&p, end, &pc->docs[i]) || sh_varint_get32(&p, end, &pc->tft[i]) ||
                sh_varint_get32(&p, end, &pc->tfb[i]))
                return corrupt(pc, "truncated varint block", p);
    }
    /* gaps -> doc ids, with the checks that keep later reads in bounds */
    uint64_t d = prev_plus1;
    const sh_segment *seg = pc->seg;
    for (uint32_t i = 0; i < cnt; i++) {
        d += pc->docs[i];
        if (d >= seg->ndocs) return corrupt(pc, "doc id out of range", p);
        uint32_t doc = (uint32_t)d;
        pc->docs[i] = doc;
        /* a field of len positions holds at most 2 * len tokens: one per
         * position plus the joined whole of a hyphenated word */
        if (pc->tft[i] + (uint64_t)pc->tfb[i] == 0 ||
            pc->tft[i] > 2 * (uint64_t)sh_segment_len_title(seg, doc) ||
            pc->tfb[i] > 2 * (uint64_t)sh_segment_len_body(seg, doc))
            return corrupt(pc, "term frequency", p);
        d++;
    }
    if (pc->skip) {
        const uint8_t *rec = pc->skip + (size_t)blk * SH_SKIPREC;
        if (sh_load_u32(rec) != pc->docs[cnt - 1]) return corrupt(pc, "skip record", rec);
        uint64_t po = sh_load_u64(rec + 8);
        if (po > pc->ti.pos_len) return corrupt(pc, "positions offset", rec);
        pc->block_pos_off = po;
    } else {
        pc->block_pos_off = 0;
    }
    pc->block = blk;
    pc->n = cnt;
    pc->i = 0;
    pc->next_block = p;
    pc->pos_p = pc->posbase + pc->block_pos_off;
    pc->pos_i = 0;
    return 0;
}

int sh_postings_next(sh_postings *pc) {
    if (pc->block != UINT32_MAX && pc->i + 1 < pc->n) {
        pc->doc = pc->docs[++pc->i];
        return 0;
    }
    uint32_t blk = pc->block == UINT32_MAX ? 0 : pc->block + 1;
    if (blk >= pc->nblocks) {
        pc->doc = SH_NO_DOC;
        pc->block = pc->nblocks; /* stay exhausted */
        pc->n = pc->i = 0;
        return 0;
    }
    uint32_t prev_plus1 = pc->block == UINT32_MAX || pc->n == 0 ? 0 : pc->docs[pc->n - 1] + 1;
    int rc = load_block(pc, blk, pc->next_block, prev_plus1);
    if (rc) return rc;
    pc->doc = pc->docs[0];
    return 0;
}

int sh_postings_advance(sh_postings *pc, uint32_t target) {
    if (pc->doc != SH_NO_DOC && pc->doc >= target) return 0;
    if (pc->block == pc->nblocks && pc->block != UINT32_MAX && pc->doc == SH_NO_DOC &&
        pc->n == 0)
        return 0; /* exhausted */
    /* skip whole blocks whose last doc is below the target */
    if (pc->skip) {
        uint32_t blk = pc->block == UINT32_MAX ? 0 : pc->block;
        while (blk < pc->nblocks && sh_load_u32(pc->skip + (size_t)blk * SH_SKIPREC) < target)
            blk++;
        if (blk >= pc->nblocks) {
            pc->doc = SH_NO_DOC;
            pc->block = pc->nblocks;
            pc->n = pc->i = 0;
            return 0;
        }
        if (blk != pc->block) {
            const uint8_t *rec = pc->skip + (size_t)blk * SH_SKIPREC;
            uint64_t off = sh_load_u32(rec + 4);
            uint32_t prev_plus1 =
                blk ? sh_load_u32(pc->skip + (size_t)(blk - 1) * SH_SKIPREC) + 1 : 0;
            if (off > (uint64_t)(pc->end - pc->data)) return corrupt(pc, "skip offset", rec);
            int rc = load_block(pc, blk, pc->data + off, prev_plus1);
            if (rc) return rc;
            pc->doc = pc->docs[0];
        }
    }
    while (pc->doc == SH_NO_DOC || pc->doc < target) {
        int rc = sh_postings_next(pc);
        if (rc) return rc;
        if (pc->doc == SH_NO_DOC) return 0;
    }
    return 0;
}

static int read_run(sh_postings *pc, uint32_t n, uint32_t *out) {
    uint32_t last = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t v;
        if (sh_varint_get32(&pc->pos_p, pc->posend, &v)) return corrupt(pc, "positions", NULL);
        if (k) {
            if (v > UINT32_MAX - last) return corrupt(pc, "position overflow", NULL);
            v += last;
        }
        if (out) out[k] = v;
        last = v;
    }
    return 0;
}

int sh_postings_positions(sh_postings *pc, uint32_t *t, uint32_t *b) {
    if (pc->doc == SH_NO_DOC) return 0;
    /* skip the positions of the docs before the current one in the block */
    if (pc->pos_i > pc->i) {
        pc->pos_p = pc->posbase + pc->block_pos_off;
        pc->pos_i = 0;
    }
    while (pc->pos_i < pc->i) {
        int rc = read_run(pc, pc->tft[pc->pos_i], NULL);
        if (!rc) rc = read_run(pc, pc->tfb[pc->pos_i], NULL);
        if (rc) return rc;
        pc->pos_i++;
    }
    const uint8_t *save = pc->pos_p;
    int rc = read_run(pc, pc->tft[pc->i], t);
    if (!rc) rc = read_run(pc, pc->tfb[pc->i], b);
    pc->pos_p = save; /* reading is idempotent for the current doc */
    return rc;
}
