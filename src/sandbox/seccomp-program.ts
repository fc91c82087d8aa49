// One pass over the classic BPF program that libseccomp exports. Every action's filter load
// converts, JIT-compiles and later frees each instruction of it (docs/seccomp.md), and
// libseccomp (2.5 and 2.6) compares both 32-bit halves of a 64-bit argument even where the
// rule's mask leaves the upper half out (its db.c: "TODO: handle the case were either hi or
// lo isn't needed"): `ld [upper half]; and #0; jeq #0` always takes its true branch. This
// drops those triples and sends each jump to one where it would always have gone on to.

/** Classic BPF opcodes that libseccomp emits (linux/filter.h). */
const Code = {
  loadWord: 0x20, // ld [k]
  and: 0x54, // and #k
  jump: 0x05, // ja k
  jumpIfEqual: 0x15,
  jumpIfGreater: 0x25,
  jumpIfGreaterOrEqual: 0x35,
  jumpIfAnyBit: 0x45,
  return: 0x06, // ret #k
} as const;

const conditionalJumps: ReadonlySet<number> = new Set([
  Code.jumpIfEqual,
  Code.jumpIfGreater,
  Code.jumpIfGreaterOrEqual,
  Code.jumpIfAnyBit,
]);
const knownCodes: ReadonlySet<number> = new Set(Object.values(Code));

const instructionSize = 8;

interface Instruction {
  code: number;
  whenTrue: number;
  whenFalse: number;
  k: number;
}

function decode(program: Buffer): Instruction[] {
  const instructions: Instruction[] = [];
  for (let at = 0; at + instructionSize <= program.length; at += instructionSize) {
    instructions.push({
      code: program.readUInt16LE(at),
      whenTrue: program.readUInt8(at + 2),
      whenFalse: program.readUInt8(at + 3),
      k: program.readUInt32LE(at + 4),
    });
  }
  return instructions;
}

/** The indices instruction `index` may continue at. */
function successors(instructions: readonly Instruction[], index: number): number[] {
  const { code, whenTrue, whenFalse, k } = instructions[index] as Instruction;
  if (code === Code.return) return [];
  if (code === Code.jump) return [index + 1 + k];
  if (conditionalJumps.has(code)) return [index + 1 + whenTrue, index + 1 + whenFalse];
  return [index + 1];
}

/** `program` without the comparisons that always hold; `program` itself when it has none, or
 * holds anything this pass does not know. */
export function withoutAlwaysTakenComparisons(program: Buffer): Buffer {
  const instructions = decode(program);
  if (instructions.some((instruction) => !knownCodes.has(instruction.code))) return program;
  const entered = new Set<number>();
  for (let index = 0; index < instructions.length; index++) {
    for (const next of successors(instructions, index)) if (next !== index + 1) entered.add(next);
  }
  /** Start of a dropped triple → where its jump always goes. */
  const skipTo = new Map<number, number>();
  for (let index = 0; index + 2 < instructions.length; index++) {
    const [load, and, compare] = instructions.slice(index, index + 3) as [
      Instruction,
      Instruction,
      Instruction,
    ];
    if (
      load.code !== Code.loadWord ||
      and.code !== Code.and ||
      and.k !== 0 ||
      compare.code !== Code.jumpIfEqual ||
      compare.k !== 0 ||
      entered.has(index + 1) ||
      entered.has(index + 2)
    )
      continue;
    const target = index + 3 + compare.whenTrue;
    // The accumulator (0 after the triple) must be dead where the jump lands.
    const landing = instructions[target]?.code;
    if (landing !== Code.loadWord && landing !== Code.return) continue;
    skipTo.set(index, target);
    index += 2;
  }
  if (skipTo.size === 0) return program;
  const resolve = (index: number): number => {
    let at = index;
    for (let next = skipTo.get(at); next !== undefined; next = skipTo.get(at)) at = next;
    return at;
  };
  const dropped = new Set<number>();
  for (const start of skipTo.keys()) for (let i = 0; i < 3; i++) dropped.add(start + i);
  const newIndex = new Map<number, number>();
  for (let index = 0; index < instructions.length; index++) {
    if (!dropped.has(index)) newIndex.set(index, newIndex.size);
  }
  const output = Buffer.alloc(newIndex.size * instructionSize);
  for (const [index, at] of newIndex) {
    const instruction = { ...(instructions[index] as Instruction) };
    const offset = (target: number) => (newIndex.get(resolve(target)) as number) - at - 1;
    if (successors(instructions, index).length === 1 && instruction.code !== Code.jump) {
      // Falls through: into a dropped triple only where that goes on to the next kept one.
      if (newIndex.get(resolve(index + 1)) !== at + 1) return program;
    } else if (instruction.code === Code.jump) {
      instruction.k = offset(index + 1 + instruction.k);
    } else if (conditionalJumps.has(instruction.code)) {
      instruction.whenTrue = offset(index + 1 + instruction.whenTrue);
      instruction.whenFalse = offset(index + 1 + instruction.whenFalse);
      // A jump sent past a dropped triple may no longer reach: keep libseccomp's program.
      if (instruction.whenTrue > 0xff || instruction.whenFalse > 0xff) return program;
    }
    const byte = at * instructionSize;
    output.writeUInt16LE(instruction.code, byte);
    output.writeUInt8(instruction.whenTrue, byte + 2);
    output.writeUInt8(instruction.whenFalse, byte + 3);
    output.writeUInt32LE(instruction.k, byte + 4);
  }
  return output;
}
