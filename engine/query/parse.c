/*
 * parse.c - the query parser: query text -> AST of sh_qnode (query.h),
 * and the AST's stable text rendering.
 *
 * Two passes over the bytes, both linear:
 *
 *   lex    the query becomes an array of tokens.  Whitespace (ASCII and
 *          the Unicode spaces a pasted web page brings: U+00A0, U+2000..
 *          U+200A, U+3000, ...) separates; '(' ')' and '"' are always
 *          tokens of their own; a word runs up to the next of those.
 *          Context decides the rest:
 *            - "AND" "OR" "NOT", exactly upper case and standing alone,
 *              are operators where a clause may start;
 *            - '+' or '-' where a clause starts is an operator and must be
 *              followed directly by its operand (a word, a phrase, a
 *              parenthesis, a field); inside a word ("Liptako-Gourma",
 *              "2023-09-18") it is part of the word, and the operand after
 *              it is never an operator ("-AND" excludes the word "and");
 *            - "title:" / "body:" (any case) directly followed by an
 *              operand is a field prefix; the operand after it is lexed as
 *              plain text.  Any other "x:" ("10:30"), or a field name
 *              followed by a space, is an ordinary word;
 *            - a word ending in '*' is a prefix.
 *          Then the parentheses are checked for balance, so that an
 *          unbalanced query is reported as such however deep it nests.
 *   parse  recursive descent over the grammar in query.h.  The recursion
 *          goes one level down per parenthesis and the depth is checked
 *          against SH_QUERY_MAX_DEPTH before descending; chains of NOT are
 *          counted in a loop, not recursed.  So no input can exhaust the
 *          stack, and trees are at most about 2 * SH_QUERY_MAX_DEPTH + 3
 *          levels deep (a group, the AND chain in it, ...), which bounds
 *          the recursion of sh_qnode_free and sh_qnode_format too.
 *
 * Building the tree:
 *   - An orexpr is a BOOL whose clauses are SHOULD, or MUST for "+x",
 *     MUST_NOT for "-x" / "NOT x".  An even number of negations cancels
 *     into a requirement: "NOT -x" and "NOT NOT x" are MUST x.
 *   - An AND chain of two or more operands is one BOOL clause whose
 *     operands are MUST (MUST_NOT when negated).
 *   - A word is analysed like document text: no token -> dropped; one
 *     token -> TERM; tokens with SH_TOK_WHOLE (hyphenated words) -> BOOL
 *     of SHOULD { the tokens with each hyphenated group replaced by its
 *     whole, the tokens with each group split in parts }, each a TERM when
 *     it is one token and a PHRASE otherwise; other multi-token words ->
 *     PHRASE.  A quoted phrase is the PHRASE of its non-WHOLE tokens (a
 *     TERM if there is one), "" is an error, punctuation only is dropped.
 *     A prefix "word*" is the word folded without stemming; a hyphenated
 *     prefix uses the joined whole ("Liptako-G*" -> liptakog*).
 *   - A dropped operand vanishes with its operator: "a AND !" is "a".
 *     A group or chain left with nothing vanishes too; one left with a
 *     single non-excluded clause is replaced by that clause (the same
 *     documents match with the same score).  The root is a BOOL; when its
 *     only clause is a non-excluded BOOL, that BOOL becomes the root.
 *   - A field prefix applies to every node under it (BOOLs included); an
 *     inner field wins over an outer one.
 *   - Refused with SAHEL_ESYNTAX: a query with no word left, a query or a
 *     part of one (group, AND chain) that only excludes, since a pure
 *     exclusion matches nothing and silently returning nothing is the
 *     classic trap of Lucene's parser.
 *
 * Every node, and every string and array a node points to, is its own
 * sh_malloc block owned by the node, so that later stages may rewrite the
 * tree; sh_qnode_free frees a subtree.  `col` is the 1-based byte column
 * of the word, the opening quote or the '(' (1 for the root).  `surface`
 * is the word as typed (without field prefix, operator or quotes; with the
 * '*' of a prefix) on TERM, PHRASE and PREFIX nodes, NULL on BOOLs.
 *
 * sh_qnode_format renders a tree as:
 *   BOOL     (bool <clause> <clause> ...)   clause = "+" MUST, "-" MUST_NOT,
 *                                           nothing for SHOULD, then a node
 *   TERM     term                           e.g. defens
 *   PHRASE   "a b"                          "a _ b": one "_" per position gap
 *   PREFIX   term*
 * with "title:" or "body:" before a TERM, PHRASE or PREFIX restricted to a
 * field (a BOOL's field is not shown: its leaves show it).  In terms, the
 * bytes \ " ( ) * : and space are escaped with a backslash and control
 * bytes are written \xHH, so the rendering reads back unambiguously.
 */
