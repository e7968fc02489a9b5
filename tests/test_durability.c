/*
 * test_durability.c - what the commit protocol promises, checked end to
 * end through the built sahelindex (SAHEL_BIN_DIR) and the public API:
 *
 *   kill      an update or merge killed (SIGKILL) at any moment leaves an
 *             index that opens, verifies and holds exactly the articles of
 *             the last commit, or exactly those of the killed run when it
 *             got as far as renaming its manifest; the generation tells
 *             which.  The next update then completes and cleans up.  A
 *             killed first build leaves no index or a whole one.
 *   disk_full an update or build that cannot write (RLIMIT_FSIZE, so every
 *             write past the limit fails with EFBIG) exits 2 naming the
 *             file and the error, and the previous commit still opens,
 *             verifies and answers as before.
 *   faults    every system call an update or merge makes on an index file
 *             up to the commit point (the rename of the manifest) is made
 *             to fail in turn, with strace's fault injection (skipped when
 *             strace is not installed): all or nothing, every time.
 *   readers   a process searching in a loop while updates and merges
 *             commit never fails, and every result it gets is the one of
 *             the snapshot (generation) it reports; a snapshot held open
 *             meanwhile answers as it did at first.
 *   regression defects these tests found, one test each, named for it.
 *
 * Trial counts come from the environment so that ctest stays fast and
 * tests/durability.sh can run the full-size version:
 *   SAHEL_KILL_TRIALS     kill trials (default 12)
 *   SAHEL_READER_UPDATES  commits made under the searching reader (default 20)
 *
 * What is asserted never depends on timing: a kill may land before, in or
 * after the commit, and both outcomes are checked exactly; the reader may
 * see any number of snapshots, and each observation is compared with the
 * results the parent recorded for that generation.  The only waits are
 * bounded polls for the reader to make progress.
 *
 * The article folders are made from a fixed-seed splitmix64: .txt files
 * (one article each, id = file name) and .jsonl feeds (one article a
 * line).  An article's text is a function of its id and revision, so a
 * feed rewritten with one line changed changes only that article.  Ids
 * are never reused.  A feed is always rewritten with a size other than
 * its last one, so that an update can never take it for unchanged (the
 * sources table compares size, time and inode).
 *
 * Scratch directories live under SAHEL_TEST_TMP/durability, one per test
 * (criterion runs tests in parallel processes).  No test sets .timeout
 * (see test_index.c: criterion's runner leaks with timeouts under --jobs).
 * The reader is a fork() of the test process that does not exec: the
 * criterion worker has a second, idle thread, and glibc's fork leaves
 * malloc and stdio usable in the child, which is all the reader needs.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sahel.h"
#include "support/rng.h"
#include "support/run.h"
#include "support/strbuf.h"

#define TMP_ROOT SAHEL_TEST_TMP "/durability"
#define SAHELINDEX SAHEL_BIN_DIR "/sahelindex"
#define PATH_LEN 1024
#define ID_LEN 24       /* "f3-000123" and "t000123" fit with room to spare */
#define NFEEDS 4
#define MAX_TXT 8192    /* live .txt articles: ~2 more per kill trial */
#define MAX_LINES 2048
#define NQUERIES 5
#define TOPK 10
/* A reader that has not finished one search round in this long is stuck
 * (a round takes milliseconds, even under ASan on a loaded machine). */
#define READER_STALL_SECONDS 120.0
/* Articles of the file that cannot be written under the 64 KiB limit: a
 * segment of ~2 MB. */
#define BULK_ARTICLES 3000
/* The file-size limit of the disk-full tests that must fail. */
#define SMALL_LIMIT ((rlim_t)64 << 10)
/* Updates and merges timed before the kill trials (the fastest counts). */
#define TIMED_RUNS 3

/* ---- small utilities ---------------------------------------------------- */

/* uniform in [lo, hi] */
static unsigned rnd_range(uint64_t *s, unsigned lo, unsigned hi) {
    return lo + (unsigned)(sh_test_splitmix64(s) % (uint64_t)(hi - lo + 1));
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A count from the environment, or `dflt` when unset. */
static unsigned env_count(const char *name, unsigned dflt) {
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    cr_assert(errno == 0 && *end == '\0' && v > 0 && v <= 100000,
              "%s=%s is not a count between 1 and 100000", name, s);
    return (unsigned)v;
}

static void path_in(char *buf, size_t size, const char *dir, const char *name) {
    int n = snprintf(buf, size, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < size, "path too long: %s/%s", dir, name);
}

/* TMP_ROOT/<name>, emptied and created, with src/ inside; index is
 * <dir>/index (not created). */
static void scratch(const char *name, char *dir, char *src, char *index) {
    path_in(dir, PATH_LEN, TMP_ROOT, name);
    cr_assert_eq(sh_test_rm_rf(dir), 0, "cannot empty %s", dir);
    path_in(src, PATH_LEN, dir, "src");
    path_in(index, PATH_LEN, dir, "index");
    cr_assert_eq(sh_test_mkdir_p(src), 0, "cannot create %s", src);
}

/* ---- lists of article ids ----------------------------------------------- */

typedef struct idlist {
    char (*v)[ID_LEN];
    size_t n, cap;
} idlist;

static void idlist_add(idlist *l, const char *id) {
    cr_assert(strlen(id) < ID_LEN);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        char(*v)[ID_LEN] = realloc(l->v, cap * sizeof *v);
        cr_assert(v, "test_durability: out of memory");
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n++], ID_LEN, "%s", id);
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static void idlist_sort(idlist *l) {
    if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_id);
}

/* l must be sorted */
static int idlist_has(const idlist *l, const char *id) {
    return l->n && bsearch(id, l->v, l->n, sizeof *l->v, cmp_id) != NULL;
}

static void idlist_copy(idlist *to, const idlist *from) {
    to->n = 0;
    for (size_t i = 0; i < from->n; i++) idlist_add(to, from->v[i]);
}

