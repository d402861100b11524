import { z } from 'zod';
import { type DatasetConfig, hasMergedState } from '../contracts/dataset-config.ts';
import { contractForDataset, silverContractFor } from '../contracts/datasets/silver-contracts.ts';
import type { SilverContract } from '../contracts/silver/contract.ts';
import { ConfigError } from '../errors.ts';
import { reconciliationReportKey } from '../lake/keys.ts';
import type {
  IngestSlicedResult,
  IngestToBronzeResult,
  IngestUnchangedResult,
} from '../stages/bronze/ingest-to-bronze.ts';
import type { CommitVersionResult } from '../stages/commit/commit-version.ts';
import type { ReconciliationReport } from '../stages/reconcile/reconcile.ts';
import type { BuildSilverResult } from '../stages/silver/build-silver.ts';
import type { RebuildPlan } from '../stages/silver/plan-rebuild.ts';
import { RebuildRequest } from './execution.ts';

/**
 * What the workflow's states hand each other: the event each stage task receives and the small
 * reference it returns (never data: Step Functions passes at most 256 KiB between states). The Lambda
 * handlers and the local runner both build their results here, so the two runtimes cannot drift apart.
 */

/** The Step Functions execution id every stage event carries: the correlation id of its logs. */
const executionId = z.string().min(1).optional();

/** The event of the `Silver` and `Reconcile` states: which committed bronze run to work on. */
export const LakeStageEvent = z.object({
  /** The dataset of the run; its silver contract decides tables and rules. */
  dataset: z.string().min(1),
  /** The bronze manifest of the run (the `Ingest` state's `manifestKey`). */
  bronzeManifestKey: z.string().min(1),
  executionId,
  /** The state that invokes the function (the definition names each task's): its usage's stage. */
  state: z.string().min(1).optional(),
});
export type LakeStageEvent = z.infer<typeof LakeStageEvent>;

/**
 * The silver function's event: one of the four steps of a build in groups and buckets (`PlanSilver`,
 * each `SilverGroup` item of the `SilverGroups` map, each `SilverBucket` item of the `SilverBuckets` map,
 * the `Silver` commit, whose op is `merge`), or without `op` the whole build in one invocation (a source
 * small enough; tests).
 */
export const SilverStageEvent = z.preprocess(
  // Without `op`: a whole build.
  (event) => (event && typeof event === 'object' && !('op' in event) ? { ...event, op: 'build' } : event),
  z.discriminatedUnion('op', [
    LakeStageEvent.extend({ op: z.literal('plan') }),
    LakeStageEvent.extend({
      op: z.literal('group'),
      /** The group to build: an index, never data (its parts follow from the manifest and `groupCount`). */
      group: z.number().int().nonnegative(),
      groupCount: z.number().int().positive(),
      /** The plan's merge buckets: every group splits its keyed tables' rows into as many. */
      bucketCount: z.number().int().positive(),
    }),
    LakeStageEvent.extend({
      op: z.literal('bucket'),
      /** The merge bucket to merge: an index (its partial files follow from the groups' stats). */
      bucket: z.number().int().nonnegative(),
      groupCount: z.number().int().positive(),
      bucketCount: z.number().int().positive(),
    }),
    LakeStageEvent.extend({
      op: z.literal('merge'),
      groupCount: z.number().int().nonnegative(),
      bucketCount: z.number().int().nonnegative(),
    }),
    LakeStageEvent.extend({ op: z.literal('build') }),
    /** `PlanRebuild`: which committed source to rebuild (the execution input's `rebuild`). */
    z.object({ op: z.literal('rebuild'), rebuild: RebuildRequest, executionId }),
  ]),
);
export type SilverStageEvent = z.output<typeof SilverStageEvent>;

/**
 * What `Ingest` (or `PlanRebuild`, which puts its result where Ingest's goes) said of the run, as the
 * `Reconcile` state hands it on (`$.ingest`): a rebuild's commit must find the source's current version
 * and build still the ones it was planned on.
 */
const RunOrigin = z.looseObject({
  status: z.string(),
  version: z.string().optional(),
  currentBuild: z.string().optional(),
});

/**
 * The reconcile function's event: one step of a reconciliation in items (`PlanReconcile`, each
 * `ReconcileItem` of the `ReconcileItems` map, each `ReconcileKeyBucket` of the `ReconcileKeyBuckets` map,
 * the `Reconcile` that adds them up), or without `op` all of it in one invocation (a small source; tests).
 */
