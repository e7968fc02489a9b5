/*
 * harness.c - the measuring code shared by bench_sahel, peer_fts5 and
 * peer_xapian (see harness.h): one implementation of the timed regions, so
 * that the engines differ only in the callbacks they supply.
 *
 * What is timed, and why:
 *   build  from an empty directory to a committed index with every handle
 *          closed.  The corpus file is read once beforehand (page cache
 *          warm, counts known); JSON parsing is inside the timed region for
 *          every engine, because sahel_ingest parses inside it and the peers
 *          parse with the same reader (sh_json_parse_article).  `sync()`
 *          before each run, so that one run's write-back does not land in
 *          the next.  With --repeat R the first R-1 runs build into
 *          INDEXDIR.repN (removed after their size is taken) and the last
 *          one into INDEXDIR; the median and the minimum are reported.
 *   query  one query: the engine's parse, search and the reading of the ids
 *          of the k best hits, between two CLOCK_MONOTONIC reads.  Queries
 *          are read and rendered, and the index opened, before timing; one
 *          warm-up pass over all of them, then R timed passes in file
 *          order.  Per query the median (and the minimum) of its R times;
 *          per class the percentiles of those over the class's queries
 *          (nearest rank), so one disturbed pass does not move a query's
 *          figure.
 *
 * Invariants: the corpus is mapped read-only and never copied; lines that
 * sahel_ingest skips, and later duplicates of an id (sahel keeps the
 * first), are skipped by every engine, so all of them index the same
 * articles.  Program-level code: allocation failure exits (x* wrappers).
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingest/ingest.h"

volatile uint64_t bench_sink;

static const char *prog = "bench";

void bench_set_prog(const char *argv0) {
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    prog = slash ? slash + 1 : (argv0 ? argv0 : "bench");
}

void bench_die(const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *bench_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) bench_die("out of memory (%zu bytes)", n);
    return p;
}

void *bench_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) bench_die("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *bench_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) bench_die("out of memory (%zu bytes)", n);
    return q;
}

static char *xstrdup(const char *s) {
    size_t len = strlen(s);
    char *p = bench_xmalloc(len + 1);
    memcpy(p, s, len + 1);
    return p;
}

void bench_result(const char *engine, const char *corpus, const char *metric,
                  const char *cls, double value) {
    printf("RESULT engine=%s corpus=%s metric=%s class=%s value=%.6g\n", engine, corpus,
           metric, cls, value);
}

/* ---- clocks and resources ------------------------------------------------ */

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

double bench_peak_rss_mb(void) {
    /* VmHWM follows bench_reset_peak_rss; ru_maxrss never goes down */
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
        fclose(f);
        if (kb >= 0) return (double)kb * 1024.0 / 1e6;
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return 0;
    return (double)ru.ru_maxrss * 1024.0 / 1e6; /* Linux: ru_maxrss is in KiB */
}

int bench_reset_peak_rss(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, "5", 1);
    close(fd);
    return n == 1 ? 0 : -1;
}

uint64_t bench_path_bytes(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return 0;
    if (S_ISREG(sb.st_mode)) return (uint64_t)sb.st_size;
    if (!S_ISDIR(sb.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= sizeof sub) continue;
        total += bench_path_bytes(sub);
    }
    closedir(d);
    return total;
}

/* Remove a directory tree this program created (a repeat's index). */
static void remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb)) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            char sub[4096];
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= sizeof sub)
                    bench_die("%s/%s: path too long", path, e->d_name);
                remove_tree(sub);
            }
            closedir(d);
        }
        if (rmdir(path)) bench_die("cannot remove %s: %s", path, strerror(errno));
    } else if (unlink(path)) {
        bench_die("cannot remove %s: %s", path, strerror(errno));
    }
}

/* ---- corpus ---------------------------------------------------------------- */

struct bench_corpus {
    char *path;
    const char *data;
    size_t len;
    void *map;           /* NULL for an empty file */
    size_t pos;          /* next line starts here */
    uint64_t lineno;     /* 1-based number of the line last read */
    uint64_t ordinal;    /* kept articles handed out so far */
    uint8_t *keep;       /* [lineno]: 1 when the line is a kept article */
    uint64_t nlines, ndocs, nskipped;
    sh_buf scratch;      /* decoded fields of the current line */
};

