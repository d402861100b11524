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
  /**
   * Files only, from `head`: the inode's change time (ctime), which every write moves and no tool sets
   * back, unlike the mtime that `cp -p` or `rsync -t` restore. It tells a file rewritten in place with its
   * size and mtime kept from the object it was (a source's run id hashes it). It also moves on a chmod,
   * link or rename, so it is not part of the etag (a store's own writes install objects by rename and
   * link, after the stats `write` returns).
   */
  readonly changeTag?: string;
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

/** One part of a multipart upload, as stored. */
export interface UploadedPart {
  /** 1 to 10,000; parts are joined in this order. */
  readonly partNumber: number;
  /** The part's opaque tag (S3: its ETag without quotes), which `completeUpload` needs back. */
  readonly etag: string;
  readonly size: number;
}

/**
 * Writing one object in parts that outlive the process that uploaded them: a download too long for one
 * Lambda invocation uploads some parts, records the upload id and the parts in a checkpoint, and the
 * next invocation uploads the rest. Nothing appears under the key until `completeUpload`, which installs
 * the whole object at once, as `write` does. An upload is abandoned with `abortUpload`; one nobody
 * aborts costs storage until the bucket's lifecycle rule (`AbortIncompleteMultipartUpload`) removes it.
 *
 * S3's limits apply to every adapter's callers: at most 10,000 parts, each at least 5 MiB except the last,
 * at most 5 GiB each, 5 TiB in all (`MULTIPART_LIMITS`); a local folder enforces only the part count.
 */
export interface MultipartUploads {
  /** Starts an upload of `key` and returns its id. */
  startUpload(key: string, options?: { readonly contentType?: string }): Promise<string>;
  /**
   * Stores part `partNumber` of exactly `size` bytes (a stream body must yield that many). Uploading a
   * number again replaces that part. Throws `UploadNotFoundError` if the upload is gone.
   */
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | Readable,
    size: number,
  ): Promise<UploadedPart>;
  /**
   * The parts stored so far, by part number, or `undefined` if the upload is gone (completed, aborted,
   * expired, or never was): the question a resumed download asks before it trusts its checkpoint.
   */
  listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined>;
  /**
   * Joins `parts` (ascending part numbers, each as `uploadPart` returned it) into the object under `key`,
   * atomically, and ends the upload. Throws `UploadNotFoundError` if the upload is gone.
   */
  completeUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<ObjectInfo>;
  /** Ends the upload and frees its parts. Aborting an upload that is gone is not an error. */
  abortUpload(key: string, uploadId: string): Promise<void>;
}

/** A store that can also upload one object in resumable parts (both adapters are). */
export type UploadingObjectStore = ObjectStore & MultipartUploads;

/** S3's multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const MULTIPART_LIMITS = {
  minPartBytes: 5 * 1024 * 1024,
  maxPartBytes: 5 * 1024 * 1024 * 1024,
  maxParts: 10_000,
  maxObjectBytes: 5 * 1024 * 1024 * 1024 * 1024,
} as const;
