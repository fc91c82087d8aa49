/* What test/kernel/hostile-sixth.test.ts has an action do: each call the default seccomp
 * policy refuses, made through each entry point an x86_64 process has (syscall, int 0x80 as
 * i386, syscall with bit 30 as x32), with arguments that the kernel would refuse otherwise
 * (a bad fd, a NULL pointer), so that "EPERM" is the filter's answer and anything else means
 * the call reached the kernel. One line per attempt: "<call> <entry> <errno name|ok>".
 * "inflight" and "flowlabels" leave state in the network namespace for the next action. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/in6.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

static long call_native(long nr, long a, long b, long c, long d, long e) {
  long result;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                   : "rcx", "r11", "memory");
  return result;
}

/* i386's entry: 32-bit arguments in ebx, ecx, edx, esi, edi. */
static long call_i386(long nr, long a, long b, long c, long d, long e) {
  long result;
  __asm__ volatile("push %%rbx\n\tmov %2, %%rbx\n\tint $0x80\n\tpop %%rbx"
                   : "=a"(result)
                   : "a"(nr), "r"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                   : "memory");
  return result;
}

static void report(const char *name, const char *entry, long result) {
  printf("%s %s %s\n", name, entry, result < 0 && result > -4096 ? strerrorname_np((int)-result) : "ok");
  fflush(stdout);
}

struct call {
  const char *name;
  long x86_64, i386; /* numbers; x32 is x86_64's with bit 30 (x32 numbers equal x86_64's here) */
  long args[5];
};

/* socketcall's arguments, in the static binary's low memory (int 0x80 takes 32-bit pointers). */
static uint32_t vsock_arguments[3] = {40 /* AF_VSOCK */, 1 /* SOCK_STREAM */, 0};

/* Sockets that no process holds when the action ends: a unix socketpair whose ends, a TCP
 * listener on 127.0.0.1 and a socket bound to an abstract name are sent over the pair to
 * itself (SCM_RIGHTS) and closed: they stay in flight until the unix garbage collector
 * finds the cycle, after the action's PID 1 is gone. No packet. */
static void in_flight(void) {
  int pair[2];
  int result = socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(7357),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (result == 0) result = bind(listener, (struct sockaddr *)&address, sizeof address);
  if (result == 0) result = listen(listener, 1);
  int named = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un name = {.sun_family = AF_UNIX, .sun_path = "\0chroot-runner-sixth"};
  if (result == 0)
    result = bind(named, (struct sockaddr *)&name, sizeof(sa_family_t) + 1 + strlen(name.sun_path + 1));
  if (result == 0) result = listen(named, 1);
  int fds[4] = {pair[0], pair[1], listener, named};
  char control[CMSG_SPACE(sizeof fds)];
  memset(control, 0, sizeof control);
  char byte = 'x';
  struct iovec data = {.iov_base = &byte, .iov_len = 1};
  struct msghdr message = {.msg_iov = &data, .msg_iovlen = 1, .msg_control = control,
                           .msg_controllen = sizeof control};
  struct cmsghdr *header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(header), fds, sizeof fds);
  if (result == 0) result = (int)sendmsg(pair[0], &message, 0) == 1 ? 0 : -1;
  if (result == 0) result = (int)sendmsg(pair[1], &message, 0) == 1 ? 0 : -1;
  report("inflight", "sent", result);
  for (int i = 0; i < 4; i++) close(fds[i]);
}

/* As many IPv6 flow labels as an unprivileged process may hold (32 per socket, up to a
 * quarter of the kernel's 4096), each lingering 60 s after its socket: ip6_flowlabel then
 * reads tens of kilobytes, more than one read of the check's first buffer. */
static void flow_labels(void) {
  int made = 0;
  for (int s = 0; s < 64; s++) {
    int sock = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    for (int i = 0; sock >= 0 && i < 32; i++) {
      struct in6_flowlabel_req request;
      memset(&request, 0, sizeof request);
      request.flr_dst = in6addr_loopback;
      request.flr_label = htonl(0x10000 + (uint32_t)(s * 32 + i));
      request.flr_action = IPV6_FL_A_GET;
      request.flr_share = IPV6_FL_S_EXCL;
      request.flr_flags = IPV6_FL_F_CREATE;
      request.flr_linger = 60;
      if (setsockopt(sock, IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, &request, sizeof request) == 0)
        made++;
    }
    if (sock >= 0) close(sock);
  }
  printf("flowlabels %d\n", made);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "inflight") == 0) {
    in_flight();
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "flowlabels") == 0) {
    flow_labels();
    return 0;
  }
  const long clone_newuser = 0x10000000, tiocsti = 0x5412, tioclinux = 0x541c;
  const long o_creat = 0100, o_tmpfile = 020000000, s_isuid = 04000, s_isgid = 02000;
  const struct call calls[] = {
      {"bpf", 321, 357, {0, 0, 0, 0, 0}},
      {"perf_event_open", 298, 336, {0, 0, -1, -1, 0}},
      {"io_uring_setup", 425, 425, {1, 0, 0, 0, 0}},
      {"userfaultfd", 323, 374, {-1, 0, 0, 0, 0}},
      {"keyctl", 250, 288, {-1, 0, 0, 0, 0}},
      {"add_key", 248, 286, {0, 0, 0, 0, 0}},
      {"unshare-newuser", 272, 310, {clone_newuser | 0x80000000L, 0, 0, 0, 0}},
      {"tiocsti", 16, 54, {-1, tiocsti, 0, 0, 0}},
      {"tioclinux", 16, 54, {-1, tioclinux, 0, 0, 0}},
      {"vsock", 41, 359, {40, 1, 0, 0, 0}},
      {"chmod-suid", 90, 15, {0, s_isuid | 0755, 0, 0, 0}},
      {"fchmodat-sgid", 268, 306, {-1, 0, s_isgid | 0755, 0, 0}},
      {"openat-creat-suid", 257, 295, {-1, 0, o_creat, s_isuid, 0}},
      {"openat-tmpfile-sgid", 257, 295, {-1, 0, o_tmpfile | 0200000, s_isgid, 0}},
      {"open-creat-suid", 2, 5, {0, o_creat, s_isuid, 0, 0}},
      {"creat-suid", 85, 8, {0, s_isuid, 0, 0, 0}},
      {"mknodat-sgid", 259, 297, {-1, 0, s_isgid | 0100000, 0, 0}},
      {"fchmodat2-suid", 452, 452, {-1, 0, s_isuid, 0, 0}},
  };
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    const struct call *c = &calls[i];
    const long *a = c->args;
    report(c->name, "x86_64", call_native(c->x86_64, a[0], a[1], a[2], a[3], a[4]));
    report(c->name, "i386", call_i386(c->i386, a[0], a[1], a[2], a[3], a[4]));
    report(c->name, "x32", call_native(X32_BIT | c->x86_64, a[0], a[1], a[2], a[3], a[4]));
  }
  /* socketcall(SYS_SOCKET, {AF_VSOCK, SOCK_STREAM, 0}): i386's multiplexer, its arguments in
   * memory where no filter reads them. */
  report("vsock-socketcall", "i386", call_i386(102, 1, (long)(uintptr_t)vsock_arguments, 0, 0, 0));
  return 0;
}
