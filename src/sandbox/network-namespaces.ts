// Network namespaces made ahead of the actions that enter them: making one is the largest
// item of an action's kernel work (0.4–0.9 ms here), and it depends on nothing of the
// request. The pool makes them one at a time on a thread of its own, and refills after a
// take at SCHED_IDLE, so that a refill only uses a core that the actions (and everything
// else on the machine) leave idle. An action that finds the pool empty gets a namespace of
// its clone instead, as without a pool: it never waits. Each namespace is held by one action
// at a time.
//
// Even off the action's path, making one (setup_net) and the kernel's cleanup of the one
// closed (cleanup_net) cost about 0.9 ms of CPU per action here, and this VM's two cores
// behave as one: so a namespace the action left as it was made goes back to the pool
// instead (reuse). Once every process of the action is gone, the pool's thread reads what
// network-namespace-state.ts names, through the files it opened in the namespace when it
// made it; only a namespace found untouched is given again, any other is closed and the
// pool refills as without reuse. While checks find them untouched, the namespaces that
// actions hold count as coming back (a take starts no refill), and a take that finds none
// ready makes the pool grow by one, up to its size + 2 ready. How often one namespace is
// given again is not bounded: each check compares it with its state when made, so the
// hundredth action finds it as the first did.
import {
  type MadeNetworkNamespace,
  type NetworkNamespacePriority,
  type NetworkNamespaceReading,
  NetworkNamespaceWorker,
} from '../syscalls/process.js';
import { networkNamespaceFiles, untouched } from './network-namespace-state.js';

/** After n failures in a row the pool lets 2^(n-1) takes pass, up to this many, before it
 * tries again: a refusal the kernel repeats (no CAP_SYS_ADMIN, user.max_net_namespaces)
 * costs a thread and a failed unshare only now and then. */
const longestBackOff = 1024;

/** How many namespaces given back the pool keeps beyond its size (those its refills made
 * while an action held one): a burst of returns is not held on to. */
const returnedBeyondSize = 2;

/** A namespace of the pool, held by one action between take and giveBack. */
export interface PooledNetworkNamespace {
  /** With networkNamespaceFiles kept open, and what they read once it was made. */
  readonly namespace: MadeNetworkNamespace;
  /** How many actions held it before the one that took it. */
  readonly uses: number;
}

/** How the pool makes and checks namespaces, one job at a time (a NetworkNamespaceWorker of
 * its own; stand-ins in the unit tests). */
export interface NetworkNamespaceKernel {
  create(
    priority: NetworkNamespacePriority,
    files: readonly string[],
  ): Promise<MadeNetworkNamespace>;
  check(
    namespace: MadeNetworkNamespace,
    priority: NetworkNamespacePriority,
  ): Promise<NetworkNamespaceReading>;
  /** Once nothing is under way. */
  close(): void;
}

/** A kernel whose namespaces each hold a sysfs of their own, for actions that mount one
 * inside (namespaces mode): a sysfs superblock is one per network namespace, made by the
 * first mount and torn down with the last, so every action's fresh sysfs is then that
 * superblock again, with the dentries of the names its masks look up already there, rather
 * than one made and destroyed per action. The held mount is detached and read-only, and no
 * action sees it; it is closed with its namespace. */
export function namespacesWithSysfs(): NetworkNamespaceKernel {
  return new NetworkNamespaceWorker({ sysfs: true });
}

export class NetworkNamespacePool {
  readonly #ready: PooledNetworkNamespace[] = [];
  /** Given back, waiting for their check. */
  readonly #returned: PooledNetworkNamespace[] = [];
  /** Taken and not given back yet. */
  #held = 0;
  /** The creation or check under way: one at a time. */
  #working: Promise<void> | undefined;
  #failures = 0;
  /** Takes still to pass before the next try, after a failure. */
  #backOff = 0;
  /** Whether the last check found its namespace untouched: while they are, the namespaces
   * held count as coming back and a take starts no refill. */
  #returnsReused: boolean;
  /** Takes that found none ready and no namespace made for them yet: more actions at once
   * than namespaces in use, so the pool makes one more for each (while fewer than size +
   * returnedBeyondSize are ready), whatever it counts on getting back. */
  #missed = 0;
  #closed = false;
  readonly #kernel: NetworkNamespaceKernel;

