/*
 * test_ingest.c - the ingest stage: UTF-8 validation and repair, the JSON
 * reader, .txt and .jsonl articles, the folder walk, and the bad-input set
 * (tests/fixtures/bad), all through the callback-level API (sh_ingest with
 * a recording article callback), so no writer is involved.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingest/ingest.h"
#include "support/run.h"

/* ---- a recording article callback ---------------------------------------- */

#define REC_MAX 64

typedef struct rec_doc {
    char *id, *title, *body, *date, *source, *url, *lang, *path;
    uint64_t line;
} rec_doc;

typedef struct rec_warn {
    char *path, *msg;
    uint64_t line;
} rec_warn;

typedef struct rec {
    rec_doc docs[REC_MAX];
    size_t ndocs;
    rec_warn warns[REC_MAX];
    size_t nwarns;         /* kept in warns */
    size_t nwarns_total;   /* all warn calls */
    size_t nprogress;
    uint64_t last_done, last_total;
    int fail_code;   /* returned by the callback for article number fail_at */
    size_t fail_at;  /* 1-based; 0: never */
    size_t ncalls;
    int count_only;  /* take every article without keeping it */
    sahel_ingest_stats st;
    sh_ingest in;
} rec;

static char *dup_or_null(const char *s, size_t len) {
    if (!s) return NULL;
    char *d = malloc(len + 1);
    cr_assert_not_null(d);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static int rec_add(void *ctx, const sahel_doc *doc, sahel_error *err) {
    rec *r = ctx;
    r->ncalls++;
    if (r->fail_at && r->ncalls == r->fail_at)
        return sh_err(err, r->fail_code, "injected failure %d", r->fail_code);
    /* The writer's contract: valid UTF-8, non-empty id, non-NULL body. */
    cr_assert(doc->id && doc->id_len > 0);
    cr_assert_not_null(doc->body);
    cr_assert(sh_utf8_valid(doc->id, doc->id_len));
    cr_assert(sh_utf8_valid(doc->body, doc->body_len));
    if (doc->title) cr_assert(sh_utf8_valid(doc->title, doc->title_len));
    if (r->count_only) return 0;
    for (size_t i = 0; i < r->ndocs; i++)
        if (strlen(r->docs[i].id) == doc->id_len && !memcmp(r->docs[i].id, doc->id, doc->id_len))
            return sh_err(err, SAHEL_EDUPLICATE, "duplicate");
    cr_assert_lt(r->ndocs, REC_MAX);
    rec_doc *d = &r->docs[r->ndocs++];
    d->id = dup_or_null(doc->id, doc->id_len);
    d->title = dup_or_null(doc->title, doc->title_len);
    d->body = dup_or_null(doc->body, doc->body_len);
    d->date = dup_or_null(doc->date, doc->date_len);
    d->source = dup_or_null(doc->source, doc->source_len);
    d->url = dup_or_null(doc->url, doc->url_len);
    d->lang = dup_or_null(doc->lang, doc->lang_len);
    d->path = dup_or_null(doc->path, doc->path_len);
    d->line = doc->line;
    return 0;
}

static void rec_warn_fn(void *ctx, const char *path, uint64_t line, const char *msg) {
    rec *r = ctx;
    r->nwarns_total++;
    if (r->count_only) return;
    cr_assert_lt(r->nwarns, REC_MAX);
    rec_warn *w = &r->warns[r->nwarns++];
    w->path = strdup(path);
    w->msg = strdup(msg);
    w->line = line;
}

static void rec_progress(void *ctx, uint64_t done, uint64_t total, uint64_t ndocs) {
    rec *r = ctx;
    cr_assert_geq(done, r->last_done, "progress never goes back");
    cr_assert_leq(done, total);
    (void)ndocs;
    r->nprogress++;
    r->last_done = done;
    r->last_total = total;
}

static rec *rec_new(void) {
    rec *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    sahel_ingest_opts opts = {rec_warn_fn, rec_progress, r};
    sh_ingest_init(&r->in, rec_add, r, &opts, &r->st);
    return r;
}

static void rec_free(rec *r) {
    for (size_t i = 0; i < r->ndocs; i++) {
        rec_doc *d = &r->docs[i];
        char *fields[] = {d->id, d->title, d->body, d->date, d->source, d->url, d->lang, d->path};
        for (size_t j = 0; j < sizeof fields / sizeof fields[0]; j++) free(fields[j]);
    }
    for (size_t i = 0; i < r->nwarns; i++) {
        free(r->warns[i].path);
        free(r->warns[i].msg);
    }
    sh_ingest_free(&r->in);
    free(r);
}

static int feed(rec *r, const char *path, const char *data, size_t len) {
    sahel_error err = {0};
    return sh_ingest_buffer(&r->in, path, data, len, &err);
}

#define FEED(r, path, lit) cr_assert_eq(feed((r), (path), (lit), sizeof(lit) - 1), 0)

static void assert_warn(const rec *r, size_t i, const char *path, uint64_t line, const char *msg) {
    cr_assert_lt(i, r->nwarns, "warning %zu missing (%zu given)", i, r->nwarns);
    cr_assert_str_eq(r->warns[i].path, path);
    cr_assert_eq(r->warns[i].line, line, "warning %zu: line %llu, expected %llu", i,
                 (unsigned long long)r->warns[i].line, (unsigned long long)line);
    cr_assert_str_eq(r->warns[i].msg, msg);
}

/* ---- utf8 ---------------------------------------------------------------- */

#define VALID(lit) sh_utf8_valid((lit), sizeof(lit) - 1)

Test(utf8, valid_accepts_ascii_multibyte_and_emoji) {
    cr_assert(VALID(""));
    cr_assert(VALID("Mali, Burkina Faso and Niger"));
    cr_assert(VALID("Go\xC3\xAFta"));                 /* U+00EF */
    cr_assert(VALID("\xE2\x82\xAC 5"));               /* U+20AC */
    cr_assert(VALID("\xF0\x9F\x98\x80"));             /* U+1F600, 4 bytes */
    cr_assert(VALID("\xF4\x8F\xBF\xBF"));             /* U+10FFFF, the last */
    cr_assert(VALID("\xED\x9F\xBF\xEE\x80\x80"));     /* U+D7FF, U+E000 around surrogates */
    cr_assert(VALID("0123456789abcdef\xC2\x80""0123456789abcdef"));
}

Test(utf8, valid_rejects_overlong_forms) {
    cr_assert_not(VALID("\xC0\xAF"));
    cr_assert_not(VALID("\xC1\xBF"));
    cr_assert_not(VALID("\xE0\x80\xAF"));
    cr_assert_not(VALID("\xE0\x9F\xBF"));
    cr_assert_not(VALID("\xF0\x80\x80\xAF"));
    cr_assert_not(VALID("\xF0\x8F\xBF\xBF"));
}

Test(utf8, valid_rejects_encoded_surrogates) {
    cr_assert_not(VALID("\xED\xA0\x80"));             /* U+D800 */
    cr_assert_not(VALID("\xED\xBF\xBF"));             /* U+DFFF */
    cr_assert_not(VALID("\xED\xA0\xBD\xED\xB8\x80")); /* CESU-8 pair */
}

Test(utf8, valid_rejects_above_max_and_five_byte_forms) {
    cr_assert_not(VALID("\xF4\x90\x80\x80"));         /* U+110000 */
    cr_assert_not(VALID("\xF5\x80\x80\x80"));
    cr_assert_not(VALID("\xF8\x88\x80\x80\x80"));     /* 5-byte form */
    cr_assert_not(VALID("\xFC\x84\x80\x80\x80\x80")); /* 6-byte form */
    cr_assert_not(VALID("\xFE"));
    cr_assert_not(VALID("\xFF"));
}

Test(utf8, valid_rejects_truncated_and_stray_bytes) {
    cr_assert_not(VALID("\xE2\x82"));                 /* cut at the end */
    cr_assert_not(VALID("\xF0\x9F\x98"));
    cr_assert_not(VALID("\xE2\x82x"));                /* cut in the middle */
    cr_assert_not(VALID("\x80"));                     /* lone continuation */
    cr_assert_not(VALID("ab\xBF"));
}

Test(utf8, valid_prefix_is_the_offset_of_the_first_bad_sequence) {
    cr_assert_eq(sh_utf8_valid_prefix("abc", 3), 3);
    cr_assert_eq(sh_utf8_valid_prefix("0123456789\xC3\xA9xyz\xFFq", 17), 15);
    cr_assert_eq(sh_utf8_valid_prefix("ab\xE2\x82", 4), 2);
    cr_assert_eq(sh_utf8_valid_prefix("\xF0\x9F\x98\x80\xED\xA0\x80", 7), 4);
}

static void check_repair(const char *in, size_t len, const char *want, size_t wlen, size_t wrepl) {
    sh_buf b = {0};
    size_t n = 99;
    cr_assert_eq(sh_utf8_repair(in, len, &b, &n), 0);
    cr_assert_eq(n, wrepl, "replacements: %zu, expected %zu", n, wrepl);
    cr_assert_eq(b.len, wlen, "length %zu, expected %zu", b.len, wlen);
    cr_assert(!memcmp(b.p, want, wlen));
    cr_assert(sh_utf8_valid((const char *)b.p, b.len));
    sh_buf_free(&b);
}

#define REPAIR(in, want, n) check_repair((in), sizeof(in) - 1, (want), sizeof(want) - 1, (n))
#define R "\xEF\xBF\xBD"

Test(utf8, repair_substitutes_maximal_subparts) {
    /* The example of Unicode 15 section 3.9, Table 3-8. */
    REPAIR("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
           "a" R R R "b" R "c" R R "d", 6);
}

Test(utf8, repair_vectors) {
    REPAIR("abc", "abc", 0);
    REPAIR("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", 0);       /* valid emoji untouched */
    REPAIR("\xC0\xAF", R R, 2);                              /* overlong: no valid prefix */
    REPAIR("\xE0\x80\xAF", R R R, 3);
    REPAIR("\xED\xA0\x80", R R R, 3);                        /* surrogate */
    REPAIR("\xF8\x88\x80\x80\x80", R R R R R, 5);            /* 5-byte form */
    REPAIR("x\xE2\x82", "x" R, 1);                           /* truncated at the end */
    REPAIR("\xE2\x82x", R "x", 1);                           /* truncated in the middle */
    REPAIR("\xF0\x9F\x98\xF0\x9F\x98\x80", R "\xF0\x9F\x98\x80", 1);
    REPAIR("\xF4\x90\x80\x80", R R R R, 4);                  /* above U+10FFFF */
    REPAIR("caf\xE9 ok", "caf" R " ok", 1);                  /* Latin-1 byte */
}

Test(utf8, repair_appends_to_what_the_buffer_holds) {
    sh_buf b = {0};
    cr_assert_eq(sh_buf_put(&b, "pre:", 4), 0);
    size_t n;
    cr_assert_eq(sh_utf8_repair("a\xFF", 2, &b, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(b.len, 8);
    cr_assert(!memcmp(b.p, "pre:a" R, 8));
    cr_assert_eq(sh_utf8_repair("", 0, &b, NULL), 0);
    cr_assert_eq(b.len, 8);
    sh_buf_free(&b);
}

/* ---- json ---------------------------------------------------------------- */

typedef struct parsed {
    sh_buf scratch;
    sh_json_article a;
    sahel_error err;
    int rc;
} parsed;

/* Parse a copy of the line in a block of exactly its size, so that ASan
 * reports any read past its end. */
static void parse(parsed *p, const char *line, size_t len) {
    memset(p, 0, sizeof *p);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len) memcpy(copy, line, len);
    p->rc = sh_json_parse_article(copy, len, &p->scratch, &p->a, &p->err);
    free(copy); /* the decoded fields live in scratch, not in the line */
}

#define PARSE(p, lit) parse((p), (lit), sizeof(lit) - 1)

static void assert_field(sh_json_str f, const char *want, size_t wlen) {
    cr_assert(f.present, "field absent, expected \"%s\"", want);
    cr_assert_eq(f.len, wlen, "field length %zu, expected %zu", f.len, wlen);
    cr_assert(!memcmp(f.s, want, wlen), "field is \"%.*s\"", (int)f.len, f.s);
}

#define FIELD(f, lit) assert_field((f), (lit), sizeof(lit) - 1)

static void assert_json_error(const char *line, const char *msg) {
    parsed p;
    parse(&p, line, strlen(line));
    cr_assert_eq(p.rc, SAHEL_EINVAL, "accepted: %s", line);
    cr_assert_eq(p.err.code, SAHEL_EINVAL);
    cr_assert_str_eq(p.err.msg, msg, "for %s", line);
    sh_buf_free(&p.scratch);
}

Test(json, parses_every_article_field) {
    parsed p;
    PARSE(&p, " {\"id\": \"a1\", \"title\": \"Junta\", \"text\": \"Body.\", \"date\": \"2023-09-16\","
              " \"source\": \"RFI\", \"url\": \"https://rfi.fr/x\", \"lang\": \"fr\"}\r\n");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.id, "a1");
    FIELD(p.a.title, "Junta");
    FIELD(p.a.text, "Body.");
    FIELD(p.a.date, "2023-09-16");
    FIELD(p.a.source, "RFI");
    FIELD(p.a.url, "https://rfi.fr/x");
    FIELD(p.a.lang, "fr");
    cr_assert_eq(p.a.nrepl, 0);
    sh_buf_free(&p.scratch);
}

Test(json, absent_fields_are_null) {
    parsed p;
    PARSE(&p, "{}");
    cr_assert_eq(p.rc, 0);
    cr_assert_not(p.a.id.present);
    cr_assert_null(p.a.title.s);
    cr_assert_eq(p.a.text.len, 0);
    sh_buf_free(&p.scratch);
}

Test(json, decodes_simple_escapes) {
    parsed p;
    PARSE(&p, "{\"text\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t end\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.text, "q\" b\\ s/ \b\f\n\r\t end");
    sh_buf_free(&p.scratch);
}

Test(json, decodes_unicode_escapes_and_surrogate_pairs) {
    parsed p;
    PARSE(&p, "{\"title\":\"Go\\u00efta \\u20AC \\ud83d\\ude00 \\u0041\\u0000z\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.title, "Go\xC3\xAFta \xE2\x82\xAC \xF0\x9F\x98\x80 A\0z");
    cr_assert_eq(p.a.nrepl, 0);
    sh_buf_free(&p.scratch);
}

Test(json, lone_surrogates_become_replacement_characters) {
    parsed p;
    /* high alone, high followed by a non-surrogate escape, low alone */
    PARSE(&p, "{\"text\":\"a\\ud83d b\\uD83D\\u0041 c\\udc00\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.text, "a" R " b" R "A c" R);
    cr_assert_eq(p.a.nrepl, 3);
    cr_assert_eq(p.a.repl_column, 11); /* the backslash of \ud83d */
    sh_buf_free(&p.scratch);
}

Test(json, invalid_utf8_in_a_field_is_repaired_and_counted) {
    parsed p;
    PARSE(&p, "{\"id\":\"x\",\"text\":\"caf\xE9 and \xC0\xAF\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.text, "caf" R " and " R R);
    cr_assert_eq(p.a.nrepl, 3);
    cr_assert_eq(p.a.repl_column, 22);
    sh_buf_free(&p.scratch);
}

Test(json, invalid_utf8_in_a_skipped_member_is_ignored) {
    parsed p;
    PARSE(&p, "{\"other\":\"\xFF\",\"text\":\"ok\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    cr_assert_eq(p.a.nrepl, 0);
    sh_buf_free(&p.scratch);
}

Test(json, numeric_id_is_kept_as_written) {
    parsed p;
    PARSE(&p, "{\"id\": -12.50e+3 , \"text\":\"t\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.id, "-12.50e+3");
    sh_buf_free(&p.scratch);
    PARSE(&p, "{\"id\":0}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.id, "0");
    sh_buf_free(&p.scratch);
}

Test(json, later_duplicate_member_wins_even_when_not_a_string) {
    parsed p;
    PARSE(&p, "{\"title\":\"first\",\"title\":\"second\",\"text\":\"t\",\"text\":null}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.title, "second");
    cr_assert_not(p.a.text.present);
    cr_assert_null(p.a.text.s);
    sh_buf_free(&p.scratch);
    PARSE(&p, "{\"id\":true,\"title\":[\"x\"],\"lang\":{\"a\":1}}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    cr_assert_not(p.a.id.present);
    cr_assert_not(p.a.title.present);
    cr_assert_not(p.a.lang.present);
    sh_buf_free(&p.scratch);
}

Test(json, escaped_member_name_matches_its_field) {
    parsed p;
    PARSE(&p, "{\"t\\u0065xt\":\"body\",\"\\u0069d\":\"7\",\"title\\u0000\":\"no\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.text, "body");
    FIELD(p.a.id, "7");
    cr_assert_not(p.a.title.present);
    sh_buf_free(&p.scratch);
}

Test(json, nested_values_are_validated_and_skipped) {
    parsed p;
    PARSE(&p, "{\"meta\":{\"tags\":[\"a\",\"b\",{\"x\":[1,2.5,-3e-2,true,false,null,[]]}],"
              "\"o\":{}},\"text\":\"kept\",\"n\":[ ],\"s\":\"\\u00e9\\\"\"}");
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    FIELD(p.a.text, "kept");
    sh_buf_free(&p.scratch);
}

static char *nested(int depth) {
    /* {"a": [[...[1]...]]} with `depth` levels in all, the object included */
    size_t n = 6 + 2 * (size_t)depth + 2;
    char *s = malloc(n);
    cr_assert_not_null(s);
    size_t i = 0;
    i += (size_t)sprintf(s, "{\"a\":");
    for (int d = 1; d < depth; d++) s[i++] = '[';
    s[i++] = '1';
    for (int d = 1; d < depth; d++) s[i++] = ']';
    s[i++] = '}';
    s[i] = '\0';
    return s;
}

Test(json, nesting_is_limited_to_64_levels) {
    parsed p;
    char *ok = nested(64), *deep = nested(65);
    parse(&p, ok, strlen(ok));
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    sh_buf_free(&p.scratch);
    parse(&p, deep, strlen(deep));
    cr_assert_eq(p.rc, SAHEL_EINVAL);
    cr_assert_str_eq(p.err.msg, "column 69: nesting deeper than 64 levels");
    sh_buf_free(&p.scratch);
    free(ok);
    free(deep);
}

Test(json, ten_thousand_brackets_fail_cleanly) {
    size_t n = 10000;
    char *s = malloc(n + 6);
    cr_assert_not_null(s);
    memcpy(s, "{\"a\":", 5);
    memset(s + 5, '[', n);
    parsed p;
    parse(&p, s, n + 5);
    cr_assert_eq(p.rc, SAHEL_EINVAL);
    sh_buf_free(&p.scratch);
    free(s);
}

Test(json, malformed_lines_name_the_column) {
    assert_json_error("", "column 1: unexpected end of line, expected '{' (a line must hold an object)");
    assert_json_error("[1]", "column 1: unexpected '[', expected '{' (a line must hold an object)");
    assert_json_error("\"text\"", "column 1: unexpected '\"', expected '{' (a line must hold an object)");
    assert_json_error("{\"id\":\"a1\",\"text\":\"no end", "column 19: unterminated string");
    assert_json_error("{\"text\":\"ends in \\", "column 9: unterminated string");
    assert_json_error("{\"id\":\"a\" \"text\":\"b\"}", "column 11: unexpected '\"', expected ',' or '}'");
    assert_json_error("{\"id\" \"a\"}", "column 7: unexpected '\"', expected ':'");
    assert_json_error("{\"id\":\"a\",}", "column 11: unexpected '}', expected a member name (string)");
    assert_json_error("{id:\"a\"}", "column 2: unexpected 'i', expected a member name (string)");
    assert_json_error("{\"a\":[1,]}", "column 9: unexpected ']', expected a value");
    assert_json_error("{\"a\":[1 2]}", "column 9: unexpected '2', expected ',' or ']'");
    assert_json_error("{\"a\":}", "column 6: unexpected '}', expected a value");
    assert_json_error("{\"a\":1", "column 7: unexpected end of line, expected ',' or '}'");
    assert_json_error("{\"a\":'x'}", "column 6: unexpected ''', expected a value");
    assert_json_error("{\"text\":\"bad \\q\"}", "column 14: invalid escape \\q");
    assert_json_error("{\"text\":\"\\u12G4\"}", "column 10: invalid \\u escape (four hex digits expected)");
    assert_json_error("{\"text\":\"\\u12\"}", "column 10: invalid \\u escape (four hex digits expected)");
    assert_json_error("{\"text\":\"tab\there\"}", "column 13: control character U+0009 in a string must be escaped");
    assert_json_error("{\"a\":01}", "column 6: invalid number (leading zero)");
    assert_json_error("{\"a\":1.}", "column 6: invalid number (digit expected after '.')");
    assert_json_error("{\"a\":-}", "column 6: invalid number (digit expected after '-')");
    assert_json_error("{\"a\":1e+}", "column 6: invalid number (digit expected in exponent)");
    assert_json_error("{\"a\":+1}", "column 6: unexpected '+', expected a value");
    assert_json_error("{\"a\":tru}", "column 6: invalid literal (expected true)");
    assert_json_error("{\"a\":nul", "column 6: invalid literal (expected null)");
    assert_json_error("{\"a\":1} x", "column 9: unexpected data after the object");
    assert_json_error("{} {}", "column 4: unexpected data after the object");
    assert_json_error("{\"a\":\xC3\xA9}", "column 6: unexpected byte 0xC3, expected a value");
}

/* Strings are scanned sixteen bytes at a time: whatever byte stops the
 * scan must be found at every offset within and across those steps. */
Test(json, special_bytes_are_found_at_every_offset_of_a_long_string) {
    static const char head[] = "{\"text\":\"";
    for (size_t k = 0; k < 48; k++) {
        char line[128], want[128];
        size_t n = 0;
        memcpy(line, head, sizeof head - 1);
        n = sizeof head - 1;
        memset(line + n, 'a', k);
        memset(want, 'a', k);
        n += k;
        parsed p;
        /* an escape at k */
        memcpy(line + n, "\\nbb\"}", 6);
        parse(&p, line, n + 6);
        cr_assert_eq(p.rc, 0, "%s", p.err.msg);
        memcpy(want + k, "\nbb", 3);
        assert_field(p.a.text, want, k + 3);
        sh_buf_free(&p.scratch);
        /* a control character at k: column of the byte */
        memcpy(line + n, "\x01" "b\"}", 4);
        parse(&p, line, n + 4);
        cr_assert_eq(p.rc, SAHEL_EINVAL, "offset %zu", k);
        char msg[96];
        snprintf(msg, sizeof msg, "column %zu: control character U+0001 in a string must be escaped",
                 sizeof head + k);
        cr_assert_str_eq(p.err.msg, msg);
        sh_buf_free(&p.scratch);
        /* an invalid byte at k, then plain bytes past the next step */
        memset(line + n, 'b', 40);
        line[n] = (char)0xFF;
        memcpy(line + n + 40, "\"}", 2);
        parse(&p, line, n + 42);
        cr_assert_eq(p.rc, 0, "%s", p.err.msg);
        memcpy(want + k, R, sizeof R - 1);
        memset(want + k + sizeof R - 1, 'b', 39);
        assert_field(p.a.text, want, k + sizeof R - 1 + 39);
        cr_assert_eq(p.a.nrepl, 1);
        cr_assert_eq(p.a.repl_column, sizeof head + k);
        sh_buf_free(&p.scratch);
        /* a valid two-byte character at k: kept as it is */
        line[n] = (char)0xC3;
        line[n + 1] = (char)0xA9;
        parse(&p, line, n + 42);
        cr_assert_eq(p.rc, 0, "%s", p.err.msg);
        memcpy(want + k, "\xC3\xA9", 2);
        memset(want + k + 2, 'b', 38);
        assert_field(p.a.text, want, k + 40);
        cr_assert_eq(p.a.nrepl, 0);
        sh_buf_free(&p.scratch);
        /* the closing quote at k */
        memcpy(line + n, "\"}", 2);
        parse(&p, line, n + 2);
        cr_assert_eq(p.rc, 0, "%s", p.err.msg);
        assert_field(p.a.text, want, k);
        sh_buf_free(&p.scratch);
    }
}

/* Every proper prefix of a valid line is invalid JSON, and reading it must
 * stay inside the prefix (parse() gives ASan an exact-size block). */
Test(json, every_truncation_is_rejected_without_reading_past_the_end) {
    static const char line[] =
        "{\"id\":\"a\\u00e9\",\"title\":\"\\ud83d\\ude00 x\",\"n\":[1,-2.5e3,{\"k\":null}],"
        "\"t\":true,\"f\":false,\"text\":\"caf\xC3\xA9 \\\"q\\\"\"}";
    size_t len = sizeof line - 1;
    parsed p;
    parse(&p, line, len);
    cr_assert_eq(p.rc, 0, "%s", p.err.msg);
    sh_buf_free(&p.scratch);
    for (size_t n = 0; n < len; n++) {
        parse(&p, line, n);
        cr_assert_eq(p.rc, SAHEL_EINVAL, "prefix of %zu bytes accepted", n);
        cr_assert(!strncmp(p.err.msg, "column ", 7), "%s", p.err.msg);
        sh_buf_free(&p.scratch);
    }
}

/* Random corruptions of a valid line: any outcome but a crash, an
 * overread (ASan) or a result that breaks the decoded-field contract. */
Test(json, random_corruptions_never_misbehave) {
    static const char line[] =
        "{\"id\":12,\"title\":\"T\\u00e9 \\ud83d\\ude00\",\"text\":\"a\\\\b\\n\",\"x\":[{\"y\":[1,2]},null],"
        "\"url\":\"u\",\"lang\":\"en\"}";
    static const char alphabet[] = "{}[]\":,\\u0123456789abcdefDEtrnl-+.eE \t\x80\xC3\xED\xF0\xFF";
    size_t len = sizeof line - 1;
    char buf[sizeof line];
    uint64_t seed = 0x5A4E1u; /* fixed: the run is reproducible */
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, line, len);
        int edits = 1 + (int)(seed % 4);
        for (int e = 0; e < edits; e++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            size_t at = (size_t)(seed >> 33) % len;
            buf[at] = alphabet[(seed >> 17) % (sizeof alphabet - 1)];
        }
        size_t n = (size_t)(seed >> 40) % (len + 1);
        parsed p;
        parse(&p, buf, n);
        cr_assert(p.rc == 0 || p.rc == SAHEL_EINVAL);
        if (p.rc == 0) {
            sh_json_str *f[] = {&p.a.id, &p.a.title, &p.a.text, &p.a.url, &p.a.lang};
            for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
                if (f[i]->present) cr_assert(sh_utf8_valid(f[i]->s, f[i]->len));
        } else {
            cr_assert(!strncmp(p.err.msg, "column ", 7), "%s", p.err.msg);
        }
        sh_buf_free(&p.scratch);
    }
}

/* ---- txt ----------------------------------------------------------------- */

static void assert_split(const char *text, const char *title, const char *body) {
    sh_txt_parts parts;
    cr_assert_eq(sh_txt_split(text, strlen(text), &parts), 1, "no title in \"%s\"", text);
    cr_assert_eq(parts.title_len, strlen(title), "title \"%.*s\"", (int)parts.title_len, parts.title);
    cr_assert(!memcmp(parts.title, title, parts.title_len));
    cr_assert_eq(parts.body_len, strlen(body), "body \"%.*s\"", (int)parts.body_len, parts.body);
    cr_assert(!memcmp(parts.body, body, parts.body_len));
}

Test(txt, title_is_the_first_non_blank_line_and_body_the_rest) {
    assert_split("Title\nBody line 1.\n\nBody line 2.\n", "Title", "Body line 1.\n\nBody line 2.");
    assert_split("\n  \n\t  Padded title \t\n\n  Body.  \n\n", "Padded title", "Body.");
    assert_split("\xEF\xBB\xBFWith BOM\nbody", "With BOM", "body");
    assert_split("\xEF\xBB\xBF\r\n\r\nCRLF title\r\n\r\nCRLF body\r\n", "CRLF title", "CRLF body");
    assert_split("Old Mac\rbody\r", "Old Mac", "body");
    assert_split("Only a title", "Only a title", "");
    assert_split("Title\n   \n", "Title", "");
    assert_split("Goïta speaks\nà Bamako", "Goïta speaks", "à Bamako");
}

Test(txt, blank_text_has_no_title) {
    sh_txt_parts parts;
    cr_assert_eq(sh_txt_split("", 0, &parts), 0);
    cr_assert_eq(sh_txt_split(" \n\t\r\n\v\f ", 8, &parts), 0);
    cr_assert_eq(sh_txt_split("\xEF\xBB\xBF\n", 4, &parts), 0);
}

Test(txt, file_is_one_article_named_after_the_file) {
    rec *r = rec_new();
    FEED(r, "corpus/2023/mali-pact.txt", "Mali and Burkina sign a pact\n\nThe two juntas...\n");
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].id, "mali-pact");
    cr_assert_str_eq(r->docs[0].title, "Mali and Burkina sign a pact");
    cr_assert_str_eq(r->docs[0].body, "The two juntas...");
    cr_assert_str_eq(r->docs[0].path, "corpus/2023/mali-pact.txt");
    cr_assert_eq(r->docs[0].line, 0);
    cr_assert_null(r->docs[0].date);
    cr_assert_eq(r->st.files, 1);
    cr_assert_eq(r->st.articles, 1);
    cr_assert_eq(r->st.bytes, 48);
    cr_assert_eq(r->st.warnings, 0);
    cr_assert_eq(r->nwarns, 0);
    FEED(r, "UPPER.TXT", "Upper-case extension\nbody");
    cr_assert_str_eq(r->docs[1].id, "UPPER");
    rec_free(r);
}

/* ---- jsonl --------------------------------------------------------------- */

Test(jsonl, one_article_per_line_with_line_numbers) {
    rec *r = rec_new();
    FEED(r, "feed.jsonl",
         "{\"id\":\"a\",\"title\":\"A\",\"text\":\"first\",\"date\":\"2024-01-02\",\"source\":\"RFI\","
         "\"url\":\"https://x\",\"lang\":\"en\"}\r\n"
         "\n"
         "   \r\n"
         "{\"id\":7,\"text\":\"no title\"}\n"
         "{\"id\":\"c\",\"title\":\"C\",\"text\":\"last, no newline\"}");
    cr_assert_eq(r->ndocs, 3);
    cr_assert_str_eq(r->docs[0].id, "a");
    cr_assert_str_eq(r->docs[0].title, "A");
    cr_assert_str_eq(r->docs[0].body, "first");
    cr_assert_str_eq(r->docs[0].date, "2024-01-02");
    cr_assert_str_eq(r->docs[0].source, "RFI");
    cr_assert_str_eq(r->docs[0].url, "https://x");
    cr_assert_str_eq(r->docs[0].lang, "en");
    cr_assert_str_eq(r->docs[0].path, "feed.jsonl");
    cr_assert_eq(r->docs[0].line, 1);
    cr_assert_str_eq(r->docs[1].id, "7");
    cr_assert_null(r->docs[1].title);
    cr_assert_null(r->docs[1].lang);
    cr_assert_eq(r->docs[1].line, 4);
    cr_assert_eq(r->docs[2].line, 5);
    cr_assert_str_eq(r->docs[2].body, "last, no newline");
    cr_assert_eq(r->nwarns, 0, "blank lines are skipped silently");
    cr_assert_eq(r->st.files, 1);
    cr_assert_eq(r->st.articles, 3);
    rec_free(r);
}

Test(jsonl, bad_lines_are_warned_and_skipped_and_reading_goes_on) {
    rec *r = rec_new();
    FEED(r, "d/bad.jsonl",
         "{\"id\":\"ok1\",\"text\":\"fine\"}\n"                 /* 1 */
         "{\"id\":\"x\",\"text\":\"cut\n"                       /* 2 */
         "{\"id\":\"y\",\"title\":\"no text\"}\n"               /* 3 */
         "{\"id\":\"z\",\"text\":42}\n"                         /* 4 */
         "{\"title\":\"no id\",\"text\":\"t\"}\n"               /* 5 */
         "{\"id\":\"\",\"text\":\"t\"}\n"                       /* 6 */
         "{\"id\":\"ok1\",\"text\":\"again\"}\n"                /* 7 */
         "not json\n"                                           /* 8 */
         "{\"id\":\"ok2\",\"text\":\"fine too\"}\n");           /* 9 */
    cr_assert_eq(r->ndocs, 2);
    cr_assert_str_eq(r->docs[0].id, "ok1");
    cr_assert_str_eq(r->docs[0].body, "fine");
    cr_assert_str_eq(r->docs[1].id, "ok2");
    cr_assert_eq(r->docs[1].line, 9);
    assert_warn(r, 0, "d/bad.jsonl", 2, "invalid JSON at column 18: unterminated string, line skipped");
    assert_warn(r, 1, "d/bad.jsonl", 3, "missing text field, skipped");
    assert_warn(r, 2, "d/bad.jsonl", 4, "missing text field, skipped");
    assert_warn(r, 3, "d/bad.jsonl", 5, "missing id field, skipped");
    assert_warn(r, 4, "d/bad.jsonl", 6, "empty id, skipped");
    assert_warn(r, 5, "d/bad.jsonl", 7, "duplicate id ok1 (first seen earlier), skipped");
    assert_warn(r, 6, "d/bad.jsonl", 8, "invalid JSON at column 1: unexpected 'n', expected '{' (a line must hold an object), line skipped");
    cr_assert_eq(r->nwarns, 7);
    cr_assert_eq(r->st.warnings, 7);
    cr_assert_eq(r->st.skipped, 7);
    cr_assert_eq(r->st.duplicates, 1);
    cr_assert_eq(r->st.articles, 2);
    rec_free(r);
}

Test(jsonl, nul_byte_skips_only_its_line) {
    rec *r = rec_new();
    static const char data[] = "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\0\"text\":\"y\"}\n{\"id\":\"c\",\"text\":\"z\"}\n";
    cr_assert_eq(feed(r, "n.jsonl", data, sizeof data - 1), 0);
    cr_assert_eq(r->ndocs, 2);
    cr_assert_str_eq(r->docs[1].id, "c");
    assert_warn(r, 0, "n.jsonl", 2, "binary data (NUL byte at offset 32), line skipped");
    cr_assert_eq(r->st.skipped, 1);
    rec_free(r);
}

Test(jsonl, invalid_utf8_is_repaired_and_the_article_kept) {
    rec *r = rec_new();
    FEED(r, "u.jsonl", "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"text\":\"caf\xE9 \\udc00\"}\n");
    cr_assert_eq(r->ndocs, 2);
    cr_assert_str_eq(r->docs[1].body, "caf" R " " R);
    assert_warn(r, 0, "u.jsonl", 2, "invalid UTF-8 at byte offset 43, replaced (2 sequences)");
    cr_assert_eq(r->st.repaired, 1);
    cr_assert_eq(r->st.warnings, 1);
    cr_assert_eq(r->st.skipped, 0);
    rec_free(r);
}

Test(jsonl, byte_order_mark_before_the_first_line_is_dropped) {
    rec *r = rec_new();
    FEED(r, "bom.jsonl", "\xEF\xBB\xBF{\"id\":\"a\",\"text\":\"x\"}\n");
    cr_assert_eq(r->ndocs, 1);
    cr_assert_eq(r->nwarns, 0);
    rec_free(r);
}

Test(jsonl, line_over_64_mib_is_skipped) {
    size_t big = SH_INGEST_MAX_LINE + 1;
    const char *tail = "\n{\"id\":\"after\",\"text\":\"t\"}\n";
    size_t len = big + strlen(tail);
    char *data = malloc(len);
    cr_assert_not_null(data);
    memset(data, ' ', big);
    memcpy(data, "{\"id\":\"huge\",\"text\":\"", 21);
    data[big - 2] = '"';
    data[big - 1] = '}';
    memcpy(data + big, tail, strlen(tail));
    rec *r = rec_new();
    cr_assert_eq(feed(r, "big.jsonl", data, len), 0);
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].id, "after");
    assert_warn(r, 0, "big.jsonl", 1, "line longer than 64 MiB (67108865 bytes), skipped");
    rec_free(r);
    free(data);
}

Test(jsonl, big_file_reports_progress_about_every_mib) {
    /* 3 MiB of 64-byte lines */
    static const char line[] = "{\"id\":\"%08zu\",\"text\":\"progress test line..................\"}\n";
    size_t nlines = (3u << 20) / 64, len = nlines * 64;
    cr_assert_eq(snprintf(NULL, 0, line, (size_t)0), 64);
    char *data = malloc(len + 1);
    cr_assert_not_null(data);
    for (size_t i = 0; i < nlines; i++) snprintf(data + 64 * i, 65, line, i);
    rec *r = rec_new();
    r->in.bytes_total = len;
    r->count_only = 1;
    cr_assert_eq(feed(r, "big.jsonl", data, len), 0);
    cr_assert_eq(r->st.articles, nlines);
    cr_assert_eq(r->nprogress, 4, "3 inside the file, 1 at its end");
    cr_assert_eq(r->last_done, len);
    cr_assert_eq(r->last_total, len);
    rec_free(r);
    free(data);
}

/* ---- the bad-input set, through the callback API ------------------------- */

Test(bad_input, empty_and_blank_files_are_skipped) {
    rec *r = rec_new();
    cr_assert_eq(feed(r, "empty.txt", "", 0), 0);
    FEED(r, "blank.txt", "  \n\n\t \r\n");
    FEED(r, "bom-only.txt", "\xEF\xBB\xBF\n");
    cr_assert_eq(r->ndocs, 0);
    assert_warn(r, 0, "empty.txt", 0, "empty file, skipped");
    assert_warn(r, 1, "blank.txt", 0, "empty file, skipped");
    assert_warn(r, 2, "bom-only.txt", 0, "empty file, skipped");
    cr_assert_eq(r->st.files, 3);
    cr_assert_eq(r->st.skipped, 3);
    rec_free(r);
}

Test(bad_input, binary_txt_names_the_nul_offset) {
    rec *r = rec_new();
    FEED(r, "bin.txt", "Title\nab\0\0cd");
    cr_assert_eq(r->ndocs, 0);
    assert_warn(r, 0, "bin.txt", 0, "binary file (NUL byte at offset 8), skipped");
    rec_free(r);
}

Test(bad_input, invalid_utf8_txt_is_repaired_and_kept) {
    rec *r = rec_new();
    FEED(r, "u.txt", "Caf\xE9 title\nbody \xF0\x9F\x98 end");
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].title, "Caf" R " title");
    cr_assert_str_eq(r->docs[0].body, "body " R " end");
    assert_warn(r, 0, "u.txt", 0, "invalid UTF-8 at byte offset 3, replaced (2 sequences)");
    cr_assert_eq(r->st.repaired, 1);
    cr_assert_eq(r->st.skipped, 0);
    rec_free(r);
}

Test(bad_input, file_name_that_is_not_utf8_is_repaired_in_id_and_path) {
    rec *r = rec_new();
    FEED(r, "dir/caf\xE9.txt", "Title\nbody");
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].id, "caf" R);
    cr_assert_str_eq(r->docs[0].path, "dir/caf" R ".txt");
    assert_warn(r, 0, "dir/caf\xE9.txt", 0, "file name is not valid UTF-8, replaced in the article path and id");
    rec_free(r);
}

