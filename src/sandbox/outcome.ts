// How an action ended, from what its init wrote to the status pipe before exiting (record
// kinds: native/plan-format.h).
import { constants as osConstants } from 'node:os';
import { systemError } from '../syscalls/index.js';
import { type InitUsageRecord, type ProcessExit, planFormat } from '../syscalls/process.js';
import { ActionError, type ActionResult } from './types.js';

const { records: Record, usageRecords } = planFormat;

/** The usage fields in their records' order, and each record kind's place among them: the
 * values of one action's records go into an array at those places. */
const usageFields = Object.keys(usageRecords) as InitUsageRecord[];
const usagePlaces: (number | undefined)[] = [];
for (const [place, field] of usageFields.entries()) usagePlaces[usageRecords[field]] = place;
const placeOf = Object.fromEntries(usageFields.map((field, place) => [field, place])) as Record<
  InitUsageRecord,
  number
>;

const signalNames = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, number]) => [number, name.replace(/^SIG/, '')]),
);

/** An action that could not be started: bb_runner's INVALID_ARGUMENT for what the request
 * got wrong (ENOENT, EACCES, ENOEXEC, EISDIR), INTERNAL for the rest. */
const startErrors = new Set([
  'ENOENT',
  'EACCES',
  'ENOEXEC',
  'EISDIR',
  'ENOTDIR',
  'ELOOP',
  'EPERM',
  'ENAMETOOLONG',
]);

/** errno names by number: libuv's getSystemErrorName does not know every one (ENOEXEC). */
const errnoNames = new Map<number, keyof typeof osConstants.errno>(
  Object.entries(osConstants.errno).map(([name, number]) => [
    number,
    name as keyof typeof osConstants.errno,
  ]),
);

function startFailure(errno: number, program: string): ActionError {
  const code = errnoNames.get(errno) ?? 'EIO';
  const detail = code === 'ENOEXEC' ? 'exec format error' : undefined;
  const cause = systemError(code, 'execve', program, detail);
  return new ActionError(
    startErrors.has(code) ? 'invalidArgument' : 'internal',
    `Failed to start process: ${cause.message}`,
    cause,
    'execFailed',
  );
}

/** A timeval as nanoseconds: its microseconds are exact as a number (below 2^53 for any
 * int32 of seconds), so one BigInt is made, not four. */
function nanoseconds(seconds: number, microseconds: number): bigint {
  return BigInt(seconds * 1_000_000 + microseconds) * 1000n;
}

/** How the action ended, from the init's records. */
export function outcome(exit: ProcessExit, program: string): Omit<ActionResult, 'timings'> {
  let ended: Pick<ActionResult, 'exitCode' | 'terminationSignal'> | undefined;
  const usage = new Array<number>(usageFields.length).fill(0);
  for (let i = 0; i + 1 < exit.records.length; i += 2) {
    const kind = exit.records[i] ?? 0;
    const value = exit.records[i + 1] ?? 0;
    // Most records are usage.
    const place = usagePlaces[kind];
    if (place !== undefined) {
      usage[place] = value;
      continue;
    }
    if (kind === Record.execFailed) throw startFailure(value, program);
    if (kind === Record.initFailed) {
      throw new ActionError(
        'internal',
        `The action's init failed: ${errnoNames.get(value) ?? value}`,
      );
    }
    if (kind === Record.cancelled) {
      throw new ActionError(
        'internal',
        `The action's init was stopped by signal ${signalNames.get(value) ?? value}`,
      );
    }
    if (kind === Record.exited) ended = { exitCode: value, terminationSignal: null };
    if (kind === Record.signaled) {
      ended = { exitCode: null, terminationSignal: signalNames.get(value) ?? String(value) };
    }
  }
  if (ended === undefined) {
    const how =
      exit.signal !== null
        ? `was killed by signal ${signalNames.get(exit.signal)}`
        : `exited with ${exit.exitCode}`;
    throw new ActionError(
      'internal',
      `The action's init ${how} without reporting the action's status`,
    );
  }
  const field = (name: InitUsageRecord): number => usage[placeOf[name]] ?? 0;
  return {
    ...ended,
    resourceUsage: {
      userTimeNanoseconds: nanoseconds(field('utimeSeconds'), field('utimeMicroseconds')),
      systemTimeNanoseconds: nanoseconds(field('stimeSeconds'), field('stimeMicroseconds')),
      maximumResidentSetSizeBytes: field('maxrss') * 1024,
      pageReclaims: field('minflt'),
      pageFaults: field('majflt'),
      swaps: field('nswap'),
      blockInputOperations: field('inblock'),
      blockOutputOperations: field('oublock'),
      messagesSent: field('msgsnd'),
      messagesReceived: field('msgrcv'),
      signalsReceived: field('nsignals'),
      voluntaryContextSwitches: field('nvcsw'),
      involuntaryContextSwitches: field('nivcsw'),
    },
  };
}
