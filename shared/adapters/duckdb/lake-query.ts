import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DuckDBConnection,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBStructValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import { PipelineError } from '../../errors.ts';
import { CURRENT_STATE_FILE, STATE_FOLDER } from '../../lake/state-keys.ts';

/** A query's answer, with values made plain: numbers, strings, booleans, arrays, objects, null. */
export interface QueryResult {
  readonly columns: string[];
  /**
   * Integers as numbers when exactly representable, else as decimal text (so rows survive
   * `JSON.stringify`); DECIMAL as number; DATE as `YYYY-MM-DD`; TIMESTAMP as DuckDB's text
   * (`YYYY-MM-DD HH:MM:SS[.ffffff]`); lists as arrays; structs as objects.
   */
  readonly rows: unknown[][];
}

/** SQL over the silver tables of a local lake, one view per table. */
export interface LakeQuery {
  query(sql: string): Promise<QueryResult>;
  /** The view names, sorted. */
  views(): string[];
  close(): void;
}

/** A query DuckDB refused; the message is DuckDB's, which points at the problem in the SQL. */
export class LakeQueryError extends PipelineError {
  override name = 'LakeQueryError';
}

/**
 * Opens an in-memory DuckDB over `<lakeDir>/silver/<dataset>/<table>/source=*\/**\/*.parquet`. Each table
 * found gets a view `<dataset>__<table>` (dataset with non-word characters as `_`) and, when no other
 * dataset has a table of that name, a view `<table>` as well. A table with a merged state (snapshot, cdc
 * and scd2 loads: `_state/<table>/current.parquet`) also gets `<dataset>__<table>_current`: the table as
 * it is now, where `<dataset>__<table>` has every source's rows (for cdc and scd2, the raw events).
 */
export async function openLakeQuery(lakeDir: string): Promise<LakeQuery> {
  const tables = await findSilverTables(join(lakeDir, 'silver'));
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  try {
    const connection = await instance.connect();
    const views = viewNames(tables);
    for (const { view, files } of views) {
      await connection.run(
        `CREATE VIEW ${ident(view)} AS SELECT * FROM read_parquet(${literal(files)}, union_by_name = true)`,
      );
    }
    return new DuckDBLakeQuery(instance, connection, views.map((v) => v.view).sort());
  } catch (error) {
    instance.closeSync();
    throw error;
  }
}

class DuckDBLakeQuery implements LakeQuery {
  constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly viewList: readonly string[],
  ) {}

  async query(sql: string): Promise<QueryResult> {
    let reader: Awaited<ReturnType<DuckDBConnection['runAndReadAll']>>;
    try {
      reader = await this.connection.runAndReadAll(sql);
    } catch (error) {
      throw new LakeQueryError(error instanceof Error ? error.message : String(error), { cause: error });
    }
    return { columns: reader.columnNames(), rows: reader.getRows().map((row) => row.map(plain)) };
  }

  views(): string[] {
    return [...this.viewList];
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

interface SilverTable {
  readonly dataset: string;
  readonly table: string;
  readonly dir: string;
  /** Whether the table has per-source partitions (`source=<run id>/…parquet`). */
  readonly partitions: boolean;
  /** The merged state file, when the table has one. */
  readonly state?: string;
}

/** Every `<dataset>/<table>` folder under `silverDir` holding partitions or a state, in name order. */
async function findSilverTables(silverDir: string): Promise<SilverTable[]> {
  const found: SilverTable[] = [];
  for (const dataset of await subfolders(silverDir)) {
    const stateDir = join(silverDir, dataset, STATE_FOLDER);
    for (const table of await subfolders(join(silverDir, dataset))) {
      if (table === STATE_FOLDER) continue;
      const dir = join(silverDir, dataset, table);
      const files = await readdir(dir, { recursive: true });
      const partitions = files.some((file) => file.startsWith('source=') && file.endsWith('.parquet'));
      const stateFile = join(stateDir, table, CURRENT_STATE_FILE);
      const state = existsSync(stateFile) ? stateFile : undefined;
      if (partitions || state) found.push({ dataset, table, dir, partitions, state });
    }
  }
  return found;
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

/** Views and what each reads: a glob over a table's partitions, or its state file. */
function viewNames(tables: readonly SilverTable[]): { view: string; files: string }[] {
  const word = (name: string) => name.replace(/\W/g, '_');
  // Only the partitions: the state folder beside them holds the same rows merged, and other columns.
  const partitions = (t: SilverTable) => join(t.dir, 'source=*', '**', '*.parquet');
  const withPartitions = tables.filter((t) => t.partitions);
  const views = withPartitions.map((t) => ({
    view: `${word(t.dataset)}__${word(t.table)}`,
    files: partitions(t),
  }));
  const taken = new Set(views.map((v) => v.view));
  const byTable = new Map<string, SilverTable[]>();
  for (const t of withPartitions) byTable.set(word(t.table), [...(byTable.get(word(t.table)) ?? []), t]);
  for (const [name, [only, ...others]] of byTable) {
    if (only && others.length === 0 && !taken.has(name)) views.push({ view: name, files: partitions(only) });
  }
  for (const t of tables) {
    const view = `${word(t.dataset)}__${word(t.table)}_current`;
    if (t.state && !views.some((v) => v.view === view)) views.push({ view, files: t.state });
  }
  return views;
}

/** A DuckDB value as plain data for printing or JSON. */
function plain(value: DuckDBValue): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value !== 'bigint') return value;
    const safe = value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER;
    return safe ? Number(value) : value.toString();
  }
  if (value instanceof DuckDBDateValue) return value.toString();
  if (value instanceof DuckDBListValue) return value.items.map(plain);
  if (value instanceof DuckDBDecimalValue) return value.toDouble();
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plain(v)]));
  }
  return value.toString();
}

export interface FormatTableOptions {
  /** Longer cells are cut, ending in `…`. @default 40 */
  readonly maxCellWidth?: number;
}

/** A query result as an aligned text table with a row count, for a terminal. */
export function formatTable(result: QueryResult, options: FormatTableOptions = {}): string {
  const max = Math.max(options.maxCellWidth ?? 40, 2);
  const cut = (text: string) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
  const header = result.columns.map(cut);
  const cells = result.rows.map((row) => row.map((value) => cut(cellText(value))));
  const numeric = result.columns.map((_, i) =>
    result.rows.every((row) => row[i] === null || typeof row[i] === 'number' || typeof row[i] === 'bigint'),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join(' | ')
      .trimEnd();
  const count = `(${result.rows.length} ${result.rows.length === 1 ? 'row' : 'rows'})`;
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...cells.map(line), count].join('\n');
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return value.replace(/\r?\n|\r/g, '↵').replace(/\t/g, ' ');
  if (Array.isArray(value)) return `[${value.map(cellText).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${cellText(v)}`)
      .join(', ')}}`;
  }
  return String(value);
}

function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
