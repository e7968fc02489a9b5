/*
 * reader.c - sahel_index: one snapshot of an index directory.
 *
 * Opening reads the manifest once and maps every segment it names, with
 * its deletion bitmap; the snapshot never changes afterwards, whatever a
 * writer does to the directory: files are immutable and a writer removes
 * a file only after a newer manifest no longer names it, and a mapping
 * outlives the unlinking of its file.  A writer may remove a file between
 * our reading the manifest and opening that file: the open then fails,
 * the manifest has a newer generation, and opening starts again from it.
 *
 * Statistics that ranking needs (N, average field lengths) are summed over
 * all segments, so that scores do not depend on how the index is cut into
 * segments.  Deleted documents stay in them until a merge rewrites their
 * segment (Lucene's choice: exact statistics would cost a pass over every
 * deleted document's terms at each commit).
 */
#include <stdio.h>

#include "index.h"

/* A snapshot that keeps moving under us this many times in a row is not
 * a race but a fault. */
#define OPEN_TRIES 20

static void close_segments(sahel_index *ix) {
    for (size_t i = 0; i < ix->nsegs; i++) sh_segment_close(&ix->segs[i]);
    sh_free(ix->segs);
    ix->segs = NULL;
    ix->nsegs = 0;
    sh_manifest_free(&ix->man);
    ix->ndocs = ix->ndeleted = ix->sum_len_title = ix->sum_len_body = 0;
    ix->nterms = ix->bytes = 0;
}

static int open_segments(sahel_index *ix, const char *dir, sahel_error *err) {
    int rc;
    if ((rc = sh_manifest_read(dir, &ix->man, err))) return rc;
    ix->segs = sh_calloc(ix->man.nsegs ? ix->man.nsegs : 1, sizeof *ix->segs);
    if (!ix->segs) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    for (size_t i = 0; i < ix->man.nsegs; i++) {
        const sh_manifest_seg *ms = &ix->man.segs[i];
        if ((rc = sh_segment_open(dir, ms->name, &ix->segs[i], err))) return rc;
        ix->nsegs = i + 1;
        sh_segment *s = &ix->segs[i];
        if (s->ndocs != ms->ndocs)
            return sh_err(err, SAHEL_ECORRUPT,
                          "%s: index is damaged: segment holds %u documents, the manifest says %u",
                          s->path, s->ndocs, ms->ndocs);
        if (strcmp(s->lang, ix->man.lang) != 0)
            return sh_err(err, SAHEL_ECORRUPT,
                          "%s: index is damaged: segment analysed as '%s', the index as '%s'",
                          s->path, s->lang, ix->man.lang);
        if (ms->del_gen) {
            if ((rc = sh_del_read(dir, ms->name, ms->del_gen, s->ndocs, &s->deleted, &s->ndeleted,
                                  err)))
                return rc;
            if (s->ndeleted != ms->ndeleted)
                return sh_err(err, SAHEL_ECORRUPT,
                              "%s: index is damaged: %u deletions, the manifest says %u", s->path,
                              s->ndeleted, ms->ndeleted);
        }
        ix->ndocs += s->ndocs;
        ix->ndeleted += s->ndeleted;
        ix->sum_len_title += s->sum_len_title;
        ix->sum_len_body += s->sum_len_body;
        ix->nterms += s->nterms;
        ix->bytes += s->size;
    }
    return 0;
}

int sahel_index_open(const char *dir, sahel_index **out, sahel_error *err) {
    *out = NULL;
    if (!dir || !*dir) return sh_err(err, SAHEL_EINVAL, "no index directory given");
    sahel_index *ix = sh_calloc(1, sizeof *ix);
    if (!ix) return sh_err(err, SAHEL_ENOMEM, "out of memory");
    int rc;
    ix->dir = sh_strndup(dir, strlen(dir));
    if (!ix->dir) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (int attempt = 0;; attempt++) {
        rc = open_segments(ix, dir, err);
        if (!rc) break;
        if (rc == SAHEL_ENOMEM || attempt + 1 >= OPEN_TRIES) goto fail;
        /* did a commit replace the snapshot while we opened it? */
        uint64_t gen = ix->man.generation;
        close_segments(ix);
        sh_manifest now;
        sahel_error e2 = {0};
        if (sh_manifest_read(dir, &now, &e2) != 0) goto fail;
        uint64_t now_gen = now.generation;
        sh_manifest_free(&now);
        if (now_gen == gen) goto fail; /* the same snapshot: real damage */
    }
    /* the query analysis is the one the index records about itself */
    if ((rc = sh_analyzer_new(ix->man.lang[0] ? ix->man.lang : "english", &ix->analyzer, err)))
        goto fail;
    *out = ix;
    return 0;
fail:
    sahel_index_close(ix);
    return rc;
}

