// The chroot-runner command line: each subcommand lives in its own module.
import { Command } from 'commander';
import { addDemoCommand } from './demo.js';
import { addDoctorCommand } from './doctor.js';
import { addRunCommand } from './run.js';
import { addServeCommand } from './serve.js';

const program = new Command('chroot-runner')
  .description('A Buildbarn runner with working /proc, /sys and /dev in chroot actions')
  .showHelpAfterError();

addServeCommand(program);
addDemoCommand(program);
addRunCommand(program);
addDoctorCommand(program);

await program.parseAsync(process.argv);
