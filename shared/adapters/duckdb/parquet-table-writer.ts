import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BIGINT,
  BOOLEAN,
  DATE,
  DOUBLE,
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBDateValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBTimestampValue,
  type DuckDBType,
  type DuckDBValue,
  LIST,
  TIMESTAMP,
  VARCHAR,
} from '@duckdb/node-api';
import {
  type ColumnSpec,
  type ColumnType,
  LINEAGE_COLUMNS,
  type Row,
  type TableSpec,
} from '../../contracts/silver/table.ts';
import { PipelineError } from '../../errors.ts';
import {
  InvalidRowError,
  type TableWriteResult,
  type TableWriter,
  UnknownTableError,
} from '../../ports/table-writer.ts';
import { ident, literal, writeFinalTable } from './final-table.ts';
import { joinedListSql, joinList, type ListElement } from './joined-lists.ts';

export interface ParquetTableWriterOptions {
  /** DuckDB's `memory_limit`; beyond it, tables spill to a folder inside `workDir`. @default '512MB' */
  readonly memoryLimit?: string;
  /** DuckDB worker threads; more buys little on a Lambda-sized machine and costs memory. @default 2 */
  readonly threads?: 1 | 2;
  /**
   * Write each table's rows as appended — no dedup, LZ4 — for a later `mergeParquetPartials` to
   * deduplicate once, over all partial files (looking for duplicates here too would be done twice).
   * `rowsWritten` is then `rowsIn`. @default false
   */
  readonly partial?: boolean;
}

/** A TableSpec the writer cannot honour: a bug in a dataset contract. */
export class InvalidTableSpecError extends PipelineError {
  override name = 'InvalidTableSpecError';
}

/** DuckDB's vector size: rows are buffered column-wise and handed over one full data chunk at a time. */
const CHUNK_ROWS = 2048;
/** Spill folder inside the work dir; removed when the writer finishes or aborts. */
const SPILL_DIR = '.duckdb-spill';
/** Table names become file names and SQL identifiers, so they stay plain. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A `TableWriter` backed by one in-memory DuckDB. Rows are checked, buffered column-wise and handed to
 * DuckDB's appender a data chunk at a time (per-row typed appends with lists were ~3x slower); `finish`
 * turns each table into a partial file (rows as appended) and that into `<table>.parquet` by
 * `writeFinalTable`, as a merge of partial files does: rows in the order appended, deduplicated by key.
 */
export async function createParquetTableWriter(
  tables: readonly TableSpec[],
  workDir: string,
  options: ParquetTableWriterOptions = {},
): Promise<TableWriter> {
  const plans = tables.map(planTable);
  const seen = new Set<string>();
  for (const { spec } of plans) {
    if (seen.has(spec.name)) throw new InvalidTableSpecError(`silver table ${spec.name} is declared twice`);
    seen.add(spec.name);
  }
  await mkdir(workDir, { recursive: true });
  const spillDir = join(workDir, SPILL_DIR);
  const instance = await DuckDBInstance.create(':memory:', {
    threads: String(options.threads ?? 2),
    memory_limit: options.memoryLimit ?? '512MB',
    temp_directory: spillDir,
  });
  let connection: DuckDBConnection | undefined;
  try {
    connection = await instance.connect();
    const buffers = new Map<string, TableBuffer>();
    for (const plan of plans) {
      const columns = plan.staging.map((c) => `${c.name} ${c.type}`).join(', ');
      await connection.run(`CREATE TABLE ${ident(plan.spec.name)} (${columns})`);
      buffers.set(plan.spec.name, new TableBuffer(plan, await connection.createAppender(plan.spec.name)));
    }
    return new ParquetTableWriter(instance, connection, buffers, workDir, spillDir, options.partial ?? false);
  } catch (error) {
    connection?.closeSync();
    instance.closeSync();
    await rm(spillDir, { recursive: true, force: true });
    throw error;
  }
}

type State = 'open' | 'finishing' | 'finished' | 'failed' | 'aborted';

