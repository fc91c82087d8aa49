// The engine contender: Engine.run through its TypeScript API, one action being the input
// root's `true` with the default special filesystems.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine as SandboxEngine } from '../src/sandbox/index.js';
import type { ActionResult, IsolationMode, IsolationSettings } from '../src/sandbox/types.js';
import type { Action } from './load.js';

/** What the bench uses of the engine's module. */
export interface Engine {
  readonly Engine: typeof SandboxEngine;
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
  if (module.Engine === undefined || module.defaultIsolation === undefined) {
    return 'src/sandbox/index.ts does not export Engine and defaultIsolation';
  }
  return { Engine: module.Engine, defaultIsolation: module.defaultIsolation };
}

/** An engine of the loaded module on `buildDirectory`, isolated as `mode` by default. */
export function openEngine(
  engine: Engine,
  buildDirectory: string,
  mode: IsolationMode,
): Promise<SandboxEngine> {
  return engine.Engine.open({ buildDirectory, isolation: { ...engine.defaultIsolation, mode } });
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
  engine: SandboxEngine,
  buildDirectoryPath: string,
  logs: string,
  record: (timings: ActionResult['timings']) => void,
): Action {
  mkdirSync(join(buildDirectoryPath, logs), { recursive: true });
  return async (index, loop) => {
    const result = await engine.run({
      inputRoot: inputRootOf(loop),
      arguments: ['/bin/true'],
      environment: { PATH: '/bin' },
      workingDirectory: '',
      stdoutPath: `${logs}/${index}.stdout`,
      stderrPath: `${logs}/${index}.stderr`,
    });
    if (result.exitCode !== 0) {
      throw new Error(`true exited with ${result.exitCode ?? result.terminationSignal}`);
    }
    record(result.timings);
  };
}
