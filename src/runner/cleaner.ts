// Cleaners reset shared state between actions (temporary directories, left-over processes, a
// custom command). The idle invoker runs them when the runner goes idle→busy and busy→idle.
import { status } from '@grpc/grpc-js';
import { wrapErrorWithCode } from './runner.js';

export type Cleaner = () => Promise<void>;

/** Runs cleaners one after the other, stopping at the first failure. */
export function chainCleaners(cleaners: readonly Cleaner[]): Cleaner {
  return async () => {
    for (const clean of cleaners) await clean();
  };
}

/** Counts users; runs the cleaner when the first arrives and when the last leaves. Users that
 * arrive while it runs wait for it, so no action overlaps a cleaning. */
export class IdleInvoker {
  #users = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(private readonly clean: Cleaner) {}

  #serialise(step: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(step);
    this.#queue = next.catch(() => {});
    return next;
  }

  acquire(): Promise<void> {
    return this.#serialise(async () => {
      if (this.#users === 0) await this.#invoke();
      this.#users++;
    });
  }

  release(): Promise<void> {
    return this.#serialise(async () => {
      this.#users--;
      if (this.#users === 0) await this.#invoke();
    });
  }

  async #invoke(): Promise<void> {
    try {
      await this.clean();
    } catch (error) {
      throw wrapErrorWithCode(error, status.INTERNAL, 'Failed to clean');
    }
  }
}
