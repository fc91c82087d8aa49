// Soak: many actions through `serve` at concurrency 12, mixing success, failure, signals,
// deadlines, cancellations and refused requests, in namespaces, shared and rootless mode. At the
// end serve's mounts, fds and children are back where they started, and its resident memory is
// within 10% of what it was after warm-up (the first half of the run: the second half must not
// grow it). SOAK_ACTIONS sets the count (default 300); SOAK_BUDGET_MINUTES, when set, stops
// starting actions once that much time has passed, and the run ends with those it started (the
// report says how many of SOAK_ACTIONS ran), so that a long soak on a loaded machine still
// leaves its figures and nothing behind. Figures are taken per block of actions
// (throughput, serve's CPU, RSS, fds, mounts, children); with SOAK_REPORT=DIR they are written to
// DIR/<mode>.json, which `npm run soak` (bench/soak.ts) judges for flatness. SOAK_MODES (comma
// separated) selects modes.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import {
  POSIXResourceUsageSchema,
  type RunRequest,
  RunRequestSchema,
  type RunResponse,
  RunResponseSchema,
} from '../../src/proto/index.js';
import { makeBuildDirectory, writableByActions } from '../helpers/busybox.js';
import { assertNothingLeft, mountsBeneath, needsRoot, processState } from '../helpers/leaks.js';
import { processesWithArgument } from '../helpers/processes.js';
import {
  binary,
  clientSocketsClosed,
  processFootprint,
  ServeProcess,
  writeServeConfiguration,
} from '../helpers/serve.js';
import { StartSignal } from '../helpers/start-signal.js';
import { unprivileged } from '../helpers/unprivileged.js';

const total = Number(process.env.SOAK_ACTIONS ?? 300);
const budgetMs =
  process.env.SOAK_BUDGET_MINUTES === undefined
    ? Number.POSITIVE_INFINITY
    : Number(process.env.SOAK_BUDGET_MINUTES) * 60_000;
const concurrency = 12;
/** Fifty blocks in a long run (2000 actions each at 100,000), never under 100 actions. */
const blockSize = Math.max(100, Math.ceil(total / 50));
const reportDirectory = process.env.SOAK_REPORT;
/** /proc/<pid>/stat counts CPU time in USER_HZ ticks, 100 per second on every Linux ABI. */
const userHz = 100;

/** CPU time so far, in milliseconds, of serve itself (all threads, user and system) and of the
 * processes it has reaped (its actions, their set-up between clone and exec and the helpers it
 * ran): per action, the work the runner does, which the machine's other load stretches in
 * wall time but barely in CPU time. */
function cpuMilliseconds(pid: number): { serve: number; reaped: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which is in parentheses and may hold spaces: utime,
  // stime, cutime and cstime are the 14th to 17th fields of the line.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ms = (index: number) => (Number(fields[index]) * 1000) / userHz;
  return { serve: ms(11) + ms(12), reaped: ms(13) + ms(14) };
}

/** The control: a process beside serve that does one fixed unit of JavaScript work (allocate,
 * sort, serialise 4000 objects; about 1.2 ms of CPU on an idle machine) every 50 ms and reports
 * the CPU each unit took. The neighbours' load inflates the CPU time of a unit of work too
 * (caches, memory bandwidth, page reclaim); the control measures by how much, in each block, so
 * that `npm run soak` can judge serve's CPU per action relative to it. */
class CpuControl {
  readonly #child: ChildProcess;
  readonly #closed: Promise<unknown>;
  #units = 0;
  #microseconds = 0;

  constructor() {
    const script = `
      const unit = () => {
        const objects = [];
        for (let i = 0; i < 4000; i++) objects.push({ key: (i * 7919) % 4001, text: 'x' + i });
        objects.sort((a, b) => a.key - b.key);
        return JSON.stringify(objects).length;
      };
      const tick = () => {
        const before = process.cpuUsage();
        unit();
        const used = process.cpuUsage(before);
        process.stdout.write(used.user + used.system + '\\n');
        setTimeout(tick, 50);
      };
      tick();`;
    this.#child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.#closed = once(this.#child, 'close');
    createInterface({ input: this.#child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      this.#units++;
      this.#microseconds += Number(line);
    });
  }

