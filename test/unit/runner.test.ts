// The runner layer without the engine, and without root: request mapping and status codes of
// LocalRunner (with a recording engine in place of the Engine), CheckReadiness on a real build
// directory, and each decorator and cleaner against the real file system
// (test/system/process-table-cleaner.test.ts kills processes as root).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import {
  CheckReadinessRequestSchema,
  POSIXResourceUsageSchema,
  type RunRequest,
  RunRequestSchema,
  RunResponseSchema,
} from '../../src/proto/index.js';
import { CleanRunner } from '../../src/runner/clean.js';
import { chainCleaners, IdleInvoker } from '../../src/runner/cleaner.js';
import { commandCleaner } from '../../src/runner/command-cleaner.js';
import { directoryCleaner } from '../../src/runner/directory-cleaner.js';
import { actionResults, LocalRunner } from '../../src/runner/local.js';
import { PathExistenceCheckingRunner } from '../../src/runner/path-existence-checking.js';
import { resolveRelativePath } from '../../src/runner/paths.js';
import { type Runner, RunnerError } from '../../src/runner/runner.js';
import { TemporaryDirectorySymlinkingRunner } from '../../src/runner/temporary-directory-symlinking.js';
import { defaultCapabilities } from '../../src/sandbox/capabilities.js';
import { temporaryDirectoryPath } from '../../src/sandbox/index.js';
import {
  ActionError,
  type ActionResult,
  type ActionSpec,
  type IsolationSettings,
} from '../../src/sandbox/types.js';
import { openDirectory, openHandleCount } from '../../src/syscalls/index.js';

const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-runner-'));
after(() => rmSync(directory, { recursive: true, force: true }));

function isolation(mode: IsolationSettings['mode'], tmp = true): IsolationSettings {
  return {
    mode,
    filesystems: {
      proc: true,
      procOptions: {},
      sys: true,
      dev: true,
      devSize: '1m',
      shmSize: '64m',
      tmp,
      createMountpoints: true,
    },
    keepCapabilities: defaultCapabilities,
    network: true,
    seccomp: { enabled: true, allow: [] },
  };
}

const exited: ActionResult = {
  exitCode: 0,
  terminationSignal: null,
  resourceUsage: {
    userTimeNanoseconds: 1_500_000_000n,
    systemTimeNanoseconds: 2_000n,
    maximumResidentSetSizeBytes: 4096,
    pageReclaims: 1,
    pageFaults: 2,
    swaps: 3,
    blockInputOperations: 4,
    blockOutputOperations: 5,
    messagesSent: 6,
    messagesReceived: 7,
    signalsReceived: 8,
    voluntaryContextSwitches: 9,
    involuntaryContextSwitches: 10,
  },
  timings: { setup: 1, run: 2, teardown: 3 },
};

function request(fields: Partial<Omit<RunRequest, '$typeName'>> = {}): RunRequest {
  return create(RunRequestSchema, {
    arguments: ['/bin/true'],
    inputRootDirectory: 'action/root',
    temporaryDirectory: 'action/tmp',
    stdoutPath: 'action/stdout',
    stderrPath: 'action/stderr',
    ...fields,
  });
}

/** A LocalRunner over a recording engine that answers with `outcome`. */
function localRunner(
  mode: IsolationSettings['mode'],
  outcome: (spec: ActionSpec) => Promise<ActionResult>,
  setTmpdirEnvironmentVariable = true,
) {
  const specs: ActionSpec[] = [];
  const buildDirectory = openDirectory(directory);
  const settings = isolation(mode);
  const runner = new LocalRunner({
    buildDirectory,
    credentials: { uid: 65534, gid: 65534, additionalGroups: [] },
    setTmpdirEnvironmentVariable,
    engine: {
      run: (spec) => {
        specs.push(spec);
        return outcome(spec);
      },
      temporaryDirectoryPath: (relative) => temporaryDirectoryPath(settings, directory, relative),
    },
  });
  return { runner, specs, [Symbol.dispose]: () => buildDirectory.close() };
}

async function rejectsWith(promise: Promise<unknown>, code: status, message: string | RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RunnerError, `not a RunnerError: ${error}`);
    assert.equal(status[error.code], status[code]);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

