import { z } from 'zod';
import { PreconditionFailedError, TransientError } from '../../errors.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import type { ObjectInfo, ObjectStore } from '../../ports/object-store.ts';

/**
 * A download that outlasts one invocation leaves this beside its landing key, and the next invocation
 * continues from it: the HTTP `Range` offset, the multipart upload and the parts it holds, the sha256
 * state at that offset, and the version of the source being downloaded (its validators and size, as the
 * first response gave them), so that a source that changed meanwhile is downloaded again from byte 0
 * rather than spliced from two versions. It is written after each part, so a crash loses one part at most.
 */
export const DownloadCheckpoint = z.object({
  kind: z.literal('sluice-download-checkpoint'),
  version: z.literal(1),
  /** The source's identity (`normalizeSourceUrl`: no credentials, no signatures). */
  url: z.string().min(1),
  /** The landing key the upload completes into. */
  key: z.string().min(1),
  uploadId: z.string().min(1),
  /** Bytes per part, every part but the last. */
  partBytes: z.number().int().positive(),
  parts: z.array(
    z.object({
      partNumber: z.number().int().positive(),
      etag: z.string(),
      size: z.number().int().nonnegative(),
    }),
  ),
  /** Bytes in `parts`: where the next request's `Range` starts. */
  bytes: z.number().int().nonnegative(),
  /** The sha256 of those bytes so far: hash-wasm's saved state, base64. */
  sha256State: z.string(),
  /** The version being downloaded, as the first response described it. */
  source: z.object({
    etag: z.string().optional(),
    lastModified: z.string().optional(),
    /** Content-Length of the whole body, when the server said. */
    totalBytes: z.number().int().nonnegative().optional(),
    /** The server answered `Accept-Ranges: bytes` and gave a validator to resume with. */
    resumable: z.boolean(),
  }),
  /** Invocations that worked on this download so far, this one included. */
  invocations: z.number().int().positive(),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type DownloadCheckpoint = z.infer<typeof DownloadCheckpoint>;

/** The checkpoint of the download into `key`: in the same folder (one per source URL). */
export function downloadCheckpointKey(key: string): string {
  return `${key.slice(0, key.lastIndexOf('/') + 1)}_download-checkpoint.json`;
}

/**
 * The checkpoint described by `listed` (from a listing of its folder), or undefined when there is none
 * or it is unreadable. A listing, not a GET, decides that it is absent: under a prefix-scoped
 * `s3:ListBucket` grant S3 may answer 403 rather than 404 for a missing key.
 */
export async function readDownloadCheckpoint(
  landing: ObjectStore,
  listed: ObjectInfo | undefined,
): Promise<{ checkpoint: DownloadCheckpoint; etag: string } | undefined> {
  if (!listed) return undefined;
  const checkpoint = await readJsonIfValid(landing, listed.key, DownloadCheckpoint);
  // Rewritten between the listing and the read: the next conditional write (ifMatch) finds out.
  return checkpoint && { checkpoint, etag: listed.etag };
}

/**
 * Writes the checkpoint: created only if none exists (`etag` undefined), else replacing only the one this
 * download wrote last. Two downloads of one source at once would otherwise overwrite each other's; the
 * one that loses fails with a TransientError (a later retry resumes from the winner's checkpoint).
 * Returns the new etag.
 */
export async function writeDownloadCheckpoint(
  landing: ObjectStore,
  checkpoint: DownloadCheckpoint,
  etag: string | undefined,
  shownUrl: string,
): Promise<string> {
  const key = downloadCheckpointKey(checkpoint.key);
  try {
    const written = await landing.write(key, JSON.stringify(checkpoint), {
      contentType: 'application/json',
      ...(etag === undefined ? { ifAbsent: true } : { ifMatch: etag }),
    });
    return written.etag;
  } catch (error) {
    if (!(error instanceof PreconditionFailedError)) throw error;
    throw new TransientError(
      `download of ${shownUrl}: another download of the same source is writing ${landing.uri(key)}; ` +
        'this one stops (a retry resumes from that checkpoint once it is the only one)',
      { cause: error },
    );
  }
}
