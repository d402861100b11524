import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { localWorkflowDefinition } from '../../shared/pipeline/local-functions.ts';
import { estimateStateTransitions, type RunCostReport } from '../../shared/workflow/run-cost.ts';
import { runSluice } from '../helpers/cli.ts';
import { tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/**
 * What a run cost, end to end through the CLI: every invocation the runner made is in the cost, with its
 * GB-seconds and S3 requests, and the total is the arithmetic of the prices (us-east-1's list prices, the
 * defaults), computed here from the reported usage. The state transitions the runner counted are what
 * the AWS estimate gives for the same invocations.
 */

const SAMPLE = join(import.meta.dirname, '..', '..', 'samples', 'tic-in-network-sample.json.gz');

/** The defaults the deployment config documents (per GB-s, per 1M requests, per 1k transitions/requests). */
const PRICES = {
  gbSecond: 0.0000133334,
  request: 0.2 / 1e6,
  transition: 0.025 / 1e3,
  put: 0.005 / 1e3,
  get: 0.0004 / 1e3,
};

/** The run's total, from its usage alone. */
function priced(cost: RunCostReport): number {
  let total = cost.stateTransitions * PRICES.transition;
  for (const s of Object.values(cost.stages)) {
    total += s.gbSeconds * PRICES.gbSecond + s.invocations * PRICES.request;
    total += s.s3Tier1Requests * PRICES.put + s.s3Tier2Requests * PRICES.get;
  }
  return total;
}

/** What every run's cost must say, against the invocations the runner counted. */
function expectCostOfRun(cost: RunCostReport, invocations: Record<string, number>, sourceBytes: number) {
  expect(Object.keys(cost.stages).sort()).toEqual(Object.keys(invocations).sort());
  for (const [stage, n] of Object.entries(invocations)) {
    expect(cost.stages[stage]!.invocations, stage).toBe(n);
    expect(cost.stages[stage]!.gbSeconds, stage).toBeGreaterThan(0);
  }
  expect(cost.invocations).toBe(Object.values(invocations).reduce((a, b) => a + b, 0));
  expect(cost.gbSeconds).toBeGreaterThan(0);
  expect(cost.s3Requests.tier1).toBeGreaterThan(0);
  expect(cost.s3Requests.tier2).toBeGreaterThan(0);
  expect(cost.totalUsd).toBeCloseTo(priced(cost), 15);
  expect(cost.perInputGbUsd).toBeCloseTo(cost.totalUsd / (sourceBytes / 1e9), 12);
  expect(cost.inputBytes).toBe(sourceBytes);
  // Counted from the execution locally; the estimate AWS uses agrees for a run without retries.
  expect(cost.stateTransitionsFrom).toBe('execution');
  expect(cost.stateTransitions).toBe(estimateStateTransitions(localWorkflowDefinition(), invocations));
}

describe('run cost, local lake', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-run-cost-');
  });
  afterAll(() => tmp?.cleanup());

  it("gives each stage's invocations, GB-seconds and S3 requests, priced, in --json and reconciliation.json", async () => {
    const lake = join(tmp.dir, 'lake');
    const run = await runSluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--json', '-q']);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expectCostOfRun(summary.cost, summary.invocations, summary.source.bytes);

    const manifestDir = summary.outputs.bronzeManifest.slice(0, -'_manifest.json'.length);
    const { readFile } = await import('node:fs/promises');
    const report = JSON.parse(await readFile(join(manifestDir, 'reconciliation.json'), 'utf8'));
    expect(report.cost).toEqual(summary.cost);

    // The same file again under another config (a new run, in a bronze folder of its own): its cost is
    // its own, not the first run's added to it.
    const { writeFile } = await import('node:fs/promises');
    const { builtInDataset } = await import('../../shared/contracts/datasets/index.ts');
    const base = builtInDataset('tic-in-network');
    const config = join(tmp.dir, 'tic-in-network.json');
    await writeFile(config, JSON.stringify({ ...base, bronze: { ...base.bronze, partMaxRecords: 1000 } }));
    const again = await runSluice(['run', SAMPLE, '--config', config, '--lake', lake, '--json', '-q']);
    expect(again.status, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout);
    expect(second.runId).not.toBe(summary.runId);
    expect(second.source.id).toBe(summary.source.id);
    expect(second.status).toBe('reconciled');
    expectCostOfRun(second.cost, second.invocations, second.source.bytes);
  }, 120_000);
});

const SKIP = motoSkipReason();

describe.skipIf(SKIP !== undefined)(`run cost, S3 lake${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMotoServer();
    await moto.createBucket('lakes');
  }, 120_000);
  afterAll(() => moto?.stop());

  it('counts the same on S3, and the summary prints it in a line', async () => {
    const { env } = moto;
    const lake = 's3://lakes/cost';
    const run = await runSluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--json', '-q'], env);
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    expectCostOfRun(summary.cost, summary.invocations, summary.source.bytes);

    const store = new S3ObjectStore({ client: moto.s3, bucket: 'lakes', prefix: 'cost/' });
    const manifestKey = summary.outputs.bronzeManifest.slice(`${lake}/`.length);
    const reportKey = manifestKey.replace(/_manifest\.json$/, 'reconciliation.json');
    const report = JSON.parse((await buffer(await store.read(reportKey))).toString('utf8'));
    expect(report.cost).toEqual(summary.cost);
    // The records the cost was added up from are spent once the run ended: none is left to be added to
    // the next run of this file (a local execution's name is the same for each).
    let records = 0;
    for await (const _ of store.list('_usage/')) records++;
    expect(records).toBe(0);
  }, 180_000);
});
