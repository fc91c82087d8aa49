// Actions that run a shell script in an engine and are read back by what they printed, for the
// tests of what one action leaves to the next (network-reuse, hostile-fourth).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../../src/sandbox/index.js';

export interface ScriptRun {
  /** The action's network namespace, as readlink shows it. */
  readonly namespace: string;
  readonly reused: unknown;
  readonly preparedAhead: unknown;
  readonly output: string;
}

let actions = 0;

/** Runs `script` in the input root `root` of `buildPath` (its network namespace printed
 * first), and settles the engine: the namespace is back in the pool, or closed and replaced,
 * before the next action. */
export async function runScript(
  engine: Engine,
  buildPath: string,
  script: string,
  /** null: none. */
  temporaryDirectory: string | null = 'tmp',
): Promise<ScriptRun> {
  actions += 1;
  const [stdoutPath, stderrPath] = [`script-${actions}.out`, `script-${actions}.err`];
  const result = await engine.run({
    inputRoot: 'root',
    arguments: ['sh', '-c', `readlink /proc/self/ns/net; ${script}`],
    environment: { PATH: '/bin' },
    workingDirectory: '',
    stdoutPath,
    stderrPath,
    ...(temporaryDirectory === null ? {} : { temporaryDirectory }),
  });
  await engine.settled();
  assert.equal(result.exitCode, 0, readFileSync(join(buildPath, stderrPath), 'utf8'));
  const [namespace = '', ...output] = readFileSync(join(buildPath, stdoutPath), 'utf8').split('\n');
  return {
    namespace,
    reused: result.usage?.network?.reused,
    preparedAhead: result.usage?.network?.preparedAhead,
    output: output.join('\n'),
  };
}

/** sockstat without the host's own counts (orphans, allocated sockets, memory). */
export function withoutHostCounts(output: string): string {
  return output
    .replace(/ orphan \d+/, '')
    .replace(/ alloc \d+/, '')
    .replace(/ mem \d+/g, '');
}
