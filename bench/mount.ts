// `npm run bench:mount`: the mean cost of a procfs mountat+unmountat pair through the
// TypeScript API, against the same syscalls in C (bench/mount-floor.c, compiled now), measured
// in the same run and interleaved in rounds so that drift affects both alike.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountat, unmountat } from '../src/mounts/index.js';
import { openDirectory } from '../src/syscalls/index.js';

const rounds = 10;
const iterationsPerRound = 2000;
const floorSource = fileURLToPath(new URL('../../bench/mount-floor.c', import.meta.url));

function typeScriptMicroseconds(directory: string, iterations: number): number {
  using dir = openDirectory(directory);
  const spec = { fstype: 'proc', attributes: { nosuid: true, nodev: true, noexec: true } };
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) unmountat(mountat(dir, 'proc', spec));
  return Number(process.hrtime.bigint() - start) / 1000 / iterations;
}

function cMicroseconds(floor: string, directory: string, iterations: number): number {
  return Number(execFileSync(floor, [directory, String(iterations)], { encoding: 'utf8' }));
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('bench:mount needs root');
  const work = mkdtempSync(join(tmpdir(), 'chroot-runner-bench-mount-'));
  try {
    const floor = join(work, 'mount-floor');
    execFileSync('cc', ['-O2', '-o', floor, floorSource]);
    const directory = join(work, 'root');
    mkdirSync(join(directory, 'proc'), { recursive: true });
    // Warm up both (JIT, kernel caches) before measuring.
    typeScriptMicroseconds(directory, iterationsPerRound);
    cMicroseconds(floor, directory, iterationsPerRound);
    const typeScript: number[] = [];
    const c: number[] = [];
    for (let round = 0; round < rounds; round++) {
      c.push(cMicroseconds(floor, directory, iterationsPerRound));
      typeScript.push(typeScriptMicroseconds(directory, iterationsPerRound));
    }
    const typeScriptMean = mean(typeScript);
    const cMean = mean(c);
    console.log(`pairs measured: ${rounds * iterationsPerRound} each, in ${rounds} rounds`);
    console.log(`C floor (mount-floor.c): ${cMean.toFixed(1)} µs a pair`);
    console.log(`TypeScript mountat+unmountat: ${typeScriptMean.toFixed(1)} µs a pair`);
    console.log(`mountat+unmountat ratio: ${(typeScriptMean / cMean).toFixed(2)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main();
