import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { readdir, readFile } from 'node:fs/promises';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { inspect } from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileObjectStore, TMP_DIR_NAME } from '../../shared/adapters/local/file-object-store.ts';
import {
  ChecksumMismatchError,
  DownloadError,
  SecretNotFoundError,
  TransientError,
  UnsafeUrlError,
} from '../../shared/errors.ts';
import type { SecretStore } from '../../shared/ports/secret-store.ts';
import type { CredentialsRef } from '../../shared/stages/download/credentials.ts';
import {
  type DownloadInput,
  type DownloadResult,
  downloadToLanding,
  type FetchOptions,
  type RetryEvent,
} from '../../shared/stages/download/download.ts';
import { landingKey } from '../../shared/stages/download/landing-key.ts';
import { CircuitBreaker, HostLimiter } from '../../shared/stages/download/resilience.ts';
import { type FlakyServer, type Route, sha256Hex, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { fixedClock, listFiles, tempDir } from '../helpers/lake.ts';

const KiB = 1024;
/** Served content: random, so a misplaced or repeated range cannot hash the same. */
const BODY = randomBytes(256 * KiB);
const OTHER_BODY = randomBytes(200 * KiB);

let server: FlakyServer;
let other: FlakyServer;

beforeAll(async () => {
  server = await startFlakyServer();
  other = await startFlakyServer();
});
afterAll(async () => {
  await server?.close();
  await other?.close();
});

let root: string;
let cleanup: () => Promise<void>;
let landing: FileObjectStore;
let retries: RetryEvent[];

beforeEach(async () => {
  ({ dir: root, cleanup } = await tempDir('sluice-download-'));
  landing = new FileObjectStore(root);
  server.reset();
  other.reset();
  retries = [];
});
afterEach(async () => {
  await cleanup();
});

/** Fast settings for tests: loopback and http allowed, tiny backoff (real waits), own breaker and limiter. */
function fetchOptions(overrides: FetchOptions = {}): FetchOptions {
  return {
    allowLoopback: true,
    allowInsecureHttp: true,
    connectTimeoutMs: 2_000,
    idleTimeoutMs: 2_000,
    maxAttempts: 4,
    baseDelayMs: 5,
    maxDelayMs: 50,
    circuitBreaker: new CircuitBreaker({ failureThreshold: 100 }),
    hostLimiter: new HostLimiter({ requestsPerSecond: Number.POSITIVE_INFINITY }),
    ...overrides,
  };
}

const noSecrets: SecretStore = {
  getSecret: async (id) => {
    throw new SecretNotFoundError(id, 'the test store');
  },
};

/** A download without a budget: it lands in one invocation. */
async function download(
  input: Partial<DownloadInput> & { url: string },
  options: FetchOptions = {},
  secrets: SecretStore = noSecrets,
): Promise<DownloadResult> {
  const outcome = await downloadToLanding(
    { dataset: 'ds', ...input },
    {
      landing,
      secrets,
      clock: fixedClock,
      fetchOptions: fetchOptions(options),
      onRetry: (event) => retries.push(event),
    },
  );
  if (outcome.status !== 'landed') throw new Error(`expected a landed download, got ${outcome.status}`);
  return outcome;
}

/** Serve `route` at `path` and return its URL. */
function serve(path: string, route: Partial<Route> = {}, on: FlakyServer = server): string {
  on.route(path, { content: { body: BODY }, ...route });
  return on.url(path);
}

async function landed(key: string): Promise<Buffer> {
  return buffer(await landing.read(key));
}

/** The landing key of a file name: `_downloads/<dataset>/<hash of the URL>/<name>`. */
const landingKeyPattern = (key: string) =>
  new RegExp(
    `^${key.replace(/[^/]+$/, '').replace(/[.]/g, '\\.')}[0-9a-f]{16}/${key.split('/').at(-1)!.replace(/[.]/g, '\\.')}$`,
  );

/** Nothing under the key (in any URL's folder), and no file anywhere under the store root (its temp dir is empty). */
async function expectNothingLanded(key: string): Promise<void> {
  for await (const object of landing.list('_downloads/'))
    expect(object.key).not.toMatch(landingKeyPattern(key));
  expect(await listFiles(root)).toEqual([]);
  const entries = await readdir(root).catch(() => []);
  expect(entries.filter((e) => e !== TMP_DIR_NAME)).toEqual([]);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the download to fail');
}

describe('Function: downloadToLanding', () => {
  describe('success', () => {
    it('streams the body into landing under <dataset>/<file name> in one attempt', async () => {
      const result = await download({ url: serve('/files/in-network.json.gz') });
      expect(result).toEqual({
        status: 'landed',
        key: expect.stringMatching(landingKeyPattern('_downloads/ds/in-network.json.gz')),
        bytes: BODY.length,
        sha256: sha256Hex(BODY),
        attempts: 1,
        resumed: false,
        invocations: 1,
      });
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(BODY));
      expect(server.requests[0]?.headers['accept-encoding']).toBe('identity');
    });

    it('accepts a matching sha256, in any case', async () => {
      const result = await download({ url: serve('/ok.bin'), sha256: sha256Hex(BODY).toUpperCase() });
      expect(result.sha256).toBe(sha256Hex(BODY));
    });

    it('lands an empty body as an empty object', async () => {
      const result = await download({ url: serve('/empty.bin', { content: { body: Buffer.alloc(0) } }) });
      expect(result.bytes).toBe(0);
      expect(result.key).toMatch(landingKeyPattern('_downloads/ds/empty.bin'));
      expect((await landing.head(result.key))?.size).toBe(0);
    });

    it('streams a chunked body of unknown length', async () => {
      const result = await download({ url: serve('/chunked.bin', { contentLength: false }) });
      expect(result.sha256).toBe(sha256Hex(BODY));
    });

    it('keys a traversal attempt in the URL path as a plain file name inside the dataset', async () => {
      const url = serve('/a/..%2f..%2f..%2fescape.bin');
      const result = await download({ url });
      expect(result.key).toMatch(landingKeyPattern('_downloads/ds/escape.bin'));
      // The landed object, and beside it the validators the next download sends (If-None-Match).
      const folder = result.key.slice(0, result.key.lastIndexOf('/'));
      expect(await listFiles(root)).toEqual(
        [path.join(...folder.split('/'), '_validators.json'), path.join(...result.key.split('/'))].sort(),
      );
      expect(await readdir(path.dirname(root))).not.toContain('escape.bin');
    });
  });

  describe('retries', () => {
    it('retries 500 and 503 with backoff, then succeeds', async () => {
      const url = serve('/f.bin', {
        steps: [
          { kind: 'status', status: 500 },
          { kind: 'status', status: 503 },
        ],
      });
      const result = await download({ url });
      expect(result.attempts).toBe(3);
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(BODY));
      expect(retries.map((r) => r.error)).toEqual([
        `TransientError: ${url}: HTTP 500 Internal Server Error`,
        `TransientError: ${url}: HTTP 503 Service Unavailable`,
      ]);
      // Full jitter: each wait is below base * 2^(retry-1).
      expect(retries[0]!.delayMs).toBeLessThan(5);
      expect(retries[1]!.delayMs).toBeLessThan(10);
    });

    it('honours Retry-After in seconds and as an HTTP-date on 429, capped at maxDelayMs', async () => {
      const url = serve('/limited.bin', {
        steps: [
          { kind: 'status', status: 429, retryAfter: '1' },
          { kind: 'status', status: 429, retryAfter: 'Thu, 01 Jan 2026 00:00:01 GMT' },
          { kind: 'status', status: 429, retryAfter: '3600' },
        ],
      });
      // The waits are real (cockatiel's own timer), so they are kept short: 1 + 1 + 1.2 s.
      const result = await download({ url }, { maxDelayMs: 1_200, maxAttempts: 4 });
      expect(result.attempts).toBe(4);
      // fixedClock says 2026-01-01T00:00:00Z, so the date is 1 s away; an hour is capped.
      expect(retries.map((r) => r.delayMs)).toEqual([1_000, 1_000, 1_200]);
    });

    it('retries a request that gets no response headers within the idle timeout', async () => {
      const url = serve('/hang.bin', { steps: [{ kind: 'hang' }] });
      const result = await download({ url }, { idleTimeoutMs: 100 });
      expect(result.attempts).toBe(2);
      expect(retries[0]?.error).toBe(`TransientError: ${url}: no response headers within 100 ms`);
    });

    it('retries a refused connection', async () => {
      const closed = await startFlakyServer();
      const url = closed.url('/gone.bin');
      await closed.close();
      const error = await failure(download({ url }, { maxAttempts: 2 }));
      expect(error).toBeInstanceOf(TransientError);
      expect(error.message).toContain(`${url}: connection failed (ECONNREFUSED)`);
      await expectNothingLanded('_downloads/ds/gone.bin');
    });

    it('gives up after maxAttempts with a TransientError naming URL, key and last cause; nothing lands', async () => {
      const url = serve('/down.bin', { steps: Array(10).fill({ kind: 'status', status: 502 }) });
      const error = await failure(download({ url }, { maxAttempts: 3 }));
      expect(error).toBeInstanceOf(TransientError);
      expect(error.name).toBe('TransientError');
      expect(error.message).toBe(
        `download of ${url} to landing key ${landingKey('ds', new URL(url))} gave up after 3 attempts: ${url}: HTTP 502 Bad Gateway`,
      );
      expect(server.requestsTo('/down.bin')).toHaveLength(3);
      await expectNothingLanded('_downloads/ds/down.bin');
    });
  });

  describe('resume', () => {
    it('resumes with Range and If-Range after a reset mid-body', async () => {
      const url = serve('/reset.bin', { steps: [{ kind: 'reset', afterBytes: 100 * KiB }] });
      const result = await download({ url });
      expect(result).toMatchObject({
        attempts: 2,
        resumed: true,
        bytes: BODY.length,
        sha256: sha256Hex(BODY),
      });
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(BODY));
      const [, second] = server.requestsTo('/reset.bin');
      expect(second?.headers.range).toMatch(/^bytes=\d+-$/);
      expect(Number(second?.headers.range?.slice(6, -1))).toBeGreaterThan(0);
      expect(second?.headers['if-range']).toMatch(/^".+"$/);
      expect(retries[0]?.error).toMatch(/connection failed after \d+ bytes \(ECONNRESET\)/);
    });

    it('resumes after a truncated body (fewer bytes than Content-Length)', async () => {
      const url = serve('/truncated.bin', {
        steps: [
          { kind: 'truncate', afterBytes: 50 * KiB },
          { kind: 'truncate', afterBytes: 50 * KiB },
        ],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 3, resumed: true, sha256: sha256Hex(BODY) });
      const ranges = server.requestsTo('/truncated.bin').map((r) => r.headers.range);
      expect(ranges[0]).toBeUndefined();
      expect(ranges.slice(1)).toEqual([
        expect.stringMatching(/^bytes=\d+-$/),
        expect.stringMatching(/^bytes=\d+-$/),
      ]);
    });

    it('starts again from byte 0 when the server does not support ranges', async () => {
      const url = serve('/noranges.bin', {
        ranges: false,
        steps: [{ kind: 'reset', afterBytes: 100 * KiB }],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 2, resumed: false, sha256: sha256Hex(BODY) });
      expect(server.requestsTo('/noranges.bin')[1]?.headers.range).toBeUndefined();
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(BODY));
    });

    it('starts again from byte 0 when the server answers 200 to a Range request', async () => {
      const url = serve('/ignored.bin', {
        ranges: 'ignored',
        steps: [{ kind: 'reset', afterBytes: 100 * KiB }],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 2, resumed: false, sha256: sha256Hex(BODY) });
      expect(server.requestsTo('/ignored.bin')[1]?.headers.range).toBeDefined();
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(BODY));
    });

    it('downloads the new version whole when the ETag changed between attempts (If-Range)', async () => {
      const url = serve('/changing.bin', {
        content: { body: BODY, etag: '"v1"' },
        versions: [undefined, { body: OTHER_BODY, etag: '"v2"' }],
        steps: [{ kind: 'reset', afterBytes: 100 * KiB }],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 2, resumed: false, sha256: sha256Hex(OTHER_BODY) });
      expect(server.requestsTo('/changing.bin')[1]?.headers['if-range']).toBe('"v1"');
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(OTHER_BODY));
    });

    it('does not splice versions when a server ignores If-Range and sends a 206 with a new ETag', async () => {
      const url = serve('/broken.bin', {
        content: { body: BODY, etag: '"v1"' },
        versions: [undefined, { body: OTHER_BODY, etag: '"v2"' }],
        ignoreIfRange: true,
        steps: [{ kind: 'reset', afterBytes: 100 * KiB }],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 3, resumed: false, sha256: sha256Hex(OTHER_BODY) });
      expect(retries[1]?.error).toMatch(
        /cannot resume \(.*the ETag changed from "v1" to "v2"\); starting again/,
      );
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(OTHER_BODY));
    });

    it('starts again from byte 0 when the server sends no ETag nor Last-Modified, rather than splice versions', async () => {
      // On main the second request asked for the rest by Range with nothing to check it against: the file
      // replaced meanwhile by another of the same size landed spliced, the first's head and the second's tail.
      const same = randomBytes(BODY.length);
      const url = serve('/unvalidated.bin', {
        validators: false,
        versions: [undefined, { body: same }],
        steps: [{ kind: 'reset', afterBytes: 100 * KiB }],
      });
      const result = await download({ url });
      expect(result).toMatchObject({ attempts: 2, resumed: false, sha256: sha256Hex(same) });
      expect(server.requestsTo('/unvalidated.bin')[1]?.headers.range).toBeUndefined();
      expect(sha256Hex(await landed(result.key))).toBe(sha256Hex(same));
    });

    it('fails a slow drip with an idle timeout after its attempts; nothing lands', async () => {
      const url = serve('/drip.bin', {
        content: { body: BODY.subarray(0, 4 * KiB) },
        steps: Array(5).fill({ kind: 'drip', bytesPerTick: 256, tickMs: 400 }),
      });
      const error = await failure(download({ url }, { idleTimeoutMs: 150, maxAttempts: 2 }));
      expect(error).toBeInstanceOf(TransientError);
      expect(error.message).toMatch(`gave up after 2 attempts: ${url}: no data for 150 ms`);
      await expectNothingLanded('_downloads/ds/drip.bin');
    });

    it('accepts a drip that is faster than the idle timeout', async () => {
      const url = serve('/trickle.bin', {
        content: { body: BODY.subarray(0, 2 * KiB) },
        steps: [{ kind: 'drip', bytesPerTick: 512, tickMs: 20 }],
      });
      const result = await download({ url }, { idleTimeoutMs: 500 });
      expect(result).toMatchObject({ attempts: 1, bytes: 2 * KiB });
    });
  });

  describe('permanent failures', () => {
    it('fails at once on a 404 with a DownloadError carrying the status; nothing lands', async () => {
      const url = server.url('/missing.bin');
      const error = await failure(download({ url }));
      expect(error).toBeInstanceOf(DownloadError);
      expect(error).toMatchObject({ name: 'DownloadError', status: 404, url });
      expect(error.message).toBe(`download ${url}: HTTP 404 Not Found`);
      expect(server.requests).toHaveLength(1);
      await expectNothingLanded('_downloads/ds/missing.bin');
    });

    it('fails fast when Content-Length is above maxBytes', async () => {
      const url = serve('/big.bin');
      const error = await failure(download({ url, maxBytes: 1000 }));
      expect(error).toBeInstanceOf(DownloadError);
      expect(error.message).toBe(
        `download ${url}: the body is ${BODY.length} bytes, more than maxBytes (1000)`,
      );
      expect(server.requests).toHaveLength(1);
      await expectNothingLanded('_downloads/ds/big.bin');
    });

    it('aborts a body of unknown length as soon as it passes maxBytes', async () => {
      const url = serve('/big-chunked.bin', { contentLength: false });
      const error = await failure(download({ url, maxBytes: 10 * KiB }));
      expect(error).toBeInstanceOf(DownloadError);
      expect(error.message).toBe(`download ${url}: the body is more than maxBytes (10240) bytes`);
      await expectNothingLanded('_downloads/ds/big-chunked.bin');
    });

    it('fails with ChecksumMismatchError on a wrong sha256 and lands nothing', async () => {
      const url = serve('/tampered.bin');
      const declared = sha256Hex(OTHER_BODY);
      const error = await failure(download({ url, sha256: declared }));
      expect(error).toBeInstanceOf(ChecksumMismatchError);
      expect(error.message).toBe(`${url}: sha256 mismatch: expected ${declared}, got ${sha256Hex(BODY)}`);
      await expectNothingLanded('_downloads/ds/tampered.bin');
    });

    it('checks the sha256 of a resumed download over all its parts', async () => {
      const url = serve('/resumed-bad.bin', { steps: [{ kind: 'reset', afterBytes: 64 * KiB }] });
      const error = await failure(download({ url, sha256: sha256Hex(OTHER_BODY) }));
      expect(error).toBeInstanceOf(ChecksumMismatchError);
      await expectNothingLanded('_downloads/ds/resumed-bad.bin');
    });
  });

  describe('untrusted URLs', () => {
    it('refuses plain http by default and loopback unless allowed, without sending a request', async () => {
      const url = serve('/f.bin');
      await expect(download({ url }, { allowInsecureHttp: false })).rejects.toThrow(UnsafeUrlError);
      await expect(download({ url }, { allowLoopback: false })).rejects.toThrow(
        `refusing to fetch ${url}: 127.0.0.1, a loopback address (set allowLoopback to permit it)`,
      );
      expect(server.requests).toHaveLength(0);
    });

    it('follows redirects, re-checking each hop; the key comes from the requested URL', async () => {
      serve('/final/data.bin');
      server.route('/hop1', { content: { body: BODY }, steps: [{ kind: 'redirect', location: '/hop2' }] });
      server.route('/hop2', {
        content: { body: BODY },
        steps: [{ kind: 'redirect', location: '/final/data.bin', status: 307 }],
      });
      const url = serve('/start.bin', { steps: [{ kind: 'redirect', location: server.url('/hop1') }] });
      const result = await download({ url });
      expect(result).toMatchObject({
        key: expect.stringMatching(landingKeyPattern('_downloads/ds/start.bin')),
        attempts: 1,
        sha256: sha256Hex(BODY),
      });
      expect(server.requests.map((r) => r.path)).toEqual(['/start.bin', '/hop1', '/hop2', '/final/data.bin']);
    });

    it.each([
      ['http://10.0.0.1/internal.bin', '10.0.0.1, a private address (set allowPrivate to permit it)'],
      ['http://169.254.169.254/latest/meta-data/', '169.254.169.254, a link-local address'],
      ['http://[::ffff:169.254.169.254]/latest/', '::ffff:a9fe:a9fe, a link-local address'],
      ['http://100.64.0.1/x', '100.64.0.1, a private address (set allowPrivate to permit it)'],
    ])('refuses a redirect to %s even though the first host was allowed', async (location, reason) => {
      const url = serve('/redirect.bin', { steps: [{ kind: 'redirect', location }] });
      // A long connect timeout: were the address not refused before connecting, the test would hang.
      const error = await failure(download({ url }, { connectTimeoutMs: 30_000 }));
      expect(error).toBeInstanceOf(UnsafeUrlError);
      expect(error.message).toBe(
        `refusing to fetch ${new URL(location).href}: ${reason}; redirected to by ${url}`,
      );
      await expectNothingLanded('_downloads/ds/redirect.bin');
    });

    it('refuses a redirect to another scheme', async () => {
      const url = serve('/to-file.bin', { steps: [{ kind: 'redirect', location: 'file:///etc/passwd' }] });
      await expect(download({ url })).rejects.toThrow(/scheme file: is not allowed/);
    });

    it('stops after 5 redirects', async () => {
      const url = serve('/loop.bin', { steps: Array(10).fill({ kind: 'redirect', location: '/loop.bin' }) });
      const error = await failure(download({ url }));
      expect(error).toBeInstanceOf(DownloadError);
      expect(error.message).toBe(`download ${url}: more than 5 redirects (the last from ${url})`);
      expect(server.requestsTo('/loop.bin')).toHaveLength(6);
    });

    it('connects to the address it validated, resolving each host once (no DNS rebinding)', async () => {
      const answers = [['127.0.0.1'], ['10.0.0.1']];
      const asked: string[] = [];
      const resolve = async (host: string): Promise<LookupAddress[]> => {
        asked.push(host);
        return (answers.shift() ?? ['10.0.0.1']).map((address) => ({ address, family: 4 }));
      };
      serve('/pinned.bin');
      const url = `http://source.test:${server.port}/pinned.bin`;
      const result = await download({ url }, { resolve });
      expect(result.sha256).toBe(sha256Hex(BODY));
      expect(asked).toEqual(['source.test']);
      expect(server.requests[0]?.headers.host).toBe(`source.test:${server.port}`);
    });

    it('refuses a host name that resolves to any private address', async () => {
      const resolve = async (): Promise<LookupAddress[]> => [
        { address: '127.0.0.1', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ];
      const url = `http://mixed.test:${server.port}/f.bin`;
      await expect(download({ url }, { resolve })).rejects.toThrow(
        `refusing to fetch ${url}: mixed.test resolves to 10.0.0.7, a private address`,
      );
      expect(server.requests).toHaveLength(0);
    });
  });

  describe('credentials', () => {
    const SECRET = 'sUp3r-s3cret-t0ken';
    const store = (values: Record<string, string>): SecretStore => ({
      getSecret: async (id) => {
        const value = values[id];
        if (value === undefined) throw new SecretNotFoundError(id, 'the test store');
        return value;
      },
    });
    const secrets = store({ 'src/token': SECRET, 'src/basic': `alice:${SECRET}` });

    it.each<[string, CredentialsRef, (headers: Record<string, unknown>, url: string) => void]>([
      [
        'bearer',
        { secretId: 'src/token', kind: 'bearer' },
        (h) => expect(h.authorization).toBe(`Bearer ${SECRET}`),
      ],
      [
        'basic',
        { secretId: 'src/basic', kind: 'basic' },
        (h) => expect(h.authorization).toBe(`Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`),
      ],
      [
        'header',
        { secretId: 'src/token', kind: 'header', name: 'X-Api-Key' },
        (h) => expect(h['x-api-key']).toBe(SECRET),
      ],
      [
        'query',
        { secretId: 'src/token', kind: 'query', name: 'api_token' },
        (_h, url) => expect(new URL(url, 'http://x').searchParams.get('api_token')).toBe(SECRET),
      ],
    ])('sends a %s credential, and returns nothing of it', async (_kind, credentials, check) => {
      const url = serve('/private.bin');
      const result = await download({ url, credentials }, {}, secrets);
      const seen = server.requests[0]!;
      check(seen.headers, seen.url);
      expect(JSON.stringify(result)).not.toContain(SECRET);
    });

    it('does not send credential headers to another origin it is redirected to', async () => {
      const elsewhere = serve('/elsewhere.bin', {}, other);
      const url = serve('/auth.bin', { steps: [{ kind: 'redirect', location: elsewhere }] });
      await download({ url, credentials: { secretId: 'src/token', kind: 'bearer' } }, {}, secrets);
      expect(server.requests[0]?.headers.authorization).toBe(`Bearer ${SECRET}`);
      expect(other.requests[0]?.headers.authorization).toBeUndefined();
    });

    /** Every way an error could leak: message, stack, own properties, causes, util.inspect, JSON. */
    const everything = (error: unknown) => {
      const parts = [inspect(error, { depth: 20, showHidden: true }), JSON.stringify(error)];
      for (let e: unknown = error; e instanceof Error; e = e.cause) parts.push(e.message, e.stack ?? '');
      return parts.join('\n');
    };

    const leaks: [string, CredentialsRef][] = [
      ['bearer', { secretId: 'src/token', kind: 'bearer' }],
      ['basic', { secretId: 'src/basic', kind: 'basic' }],
      ['header', { secretId: 'src/token', kind: 'header', name: 'X-Api-Key' }],
      ['query', { secretId: 'src/token', kind: 'query', name: 'api_token' }],
    ];
    const basicForm = Buffer.from(`alice:${SECRET}`).toString('base64');

    it.each(leaks)('never shows a %s secret in errors or retry events', async (_kind, credentials) => {
      const outcomes: Error[] = [];
      // 5xx until the attempts run out.
      const failing = serve('/fail.bin', { steps: Array(10).fill({ kind: 'status', status: 500 }) });
      outcomes.push(await failure(download({ url: failing, credentials }, { maxAttempts: 2 }, secrets)));
      // A 404.
      outcomes.push(await failure(download({ url: server.url('/nope.bin'), credentials }, {}, secrets)));
      // A redirect that echoes the secret into a forbidden location.
      const echo = serve('/echo.bin', {
        steps: [{ kind: 'redirect', location: `http://10.0.0.1/x?api_token=${SECRET}&token=${SECRET}` }],
      });
      outcomes.push(await failure(download({ url: echo, credentials }, {}, secrets)));
      // ... or into the path of a forbidden location, or of a forbidden scheme.
      const echoPath = serve('/echo-path.bin', {
        steps: [{ kind: 'redirect', location: `http://10.0.0.1/${SECRET}/x` }],
      });
      outcomes.push(await failure(download({ url: echoPath, credentials }, {}, secrets)));
      const echoScheme = serve('/echo-scheme.bin', {
        steps: [{ kind: 'redirect', location: `ftp://example.com/${SECRET}` }],
      });
      outcomes.push(await failure(download({ url: echoScheme, credentials }, {}, secrets)));
      // A reset mid-body, then too many attempts.
      const resets = serve('/resets.bin', { steps: Array(10).fill({ kind: 'reset', afterBytes: 1000 }) });
      outcomes.push(await failure(download({ url: resets, credentials }, { maxAttempts: 2 }, secrets)));
      // A wrong checksum and a size limit.
      const ok = serve('/ok.bin');
      outcomes.push(
        await failure(download({ url: ok, credentials, sha256: sha256Hex(OTHER_BODY) }, {}, secrets)),
      );
      outcomes.push(await failure(download({ url: ok, credentials, maxBytes: 10 }, {}, secrets)));

      expect(outcomes.map((e) => e.name)).toEqual([
        'TransientError',
        'DownloadError',
        'UnsafeUrlError',
        'UnsafeUrlError',
        'UnsafeUrlError',
        'TransientError',
        'ChecksumMismatchError',
        'DownloadError',
      ]);
      const shown = [...outcomes.map(everything), JSON.stringify(retries)].join('\n');
      expect(shown).not.toContain(SECRET);
      expect(shown).not.toContain(basicForm);
      expect(shown).not.toContain(encodeURIComponent(SECRET));
      expect(await listFiles(root)).toEqual([]);
    });

    it('names the secret id, not a value, when the secret is missing or malformed', async () => {
      const url = serve('/f.bin');
      const missing = await failure(
        download({ url, credentials: { secretId: 'nope', kind: 'bearer' } }, {}, secrets),
      );
      expect(missing).toBeInstanceOf(SecretNotFoundError);
      expect(missing.message).toBe('secret "nope" not found in the test store');
      const malformed = await failure(
        download({ url, credentials: { secretId: 'src/token', kind: 'basic' } }, {}, secrets),
      );
      expect(malformed.name).toBe('ConfigError');
      expect(malformed.message).toMatch(/secret "src\/token".*user:password/);
      expect(everything(malformed)).not.toContain(SECRET);
      expect(server.requests).toHaveLength(0);
    });
  });

  describe('per-host politeness', () => {
    it('opens the circuit after consecutive failures and then fails fast without requests', async () => {
      const circuitBreaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 60_000 });
      const url = serve('/flaky.bin', { steps: Array(10).fill({ kind: 'status', status: 500 }) });
      const first = await failure(download({ url }, { circuitBreaker, maxAttempts: 5 }));
      expect(first.name).toBe('TransientError');
      expect(first.message).toMatch(/^circuit open for host 127\.0\.0\.1:\d+ after 2 consecutive failures/);
      expect(server.requests).toHaveLength(2);
      const second = await failure(download({ url: serve('/other.bin') }, { circuitBreaker }));
      expect(second.message).toMatch(/^circuit open/);
      expect(server.requests).toHaveLength(2);
      await expectNothingLanded('_downloads/ds/flaky.bin');
    });

    it('lets a trial through after the cool-down and closes the circuit when it succeeds', async () => {
      // The breaker reads Date.now (cockatiel's clock): only Date is faked, timers and sockets run.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        const circuitBreaker = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 1_000 });
        const url = serve('/recovering.bin', { steps: [{ kind: 'status', status: 503 }] });
        await expect(download({ url }, { circuitBreaker })).rejects.toThrow(/circuit open/);
        vi.setSystemTime(Date.now() + 1_000);
        const result = await download({ url }, { circuitBreaker });
        expect(result.attempts).toBe(1);
        expect(circuitBreaker.state(new URL(url).host)).toBe('closed');
      } finally {
        vi.useRealTimers();
      }
    });

    it('keeps at most maxConcurrent requests open to one host', async () => {
      const hostLimiter = new HostLimiter({ maxConcurrent: 2, requestsPerSecond: Number.POSITIVE_INFINITY });
      const body = BODY.subarray(0, 1 * KiB);
      const urls = [1, 2, 3, 4, 5].map((i) =>
        serve(`/slow-${i}.bin`, {
          content: { body },
          steps: [{ kind: 'drip', bytesPerTick: 256, tickMs: 10 }],
        }),
      );
      const results = await Promise.all(urls.map((url) => download({ url }, { hostLimiter })));
      expect(results.map((r) => r.bytes)).toEqual([1024, 1024, 1024, 1024, 1024]);
      expect(server.maxConcurrent).toBe(2);
      expect(hostLimiter.active(new URL(urls[0]!).host)).toBe(0);
    });
  });
});

