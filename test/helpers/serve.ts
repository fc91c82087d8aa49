// `chroot-runner serve` in its own process, as bb_worker's runner: its JSON log lines are
// collected so that tests can wait for events (serving, an action's end) instead of sleeping.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { killProcesses, removeCgroupTree } from '../../src/cgroups/files.js';
import { isSystemError } from '../../src/syscalls/index.js';
import { uniqueScope } from './cgroups.js';
import { childProcesses, openFds, type ProcessState, processState } from './leaks.js';

/** bin/chroot-runner.js of this checkout. */
export const binary = new URL('../../../bin/chroot-runner.js', import.meta.url).pathname;

export type LogLine = Record<string, unknown> & { msg?: string };

export class ServeProcess {
  readonly logs: LogLine[] = [];
  readonly #waiters = new Set<{
    match: (line: LogLine) => boolean;
    /** Matches still to see before resolving. */
    remaining: number;
    resolve: (line: LogLine) => void;
  }>();
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** stderr lines that are not JSON (e.g. a configuration error). */
  stderrText = '';

  private constructor(readonly child: ChildProcess) {
    // 'close', not 'exit': its stdout and stderr pipes are fds of this process until then.
    this.exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    const lines = createInterface({ input: child.stderr as NodeJS.ReadableStream });
    lines.on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text);
      } catch {
        this.stderrText += `${text}\n`;
        return;
      }
      this.logs.push(line);
      for (const waiter of this.#waiters) {
        if (waiter.match(line) && --waiter.remaining === 0) {
          this.#waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    });
  }

  /** Starts `serve` with `args` and resolves once it logs that it is serving. `command` is the
   * chroot-runner executable (default: this checkout's, run by this node). */
  static async start(
    args: readonly string[],
    command: readonly string[] = [process.execPath, binary],
  ): Promise<ServeProcess> {
    const [program = process.execPath, ...prefix] = command;
    const child = spawn(program, [...prefix, 'serve', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const serve = new ServeProcess(child);
    const serving = serve.waitForLog((line) => line.msg === 'serving');
    const failed = serve.exited.then(([code]) => {
      throw new Error(`serve exited with ${code} before serving: ${serve.stderrText}`);
    });
    await Promise.race([serving, failed]);
    return serve;
  }

  /** The first log line at or after index `from` of `logs`, past or future, that matches.
   * Only the lines from `from` on are looked at, once each: a wait costs O(new lines). */
  waitForLog(match: (line: LogLine) => boolean, from = 0): Promise<LogLine> {
    return this.waitForLogs(match, 1, from);
  }

  /** The `count`th log line at or after index `from` that matches, past or future. */
  waitForLogs(match: (line: LogLine) => boolean, count: number, from = 0): Promise<LogLine> {
    let remaining = count;
    for (let index = from; index < this.logs.length; index++) {
      const line = this.logs[index] as LogLine;
      if (match(line) && --remaining === 0) return Promise.resolve(line);
    }
    return new Promise((resolve) => this.#waiters.add({ match, remaining, resolve }));
  }

  /** Sends `signal` unless it has exited already, and resolves with how it exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<[number | null, NodeJS.Signals | null]> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const exited = await this.exited;
    await this.#removeCgroupsLeft();
    return exited;
  }

  /** A serve that was killed leaves its actions' cgroups to the next one's sweep: when no
   * next one comes, the test removes them (a serve that shut down left none). */
  async #removeCgroupsLeft(): Promise<void> {
    const serving = this.logs.find((line) => line.msg === 'serving');
    const cgroups = serving?.cgroups as { directories: string[] } | null | undefined;
    for (const directory of cgroups?.directories ?? []) {
      try {
        await killProcesses([directory], undefined);
        removeCgroupTree(directory);
      } catch (error) {
        // Gone: a serve with the same scope prefix swept it at its start-up.
        if (!isSystemError(error, 'ENOENT')) throw error;
      }
    }
  }
}

/** grpc-js closes a closed channel's socket asynchronously, after the server has gone: let the
 * event loop turn (I/O included) until the fd count is back, at most 1000 turns; the caller's
 * assertNothingLeft then fails if it is not. */
export async function clientSocketsClosed(before: ProcessState): Promise<void> {
  for (let turn = 0; turn < 1000 && processState().fds > before.fds; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A bb_runner-style configuration for `serve` in `directory`: build directory
 * `<directory>/build`, a unix socket `<directory>/<name>.sock`, chroot with the given isolation
 * mode, `chrootRunner` settings and then top-level `extra` keys merged in. Returns the file,
 * the socket's address and the build directory. */
export function writeServeConfiguration(
  directory: string,
  name: string,
  isolation: string,
  chrootRunner: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): { file: string; socket: string; buildPath: string } {
  const socket = join(directory, `${name}.sock`);
  const file = join(directory, `${name}.json`);
  const buildPath = join(directory, 'build');
  mkdirSync(buildPath, { recursive: true });
  writeFileSync(
    file,
    JSON.stringify({
      buildDirectoryPath: buildPath,
      grpcServers: [{ listenPaths: [socket], authenticationPolicy: { allow: {} } }],
      chrootIntoInputRoot: true,
      setTmpdirEnvironmentVariable: true,
      chrootRunner: {
        isolation,
        ...chrootRunner,
        // A prefix of this test's own: a serve's start-up sweeps only scopes with its prefix
        // (of killed serves), never another suite's.
        cgroups: {
          scopePrefix: uniqueScope(name),
          ...(chrootRunner.cgroups as Record<string, unknown> | undefined),
        },
      },
      ...extra,
    }),
  );
  return { file, socket: `unix://${socket}`, buildPath };
}

/** Open fds, child processes and resident memory of another process (e.g. serve). */
export function processFootprint(pid: number): { fds: number; children: number[]; rssKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  return { fds: openFds(pid).size, children: childProcesses(pid), rssKiB: Number(rss) };
}

/** bb_runner's RelativeSearchPath case in the input root at `inputRoot`: a script
 * work/subdirectory/hello.sh that prints its working directory and $0 and exits 42, and the
 * request fields that find it through the relative PATH entry. */
export function relativeSearchPathCase(inputRoot: string) {
  mkdirSync(join(inputRoot, 'work/subdirectory'), { recursive: true });
  writeFileSync(
    join(inputRoot, 'work/subdirectory/hello.sh'),
    '#!/bin/sh\npwd\necho $0\nexit 42\n',
    {
      mode: 0o755,
    },
  );
  return {
    arguments: ['hello.sh'],
    workingDirectory: 'work',
    environmentVariables: { PATH: 'subdirectory' },
  };
}
