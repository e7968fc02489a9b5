/*
 * sahelindex.c - build, verify and describe a sahelsearch index.
 *
 *   sahelindex build  [--index DIR] [--force] [--memory MB] [--threads N] SOURCE...
 *   sahelindex update [--index DIR] [--memory MB] [--threads N] SOURCE...
 *   sahelindex merge  [--index DIR] [--memory MB]
 *   sahelindex verify [--index DIR]
 *   sahelindex stats  [--index DIR]
 *
 * A thin layer over the public API: the library reads the articles and
 * writes the index; this file turns its callbacks into warnings and a
 * progress line, and its statistics into a summary.
 *
 * Invariants: the summary (the result of the command) goes to stdout,
 * everything else to stderr; a bad article or an unreadable source is a
 * warning and the build goes on; a build that fails commits nothing, so
 * the previous index stays as it was.  Exit 0 on success (even with
 * warnings), 2 on a usage error or a failure.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Ten redraws a second look live without costing the build anything. */
#define PROGRESS_INTERVAL 0.1

/* --memory is in MiB; 1 TiB is far past any machine this runs on and keeps
 * the multiplication below from overflowing. */
#define MEMORY_MAX_MB (1024ULL * 1024ULL)
#define MEMORY_MIN_MB ((unsigned long long)(SAHEL_MIN_MEMORY_BUDGET >> 20))

static void synopsis(FILE *f) {
    fputs("usage: sahelindex build [--index DIR] [--force] [--memory MB] [--threads N] SOURCE...\n"
          "       sahelindex update [--index DIR] [--memory MB] [--threads N] SOURCE...\n"
          "       sahelindex merge [--index DIR] [--memory MB]\n"
          "       sahelindex verify [--index DIR]\n"
          "       sahelindex stats [--index DIR]\n"
          "       sahelindex --help | --version\n",
          f);
}

static void usage(FILE *f) {
    synopsis(f);
    fprintf(f,
            "\n"
            "Commands:\n"
            "  build     index the articles in each SOURCE: a .txt file (one article,\n"
            "            title on the first line, id from the file name), a .jsonl\n"
            "            file (one JSON object per line with id and text, and maybe\n"
            "            title, date, source, url, lang) or a folder searched\n"
            "            recursively for both\n"
            "  update    bring the index up to date with the SOURCEs: index new and\n"
            "            changed articles, delete those gone from them; files whose\n"
            "            size and time are as recorded are not read again\n"
            "  merge     merge every segment into one, purging deleted articles\n"
            "  verify    check every checksum and structure of every index file\n"
            "  stats     print what the index holds\n"
            "\n"
            "Options:\n"
            "  -i, --index DIR    the index directory (default: $%s if set,\n"
            "                     else %s)\n"
            "  -f, --force        build: replace an existing index\n"
            "  -m, --memory MB    build, update, merge: MiB of memory for indexing\n"
            "                     (default 256, at least 16); past it, what is\n"
            "                     buffered is written out and merged at the end\n"
            "  -j, --threads N    build, update: indexing threads (default: one per\n"
            "                     core; 1 indexes on the reading thread; fewer when\n"
            "                     --memory is too small for N); the index is the\n"
            "                     same whatever N\n"
            "  -h, --help         print this help and exit\n"
            "  -V, --version      print the version and exit\n"
            "\n"
            "A bad article or an unreadable file is a warning and the build goes on.\n"
            "One writer at a time: a second gets \"locked by pid N\"; searches may\n"
            "run during a build or update and see the index before or after it.\n"
            "Exit status: 0 on success (even with warnings), 2 on error; a failed\n"
            "build or update leaves the previous index untouched.\n",
            CLI_INDEX_ENV, CLI_DEFAULT_INDEX);
}

/* A usage error: the synopsis only, as OpenBSD's tools do; --help has the
 * rest. */
static int usage_error(void) {
    synopsis(stderr);
    fputs("Try 'sahelindex --help' for more information.\n", stderr);
    return CLI_EXIT_ERROR;
}

/* ---- build -------------------------------------------------------------- */

struct build_ctx {
    int tty;             /* stderr is a terminal: draw the progress line */
    int drawn;           /* a progress line is on the screen */
    double last_draw;    /* cli_now() of the last redraw */
    uint64_t base_bytes; /* bytes of the sources already done */
    int source, nsources; /* which SOURCE is being read (1-based), of how many */
};