  /** reuse: whether namespaces given back are checked and given again; only for actions
   * that hold no capability over them (a user namespace of their own). */
  constructor(
    readonly size: number,
    readonly reuse: boolean,
    kernel: NetworkNamespaceKernel = new NetworkNamespaceWorker(),
  ) {
    this.#kernel = kernel;
    this.#returnsReused = reuse;
  }

  /** Makes what is missing at normal priority (before the first action: nothing to compete
   * with, and a busy machine would hold up the start); resolves once the pool is full or a
   * creation failed. */
  fill(): Promise<void> {
    this.#next('normal');
    return this.settled();
  }

  /** Resolves once no creation or check is under way: the pool is full, or its last
   * creation failed. */
  async settled(): Promise<void> {
    while (this.#working !== undefined) await this.#working;
  }

  /** A namespace for one action, to be given back (giveBack) once it is torn down, or
   * undefined when none is ready. */
  take(): PooledNetworkNamespace | undefined {
    const taken = this.#ready.shift();
    if (taken !== undefined) {
      this.#held++;
    } else if (this.reuse && this.#backOff === 0) {
      this.#missed = Math.min(this.#missed + 1, this.size + returnedBeyondSize);
    }
    if (this.#backOff > 0) this.#backOff--;
    this.#next('idle');
    return taken;
  }

  /** Ends an action's hold on a namespace it took: checked and given again when the pool
   * reuses them and every process of the action is gone (processesGone), closed otherwise. */
  giveBack(taken: PooledNetworkNamespace, processesGone: boolean): void {
    this.#held--;
    if (this.#closed || !this.reuse || !processesGone) {
      taken.namespace.close();
      // One fewer than the pool counted on.
      if (this.reuse && !processesGone) this.#returnsReused = false;
    } else {
      this.#returned.push(taken);
    }
    this.#next('idle');
  }

  /** Closes the ready namespaces and those given back, and the one under way once it is made
   * or checked, then the kernel's side (the pool's thread); a namespace given back later is
   * closed at once. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pooled of this.#ready.splice(0)) pooled.namespace.close();
    for (const pooled of this.#returned.splice(0)) pooled.namespace.close();
    await this.settled();
    this.#kernel.close();
  }

  /** Starts the next check (before any creation: it is cheaper and may spare one), or the
   * next creation unless the pool is full, counts on the namespaces held or backs off. */
  #next(priority: NetworkNamespacePriority): void {
    if (this.#closed || this.#working !== undefined) return;
    const returned = this.#returned.shift();
    if (returned !== undefined) {
      this.#check(returned);
      return;
    }
    // As many ready as the pool ever keeps: the actions that missed one are served.
    if (this.#ready.length >= this.size + returnedBeyondSize) this.#missed = 0;
    if (this.#backOff > 0) return;
    const comingBack = this.#returnsReused ? this.#held : 0;
    if (this.#missed > 0) {
      this.#missed--;
    } else if (this.#ready.length + comingBack >= this.size) {
      return;
    }
    this.#working = this.#kernel.create(priority, networkNamespaceFiles).then(
      (namespace) => {
        this.#working = undefined;
        this.#failures = 0;
        if (this.#closed) {
          namespace.close();
        } else {
          this.#ready.push({ namespace, uses: 0 });
          this.#next(priority);
        }
      },
      // The pool stays short, and its actions make their own: a failure the kernel repeats
      // is then reported by the action's clone.
      () => {
        this.#working = undefined;
        this.#missed = 0;
        this.#backOff = Math.min(2 ** this.#failures, longestBackOff);
        this.#failures++;
      },
    );
  }

  /** Gives the namespace again if it is as it was made and the pool has room, else closes
   * it; a failed read counts as touched. */
  #check(returned: PooledNetworkNamespace): void {
    this.#working = this.#kernel
      .check(returned.namespace, 'idle')
      .then(
        (now) => untouched(returned.namespace.files, now),
        () => false,
      )
      .then((reusable) => {
        this.#working = undefined;
        this.#returnsReused = reusable;
        if (reusable && !this.#closed && this.#ready.length < this.size + returnedBeyondSize) {
          this.#ready.push({ ...returned, uses: returned.uses + 1 });
        } else {
          returned.namespace.close();
        }
        this.#next('idle');
      });
  }
}