static void idlist_free(idlist *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* ---- the article folder ------------------------------------------------- */

/* Words of the generated articles: the queries below use some of them,
 * so that result sets move as articles come and go. */
static const char *const vocab[] = {
    "oil",      "crude",   "market",   "bank",     "central",  "rates",    "grain",
    "wheat",    "export",  "exports",  "exporter", "shares",   "profit",   "loss",
    "dollar",   "yen",     "tonnes",   "coffee",   "cocoa",    "sugar",    "gold",
    "trade",    "deficit", "tariff",   "strike",   "copper",   "budget",   "bonds",
    "inflation", "merger", "dividend", "quarter",  "growth",   "harvest",  "shipping",
    "port",     "reserves", "currency", "minister", "talks",   "prices",   "supply",
    "demand",   "company", "said",     "would",    "year",     "week",     "analysts",
    "government", "record", "forecast", "imports", "rose",     "fell",     "sharply",
};
#define NVOCAB (sizeof vocab / sizeof vocab[0])

typedef struct feed {
    int present;            /* the file exists */
    unsigned id[MAX_LINES]; /* line k holds article f<i>-<id[k]> */
    unsigned rev[MAX_LINES];
    unsigned n;
    size_t last_size; /* bytes last written, 0 when none */
} feed;

typedef struct corpus {
    char dir[PATH_LEN];
    uint64_t rng;
    unsigned txt[MAX_TXT], txt_rev[MAX_TXT]; /* live .txt articles t<txt[k]> */
    unsigned ntxt, next_id;                  /* ids are never reused */
    feed feeds[NFEEDS];
} corpus;

static void txt_id(char *out, unsigned id) { snprintf(out, ID_LEN, "t%06u", id); }
static void feed_id(char *out, unsigned f, unsigned id) {
    snprintf(out, ID_LEN, "f%u-%06u", f, id);
}

/* n words drawn with the rng `s` */
static void put_words(sh_test_str *b, uint64_t *s, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        sh_test_str_printf(b, "%s%s", i ? " " : "", vocab[sh_test_splitmix64(s) % NVOCAB]);
}

/* The text of article (id, rev): the same every time it is asked for. */
static void article_text(sh_test_str *title, sh_test_str *body, const char *id, unsigned rev) {
    uint64_t s = 0x5a4e1ull * 0x10001ull + rev;
    for (const char *p = id; *p; p++) s = s * 131 + (unsigned char)*p;
    sh_test_splitmix64(&s);
    title->len = body->len = 0;
    sh_test_str_printf(title, "%s", "");
    sh_test_str_printf(body, "%s", "");
    put_words(title, &s, rnd_range(&s, 2, 6));
    put_words(body, &s, rnd_range(&s, 15, 60));
}

static void write_txt(const corpus *c, unsigned id, unsigned rev) {
    char name[ID_LEN + 8], path[PATH_LEN], sid[ID_LEN];
    txt_id(sid, id);
    snprintf(name, sizeof name, "%s.txt", sid);
    path_in(path, sizeof path, c->dir, name);
    sh_test_str t = {0}, b = {0}, all = {0};
    article_text(&t, &b, sid, rev);
    sh_test_str_printf(&all, "%s\n%s\n", t.p, b.p);
    cr_assert_eq(sh_test_write_file(path, all.p, all.len), 0, "cannot write %s", path);
    sh_test_str_free(&t);
    sh_test_str_free(&b);
    sh_test_str_free(&all);
}

static void remove_txt(const corpus *c, unsigned id) {
    char name[ID_LEN + 8], path[PATH_LEN], sid[ID_LEN];
    txt_id(sid, id);
    snprintf(name, sizeof name, "%s.txt", sid);
    path_in(path, sizeof path, c->dir, name);
    cr_assert_eq(unlink(path), 0, "cannot remove %s", path);
}

static void write_feed(corpus *c, unsigned fi) {
    feed *f = &c->feeds[fi];
    char name[32], path[PATH_LEN];
    snprintf(name, sizeof name, "feed-%u.jsonl", fi);
    path_in(path, sizeof path, c->dir, name);
    if (f->n == 0) {
        /* an empty feed is no feed: the file goes, its articles with it */
        if (f->present) cr_assert_eq(unlink(path), 0, "cannot remove %s", path);
        f->present = 0;
        f->last_size = 0;
        return;
    }
    sh_test_str t = {0}, b = {0}, all = {0};
    for (int pad = 0; pad < 2; pad++) {
        all.len = 0;
        for (unsigned k = 0; k < f->n; k++) {
            char sid[ID_LEN];
            feed_id(sid, fi, f->id[k]);
            article_text(&t, &b, sid, f->rev[k]);
            /* a space after the brace when the size would repeat itself */
            sh_test_str_printf(&all, "{%s\"id\": \"%s\", \"title\": \"%s\", \"text\": \"%s\"}\n",
                               pad && k == 0 ? " " : "", sid, t.p, b.p);
        }
        if (all.len != f->last_size) break;
    }
    cr_assert_neq(all.len, f->last_size);
    cr_assert_eq(sh_test_write_file(path, all.p, all.len), 0, "cannot write %s", path);
    f->present = 1;
    f->last_size = all.len;
    sh_test_str_free(&t);
    sh_test_str_free(&b);
    sh_test_str_free(&all);
}

static void corpus_init(corpus *c, const char *dir, uint64_t seed, unsigned ntxt,
                        unsigned lines_per_feed) {
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    c->rng = seed;
    for (unsigned i = 0; i < ntxt; i++) {
        c->txt[c->ntxt++] = c->next_id;
        write_txt(c, c->next_id++, 0);
    }
    for (unsigned fi = 0; fi < NFEEDS; fi++) {
        feed *f = &c->feeds[fi];
        for (unsigned k = 0; k < lines_per_feed; k++) f->id[f->n++] = c->next_id++;
        write_feed(c, fi);
    }
}

/* The ids the folder holds, sorted. */
static void corpus_ids(const corpus *c, idlist *out) {
    out->n = 0;
    char sid[ID_LEN];
    for (unsigned i = 0; i < c->ntxt; i++) {
        txt_id(sid, c->txt[i]);
        idlist_add(out, sid);
    }
    for (unsigned fi = 0; fi < NFEEDS; fi++)
        for (unsigned k = 0; k < c->feeds[fi].n; k++) {
            feed_id(sid, fi, c->feeds[fi].id[k]);
            idlist_add(out, sid);
        }
    idlist_sort(out);
}

/* Change one feed: drop, rewrite and append lines (or remove the file
 * when it loses its last line, or create it again). */
static void mutate_feed(corpus *c, unsigned fi, unsigned max_drop, unsigned max_change,
                        unsigned max_add) {
    feed *f = &c->feeds[fi];
    unsigned drop = f->n ? rnd_range(&c->rng, 0, max_drop) : 0;
    for (unsigned i = 0; i < drop && f->n; i++) {
        unsigned k = rnd_range(&c->rng, 0, f->n - 1);
        memmove(f->id + k, f->id + k + 1, (f->n - k - 1) * sizeof *f->id);
        memmove(f->rev + k, f->rev + k + 1, (f->n - k - 1) * sizeof *f->rev);
        f->n--;
    }
    unsigned change = f->n ? rnd_range(&c->rng, 1, max_change) : 0;
    for (unsigned i = 0; i < change; i++) f->rev[rnd_range(&c->rng, 0, f->n - 1)]++;
    /* once in a while a feed goes away whole */
    if (f->n && rnd_range(&c->rng, 0, 9) == 0) f->n = 0;
    else {
        unsigned add = rnd_range(&c->rng, f->present ? 0 : 1, max_add);
        for (unsigned i = 0; i < add && f->n < MAX_LINES; i++) {
            cr_assert(c->next_id < 1000000);
            f->rev[f->n] = 0;
            f->id[f->n++] = c->next_id++;
        }
    }
    write_feed(c, fi);
}

/* Add, change and remove articles: sizes scale the counts. */
static void corpus_mutate(corpus *c, unsigned add, unsigned change, unsigned remove,
                          unsigned feeds) {
    unsigned nadd = rnd_range(&c->rng, add ? 1 : 0, add);
    for (unsigned i = 0; i < nadd && c->ntxt < MAX_TXT; i++) {
        c->txt_rev[c->ntxt] = 0;
        c->txt[c->ntxt++] = c->next_id;
        write_txt(c, c->next_id++, 0);
    }
    unsigned nchange = c->ntxt ? rnd_range(&c->rng, 0, change) : 0;
    for (unsigned i = 0; i < nchange; i++) {
        unsigned k = rnd_range(&c->rng, 0, c->ntxt - 1);
        write_txt(c, c->txt[k], ++c->txt_rev[k]);
    }
    unsigned nremove = rnd_range(&c->rng, 0, remove);
    for (unsigned i = 0; i < nremove && c->ntxt > 1; i++) {
        unsigned k = rnd_range(&c->rng, 0, c->ntxt - 1);
        remove_txt(c, c->txt[k]);
        c->txt[k] = c->txt[c->ntxt - 1];
        c->txt_rev[k] = c->txt_rev[c->ntxt - 1];
        c->ntxt--;
    }
    unsigned nfeeds = rnd_range(&c->rng, feeds ? 1 : 0, feeds);
    for (unsigned i = 0; i < nfeeds; i++)
        mutate_feed(c, rnd_range(&c->rng, 0, NFEEDS - 1), 3, 3, 5);
}

/* A .jsonl of `n` articles full of distinct made-up words (hex strings):
 * the segment they make is large and compresses badly, so it runs into a
 * small file-size limit. */
static void write_bulk(const char *dir, const char *name, unsigned n, uint64_t seed) {
    char path[PATH_LEN];
    path_in(path, sizeof path, dir, name);
    sh_test_str all = {0};
    for (unsigned k = 0; k < n; k++) {
        char sid[ID_LEN];
        snprintf(sid, sizeof sid, "bulk-%06u", k);
        sh_test_str_printf(&all, "{\"id\": \"%s\", \"title\": \"bulk %u\", \"text\": \"", sid, k);
        for (unsigned w = 0; w < 40; w++)
            sh_test_str_printf(&all, "%sx%012llx", w ? " " : "",
                               (unsigned long long)(sh_test_splitmix64(&seed) & 0xffffffffffffull));
        sh_test_str_printf(&all, "\"}\n");
    }
    cr_assert_eq(sh_test_write_file(path, all.p, all.len), 0, "cannot write %s", path);
    sh_test_str_free(&all);
}

/* ---- running sahelindex -------------------------------------------------- */

/* Start argv[0] with stdin from /dev/null and stdout and stderr to `log`
 * (truncated), or, when fsize > 0, to a pipe (*out_pipe; the limit below
 * does not apply to pipes, so the messages always get through) with files
 * limited to fsize bytes: SIGXFSZ is ignored, so a write past the limit
 * fails with EFBIG as on a full disk.  Everything is prepared before
 * fork(); the child makes only system calls. */
static pid_t spawn(const char *const *argv, const char *log, rlim_t fsize, int *out_pipe) {
    int p[2] = {-1, -1};
    int out;
    if (fsize > 0) {
        cr_assert_eq(pipe(p), 0, "pipe: %s", strerror(errno));
        cr_assert(fcntl(p[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(p[1], F_SETFD, FD_CLOEXEC) == 0);
        out = p[1];
        *out_pipe = p[0];
    } else {
        out = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(out >= 0 && in >= 0, "cannot open %s or /dev/null", log);
    struct rlimit rl = {fsize, fsize};
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(126);
        if (fsize > 0 &&
            (sigaction(SIGXFSZ, &ign, NULL) != 0 || setrlimit(RLIMIT_FSIZE, &rl) != 0))
            _exit(126);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(out);
    close(in);
    cr_assert(pid > 0, "fork: %s", strerror(errno));
    return pid;
}

/* Wait for pid: its exit status, or 128 + the signal that ended it. */
static int reap(pid_t pid, int *signaled) {
    int ws;
    while (waitpid(pid, &ws, 0) < 0) cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    *signaled = WIFSIGNALED(ws);
    return WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws);
}

/* The log of a run, for failure messages (static: one at a time). */
static const char *log_text(const char *log) {
    static char text[8192];
    size_t len = 0;
    char *p = sh_test_read_file(log, &len);
    snprintf(text, sizeof text, "%s", p ? p : "(no log)");
    free(p);
    return text;
}

/* Run argv to the end with a file-size limit (0: none); its status.  Its
 * output is in `log` afterwards. */
static int run_limited(const char *const *argv, const char *log, rlim_t fsize) {
    int rd = -1;
    pid_t pid = spawn(argv, log, fsize, &rd);
    if (rd >= 0) {
        /* drain the pipe until the child is gone, so that it never blocks */
        FILE *f = fopen(log, "wb");
        cr_assert(f, "cannot create %s", log);
        char buf[4096];
        ssize_t n;
        while ((n = read(rd, buf, sizeof buf)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            cr_assert_gt(n, 0, "reading the output of %s: %s", argv[0], strerror(errno));
            cr_assert_eq(fwrite(buf, 1, (size_t)n, f), (size_t)n);
        }
        close(rd);
        cr_assert_eq(fclose(f), 0);
    }
    int signaled;
    int status = reap(pid, &signaled);
    cr_assert(!signaled, "%s %s was killed by signal %d:\n%s", argv[0], argv[1], status - 128,
              log_text(log));
    return status;
}

static void run_ok(const char *const *argv, const char *log) {
    int status = run_limited(argv, log, 0);
    cr_assert_eq(status, 0, "sahelindex %s exited %d:\n%s", argv[1], status, log_text(log));
}

/* ---- checking an index -------------------------------------------------- */

/* Open the index, verify every file, and hand it over. */
static sahel_index *open_verified(const char *index, const char *when) {
    sahel_index *ix = NULL;
    sahel_error err = {0};
    int rc = sahel_index_open(index, &ix, &err);
    cr_assert_eq(rc, 0, "%s: the index does not open (%s): %s", when, sahel_strerror(rc),
                 err.msg);
    rc = sahel_index_verify(ix, &err);
    cr_assert_eq(rc, 0, "%s: the index does not verify (%s): %s", when, sahel_strerror(rc),
                 err.msg);
    return ix;
}

static uint64_t generation_of(const sahel_index *ix) {
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    return info.generation;
}

/* The live articles of ix are exactly `want`: as many, each found, and
 * those of `other` that are not wanted are absent. */
static void assert_holds(sahel_index *ix, const idlist *want, const idlist *other,
                         const char *when) {
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    sahel_error err = {0};
    for (size_t i = 0; i < want->n; i++) {
        int rc = sahel_index_has_id(ix, want->v[i], strlen(want->v[i]), &err);
        cr_assert_eq(rc, 1, "%s (generation %llu): article %s is %s", when,
                     (unsigned long long)info.generation, want->v[i],
                     rc == 0 ? "missing" : err.msg);
    }
    for (size_t i = 0; other && i < other->n; i++) {
        if (idlist_has(want, other->v[i])) continue;
        int rc = sahel_index_has_id(ix, other->v[i], strlen(other->v[i]), &err);
        cr_assert_eq(rc, 0, "%s (generation %llu): article %s should be gone (%s)", when,
                     (unsigned long long)info.generation, other->v[i],
                     rc == 1 ? "still live" : err.msg);
    }
    cr_assert_eq(info.ndocs, want->n, "%s (generation %llu): %llu live articles, expected %zu",
                 when, (unsigned long long)info.generation, (unsigned long long)info.ndocs,
                 want->n);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* After a commit that completed, the directory holds MANIFEST, LOCK and
 * the files the manifest names, nothing else: what killed or failed
 * writers left behind is gone. */
static void assert_no_stray_files(const char *index, const sahel_index *ix, const char *when) {
    sahel_index_info info;
    sahel_index_get_info(ix, &info);
    size_t nsdel = 0;
    for (size_t i = 0; i < info.nsegments; i++) {
        sahel_segment_info si;
        cr_assert_eq(sahel_index_segment_info(ix, i, &si), 0);
        nsdel += si.ndeleted > 0;
    }
    DIR *d = opendir(index);
    cr_assert(d, "cannot read %s", index);
    size_t nsseg = 0, nfound_sdel = 0, nssrc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "MANIFEST") || !strcmp(n, "LOCK"))
            continue;
        int known = 0;
        if (ends_with(n, ".sseg")) {
            for (size_t i = 0; i < info.nsegments && !known; i++) {
                sahel_segment_info si;
                sahel_index_segment_info(ix, i, &si);
                known = strcmp(si.name, n) == 0;
            }
            nsseg += known;
        } else if (ends_with(n, ".sdel")) {
            known = 1;
            nfound_sdel++;
        } else if (ends_with(n, ".ssrc")) {
            known = 1;
            nssrc++;
        }
        if (!known) {
            closedir(d);
            cr_assert_fail("%s (generation %llu): stray file %s/%s after a completed commit", when,
                           (unsigned long long)info.generation, index, n);
        }
    }
    closedir(d);
    cr_assert_eq(nsseg, info.nsegments, "%s: %zu segment files for %llu segments", when, nsseg,
                 (unsigned long long)info.nsegments);
    cr_assert_eq(nfound_sdel, nsdel, "%s: %zu deletion files for %zu segments with deletions",
                 when, nfound_sdel, nsdel);
    cr_assert_leq(nssrc, 1, "%s: %zu sources tables", when, nssrc);
}

/* No temporary file is left in the index directory. */
static void assert_no_tmp_files(const char *index, const char *when) {
    DIR *d = opendir(index);
    cr_assert(d, "cannot read %s", index);
    struct dirent *e;
    char found[256] = "";
    while ((e = readdir(d)) != NULL)
        if (ends_with(e->d_name, ".tmp")) snprintf(found, sizeof found, "%s", e->d_name);
    closedir(d);
    cr_assert(!found[0], "%s: temporary file %s/%s left behind", when, index, found);
}

/* ---- queries and their results ------------------------------------------ */

static const char *const queries[NQUERIES] = {
    "crude oil", "\"central bank\"", "+market rates", "grain OR wheat", "export*",
};

typedef struct result {
    uint64_t total;
    unsigned n;
    char ids[TOPK][ID_LEN];
} result;

/* What one search round saw: a generation and the results of every query,
 * or an error. */
typedef struct observation {
    int failed;
    char msg[SAHEL_ERROR_MSG_MAX + 64];
    uint64_t generation;
    result r[NQUERIES];
} observation;

/* Run every query on ix; stored fields are read too (the reader test
 * wants the whole path exercised: the store of a segment a merge may
 * have unlinked).  0, or a negative code with ob->msg set. */
static int run_queries(sahel_index *ix, observation *ob) {
    sahel_search_opts so = {.k = TOPK};
    sahel_error err = {0};
    for (unsigned q = 0; q < NQUERIES; q++) {
        sahel_hits *hits = NULL;
        int rc = sahel_search(ix, queries[q], strlen(queries[q]), &so, &hits, &err);
        if (rc) {
            snprintf(ob->msg, sizeof ob->msg, "search '%s': %s", queries[q], err.msg);
            return rc;
        }
        result *r = &ob->r[q];
        r->total = sahel_hits_total(hits);
        r->n = (unsigned)sahel_hits_count(hits);
        for (unsigned i = 0; i < r->n && !rc; i++) {
            const char *id;
            size_t len;
            double score;
            sahel_hit hit;
            if ((rc = sahel_hits_id(hits, i, &id, &len, &score, &err)) ||
                (rc = sahel_hits_get(hits, i, &hit, &err))) {
                snprintf(ob->msg, sizeof ob->msg, "'%s' hit %u: %s", queries[q], i, err.msg);
            } else if (len >= ID_LEN || hit.id_len != len || memcmp(hit.id, id, len) != 0) {
                snprintf(ob->msg, sizeof ob->msg, "'%s' hit %u: id %.*s, stored id %.*s",
                         queries[q], i, (int)len, id, (int)hit.id_len, hit.id);
                rc = SAHEL_ECORRUPT;
            } else {
                memcpy(r->ids[i], id, len);
                r->ids[i][len] = '\0';
            }
        }
        sahel_hits_free(hits);
        if (rc) return rc;
    }
    return 0;
}

/* 1 when a and b are the same results; else 0 and a description in why. */
static int same_results(const observation *a, const observation *b, char *why, size_t size) {
    for (unsigned q = 0; q < NQUERIES; q++) {
        const result *x = &a->r[q], *y = &b->r[q];
        if (x->total != y->total || x->n != y->n) {
            snprintf(why, size, "'%s': %llu matches, %u hits instead of %llu, %u", queries[q],
                     (unsigned long long)x->total, x->n, (unsigned long long)y->total, y->n);
            return 0;
        }
        for (unsigned i = 0; i < x->n; i++)
            if (strcmp(x->ids[i], y->ids[i]) != 0) {
                snprintf(why, size, "'%s': hit %u is %s instead of %s", queries[q], i,
                         x->ids[i], y->ids[i]);
                return 0;
            }
    }
    return 1;
}

/* The generation and results of the index as it is now. */
static void observe(const char *index, observation *ob, const char *when) {
    memset(ob, 0, sizeof *ob);
    sahel_index *ix = open_verified(index, when);
    ob->generation = generation_of(ix);
    int rc = run_queries(ix, ob);
    sahel_index_close(ix);
    cr_assert_eq(rc, 0, "%s: %s", when, ob->msg);
}

/* ---- kill: SIGKILL at any moment of an update or a merge ------------------ */

/* How many files of the index directory a writer of generation `gen` made
 * (its segments, bitmaps and sources table carry the generation in their
 * names) or MANIFEST.tmp: a writer killed before its commit with files
 * left was killed while writing it. */
static unsigned files_of_generation(const char *index, uint64_t gen) {
    char tag[32];
    snprintf(tag, sizeof tag, "%06llu", (unsigned long long)gen);
    DIR *d = opendir(index);
    cr_assert(d, "cannot read %s", index);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, tag) != NULL || strcmp(e->d_name, "MANIFEST.tmp") == 0;
    closedir(d);
    return n;
}

Test(kill, index_survives_sigkill_at_any_moment_of_update_or_merge) {
    unsigned trials = env_count("SAHEL_KILL_TRIALS", 12);
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN];
    scratch("kill", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    corpus_init(c, src, 0xd0ab1e5eedull, 200, 30);
    idlist old = {0}, now = {0};

    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    const char *merge[] = {SAHELINDEX, "merge", "--index", index, NULL};
    run_ok(build, log);
    corpus_ids(c, &now);
    sahel_index *ix = open_verified(index, "after build");
    assert_holds(ix, &now, NULL, "after build");
    uint64_t gen = generation_of(ix);
    sahel_index_close(ix);

    /* how long a whole update and a whole merge take, so that the kills
     * are spread over all of it, commit included: the fastest of a few
     * runs, as the first pays for cold caches */
    double t_update = 1e9, t_merge = 1e9;
    for (int i = 0; i < TIMED_RUNS; i++) {
        corpus_mutate(c, 8, 5, 4, 2);
        double t0 = now_seconds();
        run_ok(update, log);
        double t1 = now_seconds();
        run_ok(merge, log);
        double t2 = now_seconds();
        if (t1 - t0 < t_update) t_update = t1 - t0;
        if (t2 - t1 < t_merge) t_merge = t2 - t1;
    }
    corpus_ids(c, &now);
    ix = open_verified(index, "after the timed updates and merges");
    assert_holds(ix, &now, NULL, "after the timed updates and merges");
    cr_assert_eq(generation_of(ix), gen + 2 * TIMED_RUNS);
    gen = generation_of(ix);
    sahel_index_close(ix);

    uint64_t rng = 0x6b696c6cull; /* the kill delays: a stream of their own */
    unsigned before = 0, writing = 0, after = 0, finished = 0, merges = 0;
    for (unsigned t = 0; t < trials; t++) {
        char when[128];
        int is_merge = t % 4 == 3;
        idlist_copy(&old, &now);
        if (!is_merge) corpus_mutate(c, 8, 5, 4, 2);
        corpus_ids(c, &now);
        double span = is_merge ? t_merge : t_update;
        uint64_t delay = sh_test_splitmix64(&rng) % ((uint64_t)(span * 1e9) + 1);

        pid_t pid = spawn(is_merge ? merge : update, log, 0, NULL);
        sleep_ns(delay);
        kill(pid, SIGKILL);
        int signaled, status = reap(pid, &signaled);
        snprintf(when, sizeof when, "trial %u: %s killed after %.1f ms", t,
                 is_merge ? "merge" : "update", (double)delay / 1e6);
        cr_assert(signaled || status == 0, "%s: it exited %d:\n%s", when, status, log_text(log));

        ix = open_verified(index, when);
        uint64_t g = generation_of(ix);
        if (g == gen) {
            cr_assert(signaled, "%s: it exited 0 but generation %llu did not move", when,
                      (unsigned long long)g);
            assert_holds(ix, &old, &now, when);
            if (files_of_generation(index, gen + 1)) writing++;
            else before++;
        } else {
            cr_assert_eq(g, gen + 1, "%s: generation %llu after %llu", when,
                         (unsigned long long)g, (unsigned long long)gen);
            assert_holds(ix, &now, &old, when);
            if (signaled) after++;
            else finished++;
        }
        merges += is_merge;
        sahel_index_close(ix);

        /* the next writer takes over the dead one's lock and its leftovers */
        run_ok(update, log);
        snprintf(when, sizeof when, "trial %u: the update after the kill", t);
        ix = open_verified(index, when);
        uint64_t g2 = generation_of(ix);
        cr_assert(g2 == g || g2 == g + 1, "%s: generation %llu after %llu", when,
                  (unsigned long long)g2, (unsigned long long)g);
        assert_holds(ix, &now, &old, when);
        assert_no_stray_files(index, ix, when);
        gen = g2;
        sahel_index_close(ix);
    }
    fprintf(stderr,
            "kill: %u trials (%u merges; update %.0f ms, merge %.0f ms): %u killed before "
            "writing, %u while writing the commit, %u after the manifest rename, %u finished "
            "first\n",
            trials, merges, t_update * 1e3, t_merge * 1e3, before, writing, after, finished);
    idlist_free(&old);
    idlist_free(&now);
    free(c);
}

Test(kill, first_build_killed_at_any_moment_leaves_no_index_or_a_whole_one) {
    unsigned trials = env_count("SAHEL_KILL_TRIALS", 12) / 3;
    if (trials < 4) trials = 4;
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN];
    scratch("kill_build", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    corpus_init(c, src, 0xb111dull, 200, 30);
    idlist ids = {0};
    corpus_ids(c, &ids);
    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};

    double t_build = 1e9;
    for (int i = 0; i < TIMED_RUNS; i++) {
        cr_assert_eq(sh_test_rm_rf(index), 0);
        double t0 = now_seconds();
        run_ok(build, log);
        if (now_seconds() - t0 < t_build) t_build = now_seconds() - t0;
    }
    uint64_t rng = 0xb11d4ull;
    unsigned none = 0, whole = 0;
    for (unsigned t = 0; t < trials; t++) {
        char when[128];
        cr_assert_eq(sh_test_rm_rf(index), 0);
        uint64_t delay = sh_test_splitmix64(&rng) % ((uint64_t)(t_build * 1e9) + 1);
        pid_t pid = spawn(build, log, 0, NULL);
        sleep_ns(delay);
        kill(pid, SIGKILL);
        int signaled, status = reap(pid, &signaled);
        snprintf(when, sizeof when, "trial %u: build killed after %.1f ms", t, (double)delay / 1e6);
        cr_assert(signaled || status == 0, "%s: it exited %d:\n%s", when, status, log_text(log));

        sahel_index *ix = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(index, &ix, &err);
        if (rc == SAHEL_ENOTINDEX) {
            /* nothing committed: a plain build goes over the leftovers */
            none++;
            run_ok(build, log);
        } else {
            cr_assert_eq(rc, 0, "%s: the index does not open (%s): %s", when, sahel_strerror(rc),
                         err.msg);
            sahel_index_close(ix);
            ix = open_verified(index, when);
            cr_assert_eq(generation_of(ix), 1);
            assert_holds(ix, &ids, NULL, when);
            sahel_index_close(ix);
            whole++;
            run_ok(update, log);
        }
        snprintf(when, sizeof when, "trial %u: the build or update after the kill", t);
        ix = open_verified(index, when);
        assert_holds(ix, &ids, NULL, when);
        assert_no_stray_files(index, ix, when);
        sahel_index_close(ix);
    }
    fprintf(stderr,
            "kill: %u first builds killed (build %.0f ms): %u left no index, %u a whole one\n",
            trials, t_build * 1e3, none, whole);
    idlist_free(&ids);
    free(c);
}

