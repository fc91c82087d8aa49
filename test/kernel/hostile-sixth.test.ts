// A sixth review's attacks (2026-12-01, on the day's changes for speed: the seccomp program
// rewritten (jset, merged bit tests, repeated loads dropped, x32 left out where the kernel
// runs none), network namespaces checked through /proc/net files kept open, the id maps'
// handshake through a futex word), tried as a hostile action would from inside its sandbox
// in namespaces mode (the runner as root), in the style of test/kernel/hostile-fifth.test.ts:
// each case ends with nothing left. Those marked `todo` are open (the reason says why); the
// others were tried and held, kept so that they stay held.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultIsolation, type IsolationSettings } from '../../src/sandbox/index.js';
import {
  compiledSeccompFilter,
  defaultSeccomp,
  libseccompFilter,
} from '../../src/sandbox/seccomp.js';
import { x32SystemCalls } from '../../src/syscalls/process.js';
import { openEngine } from '../helpers/engine.js';
import { needsRoot } from '../helpers/leaks.js';
import { networkView, scriptSuite, withoutHostCounts } from '../helpers/script-actions.js';

/** The C source of this review's attack helper. */
const sixthSource = new URL('../../../test/helpers/hostile-sixth.c', import.meta.url).pathname;

const suite = scriptSuite('chroot-runner-sixth-', sixthSource, 'sixth');

/** The helper's lines "<call> <entry> <result>" as a map from "<call> <entry>". */
function results(output: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of output.split('\n')) {
    const [call, entry, result] = line.split(' ');
    if (call !== undefined && entry !== undefined && result !== undefined)
      map.set(`${call} ${entry}`, result);
  }
  return map;
}

const onX64 = process.arch !== 'x64' && 'x86_64 only';

describe('a hostile action and the rewritten seccomp program (namespaces)', {
  skip: needsRoot || onX64,
}, () => {
  suite.contained(
    'F1. each call the policy refuses is refused through syscall, int 0x80 (i386) and x32',
    async () => {
      await using engine = await openEngine(suite.directory, defaultIsolation);
      const { output } = await suite.run(engine, 'sixth');
      const found = results(output);
      assert.ok(found.size >= 50, output);
      // Without the filter each reaches the kernel (EINVAL, EFAULT, EBADF, ok: the helper's
      // arguments are bad on purpose); x32 calls where the kernel runs none fail with ENOSYS.
      const x32 = x32SystemCalls() ? 'EPERM' : 'ENOSYS';
      const wrong = [...found].filter(([key, result]) => {
        if (key.endsWith(' x32')) return result !== x32 && result !== 'EPERM';
        return result !== 'EPERM';
      });
      assert.deepEqual(wrong, [], output);
    },
  );
});

/** Runs a classic BPF seccomp program of the instructions libseccomp emits (ld, and, ja,
 * jeq, jgt, jge, jset, ret) over one syscall: its action. */
function evaluate(program: Buffer, arch: number, nr: number, words: readonly number[]): number {
  let accumulator = 0;
  for (let pc = 0; ; ) {
    const code = program.readUInt16LE(pc * 8);
    const k = program.readUInt32LE(pc * 8 + 4);
    let condition: boolean;
    if (code === 0x20) {
      accumulator = k === 0 ? nr : k === 4 ? arch : (words[(k - 16) >> 2] as number);
      pc++;
      continue;
    }
    if (code === 0x54) {
      accumulator = (accumulator & k) >>> 0;
      pc++;
      continue;
    }
    if (code === 0x05) {
      pc += 1 + k;
      continue;
    }
    if (code === 0x06) return k;
    if (code === 0x15) condition = accumulator === k;
    else if (code === 0x25) condition = accumulator > k;
    else if (code === 0x35) condition = accumulator >= k;
    else if (code === 0x45) condition = (accumulator & k) !== 0;
    else throw new Error(`instruction 0x${code.toString(16)} at ${pc}`);
    pc += 1 + (program[pc * 8 + (condition ? 2 : 3)] as number);
  }
}

