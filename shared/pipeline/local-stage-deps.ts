import type { DownloadDeps } from '../../functions/download/handler.ts';
import type { FanOutDeps } from '../../functions/fan-out/handler.ts';
import type { IngestDeps } from '../../functions/ingest/handler.ts';
import type { ReconcileDeps, ReconcileResults } from '../../functions/reconcile/handler.ts';
import type { SilverDeps } from '../../functions/silver/handler.ts';
import { openParquetInspector } from '../adapters/duckdb/parquet-inspector.ts';
import { createPartialParquetTableWriter } from '../adapters/duckdb/parquet-table-writer.ts';
import { localObservability } from '../adapters/local/local-observability.ts';
import type { UsageMeter } from '../adapters/usage-meter.ts';
import type { LakeStageConfig } from '../config/runtime-config.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { builtInDatasets } from '../contracts/datasets/index.ts';
import type { LeaseProcess } from '../lake/source-lease.ts';
import type { Clock } from '../ports/clock.ts';
import type { ObjectStore, UploadingObjectStore } from '../ports/object-store.ts';
import type { SecretStore } from '../ports/secret-store.ts';
import type { TablePartialsMerger } from '../ports/table-writer.ts';
import type { IngestProgress, IngestSliceResult, SliceBudget } from '../stages/bronze/ingest-to-bronze.ts';
import type { DownloadResult, FetchOptions, RetryEvent } from '../stages/download/download.ts';
import type { FanOutPlan } from '../stages/fan-out/plan-fan-out.ts';
import type { ReconcilePlanOptions } from '../stages/reconcile/reconcile-plan.ts';
import type { BuildSilverResult } from '../stages/silver/build-silver.ts';
import type { MergeSilverStateResult } from '../stages/silver/merge-state.ts';
import type { RebuildPlan } from '../stages/silver/plan-rebuild.ts';
import { lakeLocationOf } from '../stages/silver/silver-worker-protocol.ts';
import { Placeholder } from '../workflow/definition.ts';
import type { Source } from '../workflow/source.ts';
import type { LocalFunctionName } from './local-functions.ts';

/** A local source's secret: `sources/<name>`, read from `SLUICE_SECRET_SOURCES_<NAME>`. */
export const LOCAL_SOURCE_SECRET_PREFIX = 'sources/';

/** A key whose URI, less the key, is a store's location (`/abs/dir`, `s3://bucket/prefix`). */
const LOCATION_PROBE_KEY = 'sluice-location-probe';

/** What a local invocation tells the run: its progress and its full results (events of the run). */
export interface LocalStageHooks {
  readonly ingestProgress?: (progress: IngestProgress) => void;
  readonly ingestResult: (result: IngestSliceResult) => void;
  readonly silverPart: (records: number) => void;
  readonly silverResult: (result: BuildSilverResult) => void;
  readonly rebuildPlan: (plan: RebuildPlan) => void;
  readonly reconcileResult: (result: ReconcileResults) => void;
  readonly stateCaughtUp: (state: MergeSilverStateResult) => void;
  readonly fanOutPlan: (plan: FanOutPlan) => void;
  readonly downloadRetry?: (event: RetryEvent) => void;
  readonly downloaded: (result: DownloadResult) => void;
}

