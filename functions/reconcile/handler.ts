import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { createGlueClient, GlueSourceCatalog } from '../../shared/adapters/aws/glue-source-catalog.ts';
import { createLakeStageDeps, type LakeStageDeps } from '../../shared/adapters/aws/lake-stage-deps.ts';
import {
  onFirstInvocation,
  parseStageEvent,
  type StageHandler,
  stageHandler,
} from '../../shared/adapters/aws/stage-handler.ts';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import {
  LAMBDA_WORK_DIR,
  type LakeStageConfig,
  loadLakeStageConfig,
} from '../../shared/config/runtime-config.ts';
import { type DatasetConfig, hasMergedState } from '../../shared/contracts/dataset-config.ts';
import { datasetNamed } from '../../shared/contracts/datasets/index.ts';
import { QuarantineThresholdError, ReconciliationError } from '../../shared/errors.ts';
import { reconciliationReportKey } from '../../shared/lake/keys.ts';
import { priceRun } from '../../shared/lake/run-usage.ts';
import { readCurrentVersion } from '../../shared/lake/source-commits.ts';
import type { LeaseProcess } from '../../shared/lake/source-lease.ts';
import type { SourceCatalog } from '../../shared/ports/source-catalog.ts';
import type { TableInspector } from '../../shared/ports/table-inspector.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import { type CommitVersionResult, commitVersion } from '../../shared/stages/commit/commit-version.ts';
import {
  finishReconcile,
  planReconcile,
  type ReconcilePlanSummary,
  type ReconciliationReport,
  reconcile,
  reconcileItem,
  reconcileKeyBucket,
} from '../../shared/stages/reconcile/reconcile.ts';
import type { ReconcilePlanOptions } from '../../shared/stages/reconcile/reconcile-plan.ts';
import { renewRunLease, renewRunLeaseFromMapItem } from '../../shared/stages/run-lease.ts';
import {
  type MergeSilverStateResult,
  mergeCommittedVersions,
  stateHoldsBuild,
} from '../../shared/stages/silver/merge-state.ts';
import { Dimension, MetricName } from '../../shared/workflow/metrics.ts';
import { type RunCostReport, US_EAST_1_PRICE_LIST } from '../../shared/workflow/run-cost.ts';
import {
  type ReconcileOutput,
  ReconcileStageEvent,
  reconcileOutput,
  requireSilverContract,
} from '../../shared/workflow/stage-io.ts';

/**
 * The reconciliation states of the workflow: prove that a run's bronze and silver account for every
 * record, in steps that each re-read only their share (shared/stages/reconcile/reconcile.ts).
 *
 * Event: `{ op, dataset, bronzeManifestKey, executionId? }`, by `op`:
 * - `plan` (`PlanReconcile`): returns `{ items: [{ item }], buckets: [{ bucket }], … }`, the Maps' items;
 * - `item` with `item` (`ReconcileItem`) and `keys` with `bucket` (`ReconcileKeyBucket`): a small summary,
 *   their results go to the lake;
 * - `finish` (`Reconcile`), or no `op` (everything in this one invocation): the report, then the commit;
 * - `state` (`CatchUpState`, a run that found its source unchanged): the merged state of a snapshot, cdc
 *   or scd2 dataset caught up with every current version (`catchUpState`).
 * Result of `finish`: `{ status: 'passed', score, reportKey, version, replaced? }`; the run's version is then the
 * source's current one (committed after the report passed, never before). A mismatch writes the report and then fails with
 * `ReconciliationError`, which the state machine does not retry: the execution fails into the failure
 * queue, and the `ReconciliationFailed` metric raises its alarm. A run that quarantined more than
 * `QUARANTINE_RATE_THRESHOLD` of its records (or all of them) fails the same way, with
 * `QuarantineThresholdError` (its records are accounted for; the quarantine-rate alarm watches the rate).
 */

/** What the reconcile handler works with; `createDeps` binds it to AWS, tests bind it to anything. */
export interface ReconcileDeps extends LakeStageDeps {
  readonly openInspector: () => Promise<TableInspector>;
  /** Scratch space: Parquet files are downloaded here to be read. */
  readonly workDir: string;
  /** Told of each committed version (Glue partitions, so Athena reads committed files only). */
  readonly catalog?: SourceCatalog;
  /** Datasets beyond the built-in ones (a local run of a dataset config file), by name. */
  readonly datasetConfigs?: readonly DatasetConfig[];
  /** Who holds the source's lease, when the caller took it before the execution (`sluice run`). */
  readonly leaseHolder?: string;
  /** The lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: LeaseProcess;
  /** The stage's full results (a local run's summary); the state machine gets a reference. */
  readonly onResult?: (result: ReconcileResults) => void;
  /** What `CatchUpState` did to the merged state (a local run's summary). */
  readonly onStateCaughtUp?: (state: MergeSilverStateResult) => void;
  /** How reconciliation is split into items and key buckets. @default by size, as deployed */
  readonly reconcilePlan?: ReconcilePlanOptions;
  /** Items an all-in-one reconciliation (an event without `op`) checks at once. @default 1 */
  readonly parallelism?: number;
  /**
   * States the execution entered so far, retries included (a local run counts them). @default estimated
   * from the run's invocations, as on AWS
   */
  readonly stateTransitionsSoFar?: () => number;
}

