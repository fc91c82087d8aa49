// Packaging: the `npm pack` tarball carries the addon prebuilt for this platform (made by the
// prepack script), installs into an empty directory with no C compiler at all (no node-gyp
// rebuild), and its `chroot-runner doctor` and `serve` work.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { populateBusyboxRoot } from '../../src/cli/busybox-root.js';
import { RunnerClient } from '../../src/server/client.js';
import { makeBuildDirectory } from '../helpers/busybox.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';
import { clientSocketsClosed, ServeProcess } from '../helpers/serve.js';

const repository = new URL('../../../', import.meta.url).pathname;

/** npm's lifecycle script `name` of this checkout. */
function runScript(name: string): void {
  execFileSync('npm', ['run', '--silent', name], {
    cwd: repository,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

describe('npm pack', { skip: needsRoot }, () => {
  it('installs without a compiler, runs doctor and serves an action', {
    timeout: 600_000,
  }, async () => {
    const state = processState();
    const scratch = makeBuildDirectory('chroot-runner-pack-');
    try {
      // What `npm pack` runs, less the prepare script's second build (npm test built dist/).
      let tarball: string;
      try {
        runScript('prepack');
        tarball = execFileSync(
          'npm',
          ['pack', '--ignore-scripts', '--silent', '--pack-destination', scratch.path],
          { cwd: repository, encoding: 'utf8' },
        ).trim();
      } finally {
        runScript('postpack');
      }
      // prebuildify moves the addon it builds: the prepack script puts this checkout's back.
      assert.ok(existsSync(join(repository, 'build/Release/chroot_runner.node')));
      const files = execFileSync('tar', ['-tzf', join(scratch.path, tarball)], {
        encoding: 'utf8',
      });
      const prebuilt = `package/prebuilds/linux-${process.arch}/`;
      assert.match(files, new RegExp(`^${prebuilt}chroot-runner\\..*\\.node$`, 'm'));
      assert.match(files, new RegExp(`^${prebuilt}chroot-runner-init$`, 'm'));
      assert.doesNotMatch(files, /^package\/build\//m);

      const project = join(scratch.path, 'project');
      mkdirSync(project);
      writeFileSync(join(project, 'package.json'), '{"name": "pack-test", "private": true}\n');
      // No compiler: any attempt to build the addon fails the install.
      const noCompiler = { ...process.env, CC: '/nonexistent', CXX: '/nonexistent' };
      execFileSync(
        'npm',
        ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch.path, tarball)],
        { cwd: project, env: noCompiler, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const installed = join(project, 'node_modules/chroot-runner');
      assert.equal(existsSync(join(installed, 'build')), false, 'node-gyp rebuild ran');
      const doctor = spawnSync('npx', ['--no-install', 'chroot-runner', 'doctor'], {
        cwd: project,
        env: noCompiler,
        encoding: 'utf8',
      });
      assert.equal(doctor.status, 0, doctor.stderr);
      assert.match(doctor.stdout, /^Usable here: namespaces/m);

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
