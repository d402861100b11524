import { parseDatasetConfig } from '../contracts/dataset-config.ts';
import { parseExact } from '../contracts/exact-json.ts';
import { MalformedInputError } from '../errors.ts';
import { readCsvRecords } from '../stages/bronze/csv-records.ts';
import { type JsonKind, JsonRecordScanner, type PathDiscovery } from '../stages/parse/json-record-scanner.ts';
import { type CompiledPaths, compilePaths, type PathNode } from '../stages/parse/record-paths.ts';
import { emptyShape, mergeValue, type ValueShape } from './value-shape.ts';

/**
 * `sluice inspect`: what an unknown JSON, NDJSON or CSV file holds, learned in one streaming pass by the
 * pipeline's own scanner (so at its speed, validating every byte, never holding more than a record).
 * The scanner learns the document's skeleton as it goes (`PathDiscovery`): every array on it is a
 * candidate record array, every scalar a header value; records are counted and measured, and a bounded
 * sample of them is parsed to learn their shape.
 */

export type InspectFormat = 'json' | 'ndjson' | 'csv';

/** Keys learned per object of the skeleton; a map-like object of a million ids is counted, not listed. */
const MAX_KEYS_PER_OBJECT = 1000;
/** Records whose shape is sampled: the first ones, then one in 1,024, at most this many per array. */
const SAMPLE_FIRST = 100;
const SAMPLE_EVERY = 1024;
const MAX_SAMPLES = 2000;
/** A record larger than this is measured but not parsed for its shape (unless it is the array's first). */
const MAX_SAMPLED_RECORD_BYTES = 16 * 1024 * 1024;
/** Progress is reported at most this often, in scanned (uncompressed) bytes. */
const PROGRESS_EVERY_BYTES = 16 * 1024 * 1024;

/** A record array: the elements at a record path (`[*]` for NDJSON lines, CSV rows and root arrays). */
export interface RecordArray {
  readonly path: string;
  count: number;
  /** Bytes of its elements (uncompressed, separators not counted). */
  bytes: number;
  /** Where its first element starts (uncompressed byte offset). */
  firstOffset: number;
  largest: { index: number; offset: number; bytes: number } | undefined;
  readonly shape: ValueShape;
  sampled: number;
}

/** What `inspectDocument` learned. Counts are lower bounds when `complete` is false. */
export interface DocumentStructure {
  readonly format: InspectFormat;
  /** Whether the whole input was read (false: stopped at the byte limit). */
  complete: boolean;
  uncompressedBytes: number;
  /** JSON: the kind of the top-level value (NDJSON and CSV: none). */
  topLevelKind: JsonKind | undefined;
  /** The top-level object's keys, in order (at most the first 1,000). */
  topLevelKeys: string[];
  /** Scalars on the skeleton (header candidates), by dot path. */
  scalars: Record<string, unknown>;
  readonly arrays: RecordArray[];
  /** Keys of skeleton objects beyond the first 1,000 of their object: validated and counted only. */
  keysNotLearned: number;
  /** Keys that a dot path cannot name (they hold `.`, `[` or `]`). */
  unnamedKeys: string[];
  /** The deepest nesting in the document (1 for a flat object; CSV: 1). */
  depth: number;
  /** CSV: the header row and the delimiter. */
  csv?: { columns: string[]; delimiter: string };
}

export interface InspectProgress {
  readonly uncompressedBytes: number;
  readonly records: number;
}

export interface InspectDocumentOptions {
  /** Shown in errors (a path or a redacted URL). */
  readonly source: string;
  /** Undefined: decided from the first bytes (`sniffFormat`). */
  readonly format?: InspectFormat;
  /** The file name, whose `.ndjson`/`.jsonl`/`.csv` ending decides between formats the bytes leave open. */
  readonly name?: string;
  readonly maxRecordBytes: number;
  readonly maxDepth: number;
  /** Stop (and call the result incomplete) when this returns true; asked after every chunk. */
  readonly shouldStop?: () => boolean;
  readonly onProgress?: (progress: InspectProgress) => void;
}

/** A path trie that the scanner grows: names are the dot paths of the nodes. */
class SkeletonDiscovery implements PathDiscovery {
  readonly recordNames: string[] = [];
  readonly headerNames: string[] = [];
  readonly nodes: PathNode[] = [];
  readonly root: PathNode;
  readonly paths: CompiledPaths;
  private readonly pathOf = new Map<PathNode, string>();
  keysNotLearned = 0;
  readonly unnamedKeys: string[] = [];

  constructor() {
    this.root = this.newNode('');
    this.paths = {
      root: this.root,
      recordNames: this.recordNames,
      headerNames: this.headerNames,
      nodes: this.nodes,
    };
  }

  private newNode(path: string): PathNode {
    const node: PathNode = { children: new Map(), recordTarget: -1, headerTarget: -1, id: this.nodes.length };
    this.nodes.push(node);
    this.pathOf.set(node, path);
    return node;
  }

