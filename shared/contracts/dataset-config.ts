import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { defaultRecordName } from '../stages/parse/record-paths.ts';

/**
 * The one definition of a dataset's ingest configuration: what the file looks like and where its
 * records are. Built-in datasets are values of this type; users describe their own in a JSON file
 * checked against the same schema (`sluice schema` prints it as JSON Schema).
 */

const MiB = 1024 * 1024;

/**
 * The highest `limits.maxDepth` a config may set. The scanner needs no stack at any depth; the stages
 * after it turn deep values into JSON text without recursion (`jsonText`), and a test runs a record
 * this deep through the whole CLI (tests/integration/honest-input.test.ts).
 */

/** The field of a CSV record that holds the cells of a row beyond its header row's columns. */
export const CSV_EXTRA_CELLS = '_extra';
export const MAX_DEPTH_LIMIT = 100_000;

const name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9_-]{0,62}$/,
    'use 1–63 lowercase letters, digits, "-" or "_", starting with a letter or digit',
  );

const RecordPath = z.object({
  path: z
    .string()
    .regex(
      /^([^.[\]]+(\.[^.[\]]+)*)?\[\*\]$/,
      'a record path is dot-separated keys ending in [*], e.g. "in_network[*]"',
    )
    .describe('Where the records are: dot-separated object keys ending in [*]; "[*]" is a root array.'),
  name: name.optional().describe('Name used in counts, keys and tables. Default: the last key of the path.'),
  required: z
    .boolean()
    .default(true)
    .describe(
      'The document must hold this array: when it is missing, holds something else (an object, null, …) ' +
        'or the top level does not lead to it, the run fails with MissingRecordPathError, saying what it ' +
        'found instead. false: an optional path, which a file may lack. Default: true.',
    ),
  allowEmpty: z
    .boolean()
    .default(false)
    .describe(
      'A required path holding an empty array is accepted. Default: false (the run fails with ' +
        'MissingRecordPathError: a file with no records is usually the wrong file, or a truncated export).',
    ),
});

const HeaderPath = z.object({
  path: z
    .string()
    .regex(/^[^.[\]]+(\.[^.[\]]+)*$/, 'a header path is dot-separated object keys, e.g. "version"')
    .describe('Dot-separated object keys of a value captured once per file, before or after the records.'),
  name: name.optional().describe('Name in the manifest. Default: the path.'),
});

/** Names of silver tables and columns: they become Parquet column names, SQL identifiers and file names. */
const sqlName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]{0,62}$/,
    'use 1–63 lowercase letters, digits or "_", starting with a letter (it becomes a Parquet and SQL name); ' +
      'map a field named otherwise with "source"',
  );

/** The column types a config can declare; `generic-contract.ts` maps each to a silver `ColumnType`. */
const SilverColumnType = z
  .enum(['string', 'integer', 'number', 'boolean', 'date', 'timestamp', 'string[]', 'integer[]', 'number[]'])
  .describe(
    'string: trimmed text, blank → null; integer: 64-bit (BIGINT); number: DOUBLE; boolean: true/false ' +
      '(also "yes"/"no", "1"/"0" in text); date: YYYY-MM-DD (also YYYY/MM/DD, MM/DD/YYYY, YYYYMMDD, with a ' +
      'warning); timestamp: ISO 8601 with optional offset (at most ±23:59), stored in UTC to the microsecond ' +
      '(finer digits are cut, with a warning); lists: a JSON array (in CSV, a ' +
      'JSON array written in the cell). Values that cannot be converted quarantine the record.',
  );

/** Column names silver adds itself, or that its readers derive: never declared by a config. */
const RESERVED_COLUMNS: Readonly<Record<string, string>> = {
  source: 'the partition column readers derive from source=<run id> folders',
  valid_from: 'added by the scd2 load',
  valid_to: 'added by the scd2 load',
  is_current: 'added by the scd2 load',
};

const LOADS_WITH_ORDER = ['snapshot', 'cdc', 'scd2'];
const KEYED_LOADS = ['cdc', 'scd2'];
const ORDERABLE_TYPES = ['string', 'integer', 'number', 'date', 'timestamp'];

const SilverColumn = z
  .object({
    name: sqlName.describe('Column name in the silver table.'),
    type: SilverColumnType,
    required: z
      .boolean()
      .default(false)
      .describe(
        'A record without a value (absent, null or blank) is quarantined with rule <table>.<column>.required. ' +
          'Primary key, ordering and operation columns are always required; a cdc/scd2 delete event needs ' +
          'only those. Default: false.',
      ),
    source: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Where the value is in the record. json/ndjson: dot-separated keys, e.g. "customer.id"; csv: the ' +
          'header name as written, e.g. "Customer Id". Default: the column name.',
      ),
    description: z.string().optional(),
  })
  .strict();