Test(bad_input, other_extension_is_warned_and_skipped) {
    rec *r = rec_new();
    FEED(r, "notes.md", "# Notes\n");
    FEED(r, "x.txt.gz", "Title\n");
    cr_assert_eq(r->ndocs, 0);
    assert_warn(r, 0, "notes.md", 0, "not a .txt or .jsonl file, skipped");
    cr_assert_eq(r->st.files, 0);
    cr_assert_eq(r->st.skipped, 2);
    rec_free(r);
}

Test(bad_input, duplicate_id_across_txt_and_jsonl) {
    rec *r = rec_new();
    FEED(r, "a/twin.txt", "Twin\nfrom the txt");
    FEED(r, "a/twins.jsonl", "{\"id\":\"twin\",\"text\":\"from the jsonl\"}\n{\"id\":\"other\",\"text\":\"y\"}\n");
    cr_assert_eq(r->ndocs, 2);
    cr_assert_str_eq(r->docs[0].body, "from the txt");
    assert_warn(r, 0, "a/twins.jsonl", 1, "duplicate id twin (first seen earlier), skipped");
    cr_assert_eq(r->st.duplicates, 1);
    rec_free(r);
}

Test(bad_input, refused_record_is_a_warning) {
    rec *r = rec_new();
    r->fail_at = 1;
    r->fail_code = SAHEL_EINVAL;
    FEED(r, "r.jsonl", "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"text\":\"y\"}\n");
    cr_assert_eq(r->ndocs, 1);
    assert_warn(r, 0, "r.jsonl", 1, "article refused (injected failure -6), skipped");
    rec_free(r);
}

