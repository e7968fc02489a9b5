/*
 * test_cli.c - end-to-end tests of the sahelindex and sahelsearch tools.
 *
 * Each test runs the built tools (SAHEL_BIN_DIR) as a user would, on the
 * bundled corpus (SAHEL_SOURCE_DIR/corpus) or on inputs it makes, in its
 * own scratch directory under SAHEL_TEST_TMP/cli (emptied first, so a
 * test never sees what an earlier run left), and checks exit statuses
 * (grep's: 0 found, 1 nothing, 2 error), what goes to stdout (results
 * only) and what goes to stderr (diagnostics naming the program and the
 * input at fault).
 *
 * Standard output is a file here, never a terminal, so highlights are
 * «marked» and no escape sequence may appear.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/run.h"

#define CORPUS SAHEL_SOURCE_DIR "/corpus"
#define BAD_FIXTURES SAHEL_SOURCE_DIR "/tests/fixtures/bad"
#define PACT_ID "003_b7d91cdb5117d903"
#define PACT_QUERY "mutual defense pact"
#define CORPUS_DOCS 5

/* Tests run without an inherited $SAHEL_INDEX: the default must not
 * depend on who runs them. */
static const char *const clean_env[] = {"SAHEL_INDEX", "NO_COLOR=1", NULL};

/* ---- helpers ------------------------------------------------------------ */

/* SAHEL_TEST_TMP/cli/<name>, emptied and created. */
static void scratch(const char *name, char *dir, size_t size) {
    int n = snprintf(dir, size, "%s/cli/%s", SAHEL_TEST_TMP, name);
    cr_assert(n > 0 && (size_t)n < size);
    cr_assert_eq(sh_test_rm_rf(dir), 0, "cannot empty %s", dir);
    cr_assert_eq(sh_test_mkdir_p(dir), 0, "cannot create %s", dir);
}

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
    int n = snprintf(buf, size, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < size);
}

/* Run SAHEL_BIN_DIR/<tool> with the NULL-terminated arguments that follow,
 * in `cwd` (NULL: here), with `env` (NULL: clean_env). */
static void run_tool(sh_test_run *r, const char *cwd, const char *const *env, const char *tool,
                     ...) {
    const char *argv[64];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SAHEL_BIN_DIR, tool);
    argv[0] = path;
    size_t n = 1;
    va_list ap;
    va_start(ap, tool);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        cr_assert(n < 63, "too many arguments");
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    cr_assert_eq(sh_test_run_argv(r, cwd, env ? env : clean_env, argv), 0, "cannot run %s",
                 path);
    cr_assert(!r->signaled, "%s was killed by signal %d; stderr:\n%s", tool, r->status - 128,
              r->err);
}

/* sahelindex build --index <index> <source>, which must succeed. */
static void build(const char *index, const char *source) {
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, source, NULL);
    cr_assert_eq(r.status, 0, "build of %s failed:\n%s", source, r.err);
    sh_test_run_free(&r);
}

static int contains(const char *haystack, const char *needle) {
    return strstr(haystack, needle) != NULL;
}

/* Number of lines of s. */
static size_t count_lines(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        if (*s == '\n') n++;
    return n;
}

/* Number of lines that begin a hit in the human output: " 1. ", "10. ". */
static size_t count_hit_lines(const char *s) {
    size_t n = 0;
    const char *line = s;
    while (*line) {
        const char *p = line;
        if (*p == ' ') p++;
        const char *digits = p;
        while (*p >= '0' && *p <= '9') p++;
        if (p > digits && p[0] == '.' && p[1] == ' ') n++;
        const char *nl = strchr(line, '\n');
        if (!nl) break;
        line = nl + 1;
    }
    return n;
}

/* The first file under dir (recursively) whose name ends with suffix. */
static int find_suffix(const char *dir, const char *suffix, char *out, size_t size) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    int rc = -1;
    size_t sl = strlen(suffix);
    while (rc != 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(sub, &st) != 0) continue;
        size_t nl = strlen(e->d_name);
        if (S_ISREG(st.st_mode) && nl > sl && strcmp(e->d_name + nl - sl, suffix) == 0) {
            snprintf(out, size, "%s", sub);
            rc = 0;
        } else if (S_ISDIR(st.st_mode)) {
            rc = find_suffix(sub, suffix, out, size);
        }
    }
    closedir(d);
    return rc;
}

/* ---- a small strict JSON validator (RFC 8259) for --json lines ---------- */

typedef struct jp {
    const char *p, *end;
    int depth;
} jp;

static int j_value(jp *j);

static void j_ws(jp *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int j_lit(jp *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) return -1;
    j->p += n;
    return 0;
}

static int j_string(jp *j) {
    if (j->p >= j->end || *j->p != '"') return -1;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') return 0;
        if (c < 0x20) return -1; /* control characters must be escaped */
        if (c != '\\') continue;
        if (j->p >= j->end) return -1;
        c = (unsigned char)*j->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++, j->p++) {
                if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p)) return -1;
            }
        } else if (!strchr("\"\\/bfnrt", c)) {
            return -1;
        }
    }
    return -1;
}

static int j_number(jp *j) {
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-') j->p++;
    if (j->p >= j->end) return -1;
    if (*j->p == '0') j->p++;
    else if (*j->p >= '1' && *j->p <= '9')
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    else return -1;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        const char *f = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        if (j->p == f) return -1;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        const char *x = j->p;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
        if (j->p == x) return -1;
    }
    return j->p > s ? 0 : -1;
}

