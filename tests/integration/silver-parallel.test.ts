import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { type DatasetConfig, parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { contractForDataset } from '../../shared/contracts/datasets/silver-contracts.ts';
import { contractFingerprint } from '../../shared/contracts/silver/contract-fingerprint.ts';
import { ContractViolationError, PipelineError, SchemaDriftError } from '../../shared/errors.ts';
import { silverBuildOf, silverManifestKey } from '../../shared/lake/keys.ts';
import { silverGroupStatsKey, silverWorkPrefix } from '../../shared/lake/silver-work-keys.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import {
  type BuildSilverResult,
  buildSilver,
  type SilverProgress,
} from '../../shared/stages/silver/build-silver.ts';
import { mergeSilverBucket } from '../../shared/stages/silver/silver-bucket.ts';
import { planSilverGroups } from '../../shared/stages/silver/silver-group.ts';
import { buildSilverGroupToLake, mergeSilver, planSilver } from '../../shared/stages/silver/silver-stages.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';

/**
 * Silver built in groups of bronze parts, in worker threads, then merged, must be indistinguishable from
 * silver built in one pass: the same Parquet bytes, counts, findings (with the same first examples),
 * quarantine rows and, on failure, the same error.
 */

const PARALLELISM = [1, 2, 3] as const;

/** A lake with one source ingested to bronze, ready for silver builds. */
interface Bronze {
  readonly lake: string;
  readonly work: string;
  readonly config: DatasetConfig;
  readonly manifestKey: string;
  readonly parts: number;
}

async function ingest(dir: string, config: DatasetConfig, sourceDir: string, file: string): Promise<Bronze> {
  const lake = join(dir, 'lake');
  const bronze = await ingestToBronze(
    { dataset: config, sourceKey: file },
    { source: fileStore(sourceDir), lake: fileStore(lake), clock: fixedClock },
  );
  return {
    lake,
    work: join(dir, 'work'),
    config,
    manifestKey: bronze.manifestKey,
    parts: bronze.manifest.parts.length,
  };
}

function build(bronze: Bronze, parallelism: number, onProgress?: (p: SilverProgress) => void) {
  return buildSilver(
    { bronzeManifestKey: bronze.manifestKey },
    {
      lake: fileStore(bronze.lake),
      clock: fixedClock,
      contract: contractForDataset(bronze.config)!,
      createTableWriter: createPartialParquetTableWriter,
      workDir: bronze.work,
      parallelism,
      datasetConfig: bronze.config,
      onProgress,
    },
  );
}

