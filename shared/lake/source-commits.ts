import { z } from 'zod';
import { PipelineError, PreconditionFailedError } from '../errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import {
  DOWNLOADS_PREFIX,
  SOURCE_HASH_CHARS,
  sourceCurrentKey,
  sourceId,
  sourceLeaseKey,
  sourcesPrefix,
  sourceVersionKey,
} from './keys.ts';
import { readTextIfPresent } from './read-json.ts';

/**
 * What readers see. Each source of a dataset has one *current* version: the record at
 * `_sources/<dataset>/source=<id>/current.json`, which names the silver files of that version (per
 * table, one per merge bucket). A run commits a new version by writing its version record (kept forever, for history) and then
 * replacing the current record, conditionally on the etag it read before, so two commits can never both
 * win. Until then the new files exist but no reader looks at them; a run that fails before its commit
 * (a failed reconciliation, a crash) leaves the previous version current. `sluice query` builds its
 * views from these records; on AWS the commit also moves the source's Glue partitions.
 */

export const SourceVersionRecord = z.object({
  commitVersion: z.literal(1),
  dataset: z.string(),
  sourceId: z.string(),
  /** The content's version (`sourceVersion` of `sha256`). */
  version: z.string(),
  sha256: z.string(),
  /** Where it was read from; for a download also its URL, without credentials. */
  uri: z.string(),
  url: z.string().optional(),
  size: z.number().int().nonnegative(),
  /** The bronze run that parsed it, and the silver build and reconciliation that were committed. */
  runId: z.string(),
  bronzeManifestKey: z.string(),
  datasetConfigSha256: z.string(),
  silverManifestKey: z.string().optional(),
  reconciliationKey: z.string().optional(),
  /**
   * Each silver table's files of this version, one per merge bucket that got rows (tables without rows
   * have none). A record written before merge buckets named one file: read as a list of it.
   */
  tables: z.record(
    z.string(),
    z.preprocess((files) => (typeof files === 'string' ? [files] : files), z.array(z.string()).min(1)),
  ),
  /** The quality score of its reconciliation. */
  quality: z.number().optional(),
  committedAt: z.string(),
  /** Runs of other stored objects (a touched file, a re-upload) found to hold these same bytes. */
  seenAs: z.array(z.string()).default([]),
  /** When each of `seenAs` was found to hold these bytes (for `sluice runs`). */
  seenAt: z.record(z.string(), z.string()).optional(),
  /** The version this one replaced. */
  replaced: z.object({ version: z.string(), committedAt: z.string() }).optional(),
  /**
   * When this version, committed before, became current again (its source was reverted to these bytes):
   * its files and version record were kept as committed, only the current record changed.
   */
  restoredAt: z.string().optional(),
  /**
   * When this version became current, kept by a new build of it (a rebuild, a run under a changed config):
   * absent, `committedAt`. See `becameCurrentAt`.
   */
  currentSince: z.string().optional(),
});
export type SourceVersionRecord = z.infer<typeof SourceVersionRecord>;

/**
 * When a source's current version became current: when it was restored (the source went back to these
 * bytes), else when it was first committed, whatever builds of it were committed since. A merged state
 * folds the sources in this order, so a snapshot without an ordering column is the file that arrived
 * last, not the one rebuilt last.
 */
export const becameCurrentAt = (record: SourceVersionRecord): string =>
  record.restoredAt ?? record.currentSince ?? record.committedAt;

export interface CurrentVersion {
  readonly record: SourceVersionRecord;
  /** For a conditional replace. */
  readonly etag: string;
}

/** The source's current version, if any is committed. */
export async function readCurrentVersion(
  lake: ObjectStore,
  dataset: string,
  sourceId: string,
): Promise<CurrentVersion | undefined> {
  const key = sourceCurrentKey(dataset, sourceId);
  const info = await lake.head(key);
  if (!info) return undefined;
  const text = await readTextIfPresent(lake, key);
  if (text === undefined) return undefined;
  return { record: parseRecord(key, text), etag: info.etag };
}

/**
 * Commits a version: its version record first, then the current record, replaced only if it is still
 * `expected` (the current version read before, or none). Throws `PreconditionFailedError` if another
 * commit came first.
 */
export async function commitSourceVersion(
  lake: ObjectStore,
  record: SourceVersionRecord,
  expected: CurrentVersion | undefined,
): Promise<void> {
  const body = `${JSON.stringify(record, null, 2)}\n`;
  const options = { contentType: 'application/json' } as const;
  await lake.write(sourceVersionKey(record.dataset, record.sourceId, record.version), body, options);
  await lake.write(sourceCurrentKey(record.dataset, record.sourceId), body, {
    ...options,
    ...(expected ? { ifMatch: expected.etag } : { ifAbsent: true }),
  });
}

