/*
 * index.h - the on-disk index: segment files, the manifest that names the
 * live ones, postings and the document store.  Only this stage touches
 * files.  The byte layout of every file is written out at the top of
 * segment.c (segments) and manifest.c (the manifest); the postings block
 * codec at the top of postings.c; the stored-document record in docstore.c.
 *
 * Sections by implementing file:
 *   postings.c   block codec (bit packing) and the postings cursor
 *   segment.c    segment file layout, writer side (sh_segw_*) and reader
 *   docstore.c   compressed stored articles
 *   manifest.c   the manifest, atomic replacement, directory helpers
 *   writer.c     sahel_writer: in-memory inversion, flush, commit
 *   reader.c     sahel_index: open a snapshot, global statistics, verify
 *   keysort.c    sorting terms and ids in memcmp order
 */
#ifndef SAHEL_INDEX_H
#define SAHEL_INDEX_H

#include "../analysis/analysis.h"
#include "../common/common.h"

/* The field's proven block size (Lucene, PISA): big enough for bit packing
 * to pay off, small enough for skipping to be fine-grained. */
#define SH_BLOCK 128

#define SH_NO_DOC UINT32_MAX

/* Segment sections, by id (the numbers are part of the format). */
enum {
    SH_SEC_META = 1,
    SH_SEC_TERMS = 2,
    SH_SEC_TERMIDX = 3,
    SH_SEC_POSTINGS = 4,
    SH_SEC_POSITIONS = 5,
    SH_SEC_DOCLENS = 6,
    SH_SEC_IDS = 7,
    SH_SEC_IDSORT = 8,
    SH_SEC_DOCHASH = 9,
    SH_SEC_STORE = 10,
    SH_SEC_STOREIDX = 11,
    SH_SEC_COUNT = 12 /* one past the last id */
};

#define SH_SEG_MAGIC "SAHLSEG1"
#define SH_SEG_END_MAGIC "SAHLEND1"
#define SH_SEG_VERSION 4u /* 2: eight-lane bit packing; 3: block impacts (postings.c);
                             4: packed DOCLENS */
#define SH_SEG_HEADER 16u
#define SH_SEG_FOOTER 32u
#define SH_SEC_ENTRY 32u
#define SH_TERMREC 24u  /* u64 post_off, u64 pos_off, u32 str_off, u32 df */
#define SH_SKIPREC 36u  /* see postings.c */
#define SH_STOREREC 16u /* u64 offset, u32 first_doc, u32 reserved */

/* ---- keysort.c ---------------------------------------------------------- */

/* A byte string to sort (a term, an article id): its first 8 bytes as a
 * big-endian number, zero-padded; the string; and what it stands for. */
typedef struct sh_strkey {
    uint64_t pre;
    const uint8_t *p;
    uint32_t len, idx;
} sh_strkey;

sh_strkey sh_strkey_make(const uint8_t *p, uint32_t len, uint32_t idx);
/* Sort keys in memcmp order of their strings (a string before the longer
 * ones it begins); equal strings in no particular order. */
void sh_strkeys_sort(sh_strkey *a, size_t n);
/* The same with quicksort allowed `depth` levels before a range is
 * heap-sorted (sh_strkeys_sort allows 2 log2 n); for tests, which reach
 * the heapsort with depth 0. */
void sh_strkeys_sort_depth(sh_strkey *a, size_t n, unsigned depth);

/* ---- postings.c --------------------------------------------------------- */

/* The segment's field lengths, for block metadata: per doc (indexed by
 * doc id) and their sums over its ndocs docs, as META records them (the
 * block impacts are taken at the segment's average lengths). */
typedef struct sh_lens {
    const uint32_t *lent, *lenb;
    uint32_t ndocs;
    uint64_t sum_lent, sum_lenb;
} sh_lens;

/* Block impacts (postings.c): the largest BM25F x of a block's docs at
 * b = SH_IMPACT_B, title weight SH_IMPACT_WT and the segment's average
 * lengths (sh_impact_avg of the sums and ndocs). */
#define SH_IMPACT_B 0.75
#define SH_IMPACT_WT 3.0
static inline double sh_impact_avg(uint64_t sum, uint32_t ndocs) {
    return ndocs && sum ? (double)sum / ndocs : 1.0;
}

/* Encode one term's postings (docs ascending) into `post` and `pos`.
 * tft/tfb: per-doc frequency in title / body; positions: for each doc its
 * tft title positions then its tfb body positions, each run ascending.
 * lens: the segment's field lengths, for block metadata. */
int sh_postings_encode(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                       const uint32_t *positions, size_t n, const sh_lens *lens, sh_buf *post,
                       sh_buf *pos);
/* The same with each doc's positions given as its encoded bytes (from a
 * segment, sh_postings_position_span): a merge copies them. */
