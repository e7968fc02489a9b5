/*
 * segment.c - the segment file: an immutable, self-checking container of
 * sections, written once (sh_segw_*) and read through mmap (sh_segment_*).
 *
 * File layout (all integers little-endian):
 *
 *   0      header, 16 bytes
 *            u8[8]  magic "SAHLSEG1"
 *            u32    format version (4, SH_SEG_VERSION)
 *            u32    flags (0)
 *   16     sections, each starting at a multiple of 8 (zero padding), in
 *          any order (a build writes them by id; a merge streams the
 *          postings first)
 *   T      section table: one 32-byte entry per section, by id
 *            u32    section id (SH_SEC_*)
 *            u32    reserved (0)
 *            u64    offset of the section in the file
 *            u64    length in bytes
 *            u64    XXH3_64bits of the section's bytes
 *   T+32n  footer, 32 bytes
 *            u64    T, the table's offset
 *            u32    n, number of sections
 *            u32    format version (4, SH_SEG_VERSION)
 *            u64    XXH3_64bits of the table and of the footer's first 16 bytes
 *            u8[8]  magic "SAHLEND1"
 *
 * Sections (ids are part of the format; ndocs and nterms come from META):
 *
 *   1  META       64 bytes: u32 ndocs, u32 nterms, u64 sum of title lengths,
 *                 u64 sum of body lengths, u64 tokens indexed, u8[32]
 *                 analysis language (NUL padded)
 *   2  TERMS      the terms' bytes, sorted (memcmp order), concatenated
 *   3  TERMIDX    nterms + 1 records of 24 bytes: u64 post_off, u64 pos_off,
 *                 u32 str_off, u32 df.  Record i+1's offsets end term i's
 *                 ranges; the last record is a sentinel holding the three
 *                 section lengths and df 0.
 *   4  POSTINGS   per term, see postings.c
 *   5  POSITIONS  per term, see postings.c
 *   6  DOCLENS    title and body lengths (tokens), bit-packed by 128 (index.h)
 *   7  IDS        u32 offsets[ndocs + 1] into the bytes that follow them:
 *                 the article ids by doc number
 *   8  IDSORT     ndocs u32 doc numbers, ordered by id (memcmp order)
 *   9  DOCHASH    ndocs u64: XXH3_64bits of each article's stored record,
 *                 so that an update can tell changed articles apart
 *   10 STORE      zstd frames, see docstore.c
 *   11 STOREIDX   nblocks + 1 records of 16 bytes: u64 frame offset, u32
 *                 first doc of the block, u32 reserved; the last record is
 *                 a sentinel (STORE length, ndocs)
 *
 * Reading: sh_segment_open checks the header, footer, table checksum, that
 * every section lies inside the file, the exact sizes of the fixed-width
 * sections, and the checksum of META and of DOCLENS (up to 1 MiB); a segment file of at most
 * SH_VERIFY_ON_OPEN bytes has all its checksums checked.  Dictionary records and id
 * offsets are checked when they are read.  sh_segment_verify checks
 * everything, stream by stream.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

/* Small indexes are verified whole at open: it costs well under a
 * millisecond at this size and turns any damage into an error at once. */
#define SH_VERIFY_ON_OPEN (8u << 20)

#define META_LEN 64u

/* ---- writing ------------------------------------------------------------ */

/* Checksum of the section table and the footer's first 16 bytes. */
static uint64_t table_sum(const uint8_t *table, size_t tlen, const uint8_t *foot) {
    uint8_t buf[SH_SEC_COUNT * SH_SEC_ENTRY + 16];
    memcpy(buf, table, tlen); /* tlen <= SH_SEC_COUNT entries, checked by callers */
    memcpy(buf + tlen, foot, 16);
    return XXH3_64bits(buf, tlen + 16);
}

static int write_all(int fd, const void *data, size_t len, const char *path,
                     sahel_error *err) {
    const uint8_t *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot write", path);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sh_segw_open(sh_segw *w, const char *dir, const char *name, sahel_error *err) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->final_path = sh_path_join(dir, name);
    size_t n = w->final_path ? strlen(w->final_path) : 0;
    w->tmp_path = w->final_path ? sh_malloc(n + 5) : NULL;
    if (!w->tmp_path) {
        sh_segw_abort(w);
        return sh_err(err, SAHEL_ENOMEM, "out of memory opening segment %s", name);
    }
    memcpy(w->tmp_path, w->final_path, n);
    memcpy(w->tmp_path + n, ".tmp", 5);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot create", w->tmp_path);
        sh_segw_abort(w);
        return rc;
    }
    uint8_t hdr[SH_SEG_HEADER] = {0};
    memcpy(hdr, SH_SEG_MAGIC, 8);
    sh_store_u32(hdr + 8, SH_SEG_VERSION);
    int rc = write_all(w->fd, hdr, sizeof hdr, w->tmp_path, err);
    if (rc) {
        sh_segw_abort(w);
        return rc;
    }
    w->off = SH_SEG_HEADER;
    return 0;
}

