// The soak's verdict on flatness (bench/soak-verdict.ts): load on the machine, in bursts or
// for a whole quarter, rising or easing, passes; growth with N in serve's CPU per action or its RSS fails, also
// when load rises with it. No root, nothing measured.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Block, verdictOf } from '../../bench/soak-verdict.js';

const stamp = { measured: '2026-12-01T00:00:00.000Z', commit: 'c0ffee', actions: 100_000 };

/** 50 blocks (the soak's count at 100,000 actions) of an idle machine, one change applied to
 * block i of 50 by `change`. */
function blocks(change: (index: number, block: Block) => Partial<Block> = () => ({})): Block[] {
  return Array.from({ length: 50 }, (_, index) => {
    const block: Block = {
      seconds: 10,
      rssMB: 110,
      serveCpuMsPerAction: 4,
      reapedCpuMsPerAction: 1.5,
      controlCpuMsPerUnit: 1.2,
    };
    return { ...block, ...change(index, block) };
  });
}

function judge(series: Block[]) {
  return verdictOf(
    'namespaces',
    { mode: 'namespaces', total: 100_000, seconds: 500, blocks: series },
    stamp,
  );
}

describe('soak verdict', () => {
  it('passes a steady run', () => {
    assert.equal(judge(blocks()).flat, true);
  });

  it('passes when the neighbours stretch wall time ×3 in the last quarter', () => {
    const verdict = judge(blocks((index) => (index >= 37 ? { seconds: 30 } : {})));
    assert.equal(verdict.flat, true);
    assert.equal(verdict.time?.flat, false);
  });

  it('passes bursts of page reclaim: a few blocks at ×10 CPU and a low RSS', () => {
    const burst = new Set([38, 41, 45, 47]);
    const verdict = judge(
      blocks((index, block) =>
        burst.has(index) ? { serveCpuMsPerAction: block.serveCpuMsPerAction * 10, rssMB: 60 } : {},
      ),
    );
    assert.equal(verdict.flat, true);
  });

  it('passes load that inflates every unit of work by 25 % for the last quarter', () => {
    const verdict = judge(
      blocks((index, block) =>
        index >= 37
          ? {
              serveCpuMsPerAction: block.serveCpuMsPerAction * 1.25,
              reapedCpuMsPerAction: block.reapedCpuMsPerAction * 1.25,
              controlCpuMsPerUnit: (block.controlCpuMsPerUnit ?? 0) * 1.25,
            }
          : {},
      ),
    );
    assert.equal(verdict.flat, true);
    assert.equal(verdict.cpu?.flat, false);
    assert.equal(verdict.relativeCpu?.flat, true);
  });

  it('passes a quieter last quarter: the control 12 % faster, serve as before', () => {
    const verdict = judge(
      blocks((index, block) =>
        index >= 37 ? { controlCpuMsPerUnit: (block.controlCpuMsPerUnit ?? 0) * 0.88 } : {},
      ),
    );
    assert.equal(verdict.relativeCpu?.flat, false);
    assert.equal(verdict.flat, true);
  });

  it('fails CPU per action that grows with N, 1 % a block', () => {
    const verdict = judge(
      blocks((index, block) => ({
        serveCpuMsPerAction: block.serveCpuMsPerAction * 1.01 ** index,
      })),
    );
    assert.equal(verdict.flat, false);
    assert.equal(verdict.cpu?.flat, false);
  });

  it('fails that growth also while load rises: serve ×2 over the run, the control ×1.2', () => {
    const verdict = judge(
      blocks((index, block) => ({
        serveCpuMsPerAction: block.serveCpuMsPerAction * (1 + index / 50),
        controlCpuMsPerUnit: (block.controlCpuMsPerUnit ?? 0) * (1 + index / 250),
      })),
    );
    assert.equal(verdict.cpu?.flat, false);
  });

  it('fails RSS that grows with N, 0.5 MB a block', () => {
    const verdict = judge(blocks((index, block) => ({ rssMB: block.rssMB + index / 2 })));
    assert.equal(verdict.flat, false);
    assert.equal(verdict.rss?.flat, false);
  });

  it('fails closed without the control, and on a run too short to judge', () => {
    assert.equal(judge(blocks(() => ({ controlCpuMsPerUnit: null }))).flat, false);
    const short = judge(blocks().slice(0, 4));
    assert.deepEqual([short.flat, short.reason], [false, 'only 4 blocks']);
  });
});
