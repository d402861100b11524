import type { Row, TableSpec } from '../contracts/silver/table.ts';
import { PipelineError } from '../errors.ts';

/** What became of one table's rows. */
export interface TableWriteResult {
  /** Rows appended. */
  readonly rowsIn: number;
  /** Rows in the file, after dropping duplicates by the table's key. */
  readonly rowsWritten: number;
  /** Rows dropped because an earlier row (lowest lineage) had the same key: `rowsIn - rowsWritten`. */
  readonly duplicates: number;
  /** Keys among them whose rows held other values than the one kept (absent: none, or not counted). */
  readonly conflictingKeys?: number;
  /** Local path of the Parquet file; absent when the table got no rows, or when split into buckets. */
  readonly file?: string;
  /**
   * A partial writer's rows split by merge bucket (`TableWriterOptions.buckets` > 1, a table with a key):
   * one file per bucket that got rows, in bucket order, instead of `file`.
   */
  readonly bucketFiles?: readonly { readonly bucket: number; readonly file: string }[];
  /**
   * With `bucketFiles`: what assigned rows to buckets (e.g. `duckdb-hash v1.5.0`). Every group of a
   * build must have used the same, or a key's duplicates could land in two buckets.
   */
  readonly bucketHash?: string;
}

export interface TableWriterOptions {
  /**
   * Split each keyed table's partial rows into this many merge buckets by a hash of the key, so that a
   * key's rows, and so its duplicates, are all in one bucket (see `mergeBucketExpression`). @default 1
   */
  readonly buckets?: number;
}

/**
 * Turns silver rows into one Parquet file per table. `append` is synchronous because the silver stage
 * calls it once per row, millions of times; the work that can wait (dedup, sort, encode) happens in
 * `finish`. A writer is used once: after `finish` or `abort` it accepts nothing more.
 */
export interface TableWriter {
  /**
   * Buffer one row of `table`. The row holds the table's columns plus the lineage columns; a missing
   * column is null. Throws `UnknownTableError` or `InvalidRowError` (and keeps nothing of that row).
   * The writer may keep references to the row's values until `finish`, so a row and its arrays must
   * not be changed once appended (rows may share them).
   */
  append(table: string, row: Row): void;
  /** Deduplicate by key, write each non-empty table as `<workDir>/<table>.parquet`, release resources. */
  finish(): Promise<Record<string, TableWriteResult>>;
  /** Discard everything: no Parquet file of this writer remains unless `finish` had already succeeded. */
  abort(): Promise<void>;
}

/** Opens a writer for these tables, keeping its files (and any spill) under `workDir`. */
export type TableWriterFactory = (
  tables: readonly TableSpec[],
  workDir: string,
  options?: TableWriterOptions,
) => Promise<TableWriter>;

/** One table merged from partial files: its rows after deduplicating across them. */
export interface MergedTableResult {
  readonly rowsWritten: number;
  /** Keys whose duplicates held other values than the row kept (see `TableWriteResult`). */
  readonly conflictingKeys?: number;
  /** Local path of the merged Parquet file; absent when there were no partial files. */
  readonly file?: string;
}

/**
 * Merges each table's partial Parquet files — written by `TableWriter`s over disjoint runs of the rows —
 * into `<workDir>/<table>.parquet`: deduplicated by key and ordered exactly as one writer given all the
 * rows would have written it (so the bytes are the same). `partials` lists each table's files.
 */
export type TablePartialsMerger = (
  tables: readonly TableSpec[],
  partials: Readonly<Record<string, readonly string[]>>,
  workDir: string,
) => Promise<Record<string, MergedTableResult>>;

/** A row for a table the writer was not opened with: a bug in the caller. */
export class UnknownTableError extends PipelineError {
  override name = 'UnknownTableError';
  constructor(
    readonly table: string,
    readonly knownTables: readonly string[],
  ) {
    super(`no silver table named ${JSON.stringify(table)} (tables: ${knownTables.join(', ') || 'none'})`);
  }
}

/**
 * A value that does not fit its column's declared type, a null in a non-nullable column, or a column the
 * table does not have. The silver stage guarantees types, so this is a bug in a contract, not bad input.
 */
export class InvalidRowError extends PipelineError {
  override name = 'InvalidRowError';
  constructor(
    readonly table: string,
    readonly column: string,
    readonly value: unknown,
    readonly detail: string,
  ) {
    super(
      `silver table ${JSON.stringify(table)}, column ${JSON.stringify(column)}: ${detail}, got ${show(value)}`,
    );
  }
}

/** A short, unambiguous rendering of a value for error messages: `"abc" (string)`, `1.5 (number)`. */
function show(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'bigint' ? `${value}n` : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  if (text.length > 80) text = `${text.slice(0, 77)}...`;
  const kind = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `${text} (${kind})`;
}
