import {
  type BronzeManifest,
  BronzeManifest as BronzeManifestSchema,
  PARSER_VERSION,
} from '../../contracts/bronze-manifest.ts';
import {
  type DatasetConfig,
  datasetConfigSha256,
  headerTargets,
  parseSettingsOf,
  recordTargets,
} from '../../contracts/dataset-config.ts';
import { contractForDataset } from '../../contracts/datasets/silver-contracts.ts';
import { parseExact, stringifyLossless } from '../../contracts/exact-json.ts';
import { IngestCheckpoint } from '../../contracts/ingest-checkpoint.ts';
import {
  MalformedInputError,
  MissingRecordPathError,
  NestingTooDeepError,
  ObjectNotFoundError,
  PipelineError,
  RecordTooLargeError,
  SourceModifiedError,
} from '../../errors.ts';
import {
  bronzeManifestKey,
  bronzePartKey,
  bronzeRunId,
  bronzeRunPrefix,
  ingestCheckpointKey,
  sourceId,
  sourceVersion,
} from '../../lake/keys.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import {
  type CurrentVersion,
  readCurrentVersion,
  recordSeenAs,
  sourceIdentity,
} from '../../lake/source-commits.ts';
import {
  holdSourceLease,
  type LeaseProcess,
  leaseDepsOf,
  releaseSourceLease,
} from '../../lake/source-lease.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';
import type { RunLiveness } from '../../ports/run-liveness.ts';
import { JsonRecordScanner, type ScannerSnapshot } from '../parse/json-record-scanner.ts';
import { openResumableSource, type ResumableSource } from '../parse/open-resumable-source.ts';
import { detectCompression, type OpenedSource, openSource } from '../parse/open-source.ts';
import { compilePaths } from '../parse/record-paths.ts';
import { type RecordSource, readCsvRecords } from './csv-records.ts';
import { asciiJson, BlockCompressor, type BronzePart, PartWriter } from './part-writer.ts';
import { checkRecordPaths } from './record-path-check.ts';

export interface IngestToBronzeInput {
  readonly dataset: DatasetConfig;
  /** Key of the source object in the `source` store. */
  readonly sourceKey: string;
  /** For a download: the URL it came from, without credentials (recorded in the manifest). */
  readonly sourceUrl?: string;
  /**
   * Who holds the source's lease for this run (the execution id): each slice takes or renews it, and
   * fails with `SourceBusyError` while another run holds it. Absent: no lease (tests of the stage alone).
   */
  readonly leaseHolder?: string;
}

export interface IngestProgress {
  readonly storedBytesRead: number;
  readonly storedBytesTotal: number;
  readonly uncompressedBytes: number;
  readonly records: number;
  /** Slices completed before this one (0 in the first slice). */
  readonly slicesDone: number;
}

/**
 * When a slice should end. Asked at every segment boundary (see `bronze.segmentBytes`), with how far the
 * slice got: the Lambda handler stops when its remaining time runs low (or past `ingest.sliceMaxMb`),
 * tests stop after every segment. A download asks after every part, without progress.
 */
export interface SliceBudget {
  shouldStop(progress?: SliceProgress): boolean;
}

/** How far a slice got, at a segment boundary. */
export interface SliceProgress {
  /** Uncompressed bytes of the source this slice has scanned. */
  readonly sliceBytes: number;
}

export interface IngestToBronzeDeps {
  /** Where the source lives (the landing area). */
  readonly source: ObjectStore;
  /** Where bronze is written (the lake). */
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Called after each input chunk. */
  readonly onProgress?: (progress: IngestProgress) => void;
  /**
   * Work in slices: stop at a segment boundary once the budget says so and return a checkpoint. Without
   * a budget the run goes to the end in one slice (and, unless resuming a checkpoint, reads gzip with
   * Node's native zlib, which is faster than the resumable reader).
   */
  readonly budget?: SliceBudget;
  /** The lease records this process, so a run killed here frees its source at once (local runs). */
  readonly localLease?: LeaseProcess;
  /** Whether another lease holder has ended (on AWS: its execution), so its lease is free at once. */
  readonly runLiveness?: RunLiveness;
}

