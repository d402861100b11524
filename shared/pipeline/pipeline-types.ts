import type { Clock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { IngestProgress, IngestToBronzeResult, SliceBudget } from '../stages/bronze/ingest-to-bronze.ts';
import type { ReconciliationReport } from '../stages/reconcile/reconcile.ts';
import type { BuildSilverResult, SilverProgress } from '../stages/silver/build-silver.ts';
import type { MergeSilverStateResult } from '../stages/silver/merge-state.ts';

export type Stage = 'bronze' | 'silver' | 'reconcile';

/** What a local run of the pipeline works with. */
export interface LocalPipelineDeps {
  readonly source: ObjectStore;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Scratch space for Parquet files and DuckDB spill. @default the OS temp dir */
  readonly workDir?: string;
  readonly onStage?: (stage: Stage) => void;
  readonly onIngestProgress?: (progress: IngestProgress) => void;
  /**
   * A fresh budget for each ingest slice (`sluice run --slice-seconds`, tests). @default none: one slice,
   * or as many as a checkpoint left by an interrupted sliced run needs
   */
  readonly sliceBudget?: () => SliceBudget;
  readonly onSilverProgress?: (progress: SilverProgress) => void;
}

/** What each stage of a local run produced. */
export interface LocalPipelineResult {
  readonly bronze: IngestToBronzeResult;
  /** Absent when the dataset has no silver contract (a bronze-only dataset). */
  readonly silver?: BuildSilverResult;
  /** Present for generic datasets with a snapshot, cdc or scd2 load. */
  readonly state?: MergeSilverStateResult;
  readonly reconciliation?: ReconciliationReport;
}
