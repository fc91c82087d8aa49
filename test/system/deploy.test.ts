// deploy/: the Containerfile and the manifests beside bb_worker. No image can be built here (no
// container engine), so this checks what can be: every file the Containerfile copies exists,
// its entrypoint and command serve the deployment's configuration (with /worker moved into a
// scratch directory), and the manifests keep bb-deployments' conventions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfiguration } from '../../src/server/config.js';
import { makeBuildDirectory } from '../helpers/busybox.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';
import { binary, ServeProcess } from '../helpers/serve.js';

const repository = new URL('../../../', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(repository, path), 'utf8');
const containerfile = read('deploy/Containerfile');
const configurationPath = 'deploy/config/runner-ubuntu22-04.json';

/** An exec-form instruction's arguments (ENTRYPOINT ["…", …]). */
function execForm(instruction: string): string[] {
  const match = new RegExp(`^${instruction} (\\[.*\\])$`, 'm').exec(containerfile);
  assert.ok(match?.[1] !== undefined, `no exec-form ${instruction}`);
  return JSON.parse(match[1]) as string[];
}

describe('deploy/Containerfile', () => {
  it('copies only files that exist in the repository', () => {
    const sources = [...containerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((match) =>
      (match[1] ?? '').split(' '),
    );
    assert.ok(sources.length > 0);
    for (const source of sources) assert.ok(existsSync(join(repository, source)), source);
  });

  it('runs the package’s own command with the configuration the manifests mount', () => {
    const { bin } = JSON.parse(read('package.json')) as { bin: Record<string, string> };
    const entrypoint = execForm('ENTRYPOINT');
    assert.deepEqual(entrypoint.slice(-2), ['--', 'chroot-runner']);
    assert.ok('chroot-runner' in bin);
    assert.deepEqual(execForm('CMD'), ['serve', '--config', '/config/runner-ubuntu22-04.json']);
    const configuration = parseConfiguration(JSON.parse(read(configurationPath)));
    assert.equal(configuration.buildDirectoryPath, '/worker/build');
    assert.deepEqual(configuration.grpcServers[0]?.listenPaths, ['/worker/runner']);
  });

  it('serves through its entrypoint and command', { skip: needsRoot }, async () => {
    const state = processState();
    const scratch = makeBuildDirectory('chroot-runner-deploy-');
    try {
      const worker = join(scratch.path, 'worker');
      const file = join(scratch.path, 'runner-ubuntu22-04.json');
      // The volume-init step's directories, and the deployment's configuration moved there.
      const text = read(configurationPath)
        .replaceAll('/worker', worker)
        .replace(':9987', '127.0.0.1:0');
      execVolumeInit(worker);
      writeFileSync(file, text);
      const [tini, separator] = execForm('ENTRYPOINT');
      // tini where Debian's is installed, as in the image; the command after it regardless.
      const prefix = tini !== undefined && existsSync(tini) ? [tini, separator ?? '--'] : [];
      const [, , ...rest] = execForm('CMD');
      const serve = await ServeProcess.start(
        ['--config', file, ...rest.slice(1)],
        [...prefix, process.execPath, binary],
      );
      const serving = await serve.waitForLog((line) => line.msg === 'serving');
      assert.deepEqual(serving.grpcAddresses, [`unix://${worker}/runner`]);
      assert.deepEqual(await serve.stop(), [0, null]);
    } finally {
      scratch.remove();
    }
    assertNothingLeft(state, [scratch.path]);
  });
});

describe('deploy/ manifests', () => {
  it('follow bb-deployments: volume-init makes /worker/build, both containers share /worker', () => {
    const kubernetes = read('deploy/kubernetes/worker-ubuntu22-04.yaml');
    const compose = read('deploy/docker-compose/docker-compose.yml');
    for (const manifest of [kubernetes, compose]) {
      assert.match(manifest, /mkdir -pm 0777 \/worker\/build/);
      assert.match(manifest, /runner-ubuntu22-04\.json/);
      assert.match(manifest, /image: ghcr\.io\/buildbarn\/bb-worker:/);
      assert.match(manifest, /image: REGISTRY\/chroot-runner:TAG # deploy\/Containerfile/);
    }
    assert.match(kubernetes, /mountPropagation: HostToContainer/);
    // The runner needs no network of its own: it serves bb_worker over /worker/runner.
    const runner = compose.slice(compose.indexOf('runner-fuse-ubuntu22-04:'));
    assert.match(runner, /^ {4}network_mode: none$/m);
  });
});

/** What the manifests' volume-init step does, read from the Kubernetes manifest. */
function execVolumeInit(worker: string): void {
  const manifest = read('deploy/kubernetes/worker-ubuntu22-04.yaml');
  const command = /- (mkdir -pm 0777 \/worker\/build.*)$/m.exec(manifest)?.[1];
  assert.ok(command !== undefined, 'no volume-init command');
  // Only mkdir and chmod of /worker paths: run them on the scratch directory.
  assert.match(command, /^(?:(?:mkdir -pm \d+|chmod \d+)(?: \/worker\S*)+(?: && |$))+$/);
  for (const step of command.replaceAll('/worker', worker).split(' && ')) {
    const [program = '', ...args] = step.split(' ');
    assert.equal(spawnSync(program, args).status, 0, step);
  }
}
