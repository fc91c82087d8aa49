// Soak: many actions through `serve` at concurrency 12, mixing success, failure, signals,
// deadlines, cancellations and refused requests, in namespaces, shared and rootless mode. At the
// end serve's mounts, fds and children are back where they started, and its resident memory is
// within 10% of what it was after warm-up (the first half of the run: the second half must not
// grow it). SOAK_ACTIONS sets the count (default 300). Figures are taken per block of actions
// (throughput, serve's CPU, RSS, fds, mounts, children); with SOAK_REPORT=DIR they are written to
// DIR/<mode>.json, which `npm run soak` (bench/soak.ts) judges for flatness. SOAK_MODES (comma
// separated) selects modes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
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
import { unprivileged } from '../helpers/unprivileged.js';

const total = Number(process.env.SOAK_ACTIONS ?? 300);
const concurrency = 12;
/** Fifty blocks in a long run (2000 actions each at 100,000), never under 100 actions. */
const blockSize = Math.max(100, Math.ceil(total / 50));
const reportDirectory = process.env.SOAK_REPORT;
/** /proc/<pid>/stat counts CPU time in USER_HZ ticks, 100 per second on every Linux ABI. */
const userHz = 100;

/** serve's CPU time so far (all threads, user and system), in milliseconds. */
function cpuMilliseconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / userHz;
}

/** One block's figures, taken when its last action completed. */
interface BlockFigures {
  readonly actions: number;
  readonly seconds: number;
  readonly actionsPerSecond: number;
  readonly serveCpuMsPerAction: number;
  readonly rssMB: number;
  readonly fds: number;
  /** Mounted beneath the build directory, in serve's mount namespace. */
  readonly mounts: number;
  readonly children: number;
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

/** Lines written to a FIFO by the actions of one slot when they start; opened read-write so
 * that writers never block. */
class StartLines {
  readonly #fd: number;
  readonly #stream: Socket;
  #count = 0;
  #waiter: { count: number; resolve: () => void } | undefined;

  constructor(path: string) {
    execFileSync('mkfifo', ['-m', '666', path]);
    this.#fd = openSync(path, 'r+');
    // A socket, not a file stream: reads wait in epoll, not in one of libuv's four threads.
    this.#stream = new Socket({ fd: this.#fd, readable: true, writable: false });
    this.#stream.on('data', (chunk: Buffer) => {
      this.#count += chunk.toString().split('\n').length - 1;
      if (this.#waiter !== undefined && this.#count >= this.#waiter.count) {
        this.#waiter.resolve();
        this.#waiter = undefined;
      }
    });
  }

  lines(count: number): Promise<void> {
    if (this.#count >= count) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiter = { count, resolve };
    });
  }

  async close(): Promise<void> {
    const closed = once(this.#stream, 'close');
    this.#stream.destroy();
    await closed;
  }
}

function run(
  client: Client,
  request: RunRequest,
  deadlineMs?: number,
): { cancel: () => void; done: Promise<RunResponse | ServiceError> } {
  let settle: (outcome: RunResponse | ServiceError) => void = () => {};
  const done = new Promise<RunResponse | ServiceError>((resolve) => {
    settle = resolve;
  });
  const call = client.makeUnaryRequest(
    '/buildbarn.runner.Runner/Run',
    (message: RunRequest) => Buffer.from(toBinary(RunRequestSchema, message)),
    (bytes: Buffer) => fromBinary(RunResponseSchema, bytes),
    request,
    deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
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
      const { file, socket, buildPath } = writeServeConfiguration(
        build.path,
        'runner',
        mode,
        rootless ? { userNamespace: { userId: 0, groupId: 0 } } : {},
      );
      const mark = `${5_000_000 + Math.floor(Math.random() * 4_000_000)}`;
      // One input root per slot: shared mode refuses two actions in one root at once.
      const slots = Array.from({ length: concurrency }, (_, slot) => {
        const name = `slot-${slot}`;
        populateBusyboxRoot(join(buildPath, name, 'root'));
        mkdirSync(join(buildPath, name, 'tmp'));
        for (const path of ['root', 'tmp']) writableByActions(join(buildPath, name, path));
        return { name, started: new StartLines(join(buildPath, name, 'tmp/started')), starts: 0 };
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
      let blockStart = { at: performance.now(), cpuMs: cpuMilliseconds(pid) };
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
        blockStart = { at: performance.now(), cpuMs: cpuMilliseconds(pid) };

        const worker = async (slot: (typeof slots)[number]) => {
          while (next < total) {
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
              const now = { at: performance.now(), cpuMs: cpuMilliseconds(pid) };
              const footprint = processFootprint(pid);
              const seconds = (now.at - blockStart.at) / 1000;
              blocks.push({
                actions: completed,
                seconds: Number(seconds.toFixed(3)),
                actionsPerSecond: Math.round(blockSize / seconds),
                serveCpuMsPerAction: Number(
                  ((now.cpuMs - blockStart.cpuMs) / blockSize).toFixed(3),
                ),
                rssMB: Number((footprint.rssKiB / 1024).toFixed(1)),
                fds: footprint.fds,
                // Beneath the build directory: other suites mount elsewhere meanwhile.
                mounts: mountsBeneath(build.path, pid).length,
                children: footprint.children.length,
              });
              blockStart = now;
            }
          }
        };
        await Promise.all(slots.map(worker));
        // Every Run reached serve (cancellations only once their action started); serve logs
        // each once it is cleaned up.
        await serve.waitForLogs(actionLog, total, logsBefore);
        const seconds = (performance.now() - started) / 1000;
        const end = processFootprint(pid);
        const report = {
          mode,
          total,
          concurrency,
          blockSize,
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
        assert.ok(warm !== undefined);
        assert.ok(
          end.rssKiB <= warm.rssKiB * 1.1,
          `serve's RSS grew from ${warm.rssKiB} KiB after warm-up to ${end.rssKiB} KiB`,
        );
        assert.deepEqual(await serve.stop(), [0, null]);
      } finally {
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
