import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringifyExact } from '../contracts/exact-json.ts';
import { ConfigError } from '../errors.ts';
import type { InspectReport } from '../inspect/inspect-source.ts';
import type { ShapeJson } from '../inspect/value-shape.ts';
import { formatBytes, formatCount } from './format.ts';

/** Options of `sluice inspect`. */
export interface InspectOptions {
  readonly json: boolean;
  readonly writeConfig?: string;
  readonly name?: string;
  readonly format?: 'json' | 'ndjson' | 'csv';
  readonly maxBytes?: number;
  readonly all: boolean;
  readonly quiet: boolean;
  readonly allowHttp: boolean;
  readonly allowLoopback: boolean;
  readonly allowPrivate: boolean;
}

/** What `inspect` reads of a URL by default (inspect-source.ts's DEFAULT_URL_MAX_BYTES, which loads lazily). */
const DEFAULT_URL_MAX_BYTES = 64 * 1024 * 1024;

/** Largest record inspect measures (a larger one fails with RecordTooLargeError, as a run would). */
const MAX_RECORD_BYTES = 1024 * 1024 * 1024;
/** Deepest nesting inspect follows: the deepest a dataset config may allow. */
const MAX_DEPTH = 100_000;

/** `sluice inspect FILE|URL`: what an unknown file holds, and a dataset config for it. */
export function inspectCommand(): Command {
  return new Command('inspect')
    .description(
      'Read an unknown JSON, NDJSON or CSV file (gzip or not) in one streaming pass and say what it holds: ' +
        'top-level keys and scalars, every array with its element count, bytes and its elements’ shape, ' +
        'the largest record, the nesting depth, and the TiC kind and schema version when it is one.',
    )
    .argument('<file|url>', 'a local file, or an https URL (the first --max-bytes of it unless --all)')
    .option('--json', 'print one JSON object instead of text', false)
    .option(
      '--write-config <file>',
      'write a dataset config for its record arrays (and, for one record stream, a typed silver table), ' +
        'ready for `sluice run <file> --config <file>`',
    )
    .option('--name <name>', 'the dataset name in the written config (default: from the file name)')
    .addOption(
      new Option('--format <format>', 'read as this format instead of deciding from the bytes').choices([
        'json',
        'ndjson',
        'csv',
      ]),
    )
    .option(
      '--max-bytes <n>',
      `stop after n stored bytes (suffix K, M, G); counts are then lower bounds (URL default: ${formatBytes(DEFAULT_URL_MAX_BYTES)})`,
      parseByteCount,
    )
    .addOption(new Option('--all', 'read a URL to its end').conflicts('maxBytes'))
    .option('-q, --quiet', 'no progress output', false)
    .option('--allow-http', 'URLs: allow plain http', false)
    .option('--allow-loopback', 'URLs: allow 127.0.0.1/::1 (local test servers)', false)
    .option('--allow-private', 'URLs: allow private network addresses', false)
    .addHelpText(
      'after',
      `
Examples:
  $ sluice inspect in-network.json.gz
  $ sluice inspect https://payer.example/mrf/in-network.json.gz --max-bytes 256M
  $ sluice inspect events.ndjson --write-config events.json && sluice run events.ndjson --config events.json
`,
    )
    .action(async (location: string, options: InspectOptions) => {
      await runInspect(location, options);
    });
}

/** `--max-bytes`: a byte count, with an optional K/M/G (binary) suffix. */
function parseByteCount(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]i?B?)?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`"${value}" is not a byte count (e.g. 67108864, 64M, 1G)`);
  const unit = (match[2] ?? '').charAt(0).toUpperCase();
  const scale = unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1;
  const bytes = Math.floor(Number(match[1]) * scale);
  if (bytes < 1) throw new InvalidArgumentError(`"${value}": read at least one byte`);
  return bytes;
}

