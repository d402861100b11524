import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { BlockList, isIP, isIPv4, type LookupFunction, SocketAddress } from 'node:net';
import { UnsafeUrlError } from '../../errors.ts';

/**
 * Checks for URLs that come from outside (dataset configs, redirects): a download must not become a way
 * to read the cloud metadata endpoint or services inside the VPC (server-side request forgery).
 */

/** What may be fetched beyond public HTTPS hosts. Everything defaults to `false`. */
export interface UrlSafetyOptions {
  /** Allow `http:` (credentials and content travel in clear). @default false */
  readonly allowInsecureHttp?: boolean;
  /** Allow loopback addresses (127/8, ::1): tests and local servers. @default false */
  readonly allowLoopback?: boolean;
  /** Allow private addresses (10/8, 172.16/12, 192.168/16, fc00::/7) and CGNAT 100.64/10. @default false */
  readonly allowPrivate?: boolean;
  /** Resolves a host name to all its addresses. @default `dns.lookup(host, { all: true })` */
  readonly resolve?: (hostname: string) => Promise<readonly LookupAddress[]>;
}

/**
 * What an address is for. Only `public` is fetched by default; `loopback` and `private` (which includes
 * CGNAT) can be allowed; the others never are: link-local holds the metadata endpoint 169.254.169.254.
 */
export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unspecified'
  | 'multicast'
  | 'reserved';

/** Parses and checks a URL to fetch: http(s) only, https unless allowed, no credentials in it. */
export function parseSafeUrl(raw: string, options: UrlSafetyOptions): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // The raw string is not echoed: it may hold credentials, and unparsed they cannot be redacted.
    throw new UnsafeUrlError('<invalid URL>', 'not a valid absolute URL');
  }
  const shown = redactUrl(url);
  if (url.protocol === 'http:') {
    if (!options.allowInsecureHttp) {
      throw new UnsafeUrlError(shown, 'plain http is not allowed (set allowInsecureHttp to permit it)');
    }
  } else if (url.protocol !== 'https:') {
    throw new UnsafeUrlError(
      shown,
      `scheme ${url.protocol} is not allowed (only https, or http when allowed)`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    // They would be sent, logged and kept in state payloads; credentials belong in the secret store.
    throw new UnsafeUrlError(
      shown,
      'credentials in the URL are not allowed: use a secret id in `credentials`',
    );
  }
  if (url.hostname === '') throw new UnsafeUrlError(shown, 'no host');
  return url;
}

/**
 * Resolves the URL's host and checks every address it resolves to; returns the one to connect to. All
 * must pass, as a name with one public and one private address would otherwise be a coin toss. The caller
 * connects to the returned address (see `pinnedLookup`), so a second DNS answer cannot swap it.
 *
 * Hand-written on purpose: the check and the connection must use one resolution. A filter that checks
 * a name and lets the HTTP client resolve it again leaves a time-of-check/time-of-use gap that DNS
 * rebinding walks through. The agent-based filters that close it (request-filtering-agent checks the
 * address its socket looked up) judge one address rather than every answer, and have a single switch
 * for all non-public addresses, so allowing a local server would allow the metadata endpoint too; here
 * loopback and private are allowed separately and link-local never. Only the address classes come from
 * Node (`BlockList`, see `classifyAddress`).
 */
export async function resolveSafeAddress(url: URL, options: UrlSafetyOptions): Promise<LookupAddress> {
  const host = hostOf(url);
  const family = isIP(host);
  const addresses: readonly LookupAddress[] =
    family !== 0 ? [{ address: host, family }] : await (options.resolve ?? resolveAll)(host);
  if (addresses.length === 0) throw new UnsafeUrlError(redactUrl(url), `${host} resolves to no address`);
  for (const { address } of addresses) {
    const kind = classifyAddress(address);
    if (!isAllowed(kind, options)) {
      const via = family !== 0 ? '' : `${host} resolves to `;
      throw new UnsafeUrlError(redactUrl(url), `${via}${address}, a ${kind} address${allowHint(kind)}`);
    }
  }
  return addresses[0]!;
}

/** A `lookup` for `http.request` that always answers `address`: the connection goes where we checked. */
export function pinnedLookup(address: LookupAddress): LookupFunction {
  return (_hostname, options, callback) => {
    // With autoSelectFamily (the default since Node 20) the socket asks for all addresses at once.
    if (options.all) callback(null, [address]);
    else callback(null, address.address, address.family);
  };
}

/** The URL's host without the brackets of an IPv6 literal. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/** Query parameters whose values are redacted in any URL shown, whatever the credential settings. */
const SENSITIVE_PARAM = /token|secret|signature|sig$|password|passw|pwd|key|auth|credential|session/i;

/**
 * A URL fit for messages and logs: userinfo replaced by `***`, the values of `secretParams` and of
 * parameters that look sensitive (`token`, `api_key`, `X-Amz-Signature`, …) replaced by `***`, no fragment.
 */
