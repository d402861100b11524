import { basename, dirname, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { ConfigError, DownloadError, UnsafeUrlError } from '../errors.ts';
import { httpGet } from '../stages/download/http-get.ts';
import {
  parseSafeUrl,
  redactUrl,
  resolveSafeAddress,
  type UrlSafetyOptions,
} from '../stages/download/url-safety.ts';
import { type DecodedStream, decodeStream, isGzipMagic, openSource } from '../stages/parse/open-source.ts';
import {
  type DocumentStructure,
  type InspectFormat,
  type InspectProgress,
  inspectDocument,
  type RecordArray,
} from './inspect-document.ts';
import { type ShapeJson, shapeToJson } from './value-shape.ts';

/** What `sluice inspect` reads from a URL unless told otherwise (stored bytes; its help text says so too). */
export const DEFAULT_URL_MAX_BYTES = 64 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const CONNECT_TIMEOUT_MS = 15_000;
const IDLE_TIMEOUT_MS = 60_000;

/** The Transparency in Coverage file kinds, recognized by their top-level keys. */
export type TicKind = 'in-network' | 'allowed-amounts' | 'table-of-contents' | 'provider-reference';

const TIC_KINDS: readonly { kind: TicKind; array: string; dataset?: string }[] = [
  { kind: 'in-network', array: 'in_network', dataset: 'tic-in-network' },
  { kind: 'allowed-amounts', array: 'out_of_network', dataset: 'tic-allowed-amounts' },
  { kind: 'table-of-contents', array: 'reporting_structure', dataset: 'tic-table-of-contents' },
  { kind: 'provider-reference', array: 'provider_groups' },
];
/** Top-level keys every TiC schema has beside its record array (provider references: `version` only). */
const TIC_HEADER_KEYS = ['reporting_entity_name', 'last_updated_on', 'version'];

export interface InspectSourceOptions extends UrlSafetyOptions {
  readonly format?: InspectFormat;
  /** Stop after this many stored bytes (URLs: DEFAULT_URL_MAX_BYTES unless `all`). */
  readonly maxBytes?: number;
  /** Read a URL to its end. */
  readonly all?: boolean;
  readonly maxRecordBytes: number;
  readonly maxDepth: number;
  readonly onProgress?: (progress: InspectProgress & SourceProgress) => void;
}

export interface SourceProgress {
  readonly storedBytesRead: number;
  /** Unknown for a URL whose server sends no Content-Length. */
  readonly storedBytesTotal: number | undefined;
}

/** One record array as the report shows it. */
export interface ArrayReport {
  readonly path: string;
  readonly count: number;
  readonly bytes: number;
  readonly firstOffset: number | undefined;
  readonly largest: { readonly index: number; readonly offset: number; readonly bytes: number } | undefined;
  /** Records whose shape was parsed: the first 100, then one in 1,024. */
  readonly sampled: number;
  readonly shape: ShapeJson;
}

/** Everything `sluice inspect` says about a source, as `--json` prints it. */
export interface InspectReport {
  readonly source: string;
  readonly compression: 'gzip' | 'none';
  readonly format: InspectFormat;
  readonly storedBytesRead: number;
  readonly storedBytesTotal: number | undefined;
  readonly uncompressedBytesRead: number;
  /** false: the read stopped at `maxBytes`, and every count is a lower bound. */
  readonly complete: boolean;
  readonly maxBytes: number | undefined;
  readonly topLevel: { readonly kind: string | undefined; readonly keys: readonly string[] } | undefined;
  readonly scalars: Record<string, unknown>;
  readonly arrays: readonly ArrayReport[];
  readonly largestRecord:
    | { readonly path: string; readonly index: number; readonly offset: number; readonly bytes: number }
    | undefined;
  readonly depth: number;
  readonly tic: { readonly kind: TicKind; readonly dataset?: string; readonly version?: unknown } | undefined;
  readonly csv: { readonly columns: readonly string[]; readonly delimiter: string } | undefined;
  readonly notes: readonly string[];
  /** The structure itself, for `--write-config` (not printed). */
  readonly structure: DocumentStructure;
}

/** What a TiC file is, from its top-level keys. */
export function ticKindOf(structure: DocumentStructure): InspectReport['tic'] {
  if (structure.format !== 'json' || structure.topLevelKind !== 'object') return undefined;
  const keys = new Set(structure.topLevelKeys);
  const arrays = new Set(structure.arrays.map((a) => a.path));
  const found = TIC_KINDS.find(({ array }) => keys.has(array) && arrays.has(`${array}[*]`));
  if (!found || !TIC_HEADER_KEYS.some((key) => keys.has(key))) return undefined;
  const version = structure.scalars.version;
  return {
    kind: found.kind,
    ...(found.dataset && { dataset: found.dataset }),
    ...(version !== undefined && { version }),
  };
}

interface OpenedInput {
  readonly shown: string;
  readonly name: string;
  readonly compression: 'gzip' | 'none';
  readonly decoded: DecodedStream;
  readonly storedBytesTotal: number | undefined;
}

async function openFile(file: string): Promise<OpenedInput> {
  const path = resolve(file);
  const store = new FileObjectStore(dirname(path));
  const info = await store.head(basename(path)).catch(() => undefined);
  if (!info)
    throw new ConfigError(
      `${file}: no such file. Give the path of a .json, .ndjson or .csv file, or an https URL.`,
    );
  const opened = await openSource(store, basename(path));
  return {
    shown: path,
    name: basename(path),
    compression: opened.compression,
    decoded: opened,
    storedBytesTotal: info.size,
  };
}

/** GET a URL checked like a download's (https, public addresses, every redirect checked and pinned). */
async function openUrl(raw: string, options: UrlSafetyOptions): Promise<OpenedInput> {
  let url = parseSafeUrl(raw, options);
  for (let redirects = 0; ; redirects++) {
    const shown = redactUrl(url);
    const address = await resolveSafeAddress(url, options);
    const { request, response } = await httpGet(
      url,
      address,
      { 'accept-encoding': 'identity' },
      { connectTimeoutMs: CONNECT_TIMEOUT_MS, idleTimeoutMs: IDLE_TIMEOUT_MS, shownUrl: shown },
    );
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      request.destroy();
      if (redirects >= MAX_REDIRECTS) {
        throw new DownloadError(shown, status, `more than ${MAX_REDIRECTS} redirects`);
      }
      const target = new URL(response.headers.location, url);
      try {
        url = parseSafeUrl(target.href, options);
      } catch (error) {
        if (!(error instanceof UnsafeUrlError)) throw error;
        throw new UnsafeUrlError(redactUrl(target), `${error.reason}; redirected to by ${shown}`);
      }
      continue;
    }
    if (status < 200 || status >= 300) {
      request.destroy();
      throw new DownloadError(shown, status, `HTTP ${status} ${response.statusMessage ?? ''}`.trim());
    }
    const length = Number(response.headers['content-length']);
    const { head, stream } = await peek(response);
    const compression = isGzipMagic(head) ? 'gzip' : 'none';
    return {
      shown,
      name: basename(url.pathname),
      compression,
      decoded: decodeStream(stream, compression, shown),
      storedBytesTotal: Number.isFinite(length) ? length : undefined,
    };
  }
}

