/*
 * peer_xapian.cc - the Xapian 1.4 side of the speed comparison: the same two
 * commands as bench_sahel, measured by the same harness (C++17; the
 * harness is C).
 *
 *   peer_xapian build CORPUS.jsonl INDEXDIR [--repeat R] [--name NAME]
 *   peer_xapian query INDEXDIR QUERIES.tsv [--k K] [--repeat R] [--name NAME]
 *
 * Build: a WritableDatabase (the default backend, glass) in INDEXDIR; per
 * article a Document whose text goes through a TermGenerator with
 * Stem("english") and its default STEM_SOME strategy (unstemmed terms with
 * positions, for phrases, plus Z-prefixed stems), title then body
 * (index_text both, a position gap between them so that a phrase does not
 * span them); the article's id as the unique boolean term "Q<id>" and its
 * id, title and body as the document data, since sahel and FTS5 store the
 * text too.  Xapian's defaults otherwise (flush every 10,000 documents,
 * fsync at commit); one commit at the end, then close.
 *
 * Query: QueryParser with the same stemmer and strategy, default operator
 * OR (AND for the and* classes), phrases in double quotes; an Enquire with
 * the default weighting (BM25Weight, default parameters); get_mset(0, k)
 * and the docids of the hits read.  Timed: parse, set_query, get_mset and
 * the reads, as sahel's timing includes its own query parsing.
 * Rendering: or/and -> "w1 w2" (the operator is the parser's default),
 * phrase -> "\"w1 w2\"".
 */
#include <cstdio>
#include <cstring>
#include <string>

#include <xapian.h>

#include "harness/harness.h"

namespace {

// Positions skipped between title and body: enough that no phrase of the
// query set (two words) can match across the two fields.
const Xapian::termpos kFieldGap = 100;

long long build(bench_corpus *c, const char *, const char *dir) {
    try {
        Xapian::WritableDatabase db(dir, Xapian::DB_CREATE);
        Xapian::TermGenerator tg;
        tg.set_stemmer(Xapian::Stem("english"));
        tg.set_stemming_strategy(Xapian::TermGenerator::STEM_SOME);
        long long n = 0;
        bench_doc d;
        std::string data;
        while (bench_corpus_next(c, &d)) {
            Xapian::Document doc;
            tg.set_document(doc);
            tg.index_text(std::string(d.title, d.title_len));
            tg.increase_termpos(kFieldGap);
            tg.index_text(std::string(d.body, d.body_len));
            doc.add_boolean_term(std::string("Q").append(d.id, d.id_len));
            data.assign(d.id, d.id_len).append(1, '\n');
            data.append(d.title, d.title_len).append(1, '\n').append(d.body, d.body_len);
            doc.set_data(data);
            db.add_document(doc);
            n++;
        }
        db.commit();
        db.close();
        return n;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "peer_xapian: %s\n", e.get_description().c_str());
        return -1;
    }
}

struct QueryCtx {
    Xapian::Database db;
    Xapian::QueryParser qp;
    Xapian::Enquire enquire;
    explicit QueryCtx(const char *dir) : db(dir), enquire(db) {
        qp.set_stemmer(Xapian::Stem("english"));
        qp.set_stemming_strategy(Xapian::QueryParser::STEM_SOME);
        enquire.set_weighting_scheme(Xapian::BM25Weight());
    }
};

void *open_index(const char *dir) {
    try {
        return new QueryCtx(dir);
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "peer_xapian: %s\n", e.get_description().c_str());
        return nullptr;
    }
}

void close_index(void *p) { delete static_cast<QueryCtx *>(p); }

int render(const bench_query *q, char *out, size_t cap) {
    std::string s;
    if (q->kind == BENCH_Q_PHRASE) s += '"';
    for (size_t i = 0; i < q->nwords; i++) {
        if (i) s += ' ';
        s += q->words[i];
    }
    if (q->kind == BENCH_Q_PHRASE) s += '"';
    if (s.size() + 1 > cap) return -1;
    std::memcpy(out, s.c_str(), s.size() + 1);
    return static_cast<int>(s.size());
}

long run(void *p, const bench_query *q, const char *text, size_t len, size_t k) {
    auto *c = static_cast<QueryCtx *>(p);
    try {
        c->qp.set_default_op(q->kind == BENCH_Q_AND ? Xapian::Query::OP_AND
                                                   : Xapian::Query::OP_OR);
        Xapian::Query query = c->qp.parse_query(std::string(text, len));
        c->enquire.set_query(query);
        Xapian::MSet mset = c->enquire.get_mset(0, static_cast<Xapian::doccount>(k));
        long n = 0;
        uint64_t sink = 0;
        for (Xapian::MSetIterator it = mset.begin(); it != mset.end(); ++it) {
            sink += *it;
            n++;
        }
        bench_sink += sink;
        return n;
    } catch (const Xapian::Error &e) {
        std::fprintf(stderr, "peer_xapian: %s: %s\n", text, e.get_description().c_str());
        return -1;
    }
}

}  // namespace

int main(int argc, char **argv) {
    static char build_settings[256], query_settings[256];
    std::snprintf(build_settings, sizeof build_settings,
                  "Xapian %s (glass): TermGenerator Stem(english) STEM_SOME, positions, title + "
                  "body, Q<id> term, text as data; default flush threshold; one commit",
                  Xapian::version_string());
    std::snprintf(query_settings, sizeof query_settings,
                  "Xapian %s: QueryParser STEM_SOME (OR; AND for and*), BM25Weight defaults, "
                  "get_mset(0, k); docids read",
                  Xapian::version_string());
    bench_build_spec b{};
    b.engine = "xapian";
    b.settings = build_settings;
    b.reads_file = 0;
    b.build = build;
    bench_query_spec q{};
    q.engine = "xapian";
    q.settings = query_settings;
    q.open = open_index;
    q.close = close_index;
    q.render = render;
    q.run = run;
    return bench_main(argc, argv, &b, &q);
}
