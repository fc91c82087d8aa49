// cleanTemporaryDirectories, cleanProcessTable, runCommandCleaner: runs the cleaners around
// every call while the runner goes idle→busy and busy→idle, as bb_runner's clean runner.
import type { CheckReadinessRequest, RunRequest, RunResponse } from '../proto/index.js';
import type { IdleInvoker } from './cleaner.js';
import type { Runner } from './runner.js';

export class CleanRunner implements Runner {
  constructor(
    private readonly base: Runner,
    private readonly idleInvoker: IdleInvoker,
  ) {}

  async #around<T>(call: () => Promise<T>): Promise<T> {
    await this.idleInvoker.acquire();
    let result: T;
    try {
      result = await call();
    } catch (error) {
      await this.idleInvoker.release().catch(() => {});
      throw error;
    }
    await this.idleInvoker.release();
    return result;
  }

  run(request: RunRequest, signal: AbortSignal): Promise<RunResponse> {
    return this.#around(() => this.base.run(request, signal));
  }

  checkReadiness(request: CheckReadinessRequest): Promise<void> {
    return this.#around(() => this.base.checkReadiness(request));
  }
}
