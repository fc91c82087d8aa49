/* Attacks an action may try from inside its root; prints one word per outcome. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <unistd.h>

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
  return 2;
}
