/* The benchmark's native side, compiled at bench time (cc -O2 -pthread).
 *
 *   floor run ROOT LOGS INIT ACTIONS CONCURRENCY [OPTION...]
 *     The physical floor of the engine's `namespaces` isolation: for each action, the same
 *     kernel work as src/sandbox does (log files created in LOGS, the clone, a copy of an
 *     empty mount namespace with the input root attached, the mounts and /dev nodes,
 *     pivot_root, the engine's own init INIT (build/Release/chroot-runner-init, native/init.c)
 *     exec'd as PID 1 through an fd opened beforehand, which forks and execs the root's
 *     /bin/true, wait), in C with nothing else around it. Each part of the isolation that is
 *     not always there is an option, so that the floor follows the engine's default:
 *       direct      exec /bin/true as PID 1 instead of the init
 *       inert       the input root's clone made nosuid and nodev
 *       network     a new network namespace, loopback up
 *       user=MAP    a user namespace of its own, made as the engine makes it
 *                   (src/sandbox/contributions/user-namespace.ts): unshared by the child
 *                   after pivot_root as the host id of its uid 0 (the namespace's owner),
 *                   MAP (/proc's format, e.g. "0 1879048192 65536") written as its uid_map
 *                   and gid_map by the parent while the child waits (so the clone is no
 *                   vfork), then uid and gid 0 inside
 *       session     setsid: a new session, no controlling terminal
 *       keyring     a new session keyring, joined once the credentials are the action's
 *       seccomp=F   load the BPF program in file F (struct sock_filter[]) before exec
 *       cgroup=D    a cgroup of its own made in directory D (repeatable: one per v1
 *                   hierarchy), joined by the child, which then unshares a cgroup
 *                   namespace; listed (cgroup.procs) and removed after the action
 *       warm=N      warm sandboxes: N sandboxes prepared ahead by a thread of their own (new
 *                   namespaces, mount namespace, procfs, sysfs, /dev, cgroup joined), each
 *                   used once; an action takes one and does only what names its input
 *                   root (attach it, move the prepared mounts in, pivot, stdio, exec). An
 *                   action that finds the pool empty prepares its own sandbox.
 *   floor exec ACTIONS CONCURRENCY [fd3=FILE] ARGV...
 *     Launches ARGV (posix_spawn, a vfork-style clone) and waits, per action: how bubblewrap is
 *     measured without counting Node's own spawn. With fd3=FILE each launched process gets
 *     FILE opened (read-only) on its fd 3: bwrap's --seccomp 3.
 *   floor mounts DIR COUNT
 *     Mounts a private tmpfs at DIR and COUNT small tmpfs beneath it, in the caller's mount
 *     namespace: the unrelated mounts of the mount-scaling part. `umount -l DIR` removes all.
 *
 * run and exec spread ACTIONS over CONCURRENCY threads, each looping, and print one JSON
 * object: every action's latency in microseconds, the wall time, the program's CPU time and
 * peak RSS, its children's largest RSS, and for run the mean time of each phase of an action. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
#define MAX_CGROUPS 8

/* ---- what every action does, by option ---- */

struct options {
  int direct, inert, network, session, keyring, warm;
  const char *id_map; /* user=MAP, or NULL */
  struct sock_fprog seccomp; /* .len 0: none */
  const char *cgroups[MAX_CGROUPS];
  int cgroup_count;
};

/* The action's network namespace: made by its clone, as the engine does today. A network
 * namespace made ahead (another way to get it) would change this and the child's loopback
 * step only. */
static int network_clone_flag(const struct options *options) {
  return options->network ? CLONE_NEWNET : 0;
}

/* ---- raw syscalls, usable in a CLONE_VM child ---- */

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

/* Attaches a mount (detached, or attached elsewhere: then it is moved) onto an O_PATH
 * handle. */
