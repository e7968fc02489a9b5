/*
 * test_query_parse.c - the query parser (engine/query/parse.c): the query
 * language of the issue, the AST it builds (checked through the stable
 * rendering of sh_qnode_format and through node fields), every syntax
 * error with its exact column, the limits, pathological and random inputs,
 * and allocation failures.  The English analyzer is used throughout, so
 * expected terms are Snowball English stems ("defense" -> defens).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/query.h"
#include "support/failalloc.h"

static sh_analyzer *an;

static void setup(void) {
    sahel_error err = {0};
    cr_assert_eq(sh_analyzer_new("english", &an, &err), 0, "%s", err.msg);
}

static void teardown(void) { sh_analyzer_free(an); }

TestSuite(query_parse, .init = setup, .fini = teardown);

/* Structural invariants every parsed tree must hold. */
static void check_tree(const sh_qnode *n, size_t depth) {
    cr_assert_lt(depth, 2 * SH_QUERY_MAX_DEPTH + 8);
    switch (n->kind) {
    case SH_Q_TERM:
    case SH_Q_PREFIX:
        cr_assert_not_null(n->text);
        cr_assert_gt(n->len, 0);
        cr_assert_eq(strlen(n->text), n->len);
        cr_assert_not_null(n->surface);
        cr_assert_eq(n->nkids, 0);
        break;
    case SH_Q_PHRASE:
        cr_assert_geq(n->nterms, 2);
        cr_assert_eq(n->pos[0], 0);
        for (size_t i = 0; i < n->nterms; i++) {
            cr_assert_eq(strlen(n->terms[i]), n->lens[i]);
            if (i) cr_assert_gt(n->pos[i], n->pos[i - 1]);
        }
        cr_assert_not_null(n->surface);
        break;
    case SH_Q_BOOL: {
        cr_assert_geq(n->nkids, 1);
        bool positive = false;
        for (size_t i = 0; i < n->nkids; i++) {
            if (n->occur[i] != SH_OCCUR_MUST_NOT) positive = true;
            check_tree(n->kids[i], depth + 1);
        }
        cr_assert(positive, "a BOOL that only excludes");
        break;
    }
    }
    cr_assert_geq(n->col, 1);
}

/* Parse q and return its rendering (caller frees), asserting success. */
static char *render(const char *q) {
    sh_qnode *root = NULL;
    sahel_error err = {0};
    int rc = sh_query_parse(an, q, strlen(q), &root, &err);
    cr_assert_eq(rc, 0, "parsing [%s]: %d %s", q, rc, err.msg);
    cr_assert_eq(root->kind, SH_Q_BOOL, "the root of [%s] is not a BOOL", q);
    check_tree(root, 0);
    sh_buf b = {0};
    cr_assert_eq(sh_qnode_format(root, &b), 0);
    sh_qnode_free(root);
    return (char *)b.p;
}

static void expect(const char *q, const char *want) {
    char *got = render(q);
    cr_expect_str_eq(got, want, "query [%s]", q);
    free(got);
}

static void expect_err_len(const char *q, size_t len, int code, const char *msg) {
    sh_qnode *root = (sh_qnode *)&root; /* must be reset to NULL */
    sahel_error err = {0};
    int rc = sh_query_parse(an, q, len, &root, &err);
    cr_expect_eq(rc, code, "query [%.60s]: rc %d (%s)", q, rc, err.msg);
    cr_expect_null(root, "query [%.60s]: output set on error", q);
    cr_expect_eq(err.code, code);
    if (msg) cr_expect_str_eq(err.msg, msg, "query [%.60s]", q);
    if (rc == 0) sh_qnode_free(root);
}

static void expect_err(const char *q, int code, const char *msg) {
    expect_err_len(q, strlen(q), code, msg);
}

/* ---- the query language ------------------------------------------------- */

Test(query_parse, words_are_analysed_and_ored) {
    expect("mutual defense pact", "(bool mutual defens pact)");
    expect("Mali", "(bool mali)");
    expect("  Mali \t\n Niger  ", "(bool mali niger)");
}

Test(query_parse, lower_case_operators_are_words) {
    expect("war AND peace", "(bool +war +peac)");
    expect("war and peace or not", "(bool war peac)");
    expect("And Or Not", "(bool and or not)");
}

