/* The plan interpreter: the code that runs in the child between clone and exec.
 *
 * The child runs on the parent's memory (CLONE_VM|CLONE_VFORK, see spawn.c), so it only makes
 * system calls: no malloc, no locks, no libc call that touches other threads (set*id go
 * through syscall() because glibc's wrappers signal every thread), and no cancellation
 * points (openat, close: glibc's wrappers update the calling thread's cancellation state,
 * which is the suspended parent's), which go through syscall() too. It interprets the plan's
 * steps over a table of fd "slots" and ends by exec'ing the init. */
#include "openat2.h"
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct kernel_sigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  uint64_t mask;
};

static const char *step_string(const struct spawn_context *ctx, int index) {
  return index >= 0 ? ctx->strings[index] : "";
}

static int slot_fd(const struct spawn_context *ctx, int slot) {
  if (slot < 0) return AT_FDCWD;
  return (size_t)slot < ctx->slot_count ? ctx->slots[slot] : -2;
}

static bool slot_valid(const struct spawn_context *ctx, int slot) {
  return slot >= 0 && (size_t)slot < ctx->slot_count;
}

static int open_beneath(int base, const char *path, int flags, int resolve) {
  struct open_how how = {.flags = (uint64_t)flags | O_CLOEXEC, .resolve = (uint64_t)resolve};
  return (int)openat2_retrying(base, path, &how);
}

/* Moves slots that sit on fd `target` out of the way before dup2 overwrites it. */
static int vacate_fd(struct spawn_context *ctx, int target, int keep_slot) {
  for (size_t i = 0; i < ctx->slot_count; i++) {
    if ((int)i == keep_slot || ctx->slots[i] != target) continue;
    int moved = fcntl(target, F_DUPFD_CLOEXEC, 10);
    if (moved < 0) return -1;
    for (size_t j = i; j < ctx->slot_count; j++) {
      if (ctx->slots[j] == target && (int)j != keep_slot) ctx->slots[j] = moved;
    }
  }
  return 0;
}

static int drop_bounding_caps(uint32_t keep_low, uint32_t keep_high) {
  for (int cap = 0; cap < 64; cap++) {
    uint32_t keep = cap < 32 ? keep_low >> cap : keep_high >> (cap - 32);
    if (keep & 1) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
      if (errno == EINVAL) return 0; /* past the kernel's last capability */
      return -1;
    }
  }
  return 0;
}

int loopback_up(int *syscall_id) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    *syscall_id = SYS_ID_SOCKET;
    return -1;
  }
  struct ifreq request;
  memset(&request, 0, sizeof request);
  memcpy(request.ifr_name, "lo", 3);
  request.ifr_flags = IFF_UP | IFF_RUNNING;
  *syscall_id = SYS_ID_IOCTL;
  int result = ioctl(sock, SIOCSIFFLAGS, &request);
  int saved = errno;
  syscall(SYS_close, sock);
  errno = saved;
  return result;
}

/* Writes `content` to an existing file in one write(2), as /proc's id maps require. */
static int write_file(int base, const char *path, const char *content, int *syscall_id) {
  *syscall_id = SYS_ID_OPENAT;
  int fd = (int)syscall(SYS_openat, base, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  *syscall_id = SYS_ID_WRITE;
  size_t length = strlen(content);
  long written = syscall(SYS_write, fd, content, length);
  int saved = written < 0 ? errno : EIO;
  syscall(SYS_close, fd);
  if (written >= 0 && (size_t)written == length) return 0;
  errno = saved;
  return -1;
}

/* Runs one step; returns -1 with errno set and *syscall_id naming the failed call. */
/* Whether "/" is the initramfs (rootfs: a ramfs or tmpfs), the one mount pivot_root cannot
 * move, as it has no parent: the root of a system that never left its initramfs. */
static bool root_is_rootfs(void) {
  struct statfs root;
  bool rootfs =
      statfs("/", &root) == 0 && (root.f_type == RAMFS_MAGIC || root.f_type == TMPFS_MAGIC);
  errno = EINVAL;
  return rootfs;
}

/* The new root (the cwd, a mount's root) is moved over "/" and chrooted into, as switch_root
 * does: namespaces mode's way into the action's root, and where pivot_root cannot. The old
 * root stays, covered: every path and ".." start in the new root ("..", from the root of the
 * mount on "/", steps back down into it), and
 * uncovering it would take unmounting or moving the new root, which needs CAP_SYS_ADMIN over
 * the mount namespace, never kept; copies in a nested user namespace are locked together
 * (MNT_LOCKED). */
static int cover_root(int *syscall_id) {
  *syscall_id = SYS_ID_MOUNT;
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) return -1;
  *syscall_id = SYS_ID_CHROOT;
  return chroot(".");
}

