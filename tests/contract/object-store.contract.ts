import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  InvalidKeyError,
  ObjectNotFoundError,
  PreconditionFailedError,
  UploadNotFoundError,
} from '../../shared/errors.ts';
import {
  type ByteRange,
  MULTIPART_LIMITS,
  type ObjectInfo,
  type ObjectStore,
  type UploadingObjectStore,
} from '../../shared/ports/object-store.ts';

const MiB = 1024 * 1024;
/** Larger than two 8 MiB parts and not a multiple of anything, so S3 uploads it in three uneven parts. */
const LARGE_SIZE = 20 * MiB + 12_345;
/** More than one ListObjectsV2 page (1000 keys). */
const MANY_KEYS = 1100;
const WRITE_CONCURRENCY = 16;
/** Writers racing on one key with the same condition. */
const RACERS = 8;
const INVALID_KEYS = ['../x', '/abs', 'a//b', 'a/./b', '', 'a/', 'a\\b', 'nul\u0000byte', 'x'.repeat(1025)];

/** A fresh, empty store for one test, and how to dispose of it. */
export type MakeStore = () => Promise<{ store: UploadingObjectStore; cleanup: () => Promise<void> }>;

/**
 * Registers the behaviour every `ObjectStore` adapter must show. `makeStore` runs before each test and
 * must return an empty store.
 */
