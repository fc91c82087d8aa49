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
  const cleaner = await processTableCleaner(65534);
  const child = spawn('/bin/sleep', ['60'], { uid: 65534, gid: 65534, stdio: 'ignore' });
  const exited = once(child, 'exit');
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
    await once(unrelated, 'exit');
  }
  assertNothingLeft(state, []);
});