const SilverConfig = z
  .object({
    table: sqlName.describe('Name of the silver table: silver/<dataset>/<table>/.'),
    description: z.string().optional(),
    columns: z
      .array(SilverColumn)
      .min(1)
      .describe('The columns of the table, in order; fields of the record not picked by a column are drift.'),
    primaryKey: z
      .array(z.string())
      .default([])
      .describe(
        'Columns that identify an entity. Needed by cdc and scd2; for append and snapshot, rows of one ' +
          'source with the same key are kept once. Default: none.',
      ),
    orderingColumn: z
      .string()
      .optional()
      .describe(
        'Column ordering the versions of an entity (a sequence number, an LSN, an updated-at timestamp): ' +
          'the highest wins, whatever order the files arrive in. Needed by cdc and scd2; for snapshot, a ' +
          'source whose highest value is older than the current snapshot is ignored.',
      ),
    load: z
      .enum(['append', 'snapshot', 'cdc', 'scd2'])
      .default('append')
      .describe(
        'How each source lands in the table. append: every source adds its rows. snapshot: the latest ' +
          'source replaces the table. cdc: change events (insert/update/delete) upserted per primary key. ' +
          'scd2: change events kept as a type-2 history (valid_from, valid_to, is_current). Default: append.',
      ),
    operationColumn: z
      .string()
      .nullable()
      .optional()
      .describe(
        'cdc/scd2: the column saying insert, update or delete (also I, U, D; any case). null: no such ' +
          'column, every row is an upsert. Default: "op".',
      ),
    onDrift: z
      .enum(['rescue', 'ignore', 'fail'])
      .default('rescue')
      .describe(
        'Fields no column picks: kept as JSON in a _rescued column (rescue), dropped (ignore), or the run ' +
          'fails (fail). Each is counted as drift in the silver manifest. Default: rescue.',
      ),
  })
  .strict()
  .superRefine((silver, ctx) => {
    const problem = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const columns = new Map(silver.columns.map((c) => [c.name, c]));
    const declared = silver.columns.map((c) => c.name).join(', ');
    const notDeclared = (name: string) => `"${name}" is not a declared column; the columns are: ${declared}`;
    silver.columns.forEach((column, i) => {
      if (silver.columns.findIndex((c) => c.name === column.name) !== i) {
        problem(['columns', i, 'name'], `column "${column.name}" is declared twice`);
      }
      const reserved = RESERVED_COLUMNS[column.name];
      if (reserved && (column.name === 'source' || silver.load === 'scd2')) {
        problem(
          ['columns', i, 'name'],
          `"${column.name}" is reserved (${reserved}); name the column otherwise and map the field with "source"`,
        );
      }
    });
    silver.primaryKey.forEach((name, i) => {
      const column = columns.get(name);
      if (!column) problem(['primaryKey', i], notDeclared(name));
      else if (column.type.endsWith('[]'))
        problem(['primaryKey', i], `"${name}" is a list (${column.type}); a key column holds one value`);
      if (silver.primaryKey.indexOf(name) !== i) problem(['primaryKey', i], `"${name}" is listed twice`);
    });
    const keyed = KEYED_LOADS.includes(silver.load);
    if (keyed && silver.primaryKey.length === 0) {
      problem(
        ['primaryKey'],
        `a ${silver.load} load needs "primaryKey": the columns that identify an entity, e.g. ["id"]`,
      );
    }
    const order = silver.orderingColumn;
    if (order === undefined) {
      if (keyed) {
        problem(
          ['orderingColumn'],
          `a ${silver.load} load needs "orderingColumn": the column that orders the events of one key ` +
            '(a sequence number, an LSN, a timestamp); the highest wins',
        );
      }
    } else if (!LOADS_WITH_ORDER.includes(silver.load)) {
      problem(['orderingColumn'], 'applies to snapshot, cdc and scd2 loads; an append load keeps every row');
    } else {
      const column = columns.get(order);
      if (!column) problem(['orderingColumn'], notDeclared(order));
      else if (!ORDERABLE_TYPES.includes(column.type))
        problem(
          ['orderingColumn'],
          `"${order}" is ${column.type}; ordering needs ${ORDERABLE_TYPES.join(', ')}`,
        );
      if (silver.primaryKey.includes(order))
        problem(
          ['orderingColumn'],
          `"${order}" is part of primaryKey; the ordering column must be another column`,
        );
    }
    if (!keyed) {
      if (silver.operationColumn !== undefined)
        problem(['operationColumn'], 'applies to cdc and scd2 loads only');
      return;
    }
    const operation = silver.operationColumn === undefined ? 'op' : silver.operationColumn;
    if (operation === null) return;
    const column = columns.get(operation);
    const fix =
      'declare it (type "string", holding insert, update or delete), set "operationColumn" to the column ' +
      'that does, or set it to null when every row is an upsert';
    if (!column)
      problem(['operationColumn'], `operation column "${operation}" is not a declared column: ${fix}`);
    else if (column.type !== 'string')
      problem(['operationColumn'], `operation column "${operation}" is ${column.type}; it must be "string"`);
    if (silver.primaryKey.includes(operation) || operation === order) {
      problem(
        ['operationColumn'],
        `"${operation}" is also a key or the ordering column; use a column of its own`,
      );
    }
  })
  .describe(
    'A silver table defined by configuration alone: columns picked from each record and typed, a ' +
      'primary key, and how each source lands (append, snapshot, cdc, scd2). Datasets sluice ships ' +
      'have contracts of their own and ignore this.',
  );