static void progress_clear(struct build_ctx *c) {
    if (!c->drawn) return;
    fputs("\r\033[K", stderr);
    c->drawn = 0;
}

static void on_warn(void *ctx, const char *path, uint64_t line, const char *msg) {
    struct build_ctx *c = ctx;
    progress_clear(c);
    if (line > 0) cli_warn("%s:%llu: %s", path, (unsigned long long)line, msg);
    else cli_warn("%s: %s", path, msg);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total, uint64_t ndocs) {
    struct build_ctx *c = ctx;
    if (!c->tty) return;
    double now = cli_now();
    int finished = total > 0 && done >= total;
    if (c->drawn && !finished && now - c->last_draw < PROGRESS_INTERVAL) return;
    c->last_draw = now;
    /* bytes are counted per SOURCE (each call of sahel_ingest has its own
     * total), articles over the whole build (the statistics accumulate) */
    char mb[32], docs[32], which[48] = "";
    cli_fmt_bytes((double)(c->base_bytes + done), mb, sizeof mb);
    cli_fmt_count(ndocs, docs, sizeof docs);
    if (c->nsources > 1) snprintf(which, sizeof which, "[%d/%d] ", c->source, c->nsources);
    fprintf(stderr, "\r\033[K%s: %s", cli_progname(), which);
    if (total > 0) {
        double pct = 100.0 * (double)done / (double)total;
        fprintf(stderr, "%3.0f%%  ", pct > 100.0 ? 100.0 : pct);
    }
    fprintf(stderr, "%s  %s article%s", mb, docs, ndocs == 1 ? "" : "s");
    fflush(stderr);
    c->drawn = 1;
}

/* Report a failure of the writer; EEXIST gets the way out. */
static void report_write_error(const sahel_error *err, int rc, const char *dir) {
    cli_report(NULL, err, rc);
    if (rc == SAHEL_EEXIST && strstr(err->msg, "damaged"))
        cli_error("hint: use --force to rebuild it from scratch");
    else if (rc == SAHEL_EEXIST)
        cli_error("hint: use 'sahelindex update' to add what changed, or --force to rebuild "
                  "it from scratch");
    else if (rc == SAHEL_ELOCKED)
        cli_error("hint: another sahelindex is writing %s; wait for it to finish", dir);
}

/* After a failed commit: what state the index is in.  A failure after the
 * commit point (the library's message then starts with "committed") left
 * the new index in place. */
static void report_uncommitted(const sahel_error *err, const char *what, const char *dir) {
    if (strncmp(err->msg, "committed", 9) == 0)
        cli_error("%s committed: %s is the new index, but a crash now might lose it; "
                  "run 'sahelindex verify' after one",
                  what, dir);
    else
        cli_error("%s failed: nothing was committed; the index in %s, if any, is unchanged",
                  what, dir);
}

static void report_stale_lock(const sahel_writer_stats *ws) {
    if (ws->stale_lock_pid)
        cli_warn("the previous writer (pid %d) died without finishing; the index is as of its "
                 "last commit",
                 ws->stale_lock_pid);
}

/* Open the writer, or say why not (NULL). */
static sahel_writer *open_writer(const char *dir, const sahel_writer_opts *wopts) {
    sahel_error err = {0};
    sahel_writer *w = NULL;
    int rc = sahel_writer_open(dir, wopts, &w, &err);
    if (rc < 0) {
        report_write_error(&err, rc, dir);
        cli_index_hint(dir, rc);
        return NULL;
    }
    sahel_writer_stats ws = {0};
    sahel_writer_get_stats(w, &ws);
    report_stale_lock(&ws);
    return w;
}

