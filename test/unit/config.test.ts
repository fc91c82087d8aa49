// The configuration loader: bb_runner's keys, our chrootRunner section, errors naming the key
// path, Jsonnet, and every example of docs/configuration.md.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { defaultCapabilities } from '../../src/sandbox/capabilities.js';
import {
  ConfigurationError,
  defaultConfigurationDocument,
  loadConfiguration,
  parseConfiguration,
} from '../../src/server/config.js';

const directory = mkdtempSync(join(tmpdir(), 'chroot-runner-config-'));
after(() => rmSync(directory, { recursive: true, force: true }));

const minimal = {
  buildDirectoryPath: '/worker/build',
  grpcServers: [{ listenPaths: ['/worker/runner'], authenticationPolicy: { allow: {} } }],
  chrootIntoInputRoot: true,
};

function rejects(document: unknown, message: string | RegExp): void {
  assert.throws(
    () => parseConfiguration(document),
    (error: unknown) => {
      assert.ok(error instanceof ConfigurationError, `not a ConfigurationError: ${error}`);
      if (typeof message === 'string') assert.equal(error.message, message);
      else assert.match(error.message, message);
      return true;
    },
  );
}

/** The fenced code blocks of a language in a Markdown file. */
function codeBlocks(markdown: string, language: string): string[] {
  const pattern = new RegExp(`^\`\`\`${language}\\n([\\s\\S]*?)^\`\`\`$`, 'gm');
  return [...markdown.matchAll(pattern)].map((match) => match[1] ?? '');
}