export const ReconcileStageEvent = z.preprocess(
  (event) => (event && typeof event === 'object' && !('op' in event) ? { ...event, op: 'all' } : event),
  z.discriminatedUnion('op', [
    LakeStageEvent.extend({ op: z.literal('plan') }),
    /** One item of the plan: an index, never data (the plan is in the lake). */
    LakeStageEvent.extend({ op: z.literal('item'), item: z.number().int().nonnegative() }),
    LakeStageEvent.extend({ op: z.literal('keys'), bucket: z.number().int().nonnegative() }),
    /** `CatchUpState`: the dataset's merged state folded up to every current version (an unchanged run). */
    LakeStageEvent.extend({ op: z.literal('state') }),
    LakeStageEvent.extend({ op: z.literal('finish'), ingest: RunOrigin.optional() }),
    LakeStageEvent.extend({ op: z.literal('all'), ingest: RunOrigin.optional() }),
  ]),
);
export type ReconcileStageEvent = z.output<typeof ReconcileStageEvent>;

/**
 * What `PlanSilver` returns (kept at `$.silverPlan`): the items of the two Maps, indexes only, and their
 * counts. At most MAX_SILVER_GROUPS and MAX_SILVER_BUCKETS items, so the lists stay a few kilobytes.
 */
export interface SilverPlanOutput {
  readonly groups: readonly { readonly group: number }[];
  readonly groupCount: number;
  readonly buckets: readonly { readonly bucket: number }[];
  readonly bucketCount: number;
}

/** What one `SilverBucket` item returns (the Map discards it: the bucket's output is in the lake). */
export interface SilverBucketOutput {
  readonly bucket: number;
  /** Rows written per table in this bucket. */
  readonly tables: Readonly<Record<string, number>>;
  /** Bytes of partial files the bucket read (0 when an earlier attempt had merged it). */
  readonly partialBytes: number;
  readonly merged: boolean;
}

/** What one `SilverGroup` item returns (the Map discards it: the group's output is in the lake). */
export interface SilverGroupOutput {
  readonly group: number;
  /** The group's bronze parts: `[firstPart, endPart)`. */
  readonly firstPart: number;
  readonly endPart: number;
  readonly records: number;
  /** The worker thread that built it, when run locally in one. */
  readonly threadId?: number;
}

/** The `PlanSilver` state's result. */
export function silverPlanOutput(groupCount: number, bucketCount: number): SilverPlanOutput {
  return {
    groups: Array.from({ length: groupCount }, (_, group) => ({ group })),
    groupCount,
    buckets: Array.from({ length: bucketCount }, (_, bucket) => ({ bucket })),
    bucketCount,
  };
}

/**
 * What `Ingest` returns (the state machine keeps it at `$.ingest`): a committed bronze run, or a slice
 * that stopped at its time budget, after which the workflow's `IngestDone?` choice runs `Ingest` again
 * and the next slice resumes from the run's checkpoint.
 */
export type IngestOutput = IngestCommittedOutput | IngestSlicedOutput | IngestUnchangedOutput;

/**
 * The source's current version has these bytes already: the workflow ends here (`IngestDone?` →
 * `Unchanged`), nothing is rebuilt, nothing is duplicated.
 */
export interface IngestUnchangedOutput {
  readonly status: 'unchanged';
  readonly runId: string;
  readonly dataset: string;
  readonly version: string;
  /** The run that committed the current version. */
  readonly currentRunId: string;
  readonly committedAt: string;
  /**
   * The current version's bronze manifest: a table of contents whose bytes did not change still fans out
   * from it (its listed files are each skipped if current, retried if not).
   */
  readonly manifestKey: string;
  /**
   * The dataset keeps a merged state (`hasMergedState`): the workflow catches it up (`CatchUpState`)
   * before it ends, in case the run that committed this version died before folding it.
   */
  readonly mergedState: boolean;
}

export interface IngestCommittedOutput {
  readonly status: 'committed';
  readonly runId: string;
  readonly dataset: string;
  readonly manifestKey: string;
  /** Records written to bronze, per record stream. */
  readonly records: Readonly<Record<string, number>>;
  /** Slices (invocations) the run took; 0 when committed bronze was reused. */
  readonly slices: number;
  /** The content's version (sha256 prefix). */
  readonly version: string;
}

export interface IngestSlicedOutput {
  readonly status: 'sliced';
  readonly runId: string;
  readonly dataset: string;
  readonly checkpointKey: string;
  readonly slices: number;
  /** How far the run is: stored bytes read of the total, uncompressed bytes and records so far. */
  readonly storedBytesRead: number;
  readonly storedBytesTotal: number;
  readonly uncompressedBytes: number;
  readonly records: number;
}

/**
 * What `PlanRebuild` returns, kept where `Ingest`'s result is (`$.ingest`: the later stages read the
 * bronze run there): the source's committed bronze run to build silver from (`status: "rebuild"`), or
 * `unchanged` when its current build is the one this config and contract make (the workflow then ends at
 * `Unchanged`).
 */
