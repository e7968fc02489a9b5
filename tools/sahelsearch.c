/*
 * sahelsearch.c - search a sahelsearch index from the command line.
 *
 *   sahelsearch [--index DIR] [-n N] [--json] [--explain] [--title-weight W]
 *               [--threads N] QUERY...
 *   sahelsearch [--index DIR] --queries FILE [--trec] [-n N] [--tag TAG]
 *
 * The first form prints the best hits of one query, for a person (rank,
 * id, title, score, a snippet with the query's words highlighted, date,
 * source and file) or as JSON Lines; the second runs a file of
 * "QID<TAB>QUERY" lines and prints a TREC run for evaluation tools.
 *
 * Invariants: stdout holds results only, every diagnostic goes to stderr
 * prefixed with the program name; text from articles is made safe for a
 * terminal (cli_buf_put_text) or escaped for JSON (cli_buf_put_json) before
 * it is written.  Exit status as grep: 0 hits, 1 no hit, 2 error; in batch
 * mode a bad line or query is a warning and the run goes on (exit 0).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#endif

#include "cli.h"

/* About two lines of a terminal: enough context to judge a hit. */
#define SNIPPET_BYTES 200
#define DEFAULT_HITS 10
/* trec_eval's customary depth for a run. */
#define DEFAULT_BATCH_HITS 1000
/* A bound that keeps k * sizeof(hit) far from overflow; no reader wants
 * more hits than this from one query. */
#define MAX_HITS 10000000ULL

#define BOLD "\033[1m"
#define DIM "\033[2m"
#define RESET "\033[0m"

/* Markers of highlighted words where no terminal styles are used (the
 * guillemets read well and do not occur in the query syntax). */
#define MARK_OPEN "\xc2\xab"  /* « */
#define MARK_CLOSE "\xc2\xbb" /* » */

enum {
    OPT_JSON = 256,
    OPT_EXPLAIN,
    OPT_TITLE_WEIGHT,
    OPT_QUERIES,
    OPT_TREC,
    OPT_TAG,
};

/* The most threads one search may use (--threads). */
#define MAX_SEARCH_THREADS 64

static void synopsis(FILE *f) {
    fputs("usage: sahelsearch [--index DIR] [-n N] [--json] [--explain]\n"
          "                   [--title-weight W] [--threads N] QUERY...\n"
          "       sahelsearch [--index DIR] --queries FILE [--trec] [-n N] [--tag TAG]\n"
          "                   [--title-weight W] [--threads N]\n"
          "       sahelsearch --help | --version\n",
          f);
}

static void usage(FILE *f) {
    synopsis(f);
    fprintf(f,
            "\n"
            "Search the index for QUERY (several arguments are joined with spaces) and\n"
            "print the best hits, best first, each with a snippet of the article in\n"
            "which the words of the query are highlighted.\n"
            "\n"
            "Query language:\n"
            "  pact treaty       either word; articles with more of them rank higher\n"
            "  mali AND niger    both words (AND, OR and NOT are upper case)\n"
            "  +mali niger       mali must occur, niger adds to the score\n"
            "  NOT coup, -coup   the word must not occur\n"
            "  \"defense pact\"    the words next to each other, in this order\n"
            "  junt*             words that start with \"junt\"\n"
            "  title:niger       the word in the title (body: in the text)\n"
            "  (a OR b) AND c    grouping\n"
            "Words match as they do in the articles: case, accents and endings\n"
            "(defense, defenses) do not matter.  Put -- before a QUERY that starts\n"
            "with -: sahelsearch -- -coup mali\n"
            "\n"
            "Options:\n"
            "  -i, --index DIR       the index directory (default: $%s if set,\n"
            "                        else %s)\n"
            "  -n, --limit N         print at most N hits (default %d; %d with --queries)\n"
            "      --json            print JSON Lines: one object per hit with rank, id,\n"
            "                        score, title, path, line, snippet, date, source, url\n"
            "      --explain         show how each score was computed\n"
            "      --title-weight W  weight of a match in the title, a match in the\n"
            "                        body weighing 1 (default %g)\n"
            "      --queries FILE    batch mode: run every \"QID<TAB>QUERY\" line of FILE\n"
            "                        (- for standard input) and print a TREC run\n"
            "      --trec            print the batch results as a TREC run, one\n"
            "                        \"QID Q0 DOCID RANK SCORE TAG\" line per hit (the\n"
            "                        output of --queries)\n"
            "      --tag TAG         the TAG column of the TREC run (default \"sahel\")\n"
            "  -j, --threads N       threads for one query (default: one per core): a\n"
            "                        query that reads much of a large index searches\n"
            "                        parts of it at once; the hits are the same\n"
            "  -h, --help            print this help and exit\n"
            "  -V, --version         print the version and exit\n"
            "\n"
            "Highlighted words are bold on a terminal (unless NO_COLOR is set), else\n"
            "marked \xc2\xablike this\xc2\xbb.\n"
            "Exit status: 0 if something was found, 1 if nothing was, 2 on error.\n",
            CLI_INDEX_ENV, CLI_DEFAULT_INDEX, DEFAULT_HITS, DEFAULT_BATCH_HITS,
            SAHEL_DEFAULT_TITLE_WEIGHT);
}