describe('configuration', () => {
  it('bounds all actions together by default, and takes a scope prefix', () => {
    const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    const cgroups = parseConfiguration(minimal).cgroups;
    assert.equal(cgroups?.scopePrefix, 'chroot-runner');
    assert.deepEqual(cgroups?.scopeLimits, {
      memoryMaxBytes: Math.floor((totalmem() * 3) / 4),
      pidsMax: Math.floor(pidMax / 2),
    });
    const configured = parseConfiguration({
      ...minimal,
      chrootRunner: {
        cgroups: { scopePrefix: 'ci', scopeMemoryLimitBytes: 2 ** 30, scopeProcessLimit: 500 },
      },
    }).cgroups;
    assert.equal(configured?.scopePrefix, 'ci');
    assert.deepEqual(configured?.scopeLimits, { memoryMaxBytes: 2 ** 30, pidsMax: 500 });
    rejects(
      { ...minimal, chrootRunner: { cgroups: { scopePrefix: '../up' } } },
      /^chrootRunner\.cgroups\.scopePrefix: expected a cgroup name/,
    );
  });

  it('fills in defaults for a minimal bb_runner configuration', () => {
    const configuration = parseConfiguration(minimal);
    assert.equal(configuration.buildDirectoryPath, '/worker/build');
    assert.deepEqual(configuration.grpcServers, [
      {
        listenPaths: ['/worker/runner'],
        listenAddresses: [],
        denyMessage: undefined,
        healthCheckService: '',
        maximumReceivedMessageSizeBytes: undefined,
      },
    ]);
    assert.equal(configuration.setTmpdirEnvironmentVariable, false);
    assert.equal(configuration.runCommandsAs, undefined);
    assert.equal(configuration.diagnosticsHttpServer, undefined);
    assert.deepEqual(configuration.isolation, {
      mode: 'namespaces',
      chrootIntoInputRoot: true,
      filesystems: {
        proc: true,
        procOptions: {},
        sys: true,
        dev: true,
        devSize: '1m',
        shmSize: '64m',
        tmp: true,
        createMountpoints: true,
      },
      keepCapabilities: defaultCapabilities,
      network: true,
      preparedNetworkNamespaces: 2,
      seccomp: { enabled: true, allow: [] },
      actionUserNamespace: { firstHostId: 0x70000000, idCount: 65536, concurrentActions: 256 },
    });
    assert.equal(configuration.shutdownGracePeriodMs, 30_000);
  });

  it('maps runCommandsAs, diagnostics and the chrootRunner section', () => {
    const configuration = parseConfiguration({
      ...minimal,
      runCommandsAs: { userId: 65534, groupId: 65534, additionalGroupIds: [5, '6'] },
      global: {
        diagnosticsHttpServer: {
          listenAddress: ':9980',
          httpServers: [
            { listenAddresses: ['127.0.0.1:9981'] },
            { listenAddresses: ['[::1]:9982'], authenticationPolicy: { deny: 'closed' } },
          ],
          enablePrometheus: true,
        },
        tracing: {},
      },
      chrootRunner: {
        isolation: 'shared',
        filesystems: { sys: false, procOptions: { hidepid: 'invisible' } },
        shutdownGracePeriod: '1.5s',
      },
    });
    assert.deepEqual(configuration.runCommandsAs, {
      uid: 65534,
      gid: 65534,
      additionalGroups: [5, 6],
    });
    assert.deepEqual(configuration.diagnosticsHttpServer, {
      listeners: [
        { address: ':9980', denyMessage: undefined },
        { address: '127.0.0.1:9981', denyMessage: undefined },
        { address: '[::1]:9982', denyMessage: 'closed' },
      ],
      enablePrometheus: true,
    });
    assert.deepEqual(configuration.ignoredKeys, ['global.tracing']);
    assert.equal(configuration.isolation.mode, 'shared');
    assert.equal(configuration.isolation.filesystems.sys, false);
    assert.equal(configuration.isolation.filesystems.proc, true);
    assert.deepEqual(configuration.isolation.filesystems.procOptions, { hidepid: 'invisible' });
    assert.equal(configuration.shutdownGracePeriodMs, 1500);
  });

  it('maps the actions’ user namespace range, or none, and refuses runCommandsAs ids in it', () => {
    const range = (actionUserNamespace: unknown, extra: object = {}) =>
      parseConfiguration({ ...minimal, ...extra, chrootRunner: { actionUserNamespace } }).isolation
        .actionUserNamespace;
    // A slot of idCount ids for each Run that may run at once.
    assert.deepEqual(range({ firstHostId: 200000, idCount: 1000 }), {
      firstHostId: 200000,
      idCount: 1000,
      concurrentActions: 256,
    });
    assert.deepEqual(
      parseConfiguration({ ...minimal, chrootRunner: { maximumConcurrentRuns: 3 } }).isolation
        .actionUserNamespace,
      { firstHostId: 0x70000000, idCount: 65536, concurrentActions: 3 },
    );
    assert.equal(range({ enabled: false }), undefined);
    rejects(
      { ...minimal, chrootRunner: { actionUserNamespace: { firstHostId: 4294967290 } } },
      'chrootRunner.actionUserNamespace: firstHostId + idCount × maximumConcurrentRuns (4294967290 + 65536 × 256 = 4311744506) must not exceed 4294967295',
    );
    // The range would fit one action's ids, not 256 of them.
    rejects(
      { ...minimal, chrootRunner: { actionUserNamespace: { firstHostId: 4294000000 } } },
      'chrootRunner.actionUserNamespace: firstHostId + idCount × maximumConcurrentRuns (4294000000 + 65536 × 256 = 4310777216) must not exceed 4294967295',
    );
    rejects(
      {
        ...minimal,
        runCommandsAs: { userId: 1000, groupId: 200010 },
        chrootRunner: { actionUserNamespace: { firstHostId: 200000 } },
      },
      "chrootRunner.actionUserNamespace: runCommandsAs id 200010 lies in the actions' host id range 200000-16977215",
    );
    // In the last slot too, not only in the first.
    rejects(
      {
        ...minimal,
        runCommandsAs: { userId: 201500, groupId: 1000 },
        chrootRunner: {
          maximumConcurrentRuns: 2,
          actionUserNamespace: { firstHostId: 200000, idCount: 1000 },
        },
      },
      "chrootRunner.actionUserNamespace: runCommandsAs id 201500 lies in the actions' host id range 200000-201999",
    );
  });

  it('takes 0 to 64 network namespaces made ahead', () => {
    for (const preparedNetworkNamespaces of [0, 64]) {
      const document = { ...minimal, chrootRunner: { preparedNetworkNamespaces } };
      assert.equal(
        parseConfiguration(document).isolation.preparedNetworkNamespaces,
        preparedNetworkNamespaces,
      );
    }
    rejects(
      { ...minimal, chrootRunner: { preparedNetworkNamespaces: 65 } },
      /chrootRunner\.preparedNetworkNamespaces/,
    );
  });

  it('lets --isolation override the file', () => {
    const document = { ...minimal, chrootRunner: { isolation: 'shared' } };
    assert.equal(parseConfiguration(document, { isolation: 'none' }).isolation.mode, 'none');
  });

  it('names the key path of unknown keys and wrong types', () => {
    rejects(
      { ...minimal, grpcServers: [{ listenPath: ['/worker/runner'] }] },
      /^grpcServers\[0\]\.listenPath: unknown key \(known keys: listenAddresses, listenPaths, /,
    );
    rejects(
      { ...minimal, grpcServers: [{ listenPaths: ['/a', 3] }] },
      'grpcServers[0].listenPaths[1]: expected a string, got number 3',
    );
    rejects(
      { ...minimal, cleanProcessTable: 'yes' },
      'cleanProcessTable: expected true or false, got string "yes"',
    );
    rejects(
      { ...minimal, runCommandsAs: { userId: -1, groupId: 0 } },
      'runCommandsAs.userId: expected an integer from 0 to 4294967294, got -1',
    );
    rejects(
      { ...minimal, runCommandsAs: { groupId: 0 } },
      'runCommandsAs.userId: missing; expected an integer',
    );
    rejects(
      { ...minimal, chrootRunner: { isolation: 'vm' } },
      'chrootRunner.isolation: expected one of namespaces, shared, none, rootless, got "vm"',
    );
    rejects(
      { ...minimal, chrootRunner: { filesystems: { proc: 1 } } },
      'chrootRunner.filesystems.proc: expected true or false, got number 1',
    );
    rejects(
      { ...minimal, chrootRunner: { shutdownGracePeriod: '30' } },
      'chrootRunner.shutdownGracePeriod: expected a duration such as "30s", got "30"',
    );
    rejects(
      { ...minimal, buildDirectoryPath: 'build' },
      'buildDirectoryPath: expected an absolute path, got "build"',
    );
    rejects([], 'configuration: expected an object, got an array');
    rejects(
      { ...minimal, chrootRunner: { keepCapabilities: ['CHOWN', 'CAP_KILL'] } },
      /^chrootRunner\.keepCapabilities\[1\]: expected one of CHOWN, .*got "CAP_KILL"$/,
    );
    rejects(
      { ...minimal, global: { diagnosticsHttpServer: { enablePrometheus: true, port: 1 } } },
      /^global\.diagnosticsHttpServer\.port: unknown key/,
    );
  });

  it('explains the keys of bb_runner it does not support', () => {
    rejects(
      { ...minimal, temporaryDirectoryInstaller: { address: 'unix:///x' } },
      /^temporaryDirectoryInstaller: not supported: .*\/tmp/,
    );
    rejects(
      { ...minimal, grpcServers: [{ listenPaths: ['/x'], tls: {} }] },
      /^grpcServers\[0\]\.tls: not supported: /,
    );
    rejects(
      { ...minimal, global: { setResourceLimits: {} } },
      /^global\.setResourceLimits: not supported: /,
    );
    rejects(
      { ...minimal, grpcServers: [{ listenPaths: ['/x'], authenticationPolicy: { jwt: {} } }] },
      /^grpcServers\[0\]\.authenticationPolicy\.jwt: unknown key/,
    );
    rejects(
      { ...minimal, grpcServers: [{ authenticationPolicy: { allow: {} } }] },
      'grpcServers[0]: expected at least one of listenPaths, listenAddresses',
    );
    rejects(
      { ...minimal, appleXcodeDeveloperDirectories: { '14': '/Applications' } },
      /macOS only/,
    );
  });

  it('reads field names as protojson does: lowerCamelCase or snake_case, null as absent', () => {
    const configuration = parseConfiguration({
      build_directory_path: '/worker/build',
      grpc_servers: [{ listen_paths: ['/worker/runner'], authentication_policy: { allow: {} } }],
      chroot_into_input_root: true,
      run_commands_as: { user_id: 1000, group_id: '1000', additional_group_ids: null },
      global: { diagnostics_http_server: null, log_paths: null },
      clean_temporary_directories: null,
      chroot_runner: { isolation: 'shared', filesystems: { create_mountpoints: false } },
    });
    assert.equal(configuration.buildDirectoryPath, '/worker/build');
    assert.deepEqual(configuration.grpcServers[0]?.listenPaths, ['/worker/runner']);
    assert.deepEqual(configuration.runCommandsAs, { uid: 1000, gid: 1000, additionalGroups: [] });
    assert.equal(configuration.diagnosticsHttpServer, undefined);
    assert.equal(configuration.isolation.mode, 'shared');
    assert.equal(configuration.isolation.filesystems.createMountpoints, false);
    assert.equal(parseConfiguration({ ...minimal, global: null }).umask, undefined);
    // Keys of maps are data, not field names.
    const proc = parseConfiguration({
      ...minimal,
      chrootRunner: { filesystems: { procOptions: { hide_pid: 'x' } } },
    });
    assert.deepEqual(proc.isolation.filesystems.procOptions, { hide_pid: 'x' });
    rejects(
      { ...minimal, build_directory_path: '/elsewhere' },
      'build_directory_path: duplicate of buildDirectoryPath',
    );
    rejects({ ...minimal, buildDirectory_path: '/x' }, /^buildDirectory_path: unknown key/);
    rejects(
      { ...minimal, temporary_directory_installer: { address: 'unix:///x' } },
      /^temporaryDirectoryInstaller: not supported: /,
    );
    rejects(
      { ...minimal, buildDirectoryPath: null },
      'buildDirectoryPath: missing; expected a string',
    );
  });

  it('accepts chrootIntoInputRoot false or absent, as bb_runner does', () => {
    const { chrootIntoInputRoot: _, ...withoutChroot } = minimal;
    assert.equal(parseConfiguration(withoutChroot).isolation.chrootIntoInputRoot, false);
    assert.equal(
      parseConfiguration({ ...minimal, chrootIntoInputRoot: false }).isolation.chrootIntoInputRoot,
      false,
    );
    assert.equal(parseConfiguration(minimal).isolation.chrootIntoInputRoot, true);
  });

  it('evaluates every file as Jsonnet, whatever its name, and names the file in errors', async () => {
    const file = join(directory, 'runner.json');
    writeFileSync(file, JSON.stringify({ ...minimal, cleanTemporaryDirectories: ['tmp'] }));
    await assert.rejects(loadConfiguration(file), {
      name: 'ConfigurationError',
      message: `${file}: cleanTemporaryDirectories[0]: expected an absolute path, got "tmp"`,
    });
    writeFileSync(file, '{"buildDirectoryPath": ');
    await assert.rejects(loadConfiguration(file), {
      name: 'ConfigurationError',
      message: new RegExp(`^${file}: `),
    });
    // Jsonnet in a .json file, as bb-storage's loader reads it.
    writeFileSync(
      file,
      `// a comment\n{ buildDirectoryPath: '/a' + '/b', grpcServers: [{ listenPaths: ['/s'] }], }`,
    );
    assert.equal((await loadConfiguration(file)).buildDirectoryPath, '/a/b');
    // Unreadable: the system error, for serve to name the fix.
    await assert.rejects(loadConfiguration(join(directory, 'missing.jsonnet')), {
      code: 'ENOENT',
      path: join(directory, 'missing.jsonnet'),
    });
  });

  it('passes every environment variable as an external variable, and imports beside the file', async () => {
    const file = join(directory, 'runner.jsonnet');
    writeFileSync(join(directory, 'common.libsonnet'), `{ server: { listenPaths: ['/s'] } }`);
    writeFileSync(
      file,
      `local common = import 'common.libsonnet';
{ buildDirectoryPath: std.extVar('CHROOT_RUNNER_TEST_DIRECTORY'), grpcServers: [common.server],
  setTmpdirEnvironmentVariable: std.extVar('chroot-runner.test') == 'x=y' }`,
    );
    process.env.CHROOT_RUNNER_TEST_DIRECTORY = '/from/environment';
    process.env['chroot-runner.test'] = 'x=y';
    try {
      const configuration = await loadConfiguration(file);
      assert.equal(configuration.buildDirectoryPath, '/from/environment');
      assert.equal(configuration.setTmpdirEnvironmentVariable, true);
    } finally {
      delete process.env.CHROOT_RUNNER_TEST_DIRECTORY;
      delete process.env['chroot-runner.test'];
    }
    writeFileSync(file, '{ x: }');
    await assert.rejects(loadConfiguration(file), {
      name: 'ConfigurationError',
      message: /STATIC ERROR|Unexpected/,
    });
    writeFileSync(file, `{ x: std.extVar('CHROOT_RUNNER_TEST_UNSET') }`);
    await assert.rejects(loadConfiguration(file), {
      name: 'ConfigurationError',
      message: /CHROOT_RUNNER_TEST_UNSET/,
    });
  });

  it('loads bb-deployments’ three runner configurations unchanged', async () => {
    const deployments = new URL('../../../test/fixtures/bb-deployments/', import.meta.url).pathname;
    const saved = { PWD: process.env.PWD, OS: process.env.OS };
    process.env.PWD = '/home/operator/bb-deployments/bare';
    process.env.OS = 'Linux';
    try {
      const bare = await loadConfiguration(join(deployments, 'bare/config/runner.jsonnet'));
      assert.equal(bare.buildDirectoryPath, '/home/operator/bb-deployments/bare/worker/build');
      assert.deepEqual(bare.grpcServers[0]?.listenPaths, [resolve('worker/runner')]);
      assert.deepEqual(bare.diagnosticsHttpServer, {
        listeners: [{ address: ':9987', denyMessage: undefined }],
        enablePrometheus: true,
      });
      assert.equal(bare.isolation.chrootIntoInputRoot, false);
      for (const file of [
        'docker-compose/config/runner-ubuntu22-04.jsonnet',
        'kubernetes/config/runner-ubuntu22-04.jsonnet',
      ]) {
        const configuration = await loadConfiguration(join(deployments, file));
        assert.equal(configuration.buildDirectoryPath, '/worker/build');
        assert.deepEqual(configuration.grpcServers[0]?.listenPaths, ['/worker/runner']);
        assert.equal(configuration.grpcServers[0]?.denyMessage, undefined);
        assert.equal(configuration.isolation.mode, 'namespaces');
      }
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('has an embedded default under a directory', () => {
    const configuration = parseConfiguration(defaultConfigurationDocument('/somewhere'));
    assert.equal(configuration.buildDirectoryPath, '/somewhere/build');
    assert.deepEqual(configuration.grpcServers[0]?.listenPaths, ['/somewhere/runner']);
    assert.equal(configuration.isolation.mode, 'namespaces');
  });

  it('loads every example of docs/configuration.md', async () => {
    const markdown = readFileSync(
      new URL('../../../docs/configuration.md', import.meta.url),
      'utf8',
    );
    const json = codeBlocks(markdown, 'json');
    const jsonnet = codeBlocks(markdown, 'jsonnet');
    assert.ok(json.length >= 4 && jsonnet.length >= 1, 'examples found');
    for (const example of json) parseConfiguration(JSON.parse(example));
    const file = join(directory, 'example.jsonnet');
    process.env.WORKER_DIRECTORY = '/worker';
    try {
      for (const example of jsonnet) {
        writeFileSync(file, example);
        assert.equal((await loadConfiguration(file)).buildDirectoryPath, '/worker/build');
      }
    } finally {
      delete process.env.WORKER_DIRECTORY;
    }
  });
});
