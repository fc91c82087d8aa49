// The pool of network namespaces made ahead (src/sandbox/network-namespaces.ts), over stand-in
// namespaces whose creation and checks the test settles itself: no kernel, no timing; and the
// check's criterion (src/sandbox/network-namespace-state.ts) on files as the kernel writes them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkNamespaceFiles, untouched } from '../../src/sandbox/network-namespace-state.js';
import {
  type NetworkNamespaceKernel,
  NetworkNamespacePool,
} from '../../src/sandbox/network-namespaces.js';
import type { Fd } from '../../src/syscalls/index.js';
import type {
  NetworkNamespaceFiles,
  NetworkNamespacePriority,
} from '../../src/syscalls/process.js';

/** What a stand-in namespace's files read: `sockets` sockets, and counters at `packets`. */
function files(sockets: number, packets: number): string[] {
  return networkNamespaceFiles.map((name) =>
    name === 'sockstat'
      ? `sockets: used ${sockets}\nTCP: inuse 0 orphan 3 tw 0 alloc 7 mem 171\n`
      : `${name} ${packets}\n`,
  );
}

/** Creations and checks that stay under way until the test settles them, and what became of
 * each namespace. */
function standInCreations() {
  const settlers: {
    priority: NetworkNamespacePriority;
    resolve: (made: { namespace: Fd; files: NetworkNamespaceFiles; sysfs?: Fd }) => void;
    reject: (error: Error) => void;
  }[] = [];
  const reads: {
    id: number;
    resolve: (files: NetworkNamespaceFiles) => void;
    reject: (error: Error) => void;
  }[] = [];
  const closed: number[] = [];
  let made = 0;
  const kernel: NetworkNamespaceKernel = {
    create: (priority) =>
      new Promise((resolve, reject) => {
        settlers.push({ priority, resolve, reject });
      }),
    read: (namespace) =>
      new Promise((resolve, reject) => {
        reads.push({ id: (namespace as unknown as { id: number }).id, resolve, reject });
      }),
  };
  const namespace = (): Fd => {
    const id = made++;
    return { id, close: () => closed.push(id) } as unknown as Fd;
  };
  /** Settles the creation under way with a new namespace, once the pool has started it. */
  const land = async () => {
    const [settler] = settlers.splice(0);
    assert.ok(settler !== undefined, 'no creation under way');
    settler.resolve({ namespace: namespace(), files: files(0, 0) });
    return settler.priority;
  };
  /** Settles the check under way with what the namespace's files read now; its id. */
  const check = (now: NetworkNamespaceFiles) => {
    const [read] = reads.splice(0);
    assert.ok(read !== undefined, 'no check under way');
    read.resolve(now);
    return read.id;
  };
  /** Lets every pending reaction of the pool run. */
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return { kernel, settlers, reads, closed, namespace, land, check, turn };
}

/** A pool of one over stand-ins, filled. */
async function filledPool(reuse: boolean) {
  const creations = standInCreations();
  const pool = new NetworkNamespacePool(1, reuse, creations.kernel);
  const filled = pool.fill();
  await creations.land();
  await filled;
  /** Takes the ready namespace and gives it back, its action's processes gone. */
  const takeAndGiveBack = () => {
    const taken = pool.take();
    assert.ok(taken !== undefined, 'none ready');
    pool.giveBack(taken, true);
    return taken;
  };
  return { creations, pool, takeAndGiveBack };
}

