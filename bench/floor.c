/* The benchmark's native side, compiled at bench time (cc -O2 -pthread).
 *
 *   floor run ROOT LOGS INIT ACTIONS CONCURRENCY [direct]
 *     The physical floor of the engine's `namespaces` isolation: for each action, the same
 *     kernel work as src/sandbox does (log files created in LOGS, the clone, a copy of an
 *     empty mount namespace with the input root attached, the mounts and /dev nodes,
 *     pivot_root, the engine's own init INIT (build/Release/chroot-runner-init, native/init.c)
 *     exec'd as PID 1 through an fd opened beforehand, which forks and execs the root's
 *     /bin/true, wait), in C with nothing else around it. `direct` execs /bin/true as PID 1
 *     instead, without an init.
 *   floor exec ACTIONS CONCURRENCY ARGV...
 *     Launches ARGV (posix_spawn, a vfork-style clone) and waits, per action: how bubblewrap is
 *     measured without counting Node's own spawn.
 *   floor mounts DIR COUNT
 *     Mounts a private tmpfs at DIR and COUNT small tmpfs beneath it, in the caller's mount
 *     namespace: the unrelated mounts of the mount-scaling part. `umount -l DIR` removes all.
 *
 * run and exec spread ACTIONS over CONCURRENCY threads, each looping, and print one JSON
 * object: every action's latency in microseconds, the wall time, the program's CPU time and
 * peak RSS, and its children's largest RSS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../native/syscall-numbers.h"

extern char **environ;

#define CHILD_STACK_SIZE (64 * 1024)
/* The init's status pipe, as native/init.c's. */
#define STATUS_FD 3
/* native/init.c's record of the action's exit code, the first of what it writes. */
#define RECORD_EXITED 2

/* ---- the namespaces action, run in a CLONE_VM|CLONE_VFORK child: raw syscalls only ---- */

static int sys_open_tree(int dirfd, const char *path, unsigned flags) {
  return (int)syscall(SYS_open_tree, dirfd, path, flags);
}
static int sys_move_mount(int from_dirfd, const char *from, int to_dirfd, const char *to,
                          unsigned flags) {
  return (int)syscall(SYS_move_mount, from_dirfd, from, to_dirfd, to, flags);
}
static int sys_fsopen(const char *type) {
  return (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
}
static int sys_fsconfig(int fd, unsigned cmd, const char *key, const char *value) {
  return (int)syscall(SYS_fsconfig, fd, cmd, key, value, 0);
}
static int sys_fsmount(int fd, unsigned attributes) {
  return (int)syscall(SYS_fsmount, fd, FSMOUNT_CLOEXEC, attributes);
}
static int sys_mount_setattr(int fd, unsigned long set) {
  struct mount_attr attr = {.attr_set = set};
  return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr);
}

/* A mountpoint beneath `base`, resolved as the engine does: no symlinks, no escapes.
 * `extra_flags` is O_DIRECTORY for directories, 0 for files (/dev nodes, sysrq-trigger). */
static int open_beneath(int base, const char *path, int extra_flags) {
  struct open_how how = {
      .flags = O_PATH | O_CLOEXEC | extra_flags,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, base, path, &how, sizeof how);
}

