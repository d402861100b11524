import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import type { SilverContract } from '../../shared/contracts/silver/contract.ts';
import type { TableInspector } from '../../shared/ports/table-inspector.ts';
import { joinBucket } from '../../shared/stages/reconcile/key-buckets.ts';
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

  it('lists distinct key combinations as text, nulls included', async () => {
    const file = await parquet(
      'rows',
      `SELECT * FROM (VALUES ('a', 1), ('a', 1), ('a', 2), ('b', NULL), ('b', NULL)) t(path, idx)`,
    );
    expect(await inspector.distinctRows(file, ['path', 'idx'])).toEqual([
      '["a","1"]',
      '["a","2"]',
      '["b",null]',
    ]);
    expect(await inspector.distinctRows(file, ['path'])).toEqual(['["a"]', '["b"]']);
  });

  it('counts each value of a list or scalar column as text, nulls skipped', async () => {
    const list = await parquet('list', `SELECT * FROM (VALUES (['g1', 'g2']), (['g1', NULL]), (NULL)) t(v)`);
    expect(await inspector.valueCounts(list, 'v')).toEqual([
      ['g1', 2],
      ['g2', 1],
    ]);
    const scalar = await parquet('scalar', 'SELECT CAST(range % 3 AS BIGINT) AS v FROM range(7)');
    expect(await inspector.valueCounts(scalar, 'v')).toEqual([
      ['0', 3],
      ['1', 2],
      ['2', 2],
    ]);
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
    const contract = {
      references: [{ from: { table: 'r', column: 'ref' }, to: { table: 't', column: 'id' } }],
    };
    const joined = joinBucket(
      { planId: 'p' },
      0,
      [
        { planId: 'p', item: 0, refs: { 0: { from: await inspector.valueCounts(from, 'ref') } } },
        ...(to
          ? [
              {
                planId: 'p',
                item: 1,
                refs: { 0: { to: (await inspector.valueCounts(to, 'id')).map(([v]) => v) } },
              },
            ]
          : []),
      ],
      contract as unknown as SilverContract,
    );
    return joined.refs[0];
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
