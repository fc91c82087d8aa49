// What several of doctor's checks need, made once per run: the process's privileges and
// status, the user namespace sysctls, and the outcomes of the probe clones.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capabilityNumbers } from '../sandbox/capabilities.js';
import { defaultIsolation } from '../sandbox/defaults.js';
import { HostResources } from '../sandbox/host.js';
import { type LaunchOutcome, launchProbe } from '../sandbox/launch-probe.js';
import type { IsolationContext, IsolationStrategy, PreparedMode } from '../sandbox/modes/mode.js';
import { namespacesMode } from '../sandbox/modes/namespaces.js';
import { PlanBuilder, runnerStep } from '../sandbox/plan.js';
import { ActionError } from '../sandbox/types.js';
import { constants, fsopen, isSystemError, openDirectory } from '../syscalls/index.js';
import { readSetting } from './check.js';

export interface ProcessPrivileges {
  readonly uid: number;
  /** Capability names without CAP_, as /proc/self/status reports them. */
  readonly effective: readonly string[];
  readonly bounding: readonly string[];
}

export interface UserNamespaceSettings {
  readonly maxUserNamespaces: string | undefined;
  readonly unprivilegedClone: string | undefined;
  readonly apparmorRestrict: string | undefined;
}

const capabilityNames = new Map<number, string>(
  Object.entries(capabilityNumbers).map(([name, number]) => [number, name]),
);

/** Names of the bits set in a /proc/self/status capability mask (hex). */
export function decodeCapabilities(mask: string): string[] {
  const bits = BigInt(`0x${mask}`);
  const names: string[] = [];
  for (let bit = 0n; bits >> bit !== 0n; bit++) {
    if (((bits >> bit) & 1n) === 1n) names.push(capabilityNames.get(Number(bit)) ?? `${bit}`);
  }
  return names;
}

/** The lines of /proc/self/status as a map. */
function processStatus(): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

function cloning(cloneFlags: number, steps: (plan: PlanBuilder) => void = () => {}): PlanBuilder {
  const plan = new PlanBuilder();
  plan.cloneFlags = cloneFlags;
  steps(plan);
  return plan;
}

/** What a mode's child does up to entering the action's root, by the mode's own plan, on an
 * empty scratch directory as the input root: for namespaces mode new namespaces, a copy of
 * the template mount namespace, the special filesystems, and pivot_root (which Docker's and
 * containerd's default seccomp profiles refuse even with CAP_SYS_ADMIN). The mounts are gone
 * when the child exits with its mount namespace; the scratch directory is removed. */
async function isolationProbe(strategy: IsolationStrategy): Promise<LaunchOutcome> {
  const scratch = mkdtempSync(join(tmpdir(), 'chroot-runner-doctor-'));
  const inputRoot = openDirectory(scratch);
  let host: HostResources | undefined;
  let prepared: PreparedMode | undefined;
  try {
    host = HostResources.open();
    const unprivilegedActionIds = strategy.unprivilegedActionIds(defaultIsolation, host);
    prepared = await strategy.prepare({
      filesystems: defaultIsolation.filesystems,
      host,
      unprivilegedActionIds,
    });
    const context: IsolationContext = {
      spec: {
        inputRoot: '',
        arguments: ['true'],
        environment: {},
        workingDirectory: '',
        stdoutPath: '',
        stderrPath: '',
      },
      settings: defaultIsolation,
      host,
      files: { inputRoot, stdout: undefined, stderr: undefined, temporaryDirectory: undefined },
      prepared,
      unprivilegedActionIds,
    };
    const plan = new PlanBuilder();
    try {
      strategy.plan(plan, context).enter(plan);
    } catch (error) {
      // What the mode prepared is missing: the template namespace could not be made.
      if (!(error instanceof ActionError) || error.cause?.syscall === undefined) throw error;
      return {
        ran: false,
        syscall: error.cause.syscall,
        code: error.cause.code ?? 'EIO',
        step: 'create the empty mount namespace that actions copy',
      };
    }
    return await launchProbe(plan);
  } finally {
    prepared?.close();
    host?.close();
    inputRoot.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** One run of the checks. Probes run on first use and are shared. */
export class DoctorContext {
  readonly buildDirectory: string | undefined;
  readonly status = processStatus();
  readonly privileges: ProcessPrivileges;
  readonly userNamespaceSettings: UserNamespaceSettings = {
    maxUserNamespaces: readSetting('/proc/sys/user/max_user_namespaces'),
    unprivilegedClone: readSetting('/proc/sys/kernel/unprivileged_userns_clone'),
    apparmorRestrict: readSetting('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
  };
  readonly #made = new Map<string, unknown>();
  #canMountHere: boolean | undefined;

  constructor(options: { buildDirectory?: string }) {
    this.buildDirectory = options.buildDirectory;
    this.privileges = {
      uid: process.getuid?.() ?? -1,
      effective: decodeCapabilities(this.status.get('CapEff') ?? '0'),
      bounding: decodeCapabilities(this.status.get('CapBnd') ?? '0'),
    };
  }

  /** The seccomp mode of /proc/self/status ('0' none, '1' strict, '2' filter). */
  get seccompMode(): string {
    return this.status.get('Seccomp') ?? '0';
  }

  /** fsopen("tmpfs") creates nothing until fsconfig(CREATE): whether this process may mount
   * in its own mount namespace, or the error. */
  mountApi(): true | NodeJS.ErrnoException {
    try {
      fsopen('tmpfs').close();
      this.#canMountHere = true;
      return true;
    } catch (error) {
      if (!isSystemError(error)) throw error;
      this.#canMountHere = false;
      return error;
    }
  }

  /** fsopen works in the runner's own mount namespace. */
  get canMountHere(): boolean {
    if (this.#canMountHere === undefined) this.mountApi();
    return this.#canMountHere === true;
  }

  /** What `make` makes, made on the first call for `name` in this run. */
  once<T>(name: string, make: () => T): T {
    if (!this.#made.has(name)) this.#made.set(name, make());
    return this.#made.get(name) as T;
  }

  #probe(name: string, launch: () => Promise<LaunchOutcome>): Promise<LaunchOutcome> {
    return this.once(name, launch);
  }

  /** A bare clone through the launcher. */
  launcher(): Promise<LaunchOutcome> {
    return this.#probe('launcher', () => launchProbe(cloning(0)));
  }

  /** Namespaces mode's own plan, up to pivot_root. */
  namespaces(): Promise<LaunchOutcome> {
    return this.#probe('namespaces', () => isolationProbe(namespacesMode));
  }

  /** A clone into a new user namespace. */
  userNamespace(): Promise<LaunchOutcome> {
    return this.#probe('userNamespace', () => launchProbe(cloning(constants.CLONE_NEWUSER)));
  }

  /** A fresh procfs in new user, PID and mount namespaces (what rootless mode needs). */
  procInUserNamespace(): Promise<LaunchOutcome> {
    return this.#probe('procInUserNamespace', () =>
      launchProbe(
        cloning(constants.CLONE_NEWUSER | constants.CLONE_NEWPID, (plan) => {
          plan.unshare(runnerStep('create a mount namespace'), constants.CLONE_NEWNS);
          const { MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC } = constants;
          const flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
          plan.newFilesystem(runnerStep('create a procfs'), 'proc', {}, flags);
        }),
      ),
    );
  }
}