export interface IngestToBronzeResult {
  readonly runId: string;
  readonly dataset: string;
  readonly status: 'committed';
  readonly manifestKey: string;
  readonly manifestUri: string;
  readonly manifest: BronzeManifest;
  /** Slices the run took, this one included (0: the run's bronze was committed already, and reused). */
  readonly slices: number;
  /** The bronze was committed by an earlier, interrupted run of the same object: reused, not re-read. */
  readonly reused: boolean;
  /**
   * How the last slice read the source: Node's native zlib (one slice, the fast way) or the resumable
   * reader that slicing needs (≈ 3× slower). Absent when the bronze was reused.
   */
  readonly reader?: 'native' | 'resumable';
}

/**
 * The source's current version holds these very bytes (under the same dataset config): nothing to do.
 * Known without reading when this stored object was ingested before; else after reading it, in which
 * case this run's duplicate bronze is removed.
 */
export interface IngestUnchangedResult {
  readonly runId: string;
  readonly dataset: string;
  readonly status: 'unchanged';
  readonly sourceId: string;
  readonly version: string;
  /** The run that committed the current version, and when. */
  readonly currentRunId: string;
  readonly committedAt: string;
  /** The current version's bronze manifest (a table of contents fans out from it again). */
  readonly currentManifestKey: string;
  /** Whether the source had to be read to know. */
  readonly read: boolean;
}

/** A slice that stopped at its budget: the run continues from `checkpointKey`. */
/** What one slice of an ingest did: committed the run, stopped at its budget, or found it unchanged. */
export type IngestSliceResult = IngestToBronzeResult | IngestSlicedResult | IngestUnchangedResult;

export interface IngestSlicedResult {
  readonly runId: string;
  readonly dataset: string;
  readonly status: 'sliced';
  readonly checkpointKey: string;
  readonly slices: number;
  readonly progress: IngestProgress;
}

/** Parts whose upload may be pending at once: bounds memory while compression overlaps scanning. */
const MAX_UPLOADS_IN_FLIGHT = 2;

/**
 * Parse a source to bronze completely, slice after slice: what `sluice run` and tests call when they
 * do not care how the work is cut.
 */
export async function ingestToBronze(
  input: IngestToBronzeInput,
  deps: IngestToBronzeDeps,
): Promise<IngestToBronzeResult> {
  for (;;) {
    const result = await ingestSlice(input, deps);
    if (result.status === 'committed') return result;
    if (result.status === 'unchanged') {
      throw new PipelineError(
        `${input.sourceKey}: unchanged, version ${result.version} is current (run ${result.currentRunId})`,
      );
    }
  }
}

/**
 * One slice of parsing a source into bronze: immutable NDJSON.gz parts, then the manifest as the
 * commit marker. A slice starts where the source's checkpoint (if any) left off and ends at the end of
 * the source (commit) or at the first segment boundary after its budget runs out (checkpoint).
 *
 * Parts are sealed at every segment boundary, so they are the same however the run is sliced, and a
 * checkpoint lists only durable parts. A crash at any point leaves nothing that looks committed; the
 * rerun resumes from the last checkpoint (or starts over) and rewrites the same keys. A source that
 * turns out malformed has all its partial output removed.
 *
 * Exactly once: each slice takes or renews the source's lease (`leaseHolder`). A stored object whose
 * bronze is committed already is reused, not read again; and when the source's current version holds the
 * same bytes under the same config, the run ends `unchanged` — at once if this very object was seen
 * before, else after reading it (its duplicate bronze is then removed).
 */
