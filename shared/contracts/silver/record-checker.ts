/**
 * Turns the zod issues of one record into rule violations (with stable rule ids and JSON paths),
 * drift findings (unknown fields, wrong types) and the values to rescue into `_rescued` columns.
 * Generic: a contract supplies its zod schema, where its object kinds sit, and its rules table.
 */
import { z } from 'zod';
import {
  example,
  isNumericString,
  isOutOfRange,
  jsonPath,
  outOfRangeReason,
  parseDate,
  type RescuedValues,
  valueAt,
} from './normalize.ts';
import type { DriftFinding, RuleViolation, Severity } from './table.ts';

/** One documented rule of a contract. */
export interface RuleSpec {
  /** Stable id, `<object kind>[.<field>].<check>`, e.g. `negotiated_price.negotiated_type.enum`. */
  readonly id: string;
  readonly severity: Severity;
  readonly description: string;
  /** First schema major version the rule applies to (checked when the file's version is known). @default every version */
  readonly since?: number;
}

/** A kind of object inside a record, found by its path with array indexes left out (`''` = the record). */
export interface EntitySpec {
  readonly path: string;
  /** The first part of its rule ids, e.g. `negotiated_price`. */
  readonly name: string;
}

/** What checking one record found. */
export interface RecordCheck {
  readonly violations: RuleViolation[];
  readonly drift: DriftFinding[];
  /** A violation of severity `quarantine` or `fail`: the record yields no rows. */
  readonly quarantined: boolean;
  /**
   * Unknown fields and mistyped optional values, by the JSON path of the object kind (entity) they
   * sit in, each keyed by its own path in the record; the contract merges them into `_rescued`.
   */
  readonly rescued: RescuedValues;
}

const NO_RESCUE: RescuedValues = new Map();
/** The result for a clean record, shared: nothing is allocated on the hot path. */
const CLEAN: RecordCheck = Object.freeze({
  violations: [],
  drift: [],
  quarantined: false,
  rescued: NO_RESCUE,
});

type Kind =
  | 'required'
  | 'type'
  | 'numeric_string'
  | 'enum'
  | 'empty'
  | 'format'
  | 'range'
  | 'date_format'
  | 'date_invalid';

/** Rule ids tried for an issue of each kind, most specific first (`e` object kind, `f` field). */
const CANDIDATES: Record<Kind, readonly string[]> = {
  required: ['e.f.required', 'e.required'],
  type: ['e.f.type', 'e.type'],
  numeric_string: ['e.f.numeric_string', 'e.f.type', 'e.type'],
  enum: ['e.f.enum', 'e.enum', 'e.type'],
  empty: ['e.f.empty', 'e.empty'],
  format: ['e.f.format', 'e.format'],
  range: ['e.f.range', 'e.range'],
  date_format: ['e.f.format', 'e.f.invalid', 'e.type'],
  date_invalid: ['e.f.invalid', 'e.f.type', 'e.type'],
};

function kindOf(issue: z.core.$ZodIssue, value: unknown): Kind {
  if (issue.code === 'custom') return (issue.params?.kind as Kind | undefined) ?? 'format';
  // Absent (or null) is "missing", whichever check noticed it (zod reports a missing enum as a bad value).
  if (value === undefined || value === null) return 'required';
  switch (issue.code) {
    case 'invalid_type':
      return (issue.expected === 'number' || issue.expected === 'int') && isNumericString(value)
        ? 'numeric_string'
        : 'type';
    case 'too_small':
      if (issue.origin === 'array') return 'empty';
      return issue.origin === 'string' ? 'required' : 'range';
    case 'too_big':
      return issue.origin === 'number' ? 'range' : 'type';
    case 'invalid_value':
      return 'enum';
    case 'invalid_format':
      if (issue.format !== 'date') return 'format';
      return parseDate(value) !== null ? 'date_format' : 'date_invalid';
    default:
      return 'type';
  }
}

/** Where an issue sits: its object kind, and the field inside it. */
interface Located {
  entity: string;
  field: string;
  /** Number of path segments up to the object of that kind. */
  entityEnd: number;
}

/** Checks records of one stream against a zod schema and a rules table. */
export class RecordChecker {
  private readonly entities: ReadonlyMap<string, EntitySpec>;
  private readonly rules: ReadonlyMap<string, RuleSpec>;
  /** zod's compiled validator of `validator`, when given. */
  private readonly compiled: z.ZodType | undefined;

  constructor(
    private readonly schema: z.ZodType,
    entities: readonly EntitySpec[],
    rules: readonly RuleSpec[],
    /** The rule for issues no more specific rule covers. */
    private readonly fallbackRule: string,
    /**
     * A schema that accepts exactly the records `schema` accepts, written for zod's compiler: records it
     * accepts skip the parse (most records are valid). Its issues are never used.
     */
    validator?: z.ZodType,
  ) {
    this.compiled = validator && z.compile(validator);
    this.entities = new Map(entities.map((e) => [e.path, e]));
    this.rules = new Map(rules.map((r) => [r.id, r]));
    if (!this.entities.has(''))
      throw new Error('RecordChecker: entities must include the record itself ("")');
    if (!this.rules.has(fallbackRule))
      throw new Error(`RecordChecker: unknown fallback rule ${fallbackRule}`);
  }

