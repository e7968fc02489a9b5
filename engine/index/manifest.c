/*
 * manifest.c - the manifest: the one small file that names the live
 * segments of an index, and the commit point of every change.
 *
 * Layout of MANIFEST (little-endian):
 *   u8[8]   magic "SAHLMAN1"
 *   u32     format version (1)
 *   u32     nsegs
 *   u64     generation (1 for a new index, +1 per commit)
 *   u8[32]  analysis language, NUL padded ("english")
 *   u64     generation of the sources table (sources.c), 0: none
 *   nsegs times, oldest first (the order ties are broken in):
 *     u16   name length, then the file name (no '/', not starting with '.')
 *     u32   documents in the segment
 *     u64   deletion generation: the segment's deletion bitmap is
 *           <name without .sseg>-<generation>.sdel (deletes.c); 0: none
 *     u32   documents deleted (bits set in that bitmap)
 *   u64     XXH3_64bits of every byte above
 *
 * Commit protocol: the new manifest is written to MANIFEST.tmp, fsynced,
 * renamed over MANIFEST, and the directory fsynced.  rename(2) is atomic,
 * so a reader or a crash sees the old manifest or the new one, whole; the
 * segment files a manifest names are written and fsynced before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "index.h"

#define MANIFEST_MAX (64u << 20) /* far above any real manifest: a sanity bound */

char *sh_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a && dir[a - 1] != '/';
    char *p = sh_malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + (size_t)slash, name, b + 1);
    return p;
}

int sh_fsync_dir(const char *dir, sahel_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot open directory", dir);
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot fsync directory", dir);
    close(fd);
    return rc;
}

int sh_fsync_file(const char *dir, const char *name, sahel_error *err) {
    char *path = sh_path_join(dir, name);
    if (!path) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot open", path);
    else if (fsync(fd) != 0)
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: fsync", path);
    if (fd >= 0) close(fd);
    sh_free(path);
    return rc;
}

void sh_manifest_free(sh_manifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->nsegs; i++) sh_free(m->segs[i].name);
    sh_free(m->segs);
    m->segs = NULL;
    m->nsegs = 0;
}

static int bad(const char *path, uint64_t off, const char *what, sahel_error *err) {
    return sh_err(err, SAHEL_ECORRUPT, "%s: index manifest is damaged: %s (at byte %llu)", path,
                  what, (unsigned long long)off);
}

static int valid_name(const uint8_t *s, size_t len) {
    if (len == 0 || s[0] == '.') return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] < 0x21 || s[i] > 0x7e) return 0;
    return 1;
}

int sh_manifest_read(const char *dir, sh_manifest *m, sahel_error *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(dir, &st) != 0)
        return sh_err_errno(err, SAHEL_ENOTINDEX, errno, "no index at %s", dir);
    if (!S_ISDIR(st.st_mode))
        return sh_err(err, SAHEL_ENOTINDEX, "%s is not a directory, so not an index", dir);
    char *path = sh_path_join(dir, SH_MANIFEST);
    if (!path) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc = 0;
    uint8_t *data = NULL;
    size_t size = 0;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        /* MANIFEST is replaced by rename, never removed: absent = no index */
        rc = sh_err(err, SAHEL_ENOTINDEX, "%s is not a sahelsearch index (it has no %s)", dir,
                    SH_MANIFEST);
        goto out;
    }
    if ((rc = sh_read_file(path, SIZE_MAX, MANIFEST_MAX, &data, &size, err))) goto out;
    if (size < 8) {
        rc = bad(path, 0, "truncated", err);
        goto out;
    }
    if (memcmp(data, SH_MANIFEST_MAGIC, 8) != 0) {
        rc = sh_err(err, SAHEL_ENOTINDEX, "%s is not a sahelsearch index (bad magic in %s)", dir,
                    SH_MANIFEST);
        goto out;
    }
    if (size < 8 + 4 + 4 + 8 + 32 + 8 + 8) {
        rc = bad(path, 0, "truncated", err);
        goto out;
    }
    if (sh_load_u64(data + size - 8) != XXH3_64bits(data, size - 8)) {
        rc = bad(path, size - 8, "checksum mismatch", err);
        goto out;
    }
    if (sh_load_u32(data + 8) != SH_MANIFEST_VERSION) {
        rc = sh_err(err, SAHEL_EVERSION, "%s: manifest format version %u, this build reads %u",
                    path, sh_load_u32(data + 8), SH_MANIFEST_VERSION);
        goto out;
    }
    uint32_t nsegs = sh_load_u32(data + 12);
    m->generation = sh_load_u64(data + 16);
    memcpy(m->lang, data + 24, 31);
    m->lang[31] = '\0';
    m->sources_gen = sh_load_u64(data + 56);
    size_t off = 64, end = size - 8;
    if (nsegs > (end - off) / 18) {
        rc = bad(path, 12, "segment count too large", err);
        goto out;
    }
    m->segs = sh_calloc(nsegs ? nsegs : 1, sizeof *m->segs);
    if (!m->segs) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < nsegs; i++) {
        if (end - off < 2) {
            rc = bad(path, off, "truncated segment entry", err);
            goto out;
        }
        size_t nl = sh_load_u16(data + off);
        if (end - off < 2 + nl + 16 || !valid_name(data + off + 2, nl)) {
            rc = bad(path, off, "bad segment entry", err);
            goto out;
        }
        m->segs[i].name = sh_strndup((const char *)data + off + 2, nl);
        if (!m->segs[i].name) {
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
            goto out;
        }
        m->nsegs = i + 1;
        off += 2 + nl;
        m->segs[i].ndocs = sh_load_u32(data + off);
        m->segs[i].del_gen = sh_load_u64(data + off + 4);
        m->segs[i].ndeleted = sh_load_u32(data + off + 12);
        off += 16;
        if (m->segs[i].ndeleted > m->segs[i].ndocs || (m->segs[i].ndeleted && !m->segs[i].del_gen)) {
            rc = bad(path, off - 4, "impossible deletion count", err);
            goto out;
        }
    }
    if (off != end) rc = bad(path, off, "trailing bytes", err);