export interface RebuildOutput {
  readonly status: 'rebuild' | 'unchanged';
  readonly runId: string;
  readonly dataset: string;
  readonly sourceId: string;
  readonly manifestKey: string;
  readonly version: string;
  /** The build this rebuild makes, and the one the source's current version has. */
  readonly build: string;
  readonly currentBuild: string;
  /** As `IngestUnchangedOutput.mergedState`: an unchanged rebuild catches the merged state up too. */
  readonly mergedState: boolean;
}

/** The `PlanRebuild` state's result. */
export function rebuildOutput(plan: RebuildPlan, dataset: DatasetConfig): RebuildOutput {
  const { status, runId, dataset: name, sourceId, manifestKey, version, build, currentBuild } = plan;
  const mergedState = hasMergedState(dataset);
  return { status, runId, dataset: name, sourceId, manifestKey, version, build, currentBuild, mergedState };
}

/** What `Silver` returns (kept at `$.silver`). */
export interface SilverOutput {
  readonly silverManifestKey: string;
  /** Rows written per table, quarantine included. */
  readonly tables: Readonly<Record<string, number>>;
  /** Records set aside in quarantine. */
  readonly quarantined: number;
}

/** What `Reconcile` returns (kept at `$.reconcile`); a failed reconciliation throws instead. */
export interface ReconcileOutput {
  readonly status: ReconciliationReport['status'];
  /** The 0–100 quality score. */
  readonly score: number;
  readonly reportKey: string;
  /** The version committed as the source's current one, and the one it replaced. */
  readonly version: string;
  readonly replaced?: string;
  /** When the version, committed before, became current again (the source went back to its bytes). */
  readonly restoredAt?: string;
}

/** The `Ingest` state's result for a committed bronze run or a slice, of a run of `dataset`. */
export function ingestOutput(
  result: IngestToBronzeResult | IngestSlicedResult | IngestUnchangedResult,
  dataset: DatasetConfig,
): IngestOutput {
  if (result.status === 'unchanged') {
    const { runId, version, currentRunId, committedAt } = result;
    return {
      status: 'unchanged',
      runId,
      dataset: result.dataset,
      version,
      currentRunId,
      committedAt,
      manifestKey: result.currentManifestKey,
      mergedState: hasMergedState(dataset),
    };
  }
  if (result.status === 'sliced') {
    const { progress } = result;
    return {
      status: 'sliced',
      runId: result.runId,
      dataset: result.dataset,
      checkpointKey: result.checkpointKey,
      slices: result.slices,
      storedBytesRead: progress.storedBytesRead,
      storedBytesTotal: progress.storedBytesTotal,
      uncompressedBytes: progress.uncompressedBytes,
      records: progress.records,
    };
  }
  return {
    status: 'committed',
    runId: result.runId,
    dataset: result.dataset,
    manifestKey: result.manifestKey,
    records: result.manifest.records,
    slices: result.slices,
    version: result.manifest.version,
  };
}

/** The `Silver` state's result for a committed silver build. */
export function silverOutput(result: BuildSilverResult): SilverOutput {
  const { manifest } = result;
  return {
    silverManifestKey: result.manifestKey,
    tables: Object.fromEntries(Object.entries(manifest.tables).map(([name, t]) => [name, t.rowsWritten])),
    quarantined: quarantinedRecords(result),
  };
}

/** The `Reconcile` state's result for a report that passed. */
export function reconcileOutput(report: ReconciliationReport, commit: CommitVersionResult): ReconcileOutput {
  return {
    status: report.status,
    score: report.quality.score,
    reportKey: reconciliationReportKey(report),
    version: commit.version,
    ...(commit.replaced !== undefined && { replaced: commit.replaced }),
    ...(commit.record.restoredAt !== undefined && { restoredAt: commit.record.restoredAt }),
  };
}

/** Records of a silver build that went to quarantine, over every record stream. */
export function quarantinedRecords(result: BuildSilverResult): number {
  return Object.values(result.manifest.records).reduce((n, r) => n + r.quarantined, 0);
}

/** The dataset whose runs fan out: a TiC table of contents lists the in-network files to ingest. */
export const FAN_OUT_DATASET = 'tic-table-of-contents';
/** The dataset of each file a table of contents lists (its `in_network_files[*].location`). */
export const LISTED_FILE_DATASET = 'tic-in-network';

/**
 * One listed file, an item of the `FanOut` map: `IngestListedFile` runs the whole workflow for it as a
 * child execution named `executionName`, with the input `{ source: { url, dataset } }`.
 */
