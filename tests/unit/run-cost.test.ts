import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { stageHandler } from '../../shared/adapters/aws/stage-handler.ts';
import { CountingObjectStore } from '../../shared/adapters/counting-object-store.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { UsageMeter } from '../../shared/adapters/usage-meter.ts';
import { costLine } from '../../shared/cli/format.ts';
import {
  invocationUsageKey,
  priceRun,
  readRunUsage,
  recordInvocation,
  recordInvocationUsage,
} from '../../shared/lake/run-usage.ts';
import { ingestWorkflowDefinition } from '../../shared/workflow/definition.ts';
import {
  costOf,
  defaultPath,
  estimateStateTransitions,
  executedPath,
  invocationUsage,
  type RunUsage,
  runCostReport,
  sumRunUsage,
  US_EAST_1_PRICE_LIST,
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

describe('Function: priceRun', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  const executionId = 'arn:aws:states:us-east-1:123456789012:execution:sluice:run-7';

  it("adds up a run's records written at once by parallel invocations, plus the pricing one so far", async () => {
    const store = new FileObjectStore(dir);
    // 40 map items and an ingest, recording at the same time (as SilverGroups' items do).
    const records = Array.from({ length: 40 }, (_, i) =>
      recordInvocation(store, {
        executionId,
        stage: i % 2 === 0 ? 'SilverGroup' : 'ReconcileItem',
        invocationId: `item-${i}`,
        usage: invocationUsage(1000 + i, 1024, { tier1: 2, tier2: 5 }),
      }),
    );
    records.push(
      recordInvocation(store, {
        executionId,
        stage: 'Ingest',
        invocationId: 'ingest-1',
        usage: invocationUsage(60_000, 3008, { tier1: 10, tier2: 3 }),
      }),
    );
    await Promise.all(records);
    const soFar = invocationUsage(500, 2048, { tier1: 0, tier2: 4 });
    const cost = await priceRun(store, {
      executionId,
      stage: 'Reconcile',
      usageSoFar: soFar,
      prices: US_EAST_1_PRICE_LIST,
      inputBytes: 2e9,
    });

    const groupMs = Array.from({ length: 20 }, (_, i) => 1000 + 2 * i).reduce((a, b) => a + b, 0);
    expect(cost.stages.SilverGroup).toMatchObject({
      invocations: 20,
      billedMs: groupMs,
      // Each record's own PUT is a request of its invocation.
      s3Tier1Requests: 20 * 3,
      s3Tier2Requests: 20 * 5,
    });
    expect(cost.stages.SilverGroup!.gbSeconds).toBeCloseTo(groupMs / 1000, 9);
    expect(cost.stages.ReconcileItem!.invocations).toBe(20);
    expect(cost.stages.Reconcile).toMatchObject({ invocations: 1, billedMs: 500, s3Tier2Requests: 4 });
    expect(cost.invocations).toBe(42);
    expect(cost.s3Requests).toEqual({ tier1: 40 * 3 + 11, tier2: 40 * 5 + 3 + 4 });
    // Estimated, as on AWS: the default path, plus each map item.
    expect(cost.stateTransitionsFrom).toBe('estimate');
    expect(cost.stateTransitions).toBe(defaultPath(ingestWorkflowDefinition()).length + 40);
    const priced =
      cost.gbSeconds * 0.0000133334 +
      cost.invocations * 0.0000002 +
      cost.s3Requests.tier1 * 0.000005 +
      cost.s3Requests.tier2 * 0.0000004 +
      cost.stateTransitions * 0.000025;
    expect(cost.totalUsd).toBeCloseTo(priced, 15);
    expect(cost.perInputGbUsd).toBeCloseTo(priced / 2, 15);
  });

  it('counts the states a run enters after the pricing step when the execution counted the rest', async () => {
    const cost = await priceRun(new FileObjectStore(dir), {
      executionId,
      stage: 'Reconcile',
      usageSoFar: invocationUsage(1, 1024, { tier1: 0, tier2: 0 }),
      prices: US_EAST_1_PRICE_LIST,
      inputBytes: 1,
      stateTransitionsSoFar: 20,
    });
    // HasFanOut and Succeeded follow Reconcile.
    expect(cost).toMatchObject({ stateTransitions: 22, stateTransitionsFrom: 'execution' });
  });
});

