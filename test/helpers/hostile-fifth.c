/* What test/kernel/hostile-fifth.test.ts has an action do that busybox cannot. One command
 * per run; each prints one line per attempt, "<name> ok", "<name> <errno name>" or
 * "<name> <value>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char *name, int result) {
  printf("%s %s\n", name, result < 0 ? strerrorname_np(errno) : "ok");
}

/* The names in the directory `path`, sorted by the shell's reader: one line. */
static void list(const char *name, const char *path) {
  DIR *dir = opendir(path);
  if (dir == NULL) {
    report(name, -1);
    return;
  }
  printf("%s", name);
  for (struct dirent *entry; (entry = readdir(dir)) != NULL;)
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      printf(" %s", entry->d_name);
  printf("\n");
  closedir(dir);
}

/* The classic escape: chroot into a subdirectory, keep the working directory outside it,
 * climb, chroot there. What the new root holds tells where the climb ended. */
static void chroot_escape(const char *scratch) {
  char inner[4096];
  snprintf(inner, sizeof inner, "%s/escape", scratch);
  mkdir(inner, 0700);
  report("chroot-inner", chroot(inner));
  for (int i = 0; i < 64; i++) chdir("..");
  report("chroot-climbed", chroot("."));
  list("root", "/");
  char target[4096] = "";
  ssize_t got = readlink("/proc/self/root", target, sizeof target - 1);
  printf("proc-root %s\n", got < 0 ? strerrorname_np(errno) : target);
}

/* A nested user namespace (where seccomp allows it), then what the kernel lets its owner
 * mount: proc and sysfs are refused to a chrooted process (current_chrooted) and where the
 * existing one is not fully visible. */
static void nested(const char *scratch) {
  report("unshare-user", unshare(CLONE_NEWUSER | CLONE_NEWNS));
  char point[4096];
  snprintf(point, sizeof point, "%s/proc", scratch);
  mkdir(point, 0700);
  report("mount-proc", mount("proc", point, "proc", 0, NULL));
  snprintf(point, sizeof point, "%s/sys", scratch);
  mkdir(point, 0700);
  report("mount-sysfs", mount("sysfs", point, "sysfs", 0, NULL));
  report("mount-tmpfs", mount("tmpfs", point, "tmpfs", 0, NULL));
  report("umount-root", umount2("/", MNT_DETACH));
  report("umount-mask", umount2("/proc/kpageflags", MNT_DETACH));
  report("umount-firmware", umount2("/sys/firmware", MNT_DETACH));
  report("remount-sys", mount(NULL, "/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
  list("root", "/");
}

/* In a nested user namespace with a cgroup namespace of its own: mounts each v1 hierarchy
 * and tries to raise its memory limit and to freeze the cgroup at its namespace's root. */
static void cgroup_write(const char *scratch) {
  report("unshare-user", unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWCGROUP));
  const char *controllers[] = {"memory", "pids", "freezer", "devices", "cpuset"};
  const char *files[] = {"memory.limit_in_bytes", "pids.max", "freezer.state", "devices.allow",
                         "cpuset.cpus"};
  const char *values[] = {"9223372036854771712", "max", "FROZEN", "a", "0"};
  for (size_t i = 0; i < sizeof controllers / sizeof *controllers; i++) {
    char point[4096], file[4200];
    snprintf(point, sizeof point, "%s/%s", scratch, controllers[i]);
    mkdir(point, 0700);
    char name[64];
    snprintf(name, sizeof name, "mount-%s", controllers[i]);
    if (mount("cgroup", point, "cgroup", 0, controllers[i]) < 0) {
      report(name, -1);
      continue;
    }
    report(name, 0);
    snprintf(file, sizeof file, "%s/%s", point, files[i]);
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    snprintf(name, sizeof name, "write-%s", files[i]);
    report(name, fd < 0 ? -1 : (int)write(fd, values[i], strlen(values[i])));
    if (fd >= 0) close(fd);
  }
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "escape") == 0) chroot_escape(argv[2]);
  else if (argc == 3 && strcmp(argv[1], "nested") == 0) nested(argv[2]);
  else if (argc == 3 && strcmp(argv[1], "cgroup") == 0) cgroup_write(argv[2]);
  else return 2;
  return 0;
}
