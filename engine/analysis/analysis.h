/*
 * analysis.h - the one analysis pipeline, used for documents at index time
 * and for queries at search time, so that both are analysed alike.
 *
 * UTF-8 in, terms with positions and byte offsets out:
 *
 *   tokenize  maximal runs of Unicode letters, marks and digits (any
 *             script; each CJK ideograph is a token of its own), with
 *             - apostrophes (' and U+2019) inside a word: a trailing 's is a
 *               possessive and dropped ("Faso's" -> faso), other apostrophes
 *               are removed and the parts joined ("don't" -> dont);
 *             - hyphens between word characters ("Liptako-Gourma"): each
 *               part is a token at its own position, and the whole, joined
 *               without hyphens, is one more token at the first part's
 *               position (flag SH_TOK_WHOLE), so both the parts and the
 *               whole are findable;
 *             - digit groups: "5,100" -> 5100 (commas between digits are
 *               dropped), "2.5" stays 2.5.
 *   fold      case folding (ASCII fast path, utf8proc for the rest)
 *   stem      Snowball (libstemmer) for the analyser's language, cached so
 *             that each distinct surface form is stemmed once; tokens with
 *             digits are not stemmed
 *   strip     diacritics removed after stemming (Goïta -> goita), so that a
 *             future French stemmer still sees the accents it reads.
 *
 * Sections by implementing file:
 *   tokenize.c   sh_tokenize (no folding, no stemming)
 *   analyzer.c   sh_analyzer: fold + stem cache + strip
 */
#ifndef SAHEL_ANALYSIS_H
#define SAHEL_ANALYSIS_H

#include "../common/common.h"

/* Longest term kept, in bytes after normalisation; longer tokens are cut
 * to this length at a character boundary (as Lucene caps at 255 chars). */
#define SH_MAX_TERM_LEN 128

enum {
    SH_TOK_WHOLE = 1,   /* the joined whole of a hyphenated word; same position as its first part */
    SH_TOK_PART = 2,    /* one part of a hyphenated word */
    SH_TOK_NUMERIC = 4, /* the token contains a digit */
};

typedef struct sh_token {
    const char *term;  /* normalised term; valid during the callback only */
    uint32_t term_len;
    uint32_t start;    /* byte offsets of the surface form in the input */
    uint32_t end;
    uint32_t pos;      /* position: first_pos + index among non-WHOLE tokens */
    uint32_t flags;    /* SH_TOK_* */
    /* sh_analyze only: 8 bytes kept with this surface form's entry in the
     * stem cache, zero when the entry is made, for the caller to memoize
     * what it derives from the term (the writer: its term id).  NULL when
     * the form is not cached.  Lost when the cache is cleared; no two
     * callers may share an analyzer's memos.  The pointer, like term, is
     * valid during the callback only (and only until the callback itself
     * calls into the analyzer, whose cache may then move its entries). */
    uint8_t *memo;
} sh_token;

/* Return 0 to go on, non-zero to stop the analysis with that value. */
typedef int (*sh_token_fn)(void *ctx, const sh_token *tok);

/* ---- tokenize.c --------------------------------------------------------- */

/* Split text into raw tokens: term = the surface bytes with apostrophes
 * and digit-group commas removed, possessive 's dropped, NOT case folded.
 * Invalid UTF-8 bytes are treated as separators.  Positions start at
 * first_pos.  *npos (may be NULL) receives the number of positions used.
 * Returns 0, the callback's non-zero value, or SAHEL_ETOOBIG when len does
 * not fit the 32-bit offsets. */
int sh_tokenize(const char *text, size_t len, uint32_t first_pos, sh_token_fn fn,
                void *ctx, uint32_t *npos);

/* The same tokens in batches, for the analyzer, which overlaps the cache
 * lookups of a batch: fn gets n (1..SH_TOKEN_BATCH) consecutive tokens,
 * their terms valid during the call only.  It returns 0 to go on, or a
 * non-zero value that stops the scan and is returned, with *stop set to
 * the index of the token that stopped it; that token's position counts as
 * used (*npos), later ones of the batch do not, as if they had not been
 * scanned.  Every term has SH_TERM_READABLE bytes readable from its start,
 * even when shorter (terms near the end of the text are copied), so that
 * the analyzer can load short terms whole and mask them.  Otherwise as
 * sh_tokenize, which is this with a loop over the batch calling its fn. */
#define SH_TOKEN_BATCH 32
#define SH_TERM_READABLE 16
typedef int (*sh_tokens_fn)(void *ctx, const sh_token *toks, size_t n, size_t *stop);
int sh_tokenize_batch(const char *text, size_t len, uint32_t first_pos, sh_tokens_fn fn,
                      void *ctx, uint32_t *npos);