/* A usage error: the synopsis only, as OpenBSD's tools do; --help has the
 * rest. */
static int usage_error(void) {
    synopsis(stderr);
    fputs("Try 'sahelsearch --help' for more information.\n", stderr);
    return CLI_EXIT_ERROR;
}

/* ---- query errors ------------------------------------------------------- */

/* The 1-based column of a message that starts "column N:", or 0. */
static size_t message_column(const char *msg) {
    static const char prefix[] = "column ";
    if (strncmp(msg, prefix, sizeof prefix - 1) != 0) return 0;
    const char *p = msg + sizeof prefix - 1;
    size_t col = 0;
    while (*p >= '0' && *p <= '9') {
        if (col > SIZE_MAX / 10 - 1) return 0;
        col = col * 10 + (size_t)(*p++ - '0');
    }
    return *p == ':' ? col : 0;
}

/* The error, then the query with a caret under the column it names. */
static void report_query_error(const sahel_error *err, int rc, const char *q, size_t qlen) {
    cli_report("query error", err, rc);
    size_t col = message_column(err->msg);
    cli_buf b = {0};
    cli_buf_puts(&b, "  ");
    cli_buf_put_text(&b, q, qlen, 0);
    cli_buf_puts(&b, "\n");
    if (col > 0 && col <= qlen + 1) {
        size_t cells = cli_text_cells(q, col - 1);
        cli_buf_puts(&b, "  ");
        for (size_t i = 0; i < cells; i++) cli_buf_puts(&b, " ");
        cli_buf_puts(&b, "^\n");
    }
    cli_buf_write(&b, stderr);
    cli_buf_free(&b);
}

/* ---- one hit ------------------------------------------------------------ */

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Append hit i's snippet: white space collapsed, the query's words between
 * `open` and `close`, "..." where the excerpt cuts the body.  Nothing is
 * appended for an empty body. */
static int put_snippet(cli_buf *b, sahel_hits *hits, size_t i, const char *open,
                       const char *close, sahel_error *err) {
    sahel_snippet sn = {0};
    int rc = sahel_hits_snippet(hits, i, SNIPPET_BYTES, &sn, err);
    if (rc < 0) return rc;
    if (!sn.text) return 0;
    size_t start = 0, end = sn.len;
    while (start < end && is_blank(sn.text[start])) start++;
    while (end > start && is_blank(sn.text[end - 1])) end--;
    if (start == end) return 0;
    if (sn.cut_before) cli_buf_puts(b, "...");
    size_t pos = start;
    for (size_t s = 0; s < sn.nspans; s++) {
        size_t a = sn.spans[s].start, z = sn.spans[s].end;
        if (z > end) z = end;
        /* spans are documented in order and inside the text; one that is
         * not is skipped rather than followed out of bounds */
        if (a < pos || a >= z) continue;
        cli_buf_put_text(b, sn.text + pos, a - pos, 1);
        cli_buf_puts(b, open);
        cli_buf_put_text(b, sn.text + a, z - a, 1);
        cli_buf_puts(b, close);
        pos = z;
    }
    cli_buf_put_text(b, sn.text + pos, end - pos, 1);
    if (sn.cut_after) cli_buf_puts(b, "...");
    return 0;
}

