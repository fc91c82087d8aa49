/* openat2(2) as both the addon and the spawned child call it. */
#ifndef CHROOT_RUNNER_OPENAT2_H
#define CHROOT_RUNNER_OPENAT2_H

#include <errno.h>
#include <linux/openat2.h>
#include <unistd.h>

#include "syscall-numbers.h"

/* Repeated while it fails with EAGAIN: with RESOLVE_BENEATH or RESOLVE_IN_ROOT, the kernel
 * refuses a ".." component when any rename or mount happened on the system meanwhile, and
 * the man page's remedy is to retry. Bounded, so that renames in a loop cannot hold us. */
static inline long openat2_retrying(int dir_fd, const char *path, struct open_how *how) {
  long fd = -1;
  for (int attempt = 0; attempt < 64; attempt++) {
    fd = syscall(SYS_openat2, dir_fd, path, how, sizeof *how);
    if (fd >= 0 || errno != EAGAIN) break;
  }
  return fd;
}

#endif