static int j_container(jp *j, char close) {
    if (++j->depth > 64) return -1;
    j->p++;
    j_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (j_string(j)) return -1;
            j_ws(j);
            if (j->p >= j->end || *j->p++ != ':') return -1;
        }
        if (j_value(j)) return -1;
        j_ws(j);
        if (j->p >= j->end) return -1;
        char c = *j->p++;
        if (c == close) break;
        if (c != ',') return -1;
        j_ws(j);
    }
    j->depth--;
    return 0;
}

static int j_value(jp *j) {
    j_ws(j);
    if (j->p >= j->end) return -1;
    switch (*j->p) {
    case '{': return j_container(j, '}');
    case '[': return j_container(j, ']');
    case '"': return j_string(j);
    case 't': return j_lit(j, "true");
    case 'f': return j_lit(j, "false");
    case 'n': return j_lit(j, "null");
    default: return j_number(j);
    }
}

/* 1 when [s, s+len) is exactly one JSON object. */
static int json_object_ok(const char *s, size_t len) {
    jp j = {s, s + len, 0};
    j_ws(&j);
    if (j.p >= j.end || *j.p != '{') return 0;
    if (j_value(&j)) return 0;
    j_ws(&j);
    return j.p == j.end;
}

/* ---- searching ---------------------------------------------------------- */

Test(cli, search_ranks_the_pact_article_first_with_marked_snippet) {
    char dir[512], index[600];
    scratch("search_pact", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, CORPUS, NULL);
    cr_assert_eq(r.status, 0, "build failed:\n%s", r.err);
    cr_assert(contains(r.out, "indexed 5 articles"), "summary: %s", r.out);
    cr_assert(contains(r.out, index), "summary names the index: %s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert_eq(strncmp(r.out, " 1. " PACT_ID "  ", 4 + strlen(PACT_ID) + 2), 0,
                 "first hit:\n%s", r.out);
    cr_assert(contains(r.out, "\xc2\xabpact\xc2\xbb") || contains(r.out, "\xc2\xabmutual\xc2\xbb") ||
                  contains(r.out, "\xc2\xabPact\xc2\xbb") ||
                  contains(r.out, "\xc2\xabMutual\xc2\xbb"),
              "no marked word in:\n%s", r.out);
    cr_assert(!contains(r.out, "\033"), "escape sequence in non-terminal output");
    cr_assert(contains(r.out, "\n    "), "no indented snippet line:\n%s", r.out);
    cr_assert_eq(r.err_len, 0, "stderr not empty:\n%s", r.err);
    sh_test_run_free(&r);
}

