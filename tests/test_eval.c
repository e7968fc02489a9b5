/*
 * test_eval.c - tests of the retrieval evaluator (bench/treceval.c) and the
 * retrieval-quality floor on Cranfield.
 *
 * The evaluator is tested as a program, the way it is used: each test runs
 * it with posix_spawn on the hand-made files in tests/fixtures/eval/, output
 * redirected to files in a scratch directory of its own, and checks the
 * exit status and the printed figures.  It is found in SAHEL_BIN_DIR; builds
 * that skip bench/ (the asan preset sets SAHEL_BUILD_BENCH=OFF) get it
 * compiled here from its single source file, with this build's sanitizers.
 *
 * The fixture, worked by hand (relevant = grade >= 1; rank order is by score
 * descending, ties by docid descending, whatever the rank column says):
 *
 *   qrels.txt  q1: d1=2 d2=0 d3=1 d4=3     num_rel 3
 *              q2: e1=1 e2=1               num_rel 2
 *              q3: f1=0                    no relevant doc: not evaluated
 *              q4: g1=1                    num_rel 1, absent from the run
 *   run.txt    q1: d2 9.0, d1 8.0, x9 7.0, d4 7.0, d3 1.0   (x9 and d4 tie:
 *                  "x9" > "d4", so x9 ranks 3rd and d4 4th although the file
 *                  gives d4 rank 3), grades by rank: 0 2 - 3 1
 *              q2: ten unjudged docs, then e2 at rank 11
 *              q3: f1; q5: z1 (not in the qrels: ignored)
 *
 *   q1  AP     = (1/2 + 2/4 + 3/5) / 3                    = 0.533333
 *       RR     = 1/2                                      = 0.5
 *       P@10   = 3/10                                     = 0.3
 *       R@100  = 3/3                                      = 1.0
 *       DCG@10 = 2/log2(3) + 3/log2(5) + 1/log2(6)
 *              = 1.261860 + 1.292030 + 0.386853           = 2.940742
 *       IDCG   = 3/log2(2) + 2/log2(3) + 1/log2(4) + 0    = 4.761860
 *       nDCG   = 2.940742 / 4.761860                      = 0.617562
 *   q2  AP = (1/11)/2 = 0.045455   RR = 1/11 = 0.090909   P@10 = 0
 *       R@100 = 1/2 = 0.5          nDCG@10 = 0 (e2 is below rank 10)
 *   q4  every measure 0 (nothing retrieved)
 *
 *   means over q1, q2, q4 (num_q 3):
 *       map         (0.533333 + 0.045455 + 0) / 3 = 0.192929
 *       recip_rank  (0.5 + 0.090909 + 0) / 3      = 0.196970
 *       P_10        (0.3 + 0 + 0) / 3             = 0.1
 *       recall_100  (1 + 0.5 + 0) / 3             = 0.5
 *       ndcg_cut_10 (0.617562 + 0 + 0) / 3        = 0.205854
 *       num_ret 5 + 11 + 0 = 16, num_rel 3 + 2 + 1 = 6, num_rel_ret 3 + 1 + 0 = 4
 *
 * Had the tie been broken by the rank column (d4 3rd), q1's AP would be
 * (1/2 + 2/3 + 3/5) / 3 = 0.588889, so the map check also pins the order.
 *
 * The Cranfield test indexes ../shared/data/cranfield with the built tools,
 * runs the 225 queries in batch mode and checks MAP and nDCG@10 against the
 * floors of the issue; without the data it says so on stderr and skips.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/run.h"

extern char **environ;

#define FIXTURES SAHEL_SOURCE_DIR "/tests/fixtures/eval"

/* Retrieval-quality floors on Cranfield, from the issue that set them. */
#define CRANFIELD_NDCG10_FLOOR 0.368
#define CRANFIELD_MAP_FLOOR 0.299

/* Printed values have 4 decimals: one unit of the last digit. */
#define PRINT_EPS 1e-4

/* ---- helpers -------------------------------------------------------------- */

