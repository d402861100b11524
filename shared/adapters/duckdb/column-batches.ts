/**
 * Rows handed to DuckDB as column batches: one staging-table row holds a whole batch of rows, each
 * column as one value, and the partial file's COPY unnests them back into rows.
 *
 * Why: the appender takes text one native call per value (≈ 250 ns each, measured with
 * @duckdb/node-api 1.5), and a 1 GB TiC file has ≈ 36 M texts in its silver tables. A batch of texts
 * joined into one string is one call; numbers travel in a list, which node-api fills as a typed array.
 *
 * A batch travels the fast way when that round-trips exactly, else the exact way, per column:
 * - text: joined by RS (U+001E), null as a lone GS (U+001D); exact when a value holds an RS or is a
 *   lone GS; a batch of one value throughout (a file id, a run id, a bronze part key: ≈ 190 of a price
 *   row's characters) as that value once, which the COPY repeats for each row of the batch;
 * - BIGINT: a DOUBLE list (exact for safe integers); exact (a BIGINT list) for the rest;
 * - text lists: each row's list joined by US (U+001F) (`joinList`), the rows joined by RS; exact (a list
 *   of lists) when a list does not join;
 * - BIGINT and DOUBLE lists: a list of DOUBLE lists, which node-api fills as typed arrays (a 1 GB file
 *   has millions of NPIs: turning each into text and back cost more than the rest of its list); exact
 *   (a list of lists of the type) for an element a double does not carry as itself (`numbersFit`);
 * - DOUBLE, BOOLEAN, DATE, TIMESTAMP: a list of the type itself, always exact.
 * Each column takes a fast and an exact staging column; a batch fills one of them and leaves the other
 * null. Unnested side by side, the unused one pads with nulls, so `coalesce` picks the used one. A batch
 * of nulls only (text or list) leaves every staging column null: unnested, they pad with nulls too.
 * (The lineage's `_record_index` is never null, so every batch unnests to its rows.)
 */
import {
  BIGINT,
  BOOLEAN,
  DATE,
  DOUBLE,
  DuckDBListValue,
  type DuckDBType,
  type DuckDBValue,
  LIST,
  TIMESTAMP,
  VARCHAR,
} from '@duckdb/node-api';
import type { ColumnType } from '../../contracts/silver/table.ts';
import { listOf, toBigInt, toBoolean, toDate, toDouble, toTimestamp, toVarchar } from './duckdb-values.ts';
import { ident } from './final-table.ts';

/** Separates the rows of a batch. */
const ROW_SEPARATOR = '\u001e';
/** A null row value in a joined batch. */
const NULL_TEXT = '\u001d';
/** Separates the elements of a text list. */
const ELEMENT_SEPARATOR = '\u001f';
/** A row separator or a null marker: a joined list holding one goes the exact way. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the separators are control characters on purpose.
const ROW_MARKERS = /[\u001d\u001e]/;

/** A staging column: its DuckDB type, and how its batch value becomes one value per row. */
interface StagingColumn {
  readonly type: DuckDBType;
  readonly sqlType: string;
  /** SQL of the column's value in each row of its batch: an unnested list, or one value repeated. */
  row(name: string): string;
}

/** How one declared column travels: collects a batch of values, hands them over as staging values. */
export interface ColumnBatch {
  readonly staging: readonly StagingColumn[];
  /** Adds the next row's value (not null); throws `TypeMismatch` when it does not fit the column. */
  add(value: unknown): void;
  addNull(): void;
  /** Forgets the values of rows from `size` on (a row that failed part way). */
  truncate(size: number): void;
  /** The batch as one value per staging column; starts a new batch. */
  take(): DuckDBValue[];
  /**
   * What a partial file stores of the column, from the unnested staging columns `names`: SQL of each
   * stored column and the suffix of its name (`''`: the column's own name).
   */
  partial(names: readonly string[]): readonly PartialColumn[];
  /** SQL of the value of column `name` from what a partial file stores of it. */
  read(name: string): string;
}

export interface PartialColumn {
  readonly suffix: string;
  readonly sql: string;
}

