import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import type { SilverManifest } from '../../shared/contracts/silver-manifest.ts';
import { ReconciliationError } from '../../shared/errors.ts';
import { reconciliationKey } from '../../shared/lake/keys.ts';
import { reconcileKeysKey, reconcilePlanKey } from '../../shared/lake/reconcile-work-keys.ts';
import { committedRun, runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import type { LocalRunResult } from '../../shared/pipeline/pipeline-types.ts';
import type { ByteRange, ObjectStore } from '../../shared/ports/object-store.ts';
import { readText } from '../../shared/stages/bronze/read-bronze.ts';
import {
  finishReconcile,
  planReconcile,
  type ReconciliationReport,
  reconcile,
  reconcileItem,
  reconcileKeyBucket,
} from '../../shared/stages/reconcile/reconcile.ts';
import { ReconcilePlan, type ReconcilePlanOptions } from '../../shared/stages/reconcile/reconcile-plan.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/**
 * Reconciliation in items and key buckets must be indistinguishable from reconciliation in one
 * invocation: the same report on good runs, the same failures (with the same messages) on broken ones,
 * and no item re-reads more than its share.
 */

const contract = silverContractFor('tic-in-network')!;
/** Many items and buckets, whatever the file's size. */
const SPLIT: ReconcilePlanOptions = { minGroups: 4, minKeyBuckets: 3 };

/** Every read of a store: the key, and the range if one was asked for. */
class RecordingStore implements ObjectStore {
  readonly reads: { key: string; range?: ByteRange }[] = [];
  constructor(private readonly inner: ObjectStore) {}
  uri = (key: string) => this.inner.uri(key);
  read(key: string, range?: ByteRange): Promise<Readable> {
    this.reads.push({ key, ...(range && { range }) });
    return this.inner.read(key, range);
  }
  write: ObjectStore['write'] = (key, body, options) => this.inner.write(key, body, options);
  head = (key: string) => this.inner.head(key);
  list = (prefix: string) => this.inner.list(prefix);
  delete = (key: string) => this.inner.delete(key);
}

/**
 * A report without its cost: the workflow's run prices itself (what its invocations measured), a
 * reconciliation called here outside a workflow does not.
 */
const withoutCost = ({ cost: _, ...report }: ReconciliationReport) => report;

const deps = (lake: ObjectStore, work: string, plan?: ReconcilePlanOptions) => ({
  lake,
  clock: fixedClock,
  contract,
  openInspector: openParquetInspector,
  workDir: work,
  ...(plan && { plan }),
});

/** The steps as the workflow runs them: plan, every item, every key bucket, then the report. */
async function reconcileDistributed(lake: ObjectStore, work: string, bronzeManifestKey: string) {
  const planned = await planReconcile({ bronzeManifestKey }, deps(lake, work, SPLIT));
  // Items in reverse order: the Map promises no order.
  for (const { item } of [...planned.items].reverse()) {
    await reconcileItem({ bronzeManifestKey, item }, deps(lake, work));
  }
  for (const { bucket } of planned.buckets)
    await reconcileKeyBucket({ bronzeManifestKey, bucket }, deps(lake, work));
  return { planned, report: await finishReconcile({ bronzeManifestKey }, deps(lake, work)) };
}

/** A Parquet file of the lake rewritten by `select` (SQL over `src`, the file as it was). */
async function rewriteParquet(lakeDir: string, key: string, select: (src: string) => string) {
  const file = join(lakeDir, key);
  const source = `${file}.orig`;
  await rename(file, source);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  await connection.run(`COPY (${select(`read_parquet('${source}')`)}) TO '${file}' (FORMAT parquet)`);
  connection.closeSync();
  instance.closeSync();
}

let tmp: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  tmp = await tempDir('sluice-reconcile-distributed-');
});
afterAll(async () => tmp?.cleanup());

let runs = 0;
/** A source through the local workflow (its reconciliation split by SPLIT), into a lake of its own. */
async function runSource(dir: string, key: string, partMaxRecords?: number) {
  const lakeDir = join(tmp.dir, `lake-${++runs}`);
  const base = builtInDataset('tic-in-network');
  const dataset = partMaxRecords ? { ...base, bronze: { ...base.bronze, partMaxRecords } } : base;
  const result = committedRun(
    await runWorkflowLocally(
      { dataset, sourceKey: key },
      {
        source: new FileObjectStore(dir),
        lake: new FileObjectStore(lakeDir),
        clock: fixedClock,
        workDir: join(tmp.dir, `work-${runs}`),
        deadLetters: new FolderDeadLetterStore(lakeDir),
        retryIntervalMs: 0,
        silverParallelism: 2,
        reconcilePlan: SPLIT,
      },
    ),
  );
  return { lakeDir, lake: new FileObjectStore(lakeDir), work: join(tmp.dir, `work-${runs}`), result };
}