/** What the reconcile stage produced, in full. */
export interface ReconcileResults {
  readonly report: ReconciliationReport;
  readonly commit: CommitVersionResult;
  /** A generic dataset with a snapshot, cdc or scd2 load: its state after the commit. */
  readonly state?: MergeSilverStateResult;
}

/** The AWS adapters, created once per cold start. */
export function createDeps(config: LakeStageConfig): ReconcileDeps {
  return {
    ...createLakeStageDeps(config),
    openInspector: openParquetInspector,
    workDir: LAMBDA_WORK_DIR,
    ...(config.glueDatabase !== undefined && {
      catalog: new GlueSourceCatalog({
        client: createGlueClient(config.region ? { region: config.region } : {}),
        databaseName: config.glueDatabase,
        lakeBucket: config.lakeBucket,
      }),
    }),
  };
}

/** What a step other than the last returns: the plan's Map items, or an item's or bucket's summary. */
export type ReconcileStepOutput =
  | CatchUpStateOutput
  | ReconcilePlanSummary
  | Awaited<ReturnType<typeof reconcileItem>>
  | Awaited<ReturnType<typeof reconcileKeyBucket>>;

/** Reconcile one run's bronze and silver: one step of it (`op`), or all of it. */
export async function reconcileRun(
  event: unknown,
  deps: ReconcileDeps,
): Promise<ReconcileOutput | ReconcileStepOutput> {
  const { logger, metrics } = deps.observability;
  const input = parseStageEvent(
    ReconcileStageEvent,
    event,
    'reconcile',
    '{ "op"?: "plan" | "item" | "keys" | "finish" | "state", "dataset": string, "bronzeManifestKey": string, "item"?: number, "bucket"?: number }',
  );
  const contract = requireSilverContract(input.dataset, deps.config.datasets, deps.datasetConfigs);
  logger.appendKeys({ dataset: input.dataset, bronzeManifestKey: input.bronzeManifestKey, op: input.op });
  metrics.addDimension(Dimension.dataset, input.dataset);
  // The cost the last step priced, kept for the metrics whether the reconciliation passes or fails.
  let cost: RunCostReport | undefined;
  const pricing = runPricing(input, deps);
  const stageDeps = {
    lake: deps.lake,
    clock: deps.clock,
    contract,
    openInspector: deps.openInspector,
    workDir: deps.workDir,
    quarantineRateThreshold: deps.config.quarantineRateThreshold,
    plan: deps.reconcilePlan,
    parallelism: deps.parallelism,
    priceRun:
      pricing &&
      (async (bronze: { readonly source: { readonly size: number } }) => {
        cost = await pricing(bronze);
        return cost;
      }),
  };
  const run = { bronzeManifestKey: input.bronzeManifestKey };
  if (input.op === 'plan') {
    // The run's lease, renewed before reconciliation starts (nothing else renews it on AWS).
    await renewRunLease(
      { bronzeManifestKey: input.bronzeManifestKey, holder: deps.leaseHolder ?? input.executionId },
      { lake: deps.lake, clock: deps.clock, localLease: deps.localLease },
    );
    return planReconcile(run, stageDeps);
  }
  if (input.op === 'item' || input.op === 'keys') {
    await renewRunLeaseFromMapItem(
      { bronzeManifestKey: input.bronzeManifestKey, holder: deps.leaseHolder ?? input.executionId },
      { lake: deps.lake, clock: deps.clock, localLease: deps.localLease },
    );
    return input.op === 'item'
      ? reconcileItem({ ...run, item: input.item }, stageDeps)
      : reconcileKeyBucket({ ...run, bucket: input.bucket }, stageDeps);
  }
  if (input.op === 'state') return catchUpState(input, deps);

  // A rebuild (its run planned by `PlanRebuild`): its evidence has a folder of its own, and its commit
  // needs the source's current version and build to be the ones it was planned on.
  const rebuildOf =
    input.ingest?.status === 'rebuild' && input.ingest.version !== undefined
      ? { version: input.ingest.version, build: input.ingest.currentBuild ?? '' }
      : undefined;
  try {
    const report = await (input.op === 'finish' ? finishReconcile : reconcile)(
      { ...run, rebuild: rebuildOf !== undefined },
      stageDeps,
    );
    metrics.addMetric(MetricName.reconciliationFailed, MetricUnit.Count, 0);
    metrics.addMetric(MetricName.qualityScore, MetricUnit.NoUnit, report.quality.score);
    addRunCost(metrics, report.cost);
    // Passed: the run's version becomes the source's current one, for readers and the catalog.
    const commit = await commitVersion(
      {
        bronzeManifestKey: input.bronzeManifestKey,
        quality: report.quality.score,
        leaseHolder: deps.leaseHolder ?? input.executionId,
        rebuildOf,
        reconciliationKey: reconciliationReportKey(report),
      },
      { lake: deps.lake, clock: deps.clock, contract, catalog: deps.catalog, localLease: deps.localLease },
    );
    // Generic datasets with a snapshot, cdc or scd2 load fold every source's current version into their
    // state (after the commit, so the state never holds a run that failed its reconciliation; a replaced
    // version's events leave the state with it).
    const dataset = datasetNamed(input.dataset, deps.datasetConfigs);
    const state = hasMergedState(dataset)
      ? await mergeCommittedVersions(
          { dataset },
          { lake: deps.lake, clock: deps.clock, workDir: deps.workDir },
        )
      : undefined;
    deps.onResult?.({ report, commit, ...(state && { state }) });
    const output = reconcileOutput(report, commit);
    logger.info('reconciliation passed', { ...output, quality: report.quality });
    return output;
  } catch (error) {
    if (error instanceof ReconciliationError) {
      metrics.addMetric(MetricName.reconciliationFailed, MetricUnit.Count, 1);
    }
    // A run that failed its reconciliation cost money too: its cost goes on the dashboard beside the others.
    if (error instanceof ReconciliationError || error instanceof QuarantineThresholdError) {
      addRunCost(metrics, cost);
    }
    throw error;
  }
}