/** A list's exact values in a partial file, next to its joined text: `<column>#exact`. */
export const EXACT_SUFFIX = '#exact';

const asIs = (sql: string): readonly PartialColumn[] => [{ suffix: '', sql }];

const fastText: StagingColumn = {
  type: VARCHAR,
  sqlType: 'VARCHAR',
  row: (name) => `unnest(string_split(${name}, chr(30)))`,
};
/** One text for every row of the batch: DuckDB repeats a value selected beside unnested lists. */
const batchText: StagingColumn = { type: VARCHAR, sqlType: 'VARCHAR', row: (name) => name };
const listOfType = (type: DuckDBType, sqlType: string): StagingColumn => ({
  type: LIST(type),
  sqlType: `${sqlType}[]`,
  row: (name) => `unnest(${name})`,
});

/** Joins a batch of texts; `nulls` says whether any is null (then written as NULL_TEXT). */
function joinBatch(values: readonly (string | null)[], nulls: boolean): string {
  if (!nulls) return values.join(ROW_SEPARATOR);
  return values.map((v) => v ?? NULL_TEXT).join(ROW_SEPARATOR);
}

const joinsExactly = (text: string): boolean => !text.includes(ROW_SEPARATOR) && text !== NULL_TEXT;

/** Whether every value of a batch is `value` (strings compared by value, as `===` does). */
function allEqual(values: readonly unknown[], value: unknown): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] !== value) return false;
  return true;
}

class TextBatch implements ColumnBatch {
  readonly staging = [fastText, listOfType(VARCHAR, 'VARCHAR'), batchText];
  private values: (string | null)[] = [];
  private nulls = false;
  private exact = false;

  add(value: unknown): void {
    const text = toVarchar(value);
    if (!this.exact && !joinsExactly(text)) this.exact = true;
    this.values.push(text);
  }
  addNull(): void {
    this.nulls = true;
    this.values.push(null);
  }
  truncate(size: number): void {
    this.values.length = size;
  }
  take(): DuckDBValue[] {
    const { values, nulls, exact } = this;
    this.values = [];
    this.nulls = false;
    this.exact = false;
    // One value throughout (or nulls only): staged once, not joined, split and copied per row.
    const first = values[0] ?? null;
    if (allEqual(values, first)) return [null, null, first];
    return exact ? [null, new DuckDBListValue(values), null] : [joinBatch(values, nulls), null, null];
  }
  partial([fast, exact, one]: readonly string[]): readonly PartialColumn[] {
    return asIs(`coalesce(${one}, nullif(${fast}, chr(29)), ${exact})`);
  }
  read(name: string): string {
    return ident(name);
  }
}

class BigIntBatch implements ColumnBatch {
  readonly staging = [listOfType(DOUBLE, 'DOUBLE'), listOfType(BIGINT, 'BIGINT')];
  private values: (number | bigint | null)[] = [];
  private exact = false;

  add(value: unknown): void {
    if (typeof value === 'number' && Number.isSafeInteger(value)) {
      this.values.push(value);
    } else {
      this.values.push(toBigInt(value));
      this.exact = true;
    }
  }
  addNull(): void {
    this.values.push(null);
  }
  truncate(size: number): void {
    this.values.length = size;
  }
  take(): DuckDBValue[] {
    const { values, exact } = this;
    this.values = [];
    this.exact = false;
    if (!exact) return [new DuckDBListValue(values), null];
    return [null, new DuckDBListValue(values.map((v) => (typeof v === 'number' ? BigInt(v) : v)))];
  }
  partial([fast, exact]: readonly string[]): readonly PartialColumn[] {
    return asIs(`coalesce(${fast}::BIGINT, ${exact})`);
  }
  read(name: string): string {
    return ident(name);
  }
}

/**
 * The text list as one text that `ListBatch.read` turns back into exactly this list, or undefined when
 * it cannot (then the batch goes the exact way, which also reports wrong element types).
 */
