import { createHash } from 'node:crypto';

/**
 * Every object key sluice writes, in one place. Keys are deterministic — derived from the dataset,
 * the source's identity and a part number — so a rerun of the same source overwrites rather than
 * duplicates.
 */

/** Make a file name safe as one key segment: no separators, no dot-segments, bounded length. */
export function safeSegment(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return (cleaned || 'source').slice(0, 80);
}

/** What identifies one version of one source object. */
export interface SourceIdentity {
  readonly uri: string;
  readonly size: number;
  readonly etag: string;
}

/**
 * A stable id for a source version: readable name plus a hash of where it is and which version it is.
 * The same object yields the same id; a changed object (new size or etag) gets a new one.
 */
export function sourceId(source: SourceIdentity): string {
  const base = source.uri.split(/[/\\]/).at(-1) ?? 'source';
  const hash = createHash('sha256').update(`${source.uri}\n${source.size}\n${source.etag}`).digest('hex');
  return `${safeSegment(base)}-${hash.slice(0, 12)}`;
}

/** The folder of one source's bronze output. */
export const bronzeRunPrefix = (dataset: string, source: string) => `bronze/${dataset}/source=${source}/`;

/** The commit marker: written last, its presence is what makes a bronze run visible to readers. */
export const bronzeManifestKey = (dataset: string, source: string) =>
  `${bronzeRunPrefix(dataset, source)}_manifest.json`;

/** One bronze part: NDJSON.gz, one record per line. */
export const bronzePartKey = (dataset: string, source: string, recordName: string, part: number) =>
  `${bronzeRunPrefix(dataset, source)}${recordName}/part-${String(part).padStart(5, '0')}.ndjson.gz`;

/**
 * One silver table's partition for one source: a single Parquet file, written atomically, so a table's
 * rows from a source appear all at once. Readers glob every Parquet file under `silver/<dataset>/<table>/`.
 */
export const silverTableKey = (dataset: string, table: string, source: string) =>
  `silver/${dataset}/${table}/source=${source}/part-00000.parquet`;

/** Records that broke a quarantine rule, with the rule, path and message: a table like any other. */
export const QUARANTINE_TABLE = '_quarantine';

/** The commit marker of a source's silver build (outside the table folders, so globs skip it). */
export const silverManifestKey = (dataset: string, source: string) =>
  `silver/${dataset}/_manifests/source=${source}.json`;

/** The reconciliation report, beside the bronze manifest of the run it proves. */
export const reconciliationKey = (dataset: string, source: string) =>
  `${bronzeRunPrefix(dataset, source)}reconciliation.json`;

/** Where a sliced ingest of a source resumes (see IngestCheckpoint); removed once the run commits. */
export const ingestCheckpointKey = (dataset: string, source: string) =>
  `${bronzeRunPrefix(dataset, source)}_checkpoint.json`;

/**
 * The fan-out report of one execution over a table-of-contents run (shared/stages/fan-out): `plan.json`,
 * `page-NNNNN.json` with each page's outcomes, and `summary.json`, beside the run's bronze manifest.
 * Per execution, since each execution names its own child executions.
 */
export const fanOutReportPrefix = (dataset: string, source: string, execution: string) =>
  `${bronzeRunPrefix(dataset, source)}fan-out/${safeSegment(execution)}/`;
