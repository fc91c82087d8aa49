/* Attacks of the third review (test/kernel/hostile-third.test.ts) that busybox and the other
 * helpers cannot try; prints one line per outcome. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(void) { return strerrorname_np(errno); }
static const char *name_of(long result) { return result < 0 ? strerrorname_np((int)-result) : "ok"; }

/* A system call through the i386 entry (int 0x80): the filter's x86 part. Pointers must be
 * below 4 GiB: a static, non-PIE binary's data is. */
static long int80(long number, long a, long b, long c, long d) {
  long result;
  __asm__ volatile("int $0x80"
                   : "=a"(result)
                   : "a"(number), "b"(a), "c"(b), "d"(c), "S"(d), "D"(0L)
                   : "memory");
  return result;
}

/* socketcall(SYS_SOCKET, {domain, type, 0}): how glibc's i386 socket() creates a socket
 * (Debian's glibc assumes no direct socket syscall, Linux 4.3's). */
static unsigned int socketcall_arguments[3];

static int socketcall_socket(int domain) {
  socketcall_arguments[0] = (unsigned int)domain;
  socketcall_arguments[1] = 1; /* SOCK_STREAM */
  socketcall_arguments[2] = 0;
  long fd = int80(102, 1, (long)(unsigned long)socketcall_arguments, 0, 0);
  printf("socketcall-socket %d %s\n", domain, name_of(fd));
  if (fd >= 0) close((int)fd);
  return 0;
}

/* Every refusal of the default policy, through the i386 entry, each with arguments that the
 * x86_64 part refuses. One line each: name and errno (ok if it ran). */
static int int80_refusals(void) {
  static const struct {
    const char *name;
    long number, a, b, c, d;
  } calls[] = {
      {"unshare-newuser", 310, 0x10000000, 0, 0, 0},
      {"clone-newuser", 120, 0x10000000 | 17, 0, 0, 0},
      {"clone3", 435, 0, 0, 0, 0},
      {"ioctl-tiocsti", 54, 0, 0x5412, 0, 0},
      {"ioctl-tioclinux", 54, 0, 0x541c, 0, 0},
      {"add_key", 286, 0, 0, 0, 0},
      {"request_key", 287, 0, 0, 0, 0},
      {"keyctl", 288, 0, 0, 0, 0},
      {"chmod-setuid", 15, 0, 04755, 0, 0},
      {"fchmod-setgid", 94, -1, 02755, 0, 0},
      {"fchmodat-setuid", 306, -100, 0, 04755, 0},
      {"fchmodat2-setuid", 452, -100, 0, 04755, 0},
      {"mknod-setuid", 14, 0, 0104755, 0, 0},
      {"mknodat-setgid", 297, -100, 0, 0102755, 0},
      {"open-creat-setuid", 5, 0, 0100, 04755, 0},
      {"openat-tmpfile-setgid", 295, -100, 0, 020200000, 02755},
      {"creat-setuid", 8, 0, 04755, 0, 0},
      {"openat2", 437, 0, 0, 0, 0},
      {"bpf", 357, 0, 0, 0, 0},
      {"perf_event_open", 336, 0, 0, 0, 0},
      {"userfaultfd", 374, 0, 0, 0, 0},
      {"io_uring_setup", 425, 0, 0, 0, 0},
      {"io_uring_enter", 426, 0, 0, 0, 0},
      {"io_uring_register", 427, 0, 0, 0, 0},
      {"kexec_load", 283, 0, 0, 0, 0},
      {"init_module", 128, 0, 0, 0, 0},
      {"finit_module", 350, -1, 0, 0, 0},
      {"delete_module", 129, 0, 0, 0, 0},
      {"socket-vsock", 359, 40, 1, 0, 0},
      {"open_by_handle_at", 342, -1, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    long result = int80(calls[i].number, calls[i].a, calls[i].b, calls[i].c, calls[i].d);
    printf("%s %s\n", calls[i].name, name_of(result));
  }
  socketcall_arguments[0] = 40; /* AF_VSOCK */
  socketcall_arguments[1] = 1;
  socketcall_arguments[2] = 0;
  printf("socketcall-vsock %s\n",
         name_of(int80(102, 1, (long)(unsigned long)socketcall_arguments, 0, 0)));
  return 0;
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t written = write(fd, text, strlen(text));
  close(fd);
  return written == (ssize_t)strlen(text) ? 0 : -1;
}

/* In a user and mount namespace of its own (where the operator allows nested user
 * namespaces), where it holds every capability over the mounts it copied: tries to uncover
 * or make writable each mask given, by every API. A mask is a clone of a template that all
 * actions' masks share (one superblock): a write through any of them would reach them all. */
static int nested_masks(int count, char **paths) {
  /* No id map: the action's uid 0 may map only itself, and the kernel maps a parent's root
   * only for a creator that held CAP_SETFCAP (dropped). The mount calls need none: the
   * process holds every capability over the mount namespace it owns. */
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    printf("unshare-refused %s\n", err());
    return 0;
  }
  for (int i = 0; i < count; i++) {
    const char *path = paths[i];
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND, NULL) == 0) printf("remounted-rw %s\n", path);
    int clone = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (clone < 0) {
      printf("open_tree-failed %s %s\n", path, err());
    } else {
      struct mount_attr attr = {.attr_clr = MOUNT_ATTR_RDONLY};
      if (syscall(SYS_mount_setattr, clone, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) {
        printf("clone-made-writable %s\n", path);
        int made = openat(clone, "made", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (made >= 0) {
          printf("wrote-into %s\n", path);
          close(made);
        }
      }
      close(clone);
    }
    int picked = (int)syscall(SYS_fspick, AT_FDCWD, path, FSPICK_CLOEXEC);
    if (picked >= 0) {
      if (syscall(SYS_fsconfig, picked, FSCONFIG_SET_FLAG, "rw", NULL, 0) == 0 &&
          syscall(SYS_fsconfig, picked, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) == 0)
        printf("reconfigured-rw %s\n", path);
      close(picked);
    }
    if (umount2(path, MNT_DETACH) == 0) printf("unmounted %s\n", path);
  }
  printf("nested-done\n");
  return 0;
}

/* Binds an abstract unix socket of a fixed name: abstract names are per network namespace,
 * so a second action that shares this one's finds it taken (EADDRINUSE). With ready and
 * gate (FIFOs), holds it until the gate opens. */
static int abstract_hold(const char *ready, const char *gate) {
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  static const char name[] = "chroot-runner-third";
  memcpy(address.sun_path + 1, name, sizeof name - 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&address,
                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof name)) != 0) {
    printf("bind-failed %s\n", err());
  } else {
    printf("bound\n");
  }
  fflush(stdout);
  if (ready != NULL && gate != NULL) {
    char byte;
    if (write_file(ready, "ready\n") != 0) printf("ready-failed %s\n", err());
    int wait = open(gate, O_RDONLY | O_CLOEXEC);
    if (wait < 0 || read(wait, &byte, 1) != 1) printf("gate-failed %s\n", err());
    if (wait >= 0) close(wait);
    printf("released\n");
  }
  if (fd >= 0) close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *what = argv[1];
  if (strcmp(what, "int80-refusals") == 0) return int80_refusals();
  if (strcmp(what, "socketcall-socket") == 0 && argc > 2) return socketcall_socket(atoi(argv[2]));
  if (strcmp(what, "nested-masks") == 0) return nested_masks(argc - 2, argv + 2);
  if (strcmp(what, "abstract-hold") == 0)
    return abstract_hold(argc > 3 ? argv[2] : NULL, argc > 3 ? argv[3] : NULL);
  return 2;
}
