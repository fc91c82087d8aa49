/* The code that runs between clone and exec, and the watch on an action's exit.
 *
 * spawn(plan) clones a child with CLONE_VM|CLONE_VFORK from a libuv threadpool thread, so
 * its cost does not grow with the runner's heap and the suspension never blocks the event
 * loop. The child interprets the plan's steps (built in TypeScript, where the policy lives)
 * over a table of fd "slots" and ends by exec'ing the init. Running on the parent's memory,
 * the child only makes system calls: no malloc, no locks, no libc call that touches other
 * threads (set*id go through syscall() because glibc's wrappers signal every thread), and
 * no cancellation points (openat, close: glibc's wrappers update the calling thread's
 * cancellation state, which is the suspended parent's), which go through syscall() too. */
#include "errors.h"
#include "openat2.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

/* The operations of a plan; src/sandbox/plan.ts has the same numbers. Each step is
 * STEP_WIDTH int32s: op, five arguments, and two string indices (-1 for none). */
enum op {
  OP_OPEN = 1,          /* dst, base, open flags, resolve flags, options; path */
  OP_OPEN_TREE,         /* dst, base, flags, -, options; path */
  OP_MOVE_MOUNT,        /* source slot, target slot */
  OP_FSOPEN,            /* dst; fs type */
  OP_FSCONFIG,          /* fs slot, command, aux; key, value */
  OP_FSMOUNT,           /* dst, fs slot, attributes */
  OP_MOUNT_SETATTR,     /* slot, attr_set, attr_clr, propagation, flags */
  OP_MKDIRAT,           /* base, mode; name */
  OP_CREATE_FILE,       /* base, mode; name */
  OP_SYMLINKAT,         /* base; target, name */
  OP_FCHDIR,            /* slot */
  OP_UNSHARE,           /* flags */
  OP_MAKE_ROOT_PRIVATE, /* propagation (MS_SLAVE or MS_PRIVATE) */
  OP_PIVOT_ROOT,        /* new root slot */
  OP_CHROOT,            /* new root slot */
  OP_CHDIR,             /* base, resolve flags; path */
  OP_DUP2,              /* source slot, target fd */
  OP_SET_CREDENTIALS,   /* uid, gid; plan.groups */
  OP_DROP_BOUNDING_CAPS, /* capabilities 0..31 kept, 32..63 kept */
  OP_NO_NEW_PRIVS,
  OP_PDEATHSIG,         /* signal */
  OP_LOOPBACK_UP,
  OP_CLOEXEC_FROM,      /* first fd */
  OP_EXEC,              /* executable slot; plan.argv, plan.envp */
  OP_WRITE_FILE,        /* base; path, content */
  OP_SAME_INODE,        /* slot, slot */
  OP_MKNODAT,           /* base, mode (type and permissions), major, minor; name */
  OP_SETNS,             /* namespace slot, namespace type */
  OP_SETSID,
  OP_JOIN_SESSION_KEYRING,
  OP_SECCOMP,           /* loads plan.seccompProgram; after OP_NO_NEW_PRIVS */
  OP_LAST = OP_SECCOMP,
};

enum { STEP_WIDTH = 8 };

/* Options of OP_OPEN and OP_OPEN_TREE. */
enum {
  OPTION_MKDIR = 1,    /* create a missing single-component directory, then open it */
  OPTION_OPTIONAL = 2, /* ENOENT leaves the slot empty; steps on an empty slot do nothing */
};

