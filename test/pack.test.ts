// Packaging: the `npm pack` tarball installs into an empty directory (the addon builds on
// install) and its `chroot-runner serve` serves an action.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { populateBusyboxRoot } from '../src/cli/busybox-root.js';
import { RunnerClient } from '../src/server/client.js';
import { makeBuildDirectory } from './helpers/busybox.js';
import { assertNothingLeft, needsRoot, processState } from './helpers/leaks.js';
import { clientSocketsClosed, ServeProcess } from './helpers/serve.js';

const repository = new URL('../../', import.meta.url).pathname;

describe('npm pack', { skip: needsRoot }, () => {
  // The install builds libjsonnet (@hanazuki/node-jsonnet, C++ through CMake): about 90 s of
  // CPU, minutes on a loaded machine.
  it('installs into an empty directory and serves an action', { timeout: 900_000 }, async () => {
    const state = processState();
    const scratch = makeBuildDirectory('chroot-runner-pack-');
    try {
      // dist/ is fresh: npm test builds first, so skip the prepare script's second build.
      const tarball = execFileSync(
        'npm',
        ['pack', '--ignore-scripts', '--silent', '--pack-destination', scratch.path],
        { cwd: repository, encoding: 'utf8' },
      ).trim();
      const project = join(scratch.path, 'project');
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), '{"name": "pack-test", "private": true}\n');
      execFileSync(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch.path, tarball)],
        {
          cwd: project,
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );

      const build = join(scratch.path, 'build');
      populateBusyboxRoot(join(build, 'root'));
      mkdirSync(join(build, 'tmp'));
      const socket = join(scratch.path, 'runner');
      const configuration = join(scratch.path, 'runner.json');
      writeFileSync(
        configuration,
        JSON.stringify({
          buildDirectoryPath: build,
          grpcServers: [{ listenPaths: [socket], authenticationPolicy: { allow: {} } }],
          chrootIntoInputRoot: true,
        }),
      );
      const serve = await ServeProcess.start(
        ['--config', configuration],
        [join(project, 'node_modules/.bin/chroot-runner')],
      );
      const client = new RunnerClient(`unix://${socket}`);
      try {
        const response = await client.run({
          arguments: ['readlink', '/proc/self/exe'],
          environmentVariables: { PATH: '/bin' },
          inputRootDirectory: 'root',
          temporaryDirectory: 'tmp',
          stdoutPath: 'stdout',
          stderrPath: 'stderr',
        });
        assert.equal(response.exitCode, 0n, readFileSync(join(build, 'stderr'), 'utf8'));
        assert.equal(readFileSync(join(build, 'stdout'), 'utf8'), '/bin/busybox\n');
      } finally {
        client.close();
        assert.deepEqual(await serve.stop(), [0, null]);
      }
    } finally {
      scratch.remove();
    }
    await clientSocketsClosed(state);
    assertNothingLeft(state, [scratch.path]);
  });
});