/* The tokenizer's drivers (see tokenize.c): the portable scalar one and
 * the AVX2 one, which give the same tokens.  sh_tokenize (and so
 * sh_analyze) uses AVX2 when the CPU has it, unless told otherwise here;
 * only tests (comparing the two) and benchmarks (timing each) tell it. */
typedef enum sh_tokenize_impl {
    SH_TOKENIZE_AUTO = 0,   /* AVX2 when the CPU has it, else scalar (the default) */
    SH_TOKENIZE_SCALAR = 1,
    SH_TOKENIZE_AVX2 = 2,
} sh_tokenize_impl;

/* Whether this build and CPU can run the AVX2 driver (x86-64 with AVX2,
 * BMI1 and BMI2). */
bool sh_tokenize_avx2_available(void);

/* Make every later sh_tokenize in the process use impl.  Returns 0, or
 * SAHEL_EINVAL (nothing changed) for SH_TOKENIZE_AVX2 when it is not
 * available, or for a value that is not an sh_tokenize_impl.  Not to be
 * called while another thread tokenizes, as that call could use either. */
int sh_tokenize_use(sh_tokenize_impl impl);

/* ---- analyzer.c --------------------------------------------------------- */

typedef struct sh_analyzer sh_analyzer;

/* lang: a Snowball algorithm name ("english", ...) or "none" (fold only).
 * SAHEL_EINVAL when libstemmer does not know it. */
int sh_analyzer_new(const char *lang, sh_analyzer **out, sahel_error *err);
void sh_analyzer_free(sh_analyzer *a);
/* Bound the stem cache (its record chunks and table) to about `bytes`
 * (at least 2 MiB): past it the cache is emptied and fills again.  The
 * default is the cache's own bound (64 MiB of records, 32 MiB of table). */
void sh_analyzer_set_cache_limit(sh_analyzer *a, size_t bytes);
/* For tests: empty the stem cache and give it a table of nslots slots
 * (rounded up to a power of two, from 16 to the cache's own bound) that
 * never grows: one entry past 3/4 full empties the cache.  A small table
 * makes probes that collide, wrap around the table and end in clears.
 * Returns 0, or SAHEL_ENOMEM with the cache empty, its table as it was. */
int sh_analyzer_cap_table(sh_analyzer *a, size_t nslots);
/* Bytes the analyzer holds (its cache and scratch), for memory budgets. */
size_t sh_analyzer_memory(const sh_analyzer *a);
const char *sh_analyzer_lang(const sh_analyzer *a);

enum {
    SH_ANALYZE_NOSTEM = 1, /* fold and strip, but do not stem (prefix queries) */
};

/* Tokenize, fold, stem, strip; call fn for each token (term normalised;
 * a token whose term normalises to nothing is not reported, its position
 * is still used).  Returns 0, fn's non-zero value, SAHEL_ENOMEM or
 * SAHEL_ETOOBIG (as sh_tokenize).
 * The analyzer is not thread-safe (it owns the stem cache and scratch). */
int sh_analyze(sh_analyzer *a, const char *text, size_t len, uint32_t first_pos,
               unsigned flags, sh_token_fn fn, void *ctx, uint32_t *npos);

/* sh_analyze with the tokens in batches: fn gets 1..SH_TOKEN_BATCH
 * consecutive analysed tokens at a time, in order, so that a caller whose
 * work per token is a lookup in a big table (the writer: a term's entry)
 * can fetch a batch's entries before it uses them.  Their term and memo
 * pointers are valid during the call only, and fn must not call into the
 * analyzer.  fn returns 0 to go on, or a non-zero value that stops the
 * analysis and is returned, with *stop set to the index of the token
 * that stopped it: that token's position counts as used (*npos), later
 * ones do not.  Otherwise as sh_analyze. */
int sh_analyze_batched(sh_analyzer *a, const char *text, size_t len, uint32_t first_pos,
                       unsigned flags, sh_tokens_fn fn, void *ctx, uint32_t *npos);

/* Normalise one already-tokenized word (fold, stem unless NOSTEM or the
 * word has a digit, strip), cut to SH_MAX_TERM_LEN as the tokenizer cuts.
 * *out points into the analyzer's scratch, valid until its next call.
 * Returns 0, SAHEL_EINVAL when word is not valid UTF-8, or SAHEL_ENOMEM. */
int sh_analyzer_term(sh_analyzer *a, const char *word, size_t len, unsigned flags,
                     const char **out, size_t *out_len);

/* Stem cache counters, for tests and benchmarks. */
void sh_analyzer_cache_stats(const sh_analyzer *a, uint64_t *hits, uint64_t *misses);

#endif /* SAHEL_ANALYSIS_H */