export const DatasetConfig = z
  .object({
    $schema: z.string().optional(),
    name: name.describe('Dataset name: used in lake keys, e.g. bronze/<name>/...'),
    description: z.string().optional(),
    format: z
      .enum(['json', 'ndjson', 'csv'])
      .describe(
        'json: one document with record arrays inside; ndjson: one record per line; csv: one record per row.',
      ),
    records: z
      .array(RecordPath)
      .min(1)
      .optional()
      .describe(
        'json only: the arrays whose elements are records. ndjson/csv: every line or row is a record.',
      ),
    recordName: name.default('records').describe('ndjson/csv only: the name of the record stream.'),
    allowEmpty: z
      .boolean()
      .optional()
      .describe(
        'ndjson/csv only: a file without records (no lines, or a header row only) is accepted. Default: ' +
          'false (the run fails with MissingRecordPathError: an empty file is usually a failed export).',
      ),
    headers: z.array(HeaderPath).default([]).describe('json only: values captured once per file.'),
    csv: z
      .object({
        delimiter: z.string().length(1).default(','),
        quote: z.string().length(1).default('"'),
      })
      .default({ delimiter: ',', quote: '"' })
      .describe('csv only: the first row names the columns.'),
    limits: z
      .object({
        maxRecordBytes: z
          .number()
          .int()
          .positive()
          .default(256 * MiB)
          .describe('A larger record fails the run with RecordTooLargeError.'),
        maxDepth: z
          .number()
          .int()
          .positive()
          .max(
            MAX_DEPTH_LIMIT,
            `at most ${MAX_DEPTH_LIMIT}: every stage is tested to that depth (see README, "Deep nesting")`,
          )
          .default(1000)
          .describe(
            `Deepest nesting accepted; a deeper value fails the run with MalformedInputError at its byte ` +
              `offset. At most ${MAX_DEPTH_LIMIT}, the depth every stage is tested to.`,
          ),
      })
      .default({ maxRecordBytes: 256 * MiB, maxDepth: 1000 }),
    bronze: z
      .object({
        partMaxRecords: z
          .number()
          .int()
          .positive()
          .default(100_000)
          .describe('Records per bronze part at most.'),
        partMaxBytes: z
          .number()
          .int()
          .positive()
          .default(32 * MiB)
          .describe(
            'Uncompressed bytes per bronze part at most (a single larger record gets a part of its own).',
          ),
        compressionLevel: z.number().int().min(1).max(9).default(1).describe('gzip level of bronze parts.'),
        segmentBytes: z
          .number()
          .int()
          .positive()
          .default(256 * MiB)
          .describe(
            'Every part is sealed after the first record ending past each multiple of this many uncompressed ' +
              'bytes. A sliced ingest stops only at these segment boundaries, so parts do not depend on slicing.',
          ),
      })
      .default({
        partMaxRecords: 100_000,
        partMaxBytes: 32 * MiB,
        compressionLevel: 1,
        segmentBytes: 256 * MiB,
      }),
    silver: SilverConfig.optional(),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.format === 'json' && !config.records) {
      ctx.addIssue({
        code: 'custom',
        path: ['records'],
        message: 'a json dataset needs "records", e.g. [{ "path": "in_network[*]" }]',
      });
    }
    if (config.format !== 'json' && (config.records || config.headers.length > 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['records'],
        message: `"records" and "headers" apply to json datasets only; every ${config.format} line is a record`,
      });
    }
    if (config.silver && config.format === 'json' && (config.records?.length ?? 0) > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['silver'],
        message:
          'a silver table is filled from one record path; this json dataset has several "records": keep one, ' +
          'or describe each in a dataset config of its own',
      });
    }
    if (config.silver && config.format !== 'csv') {
      config.silver.columns.forEach((column, i) => {
        if (column.source !== undefined && !/^[^.]+(\.[^.]+)*$/.test(column.source)) {
          ctx.addIssue({
            code: 'custom',
            path: ['silver', 'columns', i, 'source'],
            message: `"${column.source}" is not a dot path: use keys separated by single dots, e.g. "customer.id"`,
          });
        }
      });
    }
  });

