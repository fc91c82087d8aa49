// The pool of network namespaces made ahead (src/sandbox/network-namespaces.ts), over stand-in
// namespaces whose creation the test settles itself: no kernel, no timing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkNamespacePool } from '../../src/sandbox/network-namespaces.js';
import type { Fd } from '../../src/syscalls/index.js';
import type { NetworkNamespacePriority } from '../../src/syscalls/process.js';

/** Creations that stay under way until the test settles them, and what became of each. */
function standInCreations() {
  const settlers: {
    priority: NetworkNamespacePriority;
    resolve: (fd: Fd) => void;
    reject: (error: Error) => void;
  }[] = [];
  const closed: number[] = [];
  let made = 0;
  const create = (priority: NetworkNamespacePriority) =>
    new Promise<Fd>((resolve, reject) => {
      settlers.push({ priority, resolve, reject });
    });
  const namespace = (): Fd => {
    const id = made++;
    return { id, close: () => closed.push(id) } as unknown as Fd;
  };
  /** Settles the creation under way with a new namespace, once the pool has started it. */
  const land = async () => {
    const [settler] = settlers.splice(0);
    assert.ok(settler !== undefined, 'no creation under way');
    settler.resolve(namespace());
    return settler.priority;
  };
  /** Lets every pending reaction of the pool run. */
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  return { create, settlers, closed, namespace, land, turn };
}

describe('NetworkNamespacePool', () => {
  it('fills one at a time at normal priority, refills after each take at idle priority', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(2, creations.create);
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
    const pool = new NetworkNamespacePool(1, creations.create);
    await pool.settled();
    await pool.close();
  });

  it('stays short when a creation fails, and backs off while the failures repeat', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, creations.create);
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
    const pool = new NetworkNamespacePool(1, creations.create);
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
});