describe('resolveRelativePath', () => {
  it('normalises and refuses escapes', () => {
    assert.deepEqual(resolveRelativePath('a/./b//c/../d'), {
      components: ['a', 'b', 'd'],
      namesDirectory: false,
    });
    assert.deepEqual(resolveRelativePath(''), { components: [], namesDirectory: true });
    assert.deepEqual(resolveRelativePath('a/'), { components: ['a'], namesDirectory: true });
    assert.deepEqual(resolveRelativePath('a/.'), { components: ['a'], namesDirectory: true });
    assert.deepEqual(resolveRelativePath('a/b/..'), { components: ['a'], namesDirectory: true });
    assert.deepEqual(resolveRelativePath('./a'), { components: ['a'], namesDirectory: false });
    assert.throws(() => resolveRelativePath('..'), /outside the build directory/);
    assert.throws(
      () => resolveRelativePath('hello/../../etc/passwd'),
      /outside the build directory/,
    );
    assert.throws(() => resolveRelativePath('/etc/passwd'), /Path is absolute/);
  });
});

describe('LocalRunner', () => {
  it('maps a request onto an action spec exactly', async () => {
    using local = localRunner('namespaces', async () => exited);
    const controller = new AbortController();
    const response = await local.runner.run(
      request({
        arguments: ['sh', '-c', 'env'],
        environmentVariables: { PATH: '/bin', B: 'b' },
        workingDirectory: 'sub/./dir',
      }),
      controller.signal,
    );
    const [spec] = local.specs;
    assert.ok(spec !== undefined);
    assert.equal(spec.inputRoot, 'action/root');
    assert.deepEqual(spec.arguments, ['sh', '-c', 'env']);
    assert.deepEqual(spec.environment, { TMPDIR: '/tmp', PATH: '/bin', B: 'b' });
    assert.deepEqual(Object.keys(spec.environment), ['TMPDIR', 'PATH', 'B']);
    assert.equal(spec.workingDirectory, 'sub/dir');
    assert.equal(spec.stdoutPath, 'action/stdout');
    assert.equal(spec.stderrPath, 'action/stderr');
    assert.equal(spec.temporaryDirectory, 'action/tmp');
    assert.deepEqual(spec.credentials, { uid: 65534, gid: 65534, additionalGroups: [] });
    assert.equal(spec.signal, controller.signal);

    assert.equal(response.exitCode, 0n);
    assert.equal(actionResults.get(response), exited);
    const [usageAny] = response.resourceUsage;
    assert.equal(
      usageAny?.typeUrl,
      'type.googleapis.com/buildbarn.resourceusage.POSIXResourceUsage',
    );
    const usage = usageAny && anyUnpack(usageAny, POSIXResourceUsageSchema);
    assert.equal(usage?.userTime?.seconds, 1n);
    assert.equal(usage?.userTime?.nanos, 500_000_000);
    assert.equal(usage?.systemTime?.nanos, 2_000);
    assert.equal(usage?.maximumResidentSetSize, 4096n);
    assert.equal(usage?.involuntaryContextSwitches, 10n);
    assert.equal(usage?.terminationSignal, '');
  });

  it('sets TMPDIR to the host path where /tmp is not the temporary directory, and lets the request win', async () => {
    using none = localRunner('none', async () => exited);
    await none.runner.run(request(), new AbortController().signal);
    assert.equal(none.specs[0]?.environment.TMPDIR, join(directory, 'action/tmp'));
    await none.runner.run(
      request({ environmentVariables: { TMPDIR: '/somewhere/else' } }),
      new AbortController().signal,
    );
    assert.deepEqual(none.specs[1]?.environment, { TMPDIR: '/somewhere/else' });
    await none.runner.run(request({ temporaryDirectory: '' }), new AbortController().signal);
    assert.deepEqual(none.specs[2]?.environment, {});
    assert.equal(none.specs[2]?.temporaryDirectory, undefined);

    using without = localRunner('namespaces', async () => exited, false);
    await without.runner.run(request(), new AbortController().signal);
    assert.deepEqual(without.specs[0]?.environment, {});
  });

  it('returns -1 and the signal name for an action killed by a signal', async () => {
    using local = localRunner('namespaces', async () => ({
      ...exited,
      exitCode: null,
      terminationSignal: 'KILL',
    }));
    const response = await local.runner.run(request(), new AbortController().signal);
    assert.equal(response.exitCode, -1n);
    const usage =
      response.resourceUsage[0] && anyUnpack(response.resourceUsage[0], POSIXResourceUsageSchema);
    assert.equal(usage?.terminationSignal, 'KILL');
  });

  it('answers bad requests with bb_runner statuses before running anything', async () => {
    using local = localRunner('namespaces', async () => exited);
    const signal = new AbortController().signal;
    await rejectsWith(
      local.runner.run(request({ arguments: [] }), signal),
      status.INVALID_ARGUMENT,
      'Insufficient number of command arguments',
    );
    await rejectsWith(
      local.runner.run(request({ stdoutPath: 'hello/../../../../../../etc/passwd' }), signal),
      status.INVALID_ARGUMENT,
      'Failed to open stdout path "hello/../../../../../../etc/passwd": Path resolves to a location outside the build directory',
    );
    await rejectsWith(
      local.runner.run(request({ stderrPath: 'action/' }), signal),
      status.INVALID_ARGUMENT,
      'Failed to open stderr path "action/": Path resolves to a directory',
    );
    await rejectsWith(
      local.runner.run(request({ inputRootDirectory: '../root' }), signal),
      status.INVALID_ARGUMENT,
      'Failed to resolve input root directory: Path resolves to a location outside the build directory',
    );
    await rejectsWith(
      local.runner.run(request({ workingDirectory: '/abs' }), signal),
      status.INVALID_ARGUMENT,
      'Failed to resolve working directory: Path is absolute, while a relative path was expected',
    );
    assert.equal(local.specs.length, 0);
  });

  it('maps engine errors and aborts to statuses', async () => {
    const signal = new AbortController().signal;
    using invalid = localRunner('namespaces', async () => {
      throw new ActionError('invalidArgument', 'Cannot find executable "x" in search paths ""');
    });
    await rejectsWith(
      invalid.runner.run(request(), signal),
      status.INVALID_ARGUMENT,
      'Cannot find executable "x" in search paths ""',
    );
    using internal = localRunner('namespaces', async () => {
      throw new ActionError('internal', 'Failed to start process: clone: EAGAIN');
    });
    await rejectsWith(
      internal.runner.run(request(), signal),
      status.INTERNAL,
      'Failed to start process: clone: EAGAIN',
    );
    using unexpected = localRunner('namespaces', async () => {
      throw new Error('boom');
    });
    await rejectsWith(
      unexpected.runner.run(request(), signal),
      status.INTERNAL,
      'Failed to run action: boom',
    );

    using aborted = localRunner('namespaces', async (spec) => {
      await once(spec.signal as AbortSignal, 'abort');
      throw new DOMException('aborted', 'AbortError');
    });
    const controller = new AbortController();
    const running = aborted.runner.run(request(), controller.signal);
    controller.abort(new RunnerError(status.UNAVAILABLE, 'Runner is shutting down'));
    await rejectsWith(running, status.UNAVAILABLE, 'Runner is shutting down');
  });

  it('checks readiness by lstat beneath the build directory, never escaping it', async () => {
    mkdirSync(join(directory, 'ready/dir'), { recursive: true });
    symlinkSync('/nonexistent', join(directory, 'ready/dangling'));
    const handles = openHandleCount();
    using local = localRunner('namespaces', async () => exited);
    const check = (path: string) =>
      local.runner.checkReadiness(create(CheckReadinessRequestSchema, { path }));
    await check('');
    await check('.');
    await check('ready/dir');
    await check('ready/dangling');
    await rejectsWith(
      check('does_not_exist'),
      status.INTERNAL,
      /^Failed to check existence of path "does_not_exist" in build directory: .*ENOENT/,
    );
    await rejectsWith(
      check('does/not/exist'),
      status.INTERNAL,
      /^Failed to resolve path "does\/not\/exist" in build directory: .*ENOENT/,
    );
    await rejectsWith(
      check('../etc'),
      status.INTERNAL,
      'Failed to resolve path "../etc" in build directory: Path resolves to a location outside the build directory',
    );
    await rejectsWith(
      check('ready/dangling/x'),
      status.INTERNAL,
      /^Failed to resolve path "ready\/dangling\/x" in build directory: /,
    );
    assert.equal(openHandleCount(), handles + 1);
  });
});

