/*
 * test_analysis.c - the analysis pipeline: tokenizer rules (apostrophes,
 * hyphens, digit groups, scripts, invalid UTF-8, truncation, positions),
 * the analyzer (folding, stemming, diacritics, the stem cache), robustness
 * on random bytes and allocation failures; the tokenizer's two drivers
 * (scalar, AVX2) against each other on random and real text, its batches
 * (readable bytes past a term, stops), and the analyzer's pipeline against
 * one word at a time; the stem cache's table (growth, a small table's
 * collisions and clears, long and non-ASCII keys, allocation failures)
 * and its byte-wide stemmer for ASCII keys against libstemmer's UTF-8 one.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include <libstemmer.h>

#include "analysis/analysis.h"
#include "support/failalloc.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct tok {
    char term[SH_MAX_TERM_LEN + 1];
    uint32_t len, start, end, pos, flags;
} tok;

typedef struct col {
    tok t[64];
    size_t n;
} col;

static int collect(void *ctx, const sh_token *t) {
    col *c = ctx;
    cr_assert_lt(c->n, 64, "too many tokens");
    cr_assert_leq(t->term_len, SH_MAX_TERM_LEN);
    tok *o = &c->t[c->n++];
    memcpy(o->term, t->term, t->term_len);
    o->term[t->term_len] = '\0';
    o->len = t->term_len;
    o->start = t->start;
    o->end = t->end;
    o->pos = t->pos;
    o->flags = t->flags;
    return 0;
}

static col tokenize(const char *s, uint32_t first_pos, uint32_t *npos) {
    col c = {.n = 0};
    int rc = sh_tokenize(s, strlen(s), first_pos, collect, &c, npos);
    cr_assert_eq(rc, 0);
    return c;
}

/* Two words of n bytes each, analysed as "w1 w2" by a: their two terms. */
static col two_words(sh_analyzer *a, const char *w1, const char *w2, size_t n) {
    char s[512];
    cr_assert_lt(2 * n + 1, sizeof s);
    int len = snprintf(s, sizeof s, "%.*s %.*s", (int)n, w1, (int)n, w2);
    col c = {.n = 0};
    cr_assert_eq(sh_analyze(a, s, (size_t)len, 0, 0, collect, &c, NULL), 0);
    cr_assert_eq(c.n, 2, "\"%s\" gave %zu terms", s, c.n);
    return c;
}

static sh_analyzer *analyzer(const char *lang) {
    sh_analyzer *a = NULL;
    sahel_error err = {0};
    int rc = sh_analyzer_new(lang, &a, &err);
    cr_assert_eq(rc, 0, "sh_analyzer_new(%s): %s", lang, err.msg);
    cr_assert_not_null(a);
    return a;
}

static col analyze(sh_analyzer *a, const char *s, unsigned flags) {
    col c = {.n = 0};
    int rc = sh_analyze(a, s, strlen(s), 0, flags, collect, &c, NULL);
    cr_assert_eq(rc, 0);
    return c;
}

static void expect_tok(const col *c, size_t i, const char *term, uint32_t start, uint32_t end,
                       uint32_t pos, uint32_t flags) {
    cr_assert_lt(i, c->n, "token %zu missing (have %zu)", i, c->n);
    const tok *t = &c->t[i];
    cr_expect_str_eq(t->term, term, "token %zu", i);
    cr_expect_eq(t->start, start, "token %zu (%s) start %u", i, t->term, t->start);
    cr_expect_eq(t->end, end, "token %zu (%s) end %u", i, t->term, t->end);
    cr_expect_eq(t->pos, pos, "token %zu (%s) pos %u", i, t->term, t->pos);
    cr_expect_eq(t->flags, flags, "token %zu (%s) flags %u", i, t->term, t->flags);
}

static void expect_terms(const col *c, const char *const *terms, size_t n) {
    cr_assert_eq(c->n, n, "expected %zu tokens, got %zu", n, c->n);
    for (size_t i = 0; i < n; i++) cr_expect_str_eq(c->t[i].term, terms[i], "token %zu", i);
}

/* The normalised term of one word, through sh_analyzer_term. */
static const char *term_of(sh_analyzer *a, const char *w, unsigned flags, char *buf) {
    const char *t;
    size_t len;
    int rc = sh_analyzer_term(a, w, strlen(w), flags, &t, &len);
    cr_assert_eq(rc, 0, "sh_analyzer_term(%s) = %d", w, rc);
    cr_assert_leq(len, SH_MAX_TERM_LEN);
    memcpy(buf, t, len);
    buf[len] = '\0';
    return buf;
}

/* Strict UTF-8 check, written independently of the tokenizer's decoder. */
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (i + k > n) return false;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += k;
    }
    return true;
}

/* ---- tokenizer: apostrophes --------------------------------------------- */

Test(tokenize, possessive_s_is_dropped) {
    col c = tokenize("Burkina Faso's junta", 0, NULL);
    cr_assert_eq(c.n, 3);
    expect_tok(&c, 0, "Burkina", 0, 7, 0, 0);
    /* the surface span keeps the 's, so highlighting covers the word */
    expect_tok(&c, 1, "Faso", 8, 14, 1, 0);
    expect_tok(&c, 2, "junta", 15, 20, 2, 0);

    c = tokenize("Faso\xe2\x80\x99s army", 0, NULL); /* U+2019 */
    cr_assert_eq(c.n, 2);
    expect_tok(&c, 0, "Faso", 0, 8, 0, 0);
    expect_tok(&c, 1, "army", 9, 13, 1, 0);

    c = tokenize("MALI'S", 0, NULL);
    expect_terms(&c, (const char *[]){"MALI"}, 1);
}

Test(tokenize, internal_apostrophe_joins_the_parts) {
    col c = tokenize("don't O'Brien rock'n'roll", 0, NULL);
    cr_assert_eq(c.n, 3);
    expect_tok(&c, 0, "dont", 0, 5, 0, 0);
    expect_tok(&c, 1, "OBrien", 6, 13, 1, 0);
    expect_tok(&c, 2, "rocknroll", 14, 25, 2, 0);

    c = tokenize("don\xe2\x80\x99t Hawai\xca\xbci", 0, NULL); /* U+2019, U+02BC */
    expect_terms(&c, (const char *[]){"dont", "Hawaii"}, 2);
}

Test(tokenize, apostrophe_outside_a_word_is_a_separator) {
    col c = tokenize("'quoted' rock' 'n 5'6", 0, NULL);
    expect_terms(&c, (const char *[]){"quoted", "rock", "n", "5", "6"}, 5);
}

/* ---- tokenizer: hyphens ------------------------------------------------- */

Test(tokenize, hyphenated_word_gives_whole_then_parts) {
    uint32_t npos = 0;
    col c = tokenize("the Liptako-Gourma region", 10, &npos);
    cr_assert_eq(c.n, 5);
    expect_tok(&c, 0, "the", 0, 3, 10, 0);
    expect_tok(&c, 1, "LiptakoGourma", 4, 18, 11, SH_TOK_WHOLE);
    expect_tok(&c, 2, "Liptako", 4, 11, 11, SH_TOK_PART);
    expect_tok(&c, 3, "Gourma", 12, 18, 12, SH_TOK_PART);
    expect_tok(&c, 4, "region", 19, 25, 13, 0);
    cr_expect_eq(npos, 4, "the WHOLE token takes no position of its own");
}

Test(tokenize, anti_jihadist_is_findable_whole_and_in_parts) {
    sh_analyzer *a = analyzer("english");
    col c = analyze(a, "anti-jihadist", 0);
    cr_assert_eq(c.n, 3);
    expect_tok(&c, 0, "antijihadist", 0, 13, 0, SH_TOK_WHOLE);
    expect_tok(&c, 1, "anti", 0, 4, 0, SH_TOK_PART);
    expect_tok(&c, 2, "jihadist", 5, 13, 1, SH_TOK_PART);
    sh_analyzer_free(a);
}

Test(tokenize, hyphen_chain_of_any_length) {
    /* the second hyphen is U+2010, the third U+2011 */
    col c = tokenize("a-b\xe2\x80\x90" "c\xe2\x80\x91" "d e", 0, NULL);
    cr_assert_eq(c.n, 6);
    expect_tok(&c, 0, "abcd", 0, 11, 0, SH_TOK_WHOLE);
    expect_tok(&c, 1, "a", 0, 1, 0, SH_TOK_PART);
    expect_tok(&c, 2, "b", 2, 3, 1, SH_TOK_PART);
    expect_tok(&c, 3, "c", 6, 7, 2, SH_TOK_PART);
    expect_tok(&c, 4, "d", 10, 11, 3, SH_TOK_PART);
    expect_tok(&c, 5, "e", 12, 13, 4, 0);
}

Test(tokenize, hyphen_not_between_words_is_a_separator) {
    col c = tokenize("-lead trail- a--b x - y", 0, NULL);
    expect_terms(&c, (const char *[]){"lead", "trail", "a", "b", "x", "y"}, 6);
    for (size_t i = 0; i < c.n; i++) cr_expect_eq(c.t[i].flags, 0);
}

Test(tokenize, hyphenated_number_part_is_numeric) {
    col c = tokenize("COVID-19", 0, NULL);
    cr_assert_eq(c.n, 3);
    expect_tok(&c, 0, "COVID19", 0, 8, 0, SH_TOK_WHOLE | SH_TOK_NUMERIC);
    expect_tok(&c, 1, "COVID", 0, 5, 0, SH_TOK_PART);
    expect_tok(&c, 2, "19", 6, 8, 1, SH_TOK_PART | SH_TOK_NUMERIC);
}

/* ---- tokenizer: numbers ------------------------------------------------- */

Test(tokenize, digit_groups_drop_commas_keep_decimal_point) {
    col c = tokenize("5,100 troops, 1,100,000 people in 2022, 2.5 times", 0, NULL);
    cr_assert_eq(c.n, 8);
    expect_tok(&c, 0, "5100", 0, 5, 0, SH_TOK_NUMERIC);
    expect_tok(&c, 1, "troops", 6, 12, 1, 0);
    expect_tok(&c, 2, "1100000", 14, 23, 2, SH_TOK_NUMERIC);
    expect_tok(&c, 3, "people", 24, 30, 3, 0);
    expect_tok(&c, 4, "in", 31, 33, 4, 0);
    expect_tok(&c, 5, "2022", 34, 38, 5, SH_TOK_NUMERIC);
    expect_tok(&c, 6, "2.5", 40, 43, 6, SH_TOK_NUMERIC);
    expect_tok(&c, 7, "times", 44, 49, 7, 0);
}