/* Optional top-level stop words go when another word remains; they stay
 * in phrases, when required, in groups, and when nothing else is left. */
Test(query_parse, stop_words_dropped_from_ranked_or_only) {
    expect("the effects of the coup", "(bool effect coup)");
    expect("\"the who\" concert", "(bool \"the who\" concert)");
    expect("+the coup", "(bool +the coup)");
    expect("to be or not to be", "(bool to be or not to be)");
    expect("title:the coup", "(bool title:the coup)");
    expect("The", "(bool the)");
}

Test(query_parse, quoted_phrase_keeps_order_and_positions) {
    expect("\"mutual defense pact\"", "(bool \"mutual defens pact\")");
    expect("junta \"Alliance of Sahel States\" Niamey",
           "(bool junta \"allianc of sahel state\" niamey)");
    sh_qnode *root;
    const char *q = "x \"mutual defense pact\"";
    cr_assert_eq(sh_query_parse(an, q, strlen(q), &root, NULL), 0);
    const sh_qnode *ph = root->kids[1];
    cr_assert_eq(ph->kind, SH_Q_PHRASE);
    cr_assert_eq(ph->nterms, 3);
    cr_expect_eq(ph->pos[0], 0);
    cr_expect_eq(ph->pos[1], 1);
    cr_expect_eq(ph->pos[2], 2);
    cr_expect_str_eq(ph->terms[1], "defens");
    cr_expect_eq(ph->lens[1], 6);
    cr_expect_str_eq(ph->surface, "mutual defense pact");
    cr_expect_eq(ph->col, 3);
    sh_qnode_free(root);
}

Test(query_parse, one_word_phrase_is_a_term) {
    expect("\"Bamako\"", "(bool bamako)");
    expect("\"  Bamako! \"", "(bool bamako)");
}

Test(query_parse, punctuation_is_dropped) {
    expect("Mali ! ... Niger", "(bool mali niger)");
    expect("Mali \"!!\" Niger", "(bool mali niger)");
    expect("Mali (! ?) Niger", "(bool mali niger)");
    expect("Mali AND !", "(bool mali)");
    expect("+Mali AND ?", "(bool +mali)");
    expect("! AND NOT Niger Mali", "(bool -niger mali)");
}

Test(query_parse, required_and_excluded) {
    expect("+Mali -Niger junta", "(bool +mali -niger junta)");
    expect("+\"coup d'etat\" -title:Niger", "(bool +\"coup detat\" -title:niger)");
    expect("junta -(Niger Chad)", "(bool junta -(bool niger chad))");
    expect("+(Mali Niger) coup", "(bool +(bool mali niger) coup)");
}

Test(query_parse, minus_inside_a_word_is_part_of_it) {
    expect("Liptako-Gourma", "(bool liptakogourma \"liptako gourma\")");
    expect("2023-09-18", "(bool 20230918 \"2023 09 18\")");
    expect("-Liptako-Gourma Mali", "(bool -(bool liptakogourma \"liptako gourma\") mali)");
}

Test(query_parse, operand_of_plus_minus_is_never_an_operator) {
    expect("Mali -AND", "(bool mali -and)");
    expect("Mali +NOT", "(bool mali +not)");
    expect("Mali --Niger", "(bool mali -niger)");
}

Test(query_parse, and_or_not_with_parentheses) {
    expect("Mali AND Niger", "(bool +mali +niger)");
    expect("Mali OR Niger", "(bool mali niger)");
    expect("Mali AND NOT Niger", "(bool +mali -niger)");
    expect("NOT Niger Mali", "(bool -niger mali)");
    expect("Mali OR NOT Niger", "(bool mali -niger)");
    expect("(Mali OR Niger) AND junta", "(bool +(bool mali niger) +junta)");
    expect("junta AND (Mali OR (Niger AND coup))",
           "(bool +junta +(bool mali (bool +niger +coup)))");
    expect("NOT (Mali OR Niger) AND junta", "(bool -(bool mali niger) +junta)");
}

Test(query_parse, and_binds_tighter_than_juxtaposition_and_or) {
    expect("x y AND z", "(bool x (bool +y +z))");
    expect("x AND y z", "(bool (bool +x +y) z)");
    expect("x AND y OR z", "(bool (bool +x +y) z)");
    expect("x OR y AND z", "(bool x (bool +y +z))");
    expect("x AND y AND z", "(bool +x +y +z)");
    expect("x AND +y", "(bool +x +y)");
}

