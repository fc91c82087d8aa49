// Real toolchains in a hermetic full-userland input root, driven the way bb_worker drives a
// runner: `chroot-runner serve` in its own process, a gRPC client on its unix socket. Each tool
// runs in `namespaces` and `shared` mode, on a plain input root and on a FUSE one (bindfs, like
// bb_worker's FUSE build directories); `none` mode (a plain chroot, as bb_runner does) shows the
// problem the project exists for. The last test prints the rows of README.md it saw.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { anyIs, anyUnpack } from '@bufbuild/protobuf/wkt';
import {
  POSIXResourceUsageSchema,
  type RunRequestSchema,
  type RunResponse,
} from '../../src/proto/index.js';
import { RunnerClient } from '../../src/server/client.js';
import { writableByActions } from '../helpers/busybox.js';
import {
  assertNothingLeft,
  mountsBeneath,
  needsRoot,
  type ProcessState,
  processState,
} from '../helpers/leaks.js';
import { processesWithArgument, processesWithEnvironment } from '../helpers/processes.js';
import { binary } from '../helpers/serve.js';
import { cases, type Outcome, type ToolCase, type Workspace } from '../helpers/toolchains.js';
import { buildUserland, removeUserland, type Userland } from '../helpers/userland.js';

type Mode = 'namespaces' | 'shared' | 'none';

const toolchainsDocument = fileURLToPath(new URL('../../../README.md', import.meta.url));
/** Long enough for javac on a loaded 2-core machine; a hung action fails instead of hanging. */
const runTimeoutMs = 120_000;
/** Longer than serve's default shutdown grace period (30 s). */
const stopTimeoutMs = 60_000;

/** Waits for a process that is not our child to exit, with a pidfd (Node has none). */
function waitForExit(pid: number): void {
  execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      'import os, select, sys\n' +
        'try:\n  fd = os.pidfd_open(int(sys.argv[1]))\nexcept ProcessLookupError:\n  sys.exit(0)\n' +
        'sys.exit(0 if select.select([fd], [], [], 30)[0] else 1)\n',
      String(pid),
    ],
    { stdio: 'inherit' },
  );
}

/** `chroot-runner serve` in one isolation mode, in its own process, and a client for it. */
class Server {
  /** What it printed: its JSON log lines. */
  private output = '';

  private constructor(
    readonly mode: Mode,
    private readonly process: ChildProcess,
    readonly client: RunnerClient,
  ) {
    process.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString();
    });
  }

  get pid(): number {
    return this.process.pid ?? -1;
  }

  /** Starts it and waits for its "serving" log line. */
  static async start(mode: Mode, suiteDirectory: string, buildDirectory: string) {
    const socket = join(suiteDirectory, `${mode}.sock`);
    const configuration = join(suiteDirectory, `${mode}.json`);
    writeFileSync(
      configuration,
      JSON.stringify({
        buildDirectoryPath: buildDirectory,
        grpcServers: [{ listenPaths: [socket], authenticationPolicy: { allow: {} } }],
        chrootIntoInputRoot: true,
        setTmpdirEnvironmentVariable: true,
      }),
    );
    const child = spawn(
      process.execPath,
      [binary, 'serve', '--config', configuration, '--isolation', mode],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const server = new Server(mode, child, new RunnerClient(`unix://${socket}`));
    const serving = new Promise<void>((resolve) =>
      createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
        server.output += `${line}\n`;
        if (/"msg":"serving"/.test(line)) resolve();
      }),
    );
    const exited = once(child, 'close').then(([code, signal]) => {
      throw new Error(`serve --isolation ${mode} exited (${code ?? signal}):\n${server.log()}`);
    });
    exited.catch(() => {});
    await Promise.race([serving, exited]);
    return server;
  }

  /** The last lines it printed. */
  log(): string {
    return this.output.split('\n').slice(-40).join('\n');
  }

  async run(request: MessageInitShape<typeof RunRequestSchema>): Promise<RunResponse> {
    try {
      return await this.client.run(request, { timeoutMs: runTimeoutMs });
    } catch (error) {
      throw new Error(`Run failed: ${(error as Error).message}\nserve log:\n${this.log()}`, {
        cause: error,
      });
    }
  }

  /** SIGTERM, as an orchestrator stops it; it must exit cleanly within its grace period. */
  async stop(): Promise<void> {
    this.client.close();
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      assert.fail(`serve --isolation ${this.mode} died early:\n${this.log()}`);
    }
    // 'close' rather than 'exit': its stdout and stderr pipes are closed too.
    const closed = once(this.process, 'close', { signal: AbortSignal.timeout(stopTimeoutMs) });
    this.process.kill('SIGTERM');
    let code: number | null;
    let signal: NodeJS.Signals | null;
    try {
      [code, signal] = await closed;
    } catch {
      const killed = once(this.process, 'close');
      this.process.kill('SIGKILL');
      await killed;
      assert.fail(
        `serve --isolation ${this.mode} was still running ${stopTimeoutMs} ms after SIGTERM`,
      );
    }
    assert.equal(
      code,
      0,
      `serve --isolation ${this.mode} exited with ${code ?? signal}:\n${this.log()}`,
    );
  }
}

