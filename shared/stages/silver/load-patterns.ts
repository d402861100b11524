/**
 * How a batch of new rows lands in a generic dataset's silver table: pure SQL in DuckDB, so the same
 * code runs on a laptop and in a Lambda. Every pattern gives the same table whatever order the events
 * arrive in and however they are split into batches, and applying a batch twice changes nothing.
 *
 * Keyed patterns keep deletes in a companion table (`<target>__deletes`: key + ordering value). A
 * delete that wins removes the row from the target, but a late event older than the delete must still
 * lose to it, so the delete is remembered: the companion table is part of the state and is persisted
 * with the target.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { ident } from '../../adapters/duckdb/final-table.ts';
import { PipelineError } from '../../errors.ts';

/** A batch the pattern cannot apply: a missing column, an unknown operation, a null ordering value. */
export class LoadPatternError extends PipelineError {
  override name = 'LoadPatternError';
}

export interface SnapshotLoad {
  /** Table holding the current silver state; created when absent. */
  readonly target: string;
  /** Table or view with the batch of new rows. */
  readonly staging: string;
}

export interface KeyedLoad extends SnapshotLoad {
  /** Columns that identify an entity. */
  readonly key: readonly string[];
  /** Column ordering events of one key (a sequence number, an LSN, a timestamp); the highest is the latest. */
  readonly orderBy: string;
  /**
   * Column of the batch holding `'insert'`, `'update'` or `'delete'`; `null` when the batch has none and
   * every row is an upsert. Not kept in the target. @default 'op'
   */
  readonly operationColumn?: string | null;
  /** Where deletes are remembered. @default `${target}__deletes` */
  readonly deletesTable?: string;
}

export interface LoadResult {
  /** Rows in the target after the load. */
  readonly rows: number;
  /** Deletes remembered after the load (keyed patterns only). */
  readonly deletes?: number;
}

/** Columns SCD2 adds to the target. */
export const SCD2_COLUMNS = ['valid_from', 'valid_to', 'is_current'] as const;

const OPERATIONS = ['insert', 'update', 'delete'] as const;
/** Helper columns; never in the output. */
const RANK = '__sluice_rank';
const NEXT = '__sluice_next';
const WORK = '__sluice_events';

/** The batch replaces everything: the target becomes a copy of the staging table. */
export async function snapshot(connection: DuckDBConnection, load: SnapshotLoad): Promise<LoadResult> {
  if ((await columnsOf(connection, load.staging)) === undefined) {
    throw new LoadPatternError(`staging table ${load.staging} does not exist`);
  }
  await transaction(connection, [
    `CREATE OR REPLACE TABLE ${ident(load.target)} AS SELECT * FROM ${ident(load.staging)}`,
  ]);
  return { rows: await countRows(connection, load.target) };
}

/**
 * Incremental upsert with deletes. Per key, the event with the highest ordering value wins across the
 * current state, the remembered deletes and the batch; a winning delete removes the row. Ties on the
 * ordering value go to a delete, then to the smallest row by its other columns: arbitrary but
 * independent of arrival order. The target keeps the ordering column so later batches can compare.
 */
export async function cdcUpsert(connection: DuckDBConnection, load: KeyedLoad): Promise<LoadResult> {
  const plan = await planKeyed(connection, load, []);
  const others = plan.columns.filter((c) => !load.key.includes(c) && c !== load.orderBy);
  const events = plan.events(
    plan.targetColumns ? [`SELECT ${list(plan.targetColumns)}, 1 AS ${RANK} FROM ${ident(load.target)}`] : [],
  );
  await transaction(connection, [
    `CREATE OR REPLACE TEMP TABLE ${WORK} AS SELECT * FROM (${events})
     QUALIFY row_number() OVER (PARTITION BY ${list(load.key)}
       ORDER BY ${ident(load.orderBy)} DESC NULLS LAST, ${RANK} DESC${tieBreak(others)}) = 1`,
    `CREATE OR REPLACE TABLE ${ident(load.target)} AS SELECT ${list(plan.columns)} FROM ${WORK} WHERE ${RANK} = 1`,
    plan.saveDeletes,
    `DROP TABLE ${WORK}`,
  ]);
  return {
    rows: await countRows(connection, load.target),
    deletes: await countRows(connection, plan.deletes),
  };
}

