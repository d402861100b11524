import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import { parseExact } from '../../contracts/exact-json.ts';
import { PipelineError } from '../../errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';

const gunzipAsync = promisify(gunzip);

/** One bronze line: a record and its lineage. */
export interface BronzeRecord {
  readonly source: string;
  readonly path: string;
  readonly index: number;
  readonly offset: number;
  readonly record: unknown;
}

/** A bronze part read back: its bytes' sha256 and its text (NDJSON; read its lines with `bronzeLines`). */
export interface BronzePartContent {
  /** The stored (gzip'd) bytes' sha256; absent when the reader asked not to hash. */
  readonly sha256?: string;
  readonly bytes: number;
  readonly text: Buffer;
}

/**
 * The lines of a part's text, decoded one at a time (a last line without a newline included). No
 * Buffer per line is kept for the whole part: making those slices was ≈ 3 % of a silver worker's time,
 * and they outlived the young generation.
 */
export function* bronzeLines(text: Buffer): Generator<string> {
  let start = 0;
  for (const end of lineEnds(text)) {
    yield text.toString('utf8', start, end);
    start = end + 1;
  }
}

/** Where each line of a part's text ends (its newline, or the end of a last line without one). */
export function* lineEnds(text: Buffer): Generator<number> {
  let start = 0;
  for (let end = text.indexOf(0x0a); end !== -1; end = text.indexOf(0x0a, start)) {
    yield end;
    start = end + 1;
  }
  if (start < text.length) yield text.length;
}

/** Read and validate a committed bronze manifest. */
export async function readBronzeManifest(store: ObjectStore, key: string): Promise<BronzeManifest> {
  const text = await readText(store, key);
  // Header values keep the exact digits of integers beyond 2^53.
  const parsed = BronzeManifest.safeParse(parseExact(text));
  if (!parsed.success) {
    throw new PipelineError(`${store.uri(key)} is not a valid bronze manifest: ${parsed.error.message}`);
  }
  return parsed.data;
}

/** What `readBronzePart` is told about the part it reads. */
export interface BronzePartToRead {
  readonly key: string;
  /** The manifest's size of the part's text: it is gunzipped into one buffer of that size. */
  readonly uncompressedBytes?: number;
}

/** Output chunks of a gunzip when the size is unknown: a part is ~30 MB, and each chunk is a callback. */
const UNKNOWN_SIZE_CHUNK = 1024 * 1024;
/** Bounds on a buffer sized from the manifest: a wrong size must neither allocate without bound nor crawl. */
const MIN_SINGLE_CHUNK = 64 * 1024;
const MAX_SINGLE_CHUNK = 1024 * 1024 * 1024;

/**
 * Read a part whole (parts are bounded by `partMaxBytes`) and uncompress it. With its size known, the
 * text is inflated into one buffer: no chunks to concatenate (half the copying, ~30 MB less at once).
 * `sha256: false` skips hashing the stored bytes, for a reader that does not check them.
 */
export async function readBronzePart(
  store: ObjectStore,
  part: BronzePartToRead,
  options: { readonly sha256?: boolean } = {},
): Promise<BronzePartContent> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(part.key)) chunks.push(chunk as Buffer);
  const stored = Buffer.concat(chunks);
  const size = part.uncompressedBytes;
  // One byte more than the text, so zlib's first buffer holds it all (and stops short of filling it).
  const chunkSize =
    size === undefined
      ? UNKNOWN_SIZE_CHUNK
      : Math.min(Math.max(size + 1, MIN_SINGLE_CHUNK), MAX_SINGLE_CHUNK);
  const text = await gunzipAsync(stored, { chunkSize });
  const sha256 = options.sha256 === false ? undefined : createHash('sha256').update(stored).digest('hex');
  return { sha256, bytes: stored.length, text };
}

export async function readText(store: ObjectStore, key: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