Test(tokenize, punctuation_next_to_one_digit_separates) {
    col c = tokenize("in 2022. Then 3,a and x,5 end.", 0, NULL);
    expect_terms(&c, (const char *[]){"in", "2022", "Then", "3", "a", "and", "x", "5", "end"},
                 9);
}

/* ---- tokenizer: scripts ------------------------------------------------- */

Test(tokenize, cyrillic_is_tokenized) {
    col c = tokenize("Информирайте се!", 0, NULL);
    cr_assert_eq(c.n, 2);
    expect_tok(&c, 0, "Информирайте", 0, 24, 0, 0);
    expect_tok(&c, 1, "се", 25, 29, 1, 0);
}

Test(tokenize, each_cjk_ideograph_is_a_token) {
    col c = tokenize("Mali马里 ひらがなカタカナ", 0, NULL);
    expect_terms(&c,
                 (const char *[]){"Mali", "马", "里", "ひ", "ら", "が", "な", "カ", "タ", "カ", "ナ"},
                 11);
    expect_tok(&c, 1, "马", 4, 7, 1, 0);
    expect_tok(&c, 2, "里", 7, 10, 2, 0);
}

Test(tokenize, arabic_word_is_a_token) {
    col c = tokenize("(العربية) ٢٠٢٢", 0, NULL);
    cr_assert_eq(c.n, 2);
    expect_tok(&c, 0, "العربية", 1, 15, 0, 0);
    /* Arabic-Indic digits are digits too */
    expect_tok(&c, 1, "٢٠٢٢", 17, 25, 1, SH_TOK_NUMERIC);
}

Test(tokenize, combining_marks_stay_in_the_word) {
    /* "Goïta" with U+0308 COMBINING DIAERESIS instead of the precomposed ï */
    col c = tokenize("Goi\xcc\x88ta", 0, NULL);
    cr_assert_eq(c.n, 1);
    expect_tok(&c, 0, "Goi\xcc\x88ta", 0, 7, 0, 0);
}

/* ---- tokenizer: robustness ---------------------------------------------- */

Test(tokenize, invalid_utf8_bytes_are_separators) {
    static const char s[] = "ab\xff" "cd\xc3(ef\xc0\xaf" "gh\xed\xa0\x80ij\xf4\x90\x80\x80kl\xe2\x82";
    col c = {.n = 0};
    int rc = sh_tokenize(s, sizeof s - 1, 0, collect, &c, NULL);
    cr_assert_eq(rc, 0);
    expect_terms(&c, (const char *[]){"ab", "cd", "ef", "gh", "ij", "kl"}, 6);
    expect_tok(&c, 1, "cd", 3, 5, 1, 0);
}

Test(tokenize, megabyte_token_is_truncated_at_a_character_boundary) {
    size_t n = (size_t)1 << 20;
    char *s = malloc(n);
    cr_assert_not_null(s);

    memset(s, 'a', n);
    col c = {.n = 0};
    cr_assert_eq(sh_tokenize(s, n, 0, collect, &c, NULL), 0);
    cr_assert_eq(c.n, 1);
    cr_expect_eq(c.t[0].len, SH_MAX_TERM_LEN);
    cr_expect_eq(c.t[0].start, 0);
    cr_expect_eq(c.t[0].end, n);

    /* Thai KO KAI, 3 bytes: 42 characters fit 128 bytes */
    for (size_t i = 0; i + 3 <= n; i += 3) memcpy(s + i, "\xe0\xb8\x81", 3);
    size_t m = n - n % 3;
    c.n = 0;
    cr_assert_eq(sh_tokenize(s, m, 0, collect, &c, NULL), 0);
    cr_assert_eq(c.n, 1);
    cr_expect_eq(c.t[0].len, 126);
    cr_expect(valid_utf8((const uint8_t *)c.t[0].term, c.t[0].len));
    cr_expect_eq(c.t[0].end, m);

    /* through the general scanner: apostrophes join every piece */
    for (size_t i = 0; i + 3 <= n; i += 3) memcpy(s + i, "ab'", 3);
    c.n = 0;
    cr_assert_eq(sh_tokenize(s, m - 1, 0, collect, &c, NULL), 0);
    cr_assert_eq(c.n, 1);
    cr_expect_eq(c.t[0].len, SH_MAX_TERM_LEN);
    cr_expect_eq(strspn(c.t[0].term, "ab"), SH_MAX_TERM_LEN);
    cr_expect_eq(c.t[0].end, m - 1);

    /* the same through the analyzer */
    for (size_t i = 0; i + 3 <= n; i += 3) memcpy(s + i, "\xe0\xb8\x81", 3);
    sh_analyzer *a = analyzer("english");
    c.n = 0;
    cr_assert_eq(sh_analyze(a, s, m, 0, 0, collect, &c, NULL), 0);
    cr_assert_eq(c.n, 1);
    cr_expect_leq(c.t[0].len, SH_MAX_TERM_LEN);
    cr_expect(valid_utf8((const uint8_t *)c.t[0].term, c.t[0].len));
    sh_analyzer_free(a);
    free(s);
}

static int stop_after_three(void *ctx, const sh_token *t) {
    (void)t;
    int *seen = ctx;
    return ++*seen == 3 ? 42 : 0;
}

static int count_tokens(void *ctx, const sh_token *t) {
    size_t *n = ctx;
    cr_assert_gt(t->term_len, 0);
    ++*n;
    return 0;
}

Test(tokenize, long_hyphen_chain_gives_every_part) {
    size_t n = (size_t)1 << 20;
    char *s = malloc(n);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i += 2) memcpy(s + i, "a-", 2);
    size_t count = 0;
    uint32_t npos = 0;
    /* n - 1 bytes: "a-a-...-a", n/2 parts */
    cr_assert_eq(sh_tokenize(s, n - 1, 0, count_tokens, &count, &npos), 0);
    cr_expect_eq(count, n / 2 + 1);
    cr_expect_eq(npos, n / 2);
    free(s);
}

Test(tokenize, callback_value_stops_the_scan) {
    int seen = 0;
    uint32_t npos = 0;
    const char *s = "one two three four five";
    cr_expect_eq(sh_tokenize(s, strlen(s), 0, stop_after_three, &seen, &npos), 42);
    cr_expect_eq(seen, 3);
    cr_expect_eq(npos, 3);
}

Test(tokenize, positions_start_at_first_pos) {
    uint32_t npos = 0;
    col c = tokenize("  Niger, Mali and   Burkina  ", 1000, &npos);
    cr_assert_eq(c.n, 4);
    for (size_t i = 0; i < c.n; i++) cr_expect_eq(c.t[i].pos, 1000 + i);
    cr_expect_eq(npos, 4);
}

Test(tokenize, empty_input_gives_nothing) {
    col c = {.n = 0};
    uint32_t npos = 7;
    cr_expect_eq(sh_tokenize("", 0, 5, collect, &c, &npos), 0);
    cr_expect_eq(c.n, 0);
    cr_expect_eq(npos, 0);
    cr_expect_eq(sh_tokenize(NULL, 0, 5, collect, &c, NULL), 0);
    cr_expect_eq(sh_tokenize(" ,.-'\xe2\x80\x99", 8, 0, collect, &c, &npos), 0);
    cr_expect_eq(c.n, 0);
    cr_expect_eq(npos, 0);
}

/* ---- analyzer ----------------------------------------------------------- */

Test(analyze, accents_and_case_give_the_same_term) {
    sh_analyzer *a = analyzer("english");
    /* precomposed ï, plain, upper case, upper with Ï, decomposed i + U+0308 */
    col c = analyze(a, "Goïta Goita GOITA GOÏTA Goi\xcc\x88ta", 0);
    expect_terms(&c, (const char *[]){"goita", "goita", "goita", "goita", "goita"}, 5);
    char buf[SH_MAX_TERM_LEN + 1];
    cr_expect_str_eq(term_of(a, "GOÏTA", 0, buf), "goita");
    sh_analyzer_free(a);
}

Test(analyze, cyrillic_is_lower_cased) {
    sh_analyzer *a = analyzer("none");
    col c = analyze(a, "Информирайте СЕ", 0);
    /* й is и with a breve (U+0306), a diacritic, so it folds to и as ï
     * folds to i: the index and the queries agree either way */
    expect_terms(&c, (const char *[]){"информираите", "се"}, 2);
    expect_tok(&c, 0, "информираите", 0, 24, 0, 0);
    sh_analyzer_free(a);
}

Test(analyze, arabic_harakat_are_stripped) {
    sh_analyzer *a = analyzer("none");
    col c = analyze(a, "مُحَمَّد محمد", 0);
    expect_terms(&c, (const char *[]){"محمد", "محمد"}, 2);
    sh_analyzer_free(a);
}

Test(analyze, indic_vowel_signs_are_kept) {
    sh_analyzer *a = analyzer("none");
    col c = analyze(a, "हिंदी", 0);
    expect_terms(&c, (const char *[]){"हिंदी"}, 1);
    sh_analyzer_free(a);
}

Test(analyze, full_case_folding) {
    sh_analyzer *a = analyzer("none");
    col c = analyze(a, "Straße STRASSE ΣΊΣΥΦΟΣ", 0);
    expect_terms(&c, (const char *[]){"strasse", "strasse", "σισυφοσ"}, 3);
    sh_analyzer_free(a);
}

/* The ASCII fold (16 bytes at a time, the bytes past the word masked off)
 * lowers A-Z and nothing else, at every length around the 16-byte load:
 * each ASCII byte but NUL in every third place of words of 1..40 bytes,
 * each from a heap block of its exact size. */
Test(analyze, ascii_fold_lowers_exactly_a_to_z_at_every_length) {
    sh_analyzer *a = analyzer("none");
    for (size_t n = 1; n <= 40; n++) {
        for (int c = 1; c < 0x80; c++) {
            char w[64], want[64];
            for (size_t i = 0; i < n; i++) {
                w[i] = (char)(i % 3 == 0 ? c : "aQz9Mk"[i % 6]);
                want[i] = w[i] >= 'A' && w[i] <= 'Z' ? (char)(w[i] + 32) : w[i];
            }
            char *copy = malloc(n);
            cr_assert_not_null(copy);
            memcpy(copy, w, n);
            const char *t;
            size_t len;
            cr_assert_eq(sh_analyzer_term(a, copy, n, 0, &t, &len), 0);
            cr_assert_eq(len, n, "byte 0x%02x, length %zu: term of %zu bytes", c, n, len);
            cr_assert(memcmp(t, want, n) == 0, "byte 0x%02x, length %zu: %.*s", c, n, (int)n, t);
            free(copy);
        }
    }
    sh_analyzer_free(a);
}