class ParquetTableWriter implements TableWriter {
  private state: State = 'open';
  private finishing: Promise<unknown> | undefined;
  private released = false;
  /** Files (final and temporary) this writer has created, removed again by `abort` or a failed `finish`. */
  private readonly outputs: string[] = [];

  constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly tables: ReadonlyMap<string, TableBuffer>,
    private readonly workDir: string,
    private readonly spillDir: string,
    private readonly partial: boolean,
  ) {}

  append(table: string, row: Row): void {
    if (this.state !== 'open')
      throw new PipelineError(`table writer is ${this.state}: cannot append to ${table}`);
    const buffer = this.tables.get(table);
    if (buffer === undefined) throw new UnknownTableError(table, [...this.tables.keys()]);
    buffer.add(row);
    if (buffer.size === CHUNK_ROWS) this.flush(buffer);
  }

  finish(): Promise<Record<string, TableWriteResult>> {
    if (this.state !== 'open') {
      return Promise.reject(new PipelineError(`table writer is ${this.state}: cannot finish`));
    }
    this.state = 'finishing';
    const finishing = this.writeAll();
    this.finishing = finishing;
    return finishing;
  }

  async abort(): Promise<void> {
    // Files of a finish that had already succeeded belong to the caller; a finish still running is undone.
    if (this.state === 'finished' || this.state === 'aborted') return;
    if (this.state === 'finishing') await this.finishing?.catch(() => undefined);
    this.state = 'aborted';
    for (const buffer of this.released ? [] : this.tables.values()) {
      try {
        buffer.appender.clear();
        buffer.appender.closeSync();
      } catch {
        // The appender may already be closed or broken; the instance is going away regardless.
      }
    }
    await this.release();
    await this.removeOutputs();
  }

  private async writeAll(): Promise<Record<string, TableWriteResult>> {
    try {
      const results: Record<string, TableWriteResult> = {};
      for (const buffer of this.tables.values()) {
        if (buffer.size > 0) this.flush(buffer);
        buffer.appender.closeSync();
      }
      for (const [name, buffer] of this.tables) {
        results[name] = await this.writeTable(buffer);
      }
      await this.release();
      this.state = 'finished';
      return results;
    } catch (error) {
      this.state = 'failed';
      await this.release();
      await this.removeOutputs();
      throw error;
    }
  }

  private async writeTable(buffer: TableBuffer): Promise<TableWriteResult> {
    const { spec } = buffer.plan;
    if (buffer.rowsIn === 0) return { rowsIn: 0, rowsWritten: 0, duplicates: 0 };
    const file = join(this.workDir, `${spec.name}.parquet`);
    // Written under a temporary name and renamed, so a `<table>.parquet` on disk is always complete.
    const temporary = `${file}.tmp`;
    this.outputs.push(temporary, file);
    let rowsWritten: number;
    try {
      // A final file is made from a partial one by the very statements a merge of partials runs.
      const partial = this.partial ? temporary : join(this.workDir, `${spec.name}.partial.parquet`);
      if (!this.partial) this.outputs.push(partial);
      await this.connection.run(copyPartial(buffer.plan, partial));
      // Frees the table's memory (or spill) before the next step.
      await this.connection.run(`DROP TABLE ${ident(spec.name)}`);
      if (this.partial) {
        rowsWritten = buffer.rowsIn;
      } else {
        rowsWritten = await writeFinalTable(this.connection, buffer.plan, [partial], temporary);
        await rm(partial, { force: true });
      }
    } catch (error) {
      throw new PipelineError(`silver table ${spec.name}: writing ${file} failed: ${message(error)}`, {
        cause: error,
      });
    }
    await rename(temporary, file);
    return { rowsIn: buffer.rowsIn, rowsWritten, duplicates: buffer.rowsIn - rowsWritten, file };
  }

  private flush(buffer: TableBuffer): void {
    try {
      buffer.appender.appendDataChunk(buffer.takeChunk());
    } catch (error) {
      // DuckDB refused a chunk the type checks let through: nothing after it can be trusted.
      this.state = 'failed';
      throw new PipelineError(
        `silver table ${buffer.plan.spec.name}: DuckDB append failed: ${message(error)}`,
        {
          cause: error,
        },
      );
    }
  }

  private async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.connection.closeSync();
    this.instance.closeSync();
    await rm(this.spillDir, { recursive: true, force: true });
  }

  private async removeOutputs(): Promise<void> {
    await Promise.all(this.outputs.map((file) => rm(file, { force: true })));
  }
}