export function describeObjectStoreContract(name: string, makeStore: MakeStore): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let store: UploadingObjectStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('write and read', () => {
      it('round-trips bytes exactly, including every byte value', async () => {
        const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256);
        await store.write('bin/all-bytes', bytes);
        expect(await readAll(store, 'bin/all-bytes')).toEqual(Buffer.from(bytes));
      });

      it('writes a string as UTF-8', async () => {
        await store.write('text/hello.txt', 'héllo, wörld ✓ 🚀\n');
        expect((await readAll(store, 'text/hello.txt')).toString('utf8')).toBe('héllo, wörld ✓ 🚀\n');
      });

      it('round-trips an empty object', async () => {
        const info = await store.write('empty', '');
        expect(info.size).toBe(0);
        expect(await readAll(store, 'empty')).toHaveLength(0);
      });

      it('round-trips a ~20 MiB stream byte for byte (multipart on S3)', async () => {
        const info = await store.write('big/data.bin', deterministicStream(LARGE_SIZE, 42));
        expect(info.size).toBe(LARGE_SIZE);
        expect((await store.head('big/data.bin'))?.size).toBe(LARGE_SIZE);
        expect(await sha256(await store.read('big/data.bin'))).toBe(
          await sha256(deterministicStream(LARGE_SIZE, 42)),
        );
      });

      it('returns from write the same info head reports', async () => {
        const written = await store.write('info/x.json', '{"a":1}', { contentType: 'application/json' });
        expect(written).toEqual(await headAsWritten(store, 'info/x.json'));
        expect(written).toMatchObject({ key: 'info/x.json', size: 7 });
      });

      it('replaces the content on overwrite and changes the etag', async () => {
        const first = await store.write('over/write', 'first version');
        const second = await store.write('over/write', 'v2');
        expect((await readAll(store, 'over/write')).toString()).toBe('v2');
        expect(second.size).toBe(2);
        expect(second.etag).not.toBe(first.etag);
      });

      it('keeps keys that share a prefix apart', async () => {
        await store.write('p/a', 'A');
        await store.write('p/ab', 'AB');
        await store.write('p/a.b', 'A.B');
        expect((await readAll(store, 'p/a')).toString()).toBe('A');
        expect((await readAll(store, 'p/ab')).toString()).toBe('AB');
        expect((await readAll(store, 'p/a.b')).toString()).toBe('A.B');
      });

      it('throws ObjectNotFoundError when reading an absent key', async () => {
        await expect(store.read('absent/key')).rejects.toBeInstanceOf(ObjectNotFoundError);
        await expect(store.read('absent/key', { start: 0, end: 0 })).rejects.toBeInstanceOf(
          ObjectNotFoundError,
        );
      });

      it('throws ObjectNotFoundError when reading below an existing object', async () => {
        await store.write('leaf', 'x');
        await expect(store.read('leaf/below')).rejects.toBeInstanceOf(ObjectNotFoundError);
        expect(await store.head('leaf/below')).toBeUndefined();
      });
    });

    describe('ranged reads', () => {
      const content = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
      beforeEach(async () => {
        await store.write('range/obj', content);
      });

      it('reads the first bytes', async () => {
        expect((await readAll(store, 'range/obj', { start: 0, end: 9 })).toString()).toBe('0123456789');
      });

      it('reads a range in the middle with an inclusive end', async () => {
        expect((await readAll(store, 'range/obj', { start: 10, end: 15 })).toString()).toBe('abcdef');
      });

      it('reads from an offset to the end when end is omitted', async () => {
        expect((await readAll(store, 'range/obj', { start: 30 })).toString()).toBe('uvwxyz');
      });

      it('reads a single byte', async () => {
        expect((await readAll(store, 'range/obj', { start: 35, end: 35 })).toString()).toBe('z');
      });

      it('stops at the last byte when end lies beyond it', async () => {
        expect((await readAll(store, 'range/obj', { start: 33, end: 1000 })).toString()).toBe('xyz');
      });

      it('yields no bytes for a range starting at or past the end', async () => {
        expect(await readAll(store, 'range/obj', { start: content.length })).toHaveLength(0);
        expect(await readAll(store, 'range/obj', { start: 1000, end: 2000 })).toHaveLength(0);
      });

      it('reads a range of a large multipart object', async () => {
        await store.write('range/big', deterministicStream(LARGE_SIZE, 7));
        const expected = await buffer(deterministicStream(LARGE_SIZE, 7));
        const start = 8 * MiB - 100; // straddles the first part boundary on S3
        const got = await readAll(store, 'range/big', { start, end: start + 199 });
        expect(got.equals(expected.subarray(start, start + 200))).toBe(true);
      });

      it('rejects a malformed range with RangeError', async () => {
        await expect(store.read('range/obj', { start: 5, end: 4 })).rejects.toBeInstanceOf(RangeError);
        await expect(store.read('range/obj', { start: -1 })).rejects.toBeInstanceOf(RangeError);
        await expect(store.read('range/obj', { start: 1.5 })).rejects.toBeInstanceOf(RangeError);
      });
    });

    describe('head', () => {
      it('describes a present object', async () => {
        await store.write('head/present', 'twelve bytes');
        const info = await store.head('head/present');
        expect(info).toMatchObject({ key: 'head/present', size: 12 });
        expect(info?.etag).toMatch(/\S/);
        expect(info?.lastModified).toBeInstanceOf(Date);
        // Only loosely: S3 timestamps have one-second resolution and come from the server's clock.
        expect(Math.abs((info?.lastModified.getTime() ?? 0) - Date.now())).toBeLessThan(5 * 60_000);
      });

      it('returns undefined for an absent object', async () => {
        expect(await store.head('head/absent')).toBeUndefined();
      });
    });

    describe('delete', () => {
      it('removes the object and leaves its neighbours', async () => {
        await store.write('del/a', 'a');
        await store.write('del/b', 'b');
        await store.delete('del/a');
        expect(await store.head('del/a')).toBeUndefined();
        await expect(store.read('del/a')).rejects.toBeInstanceOf(ObjectNotFoundError);
        expect(await listKeys(store, '')).toEqual(['del/b']);
      });

      it('is idempotent: deleting an absent key, or twice, does not throw', async () => {
        await store.delete('del/never-written');
        await store.write('del/twice', 'x');
        await store.delete('del/twice');
        await store.delete('del/twice');
        expect(await store.head('del/twice')).toBeUndefined();
      });
    });

    describe('list', () => {
      it('lists keys in lexicographic order regardless of write order', async () => {
        await writeAll(store, ['l/c', 'l/a/2', 'l/b', 'l/a/10', 'l/B', 'l/a/1']);
        expect(await listKeys(store, 'l/')).toEqual(['l/B', 'l/a/1', 'l/a/10', 'l/a/2', 'l/b', 'l/c']);
      });

      it('orders keys that share a prefix by bytes: a-b < a.b < a/b < a0', async () => {
        // No `o/a` itself: a file store cannot hold an object that is also a prefix of others.
        await writeAll(store, ['o/a0', 'o/a/b', 'o/a.b', 'o/a-b', 'o/a/c/d']);
        expect(await listKeys(store, 'o/')).toEqual(['o/a-b', 'o/a.b', 'o/a/b', 'o/a/c/d', 'o/a0']);
      });

      it('reports each object as head does', async () => {
        await store.write('meta/one', '1');
        await store.write('meta/two', '22');
        const listed = await listAll(store, 'meta/');
        expect(listed.map(pickComparable)).toEqual([
          pickComparable((await store.head('meta/one'))!),
          pickComparable((await store.head('meta/two'))!),
        ]);
      });

      it('filters by a directory prefix', async () => {
        await writeAll(store, ['bronze/ds/x', 'bronze/ds/sub/y', 'bronze/other/z', 'silver/ds/x']);
        expect(await listKeys(store, 'bronze/ds/')).toEqual(['bronze/ds/sub/y', 'bronze/ds/x']);
        expect(await listKeys(store, '')).toHaveLength(4);
      });

      it('filters by a prefix that ends inside a segment', async () => {
        await writeAll(store, [
          'bronze/ds/part-00001.gz',
          'bronze/ds/part-00002.gz',
          'bronze/ds/part-10000.gz',
          'bronze/ds/parts/nested',
          'bronze/dsx/part-00001.gz',
        ]);
        expect(await listKeys(store, 'bronze/ds/part-0')).toEqual([
          'bronze/ds/part-00001.gz',
          'bronze/ds/part-00002.gz',
        ]);
        expect(await listKeys(store, 'bronze/ds')).toHaveLength(5);
        expect(await listKeys(store, 'bronze/ds/parts')).toEqual(['bronze/ds/parts/nested']);
      });

      it('yields nothing when no key matches the prefix', async () => {
        await store.write('some/key', 'x');
        expect(await listKeys(store, 'other/')).toEqual([]);
        expect(await listKeys(store, 'some/kez')).toEqual([]);
        expect(await listKeys(store, 'zzz')).toEqual([]);
      });

      it('yields nothing for an empty store', async () => {
        expect(await listKeys(store, '')).toEqual([]);
      });

      it(`pages through more than 1000 objects (${MANY_KEYS} keys)`, async () => {
        const keys = Array.from({ length: MANY_KEYS }, (_, i) => `many/k-${String(i).padStart(5, '0')}`);
        // Written in reverse so that creation order and key order differ.
        await writeAll(store, [...keys].reverse());
        await store.write('many-after', 'outside the prefix');
        expect(await listKeys(store, 'many/')).toEqual(keys);
      });
    });

    describe('invalid keys', () => {
      it.each(INVALID_KEYS.map((key) => [describeKey(key), key]))(
        'rejects %s with InvalidKeyError on write, read, head and delete',
        async (_label, key) => {
          await expect(store.write(key, 'x')).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(store.write(key, Readable.from(['x']))).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(store.read(key)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(store.head(key)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
        },
      );

      it('rejects an unsafe list prefix with InvalidKeyError', async () => {
        await expect(listKeys(store, '../')).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(listKeys(store, '/abs/')).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(listKeys(store, 'a//')).rejects.toBeInstanceOf(InvalidKeyError);
      });
    });

    describe('conditional writes', () => {
      it('ifAbsent creates an object once, then fails with PreconditionFailedError and keeps it', async () => {
        const created = await store.write('cond/lease.json', '{"holder":"a"}', { ifAbsent: true });
        expect(created).toEqual(await headAsWritten(store, 'cond/lease.json'));
        const error = await store
          .write('cond/lease.json', '{"holder":"b"}', { ifAbsent: true })
          .catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(PreconditionFailedError);
        expect(error).toMatchObject({
          name: 'PreconditionFailedError',
          key: 'cond/lease.json',
          condition: 'ifAbsent',
        });
        expect((error as Error).message).toContain('cond/lease.json');
        expect((error as Error).message).toContain('ifAbsent');
        expect((await readAll(store, 'cond/lease.json')).toString()).toBe('{"holder":"a"}');
        expect((await store.head('cond/lease.json'))?.etag).toBe(created.etag);
      });

      it('ifAbsent fails with a stream body too, and succeeds again after a delete', async () => {
        await store.write('cond/stream', Readable.from([Buffer.from('first')]), { ifAbsent: true });
        await expect(
          store.write('cond/stream', Readable.from([Buffer.from('second')]), { ifAbsent: true }),
        ).rejects.toBeInstanceOf(PreconditionFailedError);
        await store.delete('cond/stream');
        await store.write('cond/stream', Readable.from([Buffer.from('third')]), { ifAbsent: true });
        expect((await readAll(store, 'cond/stream')).toString()).toBe('third');
        expect(await listKeys(store, 'cond/')).toEqual(['cond/stream']);
      });

      it('ifMatch with the current etag replaces the object and returns its new etag', async () => {
        const first = await store.write('cond/m', 'version 1', { ifAbsent: true });
        const second = await store.write('cond/m', 'version 2', { ifMatch: first.etag });
        expect(second.etag).not.toBe(first.etag);
        expect(second).toEqual(await headAsWritten(store, 'cond/m'));
        expect((await readAll(store, 'cond/m')).toString()).toBe('version 2');
        // The etag write returns is the one the next conditional replace needs.
        const third = await store.write('cond/m', 'version 3', { ifMatch: second.etag });
        expect((await store.head('cond/m'))?.etag).toBe(third.etag);
      });

      it('ifMatch with a stale etag fails with PreconditionFailedError and keeps the object', async () => {
        const first = await store.write('cond/stale', 'version 1');
        const second = await store.write('cond/stale', 'version 2');
        const error = await store
          .write('cond/stale', 'version 3', { ifMatch: first.etag })
          .catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(PreconditionFailedError);
        expect(error).toMatchObject({ key: 'cond/stale', condition: 'ifMatch' });
        expect((error as Error).message).toContain('ifMatch');
        expect((await readAll(store, 'cond/stale')).toString()).toBe('version 2');
        expect((await store.head('cond/stale'))?.etag).toBe(second.etag);
      });

      it('ifMatch on an absent key fails with PreconditionFailedError and creates nothing', async () => {
        const gone = await store.write('cond/gone', 'x');
        await store.delete('cond/gone');
        await expect(store.write('cond/gone', 'y', { ifMatch: gone.etag })).rejects.toMatchObject({
          name: 'PreconditionFailedError',
          condition: 'ifMatch',
        });
        await expect(
          store.write('cond/never', Readable.from([Buffer.from('y')]), { ifMatch: gone.etag }),
        ).rejects.toBeInstanceOf(PreconditionFailedError);
        expect(await listKeys(store, '')).toEqual([]);
      });

      it('rejects ifAbsent together with ifMatch', async () => {
        await expect(store.write('cond/both', 'x', { ifAbsent: true, ifMatch: 'e' })).rejects.toBeInstanceOf(
          TypeError,
        );
        expect(await store.head('cond/both')).toBeUndefined();
      });

      it(`of ${RACERS} concurrent ifAbsent writers exactly one wins`, async () => {
        const results = await Promise.allSettled(
          Array.from({ length: RACERS }, (_, i) =>
            store.write('cond/race', `writer ${i}`, { ifAbsent: true }),
          ),
        );
        const { winners, losers } = tally(results);
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(RACERS - 1);
        const [winner] = winners;
        expect((await readAll(store, 'cond/race')).toString()).toBe(`writer ${winner!.index}`);
        expect((await store.head('cond/race'))?.etag).toBe(winner!.info.etag);
        expect(await listKeys(store, '')).toEqual(['cond/race']);
      });

      it(`of ${RACERS} concurrent ifMatch writers with the same etag exactly one wins`, async () => {
        const expired = await store.write('cond/takeover', 'expired lease', { ifAbsent: true });
        const results = await Promise.allSettled(
          Array.from({ length: RACERS }, (_, i) =>
            store.write('cond/takeover', `taken over by ${i}`, { ifMatch: expired.etag }),
          ),
        );
        const { winners, losers } = tally(results);
        expect(winners).toHaveLength(1);
        expect(losers).toHaveLength(RACERS - 1);
        const [winner] = winners;
        expect((await readAll(store, 'cond/takeover')).toString()).toBe(`taken over by ${winner!.index}`);
        expect((await store.head('cond/takeover'))?.etag).toBe(winner!.info.etag);
        expect(await listKeys(store, '')).toEqual(['cond/takeover']);
      });
    });

    describe('multipart uploads', () => {
      /** S3's smallest part but the last: the parts of these tests are as small as S3 allows. */
      const PART = MULTIPART_LIMITS.minPartBytes;
      const partBytes = (n: number, size = PART) => buffer(deterministicStream(size, 100 + n));

      it('joins parts uploaded out of order, and shows nothing until completed', async () => {
        const uploadId = await store.startUpload('mp/joined.bin');
        const [one, two, three] = [await partBytes(1), await partBytes(2), await partBytes(3, 12_345)];
        const p3 = await store.uploadPart('mp/joined.bin', uploadId, 3, three, three.length);
        const p1 = await store.uploadPart('mp/joined.bin', uploadId, 1, one, one.length);
        // A stream body of the declared size, as a download spooled to disk uploads it.
        const p2 = await store.uploadPart('mp/joined.bin', uploadId, 2, Readable.from([two]), two.length);
        expect(await store.head('mp/joined.bin')).toBeUndefined();
        expect(await listKeys(store, '')).toEqual([]);
        expect(await store.listParts('mp/joined.bin', uploadId)).toEqual([p1, p2, p3]);
        expect(p1).toMatchObject({ partNumber: 1, size: PART });

        const info = await store.completeUpload('mp/joined.bin', uploadId, [p1, p2, p3]);
        const whole = Buffer.concat([one, two, three]);
        expect(info).toMatchObject({ key: 'mp/joined.bin', size: whole.length });
        expect(await sha256(await store.read('mp/joined.bin'))).toBe(
          createHash('sha256').update(whole).digest('hex'),
        );
        expect(await store.listParts('mp/joined.bin', uploadId)).toBeUndefined();
        expect(await listKeys(store, '')).toEqual(['mp/joined.bin']);
      });

      it('replaces a part uploaded again under its number', async () => {
        const uploadId = await store.startUpload('mp/again');
        await store.uploadPart('mp/again', uploadId, 1, Buffer.from('first try'), 9);
        const second = await store.uploadPart('mp/again', uploadId, 1, Buffer.from('2nd'), 3);
        expect(await store.listParts('mp/again', uploadId)).toEqual([second]);
        await store.completeUpload('mp/again', uploadId, [second]);
        expect((await readAll(store, 'mp/again')).toString()).toBe('2nd');
      });

      it('replaces an existing object only when completed', async () => {
        await store.write('mp/over', 'the old content');
        const uploadId = await store.startUpload('mp/over');
        const part = await store.uploadPart('mp/over', uploadId, 1, Buffer.from('new'), 3);
        expect((await readAll(store, 'mp/over')).toString()).toBe('the old content');
        await store.completeUpload('mp/over', uploadId, [part]);
        expect((await readAll(store, 'mp/over')).toString()).toBe('new');
      });

      it('aborts: the upload is gone, its parts with it, and nothing appears', async () => {
        const uploadId = await store.startUpload('mp/aborted');
        const part = await store.uploadPart('mp/aborted', uploadId, 1, Buffer.from('x'), 1);
        await store.abortUpload('mp/aborted', uploadId);
        await store.abortUpload('mp/aborted', uploadId); // gone already: not an error
        expect(await store.listParts('mp/aborted', uploadId)).toBeUndefined();
        await expect(store.uploadPart('mp/aborted', uploadId, 2, Buffer.from('y'), 1)).rejects.toBeInstanceOf(
          UploadNotFoundError,
        );
        await expect(store.completeUpload('mp/aborted', uploadId, [part])).rejects.toBeInstanceOf(
          UploadNotFoundError,
        );
        expect(await store.head('mp/aborted')).toBeUndefined();
        expect(await listKeys(store, '')).toEqual([]);
      });

      it('knows no upload under an id it never gave', async () => {
        // (Under another key S3 knows none either; moto answers ListParts for any key, so not asserted.)
        expect(await store.listParts('mp/mine', 'no-such-upload-id')).toBeUndefined();
        await store.abortUpload('mp/mine', 'no-such-upload-id');
      });

      it('keeps uploads of one key apart', async () => {
        const a = await store.startUpload('mp/two');
        const b = await store.startUpload('mp/two');
        expect(a).not.toBe(b);
        const partA = await store.uploadPart('mp/two', a, 1, Buffer.from('from a'), 6);
        await store.uploadPart('mp/two', b, 1, Buffer.from('from b'), 6);
        await store.abortUpload('mp/two', b);
        await store.completeUpload('mp/two', a, [partA]);
        expect((await readAll(store, 'mp/two')).toString()).toBe('from a');
      });
    });

    describe('failed writes', () => {
      it('propagates a stream error and leaves no object', async () => {
        await expect(store.write('fail/small', failingStream(64 * 1024))).rejects.toThrow(
          'source failed midway',
        );
        expect(await store.head('fail/small')).toBeUndefined();
        expect(await listKeys(store, '')).toEqual([]);
      });

      it('propagates a stream error after several MiB and leaves no object (aborted multipart on S3)', async () => {
        await expect(store.write('fail/large', failingStream(10 * MiB))).rejects.toThrow(
          'source failed midway',
        );
        expect(await store.head('fail/large')).toBeUndefined();
        expect(await listKeys(store, '')).toEqual([]);
      });

      it('keeps the previous object when an overwrite fails midway', async () => {
        const before = await store.write('fail/keep', 'the old content');
        await expect(store.write('fail/keep', failingStream(1024))).rejects.toThrow('source failed midway');
        expect((await readAll(store, 'fail/keep')).toString()).toBe('the old content');
        expect((await store.head('fail/keep'))?.etag).toBe(before.etag);
      });
    });
  });
}

