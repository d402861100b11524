import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  paginateListObjectsV2,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
  UploadNotFoundError,
} from '../../errors.ts';
import type {
  ByteRange,
  MultipartUploads,
  ObjectInfo,
  ObjectStore,
  UploadedPart,
  WriteOptions,
} from '../../ports/object-store.ts';
import { assertValidKey, assertValidPrefix, assertValidRange, MAX_KEY_BYTES } from '../object-key.ts';

const MiB = 1024 * 1024;

/**
 * The largest body of a conditional write (`ifAbsent`, `ifMatch`). Conditional writes are for small
 * objects (leases, commit records); they go out as one PutObject with the body in memory, because not
 * every S3 API honours conditions on CompleteMultipartUpload (moto 5.2 ignores `If-Match` there).
 */
export const CONDITIONAL_WRITE_MAX_BYTES = 16 * MiB;

/** Settings of an `S3ObjectStore`. */
export interface S3ObjectStoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Where this store's keys live inside the bucket: `''` (default) or ending in `/`, e.g. `lake/`. */
  readonly prefix?: string;
  /** Bytes per multipart part (S3 minimum 5 MiB); a write buffers up to `partSize * queueSize`. Default 8 MiB. */
  readonly partSize?: number;
  /** Parts uploaded in parallel per write. Default 4. */
  readonly queueSize?: number;
}

/**
 * An `ObjectStore` on an S3 bucket (or an S3-compatible server), optionally under a key prefix.
 * Writes use multipart upload for large streams; S3 makes an object visible only when its PutObject or
 * CompleteMultipartUpload succeeds, which gives the port's all-or-nothing writes. Conditional writes are
 * one PutObject with `If-None-Match: *` or `If-Match`, of at most `CONDITIONAL_WRITE_MAX_BYTES`.
 */
export class S3ObjectStore implements ObjectStore, MultipartUploads {
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #partSize: number;
  readonly #queueSize: number;

  constructor(options: S3ObjectStoreOptions) {
    const prefix = options.prefix ?? '';
    assertValidPrefix(prefix);
    if (prefix !== '' && !prefix.endsWith('/')) {
      throw new InvalidKeyError(prefix, "a store prefix must be '' or end with '/'");
    }
    this.#client = options.client;
    this.#bucket = options.bucket;
    this.#prefix = prefix;
    this.#partSize = options.partSize ?? 8 * MiB;
    this.#queueSize = options.queueSize ?? 4;
  }

