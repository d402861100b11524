import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { ColumnProfile, TableInspector } from '../../ports/table-inspector.ts';
import { ident, literal } from './final-table.ts';

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
  let tables = 0;
  return {
    async writeKeyBuckets(file, keys, outFiles, label) {
      // A table of its own per call: calls on one inspector may overlap.
      const emitted = `emitted_${++tables}`;
      const source = parquet(file);
      const selects: string[] = [];
      for (const ref of keys.refs) {
        const name = ident(ref.column);
        const described = await rows(`SELECT column_type FROM (DESCRIBE SELECT ${name} FROM ${source})`);
        const isList = String(described[0]?.[0] ?? '').endsWith('[]');
        const values = `SELECT CAST(${isList ? `unnest(${name})` : name} AS VARCHAR) AS v FROM ${source}`;
        selects.push(
          ref.role === 'from'
            ? `SELECT 'from' AS kind, ${ref.index} AS ref, v, count(*) AS n FROM (${values}) WHERE v IS NOT NULL GROUP BY v`
            : `SELECT DISTINCT 'to' AS kind, ${ref.index} AS ref, v, 1 AS n FROM (${values}) WHERE v IS NOT NULL`,
        );
      }
      if (keys.quarantine) {
        // A row's key: its columns as text, NUL-separated (no column's text holds a NUL).
        const parts = keys.quarantine.map((c) => `coalesce(CAST(${ident(c)} AS VARCHAR), '')`);
        selects.push(
          `SELECT DISTINCT 'quarantine' AS kind, NULL::INTEGER AS ref, concat_ws(chr(0), ${parts.join(', ')}) AS v, 1 AS n FROM ${source}`,
        );
      }
      const buckets = outFiles.length;
      const all =
        selects.length > 0
          ? selects.map((s) => `(${s})`).join(' UNION ALL ')
          : `SELECT NULL::VARCHAR AS kind, NULL::INTEGER AS ref, NULL::VARCHAR AS v, NULL::BIGINT AS n WHERE false`;
      await connection.run(
        `CREATE TEMP TABLE ${emitted} AS SELECT kind, ref::INTEGER AS ref, v, n::BIGINT AS n, hash(v) % ${buckets} AS bucket FROM (${all})`,
      );
      try {
        for (const [bucket, out] of outFiles.entries()) {
          await connection.run(
            `COPY (SELECT kind, ref, v, n FROM ${emitted} WHERE bucket = ${bucket}) TO ${literal(out)} ` +
              `(FORMAT parquet, COMPRESSION zstd, KV_METADATA { label: ${literal(label)} })`,
          );
        }
      } finally {
        await connection.run(`DROP TABLE IF EXISTS ${emitted}`);
      }
    },
    async keyFileLabels(files) {
      if (files.length === 0) return [];
      const list = `[${files.map(literal).join(', ')}]`;
      const found = await rows(
        `SELECT file_name, decode(value) FROM parquet_kv_metadata(${list}) WHERE decode(key) = 'label'`,
      );
      const labels = new Map(found.map((row) => [String(row[0]), String(row[1])]));
      return files.map((f) => labels.get(f));
    },
    async joinKeyBuckets(files, references, examples) {
      const bucketKeys = `bucket_keys_${++tables}`;
      const list = `[${files.map(literal).join(', ')}]`;
      const keys =
        files.length > 0
          ? `read_parquet(${list}, hive_partitioning = false)`
          : `(SELECT NULL::VARCHAR AS kind, NULL::INTEGER AS ref, NULL::VARCHAR AS v, NULL::BIGINT AS n WHERE false)`;
      await connection.run(`CREATE TEMP TABLE ${bucketKeys} AS SELECT * FROM ${keys}`);
      try {
        const refs: Record<number, { referenced: number; dangling: number; examples: string[] }> = {};
        for (let i = 0; i < references; i++) {
          const joined = `FROM (SELECT v, sum(n) AS n FROM ${bucketKeys} WHERE kind = 'from' AND ref = ${i} GROUP BY v) r
            LEFT JOIN (SELECT DISTINCT v AS t FROM ${bucketKeys} WHERE kind = 'to' AND ref = ${i}) ON r.v = t`;
          const [counts] = await rows(
            `SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE t IS NULL), 0) ${joined}`,
          );
          const dangling = Number(counts?.[1] ?? 0);
          const found =
            dangling > 0
              ? await rows(`SELECT v ${joined} WHERE t IS NULL ORDER BY v LIMIT ${Math.trunc(examples)}`)
              : [];
          refs[i] = {
            referenced: Number(counts?.[0] ?? 0),
            dangling,
            examples: found.map((row) => String(row[0])),
          };
        }
        const [quarantined] = await rows(
          `SELECT count(DISTINCT v) FROM ${bucketKeys} WHERE kind = 'quarantine'`,
        );
        return { refs, quarantined: Number(quarantined?.[0] ?? 0) };
      } finally {
        await connection.run(`DROP TABLE IF EXISTS ${bucketKeys}`);
      }
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
              `SELECT ${scalar.map((c) => `approx_count_distinct(${ident(c.name)})`).join(', ')}
                 FROM (SELECT ${scalar.map((c) => ident(c.name)).join(', ')} FROM ${source} LIMIT ${PROFILE_DISTINCT_ROWS})`,
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
      const selected = columns.map((c) => `CAST(${ident(c)} AS VARCHAR) AS ${ident(c)}`);
      const reader = await connection.runAndReadAll(
        `SELECT ${selected.join(', ')} FROM ${source}
         QUALIFY row_number() OVER (PARTITION BY ${ident(group)} ORDER BY file_row_number) <= ${Math.trunc(perGroup)}
         ORDER BY ${ident(group)}, file_row_number`,
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
