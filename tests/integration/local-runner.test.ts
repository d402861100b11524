import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { download } from '../../functions/download/handler.ts';
import { fanOut } from '../../functions/fan-out/handler.ts';
import { createHandler as createIngestHandler, ingest } from '../../functions/ingest/handler.ts';
import { createHandler as createReconcileHandler, reconcileRun } from '../../functions/reconcile/handler.ts';
import { createHandler as createSilverHandler, silver } from '../../functions/silver/handler.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { CountingObjectStore } from '../../shared/adapters/counting-object-store.ts';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { redriveLocally } from '../../shared/cli/dlq-command.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { contractFingerprint } from '../../shared/contracts/silver/contract-fingerprint.ts';
import { ContractViolationError, MalformedInputError, TransientError } from '../../shared/errors.ts';
import { reconciliationKey, silverBuildOf, silverManifestKey } from '../../shared/lake/keys.ts';
import {
  LOCAL_RESOURCES,
  type LocalFunctionName,
  localFunctions,
  localWorkflowDefinition,
} from '../../shared/pipeline/local-functions.ts';
import {
  committedRun,
  runWorkflowLocally as runAnyWorkflow,
  type WorkflowEvent,
  WorkflowFailedError,
} from '../../shared/pipeline/local-runner.ts';
import type { LocalRunResult } from '../../shared/pipeline/pipeline-types.ts';
import type { DeadLetterStore } from '../../shared/ports/dead-letter-store.ts';
import type { ByteRange, ObjectInfo, ObjectStore, WriteOptions } from '../../shared/ports/object-store.ts';
import type { ReconcilePlanSummary } from '../../shared/stages/reconcile/reconcile.ts';
import type { SilverProgress } from '../../shared/stages/silver/build-silver.ts';
import {
  ingestWorkflowDefinition,
  Placeholder,
  StateName,
  type WorkflowDefinition,
} from '../../shared/workflow/definition.ts';
import type { SilverGroupOutput } from '../../shared/workflow/stage-io.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { startFlakyServer } from '../helpers/flaky-http-server.ts';
import { fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';

/** Runs of new sources: each one commits. */
/** A lake's files, without the usage records (what each invocation cost, which differs run by run). */
const outputFiles = async (lake: string) => (await listFiles(lake)).filter((f) => !f.startsWith('_usage/'));

const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

const EXAMPLES = TIC_EXAMPLES;
const SAMPLE = 'in-network-rates-multiple-plans-sample.json';
const inNetwork = builtInDataset('tic-in-network');

/**
 * A lake whose first `failures` writes (of keys that `affects`) throw a TransientError, as a flaky S3
 * would once the handler has mapped its error.
 */
class FlakyLake implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private failures: number,
    private readonly affects: (key: string) => boolean = () => true,
  ) {}
  uri(key: string) {
    return this.inner.uri(key);
  }
  read(key: string, range?: ByteRange) {
    return this.inner.read(key, range);
  }
  async write(
    key: string,
    body: Uint8Array | string | Readable,
    options?: WriteOptions,
  ): Promise<ObjectInfo> {
    if (this.failures > 0 && this.affects(key)) {
      this.failures--;
      throw new TransientError(`injected: write of ${key} failed, try again`);
    }
    return this.inner.write(key, body, options);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

/**
 * The Lambda handlers run one after the other, as the deployed workflow does: Ingest, the silver function
 * for PlanSilver, each SilverGroups item, each SilverBuckets item and the Silver commit, then Reconcile.
 */
/** The execution id the state machine passes each stage: the holder of the source's lease. */
const HANDLERS_EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:sluice:handlers-test';

async function runHandlers(source: ObjectStore, lake: ObjectStore, workDir: string) {
  const config = { serviceName: 'sluice-test', logLevel: 'ERROR' as const, datasets: ['tic-in-network'] };
  const observability = () => createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' });
  // The handlers print their metrics (EMF) to stdout.
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    const ingest = await createIngestHandler({
      config: { ...config, landingBucket: 'landing', lakeBucket: 'lake' },
      source,
      lake,
      clock: fixedClock,
      observability: observability(),
    })({ bucket: 'landing', key: SAMPLE, dataset: 'tic-in-network', executionId: HANDLERS_EXECUTION });
    if (ingest.status !== 'committed') throw new Error(`expected a committed ingest, got ${ingest.status}`);
    const stageEvent = {
      dataset: ingest.dataset,
      bronzeManifestKey: ingest.manifestKey,
      executionId: HANDLERS_EXECUTION,
    };
    const lakeConfig = { ...config, lakeBucket: 'lake' };
    const silverFunction = createSilverHandler({
      config: lakeConfig,
      lake,
      clock: fixedClock,
      observability: observability(),
      createTableWriter: createPartialParquetTableWriter,
      workDir,
    });
    const silverPlan = await silverFunction({ ...stageEvent, op: 'plan' as const });
    const { groupCount, bucketCount } = silverPlan;
    for (const { group } of silverPlan.groups) {
      await silverFunction({ ...stageEvent, op: 'group' as const, group, groupCount, bucketCount });
    }
    for (const { bucket } of silverPlan.buckets) {
      await silverFunction({ ...stageEvent, op: 'bucket' as const, bucket, groupCount, bucketCount });
    }
    const silver = await silverFunction({ ...stageEvent, op: 'merge', groupCount, bucketCount });
    const reconcileFunction = createReconcileHandler({
      config: lakeConfig,
      lake,
      clock: fixedClock,
      observability: observability(),
      openInspector: openParquetInspector,
      workDir,
    });
    const reconcilePlan = (await reconcileFunction({ ...stageEvent, op: 'plan' })) as ReconcilePlanSummary;
    for (const { item } of reconcilePlan.items) await reconcileFunction({ ...stageEvent, op: 'item', item });
    for (const { bucket } of reconcilePlan.buckets)
      await reconcileFunction({ ...stageEvent, op: 'keys', bucket });
    const reconcile = await reconcileFunction({ ...stageEvent, op: 'finish' });
    return { ingest, silverPlan, silver, reconcilePlan, reconcile };
  } finally {
    stdout.mockRestore();
  }
}

