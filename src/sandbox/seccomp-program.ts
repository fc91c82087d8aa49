// Rewrites of the classic BPF program that libseccomp exports, each deciding every system
// call as before, in fewer instructions: every action's filter load converts and JIT-compiles
// each instruction of it (docs/seccomp.md). The program is read as a graph (every jump of a
// seccomp program goes forward), rewritten, and laid out again in its original order.
//  - libseccomp (2.5 and 2.6) compares both 32-bit halves of a 64-bit argument even where the
//    rule's mask leaves the upper half out (its db.c: "TODO: handle the case were either hi or
//    lo isn't needed"): `ld [upper half]; and #0; jeq #0` always takes its true branch.
//  - A rule's `(arg & bit) == bit` is `and #bit; jeq #bit`: for a single bit that is
//    `jset #bit`, which leaves the loaded value in the accumulator, so a following load of
//    the same word goes, and a `jset` whose false branch is another `jset` to the same place
//    tests both masks at once (S_ISUID or S_ISGID); two flag tests that each lead to the same
//    question about the mode are one (O_TMPFILE or O_CREAT).

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

/** An instruction with its successors as absolute indices: `next` for those that fall
 * through (ld, and) and for ja, `whenTrue`/`whenFalse` for conditional jumps. */
interface Node {
  code: number;
  k: number;
  next: number;
  whenTrue: number;
  whenFalse: number;
}

function decode(program: Buffer): Node[] {
  const nodes: Node[] = [];
  for (let at = 0; at + instructionSize <= program.length; at += instructionSize) {
    const index = at / instructionSize;
    const code = program.readUInt16LE(at);
    const k = program.readUInt32LE(at + 4);
    nodes.push({
      code,
      k,
      next: code === Code.jump ? index + 1 + k : index + 1,
      whenTrue: index + 1 + program.readUInt8(at + 2),
      whenFalse: index + 1 + program.readUInt8(at + 3),
    });
  }
  return nodes;
}

function successors(node: Node): number[] {
  if (node.code === Code.return) return [];
  if (conditionalJumps.has(node.code)) return [node.whenTrue, node.whenFalse];
  return [node.next];
}

/** Replaces the successor `from` of `node` by `to`. */
function retarget(node: Node, from: number, to: number): void {
  if (conditionalJumps.has(node.code)) {
    if (node.whenTrue === from) node.whenTrue = to;
    if (node.whenFalse === from) node.whenFalse = to;
  } else if (node.next === from) {
    node.next = to;
  }
}

/** The program as a graph of its reachable instructions, rewritten in place. */
class ProgramGraph {
  readonly nodes: Map<number, Node>;

  constructor(nodes: readonly Node[]) {
    this.nodes = new Map(nodes.map((node, index) => [index, node]));
  }

  predecessors(): Map<number, number[]> {
    const result = new Map<number, number[]>();
    for (const [index, node] of this.nodes) {
      for (const next of new Set(successors(node))) {
        result.set(next, [...(result.get(next) ?? []), index]);
      }
    }
    return result;
  }

  /** Sends every edge into `index` to `to`, and drops `index`. */
  bypass(index: number, to: number): void {
    for (const node of this.nodes.values()) retarget(node, index, to);
    this.nodes.delete(index);
  }

  /** Drops what no path from the first instruction reaches any more. */
  dropUnreachable(): void {
    const reached = new Set<number>([0]);
    for (const index of [...this.nodes.keys()].sort((a, b) => a - b)) {
      const node = this.nodes.get(index) as Node;
      if (!reached.has(index)) this.nodes.delete(index);
      else for (const next of successors(node)) reached.add(next);
    }
  }

  /** Whether the accumulator is dead at `index`: it loads a word or returns a constant. */
  overwritesAccumulator(index: number): boolean {
    const code = this.nodes.get(index)?.code;
    return code === Code.loadWord || code === Code.return;
  }