/* Syscall names for errors; the child records an index into this table. */
enum syscall_id {
  SYS_ID_OPENAT2, SYS_ID_MKDIRAT, SYS_ID_OPEN_TREE, SYS_ID_MOVE_MOUNT, SYS_ID_FSOPEN,
  SYS_ID_FSCONFIG, SYS_ID_FSMOUNT, SYS_ID_MOUNT_SETATTR, SYS_ID_OPENAT, SYS_ID_SYMLINKAT,
  SYS_ID_FCHDIR, SYS_ID_UNSHARE, SYS_ID_MOUNT, SYS_ID_PIVOT_ROOT, SYS_ID_UMOUNT2, SYS_ID_CHDIR,
  SYS_ID_CHROOT, SYS_ID_DUP2, SYS_ID_FCNTL, SYS_ID_SETGROUPS, SYS_ID_SETRESGID, SYS_ID_SETRESUID,
  SYS_ID_PRCTL, SYS_ID_SOCKET, SYS_ID_IOCTL, SYS_ID_CLOSE_RANGE, SYS_ID_EXECVEAT, SYS_ID_WRITE,
  SYS_ID_FSTAT, SYS_ID_MKNODAT, SYS_ID_SETNS, SYS_ID_SETSID, SYS_ID_KEYCTL, SYS_ID_SECCOMP,
  SYS_ID_BADSLOT,
};

static const char *const syscall_names[] = {
  "openat2", "mkdirat", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
  "mount_setattr", "openat", "symlinkat", "fchdir", "unshare", "mount", "pivot_root", "umount2",
  "chdir", "chroot", "dup2", "fcntl", "setgroups", "setresgid", "setresuid", "prctl", "socket",
  "ioctl", "close_range", "execveat", "write", "fstat", "mknodat", "setns", "setsid", "keyctl", "seccomp", "slot",
};

enum { CHILD_STACK_SIZE = 64 * 1024 };

struct spawn_context {
  /* The plan, copied out of JavaScript values: one allocation each. */
  int32_t *steps;
  size_t step_count;
  char *string_data; /* the strings, each NUL-terminated */
  char **strings;    /* pointers into string_data */
  size_t string_count;
  int *slots;
  size_t slot_count;
  char **argv; /* NULL-terminated vectors of pointers into string_data */
  char **envp;
  gid_t *groups;
  size_t group_count;
  struct sock_filter *seccomp_program; /* a BPF program compiled by native/seccomp.c */
  size_t seccomp_length;               /* in instructions */
  int clone_flags;
  int status_slot;
  /* Written by the child when a step fails (the memory is shared until exec). */
  volatile int failed_step;
  volatile int failed_errno;
  volatile int failed_syscall;
  /* Results of the clone, for the completion callback. */
  int clone_errno;
  pid_t pid;
  int pidfd;
  int status_read_fd;
  void *stack;
  napi_async_work work;
  napi_deferred deferred;
};

/* ---- The child. Everything from here to child_main runs between clone and exec. ---- */

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

static int loopback_up(int *syscall_id) {
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
      *syscall_id = SYS_ID_MOVE_MOUNT;
      return move_mount(source, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
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
    case OP_MAKE_ROOT_PRIVATE:
      *syscall_id = SYS_ID_MOUNT;
      return mount(NULL, "/", NULL, MS_REC | (unsigned long)(uint32_t)a, NULL);
    case OP_PIVOT_ROOT:
      /* The new root's mount fd is the cwd; the old root stacks on it and is detached, so
       * nothing of the host stays reachable. */
      *syscall_id = SYS_ID_FCHDIR;
      if (fchdir(slot_fd(ctx, a)) < 0) return -1;
      *syscall_id = SYS_ID_PIVOT_ROOT;
      if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
      *syscall_id = SYS_ID_UMOUNT2;
      if (umount2(".", MNT_DETACH) < 0) return -1;
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
    case OP_DROP_BOUNDING_CAPS:
      *syscall_id = SYS_ID_PRCTL;
      return drop_bounding_caps((uint32_t)a, (uint32_t)b);
    case OP_NO_NEW_PRIVS:
      *syscall_id = SYS_ID_PRCTL;
      return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    case OP_PDEATHSIG:
      *syscall_id = SYS_ID_PRCTL;
      return prctl(PR_SET_PDEATHSIG, a, 0, 0, 0);
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
      /* A new anonymous session keyring: none of the runner's keys are possessed inside. */
      *syscall_id = SYS_ID_KEYCTL;
      return syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 ? -1 : 0;
    case OP_SECCOMP: {
      if (ctx->seccomp_length == 0) return 0;
      struct sock_fprog program = {.len = (unsigned short)ctx->seccomp_length,
                                   .filter = ctx->seccomp_program};
      *syscall_id = SYS_ID_SECCOMP;
      return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program);
    }
  }
  *syscall_id = SYS_ID_BADSLOT;
  errno = EBADF;
  return -1;
}