  /** `s3://bucket/<prefix><key>`. */
  uri(key: string): string {
    return `s3://${this.#bucket}/${this.#objectKey(key)}`;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const Key = this.#objectKey(key);
    if (range) assertValidRange(range);
    try {
      const { Body } = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key,
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      );
      return toReadable(Body);
    } catch (error) {
      if (isNotFound(error)) throw new ObjectNotFoundError(key);
      if (isAccessDenied(error)) {
        if (!(await this.#listed(key, 's3:GetObject'))) throw new ObjectNotFoundError(key);
        throw new PermissionDeniedError(this.uri(key), 's3:GetObject', { cause: error });
      }
      // S3 answers 416 for a range starting at or past the end; a file yields no bytes there, and so do we.
      if (range && isUnsatisfiableRange(error)) return Readable.from([]);
      throw error;
    }
  }

  async write(
    key: string,
    body: Uint8Array | string | Readable,
    options?: WriteOptions,
  ): Promise<ObjectInfo> {
    const Key = this.#objectKey(key);
    if (options?.ifAbsent && options.ifMatch !== undefined) {
      if (body instanceof Readable) body.destroy();
      throw new TypeError('write: ifAbsent and ifMatch exclude each other');
    }
    if (options?.ifAbsent || options?.ifMatch !== undefined)
      return this.#writeConditionally(key, body, options);
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key, Body: body, ContentType: options?.contentType },
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      // On failure Upload aborts the multipart upload, so no parts are left behind to be billed.
      leavePartsOnError: false,
    });
    // lib-storage reports a failed AbortMultipartUpload instead of the body's own error (s3rver, for one,
    // does not implement the abort), so remember the body's error to report the real cause.
    let bodyError: unknown;
    if (body instanceof Readable) {
      body.once('error', (error) => {
        bodyError ??= error;
      });
    }
    try {
      await upload.done();
    } catch (error) {
      // Like stream.pipeline: a failed write releases its source (e.g. the socket of a GetObject).
      if (body instanceof Readable) body.destroy();
      throw bodyError ?? error;
    }
    // One extra request, but it returns the size and LastModified that S3 actually recorded.
    const info = await this.head(key);
    if (!info) throw new ObjectNotFoundError(key); // deleted by someone else right after our write
    return info;
  }

  /** One PutObject with the condition as a header; S3 decides atomically which writer wins. */
  async #writeConditionally(
    key: string,
    body: Uint8Array | string | Readable,
    options: WriteOptions,
  ): Promise<ObjectInfo> {
    const condition = options.ifAbsent ? 'ifAbsent' : 'ifMatch';
    const bytes = await bufferBody(key, body);
    let etag: string | undefined;
    try {
      const out = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#objectKey(key),
          Body: bytes,
          ContentType: options.contentType,
          IfNoneMatch: options.ifAbsent ? '*' : undefined,
          // Entity tags travel quoted (RFC 9110); `ObjectInfo.etag` carries them without the quotes.
          IfMatch: options.ifMatch === undefined ? undefined : `"${options.ifMatch}"`,
        }),
      );
      etag = toObjectInfo(key, 0, out.ETag).etag;
    } catch (error) {
      // If-Match on an absent key: S3 answers 404 NoSuchKey rather than 412.
      if (isPreconditionFailed(error) || (condition === 'ifMatch' && isNotFound(error))) {
        throw new PreconditionFailedError(key, condition, { cause: error });
      }
      throw error;
    }
    // The etag is the one our PutObject created: a head could already see the next writer's object.
    const info = await this.head(key);
    if (info?.etag === etag) return info;
    return { key, size: bytes.byteLength, etag, lastModified: new Date() };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.#objectKey(key);
    try {
      const out = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key }));
      return toObjectInfo(key, out.ContentLength, out.ETag, out.LastModified);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      if (isAccessDenied(error)) {
        if (!(await this.#listed(key, 's3:GetObject'))) return undefined;
        throw new PermissionDeniedError(this.uri(key), 's3:GetObject (HeadObject)', { cause: error });
      }
      throw error;
    }
  }

  /**
   * Whether `key` exists, decided by a listing with the key as its prefix. Without `s3:ListBucket` on a
   * key's prefix, S3 answers a read of an absent key with 403 rather than 404, so a 403 alone cannot tell
   * "absent" (a first run: no checkpoint, manifest or lease yet) from "not allowed". The listing can:
   * the key listed means the read was refused; not listed means absent. A refused listing is reported as
   * the permission error it is, naming the action (`deniedAction` is the read that was refused first).
   */
  async #listed(key: string, deniedAction: string): Promise<boolean> {
    const Key = this.#objectKey(key);
    try {
      const out = await this.#client.send(
        new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: Key, MaxKeys: 1 }),
      );
      return out.Contents?.[0]?.Key === Key;
    } catch (error) {
      if (isAccessDenied(error)) {
        throw new PermissionDeniedError(
          this.uri(key),
          `s3:ListBucket (prefix ${Key}), needed because ${deniedAction} was refused`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertValidPrefix(prefix);
    const pages = paginateListObjectsV2(
      { client: this.#client },
      { Bucket: this.#bucket, Prefix: this.#prefix + prefix },
    );
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.#prefix.length);
        // Skip what no key can name, e.g. console "folder" markers (`dir/`) written by other tools.
        if (key === undefined || !isValidKey(key)) continue;
        yield toObjectInfo(key, object.Size, object.ETag, object.LastModified);
      }
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.#objectKey(key);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key }));
    } catch (error) {
      // S3 itself answers 204 for an absent key; some compatible servers answer 404.
      if (!isNotFound(error)) throw error;
    }
  }

  async startUpload(key: string, options?: { readonly contentType?: string }): Promise<string> {
    const out = await this.#client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.#bucket,
        Key: this.#objectKey(key),
        ContentType: options?.contentType,
      }),
    );
    if (!out.UploadId) throw new Error(`CreateMultipartUpload of ${this.uri(key)} returned no UploadId`);
    return out.UploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | Readable,
    size: number,
  ): Promise<UploadedPart> {
    try {
      const out = await this.#client.send(
        new UploadPartCommand({
          Bucket: this.#bucket,
          Key: this.#objectKey(key),
          UploadId: uploadId,
          PartNumber: partNumber,
          Body: body,
          // A stream's length must be declared; S3 rejects a body that is longer or shorter.
          ContentLength: size,
        }),
      );
      return { partNumber, etag: unquote(out.ETag), size };
    } catch (error) {
      if (body instanceof Readable) body.destroy();
      if (await this.#isGone(key, uploadId, error)) {
        throw new UploadNotFoundError(key, uploadId, { cause: error });
      }
      throw error;
    }
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined> {
    const parts: UploadedPart[] = [];
    // Paged by hand: the SDK's paginator keeps asking while a NextPartNumberMarker comes back, which
    // moto sends even on the last page.
    let marker: string | undefined;
    try {
      for (;;) {
        const page = await this.#client.send(
          new ListPartsCommand({
            Bucket: this.#bucket,
            Key: this.#objectKey(key),
            UploadId: uploadId,
            PartNumberMarker: marker,
          }),
        );
        for (const part of page.Parts ?? []) {
          parts.push({ partNumber: part.PartNumber ?? 0, etag: unquote(part.ETag), size: part.Size ?? 0 });
        }
        if (!page.IsTruncated || !page.NextPartNumberMarker) break;
        marker = page.NextPartNumberMarker;
      }
    } catch (error) {
      if (isNoSuchUpload(error)) return undefined;
      throw error;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<ObjectInfo> {
    try {
      await this.#client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: this.#objectKey(key),
          UploadId: uploadId,
          MultipartUpload: {
            Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: `"${part.etag}"` })),
          },
        }),
      );
    } catch (error) {
      if (await this.#isGone(key, uploadId, error)) {
        throw new UploadNotFoundError(key, uploadId, { cause: error });
      }
      throw error;
    }
    const info = await this.head(key);
    if (!info) throw new ObjectNotFoundError(key); // deleted by someone else right after our completion
    return info;
  }

  /**
   * Whether `error` of a request on an upload means the upload is gone. moto answers a part or a
   * completion of an aborted upload with a 500, not NoSuchUpload, so a failure asks ListParts.
   */
  async #isGone(key: string, uploadId: string, error: unknown): Promise<boolean> {
    if (isNoSuchUpload(error)) return true;
    return (await this.listParts(key, uploadId).catch(() => [])) === undefined;
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: this.#objectKey(key),
          UploadId: uploadId,
        }),
      );
    } catch (error) {
      if (!isNoSuchUpload(error)) throw error;
    }
  }

  #objectKey(key: string): string {
    assertValidKey(key);
    const objectKey = this.#prefix + key;
    if (Buffer.byteLength(objectKey, 'utf8') > MAX_KEY_BYTES) {
      throw new InvalidKeyError(key, `with the store prefix it is longer than ${MAX_KEY_BYTES} bytes`);
    }
    return objectKey;
  }
}

