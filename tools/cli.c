/*
 * cli.c - helpers shared by sahelindex and sahelsearch (see cli.h).
 *
 * Invariants: every diagnostic goes to stderr and starts with the program
 * name; text that came from outside (file names, article text, library
 * messages that quote input) is passed through cli_buf_put_text before it
 * reaches a terminal, so an article cannot send escape sequences to it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char *progname = "sahel";

void cli_set_progname(const char *name) { progname = name; }

const char *cli_progname(void) { return progname; }

/* ---- growable strings --------------------------------------------------- */

static int buf_reserve(cli_buf *b, size_t extra) {
    if (b->failed) return -1;
    if (extra <= b->cap - b->len) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void cli_buf_put(cli_buf *b, const char *s, size_t len) {
    if (len == 0 || buf_reserve(b, len)) return;
    memcpy(b->p + b->len, s, len);
    b->len += len;
}

void cli_buf_puts(cli_buf *b, const char *s) { cli_buf_put(b, s, strlen(s)); }

static void buf_putc(cli_buf *b, char c) { cli_buf_put(b, &c, 1); }

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    /* +1: vsnprintf writes a NUL, which is then not counted in len */
    if (buf_reserve(b, (size_t)n + 1)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cli_buf_free(cli_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

int cli_buf_write(const cli_buf *b, FILE *f) {
    if (b->failed) return -1;
    if (b->len) fwrite(b->p, 1, b->len, f);
    return 0;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when
 * it is not one: overlong forms, surrogates and code points above U+10FFFF
 * are invalid (Unicode 15, table 3-7).  *cp receives the code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the 2nd byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;      /* no overlongs */
        else if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xf0) lo = 0x90;      /* no overlongs */
        else if (c == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

static void put_space(cli_buf *b, int collapse) {
    if (collapse && (b->len == 0 || b->p[b->len - 1] == ' ')) return;
    buf_putc(b, ' ');
}

void cli_buf_put_text(cli_buf *b, const char *s, size_t len, int collapse) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c < 0x80) {
            /* control characters count as white space: they separate
             * words, and must not reach a terminal */
            if (c <= ' ' || c == 0x7f) put_space(b, collapse);
            else buf_putc(b, (char)c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_seq(u + i, len - i, &cp);
        if (n == 0) {
            cli_buf_put(b, replacement, 3);
            i++;
        } else if (cp < 0xa0) {
            put_space(b, collapse); /* C1 control: U+009B is a CSI on some terminals */
            i += n;
        } else {
            cli_buf_put(b, s + i, n);
            i += n;
        }
    }
}

size_t cli_text_cells(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t cells = 0, i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = utf8_seq(u + i, len - i, &cp);
        i += n ? n : 1;
        cells++;
    }
    return cells;
}

void cli_buf_put_json(cli_buf *b, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                buf_putc(b, '\\');
                buf_putc(b, (char)c);
            } else if (c < 0x20) {
                cli_buf_printf(b, "\\u%04x", c);
            } else {
                buf_putc(b, (char)c);
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_seq(u + i, len - i, &cp);
        if (n == 0) {
            cli_buf_put(b, replacement, 3);
            i++;
        } else {
            cli_buf_put(b, s + i, n);
            i += n;
        }
    }
}

/* ---- diagnostics -------------------------------------------------------- */

/* Format, make safe for a terminal, and print one diagnostic line. */
static CLI_PRINTF(2, 0) void vdiag(const char *label, const char *fmt, va_list ap) {
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    cli_buf b = {0};
    cli_buf_put_text(&b, msg, strlen(msg), 0);
    fflush(stdout); /* keep the order of interleaved stdout and stderr */
    if (b.failed) {
        fprintf(stderr, "%s: %s%s\n", progname, label, msg);
    } else {
        fprintf(stderr, "%s: %s%.*s\n", progname, label, (int)b.len, b.p ? b.p : "");
    }
    cli_buf_free(&b);
}

void cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vdiag("", fmt, ap);
    va_end(ap);
}

