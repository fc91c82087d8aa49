/* The attacks of test/kernel/hostile-masks.test.ts on what the engine leaves unmasked where
 * its actions' ids are never the host's uid 0 (HostResources.hostRootOnlyEntries), run inside
 * the action. Each prints one line for every attack that worked, and nothing else, so that an
 * empty stdout is what held. Built static by the test. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static int links = 0;

/* The file at `path` opened read-only by `how` (or, a directory, a name listed). */
static void read_through(const char *how, const char *path, int fd) {
  if (fd < 0) return;
  struct stat status;
  if (fstat(fd, &status) == 0 && S_ISDIR(status.st_mode)) {
    DIR *directory = fdopendir(fd);
    if (directory == NULL) {
      close(fd);
      return;
    }
    for (struct dirent *entry; (entry = readdir(directory)) != NULL;) {
      if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0) {
        printf("listed %s %s\n", how, path);
        break;
      }
    }
    closedir(directory);
    return;
  }
  /* Opening it is the breach (the kpage files refuse reads but of 8-byte words). */
  char word[8];
  printf("%s %s %s\n", read(fd, word, sizeof word) > 0 ? "read" : "opened", how, path);
  close(fd);
}

static int open2(const char *path, int flags) {
  struct open_how how = {.flags = (unsigned)flags | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
  return (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
}

/* The file of an O_PATH descriptor opened again through /proc/self/fd. */
static int reopen(const char *path, int flags) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return -1;
  char magic[64];
  snprintf(magic, sizeof magic, "/proc/self/fd/%d", fd);
  int reopened = open(magic, flags | O_CLOEXEC);
  close(fd);
  return reopened;
}

static void attack_read(const char *path) {
  read_through("open", path, open(path, O_RDONLY | O_CLOEXEC));
  read_through("openat2", path, open2(path, O_RDONLY));
  read_through("o-path-reopen", path, reopen(path, O_RDONLY));
}

static void worked(const char *what, const char *path, int result) {
  if (result >= 0) printf("%s %s\n", what, path);
}

static void opened(const char *what, const char *path, int fd) {
  worked(what, path, fd);
  if (fd >= 0) close(fd);
}

/* Every way to change the file at `path` or its attributes; none writes data. */
static void attack_write(const char *path) {
  struct stat status;
  if (lstat(path, &status) != 0) return;
  if (!S_ISDIR(status.st_mode)) {
    opened("open-write", path, open(path, O_WRONLY | O_CLOEXEC));
    opened("open-rdwr", path, open(path, O_RDWR | O_CLOEXEC));
    opened("openat2-write", path, open2(path, O_WRONLY));
    opened("o-path-reopen-write", path, reopen(path, O_WRONLY));
    worked("truncate", path, truncate(path, (off_t)status.st_size));
    char link_path[64];
    snprintf(link_path, sizeof link_path, "/tmp/hostile-masks-link-%d", links++);
    worked("hardlink", path, link(path, link_path));
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0) {
      worked("linkat-empty-path", path, linkat(fd, "", AT_FDCWD, link_path, AT_EMPTY_PATH));
      close(fd);
    }
    unlink(link_path);
  }
  worked("chmod", path, chmod(path, status.st_mode & 07777));
  worked("fchmodat2", path,
         (int)syscall(SYS_fchmodat2, AT_FDCWD, path, status.st_mode & 07777, 0));
  worked("chown", path, chown(path, 0, 0));
  worked("utimensat", path, utimensat(AT_FDCWD, path, NULL, 0));
  const char *names[] = {"user.hostile", "trusted.hostile", "security.hostile"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char what[64];
    snprintf(what, sizeof what, "setxattr-%s", names[i]);
    worked(what, path, setxattr(path, names[i], "x", 1, XATTR_CREATE));
  }
  if (S_ISDIR(status.st_mode)) {
    char made[4096];
    snprintf(made, sizeof made, "%s/hostile-made", path);
    worked("mkdir-beneath", path, mkdir(made, 0700));
    opened("create-beneath", path, open(made, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  }
}

/* The action's id maps and its own ids: none is the host's uid or gid 0, nor unmapped (an
 * unmapped id reads as the overflow id: a host id kept from before the namespace). */
static void ids(void) {
  const char *maps[] = {"/proc/self/uid_map", "/proc/self/gid_map"};
  for (size_t i = 0; i < 2; i++) {
    FILE *file = fopen(maps[i], "re");
    if (file == NULL) {
      printf("unreadable %s\n", maps[i]);
      continue;
    }
    unsigned long inside, outside, count;
    while (fscanf(file, "%lu %lu %lu", &inside, &outside, &count) == 3) {
      if (outside == 0) printf("%s maps host id 0 as %lu\n", maps[i], inside);
    }
    fclose(file);
  }
  FILE *status = fopen("/proc/self/status", "re");
  if (status == NULL) return;
  char line[512];
  while (fgets(line, sizeof line, status) != NULL) {
    if (strncmp(line, "Uid:", 4) != 0 && strncmp(line, "Gid:", 4) != 0 &&
        strncmp(line, "Groups:", 7) != 0)
      continue;
    for (char *word = strtok(strchr(line, ':') + 1, " \t\n"); word != NULL;
         word = strtok(NULL, " \t\n")) {
      if (strcmp(word, "65534") == 0) printf("unmapped id in %s", line);
    }
  }
  fclose(status);
}

/* A procfs or sysfs of its own, by the new mount API and by mount(2). */
static void new_mounts(const char *where) {
  const char *types[] = {"proc", "sysfs"};
  for (size_t i = 0; i < 2; i++) {
    int fs = (int)syscall(SYS_fsopen, types[i], 0);
    worked("fsopen", types[i], fs);
    if (fs >= 0) close(fs);
    if (mount(types[i], where, types[i], 0, NULL) == 0) {
      printf("mount %s\n", types[i]);
      umount2(where, MNT_DETACH);
    }
  }
}

/* In a nested user, mount and PID namespace (every capability there): a procfs of its own,
 * then the attacks through it and through the action's /proc. */
static int nested(int argc, char **argv) {
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID) != 0) {
    printf("unshare-refused %s\n", strerrorname_np(errno));
    return 0;
  }
  pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    const char *where = "/tmp/hostile-masks-proc";
    mkdir(where, 0700);
    if (mount("proc", where, "proc", 0, NULL) == 0) {
      printf("mount proc nested\n");
      umount2(where, MNT_DETACH);
    }
    rmdir(where);
    for (int i = 0; i < argc; i++) {
      if (argv[i][0] == 'r') attack_read(argv[i] + 2);
      else attack_write(argv[i] + 2);
    }
    fflush(stdout);
    _exit(0);
  }
  int status;
  waitpid(child, &status, 0);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  const char *what = argv[1];
  if (strcmp(what, "read") == 0) {
    for (int i = 2; i < argc; i++) attack_read(argv[i]);
    return 0;
  }
  if (strcmp(what, "write") == 0) {
    for (int i = 2; i < argc; i++) attack_write(argv[i]);
    return 0;
  }
  if (strcmp(what, "ids") == 0) {
    ids();
    return 0;
  }
  if (strcmp(what, "mounts") == 0 && argc > 2) {
    new_mounts(argv[2]);
    return 0;
  }
  /* Arguments "r:PATH" (read) and "w:PATH" (write). */
  if (strcmp(what, "nested") == 0) return nested(argc - 2, argv + 2);
  return 2;
}