int sh_postings_encode_spans(const uint32_t *docs, const uint32_t *tft, const uint32_t *tfb,
                             const uint8_t *const *span, const uint32_t *span_len, size_t n,
                             const sh_lens *lens, sh_buf *post, sh_buf *pos);

/* Bit packing of one block of exactly 128 values of `width` (0..32) bits
 * in the eight-lane layout of postings.c: SH_PACKED_BYTES(width) bytes,
 * written by pack and read, no more, by unpack.  _docs unpacks gaps and
 * returns doc ids: out[i] = out[i-1] + gap[i] + 1 with out[-1] = prev
 * (UINT32_MAX before a term's first doc), mod 2^32. */
#define SH_PACKED_BYTES(width) (16u * (width))
size_t sh_bitpack128(const uint32_t *in, unsigned width, uint8_t *out);
void sh_bitunpack128(const uint8_t *in, unsigned width, uint32_t *out);
void sh_bitunpack128_docs(const uint8_t *in, unsigned width, uint32_t prev, uint32_t *out);
unsigned sh_bits_needed(const uint32_t *v, size_t n);

/* The instruction set the unpack routines use: the best the CPU has
 * (AVX2 when present, else SSE4.1, which the build's x86-64-v2 baseline
 * guarantees), unless set otherwise.  sh_codec_set_isa is for tests and
 * benchmarks (all of one process's decoding follows it); it clamps to
 * what the CPU has (a negative value: the best) and returns the one in
 * force.  All give the same values from the same bytes. */
enum { SH_ISA_SCALAR = 0, SH_ISA_SSE41 = 1, SH_ISA_AVX2 = 2 };
int sh_codec_isa(void);
int sh_codec_set_isa(int isa);

typedef struct sh_segment sh_segment;

typedef struct sh_terminfo {
    uint32_t idx;      /* index in the segment's dictionary */
    uint32_t df;       /* documents holding the term in this segment */
    uint64_t post_off; /* into SH_SEC_POSTINGS */
    uint64_t post_len;
    uint64_t pos_off;  /* into SH_SEC_POSITIONS */
    uint64_t pos_len;
} sh_terminfo;

/* A cursor over one term's postings in one segment.  doc is SH_NO_DOC
 * before the first next() and after the end.  All decoding is bounds-
 * checked; damage is reported as SAHEL_ECORRUPT naming file and offset,
 * and stays: every later next/advance/positions reports it again.
 *
 * The held block's docs[0..n) are decoded on entering it; its tft/tfb
 * only when first asked for (tf_ready), through the accessors below.
 * Code that reads the tft/tfb arrays directly must call
 * sh_postings_load_tfs first, except for a term of one block (no skip
 * table), whose block is decoded whole. */
typedef struct sh_postings {
    const sh_segment *seg;
    sahel_error *err;
    sh_terminfo ti;
    const uint8_t *skip;   /* nblocks skip records, or NULL for one block */
    const uint8_t *data;   /* first block */
    const uint8_t *end;    /* end of this term's postings */
    const uint8_t *posbase;
    const uint8_t *posend;
    uint32_t nblocks;
    uint32_t block;        /* block held in docs/tft/tfb; UINT32_MAX = none,
                              nblocks = exhausted */
    uint32_t n;            /* docs in the held block (0: none held) */
    uint32_t i;            /* index of the current doc in the held block */
    uint32_t doc;
    uint32_t prev_last;    /* last doc of the block before the held one
                              (UINT32_MAX before the first) */
    const uint8_t *next_block; /* where the following block starts */
    /* positions of the held block: pos_p points at doc pos_i's positions */
    const uint8_t *pos_p;
    uint32_t pos_i;
    uint64_t block_pos_off;
    /* the held block's packed tfs, decoded into tft/tfb on first use */
    const uint8_t *tf_p;
    uint8_t wt, wb;
    uint8_t tf_ready;
    /* damage found (NULL: none), reported by every later call */
    const uint8_t *bad_at;
    const char *bad_what;
    /* the cursor ends before doc `hi` (SH_NO_DOC: at the list's end); cut:
     * the held block holds the list's last docs below hi, n counting
     * those only (a search of part of a segment, sh_postings_range) */
    uint32_t hi;
    uint8_t cut;
    uint32_t docs[SH_BLOCK], tft[SH_BLOCK], tfb[SH_BLOCK];
} sh_postings;

int sh_postings_init(sh_postings *pc, const sh_segment *seg, const sh_terminfo *ti,
                     sahel_error *err);
/* Limit a fresh cursor (initialised, not moved yet) to the docs in
 * [lo, hi) and move it to the first of them: a search split over the
 * cores gives each a range of a segment's docs.  The docs past the range
 * read as the list's end; the skip records (block bounds) still describe
 * whole blocks, which only loosens the bounds of the range's last block.
 * 0 or SAHEL_ECORRUPT. */
