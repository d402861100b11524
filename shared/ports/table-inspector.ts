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
  close(): Promise<void>;
}
