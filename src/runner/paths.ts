// Lexical resolution of the relative paths in a request, so that a path climbing out of its
// base directory is refused with bb_runner's message before anything is opened. The engine then
// opens what remains beneath a directory handle (openat2 RESOLVE_BENEATH), which also refuses
// symlinks on the way.
import { status } from '@grpc/grpc-js';
import { RunnerError } from './runner.js';

export interface ResolvedPath {
  /** Components of the normalised path, without "." and "..". */
  readonly components: readonly string[];
  /** Whether the path names a directory syntactically (empty, ".", "..", trailing "/"). */
  readonly namesDirectory: boolean;
}

export function resolveRelativePath(path: string): ResolvedPath {
  if (path.startsWith('/')) {
    throw new RunnerError(
      status.INVALID_ARGUMENT,
      'Path is absolute, while a relative path was expected',
    );
  }
  const components: string[] = [];
  const parts = path.split('/');
  for (const part of parts) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (components.pop() === undefined) {
        throw new RunnerError(
          status.INVALID_ARGUMENT,
          'Path resolves to a location outside the build directory',
        );
      }
      continue;
    }
    components.push(part);
  }
  // The last component decides: a name names a file; "", "." and ".." a directory.
  const last = parts[parts.length - 1];
  const namesDirectory = last === '' || last === '.' || last === '..';
  return { components, namesDirectory };
}

/** The normalised form of a relative path ("" for the base directory itself). */
export function normaliseRelativePath(path: string): string {
  return resolveRelativePath(path).components.join('/');
}
