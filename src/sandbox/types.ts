// The execution engine's contract: what an action is, how it is isolated, what comes back.
import type { IsolationMode } from './modes/registry.js';
import type { SeccompSettings } from './seccomp.js';

export type { IsolationMode } from './modes/registry.js';

/** Which special filesystems are provided inside the input root, and their options. */
export interface SpecialFilesystems {
  /** Mount a procfs at /proc. */
  readonly proc: boolean;
  /** Extra procfs options passed to fsconfig, e.g. { subset: 'pid', hidepid: 'invisible' }. */
  readonly procOptions: Readonly<Record<string, string>>;
  /** Mount a read-only sysfs at /sys. */
  readonly sys: boolean;
  /** Build /dev: a tmpfs with the host's null, zero, full, random, urandom and tty bound in,
   * the fd/stdin/stdout/stderr/ptmx links, a devpts at /dev/pts and a tmpfs at /dev/shm. */
  readonly dev: boolean;
  /** Size limits of /dev's and /dev/shm's tmpfs, as tmpfs's `size` option takes them ("64m"):
   * without one, each may fill half of the host's memory. */
  readonly devSize: string;
  readonly shmSize: string;
  /** Bind the request's temporary directory at /tmp when there is one. */
  readonly tmp: boolean;
  /** Create a missing mountpoint directory (mkdirat) instead of failing. */
  readonly createMountpoints: boolean;
}

export interface IsolationSettings {
  /** One of modes/registry.ts (what each is: the file of that name in modes/). */
  readonly mode: IsolationMode;
  /** bb_runner's chrootIntoInputRoot; absent means true. When false the action sees the
   * runner's own file system, from the input root's working directory (bb_runner's plain
   * command: PATH entries are host paths, relative ones relative to that directory), isolated
   * otherwise as `mode` says: in namespaces and rootless mode in a copy of the runner's mount
   * tree with the special filesystems mounted over it; shared and none mode mount nothing,
   * since that would change the runner's own view. */
  readonly chrootIntoInputRoot?: boolean;
  readonly filesystems: SpecialFilesystems;
  /** Capability names (without CAP_) kept in the bounding set; all others are dropped. */
  readonly keepCapabilities: readonly string[];
  /** A new network namespace with only loopback up (every mode but none; the default). Off,
   * actions share the runner's: its TCP listeners, the host's loopback services, abstract
   * unix sockets and, with CAP_NET_RAW, its traffic. */
  readonly network: boolean;
  /** namespaces and shared mode with `network`: how many network namespaces the engine keeps
   * made ahead (network-namespaces.ts), so that actions enter one instead of making theirs
   * when they start. Absent or 0: every action's is made by its clone. */
  readonly preparedNetworkNamespaces?: number;
  /** The seccomp filter (src/sandbox/seccomp.ts, docs/seccomp.md). */
  readonly seccomp: SeccompSettings;
  /** namespaces and shared mode: a user namespace for every action, in which its ids map to
   * host ids that own nothing (contributions/user-namespace.ts). Absent: the action's ids
   * are the host's own (uid 0 is the host's root). */
  readonly actionUserNamespace?: ActionUserNamespace;
  /** Rootless mode: the ids the runner's own uid and gid have inside the action's user
   * namespace (e.g. 0 for tools that insist on being root); the same ids when absent. An
   * unprivileged runner can map only its own ids, so these are the action's credentials. */
  readonly userNamespace?: UserNamespaceIds;
}

/** The host ids of actions' user namespaces, like a range of /etc/subuid cut into
 * `concurrentActions` slots of idCount ids: an action holds slot n while it runs, and ids 0
 * to idCount - 1 inside (root first) are host ids firstHostId + n × idCount and up; the ids
 * the request asks for (runCommandsAs), other than 0, are themselves. The host id of its
 * uid 0 owns its user namespace, so the kernel's per-user counts of what the action does
 * are charged to that id alone. */
export interface ActionUserNamespace {
  readonly firstHostId: number;
  readonly idCount: number;
  /** How many actions may run at once, each in a slot of its own (serve: its
   * maximumConcurrentRuns); one more fails until one ends. */
  readonly concurrentActions: number;
}

export interface UserNamespaceIds {
  readonly uid: number;
  readonly gid: number;
}

export interface Credentials {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGroups: readonly number[];
}

/** One action, as Engine.run takes it: every path is resolved beneath the engine's build
 * directory, and it is isolated as the engine's settings say. */
export interface ActionSpec {
  /** The input root, relative to the build directory. */
  readonly inputRoot: string;
  /** argv; argv[0] is looked up in the environment's PATH inside the input root when it has
   * no slash. */
  readonly arguments: readonly string[];
  /** The complete environment; nothing is inherited from the runner. */
  readonly environment: Readonly<Record<string, string>>;
  /** Relative to the input root. */
  readonly workingDirectory: string;
  /** Relative to the build directory; created with O_CREAT|O_EXCL, opened for append. */
  readonly stdoutPath: string;
  readonly stderrPath: string;
  /** Relative to the build directory; bound at /tmp inside when set and filesystems.tmp. */
  readonly temporaryDirectory?: string;
  /** Give the action the runner's own stdin, stdout and stderr instead of /dev/null and the
   * two log files (stdoutPath and stderrPath are then ignored): the CLI's run command. */
  readonly inheritStdio?: boolean;
  /** Credentials to run the action as; the runner's own when absent. */
  readonly credentials?: Credentials;
  /** Aborting kills the whole action tree; run() then rejects with an AbortError. */
  readonly signal?: AbortSignal;
}

/** Buildbarn's POSIXResourceUsage, in plain numbers. */
export interface ResourceUsage {
  readonly userTimeNanoseconds: bigint;
  readonly systemTimeNanoseconds: bigint;
  readonly maximumResidentSetSizeBytes: number;
  readonly pageReclaims: number;
  readonly pageFaults: number;
  readonly swaps: number;
  readonly blockInputOperations: number;
  readonly blockOutputOperations: number;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly signalsReceived: number;
  readonly voluntaryContextSwitches: number;
  readonly involuntaryContextSwitches: number;
}

export interface ActionResult {
  /** 0..255 when the action exited; null when a signal killed it. */
  readonly exitCode: number | null;
  /** The signal's name without SIG ("KILL", "SEGV") when a signal killed it, else null. */
  readonly terminationSignal: string | null;
  readonly resourceUsage: ResourceUsage;
  /** What each per-action contribution measured, by its name (contributions/registry.ts). */
  readonly usage?: Readonly<Record<string, Readonly<Record<string, number | bigint | boolean>>>>;
  /** Milliseconds spent setting up, running and tearing down, for metrics and logs. */
  readonly timings: { readonly setup: number; readonly run: number; readonly teardown: number };
}

/** Why an action could not be run. The runner maps `kind` to a gRPC status code:
 * invalidArgument → INVALID_ARGUMENT, internal → INTERNAL. */
export type ActionErrorKind = 'invalidArgument' | 'internal';

/** Which part of starting the program failed, for callers that report it as exec would
 * (the CLI's exit statuses 127 and 126): the program was not found in the input root, or
 * execve refused it. Undefined for every other failure. */
export type ActionErrorReason = 'programNotFound' | 'execFailed';

export class ActionError extends Error {
  override readonly name = 'ActionError';
  constructor(
    readonly kind: ActionErrorKind,
    message: string,
    /** The underlying system error, when there is one (code, errno, syscall, path). */
    override readonly cause?: NodeJS.ErrnoException,
    readonly reason?: ActionErrorReason,
  ) {
    super(message);
  }
}
