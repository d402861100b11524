import { Readable } from 'node:stream';
import { createGunzip, gzipSync } from 'node:zlib';
import { MalformedInputError } from '../../shared/errors.ts';
import { JsonRecordScanner, type SkippedValue } from '../../shared/stages/parse/json-record-scanner.ts';
import {
  type CompiledPaths,
  compilePaths,
  defaultRecordName,
} from '../../shared/stages/parse/record-paths.ts';

/** Test helpers around JsonRecordScanner: run it over a buffer cut into chunks, collect what it emits. */

export interface ScanOptions {
  /** Record paths (`in_network[*]`, `[*]`); each record target is named by `defaultRecordName`. */
  readonly records?: readonly string[];
  /** Header paths (`version`, `plan.id`); each header is named by its path. */
  readonly headers?: readonly string[];
  /** @default 'json' */
  readonly format?: 'json' | 'ndjson';
  /** Feed the input in chunks of this many bytes (the last one may be shorter). */
  readonly chunkSize?: number;
  /** Feed the input cut at these byte positions (used instead of `chunkSize`). */
  readonly splitAt?: number | readonly number[];
  /** @default 1 GiB, i.e. no practical limit */
  readonly maxRecordBytes?: number;
  readonly maxDepth?: number;
  /** @default 'test.json' */
  readonly source?: string;
}

export interface ScannedRecord {
  readonly target: number;
  readonly index: number;
  readonly offset: number;
  readonly text: string;
}

export interface ScanResult {
  readonly records: ScannedRecord[];
  readonly headers: Record<string, unknown>;
  readonly counts: number[];
  readonly bytesScanned: number;
  /** Values no path names (`JsonRecordScanner.skipped`), and how many there were. */
  readonly skipped: { readonly values: readonly SkippedValue[]; readonly count: number };
}

export const NO_LIMIT = 1024 * 1024 * 1024;

/** Compile the options' record and header paths as the scanner expects them. */
export function pathsOf(options: Pick<ScanOptions, 'records' | 'headers'>): CompiledPaths {
  return compilePaths(
    (options.records ?? []).map((path) => ({ name: defaultRecordName(path), path })),
    (options.headers ?? []).map((path) => ({ name: path, path })),
  );
}

/** A scanner over the options, plus the records it has emitted so far (copied out of the chunks). */
export function makeScanner(options: ScanOptions): {
  scanner: JsonRecordScanner;
  records: ScannedRecord[];
  result: () => ScanResult;
} {
  const records: ScannedRecord[] = [];
  const scanner = new JsonRecordScanner(
    {
      source: options.source ?? 'test.json',
      format: options.format ?? 'json',
      paths: pathsOf(options),
      maxRecordBytes: options.maxRecordBytes ?? NO_LIMIT,
      ...(options.maxDepth === undefined ? {} : { maxDepth: options.maxDepth }),
    },
    (target, index, offset, bytes) => {
      records.push({ target, index, offset, text: bytes.toString('utf8') });
    },
  );
  return {
    scanner,
    records,
    result: () => ({
      records,
      headers: scanner.headers,
      counts: [...scanner.recordCounts],
      bytesScanned: scanner.bytesScanned,
      skipped: { values: [...scanner.skipped], count: scanner.skippedCount },
    }),
  };
}

/** The chunks `buf` is cut into by `chunkSize` or `splitAt` (views into `buf`, not copies). */
export function* chunksOf(
  buf: Buffer,
  options: Pick<ScanOptions, 'chunkSize' | 'splitAt'>,
): Generator<Buffer> {
  if (options.splitAt !== undefined) {
    const cuts = (typeof options.splitAt === 'number' ? [options.splitAt] : [...options.splitAt])
      .filter((p) => p > 0 && p < buf.length)
      .sort((a, b) => a - b);
    let start = 0;
    for (const cut of cuts) {
      if (cut === start) continue;
      yield buf.subarray(start, cut);
      start = cut;
    }
    yield buf.subarray(start);
    return;
  }
  const size = options.chunkSize ?? buf.length;
  if (size <= 0 && buf.length > 0) throw new Error(`bad chunkSize ${size}`);
  if (buf.length === 0) {
    yield buf;
    return;
  }
  for (let start = 0; start < buf.length; start += size) yield buf.subarray(start, start + size);
}

