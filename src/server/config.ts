// bb_runner's ApplicationConfiguration, read as bb_runner reads it (bb-storage's loader: the
// file evaluated as Jsonnet with every environment variable as an external variable, the result
// parsed as protojson), plus the `chrootRunner` section of our own. docs/configuration.md
// documents every key.
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { resolve } from 'node:path';
import type { CgroupLimits, CgroupVersionChoice, ScopeLimits } from '../cgroups/index.js';
import { capabilityNumbers, defaultCapabilities } from '../sandbox/capabilities.js';
import {
  defaultActionUserNamespace,
  defaultFilesystems,
  defaultMaximumConcurrentRuns,
  defaultPreparedCgroups,
  defaultPreparedNetworkNamespaces,
} from '../sandbox/defaults.js';
import { isolationModes } from '../sandbox/modes/registry.js';
import { seccompEntryNames } from '../sandbox/seccomp.js';
import type {
  ActionUserNamespace,
  Credentials,
  IsolationMode,
  IsolationSettings,
} from '../sandbox/types.js';
import { isSystemError } from '../syscalls/index.js';
import { evaluateJsonnet, jsonnetLibrary } from '../syscalls/jsonnet.js';
import {
  absolutePath,
  anyObject,
  array,
  boolean,
  ConfigurationError,
  duration,
  integer,
  object,
  oneOf,
  oneOfKeys,
  optional,
  type Parser,
  record,
  string,
} from './schema.js';

export { ConfigurationError } from './schema.js';

export interface GrpcServerConfiguration {
  /** Unix socket paths. */
  readonly listenPaths: readonly string[];
  /** TCP addresses in Go's form (":8991", "127.0.0.1:8991", "[::1]:8991"). */
  readonly listenAddresses: readonly string[];
  /** `undefined` allows every request; a string denies every request with that message. */
  readonly denyMessage: string | undefined;
  /** A grpc.health.v1 service name reported as serving, besides "". */
  readonly healthCheckService: string;
  readonly maximumReceivedMessageSizeBytes: number | undefined;
}

export interface DiagnosticsListener {
  /** A TCP address in Go's form. */
  readonly address: string;
  /** As GrpcServerConfiguration's: that server's authenticationPolicy.deny. */
  readonly denyMessage: string | undefined;
}

export interface DiagnosticsHttpServerConfiguration {
  readonly listeners: readonly DiagnosticsListener[];
  readonly enablePrometheus: boolean;
}

/** Where each action's cgroup goes, its limits, and how an OOM kill is reported
 * (chrootRunner.cgroups; docs/configuration.md). */
export interface CgroupConfiguration {
  /** Refuse to start when the runner cannot make cgroups (mode "required"). */
  readonly required: boolean;
  readonly version: CgroupVersionChoice;
  readonly scopePrefix: string;
  readonly scopeLimits: ScopeLimits;
  readonly limits: CgroupLimits;
  /** exitStatus: as bb_runner (the signal), with oom_killed in the usage message;
   * resourceExhausted: the gRPC status RESOURCE_EXHAUSTED instead of a response. */
  readonly oomReporting: 'exitStatus' | 'resourceExhausted';
  /** Action cgroups kept made ahead (ActionCgroups.preparedAhead). */
  readonly preparedAhead: number;
}

export interface ApplicationConfiguration {
  readonly buildDirectoryPath: string;
  readonly grpcServers: readonly GrpcServerConfiguration[];
  readonly cleanTemporaryDirectories: readonly string[];
  readonly setTmpdirEnvironmentVariable: boolean;
  readonly cleanProcessTable: boolean;
  readonly readinessCheckingPathnames: readonly string[];
  readonly runCommandsAs: Credentials | undefined;
  readonly symlinkTemporaryDirectories: readonly string[];
  readonly runCommandCleaner: readonly string[];
  readonly diagnosticsHttpServer: DiagnosticsHttpServerConfiguration | undefined;
  /** Files the JSON log is written to besides stderr (global.logPaths). */
  readonly logPaths: readonly string[];
  readonly umask: number | undefined;
  /** Keys accepted for compatibility that have no effect here, for a start-up warning. */
  readonly ignoredKeys: readonly string[];
  readonly isolation: IsolationSettings;
  /** How long running actions may take to finish after SIGTERM before they are killed. */
  readonly shutdownGracePeriodMs: number;
  /** Runs beyond this many at once are refused with RESOURCE_EXHAUSTED. */
  readonly maximumConcurrentRuns: number;
  /** The mode of every unix socket the runner listens on, whatever the umask. */
  readonly socketMode: number;
  /** undefined: actions get no cgroup (mode "off"). */
  readonly cgroups: CgroupConfiguration | undefined;
}

