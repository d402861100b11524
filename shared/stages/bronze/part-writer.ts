import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { ObjectStore } from '../../ports/object-store.ts';

const gzipAsync = promisify(gzip);

/** A bronze part as recorded in the manifest. */
export interface BronzePart {
  readonly key: string;
  readonly recordName: string;
  readonly part: number;
  /** Index (within its record stream) of the part's first record. */
  readonly firstRecordIndex: number;
  readonly records: number;
  /** Uncompressed NDJSON bytes. */
  readonly uncompressedBytes: number;
  /** Stored (gzip) bytes and their sha256: what reconciliation re-verifies. */
  readonly bytes: number;
  readonly sha256: string;
}

export interface PartWriterOptions {
  readonly store: ObjectStore;
  readonly recordName: string;
  readonly partKey: (part: number) => string;
  readonly maxRecords: number;
  readonly maxBytes: number;
  /** Shared by every writer of a run, so the in-flight bound covers them all. */
  readonly compressor: BlockCompressor;
  /** JSON string of the source URI, ASCII only (see `asciiJson`), repeated in every line's lineage. */
  readonly sourceJson: string;
  /** Called with each finished part's upload, so the caller can bound how many are in flight. */
  readonly onPartSealed: (upload: Promise<BronzePart>) => void;
  /** Number of the first part this writer writes: a resumed slice continues the numbering. @default 0 */
  readonly firstPart?: number;
}

/** JSON.stringify with non-ASCII escaped, so that string length equals byte length in line prefixes. */
export function asciiJson(value: string): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Lines are staged in 1 MiB blocks; each block is compressed on its own (see PartWriter). */
const BLOCK_BYTES = 1024 * 1024;

/**
 * Compresses blocks on libuv's thread pool, several at once, and bounds how many are in flight.
 * One gzip stream per part would compress on one thread at a time; independent blocks use every core.
 */
export class BlockCompressor {
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly level: number,
    /** Blocks in flight before `drain` makes the producer wait. @default 8 */
    private readonly maxInFlight = 8,
  ) {}

  compress(block: Buffer): Promise<Buffer> {
    this.inFlight++;
    return gzipAsync(block, { level: this.level, chunkSize: BLOCK_BYTES }).finally(() => {
      this.inFlight--;
      this.waiters.shift()?.();
    });
  }

  /** Resolves once fewer than `maxInFlight` blocks are being compressed. */
  async drain(): Promise<void> {
    while (this.inFlight >= this.maxInFlight)
      await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Writes one record stream as a sequence of NDJSON.gz parts. Each line keeps the record's original
 * bytes (no re-serialization) wrapped in its lineage:
 * `{"source":…,"path":"in_network","index":7,"offset":1234,"record":<original bytes>}`.
 * A part is a multi-member gzip file: one member per 1 MiB block, compressed in parallel off the
 * scanning thread. gzip readers (zcat, DuckDB, Athena, Node) read the members as one stream; block
 * boundaries depend only on the input, so the output stays byte-for-byte deterministic.
 */
export class PartWriter {
  private part: number;
  private blocks: Promise<Buffer>[] = [];
  private stage = Buffer.allocUnsafe(BLOCK_BYTES);
  private staged = 0;
  private partRecords = 0;
  private partBytes = 0;
  private firstRecordIndex = 0;
  private readonly linePrefix: string;

  constructor(private readonly options: PartWriterOptions) {
    this.part = options.firstPart ?? 0;
    this.linePrefix = `{"source":${options.sourceJson},"path":${JSON.stringify(options.recordName)},"index":`;
  }

  /** Append one record. `bytes` may be a view of the input: it is copied here. */
  add(index: number, byteOffset: number, bytes: Buffer): void {
    const head = `${this.linePrefix}${index},"offset":${byteOffset},"record":`;
    const lineBytes = head.length + bytes.length + 2;
    const { maxRecords, maxBytes } = this.options;
    if (this.partRecords > 0 && (this.partRecords >= maxRecords || this.partBytes + lineBytes > maxBytes)) {
      this.seal();
    }
    if (this.partRecords === 0) this.firstRecordIndex = index;
    if (this.staged + lineBytes > this.stage.length) {
      this.flushStage();
      if (lineBytes > this.stage.length) this.stage = Buffer.allocUnsafe(lineBytes);
    }
    const stage = this.stage;
    let at = this.staged + stage.write(head, this.staged, 'latin1');
    at += bytes.copy(stage, at);
    stage[at++] = 0x7d; // }
    stage[at++] = 0x0a; // \n
    this.staged = at;
    this.partRecords++;
    this.partBytes += lineBytes;
  }

  /** Seal the open part, if any. */
  finish(): void {
    if (this.partRecords > 0) this.seal();
  }

  /** Number of the next part this writer would start. */
  get nextPart(): number {
    return this.part;
  }

  private flushStage(): void {
    if (this.staged === 0) return;
    // The block now belongs to the compressor; the next lines go to a fresh buffer.
    this.blocks.push(this.options.compressor.compress(this.stage.subarray(0, this.staged)));
    this.stage = Buffer.allocUnsafe(BLOCK_BYTES);
    this.staged = 0;
  }

  private seal(): void {
    this.flushStage();
    const sealed = {
      key: this.options.partKey(this.part),
      recordName: this.options.recordName,
      part: this.part,
      firstRecordIndex: this.firstRecordIndex,
      records: this.partRecords,
      uncompressedBytes: this.partBytes,
    };
    this.options.onPartSealed(this.upload(this.blocks, sealed));
    this.blocks = [];
    this.part++;
    this.partRecords = 0;
    this.partBytes = 0;
  }

  private async upload(
    blocks: Promise<Buffer>[],
    sealed: Omit<BronzePart, 'bytes' | 'sha256'>,
  ): Promise<BronzePart> {
    const body = Buffer.concat(await Promise.all(blocks));
    const sha256 = createHash('sha256').update(body).digest('hex');
    await this.options.store.write(sealed.key, body, { contentType: 'application/x-ndjson' });
    return { ...sealed, bytes: body.length, sha256 };
  }
}
