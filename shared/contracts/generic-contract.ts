/**
 * The silver contract of a dataset described by configuration alone (`silver` in its DatasetConfig):
 * one table, each column picked from the record by path and converted to its declared type. CSV values
 * are all text, so conversion is what types them; JSON values of another type are converted when that
 * loses nothing, with a warning. What cannot be converted, or is missing where required, quarantines
 * the record; fields no column picks are drift, kept in `_rescued` when the config says so.
 */
import { ConfigError } from '../errors.ts';
import { CSV_EXTRA_CELLS, type DatasetConfig } from './dataset-config.ts';
import { doubleKeepsDigits, ExactDecimal, outOfDoubleRange, parseExact } from './exact-json.ts';
import type { SilverContract } from './silver/contract.ts';
import {
  example,
  isIsoDate,
  isNumericString,
  isOutOfRange,
  jsonPath,
  outOfRangeReason,
  parseDate,
  valueText,
} from './silver/normalize.ts';
import type { RuleSpec } from './silver/record-checker.ts';
import type { ColumnSpec, ColumnType, DriftFinding, Row, RuleViolation, TableSpec } from './silver/table.ts';

/** The `silver` section of a dataset config. */
export type SilverConfig = NonNullable<DatasetConfig['silver']>;
export type SilverColumnConfig = SilverConfig['columns'][number];
export type SilverColumnType = SilverColumnConfig['type'];

/** How each config column type is stored. */
export const COLUMN_TYPES: Readonly<Record<SilverColumnType, ColumnType>> = {
  string: 'VARCHAR',
  integer: 'BIGINT',
  number: 'DOUBLE',
  boolean: 'BOOLEAN',
  date: 'DATE',
  timestamp: 'TIMESTAMP',
  'string[]': 'VARCHAR[]',
  'integer[]': 'BIGINT[]',
  'number[]': 'DOUBLE[]',
};

/** The column of unknown fields, as JSON keyed by their path in the record (onDrift: rescue). */
export const RESCUED_COLUMN = '_rescued';

/** A generic contract, with its rules table (id, severity, description) for docs and tests. */
/**
 * The version of the generic contract's code (the column mapping, coercions and rules it derives from a
 * config): bump it by hand when that code changes the rows a record yields.
 */
export const GENERIC_CONTRACT_VERSION = 'generic/5';

export type GenericSilverContract = SilverContract & { readonly rules: readonly RuleSpec[] };

/** The operation column of a cdc or scd2 load (default `op`), or null when there is none. */
export function operationColumnOf(silver: SilverConfig): string | null {
  if (silver.load !== 'cdc' && silver.load !== 'scd2') return null;
  return silver.operationColumn === undefined ? 'op' : silver.operationColumn;
}

/** Spellings of an operation, lower-cased, and what the load patterns call them. */
const OPERATIONS: ReadonlyMap<string, 'insert' | 'update' | 'delete'> = new Map([
  ['insert', 'insert'],
  ['i', 'insert'],
  ['update', 'update'],
  ['u', 'update'],
  ['delete', 'delete'],
  ['d', 'delete'],
]);

/** Columns that must have a value whatever the config says: they identify or order a row. */
function alwaysRequired(silver: SilverConfig): Set<string> {
  const names = new Set(silver.primaryKey);
  if (silver.orderingColumn !== undefined && silver.load !== 'append') names.add(silver.orderingColumn);
  const operation = operationColumnOf(silver);
  if (operation !== null) names.add(operation);
  return names;
}

