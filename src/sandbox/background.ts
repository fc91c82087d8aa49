// Work the engine started for an action that the action's result does not wait for: its
// cgroup's removal once its processes are gone. It starts once the result is delivered (the
// next macrotask: at concurrency 1 the caller has started its next action by then, whose
// clone runs on libuv's pool meanwhile). Engine.settled() and close() wait for it, and
// close() reports what failed.
export class BackgroundWork {
  readonly #pending = new Set<Promise<void>>();
  #failure: unknown;

  add(work: () => Promise<void>): void {
    const landed: Promise<void> = new Promise<void>((start) => setImmediate(start))
      .then(work)
      .then(
        () => {},
        (error: unknown) => {
          this.#failure ??= error;
        },
      )
      .then(() => {
        this.#pending.delete(landed);
      });
    this.#pending.add(landed);
  }

  /** Resolves once everything added so far (and added meanwhile) has landed. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /** settled(), then throws the first failure, if any. */
  async close(): Promise<void> {
    await this.settled();
    if (this.#failure !== undefined) throw this.#failure;
  }
}