  learnKey(parent: PathNode, key: string): PathNode | undefined {
    if (parent.children.size >= MAX_KEYS_PER_OBJECT) {
      this.keysNotLearned++;
      return undefined;
    }
    if (/[.[\]]/.test(key) || key === '') {
      if (this.unnamedKeys.length < 20) this.unnamedKeys.push(key);
      return undefined;
    }
    const parentPath = this.pathOf.get(parent)!;
    const node = this.newNode(parentPath === '' ? key : `${parentPath}.${key}`);
    parent.children.set(key, node);
    return node;
  }

  learnValue(node: PathNode, kind: JsonKind): void {
    const path = this.pathOf.get(node)!;
    if (kind === 'array') {
      node.recordTarget = this.recordNames.length;
      this.recordNames.push(`${path}[*]`);
    } else if (kind !== 'object' && node !== this.root) {
      node.headerTarget = this.headerNames.length;
      this.headerNames.push(path);
    }
  }
}

function newArray(path: string): RecordArray {
  return { path, count: 0, bytes: 0, firstOffset: -1, largest: undefined, shape: emptyShape(), sampled: 0 };
}

/**
 * Count, measure and (for a sample) parse one record into its array's shape: `record` is its bytes
 * (JSON) or, with its parsed `value`, its size (a CSV row).
 */
function addRecord(
  array: RecordArray,
  index: number,
  offset: number,
  record: Buffer | number,
  value?: unknown,
): void {
  const size = typeof record === 'number' ? record : record.length;
  array.count++;
  array.bytes += size;
  if (array.firstOffset < 0) array.firstOffset = offset;
  if (!array.largest || size > array.largest.bytes) array.largest = { index, offset, bytes: size };
  const sample = index < SAMPLE_FIRST || (index % SAMPLE_EVERY === 0 && array.sampled < MAX_SAMPLES);
  if (!sample || (index > 0 && size > MAX_SAMPLED_RECORD_BYTES)) return;
  array.sampled++;
  mergeValue(array.shape, typeof record === 'number' ? value : parseExact(record.toString('utf8')));
}

/**
 * JSON, NDJSON or CSV from its first bytes: `{` or `[` begin JSON (NDJSON when a second value follows the
 * first on a later line, or the name ends in `.ndjson`/`.jsonl`), anything else is CSV.
 */
export function sniffFormat(head: Buffer, name = ''): InspectFormat {
  if (/\.(ndjson|jsonl)(\.gz)?$/i.test(name)) return 'ndjson';
  if (/\.csv(\.gz)?$/i.test(name)) return 'csv';
  let i = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x0a || head[i] === 0x0d || head[i] === 0x09))
    i++;
  if (head[i] !== 0x7b && head[i] !== 0x5b) return 'csv';
  const probe = new JsonRecordScanner(
    { source: '', format: 'json', paths: compilePaths([], []), maxRecordBytes: Number.MAX_SAFE_INTEGER },
    () => {},
  );
  try {
    probe.write(Buffer.from(head));
  } catch (error) {
    if (error instanceof MalformedInputError && error.detail.includes('trailing data')) return 'ndjson';
  }
  return 'json';
}

/** The CSV delimiter that splits the header line into the most fields: `,`, `;`, tab or `|`. */
export function sniffDelimiter(head: Buffer): string {
  const line = head.subarray(0, Math.max(0, head.indexOf(0x0a)) || head.length).toString('utf8');
  let best = ',';
  let most = 0;
  for (const delimiter of [',', ';', '\t', '|']) {
    const fields = line.split(delimiter).length;
    if (fields > most) {
      most = fields;
      best = delimiter;
    }
  }
  return best;
}

/** A CSV cell as the type a config would give it: integers without leading zeros, numbers, booleans. */
function typedCell(text: unknown): unknown {
  if (typeof text !== 'string') return text;
  const t = text.trim();
  if (t === '') return null;
  if (/^-?(0|[1-9]\d{0,17})$/.test(t)) return Number(t);
  if (/^-?(0|[1-9]\d*)?\.\d+([eE][-+]?\d+)?$|^-?(0|[1-9]\d*)[eE][-+]?\d+$/.test(t)) return Number(t);
  if (/^(true|false)$/i.test(t)) return t.toLowerCase() === 'true';
  return text;
}

