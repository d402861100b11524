import type { DriftFinding, NormalizedRecord, Row, RuleViolation, TableSpec } from './table.ts';

/** What a contract knows about the file a record came from. */
export interface SilverContext {
  /** The bronze run id (source id): also the `file_id` of TiC tables. */
  readonly runId: string;
  readonly sourceUri: string;
  readonly sourceSha256: string;
  /** Header values captured by the parse stage (from the bronze manifest). */
  readonly headers: Readonly<Record<string, unknown>>;
  /**
   * The schema version the file's records imply (`NormalizedRecord.schemaVersion`), when known; `fileRows`
   * uses it when the header has no usable version.
   */
  readonly contentSchemaVersion?: string;
}

/** A column whose values (or list elements) must each match a value of another table's column. */
export interface TableReference {
  readonly from: { readonly table: string; readonly column: string };
  readonly to: { readonly table: string; readonly column: string };
}

/**
 * A dataset's silver contract: the single definition of its tables, keys, normalization and rules.
 * `normalize` is pure and deterministic — the same record always yields the same rows — so silver can be
 * rebuilt from bronze at any time, in any order, in parallel.
 */
export interface SilverContract {
  readonly dataset: string;
  readonly tables: readonly TableSpec[];
  /** What happens to fields the contract does not know: kept as JSON in `_rescued`, ignored, or the run fails. */
  readonly onDrift: 'rescue' | 'ignore' | 'fail';
  /** Foreign keys that reconciliation checks: every value of `from` must exist in `to` (same file). */
  readonly references?: readonly TableReference[];
  /** Rows derived from the file as a whole (e.g. the `files` table), from the context alone. */
  fileRows(context: SilverContext): Readonly<Record<string, Row[]>>;
  /**
   * The file's own values (its headers) checked like a record: violations (severity `warn`, or `fail` to
   * stop the run; a file cannot be quarantined) and drift, counted once per file. @default none
   */
  checkFile?(context: SilverContext): {
    readonly violations: readonly RuleViolation[];
    readonly drift: readonly DriftFinding[];
  };
  /** One bronze record → rows per table, rule violations and drift findings. */
  normalize(
    recordName: string,
    recordIndex: number,
    record: unknown,
    context: SilverContext,
  ): NormalizedRecord;
}