async function runInspect(location: string, options: InspectOptions): Promise<void> {
  // Loaded when the command runs, so that the CLI's other commands and `--help` start without them.
  const { inspectSource } = await import('../inspect/inspect-source.ts');
  const { datasetNameFor, draftDatasetConfig } = await import('../inspect/draft-config.ts');
  const { createProgressReporter } = await import('./progress.ts');
  const progress = createProgressReporter(process.stderr, !options.quiet && !options.json);
  let report: InspectReport;
  try {
    report = await inspectSource(location, {
      ...(options.format && { format: options.format }),
      ...(options.maxBytes !== undefined && { maxBytes: options.maxBytes }),
      all: options.all,
      maxRecordBytes: MAX_RECORD_BYTES,
      maxDepth: MAX_DEPTH,
      allowInsecureHttp: options.allowHttp,
      allowLoopback: options.allowLoopback,
      allowPrivate: options.allowPrivate,
      onProgress: (p) =>
        progress.update({
          storedBytesRead: p.storedBytesRead,
          storedBytesTotal: p.storedBytesTotal ?? options.maxBytes ?? 0,
          uncompressedBytes: p.uncompressedBytes,
          records: p.records,
          slicesDone: 0,
        }),
    });
  } finally {
    progress.stop();
  }
  let written: string | undefined;
  if (options.writeConfig) {
    const name = options.name ?? datasetNameFor(basename(report.source));
    let config: unknown;
    try {
      config = draftDatasetConfig(report.structure, name);
    } catch (error) {
      throw new ConfigError(`--write-config: ${(error as Error).message}`, { cause: error });
    }
    await writeFile(options.writeConfig, `${JSON.stringify(config, null, 2)}\n`);
    written = options.writeConfig;
  }
  const { structure: _structure, ...shown } = report;
  if (options.json) {
    process.stdout.write(`${stringifyExact({ ...shown, ...(written && { configWritten: written }) })}\n`);
  } else {
    process.stdout.write(textReport(report, written));
  }
}