Test(analyze, english_words_are_stemmed) {
    sh_analyzer *a = analyzer("english");
    col c = analyze(a, "Attacks attacked ATTACKING mutual defense pact", 0);
    expect_terms(&c, (const char *[]){"attack", "attack", "attack", "mutual", "defens", "pact"},
                 6);
    sh_analyzer_free(a);
}

Test(analyze, nostem_flag_and_numbers_are_not_stemmed) {
    sh_analyzer *a = analyzer("english");
    col c = analyze(a, "attacks 1990s Attacks", SH_ANALYZE_NOSTEM);
    expect_terms(&c, (const char *[]){"attacks", "1990s", "attacks"}, 3);
    c = analyze(a, "attacks 1990s 5,100 2.5", 0);
    expect_terms(&c, (const char *[]){"attack", "1990s", "5100", "2.5"}, 4);
    cr_expect_eq(c.t[1].flags, SH_TOK_NUMERIC);
    sh_analyzer_free(a);
}

Test(analyze, lang_none_folds_without_stemming) {
    sh_analyzer *a = analyzer("none");
    cr_expect_str_eq(sh_analyzer_lang(a), "none");
    col c = analyze(a, "Attacks Faso's don't", 0);
    expect_terms(&c, (const char *[]){"attacks", "faso", "dont"}, 3);
    sh_analyzer_free(a);
}

Test(analyze, possessive_and_hyphen_through_the_analyzer) {
    sh_analyzer *a = analyzer("english");
    uint32_t npos = 0;
    col c = {.n = 0};
    const char *s = "Burkina Faso's Liptako-Gourma attacks";
    cr_assert_eq(sh_analyze(a, s, strlen(s), 3, 0, collect, &c, &npos), 0);
    cr_assert_eq(c.n, 6);
    expect_tok(&c, 0, "burkina", 0, 7, 3, 0);
    expect_tok(&c, 1, "faso", 8, 14, 4, 0);
    expect_tok(&c, 2, "liptakogourma", 15, 29, 5, SH_TOK_WHOLE);
    expect_tok(&c, 3, "liptako", 15, 22, 5, SH_TOK_PART);
    expect_tok(&c, 4, "gourma", 23, 29, 6, SH_TOK_PART);
    expect_tok(&c, 5, "attack", 30, 37, 7, 0);
    cr_expect_eq(npos, 5);
    sh_analyzer_free(a);
}

Test(analyze, term_matches_what_analyze_gives) {
    sh_analyzer *a = analyzer("english");
    char buf[SH_MAX_TERM_LEN + 1];
    cr_expect_str_eq(term_of(a, "Attacks", 0, buf), "attack");
    cr_expect_str_eq(term_of(a, "Attacks", SH_ANALYZE_NOSTEM, buf), "attacks");
    cr_expect_str_eq(term_of(a, "2022", 0, buf), "2022");
    cr_expect_str_eq(term_of(a, "Défense", 0, buf), "defens");

    /* a long word is cut as the tokenizer cuts it */
    char word[300];
    memset(word, 'x', sizeof word - 1);
    word[sizeof word - 1] = '\0';
    col c = analyze(a, word, 0);
    cr_assert_eq(c.n, 1);
    cr_expect_str_eq(term_of(a, word, 0, buf), c.t[0].term);

    const char *t;
    size_t len;
    cr_expect_eq(sh_analyzer_term(a, "ab\xff", 3, 0, &t, &len), SAHEL_EINVAL);
    sh_analyzer_free(a);
}

Test(analyze, second_pass_is_all_cache_hits) {
    sh_analyzer *a = analyzer("english");
    const char *s = "Attacks on the convoy: the attacks near Goïta's base, attacks in 2022.";
    uint64_t hits, misses;
    col c1 = analyze(a, s, 0);
    sh_analyzer_cache_stats(a, &hits, &misses);
    /* cached: every token but the number; distinct folded forms: attacks,
     * on, the, convoy, near, goïta, base, in */
    cr_expect_eq(misses, 8);
    cr_expect_eq(hits, 3, "the, attacks, attacks repeat");
    cr_assert_eq(c1.n, 12);

    col c2 = analyze(a, s, 0);
    uint64_t hits2, misses2;
    sh_analyzer_cache_stats(a, &hits2, &misses2);
    cr_expect_eq(misses2, misses, "no new stemming on the second pass");
    cr_expect_eq(hits2 - hits, 11, "every cached token of the second pass is a hit");
    cr_assert_eq(c2.n, c1.n);
    for (size_t i = 0; i < c1.n; i++) cr_expect_str_eq(c2.t[i].term, c1.t[i].term);

    /* NOSTEM terms are cached apart from stemmed ones */
    col c3 = analyze(a, "attacks", SH_ANALYZE_NOSTEM);
    expect_terms(&c3, (const char *[]){"attacks"}, 1);
    sh_analyzer_free(a);
}

/* Writes distinct lower-case words: the n-th word spells n in base 26. */
static size_t spell(size_t n, char *out) {
    size_t len = 0;
    do {
        out[len++] = (char)('a' + n % 26);
        n /= 26;
    } while (n);
    out[len++] = ' ';
    return len;
}

Test(analyze, cache_is_bounded_and_still_correct_after_clearing, .timeout = 300) {
    sh_analyzer *a = analyzer("english");
    /* 1.2M distinct words in chunks, past the bound of 786,432 entries */
    size_t total = 1200000, per = 20000;
    char *s = malloc(per * 8);
    cr_assert_not_null(s);
    size_t count = 0;
    for (size_t w = 0; w < total; w += per) {
        size_t len = 0;
        for (size_t k = w; k < w + per; k++) len += spell(k, s + len);
        cr_assert_eq(sh_analyze(a, s, len, 0, 0, count_tokens, &count, NULL), 0);
    }
    cr_expect_eq(count, total);
    uint64_t hits, misses;
    sh_analyzer_cache_stats(a, &hits, &misses);
    cr_expect_eq(hits + misses, total);
    col c = analyze(a, "attacks attacks Goïta", 0);
    expect_terms(&c, (const char *[]){"attack", "attack", "goita"}, 3);
    free(s);
    sh_analyzer_free(a);
}

Test(analyze, unknown_language_is_einval_naming_it) {
    sh_analyzer *a = (sh_analyzer *)&a;
    sahel_error err = {0};
    cr_expect_eq(sh_analyzer_new("klingon", &a, &err), SAHEL_EINVAL);
    cr_expect_null(a);
    cr_expect_eq(err.code, SAHEL_EINVAL);
    cr_expect_neq(strstr(err.msg, "klingon"), NULL, "message: %s", err.msg);
    cr_expect_eq(sh_analyzer_new(NULL, &a, &err), SAHEL_EINVAL);
    sh_analyzer_free(NULL);
}

Test(analyze, snowball_languages_are_accepted) {
    sh_analyzer *a = analyzer("french");
    cr_expect_str_eq(sh_analyzer_lang(a), "french");
    /* the French stemmer sees the accents (stem first, strip after) */
    col c = analyze(a, "attaquées attaquees", 0);
    expect_terms(&c, (const char *[]){"attaqu", "attaque"}, 2);
    sh_analyzer_free(a);
}

/* ---- robustness --------------------------------------------------------- */

typedef struct check {
    size_t len;
    uint32_t first_pos, last_pos;
    size_t n;
    bool whole_pending;
    uint32_t whole_pos;
} check;

static int check_token(void *ctx, const sh_token *t) {
    check *k = ctx;
    cr_assert_leq(t->start, t->end);
    cr_assert_leq(t->end, k->len);
    cr_assert_gt(t->term_len, 0);
    cr_assert_leq(t->term_len, SH_MAX_TERM_LEN);
    cr_assert(valid_utf8((const uint8_t *)t->term, t->term_len), "term not UTF-8");
    cr_assert_geq(t->pos, k->first_pos);
    if (k->n) cr_assert_geq(t->pos, k->last_pos);
    if (k->whole_pending) {
        cr_assert(t->flags & SH_TOK_PART, "a WHOLE is followed by its first part");
        cr_assert_eq(t->pos, k->whole_pos);
    }
    k->whole_pending = t->flags & SH_TOK_WHOLE;
    k->whole_pos = t->pos;
    k->last_pos = t->pos;
    k->n++;
    return 0;
}

static uint64_t rng_next(uint64_t *x) {
    /* xorshift64*: fixed seed, so every run sees the same inputs */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

Test(analyze, random_bytes_are_safe) {
    /* pieces that exercise every rule, mixed with raw random bytes */
    static const char *const pieces[] = {
        "a", "Z", "9", "'", "\xe2\x80\x99", "\xca\xbc", "s", "-", "\xe2\x80\x90", ",", ".", " ",
        "\xc3\xaf", "\xcc\x88", "\xd0\x98", "\xe4\xb8\xad", "\xe3\x82\xab", "\xe3\x82\x99",
        "\xd8\xb9", "\xd9\x8e", "\xe0\xa4\xbf", "\xf0\x9f\x98\x80", "\xc3\x9f", "\xce\xa3",
        "\xef\xac\x80", "\xc4\xb0", "\xe2\x85\xab", "\xff", "\xc0", "\xed\xa0\x80", "\xf4\x90",
    };
    size_t npieces = sizeof pieces / sizeof pieces[0];
    sh_analyzer *en = analyzer("english");
    sh_analyzer *none = analyzer("none");
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    uint8_t buf[600];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0, want = rng_next(&x) % 500;
        while (len < want) {
            uint64_t r = rng_next(&x);
            if (r % 4 == 0) {
                buf[len++] = (uint8_t)(r >> 8);
            } else {
                const char *p = pieces[(r >> 8) % npieces];
                size_t n = strlen(p);
                memcpy(buf + len, p, n);
                len += n;
            }
        }
        uint32_t first = (uint32_t)(rng_next(&x) % 1000);
        check k = {.len = len, .first_pos = first};
        uint32_t npos = 0;
        cr_assert_eq(sh_tokenize((const char *)buf, len, first, check_token, &k, &npos), 0);
        size_t raw = k.n;
        cr_assert(!k.whole_pending);
        if (k.n) cr_assert_lt(k.last_pos, first + npos);

        k = (check){.len = len, .first_pos = first};
        uint32_t npos2 = 0;
        sh_analyzer *a = iter % 2 ? en : none;
        unsigned flags = iter % 3 == 0 ? SH_ANALYZE_NOSTEM : 0;
        cr_assert_eq(sh_analyze(a, (const char *)buf, len, first, flags, check_token, &k, &npos2),
                     0);
        cr_assert_eq(npos2, npos);
        cr_assert_leq(k.n, raw);

        /* the same bytes as one "word": normalised or refused, never more */
        const char *t;
        size_t tlen;
        int rc = sh_analyzer_term(a, (const char *)buf, len, flags, &t, &tlen);
        cr_assert(rc == 0 || rc == SAHEL_EINVAL, "rc %d", rc);
        if (rc == 0) {
            cr_assert_leq(tlen, SH_MAX_TERM_LEN);
            cr_assert(valid_utf8((const uint8_t *)t, tlen));
        }
    }
    sh_analyzer_free(en);
    sh_analyzer_free(none);
}

