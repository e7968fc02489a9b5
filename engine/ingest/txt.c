/*
 * txt.c - a .txt file is one article.
 *
 * The first line that holds anything but whitespace is the title (this is
 * how the bundled corpus and most scraped-article dumps are laid out); the
 * rest of the file, trimmed, is the body; the file name without ".txt" is
 * the id.  A UTF-8 byte order mark (written by some Windows editors) is
 * dropped; lines may end in LF, CRLF or CR.  Whitespace here means ASCII
 * space, tab, vertical tab, form feed, CR and LF.
 *
 * Bad files are warnings, never errors: a NUL byte (a binary file named
 * .txt) skips the file; invalid UTF-8 is repaired (utf8.c) and the article
 * kept; a file with no text is skipped.
 */
#include "ingest.h"

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int sh_txt_split(const char *s, size_t len, sh_txt_parts *out) {
    size_t i = 0;
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) i = 3;
    while (i < len) {
        size_t a = i;
        while (i < len && s[i] != '\n' && s[i] != '\r') i++;
        size_t b = i;
        if (i < len) i += (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n') ? 2 : 1;
        while (a < b && is_space(s[a])) a++;
        while (b > a && is_space(s[b - 1])) b--;
        if (a == b) continue;
        out->title = s + a;
        out->title_len = b - a;
        size_t c = i, d = len;
        while (c < d && is_space(s[c])) c++;
        while (d > c && is_space(s[d - 1])) d--;
        out->body = s + c;
        out->body_len = d - c;
        return 1;
    }
    return 0;
}

/* The id: the last path component without its ".txt" (any case, as
 * sh_ingest_buffer matched it). */
static void id_of(const char *path, size_t len, const char **id, size_t *id_len) {
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    *id = path + start;
    *id_len = len - start >= 4 ? len - start - 4 : 0;
}

int sh_ingest_txt(sh_ingest *in, const sh_ingest_file *f, sahel_error *err) {
    const char *data = f->data;
    size_t len = f->len;

    const char *nul = len ? memchr(data, '\0', len) : NULL;
    if (nul) {
        sh_ingest_warn(in, f->path, 0, 1, "binary file (NUL byte at offset %zu), skipped",
                       (size_t)(nul - data));
        return 0;
    }

    size_t bad = sh_utf8_valid_prefix(data, len), nrepl = 0;
    if (bad < len) {
        sh_buf_reset(&in->fixed);
        if (sh_utf8_repair(data, len, &in->fixed, &nrepl))
            return sh_err(err, SAHEL_ENOMEM, "%s: out of memory repairing UTF-8", f->path);
        data = (const char *)in->fixed.p;
        len = in->fixed.len;
    }

    sh_txt_parts parts;
    if (!sh_txt_split(data, len, &parts)) {
        sh_ingest_warn(in, f->path, 0, 1, "empty file, skipped");
        return 0;
    }

    sahel_doc doc = {0};
    id_of(f->doc_path, f->doc_path_len, &doc.id, &doc.id_len);
    if (!doc.id_len) {
        sh_ingest_warn(in, f->path, 0, 1, "empty id (the file name is only \".txt\"), skipped");
        return 0;
    }
    if (nrepl) {
        sh_ingest_warn(in, f->path, 0, 0, "invalid UTF-8 at byte offset %zu, replaced (%zu %s)",
                       bad, nrepl, nrepl == 1 ? "sequence" : "sequences");
        in->st->repaired++;
    }
    doc.title = parts.title;
    doc.title_len = parts.title_len;
    doc.body = parts.body;
    doc.body_len = parts.body_len;
    doc.path = f->doc_path;
    doc.path_len = f->doc_path_len;
    doc.line = 0;
    return sh_ingest_emit(in, f->path, &doc, err);
}