/** The table a generic contract fills, from the config alone (also what the merge stage expects). */
export function genericTable(config: DatasetConfig): TableSpec {
  const silver = requireSilver(config);
  const required = alwaysRequired(silver);
  const keyed = silver.load === 'cdc' || silver.load === 'scd2';
  const columns: ColumnSpec[] = silver.columns.map((c) => ({
    name: c.name,
    type: COLUMN_TYPES[c.type],
    // Delete events leave a column empty even when the config requires it (of inserts and updates).
    nullable: !(required.has(c.name) || (c.required && !keyed)),
    description: c.description ?? `from ${c.source ?? c.name} (${c.type})`,
  }));
  if (silver.onDrift === 'rescue') {
    columns.push({
      name: RESCUED_COLUMN,
      type: 'VARCHAR',
      description: 'fields of the record no column picks, as JSON keyed by their path in the record',
    });
  }
  return {
    name: silver.table,
    description:
      silver.description ??
      `One row per ${keyed ? 'change event' : 'record'} of ${config.name} (${silver.load} load).`,
    columns,
    // A cdc/scd2 partition is an event log: one key has many events, and which of two events with the same
    // key and ordering value wins is the load pattern's call (made the same in any arrival order). Deduping
    // here would keep the first in the file instead, so event tables have no key.
    key: keyed ? [] : silver.primaryKey,
  };
}

/**
 * The contract of a dataset whose `silver` section defines its table. `normalize` is pure: the same
 * record always gives the same row, violations and drift. There are no file-level rows.
 */