Test(query_parse, double_negation_requires) {
    expect("x NOT NOT y", "(bool x +y)");
    expect("x NOT -y", "(bool x +y)");
    expect("x NOT NOT NOT y", "(bool x -y)");
}

Test(query_parse, redundant_parentheses_collapse) {
    expect("(Mali)", "(bool mali)");
    expect("((Mali Niger))", "(bool mali niger)");
    expect("x ((+y))", "(bool x y)");
    expect("(a AND b)", "(bool +a +b)");
    expect("x -((y))", "(bool x -y)");
}

Test(query_parse, title_and_body_fields) {
    expect("title:Mali coup", "(bool title:mali coup)");
    expect("TITLE:Mali Body:coup", "(bool title:mali body:coup)");
    expect("title:\"military coup\"", "(bool title:\"militari coup\")");
    expect("title:(Mali coup)", "(bool title:mali title:coup)");
    expect("title:(a body:b)", "(bool title:a body:b)");
    expect("title:Liptako-Gourma", "(bool title:liptakogourma title:\"liptako gourma\")");
    expect("title:AND", "(bool title:and)");
    expect("-title:Niger Mali", "(bool -title:niger mali)");
}

Test(query_parse, field_sets_the_node_field) {
    sh_qnode *root;
    const char *q = "title:(Mali coup) body:x";
    cr_assert_eq(sh_query_parse(an, q, strlen(q), &root, NULL), 0);
    cr_assert_eq(root->nkids, 2);
    const sh_qnode *g = root->kids[0];
    cr_assert_eq(g->kind, SH_Q_BOOL);
    cr_expect_eq(g->field, SH_FIELD_TITLE);
    cr_expect_eq(g->col, 7);
    cr_expect_eq(g->kids[0]->field, SH_FIELD_TITLE);
    cr_expect_eq(g->kids[1]->field, SH_FIELD_TITLE);
    cr_expect_eq(root->kids[1]->field, SH_FIELD_BODY);
    cr_expect_eq(root->field, SH_FIELD_ANY);
    sh_qnode_free(root);
}

Test(query_parse, other_colons_are_plain_text) {
    expect("author:Smith", "(bool \"author smith\")");
    expect("10:30", "(bool \"10 30\")");
    expect("title: Mali", "(bool titl mali)");
    expect("Mali title:", "(bool mali titl)");
}

Test(query_parse, prefix_is_folded_not_stemmed) {
    expect("Burkin*", "(bool burkin*)");
    expect("defenses*", "(bool defenses*)");
    expect("title:junt* Mali", "(bool title:junt* mali)");
    expect("Liptako-G*", "(bool liptakog*)");
    expect("AND*", "(bool and*)");
    sh_qnode *root;
    const char *q = "x Burk*";
    cr_assert_eq(sh_query_parse(an, q, strlen(q), &root, NULL), 0);
    const sh_qnode *pf = root->kids[1];
    cr_assert_eq(pf->kind, SH_Q_PREFIX);
    cr_expect_str_eq(pf->text, "burk");
    cr_expect_eq(pf->len, 4);
    cr_expect_str_eq(pf->surface, "Burk*");
    cr_expect_eq(pf->col, 3);
    sh_qnode_free(root);
}

Test(query_parse, repeated_words_stay_repeated_clauses) {
    expect("Mali Mali Niger Mali", "(bool mali mali niger mali)");
    expect("attack attacks attacked", "(bool attack attack attack)");
}

Test(query_parse, hyphenated_words_give_whole_and_parts) {
    expect("Liptako-Gourma attacks",
           "(bool (bool liptakogourma \"liptako gourma\") attack)");
    expect("\"the Liptako-Gourma region\"", "(bool \"the liptako gourma region\")");
    expect("Liptako-Gourma AND attacks",
           "(bool +(bool liptakogourma \"liptako gourma\") +attack)");
    sh_qnode *root;
    const char *q = "Liptako-Gourma";
    cr_assert_eq(sh_query_parse(an, q, strlen(q), &root, NULL), 0);
    cr_assert_eq(root->nkids, 2);
    cr_expect_eq(root->kids[0]->kind, SH_Q_TERM);
    cr_expect_str_eq(root->kids[0]->surface, "Liptako-Gourma");
    cr_expect_eq(root->kids[1]->kind, SH_Q_PHRASE);
    cr_expect_str_eq(root->kids[1]->surface, "Liptako-Gourma");
    sh_qnode_free(root);
}

