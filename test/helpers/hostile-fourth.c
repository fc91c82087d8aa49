/* What test/kernel/hostile-fourth.test.ts has an action do that busybox cannot. One command
 * per run; each prints one line per attempt, "<name> ok", "<name> <errno name>" or
 * "<name> <value>". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <unistd.h>

static void report(const char *name, int result) {
  printf("%s %s\n", name, result < 0 ? strerrorname_np(errno) : "ok");
}

/* Makes the namespace's TCP Fast Open key (kept by the namespace, made on first use) with
 * setsockopt(TCP_FASTOPEN) on an unbound socket of each family: no packet, no counter. */
static void fast_open_set(void) {
  const int families[] = {AF_INET, AF_INET6};
  for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
    int sock = socket(families[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
    int queue = 5;
    report(families[i] == AF_INET ? "fastopen" : "fastopen6",
           sock < 0 ? -1 : setsockopt(sock, IPPROTO_TCP, TCP_FASTOPEN, &queue, sizeof queue));
    if (sock >= 0) close(sock);
  }
}

/* What of the namespace's key an action can read: TCP_FASTOPEN_KEY of a socket and of a
 * listener (the kernel gives the socket's own key only), and the sysctl (0600, the
 * namespace owner's root). */
static void fast_open_read(void) {
  for (int listener = 0; listener < 2; listener++) {
    int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener) listen(sock, 1);
    unsigned char key[32];
    socklen_t length = sizeof key;
    if (getsockopt(sock, IPPROTO_TCP, TCP_FASTOPEN_KEY, key, &length) < 0)
      report(listener ? "listener-key" : "socket-key", -1);
    else
      printf("%s length %u\n", listener ? "listener-key" : "socket-key", length);
    close(sock);
  }
  char line[128] = "";
  int fd = open("/proc/sys/net/ipv4/tcp_fastopen_key", O_RDONLY | O_CLOEXEC);
  ssize_t got = fd < 0 ? -1 : read(fd, line, sizeof line - 1);
  if (got < 0) {
    report("sysctl", -1);
  } else {
    line[strcspn(line, "\n")] = 0;
    printf("sysctl %s\n", strcmp(line, "00000000-00000000-00000000-00000000") == 0 ? "none" : "key");
  }
  if (fd >= 0) close(fd);
}

/* Unix sockets left in flight in a cycle (each end of a pair sent over the other, then
 * closed): only the kernel's unix garbage collector frees them, after the action. */
static void in_flight_cycle(void) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0) {
    report("cycle", -1);
    return;
  }
  int result = 0;
  for (int end = 0; end < 2 && result == 0; end++) {
    char byte = 'x';
    struct iovec data = {.iov_base = &byte, .iov_len = 1};
    union {
      char buffer[CMSG_SPACE(sizeof(int))];
      struct cmsghdr align;
    } control;
    struct msghdr message = {.msg_iov = &data,
                             .msg_iovlen = 1,
                             .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &pair[end], sizeof(int));
    result = sendmsg(pair[1 - end], &message, 0) < 0 ? -1 : 0;
  }
  report("cycle", result);
  close(pair[0]);
  close(pair[1]);
}

/* Holds an flock and an inotify watch on /dev/null (a node of the /dev the engine's actions
 * share) and a file in its own /dev/shm; tells the test by opening `ready`, waits for a line
 * on `go`, then counts the events its watch saw meanwhile. */
static void dev_hold(const char *ready, const char *go) {
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  report("flock", flock(null, LOCK_EX));
  int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  report("watch", watch < 0 ? -1 : inotify_add_watch(watch, "/dev/null", IN_ALL_EVENTS));
  int shm = open("/dev/shm/from-holder", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  report("shm", shm);
  int signal = open(ready, O_WRONLY | O_CLOEXEC);
  close(signal);
  char line[8];
  int gate = open(go, O_RDONLY | O_CLOEXEC);
  while (read(gate, line, sizeof line) > 0) continue;
  int events = 0;
  char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (ssize_t got; (got = read(watch, buffer, sizeof buffer)) > 0;) {
    for (char *at = buffer; at < buffer + got; at += sizeof(struct inotify_event) + ((struct inotify_event *)at)->len)
      events++;
  }
  printf("events %s\n", events > 0 ? "seen" : "none");
}

/* What another action sees of the holder's: its flock on /dev/null, its /dev/shm file; and
 * a write to /dev/null, for the holder's watch. */
static void dev_probe(void) {
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  report("flock", flock(null, LOCK_EX | LOCK_NB));
  report("write", write(null, "x", 1) < 0 ? -1 : 0);
  report("shm", access("/dev/shm/from-holder", F_OK));
}

int main(int argc, char **argv) {
  const char *command = argc > 1 ? argv[1] : "";
  if (strcmp(command, "fastopen-set") == 0) {
    fast_open_set();
  } else if (strcmp(command, "fastopen-read") == 0) {
    fast_open_read();
  } else if (strcmp(command, "cycle") == 0) {
    in_flight_cycle();
  } else if (strcmp(command, "dev-hold") == 0 && argc == 4) {
    dev_hold(argv[2], argv[3]);
  } else if (strcmp(command, "dev-probe") == 0) {
    dev_probe();
  } else {
    fprintf(stderr, "usage: %s fastopen-set|fastopen-read|cycle|dev-hold READY GO|dev-probe\n", argv[0]);
    return 2;
  }
  return 0;
}
