import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { InvalidKeyError, UnsafeUrlError } from '../../shared/errors.ts';
import { landingKey, normalizeSourceUrl } from '../../shared/stages/download/landing-key.ts';
import {
  type AddressKind,
  classifyAddress,
  parseSafeUrl,
  pinnedLookup,
  redactUrl,
  resolveSafeAddress,
  type UrlSafetyOptions,
} from '../../shared/stages/download/url-safety.ts';

/** A resolver that answers from a fixed table instead of DNS. */
const resolver =
  (table: Record<string, string[]>) =>
  async (host: string): Promise<LookupAddress[]> =>
    (table[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

describe('Function: classifyAddress', () => {
  const cases: [string, AddressKind][] = [
    ['93.184.216.34', 'public'],
    ['8.8.8.8', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['100.128.0.1', 'public'],
    ['169.254.169.254', 'link-local'],
    ['169.254.0.1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2606:4700::1111', 'public'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:a9fe:a9fe', 'link-local'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['::10.0.0.1', 'private'],
    ['64:ff9b::169.254.169.254', 'link-local'],
    ['2002:a9fe:a9fe::1', 'link-local'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['2002:808:808::1', 'public'],
    ['2002:7f00:1::', 'loopback'],
    ['::0.0.0.2', 'unspecified'],
    ['::ffff:100.64.0.1', 'private'],
    ['fec0::1', 'private'],
    ['100::1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.8', 'reserved'],
    ['198.19.0.1', 'reserved'],
    ['198.20.0.1', 'public'],
    ['not an address', 'reserved'],
  ];
  it.each(cases)('classifies %s as %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});

describe('Function: parseSafeUrl', () => {
  it('accepts https and refuses plain http unless allowInsecureHttp is set', () => {
    expect(parseSafeUrl('https://example.com/a.json', {}).href).toBe('https://example.com/a.json');
    expect(() => parseSafeUrl('http://example.com/a.json', {})).toThrow(UnsafeUrlError);
    expect(() => parseSafeUrl('http://example.com/a.json', {})).toThrow(/allowInsecureHttp/);
    expect(parseSafeUrl('http://example.com/a', { allowInsecureHttp: true }).protocol).toBe('http:');
  });

  it('refuses other schemes and unparseable URLs without echoing them', () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/x', 'gopher://example.com/', 'data:,x']) {
      expect(() => parseSafeUrl(url, { allowInsecureHttp: true }), url).toThrow(/is not allowed/);
    }
    const error = catchError(() => parseSafeUrl('not a url s3cr3t-token', {}));
    expect(error).toBeInstanceOf(UnsafeUrlError);
    expect(error.message).not.toContain('s3cr3t');
  });

  it('refuses credentials in the URL and does not repeat them in the error', () => {
    const error = catchError(() => parseSafeUrl('https://user:hunter2secret@example.com/x', {}));
    expect(error).toBeInstanceOf(UnsafeUrlError);
    expect(error.message).toMatch(/credentials in the URL/);
    expect(error.message).not.toContain('hunter2secret');
  });
});

describe('Function: resolveSafeAddress', () => {
  const resolve = resolver({
    'public.test': ['93.184.216.34'],
    'internal.test': ['10.0.0.5'],
    'mixed.test': ['93.184.216.34', '10.0.0.5'],
    'metadata.test': ['169.254.169.254'],
    'loop.test': ['127.0.0.1'],
    'mapped.test': ['::ffff:127.0.0.1'],
  });
  const check = (url: string, options: UrlSafetyOptions = {}) =>
    resolveSafeAddress(new URL(url), { resolve, ...options });

  it('returns the address of a public host', async () => {
    await expect(check('https://public.test/x')).resolves.toEqual({ address: '93.184.216.34', family: 4 });
  });

  it('refuses a host that resolves to a private address, naming host and address', async () => {
    await expect(check('https://internal.test/x')).rejects.toThrow(
      'refusing to fetch https://internal.test/x: internal.test resolves to 10.0.0.5, a private address',
    );
  });

  it('refuses a host when any of its addresses is not allowed', async () => {
    await expect(check('https://mixed.test/x')).rejects.toBeInstanceOf(UnsafeUrlError);
  });

  it('never allows the metadata endpoint, even with loopback and private allowed', async () => {
    const all = { allowLoopback: true, allowPrivate: true };
    await expect(check('https://metadata.test/latest', all)).rejects.toThrow(/link-local/);
    await expect(check('http://169.254.169.254/latest', all)).rejects.toThrow(/link-local/);
    await expect(check('http://[::ffff:169.254.169.254]/latest', all)).rejects.toThrow(/link-local/);
  });

  it('allows loopback and private only when asked to', async () => {
    await expect(check('https://loop.test/x')).rejects.toThrow(/allowLoopback/);
    await expect(check('https://mapped.test/x')).rejects.toThrow(/loopback/);
    await expect(check('https://loop.test/x', { allowLoopback: true })).resolves.toMatchObject({
      address: '127.0.0.1',
    });
    await expect(check('https://internal.test/x', { allowLoopback: true })).rejects.toThrow(/allowPrivate/);
    await expect(check('https://internal.test/x', { allowPrivate: true })).resolves.toMatchObject({
      address: '10.0.0.5',
    });
  });

  it('checks IP literals without resolving them, IPv6 brackets included', async () => {
    const noDns = async () => {
      throw new Error('must not resolve an IP literal');
    };
    await expect(resolveSafeAddress(new URL('http://10.1.2.3/'), { resolve: noDns })).rejects.toThrow(
      'refusing to fetch http://10.1.2.3/: 10.1.2.3, a private address',
    );
    await expect(resolveSafeAddress(new URL('http://[::1]:8080/'), { resolve: noDns })).rejects.toThrow(
      /::1, a loopback address/,
    );
    await expect(
      resolveSafeAddress(new URL('http://[::1]:8080/'), { resolve: noDns, allowLoopback: true }),
    ).resolves.toEqual({ address: '::1', family: 6 });
  });

  it('refuses a host that resolves to nothing', async () => {
    await expect(check('https://nothing.test/x')).rejects.toThrow(/resolves to no address/);
  });
});

describe('Function: pinnedLookup', () => {
  it('answers the pinned address whatever name is asked, in both callback forms', () => {
    const lookup = pinnedLookup({ address: '127.0.0.1', family: 4 });
    const single: unknown[] = [];
    lookup('rebound.example', {}, (...args) => single.push(...args));
    expect(single).toEqual([null, '127.0.0.1', 4]);
    const all: unknown[] = [];
    lookup('rebound.example', { all: true }, (...args) => all.push(...args));
    expect(all).toEqual([null, [{ address: '127.0.0.1', family: 4 }]]);
  });
});

describe('Function: redactUrl', () => {
  it('hides userinfo, the credential parameter and parameters that look secret', () => {
    const url =
      'https://u:pw-secret@example.com/f.json?api=tok-1&token=tok-2&X-Amz-Signature=sig-3&page=2#frag-4';
    const shown = redactUrl(url, ['api']);
    expect(shown).toBe('https://***@example.com/f.json?api=***&token=***&X-Amz-Signature=***&page=2');
    for (const secret of ['pw-secret', 'tok-1', 'tok-2', 'sig-3', 'frag-4'])
      expect(shown).not.toContain(secret);
  });

  it('does not echo an unparseable URL', () => {
    expect(redactUrl('::not a url with a secret::')).toBe('<invalid URL>');
  });
});

describe('Function: normalizeSourceUrl', () => {
  it.each([
    ['HTTPS://Payer.Example:443/a/b.json.gz', 'https://payer.example/a/b.json.gz'],
    ['https://h/a.json?b=2&a=1#frag', 'https://h/a.json?a=1&b=2'],
    ['https://h/a.json?sig=x&se=2026&sp=r&sv=1&file=3', 'https://h/a.json?file=3'],
    ['https://h/a.json?token=abc', 'https://h/a.json'],
    ['http://h:8080/a', 'http://h:8080/a'],
    [
      'https://b.s3.amazonaws.com/f.json?X-Amz-Algorithm=a&X-Amz-Credential=c&X-Amz-Date=d&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s',
      'https://b.s3.amazonaws.com/f.json',
    ],
    [
      'https://d.cloudfront.net/f.json?Expires=1&Signature=s&Key-Pair-Id=k',
      'https://d.cloudfront.net/f.json',
    ],
    ['https://h/f.json?AWSAccessKeyId=a&Expires=1&Signature=s&part=2', 'https://h/f.json?part=2'],
    ['https://h/f.json?key=api-key&api_key=k&access_token=t', 'https://h/f.json'],
    // Credentials under names of their own: still no part of the identity (nor kept in the lake).
    [
      'https://h/f.json?accessToken=t&X-Api-Key=k&sessionToken=s&oauth_token=o&apiKey=a&clientSecret=c&part=1',
      'https://h/f.json?part=1',
    ],
    [
      'https://h/f.json?accesstoken=1&authtoken=2&secretkey=3&clientsecret=4&privatekey=5&app_key=6&user_key=7&JSESSIONID=8&page_access_token=9&csrftoken=10&part=1',
      'https://h/f.json?part=1',
    ],
    [
      'https://h/f.json?oauth_consumer_key=k&oauth_nonce=n&oauth_timestamp=1&oauth_signature=s&oauth_callback=c',
      'https://h/f.json?oauth_callback=c',
    ],
  ])('normalizes %s to %s', (url, expected) => {
    expect(normalizeSourceUrl(url)).toBe(expected);
  });

  it.each([
    ['file_key', 'https://h/export?file_key=a', 'https://h/export?file_key=b'],
    ['objectKey', 'https://h/export?objectKey=a', 'https://h/export?objectKey=b'],
    ['author', 'https://h/export?author=a', 'https://h/export?author=b'],
    ['pageToken', 'https://h/export?pageToken=a', 'https://h/export?pageToken=b'],
    ['st, without a SAS signature', 'https://h/export?st=CA', 'https://h/export?st=NY'],
    ['sp, without a SAS signature', 'https://h/export?sp=1', 'https://h/export?sp=2'],
    ['filesig', 'https://h/export?filesig=a', 'https://h/export?filesig=b'],
    ['policy_id', 'https://h/export?policy_id=1', 'https://h/export?policy_id=2'],
    ['expiry_date', 'https://h/export?expiry_date=2026-01', 'https://h/export?expiry_date=2026-02'],
    ['sig_figs', 'https://h/export?sig_figs=2', 'https://h/export?sig_figs=3'],
    ['nextPageToken', 'https://h/export?nextPageToken=a', 'https://h/export?nextPageToken=b'],
  ])('keeps a parameter that tells two files apart (%s): two sources, not one', (_name, a, b) => {
    expect(normalizeSourceUrl(a)).toBe(a);
    expect(normalizeSourceUrl(a)).not.toBe(normalizeSourceUrl(b));
  });
});

describe('Function: landingKey', () => {
  /** The key without its per-source hash folder: what the file name becomes. */
  const key = (url: string) => landingKey('tic', new URL(url)).replace(/\/[0-9a-f]{16}\//, '/');
  it.each([
    ['https://h/data/in-network.json.gz', '_downloads/tic/in-network.json.gz'],
    ['https://h/data/in-network.json.gz?token=abc', '_downloads/tic/in-network.json.gz'],
    ['https://h/a/..%2f..%2fetc%2fpasswd', '_downloads/tic/passwd'],
    ['https://h/a/%2e%2e/%2e%2e/secret.txt', '_downloads/tic/secret.txt'],
    ['https://h/a/..%5c..%5cwindows%5cwin.ini', '_downloads/tic/win.ini'],
    ['https://h/a/..\\..\\boot.ini', '_downloads/tic/boot.ini'],
    ['https://h/%2e%2e', '_downloads/tic/source'],
    ['https://h/a/%2e%2e%2f', '_downloads/tic/source'],
    ['https://h/dir/', '_downloads/tic/source'],
    ['https://h', '_downloads/tic/source'],
    ['https://h/.hidden', '_downloads/tic/hidden'],
    ['https://h/na%20me%00.json', '_downloads/tic/na_me_.json'],
    ['https://h/bad%E0%A4%A', '_downloads/tic/bad_E0_A4_A'],
  ])('keys %s as %s', (url, expected) => {
    expect(key(url)).toBe(expected);
  });

  it('lands two URLs with the same file name under different keys, and one URL always under one key', () => {
    const a = landingKey('tic', new URL('https://payer-a.example/mrf/in-network-rates.json.gz'));
    const b = landingKey('tic', new URL('https://payer-b.example/mrf/in-network-rates.json.gz'));
    const c = landingKey('tic', new URL('https://payer-a.example/2026-12/in-network-rates.json.gz'));
    expect(new Set([a, b, c]).size).toBe(3);
    expect(a).toMatch(/^_downloads\/tic\/[0-9a-f]{16}\/in-network-rates\.json\.gz$/);
    // A renewed signature or token is the same source; another file behind the same path is not.
    const signed = (sig: string) =>
      landingKey(
        'tic',
        new URL(
          `https://payer-a.example/mrf/in-network-rates.json.gz?X-Amz-Signature=${sig}&X-Amz-Expires=60`,
        ),
      );
    expect(signed('aaa')).toBe(a);
    expect(signed('bbb')).toBe(a);
    expect(landingKey('tic', new URL('https://h/get?file=1&token=x'))).not.toBe(
      landingKey('tic', new URL('https://h/get?file=2&token=x')),
    );
  });

  it('refuses a dataset name that is not one safe segment', () => {
    for (const dataset of ['', '..', 'a/b', 'a\\b', '.x']) {
      expect(() => landingKey(dataset, new URL('https://h/f')), dataset).toThrow(InvalidKeyError);
    }
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}
