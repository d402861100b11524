import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  type DuckDBConnection,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBStructValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ConfigError, PipelineError } from '../../errors.ts';
import { mapInPool } from '../../in-pool.ts';
import {
  listCommittedVersions,
  listCurrentVersions,
  type SourceVersionRecord,
} from '../../lake/source-commits.ts';
import { STATE_FOLDER } from '../../lake/state-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { readText } from '../../stages/bronze/read-bronze.ts';
import { SilverStateManifest } from '../../stages/silver/merge-state.ts';
import { openLakeStore } from '../lake-store.ts';
import { FileObjectStore } from '../local/file-object-store.ts';
import { ident, literal } from './final-table.ts';

/** A query's answer, with values made plain: numbers, strings, booleans, arrays, objects, null. */
export interface QueryResult {
  readonly columns: string[];
  /**
   * Integers as numbers when exactly representable, else as decimal text (so rows survive
   * `JSON.stringify`); DECIMAL likewise (a number when exact, else its digits); a DOUBLE that is not
   * finite as `"Infinity"`, `"-Infinity"` or `"NaN"`; DATE as `YYYY-MM-DD`;
   * TIMESTAMP as DuckDB's text (`YYYY-MM-DD HH:MM:SS[.ffffff]`); lists as arrays; structs as objects.
   */
  readonly rows: unknown[][];
}

/** SQL over the silver tables of a local lake, one view per table. */
export interface LakeQuery {
  query(sql: string): Promise<QueryResult>;
  /** The view names, sorted. */
  views(): string[];
  /** Closes DuckDB and removes any files fetched from a remote lake. */
  close(): Promise<void>;
}

/** A query DuckDB could not run (reading a file failed, memory ran out); the message is DuckDB's. */
export class LakeQueryError extends PipelineError {
  override name = 'LakeQueryError';
}

/**
 * SQL DuckDB refused as written: a syntax error, a table or column the lake does not have. Bad usage
 * (exit 2), not a failure of the lake; the message is DuckDB's, which points at the problem in the SQL.
 */
export class InvalidQueryError extends ConfigError {
  override name = 'InvalidQueryError';
}

/** DuckDB's errors about the SQL itself, by the type it starts its message with. */
const SQL_ERROR = /^(Parser|Catalog|Binder|Syntax) Error\b/;

/** How `openLakeQuery` reads a lake. */
export interface LakeQueryOptions {
  /**
   * Only these views are made (the rest are still listed by `views()`): on an S3 lake each view's files
   * are fetched first, so a query fetches the tables it names and no others. @default every view
   */
  readonly only?: (view: string) => boolean;
  /** Told before files are fetched from a remote lake: how many, and their bytes. */
  readonly onFetch?: (files: number, bytes: number) => void;
}

/**
 * Opens an in-memory DuckDB over the committed silver of a lake: a folder, or `s3://bucket[/prefix]`
 * (`openLakeStore`). Views are built from the commit records (`_sources/<dataset>/source=*\/current.json`,
 * see shared/lake/source-commits.ts), never from a glob of the table folders, so a run that is still
 * writing, failed its reconciliation or was killed is never seen; a new version of a source replaces its
 * previous one in every view at once. A folder lake's files are read where they are; an S3 lake's files
 * are fetched into a temporary folder (removed by `close`), since DuckDB's own S3 reader is an extension
 * that is downloaded on first use, which an offline machine cannot do. Per table:
 *
 *   `<dataset>__<table>` (and `<table>`, when no other dataset has a table of that name): every source's
 *     current version;
 *   `<dataset>__<table>_history`: every version ever committed, with `_source_id`, `_version`,
 *     `_committed_at` and `_is_current`;
 *   `<dataset>__<table>_current`: for snapshot, cdc and scd2 loads, the merged state
 *     (the file `_state/<table>.json` commits).
 */