/** One suite run: the fixture, its FUSE view, and a server per mode. */
interface Suite {
  readonly directory: string;
  readonly buildDirectory: string;
  readonly userland: Userland;
  /** Beneath the build directory: bindfs over the fixture. */
  readonly fuseRoot: string;
  readonly servers: Map<Mode, Server>;
  /** NAME=value set in every action's environment, to find processes that outlive it. */
  readonly marker: { readonly name: string; readonly value: string };
  readonly before: ProcessState;
  /** For the "Does it fix my tool?" table: what each tool printed in none mode, and where it
   * passed with the special filesystems. */
  readonly withoutSpecialFilesystems: Map<string, string>;
  readonly passedIn: Map<string, string[]>;
  actions: number;
}

let suite: Suite | undefined;

function current(): Suite {
  assert.ok(suite, 'the suite was not set up');
  return suite;
}

/** Sends one tool case as a Run and returns what it did. */
async function runCase(
  t: TestContext,
  toolCase: ToolCase,
  mode: Mode,
  inputRoot: string,
): Promise<{ outcome: Outcome; workspace: Workspace }> {
  const { buildDirectory, servers, userland, marker } = current();
  const id = `${++current().actions}`;
  const workspace: Workspace = {
    directory: `/work/${id}`,
    hostRoot: join(buildDirectory, inputRoot),
  };
  const hostDirectory = join(workspace.hostRoot, workspace.directory);
  for (const [name, text] of Object.entries(toolCase.files ?? {})) {
    mkdirSync(dirname(join(hostDirectory, name)), { recursive: true });
    writeFileSync(join(hostDirectory, name), text);
  }
  mkdirSync(hostDirectory, { recursive: true });
  const action = join('actions', id);
  mkdirSync(join(buildDirectory, action, 'tmp'), { recursive: true });
  // As bb_worker (umask 0) lays out the action's own directories.
  writableByActions(hostDirectory);
  writableByActions(join(buildDirectory, action, 'tmp'));
  const server = servers.get(mode);
  assert.ok(server);
  const started = performance.now();
  const response = await server.run({
    arguments: [...toolCase.argv],
    environmentVariables: {
      PATH: userland.path,
      HOME: workspace.directory,
      ...toolCase.environment?.(workspace, userland),
      [marker.name]: marker.value,
    },
    workingDirectory: workspace.directory.slice(1),
    inputRootDirectory: inputRoot,
    temporaryDirectory: join(action, 'tmp'),
    stdoutPath: join(action, 'stdout'),
    stderrPath: join(action, 'stderr'),
  });
  t.diagnostic(`Run took ${Math.round(performance.now() - started)} ms`);
  assertActionLeftNothing(server);
  const outcome: Outcome = {
    exitCode: response.exitCode,
    terminationSignal: terminationSignal(response),
    stdout: readFileSync(join(buildDirectory, action, 'stdout'), 'utf8'),
    stderr: readFileSync(join(buildDirectory, action, 'stderr'), 'utf8'),
  };
  return { outcome, workspace };
}

function terminationSignal(response: RunResponse): string {
  const usage = response.resourceUsage.find((any) => anyIs(any, POSIXResourceUsageSchema));
  return usage === undefined
    ? ''
    : (anyUnpack(usage, POSIXResourceUsageSchema)?.terminationSignal ?? '');
}

/** After a Run returns: no process of the action alive, nothing mounted beneath the build
 * directory in the server's mount namespace except the FUSE input root. */
function assertActionLeftNothing(server: Server): void {
  const { marker, buildDirectory, fuseRoot } = current();
  assert.deepEqual(
    processesWithEnvironment(`${marker.name}=${marker.value}`),
    [],
    'processes of the action still alive',
  );
  assert.deepEqual(
    mountsBeneath(buildDirectory, server.pid).filter((point) => point !== fuseRoot),
    [],
    `mounts left beneath the build directory by serve --isolation ${server.mode}`,
  );
}

function testsWithSpecialFilesystems(mode: 'namespaces' | 'shared', inputRoot: string) {
  for (const toolCase of cases) {
    if (toolCase.namespacesOnly && mode !== 'namespaces') continue;
    test(`${toolCase.tool}: ${toolCase.what}`, { skip: toolCase.skip }, async (t) => {
      const { outcome, workspace } = await runCase(t, toolCase, mode, inputRoot);
      toolCase.verify(outcome, workspace);
      const { passedIn } = current();
      passedIn.set(toolCase.tool, [
        ...(passedIn.get(toolCase.tool) ?? []),
        `${mode} (${inputRoot})`,
      ]);
    });
  }
}