/* ---- disk_full: writes fail with EFBIG ----------------------------------- */

/* Build an index of a small corpus and return what it answers. */
static void small_index(corpus *c, const char *src, const char *index, const char *log,
                        uint64_t seed, idlist *ids, observation *ob) {
    corpus_init(c, src, seed, 80, 10);
    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    run_ok(build, log);
    corpus_ids(c, ids);
    observe(index, ob, "after build");
}

/* The index answers as `want` did, at its generation, with articles `ids`. */
static void assert_unchanged(const char *index, const observation *want, const idlist *ids,
                             const idlist *gone_ids, const char *when) {
    observation now;
    observe(index, &now, when);
    cr_assert_eq(now.generation, want->generation, "%s: generation %llu, expected %llu", when,
                 (unsigned long long)now.generation, (unsigned long long)want->generation);
    char why[256];
    cr_assert(same_results(&now, want, why, sizeof why), "%s: results changed: %s", when, why);
    sahel_index *ix = open_verified(index, when);
    assert_holds(ix, ids, gone_ids, when);
    sahel_index_close(ix);
    assert_no_tmp_files(index, when);
}

/* stderr names a file of the index and the EFBIG error. */
static void assert_names_file_and_error(const char *log, const char *index) {
    char *text = sh_test_read_file(log, NULL);
    cr_assert(text, "no log %s", log);
    const char *e = strerror(EFBIG);
    int ok = 0;
    for (char *line = strtok(text, "\n"); line && !ok; line = strtok(NULL, "\n"))
        ok = strstr(line, index) && strstr(line, e) && strstr(line, "sahelindex");
    free(text);
    cr_assert(ok, "no line of stderr names a file of %s and '%s':\n%s", index, e, log_text(log));
}

