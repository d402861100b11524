import { buffer } from 'node:stream/consumers';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Client, S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { InvalidKeyError, ObjectNotFoundError } from '../../shared/errors.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { describeObjectStoreContract } from '../contract/object-store.contract.ts';
import { type S3TestServer, startS3Server } from '../helpers/s3-server.ts';

let server: S3TestServer;
let buckets = 0;

beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.stop();
});

/** A store on a new, empty bucket; the bucket disappears with the server's temp directory. */
async function makeStore(prefix?: string): Promise<{ store: ObjectStore; cleanup: () => Promise<void> }> {
  const bucket = await server.createBucket(`contract-${++buckets}`);
  return { store: new S3ObjectStore({ client: server.client, bucket, prefix }), cleanup: async () => {} };
}

const S3RVER_ORDER =
  's3rver 3.7.1 lists in the order of its own file names (`a._S3rver_object`), not by key bytes';

describeObjectStoreContract('S3ObjectStore on s3rver', () => makeStore(), {
  skipByteOrderListing: S3RVER_ORDER,
});

describeObjectStoreContract('S3ObjectStore on s3rver with prefix lake/', () => makeStore('lake/'), {
  skipByteOrderListing: S3RVER_ORDER,
});

describe('S3ObjectStore', () => {
  it('stores keys under its prefix and lists them without it', async () => {
    const bucket = await server.createBucket('prefixed');
    const lake = new S3ObjectStore({ client: server.client, bucket, prefix: 'lake/' });
    const whole = new S3ObjectStore({ client: server.client, bucket });
    await lake.write('bronze/x', 'x');
    await whole.write('lakeside/y', 'outside the prefix, though it starts with "lake"');

    const raw = await server.client.send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(raw.Contents?.map((object) => object.Key)).toEqual(['lake/bronze/x', 'lakeside/y']);
    expect(await keys(lake, '')).toEqual(['bronze/x']);
    expect((await buffer(await whole.read('lake/bronze/x'))).toString()).toBe('x');
  });

  it('builds s3:// URIs from bucket, prefix and key', () => {
    const store = new S3ObjectStore({ client: server.client, bucket: 'my-bucket', prefix: 'lake/' });
    expect(store.uri('bronze/ds/part-00001.gz')).toBe('s3://my-bucket/lake/bronze/ds/part-00001.gz');
    expect(new S3ObjectStore({ client: server.client, bucket: 'b' }).uri('k')).toBe('s3://b/k');
  });

  it('rejects a store prefix that is not empty and does not end with /', () => {
    expect(() => new S3ObjectStore({ client: server.client, bucket: 'b', prefix: 'lake' })).toThrow(
      InvalidKeyError,
    );
    expect(() => new S3ObjectStore({ client: server.client, bucket: 'b', prefix: '/lake/' })).toThrow(
      InvalidKeyError,
    );
  });

  it('reports a missing bucket as the SDK error, not as a missing object', async () => {
    const store = new S3ObjectStore({ client: server.client, bucket: 'no-such-bucket' });
    const error = await store.read('k').catch((caught: unknown) => caught);
    expect(error).not.toBeInstanceOf(ObjectNotFoundError);
    expect(error).toMatchObject({ name: 'NoSuchBucket' });
  });

  it('creates clients that compute checksums only when S3 requires them', async () => {
    const client = createS3Client({ region: 'us-east-1' });
    try {
      expect(await client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
      expect(await client.config.responseChecksumValidation()).toBe('WHEN_REQUIRED');
    } finally {
      client.destroy();
    }
  });
});

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const result: string[] = [];
  for await (const info of store.list(prefix)) result.push(info.key);
  return result;
}