/** Options of `createS3Client`; credentials default to the SDK's provider chain (env, profile, role). */
export interface S3ClientOptions {
  readonly region?: string;
  /** For S3-compatible servers, e.g. `http://127.0.0.1:4569`. */
  readonly endpoint?: string;
  /** `bucket` in the path instead of the host name; most S3-compatible servers need it. */
  readonly forcePathStyle?: boolean;
  readonly credentials?: S3ClientConfig['credentials'];
}

/** An S3 client configured for sluice: checksums only where S3 requires them (see below). */
export function createS3Client(options: S3ClientOptions = {}): S3Client {
  const config: S3ClientConfig = {
    // Since SDK 3.729 the default (WHEN_SUPPORTED) adds a CRC32 checksum to every upload; for a stream of
    // unknown length it does so with `Content-Encoding: aws-chunked` and a trailing checksum. S3-compatible
    // servers that do not speak aws-chunked (s3rver, older MinIO, ...) then store the chunk framing as
    // part of the object. WHEN_REQUIRED sends plain bodies; TLS and S3's own MD5/ETag still guard transit.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  // Only set what was given, so the SDK's defaults (AWS_REGION, credential chain) apply otherwise.
  if (options.region !== undefined) config.region = options.region;
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.forcePathStyle !== undefined) config.forcePathStyle = options.forcePathStyle;
  if (options.credentials !== undefined) config.credentials = options.credentials;
  return new S3Client(config);
}

