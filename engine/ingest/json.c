/*
 * json.c - a small, strict JSON reader for one JSONL line holding an
 * article object.
 *
 * Grammar: RFC 8259.  The line must hold exactly one object, with only
 * JSON whitespace (space, tab, CR, LF) around it.  Members named id, title,
 * text, date, source, url and lang are decoded when their value is a
 * string (and id also when it is a number, kept as written); every other
 * member is checked against the grammar and skipped.  Objects and arrays
 * may nest SH_JSON_MAX_DEPTH deep, the line's own object included, so a
 * hostile line cannot exhaust the stack.
 *
 * Strict about syntax, lenient about encoding, because one bad character
 * in a scraped article should not cost the article:
 *   - a lone surrogate escape (\uD800..\uDFFF not forming a high+low pair)
 *     decodes to U+FFFD;
 *   - invalid UTF-8 bytes inside a string decode to U+FFFD (maximal
 *     subparts, as utf8.c);
 * both only in the decoded fields, and both counted in out->nrepl with the
 * column of the first one, so that the caller can warn.  Strings that are
 * skipped are not decoded and so not checked for encoding.
 *
 * Errors are SAHEL_EINVAL with "column N: what", N the 1-based byte
 * column where the problem was found (for an unterminated string: its
 * opening quote), or SAHEL_ENOMEM.
 *
 * Invariant: every read of line[i] is preceded by a check i < len.
 */
#include <stdio.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ingest.h"

/* Nesting limit for objects and arrays: deep enough for any real article
 * record, shallow enough that recursion stays a few KiB of stack. */
#define SH_JSON_MAX_DEPTH 64

typedef struct jp {
    const uint8_t *s;
    size_t len, pos;
    sh_buf *scratch;
    sahel_error *err;
    size_t nrepl, repl_col;
} jp;

/* A decoded field: an offset into scratch while parsing, since scratch may
 * move as it grows; turned into pointers at the end. */
typedef struct field {
    size_t off, len;
    int present;
} field;

static int fail(jp *p, size_t at, const char *fmt, ...) SH_PRINTF(3, 4);

static int fail(jp *p, size_t at, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return sh_err(p->err, SAHEL_EINVAL, "column %zu: %s", at + 1, what);
}

static int nomem(jp *p) {
    return sh_err(p->err, SAHEL_ENOMEM, "column %zu: out of memory decoding a string", p->pos + 1);
}

/* "unexpected ..." for the byte at p->pos, or for the end of the line. */
static int unexpected(jp *p, const char *expected) {
    if (p->pos >= p->len) return fail(p, p->pos, "unexpected end of line, expected %s", expected);
    uint8_t c = p->s[p->pos];
    if (c > 0x20 && c < 0x7F) return fail(p, p->pos, "unexpected '%c', expected %s", c, expected);
    return fail(p, p->pos, "unexpected byte 0x%02X, expected %s", c, expected);
}