/** A tmpfs `size` option: bytes, or with a k, m or g suffix. */
const tmpfsSize: Parser<string> = (value, path) => {
  const text = string(value, path);
  if (!/^[1-9]\d*[kmg]?$/.test(text)) {
    throw new ConfigurationError(
      `${path}: expected a size such as "64m" (bytes, or k, m, g), got ${JSON.stringify(text)}`,
    );
  }
  return text;
};

/** File permission bits as an octal string ("0660"). */
const fileMode: Parser<number> = (value, path) => {
  const text = string(value, path);
  if (!/^0?[0-7]{3}$/.test(text)) {
    throw new ConfigurationError(
      `${path}: expected an octal mode such as "0660", got ${JSON.stringify(text)}`,
    );
  }
  return Number.parseInt(text, 8);
};

const notSupported = (what: string) => `chroot-runner does not implement ${what}`;

const authenticationPolicy = oneOfKeys({ allow: anyObject, deny: string });

const grpcServer = object(
  {
    listenAddresses: optional(array(string), []),
    listenPaths: optional(array(string), []),
    authenticationPolicy: optional(authenticationPolicy),
    healthCheckService: optional(string, ''),
    maximumReceivedMessageSizeBytes: optional(integer(1, 2 ** 31 - 1)),
    stopGracefully: optional(boolean, true),
  },
  {
    tls: notSupported('TLS: listen on a unix socket shared with bb_worker instead'),
    alts: notSupported('ALTS'),
    keepaliveEnforcementPolicy: notSupported('keepalive enforcement policies'),
    keepaliveParameters: notSupported('keepalive parameters'),
    initialWindowSizeBytes: notSupported('window size tuning'),
    initialConnWindowSizeBytes: notSupported('window size tuning'),
    tracing: notSupported('tracing'),
    relays: notSupported('relays'),
  },
);

const httpServer = object(
  {
    listenAddresses: array(string),
    authenticationPolicy: optional(authenticationPolicy),
  },
  { tls: notSupported('TLS on the diagnostics server') },
);

const diagnosticsHttpServer = object({
  httpServers: optional(array(httpServer), []),
  // bb-storage's older single-address form.
  listenAddress: optional(string),
  enablePrometheus: optional(boolean, false),
  enablePprof: optional(boolean, false),
  enableActiveSpans: optional(boolean, false),
});

const global = object(
  {
    diagnosticsHttpServer: optional(diagnosticsHttpServer),
    logPaths: optional(array(string), []),
    setUmask: optional(object({ umask: integer(0, 0o777) })),
    tracing: optional(anyObject),
    mutexProfileFraction: optional(integer(0, 2 ** 31 - 1)),
    prometheusPushgateway: optional(anyObject),
    grpcForwardAndReuseMetadata: optional(array(string)),
    grpcKubernetesResolvers: optional(anyObject),
  },
  { setResourceLimits: notSupported('resource limits: set them on the runner process') },
);

const filesystems = object({
  proc: optional(boolean, true),
  procOptions: optional(record(string), {}),
  sys: optional(boolean, true),
  dev: optional(boolean, true),
  devSize: optional(tmpfsSize, defaultFilesystems.devSize),
  shmSize: optional(tmpfsSize, defaultFilesystems.shmSize),
  tmp: optional(boolean, true),
  createMountpoints: optional(boolean, true),
});

const byteCount = integer(4096, Number.MAX_SAFE_INTEGER);

/** Half the machine's memory: one action cannot take the host down; the runner's own
 * cgroup bounds all of them together. */
const defaultMemoryLimitBytes = Math.floor(totalmem() / 2);

/** What all of a runner's actions may use together by default: three quarters of the
 * machine's memory and half the kernel's pid space; the host keeps the rest. */
