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

/** Hex digits of the location's hash that end a source id (`sourceId`). */
export const SOURCE_HASH_CHARS = 12;

/**
 * A *source* is a logical file: where it comes from (a local path, a landing key as `s3://bucket/key`, or
 * an HTTP URL without credentials), whatever its content. Its id is a readable name plus a hash of that
 * location, so every version of one source shares one id, and two sources with the same file name never
 * do. `location` must already be normalized (see `normalizeSourceUrl` for URLs).
 */
export function sourceId(location: string): string {
  const base =
    location
      .replace(/[?#].*$/, '')
      .split(/[/\\]/)
      .at(-1) ?? 'source';
  const hash = createHash('sha256').update(location).digest('hex');
  return `${safeSegment(base)}-${hash.slice(0, SOURCE_HASH_CHARS)}`;
}

/**
 * Where downloads land in the landing store. The workflow that downloaded a file ingests it itself, so the
 * landing trigger (EventBridge "Object Created") ignores this prefix: otherwise every download would also
 * start a second execution for the same object. A download's key is also its source's identity
 * (`sourceIdentity`).
 */
export const DOWNLOADS_PREFIX = '_downloads/';

/** What identifies one stored object of a source, as its store sees it (before its bytes are read). */
export interface StoredObject {
  /** The source's location (see `sourceId`). */
  readonly location: string;
  readonly size: number;
  readonly etag: string;
  /** A local file's change time (`ObjectInfo.changeTag`), when the store has one. */
  readonly changeTag?: string;
}

/** Hex digits of the object fingerprint that ends a run id. */
const RUN_FINGERPRINT_LENGTH = 8;

/**
 * A bronze run: one stored object of a source, parsed under one dataset config. `<source id>-<fingerprint>`,
 * the fingerprint hashing the object's size and etag (or mtime), for a local file its change time, and the
 * config's sha256: a rerun of the same object under the same config resumes or reuses the same run, and a
 * replaced, touched or rewritten object, or the same one under another config, gets a run of its own beside
 * the current one. (Under another config a run in the same folder would first delete, then rewrite the
 * committed version's bronze: a run that then failed left the current version without its bronze.)
 * Whether two runs hold the same *version* (the same bytes) is only known after reading: `sourceVersion`.
 */
export function bronzeRunId(object: StoredObject, configSha256: string): string {
  const changed = object.changeTag === undefined ? '' : `\n${object.changeTag}`;
  const hash = createHash('sha256')
    .update(`${object.size}\n${object.etag}${changed}\n${configSha256}`)
    .digest('hex');
  return `${sourceId(object.location)}-${hash.slice(0, RUN_FINGERPRINT_LENGTH)}`;
}

/** The source id of a run id (`bronzeRunId`). */
export function sourceIdOfRun(runId: string): string {
  return runId.slice(0, Math.max(0, runId.length - RUN_FINGERPRINT_LENGTH - 1));
}

/** A source's version: its content, named by the first 16 hex digits of the stored bytes' sha256. */
export const sourceVersion = (sha256: string) => sha256.slice(0, 16);

/** The folder of a source's control records: its lease, its current version and every version committed. */
export const sourceControlPrefix = (dataset: string, source: string) =>
  `_sources/${dataset}/source=${source}/`;

/** Held by the one run working on a source (see shared/lake/source-lease.ts). */
export const sourceLeaseKey = (dataset: string, source: string) =>
  `${sourceControlPrefix(dataset, source)}lease.json`;

/** Which version of a source readers see; replaced, conditionally, by each commit (see source-commits.ts). */
export const sourceCurrentKey = (dataset: string, source: string) =>
  `${sourceControlPrefix(dataset, source)}current.json`;

/** The record of one committed version of a source: kept after it is replaced, for history. */
export const sourceVersionKey = (dataset: string, source: string, version: string) =>
  `${sourceControlPrefix(dataset, source)}versions/${version}.json`;

/** Every source's current-version record of a dataset: `_sources/<dataset>/source=*\/current.json`. */
export const sourcesPrefix = (dataset: string) => `_sources/${dataset}/`;

/** The folder of one bronze run (`bronzeRunId`), under its source's folder. */
export const bronzeRunPrefix = (dataset: string, runId: string) =>
  `bronze/${dataset}/source=${sourceIdOfRun(runId)}/run=${runId}/`;

/** The commit marker: written last, its presence is what makes a bronze run visible to readers. */
export const bronzeManifestKey = (dataset: string, runId: string) =>
  `${bronzeRunPrefix(dataset, runId)}_manifest.json`;

/** One bronze part: NDJSON.gz, one record per line. */
export const bronzePartKey = (dataset: string, runId: string, recordName: string, part: number) =>
  `${bronzeRunPrefix(dataset, runId)}${recordName}/part-${String(part).padStart(5, '0')}.ndjson.gz`;

/**
 * One silver build: one version of one source, built from its bronze under one dataset config and one
 * silver contract. `build` is the first 8 hex digits of the sha256 of the bronze's dataset config hash and
 * the contract's fingerprint (shared/contracts/silver/contract-fingerprint.ts: its `contractVersion`,
 * tables, columns, types, keys and rules). A version rebuilt under a changed config or contract writes new
 * files beside the old ones, so the version readers see stays whole until the new build is committed.
 */
export interface SilverBuildRef {
  readonly dataset: string;
  readonly sourceId: string;
  readonly version: string;
  readonly build: string;
}

/** The build of a bronze run's manifest (which names dataset, source, version and config) under a contract. */
export function silverBuildOf(
  bronze: {
    readonly dataset: string;
    readonly sourceId: string;
    readonly version: string;
    readonly datasetConfigSha256: string;
  },
  contractFingerprint: string,
): SilverBuildRef {
  const { dataset, sourceId, version } = bronze;
  const build = createHash('sha256')
    .update(`${bronze.datasetConfigSha256}\n${contractFingerprint}`)
    .digest('hex')
    .slice(0, 8);
  return { dataset, sourceId, version, build };
}

/**
 * One silver table's rows of one build: one Parquet file per merge bucket (`part-00000.parquet`, … one
 * per bucket that got rows; a build has K buckets, see `silverBucketCount`), each written atomically,
 * alone with its siblings in the build's folder (a catalog partition points at the folder). Readers do
 * not glob these folders: they read the files the source's current-version record names
 * (`sourceCurrentKey`), so a version becomes visible all at once, and only after its reconciliation
 * passed.
 */
export const silverTableKey = (ref: SilverBuildRef, table: string, bucket = 0) =>
  `${silverTableBuildPrefix(ref, table)}part-${String(bucket).padStart(5, '0')}.parquet`;

/** The folder of one table's files of one build. */
export const silverTableBuildPrefix = (ref: SilverBuildRef, table: string) =>
  `${silverTablePrefix(ref.dataset, table)}source=${ref.sourceId}/version=${ref.version}/build=${ref.build}/`;

/** The folder of every build of one silver table: the Glue table's LOCATION. */
export const silverTablePrefix = (dataset: string, table: string) => `silver/${dataset}/${table}/`;

/** Records that broke a quarantine rule, with the rule, path and message: a table like any other. */
export const QUARANTINE_TABLE = '_quarantine';

/** The commit marker of a silver build (outside the table folders). */
export const silverManifestKey = (ref: SilverBuildRef) =>
  `${silverManifestsPrefix(ref.dataset, ref.sourceId, ref.version)}${ref.build}.json`;

/** The commit markers of every build of one version of a source. */
export const silverManifestsPrefix = (dataset: string, sourceId: string, version: string) =>
  `silver/${dataset}/_manifests/source=${sourceId}/version=${version}/`;

/** The build id a silver manifest key names (`silverManifestKey`). */
export const buildOfSilverManifestKey = (key: string) => key.slice(key.lastIndexOf('/') + 1, -'.json'.length);

/** The reconciliation report, beside the bronze manifest of the run it proves. */
export const reconciliationKey = (dataset: string, runId: string) =>
  `${bronzeRunPrefix(dataset, runId)}reconciliation.json`;

/** The run report: one self-contained HTML page of the run, beside its reconciliation report. */
export const runReportKey = (dataset: string, runId: string) =>
  reportKeyBeside(reconciliationKey(dataset, runId));

/**
 * The evidence of one rebuild of a run's version (`sluice rebuild`), one folder per build it made:
 * `rebuild=<build>/reconciliation.json` and `report.html`. A rebuild runs under the run it rebuilds, so
 * its evidence must not take the run's keys: a failed rebuild would replace the proof of the build that
 * stays current. Once a rebuild is committed, its evidence is copied to the run's keys as well.
 */
export const rebuildEvidencePrefix = (dataset: string, runId: string, build: string) =>
  `${bronzeRunPrefix(dataset, runId)}rebuild=${build}/`;

/** A rebuild's reconciliation report (see `rebuildEvidencePrefix`). */
export const rebuildReconciliationKey = (dataset: string, runId: string, build: string) =>
  `${rebuildEvidencePrefix(dataset, runId, build)}reconciliation.json`;

/** Where a reconciliation report is: beside its run's bronze manifest, or a rebuild's in its own folder. */
export function reconciliationReportKey(report: {
  readonly dataset: string;
  readonly runId: string;
  readonly rebuild?: boolean;
  readonly silverManifestKey?: string;
}): string {
  return report.rebuild && report.silverManifestKey !== undefined
    ? rebuildReconciliationKey(
        report.dataset,
        report.runId,
        buildOfSilverManifestKey(report.silverManifestKey),
      )
    : reconciliationKey(report.dataset, report.runId);
}

/** The run report beside a reconciliation report (the run's, or a rebuild's). */
export const reportKeyBeside = (reconciliationReportKey: string) =>
  `${reconciliationReportKey.slice(0, reconciliationReportKey.lastIndexOf('/') + 1)}report.html`;

/** Where a sliced ingest of a source resumes (see IngestCheckpoint); removed once the run commits. */
export const ingestCheckpointKey = (dataset: string, runId: string) =>
  `${bronzeRunPrefix(dataset, runId)}_checkpoint.json`;

/**
 * The fan-out report of one execution over a table-of-contents run (shared/stages/fan-out): `plan.json`,
 * `page-NNNNN.json` with each page's outcomes, and `summary.json`, beside the run's bronze manifest.
 * Per execution, since each execution names its own child executions.
 */
export const fanOutReportPrefix = (dataset: string, runId: string, execution: string) =>
  `${bronzeRunPrefix(dataset, runId)}fan-out/${safeSegment(execution)}/`;