Test(bad_input, writer_failure_stops_the_ingest_and_is_returned) {
    rec *r = rec_new();
    r->fail_at = 2;
    r->fail_code = SAHEL_ENOMEM;
    static const char data[] = "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"b\",\"text\":\"y\"}\n{\"id\":\"c\",\"text\":\"z\"}\n";
    sahel_error err = {0};
    int rc = sh_ingest_buffer(&r->in, "w.jsonl", data, sizeof data - 1, &err);
    cr_assert_eq(rc, SAHEL_ENOMEM);
    cr_assert_eq(err.code, SAHEL_ENOMEM);
    cr_assert_str_eq(err.msg, "w.jsonl:2: injected failure -1");
    cr_assert_eq(r->ndocs, 1, "the third line is not read");
    cr_assert_eq(r->ncalls, 2);
    rec_free(r);
}

/* Random bytes as .txt and .jsonl: never an error, never an overread
 * (exact-size copies under ASan), every article valid UTF-8 (rec_add
 * checks), and the counters agree with the callbacks. */
Test(bad_input, random_files_never_misbehave) {
    static const char alphabet[] = "{}[]\":,\\u0aZ \n\r\t\0\x80\xC3\xA9\xED\xF0\xFF"
                                   "\"id\"\"text\"";
    uint64_t seed = 0xB4D1u; /* fixed: the run is reproducible */
    rec *r = rec_new();
    r->count_only = 1;
    for (int iter = 0; iter < 4000; iter++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t len = (size_t)(seed >> 33) % 300;
        char *data = malloc(len ? len : 1);
        cr_assert_not_null(data);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            data[i] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
        }
        /* half of the jsonl inputs get a valid line, so some are taken */
        if (len > 40 && iter % 4 == 1) memcpy(data, "{\"id\":\"r\",\"text\":\"x\"}\n", 23);
        cr_assert_eq(feed(r, iter % 2 ? "r.jsonl" : "r.txt", data, len), 0);
        free(data);
    }
    cr_assert_eq(r->st.files, 4000);
    cr_assert_eq(r->st.warnings, r->nwarns_total);
    cr_assert_eq(r->st.articles, r->ncalls);
    cr_assert_gt(r->st.articles, 0);
    rec_free(r);
}