/* Same rule as jsonl.c: spaces, tabs and CRs only. */
static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

/* The next line of the file without its line end; 0 at the end. */
static int next_line(bench_corpus *c, const char **line, size_t *len) {
    if (c->pos >= c->len) return 0;
    size_t start = c->pos;
    const char *nl = memchr(c->data + start, '\n', c->len - start);
    size_t end = nl ? (size_t)(nl - c->data) : c->len;
    c->pos = nl ? end + 1 : c->len;
    if (end > start && c->data[end - 1] == '\r') end--;
    c->lineno++;
    *line = c->data + start;
    *len = end - start;
    return 1;
}

/* Parse a line as sahel_ingest does: 1 with *a filled when it is an
 * article sahel would take (duplicates aside), else 0. */
static int parse_article(bench_corpus *c, const char *line, size_t len, sh_json_article *a) {
    if (len > SH_INGEST_MAX_LINE || is_blank(line, len) || memchr(line, '\0', len)) return 0;
    sahel_error err = {0};
    sh_buf_reset(&c->scratch);
    int rc = sh_json_parse_article(line, len, &c->scratch, a, &err);
    if (rc == SAHEL_ENOMEM) bench_die("%s: out of memory parsing line %llu", c->path,
                                      (unsigned long long)c->lineno);
    if (rc) return 0;
    return a->text.present && a->id.present && a->id.len > 0;
}

struct idref {
    size_t off, len;     /* in the id pool */
    uint64_t lineno;
};

static const char *id_pool;

static int idref_cmp(const void *pa, const void *pb) {
    const struct idref *a = pa, *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int d = memcmp(id_pool + a->off, id_pool + b->off, n);
    if (d) return d;
    if (a->len != b->len) return a->len < b->len ? -1 : 1;
    return a->lineno < b->lineno ? -1 : a->lineno > b->lineno;
}

bench_corpus *bench_corpus_open(const char *path) {
    bench_corpus *c = bench_xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) bench_die("cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) bench_die("%s: not a regular file", path);
    c->len = (size_t)sb.st_size;
    c->data = "";
    if (c->len) {
        /* MAP_POPULATE: the file is paged in now, not inside a timed run. */
        c->map = mmap(NULL, c->len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (c->map == MAP_FAILED) bench_die("cannot map %s: %s", path, strerror(errno));
        c->data = c->map;
    }
    close(fd);

    /* The pre-pass: which lines are articles, and which ids repeat. */
    if (c->len >= 3 && !memcmp(c->data, "\xEF\xBB\xBF", 3)) c->pos = 3;
    struct idref *refs = NULL;
    size_t nrefs = 0, cap = 0;
    char *pool = NULL;
    size_t pool_len = 0, pool_cap = 0;
    const char *line;
    size_t len;
    while (next_line(c, &line, &len)) {
        sh_json_article a;
        if (!parse_article(c, line, len, &a)) {
            if (!is_blank(line, len)) c->nskipped++;
            continue;
        }
        if (nrefs == cap) {
            cap = cap ? 2 * cap : 1024;
            refs = bench_xrealloc(refs, cap * sizeof *refs);
        }
        if (pool_len + a.id.len > pool_cap) {
            pool_cap = 2 * (pool_len + a.id.len) + 4096;
            pool = bench_xrealloc(pool, pool_cap);
        }
        memcpy(pool + pool_len, a.id.s, a.id.len);
        refs[nrefs++] = (struct idref){.off = pool_len, .len = a.id.len, .lineno = c->lineno};
        pool_len += a.id.len;
    }
    c->nlines = c->lineno;
    c->keep = bench_xcalloc(c->nlines + 1, 1);
    id_pool = pool;
    if (nrefs) qsort(refs, nrefs, sizeof *refs, idref_cmp);
    for (size_t i = 0; i < nrefs; i++) {
        int dup = i > 0 && refs[i].len == refs[i - 1].len &&
                  !memcmp(pool + refs[i].off, pool + refs[i - 1].off, refs[i].len);
        if (dup) {
            c->nskipped++;
            continue;
        }
        c->keep[refs[i].lineno] = 1;
        c->ndocs++;
    }
    id_pool = NULL;
    free(pool);
    free(refs);
    bench_corpus_rewind(c);
    return c;
}

void bench_corpus_rewind(bench_corpus *c) {
    c->pos = c->len >= 3 && !memcmp(c->data, "\xEF\xBB\xBF", 3) ? 3 : 0;
    c->lineno = 0;
    c->ordinal = 0;
}

int bench_corpus_next(bench_corpus *c, bench_doc *doc) {
    const char *line;
    size_t len;
    while (next_line(c, &line, &len)) {
        if (!c->keep[c->lineno]) continue;
        sh_json_article a;
        if (!parse_article(c, line, len, &a))
            bench_die("%s:%llu: the line changed since it was read", c->path,
                      (unsigned long long)c->lineno);
        doc->id = a.id.s;
        doc->id_len = a.id.len;
        doc->title = a.title.present ? a.title.s : "";
        doc->title_len = a.title.present ? a.title.len : 0;
        doc->body = a.text.s;
        doc->body_len = a.text.len;
        doc->ordinal = ++c->ordinal;
        return 1;
    }
    return 0;
}

uint64_t bench_corpus_ndocs(const bench_corpus *c) { return c->ndocs; }
uint64_t bench_corpus_bytes(const bench_corpus *c) { return c->len; }
uint64_t bench_corpus_nskipped(const bench_corpus *c) { return c->nskipped; }

void bench_corpus_close(bench_corpus *c) {
    if (!c) return;
    if (c->map) munmap(c->map, c->len);
    sh_buf_free(&c->scratch);
    free(c->keep);
    free(c->path);
    free(c);
}

/* ---- statistics -------------------------------------------------------------- */

static int cmp_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return a < b ? -1 : a > b;
}

