import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBType,
  type DuckDBValue,
  version as duckdbVersion,
} from '@duckdb/node-api';
import {
  type ColumnSpec,
  type ColumnType,
  LINEAGE_COLUMNS,
  type Row,
  type TableSpec,
} from '../../contracts/silver/table.ts';
import { DiskFullError, isDiskFull, PipelineError } from '../../errors.ts';
import {
  InvalidRowError,
  type TableWriteResult,
  type TableWriter,
  type TableWriterOptions,
  UnknownTableError,
} from '../../ports/table-writer.ts';
import { type ColumnBatch, columnBatch, isColumnType } from './column-batches.ts';
import { TypeMismatch } from './duckdb-values.ts';
import { ident, literal, SINGLE_THREAD, writeFinalTable } from './final-table.ts';

export interface ParquetTableWriterOptions extends TableWriterOptions {
  /** DuckDB's `memory_limit`; beyond it, tables spill to a folder inside `workDir`. @default '512MB' */
  readonly memoryLimit?: string;
  /**
   * Write each table's rows as appended — no dedup, LZ4 — for a later `mergeParquetPartials` to
   * deduplicate once, over all partial files (looking for duplicates here too would be done twice).
   * `rowsWritten` is then `rowsIn`. @default false
   */
  readonly partial?: boolean;
}

/** A writer of partial files with the default limits: what a silver build opens per bronze part. */
export const createPartialParquetTableWriter = (
  tables: readonly TableSpec[],
  workDir: string,
  options: TableWriterOptions = {},
): Promise<TableWriter> => createParquetTableWriter(tables, workDir, { ...options, partial: true });

/** A TableSpec the writer cannot honour: a bug in a dataset contract. */
export class InvalidTableSpecError extends PipelineError {
  override name = 'InvalidTableSpecError';
}

/**
 * Rows per column batch (one staging-table row). DuckDB decodes 2048 staging rows at a time, all their
 * rows at once: 64 keeps that to ~131 k rows (tens of MB), where 2048 made it millions (out of memory
 * for a writer of more than a few parts). 64 values per native call already saves nearly all of its cost.
 */
const BATCH_ROWS = 64;
/** Staging rows handed to the appender at once: 2048 rows, as many as one of DuckDB's data chunks. */
const CHUNK_BATCHES = 32;
/**
 * Rows per row group of a partial file. DuckDB buffers a whole row group per COPY; smaller groups than
 * its default 122,880 lowered the run's peak RSS (≈ −70 MB) and let the merge read in parallel sooner
 * (8.0 → 7.3 s on the 1 GB file). Final files: `ROW_GROUP_SIZE` in ./final-table.ts.
 */
