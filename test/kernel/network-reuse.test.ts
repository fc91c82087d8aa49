// Network namespaces reused from one action to the next (src/sandbox/network-namespaces.ts,
// network-namespace-state.ts), against the real kernel: an action that leaves anything in
// its namespace (a socket that outlives it, a packet's counters, a counter moved without a
// packet, a lingering IPv6 flow label) makes the next action get a new one, which reads as a
// new one; an untouched namespace is given again; an attacker with every capability of its
// own user namespace cannot change the namespace (links, addresses, routes, sysctls,
// netfilter, raw sockets), and the next action's namespace reads as a new one. Each engine
// keeps one namespace ahead and is settled between actions, so which namespace the next
// action gets is the pool's decision, not a race. Every test proves that nothing is left.
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { capabilityNumbers } from '../../src/sandbox/capabilities.js';
import { defaultIsolation, type Engine, type IsolationSettings } from '../../src/sandbox/index.js';
import { networkNamespaceFiles } from '../../src/sandbox/network-namespace-state.js';
import { openHandleCount } from '../../src/syscalls/index.js';
import { makeFifo } from '../helpers/busybox.js';
import { openEngine } from '../helpers/engine.js';
import {
  assertNothingLeft,
  childProcesses,
  needsRoot,
  openFds,
  processState,
  threadsNamed,
} from '../helpers/leaks.js';
import { scriptSuite, networkView as view, withoutHostCounts } from '../helpers/script-actions.js';

/** The C source of the helper that does what busybox cannot. */
const helperSource = new URL('../../../test/helpers/network-reuse.c', import.meta.url).pathname;

let actionCount = 0;
const suite = scriptSuite('chroot-runner-netreuse-', helperSource, 'netreuse');

/** The network namespaces the runner holds open. */
function heldNamespaces(): number {
  return [...openFds().values()].filter((target) => target.startsWith('net:[')).length;
}

/** The files of network namespaces' /proc/net that the runner holds open (kept by the pool
 * for its checks), by name. */
