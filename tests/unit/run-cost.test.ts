import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CountingObjectStore } from '../../shared/adapters/counting-object-store.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { invocationUsageKey, readRunUsage, recordInvocationUsage } from '../../shared/lake/run-usage.ts';
import {
  billedStateTransitions,
  costOf,
  invocationUsage,
  type RunUsage,
  sumRunUsage,
  US_EAST_1_PRICES,
} from '../../shared/workflow/run-cost.ts';
import { tempDir } from '../helpers/lake.ts';

describe('Function: invocationUsage', () => {
  it('bills the duration rounded up to the millisecond, times the configured memory in GB', () => {
    const usage = invocationUsage(1500.2, 3008, { tier1: 3, tier2: 7 });
    expect(usage).toEqual({
      invocations: 1,
      billedMs: 1501,
      gbSeconds: 1.501 * (3008 / 1024),
      s3Tier1Requests: 3,
      s3Tier2Requests: 7,
    });
    expect(invocationUsage(0.2, 1024, { tier1: 0, tier2: 0 }).billedMs).toBe(1);
  });
});

describe('Function: costOf', () => {
  const usage: RunUsage = sumRunUsage(
    [
      { stage: 'Ingest', usage: invocationUsage(600_000, 3008, { tier1: 1000, tier2: 1 }) },
      { stage: 'Ingest', usage: invocationUsage(400_000, 3008, { tier1: 500, tier2: 1 }) },
      { stage: 'SilverGroup', usage: invocationUsage(100_000, 1024, { tier1: 2, tier2: 10_000 }) },
    ],
    1000,
  );

  it('adds up each stage, then prices Lambda, S3 and state transitions', () => {
    expect(usage.stages.Ingest).toMatchObject({ invocations: 2, billedMs: 1_000_000, s3Tier1Requests: 1500 });
    const cost = costOf(usage, US_EAST_1_PRICES, 10e9);
    const ingestLambda = 1000 * (3008 / 1024) * 0.0000133334 + 2 * 0.0000002;
    expect(cost.perStage.Ingest!.lambdaUsd).toBeCloseTo(ingestLambda, 12);
    expect(cost.perStage.Ingest!.s3Usd).toBeCloseTo(1500 * 0.000005 + 2 * 0.0000004, 12);
    expect(cost.perStage.SilverGroup!.s3Usd).toBeCloseTo(2 * 0.000005 + 10_000 * 0.0000004, 12);
    expect(cost.stateTransitionsUsd).toBeCloseTo(0.025, 12);
    const stages = Object.values(cost.perStage).reduce((sum, s) => sum + s.totalUsd, 0);
    expect(cost.totalUsd).toBeCloseTo(stages + 0.025, 12);
    expect(cost.perInputGbUsd).toBeCloseTo(cost.totalUsd / 10, 12);
  });

  it('gives no cost per GB without the input size', () => {
    expect(costOf(usage, US_EAST_1_PRICES).perInputGbUsd).toBeUndefined();
  });
});

describe('Function: billedStateTransitions', () => {
  it('counts every state entered, and each retry of a task, across interleaved Map iterations', () => {
    const history = [
      { id: 1, type: 'ExecutionStarted' },
      { id: 2, previousEventId: 1, type: 'TaskStateEntered' },
      { id: 3, previousEventId: 2, type: 'TaskScheduled' },
      { id: 4, previousEventId: 3, type: 'TaskSucceeded' },
      { id: 5, previousEventId: 4, type: 'MapStateEntered' },
      { id: 6, previousEventId: 5, type: 'TaskStateEntered' }, // iteration 0
      { id: 7, previousEventId: 5, type: 'TaskStateEntered' }, // iteration 1
      { id: 8, previousEventId: 6, type: 'TaskScheduled' },
      { id: 9, previousEventId: 7, type: 'TaskScheduled' },
      { id: 10, previousEventId: 8, type: 'TaskFailed' },
      { id: 11, previousEventId: 9, type: 'TaskSucceeded' },
      { id: 12, previousEventId: 10, type: 'TaskScheduled' }, // the retry of iteration 0
      { id: 13, previousEventId: 12, type: 'TaskSucceeded' },
      { id: 14, previousEventId: 13, type: 'SucceedStateEntered' },
    ];
    expect(billedStateTransitions(history)).toBe(6);
  });
});

describe('Class: CountingObjectStore', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it('counts the S3 requests its calls would cost, by billing class', async () => {
    const store = new CountingObjectStore(new FileObjectStore(dir), { partSize: 1024 });
    await store.write('small.json', '{}');
    await store.write('big.bin', new Uint8Array(2500)); // 3 parts: create + 3 uploads + complete
    expect(store.requests()).toEqual({ tier1: 1 + 5, tier2: 0 });
    (await store.read('small.json')).resume();
    await store.head('big.bin');
    await store.head('absent');
    expect(store.requests()).toEqual({ tier1: 6, tier2: 3 });
    await store.delete('small.json');
    expect(store.requests().tier1).toBe(6);
  });

  it('counts one LIST a page of 1,000 keys', async () => {
    const inner = new FileObjectStore(dir);
    for (let i = 0; i < 1001; i++) await inner.write(`p/${String(i).padStart(4, '0')}`, '');
    const store = new CountingObjectStore(inner);
    let keys = 0;
    for await (const _ of store.list('p/')) keys++;
    expect(keys).toBe(1001);
    expect(store.requests()).toEqual({ tier1: 2, tier2: 0 });
  });
});

describe('Module: run-usage', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it("sums a run's invocation records per stage, and names those it cannot read", async () => {
    const store = new FileObjectStore(dir);
    const record = (stage: string, invocationId: string, ms: number) =>
      recordInvocationUsage(store, {
        executionName: 'run-1',
        stage,
        invocationId,
        usage: invocationUsage(ms, 1024, { tier1: 1, tier2: 2 }),
      });
    await record('Ingest', 'a', 1000);
    await record('Ingest', 'b', 2000);
    await record('Silver', 'c', 500);
    await record('Silver', 'c', 500); // the same invocation recorded twice counts once
    await recordInvocationUsage(store, {
      executionName: 'run-2',
      stage: 'Ingest',
      invocationId: 'x',
      usage: invocationUsage(9000, 1024, { tier1: 0, tier2: 0 }),
    });
    await store.write(invocationUsageKey('run-1', 'Silver', 'broken'), 'not json');

    const { usage, unreadable } = await readRunUsage(store, 'run-1', 12);
    expect(usage.stateTransitions).toBe(12);
    expect(usage.stages.Ingest).toMatchObject({ invocations: 2, billedMs: 3000, gbSeconds: 3 });
    expect(usage.stages.Silver).toMatchObject({ invocations: 1, billedMs: 500, s3Tier2Requests: 2 });
    expect(unreadable).toEqual([invocationUsageKey('run-1', 'Silver', 'broken')]);
  });
});
