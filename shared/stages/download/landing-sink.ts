import { PassThrough } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';

/** Bytes buffered between the HTTP response and the landing write; backpressure pauses the socket beyond. */
const BUFFER_BYTES = 1024 * 1024;

/**
 * One atomic `landing.write` fed chunk by chunk, possibly from several HTTP responses (a resumed
 * download). The object appears only after `finish()`; `abort()` destroys the body with an error, which
 * makes the store discard the write (a removed temp file, an aborted multipart upload).
 */
export class LandingSink {
  readonly #body = new PassThrough({ highWaterMark: BUFFER_BYTES });
  readonly #done: Promise<ObjectInfo>;
  #failure: unknown;

  constructor(store: ObjectStore, key: string) {
    // We destroy the body ourselves to abort; the store's write reports that. Without a listener, an
    // abort before the store starts reading would be an uncaught 'error' event.
    this.#body.on('error', () => {});
    this.#done = store.write(key, this.#body);
    this.#done.catch((error: unknown) => {
      // The store gave up (disk full, S3 error): wake a push waiting for 'drain' by closing the body.
      this.#failure ??= error;
      this.#body.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** The store's error, if the write has failed on its side. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Hands a chunk to the store, waiting while its buffer is full. Throws the store's error if it failed. */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.#body.destroyed) throw this.#closedError();
    if (this.#body.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const onDrain = () => {
        this.#body.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        this.#body.off('drain', onDrain);
        reject(this.#closedError());
      };
      this.#body.once('drain', onDrain);
      this.#body.once('close', onClose);
    });
  }

  /** Ends the body and waits for the store to install the object. */
  async finish(): Promise<ObjectInfo> {
    this.#body.end();
    return this.#done;
  }

  /** Discards the write: nothing appears under the key. Resolves once the store has cleaned up. */
  async abort(reason: Error): Promise<void> {
    this.#body.destroy(reason);
    await this.#done.catch(() => {});
  }

  #closedError(): unknown {
    return this.#failure ?? new Error('the landing write was closed');
  }
}