static int attach(int mount_fd, int target_fd) {
  return sys_move_mount(mount_fd, "", target_fd, "",
                        MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

/* Attaches `mount_fd` at `path` beneath base. */
static int attach_at(int mount_fd, int base, const char *path) {
  int target = open_beneath(base, path, O_DIRECTORY);
  if (target < 0 || attach(mount_fd, target) < 0) return -1;
  close(target);
  return 0;
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
  if (mount_fd < 0 || attach_at(mount_fd, base, path) < 0) return -1;
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
/* The special filesystems, each mounted on the directory of its name. */
enum special { SPECIAL_PROC, SPECIAL_SYS, SPECIAL_DEV, SPECIALS };
static const char *const special_names[SPECIALS] = {"proc", "sys", "dev"};

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
  int init_fd;                   /* O_PATH on the engine's init, exec'd as the action's PID 1 */
  int logs_fd;                   /* where each action's stdout and stderr files are created */
  unsigned long long keep_caps;  /* the bounding set kept (container runtimes' default) */
  int last_cap;
  const struct options *options;
  /* Unique names of the actions' cgroups. */
  long next_cgroup;
};

/* What one action's child needs, and what it reports. */
struct action {
  const struct host *host;
  int stdout_fd, stderr_fd, status_fd;
  int id_maps_fd; /* the child's end of the id maps' handshake (option user), or -1 */
  int cgroup_fds[MAX_CGROUPS]; /* O_PATH on the action's cgroups, joined by the child */
  const char *step; /* the step that failed, read by the parent after the vfork */
  int error;        /* its errno */
  uint64_t child_start_ns, mounted_ns; /* phase boundaries, written by a CLONE_VM child */
};

#define STEP(name, call)                                                                      \
  do {                                                                                        \
    action->step = name;                                                                      \
    if ((call) < 0) {                                                                         \
      action->error = errno;                                                                  \
      _exit(100);                                                                             \
    }                                                                                         \
  } while (0)

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int loopback_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return -1;
  struct ifreq request;
  memset(&request, 0, sizeof request);
  memcpy(request.ifr_name, "lo", 3);
  request.ifr_flags = IFF_UP | IFF_RUNNING;
  int result = ioctl(sock, SIOCSIFFLAGS, &request);
  close(sock);
  return result;
}

static int write_text(int base, const char *path, const char *text) {
  int fd = openat(base, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t written = write(fd, text, strlen(text));
  close(fd);
  return written == (ssize_t)strlen(text) ? 0 : -1;
}

/* The handshake of the engine's OP_AWAIT_ID_MAPS (native/interpreter.c, native/spawn.c): the
 * child asks for its maps with one byte and waits for the parent's errno (0: written). */
static int await_id_maps(int fd) {
  const char ready = 1;
  int32_t reply;
  if (write(fd, &ready, 1) != 1) return -1;
  if (read(fd, &reply, sizeof reply) != (ssize_t)sizeof reply) {
    errno = EPIPE;
    return -1;
  }
  errno = reply;
  return reply == 0 ? 0 : -1;
}

/* As the engine's OP_BECOME_NAMESPACE_OWNER: the host id of uid 0 in MAP ("0 OWNER COUNT")
 * as the real and effective ids, the file system ids root's. */
static int become_namespace_owner(const char *map) {
  unsigned inside, owner;
  if (sscanf(map, "%u %u", &inside, &owner) != 2 || inside != 0) {
    errno = EINVAL;
    return -1;
  }
  if (syscall(SYS_setresgid, owner, owner, -1) < 0) return -1;
  syscall(SYS_setfsgid, 0);
  if (syscall(SYS_setresuid, owner, owner, -1) < 0) return -1;
  syscall(SYS_setfsuid, 0);
  return 0;
}

/* The parent's side: writes the child's uid_map and gid_map when it asks, and answers. */
static int serve_id_maps(pid_t pid, int fd, const char *map) {
  char request;
  if (read(fd, &request, 1) != 1) return -1;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
  int32_t reply = write_text(AT_FDCWD, path, map) == 0 ? 0 : errno;
  snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
  if (reply == 0 && write_text(AT_FDCWD, path, map) < 0) reply = errno;
  return write(fd, &reply, sizeof reply) == (ssize_t)sizeof reply ? 0 : -1;
}

/* The steps every child (cold or warm) does before its mounts, in the engine's order: into
 * the action's cgroups, a new session, loopback up. */
static void enter_cgroups_and_network(struct action *action) {
  const struct options *options = action->host->options;
  for (int i = 0; i < options->cgroup_count; i++) {
    STEP("join the cgroup", write_text(action->cgroup_fds[i], "cgroup.procs", "0"));
  }
  /* Rooted at the action's cgroup: it sees itself at / and nothing above. */
  if (options->cgroup_count > 0) STEP("unshare(CLONE_NEWCGROUP)", unshare(CLONE_NEWCGROUP));
  if (options->session) STEP("setsid", (int)setsid());
  if (options->network) STEP("bring loopback up", loopback_up());
}

/* procfs (with its read-only entries), a read-only sysfs and /dev (nodes, links, devpts,
 * shm) mounted on proc, sys and dev beneath `base`; their mounts' fds in `mounts`. */
static void mount_specials(struct action *action, int base, int mounts[SPECIALS]) {
  const struct host *host = action->host;
  static const char *const dev_options[] = {"mode", "0755", NULL};
  static const char *const pts_options[] = {"newinstance", "", "ptmxmode", "0666",
                                            "mode",        "0620", NULL};
  static const char *const shm_options[] = {"mode", "1777", NULL};
  const unsigned nosuid = MOUNT_ATTR_NOSUID, nodev = MOUNT_ATTR_NODEV,
                 noexec = MOUNT_ATTR_NOEXEC, rdonly = MOUNT_ATTR_RDONLY;
  int proc, dev;
  STEP("mount proc", proc = mount_new(base, "proc", "proc", NULL, nosuid | nodev | noexec));
  for (size_t i = 0; i < sizeof proc_read_only / sizeof *proc_read_only; i++) {
    STEP("bind a /proc entry read-only",
         bind_read_only(proc, proc_read_only[i], rdonly | nosuid | nodev | noexec));
  }
  STEP("mount sys", mounts[SPECIAL_SYS] = mount_new(base, "sys", "sysfs", NULL,
                                                     rdonly | nosuid | nodev | noexec));
  STEP("mount dev", dev = mount_new(base, "dev", "tmpfs", dev_options, nosuid | noexec));
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
  mounts[SPECIAL_PROC] = proc;
  mounts[SPECIAL_DEV] = dev;
}

/* From pivot_root to exec: the same for cold and warm children. `root` is the attached
 * input root. */
static _Noreturn void pivot_and_exec(struct action *action, int root) {
  const struct host *host = action->host;
  const struct options *options = host->options;
  /* stdin is the sandbox's own /dev/null: through the host's, a root action could change the
   * host's node (chmod, touch) via /proc/self/fd/0. */
  struct open_how read_beneath = {
      .flags = O_RDONLY | O_CLOEXEC,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  int stdin_fd;
  STEP("open /dev/null in the root for stdin",
       stdin_fd = (int)syscall(SYS_openat2, root, "dev/null", &read_beneath, sizeof read_beneath));
  STEP("fchdir(new root)", fchdir(root));
  STEP("pivot_root", (int)syscall(SYS_pivot_root, ".", "."));
  STEP("detach the old root", umount2(".", MNT_DETACH));
  if (action->id_maps_fd >= 0) {
    /* Every namespace and mount above stays owned by the runner's user namespace, out of
     * the action's reach; only a process of that namespace may write the maps. */
    STEP("become the namespace's owner", become_namespace_owner(action->host->options->id_map));
    STEP("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
    STEP("await the id maps", await_id_maps(action->id_maps_fd));
  }
  STEP("chdir(/)", chdir("/"));

  STEP("dup2(stdin)", dup2(stdin_fd, 0));
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
  if (action->id_maps_fd >= 0) {
    /* The engine switches to the action's uid 0 (src/sandbox/setup.ts). */
    STEP("setgroups", (int)syscall(SYS_setgroups, 0, NULL));
    STEP("setresgid", (int)syscall(SYS_setresgid, 0, 0, 0));
    STEP("setresuid", (int)syscall(SYS_setresuid, 0, 0, 0));
  }
  STEP("set no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  STEP("set the parent death signal", prctl(PR_SET_PDEATHSIG, SIGKILL));
  if (options->keyring) {
    STEP("join a new session keyring",
         (int)syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL));
  }
  if (options->seccomp.len > 0) {
    /* SPEC_ALLOW, as the engine: the host's speculation policy, not forced mitigations. */
    STEP("load the seccomp filter",
         (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                      &options->seccomp));
  }
  char *const envp[] = {"PATH=/bin", NULL};
  if (options->direct) {
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

/* The flags that make the input root's clone a slave (never propagating to the host), and
 * with `inert` nosuid and nodev. */
static struct mount_attr root_attributes(const struct options *options) {
  struct mount_attr attributes = {.propagation = MS_SLAVE};
  if (options->inert) attributes.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  return attributes;
}

/* The input root cloned while the fd still refers to the runner's namespace, and made a slave
 * before anything is mounted beneath it. */
static int clone_input_root(const struct host *host) {
  int root = sys_open_tree(host->root_fd, "",
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
  if (root < 0) return -1;
  struct mount_attr attributes = root_attributes(host->options);
  if (syscall(SYS_mount_setattr, root, "", AT_EMPTY_PATH | AT_RECURSIVE, &attributes,
              sizeof attributes) < 0) {
    close(root);
    return -1;
  }
  return root;
}

/* The child of clone(CLONE_VM|CLONE_VFORK|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS...): the
 * steps of src/sandbox's plan for namespaces mode, in its order. */
static int namespaces_child(void *argument) {
  struct action *action = argument;
  const struct host *host = action->host;
  int root, mountpoint, mounts[SPECIALS];
  action->child_start_ns = now_ns();
  enter_cgroups_and_network(action);
  /* The new namespace is a copy of the empty template, where the clone is attached. */
  STEP("clone the input root", root = clone_input_root(host));
  STEP("setns(template)", setns(host->template_fd, CLONE_NEWNS));
  STEP("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
  STEP("open the template's root directory",
       mountpoint = open_beneath(AT_FDCWD, "root", O_DIRECTORY));
  STEP("attach the input root", attach(root, mountpoint));
  close(mountpoint);
  mount_specials(action, root, mounts);
  action->mounted_ns = now_ns();
  pivot_and_exec(action, root);
}

/* ---- per-action resources made by the runner: the user namespace's id maps, cgroups ---- */

/* The action's cgroup in each of the options' directories; its name in `name`. */
static int make_cgroups(struct host *host, int fds[MAX_CGROUPS], char *name, size_t size) {
  const struct options *options = host->options;
  long number = __atomic_fetch_add(&host->next_cgroup, 1, __ATOMIC_RELAXED);
  snprintf(name, size, "floor-%d-%ld", (int)getpid(), number);
  for (int i = 0; i < options->cgroup_count; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", options->cgroups[i], name);
    if (mkdir(path, 0755) < 0) return -1;
    fds[i] = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[i] < 0) return -1;
  }
  return 0;
}

/* After the action: its cgroups' process lists read (as the engine's kill does, finding them
 * empty once the init has been reaped), the cgroups removed. */
static int remove_cgroups(const struct host *host, int fds[MAX_CGROUPS], const char *name) {
  const struct options *options = host->options;
  int result = 0;
  for (int i = 0; i < options->cgroup_count; i++) {
    char path[4096], listing[64];
    int procs = openat(fds[i], "cgroup.procs", O_RDONLY | O_CLOEXEC);
    if (procs < 0 || read(procs, listing, sizeof listing) != 0) result = -1;
    if (procs >= 0) close(procs);
    snprintf(path, sizeof path, "%s/%s", options->cgroups[i], name);
    close(fds[i]);
    if (rmdir(path) < 0) result = -1;
  }
  return result;
}

/* ---- warm sandboxes ---- */

/* A sandbox prepared ahead: a process that is PID 1 of new PID, IPC, UTS (and network)
 * namespaces, in its own copy of the template mount namespace, with proc, sys and dev
 * mounted on a staging tmpfs and its cgroups joined; it waits on `socket` for the fds of
 * one action (input root clone, stdout, stderr, status pipe), then attaches the input root,
 * moves the staged mounts into it, pivots and execs. */
struct sandbox {
  pid_t pid;
  int socket;
  int cgroup_fds[MAX_CGROUPS];
  char cgroup_name[64];
};

struct warm_child_argument {
  struct action action;
  int socket; /* the sandbox's end */
  int keep[3 + MAX_CGROUPS]; /* fds the sandbox holds (socket, template, init, cgroups), all others closed */
  int keep_count;
};

static int compare_fds(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

/* Closes every fd above 2 but `keep` (sorted here). */
static int close_all_but(int *keep, int count) {
  qsort(keep, (size_t)count, sizeof *keep, compare_fds);
  unsigned next = 3;
  for (int i = 0; i < count; i++) {
    if ((unsigned)keep[i] < next) continue;
    if ((unsigned)keep[i] > next &&
        syscall(SYS_close_range, next, (unsigned)keep[i] - 1, 0) < 0) {
      return -1;
    }
    next = (unsigned)keep[i] + 1;
  }
  return (int)syscall(SYS_close_range, next, ~0U, 0);
}

/* Receives one action's fds: input root clone, stdout, stderr, status pipe. 0 at EOF. */
static int receive_fds(int socket, int fds[4]) {
  char byte;
  char control[CMSG_SPACE(4 * sizeof(int))];
  struct iovec data = {.iov_base = &byte, .iov_len = 1};
  struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = control,
                           .msg_controllen = sizeof control};
  ssize_t length;
  do {
    length = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  } while (length < 0 && errno == EINTR);
  if (length <= 0) return (int)length;
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  if (header == NULL || header->cmsg_len != CMSG_LEN(4 * sizeof(int))) {
    errno = EPROTO;
    return -1;
  }
  memcpy(fds, CMSG_DATA(header), 4 * sizeof(int));
  return 1;
}

static int send_fds(int socket, const int fds[4]) {
  char byte = 0;
  char control[CMSG_SPACE(4 * sizeof(int))];
  memset(control, 0, sizeof control);
  struct iovec data = {.iov_base = &byte, .iov_len = 1};
  struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = control,
                           .msg_controllen = sizeof control};
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(4 * sizeof(int));
  memcpy(CMSG_DATA(header), fds, 4 * sizeof(int));
  return sendmsg(socket, &message, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* A fork (no CLONE_VM): it lives on after its creator returns. Its failures end it with
 * status 100; the step and errno are lost (the prototype's sandboxes do not fail). */
static int warm_child(void *argument) {
  struct warm_child_argument *warm = argument;
  struct action *action = &warm->action;
  const struct host *host = action->host;
  int stage, mountpoint, mounts[SPECIALS], fds[4];
  STEP("set the parent death signal", prctl(PR_SET_PDEATHSIG, SIGKILL));
  STEP("close the runner's other fds", close_all_but(warm->keep, warm->keep_count));
  enter_cgroups_and_network(action);
  STEP("setns(template)", setns(host->template_fd, CLONE_NEWNS));
  STEP("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
  /* The staging tmpfs over the template's root directory: proc, sys and dev are mounted
   * there ahead, and moved into the input root (attached at stage/root) for the action. */
  static const char *const stage_options[] = {"mode", "0700", NULL};
  STEP("mount the staging tmpfs",
       stage = mount_new(AT_FDCWD, "root", "tmpfs", stage_options,
                         MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  for (int i = 0; i < SPECIALS; i++) STEP("mkdir in the stage", mkdirat(stage, special_names[i], 0755));
  STEP("mkdir stage/root", mkdirat(stage, "root", 0755));
  mount_specials(action, stage, mounts);

  int received;
  STEP("receive the action", received = receive_fds(warm->socket, fds));
  if (received == 0) _exit(0); /* the pool is closing: unused */
  int root = fds[0];
  action->stdout_fd = fds[1];
  action->stderr_fd = fds[2];
  action->status_fd = fds[3];
  STEP("open stage/root", mountpoint = open_beneath(stage, "root", O_DIRECTORY));
  STEP("attach the input root", attach(root, mountpoint));
  for (int i = 0; i < SPECIALS; i++) {
    STEP("move a prepared mount into the input root",
         attach_at(mounts[i], root, special_names[i]));
  }
  pivot_and_exec(action, root);
}

struct pool {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  struct sandbox *ready;
  int count, size, closing;
  struct host *host;
  char *stack; /* the preparer's; a copy is the child's own */
};

static struct pool pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
                           .changed = PTHREAD_COND_INITIALIZER};

/* Prepares one sandbox (on the pool's thread, or an action's when the pool is empty). */
static int prepare_sandbox(struct host *host, struct sandbox *sandbox, char *stack) {
  const struct options *options = host->options;
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return -1;
  sandbox->socket = pair[0];
  if (make_cgroups(host, sandbox->cgroup_fds, sandbox->cgroup_name,
                   sizeof sandbox->cgroup_name) < 0) {
    return -1;
  }
  struct warm_child_argument warm = {
      .action = {.host = host, .id_maps_fd = options->id_map != NULL ? pair[1] : -1},
      .socket = pair[1],
      .keep = {pair[1], host->template_fd, host->init_fd},
      .keep_count = 3,
  };
  for (int i = 0; i < options->cgroup_count; i++) {
    warm.action.cgroup_fds[i] = sandbox->cgroup_fds[i];
    warm.keep[warm.keep_count++] = sandbox->cgroup_fds[i];
  }
  sandbox->pid = clone(warm_child, stack + CHILD_STACK_SIZE,
                       CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                           network_clone_flag(options) | SIGCHLD,
                       &warm);
  int saved = errno;
  close(pair[1]);
  errno = saved;
  return sandbox->pid < 0 ? -1 : 0;
}

static void release_sandbox(const struct host *host, struct sandbox *sandbox) {
  close(sandbox->socket);
  remove_cgroups(host, sandbox->cgroup_fds, sandbox->cgroup_name);
}

static void *refill(void *argument) {
  (void)argument;
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    while (!pool.closing && pool.count >= pool.size) pthread_cond_wait(&pool.changed, &pool.lock);
    if (pool.closing) break;
    pthread_mutex_unlock(&pool.lock);
    struct sandbox sandbox;
    if (prepare_sandbox(pool.host, &sandbox, pool.stack) < 0) {
      perror("prepare a warm sandbox");
      exit(1);
    }
    pthread_mutex_lock(&pool.lock);
    pool.ready[pool.count++] = sandbox;
  }
  pthread_mutex_unlock(&pool.lock);
  return NULL;
}

/* A sandbox from the pool; false when it is empty. */
static int take_sandbox(struct sandbox *sandbox) {
  pthread_mutex_lock(&pool.lock);
  int taken = pool.count > 0;
  if (taken) *sandbox = pool.ready[--pool.count];
  pthread_cond_signal(&pool.changed);
  pthread_mutex_unlock(&pool.lock);
  return taken;
}

/* ---- the load: CONCURRENCY threads, each taking the next action until ACTIONS are done ---- */

enum mode { MODE_RUN, MODE_EXEC };

/* The phases of a run action, each summed over all actions. */
enum phase {
  PHASE_BEFORE_CLONE, /* log files, status pipe, id maps' socket, cgroups (cold) */
  PHASE_CLONE,        /* clone until the child runs: the namespaces' creation (cold) */
  PHASE_MOUNTS,       /* the child's cgroup join, loopback, mount namespace and mounts (cold) */
  PHASE_TO_EXEC,      /* pivot_root to exec (cold); fds handed to the sandbox to its exec
                       * (warm) */
  PHASE_RUN,          /* exec until reaped: the init, true */
  PHASE_AFTER,        /* status read, cgroups removed, fds closed */
  PHASES,
};
static const char *const phase_names[PHASES] = {"beforeClone", "clone", "mounts",
                                                "toExec",      "run",   "after"};

struct load {
  enum mode mode;
  long actions;
  long next; /* the next action's index, taken atomically */
  double *latencies_us;
  struct host host;  /* MODE_RUN */
  char **argv;       /* MODE_EXEC */
  const char *fd3;   /* MODE_EXEC: a file opened on each launched process's fd 3, or NULL */
  uint64_t phase_ns[PHASES];
};

struct failure {
  char message[256];
};

static void add_phase(struct load *load, enum phase phase, uint64_t from, uint64_t to) {
  if (to > from) __atomic_fetch_add(&load->phase_ns[phase], to - from, __ATOMIC_RELAXED);
}

/* The log files and status pipe of one action. */
static int open_action_files(struct load *load, long index, struct action *action,
                             int status_pipe[2]) {
  char name[32];
  snprintf(name, sizeof name, "%ld.stdout", index);
  action->stdout_fd = openat(load->host.logs_fd, name,
                             O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  snprintf(name, sizeof name, "%ld.stderr", index);
  action->stderr_fd = openat(load->host.logs_fd, name,
                             O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  if (action->stdout_fd < 0 || action->stderr_fd < 0 || pipe2(status_pipe, O_CLOEXEC) < 0) {
    return -1;
  }
  action->status_fd = status_pipe[1];
  return 0;
}

/* Waits for the action's end and checks the init's records. */
static int reap(struct load *load, pid_t pid, int status_read, const struct action *action,
                struct failure *failure) {
  int status;
  struct rusage usage;
  pid_t waited = wait4(pid, &status, 0, &usage);
  int32_t record[64] = {0, -1};
  ssize_t length = read(status_read, record, sizeof record);
  close(status_read);
  int reported =
      load->host.options->direct || (length >= 8 && record[0] == RECORD_EXITED && record[1] == 0);
  if (waited < 0 || status != 0 || !reported) {
    snprintf(failure->message, sizeof failure->message,
             "action failed at step \"%s\": %s (status %d, record %d %d)",
             action->step == NULL ? "(in a warm sandbox)" : action->step,
             strerror(action->error), status, record[0], record[1]);
    return -1;
  }
  return 0;
}

/* One action as the engine runs it: its log files, a status pipe, the vfork-style clone with
 * a pidfd (all signals blocked around it), then wait4 and the init's records (the exit code,
 * then the resource usage, in one write). */
static int run_cold_action(struct load *load, long index, char *stack, struct failure *failure) {
  const struct options *options = load->host.options;
  uint64_t start = now_ns();
  struct action action = {.host = &load->host, .id_maps_fd = -1};
  int status_pipe[2] = {-1, -1};
  int id_maps[2] = {-1, -1};
  char cgroup_name[64];
  if (open_action_files(load, index, &action, status_pipe) < 0 ||
      (options->id_map != NULL && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, id_maps) < 0) ||
      make_cgroups(&load->host, action.cgroup_fds, cgroup_name, sizeof cgroup_name) < 0) {
    snprintf(failure->message, sizeof failure->message, "before the clone: %s",
             strerror(errno));
    return -1;
  }

  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  action.id_maps_fd = id_maps[1];
  uint64_t cloned = now_ns();
  /* As the engine (native/spawn.c): no CLONE_VFORK when the parent writes the child's id
   * maps while it waits; CLONE_VM either way. */
  pid_t pid = clone(namespaces_child, stack + CHILD_STACK_SIZE,
                    CLONE_VM | (options->id_map != NULL ? 0 : CLONE_VFORK) | CLONE_PIDFD | CLONE_NEWPID |
                        CLONE_NEWIPC | CLONE_NEWUTS | network_clone_flag(options) | SIGCHLD,
                    &action, &pidfd);
  int clone_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  if (id_maps[1] >= 0) close(id_maps[1]);
  if (pid > 0 && id_maps[0] >= 0) {
    /* Then, as after a vfork, until the child's exec (or exit) closes its end: only then
     * are the stack and `action` the parent's again. */
    serve_id_maps(pid, id_maps[0], options->id_map);
    char rest[16];
    while (read(id_maps[0], rest, sizeof rest) > 0) {
    }
  }
  if (id_maps[0] >= 0) close(id_maps[0]);
  uint64_t execed = now_ns();
  close(status_pipe[1]);
  close(action.stdout_fd);
  close(action.stderr_fd);
  if (pid < 0) {
    snprintf(failure->message, sizeof failure->message, "clone: %s", strerror(clone_errno));
    close(status_pipe[0]);
    return -1;
  }
  int result = reap(load, pid, status_pipe[0], &action, failure);
  uint64_t reaped = now_ns();
  close(pidfd);
  if (remove_cgroups(&load->host, action.cgroup_fds, cgroup_name) < 0 && result == 0) {
    snprintf(failure->message, sizeof failure->message, "rmdir cgroup: %s", strerror(errno));
    result = -1;
  }
  add_phase(load, PHASE_BEFORE_CLONE, start, cloned);
  if (action.child_start_ns != 0) {
    add_phase(load, PHASE_CLONE, cloned, action.child_start_ns);
    add_phase(load, PHASE_MOUNTS, action.child_start_ns, action.mounted_ns);
    add_phase(load, PHASE_TO_EXEC, action.mounted_ns, execed);
  }
  add_phase(load, PHASE_RUN, execed, reaped);
  add_phase(load, PHASE_AFTER, reaped, now_ns());
  return result;
}

/* One action in a warm sandbox: what names the input root is all that is left. */
static int run_warm_action(struct load *load, long index, char *stack, struct failure *failure) {
  uint64_t start = now_ns();
  struct action action = {.host = &load->host, .id_maps_fd = -1};
  struct sandbox sandbox;
  if (!take_sandbox(&sandbox) && prepare_sandbox(&load->host, &sandbox, stack) < 0) {
    snprintf(failure->message, sizeof failure->message, "prepare a sandbox: %s",
             strerror(errno));
    return -1;
  }
  int status_pipe[2] = {-1, -1};
  if (open_action_files(load, index, &action, status_pipe) < 0) {
    snprintf(failure->message, sizeof failure->message, "log files: %s", strerror(errno));
    return -1;
  }
  uint64_t opened = now_ns();
  int root = clone_input_root(&load->host);
  const int fds[4] = {root, action.stdout_fd, action.stderr_fd, status_pipe[1]};
  int sent = root >= 0 && send_fds(sandbox.socket, fds) == 0;
  int saved = errno;
  for (int i = 0; i < 4; i++) close(fds[i]);
  if (sent && load->host.options->id_map != NULL &&
      serve_id_maps(sandbox.pid, sandbox.socket, load->host.options->id_map) < 0) {
    sent = 0;
    saved = errno;
  }
  if (!sent) {
    snprintf(failure->message, sizeof failure->message, "hand the action over: %s",
             strerror(saved));
    return -1;
  }
  uint64_t handed = now_ns();
  int result = reap(load, sandbox.pid, status_pipe[0], &action, failure);
  uint64_t reaped = now_ns();
  release_sandbox(&load->host, &sandbox);
  add_phase(load, PHASE_BEFORE_CLONE, start, opened);
  add_phase(load, PHASE_TO_EXEC, opened, handed);
  add_phase(load, PHASE_RUN, handed, reaped);
  add_phase(load, PHASE_AFTER, reaped, now_ns());
  return result;
}

static int run_exec_action(struct load *load, struct failure *failure) {
  pid_t pid;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (load->fd3 != NULL) posix_spawn_file_actions_addopen(&actions, 3, load->fd3, O_RDONLY, 0);
  int error = posix_spawn(&pid, load->argv[0], &actions, NULL, load->argv, environ);
  posix_spawn_file_actions_destroy(&actions);
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
    int result = load->mode == MODE_EXEC        ? run_exec_action(load, failure)
                 : load->host.options->warm > 0 ? run_warm_action(load, index, stack, failure)
                                                : run_cold_action(load, index, stack, failure);
    if (result < 0) return failure;
    load->latencies_us[index] = (double)(now_ns() - start) / 1000.0;
  }
  munmap(stack, CHILD_STACK_SIZE);
  free(failure);
  return NULL;
}

/* Starts the pool's thread and waits until the pool is full, so that the first actions
 * find it as a running runner's would. */
static int start_pool(struct host *host, pthread_t *thread) {
  pool.size = host->options->warm;
  pool.host = host;
  pool.ready = calloc((size_t)pool.size, sizeof *pool.ready);
  pool.stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (pool.ready == NULL || pool.stack == MAP_FAILED) return -1;
  if (pthread_create(thread, NULL, refill, NULL) != 0) return -1;
  pthread_mutex_lock(&pool.lock);
  while (pool.count < pool.size) {
    pthread_mutex_unlock(&pool.lock);
    usleep(1000); /* start-up only, never measured */
    pthread_mutex_lock(&pool.lock);
  }
  pthread_mutex_unlock(&pool.lock);
  return 0;
}

/* Closes the unused sandboxes (each exits on EOF) and reaps them. */
static void stop_pool(struct host *host, pthread_t thread) {
  pthread_mutex_lock(&pool.lock);
  pool.closing = 1;
  pthread_cond_signal(&pool.changed);
  pthread_mutex_unlock(&pool.lock);
  pthread_join(thread, NULL);
  for (int i = 0; i < pool.count; i++) {
    close(pool.ready[i].socket);
    waitpid(pool.ready[i].pid, NULL, 0);
    pool.ready[i].socket = -1;
    remove_cgroups(host, pool.ready[i].cgroup_fds, pool.ready[i].cgroup_name);
  }
  pool.count = 0;
}

static int run_load(struct load *load, long concurrency) {
  pthread_t *threads = calloc((size_t)concurrency, sizeof *threads);
  load->latencies_us = calloc((size_t)load->actions, sizeof *load->latencies_us);
  if (threads == NULL || load->latencies_us == NULL) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  int warm = load->mode == MODE_RUN && load->host.options->warm > 0;
  pthread_t pool_thread;
  if (warm && start_pool(&load->host, &pool_thread) < 0) {
    perror("start the pool");
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
  if (warm) stop_pool(&load->host, pool_thread);
  if (failed) return 1;

  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double cpu_seconds = (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
                       (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  double children_cpu_seconds =
      (double)(children.ru_utime.tv_sec + children.ru_stime.tv_sec) +
      (double)(children.ru_utime.tv_usec + children.ru_stime.tv_usec) / 1e6;
  printf("{\"wallSeconds\":%.6f,\"cpuSeconds\":%.6f,\"childrenCpuSeconds\":%.6f,"
         "\"peakRssBytes\":%ld,\"childPeakRssBytes\":%ld,",
         wall_seconds, cpu_seconds, children_cpu_seconds, self.ru_maxrss * 1024L,
         children.ru_maxrss * 1024L);
  if (load->mode == MODE_RUN) {
    printf("\"phasesMicroseconds\":{");
    for (int i = 0; i < PHASES; i++) {
      printf("%s\"%s\":%.1f", i == 0 ? "" : ",", phase_names[i],
             (double)load->phase_ns[i] / 1000.0 / (double)load->actions);
    }
    printf("},");
  }
  printf("\"latenciesMicroseconds\":[");
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
  fprintf(stderr, "usage: floor run ROOT LOGS INIT ACTIONS CONCURRENCY [OPTION...]\n"
                  "         OPTION: direct inert network user=MAP session keyring seccomp=FILE\n"
                  "                 cgroup=DIR warm=N\n"
                  "       floor exec ACTIONS CONCURRENCY [fd3=FILE] ARGV...\n"
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
  if (host->root_fd < 0 || host->logs_fd < 0 || host->init_fd < 0) {
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

/* A BPF program (struct sock_filter[]) read from `path`. */
static int read_seccomp_program(const char *path, struct sock_fprog *program) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) return -1;
  static struct sock_filter filter[BPF_MAXINSNS];
  size_t count = fread(filter, sizeof *filter, BPF_MAXINSNS, file);
  fclose(file);
  program->len = (unsigned short)count;
  program->filter = filter;
  return count == 0 ? -1 : 0;
}

static int parse_options(int count, char **arguments, struct options *options) {
  for (int i = 0; i < count; i++) {
    const char *option = arguments[i];
    if (strcmp(option, "direct") == 0) options->direct = 1;
    else if (strcmp(option, "inert") == 0) options->inert = 1;
    else if (strcmp(option, "network") == 0) options->network = 1;
    else if (strncmp(option, "user=", 5) == 0) options->id_map = option + 5;
    else if (strcmp(option, "session") == 0) options->session = 1;
    else if (strcmp(option, "keyring") == 0) options->keyring = 1;
    else if (strncmp(option, "warm=", 5) == 0) options->warm = (int)parse_count(option + 5, "warm");
    else if (strncmp(option, "cgroup=", 7) == 0 && options->cgroup_count < MAX_CGROUPS) {
      options->cgroups[options->cgroup_count++] = option + 7;
    } else if (strncmp(option, "seccomp=", 8) == 0) {
      if (read_seccomp_program(option + 8, &options->seccomp) < 0) {
        fprintf(stderr, "%s: not a BPF program\n", option + 8);
        return -1;
      }
    } else {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 7 && strcmp(argv[1], "run") == 0) {
    static struct options options;
    struct load load = {.mode = MODE_RUN, .actions = parse_count(argv[5], "ACTIONS")};
    if (parse_options(argc - 7, &argv[7], &options) < 0) return usage();
    load.host.options = &options;
    if (open_host(&load.host, argv[2], argv[3], argv[4]) < 0) return 1;
    return run_load(&load, parse_count(argv[6], "CONCURRENCY"));
  }
  if (argc >= 5 && strcmp(argv[1], "exec") == 0) {
    static const struct options none;
    struct load load = {.mode = MODE_EXEC, .actions = parse_count(argv[2], "ACTIONS"),
                        .argv = &argv[4]};
    if (strncmp(argv[4], "fd3=", 4) == 0) {
      if (argc < 6) return usage();
      load.fd3 = argv[4] + 4;
      load.argv = &argv[5];
    }
    load.host.options = &none;
    return run_load(&load, parse_count(argv[3], "CONCURRENCY"));
  }
  if (argc == 4 && strcmp(argv[1], "mounts") == 0) {
    return make_mounts(argv[2], parse_count(argv[3], "COUNT"));
  }
  return usage();
}
