import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import {
  createObservability,
  type LambdaContext,
  type Observability,
} from '../../shared/adapters/aws/observability.ts';
import { createS3Client, S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import {
  onFirstInvocation,
  parseStageEvent,
  type StageHandler,
  stageHandler,
} from '../../shared/adapters/aws/stage-handler.ts';
import { StepFunctionsLiveness } from '../../shared/adapters/aws/step-functions-liveness.ts';
import { UsageMeter } from '../../shared/adapters/usage-meter.ts';
import { type IngestConfig, loadIngestConfig } from '../../shared/config/runtime-config.ts';
import type { DatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { datasetNamed } from '../../shared/contracts/datasets/index.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { InvocationMetering } from '../../shared/lake/run-usage.ts';
import type { LeaseProcess } from '../../shared/lake/source-lease.ts';
import { type Clock, systemClock } from '../../shared/ports/clock.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { RunLiveness } from '../../shared/ports/run-liveness.ts';
import {
  type IngestProgress,
  type IngestSliceResult,
  ingestSlice,
  type SliceBudget,
} from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { lambdaSliceBudget, withSliceMaxBytes } from '../../shared/stages/bronze/slice-budget.ts';
import { ExecutionInput } from '../../shared/workflow/execution.ts';
import { Dimension, MetricName } from '../../shared/workflow/metrics.ts';
import { type IngestOutput, ingestOutput } from '../../shared/workflow/stage-io.ts';

/**
 * The `Ingest` state of the workflow: one landed object -> bronze parts and manifest.
 *
 * Event (the execution input plus the execution id the state machine adds):
 *   `{ bucket, key, dataset, executionId? }`
 * Result, a reference to the work and never the data (Step Functions passes at most 256 KiB):
 *   `{ runId, dataset, manifestKey, records: { <recordName>: count } }`
 * Errors keep their sluice names (`ConfigError`, `MalformedInputError`, `RecordTooLargeError`, ...), which
 * the state machine's Retry/Catch match; network failures become `TransientError`, which it retries.
 */

/** The event of the ingest handler. */
export const IngestEvent = ExecutionInput.extend({
  /** The Step Functions execution id: the correlation id of every log line, and the lease's holder. */
  executionId: z.string().min(1).optional(),
  /** A download's URL (without credentials), '' for a dropped file: recorded with the run. */
  sourceUrl: z.string().optional(),
});
export type IngestEvent = z.infer<typeof IngestEvent>;

/** What the ingest handler returns to the state machine (shared/workflow/stage-io.ts). */
export type IngestResult = IngestOutput;

/** What the ingest handler works with; `createDeps` binds it to AWS, tests bind it to anything. */
export interface IngestDeps {
  readonly config: IngestConfig;
  readonly source: ObjectStore;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly observability: Observability;
  /** Each invocation's usage, recorded for the run's cost (its S3 requests counted through the stores). */
  readonly usage?: InvocationMetering;
  /** Least time between two progress log lines. @default 30 s */
  readonly progressIntervalMs?: number;
  /**
   * Each invocation's slice budget; by default the Lambda's remaining time (see lambdaSliceBudget). A
   * function that returns undefined means no deadline: one slice, read by native zlib (local runs).
   */
  readonly sliceBudget?: () => SliceBudget | undefined;
  /** Whether another execution holding the source's lease has ended (its lease then is free at once). */
  readonly runLiveness?: RunLiveness;
  /** Datasets beyond the built-in ones (a local run of a dataset config file), by name. */
  readonly datasetConfigs?: readonly DatasetConfig[];
  /** Who holds the source's lease, when the caller took it before the execution (`sluice run`). */
  readonly leaseHolder?: string;
  /** The lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: LeaseProcess;
  /** Each progress report of the slice (a local run's progress bar); by default a log line now and then. */
  readonly onProgress?: (progress: IngestProgress) => void;
  /** The slice's full result (a local run's summary); the state machine gets its reference only. */
  readonly onResult?: (result: IngestSliceResult) => void;
}

/** The AWS adapters, created once per cold start. */
export function createDeps(config: IngestConfig): IngestDeps {
  const client = createS3Client(config.region ? { region: config.region } : {});
  const observability = createObservability(config);
  const lake = new S3ObjectStore({ client, bucket: config.lakeBucket });
  const meter = new UsageMeter();
  return {
    config,
    source: meter.count(new S3ObjectStore({ client, bucket: config.landingBucket })),
    lake: meter.count(lake),
    clock: systemClock,
    observability,
    usage: { meter, records: lake },
    runLiveness: new StepFunctionsLiveness(
      new SFNClient(config.region ? { region: config.region } : {}),
      (holder, error) =>
        observability.logger.warn('could not tell whether the lease holder still runs', { holder, error }),
    ),
  };
}

/** Ingest one landed object into bronze: one slice of it, as much as this invocation's time allows. */
export async function ingest(
  event: unknown,
  deps: IngestDeps,
  context?: LambdaContext,
): Promise<IngestResult> {
  const { logger, metrics } = deps.observability;
  const input = parseStageEvent(
    IngestEvent,
    event,
    'ingest',
    '{ "bucket": string, "key": string, "dataset": string }',
  );
  if (input.bucket !== deps.config.landingBucket) {
    throw new ConfigError(
      `the event names bucket "${input.bucket}", but this deployment ingests from "${deps.config.landingBucket}"`,
    );
  }
  const dataset = deployedDataset(input.dataset, input.key, deps.config.datasets, deps.datasetConfigs);
  logger.appendKeys({ dataset: dataset.name, sourceKey: input.key });
  metrics.addDimension(Dimension.dataset, dataset.name);
  logger.info('ingest started');

  const startedAt = deps.clock.now().getTime();
  try {
    const result = await ingestSlice(
      {
        dataset,
        sourceKey: input.key,
        sourceUrl: input.sourceUrl || undefined,
        // One execution at a time per source; another finds it held (SourceBusyError, retried, then a
        // clean `DuplicateRun` end: see the workflow definition).
        leaseHolder: deps.leaseHolder ?? input.executionId ?? context?.awsRequestId,
      },
      {
        source: deps.source,
        lake: deps.lake,
        clock: deps.clock,
        onProgress: deps.onProgress ?? progressLogger(deps),
        budget: sliceBudgetOf(deps, context),
        runLiveness: deps.runLiveness,
        localLease: deps.localLease,
      },
    );
    metrics.addMetric(
      MetricName.ingestSliceDuration,
      MetricUnit.Milliseconds,
      deps.clock.now().getTime() - startedAt,
    );
    deps.onResult?.(result);
    if (result.status === 'sliced') {
      const { progress } = result;
      const percent = progress.storedBytesTotal
        ? (100 * progress.storedBytesRead) / progress.storedBytesTotal
        : 100;
      metrics.addMetric(MetricName.ingestProgressPercent, MetricUnit.Percent, percent);
      logger.info('ingest slice checkpointed', {
        runId: result.runId,
        slices: result.slices,
        checkpointKey: result.checkpointKey,
        percent,
        ...progress,
      });
      return ingestOutput(result, dataset);
    }
    if (result.status === 'unchanged') {
      // A success for freshness: the source was checked and is current.
      metrics.addMetric(MetricName.ingestSucceeded, MetricUnit.Count, 1);
      metrics.addMetric(MetricName.ingestUnchanged, MetricUnit.Count, 1);
      logger.info('source unchanged', { runId: result.runId, version: result.version, read: result.read });
      return ingestOutput(result, dataset);
    }
    const { manifest } = result;
    metrics.addMetric(MetricName.ingestSucceeded, MetricUnit.Count, 1);
    metrics.addMetric(MetricName.sourceBytes, MetricUnit.Bytes, manifest.source.size);
    metrics.addMetric(MetricName.uncompressedBytes, MetricUnit.Bytes, manifest.source.uncompressedBytes);
    metrics.addMetric(
      MetricName.bronzeBytes,
      MetricUnit.Bytes,
      manifest.parts.reduce((sum, part) => sum + part.bytes, 0),
    );
    metrics.addMetric(MetricName.ingestProgressPercent, MetricUnit.Percent, 100);
    metrics.addMetric(MetricName.ingestDuration, MetricUnit.Milliseconds, manifest.timings.durationMs);
    for (const [recordName, count] of Object.entries(manifest.records)) {
      // A metric of its own, because its dimensions (dataset and record stream) differ from the rest.
      metrics
        .singleMetric()
        .addDimensions({ [Dimension.dataset]: dataset.name, [Dimension.recordName]: recordName })
        .addMetric(MetricName.recordsIngested, MetricUnit.Count, count);
    }
    logger.info('ingest committed', {
      runId: result.runId,
      manifestKey: result.manifestKey,
      records: manifest.records,
      parts: manifest.parts.length,
      sourceBytes: manifest.source.size,
      slices: result.slices,
    });
    return ingestOutput(result, dataset);
  } catch (error) {
    metrics.addMetric(MetricName.ingestFailed, MetricUnit.Count, 1);
    throw error;
  }
}

/**
 * The invocation's slice budget: the deps' own, else the Lambda's remaining time (outside Lambda, tests:
 * no deadline, one slice); either way bounded by the config's `sliceMaxMb`, if set.
 */
function sliceBudgetOf(deps: IngestDeps, context: LambdaContext | undefined): SliceBudget | undefined {
  const budget = deps.sliceBudget
    ? deps.sliceBudget()
    : context
      ? lambdaSliceBudget(deps.clock, context)
      : undefined;
  const { sliceMaxMb } = deps.config;
  return sliceMaxMb === undefined ? budget : withSliceMaxBytes(budget, sliceMaxMb * 1024 * 1024);
}

/** The handler for one set of dependencies. */
export function createHandler(deps: IngestDeps): StageHandler<IngestResult> {
  return stageHandler(deps, ingest);
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadIngestConfig())));

/** The dataset's config, if this deployment ingests it; a ConfigError (permanent) otherwise. */
function deployedDataset(
  name: string,
  key: string,
  deployed: readonly string[],
  configured?: readonly DatasetConfig[],
) {
  if (!deployed.includes(name)) {
    const where = name === '' ? `landing key "${key}" names no dataset` : `dataset "${name}" is not deployed`;
    throw new ConfigError(
      `${where}. Land files as <dataset>/<file> with one of: ${deployed.join(', ')}; ` +
        'or add the dataset to the deployment config (sluice.config.json) and redeploy.',
    );
  }
  return datasetNamed(name, configured);
}

/** Logs progress at most once per interval: a 15-minute ingest should show it is alive. */
function progressLogger(deps: IngestDeps): (progress: IngestProgress) => void {
  const interval = deps.progressIntervalMs ?? 30_000;
  let last = deps.clock.now().getTime();
  return (progress) => {
    const now = deps.clock.now().getTime();
    if (now - last < interval) return;
    last = now;
    deps.observability.logger.info('ingest progress', { ...progress });
  };
}
