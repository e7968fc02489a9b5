/*
 * querygen.c - writes the query set of the speed comparison (bench_sahel,
 * peer_fts5, peer_xapian, and bench/run's one-shot CLI runs): words
 * sampled from a JSONL corpus, the same set for every engine, reproducible
 * from its seed.
 *
 *   querygen [--n N] [--seed S] [--source title|body] CORPUS.jsonl > QUERIES.tsv
 *
 * Output: a '#' header line naming the corpus, seed, N and source, then
 * one line per query, "class<TAB>qid<TAB>words" (words separated by one
 * space, qid the 1-based line number among queries).  Classes, N queries
 * each (default 100), in this order:
 *   term1    one word
 *   or2      two words, ranked OR
 *   and2     two words, both required
 *   or3      three words, ranked OR
 *   phrase2  two words that stand next to each other in the passage
 *
 * Where the words come from (--source):
 *   title  (default) each article's title is one passage.  Good where
 *          titles are headlines (Reuters-21578), useless where they are
 *          formulaic (UNGDC: "ARG statement, UN General Debate session 1").
 *   body   each article gives one passage: a window of WINDOW_WORDS
 *          consecutive words of its text (the words as defined below, so
 *          stop words, numbers and tokens with punctuation inside are
 *          skipped over), its start drawn uniformly among the windows that
 *          fit in the text.  Words that close in a text share its topic,
 *          which is what a person's multi-word query looks like.
 * The words of a multi-word query come from one passage (so that AND and
 * phrase queries match at least that article, as a user's would); the
 * passage is drawn uniformly among those that have enough words, and the
 * words uniformly among its distinct ones.  No query repeats within a
 * class (the words of an OR or AND query count as a set).
 *
 * A word is a whitespace-separated token with leading and trailing
 * punctuation stripped that is made of 3 to 32 ASCII letters (lower-cased)
 * and is not a stop word; a token with anything else inside ("U.S.",
 * "OIL-PRICE", "1987") is not a word, and for phrases two words are
 * adjacent only when nothing (no other token, no punctuation) stands
 * between them.  ASCII letters only, so that every engine's tokenizer
 * reads each word as exactly one token.  The stop list is the base list
 * below, plus, for bodies, the function words that fill running prose
 * (titles have few, so the title source keeps the base list and its query
 * sets stay those of earlier reports).
 *
 * Random numbers: splitmix64 (bench_rng_next) from the seed (default
 * 20240601), so the same corpus, seed and source give the same file on
 * every machine.  With --source body the window starts are drawn first,
 * article by article in file order, then the queries.
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
/* Words in a body window: about one sentence of prose once stop words are
 * skipped, so the words of a query are on one subject, and enough of them
 * that an or3 query has 8 choose 3 = 56 word sets to come from. */
#define WINDOW_WORDS 8
/* draw() takes the distinct words of a passage into an array of this
 * many; a longer title contributes its first 64 distinct words. */
#define MAX_DISTINCT 64

/* Lucene's classic English stop set (which sahel drops from ranked-OR
 * queries, so a peer would otherwise do work sahel skips), words of 3+
 * letters only, plus other function words that carry no topic. */
static const char *const base_stops[] = {
    "and",   "are",   "but",   "for",  "into",  "not",   "such",  "that",  "the",
    "their", "then",  "there", "these", "they", "this",  "was",   "will",  "with",
    "from",  "has",   "have",  "had",  "its",   "his",   "her",   "our",   "you",
    "who",   "what",  "which", "were", "been",  "over",  "after", "near",  "than",
    "all",   "can",   "may",   "any",  "out",   "off",   "onto",  "upon",
};

/* Body source only: pronouns, auxiliaries, determiners, conjunctions,
 * prepositions and adverbs of 3+ letters from the usual English
 * function-word lists, the words that make up about half of running prose
 * and would otherwise fill most windows. */
static const char *const body_stops[] = {
    "about",   "above",   "across",  "again",      "against", "also",    "although",
    "among",   "another", "because", "before",     "being",   "below",   "between",
    "both",    "cannot",  "could",   "did",        "does",    "doing",   "done",
    "down",    "during",  "each",    "either",     "else",    "even",    "ever",
    "every",   "few",     "further", "hence",      "here",    "herself", "him",
    "himself", "how",     "however", "itself",     "just",    "less",    "many",
    "more",    "most",    "much",    "must",       "myself",  "neither", "never",
    "nor",     "now",     "once",    "only",       "other",   "others",  "otherwise",
    "ought",   "ours",    "ourselves", "own",      "per",     "rather",  "same",
    "shall",   "she",     "should",  "since",      "some",    "still",   "them",
    "themselves", "therefore", "those", "though",  "through", "thus",    "too",
    "under",   "until",   "very",    "via",        "well",    "whatever", "when",
    "where",   "whereas", "whether", "while",      "whom",    "whose",   "why",
    "within",  "without", "would",   "yet",        "your",    "yours",   "yourselves",
    "might",   "let",     "having",  "indeed",     "thereby", "therein", "hereby",
};