/**
 * Type-2 history. Every event of a key is a version valid from its ordering value until the next event's
 * (`valid_to` null and `is_current` true for the latest); a delete ends the version before it and starts
 * none. The history is rebuilt from all events each time, so a late event lands at its place and splits
 * the interval it falls into. Events of one key with the same ordering value are one event, chosen as in
 * `cdcUpsert`. A version is kept even when it repeats the previous one: dropping it would lose an event a
 * later, out-of-order batch may need.
 */
export async function scd2(connection: DuckDBConnection, load: KeyedLoad): Promise<LoadResult> {
  const plan = await planKeyed(connection, load, SCD2_COLUMNS);
  const others = plan.columns.filter((c) => !load.key.includes(c) && c !== load.orderBy);
  const history = plan.targetColumns
    ? [
        `SELECT ${list(plan.targetColumns.filter((c) => !isScd2Column(c)))}, 1 AS ${RANK} FROM ${ident(load.target)}`,
      ]
    : [];
  const order = ident(load.orderBy);
  await transaction(connection, [
    `CREATE OR REPLACE TEMP TABLE ${WORK} AS SELECT * FROM (${plan.events(history)})
     QUALIFY row_number() OVER (PARTITION BY ${list([...load.key, load.orderBy])}
       ORDER BY ${RANK} DESC${tieBreak(others)}) = 1`,
    `CREATE OR REPLACE TABLE ${ident(load.target)} AS
     SELECT ${list(plan.columns)}, ${order} AS valid_from, ${NEXT} AS valid_to, ${NEXT} IS NULL AS is_current
     FROM (SELECT *, lead(${order}) OVER (PARTITION BY ${list(load.key)} ORDER BY ${order}) AS ${NEXT} FROM ${WORK})
     WHERE ${RANK} = 1`,
    plan.saveDeletes,
    `DROP TABLE ${WORK}`,
  ]);
  return {
    rows: await countRows(connection, load.target),
    deletes: await countRows(connection, plan.deletes),
  };
}

interface KeyedPlan {
  /** Output data columns: the target's (without SCD2 columns), then new ones from the batch. */
  readonly columns: readonly string[];
  /** The target's columns, or undefined when it does not exist yet. */
  readonly targetColumns: readonly string[] | undefined;
  readonly deletes: string;
  /** All events as one relation with a rank column (1 upsert, 2 delete): `extra` parts, deletes, batch. */
  readonly events: (extra: readonly string[]) => string;
  readonly saveDeletes: string;
}