/** What must not depend on parallelism: the manifest but its timings, and each table file's sha256. */
async function outcome(bronze: Bronze, result: BuildSilverResult) {
  const { timings: _, ...manifest } = result.manifest;
  const files: Record<string, string[]> = {};
  for (const [table, t] of Object.entries(manifest.tables)) {
    files[table] = [];
    for (const file of t.files) files[table].push(sha256(await readFile(join(bronze.lake, file.key))));
  }
  // The manifest's own JSON too, so even the order of findings must agree.
  return { manifest, json: JSON.stringify(manifest), files };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Builds at each parallelism and expects the same outcome as the single-threaded one; returns it. */
async function expectSameAtEveryParallelism(bronze: Bronze) {
  const outcomes = [];
  for (const parallelism of PARALLELISM) {
    const progress: SilverProgress[] = [];
    const result = await build(bronze, parallelism, (p) => progress.push(p));
    expect(progress.at(-1)?.partsDone ?? 0, `progress at parallelism ${parallelism}`).toBe(bronze.parts);
    outcomes.push(await outcome(bronze, result));
  }
  const [single, ...parallel] = outcomes;
  for (const other of parallel) {
    expect(other.files).toEqual(single!.files);
    expect(other.manifest).toEqual(single!.manifest);
    expect(other.json).toBe(single!.json);
  }
  // The sha256 in the manifest is that of the file written.
  for (const [table, t] of Object.entries(single!.manifest.tables)) {
    expect(
      t.files.map((file) => file.sha256),
      table,
    ).toEqual(single!.files[table]);
  }
  return single!.manifest;
}

/** The first error of a build, as name and message. */
async function failure(bronze: Bronze, parallelism: number) {
  const error = await build(bronze, parallelism).then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(error, `parallelism ${parallelism} must fail`).toBeInstanceOf(Error);
  return { name: error!.name, message: error!.message, error: error! };
}

/**
 * A build that fails fails alike at every parallelism: the error a single pass raises, with its class,
 * name and message, raised in a worker thread (not by an inline fallback).
 */
async function expectSameFailure(bronze: Bronze, kind: new (...args: never[]) => Error, detail: string) {
  const single = await failure(bronze, 1);
  expect(single.error).toBeInstanceOf(kind);
  expect(single.message).toContain(detail);
  for (const parallelism of [2, 3]) {
    const parallel = await failure(bronze, parallelism);
    expect(parallel.error).toBeInstanceOf(kind);
    expect(parallel.error.stack).toContain('silver-worker.ts');
    expect({ name: parallel.name, message: parallel.message }).toEqual({
      name: single.name,
      message: single.message,
    });
  }
}

/** An NDJSON dataset defined by config: id-keyed rows, one required column, a few parts per record. */
function ndjsonConfig(name: string, onDrift: 'rescue' | 'fail', partMaxRecords: number): DatasetConfig {
  return parseDatasetConfig({
    name,
    format: 'ndjson',
    bronze: { partMaxRecords },
    silver: {
      table: 'items',
      columns: [
        { name: 'id', type: 'integer' },
        { name: 'label', type: 'string', required: true },
        { name: 'amount', type: 'number' },
      ],
      primaryKey: ['id'],
      onDrift,
    },
  });
}

async function landNdjson(dir: string, config: DatasetConfig, records: readonly object[]) {
  const source = join(dir, 'landing');
  await mkdir(source, { recursive: true });
  await writeFile(join(source, 'items.ndjson'), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  return ingest(dir, config, source, 'items.ndjson');
}

describe('silver in parallel groups of bronze parts', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-silver-parallel-');
  });
  afterAll(async () => tmp.cleanup());

  it('splits parts into consecutive groups of about equal bytes', () => {
    const parts = (sizes: number[]) => sizes.map((uncompressedBytes) => ({ uncompressedBytes }));
    expect(planSilverGroups(parts([]), 3)).toEqual([{ index: 0, firstPart: 0, endPart: 0 }]);
    expect(planSilverGroups(parts([5, 5]), 4).map((g) => [g.firstPart, g.endPart])).toEqual([
      [0, 1],
      [1, 2],
    ]);
    expect(planSilverGroups(parts([1, 1, 1, 1, 1, 1]), 2).map((g) => [g.firstPart, g.endPart])).toEqual([
      [0, 3],
      [3, 6],
    ]);
    // A large part at the start gets a group of its own; no group is ever empty.
    expect(planSilverGroups(parts([100, 1, 1, 1]), 3).map((g) => [g.firstPart, g.endPart])).toEqual([
      [0, 1],
      [1, 2],
      [2, 4],
    ]);
    expect(planSilverGroups(parts([1, 1, 1, 100]), 3).map((g) => [g.firstPart, g.endPart])).toEqual([
      [0, 2],
      [2, 3],
      [3, 4],
    ]);
  });

  it('a generated in-network file: byte-identical Parquet and equal manifests at parallelism 1, 2, 3', async () => {
    const dir = join(tmp.dir, 'generated');
    await mkdir(dir, { recursive: true });
    await generateFile(dir, 'gen.json.gz', { seed: 11, targetBytes: 1_500_000 });
    const base = builtInDataset('tic-in-network');
    const config = { ...base, bronze: { ...base.bronze, partMaxRecords: 40 } };
    const bronze = await ingest(dir, config, dir, 'gen.json.gz');
    expect(bronze.parts).toBeGreaterThan(10);
    const manifest = await expectSameAtEveryParallelism(bronze);
    expect(manifest.tables.negotiated_prices?.rowsWritten).toBeGreaterThan(1000);
    expect(manifest.tables.files?.rowsWritten).toBe(1);
  });

  const DATASETS: Record<string, string> = {
    'in-network': 'tic-in-network',
    'allowed-amounts': 'tic-allowed-amounts',
    'table-of-contents': 'tic-table-of-contents',
  };
  const datasetOf = (file: string) =>
    Object.entries(DATASETS).find(([prefix]) => file.startsWith(prefix))?.[1];
  // A provider-reference file is no dataset of its own (its records are in-network ones by reference).
  const samples = readdirSync(TIC_EXAMPLES).filter((f) => datasetOf(f) !== undefined);

  it.each(samples)('CMS sample %s: the same silver at parallelism 1, 2, 3', async (file) => {
    const dir = join(tmp.dir, `sample-${file}`);
    const base = builtInDataset(datasetOf(file)!);
    // One record per part: as many groups as there can be.
    const config = { ...base, bronze: { ...base.bronze, partMaxRecords: 1 } };
    const bronze = await ingest(dir, config, TIC_EXAMPLES, file);
    // (The allowed-amounts samples hold a single record: one part, built inline at any parallelism.)
    await expectSameAtEveryParallelism(bronze);
  });

  it('deduplicates across groups (lowest lineage survives) and quarantines alike', async () => {
    const config = ndjsonConfig('items-dedup', 'rescue', 7);
    // Ids repeat across the whole file, so every group holds duplicates of rows in earlier groups;
    // some records lack the required label (quarantined), some carry fields no column picks (rescued).
    const records = Array.from({ length: 120 }, (_, i) => ({
      id: i % 23,
      label: i % 17 === 5 ? null : `item ${i}`,
      amount: i * 1.5,
      ...(i % 19 === 3 && { extra: `note ${i}` }),
    }));
    const bronze = await landNdjson(join(tmp.dir, 'dedup'), config, records);
    expect(bronze.parts).toBeGreaterThan(10);
    const manifest = await expectSameAtEveryParallelism(bronze);
    const quarantined = records.filter((r) => r.label === null).length;
    expect(manifest.records.records).toEqual({
      bronze: 120,
      accepted: 120 - quarantined,
      quarantined,
    });
    expect(manifest.tables.items).toMatchObject({ rowsIn: 120 - quarantined, rowsWritten: 23 });
    expect(manifest.tables.items!.duplicates).toBe(120 - quarantined - 23);
    expect(manifest.tables._quarantine?.rowsWritten).toBe(quarantined);
    // The first example, not one from a later group.
    expect(manifest.drift['unknown_field:extra']).toMatchObject({ count: 7, example: '"note 3"' });
  });

  it('a drift failure in a worker is the SchemaDriftError of a single pass: the first in part order', async () => {
    const config = ndjsonConfig('items-drift', 'fail', 5);
    // Unknown fields only in the second half, at two places: the first one must be reported.
    const records = Array.from({ length: 60 }, (_, i) => ({
      id: i,
      label: `item ${i}`,
      ...((i === 37 || i === 52) && { surprise: i }),
    }));
    const bronze = await landNdjson(join(tmp.dir, 'drift'), config, records);
    await expectSameFailure(bronze, SchemaDriftError, '[37]');
  });

  it('a bronze part damaged since it was written fails naming the part and line, alike at every parallelism', async () => {
    const config = ndjsonConfig('items-damaged', 'rescue', 5);
    const records = Array.from({ length: 30 }, (_, i) => ({ id: i, label: `item ${i}` }));
    const bronze = await landNdjson(join(tmp.dir, 'damaged'), config, records);
    const manifest = JSON.parse(await readFile(join(bronze.lake, bronze.manifestKey), 'utf8'));
    const part = manifest.parts[2].key as string;
    const lines = gunzipSync(await readFile(join(bronze.lake, part)))
      .toString('utf8')
      .split('\n');
    lines[2] = lines[2]!.slice(0, 20); // a line cut short
    await writeFile(join(bronze.lake, part), gzipSync(lines.join('\n')));
    await expectSameFailure(bronze, PipelineError, `${part} line 3 is not a bronze record`);
  });

  it("a contract 'fail' rule in a worker is the ContractViolationError of a single pass", async () => {
    const dir = join(tmp.dir, 'fail-rule');
    await mkdir(dir, { recursive: true });
    const example = readdirSync(TIC_EXAMPLES).find((f) => f.startsWith('in-network'))!;
    // A record stream the TiC contract does not know fails rule `record.stream`: here after the file's
    // own records, so it is met in the last group only.
    const doc = JSON.parse(await readFile(join(TIC_EXAMPLES, example), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'odd.json'), JSON.stringify({ ...doc, zz_unknown: [{ a: 1 }, { a: 2 }] }));
    const base = builtInDataset('tic-in-network');
    const config = parseDatasetConfig({
      ...base,
      records: [...(base.records ?? []), { path: 'zz_unknown[*]' }],
      bronze: { ...base.bronze, partMaxRecords: 1 },
    });
    const bronze = await ingest(dir, config, dir, 'odd.json');
    await expectSameFailure(bronze, ContractViolationError, 'record.stream');
  });

  it('plans, builds groups (in any order, rerun) and merges through the lake: the same silver, no work left', async () => {
    const dir = join(tmp.dir, 'staged');
    await mkdir(dir, { recursive: true });
    await generateFile(dir, 'gen.json.gz', { seed: 5, targetBytes: 600_000 });
    const base = builtInDataset('tic-in-network');
    const config = { ...base, bronze: { ...base.bronze, partMaxRecords: 25 } };
    const bronze = await ingest(dir, config, dir, 'gen.json.gz');
    const expected = await outcome(bronze, await build(bronze, 1));
    // A lake that is not a FileObjectStore (as S3 would be): the merge downloads the partial files.
    const lake = notAFolder(fileStore(bronze.lake));
    const contract = contractForDataset(bronze.config)!;
    const input = { bronzeManifestKey: bronze.manifestKey };
    // The build above is committed: planning again reuses it and builds nothing.
    const reused = await planSilver(input, { lake, clock: fixedClock, contract, targetGroupBytes: 150_000 });
    expect(reused).toMatchObject({ groupCount: 0, reused: true });
    const manifest = await readBronzeManifest(lake, bronze.manifestKey);
    await lake.delete(silverManifestKey(silverBuildOf(manifest, contractFingerprint(contract))));
    // Groups by bytes: a small target makes several.
    const plan = await planSilver(input, { lake, clock: fixedClock, contract, targetGroupBytes: 150_000 });
    expect(plan.reused).toBe(false);
    expect(plan.groupCount).toBeGreaterThan(2);
    const groupDeps = {
      lake,
      contract,
      createTableWriter: createPartialParquetTableWriter,
      workDir: join(bronze.work, 'groups'),
    };
    const order = [...Array(plan.groupCount).keys()].reverse();
    for (const group of [...order, 0]) {
      await buildSilverGroupToLake(
        { ...input, group, groupCount: plan.groupCount, bucketCount: plan.bucketCount },
        groupDeps,
      );
    }
    const counts = { groupCount: plan.groupCount, bucketCount: plan.bucketCount };
    for (let bucket = 0; bucket < plan.bucketCount; bucket++) {
      await mergeSilverBucket(
        { ...input, ...counts, bucket },
        { lake, contract, workDir: join(bronze.work, 'buckets') },
      );
    }
    const work = silverWorkPrefix(config.name, plan.runId);
    expect((await listFiles(join(bronze.lake, work))).length).toBeGreaterThan(plan.groupCount);
    // A straggler from a build with another group count (its stats name other parts) is refused.
    const statsKey = silverGroupStatsKey(config.name, plan.runId, 1);
    const stats = await readFile(join(bronze.lake, statsKey), 'utf8');
    const shifted = JSON.parse(stats);
    shifted.endPart += 1;
    await lake.write(statsKey, JSON.stringify(shifted));
    await expect(mergeSilver({ ...input, ...counts }, { lake, clock: fixedClock, contract })).rejects.toThrow(
      /group 1 covers parts/,
    );
    await lake.write(statsKey, stats);
    const merged = await mergeSilver({ ...input, ...counts }, { lake, clock: fixedClock, contract });
    expect(await outcome(bronze, merged)).toEqual(expected);
    expect(await listFiles(join(bronze.lake, work))).toEqual([]);
    // A retried merge after the commit finds it done.
    const again = await mergeSilver({ ...input, ...counts }, { lake, clock: fixedClock, contract });
    expect(again.manifest).toEqual(merged.manifest);
  });

  it('builds inline when workers cannot open the lake, with the same result', async () => {
    const dir = join(tmp.dir, 'inline');
    await mkdir(dir, { recursive: true });
    const example = readdirSync(TIC_EXAMPLES).find((f) => f.startsWith('in-network'))!;
    await copyFile(join(TIC_EXAMPLES, example), join(dir, example));
    const base = builtInDataset('tic-in-network');
    const bronze = await ingest(
      dir,
      { ...base, bronze: { ...base.bronze, partMaxRecords: 1 } },
      dir,
      example,
    );
    const expected = await outcome(bronze, await build(bronze, 1));
    // A lake that is not a FileObjectStore (as S3 would be): workers could not open it.
    const wrapped = notAFolder(fileStore(bronze.lake));
    const result = await buildSilver(
      { bronzeManifestKey: bronze.manifestKey },
      {
        lake: wrapped,
        clock: fixedClock,
        contract: contractForDataset(bronze.config)!,
        createTableWriter: createPartialParquetTableWriter,
        workDir: bronze.work,
        parallelism: 2,
      },
    );
    expect(await outcome(bronze, result)).toEqual(expected);
  });
});

/** The same lake, but not a `FileObjectStore`: as an S3 lake looks to the stages (no local folder). */
function notAFolder(store: ReturnType<typeof fileStore>): ObjectStore {
  return {
    uri: (key) => store.uri(key),
    read: store.read.bind(store),
    write: store.write.bind(store),
    head: store.head.bind(store),
    list: store.list.bind(store),
    delete: store.delete.bind(store),
  };
}
