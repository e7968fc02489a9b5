/*
 * error.c - error codes and messages.
 *
 * The library reports every failure as a negative code plus a message that
 * names where it happened (file and offset, query column); it never prints.
 */
#include <stdio.h>

#include "common.h"

const char *sahel_strerror(int code) {
    switch (code) {
    case SAHEL_OK: return "success";
    case SAHEL_ENOMEM: return "out of memory";
    case SAHEL_EIO: return "input/output error";
    case SAHEL_ECORRUPT: return "index is damaged";
    case SAHEL_EVERSION: return "unsupported index format version";
    case SAHEL_ESYNTAX: return "query syntax error";
    case SAHEL_EINVAL: return "invalid argument";
    case SAHEL_ENOTINDEX: return "not a sahelsearch index";
    case SAHEL_EEXIST: return "index already exists";
    case SAHEL_EDUPLICATE: return "duplicate article id";
    case SAHEL_ETOOBIG: return "input too large";
    case SAHEL_ELOCKED: return "index is locked";
    default: return "unknown error";
    }
}

static void fill(sahel_error *err, int code, const char *fmt, va_list ap) {
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int sh_err(sahel_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        fill(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sh_err_errno(sahel_error *err, int code, int errno_value, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        fill(err, code, fmt, ap);
        va_end(ap);
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errno_value));
    }
    return code;
}
