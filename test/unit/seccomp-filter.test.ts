// The seccomp filter's program as libseccomp compiles it (src/sandbox/seccomp.ts): the path
// the kernel walks for each syscall number when a process loads it. Since Linux 5.11 the
// load runs the program for every syscall number of the native and the compat architecture
// (seccomp_cache_prepare) to learn which it always allows, and that walk was most of the
// load's cost: it must stay short.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { compiledSeccompFilter, defaultSeccomp } from '../../src/sandbox/seccomp.js';

const architectures = { x86_64: 0xc000003e, i386: 0x40000003 };
/** Beyond the highest syscall number of either (x86_64's is 467 on 6.18). */
const syscallNumbers = 512;

/** Instructions run for syscall `nr` of `arch` until a return, or undefined where the program
 * reads an argument first: the kernel cannot know the outcome then, and runs the filter at
 * each such call instead. As the kernel's emulation (seccomp_is_const_allow), for the
 * instructions that libseccomp emits. */
function pathAtLoad(program: Buffer, arch: number, nr: number): number | undefined {
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
      case 0x20: // ld [k]: seccomp_data's nr (0), arch (4), then ip and the arguments
        if (k > 4) return undefined;
        accumulator = k === 0 ? nr : arch;
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
        return steps;
      default:
        throw new Error(`instruction 0x${code.toString(16)} at ${pc}`);
    }
  }
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
});