export const ListedFile = z.object({
  url: z.string().min(1),
  dataset: z.string().min(1),
  /** Derived from the parent execution's name and the URL: a repeated start cannot duplicate the run. */
  executionName: z.string().min(1),
});
export type ListedFile = z.infer<typeof ListedFile>;

/**
 * What the `FanOut` map leaves per listed file, in item order: `IngestListedFile`'s result (the child's
 * bronze run id) or `ListedFileFailed`'s (the caught error's name; the child execution recorded its own
 * failure, with the cause, through its RecordFailure). Kept this small so a page of them stays far
 * below Step Functions' 256 KiB.
 */
export const ListedFileResult = z.discriminatedUnion('status', [
  z.object({ status: z.literal('succeeded'), runId: z.string().min(1) }),
  z.object({ status: z.literal('failed'), error: z.string() }),
]);
export type ListedFileResult = z.infer<typeof ListedFileResult>;

/**
 * The event of `PlanFanOut`: which table-of-contents run to expand, which page of its listed files to
 * hand out next, and what became of the previous page (recorded in the fan-out report first).
 */
export const FanOutEvent = z.object({
  /** The table of contents' dataset (the `Ingest` state's `dataset`). */
  dataset: z.string().min(1),
  /** The committed bronze run of the table of contents (`Ingest`'s `manifestKey`). */
  bronzeManifestKey: z.string().min(1),
  executionId,
  /** The parent execution's name: each child execution's name derives from it. */
  executionName: z.string().min(1),
  /** The page to hand out; 0 on the first call. */
  page: z.number().int().nonnegative(),
  /** The outcomes of page `page - 1`, in item order (the `FanOut` map's result); none on page 0. */
  results: z.array(ListedFileResult).default([]),
  /** Listed files that succeeded and failed on the pages before `page - 1`. */
  succeeded: z.number().int().nonnegative().default(0),
  failed: z.number().int().nonnegative().default(0),
});
export type FanOutEvent = z.input<typeof FanOutEvent>;

/** What `PlanFanOut` returns (kept at `$.fanOut`): one page of listed files, and the tally so far. */
export interface FanOutOutput {
  /** The page `items` are. */
  readonly page: number;
  /** The page to ask for after this one. */
  readonly nextPage: number;
  /** Pages in all; `done` once `page` reaches it. */
  readonly pages: number;
  /** True when every page has been handed out and recorded: `items` is empty, the fan-out is over. */
  readonly done: boolean;
  /** Distinct listed files with an acceptable URL: the child executions the fan-out starts. */
  readonly listed: number;
  /** Listed locations refused (not a URL, not https, credentials in it, a non-public address, ...). */
  readonly rejected: number;
  /** Listed locations that repeat an earlier one (each file is ingested once). */
  readonly duplicates: number;
  /** Listed files whose child execution succeeded or failed, on the pages recorded so far. */
  readonly succeeded: number;
  readonly failed: number;
  readonly items: readonly ListedFile[];
  /** The lake folder of the fan-out report: `plan.json`, `page-NNNNN.json` per page, `summary.json`. */
  readonly report: string;
}

/** What `StartFanOut` puts at `$.fanOut` before the first `PlanFanOut`: page 0, nothing recorded yet. */
export const FAN_OUT_START = { nextPage: 0, results: [], succeeded: 0, failed: 0 } as const;

/**
 * The message `RecordFailure` sends to the failure queue (see the definition's `messageBody`): the
 * failed execution, its input, and the error the Catch caught.
 */
export const FailureMessage = z.object({
  executionId: z.string().min(1),
  input: z.unknown(),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }),
});
export type FailureMessage = z.infer<typeof FailureMessage>;

/**
 * The silver contract of a stage event's dataset. A dataset this deployment does not ingest (`deployed`,
 * when given) or one without a contract is a ConfigError: permanent, the Catch records it.
 */
export function requireSilverContract(
  dataset: string,
  deployed?: readonly string[],
  /** Datasets beyond the built-in ones (a local run of a dataset config file). */
  configured: readonly DatasetConfig[] = [],
): SilverContract {
  if (deployed && !deployed.includes(dataset)) {
    throw new ConfigError(
      `dataset "${dataset}" is not deployed (deployed: ${deployed.join(', ')}); ` +
        'add it to the deployment config (sluice.config.json) and redeploy',
    );
  }
  const config = configured.find((c) => c.name === dataset);
  const contract = config ? contractForDataset(config) : silverContractFor(dataset);
  if (!contract) {
    throw new ConfigError(
      `dataset "${dataset}" has no silver contract, so it has no silver stage; ` +
        'its executions must carry "hasSilver": false',
    );
  }
  return contract;
}