/* ---- files and folders --------------------------------------------------- */

static void mkdirs(const char *path) {
    cr_assert_eq(sh_test_mkdir_p(path), 0, "mkdir -p %s: %s", path, strerror(errno));
}

static void rmtree(const char *path) {
    cr_assert_eq(sh_test_rm_rf(path), 0, "rm -rf %s: %s", path, strerror(errno));
}

static void write_file(const char *dir, const char *name, const char *data, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(sh_test_write_file(path, data, len), 0, "%s: %s", path, strerror(errno));
}

#define WRITE(dir, name, lit) write_file((dir), (name), (lit), sizeof(lit) - 1)

/* A fresh scratch folder for one test. */
static void scratch_dir(char *out, size_t n, const char *test) {
    snprintf(out, n, "%s/ingest_%s", SAHEL_TEST_TMP, test);
    rmtree(out);
    mkdirs(out);
}

static int ingest_path(rec *r, const char *path, sahel_error *err) {
    return sh_ingest_path(&r->in, path, err);
}

Test(walk, folders_are_read_in_byte_order_skipping_hidden_entries) {
    char dir[512], sub[600];
    scratch_dir(dir, sizeof dir, "order");
    snprintf(sub, sizeof sub, "%s/b", dir);
    mkdirs(sub);
    snprintf(sub, sizeof sub, "%s/.git", dir);
    mkdirs(sub);
    WRITE(dir, "a.txt", "A\nbody a");
    WRITE(dir, "B.txt", "B\nbody B");                         /* 'B' < 'a' in bytes */
    WRITE(dir, "b/c.jsonl", "{\"id\":\"c\",\"text\":\"c\"}\n");
    WRITE(dir, "b/ba.TXT", "BA\nbody");
    WRITE(dir, ".hidden.txt", "Hidden\nno");
    WRITE(dir, ".git/x.txt", "Hidden\nno");
    WRITE(dir, "notes.md", "# not an article");
    WRITE(dir, "data.json", "{}");
    rec *r = rec_new();
    char slashed[600];
    snprintf(slashed, sizeof slashed, "%s/", dir);           /* a trailing slash is not doubled */
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, slashed, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 4);
    cr_assert_str_eq(r->docs[0].id, "B");
    cr_assert_str_eq(r->docs[1].id, "a");
    cr_assert_str_eq(r->docs[2].id, "ba");
    cr_assert_str_eq(r->docs[3].id, "c");
    char want[700];
    snprintf(want, sizeof want, "%s/b/ba.TXT", dir);
    cr_assert_str_eq(r->docs[2].path, want);
    cr_assert_eq(r->nwarns, 0);
    cr_assert_eq(r->st.ignored_files, 2);
    cr_assert_eq(r->st.files, 4);
    rec_free(r);
    rmtree(dir);
}

