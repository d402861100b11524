import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHandler as createIngestHandler, type IngestDeps } from '../../functions/ingest/handler.ts';
import {
  createHandler as createStartHandler,
  type StartExecutionDeps,
} from '../../functions/start-execution/handler.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import {
  type IngestConfig,
  ingestEnvironment,
  loadIngestConfig,
  loadStartExecutionConfig,
  startExecutionEnvironment,
} from '../../shared/config/runtime-config.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { ExecutionStarter } from '../../shared/ports/workflow-executions.ts';
import { executionName } from '../../shared/workflow/execution.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { fixedClock, tempDir } from '../helpers/lake.ts';

type StartRequestHandler = ExecutionStarter['start'];

const TOC_KEY = 'tic-table-of-contents/2026-01/acme_index.json';
const TOC = {
  reporting_entity_name: 'Acme Health',
  reporting_entity_type: 'health insurance issuer',
  reporting_structure: [
    {
      reporting_plans: [{ plan_name: 'Gold' }],
      in_network_files: [{ location: 'https://example.com/a.json' }],
    },
    {
      reporting_plans: [{ plan_name: 'Silver' }],
      allowed_amount_file: { location: 'https://example.com/b.json' },
    },
  ],
  version: '1.1.0',
};
const EXECUTION_ID = 'arn:aws:states:us-east-1:123456789012:execution:ingest:tic-abc';

const ingestConfig: IngestConfig = {
  serviceName: 'sluice-test',
  logLevel: 'ERROR',
  landingBucket: 'landing',
  lakeBucket: 'lake',
  datasets: ['tic-table-of-contents'],
};

// biome-ignore lint/suspicious/noExplicitAny: EMF documents are untyped JSON; the assertions check their shape.
type Json = any;

/** The EMF documents the handler printed (Powertools writes them straight to stdout), parsed. */
function emfDocuments(write: { mock: { calls: unknown[][] } }): Record<string, Json>[] {
  return write.mock.calls
    .flatMap((call) => String(call[0]).split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line));
}

async function keysIn(store: FileObjectStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list('')) keys.push(object.key);
  return keys;
}

describe('Handler: ingest', () => {
  let cleanup: () => Promise<void>;
  let deps: IngestDeps;
  let lake: FileObjectStore;
  let stdout: { mock: { calls: unknown[][] }; mockRestore(): void };

  beforeEach(async () => {
    const temp = await tempDir('sluice-ingest-handler-');
    cleanup = temp.cleanup;
    const landingDir = path.join(temp.dir, 'landing');
    await mkdir(path.join(landingDir, 'tic-table-of-contents', '2026-01'), { recursive: true });
    await writeFile(path.join(landingDir, TOC_KEY), JSON.stringify(TOC));
    lake = new FileObjectStore(path.join(temp.dir, 'lake'));
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    deps = {
      config: ingestConfig,
      source: new FileObjectStore(landingDir),
      lake,
      clock: fixedClock,
      observability: createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' }),
    };
  });
  afterEach(async () => {
    stdout.mockRestore();
    await cleanup();
  });

  const event = (overrides: Record<string, unknown> = {}) => ({
    bucket: 'landing',
    key: TOC_KEY,
    dataset: 'tic-table-of-contents',
    executionId: EXECUTION_ID,
    ...overrides,
  });

  it('ingests the landed object to bronze and returns only a small reference', async () => {
    const result = await createIngestHandler(deps)(event());
    expect(Object.keys(result).sort()).toEqual([
      'dataset',
      'manifestKey',
      'records',
      'runId',
      'slices',
      'status',
      'version',
    ]);
    expect(result).toMatchObject({
      status: 'committed',
      slices: 1,
      dataset: 'tic-table-of-contents',
      records: { reporting_structure: 2 },
    });
    if (result.status !== 'committed') throw new Error('expected a committed run');
    expect(result.manifestKey).toMatch(/^bronze\/tic-table-of-contents\/source=.*\/_manifest\.json$/);
    expect(await lake.head(result.manifestKey)).toBeDefined();
    expect(JSON.stringify(result).length).toBeLessThan(1024);
  });

  it('emits records, bytes and success as EMF metrics with the dataset dimension', async () => {
    await createIngestHandler(deps)(event());
    const docs = emfDocuments(stdout);
    const byMetric = (name: string) =>
      docs.find((doc) =>
        doc._aws.CloudWatchMetrics[0].Metrics.some((m: { Name: string }) => m.Name === name),
      );
    const summary = byMetric('IngestSucceeded')!;
    expect(summary._aws.CloudWatchMetrics[0].Namespace).toBe('Sluice');
    expect(summary).toMatchObject({
      IngestSucceeded: 1,
      service: 'sluice-test',
      dataset: 'tic-table-of-contents',
    });
    expect(summary.SourceBytes).toBe(JSON.stringify(TOC).length);
    expect(summary.correlationId).toBe(EXECUTION_ID);
    expect(byMetric('RecordsIngested')).toMatchObject({
      RecordsIngested: 2,
      dataset: 'tic-table-of-contents',
      recordName: 'reporting_structure',
    });
  });

  it('fails with a ConfigError for a dataset this deployment does not ingest, writing nothing', async () => {
    const run = createIngestHandler(deps)(event({ dataset: 'tic-in-network', key: 'tic-in-network/a.json' }));
    await expect(run).rejects.toThrow(ConfigError);
    await expect(run).rejects.toThrow(/dataset "tic-in-network" is not deployed.*tic-table-of-contents/);
    expect(await keysIn(lake)).toEqual([]);
  });

  it('fails with a ConfigError for a key that names no dataset', async () => {
    await expect(createIngestHandler(deps)(event({ dataset: '', key: 'a.json' }))).rejects.toThrow(
      /landing key "a.json" names no dataset/,
    );
  });

  it('fails with a ConfigError for another bucket or a malformed event', async () => {
    await expect(createIngestHandler(deps)(event({ bucket: 'elsewhere' }))).rejects.toThrow(ConfigError);
    await expect(createIngestHandler(deps)({ key: TOC_KEY })).rejects.toThrow(/the ingest event is invalid/);
  });
});