Test(query_parse, other_multi_token_words_are_phrases) {
    expect("U.S", "(bool \"u s\")");
    expect("Mali/Niger", "(bool \"mali niger\")");
}

Test(query_parse, columns_and_surfaces_of_nodes) {
    sh_qnode *root;
    const char *q = "  Mali +\"coup d'etat\" (a b)";
    cr_assert_eq(sh_query_parse(an, q, strlen(q), &root, NULL), 0);
    cr_assert_eq(root->nkids, 3);
    cr_expect_eq(root->col, 1);
    cr_expect_null(root->surface);
    cr_expect_eq(root->kids[0]->col, 3);
    cr_expect_str_eq(root->kids[0]->surface, "Mali");
    cr_expect_eq(root->occur[1], SH_OCCUR_MUST);
    cr_expect_eq(root->kids[1]->col, 9);
    cr_expect_str_eq(root->kids[1]->surface, "coup d'etat");
    cr_expect_eq(root->kids[2]->col, 23);
    sh_qnode_free(root);
}

Test(query_parse, unicode_spaces_separate) {
    expect("Mali\xC2\xA0Niger\xE3\x80\x80junta", "(bool mali niger junta)");
    expect("Go\xC3\xAFta", "(bool goita)");
}

/* ---- errors ------------------------------------------------------------- */

Test(query_parse, unbalanced_parentheses_point_at_the_culprit) {
    expect_err("(a b", SAHEL_ESYNTAX, "column 1: unbalanced parenthesis: '(' is never closed");
    expect_err("(a) (b", SAHEL_ESYNTAX, "column 5: unbalanced parenthesis: '(' is never closed");
    expect_err("((a)", SAHEL_ESYNTAX, "column 1: unbalanced parenthesis: '(' is never closed");
    expect_err("a b)", SAHEL_ESYNTAX,
               "column 4: unbalanced parenthesis: ')' has no matching '('");
    expect_err("(a)) (", SAHEL_ESYNTAX,
               "column 4: unbalanced parenthesis: ')' has no matching '('");
    expect_err("AND (", SAHEL_ESYNTAX, "column 5: unbalanced parenthesis: '(' is never closed");
}

Test(query_parse, unterminated_quote_points_at_the_quote) {
    expect_err("Mali \"coup d'etat", SAHEL_ESYNTAX, "column 6: unterminated quote");
    expect_err("\"a\" \"b\" \"", SAHEL_ESYNTAX, "column 9: unterminated quote");
}

Test(query_parse, operators_without_operands) {
    expect_err("AND Mali", SAHEL_ESYNTAX, "column 1: AND has nothing on its left");
    expect_err("Mali AND", SAHEL_ESYNTAX, "column 6: AND has nothing on its right");
    expect_err("Mali AND AND Niger", SAHEL_ESYNTAX, "column 6: AND has nothing on its right");
    expect_err("Mali AND OR Niger", SAHEL_ESYNTAX, "column 6: AND has nothing on its right");
    expect_err("OR Mali", SAHEL_ESYNTAX, "column 1: OR has nothing on its left");
    expect_err("Mali OR", SAHEL_ESYNTAX, "column 6: OR has nothing on its right");
    expect_err("Mali OR OR Niger", SAHEL_ESYNTAX, "column 6: OR has nothing on its right");
    expect_err("(Mali OR) x", SAHEL_ESYNTAX, "column 7: OR has nothing on its right");
    expect_err("(AND x)", SAHEL_ESYNTAX, "column 2: AND has nothing on its left");
    expect_err("Mali NOT", SAHEL_ESYNTAX, "column 6: NOT has nothing on its right");
    expect_err("Mali NOT NOT", SAHEL_ESYNTAX, "column 10: NOT has nothing on its right");
    expect_err("(x NOT) y", SAHEL_ESYNTAX, "column 4: NOT has nothing on its right");
    expect_err("+", SAHEL_ESYNTAX, "column 1: the query has no searchable words");
}