int sh_postings_range(sh_postings *pc, uint32_t lo, uint32_t hi);
/* The slow halves of next() and advance(), out of line: enter the next
 * block / the block holding the first doc >= target. */
int sh_postings_next_block(sh_postings *pc);
int sh_postings_advance_block(sh_postings *pc, uint32_t target);
/* Decode the held block's tfs (the accessors call it; damage found here
 * reads as tfs of 0 and is returned by the cursor's next call). */
void sh_postings_load_tfs(const sh_postings *pc);

/* The first k in [i, n) with docs[k] >= target, given docs ascending and
 * docs[n - 1] >= target: the next eight docs below the target are
 * counted, a compare each and no branch on any (the short steps of an
 * intersection or of MaxScore's probes; trying them in turn, four then,
 * mispredicted where the stop fell), then a binary search whose steps are
 * conditional moves, not branches. */
static inline uint32_t sh_postings_seek_in_block(const uint32_t *docs, uint32_t i, uint32_t n,
                                                 uint32_t target) {
    if (n - i >= 8) {
        uint32_t below = 0;
#pragma GCC unroll 8
        for (uint32_t k = 0; k < 8; k++) below += docs[i + k] < target;
        if (below < 8) return i + below;
        i += 8;
    }
    const uint32_t *base = docs + i;
    uint32_t len = n - i;
    while (len > 1) {
        uint32_t half = len / 2;
        base = base[half] < target ? base + half : base;
        len -= half;
    }
    return (uint32_t)(base - docs) + (*base < target);
}

/* Move to the next doc (doc = SH_NO_DOC at the end).  0 or SAHEL_ECORRUPT. */
static inline int sh_postings_next(sh_postings *pc) {
    if (SH_LIKELY(pc->i + 1 < pc->n)) {
        pc->doc = pc->docs[++pc->i];
        return 0;
    }
    return sh_postings_next_block(pc);
}

/* Move to the first doc >= target (never backwards), using the skip
 * records.  0 or SAHEL_ECORRUPT. */
static inline int sh_postings_advance(sh_postings *pc, uint32_t target) {
    if (pc->n) {
        if (pc->doc >= target) return 0;
        if (pc->docs[pc->n - 1] >= target) {
            pc->i = sh_postings_seek_in_block(pc->docs, pc->i + 1, pc->n, target);
            pc->doc = pc->docs[pc->i];
            return 0;
        }
    }
    return sh_postings_advance_block(pc, target);
}

static inline uint32_t sh_postings_tft(const sh_postings *pc) {
    if (SH_UNLIKELY(!pc->tf_ready)) sh_postings_load_tfs(pc);
    return pc->tft[pc->i];
}
static inline uint32_t sh_postings_tfb(const sh_postings *pc) {
    if (SH_UNLIKELY(!pc->tf_ready)) sh_postings_load_tfs(pc);
    return pc->tfb[pc->i];
}
/* Positions of the current doc: title ones into t[0..tft), body into
 * b[0..tfb) (callers size the arrays from the tfs). */
int sh_postings_positions(sh_postings *pc, uint32_t *t, uint32_t *b);
/* A run of n positions as the positions section holds them (LEB128
 * varints: the first absolute, then differences) into out[0, n), when
 * the run cannot pass end at 5 bytes a varint (end - p >= 5n): the end of
 * the run, or NULL for a varint longer than 5 bytes or a position beyond
 * 32 bits (a caller's checked decoder then judges the run). */
const uint8_t *sh_read_gaps(const uint8_t *p, const uint8_t *end, uint32_t n, uint32_t *out);
/* sh_read_gaps into an out with room for n + SH_GAPS_PAD values (eight
 * are stored at a time, the last few too; what lies past out[n - 1] is
 * then unspecified), for any end: nothing past it is read, and a run that
 * does not fit gives NULL.  Runs of many values, a whole window of docs
 * (search.c), go about twice as fast: its steps do not wait on each
 * other (postings.c). */
#define SH_GAPS_PAD 8u
const uint8_t *sh_read_gaps_padded(const uint8_t *p, const uint8_t *end, uint32_t n,
                                   uint32_t *out);
/* Step over n LEB128 varints in [p, end): each ends at its one byte
 * below 0x80, so the ends are counted, many bytes at a time, and nothing
 * is decoded.  Where they end, or NULL when the input ends first. */
const uint8_t *sh_skip_varints(const uint8_t *p, const uint8_t *end, uint64_t n);
/* The current doc's positions as they are encoded: *p points into the
 * segment, *len bytes, checked to hold tft + tfb varints inside the term's
 * positions (their values are not decoded). */
int sh_postings_position_span(sh_postings *pc, const uint8_t **p, size_t *len);

