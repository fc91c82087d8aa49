// Resolving what a request names: every path beneath its base handle, and the program
// through the request's PATH inside the input root.
import { posix } from 'node:path';
import {
  constants,
  type DirectoryHandle,
  type Fd,
  type FileStatus,
  fstat,
  isSystemError,
  openat2,
  openDirectoryBeneath,
  resolveBeneathOnly,
  type SystemError,
} from '../syscalls/index.js';
import { ActionError } from './types.js';

/** Errors of path resolution that are the request's fault. */
const requestErrors = new Set([
  'EXDEV',
  'ELOOP',
  'ENOENT',
  'ENOTDIR',
  'EEXIST',
  'EISDIR',
  'ENAMETOOLONG',
]);

/** bb_runner's wording where there is one, followed by what the kernel said (errno, syscall
 * and path), so that an operator sees which call refused what. */
function reason(error: SystemError): string {
  switch (error.code) {
    case 'EXDEV':
      return `${outsideBuildDirectory} (${error.message})`;
    case 'ELOOP':
      return `Path contains a symbolic link (${error.message})`;
    default:
      return error.message;
  }
}

const outsideBuildDirectory = 'Path resolves to a location outside the build directory';

/** Refuses, before touching the file system, a path that climbs out lexically (as
 * bb_runner does, whether or not its first components exist); openat2 with RESOLVE_BENEATH
 * still guards the rest. */
function checkBeneath(field: string, path: string): void {
  // The kernel would see the path cut at the NUL: refuse it rather than open something else.
  if (path.includes('\0')) {
    throw new ActionError(
      'invalidArgument',
      `Failed to open ${field} ${JSON.stringify(path)}: Path must not contain NUL bytes`,
    );
  }
  const normalized = posix.normalize(path === '' ? '.' : path);
  if (posix.isAbsolute(normalized) || normalized === '..' || normalized.startsWith('../')) {
    throw new ActionError(
      'invalidArgument',
      `Failed to open ${field} "${path}": ${outsideBuildDirectory}`,
    );
  }
}

function openFailure(field: string, path: string, error: unknown): unknown {
  if (!isSystemError(error)) return error;
  const kind = requestErrors.has(error.code) ? 'invalidArgument' : 'internal';
  return new ActionError(kind, `Failed to open ${field} "${path}": ${reason(error)}`, error);
}

/** The input root, beneath the build directory. */
export function openInputRoot(buildDirectory: DirectoryHandle, path: string): DirectoryHandle {
  return openActionDirectory(buildDirectory, 'input root directory', path);
}

export function openTemporaryDirectory(
  buildDirectory: DirectoryHandle,
  path: string,
): DirectoryHandle {
  return openActionDirectory(buildDirectory, 'temporary directory', path);
}

/** The build directory's identity, by handle: what an open fd refers to cannot change, and
 * an action compares both its input root and its temporary directory with it. */
const buildDirectoryIdentities = new WeakMap<DirectoryHandle, FileStatus>();

function buildDirectoryIdentity(buildDirectory: DirectoryHandle): FileStatus {
  let identity = buildDirectoryIdentities.get(buildDirectory);
  if (identity === undefined) {
    identity = fstat(buildDirectory);
    buildDirectoryIdentities.set(buildDirectory, identity);
  }
  return identity;
}

/** A directory of the action's own beneath the build directory: never the build directory
 * itself (".", "a/..", or a symlink to "."), which would hand the action every other action's
 * files. Compared by inode, so that no spelling gets past it. */
function openActionDirectory(
  buildDirectory: DirectoryHandle,
  field: string,
  path: string,
): DirectoryHandle {
  checkBeneath(field, path);
  let directory: DirectoryHandle;
  try {
    directory = openDirectoryBeneath(buildDirectory, path);
  } catch (error) {
    throw openFailure(field, path, error);
  }
  const opened = fstat(directory);
  const build = buildDirectoryIdentity(buildDirectory);
  if (
    opened.ino === build.ino &&
    opened.devMajor === build.devMajor &&
    opened.devMinor === build.devMinor
  ) {
    directory.close();
    throw new ActionError(
      'invalidArgument',
      `Failed to open ${field} "${path}": Path resolves to the build directory itself`,
    );
  }
  return directory;
}

/** A log file beneath the build directory, created exclusively (an existing file or a
 * directory is an error) and opened for appending. */
export function createLogFile(buildDirectory: DirectoryHandle, field: string, path: string): Fd {
  checkBeneath(field, path);
  try {
    return openat2(buildDirectory, path, {
      flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND,
      mode: 0o666,
      resolve: resolveBeneathOnly,
    });
  } catch (error) {
    throw openFailure(field, path, error);
  }
}

/** The working directory as a path inside the input root; one that climbs out of it is an
 * error (symlinks inside are resolved later within the root, RESOLVE_IN_ROOT). */
export function workingDirectoryPath(path: string): string {
  if (path.includes('\0')) {
    throw new ActionError('invalidArgument', 'Working directory must not contain NUL bytes');
  }
  const normalized = posix.normalize(path === '' ? '.' : path);
  if (normalized === '..' || normalized.startsWith('../')) {
    throw new ActionError(
      'invalidArgument',
      `Working directory "${path}" resolves to a location outside the input root`,
    );
  }
  return normalized;
}

const inRoot = constants.RESOLVE_IN_ROOT | constants.RESOLVE_NO_MAGICLINKS;

/** Whether `path` (inside the input root) names a non-directory with an execute bit. */
function isExecutable(root: DirectoryHandle, path: string): boolean {
  let file: Fd;
  try {
    file = openat2(root, path, { flags: constants.O_PATH, resolve: inRoot });
  } catch {
    return false;
  }
  try {
    const status = fstat(file);
    return status.type !== 'directory' && (status.mode & 0o111) !== 0;
  } finally {
    file.close();
  }
}

/** The program to execute for argv[0], as the action will see it. With a slash it is used as
 * is; otherwise the first executable in the request's PATH inside the input root (relative
 * entries against the working directory, an empty one meaning "."), like Go's LookPath. */
export function findExecutable(
  root: DirectoryHandle,
  name: string,
  searchPath: string | undefined,
  workingDirectory: string,
): string {
  if (name.includes('/')) return name;
  const paths = searchPath ?? '';
  if (paths !== '') {
    for (const entry of paths.split(':')) {
      const candidate = posix.join(entry === '' ? '.' : entry, name);
      const inside = posix.isAbsolute(candidate)
        ? candidate
        : posix.join(workingDirectory, candidate);
      // Relative as found (bb_runner's "subdirectory/hello.sh", not "./subdirectory/…"): a
      // script gets this path as its $0.
      if (isExecutable(root, inside)) return candidate;
    }
  }
  throw new ActionError(
    'invalidArgument',
    `Cannot find executable "${name}" in search paths "${paths}"`,
    undefined,
    'programNotFound',
  );
}

/** Everything an action holds open while it is being set up. */
export interface RequestFiles {
  readonly inputRoot: DirectoryHandle;
  readonly stdout: Fd | undefined;
  readonly stderr: Fd | undefined;
  readonly temporaryDirectory: DirectoryHandle | undefined;
}
