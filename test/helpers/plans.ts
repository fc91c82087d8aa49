// Plans built without root: the engine's plan for an action in any mode, over stand-in fd
// numbers (nothing is opened), decoded into readable steps.
import type {
  ActionResource,
  EngineContext,
} from '../../src/sandbox/contributions/contribution.js';
import { network } from '../../src/sandbox/contributions/network.js';
import { defaultIsolation } from '../../src/sandbox/defaults.js';
import { mountTemplates } from '../../src/sandbox/filesystems.js';
import { type HostResources, kernelEntryKinds } from '../../src/sandbox/host.js';
import { nothingPrepared } from '../../src/sandbox/modes/mode.js';
import { TemplateNamespace } from '../../src/sandbox/modes/namespaces.js';
import { isolationStrategy } from '../../src/sandbox/modes/registry.js';
import type { NetworkNamespacePool } from '../../src/sandbox/network-namespaces.js';
import type { PlanBuilder } from '../../src/sandbox/plan.js';
import type { RequestFiles } from '../../src/sandbox/request.js';
import { buildPlan } from '../../src/sandbox/setup.js';
import { deviceNodeNames, specialMounts } from '../../src/sandbox/special-mounts.js';
import type { ActionSpec, IsolationSettings } from '../../src/sandbox/types.js';
import { type DirectoryHandle, Fd } from '../../src/syscalls/index.js';
import { planFormat } from '../../src/syscalls/process.js';

/** A handle on a made-up fd number: only its number is read. */
function standIn(fd: number): Fd {
  return { fd } as unknown as Fd;
}

/** The places that Linux 6.18's modes leave to its uid 0 (root-owned, nothing for group and
 * others; beneath the read-only binds, nothing writable but by the owner). */
export const standInHostRootOnly: readonly string[] = [
  'proc/sysrq-trigger',
  'proc/irq',
  'proc/bus',
  'proc/fs',
  'proc/kcore',
  'proc/kpagecgroup',
  'proc/kpagecount',
  'proc/kpageflags',
  'proc/timer_list',
];

export function standInHost(makesDeviceNodes = true, mapsAnyIds = false): HostResources {
  return {
    deviceNodes: new Map(
      deviceNodeNames.map((name, index) => [
        name,
        { fd: standIn(200 + index), mode: 0o20666, major: 1, minor: index + 3 },
      ]),
    ),
    makesDeviceNodes,
    mapsAnyIds,
    devNull: standIn(190),
    init: standIn(191),
    runnerPidfd: standIn(192),
    // A kernel with every masked and read-only place.
    presentKernelEntries: new Set(
      specialMounts
        .filter((entry) => kernelEntryKinds.has(entry.source.kind))
        .map((entry) => entry.at),
    ),
    // Of which only its uid 0 may use those that Linux 6.18 makes so.
    hostRootOnlyEntries: new Set(standInHostRootOnly),
  } as unknown as HostResources;
}

export const standInAction: ActionSpec = {
  inputRoot: 'root',
  arguments: ['sh', '-c', 'true'],
  environment: { PATH: '/bin' },
  workingDirectory: 'work',
  stdoutPath: 'stdout',
  stderrPath: 'stderr',
};

export interface PlanOptions {
  readonly settings?: Partial<IsolationSettings>;
  readonly spec?: Partial<ActionSpec>;
  readonly host?: HostResources;
  /** The contributions' resources; by default the network contribution's where it applies
   * (the one that needs no root to prepare), from this pool when given. */
  readonly resources?: readonly ActionResource[];
  readonly networkNamespaces?: NetworkNamespacePool;
  /** The engine's IsolationStrategy.unprivilegedActionIds; the mode's own answer by default. */
  readonly unprivilegedActionIds?: boolean;
}

/** The engine's plan for one action, as Engine.run builds it. */
export function planFor(mode: IsolationSettings['mode'], options: PlanOptions = {}): PlanBuilder {
  const settings: IsolationSettings = {
    ...defaultIsolation,
    mode,
    // The ids inside, whoever runs the test.
    userNamespace: { uid: 0, gid: 0 },
    ...options.settings,
  };
  const strategy = isolationStrategy(mode);
  const files: RequestFiles = {
    inputRoot: standIn(180) as DirectoryHandle,
    stdout: standIn(181),
    stderr: standIn(182),
    temporaryDirectory: undefined,
  };
  const engine = {
    settings,
    strategy,
    ...(options.networkNamespaces === undefined
      ? {}
      : { networkNamespaces: options.networkNamespaces }),
  } as unknown as EngineContext;
  const spec = { ...standInAction, ...options.spec };
  const resources =
    options.resources ??
    (network.appliesTo(engine) ? [network.prepare({ engine, spec, files })] : []);
  const host = options.host ?? standInHost();
  const unprivilegedActionIds =
    options.unprivilegedActionIds ?? strategy.unprivilegedActionIds(settings, host);
  const subject = { filesystems: settings.filesystems, host, unprivilegedActionIds };
  return buildPlan({
    spec,
    settings,
    host,
    files,
    // A real handle on a made-up number, never closed: the template's fd is only read.
    prepared:
      mode === 'namespaces'
        ? new TemplateNamespace(new Fd(183), mountTemplates(subject))
        : nothingPrepared,
    unprivilegedActionIds,
    strategy,
    resources,
    program: '/bin/sh',
    workingDirectory: 'work',
  });
}

export interface DecodedStep {
  readonly op: string;
  readonly args: readonly number[];
  readonly strings: readonly string[];
  readonly description: string;
}

const operationNames = new Map(
  Object.entries(planFormat.operations).map(([name, number]) => [number, name]),
);

/** The plan's steps as the interpreter reads them, with their descriptions. */
export function decode(plan: PlanBuilder): DecodedStep[] {
  const built = plan.build();
  const strings = built.strings.toString().split('\0');
  const steps: DecodedStep[] = [];
  for (let i = 0; i < built.steps.length; i += planFormat.stepWidth) {
    const step = [...built.steps.subarray(i, i + planFormat.stepWidth)];
    const [op = 0, a = 0, b = 0, c = 0, d = 0, e = 0, first = -1, second = -1] = step;
    steps.push({
      op: operationNames.get(op) ?? `?${op}`,
      args: [a, b, c, d, e],
      strings: [first, second].filter((index) => index >= 0).map((index) => strings[index] ?? ''),
      description: plan.step(steps.length)?.description ?? '',
    });
  }
  return steps;
}

/** "op: description" per step: the golden form. */
export function outline(plan: PlanBuilder): string[] {
  return decode(plan).map((step) => `${step.op}: ${step.description}`);
}