/** The run a local invocation belongs to: its stores, dataset and settings. */
export interface LocalStageEnv {
  readonly dataset: DatasetConfig;
  /** Where sources land and are read from (the landing "bucket"). */
  readonly source: UploadingObjectStore;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly secrets: SecretStore;
  readonly secretIdOf?: (source: Source) => string;
  readonly fetchOptions?: FetchOptions;
  /** Each ingest invocation's budget (undefined: none, one slice); absent: the Lambda context's time. */
  readonly sliceBudget?: () => SliceBudget | undefined;
  /** Uncompressed input per ingest slice at most, as deployed (`ingest.sliceMaxMb`). @default none */
  readonly ingestSliceMaxBytes?: number;
  /** Who holds the source's lease: the CLI's run, or the execution. */
  readonly leaseHolder: string;
  /** The process the lease names: the run's, whichever process writes a renewal. */
  readonly leaseProcess: LeaseProcess;
  readonly quarantineRateThreshold?: number;
  readonly fanOutPageSize?: number;
  /** Silver groups the plan makes at least (and the Map runs at once). */
  readonly silverGroups: number;
  /** Bronze bytes per silver group, as deployed (`silver.groupTargetMb`). @default no limit: `silverGroups` */
  readonly silverGroupTargetBytes?: number;
  /** Build each silver group in a worker thread (in-process runs with several groups at once). */
  readonly silverGroupWorkers: boolean;
  readonly mergeTables?: TablePartialsMerger;
  /** Stops silver groups of a failed run at their next part. */
  readonly signal?: AbortSignal;
  /** `Download`'s bytes per part, instead of the size derived from the source's (tests). */
  readonly downloadPartBytes?: number;
  /** Uncompressed bronze per silver merge bucket (tests force several). @default as deployed */
  readonly silverBucketTargetBytes?: number;
  /** How reconciliation is split (tests). @default by size, at least `silverGroups` bronze groups */
  readonly reconcilePlan?: ReconcilePlanOptions;
  /** The stores each function's deps get instead of the run's (tests: to see what each one touches). */
  readonly functionStores?: FunctionStores;
}

/**
 * The lake and landing store the function `name` works with, given the run's: a seam for tests that
 * record what each function touches (tests/infra/iam-coverage.test.ts checks it against its IAM role).
 * A silver group in a worker thread opens the lake from its location instead, past this seam.
 */
export interface FunctionStores {
  lake(name: LocalFunctionName, lake: ObjectStore): ObjectStore;
  landing(name: LocalFunctionName, landing: UploadingObjectStore): UploadingObjectStore;
}

/** One local invocation's metering: what it counts its S3 requests with, and what the run counted so far. */
export interface LocalInvocationMetering {
  readonly meter: UsageMeter;
  /** States the execution entered so far, retries included (for Reconcile's cost). */
  readonly stateTransitionsSoFar?: () => number;
}

/** A store's location: its URI without the key (`/abs/dir`, `s3://bucket/prefix`). */
export function storeLocation(store: ObjectStore): string {
  const uri = store.uri(LOCATION_PROBE_KEY);
  return uri.slice(0, uri.length - LOCATION_PROBE_KEY.length).replace(/[/\\]+$/, '') || uri;
}

/**
 * What the stage function `name` works with in a local invocation: the handler's deps type, filled with
 * the run's stores and the hooks that feed the run's progress and summary. A Lambda invocation has its
 * own scratch folder (`workDir`) and its own logs and metrics (their dimensions would pile up
 * otherwise, as nothing publishes them), so each invocation gets fresh ones.
 */