#include <stdbool.h>

#include "query.h"

/* ---- lexer -------------------------------------------------------------- */

enum qtok_kind {
    T_EOF,
    T_WORD,   /* off, len: the word without its trailing '*'; star */
    T_PHRASE, /* off: the opening quote; len: bytes between the quotes */
    T_LPAREN,
    T_RPAREN,
    T_AND,
    T_OR,
    T_NOT,
    T_PLUS,
    T_MINUS,
    T_FIELD, /* field; always followed by T_LPAREN, T_PHRASE or T_WORD */
};

typedef struct qtok {
    uint8_t kind;
    uint8_t field;
    uint8_t star;
    uint32_t off; /* byte offset in the query; its column is off + 1 */
    uint32_t len;
} qtok;

/* One token of the analysis of a word or phrase; its term is in p->terms. */
typedef struct wtok {
    size_t term_off;
    uint32_t term_len;
    uint32_t pos;
    uint32_t flags;
} wtok;

typedef struct parser {
    sh_analyzer *a;
    const uint8_t *q;
    size_t len;
    sahel_error *err;

    qtok *toks;
    size_t ntoks, captoks;
    size_t at; /* next token; toks[ntoks - 1] is T_EOF */

    size_t nnodes; /* nodes alive in the tree being built */

    /* scratch for the analysis of one word or phrase, reused from word to
     * word, so that analysing costs no allocation once it has grown; only
     * the nodes that are kept are allocated */
    wtok *wt;
    size_t nwt, capwt;
    size_t *sel; /* indices into wt, capacity capwt */
    sh_buf terms;
} parser;

static size_t col_of(size_t off) { return off + 1; }

/* Bytes of the whitespace character at s (0 if none).  Besides ASCII, the
 * Unicode spaces (Zs, and the line/paragraph separators) that text copied
 * from web pages carries, so that "a\u00A0b" is two words as it looks. */