describe('Function: estimateStateTransitions', () => {
  const definition = ingestWorkflowDefinition();
  const plain = {
    Ingest: 1,
    PlanSilver: 1,
    SilverGroup: 3,
    SilverBucket: 2,
    Silver: 1,
    PlanReconcile: 1,
    ReconcileItem: 5,
    ReconcileKeyBucket: 2,
    Reconcile: 1,
  };

  it("counts the default path once, and each Map item's task", () => {
    expect(defaultPath(definition).slice(0, 5)).toEqual([
      'HasSource',
      'Dropped',
      'Ingest',
      'IngestDone',
      'HasSilver',
    ]);
    expect(estimateStateTransitions(definition, plain)).toBe(defaultPath(definition).length + 3 + 2 + 5 + 2);
  });

  it('counts each further slice with its IngestDone, and each download with its DownloadDone', () => {
    const base = estimateStateTransitions(definition, plain);
    expect(estimateStateTransitions(definition, { ...plain, Ingest: 4 })).toBe(base + 3 * 2);
    expect(estimateStateTransitions(definition, { ...plain, Download: 2 })).toBe(base + 2 * 2);
    expect(executedPath(definition, { ...plain, Download: 2 }).slice(0, 5)).toEqual([
      'HasSource',
      'Download',
      'DownloadDone',
      'Landed',
      'Ingest',
    ]);
  });

  it("follows a rebuild's path: PlanRebuild instead of the drop, ingest and its choices", () => {
    const { Ingest: _, ...silverOn } = plain;
    const rebuild = { ...silverOn, PlanRebuild: 1 };
    const path = executedPath(definition, rebuild);
    expect(path.slice(0, 4)).toEqual(['HasSource', 'PlanRebuild', 'RebuildNeeded', 'PlanSilver']);
    expect(path).not.toContain('Ingest');
    // From PlanSilver on, a rebuild enters what a plain run enters.
    const plainPath = executedPath(definition, plain);
    expect(path.slice(3)).toEqual(plainPath.slice(plainPath.indexOf('PlanSilver')));
    expect(estimateStateTransitions(definition, rebuild)).toBe(path.length + 3 + 2 + 5 + 2);
  });
});

describe('Function: stageHandler', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it("records each invocation's usage at its configured memory, by the state that invoked it", async () => {
    const lake = new FileObjectStore(dir);
    const meter = new UsageMeter();
    const counted = meter.count(lake);
    const deps = {
      observability: createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' }),
      usage: { meter, records: lake },
    };
    const handler = stageHandler(deps, async () => {
      await counted.write('a.json', '{}');
      (await counted.read('a.json')).resume();
      return 'done';
    });
    const context = (requestId: string) => ({
      functionName: 'sluice-ingest',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:sluice-ingest',
      memoryLimitInMB: '1536',
      awsRequestId: requestId,
      getRemainingTimeInMillis: () => 60_000,
    });
    const event = { executionId: 'arn:aws:states:us-east-1:1:execution:sluice:run-9', state: 'Ingest' };
    await handler(event, context('req-1'));
    await handler(event, context('req-2'));

    const { usage } = await readRunUsage(lake, 'run-9', 0);
    const ingest = usage.stages.Ingest!;
    // Each invocation counted from where the stores stood when it began: 1 PUT + its record, 1 GET.
    expect(ingest).toMatchObject({ invocations: 2, s3Tier1Requests: 4, s3Tier2Requests: 2 });
    expect(ingest.gbSeconds).toBeCloseTo((ingest.billedMs / 1000) * 1.5, 12);
  });
});

describe('Function: costLine', () => {
  it('says the cost, per GB, invocations, GB-seconds and S3 requests in a line', () => {
    const usage = sumRunUsage(
      [{ stage: 'Ingest', usage: invocationUsage(105_000, 3008, { tier1: 1000, tier2: 203 }) }],
      41,
    );
    const cost = runCostReport(usage, US_EAST_1_PRICE_LIST, {
      inputBytes: 2e9,
      stateTransitionsFrom: 'estimate',
    });
    const total = cost.totalUsd;
    expect(costLine(cost)).toBe(
      `≈ $${Number(total.toPrecision(3))} (${Number((total / 2).toPrecision(3))} $/GB): 1 invocations, 308 GB-s, 1,203 S3 requests`,
    );
  });
});
