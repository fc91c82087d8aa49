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

/** The most refills a run of failed creations makes the pool skip. */
const longestBackOff = 1024;

/** Names the cgroups of every engine of this process: several may share a tree. */
let made = 0;

export class PreparedCgroups {
  readonly #ready: ActionCgroup[] = [];
  /** Cgroups taken that come back (recycle()) once their actions are over. */
  #lent = 0;
  /** Creations under way: settled() and close() wait for them. */
  readonly #pending = new Set<Promise<void>>();
  #closed = false;
  /** Failed creations in a row, and refills still to skip because of them: after n, the
   * pool lets 2^(n-1) refills pass (up to longestBackOff) before it tries again, so that a
   * refusal the kernel repeats costs a clone only now and then. */
  #failures = 0;
  #backOff = 0;
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
    this.#refill();
    return this.settled();
  }

  #refill(): void {
    if (this.#backOff > 0) {
      this.#backOff--;
      return;
    }
    while (!this.#closed && this.#ready.length + this.#pending.size + this.#lent < this.size) {
      const creation: Promise<void> = this.#makeOne().then(
        async (cgroup) => {
          this.#failures = 0;
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
        () => {
          this.#backOff = Math.min(2 ** this.#failures, longestBackOff);
          this.#failures++;
        },
      );
      this.#pending.add(creation);
      void creation.finally(() => this.#pending.delete(creation));
    }
  }

  /** Resolves once the creations under way landed. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /** A cgroup for one action, to give back with recycle() or discard(): one made ahead (the
   * last one back: its memory is the warmest), or one made now (throwing what the kernel
   * refused). */
  take(): ActionCgroup {
    const cgroup = this.#ready.pop() ?? this.tree.create(this.#nextName(), this.limits);
    if (cgroup.recycle !== undefined) this.#lent++;
    this.#refill();
    return cgroup;
  }

  /** Takes back a cgroup that take() gave, once no process of its action is left and its
   * usage was read: true when it is ready for another action; false when it cannot be
   * (ActionCgroup.recycle), or the pool has enough ready: then discard() it. */
  recycle(cgroup: ActionCgroup): boolean {
    if (cgroup.recycle === undefined || this.#closed || this.#ready.length >= this.size) {
      return false;
    }
    let recycled: boolean;
    try {
      recycled = cgroup.recycle();
    } catch {
      // Its removal reports what the kernel refuses.
      recycled = false;
    }
    if (!recycled) return false;
    this.#lent--;
    this.#ready.push(cgroup);
    return true;
  }

  /** Removes a cgroup that take() gave and recycle() did not take back (killing what is
   * left in it), and makes another ahead where the pool is short. */
  async discard(cgroup: ActionCgroup): Promise<void> {
    if (cgroup.recycle !== undefined) this.#lent--;
    try {
      await cgroup.remove();
    } finally {
      this.#refill();
    }
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
