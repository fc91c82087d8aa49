/* The floor for bench/mount.ts: the same syscalls as mountat + unmountat of a procfs, in C.
 * Usage: mount-floor DIRECTORY ITERATIONS (DIRECTORY holds an empty "proc"); prints the mean
 * cost of one pair in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../native/syscall-numbers.h"

#define MNT_DETACH 2

static void check(long result, const char *what) {
  if (result < 0) {
    perror(what);
    exit(1);
  }
}

static void mount_and_unmount(int dir) {
  struct open_how how = {
      .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  long target = syscall(SYS_openat2, dir, "proc", &how, sizeof how);
  check(target, "openat2");
  long fs = syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
  check(fs, "fsopen");
  check(syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0), "fsconfig");
  long mount = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                       MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  check(mount, "fsmount");
  close(fs);
  check(syscall(SYS_move_mount, mount, "", target, "",
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
        "move_mount");
  close(target);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%ld", mount);
  check(syscall(SYS_umount2, path, MNT_DETACH), "umount2");
  close(mount);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIRECTORY ITERATIONS\n", argv[0]);
    return 2;
  }
  int dir = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
  check(dir, argv[1]);
  long iterations = atol(argv[2]);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long i = 0; i < iterations; i++) mount_and_unmount(dir);
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
  printf("%.3f\n", seconds * 1e6 / (double)iterations);
  return 0;
}