Test(disk_full, update_that_cannot_write_exits_2_and_keeps_the_last_commit) {
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN];
    scratch("update_efbig", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    idlist ids = {0}, newids = {0};
    observation before;
    small_index(c, src, index, log, 0xf11ull, &ids, &before);

    /* a segment of ~2 MB against a 64 KiB limit, plus changes and deletions */
    corpus_mutate(c, 4, 4, 3, 1);
    write_bulk(src, "bulk.jsonl", BULK_ARTICLES, 0xb01cull);
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    int status = run_limited(update, log, SMALL_LIMIT);
    cr_assert_eq(status, 2, "update past the file-size limit exited %d:\n%s", status,
                 log_text(log));
    assert_names_file_and_error(log, index);
    assert_unchanged(index, &before, &ids, NULL, "after the failed update");

    /* room again: the same update goes through */
    run_ok(update, log);
    corpus_ids(c, &newids);
    for (unsigned k = 0; k < BULK_ARTICLES; k++) {
        char sid[ID_LEN];
        snprintf(sid, sizeof sid, "bulk-%06u", k);
        idlist_add(&newids, sid);
    }
    idlist_sort(&newids);
    sahel_index *ix = open_verified(index, "after the update with room");
    cr_assert_eq(generation_of(ix), before.generation + 1);
    assert_holds(ix, &newids, &ids, "after the update with room");
    assert_no_stray_files(index, ix, "after the update with room");
    sahel_index_close(ix);
    idlist_free(&ids);
    idlist_free(&newids);
    free(c);
}

