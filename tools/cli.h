/*
 * cli.h - what sahelindex and sahelsearch share: diagnostics prefixed with
 * the program name, terminal and colour detection, where the index lives,
 * opening it with helpful errors, a monotonic clock, and number formatting.
 *
 * The tools use only the public API (sahel.h); nothing here reaches into
 * the engine.  Exit statuses follow grep: 0 success, 1 nothing found,
 * 2 trouble.
 */
#ifndef SAHEL_CLI_H
#define SAHEL_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sahel.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_NONE 1  /* ran fine, found nothing */
#define CLI_EXIT_ERROR 2 /* usage error, missing index, damaged index, ... */

/* Where the index is when neither --index nor SAHEL_INDEX says. */
#define CLI_DEFAULT_INDEX "./.sahelsearch"
#define CLI_INDEX_ENV "SAHEL_INDEX"

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Set the name every diagnostic starts with (the tool's fixed name, not
 * argv[0], so that messages read the same however the tool was run). */
void cli_set_progname(const char *name);
const char *cli_progname(void);

/* "prog: MESSAGE\n" on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* "prog: warning: MESSAGE\n" on stderr. */
void cli_warn(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Print a library error: its message, or the code's name when the message
 * is empty; `what` (may be NULL) is put in front, e.g. "query error". */
void cli_report(const char *what, const sahel_error *err, int code);

/* After getopt_long (run with a ':' first in its short options, and
 * opterr = 0) returned ch '?' or ':': say which option was unknown or
 * lacks its value, naming it as the user wrote it. */
void cli_option_error(int ch, char *const *argv);

/* 1 when fd is a terminal. */
int cli_isatty(int fd);
/* 1 when output on fd may use ANSI styles: fd is a terminal, NO_COLOR is
 * unset or empty (https://no-color.org) and TERM is not "dumb". */
int cli_use_color(int fd);

/* The index directory: `opt` (from --index) if not NULL, else $SAHEL_INDEX
 * if set and non-empty, else CLI_DEFAULT_INDEX. */
const char *cli_index_dir(const char *opt);

/* Open the index at `dir`, or print why not (with a hint for a missing or
 * damaged index) and return the library's negative code. */
int cli_open_index(const char *dir, sahel_index **out);
/* The hints alone, for errors met after opening (a damaged segment found
 * while searching). */
void cli_index_hint(const char *dir, int code);

/* Seconds on a monotonic clock, for measuring elapsed time. */
double cli_now(void);

/* Parse a whole decimal number in [min, max]; 0 on success, -1 if `s` is
 * not one (sign, junk after the digits, out of range). */
int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Format into buf (NUL-terminated, truncated to size) and return buf:
 * 3412 -> "3,412"; 22016 -> "21.5 KB" (binary units, one decimal). */
char *cli_fmt_count(uint64_t n, char *buf, size_t size);
char *cli_fmt_bytes(double bytes, char *buf, size_t size);

/* A growable string (libc allocation: the tools are not the library).
 * On allocation failure `failed` is set and later appends do nothing, so
 * callers check once, at the end. */
typedef struct cli_buf {
    char *p;
    size_t len, cap;
    int failed;
} cli_buf;

void cli_buf_put(cli_buf *b, const char *s, size_t len);
void cli_buf_puts(cli_buf *b, const char *s);
void cli_buf_printf(cli_buf *b, const char *fmt, ...) CLI_PRINTF(2, 3);
void cli_buf_free(cli_buf *b);
static inline void cli_buf_reset(cli_buf *b) { b->len = 0; }

/* Append [s, s+len) as text fit for a terminal: C0 and C1 control
 * characters (which could move the cursor or change colours) and DEL
 * become a space, bytes that are not valid UTF-8 become U+FFFD, and with
 * `collapse` a run of white space becomes one space (none is added when
 * the buffer already ends with a space). */
void cli_buf_put_text(cli_buf *b, const char *s, size_t len, int collapse);

/* Terminal cells that cli_buf_put_text(b, s, len, 0) takes: one per code
 * point or replaced byte (East Asian wide characters are counted as one:
 * a caret under them may stand one cell off). */
size_t cli_text_cells(const char *s, size_t len);

/* Append [s, s+len) as the inside of a JSON string: quote, backslash and
 * control characters escaped (\u00XX), invalid UTF-8 as U+FFFD, other
 * UTF-8 as is. */
void cli_buf_put_json(cli_buf *b, const char *s, size_t len);

/* Write the buffer to f; returns 0, or -1 when the buffer ran out of
 * memory (nothing is written then). */
int cli_buf_write(const cli_buf *b, FILE *f);

#endif /* SAHEL_CLI_H */
