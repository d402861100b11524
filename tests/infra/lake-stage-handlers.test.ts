import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHandler as createIngestHandler } from '../../functions/ingest/handler.ts';
import {
  createDeps as createReconcileDeps,
  createHandler as createReconcileHandler,
  type ReconcileDeps,
} from '../../functions/reconcile/handler.ts';
import { createHandler as createSilverHandler, type SilverDeps } from '../../functions/silver/handler.ts';
import { GlueSourceCatalog } from '../../shared/adapters/aws/glue-source-catalog.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { UsageMeter } from '../../shared/adapters/usage-meter.ts';
import {
  type LakeStageConfig,
  lakeStageEnvironment,
  loadLakeStageConfig,
} from '../../shared/config/runtime-config.ts';
import {
  ConfigError,
  QuarantineThresholdError,
  ReconciliationError,
  TransientError,
} from '../../shared/errors.ts';
import { reconciliationKey } from '../../shared/lake/keys.ts';
import { reconcileWorkPrefix } from '../../shared/lake/reconcile-work-keys.ts';
import type { SourceVersionRecord } from '../../shared/lake/source-commits.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { SourceCatalog } from '../../shared/ports/source-catalog.ts';
import type { ReconcilePlanSummary } from '../../shared/stages/reconcile/reconcile.ts';
import type { IngestCommittedOutput, ReconcileOutput } from '../../shared/workflow/stage-io.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fixedClock, tempDir } from '../helpers/lake.ts';

const EXAMPLES = TIC_EXAMPLES;
const SAMPLE = 'in-network-rates-multiple-plans-sample.json';
const KEY = `tic-in-network/2026-01/${SAMPLE}`;
const EXECUTION_ID = 'arn:aws:states:us-east-1:123456789012:execution:sluice-dev:tic-in-network-x';

const config: LakeStageConfig = {
  serviceName: 'sluice-test',
  logLevel: 'ERROR',
  lakeBucket: 'lake',
  datasets: ['tic-in-network'],
};

// biome-ignore lint/suspicious/noExplicitAny: EMF documents are untyped JSON; the assertions check their shape.
type Json = any;

/** The EMF documents printed to stdout, parsed. */
function emfDocuments(write: { mock: { calls: unknown[][] } }): Record<string, Json>[] {
  return write.mock.calls
    .flatMap((call) => String(call[0]).split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line));
}

/** A lake whose reads fail like a reset connection. */
const resetOnRead = (inner: ObjectStore): ObjectStore =>
  Object.assign(Object.create(inner) as ObjectStore, {
    read: async () => {
      throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    },
  });

