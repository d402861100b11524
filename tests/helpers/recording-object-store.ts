import { Readable } from 'node:stream';
import { ObjectNotFoundError } from '../../shared/errors.ts';
import type {
  ByteRange,
  ObjectInfo,
  ObjectStore,
  UploadedPart,
  UploadingObjectStore,
  WriteOptions,
} from '../../shared/ports/object-store.ts';

/** One call of the object-store port, as a recording store saw it. */
export type StoreCall =
  | { readonly op: 'read' | 'head'; readonly key: string; readonly found: boolean }
  | {
      readonly op: 'write';
      readonly key: string;
      readonly conditional: boolean;
      /** The stored size; undefined when the write failed (a stream's size is then unknown). */
      readonly size: number | undefined;
      readonly ok: boolean;
    }
  | { readonly op: 'list'; readonly prefix: string }
  | { readonly op: 'delete'; readonly key: string }
  | {
      readonly op: 'startUpload' | 'uploadPart' | 'listParts' | 'completeUpload' | 'abortUpload';
      readonly key: string;
      readonly ok: boolean;
    };

/**
 * An object store that passes every call to `inner` and tells `record` what it was: the port-level
 * facts (key, found or not, conditional or not, size) from which the S3 requests the S3 adapter would
 * make are derived (./s3-requests.ts). A failed call is recorded too: S3 authorizes it all the same.
 */
export class RecordingObjectStore implements UploadingObjectStore {
  readonly #inner: ObjectStore;
  readonly #record: (call: StoreCall) => void;

  constructor(inner: ObjectStore, record: (call: StoreCall) => void) {
    this.#inner = inner;
    this.#record = record;
  }

  uri(key: string): string {
    return this.#inner.uri(key);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    try {
      const body = await this.#inner.read(key, range);
      this.#record({ op: 'read', key, found: true });
      return body;
    } catch (error) {
      this.#record({ op: 'read', key, found: !(error instanceof ObjectNotFoundError) });
      throw error;
    }
  }

  async write(
    key: string,
    body: Uint8Array | string | Readable,
    options?: WriteOptions,
  ): Promise<ObjectInfo> {
    const conditional = Boolean(options?.ifAbsent || options?.ifMatch !== undefined);
    try {
      const info = await this.#inner.write(key, body, options);
      this.#record({ op: 'write', key, conditional, size: info.size, ok: true });
      return info;
    } catch (error) {
      const size = body instanceof Readable ? undefined : Buffer.byteLength(body);
      this.#record({ op: 'write', key, conditional, size, ok: false });
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const info = await this.#inner.head(key);
    this.#record({ op: 'head', key, found: info !== undefined });
    return info;
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#record({ op: 'list', prefix });
    return this.#inner.list(prefix);
  }

  async delete(key: string): Promise<void> {
    this.#record({ op: 'delete', key });
    await this.#inner.delete(key);
  }

  startUpload(key: string, options?: { readonly contentType?: string }): Promise<string> {
    return this.#upload('startUpload', key, (s) => s.startUpload(key, options));
  }

  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array | Readable,
    size: number,
  ): Promise<UploadedPart> {
    return this.#upload('uploadPart', key, (s) => s.uploadPart(key, uploadId, partNumber, body, size));
  }

  listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined> {
    return this.#upload('listParts', key, (s) => s.listParts(key, uploadId));
  }

  completeUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<ObjectInfo> {
    return this.#upload('completeUpload', key, (s) => s.completeUpload(key, uploadId, parts));
  }

  abortUpload(key: string, uploadId: string): Promise<void> {
    return this.#upload('abortUpload', key, (s) => s.abortUpload(key, uploadId));
  }

  async #upload<T>(
    op: 'startUpload' | 'uploadPart' | 'listParts' | 'completeUpload' | 'abortUpload',
    key: string,
    call: (store: UploadingObjectStore) => Promise<T>,
  ): Promise<T> {
    const inner = this.#inner as Partial<UploadingObjectStore>;
    if (typeof inner.startUpload !== 'function') {
      throw new TypeError(`${op}: ${this.#inner.uri(key)} is not a store with multipart uploads`);
    }
    try {
      const result = await call(inner as UploadingObjectStore);
      this.#record({ op, key, ok: true });
      return result;
    } catch (error) {
      this.#record({ op, key, ok: false });
      throw error;
    }
  }
}
