// The seccomp filter (src/sandbox/seccomp.ts), compiled once per configuration and loaded by
// the child as its last step before exec.
import { isSystemError } from '../../syscalls/index.js';
import { seccompLibrary } from '../../syscalls/process.js';
import { runnerStep } from '../plan.js';
import { seccompProgram } from '../seccomp.js';
import { ActionError } from '../types.js';
import type { Contribution } from './contribution.js';

export const seccompFilter: Contribution = {
  name: 'seccomp',
  appliesTo: (engine) => engine.settings.seccomp.enabled,
  prepare: ({ engine }) => {
    let program: Buffer;
    try {
      program = seccompProgram(engine.settings.seccomp);
    } catch (error) {
      if (!isSystemError(error)) throw error;
      throw new ActionError(
        'internal',
        `Failed to compile the seccomp filter: ${error.message} (${seccompLibrary.fix}, or set ` +
          'chrootRunner.seccomp.enabled to false)',
        error,
      );
    }
    return {
      plan: { exec: (plan) => plan.seccomp(runnerStep('load the seccomp filter'), program) },
      teardown: () => {},
    };
  },
};