Test(walk, symlink_loops_end_and_linked_files_are_read) {
    char dir[512], sub[600], link[600], target[600];
    scratch_dir(dir, sizeof dir, "links");
    snprintf(sub, sizeof sub, "%s/d", dir);
    mkdirs(sub);
    WRITE(dir, "d/x.txt", "X\nbody");
    WRITE(dir, "outside.txt", "Outside\nbody");
    snprintf(link, sizeof link, "%s/d/loop", dir);           /* d/loop -> .. */
    cr_assert_eq(symlink("..", link), 0);
    snprintf(link, sizeof link, "%s/d/y.txt", dir);          /* d/y.txt -> ../outside.txt */
    cr_assert_eq(symlink("../outside.txt", link), 0);
    snprintf(link, sizeof link, "%s/d/z.txt", dir);          /* dangling */
    cr_assert_eq(symlink("nowhere.txt", link), 0);
    snprintf(link, sizeof link, "%s/d/w.md", dir);           /* dangling, not an article */
    cr_assert_eq(symlink("nowhere.md", link), 0);
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 3);
    cr_assert_str_eq(r->docs[0].id, "x");
    cr_assert_str_eq(r->docs[1].id, "y", "a linked file is named by its link");
    cr_assert_str_eq(r->docs[1].title, "Outside");
    cr_assert_str_eq(r->docs[2].id, "outside");
    snprintf(target, sizeof target, "%s/d/loop", dir);
    assert_warn(r, 0, target, 0, "folder already visited (through a symbolic link), skipped");
    snprintf(target, sizeof target, "%s/d/z.txt", dir);
    assert_warn(r, 1, target, 0, "cannot read file: No such file or directory; skipped");
    cr_assert_eq(r->nwarns, 2);
    cr_assert_eq(r->st.ignored_files, 1);
    rec_free(r);
    rmtree(dir);
}

