import type { ByteRange } from '../../ports/object-store.ts';

/**
 * The row count of a Parquet file from its footer alone: two small ranged reads (the last 8 bytes, then
 * the metadata they point to) instead of the whole file. The footer is `<FileMetaData> <length: u32 LE>
 * "PAR1"`; FileMetaData is Thrift's compact protocol, whose field 3 is `num_rows` (i64). Only the
 * protocol's framing is decoded here, enough to skip fields 1 and 2 (the version and the schema).
 */

const MAGIC = 'PAR1';
/** A footer larger than this is not one sluice wrote (DuckDB's for 1 GB of input are ≈ 100 KB). */
const MAX_FOOTER_BYTES = 64 * 1024 * 1024;

/** Why a file's footer could not be read: the file is not (or no longer) a valid Parquet file. */
export class ParquetFooterError extends Error {
  override name = 'ParquetFooterError';
}

/** Reads `range` of the file (both ends inclusive) whole. */
export type ReadRange = (range: Required<ByteRange>) => Promise<Buffer>;

/** `num_rows` of the Parquet file of `size` bytes that `read` reads. */
export async function parquetRowCount(size: number, read: ReadRange): Promise<number> {
  if (size < 12) throw new ParquetFooterError(`${size} bytes is too short for a Parquet file`);
  const tail = await read({ start: size - 8, end: size - 1 });
  if (tail.length !== 8 || tail.toString('latin1', 4) !== MAGIC) {
    throw new ParquetFooterError('the file does not end with the Parquet magic "PAR1"');
  }
  const length = tail.readUInt32LE(0);
  if (length === 0 || length > Math.min(size - 12, MAX_FOOTER_BYTES)) {
    throw new ParquetFooterError(`footer length ${length} does not fit in a file of ${size} bytes`);
  }
  const start = size - 8 - length;
  const metadata = await read({ start, end: size - 9 });
  if (metadata.length !== length) {
    throw new ParquetFooterError(`read ${metadata.length} bytes of a ${length}-byte footer`);
  }
  return fileMetaDataRows(metadata);
}

/** `num_rows` (field 3) of a compact-protocol FileMetaData. */
export function fileMetaDataRows(bytes: Buffer): number {
  const reader = new CompactReader(bytes);
  let fieldId = 0;
  for (;;) {
    const header = reader.byte();
    const type = header & 0x0f;
    if (type === STOP) break;
    const delta = header >> 4;
    fieldId = delta === 0 ? reader.zigzag() : fieldId + delta;
    if (fieldId === 3 && type === I64) {
      const rows = reader.zigzagBig();
      if (rows < 0n || rows > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ParquetFooterError(`num_rows ${rows} is out of range`);
      }
      return Number(rows);
    }
    reader.skip(type);
  }
  throw new ParquetFooterError('the footer has no num_rows');
}

// Compact protocol types (https://github.com/apache/thrift/blob/master/doc/specs/thrift-compact-protocol.md).
const STOP = 0;
const TRUE = 1;
const FALSE = 2;
const BYTE = 3;
const I16 = 4;
const I32 = 5;
const I64 = 6;
const DOUBLE = 7;
const BINARY = 8;
const LIST = 9;
const SET = 10;
const MAP = 11;
const STRUCT = 12;
/** Nesting a footer may have: Parquet's own structs nest a few levels; more means a corrupt footer. */
const MAX_DEPTH = 64;

class CompactReader {
  private at = 0;
  constructor(private readonly bytes: Buffer) {}

  byte(): number {
    if (this.at >= this.bytes.length)
      throw new ParquetFooterError('the footer ends in the middle of a field');
    return this.bytes[this.at++]!;
  }

  /** An unsigned LEB128 varint, as a BigInt (i64 needs all 64 bits). */
  varintBig(): bigint {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      value |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return value;
    }
    throw new ParquetFooterError('a varint in the footer is longer than 10 bytes');
  }

  zigzagBig(): bigint {
    const n = this.varintBig();
    return (n >> 1n) ^ -(n & 1n);
  }

  zigzag(): number {
    return Number(this.zigzagBig());
  }

  /** Skips a value of `type`, containers and structs included. */
  skip(type: number, depth = 0): void {
    if (depth > MAX_DEPTH) throw new ParquetFooterError('the footer nests deeper than any Parquet footer');
    switch (type) {
      case TRUE:
      case FALSE:
        return; // in a field header, the value is the type itself
      case BYTE:
        this.byte();
        return;
      case I16:
      case I32:
      case I64:
        this.varintBig();
        return;
      case DOUBLE:
        this.advance(8);
        return;
      case BINARY:
        this.advance(Number(this.varintBig()));
        return;
      case LIST:
      case SET: {
        const header = this.byte();
        const size = header >> 4 === 15 ? Number(this.varintBig()) : header >> 4;
        const element = header & 0x0f;
        // Inside a container a boolean takes a byte of its own.
        for (let i = 0; i < size; i++) this.skipElement(element, depth);
        return;
      }
      case MAP: {
        const size = Number(this.varintBig());
        if (size === 0) return;
        const kinds = this.byte();
        for (let i = 0; i < size; i++) {
          this.skipElement(kinds >> 4, depth);
          this.skipElement(kinds & 0x0f, depth);
        }
        return;
      }
      case STRUCT:
        for (;;) {
          const header = this.byte();
          const fieldType = header & 0x0f;
          if (fieldType === STOP) return;
          if (header >> 4 === 0) this.zigzag();
          this.skip(fieldType, depth + 1);
        }
      default:
        throw new ParquetFooterError(`unknown Thrift type ${type} in the footer`);
    }
  }

  private skipElement(type: number, depth: number): void {
    if (type === TRUE || type === FALSE) this.byte();
    else this.skip(type, depth + 1);
  }

  private advance(n: number): void {
    if (this.at + n > this.bytes.length) {
      throw new ParquetFooterError('the footer ends in the middle of a field');
    }
    this.at += n;
  }
}
