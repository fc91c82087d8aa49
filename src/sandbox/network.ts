// Network namespaces made ahead of the actions that enter them. Creating one costs about
// 0.7 ms of kernel work here, more than the rest of an action's isolation (docs/performance.md);
// so one is always ready, each is entered by exactly one action and never reused, and its
// successor is made on the threadpool while that action runs.
import { type Fd, isSystemError } from '../syscalls/index.js';
import { networkNamespace, networkNamespaceSync } from '../syscalls/process.js';

let spare: Fd | undefined;
let making: Promise<void> | undefined;

/** Whether the runner may make network namespaces (CAP_SYS_ADMIN): false for a rootless
 * runner, whose actions' clone makes theirs inside their user namespace. */
let available: boolean | undefined;

/** Makes the first spare (prepareSandbox), so that a runner's fd count is constant from then
 * on. Returns false where the runner cannot make network namespaces. */
export function prepareNetworkNamespaces(): boolean {
  if (available === undefined) {
    try {
      spare ??= networkNamespaceSync();
      available = true;
    } catch (error) {
      if (!isSystemError(error, 'EPERM')) throw error;
      available = false;
    }
  }
  return available;
}

function replenish(): void {
  making ??= networkNamespace().then(
    (fd) => {
      if (spare === undefined) spare = fd;
      else fd.close();
      making = undefined;
    },
    () => {
      // The next action makes its own (and reports why it could not).
      making = undefined;
    },
  );
}

/** A network namespace nothing has entered yet, with only loopback, up; the caller owns the
 * fd. undefined where the runner cannot make them. */
export async function takeNetworkNamespace(): Promise<Fd | undefined> {
  if (!prepareNetworkNamespaces()) return undefined;
  const taken = spare;
  spare = undefined;
  replenish();
  return taken ?? (await networkNamespace());
}

/** Resolves once the successor of a taken namespace is ready: an action awaits it before it
 * returns, so that every runAction leaves the same fds open as it found. */
export async function networkNamespaceReplenished(): Promise<void> {
  await making;
}