export function joinList(items: readonly unknown[]): string | undefined {
  for (let i = 0; i < items.length; i++) {
    if (typeof items[i] !== 'string') return undefined;
  }
  if (items.length === 0) return '';
  // `['']` joins to '' like `[]`: the exact way keeps them apart.
  if (items.length === 1 && items[0] === '') return undefined;
  // Joined once, then checked: no row or null marker in it, and exactly the separators the join put
  // there (a regex per element, or a second join to test, cost more: lists are millions).
  const joined = items.join(ELEMENT_SEPARATOR);
  if (ROW_MARKERS.test(joined)) return undefined;
  let separators = 0;
  for (let at = joined.indexOf(ELEMENT_SEPARATOR); at !== -1; at = joined.indexOf(ELEMENT_SEPARATOR, at + 1))
    separators++;
  return separators === items.length - 1 ? joined : undefined;
}

export type NumberElement = 'BIGINT' | 'DOUBLE';

/**
 * Whether a list of numbers travels as DOUBLEs exactly: every element a finite number (a safe integer
 * for BIGINT), and no -0 (the earlier text form could not carry it; it keeps the exact way). Bigints,
 * null elements and the rest are checked and converted by the exact way.
 */
export function numbersFit(element: NumberElement, items: readonly unknown[]): boolean {
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (typeof item !== 'number' || !Number.isFinite(item) || Object.is(item, -0)) return false;
    if (element === 'BIGINT' && !Number.isSafeInteger(item)) return false;
  }
  return true;
}

/** Lists of BIGINT or DOUBLE: each row's list as a DOUBLE list when that is exact (see the top). */
class NumberListBatch implements ColumnBatch {
  readonly staging: readonly StagingColumn[];
  private lists: unknown[] = [];
  private exact = false;
  private lastList: unknown;
  private lastFast: DuckDBListValue | null = null;

  constructor(
    private readonly element: NumberElement,
    private readonly convert: (value: unknown) => DuckDBListValue,
  ) {
    this.staging = [
      listOfType(LIST(DOUBLE), 'DOUBLE[]'),
      listOfType(LIST(ELEMENT_TYPES[element]), `${element}[]`),
    ];
  }

  add(value: unknown): void {
    // A list shared by rows is checked once (appended values are not mutated: the same array is the same list).
    if (value !== this.lastList) {
      this.lastList = value;
      this.lastFast =
        Array.isArray(value) && numbersFit(this.element, value) ? new DuckDBListValue(value) : null;
    }
    if (this.lastFast === null) {
      this.convert(value); // throws when the value does not fit
      this.exact = true;
    }
    this.lists.push(this.lastFast ?? value);
  }
  addNull(): void {
    this.lists.push(null);
  }
  truncate(size: number): void {
    this.lists.length = size;
  }
  take(): DuckDBValue[] {
    const { lists, exact } = this;
    this.lists = [];
    this.exact = false;
    if (allEqual(lists, null)) return [null, null];
    if (!exact) return [new DuckDBListValue(lists as (DuckDBListValue | null)[]), null];
    return [
      null,
      new DuckDBListValue(
        lists.map((list) =>
          list === null ? null : this.convert(list instanceof DuckDBListValue ? list.items : list),
        ),
      ),
    ];
  }
  partial([fast, exact]: readonly string[]): readonly PartialColumn[] {
    const cast = this.element === 'DOUBLE' ? fast : `${fast}::BIGINT[]`;
    return asIs(`coalesce(${cast}, ${exact})`);
  }
  read(name: string): string {
    return ident(name);
  }
}

/** Lists of text: each row's list joined (see the top), kept joined in partial files. */
class ListBatch implements ColumnBatch {
  readonly staging: readonly StagingColumn[];
  private lists: unknown[] = [];
  private texts: (string | null)[] = [];
  private nulls = false;
  private exact = false;
  private lastList: unknown;
  private lastJoined: string | undefined;
  private readonly element = 'VARCHAR';

  constructor(private readonly convert: (value: unknown) => DuckDBListValue) {
    this.staging = [fastText, listOfType(LIST(VARCHAR), 'VARCHAR[]')];
  }

