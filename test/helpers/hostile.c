/* Attacks an action may try from inside its root; prints one word per outcome. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/io_uring.h>
#include <linux/perf_event.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

/* keyctl(2) numbers (linux/keyctl.h), called through syscall(): no libkeyutils here. */
enum { KEY_USER_SESSION = -5, KEY_SESSION = -3, KEYCTL_SEARCH = 10, KEYCTL_READ = 11,
       KEYCTL_INVALIDATE = 21 };

static const char *err(void) { return strerrorname_np(errno); }

static int write_text(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  errno = saved;
  return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* A nested user namespace mapping the action's own ids to 0, then new mount and cgroup
 * namespaces: 0, or -1 once it printed the step the kernel refused. */
static int enter_nested_namespaces(void) {
  char map[64];
  unsigned uid = geteuid(), gid = getegid();
  if (unshare(CLONE_NEWUSER) != 0) { printf("userns-refused %s\n", err()); return -1; }
  snprintf(map, sizeof map, "0 %u 1\n", uid);
  if (write_text("/proc/self/setgroups", "deny") != 0 && errno != ENOENT) {
    printf("setgroups-refused %s\n", err()); return -1;
  }
  if (write_text("/proc/self/uid_map", map) != 0) { printf("uid_map-refused %s\n", err()); return -1; }
  snprintf(map, sizeof map, "0 %u 1\n", gid);
  if (write_text("/proc/self/gid_map", map) != 0) { printf("gid_map-refused %s\n", err()); return -1; }
  if (unshare(CLONE_NEWNS | CLONE_NEWCGROUP) != 0) { printf("cgroupns-refused %s\n", err()); return -1; }
  return 0;
}

/* Item 1 of issue 13: a user namespace mapping the action's own ids, a cgroup namespace and a
 * fresh cgroup2 mount, then cgroup.kill of a cgroup the host made. */
static int cgroup_kill(const char *cgroup) {
  if (enter_nested_namespaces() != 0) return 0;
  mkdir("/tmp/cgroup-x", 0755);
  if (mount("none", "/tmp/cgroup-x", "cgroup2", 0, NULL) != 0) {
    printf("mount-refused %s\n", err()); return 0;
  }
  char path[512];
  snprintf(path, sizeof path, "/tmp/cgroup-x/%s/cgroup.kill", cgroup);
  if (write_text(path, "1") != 0) { printf("kill-refused %s\n", err()); return 0; }
  printf("killed\n");
  return 0;
}

/* Writes `text` to FILE of the cgroup `victim` or of any cgroup named by a tail of its path,
 * whichever the mount at `dir` shows: 0 once one write succeeded, else -1 with errno. */
static int write_victim(const char *dir, const char *victim, const char *file, const char *text) {
  for (const char *tail = victim; tail != NULL; tail = strchr(tail, '/')) {
    if (*tail == '/') tail++;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, tail, file);
    if (write_text(path, text) == 0) return 0;
  }
  return -1;
}

/* Issue 18: its cgroup namespace. It mounts each cgroup hierarchy (cgroup2, v1's pids and
 * memory) as it is and, where user namespaces are allowed, again in a nested user namespace
 * with a cgroup namespace of its own; in each mount it tries to move itself into the host's
 * cgroup VICTIM (its path, or any tail of it) and to kill it; in the nested one, also
 * to lift its own limit (pids.max, memory.limit_in_bytes at the mount's root, its own
 * cgroup). One line per step. */
static void cgroup_mounts(const char *stage, const char *victim, int with_limits) {
  static const char *const types[][4] = {{"cgroup2", "cgroup2", "", "pids.max"},
                                         {"pids", "cgroup", "pids", "pids.max"},
                                         {"memory", "cgroup", "memory", "memory.limit_in_bytes"}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    const char *name = types[i][0];
    char dir[64], path[512];
    snprintf(dir, sizeof dir, "/tmp/%s-%s", stage, name);
    mkdir(dir, 0755);
    if (mount("none", dir, types[i][1], 0, types[i][2]) != 0) {
      printf("%s-%s-mount-refused %s\n", stage, name, err());
      continue;
    }
    if (write_victim(dir, victim, "cgroup.procs", "0") == 0) printf("%s-%s-joined-victim\n", stage, name);
    else printf("%s-%s-join-refused %s\n", stage, name, err());
    if (write_victim(dir, victim, "cgroup.kill", "1") == 0) printf("%s-%s-killed-victim\n", stage, name);
    else printf("%s-%s-kill-refused %s\n", stage, name, err());
    if (with_limits) {
      snprintf(path, sizeof path, "%s/%s", dir, types[i][3]);
      if (write_text(path, i == 2 ? "-1" : "max") == 0) printf("%s-%s-own-limit-lifted\n", stage, name);
      else printf("%s-%s-own-limit-refused %s\n", stage, name, err());
    }
  }
}

static int cgroup_escape(const char *victim) {
  cgroup_mounts("direct", victim, 0);
  if (enter_nested_namespaces() != 0) return 0;
  printf("userns\n");
  cgroup_mounts("nested", victim, 1);
  return 0;
}

/* Item 2: push a command into the controlling terminal's input queue. */
static int tiocsti(const char *text) {
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) { printf("tty-refused %s\n", err()); return 0; }
  for (const char *c = text; *c; c++) {
    if (ioctl(fd, TIOCSTI, c) != 0) { printf("tiocsti-refused %s\n", err()); return 0; }
  }
  printf("injected\n");
  return 0;
}