  /** Units done and their CPU so far. */
  sample(): { units: number; microseconds: number } {
    return { units: this.#units, microseconds: this.#microseconds };
  }

  async stop(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.#closed;
  }
}

/** The action cgroups now in serve's scope: the most on any of its hierarchies (on v1, an
 * action has one directory on each). */
function actionCgroups(scopeDirectories: readonly string[]): number {
  let most = 0;
  for (const directory of scopeDirectories) {
    const entries = readdirSync(directory, { withFileTypes: true });
    most = Math.max(most, entries.filter((entry) => entry.isDirectory()).length);
  }
  return most;
}

/** One block's figures, taken when its last action completed. */
interface BlockFigures {
  readonly actions: number;
  readonly seconds: number;
  readonly actionsPerSecond: number;
  readonly serveCpuMsPerAction: number;
  /** CPU of the processes serve reaped in the block, per action. */
  readonly reapedCpuMsPerAction: number;
  /** The control's CPU per unit of work in the block (CpuControl). */
  readonly controlCpuMsPerUnit: number;
  readonly rssMB: number;
  readonly fds: number;
  /** Mounted beneath the build directory, in serve's mount namespace. */
  readonly mounts: number;
  readonly children: number;
  /** Action cgroups in serve's scope (0 when serve runs actions without cgroups). */
  readonly cgroups: number;
}

type Kind = 'success' | 'failure' | 'signal' | 'deadline' | 'cancel' | 'refused';

/** One action in twenty of each rare kind; most succeed. */
function kindOf(index: number): Kind {
  const slot = index % 20;
  if (slot < 12) return 'success';
  if (slot < 14) return 'failure';
  if (slot < 16) return 'signal';
  if (slot === 16) return 'deadline';
  if (slot < 19) return 'cancel';
  return 'refused';
}

/** A Run, cancellable. With `deadlineMs`, the deadline is serve's alone (the grpc-timeout
 * header, which grpc-js starts counting once it has read the call's headers): a deadline the
 * client also kept could pass before a loaded serve has read the call at all, and serve would
 * then never run, nor log, the action. */
function run(
  client: Client,
  request: RunRequest,
  deadlineMs?: number,
): { cancel: () => void; done: Promise<RunResponse | ServiceError> } {
  let settle: (outcome: RunResponse | ServiceError) => void = () => {};
  const done = new Promise<RunResponse | ServiceError>((resolve) => {
    settle = resolve;
  });
  const metadata = new Metadata();
  if (deadlineMs !== undefined) metadata.set('grpc-timeout', `${deadlineMs}m`);
  const call = client.makeUnaryRequest(
    '/buildbarn.runner.Runner/Run',
    (message: RunRequest) => Buffer.from(toBinary(RunRequestSchema, message)),
    (bytes: Buffer) => fromBinary(RunResponseSchema, bytes),
    request,
    metadata,
    (error, response) => settle(error ?? (response as RunResponse)),
  );
  return { cancel: () => call.cancel(), done };
}

const modes = (process.env.SOAK_MODES ?? 'namespaces,shared,rootless').split(',');

for (const mode of modes) {
  describe(`soak through serve (${mode})`, { skip: needsRoot }, () => {
    it(`${total} mixed actions at concurrency ${concurrency} leave serve as they found it`, {
      timeout: 3 * 3_600_000,
    }, async (t) => {
      const state = processState();
      const build = makeBuildDirectory('chroot-runner-soak-');
      // Rootless: serve as uid 65534 without capabilities, root inside the actions' namespace.
      const rootless = mode === 'rootless';
      // No network namespaces made ahead: the pool refills after a Run has answered, at its
      // own pace, and serve's fd count at the end would catch one under way (the pool's own
      // fds are counted in-process, after Engine.settled: sandbox.test.ts).
      const { file, socket, buildPath } = writeServeConfiguration(build.path, 'runner', mode, {
        preparedNetworkNamespaces: 0,
        ...(rootless ? { userNamespace: { userId: 0, groupId: 0 } } : {}),
      });
      const mark = `${5_000_000 + Math.floor(Math.random() * 4_000_000)}`;
      // One input root per slot: shared mode refuses two actions in one root at once.
      const slots = Array.from({ length: concurrency }, (_, slot) => {
        const name = `slot-${slot}`;
        populateBusyboxRoot(join(buildPath, name, 'root'));
        mkdirSync(join(buildPath, name, 'tmp'));
        for (const path of ['root', 'tmp']) writableByActions(join(buildPath, name, path));
        return { name, started: new StartSignal(join(buildPath, name, 'tmp/started')), starts: 0 };
      });
      if (rootless) execFileSync('chown', ['-R', '65534:65534', build.path]);
      const serve = await ServeProcess.start(
        ['--config', file],
        rootless ? [...unprivileged, process.execPath, binary] : undefined,
      );
      const client = new Client(socket, credentials.createInsecure());
      const pid = serve.child.pid ?? 0;
      const actionLog = (line: Record<string, unknown>) =>
        line.msg === 'action finished' || line.msg === 'action not run';
      const counts: Record<string, number> = {};
      let warm: ReturnType<typeof processFootprint> | undefined;
      const warmUp = Math.max(150, Math.floor(total / 2));
      let next = 0;
      let completed = 0;
      const blocks: BlockFigures[] = [];
      const serving = serve.logs.find((line) => line.msg === 'serving');
      const scopeDirectories =
        (serving?.cgroups as { directories: string[] } | null | undefined)?.directories ?? [];
      const control = new CpuControl();
      const sample = () => ({
        at: performance.now(),
        cpuMs: cpuMilliseconds(pid),
        control: control.sample(),
      });
      let blockStart = sample();
      const started = performance.now();
      try {
        const initial = await run(
          client,
          create(RunRequestSchema, {
            arguments: ['/bin/true'],
            environmentVariables: { PATH: '/bin' },
            inputRootDirectory: 'slot-0/root',
            stdoutPath: 'slot-0/warm-out',
            stderrPath: 'slot-0/warm-err',
          }),
        ).done;
        assert.equal((initial as RunResponse).exitCode, 0n);
        const baseline = processFootprint(pid);
        const logsBefore = serve.logs.length;
        blockStart = sample();

        const worker = async (slot: (typeof slots)[number]) => {
          while (next < total && performance.now() - started < budgetMs) {
            const index = next++;
            const kind = kindOf(index);
            const script: Record<Kind, string> = {
              success: `echo ${index}`,
              failure: 'exit 3',
              signal: 'kill -TERM $$',
              deadline: `exec sleep ${mark}`,
              cancel: `echo > /tmp/started; exec sleep ${mark}`,
              refused: '',
            };
            const stdoutPath = `${slot.name}/out-${index}`;
            const request = create(RunRequestSchema, {
              arguments: kind === 'refused' ? ['missing-program'] : ['sh', '-c', script[kind]],
              environmentVariables: { PATH: '/bin' },
              inputRootDirectory: `${slot.name}/root`,
              temporaryDirectory: `${slot.name}/tmp`,
              stdoutPath,
              stderrPath: `${slot.name}/err-${index}`,
            });
            const logged = serve.logs.length;
            const call = run(client, request, kind === 'deadline' ? 1000 : undefined);
            if (kind === 'cancel') {
              slot.starts++;
              await slot.started.lines(slot.starts);
              if (kind === 'cancel') call.cancel();
            }
            const outcome = await call.done;
            if ('code' in outcome) {
              const expected = {
                deadline: 'DEADLINE_EXCEEDED',
                cancel: 'CANCELLED',
                refused: 'INVALID_ARGUMENT',
              }[kind as 'deadline' | 'cancel' | 'refused'];
              assert.equal(status[outcome.code], expected, `${kind}: ${outcome.details}`);
            } else {
              const [usage] = outcome.resourceUsage;
              const signal = usage && anyUnpack(usage, POSIXResourceUsageSchema)?.terminationSignal;
              if (kind === 'success') {
                assert.equal(outcome.exitCode, 0n);
                assert.equal(readFileSync(join(buildPath, stdoutPath), 'utf8'), `${index}\n`);
              } else if (kind === 'failure') {
                assert.equal(outcome.exitCode, 3n);
              } else {
                assert.equal(kind, 'signal');
                assert.deepEqual([outcome.exitCode, signal], [-1n, 'TERM']);
              }
            }
            if (kind === 'deadline' || kind === 'cancel') {
              // The client knows before serve has cleaned up: wait for serve's line, so that the
              // slot's input root is free again (shared mode refuses a root in use).
              await serve.waitForLog(
                (line) => line.msg === 'action not run' && line.inputRoot === `${slot.name}/root`,
                logged,
              );
            }
            counts[kind] = (counts[kind] ?? 0) + 1;
            rmSync(join(buildPath, stdoutPath), { force: true });
            rmSync(join(buildPath, `${slot.name}/err-${index}`), { force: true });
            completed++;
            if (completed === warmUp) warm = processFootprint(pid);
            if (completed % blockSize === 0) {
              const now = sample();
              const footprint = processFootprint(pid);
              const seconds = (now.at - blockStart.at) / 1000;
              blocks.push({
                actions: completed,
                seconds: Number(seconds.toFixed(3)),
                actionsPerSecond: Math.round(blockSize / seconds),
                serveCpuMsPerAction: Number(
                  ((now.cpuMs.serve - blockStart.cpuMs.serve) / blockSize).toFixed(3),
                ),
                reapedCpuMsPerAction: Number(
                  ((now.cpuMs.reaped - blockStart.cpuMs.reaped) / blockSize).toFixed(3),
                ),
                controlCpuMsPerUnit: Number(
                  (
                    (now.control.microseconds - blockStart.control.microseconds) /
                    1000 /
                    (now.control.units - blockStart.control.units)
                  ).toFixed(3),
                ),
                rssMB: Number((footprint.rssKiB / 1024).toFixed(1)),
                fds: footprint.fds,
                // Beneath the build directory: other suites mount elsewhere meanwhile.
                mounts: mountsBeneath(build.path, pid).length,
                children: footprint.children.length,
                cgroups: actionCgroups(scopeDirectories),
              });
              blockStart = now;
            }
          }
        };
        await Promise.all(slots.map(worker));
        const ran = next;
        // Every Run reached serve (cancellations only once their action started); serve logs
        // each once it is cleaned up.
        await serve.waitForLogs(actionLog, ran, logsBefore);
        const seconds = (performance.now() - started) / 1000;
        const end = processFootprint(pid);
        const report = {
          mode,
          total: ran,
          requested: total,
          concurrency,
          blockSize,
          cgroupScopes: scopeDirectories,
          seconds: Math.round(seconds),
          counts,
          baseline,
          warm,
          end,
          blocks,
        };
        t.diagnostic(JSON.stringify(report));
        if (reportDirectory !== undefined) {
          mkdirSync(reportDirectory, { recursive: true });
          writeFileSync(
            join(reportDirectory, `${mode}.json`),
            `${JSON.stringify(report, null, 2)}\n`,
          );
        }
        assert.deepEqual(end.children, []);
        assert.equal(end.fds, baseline.fds, "serve's open fds");
        assert.deepEqual(mountsBeneath(build.path), []);
        assert.deepEqual(processesWithArgument(mark), []);
        assert.equal(actionCgroups(scopeDirectories), 0, "action cgroups left in serve's scope");
        assert.ok(warm !== undefined);
        assert.ok(
          end.rssKiB <= warm.rssKiB * 1.1,
          `serve's RSS grew from ${warm.rssKiB} KiB after warm-up to ${end.rssKiB} KiB`,
        );
        assert.deepEqual(await serve.stop(), [0, null]);
      } finally {
        await control.stop();
        client.close();
        for (const slot of slots) await slot.started.close();
        await serve.stop('SIGKILL');
        build.remove();
      }
      await clientSocketsClosed(state);
      assertNothingLeft(state, [build.path]);
    });
  });
}
