/*
 * corpusgen.c - writes a synthetic news corpus of any size (1 GB and
 * beyond) whose vocabulary, term-frequency skew and article lengths are
 * those of a real corpus, for build-time and scaling measurements where
 * no real corpus is large enough.
 *
 *   corpusgen --size SIZE [--calibrate CORPUS.jsonl] [--seed N] > out.jsonl
 *   corpusgen --calibrate CORPUS.jsonl --dump-model > corpusgen_model.h
 *
 * SIZE is bytes with an optional suffix: k, M, G, T (powers of 10, as MB
 * everywhere in bench/) or KiB, MiB, GiB, TiB.  Articles are written until
 * the output reaches SIZE bytes (the last article takes it past by less
 * than one article).  Each line is one JSON object,
 *   {"id","title","text","date","source"}
 * as sahel_ingest, querygen and the peers read it.
 *
 * The model (measured by --calibrate, else the built-in one in
 * corpusgen_model.h, which is --dump-model's output for Reuters-21578):
 *   words   a token is, with probability 1 - tail_mass, a word of the
 *           calibration vocabulary drawn with its measured frequency (the
 *           head: the most frequent forms as the tokenizer gives them,
 *           case kept), and otherwise a word of the tail: tail rank k >= 1
 *           drawn with probability proportional to (nhead + k)^-s up to
 *           TAIL_RANKS, written as a made-up word that spells k in
 *           consonant-vowel syllables.  So the head has the real skew, and
 *           the vocabulary keeps growing with size as a real one does
 *           (Heaps' law) instead of stopping at the calibration corpus's.
 *           tail_mass is the Good-Turing estimate of the chance that a
 *           token is a word not seen yet (hapaxes / tokens), plus the
 *           measured share of the words beyond the head.
 *   s       the Zipf exponent of the tail, chosen so that a corpus of the
 *           calibration corpus's size gets, in expectation, the number of
 *           distinct words it has.  (A least-squares fit of the
 *           rank-frequency curve does not do: the curve steepens with rank,
 *           and a fitted exponent gives twice the real vocabulary.)
 *   lengths title and body lengths in tokens are log-normal with the
 *           calibration corpus's mean and standard deviation (article
 *           lengths are right-skewed; a normal would give negative ones).
 *   layout  sentences of 8..30 tokens end with ". ", paragraphs of 2..6
 *           sentences with "\n"; dates uniform over 1990..2024 (day 1..28);
 *           the source one of a few made-up outlets.
 *
 * Determinism: one random stream (splitmix64) from the seed; the output
 * depends only on the seed, SIZE and the calibration corpus's bytes.
 * Program-level code: failures exit with a message.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "analysis/analysis.h"
#include "harness/harness.h"

#define DEFAULT_SEED UINT64_C(20240601)
/* The largest vocabulary kept from a calibration corpus: the words beyond
 * it are rare enough to be left to the tail. */
#define HEAD_MAX 200000
/* Head words written by --dump-model, and so built in: with the tail's
 * exponent matched to the vocabulary, 1000 words are enough (18 MB from
 * the built-in model hold 86,000 distinct words, Reuters-21578's 18 MB
 * 81,000), in a 16 KB table. */
#define DUMP_HEAD 1000
/* Bounds of the tail exponent: above 1, the tail's mass does not hang on
 * TAIL_RANKS.  Past a head of q words the tail (1 + k/q)^-s falls like
 * e^(-sk/q), so with a whole calibration vocabulary as the head (q ~ 10^5)
 * only a large s makes it narrow enough. */
#define S_MIN 1.001
#define S_MAX 1000.0
/* Rank buckets of the expected-vocabulary sum: 2% wide, ~900 terms instead
 * of 10^8, within 0.01% of the exact sum. */
#define BUCKET_GROWTH 1.02
/* Tail ranks: far more than any corpus this writes can reach, so that the
 * vocabulary is limited by the sampling, as a real one is. */
#define TAIL_RANKS 100000000.0
#define SENTENCE_MIN 8
#define SENTENCE_MAX 30
#define PARAGRAPH_MIN 2
#define PARAGRAPH_MAX 6
/* Longest article kept: a log-normal tail must not write one article of a
 * gigabyte. */
#define MAX_LEN_FACTOR 20.0

