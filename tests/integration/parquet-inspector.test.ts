import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import type { TableInspector } from '../../shared/ports/table-inspector.ts';
import { tempDir } from '../helpers/lake.ts';

/** Reconciliation's reads of real Parquet files, written here by DuckDB itself. */
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

  it('counts rows and distinct key combinations', async () => {
    const file = await parquet(
      'rows',
      `SELECT * FROM (VALUES ('a', 1), ('a', 1), ('a', 2), ('b', NULL), ('b', NULL)) t(path, idx)`,
    );
    expect(await inspector.countRows(file)).toBe(5);
    expect(await inspector.countDistinct(file, ['path', 'idx'])).toBe(3);
    expect(await inspector.countDistinct(file, ['path'])).toBe(2);
  });

  it('finds list elements no target row has: each reference counted, nulls skipped, examples sorted', async () => {
    const prices = await parquet(
      'prices',
      `SELECT * FROM (VALUES (['g1', 'g2']), (['g9', NULL]), (NULL), ([]), (['g9', 'g1', 'g0'])) t(ids)`,
    );
    // A target id twice (two group rows of one reference) must not count a reference twice.
    const groups = await parquet(
      'groups',
      `SELECT * FROM (VALUES ('g1'), ('g1'), ('g2'), (NULL)) t(provider_group_id)`,
    );
    const found = await inspector.danglingReferences(
      { file: prices, column: 'ids' },
      { file: groups, column: 'provider_group_id' },
    );
    expect(found).toEqual({ referenced: 6, dangling: 3, examples: ['g0', 'g9'] });
  });

  it('compares values as text, scalar columns as they are, and gives at most five examples', async () => {
    const refs = await parquet(
      'refs',
      'SELECT CAST(range AS BIGINT) AS group_id FROM range(20) UNION ALL SELECT NULL',
    );
    const targets = await parquet('targets', `SELECT CAST(range AS VARCHAR) AS id FROM range(0, 20, 2)`);
    const found = await inspector.danglingReferences(
      { file: refs, column: 'group_id' },
      { file: targets, column: 'id' },
    );
    // Sorted as text: 1, 11, 13, 15, 17 come before 3.
    expect(found).toEqual({ referenced: 20, dangling: 10, examples: ['1', '11', '13', '15', '17'] });
  });

  it('treats every reference as dangling when the target table has no file', async () => {
    const prices = await parquet('lonely', `SELECT * FROM (VALUES (['x', 'y']), (['x'])) t(ids)`);
    const found = await inspector.danglingReferences(
      { file: prices, column: 'ids' },
      { file: undefined, column: 'provider_group_id' },
    );
    expect(found).toEqual({ referenced: 3, dangling: 3, examples: ['x', 'y'] });
  });

  it('counts no references in a column of nulls and empty lists', async () => {
    const prices = await parquet(
      'no-refs',
      `SELECT * FROM (VALUES (CAST(NULL AS VARCHAR[])), ([]), ([NULL])) t(ids)`,
    );
    const groups = await parquet('some-groups', `SELECT * FROM (VALUES ('g1')) t(provider_group_id)`);
    const found = await inspector.danglingReferences(
      { file: prices, column: 'ids' },
      { file: groups, column: 'provider_group_id' },
    );
    expect(found).toEqual({ referenced: 0, dangling: 0, examples: [] });
  });

  it('finds nothing dangling when every reference resolves', async () => {
    const prices = await parquet('resolved', `SELECT * FROM (VALUES (['g1']), (['g2', 'g1'])) t(ids)`);
    const groups = await parquet('all-groups', `SELECT * FROM (VALUES ('g1'), ('g2')) t(provider_group_id)`);
    const found = await inspector.danglingReferences(
      { file: prices, column: 'ids' },
      { file: groups, column: 'provider_group_id' },
    );
    expect(found).toEqual({ referenced: 3, dangling: 0, examples: [] });
  });
});
