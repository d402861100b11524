/** Reads facts back out of written Parquet files: reconciliation trusts the files, not the writer. */
export interface TableInspector {
  /** Rows in a Parquet file. */
  countRows(file: string): Promise<number>;
  /** Distinct combinations of the given columns over Parquet files (a table's files, one per bucket). */
  countDistinct(files: readonly string[], columns: readonly string[]): Promise<number>;
  /**
   * Values of `from.column` (a scalar or a list column) that no row of `to.column` has, each side over
   * its table's files (none: a table without rows).
   * Returns how many values were referenced, how many dangle, and a few examples.
   */
  danglingReferences(
    from: { readonly files: readonly string[]; readonly column: string },
    to: { readonly files: readonly string[]; readonly column: string },
  ): Promise<{ referenced: number; dangling: number; examples: string[] }>;
  close(): Promise<void>;
}