export function genericContract(config: DatasetConfig): GenericSilverContract {
  const silver = requireSilver(config);
  const table = genericTable(config);
  const required = alwaysRequired(silver);
  const textual = config.format === 'csv';
  const operation = operationColumnOf(silver);
  const plans = silver.columns.map((c) =>
    planColumn(c, silver.table, textual, required.has(c.name) || c.required),
  );
  const known = pathTree(plans.map((p) => p.segments));
  const sourcesShown = example(
    plans.map((p) => p.column.source ?? p.column.name),
    80,
  );
  const rescue = silver.onDrift === 'rescue';
  const tableRuleId = `${silver.table}.type`;
  const extraCellsRule: RuleSpec = {
    id: `${silver.table}.extra_cells`,
    severity: 'warn',
    description:
      'The CSV row has more cells than the header row (a delimiter in an unquoted field shifts the cells after it); the extras are kept in _extra.',
  };
  // A CSV row lacking a column is counted per column (`absent`), and a header naming none fails the run.
  const noColumnsRule: RuleSpec = {
    id: `${silver.table}.no_columns`,
    severity: 'warn',
    description:
      "The record holds none of the columns (every one is NULL): a record of another kind or dataset, or fields named otherwise than the columns' sources.",
  };
  const rules: RuleSpec[] = [
    { id: tableRuleId, severity: 'quarantine', description: 'The record is not a JSON object.' },
  ];
  const headerRepeatedRule: RuleSpec = {
    id: `${silver.table}.header_repeated`,
    severity: 'quarantine',
    description:
      'The CSV row repeats the header row (files concatenated with their header rows, e.g. `cat a.csv b.csv`): it holds names, not values.',
  };
  if (textual) rules.push(extraCellsRule, headerRepeatedRule);
  else rules.push(noColumnsRule);
  for (const plan of plans) {
    if (plan.required) rules.push(plan.rules.required);
    rules.push(plan.rules.type);
    // CSV cells are text: only a date in another spelling or a timestamp cut to the microsecond is coerced.
    if (!textual || plan.column.type === 'date' || plan.column.type === 'timestamp')
      rules.push(plan.rules.coerced);
    if (plan.column.name === operation) rules.push(plan.rules.enum);
    rules.push(plan.rules.misnamed);
    if (textual) rules.push(plan.rules.absent);
  }

  return {
    dataset: config.name,
    contractVersion: GENERIC_CONTRACT_VERSION,
    // The config's silver section is this contract: any change to it is a change of the contract.
    definition: silver,
    tables: [table],
    onDrift: silver.onDrift,
    // A decimal a double cannot hold keeps its digits in a text column (a key of 1.00000000000000000001
    // is not 1), and is no integer for an integer column.
    exactDecimals: true,
    rules,
    fileRows: () => ({}),
    normalize(_recordName, _recordIndex, record) {
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        return {
          rows: {},
          violations: [
            {
              ruleId: tableRuleId,
              severity: 'quarantine',
              path: '$',
              message: `${silver.table}: the record is ${example(record, 40)}, not a JSON object`,
            },
          ],
          drift: [],
        };
      }
      if (textual && repeatsHeader(record as Record<string, unknown>)) {
        return {
          rows: {},
          violations: [
            {
              ruleId: headerRepeatedRule.id,
              severity: 'quarantine',
              path: '$',
              message:
                `${silver.table}: the row repeats the header row (${example(Object.keys(record), 80)}): two ` +
                'files concatenated with their header rows? Remove the repeated header rows',
            },
          ],
          drift: [],
        };
      }
      const row: Row = {};
      const violations: RuleViolation[] = [];
      const extra = textual ? (record as Record<string, unknown>)[CSV_EXTRA_CELLS] : undefined;
      if (Array.isArray(extra)) {
        violations.push({
          ruleId: extraCellsRule.id,
          severity: 'warn',
          path: CSV_EXTRA_CELLS,
          message:
            `${silver.table}: the row has ${extra.length} more cell(s) than the header row (${example(extra, 60)}): ` +
            'the cells may be shifted, e.g. by a delimiter in an unquoted field; quote that field',
        });
      }
      const missing: ColumnPlan[] = [];
      const note: Note = { warning: undefined };
      let quarantined = false;
      /** The record's top-level names by their lower case, made when a column is first absent. */
      let namesByLowerCase: Map<string, string> | undefined;
      let present = 0;
      for (const plan of plans) {
        note.warning = undefined;
        const raw = valueAt(record, plan.segments);
        if (raw !== undefined) present++;
        // Absent, while the record has a field of that name in another case (`ID` for `id`): every such
        // record would read NULL there with a clean score; the warning says why, and lowers the score.
        if (raw === undefined) {
          let spelled: string | undefined;
          if (plan.segments.length === 1) {
            namesByLowerCase ??= new Map(Object.keys(record).map((key) => [key.toLowerCase(), key]));
            spelled = namesByLowerCase.get(plan.segments[0]!.toLowerCase());
          } else spelled = otherCaseOf(record, plan.segments);
          // The field is there, spelled otherwise: its own warning says so (not `no_columns` as well).
          if (spelled !== undefined) {
            present++;
            violations.push(plan.violation('misnamed', spelled));
          }
          // A CSV row has a cell for every column of its header, blank or not: a row without this one is
          // shorter than the header (a broken line, a field with an unquoted line break in it), or the
          // header lacks the column. Either way NULL is not what the file says; the warning says so.
          else if (textual) violations.push(plan.violation('absent', undefined));
        }
        let value = plan.coerce(raw, note);
        if (value === INVALID) {
          violations.push(plan.violation('type', valueAt(record, plan.segments)));
          quarantined = true;
          continue;
        }
        if (note.warning !== undefined) violations.push(plan.violation('coerced', note.warning));
        if (value !== null && plan.column.name === operation) {
          value = OPERATIONS.get((value as string).toLowerCase()) ?? INVALID;
          if (value === INVALID) {
            violations.push(plan.violation('enum', valueAt(record, plan.segments)));
            quarantined = true;
            continue;
          }
        }
        if (value === null && plan.required) missing.push(plan);
        row[plan.column.name] = value;
      }
      // Without it such records load as rows of NULLs with a clean score: a file of another dataset, or
      // one whose fields are all named otherwise (`userId` for `user_id`), would pass unnoticed.
      if (present === 0 && !textual) {
        violations.push({
          ruleId: noColumnsRule.id,
          severity: 'warn',
          path: '$',
          message:
            `${silver.table}: the record holds none of the columns' sources (${sourcesShown}); its fields are ` +
            `${example(Object.keys(record), 80)}: set each column's "source" to the field that holds it, or ` +
            'check that the file belongs to this dataset',
        });
      }
      // A delete event needs only what identifies and orders it: its other columns may be empty.
      const deleting = operation !== null && row[operation] === 'delete';
      for (const plan of missing) {
        if (deleting && !required.has(plan.column.name)) continue;
        violations.push(plan.violation('required', undefined));
        quarantined = true;
      }
      const drift: DriftFinding[] = [];
      // No prototype: a field named `__proto__` is rescued like any other.
      const rescued: Record<string, unknown> = Object.create(null);
      findUnknown(record as Record<string, unknown>, known, [], drift, rescued);
      if (quarantined) return { rows: {}, violations, drift };
      if (rescue) row[RESCUED_COLUMN] = drift.length > 0 ? (valueText(rescued) ?? null) : null;
      return { rows: { [silver.table]: [row] }, violations, drift };
    },
  };
}

