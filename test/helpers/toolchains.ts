// The toolchain cases of the acceptance suites: each tool, what it does, how to check it ran
// with the special filesystems, and what it does in a plain chroot without them.
import assert from 'node:assert/strict';
import { lstatSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { findRustup, hostGoBin, type Userland } from './userland.js';

/** Where one action works: a directory of its own inside the input root. */
export interface Workspace {
  /** The directory as the action sees it. */
  readonly directory: string;
  /** Host path of the input root the action runs in. */
  readonly hostRoot: string;
}

export interface Outcome {
  readonly exitCode: bigint;
  readonly terminationSignal: string;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ToolCase {
  /** The tool, as its row in README.md names it. */
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

export const cases: readonly ToolCase[] = [
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
    skip: hostGoBin() === null && 'no go on PATH (Go at /usr/local/go/bin, or Debian’s golang-go)',
    environment: (workspace, userland) => ({
      GOCACHE: userland.goCache,
      GOPATH: `${workspace.directory}/go`,
      CGO_ENABLED: '0',
    }),
    verify: (outcome, workspace) => printed(outcome, `${workspace.directory}/hello\n`),
    // The official Go finds its GOROOT through /proc/self/exe. Debian's has one compiled in;
    // then bb_runner's TMPDIR, the temporary directory's host path, which a chroot cannot see,
    // fails (with TMPDIR=/tmp, `go build` fails next on the missing /dev/null).
    withoutSpecialFilesystems: {
      fails:
        /go: cannot find GOROOT directory: 'go' binary is trimmed and GOROOT is not set|go: creating work dir: stat \S+: no such file or directory/,
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