/** A self-signed certificate for `source.test`, made with the openssl CLI (the https tests skip without it). */
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

describe.skipIf(!hasOpenssl)('Function: downloadToLanding over https', () => {
  let cert: string;
  let secure: https.Server;
  let securePort: number;
  let silent: net.Server;
  let silentPort: number;
  let certDir: { dir: string; cleanup: () => Promise<void> };
  const pinTo127 = async (): Promise<LookupAddress[]> => [{ address: '127.0.0.1', family: 4 }];

  beforeAll(async () => {
    certDir = await tempDir('sluice-tls-');
    const key = path.join(certDir.dir, 'key.pem');
    const crt = path.join(certDir.dir, 'cert.pem');
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '1',
      '-subj',
      '/CN=source.test',
      '-addext',
      'subjectAltName=DNS:source.test',
    ]);
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
    cert = await readFile(crt, 'utf8');
    secure = https.createServer({ key: await readFile(key), cert }, (req, res) => {
      if (req.url === '/downgrade.bin') {
        res.writeHead(302, { location: server.url('/plain.bin') }).end();
        return;
      }
      res.writeHead(200, { 'content-length': String(BODY.length) }).end(BODY);
    });
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    securePort = (secure.address() as AddressInfo).port;
    // Accepts TCP connections and never says a word: a TLS handshake that does not complete.
    // Reading (and dropping) the ClientHello lets the socket see the client's FIN and close.
    silent = net.createServer((socket) => socket.resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as AddressInfo).port;
  });
  afterAll(async () => {
    secure?.closeAllConnections();
    await new Promise((resolve) => secure?.close(resolve));
    await new Promise((resolve) => silent?.close(resolve));
    await certDir?.cleanup();
  });

  it("verifies the certificate against the URL's host name while connecting to the pinned address", async () => {
    const url = `https://source.test:${securePort}/secure.bin`;
    const result = await download({ url }, { allowInsecureHttp: false, resolve: pinTo127, ca: cert });
    expect(result).toMatchObject({
      key: expect.stringMatching(landingKeyPattern('_downloads/ds/secure.bin')),
      attempts: 1,
      sha256: sha256Hex(BODY),
    });
  });

  it('refuses a certificate for another name at once, as a DownloadError', async () => {
    const url = `https://elsewhere.test:${securePort}/secure.bin`;
    const error = await failure(download({ url }, { resolve: pinTo127, ca: cert }));
    expect(error).toBeInstanceOf(DownloadError);
    expect(error.message).toBe(`download ${url}: request failed (ERR_TLS_CERT_ALTNAME_INVALID)`);
    expect(retries).toEqual([]);
    await expectNothingLanded('_downloads/ds/secure.bin');
  });

  it('retries, then gives up on, a TLS handshake that does not complete within the connect timeout', async () => {
    const url = `https://127.0.0.1:${silentPort}/never.bin`;
    const error = await failure(download({ url }, { connectTimeoutMs: 100, maxAttempts: 2 }));
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toMatch(`gave up after 2 attempts: ${url}: no connection within 100 ms`);
    await expectNothingLanded('_downloads/ds/never.bin');
  });

  it('refuses a redirect from https down to plain http unless allowInsecureHttp is set', async () => {
    serve('/plain.bin');
    const url = `https://source.test:${securePort}/downgrade.bin`;
    const error = await failure(download({ url }, { allowInsecureHttp: false, resolve: pinTo127, ca: cert }));
    expect(error).toBeInstanceOf(UnsafeUrlError);
    expect(error.message).toBe(
      `refusing to fetch ${server.url('/plain.bin')}: plain http is not allowed (set allowInsecureHttp to permit it); redirected to by ${url}`,
    );
    expect(server.requests).toHaveLength(0);
  });
});
