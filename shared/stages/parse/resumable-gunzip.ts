/**
 * A gzip decompressor that can stop at (almost) any uncompressed position and resume later, in another
 * process, from a ranged read of the compressed object: the technique of zlib's `examples/zran.c`.
 *
 * Deflate data can only be entered at a block boundary, with the 32 KiB of output before it (the window
 * that back-references reach into) and, since blocks are bit-aligned, the few bits of the boundary's byte
 * that belong to the previous block. Node's zlib does not stop at block boundaries, so this drives pako's
 * pure-JS port of zlib's inflate directly with `Z_BLOCK`, which returns at each one. The gzip framing
 * (header, CRC-32 and ISIZE trailer, concatenated members) is handled here, so that the running CRC of a
 * member is a plain number that a checkpoint carries and the resumed run verifies at the member's end.
 *
 * Recording a boundary costs a few numbers; the window is cut from the kept output history only when a
 * checkpoint is asked for.
 */
import zlib from 'node:zlib';
// @ts-expect-error -- as above; typed by PakoCrc32 below.
import pakoCrc32Module from 'pako/lib/zlib/crc32.js';
// @ts-expect-error -- pako's low-level zlib port ships no type declarations; typed by PakoInflate below.
import pakoInflateModule from 'pako/lib/zlib/inflate.js';
// @ts-expect-error -- as above; typed by ZStreamConstructor below.
import pakoZStreamModule from 'pako/lib/zlib/zstream.js';

/** The fields of pako's InflateState this module reads or sets (see node_modules/pako/lib/zlib/inflate.js). */
interface InflateState {
  /** Bit accumulator: input bits read from the stream but not yet used, lowest first. */
  hold: number;
  /** Number of valid bits in `hold`. */
  bits: number;
  /** log2 of the window size; the window's size once it is in use, 0 before. */
  wbits: number;
  wsize: number;
  window: Uint8Array | null;
}

/** pako's ZStream (node_modules/pako/lib/zlib/zstream.js). */
interface ZStream {
  input: Uint8Array | null;
  next_in: number;
  avail_in: number;
  output: Uint8Array | null;
  next_out: number;
  avail_out: number;
  msg: string;
  /** After inflate(): bits unused in `hold` + 64 if the last block was seen + 128 if at a block boundary. */
  data_type: number;
  state: InflateState | null;
}

interface PakoInflate {
  inflateInit2(strm: ZStream, windowBits: number): number;
  inflateReset(strm: ZStream): number;
  inflate(strm: ZStream, flush: number): number;
  inflateSetDictionary(strm: ZStream, dictionary: Uint8Array): number;
}
type PakoCrc32 = (crc: number, buf: Uint8Array, len: number, pos: number) => number;
type ZStreamConstructor = new () => ZStream;

const pakoInflate = pakoInflateModule as PakoInflate;
const pakoCrc32 = pakoCrc32Module as PakoCrc32;
const ZStreamCtor = pakoZStreamModule as ZStreamConstructor;

// zlib constants (pako/lib/zlib/constants.js).
const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_BUF_ERROR = -5;
const Z_BLOCK = 5;
/** Negative window bits: raw deflate, no zlib/gzip wrapper (the gzip framing is parsed here). */
const RAW_DEFLATE_WINDOW_BITS = -15;
/** data_type bits after inflate() with Z_BLOCK. */
const DT_LAST_BLOCK_SEEN = 64;
const DT_BLOCK_BOUNDARY = 128;

/** Deflate back-references reach at most 32 KiB back. */
const WINDOW_BYTES = 32 * 1024;
/** Output is produced into buffers of this size and returned as views of them, never copied. */
const OUT_BUFFER_BYTES = 1024 * 1024;
const TWO_32 = 0x1_0000_0000;

// gzip header flags (RFC 1952).
const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const FRESERVED = 0xe0;

/**
 * CRC-32 of `buf[start, end)` continuing from `crc` (unsigned). Node's native zlib.crc32 (Node ≥ 20.15)
 * runs at several GB/s; pako's table-driven one at ~350 MB/s would cost more than the inflate itself.
 */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