/* Append each line of text, indented. */
static void put_indented(cli_buf *b, const char *text, const char *indent) {
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        cli_buf_puts(b, indent);
        cli_buf_put_text(b, p, n, 0);
        cli_buf_puts(b, "\n");
        p += n;
        if (*p == '\n') p++;
    }
}

struct out_opts {
    int color;   /* ANSI styles on stdout */
    int json;    /* JSON Lines */
    int explain; /* add the score explanation */
    int rank_width;
};

static int print_hit_text(cli_buf *b, sahel_hits *hits, size_t i, const sahel_hit *h,
                          const struct out_opts *o, sahel_error *err) {
    cli_buf_printf(b, "%*zu. ", o->rank_width, i + 1);
    cli_buf_put_text(b, h->id, h->id_len, 0);
    if (h->title_len) {
        cli_buf_puts(b, "  ");
        size_t at = b->len;
        cli_buf_put_text(b, h->title, h->title_len, 1);
        if (b->len > at && b->p[b->len - 1] == ' ') b->len--;
    }
    cli_buf_printf(b, "  (%.3f)\n", h->score);

    size_t at = b->len;
    cli_buf_puts(b, "    ");
    size_t text_at = b->len;
    int rc = put_snippet(b, hits, i, o->color ? BOLD : MARK_OPEN, o->color ? RESET : MARK_CLOSE,
                         err);
    if (rc < 0) return rc;
    if (b->len == text_at) b->len = at; /* no snippet: no line */
    else cli_buf_puts(b, "\n");

    if (h->date_len || h->source_len || h->path_len) {
        cli_buf_puts(b, "    ");
        if (o->color) cli_buf_puts(b, DIM);
        const char *sep = "";
        if (h->date_len) {
            cli_buf_put_text(b, h->date, h->date_len, 1);
            sep = " \xc2\xb7 "; /* · */
        }
        if (h->source_len) {
            cli_buf_puts(b, sep);
            cli_buf_put_text(b, h->source, h->source_len, 1);
            sep = " \xc2\xb7 ";
        }
        if (h->path_len) {
            cli_buf_puts(b, sep);
            cli_buf_put_text(b, h->path, h->path_len, 0);
            if (h->line > 0) cli_buf_printf(b, ":%llu", (unsigned long long)h->line);
        }
        if (o->color) cli_buf_puts(b, RESET);
        cli_buf_puts(b, "\n");
    }

    if (o->explain) {
        const char *text = NULL;
        rc = sahel_hits_explain(hits, i, &text, err);
        if (rc < 0) return rc;
        if (text) put_indented(b, text, "      ");
    }
    return 0;
}

static void json_field(cli_buf *b, const char *name, const char *s, size_t len) {
    cli_buf_printf(b, ",\"%s\":\"", name);
    cli_buf_put_json(b, s, len);
    cli_buf_puts(b, "\"");
}