static int pad8(sh_segw *w, sahel_error *err) {
    static const uint8_t zeros[8];
    size_t pad = (8 - (w->off & 7)) & 7;
    if (!pad) return 0;
    w->off += pad;
    return write_all(w->fd, zeros, pad, w->tmp_path, err);
}

/* A section written in pieces: begin, append any number of times, end.
 * The checksum is computed as the bytes go by. */
int sh_segw_begin(sh_segw *w, uint32_t id, sahel_error *err) {
    if (w->nsec >= SH_SEC_COUNT) return sh_err(err, SAHEL_EINVAL, "%s: too many sections", w->tmp_path);
    int rc = pad8(w, err);
    if (rc) return rc;
    if (!w->hash && !(w->hash = XXH3_createState()))
        return sh_err(err, SAHEL_ENOMEM, "out of memory writing %s", w->tmp_path);
    XXH3_64bits_reset(w->hash);
    uint8_t *e = w->table + (size_t)w->nsec * SH_SEC_ENTRY;
    sh_store_u32(e, id);
    sh_store_u32(e + 4, 0);
    sh_store_u64(e + 8, w->off);
    w->sec_start = w->off;
    return 0;
}

/* A file that will be fsynced at its end has its pages handed to the
 * disk as it grows, every SH_WRITEBACK bytes, without waiting: the final
 * fsync then waits for the tail, not for the whole file, and the disk
 * works while the merge computes.  A gigabyte merge waited 3 s on it. */
#define SH_WRITEBACK ((uint64_t)16 << 20)

/* What is written and not yet handed to the disk goes to it now, without
 * waiting (advice: an error here will be the fsync's to report). */
static void hand_to_disk(sh_segw *w) {
#ifdef SYNC_FILE_RANGE_WRITE
    if (w->off > w->written_back)
        (void)sync_file_range(w->fd, (off_t)w->written_back, (off_t)(w->off - w->written_back),
                              SYNC_FILE_RANGE_WRITE);
#endif
    w->written_back = w->off;
}

static void start_writeback(sh_segw *w) {
    if (!w->no_sync && w->off - w->written_back >= SH_WRITEBACK) hand_to_disk(w);
}

void sh_segw_will_sync(sh_segw *w) {
    w->no_sync = 0;
    hand_to_disk(w);
}

int sh_segw_append(sh_segw *w, const void *data, size_t len, sahel_error *err) {
    if (!len) return 0;
    XXH3_64bits_update(w->hash, data, len);
    int rc = write_all(w->fd, data, len, w->tmp_path, err);
    w->off += len;
    if (!rc) start_writeback(w);
    return rc;
}

void sh_segw_end(sh_segw *w) {
    uint8_t *e = w->table + (size_t)w->nsec * SH_SEC_ENTRY;
    sh_store_u64(e + 16, w->off - w->sec_start);
    sh_store_u64(e + 24, XXH3_64bits_digest(w->hash));
    w->nsec++;
}

int sh_segw_section(sh_segw *w, uint32_t id, const void *data, size_t len, sahel_error *err) {
    int rc = sh_segw_begin(w, id, err);
    if (!rc) rc = sh_segw_append(w, data, len, err);
    if (!rc) sh_segw_end(w);
    return rc;
}

int sh_segw_finish(sh_segw *w, sahel_error *err) {
    if (w->nreserved)
        return sh_err(err, SAHEL_EINVAL, "internal error: %s: a reserved section is not written",
                      w->tmp_path);
    int rc = pad8(w, err);
    if (rc) return rc;
    uint64_t table_off = w->off;
    size_t tlen = (size_t)w->nsec * SH_SEC_ENTRY;
    /* the table lists sections by id, whatever order their bytes came in */
    for (uint32_t i = 1; i < w->nsec; i++)
        for (uint32_t j = i; j > 0 && sh_load_u32(w->table + (size_t)(j - 1) * SH_SEC_ENTRY) >
                                          sh_load_u32(w->table + (size_t)j * SH_SEC_ENTRY);
             j--) {
            uint8_t t[SH_SEC_ENTRY];
            memcpy(t, w->table + (size_t)j * SH_SEC_ENTRY, SH_SEC_ENTRY);
            memcpy(w->table + (size_t)j * SH_SEC_ENTRY, w->table + (size_t)(j - 1) * SH_SEC_ENTRY,
                   SH_SEC_ENTRY);
            memcpy(w->table + (size_t)(j - 1) * SH_SEC_ENTRY, t, SH_SEC_ENTRY);
        }
    uint8_t foot[SH_SEG_FOOTER] = {0};
    sh_store_u64(foot, table_off);
    sh_store_u32(foot + 8, w->nsec);
    sh_store_u32(foot + 12, SH_SEG_VERSION);
    sh_store_u64(foot + 16, table_sum(w->table, tlen, foot));
    memcpy(foot + 24, SH_SEG_END_MAGIC, 8);
    if ((rc = write_all(w->fd, w->table, tlen, w->tmp_path, err)) ||
        (rc = write_all(w->fd, foot, sizeof foot, w->tmp_path, err)))
        return rc;
    if (!w->no_sync && fsync(w->fd) != 0)
        return sh_err_errno(err, SAHEL_EIO, errno, "%s: fsync", w->tmp_path);
    if (close(w->fd) != 0) {
        w->fd = -1;
        return sh_err_errno(err, SAHEL_EIO, errno, "%s: close", w->tmp_path);
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->final_path) != 0)
        return sh_err_errno(err, SAHEL_EIO, errno, "cannot rename %s", w->tmp_path);
    sh_free(w->tmp_path);
    sh_free(w->final_path);
    w->tmp_path = w->final_path = NULL;
    XXH3_freeState(w->hash);
    w->hash = NULL;
    return 0;
}