/** A base runner that records calls and what the file system looked like meanwhile. */
class RecordingRunner implements Runner {
  readonly calls: string[] = [];
  constructor(private readonly during: () => string = () => '') {}
  async run(runRequest: RunRequest): Promise<ReturnType<typeof create<typeof RunResponseSchema>>> {
    this.calls.push(`run ${runRequest.arguments.join(' ')} ${this.during()}`.trim());
    return create(RunResponseSchema, { exitCode: BigInt(runRequest.arguments.length - 1) });
  }
  async checkReadiness(): Promise<void> {
    this.calls.push(`checkReadiness ${this.during()}`.trim());
  }
}

describe('decorators', () => {
  it('IdleInvoker cleans on idle→busy and busy→idle only', async () => {
    const events: string[] = [];
    const invoker = new IdleInvoker(async () => {
      events.push('clean');
    });
    await Promise.all([invoker.acquire(), invoker.acquire()]);
    events.push('busy');
    await invoker.release();
    events.push('one left');
    await invoker.release();
    assert.deepEqual(events, ['clean', 'busy', 'one left', 'clean']);
  });

  it('CleanRunner empties temporary directories around calls; the command cleaner runs too', async () => {
    const scratch = join(directory, 'scratch');
    mkdirSync(scratch);
    writeFileSync(join(scratch, 'left-over'), '');
    mkdirSync(join(scratch, 'sub/deeper'), { recursive: true });
    const marker = join(directory, 'cleaned');
    const base = new RecordingRunner(() => readdirSync(scratch).join(','));
    const runner = new CleanRunner(
      base,
      new IdleInvoker(
        chainCleaners([
          directoryCleaner(scratch),
          commandCleaner(['/bin/sh', '-c', `echo x >> ${marker}`]),
        ]),
      ),
    );
    writeFileSync(join(scratch, 'more'), '');
    await runner.run(request({ arguments: ['a'] }), new AbortController().signal);
    assert.deepEqual(base.calls, ['run a']);
    assert.deepEqual(readdirSync(scratch), []);
    assert.equal(readdirSync(directory).includes('cleaned'), true);

    const failing = new CleanRunner(
      base,
      new IdleInvoker(commandCleaner(['/bin/sh', '-c', 'echo nope >&2; exit 3'])),
    );
    await rejectsWith(
      failing.checkReadiness(create(CheckReadinessRequestSchema)),
      status.INTERNAL,
      /^Failed to clean: Failed to run cleaning command \["\/bin\/sh","-c","echo nope >&2; exit 3"\]: nope$/,
    );
  });

  it('PathExistenceCheckingRunner needs its paths for readiness and after failures', async () => {
    const required = join(directory, 'required');
    const base = new RecordingRunner();
    const runner = new PathExistenceCheckingRunner(base, [required]);
    await rejectsWith(
      runner.checkReadiness(create(CheckReadinessRequestSchema)),
      status.UNAVAILABLE,
      new RegExp(`^Path "${required}": .*ENOENT`),
    );
    const succeeded = await runner.run(
      request({ arguments: ['ok'] }),
      new AbortController().signal,
    );
    assert.equal(succeeded.exitCode, 0n);
    await rejectsWith(
      runner.run(request({ arguments: ['fails', 'x'] }), new AbortController().signal),
      status.UNAVAILABLE,
      /^One or more required files disappeared during execution: Path /,
    );
    writeFileSync(required, '');
    await runner.checkReadiness(create(CheckReadinessRequestSchema));
    assert.equal(
      (await runner.run(request({ arguments: ['fails', 'x'] }), new AbortController().signal))
        .exitCode,
      1n,
    );
  });

  it('TemporaryDirectorySymlinkingRunner points the symlink at the action, and nowhere when idle', async () => {
    const link = join(directory, 'system-tmp');
    mkdirSync(link);
    const base = new RecordingRunner(() => readlinkSync(link));
    const runner = new TemporaryDirectorySymlinkingRunner(base, link, directory);
    await runner.run(request({ temporaryDirectory: 'action/./tmp' }), new AbortController().signal);
    assert.deepEqual(base.calls, [`run /bin/true ${join(directory, 'action/tmp')}`]);
    await runner.checkReadiness(create(CheckReadinessRequestSchema));
    assert.equal(readlinkSync(link), '/nonexistent');
  });
});
