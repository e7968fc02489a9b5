/*
 * ingest.c - sahel_ingest: files and folders of articles, warnings and
 * statistics.
 *
 * A source is a file or a folder.  A folder is searched recursively; the
 * entries of each folder are visited in byte order of their names, so the
 * same tree always yields the same articles in the same order (and so the
 * same docids).  Entries whose name starts with '.' are skipped (version
 * control, editor files).  Symbolic links are followed, but each folder
 * (device, inode) is read at most once, so a link back to an ancestor
 * cannot loop and a folder linked twice is not indexed twice.  In folders
 * only *.txt and *.jsonl (any case) are read; other files are counted as
 * ignored, without a warning.
 *
 * The walk is done twice: first summing the sizes of the article files
 * (stat only), so that progress can show a total, then reading them.
 *
 * Files are mapped (small ones are read(), which is cheaper than a
 * mapping); a file over SH_INGEST_MAX_FILE is skipped.  A file that
 * shrinks while mapped would raise SIGBUS: like every mmap reader we
 * assume input files are not truncated while being indexed.
 *
 * Every problem with the input is one warning (sh_ingest_warn) and the
 * walk goes on; only an unreadable source (the path given itself), an
 * allocation failure or an error from the article callback (the writer)
 * stops it.  Invariant: stats->warnings counts the warn calls exactly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../index/index.h"
#include "ingest.h"

/* Files up to this size are read(): below it a mapping (and its page
 * faults and munmap) costs more than the copy. */
#define SH_INGEST_READ_MAX ((size_t)64 << 10)
/* Folders nested deeper than this are skipped: no real archive is this
 * deep, and the walk recurses once per level. */
#define SH_INGEST_MAX_DEPTH 256
/* The longest id quoted in a warning, in bytes. */
#define SH_WARN_ID_MAX 200

enum { KIND_OTHER, KIND_TXT, KIND_JSONL };

/* ---- context, warnings, progress ------------------------------------------ */

void sh_ingest_init(sh_ingest *in, sh_article_fn add, void *add_ctx,
                    const sahel_ingest_opts *opts, sahel_ingest_stats *st) {
    memset(in, 0, sizeof *in);
    in->add = add;
    in->add_ctx = add_ctx;
    if (opts) in->opts = *opts;
    in->st = st;
}

void sh_ingest_free(sh_ingest *in) {
    if (!in) return;
    sh_buf_free(&in->fixed);
    sh_buf_free(&in->scratch);
    sh_buf_free(&in->readbuf);
    sh_buf_free(&in->name);
    sh_buf_free(&in->path);
    sh_free(in->visited.slots);
    in->visited.slots = NULL;
    in->visited.n = in->visited.cap = 0;
}