describe('Function: runWorkflowLocally (the deployed definition, run in process)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  /** The deployed definition, with the local runner's resources. */
  let definition: WorkflowDefinition;
  let lakeNumber = 0;

  beforeAll(async () => {
    tmp = await tempDir('sluice-local-runner-');
    definition = localWorkflowDefinition();
    await copyFile(join(EXAMPLES, SAMPLE), join(tmp.dir, SAMPLE));
  });
  afterAll(async () => tmp.cleanup());

  /** A fresh lake, its dead letters, and the events of the execution. */
  const setup = (lake?: (store: ObjectStore) => ObjectStore) => {
    const lakeDir = join(tmp.dir, `lake-${++lakeNumber}`);
    const files = new FileObjectStore(lakeDir);
    const events: WorkflowEvent[] = [];
    const deadLetters = new FolderDeadLetterStore(lakeDir);
    const deps = {
      source: new FileObjectStore(tmp.dir),
      lake: lake ? lake(files) : files,
      clock: fixedClock,
      workDir: join(tmp.dir, `work-${lakeNumber}`),
      deadLetters,
      definition,
      retryIntervalMs: 0,
      // Two silver groups at most, whatever the machine's cores: the state lists below stay exact.
      silverParallelism: 2,
      onEvent: (event: WorkflowEvent) => events.push(event),
    };
    const entered = () => events.filter((e) => e.type === 'StateEntered').map((e) => e.state!.name);
    const retries = (state: string) =>
      events.filter((e) => e.type === 'StateRetried' && e.state?.name === state);
    return { lakeDir, files, deps, deadLetters, events, entered, retries };
  };

  /** Let the event stream catch up: it is delivered asynchronously. */
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('runs the one definition, its resources local: each Lambda task a handler function, nothing synthesized', () => {
    expect(definition.StartAt).toBe(StateName.hasSource);
    // The builder's ASL, placeholders substituted: the same text the CDK app deploys.
    const text = JSON.stringify(ingestWorkflowDefinition());
    expect(JSON.stringify(definition)).toBe(
      text.replace(/\$\{(\w+)\}/g, (_, name: Placeholder) => LOCAL_RESOURCES[name]),
    );
    const tasks = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([name]) => name).sort()).toEqual(
      [
        StateName.download,
        StateName.ingest,
        StateName.planRebuild,
        StateName.planSilver,
        StateName.silver,
        StateName.planReconcile,
        StateName.reconcile,
        StateName.catchUpState,
        StateName.planFanOut,
        StateName.recordFailure,
      ].sort(),
    );
    // The silver groups: a Map whose item is one more task of the silver function.
    const groups = definition.States[StateName.silverGroups];
    expect(groups).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.silverPlan.groups',
      Next: StateName.silverBuckets,
    });
    expect(Object.keys(groups.ItemProcessor.States)).toEqual([StateName.silverGroup]);
    expect(groups.ItemProcessor.States[StateName.silverGroup].Resource).toBe(
      LOCAL_RESOURCES[Placeholder.silverFunctionArn],
    );
    // The merge buckets: another Map of the silver function.
    const buckets = definition.States[StateName.silverBuckets];
    expect(buckets).toMatchObject({ Type: 'Map', ItemsPath: '$.silverPlan.buckets', Next: StateName.silver });
    expect(buckets.ItemProcessor.States[StateName.silverBucket].Resource).toBe(
      LOCAL_RESOURCES[Placeholder.silverFunctionArn],
    );
    // Reconciliation: two Maps whose items are more tasks of the reconcile function, then Reconcile.
    const reconcileMaps = [
      [
        StateName.reconcileItems,
        '$.reconcilePlan.items',
        StateName.reconcileItem,
        StateName.reconcileKeyBuckets,
      ],
      [
        StateName.reconcileKeyBuckets,
        '$.reconcilePlan.buckets',
        StateName.reconcileKeyBucket,
        StateName.reconcile,
      ],
    ] as const;
    for (const [map, itemsPath, item, next] of reconcileMaps) {
      expect(definition.States[map]).toMatchObject({
        Type: 'Map',
        ItemsPath: itemsPath,
        Next: next,
        ResultPath: null,
      });
      expect(definition.States[map].ItemProcessor.States[item].Resource).toBe(
        LOCAL_RESOURCES[Placeholder.reconcileFunctionArn],
      );
    }
    // Each stage function is the handler module's own export: no second copy of any stage.
    expect(localFunctions).toEqual({
      [Placeholder.downloadFunctionArn]: download,
      [Placeholder.ingestFunctionArn]: ingest,
      [Placeholder.silverFunctionArn]: silver,
      [Placeholder.reconcileFunctionArn]: reconcileRun,
      [Placeholder.fanOutFunctionArn]: fanOut,
    });
    expect(localFunctions[Placeholder.ingestFunctionArn]).toBe(ingest);
    expect(localFunctions[Placeholder.silverFunctionArn]).toBe(silver);
    expect(localFunctions[Placeholder.reconcileFunctionArn]).toBe(reconcileRun);
  });

  it('invokes exactly the handler functions of the table, with a Lambda context and a scratch folder each', async () => {
    const { deps, entered } = setup();
    const spies = (Object.keys(localFunctions) as LocalFunctionName[]).map((name) => [
      name,
      vi.spyOn(localFunctions, name),
    ]) as [LocalFunctionName, ReturnType<typeof vi.spyOn>][];
    try {
      const result = await runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, deps);
      expect(result.reconciliation?.status).toBe('passed');
      const calls = Object.fromEntries(spies.map(([name, spy]) => [name, spy.mock.calls]));
      const states = entered();
      const count = (...names: string[]) => states.filter((s) => names.includes(s)).length;
      expect(calls[Placeholder.ingestFunctionArn]).toHaveLength(count(StateName.ingest));
      expect(calls[Placeholder.silverFunctionArn]).toHaveLength(
        count(StateName.planSilver, StateName.silverGroup, StateName.silverBucket, StateName.silver),
      );
      expect(calls[Placeholder.reconcileFunctionArn]).toHaveLength(
        count(
          StateName.planReconcile,
          StateName.reconcileItem,
          StateName.reconcileKeyBucket,
          StateName.reconcile,
        ),
      );
      expect(calls[Placeholder.downloadFunctionArn]).toHaveLength(0);
      expect(calls[Placeholder.fanOutFunctionArn]).toHaveLength(0);
      const [event, silverDeps, context] = calls[Placeholder.silverFunctionArn]![0]!;
      expect(event).toMatchObject({ op: 'plan', dataset: inNetwork.name });
      expect(context).toMatchObject({
        invokedFunctionArn: LOCAL_RESOURCES[Placeholder.silverFunctionArn],
        functionName: 'sluice-local-silver',
      });
      expect(context.getRemainingTimeInMillis()).toBeGreaterThan(0);
      // Every invocation had a scratch folder of its own.
      const workDirs = calls[Placeholder.silverFunctionArn]!.map(
        (call: unknown[]) => (call[1] as { workDir: string }).workDir,
      );
      expect(new Set(workDirs).size).toBe(workDirs.length);
      // The run's lake, its requests counted for the invocation's usage record (what the run cost).
      const lake = (silverDeps as { lake: ObjectStore }).lake;
      expect(lake).toBeInstanceOf(CountingObjectStore);
      expect(lake.uri('k')).toBe(deps.lake.uri('k'));
    } finally {
      for (const [, spy] of spies) spy.mockRestore();
    }
  });

  /** The silver states of a build in `groups` groups. */
  const silverStates = (groups: number) => [
    StateName.planSilver,
    StateName.silverGroups,
    ...Array<string>(groups).fill(StateName.silverGroup),
    // A source this small merges in one bucket.
    StateName.silverBuckets,
    StateName.silverBucket,
    StateName.silver,
  ];
  /** The reconciliation states of a local run whose plan has `items` items and `buckets` key buckets. */
  const reconcileStates = (result: LocalRunResult, buckets = 1) => [
    StateName.planReconcile,
    StateName.reconcileItems,
    ...Array<string>(
      groupsOf(result) +
        Object.values(result.silver!.manifest.tables).reduce((n, t) => n + t.files.length, 0),
    ).fill(StateName.reconcileItem),
    StateName.reconcileKeyBuckets,
    ...Array<string>(buckets).fill(StateName.reconcileKeyBucket),
    StateName.reconcile,
  ];
  /** Groups of a local build at the runner's parallelism (`setup`: 2). */
  const groupsOf = (result: { bronze: { manifest: { parts: readonly unknown[] } } }) =>
    Math.min(2, result.bronze.manifest.parts.length);

  it('runs a good file through Ingest, Silver and Reconcile, as the Lambda handlers would', async () => {
    const { lakeDir, files, deps, entered, events } = setup();
    const result = await runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, deps);
    await settle();
    expect(entered()).toEqual([
      StateName.hasSource,
      StateName.dropped,
      StateName.ingest,
      StateName.ingestDone,
      StateName.hasSilver,
      ...silverStates(groupsOf(result)),
      ...reconcileStates(result),
      StateName.hasFanOut,
      StateName.succeeded,
    ]);
    expect(result.reconciliation?.status).toBe('passed');
    const { runId } = result.bronze;
    expect(await files.head(result.bronze.manifestKey)).toBeDefined();
    expect(
      await files.head(
        silverManifestKey(
          silverBuildOf(result.bronze.manifest, contractFingerprint(silverContractFor('tic-in-network')!)),
        ),
      ),
    ).toBeDefined();
    expect(await files.head(reconciliationKey('tic-in-network', runId))).toBeDefined();
    expect(await deps.deadLetters.list()).toEqual([]);

    // The deployed runtime: the three Lambda handlers in a row, on another lake.
    const handlersLake = join(tmp.dir, 'handlers-lake');
    const lambda = await runHandlers(deps.source, new FileObjectStore(handlersLake), deps.workDir);
    // Each state's output (kept beside the input under its own key) is what its handler returns ...
    const output = events.find((e) => e.type === 'ExecutionSucceeded') as {
      output?: Record<string, unknown>;
    };
    expect(output.output).toEqual({
      bucket: tmp.dir,
      key: SAMPLE,
      dataset: 'tic-in-network',
      hasSilver: true,
      origin: { url: '' },
      ingest: lambda.ingest,
      silverPlan: {
        groups: [...Array(groupsOf(result)).keys()].map((group) => ({ group })),
        groupCount: groupsOf(result),
        buckets: [{ bucket: 0 }],
        bucketCount: 1,
      },
      silver: lambda.silver,
      reconcilePlan: {
        ...lambda.reconcilePlan,
        // Locally one bronze group per core, as for silver: the same files, other group boundaries.
        planId: expect.stringMatching(/^[0-9a-f]{16}$/),
        items: reconcileStates(result)
          .filter((s) => s === StateName.reconcileItem)
          .map((_, item) => ({ item })),
        bronzeGroups: groupsOf(result),
      },
      reconcile: lambda.reconcile,
    });
    expect(lambda.reconcilePlan).toMatchObject({ bronzeGroups: 1, keyBuckets: 1 });
    expect(lambda.silverPlan).toEqual({
      groups: [{ group: 0 }],
      groupCount: 1,
      buckets: [{ bucket: 0 }],
      bucketCount: 1,
    });
    // ... and both runtimes leave the same lake behind, without the build's work files.
    expect(await outputFiles(lakeDir)).toEqual(await outputFiles(handlersLake));
    expect((await listFiles(lakeDir)).filter((f) => f.includes('/_work/'))).toEqual([]);
  });

  it('builds the silver groups at once, each in a worker thread, into the silver of a single group', async () => {
    const dir = join(tmp.dir, 'groups-source');
    await mkdir(dir, { recursive: true });
    await generateFile(dir, 'gen.json.gz', { seed: 7, targetBytes: 400_000 });
    const dataset = { ...inNetwork, bronze: { ...inNetwork.bronze, partMaxRecords: 10 } };
    const input = { dataset, sourceKey: 'gen.json.gz' };

    const { deps, events, lakeDir, entered } = setup();
    const progress: SilverProgress[] = [];
    const result = await runWorkflowLocally(input, {
      ...deps,
      source: new FileObjectStore(dir),
      silverParallelism: 3,
      onSilverProgress: (p) => progress.push(p),
    });
    await settle();
    expect(result.reconciliation?.status).toBe('passed');
    const parts = result.bronze.manifest.parts.length;
    expect(parts).toBeGreaterThan(3);
    expect(progress.at(-1)).toMatchObject({ partsDone: parts, partsTotal: parts });

    // Three items, all entered before any of them ended: they ran at once ...
    const items = events.filter((e) => e.state?.name === StateName.silverGroup);
    const starts = items.filter((e) => e.type === 'StateEntered').map((e) => events.indexOf(e));
    const ends = items.filter((e) => e.type === 'StateExited').map((e) => events.indexOf(e));
    expect(starts).toHaveLength(3);
    expect(ends).toHaveLength(3);
    expect(Math.max(...starts)).toBeLessThan(Math.min(...ends));
    expect(entered().filter((s) => s === StateName.silverGroups)).toHaveLength(1);
    // ... each in a worker thread of its own, over consecutive parts.
    const outputs = items
      .filter((e) => e.type === 'StateExited')
      .map((e) => (e.state as unknown as { output: SilverGroupOutput }).output)
      .sort((a, b) => a.group - b.group);
    expect(outputs.map((o) => o.group)).toEqual([0, 1, 2]);
    const threads = outputs.map((o) => o.threadId);
    expect(threads.every((id) => typeof id === 'number' && id !== threadId)).toBe(true);
    expect(new Set(threads).size).toBe(3);
    expect(outputs.flatMap((o) => [o.firstPart, o.endPart])).toEqual([
      0,
      ...outputs.slice(1).flatMap((o) => [o.firstPart, o.firstPart]),
      parts,
    ]);
    expect((await listFiles(lakeDir)).filter((f) => f.includes('/_work/'))).toEqual([]);

    // The same lake, byte for byte, as a build in one group (in this thread).
    const single = setup();
    await runWorkflowLocally(input, {
      ...single.deps,
      source: new FileObjectStore(dir),
      silverParallelism: 1,
    });
    await settle();
    const grouped = await outputFiles(lakeDir);
    expect(grouped).toEqual(await outputFiles(single.lakeDir));
    for (const file of grouped.filter((f) => f.startsWith('silver/'))) {
      expect(await readFile(join(lakeDir, file)), file).toEqual(await readFile(join(single.lakeDir, file)));
    }
  });

  it("catches a silver group's contract failure: RecordFailure, then Failed with the rule's error", async () => {
    const dir = join(tmp.dir, 'failing-group');
    await mkdir(dir, { recursive: true });
    // A record stream the TiC contract does not know fails rule `record.stream`: after the file's own
    // records, so only the last group meets it.
    const doc = JSON.parse(await readFile(join(EXAMPLES, SAMPLE), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'odd.json'), JSON.stringify({ ...doc, zz_unknown: [{ a: 1 }, { a: 2 }] }));
    const dataset = parseDatasetConfig({
      ...inNetwork,
      records: [...(inNetwork.records ?? []), { path: 'zz_unknown[*]' }],
      bronze: { ...inNetwork.bronze, partMaxRecords: 1 },
    });
    const { deps, events, entered } = setup();
    const run = runWorkflowLocally(
      { dataset, sourceKey: 'odd.json' },
      { ...deps, source: new FileObjectStore(dir), silverParallelism: 2 },
    );
    const error = (await run.catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(ContractViolationError);
    expect(error.message).toContain('record.stream');
    await settle();
    const states = entered();
    expect(states.slice(states.indexOf(StateName.hasSilver))).toEqual([
      StateName.hasSilver,
      StateName.planSilver,
      StateName.silverGroups,
      StateName.silverGroup,
      StateName.silverGroup,
      StateName.recordFailure,
      StateName.failed,
    ]);
    // Permanent: the group was not retried, its Map caught the error under its own name.
    expect(
      events.filter((e) => e.type === 'StateRetried' && e.state?.name === StateName.silverGroup),
    ).toEqual([]);
    expect(
      events.find((e) => e.type === 'StateFailed' && e.state?.name === StateName.silverGroup)?.Error,
    ).toBe('ContractViolationError');
    const [letter, ...others] = await deps.deadLetters.list();
    expect(others).toEqual([]);
    expect(letter?.error.Error).toBe('ContractViolationError');
    expect(letter?.error.Cause).toContain('record.stream');
  });

  /** The Ingest state's retrier for TransientError, as the definition declares it. */
  const transientRetrier = () =>
    (definition.States[StateName.ingest].Retry as { ErrorEquals: string[]; MaxAttempts: number }[]).find(
      (r) => r.ErrorEquals.includes('TransientError'),
    )!;
  /** The bronze manifest is written once per Ingest attempt, last: failing it fails exactly that attempt. */
  const isManifest = (key: string) => key.endsWith('/_manifest.json');

  it('retries a TransientError on the first write, then succeeds', async () => {
    const { deps, retries, events } = setup((store) => new FlakyLake(store, 1));
    const result = await runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, deps);
    await settle();
    expect(result.reconciliation?.status).toBe('passed');
    expect(retries(StateName.ingest)).toHaveLength(1);
    expect(events.filter((e) => e.type === 'StateFailed' && e.state?.name === StateName.ingest)).toHaveLength(
      1,
    );
    expect(await deps.deadLetters.list()).toEqual([]);
  });

  it('retries a TransientError as often as the definition declares, then succeeds', async () => {
    const { MaxAttempts } = transientRetrier();
    const { deps, retries } = setup((store) => new FlakyLake(store, MaxAttempts, isManifest));
    const result = await runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, deps);
    await settle();
    expect(result.reconciliation?.status).toBe('passed');
    const observed = retries(StateName.ingest);
    expect(observed).toHaveLength(MaxAttempts);
    expect(observed.map((e) => e.retry?.attempt)).toEqual([...Array(MaxAttempts).keys()].map((i) => i + 1));
    expect(observed.every((e) => e.retry?.retrier.ErrorEquals.includes('TransientError'))).toBe(true);
    expect(retries(StateName.silver)).toEqual([]);
    expect(await deps.deadLetters.list()).toEqual([]);
  });

  it('gives up once the declared retries are spent: caught, dead-lettered, failed', async () => {
    const { MaxAttempts } = transientRetrier();
    const { deps, retries, entered } = setup((store) => new FlakyLake(store, MaxAttempts + 1, isManifest));
    const run = runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, deps);
    await expect(run).rejects.toBeInstanceOf(TransientError);
    await settle();
    expect(retries(StateName.ingest)).toHaveLength(MaxAttempts);
    expect(entered().filter((s) => s !== StateName.ingest)).toEqual([
      StateName.hasSource,
      StateName.dropped,
      StateName.recordFailure,
      StateName.failed,
    ]);
    const [letter] = await deps.deadLetters.list();
    expect(letter?.error.Error).toBe('TransientError');
    expect(letter?.input).toMatchObject({ key: SAMPLE, dataset: 'tic-in-network' });
  });

  it('records a malformed file with its input and error, fails, and succeeds on redrive once fixed', async () => {
    const key = 'broken-in-network.json';
    const good = await readFile(join(EXAMPLES, SAMPLE), 'utf8');
    await writeFile(join(tmp.dir, key), good.slice(0, Math.floor(good.length / 2)));
    const { lakeDir, files, deps, retries, entered } = setup();

    const run = runWorkflowLocally({ dataset: inNetwork, sourceKey: key }, deps);
    await expect(run).rejects.toBeInstanceOf(MalformedInputError);
    await settle();
    // Permanent: not retried, caught at once.
    expect(retries(StateName.ingest)).toEqual([]);
    expect(entered()).toEqual([
      StateName.hasSource,
      StateName.dropped,
      StateName.ingest,
      StateName.recordFailure,
      StateName.failed,
    ]);

    const letters = await deps.deadLetters.list();
    expect(letters).toHaveLength(1);
    const letter = letters[0]!;
    expect(existsSync(join(lakeDir, '_dead_letters', `${letter.id}.json`))).toBe(true);
    expect(letter.executionId).toMatch(new RegExp(`:execution:sluice-local:${letter.id}$`));
    expect(letter.input).toEqual({ bucket: tmp.dir, key, dataset: 'tic-in-network', hasSilver: true });
    expect(letter.error.Error).toBe('MalformedInputError');
    expect(letter.error.Cause).toMatch(/malformed input at byte \d+/);
    expect((await listFiles(lakeDir)).filter((f) => f.startsWith('bronze/'))).toEqual([]);

    // Fix the file, then redrive: the recorded input runs again, and the letter goes away.
    await writeFile(join(tmp.dir, key), good);
    const result = committedRun(await redriveLocally(letter, deps.deadLetters, { lake: lakeDir }));
    expect(result.reconciliation?.status).toBe('passed');
    expect(await files.head(result.bronze.manifestKey)).toBeDefined();
    expect(await deps.deadLetters.list()).toEqual([]);
    expect(await deps.deadLetters.get(letter.id)).toBeUndefined();
  });

  it("records a failed run's dead letter even when the first send of it fails (a throttled SendMessage)", async () => {
    const key = 'broken-in-network-2.json';
    await writeFile(join(tmp.dir, key), '{"in_network": [');
    const { deps } = setup();
    // The failure queue refuses the first message, as SQS does when it throttles; then takes them again.
    let refusals = 1;
    const deadLetters: DeadLetterStore = {
      location: deps.deadLetters.location,
      record: (message) => {
        if (refusals-- > 0) return Promise.reject(new Error('injected: SendMessage throttled'));
        return deps.deadLetters.record(message);
      },
      list: () => deps.deadLetters.list(),
      get: (id) => deps.deadLetters.get(id),
      remove: (id) => deps.deadLetters.remove(id),
    };

    const run = runWorkflowLocally({ dataset: inNetwork, sourceKey: key }, { ...deps, deadLetters });
    await expect(run).rejects.toBeInstanceOf(MalformedInputError);
    const letters = await deps.deadLetters.list();
    expect(letters.map((l) => [l.input, l.error.Error])).toEqual([
      [expect.objectContaining({ key }), 'MalformedInputError'],
    ]);
  });

  it('stops after bronze for a dataset without a silver contract (HasSilver)', async () => {
    const events = parseDatasetConfig({ name: 'events', format: 'ndjson', recordName: 'events' });
    await writeFile(join(tmp.dir, 'events.ndjson'), '{"a":1}\n{"a":2}\n');
    const { deps, entered } = setup();
    const result = await runWorkflowLocally({ dataset: events, sourceKey: 'events.ndjson' }, deps);
    await settle();
    expect(entered()).toEqual([
      StateName.hasSource,
      StateName.dropped,
      StateName.ingest,
      StateName.ingestDone,
      StateName.hasSilver,
      StateName.succeeded,
    ]);
    expect(result.bronze.manifest.records).toEqual({ events: 2 });
    expect(result.silver).toBeUndefined();
    expect(result.reconciliation).toBeUndefined();
  });

  it('rebuilds from committed bronze: PlanRebuild, then the silver and reconcile states, never Download or Ingest', async () => {
    const config = (columns: { name: string; type: 'integer' | 'string' }[]) =>
      parseDatasetConfig({
        name: 'rebuilt',
        format: 'ndjson',
        recordName: 'rows',
        silver: { table: 'rows', columns, primaryKey: ['id'] },
      });
    const before = config([{ name: 'id', type: 'integer' }]);
    const after = config([
      { name: 'id', type: 'integer' },
      { name: 'label', type: 'string' },
    ]);
    await writeFile(join(tmp.dir, 'rows.ndjson'), '{"id":1,"label":"a"}\n{"id":2,"label":"b"}\n');
    const { deps, entered, events } = setup();
    const ran = await runWorkflowLocally({ dataset: before, sourceKey: 'rows.ndjson' }, deps);
    const rebuild = { sourceId: ran.bronze.manifest.sourceId };

    // The same config and contract: the current build is the one a rebuild would make.
    events.length = 0;
    const same = await runAnyWorkflow({ dataset: before, rebuild }, deps);
    await settle();
    expect(same.outcome).toBe('unchanged');
    expect(entered()).toEqual([
      StateName.hasSource,
      StateName.planRebuild,
      StateName.rebuildNeeded,
      StateName.unchanged,
    ]);

    // A new column: a new build, from the bronze the run committed (its manifest is not rewritten).
    events.length = 0;
    const rebuilt = committedRun(await runAnyWorkflow({ dataset: after, rebuild }, deps));
    await settle();
    expect(entered()).toEqual([
      StateName.hasSource,
      StateName.planRebuild,
      StateName.rebuildNeeded,
      ...silverStates(groupsOf(rebuilt)),
      ...reconcileStates(rebuilt),
      StateName.hasFanOut,
      StateName.succeeded,
    ]);
    expect(entered()).not.toContain(StateName.ingest);
    expect(rebuilt.bronze.manifest).toEqual(ran.bronze.manifest);
    expect(rebuilt.rebuild?.previousBuild).not.toBe(rebuilt.rebuild?.build);
    expect(rebuilt.reconciliation?.status).toBe('passed');
    expect(rebuilt.commit?.record.silverManifestKey).toBe(rebuilt.silver?.manifestKey);
    expect(rebuilt.silver?.manifest.tables.rows?.rowsWritten).toBe(2);
  });

  it('refuses a definition with a task it has no local handler for, rather than call AWS', async () => {
    const { deps } = setup();
    const withNotify: WorkflowDefinition = {
      ...definition,
      States: {
        ...definition.States,
        Notify: {
          Type: 'Task',
          Resource: 'arn:aws:lambda:us-east-1:123456789012:function:Notify',
          End: true,
        },
      },
    };
    await expect(
      runWorkflowLocally({ dataset: inNetwork, sourceKey: SAMPLE }, { ...deps, definition: withNotify }),
    ).rejects.toThrow(WorkflowFailedError);
  });

  it('downloads an HTTP source (Download, Landed) and runs it through reconciliation', async () => {
    const FEE_FOR_SERVICE = 'in-network-rates-fee-for-service-single-plan-sample.json';
    const body = await readFile(join(EXAMPLES, FEE_FOR_SERVICE));
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { deps, entered, files } = setup();
      const url = `http://127.0.0.1:${port}/${FEE_FOR_SERVICE}`;
      const result = await runWorkflowLocally(
        { dataset: inNetwork, source: { url } },
        { ...deps, downloadFetchOptions: { allowLoopback: true, allowInsecureHttp: true } },
      );
      await settle();
      expect(entered()).toEqual([
        StateName.hasSource,
        StateName.download,
        StateName.downloadDone,
        StateName.landed,
        StateName.ingest,
        StateName.ingestDone,
        StateName.hasSilver,
        ...silverStates(groupsOf(result)),
        ...reconcileStates(result),
        StateName.hasFanOut,
        StateName.succeeded,
      ]);
      expect(result.bronze.manifest.source.uri).toMatch(
        new RegExp(`tic-in-network/[0-9a-f]{16}/${FEE_FOR_SERVICE}$`),
      );
      expect(result.bronze.manifest.source.url).toBe(url);
      expect(await readFile(result.bronze.manifest.source.uri)).toEqual(body);
      expect(result.reconciliation?.status).toBe('passed');
      expect(await files.head(reconciliationKey('tic-in-network', result.bronze.runId))).toBeDefined();
      expect(await deps.deadLetters.list()).toEqual([]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('loops Download through DownloadDone? while each invocation runs out of budget, then ingests the whole file', async () => {
    const FEE_FOR_SERVICE = 'in-network-rates-fee-for-service-single-plan-sample.json';
    const body = await readFile(join(EXAMPLES, FEE_FOR_SERVICE));
    const server = await startFlakyServer();
    try {
      server.route(`/${FEE_FOR_SERVICE}`, { content: { body } });
      const { deps, entered } = setup();
      const partBytes = Math.ceil(body.length / 4);
      const result = await runWorkflowLocally(
        { dataset: inNetwork, source: { url: server.url(`/${FEE_FOR_SERVICE}`) } },
        {
          ...deps,
          downloadFetchOptions: { allowLoopback: true, allowInsecureHttp: true },
          // Every invocation (download and ingest slice) stops at its first chance, as on a busy Lambda.
          sliceBudget: () => ({ shouldStop: () => true }),
          downloadPartBytes: partBytes,
        },
      );
      await settle();
      const states = entered();
      const downloads = states.filter((s) => s === StateName.download).length;
      expect(downloads).toBe(4);
      expect(states.filter((s) => s === StateName.downloadDone).length).toBe(downloads);
      expect(states.indexOf(StateName.landed)).toBeGreaterThan(states.lastIndexOf(StateName.download));
      const requests = server.requestsTo(`/${FEE_FOR_SERVICE}`);
      expect(requests.map((r) => r.headers.range)).toEqual([
        undefined,
        `bytes=${partBytes}-`,
        `bytes=${2 * partBytes}-`,
        `bytes=${3 * partBytes}-`,
      ]);
      expect(await readFile(result.bronze.manifest.source.uri)).toEqual(body);
      expect(result.reconciliation?.status).toBe('passed');
    } finally {
      await server.close();
    }
  });

  it('dead-letters a download that fails for good, and redrives it (fetched again) once the source is fixed', async () => {
    const NAME = 'in-network-rates-bundle-single-plan-sample.json';
    const body = await readFile(join(EXAMPLES, NAME));
    let available = false;
    const server = createServer((_req, res) => {
      if (!available) {
        res.writeHead(404).end('not yet');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const { deps, lakeDir } = setup();
      const fetchOptions = { allowLoopback: true, allowInsecureHttp: true };
      const url = `http://127.0.0.1:${port}/${NAME}`;
      await expect(
        runWorkflowLocally(
          { dataset: inNetwork, source: { url } },
          { ...deps, downloadFetchOptions: fetchOptions },
        ),
      ).rejects.toThrow(/404/);
      await settle();
      const [letter, ...others] = await deps.deadLetters.list();
      expect(others).toEqual([]);
      expect(letter!.input).toEqual({ source: { url, dataset: 'tic-in-network' } });

      available = true;
      const result = committedRun(
        await redriveLocally(letter!, deps.deadLetters, {
          lake: lakeDir,
          landing: join(tmp.dir, 'redrive-landing'),
          fetchOptions,
        }),
      );
      expect(result.reconciliation?.status).toBe('passed');
      expect(
        result.bronze.manifest.source.uri.startsWith(join(tmp.dir, 'redrive-landing', '_downloads')),
      ).toBe(true);
      expect(await readFile(result.bronze.manifest.source.uri)).toEqual(body);
      expect(await deps.deadLetters.list()).toEqual([]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