/** A committed version of a source (current or replaced), if there is one. */
export async function readVersionRecord(
  lake: ObjectStore,
  dataset: string,
  sourceId: string,
  version: string,
): Promise<SourceVersionRecord | undefined> {
  const key = sourceVersionKey(dataset, sourceId, version);
  const text = await readTextIfPresent(lake, key);
  return text === undefined ? undefined : parseRecord(key, text);
}

/**
 * Makes an earlier committed version current again, as it was committed (its version record is not
 * rewritten): only the current record is replaced, conditionally on `expected` like any commit.
 */
export async function restoreSourceVersion(
  lake: ObjectStore,
  record: SourceVersionRecord,
  expected: CurrentVersion | undefined,
): Promise<void> {
  await lake.write(
    sourceCurrentKey(record.dataset, record.sourceId),
    `${JSON.stringify(record, null, 2)}\n`,
    {
      contentType: 'application/json',
      ...(expected ? { ifMatch: expected.etag } : { ifAbsent: true }),
    },
  );
}

/** Adds a run to the current version's `seenAs` (it held the same bytes); a lost race is harmless. */
export async function recordSeenAs(
  lake: ObjectStore,
  current: CurrentVersion,
  runId: string,
  at: Date,
): Promise<void> {
  if (current.record.runId === runId || current.record.seenAs.includes(runId)) return;
  const record = {
    ...current.record,
    seenAs: [...current.record.seenAs, runId],
    seenAt: { ...current.record.seenAt, [runId]: at.toISOString() },
  };
  try {
    await lake.write(
      sourceCurrentKey(record.dataset, record.sourceId),
      `${JSON.stringify(record, null, 2)}\n`,
      {
        contentType: 'application/json',
        ifMatch: current.etag,
      },
    );
  } catch (error) {
    if (!(error instanceof PreconditionFailedError)) throw error;
  }
}

/** Every source's current version of a dataset, in source id order. */
export const listCurrentVersions = (lake: ObjectStore, dataset: string) =>
  listRecords(lake, dataset, (key) => key.endsWith('/current.json'));

/** Every committed version of every source of a dataset (current and replaced), in key order. */
export const listCommittedVersions = (lake: ObjectStore, dataset: string) =>
  listRecords(lake, dataset, (key) => /\/versions\/[^/]+\.json$/.test(key));

async function listRecords(
  lake: ObjectStore,
  dataset: string,
  wanted: (key: string) => boolean,
): Promise<SourceVersionRecord[]> {
  const records: SourceVersionRecord[] = [];
  for await (const object of lake.list(sourcesPrefix(dataset))) {
    if (!wanted(object.key)) continue;
    const text = await readTextIfPresent(lake, object.key);
    if (text !== undefined) records.push(parseRecord(object.key, text));
  }
  return records;
}

function parseRecord(key: string, text: string): SourceVersionRecord {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PipelineError(`${key}: the commit record is not JSON; restore it from its versions/ copy`, {
      cause: error,
    });
  }
  const parsed = SourceVersionRecord.safeParse(json);
  if (!parsed.success) {
    throw new PipelineError(`${key}: not a commit record: ${parsed.error.issues[0]?.message ?? ''}`);
  }
  return parsed.data;
}

/**
 * What a source's id is made of (`sourceId`): a file's location, but for a download (`_downloads/…`,
 * see `landingKey`) its landing key, which is one per URL wherever the landing store is (a local
 * `--landing` folder, any working directory): a URL is one source however it lands. A download first
 * seen when its id was made of its full location keeps that id (`legacyLocation`), so an upgrade makes
 * no second source of it and does not restart a run of it that is under way.
 */
export async function sourceIdentity(
  lake: ObjectStore,
  dataset: string,
  key: string,
  uri: string,
): Promise<string> {
  if (!key.startsWith(DOWNLOADS_PREFIX)) return uri;
  if (await readCurrentVersion(lake, dataset, sourceId(key))) return key;
  return (await legacyLocation(lake, dataset, key, uri)) ?? key;
}

/**
 * The full location a download's source id was made of before ids were by landing key: this landing's
 * (committed, or leased by a run under way or killed), or another landing folder's whose committed
 * record names the same landing key. Only sources of the same file name are read (ids start with it).
 */
async function legacyLocation(
  lake: ObjectStore,
  dataset: string,
  key: string,
  uri: string,
): Promise<string | undefined> {
  const legacy = sourceId(uri);
  if (await readCurrentVersion(lake, dataset, legacy)) return uri;
  if (await lake.head(sourceLeaseKey(dataset, legacy))) return uri;
  const sameName = `${sourcesPrefix(dataset)}source=${sourceId(key).slice(0, -SOURCE_HASH_CHARS)}`;
  for await (const object of lake.list(sameName)) {
    if (!object.key.endsWith('/current.json')) continue;
    const text = await readTextIfPresent(lake, object.key);
    const record = text === undefined ? undefined : parseRecord(object.key, text);
    // The record of a source whose id was made of its full location (not of the key itself).
    if (record && record.sourceId === sourceId(record.uri) && record.uri.endsWith(`/${key}`))
      return record.uri;
  }
  return undefined;
}
