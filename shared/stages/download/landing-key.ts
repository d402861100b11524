import { createHash } from 'node:crypto';
import { InvalidKeyError } from '../../errors.ts';
import { DOWNLOADS_PREFIX, safeSegment } from '../../lake/keys.ts';

export { DOWNLOADS_PREFIX };

/**
 * Parameters that identify who fetches, or when, not what: credentials, signatures and expiry of signed
 * URLs (S3, CloudFront, GCS, Azure SAS). They are left out of a source's identity, so a monthly-renewed
 * signed URL of the same file is the same source, and no secret is kept in the lake. Told by the name
 * with case and separators dropped (`X-Api-Key` → `xapikey`): one of `CREDENTIAL_NAMES`, or ending in a
 * credential word (`accessToken`, `client_secret`, `app_key`). Not by a word anywhere in it: a parameter
 * that merely contains one (`file_key`, `author`, `policy_id`, `expiry_date`, `sig_figs`) may be what
 * tells two files apart, and two files taken for one source would replace each other.
 */
const CREDENTIAL_NAMES = new Set([
  'key',
  'auth',
  'authorization',
  'session',
  'jwt',
  'bearer',
  // signed URLs: S3 (v2), CloudFront, GCS (v2); exactly these names (`policy_id` is an id)
  'sig',
  'expires',
  'expire',
  'expiry',
  'policy',
  'keypairid',
  'awsaccesskeyid',
  'googleaccessid',
]);
/** Endings of a credential's name: `…token`, `…secret`, `…password`, `…apikey`, `…sessionid`, …. */
const CREDENTIAL_ENDINGS =
  /(token|secret|password|passwd|pwd|signature|credentials?|sessionid|apikey|accesskey|secretkey|privatekey|authkey|appkey|consumerkey|masterkey|sharedkey|signingkey|encryptionkey|licensekey|userkey|devkey|developerkey|subscriptionkey|clientkey|nonce)$/;
/** A page's cursor: what is fetched, not who fetches (`pageToken`, `next_page_token`, `continuationToken`). */
const PAGE_CURSOR = /^(page|nextpage|next|continuation|cursor)token$/;
/** OAuth 1's signed parameters (a nonce and a time per request), but for its callback. */
const OAUTH_SIGNED = /^oauth_(?!callback$)/i;

function isCredentialName(name: string): boolean {
  const compact = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  if (PAGE_CURSOR.test(compact)) return false;
  return CREDENTIAL_NAMES.has(compact) || CREDENTIAL_ENDINGS.test(compact) || OAUTH_SIGNED.test(name);
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

/** The query parameters of `url` that carry a credential or a signature (see `isVolatileParam`). */
export function credentialParams(url: URL): string[] {
  const names = [...url.searchParams.keys()];
  const hasSasSignature = names.some((name) => name.toLowerCase() === 'sig');
  return [...new Set(names.filter((name) => isVolatileParam(name, hasSasSignature)))];
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
