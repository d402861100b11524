import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileObjectStore, TMP_DIR_NAME } from '../../shared/adapters/local/file-object-store.ts';
import { InvalidKeyError } from '../../shared/errors.ts';
import { describeObjectStoreContract } from '../contract/object-store.contract.ts';

async function makeTempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'sluice-file-store-'));
}

describeObjectStoreContract('FileObjectStore', async () => {
  const root = await makeTempDir();
  return { store: new FileObjectStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe('FileObjectStore', () => {
  let base: string;
  let root: string;
  let store: FileObjectStore;

  beforeEach(async () => {
    // The store lives in `<base>/root`, so tests can check that nothing lands next to it in `<base>`.
    base = await makeTempDir();
    root = path.join(base, 'root');
    store = new FileObjectStore(root);
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('stores a key as the file at that path under the root, and uri() is its absolute path', async () => {
    await store.write('bronze/ds/part-00001.gz', 'content');
    const file = path.join(root, 'bronze', 'ds', 'part-00001.gz');
    expect(await readFile(file, 'utf8')).toBe('content');
    expect(store.uri('bronze/ds/part-00001.gz')).toBe(file);
    expect(new FileObjectStore(path.relative(process.cwd(), root)).uri('a')).toBe(path.join(root, 'a'));
  });

  it('hides a temp file left in .sluice-tmp by a crashed write from list and head', async () => {
    await store.write('real/object', 'ok');
    // What a crash between "write temp file" and "rename" leaves behind.
    await writeFile(path.join(root, TMP_DIR_NAME, 'crashed-write.tmp'), 'partial');
    expect(await keys(store, '')).toEqual(['real/object']);
    expect(await keys(store, '.sluice-tmp/')).toEqual([]);
    expect(await keys(store, '.sluice')).toEqual([]);
    await expect(store.head(`${TMP_DIR_NAME}/crashed-write.tmp`)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.write(`${TMP_DIR_NAME}/x`, 'x')).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('never exposes a partial object while a write is in progress', async () => {
    const body = new PassThrough();
    const writing = store.write('slow/object', body);
    body.write('first half, ');
    await waitUntil(async () => (await readdir(path.join(root, TMP_DIR_NAME)).catch(() => [])).length === 1);
    expect(await store.head('slow/object')).toBeUndefined();
    expect(await keys(store, '')).toEqual([]);
    body.end('second half');
    await writing;
    expect(await readFile(path.join(root, 'slow', 'object'), 'utf8')).toBe('first half, second half');
  });

  it('removes its temp file when a write fails', async () => {
    const failing = Readable.from(
      (function* () {
        yield Buffer.from('some bytes');
        throw new Error('source failed');
      })(),
    );
    await expect(store.write('fail/x', failing)).rejects.toThrow('source failed');
    expect(await readdir(path.join(root, TMP_DIR_NAME))).toEqual([]);
  });

  it('cannot escape the root with .. segments', async () => {
    await store.write('inside', 'x');
    await writeFile(path.join(base, 'secret'), 'outside the store');
    for (const key of ['../secret', 'a/../../secret', '..', 'a/..']) {
      await expect(store.read(key)).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.write(key, 'overwritten')).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
    }
    expect(await readFile(path.join(base, 'secret'), 'utf8')).toBe('outside the store');
    expect((await readdir(base)).sort()).toEqual(['root', 'secret']);
  });

  it('rejects a key that would be both a file and a directory', async () => {
    await store.write('a/b', 'b');
    await expect(store.write('a', 'a')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.write('a/b/c', 'c')).rejects.toBeInstanceOf(InvalidKeyError);
    expect(await keys(store, '')).toEqual(['a/b']);
    expect(await readdir(path.join(root, TMP_DIR_NAME))).toEqual([]);
  });

  it('removes directories emptied by delete, so their path can become an object', async () => {
    await store.write('a/b/c', 'c');
    await store.delete('a/b/c');
    expect(existsSync(path.join(root, 'a'))).toBe(false);
    await store.write('a', 'now a file');
    expect((await stat(path.join(root, 'a'))).isFile()).toBe(true);
  });

  it('replaces an empty leftover directory at the key on write', async () => {
    await mkdir(path.join(root, 'empty-dir'), { recursive: true });
    await store.write('empty-dir', 'file');
    expect(await keys(store, '')).toEqual(['empty-dir']);
  });

  it('changes the etag when identical bytes are written again', async () => {
    const first = await store.write('same', 'same bytes');
    const second = await store.write('same', 'same bytes');
    expect(second.etag).not.toBe(first.etag);
  });

  it('lists nothing when the root does not exist yet', async () => {
    expect(await keys(new FileObjectStore(path.join(base, 'missing')), '')).toEqual([]);
  });
});

async function keys(store: FileObjectStore, prefix: string): Promise<string[]> {
  const result: string[] = [];
  for await (const info of store.list(prefix)) result.push(info.key);
  return result;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