void sh_ingest_warn(sh_ingest *in, const char *path, uint64_t line, int skipped,
                    const char *fmt, ...) {
    in->st->warnings++;
    if (skipped) in->st->skipped++;
    if (!in->opts.warn) return;
    char msg[SAHEL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    in->opts.warn(in->opts.ctx, path, line, msg);
}

void sh_ingest_progress(sh_ingest *in, uint64_t done) {
    if (!in->opts.progress) return;
    /* A file that grew since it was counted must not push done past total. */
    uint64_t total = SH_MAX(in->bytes_total, done);
    in->opts.progress(in->opts.ctx, done, total, in->st->articles);
}

int sh_ingest_emit(sh_ingest *in, const char *path, const sahel_doc *doc, sahel_error *err) {
    sahel_error e = {0};
    int rc = in->add(in->add_ctx, doc, &e);
    if (rc >= 0) {
        if (rc == SAHEL_UNCHANGED) {
            in->st->unchanged++;
        } else {
            in->st->articles++;
            if (rc == SAHEL_REPLACED) in->st->replaced++;
        }
        return 0;
    }
    if (rc == SAHEL_EDUPLICATE) {
        /* Quote a long id only in part, cut at a character boundary. */
        size_t n = doc->id_len;
        if (n > SH_WARN_ID_MAX) {
            n = SH_WARN_ID_MAX;
            while (n > 0 && ((uint8_t)doc->id[n] & 0xC0) == 0x80) n--;
        }
        in->st->duplicates++;
        sh_ingest_warn(in, path, doc->line, 1, "duplicate id %.*s%s (first seen earlier), skipped",
                       (int)n, doc->id, n < doc->id_len ? "..." : "");
        return 0;
    }
    if (rc == SAHEL_EINVAL) {
        sh_ingest_warn(in, path, doc->line, 1, "article refused (%s), skipped",
                       e.msg[0] ? e.msg : sahel_strerror(rc));
        return 0;
    }
    const char *why = e.msg[0] ? e.msg : sahel_strerror(rc);
    if (doc->line)
        return sh_err(err, rc, "%s:%llu: %s", path, (unsigned long long)doc->line, why);
    return sh_err(err, rc, "%s: %s", path, why);
}

/* ---- one file ------------------------------------------------------------ */

static int kind_of(const char *name, size_t len) {
    size_t base = len;
    while (base > 0 && name[base - 1] != '/') base--;
    size_t n = len - base;
    const char *b = name + base;
    /* A name that is only the extension is a hidden file, not an article. */
    if (n > 4 && !strncasecmp(b + n - 4, ".txt", 4)) return KIND_TXT;
    if (n > 6 && !strncasecmp(b + n - 6, ".jsonl", 6)) return KIND_JSONL;
    return KIND_OTHER;
}

int sh_ingest_buffer(sh_ingest *in, const char *path, const char *data, size_t len,
                     sahel_error *err) {
    size_t plen = strlen(path);
    int kind = kind_of(path, plen);
    if (kind == KIND_OTHER) {
        sh_ingest_warn(in, path, 0, 1, "not a .txt or .jsonl file, skipped");
        return 0;
    }
    in->st->files++;
    in->st->bytes += len;

    sh_ingest_file f = {path, path, plen, data, len, in->mapped};
    if (!sh_utf8_valid(path, plen)) {
        size_t nrepl;
        sh_buf_reset(&in->name);
        if (sh_utf8_repair(path, plen, &in->name, &nrepl))
            return sh_err(err, SAHEL_ENOMEM, "%s: out of memory", path);
        f.doc_path = (const char *)in->name.p;
        f.doc_path_len = in->name.len;
        sh_ingest_warn(in, path, 0, 0, "file name is not valid UTF-8, replaced in the article %s",
                       kind == KIND_TXT ? "path and id" : "path");
    }
    int rc = kind == KIND_TXT ? sh_ingest_txt(in, &f, err) : sh_ingest_jsonl(in, &f, err);
    in->bytes_done += len;
    sh_ingest_progress(in, in->bytes_done);
    return rc;
}

/* read() all of fd (expected `size` bytes) into in->readbuf; the file may
 * have changed size since fstat, so read to end of file. */
static int read_all(sh_ingest *in, int fd, size_t size, int *errno_out) {
    sh_buf *b = &in->readbuf;
    sh_buf_reset(b);
    if (sh_buf_reserve(b, size + 1)) return SAHEL_ENOMEM;
    for (;;) {
        if (b->len == b->cap && sh_buf_reserve(b, b->cap)) return SAHEL_ENOMEM;
        if (b->len >= SH_INGEST_MAX_FILE) break;
        ssize_t n = read(fd, b->p + b->len, b->cap - b->len);
        if (n < 0) {
            if (errno == EINTR) continue;
            *errno_out = errno;
            return SAHEL_EIO;
        }
        if (n == 0) break;
        b->len += (size_t)n;
    }
    return 0;
}

/* Read the article file `path` (stat'ed as *sb).  `top`: it is the source
 * itself, whose failure is an error rather than a warning. */
static int read_file(sh_ingest *in, const char *path, const struct stat *sb, int top,
                     sahel_error *err) {
    if ((uint64_t)sb->st_size > SH_INGEST_MAX_FILE) {
        sh_ingest_warn(in, path, 0, 1, "%s: %llu bytes, over the 4 GiB limit for a file, skipped",
                       sahel_strerror(SAHEL_ETOOBIG), (unsigned long long)sb->st_size);
        in->bytes_done += (uint64_t)sb->st_size;
        sh_ingest_progress(in, in->bytes_done);
        return 0;
    }
    if (in->src_begin) {
        int b = in->src_begin(in->src_ctx, path, sb, err);
        if (b < 0) return b;
        if (b == 1) { /* as the index recorded it: nothing to read */
            in->st->unchanged_files++;
            in->bytes_done += (uint64_t)sb->st_size;
            sh_ingest_progress(in, in->bytes_done);
            return 0;
        }
    }
    /* O_NONBLOCK: should the file have been replaced by a FIFO since it
     * was stat'ed, opening it must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (in->src_end) in->src_end(in->src_ctx, 0);
        if (top) return sh_err_errno(err, SAHEL_EIO, e, "cannot read %s", path);
        sh_ingest_warn(in, path, 0, 1, "cannot read file: %s; skipped", strerror(e));
        return 0;
    }
    int read_ok = 0;
    int rc = 0, e = 0;
    struct stat fsb;
    void *map = NULL;
    size_t size = 0;
    const char *data = "";
    size_t len = 0;
    if (fstat(fd, &fsb)) {
        e = errno;
        goto unreadable;
    }
    if (!S_ISREG(fsb.st_mode)) {
        e = S_ISDIR(fsb.st_mode) ? EISDIR : EINVAL;
        goto unreadable;
    }
    if ((uint64_t)fsb.st_size > SH_INGEST_MAX_FILE) {
        /* It grew past the limit since it was stat'ed: same rule. */
        sh_ingest_warn(in, path, 0, 1, "%s: %llu bytes, over the 4 GiB limit for a file, skipped",
                       sahel_strerror(SAHEL_ETOOBIG), (unsigned long long)fsb.st_size);
        goto close_fd;
    }
    size = (size_t)fsb.st_size;
    if (size > SH_INGEST_READ_MAX) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            map = NULL; /* fall back to read() below */
        } else {
            posix_madvise(map, size, POSIX_MADV_SEQUENTIAL);
            data = map;
            len = size;
        }
    }
    if (!map) {
        rc = read_all(in, fd, size, &e);
        if (rc == SAHEL_ENOMEM) {
            rc = sh_err(err, SAHEL_ENOMEM, "%s: out of memory reading the file", path);
            goto close_fd;
        }
        if (rc) {
            rc = 0;
            goto unreadable;
        }
        data = in->readbuf.len ? (const char *)in->readbuf.p : "";
        len = in->readbuf.len;
    }
    in->mapped = map != NULL;
    rc = sh_ingest_buffer(in, path, data, len, err);
    in->mapped = 0;
    read_ok = rc == 0;
    goto unmap;

