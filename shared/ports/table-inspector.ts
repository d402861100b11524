/**
 * Reads key columns back out of written Parquet files: reconciliation trusts the files, not the writer.
 * Values are compared as text (`CAST(… AS VARCHAR)`), so an integer reference finds a string id.
 */
export interface TableInspector {
  /**
   * Writes the keys of `file` that reconciliation joins into one Parquet file per key bucket
   * (`outFiles[b]`, every one written, empty ones too), by a hash of the key: per reference, the values
   * of its `from` column (list elements one by one) with their counts, or the distinct values of its `to`
   * column; and the distinct `quarantine` key of each row. The keys never pass through JavaScript, so an
   * invocation holds none of them in its heap, whatever their number. `label` is stored in each file's
   * metadata (the plan that wrote it: `keyFileLabels` reads it back).
   */
  writeKeyBuckets(file: string, keys: KeysToWrite, outFiles: readonly string[], label: string): Promise<void>;
  /** The label each of `files` was written with (`writeKeyBuckets`), in order; undefined: none. */
  keyFileLabels(files: readonly string[]): Promise<(string | undefined)[]>;
  /**
   * The join of one key bucket's files: per reference index, the references (counted) and those whose
   * value no `to` file holds, with the first `examples` such values in UTF-8 byte order; the distinct
   * quarantine keys.
   */
  joinKeyBuckets(files: readonly string[], references: number, examples: number): Promise<JoinedKeys>;
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

/** What one silver file emits into the key buckets. */
export interface KeysToWrite {
  readonly refs: readonly {
    readonly index: number;
    readonly role: 'from' | 'to';
    readonly column: string;
  }[];
  /** Columns of a quarantine row whose combination is its key; absent: not a quarantine file. */
  readonly quarantine?: readonly string[];
}

/** One key bucket joined. */
export interface JoinedKeys {
  readonly refs: Readonly<
    Record<number, { readonly referenced: number; readonly dangling: number; readonly examples: string[] }>
  >;
  readonly quarantined: number;
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
