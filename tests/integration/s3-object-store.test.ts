import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONDITIONAL_WRITE_MAX_BYTES,
  createS3Client,
  S3ObjectStore,
} from '../../shared/adapters/aws/s3-object-store.ts';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  PermissionDeniedError,
  PreconditionFailedError,
} from '../../shared/errors.ts';
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

      describe('under a role without s3:ListBucket on the key (S3 answers 403 for absent keys)', () => {
        /**
         * S3's own rule, which moto does not apply: a GetObject or HeadObject of an absent key answers 403
         * (not 404) unless the caller may list the bucket. The middleware turns moto's 404 into that 403,
         * and can refuse every read (`denyReads`) or the listing too (`denyList`).
         */
        function restrictedClient(rules: { denyReads?: boolean; denyList?: boolean }): S3Client {
          const client = createS3Client({
            endpoint: server.endpoint,
            region: 'us-east-1',
            forcePathStyle: true,
            credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
          });
          const denied = () =>
            Object.assign(new Error('Access Denied'), {
              name: 'AccessDenied',
              $metadata: { httpStatusCode: 403 },
            });
          client.middlewareStack.add(
            (next, context) => async (args) => {
              const command = context.commandName;
              if (command === 'ListObjectsV2Command' && rules.denyList) throw denied();
              const isRead = command === 'GetObjectCommand' || command === 'HeadObjectCommand';
              if (isRead && rules.denyReads) throw denied();
              try {
                return await next(args);
              } catch (error) {
                const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata
                  ?.httpStatusCode;
                if (isRead && status === 404) throw denied();
                throw error;
              }
            },
            { step: 'initialize', name: 'deny-like-s3' },
          );
          return client;
        }

        it('tells an absent key from a refused one by listing the key as a prefix', async () => {
          const bucket = await server.createBucket('no-list-1');
          await new S3ObjectStore({ client: server.s3, bucket }).write('lake/present', 'x');
          const store = new S3ObjectStore({ client: restrictedClient({}), bucket, prefix: 'lake/' });

          expect(await store.head('absent')).toBeUndefined();
          // `present` lists `presently` too when used as a prefix: only the exact key counts.
          expect(await store.head('presen')).toBeUndefined();
          await expect(store.read('absent')).rejects.toBeInstanceOf(ObjectNotFoundError);
          expect((await buffer(await store.read('present'))).toString()).toBe('x');
        });

        it('reports a refused read of an existing key as a permission error naming the key and action', async () => {
          const bucket = await server.createBucket('no-list-2');
          await new S3ObjectStore({ client: server.s3, bucket }).write('lake/present', 'x');
          const store = new S3ObjectStore({
            client: restrictedClient({ denyReads: true }),
            bucket,
            prefix: 'lake/',
          });

          await expect(store.read('present')).rejects.toThrow(PermissionDeniedError);
          await expect(store.read('present')).rejects.toThrow(
            /s3:GetObject on s3:\/\/no-list-2[^ ]*\/lake\/present/,
          );
          await expect(store.head('present')).rejects.toThrow(/s3:GetObject \(HeadObject\)/);
          // Absent keys are still absent: the listing decides.
          expect(await store.head('absent')).toBeUndefined();
        });

        it('reports a refused listing as the permission error it is, never as "absent"', async () => {
          const bucket = await server.createBucket('no-list-3');
          const store = new S3ObjectStore({ client: restrictedClient({ denyList: true }), bucket });
          const refusal = store.head('checkpoint.json');
          await expect(refusal).rejects.toBeInstanceOf(PermissionDeniedError);
          await expect(store.head('checkpoint.json')).rejects.toThrow(
            /s3:ListBucket \(prefix checkpoint\.json\)/,
          );
        });
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