Test(cli, query_words_given_as_separate_arguments_are_joined) {
    char dir[512], index[600];
    scratch("joined", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run one, three;
    run_tool(&one, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    run_tool(&three, NULL, NULL, "sahelsearch", "--index", index, "mutual", "defense", "pact",
             NULL);
    cr_assert_eq(one.status, 0);
    cr_assert_eq(three.status, 0);
    cr_assert_str_eq(one.out, three.out);
    sh_test_run_free(&one);
    sh_test_run_free(&three);

    /* a query that starts with '-' is an option unless -- comes first */
    run_tool(&one, NULL, NULL, "sahelsearch", "--index", index, "-coup", "mali", NULL);
    cr_assert_eq(one.status, 2);
    cr_assert(contains(one.err, "sahelsearch: unknown option -c"), "stderr:\n%s", one.err);
    cr_assert(contains(one.err, "--"), "no hint:\n%s", one.err);
    sh_test_run_free(&one);
    run_tool(&one, NULL, NULL, "sahelsearch", "--index", index, "--", "-coup", "mali", NULL);
    cr_assert_eq(one.status, 0, "stderr:\n%s", one.err);
    sh_test_run_free(&one);
}

Test(cli, json_lines_are_valid_objects_with_the_documented_keys) {
    char dir[512], index[600];
    scratch("json", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(count_lines(r.out) >= 1);
    cr_assert_eq(strncmp(r.out, "{\"rank\":1,\"id\":\"" PACT_ID "\"",
                         strlen("{\"rank\":1,\"id\":\"" PACT_ID "\"")),
                 0, "rank 1:\n%s", r.out);
    size_t rank = 0;
    for (char *line = r.out; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "last line not terminated");
        *nl = '\0';
        rank++;
        cr_assert(json_object_ok(line, (size_t)(nl - line)), "not a JSON object: %s", line);
        char want[32];
        snprintf(want, sizeof want, "{\"rank\":%zu,", rank);
        cr_assert_eq(strncmp(line, want, strlen(want)), 0, "rank %zu: %s", rank, line);
        static const char *const keys[] = {"\"id\":",   "\"score\":",   "\"title\":",
                                           "\"path\":", "\"snippet\":", NULL};
        for (size_t k = 0; keys[k]; k++)
            cr_assert(contains(line, keys[k]), "%s missing from %s", keys[k], line);
        cr_assert(!contains(line, "\033"));
        line = nl + 1;
    }
    sh_test_run_free(&r);
}

Test(cli, limit_option_gives_exactly_n_hits) {
    char dir[512], index[600];
    scratch("limit", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    /* "mali" occurs in several articles of the corpus */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "-n", "2", "mali niger", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert_eq(count_hit_lines(r.out), 2, "output:\n%s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--limit", "2", "--json",
             "mali niger", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert_eq(count_lines(r.out), 2, "output:\n%s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "-n", "0", "mali", NULL);
    cr_assert_eq(r.status, 2, "-n 0 is a usage error");
    cr_assert(contains(r.err, "usage:"));
    sh_test_run_free(&r);
}

Test(cli, threads_option_is_checked_and_keeps_the_hits) {
    char dir[512], index[600];
    scratch("threads", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    /* the split itself is checked against the oracle (test_oracle.c): on
     * an index this small no query is worth splitting, and the hits of
     * any thread count are the one-thread hits, byte for byte */
    sh_test_run one, r;
    run_tool(&one, NULL, NULL, "sahelsearch", "--index", index, "--json", "-j", "1",
             "mali niger pact", NULL);
    cr_assert_eq(one.status, 0, "stderr:\n%s", one.err);
    static const char *const counts[] = {"2", "3", "64"};
    for (size_t i = 0; i < 3; i++) {
        run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "--threads",
                 counts[i], "mali niger pact", NULL);
        cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
        cr_assert_str_eq(r.out, one.out, "--threads %s", counts[i]);
        sh_test_run_free(&r);
    }
    sh_test_run_free(&one);

    static const char *const bad[] = {"0", "65", "two", ""};
    for (size_t i = 0; i < 4; i++) {
        run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "-j", bad[i], "mali", NULL);
        cr_assert_eq(r.status, 2, "-j '%s' is a usage error", bad[i]);
        cr_assert(contains(r.err, "--threads: '") && contains(r.err, "between 1 and 64"), "%s",
                  r.err);
        cr_assert_eq(r.out_len, 0);
        sh_test_run_free(&r);
    }
}

Test(cli, explain_adds_score_lines_under_each_hit) {
    char dir[512], index[600];
    scratch("explain", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run plain, explained;
    run_tool(&plain, NULL, NULL, "sahelsearch", "--index", index, "-n", "1", PACT_QUERY, NULL);
    run_tool(&explained, NULL, NULL, "sahelsearch", "--index", index, "-n", "1", "--explain",
             PACT_QUERY, NULL);
    cr_assert_eq(plain.status, 0);
    cr_assert_eq(explained.status, 0, "stderr:\n%s", explained.err);
    cr_assert_gt(count_lines(explained.out), count_lines(plain.out), "explain:\n%s",
                 explained.out);
    cr_assert_eq(count_hit_lines(explained.out), 1);
    sh_test_run_free(&plain);
    sh_test_run_free(&explained);
}

Test(cli, no_hit_exits_1_with_a_message_on_stderr) {
    char dir[512], index[600];
    scratch("nohit", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "xylophonequark", NULL);
    cr_assert_eq(r.status, 1, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
    cr_assert_eq(r.out_len, 0, "stdout must stay empty:\n%s", r.out);
    cr_assert(contains(r.err, "sahelsearch: no match for: xylophonequark"), "stderr:\n%s",
              r.err);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "xylophonequark",
             NULL);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(r.out_len, 0);
    sh_test_run_free(&r);
}

Test(cli, malformed_query_exits_2_and_points_at_the_column) {
    char dir[512], index[600];
    scratch("badquery", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "\"unclosed", NULL);
    cr_assert_eq(r.status, 2, "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "sahelsearch: query error: "), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "column"), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "  \"unclosed\n"), "query not echoed:\n%s", r.err);
    cr_assert(contains(r.err, "^"), "no caret:\n%s", r.err);
    cr_assert_eq(r.out_len, 0);
    sh_test_run_free(&r);

    /* the caret stands under the parenthesis that is never closed */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "mali AND (niger OR", NULL);
    cr_assert_eq(r.status, 2, "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "query error: column 10:"), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "\n  mali AND (niger OR\n           ^\n"), "stderr:\n%s", r.err);
    sh_test_run_free(&r);
}

Test(cli, article_text_is_escaped_in_json_and_defanged_on_a_terminal) {
    char dir[512], src[600], index[600];
    scratch("escaping", dir, sizeof dir);
    path_in(src, sizeof src, dir, "odd.jsonl");
    path_in(index, sizeof index, dir, "idx");
    /* a title with quotes, a backslash and a TAB; a body with an escape
     * sequence that would turn a terminal red, and a C1 CSI (U+009B) */
    static const char jsonl[] =
        "{\"id\":\"odd\\\"id\",\"title\":\"Say \\\"hi\\\"\\tback\\\\slash\","
        "\"text\":\"A \\u001b[31mred alert\\u001b[0m and a \\u009b2J harmattan warning.\"}\n";
    cr_assert_eq(sh_test_write_file(src, jsonl, sizeof jsonl - 1), 0);
    build(index, src);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "harmattan", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert_eq(count_lines(r.out), 1);
    cr_assert(json_object_ok(r.out, r.out_len - 1), "not JSON: %s", r.out);
    cr_assert(contains(r.out, "\"id\":\"odd\\\"id\""), "%s", r.out);
    cr_assert(contains(r.out, "\"title\":\"Say \\\"hi\\\"\\u0009back\\\\slash\""), "%s", r.out);
    /* the snippet is display text: controls became spaces */
    cr_assert(contains(r.out, "\"snippet\":\"A [31mred alert [0m and"), "%s", r.out);
    cr_assert(!contains(r.out, "\033"), "raw ESC in JSON: %s", r.out);
    cr_assert(contains(r.out, "\xc2\xabharmattan\xc2\xbb"), "%s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "harmattan", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(!contains(r.out, "\033"), "ESC reached the output:\n%s", r.out);
    cr_assert(!contains(r.out, "\xc2\x9b"), "CSI reached the output:\n%s", r.out);
    cr_assert(!contains(r.out, "\t"), "TAB in the output:\n%s", r.out);
    cr_assert(contains(r.out, "Say \"hi\" back\\slash"), "%s", r.out);
    sh_test_run_free(&r);
}

/* ---- the index: where it is, what if it is not there -------------------- */

Test(cli, missing_index_exits_2_with_a_hint_to_build_one) {
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", "/nonexistent/sahel-index", "pact",
             NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "sahelsearch: "), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "/nonexistent/sahel-index"), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "sahelindex build --index /nonexistent/sahel-index SOURCE..."),
              "no hint:\n%s", r.err);
    cr_assert_eq(r.out_len, 0);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelindex", "verify", "--index", "/nonexistent/sahel-index",
             NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "sahelindex: "), "stderr:\n%s", r.err);
    sh_test_run_free(&r);
}