/**
 * Whether a CSV row (keyed by the header row) holds the header row's names as its cells, every one, in a
 * header of two or more columns: a second file's header row, where `cat` joined two exports. One column
 * is left alone: a value that happens to be its column's name is plausible there. Usually decided by
 * the first cell.
 */
function repeatsHeader(row: Record<string, unknown>): boolean {
  let cells = 0;
  for (const name in row) {
    if (name === CSV_EXTRA_CELLS || row[name] !== name) return false;
    cells++;
  }
  return cells >= 2;
}

function requireSilver(config: DatasetConfig): SilverConfig {
  if (!config.silver) {
    throw new ConfigError(`dataset ${config.name} has no "silver" section: nothing defines its silver table`);
  }
  return config.silver;
}

// ---------------------------------------------------------------------------------------------
// Columns

/** Returned by a converter for a value it cannot convert. */
const INVALID: unique symbol = Symbol('invalid');

/** Set by a converter when it converted a value of another JSON type or spelling. */
interface Note {
  warning: string | undefined;
}

/** Present value (not null, not undefined) → converted value, null (blank text) or INVALID. */
type Converter = (value: unknown, note: Note, textual: boolean) => unknown;

type RuleKind = 'required' | 'type' | 'coerced' | 'enum' | 'misnamed' | 'absent';

interface ColumnPlan {
  readonly column: SilverColumnConfig;
  readonly segments: readonly string[];
  readonly required: boolean;
  readonly rules: Readonly<Record<RuleKind, RuleSpec>>;
  /** The raw value (possibly absent) → converted value, null, or INVALID. */
  readonly coerce: (value: unknown, note: Note) => unknown;
  /** `detail`: the bad value (type, enum) or the warning (coerced). */
  violation(kind: RuleKind, detail: unknown): RuleViolation;
}

function planColumn(
  column: SilverColumnConfig,
  table: string,
  textual: boolean,
  required: boolean,
): ColumnPlan {
  const source = column.source ?? column.name;
  // CSV rows are flat objects keyed by header: a header with dots in it is still one key.
  const segments = textual ? [source] : source.split('.');
  const path = jsonPath(segments);
  const what = `${table}.${column.name}`;
  const rule = (kind: RuleKind, severity: RuleSpec['severity'], description: string): RuleSpec => ({
    id: `${what}.${kind}`,
    severity,
    description,
  });
  const rules: Record<RuleKind, RuleSpec> = {
    required: rule('required', 'quarantine', `${source} is missing, null or blank.`),
    type: rule('type', 'quarantine', `${source} cannot be converted to ${column.type}.`),
    coerced: rule(
      'coerced',
      'warn',
      `${source} was converted to ${column.type} from another JSON type or spelling (e.g. "42", 12/31/2024)` +
        (column.type === 'timestamp' ? ', or cut to the microsecond.' : '.'),
    ),
    enum: rule('enum', 'quarantine', `${source} is not insert, update or delete (or I, U, D).`),
    misnamed: rule(
      'misnamed',
      'warn',
      `${source} is absent, but the record has a field of that name in another case: the column reads null.`,
    ),
    absent: rule(
      'absent',
      'warn',
      `The CSV row has no cell for ${source}: the row is shorter than the header, or the header lacks the column; the column reads null.`,
    ),
  };
  const convert = CONVERTERS[column.type];
  return {
    column,
    segments,
    required,
    rules,
    coerce: (value, note) => (value === null || value === undefined ? null : convert(value, note, textual)),
    violation(kind, detail) {
      const spec = rules[kind];
      let message: string;
      if (kind === 'required') message = `${what}: required, but missing, null or blank`;
      else if (kind === 'coerced') message = `${what}: ${String(detail)} (converted)`;
      else if (kind === 'absent')
        message =
          `${what}: the row has no cell for ${JSON.stringify(source)} (it is shorter than the header row, or ` +
          'the header has no such column): the column reads null; check the row (a line break in an unquoted ' +
          'field splits a row in two) or the column\'s "source"';
      else if (kind === 'enum') message = `${what}: ${example(detail, 60)} is not insert, update or delete`;
      else if (kind === 'misnamed')
        message =
          `${what}: no field ${JSON.stringify(source)}, but the record has ${JSON.stringify(detail)}: the column ` +
          `reads null (field names are case-sensitive: set "source": ${JSON.stringify(detail)} on the column if that is it)`;
      else if (outOfRange(detail))
        message = `${what}: ${outOfRangeReason(firstOutOfRange(detail))} cannot be stored, not even as ${TYPE_NAMES[column.type]}`;
      else if (column.type === 'integer' && beyondInt64(detail))
        message = `${what}: ${example(detail, 60)} is beyond the range of a 64-bit integer (BIGINT), which would round it`;
      else if (column.type === 'integer' && typeof detail === 'number' && Number.isInteger(detail))
        message = `${what}: ${example(detail, 60)} is beyond 2^53 written as a decimal or exponent, which a double rounds (write its digits)`;
      else message = `${what}: ${example(detail, 60)} is not ${TYPE_NAMES[column.type]}`;
      return { ruleId: spec.id, severity: spec.severity, path, message };
    },
  };
}

