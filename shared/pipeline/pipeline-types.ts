import type { Clock } from '../ports/clock.ts';
import type { ObjectStore, UploadingObjectStore } from '../ports/object-store.ts';
import type { TablePartialsMerger } from '../ports/table-writer.ts';
import type {
  IngestProgress,
  IngestToBronzeResult,
  IngestUnchangedResult,
  SliceBudget,
} from '../stages/bronze/ingest-to-bronze.ts';
import type { CommitVersionResult } from '../stages/commit/commit-version.ts';
import type { ReconciliationReport } from '../stages/reconcile/reconcile.ts';
import type { BuildSilverResult, SilverProgress } from '../stages/silver/build-silver.ts';
import type { MergeSilverStateResult } from '../stages/silver/merge-state.ts';
import type { FunctionStores } from './local-stage-deps.ts';

/** Stages of a local run, in the order they start; `silver merge` only when several groups were built. */
export type Stage = 'bronze' | 'silver' | 'silver merge' | 'reconcile';

/** What a local run of the pipeline works with. */
export interface LocalPipelineDeps {
  /** Where sources are read from, and where `Download` lands them (in resumable parts). */
  readonly source: UploadingObjectStore;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Scratch space for Parquet files and DuckDB spill. @default the OS temp dir */
  readonly workDir?: string;
  readonly onStage?: (stage: Stage) => void;
  readonly onIngestProgress?: (progress: IngestProgress) => void;
  /**
   * A fresh budget for each ingest slice and each `Download` invocation (`sluice run --slice-seconds`,
   * tests). @default none: one slice (or download), or as many as a checkpoint left by an interrupted
   * sliced run (or download) needs
   */
  readonly sliceBudget?: () => SliceBudget;
  /**
   * Uncompressed input one ingest slice reads at most (`sluice run --slice-mb`; deployed:
   * `ingest.sliceMaxMb`): besides its time, each slice then ends at the first segment boundary past it,
   * so a file takes a number of slices known from its size. @default none: slices end by time alone
   */
  readonly ingestSliceMaxBytes?: number;
  readonly onSilverProgress?: (progress: SilverProgress) => void;
  /** Groups of bronze parts the silver stage builds at once, in worker threads. @default one per core */
  readonly silverParallelism?: number;
  /**
   * Uncompressed bronze per merge bucket of a silver build (tests force several buckets with a small
   * one). @default DEFAULT_SILVER_BUCKET_TARGET_BYTES, as deployed
   */
  readonly silverBucketTargetBytes?: number;
  /**
   * The stores each stage function gets instead of `lake` and `source` (tests), in process only: not
   * under `lambdaLimits`, whose invocations open the stores themselves. @default those
   */
  readonly functionStores?: FunctionStores;
  /**
   * Merges silver's partial files into the final tables (tests use it for small row groups, so that a
   * small file's tables span many). @default DuckDB's `mergeParquetPartials`
   */
  readonly mergeTables?: TablePartialsMerger;
  /**
   * Who holds the source's lease for this run (`sluice run` takes it before starting, so that it can say
   * who else holds it, or wait). @default the execution id
   */
  readonly leaseHolder?: string;
}

/** What each stage of a local run produced. */
export type LocalPipelineResult = LocalRunResult | LocalUnchangedResult;

/**
 * The source's current version had these bytes already (a run), or its current build is the one this
 * config and contract make (a rebuild): nothing was rebuilt.
 */
export interface LocalUnchangedResult {
  readonly outcome: 'unchanged';
  readonly unchanged: IngestUnchangedResult;
  /** Present for a rebuild. */
  readonly rebuild?: RebuildBuilds;
  readonly invocations?: TaskInvocations;
  readonly bronze?: undefined;
  readonly silver?: undefined;
  /** A dataset with a merged state: what catching it up did (`CatchUpState`). */
  readonly state?: MergeSilverStateResult;
  readonly reconciliation?: undefined;
  readonly commit?: undefined;
  /** A table of contents whose own bytes were unchanged still fans out: what became of its files. */
  readonly fanOut?: FanOutResult;
}

/** A run that committed bronze (new or reused) and, with a silver contract, silver and reconciliation. */
export interface LocalRunResult {
  readonly outcome: 'committed';
  readonly invocations?: TaskInvocations;
  /** The bronze run: parsed (or reused) by this run, or for a rebuild the source's committed one. */
  readonly bronze: IngestToBronzeResult;
  /** Present for a rebuild (silver built again from committed bronze, the source not read). */
  readonly rebuild?: RebuildBuilds;
  /** Absent when the dataset has no silver contract (a bronze-only dataset). */
  readonly silver?: BuildSilverResult;
  /** Present for generic datasets with a snapshot, cdc or scd2 load. */
  readonly state?: MergeSilverStateResult;
  readonly reconciliation?: ReconciliationReport;
  /** The version made current (after reconciliation passed). */
  readonly commit?: CommitVersionResult;
  /** Present for a table of contents that fanned out: what became of each file it lists. */
  readonly fanOut?: FanOutResult;
}

/** A rebuild's silver builds: the one it built (or found current), and the one the source had before. */
export interface RebuildBuilds {
  readonly sourceId: string;
  readonly build: string;
  readonly previousBuild: string;
}

/** What the run's tasks did, as Lambda would bill and limit it. */
export interface TaskInvocations {
  /** Invocations of each Task state (a Map's items each count), retries included. */
  readonly byState: Readonly<Record<string, number>>;
  /** The largest scratch folder (the handler's workDir) any invocation used, in bytes. */
  readonly largestScratchBytes: number;
  /**
   * The longest any invocation ran, in ms: under `--lambda-limits` from its start (after its process's
   * init, as Lambda's timeout counts) to its result; in process, the task's whole call.
   */
  readonly longestInvocationMs: number;
}

/** A table of contents' fan-out, run locally. */
export interface FanOutResult {
  /** The lake folder of its report (`plan.json`, `page-NNNNN.json`, `summary.json`). */
  readonly report: string;
  /** Every listed file, in plan order, then every refused location. */
  readonly files: readonly ListedFileOutcome[];
  /** Listed locations that repeated an earlier one (ingested once). */
  readonly duplicates: number;
}

/** One file a table of contents lists, and what became of it. */
export interface ListedFileOutcome {
  /** The listed URL; for a refused location, as shown in messages (secrets redacted). */
  readonly url?: string;
  /** `rejected`: refused before any download (see `error`). */
  readonly status: 'succeeded' | 'failed' | 'rejected';
  /** The child execution's name: also the id of its dead letter when it failed. */
  readonly executionName?: string;
  /** The child's bronze run. */
  readonly runId?: string;
  /** The child's reconciliation status. */
  readonly reconciliation?: ReconciliationReport['status'];
  /** Why it failed (`<error name>: <message>`) or was refused. */
  readonly error?: string;
}
