// The committed generated code (src/proto/gen) is what `npm run generate` makes from proto/, and
// the wire names are Buildbarn's.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { Health, Runner, RunRequestSchema } from '../../src/proto/index.js';

const repository = new URL('../../../', import.meta.url).pathname;
// Debian: protobuf-compiler, and libprotobuf-dev for the well-known types' .proto files.
const protoc =
  spawnSync('protoc', ['--version']).status === 0 &&
  existsSync('/usr/include/google/protobuf/empty.proto');

function files(directory: string): string[] {
  return readdirSync(directory, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(directory, join(entry.parentPath, entry.name)))
    .sort();
}

describe('protocol', () => {
  it('uses Buildbarn’s method paths and field numbers', () => {
    assert.equal(Runner.typeName, 'buildbarn.runner.Runner');
    assert.deepEqual(
      Runner.methods.map((method) => method.name),
      ['CheckReadiness', 'Run'],
    );
    assert.equal(Health.typeName, 'grpc.health.v1.Health');
    assert.deepEqual(
      RunRequestSchema.fields.map((field) => [field.name, field.number]),
      [
        ['arguments', 1],
        ['environment_variables', 2],
        ['working_directory', 3],
        ['stdout_path', 4],
        ['stderr_path', 5],
        ['input_root_directory', 6],
        ['temporary_directory', 7],
        ['server_logs_directory', 8],
      ],
    );
  });

  it('has generated code up to date with proto/', {
    skip: protoc
      ? false
      : 'needs protoc and the well-known types (protobuf-compiler, libprotobuf-dev)',
  }, () => {
    const output = mkdtempSync(join(tmpdir(), 'chroot-runner-proto-'));
    try {
      const script = JSON.parse(readFileSync(join(repository, 'package.json'), 'utf8')).scripts
        .generate as string;
      execFileSync('sh', ['-c', script.replace('src/proto/gen', output)], { cwd: repository });
      const committed = join(repository, 'src/proto/gen');
      assert.deepEqual(files(output), files(committed));
      for (const file of files(committed)) {
        assert.equal(
          readFileSync(join(output, file), 'utf8'),
          readFileSync(join(committed, file), 'utf8'),
          file,
        );
      }
    } finally {
      rmSync(output, { recursive: true, force: true });
    }
  });
});
