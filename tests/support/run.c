/*
 * run.c - test support: run a program capturing its output, and small
 * file-system helpers (see run.h).
 *
 * Output goes to unlinked temporary files rather than pipes, so a child
 * that writes a lot to both streams can never block on a full pipe while
 * we wait for it.  Everything the child needs is prepared before fork(),
 * so the child only calls async-signal-safe functions (the test runner
 * may have threads).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

extern char **environ;

/* The length of the NAME part of "NAME=value" or "NAME". */
static size_t env_name_len(const char *s) {
    const char *eq = strchr(s, '=');
    return eq ? (size_t)(eq - s) : strlen(s);
}

/* environ without the names `env` mentions, then env's "NAME=value"s. */
static char **make_env(const char *const *env) {
    size_t n = 0, m = 0;
    while (environ[n]) n++;
    while (env && env[m]) m++;
    char **out = calloc(n + m + 1, sizeof *out);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = env_name_len(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < m; j++) {
            if (env_name_len(env[j]) == len && strncmp(env[j], environ[i], len) == 0) {
                overridden = 1;
                break;
            }
        }
        if (!overridden) out[o++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        if (strchr(env[j], '=')) out[o++] = (char *)(uintptr_t)env[j];
    out[o] = NULL;
    return out;
}

static char *slurp(FILE *f, size_t *len) {
    *len = 0;
    if (fseek(f, 0, SEEK_END) != 0) return NULL;
    long size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) return NULL;
    char *p = malloc((size_t)size + 1);
    if (!p) return NULL;
    size_t got = fread(p, 1, (size_t)size, f);
    p[got] = '\0';
    *len = got;
    return p;
}

int sh_test_run_argv(sh_test_run *r, const char *cwd, const char *const *env,
                     const char *const *argv) {
    memset(r, 0, sizeof *r);
    FILE *out = tmpfile(), *err = tmpfile();
    char **envp = make_env(env);
    int devnull = open("/dev/null", O_RDONLY);
    int rc = -1;
    if (!out || !err || !envp || devnull < 0) goto done;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) goto done;
    if (pid == 0) {
        if (cwd && chdir(cwd) != 0) _exit(126);
        if (dup2(devnull, 0) < 0 || dup2(fileno(out), 1) < 0 || dup2(fileno(err), 2) < 0)
            _exit(126);
        execve(argv[0], (char *const *)(uintptr_t)argv, envp);
        _exit(127);
    }
    int ws;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) goto done;
    }
    if (WIFSIGNALED(ws)) {
        r->signaled = 1;
        r->status = 128 + WTERMSIG(ws);
    } else {
        r->status = WEXITSTATUS(ws);
    }
    r->out = slurp(out, &r->out_len);
    r->err = slurp(err, &r->err_len);
    if (!r->out || !r->err) {
        sh_test_run_free(r);
        goto done;
    }
    rc = 0;
done:
    if (devnull >= 0) close(devnull);
    free(envp);
    if (out) fclose(out);
    if (err) fclose(err);
    return rc;
}

void sh_test_run_free(sh_test_run *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}

/* ---- files -------------------------------------------------------------- */

static int join(char *buf, size_t size, const char *a, const char *b) {
    int n = snprintf(buf, size, "%s/%s", a, b);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int sh_test_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    chmod(path, 0700); /* a test may have taken the rights away */
    DIR *d = opendir(path);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char sub[4096];
        if (join(sub, sizeof sub, path, e->d_name) != 0 || sh_test_rm_rf(sub) != 0) rc = -1;
    }
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int sh_test_mkdir_p(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    return 0;
}

char *sh_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n;
    char *p = slurp(f, &n);
    fclose(f);
    if (p && len) *len = n;
    return p;
}

int sh_test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int rc = fclose(f);
    return put == len && rc == 0 ? 0 : -1;
}

int sh_test_copy_tree(const char *from, const char *to) {
    struct stat st;
    if (stat(from, &st) != 0) return -1;
    if (S_ISREG(st.st_mode)) {
        size_t len;
        char *data = sh_test_read_file(from, &len);
        if (!data) return -1;
        int rc = sh_test_write_file(to, data, len);
        free(data);
        return rc;
    }
    if (!S_ISDIR(st.st_mode)) return -1;
    if (mkdir(to, 0777) != 0 && errno != EEXIST) return -1;
    DIR *d = opendir(from);
    if (!d) return -1;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char a[4096], b[4096];
        if (join(a, sizeof a, from, e->d_name) != 0 || join(b, sizeof b, to, e->d_name) != 0 ||
            sh_test_copy_tree(a, b) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}
