// A runner process for hostile-third.test.ts's T5: spawns a plan whose child announces that it
// has started (opening FIFO argv[2] for writing), waits (opening FIFO argv[3] for reading),
// sets its parent death signal (checking, through a pidfd of this process, that it still
// runs), and runs `echo alive` into fd 3 (a pipe to the test). The test kills this process
// while the child waits: a child that outlives its runner says so.
import { constants as osConstants } from 'node:os';
import { HostResources } from '../../src/sandbox/host.js';
import { cwd, PlanBuilder, runnerStep } from '../../src/sandbox/plan.js';
import { constants } from '../../src/syscalls/index.js';
import { spawn } from '../../src/syscalls/process.js';

const [started, gate] = process.argv.slice(2);
if (started === undefined || gate === undefined) throw new TypeError('orphaned-plan STARTED GATE');
const plan = new PlanBuilder();
const step = runnerStep('orphaned');
const output = plan.inherit(3);
plan.open(step, cwd, started, { flags: constants.O_WRONLY, resolve: 0 });
plan.open(step, cwd, gate, { flags: constants.O_RDONLY, resolve: 0 });
// The runner's pidfd as the Engine holds it for every action's plan.
const { runnerPidfd } = HostResources.open();
const runnerSlot = runnerPidfd === undefined ? undefined : plan.inherit(runnerPidfd.fd);
plan.parentDeathSignal(step, osConstants.signals.SIGKILL, runnerSlot);
plan.dup2(step, output, 1);
const shell = plan.open(step, cwd, '/bin/sh', { flags: constants.O_PATH, resolve: 0 });
plan.exec(step, shell, ['sh', '-c', 'echo alive'], []);
await spawn(plan.build());