describe('Handlers: silver and reconcile', () => {
  let cleanup: () => Promise<void>;
  let dir: string;
  let lake: FileObjectStore;
  let stdout: { mock: { calls: unknown[][] }; mockRestore(): void };
  let ingested: IngestCommittedOutput;

  const observability = () => createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' });
  const silverDeps = (overrides: Partial<SilverDeps> = {}): SilverDeps => ({
    config,
    lake,
    clock: fixedClock,
    observability: observability(),
    createTableWriter: createPartialParquetTableWriter,
    workDir: path.join(dir, 'work'),
    ...overrides,
  });
  const reconcileDeps = (overrides: Partial<ReconcileDeps> = {}): ReconcileDeps => ({
    config,
    lake,
    clock: fixedClock,
    observability: observability(),
    openInspector: openParquetInspector,
    workDir: path.join(dir, 'work'),
    ...overrides,
  });
  const event = () => ({
    dataset: 'tic-in-network',
    bronzeManifestKey: ingested.manifestKey,
    executionId: EXECUTION_ID,
  });
  const metric = (name: string) =>
    emfDocuments(stdout).find((doc) =>
      doc._aws.CloudWatchMetrics[0].Metrics.some((m: { Name: string }) => m.Name === name),
    );

  beforeEach(async () => {
    const temp = await tempDir('sluice-lake-stage-handlers-');
    cleanup = temp.cleanup;
    dir = temp.dir;
    const landing = path.join(dir, 'landing');
    await mkdir(path.join(landing, path.dirname(KEY)), { recursive: true });
    await copyFile(path.join(EXAMPLES, SAMPLE), path.join(landing, KEY));
    lake = new FileObjectStore(path.join(dir, 'lake'));
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const output = await createIngestHandler({
      config: { ...config, landingBucket: 'landing' },
      source: new FileObjectStore(landing),
      lake,
      clock: fixedClock,
      observability: observability(),
    })({ bucket: 'landing', key: KEY, dataset: 'tic-in-network' });
    if (output.status !== 'committed') throw new Error(`expected a committed ingest, got ${output.status}`);
    ingested = output;
  });
  afterEach(async () => {
    stdout.mockRestore();
    await cleanup();
  });

  it('silver builds the tables of the bronze run and returns a small reference', async () => {
    const result = await createSilverHandler(silverDeps())(event());
    expect(Object.keys(result).sort()).toEqual(['quarantined', 'silverManifestKey', 'tables']);
    expect(result.silverManifestKey).toMatch(/^silver\/tic-in-network\/_manifests\/source=.*\.json$/);
    expect(result.tables.in_network_items).toBeGreaterThan(0);
    expect(result.quarantined).toBe(0);
    expect(await lake.head(result.silverManifestKey)).toBeDefined();
    expect(JSON.stringify(result).length).toBeLessThan(1024);
    expect(metric('QuarantinedRecords')).toMatchObject({
      QuarantinedRecords: 0,
      service: 'sluice-test',
      dataset: 'tic-in-network',
      correlationId: EXECUTION_ID,
    });
  });

  it('reconcile passes, returns status, score and report key, and emits the quality metrics', async () => {
    await createSilverHandler(silverDeps())(event());
    const result = (await createReconcileHandler(reconcileDeps())(event())) as ReconcileOutput;
    expect(result).toEqual({
      status: 'passed',
      score: expect.any(Number),
      reportKey: reconciliationKey('tic-in-network', ingested.runId),
      // Passed, so committed: the run's version is the source's current one.
      version: expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    expect(await lake.head(result.reportKey)).toBeDefined();
    expect(metric('QualityScore')).toMatchObject({
      QualityScore: result.score,
      ReconciliationFailed: 0,
      dataset: 'tic-in-network',
    });
  });

  it('reconcile in steps (plan, each item, each key bucket, finish) writes the report one invocation writes', async () => {
    await createSilverHandler(silverDeps())(event());
    const reconcile = createReconcileHandler(reconcileDeps());
    const { executionId: _, ...unleased } = event();
    await reconcile(unleased);
    const report = () => readFile(lake.uri(reconciliationKey('tic-in-network', ingested.runId)), 'utf8');
    const whole = await report();

    const plan = (await reconcile({ ...unleased, op: 'plan' })) as ReconcilePlanSummary;
    expect(plan.items.length).toBe(plan.bronzeGroups + plan.silverFiles);
    expect(plan.silverFiles).toBeGreaterThanOrEqual(4);
    for (const { item } of plan.items) await reconcile({ ...unleased, op: 'item', item });
    for (const { bucket } of plan.buckets) await reconcile({ ...unleased, op: 'keys', bucket });
    await lake.delete(reconciliationKey('tic-in-network', ingested.runId));
    const finished = (await reconcile({ ...unleased, op: 'finish' })) as ReconcileOutput;
    expect(finished.status).toBe('passed');
    expect(await report()).toBe(whole);
    // The work objects are gone once the report is written.
    const left: string[] = [];
    for await (const o of lake.list(reconcileWorkPrefix('tic-in-network', ingested.runId))) left.push(o.key);
    expect(left).toEqual([]);
    // A finish without the steps before it says what is missing.
    await expect(reconcile({ ...unleased, op: 'finish' })).rejects.toThrow(
      /PlanReconcile \(op "plan"\) must run first/,
    );
  });

  it('tells the catalog of the committed version after reconciliation passed, and never of a failed one', async () => {
    const published: SourceVersionRecord[] = [];
    const catalog: SourceCatalog = { publish: async (record) => void published.push(record) };
    const built = await createSilverHandler(silverDeps())(event());
    // Without an execution id: this run holds no lease (the lease itself is tested elsewhere).
    const { executionId: _, ...unleased } = event();
    await createReconcileHandler(reconcileDeps({ catalog }))(unleased);
    expect(published).toHaveLength(1);
    const silver = JSON.parse(await readFile(lake.uri(built.silverManifestKey), 'utf8')) as {
      tables: Record<string, { files: { key: string }[] }>;
    };
    // Each table's files (one per merge bucket with rows), as the silver manifest lists them.
    expect(published[0]!.tables).toEqual(
      Object.fromEntries(
        Object.entries(silver.tables).flatMap(([name, t]) =>
          t.files.length > 0 ? [[name, t.files.map((f) => f.key)]] : [],
        ),
      ),
    );
    expect(published[0]).toMatchObject({ dataset: 'tic-in-network', runId: ingested.runId });

    // A failed reconciliation publishes nothing.
    const file = lake.uri(built.silverManifestKey);
    const manifest = JSON.parse(await readFile(file, 'utf8')) as {
      records: Record<string, { accepted: number }>;
    };
    manifest.records.in_network!.accepted++;
    await writeFile(file, JSON.stringify(manifest));
    await expect(createReconcileHandler(reconcileDeps({ catalog }))(unleased)).rejects.toThrow(
      ReconciliationError,
    );
    expect(published).toHaveLength(1);
  });

  it('reconcile fails with ReconciliationError, counted as ReconciliationFailed, when counts differ', async () => {
    const built = await createSilverHandler(silverDeps())(event());
    // A silver manifest that claims one record more than bronze holds.
    const file = lake.uri(built.silverManifestKey);
    const manifest = JSON.parse(await readFile(file, 'utf8')) as {
      records: Record<string, { accepted: number }>;
    };
    manifest.records.in_network!.accepted++;
    await writeFile(file, JSON.stringify(manifest));
    await expect(createReconcileHandler(reconcileDeps())(event())).rejects.toThrow(ReconciliationError);
    expect(metric('ReconciliationFailed')).toMatchObject({
      ReconciliationFailed: 1,
      dataset: 'tic-in-network',
    });
  });

  it('emits the run cost of a failed reconciliation as of a passed one: a failed run cost money too', async () => {
    const built = await createSilverHandler(silverDeps())(event());
    const file = lake.uri(built.silverManifestKey);
    const manifest = JSON.parse(await readFile(file, 'utf8')) as {
      records: Record<string, { accepted: number }>;
    };
    manifest.records.in_network!.accepted++;
    await writeFile(file, JSON.stringify(manifest));
    // Metered as deployed (the invocation's usage, the records in the lake), and named as its state.
    const usage = { meter: new UsageMeter(), records: lake };
    await expect(
      createReconcileHandler(reconcileDeps({ usage }))({ ...event(), state: 'Reconcile' }),
    ).rejects.toThrow(ReconciliationError);
    const cost = metric('RunCostUsd');
    expect(cost).toMatchObject({ ReconciliationFailed: 1, dataset: 'tic-in-network' });
    expect(cost!.RunCostUsd).toBeGreaterThan(0);
    expect(cost!.RunCostUsdPerGb).toBeGreaterThan(0);
    const report = JSON.parse(
      await readFile(lake.uri(reconciliationKey('tic-in-network', ingested.runId)), 'utf8'),
    );
    expect(report.status).toBe('failed');
    expect(cost!.RunCostUsd).toBe(report.cost.totalUsd);
  });

  it('reconcile fails with QuarantineThresholdError over the threshold its environment sets', async () => {
    // The sample with one in_network item that breaks a quarantine rule.
    const landing = path.join(dir, 'landing');
    const doc = JSON.parse(await readFile(path.join(EXAMPLES, SAMPLE), 'utf8'));
    doc.in_network[0].negotiation_arrangement = 'not-an-arrangement';
    const key = 'tic-in-network/2026-01/one-bad.json';
    await writeFile(path.join(landing, key), JSON.stringify(doc));
    const output = await createIngestHandler({
      config: { ...config, landingBucket: 'landing' },
      source: new FileObjectStore(landing),
      lake,
      clock: fixedClock,
      observability: observability(),
    })({ bucket: 'landing', key, dataset: 'tic-in-network' });
    if (output.status !== 'committed') throw new Error(`expected a committed ingest, got ${output.status}`);
    const bad = { ...event(), bronzeManifestKey: output.manifestKey };
    const built = await createSilverHandler(silverDeps())(bad);
    expect(built.quarantined).toBe(1);

    const env = (threshold: string) =>
      loadLakeStageConfig('reconcile', {
        ...lakeStageEnvironment({ ...config, quarantineRateThreshold: Number(threshold) }),
      });
    expect(env('0').quarantineRateThreshold).toBe(0);
    const failed = createReconcileHandler(reconcileDeps({ config: env('0') }))(bad);
    await expect(failed).rejects.toThrow(QuarantineThresholdError);
    await expect(failed).rejects.toThrow(/set quarantineRateThreshold to 0\.\d+ or more\.$/);
    await expect(createReconcileHandler(reconcileDeps({ config: env('0.99') }))(bad)).resolves.toMatchObject({
      status: 'passed',
    });
  });

  it('rejects a dataset this deployment does not ingest with a ConfigError', async () => {
    const run = createSilverHandler(silverDeps())({ ...event(), dataset: 'tic-table-of-contents' });
    await expect(run).rejects.toThrow(ConfigError);
    await expect(createReconcileHandler(reconcileDeps())({ dataset: 'x' })).rejects.toThrow(
      /the reconcile event is invalid/,
    );
  });

  it('turns a reset connection into a TransientError, keeping the cause', async () => {
    for (const run of [
      createSilverHandler(silverDeps({ lake: resetOnRead(lake) })),
      createReconcileHandler(reconcileDeps({ lake: resetOnRead(lake) })),
    ]) {
      const error = (await run(event()).catch((e: unknown) => e)) as TransientError;
      expect(error).toBeInstanceOf(TransientError);
      expect((error.cause as { code: string }).code).toBe('ECONNRESET');
    }
  });

  it('reads back the environment the CDK app writes', () => {
    const env = lakeStageEnvironment({
      serviceName: 'svc',
      logLevel: 'WARN',
      lakeBucket: 'lake',
      datasets: ['a', 'b'],
    });
    expect(loadLakeStageConfig('silver', { ...env, AWS_REGION: 'eu-west-1' })).toEqual({
      serviceName: 'svc',
      logLevel: 'WARN',
      region: 'eu-west-1',
      lakeBucket: 'lake',
      datasets: ['a', 'b'],
    });
    expect(() => loadLakeStageConfig('reconcile', { POWERTOOLS_SERVICE_NAME: 'svc' })).toThrow(
      /reconcile handler's environment is invalid:\n.*LAKE_BUCKET: missing/,
    );
  });

  it('reads the Glue database of the reconcile function, and refuses a name Glue would not have', () => {
    const env = lakeStageEnvironment({
      serviceName: 'svc',
      logLevel: 'WARN',
      lakeBucket: 'lake',
      datasets: ['a'],
      glueDatabase: 'sluice_dev',
    });
    expect(env.GLUE_DATABASE).toBe('sluice_dev');
    expect(loadLakeStageConfig('reconcile', env).glueDatabase).toBe('sluice_dev');
    expect(() => loadLakeStageConfig('reconcile', { ...env, GLUE_DATABASE: 'Sluice-Dev' })).toThrow(
      /reconcile handler's environment is invalid:\n.*GLUE_DATABASE: expected a Glue database name/,
    );
  });

  it('tells the Glue catalog of each commit when the config names a database, and no catalog otherwise', () => {
    const withGlue = createReconcileDeps({ ...config, region: 'us-east-1', glueDatabase: 'sluice_dev' });
    expect(withGlue.catalog).toBeInstanceOf(GlueSourceCatalog);
    expect(createReconcileDeps({ ...config, region: 'us-east-1' }).catalog).toBeUndefined();
  });
});