unreadable:
    if (top) {
        rc = sh_err_errno(err, SAHEL_EIO, e, "cannot read %s", path);
    } else {
        sh_ingest_warn(in, path, 0, 1, "cannot read file: %s; skipped", strerror(e));
        in->bytes_done += (uint64_t)sb->st_size;
        sh_ingest_progress(in, in->bytes_done);
    }
unmap:
    if (map) munmap(map, size);
close_fd:
    close(fd);
    if (in->src_end) in->src_end(in->src_ctx, read_ok);
    return rc;
}

/* ---- folders -------------------------------------------------------------- */

static uint64_t dir_hash(uint64_t dev, uint64_t ino) {
    /* splitmix64's finaliser: cheap and mixes every input bit. */
    uint64_t x = dev * UINT64_C(0x9E3779B97F4A7C15) ^ ino;
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/* Add (dev, ino): 0 when new, 1 when already there, SAHEL_ENOMEM. */
static int dirset_add(sh_dirset *s, uint64_t dev, uint64_t ino) {
    if (2 * (s->n + 1) > s->cap) { /* keep the load under 1/2 */
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct sh_dirkey *slots = sh_calloc(cap, sizeof *slots);
        if (!slots) return SAHEL_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slots[i].used) continue;
            size_t j = dir_hash(s->slots[i].dev, s->slots[i].ino) & (cap - 1);
            while (slots[j].used) j = (j + 1) & (cap - 1);
            slots[j] = s->slots[i];
        }
        sh_free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t j = dir_hash(dev, ino) & (s->cap - 1);
    while (s->slots[j].used) {
        if (s->slots[j].dev == dev && s->slots[j].ino == ino) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = (struct sh_dirkey){dev, ino, 1};
    s->n++;
    return 0;
}

static void dirset_clear(sh_dirset *s) {
    if (s->slots) memset(s->slots, 0, s->cap * sizeof *s->slots);
    s->n = 0;
}

enum { WALK_COUNT, WALK_READ };

static int cmp_names(const void *a, const void *b) {
    /* strcmp compares as unsigned char: byte order, whatever the locale. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names in folder `path`, hidden ones left out, sorted: *names points
 * to n pointers into *arena.  Returns 0, SAHEL_ENOMEM, or SAHEL_EIO with
 * *errno_out set. */
static int list_dir(const char *path, sh_buf *arena, const char ***names, size_t *n,
                    int *errno_out) {
    DIR *d = opendir(path);
    if (!d) {
        *errno_out = errno;
        return SAHEL_EIO;
    }
    size_t count = 0, cap = 0;
    size_t *offs = NULL;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                *errno_out = errno;
                rc = SAHEL_EIO;
            }
            break;
        }
        if (de->d_name[0] == '.') continue;
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            size_t *o = sh_reallocarray(offs, ncap, sizeof *o);
            if (!o) {
                rc = SAHEL_ENOMEM;
                break;
            }
            offs = o;
            cap = ncap;
        }
        offs[count++] = arena->len;
        if (sh_buf_put(arena, de->d_name, strlen(de->d_name) + 1)) {
            rc = SAHEL_ENOMEM;
            break;
        }
    }
    closedir(d);
    if (rc) goto free_offs;
    /* The arena is complete: offsets become pointers. */
    const char **v = sh_reallocarray(NULL, count ? count : 1, sizeof *v);
    if (!v) {
        rc = SAHEL_ENOMEM;
        goto free_offs;
    }
    for (size_t i = 0; i < count; i++) v[i] = (const char *)arena->p + offs[i];
    qsort(v, count, sizeof *v, cmp_names);
    *names = v;
    *n = count;
