import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { PipelineError } from '../../errors.ts';
import { silverBuildOf } from '../../lake/keys.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import { silverBucketResultKey } from '../../lake/silver-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TablePartialsMerger } from '../../ports/table-writer.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';
import { publishTableFile } from './build-silver.ts';
import { quarantineTable } from './quarantine-table.ts';
import { readGroups, readPlan } from './silver-stages.ts';
import { BucketFile, type BundledPartial, type GroupFile } from './silver-work-files.ts';

export interface MergeSilverBucketInput {
  readonly bronzeManifestKey: string;
  /** This bucket's index, from 0. */
  readonly bucket: number;
  /** The plan's group and bucket counts. */
  readonly groupCount: number;
  readonly bucketCount: number;
}

export interface MergeSilverBucketDeps {
  readonly lake: ObjectStore;
  readonly contract: SilverContract;
  /** Local scratch space: this bucket's partial files and its merged tables, removed at the end. */
  readonly workDir: string;
  /** @default DuckDB's `mergeParquetPartials` */
  readonly mergeTables?: TablePartialsMerger;
}

export interface SilverBucketSummary {
  readonly bucket: number;
  /** Rows written per table, in this bucket. */
  readonly tables: Readonly<Record<string, number>>;
  /** Bytes of partial files this bucket read from the lake. */
  readonly partialBytes: number;
  /** False when an earlier attempt had merged it already. */
  readonly merged: boolean;
}

/** Groups whose byte ranges are read at once. */
const GROUPS_IN_FLIGHT = 4;

/**
 * One merge bucket of a build in groups (the `SilverBucket` Map item): its byte range of each group's
 * bundle of partial files — and nothing of any other bucket — to scratch space, merged and deduplicated
 * per table in group and part order (the same statements, so the same bytes, as one writer given those
 * rows), each table's file published to its key (`part-<bucket>.parquet`), then the bucket's result
 * written last: its commit marker. A bucket whose result exists for this plan is not merged again; a
 * crash before its result leaves files that no manifest names, overwritten by the retry.
 */
export async function mergeSilverBucket(
  input: MergeSilverBucketInput,
  deps: MergeSilverBucketDeps,
): Promise<SilverBucketSummary> {
  const { bucket } = input;
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= input.bucketCount) {
    throw new PipelineError(`silver bucket ${bucket} of ${input.bucketCount}: no such bucket`);
  }
  const resultKey = silverBucketResultKey(dataset, runId, bucket);
  const done = await readJsonIfValid(deps.lake, resultKey, BucketFile);
  if (done && done.bucketCount === input.bucketCount && done.bronzeManifestKey === input.bronzeManifestKey) {
    return { bucket, tables: rowsOf(done), partialBytes: 0, merged: false };
  }
  const plan = await readPlan(deps.lake, bronze, input);
  const groups = await readGroups(deps.lake, bronze, plan);
  const tables = [...deps.contract.tables, quarantineTable];
  const workDir = join(deps.workDir, `silver-${runId}`, `bucket-${bucket}`);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const fetched = await mapInOrder(groups, GROUPS_IN_FLIGHT, (group) =>
      fetchBucketPartials(deps.lake, group, bucket, join(workDir, `group-${group.group}`)),
    );
    const partials: Record<string, string[]> = {};
    for (const table of tables) {
      partials[table.name] = fetched.flatMap((files) =>
        files.filter((f) => f.table === table.name).map((f) => f.file),
      );
    }
    const merge =
      deps.mergeTables ??
      (await import('../../adapters/duckdb/parquet-partials-merge.ts')).mergeParquetPartials;
    const merged = await merge(tables, partials, join(workDir, 'merged'));
    const build = silverBuildOf(bronze);
    const result: BucketFile = {
      bucket,
      bucketCount: input.bucketCount,
      bronzeManifestKey: input.bronzeManifestKey,
      tables: {},
    };
    for (const table of tables) {
      const { rowsWritten, file } = merged[table.name] ?? { rowsWritten: 0 };
      const published = await publishTableFile(deps.lake, build, table.name, bucket, file);
      result.tables[table.name] = published ? { rowsWritten, ...published } : { rowsWritten: 0, bytes: 0 };
    }
    await deps.lake.write(resultKey, `${JSON.stringify(result, null, 2)}\n`, {
      contentType: 'application/json',
    });
    const partialBytes = groups.reduce(
      (sum, group) => sum + bucketEntries(group, bucket).reduce((n, e) => n + e.length, 0),
      0,
    );
    return { bucket, tables: rowsOf(result), partialBytes, merged: true };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

const rowsOf = (result: BucketFile) =>
  Object.fromEntries(Object.entries(result.tables).map(([name, t]) => [name, t.rowsWritten]));

/** A group's partial files of one bucket: one contiguous byte range of its bundle. */
function bucketEntries(group: GroupFile, bucket: number): BundledPartial[] {
  return group.partials.filter((entry) => entry.bucket === bucket);
}

/**
 * Reads the bucket's byte range of a group's bundle (one ranged read) and cuts it into its partial
 * files in `folder`, in bundle order.
 */
async function fetchBucketPartials(
  lake: ObjectStore,
  group: GroupFile,
  bucket: number,
  folder: string,
): Promise<{ readonly table: string; readonly file: string }[]> {
  const entries = bucketEntries(group, bucket);
  if (entries.length === 0 || !group.partialsKey) return [];
  await mkdir(folder, { recursive: true });
  const start = entries[0]!.offset;
  const last = entries.at(-1)!;
  const end = last.offset + last.length;
  const files = entries.map((entry, i) => ({
    table: entry.table,
    file: join(folder, `${String(i).padStart(5, '0')}-${entry.table}.parquet`),
    length: entry.length,
  }));
  await splitInto(
    await lake.read(group.partialsKey, { start, end: end - 1 }),
    files,
    `${group.partialsKey} bytes ${start}-${end - 1}`,
  );
  return files;
}

/** Writes a stream's bytes into the files one after another, each taking its length; the lengths must add up. */
async function splitInto(
  stream: Readable,
  files: readonly { readonly file: string; readonly length: number }[],
  what: string,
): Promise<void> {
  let index = 0;
  let left = files[0]?.length ?? 0;
  let out = createWriteStream(files[0]!.file);
  const close = async (stream: ReturnType<typeof createWriteStream>) => {
    stream.end();
    await finished(stream);
  };
  try {
    for await (const chunk of stream) {
      let data = Buffer.from(chunk as Uint8Array);
      while (data.length > 0) {
        if (index >= files.length) throw new PipelineError(`${what}: more bytes than its partial files`);
        const take = Math.min(left, data.length);
        if (!out.write(data.subarray(0, take)))
          await new Promise<void>((resolve) => out.once('drain', () => resolve()));
        data = data.subarray(take);
        left -= take;
        if (left === 0) {
          await close(out);
          index++;
          if (index < files.length) {
            out = createWriteStream(files[index]!.file);
            left = files[index]!.length;
          }
        }
      }
    }
    if (index < files.length) throw new PipelineError(`${what}: fewer bytes than its partial files`);
  } catch (error) {
    out.destroy();
    throw error;
  }
}

/** `work` of each item, at most `inFlight` at once; results in item order. */
async function mapInOrder<T, R>(
  items: readonly T[],
  inFlight: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, worker));
  return results;
}