export function redactUrl(raw: string | URL, secretParams: readonly string[] = []): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return '<invalid URL>';
  }
  if (url.username !== '' || url.password !== '') {
    url.username = '***';
    url.password = '';
  }
  url.hash = '';
  const isSecret = (name: string) => secretParams.includes(name) || SENSITIVE_PARAM.test(name);
  const params = [...url.searchParams];
  // Re-serialise only when something is hidden, so other URLs are shown exactly as given.
  if (params.some(([name]) => isSecret(name))) {
    url.search = new URLSearchParams(
      params.map(([name, value]): [string, string] => [name, isSecret(name) ? '***' : value]),
    ).toString();
  }
  return url.href;
}

/** Whether an address of this kind may be fetched under `options`. */
export function isAllowed(kind: AddressKind, options: UrlSafetyOptions): boolean {
  if (kind === 'public') return true;
  if (kind === 'loopback') return options.allowLoopback === true;
  if (kind === 'private') return options.allowPrivate === true;
  return false;
}

/**
 * Address ranges by what they are for, in the order they are looked up (the first that holds an address
 * names it). IPv4 ranges also hold their IPv4-mapped IPv6 forms (`::ffff:a.b.c.d`): `BlockList` matches
 * those against IPv4 rules itself.
 */
const RANGES: readonly (readonly [AddressKind, string, number])[] = [
  ['unspecified', '0.0.0.0', 8],
  ['unspecified', '::', 128],
  ['loopback', '127.0.0.0', 8],
  ['loopback', '::1', 128],
  ['private', '10.0.0.0', 8],
  ['private', '172.16.0.0', 12],
  ['private', '192.168.0.0', 16],
  ['private', '100.64.0.0', 10], // CGNAT: as internal as RFC 1918 from where we sit
  ['private', 'fc00::', 7], // unique local
  ['private', 'fec0::', 10], // site-local (deprecated)
  ['link-local', '169.254.0.0', 16], // holds the metadata endpoint 169.254.169.254
  ['link-local', 'fe80::', 10],
  ['multicast', '224.0.0.0', 4],
  ['multicast', 'ff00::', 8],
  // 240/4 (incl. broadcast), IETF protocol assignments, benchmarking, discard: never a download source.
  ['reserved', '240.0.0.0', 4],
  ['reserved', '192.0.0.0', 24],
  ['reserved', '198.18.0.0', 15],
  ['reserved', '100::', 64],
];

/**
 * IPv6 prefixes whose next 32 bits are an IPv4 address that the traffic ends up at, each judged by that
 * address: the deprecated IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` (a NAT64 gateway would
 * connect to it) and 6to4 `2002:aabb:ccdd::/48` (tunnels to a.b.c.d). Looked up after `RANGES`, so
 * that `::` and `::1` are themselves, not an embedded 0.0.0.0 and 0.0.0.1.
 */
const IPV4_CARRIERS: readonly (readonly [prefix: string, bits: number])[] = [
  ['::', 96],
  ['64:ff9b::', 96],
  ['2002::', 16],
];

/** One `BlockList` per kind, in lookup order: the ranges themselves, then the IPv4 ones as carried in IPv6. */
const LOOKUP: readonly (readonly [AddressKind, BlockList])[] = [
  ...byKind(RANGES),
  ...byKind(
    RANGES.filter(([, base]) => isIPv4(base)).flatMap(([kind, base, bits]) =>
      IPV4_CARRIERS.map(([prefix, at]) => [kind, carried(prefix, at, base), at + bits] as const),
    ),
  ),
];

/** What an IPv4 or IPv6 address is for; IPv6 forms that embed an IPv4 address are judged by it. */
export function classifyAddress(address: string): AddressKind {
  const text = address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''); // brackets, zone id
  const family = isIP(text);
  if (family === 0) return 'reserved'; // not an IP address at all: never fetch
  // Parsed once, not once per list: 8x faster (a plan of thousands of URLs classifies each host).
  const parsed = new SocketAddress({ address: text, family: family === 4 ? 'ipv4' : 'ipv6' });
  return LOOKUP.find(([, list]) => list.check(parsed))?.[0] ?? 'public';
}

function byKind(ranges: readonly (readonly [AddressKind, string, number])[]): [AddressKind, BlockList][] {
  const lists = new Map<AddressKind, BlockList>();
  for (const [kind, base, bits] of ranges) {
    const list = lists.get(kind) ?? new BlockList();
    list.addSubnet(base, bits, isIPv4(base) ? 'ipv4' : 'ipv6');
    lists.set(kind, list);
  }
  return [...lists];
}

/** The IPv6 address with the IPv4 address `ipv4` in the 32 bits after the first `at` bits of `prefix`. */
function carried(prefix: string, at: number, ipv4: string): string {
  const [a, b, c, d] = ipv4.split('.').map(Number) as [number, number, number, number];
  const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  const head = prefix.replace(/::$/, '');
  // The prefixes are whole 16-bit groups: 96 bits end in the last two groups, 16 bits after the first.
  return at === 96 ? `${head}::${hex}` : `${head}:${hex}::`;
}

/** How to permit an address of this kind, if it can be: ` (set allowLoopback to permit it)`, or ''. */
export function allowHint(kind: AddressKind): string {
  if (kind === 'loopback') return ' (set allowLoopback to permit it)';
  if (kind === 'private') return ' (set allowPrivate to permit it)';
  return '';
}

async function resolveAll(hostname: string): Promise<readonly LookupAddress[]> {
  return lookup(hostname, { all: true });
}