/**
 * Splits the results of racing conditional writes into winners (with their index) and losers; any
 * failure other than PreconditionFailedError is rethrown.
 */
function tally(results: PromiseSettledResult<ObjectInfo>[]): {
  winners: { index: number; info: ObjectInfo }[];
  losers: PreconditionFailedError[];
} {
  const winners: { index: number; info: ObjectInfo }[] = [];
  const losers: PreconditionFailedError[] = [];
  results.forEach((result, index) => {
    if (result.status === 'fulfilled') winners.push({ index, info: result.value });
    else if (result.reason instanceof PreconditionFailedError) losers.push(result.reason);
    else throw result.reason;
  });
  return { winners, losers };
}

async function readAll(store: ObjectStore, key: string, range?: ByteRange): Promise<Buffer> {
  return buffer(await store.read(key, range));
}

async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const result: ObjectInfo[] = [];
  for await (const info of store.list(prefix)) result.push(info);
  return result;
}

async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await listAll(store, prefix)).map((info) => info.key);
}

/** Writes each key with its own name as content, a few at a time. */
async function writeAll(store: ObjectStore, keys: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      await store.write(key, key);
    }
  };
  await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, keys.length) }, worker));
}

/** Listing timestamps may differ in precision from head's (S3: ms vs s), so compare the rest. */
function pickComparable(info: ObjectInfo): Pick<ObjectInfo, 'key' | 'size' | 'etag'> {
  return { key: info.key, size: info.size, etag: info.etag };
}

