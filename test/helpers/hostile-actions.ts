// The cases of a hostile-action suite (test/kernel/hostile-outside.test.ts, hostile-review):
// its fixture opened before the file's tests and removed after them, fresh action directories
// laid out as bb_worker does, shell scripts run in them through an engine of their own, and a
// test wrapper that proves afterwards that nothing is left and the host is unchanged.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it, type TestContext } from 'node:test';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { defaultIsolation, type IsolationSettings } from '../../src/sandbox/index.js';
import type { DirectoryHandle } from '../../src/syscalls/index.js';
import type { BuildDirectory } from './busybox.js';
import { type ActionSpec, runAction } from './engine.js';
import { assertHostUnchanged, type HostSnapshot, openHostileFixture } from './hostile.js';
import { assertNothingLeft, needsRoot, processState } from './leaks.js';
import { clientSocketsClosed } from './serve.js';

type Body = (t: TestContext) => Promise<void>;

export class HostileActions {
  build!: BuildDirectory;
  buildDirectory!: DirectoryHandle;
  canary!: string;
  /** The compiled test/helpers/hostile.c. */
  helper!: string;
  host!: HostSnapshot;
  /** Action directories made so far; also a serial number for other names of a case. */
  roots = 0;
  #logs = 0;
  readonly #programs: () => Readonly<Record<string, string>>;

  /** Registers the fixture's set-up and removal with the file's tests. `programs` names the
   * host files copied into every input root, by their path there (read when a directory is
   * made, so they may be set up in a later `before`). */
  constructor(
    prefix: string,
    programs: (actions: HostileActions) => Readonly<Record<string, string>> = (actions) => ({
      'bin/hostile': actions.helper,
    }),
  ) {
    this.#programs = () => programs(this);
    before(() => {
      if (needsRoot !== false) return;
      ({
        build: this.build,
        buildDirectory: this.buildDirectory,
        canary: this.canary,
        helper: this.helper,
        host: this.host,
      } = openHostileFixture(prefix));
    });
    after(() => {
      if (needsRoot !== false) return;
      this.buildDirectory.close();
      this.build.remove();
    });
  }

  /** A test (root only) after which nothing is left beneath the build directory (no mount,
   * fd, child; client sockets given time to close) and the host is unchanged. */
  contained = (name: string, optionsOrBody: { todo?: string } | Body, maybeBody?: Body): void => {
    const options = typeof optionsOrBody === 'function' ? {} : optionsOrBody;
    const body = typeof optionsOrBody === 'function' ? optionsOrBody : maybeBody;
    if (body === undefined) throw new TypeError('contained(name, [options], body)');
    it(name, { skip: needsRoot, timeout: 120_000, ...options }, async (t) => {
      const state = processState();
      await body(t);
      await clientSocketsClosed(state);
      assertNothingLeft(state, [this.build.path]);
      assertHostUnchanged(this.host, this.canary, this.build.path);
    });
  };

  /** A fresh action directory `<name>/{root,tmp}`, laid out as bb_worker does (directories
   * 0777), with the programs in its root; `shape` makes it hostile. */
  actionDirectory = (shape: (root: string, directory: string) => void = () => {}): string => {
    const name = `action-${this.roots++}`;
    const directory = join(this.build.path, name);
    populateBusyboxRoot(join(directory, 'root'));
    for (const [path, program] of Object.entries(this.#programs())) {
      copyFileSync(program, join(directory, 'root', path));
    }
    mkdirSync(join(directory, 'tmp'));
    for (const path of ['root', 'tmp']) chmodSync(join(directory, path), 0o777);
    shape(join(directory, 'root'), directory);
    return name;
  };

  /** A shell script as the action in directory `name`, with fresh log paths. */
  spec = (
    mode: IsolationSettings['mode'],
    name: string,
    script: string,
    overrides: Partial<ActionSpec> = {},
  ): ActionSpec => {
    this.#logs++;
    return {
      buildDirectory: this.buildDirectory,
      inputRoot: `${name}/root`,
      arguments: ['sh', '-c', script],
      environment: { PATH: '/bin' },
      workingDirectory: '',
      stdoutPath: `${name}/stdout-${this.#logs}`,
      stderrPath: `${name}/stderr-${this.#logs}`,
      temporaryDirectory: `${name}/tmp`,
      isolation: { ...defaultIsolation, mode },
      ...overrides,
    };
  };

  /** Runs the action (it must exit 0) and returns its stdout. */
  run = async (action: ActionSpec): Promise<string> => {
    const result = await runAction(action);
    const stderr = readFileSync(join(this.build.path, action.stderrPath), 'utf8');
    assert.equal(result.exitCode, 0, stderr);
    return readFileSync(join(this.build.path, action.stdoutPath), 'utf8');
  };
}
