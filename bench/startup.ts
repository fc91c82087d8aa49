// The start-up part: `chroot-runner run` (one action, one process: Node's start-up, the CLI's
// modules, the action) next to `node -e 0` and hardened bwrap, measured by hyperfine in one
// run so that the ratios hold on a shared machine.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findOnPath, hardenedBwrapArguments } from './peers.js';

const run = promisify(execFile);

const command = fileURLToPath(new URL('../../bin/chroot-runner.js', import.meta.url));

export interface StartupRow {
  readonly name: string;
  readonly command: string;
  readonly medianMs: number;
  readonly meanMs: number;
  /** CPU time of the command and its children, per run. */
  readonly userMs: number;
  readonly systemMs: number;
}

interface HyperfineResult {
  readonly command: string;
  readonly mean: number;
  readonly median: number;
  readonly user: number;
  readonly system: number;
}

/** `runs` runs of each command after 5 unmeasured, on the input root `root`. */
export async function measureStartup(
  root: string,
  work: string,
  runs: number,
): Promise<StartupRow[]> {
  const hyperfine = findOnPath('hyperfine');
  if (hyperfine === undefined) throw new Error('hyperfine is not installed (Debian package)');
  const bwrap = findOnPath('bwrap');
  const commands: [string, string[]][] = [
    ['node -e 0', [process.execPath, '-e', '0']],
    [
      'chroot-runner run',
      [process.execPath, command, 'run', '--input-root', root, '--', '/bin/true'],
    ],
    ...(bwrap === undefined
      ? []
      : [['bwrap', [bwrap, ...hardenedBwrapArguments(root)]] as [string, string[]]]),
  ];
  const output = join(work, 'startup.json');
  await run(
    hyperfine,
    [
      ...['--shell=none', '--warmup', '5', '--runs', String(runs), '--export-json', output],
      ...commands.map(([, argv]) => argv.join(' ')),
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const { results } = JSON.parse(readFileSync(output, 'utf8')) as { results: HyperfineResult[] };
  return results.map((result, index) => ({
    name: commands[index]?.[0] ?? result.command,
    command: result.command.replaceAll(root, 'ROOT'),
    medianMs: result.median * 1000,
    meanMs: result.mean * 1000,
    userMs: result.user * 1000,
    systemMs: result.system * 1000,
  }));
}
