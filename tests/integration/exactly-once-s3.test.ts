import { spawn } from 'node:child_process';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { generateFile, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/**
 * The exactly-once drills of exactly-once.test.ts with the lake on S3 (moto_server), through the CLI a
 * user runs (`--lake s3://bucket/prefix`, endpoint from AWS_ENDPOINT_URL_S3): the lease is a conditional
 * create on S3 (`If-None-Match: *`), the commit a conditional replace (`If-Match`).
 */

const SKIP = motoSkipReason();
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

describe.skipIf(SKIP !== undefined)(`exactly once on an S3 lake${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let moto: MotoServer;
  let file: string;
  let prices: number;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    tmp = await tempDir('sluice-exactly-once-s3-');
    const generated = await generateFile(tmp.dir, 'rates.json.gz', { seed: 51, targetBytes: 2_000_000 });
    file = join(tmp.dir, 'rates.json.gz');
    prices = generated.facts.negotiated_prices;
    moto = await startMotoServer();
    await moto.createBucket('lakes');
    env = { ...process.env, ...moto.env };
  }, 120_000);
  afterAll(async () => {
    await moto?.stop();
    await tmp?.cleanup();
  });

  /** Runs the CLI without blocking this process (moto answers from another process anyway). */
  function sluice(args: string[]): Promise<Finished> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], { env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d;
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d;
      });
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  const run = (lake: string, ...more: string[]) =>
    sluice(['run', file, '-d', 'tic-in-network', '--lake', lake, '--json', '-q', ...more]);

  /** The rows of a table in a source's current version, as its commit record names them. */
  async function currentRows(prefix: string, table: string): Promise<number[]> {
    const store = new S3ObjectStore({ client: moto.s3, bucket: 'lakes', prefix: `${prefix}/` });
    const rows: number[] = [];
    for await (const object of store.list('_sources/tic-in-network/')) {
      if (!object.key.endsWith('/current.json')) continue;
      const record = JSON.parse((await buffer(await store.read(object.key))).toString('utf8'));
      const manifest = JSON.parse(
        (await buffer(await store.read(record.silverManifestKey))).toString('utf8'),
      );
      rows.push(manifest.tables[table].rowsWritten);
    }
    return rows;
  }

  it('runs one source twice at once into one S3 lake: one commits, the other says who holds it (exit 3)', async () => {
    const lake = 's3://lakes/one';
    const [a, b] = await Promise.all([run(lake), run(lake)]);
    const outcomes = [a, b].sort((x, y) => (x.status ?? 9) - (y.status ?? 9));
    expect(outcomes[0]!.status, outcomes[0]!.stderr).toBe(0);
    expect(JSON.parse(outcomes[0]!.stdout)).toMatchObject({ status: 'reconciled' });
    expect(outcomes[1]!.status, outcomes[1]!.stderr).toBe(3);
    expect(outcomes[1]!.stderr).toMatch(/another run of .*rates\.json\.gz is in progress since /);
    // One source, one current version: the table holds the file's rows once.
    expect(await currentRows('one', 'negotiated_prices')).toEqual([prices]);

    // The loser, run again, and a touched file: the same bytes, so nothing lands twice.
    const again = await run(lake);
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'unchanged' });
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later);
    const touched = await run(lake);
    expect(touched.status, touched.stderr).toBe(0);
    expect(JSON.parse(touched.stdout)).toMatchObject({ status: 'unchanged' });
    expect(await currentRows('one', 'negotiated_prices')).toEqual([prices]);
  }, 600_000);

  it('queries an S3 lake: the committed version only, fetching the tables the SQL names and no others', async () => {
    const lake = 's3://lakes/query';
    const first = await run(lake);
    expect(first.status, first.stderr).toBe(0);
    // A stray Parquet file in the table's folder, as a killed or failed run leaves: no commit names it.
    const store = new S3ObjectStore({ client: moto.s3, bucket: 'lakes', prefix: 'query/' });
    const committed = (await listKeys(store, 'silver/tic-in-network/negotiated_prices/')).find((k) =>
      k.endsWith('.parquet'),
    )!;
    await store.write(
      committed.replace(/build=[^/]+/, 'build=uncommitted'),
      await buffer(await store.read(committed)),
    );

    const count = await sluice([
      'query',
      'SELECT count(*) AS n FROM negotiated_prices',
      '--lake',
      lake,
      '--json',
    ]);
    expect(count.status, count.stderr).toBe(0);
    expect(JSON.parse(count.stdout)).toEqual({ n: prices });
    const fetched = /fetching (\d+) silver file\(s\)/.exec(count.stderr);
    const files = await currentFiles(store, 'negotiated_prices');
    expect(Number(fetched?.[1])).toBe(files.length);

    // Listing the views fetches nothing.
    const views = await sluice(['query', '--lake', lake]);
    expect(views.status, views.stderr).toBe(0);
    expect(views.stdout).toMatch(/^\s+negotiated_prices_history$/m);
    expect(views.stderr).not.toMatch(/fetching/);

    const bad = await sluice(['query', 'SELECT 1', '--lake', 's3://lakes/empty']);
    expect(bad.status, bad.stderr).toBe(2);
    expect(bad.stderr).toMatch(/has no committed silver tables yet/);
  }, 600_000);

  it('runs one file into two S3 lakes at once: each its own lease and scratch, both reconcile', async () => {
    const [a, b] = await Promise.all([run('s3://lakes/two-a'), run('s3://lakes/two-b')]);
    for (const result of [a, b]) {
      expect(result.status, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ status: 'reconciled' });
    }
    expect(await currentRows('two-a', 'negotiated_prices')).toEqual([prices]);
    expect(await currentRows('two-b', 'negotiated_prices')).toEqual([prices]);
  }, 600_000);
});

async function listKeys(store: S3ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  return keys;
}

/** The files of a table that the sources' current versions name. */
async function currentFiles(store: S3ObjectStore, table: string): Promise<string[]> {
  const files: string[] = [];
  for (const key of await listKeys(store, '_sources/tic-in-network/')) {
    if (!key.endsWith('/current.json')) continue;
    const record = JSON.parse((await buffer(await store.read(key))).toString('utf8'));
    files.push(...(record.tables[table] ?? []));
  }
  return files;
}
