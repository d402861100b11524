import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { type DatasetConfig, parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { contractForDataset } from '../../shared/contracts/datasets/silver-contracts.ts';
import type { SilverManifest } from '../../shared/contracts/silver-manifest.ts';
import { silverBucketResultKey, silverGroupStatsKey } from '../../shared/lake/silver-work-keys.ts';
import { committedRun, runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import type { ByteRange, ObjectStore } from '../../shared/ports/object-store.ts';
import { mergeSilverBucket } from '../../shared/stages/silver/silver-bucket.ts';
import { buildSilverGroupToLake, mergeSilver, planSilver } from '../../shared/stages/silver/silver-stages.ts';
import { GroupFile } from '../../shared/stages/silver/silver-work-files.ts';
import { fileStore, fixedClock, tempDir } from '../helpers/lake.ts';

/**
 * Silver merged in K buckets (dedup keys hashed into buckets, each merged by its own `SilverBucket`
 * item) must hold exactly the rows of a merge in one bucket: the same survivors of every duplicate key,
 * the same counts, and a reconciliation that passes; and a bucket's merge reads nothing of another's.
 */

/** Ids repeat across the whole file, so duplicates span parts, groups and (by their hash) buckets. */
const RECORDS = Array.from({ length: 600 }, (_, i) => ({
  id: i % 151,
  label: i % 29 === 5 ? null : `item ${i}`,
  amount: i * 1.5,
}));

const config: DatasetConfig = parseDatasetConfig({
  name: 'bucketed-items',
  format: 'ndjson',
  bronze: { partMaxRecords: 7 },
  silver: {
    table: 'items',
    columns: [
      { name: 'id', type: 'integer' },
      { name: 'label', type: 'string', required: true },
      { name: 'amount', type: 'number' },
    ],
    primaryKey: ['id'],
  },
});

/** Small enough that this source of ≈ 60 kB of bronze makes several buckets. */
const BUCKET_BYTES = 12_000;

/** Every row of a table's files, in a total order (lineage included: which record survived). */
async function rowsOf(lake: string, manifest: SilverManifest, table: string): Promise<string[]> {
  const files = manifest.tables[table]!.files.map((f) => `'${join(lake, f.key)}'`);
  if (files.length === 0) return [];
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  try {
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll(
      `SELECT * FROM read_parquet([${files.join(', ')}], hive_partitioning = false) ORDER BY ALL`,
    );
    return reader
      .getRowsJS()
      .map((row) => JSON.stringify(row, (_, v) => (typeof v === 'bigint' ? `${v}` : v)));
  } finally {
    instance.closeSync();
  }
}

/** A store that records every read (key and range) of the store under it. */
function recording(store: ObjectStore): ObjectStore & { reads: { key: string; range?: ByteRange }[] } {
  const reads: { key: string; range?: ByteRange }[] = [];
  return {
    reads,
    uri: (key) => store.uri(key),
    read: (key, range) => {
      reads.push({ key, ...(range && { range }) });
      return store.read(key, range);
    },
    write: store.write.bind(store),
    head: store.head.bind(store),
    list: store.list.bind(store),
    delete: store.delete.bind(store),
  };
}

describe('silver merged in buckets', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let landing: string;
  beforeAll(async () => {
    tmp = await tempDir('sluice-buckets-');
    landing = join(tmp.dir, 'landing');
    await mkdir(landing, { recursive: true });
    await writeFile(join(landing, 'items.ndjson'), RECORDS.map((r) => `${JSON.stringify(r)}\n`).join(''));
  });
  afterAll(async () => tmp.cleanup());

  async function run(name: string, bucketBytes?: number) {
    const lake = join(tmp.dir, name);
    const result = committedRun(
      await runWorkflowLocally(
        { dataset: config, sourceKey: 'items.ndjson' },
        {
          source: fileStore(landing),
          lake: fileStore(lake),
          deadLetters: new FolderDeadLetterStore(lake),
          clock: fixedClock,
          workDir: join(tmp.dir, `work-${name}`),
          silverParallelism: 2,
          silverBucketTargetBytes: bucketBytes,
        },
      ),
    );
    return { lake, result, manifest: result.silver!.manifest };
  }

  it('a run in K ≥ 2 buckets has the rows, survivors and counts of K = 1, and reconciles', async () => {
    const one = await run('one-bucket');
    const many = await run('many-buckets', BUCKET_BYTES);
    expect(one.manifest.tables.items!.files).toHaveLength(1);
    // One file per bucket with rows: 151 keys hash into every bucket.
    const files = many.manifest.tables.items!.files;
    expect(files.length).toBeGreaterThanOrEqual(3);
    expect(files.map((f) => f.key.split('/').at(-1))).toEqual(
      files.map((_, b) => `part-${String(b).padStart(5, '0')}.parquet`),
    );
    const counts = (m: SilverManifest) =>
      Object.fromEntries(
        Object.entries(m.tables).map(([t, r]) => [
          t,
          [r.rowsIn, r.rowsWritten, r.duplicates, r.conflictingKeys],
        ]),
      );
    expect(counts(many.manifest)).toEqual(counts(one.manifest));
    const quarantined = RECORDS.filter((r) => r.label === null).length;
    // Every amount differs: each id with two rows or more kept has duplicates that say other things.
    const rowsPerId = new Map<number, number>();
    for (const r of RECORDS.filter((r) => r.label !== null))
      rowsPerId.set(r.id, (rowsPerId.get(r.id) ?? 0) + 1);
    const conflictingKeys = [...rowsPerId.values()].filter((n) => n > 1).length;
    expect(conflictingKeys).toBeGreaterThan(100);
    expect(many.manifest.tables.items).toMatchObject({
      rowsIn: 600 - quarantined,
      rowsWritten: 151,
      conflictingKeys,
    });
    for (const table of Object.keys(one.manifest.tables)) {
      expect(await rowsOf(many.lake, many.manifest, table), table).toEqual(
        await rowsOf(one.lake, one.manifest, table),
      );
    }
    expect(many.result.reconciliation?.status).toBe('passed');
    expect(many.result.reconciliation?.checks.filter((c) => c.name.includes('parquet sha256'))).toHaveLength(
      Object.values(many.manifest.tables).flatMap((t) => t.files).length,
    );
    // The commit record names every file of the version; the work prefix is gone.
    expect(many.result.commit?.record.tables.items).toEqual(files.map((f) => f.key));
  }, 120_000);

  it('each bucket reads only its byte range of each group; a merged bucket is not redone; a crashed one is', async () => {
    const { lake: lakeDir } = await run('stages', BUCKET_BYTES);
    const files = fileStore(lakeDir);
    const bronzeManifestKey = (await firstManifest(files))!;
    const contract = contractForDataset(config)!;
    const input = { bronzeManifestKey };
    // Uncommit the build, then plan it again by hand: several groups and buckets.
    await files.delete((await committedManifestKey(lakeDir))!);
    const plan = await planSilver(input, {
      lake: files,
      clock: fixedClock,
      contract,
      targetGroupBytes: 15_000,
      targetBucketBytes: BUCKET_BYTES,
    });
    expect(plan.groupCount).toBeGreaterThanOrEqual(3);
    expect(plan.bucketCount).toBeGreaterThanOrEqual(3);
    const counts = { groupCount: plan.groupCount, bucketCount: plan.bucketCount };
    for (let group = 0; group < plan.groupCount; group++) {
      await buildSilverGroupToLake(
        { ...input, ...counts, group },
        {
          lake: files,
          contract,
          createTableWriter: createPartialParquetTableWriter,
          workDir: join(tmp.dir, 'work-groups'),
        },
      );
    }
    const groups: GroupFile[] = [];
    for (let group = 0; group < plan.groupCount; group++) {
      const key = silverGroupStatsKey(config.name, plan.runId, group);
      groups.push(GroupFile.parse(JSON.parse(await readText(files, key))));
    }
    const workDir = join(tmp.dir, 'work-buckets');
    const bucketDeps = (lake: ObjectStore) => ({ lake, contract, workDir });
    // Every group names how it hashed keys into buckets; a group hashed otherwise is refused.
    expect(groups.every((group) => group.bucketHash?.startsWith('duckdb-hash '))).toBe(true);
    const lastKey = silverGroupStatsKey(config.name, plan.runId, plan.groupCount - 1);
    const lastStats = await readText(files, lastKey);
    await files.write(lastKey, JSON.stringify({ ...JSON.parse(lastStats), bucketHash: 'another hash' }));
    await expect(mergeSilverBucket({ ...input, ...counts, bucket: 0 }, bucketDeps(files))).rejects.toThrow(
      /different hashes/,
    );
    await files.write(lastKey, lastStats);

    for (let bucket = 0; bucket < plan.bucketCount; bucket++) {
      const lake = recording(files);
      if (bucket === 1) {
        // A crash after the bucket's table files, before its result: nothing looks complete.
        const crashing: ObjectStore = {
          ...lake,
          write: (key, body, options) =>
            key === silverBucketResultKey(config.name, plan.runId, 1)
              ? Promise.reject(new Error('killed'))
              : lake.write(key, body, options),
        };
        await expect(
          mergeSilverBucket({ ...input, ...counts, bucket }, bucketDeps(crashing)),
        ).rejects.toThrow('killed');
        expect(await files.head(silverBucketResultKey(config.name, plan.runId, 1))).toBeUndefined();
        await expect(
          mergeSilver({ ...input, ...counts }, { lake: files, clock: fixedClock, contract }),
        ).rejects.toThrow(/result of merge bucket 1 is missing/);
        lake.reads.length = 0;
      }
      const summary = await mergeSilverBucket({ ...input, ...counts, bucket }, bucketDeps(lake));
      expect(summary.merged).toBe(true);
      // Exactly one ranged read per group that has rows in this bucket, of exactly its entries.
      const expected = groups.flatMap((group) => {
        const section = group.sections.find((s) => s.bucket === bucket);
        if (!section) return [];
        const range = { start: section.offset, end: section.offset + section.length - 1 };
        return [{ key: group.partialsKey!, range }];
      });
      expect(expected.length).toBeGreaterThan(0);
      // (Groups are read a few at once: in any order.)
      const ranged = lake.reads.filter((r) => r.key.endsWith('/partials.bin'));
      expect(ranged.sort((a, b) => a.key.localeCompare(b.key))).toEqual(expected);
      expect(summary.partialBytes).toBe(expected.reduce((n, r) => n + r.range.end - r.range.start + 1, 0));
    }
    // A bucket merged already is not merged again: no partial file is read.
    const again = recording(files);
    const summary = await mergeSilverBucket({ ...input, ...counts, bucket: 0 }, bucketDeps(again));
    expect(summary.merged).toBe(false);
    expect(again.reads.filter((r) => r.key.endsWith('/partials.bin'))).toEqual([]);

    const committed = await mergeSilver(
      { ...input, ...counts },
      { lake: files, clock: fixedClock, contract },
    );
    const reference = await run('reference-one-bucket');
    for (const table of Object.keys(reference.manifest.tables)) {
      expect(await rowsOf(lakeDir, committed.manifest, table), table).toEqual(
        await rowsOf(reference.lake, reference.manifest, table),
      );
    }
  }, 120_000);
});

async function readText(store: ObjectStore, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

async function firstManifest(store: ObjectStore): Promise<string | undefined> {
  for await (const object of store.list('bronze/'))
    if (object.key.endsWith('/_manifest.json')) return object.key;
  return undefined;
}

async function committedManifestKey(lakeDir: string): Promise<string | undefined> {
  for await (const object of fileStore(lakeDir).list(`silver/${config.name}/_manifests/`)) return object.key;
  return undefined;
}