/* Limits growing by a quarter from 256 bytes: the new segment runs into
 * the smaller ones, the sources table (the largest file after it) into
 * the next, until the update fits.  Every limit either fails cleanly or
 * commits the whole update.  (The smaller files of a commit, bitmaps and
 * manifest, fail in the faults tests.) */
Test(disk_full, every_file_size_limit_fails_cleanly_or_commits_all) {
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN];
    scratch("update_sweep", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    idlist ids = {0}, newids = {0};
    observation before;
    small_index(c, src, index, log, 0x5eedull, &ids, &before);
    corpus_mutate(c, 6, 5, 3, 2);
    corpus_ids(c, &newids);

    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    unsigned failures = 0;
    rlim_t limit;
    for (limit = 256; limit <= (rlim_t)64 << 20; limit += limit / 4) {
        int status = run_limited(update, log, limit);
        char when[96];
        snprintf(when, sizeof when, "after an update limited to %llu bytes",
                 (unsigned long long)limit);
        if (status == 0) break;
        cr_assert_eq(status, 2, "%s: exit %d:\n%s", when, status, log_text(log));
        assert_names_file_and_error(log, index);
        assert_unchanged(index, &before, &ids, &newids, when);
        failures++;
    }
    cr_assert_leq(limit, (rlim_t)64 << 20, "no limit up to 64 MiB let the update through");
    cr_assert_geq(failures, 3, "only %u limits failed: the sweep tested little", failures);
    sahel_index *ix = open_verified(index, "after the update that fit");
    cr_assert_eq(generation_of(ix), before.generation + 1);
    assert_holds(ix, &newids, &ids, "after the update that fit");
    assert_no_stray_files(index, ix, "after the update that fit");
    sahel_index_close(ix);
    fprintf(stderr, "disk_full: %u file-size limits failed cleanly, %llu bytes was enough\n",
            failures, (unsigned long long)limit);
    idlist_free(&ids);
    idlist_free(&newids);
    free(c);
}

