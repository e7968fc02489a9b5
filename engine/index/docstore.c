/*
 * docstore.c - the stored articles: what search results display and what
 * snippets are cut from.
 *
 * A record (one article) is nine values, in this order:
 *   id, title, body, date, source, url, lang, path   LEB128 length + bytes
 *   line                                             LEB128
 * Records are gathered, in doc order, into blocks: a block is closed as
 * soon as it reaches SH_STORE_BLOCK bytes, so a record never spans blocks
 * and a block holds at most one record past that size.  Each block is one zstd frame (level 1, with zstd's
 * content checksum and content size), the frames concatenated in SEC_STORE;
 * SEC_STOREIDX gives each frame's offset and first doc (see segment.c).
 * Fetching doc d decompresses one block and walks its records.
 *
 * Why blocks: news articles compress far better together (shared words,
 * boilerplate) than one by one, and a top-10 page touches at most ten
 * blocks, about twenty microseconds each.  Why 16 KiB: a hit decompresses
 * its whole block, so the block's size is most of what a hit costs a
 * one-shot search.  Measured against 32 KiB (100 MB generated news, three
 * one-term searches, whole processes): 16 KiB took 0.26 ms less a search
 * for a store 2.1% larger and 0.9% more instructions to build; 8 KiB
 * 0.43 ms less, for 3.4% and 4.6% (zstd builds its entropy tables per
 * block), too much of the build for the rest.
 *
 * Readers (sh_store_reader) keep one zstd context for every block they
 * decompress: ZSTD_decompress makes and frees a context of about 95 KiB
 * per call, and that allocation, with the fresh heap pages it touches,
 * added a third to the cost of decompressing a one-shot search's blocks.
 * A block is decompressed whole, never up to one record: a frame of
 * SH_STORE_BLOCK bytes at level 1 is a single zstd block, zstd's unit of
 * decoding, so stopping early saves nothing; and only the whole frame is
 * covered by its checksum, which is what finds damage to a block.  (Frames
 * cut into zstd blocks at records, with ZSTD_e_flush, would let a reader
 * stop at its record: on UNGDC speeches and generated news that saves a
 * quarter of the decoding, a few microseconds a hit, for a store 0.3-1.3%
 * larger and damage past the record no longer seen; not worth it.)
 * A reader also tells the kernel that the store is read at random
 * (MADV_RANDOM on its pages), so that a page missing from the cache costs
 * that page, not a readahead window.
 */
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>
/* ZSTD_c_literalCompressionMode (below) is one of zstd's experimental
 * parameters: set through the stable ZSTD_CCtx_setParameter, which says
 * when a library does not know it (then it is not used). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "index.h"

/* Level 1: on news it compresses about 4% less than level 3 and takes
 * two thirds of the time, and compression is a sixth of indexing.  Its
 * match table cut to 2^12 entries (level 1 takes 2^13 for a 32 KiB
 * block): 15% faster on Reuters-21578 and UNGDC blocks, 2% less
 * compression (thread CPU, best of 7, zstd 1.5.4). */
#define SH_STORE_LEVEL 1
#define SH_STORE_HASHLOG 12
/* Matches of 6 bytes at least (level 1 takes 5 for blocks this small),
 * and zstd's fast strategy stepping ahead faster where it finds none
 * (targetLength, its "acceleration"), with the literals still
 * Huffman-coded (that strategy leaves them raw once targetLength is set,
 * a store 30% larger).  The step trades store size for build time, and
 * compression was a fifth of a one-thread Reuters-21578 build at 2, the
 * largest single part of it.  Compressing the 16 KiB blocks of
 * Reuters-21578 / 20 MB of UNGDC (zstd 1.5.4, best of 40 / 7 passes), and
 * decompressing them (best of 15):
 *   targetLength  2: 61.8 / 75.8 ms, 0.473 / 0.430 of the text, 16.4 us a block
 *                16: 30.6 / 40.8 ms, 0.575 / 0.525, 13.5 us
 *                32: 23.5 / 31.1 ms, 0.592 / 0.548, 11.7 us
 *                64: 21.2 ms, 0.596 (Reuters-21578)
 * Whole one-thread builds, the binaries alternated: 2 -> 16 took Reuters-
 * 21578 345 -> 284 ms (median of 15), 100 MB of generated news 1.95 ->
 * 1.63 s (median of 3) and 1 GB 26.0 -> 21.7 s (one run each), for
 * indexes 6-11% larger (Reuters-21578 17.7 -> 19.7 MB; FTS5's is 35 MB);
 * 16 -> 32 took Reuters-21578 309 -> 293 ms (median of 15), UNGDC 2.79 ->
 * 2.30 s (median of 5) and 100 MB 1.61 -> 1.56 s, for indexes 1-3% larger
 * (Reuters-21578 19.7 -> 20.2 MB, UNGDC 168.5 -> 173.7 MB).  The blocks
 * also decompress faster (above), which a hit's snippet gains.  Past 32
 * there is little left to gain. */