void sahel_index_close(sahel_index *ix) {
    if (!ix) return;
    close_segments(ix);
    sh_analyzer_free(ix->analyzer);
    sh_free(ix->dir);
    sh_free(ix);
}

void sahel_index_get_info(const sahel_index *ix, sahel_index_info *info) {
    memset(info, 0, sizeof *info);
    info->ndocs = ix->ndocs - ix->ndeleted;
    info->ndeleted = ix->ndeleted;
    info->nsegments = ix->nsegs;
    info->nterms = ix->nterms;
    info->bytes = ix->bytes;
    info->generation = ix->man.generation;
    info->avg_title_len = ix->ndocs ? (double)ix->sum_len_title / (double)ix->ndocs : 0;
    info->avg_body_len = ix->ndocs ? (double)ix->sum_len_body / (double)ix->ndocs : 0;
    info->language = ix->man.lang;
}

int sahel_index_segment_info(const sahel_index *ix, size_t i, sahel_segment_info *info) {
    memset(info, 0, sizeof *info);
    if (i >= ix->nsegs) return SAHEL_EINVAL;
    const sh_segment *s = &ix->segs[i];
    info->name = s->name;
    info->ndocs = s->ndocs;
    info->ndeleted = s->ndeleted;
    info->nterms = s->nterms;
    info->bytes = s->size;
    return 0;
}

int sh_segment_find_id(const sh_segment *seg, const char *id, size_t len, uint32_t *doc,
                       sahel_error *err) {
    uint32_t lo = 0, hi = seg->ndocs;
    const uint8_t *order = seg->sec[SH_SEC_IDSORT].p;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint32_t d = sh_load_u32(order + (size_t)mid * 4);
        const char *s;
        size_t sl;
        int rc = sh_segment_doc_id(seg, d, &s, &sl, err);
        if (rc) return rc;
        int c = memcmp(s, id, SH_MIN(sl, len));
        if (c == 0) c = sl < len ? -1 : sl > len;
        if (c == 0) {
            if (sh_bit_get(seg->deleted, d)) return 0;
            *doc = d;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

int sahel_index_has_id(sahel_index *ix, const char *id, size_t id_len, sahel_error *err) {
    for (size_t i = ix->nsegs; i-- > 0;) {
        uint32_t d;
        int rc = sh_segment_find_id(&ix->segs[i], id, id_len, &d, err);
        if (rc) return rc;
    }
    return 0;
}

int sahel_index_verify(sahel_index *ix, sahel_error *err) {
    for (size_t i = 0; i < ix->nsegs; i++) {
        int rc = sh_segment_verify(&ix->segs[i], err);
        if (rc) return rc;
    }
    if (ix->man.sources_gen) {
        /* the sources table is not mapped at open (searches never need
         * it): read and checked whole now.  If a commit has replaced this
         * snapshot meanwhile, the table may be gone with it: not damage. */
        sh_srctab t;
        int rc = sh_srctab_read(ix->dir, ix->man.sources_gen, &t, err);
        if (rc == 0) {
            sh_srctab_free(&t);
        } else {
            sh_manifest now;
            sahel_error e2 = {0};
            int moved = 0;
            if (sh_manifest_read(ix->dir, &now, &e2) == 0) {
                moved = now.generation != ix->man.generation;
                sh_manifest_free(&now);
            }
            if (!moved) return rc;
        }
    }
    return 0;
}