export const defaultScopeLimits = {
  memoryMaxBytes: Math.floor((totalmem() * 3) / 4),
  pidsMax: Math.floor(Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1').trim()) / 2),
};

const cgroups = object({
  mode: optional(oneOf(['auto', 'required', 'off']), 'auto'),
  version: optional(oneOf(['auto', 'v1', 'v2']), 'auto'),
  scopePrefix: optional(string, 'chroot-runner'),
  scopeMemoryLimitBytes: optional(byteCount, defaultScopeLimits.memoryMaxBytes),
  scopeProcessLimit: optional(integer(1, 4_194_304), defaultScopeLimits.pidsMax),
  memoryLimitBytes: optional(byteCount, defaultMemoryLimitBytes),
  memoryHighBytes: optional(byteCount),
  swapLimitBytes: optional(integer(0, Number.MAX_SAFE_INTEGER), 0),
  processLimit: optional(integer(1, 4_194_304), 4096),
  cpuLimitMillicores: optional(integer(1, 1_000_000)),
  cpuWeight: optional(integer(1, 10_000)),
  oomReporting: optional(oneOf(['exitStatus', 'resourceExhausted'] as const), 'exitStatus'),
  preparedAhead: optional(integer(0, 64), defaultPreparedCgroups),
});

const actionUserNamespace = object({
  enabled: optional(boolean, true),
  firstHostId: optional(integer(1, 2 ** 32 - 2), defaultActionUserNamespace.firstHostId),
  idCount: optional(integer(1, 2 ** 32 - 2), defaultActionUserNamespace.idCount),
});

const chrootRunner = object({
  isolation: optional(oneOf(isolationModes), 'namespaces'),
  filesystems: optional(filesystems, filesystems({}, 'chrootRunner.filesystems')),
  keepCapabilities: optional(array(oneOf(Object.keys(capabilityNumbers))), [
    ...defaultCapabilities,
  ]),
  network: optional(boolean, true),
  preparedNetworkNamespaces: optional(integer(0, 64), defaultPreparedNetworkNamespaces),
  seccomp: optional(
    object({
      enabled: optional(boolean, true),
      allow: optional(array(oneOf(seccompEntryNames)), []),
    }),
    { enabled: true, allow: [] },
  ),
  maximumConcurrentRuns: optional(integer(1, 1_000_000), defaultMaximumConcurrentRuns),
  socketMode: optional(fileMode, 0o660),
  actionUserNamespace: optional(
    actionUserNamespace,
    actionUserNamespace({}, 'chrootRunner.actionUserNamespace'),
  ),
  userNamespace: optional(
    object({ userId: integer(0, 2 ** 32 - 2), groupId: integer(0, 2 ** 32 - 2) }),
  ),
  shutdownGracePeriod: optional(duration, 30_000),
  cgroups: optional(cgroups, cgroups({}, 'chrootRunner.cgroups')),
});

const applicationConfiguration = object(
  {
    buildDirectoryPath: absolutePath,
    grpcServers: array(grpcServer),
    cleanTemporaryDirectories: optional(array(absolutePath), []),
    global: optional(global, global({}, 'global')),
    setTmpdirEnvironmentVariable: optional(boolean, false),
    chrootIntoInputRoot: optional(boolean, false),
    cleanProcessTable: optional(boolean, false),
    readinessCheckingPathnames: optional(array(string), []),
    runCommandsAs: optional(
      object({
        userId: integer(0, 2 ** 32 - 2),
        groupId: integer(0, 2 ** 32 - 2),
        additionalGroupIds: optional(array(integer(0, 2 ** 32 - 2)), []),
      }),
    ),
    symlinkTemporaryDirectories: optional(array(absolutePath), []),
    runCommandCleaner: optional(array(string), []),
    appleXcodeDeveloperDirectories: optional(record(string), {}),
    chrootRunner: optional(chrootRunner, chrootRunner({}, 'chrootRunner')),
  },
  {
    temporaryDirectoryInstaller:
      'the action’s temporary directory is mounted at /tmp inside the input root instead (chrootRunner.filesystems.tmp)',
    temporaryDirectories: 'renamed cleanTemporaryDirectories in bb_runner',
  },
);

/** Validates a parsed JSON document; `isolation` (from --isolation) overrides the file. */
export function parseConfiguration(
  document: unknown,
  overrides: { isolation?: IsolationMode } = {},
): ApplicationConfiguration {
  const parsed = applicationConfiguration(document, '');
  if (Object.keys(parsed.appleXcodeDeveloperDirectories).length > 0) {
    throw new ConfigurationError('appleXcodeDeveloperDirectories: not supported: macOS only');
  }
  parsed.grpcServers.forEach((server, index) => {
    if (server.listenPaths.length + server.listenAddresses.length === 0) {
      throw new ConfigurationError(
        `grpcServers[${index}]: expected at least one of listenPaths, listenAddresses`,
      );
    }
  });
  if (parsed.grpcServers.length === 0) {
    throw new ConfigurationError('grpcServers: expected at least one server');
  }
  const global = parsed.global;
  const diagnostics = global.diagnosticsHttpServer;
  const ignoredKeys = (
    [
      'tracing',
      'mutexProfileFraction',
      'prometheusPushgateway',
      'grpcForwardAndReuseMetadata',
      'grpcKubernetesResolvers',
    ] as const
  )
    .filter((key) => global[key] !== undefined)
    .map((key) => `global.${key}`);
  if (diagnostics?.enablePprof) ignoredKeys.push('global.diagnosticsHttpServer.enablePprof');
  if (diagnostics?.enableActiveSpans) {
    ignoredKeys.push('global.diagnosticsHttpServer.enableActiveSpans');
  }
  const runner = parsed.chrootRunner;
  const mode = overrides.isolation ?? runner.isolation;
  if (mode === 'rootless' && parsed.runCommandsAs !== undefined) {
    throw new ConfigurationError(
      'runCommandsAs: not supported in rootless mode: actions run as the runner’s ids as ' +
        'mapped in their user namespace (chrootRunner.userNamespace)',
    );
  }
  const idRange = runner.actionUserNamespace.enabled && {
    firstHostId: runner.actionUserNamespace.firstHostId,
    idCount: runner.actionUserNamespace.idCount,
    // A slot of ids for every Run that may run at once.
    concurrentActions: runner.maximumConcurrentRuns,
  };
  if (idRange) checkActionIdRange(idRange, parsed.runCommandsAs);
  return {
    buildDirectoryPath: parsed.buildDirectoryPath,
    grpcServers: parsed.grpcServers.map((server) => ({
      listenPaths: server.listenPaths.map((path) => resolve(path)),
      listenAddresses: server.listenAddresses,
      denyMessage: server.authenticationPolicy?.deny,
      healthCheckService: server.healthCheckService,
      maximumReceivedMessageSizeBytes: server.maximumReceivedMessageSizeBytes,
    })),
    cleanTemporaryDirectories: parsed.cleanTemporaryDirectories,
    setTmpdirEnvironmentVariable: parsed.setTmpdirEnvironmentVariable,
    cleanProcessTable: parsed.cleanProcessTable,
    readinessCheckingPathnames: parsed.readinessCheckingPathnames,
    runCommandsAs: parsed.runCommandsAs && {
      uid: parsed.runCommandsAs.userId,
      gid: parsed.runCommandsAs.groupId,
      additionalGroups: parsed.runCommandsAs.additionalGroupIds,
    },
    symlinkTemporaryDirectories: parsed.symlinkTemporaryDirectories,
    runCommandCleaner: parsed.runCommandCleaner,
    diagnosticsHttpServer: diagnostics && {
      listeners: [
        ...(diagnostics.listenAddress === undefined
          ? []
          : [{ address: diagnostics.listenAddress, denyMessage: undefined }]),
        ...diagnostics.httpServers.flatMap((server) =>
          server.listenAddresses.map((address) => ({
            address,
            denyMessage: server.authenticationPolicy?.deny,
          })),
        ),
      ],
      enablePrometheus: diagnostics.enablePrometheus,
    },
    logPaths: global.logPaths,
    umask: global.setUmask?.umask,
    ignoredKeys,
    isolation: {
      mode,
      chrootIntoInputRoot: parsed.chrootIntoInputRoot,
      filesystems: runner.filesystems,
      keepCapabilities: runner.keepCapabilities,
      network: runner.network,
      preparedNetworkNamespaces: runner.preparedNetworkNamespaces,
      seccomp: runner.seccomp,
      ...(idRange ? { actionUserNamespace: idRange } : {}),
      ...(runner.userNamespace === undefined
        ? {}
        : {
            userNamespace: { uid: runner.userNamespace.userId, gid: runner.userNamespace.groupId },
          }),
    },
    shutdownGracePeriodMs: runner.shutdownGracePeriod,
    maximumConcurrentRuns: runner.maximumConcurrentRuns,
    socketMode: runner.socketMode,
    cgroups: cgroupConfiguration(runner.cgroups),
  };
}

/** The range (a slot of idCount ids for each of maximumConcurrentRuns) must end below
 * 2^32 - 1 (no id), and the runCommandsAs ids, which actions' user namespaces map to
 * themselves, must lie outside it: the kernel refuses overlapping maps. */
function checkActionIdRange(
  range: ActionUserNamespace,
  runCommandsAs: { userId: number; groupId: number; additionalGroupIds: number[] } | undefined,
): void {
  const end = range.firstHostId + range.idCount * range.concurrentActions;
  const at = 'chrootRunner.actionUserNamespace';
  if (end > 2 ** 32 - 1) {
    throw new ConfigurationError(
      `${at}: firstHostId + idCount × maximumConcurrentRuns (${range.firstHostId} + ` +
        `${range.idCount} × ${range.concurrentActions} = ${end}) must not exceed 4294967295`,
    );
  }
  const ids = runCommandsAs
    ? [runCommandsAs.userId, runCommandsAs.groupId, ...runCommandsAs.additionalGroupIds]
    : [];
  const inside = ids.find((id) => id >= range.firstHostId && id < end);
  if (inside !== undefined) {
    throw new ConfigurationError(
      `${at}: runCommandsAs id ${inside} lies in the actions' host id range ${range.firstHostId}-${end - 1}`,
    );
  }
}

function cgroupConfiguration(parsed: ReturnType<typeof cgroups>): CgroupConfiguration | undefined {
  if (parsed.mode === 'off') return undefined;
  const scopePrefix = parsed.scopePrefix;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(scopePrefix)) {
    throw new ConfigurationError(
      `chrootRunner.cgroups.scopePrefix: expected a cgroup name (letters, digits, _ . -), got ${JSON.stringify(scopePrefix)}`,
    );
  }
  return {
    required: parsed.mode === 'required',
    version: parsed.version === 'auto' ? 'auto' : parsed.version === 'v1' ? 1 : 2,
    scopePrefix,
    scopeLimits: {
      memoryMaxBytes: parsed.scopeMemoryLimitBytes,
      pidsMax: parsed.scopeProcessLimit,
    },
    limits: {
      memoryMaxBytes: parsed.memoryLimitBytes,
      memoryHighBytes: parsed.memoryHighBytes ?? null,
      swapMaxBytes: parsed.swapLimitBytes,
      pidsMax: parsed.processLimit,
      cpuMaxMillicores: parsed.cpuLimitMillicores ?? null,
      cpuWeight: parsed.cpuWeight ?? null,
    },
    oomReporting: parsed.oomReporting,
    preparedAhead: parsed.preparedAhead,
  };
}

