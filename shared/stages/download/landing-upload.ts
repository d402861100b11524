import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { createSHA256, type IHasher } from 'hash-wasm';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectInfo, UploadedPart, UploadingObjectStore } from '../../ports/object-store.ts';
import {
  type DownloadCheckpoint,
  downloadCheckpointKey,
  writeDownloadCheckpoint,
} from './download-checkpoint.ts';

/**
 * Compiles the hasher's WebAssembly once per process, before the first response arrives: its body is
 * then read as soon as its headers are (a server may close a connection nobody reads).
 */
export async function prepareHasher(): Promise<void> {
  await createSHA256();
}

/** The version of a source a download is fetching, as its first response described it. */
export type SourceVersion = DownloadCheckpoint['source'];

/** What a `LandingUpload` works with. */
export interface LandingUploadDeps {
  readonly landing: UploadingObjectStore;
  readonly clock: Clock;
  /** Where the part being received is spooled (one part at most, removed when uploaded). */
  readonly scratchDir: string;
}

/** Which download a `LandingUpload` is: for the checkpoint and for messages. */
export interface DownloadIdentity {
  /** The landing key. */
  readonly key: string;
  /** `normalizeSourceUrl` of the source. */
  readonly url: string;
  /** The URL as messages show it (secrets redacted). */
  readonly shownUrl: string;
}

/**
 * The landed object of one download, written as a multipart upload that can outlive the invocation:
 * bytes are hashed and spooled to a scratch file until a part is full, the part is uploaded, and the
 * checkpoint records it with the hash state at its end. The next invocation (`resume`) continues from
 * the last part. The object appears only at `finish`, after the checksum is known; `discard` aborts the
 * upload and removes the checkpoint, so nothing half-written is ever under the landing key.
 *
 * Spooling to disk rather than memory keeps a Lambda's memory small while parts grow with the source
 * (up to 525 MiB for 5 TiB): the scratch space must hold one part.
 */
export class LandingUpload {
  readonly #deps: LandingUploadDeps;
  readonly #id: DownloadIdentity;
  readonly #hasher: IHasher;
  /** The checkpoint as it stands; its `uploadId` is '' until the first part is uploaded. */
  #checkpoint: DownloadCheckpoint;
  /** The etag of the checkpoint this download wrote last; undefined until it has written one. */
  #checkpointEtag: string | undefined;
  #spool: { file: string; handle: FileHandle; bytes: number } | undefined;

  private constructor(
    deps: LandingUploadDeps,
    id: DownloadIdentity,
    hasher: IHasher,
    checkpoint: DownloadCheckpoint,
    checkpointEtag: string | undefined,
  ) {
    this.#deps = deps;
    this.#id = id;
    this.#hasher = hasher;
    this.#checkpoint = checkpoint;
    this.#checkpointEtag = checkpointEtag;
  }

  /**
   * A new download. Nothing is written yet: the multipart upload and the checkpoint are created when the
   * first part is full, so the body is read from the moment its headers arrive (a server that closes an
   * unread connection would otherwise cut it), and a body smaller than a part lands as one plain write.
   */
  static async start(
    deps: LandingUploadDeps,
    id: DownloadIdentity,
    partBytes: number,
    source: SourceVersion,
  ): Promise<LandingUpload> {
    const hasher = await createSHA256();
    hasher.init();
    const now = deps.clock.now().toISOString();
    const checkpoint: DownloadCheckpoint = {
      kind: 'sluice-download-checkpoint',
      version: 1,
      url: id.url,
      key: id.key,
      uploadId: '',
      partBytes,
      parts: [],
      bytes: 0,
      sha256State: Buffer.from(hasher.save()).toString('base64'),
      source,
      invocations: 1,
      startedAt: now,
      updatedAt: now,
    };
    return new LandingUpload(deps, id, hasher, checkpoint, undefined);
  }

  /**
   * Continues the download a checkpoint describes, in a new invocation, or says why it cannot (its upload
   * is gone, its parts differ from the store's, its hash state is unreadable): the caller then discards
   * it and starts again.
   */
  static async resume(
    deps: LandingUploadDeps,
    id: DownloadIdentity,
    checkpoint: DownloadCheckpoint,
    checkpointEtag: string,
  ): Promise<LandingUpload | string> {
    if (checkpoint.url !== id.url || checkpoint.key !== id.key) return 'it is of another source';
    if (!checkpoint.source.resumable) return 'its source cannot be resumed (no ranges or no validator)';
    if (checkpoint.parts.length === 0) return 'it holds no part yet';
    const stored = await deps.landing.listParts(id.key, checkpoint.uploadId);
    if (!stored) return `its multipart upload ${checkpoint.uploadId} is gone`;
    const byNumber = new Map(stored.map((part) => [part.partNumber, part]));
    let bytes = 0;
    for (const [index, part] of checkpoint.parts.entries()) {
      const found = byNumber.get(part.partNumber);
      if (part.partNumber !== index + 1 || found?.etag !== part.etag || found.size !== part.size) {
        return `its part ${part.partNumber} is not in the upload as recorded`;
      }
      bytes += part.size;
    }
    if (bytes !== checkpoint.bytes) return `its parts hold ${bytes} bytes, not ${checkpoint.bytes}`;
    const hasher = await createSHA256();
    try {
      hasher.init();
      hasher.load(Buffer.from(checkpoint.sha256State, 'base64'));
    } catch {
      return 'its sha256 state is unreadable';
    }
    const claimed = { ...checkpoint, invocations: checkpoint.invocations + 1 };
    const upload = new LandingUpload(deps, id, hasher, claimed, checkpointEtag);
    // Claims the checkpoint: a second download of the same source resuming it at once loses here.
    await upload.#writeCheckpoint();
    return upload;
  }

