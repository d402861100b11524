/** Reads facts back out of written Parquet files: reconciliation trusts the files, not the writer. */
export interface TableInspector {
  /** Rows in a Parquet file. */
  countRows(file: string): Promise<number>;
  /** Distinct combinations of the given columns in a Parquet file. */
  countDistinct(file: string, columns: readonly string[]): Promise<number>;
  /**
   * Values of `from.column` (a scalar or a list column) that no row of `to.column` has.
   * Returns how many values were referenced, how many dangle, and a few examples.
   */
  danglingReferences(
    from: { readonly file: string; readonly column: string },
    to: { readonly file: string | undefined; readonly column: string },
  ): Promise<{ referenced: number; dangling: number; examples: string[] }>;
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