/** A deterministic generator (xorshift32), so that a failure names its seed. */
function generator(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

describe("the rewritten seccomp program against libseccomp's", { skip: onX64 }, () => {
  it("F2. decides as libseccomp's export for random arguments of every syscall number", (t) => {
    const exported = libseccompFilter(defaultSeccomp).program;
    const program = compiledSeccompFilter(defaultSeccomp).program;
    // Words that the rules tell apart: each constant of either program, its bits, their
    // unions and complements, mixed at random with random words.
    const constants = new Set<number>([0, 0xffffffff]);
    for (const code of [exported, program])
      for (let at = 0; at < code.length; at += 8) constants.add(code.readUInt32LE(at + 4));
    const pool = [...constants];
    const random = generator(0x5eed6);
    const word = (): number => {
      const pick = random() % 6;
      const a = pool[random() % pool.length] as number;
      const b = pool[random() % pool.length] as number;
      if (pick === 0) return random();
      if (pick === 1) return (a | b) >>> 0;
      if (pick === 2) return ~a >>> 0;
      if (pick === 3) return (a & random()) >>> 0;
      return a;
    };
    const arches = [0xc000003e, 0x40000003, 0xc00000b7];
    let cases = 0;
    const differing: string[] = [];
    for (const arch of arches) {
      for (const base of [0, 0x40000000]) {
        for (let nr = base; nr < base + 512; nr++) {
          for (let round = 0; round < 200; round++) {
            const words = Array.from({ length: 12 }, word);
            cases++;
            const expected = evaluate(exported, arch, nr, words);
            const actual = evaluate(program, arch, nr, words);
            if (expected !== actual && differing.length < 5)
              differing.push(`arch ${arch} nr ${nr} words ${words}: ${actual}, not ${expected}`);
          }
        }
      }
    }
    t.diagnostic(`${cases} cases, ${exported.length / 8} → ${program.length / 8} instructions`);
    assert.deepEqual(differing, []);
    assert.ok(program.length < exported.length);
  });
});

/** One namespace made ahead: an engine settled between actions gives each the pool's. */
const oneAhead: IsolationSettings = { ...defaultIsolation, preparedNetworkNamespaces: 1 };

describe('a hostile action and the network namespace checks through files kept open', {
  skip: needsRoot,
}, () => {
  suite.contained(
    'G1. sockets left in flight (SCM_RIGHTS in a unix cycle) after PID 1 exits: the next action finds none of them',
    async () => {
      await using engine = await openEngine(suite.directory, oneAhead);
      const fresh = await suite.run(engine, networkView);
      const leaver = await suite.run(engine, 'sixth inflight');
      assert.match(leaver.output, /^inflight sent ok$/m);
      assert.equal(leaver.namespace, fresh.namespace);
      // Given again only if the collector freed them before the check; either way the next
      // reads as a new namespace (no socket, the port and the abstract name free).
      const next = await suite.run(engine, networkView);
      assert.equal(withoutHostCounts(next.output), withoutHostCounts(fresh.output));
    },
  );

  suite.contained(
    'G2. 2048 lingering flow labels (ip6_flowlabel of 150 kB, read in several preads): the next action gets a new namespace, and the pool goes on',
    async () => {
      await using engine = await openEngine(suite.directory, oneAhead);
      const fresh = await suite.run(engine, networkView);
      const leaver = await suite.run(engine, 'sixth flowlabels; wc -c </proc/net/ip6_flowlabel');
      const [, made = '0', size = '0'] = /^flowlabels (\d+)\n\s*(\d+)$/m.exec(leaver.output) ?? [];
      assert.ok(Number(made) > 1000 && Number(size) > 65536, leaver.output);
      const next = await suite.run(engine, networkView);
      assert.notEqual(next.namespace, leaver.namespace);
      assert.equal(next.reused, false);
      assert.equal(withoutHostCounts(next.output), withoutHostCounts(fresh.output));
      // The pool's thread survived the long read: it made the next namespace ahead.
      const after = await suite.run(engine, 'true');
      assert.equal(after.preparedAhead, true);
    },
  );
});

describe('a hostile action and the id maps written through the futex handshake', {
  skip: needsRoot,
}, () => {
  suite.contained(
    'H1. 32 actions at once, each spawning a busy tree: each finds its own user namespace mapped to an id range of its own',
    async () => {
      await using engine = await openEngine(suite.directory, defaultIsolation);
      const script =
        'for i in 1 2 3 4; do (while :; do :; done) & done; cat /proc/self/uid_map /proc/self/gid_map; kill $(jobs -p)';
      const runs = await Promise.all(Array.from({ length: 32 }, () => suite.run(engine, script)));
      // Each running action has an id range of its own, the same for uids and gids: maps
      // written for another action's child would repeat a range, or split one.
      const ranges = runs.map(({ output }) => {
        const [uids = '', gids = ''] = output.split('\n');
        assert.match(uids, /^ +0 +\d+ +\d+$/);
        assert.equal(gids, uids);
        return uids;
      });
      assert.equal(new Set(ranges).size, runs.length, `ranges ${ranges}`);
    },
  );
});
