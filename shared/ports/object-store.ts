import type { Readable } from 'node:stream';

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. `end` omitted means "to the end". */
export interface ByteRange {
  readonly start: number;
  readonly end?: number;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /**
   * Opaque version tag: an S3 ETag, or size+mtime+inode for files. Changes on every write (locally even
   * when the bytes are the same), and is the value `WriteOptions.ifMatch` accepts.
   */
  readonly etag: string;
  readonly lastModified: Date;
}

export interface WriteOptions {
  readonly contentType?: string;
  /** Create only: fail with PreconditionFailedError if an object with this key exists (S3 `If-None-Match: *`). */
  readonly ifAbsent?: boolean;
  /** Replace only the object whose etag is this (S3 `If-Match`); else PreconditionFailedError (also when absent). */
  readonly ifMatch?: string;
}

/**
 * Keyed storage of immutable objects: the only way stages touch the lake or the landing area.
 * Keys are `/`-separated relative paths (no leading `/`, no `.` or `..` segments).
 * A write is all-or-nothing: readers see the old object or the complete new one, never a partial one.
 */
export interface ObjectStore {
  /** A human-readable location of a key, for logs and summaries (`s3://bucket/key`, `/abs/path`). */
  uri(key: string): string;
  /** Stream an object's bytes, or a range of them. Throws `ObjectNotFoundError` if absent. */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /**
   * Write a whole object atomically from bytes or a stream. With `ifAbsent` or `ifMatch` the write is
   * conditional: of writers racing on one key with the same condition, exactly one succeeds and the others
   * fail with `PreconditionFailedError` (the primitive leases are built on). Passing both is a `TypeError`.
   */
  write(key: string, body: Uint8Array | string | Readable, options?: WriteOptions): Promise<ObjectInfo>;
  /** Metadata of an object, or `undefined` if absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Every object whose key starts with `prefix`, in lexicographic key order, across all pages. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Remove an object; removing an absent object is not an error. */
  delete(key: string): Promise<void>;
}
