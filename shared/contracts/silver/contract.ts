import type { DriftFinding, NormalizedRecord, Row, RuleViolation, Severity, TableSpec } from './table.ts';

/** What a contract knows about the file a record came from. */
export interface SilverContext {
  /** The bronze run id (source id): also the `file_id` of TiC tables. */
  readonly runId: string;
  readonly sourceUri: string;
  readonly sourceSha256: string;
  /** Header values captured by the parse stage (from the bronze manifest). */
  readonly headers: Readonly<Record<string, unknown>>;
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
  /**
   * The version of the contract's code, e.g. `tic-in-network/1`: bump it by hand whenever normalization
   * changes the rows a record yields (a mapping, a rule's logic, a derived value) without changing the
   * tables' shape. It is part of the contract's fingerprint (./contract-fingerprint.ts), and so of every
   * silver build id: a bumped version builds new files beside the old ones (`sluice rebuild`), never
   * rewrites the current ones in place.
   */
  readonly contractVersion: string;
  /** The rules a record is checked against (id and severity), when the contract has a rules table. */
  readonly rules?: readonly { readonly id: string; readonly severity: Severity }[];
  /**
   * What else defines the contract's output, as data: the generic contract's config section (its
   * columns' sources, types, required flags, load). Part of the fingerprint. @default none
   */
  readonly definition?: unknown;
  readonly tables: readonly TableSpec[];
  /** What happens to fields the contract does not know: kept as JSON in `_rescued`, ignored, or the run fails. */
  readonly onDrift: 'rescue' | 'ignore' | 'fail';
  /**
   * Records reach `normalize` with decimals a double cannot hold as `ExactDecimal`s (their digits), not
   * as their nearest double (`parseExact`'s `decimals`): for a contract that stores such a number in a
   * text column. @default false
   */
  readonly exactDecimals?: boolean;
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
