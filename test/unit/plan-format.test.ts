// The plan's binary format as the addon defines it (native/plan-format.h), loaded and checked
// by src/syscalls/process.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlanBuilder, runnerStep } from '../../src/sandbox/plan.js';
import { planFormat } from '../../src/syscalls/process.js';

describe('plan format', () => {
  it('numbers the operations from 1, each once', () => {
    const numbers = Object.values(planFormat.operations).sort((a, b) => a - b);
    assert.deepEqual(
      numbers,
      numbers.map((_, index) => index + 1),
    );
  });

  it('has steps of an op, five arguments and two strings', () => {
    assert.equal(planFormat.stepWidth, 8);
    const plan = new PlanBuilder();
    plan.symlinkat(runnerStep('link'), '/target', plan.inherit(3), 'name');
    const built = plan.build();
    assert.equal(built.steps.length, planFormat.stepWidth);
    assert.equal(built.steps[0], planFormat.operations.symlinkat);
    assert.deepEqual([...built.steps.subarray(6)], [0, 1]);
    assert.equal(built.strings.toString(), '/target\0name\0');
  });

  it('keeps the init record kinds apart from its usage records', () => {
    const records = Object.values(planFormat.records);
    const usage = Object.values(planFormat.usageRecords);
    assert.equal(new Set([...records, ...usage]).size, records.length + usage.length);
    assert.equal(Math.min(...usage), 16);
  });

  it('places argv and the environment after the steps’ strings', () => {
    const plan = new PlanBuilder();
    plan.exec(runnerStep('exec'), plan.inherit(3), ['init', 'a'], ['K=V']);
    const built = plan.build();
    assert.deepEqual(
      [built.argvStart, built.argvCount, built.envpStart, built.envpCount],
      [0, 2, 2, 1],
    );
  });
});