/* Block-max support, from the skip table alone (nothing is decoded and
 * the cursor does not move).  find_block: the first block >= from whose
 * last doc is >= target, nblocks when there is none (a shallow advance:
 * advance(target) would land in that block).  block_last: its last doc.
 * block_bound: the bounds of any BM25F score in it, as in the skip record.
 * A term of one block has no skip table: its block is 0, and its last doc
 * and bounds come from the held block once next() or advance() has loaded
 * it (before that, block_last is SH_NO_DOC and the bound is empty). */
typedef struct sh_block_bound {
    uint32_t max_tft, max_tfb, min_lent, min_lenb;
    double max_x; /* the block impact (postings.c); HUGE_VAL: none known */
} sh_block_bound;
uint32_t sh_postings_find_block(const sh_postings *pc, uint32_t from, uint32_t target);
uint32_t sh_postings_block_last(const sh_postings *pc, uint32_t blk);
void sh_postings_block_bound(const sh_postings *pc, uint32_t blk, sh_block_bound *out);
/* The block impact of skip record rec (HUGE_VAL when it is damaged). */
double sh_postings_impact(const uint8_t *rec);

/* The docs two cursors' lists share, a block at a time (SIMD compares,
 * whole blocks skipped): appends them ascending to out, at most cap, and
 * sets *nout.  Starts cursors not yet started.  It stops when a list ends
 * (a cursor's doc is SH_NO_DOC) or when out has fewer than
 * SH_POSTINGS_AND_ROOM slots left (cap must be at least that), leaving
 * both cursors on docs not yet compared: every shared doc below
 * min(a->doc, b->doc) has been written, none at or above it.  0 or
 * SAHEL_ECORRUPT (then *nout docs were found before the damage). */
#define SH_POSTINGS_AND_ROOM (SH_BLOCK + 4)
int sh_postings_intersect(sh_postings *a, sh_postings *b, uint32_t *out, size_t cap,
                          size_t *nout);
/* The values two strictly ascending arrays share, into out ascending (the
 * SIMD compares sh_postings_intersect runs on a block); returns how many.
 * out needs min(na, nb) + 4 slots: the SIMD paths store four at a time
 * past the last match.  Arrays that only never descend (a value may
 * repeat) work too: every value they share is written at least once,
 * still ascending, and out then needs na + nb + 4 slots (a block of one
 * is compared again with each block of the other it overlaps). */
size_t sh_intersect_sorted(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                           uint32_t *out);

/* ---- segment.c ---------------------------------------------------------- */

typedef struct sh_section {
    const uint8_t *p;
    uint64_t off, len, sum;
} sh_section;

struct sh_segment {
    char *path;           /* full path, for messages */
    char *name;           /* file name within the index directory */
    uint8_t *map;
    size_t size;
    sh_section sec[SH_SEC_COUNT];
    uint32_t ndocs;
    uint32_t nterms;
    uint64_t sum_len_title, sum_len_body, ntokens;
    char lang[32];
    /* reader side: the deletion bitmap in force (NULL: none) */
    uint8_t *deleted;
    uint32_t ndeleted;
};

/* Map and check a segment file: magic, version, footer and section-table
 * checksums, every section inside the file, the sizes of the fixed-width
 * sections, the checksums of META and DOCLENS, and every checksum when the
 * file is at most 8 MiB.  sh_segment_verify checks everything. */
int sh_segment_open(const char *dir, const char *name, sh_segment *seg, sahel_error *err);
void sh_segment_close(sh_segment *seg);
/* Drop the mapped pages from the resident set (they come back from the
 * page cache when read again): for merges that read a segment once. */
void sh_segment_release(const sh_segment *seg);
int sh_segment_verify(const sh_segment *seg, sahel_error *err);

/* Dictionary: 1 and *ti when found, 0 when not. */
int sh_segment_lookup(const sh_segment *seg, const char *term, size_t len, sh_terminfo *ti,
                      sahel_error *err);
/* Term number idx (< nterms): its bytes and info. */
int sh_segment_term(const sh_segment *seg, uint32_t idx, const char **term, size_t *len,
                    sh_terminfo *ti, sahel_error *err);
/* First term index >= key (nterms when none). */
uint32_t sh_segment_lower_bound(const sh_segment *seg, const char *key, size_t len);

/* DOCLENS (format 4): the title and body lengths of the articles, in
 * blocks of SH_LENS_BLOCK, each field frame-of-reference bit-packed.  The
 * section is nb = ceil(ndocs / 128) headers of SH_LENS_HDR bytes
 *   u32 title base, u32 body base, u32 data offset in 16-byte units,
 *   u8 title bits wt, u8 body bits wb (both <= 32), u16 zero,
 * then the blocks' data, each 128 title values of wt bits then 128 body
 * values of wb bits, least significant bit first (16 (wt + wb) bytes),
 * then 8 zero bytes, so that any value is one unaligned 8-byte load.  A
 * length is its base plus its packed value.  Scoring reads one length per
 * candidate at random: packed, a 1.2 million article segment's lengths are
 * 2-3 MB instead of 9.4, and a one-shot search maps a quarter of the
 * pages.  sh_segment_open checks every header (sh_doclens_check), so
 * these readers never leave the section. */
