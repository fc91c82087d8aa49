// The child's setup program for one action, in the order the kernel needs: the mode's
// namespaces and root, the contributions' steps where each phase goes, the working
// directory, stdio, privileges, and the exec of the init (native/init.c).
import { constants } from '../syscalls/index.js';
import { capabilitiesByName } from './capabilities.js';
import type { ActionResource } from './contributions/contribution.js';
import type { IsolationContext, IsolationStrategy } from './modes/mode.js';
import { PlanBuilder, runnerStep } from './plan.js';
import { ActionError, type IsolationSettings } from './types.js';

/** File descriptors of the init: the status pipe, and for a subreaper its children list. */
const statusFd = 3;
const childrenFd = 4;
/** And where it moves out of the action's cgroup (ActionCgroup.initMoves): the cgroup.procs
 * it moves itself to, and the one its child moves back to before it execs the action. */
export const initCgroupFd = 5;
export const actionCgroupFd = 6;

/** The environment as execve takes it; names with '=' and NUL bytes anywhere cannot be
 * passed on faithfully, so they are refused rather than mangled. */
function environmentStrings(environment: Readonly<Record<string, string>>): string[] {
  return Object.entries(environment).map(([name, value]) => {
    if (name === '' || name.includes('=') || name.includes('\0') || value.includes('\0')) {
      throw new ActionError(
        'invalidArgument',
        `Invalid environment variable name or value: "${name}"`,
      );
    }
    return `${name}=${value}`;
  });
}

/** The capabilities the action keeps. Where it is only chrooted (not pivoted into its own
 * mount), CAP_SYS_CHROOT would let it chroot into a subdirectory and walk ".." from its cwd,
 * now outside its root, up to the host's root: it is never kept there. Pivoted modes detach
 * the old root, so ".." finds nothing. */
export function keptCapabilities(
  strategy: IsolationStrategy,
  settings: IsolationSettings,
): readonly number[] {
  const { keepCapabilities } = settings;
  const byPivot = kept.get(keepCapabilities) ?? new Map<boolean, readonly number[]>();
  kept.set(keepCapabilities, byPivot);
  let numbers = byPivot.get(strategy.pivotsIntoRoot);
  if (numbers === undefined) {
    const names = strategy.pivotsIntoRoot
      ? keepCapabilities
      : keepCapabilities.filter((name) => name.toUpperCase().replace(/^CAP_/, '') !== 'SYS_CHROOT');
    numbers = capabilitiesByName(names);
    byPivot.set(strategy.pivotsIntoRoot, numbers);
  }
  return numbers;
}

/** keptCapabilities' answers, by the engine's setting and whether its mode pivots: the same
 * for every action. */
const kept = new WeakMap<readonly string[], Map<boolean, readonly number[]>>();

export interface PlanInputs extends IsolationContext {
  readonly strategy: IsolationStrategy;
  readonly resources: readonly ActionResource[];
  /** The program as found in the input root, for the init to execute. */
  readonly program: string;
  /** The working directory, relative to the input root. */
  readonly workingDirectory: string;
}

export function buildPlan(inputs: PlanInputs): PlanBuilder {
  const { spec, settings, host, strategy, resources } = inputs;
  const plan = new PlanBuilder();
  for (const resource of resources) resource.plan?.namespaces?.(plan);
  const root = resources.findLast((resource) => resource.root !== undefined)?.root;
  const hostIds = resources.find((resource) => resource.hostIds !== undefined)?.hostIds;
  const planned = strategy.plan(
    plan,
    root === undefined && hostIds === undefined
      ? inputs
      : {
          ...inputs,
          ...(root === undefined ? {} : { files: { ...inputs.files, inputRoot: root } }),
          ...(hostIds === undefined ? {} : { hostIds }),
        },
  );
  for (const resource of resources) resource.plan?.filesystems?.(plan, planned.root);
  planned.enter(plan);
  for (const resource of resources) resource.plan?.entered?.(plan);
  plan.chdir(
    {
      description: `enter the working directory "${spec.workingDirectory}"`,
      subject: 'workingDirectory',
    },
    planned.root,
    inputs.workingDirectory,
    constants.RESOLVE_IN_ROOT | constants.RESOLVE_NO_MAGICLINKS,
  );
  const stdio = runnerStep('set up stdin, stdout and stderr');
  if (spec.inheritStdio === true) {
    for (const fd of [0, 1, 2]) plan.dup2(stdio, plan.inherit(fd), fd);
  } else {
    // The sandbox's own /dev/null (its mknod node, or a read-only bind): through the host's,
    // a root action could chmod or touch the host's node via /proc/self/fd/0.
    const stdin =
      settings.mode !== 'none' && settings.filesystems.dev
        ? plan.open(
            runnerStep('open /dev/null in the input root for stdin'),
            planned.root,
            'dev/null',
            {
              flags: constants.O_RDONLY,
              resolve:
                constants.RESOLVE_BENEATH |
                constants.RESOLVE_NO_SYMLINKS |
                constants.RESOLVE_NO_MAGICLINKS,
            },
          )
        : plan.inherit(host.devNull.fd);
    plan.dup2(stdio, stdin, 0);
    plan.dup2(stdio, plan.inherit(inputs.files.stdout?.fd ?? -1), 1);
    plan.dup2(stdio, plan.inherit(inputs.files.stderr?.fd ?? -1), 2);
  }
  plan.dup2(stdio, plan.statusPipe(), statusFd);
  const { children } = planned;
  if (children !== undefined) plan.dup2(stdio, children, childrenFd);
  plan.cloexecFrom(stdio, children !== undefined ? childrenFd + 1 : childrenFd);
  // Bounding set first: dropping it needs CAP_SETPCAP, which a non-root uid loses.
  plan.dropBoundingCapabilities(
    runnerStep('drop capabilities from the bounding set'),
    keptCapabilities(strategy, settings),
  );
  const credentials =
    resources.find((resource) => resource.credentials !== undefined)?.credentials ??
    planned.credentials ??
    spec.credentials;
  if (credentials !== undefined && planned.credentialsSet !== true) {
    plan.setCredentials(
      runnerStep(`switch to uid ${credentials.uid}, gid ${credentials.gid}`),
      credentials.uid,
      credentials.gid,
      credentials.additionalGroups,
    );
  }
  plan.noNewPrivileges(runnerStep('set no_new_privs'));
  // After the credential change, which clears it; before the exec, so that the runner's
  // pidfd (close-on-exec) never reaches the init.
  plan.parentDeathSignal(
    runnerStep('set the parent death signal'),
    strategy.killSignal,
    host.runnerPidfd === undefined ? undefined : plan.inherit(host.runnerPidfd.fd),
  );
  for (const resource of resources) resource.plan?.exec?.(plan);
  plan.exec(
    runnerStep('execute the init'),
    plan.inherit(host.init.fd),
    ['chroot-runner-init', strategy.init, inputs.program, ...spec.arguments],
    environmentStrings(spec.environment),
  );
  return plan;
}
