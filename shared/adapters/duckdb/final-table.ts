import type { DuckDBConnection } from '@duckdb/node-api';
import { PipelineError } from '../../errors.ts';

/**
 * How silver writes a table's final Parquet file from its partial files (rows as appended, in bronze
 * order), shared by a writer finishing its own table and by the merge of a build's groups: both run
 * these statements, so a table written in one piece and one merged from any split of the same rows are
 * the same bytes.
 *
 * Rows keep their arrival order (bronze part, then record, then as the contract made them). The old
 * ORDER BY over every column cost most of the merge (a 1 GB file: ≈ 25 s of ≈ 90); arrival order is just
 * as deterministic, since bronze parts do not depend on how ingestion was sliced or silver grouped, and
 * for the TiC tables it is already key order. Duplicates are looked for on the key columns alone (a hash
 * aggregate: ≈ 0.4 s for 2.7 M rows); only a table that has some pays for the window that drops them.
 *
 * The same bytes also need the same row groups, so final files (and the partial files they are read
 * from) are written by DuckDB instances with one thread (`SINGLE_THREAD`). With more, DuckDB's ordered
 * COPY (`PhysicalFixedBatchCopy`) buffers each thread's input batches and cuts row groups from whatever
 * batches have arrived when a thread moves on: a leftover within 2,048 rows of `ROW_GROUP_SIZE` becomes
 * a row group of its own or not, by timing. The same partial files merged five times with two threads
 * gave five different provider_groups files (row groups of 2,500 rows); that is how an 800 MB file came
 * out as three different files from an uninterrupted, a SIGINT'd and a SIGKILL'd run. With one thread,
 * COPY appends each incoming vector (≤ 2,048 rows) and cuts a row group at the first vector that fills
 * it: the cuts are a function of the rows and of the partial files' layout (one per bronze part, itself
 * independent of slicing and grouping), never of scheduling. It costs the merge nothing measurable:
 * tables are merged at once, each on its own connection, whose statements run on threads of their own
 * (libuv's pool). No byte limit cuts a group early: DuckDB refuses ROW_GROUP_SIZE_BYTES while insertion
 * order is preserved, and rows of 2 kB each were still cut at 32,768.
 */

/** DuckDB settings of every instance that writes a partial or final silver file: see above. */
export const SINGLE_THREAD = { threads: '1' } as const;

/**
 * Rows per row group of a final file. DuckDB's default (122,880) held ≈ 150 MB more at the merge's peak
 * on a 1 GB file and was slower (6.7 vs 5.3 s, measured with two DuckDB threads). The cost is size:
 * negotiated_prices +0.4 %, provider_groups +18 % (its dictionaries restart more often).
 */
export const FINAL_ROW_GROUP_ROWS = 32_768;

/** A final file asked of a DuckDB instance that could cut its row groups by timing: a bug in the caller. */
export class MultiThreadedCopyError extends PipelineError {
  override name = 'MultiThreadedCopyError';
}

/** The columns of a table, in file order: what a final file holds, and how to read each from a partial file. */
export interface FinalTablePlan {
  readonly columns: readonly { readonly name: string; readonly read: string }[];
  readonly spec: { readonly name: string; readonly key: readonly string[] };
}

/**
 * Writes `target` (zstd Parquet) from the partial files, in list order, without duplicates by key: of
 * rows with equal keys the one with the lowest `_record_index`, then `_bronze_part`, `_run_id`, then
 * every other column survives, so the survivor never depends on how the rows were split into files.
 * Row groups hold `rowGroupRows` rows, rounded up to the end of a DuckDB vector (see above); the
 * connection's instance must have one thread. Returns the rows written, and how many keys had rows with
 * other values than their survivor (`conflictingKeys`).
 */