static void skip_ws(jp *p) {
    while (p->pos < p->len) {
        uint8_t c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int hex4(const uint8_t *s, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int put_cp(sh_buf *b, uint32_t cp) {
    uint8_t t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (uint8_t)(0xC0 | cp >> 6);
        t[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (uint8_t)(0xE0 | cp >> 12);
        t[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        t[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        t[0] = (uint8_t)(0xF0 | cp >> 18);
        t[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        t[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        t[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sh_buf_put(b, t, n);
}

static void note_repl(jp *p, size_t at, size_t n) {
    if (!p->nrepl) p->repl_col = at + 1;
    p->nrepl += n;
}

/* The string whose opening quote is at p->pos.  With dst, its value is
 * decoded and appended to dst (repairs counted when count_repl); without,
 * it is only checked against the grammar. */
/* From pos, the first byte that is a quote, a backslash or below 0x20, or
 * len; *high gets the OR of the bytes before it. */
static size_t plain_run(const uint8_t *s, size_t pos, size_t len, uint8_t *high) {
#ifdef __SSE2__
    /* sixteen bytes a step: article text is long runs of plain bytes */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(0x20);
    int any_high = 0;
    while (len - pos >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + pos));
        /* max(v, 0x20) == v: v >= 0x20, unsigned */
        __m128i ok = _mm_cmpeq_epi8(_mm_max_epu8(v, space), v);
        __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        stop = _mm_or_si128(stop, _mm_andnot_si128(ok, _mm_set1_epi8(-1)));
        unsigned m = (unsigned)_mm_movemask_epi8(stop);
        unsigned h = (unsigned)_mm_movemask_epi8(v);
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            any_high |= (h & ((1u << k) - 1)) != 0;
            pos += k;
            *high |= any_high ? 0x80 : 0;
            return pos;
        }
        any_high |= h != 0;
        pos += 16;
    }
    *high |= any_high ? 0x80 : 0;
#endif
    while (pos < len) {
        uint8_t c = s[pos];
        if (c == '"' || c == '\\' || c < 0x20) break;
        *high |= c;
        pos++;
    }
    return pos;
}

static int parse_string(jp *p, sh_buf *dst, int count_repl) {
    size_t open = p->pos;
    p->pos++;
    for (;;) {
        /* A run of bytes that stand for themselves. */
        size_t run = p->pos;
        uint8_t high = 0;
        p->pos = plain_run(p->s, p->pos, p->len, &high);
        if (dst && p->pos > run) {
            const char *r = (const char *)p->s + run;
            size_t rlen = p->pos - run;
            if (!(high & 0x80)) {
                if (sh_buf_put(dst, r, rlen)) return nomem(p);
            } else {
                size_t ok = sh_utf8_valid_prefix(r, rlen);
                if (ok == rlen) {
                    if (sh_buf_put(dst, r, rlen)) return nomem(p);
                } else {
                    size_t n;
                    if (sh_utf8_repair(r, rlen, dst, &n)) return nomem(p);
                    if (count_repl) note_repl(p, run + ok, n);
                }
            }
        }
        if (p->pos >= p->len) return fail(p, open, "unterminated string");
        uint8_t c = p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return 0;
        }
        if (c < 0x20)
            return fail(p, p->pos, "control character U+%04X in a string must be escaped", c);
        /* c == '\\' */
        size_t esc = p->pos;
        if (esc + 1 >= p->len) return fail(p, open, "unterminated string");
        uint8_t e = p->s[esc + 1];
        uint8_t simple;
        switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': simple = 0; break;
        default:
            if (e > 0x20 && e < 0x7F) return fail(p, esc, "invalid escape \\%c", e);
            return fail(p, esc, "invalid escape (byte 0x%02X after \\)", e);
        }
        if (e != 'u') {
            p->pos = esc + 2;
            if (dst && sh_buf_putc(dst, simple)) return nomem(p);
            continue;
        }
        uint32_t cp;
        if (p->len - esc < 6 || hex4(p->s + esc + 2, &cp))
            return fail(p, esc, "invalid \\u escape (four hex digits expected)");
        p->pos = esc + 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            /* A high surrogate pairs with an immediately following \uDC00..
             * \uDFFF; anything else leaves it lone. */
            uint32_t lo;
            if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u' &&
                !hex4(p->s + p->pos + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            } else {
                cp = 0xFFFD;
                if (dst && count_repl) note_repl(p, esc, 1);
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
            if (dst && count_repl) note_repl(p, esc, 1);
        }
        if (dst && put_cp(dst, cp)) return nomem(p);
    }
}

static int is_digit(jp *p) {
    return p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p->pos. */
static int parse_number(jp *p) {
    size_t start = p->pos;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (!is_digit(p)) return fail(p, start, "invalid number (digit expected after '-')");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (is_digit(p)) return fail(p, start, "invalid number (leading zero)");
    } else {
        while (is_digit(p)) p->pos++;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        if (!is_digit(p)) return fail(p, start, "invalid number (digit expected after '.')");
        while (is_digit(p)) p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (!is_digit(p)) return fail(p, start, "invalid number (digit expected in exponent)");
        while (is_digit(p)) p->pos++;
    }
    return 0;
}

static int parse_literal(jp *p, const char *word, size_t n) {
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n))
        return fail(p, p->pos, "invalid literal (expected %s)", word);
    p->pos += n;
    return 0;
}

static int skip_value(jp *p, int depth);

/* The object or array opening at p->pos, `depth` levels deep. */
static int skip_container(jp *p, int depth) {
    uint8_t close = p->s[p->pos] == '{' ? '}' : ']';
    if (depth > SH_JSON_MAX_DEPTH)
        return fail(p, p->pos, "nesting deeper than %d levels", SH_JSON_MAX_DEPTH);
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        int rc;
        if (close == '}') {
            if (p->pos >= p->len || p->s[p->pos] != '"') return unexpected(p, "a member name (string)");
            if ((rc = parse_string(p, NULL, 0))) return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return unexpected(p, "':'");
            p->pos++;
            skip_ws(p);
        }
        if ((rc = skip_value(p, depth + 1))) return rc;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            skip_ws(p);
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return 0;
        }
        return unexpected(p, close == '}' ? "',' or '}'" : "',' or ']'");
    }
}