/* ---- the built-in model: `corpusgen --calibrate reuters21578/docs.jsonl
 * --dump-model` ------------------------------------------------------------ */
#include "corpusgen_model.h"

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t rng_range(uint64_t *s, uint64_t lo, uint64_t hi) {
    return lo + bench_rng_next(s) % (hi - lo + 1);
}

/* Standard normal by Box-Muller (one of the pair is used: simpler, and the
 * cost is per article, not per token). */
static double rng_normal(uint64_t *s) {
    double u1 = 1.0 - bench_rng_unit(s), u2 = bench_rng_unit(s);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- the model ----------------------------------------------------------------- */

typedef struct model {
    size_t nhead;
    char **word;          /* nhead words, most frequent first */
    uint32_t *wlen;
    uint64_t *count;      /* their counts in the calibration corpus */
    uint64_t ntokens;     /* tokens of the calibration corpus */
    double unseen;        /* Good-Turing: hapaxes / tokens */
    double title_mean, title_sd, body_mean, body_sd; /* tokens per article */
    uint64_t narticles, nvocab;                      /* what was measured */
} model;

static void model_free(model *m) {
    for (size_t i = 0; i < m->nhead; i++) free(m->word[i]);
    free(m->word);
    free(m->wlen);
    free(m->count);
}

static void model_alloc(model *m, size_t n) {
    m->nhead = n;
    m->word = bench_xcalloc(n, sizeof *m->word);
    m->wlen = bench_xcalloc(n, sizeof *m->wlen);
    m->count = bench_xcalloc(n, sizeof *m->count);
}

static void model_set_word(model *m, size_t i, const char *w, size_t len, uint64_t count) {
    m->word[i] = bench_xmalloc(len + 1);
    memcpy(m->word[i], w, len);
    m->word[i][len] = '\0';
    m->wlen[i] = (uint32_t)len;
    m->count[i] = count;
}

static void model_builtin(model *m) {
    memset(m, 0, sizeof *m);
    size_t n = sizeof builtin_words / sizeof builtin_words[0];
    model_alloc(m, n);
    for (size_t i = 0; i < n; i++)
        model_set_word(m, i, builtin_words[i], strlen(builtin_words[i]), builtin_counts[i]);
    m->ntokens = BUILTIN_TOKENS;
    m->unseen = BUILTIN_UNSEEN;
    m->title_mean = BUILTIN_TITLE_MEAN;
    m->title_sd = BUILTIN_TITLE_SD;
    m->body_mean = BUILTIN_BODY_MEAN;
    m->body_sd = BUILTIN_BODY_SD;
    m->narticles = BUILTIN_ARTICLES;
    m->nvocab = BUILTIN_VOCAB;
}

/* ---- calibration: count the corpus's words ------------------------------------ */

typedef struct entry {
    uint64_t hash;
    size_t off;        /* in the pool; SIZE_MAX for an empty slot */
    uint32_t len;
    uint64_t count;
} entry;

typedef struct counter {
    entry *slot;       /* open addressing, linear probing, load <= 1/2 */
    size_t nslots, n;
    char *pool;
    size_t pool_len, pool_cap;
    uint64_t ntokens;
    uint64_t field_tokens; /* tokens of the field being read */
} counter;

static void counter_grow(counter *c) {
    size_t nn = c->nslots ? 2 * c->nslots : (size_t)1 << 16;
    entry *ns = bench_xmalloc(nn * sizeof *ns);
    for (size_t i = 0; i < nn; i++) ns[i].off = SIZE_MAX;
    for (size_t i = 0; i < c->nslots; i++) {
        if (c->slot[i].off == SIZE_MAX) continue;
        size_t j = c->slot[i].hash & (nn - 1);
        while (ns[j].off != SIZE_MAX) j = (j + 1) & (nn - 1);
        ns[j] = c->slot[i];
    }
    free(c->slot);
    c->slot = ns;
    c->nslots = nn;
}

static int count_token(void *ctx, const sh_token *tok) {
    counter *c = ctx;
    /* the joined whole of a hyphenated word repeats its parts */
    if (tok->flags & SH_TOK_WHOLE) return 0;
    c->field_tokens++;
    c->ntokens++;
    if (2 * (c->n + 1) > c->nslots) counter_grow(c);
    uint64_t h = XXH3_64bits(tok->term, tok->term_len);
    size_t j = h & (c->nslots - 1);
    while (c->slot[j].off != SIZE_MAX) {
        entry *e = &c->slot[j];
        if (e->hash == h && e->len == tok->term_len &&
            !memcmp(c->pool + e->off, tok->term, tok->term_len)) {
            e->count++;
            return 0;
        }
        j = (j + 1) & (c->nslots - 1);
    }
    if (c->pool_len + tok->term_len > c->pool_cap) {
        c->pool_cap = 2 * (c->pool_len + tok->term_len) + ((size_t)1 << 20);
        c->pool = bench_xrealloc(c->pool, c->pool_cap);
    }
    memcpy(c->pool + c->pool_len, tok->term, tok->term_len);
    c->slot[j] = (entry){.hash = h, .off = c->pool_len, .len = tok->term_len, .count = 1};
    c->pool_len += tok->term_len;
    c->n++;
    return 0;
}

static const char *sort_pool;

/* Most frequent first; ties by bytes, so that the order (and the output)
 * does not depend on the hash table's layout. */
static int cmp_entry(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    size_t n = a->len < b->len ? a->len : b->len;
    int d = memcmp(sort_pool + a->off, sort_pool + b->off, n);
    if (d) return d;
    return a->len < b->len ? -1 : a->len > b->len;
}

typedef struct moments {
    double n, sum, sumsq;
} moments;

static void moments_add(moments *m, double x) {
    m->n++;
    m->sum += x;
    m->sumsq += x * x;
}

static double moments_mean(const moments *m) { return m->n ? m->sum / m->n : 0; }

static double moments_sd(const moments *m) {
    if (m->n < 2) return 0;
    double mean = m->sum / m->n;
    double var = (m->sumsq - m->n * mean * mean) / (m->n - 1);
    return var > 0 ? sqrt(var) : 0;
}

static void calibrate(const char *path, model *m) {
    memset(m, 0, sizeof *m);
    bench_corpus *bc = bench_corpus_open(path);
    counter c = {0};
    counter_grow(&c);
    moments title = {0}, body = {0};
    bench_doc d;
    while (bench_corpus_next(bc, &d)) {
        c.field_tokens = 0;
        if (sh_tokenize(d.title, d.title_len, 0, count_token, &c, NULL))
            bench_die("%s: article %llu: cannot tokenize", path, (unsigned long long)d.ordinal);
        moments_add(&title, (double)c.field_tokens);
        c.field_tokens = 0;
        if (sh_tokenize(d.body, d.body_len, 0, count_token, &c, NULL))
            bench_die("%s: article %llu: cannot tokenize", path, (unsigned long long)d.ordinal);
        moments_add(&body, (double)c.field_tokens);
    }
    bench_corpus_close(bc);
    if (!c.ntokens) bench_die("%s: no words to calibrate from", path);

    entry *e = bench_xmalloc(c.n * sizeof *e);
    size_t n = 0;
    for (size_t i = 0; i < c.nslots; i++)
        if (c.slot[i].off != SIZE_MAX) e[n++] = c.slot[i];
    sort_pool = c.pool;
    qsort(e, n, sizeof *e, cmp_entry);
    sort_pool = NULL;

    uint64_t hapax = 0;
    for (size_t i = 0; i < n; i++) hapax += e[i].count == 1;
    model_alloc(m, n < HEAD_MAX ? n : HEAD_MAX);
    for (size_t i = 0; i < m->nhead; i++)
        model_set_word(m, i, c.pool + e[i].off, e[i].len, e[i].count);
    m->ntokens = c.ntokens;
    m->unseen = (double)hapax / (double)c.ntokens;
    m->title_mean = moments_mean(&title);
    m->title_sd = moments_sd(&title);
    m->body_mean = moments_mean(&body);
    m->body_sd = moments_sd(&body);
    m->narticles = (uint64_t)body.n;
    m->nvocab = n;
    free(e);
    free(c.slot);
    free(c.pool);
}

/* The model as the C header built into this program (corpusgen_model.h),
 * with the DUMP_HEAD most frequent words. */
static void dump_model(const model *m, const char *path) {
    const char *base = strrchr(path, '/');
    const char *shown = path;
    /* name the corpus by its last two path parts, not this machine's folders */
    if (base && base > path) {
        const char *p = base - 1;
        while (p > path && p[-1] != '/') p--;
        shown = p;
    }
    size_t n = m->nhead < DUMP_HEAD ? m->nhead : DUMP_HEAD;
    printf("/*\n * corpusgen_model.h - corpusgen's built-in model, written by\n"
           " *   corpusgen --calibrate %s --dump-model\n"
           " * from %llu articles, %llu tokens, %llu distinct words: the %zu most\n"
           " * frequent words (as the tokenizer gives them, case kept) with their\n"
           " * counts; the rest of the mass goes to the Zipf tail (see corpusgen.c).\n"
           " */\n",
           shown, (unsigned long long)m->narticles, (unsigned long long)m->ntokens,
           (unsigned long long)m->nvocab, n);
    printf("#define BUILTIN_TOKENS UINT64_C(%llu)\n", (unsigned long long)m->ntokens);
    printf("#define BUILTIN_ARTICLES UINT64_C(%llu)\n", (unsigned long long)m->narticles);
    printf("#define BUILTIN_VOCAB UINT64_C(%llu)\n", (unsigned long long)m->nvocab);
    printf("#define BUILTIN_UNSEEN %.6f\n", m->unseen);
    printf("#define BUILTIN_TITLE_MEAN %.3f\n#define BUILTIN_TITLE_SD %.3f\n", m->title_mean,
           m->title_sd);
    printf("#define BUILTIN_BODY_MEAN %.3f\n#define BUILTIN_BODY_SD %.3f\n", m->body_mean,
           m->body_sd);
    printf("static const char *const builtin_words[%zu] = {", n);
    for (size_t i = 0; i < n; i++) {
        printf("%s\"", i % 8 ? " " : "\n    ");
        for (const char *s = m->word[i]; *s; s++) {
            unsigned char ch = (unsigned char)*s;
            if (ch < 0x80) putchar(ch);
            else printf("\\x%02x\"\"", ch); /* "" ends the escape before the next byte */
        }
        printf("\",");
    }
    printf("\n};\nstatic const uint32_t builtin_counts[%zu] = {", n);
    for (size_t i = 0; i < n; i++)
        printf("%s%llu,", i % 10 ? " " : "\n    ", (unsigned long long)m->count[i]);
    printf("\n};\n");
}

/* ---- sampling ------------------------------------------------------------------------ */

/* Vose's alias method: O(1) draws from the head's discrete distribution. */
typedef struct alias {
    size_t n;
    double *prob;
    uint32_t *alias;
} alias;

static void alias_build(alias *a, const uint64_t *w, size_t n) {
    a->n = n;
    a->prob = bench_xmalloc(n * sizeof *a->prob);
    a->alias = bench_xmalloc(n * sizeof *a->alias);
    uint32_t *small = bench_xmalloc(n * sizeof *small), *large = bench_xmalloc(n * sizeof *large);
    size_t ns = 0, nl = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) total += (double)w[i];
    for (size_t i = 0; i < n; i++) {
        a->prob[i] = (double)w[i] * (double)n / total;
        a->alias[i] = (uint32_t)i;
        if (a->prob[i] < 1.0) small[ns++] = (uint32_t)i;
        else large[nl++] = (uint32_t)i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        a->alias[s] = l;
        a->prob[l] -= 1.0 - a->prob[s];
        if (a->prob[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    /* what is left is 1 up to rounding */
    while (nl) a->prob[large[--nl]] = 1.0;
    while (ns) a->prob[small[--ns]] = 1.0;
    free(small);
    free(large);
}

static size_t alias_draw(const alias *a, uint64_t *rng) {
    size_t i = (size_t)(bench_rng_next(rng) % a->n);
    return bench_rng_unit(rng) < a->prob[i] ? i : a->alias[i];
}

static void alias_free(alias *a) {
    free(a->prob);
    free(a->alias);
}

/* The tail: k in 1..n with probability proportional to h(k) = (k + q)^-s,
 * drawn by rejection-inversion (Hormann and Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions",
 * 1996): u uniform under the integral H of the continuous h between 1/2
 * and n + 1/2, x = H^-1(u), k = x rounded, kept when u falls in the last
 * h(k) of k's stretch.  h is convex, so that stretch is at least h(k) long
 * and every k is kept with probability proportional to h(k); few draws
 * are rejected.
 * With q in the hundred thousands, (x + q)^(1-s) is ~1e-15 and H written
 * the textbook way cancels to nothing; so h and H are scaled by
 * b^s, b = q + 1/2, and written in t = ln((x + q) / b), with expm1/log1p
 * (which also hold at s = 1):
 *   h(x) = e^(-s t),  H(x) = b t expm1((1-s) t) / ((1-s) t). */
typedef struct zipf {
    double s, q, n, b;
    double h_lo, h_hi; /* H(1.5) - h(1) and H(n + 0.5) */
} zipf;

static double expm1_over(double x) { return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x / 2.0; }
static double log1p_over(double x) { return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x / 2.0; }

static double zipf_t(const zipf *z, double x) { return log1p((x - 0.5) / z->b); }

static double zipf_h(const zipf *z, double x) { return exp(-z->s * zipf_t(z, x)); }

static double zipf_H(const zipf *z, double x) {
    double t = zipf_t(z, x);
    return z->b * t * expm1_over((1.0 - z->s) * t);
}

static double zipf_Hinv(const zipf *z, double y) {
    double r = y / z->b;
    return 0.5 + z->b * expm1(r * log1p_over((1.0 - z->s) * r));
}

static void zipf_init(zipf *z, double s, double q, double n) {
    z->s = s;
    z->q = q;
    z->n = n;
    z->b = q + 0.5;
    z->h_lo = zipf_H(z, 1.5) - zipf_h(z, 1.0);
    z->h_hi = zipf_H(z, n + 0.5);
}

static uint64_t zipf_draw(const zipf *z, uint64_t *rng) {
    for (;;) {
        double u = z->h_hi + bench_rng_unit(rng) * (z->h_lo - z->h_hi);
        double x = zipf_Hinv(z, u);
        double k = floor(x + 0.5);
        if (k < 1) k = 1;
        if (k > z->n) k = z->n;
        if (u >= zipf_H(z, k + 0.5) - zipf_h(z, k)) return (uint64_t)k;
    }
}

/* Expected distinct tail words among `lambda` tail tokens, with tail
 * exponent s: rank k occurs at least once with probability
 * 1 - exp(-lambda p(k)), summed over buckets of ranks. */
static double tail_vocab(double lambda, double s, double q) {
    double z = 0, v = 0;
    for (int pass = 0; pass < 2; pass++) {
        double a = 1;
        while (a <= TAIL_RANKS) {
            double b = floor(a * BUCKET_GROWTH);
            if (b < a + 1) b = a + 1;
            if (b > TAIL_RANKS + 1) b = TAIL_RANKS + 1;
            double h = exp(-s * log((a + b - 1) / 2 + q)) * (b - a);
            if (pass == 0) z += h;
            else v += (b - a) * -expm1(-lambda * h / (b - a) / z);
            a = b;
        }
    }
    return v;
}

/* The tail exponent that gives a corpus of the calibration corpus's size
 * its measured vocabulary (see the header comment), by bisection: the
 * tail's vocabulary shrinks as s grows. */
static double solve_exponent(const model *m, double tail_mass) {
    double n = (double)m->ntokens, head = 0;
    for (size_t i = 0; i < m->nhead; i++)
        head += -expm1(-(double)m->count[i] * (1.0 - m->unseen));
    double want = (double)m->nvocab - head, lambda = n * tail_mass, q = (double)m->nhead;
    if (want <= 0 || tail_vocab(lambda, S_MAX, q) >= want) return S_MAX;
    if (tail_vocab(lambda, S_MIN, q) <= want) return S_MIN;
    double lo = S_MIN, hi = S_MAX;
    for (int i = 0; i < 40; i++) {
        double mid = (lo + hi) / 2;
        if (tail_vocab(lambda, mid, q) > want) lo = mid;
        else hi = mid;
    }
    return (lo + hi) / 2;
}

/* Tail rank k as a made-up word: k + 69 in base 70, one consonant-vowel
 * syllable per digit, least significant first, so every word has at least
 * two syllables and distinct ranks give distinct words. */
static size_t tail_word(uint64_t k, char *out) {
    static const char cons[] = "bdfgklmnprstvz";
    static const char vow[] = "aeiou";
    uint64_t v = k + 69;
    size_t len = 0;
    do {
        unsigned d = (unsigned)(v % 70);
        out[len++] = cons[d / 5];
        out[len++] = vow[d % 5];
        v /= 70;
    } while (v);
    return len;
}

/* ---- writing ------------------------------------------------------------------------- */

typedef struct gen {
    const model *m;
    alias head;
    zipf tail;
    double tail_mass;
    uint64_t rng;
    char *buf;
    size_t len, cap;
    uint64_t ntokens, ntail;
} gen;

static void put(gen *g, const char *s, size_t len) {
    if (g->len + len > g->cap) {
        g->cap = 2 * (g->len + len) + 4096;
        g->buf = bench_xrealloc(g->buf, g->cap);
    }
    memcpy(g->buf + g->len, s, len);
    g->len += len;
}

static void put_str(gen *g, const char *s) { put(g, s, strlen(s)); }

static void put_word(gen *g) {
    g->ntokens++;
    if (bench_rng_unit(&g->rng) < g->tail_mass) {
        char w[32];
        g->ntail++;
        put(g, w, tail_word(zipf_draw(&g->tail, &g->rng), w));
    } else {
        size_t i = alias_draw(&g->head, &g->rng);
        put(g, g->m->word[i], g->m->wlen[i]);
    }
}

/* Log-normal with this mean and standard deviation, rounded, within
 * [lo, MAX_LEN_FACTOR * mean]. */
static uint64_t draw_length(gen *g, double mean, double sd, uint64_t lo) {
    if (mean < 0.5) return 0;
    double s2 = log(1.0 + (sd * sd) / (mean * mean));
    double x = exp(log(mean) - s2 / 2.0 + sqrt(s2) * rng_normal(&g->rng));
    double hi = MAX_LEN_FACTOR * mean;
    if (x > hi) x = hi;
    uint64_t n = (uint64_t)llround(x);
    return n < lo ? lo : n;
}

static const char *const outlets[] = {
    "Sahel Wire", "Harmattan Post", "Niger Valley Herald", "Daily Baobab",
    "Continental Dispatch", "Savanna Times", "Coastal Ledger", "Meridian News",
};

static void write_article(gen *g, uint64_t number) {
    char tmp[128];
    g->len = 0;
    snprintf(tmp, sizeof tmp, "{\"id\": \"g%llu\", \"title\": \"", (unsigned long long)number);
    put_str(g, tmp);
    uint64_t nt = draw_length(g, g->m->title_mean, g->m->title_sd, 1);
    for (uint64_t i = 0; i < nt; i++) {
        if (i) put(g, " ", 1);
        put_word(g);
    }
    put_str(g, "\", \"text\": \"");
    uint64_t nb = draw_length(g, g->m->body_mean, g->m->body_sd, 1);
    uint64_t left_in_sentence = rng_range(&g->rng, SENTENCE_MIN, SENTENCE_MAX);
    uint64_t left_in_para = rng_range(&g->rng, PARAGRAPH_MIN, PARAGRAPH_MAX);
    for (uint64_t i = 0; i < nb; i++) {
        put_word(g);
        if (i + 1 == nb) {
            put(g, ".", 1);
        } else if (--left_in_sentence == 0) {
            left_in_sentence = rng_range(&g->rng, SENTENCE_MIN, SENTENCE_MAX);
            if (--left_in_para == 0) {
                left_in_para = rng_range(&g->rng, PARAGRAPH_MIN, PARAGRAPH_MAX);
                put(g, ".\\n", 3);
            } else {
                put(g, ". ", 2);
            }
        } else {
            put(g, " ", 1);
        }
    }
    unsigned year = (unsigned)rng_range(&g->rng, 1990, 2024);
    unsigned month = (unsigned)rng_range(&g->rng, 1, 12);
    unsigned day = (unsigned)rng_range(&g->rng, 1, 28);
    const char *src = outlets[bench_rng_next(&g->rng) % (sizeof outlets / sizeof outlets[0])];
    snprintf(tmp, sizeof tmp, "\", \"date\": \"%04u-%02u-%02u\", \"source\": \"%s\"}\n", year,
             month, day, src);
    put_str(g, tmp);
}

/* The words of the head go into JSON strings unescaped: the tokenizer
 * gives letters, marks and digits only, which need no escaping; check it,
 * as a model could be edited by hand. */
static void check_words(const model *m) {
    for (size_t i = 0; i < m->nhead; i++)
        for (const char *s = m->word[i]; *s; s++)
            if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' || *s == ' ')
                bench_die("model word %zu holds a character JSON would need escaped", i);
}

/* ---- main ------------------------------------------------------------------------------ */

/* "1G", "100M", "2.5GB", "512MiB", "1000": bytes. */
static uint64_t parse_size(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0) bench_die("--size: not a size: %s", s);
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1},          {"B", 1},        {"k", 1e3},          {"K", 1e3},
        {"kB", 1e3},      {"KB", 1e3},     {"M", 1e6},          {"MB", 1e6},
        {"G", 1e9},       {"GB", 1e9},     {"T", 1e12},         {"TB", 1e12},
        {"KiB", 1024.0},  {"MiB", 1048576.0}, {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix)) {
            double b = v * units[i].mult;
            if (b > 1e15) bench_die("--size: %s is more than a petabyte", s);
            return (uint64_t)b;
        }
    bench_die("--size: unknown unit in %s (k, M, G, T, KiB, MiB, GiB, TiB)", s);
}

