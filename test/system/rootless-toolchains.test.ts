// The toolchain cases of the acceptance suite (test/helpers/toolchains.ts) in rootless mode:
// `chroot-runner run --isolation rootless` as uid 65534 without capabilities, in the full
// userland input root (built as root, readable by everyone; each action's workspace and
// temporary directory belong to uid 65534).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { assertNothingLeft, needsRoot, type ProcessState, processState } from '../helpers/leaks.js';
import { processesWithEnvironment } from '../helpers/processes.js';
import { cases, type Outcome, type ToolCase, type Workspace } from '../helpers/toolchains.js';
import { rootlessRunCommand } from '../helpers/unprivileged.js';
import { buildUserland, removeUserland, type Userland } from '../helpers/userland.js';

/** Long enough for javac on a loaded 2-core machine; a hung action fails instead of hanging. */
const runTimeoutMs = 120_000;

interface Suite {
  readonly directory: string;
  readonly userland: Userland;
  readonly before: ProcessState;
  /** NAME=value set in every action's environment, to find processes that outlive it. */
  readonly marker: string;
  actions: number;
}

let suite: Suite | undefined;

function current(): Suite {
  assert.ok(suite, 'the suite was not set up');
  return suite;
}

/** Files and directories an action may write, owned by the runner's uid. */
function giveToRunner(path: string): void {
  const chowned = spawnSync('chown', ['-R', '65534:65534', path], { encoding: 'utf8' });
  assert.equal(chowned.status, 0, chowned.stderr);
}

function runCase(toolCase: ToolCase): { outcome: Outcome; workspace: Workspace } {
  const { directory, userland, marker } = current();
  const id = `${++current().actions}`;
  const workspace: Workspace = { directory: `/work/${id}`, hostRoot: userland.root };
  const hostDirectory = join(userland.root, workspace.directory);
  mkdirSync(hostDirectory, { recursive: true });
  for (const [name, text] of Object.entries(toolCase.files ?? {})) {
    mkdirSync(dirname(join(hostDirectory, name)), { recursive: true });
    writeFileSync(join(hostDirectory, name), text);
  }
  giveToRunner(hostDirectory);
  const temporary = join(directory, 'tmp', id);
  mkdirSync(temporary, { recursive: true });
  giveToRunner(temporary);
  const environment = {
    PATH: userland.path,
    HOME: workspace.directory,
    TMPDIR: '/tmp',
    ...toolCase.environment?.(workspace, userland),
  };
  const [program = 'setpriv', ...rest] = rootlessRunCommand(userland.root);
  const result = spawnSync(
    program,
    [
      ...rest,
      '--workdir',
      workspace.directory.slice(1),
      '--tmp',
      temporary,
      ...Object.entries(environment).flatMap(([name, value]) => ['--env', `${name}=${value}`]),
      '--env',
      marker,
      '--',
      ...toolCase.argv,
    ],
    { encoding: 'utf8', timeout: runTimeoutMs },
  );
  assert.deepEqual(processesWithEnvironment(marker), [], 'processes of the action still alive');
  const outcome: Outcome = {
    exitCode: BigInt(result.status ?? -1),
    terminationSignal: result.signal ?? '',
    stdout: result.stdout,
    stderr: result.stderr,
  };
  return { outcome, workspace };
}

describe('real toolchains through chroot-runner run --isolation rootless, as uid 65534', {
  skip: needsRoot,
}, () => {
  before(() => {
    const state = processState();
    const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-rootless-toolchains-'));
    // mkdtemp makes it 0700: the runner's uid must reach the input root beneath it.
    chmodSync(directory, 0o755);
    let userland: Userland;
    try {
      userland = buildUserland(join(directory, 'root'));
    } catch (error) {
      rmSync(directory, { recursive: true, force: true });
      throw error;
    }
    // rustup's proxy writes beneath its home: that directory (made by buildUserland, not a
    // hard link of the host's) belongs to the runner's uid, what is in it stays the host's.
    if (userland.rustup !== null) {
      chownSync(join(userland.root, userland.rustup.home), 65534, 65534);
    }
    suite = {
      directory,
      userland,
      before: state,
      marker: `CHROOT_RUNNER_ROOTLESS=${basename(directory)}`,
      actions: 0,
    };
  });

  after(() => {
    if (suite === undefined) return;
    const { directory, userland, before } = suite;
    removeUserland(userland.root);
    rmSync(directory, { recursive: true, force: true });
    assertNothingLeft(before, [directory]);
  });

  for (const toolCase of cases) {
    test(`${toolCase.tool}: ${toolCase.what}`, { skip: toolCase.skip }, () => {
      const { outcome, workspace } = runCase(toolCase);
      toolCase.verify(outcome, workspace);
    });
  }
});