describe('NetworkNamespacePool', () => {
  it('fills one at a time at normal priority, refills after each take at idle priority', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(2, false, creations.kernel);
    const filled = pool.fill();
    // One creation at a time: the next starts once the first has landed.
    assert.equal(creations.settlers.length, 1);
    assert.equal(await creations.land(), 'normal');
    await creations.turn();
    assert.equal(creations.settlers.length, 1);
    assert.equal(await creations.land(), 'normal');
    await filled;
    assert.equal(creations.settlers.length, 0);
    const first = pool.take();
    const second = pool.take();
    assert.notEqual(first, undefined);
    assert.notEqual(second, undefined);
    assert.notEqual(first, second);
    // Empty now: the caller clones its own; one refill is under way, at idle priority.
    assert.equal(pool.take(), undefined);
    assert.equal(creations.settlers.length, 1);
    const settled = pool.settled();
    assert.equal(await creations.land(), 'idle');
    await creations.turn();
    assert.equal(await creations.land(), 'idle');
    // settled waits for the whole refill, not only the creation under way when it was called.
    await settled;
    assert.equal(creations.settlers.length, 0);
    await pool.close();
    assert.deepEqual(creations.closed.sort(), [2, 3]);
  });

  it('settled resolves at once when nothing is under way', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, false, creations.kernel);
    await pool.settled();
    await pool.close();
  });

  it('stays short when a creation fails, and backs off while the failures repeat', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, false, creations.kernel);
    const filled = pool.fill();
    creations.settlers.splice(0)[0]?.reject(new Error('EPERM'));
    await filled;
    // The takes at which the pool tried again, while every try fails: 1, then 2, 4, 8 apart.
    const tries: number[] = [];
    for (let take = 1; take <= 15; take++) {
      assert.equal(pool.take(), undefined);
      const settler = creations.settlers.splice(0)[0];
      if (settler !== undefined) {
        tries.push(take);
        settler.reject(new Error('EPERM'));
        await pool.settled();
      }
    }
    assert.deepEqual(tries, [1, 3, 7, 15]);
    // A success ends the back-off: the next failure waits one take again.
    assert.equal(pool.take(), undefined);
    for (let take = 0; take < 15 && creations.settlers.length === 0; take++) pool.take();
    await creations.land();
    await pool.settled();
    assert.ok(pool.take() !== undefined);
    creations.settlers.splice(0)[0]?.reject(new Error('EPERM'));
    await pool.settled();
    pool.take();
    assert.equal(creations.settlers.length, 1);
    await creations.land();
    await pool.close();
    assert.deepEqual(creations.closed.sort(), [1]);
  });

  it('close waits for the creation under way and closes what it makes', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, false, creations.kernel);
    void pool.fill();
    const closing = pool.close();
    // Every microtask has run by the time setImmediate's callback does.
    const afterMicrotasks = new Promise((resolve) => setImmediate(() => resolve('pending')));
    assert.equal(await Promise.race([closing.then(() => 'closed'), afterMicrotasks]), 'pending');
    await creations.land();
    await closing;
    assert.deepEqual(creations.closed, [0]);
    // Closed: nothing more is made.
    assert.equal(pool.take(), undefined);
    assert.equal(creations.settlers.length, 0);
  });

  it('reuse: a namespace given back untouched is checked and given again, without a refill', async () => {
    const { creations, pool } = await filledPool(true);
    const first = pool.take();
    assert.ok(first !== undefined);
    assert.equal(first.uses, 0);
    // Held: it counts as coming back, so the take started no refill.
    assert.equal(creations.settlers.length, 0);
    pool.giveBack(first, true);
    assert.equal(creations.check(files(0, 0)), 0);
    await pool.settled();
    const second = pool.take();
    assert.equal(second?.namespace, first.namespace);
    assert.equal(second?.uses, 1);
    assert.deepEqual(creations.closed, []);
    assert.ok(second !== undefined);
    pool.giveBack(second, true);
    creations.check(files(0, 0));
    await pool.settled();
    assert.equal(pool.take()?.uses, 2);
    await pool.close();
  });

  it('reuse: a touched namespace is closed and the pool refills; then takes refill again', async () => {
    const { creations, pool, takeAndGiveBack } = await filledPool(true);
    takeAndGiveBack();
    // A socket left, then a counter moved, then a failed read: each is closed.
    creations.check(files(1, 0));
    await creations.turn();
    assert.deepEqual(creations.closed, [0]);
    // Refilled, at idle priority.
    assert.equal(await creations.land(), 'idle');
    await pool.settled();
    const second = pool.take();
    assert.ok(second !== undefined);
    assert.equal(second.uses, 0);
    // The last check found its namespace touched: the take refills as without reuse.
    assert.equal(creations.settlers.length, 1);
    pool.giveBack(second, true);
    await creations.land();
    await creations.turn();
    creations.check(files(0, 1));
    await pool.settled();
    assert.deepEqual(creations.closed, [0, 1]);
    const third = pool.take();
    assert.ok(third !== undefined);
    pool.giveBack(third, true);
    await creations.land();
    await creations.turn();
    creations.reads.splice(0)[0]?.reject(new Error('EPERM'));
    await pool.settled();
    assert.deepEqual(creations.closed, [0, 1, 2]);
    await pool.close();
    assert.deepEqual(creations.closed, [0, 1, 2, 3]);
  });

  it('reuse: a namespace whose action may have processes left, or of a pool without reuse, is closed unchecked', async () => {
    for (const [reuse, processesGone] of [
      [true, false],
      [false, true],
    ] as const) {
      const { creations, pool } = await filledPool(reuse);
      const taken = pool.take();
      assert.ok(taken !== undefined);
      pool.giveBack(taken, processesGone);
      assert.deepEqual(creations.closed, [0]);
      assert.equal(creations.reads.length, 0);
      // Refilled.
      await creations.land();
      await pool.close();
      assert.deepEqual(creations.closed, [0, 1]);
    }
  });

  it('a sysfs made with a namespace is kept while it is given again and closed with it', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, true, creations.kernel);
    const filled = pool.fill();
    const [settler] = creations.settlers.splice(0);
    assert.ok(settler !== undefined);
    // Namespace 0, its sysfs 1.
    settler.resolve({
      namespace: creations.namespace(),
      files: files(0, 0),
      sysfs: creations.namespace(),
    });
    await filled;
    const taken = pool.take();
    assert.equal((taken?.sysfs as unknown as { id: number } | undefined)?.id, 1);
    if (taken === undefined) return;
    pool.giveBack(taken, true);
    assert.equal(creations.check(files(0, 0)), 0);
    await creations.turn();
    assert.deepEqual(creations.closed, []);
    const again = pool.take();
    assert.equal(again?.sysfs, taken.sysfs);
    if (again === undefined) return;
    // Touched: closed, with its sysfs.
    pool.giveBack(again, true);
    creations.check(files(1, 0));
    await creations.turn();
    assert.deepEqual(creations.closed, [0, 1]);
    await creations.land();
    await pool.close();
    assert.deepEqual(creations.closed, [0, 1, 2]);
  });

  it('reuse: the pool grows on a miss and keeps at most its size and two beyond it ready; close closes what comes back later', async () => {
    const { creations, pool, takeAndGiveBack } = await filledPool(true);
    // A touched return makes the following takes refill, as without reuse: four are held.
    takeAndGiveBack();
    creations.check(files(1, 0));
    await creations.turn();
    const held: NonNullable<ReturnType<typeof pool.take>>[] = [];
    for (let round = 0; round < 4; round++) {
      await creations.land();
      await pool.settled();
      const taken = pool.take();
      assert.ok(taken !== undefined);
      held.push(taken);
    }
    await creations.land();
    await pool.settled();
    // Four held (1 to 4), one ready (5): all four come back untouched, and the pool keeps
    // 1 + 2 in all.
    for (const taken of held) pool.giveBack(taken, true);
    for (let read = 0; read < 4; read++) {
      creations.check(files(0, 0));
      await creations.turn();
    }
    await pool.settled();
    assert.deepEqual(creations.closed, [0, 3, 4]);
    const again = [pool.take(), pool.take(), pool.take()];
    assert.deepEqual(
      again.map((taken) => taken?.uses),
      [0, 1, 1],
    );
    // The checks found them untouched: the three held count as coming back, and a take that
    // finds one ready starts nothing.
    assert.equal(creations.settlers.length, 0);
    // A take that finds none ready: more actions at once than namespaces in use, one more is
    // made, whatever comes back.
    assert.equal(pool.take(), undefined);
    await creations.land();
    await pool.settled();
    // The three come back untouched to one ready: the pool keeps 1 + 2 ready, the last is
    // closed.
    for (const taken of again) if (taken !== undefined) pool.giveBack(taken, true);
    for (let read = 0; read < 3; read++) {
      creations.check(files(0, 0));
      await creations.turn();
    }
    await pool.settled();
    assert.deepEqual(creations.closed, [0, 3, 4, 2]);
    const last = pool.take();
    assert.ok(last !== undefined);
    await pool.close();
    pool.giveBack(last, true);
    assert.equal(creations.reads.length, 0);
    assert.equal(creations.settlers.length, 0);
    assert.deepEqual(
      creations.closed.sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6],
    );
  });
  it('reuse: each take that finds none ready makes one more, up to size + 2 ready', async () => {
    const { creations, pool } = await filledPool(true);
    const first = pool.take();
    assert.ok(first !== undefined);
    for (let take = 0; take < 4; take++) assert.equal(pool.take(), undefined);
    // Four misses, one creation at a time, until three are ready.
    for (let made = 0; made < 3; made++) {
      await creations.turn();
      await creations.land();
    }
    await pool.settled();
    assert.equal(creations.settlers.length, 0);
    // Back untouched to a full pool: closed.
    pool.giveBack(first, true);
    creations.check(files(0, 0));
    await pool.settled();
    assert.deepEqual(creations.closed, [0]);
    await pool.close();
    assert.deepEqual(creations.closed, [0, 1, 2, 3]);
  });
});