  /** Bytes received so far: in uploaded parts, and spooled. */
  get bytes(): number {
    return this.#checkpoint.bytes + (this.#spool?.bytes ?? 0);
  }

  get checkpoint(): DownloadCheckpoint {
    return this.#checkpoint;
  }

  get checkpointKey(): string {
    return downloadCheckpointKey(this.#id.key);
  }

  /**
   * Hashes and spools `chunk`, uploading each part it fills. After each part, `pauseAfterPart` decides
   * whether to stop there; then the rest of the chunk is dropped (the next invocation asks for it again
   * from the checkpoint's offset) and `push` returns true.
   */
  async push(chunk: Buffer, pauseAfterPart: () => boolean): Promise<boolean> {
    let offset = 0;
    while (offset < chunk.length) {
      const spooled = this.#spool?.bytes ?? 0;
      const piece = chunk.subarray(offset, offset + this.#checkpoint.partBytes - spooled);
      offset += piece.length;
      this.#hasher.update(piece);
      await this.#append(piece);
      if ((this.#spool?.bytes ?? 0) < this.#checkpoint.partBytes) continue;
      await this.#uploadSpool();
      if (pauseAfterPart()) return true;
    }
    return false;
  }

  /** The sha256 of every byte received (call once the body has ended). */
  digest(): string {
    return this.#hasher.digest('hex');
  }

  /** Uploads the last part and completes the upload: the object appears. Then removes the checkpoint. */
  async finish(): Promise<ObjectInfo> {
    const { landing } = this.#deps;
    const key = this.#id.key;
    if (!this.#checkpoint.uploadId) {
      // Less than a part (or nothing): one ordinary, atomic write of the spooled bytes.
      const spool = this.#spool;
      const body = spool ? createReadStream(spool.file, { end: spool.bytes - 1 }) : new Uint8Array();
      const info = await landing.write(key, body);
      await this.close();
      return info;
    }
    if ((this.#spool?.bytes ?? 0) > 0) await this.#uploadSpool({ checkpoint: false });
    const info = await landing.completeUpload(key, this.#checkpoint.uploadId, this.#checkpoint.parts);
    await landing.delete(this.checkpointKey);
    return info;
  }

  /** Aborts the upload and removes the checkpoint: the download starts again from byte 0 next time. */
  async discard(): Promise<void> {
    await this.close();
    const { landing } = this.#deps;
    if (this.#checkpoint.uploadId) await landing.abortUpload(this.#id.key, this.#checkpoint.uploadId);
    // Only a checkpoint this download wrote: another download's is not ours to remove.
    if (this.#checkpointEtag !== undefined) await landing.delete(this.checkpointKey);
  }

  /** Removes the scratch file; the upload and the checkpoint stay for the next invocation. */
  async close(): Promise<void> {
    const spool = this.#spool;
    this.#spool = undefined;
    if (!spool) return;
    await spool.handle.close().catch(() => {});
    await rm(spool.file, { force: true });
  }

  async #append(piece: Buffer): Promise<void> {
    if (!this.#spool) {
      const file = path.join(this.#deps.scratchDir, `sluice-download-${randomUUID()}.part`);
      this.#spool = { file, handle: await open(file, 'wx'), bytes: 0 };
    }
    const spool = this.#spool;
    await spool.handle.write(piece, 0, piece.length, spool.bytes);
    spool.bytes += piece.length;
  }

  /** Uploads the spooled part, records it (and the hash state at its end) in the checkpoint. */
  async #uploadSpool({ checkpoint = true } = {}): Promise<void> {
    const spool = this.#spool!;
    // The last part is never checkpointed, and its hash state may be digested already.
    const state = checkpoint ? this.#hasher.save() : undefined;
    const partNumber = this.#checkpoint.parts.length + 1;
    if (!this.#checkpoint.uploadId) {
      const uploadId = await this.#deps.landing.startUpload(this.#id.key);
      this.#checkpoint = { ...this.#checkpoint, uploadId };
    }
    const body = createReadStream(spool.file, { start: 0, end: spool.bytes - 1 });
    const part: UploadedPart = await this.#deps.landing.uploadPart(
      this.#id.key,
      this.#checkpoint.uploadId,
      partNumber,
      body,
      spool.bytes,
    );
    this.#checkpoint = {
      ...this.#checkpoint,
      parts: [...this.#checkpoint.parts, { partNumber, etag: part.etag, size: part.size }],
      bytes: this.#checkpoint.bytes + part.size,
      sha256State: state ? Buffer.from(state).toString('base64') : this.#checkpoint.sha256State,
    };
    await this.close();
    if (!checkpoint) return;
    try {
      await this.#writeCheckpoint();
    } catch (error) {
      // The first checkpoint lost to another download's: this upload is nobody's, abort it.
      if (this.#checkpointEtag === undefined) {
        await this.#deps.landing.abortUpload(this.#id.key, this.#checkpoint.uploadId).catch(() => {});
      }
      throw error;
    }
  }

  async #writeCheckpoint(): Promise<void> {
    this.#checkpoint = { ...this.#checkpoint, updatedAt: this.#deps.clock.now().toISOString() };
    this.#checkpointEtag = await writeDownloadCheckpoint(
      this.#deps.landing,
      this.#checkpoint,
      this.#checkpointEtag,
      this.#id.shownUrl,
    );
  }
}
