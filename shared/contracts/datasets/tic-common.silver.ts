/**
 * What the three TiC silver contracts share: CMS enums, zod building blocks, the `files` table, schema
 * version detection, and the contract skeleton (record stream → check → rows).
 */
import { z } from 'zod';
import type { SilverContext, SilverContract, TableReference } from '../silver/contract.ts';
import { parseDate, type RescuedValues, scalarText } from '../silver/normalize.ts';
import { type EntitySpec, RecordChecker, type RuleSpec } from '../silver/record-checker.ts';
import type { ColumnSpec, NormalizedRecord, Row, RuleViolation, TableSpec } from '../silver/table.ts';

// ---------------------------------------------------------------------------------------------
// CMS enums (schemas in-network-rates.json, allowed-amounts.json, table-of-contents.json, v2.x)

/** `billing_code_types` of in-network-rates.json; allowed-amounts.json has the same minus `CSTM-ALL`. */
export const BILLING_CODE_TYPES = [
  'CPT',
  'HCPCS',
  'ICD',
  'MS-DRG',
  'R-DRG',
  'S-DRG',
  'APS-DRG',
  'AP-DRG',
  'APR-DRG',
  'APC',
  'NDC',
  'HIPPS',
  'LOCAL',
  'EAPG',
  'CDT',
  'RC',
  'CSTM-ALL',
] as const;
export const SETTINGS = ['inpatient', 'outpatient', 'both'] as const;
export const TIN_TYPES = ['ein', 'npi'] as const;
export const PLAN_ID_TYPES = ['ein', 'hios'] as const;
export const PLAN_MARKET_TYPES = ['group', 'individual'] as const;

// ---------------------------------------------------------------------------------------------
// zod building blocks

/** A CMS string with `minLength: 1`; blank after trimming counts as missing (empty → null). */
export const nonBlank = z.string().trim().min(1);

/** Options for a cross-field `.refine`, reported as an issue of `kind` at `path`. */
export type CrossCheck = (
  kind: 'required' | 'format',
  path: PropertyKey[],
) => { path: PropertyKey[]; params: { kind: string }; when?: (payload: { value: unknown }) => boolean };

/**
 * For the schema that reports issues: zod skips refinements of objects that already have issues; these
 * run anyway (on objects), so no rule hides behind another.
 */
export const crossCheck: CrossCheck = (kind, path) => ({
  path,
  params: { kind },
  when: (payload) => typeof payload.value === 'object' && payload.value !== null,
});

/**
 * For the schema that only says whether a record is valid: skipping a refinement after another issue
 * changes no answer (the record is invalid already), and without `when` zod's compiler (`z.compile`)
 * takes the whole schema: ~6x faster than a parse on TiC records, and it builds no parsed copy.
 */
const validityCheck: CrossCheck = (kind, path) => ({ path, params: { kind } });

/**
 * A contract's schemas from their one definition, twice: `reporting` (every issue, for rules and drift)
 * and `validating` (the same valid records, compiled by zod for the hot path).
 */
export function schemasFrom<T>(define: (cross: CrossCheck) => T): { reporting: T; validating: T } {
  return { reporting: define(crossCheck), validating: define(validityCheck) };
}

/** Whether `field` of a value (an object, as `crossCheck` ensures) is absent or null. */
export const absent = (value: unknown, field: string): boolean =>
  (value as Record<string, unknown>)[field] == null;

// ---------------------------------------------------------------------------------------------
// Columns and rules, tersely

/** A nullable column. */
export const col = (name: string, type: ColumnSpec['type'], description?: string): ColumnSpec => ({
  name,
  type,
  description,
});
/** A non-null column (part of a key). */
export const keyCol = (name: string, type: ColumnSpec['type'], description?: string): ColumnSpec => ({
  name,
  type,
  nullable: false,
  description,
});
export const FILE_ID_COLUMN = keyCol('file_id', 'VARCHAR', 'the bronze run id (source id)');
export const RESCUED_COLUMN = col(
  '_rescued',
  'VARCHAR',
  'unknown fields and mistyped optional values of the object, as JSON keyed by their path in the record',
);

