/**
 * Reads key columns back out of written Parquet files: reconciliation trusts the files, not the writer.
 * Values are compared as text (`CAST(… AS VARCHAR)`), so an integer reference finds a string id.
 */
export interface TableInspector {
  /**
   * Each distinct non-null value of `column` (a scalar column, or a list column's elements) as text, with
   * how many times it occurs.
   */
  valueCounts(file: string, column: string): Promise<Array<[value: string, count: number]>>;
  /** Each distinct combination of the given columns, as the JSON text of its values as text (or null). */
  distinctRows(file: string, columns: readonly string[]): Promise<string[]>;
  /**
   * A profile of a Parquet file for the run report, bounded at any size: rows, and per scalar column its
   * nulls and min/max (from the file's statistics) and its distinct values, estimated over at most the
   * first `distinctOverRows` rows. List and struct columns: their type only.
   */
  profile(file: string): Promise<TableProfile>;
  /** Up to `perGroup` rows for each distinct value of `group`, with `columns` as text, in file order. */
  firstRowsPerGroup(
    file: string,
    group: string,
    columns: readonly string[],
    perGroup: number,
  ): Promise<Record<string, string | null>[]>;
  close(): Promise<void>;
}

/** What one silver table holds, read back from its Parquet file. */
export interface TableProfile {
  readonly rows: number;
  readonly columns: readonly ColumnProfile[];
  /** Set when distinct values were estimated over the first this many rows only, not all `rows`. */
  readonly distinctOverRows?: number;
}

export interface ColumnProfile {
  readonly name: string;
  /** DuckDB's type name (`VARCHAR`, `DOUBLE`, `VARCHAR[]`, …). */
  readonly type: string;
  /** Absent for list and struct columns. */
  readonly nulls?: number;
  /** HyperLogLog estimate (DuckDB's `approx_count_distinct`); absent for list and struct columns. */
  readonly distinct?: number;
  /** From the file's statistics, as text cut to 60 characters; absent where it has none (nested, all null). */
  readonly min?: string;
  readonly max?: string;
}
