// Every action's own session: setsid first in the child (no controlling terminal, so TIOCSTI
// and /dev/tty reach no operator's terminal). A new anonymous session keyring, once the
// credentials are the action's, where the seccomp filter lets the action use keys at all: the
// filter's `keys` entry refuses add_key, keyctl and request_key, and joining costs about as
// much as the rest of an action's set-up here (measured in the report of issue 13).
import { runnerStep } from '../plan.js';
import type { Contribution } from './contribution.js';

export const session: Contribution = {
  name: 'session',
  appliesTo: () => true,
  prepare: ({ engine }) => {
    const { seccomp } = engine.settings;
    const keysAllowed = !seccomp.enabled || seccomp.allow.includes('keys');
    return {
      plan: {
        namespaces: (plan) => plan.newSession(runnerStep('start a new session')),
        ...(keysAllowed
          ? { exec: (plan) => plan.joinSessionKeyring(runnerStep('join a new session keyring')) }
          : {}),
      },
      teardown: () => {},
    };
  },
};