const TYPE_NAMES: Readonly<Record<SilverColumnType, string>> = {
  string: 'text',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  date: 'a date',
  timestamp: 'an ISO 8601 timestamp',
  'string[]': 'a list of text',
  'integer[]': 'a list of integers',
  'number[]': 'a list of numbers',
};

/** The value at `segments`, or undefined; a flat lookup for the common one-segment case. */
function valueAt(record: object, segments: readonly string[]): unknown {
  let node: unknown = record;
  for (const segment of segments) {
    if (node === null || typeof node !== 'object' || Array.isArray(node) || node instanceof ExactDecimal)
      return undefined;
    node = Object.hasOwn(node, segment) ? (node as Record<string, unknown>)[segment] : undefined;
  }
  return node;
}

/**
 * The name, in another case, of the absent nested field at `segments` (its parent present): `ID` in
 * `{"plan": {"ID": 1}}` where the config says `plan.id`. Undefined when there is none.
 */
function otherCaseOf(record: object, segments: readonly string[]): string | undefined {
  const parent = valueAt(record, segments.slice(0, -1));
  if (
    parent === null ||
    typeof parent !== 'object' ||
    Array.isArray(parent) ||
    parent instanceof ExactDecimal
  )
    return undefined;
  const wanted = segments.at(-1)!.toLowerCase();
  for (const key of Object.keys(parent)) if (key.toLowerCase() === wanted) return key;
  return undefined;
}

/** A value (or list element, or numeric text) beyond the double range: the reason it is refused. */
function outOfRange(value: unknown): boolean {
  return firstOutOfRange(value) !== undefined;
}

/** The value, or first list element, that is (or spells) a number beyond the double range. */
function firstOutOfRange(value: unknown): unknown {
  if (Array.isArray(value)) return value.find(outOfRange);
  if (typeof value === 'string') {
    const trimmed = value.trim();
    return NUMERIC_TEXT.test(trimmed) && outOfDoubleRange(trimmed) ? value : undefined;
  }
  return isOutOfRange(value) ? value : undefined;
}

/** An integer (as a bigint, or as digits) that a BIGINT cannot hold. */
function beyondInt64(value: unknown): boolean {
  if (typeof value === 'bigint') return value < MIN_INT64 || value > MAX_INT64;
  if (typeof value !== 'string' || !INTEGER_TEXT.test(value.trim())) return false;
  const big = BigInt(value.trim());
  return big < MIN_INT64 || big > MAX_INT64;
}

const NUMERIC_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER_TEXT = /^[+-]?\d+$/;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;
const TRUE_TEXT = new Set(['true', 't', 'yes', 'y', '1']);
const FALSE_TEXT = new Set(['false', 'f', 'no', 'n', '0']);

