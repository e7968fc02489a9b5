/*
 * jsonl.c - a .jsonl file holds one article per line, each a JSON object:
 *
 *   {"id": "a1", "title": "...", "text": "...", "date": "2023-09-16",
 *    "source": "RFI", "url": "https://...", "lang": "fr"}
 *
 * `id` (a string or a number, kept as written) and `text` (a string) are
 * required; title, date, source, url and lang are optional strings; other
 * members are ignored.  Lines end in LF or CRLF; a UTF-8 byte order mark
 * before the first line is dropped; blank lines are skipped silently.
 *
 * One bad line never costs more than itself: a line that is malformed,
 * lacks a field, holds a NUL byte or exceeds SH_INGEST_MAX_LINE is a
 * warning naming its line (and column), and reading goes on with the next.
 * Byte offsets in warnings are offsets in the file.
 */
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ingest.h"

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* One line, starting at byte `off` of the file, without its line end. */
static int read_line(sh_ingest *in, const sh_ingest_file *f, uint64_t lineno, size_t off,
                     const char *line, size_t len, sahel_error *err) {
    if (len > SH_INGEST_MAX_LINE) {
        sh_ingest_warn(in, f->path, lineno, 1, "line longer than 64 MiB (%zu bytes), skipped", len);
        return 0;
    }
    if (is_blank(line, len)) return 0;
    const char *nul = memchr(line, '\0', len);
    if (nul) {
        sh_ingest_warn(in, f->path, lineno, 1, "binary data (NUL byte at offset %zu), line skipped",
                       off + (size_t)(nul - line));
        return 0;
    }

    sh_json_article a;
    sahel_error perr = {0};
    sh_buf_reset(&in->scratch);
    int rc = sh_json_parse_article(line, len, &in->scratch, &a, &perr);
    if (rc == SAHEL_EINVAL) {
        sh_ingest_warn(in, f->path, lineno, 1, "invalid JSON at %s, line skipped", perr.msg);
        return 0;
    }
    if (rc)
        return sh_err(err, rc, "%s:%llu: %s", f->path, (unsigned long long)lineno, perr.msg);
    if (!a.text.present) {
        sh_ingest_warn(in, f->path, lineno, 1, "missing text field, skipped");
        return 0;
    }
    if (!a.id.present) {
        sh_ingest_warn(in, f->path, lineno, 1, "missing id field, skipped");
        return 0;
    }
    if (!a.id.len) {
        sh_ingest_warn(in, f->path, lineno, 1, "empty id, skipped");
        return 0;
    }
    if (a.nrepl) {
        sh_ingest_warn(in, f->path, lineno, 0, "invalid UTF-8 at byte offset %zu, replaced (%zu %s)",
                       off + a.repl_column - 1, a.nrepl, a.nrepl == 1 ? "sequence" : "sequences");
        in->st->repaired++;
    }

    /* Absent fields are NULL with length 0 (sh_json_parse_article). */
    sahel_doc doc = {
        .id = a.id.s, .id_len = a.id.len,
        .title = a.title.s, .title_len = a.title.len,
        .body = a.text.s, .body_len = a.text.len,
        .date = a.date.s, .date_len = a.date.len,
        .source = a.source.s, .source_len = a.source.len,
        .url = a.url.s, .url_len = a.url.len,
        .lang = a.lang.s, .lang_len = a.lang.len,
        .path = f->doc_path, .path_len = f->doc_path_len,
        .line = lineno,
    };
    return sh_ingest_emit(in, f->path, &doc, err);
}

int sh_ingest_jsonl(sh_ingest *in, const sh_ingest_file *f, sahel_error *err) {
    const char *data = f->data;
    size_t len = f->len, pos = 0, reported = 0, released = 0;
    uint64_t lineno = 0;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3)) pos = 3;
    while (pos < len) {
        size_t start = pos;
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        pos = nl ? end + 1 : len;
        if (end > start && data[end - 1] == '\r') end--;
        lineno++;
        int rc = read_line(in, f, lineno, start, data + start, end - start, err);
        if (rc) return rc;
        if (pos - reported >= SH_INGEST_PROGRESS_STEP) {
            sh_ingest_progress(in, in->bytes_done + pos);
            reported = pos;
            /* the lines before pos are indexed (the writer copied what it
             * keeps): their pages leave this process's resident set, so
             * that a big file does not count against the memory budget */
            if (f->mapped) {
                size_t page = (size_t)sysconf(_SC_PAGESIZE);
                size_t upto = pos / page * page;
                if (upto > released) {
                    madvise((void *)((uintptr_t)data + released), upto - released, MADV_DONTNEED);
                    released = upto;
                }
            }
        }
    }
    return 0;
}
