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
  close(): Promise<void>;
}
