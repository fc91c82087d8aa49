// `chroot-runner doctor`: what this kernel, container runtime and process allow, and which
// isolation modes therefore work here; for each one that doesn't, why and the fix.
//
//   chroot-runner doctor [--build-directory DIR] [--probe] [--json]
//
// Exit status: 0 when at least one isolation mode works here, 1 when none does.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type CheckResult,
  detectFeatures,
  isolationModeSupport,
  type ModeSupport,
} from '../doctor/index.js';
import {
  ActionError,
  defaultIsolation,
  Engine,
  type IsolationMode,
  isolationStrategy,
} from '../sandbox/index.js';
import { withAlternatives } from '../server/preflight.js';
import { populateHostRoot } from './host-root.js';

interface DoctorOptions {
  readonly buildDirectory?: string;
  readonly probe?: boolean;
  readonly json?: boolean;
}

interface ProbeFailure {
  readonly reason: string;
  readonly fix: string;
}

const unexplained = 'none of the checks above explains it: please report it with their output';

/** Runs a trivial action in `mode` in a scratch input root of the host's sh and realpath
 * (see populateHostRoot); returns why it failed,
 * or undefined when it ran as expected. */
async function probeMode(mode: IsolationMode): Promise<ProbeFailure | undefined> {
  const base = mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-probe-'));
  let engine: Engine | undefined;
  try {
    populateHostRoot(join(base, 'root'), ['sh', 'realpath']);
    mkdirSync(join(base, 'tmp'));
    engine = await Engine.open({ buildDirectory: base, isolation: { ...defaultIsolation, mode } });
    const result = await engine.run({
      inputRoot: 'root',
      arguments: ['sh', '-c', isolationStrategy(mode).probeScript],
      environment: { PATH: '/bin' },
      workingDirectory: '',
      stdoutPath: 'stdout',
      stderrPath: 'stderr',
      temporaryDirectory: 'tmp',
    });
    if (result.exitCode === 0) return undefined;
    const stderr = readFileSync(join(base, 'stderr'), 'utf8').trim();
    const ended =
      result.exitCode === null
        ? `was killed by ${result.terminationSignal}`
        : `exited with ${result.exitCode}`;
    return {
      reason: `a probe action ${ended}${stderr === '' ? '' : `: ${stderr}`}`,
      fix: unexplained,
    };
  } catch (error) {
    if (!(error instanceof ActionError)) throw error;
    const { cause } = error;
    const refused = cause?.code === 'EPERM' || cause?.code === 'EACCES' || cause?.code === 'ENOSYS';
    return {
      reason: `a probe action could not run: ${error.message}`,
      fix: refused
        ? `allow ${cause?.syscall} in the seccomp profile and LSM policy (AppArmor, SELinux)`
        : unexplained,
    };
  } finally {
    await engine?.close();
    rmSync(base, { recursive: true, force: true });
  }
}

/** Confirms each available mode with a real action; a failure makes it unavailable. */
async function probeModes(modes: readonly ModeSupport[]): Promise<ModeSupport[]> {
  const probed: ModeSupport[] = [];
  for (const support of modes) {
    const failure = support.available ? await probeMode(support.mode) : undefined;
    probed.push(failure === undefined ? support : { ...support, available: false, ...failure });
  }
  return probed;
}

const statusWidth = 'unavailable'.length;

export function formatCheck(check: CheckResult): string {
  const line = `  ${check.status.padEnd(statusWidth)}  ${check.title}: ${check.detail}`;
  return check.fix === undefined ? line : `${line}\n  ${''.padEnd(statusWidth)}  fix: ${check.fix}`;
}

export function formatMode(support: ModeSupport, probed: boolean): string {
  const mode = support.mode.padEnd('namespaces'.length);
  if (support.available) return `  ${mode}  available${probed ? ' (a probe action ran)' : ''}`;
  return `  ${mode}  unavailable: ${support.reason}. Fix: ${support.fix}`;
}

async function doctor(options: DoctorOptions): Promise<number> {
  const features = await detectFeatures(
    options.buildDirectory === undefined ? {} : { buildDirectory: options.buildDirectory },
  );
  const probed = options.probe === true;
  const detected = isolationModeSupport(features);
  const modes = withAlternatives(probed ? await probeModes(detected) : detected);
  const usable = modes.filter((support) => support.available).map((support) => support.mode);
  if (options.json === true) {
    process.stdout.write(`${JSON.stringify({ checks: features.checks, modes }, null, 2)}\n`);
  } else {
    const lines = [
      'Checks:',
      ...Object.values(features.checks).map(formatCheck),
      '',
      'Isolation modes:',
      ...modes.map((support) => formatMode(support, probed)),
      '',
      usable.length > 0 ? `Usable here: ${usable.join(', ')}.` : 'No isolation mode works here.',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return usable.length > 0 ? 0 : 1;
}

export function addDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check which isolation modes work on this host, and why the others do not (exit 1 when none does)',
    )
    .option('--build-directory <dir>', 'also check the build directory (FUSE, reachability)')
    .option('--probe', 'confirm each available mode by running a trivial action in a scratch root')
    .option('--json', 'print the checks and modes as JSON')
    .action(async (options: DoctorOptions) => {
      process.exitCode = await doctor(options);
    });
}
