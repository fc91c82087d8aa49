// Every action's own session and keyring: setsid (no controlling terminal, so TIOCSTI and
// /dev/tty reach no operator's terminal) first in the child, and a new anonymous session
// keyring once the credentials are the action's (none of the runner's keys are possessed).
import { runnerStep } from '../plan.js';
import type { Contribution } from './contribution.js';

export const session: Contribution = {
  name: 'session',
  appliesTo: () => true,
  prepare: () => ({
    plan: {
      namespaces: (plan) => plan.newSession(runnerStep('start a new session')),
      exec: (plan) => plan.joinSessionKeyring(runnerStep('join a new session keyring')),
    },
    teardown: () => {},
  }),
};