static void usage(FILE *f) {
    fputs("usage: corpusgen --size SIZE [--calibrate CORPUS.jsonl] [--seed N] > out.jsonl\n"
          "       corpusgen --calibrate CORPUS.jsonl --dump-model > corpusgen_model.h\n",
          f);
}

int main(int argc, char **argv) {
    bench_set_prog(argv[0]);
    const char *cal = NULL;
    uint64_t size = 0, seed = DEFAULT_SEED;
    int dump = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--size") && i + 1 < argc) {
            size = parse_size(argv[++i]);
        } else if (!strcmp(a, "--calibrate") && i + 1 < argc) {
            cal = argv[++i];
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            char *end;
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (errno || *end || end == argv[i]) bench_die("--seed needs a whole number");
        } else if (!strcmp(a, "--dump-model")) {
            dump = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (dump ? !cal : !size) {
        usage(stderr);
        return 2;
    }

    model m;
    if (cal)
        calibrate(cal, &m);
    else
        model_builtin(&m);
    check_words(&m);
    if (dump) {
        dump_model(&m, cal);
        model_free(&m);
        return 0;
    }

    gen g = {.m = &m, .rng = seed};
    alias_build(&g.head, m.count, m.nhead);
    /* head words keep their measured share of the tokens, less the unseen
     * mass; the rest (unseen words, and words beyond the head) is the tail */
    double head = 0;
    for (size_t i = 0; i < m.nhead; i++) head += (double)m.count[i];
    head = head / (double)m.ntokens * (1.0 - m.unseen);
    g.tail_mass = 1.0 - head;
    double s = solve_exponent(&m, g.tail_mass);
    zipf_init(&g.tail, s, (double)m.nhead, TAIL_RANKS);
    fprintf(stderr,
            "corpusgen: model from %s: %llu articles, %llu tokens, %llu distinct words;\n"
            "  head %zu words (%.2f%% of tokens), tail %.2f%% Zipf s = %.3f;\n"
            "  title %.1f +- %.1f tokens, body %.1f +- %.1f tokens; seed %llu\n",
            cal ? cal : "the built-in table (Reuters-21578)", (unsigned long long)m.narticles,
            (unsigned long long)m.ntokens, (unsigned long long)m.nvocab, m.nhead,
            100.0 * head, 100.0 * g.tail_mass, s, m.title_mean, m.title_sd,
            m.body_mean, m.body_sd, (unsigned long long)seed);

    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    uint64_t written = 0, narticles = 0;
    while (written < size) {
        write_article(&g, ++narticles);
        if (fwrite(g.buf, 1, g.len, stdout) != g.len) bench_die("write: %s", strerror(errno));
        written += g.len;
    }
    if (fflush(stdout)) bench_die("write: %s", strerror(errno));
    fprintf(stderr, "corpusgen: %llu articles, %llu bytes, %llu tokens (%.2f%% from the tail)\n",
            (unsigned long long)narticles, (unsigned long long)written,
            (unsigned long long)g.ntokens,
            g.ntokens ? 100.0 * (double)g.ntail / (double)g.ntokens : 0.0);
    alias_free(&g.head);
    free(g.buf);
    model_free(&m);
    return 0;
}