/* ---- allocation failures ------------------------------------------------ */

Test(analyze, allocation_failures_are_reported_not_crashes) {
    const char *s = "Goïta attacks the Liptako-Gourma: Информирайте 北京";
    bool succeeded = false;
    for (uint64_t fail_at = 1; !succeeded && fail_at < 100; fail_at++) {
        sh_test_failalloc fa = {.fail_at = fail_at};
        sh_test_failalloc_install(&fa);
        sh_analyzer *a = NULL;
        sahel_error err = {0};
        int rc = sh_analyzer_new("english", &a, &err);
        if (rc == 0) {
            size_t n = 0;
            rc = sh_analyze(a, s, strlen(s), 0, 0, count_tokens, &n, NULL);
            if (rc == 0) {
                succeeded = true;
                cr_expect_eq(n, 9);
            }
            sh_analyzer_free(a);
        } else {
            cr_expect_null(a);
        }
        sahel_set_allocator(NULL);
        if (!succeeded)
            cr_expect_eq(rc, SAHEL_ENOMEM, "failing allocation %llu", (unsigned long long)fail_at);
        cr_expect_eq(fa.live, 0, "blocks leaked when allocation %llu failed",
                     (unsigned long long)fail_at);
    }
    cr_expect(succeeded);
}

/* ---- the tokenizer's drivers: scalar and AVX2 give the same tokens ------- */

/* A token stream flattened to bytes (fields, then the term), so that two
 * runs compare with one memcmp; stop_at > 0 stops the run at that token. */
typedef struct stream {
    uint8_t *buf;
    size_t len, cap, n, stop_at;
} stream;

static int record_token(void *ctx, const sh_token *t) {
    stream *st = ctx;
    cr_assert_leq(t->term_len, SH_MAX_TERM_LEN);
    uint32_t h[6] = {t->term_len, t->start, t->end, t->pos, t->flags, t->memo != NULL};
    size_t need = st->len + sizeof h + t->term_len;
    if (need > st->cap) {
        st->cap = 2 * need + 256;
        st->buf = realloc(st->buf, st->cap);
        cr_assert_not_null(st->buf);
    }
    memcpy(st->buf + st->len, h, sizeof h);
    memcpy(st->buf + st->len + sizeof h, t->term, t->term_len);
    st->len = need;
    st->n++;
    return st->stop_at && st->n == st->stop_at ? 99 : 0;
}

typedef struct run {
    stream st;
    int rc;
    uint32_t npos;
} run;

/* Tokenize (a == NULL) or analyze s[0..len) with the driver impl. */
static run run_with(sh_tokenize_impl impl, const uint8_t *s, size_t len, uint32_t first,
                    size_t stop_at, sh_analyzer *a, unsigned flags) {
    run r = {.st = {.stop_at = stop_at}};
    cr_assert_eq(sh_tokenize_use(impl), 0);
    r.rc = a ? sh_analyze(a, (const char *)s, len, first, flags, record_token, &r.st, &r.npos)
             : sh_tokenize((const char *)s, len, first, record_token, &r.st, &r.npos);
    cr_assert_eq(sh_tokenize_use(SH_TOKENIZE_AUTO), 0);
    return r;
}

static void expect_same_run(const run *x, const run *y, const char *what, size_t case_no) {
    cr_assert_eq(x->rc, y->rc, "%s, case %zu: rc %d vs %d", what, case_no, x->rc, y->rc);
    cr_assert_eq(x->npos, y->npos, "%s, case %zu: npos %u vs %u", what, case_no, x->npos,
                 y->npos);
    cr_assert_eq(x->st.n, y->st.n, "%s, case %zu: %zu tokens vs %zu", what, case_no, x->st.n,
                 y->st.n);
    cr_assert_eq(x->st.len, y->st.len, "%s, case %zu: streams differ in length", what, case_no);
    cr_assert(x->st.len == 0 || memcmp(x->st.buf, y->st.buf, x->st.len) == 0,
              "%s, case %zu: streams differ", what, case_no);
}

static void free_run(run *r) { free(r->st.buf); }

/* Run s through both drivers (tokenize, and analyze with a when given)
 * and expect the same tokens, rc and npos. */
static void expect_drivers_agree(const uint8_t *s, size_t len, uint32_t first, size_t stop_at,
                                 sh_analyzer *a, unsigned flags, size_t case_no) {
    run x = run_with(SH_TOKENIZE_SCALAR, s, len, first, stop_at, NULL, 0);
    run y = run_with(SH_TOKENIZE_AVX2, s, len, first, stop_at, NULL, 0);
    expect_same_run(&x, &y, "tokenize", case_no);
    free_run(&x);
    free_run(&y);
    if (!a) return;
    x = run_with(SH_TOKENIZE_SCALAR, s, len, first, stop_at, a, flags);
    y = run_with(SH_TOKENIZE_AVX2, s, len, first, stop_at, a, flags);
    expect_same_run(&x, &y, "analyze", case_no);
    free_run(&x);
    free_run(&y);
}

/* Pieces of text for the drivers' differential tests: words, every joiner
 * in and out of place, digit groups, multi-byte letters, marks, CJK,
 * invalid and truncated sequences. */
static const char *const k_pieces[] = {
    "a", "Z", "9", "0", "5", " ", " ", "\n", "'", "s", "S", "-", ",", ".", "\"", "(", ")",
    "the", "Company", "mln", "dlrs", "1,000", "155,221", "2.5", "5.93", "U.S.", "don't",
    "Faso's", "company's", "80's", "anti-jihadist", "x-y-z", "mid-1987", "'s", "s'", "--",
    ",,", "..", "1,", "1.", ",1", ".5", "1,2,3", "a1,2", "9.", "'S",
    "\xe2\x80\x99", "\xca\xbc", "\xe2\x80\x90", "\xe2\x80\x91", "\xc3\xaf", "\xcc\x88",
    "\xd0\x98", "\xe4\xb8\xad", "\xe3\x82\xab", "\xe3\x82\x99", "\xd8\xb9", "\xd9\x8e",
    "\xe0\xa4\xbf", "\xf0\x9f\x98\x80", "\xc3\x9f", "\xce\xa3", "\xef\xac\x80", "\xc4\xb0",
    "\xe2\x85\xab", "\xd9\xa3", "Go\xc3\xafta", "\xff", "\xc0", "\xed\xa0\x80", "\xf4\x90",
    "\xe2\x80", "\xc3",
};

/* Fills buf (of cap bytes) with a random text and returns its length;
 * some lengths sit on either side of the 32- and 64-byte chunk sizes. */
static size_t random_text(uint64_t *x, uint8_t *buf, size_t cap) {
    size_t npieces = sizeof k_pieces / sizeof k_pieces[0];
    uint64_t r = rng_next(x);
    size_t want = r % 8 == 0 ? 32 * (1 + (r >> 8) % 8) + (r >> 16) % 3 - 1 : (r >> 8) % 400;
    if (want > cap - 300) want = cap - 300;
    int style = (int)((r >> 24) % 4);
    size_t len = 0;
    while (len < want) {
        r = rng_next(x);
        if (style == 0 && r % 4 == 0) {
            buf[len++] = (uint8_t)(r >> 8); /* raw bytes, often invalid */
        } else if (style == 1 && r % 16 == 0) {
            /* a long word: a whole chunk and more, cut past 128 bytes */
            size_t k = 30 + (r >> 8) % 170;
            for (size_t j = 0; j < k; j++) buf[len++] = (uint8_t)"aB3x"[(j + (r >> 20)) % 4];
        } else if (style == 2 && r % 2 == 0) {
            buf[len++] = (uint8_t)"aZ9 ,.-'s"[(r >> 8) % 9];
        } else {
            const char *p = k_pieces[(r >> 8) % npieces];
            size_t n = strlen(p);
            memcpy(buf + len, p, n);
            len += n;
        }
    }
    /* ends exactly at want, often inside a word or a sequence */
    return r % 3 == 0 ? want : len;
}

/* The text in a heap block of exactly len bytes, so that the sanitizer
 * build catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *s, size_t len) {
    uint8_t *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    if (len) memcpy(p, s, len);
    return p;
}

Test(tokenize_drivers, avx2_and_scalar_agree_on_random_text, .timeout = 300) {
    sh_analyzer *en = analyzer("english");
    sh_analyzer *none = analyzer("none");
    uint64_t x = UINT64_C(0x5DEECE66D2718281);
    uint8_t buf[4096];
    size_t ncases = 20000;
    for (size_t i = 0; i < ncases; i++) {
        size_t len = random_text(&x, buf, sizeof buf);
        uint8_t *s = exact_copy(buf, len);
        uint64_t r = rng_next(&x);
        if (!sh_tokenize_avx2_available()) {
            /* the scalar half alone, for the sanitizer's sake */
            run only = run_with(SH_TOKENIZE_SCALAR, s, len, 0, 0, NULL, 0);
            free_run(&only);
        } else {
            unsigned flags = r % 3 == 0 ? SH_ANALYZE_NOSTEM : 0;
            expect_drivers_agree(s, len, (uint32_t)(r >> 8) % 1000, 0, r % 2 ? en : none, flags,
                                 i);
        }
        free(s);
    }
    sh_analyzer_free(en);
    sh_analyzer_free(none);
    if (!sh_tokenize_avx2_available())
        cr_skip_test("this CPU has no AVX2 (with BMI1/2): the scalar driver ran alone, "
                     "nothing to compare it with");
}