Test(cli, directory_that_is_not_an_index_exits_2) {
    char dir[512], file[600];
    scratch("notindex", dir, sizeof dir);
    path_in(file, sizeof file, dir, "notes.txt");
    cr_assert_eq(sh_test_write_file(file, "hello\n", 6), 0);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", dir, "pact", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, dir), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "sahelindex build"), "no hint:\n%s", r.err);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelindex", "stats", "--index", dir, NULL);
    cr_assert_eq(r.status, 2);
    sh_test_run_free(&r);
}

Test(cli, sahel_index_environment_variable_is_honoured) {
    char dir[512], index[600], env_index[700];
    scratch("env", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    snprintf(env_index, sizeof env_index, "SAHEL_INDEX=%s", index);
    const char *const env[] = {env_index, "NO_COLOR=1", NULL};

    sh_test_run r;
    run_tool(&r, NULL, env, "sahelindex", "build", CORPUS, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    sh_test_run_free(&r);

    run_tool(&r, NULL, env, "sahelsearch", PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert_eq(strncmp(r.out, " 1. " PACT_ID, 4 + strlen(PACT_ID)), 0, "%s", r.out);
    sh_test_run_free(&r);

    /* --index wins over the environment */
    run_tool(&r, NULL, env, "sahelsearch", "--index", "/nonexistent/other", PACT_QUERY, NULL);
    cr_assert_eq(r.status, 2);
    sh_test_run_free(&r);
}

Test(cli, default_index_is_dot_sahelsearch_in_the_current_directory) {
    char dir[512], index[600];
    scratch("default", dir, sizeof dir);
    path_in(index, sizeof index, dir, ".sahelsearch");

    sh_test_run r;
    run_tool(&r, dir, NULL, "sahelindex", "build", CORPUS, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    sh_test_run_free(&r);
    struct stat st;
    cr_assert_eq(stat(index, &st), 0, "no index at %s", index);

    run_tool(&r, dir, NULL, "sahelsearch", PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    sh_test_run_free(&r);
}

/* ---- building ----------------------------------------------------------- */

Test(cli, building_again_without_force_fails_and_keeps_the_old_index) {
    char dir[512], index[600];
    scratch("noforce", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, CORPUS, NULL);
    cr_assert_eq(r.status, 2, "stdout:\n%s", r.out);
    cr_assert(contains(r.err, "--force"), "no hint:\n%s", r.err);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "old index broken:\n%s", r.err);
    cr_assert_eq(strncmp(r.out, " 1. " PACT_ID, 4 + strlen(PACT_ID)), 0);
    sh_test_run_free(&r);
}

Test(cli, force_rebuild_replaces_the_index) {
    char dir[512], index[600];
    scratch("force", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--force", "--index", index,
             CORPUS "/000_71a3fc881f81f313.txt", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(contains(r.out, "indexed 1 article "), "summary: %s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelindex", "stats", "--index", index, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(contains(r.out, "documents:   1\n"), "stats:\n%s", r.out);
    sh_test_run_free(&r);

    /* the pact article is gone with the old index */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "-n", "100",
             PACT_QUERY, NULL);
    cr_assert(!contains(r.out, PACT_ID), "old article still found:\n%s", r.out);
    sh_test_run_free(&r);
}

Test(cli, build_without_source_is_a_usage_error) {
    char dir[512], index[600];
    scratch("nosource", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "usage:"), "stderr:\n%s", r.err);
    sh_test_run_free(&r);
}

Test(cli, missing_source_is_a_warning_and_the_others_are_indexed) {
    char dir[512], index[600];
    scratch("somemissing", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, "/nonexistent/news",
             CORPUS, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "sahelindex: warning: /nonexistent/news: "), "stderr:\n%s",
              r.err);
    cr_assert(contains(r.out, "indexed 5 articles"), "summary: %s", r.out);
    cr_assert(contains(r.out, "(1 warning,"), "summary: %s", r.out);
    sh_test_run_free(&r);
}

Test(cli, all_sources_missing_fails_and_writes_nothing) {
    char dir[512], index[600];
    scratch("allmissing", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, "/nonexistent/a",
             "/nonexistent/b", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "/nonexistent/a") && contains(r.err, "/nonexistent/b"),
              "stderr:\n%s", r.err);
    cr_assert_eq(r.out_len, 0);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "pact", NULL);
    cr_assert_eq(r.status, 2, "an index was committed");
    sh_test_run_free(&r);

    /* sources that are there but hold no article: nothing is committed
     * either, so a good index is never replaced by an empty one */
    build(index, CORPUS);
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--force", "--index", index,
             BAD_FIXTURES "/empty.txt", NULL);
    cr_assert_eq(r.status, 2, "stdout:\n%s", r.out);
    cr_assert(contains(r.err, "empty.txt: empty file"), "stderr:\n%s", r.err);
    cr_assert(contains(r.err, "nothing was committed"), "stderr:\n%s", r.err);
    sh_test_run_free(&r);
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "the old index was lost:\n%s", r.err);
    sh_test_run_free(&r);
}