const PARTIAL_ROW_GROUP_ROWS = 16_384;
/** Spill folder inside the work dir; removed when the writer finishes or aborts. */
const SPILL_DIR = '.duckdb-spill';
/** Table names become file names and SQL identifiers, so they stay plain. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A `TableWriter` backed by one in-memory DuckDB. Rows are checked, buffered column-wise and handed to
 * DuckDB's appender as column batches, one staging row per batch (./column-batches.ts); `finish`
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
  // One thread: a final file's row groups, and a partial file's (which a merge reads vector by vector),
  // must not depend on timing (./final-table.ts). Workers are the parallelism; appends use no threads.
  const instance = await DuckDBInstance.create(':memory:', {
    ...SINGLE_THREAD,
    memory_limit: options.memoryLimit ?? '512MB',
    temp_directory: spillDir,
  });
  let connection: DuckDBConnection | undefined;
  try {
    connection = await instance.connect();
    const buffers = new Map<string, TableBuffer>();
    for (const plan of plans) {
      const columns = plan.staging.map((c) => `${c.name} ${c.sqlType}`).join(', ');
      await connection.run(`CREATE TABLE ${ident(plan.spec.name)} (${columns})`);
      buffers.set(plan.spec.name, new TableBuffer(plan, await connection.createAppender(plan.spec.name)));
    }
    const buckets = Math.max(1, Math.floor(options.buckets ?? 1));
    if (buckets > 1 && !options.partial) {
      throw new PipelineError(
        'a table writer splits rows into merge buckets only when it writes partial files',
      );
    }
    return new ParquetTableWriter(
      instance,
      connection,
      buffers,
      workDir,
      spillDir,
      options.partial ?? false,
      buckets,
    );
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
    private readonly buckets: number,
  ) {}

  append(table: string, row: Row): void {
    if (this.state !== 'open')
      throw new PipelineError(`table writer is ${this.state}: cannot append to ${table}`);
    const buffer = this.tables.get(table);
    if (buffer === undefined) throw new UnknownTableError(table, [...this.tables.keys()]);
    buffer.add(row);
    if (buffer.size === BATCH_ROWS) {
      buffer.seal();
      if (buffer.sealed === CHUNK_BATCHES) this.flush(buffer);
    }
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
        if (buffer.size > 0) buffer.seal();
        if (buffer.sealed > 0) this.flush(buffer);
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
    if (this.buckets > 1 && spec.key.length > 0) return this.writeBuckets(buffer);
    const file = join(this.workDir, `${spec.name}.parquet`);
    // Written under a temporary name and renamed, so a `<table>.parquet` on disk is always complete.
    const temporary = `${file}.tmp`;
    this.outputs.push(temporary, file);
    let rowsWritten: number;
    let conflictingKeys = 0;
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
        ({ rowsWritten, conflictingKeys } = await writeFinalTable(
          this.connection,
          buffer.plan,
          [partial],
          temporary,
        ));
        await rm(partial, { force: true });
      }
    } catch (error) {
      if (isDiskFull(error)) {
        throw new DiskFullError(file, `silver table ${spec.name}`, message(error), { cause: error });
      }
      throw new PipelineError(`silver table ${spec.name}: writing ${file} failed: ${message(error)}`, {
        cause: error,
      });
    }
    await rename(temporary, file);
    return {
      rowsIn: buffer.rowsIn,
      rowsWritten,
      duplicates: buffer.rowsIn - rowsWritten,
      ...(conflictingKeys > 0 && { conflictingKeys }),
      file,
    };
  }

  /**
   * A keyed table's partial rows split into merge buckets in one pass (DuckDB's `PARTITION_BY`, on one
   * thread: the same rows give the same files), each bucket's rows in the order appended. The folder is
   * written under a temporary name and renamed, so a `<table>.buckets` folder is always complete.
   */
  private async writeBuckets(buffer: TableBuffer): Promise<TableWriteResult> {
    const { spec } = buffer.plan;
    const folder = join(this.workDir, `${spec.name}.buckets`);
    const temporary = `${folder}.tmp`;
    this.outputs.push(temporary, folder);
    try {
      await this.connection.run(copyPartialBuckets(buffer.plan, temporary, this.buckets));
      await this.connection.run(`DROP TABLE ${ident(spec.name)}`);
    } catch (error) {
      throw new PipelineError(
        `silver table ${spec.name}: writing its ${this.buckets} merge buckets to ${folder} failed: ${message(error)}`,
        { cause: error },
      );
    }
    await rename(temporary, folder);
    const bucketFiles: { bucket: number; file: string }[] = [];
    for (const entry of await readdir(folder)) {
      const bucket = Number(/^__bucket=(\d+)$/.exec(entry)?.[1]);
      if (!Number.isInteger(bucket)) continue;
      const files = (await readdir(join(folder, entry))).filter((f) => f.endsWith('.parquet')).sort();
      // One thread writes one file per bucket; more would be read in name order, still deterministic.
      for (const file of files) bucketFiles.push({ bucket, file: join(folder, entry, file) });
    }
    bucketFiles.sort((a, b) => a.bucket - b.bucket || a.file.localeCompare(b.file));
    return {
      rowsIn: buffer.rowsIn,
      rowsWritten: buffer.rowsIn,
      duplicates: 0,
      bucketFiles,
      bucketHash: MERGE_BUCKET_HASH,
    };
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
    await Promise.all(this.outputs.map((file) => rm(file, { recursive: true, force: true })));
  }
}

/** One table's rows not yet handed to DuckDB, as column batches, plus its counters. */
class TableBuffer {
  /** Rows in the current batch (at most BATCH_ROWS). */
  size = 0;
  rowsIn = 0;
  private readonly batches: ColumnBatch[];
  /** Per staging column, the values of the sealed staging rows. */
  private readonly staged: DuckDBValue[][];
  private readonly known: ReadonlySet<string>;
  private readonly chunk: DuckDBDataChunk;

  constructor(
    readonly plan: TablePlan,
    readonly appender: DuckDBAppender,
  ) {
    this.batches = plan.columns.map((c) => columnBatch(c.type));
    this.staged = plan.staging.map(() => []);
    this.known = new Set(plan.columns.map((c) => c.name));
    this.chunk = DuckDBDataChunk.create(plan.staging.map((c) => c.type));
  }

  /** Checks and adds one row; on error the row is not counted and nothing of it is kept. */
  add(row: Row): void {
    const { columns } = this.plan;
    try {
      for (let i = 0; i < columns.length; i++) {
        const column = columns[i]!;
        const value = row[column.name];
        if (value === null || value === undefined) {
          if (!column.nullable)
            throw new InvalidRowError(this.plan.spec.name, column.name, value, 'column is not nullable');
          this.batches[i]!.addNull();
        } else {
          this.addValue(i, column, value);
        }
      }
      for (const name in row) {
        if (!this.known.has(name)) {
          throw new InvalidRowError(this.plan.spec.name, name, row[name], 'no such column in the table spec');
        }
      }
    } catch (error) {
      for (const batch of this.batches) batch.truncate(this.size);
      throw error;
    }
    this.size++;
    this.rowsIn++;
  }

  private addValue(i: number, column: ColumnPlan, value: unknown): void {
    try {
      this.batches[i]!.add(value);
    } catch (error) {
      if (!(error instanceof TypeMismatch)) throw error;
      throw new InvalidRowError(this.plan.spec.name, column.name, value, `${column.type} ${error.message}`);
    }
  }

