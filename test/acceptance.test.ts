// Real toolchains in a hermetic full-userland input root, driven the way bb_worker drives a
// runner: `chroot-runner serve` in its own process, a gRPC client on its unix socket. Each tool
// runs in `namespaces` and `shared` mode, on a plain input root and on a FUSE one (bindfs, like
// bb_worker's FUSE build directories); `none` mode (a plain chroot, as bb_runner does) shows the
// problem the project exists for. The last test prints the rows of docs/toolchains.md it saw.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  unlinkSync,
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
} from '../src/proto/index.js';
import { RunnerClient } from '../src/server/client.js';
import {
  assertNothingLeft,
  mountsBeneath,
  needsRoot,
  type ProcessState,
  processState,
} from './helpers/leaks.js';
import { processesWithArgument } from './helpers/processes.js';
import { buildUserland, findRustup, removeUserland, type Userland } from './helpers/userland.js';

type Mode = 'namespaces' | 'shared' | 'none';

const chrootRunner = fileURLToPath(new URL('../../bin/chroot-runner.js', import.meta.url));
const toolchainsDocument = fileURLToPath(new URL('../../docs/toolchains.md', import.meta.url));
/** Long enough for javac on a loaded 2-core machine; a hung action fails instead of hanging. */
const runTimeoutMs = 120_000;
/** Longer than serve's default shutdown grace period (30 s). */
const stopTimeoutMs = 60_000;

/** Where one action works: a directory of its own inside the input root. */
interface Workspace {
  /** The directory as the action sees it. */
  readonly directory: string;
  /** Host path of the input root the action runs in. */
  readonly hostRoot: string;
}

interface Outcome {
  readonly exitCode: bigint;
  readonly terminationSignal: string;
  readonly stdout: string;
  readonly stderr: string;
}

interface ToolCase {
  /** The tool, as its row in docs/toolchains.md names it. */
  readonly tool: string;
  readonly what: string;
  readonly files?: Readonly<Record<string, string>>;
  readonly argv: readonly string[];
  readonly environment?: (workspace: Workspace, userland: Userland) => Record<string, string>;
  /** Only meaningful with a PID namespace. */
  readonly namespacesOnly?: boolean;
  /** Why the host cannot run it, if it cannot. */
  readonly skip?: string | false;
  /** Checks a run with the special filesystems in place. */
  readonly verify: (outcome: Outcome, workspace: Workspace) => void;
  /** What happens in a plain chroot: the action fails with this message on stderr, or
   * `verify` checks what it did instead. */
  readonly withoutSpecialFilesystems:
    | { readonly fails: RegExp }
    | { readonly verify: (outcome: Outcome, workspace: Workspace) => string };
}

function succeeded(outcome: Outcome): void {
  assert.equal(
    outcome.exitCode,
    0n,
    `exit code ${outcome.exitCode} ${outcome.terminationSignal}\nstdout:\n${outcome.stdout}\nstderr:\n${outcome.stderr}`,
  );
}

function printed(outcome: Outcome, expected: string): void {
  succeeded(outcome);
  assert.equal(outcome.stdout, expected);
}

const rustProgram = 'fn main() { println!("{}", std::env::current_exe().unwrap().display()); }\n';

