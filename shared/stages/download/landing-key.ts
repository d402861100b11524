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
 * URLs (S3, CloudFront, GCS, Azure SAS). They are left out of a source's identity, so a monthly-renewed
 * signed URL of the same file is the same source, and no secret is kept in the lake. Decided by the
 * words of the name (`accessToken`, `X-Api-Key`, `oauth_token`), not by substrings: a parameter that
 * merely contains such a word (`file_key`, `author`, `filesig`) may be what tells two files apart, and two
 * files taken for one source would replace each other (the second run's version replacing the first's).
 */
const CREDENTIAL_WORDS = new Set([
  'token',
  'secret',
  'password',
  'passwd',
  'pwd',
  'auth',
  'authorization',
  'credential',
  'credentials',
  'session',
  'sessionid',
  'jwt',
  'bearer',
  'apikey',
  'accesskey',
  // signed URLs: S3 (v2), CloudFront, GCS (v2)
  'signature',
  'sig',
  'expires',
  'expire',
  'expiry',
  'policy',
]);
/** A `key` is a credential beside these words (`api_key`, `AWSAccessKeyId`, `Key-Pair-Id`), or alone. */
const KEY_QUALIFIERS = new Set([
  'api',
  'access',
  'secret',
  'private',
  'client',
  'subscription',
  'account',
  'auth',
  'pair',
  'signing',
  'sas',
]);
/** A `token` beside these words is a page's cursor (`pageToken`), which says what is fetched. */
const PAGING_WORDS = new Set(['page', 'next', 'continuation', 'cursor']);

/** The words of a parameter's name, lower case: `X-Api-Key` → x, api, key; `AWSAccessKeyId` → aws, access, key, id. */
function wordsOf(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word !== '');
}

function isCredentialName(name: string): boolean {
  const words = wordsOf(name);
  if (words.includes('token') && words.some((word) => PAGING_WORDS.has(word))) return false;
  if (words.some((word) => CREDENTIAL_WORDS.has(word))) return true;
  return words.includes('key') && (words.length === 1 || words.some((word) => KEY_QUALIFIERS.has(word)));
}

/** Signed URLs' own parameter families: S3 (v4) and GCS (v4). */
const VOLATILE_PREFIX = /^x-(?:amz|goog)-/i;
/**
 * An Azure SAS's fields (version, start, expiry, permissions, resource, …): short names that are only
 * a signature's when the URL carries one (`sig`); `?st=CA` alone is a state, not a start time.
 */
const SAS_FIELDS = new Set(['sv', 'ss', 'srt', 'sp', 'se', 'st', 'spr', 'sr', 'sdd', 'si', 'sip']);
const SAS_KEY_FIELD = /^sk[a-z]{1,3}$/; // skoid, sktid, skt, ske, sks, skv: a user delegation key's

/** Whether the parameter `name` identifies who fetches or when, not what (`hasSasSignature`: a `sig`). */
function isVolatileParam(name: string, hasSasSignature: boolean): boolean {
  const lower = name.toLowerCase();
  if (VOLATILE_PREFIX.test(lower) || isCredentialName(name)) return true;
  return hasSasSignature && (SAS_FIELDS.has(lower) || SAS_KEY_FIELD.test(lower));
}

/**
 * The identity of an HTTP source: scheme and host in lower case, no default port, no userinfo, no
 * fragment, the path as given, and the query's parameters sorted, with credentials and signatures
 * removed (`isVolatileParam`). Two URLs of one file differ only in what this removes; two files served
 * under one path but told apart by a query parameter (`?file=a`, `?file_key=b`, `?st=CA`) stay two
 * sources.
 */
export function normalizeSourceUrl(raw: string | URL): string {
  const url = new URL(raw);
  url.username = '';
  url.password = '';
  url.hash = '';
  const all = [...url.searchParams];
  const hasSasSignature = all.some(([name]) => name.toLowerCase() === 'sig');
  const params = all
    .filter(([name]) => !isVolatileParam(name, hasSasSignature))
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