static size_t space_len(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 1;
    if (c < 0x80) return 0;
    if (c == 0xC2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2; /* NEL, NBSP */
    if (n < 3) return 0;
    if (c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; /* U+1680 */
    if (c == 0xE2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3;                                            /* U+2000..200A, 2028, 2029, 202F */
    if (c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; /* U+205F */
    if (c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    return 0;
}

static bool ends_word(const parser *p, size_t i) {
    uint8_t c = p->q[i];
    return c == '(' || c == ')' || c == '"' || space_len(p->q + i, p->len - i) > 0;
}

static int push_tok(parser *p, int kind, size_t off, size_t len) {
    if (p->ntoks == p->captoks) {
        size_t cap = p->captoks ? p->captoks * 2 : 64;
        qtok *t = sh_reallocarray(p->toks, cap, sizeof *t);
        if (!t) return sh_err(p->err, SAHEL_ENOMEM, "out of memory parsing the query");
        p->toks = t;
        p->captoks = cap;
    }
    /* off and len fit: sh_query_parse refuses queries of 4 GiB or more */
    p->toks[p->ntoks++] = (qtok){.kind = (uint8_t)kind, .off = (uint32_t)off, .len = (uint32_t)len};
    return 0;
}

static bool ascii_ieq(const uint8_t *s, const char *lower, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + ('a' - 'A'));
        if (c != (uint8_t)lower[i]) return false;
    }
    return true;
}

/* The field named by a "title:" or "body:" at i, with *plen its length,
 * when an operand follows directly; SH_FIELD_ANY otherwise. */
static sh_field field_at(const parser *p, size_t i, size_t *plen) {
    static const struct {
        const char *name;
        size_t len;
        sh_field field;
    } fields[] = {{"title:", 6, SH_FIELD_TITLE}, {"body:", 5, SH_FIELD_BODY}};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        size_t n = fields[k].len;
        if (p->len - i <= n || !ascii_ieq(p->q + i, fields[k].name, n)) continue;
        size_t j = i + n;
        if (p->q[j] == ')' || space_len(p->q + j, p->len - j)) continue;
        *plen = n;
        return fields[k].field;
    }
    return SH_FIELD_ANY;
}

/* Lex one operand at *pi (not at a space, not at the end): '(', a phrase,
 * a field prefix and its operand (when `fields`), or a word, which is an
 * operator keyword only when `keywords`. */
static int lex_operand(parser *p, size_t *pi, bool fields, bool keywords) {
    size_t i = *pi;
    uint8_t c = p->q[i];
    int rc;
    if (c == '(' || c == ')') {
        *pi = i + 1;
        return push_tok(p, c == '(' ? T_LPAREN : T_RPAREN, i, 1);
    }
    if (c == '"') {
        const uint8_t *close = memchr(p->q + i + 1, '"', p->len - i - 1);
        if (!close)
            return sh_err(p->err, SAHEL_ESYNTAX, "column %zu: unterminated quote", col_of(i));
        size_t end = (size_t)(close - p->q);
        *pi = end + 1;
        return push_tok(p, T_PHRASE, i, end - i - 1);
    }
    size_t flen;
    sh_field f = fields ? field_at(p, i, &flen) : SH_FIELD_ANY;
    if (f != SH_FIELD_ANY) {
        if ((rc = push_tok(p, T_FIELD, i, flen))) return rc;
        p->toks[p->ntoks - 1].field = (uint8_t)f;
        *pi = i + flen;
        return lex_operand(p, pi, false, false); /* one level: fields is false */
    }
    size_t j = i;
    while (j < p->len && !ends_word(p, j))
        j++;
    size_t wlen = j - i;
    *pi = j;
    int kind = T_WORD;
    if (keywords) {
        if (wlen == 3 && memcmp(p->q + i, "AND", 3) == 0)
            kind = T_AND;
        else if (wlen == 2 && memcmp(p->q + i, "OR", 2) == 0)
            kind = T_OR;
        else if (wlen == 3 && memcmp(p->q + i, "NOT", 3) == 0)
            kind = T_NOT;
    }
    if (kind != T_WORD) return push_tok(p, kind, i, wlen);
    bool star = p->q[j - 1] == '*';
    if ((rc = push_tok(p, T_WORD, i, wlen - star))) return rc;
    p->toks[p->ntoks - 1].star = star;
    return 0;
}

static int lex(parser *p) {
    size_t i = 0;
    int rc;
    for (;;) {
        size_t sp;
        while (i < p->len && (sp = space_len(p->q + i, p->len - i)) > 0)
            i += sp;
        if (i >= p->len) return push_tok(p, T_EOF, i, 0);
        uint8_t c = p->q[i];
        if (c == '+' || c == '-') {
            size_t j = i + 1;
            if (j >= p->len || p->q[j] == ')' || space_len(p->q + j, p->len - j)) {
                /* a dash standing alone ("lift - drag", pasted prose) is
                 * punctuation, not an operator: a word with no token */
                if ((rc = push_tok(p, T_WORD, i, 1))) return rc;
                i = j;
                continue;
            }
            if ((rc = push_tok(p, c == '+' ? T_PLUS : T_MINUS, i, 1))) return rc;
            i = j;
            if ((rc = lex_operand(p, &i, true, false))) return rc;
        } else if ((rc = lex_operand(p, &i, true, true))) {
            return rc;
        }
    }
}

/* Report the first parenthesis that has no partner.  Matching pairs the
 * innermost first, so an unclosed '(' is the last one opened at depth 0. */
static int check_parens(parser *p) {
    size_t depth = 0, open_off = 0;
    for (size_t k = 0; k < p->ntoks; k++) {
        const qtok *t = &p->toks[k];
        if (t->kind == T_LPAREN) {
            if (depth++ == 0) open_off = t->off;
        } else if (t->kind == T_RPAREN) {
            if (depth == 0)
                return sh_err(p->err, SAHEL_ESYNTAX,
                              "column %zu: unbalanced parenthesis: ')' has no matching '('",
                              col_of(t->off));
            depth--;
        }
    }
    if (depth)
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column %zu: unbalanced parenthesis: '(' is never closed",
                      col_of(open_off));
    return 0;
}

/* ---- nodes -------------------------------------------------------------- */

void sh_qnode_free(sh_qnode *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nkids; i++)
        sh_qnode_free(n->kids[i]);
    sh_free(n->kids);
    sh_free(n->occur);
    for (size_t i = 0; i < n->nterms; i++)
        sh_free(n->terms[i]);
    sh_free(n->terms);
    sh_free(n->lens);
    sh_free(n->pos);
    sh_free(n->text);
    sh_free(n->surface);
    sh_free(n);
}

static int oom(parser *p) {
    return sh_err(p->err, SAHEL_ENOMEM, "out of memory parsing the query");
}

/* A new node, or NULL with *rc set (SAHEL_ETOOBIG past the clause limit,
 * SAHEL_ENOMEM). */