static int child_main(void *arg) {
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
    if (run_step(ctx, ctx->steps + i * STEP_WIDTH, &syscall_id) < 0) {
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

/* ---- The parent side. ---- */

static void free_context(struct spawn_context *ctx) {
  free(ctx->string_data);
  free(ctx->strings);
  free(ctx->argv);
  free(ctx->envp);
  free(ctx->steps);
  free(ctx->slots);
  free(ctx->groups);
  free(ctx->seccomp_program);
  free(ctx->stack);
  free(ctx);
}

static void spawn_execute(napi_env env, void *data) {
  (void)env;
  struct spawn_context *ctx = data;
  int pipe_fds[2] = {-1, -1};
  if (ctx->status_slot >= 0) {
    if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
      ctx->clone_errno = errno;
      return;
    }
    ctx->slots[ctx->status_slot] = pipe_fds[1];
  }
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  pid_t pid = clone(child_main, (char *)ctx->stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | ctx->clone_flags, ctx,
                    &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (pipe_fds[1] >= 0) close(pipe_fds[1]);
  if (pid < 0) {
    ctx->clone_errno = clone_errno;
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    return;
  }
  if (ctx->failed_step >= 0) {
    /* The child has exited (vfork returns on exit or exec): reap it here. */
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
    }
    close(pidfd);
    if (pipe_fds[0] >= 0) close(pipe_fds[0]);
    return;
  }
  ctx->pid = pid;
  ctx->pidfd = pidfd;
  ctx->status_read_fd = pipe_fds[0];
}

static napi_value step_error(napi_env env, struct spawn_context *ctx) {
  int step = ctx->failed_step;
  const char *path = NULL;
  if ((size_t)step < ctx->step_count) {
    const int32_t *fields = ctx->steps + (size_t)step * STEP_WIDTH;
    int string_index = fields[0] == OP_SYMLINKAT ? fields[7] : fields[6];
    if (string_index >= 0) path = ctx->strings[string_index];
  }
  throw_system_error(env, ctx->failed_errno, syscall_names[ctx->failed_syscall], path);
  napi_value error, value;
  napi_get_and_clear_last_exception(env, &error);
  napi_create_int32(env, step, &value);
  napi_set_named_property(env, error, "step", value);
  return error;
}

static void spawn_complete(napi_env env, napi_status status, void *data) {
  struct spawn_context *ctx = data;
  napi_value result;
  if (status != napi_ok) {
    throw_system_error(env, ECANCELED, "spawn", NULL);
    napi_get_and_clear_last_exception(env, &result);
    napi_reject_deferred(env, ctx->deferred, result);
  } else if (ctx->clone_errno != 0) {
    throw_system_error(env, ctx->clone_errno, "clone", NULL);
    napi_get_and_clear_last_exception(env, &result);
    napi_reject_deferred(env, ctx->deferred, result);
  } else if (ctx->failed_step >= 0) {
    napi_reject_deferred(env, ctx->deferred, step_error(env, ctx));
  } else {
    napi_create_object(env, &result);
    napi_set_named_property(env, result, "pid", make_int32(env, ctx->pid));
    napi_set_named_property(env, result, "pidfd", make_int32(env, ctx->pidfd));
    napi_set_named_property(env, result, "statusFd", make_int32(env, ctx->status_read_fd));
    napi_resolve_deferred(env, ctx->deferred, result);
  }
  napi_delete_async_work(env, ctx->work);
  free_context(ctx);
}

static bool get_property(napi_env env, napi_value object, const char *name, napi_value *out) {
  return napi_get_named_property(env, object, name, out) == napi_ok;
}

/* Copies an Int32Array (one memcpy: a plan has a thousand numbers). */
static bool get_int32_array(napi_env env, napi_value value, int32_t **out, size_t *count) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array) {
    throw_type_error(env, "expected an Int32Array");
    return false;
  }
  *out = malloc((length + 1) * sizeof(int32_t));
  if (*out == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  if (length > 0) memcpy(*out, data, length * sizeof(int32_t));
  *count = length;
  return true;
}