Test(cli, unreadable_file_is_a_warning_and_the_build_goes_on) {
    char dir[512], src[600], secret[700], index[600];
    scratch("unreadable", dir, sizeof dir);
    path_in(src, sizeof src, dir, "src");
    path_in(index, sizeof index, dir, "idx");
    cr_assert_eq(sh_test_copy_tree(CORPUS, src), 0);
    path_in(secret, sizeof secret, src, "secret.txt");
    static const char text[] = "Secret title\n\nA secret body about the harmattan.\n";
    cr_assert_eq(sh_test_write_file(secret, text, sizeof text - 1), 0);
    cr_assert_eq(chmod(secret, 0), 0);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, src, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    /* root reads any file: the warning can only be expected of others */
    if (geteuid() != 0) {
        cr_assert(contains(r.err, "sahelindex: warning: ") && contains(r.err, "secret.txt"),
                  "no warning naming the file:\n%s", r.err);
        cr_assert(contains(r.out, "indexed 5 articles"), "summary: %s", r.out);
    }
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    sh_test_run_free(&r);
    chmod(secret, 0600);
}

/* tests/fixtures/bad/README.md lists what indexing that folder must say. */
Test(cli, bad_fixtures_give_one_warning_each_and_good_articles_stay_searchable) {
    char dir[512], index[600];
    scratch("badfixtures", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--index", index, BAD_FIXTURES, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    static const char *const warnings[] = {
        "/binary.txt: binary file",
        "/blank.txt: empty file",
        "/broken.jsonl:2: invalid JSON at column 46",
        "/broken.jsonl:3: missing text field",
        "/broken.jsonl:4: duplicate id b1",
        "/empty.txt: empty file",
        "/invalid_utf8.txt: invalid UTF-8 at byte offset 145",
        "/twins.jsonl:1: duplicate id twin",
        NULL,
    };
    size_t nwarn = 0;
    for (; warnings[nwarn]; nwarn++) {
        char want[256];
        snprintf(want, sizeof want, "sahelindex: warning: %s%s", BAD_FIXTURES, warnings[nwarn]);
        cr_assert(contains(r.err, want), "missing \"%s\" in:\n%s", want, r.err);
    }
    cr_assert_eq(count_lines(r.err), nwarn, "one line per warning:\n%s", r.err);
    cr_assert(contains(r.out, "indexed 5 articles from 7 files (8 warnings, 7 skipped, "
                              "1 repaired, 2 duplicates, 1 file ignored)"),
              "summary: %s", r.out);
    sh_test_run_free(&r);

    static const struct {
        const char *query, *id;
    } good[] = {
        {"airspace", "b1"},        {"ouagadougou", "b5"}, {"curfew", "invalid_utf8"},
        {"liptako", "twin"},       {"numeric", "42"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "-n", "1",
                 good[i].query, NULL);
        cr_assert_eq(r.status, 0, "%s: stderr:\n%s", good[i].query, r.err);
        char want[64];
        snprintf(want, sizeof want, "{\"rank\":1,\"id\":\"%s\",", good[i].id);
        cr_assert_eq(strncmp(r.out, want, strlen(want)), 0, "%s:\n%s", good[i].query, r.out);
        sh_test_run_free(&r);
    }

    /* an article of a .jsonl file is shown with its line, date and source */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "airspace", NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(contains(r.out, "    2023-08-06 \xc2\xb7 RFI \xc2\xb7 " BAD_FIXTURES
                              "/broken.jsonl:1\n"),
              "metadata line:\n%s", r.out);
    sh_test_run_free(&r);
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "ouagadougou", NULL);
    cr_assert(contains(r.out, "\"path\":\"" BAD_FIXTURES "/broken.jsonl\",\"line\":5,"), "%s",
              r.out);
    sh_test_run_free(&r);

    /* the lines skipped are not in the index */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "\"line cut short\"", NULL);
    cr_assert_eq(r.status, 1, "%s", r.out);
    sh_test_run_free(&r);
}

/* ---- verify, stats, damage ---------------------------------------------- */

