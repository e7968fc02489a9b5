/*
 * sources.c - the sources table: which files an index was built from, as
 * they were then, and which article ids each held.
 *
 * It lets `sahelindex update` cost in proportion to what changed: a file
 * whose size, modification time and inode are as recorded is not even
 * read (its articles are carried as they are); a file that changed is
 * read again and each article compared by content hash; a file that is
 * gone from a folder being updated takes its articles with it.
 *
 * File sources-<generation, 6 digits>.ssrc, named by the manifest
 * (sources_gen; 0 = none).  Layout (little-endian):
 *   u8[8]  magic "SAHLSRC1"
 *   u32    format version (1)
 *   u32    reserved (0)
 *   u64    number of files
 *   per file, in byte order of path:
 *     u16  path length, then the canonical path (realpath of the folder
 *          or file given, then the path below it as walked)
 *     u64  size in bytes
 *     i64  modification time, nanoseconds since the epoch
 *     u64  inode number
 *     u32  number of ids, then each id: u16 length, bytes
 *   u64    XXH3_64bits of every byte above
 */
#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

#include "index.h"

#define SRC_MAGIC "SAHLSRC1"
#define SRC_VERSION 1u

void sh_srctab_free(sh_srctab *t) {
    sh_free(t->data);
    sh_free(t->e);
    memset(t, 0, sizeof *t);
}

static int bad(const char *path, size_t off, sahel_error *err) {
    return sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged (sources table, byte %zu)", path,
                  off);
}

int sh_srctab_read(const char *dir, uint64_t gen, sh_srctab *t, sahel_error *err) {
    memset(t, 0, sizeof *t);
    char path[4096];
    snprintf(path, sizeof path, "%s/sources-%06llu.ssrc", dir, (unsigned long long)gen);
    size_t len;
    /* a sanity bound: 4 GiB of paths and ids is no sources table */
    int rc = sh_read_file(path, SIZE_MAX, (size_t)4 << 30, &t->data, &len, err);
    if (rc) return rc;
    const uint8_t *p = t->data;
    if (len < 32 || memcmp(p, SRC_MAGIC, 8) != 0 ||
        sh_load_u64(p + len - 8) != XXH3_64bits(p, len - 8)) {
        rc = bad(path, 0, err);
        goto fail;
    }
    if (sh_load_u32(p + 8) != SRC_VERSION) {
        rc = sh_err(err, SAHEL_EVERSION, "%s: sources table version %u, this build reads %u", path,
                    sh_load_u32(p + 8), SRC_VERSION);
        goto fail;
    }
    uint64_t n = sh_load_u64(p + 16);
    size_t off = 24, end = len - 8;
    if (n > (end - off) / 30) {
        rc = bad(path, 16, err);
        goto fail;
    }
    t->e = sh_calloc(n ? n : 1, sizeof *t->e);
    if (!t->e) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory reading %s", path);
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        sh_srcent *e = &t->e[i];
        if (end - off < 2 || end - off - 2 < sh_load_u16(p + off) + 28u) {
            rc = bad(path, off, err);
            goto fail;
        }
        e->path_len = sh_load_u16(p + off);
        e->path = (const char *)p + off + 2;
        off += 2 + e->path_len;
        e->size = sh_load_u64(p + off);
        e->mtime_ns = (int64_t)sh_load_u64(p + off + 8);
        e->ino = sh_load_u64(p + off + 16);
        e->nids = sh_load_u32(p + off + 24);
        off += 28;
        e->ids = p + off;
        for (uint32_t k = 0; k < e->nids; k++) {
            if (end - off < 2 || end - off - 2 < sh_load_u16(p + off)) {
                rc = bad(path, off, err);
                goto fail;
            }
            off += 2 + sh_load_u16(p + off);
        }
        e->ids_len = (size_t)(p + off - e->ids);
        if (i && sh_srcent_cmp(&t->e[i - 1], e->path, e->path_len) >= 0) {
            rc = bad(path, off, err);
            goto fail;
        }
        t->n = i + 1;
    }
    if (off != end) {
        rc = bad(path, off, err);
        goto fail;
    }
    return 0;
fail:
    sh_srctab_free(t);
    return rc;
}

int sh_srcent_cmp(const sh_srcent *e, const char *path, size_t len) {
    int c = memcmp(e->path, path, SH_MIN((size_t)e->path_len, len));
    if (c) return c;
    return e->path_len < len ? -1 : e->path_len > len;
}

sh_srcent *sh_srctab_find(const sh_srctab *t, const char *path, size_t len) {
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = sh_srcent_cmp(&t->e[mid], path, len);
        if (c == 0) return &t->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int cmp_ent(const void *a, const void *b) {
    const sh_srcent *x = a, *y = b;
    return sh_srcent_cmp(x, y->path, y->path_len);
}

int sh_srctab_write(const char *dir, uint64_t gen, sh_srcent *e, size_t n, sahel_error *err) {
    qsort(e, n, sizeof *e, cmp_ent);
    sh_buf b = {0};
    int oom = sh_buf_put(&b, SRC_MAGIC, 8) || sh_buf_put_u32(&b, SRC_VERSION) ||
              sh_buf_put_u32(&b, 0) || sh_buf_put_u64(&b, n);
    for (size_t i = 0; i < n && !oom; i++)
        oom = sh_buf_put_u16(&b, (uint16_t)e[i].path_len) || sh_buf_put(&b, e[i].path, e[i].path_len) ||
              sh_buf_put_u64(&b, e[i].size) || sh_buf_put_u64(&b, (uint64_t)e[i].mtime_ns) ||
              sh_buf_put_u64(&b, e[i].ino) || sh_buf_put_u32(&b, e[i].nids) ||
              sh_buf_put(&b, e[i].ids, e[i].ids_len);
    if (oom || sh_buf_put_u64(&b, XXH3_64bits(b.p, b.len))) {
        sh_buf_free(&b);
        return sh_err(err, SAHEL_ENOMEM, "out of memory writing the sources table");
    }
    char name[64];
    snprintf(name, sizeof name, "sources-%06llu.ssrc", (unsigned long long)gen);
    int rc = sh_write_file_atomic(dir, name, b.p, b.len, err);
    sh_buf_free(&b);
    return rc;
}