static int cmd_build(const char *dir, int force, int update, uint64_t memory_mb, unsigned threads,
                     char **sources, int nsources) {
    double t0 = cli_now();
    sahel_error err = {0};
    sahel_writer_opts wopts = {.force = force,
                               .memory_budget = (size_t)(memory_mb * 1024 * 1024),
                               .update = update,
                               .threads = threads};
    const char *what = update ? "update" : "build";
    sahel_writer *w = open_writer(dir, &wopts);
    if (!w) return CLI_EXIT_ERROR;
    sahel_writer_stats ws = {0};
    int rc;

    struct build_ctx ctx = {.tty = cli_isatty(STDERR_FILENO), .nsources = nsources};
    sahel_ingest_opts iopts = {.warn = on_warn, .progress = on_progress, .ctx = &ctx};
    sahel_ingest_stats st = {0};
    uint64_t bad_sources = 0;
    int nread = 0;
    for (int i = 0; i < nsources; i++) {
        const char *src = sources[i];
        /* A source that is not there or not readable is one bad input: say
         * so and go on with the others.  Checked here because the library
         * cannot tell a missing source from a failing writer by its code. */
        if (access(src, R_OK) != 0) {
            progress_clear(&ctx);
            cli_warn("%s: %s", src, strerror(errno));
            bad_sources++;
            continue;
        }
        ctx.base_bytes = st.bytes;
        ctx.source = i + 1;
        rc = sahel_ingest(w, src, &iopts, &st, &err);
        if (rc == SAHEL_EINVAL) {
            /* the library refused this source (not a .txt, .jsonl or
             * folder): a bad input, not a failed build */
            progress_clear(&ctx);
            if (strstr(err.msg, src)) cli_warn("%s", err.msg);
            else cli_warn("%s: %s", src, err.msg[0] ? err.msg : sahel_strerror(rc));
            bad_sources++;
            continue;
        }
        if (rc < 0) {
            progress_clear(&ctx);
            cli_report(NULL, &err, rc);
            cli_error("%s failed: nothing was committed; the index in %s, if any, is unchanged",
                      what, dir);
            sahel_writer_close(w);
            return CLI_EXIT_ERROR;
        }
        nread++;
    }
    progress_clear(&ctx);
    if (nread == 0) {
        cli_error("no source could be read: nothing was committed to %s", dir);
        sahel_writer_close(w);
        return CLI_EXIT_ERROR;
    }
    /* Sources that all went wrong would commit an empty index over a good
     * one; an empty folder, without a warning, may well mean an empty
     * index. */
    if (st.articles + st.unchanged == 0 && st.warnings + bad_sources > 0) {
        cli_error("no article could be read: nothing was committed to %s", dir);
        sahel_writer_close(w);
        return CLI_EXIT_ERROR;
    }

    rc = sahel_writer_commit(w, &err);
    if (rc < 0) {
        report_write_error(&err, rc, dir);
        report_uncommitted(&err, what, dir);
        sahel_writer_close(w);
        return CLI_EXIT_ERROR;
    }
    sahel_writer_get_stats(w, &ws);
    sahel_writer_close(w);
    double secs = cli_now() - t0;
    if (update) {
        uint64_t warnings = st.warnings + bad_sources;
        printf("updated %s in %.2f s: %llu added, %llu replaced, %llu deleted, %llu unchanged "
               "(%llu file%s read, %llu unchanged file%s skipped, %llu warning%s); "
               "%llu segment%s",
               dir, secs, (unsigned long long)ws.nadded, (unsigned long long)ws.nreplaced,
               (unsigned long long)ws.ndeleted, (unsigned long long)ws.nunchanged,
               (unsigned long long)st.files, st.files == 1 ? "" : "s",
               (unsigned long long)st.unchanged_files, st.unchanged_files == 1 ? "" : "s",
               (unsigned long long)warnings, warnings == 1 ? "" : "s",
               (unsigned long long)ws.nlive_segments, ws.nlive_segments == 1 ? "" : "s");
        if (ws.nmerged) printf(" (%llu merged)", (unsigned long long)ws.nmerged);
        printf("\n");
        return CLI_EXIT_OK;
    }

    char ndocs[32], nterms[32], nbytes[32], rate[32];
    uint64_t warnings = st.warnings + bad_sources;
    cli_fmt_count(st.articles, ndocs, sizeof ndocs);
    cli_fmt_count(ws.nterms, nterms, sizeof nterms);
    cli_fmt_bytes((double)st.bytes, nbytes, sizeof nbytes);
    /* a rate over a few microseconds means nothing: floor the duration */
    cli_fmt_bytes((double)st.bytes / (secs > 1e-3 ? secs : 1e-3), rate, sizeof rate);
    printf("indexed %s article%s from %llu file%s (%llu warning%s, %llu skipped, "
           "%llu repaired, %llu duplicate%s",
           ndocs, st.articles == 1 ? "" : "s", (unsigned long long)st.files,
           st.files == 1 ? "" : "s", (unsigned long long)warnings, warnings == 1 ? "" : "s",
           (unsigned long long)(st.skipped + bad_sources), (unsigned long long)st.repaired,
           (unsigned long long)st.duplicates, st.duplicates == 1 ? "" : "s");
    if (st.ignored_files)
        printf(", %llu file%s ignored", (unsigned long long)st.ignored_files,
               st.ignored_files == 1 ? "" : "s");
    printf(") in %.2f s: %s distinct terms, %s read, %s/s -> %s\n", secs, nterms, nbytes,
           rate, dir);
    return CLI_EXIT_OK;
}