/* Any value at p->pos; a container opened here is `depth` deep. */
static int skip_value(jp *p, int depth) {
    if (p->pos >= p->len) return unexpected(p, "a value");
    switch (p->s[p->pos]) {
    case '{':
    case '[': return skip_container(p, depth);
    case '"': return parse_string(p, NULL, 0);
    case 't': return parse_literal(p, "true", 4);
    case 'f': return parse_literal(p, "false", 5);
    case 'n': return parse_literal(p, "null", 4);
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return parse_number(p);
    default: return unexpected(p, "a value");
    }
}

/* Member names the reader decodes, and where each goes. */
enum { F_ID, F_TITLE, F_TEXT, F_DATE, F_SOURCE, F_URL, F_LANG, F_COUNT };
static const struct {
    const char *name;
    size_t len;
} k_fields[F_COUNT] = {
    {"id", 2}, {"title", 5}, {"text", 4}, {"date", 4}, {"source", 6}, {"url", 3}, {"lang", 4},
};

static int field_of(const uint8_t *name, size_t len) {
    for (int i = 0; i < F_COUNT; i++)
        if (k_fields[i].len == len && !memcmp(k_fields[i].name, name, len)) return i;
    return -1;
}

int sh_json_parse_article(const char *line, size_t len, sh_buf *scratch,
                          sh_json_article *out, sahel_error *err) {
    jp p = {.s = (const uint8_t *)line, .len = len, .scratch = scratch, .err = err};
    field f[F_COUNT];
    memset(f, 0, sizeof f);
    memset(out, 0, sizeof *out);
    /* A non-NULL base, so that empty fields still point somewhere. */
    if (sh_buf_reserve(scratch, 1)) return nomem(&p);

    skip_ws(&p);
    if (p.pos >= p.len || p.s[p.pos] != '{') return unexpected(&p, "'{' (a line must hold an object)");
    p.pos++;
    skip_ws(&p);
    int rc;
    if (p.pos < p.len && p.s[p.pos] == '}') {
        p.pos++;
    } else {
        for (;;) {
            if (p.pos >= p.len || p.s[p.pos] != '"') return unexpected(&p, "a member name (string)");
            /* Decode the name (it may use escapes), look it up, drop it. */
            size_t mark = scratch->len;
            if ((rc = parse_string(&p, scratch, 0))) return rc;
            int which = field_of(scratch->p + mark, scratch->len - mark);
            scratch->len = mark;
            skip_ws(&p);
            if (p.pos >= p.len || p.s[p.pos] != ':') return unexpected(&p, "':'");
            p.pos++;
            skip_ws(&p);
            if (which >= 0 && p.pos < p.len && p.s[p.pos] == '"') {
                size_t off = scratch->len;
                if ((rc = parse_string(&p, scratch, 1))) return rc;
                f[which] = (field){off, scratch->len - off, 1};
            } else if (which == F_ID && p.pos < p.len &&
                       (p.s[p.pos] == '-' || (p.s[p.pos] >= '0' && p.s[p.pos] <= '9'))) {
                size_t start = p.pos, off = scratch->len;
                if ((rc = parse_number(&p))) return rc;
                if (sh_buf_put(scratch, p.s + start, p.pos - start)) return nomem(&p);
                f[which] = (field){off, p.pos - start, 1};
            } else {
                if ((rc = skip_value(&p, 2))) return rc;
                /* A later member wins, even when it is not a string. */
                if (which >= 0) f[which].present = 0;
            }
            skip_ws(&p);
            if (p.pos < p.len && p.s[p.pos] == ',') {
                p.pos++;
                skip_ws(&p);
                continue;
            }
            if (p.pos < p.len && p.s[p.pos] == '}') {
                p.pos++;
                break;
            }
            return unexpected(&p, "',' or '}'");
        }
    }
    skip_ws(&p);
    if (p.pos < p.len) return fail(&p, p.pos, "unexpected data after the object");

    sh_json_str *dst[F_COUNT] = {&out->id, &out->title, &out->text, &out->date,
                                 &out->source, &out->url, &out->lang};
    for (int i = 0; i < F_COUNT; i++) {
        if (!f[i].present) continue;
        dst[i]->s = (const char *)scratch->p + f[i].off;
        dst[i]->len = f[i].len;
        dst[i]->present = 1;
    }
    out->nrepl = p.nrepl;
    out->repl_column = p.repl_col;
    return 0;
}
