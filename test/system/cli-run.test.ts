// `chroot-runner run`, the command-line contract: stdio passed through, the environment
// exactly as given, the action's exit status; and what happens when the runner is SIGKILLed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BuildDirectory, makeBuildDirectory } from '../helpers/busybox.js';
import { assertNothingLeft, mountsBeneath, needsRoot, processState } from '../helpers/leaks.js';
import { killRunnerDuringAction, uniqueSleepDuration } from '../helpers/processes.js';
import { binary } from '../helpers/serve.js';

let build: BuildDirectory;
let root: string;

before(() => {
  if (needsRoot !== false) return;
  build = makeBuildDirectory();
  root = join(build.path, 'root');
});

after(() => {
  if (needsRoot !== false) return;
  build.remove();
});

function runCli(args: readonly string[], input = '') {
  return spawnSync(process.execPath, [binary, 'run', '--input-root', root, ...args], {
    encoding: 'utf8',
    input,
  });
}

function leakFree(name: string, body: () => Promise<void> | void): void {
  it(name, { skip: needsRoot, timeout: 60_000 }, async () => {
    const state = processState();
    await body();
    assertNothingLeft(state, [build.path]);
  });
}

describe('chroot-runner run', () => {
  for (const mode of ['namespaces', 'shared', 'none'] as const) {
    leakFree(`passes stdio through and exits with the action's code (${mode})`, () => {
      const result = runCli(
        [
          '--isolation',
          mode,
          '--env',
          'A=b c',
          '--',
          'sh',
          '-c',
          'cat; echo "$A" $PATH; echo err >&2; exit 7',
        ],
        'input\n',
      );
      assert.equal(result.stdout, 'input\nb c /usr/local/bin:/usr/bin:/bin\n');
      assert.equal(result.stderr, 'err\n');
      assert.equal(result.status, 7);
    });

    leakFree(`exits with 128+N when signal N killed the action (${mode})`, () => {
      assert.equal(runCli(['--isolation', mode, '--', 'sh', '-c', 'kill -TERM $$']).status, 143);
    });
  }

  leakFree('gives exactly the environment asked for, the working directory and /tmp', () => {
    const result = runCli([
      '--env',
      'PATH=/bin',
      '--workdir',
      'usr/bin',
      '--tmp',
      join(build.path, 'tmp'),
      '--',
      'sh',
      '-c',
      'env; pwd; echo written > /tmp/cli',
    ]);
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.ok(lines.includes('PATH=/bin'));
    assert.ok(!lines.some((line) => line.startsWith('A=')));
    assert.equal(lines.at(-2), '/usr/bin');
    assert.equal(readFileSync(join(build.path, 'tmp/cli'), 'utf8'), 'written\n');
  });

  leakFree('reports an action that cannot be started like env(1)', () => {
    const missing = runCli(['--env', 'PATH=/usr/bin', '--', 'true']);
    assert.equal(missing.status, 127);
    assert.match(missing.stderr, /Cannot find executable "true" in search paths "\/usr\/bin"/);
    const notExecutable = runCli(['--', '/etc']);
    assert.equal(notExecutable.status, 126);
    assert.match(notExecutable.stderr, /Failed to start process: EACCES/);
  });
});

/** The CLI running an action in `mode` in the busybox input root, up to the action's argv. */
function runInMode(mode: 'namespaces' | 'shared'): string[] {
  return [process.execPath, binary, 'run', '--input-root', root, '--isolation', mode, '--'];
}

describe('a runner SIGKILLed while an action runs', () => {
  leakFree('namespaces: no process of the action survives and nothing stays mounted', async () => {
    await killRunnerDuringAction(runInMode('namespaces'), uniqueSleepDuration());
    assert.deepEqual(mountsBeneath(build.path), []);
  });

  leakFree(
    'shared: the action is killed, and the next runner detaches the stale mounts',
    async () => {
      await killRunnerDuringAction(runInMode('shared'), uniqueSleepDuration());
      assert.ok(
        mountsBeneath(root).includes(join(root, 'proc')),
        'the killed runner left its mounts',
      );
      const next = runCli(['--isolation', 'shared', '--', 'true']);
      assert.equal(next.status, 0, next.stderr);
      assert.deepEqual(mountsBeneath(build.path), []);
    },
  );
});