  /** The word offset each instruction is entered with in the accumulator, where every path
   * agrees (jumps leave it as it is); undefined where it is not a loaded word. */
  loadedWords(): Map<number, number | undefined> {
    const entering = new Map<number, number | undefined>();
    const predecessors = this.predecessors();
    for (const index of [...this.nodes.keys()].sort((a, b) => a - b)) {
      const words = (predecessors.get(index) ?? []).map((from) => {
        const node = this.nodes.get(from) as Node;
        if (node.code === Code.loadWord) return node.k;
        return conditionalJumps.has(node.code) || node.code === Code.jump
          ? entering.get(from)
          : undefined;
      });
      const [first] = words;
      entering.set(index, index !== 0 && words.every((word) => word === first) ? first : undefined);
    }
    return entering;
  }

  /** Lays the instructions out in their original order; undefined where that cannot encode
   * the graph (a fall-through no longer reaching its successor, a jump past 255). */
  encode(): Buffer | undefined {
    const order = [...this.nodes.keys()].sort((a, b) => a - b);
    const position = new Map(order.map((index, at) => [index, at]));
    const output = Buffer.alloc(order.length * instructionSize);
    for (const [at, index] of order.entries()) {
      const node = this.nodes.get(index) as Node;
      const offset = (target: number) => {
        const to = position.get(target);
        return to === undefined ? -1 : to - at - 1;
      };
      let whenTrue = 0;
      let whenFalse = 0;
      let k = node.k;
      if (node.code === Code.jump) {
        k = offset(node.next);
        if (k < 0) return undefined;
      } else if (conditionalJumps.has(node.code)) {
        whenTrue = offset(node.whenTrue);
        whenFalse = offset(node.whenFalse);
        if (whenTrue < 0 || whenFalse < 0 || whenTrue > 0xff || whenFalse > 0xff) return undefined;
      } else if (node.code !== Code.return && offset(node.next) !== 0) {
        return undefined;
      }
      const byte = at * instructionSize;
      output.writeUInt16LE(node.code, byte);
      output.writeUInt8(whenTrue, byte + 2);
      output.writeUInt8(whenFalse, byte + 3);
      output.writeUInt32LE(k >>> 0, byte + 4);
    }
    return output;
  }
}

/** Drops `ld; and #0; jeq #0` triples (always true) entered only at their load, where the
 * accumulator is dead at the true branch. */
function dropAlwaysTakenComparisons(graph: ProgramGraph): void {
  const predecessors = graph.predecessors();
  for (const [index, load] of [...graph.nodes].sort(([a], [b]) => a - b)) {
    const and = graph.nodes.get(load.next);
    const compare = and === undefined ? undefined : graph.nodes.get(and.next);
    if (
      !graph.nodes.has(index) ||
      load.code !== Code.loadWord ||
      and?.code !== Code.and ||
      and.k !== 0 ||
      compare?.code !== Code.jumpIfEqual ||
      compare.k !== 0 ||
      predecessors.get(load.next)?.length !== 1 ||
      predecessors.get(and.next)?.length !== 1 ||
      !graph.overwritesAccumulator(compare.whenTrue)
    )
      continue;
    const target = compare.whenTrue;
    graph.nodes.delete(and.next);
    graph.nodes.delete(load.next);
    graph.bypass(index, target);
  }
}

/** `and #bit; jeq #bit` as `jset #bit`, where the `and` is entered only from its load and the
 * accumulator is dead at both branches (it then holds the loaded word, not its bit). */
function testBitsWithJset(graph: ProgramGraph): void {
  const predecessors = graph.predecessors();
  for (const [index, and] of graph.nodes) {
    const compare = graph.nodes.get(and.next);
    const [from] = predecessors.get(index) ?? [];
    if (
      and.code !== Code.and ||
      and.k === 0 ||
      (and.k & (and.k - 1)) !== 0 ||
      compare?.code !== Code.jumpIfEqual ||
      compare.k !== and.k ||
      predecessors.get(index)?.length !== 1 ||
      predecessors.get(and.next)?.length !== 1 ||
      graph.nodes.get(from as number)?.code !== Code.loadWord ||
      !graph.overwritesAccumulator(compare.whenTrue) ||
      !graph.overwritesAccumulator(compare.whenFalse)
    )
      continue;
    compare.code = Code.jumpIfAnyBit;
    graph.bypass(index, and.next);
  }
}

