// The seccomp filter's program as libseccomp compiles it (src/sandbox/seccomp.ts): the path
// the kernel walks for each syscall number when a process loads it. Since Linux 5.11 the
// load runs the program for every syscall number of the native and the compat architecture
// (seccomp_cache_prepare) to learn which it always allows, and that walk was most of the
// load's cost: it must stay short.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { describe, it } from 'node:test';
import {
  compiledSeccompFilter,
  defaultSeccomp,
  libseccompFilter,
  seccompEntryNames,
} from '../../src/sandbox/seccomp.js';
import { shortenedProgram } from '../../src/sandbox/seccomp-program.js';
import { x32SystemCalls } from '../../src/syscalls/process.js';
import { runFilter } from '../helpers/seccomp-filter.js';

const architectures = { x86_64: 0xc000003e, i386: 0x40000003 };
/** Beyond the highest syscall number of either (x86_64's is 467 on 6.18). */
const syscallNumbers = 512;

/** Instructions run for syscall `nr` of `arch` at load, or undefined where an argument decides. */
function pathAtLoad(program: Buffer, arch: number, nr: number): number | undefined {
  const result = runFilter(program, { nr, arch });
  return 'steps' in result ? result.steps : undefined;
}

/** The loaded libseccomp's minor version, from this process's mappings (libseccomp.so.2.X.Y). */
function libseccompMinorVersion(): number | undefined {
  const match = /libseccomp\.so\.2\.(\d+)\.\d+/.exec(readFileSync('/proc/self/maps', 'utf8'));
  return match === null ? undefined : Number(match[1]);
}

/** The values that `programs` compare arguments with, and the unions of the masks they test,
 * in each argument they read alone and (with `pairs`) in every ordered pair of them, with the
 * upper halves clear and set: what a rule's conditions can tell apart, so that two programs
 * that agree on these agree on all. */
function argumentVectors(programs: readonly Buffer[], pairs: boolean): bigint[][] {
  const values = new Set([0, 0xffffffff]);
  const masks = new Set<number>();
  const read = new Set<number>();
  for (const program of programs) {
    let argumentLoaded = false;
    for (let at = 0; at < program.length; at += 8) {
      const code = program.readUInt16LE(at);
      const k = program.readUInt32LE(at + 4);
      if (code === 0x20) {
        argumentLoaded = k >= 16;
        if (argumentLoaded) read.add((k - 16) >> 3);
      } else if (argumentLoaded && code !== 0x06) {
        values.add(k);
        if (code === 0x54 || code === 0x45) masks.add(k);
      }
    }
  }
  const words = new Set(values);
  for (const a of masks) for (const b of masks) words.add((a | b) >>> 0);
  const vectors: bigint[][] = [];
  for (const first of read) {
    for (const second of pairs ? read : [first]) {
      for (const a of words) {
        for (const b of second === first ? [a] : values) {
          for (const high of [0n, 0xffffffffn << 32n]) {
            const args = Array<bigint>(6).fill(0n);
            args[first] = high | BigInt(a);
            args[second] = high | BigInt(b);
            vectors.push(args);
          }
        }
      }
    }
  }
  return vectors;
}