/** One table's rows not yet handed to DuckDB, column-wise, plus its counters. */
class TableBuffer {
  /** Rows buffered (at most CHUNK_ROWS). */
  size = 0;
  rowsIn = 0;
  private readonly columns: DuckDBValue[][];
  private readonly known: ReadonlySet<string>;
  private readonly chunk: DuckDBDataChunk;

  constructor(
    readonly plan: TablePlan,
    readonly appender: DuckDBAppender,
  ) {
    this.columns = plan.staging.map(() => new Array<DuckDBValue>(CHUNK_ROWS).fill(null));
    this.known = new Set(plan.columns.map((c) => c.name));
    this.chunk = DuckDBDataChunk.create(plan.staging.map((c) => DUCKDB_TYPES[c.type]));
  }

  /** Checks and converts one row into the buffer; on error the row is not counted and its slot is reused. */
  add(row: Row): void {
    const { columns } = this.plan;
    const at = this.size;
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      const value = row[column.name];
      const slot = column.staging;
      if (value === null || value === undefined) {
        if (!column.nullable)
          throw new InvalidRowError(this.plan.spec.name, column.name, value, 'column is not nullable');
        this.columns[slot]![at] = null;
        if (column.listElement) this.columns[slot + 1]![at] = null;
        continue;
      }
      try {
        if (column.listElement) {
          // Joined text when exact, else the list itself (converted, so checked) in the next column.
          const joined = Array.isArray(value) ? joinList(column.listElement, value) : undefined;
          this.columns[slot]![at] = joined ?? null;
          this.columns[slot + 1]![at] = joined === undefined ? column.convert(value) : null;
        } else {
          this.columns[slot]![at] = column.convert(value);
        }
      } catch (error) {
        if (!(error instanceof TypeMismatch)) throw error;
        throw new InvalidRowError(this.plan.spec.name, column.name, value, `${column.type} ${error.message}`);
      }
    }
    for (const name in row) {
      if (!this.known.has(name)) {
        throw new InvalidRowError(this.plan.spec.name, name, row[name], 'no such column in the table spec');
      }
    }
    this.size = at + 1;
    this.rowsIn++;
  }

  /**
   * The buffered rows as a DuckDB data chunk; empties the buffer. The one chunk is reused: the appender
   * copies it, and a chunk created per call is native memory that is not given back (measured: RSS grew
   * by ~200 MB per million rows with @duckdb/node-api 1.5.6-r.1).
   */
  takeChunk(): DuckDBDataChunk {
    const size = this.size;
    this.chunk.reset();
    this.chunk.rowCount = size;
    for (let i = 0; i < this.columns.length; i++) {
      const values = this.columns[i]!;
      this.chunk.setColumnValues(i, size === CHUNK_ROWS ? values : values.slice(0, size));
    }
    this.size = 0;
    return this.chunk;
  }
}

export interface ColumnPlan {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  /** JS value → DuckDB value; throws `TypeMismatch` saying what was expected. */
  readonly convert: (value: unknown) => DuckDBValue;
  /** Its (first) column in the staging table. */
  readonly staging: number;
  /** A list column's element type: staged as joined text, then (for lists that do not join) as a list. */
  readonly listElement?: ListElement;
}

/** A column of the DuckDB table rows are appended to: `c<n>`, so no declared name can clash. */
interface StagingColumn {
  readonly name: string;
  readonly type: ColumnType;
}