describe('Handler: start-execution', () => {
  const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:ingest';
  const objectCreated = (key = TOC_KEY, versionId = 'v1') => ({
    version: '0',
    'detail-type': 'Object Created',
    source: 'aws.s3',
    detail: {
      version: '0',
      bucket: { name: 'landing' },
      object: { key, size: 123, etag: 'abc', 'version-id': versionId, sequencer: '00' },
      reason: 'PutObject',
    },
  });
  /** An SQS event as the event source mapping delivers it: one record per landing event. */
  const sqsEvent = (...bodies: { body: unknown; deferrals?: number }[]) => ({
    Records: bodies.map(({ body, deferrals }, i) => ({
      messageId: `m${i}`,
      receiptHandle: `r${i}`,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      attributes: { ApproximateReceiveCount: '1' },
      messageAttributes:
        deferrals === undefined ? {} : { deferrals: { stringValue: String(deferrals), dataType: 'Number' } },
      eventSource: 'aws:sqs',
    })),
  });

  const setup = (options: { running?: number; start?: StartRequestHandler } = {}) => {
    const clock = new FakeClock();
    const start = vi.fn<StartRequestHandler>(options.start ?? (async () => ({ executionArn: 'arn' })));
    const requeued: { body: string; deferrals: number; delaySeconds: number }[] = [];
    const deps: StartExecutionDeps = {
      config: {
        serviceName: 'sluice-test',
        logLevel: 'ERROR',
        stateMachineArn: STATE_MACHINE,
        landingQueueUrl: 'https://sqs.example/landing',
        pacing: { maxStartsPerSecond: 10, maxRunningExecutions: 5, starters: 2 },
      },
      executions: { start, countRunning: async () => options.running ?? 0 },
      queue: {
        requeue: async (body, deferrals, delaySeconds) => {
          requeued.push({ body, deferrals, delaySeconds });
        },
      },
      clock,
      observability: createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' }),
    };
    return { handler: createStartHandler(deps), start, requeued };
  };

  it('starts one execution named after the object version, with the workflow input', async () => {
    const { handler, start } = setup();
    expect(await handler(sqsEvent({ body: objectCreated() }))).toEqual({ batchItemFailures: [] });
    const name = executionName({ bucket: 'landing', key: TOC_KEY, versionId: 'v1', etag: 'abc' });
    expect(start).toHaveBeenCalledWith({
      name,
      input: JSON.stringify({ bucket: 'landing', key: TOC_KEY, dataset: 'tic-table-of-contents' }),
    });
  });

  it('treats ExecutionAlreadyExists (a repeated delivery) as done', async () => {
    const { handler } = setup({
      start: async () => {
        throw Object.assign(new Error('Execution Already Exists'), { name: 'ExecutionAlreadyExists' });
      },
    });
    expect(await handler(sqsEvent({ body: objectCreated() }))).toEqual({ batchItemFailures: [] });
  });

  it('puts back what it cannot start yet, delayed by its deferrals, and reports none of it failed', async () => {
    // 4 of 5 running, 2 starters: this one may start ceil(1 / 2) = 1.
    const { handler, start, requeued } = setup({ running: 4 });
    const result = await handler(
      sqsEvent({ body: objectCreated(TOC_KEY, 'v1') }, { body: objectCreated(TOC_KEY, 'v2'), deferrals: 3 }),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(start).toHaveBeenCalledTimes(1);
    expect(requeued).toEqual([
      { body: JSON.stringify(objectCreated(TOC_KEY, 'v2')), deferrals: 4, delaySeconds: 120 },
    ]);
  });

  it('reports failures to start, and malformed events, as batch item failures', async () => {
    const denied = Object.assign(new Error('not allowed'), { name: 'AccessDeniedException' });
    const { handler } = setup({ start: async () => Promise.reject(denied) });
    const result = await handler(
      sqsEvent(
        { body: objectCreated() },
        { body: 'not json' },
        { body: { 'detail-type': 'Object Deleted' } },
      ),
    );
    expect(result.batchItemFailures).toEqual([
      { itemIdentifier: 'm1' },
      { itemIdentifier: 'm2' },
      { itemIdentifier: 'm0' },
    ]);
  });

  it('skips folder markers and downloads', async () => {
    const { handler, start } = setup();
    const result = await handler(
      sqsEvent(
        { body: objectCreated('tic-table-of-contents/') },
        { body: objectCreated('_downloads/tic-in-network/a.json.gz') },
      ),
    );
    expect(result).toEqual({ batchItemFailures: [] });
    expect(start).not.toHaveBeenCalled();
  });

  it('rejects an event that is not an SQS event', async () => {
    const { handler } = setup();
    await expect(handler(objectCreated())).rejects.toThrow(ConfigError);
  });
});

describe('Module: runtime-config', () => {
  it('reads back what the CDK app writes', () => {
    const env = ingestEnvironment({
      serviceName: 'svc',
      logLevel: 'DEBUG',
      landingBucket: 'l',
      lakeBucket: 'k',
      datasets: ['a', 'b'],
    });
    expect(loadIngestConfig({ ...env, AWS_REGION: 'eu-west-1' })).toEqual({
      serviceName: 'svc',
      logLevel: 'DEBUG',
      region: 'eu-west-1',
      landingBucket: 'l',
      lakeBucket: 'k',
      datasets: ['a', 'b'],
    });
    const bounded = { ...loadIngestConfig(env), sliceMaxMb: 20480 };
    expect(loadIngestConfig(ingestEnvironment(bounded))).toEqual(bounded);
    const startConfig = {
      serviceName: 'svc',
      logLevel: 'INFO',
      stateMachineArn: 'arn',
      landingQueueUrl: 'https://sqs.example/q',
      pacing: { maxStartsPerSecond: 0.5, maxRunningExecutions: 50, starters: 2 },
    } as const;
    expect(loadStartExecutionConfig(startExecutionEnvironment(startConfig))).toEqual(startConfig);
  });

  it('names each missing or invalid variable', () => {
    expect(() => loadIngestConfig({ POWERTOOLS_SERVICE_NAME: 'svc', POWERTOOLS_LOG_LEVEL: 'LOUD' })).toThrow(
      /POWERTOOLS_LOG_LEVEL: use one of DEBUG.*\n.*LANDING_BUCKET: missing.*\n.*LAKE_BUCKET: missing.*\n.*DATASETS: missing/,
    );
  });
});