Test(disk_full, build_force_that_cannot_write_keeps_the_old_index) {
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN], src2[PATH_LEN];
    scratch("build_efbig", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    path_in(src2, sizeof src2, dir, "src2");
    cr_assert_eq(sh_test_mkdir_p(src2), 0);
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    idlist ids = {0};
    observation before;
    small_index(c, src, index, log, 0xb1dull, &ids, &before);

    write_bulk(src2, "bulk.jsonl", BULK_ARTICLES, 0xfeedull);
    const char *rebuild[] = {SAHELINDEX, "build", "--force", "--index", index, src2, NULL};
    int status = run_limited(rebuild, log, SMALL_LIMIT);
    cr_assert_eq(status, 2, "build --force past the file-size limit exited %d:\n%s", status,
                 log_text(log));
    assert_names_file_and_error(log, index);
    assert_unchanged(index, &before, &ids, NULL, "after the failed build --force");

    /* and the old index still takes updates */
    corpus_mutate(c, 3, 3, 2, 1);
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    run_ok(update, log);
    corpus_ids(c, &ids);
    sahel_index *ix = open_verified(index, "after an update of the kept index");
    assert_holds(ix, &ids, NULL, "after an update of the kept index");
    assert_no_stray_files(index, ix, "after an update of the kept index");
    sahel_index_close(ix);
    idlist_free(&ids);
    free(c);
}

/* ---- faults: one failing system call at each point of an update ---------- */

/* System calls whose failure a writer must survive; strace numbers the
 * invocations of each separately, and `-e inject=NAME:when=N` fails the
 * Nth. */
#define FAULT_SYSCALLS                                                                         \
    "openat,read,pread64,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,close,"     \
    "ftruncate,mmap,newfstatat,fstat,getdents64,unlink,unlinkat,flock,mkdir"

typedef struct fault_point {
    char name[24];      /* the system call */
    unsigned nth;       /* its invocation, 1-based */
    int after_commit;   /* after the rename of MANIFEST.tmp over MANIFEST */
    char key[PATH_LEN]; /* the index file it concerns, as strace prints it */
    char line[400];     /* the call as traced, for messages */
} fault_point;

/* strace's path, or 0 when it is not installed. */
static int find_strace(char *out, size_t size) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n && (size_t)snprintf(out, size, "%.*s/strace", (int)n, path) < size &&
            access(out, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* LeakSanitizer cannot run under ptrace: an ASan build of a traced child
 * would fail at exit for that alone.  asan_for_ptrace turns it off for
 * the children to come, asan_restore puts ASAN_OPTIONS back. */
static char g_asan_saved[512];
static int g_asan_had;

static void asan_for_ptrace(void) {
    const char *asan = getenv("ASAN_OPTIONS");
    g_asan_had = asan != NULL;
    snprintf(g_asan_saved, sizeof g_asan_saved, "%s", asan ? asan : "");
    char opts[600];
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", g_asan_saved, *g_asan_saved ? ":" : "");
    cr_assert_eq(setenv("ASAN_OPTIONS", opts, 1), 0);
}

static void asan_restore(void) {
    if (g_asan_had) cr_assert_eq(setenv("ASAN_OPTIONS", g_asan_saved, 1), 0);
    else cr_assert_eq(unsetenv("ASAN_OPTIONS"), 0);
}

/* The part of a trace line from the index path to the end of the file name
 * ('>' of an fd annotation, '"' of a path argument): "" when the line
 * concerns no index file. */
static void index_key(const char *line, const char *index, char *key, size_t size) {
    size_t il = strlen(index);
    key[0] = '\0';
    for (const char *p = strstr(line, index); p; p = strstr(p + 1, index)) {
        if (p == line || (p[-1] != '<' && p[-1] != '"')) continue;
        if (p[il] != '/' && p[il] != '>' && p[il] != '"') continue;
        size_t n = strcspn(p + il, ">\"");
        snprintf(key, size, "%.*s", (int)(il + n + 1), p);
        return;
    }
}

/* The calls of a traced run (strace -y output) that concern the index. */
static fault_point *fault_points(const char *trace, const char *index, size_t *npoints) {
    char *text = sh_test_read_file(trace, NULL);
    cr_assert(text, "cannot read %s", trace);
    struct {
        char name[24];
        unsigned n;
    } seen[64];
    size_t nseen = 0, n = 0, cap = 64;
    fault_point *pts = sh_test_xcalloc(cap, sizeof *pts);
    int after = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t nl = strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (nl == 0 || nl >= sizeof seen[0].name || line[nl] != '(') continue;
        size_t k = 0;
        while (k < nseen && (strncmp(seen[k].name, line, nl) || seen[k].name[nl])) k++;
        if (k == nseen) {
            cr_assert_lt(nseen, 64);
            snprintf(seen[nseen].name, sizeof seen[nseen].name, "%.*s", (int)nl, line);
            seen[nseen++].n = 0;
        }
        seen[k].n++;
        char key[PATH_LEN];
        index_key(line, index, key, sizeof key);
        if (key[0]) {
            if (n == cap) {
                cap *= 2;
                fault_point *q = realloc(pts, cap * sizeof *pts);
                cr_assert(q, "test_durability: out of memory");
                pts = q;
            }
            fault_point *f = &pts[n++];
            snprintf(f->name, sizeof f->name, "%s", seen[k].name);
            f->nth = seen[k].n;
            f->after_commit = after;
            snprintf(f->key, sizeof f->key, "%s", key);
            snprintf(f->line, sizeof f->line, "%s", line);
        }
        if (!strncmp(line, "rename", 6) && strstr(line, "/MANIFEST.tmp\"")) after = 1;
    }
    free(text);
    *npoints = n;
    return pts;
}

/* The line strace marked (INJECTED), or NULL (static: one at a time). */
static const char *injected_line(const char *trace) {
    static char found[PATH_LEN * 2];
    char *text = sh_test_read_file(trace, NULL);
    cr_assert(text, "cannot read %s", trace);
    found[0] = '\0';
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "(INJECTED)")) snprintf(found, sizeof found, "%s", line);
    free(text);
    return found[0] ? found : NULL;
}

/* Run `sahelindex update` once per system call on an index file, that
 * call failing (ENOSPC for writes, EIO for the others), each time on a
 * fresh copy of the same index, with the same folder: the index must
 * open, verify and hold exactly the old articles at the old generation or
 * the new ones at the next, and the exit status must not deny a commit
 * that happened.  `after_commit` selects the calls after the rename of
 * the manifest (the commit point), else those up to and including it.
 * Returns the number of faults injected. */