/** What `CatchUpState` returns: what the catch-up did to the dataset's merged state. */
export interface CatchUpStateOutput {
  /** `merged`: versions the state lacked are in it now; `already-applied`: it was up to date. */
  readonly outcome: MergeSilverStateResult['outcome'] | 'no-committed-version';
  readonly applied: boolean;
  readonly table?: string;
  readonly rowsBefore?: number;
  readonly rowsAfter?: number;
}

/**
 * `CatchUpState` (a run that found its source unchanged, of a dataset with a merged state): when the
 * state lacks the source's current build, folds every current version the state lacks. A run killed
 * between its commit and its fold committed a version that the state never got; its rerun ends
 * `unchanged` at Ingest, and without this, `_current` would stay without the source until the dataset's
 * next commit.
 */
async function catchUpState(
  input: { readonly dataset: string; readonly bronzeManifestKey: string },
  deps: ReconcileDeps,
): Promise<CatchUpStateOutput> {
  const dataset = datasetNamed(input.dataset, deps.datasetConfigs);
  // This run's source first (one read): its current build in the state is the common case.
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const current = await readCurrentVersion(deps.lake, bronze.dataset, bronze.sourceId);
  const build = current?.record.silverManifestKey;
  const state =
    (build !== undefined ? await stateHoldsBuild(dataset, build, deps.lake) : undefined) ??
    (await mergeCommittedVersions(
      { dataset },
      { lake: deps.lake, clock: deps.clock, workDir: deps.workDir },
    ));
  if (state) deps.onStateCaughtUp?.(state);
  const output: CatchUpStateOutput = state
    ? {
        outcome: state.outcome,
        applied: state.applied,
        table: state.table,
        rowsBefore: state.rowsBefore,
        rowsAfter: state.rowsAfter,
      }
    : { outcome: 'no-committed-version', applied: false };
  deps.observability.logger.info(state?.applied ? 'merged state caught up' : 'merged state already current', {
    ...output,
  });
  return output;
}

/** What the run cost (`RunCostUsd`, and per GB of its source when its size is known), if it was priced. */
function addRunCost(
  metrics: ReconcileDeps['observability']['metrics'],
  cost: RunCostReport | undefined,
): void {
  if (!cost) return;
  metrics.addMetric(MetricName.runCostUsd, MetricUnit.NoUnit, cost.totalUsd);
  if (cost.perInputGbUsd !== undefined) {
    metrics.addMetric(MetricName.runCostUsdPerGb, MetricUnit.NoUnit, cost.perInputGbUsd);
  }
}

/**
 * How the last step prices its run: from the usage records of the execution's invocations and its own
 * usage so far. Without an execution, a stage name or metering (an invocation outside the workflow, a
 * test) there is nothing to price. A run whose cost cannot be read still reconciles: the report goes
 * without it, and the log says why.
 */
function runPricing(
  input: ReconcileStageEvent,
  deps: ReconcileDeps,
):
  | ((bronze: { readonly source: { readonly size: number } }) => Promise<RunCostReport | undefined>)
  | undefined {
  const { executionId, state } = input;
  const usage = deps.usage;
  if (executionId === undefined || state === undefined || usage === undefined) return undefined;
  return async (bronze) => {
    try {
      return await priceRun(usage.records, {
        executionId,
        stage: state,
        usageSoFar: usage.meter.usage(),
        prices: deps.config.prices ?? US_EAST_1_PRICE_LIST,
        inputBytes: bronze.source.size,
        stateTransitionsSoFar: deps.stateTransitionsSoFar?.(),
      });
    } catch (error) {
      deps.observability.logger.warn('could not price the run: its report goes without its cost', {
        error: error as Error,
      });
      return undefined;
    }
  };
}

/** The handler for one set of dependencies. */
export function createHandler(deps: ReconcileDeps): StageHandler<ReconcileOutput | ReconcileStepOutput> {
  return stageHandler(deps, reconcileRun);
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadLakeStageConfig('reconcile'))));
