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
 * Opens an in-memory DuckDB over `<lakeDir>/silver/<dataset>/<table>/**\/*.parquet`. Each table found
 * gets a view `<dataset>__<table>` (dataset with non-word characters as `_`) and, when no other dataset
 * has a table of that name, a view `<table>` as well.
 */
export async function openLakeQuery(lakeDir: string): Promise<LakeQuery> {
  const tables = await findSilverTables(join(lakeDir, 'silver'));
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  try {
    const connection = await instance.connect();
    const views = viewNames(tables);
    for (const { view, dir } of views) {
      const glob = join(dir, '**', '*.parquet');
      await connection.run(
        `CREATE VIEW ${ident(view)} AS SELECT * FROM read_parquet(${literal(glob)}, union_by_name = true)`,
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
}

/** Every `<dataset>/<table>` folder under `silverDir` holding at least one Parquet file, in name order. */
async function findSilverTables(silverDir: string): Promise<SilverTable[]> {
  const found: SilverTable[] = [];
  for (const dataset of await subfolders(silverDir)) {
    for (const table of await subfolders(join(silverDir, dataset))) {
      const dir = join(silverDir, dataset, table);
      const files = await readdir(dir, { recursive: true });
      if (files.some((file) => file.endsWith('.parquet'))) found.push({ dataset, table, dir });
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

function viewNames(tables: readonly SilverTable[]): { view: string; dir: string }[] {
  const word = (name: string) => name.replace(/\W/g, '_');
  const views = tables.map((t) => ({ view: `${word(t.dataset)}__${word(t.table)}`, dir: t.dir }));
  const taken = new Set(views.map((v) => v.view));
  const byTable = new Map<string, SilverTable[]>();
  for (const t of tables) byTable.set(word(t.table), [...(byTable.get(word(t.table)) ?? []), t]);
  for (const [name, [only, ...others]] of byTable) {
    if (only && others.length === 0 && !taken.has(name)) views.push({ view: name, dir: only.dir });
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
