/*
 * ingest.h - turning files into articles (sahel_doc).
 *
 * Sections by implementing file:
 *   utf8.c    validation and repair of UTF-8 (invalid sequences -> U+FFFD)
 *   json.c    a small strict JSON reader for one JSONL line (an object)
 *   txt.c     a .txt file is one article: title = first non-empty line
 *   jsonl.c   a .jsonl file is one article per line
 *   ingest.c  sahel_ingest: files and folders, warnings, statistics
 */
#ifndef SAHEL_INGEST_H
#define SAHEL_INGEST_H

#include <sys/stat.h>

#include "../common/common.h"

/* ---- utf8.c ------------------------------------------------------------- */

/* Returns 1 when [s, s+len) is valid UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF), else 0. */
int sh_utf8_valid(const char *s, size_t len);

/* Length of the longest valid prefix of [s, s+len): len when all of it is
 * valid, else the offset of the first byte of the first invalid sequence. */
size_t sh_utf8_valid_prefix(const char *s, size_t len);

/* Append s to out with every maximal invalid subsequence replaced by
 * U+FFFD (the W3C/Unicode "substitution of maximal subparts" practice).
 * *nrepl (may be NULL) receives the number of replacements. */
int sh_utf8_repair(const char *s, size_t len, sh_buf *out, size_t *nrepl);

/* ---- json.c ------------------------------------------------------------- */

/* One field of a parsed JSONL article: the decoded UTF-8 string value;
 * NULL, 0, 0 when absent. */
typedef struct sh_json_str {
    const char *s;
    size_t len;
    int present;
} sh_json_str;

typedef struct sh_json_article {
    sh_json_str id, title, text, date, source, url, lang;
    size_t nrepl;       /* lone surrogate escapes and invalid UTF-8 sequences
                           in the decoded fields, each replaced by U+FFFD */
    size_t repl_column; /* 1-based byte column of the first, when nrepl */
} sh_json_article;

/* Parse one line holding a JSON object.  String fields named above are
 * decoded (escapes, \uXXXX with surrogate pairs) and appended to `scratch`
 * (the caller resets it between lines), which the sh_json_str pointers then
 * point into; other members (numbers, nested objects, arrays, ...) are
 * validated and skipped; nesting is limited to 64 levels.  A numeric "id"
 * is accepted and kept as written; a named field whose value is of another
 * type is absent.  Lone surrogates and invalid UTF-8 in decoded fields
 * become U+FFFD and are counted in out->nrepl (an article is not lost to
 * one bad character).  On error returns SAHEL_EINVAL with "column N: what"
 * (N a 1-based byte column) in err, or SAHEL_ENOMEM.  Later duplicate keys
 * win. */
int sh_json_parse_article(const char *line, size_t len, sh_buf *scratch,
                          sh_json_article *out, sahel_error *err);

/* ---- ingest.c: the ingest context, shared by txt.c and jsonl.c ----------- */

/* Limits (each a warning and a skip, never an error): a file is mapped
 * whole and a .txt is one article, so a file over 4 GiB is not an article
 * file but a mistake (a disk image, a dump) that would only cost memory;
 * likewise a JSONL line is one article and none is 64 MiB long. */
#define SH_INGEST_MAX_FILE (UINT64_C(4) << 30)
#define SH_INGEST_MAX_LINE ((size_t)64 << 20)
/* How often (bytes of input) progress is reported inside a big .jsonl. */
#define SH_INGEST_PROGRESS_STEP ((size_t)1 << 20)

/* Receives each article read.  Returns 0 when it was taken,
 * SAHEL_EDUPLICATE when its id was taken before, SAHEL_EINVAL when the
 * record is refused (both: ingest warns, counts and goes on), or another
 * negative code with err set, which stops the ingest and is returned.
 * sahel_ingest passes sahel_writer_add; tests pass their own. */
typedef int (*sh_article_fn)(void *ctx, const sahel_doc *doc, sahel_error *err);

/* A hash set of (device, inode) pairs: the folders visited by a walk. */
typedef struct sh_dirset {
    struct sh_dirkey { uint64_t dev, ino; int used; } *slots;
    size_t n, cap;
} sh_dirset;

