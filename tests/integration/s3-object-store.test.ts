import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONDITIONAL_WRITE_MAX_BYTES,
  createS3Client,
  S3ObjectStore,
} from '../../shared/adapters/aws/s3-object-store.ts';
import { InvalidKeyError, ObjectNotFoundError, PreconditionFailedError } from '../../shared/errors.ts';
import type { ObjectStore, UploadingObjectStore } from '../../shared/ports/object-store.ts';
import { describeObjectStoreContract } from '../contract/object-store.contract.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

const SKIP = motoSkipReason();

describe.skipIf(SKIP !== undefined)(
  `S3ObjectStore on moto_server${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    let server: MotoServer;
    let buckets = 0;

    beforeAll(async () => {
      server = await startMotoServer();
    });
    afterAll(async () => {
      await server?.stop();
    });

    /** A store on a new, empty bucket; the bucket disappears with the server. */
    async function makeStore(
      prefix?: string,
    ): Promise<{ store: UploadingObjectStore; cleanup: () => Promise<void> }> {
      const bucket = await server.createBucket(`contract-${++buckets}`);
      return { store: new S3ObjectStore({ client: server.s3, bucket, prefix }), cleanup: async () => {} };
    }

    describeObjectStoreContract('S3ObjectStore', () => makeStore());

    describeObjectStoreContract('S3ObjectStore with prefix lake/', () => makeStore('lake/'));

    describe('S3ObjectStore', () => {
      it('stores keys under its prefix and lists them without it', async () => {
        const bucket = await server.createBucket('prefixed');
        const lake = new S3ObjectStore({ client: server.s3, bucket, prefix: 'lake/' });
        const whole = new S3ObjectStore({ client: server.s3, bucket });
        await lake.write('bronze/x', 'x');
        await whole.write('lakeside/y', 'outside the prefix, though it starts with "lake"');

        const raw = await server.s3.send(new ListObjectsV2Command({ Bucket: bucket }));
        expect(raw.Contents?.map((object) => object.Key)).toEqual(['lake/bronze/x', 'lakeside/y']);
        expect(await keys(lake, '')).toEqual(['bronze/x']);
        expect((await buffer(await whole.read('lake/bronze/x'))).toString()).toBe('x');
      });

      it('builds s3:// URIs from bucket, prefix and key', () => {
        const store = new S3ObjectStore({ client: server.s3, bucket: 'my-bucket', prefix: 'lake/' });
        expect(store.uri('bronze/ds/part-00001.gz')).toBe('s3://my-bucket/lake/bronze/ds/part-00001.gz');
        expect(new S3ObjectStore({ client: server.s3, bucket: 'b' }).uri('k')).toBe('s3://b/k');
      });

      it('rejects a store prefix that is not empty and does not end with /', () => {
        expect(() => new S3ObjectStore({ client: server.s3, bucket: 'b', prefix: 'lake' })).toThrow(
          InvalidKeyError,
        );
        expect(() => new S3ObjectStore({ client: server.s3, bucket: 'b', prefix: '/lake/' })).toThrow(
          InvalidKeyError,
        );
      });

      it('reports a missing bucket as the SDK error, not as a missing object', async () => {
        const store = new S3ObjectStore({ client: server.s3, bucket: 'no-such-bucket' });
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

    describe('S3ObjectStore: conditional writes', () => {
      it('sends one PutObject whose etag another writer can match, also for a stream body', async () => {
        const store = new S3ObjectStore({ client: server.s3, bucket: await server.createBucket('cond-1') });
        const first = await store.write('lease', Readable.from([Buffer.from('{"v":1}')]), { ifAbsent: true });
        // A writer that knows only what head reports (e.g. another process taking over an expired lease).
        const seen = await store.head('lease');
        expect(seen?.etag).toBe(first.etag);
        const second = await store.write('lease', '{"v":2}', { ifMatch: seen!.etag });
        expect((await buffer(await store.read('lease'))).toString()).toBe('{"v":2}');
        await expect(store.write('lease', '{"v":3}', { ifMatch: first.etag })).rejects.toBeInstanceOf(
          PreconditionFailedError,
        );
        expect((await store.head('lease'))?.etag).toBe(second.etag);
      });

      it('matches the etag of an object another client uploaded (quoted on the wire, bare in ObjectInfo)', async () => {
        const bucket = await server.createBucket('cond-2');
        const store = new S3ObjectStore({ client: server.s3, bucket });
        const put = await server.s3.send(
          new PutObjectCommand({ Bucket: bucket, Key: 'x', Body: 'external' }),
        );
        const info = await store.head('x');
        expect(`"${info?.etag}"`).toBe(put.ETag);
        await store.write('x', 'replaced', { ifMatch: info!.etag });
        expect((await buffer(await store.read('x'))).toString()).toBe('replaced');
      });

      it(`refuses a conditional body over ${CONDITIONAL_WRITE_MAX_BYTES} bytes, and writes nothing`, async () => {
        const store = new S3ObjectStore({ client: server.s3, bucket: await server.createBucket('cond-3') });
        const big = Readable.from(
          (function* () {
            for (let sent = 0; sent <= CONDITIONAL_WRITE_MAX_BYTES; sent += 1024 * 1024)
              yield Buffer.alloc(1024 * 1024);
          })(),
        );
        await expect(store.write('big', big, { ifAbsent: true })).rejects.toThrow(
          /conditional write of big.*small objects/,
        );
        expect(big.destroyed).toBe(true);
        await expect(
          store.write('big', new Uint8Array(CONDITIONAL_WRITE_MAX_BYTES + 1), { ifAbsent: true }),
        ).rejects.toBeInstanceOf(RangeError);
        expect(await store.head('big')).toBeUndefined();
      });
    });
  },
);

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const result: string[] = [];
  for await (const info of store.list(prefix)) result.push(info.key);
  return result;
}