export async function openLakeQuery(lake: string, options: LakeQueryOptions = {}): Promise<LakeQuery> {
  const store = openLakeStore(lake);
  const tables = await findSilverTables(store);
  const views = viewNames(tables);
  const wanted = views.filter((v) => options.only?.(v.view) ?? true);
  const fetched =
    store instanceof FileObjectStore ? undefined : await mkdtemp(join(tmpdir(), 'sluice-query-'));
  try {
    const fileOf = fetched
      ? await fetchFiles(store, keysOf(wanted), fetched, options.onFetch)
      : (key: string) => store.uri(key);
    const instance = await DuckDBInstance.create(':memory:', { threads: '2' });
    try {
      const connection = await instance.connect();
      for (const { view, sql } of wanted)
        await connection.run(`CREATE VIEW ${ident(view)} AS ${sql(fileOf)}`);
      const close = () => (fetched ? rm(fetched, { recursive: true, force: true }) : Promise.resolve());
      return new DuckDBLakeQuery(instance, connection, views.map((v) => v.view).sort(), close);
    } catch (error) {
      instance.closeSync();
      throw error;
    }
  } catch (error) {
    if (fetched) await rm(fetched, { recursive: true, force: true });
    throw error;
  }
}

/** The keys the views read. */
function keysOf(views: readonly View[]): string[] {
  return [...new Set(views.flatMap((v) => v.keys))].sort();
}

/** Fetches `keys` from the store into `dir` (a few at a time), and maps each key to its file. */
async function fetchFiles(
  store: ObjectStore,
  keys: readonly string[],
  dir: string,
  onFetch: LakeQueryOptions['onFetch'],
): Promise<(key: string) => string> {
  const fileOf = (key: string) => join(dir, key);
  if (keys.length === 0) return fileOf;
  const sizes = await mapInPool(keys, 8, async (key) => {
    const info = await store.head(key);
    if (!info) {
      throw new PipelineError(
        `${store.uri(key)} is named by a commit record but is not in the lake: a merge may have replaced it ` +
          'while the query started (run it again), or the lake was changed outside sluice',
      );
    }
    return info.size;
  });
  onFetch?.(
    keys.length,
    sizes.reduce((sum, size) => sum + size, 0),
  );
  await mapInPool(keys, 8, async (key) => {
    await mkdir(dirname(fileOf(key)), { recursive: true });
    await pipeline(await store.read(key), createWriteStream(fileOf(key)));
  });
  return fileOf;
}

class DuckDBLakeQuery implements LakeQuery {
  constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly viewList: readonly string[],
    private readonly removeFetched: () => Promise<void>,
  ) {}

  async query(sql: string): Promise<QueryResult> {
    let reader: Awaited<ReturnType<DuckDBConnection['runAndReadAll']>>;
    try {
      reader = await this.connection.runAndReadAll(sql);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (!SQL_ERROR.test(message)) throw new LakeQueryError(message, { cause: error });
      // DuckDB suggests its own catalog's names ("Did you mean pg_enum?"): the lake's tables help more.
      const tables = this.viewList.filter((name) => !name.endsWith('_history'));
      const hint = /^Catalog Error: Table/.test(message)
        ? `\nThe lake's tables: ${tables.join(', ')} (each also as <table>_history; \`sluice query\` lists them).`
        : '';
      throw new InvalidQueryError(`${message}${hint}`, { cause: error });
    }
    return { columns: reader.columnNames(), rows: reader.getRows().map((row) => row.map(plainValue)) };
  }

  views(): string[] {
    return [...this.viewList];
  }

  async close(): Promise<void> {
    this.connection.closeSync();
    this.instance.closeSync();
    await this.removeFetched();
  }
}

interface SilverTable {
  readonly dataset: string;
  readonly table: string;
  /** The current version's files (one per merge bucket) of each source that has rows in this table. */
  readonly current: readonly string[];
  /** Every committed version's files, each with what it is a version of. */
  readonly history: readonly HistoryFile[];
  /** The merged state's key, when the table has one. */
  readonly state?: string;
  /** A table no current source has rows in: its columns, from a silver manifest (a view of no rows). */
  readonly empty?: SilverManifest['tables'][string]['columns'];
}

interface HistoryFile {
  readonly key: string;
  readonly sourceId: string;
  readonly version: string;
  readonly committedAt: string;
  readonly isCurrent: boolean;
}