describe('real toolchains through chroot-runner serve', { skip: needsRoot }, () => {
  before(async () => {
    const before = processState();
    const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-acceptance-'));
    const buildDirectory = join(directory, 'build');
    const fuseRoot = join(buildDirectory, 'fuse-root');
    let userland: Userland;
    try {
      userland = buildUserland(join(buildDirectory, 'root'));
      // rustup's proxy writes beneath its home, a directory made by buildUserland (what is in
      // it stays the host's): writable by the action's ids, as bb_worker's directories are.
      if (userland.rustup !== null) chmodSync(join(userland.root, userland.rustup.home), 0o777);
      mkdirSync(fuseRoot);
      // bindfs daemonises once the mount is in place.
      execFileSync('bindfs', [userland.root, fuseRoot]);
    } catch (error) {
      rmSync(directory, { recursive: true, force: true });
      throw error;
    }
    suite = {
      directory,
      buildDirectory,
      userland,
      fuseRoot,
      servers: new Map(),
      marker: { name: 'CHROOT_RUNNER_ACCEPTANCE', value: basename(directory) },
      before,
      withoutSpecialFilesystems: new Map(),
      passedIn: new Map(),
      actions: 0,
    };
    for (const mode of ['namespaces', 'shared', 'none'] as const) {
      suite.servers.set(mode, await Server.start(mode, directory, buildDirectory));
    }
  });

  after(async () => {
    if (suite === undefined) return;
    const { directory, servers, fuseRoot, userland, before } = suite;
    const failures: unknown[] = [];
    for (const server of servers.values()) {
      await server.stop().catch((error) => failures.push(error));
    }
    // The bindfs daemon is the one process with the mountpoint among its arguments.
    const [bindfs] = processesWithArgument(fuseRoot);
    execFileSync('fusermount', ['-u', fuseRoot]);
    if (bindfs !== undefined) waitForExit(bindfs);
    else failures.push(new Error('the bindfs process serving the FUSE input root was gone'));
    const removing = performance.now();
    removeUserland(userland.root);
    rmSync(directory, { recursive: true, force: true });
    const removeSeconds = (performance.now() - removing) / 1000;
    console.log(`removing the input root took ${removeSeconds.toFixed(1)} s`);
    assert.deepEqual(failures, []);
    assertNothingLeft(before, [directory]);
  });

  test('the fixture: a full userland input root', (t) => {
    const { userland } = current();
    t.diagnostic(
      `built in ${userland.buildSeconds.toFixed(1)} s with ${userland.copyMethod}; ` +
        `Rust toolchain at ${userland.rustToolchainBin}`,
    );
    for (const path of ['usr/bin/sh', 'etc/passwd', 'proc', 'sys', 'dev', 'tmp']) {
      lstatSync(join(userland.root, path));
    }
    lstatSync(join(userland.root, userland.rustToolchainBin, 'rustc'));
  });

  for (const mode of ['namespaces', 'shared'] as const) {
    describe(`${mode} mode`, () => testsWithSpecialFilesystems(mode, 'root'));
  }

  describe('none mode (a plain chroot, as bb_runner does): the problem, reproduced', () => {
    for (const toolCase of cases) {
      test(`${toolCase.tool}: ${toolCase.what}`, { skip: toolCase.skip }, async (t) => {
        const { outcome, workspace } = await runCase(t, toolCase, 'none', 'root');
        const expectation = toolCase.withoutSpecialFilesystems;
        let row: string;
        if ('fails' in expectation) {
          assert.notEqual(outcome.exitCode, 0n, `succeeded:\n${outcome.stdout}`);
          const line = outcome.stderr.split('\n').find((text) => expectation.fails.test(text));
          assert.ok(line, `stderr does not match ${expectation.fails}:\n${outcome.stderr}`);
          row = line.includes('`') ? `\`\` ${line.trim()} \`\`` : `\`${line.trim()}\``;
        } else {
          row = expectation.verify(outcome, workspace);
        }
        current().withoutSpecialFilesystems.set(toolCase.tool, row);
        t.diagnostic(`| ${toolCase.tool} | ${row} |`);
      });
    }
  });

  describe('FUSE input root (bindfs, like bb_worker’s FUSE build directories)', () => {
    before(() => {
      // bb_worker's input roots hold only the action's inputs: the runner must create the
      // mountpoints itself, through FUSE.
      for (const name of ['proc', 'sys', 'dev']) rmdirSync(join(current().fuseRoot, name));
      rmSync(join(current().fuseRoot, 'tmp'), { recursive: true });
    });
    for (const mode of ['namespaces', 'shared'] as const) {
      describe(`${mode} mode`, () => testsWithSpecialFilesystems(mode, 'fuse-root'));
    }
  });

  test('README.md has a row for every tool (this prints the rows seen)', (t) => {
    const { withoutSpecialFilesystems, passedIn } = current();
    for (const { tool } of cases) {
      const passed = passedIn.get(tool)?.join(', ') ?? 'did not pass';
      t.diagnostic(`| ${tool} | ${withoutSpecialFilesystems.get(tool) ?? 'not run'} | ${passed} |`);
    }
    const document = readFileSync(toolchainsDocument, 'utf8');
    for (const toolCase of cases) {
      // Biome pads the table's cells.
      const row = new RegExp(`^\\| ${toolCase.tool.replace(/[^\w ]/g, '\\$&')} +\\|`, 'm');
      assert.match(document, row, `no row for ${toolCase.tool}`);
    }
  });
});
