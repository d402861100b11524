import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MultiThreadedCopyError, writeFinalTable } from '../../shared/adapters/duckdb/final-table.ts';
import { mergeParquetPartials } from '../../shared/adapters/duckdb/parquet-partials-merge.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { committedRun, runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

/**
 * The README promises the same bytes however a run went. Row groups are where that broke: DuckDB's
 * multi-threaded COPY cut them by timing, so an uninterrupted, a resumed and a differently grouped run
 * wrote the same rows in different files. Small row groups and small bronze parts make a file of a few
 * MB span many of both, so each table has many cuts that could move.
 */

const CHILD = fileURLToPath(new URL('../helpers/sliced-run-child.ts', import.meta.url));
const SEGMENT_BYTES = 64 * 1024;
const PART_MAX_RECORDS = 40;
const ROW_GROUP_ROWS = 2_500;
/** Bronze per merge bucket: small, so every run merges in several buckets (K is the same for all). */
const BUCKET_BYTES = 1_000_000;

const base = builtInDataset('tic-in-network');
const dataset = parseDatasetConfig({
  ...base,
  bronze: { ...base.bronze, segmentBytes: SEGMENT_BYTES, partMaxRecords: PART_MAX_RECORDS },
});
const mergeTables: Parameters<typeof runWorkflowLocally>[1]['mergeTables'] = (tables, partials, dir) =>
  mergeParquetPartials(tables, partials, dir, { rowGroupRows: ROW_GROUP_ROWS });

/** sha256 of every Parquet file under `silver/` and every bronze part, by path. */
async function outputDigests(lake: string): Promise<Record<string, string>> {
  const files = (await listFiles(lake)).filter(
    (f) => (f.startsWith('silver/') && f.endsWith('.parquet')) || f.endsWith('.ndjson.gz'),
  );
  const digests: Record<string, string> = {};
  for (const file of files) {
    digests[file] = createHash('sha256')
      .update(await readFile(join(lake, file)))
      .digest('hex');
  }
  return digests;
}

/** Rows per row group of a Parquet file. */
async function rowGroups(file: string): Promise<number[]> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  try {
    const connection = await instance.connect();
    const reader = await connection.runAndReadAll(
      `SELECT row_group_num_rows FROM parquet_metadata('${file}') GROUP BY row_group_id, row_group_num_rows ORDER BY row_group_id`,
    );
    return reader.getRows().map((row) => Number(row[0]));
  } finally {
    instance.closeSync();
  }
}

/** Run the child until it exits; SIGKILL it `delayMs` after the `nth` state it enters that `killIn` names. */
function runChild(
  args: string[],
  kill?: { readonly killIn: RegExp; readonly nth: number; readonly delayMs: number },
): Promise<{ lines: string[]; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let seen = 0;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n').filter(Boolean)) {
        lines.push(line);
        if (kill?.killIn.test(line) && ++seen === kill.nth) {
          setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.once('error', reject);
    child.once('exit', (exitCode) => {
      if (exitCode !== 0 && exitCode !== null) reject(new Error(`child failed (${exitCode}): ${stderr}`));
      else resolve({ lines, killed: exitCode === null });
    });
  });
}

