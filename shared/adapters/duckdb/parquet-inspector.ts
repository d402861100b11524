import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { TableInspector } from '../../ports/table-inspector.ts';

/** SQL string literal (single quotes doubled): file paths are ours, but never trust a path in SQL. */
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
/** SQL identifier (double quotes doubled). */
const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * DuckDB's memory for the checks: without a limit it takes up to 80 % of the machine; beyond it, the
 * grouping spills to the temporary folder.
 */
const MEMORY_LIMIT = '384MB';

/** TableInspector over DuckDB: reads the Parquet files themselves, only the columns asked for. */
export async function openParquetInspector(): Promise<TableInspector> {
  // A spill folder of its own under the OS temporary folder (Lambda: /tmp), not DuckDB's default `.tmp`
  // in a read-only cwd; removed on close.
  const spillDir = await mkdtemp(join(tmpdir(), 'sluice-inspector-'));
  const instance = await DuckDBInstance.create(':memory:', {
    threads: '2',
    memory_limit: MEMORY_LIMIT,
    temp_directory: spillDir,
  });
  const connection = await instance.connect();
  const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowsJS();
  const parquet = (file: string) => `read_parquet(${literal(file)}, hive_partitioning = false)`;
  return {
    async valueCounts(file, column) {
      const name = identifier(column);
      // A list column is unnested into one value per element; a scalar column is used as is.
      const described = await rows(`SELECT column_type FROM (DESCRIBE SELECT ${name} FROM ${parquet(file)})`);
      const isList = String(described[0]?.[0] ?? '').endsWith('[]');
      const values = `SELECT ${isList ? `unnest(${name})` : name} AS v FROM ${parquet(file)}`;
      const counted = await rows(
        `SELECT CAST(v AS VARCHAR), count(*) FROM (${values}) WHERE v IS NOT NULL GROUP BY 1 ORDER BY 1`,
      );
      return counted.map((row): [string, number] => [String(row[0]), Number(row[1])]);
    },
    async distinctRows(file, columns) {
      const list = columns.map((c) => `CAST(${identifier(c)} AS VARCHAR)`).join(', ');
      const distinct = await rows(`SELECT DISTINCT ${list} FROM ${parquet(file)} ORDER BY ALL`);
      return distinct.map((row) => JSON.stringify(row.map((v) => (v === null ? null : String(v)))));
    },
    async close() {
      connection.closeSync();
      instance.closeSync();
      await rm(spillDir, { recursive: true, force: true });
    },
  };
}