function describeKey(key: string): string {
  return key.length > 40 ? `a ${key.length}-byte key` : JSON.stringify(key);
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `size` pseudo-random bytes from a xorshift32 generator: the same bytes for the same seed, cheaply. */
function deterministicStream(size: number, seed: number): Readable {
  return Readable.from(deterministicChunks(size, seed), { objectMode: false });
}

function* deterministicChunks(size: number, seed: number): Generator<Buffer> {
  const chunkSize = 256 * 1024;
  let state = seed >>> 0 || 1;
  for (let offset = 0; offset < size; offset += chunkSize) {
    const words = new Uint32Array(chunkSize / 4);
    for (let i = 0; i < words.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      words[i] = state >>> 0;
    }
    yield Buffer.from(words.buffer, 0, Math.min(chunkSize, size - offset));
  }
}

/** A stream that delivers `bytesBeforeError` bytes, then fails, like a source connection dropping. */
function failingStream(bytesBeforeError: number): Readable {
  return Readable.from(
    (function* () {
      yield* deterministicChunks(bytesBeforeError, 3);
      throw new Error('source failed midway');
    })(),
    { objectMode: false },
  );
}

/**
 * What `head` reports of an object, as `write` returns it: a file's change time (`ObjectInfo.changeTag`)
 * is head's alone, since installing the written file moves it.
 */
async function headAsWritten(
  store: ObjectStore,
  key: string,
): Promise<Omit<ObjectInfo, 'changeTag'> | undefined> {
  const info = await store.head(key);
  if (!info) return undefined;
  const { changeTag: _changeTag, ...asWritten } = info;
  return asWritten;
}