out:
    if (rc) sh_manifest_free(m);
    sh_free(data);
    sh_free(path);
    return rc;
}

int sh_manifest_write(const char *dir, const sh_manifest *m, int *renamed, sahel_error *err) {
    sh_buf b = {0};
    if (renamed) *renamed = 0;
    int rc = 0, fd = -1;
    char *tmp = sh_path_join(dir, SH_MANIFEST ".tmp");
    char *path = sh_path_join(dir, SH_MANIFEST);
    if (!tmp || !path) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    uint8_t lang[32] = {0};
    memcpy(lang, m->lang, SH_MIN(strlen(m->lang), sizeof lang - 1));
    if (sh_buf_put(&b, SH_MANIFEST_MAGIC, 8) || sh_buf_put_u32(&b, SH_MANIFEST_VERSION) ||
        sh_buf_put_u32(&b, (uint32_t)m->nsegs) || sh_buf_put_u64(&b, m->generation) ||
        sh_buf_put(&b, lang, sizeof lang) || sh_buf_put_u64(&b, m->sources_gen)) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < m->nsegs; i++) {
        size_t nl = strlen(m->segs[i].name);
        if (sh_buf_put_u16(&b, (uint16_t)nl) || sh_buf_put(&b, m->segs[i].name, nl) ||
            sh_buf_put_u32(&b, m->segs[i].ndocs) || sh_buf_put_u64(&b, m->segs[i].del_gen) ||
            sh_buf_put_u32(&b, m->segs[i].ndeleted)) {
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (sh_buf_put_u64(&b, XXH3_64bits(b.p, b.len))) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot create", tmp);
        goto out;
    }
    size_t done = 0;
    while (done < b.len) {
        ssize_t n = write(fd, b.p + done, b.len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot write", tmp);
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: fsync", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: close", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "cannot rename %s to %s", tmp, path);
        goto out;
    }
    if (renamed) *renamed = 1; /* the commit point: readers see it now */
    rc = sh_fsync_dir(dir, err);
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    sh_buf_free(&b);
    sh_free(tmp);
    sh_free(path);
    return rc;
}

/* ---- small whole files: deletion bitmaps, the sources table ------------- */

int sh_write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                         sahel_error *err) {
    char path[4096], tmp[4200];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return sh_err(err, SAHEL_EINVAL, "index path too long: %s", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot create", tmp);
    const uint8_t *p = data;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot write", tmp);
            break;
        }
        done += (size_t)n;
    }
    if (!rc && fsync(fd) != 0) rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: fsync", tmp);
    if (close(fd) != 0 && !rc) rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: close", tmp);
    if (!rc && rename(tmp, path) != 0)
        rc = sh_err_errno(err, SAHEL_EIO, errno, "cannot rename %s", tmp);
    if (rc) unlink(tmp);
    return rc;
}

int sh_read_file(const char *path, size_t want, size_t max, uint8_t **out, size_t *len,
                 sahel_error *err) {
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT
                   ? sh_err(err, SAHEL_ECORRUPT, "%s: index file is missing", path)
                   : sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot open", path);
    struct stat st;
    int rc = 0;
    uint8_t *data = NULL;
    if (fstat(fd, &st) != 0) {
        rc = sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot stat", path);
        goto out;
    }
    if (want != SIZE_MAX ? (uint64_t)st.st_size != want : (uint64_t)st.st_size > max) {
        rc = sh_err(err, SAHEL_ECORRUPT, "%s: index file is damaged: %llu bytes is an impossible "
                    "size for it", path, (unsigned long long)st.st_size);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    data = sh_malloc(size ? size : 1);
    if (!data) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, data + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = n < 0 ? sh_err_errno(err, SAHEL_EIO, errno, "%s: cannot read", path)
                       : sh_err(err, SAHEL_ECORRUPT, "%s: index file shrank while read", path);
            goto out;
        }
        got += (size_t)n;
    }
    *out = data;
    if (len) *len = size;
    data = NULL;
out:
    sh_free(data);
    close(fd);
    return rc;
}
