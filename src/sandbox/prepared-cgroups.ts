// Action cgroups made ahead of their actions: making one (a mkdir and the limits on each
// hierarchy, its directories opened: 0.25 ms of the event loop on this host's five v1
// hierarchies) depends on nothing of the request. The engine makes them off the event loop,
// each in one job of libuv's thread pool: a child sharing the runner's fd table runs the
// cgroup's recipe as a plan (one dispatch; the fs module's would cost 25–50 µs of the event
// loop per syscall here), and refills after each take. An action that finds none ready makes
// its own at once, as without them: it never waits. Each serves one action at a time: once no
// process of its action is left, a cgroup that can be recycled (v1's: ActionCgroup.recycle)
// comes back for a later action while fewer than `size` are ready, and is removed otherwise;
// the pool makes new ones only while those it has, ready and lent, are fewer than `size`. They
// are cgroups of the runner's scope like any action's: a killed runner's are swept with its
// scope (CgroupTree.sweep), and close() removes those ready and, once back, those lent.
import {
  type ActionCgroup,
  abandonCgroup,
  type CgroupLimits,
  type CgroupRecipe,
  type CgroupTree,
} from '../cgroups/index.js';
import { constants, DirectoryHandle } from '../syscalls/index.js';
import { runInRunnerFdTable } from '../syscalls/process.js';
import { cwd, PlanBuilder, runnerStep, type Slot } from './plan.js';

/** Makes the recipe's cgroup in a child that shares the runner's fd table; resolves with
 * its directories, opened in the recipe's order. */
async function makeAhead(recipe: CgroupRecipe): Promise<DirectoryHandle[]> {
  const plan = new PlanBuilder();
  plan.cloneFlags = constants.CLONE_FILES;
  const info = runnerStep("make an action's cgroup ahead");
  const opened: Slot[] = [];
  for (const { path, writes } of recipe.directories) {
    plan.mkdirat(info, cwd, path, 0o755);
    const directory = plan.open(info, cwd, path, {
      flags: constants.O_PATH | constants.O_DIRECTORY,
      resolve: 0,
    });
    opened.push(directory);
    for (const [file, value] of writes) plan.writeFile(info, directory, file, value);
  }
  plan.exit(info);
  let slots: Int32Array;
  try {
    slots = await runInRunnerFdTable(plan.build());
  } catch (error) {
    abandonCgroup(recipe);
    throw error;
  }
  return opened.map((slot) => new DirectoryHandle(slots[slot] ?? -1));
}

/** Names the cgroups of every engine of this process: several may share a tree. */
let made = 0;

export class PreparedCgroups {
  readonly #ready: ActionCgroup[] = [];
  /** Cgroups taken that come back (recycle()) once their actions are over. */
  #lent = 0;
  /** Creations under way: settled() and close() wait for them. */
  readonly #pending = new Set<Promise<void>>();
  #closed = false;
  /** The first removal that failed of one made once the pool was closed, for close(). */
  #failure: unknown;

  constructor(
    readonly tree: CgroupTree,
    readonly limits: CgroupLimits,
    readonly size: number,
    /** ActionCgroups.enterAtClone. */
    readonly enterAtClone?: boolean,
  ) {}

  /** Starts what is missing; resolves once each creation succeeded or failed. */
  fill(): Promise<void> {
    while (!this.#closed && this.#ready.length + this.#pending.size + this.#lent < this.size) {
      const creation: Promise<void> = this.#makeOne().then(
        async (cgroup) => {
          if (!this.#closed) {
            this.#ready.push(cgroup);
            return;
          }
          try {
            await cgroup.remove();
          } catch (error) {
            this.#failure ??= error;
          }
        },
        // Short of one: the next action makes its own, and reports what the kernel refuses.
        () => {},
      );
      this.#pending.add(creation);
      void creation.finally(() => this.#pending.delete(creation));
    }
    return this.settled();
  }

  /** Resolves once the creations under way landed. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /** A cgroup for one action, the caller's to remove: one made ahead, or one made now
   * (throwing what the kernel refused). */
  take(): ActionCgroup {
    const cgroup = this.#ready.shift() ?? this.tree.create(this.#nextName(), this.limits);
    if (cgroup.recycle !== undefined) this.#lent++;
    void this.fill();
    return cgroup;
  }

  /** Takes back a cgroup that take() gave, once its action is over and its usage read:
   * ready again for another action where it can be (no process of its action is left, and
   * fewer are ready than the pool keeps), removed otherwise. */
  async release(cgroup: ActionCgroup, processesGone: boolean): Promise<void> {
    if (cgroup.recycle !== undefined) this.#lent--;
    let failure: unknown;
    try {
      if (
        processesGone &&
        !this.#closed &&
        this.#ready.length < this.size &&
        cgroup.recycle?.() === true
      ) {
        this.#ready.push(cgroup);
        return;
      }
    } catch (error) {
      failure = error;
    }
    try {
      await cgroup.remove();
    } finally {
      void this.fill();
    }
    if (failure !== undefined) throw failure;
  }

  /** Removes the cgroups never used, and those under way once they are made. */
  async close(): Promise<void> {
    this.#closed = true;
    const removals = await Promise.allSettled(
      this.#ready.splice(0).map((cgroup) => cgroup.remove()),
    );
    await this.settled();
    for (const removal of removals) if (removal.status === 'rejected') throw removal.reason;
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #makeOne(): Promise<ActionCgroup> {
    const recipe = this.tree.recipe(this.#nextName(), this.limits);
    return this.tree.adopt(recipe, await makeAhead(recipe));
  }

  #nextName(): string {
    made += 1;
    return `action-${made}`;
  }
}