/** A quarantine rule. */
export const quarantine = (id: string, description: string): RuleSpec => ({
  id,
  severity: 'quarantine',
  description,
});
/** A warn rule, optionally only from schema major version `since` on. */
export const warn = (id: string, description: string, since?: number): RuleSpec =>
  since === undefined ? { id, severity: 'warn', description } : { id, severity: 'warn', description, since };

/** A 10-digit NPI, or the `[0]` placeholder CMS allows for "no NPI". */
export const isNpi = (n: number): boolean => n === 0 || (n >= 1_000_000_000 && n <= 9_999_999_999);

/** Params of a check reported as a `format` issue (a warn rule, usually). */
export const FORMAT = { params: { kind: 'format' } };

// ---------------------------------------------------------------------------------------------
// Rules every TiC contract has

export const COMMON_RULES: readonly RuleSpec[] = [
  {
    id: 'record.schema',
    severity: 'quarantine',
    description: 'Any other departure from the CMS schema that no more specific rule names.',
  },
  {
    id: 'record.stream',
    severity: 'fail',
    description:
      'A record stream (record path) the contract does not know: the dataset config and contract disagree.',
  },
  {
    id: 'schema_version.content_mismatch',
    severity: 'warn',
    description:
      'The record has a shape of another schema version than the `version` header (e.g. 1.x inline provider_groups or a provider reference `location` in a 2.x file).',
  },
];

// ---------------------------------------------------------------------------------------------
// Schema version

/** The major version in a `version` header ("2.0.0", "2.0", "v1.4", 2) or undefined. */
export function schemaMajor(version: unknown): number | undefined {
  const m = /^\s*v?(\d+)(?:\.|\s*$)/i.exec(scalarText(version) ?? '');
  return m ? Number(m[1]) : undefined;
}

export const versionLabel = (major: number): string => `${major}.x`;

// ---------------------------------------------------------------------------------------------
// The files table

const PLAN_HEADERS = [
  'plan_name',
  'plan_id',
  'plan_id_type',
  'plan_market_type',
  'issuer_name',
  'plan_sponsor_name',
] as const;

/** The `files` table of a TiC dataset: one row per source file, from its headers. */
export function filesTable(withPlan: boolean): TableSpec {
  const v = (name: string, description?: string): ColumnSpec => ({ name, type: 'VARCHAR', description });
  return {
    name: 'files',
    description: 'One row per source file: where it came from and its header values.',
    columns: [
      FILE_ID_COLUMN,
      v('source_uri'),
      v('source_sha256'),
      v('reporting_entity_name'),
      v('reporting_entity_type'),
      ...(withPlan ? PLAN_HEADERS.map((name) => v(name)) : []),
      { name: 'last_updated_on', type: 'DATE' },
      v('version', 'the `version` header as written'),
      v(
        'schema_version',
        "schema major version, e.g. 2.x, from the header's version; NULL when it has none or it is unreadable",
      ),
      v('schema_version_source', "'header' when schema_version is set, else NULL"),
    ],
    key: ['file_id'],
  };
}

// ---------------------------------------------------------------------------------------------
// Header values: checked against the CMS schema like records, as the `file` object kind

/** Header values the CMS schemas require (in-network, allowed amounts and table of contents alike). */
const REQUIRED_HEADERS = ['reporting_entity_name', 'reporting_entity_type', 'last_updated_on', 'version'];

/**
 * The header values of a file as the CMS schema types them: strings of at least one character, the
 * plan id type and market type enums, `last_updated_on` a YYYY-MM-DD date. Optional headers may be
 * absent (or null). Not checked: the schemas' cross-field dependencies between the plan headers.
 */