  /**
   * Validate one record. `schemaMajor` (when known) drops rules that start at a later version;
   * `rescue` collects unknown fields and mistyped optional values for `_rescued`.
   */
  check(record: unknown, options: { rescue: boolean; schemaMajor?: number }): RecordCheck {
    if (this.compiled && z.validate(this.compiled, record)) return CLEAN;
    const result = this.schema.safeParse(record);
    if (result.success) return CLEAN;
    const violations: RuleViolation[] = [];
    const drift: DriftFinding[] = [];
    const rescued = new Map<string, Record<string, unknown>>();
    let quarantined = false;
    const keep = (path: readonly PropertyKey[], at: Located, value: unknown) => {
      const owner = jsonPath(path, 0, at.entityEnd);
      // No prototype: a field named `__proto__` is rescued like any other.
      const bag = rescued.get(owner) ?? Object.create(null);
      bag[jsonPath(path)] = value;
      rescued.set(owner, bag);
    };

    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const path = [...issue.path, key];
          const value = valueAt(record, path);
          drift.push({ kind: 'unknown_field', path: jsonPath(path), example: example(value) });
          if (options.rescue) keep(path, this.locate(path), value);
        }
        continue;
      }
      const value = valueAt(record, issue.path);
      // A record that is not an object at all is a type error, even when it is null.
      const kind = issue.path.length === 0 ? 'type' : kindOf(issue, value);
      const at = this.locate(issue.path);
      const rule = this.ruleFor(kind, at);
      if (rule.since !== undefined && options.schemaMajor !== undefined && options.schemaMajor < rule.since) {
        continue;
      }
      const path = jsonPath(issue.path) || '$';
      const wrongType =
        value !== undefined &&
        value !== null &&
        (kind === 'type' || kind === 'numeric_string' || (kind === 'enum' && typeof value !== 'string'));
      if (wrongType) drift.push({ kind: 'wrong_type', path, example: example(value) });
      if (options.rescue && wrongType && kind === 'type' && rule.severity === 'warn')
        keep(issue.path, at, value);
      violations.push({
        ruleId: rule.id,
        severity: rule.severity,
        path,
        message: messageOf(issue, kind, at, value),
      });
      if (rule.severity !== 'warn') quarantined = true;
    }
    if (violations.length === 0 && drift.length === 0) return CLEAN;
    return { violations, drift, quarantined, rescued };
  }

  private locate(path: readonly PropertyKey[]): Located {
    let entity = this.entities.get('')!;
    let entityEnd = 0;
    let schemaPath = '';
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (typeof seg === 'number') continue;
      schemaPath = schemaPath === '' ? String(seg) : `${schemaPath}.${String(seg)}`;
      const found = this.entities.get(schemaPath);
      if (!found) continue;
      // An array of objects is an entity from its elements on, an object only for what is inside it:
      // the array, or the object as a whole (missing, wrong type), is a field of its parent.
      const inArray = typeof path[i + 1] === 'number';
      const end = inArray ? i + 2 : i + 1;
      if (inArray ? end <= path.length : end < path.length) {
        entity = found;
        entityEnd = end;
      }
    }
    const field = path
      .slice(entityEnd)
      .filter((s) => typeof s !== 'number')
      .join('.');
    return { entity: entity.name, field, entityEnd };
  }

  private ruleFor(kind: Kind, at: Located): RuleSpec {
    for (const pattern of CANDIDATES[kind]) {
      if (at.field === '' && pattern.includes('.f.')) continue;
      const id = pattern.replace('e.', `${at.entity}.`).replace('.f.', `.${at.field}.`);
      const rule = this.rules.get(id);
      if (rule) return rule;
    }
    return this.rules.get(this.fallbackRule)!;
  }
}

function messageOf(issue: z.core.$ZodIssue, kind: Kind, at: Located, value: unknown): string {
  const what = at.field === '' ? at.entity : `${at.entity}.${at.field}`;
  // Values `parseExact` keeps as the source wrote them, which no JSON number column holds unchanged.
  if (typeof value === 'bigint')
    return `${what}: ${value} is an integer beyond 2^53, which a double would round (not stored)`;
  if (isOutOfRange(value)) return `${what}: ${outOfRangeReason(value)}`;
  if (kind === 'required') return `${what}: required, but missing, null or blank`;
  if (kind === 'numeric_string') return `${what}: a number written as a string (converted)`;
  if (kind === 'date_format') return `${what}: date not in YYYY-MM-DD form (converted)`;
  return `${what}: ${issue.message}`;
}