#define SH_LENS_BLOCK 128u
#define SH_LENS_HDR 16u
#define SH_LENS_PAD 8u

static inline uint32_t sh_lens_value(const uint8_t *data, uint32_t i, unsigned w) {
    uint64_t bit = (uint64_t)i * w;
    uint64_t v = sh_load_u64(data + (bit >> 3)) >> (bit & 7);
    return (uint32_t)(v & (((uint64_t)1 << w) - 1));
}
/* The header of doc's block and the start of its data. */
static inline const uint8_t *sh_lens_block(const sh_segment *seg, uint32_t doc,
                                           const uint8_t **data) {
    const uint8_t *p = seg->sec[SH_SEC_DOCLENS].p;
    const uint8_t *h = p + (size_t)(doc / SH_LENS_BLOCK) * SH_LENS_HDR;
    size_t nb = ((size_t)seg->ndocs + SH_LENS_BLOCK - 1) / SH_LENS_BLOCK;
    *data = p + nb * SH_LENS_HDR + (size_t)sh_load_u32(h + 8) * 16;
    return h;
}
static inline uint32_t sh_segment_len_title(const sh_segment *seg, uint32_t doc) {
    const uint8_t *d, *h = sh_lens_block(seg, doc, &d);
    return sh_load_u32(h) + sh_lens_value(d, doc % SH_LENS_BLOCK, h[12]);
}
static inline uint32_t sh_segment_len_body(const sh_segment *seg, uint32_t doc) {
    const uint8_t *d, *h = sh_lens_block(seg, doc, &d);
    return sh_load_u32(h + 4) + sh_lens_value(d + (size_t)h[12] * 16, doc % SH_LENS_BLOCK, h[13]);
}
/* Ask for doc's lengths ahead of their use: on a large index they are a
 * cache miss each, and a caller with a list of candidates can overlap
 * them (the headers, 16 bytes a 128 docs, stay in cache). */
static inline void sh_segment_lens_prefetch(const sh_segment *seg, uint32_t doc) {
    if (doc >= seg->ndocs) return;
    const uint8_t *d, *h = sh_lens_block(seg, doc, &d);
    uint32_t i = doc % SH_LENS_BLOCK;
    __builtin_prefetch(d + ((size_t)i * h[12] >> 3));
    __builtin_prefetch(d + (size_t)h[12] * 16 + ((size_t)i * h[13] >> 3));
}
/* Append the DOCLENS section of n articles to out. */
int sh_doclens_encode(const uint32_t *lent, const uint32_t *lenb, uint32_t n, sh_buf *out);
/* 0 when p[0..len) is a well-formed DOCLENS section for ndocs articles:
 * header count, widths, offsets in sequence, exact length. */
int sh_doclens_check(const uint8_t *p, uint64_t len, uint32_t ndocs);
int sh_segment_doc_id(const sh_segment *seg, uint32_t doc, const char **id, size_t *len,
                      sahel_error *err);

/* Building a segment file: sections are appended one by one. */
typedef struct sh_segw {
    int fd;
    char *tmp_path, *final_path;
    uint64_t off, sec_start;
    uint32_t nsec;
    int no_sync; /* finish without fsync: the caller syncs it before it is
                    named by a manifest (sh_fsync_file), or never names it */
    uint64_t written_back; /* bytes handed to the disk so far (segment.c) */
    uint32_t nreserved;    /* sections reserved (sh_spill_reserve) and not yet complete */
    void *hash; /* XXH3_state_t of the section being written */
    uint8_t table[SH_SEC_COUNT * SH_SEC_ENTRY];
} sh_segw;

int sh_segw_open(sh_segw *w, const char *dir, const char *name, sahel_error *err);
/* A file begun with no_sync that turns out to be kept: it will be fsynced
 * at its end, and what it holds so far goes to the disk now, without
 * waiting, so that the final fsync waits for the rest only. */
void sh_segw_will_sync(sh_segw *w);
int sh_segw_section(sh_segw *w, uint32_t id, const void *data, size_t len, sahel_error *err);
/* The same in pieces, for sections too large to hold in memory. */
int sh_segw_begin(sh_segw *w, uint32_t id, sahel_error *err);
int sh_segw_append(sh_segw *w, const void *data, size_t len, sahel_error *err);
void sh_segw_end(sh_segw *w);

/* A spill: a stream of bytes too large to hold in memory, kept in a
 * temporary file of the index directory (unlinked at once; its name,
 * "<segment>-tK.sseg.tmp", is one a commit cleans up should the process
 * die before the unlink), then copied in as one section. */