export interface TablePlan {
  readonly spec: TableSpec;
  /** Declared columns, then the lineage columns. */
  readonly columns: readonly ColumnPlan[];
  readonly staging: readonly StagingColumn[];
}

export function planTable(spec: TableSpec): TablePlan {
  if (!TABLE_NAME.test(spec.name)) {
    throw new InvalidTableSpecError(
      `silver table name ${JSON.stringify(spec.name)} must match ${TABLE_NAME} (it becomes a file name)`,
    );
  }
  const lineage = new Set(LINEAGE_COLUMNS.map((c) => c.name));
  const names = new Set<string>();
  for (const column of spec.columns) {
    if (column.name === '')
      throw new InvalidTableSpecError(`silver table ${spec.name} has a column without a name`);
    if (lineage.has(column.name)) {
      throw new InvalidTableSpecError(
        `silver table ${spec.name}: ${column.name} is a lineage column, added by the writer`,
      );
    }
    if (names.has(column.name)) {
      throw new InvalidTableSpecError(`silver table ${spec.name}: column ${column.name} is declared twice`);
    }
    if (!(column.type in CONVERTERS)) {
      throw new InvalidTableSpecError(
        `silver table ${spec.name}: column ${column.name} has unknown type ${column.type}`,
      );
    }
    names.add(column.name);
  }
  const all: readonly ColumnSpec[] = [...spec.columns, ...LINEAGE_COLUMNS];
  for (const key of spec.key) {
    if (!all.some((c) => c.name === key)) {
      throw new InvalidTableSpecError(
        `silver table ${spec.name}: key column ${key} is not a column of the table`,
      );
    }
  }
  const staging: StagingColumn[] = [];
  const columns = all.map((c): ColumnPlan => {
    const listElement = LIST_ELEMENTS[c.type];
    const at = staging.length;
    staging.push({ name: `c${at}`, type: listElement ? 'VARCHAR' : c.type });
    if (listElement) staging.push({ name: `c${at + 1}`, type: c.type });
    return {
      name: c.name,
      type: c.type,
      nullable: c.nullable ?? true,
      convert: CONVERTERS[c.type],
      staging: at,
      ...(listElement && { listElement }),
    };
  });
  return { spec, columns, staging };
}

const LIST_ELEMENTS: Partial<Record<ColumnType, ListElement>> = {
  'VARCHAR[]': 'VARCHAR',
  'BIGINT[]': 'BIGINT',
  'DOUBLE[]': 'DOUBLE',
};

/** A partial file: the rows as appended, in the table's column order; LZ4 is about as fast as none. */
function copyPartial(plan: TablePlan, file: string): string {
  const columns = plan.columns
    .map((c) => {
      const value = c.listElement
        ? joinedListSql(c.listElement, plan.staging[c.staging]!.name, plan.staging[c.staging + 1]!.name)
        : plan.staging[c.staging]!.name;
      return `${value} AS ${ident(c.name)}`;
    })
    .join(', ');
  return `COPY (SELECT ${columns} FROM ${ident(plan.spec.name)}) TO ${literal(file)} (FORMAT parquet, COMPRESSION lz4)`;
}

const DUCKDB_TYPES: Record<ColumnType, DuckDBType> = {
  VARCHAR,
  BIGINT,
  DOUBLE,
  BOOLEAN,
  DATE,
  TIMESTAMP,
  'VARCHAR[]': LIST(VARCHAR),
  'BIGINT[]': LIST(BIGINT),
  'DOUBLE[]': LIST(DOUBLE),
};

/** Thrown by a converter; turned into an `InvalidRowError` that names the table and column. */
class TypeMismatch extends Error {}

const toVarchar = (value: unknown): string => {
  if (typeof value === 'string') return value;
  throw new TypeMismatch('expects a string');
};

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