/** Scan the given chunks as they are: the scanner may overwrite line breaks inside records in them. */
export function scanChunks(chunks: Iterable<Buffer>, options: ScanOptions): ScanResult {
  const { scanner, result } = makeScanner(options);
  for (const chunk of chunks) scanner.write(chunk);
  scanner.end();
  return result();
}

/** Scan a copy of `buf`, fed whole, in `chunkSize` pieces, or cut at `splitAt`. */
export function scanBuffer(buf: Buffer | string, options: ScanOptions = {}): ScanResult {
  const copy = Buffer.from(buf);
  return scanChunks(chunksOf(copy, options), options);
}

/** Scan chunks that arrive asynchronously; stops reading (and destroys a stream source) on the first error. */
export async function scanAsyncChunks(
  chunks: AsyncIterable<Buffer>,
  options: ScanOptions,
): Promise<ScanResult> {
  const { scanner, result } = makeScanner(options);
  for await (const chunk of chunks) scanner.write(chunk);
  scanner.end();
  return result();
}

export interface GzipScanOptions extends ScanOptions {
  /** chunkSize of the gunzip stream, i.e. the size of the decompressed chunks fed. @default 64 (zlib's minimum) */
  readonly gunzipChunkSize?: number;
  /** Cut the input into this many parts, gzip each, and concatenate them (multi-member gzip). @default 1 */
  readonly members?: number;
  /** Feed the compressed bytes to gunzip in pieces of this size. @default 97 */
  readonly compressedChunkSize?: number;
}

/** gzip `buf` as one member, or as several concatenated members, one per equal part of `buf`. */
export function gzipMembers(buf: Buffer, members = 1): Buffer {
  const parts: Buffer[] = [];
  const size = Math.ceil(buf.length / members);
  for (let m = 0; m < members; m++) parts.push(gzipSync(buf.subarray(m * size, (m + 1) * size)));
  return Buffer.concat(parts);
}

/** gzip `buf`, then decompress it with a streaming gunzip and scan its output chunk by chunk. */
export async function scanGzipBuffer(
  buf: Buffer | string,
  options: GzipScanOptions = {},
): Promise<ScanResult> {
  const compressed = gzipMembers(Buffer.from(buf), options.members ?? 1);
  const step = options.compressedChunkSize ?? 97;
  const pieces: Buffer[] = [];
  for (let i = 0; i < compressed.length; i += step) pieces.push(compressed.subarray(i, i + step));
  const gunzip = Readable.from(pieces).pipe(createGunzip({ chunkSize: options.gunzipChunkSize ?? 64 }));
  try {
    return await scanAsyncChunks(gunzip, options);
  } finally {
    gunzip.destroy();
  }
}

export type Decision = 'accept' | 'reject';

export type Outcome<T> =
  | { readonly decision: 'accept'; readonly value: T }
  | { readonly decision: 'reject'; readonly error: MalformedInputError };

/**
 * Run `fn` and classify it: returns normally → accept; throws MalformedInputError → reject. Any other
 * exception (TypeError, RangeError, SyntaxError from an inner JSON.parse…) is rethrown: it is a bug.
 */
export function outcomeOf<T>(fn: () => T): Outcome<T> {
  try {
    return { decision: 'accept', value: fn() };
  } catch (error) {
    if (error instanceof MalformedInputError) return { decision: 'reject', error };
    throw error;
  }
}

export async function outcomeOfAsync<T>(fn: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { decision: 'accept', value: await fn() };
  } catch (error) {
    if (error instanceof MalformedInputError) return { decision: 'reject', error };
    throw error;
  }
}

/** What JSON.parse says about the UTF-8 decoding of `buf`. */
export function jsonParseDecision(buf: Buffer): Decision {
  try {
    JSON.parse(buf.toString('utf8'));
    return 'accept';
  } catch {
    return 'reject';
  }
}