function heldNetFiles(): string[] {
  return [...openFds().values()]
    .filter((target) => /^\/proc\/\d+\/task\/\d+\/net\/[^/]+$/.test(target))
    .map((target) => target.replace(/^.*\//, ''))
    .sort();
}

/** The runner's threads named as the pool's worker is. */
const poolThreads = () => threadsNamed('netns-ahead');

function leakFree(name: string, body: () => Promise<void>): void {
  it(name, { skip: needsRoot, timeout: 60_000 }, async () => {
    const state = processState();
    const handles = openHandleCount();
    const namespaces = heldNamespaces();
    await body();
    assertNothingLeft(state, [suite.path]);
    assert.equal(openHandleCount(), handles, 'handles left open');
    assert.equal(heldNamespaces(), namespaces, 'network namespaces left open');
  });
}

/** The default isolation with one namespace made ahead: every action of an engine settled
 * between actions gets the one the pool holds. */
const oneAhead: IsolationSettings = { ...defaultIsolation, preparedNetworkNamespaces: 1 };

describe('network namespaces reused from one action to the next', () => {
  for (const mode of ['namespaces', 'shared'] as const) {
    leakFree(`${mode}: an untouched namespace is given again, and reads as a new one`, async () => {
      await using engine = await openEngine(suite.directory, { ...oneAhead, mode });
      const first = await suite.run(engine, view);
      const second = await suite.run(engine, view);
      const third = await suite.run(engine, 'true');
      assert.equal(first.preparedAhead, true);
      assert.equal(first.reused, false);
      assert.equal(second.reused, true);
      assert.equal(third.reused, true);
      assert.equal(second.namespace, first.namespace);
      assert.equal(third.namespace, first.namespace);
      assert.equal(withoutHostCounts(second.output), withoutHostCounts(first.output));
      // What a new namespace shows: lo's counters at zero, no socket.
      assert.match(first.output, /^ +lo: +0 +0 /m);
      assert.match(first.output, /^sockets: used 0$/m);
    });
  }

  // What an action leaves, with or without a packet, and what the helper reported.
  const leavers: [string, string, RegExp][] = [
    ['a connection refused over lo', 'nc 127.0.0.1 9 </dev/null; true', /refused/],
    ['a TCP connection left in TIME_WAIT', 'netreuse timewait', /^timewait ok$/m],
    [
      'a datagram refused for want of a route (a counter, no packet)',
      'netreuse noroute',
      /^noroute ENETUNREACH$/m,
    ],
    ['an IPv6 flow label lingering after its socket', 'netreuse flowlabel', /^flowlabel ok$/m],
  ];
  for (const [what, script, reported] of leavers) {
    leakFree(
      `${what}: the next action gets a new namespace, which reads as a new one`,
      async () => {
        await using engine = await openEngine(suite.directory, oneAhead);
        const fresh = await suite.run(engine, view);
        const leaver = await suite.run(engine, `{ ${script}; } 2>&1`);
        assert.match(leaver.output, reported);
        // The view's action left it untouched: the leaver had the same.
        assert.equal(leaver.namespace, fresh.namespace);
        const next = await suite.run(engine, view);
        assert.notEqual(next.namespace, leaver.namespace);
        assert.equal(next.preparedAhead, true);
        assert.equal(next.reused, false);
        assert.equal(withoutHostCounts(next.output), withoutHostCounts(fresh.output));
      },
    );
  }

  leakFree(
    'a listener bound and closed without a packet leaves no socket to the next',
    async () => {
      await using engine = await openEngine(suite.directory, oneAhead);
      const fresh = await suite.run(engine, view);
      const listener = await suite.run(engine, 'netreuse listen');
      assert.equal(listener.output, 'listen ok\n');
      // Given again or not (a socket freed after an RCU grace period is still counted), the next
      // action sees what a new namespace shows.
      const next = await suite.run(engine, view);
      assert.equal(withoutHostCounts(next.output), withoutHostCounts(fresh.output));
    },
  );

  leakFree(
    'an attacker with every capability of its user namespace changes nothing of it; the next reads as a new one',
    async () => {
      await using engine = await openEngine(suite.directory, {
        ...oneAhead,
        keepCapabilities: Object.keys(capabilityNumbers),
      });
      const fresh = await suite.run(engine, view);
      const attempts = [
        'ip link set lo down',
        'ifconfig lo down',
        'ifconfig lo mtu 1280',
        'ip link add spare type dummy',
        'ip addr add 10.9.9.9/32 dev lo',
        'ip -6 addr add fd00::9/128 dev lo',
        'ip route add 10.0.0.0/8 dev lo',
        'ip route add unreachable 192.0.2.0/24',
        'sysctl -w net.ipv4.ip_forward=1',
        'sysctl -w net.ipv4.ping_group_range="0 2147483647"',
        'sysctl -w net.ipv6.conf.lo.disable_ipv6=1',
        'echo 1 > /proc/sys/net/ipv4/conf/lo/forwarding',
      ];
      const attacker = await suite.run(
        engine,
        `${attempts.map((attempt) => `if ${attempt} 2>/dev/null; then echo "changed: ${attempt.replaceAll('"', '')}"; fi`).join('; ')}; cat /proc/self/status | grep CapEff; netreuse attack`,
      );
      assert.equal(attacker.namespace, fresh.namespace);
      // Every capability in its own user namespace, none over the network namespace.
      const lastCapability = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
      const every = ((1n << BigInt(lastCapability + 1)) - 1n).toString(16).padStart(16, '0');
      assert.match(attacker.output, new RegExp(`^CapEff:\\s+${every}$`, 'm'));
      assert.equal(
        attacker.output.replace(/^CapEff.*\n/m, ''),
        'nftables EPERM\niptables EPERM\nraw EPERM\npacket EPERM\n',
      );
      const next = await suite.run(engine, view);
      assert.equal(withoutHostCounts(next.output), withoutHostCounts(fresh.output));
    },
  );

  /** Runs an action that waits for a line on a FIFO, and `whileRunning` once it is running
   * (it opened the FIFO); then writes the line and returns the action's result. */
  async function gatedAction(
    engine: Engine,
    whileRunning: () => Promise<void> | void,
  ): ReturnType<Engine['run']> {
    const gate = join(suite.path, 'root', 'gate');
    makeFifo(gate);
    try {
      actionCount += 1;
      const running = engine.run({
        inputRoot: 'root',
        arguments: ['sh', '-c', 'read line < /gate'],
        environment: { PATH: '/bin' },
        workingDirectory: '',
        stdoutPath: `netreuse-${actionCount}.out`,
        stderrPath: `netreuse-${actionCount}.err`,
      });
      // Resolves once the action opened the FIFO: it is running.
      const writer = await open(gate, 'w');
      await whileRunning();
      await writer.write('go\n');
      await writer.close();
      return await running;
    } finally {
      rmSync(gate);
    }
  }

  /** Where the fds of every process of a running action point, as the host sees them (the
   * runner's descendants: its init and the shell beneath it), with pipe numbers and the
   * action's own file names left out. */
  async function fdsOfARunningAction(engine: Engine): Promise<string[]> {
    const targets: string[] = [];
    const result = await gatedAction(engine, () => {
      const pending = childProcesses();
      while (pending.length > 0) {
        const pid = pending.pop() as number;
        pending.push(...childProcesses(pid));
        for (const target of openFds(pid).values()) {
          targets.push(target.replace(/\[\d+\]$/, '').replace(/\/netreuse-\d+\./, '/netreuse.'));
        }
      }
    });
    assert.equal(result.exitCode, 0);
    await engine.settled();
    return targets.sort();
  }

  leakFree(
    'the files kept open for the checks reach no action: no extra fd in its processes, none of them',
    async () => {
      await using engine = await openEngine(suite.directory, oneAhead);
      // The pool holds its namespace's files open, those of the check.
      assert.deepEqual(heldNetFiles(), [...networkNamespaceFiles].sort());
      await suite.run(engine, 'true');
      const pooled = await fdsOfARunningAction(engine);
      assert.ok(pooled.length > 0);
      for (const target of pooled) assert.doesNotMatch(target, /\/net\/|^net:/);
      // As many as in an action whose namespace was not made ahead, pointing at the same.
      await using unpooled = await openEngine(suite.directory, {
        ...defaultIsolation,
        preparedNetworkNamespaces: 0,
      });
      assert.deepEqual(pooled, await fdsOfARunningAction(unpooled));
    },
  );

  leakFree(
    'close ends the pool’s thread and closes its namespaces and their kept files',
    async () => {
      const threads = poolThreads();
      const files = heldNetFiles().length;
      const engine = await openEngine(suite.directory, {
        ...defaultIsolation,
        preparedNetworkNamespaces: 2,
      });
      assert.equal(poolThreads(), threads + 1);
      assert.equal(heldNetFiles().length, files + 2 * networkNamespaceFiles.length);
      await suite.run(engine, 'true');
      await suite.run(engine, 'netreuse timewait');
      await engine.close();
      // Joined at close: no thread, fd or namespace of the engine is left (leakFree counts the
      // fds and namespaces too).
      assert.equal(poolThreads(), threads);
      assert.equal(heldNetFiles().length, files);
    },
  );

  leakFree('close closes every namespace, also one given back after it', async () => {
    const before = heldNamespaces();
    const engine = await openEngine(suite.directory, {
      ...defaultIsolation,
      preparedNetworkNamespaces: 2,
    });
    assert.equal(heldNamespaces(), before + 2);
    await suite.run(engine, 'true');
    // An action still running when the engine closes gives its namespace back afterwards: it
    // waits for a line on a FIFO, which the test writes once the engine is closed.
    const result = await gatedAction(engine, () => engine.close());
    assert.equal(result.exitCode, 0);
    assert.equal(result.usage?.network?.preparedAhead, true);
    assert.equal(heldNamespaces(), before);
  });
});