/* Nearest-rank percentile of v[0..n) (sorted ascending), n > 0. */
static double percentile(const double *v, size_t n, double p) {
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

/* Median of v[0..n), n > 0; sorts v. */
static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double min_of(const double *v, size_t n) {
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        if (v[i] < m) m = v[i];
    return m;
}

/* ---- options ------------------------------------------------------------------- */

typedef struct options {
    const char *pos[2];
    int npos;
    int repeat;           /* 0: the command's default */
    long k;
    const char *name;
} options;

static long parse_count(const char *opt, const char *s, long max) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < 1 || v > max)
        bench_die("%s needs a whole number from 1 to %ld", opt, max);
    return v;
}

static void parse_options(int argc, char **argv, options *o) {
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--repeat")) {
            o->repeat = (int)parse_count(a, i + 1 < argc ? argv[++i] : NULL, 1000);
        } else if (!strcmp(a, "--k")) {
            o->k = parse_count(a, i + 1 < argc ? argv[++i] : NULL, 100000);
        } else if (!strcmp(a, "--name")) {
            if (i + 1 >= argc) bench_die("--name needs a value");
            o->name = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            bench_die("unknown option %s", a);
        } else if (o->npos < 2) {
            o->pos[o->npos++] = a;
        } else {
            bench_die("too many arguments (%s)", a);
        }
    }
}

/* A corpus name for RESULT lines: the file's name without its extension,
 * or its folder's when the file is a generic "docs.jsonl"; characters
 * other than [A-Za-z0-9._-] become '_'. */
static char *corpus_name(const char *given, const char *path, int is_file) {
    char buf[256];
    if (given) {
        snprintf(buf, sizeof buf, "%.255s", given);
    } else {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", path);
        size_t n = strlen(tmp);
        while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
        char *base = strrchr(tmp, '/');
        base = base ? base + 1 : tmp;
        if (is_file) {
            char *dot = strrchr(base, '.');
            if (dot && dot != base) *dot = '\0';
            if (!strcmp(base, "docs") && base != tmp) {
                base[-1] = '\0';
                char *parent = strrchr(tmp, '/');
                if (tmp[0]) base = parent ? parent + 1 : tmp;
            }
        }
        snprintf(buf, sizeof buf, "%.255s", base[0] ? base : "corpus");
    }
    for (char *p = buf; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            *p = '_';
    }
    return xstrdup(buf[0] ? buf : "corpus");
}

/* ---- build ---------------------------------------------------------------------- */