/** The bundled sample through the workflow. */
async function sampleRun() {
  const dir = join(tmp.dir, `sample-${runs}`);
  await mkdir(dir, { recursive: true });
  const sample = 'in-network-rates-fee-for-service-single-plan-sample.json';
  await copyFile(join(TIC_EXAMPLES, sample), join(dir, sample));
  return runSource(dir, sample);
}

describe('Distributed reconciliation', () => {
  describe('on a generated file of many bronze parts', () => {
    let run: { lakeDir: string; lake: FileObjectStore; work: string; result: LocalRunResult };
    let manifestKey: string;
    /** The report the workflow wrote (in items and buckets). */
    let workflowReport: string;

    beforeAll(async () => {
      const dir = join(tmp.dir, 'generated');
      await mkdir(dir, { recursive: true });
      await generateFile(dir, 'gen.json.gz', { seed: 11, targetBytes: 600_000 });
      run = await runSource(dir, 'gen.json.gz', 20);
      manifestKey = run.result.bronze.manifestKey;
      workflowReport = await readFile(
        join(run.lakeDir, reconciliationKey('tic-in-network', run.result.bronze.runId)),
        'utf8',
      );
    });

    it('gives the report one invocation gives, from ≥ 4 bronze groups and ≥ 3 key buckets', async () => {
      expect(run.result.reconciliation?.status).toBe('passed');
      expect(run.result.bronze.manifest.parts.length).toBeGreaterThan(8);
      const distributed = await reconcileDistributed(run.lake, run.work, manifestKey);
      expect(distributed.planned.bronzeGroups).toBe(4);
      expect(distributed.planned.keyBuckets).toBe(3);
      expect(distributed.planned.silverFiles).toBeGreaterThanOrEqual(4);
      // One invocation, planned as on AWS (one group, one bucket for a file this small).
      const single = await reconcile({ bronzeManifestKey: manifestKey }, deps(run.lake, run.work));
      expect(single).toEqual(distributed.report);
      const workflow = JSON.parse(workflowReport) as ReconciliationReport;
      expect(workflow.cost?.invocations).toBeGreaterThan(0);
      expect(JSON.stringify(single, null, 2)).toBe(JSON.stringify(withoutCost(workflow), null, 2));
      // It checked what there is to check: every part, every table file, and the references.
      const names = single.checks.map((c) => c.name);
      expect(names.filter((n) => n.endsWith(' sha256') && n.startsWith('bronze part '))).toHaveLength(
        run.result.bronze.manifest.parts.length,
      );
      expect(names.some((n) => n.includes('dangling references'))).toBe(true);
      expect(single.quality.integrity).toBe(1);
    });

    it('spreads the keys over the buckets: each holds some, none holds them all', async () => {
      const planned = await planReconcile(
        { bronzeManifestKey: manifestKey },
        deps(run.lake, run.work, SPLIT),
      );
      for (const { item } of planned.items)
        await reconcileItem({ bronzeManifestKey: manifestKey, item }, deps(run.lake, run.work));
      const plan = ReconcilePlan.parse(
        JSON.parse(
          await readFile(
            join(run.lakeDir, reconcilePlanKey('tic-in-network', run.result.bronze.runId)),
            'utf8',
          ),
        ),
      );
      const referencing = plan.items.findIndex((i) => i.kind === 'silver' && i.table === 'negotiated_prices');
      const perBucket = await Promise.all(
        planned.buckets.map(async ({ bucket }) => {
          const key = reconcileKeysKey('tic-in-network', run.result.bronze.runId, bucket, referencing);
          // Alone, a bucket's references all dangle: their count is what the bucket holds.
          const inspector = await openParquetInspector();
          try {
            return (await inspector.joinKeyBuckets([join(run.lakeDir, key)], 1, 0)).refs[0]!.referenced;
          } finally {
            await inspector.close();
          }
        }),
      );
      expect(perBucket.every((n) => n > 0)).toBe(true);
      const total = perBucket.reduce((a, b) => a + b, 0);
      expect(perBucket.every((n) => n < total)).toBe(true);
    });

    it("reads only its own bronze parts in a group's item, its own file in a file's item, its own keys in a bucket", async () => {
      const recording = new RecordingStore(run.lake);
      await planReconcile({ bronzeManifestKey: manifestKey }, deps(run.lake, run.work, SPLIT));
      const plan = ReconcilePlan.parse(
        JSON.parse(
          await readFile(
            join(run.lakeDir, reconcilePlanKey('tic-in-network', run.result.bronze.runId)),
            'utf8',
          ),
        ),
      );
      const { parts } = run.result.bronze.manifest;
      const dataKeys = (reads: RecordingStore['reads']) =>
        [...new Set(reads.map((r) => r.key))].filter(
          (k) => (k.endsWith('.ndjson.gz') || k.endsWith('.parquet')) && !k.includes('/_reconcile/'),
        );
      for (const [item, planned] of plan.items.entries()) {
        recording.reads.length = 0;
        await reconcileItem({ bronzeManifestKey: manifestKey, item }, deps(recording, run.work));
        if (planned.kind === 'bronze') {
          expect(dataKeys(recording.reads)).toEqual(
            parts.slice(planned.firstPart, planned.endPart).map((p) => p.key),
          );
          expect(planned.endPart - planned.firstPart).toBeLessThan(parts.length);
        } else {
          expect(dataKeys(recording.reads)).toEqual([planned.key]);
          // Read once, whole, to scratch: its sha256, footer, keys and profile all come from that copy.
          const reads = recording.reads.filter((r) => r.key === planned.key);
          expect(reads).toHaveLength(1);
          expect(reads[0]!.range).toBeUndefined();
        }
      }
      for (let bucket = 0; bucket < plan.keyBuckets; bucket++) {
        recording.reads.length = 0;
        await reconcileKeyBucket({ bronzeManifestKey: manifestKey, bucket }, deps(recording, run.work));
        const keyReads = recording.reads.filter((r) => r.key.includes('/keys/'));
        expect(keyReads.length).toBeGreaterThan(0);
        expect(
          keyReads.every((r) => r.key.includes(`/keys/bucket-${String(bucket).padStart(5, '0')}/`)),
        ).toBe(true);
        expect(dataKeys(recording.reads)).toEqual([]);
      }
    });

    /** Both ways of reconciling the broken lake fail alike; the lake is restored after. */
    async function bothFail(restore: () => Promise<void>): Promise<string> {
      try {
        const single = await reconcile({ bronzeManifestKey: manifestKey }, deps(run.lake, run.work)).catch(
          (e: unknown) => e,
        );
        const distributed = await reconcileDistributed(run.lake, run.work, manifestKey).catch(
          (e: unknown) => e,
        );
        expect(single).toBeInstanceOf(ReconciliationError);
        expect(distributed).toBeInstanceOf(ReconciliationError);
        expect((distributed as Error).message).toBe((single as Error).message);
        return (distributed as Error).message;
      } finally {
        await restore();
      }
    }
    /** Replaces a lake file's bytes until the returned restore. */
    async function replaced(key: string, edit: (bytes: Buffer) => Buffer | Promise<Buffer>) {
      const file = join(run.lakeDir, key);
      const original = await readFile(file);
      await writeFile(file, await edit(Buffer.from(original)));
      return () => writeFile(file, original);
    }

    it('catches one byte flipped in a bronze part, stored or inside its records, with the same messages', async () => {
      const part = run.result.bronze.manifest.parts[5]!;
      // In the stored gzip stream: its sha256, and its records no longer readable.
      const stored = await bothFail(
        await replaced(part.key, (bytes) => {
          bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
          return bytes;
        }),
      );
      expect(stored).toContain(`bronze part ${part.key} sha256: expected ${part.sha256}`);
      expect(stored).toMatch(
        new RegExp(`bronze part ${part.key} gzip: expected readable, found unreadable: `),
      );
      expect(stored).toContain(`${part.recordName}: parsed = bronze records: expected`);
      // In a record's text, re-gzip'd: every count holds, the checksum does not.
      const inText = await bothFail(
        await replaced(part.key, (bytes) => {
          const text = gunzipSync(bytes);
          const at = text.indexOf('"billing_code":"') + '"billing_code":"'.length;
          text[at]! ^= 0x01;
          return gzipSync(text);
        }),
      );
      expect(inText).toContain(`bronze part ${part.key} sha256: expected ${part.sha256}`);
      expect(inText).not.toContain('records:');
    });

    it('catches a silver row gone missing, with the same messages', async () => {
      const table = run.result.silver!.manifest.tables.in_network_items!;
      expect(table.files).toHaveLength(1);
      const file = join(run.lakeDir, table.files[0]!.key);
      const original = await readFile(file);
      await rewriteParquet(
        run.lakeDir,
        table.files[0]!.key,
        (src) => `SELECT * FROM ${src} LIMIT ${table.rowsWritten - 1}`,
      );
      const message = await bothFail(() => writeFile(file, original));
      expect(message).toContain(
        `in_network_items: parquet rows = rows written: expected ${table.rowsWritten}, found ${table.rowsWritten - 1} (-1)`,
      );
      expect(message).toContain('in_network_items: parquet sha256');
    });

    it('fails a corrupt file of a joined table as a check, not a crash, with the same messages', async () => {
      const key = run.result.silver!.manifest.tables.provider_groups!.files[0]!.key;
      // Cut short: no footer, so neither its rows nor its key columns can be read.
      const message = await bothFail(await replaced(key, (bytes) => bytes.subarray(0, bytes.length - 100)));
      expect(message).toContain('provider_groups: parquet sha256');
      expect(message).toContain('provider_groups: key columns: expected readable, found unreadable: ');
      expect(message).toMatch(
        /provider_groups: parquet rows = rows written: expected \d+, found unreadable footer: /,
      );
      expect(message).not.toContain('-item-');
    });

    it('catches a dangling reference, naming it, with the same messages', async () => {
      const silver: SilverManifest = run.result.silver!.manifest;
      const groups = silver.tables.provider_groups!;
      const prices = join(run.lakeDir, silver.tables.negotiated_prices!.files[0]!.key);
      const file = join(run.lakeDir, groups.files[0]!.key);
      const original = await readFile(file);
      await rewriteParquet(
        run.lakeDir,
        groups.files[0]!.key,
        (src) =>
          `SELECT * FROM ${src} WHERE CAST(provider_group_id AS VARCHAR) <> (SELECT CAST(min(v) AS VARCHAR) FROM (SELECT unnest(provider_group_ids) AS v FROM read_parquet('${prices}')))`,
      );
      const message = await bothFail(() => writeFile(file, original));
      expect(message).toMatch(
        /negotiated_prices\.provider_group_ids → provider_groups\.provider_group_id: dangling references \(e\.g\. [^)]+\): expected 0, found [1-9]/,
      );
    });
  });

  it('gives the report one invocation gives on the bundled sample', async () => {
    const { lake, work, result } = await sampleRun();
    const single = await reconcile({ bronzeManifestKey: result.bronze.manifestKey }, deps(lake, work));
    expect(single).toEqual(withoutCost(result.reconciliation!));
    expect(single.status).toBe('passed');
  });
});

