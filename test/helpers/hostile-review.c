/* Attacks of the second review (test/kernel/hostile-review.test.ts) that busybox and
 * test/helpers/hostile.c cannot try; prints one line per outcome. Some also run on the host,
 * to look at what an action left (getcap), to feel what it holds (inotify-one) or to ask who
 * owns its user namespace (userns-owner). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/fs.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <linux/vm_sockets.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static const char *err(void) { return strerrorname_np(errno); }

/* A file capability (CAP_SETUID, permitted and effective): a setuid-root program in all but
 * name for whoever runs it where the file system is not nosuid. */
static int set_capability(const char *path) {
  struct vfs_cap_data data;
  memset(&data, 0, sizeof data);
  data.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  data.data[0].permitted = 1u << CAP_SETUID;
  if (setxattr(path, "security.capability", &data, XATTR_CAPS_SZ_2, 0) != 0) {
    printf("setcap-refused %s\n", err());
    return 0;
  }
  printf("setcap-done\n");
  return 0;
}

static int get_capability(const char *path) {
  struct vfs_cap_data data;
  if (getxattr(path, "security.capability", &data, sizeof data) < 0) {
    printf("no-caps %s\n", err());
    return 0;
  }
  printf("caps %x\n", data.data[0].permitted);
  return 0;
}

static int become_root(void) {
  if (setuid(0) != 0) { printf("setuid-refused %s\n", err()); return 0; }
  printf("uid %u euid %u\n", getuid(), geteuid());
  return 0;
}

/* AF_VSOCK is not network-namespaced: a socket bound here is in the host's (and the
 * hypervisor's) port space. Binds to any port; connects nowhere. */
static int vsock(void) {
  int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) { printf("vsock-refused %s\n", err()); return 0; }
  struct sockaddr_vm address;
  memset(&address, 0, sizeof address);
  address.svm_family = AF_VSOCK;
  address.svm_cid = VMADDR_CID_ANY;
  address.svm_port = VMADDR_PORT_ANY;
  if (bind(s, (struct sockaddr *)&address, sizeof address) != 0) {
    printf("vsock-bind-refused %s\n", err());
  } else {
    printf("vsock-bound\n");
  }
  close(s);
  return 0;
}

/* An AUDIT_USER record in the host's audit log (CAP_AUDIT_WRITE). */
static int audit(const char *text) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
  if (s < 0) { printf("audit-refused %s\n", err()); return 0; }
  struct {
    struct nlmsghdr header;
    char data[256];
  } message;
  memset(&message, 0, sizeof message);
  size_t length = strnlen(text, sizeof message.data - 1) + 1;
  message.header.nlmsg_len = NLMSG_LENGTH(length);
  message.header.nlmsg_type = AUDIT_USER;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  memcpy(NLMSG_DATA(&message.header), text, length - 1);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(s, &message, message.header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    printf("audit-refused %s\n", err());
    return 0;
  }
  char reply[512];
  ssize_t n = recv(s, reply, sizeof reply, 0);
  struct nlmsghdr *header = (struct nlmsghdr *)reply;
  if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) || header->nlmsg_type != NLMSG_ERROR) {
    printf("audit-unexpected-reply\n");
  } else {
    int error = ((struct nlmsgerr *)NLMSG_DATA(header))->error;
    if (error == 0) printf("audit-accepted\n");
    else printf("audit-refused %s\n", strerrorname_np(-error));
  }
  close(s);
  return 0;
}

/* Prints what refused the next one (`what`-held ERRNO), writes `count` to the FIFO `ready`
 * and holds what it took until something is written to the FIFO `gate`. */
static int hold(const char *what, int count, const char *ready, const char *gate) {
  printf("%s-held %s\n", what, err());
  fflush(stdout);
  FILE *r = fopen(ready, "w");
  if (r) { fprintf(r, "%d\n", count); fclose(r); }
  char byte;
  int g = open(gate, O_RDONLY | O_CLOEXEC);
  if (g >= 0) { (void)!read(g, &byte, 1); close(g); }
  return 0;
}

/* Takes inotify instances until the kernel refuses one (fs.inotify.max_user_instances is per
 * user, charged to the owner of the action's user namespace at the host's level) and holds
 * them. */
static int inotify_hold(const char *ready, const char *gate) {
  int count = 0;
  while (count < 100000 && inotify_init1(IN_CLOEXEC) >= 0) count++;
  return hold("inotify", count, ready, gate);
}

static int inotify_one(void) {
  int fd = inotify_init1(IN_CLOEXEC);
  if (fd < 0) { printf("inotify-refused %s\n", err()); return 0; }
  printf("inotify-ok\n");
  close(fd);
  return 0;
}

/* Grows pipes to 1 MiB each until the kernel refuses (fs.pipe-user-pages-soft counts the
 * pages of every pipe of a host uid) and holds them. */
