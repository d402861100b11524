import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { PipelineError } from '../../errors.ts';
import { mapInPool } from '../../in-pool.ts';
import { silverBuildOf } from '../../lake/keys.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import { silverBucketResultKey } from '../../lake/silver-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TablePartialsMerger } from '../../ports/table-writer.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';
import { publishTableFile } from './build-silver.ts';
import { quarantineTable } from './quarantine-table.ts';
import { readGroups, readPlan } from './silver-stages.ts';
import { BucketFile, type BucketSection, type GroupFile, SectionIndex } from './silver-work-files.ts';

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
 * One merge bucket of a build in groups (the `SilverBucket` Map item): its section of each group's
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
    const fetched = await mapInPool(groups, GROUPS_IN_FLIGHT, (group) =>
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
    const build = silverBuildOf(bronze, contractFingerprint(deps.contract));
    const result: BucketFile = {
      bucket,
      bucketCount: input.bucketCount,
      bronzeManifestKey: input.bronzeManifestKey,
      tables: {},
    };
    for (const table of tables) {
      const { rowsWritten, conflictingKeys, file } = merged[table.name] ?? { rowsWritten: 0 };
      const published = await publishTableFile(deps.lake, build, table.name, bucket, file);
      result.tables[table.name] = published
        ? { rowsWritten, ...(conflictingKeys && { conflictingKeys }), ...published }
        : { rowsWritten: 0, bytes: 0 };
    }
    await deps.lake.write(resultKey, `${JSON.stringify(result, null, 2)}\n`, {
      contentType: 'application/json',
    });
    const partialBytes = groups.reduce((sum, group) => sum + (sectionOf(group, bucket)?.length ?? 0), 0);
    return { bucket, tables: rowsOf(result), partialBytes, merged: true };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

const rowsOf = (result: BucketFile) =>
  Object.fromEntries(Object.entries(result.tables).map(([name, t]) => [name, t.rowsWritten]));

/** A group's section of one bucket, if the group has rows in it. */
function sectionOf(group: GroupFile, bucket: number): BucketSection | undefined {
  return group.sections.find((section) => section.bucket === bucket);
}

/**
 * Reads the bucket's section of a group's bundle (one ranged read) and cuts it into its partial files in
 * `folder`, in section order.
 */
async function fetchBucketPartials(
  lake: ObjectStore,
  group: GroupFile,
  bucket: number,
  folder: string,
): Promise<{ readonly table: string; readonly file: string }[]> {
  const section = sectionOf(group, bucket);
  if (!section || !group.partialsKey) return [];
  await mkdir(folder, { recursive: true });
  const end = section.offset + section.length - 1;
  const what = `${group.partialsKey} bytes ${section.offset}-${end}`;
  return readSection(await lake.read(group.partialsKey, { start: section.offset, end }), folder, what);
}

/** Cuts a section's bytes (see `SectionIndex`) into its files; its lengths must add up. */
async function readSection(
  stream: Readable,
  folder: string,
  what: string,
): Promise<{ readonly table: string; readonly file: string }[]> {
  let pending = Buffer.alloc(0);
  let files: { table: string; file: string; length: number }[] | undefined;
  let index = 0;
  let left = 0;
  let out: WriteStream | undefined;
  const open = () => {
    out = createWriteStream(files![index]!.file);
    left = files![index]!.length;
  };
  try {
    for await (const chunk of stream) {
      let data = Buffer.from(chunk as Uint8Array);
      if (!files) {
        pending = Buffer.concat([pending, data]);
        if (pending.length < 4 || pending.length < 4 + pending.readUInt32BE(0)) continue;
        const headerEnd = 4 + pending.readUInt32BE(0);
        const parsed = SectionIndex.safeParse(safeJson(pending.subarray(4, headerEnd).toString('utf8')));
        if (!parsed.success) throw new PipelineError(`${what}: not a section of partial files`);
        files = parsed.data.map((entry, i) => ({
          table: entry.table,
          file: join(folder, `${String(i).padStart(5, '0')}-${entry.table}.parquet`),
          length: entry.length,
        }));
        data = pending.subarray(headerEnd);
        if (files.length > 0) open();
      }
      while (data.length > 0) {
        if (!out) throw new PipelineError(`${what}: more bytes than its partial files`);
        const take = Math.min(left, data.length);
        if (!out.write(data.subarray(0, take))) await once(out, 'drain');
        data = data.subarray(take);
        left -= take;
        if (left === 0) {
          out.end();
          await finished(out);
          out = undefined;
          if (++index < files!.length) open();
        }
      }
    }
    if (!files || index < files.length)
      throw new PipelineError(`${what}: fewer bytes than its partial files`);
    return files.map(({ table, file }) => ({ table, file }));
  } catch (error) {
    out?.destroy();
    throw error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