static sh_qnode *node_new(parser *p, sh_qkind kind, sh_field field, size_t off, int *rc) {
    if (p->nnodes >= SH_QUERY_MAX_CLAUSES) {
        *rc = sh_err(p->err, SAHEL_ETOOBIG, "column %zu: the query has more than %d clauses",
                     col_of(off), SH_QUERY_MAX_CLAUSES);
        return NULL;
    }
    sh_qnode *n = sh_calloc(1, sizeof *n);
    if (!n) {
        *rc = oom(p);
        return NULL;
    }
    n->kind = kind;
    n->field = field;
    n->col = (uint32_t)col_of(off);
    p->nnodes++;
    return n;
}

/* Free a node that holds nothing any more (its kids moved out). */
static void node_drop(parser *p, sh_qnode *n) {
    n->nkids = 0;
    sh_qnode_free(n);
    p->nnodes--;
}

/* Append a clause to a BOOL; takes ownership of kid, freeing it on failure.
 * Capacity is implied by nkids: 4, then the next power of two. */
static int bool_add(parser *p, sh_qnode *b, sh_qnode *kid, sh_occur occ) {
    size_t n = b->nkids;
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n ? n * 2 : 4;
        sh_qnode **k = sh_reallocarray(b->kids, cap, sizeof *k);
        if (k) b->kids = k;
        sh_occur *o = k ? sh_reallocarray(b->occur, cap, sizeof *o) : NULL;
        if (o) b->occur = o;
        if (!k || !o) {
            sh_qnode_free(kid);
            return oom(p);
        }
    }
    b->kids[n] = kid;
    b->occur[n] = occ;
    b->nkids = n + 1;
    return 0;
}

/* ---- words and phrases -------------------------------------------------- */

static int collect(void *ctx, const sh_token *tok) {
    parser *p = ctx;
    if (p->nwt == p->capwt) {
        size_t cap = p->capwt ? p->capwt * 2 : 16;
        wtok *w = sh_reallocarray(p->wt, cap, sizeof *w);
        if (!w) return SAHEL_ENOMEM;
        p->wt = w;
        size_t *s = sh_reallocarray(p->sel, cap, sizeof *s);
        if (!s) return SAHEL_ENOMEM;
        p->sel = s;
        p->capwt = cap;
    }
    size_t off = p->terms.len;
    if (sh_buf_put(&p->terms, tok->term, tok->term_len)) return SAHEL_ENOMEM;
    p->wt[p->nwt++] = (wtok){off, tok->term_len, tok->pos, tok->flags};
    return 0;
}

static int analyze(parser *p, size_t off, size_t len, unsigned flags) {
    p->nwt = 0;
    sh_buf_reset(&p->terms);
    int rc = sh_analyze(p->a, (const char *)p->q + off, len, 0, flags, collect, p, NULL);
    if (rc == SAHEL_ENOMEM) return oom(p);
    if (rc < 0)
        return sh_err(p->err, rc, "column %zu: analysing the query failed: %s", col_of(off),
                      sahel_strerror(rc));
    return 0;
}

static const char *wt_term(const parser *p, const wtok *w) {
    return (const char *)p->terms.p + w->term_off;
}

/* The TERM or PHRASE of the analysed tokens whose flags have none of
 * `skip` set, or NULL when there are none.  surface: [soff, soff+slen). */
static int make_seq(parser *p, uint32_t skip, sh_field field, size_t off, size_t soff,
                    size_t slen, sh_qnode **out) {
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nwt; i++)
        if (!(p->wt[i].flags & skip)) p->sel[n++] = i;
    if (n == 0) return 0;
    /* by position, stably: the analyzer may emit a whole after its parts;
     * the input is nearly sorted, so insertion sort is linear here */
    for (size_t i = 1; i < n; i++) {
        size_t v = p->sel[i], j = i;
        for (; j > 0 && p->wt[p->sel[j - 1]].pos > p->wt[v].pos; j--)
            p->sel[j] = p->sel[j - 1];
        p->sel[j] = v;
    }
    int rc;
    sh_qnode *nd = node_new(p, n == 1 ? SH_Q_TERM : SH_Q_PHRASE, field, off, &rc);
    if (!nd) return rc;
    if (!(nd->surface = sh_strndup((const char *)p->q + soff, slen))) goto nomem;
    if (n == 1) {
        const wtok *w = &p->wt[p->sel[0]];
        if (!(nd->text = sh_strndup(wt_term(p, w), w->term_len))) goto nomem;
        nd->len = w->term_len;
    } else {
        if (!(nd->terms = sh_calloc(n, sizeof *nd->terms))) goto nomem;
        if (!(nd->lens = sh_calloc(n, sizeof *nd->lens))) goto nomem;
        if (!(nd->pos = sh_calloc(n, sizeof *nd->pos))) goto nomem;
        uint32_t first = p->wt[p->sel[0]].pos;
        for (size_t i = 0; i < n; i++) {
            const wtok *w = &p->wt[p->sel[i]];
            if (!(nd->terms[i] = sh_strndup(wt_term(p, w), w->term_len))) goto nomem;
            nd->nterms = i + 1; /* so that sh_qnode_free frees what was copied */
            nd->lens[i] = w->term_len;
            nd->pos[i] = w->pos - first;
        }
    }
    *out = nd;
    return 0;
