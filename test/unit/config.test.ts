// The configuration loader: bb_runner's keys, our chrootRunner section, errors naming the key
// path, Jsonnet, and every example of docs/configuration.md.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
      seccomp: { enabled: true, allow: [] },
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

  it('refuses chrootIntoInputRoot false or absent, saying why', () => {
    const { chrootIntoInputRoot: _, ...withoutChroot } = minimal;
    rejects(
      withoutChroot,
      /^chrootIntoInputRoot: must be true: chroot-runner always runs actions chrooted/,
    );
    rejects({ ...minimal, chrootIntoInputRoot: false }, /^chrootIntoInputRoot: must be true/);
  });

  it('loads JSON files and names the file in errors', () => {
    const file = join(directory, 'runner.json');
    writeFileSync(file, JSON.stringify({ ...minimal, cleanTemporaryDirectories: ['tmp'] }));
    assert.throws(() => loadConfiguration(file), {
      name: 'ConfigurationError',
      message: `${file}: cleanTemporaryDirectories[0]: expected an absolute path, got "tmp"`,
    });
    writeFileSync(file, '{"buildDirectoryPath": ');
    assert.throws(() => loadConfiguration(file), {
      name: 'ConfigurationError',
      message: new RegExp(`^${file}: `),
    });
  });

  it('evaluates Jsonnet with the environment as external variables', () => {
    const file = join(directory, 'runner.jsonnet');
    writeFileSync(
      file,
      `{ buildDirectoryPath: std.extVar('CHROOT_RUNNER_TEST_DIRECTORY'), grpcServers: [{ listenPaths: ['/s'] }], chrootIntoInputRoot: true }`,
    );
    process.env.CHROOT_RUNNER_TEST_DIRECTORY = '/from/environment';
    try {
      assert.equal(loadConfiguration(file).buildDirectoryPath, '/from/environment');
    } finally {
      delete process.env.CHROOT_RUNNER_TEST_DIRECTORY;
    }
    writeFileSync(file, '{ x: }');
    assert.throws(() => loadConfiguration(file), {
      name: 'ConfigurationError',
      message: /STATIC ERROR|Unexpected/,
    });
  });

  it('says clearly when no jsonnet evaluator is installed', () => {
    const file = join(directory, 'missing-evaluator.jsonnet');
    writeFileSync(file, '{}');
    const path = process.env.PATH;
    process.env.PATH = join(directory, 'no-such-directory');
    try {
      assert.throws(() => loadConfiguration(file), {
        name: 'ConfigurationError',
        message: `${file}: cannot evaluate Jsonnet: no \`jsonnet\` evaluator on PATH (Debian: apt-get install jsonnet), or give the configuration as .json`,
      });
    } finally {
      process.env.PATH = path;
    }
  });

  it('has an embedded default under a directory', () => {
    const configuration = parseConfiguration(defaultConfigurationDocument('/somewhere'));
    assert.equal(configuration.buildDirectoryPath, '/somewhere/build');
    assert.deepEqual(configuration.grpcServers[0]?.listenPaths, ['/somewhere/runner']);
    assert.equal(configuration.isolation.mode, 'namespaces');
  });

  it('loads every example of docs/configuration.md', () => {
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
        assert.equal(loadConfiguration(file).buildDirectoryPath, '/worker/build');
      }
    } finally {
      delete process.env.WORKER_DIRECTORY;
    }
  });
});