/* A scratch directory unique to this test process (criterion may run tests
 * in parallel), under SAHEL_TEST_TMP. */
static void make_scratch(char *dir, size_t size, const char *what)
{
    cr_assert(mkdir(SAHEL_TEST_TMP, 0777) == 0 || errno == EEXIST, "mkdir %s: %s",
              SAHEL_TEST_TMP, strerror(errno));
    int n = snprintf(dir, size, "%s/eval-%s-%ld", SAHEL_TEST_TMP, what, (long)getpid());
    cr_assert(n > 0 && (size_t)n < size, "scratch path too long");
    cr_assert(mkdir(dir, 0777) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < size, "path too long: %s/%s", dir, name);
}

/* Run argv[0] (searched in PATH if it has no slash) with stdin, stdout and
 * stderr redirected to the given files (NULL: /dev/null).  No shell is
 * involved, so paths need no quoting.  Returns the exit status, or 128 +
 * signal number if the program was killed, as a shell would. */
static int run(char *const argv[], const char *in, const char *out, const char *err)
{
    posix_spawn_file_actions_t fa;
    cr_assert(posix_spawn_file_actions_init(&fa) == 0);
    const char *paths[3] = {in, out, err};
    for (int fd = 0; fd < 3; fd++) {
        int flags = fd == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC;
        const char *p = paths[fd] != NULL ? paths[fd] : "/dev/null";
        cr_assert(posix_spawn_file_actions_addopen(&fa, fd, p, flags, 0666) == 0);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert(rc == 0, "cannot start %s: %s", argv[0], strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0)
        cr_assert(errno == EINTR, "waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* The whole of a file as a NUL-terminated string; free it. */
static char *slurp(const char *path)
{
    char *s = sh_test_read_file(path, NULL);
    cr_assert(s != NULL, "read %s: %s", path, strerror(errno));
    return s;
}

/* The value of measure `name` for query `qid` in treceval output: the line
 * "name<blanks>\tqid\tvalue".  NAN when there is no such line. */
static double measure(const char *out, const char *name, const char *qid)
{
    size_t nlen = strlen(name), qlen = strlen(qid);
    for (const char *line = out; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        if (eol == NULL)
            eol = line + strlen(line);
        const char *p = line;
        if ((size_t)(eol - p) > nlen && strncmp(p, name, nlen) == 0 &&
            (p[nlen] == ' ' || p[nlen] == '\t')) {
            p += nlen;
            while (*p == ' ')
                p++;
            if (*p == '\t' && strncmp(p + 1, qid, qlen) == 0 && p[1 + qlen] == '\t') {
                char *end;
                double v = strtod(p + 2 + qlen, &end);
                if (end == p + 2 + qlen)
                    return NAN;
                return v;
            }
        }
        line = *eol == '\n' ? eol + 1 : eol;
    }
    return NAN;
}

/* Non-fatal, so that the caller still frees `out`: the NAN it returns then
 * fails the caller's comparison as well. */
static double expect_measure(const char *out, const char *name, const char *qid)
{
    double v = measure(out, name, qid);
    cr_expect(!isnan(v), "no \"%s\" line for %s in:\n%s", name, qid, out);
    return v;
}

/* Path of the treceval binary to test, in `path`.  The one the build made if
 * there is one; else compiled from bench/treceval.c into SAHEL_TEST_TMP,
 * with the sanitizers of this build so that it is checked too. */
static void find_treceval(char *path, size_t size)
{
    join(path, size, SAHEL_BIN_DIR, "treceval");
    if (access(path, X_OK) == 0)
        return;

    /* an earlier test may have compiled it from the current source already */
    char src[] = SAHEL_SOURCE_DIR "/bench/treceval.c";
    join(path, size, SAHEL_TEST_TMP, "treceval-fallback");
    struct stat bin_st, src_st;
    cr_assert(stat(src, &src_st) == 0, "stat %s: %s", src, strerror(errno));
    if (stat(path, &bin_st) == 0 && bin_st.st_mtime > src_st.st_mtime)
        return;

    char scratch[4096], tmp_out[4096];
    make_scratch(scratch, sizeof scratch, "cc");
    join(tmp_out, sizeof tmp_out, scratch, "treceval");
    char errlog[4096];
    join(errlog, sizeof errlog, scratch, "cc.err");
    char cc[] = "cc", std[] = "-std=c17", opt[] = "-O1", dbg[] = "-g", o[] = "-o";
    char lm[] = "-lm";
#if defined(__SANITIZE_ADDRESS__)
    char san[] = "-fsanitize=address,undefined", rec[] = "-fno-sanitize-recover=all";
    char *argv[] = {cc, std, opt, dbg, san, rec, o, tmp_out, src, lm, NULL};
#else
    char *argv[] = {cc, std, opt, dbg, o, tmp_out, src, lm, NULL};
#endif
    int rc = run(argv, NULL, NULL, errlog);
    if (rc != 0) {
        char *log = slurp(errlog);
        cr_log_error("%s", log);
        free(log);
    }
    cr_assert(rc == 0, "%s/treceval is not built and compiling %s failed (exit %d)",
              SAHEL_BIN_DIR, src, rc);
    /* rename is atomic: a parallel test sees the old binary or the new one */
    cr_assert(rename(tmp_out, path) == 0, "rename %s: %s", tmp_out, strerror(errno));
    cr_assert(sh_test_rm_rf(scratch) == 0, "rm -rf %s failed", scratch);
}

/* Output of one treceval run, as files in a scratch directory. */
typedef struct eval_run {
    char dir[4096];
    char out[4096];
    char err[4096];
    int status;
} eval_run;

/* Run treceval [-q] qrels run_file; stdin from `in` (NULL: /dev/null). */
static void treceval(eval_run *r, const char *what, bool per_query, const char *qrels,
                     const char *runfile, const char *in)
{
    char bin[4096], q[] = "-q", qr[4096], rn[4096];
    find_treceval(bin, sizeof bin);
    make_scratch(r->dir, sizeof r->dir, what);
    join(r->out, sizeof r->out, r->dir, "stdout");
    join(r->err, sizeof r->err, r->dir, "stderr");
    join(qr, sizeof qr, FIXTURES, qrels);
    if (strcmp(runfile, "-") == 0)
        snprintf(rn, sizeof rn, "-");
    else
        join(rn, sizeof rn, FIXTURES, runfile);
    char *argv_q[] = {bin, q, qr, rn, NULL};
    char *argv_plain[] = {bin, qr, rn, NULL};
    r->status = run(per_query ? argv_q : argv_plain, in, r->out, r->err);
}

static void remove_tree(const char *dir)
{
    cr_assert(sh_test_rm_rf(dir) == 0, "rm -rf %s failed", dir);
}

/* treceval must fail with status 2 and name `where` (file:line) on stderr. */
static void expect_input_error(const char *qrels, const char *runfile, const char *where)
{
    eval_run r;
    treceval(&r, "bad", false, qrels, runfile, NULL);
    char *err = slurp(r.err);
    char *out = slurp(r.out);
    cr_expect_eq(r.status, 2, "exit status %d, stderr: %s", r.status, err);
    cr_expect(strstr(err, where) != NULL, "stderr does not name %s: %s", where, err);
    cr_expect(strstr(out, "map") == NULL, "printed results despite the error:\n%s", out);
    free(out);
    free(err);
    remove_tree(r.dir);
}

/* ---- treceval ---------------------------------------------------------------- */

Test(treceval, hand_computed_fixture_gives_expected_means)
{
    eval_run r;
    treceval(&r, "means", false, "qrels.txt", "run.txt", NULL);
    char *out = slurp(r.out);
    cr_assert_eq(r.status, 0, "exit status %d", r.status);
    cr_expect_float_eq(expect_measure(out, "num_q", "all"), 3.0, 0.5);
    cr_expect_float_eq(expect_measure(out, "num_ret", "all"), 16.0, 0.5);
    cr_expect_float_eq(expect_measure(out, "num_rel", "all"), 6.0, 0.5);
    cr_expect_float_eq(expect_measure(out, "num_rel_ret", "all"), 4.0, 0.5);
    cr_expect_float_eq(expect_measure(out, "map", "all"), 0.192929, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recip_rank", "all"), 0.196970, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "P_10", "all"), 0.1, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recall_100", "all"), 0.5, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "ndcg_cut_10", "all"), 0.205854, PRINT_EPS);
    cr_expect(isnan(measure(out, "map", "q1")), "per-query lines printed without -q");
    free(out);
    remove_tree(r.dir);
}

Test(treceval, per_query_flag_prints_each_evaluated_query)
{
    eval_run r;
    treceval(&r, "perq", true, "qrels.txt", "run.txt", NULL);
    char *out = slurp(r.out);
    cr_assert_eq(r.status, 0, "exit status %d", r.status);
    cr_expect_float_eq(expect_measure(out, "map", "q1"), 0.533333, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recip_rank", "q1"), 0.5, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "P_10", "q1"), 0.3, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recall_100", "q1"), 1.0, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "ndcg_cut_10", "q1"), 0.617562, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "map", "q2"), 0.045455, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recip_rank", "q2"), 0.090909, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "P_10", "q2"), 0.0, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "recall_100", "q2"), 0.5, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "ndcg_cut_10", "q2"), 0.0, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "map", "q4"), 0.0, PRINT_EPS);
    cr_expect_float_eq(expect_measure(out, "num_ret", "q4"), 0.0, 0.5);
    cr_expect(isnan(measure(out, "map", "q3")), "q3 has no relevant document");
    cr_expect(isnan(measure(out, "map", "q5")), "q5 is not in the qrels");
    cr_expect_float_eq(expect_measure(out, "map", "all"), 0.192929, PRINT_EPS);
    free(out);
    remove_tree(r.dir);
}