#define SH_SPILL_CHUNK ((size_t)256 << 10)
typedef struct sh_spill {
    int fd;
    sh_buf buf;
    uint64_t total; /* bytes put so far */
    char *path;     /* for messages */
    /* a stream whose length is known before it starts (sh_spill_reserve)
     * goes straight to its section's room in the segment file */
    sh_segw *seg;
    uint64_t at, room, written;
    uint32_t entry; /* its row of seg's section table */
    void *hash;     /* XXH3_state_t of its bytes so far */
} sh_spill;
int sh_spill_open(sh_spill *s, const char *dir, const char *segname, int k, sahel_error *err);
/* A stream of exactly len bytes that will be section `id` of w: its room
 * is reserved where w's file is now (the next sections come after it),
 * its bytes are written there as they are put, and sh_spill_copy (to w,
 * id) ends it, checking it got len bytes.  A positions section is as
 * long as the runs it copies: written once, not spilled and copied. */
int sh_spill_reserve(sh_spill *s, sh_segw *w, uint32_t id, uint64_t len, sahel_error *err);
int sh_spill_put(sh_spill *s, const void *data, size_t len, sahel_error *err);
int sh_spill_copy(sh_spill *s, sh_segw *w, uint32_t id, sahel_error *err);
/* The whole stream appended to the section being written. */
int sh_spill_append(sh_spill *s, sh_segw *w, sahel_error *err);
/* Reading a stream back: from its start, then exactly len bytes a time
 * (a spill is written or read, not both at once). */
int sh_spill_rewind(sh_spill *s, sahel_error *err);
int sh_spill_read(sh_spill *s, void *out, size_t len, sahel_error *err);
void sh_spill_close(sh_spill *s); /* also fine on a zeroed one with fd -1 */
/* Footer, fsync, rename into place. */
int sh_segw_finish(sh_segw *w, sahel_error *err);
void sh_segw_abort(sh_segw *w);

/* ---- docstore.c --------------------------------------------------------- */

/* Stored fields of one article, in record order. */
enum {
    SH_STORE_ID,
    SH_STORE_TITLE,
    SH_STORE_BODY,
    SH_STORE_DATE,
    SH_STORE_SOURCE,
    SH_STORE_URL,
    SH_STORE_LANG,
    SH_STORE_PATH,
    SH_STORE_NFIELDS
};

typedef struct sh_stored {
    const char *f[SH_STORE_NFIELDS];
    size_t len[SH_STORE_NFIELDS];
    uint64_t line;
} sh_stored;

/* Writer side: records gathered into blocks of about SH_STORE_BLOCK bytes,
 * each block one zstd frame with its content checksum (docstore.c says
 * why 16 KiB). */
#define SH_STORE_BLOCK (16u * 1024u)

typedef struct sh_storew {
    sh_buf raw;   /* records of the open block */
    sh_buf store; /* compressed frames */
    sh_buf index; /* SH_STOREREC per block (+ sentinel at finish) */
    uint32_t ndocs, block_first;
    void *cctx;   /* ZSTD_CCtx */
    /* bytes of frames the caller took out of `store` and wrote (then
     * emptied `store`): the index's offsets count them */
    uint64_t drained;
} sh_storew;

int sh_storew_add(sh_storew *w, const sahel_doc *doc, uint64_t *hash); /* hash: XXH3 of the record */
/* Append doc's record (the layout in docstore.c) to out. */
int sh_store_record(sh_buf *out, const sahel_doc *doc);
int sh_storew_finish(sh_storew *w); /* closes the last block, adds the sentinel */
/* STORE and STOREIDX of a segment of ndocs articles stored elsewhere (a
 * one-thread build's flushes, whose store its final segment holds): an
 * empty STORE and a STOREIDX of its sentinel only.  Such a segment is
 * merged, never committed. */
int sh_store_write_none(sh_segw *sw, uint32_t ndocs, sahel_error *err);
/* A record already in the layout of docstore.c (from another segment). */
int sh_storew_add_raw(sh_storew *w, const uint8_t *rec, size_t len);
/* Close the open block now: the next record starts a new one. */
int sh_storew_cut(sh_storew *w);
void sh_storew_free(sh_storew *w);
size_t sh_storew_memory(const sh_storew *w);

/* Reader side: load doc's record.  The block is decompressed into *blockbuf
 * (reused between calls); out's strings point into it. */
int sh_store_get(const sh_segment *seg, uint32_t doc, sh_buf *blockbuf, uint32_t *cached_block,
                 sh_stored *out, sahel_error *err);
int sh_store_verify(const sh_segment *seg, sahel_error *err);
/* Block blk decompressed into *out; the records in it, one at a time (0,
 * or -1 when the bytes are not a record).  dctx (may be NULL: a context
 * for this call only) holds a ZSTD_DCtx made on first use, for the caller
 * to free with ZSTD_freeDCtx. */