/* A dash or plus standing alone is punctuation, as in pasted prose
 * ("lift - drag ratio"): it is dropped, never an operator or an error. */
Test(query_parse, lone_plus_or_minus_is_punctuation) {
    expect("Mali - Niger", "(bool mali niger)");
    expect("(Mali +) x", "(bool mali x)");
    expect("Mali -", "(bool mali)");
    expect("-Mali +Niger - x", "(bool -mali +niger x)");
}

Test(query_parse, empty_parentheses_and_phrases) {
    expect_err("()", SAHEL_ESYNTAX, "column 1: empty parentheses");
    expect_err("Mali (  ) Niger", SAHEL_ESYNTAX, "column 6: empty parentheses");
    expect_err("Mali \"\"", SAHEL_ESYNTAX, "column 6: empty phrase");
    expect_err("\"  \" Mali", SAHEL_ESYNTAX, "column 1: empty phrase");
}

Test(query_parse, no_searchable_words) {
    const char *msg = "column 1: the query has no searchable words";
    expect_err("", SAHEL_ESYNTAX, msg);
    expect_err("   \t ", SAHEL_ESYNTAX, msg);
    expect_err("!!! ... ?", SAHEL_ESYNTAX, msg);
    expect_err("(!) AND \"?\"", SAHEL_ESYNTAX, msg);
    expect_err_len("", 0, SAHEL_ESYNTAX, msg);
    sh_qnode *root;
    cr_expect_eq(sh_query_parse(an, NULL, 0, &root, NULL), SAHEL_ESYNTAX);
    cr_expect_eq(sh_query_parse(an, NULL, 3, &root, NULL), SAHEL_EINVAL);
}

Test(query_parse, exclusions_only_are_refused) {
    const char *msg = "column 1: the query only excludes; add a word to search for";
    expect_err("-Mali", SAHEL_ESYNTAX, msg);
    expect_err("NOT Mali -Niger", SAHEL_ESYNTAX, msg);
    expect_err("NOT Mali AND NOT Niger", SAHEL_ESYNTAX, msg);
    expect_err("-(Mali Niger)", SAHEL_ESYNTAX, msg);
    expect_err("-Mali !", SAHEL_ESYNTAX, msg);
    expect_err("junta (-Mali)", SAHEL_ESYNTAX,
               "column 7: this part of the query only excludes; add a word to search for");
    expect_err("junta OR (NOT a AND NOT b)", SAHEL_ESYNTAX,
               "column 11: this part of the query only excludes; add a word to search for");
}

Test(query_parse, prefix_errors) {
    expect_err("*", SAHEL_ESYNTAX, "column 1: prefix too short");
    expect_err("Mali !*", SAHEL_ESYNTAX, "column 6: prefix too short");
    expect_err("title:*", SAHEL_ESYNTAX, "column 7: prefix too short");
    expect_err("Mali U.S*", SAHEL_ESYNTAX, "column 6: a prefix* must be a single word");
}

/* ---- limits and pathological inputs ------------------------------------ */

static char *repeat(const char *a, size_t na, const char *mid, const char *b, size_t nb) {
    size_t la = strlen(a), lm = strlen(mid), lb = strlen(b);
    char *s = malloc(la * na + lm + lb * nb + 1);
    cr_assert_not_null(s);
    char *o = s;
    for (size_t i = 0; i < na; i++, o += la)
        memcpy(o, a, la);
    memcpy(o, mid, lm);
    o += lm;
    for (size_t i = 0; i < nb; i++, o += lb)
        memcpy(o, b, lb);
    *o = '\0';
    return s;
}

Test(query_parse, ten_thousand_open_parentheses_are_an_error) {
    char *q = repeat("(", 10000, "", "", 0);
    expect_err(q, SAHEL_ESYNTAX, "column 1: unbalanced parenthesis: '(' is never closed");
    free(q);
    q = repeat("(", 10000, "Mali", "", 0);
    expect_err(q, SAHEL_ESYNTAX, "column 1: unbalanced parenthesis: '(' is never closed");
    free(q);
    q = repeat(")", 10000, "", "", 0);
    expect_err(q, SAHEL_ESYNTAX, "column 1: unbalanced parenthesis: ')' has no matching '('");
    free(q);
    q = repeat("(", 10000, "", ")", 10000);
    expect_err(q, SAHEL_ETOOBIG, "column 257: parentheses nested deeper than 256");
    free(q);
}

