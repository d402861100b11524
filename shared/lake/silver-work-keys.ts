/**
 * Keys of a silver build's intermediate files. A build split into groups of bronze parts (one Lambda per
 * group on AWS, one worker thread per group locally) writes each group's rows as partial Parquet files
 * — one per table for each batch of rows the group wrote (a batch per bronze part) — and one merge step
 * then deduplicates across all of them and writes the table partitions (`silverTableKey`). The work
 * prefix sits beside `_manifests`, outside the table folders, so readers' globs never see it; it is
 * removed once the merge has committed.
 */

/** Everything intermediate of one source's silver build. */
export const silverWorkPrefix = (dataset: string, source: string) => `silver/${dataset}/_work/${source}/`;

/** The folder of one group (zero-padded, so groups list in group order). */
export const silverGroupFolder = (group: number) => `group-${pad(group)}`;

/** The folder of one batch of a group's partial files (zero-padded, so batches list in order). */
export const silverBatchFolder = (batch: number) => `batch-${pad(batch)}`;

/** One group's partial files. */
export const silverGroupPrefix = (dataset: string, source: string, group: number) =>
  `${silverWorkPrefix(dataset, source)}${silverGroupFolder(group)}/`;

/** One table's partial Parquet file of one batch of one group: rows as appended, with lineage. */
export const silverPartialKey = (
  dataset: string,
  source: string,
  group: number,
  batch: number,
  table: string,
) => `${silverGroupPrefix(dataset, source, group)}${silverBatchFolder(batch)}/${table}.parquet`;

/** One group's statistics (records accepted/quarantined, violations, drift: `SilverStats`) as JSON. */
export const silverGroupStatsKey = (dataset: string, source: string, group: number) =>
  `${silverGroupPrefix(dataset, source, group)}_stats.json`;

/** The plan of a build split into groups (`PlanSilver`): when it started and how many groups it has. */
export const silverPlanKey = (dataset: string, source: string) =>
  `${silverWorkPrefix(dataset, source)}_plan.json`;

const pad = (n: number) => String(n).padStart(5, '0');
