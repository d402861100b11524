/**
 * Keys of a silver build's intermediate files. A build split into groups of bronze parts (one Lambda per
 * group on AWS, one worker thread per group locally) writes each group's rows as partial Parquet files
 * — one per table for each batch of rows the group wrote (a batch per bronze part) and merge bucket —
 * bundled into one object per group; each merge bucket then deduplicates its share of all of them and
 * writes its file of each table (`silverTableKey`), and a commit step writes the manifest. The work
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

/**
 * One group's partial files in one object: bucket by bucket (then table, then batch), so that a bucket's
 * merge reads its own byte range of each group's object and nothing else. The group's `_stats.json`
 * indexes it.
 */
export const silverGroupPartialsKey = (dataset: string, source: string, group: number) =>
  `${silverGroupPrefix(dataset, source, group)}partials.bin`;

/** What one merge bucket published (its table files, rows, sizes, sha256s), written after them. */
export const silverBucketResultKey = (dataset: string, source: string, bucket: number) =>
  `${silverWorkPrefix(dataset, source)}bucket-${pad(bucket)}.json`;

/** One group's statistics (records accepted/quarantined, violations, drift: `SilverStats`) as JSON. */
export const silverGroupStatsKey = (dataset: string, source: string, group: number) =>
  `${silverGroupPrefix(dataset, source, group)}_stats.json`;

/** The plan of a build split into groups (`PlanSilver`): when it started and how many groups it has. */
export const silverPlanKey = (dataset: string, source: string) =>
  `${silverWorkPrefix(dataset, source)}_plan.json`;

const pad = (n: number) => String(n).padStart(5, '0');