static int print_hit_json(cli_buf *b, sahel_hits *hits, size_t i, const sahel_hit *h,
                          const struct out_opts *o, sahel_error *err) {
    cli_buf_printf(b, "{\"rank\":%zu,\"id\":\"", i + 1);
    cli_buf_put_json(b, h->id, h->id_len);
    /* JSON has no NaN or infinity; a score is finite unless the library
     * is broken, and then null is the honest value */
    if (isfinite(h->score)) cli_buf_printf(b, "\",\"score\":%.6f", h->score);
    else cli_buf_puts(b, "\",\"score\":null");
    json_field(b, "title", h->title, h->title_len);
    json_field(b, "path", h->path, h->path_len);
    if (h->line > 0) cli_buf_printf(b, ",\"line\":%llu", (unsigned long long)h->line);

    cli_buf snip = {0};
    int rc = put_snippet(&snip, hits, i, MARK_OPEN, MARK_CLOSE, err);
    if (rc < 0) {
        cli_buf_free(&snip);
        return rc;
    }
    if (snip.failed) b->failed = 1;
    json_field(b, "snippet", snip.p, snip.len);
    cli_buf_free(&snip);

    if (h->date_len) json_field(b, "date", h->date, h->date_len);
    if (h->source_len) json_field(b, "source", h->source, h->source_len);
    if (h->url_len) json_field(b, "url", h->url, h->url_len);
    if (o->explain) {
        const char *text = NULL;
        rc = sahel_hits_explain(hits, i, &text, err);
        if (rc < 0) return rc;
        if (text) json_field(b, "explain", text, strlen(text));
    }
    cli_buf_puts(b, "}\n");
    return 0;
}

/* ---- one query ---------------------------------------------------------- */

static int search_one(sahel_index *ix, const char *dir, const char *q, size_t qlen,
                      const sahel_search_opts *so, const struct out_opts *oo_in) {
    sahel_error err = {0};
    sahel_hits *hits = NULL;
    int rc = sahel_search(ix, q, qlen, so, &hits, &err);
    if (rc == SAHEL_ESYNTAX || rc == SAHEL_ETOOBIG) {
        report_query_error(&err, rc, q, qlen);
        return CLI_EXIT_ERROR;
    }
    if (rc < 0) {
        cli_report(NULL, &err, rc);
        cli_index_hint(dir, rc);
        return CLI_EXIT_ERROR;
    }
    size_t n = sahel_hits_count(hits);
    if (n == 0) {
        sahel_hits_free(hits);
        cli_buf b = {0};
        cli_buf_put_text(&b, q, qlen, 0);
        cli_error("no match for: %.*s", b.failed ? 0 : (int)b.len, b.p ? b.p : "");
        cli_buf_free(&b);
        return CLI_EXIT_NONE;
    }

    struct out_opts oo = *oo_in;
    oo.rank_width = snprintf(NULL, 0, "%zu", n);
    if (oo.rank_width < 2) oo.rank_width = 2;
    int status = CLI_EXIT_OK;
    cli_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        sahel_hit h;
        rc = sahel_hits_get(hits, i, &h, &err);
        if (rc >= 0) {
            cli_buf_reset(&b);
            rc = oo.json ? print_hit_json(&b, hits, i, &h, &oo, &err)
                         : print_hit_text(&b, hits, i, &h, &oo, &err);
        }
        if (rc < 0) {
            fflush(stdout);
            cli_report(NULL, &err, rc);
            cli_index_hint(dir, rc);
            status = CLI_EXIT_ERROR;
            break;
        }
        if (cli_buf_write(&b, stdout) < 0) {
            cli_error("out of memory");
            status = CLI_EXIT_ERROR;
            break;
        }
    }
    cli_buf_free(&b);
    sahel_hits_free(hits);
    return status;
}

/* ---- batch mode --------------------------------------------------------- */

static int has_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (is_blank(s[i])) return 1;
    return 0;
}