/* Copies a Buffer of NUL-terminated strings and indexes them. */
static bool get_strings(napi_env env, napi_value value, struct spawn_context *ctx) {
  void *data;
  size_t length;
  bool is_buffer;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok ||
      (length > 0 && ((char *)data)[length - 1] != '\0')) {
    throw_type_error(env, "expected a Buffer of NUL-terminated strings");
    return false;
  }
  size_t count = 0;
  for (size_t i = 0; i < length; i++) count += ((char *)data)[i] == '\0';
  ctx->string_data = malloc(length + 1);
  ctx->strings = calloc(count + 1, sizeof *ctx->strings);
  if (ctx->string_data == NULL || ctx->strings == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  memcpy(ctx->string_data, data, length);
  for (size_t i = 0, start = 0; i < length; i++) {
    if (ctx->string_data[i] != '\0') continue;
    ctx->strings[ctx->string_count++] = ctx->string_data + start;
    start = i + 1;
  }
  return true;
}

/* Copies a BPF program (a Buffer of struct sock_filter; empty for none). */
static bool get_seccomp_program(napi_env env, napi_value value, struct spawn_context *ctx) {
  void *data;
  size_t length;
  bool is_buffer;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok ||
      length % sizeof(struct sock_filter) != 0 ||
      length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    throw_type_error(env, "plan.seccompProgram must be a Buffer of BPF instructions");
    return false;
  }
  if (length == 0) return true;
  ctx->seccomp_program = malloc(length);
  if (ctx->seccomp_program == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  memcpy(ctx->seccomp_program, data, length);
  ctx->seccomp_length = length / sizeof(struct sock_filter);
  return true;
}

/* A NULL-terminated vector of `count` strings of the table from `first` on. */
static bool get_string_vector(napi_env env, napi_value plan, const char *first_name,
                              const char *count_name, struct spawn_context *ctx, char ***out) {
  napi_value value;
  int32_t first, count;
  if (!get_property(env, plan, first_name, &value) || !get_int32(env, value, &first) ||
      !get_property(env, plan, count_name, &value) || !get_int32(env, value, &count))
    return false;
  if (first < 0 || count < 0 || (size_t)first + (size_t)count > ctx->string_count) {
    throw_type_error(env, "a string vector of the plan is out of range");
    return false;
  }
  *out = calloc((size_t)count + 1, sizeof **out);
  if (*out == NULL) {
    throw_system_error(env, ENOMEM, "malloc", NULL);
    return false;
  }
  for (int32_t i = 0; i < count; i++) (*out)[i] = ctx->strings[first + i];
  return true;
}