const toBigInt = (value: unknown): bigint => {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return BigInt(value);
    throw new TypeMismatch(
      Number.isInteger(value)
        ? 'expects an integer; numbers beyond ±2^53 lose precision, pass a bigint'
        : 'expects an integer',
    );
  }
  if (typeof value === 'bigint') {
    if (value >= MIN_INT64 && value <= MAX_INT64) return value;
    throw new TypeMismatch('expects a 64-bit integer');
  }
  throw new TypeMismatch('expects an integer (number or bigint)');
};

const toDouble = (value: unknown): number => {
  if (typeof value === 'number') return value;
  throw new TypeMismatch('expects a number');
};

const toBoolean = (value: unknown): boolean => {
  if (typeof value === 'boolean') return value;
  throw new TypeMismatch('expects a boolean');
};

const DATE_TEXT = /^(\d{4})-(\d{2})-(\d{2})$/;

const toDate = (value: unknown): DuckDBDateValue => {
  const match = typeof value === 'string' ? DATE_TEXT.exec(value) : null;
  const days = match ? epochDays(Number(match[1]), Number(match[2]), Number(match[3])) : undefined;
  if (days === undefined) throw new TypeMismatch('expects a date as YYYY-MM-DD text');
  return new DuckDBDateValue(days);
};

/** `YYYY-MM-DD`, then optionally `T` or space, `HH:MM[:SS[.fraction]]` and `Z` or `±HH[:MM]`. */
const TIMESTAMP_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** ISO text to microseconds since the epoch, in UTC; digits beyond the microsecond are dropped. */
const toTimestamp = (value: unknown): DuckDBTimestampValue => {
  const match = typeof value === 'string' ? TIMESTAMP_TEXT.exec(value) : null;
  const days = match ? epochDays(Number(match[1]), Number(match[2]), Number(match[3])) : undefined;
  if (match === null || days === undefined) throw new TypeMismatch('expects an ISO 8601 timestamp text');
  const [hours, minutes, seconds] = [match[4], match[5], match[6]].map((part) => Number(part ?? 0)) as [
    number,
    number,
    number,
  ];
  if (hours > 23 || minutes > 59 || seconds > 59)
    throw new TypeMismatch('expects an ISO 8601 timestamp text');
  const zone = match[8];
  let offsetMinutes = 0;
  if (zone !== undefined && zone !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes =
      (zone[0] === '-' ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0));
  }
  const wholeSeconds = days * 86_400 + hours * 3600 + (minutes - offsetMinutes) * 60 + seconds;
  const micros = Number((match[7] ?? '').padEnd(6, '0').slice(0, 6));
  return new DuckDBTimestampValue(BigInt(wholeSeconds) * 1_000_000n + BigInt(micros));
};

const listOf =
  (item: (value: unknown) => DuckDBValue) =>
  (value: unknown): DuckDBListValue => {
    if (!Array.isArray(value)) throw new TypeMismatch('expects an array');
    const items = new Array<DuckDBValue>(value.length);
    for (let i = 0; i < value.length; i++) {
      const element: unknown = value[i];
      try {
        items[i] = element === null || element === undefined ? null : item(element);
      } catch (error) {
        if (error instanceof TypeMismatch) throw new TypeMismatch(`element [${i}] ${error.message}`);
        throw error;
      }
    }
    return new DuckDBListValue(items);
  };

const CONVERTERS: Record<ColumnType, (value: unknown) => DuckDBValue> = {
  VARCHAR: toVarchar,
  BIGINT: toBigInt,
  DOUBLE: toDouble,
  BOOLEAN: toBoolean,
  DATE: toDate,
  TIMESTAMP: toTimestamp,
  'VARCHAR[]': listOf(toVarchar),
  'BIGINT[]': listOf(toBigInt),
  'DOUBLE[]': listOf(toDouble),
};

/** Days since 1970-01-01 of a proleptic Gregorian date, or undefined if there is no such date. */
function epochDays(year: number, month: number, day: number): number | undefined {
  if (month < 1 || month > 12 || day < 1) return undefined;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day > monthDays) return undefined;
  // Howard Hinnant's days_from_civil.
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
