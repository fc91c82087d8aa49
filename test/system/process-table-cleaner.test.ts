// The process table cleaner against the real process table, as root: it kills the processes
// of the action's user that started after the runner, and nothing else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { it } from 'node:test';
import { processTableCleaner } from '../../src/runner/process-table-cleaner.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';

it('the process table cleaner kills processes of the user started after the runner', {
  skip: needsRoot,
}, async () => {
  const state = processState();
  // A uid of its own: the cleaner kills every process of its user on the machine, and other
  // suites run as 65534 meanwhile.
  const userId = 3_000_000 + Math.floor(Math.random() * 1_000_000);
  const cleaner = await processTableCleaner(userId);
  const child = spawn('/bin/sleep', ['60'], { uid: userId, gid: userId, stdio: 'ignore' });
  const exited = once(child, 'close');
  const unrelated = spawn('/bin/sleep', ['60'], { stdio: 'ignore' });
  try {
    await once(child, 'spawn');
    await cleaner();
    const [code, signal] = await exited;
    assert.deepEqual([code, signal], [null, 'SIGKILL']);
    assert.equal(unrelated.exitCode, null);
    assert.ok(existsSync(`/proc/${unrelated.pid}`));
  } finally {
    unrelated.kill('SIGKILL');
    await once(unrelated, 'close');
  }
  assertNothingLeft(state, []);
});