function crc32(crc: number, buf: Uint8Array, start: number, end: number): number {
  if (end <= start) return crc;
  if (nativeCrc32) return nativeCrc32(buf.subarray(start, end), crc);
  return pakoCrc32(crc, buf, end - start, start) >>> 0;
}

/** Where and how to resume decompression: JSON-serializable except `window`. */
export interface GunzipCheckpoint {
  /** Offset in the compressed object of the first byte to read when resuming. */
  readonly compressedOffset: number;
  /** Bits of the byte at compressedOffset already consumed (0-7). */
  readonly bitOffset: number;
  /** Uncompressed output position (over all members) at this point. */
  readonly uncompressedOffset: number;
  /** 'member-start': resume by parsing a gzip header at compressedOffset (bitOffset 0, empty window).
   *  'deflate': resume inside a member's deflate stream at a block boundary. */
  readonly at: 'member-start' | 'deflate';
  /** CRC32 and byte count of the current member's output so far (for the trailer check). */
  readonly memberCrc32: number;
  readonly memberBytes: number;
  /** Up to 32 KiB of the member's output just before this point (empty at member start). */
  readonly window: Buffer;
}

/**
 * The compressed input is not valid gzip: bad header, corrupt deflate data, CRC/length mismatch, truncation,
 * trailing data. The message is `${source}: ${detail}`; callers in the pipeline map it to
 * MalformedInputError(source, compressedOffset, detail), as openSource does for Node's zlib errors.
 */
