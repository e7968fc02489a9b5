/*
 * run.h - test support: run a program and capture what it prints, and the
 * few file-system chores end-to-end tests need (scratch directories,
 * copying, reading and writing files).
 *
 * Compiled into every test executable (tests/CMakeLists.txt globs the .c
 * files of tests/support); names carry the sh_test_ prefix so that they
 * cannot clash with the engine's sh_ names.
 */
#ifndef SAHEL_TEST_RUN_H
#define SAHEL_TEST_RUN_H

#include <stddef.h>

typedef struct sh_test_run {
    int status;   /* exit status; 128 + N when killed by signal N */
    int signaled; /* 1 when killed by a signal */
    char *out;    /* standard output, NUL-terminated */
    size_t out_len;
    char *err;    /* standard error, NUL-terminated */
    size_t err_len;
} sh_test_run;

/* Run argv[0] (a path, not searched in PATH) with arguments argv (NULL-
 * terminated), standard input from /dev/null, in directory `cwd` (NULL:
 * the current one), with this process's environment changed by `env`
 * (NULL-terminated, may be NULL): "NAME=value" sets NAME, "NAME" removes
 * it.  Waits for it and fills *r.  Returns 0, or -1 when it could not be
 * started (then *r is empty). */
int sh_test_run_argv(sh_test_run *r, const char *cwd, const char *const *env,
                     const char *const *argv);
void sh_test_run_free(sh_test_run *r);

/* rm -rf path (missing is fine); 0 or -1. Unreadable directories are
 * made readable first so that chmod tests clean up after themselves. */
int sh_test_rm_rf(const char *path);
/* mkdir -p path; 0 or -1. */
int sh_test_mkdir_p(const char *path);
/* cp -R from to (regular files and directories only); 0 or -1. */
int sh_test_copy_tree(const char *from, const char *to);
/* The whole file, NUL-terminated (malloc'd), or NULL. */
char *sh_test_read_file(const char *path, size_t *len);
/* Create or replace path with [data, data+len); 0 or -1. */
int sh_test_write_file(const char *path, const void *data, size_t len);

#endif /* SAHEL_TEST_RUN_H */