Test(cli, verify_and_stats_describe_a_sound_index) {
    char dir[512], index[600];
    scratch("verify", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    build(index, CORPUS);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "verify", "--index", index, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    cr_assert(contains(r.out, "ok: 5 documents, "), "verify: %s", r.out);
    cr_assert(contains(r.out, "all checksums match"), "verify: %s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelindex", "stats", "--index", index, NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    static const char *const fields[] = {"documents:   5\n", "segments:", "terms:", "size:",
                                         "generation:", "avg title:", "avg body:",
                                         "language:", NULL};
    for (size_t i = 0; fields[i]; i++)
        cr_assert(contains(r.out, fields[i]), "%s missing:\n%s", fields[i], r.out);
    sh_test_run_free(&r);

    /* options of build are refused elsewhere */
    run_tool(&r, NULL, NULL, "sahelindex", "verify", "--force", "--index", index, NULL);
    cr_assert_eq(r.status, 2);
    sh_test_run_free(&r);
}

/* Build an index in <dir>/idx and return the path of one of its segments. */
static void index_with_segment(const char *dir, char *index, size_t isize, char *seg,
                               size_t ssize) {
    path_in(index, isize, dir, "idx");
    build(index, CORPUS);
    cr_assert_eq(find_suffix(index, ".sseg", seg, ssize), 0, "no .sseg file in %s", index);
}

/* A damage report: exit 2, the word "damaged" or the file's name. */
static void assert_damage_reported(const sh_test_run *r, const char *seg) {
    const char *base = strrchr(seg, '/');
    base = base ? base + 1 : seg;
    cr_assert_eq(r->status, 2, "status %d, stdout:\n%s\nstderr:\n%s", r->status, r->out, r->err);
    cr_assert(contains(r->err, "damaged") || contains(r->err, base), "stderr:\n%s", r->err);
}

Test(cli, truncated_segment_is_reported_as_damage) {
    char dir[512], index[600], seg[1024];
    scratch("truncated", dir, sizeof dir);
    index_with_segment(dir, index, sizeof index, seg, sizeof seg);
    struct stat st;
    cr_assert_eq(stat(seg, &st), 0);
    cr_assert_eq(truncate(seg, st.st_size / 2), 0);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    assert_damage_reported(&r, seg);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelindex", "verify", "--index", index, NULL);
    assert_damage_reported(&r, seg);
    sh_test_run_free(&r);
}

Test(cli, flipped_bytes_in_a_segment_are_reported_as_damage) {
    char dir[512], index[600], seg[1024];
    scratch("flipped", dir, sizeof dir);
    index_with_segment(dir, index, sizeof index, seg, sizeof seg);
    size_t len;
    char *data = sh_test_read_file(seg, &len);
    cr_assert_not_null(data);
    cr_assert_gt(len, 64);
    for (size_t i = len / 2; i < len / 2 + 16; i++) data[i] = (char)(data[i] ^ 0xff);
    cr_assert_eq(sh_test_write_file(seg, data, len), 0);
    free(data);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "verify", "--index", index, NULL);
    assert_damage_reported(&r, seg);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, PACT_QUERY, NULL);
    assert_damage_reported(&r, seg);
    sh_test_run_free(&r);
}

/* ---- batch mode --------------------------------------------------------- */

Test(cli, batch_queries_give_a_trec_run) {
    char dir[512], index[600], queries[600];
    scratch("trec", dir, sizeof dir);
    path_in(index, sizeof index, dir, "idx");
    path_in(queries, sizeof queries, dir, "queries.tsv");
    build(index, CORPUS);
    static const char tsv[] = "q1\tmutual defense pact\n"
                              "\n"
                              "no tab on this line\n"
                              "q2\tmali niger junta\n"
                              "q3\t\"unclosed\n"
                              "q4\txylophonequark\n";
    cr_assert_eq(sh_test_write_file(queries, tsv, sizeof tsv - 1), 0);

    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--queries", queries, "--trec",
             "--tag", "myrun", NULL);
    cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
    char where[700];
    snprintf(where, sizeof where, "%s:3:", queries);
    cr_assert(contains(r.err, where), "malformed line not reported at %s:\n%s", where, r.err);
    cr_assert(contains(r.err, "q3"), "bad query not named:\n%s", r.err);

    char prev_qid[64] = "";
    int prev_rank = 0, seen_q1 = 0, seen_q2 = 0;
    double prev_score = 0;
    for (char *line = r.out; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        char qid[64], q0[8], docid[128], tag[64], extra[8];
        int rank;
        double score;
        int got = sscanf(line, "%63s %7s %127s %d %lf %63s %7s", qid, q0, docid, &rank, &score,
                         tag, extra);
        cr_assert_eq(got, 6, "not 6 columns: %s", line);
        cr_assert_str_eq(q0, "Q0");
        cr_assert_str_eq(tag, "myrun");
        cr_assert(strcmp(qid, "q3") != 0 && strcmp(qid, "q4") != 0, "%s", line);
        if (strcmp(qid, prev_qid) != 0) {
            cr_assert_eq(rank, 1, "ranks of %s start at %d", qid, rank);
            snprintf(prev_qid, sizeof prev_qid, "%s", qid);
        } else {
            cr_assert_eq(rank, prev_rank + 1, "%s", line);
            cr_assert_leq(score, prev_score + 1e-9, "scores must not increase: %s", line);
        }
        if (strcmp(qid, "q1") == 0 && rank == 1) {
            cr_assert_str_eq(docid, PACT_ID);
            seen_q1 = 1;
        }
        if (strcmp(qid, "q2") == 0) seen_q2 = 1;
        prev_rank = rank;
        prev_score = score;
        line = nl + 1;
    }
    cr_assert(seen_q1 && seen_q2, "run:\n%s", r.out);
    sh_test_run_free(&r);

    /* the default tag, and a missing queries file */
    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--queries", queries, "-n", "1",
             NULL);
    cr_assert_eq(r.status, 0);
    cr_assert(contains(r.out, "q1 Q0 " PACT_ID " 1 "), "run:\n%s", r.out);
    cr_assert(contains(r.out, " sahel\n"), "run:\n%s", r.out);
    cr_assert_eq(count_lines(r.out), 2, "-n 1 gives one line per query:\n%s", r.out);
    sh_test_run_free(&r);

    run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--queries",
             "/nonexistent/queries.tsv", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "/nonexistent/queries.tsv"), "stderr:\n%s", r.err);
    sh_test_run_free(&r);
}