typedef struct stoplist {
    const char **words; /* sorted by strcmp, for bsearch */
    size_t n;
} stoplist;

typedef struct word {
    uint32_t off, len;   /* in the word pool */
    int adjacent;        /* the next word of the passage follows it directly */
} word;

typedef struct passage {
    size_t first, n;     /* words[first .. first + n) */
    size_t ndistinct;    /* distinct words */
    size_t npairs;       /* adjacent pairs */
} passage;

typedef struct store {
    char *pool;
    size_t pool_len, pool_cap;
    word *words;
    size_t nwords, words_cap;
    passage *passages;
    size_t npassages, passages_cap;
    stoplist stops;
} store;

static void *grow(void *p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    p = bench_xrealloc(p, c * size);
    *cap = c;
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The stop list of a source, sorted (a word listed twice is harmless). */
static stoplist make_stops(int body) {
    size_t nb = sizeof base_stops / sizeof base_stops[0];
    size_t nx = body ? sizeof body_stops / sizeof body_stops[0] : 0;
    stoplist sl = {bench_xmalloc((nb + nx) * sizeof *sl.words), nb + nx};
    for (size_t i = 0; i < nb; i++) sl.words[i] = base_stops[i];
    for (size_t i = 0; i < nx; i++) sl.words[nb + i] = body_stops[i];
    qsort(sl.words, sl.n, sizeof *sl.words, cmp_str);
    return sl;
}

static int is_stop(const stoplist *sl, const char *w) {
    return bsearch(&w, sl->words, sl->n, sizeof *sl->words, cmp_str) != NULL;
}

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Walk the words of t (see the header comment), skipping the first `skip`
 * and keeping up to `max` of the rest as one passage when `keep`;
 * returns the number of words walked over (skipped + kept), so that
 * keep == 0 and max == SIZE_MAX counts the words of t. */
static size_t scan(store *s, const char *t, size_t len, size_t skip, size_t max, int keep) {
    size_t seen = 0, kept = 0;
    int prev_open = 0; /* the previous kept word may be adjacent to the next one */
    size_t i = 0;
    while (i < len && kept < max) {
        while (i < len && is_space(t[i])) i++;
        size_t start = i;
        while (i < len && !is_space(t[i])) i++;
        size_t end = i;
        if (start == end) break;
        size_t a = start, b = end;
        while (a < b && !is_letter(t[a]) && (unsigned char)t[a] < 0x80) a++;
        while (b > a && !is_letter(t[b - 1]) && (unsigned char)t[b - 1] < 0x80) b--;
        int ok = b - a >= MIN_WORD && b - a <= MAX_WORD;
        for (size_t j = a; ok && j < b; j++) ok = is_letter(t[j]);
        char low[MAX_WORD + 1];
        if (ok) {
            for (size_t j = a; j < b; j++) low[j - a] = (char)(t[j] | 0x20);
            low[b - a] = '\0';
            ok = !is_stop(&s->stops, low);
        }
        if (!ok) {
            prev_open = 0;
            continue;
        }
        if (seen++ < skip || !keep) continue; /* prev_open stays 0: nothing kept yet */
        if (prev_open && a == start) s->words[s->nwords - 1].adjacent = 1;
        s->pool = grow(s->pool, &s->pool_cap, s->pool_len + (b - a), 1);
        memcpy(s->pool + s->pool_len, low, b - a);
        s->words = grow(s->words, &s->words_cap, s->nwords + 1, sizeof *s->words);
        s->words[s->nwords++] = (word){(uint32_t)s->pool_len, (uint32_t)(b - a), 0};
        s->pool_len += b - a;
        kept++;
        prev_open = b == end; /* trailing punctuation ends adjacency */
    }
    return seen;
}

static int same_word(const store *s, const word *a, const word *b) {
    return a->len == b->len && !memcmp(s->pool + a->off, s->pool + b->off, a->len);
}

/* Close the passage of the words added since `first`, when there are any. */
static void end_passage(store *s, size_t first) {
    size_t n = s->nwords - first;
    if (!n) return;
    s->words[s->nwords - 1].adjacent = 0; /* never adjacent to the next passage */
    passage p = {.first = first, .n = n};
    for (size_t j = 0; j < n; j++) {
        const word *w = &s->words[first + j];
        int dup = 0;
        for (size_t m = 0; m < j && !dup; m++) dup = same_word(s, w, &s->words[first + m]);
        p.ndistinct += !dup;
        p.npairs += w->adjacent;
    }
    s->passages = grow(s->passages, &s->passages_cap, s->npassages + 1, sizeof *s->passages);
    s->passages[s->npassages++] = p;
}

static void add_title(store *s, const char *t, size_t len) {
    size_t first = s->nwords;
    scan(s, t, len, 0, SIZE_MAX, 1);
    end_passage(s, first);
}

/* Uniform in [0, n), n > 0, without modulo bias (Lemire's rejection). */
static size_t uniform(uint64_t *state, size_t n) {
    uint64_t bound = (uint64_t)n, threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = bench_rng_next(state);
        if (r >= threshold) return (size_t)(r % bound);
    }
}

