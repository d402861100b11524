import { MULTIPART_LIMITS } from '../../ports/object-store.ts';

const MiB = 1024 * 1024;

/** The part size of an ordinary download: small parts keep memory, scratch and lost work small. */
export const DEFAULT_PART_BYTES = 8 * MiB;

/**
 * The part size of a download whose body is `declaredBytes` long (its `Content-Length`), or of unknown
 * length: the default where 10,000 parts of it hold the body, else the smallest whole number of MiB that
 * does. A body of unknown length gets the size that holds S3's largest object (5 TiB: 525 MiB parts), so
 * that no length it turns out to have runs out of part numbers. Returns `undefined` for a body larger
 * than S3's largest object, which no part size can land.
 */
export function partSizeFor(
  declaredBytes: number | undefined,
  preferred: number = DEFAULT_PART_BYTES,
): number | undefined {
  const { maxParts, maxObjectBytes, minPartBytes, maxPartBytes } = MULTIPART_LIMITS;
  const bytes = declaredBytes ?? maxObjectBytes;
  if (bytes > maxObjectBytes) return undefined;
  const needed = Math.ceil(Math.ceil(bytes / maxParts) / MiB) * MiB;
  return Math.min(maxPartBytes, Math.max(minPartBytes, preferred, needed));
}
