/*
 * deletes.c - deletion bitmaps: which documents of an immutable segment
 * are gone (replaced by a newer version, or removed).
 *
 * Segments never change, so deleting a document writes a new small file
 * for its segment, of a newer generation, named
 *     <segment file name without .sseg>-<del generation, 6 digits>.sdel
 * and the manifest names the generation in force (0: no deletions).
 *
 * Layout (little-endian):
 *   u8[8]  magic "SAHLDEL1"
 *   u32    format version (1)
 *   u32    ndocs of the segment
 *   u32    number of deleted documents (bits set)
 *   u32    reserved (0)
 *   bytes  ceil(ndocs / 8): bit d (byte d/8, bit d%8) set = doc d deleted
 *   u64    XXH3_64bits of every byte above
 * Written like a segment: to a temporary name, fsynced, renamed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

#define DEL_MAGIC "SAHLDEL1"
#define DEL_VERSION 1u
#define DEL_HEADER 24u

void sh_del_name(char *out, size_t cap, const char *segname, uint64_t gen) {
    size_t n = strlen(segname);
    if (n > 5 && strcmp(segname + n - 5, ".sseg") == 0) n -= 5;
    snprintf(out, cap, "%.*s-%06llu.sdel", (int)n, segname, (unsigned long long)gen);
}

uint32_t sh_bitmap_count(const uint8_t *bits, uint32_t ndocs) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < ndocs / 8; i++) n += (uint32_t)__builtin_popcount(bits[i]);
    for (uint32_t d = ndocs / 8 * 8; d < ndocs; d++) n += (bits[d / 8] >> (d % 8)) & 1;
    return n;
}

int sh_del_write(const char *dir, const char *segname, uint64_t gen, const uint8_t *bits,
                 uint32_t ndocs, sahel_error *err) {
    char name[256];
    sh_del_name(name, sizeof name, segname, gen);
    size_t nbytes = ((size_t)ndocs + 7) / 8;
    sh_buf b = {0};
    int rc = 0;
    if (sh_buf_put(&b, DEL_MAGIC, 8) || sh_buf_put_u32(&b, DEL_VERSION) ||
        sh_buf_put_u32(&b, ndocs) || sh_buf_put_u32(&b, sh_bitmap_count(bits, ndocs)) ||
        sh_buf_put_u32(&b, 0) || sh_buf_put(&b, bits, nbytes) ||
        sh_buf_put_u64(&b, XXH3_64bits(b.p, b.len))) {
        sh_buf_free(&b);
        return sh_err(err, SAHEL_ENOMEM, "out of memory writing %s", name);
    }
    rc = sh_write_file_atomic(dir, name, b.p, b.len, err);
    sh_buf_free(&b);
    return rc;
}

int sh_del_read(const char *dir, const char *segname, uint64_t gen, uint32_t ndocs,
                uint8_t **bits_out, uint32_t *ndeleted, sahel_error *err) {
    *bits_out = NULL;
    char name[256];
    sh_del_name(name, sizeof name, segname, gen);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t nbytes = ((size_t)ndocs + 7) / 8;
    size_t want = DEL_HEADER + nbytes + 8;
    uint8_t *data = NULL;
    int rc = sh_read_file(path, want, want, &data, NULL, err);
    if (rc) return rc;
    if (memcmp(data, DEL_MAGIC, 8) != 0 || sh_load_u64(data + want - 8) != XXH3_64bits(data, want - 8)) {
        rc = sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged: bad magic or checksum", path);
        goto out;
    }
    if (sh_load_u32(data + 8) != DEL_VERSION) {
        rc = sh_err(err, SAHEL_EVERSION, "%s: deletion file version %u, this build reads %u", path,
                    sh_load_u32(data + 8), DEL_VERSION);
        goto out;
    }
    uint32_t count = sh_load_u32(data + 16);
    if (sh_load_u32(data + 12) != ndocs || sh_bitmap_count(data + DEL_HEADER, ndocs) != count ||
        (ndocs % 8 && (data[DEL_HEADER + nbytes - 1] >> (ndocs % 8)))) {
        rc = sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged: bitmap does not match its segment",
                    path);
        goto out;
    }
    uint8_t *bits = sh_malloc(nbytes ? nbytes : 1);
    if (!bits) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    memcpy(bits, data + DEL_HEADER, nbytes);
    *bits_out = bits;
    *ndeleted = count;
out:
    sh_free(data);
    return rc;
}