#define SH_STORE_MINMATCH 6
#define SH_STORE_TARGETLEN 32
/* A decompressed block larger than this is treated as damage. */
#define SH_STORE_MAX_BLOCK ((size_t)1 << 32)

static int flush_block(sh_storew *w) {
    if (w->raw.len == 0) return 0;
    if (!w->cctx) {
        w->cctx = ZSTD_createCCtx();
        if (!w->cctx) return SAHEL_ENOMEM;
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, SH_STORE_LEVEL);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_hashLog, SH_STORE_HASHLOG);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_minMatch, SH_STORE_MINMATCH);
        if (!ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_literalCompressionMode,
                                                 ZSTD_ps_enable)))
            ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_targetLength, SH_STORE_TARGETLEN);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
        ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
    }
    size_t bound = ZSTD_compressBound(w->raw.len);
    if (sh_buf_reserve(&w->store, bound)) return SAHEL_ENOMEM;
    size_t n = ZSTD_compress2(w->cctx, w->store.p + w->store.len, bound, w->raw.p, w->raw.len);
    if (ZSTD_isError(n)) return SAHEL_ENOMEM;
    if (sh_buf_put_u64(&w->index, w->drained + w->store.len) ||
        sh_buf_put_u32(&w->index, w->block_first) ||
        sh_buf_put_u32(&w->index, 0))
        return SAHEL_ENOMEM;
    w->store.len += n;
    w->raw.len = 0;
    w->block_first = w->ndocs;
    return 0;
}

int sh_store_record(sh_buf *out, const sahel_doc *doc) {
    const char *f[SH_STORE_NFIELDS] = {doc->id,  doc->title, doc->body, doc->date,
                                       doc->source, doc->url, doc->lang, doc->path};
    size_t l[SH_STORE_NFIELDS] = {doc->id_len,     doc->title_len, doc->body_len,
                                  doc->date_len,   doc->source_len, doc->url_len,
                                  doc->lang_len,   doc->path_len};
    for (int i = 0; i < SH_STORE_NFIELDS; i++) {
        size_t len = f[i] ? l[i] : 0;
        if (sh_buf_put_varint(out, len) || sh_buf_put(out, f[i], len)) return SAHEL_ENOMEM;
    }
    return sh_buf_put_varint(out, doc->line);
}

int sh_storew_add(sh_storew *w, const sahel_doc *doc, uint64_t *hash) {
    size_t start = w->raw.len;
    if (sh_store_record(&w->raw, doc)) return SAHEL_ENOMEM;
    if (hash) *hash = XXH3_64bits(w->raw.p + start, w->raw.len - start);
    w->ndocs++;
    if (w->raw.len >= SH_STORE_BLOCK) return flush_block(w);
    return 0;
}

int sh_storew_add_raw(sh_storew *w, const uint8_t *rec, size_t len) {
    if (sh_buf_put(&w->raw, rec, len)) return SAHEL_ENOMEM;
    w->ndocs++;
    if (w->raw.len >= SH_STORE_BLOCK) return flush_block(w);
    return 0;
}

int sh_storew_cut(sh_storew *w) { return flush_block(w); }

int sh_storew_finish(sh_storew *w) {
    int rc = flush_block(w);
    if (rc) return rc;
    if (sh_buf_put_u64(&w->index, w->drained + w->store.len) ||
        sh_buf_put_u32(&w->index, w->ndocs) ||
        sh_buf_put_u32(&w->index, 0))
        return SAHEL_ENOMEM;
    return 0;
}

int sh_store_write_none(sh_segw *sw, uint32_t ndocs, sahel_error *err) {
    uint8_t rec[SH_STOREREC] = {0};
    sh_store_u32(rec + 8, ndocs);
    int rc = sh_segw_section(sw, SH_SEC_STORE, NULL, 0, err);
    return rc ? rc : sh_segw_section(sw, SH_SEC_STOREIDX, rec, sizeof rec, err);
}

void sh_storew_free(sh_storew *w) {
    sh_buf_free(&w->raw);
    sh_buf_free(&w->store);
    sh_buf_free(&w->index);
    ZSTD_freeCCtx(w->cctx);
    memset(w, 0, sizeof *w);
}