Test(query_parse, nesting_deeper_than_the_limit_is_too_big) {
    char *q = repeat("(", 10000, "Mali", ")", 10000);
    expect_err(q, SAHEL_ETOOBIG, "column 257: parentheses nested deeper than 256");
    free(q);
    q = repeat("(a ", SH_QUERY_MAX_DEPTH + 1, "b", ")", SH_QUERY_MAX_DEPTH + 1);
    expect_err(q, SAHEL_ETOOBIG, "column 769: parentheses nested deeper than 256");
    free(q);
}

Test(query_parse, nesting_at_the_limit_parses) {
    char *q = repeat("(", SH_QUERY_MAX_DEPTH, "Mali", ")", SH_QUERY_MAX_DEPTH);
    expect(q, "(bool mali)");
    free(q);
    q = repeat("(a ", SH_QUERY_MAX_DEPTH, "b", ")", SH_QUERY_MAX_DEPTH);
    char *got = render(q);
    cr_expect_eq(strncmp(got, "(bool a (bool a (bool a ", 24), 0, "%.40s", got);
    free(got);
    free(q);
}

Test(query_parse, long_not_chains_do_not_recurse) {
    char *q = repeat("NOT ", 100000, "Mali", "", 0);
    expect(q, "(bool +mali)");
    free(q);
    q = repeat("NOT ", 100001, "Mali", "", 0);
    expect_err(q, SAHEL_ESYNTAX, "column 1: the query only excludes; add a word to search for");
    free(q);
}

Test(query_parse, fifty_thousand_terms_parse) {
    static const char *words[] = {"Mali", "Niger", "junta", "coup", "Sahel", "Bamako"};
    const size_t n = 50000;
    char *q = malloc(n * 8);
    cr_assert_not_null(q);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(q + len, "%s ", words[i % 6]);
    sh_qnode *root;
    sahel_error err = {0};
    cr_assert_eq(sh_query_parse(an, q, len, &root, &err), 0, "%s", err.msg);
    cr_assert_eq(root->nkids, n);
    cr_expect_str_eq(root->kids[49999]->text, "niger"); /* 49999 % 6 == 1 */
    cr_expect_eq(root->kids[49999]->col, len - 5);
    sh_qnode_free(root);
    free(q);
}

Test(query_parse, too_many_clauses_is_too_big) {
    const size_t n = SH_QUERY_MAX_CLAUSES + 10;
    char *q = repeat("a ", n, "", "", 0);
    sh_qnode *root;
    sahel_error err = {0};
    cr_expect_eq(sh_query_parse(an, q, strlen(q), &root, &err), SAHEL_ETOOBIG);
    cr_expect_str_eq(err.msg, "column 131071: the query has more than 65536 clauses");
    cr_expect_null(root);
    free(q);
    /* nodes collapsed away do not count: one group per word stays below */
    q = repeat("(a) ", 40000, "", "", 0);
    cr_expect_eq(sh_query_parse(an, q, strlen(q), &root, &err), 0, "%s", err.msg);
    cr_expect_eq(root->nkids, 40000);
    sh_qnode_free(root);
    free(q);
}

/* ---- rendering ---------------------------------------------------------- */

Test(query_parse, format_shows_gaps_and_escapes) {
    char t0[] = "a", t1[] = "b(c", t2[] = "d";
    char *terms[] = {t0, t1, t2};
    size_t lens[] = {1, 3, 1};
    uint32_t pos[] = {0, 2, 3};
    sh_qnode ph = {.kind = SH_Q_PHRASE, .field = SH_FIELD_BODY, .terms = terms, .lens = lens,
                   .pos = pos, .nterms = 3};
    char tt[] = "x y\"\x01";
    sh_qnode term = {.kind = SH_Q_TERM, .text = tt, .len = 5};
    sh_qnode *kids[] = {&ph, &term};
    sh_occur occ[] = {SH_OCCUR_MUST, SH_OCCUR_MUST_NOT};
    sh_qnode b = {.kind = SH_Q_BOOL, .kids = kids, .occur = occ, .nkids = 2};
    sh_buf out = {0};
    cr_assert_eq(sh_qnode_format(&b, &out), 0);
    cr_expect_str_eq((char *)out.p, "(bool +body:\"a _ b\\(c d\" -x\\ y\\\"\\x01)");
    sh_buf_free(&out);
}