/** `YYYY-MM-DD`, then optionally `T` or space, `HH:MM[:SS[.fraction]]` and `Z` or `±HH[:MM]` (as the writer takes). */
const TIMESTAMP_TEXT =
  /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:Z|[+-](\d{2})(?::?(\d{2}))?)?)?$/;
/** Digits of a second's fraction a TIMESTAMP (microseconds) holds; the writer cuts the rest. */
const TIMESTAMP_FRACTION_DIGITS = 6;

const convertText: Converter = (value, note, textual) => {
  if (typeof value === 'string') {
    const trimmed = value.trim();
    return trimmed === '' ? null : trimmed;
  }
  // A bigint is an integer beyond 2^53 from the source text (`parseExact`): its digits, exactly; so is
  // an ExactDecimal, a decimal a double would round.
  if (value instanceof ExactDecimal) {
    if (!textual) note.warning = `number ${value.text} written as text`;
    return value.text;
  }
  if (
    (typeof value === 'number' && Number.isFinite(value)) ||
    typeof value === 'boolean' ||
    typeof value === 'bigint'
  ) {
    if (!textual)
      note.warning = `${typeof value === 'bigint' ? 'number' : typeof value} ${String(value)} written as text`;
    return String(value);
  }
  return INVALID;
};

const convertInteger: Converter = (value, note, textual) => {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : INVALID;
  // Beyond 2^53 (`parseExact`): exact in a BIGINT while it fits in 64 bits, else refused, never rounded.
  if (typeof value === 'bigint') return value >= MIN_INT64 && value <= MAX_INT64 ? value : INVALID;
  if (typeof value !== 'string') return INVALID;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  let result: number | bigint | typeof INVALID = INVALID;
  if (INTEGER_TEXT.test(trimmed)) {
    const n = Number(trimmed);
    if (Number.isSafeInteger(n)) result = n;
    else {
      // Beyond ±2^53 a double loses digits; BIGINT holds them exactly.
      const big = BigInt(trimmed);
      if (big >= MIN_INT64 && big <= MAX_INT64) result = big;
    }
  } else if (isNumericString(trimmed)) {
    const n = Number(trimmed);
    // "1e3", "2.0"; not "1.0000000000000001", which only its nearest double makes an integer.
    if (Number.isSafeInteger(n) && doubleKeepsDigits(trimmed, n)) result = n;
  }
  if (result !== INVALID && !textual)
    note.warning = `the number ${JSON.stringify(value)} written as a string`;
  return result;
};

const convertNumber: Converter = (value, note, textual) => {
  if (typeof value === 'number') return Number.isFinite(value) ? value : INVALID;
  // A decimal with more digits than a double keeps: its nearest double, as the column's type declares;
  // not a nonzero number below the double range (1e-400), whose nearest double is 0.
  if (value instanceof ExactDecimal) return isOutOfRange(value) ? INVALID : value.valueOf();
  // An integer beyond 2^53 in a DOUBLE column: its nearest double, as the column's type declares.
  if (typeof value === 'bigint') return Number(value);
  if (typeof value !== 'string') return INVALID;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (!isNumericString(trimmed)) return INVALID; // also "1e400": beyond the double range
  if (!textual) note.warning = `the number ${JSON.stringify(value)} written as a string`;
  return Number(trimmed);
};

const convertBoolean: Converter = (value, note, textual) => {
  if (typeof value === 'boolean') return value;
  let spelled: string;
  if (typeof value === 'string') spelled = value.trim().toLowerCase();
  else if (value === 0 || value === 1) spelled = String(value);
  else return INVALID;
  if (spelled === '') return null;
  const result = TRUE_TEXT.has(spelled) ? true : FALSE_TEXT.has(spelled) ? false : INVALID;
  if (result !== INVALID && !textual)
    note.warning = `the boolean ${JSON.stringify(value)} written as ${typeof value}`;
  return result;
};

const convertDate: Converter = (value, note) => {
  if (typeof value !== 'string') return INVALID;
  if (isIsoDate(value)) return value;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  const date = parseDate(trimmed);
  if (date === null) return INVALID;
  // Also in CSV: 03/04/2024 is a guess at the order of month and day, worth a warning.
  if (date !== trimmed) note.warning = `date ${JSON.stringify(value)} not in YYYY-MM-DD form`;
  return date;
};