/** The first bytes of a stream (for its magic number), and the stream with them put back. */
async function peek(stream: Readable): Promise<{ head: Buffer; stream: Readable }> {
  const head = await new Promise<Buffer>((done, fail) => {
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      stream.unshift(chunk);
      done(chunk);
    };
    const onEnd = () => {
      cleanup();
      done(Buffer.alloc(0));
    };
    const onError = (error: Error) => {
      cleanup();
      fail(error);
    };
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
  return { head, stream };
}

function arrayReport(array: RecordArray): ArrayReport {
  return {
    path: array.path,
    count: array.count,
    bytes: array.bytes,
    firstOffset: array.firstOffset >= 0 ? array.firstOffset : undefined,
    largest: array.largest,
    sampled: array.sampled,
    shape: shapeToJson(array.shape),
  };
}

/** Inspect a local file or an http(s) URL (a URL: the first `maxBytes` unless `all`). */
export async function inspectSource(location: string, options: InspectSourceOptions): Promise<InspectReport> {
  const isUrl = /^https?:\/\//i.test(location);
  const input = isUrl ? await openUrl(location, options) : await openFile(location);
  const maxBytes = options.all
    ? undefined
    : (options.maxBytes ?? (isUrl ? DEFAULT_URL_MAX_BYTES : undefined));
  const { decoded } = input;
  const structure = await inspectDocument(decoded.chunks, {
    source: input.shown,
    name: input.name,
    ...(options.format && { format: options.format }),
    maxRecordBytes: options.maxRecordBytes,
    maxDepth: options.maxDepth,
    shouldStop: maxBytes === undefined ? undefined : () => decoded.storedBytesRead() >= maxBytes,
    onProgress: (progress) =>
      options.onProgress?.({
        ...progress,
        storedBytesRead: decoded.storedBytesRead(),
        storedBytesTotal: input.storedBytesTotal,
      }),
  });
  const arrays = structure.arrays.map(arrayReport);
  const largestRecord = arrays
    .filter((a) => a.largest)
    .map((a) => ({ path: a.path, ...a.largest! }))
    .sort((a, b) => b.bytes - a.bytes)[0];
  const notes: string[] = [];
  if (!structure.complete) {
    notes.push(
      `stopped after ${decoded.storedBytesRead()} stored bytes (--max-bytes): counts are lower bounds, and keys ` +
        'after that point are not seen; --all reads everything',
    );
  }
  if (structure.keysNotLearned > 0) {
    notes.push(
      `${structure.keysNotLearned} keys of objects with more than 1,000 keys were validated but not listed ` +
        '(a map keyed by ids is not a record array)',
    );
  }
  if (structure.unnamedKeys.length > 0) {
    notes.push(
      `keys a record path cannot name (they hold ".", "[" or "]"): ${structure.unnamedKeys.map((k) => JSON.stringify(k)).join(', ')}`,
    );
  }
  return {
    source: input.shown,
    compression: input.compression,
    format: structure.format,
    storedBytesRead: decoded.storedBytesRead(),
    storedBytesTotal: input.storedBytesTotal,
    uncompressedBytesRead: structure.uncompressedBytes,
    complete: structure.complete,
    maxBytes,
    topLevel:
      structure.format === 'json'
        ? { kind: structure.topLevelKind, keys: structure.topLevelKeys }
        : undefined,
    scalars: structure.scalars,
    arrays,
    largestRecord,
    depth: structure.depth,
    tic: ticKindOf(structure),
    csv: structure.csv,
    notes,
    structure,
  };
}