Test(tokenize_drivers, avx2_and_scalar_agree_when_the_callback_stops) {
    if (!sh_tokenize_avx2_available())
        cr_skip_test("this CPU has no AVX2 (with BMI1/2): nothing to compare the scalar "
                     "driver with");
    sh_analyzer *en = analyzer("english");
    uint64_t x = UINT64_C(0x2545F4914F6CDD1D);
    uint8_t buf[4096];
    for (size_t i = 0; i < 3000; i++) {
        size_t len = random_text(&x, buf, sizeof buf);
        size_t stop_at = 1 + rng_next(&x) % 80;
        expect_drivers_agree(buf, len, 3, stop_at, en, 0, i);
    }
    sh_analyzer_free(en);
}

/* The files of the bundled corpus, read whole; returns how many. */
static size_t read_corpus(char **texts, size_t *lens, size_t max) {
    const char *dir = SAHEL_SOURCE_DIR "/corpus";
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "cannot open %s", dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t nl = strlen(e->d_name);
        if (nl < 4 || strcmp(e->d_name + nl - 4, ".txt") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "cannot open %s", path);
        cr_assert_eq(fseek(f, 0, SEEK_END), 0);
        long size = ftell(f);
        cr_assert_geq(size, 0);
        rewind(f);
        texts[n] = malloc((size_t)size + 1);
        cr_assert_not_null(texts[n]);
        cr_assert_eq(fread(texts[n], 1, (size_t)size, f), (size_t)size);
        fclose(f);
        lens[n++] = (size_t)size;
    }
    closedir(d);
    return n;
}

Test(tokenize_drivers, avx2_and_scalar_agree_on_the_corpus) {
    char *texts[16];
    size_t lens[16];
    size_t n = read_corpus(texts, lens, 16);
    cr_assert_eq(n, 5, "the bundled corpus has 5 articles, found %zu", n);
    sh_analyzer *en = analyzer("english");
    for (size_t i = 0; i < n; i++) {
        run x = run_with(SH_TOKENIZE_SCALAR, (const uint8_t *)texts[i], lens[i], 0, 0, NULL, 0);
        cr_expect_gt(x.st.n, 100, "article %zu: %zu tokens", i, x.st.n);
        free_run(&x);
        if (sh_tokenize_avx2_available())
            expect_drivers_agree((const uint8_t *)texts[i], lens[i], 0, 0, en, 0, i);
        free(texts[i]);
    }
    sh_analyzer_free(en);
    if (!sh_tokenize_avx2_available())
        cr_skip_test("this CPU has no AVX2 (with BMI1/2): nothing to compare the scalar "
                     "driver with");
}

/* Words that something joins, for the AVX2 driver's mask rules (hyphen
 * chains read in the block, possessives, group commas, what may join at a
 * block's last byte); each is tried at every offset of a block and with
 * several ends, the text in an exact heap copy (so that a read past the
 * end is caught under ASan). */
static const char *const k_joined[] = {
    "mid-March",        "a-b-c-d",         "1987-88",         "U.S.-Japan",
    "x-y's",            "Liptako-Gourma's", "rock-'n'-roll",   "well-known.",
    "5-10,000",         "1.5-2.5",         "155,221-9",       "state-of-the-art",
    "anti-",            "-x",              "a--b",            "a-b-",
    "a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r", "Faso's",          "banks'",
    "don't",            "O'Brien's",       "80's-90's",       "5,",
    "5.",               "5,1",             "1,000,000",       "a-\xc3\xaf",
    "\xc3\xaf-a",       "twenty-three-year-old", "x-1,000-y",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
};

Test(tokenize_drivers, avx2_and_scalar_agree_on_joiners_at_every_block_offset, .timeout = 300) {
    if (!sh_tokenize_avx2_available())
        cr_skip_test("this CPU has no AVX2 (with BMI1/2): nothing to compare the scalar "
                     "driver with");
    static const char *const ends[] = {"", " z", ".", ",", "'s", "-", "-q rest of it"};
    sh_analyzer *en = analyzer("english");
    size_t case_no = 0;
    for (size_t w = 0; w < sizeof k_joined / sizeof k_joined[0]; w++) {
        for (size_t off = 0; off <= 80; off++) {
            for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
                char buf[256];
                /* a word before the padding half of the time, so that the
                 * block starts in different places */
                size_t len = 0;
                if (off % 2) len += (size_t)snprintf(buf, sizeof buf, "Lead ");
                for (size_t j = 0; j < off; j++) buf[len++] = j % 7 == 6 ? 'w' : ' ';
                len += (size_t)snprintf(buf + len, sizeof buf - len, " %s%s", k_joined[w],
                                        ends[k]);
                uint8_t *s = exact_copy((const uint8_t *)buf, len);
                expect_drivers_agree(s, len, 0, 0, en, 0, case_no++);
                free(s);
            }
        }
    }
    sh_analyzer_free(en);
}

Test(tokenize_drivers, forcing_a_driver_checks_its_argument) {
    cr_expect_eq(sh_tokenize_use((sh_tokenize_impl)7), SAHEL_EINVAL);
    cr_expect_eq(sh_tokenize_use(SH_TOKENIZE_SCALAR), 0);
    cr_expect_eq(sh_tokenize_use(SH_TOKENIZE_AVX2),
                 sh_tokenize_avx2_available() ? 0 : SAHEL_EINVAL);
    cr_expect_eq(sh_tokenize_use(SH_TOKENIZE_AUTO), 0);
}

/* ---- the tokenizer's batches ---------------------------------------------- */

typedef struct readable {
    size_t ntokens;
    uint64_t sum; /* of the bytes read, so the reads are not optimised away */
} readable;

static int read_past_terms(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    readable *r = ctx;
    (void)stop;
    cr_assert_geq(n, 1);
    cr_assert_leq(n, SH_TOKEN_BATCH);
    for (size_t i = 0; i < n; i++) {
        uint8_t b[SH_TERM_READABLE];
        memcpy(b, toks[i].term, SH_TERM_READABLE); /* the sanitizer checks this */
        for (size_t k = 0; k < SH_TERM_READABLE; k++) r->sum += b[k];
        r->ntokens++;
    }
    return 0;
}

Test(tokenize, every_term_has_readable_bytes_past_its_start) {
    /* texts that end in short words, numbers, possessives and CJK, in
     * heap blocks of their exact size, through both drivers */
    static const char *const texts[] = {
        "a", "ab", "Mali", "x y z", "1,000", "2.5", "Faso's", "don't", "a-b", "\xe4\xb8\xad",
        "Go\xc3\xafta", "The quick brown fox jumps over the lazy dog near Niamey, 1,250 km",
    };
    for (int d = 0; d < 2; d++) {
        sh_tokenize_impl impl = d ? SH_TOKENIZE_AVX2 : SH_TOKENIZE_SCALAR;
        if (impl == SH_TOKENIZE_AVX2 && !sh_tokenize_avx2_available()) continue;
        cr_assert_eq(sh_tokenize_use(impl), 0);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            size_t len = strlen(texts[i]);
            uint8_t *s = exact_copy((const uint8_t *)texts[i], len);
            readable r = {0};
            cr_assert_eq(sh_tokenize_batch((const char *)s, len, 0, read_past_terms, &r, NULL), 0);
            cr_expect_gt(r.ntokens, 0, "%s", texts[i]);
            free(s);
        }
    }
    cr_assert_eq(sh_tokenize_use(SH_TOKENIZE_AUTO), 0);
}

typedef struct stop_in_batch {
    size_t seen, stop_at; /* stop at the stop_at-th token overall (1-based) */
} stop_in_batch;

static int stop_inside(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    stop_in_batch *b = ctx;
    (void)toks;
    if (b->seen + n < b->stop_at) {
        b->seen += n;
        return 0;
    }
    *stop = b->stop_at - b->seen - 1;
    b->seen = b->stop_at;
    return 5;
}

Test(tokenize, batch_stop_counts_positions_up_to_the_stopping_token) {
    /* 100 words, a hyphenated chain among them (its whole shares a
     * position): the stop lands in the second batch */
    char s[1024];
    size_t len = 0;
    for (int i = 0; i < 100; i++) len += (size_t)sprintf(s + len, i == 10 ? "a-b " : "w%d ", i);
    stop_in_batch b = {.stop_at = 40};
    uint32_t npos = 0;
    cr_assert_eq(sh_tokenize_batch(s, len, 7, stop_inside, &b, &npos), 5);
    /* tokens 1..40: one of them is the whole of a-b, which uses no position */
    cr_expect_eq(npos, 39);

    /* the same through sh_tokenize and a callback */
    npos = 0;
    stream st = {.stop_at = 40};
    cr_assert_eq(sh_tokenize(s, len, 7, record_token, &st, &npos), 99);
    cr_expect_eq(st.n, 40);
    cr_expect_eq(npos, 39);
    free(st.buf);
}

/* ---- the analyzer's pipeline ---------------------------------------------- */

Test(analyze, stop_deep_in_the_pipeline_counts_positions_up_to_it) {
    sh_analyzer *a = analyzer("english");
    char s[4096];
    size_t len = 0;
    for (int i = 0; i < 300; i++) len += (size_t)sprintf(s + len, "Word%d ", i % 37);
    for (size_t stop_at = 1; stop_at <= 300; stop_at += 13) {
        stream st = {.stop_at = stop_at};
        uint32_t npos = 0;
        cr_assert_eq(sh_analyze(a, s, len, 2, 0, record_token, &st, &npos), 99);
        cr_expect_eq(st.n, stop_at);
        cr_expect_eq(npos, stop_at, "stopped at %zu: npos %u", stop_at, npos);
        free(st.buf);
    }
    sh_analyzer_free(a);
}

typedef struct one_by_one {
    sh_analyzer *ref; /* a second analyzer of the same language, fed word by word */
    unsigned flags;
    stream raw;       /* the raw tokens of the text, from sh_tokenize */
    size_t next;      /* raw tokens compared so far */
    size_t offset;    /* where the next one starts in raw.buf */
} one_by_one;

/* The next raw token: its fields h[] and its term. */
static const char *next_raw(one_by_one *o, uint32_t h[6]) {
    cr_assert_lt(o->next, o->raw.n, "more analyzed tokens than raw ones");
    memcpy(h, o->raw.buf + o->offset, 6 * sizeof h[0]);
    const char *word = (const char *)o->raw.buf + o->offset + 6 * sizeof h[0];
    o->offset += 6 * sizeof h[0] + h[0];
    o->next++;
    return word;
}