const cases: readonly ToolCase[] = [
  {
    tool: 'rustc',
    what: 'compiles and runs a program printing std::env::current_exe()',
    files: { 'hello.rs': rustProgram },
    argv: ['sh', '-ec', 'rustc -o hello hello.rs; ./hello'],
    verify: (outcome, workspace) => printed(outcome, `${workspace.directory}/hello\n`),
    withoutSpecialFilesystems: {
      fails: /librustc_driver-\w+\.so: cannot open shared object file/,
    },
  },
  {
    tool: 'rustc through rustup’s proxy',
    what: 'rustc --version through ~/.cargo/bin/rustc',
    argv: ['rustc', '--version'],
    skip: findRustup() === null && 'the host’s Rust is not managed by rustup',
    environment: (_workspace, userland) => {
      assert.ok(userland.rustup, 'the host’s Rust is not managed by rustup');
      return {
        PATH: `${userland.rustup.cargoHome}/bin:/usr/bin:/bin`,
        RUSTUP_HOME: userland.rustup.home,
      };
    },
    verify: (outcome) => {
      succeeded(outcome);
      assert.match(outcome.stdout, /^rustc \d+\.\d+\.\d+/);
    },
    withoutSpecialFilesystems: { fails: /no \/proc\/self\/exe available\. Is \/proc mounted\?/ },
  },
  {
    tool: 'cargo',
    what: 'builds a crate without dependencies offline and runs it',
    files: {
      'Cargo.toml': '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n',
      'src/main.rs': rustProgram,
    },
    argv: ['sh', '-ec', 'cargo build --offline --quiet; ./target/debug/hello'],
    environment: (workspace) => ({ CARGO_HOME: `${workspace.directory}/.cargo` }),
    verify: (outcome, workspace) => printed(outcome, `${workspace.directory}/target/debug/hello\n`),
    withoutSpecialFilesystems: {
      fails: /could not execute process `rustc -vV` \(never executed\)/,
    },
  },
  {
    tool: 'javac, java',
    what: 'compiles a class and runs it',
    files: {
      'Hello.java':
        'public class Hello {\n  public static void main(String[] arguments) {\n' +
        '    System.out.println("hello from " + System.getProperty("java.home"));\n  }\n}\n',
    },
    argv: ['sh', '-ec', 'javac -d . Hello.java; java -cp . Hello'],
    verify: (outcome) => {
      succeeded(outcome);
      assert.match(outcome.stdout, /^hello from \/usr\/lib\/jvm\/[^\n]+\n$/);
    },
    withoutSpecialFilesystems: { fails: /libjli\.so: cannot open shared object file/ },
  },
  {
    tool: 'go',
    what: 'builds and runs a program printing os.Executable()',
    files: {
      'main.go':
        'package main\n\nimport (\n\t"fmt"\n\t"os"\n)\n\nfunc main() {\n' +
        '\tpath, err := os.Executable()\n\tif err != nil {\n\t\tpanic(err)\n\t}\n' +
        '\tfmt.Println(path)\n}\n',
    },
    argv: ['sh', '-ec', 'go build -o hello main.go; ./hello'],
    environment: (workspace) => ({
      GOCACHE: `${workspace.directory}/.cache/go`,
      GOPATH: `${workspace.directory}/go`,
      CGO_ENABLED: '0',
    }),
    verify: (outcome, workspace) => printed(outcome, `${workspace.directory}/hello\n`),
    // bb_runner's TMPDIR is the temporary directory's host path, which a chroot cannot see;
    // with TMPDIR=/tmp, `go build` fails next on the missing /dev/null.
    withoutSpecialFilesystems: {
      fails: /go: creating work dir: stat \S+: no such file or directory/,
    },
  },
  {
    tool: 'node',
    what: 'reads /proc/self/exe and /proc/self/fd',
    files: {
      'main.js':
        "const fs = require('node:fs');\nconsole.log(fs.readlinkSync('/proc/self/exe'));\n" +
        "console.log(fs.readdirSync('/proc/self/fd').join(' '));\n",
    },
    argv: ['node', 'main.js'],
    verify: (outcome) => {
      succeeded(outcome);
      const [executable, fds] = outcome.stdout.split('\n');
      assert.equal(executable, '/usr/bin/node');
      assert.deepEqual(
        fds
          ?.split(' ')
          .filter((fd) => Number(fd) <= 2)
          .sort(),
        ['0', '1', '2'],
      );
    },
    withoutSpecialFilesystems: {
      fails: /ENOENT: no such file or directory, readlink '\/proc\/self\/exe'/,
    },
  },
  {
    tool: 'python3',
    what: 'reads /proc/self/exe',
    argv: ['python3', '-c', 'import os; print(os.readlink("/proc/self/exe"))'],
    verify: (outcome) => {
      succeeded(outcome);
      assert.match(outcome.stdout, /^\/usr\/bin\/python3[.\d]*\n$/);
    },
    withoutSpecialFilesystems: {
      fails: /FileNotFoundError: \[Errno 2\] No such file or directory: '\/proc\/self\/exe'/,
    },
  },
  {
    tool: 'gcc',
    what: 'compiles, links and runs a C program',
    files: { 'hello.c': '#include <stdio.h>\n\nint main(void) {\n  puts("hello from C");\n}\n' },
    argv: ['sh', '-ec', 'gcc -o hello hello.c; ./hello'],
    verify: (outcome) => printed(outcome, 'hello from C\n'),
    withoutSpecialFilesystems: {
      verify: (outcome) => {
        printed(outcome, 'hello from C\n');
        return 'works';
      },
    },
  },
  {
    tool: 'bash process substitution',
    what: 'cat <(echo ok)',
    argv: ['bash', '-c', 'cat <(echo ok)'],
    verify: (outcome) => printed(outcome, 'ok\n'),
    withoutSpecialFilesystems: { fails: /\/dev\/fd\/\d+: No such file or directory/ },
  },
  {
    tool: 'heredoc through /dev/stdin',
    what: 'cat /dev/stdin <<EOF',
    argv: ['bash', '-c', 'cat /dev/stdin <<EOF\nfrom a heredoc\nEOF'],
    verify: (outcome) => printed(outcome, 'from a heredoc\n'),
    withoutSpecialFilesystems: { fails: /\/dev\/stdin: No such file or directory/ },
  },
  {
    tool: 'echo > /dev/null',
    what: 'writes to /dev/null and checks it is a character device',
    argv: ['bash', '-c', 'echo hi > /dev/null; if [ -c /dev/null ]; then echo device; fi'],
    verify: (outcome, workspace) => {
      printed(outcome, 'device\n');
      assert.ok(!isRegularFile(join(workspace.hostRoot, 'dev/null')), 'dev/null left behind');
    },
    withoutSpecialFilesystems: {
      verify: (outcome, workspace) => {
        printed(outcome, '');
        const leftBehind = join(workspace.hostRoot, 'dev/null');
        assert.ok(isRegularFile(leftBehind), 'expected a regular file dev/null in the input root');
        unlinkSync(leftBehind);
        return 'exit code 0, and a regular file `dev/null` appears in the input root';
      },
    },
  },
  {
    tool: 'ps -e',
    what: 'lists the processes it can see',
    argv: ['ps', '-e', '-o', 'pid=,comm='],
    namespacesOnly: true,
    verify: (outcome) => {
      succeeded(outcome);
      const processes = outcome.stdout.trim().split('\n');
      // The action's init (PID 1) and ps itself; the host has many more.
      assert.ok(processes.length <= 2, `sees other processes:\n${outcome.stdout}`);
      assert.match(processes.at(-1) ?? '', /^\s*\d+ ps$/);
    },
    withoutSpecialFilesystems: { fails: /mount -t proc proc \/proc/ },
  },
];

function isRegularFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Mount points at or beneath `directory` in another process's mount namespace. */
/** Processes whose environment holds `variable`: every process an action started has it. */
function processesWithEnvironment(variable: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(variable)) {
        found.push(Number(entry));
      }
    } catch {
      // The process exited while the table was read.
    }
  }
  return found;
}

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
      [chrootRunner, 'serve', '--config', configuration, '--isolation', mode],
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

  test('docs/toolchains.md has a row for every tool (this prints the rows seen)', (t) => {
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