static unsigned fault_sweep(const char *name, int after_commit, int merge) {
    char strace[PATH_LEN];
    if (!find_strace(strace, sizeof strace)) cr_skip_test("strace is not installed");
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN], pristine[PATH_LEN],
        trace[PATH_LEN];
    scratch(name, dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    path_in(pristine, sizeof pristine, dir, "pristine");
    path_in(trace, sizeof trace, dir, "trace.txt");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    idlist old = {0}, now = {0};
    corpus_init(c, src, 0xfa17ull, 40, 8);
    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    /* one indexing thread: the sweep numbers the calls of a dry run and
     * fails the nth in each run, which needs the same calls in the same
     * order every time (builder threads would shift them, and a fault
     * landing on an input file's read is a skipped file, a third outcome
     * this sweep does not model); the kill test and test_merge's
     * allocation failures cover the threads */
    const char *update[] = {SAHELINDEX, "update", "--threads", "1", "--index", index, src, NULL};
    const char *merge_cmd[] = {SAHELINDEX, "merge", "--index", index, NULL};
    const char *const *cmd = merge ? merge_cmd : update;
    run_ok(build, log);
    corpus_ids(c, &old);
    corpus_mutate(c, 4, 4, 3, 2);
    corpus_ids(c, &now);
    if (merge) {
        /* two segments, one with deletions, to merge; the articles stay */
        run_ok(update, log);
        idlist_copy(&old, &now);
    }
    sahel_index *ix = open_verified(index, "before the sweep");
    uint64_t gen = generation_of(ix);
    sahel_index_close(ix);
    cr_assert_eq(sh_test_copy_tree(index, pristine), 0, "cannot copy %s", index);

    asan_for_ptrace();

    /* a dry run numbers the calls */
    const char *dry[16] = {strace, "-y", "-o", trace, "-e", "trace=" FAULT_SYSCALLS};
    for (size_t k = 0; cmd[k]; k++) dry[6 + k] = cmd[k];
    int status = run_limited(dry, log, 0);
    if (status != 0 && strstr(log_text(log), "ptrace"))
        cr_skip_test("strace cannot trace here: %s", log_text(log));
    cr_assert_eq(status, 0, "the traced %s exited %d:\n%s", cmd[1], status, log_text(log));
    size_t npts;
    fault_point *pts = fault_points(trace, index, &npts);
    cr_assert_gt(npts, 10, "only %zu calls on index files traced", npts);

    unsigned injected = 0, displaced = 0;
    for (size_t i = 0; i < npts; i++) {
        const fault_point *f = &pts[i];
        if (f->after_commit != after_commit) continue;
        cr_assert_eq(sh_test_rm_rf(index), 0);
        cr_assert_eq(sh_test_copy_tree(pristine, index), 0, "cannot copy %s", pristine);
        int nospace = !strcmp(f->name, "write") || !strcmp(f->name, "pwrite64") ||
                      !strcmp(f->name, "ftruncate");
        char select[64], inject[128], when[600];
        snprintf(select, sizeof select, "trace=%s", f->name);
        snprintf(inject, sizeof inject, "inject=%s:error=%s:when=%u", f->name,
                 nospace ? "ENOSPC" : "EIO", f->nth);
        const char *argv[16] = {strace, "-y", "-o", trace, "-e", select, "-e", inject};
        for (size_t k = 0; cmd[k]; k++) argv[8 + k] = cmd[k];
        snprintf(when, sizeof when, "%s with %s #%u failing (%s)", cmd[1], f->name, f->nth,
                 f->line);
        status = run_limited(argv, log, 0);
        const char *hit = injected_line(trace);
        /* calls are numbered per system call name, by a dry run; a run
         * that makes one more such call elsewhere (the sanitizer runtime
         * does, now and then) moves the fault to a neighbouring call.
         * The outcome must be safe all the same; only most points must
         * land where aimed, so that the sweep still covers the commit. */
        if (!hit || !strstr(hit, f->key)) displaced++;
        cr_assert(status == 0 || status == 2, "%s: exit %d:\n%s", when, status, log_text(log));
        ix = open_verified(index, when);
        uint64_t g = generation_of(ix);
        if (g == gen) {
            cr_assert_eq(status, 2, "%s: exit 0, yet generation %llu did not move", when,
                         (unsigned long long)g);
            assert_holds(ix, &old, &now, when);
        } else {
            cr_assert_eq(g, gen + 1, "%s: generation %llu after %llu", when,
                         (unsigned long long)g, (unsigned long long)gen);
            assert_holds(ix, &now, &old, when);
            cr_assert(status == 0 || !strstr(log_text(log), "nothing was committed"),
                      "%s: generation %llu was committed, yet it says:\n%s", when,
                      (unsigned long long)g, log_text(log));
        }
        sahel_index_close(ix);
        injected++;
    }
    cr_assert_leq(displaced * 4, injected, "%u of %u faults hit another call than aimed",
                  displaced, injected);
    asan_restore();
    free(pts);
    free(c);
    idlist_free(&old);
    idlist_free(&now);
    return injected;
}

Test(faults, update_with_any_failing_call_up_to_the_commit_point_changes_nothing) {
    unsigned n = fault_sweep("faults_update", 0, 0);
    cr_assert_gt(n, 10, "only %u faults injected", n);
    fprintf(stderr, "faults: update: %u failing system calls up to the commit point, each "
            "harmless\n", n);
}

Test(faults, merge_with_any_failing_call_up_to_the_commit_point_changes_nothing) {
    unsigned n = fault_sweep("faults_merge", 0, 1);
    cr_assert_gt(n, 10, "only %u faults injected", n);
    fprintf(stderr, "faults: merge: %u failing system calls up to the commit point, each "
            "harmless\n", n);
}

/* ---- readers: searches during commits ------------------------------------ */

/* Shared between the test and its reader process (MAP_SHARED). */
typedef struct reader_shared {
    uint64_t seen_generation; /* highest generation observed */
    uint64_t rounds;          /* search rounds done */
    uint64_t errors;          /* rounds that failed */
    int stop;                 /* set by the parent: one more round, then exit */
} reader_shared;

/* The reader process: open, search, record, close, until told to stop;
 * one more round after that, so that the last snapshot is seen.  Records
 * go to `fd` as observation structs.  Never returns. */
static void reader_main(const char *index, int fd, reader_shared *sh, pid_t parent) {
    /* a test that fails leaves no reader spinning behind it */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    observation *ob = malloc(sizeof *ob);
    if (!ob) _exit(1);
    for (;;) {
        int last = __atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE);
        memset(ob, 0, sizeof *ob);
        sahel_index *ix = NULL;
        sahel_error err = {0};
        int rc = sahel_index_open(index, &ix, &err);
        if (rc) {
            ob->failed = 1;
            snprintf(ob->msg, sizeof ob->msg, "open: %s", err.msg);
        } else {
            ob->generation = generation_of(ix);
            if (run_queries(ix, ob)) ob->failed = 1;
            sahel_index_close(ix);
        }
        if (write(fd, ob, sizeof *ob) != (ssize_t)sizeof *ob) _exit(1);
        if (ob->failed) __atomic_add_fetch(&sh->errors, 1, __ATOMIC_RELEASE);
        else if (ob->generation > __atomic_load_n(&sh->seen_generation, __ATOMIC_ACQUIRE))
            __atomic_store_n(&sh->seen_generation, ob->generation, __ATOMIC_RELEASE);
        __atomic_add_fetch(&sh->rounds, 1, __ATOMIC_RELEASE);
        if (last) break;
    }
    free(ob);
    close(fd);
    _exit(0);
}

/* Wait until the reader has seen generation `gen` (bounded; a dead or
 * stuck reader fails the test). */
static void await_reader(pid_t pid, reader_shared *sh, uint64_t gen) {
    double start = now_seconds();
    uint64_t rounds = __atomic_load_n(&sh->rounds, __ATOMIC_ACQUIRE);
    while (__atomic_load_n(&sh->seen_generation, __ATOMIC_ACQUIRE) < gen) {
        int ws;
        cr_assert_eq(waitpid(pid, &ws, WNOHANG), 0, "the reader process died");
        cr_assert_eq(__atomic_load_n(&sh->errors, __ATOMIC_ACQUIRE), 0,
                     "the reader got errors (see its records)");
        uint64_t r = __atomic_load_n(&sh->rounds, __ATOMIC_ACQUIRE);
        if (r != rounds) {
            rounds = r;
            start = now_seconds();
        }
        cr_assert_lt(now_seconds() - start, READER_STALL_SECONDS,
                     "the reader made no progress for %.0f s", READER_STALL_SECONDS);
        sleep_ns(1000000);
    }
}