/** Learn the structure of a document from its (decompressed) chunks in one pass. */
export async function inspectDocument(
  chunks: AsyncIterable<Buffer>,
  options: InspectDocumentOptions,
): Promise<DocumentStructure> {
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  const head = first.done ? Buffer.alloc(0) : first.value;
  const format = options.format ?? sniffFormat(head, options.name);
  async function* all(): AsyncGenerator<Buffer> {
    if (!first.done) yield first.value;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  const structure: DocumentStructure = {
    format,
    complete: true,
    uncompressedBytes: 0,
    topLevelKind: undefined,
    topLevelKeys: [],
    scalars: {},
    arrays: [],
    keysNotLearned: 0,
    unnamedKeys: [],
    depth: 0,
  };
  try {
    if (format === 'csv') await inspectCsv(all(), head, structure, options);
    else await inspectJson(all(), format, structure, options);
  } finally {
    // Stopped early or failed: leaving the source's loop closes the file or the connection.
    await iterator.return?.();
  }
  return structure;
}

async function inspectJson(
  chunks: AsyncIterable<Buffer>,
  format: 'json' | 'ndjson',
  structure: DocumentStructure,
  options: InspectDocumentOptions,
): Promise<void> {
  const discovery = format === 'json' ? new SkeletonDiscovery() : undefined;
  const paths = discovery?.paths ?? compilePaths([{ name: 'records', path: '[*]' }], []);
  const arrays = structure.arrays;
  const scanner = new JsonRecordScanner(
    {
      source: options.source,
      format,
      paths,
      maxRecordBytes: options.maxRecordBytes,
      maxDepth: options.maxDepth,
      ...(discovery && { discover: discovery }),
    },
    (target, index, offset, bytes) => {
      arrays[target] ??= newArray(discovery ? paths.recordNames[target]! : '[*]');
      addRecord(arrays[target]!, index, offset, bytes);
    },
  );
  let reported = 0;
  const records = () => arrays.reduce((n, a) => n + (a?.count ?? 0), 0);
  // Asked after each chunk, acted on only when another one comes: input that ended there is complete.
  let stop = false;
  for await (const chunk of chunks) {
    if (stop) {
      structure.complete = false;
      break;
    }
    scanner.write(chunk);
    if (scanner.bytesScanned - reported >= PROGRESS_EVERY_BYTES) {
      reported = scanner.bytesScanned;
      options.onProgress?.({ uncompressedBytes: reported, records: records() });
    }
    stop = options.shouldStop?.() ?? false;
  }
  if (structure.complete) scanner.end();
  // An array seen empty has no records, but it is an array the document holds.
  paths.recordNames.forEach((name, i) => {
    arrays[i] ??= newArray(discovery ? name : '[*]');
  });
  structure.uncompressedBytes = scanner.bytesScanned;
  structure.depth = scanner.deepest;
  structure.scalars = { ...scanner.headers };
  if (format === 'json') {
    structure.topLevelKind = scanner.pathValues[paths.root.id]?.kind;
    structure.topLevelKeys = [...paths.root.children.keys()];
    structure.keysNotLearned = discovery!.keysNotLearned;
    structure.unnamedKeys = discovery!.unnamedKeys;
  } else if (arrays.length === 0) {
    arrays.push(newArray('[*]'));
  }
}

async function inspectCsv(
  chunks: AsyncIterable<Buffer>,
  head: Buffer,
  structure: DocumentStructure,
  options: InspectDocumentOptions,
): Promise<void> {
  const delimiter = sniffDelimiter(head);
  let stopped = false;
  // readCsvRecords is the pipeline's own CSV reading, so what inspect sees is what a run will see.
  async function* untilStopped(): AsyncGenerator<Buffer> {
    let stop = false;
    for await (const chunk of chunks) {
      if (stop) {
        stopped = true;
        return;
      }
      yield chunk;
      stop = options.shouldStop?.() ?? false;
    }
  }
  const config = parseDatasetConfig({ name: 'inspect', format: 'csv', csv: { delimiter } });
  const source = readCsvRecords(untilStopped(), config, options.source, { stoppedEarly: () => stopped });
  const rows = newArray('[*]');
  structure.arrays.push(rows);
  let reported = 0;
  // A row's size is the distance to the next row's start (the bytes handed over are the row as JSON).
  let previous: { index: number; offset: number; value: Record<string, unknown> } | undefined;
  const addPrevious = (end: number) => {
    if (previous) addRecord(rows, previous.index, previous.offset, end - previous.offset, previous.value);
  };
  for await (const { bytesScanned } of source.batches((_target, index, offset, bytes) => {
    addPrevious(offset);
    const row = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    const typed: Record<string, unknown> = Object.create(null);
    for (const [key, value] of Object.entries(row)) typed[key] = key === '_extra' ? value : typedCell(value);
    previous = { index, offset, value: typed };
  })) {
    if (bytesScanned - reported >= PROGRESS_EVERY_BYTES) {
      reported = bytesScanned;
      options.onProgress?.({ uncompressedBytes: bytesScanned, records: rows.count });
    }
  }
  addPrevious(source.bytesScanned());
  structure.complete = !stopped;
  structure.uncompressedBytes = source.bytesScanned();
  structure.depth = 1;
  const columns = [...(rows.shape.fields?.keys() ?? [])].filter((name) => name !== '_extra');
  structure.csv = { columns, delimiter };
}