describe('the seccomp filter at load', { skip: process.arch !== 'x64' && 'x86_64 only' }, () => {
  it('is a tree of syscall numbers where libseccomp can make one (2.5+)', () => {
    const filter = compiledSeccompFilter(defaultSeccomp);
    const minor = libseccompMinorVersion();
    assert.ok(minor !== undefined, 'libseccomp is not mapped');
    assert.equal(filter.tree, minor >= 5);
  });

  it('walks a few instructions per syscall number, not the list of every rule', (t) => {
    const filter = compiledSeccompFilter(defaultSeccomp);
    if (!filter.tree) {
      t.skip('libseccomp before 2.5 emits a list');
      return;
    }
    for (const [name, arch] of Object.entries(architectures)) {
      const paths = Array.from({ length: syscallNumbers }, (_, nr) =>
        pathAtLoad(filter.program, arch, nr),
      ).filter((path) => path !== undefined);
      const mean = paths.reduce((sum, path) => sum + path, 0) / paths.length;
      t.diagnostic(
        `${name}: ${paths.length} numbers, mean ${mean.toFixed(1)}, longest ${Math.max(...paths)}`,
      );
      // The list walked 40–60 comparisons for most numbers.
      assert.ok(Math.max(...paths) <= 16, `${name}: longest path ${Math.max(...paths)}`);
    }
  });

  it('answers x32 calls with ENOSYS where the kernel runs none, and filters them where it does', () => {
    const program = compiledSeccompFilter(defaultSeccomp).program;
    const args = [0n, 0o4755n, 0o4755n, 0o4755n, 0n, 0n];
    const actions = new Set(
      Array.from({ length: 1024 }, (_, nr) => {
        const result = runFilter(program, {
          arch: architectures.x86_64,
          nr: 0x40000000 + nr,
          args,
        });
        return 'action' in result ? result.action : undefined;
      }),
    );
    const enosys = 0x50000 | osConstants.errno.ENOSYS;
    if (x32SystemCalls()) assert.ok(actions.has(0x7fff0000) && actions.size > 1, `${[...actions]}`);
    else assert.deepEqual([...actions], [enosys]);
  });

  it('is shorter than libseccomp exports it, and every syscall gets what libseccomp decided', () => {
    const other = 0xc00000b7; // aarch64: neither architecture, libseccomp's bad-arch action
    const x32 = 0x40000000;
    for (const allow of [[], ...seccompEntryNames.map((name) => [name])]) {
      const settings = { enabled: true, allow };
      const exported = libseccompFilter(settings).program;
      const program = compiledSeccompFilter(settings).program;
      assert.ok(program.length < exported.length, `allowing ${allow}: nothing dropped`);
      assert.deepEqual(shortenedProgram(program), program);
      // Every pair of arguments for the default policy; each argument alone for the others.
      const vectors = argumentVectors([exported, program], allow.length === 0);
      const numbers = Array.from({ length: 512 }, (_, nr) => nr);
      const cases = [
        ...numbers.map((nr) => ({ arch: architectures.x86_64, nr })),
        ...numbers.map((nr) => ({ arch: architectures.x86_64, nr: x32 + nr })),
        { arch: architectures.x86_64, nr: 0xffffffff },
        ...numbers.map((nr) => ({ arch: architectures.i386, nr })),
        { arch: other, nr: 0 },
      ];
      for (const { arch, nr } of cases) {
        const atLoad = runFilter(exported, { arch, nr });
        for (const args of 'action' in atLoad ? [[]] : vectors) {
          const expected = runFilter(exported, { arch, nr, args });
          const actual = runFilter(program, { arch, nr, args });
          assert.ok('action' in expected && 'action' in actual);
          if (actual.action !== expected.action) {
            assert.fail(
              `arch ${arch} nr ${nr} args ${args}: ${actual.action}, not ${expected.action}`,
            );
          }
        }
      }
    }
  });
});

/** A classic BPF program from [code, whenTrue, whenFalse, k] tuples. */
function assemble(instructions: readonly (readonly [number, number, number, number])[]): Buffer {
  const program = Buffer.alloc(instructions.length * 8);
  for (const [index, [code, whenTrue, whenFalse, k]] of instructions.entries()) {
    program.writeUInt16LE(code, index * 8);
    program.writeUInt8(whenTrue, index * 8 + 2);
    program.writeUInt8(whenFalse, index * 8 + 3);
    program.writeUInt32LE(k, index * 8 + 4);
  }
  return program;
}

