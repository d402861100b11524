import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FileObjectStore,
  LOCK_STALE_MS,
  TMP_DIR_NAME,
} from '../../shared/adapters/local/file-object-store.ts';
import { InvalidKeyError, PreconditionFailedError } from '../../shared/errors.ts';
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

describe('FileObjectStore: conditional writes', () => {
  let root: string;
  let store: FileObjectStore;

  beforeEach(async () => {
    root = await makeTempDir();
    store = new FileObjectStore(root);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('gives every write a new etag, also many same-size writes in a row', async () => {
    const etags = new Set<string>();
    for (let i = 0; i < 200; i++) etags.add((await store.write('lease', `v${i % 10}`)).etag);
    expect(etags.size).toBe(200);
  });

  it('keeps its key locks out of list and removes them after the write', async () => {
    const first = await store.write('leases/ds/source', 'a', { ifAbsent: true });
    await store.write('leases/ds/source', 'b', { ifMatch: first.etag });
    expect(await keys(store, '')).toEqual(['leases/ds/source']);
    expect(await keys(store, 'leases/ds/source')).toEqual(['leases/ds/source']);
    expect(await readdir(lockDir(root))).toEqual([]);
  });

  it('waits for a key lock another writer holds, then compares the etag', async () => {
    const first = await store.write('k', 'v1');
    await mkdir(lockDir(root), { recursive: true });
    await writeFile(lockFile(root, 'k'), 'held by another process');
    let settled = false;
    const writing = store.write('k', 'v2', { ifMatch: first.etag }).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(settled).toBe(false);
    await rm(lockFile(root, 'k'));
    await writing;
    expect((await readFile(path.join(root, 'k'))).toString()).toBe('v2');
  });

  it(`breaks a key lock older than ${LOCK_STALE_MS / 1000} s (its holder died)`, async () => {
    const first = await store.write('k', 'v1');
    await mkdir(lockDir(root), { recursive: true });
    await writeFile(lockFile(root, 'k'), 'left by a killed process');
    const longAgo = (Date.now() - LOCK_STALE_MS - 1000) / 1000;
    await utimes(lockFile(root, 'k'), longAgo, longAgo);
    await store.write('k', 'v2', { ifMatch: first.etag });
    expect((await readFile(path.join(root, 'k'))).toString()).toBe('v2');
    expect(await readdir(lockDir(root))).toEqual([]);
  });

  it('fails ifAbsent on an object made by an unconditional write, and keeps its temp folder clean', async () => {
    await store.write('x/y', 'plain');
    await expect(store.write('x/y', 'again', { ifAbsent: true })).rejects.toBeInstanceOf(
      PreconditionFailedError,
    );
    expect(await readdir(path.join(root, TMP_DIR_NAME))).toEqual([]);
  });

  it('rejects ifAbsent on a key that is a prefix of other objects with InvalidKeyError', async () => {
    await store.write('a/b', 'b');
    await expect(store.write('a', 'a', { ifAbsent: true })).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('creates ifAbsent over an empty leftover directory', async () => {
    await mkdir(path.join(root, 'empty-dir'), { recursive: true });
    await store.write('empty-dir', 'file', { ifAbsent: true });
    expect(await keys(store, '')).toEqual(['empty-dir']);
  });

  it('lets exactly one of 4 processes win each round of ifAbsent, then of ifMatch with the same etag', async () => {
    const writers = await Promise.all(['w0', 'w1', 'w2', 'w3'].map((name) => startWriter(root, name)));
    try {
      let etag: string | undefined;
      for (let round = 0; round < 6; round++) {
        const command =
          round === 0 ? { key: 'race/lease', ifAbsent: true } : { key: 'race/lease', ifMatch: etag };
        const results = await Promise.all(writers.map((writer) => writer.send(command)));
        const winners = results.flatMap((result, i) => (result.won ? [{ ...result, name: `w${i}` }] : []));
        expect(winners, `round ${round}`).toHaveLength(1);
        const [winner] = winners;
        expect((await readFile(path.join(root, 'race', 'lease'))).toString()).toBe(winner!.name);
        expect((await store.head('race/lease'))?.etag).toBe(winner!.etag);
        etag = winner!.etag;
      }
    } finally {
      await Promise.all(writers.map((writer) => writer.stop()));
    }
    expect(await keys(store, '')).toEqual(['race/lease']);
  }, 60_000);
});

const CHILD = fileURLToPath(new URL('../helpers/conditional-write-child.ts', import.meta.url));

interface Writer {
  /** Sends one write command and resolves with the child's answer. */
  send(command: object): Promise<{ won: boolean; etag?: string }>;
  stop(): Promise<void>;
}

/** Starts a child process that writes to the store in `root` on command (see conditional-write-child.ts). */
async function startWriter(root: string, name: string): Promise<Writer> {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [
    '--import',
    'tsx',
    CHILD,
    root,
    name,
  ]);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const lines: Interface = createInterface({ input: child.stdout });
  const iterator = lines[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const { value, done } = await iterator.next();
    if (done) throw new Error(`writer ${name} exited: ${stderr}`);
    return value as string;
  };
  expect(await nextLine()).toBe('ready');
  return {
    async send(command) {
      child.stdin.write(`${JSON.stringify(command)}\n`);
      return JSON.parse(await nextLine()) as { won: boolean; etag?: string };
    },
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

function lockDir(root: string): string {
  return path.join(root, TMP_DIR_NAME, 'locks');
}

/** Where FileObjectStore keeps the side lock of a key's conditional replaces. */
function lockFile(root: string, key: string): string {
  return path.join(lockDir(root), `${createHash('sha256').update(key).digest('hex')}.lock`);
}

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