Test(walk, progress_reaches_the_total_of_article_sizes) {
    char dir[512];
    scratch_dir(dir, sizeof dir, "progress");
    WRITE(dir, "1.txt", "One\nbody");                        /* 8 bytes */
    WRITE(dir, "2.jsonl", "{\"id\":\"2\",\"text\":\"t\"}\n");  /* 22 bytes */
    WRITE(dir, "3.md", "ignored, not counted");
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(r->nprogress, 2);
    cr_assert_eq(r->last_total, 30);
    cr_assert_eq(r->last_done, 30);
    cr_assert_eq(r->st.bytes, 30);
    rec_free(r);
    rmtree(dir);
}

Test(walk, single_files_and_missing_sources) {
    char dir[512], path[600];
    scratch_dir(dir, sizeof dir, "single");
    WRITE(dir, "one.txt", "One\nbody");
    WRITE(dir, "one.csv", "a,b");
    rec *r = rec_new();
    sahel_error err = {0};
    snprintf(path, sizeof path, "%s/one.txt", dir);
    cr_assert_eq(ingest_path(r, path, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].path, path);
    snprintf(path, sizeof path, "%s/one.csv", dir);
    cr_assert_eq(ingest_path(r, path, &err), 0, "%s", err.msg);
    assert_warn(r, 0, path, 0, "not a .txt or .jsonl file, skipped");
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_eq(ingest_path(r, path, &err), SAHEL_EIO);
    char want[700];
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", path);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(r->nwarns, 1, "a missing source is an error, not a warning");
    rec_free(r);
    rmtree(dir);
}

