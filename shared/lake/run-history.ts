import { join } from 'node:path';
import { z } from 'zod';
import { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { parseExact } from '../contracts/exact-json.ts';
import { IngestCheckpoint } from '../contracts/ingest-checkpoint.ts';
import type { DeadLetter } from '../ports/dead-letter-store.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { normalizeSourceUrl } from '../stages/download/landing-key.ts';
import { sourceId, sourceIdOfRun, sourceLeaseKey } from './keys.ts';
import { readJsonIfValid } from './read-json.ts';
import {
  listCommittedVersions,
  listCurrentVersions,
  readCurrentVersion,
  type SourceVersionRecord,
} from './source-commits.ts';
import { isLive, SourceLease } from './source-lease.ts';

/**
 * The runs of a lake, told from what the lake holds: each bronze run folder (its manifest, checkpoint,
 * reconciliation report and run report), the commit records under `_sources/` (which run each version
 * came from, and which later runs found the same bytes), the sources' leases (a run in progress), and
 * the dead letters (a run that failed, with its error). Nothing is recorded for this listing alone.
 */

export const RUN_STATUSES = [
  'committed',
  'replaced',
  'failed',
  'unchanged',
  'in progress',
  'interrupted',
] as const;
/**
 * - committed: its version is the source's current one; replaced: it was, until a newer one;
 * - failed: reconciliation failed, or the run was dead-lettered; unchanged: the source's current version
 *   had its bytes already; in progress: it holds the source's lease; interrupted: stopped before its
 *   commit without a recorded failure (killed): running it again resumes it.
 */
export type RunStatus = (typeof RUN_STATUSES)[number];

export interface RunEntry {
  readonly dataset: string;
  /** The bronze run (`bronzeRunId`); for a run that failed before it had one, the dead letter's id. */
  readonly runId: string;
  readonly sourceId: string;
  /** Where the source was read from (its URL for a download). */
  readonly source: string;
  readonly version?: string;
  readonly status: RunStatus;
  /** Records parsed, over every record path. */
  readonly records?: number;
  readonly quality?: number;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly durationMs?: number;
  /** The parse continued from a checkpoint an interrupted run had left. */
  readonly resumed?: boolean;
  /** Why it failed. */
  readonly error?: string;
  /** The key of its run report, when it has one. */
  readonly reportKey?: string;
  /**
   * A rebuild of the run's version (`sluice rebuild`): the silver build it made. Its reconciliation and
   * report are its own (`rebuildEvidencePrefix`); `status` says whether that build is current (committed),
   * was and is not any more (replaced), failed, or stopped before its commit (interrupted).
   */
  readonly build?: string;
}

export interface RunFilter {
  readonly dataset?: string;
  readonly status?: RunStatus;
}

/** What one bronze run folder holds. */
interface RunFolder {
  dataset: string;
  runId: string;
  manifestKey?: string;
  checkpointKey?: string;
  reconciliationKey?: string;
  reportKey?: string;
  /** When its first object was written: the start of a run killed before it wrote a manifest or checkpoint. */
  firstWrittenAt?: Date;
  /** Rebuilds of the run's version: each build's reconciliation and report keys. */
  rebuilds: Map<string, { reconciliationKey?: string; reportKey?: string }>;
}

const Reconciliation = z.object({
  status: z.enum(['passed', 'failed']),
  quality: z.object({ score: z.number() }),
  checkedAt: z.string(),
  checks: z.array(z.object({ name: z.string(), ok: z.boolean() })),
  quarantine: z.object({ ok: z.boolean(), quarantined: z.number(), records: z.number() }).optional(),
  silverManifestKey: z.string().optional(),
});

/** The runs of the lake, newest first. `deadLetters`: the lake's failed executions (locally, its folder). */
export async function listRuns(
  lake: ObjectStore,
  options: RunFilter & { readonly deadLetters?: readonly DeadLetter[]; readonly now?: Date } = {},
): Promise<RunEntry[]> {
  const now = options.now ?? new Date();
  const folders = await runFolders(lake, options.dataset);
  const datasets = [...new Set([...folders.values()].map((f) => f.dataset))];
  const commits = new Map<string, { record: SourceVersionRecord; current: boolean }>();
  const seenAs = new Map<string, SourceVersionRecord>();
  for (const dataset of options.dataset ? [options.dataset] : datasets) {
    const currents = await listCurrentVersions(lake, dataset);
    const current = new Set(currents.map((r) => r.runId));
    // `seenAs` grows on the current record only (its versions/ copy is the record as committed).
    for (const record of [...(await listCommittedVersions(lake, dataset)), ...currents]) {
      commits.set(record.runId, { record, current: current.has(record.runId) });
      for (const run of record.seenAs) seenAs.set(run, record);
    }
  }

  const entries: RunEntry[] = [];
  for (const folder of folders.values()) {
    const commit = commits.get(folder.runId);
    const run = await describeRun(lake, folder, commit, seenAs.has(folder.runId), now);
    entries.push(run);
    for (const [build, keys] of folder.rebuilds) {
      entries.push(await describeRebuild(lake, run, build, keys, commit));
    }
  }
  // Runs that found the same bytes committed and left no folder: their duplicate bronze was removed.
  for (const [runId, record] of seenAs) {
    if (folders.has(runId)) continue;
    entries.push({
      dataset: record.dataset,
      runId,
      sourceId: sourceIdOfRun(runId),
      source: record.url ?? record.uri,
      version: record.version,
      status: 'unchanged',
      ...(record.seenAt?.[runId] !== undefined && {
        startedAt: record.seenAt[runId],
        finishedAt: record.seenAt[runId],
      }),
    });
  }
  const withLetters = attachDeadLetters(entries, options.deadLetters ?? [], options.dataset);
  return withLetters
    .filter((e) => !options.status || e.status === options.status)
    .sort((a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? '') || a.runId.localeCompare(b.runId));
}

/** Every bronze run folder of the lake (or of one dataset), by run id. */
async function runFolders(lake: ObjectStore, dataset: string | undefined): Promise<Map<string, RunFolder>> {
  const folders = new Map<string, RunFolder>();
  const inRunFolder = /^bronze\/([^/]+)\/source=[^/]+\/run=([^/]+)\//;
  const runFile =
    /\/run=[^/]+\/(?:rebuild=([^/]+)\/)?(_manifest\.json|_checkpoint\.json|reconciliation\.json|report\.html)$/;
  for await (const object of lake.list(dataset ? `bronze/${dataset}/` : 'bronze/')) {
    const inRun = inRunFolder.exec(object.key);
    if (!inRun) continue;
    const [, ds, runId] = inRun as unknown as [string, string, string];
    // Any object makes the run: one killed before its checkpoint or manifest left only parts.
    const folder: RunFolder = folders.get(runId) ?? { dataset: ds, runId, rebuilds: new Map() };
    folders.set(runId, folder);
    if (!folder.firstWrittenAt || object.lastModified < folder.firstWrittenAt) {
      folder.firstWrittenAt = object.lastModified;
    }
    const match = runFile.exec(object.key);
    if (!match) continue;
    const [, build, file] = match as unknown as [string, string | undefined, string];
    if (build !== undefined) {
      const rebuild = folder.rebuilds.get(build) ?? {};
      if (file === 'reconciliation.json') rebuild.reconciliationKey = object.key;
      else if (file === 'report.html') rebuild.reportKey = object.key;
      folder.rebuilds.set(build, rebuild);
      continue;
    }
    if (file === '_manifest.json') folder.manifestKey = object.key;
    else if (file === '_checkpoint.json') folder.checkpointKey = object.key;
    else if (file === 'reconciliation.json') folder.reconciliationKey = object.key;
    else folder.reportKey = object.key;
  }
  return folders;
}

async function describeRun(
  lake: ObjectStore,
  folder: RunFolder,
  commit: { record: SourceVersionRecord; current: boolean } | undefined,
  /**
   * A commit names it as a sighting of its version: it found these bytes committed (a file that went
   * back to bytes it had, whose version it made current again as first committed). Its folder stays.
   */
  sighted: boolean,
  now: Date,
): Promise<RunEntry> {
  const bronze = folder.manifestKey
    ? await readJsonIfValid(lake, folder.manifestKey, BronzeManifest, parseExact)
    : undefined;
  const checkpoint = folder.checkpointKey
    ? await readJsonIfValid(lake, folder.checkpointKey, IngestCheckpoint, parseExact)
    : undefined;
  const reconciliation = folder.reconciliationKey
    ? await readJsonIfValid(lake, folder.reconciliationKey, Reconciliation)
    : undefined;
  const source = sourceIdOfRun(folder.runId);
  const lease = await readJsonIfValid(lake, sourceLeaseKey(folder.dataset, source), SourceLease);
  const holdsLease = lease !== undefined && lease.runId === folder.runId && isLive(lease, now);

  // A dataset without silver commits its bronze manifest: the run's end.
  const status: RunStatus = commit
    ? commit.current
      ? 'committed'
      : 'replaced'
    : sighted
      ? 'unchanged'
      : bronze?.silver === false
        ? 'committed'
        : reconciliation?.status === 'failed'
          ? 'failed'
          : holdsLease
            ? 'in progress'
            : 'interrupted';
  const startedAt =
    bronze?.timings.startedAt ?? checkpoint?.startedAt ?? folder.firstWrittenAt?.toISOString();
  const finishedAt =
    commit?.record.committedAt ??
    reconciliation?.checkedAt ??
    (status === 'in progress' ? undefined : bronze?.timings.finishedAt);
  const records = bronze ? Object.values(bronze.records).reduce((n, r) => n + r, 0) : undefined;
  return {
    dataset: folder.dataset,
    runId: folder.runId,
    sourceId: source,
    source: bronze?.source.url ?? bronze?.source.uri ?? commit?.record.uri ?? lease?.location ?? source,
    ...((bronze?.version ?? commit?.record.version) !== undefined && {
      version: bronze?.version ?? commit?.record.version,
    }),
    status,
    ...(records !== undefined && { records }),
    ...(reconciliation && { quality: reconciliation.quality.score }),
    ...(startedAt !== undefined && { startedAt }),
    ...(finishedAt !== undefined && { finishedAt }),
    ...(startedAt !== undefined &&
      finishedAt !== undefined && {
        durationMs: new Date(finishedAt).getTime() - new Date(startedAt).getTime(),
      }),
    resumed: bronze?.timings.resumed ?? checkpoint?.resumed ?? false,
    ...(reconciliation?.status === 'failed' && { error: reconciliationError(reconciliation) }),
    ...(folder.reportKey && { reportKey: folder.reportKey }),
  };
}

/**
 * One rebuild of a run's version, told from its own evidence and the source's current record: committed
 * while its build is the current one; failed when its reconciliation failed; replaced when a later commit
 * of the source came after it; else interrupted (stopped before its commit, or its commit was refused:
 * its dead letter then says why).
 */
async function describeRebuild(
  lake: ObjectStore,
  run: RunEntry,
  build: string,
  keys: { reconciliationKey?: string; reportKey?: string },
  commit: { record: SourceVersionRecord; current: boolean } | undefined,
): Promise<RunEntry> {
  const reconciliation = keys.reconciliationKey
    ? await readJsonIfValid(lake, keys.reconciliationKey, Reconciliation)
    : undefined;
  const current = await readCurrentVersion(lake, run.dataset, run.sourceId);
  const checkedAt = reconciliation?.checkedAt;
  const isCurrent =
    current?.record.silverManifestKey !== undefined &&
    current.record.silverManifestKey === reconciliation?.silverManifestKey;
  const status: RunStatus =
    reconciliation?.status === 'failed'
      ? 'failed'
      : isCurrent && commit?.current
        ? 'committed'
        : current && checkedAt !== undefined && current.record.committedAt > checkedAt
          ? 'replaced'
          : 'interrupted';
  return {
    dataset: run.dataset,
    runId: run.runId,
    sourceId: run.sourceId,
    source: run.source,
    ...(run.version !== undefined && { version: run.version }),
    status,
    build,
    ...(run.records !== undefined && { records: run.records }),
    ...(reconciliation && { quality: reconciliation.quality.score }),
    ...(checkedAt !== undefined && { startedAt: checkedAt, finishedAt: checkedAt }),
    ...(reconciliation?.status === 'failed' && { error: reconciliationError(reconciliation) }),
    ...(keys.reportKey && { reportKey: keys.reportKey }),
  };
}

function reconciliationError(report: z.infer<typeof Reconciliation>): string {
  const failed = report.checks.filter((c) => !c.ok);
  if (failed.length > 0) return `ReconciliationError: ${failed.length} check(s) failed: ${failed[0]!.name}`;
  const q = report.quarantine;
  return q ? `QuarantineThresholdError: ${q.quarantined} of ${q.records} records quarantined` : 'failed';
}

/**
 * A dead letter belongs to the run of its source that was the latest to start before the letter was
 * written, if that run did not commit and no earlier letter took it: that run failed, for the letter's
 * reason. A letter with no such run (it failed before bronze had a run folder: bad input, a failed
 * download) is a failed run of its own, also when an earlier run of the source failed too: two failures
 * are two rows, each with its own error, never one row with the later error.
 */
function attachDeadLetters(
  entries: readonly RunEntry[],
  letters: readonly DeadLetter[],
  dataset: string | undefined,
): RunEntry[] {
  const result = [...entries];
  const claimed = new Set<number>();
  // Oldest first, so that each run takes the first letter written after it started.
  const inOrder = [...letters].sort((a, b) => (a.recordedAt ?? '').localeCompare(b.recordedAt ?? ''));
  for (const letter of inOrder) {
    const input = letter.input as {
      dataset?: unknown;
      bucket?: unknown;
      key?: unknown;
      source?: { url?: unknown; dataset?: unknown };
    };
    // A landed object's execution names its dataset at the top; a URL's, beside the URL.
    const named = typeof input?.dataset === 'string' ? input.dataset : input?.source?.dataset;
    const letterDataset = typeof named === 'string' ? named : '';
    if (dataset && letterDataset !== dataset) continue;
    const location = letterLocation(input);
    const source = location ? sourceId(location) : undefined;
    // A URL's run is told by its URL as its bronze manifest records it (no credentials).
    const url = letterUrl(input);
    const error = `${letter.error.Error}: ${letter.error.Cause ?? ''}`.trim();
    const latest = result
      .map((entry, i) => ({ entry, i }))
      .filter(
        ({ entry }) =>
          (source !== undefined ? entry.sourceId === source : url !== undefined && entry.source === url) &&
          entry.dataset === letterDataset &&
          (entry.startedAt ?? '') <= (letter.recordedAt ?? '\uffff'),
      )
      .sort((a, b) => (b.entry.startedAt ?? '').localeCompare(a.entry.startedAt ?? ''))[0];
    if (
      latest &&
      !claimed.has(latest.i) &&
      (latest.entry.status === 'failed' || latest.entry.status === 'interrupted')
    ) {
      claimed.add(latest.i);
      result[latest.i] = { ...latest.entry, status: 'failed', error };
      continue;
    }
    result.push({
      dataset: letterDataset,
      runId: letter.id,
      sourceId: source ?? '',
      source: location ?? url ?? '(unknown)',
      status: 'failed',
      ...(letter.recordedAt !== undefined && { startedAt: letter.recordedAt, finishedAt: letter.recordedAt }),
      error,
    });
  }
  return result;
}

/** The URL a dead letter's execution input downloads, normalized as a run's manifest records it. */
function letterUrl(input: { source?: { url?: unknown } }): string | undefined {
  const url = input?.source?.url;
  if (typeof url !== 'string') return undefined;
  try {
    return normalizeSourceUrl(url);
  } catch {
    return url;
  }
}

/** The location a dead letter's execution input names: a landed object (local folder or S3 bucket). */
function letterLocation(input: { bucket?: unknown; key?: unknown }): string | undefined {
  if (typeof input?.bucket !== 'string' || typeof input.key !== 'string') return undefined;
  return input.bucket.startsWith('/') ? join(input.bucket, input.key) : `s3://${input.bucket}/${input.key}`;
}