describe('silver Parquet files across runs of one source', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-same-bytes-');
    await generateFile(tmp.dir, 'source.json.gz', { seed: 131313, targetBytes: 3_000_000 });
  });
  afterAll(async () => tmp.cleanup());

  /** A run in this process: unsliced, or in slices that each stop at the first segment boundary. */
  async function runInProcess(name: string, parallelism: number, sliced: boolean) {
    const lake = join(tmp.dir, name);
    const result = committedRun(
      await runWorkflowLocally(
        { dataset, sourceKey: 'source.json.gz' },
        {
          source: fileStore(tmp.dir),
          lake: fileStore(lake),
          deadLetters: new FolderDeadLetterStore(lake),
          clock: fixedClock,
          workDir: join(tmp.dir, `work-${name}`),
          silverParallelism: parallelism,
          silverBucketTargetBytes: BUCKET_BYTES,
          mergeTables,
          sliceBudget: sliced ? () => ({ shouldStop: () => true }) : undefined,
        },
      ),
    );
    expect(result.reconciliation?.status).toBe('passed');
    return { lake, result };
  }

  it('are the same bytes plain, sliced, killed during silver and rerun, built in 1, 2 or 3 groups, in K ≥ 2 buckets', async () => {
    const reference = await runInProcess('plain-2-groups', 2, false);
    const expected = await outputDigests(reference.lake);
    // The drill means something only if the tables span many bronze parts and row groups.
    expect(reference.result.bronze.manifest.parts.length).toBeGreaterThanOrEqual(10);
    const pricesFiles = reference.result.silver!.manifest.tables.negotiated_prices!.files;
    // Merged in several buckets, each file still spanning several row groups.
    expect(pricesFiles.length).toBeGreaterThanOrEqual(2);
    const prices = join(reference.lake, pricesFiles[0]!.key);
    expect((await rowGroups(prices)).length).toBeGreaterThanOrEqual(2);
    expect(Object.keys(expected).filter((f) => f.endsWith('.parquet')).length).toBeGreaterThanOrEqual(5);

    const runs: Record<string, Record<string, string>> = {};
    for (const parallelism of [1, 3]) {
      const { lake } = await runInProcess(`plain-${parallelism}-groups`, parallelism, false);
      runs[`unsliced, ${parallelism} group(s)`] = await outputDigests(lake);
    }
    const sliced = await runInProcess('sliced-2-groups', 2, true);
    expect(sliced.result.bronze.slices).toBeGreaterThan(1);
    runs['sliced, 2 groups'] = await outputDigests(sliced.lake);

    // SIGKILL at a seeded random moment of silver (planning, a group, a bucket, the commit), then the same
    // command again. The silver states a run enters: PlanSilver, SilverGroups, SilverGroup twice,
    // SilverBuckets, SilverBucket K times, Silver.
    const buckets = pricesFiles.length;
    const next = seededRandom(20261207);
    const lake = join(tmp.dir, 'killed');
    const args = [tmp.dir, 'source.json.gz', lake, join(tmp.dir, 'work-killed'), String(SEGMENT_BYTES)];
    args.push('2', String(ROW_GROUP_ROWS), String(BUCKET_BYTES));
    const silverState = /^(PlanSilver|SilverGroups|SilverGroup|SilverBuckets|SilverBucket|Silver)$/;
    let killedIn: string | undefined;
    for (let i = 0; i < 6 && killedIn === undefined; i++) {
      const kill = {
        killIn: silverState,
        nth: 1 + Math.floor(next() * (6 + buckets)),
        delayMs: Math.floor(next() * 400),
      };
      const attempt = await runChild(args, kill);
      const last = attempt.lines.at(-1) ?? '';
      // A kill that landed after silver (in Reconcile, or after the end) does not count: try again.
      if (attempt.killed && silverState.test(last)) killedIn = `${last} (#${kill.nth} + ${kill.delayMs} ms)`;
    }
    expect(killedIn, 'no attempt was killed during silver').toBeDefined();
    const rerun = await runChild(args);
    expect(rerun.lines.at(-1)).toMatch(/^done \d+ passed$/);
    runs[`killed in ${killedIn}, rerun`] = await outputDigests(lake);

    // And killed inside a merge bucket's invocation (some buckets merged, this one half done).
    const bucketLake = join(tmp.dir, 'killed-in-bucket');
    const bucketArgs = [...args];
    bucketArgs[2] = bucketLake;
    bucketArgs[3] = join(tmp.dir, 'work-killed-in-bucket');
    let killedInBucket: string | undefined;
    for (let i = 0; i < 6 && killedInBucket === undefined; i++) {
      const kill = {
        killIn: /^SilverBucket$/,
        nth: 1 + Math.floor(next() * buckets),
        delayMs: Math.floor(next() * 200),
      };
      const attempt = await runChild(bucketArgs, kill);
      if (attempt.killed && attempt.lines.at(-1) === 'SilverBucket') {
        killedInBucket = `SilverBucket #${kill.nth} + ${kill.delayMs} ms`;
      }
    }
    expect(killedInBucket, 'no attempt was killed in a merge bucket').toBeDefined();
    expect((await runChild(bucketArgs)).lines.at(-1)).toMatch(/^done \d+ passed$/);
    runs[`killed in ${killedInBucket}, rerun`] = await outputDigests(bucketLake);

    for (const [run, digests] of Object.entries(runs)) {
      expect(Object.keys(digests), run).toEqual(Object.keys(expected));
      for (const [file, sha256] of Object.entries(expected)) {
        expect(digests[file], `${file}: ${run} differs from an unsliced run in 2 groups`).toBe(sha256);
      }
    }
  }, 600_000);
});

describe('Function: writeFinalTable', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-final-table-');
  });
  afterAll(async () => tmp.cleanup());

  it('refuses a DuckDB instance with more than one thread, whose row groups would depend on timing', async () => {
    const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
    try {
      const connection = await instance.connect();
      const partial = join(tmp.dir, 'partial.parquet');
      await connection.run(`COPY (SELECT range AS id FROM range(10)) TO '${partial}' (FORMAT parquet)`);
      const plan = { columns: [{ name: 'id', read: 'id' }], spec: { name: 't', key: ['id'] } };
      await expect(
        writeFinalTable(connection, plan, [partial], join(tmp.dir, 'final.parquet')),
      ).rejects.toThrow(MultiThreadedCopyError);
    } finally {
      instance.closeSync();
    }
  });
});