export async function ingestSlice(
  input: IngestToBronzeInput,
  deps: IngestToBronzeDeps,
): Promise<IngestSliceResult> {
  const { dataset, sourceKey } = input;
  const info = await deps.source.head(sourceKey);
  if (!info) throw new ObjectNotFoundError(sourceKey);
  const uri = deps.source.uri(sourceKey);
  const identity = await sourceIdentity(deps.lake, dataset.name, sourceKey, uri);
  const source = sourceId(identity);
  const configSha256 = datasetConfigSha256(dataset);
  const runId = bronzeRunId(
    { location: identity, size: info.size, etag: info.etag, changeTag: info.changeTag },
    configSha256,
  );
  const prefix = bronzeRunPrefix(dataset.name, runId);
  const manifestKey = bronzeManifestKey(dataset.name, runId);
  const checkpointKey = ingestCheckpointKey(dataset.name, runId);
  const lease = input.leaseHolder && {
    dataset: dataset.name,
    sourceId: source,
    location: input.sourceUrl ?? uri,
    holder: input.leaseHolder,
    runId,
  };
  const leaseDeps = leaseDepsOf(deps);
  const csv = dataset.format === 'csv';
  if (lease) {
    // A later slice of this run must still hold the lease it took: if another run took it over (this one
    // stalled past its expiry) and has let go since, it may have committed meanwhile, and this run must
    // stop rather than commit over it.
    const before = await readCheckpoint(deps.lake, checkpointKey, { runId, configSha256, info, csv });
    await holdSourceLease(lease, leaseDeps, { mustHold: before?.holder === input.leaseHolder });
  }
  const current = await readCurrentVersion(deps.lake, dataset.name, source);
  // This very object was ingested before and its version is current: nothing to read.
  if (
    current?.record.datasetConfigSha256 === configSha256 &&
    (current.record.runId === runId || current.record.seenAs.includes(runId))
  ) {
    if (lease) await releaseSourceLease(lease, leaseDeps);
    return unchanged(dataset.name, runId, current, false);
  }
  const checkpoint = await readCheckpoint(deps.lake, checkpointKey, { runId, configSha256, info, csv });
  if (!checkpoint) {
    // An earlier run of this object committed its bronze and stopped later (in silver, say): reuse it.
    const committed = await readCommittedBronze(deps.lake, manifestKey, configSha256);
    if (committed) {
      const result = await afterCommit(committed, current, deps, { slices: 0, reused: true });
      if (lease && result.status === 'unchanged') await releaseSourceLease(lease, leaseDeps);
      return result;
    }
    await deps.lake.delete(manifestKey);
  }
  const startedAt = checkpoint?.startedAt ?? deps.clock.now().toISOString();
  const slicesDone = checkpoint?.slices ?? 0;
  // Resumed: continuing a checkpoint that another run (a killed process, an earlier execution) left.
  const resumed =
    checkpoint !== undefined && (checkpoint.resumed === true || checkpoint.holder !== input.leaseHolder);

  const targets = recordTargets(dataset);
  const compressor = new BlockCompressor(dataset.bronze.compressionLevel);
  const uploads: Promise<BronzePart>[] = [];
  const parts: BronzePart[] = [...(checkpoint?.parts ?? [])];
  const writers = targets.map(
    (target, i) =>
      new PartWriter({
        store: deps.lake,
        recordName: target.name,
        partKey: (part) => bronzePartKey(dataset.name, runId, target.name, part),
        maxRecords: dataset.bronze.partMaxRecords,
        maxBytes: dataset.bronze.partMaxBytes,
        compressor,
        sourceJson: asciiJson(uri),
        firstPart: checkpoint?.nextPart[i] ?? 0,
        onPartSealed: (upload) => {
          upload.catch(() => {}); // awaited below; this only keeps Node from reporting it as unhandled
          uploads.push(upload);
        },
      }),
  );
  const waitForCapacity = async () => {
    while (uploads.length >= MAX_UPLOADS_IN_FLIGHT) parts.push(await uploads.shift()!);
    await compressor.drain();
  };

  const sliced = deps.budget !== undefined || checkpoint !== undefined;
  const opened: OpenedSource | ResumableSource = sliced
    ? await openResumableSource(
        deps.source,
        sourceKey,
        info,
        checkpoint
          ? checkpoint.resume.gunzip
            ? 'gzip'
            : 'none'
          : await detectCompression(deps.source, sourceKey, info.size),
        checkpoint?.resume,
      )
    : await openSource(deps.source, sourceKey);
  const { compression } = opened;
  const segmentBytes = dataset.bronze.segmentBytes;
  let nextSegmentAt = checkpoint?.nextSegmentAt ?? segmentBytes;
  const sliceStart = checkpoint?.resume.position ?? 0;
  let paused = false;
  const csvRecords = csv
    ? readCsvRecords(opened.chunks, dataset, uri, {
        resume: checkpoint?.csv && { position: checkpoint.resume.position, ...checkpoint.csv },
      })
    : undefined;
  const json = csvRecords
    ? undefined
    : scanJsonRecords(opened.chunks, dataset, uri, checkpoint?.scanner, () => paused);
  const records: RecordSource = csvRecords ?? json!;
  try {
    let total = checkpoint ? sum(checkpoint.scanner?.recordCounts ?? [checkpoint.csv?.records ?? 0]) : 0;
    const progress = (bytesScanned: number): IngestProgress => ({
      storedBytesRead: opened.storedBytesRead(),
      storedBytesTotal: info.size,
      uncompressedBytes: bytesScanned,
      records: total,
      slicesDone,
    });
    const onRecord = (target: number, index: number, offset: number, bytes: Buffer) => {
      writers[target]!.add(index, offset, bytes);
      total++;
      const end = offset + bytes.length;
      if (end < nextSegmentAt) return;
      // A segment boundary: seal every part, so no part spans two segments (or two slices).
      for (const writer of writers) writer.finish();
      nextSegmentAt = (Math.floor(end / segmentBytes) + 1) * segmentBytes;
      if (deps.budget?.shouldStop({ sliceBytes: end - sliceStart })) paused = records.pause();
    };
    for await (const batch of records.batches(onRecord)) {
      deps.onProgress?.(progress(batch.bytesScanned));
      await waitForCapacity();
    }
    await assertUnmodified(deps.source, sourceKey, uri, info);
    if (paused) {
      parts.push(...(await Promise.all(uploads.splice(0))));
      const scanned = records.bytesScanned();
      const next: IngestCheckpoint = {
        checkpointVersion: 1,
        runId,
        datasetConfigSha256: configSha256,
        parser: PARSER_VERSION,
        source: { size: info.size, etag: info.etag },
        slices: slicesDone + 1,
        startedAt,
        ...(input.leaseHolder !== undefined && { holder: input.leaseHolder }),
        ...(resumed && { resumed }),
        resume: (opened as ResumableSource).resumePoint(scanned),
        ...(json ? { scanner: json.scanner()!.snapshot() } : { csv: csvRecords!.resumeState() }),
        nextSegmentAt,
        nextPart: writers.map((w) => w.nextPart),
        parts,
      };
      await deps.lake.write(checkpointKey, stringifyLossless(next), { contentType: 'application/json' });
      return {
        runId,
        dataset: dataset.name,
        status: 'sliced',
        checkpointKey,
        slices: next.slices,
        progress: progress(scanned),
      };
    }
    if (dataset.format !== 'json' && total === 0 && !dataset.allowEmpty) throw emptyFileError(dataset, uri);
    for (const writer of writers) writer.finish();
    parts.push(...(await Promise.all(uploads.splice(0))));
  } catch (error) {
    await Promise.allSettled(uploads);
    // Bad input cannot get better: remove everything. Anything else (a network error, a timeout) may
    // pass, so a checkpointed run keeps its durable parts and checkpoint for the retry to resume from.
    const badInput =
      error instanceof MalformedInputError ||
      error instanceof RecordTooLargeError ||
      error instanceof MissingRecordPathError ||
      error instanceof NestingTooDeepError ||
      error instanceof SourceModifiedError;
    if (badInput || !checkpoint) await removeRunOutput(deps.lake, prefix, () => false);
    throw error;
  }

  // Parts of an earlier, larger attempt at this source must not linger beside the new ones.
  const written = new Set(parts.map((p) => p.key));
  await removeRunOutput(
    deps.lake,
    prefix,
    (key) => written.has(key) || key === manifestKey || key === checkpointKey,
  );

  const order = new Map(targets.map((t, i) => [t.name, i]));
  parts.sort((a, b) => order.get(a.recordName)! - order.get(b.recordName)! || a.part - b.part);
  const finishedAt = deps.clock.now();
  const sha256 = opened.sha256();
  const skipped = records.skipped?.();
  const manifest: BronzeManifest = {
    manifestVersion: 2,
    runId,
    dataset: dataset.name,
    sourceId: source,
    version: sourceVersion(sha256),
    datasetConfigSha256: configSha256,
    parse: parseSettingsOf(dataset),
    source: {
      uri,
      ...(input.sourceUrl !== undefined && { url: input.sourceUrl }),
      size: info.size,
      etag: info.etag,
      sha256,
      compression,
      format: dataset.format,
      uncompressedBytes: records.bytesScanned(),
    },
    headers: records.headers(),
    records: Object.fromEntries(targets.map((t, i) => [t.name, records.recordCounts()[i] ?? 0])),
    ...(skipped && skipped.count > 0 && { skipped: { count: skipped.count, values: [...skipped.values] } }),
    parts,
    parser: PARSER_VERSION,
    silver: contractForDataset(dataset) !== undefined,
    timings: {
      startedAt,
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - new Date(startedAt).getTime(),
      resumed,
    },
  };
  await deps.lake.write(manifestKey, `${stringifyLossless(manifest, 2)}\n`, {
    contentType: 'application/json',
  });
  await deps.lake.delete(checkpointKey);
  const committed = { manifestKey, manifest };
  const result = await afterCommit(committed, current, deps, {
    slices: slicesDone + 1,
    reused: false,
    reader: sliced ? 'resumable' : 'native',
  });
  // An unchanged source ends its run here: let the next one in.
  if (lease && result.status === 'unchanged') await releaseSourceLease(lease, leaseDeps);
  return result;
}