int sh_store_load_block(const sh_segment *seg, uint32_t blk, void **dctx, sh_buf *out,
                        sahel_error *err);
/* The block holding doc: its number and its docs [*first, *next). */
int sh_store_block_of(const sh_segment *seg, uint32_t doc, uint32_t *blk, uint32_t *first,
                      uint32_t *next, sahel_error *err);
int sh_store_parse_record(const uint8_t **p, const uint8_t *end, sh_stored *out);

/* A reader of records for a page of hits: one zstd context for every
 * block it decompresses, and the last block kept, so that the records of
 * one block cost one decompression.  Zero-initialise it; it may read from
 * any segment of one open index, and must be freed before that index is
 * closed (it tells blocks apart by segment address). */
typedef struct sh_store_reader {
    void *dctx;            /* ZSTD_DCtx, made on the first read */
    sh_buf block;          /* the block held, decompressed */
    const sh_segment *seg; /* its segment; NULL when none is held */
    uint32_t blk;          /* its number ... */
    uint32_t first, next;  /* ... and its docs [first, next) */
    const sh_segment *advised; /* the last segment told of random reads */
} sh_store_reader;
/* Doc's record; out's strings point into r and stay valid until r's next
 * read or free.  0, SAHEL_ECORRUPT naming the file, or SAHEL_ENOMEM. */
int sh_store_read(sh_store_reader *r, const sh_segment *seg, uint32_t doc, sh_stored *out,
                  sahel_error *err);
void sh_store_reader_free(sh_store_reader *r); /* accepts NULL */

/* ---- manifest.c --------------------------------------------------------- */

#define SH_MANIFEST "MANIFEST"
#define SH_MANIFEST_MAGIC "SAHLMAN1"
#define SH_MANIFEST_VERSION 1u

typedef struct sh_manifest_seg {
    char *name;
    uint32_t ndocs;
    uint64_t del_gen;  /* generation of its deletion bitmap; 0: none */
    uint32_t ndeleted;
} sh_manifest_seg;

typedef struct sh_manifest {
    uint64_t generation;
    uint64_t sources_gen; /* 0: no sources table */
    char lang[32];
    sh_manifest_seg *segs;
    size_t nsegs;
} sh_manifest;

/* SAHEL_ENOTINDEX when dir or its manifest is missing. */
int sh_manifest_read(const char *dir, sh_manifest *m, sahel_error *err);
/* Write MANIFEST.tmp, fsync, rename over MANIFEST, fsync the directory.
 * *renamed (may be NULL) is set once the rename is done: from then on the
 * new manifest is what readers see, even if the last fsync fails. */
int sh_manifest_write(const char *dir, const sh_manifest *m, int *renamed, sahel_error *err);
void sh_manifest_free(sh_manifest *m);

char *sh_path_join(const char *dir, const char *name);
int sh_fsync_dir(const char *dir, sahel_error *err);
/* fsync a file of dir that was written without it. */
int sh_fsync_file(const char *dir, const char *name, sahel_error *err);
/* Write name.tmp in dir, fsync, rename to name (the directory is fsynced
 * by the commit that follows). */
int sh_write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                         sahel_error *err);
/* Read a whole file: exactly `want` bytes, or when want is SIZE_MAX any
 * size up to `max`.  A missing file is SAHEL_ECORRUPT (an index file the
 * manifest names). */
int sh_read_file(const char *path, size_t want, size_t max, uint8_t **out, size_t *len,
                 sahel_error *err);

/* ---- lock.c ------------------------------------------------------------- */

#define SH_LOCK_FILE "LOCK"
/* SAHEL_ELOCKED "locked by pid N" when another live writer holds it.
 * *stale_pid (may be NULL): the pid of a dead writer whose lock was taken
 * over, else 0. */
int sh_lock_acquire(const char *dir, int *fd, int *stale_pid, sahel_error *err);
void sh_lock_release(int fd);

/* ---- deletes.c ---------------------------------------------------------- */

void sh_del_name(char *out, size_t cap, const char *segname, uint64_t gen);
uint32_t sh_bitmap_count(const uint8_t *bits, uint32_t ndocs);
int sh_del_write(const char *dir, const char *segname, uint64_t gen, const uint8_t *bits,
                 uint32_t ndocs, sahel_error *err);
/* *bits: a new heap bitmap of ceil(ndocs / 8) bytes. */
int sh_del_read(const char *dir, const char *segname, uint64_t gen, uint32_t ndocs,
                uint8_t **bits, uint32_t *ndeleted, sahel_error *err);
static inline int sh_bit_get(const uint8_t *bits, uint32_t d) {
    return bits && (bits[d >> 3] >> (d & 7)) & 1;
}
static inline void sh_bit_set(uint8_t *bits, uint32_t d) { bits[d >> 3] |= (uint8_t)(1u << (d & 7)); }