/** Drops each load of the word that the accumulator already holds on every path into it. */
function dropRepeatedLoads(graph: ProgramGraph): void {
  const entering = graph.loadedWords();
  for (const [index, node] of [...graph.nodes]) {
    if (node.code === Code.loadWord && entering.get(index) === node.k) {
      graph.bypass(index, node.next);
    }
  }
}

/** `jset #a → T : next`, next `jset #b → T : F` (the accumulator unchanged between them):
 * `jset #a|b → T : F`. */
function mergeBitTests(graph: ProgramGraph): boolean {
  let merged = false;
  for (const node of graph.nodes.values()) {
    for (;;) {
      const next = graph.nodes.get(node.whenFalse);
      if (
        node.code !== Code.jumpIfAnyBit ||
        next?.code !== Code.jumpIfAnyBit ||
        next.whenTrue !== node.whenTrue
      )
        break;
      node.k = (node.k | next.k) >>> 0;
      node.whenFalse = next.whenFalse;
      merged = true;
    }
  }
  return merged;
}

/** The `ld [k]; jset #mask` pair that `index` starts, as [k, mask, its jset]. */
function loadAndTest(graph: ProgramGraph, index: number): [number, number, Node] | undefined {
  const load = graph.nodes.get(index);
  const test = load?.code === Code.loadWord ? graph.nodes.get(load.next) : undefined;
  return test?.code === Code.jumpIfAnyBit ? [load?.k as number, test.k, test] : undefined;
}

/** `jset #a → (M & m ? R : C) : C` with C = `W & b ? (M & m ? R : F) : F`, at an instruction
 * entered with the word W: `jset #a|b → (M & m ? R : F) : F`. Where W & a, both ask M & m, and
 * where that fails C can only go on to F (M & m fails again); so F must not read the
 * accumulator (it may now hold M where it held W). O_CREAT or O_TMPFILE, then the mode's
 * set-id bits, in one test each. */
function mergeRepeatedTests(graph: ProgramGraph): boolean {
  const entering = graph.loadedWords();
  let merged = false;
  for (const [index, node] of graph.nodes) {
    const word = entering.get(index);
    const first = loadAndTest(graph, node.whenTrue);
    const again = loadAndTest(graph, node.whenFalse);
    if (node.code !== Code.jumpIfAnyBit || word === undefined || !first || !again) continue;
    const [, , onWord] = again;
    const second = loadAndTest(graph, onWord.whenTrue);
    if (
      again[0] !== word ||
      first[2].whenFalse !== node.whenFalse ||
      second === undefined ||
      second[0] !== first[0] ||
      second[1] !== first[1] ||
      second[2].whenTrue !== first[2].whenTrue ||
      second[2].whenFalse !== onWord.whenFalse ||
      !graph.overwritesAccumulator(onWord.whenFalse)
    )
      continue;
    node.k = (node.k | onWord.k) >>> 0;
    node.whenTrue = onWord.whenTrue;
    node.whenFalse = onWord.whenFalse;
    merged = true;
  }
  return merged;
}

/** `program` rewritten as above; `program` itself when nothing applies, or it holds anything
 * these rewrites do not know. */
export function shortenedProgram(program: Buffer): Buffer {
  const nodes = decode(program);
  if (nodes.some((node) => !knownCodes.has(node.code))) return program;
  const graph = new ProgramGraph(nodes);
  dropAlwaysTakenComparisons(graph);
  testBitsWithJset(graph);
  for (let merged = true; merged; ) {
    dropRepeatedLoads(graph);
    merged = mergeBitTests(graph);
    graph.dropUnreachable();
    merged = mergeRepeatedTests(graph) || merged;
    graph.dropUnreachable();
  }
  return graph.nodes.size < nodes.length ? (graph.encode() ?? program) : program;
}
