/* What test/kernel/network-reuse.test.ts has an action do in its network namespace that
 * busybox cannot: leave state that outlives the action without a packet on lo, or try to
 * change the namespace through interfaces busybox has no applet for. One command per run;
 * each prints one line per attempt, "<name> ok" or "<name> <errno name>". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/in6.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void report(const char *name, int result) {
  printf("%s %s\n", name, result < 0 ? strerrorname_np(errno) : "ok");
}

/* An IPv6 flow label, created exclusive with a linger of 60 s: it outlives the socket. */
static void flow_label(void) {
  int sock = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct in6_flowlabel_req request;
  memset(&request, 0, sizeof request);
  request.flr_dst = in6addr_loopback;
  request.flr_label = htonl(0x12345);
  request.flr_action = IPV6_FL_A_GET;
  request.flr_share = IPV6_FL_S_EXCL;
  request.flr_flags = IPV6_FL_F_CREATE;
  request.flr_linger = 60;
  report("flowlabel", sock < 0 ? -1
                               : setsockopt(sock, IPPROTO_IPV6, IPV6_FLOWLABEL_MGR, &request,
                                            sizeof request));
  close(sock);
}

/* A datagram to an address without a route: refused before any packet, but counted. */
static void no_route(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
  inet_pton(AF_INET, "192.0.2.1", &to.sin_addr);
  report("noroute", sendto(sock, "x", 1, 0, (struct sockaddr *)&to, sizeof to));
  close(sock);
}

/* An IPv6 route lookup without a packet: connect a datagram socket to ::1. */
static void lookup6(void) {
  int sock = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
  to.sin6_addr = in6addr_loopback;
  report("lookup6", connect(sock, (struct sockaddr *)&to, sizeof to));
  close(sock);
}

/* A TCP connection over lo closed by the connecting side first: that side's socket stays in
 * TIME_WAIT (60 s) after the process is gone. With listen-only, a listener is bound and closed
 * without a packet. */
static void connection(bool connect_too) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof address;
  int result = listener < 0 ? -1 : bind(listener, (struct sockaddr *)&address, sizeof address);
  if (result == 0) result = listen(listener, 1);
  if (result == 0) result = getsockname(listener, (struct sockaddr *)&address, &length);
  if (result == 0 && connect_too) {
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    result = connect(client, (struct sockaddr *)&address, sizeof address);
    int accepted = result < 0 ? -1 : accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (accepted < 0) result = -1;
    close(client);
    if (accepted >= 0) close(accepted);
  }
  report(connect_too ? "timewait" : "listen", result);
  close(listener);
}

/* Sends one netlink request and reads its acknowledgement: 0, or -1 with errno. */
static int netlink_request(int protocol, void *message, size_t length) {
  int sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (sock < 0) return -1;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int result = -1;
  if (sendto(sock, message, length, 0, (struct sockaddr *)&kernel, sizeof kernel) >= 0) {
    char reply[8192];
    ssize_t got = recv(sock, reply, sizeof reply, 0);
    struct nlmsghdr *header = (struct nlmsghdr *)reply;
    for (; got > 0 && NLMSG_OK(header, (size_t)got); header = NLMSG_NEXT(header, got)) {
      if (header->nlmsg_type != NLMSG_ERROR) continue;
      int error = ((struct nlmsgerr *)NLMSG_DATA(header))->error;
      errno = -error;
      result = error == 0 ? 0 : -1;
      break;
    }
    if (got < 0) result = -1;
  }
  int saved = errno;
  close(sock);
  errno = saved;
  return result;
}

/* An nftables table made through nfnetlink, in a batch as nft sends it. */
static void nftables(void) {
  struct nftables_batch {
    struct nlmsghdr begin_header;
    struct nfgenmsg begin;
    struct nlmsghdr table_header;
    struct nfgenmsg table;
    struct nlattr name_attribute;
    char name[8];
    struct nlmsghdr end_header;
    struct nfgenmsg end;
  } batch;
  memset(&batch, 0, sizeof batch);
  batch.begin_header = (struct nlmsghdr){.nlmsg_len = NLMSG_LENGTH(sizeof batch.begin),
                                         .nlmsg_type = NFNL_MSG_BATCH_BEGIN,
                                         .nlmsg_flags = NLM_F_REQUEST,
                                         .nlmsg_seq = 1};
  batch.begin = (struct nfgenmsg){.nfgen_family = AF_UNSPEC, .res_id = htons(NFNL_SUBSYS_NFTABLES)};
  batch.table_header = (struct nlmsghdr){
      .nlmsg_len = (uint32_t)(offsetof(struct nftables_batch, end_header) -
                              offsetof(struct nftables_batch, table_header)),
      .nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE,
      .nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
      .nlmsg_seq = 2};
  batch.table = (struct nfgenmsg){.nfgen_family = NFPROTO_INET};
  batch.name_attribute = (struct nlattr){.nla_len = NLA_HDRLEN + 6, .nla_type = NFTA_TABLE_NAME};
  memcpy(batch.name, "taken", 6);
  batch.end_header = (struct nlmsghdr){.nlmsg_len = NLMSG_LENGTH(sizeof batch.end),
                                       .nlmsg_type = NFNL_MSG_BATCH_END,
                                       .nlmsg_flags = NLM_F_REQUEST,
                                       .nlmsg_seq = 3};
  batch.end = (struct nfgenmsg){.nfgen_family = AF_UNSPEC, .res_id = htons(NFNL_SUBSYS_NFTABLES)};
  report("nftables", netlink_request(NETLINK_NETFILTER, &batch, sizeof batch));
}

/* iptables' legacy interface: a table replaced through setsockopt on any IPv4 socket. */
static void iptables(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  char replace[512];
  memset(replace, 0, sizeof replace);
  memcpy(replace, "filter", 7);
  /* IPT_SO_SET_REPLACE: the capability check comes before the table is read. */
  report("iptables", sock < 0 ? -1 : setsockopt(sock, IPPROTO_IP, 64, replace, sizeof replace));
  close(sock);
}

static void raw_sockets(void) {
  int sock = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
  report("raw", sock);
  if (sock >= 0) close(sock);
  sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x0003));
  report("packet", sock);
  if (sock >= 0) close(sock);
}

int main(int argc, char **argv) {
  const char *command = argc > 1 ? argv[1] : "";
  if (strcmp(command, "flowlabel") == 0) {
    flow_label();
  } else if (strcmp(command, "noroute") == 0) {
    no_route();
  } else if (strcmp(command, "lookup6") == 0) {
    lookup6();
  } else if (strcmp(command, "timewait") == 0) {
    connection(true);
  } else if (strcmp(command, "listen") == 0) {
    connection(false);
  } else if (strcmp(command, "attack") == 0) {
    nftables();
    iptables();
    raw_sockets();
  } else {
    fprintf(stderr, "usage: %s flowlabel|noroute|lookup6|timewait|listen|attack\n", argv[0]);
    return 2;
  }
  return 0;
}