function headerSchema(withPlan: boolean): z.ZodType {
  const optional = <T extends z.ZodType>(schema: T) => schema.nullish();
  return z.object({
    reporting_entity_name: nonBlank,
    reporting_entity_type: nonBlank,
    ...(withPlan
      ? {
          plan_name: optional(nonBlank),
          issuer_name: optional(nonBlank),
          plan_sponsor_name: optional(nonBlank),
          plan_id_type: optional(z.enum(PLAN_ID_TYPES)),
          plan_id: optional(nonBlank),
          plan_market_type: optional(z.enum(PLAN_MARKET_TYPES)),
        }
      : {}),
    last_updated_on: z.iso.date(),
    version: nonBlank,
  });
}

/**
 * The rules of a file's header values, object kind `file`. All warn: the file's row is kept, the value
 * as the `files` table has always written it (numbers and booleans as their JSON spelling, other
 * non-strings as NULL), and each departure is counted with its path, like a record's.
 */
export function headerRules(withPlan: boolean): RuleSpec[] {
  const names = ['reporting_entity_name', 'reporting_entity_type', ...(withPlan ? PLAN_HEADERS : [])];
  const rules: RuleSpec[] = [];
  for (const name of [...names, 'last_updated_on', 'version']) {
    if (REQUIRED_HEADERS.includes(name))
      rules.push(warn(`file.${name}.required`, `The ${name} header is missing, null or blank.`));
    rules.push(
      warn(
        `file.${name}.type`,
        `The ${name} header is not a string (a number or boolean is stored as its JSON text, anything else as NULL).`,
      ),
    );
  }
  if (withPlan) {
    rules.push(warn('file.plan_id_type.enum', 'The plan_id_type header is not "ein" or "hios".'));
    rules.push(
      warn('file.plan_market_type.enum', 'The plan_market_type header is not "group" or "individual".'),
    );
  }
  rules.push(
    warn('file.last_updated_on.format', 'last_updated_on is a date but not YYYY-MM-DD; converted.'),
    warn('file.last_updated_on.invalid', 'last_updated_on is not a date (stored as NULL).'),
    warn(
      'file.schema',
      'Any other departure of a header value from the CMS schema (e.g. a blank optional header).',
    ),
  );
  return rules;
}

/** Checks a file's header values (`SilverContext.headers`) with the rules of `headerRules`. */
function headerChecker(withPlan: boolean): RecordChecker {
  return new RecordChecker(
    headerSchema(withPlan),
    [{ path: '', name: 'file' }],
    headerRules(withPlan),
    'file.schema',
  );
}

/** The one `files` row of a file. */
export function fileRow(context: SilverContext, withPlan: boolean): Row {
  const h = context.headers;
  const headerMajor = schemaMajor(h.version);
  const row: Row = {
    file_id: context.runId,
    source_uri: context.sourceUri,
    source_sha256: context.sourceSha256,
    reporting_entity_name: scalarText(h.reporting_entity_name),
    reporting_entity_type: scalarText(h.reporting_entity_type),
  };
  if (withPlan) for (const name of PLAN_HEADERS) row[name] = scalarText(h[name]);
  row.last_updated_on = parseDate(h.last_updated_on);
  row.version = scalarText(h.version);
  // The content's shape (e.g. a 1.x provider reference) is checked against the header's version per
  // record, but the files row is written before any record is read: it tells the header's version only.
  row.schema_version = headerMajor !== undefined ? versionLabel(headerMajor) : null;
  row.schema_version_source = headerMajor !== undefined ? 'header' : null;
  return row;
}

// ---------------------------------------------------------------------------------------------
// The contract skeleton

/** What a record builder gets besides the record. */
export interface BuildContext {
  readonly fileId: string;
  readonly recordIndex: number;
  readonly rescued: RescuedValues;
  readonly context: SilverContext;
}

/** Rows of a record and, when its shape tells, the schema major version it implies and where. */
export interface Built {
  readonly rows: Record<string, Row[]>;
  readonly contentMajor?: number;
  readonly evidencePath?: string;
}

