// A classic BPF seccomp program run as the kernel runs it, for the tests that compare the
// program the runner loads with the one libseccomp exports (test/unit/seccomp-filter.test.ts,
// test/kernel/hostile-sixth.test.ts).

/** What a syscall gives the filter (struct seccomp_data); `args` unknown at load. */
export interface SeccompData {
  readonly nr: number;
  readonly arch: number;
  readonly args?: readonly bigint[];
}

const words = new WeakMap<readonly bigint[], number[]>();

/** The arguments as the filter reads them: each one's lower, then upper 32 bits. */
function wordsOf(args: readonly bigint[]): number[] {
  let result = words.get(args);
  if (result === undefined) {
    result = args.flatMap((argument) => [
      Number(argument & 0xffffffffn),
      Number((argument >> 32n) & 0xffffffffn),
    ]);
    words.set(args, result);
  }
  return result;
}

/** Runs `program` as the kernel does, for the instructions that libseccomp emits: the action
 * it returns and the instructions run, or `reads: 'argument'` where it loads an argument that
 * `data` does not have (at load the kernel cannot know the outcome, and runs the filter at each
 * such call instead: seccomp_is_const_allow). */
export function runFilter(
  program: Buffer,
  data: SeccompData,
): { action: number; steps: number } | { reads: 'argument' } {
  let accumulator = 0;
  let pc = 0;
  const argumentWords = data.args === undefined ? undefined : wordsOf(data.args);
  for (let steps = 1; ; steps++) {
    const at = pc * 8;
    const code = program.readUInt16LE(at);
    const k = program.readUInt32LE(at + 4);
    let condition: boolean;
    switch (code) {
      case 0x20: // ld [k]: nr (0), arch (4), ip (8), then each argument's low and high half
        if (k === 0 || k === 4) {
          accumulator = k === 0 ? data.nr : data.arch;
        } else {
          const word = argumentWords?.[(k - 16) >> 2];
          if (word === undefined) return { reads: 'argument' };
          accumulator = word;
        }
        pc++;
        continue;
      case 0x54: // and #k
        accumulator = (accumulator & k) >>> 0;
        pc++;
        continue;
      case 0x05: // ja
        pc += 1 + k;
        continue;
      case 0x06: // ret
        return { action: k, steps };
      case 0x15: // jeq
        condition = accumulator === k;
        break;
      case 0x25: // jgt
        condition = accumulator > k;
        break;
      case 0x35: // jge
        condition = accumulator >= k;
        break;
      case 0x45: // jset
        condition = (accumulator & k) !== 0;
        break;
      default:
        throw new Error(`instruction 0x${code.toString(16)} at ${pc}`);
    }
    pc += 1 + (program[at + (condition ? 2 : 3)] as number);
  }
}
