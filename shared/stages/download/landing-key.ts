import { InvalidKeyError } from '../../errors.ts';
import { safeSegment } from '../../lake/keys.ts';

/**
 * Where downloads land in the landing store. The workflow that downloaded a file ingests it itself, so the
 * landing trigger (EventBridge "Object Created") ignores this prefix: otherwise every download would also
 * start a second execution for the same object.
 */
export const DOWNLOADS_PREFIX = '_downloads/';

/**
 * The landing key of a download: `_downloads/<dataset>/<file name>`, the file name being the last segment of the
 * URL's path, percent-decoded, then made safe. Decoding first means `..%2f..%2fetc%2fpasswd` and
 * `..%5c..%5cwin.ini` are seen as the traversal attempts they are: only their last component survives,
 * and `safeSegment` turns dot-segments, separators and empty names into a plain segment. The query
 * string is ignored, so the same file fetched with a new token lands under the same key.
 */
export function landingKey(dataset: string, url: URL): string {
  if (safeSegment(dataset) !== dataset) {
    throw new InvalidKeyError(
      dataset,
      'a dataset name must be one safe segment ([A-Za-z0-9._-], no leading dot)',
    );
  }
  const lastSegment = url.pathname.split('/').at(-1) ?? '';
  let name: string;
  try {
    name = decodeURIComponent(lastSegment);
  } catch {
    name = lastSegment; // malformed %-escapes: keep them as they are; safeSegment neutralises them
  }
  return `${DOWNLOADS_PREFIX}${dataset}/${safeSegment(name.split(/[/\\]/).at(-1) ?? '')}`;
}