static int run_build(const bench_build_spec *spec, const options *o) {
    if (o->npos != 2) bench_die("usage: %s build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]", prog);
    const char *corpus_path = o->pos[0], *indexdir = o->pos[1];
    int repeat = o->repeat ? o->repeat : 1;
    char *name = corpus_name(o->name, corpus_path, 1);

    bench_corpus *c = bench_corpus_open(corpus_path);
    uint64_t bytes = bench_corpus_bytes(c), ndocs = bench_corpus_ndocs(c);
    uint64_t nskipped = bench_corpus_nskipped(c);
    if (spec->reads_file) { /* the engine maps the file itself: do not hold a second mapping */
        bench_corpus_close(c);
        c = NULL;
    }

    double *secs = bench_xcalloc((size_t)repeat, sizeof *secs);
    double rss = 0; /* MB: the largest build's peak */
    uint64_t index_bytes = 0;
    long long indexed = 0;
    for (int r = 0; r < repeat; r++) {
        char dir[4096];
        if (r == repeat - 1)
            snprintf(dir, sizeof dir, "%s", indexdir);
        else if ((size_t)snprintf(dir, sizeof dir, "%s.rep%d", indexdir, r + 1) >= sizeof dir)
            bench_die("%s: path too long", indexdir);
        struct stat sb;
        if (!lstat(dir, &sb)) bench_die("%s exists; give a path that does not", dir);
        if (mkdir(dir, 0777)) bench_die("cannot create %s: %s", dir, strerror(errno));
        if (c) bench_corpus_rewind(c);
        sync();
        /* the peak of the build itself, not of the corpus counted before
         * it (a gigabyte for the 1 GB corpus) or of the runs before */
        int reset = bench_reset_peak_rss() == 0;
        uint64_t t0 = bench_now_ns();
        indexed = spec->build(c, corpus_path, dir);
        uint64_t t1 = bench_now_ns();
        if (indexed < 0) bench_die("%s: build failed", spec->engine);
        secs[r] = (double)(t1 - t0) / 1e9;
        double peak = bench_peak_rss_mb();
        if (!reset || peak > rss) rss = peak;
        index_bytes = bench_path_bytes(dir);
        fprintf(stderr, "%s: build %d/%d: %.3f s, %lld articles, index %.2f MB\n", spec->engine,
                r + 1, repeat, secs[r], indexed, (double)index_bytes / 1e6);
        if (r < repeat - 1) remove_tree(dir);
    }
    if ((uint64_t)indexed != ndocs)
        fprintf(stderr, "%s: warning: indexed %lld articles, the corpus has %llu\n",
                spec->engine, indexed, (unsigned long long)ndocs);
    bench_corpus_close(c);

    double best = min_of(secs, (size_t)repeat);
    double med = median(secs, (size_t)repeat);
    double mb = (double)bytes / 1e6;
    bench_result(spec->engine, name, "build_s", "-", med);
    bench_result(spec->engine, name, "build_s_min", "-", best);
    bench_result(spec->engine, name, "build_mbps", "-", mb / med);
    bench_result(spec->engine, name, "docs_per_s", "-", (double)indexed / med);
    bench_result(spec->engine, name, "peak_rss_mb", "-", rss);
    bench_result(spec->engine, name, "index_mb", "-", (double)index_bytes / 1e6);
    bench_result(spec->engine, name, "docs", "-", (double)indexed);
    fprintf(stderr,
            "%s build of %s (%.2f MB, %llu articles, %llu lines skipped), %d run%s\n"
            "  settings:   %s\n"
            "  build:      median %.3f s, min %.3f s\n"
            "  throughput: %.2f MB/s, %.0f articles/s (median run)\n"
            "  peak RSS:   %.1f MB (the process during its largest build: an engine that\n"
            "              reads the file itself holds only its own mapping of it, a peer\n"
            "              also the harness's, which it reads its articles from)\n"
            "  index:      %.2f MB (%.2f x the input)\n",
            spec->engine, corpus_path, mb, (unsigned long long)ndocs,
            (unsigned long long)nskipped, repeat, repeat == 1 ? "" : "s", spec->settings,
            med, best, mb / med, (double)indexed / med, rss, (double)index_bytes / 1e6,
            bytes ? (double)index_bytes / (double)bytes : 0.0);
    free(secs);
    free(name);
    return 0;
}

/* ---- queries ---------------------------------------------------------------------- */

static bench_qkind kind_of(const char *cls, const char *path, uint64_t lineno) {
    if (!strncmp(cls, "term", 4) || !strncmp(cls, "or", 2)) return BENCH_Q_OR;
    if (!strncmp(cls, "and", 3)) return BENCH_Q_AND;
    if (!strncmp(cls, "phrase", 6)) return BENCH_Q_PHRASE;
    bench_die("%s:%llu: unknown query class \"%s\" (term*, or*, and*, phrase*)", path,
              (unsigned long long)lineno, cls);
}

