// The chroot-runner command line: each subcommand lives in its own module.
import { Command } from 'commander';

const program = new Command('chroot-runner')
  .description('A Buildbarn runner with working /proc, /sys and /dev in chroot actions')
  .showHelpAfterError();

await program.parseAsync(process.argv);
