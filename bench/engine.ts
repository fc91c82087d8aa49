// The engine contender: runAction through its TypeScript API, one action being the input
// root's `true` with the default special filesystems.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  ActionResult,
  ActionSpec,
  IsolationMode,
  IsolationSettings,
} from '../src/sandbox/types.js';
import type { DirectoryHandle } from '../src/syscalls/index.js';
import type { Action } from './load.js';

export type RunAction = (spec: ActionSpec) => Promise<ActionResult>;

/** What the bench uses of the engine's module. */
export interface Engine {
  readonly runAction: RunAction;
  /** The engine's default isolation (all special filesystems, default capabilities). */
  readonly defaultIsolation: IsolationSettings;
}

/** The engine's entry module, resolved from dist/bench/. */
const engineModule = new URL('../src/sandbox/index.js', import.meta.url);

/** The engine, or why it cannot be measured yet. Loaded dynamically so that the bench
 * builds and runs (skipping the engine) before src/sandbox/index.ts exists. */
export async function loadEngine(): Promise<Engine | string> {
  if (!existsSync(fileURLToPath(engineModule))) {
    return 'src/sandbox/index.ts does not exist yet';
  }
  let module: Partial<Engine>;
  try {
    module = (await import(engineModule.href)) as Partial<Engine>;
  } catch (error) {
    return `the engine does not load: ${error instanceof Error ? error.message.split('\n')[0] : error}`;
  }
  if (module.runAction === undefined || module.defaultIsolation === undefined) {
    return 'src/sandbox/index.ts does not export runAction and defaultIsolation';
  }
  return { runAction: module.runAction, defaultIsolation: module.defaultIsolation };
}

/** The input root of the actions of loop `loop`: like bb_worker's, each concurrent action has
 * its own (shared mode mounts into it). */
export function inputRootOf(loop: number): string {
  return `roots/${loop}`;
}

/** Runs the input root's `true`; `logs` is a directory of the build directory that the
 * action's stdout and stderr files are created in (each action's are new). `record` receives
 * the engine's own setup/run/teardown split of every action. */
export function trueAction(
  engine: Engine,
  buildDirectory: DirectoryHandle,
  buildDirectoryPath: string,
  logs: string,
  mode: IsolationMode,
  record: (timings: ActionResult['timings']) => void,
): Action {
  mkdirSync(join(buildDirectoryPath, logs), { recursive: true });
  const isolation = { ...engine.defaultIsolation, mode };
  return async (index, loop) => {
    const result = await engine.runAction({
      buildDirectory,
      inputRoot: inputRootOf(loop),
      arguments: ['/bin/true'],
      environment: { PATH: '/bin' },
      workingDirectory: '',
      stdoutPath: `${logs}/${index}.stdout`,
      stderrPath: `${logs}/${index}.stderr`,
      isolation,
    });
    if (result.exitCode !== 0) {
      throw new Error(`true exited with ${result.exitCode ?? result.terminationSignal}`);
    }
    record(result.timings);
  };
}