nomem:
    sh_qnode_free(nd);
    p->nnodes--;
    return oom(p);
}

static int build_word(parser *p, const qtok *t, sh_field field, sh_qnode **out) {
    *out = NULL;
    int rc = analyze(p, t->off, t->len, 0);
    if (rc) return rc;
    bool hyphen = false;
    for (size_t i = 0; i < p->nwt; i++)
        if (p->wt[i].flags & SH_TOK_WHOLE) hyphen = true;
    if (!hyphen) return make_seq(p, 0, field, t->off, t->off, t->len, out);

    sh_qnode *whole, *parts, *b = node_new(p, SH_Q_BOOL, field, t->off, &rc);
    if (!b) return rc;
    if ((rc = make_seq(p, SH_TOK_PART, field, t->off, t->off, t->len, &whole))) goto fail;
    if (whole && (rc = bool_add(p, b, whole, SH_OCCUR_SHOULD))) goto fail;
    if ((rc = make_seq(p, SH_TOK_WHOLE, field, t->off, t->off, t->len, &parts))) goto fail;
    if (parts && (rc = bool_add(p, b, parts, SH_OCCUR_SHOULD))) goto fail;
    *out = b;
    return 0;
fail:
    sh_qnode_free(b);
    return rc;
}

static int build_prefix(parser *p, const qtok *t, sh_field field, sh_qnode **out) {
    *out = NULL;
    int rc = analyze(p, t->off, t->len, SH_ANALYZE_NOSTEM);
    if (rc) return rc;
    /* one word, or one hyphenated word whose joined whole is the prefix */
    const wtok *pick = NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nwt; i++)
        if (!(p->wt[i].flags & SH_TOK_PART)) {
            pick = &p->wt[i];
            n++;
        }
    if (n > 1)
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column %zu: a prefix* must be a single word", col_of(t->off));
    if (!pick || pick->term_len < 1)
        return sh_err(p->err, SAHEL_ESYNTAX, "column %zu: prefix too short", col_of(t->off));
    sh_qnode *nd = node_new(p, SH_Q_PREFIX, field, t->off, &rc);
    if (!nd) return rc;
    nd->text = sh_strndup(wt_term(p, pick), pick->term_len);
    nd->surface = sh_strndup((const char *)p->q + t->off, t->len + 1); /* with the '*' */
    if (!nd->text || !nd->surface) {
        sh_qnode_free(nd);
        p->nnodes--;
        return oom(p);
    }
    nd->len = pick->term_len;
    *out = nd;
    return 0;
}

static int build_phrase(parser *p, const qtok *t, sh_field field, sh_qnode **out) {
    *out = NULL;
    size_t start = t->off + 1, i = start, end = start + t->len, sp;
    while (i < end && (sp = space_len(p->q + i, end - i)) > 0)
        i += sp;
    if (i == end)
        return sh_err(p->err, SAHEL_ESYNTAX, "column %zu: empty phrase", col_of(t->off));
    int rc = analyze(p, start, t->len, 0);
    if (rc) return rc;
    return make_seq(p, SH_TOK_WHOLE, field, t->off, start, t->len, out);
}

/* ---- parser ------------------------------------------------------------- */

static const qtok *peek(const parser *p) { return &p->toks[p->at]; }

static bool starts_primary(int kind) {
    return kind == T_WORD || kind == T_PHRASE || kind == T_LPAREN || kind == T_FIELD;
}

static bool starts_unary(int kind) {
    return starts_primary(kind) || kind == T_NOT || kind == T_PLUS || kind == T_MINUS;
}

static int nothing_after(parser *p, const qtok *op, const char *name) {
    return sh_err(p->err, SAHEL_ESYNTAX, "column %zu: %s has nothing on its right",
                  col_of(op->off), name);
}

static int parse_or(parser *p, unsigned depth, sh_field field, size_t off, sh_qnode **out);

