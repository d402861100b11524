/**
 * The shape of sampled values (keys and types), merged value by value so that its size depends on how
 * varied the records are, never on how many there are. `sluice inspect` shows it for each record array
 * and derives a config's silver columns from it.
 */

import { ExactDecimal } from '../contracts/exact-json.ts';

/** A value's type as a config would declare it; `integer` and `number` are told apart as JSON writes them. */
export type ValueKind = 'string' | 'integer' | 'number' | 'boolean' | 'null' | 'object' | 'array';

/** Text that a `date` or `timestamp` column would take as it is. */
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** Fields kept per object shape; more (a map keyed by ids, say) are counted, not listed. */
const MAX_FIELDS = 200;
/** Levels kept below a record; deeper values are counted as their kind only. */
const MAX_DEPTH = 12;

export interface ValueShape {
  /** Values merged into this shape. */
  seen: number;
  /** How many of them were of each kind. */
  kinds: Partial<Record<ValueKind, number>>;
  /** Strings that were dates (`YYYY-MM-DD`) and timestamps (ISO 8601). */
  dates: number;
  timestamps: number;
  /** Numbers a number or integer column refuses (`1e400`, `1e-400`, an integer beyond ±2^63). */
  unrepresentable?: number;
  /** Object fields, in the order first seen. */
  fields?: Map<string, ValueShape>;
  /** Fields not kept beyond MAX_FIELDS. */
  fieldsDropped?: number;
  /** The shape of array elements. */
  items?: ValueShape;
  /** The most elements one array had. */
  maxItems?: number;
}

export function emptyShape(): ValueShape {
  return { seen: 0, kinds: {}, dates: 0, timestamps: 0 };
}

/**
 * The kind of a parsed value (from `parseExact`: an integer beyond 2^53 is a bigint, a nonzero number a
 * double reads as 0, `1e-400`, an `ExactDecimal`: a number, not an object with no fields).
 */
export function kindOf(value: unknown): ValueKind {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof ExactDecimal) return 'number';
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'bigint':
      return 'integer';
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'number';
    case 'boolean':
      return 'boolean';
    default:
      return 'object';
  }
}

const INT64_MAX = 2n ** 63n - 1n;

/** A number no number or integer column holds as it is: past a double's range, or an integer past int64. */
function unrepresentable(value: unknown): boolean {
  if (value instanceof ExactDecimal) return Number(value) === 0 || !Number.isFinite(Number(value));
  if (typeof value === 'number') return !Number.isFinite(value);
  return typeof value === 'bigint' && (value > INT64_MAX || value < -INT64_MAX - 1n);
}

/**
 * Merge `value` into `shape`. Iterative (an explicit stack): a sampled record may nest as deep as the
 * scanner allows, and recursion would overflow long before (see README, "Deep nesting").
 */
export function mergeValue(shape: ValueShape, value: unknown): void {
  const stack: [ValueShape, unknown, number][] = [[shape, value, 0]];
  while (stack.length > 0) {
    const [into, v, depth] = stack.pop()!;
    const kind = kindOf(v);
    into.seen++;
    into.kinds[kind] = (into.kinds[kind] ?? 0) + 1;
    if (kind === 'string') {
      if (DATE.test(v as string)) into.dates++;
      else if (TIMESTAMP.test(v as string)) into.timestamps++;
    }
    if (unrepresentable(v)) into.unrepresentable = (into.unrepresentable ?? 0) + 1;
    if (depth >= MAX_DEPTH) continue;
    if (kind === 'array') {
      const items = v as unknown[];
      into.maxItems = Math.max(into.maxItems ?? 0, items.length);
      into.items ??= emptyShape();
      for (const item of items) stack.push([into.items, item, depth + 1]);
    } else if (kind === 'object') {
      into.fields ??= new Map();
      for (const [key, field] of Object.entries(v as Record<string, unknown>)) {
        let fieldShape = into.fields.get(key);
        if (!fieldShape) {
          if (into.fields.size >= MAX_FIELDS) {
            into.fieldsDropped = (into.fieldsDropped ?? 0) + 1;
            continue;
          }
          fieldShape = emptyShape();
          into.fields.set(key, fieldShape);
        }
        stack.push([fieldShape, field, depth + 1]);
      }
    }
  }
}

/** The kinds of a shape, most frequent first. */
export function kindsOf(shape: ValueShape): ValueKind[] {
  return (Object.entries(shape.kinds) as [ValueKind, number][])
    .sort((a, b) => b[1] - a[1])
    .map(([kind]) => kind);
}

/** How a shape reads as JSON (for `--json`): kinds, optional fields, element shapes; bounded by MAX_DEPTH. */
export interface ShapeJson {
  readonly type: string;
  readonly fields?: Record<string, ShapeJson & { readonly optional?: true }>;
  readonly moreFields?: number;
  readonly items?: ShapeJson;
  readonly maxItems?: number;
}

/** The type name of a shape: its kinds joined by `|`, a string that is always a date says `string(date)`. */
function typeName(shape: ValueShape): string {
  const kinds = kindsOf(shape);
  // Integers among decimals are numbers that happen to be whole (a rate of 100 beside 99.5).
  return (kinds.includes('number') ? kinds.filter((k) => k !== 'integer') : kinds)
    .map((kind) => {
      const strings = shape.kinds.string ?? 0;
      if (kind === 'string' && strings > 0 && shape.dates === strings) return 'string(date)';
      if (kind === 'string' && strings > 0 && shape.timestamps === strings) return 'string(timestamp)';
      return kind;
    })
    .join('|');
}

export function shapeToJson(shape: ValueShape): ShapeJson {
  const fields =
    shape.fields && shape.fields.size > 0
      ? Object.fromEntries(
          [...shape.fields].map(([key, field]) => [
            key,
            {
              ...shapeToJson(field),
              ...(field.seen < (shape.kinds.object ?? 0) && { optional: true as const }),
            },
          ]),
        )
      : undefined;
  return {
    type: typeName(shape),
    ...(fields && { fields }),
    ...(shape.fieldsDropped && { moreFields: shape.fieldsDropped }),
    ...(shape.items && shape.items.seen > 0 && { items: shapeToJson(shape.items) }),
    ...(shape.maxItems !== undefined && { maxItems: shape.maxItems }),
  };
}