Test(readers, every_search_during_commits_matches_its_snapshot) {
    unsigned nupdates = env_count("SAHEL_READER_UPDATES", 20);
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN], obs_path[PATH_LEN];
    scratch("readers", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    path_in(obs_path, sizeof obs_path, dir, "observations.bin");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    corpus_init(c, src, 0x7eade25ull, 150, 15);
    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    const char *merge[] = {SAHELINDEX, "merge", "--index", index, NULL};
    run_ok(build, log);

    /* expected[i]: the results of generation expected[i].generation */
    observation *expected = sh_test_xcalloc(nupdates + 1, sizeof *expected);
    size_t nexpected = 0;
    observe(index, &expected[nexpected++], "after build");
    /* a snapshot held open through every commit, merges included, whose
     * files are unlinked under it: it must answer as it did at first */
    sahel_index *held = open_verified(index, "the snapshot held open");

    reader_shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert(sh != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(sh, 0, sizeof *sh);
    int fd = open(obs_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "cannot create %s", obs_path);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) reader_main(index, fd, sh, parent);
    close(fd);

    await_reader(pid, sh, expected[0].generation);
    unsigned nmerges = 0;
    for (unsigned u = 0; u < nupdates; u++) {
        int is_merge = u % 7 == 6;
        char when[64];
        snprintf(when, sizeof when, "after %s %u", is_merge ? "merge" : "update", u);
        if (is_merge) {
            run_ok(merge, log);
            nmerges++;
        } else {
            corpus_mutate(c, 4, 3, 1, 1);
            run_ok(update, log);
        }
        observation *ob = &expected[nexpected++];
        observe(index, ob, when);
        cr_assert_eq(ob->generation, expected[nexpected - 2].generation + 1,
                     "%s: generation %llu", when, (unsigned long long)ob->generation);
        /* every snapshot is searched at least once, while the next
         * commit is already under way */
        await_reader(pid, sh, ob->generation);
    }
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
    int signaled, status = reap(pid, &signaled);
    cr_assert(!signaled && status == 0, "the reader ended with status %d", status);

    observation late;
    memset(&late, 0, sizeof late);
    late.generation = generation_of(held);
    cr_assert_eq(run_queries(held, &late), 0, "the held snapshot: %s", late.msg);
    char why[256];
    cr_assert(same_results(&late, &expected[0], why, sizeof why),
              "the snapshot held open since generation %llu changed: %s",
              (unsigned long long)expected[0].generation, why);
    sahel_index_close(held);

    size_t len = 0;
    char *data = sh_test_read_file(obs_path, &len);
    cr_assert(data, "cannot read %s", obs_path);
    cr_assert_eq(len % sizeof(observation), 0, "torn observation records");
    size_t nobs = len / sizeof(observation);
    uint64_t rounds = sh->rounds, errors = sh->errors;
    cr_assert_eq(nobs, rounds, "%zu records for %llu rounds", nobs, (unsigned long long)rounds);
    size_t *per_gen = sh_test_xcalloc(nexpected, sizeof *per_gen);
    for (size_t i = 0; i < nobs; i++) {
        observation ob;
        memcpy(&ob, data + i * sizeof ob, sizeof ob);
        cr_assert(!ob.failed, "reader round %zu failed: %s", i, ob.msg);
        size_t k = 0;
        while (k < nexpected && expected[k].generation != ob.generation) k++;
        cr_assert_lt(k, nexpected, "reader round %zu saw generation %llu, never committed", i,
                     (unsigned long long)ob.generation);
        cr_assert(same_results(&ob, &expected[k], why, sizeof why),
                  "reader round %zu, generation %llu: %s", i, (unsigned long long)ob.generation,
                  why);
        per_gen[k]++;
    }
    for (size_t k = 0; k < nexpected; k++)
        cr_assert_gt(per_gen[k], 0, "generation %llu was never searched",
                     (unsigned long long)expected[k].generation);
    cr_assert_eq(errors, 0);
    fprintf(stderr,
            "readers: %zu search rounds over %zu generations (%u updates, %u merges), 0 errors, "
            "every result as its snapshot's\n",
            nobs, nexpected, nupdates - nmerges, nmerges);
    free(per_gen);
    free(data);
    munmap(sh, sizeof *sh);
    free(expected);
    free(c);
}

/* ---- regression: defects found by the tests above --------------------------
 *
 * Each test names the defect it pins down; it fails until the engine is
 * fixed. */

/*
 * The commit point is the rename of MANIFEST.tmp over MANIFEST
 * (sh_manifest_write, engine/index/manifest.c); the directory is fsynced
 * after it, and when that fsync, or the open of the directory for it,
 * fails, sh_manifest_write returns an error.  As of commit 8db6b69,
 * sahel_writer_commit (engine/index/writer.c) then leaves w->committed at
 * 0, so sahel_writer_close unlinks the new segments, which the renamed
 * manifest names: the index no longer opens ("seg-...sseg: cannot open
 * index file").  And sahelindex (tools/sahelindex.c, cmd_build and
 * cmd_merge) says "nothing was committed; the index ... is unchanged"
 * whatever the error.  A failure after the rename must keep the new files
 * (every reader sees the commit from then on) and must not be reported
 * as nothing committed.
 * By hand: strace -e inject=fsync:error=EIO:when=<last> sahelindex update ...
 */
Test(regression, failure_after_the_manifest_rename_deletes_live_segments_and_denies_the_commit) {
    unsigned n = fault_sweep("faults_after", 1, 0);
    cr_assert_gt(n, 0, "no call after the commit point was traced");
}

/*
 * sahel_index_verify (engine/index/reader.c, in the working tree after
 * commit 8db6b69) reads the snapshot's sources table from disk by name
 * when it is called, not when the snapshot is opened.  A commit made
 * meanwhile removes that table (remove_unreferenced, writer.c), so
 * verifying a snapshot opened before it fails with "sources-NNNNNN.ssrc:
 * index file is missing" (SAHEL_ECORRUPT): `sahelindex verify` running
 * during an update reports a sound index as damaged.  Every other file of
 * the snapshot is mapped at open and stays valid after its unlinking.
 */
Test(regression, verify_of_an_open_snapshot_fails_once_a_commit_removes_its_sources_table) {
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN];
    scratch("verify_held", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    corpus_init(c, src, 0x4e1dull, 20, 4);
    const char *build[] = {SAHELINDEX, "build", "--index", index, src, NULL};
    const char *update[] = {SAHELINDEX, "update", "--index", index, src, NULL};
    run_ok(build, log);
    sahel_index *held = open_verified(index, "after build");
    corpus_mutate(c, 2, 2, 1, 1);
    run_ok(update, log);
    sahel_error err = {0};
    int rc = sahel_index_verify(held, &err);
    sahel_index_close(held);
    cr_assert_eq(rc, 0, "verify of the snapshot opened before the update: %s", err.msg);
    free(c);
}

/* ---- syncs: what is named by a commit is on the disk first --------------- */

/* The file an fd annotation of strace -y names ("fsync(5</x/seg.tmp>)"),
 * or "" . */
static void traced_fd_path(const char *line, char *out, size_t size) {
    const char *a = strchr(line, '<');
    const char *b = a ? strchr(a, '>') : NULL;
    snprintf(out, size, "%.*s", a && b ? (int)(b - a - 1) : 0, a ? a + 1 : "");
}

Test(syncs, one_thread_build_syncs_its_segment_before_naming_it) {
    /* a one-thread build whose one segment is never merged syncs that
     * segment as it finishes it (writer.c, sh_segw_will_sync), not at the
     * commit: it must be fsynced all the same, once, before the manifest
     * names it */
    char strace[PATH_LEN];
    if (!find_strace(strace, sizeof strace)) cr_skip_test("strace is not installed");
    char dir[PATH_LEN], src[PATH_LEN], index[PATH_LEN], log[PATH_LEN], trace[PATH_LEN];
    scratch("syncs_build", dir, src, index);
    path_in(log, sizeof log, dir, "child.log");
    path_in(trace, sizeof trace, dir, "trace.txt");
    corpus *c = sh_test_xcalloc(1, sizeof *c);
    corpus_init(c, src, 0x5e9cull, 30, 6);
    asan_for_ptrace();
    const char *argv[] = {strace, "-f", "-y", "-o", trace, "-e", "trace=fsync,fdatasync,rename",
                          SAHELINDEX, "build", "--threads", "1", "--index", index, src, NULL};
    int status = run_limited(argv, log, 0);
    if (status != 0 && strstr(log_text(log), "ptrace"))
        cr_skip_test("strace cannot trace here: %s", log_text(log));
    cr_assert_eq(status, 0, "traced build exited %d:\n%s", status, log_text(log));
    asan_restore();

    char *text = sh_test_read_file(trace, NULL);
    cr_assert(text, "cannot read %s", trace);
    int seg_syncs = 0, manifest = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *call = line + strspn(line, "0123456789 "); /* after -f's pid */
        if (!strncmp(call, "fsync(", 6) || !strncmp(call, "fdatasync(", 10)) {
            char path[PATH_LEN];
            traced_fd_path(call, path, sizeof path);
            if (strstr(path, "/seg-") && strstr(path, ".sseg")) {
                cr_assert(!manifest, "the segment was synced after the manifest named it");
                seg_syncs++;
            }
        } else if (!strncmp(call, "rename(", 7) && strstr(call, "/MANIFEST.tmp\"")) {
            manifest = 1;
        }
    }
    cr_assert(manifest, "no manifest was written");
    cr_assert_eq(seg_syncs, 1, "the segment was fsynced %d times", seg_syncs);
    free(text);
    sahel_index *ix = open_verified(index, "after the traced build");
    sahel_index_close(ix);
    free(c);
}