/* Read "class<TAB>qid<TAB>w1 w2 ..." lines; '#' lines and blank lines are
 * skipped.  The words live in *pool (one string per line, split in place). */
static bench_query *load_queries(const char *path, size_t *nout, char ***pool, size_t *npool) {
    FILE *f = fopen(path, "r");
    if (!f) bench_die("cannot open %s: %s", path, strerror(errno));
    bench_query *qs = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    uint64_t lineno = 0;
    char **lines = NULL;
    size_t nlines = 0;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0 || line[0] == '#') continue;
        char *copy = xstrdup(line);
        lines = bench_xrealloc(lines, (nlines + 1) * sizeof *lines);
        lines[nlines++] = copy;
        char *cls = copy, *qid = strchr(cls, '\t');
        char *words = qid ? strchr(qid + 1, '\t') : NULL;
        if (!words) bench_die("%s:%llu: expected class<TAB>qid<TAB>words", path,
                              (unsigned long long)lineno);
        *qid++ = '\0';
        *words++ = '\0';
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            qs = bench_xrealloc(qs, cap * sizeof *qs);
        }
        bench_query *q = &qs[n];
        memset(q, 0, sizeof *q);
        if ((size_t)snprintf(q->cls, sizeof q->cls, "%s", cls) >= sizeof q->cls ||
            (size_t)snprintf(q->qid, sizeof q->qid, "%s", qid) >= sizeof q->qid || !cls[0])
            bench_die("%s:%llu: class or qid empty or too long", path, (unsigned long long)lineno);
        q->kind = kind_of(cls, path, lineno);
        for (char *w = strtok(words, " "); w; w = strtok(NULL, " ")) {
            if (q->nwords == BENCH_MAX_WORDS)
                bench_die("%s:%llu: more than %d words", path, (unsigned long long)lineno,
                          BENCH_MAX_WORDS);
            q->words[q->nwords++] = w;
        }
        if (!q->nwords) bench_die("%s:%llu: no words", path, (unsigned long long)lineno);
        n++;
    }
    if (ferror(f)) bench_die("error reading %s", path);
    fclose(f);
    free(line);
    if (!n) bench_die("%s: no queries", path);
    *nout = n;
    *pool = lines;
    *npool = nlines;
    return qs;
}

/* The figures of one class (or of all queries when cls is "all"). */
static void report_class(const bench_query_spec *spec, const char *name, const char *cls,
                         const bench_query *qs, size_t nq, const double *samples, int repeat,
                         const long *hits) {
    size_t n = 0;
    for (size_t i = 0; i < nq; i++)
        if (!strcmp(cls, "all") || !strcmp(qs[i].cls, cls)) n++;
    if (!n) return;
    double *med = bench_xmalloc(n * sizeof *med), *best = bench_xmalloc(n * sizeof *best);
    double *tmp = bench_xmalloc((size_t)repeat * sizeof *tmp);
    double sum = 0, hsum = 0;
    size_t j = 0;
    for (size_t i = 0; i < nq; i++) {
        if (strcmp(cls, "all") && strcmp(qs[i].cls, cls)) continue;
        for (int r = 0; r < repeat; r++) tmp[r] = samples[(size_t)r * nq + i];
        best[j] = min_of(tmp, (size_t)repeat);
        med[j] = median(tmp, (size_t)repeat);
        sum += med[j];
        hsum += (double)hits[i];
        j++;
    }
    qsort(med, n, sizeof *med, cmp_double);
    qsort(best, n, sizeof *best, cmp_double);
    double p50 = percentile(med, n, 50), p95 = percentile(med, n, 95), p99 = percentile(med, n, 99);
    bench_result(spec->engine, name, "p50_us", cls, p50);
    bench_result(spec->engine, name, "p95_us", cls, p95);
    bench_result(spec->engine, name, "p99_us", cls, p99);
    bench_result(spec->engine, name, "mean_us", cls, sum / (double)n);
    bench_result(spec->engine, name, "best_p50_us", cls, percentile(best, n, 50));
    bench_result(spec->engine, name, "best_p95_us", cls, percentile(best, n, 95));
    bench_result(spec->engine, name, "best_p99_us", cls, percentile(best, n, 99));
    bench_result(spec->engine, name, "hits_mean", cls, hsum / (double)n);
    fprintf(stderr, "  %-8s %5zu %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f %7.2f\n", cls, n, p50,
            p95, p99, sum / (double)n, percentile(best, n, 50), percentile(best, n, 99),
            hsum / (double)n);
    free(tmp);
    free(best);
    free(med);
}