/** Checks the batch and the state, and names the columns the SQL needs. */
async function planKeyed(
  connection: DuckDBConnection,
  load: KeyedLoad,
  added: readonly string[],
): Promise<KeyedPlan> {
  const { target, staging, key, orderBy } = load;
  const operation = load.operationColumn === undefined ? 'op' : load.operationColumn;
  const deletes = load.deletesTable ?? `${target}__deletes`;
  if (key.length === 0) throw new LoadPatternError(`${target}: a keyed load needs at least one key column`);
  if (key.includes(orderBy))
    throw new LoadPatternError(`${target}: ordering column ${orderBy} is part of the key`);
  const batch = await columnsOf(connection, staging);
  if (batch === undefined) throw new LoadPatternError(`staging table ${staging} does not exist`);
  const required = [...key, orderBy, ...(operation === null ? [] : [operation])];
  const missing = required.filter((c) => !batch.includes(c));
  if (missing.length)
    throw new LoadPatternError(`staging table ${staging} has no column ${missing.join(', ')}`);
  const clash = batch.filter((c) => added.includes(c) || c.startsWith('__sluice_'));
  if (clash.length)
    throw new LoadPatternError(`staging table ${staging}: column ${clash.join(', ')} is reserved`);

  const op = operation === null ? undefined : ident(operation);
  const known = OPERATIONS.map((o) => `'${o}'`).join(', ');
  // Up to five distinct unknown operations, to show in the error.
  const unknownOperations = op
    ? `list_sort(list(DISTINCT coalesce(${op}, 'NULL')) FILTER (WHERE ${op} IS NULL OR ${op} NOT IN (${known})))[1:5]`
    : 'NULL';
  const problems = await connection.runAndReadAll(
    `SELECT count(*) FILTER (WHERE ${ident(orderBy)} IS NULL), ${unknownOperations} FROM ${ident(staging)}`,
  );
  const [nullOrder, badOperations] = problems.getRowsJS()[0] ?? [0, null];
  if (Number(nullOrder) > 0) {
    throw new LoadPatternError(
      `staging table ${staging}: ${nullOrder} rows have no ${orderBy} (ordering column)`,
    );
  }
  if (Array.isArray(badOperations) && badOperations.length > 0) {
    throw new LoadPatternError(
      `staging table ${staging}: ${operation} must be one of ${OPERATIONS.join(', ')}; found ${badOperations.join(', ')}`,
    );
  }

  const targetColumns = await columnsOf(connection, target);
  const deleteColumns = await columnsOf(connection, deletes);
  const batchData = batch.filter((c) => c !== operation);
  const columns = [...(targetColumns ?? []).filter((c) => !added.includes(c))];
  for (const c of batchData) if (!columns.includes(c)) columns.push(c);
  const rank = op ? `CASE WHEN ${op} = 'delete' THEN 2 ELSE 1 END` : '1';
  const batchPart = `SELECT ${list(batchData)}, ${rank} AS ${RANK} FROM ${ident(staging)}`;
  const deletesPart = deleteColumns
    ? [`SELECT ${list([...key, orderBy])}, 2 AS ${RANK} FROM ${ident(deletes)}`]
    : [];
  return {
    columns,
    targetColumns,
    deletes,
    events: (extra) => [...extra, ...deletesPart, batchPart].join('\nUNION ALL BY NAME\n'),
    saveDeletes: `CREATE OR REPLACE TABLE ${ident(deletes)} AS SELECT ${list([...key, orderBy])} FROM ${WORK} WHERE ${RANK} = 2`,
  };
}

/** `, "a" ASC NULLS LAST, "b" ASC NULLS LAST`: the last word between events that tie on everything else. */
function tieBreak(columns: readonly string[]): string {
  return columns.map((c) => `, ${ident(c)} ASC NULLS LAST`).join('');
}

function isScd2Column(name: string): boolean {
  return (SCD2_COLUMNS as readonly string[]).includes(name);
}

/** A table's or view's column names, or undefined when there is none of that name. */
async function columnsOf(connection: DuckDBConnection, table: string): Promise<string[] | undefined> {
  const exists = await connection.runAndReadAll(
    'SELECT count(*) FROM information_schema.tables WHERE table_name = $1',
    [table],
  );
  if (Number(exists.getRowsJS()[0]?.[0] ?? 0) === 0) return undefined;
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${ident(table)}`);
  return described.getRowsJS().map((row) => String(row[0]));
}

async function countRows(connection: DuckDBConnection, table: string): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT count(*) FROM ${ident(table)}`);
  return Number(reader.getRowsJS()[0]?.[0] ?? 0);
}

/** Runs the statements as one transaction: readers of the state never see half a load. */
async function transaction(connection: DuckDBConnection, statements: readonly string[]): Promise<void> {
  await connection.run('BEGIN TRANSACTION');
  try {
    for (const sql of statements) await connection.run(sql);
    await connection.run('COMMIT');
  } catch (error) {
    await connection.run('ROLLBACK');
    throw error;
  }
}

function list(names: readonly string[]): string {
  return names.map(ident).join(', ');
}
