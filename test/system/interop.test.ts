// bb_worker talks to its runner with grpc-go: the service must answer a gRPC implementation
// other than its own. Debian's python3-grpcio (grpcio's C core) and python3-protobuf, with
// Python code that protoc generates from our .proto files, stand in for it here.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeBuildDirectory } from '../helpers/busybox.js';
import { assertNothingLeft, needsRoot, processState } from '../helpers/leaks.js';
import { ServeProcess } from '../helpers/serve.js';

const python = '/usr/bin/python3';
const protos = new URL('../../../proto/', import.meta.url).pathname;
const client = new URL('../../../test/interop/runner_client.py', import.meta.url).pathname;

function missingTools(): string | false {
  const probe = spawnSync(python, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' });
  if (probe.status !== 0) return 'needs Debian python3-grpcio and python3-protobuf';
  if (spawnSync('protoc', ['--version'], { stdio: 'ignore' }).status !== 0) {
    return 'needs Debian protobuf-compiler';
  }
  return needsRoot;
}

test('a grpcio client drives serve over its unix socket', { skip: missingTools() }, async () => {
  const before = processState();
  const build = makeBuildDirectory();
  const scratch = mkdtempSync(join(tmpdir(), 'chroot-runner-interop-'));
  try {
    execFileSync('protoc', [
      `--proto_path=${protos}`,
      `--python_out=${scratch}`,
      'buildbarn/runner/runner.proto',
      'buildbarn/resourceusage/resourceusage.proto',
    ]);
    const socket = join(scratch, 'runner');
    const configuration = join(scratch, 'config.json');
    writeFileSync(
      configuration,
      JSON.stringify({
        buildDirectoryPath: build.path,
        grpcServers: [{ listenPaths: [socket], authenticationPolicy: { allow: {} } }],
        chrootIntoInputRoot: true,
      }),
    );
    const serve = await ServeProcess.start(['--config', configuration]);
    let output: string;
    try {
      output = execFileSync(python, [client, scratch, socket, 'root'], { encoding: 'utf8' });
    } finally {
      assert.deepEqual(await serve.stop(), [0, null]);
    }
    const { maximumResidentSetSize, ...answers } = JSON.parse(output);
    assert.deepEqual(answers, {
      readiness: 'ok',
      missing: 'INTERNAL',
      exitCode: -1,
      typeUrl: 'type.googleapis.com/buildbarn.resourceusage.POSIXResourceUsage',
      terminationSignal: 'SEGV',
      noArguments: ['INVALID_ARGUMENT', 'Insufficient number of command arguments'],
    });
    assert.ok(maximumResidentSetSize > 0);
    assert.equal(readFileSync(join(build.path, 'stdout'), 'utf8'), '/bin/busybox\n');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    build.remove();
  }
  assertNothingLeft(before, [build.path]);
});
