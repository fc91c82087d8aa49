// Network namespaces made ahead of the actions that enter them: making one is the largest
// item of an action's kernel work (0.4–0.9 ms here), and it depends on nothing of the
// request. The pool makes them one at a time on a thread of their own, and refills after each
// take at SCHED_IDLE, so that a refill only uses a core that the actions (and everything
// else on the machine) leave idle. An action that finds the pool empty gets a namespace of
// its clone instead, as without a pool: it never waits. Each namespace is entered by one
// action only.
import type { Fd } from '../syscalls/index.js';
import { createNetworkNamespace, type NetworkNamespacePriority } from '../syscalls/process.js';

/** After n failures in a row the pool lets 2^(n-1) takes pass, up to this many, before it
 * tries again: a refusal the kernel repeats (no CAP_SYS_ADMIN, user.max_net_namespaces)
 * costs a thread and a failed unshare only now and then. */
const longestBackOff = 1024;

export class NetworkNamespacePool {
  readonly #ready: Fd[] = [];
  /** The creation under way: one at a time. */
  #creating: Promise<void> | undefined;
  #failures = 0;
  /** Takes still to pass before the next try, after a failure. */
  #backOff = 0;
  #closed = false;

  constructor(
    readonly size: number,
    private readonly create: (
      priority: NetworkNamespacePriority,
    ) => Promise<Fd> = createNetworkNamespace,
  ) {}

  /** Makes what is missing at normal priority (before the first action: nothing to compete
   * with, and a busy machine would hold up the start); resolves once the pool is full or a
   * creation failed. */
  fill(): Promise<void> {
    this.#next('normal');
    return this.settled();
  }

  /** Resolves once no creation is under way: the pool is full, or its last creation failed. */
  async settled(): Promise<void> {
    while (this.#creating !== undefined) await this.#creating;
  }

  /** A namespace made ahead, the caller's to close, or undefined when none is ready. */
  take(): Fd | undefined {
    const namespace = this.#ready.shift();
    if (this.#backOff > 0) this.#backOff--;
    this.#next('idle');
    return namespace;
  }

  /** Closes the ready namespaces, and the one under way once it is made. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const namespace of this.#ready.splice(0)) namespace.close();
    await this.settled();
  }

  /** Starts the next creation, unless one is under way, the pool is full or backing off. */
  #next(priority: NetworkNamespacePriority): void {
    if (this.#closed || this.#creating !== undefined || this.#backOff > 0) return;
    if (this.#ready.length >= this.size) return;
    this.#creating = this.create(priority).then(
      (namespace) => {
        this.#creating = undefined;
        this.#failures = 0;
        if (this.#closed) {
          namespace.close();
        } else {
          this.#ready.push(namespace);
          this.#next(priority);
        }
      },
      // The pool stays short, and its actions make their own: a failure the kernel repeats
      // is then reported by the action's clone.
      () => {
        this.#creating = undefined;
        this.#backOff = Math.min(2 ** this.#failures, longestBackOff);
        this.#failures++;
      },
    );
  }
}