export type DatasetConfigInput = z.input<typeof DatasetConfig>;
export type DatasetConfig = z.output<typeof DatasetConfig>;

/** A record stream of a dataset, with its name resolved. */
export interface RecordTarget {
  readonly name: string;
  readonly path: string;
  /** The document must hold this array (json datasets; see `RecordPath.required`). */
  readonly required: boolean;
  /** A required array may be empty. */
  readonly allowEmpty: boolean;
}

/** The record streams of a dataset, with their names resolved. */
export function recordTargets(config: DatasetConfig): RecordTarget[] {
  if (config.format !== 'json') {
    return [
      { name: config.recordName, path: '[*]', required: false, allowEmpty: config.allowEmpty ?? false },
    ];
  }
  return (config.records ?? []).map((r) => ({
    path: r.path,
    name: r.name ?? defaultRecordName(r.path),
    required: r.required,
    allowEmpty: r.allowEmpty,
  }));
}

/** The sha256 of a dataset config: a run, a checkpoint and a commit are valid under one config only. */
export function datasetConfigSha256(dataset: DatasetConfig): string {
  return createHash('sha256').update(JSON.stringify(dataset)).digest('hex');
}

/**
 * Whether the dataset keeps a merged state (`<dataset>__<table>_current`): a generic dataset whose silver
 * load is snapshot, cdc or scd2. Its state is folded after each commit, and caught up by a rerun that
 * finds the source unchanged (a run killed between its commit and its fold).
 */
export function hasMergedState(config: DatasetConfig): boolean {
  return config.silver !== undefined && config.silver.load !== 'append';
}

/**
 * How a dataset's files are read into records: the format, the record streams with their paths, the
 * header paths and the CSV dialect. Bronze holds the records of the settings it was parsed under (its
 * manifest records them), so silver can be rebuilt from it only under a config with the same settings.
 */
export const ParseSettings = z.object({
  format: z.enum(['json', 'ndjson', 'csv']),
  records: z.array(z.object({ name: z.string(), path: z.string() })),
  headers: z.array(z.object({ name: z.string(), path: z.string() })),
  csv: z.object({ delimiter: z.string(), quote: z.string() }).optional(),
});
export type ParseSettings = z.infer<typeof ParseSettings>;

/** The settings that decide which records a file yields (see `ParseSettings`), keys in its order. */
export function parseSettingsOf(config: DatasetConfig): ParseSettings {
  return {
    format: config.format,
    records: recordTargets(config).map(({ name, path }) => ({ name, path })),
    headers: headerTargets(config).map(({ name, path }) => ({ name, path })),
    ...(config.format === 'csv' && { csv: { delimiter: config.csv.delimiter, quote: config.csv.quote } }),
  };
}

/** The header values of a dataset, with their names resolved. */
export function headerTargets(config: DatasetConfig): { name: string; path: string }[] {
  return config.headers.map((h) => ({ path: h.path, name: h.name ?? h.path }));
}

/** Render zod issues as one line each: where, what, and (from the schema's messages) how to fix it. */
export function explainIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `${where}: ${issue.message}`;
  });
}

/** Validate a parsed config value, throwing a ConfigError that lists every problem. */
export function parseDatasetConfig(value: unknown, origin = 'dataset config'): DatasetConfig {
  const result = DatasetConfig.safeParse(value);
  if (result.success) {
    const names = recordTargets(result.data).map((t) => t.name);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate)
      throw new ConfigError(`${origin}: records: two record paths are both named "${duplicate}"`);
    return result.data;
  }
  const lines = explainIssues(result.error.issues).map((l) => `  - ${l}`);
  throw new ConfigError(`${origin} is invalid:\n${lines.join('\n')}`);
}

/** Read and validate a JSON config file. */
export async function loadDatasetConfigFile(path: string): Promise<DatasetConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`, { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return parseDatasetConfig(value, path);
}

/** The config's JSON Schema, derived from the zod definition above (never a second copy). */
export function datasetConfigJsonSchema(): unknown {
  return z.toJSONSchema(DatasetConfig, { io: 'input', unrepresentable: 'any' });
}
