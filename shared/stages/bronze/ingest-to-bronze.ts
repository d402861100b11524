import { createHash } from 'node:crypto';
import { type BronzeManifest, PARSER_VERSION } from '../../contracts/bronze-manifest.ts';
import { type DatasetConfig, headerTargets, recordTargets } from '../../contracts/dataset-config.ts';
import { bronzeManifestKey, bronzePartKey, bronzeRunPrefix, sourceId } from '../../lake/keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { JsonRecordScanner } from '../parse/json-record-scanner.ts';
import { openSource } from '../parse/open-source.ts';
import { compilePaths } from '../parse/record-paths.ts';
import { type RecordSource, readCsvRecords } from './csv-records.ts';
import { asciiJson, BlockCompressor, type BronzePart, PartWriter } from './part-writer.ts';

export interface IngestToBronzeInput {
  readonly dataset: DatasetConfig;
  /** Key of the source object in the `source` store. */
  readonly sourceKey: string;
}

export interface IngestProgress {
  readonly storedBytesRead: number;
  readonly storedBytesTotal: number;
  readonly uncompressedBytes: number;
  readonly records: number;
}

export interface IngestToBronzeDeps {
  /** Where the source lives (the landing area). */
  readonly source: ObjectStore;
  /** Where bronze is written (the lake). */
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Called after each input chunk. */
  readonly onProgress?: (progress: IngestProgress) => void;
}

export interface IngestToBronzeResult {
  readonly runId: string;
  readonly dataset: string;
  readonly status: 'committed';
  readonly manifestKey: string;
  readonly manifestUri: string;
  readonly manifest: BronzeManifest;
}

/** Parts whose upload may be pending at once: bounds memory while compression overlaps scanning. */
const MAX_UPLOADS_IN_FLIGHT = 2;

/**
 * Parse a source and write its records to bronze: immutable NDJSON.gz parts, then the manifest as the
 * commit marker. Any existing manifest of the same source is removed first and the parts are
 * rewritten under the same keys, so a crash at any point leaves nothing that looks committed and a
 * rerun produces the same objects. On failure the run's partial parts are removed.
 */
export async function ingestToBronze(
  input: IngestToBronzeInput,
  deps: IngestToBronzeDeps,
): Promise<IngestToBronzeResult> {
  const { dataset, sourceKey } = input;
  const startedAt = deps.clock.now();
  const opened = await openSource(deps.source, sourceKey);
  const uri = deps.source.uri(sourceKey);
  const runId = sourceId({ uri, size: opened.info.size, etag: opened.info.etag });
  const prefix = bronzeRunPrefix(dataset.name, runId);
  const manifestKey = bronzeManifestKey(dataset.name, runId);
  await deps.lake.delete(manifestKey);

  const targets = recordTargets(dataset);
  const compressor = new BlockCompressor(dataset.bronze.compressionLevel);
  const uploads: Promise<BronzePart>[] = [];
  const parts: BronzePart[] = [];
  const writers = targets.map(
    (target) =>
      new PartWriter({
        store: deps.lake,
        recordName: target.name,
        partKey: (part) => bronzePartKey(dataset.name, runId, target.name, part),
        maxRecords: dataset.bronze.partMaxRecords,
        maxBytes: dataset.bronze.partMaxBytes,
        compressor,
        sourceJson: asciiJson(uri),
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

  const records: RecordSource =
    dataset.format === 'csv'
      ? readCsvRecords(opened.chunks, dataset, uri)
      : scanJsonRecords(opened.chunks, dataset, uri);
  try {
    let total = 0;
    for await (const batch of records.batches((target, index, offset, bytes) => {
      writers[target]!.add(index, offset, bytes);
      total++;
    })) {
      deps.onProgress?.({
        storedBytesRead: opened.storedBytesRead(),
        storedBytesTotal: opened.info.size,
        uncompressedBytes: batch.bytesScanned,
        records: total,
      });
      await waitForCapacity();
    }
    for (const writer of writers) writer.finish();
    parts.push(...(await Promise.all(uploads.splice(0))));
  } catch (error) {
    await Promise.allSettled(uploads);
    await removeAll(deps.lake, prefix);
    throw error;
  }

  // Parts of an earlier, larger attempt at this source must not linger beside the new ones.
  const written = new Set(parts.map((p) => p.key));
  for await (const object of deps.lake.list(prefix)) {
    if (!written.has(object.key) && object.key !== manifestKey) await deps.lake.delete(object.key);
  }

  const order = new Map(targets.map((t, i) => [t.name, i]));
  parts.sort((a, b) => order.get(a.recordName)! - order.get(b.recordName)! || a.part - b.part);
  const finishedAt = deps.clock.now();
  const manifest: BronzeManifest = {
    manifestVersion: 1,
    runId,
    dataset: dataset.name,
    datasetConfigSha256: createHash('sha256').update(JSON.stringify(dataset)).digest('hex'),
    source: {
      uri,
      size: opened.info.size,
      etag: opened.info.etag,
      sha256: opened.sha256(),
      compression: opened.compression,
      format: dataset.format,
      uncompressedBytes: records.bytesScanned(),
    },
    headers: records.headers(),
    records: Object.fromEntries(targets.map((t, i) => [t.name, records.recordCounts()[i] ?? 0])),
    parts,
    parser: PARSER_VERSION,
    timings: {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
    },
  };
  await deps.lake.write(manifestKey, `${JSON.stringify(manifest, null, 2)}\n`, {
    contentType: 'application/json',
  });
  return {
    runId,
    dataset: dataset.name,
    status: 'committed',
    manifestKey,
    manifestUri: deps.lake.uri(manifestKey),
    manifest,
  };
}

/** JSON and NDJSON records, cut out by the byte-level scanner. */
function scanJsonRecords(chunks: AsyncIterable<Buffer>, dataset: DatasetConfig, uri: string): RecordSource {
  const paths = compilePaths(recordTargets(dataset), headerTargets(dataset));
  let scanner: JsonRecordScanner | undefined;
  return {
    async *batches(onRecord) {
      const format = dataset.format === 'ndjson' ? 'ndjson' : 'json';
      const { maxRecordBytes, maxDepth } = dataset.limits;
      const active = new JsonRecordScanner(
        { source: uri, format, paths, maxRecordBytes, maxDepth },
        onRecord,
      );
      scanner = active;
      for await (const chunk of chunks) {
        active.write(chunk);
        yield { bytesScanned: active.bytesScanned };
      }
      active.end();
    },
    bytesScanned: () => scanner?.bytesScanned ?? 0,
    recordCounts: () => scanner?.recordCounts ?? [],
    headers: () => scanner?.headers ?? {},
  };
}

async function removeAll(store: ObjectStore, prefix: string): Promise<void> {
  for await (const object of store.list(prefix)) await store.delete(object.key);
}
