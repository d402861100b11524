import { silverWorkPrefix } from './silver-work-keys.ts';

/**
 * Keys of a distributed reconciliation's small intermediate objects: its plan, one result per item (a
 * group of bronze parts, or one silver table file), the reference keys each file emits per key bucket,
 * and one result per key bucket. They sit in the run's silver work folder, whose lifecycle rule expires
 * what a crash leaves; the final step removes them once the report is written.
 */

/** Everything intermediate of one run's reconciliation. */
export const reconcileWorkPrefix = (dataset: string, runId: string) =>
  `${silverWorkPrefix(dataset, runId)}_reconcile/`;

/** What `PlanReconcile` decided: the items and the key bucket count. */
export const reconcilePlanKey = (dataset: string, runId: string) =>
  `${reconcileWorkPrefix(dataset, runId)}plan.json`;

/** One item's result (counts, checksums): written last by its item. */
export const reconcileItemKey = (dataset: string, runId: string, item: number) =>
  `${reconcileWorkPrefix(dataset, runId)}items/item-${pad(item)}.json`;

/** The reference and quarantine keys one silver file emits into one key bucket (Parquet). */
export const reconcileKeysKey = (dataset: string, runId: string, bucket: number, item: number) =>
  `${reconcileWorkPrefix(dataset, runId)}keys/bucket-${pad(bucket)}/item-${pad(item)}.parquet`;

/** One key bucket's result: references resolved and dangling, distinct quarantined records. */
export const reconcileBucketKey = (dataset: string, runId: string, bucket: number) =>
  `${reconcileWorkPrefix(dataset, runId)}buckets/bucket-${pad(bucket)}.json`;

const pad = (n: number) => String(n).padStart(5, '0');
