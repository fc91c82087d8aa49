// The interface of an isolation mode: everything the engine, the runner and doctor need to
// know about one. A mode is one file of this folder and one line of registry.ts; nothing
// outside this folder asks a mode's name.
import type { HostIdRange } from '../contributions/user-namespace.js';
import type { SpecialMountsSubject } from '../filesystems.js';
import type { HostResources } from '../host.js';
import type { PlanBuilder, Slot } from '../plan.js';
import type { RequestFiles } from '../request.js';
import type { ActionSpec, Credentials, IsolationSettings } from '../types.js';
import type { HostFindings, Requirement } from './requirements.js';

/** What a mode's part of the plan gets. */
export interface IsolationContext {
  readonly spec: ActionSpec;
  readonly settings: IsolationSettings;
  readonly host: HostResources;
  readonly files: RequestFiles;
  /** What the mode's prepare() made, once per engine (the template mount namespace). */
  readonly prepared: PreparedMode;
  /** The action's slot of actionUserNamespace's range, for a mode whose clone makes the user
   * namespace (userNamespaceByClone); absent where none was claimed. */
  readonly hostIds?: HostIdRange;
  /** IsolationStrategy.unprivilegedActionIds for the engine's settings and host. */
  readonly unprivilegedActionIds: boolean;
}

/** What a mode's plan leaves for the common steps after it. */
export interface PlannedRoot {
  /** The slot of the action's root directory, to enter and resolve the working directory in. */
  readonly root: Slot;
  /** Enters the root (pivot_root or chroot): after the contributions' filesystem steps. */
  readonly enter: (plan: PlanBuilder) => void;
  /** The init's children list (subreaper inits), dup'ed to fd 4. */
  readonly children?: Slot;
  /** The mode's user namespace maps already made the action's credentials. */
  readonly credentialsSet?: boolean;
  /** The ids the child switches to, when the mode decides them (rootless mode's range). */
  readonly credentials?: Credentials;
}

/** What a mode's prepare() makes things for: the engine's special filesystems, on its host,
 * for its actions' ids. */
export type PrepareSubject = SpecialMountsSubject;

/** What a mode holds for the engine's lifetime. */
export interface PreparedMode {
  close(): void;
}

export const nothingPrepared: PreparedMode = { close: () => {} };

export interface IsolationStrategy {
  readonly name: string;
  /** One line for --help and doctor. */
  readonly summary: string;
  /** How the init runs: PID 1 of the action's own PID namespace (the kernel kills what is
   * left when it exits), or a child subreaper in the runner's that kills its tree itself. */
  readonly init: 'pid1' | 'subreaper';
  /** The signal that ends the whole action from outside: for a pid1 init SIGKILL (its
   * namespace dies with it), for a subreaper SIGTERM (it kills its tree, then exits). */
  readonly killSignal: number;
  /** Whether the action's root is a mount of its own that it pivoted into: ".." from a
   * chroot inside finds nothing above it, so CAP_SYS_CHROOT may be kept. */
  readonly pivotsIntoRoot: boolean;
  /** Whether the child sets up as the runner's (root's) own ids, so that the action would run
   * as host ids unless it gets a user namespace of its own (contributions/user-namespace.ts)
   * once its root is made. Such a child may also enter a network namespace the runner made
   * ahead (contributions/network.ts). */
  readonly actionUserNamespace: boolean;
  /** Whether the action's clone makes its user namespace (rootless mode), mapped to a slot
   * of actionUserNamespace's range (IsolationContext.hostIds) when the runner may map any
   * ids (HostResources.mapsAnyIds), and owned by that slot's uid 0. */
  readonly userNamespaceByClone: boolean;
  /** Whether every action of an engine with these settings on this host runs in a user
   * namespace of its own whose ids are host ids other than uid 0 (its uid 0 too): the kernel
   * then refuses it the host root's files that grant others nothing, whatever capabilities
   * it holds there, and the table's masks and read-only binds of those are not made
   * (HostResources.hostRootOnlyEntries). Decided once per engine; false where an action may
   * be the host's uid 0 (no user namespace, or one mapping 0 to 0). */
  unprivilegedActionIds(settings: IsolationSettings, host: HostResources): boolean;
  /** Where the special mounts are made: in the action's own mount namespace by the child
   * ('action'), in the runner's by mountat ('runner': shared-mode mounts, swept at
   * start-up), or not at all ('none'). */
  readonly specialMounts: 'action' | 'runner' | 'none';
  /** Whether the request's temporary directory appears at /tmp inside (TMPDIR=/tmp), rather
   * than at its host path. */
  temporaryDirectoryInside(settings: IsolationSettings): boolean;
  /** Modes with actionUserNamespace: what the child does before it unshares the action's
   * user namespace that changes whether the kernel grants one, for the engine's probe at open
   * (namespaces mode enters a mount namespace of its own, so a chrooted runner does not
   * matter to it). Nothing when absent. */
  planUserNamespaceProbe?(plan: PlanBuilder, prepared: PreparedMode): void;
  /** Makes what every action of this mode needs beyond the host resources, once per engine:
   * for actions with `subject`'s special filesystems on its host where given. */
  prepare(subject?: PrepareSubject): Promise<PreparedMode>;
  /** The mode's part of the child's plan: its namespaces (clone flags), its root and the
   * special mounts in it; the caller enters the root with `enter` once the contributions
   * added their filesystem steps. */
  plan(plan: PlanBuilder, context: IsolationContext): PlannedRoot;
  /** What the mode requires of the host, from doctor's findings. */
  requirements(findings: HostFindings): readonly Requirement[];
  /** A shell command that succeeds in a probe action of this mode (doctor --probe). */
  readonly probeScript: string;
}

/** Modes whose child unshares the action's user namespace (contributions/user-namespace.ts):
 * its ids are the range's, above firstHostId, or the request's other than 0, mapped to
 * themselves; without a range they are the host's own. */
export function unprivilegedWithRange(settings: IsolationSettings): boolean {
  return (settings.actionUserNamespace?.firstHostId ?? 0) > 0;
}
