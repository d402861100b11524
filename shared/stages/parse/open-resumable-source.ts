import { createSHA256, type IHasher } from 'hash-wasm';
import { MalformedInputError } from '../../errors.ts';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';
import type { OpenedSource } from './open-source.ts';
import { decodeCheckpoint, encodeCheckpoint, GzipFormatError, ResumableGunzip } from './resumable-gunzip.ts';

/**
 * Where a later process resumes reading a source: JSON, small (a 32 KiB window at most), so it can be
 * stored inside an ingest checkpoint object.
 *
 * Reading restarts at `storedOffset` (a stored byte whose sha256 state we kept, at or before the
 * decompression point), decompression restarts at the gzip checkpoint (a deflate block boundary at or
 * before the resume position), and `skip` output bytes are then discarded to reach the exact position.
 */
export interface SourceResumePoint {
  /** Uncompressed position the resumed `chunks` start at. */
  readonly position: number;
  /** Stored byte offset reading restarts at, and the sha256 state of the bytes before it (base64). */
  readonly storedOffset: number;
  readonly sha256State: string;
  /** gzip only: where decompression restarts (base64 of `encodeCheckpoint`). */
  readonly gunzip?: string;
  /** Output bytes between the restart point and `position`, to discard. */
  readonly skip: number;
}

export interface ResumableSource extends OpenedSource {
  /** A resume point for uncompressed `position`, anywhere within the chunk `chunks` yielded last. */
  resumePoint(position: number): SourceResumePoint;
}

/** sha256 states kept for recent stored chunks: enough to reach back past one deflate block. */
const HASH_STATES_KEPT = 256;

/**
 * Open a source for one slice of a sliced ingest: like `openSource`, but every position within the last
 * chunk handed out can become a `SourceResumePoint`, and `from` continues a previous slice. gzip is
 * decompressed by `ResumableGunzip` (pako, on this thread) because Node's zlib cannot report deflate
 * block boundaries; the stored bytes' sha256 comes from hash-wasm, whose state can be saved and loaded.
 */
export async function openResumableSource(
  store: ObjectStore,
  key: string,
  info: ObjectInfo,
  compression: 'gzip' | 'none',
  from?: SourceResumePoint,
): Promise<ResumableSource> {
  const uri = store.uri(key);
  const hasher: IHasher = await createSHA256();
  hasher.init();
  if (from) hasher.load(Buffer.from(from.sha256State, 'base64'));
  const storedStart = from?.storedOffset ?? 0;
  const gunzip =
    compression === 'gzip'
      ? new ResumableGunzip({
          source: uri,
          from: from?.gunzip ? decodeCheckpoint(Buffer.from(from.gunzip, 'base64')) : undefined,
        })
      : undefined;
  // Stored bytes before this offset are hashed but not decompressed again (the gzip restart point).
  const decodeFrom =
    gunzip && from?.gunzip
      ? decodeCheckpoint(Buffer.from(from.gunzip, 'base64')).compressedOffset
      : storedStart;

  let storedRead = storedStart;
  /** [stored offset, sha256 state before that offset] of recent stored chunks, oldest first. */
  const hashStates: [number, Uint8Array][] = [];
  let lastChunkStart = from?.position ?? 0;
  let position = from?.position ?? 0;
  let digest: string | undefined;

  async function* chunks(): AsyncGenerator<Buffer> {
    let toSkip = from?.skip ?? 0;
    const emit = function* (outputs: Buffer[]): Generator<Buffer> {
      for (let out of outputs) {
        if (toSkip > 0) {
          const cut = Math.min(toSkip, out.length);
          toSkip -= cut;
          out = out.subarray(cut);
        }
        if (out.length === 0) continue;
        lastChunkStart = position;
        position += out.length;
        // A copy: the scanner rewrites line breaks inside records in place, and the gunzip keeps its
        // output as the window of later checkpoints.
        yield gunzip ? Buffer.from(out) : out;
      }
    };
    const raw = storedStart < info.size ? await store.read(key, { start: storedStart }) : [];
    try {
      for await (const piece of raw as AsyncIterable<Buffer>) {
        hashStates.push([storedRead, hasher.save()]);
        if (hashStates.length > HASH_STATES_KEPT) hashStates.shift();
        hasher.update(piece);
        const start = storedRead;
        storedRead += piece.length;
        const decodable =
          start >= decodeFrom ? piece : piece.subarray(Math.min(piece.length, decodeFrom - start));
        if (decodable.length === 0) continue;
        if (gunzip) yield* emit(gunzip.write(decodable));
        else yield* emit([decodable]);
      }
      if (gunzip) yield* emit(gunzip.end());
    } catch (error) {
      if (error instanceof GzipFormatError) {
        throw new MalformedInputError(`${uri} (compressed)`, error.compressedOffset, error.detail, {
          cause: error,
        });
      }
      throw error;
    }
    digest = hasher.digest('hex');
  }

  /** The kept sha256 state of the latest stored chunk starting at or before `offset`. */
  function hashStateAt(offset: number): [number, Uint8Array] {
    for (let i = hashStates.length - 1; i >= 0; i--) {
      if (hashStates[i]![0] <= offset) return hashStates[i]!;
    }
    throw new Error(`no sha256 state kept for stored offset ${offset} (oldest kept: ${hashStates[0]?.[0]})`);
  }

  return {
    info,
    compression,
    chunks: chunks(),
    storedBytesRead: () => storedRead,
    sha256: () => {
      if (digest === undefined) throw new Error('sha256 is known only after the whole source was read');
      return digest;
    },
    resumePoint(at: number): SourceResumePoint {
      if (at < lastChunkStart || at > position) {
        throw new Error(`resume position ${at} is outside the last chunk [${lastChunkStart}, ${position}]`);
      }
      if (!gunzip) {
        const [storedOffset, state] = hashStateAt(at);
        return {
          position: at,
          storedOffset,
          sha256State: Buffer.from(state).toString('base64'),
          skip: at - storedOffset,
        };
      }
      const { checkpoint, skip } = gunzip.checkpointAt(at);
      const [storedOffset, state] = hashStateAt(checkpoint.compressedOffset);
      return {
        position: at,
        storedOffset,
        sha256State: Buffer.from(state).toString('base64'),
        gunzip: encodeCheckpoint(checkpoint).toString('base64'),
        skip,
      };
    },
  };
}