/** Evaluates a configuration as bb_runner does (bb-storage's configuration loader): the file's
 * contents, or standard input's for `-`, as Jsonnet whatever its name (JSON is Jsonnet), with
 * each environment variable as an external string variable (std.extVar('PWD')), imports
 * relative to the file. Without libjsonnet a plain JSON configuration still loads. */
export function readConfigurationDocument(file: string): unknown {
  const text = readFileSync(file === '-' ? 0 : file, 'utf8');
  const environment = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined,
    ),
  );
  let json: string;
  try {
    json = evaluateJsonnet(file, text, environment);
  } catch (error) {
    if (isSystemError(error, 'ELIBACC')) return parseWithoutJsonnet(file, text);
    throw new ConfigurationError(`${file}: ${(error as Error).message.trim()}`);
  }
  return JSON.parse(json);
}

/** A configuration read without libjsonnet: only plain JSON can be. */
function parseWithoutJsonnet(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ConfigurationError(
      `${file} is Jsonnet, not plain JSON, and ${jsonnetLibrary.name} cannot be loaded to evaluate it. Fix: ${jsonnetLibrary.fix}`,
    );
  }
}

export async function loadConfiguration(
  file: string,
  overrides: { isolation?: IsolationMode } = {},
): Promise<ApplicationConfiguration> {
  const document = readConfigurationDocument(file);
  try {
    return parseConfiguration(document, overrides);
  } catch (error) {
    if (error instanceof ConfigurationError) {
      throw new ConfigurationError(`${file}: ${error.message}`);
    }
    throw error;
  }
}

/** The configuration used when `serve` is given none: everything under `directory`. */
export function defaultConfigurationDocument(directory: string): Record<string, unknown> {
  return {
    buildDirectoryPath: resolve(directory, 'build'),
    grpcServers: [
      { listenPaths: [resolve(directory, 'runner')], authenticationPolicy: { allow: {} } },
    ],
    chrootIntoInputRoot: true,
    setTmpdirEnvironmentVariable: true,
  };
}