static int compare_with_term(void *ctx, const sh_token *t) {
    one_by_one *o = ctx;
    for (;;) {
        uint32_t h[6];
        const char *word = next_raw(o, h);
        const char *term;
        size_t tlen;
        cr_assert_eq(sh_analyzer_term(o->ref, word, h[0], o->flags, &term, &tlen), 0);
        if (h[1] != t->start || h[3] != t->pos || h[4] != t->flags) {
            /* a raw token sh_analyze left out: its term normalises to nothing */
            cr_assert_eq(tlen, 0, "%.*s was left out", (int)h[0], word);
            continue;
        }
        cr_assert_eq(t->end, h[2]);
        cr_assert_eq(t->term_len, tlen, "%.*s: %u vs %zu bytes", (int)h[0], word, t->term_len,
                     tlen);
        cr_assert_eq(memcmp(t->term, term, tlen), 0, "%.*s: %.*s vs %.*s", (int)h[0], word,
                     (int)t->term_len, t->term, (int)tlen, term);
        return 0;
    }
}

Test(analyze, pipeline_gives_what_one_word_at_a_time_gives, .timeout = 300) {
    /* each analyzer keeps its cache from text to text, as an indexing
     * run's does, and is compared with one of its own kind fed words */
    sh_analyzer *an[2] = {analyzer("english"), analyzer("none")};
    sh_analyzer *ref[2] = {analyzer("english"), analyzer("none")};
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    uint8_t buf[4096];
    for (size_t i = 0; i < 5000; i++) {
        size_t len = random_text(&x, buf, sizeof buf);
        uint8_t *s = exact_copy(buf, len);
        size_t k = i % 2;
        one_by_one o = {.ref = ref[k], .flags = i % 3 == 0 ? SH_ANALYZE_NOSTEM : 0};
        cr_assert_eq(sh_tokenize((const char *)s, len, 0, record_token, &o.raw, NULL), 0);
        cr_assert_eq(sh_analyze(an[k], (const char *)s, len, 0, o.flags, compare_with_term, &o,
                                NULL),
                     0);
        /* raw tokens after the last analyzed one also normalise to nothing */
        while (o.next < o.raw.n) {
            uint32_t h[6];
            const char *word = next_raw(&o, h);
            const char *term;
            size_t tlen;
            cr_assert_eq(sh_analyzer_term(o.ref, word, h[0], o.flags, &term, &tlen), 0);
            cr_expect_eq(tlen, 0, "case %zu: %.*s was left out", i, (int)h[0], word);
        }
        free(o.raw.buf);
        free(s);
    }
    for (size_t k = 0; k < 2; k++) {
        sh_analyzer_free(an[k]);
        sh_analyzer_free(ref[k]);
    }
}

static int note_memos(void *ctx, const sh_token *t) {
    uint64_t *round = ctx;
    if (t->flags & SH_TOK_NUMERIC) {
        cr_expect_null(t->memo, "numbers are not cached, so they have no memo");
        return 0;
    }
    cr_assert_not_null(t->memo);
    uint64_t m;
    memcpy(&m, t->memo, 8);
    if (*round == 1) {
        /* first sight of the form: zero, then ours */
        if (m == 0) {
            m = t->term_len * 1000 + (uint8_t)t->term[0];
            memcpy(t->memo, &m, 8);
        }
    } else {
        cr_expect_eq(m, t->term_len * 1000 + (uint8_t)t->term[0], "memo of %.*s",
                     (int)t->term_len, t->term);
    }
    return 0;
}

Test(analyze, memo_stays_with_the_cached_form) {
    sh_analyzer *a = analyzer("english");
    char s[16384];
    size_t len = 0;
    for (int i = 0; i < 200; i++)
        len += (size_t)sprintf(s + len, "attacks Attack convoy%d Goïta 2022 anti-jihadist ",
                               i % 50);
    uint64_t round = 1;
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, note_memos, &round, NULL), 0);
    round = 2;
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, note_memos, &round, NULL), 0);
    sh_analyzer_free(a);
}

Test(analyze, ascii_folding_lowers_letters_and_nothing_else) {
    /* random words of letters and digits, 1 to 40 bytes (either side of
     * the 16-byte short key), through the "none" analyzer: the term is
     * the word with A-Z lowered, byte for byte */
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    sh_analyzer *a = analyzer("none");
    uint64_t x = UINT64_C(0x9E3779B97F4A7C15);
    for (size_t i = 0; i < 5000; i++) {
        size_t n = 1 + rng_next(&x) % 40;
        char w[48], want[48];
        for (size_t j = 0; j < n; j++) {
            w[j] = alnum[rng_next(&x) % (sizeof alnum - 1)];
            want[j] = w[j] >= 'A' && w[j] <= 'Z' ? (char)(w[j] + 32) : w[j];
        }
        w[n] = want[n] = '\0';
        /* through the analyzer's own buffer and through a token */
        char buf[SH_MAX_TERM_LEN + 1];
        cr_expect_str_eq(term_of(a, w, 0, buf), want, "word %zu", i);
        uint8_t *s = exact_copy((const uint8_t *)w, n);
        col c = {.n = 0};
        cr_assert_eq(sh_analyze(a, (const char *)s, n, 0, 0, collect, &c, NULL), 0);
        free(s);
        cr_assert_eq(c.n, 1);
        cr_expect_str_eq(c.t[0].term, want, "word %zu", i);
    }
    sh_analyzer_free(a);
}

Test(analyze, keys_around_the_short_key_size_are_told_apart) {
    /* words of 7 to 33 letters (no vowel: the stemmer leaves them alone)
     * that differ only in their last letter, in both cases, through the
     * stem cache twice */
    sh_analyzer *a = analyzer("english");
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 7; n <= 33; n++) {
            char w1[40], w2[40];
            memset(w1, 'q', n);
            memset(w2, 'q', n);
            w2[n - 1] = 'Z';
            col c = two_words(a, w1, w2, n);
            w2[n - 1] = 'z';
            cr_expect_eq(c.t[0].len, n);
            cr_expect_eq(c.t[1].len, n);
            cr_expect_eq(memcmp(c.t[0].term, w1, n), 0, "%zu letters", n);
            cr_expect_eq(memcmp(c.t[1].term, w2, n), 0, "%zu letters", n);
        }
    }
    uint64_t hits, misses;
    sh_analyzer_cache_stats(a, &hits, &misses);
    cr_expect_eq(misses, 2 * 27, "each word stemmed once");
    cr_expect_eq(hits, 2 * 27, "and found the second time");
    sh_analyzer_free(a);
}

/* ---- the stem cache ------------------------------------------------------- */

/* A text of the distinct words first..first+n-1 (vocab_word), space-
 * separated, in a malloc'd block; *len receives its length. */
static size_t vocab_word(size_t i, char *out);

static char *vocab_text(size_t first, size_t n, size_t *len) {
    char *s = malloc(n * 220 + 1);
    cr_assert_not_null(s);
    size_t at = 0;
    for (size_t i = first; i < first + n; i++) {
        at += vocab_word(i, s + at);
        s[at++] = ' ';
    }
    *len = at;
    return s;
}

/* The i-th word of a vocabulary that exercises the cache: distinct for
 * distinct i (i is spelled into it in base 20, in consonants), of every
 * kind the cache tells apart: English-like words that the stemmer cuts,
 * in mixed case; keys of 17 to 128 bytes that share their first 16; words
 * past 128 bytes (cut by the tokenizer); non-ASCII ones (folded with
 * utf8proc, stripped of accents); numbers (never cached). */
static size_t vocab_word(size_t i, char *out) {
    static const char *const stems[] = {"attack", "Convoy", "NATION", "relat", "happ", "run"};
    static const char *const ends[] = {"ing", "s", "ed", "ies", "ational", "ly", "", "ness"};
    static const char *const accented[] = {"Go\xc3\xafta", "Stra\xc3\x9f" "e", "caf\xc3\xa9",
                                           "\xd0\x98\xd0\xbd\xd1\x84", "\xce\x9b\xcf\x8c"};
    size_t len = 0;
    switch (i % 8) {
    case 4: /* a long key: 16 shared bytes, then the number, then more */
        len = (size_t)sprintf(out, "Qwrtpsdfghjklzxc");
        break;
    case 5:
        len = (size_t)sprintf(out, "%s", accented[(i / 8) % 5]);
        break;
    case 6:
        break;
    case 7:
        len = (size_t)sprintf(out, "x%zu", i);
        return len;
    default:
        len = (size_t)sprintf(out, "%s", stems[(i / 8) % 6]);
        break;
    }
    /* the number, in consonants, before the ending so the stemmer sees
     * a real suffix; a long key's ending pads it out to 17-128 bytes */
    size_t n = i;
    do {
        out[len++] = "bcdfghjklmnpqrstvwxz"[n % 20];
        n /= 20;
    } while (n);
    if (i % 8 == 4 || i % 64 == 6) {
        /* 17 to 128 bytes, or past 128 (cut) */
        size_t extra = i % 8 == 4 ? (i / 8) % 100 : 150;
        memset(out + len, 'r', extra);
        len += extra;
    } else if (i % 8 < 4) {
        len += (size_t)sprintf(out + len, "%s", ends[(i / 8) % 8]);
    }
    return len;
}

/* Analyze s[0..len) with a and expect each token's term to be the one
 * ref gives its word (sh_analyzer_term), ref being set up differently. */
static void expect_like_word_by_word(sh_analyzer *a, sh_analyzer *ref, const char *s, size_t len,
                                     unsigned flags) {
    one_by_one o = {.ref = ref, .flags = flags};
    cr_assert_eq(sh_tokenize(s, len, 0, record_token, &o.raw, NULL), 0);
    cr_assert_eq(sh_analyze(a, s, len, 0, flags, compare_with_term, &o, NULL), 0);
    while (o.next < o.raw.n) {
        uint32_t h[6];
        const char *word = next_raw(&o, h);
        const char *term;
        size_t tlen;
        cr_assert_eq(sh_analyzer_term(ref, word, h[0], flags, &term, &tlen), 0);
        cr_expect_eq(tlen, 0, "%.*s was left out", (int)h[0], word);
    }
    free(o.raw.buf);
}

/* A memo derived from the term alone, for the memo checks. */
static uint64_t term_memo(const sh_token *t) {
    uint64_t h = UINT64_C(1469598103934665603);
    for (uint32_t i = 0; i < t->term_len; i++) h = (h ^ (uint8_t)t->term[i]) * 1099511628211u;
    return h | 1;
}

static int set_memos(void *ctx, const sh_token *t) {
    (void)ctx;
    if (!t->memo) return 0;
    uint64_t m;
    memcpy(&m, t->memo, 8);
    cr_assert(m == 0 || m == term_memo(t), "memo of %.*s", (int)t->term_len, t->term);
    m = term_memo(t);
    memcpy(t->memo, &m, 8);
    return 0;
}

