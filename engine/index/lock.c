/*
 * lock.c - one writer per index: the LOCK file.
 *
 * A writer holds an exclusive flock(2) on DIR/LOCK for its whole life and
 * writes its pid into the file.  The kernel drops the lock when the
 * process ends, however it ends (exit, crash, SIGKILL), so a lock left by
 * a dead process is never an obstacle: the next writer simply gets it.  A
 * second live writer gets SAHEL_ELOCKED naming the holder's pid.  Readers
 * take no lock: they read one manifest and see one snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include "index.h"

int sh_lock_acquire(const char *dir, int *fd_out, int *stale_pid, sahel_error *err) {
    *fd_out = -1;
    if (stale_pid) *stale_pid = 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, SH_LOCK_FILE) >= sizeof path)
        return sh_err(err, SAHEL_EINVAL, "index path too long: %s", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return sh_err_errno(err, SAHEL_EIO, errno, "cannot open %s", path);
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return pid > 0 ? sh_err(err, SAHEL_ELOCKED,
                                    "index %s is locked by pid %ld (another sahelindex is "
                                    "writing it)", dir, pid)
                           : sh_err(err, SAHEL_ELOCKED, "index %s is locked by another writer",
                                    dir);
        return sh_err_errno(err, SAHEL_EIO, e, "cannot lock %s", path);
    }
    /* we hold it: a pid still in the file was a writer that died */
    if (stale_pid && pid > 0 && pid != (long)getpid()) *stale_pid = (int)pid;
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        int e = errno;
        close(fd);
        return sh_err_errno(err, SAHEL_EIO, e, "cannot write %s", path);
    }
    *fd_out = fd;
    return 0;
}

void sh_lock_release(int fd) {
    if (fd < 0) return;
    /* an empty file says nobody holds it; closing drops the flock */
    if (ftruncate(fd, 0) != 0) {
        /* nothing to do: the flock goes with the descriptor either way */
    }
    close(fd);
}
