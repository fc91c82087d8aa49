// `chroot-runner demo`: serves the embedded default configuration in-process, lays out an
// input root from the host's own sh, ls, cat and realpath (with the libraries they need), and
// sends the same Runs through a gRPC client in `namespaces` mode and in `none` mode (a plain
// chroot, as bb_runner does), printing both side by side.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import type { IsolationMode } from '../sandbox/types.js';
import { RunnerClient } from '../server/client.js';
import { defaultConfigurationDocument, parseConfiguration } from '../server/config.js';
import { type RunningServer, startServer } from '../server/serve.js';
import { type HostRoot, populateHostRoot } from './host-root.js';
import { defaultDirectory } from './serve.js';

/** The host programs the demo's input root holds. */
const programs = ['sh', 'ls', 'cat', 'realpath'];

/** What each demo action shows, and its argv. */
const commands: readonly { readonly label: string; readonly argv: readonly string[] }[] = [
  { label: 'realpath /proc/self/exe', argv: ['realpath', '/proc/self/exe'] },
  { label: 'ls /proc', argv: ['ls', '/proc'] },
  {
    label: 'echo hi > /dev/null',
    argv: [
      'sh',
      '-c',
      'echo hi > /dev/null; test -c /dev/null && echo a device || echo "a file: $(cat /dev/null)"',
    ],
  },
];

interface Outcome {
  readonly exitCode: string;
  readonly output: string;
}

async function runAll(
  client: RunnerClient,
  buildDirectory: string,
  actionDirectory: string,
  mode: IsolationMode,
): Promise<Outcome[]> {
  const base = join(actionDirectory, mode);
  const outcomes: Outcome[] = [];
  for (const [index, { argv }] of commands.entries()) {
    const action = join(base, `${index}`);
    mkdirSync(join(buildDirectory, action, 'tmp'), { recursive: true });
    const response = await client.run({
      arguments: [...argv],
      environmentVariables: { PATH: '/bin' },
      inputRootDirectory: join(base, 'root'),
      temporaryDirectory: join(action, 'tmp'),
      stdoutPath: join(action, 'stdout'),
      stderrPath: join(action, 'stderr'),
    });
    const read = (name: string) => readFileSync(join(buildDirectory, action, name), 'utf8').trim();
    outcomes.push({
      exitCode: String(response.exitCode),
      output: [read('stdout').split('\n').join(' '), read('stderr')]
        .filter((text) => text !== '')
        .join(' | '),
    });
  }
  return outcomes;
}

function clip(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width);
}

export async function demo(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('chroot-runner demo: needs root (chroot, mounts and namespaces)\n');
    return 1;
  }
  const document = defaultConfigurationDocument(resolve(defaultDirectory));
  const namespaces = parseConfiguration(document);
  const buildDirectory = namespaces.buildDirectoryPath;
  mkdirSync(buildDirectory, { recursive: true });
  const noneSocket = `${namespaces.grpcServers[0]?.listenPaths[0]}-none`;
  const none = parseConfiguration(
    { ...document, grpcServers: [{ listenPaths: [noneSocket] }] },
    { isolation: 'none' },
  );

  const actionDirectory = `demo-${process.pid}`;
  const servers: RunningServer[] = [];
  const clients: RunnerClient[] = [];
  try {
    for (const configuration of [namespaces, none]) {
      servers.push(await startServer(configuration, { logLevel: 'warn' }));
    }
    const [namespacesServer, noneServer] = servers;
    let root: HostRoot | undefined;
    for (const mode of ['namespaces', 'none']) {
      root = populateHostRoot(join(buildDirectory, actionDirectory, mode, 'root'), programs);
    }
    const hostFiles = [...(root?.programs ?? [])].map(([name, host]) => `bin/${name} (${host})`);
    process.stdout.write(
      `Serving the embedded default configuration (chroot-runner serve):\n` +
        `  build directory ${relative('.', buildDirectory)}, sockets ` +
        `${namespacesServer?.grpcAddresses.join(' ')} (namespaces) and ` +
        `${noneServer?.grpcAddresses.join(' ')} (none)\n` +
        `Input root, copied from this host: ${hostFiles.join(', ')};\n` +
        `  the loader and libraries they need (from their ELF headers): ` +
        `${root?.libraries.join(', ')};\n` +
        `  /etc/ld.so.cache, and empty proc, sys, dev and tmp directories.\n` +
        `Each action runs with PATH=/bin through a gRPC Run.\n\n`,
    );
    const results: Outcome[][] = [];
    for (const [index, server] of servers.entries()) {
      const mode = index === 0 ? 'namespaces' : 'none';
      const client = new RunnerClient(server.grpcAddresses[0] ?? '');
      clients.push(client);
      results.push(await runAll(client, buildDirectory, actionDirectory, mode));
    }
    const width = 44;
    process.stdout.write(
      `${'action'.padEnd(30)}  ${clip('namespaces (chroot-runner)', width)}  none (plain chroot, as bb_runner)\n`,
    );
    for (const [index, { label }] of commands.entries()) {
      const cell = (outcome: Outcome | undefined) =>
        outcome === undefined ? '' : `exit ${outcome.exitCode}: ${outcome.output || '(no output)'}`;
      process.stdout.write(
        `${clip(label, 30)}  ${clip(cell(results[0]?.[index]), width)}  ${cell(results[1]?.[index])}\n`,
      );
    }
    return 0;
  } finally {
    for (const client of clients) client.close();
    for (const server of servers) await server.shutdown(0);
    rmSync(join(buildDirectory, actionDirectory), { recursive: true, force: true });
  }
}

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run actions through the service in namespaces and none mode, side by side')
    .action(async () => {
      process.exitCode = await demo();
    });
}