describe('untouched (the criterion of reuse)', () => {
  const made = files(0, 0);
  it('holds for a namespace whose files read as when made and that counts no socket', () => {
    assert.equal(untouched(made, files(0, 0)), true);
  });

  it('fails for any socket left, any counter moved, an unknown or missing file', () => {
    assert.equal(untouched(made, files(1, 0)), false);
    assert.equal(untouched(made, files(0, 1)), false);
    const at = (name: string, text: string | null) =>
      made.map((content, index) => (networkNamespaceFiles[index] === name ? text : content));
    // Per-namespace counts of sockstat: TIME_WAIT, fragments.
    assert.equal(
      untouched(
        made,
        at('sockstat', 'sockets: used 0\nTCP: inuse 0 orphan 0 tw 1 alloc 0 mem 0\n'),
      ),
      false,
    );
    assert.equal(
      untouched(made, at('sockstat', 'sockets: used 0\nFRAG: inuse 1 memory 0\n')),
      false,
    );
    assert.equal(untouched(made, at('sockstat', 'sockets: used 0\nsomething new\n')), false);
    assert.equal(untouched(made, at('sockstat', null)), false);
    assert.equal(untouched(made, at('ip6_flowlabel', 'Label S Owner\n12345 1 0\n')), false);
    assert.equal(untouched(made, files(0, 0).slice(1)), false);
    // The host's counts in sockstat (orphans, allocated, memory) change with the host.
    assert.equal(
      untouched(
        made,
        at(
          'sockstat',
          'sockets: used 0\nTCP: inuse 0 orphan 9 tw 0 alloc 99 mem 5\nUDP: inuse 0 mem 8\n',
        ),
      ),
      true,
    );
  });

  it('accepts a file absent only when it was absent when made (snmp6 without IPv6)', () => {
    const withoutIpv6 = made.map((content, index) =>
      networkNamespaceFiles[index] === 'snmp6' ? null : content,
    );
    assert.equal(untouched(withoutIpv6, withoutIpv6), true);
    assert.equal(untouched(made, withoutIpv6), false);
    assert.equal(untouched(withoutIpv6, made), false);
  });
});
