import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { inspect } from 'node:util';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SecretsManagerStore } from '../../shared/adapters/aws/secrets-manager-store.ts';
import { EnvSecretStore, secretEnvName } from '../../shared/adapters/local/env-secret-store.ts';
import { FileSecretStore } from '../../shared/adapters/local/file-secret-store.ts';
import { SecretNotFoundError, TransientError } from '../../shared/errors.ts';
import { tempDir } from '../helpers/lake.ts';

const SECRET = 'p@ss-w0rd-from-secrets-manager';

/** The part of Secrets Manager the store uses: `GetSecretValue` over the AWS JSON 1.1 protocol. */
interface FakeSecretsManager {
  readonly endpoint: string;
  readonly secrets: Map<string, string>;
  /** SecretIds asked for, in order. */
  readonly calls: string[];
  /** The status to answer with instead, once (e.g. 500). */
  failNext?: number;
  close(): Promise<void>;
}

async function startFakeSecretsManager(): Promise<FakeSecretsManager> {
  const fake = {
    secrets: new Map<string, string>(),
    calls: [] as string[],
    failNext: undefined as number | undefined,
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      const reply = (status: number, payload: unknown) =>
        res
          .writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'test' })
          .end(JSON.stringify(payload));
      if (req.method !== 'POST' || req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') {
        return reply(400, {
          __type: 'UnknownOperationException',
          message: String(req.headers['x-amz-target']),
        });
      }
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      fake.calls.push(SecretId);
      if (fake.failNext !== undefined) {
        const status = fake.failNext;
        fake.failNext = undefined;
        return reply(status, { __type: 'InternalServiceError', message: 'try again' });
      }
      const value = fake.secrets.get(SecretId);
      if (value === undefined) {
        return reply(400, {
          __type: 'ResourceNotFoundException',
          message: "Secrets Manager can't find the specified secret.",
        });
      }
      const arn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${SecretId}-AbCdEf`;
      reply(200, {
        ARN: arn,
        Name: SecretId,
        SecretString: value,
        VersionId: 'v1',
        CreatedDate: 1_767_225_600,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

let fake: FakeSecretsManager;
let client: SecretsManagerClient;

beforeAll(async () => {
  fake = await startFakeSecretsManager();
  client = new SecretsManagerClient({
    endpoint: fake.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret-key' },
    // The store decides what is transient; SDK retries would only hide the 500 test's request count.
    maxAttempts: 1,
  });
});
afterAll(async () => {
  client?.destroy();
  await fake?.close();
});
beforeEach(() => {
  fake.secrets.clear();
  fake.calls.length = 0;
  fake.failNext = undefined;
});

describe('Class: SecretsManagerStore', () => {
  const makeStore = (ttlMs = 60_000) => {
    let now = 1_000_000;
    const store = new SecretsManagerStore({ client, ttlMs, now: () => now });
    return { store, advance: (ms: number) => (now += ms) };
  };

  it('reads a secret string through the real SDK client', async () => {
    fake.secrets.set('sources/acme/token', SECRET);
    const { store } = makeStore();
    await expect(store.getSecret('sources/acme/token')).resolves.toBe(SECRET);
    expect(fake.calls).toEqual(['sources/acme/token']);
  });

  it('serves a second read within the TTL from its cache, without a request', async () => {
    fake.secrets.set('token', SECRET);
    const { store, advance } = makeStore(60_000);
    await store.getSecret('token');
    advance(59_999);
    await expect(store.getSecret('token')).resolves.toBe(SECRET);
    expect(fake.calls).toEqual(['token']);
  });

  it('fetches again once the TTL has passed, picking up a rotated value', async () => {
    fake.secrets.set('token', SECRET);
    const { store, advance } = makeStore(60_000);
    await store.getSecret('token');
    fake.secrets.set('token', 'rotated-value');
    advance(60_000);
    await expect(store.getSecret('token')).resolves.toBe('rotated-value');
    expect(fake.calls).toEqual(['token', 'token']);
  });

  it('shares one request between concurrent reads of the same id', async () => {
    fake.secrets.set('token', SECRET);
    const { store } = makeStore();
    const values = await Promise.all([
      store.getSecret('token'),
      store.getSecret('token'),
      store.getSecret('token'),
    ]);
    expect(values).toEqual([SECRET, SECRET, SECRET]);
    expect(fake.calls).toEqual(['token']);
  });

  it('maps a missing secret to SecretNotFoundError naming the id, and does not cache the failure', async () => {
    fake.secrets.set('other', SECRET);
    const { store } = makeStore();
    const error = await rejection(store.getSecret('sources/missing'));
    expect(error).toBeInstanceOf(SecretNotFoundError);
    expect(error).toMatchObject({ name: 'SecretNotFoundError', secretId: 'sources/missing' });
    expect(error.message).toBe('secret "sources/missing" not found in AWS Secrets Manager');
    expect(inspect(error, { depth: 10 })).not.toContain(SECRET);
    fake.secrets.set('sources/missing', 'now-there');
    await expect(store.getSecret('sources/missing')).resolves.toBe('now-there');
    expect(fake.calls).toEqual(['sources/missing', 'sources/missing']);
  });

  it('maps a service error to a TransientError naming the id, and retries on the next read', async () => {
    fake.secrets.set('token', SECRET);
    fake.failNext = 500;
    const { store } = makeStore();
    const error = await rejection(store.getSecret('token'));
    expect(error).toBeInstanceOf(TransientError);
    expect(error.message).toMatch(/^Secrets Manager: reading secret "token" failed: InternalServiceError/);
    await expect(store.getSecret('token')).resolves.toBe(SECRET);
  });
});

describe('Class: EnvSecretStore', () => {
  it('reads SLUICE_SECRET_<ID uppercased, non-alphanumerics as _>', async () => {
    expect(secretEnvName('sources/acme-api.token')).toBe('SLUICE_SECRET_SOURCES_ACME_API_TOKEN');
    const store = new EnvSecretStore({ SLUICE_SECRET_SOURCES_ACME_API_TOKEN: SECRET });
    await expect(store.getSecret('sources/acme-api.token')).resolves.toBe(SECRET);
  });

  it('fails with SecretNotFoundError naming the variable when it is unset or empty', async () => {
    const store = new EnvSecretStore({ SLUICE_SECRET_EMPTY: '' });
    await expect(store.getSecret('missing')).rejects.toThrow(
      'secret "missing" not found in environment variable SLUICE_SECRET_MISSING',
    );
    await expect(store.getSecret('empty')).rejects.toBeInstanceOf(SecretNotFoundError);
  });
});

describe('Class: FileSecretStore', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir('sluice-secrets-'));
  });
  afterEach(async () => {
    await cleanup();
  });

  it('reads values from a JSON object of id to value', async () => {
    const file = path.join(dir, 'secrets.json');
    await writeFile(file, JSON.stringify({ 'sources/acme': SECRET }));
    const store = new FileSecretStore(file);
    await expect(store.getSecret('sources/acme')).resolves.toBe(SECRET);
    await expect(store.getSecret('nope')).rejects.toThrow(`secret "nope" not found in secrets file ${file}`);
  });

  it('never quotes the file in its errors, even for invalid JSON', async () => {
    const file = path.join(dir, 'broken.json');
    await writeFile(file, `{"sources/acme": "${SECRET}", oops}`);
    const error = await rejection(new FileSecretStore(file).getSecret('sources/acme'));
    expect(error.name).toBe('ConfigError');
    expect(error.message).toMatch(/not valid JSON/);
    expect(inspect(error, { depth: 10 })).not.toContain(SECRET);

    const notStrings = path.join(dir, 'numbers.json');
    await writeFile(notStrings, JSON.stringify({ a: 123456789 }));
    await expect(new FileSecretStore(notStrings).getSecret('a')).rejects.toThrow(
      'the value of "a" is not a string',
    );
  });

  it('retries reading a file that was missing at first', async () => {
    const file = path.join(dir, 'later.json');
    const store = new FileSecretStore(file);
    await expect(store.getSecret('a')).rejects.toThrow(/cannot read it \(ENOENT\)/);
    await writeFile(file, JSON.stringify({ a: SECRET }));
    await expect(store.getSecret('a')).resolves.toBe(SECRET);
  });
});

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}
