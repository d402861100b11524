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
import {
  listCommittedVersions,
  listCurrentVersions,
  type SourceVersionRecord,
} from '../../lake/source-commits.ts';
import { CURRENT_STATE_FILE, STATE_FOLDER } from '../../lake/state-keys.ts';
import { FileObjectStore } from '../local/file-object-store.ts';

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
 * Opens an in-memory DuckDB over the committed silver of a local lake. Views are built from the commit
 * records (`_sources/<dataset>/source=*\/current.json`, see shared/lake/source-commits.ts), never from a
 * glob of the table folders, so a run that is still writing, failed its reconciliation or was killed is
 * never seen; a new version of a source replaces its previous one in every view at once. Per table:
 *
 *   `<dataset>__<table>` (and `<table>`, when no other dataset has a table of that name): every source's
 *     current version;
 *   `<dataset>__<table>_history`: every version ever committed, with `_source_id`, `_version`,
 *     `_committed_at` and `_is_current`;
 *   `<dataset>__<table>_current`: for snapshot, cdc and scd2 loads, the merged state
 *     (`_state/<table>/current.parquet`).
 */
export async function openLakeQuery(lakeDir: string): Promise<LakeQuery> {
  const tables = await findSilverTables(lakeDir);
  const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
  try {
    const connection = await instance.connect();
    const views = viewNames(tables);
    for (const { view, sql } of views) await connection.run(`CREATE VIEW ${ident(view)} AS ${sql}`);
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
  /** The current version's files (one per merge bucket) of each source that has rows in this table. */
  readonly current: readonly string[];
  /** Every committed version's files, each with what it is a version of. */
  readonly history: readonly HistoryFile[];
  /** The merged state file, when the table has one. */
  readonly state?: string;
}

interface HistoryFile {
  readonly file: string;
  readonly sourceId: string;
  readonly version: string;
  readonly committedAt: string;
  readonly isCurrent: boolean;
}

/** Every table of every dataset with committed versions or a merged state, in name order. */
async function findSilverTables(lakeDir: string): Promise<SilverTable[]> {
  const lake = new FileObjectStore(lakeDir);
  const datasets = new Set([
    ...(await subfolders(join(lakeDir, '_sources'))),
    ...(await subfolders(join(lakeDir, 'silver'))),
  ]);
  const found: SilverTable[] = [];
  for (const dataset of [...datasets].sort()) {
    const current = await listCurrentVersions(lake, dataset);
    const committed = await listCommittedVersions(lake, dataset);
    const isCurrent = (r: SourceVersionRecord) =>
      current.some((c) => c.sourceId === r.sourceId && c.version === r.version);
    const names = new Set([...committed, ...current].flatMap((r) => Object.keys(r.tables)));
    const stateDir = join(lakeDir, 'silver', dataset, STATE_FOLDER);
    for (const table of await subfolders(stateDir)) names.add(table);
    for (const table of [...names].sort()) {
      const stateFile = join(stateDir, table, CURRENT_STATE_FILE);
      const state = existsSync(stateFile) ? stateFile : undefined;
      const filesOf = (r: SourceVersionRecord) => (r.tables[table] ?? []).map((key) => lake.uri(key));
      const history = committed.flatMap((r): HistoryFile[] =>
        filesOf(r).map((file) => ({
          file,
          sourceId: r.sourceId,
          version: r.version,
          committedAt: r.committedAt,
          isCurrent: isCurrent(r),
        })),
      );
      const currentFiles = current.flatMap(filesOf);
      if (currentFiles.length || history.length || state) {
        found.push({ dataset, table, current: currentFiles, history, state });
      }
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
    .map((e) => e.name.replace(/^source=/, ''))
    .sort();
}

/** Views and the SELECT each one is. */
function viewNames(tables: readonly SilverTable[]): { view: string; sql: string }[] {
  const word = (name: string) => name.replace(/\W/g, '_');
  const read = (files: readonly string[], extra = '') =>
    `read_parquet([${files.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false${extra})`;
  const withRows = tables.filter((t) => t.current.length > 0);
  const views = withRows.map((t) => ({
    view: `${word(t.dataset)}__${word(t.table)}`,
    sql: `SELECT * FROM ${read(t.current)}`,
  }));
  const taken = new Set(views.map((v) => v.view));
  const byTable = new Map<string, SilverTable[]>();
  for (const t of withRows) byTable.set(word(t.table), [...(byTable.get(word(t.table)) ?? []), t]);
  for (const [name, [only, ...others]] of byTable) {
    if (only && others.length === 0 && !taken.has(name)) {
      views.push({ view: name, sql: `SELECT * FROM ${read(only.current)}` });
    }
  }
  // Short names (`<table>`, `<table>_history`) where no other dataset has a table of that name.
  const shortName = new Map<SilverTable, string>();
  for (const [name, [only, ...others]] of byTable) {
    if (only && others.length === 0 && !taken.has(name)) shortName.set(only, name);
  }
  for (const t of tables) {
    if (t.history.length === 0) continue;
    const versions = t.history
      .map(
        (h) =>
          `(${literal(h.file)}, ${literal(h.sourceId)}, ${literal(h.version)}, ` +
          `TIMESTAMPTZ ${literal(h.committedAt)}, ${h.isCurrent})`,
      )
      .join(', ');
    const sql =
      'SELECT p.* EXCLUDE (filename), v._source_id, v._version, v._committed_at, v._is_current ' +
      `FROM ${read(
        t.history.map((h) => h.file),
        ', filename = true',
      )} AS p ` +
      `JOIN (VALUES ${versions}) AS v(file, _source_id, _version, _committed_at, _is_current) ` +
      'ON p.filename = v.file';
    views.push({ view: `${word(t.dataset)}__${word(t.table)}_history`, sql });
    const short = shortName.get(t);
    if (short) views.push({ view: `${short}_history`, sql });
  }
  for (const t of tables) {
    const view = `${word(t.dataset)}__${word(t.table)}_current`;
    if (t.state && !views.some((v) => v.view === view)) {
      views.push({ view, sql: `SELECT * FROM read_parquet(${literal(t.state)}, hive_partitioning = false)` });
    }
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