static bool read_plan(napi_env env, napi_value plan, struct spawn_context *ctx) {
  napi_value value;
  size_t count;

  if (!get_property(env, plan, "strings", &value) || !get_strings(env, value, ctx)) return false;
  if (!get_property(env, plan, "steps", &value) ||
      !get_int32_array(env, value, &ctx->steps, &count))
    return false;
  if (count % STEP_WIDTH != 0) {
    throw_type_error(env, "plan.steps must hold whole steps");
    return false;
  }
  ctx->step_count = count / STEP_WIDTH;
  for (size_t i = 0; i < ctx->step_count; i++) {
    const int32_t *step = ctx->steps + i * STEP_WIDTH;
    if (step[0] < OP_OPEN || step[0] > OP_LAST || step[6] < -1 || step[7] < -1 ||
        step[6] >= (int32_t)ctx->string_count || step[7] >= (int32_t)ctx->string_count) {
      throw_type_error(env, "plan.steps holds an invalid step");
      return false;
    }
  }
  int32_t *numbers;
  if (!get_property(env, plan, "slots", &value) || !get_int32_array(env, value, &numbers, &count))
    return false;
  ctx->slots = numbers;
  ctx->slot_count = count;
  if (!get_property(env, plan, "groups", &value) || !get_int32_array(env, value, &numbers, &count))
    return false;
  ctx->groups = (gid_t *)numbers;
  ctx->group_count = count;
  if (!get_string_vector(env, plan, "argvStart", "argvCount", ctx, &ctx->argv) ||
      !get_string_vector(env, plan, "envpStart", "envpCount", ctx, &ctx->envp))
    return false;
  if (!get_property(env, plan, "cloneFlags", &value) || !get_int32(env, value, &ctx->clone_flags))
    return false;
  if (!get_property(env, plan, "seccompProgram", &value) || !get_seccomp_program(env, value, ctx))
    return false;
  if (!get_property(env, plan, "statusSlot", &value) || !get_int32(env, value, &ctx->status_slot))
    return false;
  if (ctx->status_slot >= (int)ctx->slot_count) {
    throw_type_error(env, "plan.statusSlot is out of range");
    return false;
  }
  return true;
}

/* spawn(plan) → Promise<{ pid, pidfd, statusFd }>; rejects with a system error carrying
 * `step` when a step of the plan failed in the child. */
static napi_value js_spawn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1) return throw_type_error(env, "spawn(plan) needs a plan");
  struct spawn_context *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  ctx->failed_step = -1;
  ctx->pidfd = -1;
  ctx->status_read_fd = -1;
  if (!read_plan(env, argv[0], ctx)) {
    free_context(ctx);
    return NULL;
  }
  ctx->stack = malloc(CHILD_STACK_SIZE);
  if (ctx->stack == NULL) {
    free_context(ctx);
    return throw_system_error(env, ENOMEM, "malloc", NULL);
  }
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:spawn", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &ctx->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, spawn_execute, spawn_complete, ctx, &ctx->work) !=
          napi_ok ||
      napi_queue_async_work(env, ctx->work) != napi_ok) {
    free_context(ctx);
    return NULL;
  }
  return promise;
}

/* ---- An empty mount namespace, to copy for each action. ---- */

/* Set by the template's child, which shares the runner's memory and fd table. */
struct template_context {
  int namespace_fd;
  int failed_errno;
  int failed_syscall;
};

#define TEMPLATE_STEP(id, call)  \
  do {                           \
    if ((call) < 0) {            \
      ctx->failed_syscall = (id); \
      goto fail;                 \
    }                            \
  } while (0)

/* In a new mount namespace: a read-only tmpfs holding an empty directory "root" becomes the
 * root, and nothing else stays mounted. The fd on the namespace lands in the shared table;
 * on failure the child closes what it opened there. */