Test(walk, unreadable_file_in_a_folder_is_a_warning) {
    if (geteuid() == 0) cr_skip_test("root reads files whatever their mode");
    char dir[512], path[600];
    scratch_dir(dir, sizeof dir, "unreadable");
    WRITE(dir, "a.txt", "A\nbody");
    WRITE(dir, "b.txt", "B\nbody");
    snprintf(path, sizeof path, "%s/a.txt", dir);
    cr_assert_eq(chmod(path, 0), 0);
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 1);
    assert_warn(r, 0, path, 0, "cannot read file: Permission denied; skipped");
    cr_assert_eq(ingest_path(r, path, &err), SAHEL_EIO, "the source itself unreadable: an error");
    rec_free(r);
    rmtree(dir);
}

Test(walk, file_over_4_gib_is_skipped_unread) {
    char dir[512], path[600];
    scratch_dir(dir, sizeof dir, "huge");
    WRITE(dir, "a.txt", "A\nbody");
    snprintf(path, sizeof path, "%s/huge.txt", dir);
    /* sparse: no disk space used, and the size alone decides */
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), (off_t)SH_INGEST_MAX_FILE + 1), 0, "%s", strerror(errno));
    cr_assert_eq(fclose(f), 0);
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 1);
    assert_warn(r, 0, path, 0,
                "input too large: 4294967297 bytes, over the 4 GiB limit for a file, skipped");
    cr_assert_eq(r->st.bytes, 6, "the big file is not read");
    cr_assert_eq(r->last_done, r->last_total, "progress still reaches its total");
    rec_free(r);
    rmtree(dir);
}

