import { createHash } from 'node:crypto';
import { InvalidKeyError } from '../../errors.ts';
import { safeSegment } from '../../lake/keys.ts';

/**
 * Where downloads land in the landing store. The workflow that downloaded a file ingests it itself, so the
 * landing trigger (EventBridge "Object Created") ignores this prefix: otherwise every download would also
 * start a second execution for the same object.
 */
export const DOWNLOADS_PREFIX = '_downloads/';

/**
 * Parameters that identify who fetches, or when, not what: credentials, signatures and expiry of signed
 * URLs (S3, CloudFront, Azure SAS, GCS). They are left out of a source's identity, so a monthly-renewed
 * signed URL of the same file is the same source.
 */
const VOLATILE_PARAM =
  /token|secret|signature|sig$|password|passw|pwd|key|auth|credential|session|expires?$|^x-amz-|^x-goog-|^(se|sp|sv|sr|st|spr|skoid|sktid|skt|ske|sks|skv)$|^policy$/i;

/**
 * The identity of an HTTP source: scheme and host in lower case, no default port, no userinfo, no
 * fragment, the path as given, and the query's parameters sorted, with credentials and signatures
 * removed (`VOLATILE_PARAM`). Two URLs of one file differ only in what this removes; two files served
 * under one path but told apart by a query parameter (`?file=a`, `?file=b`) stay two sources.
 */
export function normalizeSourceUrl(raw: string | URL): string {
  const url = new URL(raw);
  url.username = '';
  url.password = '';
  url.hash = '';
  const params = [...url.searchParams]
    .filter(([name]) => !VOLATILE_PARAM.test(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  url.search = params.length ? new URLSearchParams(params).toString() : '';
  return url.href; // WHATWG URL parsing already lower-cases scheme and host and drops default ports
}

/**
 * The landing key of a download: `_downloads/<dataset>/<url hash>/<file name>`. The hash (of
 * `normalizeSourceUrl`) makes the key unique per source, so two URLs with the same file name (many payers
 * publish `in-network-rates.json.gz`) never share an object, and the landed object's location is the
 * source's identity (`sourceId`). The file name is the last segment of the URL's path, percent-decoded,
 * then made safe. Decoding first means `..%2f..%2fetc%2fpasswd` and `..%5c..%5cwin.ini` are seen as the
 * traversal attempts they are: only their last component survives, and `safeSegment` turns dot-segments,
 * separators and empty names into a plain segment.
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
  const hash = createHash('sha256').update(normalizeSourceUrl(url)).digest('hex').slice(0, 16);
  return `${DOWNLOADS_PREFIX}${dataset}/${hash}/${safeSegment(name.split(/[/\\]/).at(-1) ?? '')}`;
}