/* ---- merge -------------------------------------------------------------- */

static int cmd_merge(const char *dir, uint64_t memory_mb) {
    double t0 = cli_now();
    sahel_error err = {0};
    sahel_writer_opts wopts = {.memory_budget = (size_t)(memory_mb * 1024 * 1024), .update = 1};
    sahel_writer *w = open_writer(dir, &wopts);
    if (!w) return CLI_EXIT_ERROR;
    sahel_writer_stats ws = {0};
    int rc;
    if ((rc = sahel_writer_optimize(w, &err)) < 0 || (rc = sahel_writer_commit(w, &err)) < 0) {
        report_write_error(&err, rc, dir);
        report_uncommitted(&err, "merge", dir);
        sahel_writer_close(w);
        return CLI_EXIT_ERROR;
    }
    sahel_writer_get_stats(w, &ws);
    sahel_writer_close(w);
    printf("merged %llu segment%s into %llu in %.2f s -> %s\n", (unsigned long long)ws.nmerged,
           ws.nmerged == 1 ? "" : "s", (unsigned long long)ws.nlive_segments, cli_now() - t0, dir);
    return CLI_EXIT_OK;
}

/* ---- verify and stats --------------------------------------------------- */

static int cmd_verify(const char *dir) {
    sahel_index *ix;
    if (cli_open_index(dir, &ix) < 0) return CLI_EXIT_ERROR;
    sahel_error err = {0};
    int rc = sahel_index_verify(ix, &err);
    if (rc < 0) {
        cli_report(NULL, &err, rc);
        cli_index_hint(dir, rc);
        sahel_index_close(ix);
        return CLI_EXIT_ERROR;
    }
    sahel_index_info info = {0};
    sahel_index_get_info(ix, &info);
    char ndocs[32];
    printf("ok: %s document%s, %llu segment%s, all checksums match\n",
           cli_fmt_count(info.ndocs, ndocs, sizeof ndocs), info.ndocs == 1 ? "" : "s",
           (unsigned long long)info.nsegments, info.nsegments == 1 ? "" : "s");
    sahel_index_close(ix);
    return CLI_EXIT_OK;
}

static int cmd_stats(const char *dir) {
    sahel_index *ix;
    if (cli_open_index(dir, &ix) < 0) return CLI_EXIT_ERROR;
    sahel_index_info info = {0};
    sahel_index_get_info(ix, &info);
    char ndocs[32], nterms[32], size[32], bytes[32];
    cli_buf d = {0};
    cli_buf_put_text(&d, dir, strlen(dir), 0);
    printf("index:       %.*s\n", d.failed ? 0 : (int)d.len, d.p ? d.p : "");
    cli_buf_free(&d);
    printf("documents:   %s\n", cli_fmt_count(info.ndocs, ndocs, sizeof ndocs));
    printf("deleted:     %llu (purged by the next merge)\n", (unsigned long long)info.ndeleted);
    printf("segments:    %llu\n", (unsigned long long)info.nsegments);
    for (size_t i = 0; i < info.nsegments; i++) {
        sahel_segment_info si;
        if (sahel_index_segment_info(ix, i, &si) < 0) break;
        char sd[32], sz[32];
        printf("  %-24s %10s documents, %llu deleted, %s\n", si.name,
               cli_fmt_count(si.ndocs, sd, sizeof sd), (unsigned long long)si.ndeleted,
               cli_fmt_bytes((double)si.bytes, sz, sizeof sz));
    }
    printf("terms:       %s\n", cli_fmt_count(info.nterms, nterms, sizeof nterms));
    printf("size:        %s (%s bytes)\n", cli_fmt_bytes((double)info.bytes, size, sizeof size),
           cli_fmt_count(info.bytes, bytes, sizeof bytes));
    printf("generation:  %llu\n", (unsigned long long)info.generation);
    printf("avg title:   %.1f tokens\n", info.avg_title_len);
    printf("avg body:    %.1f tokens\n", info.avg_body_len);
    printf("language:    %s\n", info.language && info.language[0] ? info.language : "-");
    sahel_index_close(ix);
    return CLI_EXIT_OK;
}