export async function writeFinalTable(
  connection: DuckDBConnection,
  plan: FinalTablePlan,
  partials: readonly string[],
  target: string,
  rowGroupRows: number = FINAL_ROW_GROUP_ROWS,
): Promise<{ rowsWritten: number; conflictingKeys: number }> {
  await requireSingleThread(connection, target);
  const files = `[${partials.map(literal).join(', ')}]`;
  const duplicated = plan.spec.key.length > 0 && (await hasDuplicateKeys(connection, plan, files));
  const select = duplicated
    ? dedupInArrivalOrder(plan, files)
    : `SELECT ${readColumns(plan.columns)} FROM read_parquet(${files}, hive_partitioning = false)`;
  const result = await connection.run(
    `COPY (${select}) TO ${literal(target)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${rowGroupRows})`,
  );
  return {
    rowsWritten: Number(result.rowsChanged),
    conflictingKeys: duplicated ? await countConflictingKeys(connection, plan, files) : 0,
  };
}

/** Lineage: where a row came from, not what it says. Rows of one key that differ only here agree. */
const LINEAGE = new Set(['_run_id', '_bronze_part', '_record_index']);

/**
 * Keys whose rows say different things (beyond their key and lineage): dropping all but the survivor
 * then drops values, not copies, which a run must say (two `provider_references` with one id and other
 * NPIs, a primary key whose later rows hold other values).
 */
async function countConflictingKeys(
  connection: DuckDBConnection,
  plan: FinalTablePlan,
  files: string,
): Promise<number> {
  const values = plan.columns.filter((c) => !plan.spec.key.includes(c.name) && !LINEAGE.has(c.name));
  if (values.length === 0) return 0;
  const reader = await connection.runAndReadAll(
    `SELECT count(*) FROM (SELECT 1 FROM (SELECT ${readColumns(plan.columns)} FROM read_parquet(${files}, hive_partitioning = false)) ` +
      `GROUP BY ${plan.spec.key.map(ident).join(', ')} HAVING count(DISTINCT row(${values.map((c) => ident(c.name)).join(', ')})) > 1)`,
  );
  return Number(reader.getRows()[0]?.[0] ?? 0);
}

async function requireSingleThread(connection: DuckDBConnection, target: string): Promise<void> {
  const reader = await connection.runAndReadAll(`SELECT current_setting('threads')`);
  const threads = Number(reader.getRows()[0]?.[0]);
  if (threads !== 1) {
    throw new MultiThreadedCopyError(
      `${target}: a final silver file must be written by a DuckDB instance with one thread (this one has ` +
        `${threads}): with more, its row groups depend on thread timing and reruns differ in bytes`,
    );
  }
}

async function hasDuplicateKeys(
  connection: DuckDBConnection,
  plan: FinalTablePlan,
  files: string,
): Promise<boolean> {
  const key = plan.spec.key.map(ident).join(', ');
  const keys = plan.columns.filter((c) => plan.spec.key.includes(c.name));
  const reader = await connection.runAndReadAll(
    `SELECT EXISTS (SELECT 1 FROM (SELECT ${readColumns(keys)} FROM read_parquet(${files}, hive_partitioning = false)) ` +
      `GROUP BY ${key} HAVING count(*) > 1)`,
  );
  return reader.getRows()[0]?.[0] === true;
}

/** Survivors as `writeFinalTable` says, in the order they arrived (file in the list, row in the file). */
function dedupInArrivalOrder(plan: FinalTablePlan, files: string): string {
  const all = plan.columns.map((c) => c.name);
  const survivorOrder = ['_record_index', '_bronze_part', '_run_id'];
  const order = [...survivorOrder, ...all.filter((name) => !survivorOrder.includes(name))]
    .map((name) => `${ident(name)} ASC NULLS LAST`)
    .join(', ');
  const rows = `SELECT ${readColumns(plan.columns)}, filename, file_row_number FROM read_parquet(${files}, filename = true, file_row_number = true, hive_partitioning = false)`;
  return (
    `SELECT ${all.map(ident).join(', ')} FROM (${rows}) ` +
    `QUALIFY row_number() OVER (PARTITION BY ${plan.spec.key.map(ident).join(', ')} ORDER BY ${order}) = 1 ` +
    `ORDER BY list_position(${files}, filename), file_row_number`
  );
}

/** Each column as read from a partial file, under its own name. */
function readColumns(columns: FinalTablePlan['columns']): string {
  return columns.map((c) => `${c.read} AS ${ident(c.name)}`).join(', ');
}

/** A double-quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A single-quoted SQL string literal. */
export function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
