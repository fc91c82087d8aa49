// The pool of network namespaces made ahead (src/sandbox/network-namespaces.ts), over stand-in
// namespaces whose creation the test settles itself: no kernel, no timing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkNamespacePool } from '../../src/sandbox/network-namespaces.js';
import type { Fd } from '../../src/syscalls/index.js';

/** Creations that stay under way until the test settles them, and what became of each. */
function standInCreations() {
  const settlers: { resolve: (fd: Fd) => void; reject: (error: Error) => void }[] = [];
  const closed: number[] = [];
  let made = 0;
  const create = () =>
    new Promise<Fd>((resolve, reject) => {
      settlers.push({ resolve, reject });
    });
  const namespace = (): Fd => {
    const id = made++;
    return { id, close: () => closed.push(id) } as unknown as Fd;
  };
  return { create, settlers, closed, namespace };
}

describe('NetworkNamespacePool', () => {
  it('makes its size ahead, hands each out once, refills after each take', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(2, creations.create);
    const filled = pool.fill();
    assert.equal(creations.settlers.length, 2);
    for (const settler of creations.settlers.splice(0)) settler.resolve(creations.namespace());
    await filled;
    const first = pool.take();
    const second = pool.take();
    assert.notEqual(first, undefined);
    assert.notEqual(first, second);
    // Empty now: the caller clones its own; the two refills are under way.
    assert.equal(pool.take(), undefined);
    assert.equal(creations.settlers.length, 2);
    for (const settler of creations.settlers.splice(0)) settler.resolve(creations.namespace());
    await pool.close();
    assert.deepEqual(creations.closed.sort(), [2, 3]);
  });

  it('stays short when a creation fails, and tries again at the next take', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, creations.create);
    const filled = pool.fill();
    creations.settlers.splice(0)[0]?.reject(new Error('EPERM'));
    await filled;
    assert.equal(pool.take(), undefined);
    assert.equal(creations.settlers.length, 1);
    creations.settlers.splice(0)[0]?.resolve(creations.namespace());
    await pool.close();
    assert.deepEqual(creations.closed, [0]);
  });

  it('close waits for the creations under way and closes what they make', async () => {
    const creations = standInCreations();
    const pool = new NetworkNamespacePool(1, creations.create);
    void pool.fill();
    const closing = pool.close();
    // Every microtask has run by the time setImmediate's callback does.
    const afterMicrotasks = new Promise((resolve) => setImmediate(() => resolve('pending')));
    assert.equal(await Promise.race([closing.then(() => 'closed'), afterMicrotasks]), 'pending');
    creations.settlers.splice(0)[0]?.resolve(creations.namespace());
    await closing;
    assert.deepEqual(creations.closed, [0]);
    // Closed: nothing more is made.
    assert.equal(pool.take(), undefined);
    assert.equal(creations.settlers.length, 0);
  });
});
