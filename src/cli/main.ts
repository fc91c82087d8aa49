// The chroot-runner command line: each subcommand lives in its own module.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { addCheckConfigCommand } from './check-config.js';
import { addDemoCommand } from './demo.js';
import { addDoctorCommand } from './doctor.js';
import { addRunCommand } from './run.js';
import { addServeCommand } from './serve.js';

/** The installed package's version (main.js is dist/src/cli/main.js in it). */
function packageVersion(): string {
  const manifest = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version;
}

const program = new Command('chroot-runner')
  .description('A Buildbarn runner with working /proc, /sys and /dev in chroot actions')
  .version(packageVersion(), '-V, --version', 'print the version of chroot-runner')
  .showHelpAfterError();

addServeCommand(program);
addDemoCommand(program);
addRunCommand(program);
addDoctorCommand(program);
addCheckConfigCommand(program);

await program.parseAsync(process.argv);