  add(value: unknown): void {
    // Rows often share one list (a rate's provider group ids, in each of its prices): joined once.
    // Appended values are not mutated (the TableWriter contract), so the same array is the same list.
    if (value !== this.lastList) {
      this.lastList = value;
      this.lastJoined = Array.isArray(value) ? joinList(value) : undefined;
    }
    const joined = this.lastJoined;
    if (joined === undefined) {
      this.convert(value); // throws when the value does not fit
      this.exact = true;
    }
    this.lists.push(value);
    this.texts.push(joined ?? null);
  }
  addNull(): void {
    this.nulls = true;
    this.lists.push(null);
    this.texts.push(null);
  }
  truncate(size: number): void {
    this.lists.length = size;
    this.texts.length = size;
  }
  take(): DuckDBValue[] {
    const { lists, texts, nulls, exact } = this;
    this.lists = [];
    this.texts = [];
    this.nulls = false;
    this.exact = false;
    // Nulls only (a modifier or service code most prices lack): both staging values null, padded so.
    if (allEqual(lists, null)) return [null, null];
    if (!exact) return [joinBatch(texts, nulls), null];
    return [null, new DuckDBListValue(lists.map((list) => (list === null ? null : this.convert(list))))];
  }
  /**
   * Partial files keep the joined text (null for a null list), and the exact list of a batch that did
   * not join: splitting 29 M provider group ids once, in the merge, rather than also before writing each
   * partial file and reading it back, saves ≈ 2 s of a 1 GB file's build.
   */
  partial([fast, exact]: readonly string[]): readonly PartialColumn[] {
    return [
      { suffix: '', sql: `nullif(${fast}, chr(29))` },
      { suffix: EXACT_SUFFIX, sql: exact! },
    ];
  }
  read(name: string): string {
    const joined = ident(name);
    const exact = ident(name + EXACT_SUFFIX);
    const split = `string_split(${joined}, chr(31))`;
    return `coalesce(CASE ${joined} WHEN '' THEN []::${this.element}[] ELSE ${split} END, ${exact})`;
  }
}

/** DOUBLE, BOOLEAN, DATE and TIMESTAMP: a list of the type itself is filled without a call per value. */
class PlainBatch implements ColumnBatch {
  readonly staging: readonly StagingColumn[];
  private values: DuckDBValue[] = [];

  constructor(
    type: DuckDBType,
    sqlType: string,
    private readonly convert: (value: unknown) => DuckDBValue,
  ) {
    this.staging = [listOfType(type, sqlType)];
  }
  add(value: unknown): void {
    this.values.push(this.convert(value));
  }
  addNull(): void {
    this.values.push(null);
  }
  truncate(size: number): void {
    this.values.length = size;
  }
  take(): DuckDBValue[] {
    const values = this.values;
    this.values = [];
    return [new DuckDBListValue(values)];
  }
  partial([plain]: readonly string[]): readonly PartialColumn[] {
    return asIs(plain!);
  }
  read(name: string): string {
    return ident(name);
  }
}

/** A new, empty batch per column type: the one list of the types the writer knows. */
const BATCHES: Record<ColumnType, () => ColumnBatch> = {
  VARCHAR: () => new TextBatch(),
  BIGINT: () => new BigIntBatch(),
  DOUBLE: () => new PlainBatch(DOUBLE, 'DOUBLE', toDouble),
  BOOLEAN: () => new PlainBatch(BOOLEAN, 'BOOLEAN', toBoolean),
  DATE: () => new PlainBatch(DATE, 'DATE', toDate),
  TIMESTAMP: () => new PlainBatch(TIMESTAMP, 'TIMESTAMP', toTimestamp),
  'VARCHAR[]': () => new ListBatch(listOf(toVarchar)),
  'BIGINT[]': () => new NumberListBatch('BIGINT', listOf(toBigInt)),
  'DOUBLE[]': () => new NumberListBatch('DOUBLE', listOf(toDouble)),
};

/** Whether the writer knows a column type (a contract's spec is checked at run time too). */
export const isColumnType = (type: string): type is ColumnType => Object.hasOwn(BATCHES, type);

/** A new, empty batch for a column of `type`. */
export function columnBatch(type: ColumnType): ColumnBatch {
  return BATCHES[type]();
}

const ELEMENT_TYPES: Record<NumberElement, DuckDBType> = { BIGINT, DOUBLE };
