// The interface of a per-action resource: made for each action before its child is cloned
// (prepare), adding steps to the child's plan, torn down after the action in reverse order
// of preparation, and reporting what it measured (usage). A new one is one file of this
// folder and one line of registry.ts.
import type { DirectoryHandle } from '../../syscalls/index.js';
import type { BackgroundWork } from '../background.js';
import type { HostResources } from '../host.js';
import type { IsolationStrategy } from '../modes/mode.js';
import type { NetworkNamespacePool } from '../network-namespaces.js';
import type { PlanBuilder, Slot } from '../plan.js';
import type { PreparedCgroups } from '../prepared-cgroups.js';
import type { RequestFiles } from '../request.js';
import type { ActionSpec, Credentials, IsolationSettings } from '../types.js';
import type { HostIdRange, HostIdSlots } from './user-namespace.js';

/** What the engine is, for deciding whether a contribution applies and for sweeping. */
export interface EngineContext {
  /** The build directory's host path (opened by each action, never held). */
  readonly buildDirectoryPath: string;
  readonly settings: IsolationSettings;
  readonly strategy: IsolationStrategy;
  readonly host: HostResources;
  /** IsolationStrategy.unprivilegedActionIds for these settings and host. */
  readonly unprivilegedActionIds: boolean;
  /** Input roots held by running actions, by device and inode, shared by every action of
   * the engine. */
  readonly inputRootClaims: Set<string>;
  /** Where actions get a cgroup of their own; none when absent. */
  readonly cgroups?: PreparedCgroups;
  /** Network namespaces made ahead, for the network contribution; none when absent. */
  readonly networkNamespaces?: NetworkNamespacePool;
  /** The slots of settings.actionUserNamespace's range, for the user namespace
   * contribution; absent where it does not apply. */
  readonly hostIdSlots?: HostIdSlots;
  /** What a teardown leaves to land after the result (Engine.settled). */
  readonly background: BackgroundWork;
}

/** One action, opened: what prepare() works with. */
export interface ActionContext {
  readonly engine: EngineContext;
  readonly spec: ActionSpec;
  readonly files: RequestFiles;
}

/** Where in the child's plan a contribution's steps go, in this order:
 * - namespaces: first, in the child's new namespaces, before anything is mounted (clone
 *   flags, id maps, joining a cgroup);
 * - filesystems: once the mode made the action's root with its special mounts, before the
 *   child enters it (`root` is the root's slot);
 * - entered: once the child entered the root (pivot_root or chroot), before the working
 *   directory, stdio and privileges;
 * - exec: last, after the capabilities, credentials and no_new_privs, just before the init
 *   is executed (a new session, a keyring, a seccomp filter). */
export interface PlanContribution {
  namespaces?(plan: PlanBuilder): void;
  filesystems?(plan: PlanBuilder, root: Slot): void;
  entered?(plan: PlanBuilder): void;
  exec?(plan: PlanBuilder): void;
}

/** How the action ended, for its resources' teardown. */
export interface ActionEnd {
  /** No process of the action is left: none was started, or its init was PID 1 of the
   * action's PID namespace and has exited (the kernel killed and reaped the rest before it
   * reported the init's exit). */
  readonly processesGone: boolean;
}

/** The resource prepare() made for one action. */
export interface ActionResource {
  readonly plan?: PlanContribution;
  /** The directory the mode roots the action in instead of the input root as opened (shared
   * mode's nosuid,nodev bind of it). */
  readonly root?: DirectoryHandle | undefined;
  /** The credentials the action must switch to, also when the request names none (the root
   * of a user namespace of its own): the common credentials step sets them. */
  readonly credentials?: Credentials;
  /** The action's slot of host ids, for a mode whose clone makes its user namespace. */
  readonly hostIds?: HostIdRange;
  /** What it measured, once the action has exited and before teardown; merged into the
   * result's `usage` under the contribution's name. */
  usage?(): Readonly<Record<string, number | bigint | boolean>>;
  /** Releases it, once the init has exited (or when a later step failed). A throw (or
   * rejection) is reported as the action's internal error once every resource was torn
   * down; what it leaves to EngineContext.background is not. */
  teardown(end: ActionEnd): void | Promise<void>;
}

export interface Contribution {
  /** Names its usage and its errors. */
  readonly name: string;
  /** Whether the engine's actions need it (from the mode and the settings); asked once. */
  appliesTo(engine: EngineContext): boolean;
  /** Makes the resource for one action, in the runner, synchronously: everything before the
   * clone happens before Engine.run's first await, so an action has claimed and mounted
   * what it needs by the time run() returns its promise. A throw (ActionError for what the
   * request got wrong) fails the action after the resources made before it are torn down. */
  prepare(action: ActionContext): ActionResource;
  /** Removes what a killed runner's actions left of this resource beneath `path` (relative
   * to the build directory; '' for all of it); returns what was removed, for the log. Called
   * at start-up, before any action runs. */
  sweep?(engine: EngineContext, path: string): string[];
}

/** The resources of one action, torn down in reverse order of preparation. */
export class ResourceStack {
  readonly #resources: ActionResource[] = [];

  push(resource: ActionResource): ActionResource {
    this.#resources.push(resource);
    return resource;
  }

  get resources(): readonly ActionResource[] {
    return this.#resources;
  }

  /** Tears everything down, newest first; the first failure is thrown after all were tried,
   * so that one stuck resource does not leave the others behind. */
  async teardown(end: ActionEnd): Promise<void> {
    let failure: unknown;
    for (
      let resource = this.#resources.pop();
      resource !== undefined;
      resource = this.#resources.pop()
    ) {
      try {
        // Most teardowns are synchronous: no microtask turn for those.
        const pending = resource.teardown(end);
        if (pending !== undefined) await pending;
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }
}