/** One record stream (record path) of a dataset: its zod schema, object kinds and row builder. */
export interface RecordStream {
  readonly schema: z.ZodType;
  /** The same schema declared for validity only (`schemasFrom`): a fast path for valid records. */
  readonly validator: z.ZodType;
  readonly entities: readonly EntitySpec[];
  /**
   * Rows of a record that passed every quarantine rule (warn-level oddities must be tolerated). The
   * record is typed `never` here so that each stream can declare it as its schema's input type.
   */
  build(record: never, ctx: BuildContext): Built;
}

export interface TicContractSpec {
  readonly dataset: string;
  /** `SilverContract.contractVersion`: bump it by hand when the stream builders or checks change rows. */
  readonly contractVersion: string;
  readonly tables: readonly TableSpec[];
  readonly rules: readonly RuleSpec[];
  readonly streams: Readonly<Record<string, RecordStream>>;
  readonly withPlan: boolean;
  readonly references?: readonly TableReference[];
}

/** A TiC silver contract, with its rules table (id, severity, description) and streams for docs and tests. */
export type TicSilverContract = SilverContract & {
  readonly rules: readonly RuleSpec[];
  readonly streams: Readonly<Record<string, RecordStream>>;
};

/** A TiC silver contract: records checked with zod against the rules table, then turned into rows. */
export function ticContract(spec: TicContractSpec): TicSilverContract {
  const rules = [...spec.rules, ...COMMON_RULES, ...headerRules(spec.withPlan)];
  const headers = headerChecker(spec.withPlan);
  const checkers = new Map(
    Object.entries(spec.streams).map(([name, s]) => [
      name,
      { stream: s, checker: new RecordChecker(s.schema, s.entities, rules, 'record.schema', s.validator) },
    ]),
  );
  const mismatch = rules.find((r) => r.id === 'schema_version.content_mismatch')!;
  // The header's major version, read once per file rather than by a regex per record.
  let versionRead: { readonly version: unknown; readonly major: number | undefined } | undefined;
  const headerMajorOf = (version: unknown): number | undefined => {
    if (versionRead === undefined || versionRead.version !== version)
      versionRead = { version, major: schemaMajor(version) };
    return versionRead.major;
  };
  const contract: TicSilverContract = {
    dataset: spec.dataset,
    contractVersion: spec.contractVersion,
    tables: spec.tables,
    rules,
    streams: spec.streams,
    onDrift: 'rescue',
    references: spec.references,
    fileRows: (context) => ({ files: [fileRow(context, spec.withPlan)] }),
    checkFile(context) {
      const check = headers.check(context.headers, { rescue: false });
      return { violations: check.violations, drift: check.drift };
    },
    normalize(recordName, recordIndex, record, context): NormalizedRecord {
      const entry = checkers.get(recordName);
      if (!entry) {
        const message = `unknown record stream "${recordName}"; ${spec.dataset} has ${[...checkers.keys()].join(', ')}`;
        return {
          rows: {},
          violations: [{ ruleId: 'record.stream', severity: 'fail', path: '$', message }],
          drift: [],
        };
      }
      const headerMajor = headerMajorOf(context.headers.version);
      const check = entry.checker.check(record, {
        rescue: contract.onDrift === 'rescue',
        schemaMajor: headerMajor,
      });
      if (check.quarantined) return { rows: {}, violations: check.violations, drift: check.drift };
      const built = entry.stream.build(record as never, {
        fileId: context.runId,
        recordIndex,
        rescued: check.rescued,
        context,
      });
      if (built.contentMajor === undefined)
        return { rows: built.rows, violations: check.violations, drift: check.drift };
      let violations: readonly RuleViolation[] = check.violations;
      if (headerMajor !== undefined && headerMajor !== built.contentMajor) {
        violations = [
          ...violations,
          {
            ruleId: mismatch.id,
            severity: mismatch.severity,
            path: built.evidencePath ?? '$',
            message: `schema ${versionLabel(built.contentMajor)} shape in a file whose version header says ${String(context.headers.version)}`,
          },
        ];
      }
      return { rows: built.rows, violations, drift: check.drift };
    },
  };
  return contract;
}