static int check_memos(void *ctx, const sh_token *t) {
    size_t *checked = ctx;
    if (!t->memo) return 0;
    uint64_t m;
    memcpy(&m, t->memo, 8);
    cr_assert_eq(m, term_memo(t), "memo of %.*s lost", (int)t->term_len, t->term);
    ++*checked;
    return 0;
}

Test(stem_cache, growth_keeps_every_entry_its_term_and_its_memo, .timeout = 300) {
    /* 40,000 distinct forms: the table grows from 4K slots to 64K; the
     * reference has a table of 16 slots, a wholly different layout */
    sh_analyzer *a = analyzer("english");
    sh_analyzer *ref = analyzer("english");
    cr_assert_eq(sh_analyzer_cap_table(ref, 16), 0);
    size_t total = 40000, per = 2000;
    for (size_t w = 0; w < total; w += per) {
        size_t len;
        char *s = vocab_text(w, per, &len);
        expect_like_word_by_word(a, ref, s, len, 0);
        cr_assert_eq(sh_analyze(a, s, len, 0, 0, set_memos, NULL, NULL), 0);
        free(s);
    }
    uint64_t hits, misses;
    sh_analyzer_cache_stats(a, &hits, &misses);
    /* every word but the numbers is cached; each form missed once */
    cr_expect_eq(misses, total - total / 8);
    size_t len, checked = 0;
    char *s = vocab_text(0, total, &len);
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, check_memos, &checked, NULL), 0);
    free(s);
    uint64_t hits2, misses2;
    sh_analyzer_cache_stats(a, &hits2, &misses2);
    cr_expect_eq(misses2, misses, "the grown table lost entries");
    cr_expect_eq(checked, total - total / 8);
    cr_expect_eq(hits2 - hits, checked);
    cr_expect_gt(sh_analyzer_memory(a), (size_t)65536 * 32, "the table did not grow");
    sh_analyzer_free(a);
    sh_analyzer_free(ref);
}

Test(stem_cache, table_grows_within_the_cache_limit) {
    /* at the smallest limit, 2 MiB for the chunks and the table, the
     * table grows to 32K slots (1 MiB beside the 1 MiB chunk) rather than
     * quadruple past the limit: 20,000 forms stay cached */
    sh_analyzer *a = analyzer("english");
    sh_analyzer_set_cache_limit(a, 0);
    size_t len, n = 0;
    char *s = vocab_text(0, 22857, &len); /* 20,000 cached forms, and numbers */
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, count_tokens, &n, NULL), 0);
    uint64_t hits, misses;
    sh_analyzer_cache_stats(a, &hits, &misses);
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, count_tokens, &n, NULL), 0);
    uint64_t hits2, misses2;
    sh_analyzer_cache_stats(a, &hits2, &misses2);
    cr_expect_eq(misses2, misses, "forms were lost to a clear");
    cr_expect_eq(hits2 - hits, misses);
    /* the limit, plus the analyzer's own scratch (under 64 KiB) */
    cr_expect_leq(sh_analyzer_memory(a), ((size_t)2 << 20) + 65536);
    free(s);
    sh_analyzer_free(a);
}

Test(stem_cache, small_table_fills_to_three_quarters_then_clears) {
    /* 16 slots (5 rounds up to 16) hold 12 entries; the 13th empties the
     * cache; 100 rounds up to 128 slots, which hold 96 */
    static const size_t asked[] = {5, 100}, room[] = {12, 96};
    for (size_t k = 0; k < 2; k++) {
        sh_analyzer *a = analyzer("english");
        cr_assert_eq(sh_analyzer_cap_table(a, asked[k]), 0);
        size_t len;
        char *s = vocab_text(0, room[k] * 8 / 7 + 1, &len); /* room[k] + 1 cached forms */
        /* exactly room[k] cached words: the text's prefix up to them */
        size_t cached = 0, cut = 0;
        for (size_t i = 0, at = 0; at < len; i++) {
            char w[256];
            size_t wl = vocab_word(i, w);
            if (i % 8 != 7 && cached++ == room[k]) {
                cut = at;
                break;
            }
            at += wl + 1;
        }
        cr_assert_gt(cut, 0);
        uint64_t hits, misses;
        for (int pass = 0; pass < 2; pass++) {
            size_t n = 0;
            cr_assert_eq(sh_analyze(a, s, cut, 0, 0, count_tokens, &n, NULL), 0);
        }
        sh_analyzer_cache_stats(a, &hits, &misses);
        cr_expect_eq(misses, room[k], "%zu slots: every form once", asked[k]);
        cr_expect_eq(hits, room[k], "%zu slots: all found the second time", asked[k]);
        /* one more form empties the cache: the first ones miss again */
        size_t n = 0;
        cr_assert_eq(sh_analyze(a, s, len, 0, 0, count_tokens, &n, NULL), 0);
        cr_assert_eq(sh_analyze(a, s, cut, 0, 0, count_tokens, &n, NULL), 0);
        sh_analyzer_cache_stats(a, &hits, &misses);
        cr_expect_eq(misses, 2 * room[k] + 1, "%zu slots: not emptied", asked[k]);
        free(s);
        sh_analyzer_free(a);
    }
}

Test(stem_cache, small_table_collides_wraps_clears_and_gives_the_same_terms, .timeout = 300) {
    /* with 16 slots nearly every probe collides, many wrap around the
     * end of the table, and the cache empties every 12 forms: the terms
     * must be those of an analyzer with the default table, word by word */
    sh_analyzer *small[2] = {analyzer("english"), analyzer("none")};
    sh_analyzer *ref[2] = {analyzer("english"), analyzer("none")};
    for (size_t k = 0; k < 2; k++) cr_assert_eq(sh_analyzer_cap_table(small[k], 16), 0);
    uint64_t x = UINT64_C(0x243F6A8885A308D3);
    uint8_t buf[4096];
    for (size_t i = 0; i < 3000; i++) {
        size_t len;
        uint8_t *s;
        if (i % 2) {
            len = random_text(&x, buf, sizeof buf);
            s = exact_copy(buf, len);
        } else {
            char *v = vocab_text(rng_next(&x) % 5000, 20, &len);
            s = exact_copy((const uint8_t *)v, len);
            free(v);
        }
        size_t k = i % 4 == 3;
        unsigned flags = i % 3 == 0 ? SH_ANALYZE_NOSTEM : 0;
        expect_like_word_by_word(small[k], ref[k], (const char *)s, len, flags);
        free(s);
    }
    for (size_t k = 0; k < 2; k++) {
        sh_analyzer_free(small[k]);
        sh_analyzer_free(ref[k]);
    }
}

Test(stem_cache, long_keys_are_told_apart_by_their_tails) {
    /* keys of 17 to 128 bytes, all with the same first 16 and no vowel
     * (the stemmer leaves them alone), two per length that differ in the
     * last byte only; words past 128 bytes are cut to it, so the two of
     * each such length meet in one term.  Through a table of 16 slots
     * and the default one, twice, in either case. */
    for (int small = 0; small < 2; small++) {
        sh_analyzer *a = analyzer("english");
        if (small) cr_assert_eq(sh_analyzer_cap_table(a, 16), 0);
        for (int pass = 0; pass < 2; pass++) {
            for (size_t n = 17; n <= 140; n++) {
                char w1[160], w2[160];
                memset(w1, pass ? 'Q' : 'q', n);
                memset(w2, pass ? 'Q' : 'q', n);
                memcpy(w1, "qwrtpsdfghjklzxc", 16);
                memcpy(w2, "qwrtpsdfghjklzxc", 16);
                w2[n - 1] = 'z';
                col c = two_words(a, w1, w2, n);
                size_t kept = n < SH_MAX_TERM_LEN ? n : SH_MAX_TERM_LEN;
                for (size_t j = 0; j < n; j++) {
                    w1[j] = (char)(w1[j] | 0x20);
                    w2[j] = (char)(w2[j] | 0x20);
                }
                cr_expect_eq(c.t[0].len, kept);
                cr_expect_eq(memcmp(c.t[0].term, w1, kept), 0, "%zu bytes: %s", n, c.t[0].term);
                cr_expect_eq(memcmp(c.t[1].term, w2, kept), 0, "%zu bytes: %s", n, c.t[1].term);
            }
        }
        uint64_t hits, misses;
        sh_analyzer_cache_stats(a, &hits, &misses);
        /* 112 lengths (17-128) of two keys each; the words past 128
         * bytes are all cut to the first key of 128 */
        if (!small) {
            cr_expect_eq(misses, 2 * 112, "each key stemmed once");
            cr_expect_eq(hits, 2 * 2 * 124 - misses, "and found every other time");
        }
        sh_analyzer_free(a);
    }
}

Test(stem_cache, non_ascii_keys_fold_stem_and_strip_through_the_cache) {
    static const struct {
        const char *lang, *word, *term;
    } cases[] = {
        {"english", "Goïta", "goita"},
        {"english", "GOÏTA", "goita"},
        {"english", "Straße", "strass"},
        {"english", "CAFÉS", "cafe"},
        {"english", "naïvely", "naiv"},
        {"english", "ΛΌΓΟΣ", "λογοσ"},
        {"french", "attaquées", "attaqu"},
        {"french", "attaquees", "attaque"},
        {"german", "Häuser", "haus"},
        {"russian", "Информирайте", "информира"},
    };
    for (int small = 0; small < 2; small++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            sh_analyzer *a = analyzer(cases[i].lang);
            if (small) cr_assert_eq(sh_analyzer_cap_table(a, 16), 0);
            char s[200];
            snprintf(s, sizeof s, "%s %s", cases[i].word, cases[i].word);
            col c = analyze(a, s, 0);
            expect_terms(&c, (const char *[]){cases[i].term, cases[i].term}, 2);
            char buf[SH_MAX_TERM_LEN + 1];
            cr_expect_str_eq(term_of(a, cases[i].word, 0, buf), cases[i].term);
            uint64_t hits, misses;
            sh_analyzer_cache_stats(a, &hits, &misses);
            cr_expect_eq(misses, 1, "%s: stemmed once", cases[i].word);
            cr_expect_eq(hits, 2, "%s: then found", cases[i].word);
            sh_analyzer_free(a);
        }
    }
}

