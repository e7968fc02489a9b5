/*
 * reader.c - sahel_index: one snapshot of an index directory.
 *
 * Opening reads the manifest once and maps every segment it names; the
 * snapshot never changes afterwards, whatever a writer does to the
 * directory (segment files are immutable and replaced, never rewritten).
 * Statistics that ranking needs (N, average field lengths) are summed here
 * over all segments, so that scores do not depend on how the index is cut
 * into segments.
 */
#include <stdio.h>

#include "index.h"

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
    if ((rc = sh_manifest_read(dir, &ix->man, err))) goto fail;
    ix->segs = sh_calloc(ix->man.nsegs ? ix->man.nsegs : 1, sizeof *ix->segs);
    if (!ix->segs) {
        rc = sh_err(err, SAHEL_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < ix->man.nsegs; i++) {
        if ((rc = sh_segment_open(dir, ix->man.segs[i].name, &ix->segs[i], err))) goto fail;
        ix->nsegs = i + 1;
        const sh_segment *s = &ix->segs[i];
        if (s->ndocs != ix->man.segs[i].ndocs) {
            rc = sh_err(err, SAHEL_ECORRUPT,
                        "%s: index is damaged: segment holds %u documents, the manifest says %u",
                        s->path, s->ndocs, ix->man.segs[i].ndocs);
            goto fail;
        }
        if (ix->man.segs[i].del_gen != 0) {
            /* deletions come with incremental updates; a reader that
             * ignored them would show deleted articles */
            rc = sh_err(err, SAHEL_EVERSION,
                        "%s: segment has deleted articles, which this version cannot read",
                        s->path);
            goto fail;
        }
        if (strcmp(s->lang, ix->man.lang) != 0) {
            rc = sh_err(err, SAHEL_ECORRUPT,
                        "%s: index is damaged: segment analysed as '%s', the index as '%s'",
                        s->path, s->lang, ix->man.lang);
            goto fail;
        }
        ix->ndocs += s->ndocs;
        ix->sum_len_title += s->sum_len_title;
        ix->sum_len_body += s->sum_len_body;
        ix->nterms += s->nterms;
        ix->bytes += s->size;
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
    for (size_t i = 0; i < ix->nsegs; i++) sh_segment_close(&ix->segs[i]);
    sh_free(ix->segs);
    sh_manifest_free(&ix->man);
    sh_analyzer_free(ix->analyzer);
    sh_free(ix->dir);
    sh_free(ix);
}

void sahel_index_get_info(const sahel_index *ix, sahel_index_info *info) {
    memset(info, 0, sizeof *info);
    info->ndocs = ix->ndocs;
    info->nsegments = ix->nsegs;
    info->nterms = ix->nterms;
    info->bytes = ix->bytes;
    info->generation = ix->man.generation;
    info->avg_title_len = ix->ndocs ? (double)ix->sum_len_title / (double)ix->ndocs : 0;
    info->avg_body_len = ix->ndocs ? (double)ix->sum_len_body / (double)ix->ndocs : 0;
    info->language = ix->man.lang;
}

int sahel_index_verify(sahel_index *ix, sahel_error *err) {
    for (size_t i = 0; i < ix->nsegs; i++) {
        int rc = sh_segment_verify(&ix->segs[i], err);
        if (rc) return rc;
    }
    return 0;
}