static int run_step(struct spawn_context *ctx, const int32_t *step, int *syscall_id) {
  const int32_t a = step[1], b = step[2], c = step[3], d = step[4], e = step[5];
  const char *s0 = step_string(ctx, step[6]);
  const char *s1 = step_string(ctx, step[7]);
  switch (step[0]) {
    case OP_OPEN: {
      if (!slot_valid(ctx, a)) break;
      int base = slot_fd(ctx, b);
      *syscall_id = SYS_ID_OPENAT2;
      int fd = open_beneath(base, s0, c, d);
      if (fd < 0 && errno == ENOENT && (e & OPTION_MKDIR)) {
        *syscall_id = SYS_ID_MKDIRAT;
        if (mkdirat(base, s0, 0755) < 0 && errno != EEXIST) return -1;
        *syscall_id = SYS_ID_OPENAT2;
        fd = open_beneath(base, s0, c, d);
      }
      if (fd < 0 && errno == ENOENT && (e & OPTION_OPTIONAL)) fd = -1;
      else if (fd < 0) return -1;
      ctx->slots[a] = fd;
      return 0;
    }
    case OP_OPEN_TREE: {
      if (!slot_valid(ctx, a)) break;
      *syscall_id = SYS_ID_OPEN_TREE;
      int fd = open_tree(slot_fd(ctx, b), s0, (unsigned)c | OPEN_TREE_CLOEXEC);
      if (fd < 0 && errno == ENOENT && (e & OPTION_OPTIONAL)) fd = -1;
      else if (fd < 0) return -1;
      ctx->slots[a] = fd;
      return 0;
    }
    case OP_MOVE_MOUNT: {
      int source = slot_fd(ctx, a), target = slot_fd(ctx, b);
      if (source == -1 || target == -1) return 0; /* an optional piece that is absent */
      /* A target path is resolved by the kernel beneath the target slot (a filesystem of the
       * sandbox's own): one lookup, no fd of its own to open and close. A source path names
       * an attached mount beneath the source slot (the template namespace's copy), moved. */
      const unsigned flags = (step[7] >= 0 ? 0 : MOVE_MOUNT_F_EMPTY_PATH) |
                             (step[6] >= 0 ? 0 : MOVE_MOUNT_T_EMPTY_PATH);
      *syscall_id = SYS_ID_MOVE_MOUNT;
      if (move_mount(source, s1, target, s0, flags) == 0) return 0;
      return errno == ENOENT && (c & OPTION_OPTIONAL) ? 0 : -1;
    }
    case OP_FSOPEN: {
      if (!slot_valid(ctx, a)) break;
      *syscall_id = SYS_ID_FSOPEN;
      int fd = fsopen(s0, FSOPEN_CLOEXEC);
      if (fd < 0) return -1;
      ctx->slots[a] = fd;
      return 0;
    }
    case OP_FSCONFIG:
      *syscall_id = SYS_ID_FSCONFIG;
      return fsconfig(slot_fd(ctx, a), (unsigned)b, step[6] >= 0 ? s0 : NULL,
                      step[7] >= 0 ? s1 : NULL, c);
    case OP_FSMOUNT: {
      if (!slot_valid(ctx, a)) break;
      *syscall_id = SYS_ID_FSMOUNT;
      int fd = fsmount(slot_fd(ctx, b), FSMOUNT_CLOEXEC, (unsigned)c);
      if (fd < 0) return -1;
      ctx->slots[a] = fd;
      return 0;
    }
    case OP_MOUNT_SETATTR: {
      int fd = slot_fd(ctx, a);
      if (fd == -1) return 0;
      struct mount_attr attr = {.attr_set = (uint64_t)(uint32_t)b,
                                .attr_clr = (uint64_t)(uint32_t)c,
                                .propagation = (uint64_t)(uint32_t)d};
      *syscall_id = SYS_ID_MOUNT_SETATTR;
      return mount_setattr(fd, "", (unsigned)e | AT_EMPTY_PATH, &attr, sizeof attr);
    }
    case OP_MKDIRAT:
      *syscall_id = SYS_ID_MKDIRAT;
      return mkdirat(slot_fd(ctx, a), s0, (mode_t)b);
    case OP_CREATE_FILE: {
      *syscall_id = SYS_ID_OPENAT;
      int fd = (int)syscall(SYS_openat, slot_fd(ctx, a), s0,
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)b);
      if (fd < 0) return -1;
      syscall(SYS_close, fd);
      return 0;
    }
    case OP_SYMLINKAT:
      *syscall_id = SYS_ID_SYMLINKAT;
      return symlinkat(s0, slot_fd(ctx, a), s1);
    case OP_FCHDIR:
      *syscall_id = SYS_ID_FCHDIR;
      return fchdir(slot_fd(ctx, a));
    case OP_UNSHARE:
      *syscall_id = SYS_ID_UNSHARE;
      return unshare(a);
    case OP_SET_ROOT_PROPAGATION:
      *syscall_id = SYS_ID_MOUNT;
      return mount(NULL, "/", NULL, MS_REC | (unsigned long)(uint32_t)a, NULL);
    case OP_PIVOT_ROOT:
      /* The new root's mount fd is the cwd; the old root stacks on it and is detached, so
       * nothing of the host stays reachable. */
      *syscall_id = SYS_ID_FCHDIR;
      if (fchdir(slot_fd(ctx, a)) < 0) return -1;
      *syscall_id = SYS_ID_PIVOT_ROOT;
      if (syscall(SYS_pivot_root, ".", ".") == 0) {
        *syscall_id = SYS_ID_UMOUNT2;
        if (umount2(".", MNT_DETACH) < 0) return -1;
      } else if (errno == EINVAL && root_is_rootfs()) {
        if (cover_root(syscall_id) < 0) return -1;
      } else {
        return -1;
      }
      *syscall_id = SYS_ID_CHDIR;
      return chdir("/");
    case OP_COVER_ROOT:
      *syscall_id = SYS_ID_FCHDIR;
      if (fchdir(slot_fd(ctx, a)) < 0) return -1;
      if (cover_root(syscall_id) < 0) {
        /* chroot refused (a seccomp profile that allows pivot_root): the new root, moved
         * over "/" already, pivots there instead, the old root detached. */
        if (errno != EPERM || *syscall_id != SYS_ID_CHROOT) return -1;
        *syscall_id = SYS_ID_PIVOT_ROOT;
        if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
        *syscall_id = SYS_ID_UMOUNT2;
        if (umount2(".", MNT_DETACH) < 0) return -1;
      }
      *syscall_id = SYS_ID_CHDIR;
      return chdir("/");
    case OP_CHROOT:
      *syscall_id = SYS_ID_FCHDIR;
      if (fchdir(slot_fd(ctx, a)) < 0) return -1;
      *syscall_id = SYS_ID_CHROOT;
      return chroot(".");
    case OP_CHDIR: {
      *syscall_id = SYS_ID_OPENAT2;
      int fd = open_beneath(slot_fd(ctx, a), s0, O_PATH | O_DIRECTORY, b);
      if (fd < 0) return -1;
      *syscall_id = SYS_ID_FCHDIR;
      int result = fchdir(fd);
      int saved = errno;
      syscall(SYS_close, fd);
      errno = saved;
      return result;
    }
    case OP_DUP2: {
      if (!slot_valid(ctx, a)) break;
      int source = ctx->slots[a];
      *syscall_id = SYS_ID_FCNTL;
      if (source == b) return fcntl(b, F_SETFD, 0);
      if (vacate_fd(ctx, b, a) < 0) return -1;
      *syscall_id = SYS_ID_DUP2;
      return dup2(ctx->slots[a], b) < 0 ? -1 : 0;
    }
    case OP_SET_CREDENTIALS:
      *syscall_id = SYS_ID_SETGROUPS;
      if (syscall(SYS_setgroups, ctx->group_count, ctx->groups) < 0) return -1;
      *syscall_id = SYS_ID_SETRESGID;
      if (syscall(SYS_setresgid, b, b, b) < 0) return -1;
      *syscall_id = SYS_ID_SETRESUID;
      return (int)syscall(SYS_setresuid, a, a, a);
    case OP_BECOME_NAMESPACE_OWNER: {
      /* The real and effective ids, which make the next user namespace's owner and drop
       * every capability outside it; the saved ids stay, and the file system ids are put
       * back to the runner's (setres*id set them to the effective ids): until the action's
       * own credentials, the child opens what it opened before, where others may not. */
      const uid_t fsuid = (uid_t)syscall(SYS_geteuid);
      const gid_t fsgid = (gid_t)syscall(SYS_getegid);
      *syscall_id = SYS_ID_SETRESGID;
      if (syscall(SYS_setresgid, b, b, -1) < 0) return -1;
      syscall(SYS_setfsgid, fsgid);
      *syscall_id = SYS_ID_SETRESUID;
      if (syscall(SYS_setresuid, a, a, -1) < 0) return -1;
      syscall(SYS_setfsuid, fsuid);
      /* setfs*id report no error: an invalid id leaves it unchanged and returns it. */
      *syscall_id = SYS_ID_SETFSUID;
      if ((uid_t)syscall(SYS_setfsuid, -1) != fsuid || (gid_t)syscall(SYS_setfsgid, -1) != fsgid) {
        errno = EPERM;
        return -1;
      }
      return 0;
    }
    case OP_DROP_BOUNDING_CAPS:
      *syscall_id = SYS_ID_PRCTL;
      return drop_bounding_caps((uint32_t)a, (uint32_t)b);
    case OP_NO_NEW_PRIVS:
      *syscall_id = SYS_ID_PRCTL;
      return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case OP_PDEATHSIG: {
      *syscall_id = SYS_ID_PRCTL;
      if (prctl(PR_SET_PDEATHSIG, a, 0, 0, 0) < 0) return -1;
      /* The kernel signals only a child whose parent dies after the prctl: a runner killed
       * before it (during the set-up) would leave the action unsupervised, and getppid
       * cannot tell (the child's parent is outside its PID namespace). The runner's own
       * pidfd polls readable once it has exited. Without one (pidfd_open needs Linux 5.3)
       * only the signal is set, as before. */
      int runner = b >= 0 ? slot_fd(ctx, b) : -1;
      if (runner < 0) return 0;
      struct pollfd poll_runner = {.fd = runner, .events = POLLIN};
      struct timespec now = {0, 0};
      *syscall_id = SYS_ID_PPOLL;
      long ready = syscall(SYS_ppoll, &poll_runner, 1, &now, NULL, 0);
      if (ready < 0) return -1;
      if (ready == 0) return 0;
      /* The runner is gone: the step fails, and the child exits before anything runs. */
      errno = poll_runner.revents & POLLNVAL ? EBADF : ESRCH;
      return -1;
    }
    case OP_LOOPBACK_UP:
      return loopback_up(syscall_id);
    case OP_CLOEXEC_FROM:
      /* The runner may have inherited fds without CLOEXEC; the init must not hold them.
       * Kernels before 5.11 lack the flag: the init's child closes them before exec anyway. */
      if (syscall(SYS_close_range, (unsigned)a, ~0U, CLOSE_RANGE_CLOEXEC) < 0 &&
          errno != EINVAL && errno != ENOSYS) {
        *syscall_id = SYS_ID_CLOSE_RANGE;
        return -1;
      }
      return 0;
    case OP_EXEC: {
      /* Unblock signals only now: every disposition is already the default. */
      sigset_t none;
      sigemptyset(&none);
      syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
      *syscall_id = SYS_ID_EXECVEAT;
      return (int)syscall(SYS_execveat, slot_fd(ctx, a), "", ctx->argv, ctx->envp, AT_EMPTY_PATH);
    }
    case OP_WRITE_FILE:
      return write_file(slot_fd(ctx, a), s0, s1, syscall_id);
    case OP_SAME_INODE: {
      /* The same directory reached two ways: a file the runner opened, and a path resolved
       * in the action's mount namespace. */
      struct stat first, second;
      *syscall_id = SYS_ID_FSTAT;
      if (fstat(slot_fd(ctx, a), &first) < 0 || fstat(slot_fd(ctx, b), &second) < 0) return -1;
      if (first.st_dev == second.st_dev && first.st_ino == second.st_ino) return 0;
      errno = EXDEV;
      return -1;
    }
    case OP_MKNODAT: {
      /* The mode exactly as given: the runner's umask is lifted around it, in the child's own
       * copy (no CLONE_FS), so the action inherits the runner's umask unchanged. */
      const mode_t umask_before = umask(0);
      *syscall_id = SYS_ID_MKNODAT;
      int result = mknodat(slot_fd(ctx, a), s0, (mode_t)b, makedev((unsigned)c, (unsigned)d));
      int saved = errno;
      umask(umask_before);
      errno = saved;
      return result;
    }
    case OP_SETNS:
      *syscall_id = SYS_ID_SETNS;
      return setns(slot_fd(ctx, a), b);
    case OP_SETSID:
      /* No controlling terminal: TIOCSTI and /dev/tty reach nobody's terminal. */
      *syscall_id = SYS_ID_SETSID;
      return syscall(SYS_setsid) < 0 ? -1 : 0;
    case OP_JOIN_SESSION_KEYRING:
      /* None of the runner's keys are possessed inside. */
      *syscall_id = SYS_ID_KEYCTL;
      return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 ? -1 : 0;
    case OP_SECCOMP: {
      if (ctx->seccomp_length == 0) return 0;
      struct sock_fprog program = {.len = (unsigned short)ctx->seccomp_length,
                                   .filter = ctx->seccomp_program};
      /* SPEC_ALLOW: without it the kernel forces speculation mitigations on the whole tree
       * (SSB disabled, indirect branch barriers on its context switches), which cost an
       * action here as much as the rest of its set-up; the host's own policy applies. */
      *syscall_id = SYS_ID_SECCOMP;
      return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                          &program);
    }
    case OP_AWAIT_ID_MAPS: {
      /* The user namespace just unshared has no ids yet: only a process of the runner's user
       * namespace holding CAP_SETUID may map ids other than its own. Tell the runner, which
       * writes them (spawn.c's serve_id_maps), and wait for its errno. */
      __atomic_store_n(&ctx->id_maps_state, ID_MAPS_REQUESTED, __ATOMIC_RELEASE);
      *syscall_id = SYS_ID_FUTEX;
      if (futex_wake(&ctx->id_maps_state) < 0) return -1;
      while (__atomic_load_n(&ctx->id_maps_state, __ATOMIC_ACQUIRE) == ID_MAPS_REQUESTED) {
        if (futex_wait(&ctx->id_maps_state, ID_MAPS_REQUESTED, NULL) < 0 && errno != EAGAIN &&
            errno != EINTR)
          return -1;
      }
      if (ctx->id_maps_errno == 0) return 0;
      *syscall_id = SYS_ID_WRITE;
      errno = ctx->id_maps_errno;
      return -1;
    }
    case OP_EXIT:
      /* A plan run for its effect on the runner's fd table (CLONE_FILES), such as the
       * template mount namespace: its fds stay in the runner's slots. */
      ctx->exited = true;
      _exit(0);
  }
  *syscall_id = SYS_ID_BADSLOT;
  errno = EBADF;
  return -1;
}

int plan_child_main(void *arg) {
  struct spawn_context *ctx = arg;
  /* Node's handlers must never run here; SIG_IGN (Node ignores SIGPIPE) must not reach the
   * action either. All signals stay blocked until just before exec. */
  struct kernel_sigaction default_action = {.handler = SIG_DFL};
  for (int sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    syscall(SYS_rt_sigaction, sig, &default_action, NULL, sizeof(uint64_t));
  }
  for (size_t i = 0; i < ctx->step_count; i++) {
    int syscall_id = SYS_ID_BADSLOT;
    if (run_step(ctx, ctx->steps + i * PLAN_STEP_WIDTH, &syscall_id) < 0) {
      ctx->failed_errno = errno;
      ctx->failed_syscall = syscall_id;
      ctx->failed_step = (int)i;
      _exit(127);
    }
  }
  /* A plan without OP_EXEC: nothing to run. */
  ctx->failed_errno = EINVAL;
  ctx->failed_syscall = SYS_ID_EXECVEAT;
  ctx->failed_step = (int)ctx->step_count;
  _exit(127);
}
