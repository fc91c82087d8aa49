// Whether an action left its network namespace as it was made, so that the next action may
// enter it instead of a new one (network-namespaces.ts). The claim to keep: the next action
// can tell nothing about the previous one from its namespace beyond what a new one shows.
// What an action could change in it is bounded by what it may do there: the namespace
// belongs to the runner's user namespace and the action runs in one of its own, so it has no
// capability over it (no CAP_NET_ADMIN, CAP_NET_RAW): no device, address, route, rule,
// sysctl, netfilter or xfrm change, no raw or packet socket (the kernel refuses each;
// test/kernel/network-reuse.test.ts tries them). What is left to it: sockets (of any family,
// with what they hold: bound ports, abstract names, memberships, sockets in flight, a
// TIME_WAIT or an orphan outliving them), what outlives a socket without being one (IPv6 flow
// labels linger), the counters that its packets, its failed sends and its route lookups move,
// and the routes that lookups cache. Each is in one of the files read below, which the runner
// opened in the namespace when it made it (no socket of its own there) and reads again
// after each action (a read from offset 0 makes a procfs net file's text anew): a namespace
// is given again only when none of its sockets is left and every other file reads as it did
// when the namespace was made. Anything unknown (an unreadable sockstat, a new field) makes
// the namespace be closed: the check errs towards a new namespace.
import type { NetworkNamespaceFiles, NetworkNamespaceReading } from '../syscalls/process.js';

/** The files of the namespace's /proc/net that the check reads, each for what it shows. */
export const networkNamespaceFiles: readonly string[] = [
  // Its sockets of every family (IPv6 too), counted from allocation to free (so also those
  // in flight, orphaned, or freed after an RCU grace period), TIME_WAIT ones, IPv4 fragment
  // queues. With none, nothing a socket holds is left: bound ports, abstract unix names,
  // multicast memberships and their source filters (they return to those of a new
  // namespace when their socket is closed), socket-bound xfrm policies.
  'sockstat',
  // lo's packet and byte counters: every packet an action sends stays on lo, and what only
  // packets change (IPv6 fragment queues, TCP metrics, PMTU exceptions, neighbours, the
  // xfrm counters, conntrack) changes them.
  'dev',
  // The namespace's MIB counters (IP, ICMP, TCP, UDP, their IPv6 twins and the TcpExt,
  // IpExt and MPTcpExt extensions): also what moves without a packet (a send with no route).
  'snmp',
  'snmp6',
  'netstat',
  // IPv6 routes and the dst entries that a route lookup caches.
  'rt6_stats',
  // Flow labels, which linger after their socket is closed.
  'ip6_flowlabel',
];

/** sockstat's fields that count the whole host, not the namespace: the others must be 0. */
const hostWideSocketFields = new Set(['TCP orphan', 'TCP alloc', 'TCP mem', 'UDP mem']);

/** Whether sockstat counts nothing of the namespace: no socket of any family, no
 * TIME_WAIT, no fragment queued. False for a missing file or an unknown line. */
function noSockets(sockstat: string | null | undefined): boolean {
  if (sockstat === null || sockstat === undefined) return false;
  for (const line of sockstat.split('\n')) {
    if (line === '') continue;
    const match = /^(\w+): ((?:\w+ -?\d+ ?)+)$/.exec(line);
    if (match === null) return false;
    const [, protocol, pairs = ''] = match;
    const words = pairs.trim().split(' ');
    for (let index = 0; index < words.length; index += 2) {
      const field = `${protocol} ${words[index]}`;
      if (!hostWideSocketFields.has(field) && words[index + 1] !== '0') return false;
    }
  }
  return true;
}

/** Whether a namespace whose networkNamespaceFiles read `made` when it was made and read
 * `now` after an action (true: as when made) is as a new one: the next action may have it. */
export function untouched(made: NetworkNamespaceFiles, now: NetworkNamespaceReading): boolean {
  if (made.length !== networkNamespaceFiles.length || now.length !== made.length) return false;
  // Files absent when made (snmp6 without IPv6) must still be.
  return networkNamespaceFiles.every((name, index) => {
    const read = now[index];
    const text = read === true ? made[index] : read;
    return name === 'sockstat' ? noSockets(text) : read === true || read === made[index];
  });
}