/**
 * The source is still the object this slice was planned on: a file rewritten in place while it was read
 * (`cat new > file`, an export still being written) yields bytes of no one version, which must not be
 * committed as one. Its size, ETag and change tag are compared with the ones the run id was made of.
 */
async function assertUnmodified(
  store: ObjectStore,
  key: string,
  uri: string,
  before: { size: number; etag: string; changeTag?: string },
): Promise<void> {
  const after = await store.head(key);
  if (!after) throw new SourceModifiedError(uri, 'it is gone');
  if (after.size !== before.size) {
    throw new SourceModifiedError(uri, `${before.size} bytes when the run began, ${after.size} now`);
  }
  if (after.etag !== before.etag || after.changeTag !== before.changeTag) {
    throw new SourceModifiedError(uri, 'it was written to since the run began');
  }
}

/** An ndjson or csv file without a single record: a run of it would succeed having ingested nothing. */
function emptyFileError(dataset: DatasetConfig, uri: string): MissingRecordPathError {
  return new MissingRecordPathError(
    uri,
    '[*]',
    dataset.format === 'csv'
      ? 'the file has no records: no rows after the header row'
      : 'the file has no records: no lines that hold a value',
    'if files without records are expected, set "allowEmpty": true in the dataset config (--config); ' +
      'otherwise the file is incomplete (a failed or truncated export) or not the one meant',
  );
}