static int parse_primary(parser *p, unsigned depth, sh_field field, sh_qnode **out) {
    *out = NULL;
    const qtok *t = peek(p);
    if (t->kind == T_FIELD) {
        field = (sh_field)t->field;
        p->at++;
        t = peek(p);
    }
    switch (t->kind) {
    case T_WORD:
        p->at++;
        return t->star ? build_prefix(p, t, field, out) : build_word(p, t, field, out);
    case T_PHRASE:
        p->at++;
        return build_phrase(p, t, field, out);
    case T_LPAREN: break;
    default:
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column %zu: expected a word, a phrase or a parenthesis", col_of(t->off));
    }
    /* a group: depth is checked before descending, so the C stack is
     * bounded by SH_QUERY_MAX_DEPTH whatever the input */
    if (depth >= SH_QUERY_MAX_DEPTH)
        return sh_err(p->err, SAHEL_ETOOBIG, "column %zu: parentheses nested deeper than %d",
                      col_of(t->off), SH_QUERY_MAX_DEPTH);
    p->at++;
    if (peek(p)->kind == T_RPAREN)
        return sh_err(p->err, SAHEL_ESYNTAX, "column %zu: empty parentheses", col_of(t->off));
    sh_qnode *g;
    int rc = parse_or(p, depth + 1, field, t->off, &g);
    if (rc) return rc;
    if (peek(p)->kind != T_RPAREN) { /* check_parens makes this unreachable */
        sh_qnode_free(g);
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column %zu: unbalanced parenthesis: '(' is never closed", col_of(t->off));
    }
    p->at++;
    if (g->nkids == 0) {
        node_drop(p, g);
    } else if (g->nkids == 1 && g->occur[0] != SH_OCCUR_MUST_NOT) {
        *out = g->kids[0];
        node_drop(p, g);
    } else {
        *out = g;
    }
    return 0;
}

/* A unary: its node (NULL when dropped) and its explicit occur, or -1 when
 * it has no operator (SHOULD in an orexpr, MUST in an AND chain). */
static int parse_unary(parser *p, unsigned depth, sh_field field, sh_qnode **out, int *occ) {
    bool neg = false, marked = false;
    while (peek(p)->kind == T_NOT) {
        const qtok *op = peek(p);
        p->at++;
        if (!starts_unary(peek(p)->kind)) return nothing_after(p, op, "NOT");
        neg = !neg;
        marked = true;
    }
    int k = peek(p)->kind;
    if (k == T_PLUS || k == T_MINUS) {
        p->at++; /* the lexer made sure an operand follows */
        if (k == T_MINUS) neg = !neg;
        marked = true;
    }
    *occ = neg ? SH_OCCUR_MUST_NOT : marked ? SH_OCCUR_MUST : -1;
    return parse_primary(p, depth, field, out);
}

static int parse_and(parser *p, unsigned depth, sh_field field, sh_qnode **out, sh_occur *occ) {
    *out = NULL;
    size_t off = peek(p)->off;
    sh_qnode *n;
    int o;
    int rc = parse_unary(p, depth, field, &n, &o);
    if (rc) return rc;
    if (peek(p)->kind != T_AND) {
        *out = n;
        *occ = o < 0 ? SH_OCCUR_SHOULD : (sh_occur)o;
        return 0;
    }
    sh_qnode *b = node_new(p, SH_Q_BOOL, field, off, &rc);
    if (!b) {
        sh_qnode_free(n);
        return rc;
    }
    int sole = o; /* the explicit occur of the first surviving operand */
    if (n && (rc = bool_add(p, b, n, o == SH_OCCUR_MUST_NOT ? SH_OCCUR_MUST_NOT : SH_OCCUR_MUST)))
        goto fail;
    while (peek(p)->kind == T_AND) {
        const qtok *op = peek(p);
        p->at++;
        if (!starts_unary(peek(p)->kind)) {
            rc = nothing_after(p, op, "AND");
            goto fail;
        }
        if ((rc = parse_unary(p, depth, field, &n, &o))) goto fail;
        if (!n) continue;
        if (b->nkids == 0) sole = o;
        if ((rc = bool_add(p, b, n,
                           o == SH_OCCUR_MUST_NOT ? SH_OCCUR_MUST_NOT : SH_OCCUR_MUST)))
            goto fail;
    }
    if (b->nkids == 0) {
        node_drop(p, b);
    } else if (b->nkids == 1) {
        /* the other operands were dropped: as if they were not written */
        *out = b->kids[0];
        *occ = sole < 0 ? SH_OCCUR_SHOULD : (sh_occur)sole;
        node_drop(p, b);
    } else {
        *out = b;
        *occ = SH_OCCUR_SHOULD;
    }
    return 0;
fail:
    sh_qnode_free(b);
    return rc;
}