/* ---- random inputs ------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void) { /* xorshift64*, fixed seeds below */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void parse_any(const char *q, size_t len) {
    sh_qnode *root = NULL;
    sahel_error err = {0};
    int rc = sh_query_parse(an, q, len, &root, &err);
    if (rc == 0) {
        cr_assert_not_null(root);
        cr_assert_eq(root->kind, SH_Q_BOOL);
        check_tree(root, 0);
        sh_buf b = {0};
        cr_assert_eq(sh_qnode_format(root, &b), 0);
        sh_buf_free(&b);
        sh_qnode_free(root);
        return;
    }
    cr_assert(rc == SAHEL_ESYNTAX || rc == SAHEL_ETOOBIG, "rc %d: %s", rc, err.msg);
    cr_assert_null(root);
    unsigned long col = 0;
    cr_assert_eq(sscanf(err.msg, "column %lu:", &col), 1, "message without column: %s",
                 err.msg);
    cr_assert(col >= 1 && col <= len + 1, "column %lu out of range in %s", col, err.msg);
}

Test(query_parse, random_bytes_never_crash) {
    rng_state = 0x5a4e1f00d5eedULL;
    char q[96];
    for (int it = 0; it < 20000; it++) {
        size_t len = rng() % sizeof q;
        for (size_t i = 0; i < len; i++)
            q[i] = (char)(rng() & 0xff);
        parse_any(q, len);
    }
}

Test(query_parse, random_operator_soup_never_crashes) {
    static const char *alpha[] = {"a", "b", "\"", "(", ")", "+", "-", "*", ":",
                                  "AND", "OR", "NOT", "title:", " ", " ", "Liptako-Gourma"};
    const size_t nalpha = sizeof alpha / sizeof alpha[0];
    rng_state = 0x8badf00dULL;
    char q[512];
    size_t ok = 0;
    for (int it = 0; it < 30000; it++) {
        size_t n = rng() % 24, len = 0;
        for (size_t i = 0; i < n; i++) {
            const char *s = alpha[rng() % nalpha];
            size_t l = strlen(s);
            memcpy(q + len, s, l);
            len += l;
        }
        q[len] = '\0';
        sh_qnode *root = NULL;
        if (sh_query_parse(an, q, len, &root, NULL) == 0) ok++;
        sh_qnode_free(root);
        parse_any(q, len);
    }
    cr_expect_gt(ok, 1000, "only %zu random queries parsed", ok); /* the soup is not all errors */
}

/* ---- allocation failures ------------------------------------------------ */

Test(query_parse, every_allocation_failure_is_reported_and_leaks_nothing) {
    const char *q = "title:(Mali OR Liptako-Gourma) AND \"mutual defense pact\" -Niger burk* "
                    "+(a b c d e f g h i j)";
    char *want = render(q);
    int rc = SAHEL_ENOMEM;
    long fail_at; /* allocations that succeed before the one that fails */
    for (fail_at = 0; rc == SAHEL_ENOMEM && fail_at < 100000; fail_at++) {
        sh_test_failalloc fa = {0};
        fa.fail_at = (uint64_t)fail_at + 1;
        sh_test_failalloc_install(&fa);
        sh_qnode *root = NULL;
        sahel_error err = {0};
        sh_buf b = {0};
        rc = sh_query_parse(an, q, strlen(q), &root, &err);
        if (rc != 0) {
            sahel_set_allocator(NULL);
            cr_expect_eq(rc, SAHEL_ENOMEM, "allocation %ld: %s", fail_at, err.msg);
            cr_expect_null(root);
        } else {
            rc = sh_qnode_format(root, &b);
            sahel_set_allocator(NULL);
            if (rc == 0) cr_expect_str_eq((char *)b.p, want);
            cr_expect(rc == 0 || rc == SAHEL_ENOMEM);
        }
        sh_buf_free(&b);
        sh_qnode_free(root);
    }
    cr_expect_eq(rc, 0);
    cr_expect_gt(fail_at, 20, "too few allocations were failed");
    free(want);
}