static int search_batch(sahel_index *ix, const char *dir, const char *file,
                        const sahel_search_opts *so, const char *tag) {
    int from_stdin = strcmp(file, "-") == 0;
    const char *name = from_stdin ? "(standard input)" : file;
    FILE *f = from_stdin ? stdin : fopen(file, "r");
    if (!f) {
        cli_error("%s: %s", file, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    int status = CLI_EXIT_OK;
    uint64_t warnings = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    sahel_error err = {0};
    while ((got = getline(&line, &cap, f)) != -1) {
        lineno++;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t lead = 0;
        while (lead < len && is_blank(line[lead])) lead++;
        if (lead == len) continue; /* blank line */

        const char *tab = memchr(line, '\t', len);
        if (!tab) {
            cli_warn("%s:%llu: no TAB between query id and query; line skipped", name,
                     (unsigned long long)lineno);
            warnings++;
            continue;
        }
        size_t qid_len = (size_t)(tab - line);
        const char *q = tab + 1;
        size_t qlen = len - qid_len - 1;
        if (qid_len == 0 || has_blank(line, qid_len)) {
            cli_warn("%s:%llu: the query id must be one word; line skipped", name,
                     (unsigned long long)lineno);
            warnings++;
            continue;
        }
        line[qid_len] = '\0'; /* the TAB: the qid is now a C string */
        if (memchr(line, '\0', qid_len)) {
            cli_warn("%s:%llu: NUL byte in the query id; line skipped", name,
                     (unsigned long long)lineno);
            warnings++;
            continue;
        }

        sahel_hits *hits = NULL;
        int rc = sahel_search(ix, q, qlen, so, &hits, &err);
        if (rc == SAHEL_ESYNTAX || rc == SAHEL_ETOOBIG || rc == SAHEL_EINVAL) {
            cli_warn("%s:%llu: query %s: %s", name, (unsigned long long)lineno, line,
                     err.msg[0] ? err.msg : sahel_strerror(rc));
            warnings++;
            continue;
        }
        if (rc < 0) {
            cli_report(NULL, &err, rc);
            cli_index_hint(dir, rc);
            status = CLI_EXIT_ERROR;
            break;
        }
        size_t n = sahel_hits_count(hits);
        for (size_t i = 0; i < n; i++) {
            const char *id;
            size_t id_len;
            double score;
            /* ids come from the index directly: a run never needs the
             * stored articles */
            rc = sahel_hits_id(hits, i, &id, &id_len, &score, &err);
            if (rc < 0) break;
            if (id_len == 0 || has_blank(id, id_len) || memchr(id, '\0', id_len)) {
                /* a TREC run is split on white space: such an id would
                 * shift every column after it */
                cli_warn("query %s: article id with white space cannot be written in a "
                         "TREC run; hit %zu skipped",
                         line, i + 1);
                warnings++;
                continue;
            }
            printf("%s Q0 %.*s %zu %.6f %s\n", line, (int)id_len, id, i + 1, score, tag);
        }
        sahel_hits_free(hits);
        if (rc < 0) {
            cli_report(NULL, &err, rc);
            cli_index_hint(dir, rc);
            status = CLI_EXIT_ERROR;
            break;
        }
    }
    if (status == CLI_EXIT_OK && ferror(f)) {
        cli_error("%s: read error", name);
        status = CLI_EXIT_ERROR;
    }
    free(line);
    if (!from_stdin) fclose(f);
    if (warnings > 0)
        cli_error("%llu warning%s in %s", (unsigned long long)warnings,
                  warnings == 1 ? "" : "s", name);
    return status;
}

/* ---- main --------------------------------------------------------------- */

/* The query arguments joined by single spaces, NUL-terminated. */
static char *join_args(int argc, char **argv, size_t *len) {
    cli_buf b = {0};
    for (int i = 0; i < argc; i++) {
        if (i > 0) cli_buf_puts(&b, " ");
        cli_buf_puts(&b, argv[i]);
    }
    cli_buf_put(&b, "", 1);
    if (b.failed) {
        cli_buf_free(&b);
        return NULL;
    }
    *len = b.len - 1;
    return b.p;
}

/* One thread per core this process may run on (taskset, cgroups), the
 * default of --threads. */
static size_t cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) n = CPU_COUNT(&set);
#endif
    return n < 1 ? 1 : (size_t)(n < MAX_SEARCH_THREADS ? n : MAX_SEARCH_THREADS);
}