static int parse_or(parser *p, unsigned depth, sh_field field, size_t off, sh_qnode **out) {
    *out = NULL;
    int rc;
    sh_qnode *b = node_new(p, SH_Q_BOOL, field, off, &rc);
    if (!b) return rc;
    bool have_left = false;
    for (;;) {
        const qtok *t = peek(p);
        if (t->kind == T_EOF || t->kind == T_RPAREN) break;
        if (t->kind == T_AND || (t->kind == T_OR && !have_left)) {
            rc = sh_err(p->err, SAHEL_ESYNTAX, "column %zu: %s has nothing on its left",
                        col_of(t->off), t->kind == T_AND ? "AND" : "OR");
            goto fail;
        }
        if (t->kind == T_OR) {
            p->at++;
            if (!starts_unary(peek(p)->kind)) {
                rc = nothing_after(p, t, "OR");
                goto fail;
            }
            continue;
        }
        sh_qnode *kid;
        sh_occur occ;
        if ((rc = parse_and(p, depth, field, &kid, &occ))) goto fail;
        if (kid && (rc = bool_add(p, b, kid, occ))) goto fail;
        have_left = true;
    }
    *out = b;
    return 0;
fail:
    sh_qnode_free(b);
    return rc;
}

/* A BOOL whose clauses all exclude matches nothing: refuse it. */
static int check_excludes(parser *p, const sh_qnode *n, bool root) {
    if (n->kind != SH_Q_BOOL) return 0;
    bool only_not = n->nkids > 0;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->occur[i] != SH_OCCUR_MUST_NOT) only_not = false;
    if (only_not && root)
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column 1: the query only excludes; add a word to search for");
    if (only_not)
        return sh_err(p->err, SAHEL_ESYNTAX,
                      "column %u: this part of the query only excludes; "
                      "add a word to search for",
                      (unsigned)n->col);
    for (size_t i = 0; i < n->nkids; i++) {
        int rc = check_excludes(p, n->kids[i], false);
        if (rc) return rc;
    }
    return 0;
}

/* English function words that carry no topic: Lucene's classic English
 * stop set (EnglishAnalyzer).  They stay in the index (phrases need them)
 * but a plain, optional query word that is one of them is dropped from the
 * top level of a ranked-OR query, as long as some other word remains, so
 * that "the effects of the coup" ranks on effects and coup and snippets
 * do not light up every "the". */
static const char *const stop_en[] = {
    "a",    "an",    "and",   "are",  "as",   "at",    "be",   "but",  "by",
    "for",  "if",    "in",    "into", "is",   "it",    "no",   "not",  "of",
    "on",   "or",    "such",  "that", "the",  "their", "then", "there", "these",
    "they", "this",  "to",    "was",  "will", "with"};

