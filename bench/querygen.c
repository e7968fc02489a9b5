/*
 * querygen.c - writes the query set of the speed comparison (bench_sahel,
 * peer_fts5, peer_xapian): words sampled from the titles of a JSONL
 * corpus, the same set for every engine, reproducible from its seed.
 *
 *   querygen [--n N] [--seed S] CORPUS.jsonl > QUERIES.tsv
 *
 * Output: a '#' header line naming the corpus, seed and N, then one line
 * per query, "class<TAB>qid<TAB>words" (words separated by one space,
 * qid the 1-based line number among queries).  Classes, N queries each
 * (default 100), in this order:
 *   term1    one word
 *   or2      two words, ranked OR
 *   and2     two words, both required
 *   or3      three words, ranked OR
 *   phrase2  two words that stand next to each other in a title
 * The words of a multi-word query come from one title (so that AND and
 * phrase queries match at least that article, as a user's would); the
 * title is drawn uniformly among the titles that have enough words, and
 * the words uniformly among its distinct ones.  No query repeats within a
 * class (the words of an OR or AND query count as a set).
 *
 * A title word is a space-separated token with leading and trailing
 * punctuation stripped that is made of 3 to 32 ASCII letters (lower-cased)
 * and is not in the stop list below; a token with anything else inside
 * ("U.S.", "OIL-PRICE", "1987") is not a word, and for phrases two words
 * are adjacent only when nothing (no other token, no punctuation) stands
 * between them.  ASCII letters only, so that every engine's tokenizer
 * reads each word as exactly one token.
 *
 * Random numbers: splitmix64 from the seed (default 20240601), so the
 * same corpus and seed give the same file on every machine.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/harness.h"

#define MIN_WORD 3
#define MAX_WORD 32
#define DEFAULT_N 100
#define DEFAULT_SEED UINT64_C(20240601)
/* Attempts per wanted query before giving up on finding new ones: a
 * small corpus may not have N distinct queries of a class. */
#define ATTEMPTS_PER_QUERY 1000

/* Lucene's classic English stop set (which sahel drops from ranked-OR
 * queries, so a peer would otherwise do work sahel skips), words of 3+
 * letters only, plus other function words that carry no topic. */
static const char *const stop_words[] = {
    "and",   "are",   "but",   "for",  "into",  "not",   "such",  "that",  "the",
    "their", "then",  "there", "these", "they", "this",  "was",   "will",  "with",
    "from",  "has",   "have",  "had",  "its",   "his",   "her",   "our",   "you",
    "who",   "what",  "which", "were", "been",  "over",  "after", "near",  "than",
    "all",   "can",   "may",   "any",  "out",   "off",   "onto",  "upon",
};

typedef struct word {
    uint32_t off, len;   /* in the word pool */
    int adjacent;        /* the next word of the title follows it directly */
} word;

typedef struct title {
    size_t first, n;     /* words[first .. first + n) */
    size_t ndistinct;    /* distinct words */
    size_t npairs;       /* adjacent pairs */
} title;

typedef struct store {
    char *pool;
    size_t pool_len, pool_cap;
    word *words;
    size_t nwords, words_cap;
    title *titles;
    size_t ntitles, titles_cap;
} store;