/** Every table of every dataset with committed versions or a merged state, in name order. */
async function findSilverTables(lake: ObjectStore): Promise<SilverTable[]> {
  const found: SilverTable[] = [];
  for (const dataset of await subfolders(lake, '_sources/')) {
    const current = await listCurrentVersions(lake, dataset);
    const committed = await listCommittedVersions(lake, dataset);
    const isCurrent = (r: SourceVersionRecord) =>
      current.some((c) => c.sourceId === r.sourceId && c.version === r.version);
    const empty = await emptyTables(lake, current);
    const names = new Set([...committed, ...current].flatMap((r) => Object.keys(r.tables)));
    const states = await committedStates(lake, dataset);
    for (const table of [...new Set([...names, ...states.keys(), ...empty.keys()])].sort()) {
      const keysOf = (r: SourceVersionRecord) => r.tables[table] ?? [];
      const history = committed.flatMap((r): HistoryFile[] =>
        keysOf(r).map((key) => ({
          key,
          sourceId: r.sourceId,
          version: r.version,
          committedAt: r.committedAt,
          isCurrent: isCurrent(r),
        })),
      );
      const currentKeys = current.flatMap(keysOf);
      const state = states.get(table);
      const columns = currentKeys.length === 0 ? empty.get(table) : undefined;
      if (currentKeys.length || history.length || state || columns) {
        found.push({ dataset, table, current: currentKeys, history, state, empty: columns });
      }
    }
  }
  return found;
}

/**
 * The tables a current source's silver build has no files of (no rows), with their columns, read from
 * one current source's silver manifest: each source's build has every table of the contract.
 */
async function emptyTables(
  lake: ObjectStore,
  current: readonly SourceVersionRecord[],
): Promise<Map<string, NonNullable<SilverTable['empty']>>> {
  const empty = new Map<string, NonNullable<SilverTable['empty']>>();
  const key = current.find((r) => r.silverManifestKey !== undefined)?.silverManifestKey;
  if (key === undefined) return empty;
  const manifest = SilverManifest.parse(JSON.parse(await readText(lake, key)));
  for (const [table, result] of Object.entries(manifest.tables)) {
    if (result.columns) empty.set(table, result.columns);
  }
  return empty;
}

/**
 * The merged states of `dataset`'s tables: the state file each state manifest commits (`<table>.json`,
 * written after the state's files; see merge-state.ts), by table.
 */
async function committedStates(lake: ObjectStore, dataset: string): Promise<Map<string, string>> {
  const prefix = `silver/${dataset}/${STATE_FOLDER}/`;
  const states = new Map<string, string>();
  for await (const object of lake.list(prefix)) {
    const name = object.key.slice(prefix.length);
    if (name.includes('/') || !name.endsWith('.json')) continue;
    const manifest = SilverStateManifest.safeParse(JSON.parse(await readText(lake, object.key)));
    if (!manifest.success) {
      throw new PipelineError(`${lake.uri(object.key)} is not a state manifest: ${manifest.error.message}`);
    }
    states.set(name.slice(0, -'.json'.length), manifest.data.current.key);
  }
  return states;
}

/** The names of the folders right under `prefix` (`source=` cut), sorted. */
async function subfolders(lake: ObjectStore, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  for await (const object of lake.list(prefix)) {
    const name = object.key.slice(prefix.length).split('/')[0];
    if (name && object.key.length > prefix.length + name.length && !name.startsWith('.')) names.add(name);
  }
  return [...names].sort();
}

/** A view: its name, the keys it reads, and its SELECT once the keys are files DuckDB can open. */
interface View {
  readonly view: string;
  readonly keys: readonly string[];
  readonly sql: (fileOf: (key: string) => string) => string;
}

