import type { LookupAddress } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP, isIPv4, type LookupFunction } from 'node:net';
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

/** What an IPv4 or IPv6 address is for; IPv6 forms that embed an IPv4 address are judged by it. */
export function classifyAddress(address: string): AddressKind {
  if (isIPv4(address)) return classifyIpv4(parseIpv4(address));
  const groups = parseIpv6(address);
  if (!groups) return 'reserved'; // not an IP address at all: never fetch
  return classifyIpv6(groups);
}

function classifyIpv4(ip: number): AddressKind {
  const inRange = (base: string, bits: number) => {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    return (ip & mask) >>> 0 === parseIpv4(base);
  };
  if (inRange('0.0.0.0', 8)) return 'unspecified';
  if (inRange('127.0.0.0', 8)) return 'loopback';
  if (inRange('10.0.0.0', 8) || inRange('172.16.0.0', 12) || inRange('192.168.0.0', 16)) return 'private';
  if (inRange('100.64.0.0', 10)) return 'private'; // CGNAT: as internal as RFC 1918 from where we sit
  if (inRange('169.254.0.0', 16)) return 'link-local';
  if (inRange('224.0.0.0', 4)) return 'multicast';
  // 240/4 (incl. broadcast), IETF protocol assignments, benchmarking: never a download source.
  if (inRange('240.0.0.0', 4) || inRange('192.0.0.0', 24) || inRange('198.18.0.0', 15)) return 'reserved';
  return 'public';
}

function classifyIpv6(g: readonly number[]): AddressKind {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const embedded = (hi: number, lo: number) => classifyIpv4(((hi << 16) | lo) >>> 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  // IPv4-mapped ::ffff:a.b.c.d and the deprecated IPv4-compatible ::a.b.c.d.
  if (zeros(0, 5) && (g[5] === 0xffff || g[5] === 0)) return embedded(g[6]!, g[7]!);
  // NAT64 64:ff9b::a.b.c.d: a NAT64 gateway would connect to the embedded IPv4 address.
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return embedded(g[6]!, g[7]!);
  // 6to4 2002:aabb:ccdd::/48 tunnels to IPv4 a.b.c.d.
  if (g[0] === 0x2002) return embedded(g[1]!, g[2]!);
  const first = g[0]!;
  if ((first & 0xfe00) === 0xfc00) return 'private'; // fc00::/7 unique local
  if ((first & 0xffc0) === 0xfe80) return 'link-local'; // fe80::/10
  if ((first & 0xffc0) === 0xfec0) return 'private'; // fec0::/10 site-local (deprecated)
  if ((first & 0xff00) === 0xff00) return 'multicast';
  if (first === 0x100 && zeros(1, 4)) return 'reserved'; // 100::/64 discard
  return 'public';
}

function parseIpv4(address: string): number {
  return address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

/** The eight 16-bit groups of an IPv6 address (zone id ignored), or undefined if it is not one. */
function parseIpv6(address: string): number[] | undefined {
  const text = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (isIP(text) !== 6) return undefined;
  let tail: number[] = [];
  let body = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const ip = parseIpv4(v4[1]!);
    tail = [ip >>> 16, ip & 0xffff];
    body = text.slice(0, -v4[1]!.length);
    if (body.endsWith(':') && !body.endsWith('::')) body = body.slice(0, -1);
  }
  const toGroups = (part: string) => (part === '' ? [] : part.split(':').map((h) => Number.parseInt(h, 16)));
  const [head, rest] = body.split('::') as [string, string | undefined];
  const left = toGroups(head);
  const right = [...toGroups(rest ?? ''), ...tail];
  if (rest === undefined) return [...left, ...right];
  const missing = 8 - left.length - right.length;
  return [...left, ...new Array<number>(missing).fill(0), ...right];
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
