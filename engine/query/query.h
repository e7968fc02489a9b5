/*
 * query.h - the query language: parser to an AST (parse.c), evaluation
 * over an index (search.c), hits and snippets (hits.c).
 *
 * Grammar (operators are upper case; lower-case and/or/not are words):
 *
 *   query   := orexpr EOF
 *   orexpr  := andexpr ( ["OR"] andexpr )*        juxtaposition = OR
 *   andexpr := unary ( "AND" unary )*
 *   unary   := "NOT" unary | "+" primary | "-" primary | primary
 *   primary := [field ":"] ( "(" orexpr ")" | '"' words '"' | word ["*"] )
 *   field   := "title" | "body"          (any other "x:" is plain text)
 *
 * Semantics, as in Lucene's classic parser: the clauses of an orexpr are
 * SHOULD (ranked OR: at least one must match unless a MUST is present, then
 * they only add score); an AND chain is one BOOL clause whose parts are
 * MUST; "+x" is MUST, "-x" and "NOT x" are MUST_NOT.  A query made only of
 * exclusions matches nothing and is an error.  Scores of matching clauses
 * add up, so a repeated word counts as often as it is written.
 *
 * A word goes through the same analysis as documents: one token -> TERM;
 * no token (punctuation only) -> dropped; several tokens (a hyphenated
 * word) -> BOOL of SHOULD { TERM whole, PHRASE parts }, or for other
 * multi-token words (e.g. "U.S") a PHRASE of the tokens.
 * A quoted phrase -> PHRASE of its tokens (the WHOLE tokens of hyphenated
 * words are left out: the parts are in the phrase); a one-token phrase is a
 * TERM.  "word*" -> PREFIX on the folded, unstemmed word.
 */
#ifndef SAHEL_QUERY_H
#define SAHEL_QUERY_H

#include "../analysis/analysis.h"

typedef enum sh_qkind {
    SH_Q_TERM,
    SH_Q_PHRASE,
    SH_Q_PREFIX,
    SH_Q_BOOL,
} sh_qkind;

typedef enum sh_occur {
    SH_OCCUR_SHOULD,
    SH_OCCUR_MUST,
    SH_OCCUR_MUST_NOT,
} sh_occur;

typedef enum sh_field {
    SH_FIELD_ANY = 0, /* title and body, BM25F */
    SH_FIELD_TITLE = 1,
    SH_FIELD_BODY = 2,
} sh_field;

/* Limits that keep a hostile query bounded (pathological-input tests). */
#define SH_QUERY_MAX_DEPTH 256     /* nesting of parentheses */
#define SH_QUERY_MAX_CLAUSES 65536 /* nodes in one query */

typedef struct sh_qnode sh_qnode;
struct sh_qnode {
    sh_qkind kind;
    sh_field field;   /* inherited from an enclosing field: prefix */
    uint32_t col;     /* 1-based column (in bytes) of the node in the query */

    /* TERM, PREFIX: the normalised term / folded prefix, NUL-terminated */
    char *text;
    size_t len;

    /* PHRASE: nterms normalised terms with their relative positions
     * (pos[0] = 0, increasing; gaps where the analyzer left them) */
    char **terms;
    size_t *lens;
    uint32_t *pos;
    size_t nterms;

    /* BOOL */
    sh_qnode **kids;
    sh_occur *occur;
    size_t nkids;

    /* surface words of the query that produced this node, for
     * highlighting; NUL-terminated, may be NULL */
    char *surface;
};

/* ---- parse.c ------------------------------------------------------------ */

/* Parse `q` with analyzer `a`.  The root is always a BOOL.  SAHEL_ESYNTAX
 * with a message "column N: ..." for a malformed query; SAHEL_ETOOBIG
 * past the limits above; SAHEL_ENOMEM. */
int sh_query_parse(sh_analyzer *a, const char *q, size_t len, sh_qnode **out,
                   sahel_error *err);
void sh_qnode_free(sh_qnode *n);

/* Render the AST in a stable prefix notation, for tests and --explain:
 * (or a (and b c) (not d) "p q" title:e f*) ... see parse.c. */
int sh_qnode_format(const sh_qnode *n, sh_buf *out);

#endif /* SAHEL_QUERY_H */