/* One window of WINDOW_WORDS words of a body, its start uniform among
 * the windows that fit (the whole body when it has fewer words). */
static void add_window(store *s, const char *t, size_t len, uint64_t *rng) {
    size_t nw = scan(s, t, len, 0, SIZE_MAX, 0);
    if (!nw) return;
    size_t skip = nw > WINDOW_WORDS ? uniform(rng, nw - WINDOW_WORDS + 1) : 0;
    size_t first = s->nwords;
    scan(s, t, len, skip, WINDOW_WORDS, 1);
    end_passage(s, first);
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

/* Draw one query of class c from passage p into w; 0 when p cannot give one. */
static int draw(const store *s, const passage *p, const qclass *c, uint64_t *rng,
                const word **w) {
    const word *pw = &s->words[p->first];
    if (c->phrase) {
        if (!p->npairs) return 0;
        size_t pick = uniform(rng, p->npairs);
        for (size_t i = 0; i + 1 < p->n; i++)
            if (pw[i].adjacent && pick-- == 0) {
                w[0] = &pw[i];
                w[1] = &pw[i + 1];
                return 1;
            }
        return 0;
    }
    if (p->ndistinct < c->nwords) return 0;
    /* distinct words of the passage, then a partial Fisher-Yates over them */
    const word *d[MAX_DISTINCT];
    size_t nd = 0;
    for (size_t i = 0; i < p->n && nd < MAX_DISTINCT; i++) {
        int seen = 0;
        for (size_t j = 0; j < nd && !seen; j++) seen = same_word(s, &pw[i], d[j]);
        if (!seen) d[nd++] = &pw[i];
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
    fprintf(f, "usage: querygen [--n N] [--seed S] [--source title|body] CORPUS.jsonl > "
               "QUERIES.tsv\n");
}

int main(int argc, char **argv) {
    bench_set_prog(argv[0]);
    size_t n = DEFAULT_N;
    uint64_t seed = DEFAULT_SEED;
    int body = 0;
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
        } else if (!strcmp(argv[i], "--source") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "title"))
                body = 0;
            else if (!strcmp(argv[i], "body"))
                body = 1;
            else
                bench_die("--source is title or body, not \"%s\"", argv[i]);
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

    store s = {.stops = make_stops(body)};
    uint64_t rng = seed;
    bench_corpus *c = bench_corpus_open(path);
    bench_doc d;
    while (bench_corpus_next(c, &d)) {
        if (body)
            add_window(&s, d.body, d.body_len, &rng);
        else
            add_title(&s, d.title, d.title_len);
    }
    bench_corpus_close(c);
    if (!s.npassages) bench_die("%s: no %s holds a usable word", path, body ? "text" : "title");

    if (body)
        printf("# querygen corpus=%s seed=%llu n=%zu source=body window=%d passages=%zu\n", path,
               (unsigned long long)seed, n, WINDOW_WORDS, s.npassages);
    else
        printf("# querygen corpus=%s seed=%llu n=%zu source=title titles=%zu\n", path,
               (unsigned long long)seed, n, s.npassages);
    size_t qid = 0;
    /* keys of one class, for duplicates: a linear scan is enough for the
     * hundreds of queries a benchmark runs */
    size_t keycap = BENCH_MAX_WORDS * (MAX_WORD + 1);
    char *keys = bench_xmalloc(n * keycap);
    size_t *eligible = bench_xmalloc(s.npassages * sizeof *eligible);
    for (size_t ci = 0; ci < sizeof classes / sizeof classes[0]; ci++) {
        const qclass *cl = &classes[ci];
        size_t ne = 0;
        for (size_t p = 0; p < s.npassages; p++)
            if (cl->phrase ? s.passages[p].npairs > 0 : s.passages[p].ndistinct >= cl->nwords)
                eligible[ne++] = p;
        size_t made = 0;
        for (size_t attempt = 0; ne && made < n && attempt < n * ATTEMPTS_PER_QUERY; attempt++) {
            const word *w[BENCH_MAX_WORDS];
            if (!draw(&s, &s.passages[eligible[uniform(&rng, ne)]], cl, &rng, w)) continue;
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
    free(s.stops.words);
    free(s.pool);
    free(s.words);
    free(s.passages);
    if (fflush(stdout) || ferror(stdout)) bench_die("error writing the queries");
    return 0;
}