export function localStageDeps(
  name: LocalFunctionName,
  env: LocalStageEnv,
  workDir: string,
  hooks: LocalStageHooks,
  metering?: LocalInvocationMetering,
) {
  const observability = localObservability();
  const ownLake = env.functionStores?.lake(name, env.lake) ?? env.lake;
  const ownSource = env.functionStores?.landing(name, env.source) ?? env.source;
  // The invocation's S3 requests, counted as its stores are used (the run records them, as the stage
  // handler does on Lambda). Download's landing uploads in parts, which the counter does not wrap.
  const lake = metering ? metering.meter.count(ownLake) : ownLake;
  const source = metering ? metering.meter.count(ownSource) : ownSource;
  const handlerConfig = { serviceName: 'sluice-local', logLevel: 'ERROR' as const };
  // Every built-in dataset is "deployed" (a table of contents' listed files are another one), and so
  // is the run's own.
  const datasets = [...new Set([env.dataset.name, ...Object.keys(builtInDatasets)])];
  const datasetConfigs = [env.dataset];
  const landingBucket = storeLocation(env.source);
  const lakeStageConfig: LakeStageConfig = {
    ...handlerConfig,
    lakeBucket: storeLocation(env.lake),
    datasets,
    // Locally a group per core (as the Map runs as many at once), however small the groups, unless the
    // run sizes them as a deployment does.
    silverGroupTargetMb: (env.silverGroupTargetBytes ?? Number.POSITIVE_INFINITY) / (1024 * 1024),
    ...(env.silverBucketTargetBytes !== undefined && {
      silverBucketTargetMb: env.silverBucketTargetBytes / (1024 * 1024),
    }),
    quarantineRateThreshold: env.quarantineRateThreshold,
  };
  const lakeStage = { config: lakeStageConfig, lake, clock: env.clock, observability };
  switch (name) {
    case Placeholder.downloadFunctionArn:
      return {
        config: { ...handlerConfig, landingBucket, datasets, sourceSecretPrefix: LOCAL_SOURCE_SECRET_PREFIX },
        landing: ownSource,
        secrets: env.secrets,
        clock: env.clock,
        observability,
        fetchOptions: env.fetchOptions,
        datasetConfigs,
        secretIdOf: env.secretIdOf,
        onRetry: hooks.downloadRetry,
        onResult: hooks.downloaded,
        // As on Lambda: an invocation that runs out of budget checkpoints, and DownloadDone? loops.
        budget: env.sliceBudget,
        partBytes: env.downloadPartBytes,
        workDir,
      } satisfies DownloadDeps;
    case Placeholder.ingestFunctionArn:
      return {
        config: {
          ...handlerConfig,
          landingBucket,
          lakeBucket: lakeStageConfig.lakeBucket,
          datasets,
          ...(env.ingestSliceMaxBytes !== undefined && {
            sliceMaxMb: env.ingestSliceMaxBytes / (1024 * 1024),
          }),
        },
        source,
        lake,
        clock: env.clock,
        observability,
        sliceBudget: env.sliceBudget,
        datasetConfigs,
        leaseHolder: env.leaseHolder,
        localLease: env.leaseProcess,
        onProgress: hooks.ingestProgress ?? (() => {}),
        onResult: hooks.ingestResult,
      } satisfies IngestDeps;
    case Placeholder.silverFunctionArn:
      return {
        ...lakeStage,
        createTableWriter: createPartialParquetTableWriter,
        workDir,
        datasetConfigs,
        minGroups: env.silverGroups,
        // The worker opens the lake itself, from its location (the counted store has none).
        groupWorker: env.silverGroupWorkers
          ? {
              datasetConfig: env.dataset,
              lakeLocation: lakeLocationOf(env.lake),
              onRequests: metering && ((requests) => metering.meter.add(requests)),
            }
          : undefined,
        onPart: hooks.silverPart,
        signal: env.signal,
        mergeTables: env.mergeTables,
        onResult: hooks.silverResult,
        leaseHolder: env.leaseHolder,
        localLease: env.leaseProcess,
        onRebuildPlan: hooks.rebuildPlan,
      } satisfies SilverDeps;
    case Placeholder.reconcileFunctionArn:
      return {
        ...lakeStage,
        openInspector: openParquetInspector,
        workDir,
        datasetConfigs,
        leaseHolder: env.leaseHolder,
        localLease: env.leaseProcess,
        onResult: hooks.reconcileResult,
        onStateCaughtUp: hooks.stateCaughtUp,
        reconcilePlan: { minGroups: env.silverGroups, ...env.reconcilePlan },
        parallelism: env.silverGroups,
        // The last step prices the run: its own usage so far, and the records in the lake.
        ...(metering && {
          usage: { meter: metering.meter, records: ownLake },
          stateTransitionsSoFar: metering.stateTransitionsSoFar,
        }),
      } satisfies ReconcileDeps;
    case Placeholder.fanOutFunctionArn:
      return {
        ...lakeStage,
        urlSafety: env.fetchOptions,
        pageSize: env.fanOutPageSize,
        onResult: hooks.fanOutPlan,
      } satisfies FanOutDeps;
  }
}