/* ---- main --------------------------------------------------------------- */

enum { CMD_NONE, CMD_BUILD, CMD_UPDATE, CMD_MERGE, CMD_VERIFY, CMD_STATS };

int main(int argc, char **argv) {
    cli_set_progname("sahelindex");
    static const struct option longopts[] = {
        {"index", required_argument, NULL, 'i'},
        {"force", no_argument, NULL, 'f'},
        {"memory", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *index_opt = NULL;
    int force = 0, memory_given = 0;
    uint64_t memory_mb = 0, threads = 0;
    int ch;
    /* One option loop for all commands (options may come before or after
     * the command word); which option suits which command is checked
     * below. */
    opterr = 0; /* our own messages, with the program's name */
    while ((ch = getopt_long(argc, argv, ":i:fm:j:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            if (optarg[0] == '\0') {
                cli_error("--index needs a directory");
                return usage_error();
            }
            index_opt = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'm':
            if (cli_parse_u64(optarg, MEMORY_MIN_MB, MEMORY_MAX_MB, &memory_mb) != 0) {
                cli_error("--memory: '%s' is not a number of MiB between %llu and %llu%s", optarg,
                          (unsigned long long)MEMORY_MIN_MB, (unsigned long long)MEMORY_MAX_MB,
                          " (below the least, the indexer's own buffers leave no room to "
                          "index)");
                return usage_error();
            }
            memory_given = 1;
            break;
        case 'j':
            if (cli_parse_u64(optarg, 1, 64, &threads) != 0) {
                cli_error("--threads: '%s' is not a number between 1 and 64", optarg);
                return usage_error();
            }
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("sahelindex %s\n", SAHEL_VERSION_STRING);
            return CLI_EXIT_OK;
        default:
            cli_option_error(ch, argv);
            return usage_error();
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        cli_error("no command given");
        return usage_error();
    }
    int cmd = CMD_NONE;
    if (strcmp(argv[0], "build") == 0) cmd = CMD_BUILD;
    else if (strcmp(argv[0], "update") == 0) cmd = CMD_UPDATE;
    else if (strcmp(argv[0], "merge") == 0 || strcmp(argv[0], "optimize") == 0) cmd = CMD_MERGE;
    else if (strcmp(argv[0], "verify") == 0) cmd = CMD_VERIFY;
    else if (strcmp(argv[0], "stats") == 0) cmd = CMD_STATS;
    else if (strcmp(argv[0], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (cmd == CMD_NONE) {
        cli_error("unknown command '%s'", argv[0]);
        return usage_error();
    }
    argc--;
    argv++;
    const char *dir = cli_index_dir(index_opt);

    if (cmd == CMD_BUILD || cmd == CMD_UPDATE) {
        if (argc < 1) {
            cli_error("%s: no SOURCE given", cmd == CMD_BUILD ? "build" : "update");
            return usage_error();
        }
        if (force && cmd == CMD_UPDATE) {
            cli_error("--force is an option of build only");
            return usage_error();
        }
        return cmd_build(dir, force, cmd == CMD_UPDATE, memory_given ? memory_mb : 0,
                         (unsigned)threads, argv, argc);
    }
    if (force || threads || (memory_given && cmd != CMD_MERGE)) {
        cli_error("--force is an option of build, --threads of build and update, --memory of "
                  "build, update and merge");
        return usage_error();
    }
    if (cmd == CMD_MERGE) {
        if (argc > 0) {
            cli_error("merge takes no arguments, got '%s'", argv[0]);
            return usage_error();
        }
        return cmd_merge(dir, memory_given ? memory_mb : 0);
    }
    if (argc > 0) {
        cli_error("%s takes no arguments, got '%s'", cmd == CMD_VERIFY ? "verify" : "stats",
                  argv[0]);
        return usage_error();
    }
    return cmd == CMD_VERIFY ? cmd_verify(dir) : cmd_stats(dir);
}
