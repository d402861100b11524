import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import type { KeysToWrite, TableInspector } from '../../shared/ports/table-inspector.ts';
import { firstExamples } from '../../shared/stages/reconcile/key-buckets.ts';
import { tempDir } from '../helpers/lake.ts';

/**
 * Reconciliation's reads of real Parquet files, written here by DuckDB itself, and the join of what it
 * read (one key bucket holding every key).
 */
describe('openParquetInspector', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let inspector: TableInspector;

  /** Writes `select` (SQL) to a Parquet file of the temp dir. */
  async function parquet(name: string, select: string): Promise<string> {
    const file = join(tmp.dir, `${name}.parquet`);
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(`COPY (${select}) TO '${file}' (FORMAT parquet)`);
    connection.closeSync();
    instance.closeSync();
    return file;
  }

  beforeAll(async () => {
    tmp = await tempDir('sluice-inspector-test-');
    inspector = await openParquetInspector();
  });
  afterAll(async () => {
    await inspector.close();
    await tmp.cleanup();
  });

  /** The keys of `file` written into `buckets` key buckets, then each bucket joined alone. */
  async function keysByBucket(file: string, keys: KeysToWrite, buckets: number) {
    const out = Array.from({ length: buckets }, (_, b) => join(tmp.dir, `keys-${files++}-${b}.parquet`));
    await inspector.writeKeyBuckets(file, keys, out, 'plan-1');
    expect(await inspector.keyFileLabels(out)).toEqual(out.map(() => 'plan-1'));
    return Promise.all(out.map((f) => inspector.joinKeyBuckets([f], 1, 10)));
  }

  it('counts distinct quarantine keys (path and index) across the buckets', async () => {
    const file = await parquet(
      'rows',
      `SELECT * FROM (VALUES ('a', 1), ('a', 1), ('a', 2), ('b', 7), ('b', 7)) t(record_path, _record_index)`,
    );
    const joined = await keysByBucket(file, { refs: [], quarantine: ['record_path', '_record_index'] }, 3);
    expect(joined.reduce((n, j) => n + j.quarantined, 0)).toBe(3);
    // Each key lands in one bucket only: a key's rows are all in its bucket.
    expect(joined.filter((j) => j.quarantined > 0).length).toBeGreaterThan(1);
  });

  it('counts each value of a list or scalar column as text, nulls skipped', async () => {
    const list = await parquet('list', `SELECT * FROM (VALUES (['g1', 'g2']), (['g1', NULL]), (NULL)) t(v)`);
    const fromList = await keysByBucket(list, { refs: [{ index: 0, role: 'from', column: 'v' }] }, 2);
    // Alone, every reference of a bucket dangles: the examples are its values.
    expect(fromList.reduce((n, j) => n + j.refs[0]!.referenced, 0)).toBe(3);
    expect(fromList.flatMap((j) => j.refs[0]!.examples).sort()).toEqual(['g1', 'g2']);
    const scalar = await parquet('scalar', 'SELECT CAST(range % 3 AS BIGINT) AS v FROM range(7)');
    const fromScalar = await keysByBucket(scalar, { refs: [{ index: 0, role: 'from', column: 'v' }] }, 1);
    expect(fromScalar[0]!.refs[0]).toEqual({ referenced: 7, dangling: 7, examples: ['0', '1', '2'] });
  });

  it('profiles a table from its statistics: numbers ordered as numbers, across row groups', async () => {
    const file = join(tmp.dir, 'profile.parquet');
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    // Three row groups; as text '63236.5' < '8' and '10' < '9', as numbers not.
    await connection.run(
      `COPY (SELECT * FROM (VALUES (9, 8.0, 'b', ['x']), (10, 63236.5, NULL, NULL), (9, 12.25, 'a', ['y', 'z'])) t(id, rate, name, tags))
         TO '${file}' (FORMAT parquet, ROW_GROUP_SIZE 1)`,
    );
    connection.closeSync();
    instance.closeSync();
    const profile = await inspector.profile(file);
    expect(profile.rows).toBe(3);
    expect(profile.distinctOverRows).toBeUndefined();
    expect(profile.columns).toEqual([
      { name: 'id', type: 'INTEGER', nulls: 0, distinct: 2, min: '9', max: '10' },
      { name: 'rate', type: 'DECIMAL(7,2)', nulls: 0, distinct: 3, min: '8', max: '63236.5' },
      { name: 'name', type: 'VARCHAR', nulls: 1, distinct: 2, min: 'a', max: 'b' },
      { name: 'tags', type: 'VARCHAR[]' },
    ]);
  });

  it('gives the first rows of each group, in file order', async () => {
    const file = await parquet(
      'groups',
      `SELECT * FROM (VALUES ('r1', 1), ('r2', 2), ('r1', 3), ('r1', 4), ('r2', 5)) t(rule_id, n)`,
    );
    expect(await inspector.firstRowsPerGroup(file, 'rule_id', ['rule_id', 'n'], 2)).toEqual([
      { rule_id: 'r1', n: '1' },
      { rule_id: 'r1', n: '3' },
      { rule_id: 'r2', n: '2' },
      { rule_id: 'r2', n: '5' },
    ]);
  });

  let files = 0;
  /**
   * Dangling references of column `ref` of `refs` (SQL) to column `id` of `targets` (SQL), each written to
   * a Parquet file first; no `targets`: the target table has no file.
   */
  async function danglingIn(refs: string, targets?: string) {
    const from = await parquet(`refs-${files++}`, refs);
    const to = targets === undefined ? undefined : await parquet(`targets-${files++}`, targets);
    // Into two key buckets, joined one by one and added up, as reconciliation does.
    const n = files++;
    const buckets = (what: string) => [0, 1].map((b) => join(tmp.dir, `${what}-${n}-${b}.parquet`));
    await inspector.writeKeyBuckets(
      from,
      { refs: [{ index: 0, role: 'from', column: 'ref' }] },
      buckets('from'),
      'p',
    );
    if (to)
      await inspector.writeKeyBuckets(
        to,
        { refs: [{ index: 0, role: 'to', column: 'id' }] },
        buckets('to'),
        'p',
      );
    const total = { referenced: 0, dangling: 0, examples: [] as string[] };
    for (const bucket of [0, 1]) {
      const emitted = [buckets('from')[bucket]!, ...(to ? [buckets('to')[bucket]!] : [])];
      const joined = (await inspector.joinKeyBuckets(emitted, 1, 5)).refs[0]!;
      total.referenced += joined.referenced;
      total.dangling += joined.dangling;
      total.examples.push(...joined.examples);
    }
    return { ...total, examples: firstExamples([total.examples]) };
  }

  it('finds list elements no target row has: each reference counted, nulls skipped, examples sorted', async () => {
    const found = await danglingIn(
      `SELECT * FROM (VALUES (['g1', 'g2']), (['g9', NULL]), (NULL), ([]), (['g9', 'g1', 'g0'])) t(ref)`,
      // A target id twice (two group rows of one reference) must not count a reference twice.
      `SELECT * FROM (VALUES ('g1'), ('g1'), ('g2'), (NULL)) t(id)`,
    );
    expect(found).toEqual({ referenced: 6, dangling: 3, examples: ['g0', 'g9'] });
  });

  it('compares values as text, scalar columns as they are, and gives at most five examples', async () => {
    const found = await danglingIn(
      'SELECT CAST(range AS BIGINT) AS ref FROM range(20) UNION ALL SELECT NULL',
      'SELECT CAST(range AS VARCHAR) AS id FROM range(0, 20, 2)',
    );
    // Sorted as text: 1, 11, 13, 15, 17 come before 3.
    expect(found).toEqual({ referenced: 20, dangling: 10, examples: ['1', '11', '13', '15', '17'] });
  });

  it('treats every reference as dangling when the target table has no file', async () => {
    const found = await danglingIn(`SELECT * FROM (VALUES (['x', 'y']), (['x'])) t(ref)`);
    expect(found).toEqual({ referenced: 3, dangling: 3, examples: ['x', 'y'] });
  });

  it('counts no references in a column of nulls and empty lists', async () => {
    const found = await danglingIn(
      `SELECT * FROM (VALUES (CAST(NULL AS VARCHAR[])), ([]), ([NULL])) t(ref)`,
      `SELECT * FROM (VALUES ('g1')) t(id)`,
    );
    expect(found).toEqual({ referenced: 0, dangling: 0, examples: [] });
  });

  it('finds nothing dangling when every reference resolves', async () => {
    const found = await danglingIn(
      `SELECT * FROM (VALUES (['g1']), (['g2', 'g1'])) t(ref)`,
      `SELECT * FROM (VALUES ('g1'), ('g2')) t(id)`,
    );
    expect(found).toEqual({ referenced: 3, dangling: 0, examples: [] });
  });
});