Test(stem_cache, ascii_words_stem_as_libstemmers_utf8_stemmer_stems_them) {
    /* ASCII keys go to the language's ISO-8859-1 stemmer where it has
     * one: the stems must be those of the UTF-8 stemmer, for languages
     * with (the first ones) and without (russian, greek) such a stemmer */
    static const char *const langs[] = {"english", "porter", "french", "german", "spanish",
                                        "dutch", "finnish", "swedish", "russian", "greek"};
    static const char letters[] = "aeiouyaeiousbcdfghlmnprstvwyzsingedlyation";
    for (size_t l = 0; l < sizeof langs / sizeof langs[0]; l++) {
        sh_analyzer *a = analyzer(langs[l]);
        struct sb_stemmer *st = sb_stemmer_new(langs[l], "UTF_8");
        cr_assert_not_null(st);
        uint64_t x = UINT64_C(0x9E3779B97F4A7C15) + l;
        for (size_t i = 0; i < 4000; i++) {
            char w[32];
            size_t n = 1 + rng_next(&x) % 20;
            for (size_t j = 0; j < n; j++) w[j] = letters[rng_next(&x) % (sizeof letters - 1)];
            w[n] = '\0';
            const sb_symbol *want = sb_stemmer_stem(st, (const sb_symbol *)w, (int)n);
            cr_assert_not_null(want);
            int wl = sb_stemmer_length(st);
            const char *t;
            size_t tl;
            cr_assert_eq(sh_analyzer_term(a, w, n, 0, &t, &tl), 0);
            cr_expect(tl == (size_t)wl && memcmp(t, want, tl) == 0, "%s: %s -> %.*s, not %.*s",
                      langs[l], w, (int)tl, t, wl, (const char *)want);
        }
        sb_stemmer_delete(st);
        sh_analyzer_free(a);
    }
}

Test(stem_cache, allocation_failures_while_growing_leave_a_working_cache, .timeout = 300) {
    /* 4,000 distinct words: the first chunk of records, and the table
     * grows from 4K slots to 16K.  Each allocation fails in turn: the
     * analysis reports SAHEL_ENOMEM, and the same analyzer then gives
     * the terms of one that never failed, and frees all it holds */
    size_t len;
    char *s = vocab_text(0, 4000, &len);
    stream want = {0};
    sh_analyzer *ref = analyzer("english");
    cr_assert_eq(sh_analyze(ref, s, len, 0, 0, record_token, &want, NULL), 0);
    sh_analyzer_free(ref);
    bool succeeded = false;
    size_t failed_in_analysis = 0;
    for (uint64_t fail_at = 1; !succeeded && fail_at < 100; fail_at++) {
        sh_test_failalloc fa = {.fail_at = fail_at};
        sh_test_failalloc_install(&fa);
        sh_analyzer *a = NULL;
        sahel_error err = {0};
        int rc = sh_analyzer_new("english", &a, &err);
        if (rc) {
            cr_expect_eq(rc, SAHEL_ENOMEM);
        } else {
            stream got = {0};
            rc = sh_analyze(a, s, len, 0, 0, record_token, &got, NULL);
            succeeded = rc == 0 && fa.failures == 0;
            if (rc) {
                cr_expect_eq(rc, SAHEL_ENOMEM, "allocation %llu", (unsigned long long)fail_at);
                failed_in_analysis++;
                fa.fail_at = 0;
                free(got.buf);
                got = (stream){0};
                cr_assert_eq(sh_analyze(a, s, len, 0, 0, record_token, &got, NULL), 0);
            }
            cr_expect_eq(got.n, want.n, "allocation %llu", (unsigned long long)fail_at);
            cr_expect(got.len == want.len && memcmp(got.buf, want.buf, want.len) == 0,
                      "allocation %llu: other terms after the failure",
                      (unsigned long long)fail_at);
            free(got.buf);
            /* a failed cap_table leaves the cache empty but working */
            fa.fail_at = fa.calls + 1;
            cr_expect_eq(sh_analyzer_cap_table(a, 64), SAHEL_ENOMEM);
            fa.fail_at = 0;
            size_t n = 0;
            cr_expect_eq(sh_analyze(a, s, len, 0, 0, count_tokens, &n, NULL), 0);
            sh_analyzer_free(a);
        }
        sahel_set_allocator(NULL);
        cr_expect_eq(fa.live, 0, "blocks leaked when allocation %llu failed",
                     (unsigned long long)fail_at);
    }
    cr_expect(succeeded);
    cr_expect_geq(failed_in_analysis, 2, "the chunk and the table's growth both failed once");
    free(want.buf);
    free(s);
}

static int stop_at_second(void *ctx, const sh_token *t) {
    (void)t;
    size_t *n = ctx;
    return ++*n == 2 ? 7 : 0;
}

Test(stem_cache, counters_are_those_of_one_lookup_at_a_time) {
    /* the pipeline looks each token up just before its callback: a scan
     * stopped at the second token has looked up two, and a word that
     * repeats in a batch misses once */
    sh_analyzer *a = analyzer("english");
    size_t n = 0;
    const char *s = "alpha beta gamma delta alpha";
    cr_expect_eq(sh_analyze(a, s, strlen(s), 0, 0, stop_at_second, &n, NULL), 7);
    uint64_t hits, misses;
    sh_analyzer_cache_stats(a, &hits, &misses);
    cr_expect_eq(misses, 2);
    cr_expect_eq(hits, 0);
    n = 0;
    cr_expect_eq(sh_analyze(a, s, strlen(s), 0, 0, count_tokens, &n, NULL), 0);
    sh_analyzer_cache_stats(a, &hits, &misses);
    cr_expect_eq(misses, 4, "gamma and delta are new");
    cr_expect_eq(hits, 3, "alpha, beta, alpha again");
    sh_analyzer_free(a);
}

/* ---- sh_analyze_batched: the same tokens, a batch at a time ------------ */

/* A batch callback that hands each token of its batch to a token
 * callback, only once the whole batch is there: a term or memo pointer
 * that went stale while the batch was gathered is read stale. */
typedef struct batched {
    sh_token_fn fn;
    void *ctx;
    size_t calls, tokens;
} batched;

static int each_of_batch(void *ctx, const sh_token *toks, size_t n, size_t *stop) {
    batched *b = ctx;
    cr_assert(n >= 1 && n <= SH_TOKEN_BATCH, "a batch of %zu tokens", n);
    b->calls++;
    for (size_t i = 0; i < n; i++) {
        b->tokens++;
        int rc = b->fn(b->ctx, &toks[i]);
        if (rc) {
            *stop = i;
            return rc;
        }
    }
    return 0;
}

/* Analyze s[0..len) one token at a time with a, and a batch at a time
 * with b (set up alike), both stopped at token stop_at (0: never): the
 * same tokens, return value and positions used. */
static void expect_batched_like_one_at_a_time(sh_analyzer *a, sh_analyzer *b, const char *s,
                                              size_t len, size_t stop_at, unsigned flags,
                                              size_t case_no) {
    run x = {.st = {.stop_at = stop_at}}, y = {.st = {.stop_at = stop_at}};
    x.rc = sh_analyze(a, s, len, 3, flags, record_token, &x.st, &x.npos);
    batched bt = {.fn = record_token, .ctx = &y.st};
    y.rc = sh_analyze_batched(b, s, len, 3, flags, each_of_batch, &bt, &y.npos);
    expect_same_run(&x, &y, "batched", case_no);
    if (y.st.n > SH_TOKEN_BATCH)
        cr_expect_lt(bt.calls, y.st.n, "case %zu: %zu calls for %zu tokens", case_no, bt.calls,
                     y.st.n);
    free_run(&x);
    free_run(&y);
}

Test(analyze_batched, gives_the_tokens_of_one_at_a_time, .timeout = 300) {
    /* pairs of analyzers: English, no stemming, and English with tables
     * of 16 slots, which empty themselves in the middle of batches */
    sh_analyzer *one[3] = {analyzer("english"), analyzer("none"), analyzer("english")};
    sh_analyzer *bat[3] = {analyzer("english"), analyzer("none"), analyzer("english")};
    cr_assert_eq(sh_analyzer_cap_table(one[2], 16), 0);
    cr_assert_eq(sh_analyzer_cap_table(bat[2], 16), 0);
    uint64_t x = UINT64_C(0x2545F4914F6CDD1D);
    uint8_t buf[4096];
    for (size_t i = 0; i < 3000; i++) {
        size_t len = random_text(&x, buf, sizeof buf);
        uint8_t *s = exact_copy(buf, len);
        size_t k = i % 3;
        unsigned flags = i % 5 == 0 ? SH_ANALYZE_NOSTEM : 0;
        expect_batched_like_one_at_a_time(one[k], bat[k], (const char *)s, len, 0, flags, i);
        free(s);
    }
    /* forms of every kind the cache tells apart, most of them new */
    for (size_t w = 0; w < 6000; w += 1500) {
        size_t len;
        char *s = vocab_text(w, 1500, &len);
        for (size_t k = 0; k < 3; k++)
            expect_batched_like_one_at_a_time(one[k], bat[k], s, len, 0, 0, w);
        free(s);
    }
    for (size_t k = 0; k < 3; k++) {
        sh_analyzer_free(one[k]);
        sh_analyzer_free(bat[k]);
    }
}

Test(analyze_batched, stop_counts_positions_up_to_the_stopping_token, .timeout = 300) {
    sh_analyzer *a = analyzer("english"), *b = analyzer("english");
    uint64_t x = UINT64_C(0x853C49E6748FEA9B);
    uint8_t buf[4096];
    for (size_t i = 0; i < 400; i++) {
        size_t len = random_text(&x, buf, sizeof buf);
        uint8_t *s = exact_copy(buf, len);
        /* the first token, one deep in a batch, and past the last */
        size_t stops[] = {1, 1 + i % 97, 2 * SH_TOKEN_BATCH + 5, 100000};
        for (size_t k = 0; k < 4; k++)
            expect_batched_like_one_at_a_time(a, b, (const char *)s, len, stops[k], 0, i);
        free(s);
    }
    sh_analyzer_free(a);
    sh_analyzer_free(b);
}

Test(analyze_batched, memos_written_in_a_batch_stay_with_their_forms) {
    sh_analyzer *a = analyzer("english");
    size_t len;
    char *s = vocab_text(0, 5000, &len);
    batched bt = {.fn = set_memos};
    cr_assert_eq(sh_analyze_batched(a, s, len, 0, 0, each_of_batch, &bt, NULL), 0);
    size_t checked = 0;
    cr_assert_eq(sh_analyze(a, s, len, 0, 0, check_memos, &checked, NULL), 0);
    cr_expect_eq(checked, 5000 - 5000 / 8, "every cached form has its memo");
    free(s);
    sh_analyzer_free(a);
}