static int pipe_hold(const char *ready, const char *gate) {
  int count = 0;
  for (int fds[2]; count < 4096 && pipe2(fds, O_CLOEXEC) == 0; count++) {
    if (fcntl(fds[0], F_SETPIPE_SZ, 1 << 20) < 0) break;
  }
  return hold("pipes", count, ready, gate);
}

/* The size a new pipe gets: 2 pages instead of 16 once its uid is past the soft limit. */
static int pipe_size(void) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) { printf("pipe-refused %s\n", err()); return 0; }
  printf("pipe-size %d\n", fcntl(fds[0], F_GETPIPE_SZ));
  return 0;
}

/* On the host: the owner of process `pid`'s user namespace, as the host sees it. */
static int userns_owner(const char *pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/ns/user", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { printf("open-failed %s\n", err()); return 0; }
  uid_t owner;
  if (ioctl(fd, NS_GET_OWNER_UID, &owner) != 0) printf("owner-unknown %s\n", err());
  else printf("owner %u\n", (unsigned)owner);
  close(fd);
  return 0;
}

/* chattr +i (or +a): a file bb_worker, as root without CAP_LINUX_IMMUTABLE in its way, could
 * still remove, but whose removal fails for every tool that does not clear the flag first. */
static int set_flag(const char *path, const char *flag) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { printf("open-failed %s\n", err()); return 0; }
  int flags = 0;
  if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) { printf("getflags-failed %s\n", err()); close(fd); return 0; }
  flags |= strcmp(flag, "append") == 0 ? FS_APPEND_FL : FS_IMMUTABLE_FL;
  if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) printf("%s-refused %s\n", flag, err());
  else printf("%s-set\n", flag);
  close(fd);
  return 0;
}

/* A system call through the i386 entry (int 0x80), which a filter written for x86_64 alone
 * would not see. Arguments are 32-bit: the path must live below 4 GiB (a static, non-PIE
 * binary's data does). */
static long int80(long number, long a, long b, long c) {
  long result;
  __asm__ volatile("int $0x80" : "=a"(result) : "a"(number), "b"(a), "c"(b), "d"(c), "S"(0L) : "memory");
  return result;
}

static char int80_path[256];

/* Sets the host's clock to what it already reads (CAP_SYS_TIME): harmless where it works. */
static int set_time_to_now(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (clock_settime(CLOCK_REALTIME, &now) != 0) { printf("settime-refused %s\n", err()); return 0; }
  printf("settime-done\n");
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *what = argv[1];
  if (strcmp(what, "setcap") == 0 && argc > 2) return set_capability(argv[2]);
  if (strcmp(what, "getcap") == 0 && argc > 2) return get_capability(argv[2]);
  if (strcmp(what, "become-root") == 0) return become_root();
  if (strcmp(what, "vsock") == 0) return vsock();
  if (strcmp(what, "audit") == 0 && argc > 2) return audit(argv[2]);
  if (strcmp(what, "inotify-hold") == 0 && argc > 3) return inotify_hold(argv[2], argv[3]);
  if (strcmp(what, "inotify-one") == 0) return inotify_one();
  if (strcmp(what, "userns-owner") == 0 && argc > 2) return userns_owner(argv[2]);
  if (strcmp(what, "pipe-hold") == 0 && argc > 3) return pipe_hold(argv[2], argv[3]);
  if (strcmp(what, "pipe-size") == 0) return pipe_size();
  if (strcmp(what, "settime-now") == 0) return set_time_to_now();
  if (strcmp(what, "flag") == 0 && argc > 3) return set_flag(argv[2], argv[3]);
  /* i386 numbers: getpid 20, fchmodat 306, fchmodat2 452 (flags, the fourth, 0). */
  if (strcmp(what, "int80-getpid") == 0) { printf("int80-getpid %s\n", int80(20, 0, 0, 0) > 0 ? "ok" : "failed"); return 0; }
  if (strcmp(what, "int80-setuid-bit") == 0 && argc > 3) {
    strncpy(int80_path, argv[2], sizeof int80_path - 1);
    long result = int80(atol(argv[3]), AT_FDCWD, (long)(unsigned long)int80_path, 04755);
    if (result < 0) printf("int80-refused %s\n", strerrorname_np((int)-result));
    else printf("int80-setuid-bit-set\n");
    return 0;
  }
  /* x32 numbers (x86_64's with bit 30): getpid 39, fchmodat 268. */
  if (strcmp(what, "x32-getpid") == 0) {
    long result = syscall(0x40000000L | 39);
    printf("x32-getpid %s\n", result > 0 ? "ok" : strerrorname_np(errno));
    return 0;
  }
  if (strcmp(what, "x32-setuid-bit") == 0 && argc > 2) {
    if (syscall(0x40000000L | 268, AT_FDCWD, argv[2], 04755) == 0) printf("x32-setuid-bit-set\n");
    else printf("x32-refused %s\n", strerrorname_np(errno));
    return 0;
  }
  return 2;
}