const SKIP = motoSkipReason();
describe.skipIf(SKIP !== undefined)(
  `Distributed reconciliation on S3 (moto_server)${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    let server: MotoServer;
    beforeAll(async () => {
      server = await startMotoServer();
    });
    afterAll(async () => server?.stop());

    it('reconciles a lake in S3 in steps, each silver file read once, into the report of the local lake', async () => {
      const { lakeDir, work, result } = await sampleRun();
      const bucket = await server.createBucket('reconcile-lake');
      const s3 = new S3ObjectStore({ client: server.s3, bucket, prefix: 'lake/' });
      for (const file of await listFiles(lakeDir)) await s3.write(file, await readFile(join(lakeDir, file)));
      const recording = new RecordingStore(s3);
      const { report } = await reconcileDistributed(recording, work, result.bronze.manifestKey);
      expect(report).toEqual(withoutCost(result.reconciliation!));
      const parquetReads = recording.reads.filter((r) => r.key.endsWith('.parquet'));
      expect(parquetReads.length).toBeGreaterThan(0);
      expect(new Set(parquetReads.map((r) => r.key)).size).toBe(parquetReads.length);
      expect(parquetReads.every((r) => r.range === undefined)).toBe(true);
      // The report's table profiles come from the items, so they are there on S3 too.
      expect(report.profiles?.negotiated_prices).toMatchObject({ rows: expect.any(Number) });
      const reportKey = reconciliationKey('tic-in-network', result.bronze.runId);
      expect(JSON.parse(await readText(s3, reportKey))).toEqual(
        withoutCost(JSON.parse(await readFile(join(lakeDir, reportKey), 'utf8'))),
      );
      // Nothing of the steps is left behind.
      const left: string[] = [];
      for await (const o of s3.list('silver/')) if (o.key.includes('/_work/')) left.push(o.key);
      expect(left).toEqual([]);
    });
  },
);