function toObjectInfo(key: string, size?: number, etag?: string, lastModified?: Date): ObjectInfo {
  return {
    key,
    size: size ?? 0,
    // S3 quotes ETags (`"abc…"`); the quotes carry no information.
    etag: (etag ?? '').replace(/^"|"$/g, ''),
    lastModified: lastModified ?? new Date(0),
  };
}

/** The body of a conditional write in memory, refusing one over `CONDITIONAL_WRITE_MAX_BYTES`. */
async function bufferBody(key: string, body: Uint8Array | string | Readable): Promise<Uint8Array> {
  const tooLarge = () =>
    new RangeError(
      `conditional write of ${key}: the body is larger than ${CONDITIONAL_WRITE_MAX_BYTES} bytes; ` +
        'conditional writes (ifAbsent, ifMatch) are for small objects such as leases and commit records',
    );
  if (typeof body === 'string') body = Buffer.from(body, 'utf8');
  if (!(body instanceof Readable)) {
    if (body.byteLength > CONDITIONAL_WRITE_MAX_BYTES) throw tooLarge();
    return body;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer);
      size += buffer.byteLength;
      if (size > CONDITIONAL_WRITE_MAX_BYTES) throw tooLarge();
      chunks.push(buffer);
    }
  } finally {
    // Like stream.pipeline: a write that stops reading releases its source.
    body.destroy();
  }
  return Buffer.concat(chunks, size);
}

function toReadable(body: unknown): Readable {
  // In Node the SDK returns an http.IncomingMessage, which is a Readable; an empty object may have none.
  if (body === undefined) return Readable.from([]);
  if (body instanceof Readable) return body;
  throw new TypeError('S3 GetObject returned a body that is not a Node.js Readable');
}

function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

interface SdkError {
  readonly name?: string;
  readonly $metadata?: { readonly httpStatusCode?: number };
}

function isNotFound(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as SdkError;
  if (name === 'NoSuchKey' || name === 'NotFound') return true;
  // A missing bucket is a configuration problem, not a missing object.
  return $metadata?.httpStatusCode === 404 && name !== 'NoSuchBucket';
}

/** 412 PreconditionFailed; 409 ConditionalRequestConflict while another conditional write of the key is in flight. */
function isPreconditionFailed(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as SdkError;
  return (
    name === 'PreconditionFailed' ||
    name === 'ConditionalRequestConflict' ||
    $metadata?.httpStatusCode === 412 ||
    $metadata?.httpStatusCode === 409
  );
}

/** 403: the role may not do this, or (without s3:ListBucket) the key is absent. */
function isAccessDenied(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as SdkError;
  return name === 'AccessDenied' || name === 'Forbidden' || $metadata?.httpStatusCode === 403;
}

/** The upload id names no upload in progress (completed, aborted, expired, or unknown). */
function isNoSuchUpload(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as SdkError;
  return name === 'NoSuchUpload' || $metadata?.httpStatusCode === 404;
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"|"$/g, '');
}

function isUnsatisfiableRange(error: unknown): boolean {
  const { name, $metadata } = (error ?? {}) as SdkError;
  return name === 'InvalidRange' || $metadata?.httpStatusCode === 416;
}