/* Item 3: the host's loopback TCP services, its abstract unix sockets, its interfaces. */
static int network(int port, const char *abstract) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&in, sizeof in) == 0) printf("tcp-connected\n");
  else printf("tcp-refused %s\n", err());
  close(s);
  s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  size_t length = strlen(abstract);
  memcpy(un.sun_path + 1, abstract, length);
  if (connect(s, (struct sockaddr *)&un, (socklen_t)(sizeof(sa_family_t) + 1 + length)) == 0)
    printf("unix-connected\n");
  else printf("unix-refused %s\n", err());
  close(s);
  struct if_nameindex *interfaces = if_nameindex();
  printf("interfaces");
  for (struct if_nameindex *i = interfaces; i && i->if_index; i++) printf(" %s", i->if_name);
  printf("\n");
  if (interfaces) if_freenameindex(interfaces);
  s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (s >= 0) { printf("packet-opened\n"); close(s); }
  else printf("packet-refused %s\n", err());
  return 0;
}

/* Item 5: keys of the user-session keyring and the session keyring the action inherited. */
static long find_key(const char *description) {
  long key = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SESSION, "user", description, 0);
  if (key < 0) key = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_USER_SESSION, "user", description, 0);
  return key;
}

static int read_key(const char *description) {
  long key = find_key(description);
  if (key < 0) { printf("key-refused %s\n", err()); return 0; }
  char payload[256];
  long n = syscall(SYS_keyctl, KEYCTL_READ, key, payload, sizeof payload - 1);
  if (n < 0) { printf("read-refused %s\n", err()); return 0; }
  payload[n < (long)sizeof payload - 1 ? n : (long)sizeof payload - 1] = 0;
  printf("read %s\n", payload);
  return 0;
}

static int add_key(const char *description, const char *payload) {
  if (syscall(SYS_add_key, "user", description, payload, strlen(payload), KEY_USER_SESSION) < 0) {
    printf("add-refused %s\n", err()); return 0;
  }
  printf("added\n");
  return 0;
}

static int remove_key(const char *description) {
  for (long key; (key = find_key(description)) >= 0;) {
    if (syscall(SYS_keyctl, KEYCTL_INVALIDATE, key) < 0) { printf("invalidate-failed %s\n", err()); return 1; }
  }
  printf("removed\n");
  return 0;
}

/* Item 8: kernel interfaces build actions never need. */
static int io_uring(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  long fd = syscall(SYS_io_uring_setup, 1, &params);
  if (fd >= 0) { printf("io_uring-opened\n"); close((int)fd); }
  else printf("io_uring-refused %s\n", err());
  return 0;
}

static int perf_event(void) {
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.exclude_kernel = 1;
  long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
  if (fd >= 0) { printf("perf-opened\n"); close((int)fd); }
  else printf("perf-refused %s\n", err());
  return 0;
}

static int chroot_escape(const char *probe) {
  mkdir("/escape-x", 0755);
  if (chroot("/escape-x") != 0) { printf("chroot-refused %s\n", strerrorname_np(errno)); return 0; }
  for (int i = 0; i < 256; i++) chdir("..");
  if (chroot(".") != 0) { printf("chroot2-refused %s\n", strerrorname_np(errno)); return 0; }
  struct stat st;
  if (stat(probe, &st) == 0) { printf("escaped\n"); return 0; }
  printf("contained %s\n", strerrorname_np(errno));
  return 0;
}

static int list_fds(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) { printf("opendir-failed %s\n", strerrorname_np(errno)); return 0; }
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (strcmp(dir, "/proc/self/fd") == 0 && atoi(e->d_name) == self) continue;
    char path[512], target[512];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) { printf("%s:%s\n", e->d_name, strerrorname_np(errno)); continue; }
    target[n] = 0;
    printf("%s\n", e->d_name);
  }
  closedir(d);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *what = argv[1];
  if (strcmp(what, "chroot-escape") == 0) return chroot_escape(argv[2]);
  if (strcmp(what, "fds") == 0) return list_fds(argc > 2 ? argv[2] : "/proc/self/fd");
  if (strcmp(what, "ptrace") == 0) {
    pid_t pid = atoi(argv[2]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) { printf("ptraced\n"); return 0; }
    printf("ptrace-refused %s\n", strerrorname_np(errno)); return 0;
  }
  if (strcmp(what, "kill") == 0) {
    pid_t pid = atoi(argv[2]);
    if (kill(pid, 0) == 0) { printf("signal-allowed\n"); return 0; }
    printf("kill-refused %s\n", strerrorname_np(errno)); return 0;
  }
  if (strcmp(what, "open") == 0) {
    int fd = open(argv[2], O_RDONLY);
    if (fd >= 0) { printf("opened\n"); return 0; }
    printf("open-refused %s\n", strerrorname_np(errno)); return 0;
  }
  if (strcmp(what, "cgroup-kill") == 0) return cgroup_kill(argv[2]);
  if (strcmp(what, "cgroup-escape") == 0) return cgroup_escape(argv[2]);
  if (strcmp(what, "tiocsti") == 0) return tiocsti(argv[2]);
  if (strcmp(what, "network") == 0) return network(atoi(argv[2]), argv[3]);
  if (strcmp(what, "read-key") == 0) return read_key(argv[2]);
  if (strcmp(what, "add-key") == 0) return add_key(argv[2], argv[3]);
  if (strcmp(what, "remove-key") == 0) return remove_key(argv[2]);
  if (strcmp(what, "io_uring") == 0) return io_uring();
  if (strcmp(what, "perf") == 0) return perf_event();
  if (strcmp(what, "euid") == 0) { printf("euid %u\n", geteuid()); return 0; }
  return 2;
}
