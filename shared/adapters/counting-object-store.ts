import type { Readable } from 'node:stream';
import type { ByteRange, ObjectInfo, ObjectStore, WriteOptions } from '../ports/object-store.ts';
import type { S3Requests } from '../workflow/run-cost.ts';

/** S3 LIST's page: 1,000 keys a request. */
const LIST_PAGE = 1000;
/** The S3 adapter's defaults (shared/adapters/aws/s3-object-store.ts): a write past one part is multipart. */
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;

/**
 * Any object store, counting the S3 requests its calls cost, by billing class: a read or head is one GET
 * (tier 2); a write is one PUT, or, past one part, CreateMultipartUpload + one UploadPart a part +
 * CompleteMultipartUpload (tier 1); a listing is one LIST a page of 1,000 (tier 1); deletes are free.
 * Counted per call, failed ones included (S3 bills those too), so it holds for the local store as well:
 * what the same run would cost on S3.
 */
export class CountingObjectStore implements ObjectStore {
  readonly #inner: ObjectStore;
  readonly #partSize: number;
  #tier1 = 0;
  #tier2 = 0;

  constructor(inner: ObjectStore, options: { readonly partSize?: number } = {}) {
    this.#inner = inner;
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE;
  }

  /** The requests counted so far. */
  requests(): S3Requests {
    return { tier1: this.#tier1, tier2: this.#tier2 };
  }

  uri(key: string): string {
    return this.#inner.uri(key);
  }

  read(key: string, range?: ByteRange): Promise<Readable> {
    this.#tier2++;
    return this.#inner.read(key, range);
  }

  async write(
    key: string,
    body: Uint8Array | string | Readable,
    options?: WriteOptions,
  ): Promise<ObjectInfo> {
    try {
      const info = await this.#inner.write(key, body, options);
      const parts = Math.ceil(info.size / this.#partSize);
      this.#tier1 += parts > 1 ? parts + 2 : 1;
      return info;
    } catch (error) {
      this.#tier1++;
      throw error;
    }
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    this.#tier2++;
    return this.#inner.head(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let listed = 0;
    this.#tier1++;
    for await (const info of this.#inner.list(prefix)) {
      if (listed > 0 && listed % LIST_PAGE === 0) this.#tier1++;
      listed++;
      yield info;
    }
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(key);
  }
}
