import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';
import type { ObjectStore } from '../../ports/object-store.ts';
import { withStreamOptions } from '../parse/open-source.ts';

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
  readonly compressionLevel: number;
  /** JSON string of the source URI, ASCII only (see `asciiJson`), repeated in every line's lineage. */
  readonly sourceJson: string;
  /** Called with each finished part's upload, so the caller can bound how many are in flight. */
  readonly onPartSealed: (upload: Promise<BronzePart>) => void;
}

/** JSON.stringify with non-ASCII escaped, so that string length equals byte length in line prefixes. */
export function asciiJson(value: string): string {
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Lines are staged in 1 MiB buffers before they go to gzip: one zlib call per MiB, not per record. */
const STAGE_BYTES = 1024 * 1024;
const COMPRESS_AHEAD_BYTES = 8 * STAGE_BYTES;

/**
 * Writes one record stream as a sequence of NDJSON.gz parts. Each line keeps the record's original
 * bytes (no re-serialization) wrapped in its lineage:
 * `{"source":…,"path":"in_network","index":7,"offset":1234,"record":<original bytes>}`.
 * Compression runs on libuv's thread pool (zlib streams are asynchronous), off the scanning thread.
 */
export class PartWriter {
  private part = 0;
  private gzip: Gzip | undefined;
  private compressed: Buffer[] = [];
  private stage = Buffer.allocUnsafe(STAGE_BYTES);
  private staged = 0;
  private partRecords = 0;
  private partBytes = 0;
  private firstRecordIndex = 0;
  private readonly linePrefix: string;

  constructor(private readonly options: PartWriterOptions) {
    this.linePrefix = `{"source":${options.sourceJson},"path":${JSON.stringify(options.recordName)},"index":`;
  }

  /** Whether any part's gzip stream is backed up; the caller then waits before feeding more input. */
  get needsDrain(): boolean {
    return this.gzip?.writableNeedDrain ?? false;
  }

  async drain(): Promise<void> {
    if (this.gzip?.writableNeedDrain) await once(this.gzip, 'drain');
  }

  /** Append one record. `bytes` may be a view of the input: it is copied here. */
  add(index: number, byteOffset: number, bytes: Buffer): void {
    const head = `${this.linePrefix}${index},"offset":${byteOffset},"record":`;
    const lineBytes = head.length + bytes.length + 2;
    const { maxRecords, maxBytes } = this.options;
    if (this.partRecords > 0 && (this.partRecords >= maxRecords || this.partBytes + lineBytes > maxBytes)) {
      this.seal();
    }
    if (!this.gzip) this.openPart(index);
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

  private openPart(firstRecordIndex: number): void {
    this.firstRecordIndex = firstRecordIndex;
    this.compressed = [];
    // Compression runs on libuv's thread pool. A deep write buffer lets it lag the scanner by a few
    // stages instead of stalling it at each one, and a 1 MiB output buffer (zlib's default is 16 KiB)
    // lets it compress a whole stage per round trip instead of waiting for the busy main thread
    // every 16 KiB: together they turned a serialized 0.9 cores into two busy ones.
    const gzip = createGzip(
      withStreamOptions(
        { level: this.options.compressionLevel, chunkSize: STAGE_BYTES },
        { writableHighWaterMark: COMPRESS_AHEAD_BYTES },
      ),
    );
    const compressed = this.compressed;
    gzip.on('data', (chunk: Buffer) => compressed.push(chunk));
    this.gzip = gzip;
  }

  private flushStage(): void {
    if (this.staged === 0) return;
    // Hand the staged bytes to zlib and start a fresh buffer: zlib reads them asynchronously.
    this.gzip!.write(this.stage.subarray(0, this.staged));
    this.stage = Buffer.allocUnsafe(STAGE_BYTES);
    this.staged = 0;
  }

  private seal(): void {
    this.flushStage();
    const gzip = this.gzip!;
    const compressed = this.compressed;
    const sealed = {
      key: this.options.partKey(this.part),
      recordName: this.options.recordName,
      part: this.part,
      firstRecordIndex: this.firstRecordIndex,
      records: this.partRecords,
      uncompressedBytes: this.partBytes,
    };
    this.options.onPartSealed(this.upload(gzip, compressed, sealed));
    this.gzip = undefined;
    this.part++;
    this.partRecords = 0;
    this.partBytes = 0;
  }

  private async upload(
    gzip: Gzip,
    compressed: Buffer[],
    sealed: Omit<BronzePart, 'bytes' | 'sha256'>,
  ): Promise<BronzePart> {
    gzip.end();
    await once(gzip, 'end');
    const body = Buffer.concat(compressed);
    const sha256 = createHash('sha256').update(body).digest('hex');
    await this.options.store.write(sealed.key, body, { contentType: 'application/x-ndjson' });
    return { ...sealed, bytes: body.length, sha256 };
  }
}
