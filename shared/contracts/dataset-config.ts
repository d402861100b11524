import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';

/**
 * The one definition of a dataset's ingest configuration: what the file looks like and where its
 * records are. Built-in datasets are values of this type; users describe their own in a JSON file
 * checked against the same schema (`sluice schema` prints it as JSON Schema).
 */

const MiB = 1024 * 1024;

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
});

const HeaderPath = z.object({
  path: z
    .string()
    .regex(/^[^.[\]]+(\.[^.[\]]+)*$/, 'a header path is dot-separated object keys, e.g. "version"')
    .describe('Dot-separated object keys of a value captured once per file, before or after the records.'),
  name: name.optional().describe('Name in the manifest. Default: the path.'),
});

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
          .max(100_000)
          .default(1000)
          .describe('Deepest nesting accepted.'),
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
      })
      .default({ partMaxRecords: 100_000, partMaxBytes: 32 * MiB, compressionLevel: 1 }),
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
  });

export type DatasetConfigInput = z.input<typeof DatasetConfig>;
export type DatasetConfig = z.output<typeof DatasetConfig>;

/** The record streams of a dataset, with their names resolved. */
export function recordTargets(config: DatasetConfig): { name: string; path: string }[] {
  if (config.format !== 'json') return [{ name: config.recordName, path: '[*]' }];
  return (config.records ?? []).map((r) => ({
    path: r.path,
    name: r.name ?? r.path.slice(0, -3).split('.').at(-1) ?? 'records',
  }));
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