void sh_segw_abort(sh_segw *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp_path) unlink(w->tmp_path);
    sh_free(w->tmp_path);
    sh_free(w->final_path);
    w->tmp_path = w->final_path = NULL;
    XXH3_freeState(w->hash);
    w->hash = NULL;
}

/* ---- spills: streams kept in temporary files, copied in as sections ---- */

int sh_spill_open(sh_spill *s, const char *dir, const char *name, int k, sahel_error *err) {
    memset(s, 0, sizeof s[0]);
    s->fd = -1;
    char base[256];
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, ".sseg") == 0) n -= 5;
    /* "seg-...-tK.sseg.tmp": an interrupted writer's leftover is one of
     * ours by name, and the next commit removes it */
    if ((size_t)snprintf(base, sizeof base, "%.*s-t%d.sseg.tmp", (int)SH_MIN(n, 200), name, k) >=
        sizeof base)
        return sh_err(err, SAHEL_EINVAL, "segment name too long: %s", name);
    s->path = sh_path_join(dir, base);
    if (!s->path) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    s->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->fd < 0) return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot create", s->path);
    unlink(s->path);
    return 0;
}



int sh_spill_reserve(sh_spill *s, sh_segw *w, uint32_t id, uint64_t len, sahel_error *err) {
    memset(s, 0, sizeof s[0]);
    s->fd = -1;
    if (w->nsec >= SH_SEC_COUNT)
        return sh_err(err, SAHEL_EINVAL, "%s: too many sections", w->tmp_path);
    int rc = pad8(w, err);
    if (rc) return rc;
    if (!(s->hash = XXH3_createState()) || !(s->path = sh_strndup(w->tmp_path, strlen(w->tmp_path))))
        return sh_err(err, SAHEL_ENOMEM, "out of memory writing %s", w->tmp_path);
    XXH3_64bits_reset(s->hash);
    /* the following sections go past the room; its bytes fill it */
    if (lseek(w->fd, (off_t)(w->off + len), SEEK_SET) < 0)
        return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot seek", w->tmp_path);
    uint8_t *e = w->table + (size_t)w->nsec * SH_SEC_ENTRY;
    sh_store_u32(e, id);
    sh_store_u32(e + 4, 0);
    sh_store_u64(e + 8, w->off);
    sh_store_u64(e + 16, len);
    sh_store_u64(e + 24, 0);
    s->seg = w;
    s->entry = w->nsec++;
    s->at = w->off;
    s->room = len;
    w->off += len;
    w->nreserved++;
    return 0;
}