/** Views and the SELECT each one is. */
function viewNames(tables: readonly SilverTable[]): View[] {
  const word = (name: string) => name.replace(/\W/g, '_');
  const read = (files: readonly string[], extra = '') =>
    `read_parquet([${files.map(literal).join(', ')}], union_by_name = true, hive_partitioning = false${extra})`;
  const currentOf = (t: SilverTable) => ({
    keys: t.current,
    sql: (fileOf: (key: string) => string) =>
      t.current.length > 0 ? `SELECT * FROM ${read(t.current.map(fileOf))}` : noRows(t.empty ?? []),
  });
  const withRows = tables.filter((t) => t.current.length > 0 || t.empty);
  const views: View[] = withRows.map((t) => ({
    view: `${word(t.dataset)}__${word(t.table)}`,
    ...currentOf(t),
  }));
  const taken = new Set(views.map((v) => v.view));
  const byTable = new Map<string, SilverTable[]>();
  for (const t of withRows) byTable.set(word(t.table), [...(byTable.get(word(t.table)) ?? []), t]);
  // Short names (`<table>`, `<table>_history`) where no other dataset has a table of that name.
  const shortName = new Map<SilverTable, string>();
  for (const [name, [only, ...others]] of byTable) {
    if (only && others.length === 0 && !taken.has(name)) {
      views.push({ view: name, ...currentOf(only) });
      shortName.set(only, name);
    }
  }
  for (const t of tables) {
    if (t.history.length === 0) {
      // A table no committed version has rows in: its history is empty, with the history's columns.
      if (t.empty) {
        const versionColumns = [
          'CAST(NULL AS VARCHAR) AS _source_id',
          'CAST(NULL AS VARCHAR) AS _version',
          'CAST(NULL AS TIMESTAMPTZ) AS _committed_at',
          'CAST(NULL AS BOOLEAN) AS _is_current',
        ];
        const sql = () => noRows(t.empty!, versionColumns);
        views.push({ view: `${word(t.dataset)}__${word(t.table)}_history`, keys: [], sql });
        const short = shortName.get(t);
        if (short) views.push({ view: `${short}_history`, keys: [], sql });
      }
      continue;
    }
    const sql = (fileOf: (key: string) => string) => {
      const versions = t.history
        .map(
          (h) =>
            `(${literal(fileOf(h.key))}, ${literal(h.sourceId)}, ${literal(h.version)}, ` +
            `TIMESTAMPTZ ${literal(h.committedAt)}, ${h.isCurrent})`,
        )
        .join(', ');
      return (
        'SELECT p.* EXCLUDE (filename), v._source_id, v._version, v._committed_at, v._is_current ' +
        `FROM ${read(
          t.history.map((h) => fileOf(h.key)),
          ', filename = true',
        )} AS p ` +
        `JOIN (VALUES ${versions}) AS v(file, _source_id, _version, _committed_at, _is_current) ` +
        'ON p.filename = v.file'
      );
    };
    const keys = t.history.map((h) => h.key);
    views.push({ view: `${word(t.dataset)}__${word(t.table)}_history`, keys, sql });
    const short = shortName.get(t);
    if (short) views.push({ view: `${short}_history`, keys, sql });
  }
  for (const t of tables) {
    const view = `${word(t.dataset)}__${word(t.table)}_current`;
    const { state } = t;
    if (state && !views.some((v) => v.view === view)) {
      views.push({
        view,
        keys: [state],
        sql: (fileOf) => `SELECT * FROM read_parquet(${literal(fileOf(state))}, hive_partitioning = false)`,
      });
    }
  }
  return views;
}

/** A SELECT of no rows with the given columns (and `extra` select items): a table with no rows yet. */
function noRows(columns: NonNullable<SilverTable['empty']>, extra: readonly string[] = []): string {
  const select = [...columns.map((c) => `CAST(NULL AS ${c.type}) AS ${ident(c.name)}`), ...extra];
  return `SELECT ${select.join(', ') || 'NULL AS _'} WHERE false`;
}

/** A DuckDB value as plain data for printing or JSON (what `QueryResult` rows hold). */
export function plainValue(value: DuckDBValue): unknown {
  if (value === null || typeof value !== 'object') {
    // JSON has no Infinity or NaN: JSON.stringify would print null, which is another value in SQL.
    if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
    if (typeof value !== 'bigint') return value;
    const safe = value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER;
    return safe ? Number(value) : value.toString();
  }
  if (value instanceof DuckDBDateValue) return value.toString();
  if (value instanceof DuckDBListValue) return value.items.map(plainValue);
  if (value instanceof DuckDBDecimalValue) return exactDecimal(value.toString());
  if (value instanceof DuckDBStructValue) {
    return Object.fromEntries(Object.entries(value.entries).map(([k, v]) => [k, plainValue(v)]));
  }
  return value.toString();
}

/**
 * A DECIMAL as a number when that number is its exact value (`1.50` → 1.5), else as its digits
 * (`"12345678901234567.89"`), as an integer beyond 2^53 is: a double would change it silently.
 */
function exactDecimal(text: string): number | string {
  const number = Number(text);
  if (number === 0) return 0;
  return withoutTrailingZeros(String(number)) === withoutTrailingZeros(text) ? number : text;
}

const withoutTrailingZeros = (decimal: string): string =>
  decimal.includes('.') ? decimal.replace(/\.?0+$/, '') : decimal;

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