static int run_queries(const bench_query_spec *spec, const options *o) {
    if (o->npos != 2)
        bench_die("usage: %s query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]", prog);
    const char *indexdir = o->pos[0], *qpath = o->pos[1];
    int repeat = o->repeat ? o->repeat : 5;
    size_t k = o->k ? (size_t)o->k : 10;
    char *name = corpus_name(o->name, indexdir, 0);

    size_t nq, npool;
    char **pool;
    bench_query *qs = load_queries(qpath, &nq, &pool, &npool);
    char **text = bench_xcalloc(nq, sizeof *text);
    size_t *tlen = bench_xcalloc(nq, sizeof *tlen);
    for (size_t i = 0; i < nq; i++) {
        char buf[1024];
        int len = spec->render(&qs[i], buf, sizeof buf);
        if (len < 0) bench_die("query %s does not fit %zu bytes", qs[i].qid, sizeof buf);
        text[i] = xstrdup(buf);
        tlen[i] = (size_t)len;
    }

    void *ctx = spec->open(indexdir);
    if (!ctx) bench_die("%s: cannot open %s", spec->engine, indexdir);
    long *hits = bench_xcalloc(nq, sizeof *hits);
    for (size_t i = 0; i < nq; i++) { /* warm-up, and the hit counts */
        hits[i] = spec->run(ctx, &qs[i], text[i], tlen[i], k);
        if (hits[i] < 0) bench_die("%s: query %s failed: %s", spec->engine, qs[i].qid, text[i]);
    }
    double *samples = bench_xmalloc((size_t)repeat * nq * sizeof *samples);
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < nq; i++) {
            uint64_t t0 = bench_now_ns();
            long got = spec->run(ctx, &qs[i], text[i], tlen[i], k);
            uint64_t t1 = bench_now_ns();
            if (got != hits[i])
                bench_die("%s: query %s gave %ld hits, %ld in the warm-up: %s", spec->engine,
                          qs[i].qid, got, hits[i], text[i]);
            samples[(size_t)r * nq + i] = (double)(t1 - t0) / 1e3;
        }
    }
    spec->close(ctx);

    fprintf(stderr,
            "%s queries on %s: %zu queries, k = %zu, 1 warm-up + %d timed passes\n"
            "  settings: %s\n"
            "  per query: median (and min) of its passes; per class: percentiles of those, us\n"
            "  %-8s %5s %10s %10s %10s %10s %10s %10s %7s\n",
            spec->engine, indexdir, nq, k, repeat, spec->settings, "class", "n", "p50", "p95",
            "p99", "mean", "min-p50", "min-p99", "hits");
    /* classes in the order they first appear in the file */
    for (size_t i = 0; i < nq; i++) {
        size_t first = 0;
        while (strcmp(qs[first].cls, qs[i].cls)) first++;
        if (first == i) report_class(spec, name, qs[i].cls, qs, nq, samples, repeat, hits);
    }
    report_class(spec, name, "all", qs, nq, samples, repeat, hits);

    for (size_t i = 0; i < nq; i++) free(text[i]);
    for (size_t i = 0; i < npool; i++) free(pool[i]);
    free(pool);
    free(text);
    free(tlen);
    free(hits);
    free(samples);
    free(qs);
    free(name);
    return 0;
}

int bench_main(int argc, char **argv, const bench_build_spec *build,
               const bench_query_spec *query) {
    bench_set_prog(argc > 0 ? argv[0] : NULL);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: %s build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]\n"
                "       %s query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]\n",
                prog, prog);
        return argc < 2 ? 2 : 0;
    }
    options o = {0};
    parse_options(argc, argv, &o);
    if (!strcmp(argv[1], "build")) return run_build(build, &o);
    if (!strcmp(argv[1], "query")) return run_queries(query, &o);
    bench_die("unknown command %s (build or query)", argv[1]);
}
