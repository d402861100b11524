import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ColumnProfile, TableInspector } from '../../ports/table-inspector.ts';

/** SQL string literal (single quotes doubled): file paths are ours, but never trust a path in SQL. */
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;
/** SQL identifier (double quotes doubled). */
const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * DuckDB's memory for the checks: without a limit it takes up to 80 % of the machine; beyond it, the
 * grouping spills to the temporary folder.
 */
const MEMORY_LIMIT = '384MB';
/** Characters of a min or max value kept in a profile: enough to recognize it, never a whole document. */
const PROFILE_VALUE_CHARS = 60;
/**
 * Rows of a table whose distinct values a profile estimates: the estimate of a larger table is of its
 * first rows, so that a profile costs at most this many rows' scan (≈ 2 s on a busy core) at any size.
 */
const PROFILE_DISTINCT_ROWS = 500_000;
/** Whose statistics are compared as numbers, not as text. */
const INTEGER_TYPE = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT)$/;
const NUMERIC_TYPE = /^(FLOAT|DOUBLE|REAL|DECIMAL\(.*\))$/;
/** Types without an order or a useful distinct count: lists, structs, maps, unions. */
const NESTED_TYPE = /(\[\d*\]$)|^(STRUCT|MAP|UNION)\b/;

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
    async profile(file) {
      const source = `read_parquet(${literal(file)}, hive_partitioning = false)`;
      const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
      const columns = described.getRowsJS().map((row) => ({ name: String(row[0]), type: String(row[1]) }));
      const scalar = columns.filter((c) => !NESTED_TYPE.test(c.type));
      // Rows, nulls, min and max from the footer's statistics (exact, no data read), per top-level column.
      const rowCount = Number((await rows(`SELECT count(*) FROM ${source}`))[0]?.[0] ?? 0);
      const stats = new Map<string, unknown[]>();
      if (scalar.length > 0) {
        const reader = await connection.runAndReadAll(
          `SELECT path_in_schema, sum(stats_null_count),
                  min(stats_min_value) FILTER (WHERE stats_min_value IS NOT NULL),
                  max(stats_max_value) FILTER (WHERE stats_max_value IS NOT NULL),
                  min(TRY_CAST(stats_min_value AS DOUBLE)), max(TRY_CAST(stats_max_value AS DOUBLE)),
                  min(TRY_CAST(stats_min_value AS HUGEINT)), max(TRY_CAST(stats_max_value AS HUGEINT))
             FROM parquet_metadata(${literal(file)}) GROUP BY path_in_schema`,
        );
        for (const row of reader.getRowsJS()) stats.set(String(row[0]), row.slice(1));
      }
      // Distinct values estimated (HyperLogLog) over the first rows only: a bounded scan at any size.
      const sampled = scalar.length > 0 && rowCount > 0;
      const estimates = sampled
        ? ((
            await connection.runAndReadAll(
              `SELECT ${scalar.map((c) => `approx_count_distinct(${identifier(c.name)})`).join(', ')}
                 FROM (SELECT ${scalar.map((c) => identifier(c.name)).join(', ')} FROM ${source} LIMIT ${PROFILE_DISTINCT_ROWS})`,
            )
          ).getRowsJS()[0] ?? [])
        : [];
      const profiles: ColumnProfile[] = columns.map(({ name, type }) => {
        const at = scalar.findIndex((c) => c.name === name);
        const found = stats.get(name);
        if (at < 0 || !found) return { name, type };
        const [nulls, textMin, textMax, doubleMin, doubleMax, intMin, intMax] = found;
        const numeric = NUMERIC_TYPE.test(type);
        const integer = INTEGER_TYPE.test(type);
        const min = integer ? intMin : numeric ? doubleMin : textMin;
        const max = integer ? intMax : numeric ? doubleMax : textMax;
        return {
          name,
          type,
          nulls: Number(nulls ?? 0),
          ...(estimates[at] !== undefined && { distinct: Number(estimates[at]) }),
          ...(min !== null && min !== undefined && { min: String(min).slice(0, PROFILE_VALUE_CHARS) }),
          ...(max !== null && max !== undefined && { max: String(max).slice(0, PROFILE_VALUE_CHARS) }),
        };
      });
      return {
        rows: rowCount,
        columns: profiles,
        ...(rowCount > PROFILE_DISTINCT_ROWS && { distinctOverRows: PROFILE_DISTINCT_ROWS }),
      };
    },
    async firstRowsPerGroup(file, group, columns, perGroup) {
      const source = `read_parquet(${literal(file)}, hive_partitioning = false, file_row_number = true)`;
      const selected = columns.map((c) => `CAST(${identifier(c)} AS VARCHAR) AS ${identifier(c)}`);
      const reader = await connection.runAndReadAll(
        `SELECT ${selected.join(', ')} FROM ${source}
         QUALIFY row_number() OVER (PARTITION BY ${identifier(group)} ORDER BY file_row_number) <= ${Math.trunc(perGroup)}
         ORDER BY ${identifier(group)}, file_row_number`,
      );
      return reader
        .getRowsJS()
        .map((row) => Object.fromEntries(columns.map((c, i) => [c, row[i] == null ? null : String(row[i])])));
    },
    async close() {
      connection.closeSync();
      instance.closeSync();
      await rm(spillDir, { recursive: true, force: true });
    },
  };
}
