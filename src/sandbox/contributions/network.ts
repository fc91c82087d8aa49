// The action's network namespace in namespaces and shared mode: only loopback, up. Their
// child is the runner's root when it enters its namespaces, so a namespace the runner made
// ahead (network-namespaces.ts) is the same as one of its own clone: the child enters one
// from the engine's pool, or, when the pool is empty (or off), clones a new one. Rootless
// mode's child is in the action's user namespace from its clone on, and its network
// namespace must be owned by that one: the mode makes it with its other namespaces. A
// namespace of the pool goes back to it at teardown, which gives it again only if the action
// left it untouched (network-namespaces.ts).
import { constants } from '../../syscalls/index.js';
import { runnerStep } from '../plan.js';
import type { Contribution } from './contribution.js';

export const network: Contribution = {
  name: 'network',
  appliesTo: ({ strategy, settings }) => strategy.actionUserNamespace && settings.network,
  prepare({ engine }) {
    const pool = engine.networkNamespaces;
    const prepared = pool?.take();
    return {
      plan: {
        namespaces: (plan) => {
          if (prepared === undefined) {
            plan.cloneFlags |= constants.CLONE_NEWNET;
            plan.loopbackUp(runnerStep('bring the loopback interface up'));
          } else {
            plan.setns(
              runnerStep('enter the network namespace made ahead'),
              plan.inherit(prepared.namespace.fd),
              constants.CLONE_NEWNET,
            );
          }
        },
      },
      usage: () => ({
        preparedAhead: prepared !== undefined,
        reused: prepared !== undefined && prepared.uses > 0,
      }),
      // The child entered it: the namespace lives as long as the action's processes. The
      // check and the refill are not waited for (Engine.settled is there for that).
      teardown: ({ processesGone }) => {
        if (prepared !== undefined) pool?.giveBack(prepared, processesGone);
      },
    };
  },
};