/** A scalar as one short line: long strings are cut. */
function shortValue(value: unknown): string {
  const text = stringifyExact(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

function textReport(report: InspectReport, written: string | undefined): string {
  const lower = report.complete ? '' : '≥ ';
  const lines: string[] = [];
  const kind = report.tic
    ? `a Transparency in Coverage ${report.tic.kind} file${report.tic.version !== undefined ? `, schema version ${shortValue(report.tic.version)}` : ''}`
    : report.format === 'csv'
      ? `CSV (delimiter ${JSON.stringify(report.csv?.delimiter)})`
      : report.format === 'ndjson'
        ? 'NDJSON (one record per line)'
        : `JSON (top level: ${report.topLevel?.kind ?? 'nothing'})`;
  lines.push(`sluice inspect: ${report.source}`);
  lines.push(`  is          ${kind}`);
  const total = report.storedBytesTotal !== undefined ? ` of ${formatBytes(report.storedBytesTotal)}` : '';
  lines.push(
    `  read        ${formatBytes(report.storedBytesRead)}${total}${report.compression === 'gzip' ? ' gzip' : ''}, ` +
      `${formatBytes(report.uncompressedBytesRead)} of ${report.format}`,
  );
  if (!report.complete) {
    lines.push(
      `  STOPPED EARLY at --max-bytes ${formatBytes(report.maxBytes ?? 0)}: every count below is a lower bound (--all reads everything)`,
    );
  }
  lines.push(`  nesting     ${lower}${report.depth} level${report.depth === 1 ? '' : 's'} deep`);
  if (report.topLevel && report.topLevel.keys.length > 0) {
    lines.push(`  top-level   ${report.topLevel.keys.join(', ')}`);
  }
  if (report.csv) lines.push(`  columns     ${report.csv.columns.join(', ')}`);
  const scalars = Object.entries(report.scalars);
  if (scalars.length > 0) {
    lines.push('', '  scalars');
    const width = Math.max(...scalars.map(([path]) => path.length));
    for (const [path, value] of scalars) lines.push(`    ${path.padEnd(width)}  ${shortValue(value)}`);
  }
  for (const array of report.arrays) {
    lines.push('');
    const label = report.format === 'json' ? `${array.path}: ` : '';
    const things = report.format === 'json' ? 'elements' : report.format === 'csv' ? 'rows' : 'lines';
    lines.push(
      `  ${label}${lower}${formatCount(array.count)} ${things}, ${formatBytes(array.bytes)}` +
        (array.largest
          ? `, largest ${formatBytes(array.largest.bytes)} (#${array.largest.index} at byte ${formatCount(array.largest.offset)})`
          : ''),
    );
    if (array.count > 0) {
      lines.push(`    shape of ${formatCount(array.sampled)} sampled: ${describeType(array.shape)}`);
      lines.push(...renderShapeJson(array.shape, '      ', 30));
    }
  }
  if (report.largestRecord) {
    const r = report.largestRecord;
    lines.push(
      '',
      `  largest record  ${formatBytes(r.bytes)}: ${recordLabel(report, r.path)} #${r.index} at byte ${formatCount(r.offset)}`,
    );
  }
  for (const note of report.notes) lines.push(`  note: ${note}`);
  lines.push('');
  if (report.tic?.dataset) {
    lines.push(`  run it:   npx sluice run ${quoteArg(report.source)} --dataset ${report.tic.dataset}`);
  } else if (report.tic) {
    lines.push('  sluice has no built-in dataset for this kind; --write-config drafts one');
  }
  if (written) {
    lines.push(
      `  config written to ${written}; run it:   npx sluice run ${quoteArg(report.source)} --config ${quoteArg(written)}`,
    );
  } else if (!report.tic?.dataset) {
    lines.push('  draft a dataset config:   add --write-config <file>');
  }
  lines.push('');
  return lines.join('\n');
}

/** A record array's name: its path in JSON, `row` or `line` otherwise. */
function recordLabel(report: InspectReport, path: string): string {
  return report.format === 'json' ? path : report.format === 'csv' ? 'row' : 'line';
}

function quoteArg(text: string): string {
  return /^[\w./:@%+=-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `array of object (≤ 12)`, `string|null`. */
function describeType(shape: ShapeJson): string {
  if (shape.items && shape.type.split('|').includes('array')) {
    const most = shape.maxItems !== undefined ? ` (≤ ${formatCount(shape.maxItems)})` : '';
    return `${shape.type === 'array' ? '' : `${shape.type}; `}array of ${describeType(shape.items)}${most}`;
  }
  return shape.type;
}

/** The fields of a shape as indented lines (`?`: some records lack it), depth first, at most `maxLines`. */
function renderShapeJson(shape: ShapeJson, indent: string, maxLines: number): string[] {
  const lines: string[] = [];
  let omitted = 0;
  const fieldsOf = (s: ShapeJson): ShapeJson => {
    let inner = s;
    while (!inner.fields && inner.items) inner = inner.items;
    return inner;
  };
  type Entry =
    | { key: string; field: ShapeJson & { optional?: true }; pad: string }
    | { more: number; pad: string };
  const entriesOf = (s: ShapeJson, pad: string): Entry[] => {
    const inner = fieldsOf(s);
    const entries: Entry[] = Object.entries(inner.fields ?? {}).map(([key, field]) => ({ key, field, pad }));
    if (inner.moreFields) entries.push({ more: inner.moreFields, pad });
    return entries;
  };
  const stack = entriesOf(shape, indent).reverse();
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const line =
      'more' in entry
        ? `${entry.pad}… ${entry.more} more fields`
        : `${entry.pad}${entry.key}${entry.field.optional ? '?' : ''}: ${describeType(entry.field)}`;
    if (lines.length < maxLines) lines.push(line);
    else omitted++;
    if (!('more' in entry)) stack.push(...entriesOf(entry.field, `${entry.pad}  `).reverse());
  }
  if (omitted > 0) lines.push(`${indent}… ${omitted} more lines (--json shows every field)`);
  return lines;
}
