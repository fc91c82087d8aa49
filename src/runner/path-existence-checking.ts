// readinessCheckingPathnames: the runner is healthy only while certain host paths exist (e.g. a
// remote file system the actions need), as bb_runner's path existence checking runner.
import { stat } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import type { CheckReadinessRequest, RunRequest, RunResponse } from '../proto/index.js';
import { type Runner, wrapErrorWithCode } from './runner.js';

export class PathExistenceCheckingRunner implements Runner {
  constructor(
    private readonly base: Runner,
    private readonly pathnames: readonly string[],
  ) {}

  async #checkPathExistence(): Promise<void> {
    for (const pathname of this.pathnames) {
      try {
        await stat(pathname);
      } catch (error) {
        throw wrapErrorWithCode(error, status.UNAVAILABLE, `Path ${JSON.stringify(pathname)}`);
      }
    }
  }

  async checkReadiness(request: CheckReadinessRequest): Promise<void> {
    await this.#checkPathExistence();
    await this.base.checkReadiness(request);
  }

  /** A failing action may have failed because a path went away: report that instead. */
  async run(request: RunRequest, signal: AbortSignal): Promise<RunResponse> {
    const response = await this.base.run(request, signal);
    if (response.exitCode !== 0n) {
      try {
        await this.#checkPathExistence();
      } catch (error) {
        throw wrapErrorWithCode(
          error,
          status.UNAVAILABLE,
          'One or more required files disappeared during execution',
        );
      }
    }
    return response;
  }
}