static void *grow(void *p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    p = realloc(p, c * size);
    if (!p) bench_die("out of memory");
    *cap = c;
    return p;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int is_stop(const char *w, size_t len) {
    for (size_t i = 0; i < sizeof stop_words / sizeof stop_words[0]; i++)
        if (strlen(stop_words[i]) == len && !memcmp(stop_words[i], w, len)) return 1;
    return 0;
}

static int same_word(const store *s, const word *a, const word *b) {
    return a->len == b->len && !memcmp(s->pool + a->off, s->pool + b->off, a->len);
}

/* Split one title into words (see the header comment) and keep it when it
 * has one. */
static void add_title(store *s, const char *t, size_t len) {
    size_t first = s->nwords;
    int prev_open = 0; /* the previous word may be adjacent to the next one */
    size_t i = 0;
    while (i < len) {
        while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
        size_t start = i;
        while (i < len && !(t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
        size_t end = i;
        if (start == end) break;
        size_t a = start, b = end;
        while (a < b && !is_letter(t[a]) && (unsigned char)t[a] < 0x80) a++;
        while (b > a && !is_letter(t[b - 1]) && (unsigned char)t[b - 1] < 0x80) b--;
        int ok = b - a >= MIN_WORD && b - a <= MAX_WORD;
        for (size_t j = a; ok && j < b; j++) ok = is_letter(t[j]);
        char low[MAX_WORD];
        if (ok) {
            for (size_t j = a; j < b; j++) low[j - a] = (char)(t[j] | 0x20);
            ok = !is_stop(low, b - a);
        }
        if (!ok) {
            prev_open = 0;
            continue;
        }
        if (prev_open && a == start) s->words[s->nwords - 1].adjacent = 1;
        s->pool = grow(s->pool, &s->pool_cap, s->pool_len + (b - a), 1);
        memcpy(s->pool + s->pool_len, low, b - a);
        s->words = grow(s->words, &s->words_cap, s->nwords + 1, sizeof *s->words);
        s->words[s->nwords++] = (word){(uint32_t)s->pool_len, (uint32_t)(b - a), 0};
        s->pool_len += b - a;
        prev_open = b == end; /* trailing punctuation ends adjacency */
    }
    size_t n = s->nwords - first;
    if (!n) return;
    title ti = {.first = first, .n = n};
    for (size_t j = 0; j < n; j++) {
        const word *w = &s->words[first + j];
        int seen = 0;
        for (size_t m = 0; m < j && !seen; m++) seen = same_word(s, w, &s->words[first + m]);
        ti.ndistinct += !seen;
        ti.npairs += w->adjacent;
    }
    s->titles = grow(s->titles, &s->titles_cap, s->ntitles + 1, sizeof *s->titles);
    s->titles[s->ntitles++] = ti;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0, without modulo bias (Lemire's rejection). */
static size_t uniform(uint64_t *state, size_t n) {
    uint64_t bound = (uint64_t)n, threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = splitmix64(state);
        if (r >= threshold) return (size_t)(r % bound);
    }
}

typedef struct qclass {
    const char *name;
    size_t nwords;
    int phrase;
    int ordered;         /* word order matters for duplicates */
} qclass;

static const qclass classes[] = {
    {"term1", 1, 0, 0}, {"or2", 2, 0, 0}, {"and2", 2, 0, 0}, {"or3", 3, 0, 0}, {"phrase2", 2, 1, 1},
};

/* Key of a query for duplicate detection: the words, sorted unless order
 * matters, joined by spaces. */
static void query_key(const store *s, const word *const *w, size_t n, int ordered, char *out,
                      size_t cap) {
    const word *v[BENCH_MAX_WORDS];
    memcpy(v, w, n * sizeof *v);
    for (size_t i = 1; !ordered && i < n; i++)
        for (size_t j = i; j > 0; j--) {
            const word *a = v[j - 1], *b = v[j];
            size_t m = a->len < b->len ? a->len : b->len;
            int d = memcmp(s->pool + a->off, s->pool + b->off, m);
            if (d < 0 || (d == 0 && a->len <= b->len)) break;
            v[j - 1] = b;
            v[j] = a;
        }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(out + len, cap - len, "%s%.*s", i ? " " : "", (int)v[i]->len,
                         s->pool + v[i]->off);
        len += (size_t)k;
    }
}

/* Draw one query of class c from title t into w; 0 when t cannot give one. */
static int draw(const store *s, const title *t, const qclass *c, uint64_t *rng,
                const word **w) {
    const word *tw = &s->words[t->first];
    if (c->phrase) {
        if (!t->npairs) return 0;
        size_t pick = uniform(rng, t->npairs);
        for (size_t i = 0; i + 1 < t->n; i++)
            if (tw[i].adjacent && pick-- == 0) {
                w[0] = &tw[i];
                w[1] = &tw[i + 1];
                return 1;
            }
        return 0;
    }
    if (t->ndistinct < c->nwords) return 0;
    /* distinct words of the title, then a partial Fisher-Yates over them */
    const word *d[64];
    size_t nd = 0;
    for (size_t i = 0; i < t->n && nd < sizeof d / sizeof d[0]; i++) {
        int seen = 0;
        for (size_t j = 0; j < nd && !seen; j++) seen = same_word(s, &tw[i], d[j]);
        if (!seen) d[nd++] = &tw[i];
    }
    if (nd < c->nwords) return 0;
    for (size_t i = 0; i < c->nwords; i++) {
        size_t j = i + uniform(rng, nd - i);
        const word *x = d[i];
        d[i] = d[j];
        d[j] = x;
        w[i] = d[i];
    }
    return 1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: querygen [--n N] [--seed S] CORPUS.jsonl > QUERIES.tsv\n");
}

int main(int argc, char **argv) {
    bench_set_prog(argv[0]);
    size_t n = DEFAULT_N;
    uint64_t seed = DEFAULT_SEED;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno || *end || v < 1 || v > 1000000 || argv[i][0] == '-')
                bench_die("--n needs a whole number from 1 to 1000000");
            n = (size_t)v;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            errno = 0;
            unsigned long long v = strtoull(argv[++i], &end, 10);
            if (errno || *end || argv[i][0] == '-' || end == argv[i])
                bench_die("--seed needs a whole number");
            seed = (uint64_t)v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    store s = {0};
    bench_corpus *c = bench_corpus_open(path);
    bench_doc d;
    while (bench_corpus_next(c, &d)) add_title(&s, d.title, d.title_len);
    bench_corpus_close(c);
    if (!s.ntitles) bench_die("%s: no title holds a usable word", path);

    printf("# querygen corpus=%s seed=%llu n=%zu titles=%zu\n", path, (unsigned long long)seed,
           n, s.ntitles);
    uint64_t rng = seed;
    size_t qid = 0;
    /* keys of one class, for duplicates: a linear scan is enough for the
     * hundreds of queries a benchmark runs */
    size_t keycap = 3 * (MAX_WORD + 1);
    char *keys = malloc(n * keycap);
    size_t *eligible = malloc(s.ntitles * sizeof *eligible);
    if (!keys || !eligible) bench_die("out of memory");
    for (size_t ci = 0; ci < sizeof classes / sizeof classes[0]; ci++) {
        const qclass *cl = &classes[ci];
        size_t ne = 0;
        for (size_t t = 0; t < s.ntitles; t++)
            if (cl->phrase ? s.titles[t].npairs > 0 : s.titles[t].ndistinct >= cl->nwords)
                eligible[ne++] = t;
        size_t made = 0;
        for (size_t attempt = 0; ne && made < n && attempt < n * ATTEMPTS_PER_QUERY; attempt++) {
            const word *w[BENCH_MAX_WORDS];
            if (!draw(&s, &s.titles[eligible[uniform(&rng, ne)]], cl, &rng, w)) continue;
            char *key = keys + made * keycap;
            query_key(&s, w, cl->nwords, cl->ordered, key, keycap);
            int dup = 0;
            for (size_t j = 0; j < made && !dup; j++) dup = !strcmp(keys + j * keycap, key);
            if (dup) continue;
            made++;
            printf("%s\t%zu\t", cl->name, ++qid);
            for (size_t i = 0; i < cl->nwords; i++)
                printf("%s%.*s", i ? " " : "", (int)w[i]->len, s.pool + w[i]->off);
            putchar('\n');
        }
        if (made < n)
            fprintf(stderr, "querygen: warning: only %zu distinct %s queries in %s\n", made,
                    cl->name, path);
    }
    free(eligible);
    free(keys);
    free(s.pool);
    free(s.words);
    free(s.titles);
    if (fflush(stdout) || ferror(stdout)) bench_die("error writing the queries");
    return 0;
}