/**
 * A committed bronze run: new work for silver, unless the source's current version holds the same bytes
 * under the same config. Then this run was a duplicate (a touched or re-uploaded file): its bronze goes,
 * and the current version remembers this object, so the next run of it is known unchanged unread.
 */
async function afterCommit(
  committed: { readonly manifestKey: string; readonly manifest: BronzeManifest },
  current: CurrentVersion | undefined,
  deps: IngestToBronzeDeps,
  run: Pick<IngestToBronzeResult, 'slices' | 'reused' | 'reader'>,
): Promise<IngestToBronzeResult | IngestUnchangedResult> {
  const { manifest, manifestKey } = committed;
  const { dataset, runId } = manifest;
  if (
    current &&
    current.record.sha256 === manifest.source.sha256 &&
    current.record.datasetConfigSha256 === manifest.datasetConfigSha256
  ) {
    if (current.record.runId !== runId) {
      await recordSeenAs(deps.lake, current, runId, deps.clock.now());
      await removeRunOutput(deps.lake, bronzeRunPrefix(dataset, runId), () => false);
    }
    return unchanged(dataset, runId, current, true);
  }
  return {
    runId,
    dataset,
    status: 'committed',
    manifestKey,
    manifestUri: deps.lake.uri(manifestKey),
    manifest,
    ...run,
  };
}

function unchanged(
  dataset: string,
  runId: string,
  current: CurrentVersion,
  read: boolean,
): IngestUnchangedResult {
  const { record } = current;
  return {
    runId,
    dataset,
    status: 'unchanged',
    sourceId: record.sourceId,
    version: record.version,
    currentRunId: record.runId,
    committedAt: record.committedAt,
    currentManifestKey: record.bronzeManifestKey,
    read,
  };
}

