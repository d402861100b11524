import { QUARANTINE_TABLE } from '../lake/keys.ts';
import type { ColumnProfile, TableInspector, TableProfile } from '../ports/table-inspector.ts';

/**
 * What the run report shows of the silver tables beyond their counts, read back from the Parquet files
 * by the reconcile items while they have them on local scratch (so at any size, each reading its own
 * file): a profile per table, and examples of quarantined values per rule. Kept in reconciliation.json,
 * so the report can be rendered again from the lake alone.
 */
export interface TableFacts {
  /** Per table; `error` instead when the profile could not be read (the run does not fail for it). */
  readonly profiles: Record<string, TableProfile | { readonly error: string }>;
  readonly quarantineExamples: readonly QuarantineExample[];
}

/** One quarantined record: the rule it broke, where, why, and the offending value. */
export interface QuarantineExample {
  readonly ruleId: string;
  readonly recordPath: string;
  readonly fieldPath: string;
  readonly message: string;
  /** The value at `fieldPath` as JSON, cut short; absent when the record holds none there. */
  readonly value?: string;
}

/** Examples kept per rule. */
export const EXAMPLES_PER_RULE = 3;
/** Characters of a quarantined value shown. */
const VALUE_CHARS = 120;
/** A record larger than this is not parsed for its value (the message still says what is wrong). */
const MAX_RECORD_CHARS = 1_000_000;

/** What one silver file adds to its table's facts: read by the reconcile item that has the file at hand. */
export interface FileFacts {
  /** The file's profile, or why it could not be read (the run does not fail for it). */
  readonly profile: TableProfile | { readonly error: string };
  /** A quarantine file's first examples per rule. */
  readonly quarantineExamples?: readonly QuarantineExample[];
}

/** The facts of one local silver file of `table`. */
export async function readFileFacts(
  inspector: TableInspector,
  table: string,
  file: string,
): Promise<FileFacts> {
  let profile: FileFacts['profile'];
  try {
    profile = await inspector.profile(file);
  } catch (error) {
    return { profile: { error: `profile not read: ${(error as Error).message}` } };
  }
  if (table !== QUARANTINE_TABLE) return { profile };
  const rows = await inspector.firstRowsPerGroup(
    file,
    'rule_id',
    ['rule_id', 'record_path', 'field_path', 'message', 'record'],
    EXAMPLES_PER_RULE,
  );
  const quarantineExamples = rows.map((row): QuarantineExample => {
    const value = valueText(row.record ?? null, row.field_path ?? '');
    return {
      ruleId: row.rule_id ?? '',
      recordPath: row.record_path ?? '',
      fieldPath: row.field_path ?? '',
      message: row.message ?? '',
      ...(value !== undefined && { value }),
    };
  });
  return { profile, quarantineExamples };
}

/**
 * A table's facts from its files' (in file order): rows and nulls added up, min and max over the files
 * (numbers as numbers). A distinct count cannot be added up, so a table of several files shows none.
 */
export function combineTableFacts(files: Readonly<Record<string, readonly FileFacts[]>>): TableFacts {
  const profiles: TableFacts['profiles'] = {};
  const quarantineExamples: QuarantineExample[] = [];
  for (const [table, facts] of Object.entries(files)) {
    if (facts.length === 0) continue;
    const failed = facts.find((f) => 'error' in f.profile);
    if (failed) profiles[table] = failed.profile;
    else if (facts.length === 1) profiles[table] = facts[0]!.profile;
    else profiles[table] = combineProfiles(facts.map((f) => f.profile as TableProfile));
    const perRule = new Map<string, number>();
    for (const example of facts.flatMap((f) => f.quarantineExamples ?? [])) {
      const shown = perRule.get(example.ruleId) ?? 0;
      if (shown >= EXAMPLES_PER_RULE) continue;
      perRule.set(example.ruleId, shown + 1);
      quarantineExamples.push(example);
    }
  }
  quarantineExamples.sort((a, b) => (a.ruleId < b.ruleId ? -1 : a.ruleId > b.ruleId ? 1 : 0));
  return { profiles, quarantineExamples };
}

function combineProfiles(profiles: readonly TableProfile[]): TableProfile {
  const columns = profiles[0]!.columns.map((first, i): ColumnProfile => {
    const all = profiles.map((p) => p.columns[i]);
    if (all.some((c) => c?.name !== first.name || c.type !== first.type)) {
      return { name: first.name, type: first.type };
    }
    const numeric = NUMBER_TYPE.test(first.type);
    const order = (a: string, b: string) =>
      numeric ? Number(a) - Number(b) : Buffer.compare(Buffer.from(a), Buffer.from(b));
    const mins = all.flatMap((c) => (c?.min === undefined ? [] : [c.min])).sort(order);
    const maxes = all.flatMap((c) => (c?.max === undefined ? [] : [c.max])).sort(order);
    const nulls = all.every((c) => c?.nulls !== undefined)
      ? all.reduce((n, c) => n + (c?.nulls ?? 0), 0)
      : undefined;
    return {
      name: first.name,
      type: first.type,
      ...(nulls !== undefined && { nulls }),
      ...(mins.length > 0 && { min: mins[0] }),
      ...(maxes.length > 0 && { max: maxes.at(-1) }),
    };
  });
  return { rows: profiles.reduce((n, p) => n + p.rows, 0), columns };
}

/** Column types whose min and max compare as numbers (the profile's text of them is a number). */
const NUMBER_TYPE =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|REAL|DECIMAL\(.*\))$/;

/** The JSON text of the value at `path` (as `jsonPath` writes it: `a.b[0]["odd key"]`) in `record`. */
export function valueText(record: string | null, path: string): string | undefined {
  if (!record || record.length > MAX_RECORD_CHARS) return undefined;
  let node: unknown;
  try {
    node = JSON.parse(record);
  } catch {
    return undefined;
  }
  if (path !== '$' && path !== '') {
    const segments = pathSegments(path);
    if (!segments) return undefined;
    for (const segment of segments) {
      if (node === null || typeof node !== 'object') return undefined;
      if (!Object.hasOwn(node, segment)) return undefined;
      node = (node as Record<string | number, unknown>)[segment];
    }
  }
  const text = JSON.stringify(node);
  if (text === undefined) return undefined;
  return text.length > VALUE_CHARS ? `${text.slice(0, VALUE_CHARS)}…` : text;
}

/** `a.b[0]["odd key"]` → ['a', 'b', 0, 'odd key']; undefined if it is not such a path. */
function pathSegments(path: string): (string | number)[] | undefined {
  const segments: (string | number)[] = [];
  const token = /\.?([^.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  while (token.lastIndex < path.length) {
    const match = token.exec(path);
    if (!match) return undefined;
    if (match[1] !== undefined) segments.push(match[1]);
    else if (match[2] !== undefined) segments.push(Number(match[2]));
    else segments.push(JSON.parse(match[3]!) as string);
  }
  return segments;
}
