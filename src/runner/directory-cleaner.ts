// cleanTemporaryDirectories: empties a directory (e.g. /tmp), keeping the directory itself.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cleaner } from './cleaner.js';

export function directoryCleaner(directory: string): Cleaner {
  return async () => {
    const names = await readdir(directory);
    await Promise.all(
      names.map((name) => rm(join(directory, name), { recursive: true, force: true })),
    );
  };
}