describe('shortening a seccomp program', () => {
  const [load, and, jeq, jset, ret] = [0x20, 0x54, 0x15, 0x45, 0x06];
  const [allow, refuse] = [0x7fff0000, 0x50001];
  const modeArgument = 16 + 8 * 2;
  /** `mode & (S_ISUID | S_ISGID) ? refuse : allow`, as the rewrites leave it. */
  const modeTest = [
    [load, 0, 0, modeArgument],
    [jset, 0, 1, 0o6000],
    [ret, 0, 0, refuse],
    [ret, 0, 0, allow],
  ] as const;
  const actionOn = (program: Buffer, args: readonly bigint[]) => {
    const result = runFilter(program, { nr: 0, arch: architectures.x86_64, args });
    return 'action' in result ? result.action : undefined;
  };

  it('tests single bits with jset, once per word, and both bits of a rule pair at once', () => {
    const program = assemble([
      [load, 0, 0, modeArgument],
      [and, 0, 0, 0o4000],
      [jeq, 3, 0, 0o4000],
      [load, 0, 0, modeArgument],
      [and, 0, 0, 0o2000],
      [jeq, 0, 1, 0o2000],
      [ret, 0, 0, refuse],
      [ret, 0, 0, allow],
    ]);
    const shortened = shortenedProgram(program);
    assert.deepEqual(shortened, assemble(modeTest));
    for (const mode of [0, 0o4000, 0o2000, 0o6000, 0o1777, 0o7777]) {
      const args = [0n, 0n, BigInt(mode), 0n, 0n, 0n];
      assert.equal(actionOn(shortened, args), actionOn(program, args), `mode ${mode.toString(8)}`);
    }
  });

  it('asks once for a mode that two flags each lead to (O_TMPFILE or O_CREAT, then set-id bits)', () => {
    const flagsArgument = 16 + 8 * 1;
    const program = assemble([
      [load, 0, 0, flagsArgument],
      [jset, 0, 2, 0o20000000],
      [load, 0, 0, modeArgument],
      [jset, 4, 0, 0o6000],
      [load, 0, 0, flagsArgument],
      [jset, 0, 3, 0o100],
      [load, 0, 0, modeArgument],
      [jset, 0, 1, 0o6000],
      [ret, 0, 0, refuse],
      [ret, 0, 0, allow],
    ]);
    const shortened = shortenedProgram(program);
    assert.deepEqual(
      shortened,
      assemble([[load, 0, 0, flagsArgument], [jset, 0, 3, 0o20000100], ...modeTest]),
    );
    for (const flags of [0, 0o100, 0o20000000, 0o20000100, 0o2]) {
      for (const mode of [0, 0o4000, 0o2000, 0o755]) {
        const args = [0n, BigInt(flags), BigInt(mode), 0n, 0n, 0n];
        assert.equal(
          actionOn(shortened, args),
          actionOn(program, args),
          `flags ${flags.toString(8)} mode ${mode.toString(8)}`,
        );
      }
    }
  });

  it('keeps a mask of several bits, where any bit is not every bit', () => {
    const program = assemble([
      [load, 0, 0, modeArgument],
      [and, 0, 0, 0o6000],
      [jeq, 0, 1, 0o6000],
      [ret, 0, 0, refuse],
      [ret, 0, 0, allow],
    ]);
    assert.deepEqual(shortenedProgram(program), program);
  });

  it('keeps an and whose result a later instruction reads', () => {
    const program = assemble([
      [load, 0, 0, modeArgument],
      [and, 0, 0, 0o4000],
      [jeq, 1, 0, 0o4000],
      [jeq, 0, 1, 0],
      [ret, 0, 0, refuse],
      [ret, 0, 0, allow],
    ]);
    assert.deepEqual(shortenedProgram(program), program);
  });

  it('leaves a program with an instruction it does not know as it is', () => {
    const program = assemble([
      [load, 0, 0, modeArgument],
      [0x74, 0, 0, 1], // rsh #1
      [and, 0, 0, 0o4000],
      [jeq, 0, 1, 0o4000],
      [ret, 0, 0, refuse],
      [ret, 0, 0, allow],
    ]);
    assert.deepEqual(shortenedProgram(program), program);
  });
});