static int template_child(void *arg) {
  struct template_context *ctx = arg;
  int fs = -1, mount_fd = -1;
  struct mount_attr read_only = {.attr_set = MOUNT_ATTR_RDONLY};
  TEMPLATE_STEP(SYS_ID_UNSHARE, unshare(CLONE_NEWNS));
  TEMPLATE_STEP(SYS_ID_OPENAT, ctx->namespace_fd = (int)syscall(SYS_openat, AT_FDCWD,
                                                                 "/proc/thread-self/ns/mnt",
                                                                 O_RDONLY | O_CLOEXEC));
  TEMPLATE_STEP(SYS_ID_MOUNT, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
  TEMPLATE_STEP(SYS_ID_FSOPEN, fs = fsopen("tmpfs", FSOPEN_CLOEXEC));
  TEMPLATE_STEP(SYS_ID_FSCONFIG, fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0));
  TEMPLATE_STEP(SYS_ID_FSCONFIG, fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0));
  TEMPLATE_STEP(SYS_ID_FSMOUNT,
                mount_fd = fsmount(fs, FSMOUNT_CLOEXEC,
                                   MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  TEMPLATE_STEP(SYS_ID_MKDIRAT, mkdirat(mount_fd, "root", 0755));
  TEMPLATE_STEP(SYS_ID_MOUNT_SETATTR,
                mount_setattr(mount_fd, "", AT_EMPTY_PATH, &read_only, sizeof read_only));
  /* pivot_root wants an attached mount: stacked on the cwd, in this private copy only. */
  TEMPLATE_STEP(SYS_ID_MOVE_MOUNT,
                move_mount(mount_fd, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH));
  TEMPLATE_STEP(SYS_ID_FCHDIR, fchdir(mount_fd));
  TEMPLATE_STEP(SYS_ID_PIVOT_ROOT, (int)syscall(SYS_pivot_root, ".", "."));
  TEMPLATE_STEP(SYS_ID_UMOUNT2, umount2(".", MNT_DETACH));
  syscall(SYS_close, fs);
  syscall(SYS_close, mount_fd);
  _exit(0);
fail:
  ctx->failed_errno = errno;
  if (fs >= 0) syscall(SYS_close, fs);
  if (mount_fd >= 0) syscall(SYS_close, mount_fd);
  if (ctx->namespace_fd >= 0) syscall(SYS_close, ctx->namespace_fd);
  ctx->namespace_fd = -1;
  _exit(127);
}

/* mountNamespaceTemplate() → fd: a mount namespace whose only mount is an empty read-only
 * tmpfs with a directory "root". An action's child enters it (setns) and unshares it, so its
 * new namespace copies one mount instead of all of the runner's, and pivot_root detaches one. */
static napi_value js_mount_namespace_template(napi_env env, napi_callback_info info) {
  (void)info;
  struct template_context ctx = {.namespace_fd = -1, .failed_errno = 0, .failed_syscall = 0};
  void *stack = malloc(CHILD_STACK_SIZE);
  if (stack == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = clone(template_child, (char *)stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &ctx);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  free(stack);
  if (pid < 0) return throw_system_error(env, clone_errno, "clone", NULL);
  int status;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
  if (ctx.failed_errno != 0) {
    return throw_system_error(env, ctx.failed_errno, syscall_names[ctx.failed_syscall], NULL);
  }
  return make_int32(env, ctx.namespace_fd);
}

/* ---- Fresh network namespaces, made ahead of the actions that enter them. ---- */

/* Creating a network namespace costs about 0.7 ms of kernel work here (every subsystem's
 * per-namespace set-up), more than the rest of an action's isolation. The runner makes them
 * ahead, on the threadpool, and each action enters one that nothing else ever used (setns):
 * a child in a new network namespace brings its loopback up and leaves an fd on it in the
 * runner's table (CLONE_FILES). */
struct network_context {
  int namespace_fd;
  int failed_errno;
  int failed_syscall;
  napi_async_work work;
  napi_deferred deferred;
};

static int network_child(void *arg) {
  struct network_context *ctx = arg;
  int syscall_id = SYS_ID_IOCTL;
  if (loopback_up(&syscall_id) < 0) {
    ctx->failed_errno = errno;
    ctx->failed_syscall = syscall_id;
    _exit(127);
  }
  ctx->namespace_fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/thread-self/ns/net",
                                   O_RDONLY | O_CLOEXEC);
  if (ctx->namespace_fd < 0) {
    ctx->failed_errno = errno;
    ctx->failed_syscall = SYS_ID_OPENAT;
    _exit(127);
  }
  _exit(0);
}

static void make_network_namespace(struct network_context *ctx) {
  ctx->namespace_fd = -1;
  void *stack = malloc(CHILD_STACK_SIZE);
  if (stack == NULL) {
    ctx->failed_errno = ENOMEM;
    return;
  }
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = clone(network_child, (char *)stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | CLONE_NEWNET | SIGCHLD, ctx);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  free(stack);
  if (pid < 0) {
    ctx->failed_errno = clone_errno;
    ctx->failed_syscall = SYS_ID_BADSLOT;
    return;
  }
  int status;
  while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
}

static napi_value network_result(napi_env env, struct network_context *ctx) {
  if (ctx->failed_errno != 0) {
    const char *name = ctx->failed_syscall == SYS_ID_BADSLOT ? "clone"
                                                               : syscall_names[ctx->failed_syscall];
    throw_system_error(env, ctx->failed_errno, name, NULL);
    return NULL;
  }
  return make_int32(env, ctx->namespace_fd);
}

static void network_execute(napi_env env, void *data) {
  (void)env;
  make_network_namespace(data);
}

static void network_complete(napi_env env, napi_status status, void *data) {
  struct network_context *ctx = data;
  napi_value result = status == napi_ok ? network_result(env, ctx) : NULL;
  if (result != NULL) {
    napi_resolve_deferred(env, ctx->deferred, result);
  } else {
    if (status != napi_ok) throw_system_error(env, ECANCELED, "clone", NULL);
    napi_get_and_clear_last_exception(env, &result);
    napi_reject_deferred(env, ctx->deferred, result);
  }
  napi_delete_async_work(env, ctx->work);
  free(ctx);
}

/* networkNamespace() → Promise<fd>: a new network namespace with only loopback, up. */
static napi_value js_network_namespace(napi_env env, napi_callback_info info) {
  (void)info;
  struct network_context *ctx = calloc(1, sizeof *ctx);
  if (ctx == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  napi_value promise, name;
  napi_create_string_utf8(env, "chroot-runner:networkNamespace", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &ctx->deferred, &promise) != napi_ok ||
      napi_create_async_work(env, NULL, name, network_execute, network_complete, ctx,
                             &ctx->work) != napi_ok ||
      napi_queue_async_work(env, ctx->work) != napi_ok) {
    free(ctx);
    return NULL;
  }
  return promise;
}

/* networkNamespaceSync() → fd: the same, on the calling thread. */
static napi_value js_network_namespace_sync(napi_env env, napi_callback_info info) {
  (void)info;
  struct network_context ctx = {0};
  make_network_namespace(&ctx);
  return network_result(env, &ctx);
}

/* ---- Watching an exit without blocking the event loop. ---- */

enum { MAX_STATUS_WORDS = 256 };

struct exit_watch {
  uv_poll_t poll;
  napi_env env;
  napi_deferred deferred;
  napi_ref resource;
  napi_async_context async_context;
  pid_t pid;
  int status_fd;
};

static void free_watch(uv_handle_t *handle) { free(handle->data); }

static void set_number(napi_env env, napi_value object, const char *name, int32_t number) {
  napi_set_named_property(env, object, name, make_int32(env, number));
}

static napi_value exit_result(napi_env env, struct exit_watch *watch, int status) {
  napi_value result, records, null;
  napi_get_null(env, &null);
  napi_create_object(env, &result);
  if (WIFEXITED(status)) {
    set_number(env, result, "exitCode", WEXITSTATUS(status));
    napi_set_named_property(env, result, "signal", null);
  } else {
    napi_set_named_property(env, result, "exitCode", null);
    set_number(env, result, "signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  /* The init's records, written before it exited: pairs of int32 (kind, value). */
  int32_t words[MAX_STATUS_WORDS];
  ssize_t length = 0;
  if (watch->status_fd >= 0) {
    do {
      length = read(watch->status_fd, words, sizeof words);
    } while (length < 0 && errno == EINTR);
    if (length < 0) length = 0;
  }
  napi_create_array_with_length(env, (size_t)length / sizeof(int32_t), &records);
  for (size_t i = 0; i < (size_t)length / sizeof(int32_t); i++) {
    napi_set_element(env, records, (uint32_t)i, make_int32(env, words[i]));
  }
  napi_set_named_property(env, result, "records", records);
  return result;
}

static void on_exit_readable(uv_poll_t *poll, int uv_status, int events) {
  (void)events;
  struct exit_watch *watch = poll->data;
  napi_env env = watch->env;
  int status = 0;
  pid_t reaped = 0;
  int err = 0;
  if (uv_status == 0) {
    do {
      reaped = wait4(watch->pid, &status, WNOHANG | __WALL, NULL);
    } while (reaped < 0 && errno == EINTR);
    if (reaped == 0) return; /* not yet: keep watching */
    if (reaped < 0) err = errno;
  } else {
    err = -uv_status;
  }
  /* Closed before the promise settles: its continuation may close the pidfd, and libuv must
   * not touch that fd number afterwards. The watch itself is freed on a later iteration. */
  uv_close((uv_handle_t *)poll, free_watch);

  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value resource, outcome;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, watch->resource, &resource);
  /* A callback scope makes Node run the promise's continuations when it closes. */
  napi_open_callback_scope(env, resource, watch->async_context, &callback_scope);
  if (err != 0) {
    throw_system_error(env, err, uv_status == 0 ? "wait4" : "uv_poll", NULL);
    napi_get_and_clear_last_exception(env, &outcome);
    napi_reject_deferred(env, watch->deferred, outcome);
  } else {
    napi_resolve_deferred(env, watch->deferred, exit_result(env, watch, status));
  }
  napi_close_callback_scope(env, callback_scope);
  napi_async_destroy(env, watch->async_context);
  napi_delete_reference(env, watch->resource);
  napi_close_handle_scope(env, handle_scope);
}

/* watchExit(pidfd, pid, statusFd) → Promise<{ exitCode, signal, records }>: waits for the
 * process to exit (uv_poll on its pidfd), reaps it and reads what it wrote to the status
 * pipe. The caller keeps
 * ownership of both fds and must not close them before the promise settles. */
static napi_value js_watch_exit(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 3) return throw_type_error(env, "watchExit(pidfd, pid, statusFd)");
  int32_t pidfd, pid, status_fd;
  if (!get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &pid) ||
      !get_int32(env, argv[2], &status_fd))
    return NULL;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  struct exit_watch *watch = calloc(1, sizeof *watch);
  if (watch == NULL) return throw_system_error(env, ENOMEM, "malloc", NULL);
  watch->env = env;
  watch->pid = pid;
  watch->status_fd = status_fd;
  int uv_result = uv_poll_init(loop, &watch->poll, pidfd);
  if (uv_result != 0) {
    free(watch);
    return throw_system_error(env, -uv_result, "uv_poll_init", NULL);
  }
  watch->poll.data = watch;
  napi_value promise, resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "chroot-runner:watchExit", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, resource, 1, &watch->resource);
  napi_async_init(env, resource, name, &watch->async_context);
  napi_create_promise(env, &watch->deferred, &promise);
  uv_result = uv_poll_start(&watch->poll, UV_READABLE, on_exit_readable);
  if (uv_result != 0) {
    napi_value error;
    throw_system_error(env, -uv_result, "uv_poll_start", NULL);
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, watch->deferred, error);
    napi_async_destroy(env, watch->async_context);
    napi_delete_reference(env, watch->resource);
    uv_close((uv_handle_t *)&watch->poll, free_watch);
  }
  return promise;
}

/* pidfdSendSignal(pidfd, signal) → true, or false when the process has already exited. */
static napi_value js_pidfd_send_signal(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t pidfd, sig;
  if (argc < 2 || !get_int32(env, argv[0], &pidfd) || !get_int32(env, argv[1], &sig)) {
    return argc < 2 ? throw_type_error(env, "pidfdSendSignal(pidfd, signal)") : NULL;
  }
  napi_value result;
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
    if (errno != ESRCH) return throw_system_error(env, errno, "pidfd_send_signal", NULL);
    napi_get_boolean(env, false, &result);
    return result;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

bool register_spawn(napi_env env, napi_value exports) {
  return export_function(env, exports, "spawn", js_spawn) &&
         export_function(env, exports, "mountNamespaceTemplate", js_mount_namespace_template) &&
         export_function(env, exports, "networkNamespace", js_network_namespace) &&
         export_function(env, exports, "networkNamespaceSync", js_network_namespace_sync) &&
         export_function(env, exports, "watchExit", js_watch_exit) &&
         export_function(env, exports, "pidfdSendSignal", js_pidfd_send_signal);
}
