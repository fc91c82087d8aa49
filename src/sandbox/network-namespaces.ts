// Network namespaces made ahead of the actions that enter them: making one is the largest
// item of an action's kernel work (0.4–0.9 ms here), and it depends on nothing of the
// request. The pool makes them on libuv's thread pool, off the event loop and off the
// actions' path, and refills after each take. An action that finds it empty gets a
// namespace of its clone instead, as without a pool: it never waits. Each namespace is
// entered by one action only.
import type { Fd } from '../syscalls/index.js';
import { createNetworkNamespace } from '../syscalls/process.js';

export class NetworkNamespacePool {
  readonly #ready: Fd[] = [];
  /** Creations under way: close() waits for them, so that none lands after it. */
  readonly #pending = new Set<Promise<void>>();
  #closed = false;

  constructor(
    readonly size: number,
    private readonly create: () => Promise<Fd> = createNetworkNamespace,
  ) {}

  /** Starts what is missing; resolves once each creation succeeded or failed. */
  fill(): Promise<void> {
    while (!this.#closed && this.#ready.length + this.#pending.size < this.size) {
      const pending: Promise<void> = this.create().then(
        (namespace) => {
          if (this.#closed) namespace.close();
          else this.#ready.push(namespace);
        },
        // The pool stays short, and its actions make their own: a failure the kernel repeats
        // (no CAP_SYS_ADMIN, user.max_net_namespaces) is then reported by the action's clone.
        () => {},
      );
      this.#pending.add(pending);
      void pending.finally(() => this.#pending.delete(pending));
    }
    return Promise.all(this.#pending).then(() => {});
  }

  /** A namespace made ahead, the caller's to close, or undefined when none is ready. */
  take(): Fd | undefined {
    const namespace = this.#ready.shift();
    void this.fill();
    return namespace;
  }

  /** Closes the ready namespaces, and those under way once they are made. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const namespace of this.#ready.splice(0)) namespace.close();
    await Promise.all(this.#pending);
  }
}