/* Attaches a detached mount onto an O_PATH handle. */
static int attach(int mount_fd, int target_fd) {
  return sys_move_mount(mount_fd, "", target_fd, "",
                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* fsopen → fsconfig(key=value..., "" for a flag) → CREATE → fsmount, then attached at `path`
 * beneath base. */
static int mount_new(int base, const char *path, const char *type, const char *const *options,
                     unsigned attributes) {
  int context = sys_fsopen(type);
  if (context < 0) return -1;
  for (; options != NULL && options[0] != NULL; options += 2) {
    int flag = options[1][0] == '\0';
    if (sys_fsconfig(context, flag ? FSCONFIG_SET_FLAG : FSCONFIG_SET_STRING, options[0],
                     flag ? NULL : options[1]) < 0) {
      return -1;
    }
  }
  if (sys_fsconfig(context, FSCONFIG_CMD_CREATE, NULL, NULL) < 0) return -1;
  int mount_fd = sys_fsmount(context, attributes);
  close(context);
  if (mount_fd < 0) return -1;
  int target = open_beneath(base, path, O_DIRECTORY);
  if (target < 0 || attach(mount_fd, target) < 0) return -1;
  close(target);
  return mount_fd;
}

/* A read-only bind of an entry of a mount over itself (/proc/sys and friends); an entry
 * this kernel does not have (sysrq-trigger without CONFIG_MAGIC_SYSRQ) is skipped. */
static int bind_read_only(int base, const char *path, unsigned attributes) {
  int clone_fd = sys_open_tree(base, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (clone_fd < 0) return errno == ENOENT ? 0 : -1;
  if (sys_mount_setattr(clone_fd, attributes) < 0) return -1;
  int target = open_beneath(base, path, 0);
  if (target < 0 || attach(clone_fd, target) < 0) return -1;
  close(target);
  close(clone_fd);
  return 0;
}

/* The host's nodes made anew (mknod) in the action's /dev (src/sandbox/host.ts). */
static const char *const device_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
#define DEVICE_NODES (sizeof device_nodes / sizeof *device_nodes)
static const char *const device_links[][2] = {
    {"fd", "/proc/self/fd"},          {"stdin", "/proc/self/fd/0"},
    {"stdout", "/proc/self/fd/1"},    {"stderr", "/proc/self/fd/2"},
    {"ptmx", "pts/ptmx"},
};
/* /proc entries bound read-only over themselves; absent ones are skipped. */
static const char *const proc_read_only[] = {"sys", "sysrq-trigger", "irq", "bus"};

/* A node of the action's /dev with the host node's type, mode and number, whatever the umask
 * (the child's own: it does not share the runner's fs_struct). */
static int make_device(int dev, const char *name, mode_t mode, dev_t number) {
  mode_t umask_before = umask(0);
  int result = mknodat(dev, name, mode, number);
  umask(umask_before);
  return result;
}

/* What the runner holds for every action (src/sandbox/host.ts), opened once. */
struct host {
  int root_fd;                   /* the input root, opened in the runner's namespace */
  int template_fd;               /* the empty mount namespace copied for each action */
  mode_t node_modes[DEVICE_NODES]; /* the host's /dev nodes: type and permissions */
  dev_t node_numbers[DEVICE_NODES];
  int dev_null_fd;               /* every action's stdin */
  int init_fd;                   /* O_PATH on the engine's init, exec'd as the action's PID 1 */
  int logs_fd;                   /* where each action's stdout and stderr files are created */
  unsigned long long keep_caps;  /* the bounding set kept (container runtimes' default) */
  int last_cap;
};

struct action {
  const struct host *host;
  int stdout_fd, stderr_fd, status_fd;
  int direct;       /* exec true as PID 1, without the init */
  const char *step; /* the step that failed, read by the parent after the vfork */
  int error;        /* its errno */
};

#define STEP(name, call)                                                                      \
  do {                                                                                        \
    action->step = name;                                                                      \
    if ((call) < 0) {                                                                         \
      action->error = errno;                                                                  \
      _exit(100);                                                                             \
    }                                                                                         \
  } while (0)

/* The child of clone(CLONE_VM|CLONE_VFORK|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS): the steps
 * of src/sandbox/index.ts's plan for namespaces mode, in its order. */
static int namespaces_child(void *argument) {
  struct action *action = argument;
  const struct host *host = action->host;
  static const char *const dev_options[] = {"mode", "0755", NULL};
  static const char *const pts_options[] = {"newinstance", "", "ptmxmode", "0666",
                                            "mode",        "0620", NULL};
  static const char *const shm_options[] = {"mode", "1777", NULL};
  const unsigned nosuid = MOUNT_ATTR_NOSUID, nodev = MOUNT_ATTR_NODEV,
                 noexec = MOUNT_ATTR_NOEXEC, rdonly = MOUNT_ATTR_RDONLY;
  struct mount_attr slave = {.propagation = MS_SLAVE};
  int root, proc, dev, mountpoint;

  /* The input root is cloned while the runner's fd still refers to the current namespace, and
   * made a slave before anything is mounted beneath it; the new namespace is a copy of the
   * empty template, where the clone is attached. */
  STEP("open_tree(input root)",
       root = sys_open_tree(host->root_fd, "",
                            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH));
  STEP("make the input root a slave",
       (int)syscall(SYS_mount_setattr, root, "", AT_EMPTY_PATH | AT_RECURSIVE, &slave,
                    sizeof slave));
  STEP("setns(template)", setns(host->template_fd, CLONE_NEWNS));
  STEP("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
  STEP("open the template's root directory",
       mountpoint = open_beneath(AT_FDCWD, "root", O_DIRECTORY));
  STEP("attach the input root", attach(root, mountpoint));
  close(mountpoint);

  STEP("mount proc", proc = mount_new(root, "proc", "proc", NULL, nosuid | nodev | noexec));
  for (size_t i = 0; i < sizeof proc_read_only / sizeof *proc_read_only; i++) {
    STEP("bind a /proc entry read-only",
         bind_read_only(proc, proc_read_only[i], rdonly | nosuid | nodev | noexec));
  }
  STEP("mount sys", mount_new(root, "sys", "sysfs", NULL, rdonly | nosuid | nodev | noexec));
  STEP("mount dev", dev = mount_new(root, "dev", "tmpfs", dev_options, nosuid | noexec));
  for (size_t i = 0; i < DEVICE_NODES; i++) {
    STEP("mknod in /dev",
         make_device(dev, device_nodes[i], host->node_modes[i], host->node_numbers[i]));
  }
  for (size_t i = 0; i < sizeof device_links / sizeof *device_links; i++) {
    STEP("symlink in /dev", symlinkat(device_links[i][1], dev, device_links[i][0]));
  }
  STEP("mkdir dev/pts", mkdirat(dev, "pts", 0755));
  STEP("mount dev/pts", mount_new(dev, "pts", "devpts", pts_options, nosuid | noexec));
  STEP("mkdir dev/shm", mkdirat(dev, "shm", 01777));
  STEP("mount dev/shm", mount_new(dev, "shm", "tmpfs", shm_options, nosuid | nodev));

  STEP("fchdir(new root)", fchdir(root));
  STEP("pivot_root", (int)syscall(SYS_pivot_root, ".", "."));
  STEP("detach the old root", umount2(".", MNT_DETACH));
  STEP("chdir(/)", chdir("/"));

  STEP("dup2(stdin)", dup2(host->dev_null_fd, 0));
  STEP("dup2(stdout)", dup2(action->stdout_fd, 1));
  STEP("dup2(stderr)", dup2(action->stderr_fd, 2));
  STEP("dup2(status pipe)", dup2(action->status_fd, STATUS_FD));
  STEP("mark fds close-on-exec",
       (int)syscall(SYS_close_range, STATUS_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC));
  for (int cap = 0; cap <= host->last_cap; cap++) {
    if ((host->keep_caps >> cap & 1) == 0) {
      STEP("drop a capability from the bounding set", prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    }
  }
  STEP("set no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  STEP("set the parent death signal", prctl(PR_SET_PDEATHSIG, SIGKILL));
  char *const envp[] = {"PATH=/bin", NULL};
  if (action->direct) {
    char *const argv[] = {"true", NULL};
    action->step = "execve(/bin/true)";
    execve("/bin/true", argv, envp);
  } else {
    char *const argv[] = {"chroot-runner-init", "pid1", "/bin/true", "true", NULL};
    action->step = "execveat(init)";
    syscall(SYS_execveat, host->init_fd, "", argv, envp, AT_EMPTY_PATH);
  }
  action->error = errno;
  _exit(100);
}

/* ---- the load: CONCURRENCY threads, each taking the next action until ACTIONS are done ---- */

enum mode { MODE_RUN, MODE_EXEC };

struct load {
  enum mode mode;
  long actions;
  long next; /* the next action's index, taken atomically */
  double *latencies_us;
  struct host host; /* MODE_RUN */
  int direct;       /* MODE_RUN: exec true as PID 1, without the init */
  char **argv;      /* MODE_EXEC */
};

struct failure {
  char message[256];
};

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One action as the engine runs it: its log files, a status pipe, the vfork-style clone with
 * a pidfd (all signals blocked around it), then wait4 and the init's records (the exit code,
 * then the resource usage, in one write). */
static int run_namespaces_action(struct load *load, long index, char *stack,
                                 struct failure *failure) {
  struct action action = {.host = &load->host, .direct = load->direct};
  char name[32];
  int status_pipe[2] = {-1, -1};
  snprintf(name, sizeof name, "%ld.stdout", index);
  action.stdout_fd = openat(load->host.logs_fd, name,
                            O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  snprintf(name, sizeof name, "%ld.stderr", index);
  action.stderr_fd = openat(load->host.logs_fd, name,
                            O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  if (action.stdout_fd < 0 || action.stderr_fd < 0 || pipe2(status_pipe, O_CLOEXEC) < 0) {
    snprintf(failure->message, sizeof failure->message, "log files: %s", strerror(errno));
    return -1;
  }
  action.status_fd = status_pipe[1];

  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  pid_t pid = clone(namespaces_child, stack + CHILD_STACK_SIZE,
                    CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_NEWPID | CLONE_NEWIPC |
                        CLONE_NEWUTS | SIGCHLD,
                    &action, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  close(status_pipe[1]);
  close(action.stdout_fd);
  close(action.stderr_fd);
  if (pid < 0) {
    snprintf(failure->message, sizeof failure->message, "clone: %s", strerror(clone_errno));
    close(status_pipe[0]);
    return -1;
  }
  int status;
  struct rusage usage;
  pid_t waited = wait4(pid, &status, 0, &usage);
  int32_t record[64] = {0, -1};
  ssize_t length = read(status_pipe[0], record, sizeof record);
  close(status_pipe[0]);
  close(pidfd);
  int reported = load->direct || (length >= 8 && record[0] == RECORD_EXITED && record[1] == 0);
  if (waited < 0 || status != 0 || !reported) {
    snprintf(failure->message, sizeof failure->message,
             "action failed at step \"%s\": %s (status %d, record %d %d)", action.step,
             strerror(action.error), status, record[0], record[1]);
    return -1;
  }
  return 0;
}

static int run_exec_action(struct load *load, struct failure *failure) {
  pid_t pid;
  int error = posix_spawn(&pid, load->argv[0], NULL, NULL, load->argv, environ);
  if (error != 0) {
    snprintf(failure->message, sizeof failure->message, "posix_spawn %s: %s", load->argv[0],
             strerror(error));
    return -1;
  }
  int status;
  if (waitpid(pid, &status, 0) < 0 || status != 0) {
    snprintf(failure->message, sizeof failure->message, "%s exited with status %d",
             load->argv[0], status);
    return -1;
  }
  return 0;
}

static void *worker(void *argument) {
  struct load *load = argument;
  struct failure *failure = calloc(1, sizeof *failure);
  char *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (failure == NULL || stack == MAP_FAILED) {
    fprintf(stderr, "worker: out of memory\n");
    exit(1);
  }
  for (;;) {
    long index = __atomic_fetch_add(&load->next, 1, __ATOMIC_RELAXED);
    if (index >= load->actions) break;
    uint64_t start = now_ns();
    int result = load->mode == MODE_RUN ? run_namespaces_action(load, index, stack, failure)
                                        : run_exec_action(load, failure);
    if (result < 0) return failure;
    load->latencies_us[index] = (double)(now_ns() - start) / 1000.0;
  }
  munmap(stack, CHILD_STACK_SIZE);
  free(failure);
  return NULL;
}

static int run_load(struct load *load, long concurrency) {
  pthread_t *threads = calloc((size_t)concurrency, sizeof *threads);
  load->latencies_us = calloc((size_t)load->actions, sizeof *load->latencies_us);
  if (threads == NULL || load->latencies_us == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  uint64_t start = now_ns();
  for (long i = 0; i < concurrency; i++) {
    int error = pthread_create(&threads[i], NULL, worker, load);
    if (error != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(error));
      return 1;
    }
  }
  int failed = 0;
  for (long i = 0; i < concurrency; i++) {
    struct failure *failure;
    pthread_join(threads[i], (void **)&failure);
    if (failure != NULL) {
      fprintf(stderr, "%s\n", failure->message);
      failed = 1;
    }
  }
  double wall_seconds = (double)(now_ns() - start) / 1e9;
  if (failed) return 1;

  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double cpu_seconds = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  printf("{\"wallSeconds\":%.6f,\"cpuSeconds\":%.6f,\"peakRssBytes\":%ld,"
         "\"childPeakRssBytes\":%ld,\"latenciesMicroseconds\":[",
         wall_seconds, cpu_seconds, self.ru_maxrss * 1024L, children.ru_maxrss * 1024L);
  for (long i = 0; i < load->actions; i++) {
    printf(i == 0 ? "%.1f" : ",%.1f", load->latencies_us[i]);
  }
  printf("]}\n");
  return 0;
}

/* ---- unrelated mounts for the mount-scaling part ---- */

static int make_mounts(const char *directory, long count) {
  if (mount("tmpfs", directory, "tmpfs", 0, "size=1m") < 0 ||
      mount(NULL, directory, NULL, MS_PRIVATE, NULL) < 0) {
    perror(directory);
    return 1;
  }
  int base = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
  for (long i = 0; i < count; i++) {
    char name[32];
    snprintf(name, sizeof name, "%ld", i);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    if (mkdirat(base, name, 0755) < 0 || mount("tmpfs", path, "tmpfs", 0, "size=4k") < 0) {
      perror(path);
      umount2(directory, MNT_DETACH);
      return 1;
    }
  }
  close(base);
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: floor run ROOT LOGS INIT ACTIONS CONCURRENCY [direct]\n"
                  "       floor exec ACTIONS CONCURRENCY ARGV...\n"
                  "       floor mounts DIR COUNT\n");
  return 2;
}

/* The empty mount namespace (src/sandbox/modes/namespaces.ts's template): made by a child that
 * shares the fd table, in which it leaves the namespace's fd. */
struct template {
  int namespace_fd;
  const char *step;
  int error;
};

#define TEMPLATE_STEP(name, call) \
  do {                            \
    template->step = name;        \
    if ((call) < 0) {             \
      template->error = errno;    \
      _exit(100);                 \
    }                             \
  } while (0)

static int template_child(void *argument) {
  struct template *template = argument;
  int fs, mount_fd;
  struct mount_attr read_only = {.attr_set = MOUNT_ATTR_RDONLY};
  TEMPLATE_STEP("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
  TEMPLATE_STEP("open the namespace", template->namespace_fd = open("/proc/thread-self/ns/mnt",
                                                                   O_RDONLY | O_CLOEXEC));
  TEMPLATE_STEP("make / private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
  TEMPLATE_STEP("fsopen(tmpfs)", fs = sys_fsopen("tmpfs"));
  TEMPLATE_STEP("create the tmpfs", sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL));
  TEMPLATE_STEP("fsmount", mount_fd = sys_fsmount(fs, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                          MOUNT_ATTR_NOEXEC));
  TEMPLATE_STEP("mkdir root", mkdirat(mount_fd, "root", 0755));
  TEMPLATE_STEP("make it read-only",
                (int)syscall(SYS_mount_setattr, mount_fd, "", AT_EMPTY_PATH, &read_only,
                             sizeof read_only));
  TEMPLATE_STEP("attach it", sys_move_mount(mount_fd, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH));
  TEMPLATE_STEP("fchdir", fchdir(mount_fd));
  TEMPLATE_STEP("pivot_root", (int)syscall(SYS_pivot_root, ".", "."));
  TEMPLATE_STEP("detach the old root", umount2(".", MNT_DETACH));
  close(fs);
  close(mount_fd);
  _exit(0);
}

static int make_template(void) {
  struct template template = {.namespace_fd = -1};
  static char stack[CHILD_STACK_SIZE] __attribute__((aligned(16)));
  pid_t pid = clone(template_child, stack + sizeof stack,
                    CLONE_VM | CLONE_VFORK | CLONE_FILES | SIGCHLD, &template);
  if (pid < 0 || waitpid(pid, NULL, 0) < 0) return -1;
  if (template.error != 0) {
    fprintf(stderr, "template: %s: %s\n", template.step, strerror(template.error));
    return -1;
  }
  return template.namespace_fd;
}

/* The capabilities src/sandbox/capabilities.ts keeps by default. */
static const int kept_capabilities[] = {0 /* CHOWN */,    1 /* DAC_OVERRIDE */, 4 /* FSETID */,
                                        3 /* FOWNER */,   13 /* NET_RAW */,     6 /* SETGID */,
                                        7 /* SETUID */,   31 /* SETFCAP */,     8 /* SETPCAP */,
                                        10 /* NET_BIND_SERVICE */,              18 /* SYS_CHROOT */,
                                        5 /* KILL */,     29 /* AUDIT_WRITE */};

/* Opens what the runner holds for every action, as src/sandbox/host.ts does. */
static int open_host(struct host *host, const char *root, const char *logs, const char *init) {
  host->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  host->logs_fd = open(logs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  host->dev_null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  host->init_fd = open(init, O_PATH | O_CLOEXEC);
  for (size_t i = 0; i < DEVICE_NODES; i++) {
    char path[32];
    struct stat status;
    snprintf(path, sizeof path, "/dev/%s", device_nodes[i]);
    if (stat(path, &status) < 0) {
      perror(path);
      return -1;
    }
    host->node_modes[i] = status.st_mode;
    host->node_numbers[i] = status.st_rdev;
  }
  host->template_fd = make_template();
  if (host->template_fd < 0) return -1;
  FILE *last_cap = fopen("/proc/sys/kernel/cap_last_cap", "r");
  if (last_cap == NULL || fscanf(last_cap, "%d", &host->last_cap) != 1) host->last_cap = 40;
  if (last_cap != NULL) fclose(last_cap);
  host->keep_caps = 0;
  for (size_t i = 0; i < sizeof kept_capabilities / sizeof *kept_capabilities; i++) {
    host->keep_caps |= 1ULL << kept_capabilities[i];
  }
  if (host->root_fd < 0 || host->logs_fd < 0 || host->dev_null_fd < 0 || host->init_fd < 0) {
    perror("open_host");
    return -1;
  }
  return 0;
}

static long parse_count(const char *text, const char *what) {
  char *end;
  long value = strtol(text, &end, 10);
  if (*end != '\0' || value < 0) {
    fprintf(stderr, "%s: not a count: %s\n", what, text);
    exit(2);
  }
  return value;
}

int main(int argc, char **argv) {
  if ((argc == 7 || argc == 8) && strcmp(argv[1], "run") == 0) {
    struct load load = {.mode = MODE_RUN, .actions = parse_count(argv[5], "ACTIONS")};
    if (argc == 8 && strcmp(argv[7], "direct") != 0) return usage();
    load.direct = argc == 8;
    if (open_host(&load.host, argv[2], argv[3], argv[4]) < 0) return 1;
    return run_load(&load, parse_count(argv[6], "CONCURRENCY"));
  }
  if (argc >= 5 && strcmp(argv[1], "exec") == 0) {
    struct load load = {.mode = MODE_EXEC, .actions = parse_count(argv[2], "ACTIONS"),
                        .argv = &argv[4]};
    return run_load(&load, parse_count(argv[3], "CONCURRENCY"));
  }
  if (argc == 4 && strcmp(argv[1], "mounts") == 0) {
    return make_mounts(argv[2], parse_count(argv[3], "COUNT"));
  }
  return usage();
}