/* len bytes from p to the spill's file, or to its room in a segment. */
static int spill_write(sh_spill *s, const uint8_t *p, size_t len, sahel_error *err) {
    if (s->seg) {
        if (len > s->room - s->written)
            return sh_err(err, SAHEL_EINVAL, "internal error: %s: a section outgrows its room",
                          s->path);
        XXH3_64bits_update(s->hash, p, len);
    }
    while (len) {
        if (s->seg) {
            ssize_t w = pwrite(s->seg->fd, p, len, (off_t)(s->at + s->written));
            if (w < 0) {
                if (errno == EINTR) continue;
                return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot write", s->path);
            }
            p += w;
            len -= (size_t)w;
            s->written += (uint64_t)w;
            continue;
        }
        ssize_t w = write(s->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot write", s->path);
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int spill_flush(sh_spill *s, sahel_error *err) {
    int rc = spill_write(s, s->buf.p, s->buf.len, err);
    if (!rc) s->buf.len = 0;
    return rc;
}

int sh_spill_put(sh_spill *s, const void *data, size_t len, sahel_error *err) {
    if (len >= SH_SPILL_CHUNK) {
        /* a big piece goes straight to the file: copied into the buffer,
         * it would hold as much memory again as the caller's */
        int rc = spill_flush(s, err);
        if (rc || (rc = spill_write(s, data, len, err))) return rc;
        s->total += len;
        return 0;
    }
    if (sh_buf_put(&s->buf, data, len)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    s->total += len;
    return s->buf.len >= SH_SPILL_CHUNK ? spill_flush(s, err) : 0;
}

int sh_spill_rewind(sh_spill *s, sahel_error *err) {
    if (s->seg)
        return sh_err(err, SAHEL_EINVAL, "internal error: %s: a reserved section is not read back",
                      s->path);
    int rc = spill_flush(s, err);
    if (rc) return rc;
    if (lseek(s->fd, 0, SEEK_SET) != 0)
        return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot seek", s->path);
    return 0;
}

int sh_spill_read(sh_spill *s, void *out, size_t len, sahel_error *err) {
    uint8_t *p = out;
    while (len) {
        ssize_t r = read(s->fd, p, len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return sh_err_errno(err, SAHEL_EIO, r < 0 ? errno : EIO, "%s: cannot read back",
                                s->path);
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int sh_spill_append(sh_spill *s, sh_segw *sw, sahel_error *err) {
    int rc = sh_spill_rewind(s, err);
    if (rc) return rc;
    if (sh_buf_reserve(&s->buf, SH_SPILL_CHUNK)) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    for (uint64_t left = s->total; left;) {
        size_t n = (size_t)SH_MIN(left, (uint64_t)SH_SPILL_CHUNK);
        if ((rc = sh_spill_read(s, s->buf.p, n, err)) || (rc = sh_segw_append(sw, s->buf.p, n, err)))
            return rc;
        left -= n;
    }
    return 0;
}

/* The whole stream, as section `id` of the segment being written. */
int sh_spill_copy(sh_spill *s, sh_segw *sw, uint32_t id, sahel_error *err) {
    if (s->seg) {
        uint8_t *e = sw->table + (size_t)s->entry * SH_SEC_ENTRY;
        int rc = s->seg != sw || sh_load_u32(e) != id
                     ? sh_err(err, SAHEL_EINVAL, "internal error: %s: reserved for another section",
                              s->path)
                     : spill_flush(s, err);
        if (rc) return rc;
        if (s->written != s->room)
            return sh_err(err, SAHEL_EINVAL,
                          "internal error: %s: a section of %llu bytes got %llu", s->path,
                          (unsigned long long)s->room, (unsigned long long)s->written);
        sh_store_u64(e + 24, XXH3_64bits_digest(s->hash));
        sw->nreserved--;
        s->seg = NULL; /* complete */
        return 0;
    }
    int rc = sh_segw_begin(sw, id, err);
    if (rc || (rc = sh_spill_append(s, sw, err))) return rc;
    sh_segw_end(sw);
    return 0;
}

void sh_spill_close(sh_spill *s) {
    if (s->fd >= 0) close(s->fd);
    if (s->hash) XXH3_freeState(s->hash);
    sh_buf_free(&s->buf);
    sh_free(s->path);
    memset(s, 0, sizeof s[0]);
    s->fd = -1;
}

/* ---- reading ------------------------------------------------------------ */

static int damaged(const sh_segment *seg, uint64_t off, const char *what, sahel_error *err) {
    return sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged: %s (at byte %llu)",
                  seg->path, what, (unsigned long long)off);
}

static int check_sum(const sh_segment *seg, int id, sahel_error *err) {
    const sh_section *s = &seg->sec[id];
    if (XXH3_64bits(s->p, s->len) != s->sum) {
        static const char *names[SH_SEC_COUNT] = {
            "?", "metadata", "terms", "term index", "postings", "positions", "document lengths",
            "ids", "id order", "document hashes", "document store", "store index"};
        char what[64];
        snprintf(what, sizeof what, "checksum mismatch in %s section", names[id]);
        return damaged(seg, s->off, what, err);
    }
    return 0;
}

int sh_segment_open(const char *dir, const char *name, sh_segment *seg, sahel_error *err) {
    memset(seg, 0, sizeof *seg);
    int rc = 0;
    seg->path = sh_path_join(dir, name);
    seg->name = sh_strndup(name, strlen(name));
    if (!seg->path || !seg->name) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory opening %s", name);
        goto fail;
    }
    int fd = open(seg->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = sh_err_errno(err, errno == ENOENT ? SAHEL_ECORRUPT : SAHEL_EIO, errno,
                          "%s: cannot open index file", seg->path);
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot stat", seg->path);
        close(fd);
        goto fail;
    }
    if ((uint64_t)st.st_size < SH_SEG_HEADER + SH_SEG_FOOTER) {
        close(fd);
        rc = damaged(seg, 0, "file too short (truncated?)", err);
        goto fail;
    }
    seg->size = (size_t)st.st_size;
    void *map = mmap(NULL, seg->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot map", seg->path);
        goto fail;
    }
    seg->map = map;
    const uint8_t *m = seg->map;
    if (memcmp(m, SH_SEG_MAGIC, 8) != 0) {
        rc = damaged(seg, 0, "bad magic number (not a sahelsearch segment)", err);
        goto fail;
    }
    if (sh_load_u32(m + 8) != SH_SEG_VERSION) {
        rc = sh_err(err, SAHEL_EVERSION,
                    "%s: segment format version %u, this build reads %u: rebuild the index "
                    "with `sahelindex build --force`",
                    seg->path, sh_load_u32(m + 8), SH_SEG_VERSION);
        goto fail;
    }
    if (sh_load_u32(m + 12) != 0) {
        rc = damaged(seg, 12, "unknown header flags", err);
        goto fail;
    }
    const uint8_t *foot = m + seg->size - SH_SEG_FOOTER;
    if (memcmp(foot + 24, SH_SEG_END_MAGIC, 8) != 0) {
        rc = damaged(seg, seg->size - 8, "bad footer magic (truncated?)", err);
        goto fail;
    }
    uint64_t table_off = sh_load_u64(foot);
    uint32_t nsec = sh_load_u32(foot + 8);
    if (nsec > SH_SEC_COUNT || table_off < SH_SEG_HEADER ||
        table_off + (uint64_t)nsec * SH_SEC_ENTRY != seg->size - SH_SEG_FOOTER) {
        rc = damaged(seg, seg->size - SH_SEG_FOOTER, "bad section table position", err);
        goto fail;
    }
    if (table_sum(m + table_off, (size_t)nsec * SH_SEC_ENTRY, foot) != sh_load_u64(foot + 16)) {
        rc = damaged(seg, table_off, "section table checksum mismatch", err);
        goto fail;
    }
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *e = m + table_off + (size_t)i * SH_SEC_ENTRY;
        uint32_t id = sh_load_u32(e);
        uint64_t off = sh_load_u64(e + 8), len = sh_load_u64(e + 16);
        if (id == 0 || id >= SH_SEC_COUNT || seg->sec[id].p || off < SH_SEG_HEADER ||
            off > table_off || len > table_off - off) {
            rc = damaged(seg, table_off + (uint64_t)i * SH_SEC_ENTRY, "bad section entry", err);
            goto fail;
        }
        seg->sec[id] = (sh_section){m + off, off, len, sh_load_u64(e + 24)};
    }
    for (int id = 1; id < SH_SEC_COUNT; id++)
        if (!seg->sec[id].p) {
            rc = damaged(seg, table_off, "a section is missing", err);
            goto fail;
        }
    if (seg->sec[SH_SEC_META].len != META_LEN) {
        rc = damaged(seg, seg->sec[SH_SEC_META].off, "bad metadata size", err);
        goto fail;
    }
    if ((rc = check_sum(seg, SH_SEC_META, err))) goto fail;
    const uint8_t *meta = seg->sec[SH_SEC_META].p;
    seg->ndocs = sh_load_u32(meta);
    seg->nterms = sh_load_u32(meta + 4);
    seg->sum_len_title = sh_load_u64(meta + 8);
    seg->sum_len_body = sh_load_u64(meta + 16);
    seg->ntokens = sh_load_u64(meta + 24);
    memcpy(seg->lang, meta + 32, 31);
    seg->lang[31] = '\0';
    uint64_t nd = seg->ndocs, nt = seg->nterms;
    struct {
        int id;
        uint64_t want;
        int exact;
    } sizes[] = {
        {SH_SEC_TERMIDX, (nt + 1) * SH_TERMREC, 1}, {SH_SEC_IDS, (nd + 1) * 4, 0},
        {SH_SEC_IDSORT, nd * 4, 1},                 {SH_SEC_DOCHASH, nd * 8, 1},
        {SH_SEC_STOREIDX, SH_STOREREC, 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        const sh_section *s = &seg->sec[sizes[i].id];
        if (sizes[i].exact ? s->len != sizes[i].want : s->len < sizes[i].want) {
            rc = damaged(seg, s->off, "section size does not match the document count", err);
            goto fail;
        }
    }
    /* every DOCLENS header, so that the length readers never leave the
     * section: 16 bytes a 128 articles, a few pages even for a million */
    if (sh_doclens_check(seg->sec[SH_SEC_DOCLENS].p, seg->sec[SH_SEC_DOCLENS].len, seg->ndocs)) {
        rc = damaged(seg, seg->sec[SH_SEC_DOCLENS].off, "bad document length blocks", err);
        goto fail;
    }
    if (seg->sec[SH_SEC_STOREIDX].len % SH_STOREREC) {
        rc = damaged(seg, seg->sec[SH_SEC_STOREIDX].off, "bad store index size", err);
        goto fail;
    }
    /* the term index sentinel must describe the sections it indexes */
    const uint8_t *sent = seg->sec[SH_SEC_TERMIDX].p + nt * SH_TERMREC;
    if (sh_load_u64(sent) != seg->sec[SH_SEC_POSTINGS].len ||
        sh_load_u64(sent + 8) != seg->sec[SH_SEC_POSITIONS].len ||
        sh_load_u32(sent + 16) != seg->sec[SH_SEC_TERMS].len) {
        rc = damaged(seg, seg->sec[SH_SEC_TERMIDX].off, "term index does not match its sections",
                     err);
        goto fail;
    }
    /* DOCLENS is checked at open while that is cheap: past a megabyte
     * (about 450,000 articles) reading it all would cost a one-shot search more
     * than the search, and sahelindex verify checks it anyway */
    if (seg->sec[SH_SEC_DOCLENS].len <= ((uint64_t)1 << 20) &&
        (rc = check_sum(seg, SH_SEC_DOCLENS, err)))
        goto fail;
    if (seg->size <= SH_VERIFY_ON_OPEN)
        for (int id = 1; id < SH_SEC_COUNT; id++)
            if ((rc = check_sum(seg, id, err))) goto fail;
    return 0;
fail:
    sh_segment_close(seg);
    return rc;
}

static unsigned bits_of(uint32_t v) { return v ? 32u - (unsigned)__builtin_clz(v) : 0u; }

/* The first k of a block's values (the rest are zero) less base, w bits
 * each, least significant first, into dst: 16 w bytes. */
static void pack_lens(uint8_t *dst, const uint32_t *v, uint32_t k, uint32_t base, unsigned w) {
    uint64_t acc = 0;
    unsigned nacc = 0;
    for (uint32_t i = 0; i < SH_LENS_BLOCK; i++) {
        acc |= (uint64_t)(i < k ? v[i] - base : 0) << nacc; /* nacc < 8: fits */
        nacc += w;
        for (; nacc >= 8; nacc -= 8, acc >>= 8) *dst++ = (uint8_t)acc;
    }
}

int sh_doclens_encode(const uint32_t *lent, const uint32_t *lenb, uint32_t n, sh_buf *out) {
    size_t nb = ((size_t)n + SH_LENS_BLOCK - 1) / SH_LENS_BLOCK;
    /* at most 64 bits an article: the offsets (16-byte units) fit a u32 */
    if (sh_buf_reserve(out, nb * SH_LENS_HDR + nb * SH_LENS_BLOCK * 8 + SH_LENS_PAD))
        return SAHEL_ENOMEM;
    uint8_t *hdr = out->p + out->len;
    uint8_t *data = hdr + nb * SH_LENS_HDR;
    uint32_t units = 0;
    for (size_t blk = 0; blk < nb; blk++) {
        uint32_t first = (uint32_t)(blk * SH_LENS_BLOCK);
        uint32_t k = SH_MIN(SH_LENS_BLOCK, n - first);
        uint32_t lo[2] = {UINT32_MAX, UINT32_MAX}, hi[2] = {0, 0};
        for (uint32_t i = 0; i < k; i++) {
            lo[0] = SH_MIN(lo[0], lent[first + i]);
            hi[0] = SH_MAX(hi[0], lent[first + i]);
            lo[1] = SH_MIN(lo[1], lenb[first + i]);
            hi[1] = SH_MAX(hi[1], lenb[first + i]);
        }
        unsigned wt = bits_of(hi[0] - lo[0]), wb = bits_of(hi[1] - lo[1]);
        uint8_t *h = hdr + blk * SH_LENS_HDR;
        sh_store_u32(h, lo[0]);
        sh_store_u32(h + 4, lo[1]);
        sh_store_u32(h + 8, units);
        h[12] = (uint8_t)wt;
        h[13] = (uint8_t)wb;
        h[14] = h[15] = 0;
        uint8_t *d = data + (size_t)units * 16;
        pack_lens(d, lent + first, k, lo[0], wt);
        pack_lens(d + (size_t)wt * 16, lenb + first, k, lo[1], wb);
        units += wt + wb;
    }
    memset(data + (size_t)units * 16, 0, SH_LENS_PAD);
    out->len += nb * SH_LENS_HDR + (size_t)units * 16 + SH_LENS_PAD;
    return 0;
}

int sh_doclens_check(const uint8_t *p, uint64_t len, uint32_t ndocs) {
    uint64_t nb = ((uint64_t)ndocs + SH_LENS_BLOCK - 1) / SH_LENS_BLOCK;
    if (len < nb * SH_LENS_HDR + SH_LENS_PAD) return -1;
    uint64_t units = 0;
    for (uint64_t blk = 0; blk < nb; blk++) {
        const uint8_t *h = p + blk * SH_LENS_HDR;
        if (h[12] > 32 || h[13] > 32 || h[14] || h[15] || sh_load_u32(h + 8) != units) return -1;
        units += (uint64_t)h[12] + h[13];
    }
    return len == nb * SH_LENS_HDR + units * 16 + SH_LENS_PAD ? 0 : -1;
}

void sh_segment_release(const sh_segment *seg) {
    if (seg->map) madvise(seg->map, seg->size, MADV_DONTNEED);
}

void sh_segment_close(sh_segment *seg) {
    if (!seg) return;
    if (seg->map) munmap(seg->map, seg->size);
    sh_free(seg->deleted);
    sh_free(seg->path);
    sh_free(seg->name);
    memset(seg, 0, sizeof *seg);
}

int sh_segment_term(const sh_segment *seg, uint32_t idx, const char **term, size_t *len,
                    sh_terminfo *ti, sahel_error *err) {
    if (idx >= seg->nterms)
        return damaged(seg, seg->sec[SH_SEC_TERMIDX].off, "term number out of range", err);
    const uint8_t *r = seg->sec[SH_SEC_TERMIDX].p + (size_t)idx * SH_TERMREC;
    const uint8_t *n = r + SH_TERMREC;
    uint64_t po = sh_load_u64(r), po2 = sh_load_u64(n);
    uint64_t xo = sh_load_u64(r + 8), xo2 = sh_load_u64(n + 8);
    uint32_t so = sh_load_u32(r + 16), so2 = sh_load_u32(n + 16);
    if (po > po2 || po2 > seg->sec[SH_SEC_POSTINGS].len || xo > xo2 ||
        xo2 > seg->sec[SH_SEC_POSITIONS].len || so > so2 || so2 > seg->sec[SH_SEC_TERMS].len)
        return damaged(seg, seg->sec[SH_SEC_TERMIDX].off + (uint64_t)idx * SH_TERMREC,
                       "bad term index record", err);
    if (term) {
        *term = (const char *)seg->sec[SH_SEC_TERMS].p + so;
        *len = so2 - so;
    }
    if (ti) {
        ti->idx = idx;
        ti->df = sh_load_u32(r + 20);
        ti->post_off = po;
        ti->post_len = po2 - po;
        ti->pos_off = xo;
        ti->pos_len = xo2 - xo;
    }
    return 0;
}

/* Term bytes for binary search; a damaged record compares as empty and is
 * reported when the term is actually read. */
static void term_bytes(const sh_segment *seg, uint32_t idx, const char **t, size_t *len) {
    const uint8_t *r = seg->sec[SH_SEC_TERMIDX].p + (size_t)idx * SH_TERMREC;
    uint32_t so = sh_load_u32(r + 16), so2 = sh_load_u32(r + SH_TERMREC + 16);
    if (so > so2 || so2 > seg->sec[SH_SEC_TERMS].len) so = so2 = 0;
    *t = (const char *)seg->sec[SH_SEC_TERMS].p + so;
    *len = so2 - so;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, SH_MIN(alen, blen));
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

uint32_t sh_segment_lower_bound(const sh_segment *seg, const char *key, size_t len) {
    uint32_t lo = 0, hi = seg->nterms;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const char *t;
        size_t tl;
        term_bytes(seg, mid, &t, &tl);
        if (cmp_bytes(t, tl, key, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sh_segment_lookup(const sh_segment *seg, const char *term, size_t len, sh_terminfo *ti,
                      sahel_error *err) {
    uint32_t i = sh_segment_lower_bound(seg, term, len);
    if (i >= seg->nterms) return 0;
    const char *t;
    size_t tl;
    int rc = sh_segment_term(seg, i, &t, &tl, ti, err);
    if (rc) return rc;
    return tl == len && memcmp(t, term, len) == 0;
}

int sh_segment_doc_id(const sh_segment *seg, uint32_t doc, const char **id, size_t *len,
                      sahel_error *err) {
    const sh_section *s = &seg->sec[SH_SEC_IDS];
    uint64_t base = ((uint64_t)seg->ndocs + 1) * 4;
    if (doc >= seg->ndocs)
        return damaged(seg, s->off, "document number out of range", err);
    uint32_t a = sh_load_u32(s->p + (size_t)doc * 4), b = sh_load_u32(s->p + (size_t)doc * 4 + 4);
    if (a > b || base + b > s->len)
        return damaged(seg, s->off + (uint64_t)doc * 4, "bad id offset", err);
    *id = (const char *)s->p + base + a;
    *len = b - a;
    return 0;
}

/* One term's postings decoded end to end, positions included: the count
 * matches df, every doc's positions decode inside the term's range, and
 * nothing follows the last block. */
static int verify_postings(const sh_segment *seg, const sh_terminfo *ti, sh_buf *scratch,
                           sahel_error *err) {
    sh_postings pc;
    int rc = sh_postings_init(&pc, seg, ti, err);
    if (rc) return rc;
    uint32_t n = 0;
    for (;;) {
        if ((rc = sh_postings_next(&pc))) return rc;
        if (pc.doc == SH_NO_DOC) break;
        n++;
        size_t need = ((size_t)sh_postings_tft(&pc) + sh_postings_tfb(&pc)) * sizeof(uint32_t);
        scratch->len = 0;
        if (sh_buf_reserve(scratch, need))
            return sh_err(err, SAHEL_ENOMEM, "out of memory verifying %s", seg->path);
        uint32_t *t = (uint32_t *)(void *)scratch->p;
        if ((rc = sh_postings_positions(&pc, t, t + sh_postings_tft(&pc)))) return rc;
    }
    uint64_t at = seg->sec[SH_SEC_POSTINGS].off + ti->post_off;
    if (n != ti->df)
        return damaged(seg, at, "postings count differs from document frequency", err);
    if (pc.next_block != pc.end) return damaged(seg, at, "bytes after a term's last block", err);
    return 0;
}

/* IDSORT is a permutation of the documents, in id order. */
static int verify_ids(const sh_segment *seg, sahel_error *err) {
    uint8_t *seen = sh_calloc(seg->ndocs ? seg->ndocs : 1, 1);
    if (!seen) return sh_err(err, SAHEL_ENOMEM, "out of memory verifying %s", seg->path);
    int rc = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < seg->ndocs && !rc; i++) {
        uint64_t at = seg->sec[SH_SEC_IDSORT].off + (uint64_t)i * 4;
        uint32_t d = sh_load_u32(seg->sec[SH_SEC_IDSORT].p + (size_t)i * 4);
        const char *id;
        size_t len;
        if (d >= seg->ndocs || seen[d])
            rc = damaged(seg, at, "id order is not a permutation of the documents", err);
        else if (!(rc = sh_segment_doc_id(seg, d, &id, &len, err))) {
            if (prev && cmp_bytes(prev, prev_len, id, len) >= 0)
                rc = damaged(seg, at, "ids out of order", err);
            seen[d] = 1;
            prev = id;
            prev_len = len;
        }
    }
    sh_free(seen);
    return rc;
}

/* The bytes outside every section (alignment padding) must be zero. */
static int verify_padding(const sh_segment *seg, sahel_error *err) {
    uint64_t table_off = sh_load_u64(seg->map + seg->size - SH_SEG_FOOTER);
    uint64_t at = SH_SEG_HEADER;
    for (;;) {
        /* the next section at or after `at` */
        uint64_t next = table_off;
        uint64_t next_end = table_off;
        for (int id = 1; id < SH_SEC_COUNT; id++) {
            /* empty sections may share an offset with a full one: the
             * longest one there says where the padding resumes */
            uint64_t off = seg->sec[id].off, end = off + seg->sec[id].len;
            if (off >= at && (off < next || (off == next && end > next_end))) {
                next = off;
                next_end = end;
            }
        }
        for (uint64_t b = at; b < next; b++)
            if (seg->map[b]) return damaged(seg, b, "non-zero byte between sections", err);
        if (next == table_off) return 0;
        at = next_end > at ? next_end : at + 1;
    }
}

/* Everything the open-time checks leave out: all checksums, the padding,
 * the order and ranges of the dictionary, every term's postings and
 * positions decoded end to end, the ids and their order, every stored
 * block. */
int sh_segment_verify(const sh_segment *seg, sahel_error *err) {
    int rc;
    for (int id = 1; id < SH_SEC_COUNT; id++)
        if ((rc = check_sum(seg, id, err))) return rc;
    if ((rc = verify_padding(seg, err))) return rc;
    const char *prev = NULL;
    size_t prev_len = 0;
    sh_buf scratch = {0};
    for (uint32_t i = 0; i < seg->nterms; i++) {
        const char *t;
        size_t tl;
        sh_terminfo ti;
        if ((rc = sh_segment_term(seg, i, &t, &tl, &ti, err))) break;
        if (prev && cmp_bytes(prev, prev_len, t, tl) >= 0) {
            rc = damaged(seg, seg->sec[SH_SEC_TERMS].off, "terms out of order", err);
            break;
        }
        prev = t;
        prev_len = tl;
        if ((rc = verify_postings(seg, &ti, &scratch, err))) break;
    }
    if (!rc) rc = verify_ids(seg, err);
    sh_buf_free(&scratch);
    if (rc) return rc;
    return sh_store_verify(seg, err);
}