Test(treceval, dash_reads_the_run_from_stdin)
{
    eval_run r;
    treceval(&r, "stdin", false, "qrels.txt", "-", FIXTURES "/run.txt");
    char *out = slurp(r.out);
    cr_assert_eq(r.status, 0, "exit status %d", r.status);
    cr_expect_float_eq(expect_measure(out, "map", "all"), 0.192929, PRINT_EPS);
    free(out);
    remove_tree(r.dir);
}

Test(treceval, run_line_with_five_fields_exits_2_naming_file_and_line)
{
    expect_input_error("qrels.txt", "run_bad_fields.txt", "run_bad_fields.txt:3:");
}

Test(treceval, non_numeric_score_exits_2_naming_file_and_line)
{
    expect_input_error("qrels.txt", "run_bad_score.txt", "run_bad_score.txt:2:");
}

Test(treceval, document_retrieved_twice_for_a_query_exits_2)
{
    expect_input_error("qrels.txt", "run_duplicate.txt", "run_duplicate.txt:3:");
}

Test(treceval, non_integer_grade_exits_2_naming_file_and_line)
{
    expect_input_error("qrels_bad_grade.txt", "run.txt", "qrels_bad_grade.txt:2:");
}

Test(treceval, missing_run_file_exits_2)
{
    expect_input_error("qrels.txt", "no_such_run.txt", "no_such_run.txt");
}

