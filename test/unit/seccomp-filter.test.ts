// The seccomp filter's program as libseccomp compiles it (src/sandbox/seccomp.ts): the path
// the kernel walks for each syscall number when a process loads it. Since Linux 5.11 the
// load runs the program for every syscall number of the native and the compat architecture
// (seccomp_cache_prepare) to learn which it always allows, and that walk was most of the
// load's cost: it must stay short.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  compiledSeccompFilter,
  defaultSeccomp,
  libseccompFilter,
  seccompEntryNames,
} from '../../src/sandbox/seccomp.js';
import { withoutAlwaysTakenComparisons } from '../../src/sandbox/seccomp-program.js';

const architectures = { x86_64: 0xc000003e, i386: 0x40000003 };
/** Beyond the highest syscall number of either (x86_64's is 467 on 6.18). */
const syscallNumbers = 512;

/** What a syscall gives the filter (struct seccomp_data); `args` unknown at load. */
interface SeccompData {
  readonly nr: number;
  readonly arch: number;
  readonly args?: readonly bigint[];
}

/** Runs `program` as the kernel does, for the instructions that libseccomp emits: the action
 * it returns and the instructions run, or `reads: 'argument'` where it loads an argument that
 * `data` does not have (at load the kernel cannot know the outcome, and runs the filter at each
 * such call instead: seccomp_is_const_allow). */
function runFilter(
  program: Buffer,
  data: SeccompData,
): { action: number; steps: number } | { reads: 'argument' } {
  let accumulator = 0;
  let pc = 0;
  for (let steps = 1; ; steps++) {
    const at = pc * 8;
    const code = program.readUInt16LE(at);
    const [whenTrue = 0, whenFalse = 0] = [program[at + 2], program[at + 3]];
    const k = program.readUInt32LE(at + 4);
    const jump = (condition: boolean) => {
      pc += 1 + (condition ? whenTrue : whenFalse);
    };
    switch (code) {
      case 0x20: // ld [k]: nr (0), arch (4), ip (8), then each argument's low and high half
        if (k === 0 || k === 4) {
          accumulator = k === 0 ? data.nr : data.arch;
        } else {
          const argument = data.args?.[(k - 16) >> 3];
          if (argument === undefined) return { reads: 'argument' };
          accumulator = Number((k & 4 ? argument >> 32n : argument) & 0xffffffffn);
        }
        pc++;
        break;
      case 0x54: // and #k
        accumulator = (accumulator & k) >>> 0;
        pc++;
        break;
      case 0x05: // ja
        pc += 1 + k;
        break;
      case 0x15: // jeq
        jump(accumulator === k);
        break;
      case 0x25: // jgt
        jump(accumulator > k);
        break;
      case 0x35: // jge
        jump(accumulator >= k);
        break;
      case 0x45: // jset
        jump((accumulator & k) !== 0);
        break;
      case 0x06: // ret
        return { action: k, steps };
      default:
        throw new Error(`instruction 0x${code.toString(16)} at ${pc}`);
    }
  }
}

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

  it('drops only comparisons that always hold: every syscall gets what libseccomp decided', () => {
    const other = 0xc00000b7; // aarch64: neither architecture, libseccomp's bad-arch action
    const x32 = 0x40000000;
    for (const allow of [[], ...seccompEntryNames.map((name) => [name])]) {
      const settings = { enabled: true, allow };
      const exported = libseccompFilter(settings).program;
      const program = compiledSeccompFilter(settings).program;
      assert.ok(program.length < exported.length, `allowing ${allow}: nothing dropped`);
      assert.deepEqual(withoutAlwaysTakenComparisons(program), program);
      // Argument values from the program's own constants, and their halves swapped.
      const constants = [0, 0xffffffff];
      for (let at = 4; at < exported.length; at += 8) constants.push(exported.readUInt32LE(at));
      let seed = 0x9e3779b9;
      const random = (n: number) => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) % n;
      };
      const pick = () => BigInt(constants[random(constants.length)] as number);
      const vectors: bigint[][] = [];
      for (let argument = 0; argument < 6; argument++) {
        for (const low of constants) {
          for (const high of [0n, 0xffffffffn]) {
            const args = Array<bigint>(6).fill(0n);
            args[argument] = (high << 32n) | BigInt(low);
            vectors.push(args);
          }
        }
      }
      for (let i = 0; i < 500; i++) {
        vectors.push(
          Array.from({ length: 6 }, () => ((random(2) ? pick() : 0n) << 32n) | pick() | pick()),
        );
      }
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
          assert.equal(actual.action, expected.action, `arch ${arch} nr ${nr} args ${args}`);
        }
      }
    }
  });
});
