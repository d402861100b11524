import { QUARANTINE_TABLE } from '../lake/keys.ts';
import type { TableInspector, TableProfile } from '../ports/table-inspector.ts';

/**
 * What the run report shows of the silver tables beyond their counts, read back from the Parquet files
 * while reconciliation has them on local scratch: a profile per table, and examples of quarantined
 * values per rule. Kept in reconciliation.json, so the report can be rendered again from the lake alone.
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

/** Profiles of the tables in `localFiles`, and quarantine examples from its quarantine table. */
export async function readTableFacts(
  inspector: TableInspector,
  localFiles: Readonly<Record<string, string | undefined>>,
): Promise<TableFacts> {
  const profiles: TableFacts['profiles'] = {};
  for (const [table, file] of Object.entries(localFiles)) {
    if (!file) continue;
    try {
      profiles[table] = await inspector.profile(file);
    } catch (error) {
      profiles[table] = { error: `profile not read: ${(error as Error).message}` };
    }
  }
  const quarantine = localFiles[QUARANTINE_TABLE];
  const rows = quarantine
    ? await inspector.firstRowsPerGroup(
        quarantine,
        'rule_id',
        ['rule_id', 'record_path', 'field_path', 'message', 'record'],
        EXAMPLES_PER_RULE,
      )
    : [];
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
  return { profiles, quarantineExamples };
}

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