typedef struct sh_ingest {
    sh_article_fn add;
    void *add_ctx;
    sahel_ingest_opts opts;   /* warn, progress, ctx; any may be NULL */
    sahel_ingest_stats *st;   /* never NULL */
    uint64_t bytes_done;      /* bytes of files finished, for progress */
    uint64_t bytes_total;     /* bytes of article files found (0: unknown) */
    sh_buf fixed;             /* repaired text of the current file or line */
    sh_buf scratch;           /* decoded JSON fields of the current line */
    sh_buf readbuf;           /* small files are read() here, not mapped */
    sh_buf name;              /* repaired file name, when it is not UTF-8 */
    sh_buf path;              /* folder walk: path of the current entry */
    sh_dirset visited;
    int mapped;               /* the file being read is mapped (ingest.c) */
    /* source tracking (sahel_ingest sets these to the writer's; NULL in
     * tests): a root is about to be read; a file is next (1: as recorded,
     * skip it); the file was read (ok) or not */
    void *src_ctx;
    int (*src_root)(void *ctx, const char *path, size_t len, sahel_error *err);
    int (*src_begin)(void *ctx, const char *path, const struct stat *sb, sahel_error *err);
    void (*src_end)(void *ctx, int ok);
} sh_ingest;

/* One input file, as the format readers see it. */
typedef struct sh_ingest_file {
    const char *path;        /* NUL-terminated, as found; names it in warnings */
    const char *doc_path;    /* valid UTF-8 form of path, for sahel_doc.path */
    size_t doc_path_len;
    const char *data;        /* its bytes */
    size_t len;
    int mapped;              /* data is a private read-only mapping of the
                                file: pages already parsed may be dropped */
} sh_ingest_file;

/* `st` accumulates and is not cleared; opts may be NULL. */
void sh_ingest_init(sh_ingest *in, sh_article_fn add, void *add_ctx,
                    const sahel_ingest_opts *opts, sahel_ingest_stats *st);
void sh_ingest_free(sh_ingest *in);

/* Report one problem: warnings++ (and skipped++ when `skipped`), then the
 * warn callback with path, line (0: the whole file) and the message. */
void sh_ingest_warn(sh_ingest *in, const char *path, uint64_t line, int skipped,
                    const char *fmt, ...) SH_PRINTF(5, 6);

/* Hand one article read from `path` to in->add, turning duplicates and
 * refused records into warnings; returns 0 or the error that must stop the
 * ingest. */
int sh_ingest_emit(sh_ingest *in, const char *path, const sahel_doc *doc, sahel_error *err);

/* Report progress (when a callback is set) at `done` bytes. */
void sh_ingest_progress(sh_ingest *in, uint64_t done);

/* Read the articles in the bytes of one file, chosen by the extension of
 * `path` (.txt or .jsonl, any case; anything else: warning, skipped).
 * Counts the file and its bytes.  Returns 0, or the error that stops the
 * ingest (the article callback's, or SAHEL_ENOMEM). */
int sh_ingest_buffer(sh_ingest *in, const char *path, const char *data, size_t len,
                     sahel_error *err);

/* Read a file or a folder (recursively; see sahel_ingest). */
int sh_ingest_path(sh_ingest *in, const char *path, sahel_error *err);

/* ---- txt.c -------------------------------------------------------------- */

/* A .txt article split in two: title and body, both trimmed of ASCII
 * whitespace, pointing into the text. */
typedef struct sh_txt_parts {
    const char *title;
    size_t title_len;
    const char *body;
    size_t body_len;
} sh_txt_parts;

/* Title = the first line (ended by LF, CR or CRLF) holding anything but
 * whitespace, after a leading UTF-8 BOM; body = everything after it.
 * Returns 1, or 0 when the text holds no such line. */
int sh_txt_split(const char *s, size_t len, sh_txt_parts *out);

/* One .txt file: one article, id = file name without ".txt", line 0. */
int sh_ingest_txt(sh_ingest *in, const sh_ingest_file *f, sahel_error *err);

/* ---- jsonl.c ------------------------------------------------------------ */

/* One .jsonl file: one article per non-blank line, line = 1-based number. */
int sh_ingest_jsonl(sh_ingest *in, const sh_ingest_file *f, sahel_error *err);

#endif /* SAHEL_INGEST_H */
