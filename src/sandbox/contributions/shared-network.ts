// Shared mode's network namespace (namespaces and rootless mode make theirs with their other
// namespaces): only loopback, up.
import { constants } from '../../syscalls/index.js';
import { runnerStep } from '../plan.js';
import type { Contribution } from './contribution.js';

export const sharedNetwork: Contribution = {
  name: 'network',
  appliesTo: (engine) => engine.settings.mode === 'shared' && engine.settings.network,
  prepare: () => ({
    plan: {
      namespaces: (plan) => {
        plan.cloneFlags |= constants.CLONE_NEWNET;
        plan.loopbackUp(runnerStep('bring the loopback interface up'));
      },
    },
    teardown: () => {},
  }),
};