void cli_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vdiag("warning: ", fmt, ap);
    va_end(ap);
}

void cli_report(const char *what, const sahel_error *err, int code) {
    const char *msg = err && err->msg[0] ? err->msg : sahel_strerror(code);
    if (what) cli_error("%s: %s", what, msg);
    else cli_error("%s", msg);
}

void cli_option_error(int ch, char *const *argv) {
    /* getopt leaves optind past the word it failed on, except inside a
     * cluster of short options ("-xyz"), where optopt names the letter */
    const char *word = optind > 0 ? argv[optind - 1] : "";
    if (ch == ':') cli_error("option %s needs a value", word);
    else if (optopt > 0 && optopt < 128 && optopt != '?') cli_error("unknown option -%c", optopt);
    else cli_error("unknown option %s", word);
}

/* ---- terminals ---------------------------------------------------------- */

int cli_isatty(int fd) { return isatty(fd) == 1; }

int cli_use_color(int fd) {
    const char *nc = getenv("NO_COLOR");
    if (nc && nc[0]) return 0;
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0) return 0;
    return cli_isatty(fd);
}

/* ---- the index ---------------------------------------------------------- */

const char *cli_index_dir(const char *opt) {
    if (opt) return opt;
    const char *env = getenv(CLI_INDEX_ENV);
    if (env && env[0]) return env;
    return CLI_DEFAULT_INDEX;
}

/* `dir` as one shell word, so that a hint can be pasted as a command. */
static void shell_word(cli_buf *b, const char *s) {
    int plain = s[0] != '\0';
    for (const char *p = s; *p; p++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789_./-+:,@%=",
                    *p)) {
            plain = 0;
            break;
        }
    }
    if (plain) {
        cli_buf_puts(b, s);
        return;
    }
    buf_putc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'') cli_buf_puts(b, "'\\''");
        else buf_putc(b, *p);
    }
    buf_putc(b, '\'');
}

void cli_index_hint(const char *dir, int code) {
    const char *lead;
    const char *force = "";
    switch (code) {
    case SAHEL_ENOTINDEX:
        lead = "build one with";
        break;
    case SAHEL_ECORRUPT:
        lead = "rebuild it with";
        force = "--force ";
        break;
    case SAHEL_EVERSION:
        lead = "it was written by another version of sahelsearch; rebuild it with";
        force = "--force ";
        break;
    default:
        return;
    }
    cli_buf b = {0};
    cli_buf_printf(&b, "hint: %s: sahelindex build %s--index ", lead, force);
    shell_word(&b, dir);
    cli_buf_puts(&b, " SOURCE...");
    if (!b.failed) cli_error("%.*s", (int)b.len, b.p);
    cli_buf_free(&b);
}

int cli_open_index(const char *dir, sahel_index **out) {
    sahel_error err = {0};
    int rc = sahel_index_open(dir, out, &err);
    if (rc >= 0) return 0;
    *out = NULL;
    /* name the directory unless the library's message already does */
    if (err.msg[0] && strstr(err.msg, dir)) cli_report(NULL, &err, rc);
    else cli_report(dir, &err, rc);
    cli_index_hint(dir, rc);
    return rc;
}

/* ---- time and numbers --------------------------------------------------- */

double cli_now(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1; /* no sign, no space */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

char *cli_fmt_count(uint64_t n, char *buf, size_t size) {
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    char tmp[48];
    size_t o = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0) tmp[o++] = ',';
        tmp[o++] = digits[i];
    }
    tmp[o] = '\0';
    snprintf(buf, size, "%s", tmp);
    return buf;
}

char *cli_fmt_bytes(double bytes, char *buf, size_t size) {
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    size_t u = 0;
    while (bytes >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, size, "%.0f B", bytes);
    else snprintf(buf, size, "%.1f %s", bytes, units[u]);
    return buf;
}