static bool is_stop(const sh_qnode *n) {
    if (n->kind != SH_Q_TERM || n->field != SH_FIELD_ANY || !n->surface) return false;
    size_t len = strlen(n->surface);
    if (len > 5) return false;
    char low[6];
    for (size_t i = 0; i < len; i++) {
        char c = n->surface[i];
        low[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    low[len] = '\0';
    for (size_t i = 0; i < sizeof stop_en / sizeof stop_en[0]; i++)
        if (strcmp(low, stop_en[i]) == 0) return true;
    return false;
}

static void drop_stopwords(parser *p, sh_qnode *root) {
    if (strcmp(sh_analyzer_lang(p->a), "english") != 0) return;
    size_t keep = 0;
    for (size_t i = 0; i < root->nkids; i++)
        if (root->occur[i] != SH_OCCUR_MUST_NOT &&
            !(root->occur[i] == SH_OCCUR_SHOULD && is_stop(root->kids[i])))
            keep++;
    if (keep == 0) return; /* "to be or not to be": search for it as typed */
    size_t n = 0;
    for (size_t i = 0; i < root->nkids; i++) {
        if (root->occur[i] == SH_OCCUR_SHOULD && is_stop(root->kids[i])) {
            node_drop(p, root->kids[i]);
            continue;
        }
        root->kids[n] = root->kids[i];
        root->occur[n++] = root->occur[i];
    }
    root->nkids = n;
}

int sh_query_parse(sh_analyzer *a, const char *q, size_t len, sh_qnode **out,
                   sahel_error *err) {
    if (!out) return sh_err(err, SAHEL_EINVAL, "sh_query_parse: no output pointer");
    *out = NULL;
    if (!a || (!q && len)) return sh_err(err, SAHEL_EINVAL, "sh_query_parse: bad arguments");
    /* token offsets and node columns are 32-bit */
    if (len >= UINT32_MAX)
        return sh_err(err, SAHEL_ETOOBIG, "column 1: the query is 4 GiB or longer");
    parser p = {.a = a, .q = (const uint8_t *)(q ? q : ""), .len = len, .err = err};
    sh_qnode *root = NULL;
    int rc = lex(&p);
    if (!rc) rc = check_parens(&p);
    if (!rc) rc = parse_or(&p, 0, SH_FIELD_ANY, 0, &root);
    if (rc) goto done;
    if (peek(&p)->kind != T_EOF) { /* check_parens makes this unreachable */
        rc = sh_err(err, SAHEL_ESYNTAX, "column %zu: unexpected ')'", col_of(peek(&p)->off));
        goto done;
    }
    drop_stopwords(&p, root);
    if (root->nkids == 1 && root->kids[0]->kind == SH_Q_BOOL &&
        root->occur[0] != SH_OCCUR_MUST_NOT) {
        sh_qnode *only = root->kids[0];
        node_drop(&p, root);
        root = only;
    }
    if (root->nkids == 0) {
        rc = sh_err(err, SAHEL_ESYNTAX, "column 1: the query has no searchable words");
        goto done;
    }
    if ((rc = check_excludes(&p, root, true))) goto done;
    *out = root;
    root = NULL;
done:
    sh_qnode_free(root);
    sh_free(p.toks);
    sh_free(p.wt);
    sh_free(p.sel);
    sh_buf_free(&p.terms);
    return rc;
}

/* ---- rendering ---------------------------------------------------------- */

static int fmt_text(sh_buf *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        int rc;
        if (c < 0x20 || c == 0x7f)
            rc = sh_buf_printf(out, "\\x%02X", c);
        else if (c == '\\' || c == '"' || c == '(' || c == ')' || c == '*' || c == ':' ||
                 c == ' ')
            rc = sh_buf_put(out, (const uint8_t[]){'\\', c}, 2);
        else
            rc = sh_buf_putc(out, c);
        if (rc) return rc;
    }
    return 0;
}

static int fmt_node(const sh_qnode *n, sh_buf *out) {
    int rc = 0;
    if (n->kind != SH_Q_BOOL) {
        const char *f = n->field == SH_FIELD_TITLE ? "title:" : n->field == SH_FIELD_BODY ? "body:" : "";
        if ((rc = sh_buf_put(out, f, strlen(f)))) return rc;
    }
    switch (n->kind) {
    case SH_Q_TERM: return fmt_text(out, n->text, n->len);
    case SH_Q_PREFIX:
        if ((rc = fmt_text(out, n->text, n->len))) return rc;
        return sh_buf_putc(out, '*');
    case SH_Q_PHRASE:
        if ((rc = sh_buf_putc(out, '"'))) return rc;
        for (size_t i = 0; i < n->nterms; i++) {
            if (i) {
                if ((rc = sh_buf_putc(out, ' '))) return rc;
                for (uint32_t g = n->pos[i - 1] + 1; g < n->pos[i]; g++)
                    if ((rc = sh_buf_put(out, "_ ", 2))) return rc;
            }
            if ((rc = fmt_text(out, n->terms[i], n->lens[i]))) return rc;
        }
        return sh_buf_putc(out, '"');
    case SH_Q_BOOL:
        if ((rc = sh_buf_put(out, "(bool", 5))) return rc;
        for (size_t i = 0; i < n->nkids; i++) {
            if ((rc = sh_buf_putc(out, ' '))) return rc;
            if (n->occur[i] == SH_OCCUR_MUST && (rc = sh_buf_putc(out, '+'))) return rc;
            if (n->occur[i] == SH_OCCUR_MUST_NOT && (rc = sh_buf_putc(out, '-'))) return rc;
            if ((rc = fmt_node(n->kids[i], out))) return rc;
        }
        return sh_buf_putc(out, ')');
    }
    return SAHEL_EINVAL;
}

/* Appends to out, and keeps a NUL after out->len so that out->p can be
 * read as a C string. */
int sh_qnode_format(const sh_qnode *n, sh_buf *out) {
    if (!n || !out) return SAHEL_EINVAL;
    int rc = fmt_node(n, out);
    if (!rc) rc = sh_buf_reserve(out, 1);
    if (!rc) out->p[out->len] = '\0';
    return rc;
}
