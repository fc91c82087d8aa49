// One action on an Engine of its own, made for the call and closed after it: for tests that
// choose the build directory and the isolation per action. Nothing of the engine outlives
// the call, so fd counts before and after an action compare as they are.
import { readlinkSync } from 'node:fs';
import {
  type ActionSpec as Action,
  type ActionResult,
  Engine,
  type IsolationSettings,
} from '../../src/sandbox/index.js';
import type { DirectoryHandle } from '../../src/syscalls/index.js';

/** An action with the engine it runs on. */
export interface ActionSpec extends Action {
  readonly buildDirectory: DirectoryHandle;
  readonly isolation: IsolationSettings;
}

function pathOf(directory: DirectoryHandle): string {
  return readlinkSync(`/proc/self/fd/${directory.fd}`);
}

/** An engine on the directory of `buildDirectory`. */
export function openEngine(
  buildDirectory: DirectoryHandle,
  isolation: IsolationSettings,
): Promise<Engine> {
  return Engine.open({ buildDirectory: pathOf(buildDirectory), isolation });
}

export async function runAction(spec: ActionSpec): Promise<ActionResult> {
  const { buildDirectory, isolation, ...action } = spec;
  const engine = await openEngine(buildDirectory, isolation);
  try {
    return await engine.run(action);
  } finally {
    await engine.close();
  }
}

/** What a shared-mode runner's sweep at start-up removes beneath `buildDirectoryPath`. */
export async function sweepStaleMounts(
  buildDirectoryPath: string,
  isolation: IsolationSettings,
): Promise<string[]> {
  const engine = await Engine.open({ buildDirectory: buildDirectoryPath, isolation });
  try {
    return engine.sweep();
  } finally {
    await engine.close();
  }
}