/* What the store holds for the segment: the compressed blocks and their
 * index.  The open block's buffer is a fixed cost of at most a block and a
 * record, so it does not count against the memory budget. */
size_t sh_storew_memory(const sh_storew *w) { return w->store.cap + w->index.cap; }

/* ---- reading ------------------------------------------------------------ */

static int store_damaged(const sh_segment *seg, uint64_t off, const char *what,
                         sahel_error *err) {
    return sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged: document store %s (at byte %llu)",
                  seg->path, what, (unsigned long long)off);
}

/* Block blk into *out, with dctx when given (else a context made for the
 * call). */
static int load_block(const sh_segment *seg, uint32_t blk, ZSTD_DCtx *dctx, sh_buf *out,
                      sahel_error *err) {
    const sh_section *ix = &seg->sec[SH_SEC_STOREIDX], *st = &seg->sec[SH_SEC_STORE];
    const uint8_t *r = ix->p + (size_t)blk * SH_STOREREC;
    uint64_t a = sh_load_u64(r), b = sh_load_u64(r + SH_STOREREC);
    if (a > b || b > st->len) return store_damaged(seg, ix->off + (uint64_t)blk * SH_STOREREC,
                                                   "bad block offset", err);
    unsigned long long size = ZSTD_getFrameContentSize(st->p + a, b - a);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > SH_STORE_MAX_BLOCK)
        return store_damaged(seg, st->off + a, "bad frame header", err);
    out->len = 0;
    if (sh_buf_reserve(out, (size_t)size + 1))
        return sh_err(err, SAHEL_ENOMEM, "out of memory reading the document store");
    size_t n = dctx ? ZSTD_decompressDCtx(dctx, out->p, (size_t)size, st->p + a, b - a)
                    : ZSTD_decompress(out->p, (size_t)size, st->p + a, b - a);
    if (ZSTD_isError(n) || n != size) return store_damaged(seg, st->off + a, "frame does not decompress", err);
    out->len = n;
    return 0;
}

int sh_store_load_block(const sh_segment *seg, uint32_t blk, void **dctx, sh_buf *out,
                        sahel_error *err) {
    if (dctx && !*dctx && !(*dctx = ZSTD_createDCtx()))
        return sh_err(err, SAHEL_ENOMEM, "out of memory reading the document store");
    return load_block(seg, blk, dctx ? *dctx : NULL, out, err);
}

int sh_store_parse_record(const uint8_t **p, const uint8_t *end, sh_stored *out) {
    for (int i = 0; i < SH_STORE_NFIELDS; i++) {
        uint64_t len;
        if (sh_varint_get(p, end, &len) || len > (uint64_t)(end - *p)) return -1;
        out->f[i] = len ? (const char *)*p : NULL;
        out->len[i] = (size_t)len;
        *p += len;
    }
    return sh_varint_get(p, end, &out->line);
}

int sh_store_block_of(const sh_segment *seg, uint32_t doc, uint32_t *blk, uint32_t *first,
                      uint32_t *next, sahel_error *err) {
    const sh_section *ix = &seg->sec[SH_SEC_STOREIDX];
    uint32_t nblocks = (uint32_t)(ix->len / SH_STOREREC) - 1;
    if (doc >= seg->ndocs || nblocks == 0)
        return store_damaged(seg, ix->off, "asked for a missing document", err);
    /* last block whose first doc <= doc */
    uint32_t lo = 0, hi = nblocks;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (sh_load_u32(ix->p + (size_t)mid * SH_STOREREC + 8) <= doc)
            lo = mid;
        else
            hi = mid;
    }
    *blk = lo;
    *first = sh_load_u32(ix->p + (size_t)lo * SH_STOREREC + 8);
    *next = sh_load_u32(ix->p + (size_t)(lo + 1) * SH_STOREREC + 8);
    if (*first > doc || *next <= doc || *next > seg->ndocs)
        return store_damaged(seg, ix->off, "index does not cover the document", err);
    return 0;
}

/* Doc's record, parsed from the decompressed bytes of block blk, whose
 * first record is doc first's. */
static int walk_to(const sh_segment *seg, uint32_t blk, const sh_buf *block, uint32_t first,
                   uint32_t doc, sh_stored *out, sahel_error *err) {
    const uint8_t *p = block->p, *end = block->p + block->len;
    for (uint32_t d = first; d <= doc; d++)
        if (sh_store_parse_record(&p, end, out))
            return store_damaged(seg, seg->sec[SH_SEC_STOREIDX].off + (uint64_t)blk * SH_STOREREC,
                                 "bad record", err);
    return 0;
}

