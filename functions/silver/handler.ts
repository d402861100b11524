import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { createLakeStageDeps, type LakeStageDeps } from '../../shared/adapters/aws/lake-stage-deps.ts';
import type { LambdaContext } from '../../shared/adapters/aws/observability.ts';
import { onFirstInvocation, parseStageEvent, stageHandler } from '../../shared/adapters/aws/stage-handler.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import {
  LAMBDA_WORK_DIR,
  type LakeStageConfig,
  loadLakeStageConfig,
} from '../../shared/config/runtime-config.ts';
import type { DatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { datasetNamed } from '../../shared/contracts/datasets/index.ts';
import type { LeaseProcess } from '../../shared/lake/source-lease.ts';
import type { TablePartialsMerger, TableWriterFactory } from '../../shared/ports/table-writer.ts';
import { renewRunLease, renewRunLeaseFromMapItem } from '../../shared/stages/run-lease.ts';
import { type BuildSilverResult, buildSilver } from '../../shared/stages/silver/build-silver.ts';
import { planRebuild, type RebuildPlan } from '../../shared/stages/silver/plan-rebuild.ts';
import { mergeSilverBucket } from '../../shared/stages/silver/silver-bucket.ts';
import {
  buildSilverGroupToLake,
  mergeSilver,
  planSilver,
  type SilverGroupWorker,
} from '../../shared/stages/silver/silver-stages.ts';
import { Dimension, MetricName } from '../../shared/workflow/metrics.ts';
import {
  quarantinedRecords,
  type RebuildOutput,
  rebuildOutput,
  requireSilverContract,
  type SilverBucketOutput,
  type SilverGroupOutput,
  type SilverOutput,
  type SilverPlanOutput,
  SilverStageEvent,
  silverOutput,
  silverPlanOutput,
} from '../../shared/workflow/stage-io.ts';

/**
 * The silver stage of the workflow, one function for its five states (by the event's `op`):
 *
 *   PlanRebuild   `{ op: "rebuild", rebuild: { dataset, source, force? } }` (a rebuild execution) -> the
 *                 source's committed bronze run `{ status: "rebuild" | "unchanged", dataset, manifestKey,
 *                 build, currentBuild, ... }`, its lease taken (see shared/stages/silver/plan-rebuild.ts)
 *   PlanSilver    `{ op: "plan", dataset, bronzeManifestKey }` -> `{ groups: [{ group }], groupCount,
 *                 buckets: [{ bucket }], bucketCount }`
 *   SilverGroup   `{ op: "group", ..., group, groupCount, bucketCount }` (a `SilverGroups` Map item) -> a
 *                 small summary; the group's partial Parquet files, split by merge bucket, and its stats go
 *                 to the lake under silver/<dataset>/_work/
 *   SilverBucket  `{ op: "bucket", ..., bucket, groupCount, bucketCount }` (a `SilverBuckets` Map item) ->
 *                 a small summary; the bucket's file of each table published, its result in _work/
 *   Silver        `{ op: "merge", ..., groupCount, bucketCount }` -> `{ silverManifestKey, tables:
 *                 { <table>: rows }, quarantined }`, the build committed and its work prefix removed
 *
 * An event without `op` builds everything in one invocation (a small source). Errors keep their sluice
 * names (`ContractViolationError`, `SchemaDriftError`, `ConfigError`, ...); network failures become
 * `TransientError`, which the state machine retries.
 */

const MiB = 1024 * 1024;

/** What the silver handler works with; `createDeps` binds it to AWS, tests bind it to anything. */
export interface SilverDeps extends LakeStageDeps {
  /** Writers of partial files, one per bronze part (a group's, or an inline build's before its merge). */
  readonly createTableWriter: TableWriterFactory;
  /** Scratch space for Parquet files and spill. */
  readonly workDir: string;
  /** Datasets beyond the built-in ones (a local run of a dataset config file), by name. */
  readonly datasetConfigs?: readonly DatasetConfig[];
  /** PlanSilver: at least this many groups (a local run: one per core). @default 1 */
  readonly minGroups?: number;
  /** SilverGroup: build the group in a worker thread (a local run, whose Map items share a process). */
  readonly groupWorker?: SilverGroupWorker;
  /** SilverGroup: after each bronze part (a local run's progress), and when to give up (a failed run). */
  readonly onPart?: (records: number) => void;
  readonly signal?: AbortSignal;
  /** Silver: merges the partial files into the tables. @default DuckDB's `mergeParquetPartials` */
  readonly mergeTables?: TablePartialsMerger;
  /** Silver: the build's full result (a local run's summary); the state machine gets a reference. */
  readonly onResult?: (result: BuildSilverResult) => void;
  /** PlanRebuild: who holds the source's lease, when the caller took it (`sluice rebuild`). */
  readonly leaseHolder?: string;
  /** PlanRebuild: the lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: LeaseProcess;
  /** PlanRebuild: the plan in full (a local run's summary). */
  readonly onRebuildPlan?: (plan: RebuildPlan) => void;
}

/** The AWS adapters, created once per cold start. */
export function createDeps(config: LakeStageConfig): SilverDeps {
  return {
    ...createLakeStageDeps(config),
    createTableWriter: createPartialParquetTableWriter,
    workDir: LAMBDA_WORK_DIR,
  };
}

/** What the silver function returns, by `op`. */
export type SilverResult =
  | SilverOutput
  | SilverPlanOutput
  | SilverGroupOutput
  | SilverBucketOutput
  | RebuildOutput;

/** One step of a silver build (or all of it) for one committed bronze run. */
export async function silver(event: unknown, deps: SilverDeps): Promise<SilverResult> {
  const { logger, metrics } = deps.observability;
  const input = parseStageEvent(
    SilverStageEvent,
    event,
    'silver',
    '{ "op"?: "plan" | "group" | "bucket" | "merge", "dataset": string, "bronzeManifestKey": string, ' +
      '"group"?: number, "bucket"?: number, "groupCount"?: number, "bucketCount"?: number } or ' +
      '{ "op": "rebuild", "rebuild": { "dataset": string, "source": string, "force"?: boolean } }',
  );
  if (input.op === 'rebuild') {
    const { dataset, source, force } = input.rebuild;
    const contract = requireSilverContract(dataset, deps.config.datasets, deps.datasetConfigs);
    logger.appendKeys({ dataset, sourceId: source, op: input.op });
    metrics.addDimension(Dimension.dataset, dataset);
    const config = datasetNamed(dataset, deps.datasetConfigs);
    const plan = await planRebuild(
      {
        dataset: config,
        sourceId: source,
        force,
        leaseHolder: deps.leaseHolder ?? input.executionId,
      },
      { lake: deps.lake, clock: deps.clock, contract, localLease: deps.localLease },
    );
    deps.onRebuildPlan?.(plan);
    const output = rebuildOutput(plan, config);
    logger.info('rebuild planned', { ...output });
    return output;
  }
  const contract = requireSilverContract(input.dataset, deps.config.datasets, deps.datasetConfigs);
  logger.appendKeys({ dataset: input.dataset, bronzeManifestKey: input.bronzeManifestKey, op: input.op });
  metrics.addDimension(Dimension.dataset, input.dataset);
  const { bronzeManifestKey } = input;

  // The run's lease, renewed before the build's first step and its last, and from each Map item once due
  // (nothing else renews it on AWS).
  const lease = { bronzeManifestKey, holder: deps.leaseHolder ?? input.executionId };
  const leaseDeps = { lake: deps.lake, clock: deps.clock, localLease: deps.localLease };
  if (input.op === 'plan') {
    await renewRunLease(lease, leaseDeps);
    const plan = await planSilver(
      { bronzeManifestKey },
      {
        lake: deps.lake,
        clock: deps.clock,
        contract,
        targetGroupBytes: deps.config.silverGroupTargetMb && deps.config.silverGroupTargetMb * MiB,
        targetBucketBytes: deps.config.silverBucketTargetMb && deps.config.silverBucketTargetMb * MiB,
        minGroups: deps.minGroups,
      },
    );
    logger.info('silver planned', {
      groupCount: plan.groupCount,
      bucketCount: plan.bucketCount,
      partsTotal: plan.partsTotal,
    });
    return silverPlanOutput(plan.groupCount, plan.bucketCount);
  }
  if (input.op === 'group') {
    logger.appendKeys({ group: input.group, groupCount: input.groupCount });
    await renewRunLeaseFromMapItem(lease, leaseDeps);
    const summary = await buildSilverGroupToLake(
      {
        bronzeManifestKey,
        group: input.group,
        groupCount: input.groupCount,
        bucketCount: input.bucketCount,
      },
      {
        lake: deps.lake,
        contract,
        createTableWriter: deps.createTableWriter,
        workDir: deps.workDir,
        worker: deps.groupWorker,
        onPart: deps.onPart,
        signal: deps.signal,
      },
    );
    logger.info('silver group built', { ...summary });
    return summary;
  }
  if (input.op === 'bucket') {
    logger.appendKeys({ bucket: input.bucket, bucketCount: input.bucketCount });
    await renewRunLeaseFromMapItem(lease, leaseDeps);
    const summary = await mergeSilverBucket(
      {
        bronzeManifestKey,
        bucket: input.bucket,
        groupCount: input.groupCount,
        bucketCount: input.bucketCount,
      },
      { lake: deps.lake, contract, workDir: deps.workDir, mergeTables: deps.mergeTables },
    );
    logger.info('silver bucket merged', { ...summary });
    return summary;
  }

  logger.info('silver started');
  await renewRunLease(lease, leaseDeps);
  const result =
    input.op === 'merge'
      ? await mergeSilver(
          { bronzeManifestKey, groupCount: input.groupCount, bucketCount: input.bucketCount },
          { lake: deps.lake, clock: deps.clock, contract },
        )
      : await buildSilver(
          { bronzeManifestKey },
          {
            lake: deps.lake,
            clock: deps.clock,
            contract,
            createTableWriter: deps.createTableWriter,
            workDir: deps.workDir,
            mergeTables: deps.mergeTables,
          },
        );
  deps.onResult?.(result);
  const quarantined = quarantinedRecords(result);
  metrics.addMetric(MetricName.quarantinedRecords, MetricUnit.Count, quarantined);
  logger.info('silver committed', {
    manifestKey: result.manifestKey,
    quarantined,
    durationMs: result.manifest.timings.durationMs,
  });
  return silverOutput(result);
}

/** The handler for one set of dependencies. */
export function createHandler(deps: SilverDeps): SilverHandler {
  return stageHandler(deps, silver) as SilverHandler;
}

/** The silver handler, its result typed by the event's `op`. */
export interface SilverHandler {
  (event: { readonly op: 'plan' }, context?: LambdaContext): Promise<SilverPlanOutput>;
  (event: { readonly op: 'group' }, context?: LambdaContext): Promise<SilverGroupOutput>;
  (event: { readonly op: 'bucket' }, context?: LambdaContext): Promise<SilverBucketOutput>;
  (event: { readonly op: 'rebuild' }, context?: LambdaContext): Promise<RebuildOutput>;
  /** `op: "merge"`, or no `op`: a whole build. */
  (event: unknown, context?: LambdaContext): Promise<SilverOutput>;
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadLakeStageConfig('silver'))));