/* ---- sources.c ---------------------------------------------------------- */

typedef struct sh_srcent {
    const char *path;
    uint32_t path_len;
    uint32_t nids;
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino;
    const uint8_t *ids; /* nids records: u16 length, bytes */
    size_t ids_len;
} sh_srcent;

typedef struct sh_srctab {
    uint8_t *data; /* the file's bytes; entries point into it */
    sh_srcent *e;  /* sorted by path */
    size_t n;
} sh_srctab;

int sh_srctab_read(const char *dir, uint64_t gen, sh_srctab *t, sahel_error *err);
void sh_srctab_free(sh_srctab *t);
sh_srcent *sh_srctab_find(const sh_srctab *t, const char *path, size_t len);
int sh_srcent_cmp(const sh_srcent *e, const char *path, size_t len);
/* Sorts e in place, then writes sources-<gen>.ssrc. */
int sh_srctab_write(const char *dir, uint64_t gen, sh_srcent *e, size_t n, sahel_error *err);

/* ---- writer.c: what ingest tells the writer about source files --------- */

/* A SOURCE as given (trailing slashes removed) is about to be read. */
int sh_writer_source_root(sahel_writer *w, const char *path, size_t len, sahel_error *err);
/* The file `path` (below the current root) is next: 1 when it is as
 * recorded (size, time, inode) and need not be read, 0 when it must be. */
int sh_writer_source_begin(sahel_writer *w, const char *path, uint64_t size, int64_t mtime_ns,
                           uint64_t ino, sahel_error *err);
/* The file was read (ok = 1) or could not be (0: its articles are kept). */
void sh_writer_source_end(sahel_writer *w, int ok);

/* ---- merge.c ----------------------------------------------------------- */

/* A source of a merge: a segment, and per doc its number in the output
 * (SH_NO_DOC: dropped).  Kept docs take the numbers 0..ndocs-1 once each,
 * ascending within a source. */
typedef struct sh_merge_src {
    const sh_segment *seg;
    const uint32_t *newdoc;
} sh_merge_src;

#define SH_MERGE_MAX_SOURCES 64
/* Write segment `name` in dir from up to SH_MERGE_MAX_SOURCES sources,
 * without re-analysing anything, on up to `threads` threads (each merges
 * a range of the dictionary; the file is the same whatever their number);
 * *nterms (may be NULL): its dictionary size. */
int sh_merge_write(const char *dir, const char *name, const sh_merge_src *src, size_t nsrc,
                   uint32_t ndocs, const char *lang, unsigned threads, uint64_t *nterms,
                   sahel_error *err);
/* Where a merge's stored articles come from, when not from its sources'
 * STORE sections (a one-thread build writes its store once, to the file
 * its final segment becomes, and its flushes hold none):
 *   - storeless: the sources hold no stored articles; nor does the output
 *     (an empty STORE, a STOREIDX of its sentinel only), unless
 *   - sw: the output goes on in this open file, whose STORE section is
 *     written and ended (no other section yet), with STOREIDX these bytes
 *     (its sentinel included, ndocs documents).  The call finishes or
 *     aborts sw, whatever its result. */
typedef struct sh_merge_out {
    int storeless;
    sh_segw *sw;
    const uint8_t *storeidx;
    size_t storeidx_len;
} sh_merge_out;
/* sh_merge_write, with out (NULL: as sh_merge_write). */
int sh_merge_write_out(const char *dir, const char *name, const sh_merge_src *src, size_t nsrc,
                       uint32_t ndocs, const char *lang, unsigned threads, const sh_merge_out *out,
                       uint64_t *nterms, sahel_error *err);
/* Sources holding fewer postings and positions bytes than this are merged
 * on one thread (1 MiB; tests set it lower). */
extern uint64_t sh_merge_split_min;
/* A term whose merge needs more than this (8 MiB) is merged by one
 * thread at a time, so that threads do not hold big terms together. */
extern uint64_t sh_merge_big_term;

/* ---- reader.c ----------------------------------------------------------- */

/* The live doc of segment `seg` whose id is `id`: 1 and *doc, or 0. */
int sh_segment_find_id(const sh_segment *seg, const char *id, size_t len, uint32_t *doc,
                       sahel_error *err);

struct sahel_index {
    char *dir;
    sh_manifest man;
    sh_segment *segs;
    size_t nsegs;
    uint64_t ndocs;    /* documents in the segments, deleted ones included:
                          the N of BM25 until a merge purges them, as in Lucene */
    uint64_t ndeleted;
    uint64_t sum_len_title, sum_len_body;
    uint64_t nterms, bytes;
    sh_analyzer *analyzer;
};

#endif /* SAHEL_INDEX_H */