int sh_store_get(const sh_segment *seg, uint32_t doc, sh_buf *blockbuf, uint32_t *cached_block,
                 sh_stored *out, sahel_error *err) {
    uint32_t lo, first, next;
    int rc = sh_store_block_of(seg, doc, &lo, &first, &next, err);
    if (rc) return rc;
    if (*cached_block != lo) {
        *cached_block = UINT32_MAX;
        if ((rc = sh_store_load_block(seg, lo, NULL, blockbuf, err))) return rc;
        *cached_block = lo;
    }
    return walk_to(seg, lo, blockbuf, first, doc, out, err);
}

/* Tell the kernel that seg's store is read at random: a page missing from
 * the cache is then read alone, not with the readahead window around it
 * (128 KiB), which a one-shot search would read for every hit.  Advice
 * only: a failure changes nothing but speed. */
static void advise_random(const sh_segment *seg) {
    const sh_section *st = &seg->sec[SH_SEC_STORE];
    long page = sysconf(_SC_PAGESIZE);
    if (!seg->map || page <= 0 || !st->len || st->p < seg->map ||
        st->p + st->len > seg->map + seg->size)
        return;
    uintptr_t a = (uintptr_t)st->p & ~((uintptr_t)page - 1);
    (void)madvise((void *)a, (size_t)((uintptr_t)(st->p + st->len) - a), MADV_RANDOM);
}

int sh_store_read(sh_store_reader *r, const sh_segment *seg, uint32_t doc, sh_stored *out,
                  sahel_error *err) {
    uint32_t blk, first, next;
    int rc = sh_store_block_of(seg, doc, &blk, &first, &next, err);
    if (rc) return rc;
    if (r->advised != seg) {
        advise_random(seg);
        r->advised = seg;
    }
    if (r->seg != seg || r->blk != blk) {
        r->seg = NULL;
        if (!r->dctx && !(r->dctx = ZSTD_createDCtx()))
            return sh_err(err, SAHEL_ENOMEM, "out of memory reading the document store");
        if ((rc = load_block(seg, blk, r->dctx, &r->block, err))) return rc;
        r->seg = seg;
        r->blk = blk;
        r->first = first;
        r->next = next;
    }
    return walk_to(seg, blk, &r->block, first, doc, out, err);
}

void sh_store_reader_free(sh_store_reader *r) {
    if (!r) return;
    ZSTD_freeDCtx(r->dctx);
    sh_buf_free(&r->block);
    memset(r, 0, sizeof *r);
}

int sh_store_verify(const sh_segment *seg, sahel_error *err) {
    const sh_section *ix = &seg->sec[SH_SEC_STOREIDX];
    uint32_t nblocks = (uint32_t)(ix->len / SH_STOREREC) - 1;
    sh_buf buf = {0};
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) return sh_err(err, SAHEL_ENOMEM, "out of memory reading the document store");
    int rc = 0;
    uint32_t expect_first = 0;
    for (uint32_t b = 0; b < nblocks && !rc; b++) {
        uint32_t first = sh_load_u32(ix->p + (size_t)b * SH_STOREREC + 8);
        uint32_t next = sh_load_u32(ix->p + (size_t)(b + 1) * SH_STOREREC + 8);
        if (first != expect_first || next <= first || next > seg->ndocs) {
            rc = store_damaged(seg, ix->off + (uint64_t)b * SH_STOREREC, "bad block range", err);
            break;
        }
        if ((rc = load_block(seg, b, dctx, &buf, err))) break;
        const uint8_t *p = buf.p, *end = buf.p + buf.len;
        for (uint32_t d = first; d < next; d++) {
            sh_stored s;
            const uint8_t *rec = p;
            if (sh_store_parse_record(&p, end, &s)) {
                rc = store_damaged(seg, ix->off + (uint64_t)b * SH_STOREREC, "bad record", err);
                break;
            }
            uint64_t h = sh_load_u64(seg->sec[SH_SEC_DOCHASH].p + (size_t)d * 8);
            if (XXH3_64bits(rec, (size_t)(p - rec)) != h) {
                rc = store_damaged(seg, seg->sec[SH_SEC_DOCHASH].off + (uint64_t)d * 8,
                                   "record differs from its hash", err);
                break;
            }
        }
        if (!rc && p != end)
            rc = store_damaged(seg, ix->off + (uint64_t)b * SH_STOREREC, "trailing bytes in block", err);
        expect_first = next;
    }
    if (!rc && expect_first != seg->ndocs)
        rc = store_damaged(seg, ix->off, "blocks do not cover every document", err);
    sh_buf_free(&buf);
    ZSTD_freeDCtx(dctx);
    return rc;
}