free_offs:
    sh_free(offs);
    return rc;
}

static int walk(sh_ingest *in, int mode, int depth, uint64_t *total, sahel_error *err);

/* The entry named in->path (a child of a folder being walked). */
static int walk_entry(sh_ingest *in, int mode, int depth, const char *name, uint64_t *total,
                      sahel_error *err) {
    const char *path = (const char *)in->path.p;
    int kind = kind_of(name, strlen(name));
    struct stat sb;
    if (stat(path, &sb)) {
        int e = errno;
        if (mode == WALK_COUNT) return 0;
        if (kind == KIND_OTHER)
            in->st->ignored_files++;
        else
            sh_ingest_warn(in, path, 0, 1, "cannot read file: %s; skipped", strerror(e));
        return 0;
    }
    if (S_ISDIR(sb.st_mode)) {
        int r = dirset_add(&in->visited, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino);
        if (r < 0) return sh_err(err, SAHEL_ENOMEM, "%s: out of memory", path);
        if (r == 1) {
            if (mode == WALK_READ)
                sh_ingest_warn(in, path, 0, 0,
                               "folder already visited (through a symbolic link), skipped");
            return 0;
        }
        if (depth + 1 > SH_INGEST_MAX_DEPTH) {
            if (mode == WALK_READ)
                sh_ingest_warn(in, path, 0, 1, "folder nested deeper than %d levels, skipped",
                               SH_INGEST_MAX_DEPTH);
            return 0;
        }
        return walk(in, mode, depth + 1, total, err);
    }
    if (kind == KIND_OTHER) {
        if (mode == WALK_READ) in->st->ignored_files++;
        return 0;
    }
    if (!S_ISREG(sb.st_mode)) {
        if (mode == WALK_READ) sh_ingest_warn(in, path, 0, 1, "not a regular file, skipped");
        return 0;
    }
    if (mode == WALK_COUNT) {
        *total += (uint64_t)sb.st_size;
        return 0;
    }
    return read_file(in, path, &sb, 0, err);
}