/** The run's bronze manifest, if it is committed under this config and parser (else it is redone). */
async function readCommittedBronze(
  lake: ObjectStore,
  manifestKey: string,
  configSha256: string,
): Promise<{ manifestKey: string; manifest: BronzeManifest } | undefined> {
  const manifest = await readJsonIfValid(lake, manifestKey, BronzeManifestSchema, parseExact);
  const same = manifest?.datasetConfigSha256 === configSha256 && manifest.parser === PARSER_VERSION;
  return same ? { manifestKey, manifest } : undefined;
}

/**
 * The source's checkpoint, if there is one this run can resume: same source version, dataset config and
 * parser. Anything else (none, stale, unreadable) means starting from the beginning.
 */
async function readCheckpoint(
  lake: ObjectStore,
  key: string,
  expected: { runId: string; configSha256: string; info: ObjectInfo; csv: boolean },
): Promise<IngestCheckpoint | undefined> {
  const c = await readJsonIfValid(lake, key, IngestCheckpoint, parseExact);
  const matches =
    c !== undefined &&
    c.runId === expected.runId &&
    c.datasetConfigSha256 === expected.configSha256 &&
    c.parser === PARSER_VERSION &&
    c.source.size === expected.info.size &&
    c.source.etag === expected.info.etag &&
    // The reader's state of the dataset's format: a CSV's columns, else the scanner's.
    (expected.csv ? c.csv !== undefined : c.scanner !== undefined);
  return matches ? c : undefined;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/**
 * JSON and NDJSON records, cut out by the byte-level scanner, which continues from `resume` when given.
 * Iteration ends early, right after the chunk in which the record handler paused the scanner.
 */
function scanJsonRecords(
  chunks: AsyncIterable<Buffer>,
  dataset: DatasetConfig,
  uri: string,
  resume: ScannerSnapshot | undefined,
  paused: () => boolean,
): RecordSource & { scanner: () => JsonRecordScanner | undefined } {
  const paths = compilePaths(recordTargets(dataset), headerTargets(dataset));
  let scanner: JsonRecordScanner | undefined;
  return {
    async *batches(onRecord) {
      const format = dataset.format === 'ndjson' ? 'ndjson' : 'json';
      const { maxRecordBytes, maxDepth } = dataset.limits;
      const options = { source: uri, format, paths, maxRecordBytes, maxDepth } as const;
      const active = resume
        ? JsonRecordScanner.restore(options, onRecord, resume)
        : new JsonRecordScanner(options, onRecord);
      scanner = active;
      // A required record path that is missing or of the wrong kind fails the run: as soon as that is
      // certain, else at the end of the document.
      const checkPaths = (final: boolean) => {
        const problem = checkRecordPaths(dataset, paths, active, uri, final);
        if (problem) throw problem;
      };
      for await (const chunk of chunks) {
        active.write(chunk);
        checkPaths(false);
        yield { bytesScanned: active.bytesScanned };
        if (paused()) return;
      }
      active.end();
      checkPaths(true);
    },
    scanner: () => scanner,
    bytesScanned: () => scanner?.bytesScanned ?? 0,
    recordCounts: () => scanner?.recordCounts ?? [],
    headers: () => scanner?.headers ?? {},
    pause: () => scanner?.pause() ?? false,
    skipped: () => ({ values: scanner?.skipped ?? [], count: scanner?.skippedCount ?? 0 }),
  };
}

/**
 * Remove what a run of this source writes — parts, manifest, checkpoint, reconciliation report — except
 * the keys to `keep`. Anything else under the run's prefix (a table of contents' fan-out reports) belongs
 * to other work and stays.
 */
async function removeRunOutput(store: ObjectStore, prefix: string, keep: (key: string) => boolean) {
  for await (const object of store.list(prefix)) {
    const name = object.key.slice(prefix.length);
    const ours = RUN_OUTPUT.test(name);
    if (ours && !keep(object.key)) await store.delete(object.key);
  }
}

/** Keys (relative to the run's prefix) that a bronze run writes: see shared/lake/keys.ts. */
const RUN_OUTPUT = /^(?:[^/]+\/part-\d+\.ndjson\.gz|_manifest\.json|_checkpoint\.json|reconciliation\.json)$/;