export class GzipFormatError extends Error {
  override name = 'GzipFormatError';
  constructor(
    readonly source: string,
    /** Where in the compressed object the problem was found. */
    readonly compressedOffset: number,
    /** What is wrong, with the compressed byte offset, without the source. */
    readonly detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

/** A block boundary or member start: everything a checkpoint needs except the window. */
interface Boundary {
  readonly at: 'member-start' | 'deflate';
  readonly compressedOffset: number;
  readonly bitOffset: number;
  readonly uncompressedOffset: number;
  readonly memberCrc32: number;
  readonly memberBytes: number;
}

/** A returned output chunk kept for building windows. */
interface HistoryChunk {
  readonly start: number;
  readonly bytes: Buffer;
}

type Phase = 'header' | 'deflate' | 'trailer' | 'ended' | 'failed';

// Steps of the gzip header parser, in stream order.
const H_FIXED = 0;
const H_XLEN = 1;
const H_EXTRA = 2;
const H_NAME = 3;
const H_COMMENT = 4;
const H_HCRC = 5;
const H_DONE = 6;

/** A FIFO array that drops from the front in O(1) amortized. */
class Queue<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  at(i: number): T {
    return this.items[this.head + i]!;
  }
  last(): T | undefined {
    return this.length > 0 ? this.items[this.items.length - 1] : undefined;
  }
  push(item: T): void {
    this.items.push(item);
  }
  dropFront(n: number): void {
    if (n <= 0) return;
    this.head += n;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

export class ResumableGunzip {
  private readonly source: string;
  private readonly historyBytes: number;
  private phase: Phase;
  private failure: Error | null = null;

  private readonly strm: ZStream = new ZStreamCtor();
  /** Bits of the first input byte that were consumed before the checkpoint (deflate resume), or 0. */
  private primeBitOffset = 0;
  /** Absolute compressed offset of index 0 of the buffer being written, and of the end of input so far. */
  private inputBase: number;
  private consumed: number;

  private total: number;
  private memberCrc = 0;
  private memberBytes = 0;
  /** Compressed offset of the current member's header, or -1 if this run resumed inside the member. */
  private memberStart: number;

  // gzip header parser
  private headerStep = H_FIXED;
  private headerHave = 0;
  private readonly headerFixed = new Uint8Array(10);
  private headerFlags = 0;
  private headerCrc = 0;
  private headerField = 0;
  private headerFieldLeft = 0;

  // trailer parser
  private readonly trailer = new Uint8Array(8);
  private trailerHave = 0;
  private trailerStart = 0;

  // output
  private out: Buffer = Buffer.allocUnsafeSlow(OUT_BUFFER_BYTES);
  private outU8: Uint8Array = new Uint8Array(this.out.buffer, this.out.byteOffset, this.out.length);
  private outPos = 0;
  private emittedTo = 0;

  // checkpoint support
  private readonly boundaries = new Queue<Boundary>();
  private readonly history = new Queue<HistoryChunk>();
  /** Uncompressed start of the most recently returned output; checkpointAt must reach back to it. */
  private lastBatchStart: number;
  private keepFrom: number;

  /** Start at the beginning of a gzip object, or resume from a checkpoint; in that case the caller feeds
   *  compressed bytes starting at `from.compressedOffset`. `source` names the input in error messages.
   *  `historyBytes` (default 0): checkpointAt also reaches this many bytes back from `uncompressedOffset`,
   *  for callers that checkpoint at the start of a record that began in earlier output. */
  constructor(options: { source: string; from?: GunzipCheckpoint; historyBytes?: number }) {
    this.source = options.source;
    const historyBytes = options.historyBytes ?? 0;
    if (!Number.isSafeInteger(historyBytes) || historyBytes < 0) {
      throw new RangeError(`historyBytes must be a non-negative integer, got ${historyBytes}`);
    }
    this.historyBytes = historyBytes;
    const from = options.from;
    if (from) validateCheckpoint(from);
    const start: Boundary = from
      ? {
          at: from.at,
          compressedOffset: from.compressedOffset,
          bitOffset: from.bitOffset,
          uncompressedOffset: from.uncompressedOffset,
          memberCrc32: from.memberCrc32,
          memberBytes: from.memberBytes,
        }
      : {
          at: 'member-start',
          compressedOffset: 0,
          bitOffset: 0,
          uncompressedOffset: 0,
          memberCrc32: 0,
          memberBytes: 0,
        };
    this.inputBase = this.consumed = start.compressedOffset;
    this.total = this.lastBatchStart = this.keepFrom = start.uncompressedOffset;
    this.boundaries.push(start);
    if (start.at === 'member-start') {
      this.phase = 'header';
      this.memberStart = start.compressedOffset;
    } else {
      this.phase = 'deflate';
      this.memberStart = -1;
      this.memberCrc = start.memberCrc32;
      this.memberBytes = start.memberBytes;
      this.initInflate();
      const window = from!.window;
      if (window.length > 0) {
        const copy = Buffer.from(window);
        this.history.push({ start: start.uncompressedOffset - copy.length, bytes: copy });
        pakoInflate.inflateSetDictionary(this.strm, copy);
      }
      this.primeBitOffset = start.bitOffset;
    }
  }

  /** Total uncompressed bytes output so far (including the resumed-from offset). */
  get uncompressedOffset(): number {
    return this.total;
  }

  /** Compressed bytes consumed so far (absolute offset in the object). */
  get compressedOffset(): number {
    return this.consumed;
  }

  /**
   * Feed the next compressed bytes; returns the decompressed output they produced, in order (may be
   * empty). Chunks are views of internal 1 MiB buffers, kept for later windows: do not modify them.
   */
  write(compressed: Buffer): Buffer[] {
    this.assertOpen();
    const input = new Uint8Array(compressed.buffer, compressed.byteOffset, compressed.byteLength);
    const n = input.length;
    const chunks: Buffer[] = [];
    const batchStart = this.total;
    this.inputBase = this.consumed;
    try {
      let i = 0;
      if (this.primeBitOffset > 0 && n > 0) {
        // zran's inflatePrime(strm, 8 - bitOffset, byte >> bitOffset): the byte's unread high bits.
        const state = this.strm.state!;
        state.hold = input[0]! >>> this.primeBitOffset;
        state.bits = 8 - this.primeBitOffset;
        this.primeBitOffset = 0;
        i = 1;
      }
      while (i < n) {
        if (this.phase === 'header') i = this.parseHeader(input, i);
        else if (this.phase === 'deflate') i = this.inflateFrom(input, i, chunks);
        else i = this.parseTrailer(input, i);
      }
    } catch (error) {
      this.fail(error);
    } finally {
      this.strm.input = null;
    }
    this.consumed = this.inputBase + n;
    this.emit(chunks);
    if (chunks.length > 0) this.lastBatchStart = batchStart;
    this.prune();
    return chunks;
  }

  /** No more input: throws GzipFormatError if the last member is incomplete. Returns any final output. */
  end(): Buffer[] {
    this.assertOpen();
    const at = this.consumed;
    if (this.phase === 'header' && this.headerStep === H_FIXED && this.headerHave === 0) {
      if (at === 0) this.fail(this.formatError(0, 'the input is empty, not gzip data'));
    } else {
      const where =
        this.phase === 'header'
          ? 'in a gzip header'
          : this.phase === 'trailer'
            ? 'in a gzip member trailer'
            : 'in the deflate data of a gzip member';
      this.fail(
        this.formatError(
          at,
          `the gzip stream ends early (truncated file?) at compressed byte ${at}, ${where}`,
        ),
      );
    }
    this.phase = 'ended';
    this.out = Buffer.alloc(0);
    this.outU8 = new Uint8Array(0);
    return [];
  }

  /**
   * A checkpoint from which decompression can resume and reproduce the output from uncompressed
   * position `position` on: the latest deflate block boundary (or member start) at or before `position`,
   * plus `skip` = position - checkpoint.uncompressedOffset output bytes the resumer must discard.
   * Works for any `position` from the start of the most recently returned output (or `historyBytes`
   * before `uncompressedOffset`, whichever is earlier) up to `uncompressedOffset`.
   */
  checkpointAt(position: number): { checkpoint: GunzipCheckpoint; skip: number } {
    const oldest = this.boundaries.at(0).uncompressedOffset;
    if (!Number.isSafeInteger(position) || position < oldest || position > this.total) {
      throw new RangeError(
        `${this.source}: cannot checkpoint at uncompressed position ${position}: only positions ` +
          `${oldest}..${this.total} are kept`,
      );
    }
    // The last boundary at or before `position` (boundaries are in uncompressed order).
    let lo = 0;
    let hi = this.boundaries.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.boundaries.at(mid).uncompressedOffset <= position) lo = mid;
      else hi = mid - 1;
    }
    const b = this.boundaries.at(lo);
    const windowBytes = b.at === 'deflate' ? Math.min(WINDOW_BYTES, b.memberBytes) : 0;
    const checkpoint: GunzipCheckpoint = {
      compressedOffset: b.compressedOffset,
      bitOffset: b.bitOffset,
      uncompressedOffset: b.uncompressedOffset,
      at: b.at,
      memberCrc32: b.memberCrc32,
      memberBytes: b.memberBytes,
      window: this.copyHistory(b.uncompressedOffset - windowBytes, b.uncompressedOffset),
    };
    return { checkpoint, skip: position - b.uncompressedOffset };
  }

  // --- input -----------------------------------------------------------------------------------------

  /** Parse (part of) a gzip header from input[i..]; returns the index after what it consumed. */
  private parseHeader(input: Uint8Array, i: number): number {
    const n = input.length;
    while (i < n && this.phase === 'header') {
      switch (this.headerStep) {
        case H_FIXED: {
          const b = input[i]!;
          const k = this.headerHave;
          if ((k === 0 && b !== 0x1f) || (k === 1 && b !== 0x8b)) {
            throw this.memberStart > 0
              ? this.formatError(
                  this.memberStart,
                  `trailing data after the last gzip member at compressed byte ${this.memberStart}`,
                )
              : this.formatError(
                  this.memberStart,
                  'not gzip data (no gzip magic bytes 1f 8b at compressed byte 0)',
                );
          }
          if (k === 2 && b !== 8) {
            throw this.formatError(
              this.abs(i),
              `unknown compression method ${b} in the gzip header at compressed byte ${this.abs(i)}`,
            );
          }
          if (k === 3 && (b & FRESERVED) !== 0) {
            throw this.formatError(
              this.abs(i),
              `reserved gzip header flags set (0x${b.toString(16)}) at compressed byte ${this.abs(i)}`,
            );
          }
          this.headerFixed[k] = b;
          this.headerHave = k + 1;
          i++;
          if (this.headerHave === 10) {
            this.headerFlags = this.headerFixed[3]!;
            this.headerCrc = crc32(0, this.headerFixed, 0, 10);
            this.nextHeaderStep(H_XLEN);
          }
          break;
        }
        case H_XLEN:
        case H_HCRC: {
          // Two little-endian bytes.
          const b = input[i]!;
          if (this.headerStep === H_XLEN) this.headerCrc = crc32(this.headerCrc, input, i, i + 1);
          this.headerField |= b << (8 * this.headerHave);
          this.headerHave++;
          i++;
          if (this.headerHave === 2) {
            if (this.headerStep === H_XLEN) {
              this.headerFieldLeft = this.headerField;
              this.nextHeaderStep(H_EXTRA);
            } else {
              if (this.headerField !== (this.headerCrc & 0xffff)) {
                throw this.formatError(
                  this.abs(i - 2),
                  `gzip header CRC mismatch at compressed byte ${this.abs(i - 2)}`,
                );
              }
              this.nextHeaderStep(H_DONE);
            }
          }
          break;
        }
        case H_EXTRA: {
          const take = Math.min(this.headerFieldLeft, n - i);
          this.headerCrc = crc32(this.headerCrc, input, i, i + take);
          this.headerFieldLeft -= take;
          i += take;
          if (this.headerFieldLeft === 0) this.nextHeaderStep(H_NAME);
          break;
        }
        case H_NAME:
        case H_COMMENT: {
          // Zero-terminated strings.
          const zero = input.indexOf(0, i);
          const stop = zero < 0 ? n : zero + 1;
          this.headerCrc = crc32(this.headerCrc, input, i, stop);
          i = stop;
          if (zero >= 0) this.nextHeaderStep(this.headerStep + 1);
          break;
        }
        default:
          throw new Error(`internal error: gzip header step ${this.headerStep}`);
      }
    }
    return i;
  }

  /** Move to header step `step`, or the next one after it that the header's flags call for. */
  private nextHeaderStep(step: number): void {
    const flags = this.headerFlags;
    if (step === H_XLEN && !(flags & FEXTRA)) step = H_NAME;
    if (step === H_NAME && !(flags & FNAME)) step = H_COMMENT;
    if (step === H_COMMENT && !(flags & FCOMMENT)) step = H_HCRC;
    if (step === H_HCRC && !(flags & FHCRC)) step = H_DONE;
    this.headerStep = step;
    this.headerHave = 0;
    this.headerField = 0;
    if (step === H_DONE) {
      this.initInflate();
      this.memberCrc = 0;
      this.memberBytes = 0;
      this.phase = 'deflate';
    }
  }

  /** A fresh raw inflate state for a new member (or a resume). */
  private initInflate(): void {
    const strm = this.strm;
    if (strm.state === null) {
      pakoInflate.inflateInit2(strm, RAW_DEFLATE_WINDOW_BITS);
      return;
    }
    pakoInflate.inflateReset(strm);
    // pako's inflateReset zeroes wsize but keeps the allocated window, and its updatewindow only sets
    // wsize when it allocates one: the window of the next member would never fill ("invalid distance too
    // far back" in any member after the first). zlib's updatewindow sets wsize when it is 0; do it here.
    const state = strm.state;
    if (state.window !== null) state.wsize = 1 << state.wbits;
  }

  /** Inflate from input[i..] until the input is used up or the member's deflate stream ends. */
  private inflateFrom(input: Uint8Array, i: number, chunks: Buffer[]): number {
    const strm = this.strm;
    const state = strm.state!;
    strm.input = input;
    strm.next_in = i;
    strm.avail_in = input.length - i;
    for (;;) {
      if (this.outPos === this.outU8.length) this.newOutBuffer(chunks);
      const start = this.outPos;
      strm.output = this.outU8;
      strm.next_out = start;
      strm.avail_out = this.outU8.length - start;
      const ret = pakoInflate.inflate(strm, Z_BLOCK);
      const end = strm.next_out;
      if (end > start) {
        this.memberCrc = crc32(this.memberCrc, this.outU8, start, end);
        this.memberBytes += end - start;
        this.total += end - start;
        this.outPos = end;
      }
      if (ret === Z_STREAM_END) {
        // The deflate stream ends byte-aligned; whole bytes still in the bit buffer belong to the trailer.
        const spare = state.bits >>> 3;
        for (let k = 0; k < spare; k++) this.trailer[k] = (state.hold >>> (8 * k)) & 0xff;
        this.trailerHave = spare;
        this.trailerStart = this.abs(strm.next_in) - spare;
        this.phase = 'trailer';
        return strm.next_in;
      }
      if (ret !== Z_OK && ret !== Z_BUF_ERROR) {
        const bitPos = this.abs(strm.next_in) * 8 - state.bits;
        const at = Math.max(0, Math.ceil(bitPos / 8) - 1);
        throw this.formatError(
          at,
          `corrupt gzip data at compressed byte ${at}: ${strm.msg || `inflate error ${ret}`}`,
        );
      }
      const dataType = strm.data_type;
      if (dataType & DT_BLOCK_BOUNDARY) {
        // After the last block the trailer follows, not another block: no resumable boundary there.
        // Go on at once to the end of the stream, which needs no more input.
        if (dataType & DT_LAST_BLOCK_SEEN) continue;
        this.recordBoundary();
      }
      if (strm.avail_in === 0 && strm.avail_out > 0) return input.length;
      if (ret === Z_BUF_ERROR && strm.avail_out > 0) {
        throw new Error(
          `internal error: inflate made no progress at compressed byte ${this.abs(strm.next_in)}`,
        );
      }
    }
  }

  /** Record the block boundary inflate just stopped at (cheap: no window is copied). */
  private recordBoundary(): void {
    const bitPos = this.abs(this.strm.next_in) * 8 - this.strm.state!.bits;
    const compressedOffset = Math.floor(bitPos / 8);
    const last = this.boundaries.last();
    if (
      last &&
      last.uncompressedOffset === this.total &&
      last.compressedOffset * 8 + last.bitOffset === bitPos
    ) {
      return;
    }
    this.boundaries.push({
      at: 'deflate',
      compressedOffset,
      bitOffset: bitPos - compressedOffset * 8,
      uncompressedOffset: this.total,
      memberCrc32: this.memberCrc,
      memberBytes: this.memberBytes,
    });
  }

  /** Collect (part of) the 8-byte member trailer from input[i..] and check it once complete. */
  private parseTrailer(input: Uint8Array, i: number): number {
    const take = Math.min(8 - this.trailerHave, input.length - i);
    this.trailer.set(input.subarray(i, i + take), this.trailerHave);
    this.trailerHave += take;
    i += take;
    if (this.trailerHave < 8) return i;
    const t = this.trailer;
    const crc = (t[0]! | (t[1]! << 8) | (t[2]! << 16) | (t[3]! << 24)) >>> 0;
    const isize = (t[4]! | (t[5]! << 8) | (t[6]! << 16) | (t[7]! << 24)) >>> 0;
    const member =
      this.memberStart >= 0 ? `the gzip member at compressed byte ${this.memberStart}` : 'a gzip member';
    if (crc !== this.memberCrc) {
      throw this.formatError(
        this.trailerStart,
        `CRC-32 mismatch in the trailer of ${member} (trailer at compressed byte ${this.trailerStart}): ` +
          `stored ${hex32(crc)}, data has ${hex32(this.memberCrc)}`,
      );
    }
    if (isize !== this.memberBytes % TWO_32) {
      throw this.formatError(
        this.trailerStart + 4,
        `length mismatch in the trailer of ${member} (trailer at compressed byte ${this.trailerStart}): ` +
          `stored ${isize}, data has ${this.memberBytes % TWO_32} (mod 2^32)`,
      );
    }
    // The next member (if any) starts here.
    this.memberStart = this.abs(i);
    this.memberCrc = 0;
    this.memberBytes = 0;
    this.headerStep = H_FIXED;
    this.headerHave = 0;
    this.headerField = 0;
    this.phase = 'header';
    this.boundaries.push({
      at: 'member-start',
      compressedOffset: this.memberStart,
      bitOffset: 0,
      uncompressedOffset: this.total,
      memberCrc32: 0,
      memberBytes: 0,
    });
    return i;
  }

  // --- output and history ----------------------------------------------------------------------------

  /** Hand out what the current output buffer holds beyond what was already returned. */
  private emit(chunks: Buffer[]): void {
    if (this.outPos === this.emittedTo) return;
    const bytes = this.out.subarray(this.emittedTo, this.outPos);
    this.history.push({ start: this.total - (this.outPos - this.emittedTo), bytes });
    chunks.push(bytes);
    this.emittedTo = this.outPos;
  }

  private newOutBuffer(chunks: Buffer[]): void {
    this.emit(chunks);
    this.out = Buffer.allocUnsafeSlow(OUT_BUFFER_BYTES);
    this.outU8 = new Uint8Array(this.out.buffer, this.out.byteOffset, this.out.length);
    this.outPos = this.emittedTo = 0;
  }

  /** Drop boundaries and output no longer needed for the positions checkpointAt must support. */
  private prune(): void {
    this.keepFrom = Math.max(this.keepFrom, Math.min(this.lastBatchStart, this.total - this.historyBytes));
    let drop = 0;
    while (
      drop + 1 < this.boundaries.length &&
      this.boundaries.at(drop + 1).uncompressedOffset <= this.keepFrom
    ) {
      drop++;
    }
    this.boundaries.dropFront(drop);
    const first = this.boundaries.at(0);
    const windowStart =
      first.uncompressedOffset - (first.at === 'deflate' ? Math.min(WINDOW_BYTES, first.memberBytes) : 0);
    let old = 0;
    while (old < this.history.length) {
      const h = this.history.at(old);
      if (h.start + h.bytes.length > windowStart) break;
      old++;
    }
    this.history.dropFront(old);
  }

  /** A copy of the output at uncompressed positions [from, to), taken from the kept history. */
  private copyHistory(from: number, to: number): Buffer {
    const result = Buffer.allocUnsafe(to - from);
    let filled = 0;
    for (let k = 0; k < this.history.length && from + filled < to; k++) {
      const h = this.history.at(k);
      const hEnd = h.start + h.bytes.length;
      const pos = from + filled;
      if (hEnd <= pos) continue;
      if (h.start > pos) break;
      const stop = Math.min(hEnd, to);
      h.bytes.copy(result, filled, pos - h.start, stop - h.start);
      filled += stop - pos;
    }
    if (filled !== to - from) {
      throw new Error(`internal error: output history does not cover ${from}..${to}`);
    }
    return result;
  }

  // --- errors ----------------------------------------------------------------------------------------

  private abs(index: number): number {
    return this.inputBase + index;
  }

  private formatError(compressedOffset: number, detail: string): GzipFormatError {
    return new GzipFormatError(this.source, compressedOffset, detail);
  }

  private fail(error: unknown): never {
    this.phase = 'failed';
    this.failure = error instanceof Error ? error : new Error(String(error));
    throw this.failure;
  }

  private assertOpen(): void {
    if (this.phase === 'failed') throw this.failure!;
    if (this.phase === 'ended') throw new Error(`${this.source}: write() or end() after end()`);
  }
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function isUint(n: unknown, max = Number.MAX_SAFE_INTEGER): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= max;
}

/** Throws unless `c` is a checkpoint this module could have produced. */
function validateCheckpoint(c: GunzipCheckpoint): void {
  const problems: string[] = [];
  if (!isUint(c.compressedOffset)) problems.push('compressedOffset is not a non-negative integer');
  if (!isUint(c.uncompressedOffset)) problems.push('uncompressedOffset is not a non-negative integer');
  if (!isUint(c.bitOffset, 7)) problems.push('bitOffset is not 0..7');
  if (!isUint(c.memberCrc32, TWO_32 - 1)) problems.push('memberCrc32 is not an unsigned 32-bit integer');
  if (!isUint(c.memberBytes) || c.memberBytes > c.uncompressedOffset) {
    problems.push('memberBytes is not an integer in 0..uncompressedOffset');
  }
  if (!(c.window instanceof Uint8Array)) problems.push('window is not a Buffer');
  if (c.at === 'member-start') {
    if (c.bitOffset !== 0 || c.memberBytes !== 0 || c.memberCrc32 !== 0 || c.window?.length !== 0) {
      problems.push(
        'a member-start checkpoint must have bitOffset, memberBytes, memberCrc32 0 and no window',
      );
    }
  } else if (c.at === 'deflate') {
    if (c.window?.length !== Math.min(WINDOW_BYTES, c.memberBytes)) {
      problems.push('the window must hold the last min(32768, memberBytes) bytes of the member');
    }
  } else {
    problems.push(`at is ${JSON.stringify(c.at)}, not 'member-start' or 'deflate'`);
  }
  if (problems.length > 0) throw new Error(`invalid gunzip checkpoint: ${problems.join('; ')}`);
}

// Encoded checkpoint: "SGZC", version, at, bitOffset, 0, compressedOffset u64, uncompressedOffset u64,
// memberBytes u64, memberCrc32 u32, window length u32, window, CRC-32 of all the preceding bytes u32.
const MAGIC = 0x435a4753; // "SGZC" little-endian
const VERSION = 1;
const FIXED_BYTES = 40;

function writeU64(b: Buffer, value: number, offset: number): void {
  b.writeUInt32LE(value % TWO_32, offset);
  b.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

function readU64(b: Buffer, offset: number): number {
  return b.readUInt32LE(offset) + b.readUInt32LE(offset + 4) * TWO_32;
}

/** Serialize/deserialize a checkpoint (window included) to/from a Buffer, for storing as an object. */
export function encodeCheckpoint(c: GunzipCheckpoint): Buffer {
  validateCheckpoint(c);
  const b = Buffer.alloc(FIXED_BYTES + c.window.length + 4);
  b.writeUInt32LE(MAGIC, 0);
  b[4] = VERSION;
  b[5] = c.at === 'deflate' ? 1 : 0;
  b[6] = c.bitOffset;
  writeU64(b, c.compressedOffset, 8);
  writeU64(b, c.uncompressedOffset, 16);
  writeU64(b, c.memberBytes, 24);
  b.writeUInt32LE(c.memberCrc32, 32);
  b.writeUInt32LE(c.window.length, 36);
  b.set(c.window, FIXED_BYTES);
  const end = FIXED_BYTES + c.window.length;
  b.writeUInt32LE(crc32(0, b, 0, end), end);
  return b;
}

export function decodeCheckpoint(b: Buffer): GunzipCheckpoint {
  const bad = (why: string) => new Error(`invalid gunzip checkpoint (${b.length} bytes): ${why}`);
  if (b.length < FIXED_BYTES + 4 || b.readUInt32LE(0) !== MAGIC) throw bad('not a gunzip checkpoint');
  if (b[4] !== VERSION) throw bad(`unsupported version ${b[4]}`);
  const windowLength = b.readUInt32LE(36);
  const end = FIXED_BYTES + windowLength;
  if (b.length !== end + 4) throw bad('wrong length');
  if (b.readUInt32LE(end) !== crc32(0, b, 0, end)) throw bad('CRC-32 mismatch (damaged)');
  if (b[5]! > 1 || b[7] !== 0) throw bad('bad field values');
  const c: GunzipCheckpoint = {
    compressedOffset: readU64(b, 8),
    bitOffset: b[6]!,
    uncompressedOffset: readU64(b, 16),
    at: b[5] === 1 ? 'deflate' : 'member-start',
    memberCrc32: b.readUInt32LE(32),
    memberBytes: readU64(b, 24),
    window: Buffer.from(b.subarray(FIXED_BYTES, end)),
  };
  validateCheckpoint(c);
  return c;
}
