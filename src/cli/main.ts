// The chroot-runner command line: each subcommand lives in its own module.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

/** The installed package's version (main.js is dist/src/cli/main.js in it). */
function packageVersion(): string {
  const manifest = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

type AddCommand = (program: Command) => void;

/** Each subcommand's module, in the order of the help. Only the one named on the command line
 * is loaded (all of them for help or an unknown name): the gRPC server's modules (grpc-js,
 * pino, prom-client, protobuf) would more than double the start-up of `run`. */
const subcommands: Record<string, () => Promise<AddCommand>> = {
  serve: async () => (await import('./serve.js')).addServeCommand,
  demo: async () => (await import('./demo.js')).addDemoCommand,
  run: async () => (await import('./run.js')).addRunCommand,
  doctor: async () => (await import('./doctor.js')).addDoctorCommand,
  'check-config': async () => (await import('./check-config.js')).addCheckConfigCommand,
};

const program = new Command('chroot-runner')
  .description('A Buildbarn runner with working /proc, /sys and /dev in chroot actions')
  .version(packageVersion(), '-V, --version', 'print the version of chroot-runner')
  .showHelpAfterError();

const named = process.argv[2];
const loaded =
  named !== undefined && Object.hasOwn(subcommands, named) ? [named] : Object.keys(subcommands);
for (const add of await Promise.all(loaded.map((name) => subcommands[name]?.()))) {
  add?.(program);
}

await program.parseAsync(process.argv);
