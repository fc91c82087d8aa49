// Actions that run a shell script in an engine and are read back by what they printed, for the
// tests of what one action leaves to the next (network-reuse, hostile-fourth, hostile-fifth),
// and the build directory such a suite runs them in.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import type { Engine } from '../../src/sandbox/index.js';
import { type DirectoryHandle, openDirectory } from '../../src/syscalls/index.js';
import { type BuildDirectory, compileStaticHelper, makeBuildDirectory } from './busybox.js';
import { leakFree, needsRoot } from './leaks.js';

export interface ScriptRun {
  /** The action's network namespace, as readlink shows it. */
  readonly namespace: string;
  readonly reused: unknown;
  readonly preparedAhead: unknown;
  readonly output: string;
}

let actions = 0;

/** Runs `script` in the input root `root` of `buildPath` (its network namespace printed
 * first), and settles the engine: the namespace is back in the pool, or closed and replaced,
 * before the next action. */
export async function runScript(
  engine: Engine,
  buildPath: string,
  script: string,
  /** null: none. */
  temporaryDirectory: string | null = 'tmp',
): Promise<ScriptRun> {
  actions += 1;
  const [stdoutPath, stderrPath] = [`script-${actions}.out`, `script-${actions}.err`];
  const result = await engine.run({
    inputRoot: 'root',
    arguments: ['sh', '-c', `readlink /proc/self/ns/net; ${script}`],
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath,
    stderrPath,
    ...(temporaryDirectory === null ? {} : { temporaryDirectory }),
  });
  await engine.settled();
  assert.equal(result.exitCode, 0, readFileSync(join(buildPath, stderrPath), 'utf8'));
  const [namespace = '', ...output] = readFileSync(join(buildPath, stdoutPath), 'utf8').split('\n');
  return {
    namespace,
    reused: result.usage?.network?.reused,
    preparedAhead: result.usage?.network?.preparedAhead,
    output: output.join('\n'),
  };
}

/** Everything of its network namespace that an action can read and a previous action could
 * have changed: counters, sockets of every kind, flow labels, multicast memberships, links,
 * addresses, routes and a few sysctls. All from /proc, read with cat: a tool that opens a
 * socket (ip, ifconfig) would itself leave the namespace touched until the socket is freed.
 * The host's own counts in sockstat (orphans, allocated sockets, memory) are left out. */
export const networkView = [
  'for file in dev snmp snmp6 netstat sockstat sockstat6 tcp tcp6 udp udp6 raw raw6 unix ' +
    'packet icmp icmp6 ip6_flowlabel rt6_stats igmp igmp6 mcfilter mcfilter6 dev_mcast ' +
    'anycast6 xfrm_stat route ipv6_route fib_trie if_inet6 arp ip_tables_names ' +
    'ip6_tables_names; do echo "== $file"; cat /proc/net/$file; done',
  'cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/lo/forwarding ' +
    '/proc/sys/net/ipv6/conf/lo/disable_ipv6 /proc/sys/net/core/somaxconn ' +
    '/proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_local_port_range',
].join('; ');

/** sockstat without the host's own counts (orphans, allocated sockets, memory). */
export function withoutHostCounts(output: string): string {
  return output
    .replace(/ orphan \d+/, '')
    .replace(/ alloc \d+/, '')
    .replace(/ mem \d+/g, '');
}

/** A suite's build directory: made before its tests (as root only), with the C program
 * `helperSource` compiled static into the input root as /bin/`helperName`, removed after. */
export interface ScriptSuite {
  readonly path: string;
  readonly directory: DirectoryHandle;
  /** The helper's path on the host. */
  readonly helper: string;
  /** A test that proves nothing is left beneath the build directory (leakFree). */
  contained(name: string, body: () => Promise<void>): void;
  /** runScript in this build directory. */
  run(engine: Engine, script: string, temporaryDirectory?: string | null): Promise<ScriptRun>;
}

export function scriptSuite(prefix: string, helperSource: string, helperName: string): ScriptSuite {
  let build: BuildDirectory | undefined;
  let directory: DirectoryHandle | undefined;
  before(() => {
    if (needsRoot !== false) return;
    build = makeBuildDirectory(prefix);
    directory = openDirectory(build.path);
    compileStaticHelper(helperSource, join(build.path, 'root/bin', helperName));
  });
  after(() => {
    directory?.close();
    build?.remove();
  });
  const made = (): BuildDirectory => {
    if (build === undefined) throw new Error('the suite has no build directory (not root?)');
    return build;
  };
  const suite: ScriptSuite = {
    get path() {
      return made().path;
    },
    get directory() {
      made();
      return directory as DirectoryHandle;
    },
    get helper() {
      return join(made().path, 'root/bin', helperName);
    },
    contained: (name, body) => leakFree(name, () => suite.path, body),
    run: (engine, script, temporaryDirectory) =>
      runScript(engine, suite.path, script, temporaryDirectory),
  };
  return suite;
}