int main(int argc, char **argv) {
    cli_set_progname("sahelsearch");
    static const struct option longopts[] = {
        {"index", required_argument, NULL, 'i'},
        {"limit", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, OPT_JSON},
        {"explain", no_argument, NULL, OPT_EXPLAIN},
        {"title-weight", required_argument, NULL, OPT_TITLE_WEIGHT},
        {"queries", required_argument, NULL, OPT_QUERIES},
        {"trec", no_argument, NULL, OPT_TREC},
        {"tag", required_argument, NULL, OPT_TAG},
        {"threads", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *index_opt = NULL, *queries = NULL, *tag = NULL;
    int json = 0, explain = 0, trec = 0;
    uint64_t limit = 0, threads = 0;
    double title_weight = 0.0;
    int ch;
    opterr = 0; /* our own messages, with the program's name */
    while ((ch = getopt_long(argc, argv, ":i:n:j:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            if (optarg[0] == '\0') {
                cli_error("--index needs a directory");
                return usage_error();
            }
            index_opt = optarg;
            break;
        case 'n':
            if (cli_parse_u64(optarg, 1, MAX_HITS, &limit) != 0) {
                cli_error("-n: '%s' is not a number of hits between 1 and %llu", optarg,
                          (unsigned long long)MAX_HITS);
                return usage_error();
            }
            break;
        case 'j':
            if (cli_parse_u64(optarg, 1, MAX_SEARCH_THREADS, &threads) != 0) {
                cli_error("--threads: '%s' is not a number between 1 and %d", optarg,
                          MAX_SEARCH_THREADS);
                return usage_error();
            }
            break;
        case OPT_JSON:
            json = 1;
            break;
        case OPT_EXPLAIN:
            explain = 1;
            break;
        case OPT_TITLE_WEIGHT: {
            char *end;
            errno = 0;
            title_weight = strtod(optarg, &end);
            /* 0 would mean "the default" to the library, not "no weight" */
            if (errno || end == optarg || *end != '\0' || !isfinite(title_weight) ||
                title_weight <= 0.0) {
                cli_error("--title-weight: '%s' is not a positive number", optarg);
                return usage_error();
            }
            break;
        }
        case OPT_QUERIES:
            queries = optarg;
            break;
        case OPT_TREC:
            trec = 1;
            break;
        case OPT_TAG:
            if (optarg[0] == '\0' || has_blank(optarg, strlen(optarg))) {
                cli_error("--tag: a run tag is one word");
                return usage_error();
            }
            tag = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("sahelsearch %s\n", SAHEL_VERSION_STRING);
            return CLI_EXIT_OK;
        default:
            cli_option_error(ch, argv);
            if (ch == '?' && optopt > 0 && optopt < 128)
                cli_error("hint: put -- before a QUERY that starts with '-'");
            return usage_error();
        }
    }
    argc -= optind;
    argv += optind;

    if (queries) {
        if (argc > 0) {
            cli_error("--queries takes its queries from FILE, not from arguments");
            return usage_error();
        }
        if (json || explain) {
            cli_error("--json and --explain do not apply to --queries");
            return usage_error();
        }
    } else {
        if (trec || tag) {
            cli_error("--trec and --tag need --queries FILE");
            return usage_error();
        }
        if (argc < 1) {
            cli_error("no QUERY given");
            return usage_error();
        }
    }

    const char *dir = cli_index_dir(index_opt);
    sahel_index *ix;
    if (cli_open_index(dir, &ix) < 0) return CLI_EXIT_ERROR;

    sahel_search_opts so = {
        .k = (size_t)(limit ? limit : queries ? DEFAULT_BATCH_HITS : DEFAULT_HITS),
        .title_weight = title_weight,
        .explain = explain,
        .threads = threads ? (size_t)threads : cores(),
    };
    int status;
    if (queries) {
        status = search_batch(ix, dir, queries, &so, tag ? tag : "sahel");
    } else {
        size_t qlen = 0;
        char *q = join_args(argc, argv, &qlen);
        if (!q) {
            cli_error("out of memory");
            sahel_index_close(ix);
            return CLI_EXIT_ERROR;
        }
        struct out_opts oo = {.color = !json && cli_use_color(STDOUT_FILENO),
                              .json = json,
                              .explain = explain};
        status = search_one(ix, dir, q, qlen, &so, &oo);
        free(q);
    }
    sahel_index_close(ix);
    /* results that did not reach their reader are an error, not a success */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("standard output: %s", strerror(errno));
        return CLI_EXIT_ERROR;
    }
    return status;
}