/* The folder named in->path, `depth` levels below the source. */
static int walk(sh_ingest *in, int mode, int depth, uint64_t *total, sahel_error *err) {
    sh_buf arena = {0};
    const char **names = NULL;
    size_t n = 0;
    int e = 0;
    int rc = list_dir((const char *)in->path.p, &arena, &names, &n, &e);
    if (rc == SAHEL_ENOMEM) {
        rc = sh_err(err, SAHEL_ENOMEM, "%s: out of memory listing the folder", (const char *)in->path.p);
        goto free_arena;
    }
    if (rc) {
        if (depth == 0) {
            rc = sh_err_errno(err, SAHEL_EIO, e, "cannot read %s", (const char *)in->path.p);
        } else {
            rc = 0;
            if (mode == WALK_READ)
                sh_ingest_warn(in, (const char *)in->path.p, 0, 1,
                               "cannot read folder: %s; skipped", strerror(e));
        }
        goto free_arena;
    }
    size_t base = in->path.len;
    /* "/" and "dir/" are joined without doubling the slash. */
    int slash = base > 0 && in->path.p[base - 1] != '/';
    for (size_t i = 0; i < n && !rc; i++) {
        in->path.len = base;
        if ((slash && sh_buf_putc(&in->path, '/')) ||
            sh_buf_put(&in->path, names[i], strlen(names[i]) + 1)) {
            in->path.len = base;
            rc = sh_err(err, SAHEL_ENOMEM, "out of memory building a path");
            break;
        }
        in->path.len--; /* the NUL stays after len */
        rc = walk_entry(in, mode, depth, names[i], total, err);
    }
    in->path.len = base;
    in->path.p[base] = '\0';
    sh_free(names);
free_arena:
    sh_buf_free(&arena);
    return rc;
}

int sh_ingest_path(sh_ingest *in, const char *path, sahel_error *err) {
    struct stat sb;
    if (stat(path, &sb)) return sh_err_errno(err, SAHEL_EIO, errno, "cannot read %s", path);
    size_t plen = strlen(path);
    if (S_ISREG(sb.st_mode)) {
        if (kind_of(path, plen) == KIND_OTHER) {
            sh_ingest_warn(in, path, 0, 1, "not a .txt or .jsonl file, skipped");
            return 0;
        }
        in->bytes_total = in->bytes_done + (uint64_t)sb.st_size;
        int rrc = in->src_root ? in->src_root(in->src_ctx, path, plen, err) : 0;
        return rrc ? rrc : read_file(in, path, &sb, 1, err);
    }
    if (!S_ISDIR(sb.st_mode)) {
        sh_ingest_warn(in, path, 0, 1, "not a regular file or folder, skipped");
        return 0;
    }

    /* "corpus///" is walked as "corpus", so that paths read corpus/x.txt. */
    while (plen > 1 && path[plen - 1] == '/') plen--;
    sh_buf_reset(&in->path);
    if (sh_buf_put(&in->path, path, plen) || sh_buf_putc(&in->path, '\0'))
        return sh_err(err, SAHEL_ENOMEM, "out of memory");
    in->path.len--;

    uint64_t total = 0;
    int rc;
    if (in->src_root && (rc = in->src_root(in->src_ctx, path, plen, err))) return rc;
    dirset_clear(&in->visited);
    if (dirset_add(&in->visited, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino) < 0)
        return sh_err(err, SAHEL_ENOMEM, "out of memory");
    if ((rc = walk(in, WALK_COUNT, 0, &total, err))) return rc;
    in->bytes_total = in->bytes_done + total;

    dirset_clear(&in->visited);
    if (dirset_add(&in->visited, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino) < 0)
        return sh_err(err, SAHEL_ENOMEM, "out of memory");
    return walk(in, WALK_READ, 0, &total, err);
}

/* ---- the public entry point ------------------------------------------------ */

static int writer_add(void *ctx, const sahel_doc *doc, sahel_error *err) {
    return sahel_writer_add(ctx, doc, err);
}

static int writer_root(void *ctx, const char *path, size_t len, sahel_error *err) {
    return sh_writer_source_root(ctx, path, len, err);
}

static int writer_begin(void *ctx, const char *path, const struct stat *sb, sahel_error *err) {
    int64_t mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
    return sh_writer_source_begin(ctx, path, (uint64_t)sb->st_size, mtime_ns, (uint64_t)sb->st_ino,
                                  err);
}

static void writer_end(void *ctx, int ok) { sh_writer_source_end(ctx, ok); }

int sahel_ingest(sahel_writer *w, const char *path, const sahel_ingest_opts *opts,
                 sahel_ingest_stats *st, sahel_error *err) {
    if (!w || !path)
        return sh_err(err, SAHEL_EINVAL, "sahel_ingest: %s is NULL", !w ? "the writer" : "the path");
    sahel_ingest_stats local = {0};
    sh_ingest in;
    sh_ingest_init(&in, writer_add, w, opts, st ? st : &local);
    in.src_ctx = w;
    in.src_root = writer_root;
    in.src_begin = writer_begin;
    in.src_end = writer_end;
    int rc = sh_ingest_path(&in, path, err);
    sh_ingest_free(&in);
    return rc;
}