/* ---- help and usage errors ---------------------------------------------- */

Test(cli, help_version_and_bad_options) {
    static const char *const tools[] = {"sahelindex", "sahelsearch"};
    for (size_t t = 0; t < 2; t++) {
        sh_test_run r;
        run_tool(&r, NULL, NULL, tools[t], "--help", NULL);
        cr_assert_eq(r.status, 0);
        cr_assert(contains(r.out, "usage: "), "%s --help:\n%s", tools[t], r.out);
        cr_assert(contains(r.out, "SAHEL_INDEX") && contains(r.out, "./.sahelsearch"));
        cr_assert_eq(r.err_len, 0);
        sh_test_run_free(&r);

        run_tool(&r, NULL, NULL, tools[t], "--version", NULL);
        cr_assert_eq(r.status, 0);
        cr_assert(contains(r.out, tools[t]) && contains(r.out, "0."), "%s", r.out);
        sh_test_run_free(&r);

        run_tool(&r, NULL, NULL, tools[t], "--no-such-option", NULL);
        cr_assert_eq(r.status, 2);
        cr_assert(contains(r.err, "usage: "), "%s", r.err);
        cr_assert_eq(r.out_len, 0);
        sh_test_run_free(&r);

        run_tool(&r, NULL, NULL, tools[t], NULL);
        cr_assert_eq(r.status, 2, "%s without arguments", tools[t]);
        sh_test_run_free(&r);
    }
    /* a budget below the least (SAHEL_MIN_MEMORY_BUDGET) would make a
     * segment of every few articles: refused before anything is read */
    sh_test_run r;
    run_tool(&r, NULL, NULL, "sahelindex", "build", "--memory", "15", "--index", "/nonexistent/x",
             "/nonexistent/y", NULL);
    cr_assert_eq(r.status, 2);
    cr_assert(contains(r.err, "--memory: '15' is not a number of MiB between 16 and"), "%s", r.err);
    cr_assert(contains(r.err, "no room to index"), "%s", r.err);
    sh_test_run_free(&r);
}

/* ---- snippets over several store blocks --------------------------------- */

#define SNIP_DOCS 24
#define SNIP_WORDS 900 /* 6.3 KB a body: about three articles a 16 KiB store block */
#define SNIP_JSONL (SNIP_DOCS * (SNIP_WORDS * 8 + 128))

/* Append to the buffer b of SNIP_JSONL bytes, *len used. */
static void snip_put(char *b, size_t *len, const char *s) {
    size_t n = strlen(s);
    cr_assert_lt(*len + n, (size_t)SNIP_JSONL);
    memcpy(b + *len, s, n + 1);
    *len += n;
}

/* Article i as a JSON line: its body SNIP_WORDS words "kIIJJJ", some
 * replaced by a query word, so that matches sit at the start, at the end,
 * in the middle, in a hyphenated word, in two articles of one block, in
 * the title only, or nowhere. */
static void snip_article(char *b, size_t *len, int i) {
    char w[64];
    snprintf(w, sizeof w, "{\"id\":\"s%02d\",\"title\":\"%s %d\",\"text\":\"", i,
             i == 5 ? "zebra" : "article", i);
    snip_put(b, len, w);
    for (int k = 0; k < SNIP_WORDS; k++) {
        const char *word = NULL;
        if ((i == 1 && k == 3) || (i == 2 && k == SNIP_WORDS - 1) || (i == 3 && k == 450) ||
            (i == 6 && k == 100) || (i == 7 && k == 800) ||
            (i == 20 && (k == 10 || k == 12 || k == 500)))
            word = "zebra";
        else if ((i == 3 && k == 455) || (i == 20 && k == 503))
            word = "okapi";
        else if (i == 4 && k == 600)
            word = "zebra-crossing";
        if (k) snip_put(b, len, " ");
        if (!word) snprintf(w, sizeof w, "k%02d%03d", i, k);
        snip_put(b, len, word ? word : w);
    }
    snip_put(b, len, "\"}\n");
}

/* The snippet of the JSON line for article id in out, copied to snip. */
static int snip_of(const char *out, const char *id, char *snip, size_t size) {
    char key[64];
    snprintf(key, sizeof key, "\"id\":\"%s\"", id);
    const char *line = strstr(out, key);
    if (!line) return -1;
    const char *s = strstr(line, "\"snippet\":\"");
    const char *nl = strchr(line, '\n');
    if (!s || (nl && s > nl)) return -1;
    s += strlen("\"snippet\":\"");
    const char *e = strchr(s, '"'); /* no quote or backslash in these bodies */
    if (!e || (size_t)(e - s) >= size) return -1;
    memcpy(snip, s, (size_t)(e - s));
    snip[e - s] = '\0';
    return 0;
}