const convertTimestamp: Converter = (value, note) => {
  if (typeof value !== 'string') return INVALID;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  const match = TIMESTAMP_TEXT.exec(trimmed);
  if (!match || !isIsoDate(match[1])) return INVALID;
  const [hours, minutes, seconds, offsetHours, offsetMinutes] = [2, 3, 4, 6, 7].map((group) =>
    Number(match[group] ?? 0),
  );
  if (hours! > 23 || minutes! > 59 || seconds! > 59) return INVALID;
  // An offset is at most 23:59 (RFC 3339): the writer would shift "+99:99" by four days, not refuse it.
  if (offsetHours! > 23 || offsetMinutes! > 59) return INVALID;
  if (/[1-9]/.test(match[5]?.slice(TIMESTAMP_FRACTION_DIGITS) ?? ''))
    note.warning = `timestamp ${JSON.stringify(value)} cut to the microsecond (a TIMESTAMP holds no finer digits)`;
  return trimmed;
};

/** A list: a JSON array, or (CSV, or text in JSON) a JSON array written as text; each element converted. */
const listOf =
  (item: Converter): Converter =>
  (value, note, textual) => {
    let items = value;
    if (typeof value === 'string') {
      const trimmed = value.trim();
      if (trimmed === '') return null;
      if (!trimmed.startsWith('[')) return INVALID;
      try {
        items = parseExact(trimmed);
      } catch {
        return INVALID;
      }
      if (!textual) note.warning = 'a list written as a JSON string';
    }
    if (!Array.isArray(items)) return INVALID;
    const out = new Array<unknown>(items.length);
    for (let i = 0; i < items.length; i++) {
      const element: unknown = items[i];
      const converted = element === null || element === undefined ? null : item(element, note, textual);
      if (converted === INVALID) return INVALID;
      out[i] = converted;
    }
    return out;
  };

const CONVERTERS: Readonly<Record<SilverColumnType, Converter>> = {
  string: convertText,
  integer: convertInteger,
  number: convertNumber,
  boolean: convertBoolean,
  date: convertDate,
  timestamp: convertTimestamp,
  'string[]': listOf(convertText),
  'integer[]': listOf(convertInteger),
  'number[]': listOf(convertNumber),
};

// ---------------------------------------------------------------------------------------------
// Drift

/** The declared source paths as a tree: a leaf takes its whole value, an inner node only its leaves. */
interface PathNode {
  leaf: boolean;
  readonly children: Map<string, PathNode>;
}

function pathTree(paths: readonly (readonly string[])[]): PathNode {
  const root: PathNode = { leaf: false, children: new Map() };
  for (const segments of paths) {
    let node = root;
    for (const segment of segments) {
      let child = node.children.get(segment);
      if (!child) {
        child = { leaf: false, children: new Map() };
        node.children.set(segment, child);
      }
      node = child;
    }
    node.leaf = true;
  }
  return root;
}

/** Fields of `object` outside the declared paths: drift findings, and their values for `_rescued`. */
function findUnknown(
  object: Record<string, unknown>,
  node: PathNode,
  at: readonly string[],
  drift: DriftFinding[],
  rescued: Record<string, unknown>,
): void {
  for (const key of Object.keys(object)) {
    const value = object[key];
    const child = node.children.get(key);
    if (child?.leaf) continue;
    const segments = [...at, key];
    // An ExactDecimal is a number (its digits kept), not an object to look into.
    if (
      child &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      !(value instanceof ExactDecimal)
    ) {
      findUnknown(value as Record<string, unknown>, child, segments, drift, rescued);
      continue;
    }
    // An absent or null parent just leaves its columns empty (the required rules tell if that matters).
    if (child && (value === null || value === undefined)) continue;
    const path = jsonPath(segments);
    drift.push({ kind: child ? 'wrong_type' : 'unknown_field', path, example: example(value) });
    rescued[path] = value;
  }
}
