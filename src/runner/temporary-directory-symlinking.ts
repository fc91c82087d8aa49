// symlinkTemporaryDirectories: replaces a host directory (e.g. /tmp) with a symlink to the
// current action's temporary directory, as bb_runner does. Only safe with one action at a time.
// The symlink lives on the runner's file system, outside any input root: chrooted actions do not
// see it (they get the temporary directory at /tmp through chrootRunner.filesystems.tmp).
import { rmdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { CheckReadinessRequest, RunRequest, RunResponse } from '../proto/index.js';
import { resolveRelativePath } from './paths.js';
import { type Runner, wrapError, wrapErrorWithCode } from './runner.js';

export class TemporaryDirectorySymlinkingRunner implements Runner {
  #running = 0;

  constructor(
    private readonly base: Runner,
    private readonly symlinkPath: string,
    private readonly buildDirectoryPath: string,
  ) {}

  async #updateSymlink(target: string): Promise<void> {
    try {
      await unlink(this.symlinkPath).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return;
        if (error.code !== 'EISDIR' && error.code !== 'EPERM') throw error;
        await rmdir(this.symlinkPath);
      });
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to remove symbolic link ${JSON.stringify(this.symlinkPath)}`,
      );
    }
    try {
      await symlink(target, this.symlinkPath);
    } catch (error) {
      throw wrapErrorWithCode(
        error,
        status.INTERNAL,
        `Failed to create symbolic link ${JSON.stringify(this.symlinkPath)} pointing to ${JSON.stringify(target)}`,
      );
    }
  }

  async run(request: RunRequest, signal: AbortSignal): Promise<RunResponse> {
    this.#running++;
    try {
      let temporaryDirectory: string;
      try {
        temporaryDirectory = resolveRelativePath(request.temporaryDirectory).components.join('/');
      } catch (error) {
        throw wrapError(error, status.INVALID_ARGUMENT, 'Failed to resolve temporary directory');
      }
      await this.#updateSymlink(join(this.buildDirectoryPath, temporaryDirectory));
      return await this.base.run(request, signal);
    } finally {
      this.#running--;
    }
  }

  /** While idle, point the symlink nowhere so nothing writes into a finished action's space. */
  async checkReadiness(request: CheckReadinessRequest): Promise<void> {
    if (this.#running === 0) await this.#updateSymlink('/nonexistent');
    await this.base.checkReadiness(request);
  }
}