Test(walk, folders_nested_deeper_than_256_levels_are_skipped) {
    char dir[512];
    scratch_dir(dir, sizeof dir, "deep");
    size_t cap = strlen(dir) + 2 * 260 + 16;
    char *path = malloc(cap);
    cr_assert_not_null(path);
    size_t n = (size_t)snprintf(path, cap, "%s", dir);
    for (int level = 1; level <= 257; level++) {
        n += (size_t)snprintf(path + n, cap - n, "/d");
        cr_assert_eq(mkdir(path, 0755), 0, "%s", strerror(errno));
        if (level == 256) WRITE(path, "ok.txt", "Deep\nbut not too deep");
    }
    WRITE(path, "no.txt", "Too deep\nbody");
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(r->ndocs, 1);
    cr_assert_str_eq(r->docs[0].id, "ok");
    assert_warn(r, 0, path, 0, "folder nested deeper than 256 levels, skipped");
    cr_assert_eq(r->nwarns, 1);
    rec_free(r);
    free(path);
    rmtree(dir);
}

/* The fixtures the CLI tests index, copied so that a test that changes
 * them (the CLI test makes a file unreadable) cannot race with this one. */
Test(walk, bad_fixture_folder_gives_the_documented_warnings) {
    static const char *names[] = {"README.md", "binary.txt", "blank.txt", "broken.jsonl",
                                  "empty.txt", "invalid_utf8.txt", "twin.txt", "twins.jsonl"};
    char dir[512];
    scratch_dir(dir, sizeof dir, "fixtures");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char src[1024], cmd[2200];
        snprintf(src, sizeof src, "%s/tests/fixtures/bad/%s", SAHEL_SOURCE_DIR, names[i]);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s/'", src, dir);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    }
    rec *r = rec_new();
    sahel_error err = {0};
    cr_assert_eq(ingest_path(r, dir, &err), 0, "%s", err.msg);
    char p[8][700];
    const char *files[] = {"binary.txt", "blank.txt", "broken.jsonl", "broken.jsonl",
                           "broken.jsonl", "empty.txt", "invalid_utf8.txt", "twins.jsonl"};
    for (size_t i = 0; i < 8; i++) snprintf(p[i], sizeof p[i], "%s/%s", dir, files[i]);
    assert_warn(r, 0, p[0], 0, "binary file (NUL byte at offset 23), skipped");
    assert_warn(r, 1, p[1], 0, "empty file, skipped");
    assert_warn(r, 2, p[2], 2, "invalid JSON at column 46: unterminated string, line skipped");
    assert_warn(r, 3, p[3], 3, "missing text field, skipped");
    assert_warn(r, 4, p[4], 4, "duplicate id b1 (first seen earlier), skipped");
    assert_warn(r, 5, p[5], 0, "empty file, skipped");
    assert_warn(r, 6, p[6], 0, "invalid UTF-8 at byte offset 145, replaced (2 sequences)");
    assert_warn(r, 7, p[7], 1, "duplicate id twin (first seen earlier), skipped");
    cr_assert_eq(r->nwarns, 8);
    const char *ids[] = {"b1", "b5", "invalid_utf8", "twin", "42"};
    cr_assert_eq(r->ndocs, 5);
    for (size_t i = 0; i < 5; i++) cr_assert_str_eq(r->docs[i].id, ids[i]);
    cr_assert_eq(r->st.files, 7);
    cr_assert_eq(r->st.articles, 5);
    cr_assert_eq(r->st.warnings, 8);
    cr_assert_eq(r->st.skipped, 7);
    cr_assert_eq(r->st.repaired, 1);
    cr_assert_eq(r->st.duplicates, 2);
    cr_assert_eq(r->st.ignored_files, 1);
    rec_free(r);
    rmtree(dir);
}
