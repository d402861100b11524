/**
 * The shape of silver: tables, columns and the rows a dataset contract produces from bronze records.
 * One definition feeds the Parquet writer, DuckDB views, the Glue catalog and the docs.
 */

/** Column types, named as DuckDB/Parquet know them; each maps to one Athena/Glue type. */
export type ColumnType =
  | 'VARCHAR'
  | 'BIGINT'
  | 'DOUBLE'
  | 'BOOLEAN'
  | 'DATE'
  | 'TIMESTAMP'
  | 'VARCHAR[]'
  | 'BIGINT[]'
  | 'DOUBLE[]';

export interface ColumnSpec {
  readonly name: string;
  readonly type: ColumnType;
  /** @default true */
  readonly nullable?: boolean;
  readonly description?: string;
}

export interface TableSpec {
  readonly name: string;
  readonly description: string;
  readonly columns: readonly ColumnSpec[];
  /** Columns that identify a row; duplicates by this key are dropped and counted. */
  readonly key: readonly string[];
}

/** A silver row: column name → value (string for DATE/TIMESTAMP as ISO text, arrays for list types). */
export type Row = Record<string, unknown>;

/** Every silver row carries its lineage back to the bronze part and record. */
export const LINEAGE_COLUMNS: readonly ColumnSpec[] = [
  { name: '_run_id', type: 'VARCHAR', nullable: false, description: 'bronze run (source id)' },
  { name: '_bronze_part', type: 'VARCHAR', nullable: false, description: 'key of the bronze part' },
  { name: '_record_index', type: 'BIGINT', nullable: false, description: 'index of the record in its path' },
];

/** The columns a table's Parquet files hold: its own, then the lineage, with their types. */
export function storedColumns(spec: TableSpec): { name: string; type: ColumnType }[] {
  return [...spec.columns, ...LINEAGE_COLUMNS].map(({ name, type }) => ({ name, type }));
}

export type Severity = 'warn' | 'quarantine' | 'fail';

/** A rule broken by a record: which rule, where in the record, what is wrong. */
export interface RuleViolation {
  readonly ruleId: string;
  readonly severity: Severity;
  /** JSON path inside the record, e.g. `negotiated_rates[0].negotiated_prices[2].negotiated_rate`. */
  readonly path: string;
  readonly message: string;
}

/** A field the contract does not know, or a value of the wrong type: schema drift. */
export interface DriftFinding {
  readonly kind: 'unknown_field' | 'wrong_type';
  readonly path: string;
  readonly example: string;
}

/** What a contract makes of one bronze record. */
export interface NormalizedRecord {
  /** Rows per table name (empty when the record is quarantined). */
  readonly rows: Readonly<Record<string, Row[]>>;
  readonly violations: readonly RuleViolation[];
  readonly drift: readonly DriftFinding[];
}