static const struct snip_case {
    const char *query, *id, *snippet;
} snip_cases[] = {
    {"zebra", "s20",
     "...k20002 k20003 k20004 k20005 k20006 k20007 k20008 k20009 «zebra» k20011 «zebra» k20013 k20014 k2001"
     "5 k20016 k20017 k20018 k20019 k20020 k20021 k20022 k20023 k20024 k20025 k20026 k20027 k20028 k20029..."},
    {"zebra", "s05",
     "k05000 k05001 k05002 k05003 k05004 k05005 k05006 k05007 k05008 k05009 k05010 k05011 k05012 k05013 k"
     "05014 k05015 k05016 k05017 k05018 k05019 k05020 k05021 k05022 k05023 k05024 k05025 k05026 k05027..."},
    {"zebra", "s01",
     "k01000 k01001 k01002 «zebra» k01004 k01005 k01006 k01007 k01008 k01009 k01010 k01011 k01012 k01013 "
     "k01014 k01015 k01016 k01017 k01018 k01019 k01020 k01021 k01022 k01023 k01024 k01025 k01026 k01027..."},
    {"zebra", "s02",
     "...k02872 k02873 k02874 k02875 k02876 k02877 k02878 k02879 k02880 k02881 k02882 k02883 k02884 k0288"
     "5 k02886 k02887 k02888 k02889 k02890 k02891 k02892 k02893 k02894 k02895 k02896 k02897 k02898 «zebra»"},
    {"zebra", "s03",
     "...k03441 k03442 k03443 k03444 k03445 k03446 k03447 k03448 k03449 «zebra» k03451 k03452 k03453 k0345"
     "4 okapi k03456 k03457 k03458 k03459 k03460 k03461 k03462 k03463 k03464 k03465 k03466 k03467 k03468..."},
    {"zebra", "s06",
     "...k06091 k06092 k06093 k06094 k06095 k06096 k06097 k06098 k06099 «zebra» k06101 k06102 k06103 k06104"
     " k06105 k06106 k06107 k06108 k06109 k06110 k06111 k06112 k06113 k06114 k06115 k06116 k06117 k06118..."},
    {"zebra", "s07",
     "...k07791 k07792 k07793 k07794 k07795 k07796 k07797 k07798 k07799 «zebra» k07801 k07802 k07803 k07804"
     " k07805 k07806 k07807 k07808 k07809 k07810 k07811 k07812 k07813 k07814 k07815 k07816 k07817 k07818..."},
    {"zebra", "s04",
     "...k04591 k04592 k04593 k04594 k04595 k04596 k04597 k04598 k04599 «zebra-crossing» k04601 k04602 k0460"
     "3 k04604 k04605 k04606 k04607 k04608 k04609 k04610 k04611 k04612 k04613 k04614 k04615 k04616 k04617..."},
    {"zebra okapi", "s20",
     "...k20492 k20493 k20494 k20495 k20496 k20497 k20498 k20499 «zebra» k20501 k20502 «okapi» k20504 k2050"
     "5 k20506 k20507 k20508 k20509 k20510 k20511 k20512 k20513 k20514 k20515 k20516 k20517 k20518 k20519..."},
    {"zebra okapi", "s03",
     "...k03443 k03444 k03445 k03446 k03447 k03448 k03449 «zebra» k03451 k03452 k03453 k03454 «okapi» k0345"
     "6 k03457 k03458 k03459 k03460 k03461 k03462 k03463 k03464 k03465 k03466 k03467 k03468 k03469 k03470..."},
};

/* Hits spread over several store blocks, two of them in one block, each
 * with the snippet it had when the whole body was tokenized for every
 * hit: the match at the start, at the end, in the middle, in a
 * hyphenated word, two terms close together, a title-only match. */
Test(cli, snippets_of_hits_across_store_blocks_are_cut_as_before) {
    char dir[512], src[600], index[600];
    scratch("snippets", dir, sizeof dir);
    path_in(src, sizeof src, dir, "snip.jsonl");
    path_in(index, sizeof index, dir, "idx");
    char *jsonl = malloc(SNIP_JSONL);
    cr_assert_not_null(jsonl);
    size_t len = 0;
    for (int i = 0; i < SNIP_DOCS; i++) snip_article(jsonl, &len, i);
    cr_assert_eq(sh_test_write_file(src, jsonl, len), 0);
    free(jsonl);
    build(index, src);

    /* s01-s07 and s20 hold zebra (s05 in its title only) */
    const char *queries[] = {"zebra", "zebra okapi"};
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        sh_test_run r;
        run_tool(&r, NULL, NULL, "sahelsearch", "--index", index, "--json", "-n", "30",
                 queries[q], NULL);
        cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
        cr_assert_eq(count_lines(r.out), 8, "%s:\n%s", queries[q], r.out);
        for (size_t c = 0; c < sizeof snip_cases / sizeof snip_cases[0]; c++) {
            if (strcmp(snip_cases[c].query, queries[q]) != 0) continue;
            char got[1024];
            cr_assert_eq(snip_of(r.out, snip_cases[c].id, got, sizeof got), 0,
                         "%s: no hit %s in:\n%s", queries[q], snip_cases[c].id, r.out);
            cr_assert_str_eq(got, snip_cases[c].snippet, "%s, %s", queries[q], snip_cases[c].id);
        }
        sh_test_run_free(&r);
    }
}