  /** Ends the current batch: its values become one staging row. */
  seal(): void {
    let at = 0;
    for (const batch of this.batches) {
      for (const value of batch.take()) this.staged[at++]!.push(value);
    }
    this.size = 0;
  }

  /** Staging rows sealed and not yet handed to DuckDB. */
  get sealed(): number {
    return this.staged[0]!.length;
  }

  /**
   * The sealed staging rows as a DuckDB data chunk; empties them. The one chunk is reused: the appender
   * copies it, and a chunk created per call is native memory that is not given back (measured: RSS grew
   * by ~200 MB per million rows with @duckdb/node-api 1.5.6-r.1).
   */
  takeChunk(): DuckDBDataChunk {
    this.chunk.reset();
    this.chunk.rowCount = this.sealed;
    for (let i = 0; i < this.staged.length; i++) {
      this.chunk.setColumnValues(i, this.staged[i]!);
      this.staged[i] = [];
    }
    return this.chunk;
  }
}

export interface ColumnPlan {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
  /** SQL of its value from a partial file. */
  readonly read: string;
}

/** A column of the DuckDB table batches are appended to: `c<n>`, so no declared name can clash. */
interface StagingColumn {
  readonly name: string;
  readonly type: DuckDBType;
  readonly sqlType: string;
  /** SQL of its value in each row of the batch (see `ColumnBatch.staging`). */
  readonly row: string;
}

export interface TablePlan {
  readonly spec: TableSpec;
  /** Declared columns, then the lineage columns. */
  readonly columns: readonly ColumnPlan[];
  readonly staging: readonly StagingColumn[];
  /** The columns of a partial file: name, and SQL from the unnested staging columns. */
  readonly partial: readonly { readonly name: string; readonly sql: string }[];
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
    if (!isColumnType(column.type)) {
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
  const partial: { name: string; sql: string }[] = [];
  const columns = all.map((c): ColumnPlan => {
    const batch = columnBatch(c.type);
    const own = batch.staging.map((s) => {
      const name = `c${staging.length}`;
      staging.push({ name, type: s.type, sqlType: s.sqlType, row: s.row(name) });
      return name;
    });
    for (const stored of batch.partial(own)) partial.push({ name: c.name + stored.suffix, sql: stored.sql });
    return {
      name: c.name,
      type: c.type,
      nullable: c.nullable ?? true,
      read: batch.read(c.name),
    };
  });
  const stored = new Set<string>();
  for (const { name } of partial) {
    if (stored.has(name))
      throw new InvalidTableSpecError(
        `silver table ${spec.name}: column ${name} clashes with a list's exact column`,
      );
    stored.add(name);
  }
  return { spec, columns, staging, partial };
}

/**
 * A partial file: the rows as appended (batches unnested in order), in the table's column order; LZ4 is
 * about as fast as none.
 */
function copyPartial(plan: TablePlan, file: string): string {
  const unnested = plan.staging.map((s) => `${s.row} AS ${s.name}`).join(', ');
  const columns = plan.partial.map((c) => `${c.sql} AS ${ident(c.name)}`).join(', ');
  return (
    `COPY (SELECT ${columns} FROM (SELECT ${unnested} FROM ${ident(plan.spec.name)})) ` +
    `TO ${literal(file)} (FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE ${PARTIAL_ROW_GROUP_ROWS})`
  );
}

/** What `mergeBucketExpression` hashes with: DuckDB's `hash` of this DuckDB library's version. */
const MERGE_BUCKET_HASH = `duckdb-hash ${duckdbVersion()}`;

/**
 * The merge bucket of a row of a partial file, from its key columns as a merge reads them: rows with
 * equal keys (as the merge's deduplication compares them) hash alike, so they share a bucket. DuckDB's
 * `hash` is stable for a DuckDB version only: each result names it (`bucketHash`), and a build whose
 * groups used two is refused.
 */
export function mergeBucketExpression(plan: TablePlan, buckets: number): string {
  const keys = plan.spec.key.map((name) => plan.columns.find((c) => c.name === name)!.read);
  return `hash(${keys.join(', ')}) % ${buckets}`;
}

/** `copyPartial`, split by merge bucket into `<folder>/__bucket=<b>/`. */
function copyPartialBuckets(plan: TablePlan, folder: string, buckets: number): string {
  const unnested = plan.staging.map((s) => `${s.row} AS ${s.name}`).join(', ');
  const columns = plan.partial.map((c) => `${c.sql} AS ${ident(c.name)}`).join(', ');
  return (
    `COPY (SELECT *, ${mergeBucketExpression(plan, buckets)} AS __bucket FROM (SELECT ${columns} FROM ` +
    `(SELECT ${unnested} FROM ${ident(plan.spec.name)}))) TO ${literal(folder)} ` +
    `(FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE ${PARTIAL_ROW_GROUP_ROWS}, PARTITION_BY (__bucket), OVERWRITE_OR_IGNORE true)`
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