/* ---- Cranfield floor ---------------------------------------------------------- */

/* The Cranfield folder: $SAHEL_SHARED/data/cranfield, else ../shared beside
 * the source tree (where CI puts it).  False when it is not there. */
static bool cranfield_dir(char *dir, size_t size)
{
    const char *shared = getenv("SAHEL_SHARED");
    int n;
    if (shared != NULL && *shared != '\0')
        n = snprintf(dir, size, "%s/data/cranfield", shared);
    else
        n = snprintf(dir, size, "%s/../shared/data/cranfield", SAHEL_SOURCE_DIR);
    cr_assert(n > 0 && (size_t)n < size, "path too long");
    char f[4096];
    const char *need[] = {"docs.jsonl", "queries.tsv", "qrels.txt"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        join(f, sizeof f, dir, need[i]);
        if (access(f, R_OK) != 0)
            return false;
    }
    return true;
}

/* Fail with the program's stderr when it did not exit 0. */
static void expect_success(int status, const char *what, const char *errfile)
{
    if (status == 0)
        return;
    char *err = slurp(errfile);
    cr_log_error("%s stderr:\n%s", what, err);
    free(err);
    cr_assert_fail("%s exited with status %d", what, status);
}

/* 500 s: under the 600 s ctest limit, so that criterion reports the timeout. */
Test(cranfield, bm25_meets_the_quality_floor, .timeout = 500)
{
    char data[4096];
    if (!cranfield_dir(data, sizeof data)) {
        fprintf(stderr, "NOTICE: ../shared/data/cranfield not found: "
                        "retrieval-quality test skipped\n");
        cr_skip_test("../shared/data/cranfield not found");
    }

    char dir[4096], index[4096], runf[4096], evalf[4096], errf[4096];
    char docs[4096], queries[4096], qrels[4096];
    make_scratch(dir, sizeof dir, "cranfield");
    join(index, sizeof index, dir, "index");
    join(runf, sizeof runf, dir, "run.txt");
    join(evalf, sizeof evalf, dir, "eval.txt");
    join(errf, sizeof errf, dir, "stderr");
    join(docs, sizeof docs, data, "docs.jsonl");
    join(queries, sizeof queries, data, "queries.tsv");
    join(qrels, sizeof qrels, data, "qrels.txt");

    char sahelindex[] = SAHEL_BIN_DIR "/sahelindex", sahelsearch[] = SAHEL_BIN_DIR "/sahelsearch";
    char build[] = "build", opt_index[] = "--index", force[] = "--force";
    char *index_argv[] = {sahelindex, build, opt_index, index, force, docs, NULL};
    expect_success(run(index_argv, NULL, NULL, errf), "sahelindex build", errf);

    char opt_queries[] = "--queries", trec[] = "--trec", n[] = "-n", k[] = "1000";
    char *search_argv[] = {sahelsearch, opt_index, index, opt_queries, queries, trec, n, k, NULL};
    expect_success(run(search_argv, NULL, runf, errf), "sahelsearch --queries --trec", errf);

    char bin[4096];
    find_treceval(bin, sizeof bin);
    char *eval_argv[] = {bin, qrels, runf, NULL};
    expect_success(run(eval_argv, NULL, evalf, errf), "treceval", errf);

    char *out = slurp(evalf);
    double num_q = expect_measure(out, "num_q", "all");
    double num_ret = expect_measure(out, "num_ret", "all");
    double map = expect_measure(out, "map", "all");
    double ndcg = expect_measure(out, "ndcg_cut_10", "all");
    double p10 = expect_measure(out, "P_10", "all");
    double r100 = expect_measure(out, "recall_100", "all");
    fprintf(stderr,
            "cranfield: MAP %.4f (floor %.3f)  nDCG@10 %.4f (floor %.3f)  P@10 %.4f  "
            "Recall@100 %.4f  over %.0f queries\n",
            map, CRANFIELD_MAP_FLOOR, ndcg, CRANFIELD_NDCG10_FLOOR, p10, r100, num_q);
    free(out);

    cr_expect_float_eq(num_q, 225.0, 0.5, "Cranfield has 225 judged queries");
    cr_expect(num_ret > 0.0, "the run retrieved nothing");
    cr_expect(ndcg >= CRANFIELD_NDCG10_FLOOR, "nDCG@10 %.4f is below the floor %.3f", ndcg,
              CRANFIELD_NDCG10_FLOOR);
    cr_expect(map >= CRANFIELD_MAP_FLOOR, "MAP %.4f is below the floor %.3f", map,
              CRANFIELD_MAP_FLOOR);
    remove_tree(dir);
}
