import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFreeSpace, estimateInputSize, type StatDev, type StatFs } from '../../shared/cli/preflight.ts';
import { InsufficientSpaceError } from '../../shared/errors.ts';
import { tempDir } from '../helpers/lake.ts';

/** A filesystem with two devices: `/big` (dev 1) and everything else (dev 2), with the free bytes given. */
function fakeFs(free: Record<number, number>, existing: string[]): { statfs: StatFs; stat: StatDev } {
  const devOf = (path: string) => (path.startsWith('/big') ? 1 : 2);
  return {
    stat: async (path) => {
      if (!existing.includes(path)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return { dev: devOf(path) };
    },
    statfs: async (path) => ({ bavail: free[devOf(path)]!, bsize: 1 }),
  };
}

describe('estimateInputSize', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-preflight-');
  });
  afterAll(async () => tmp.cleanup());

  it('takes a plain file as it is, and a small gzip file at its trailer (ISIZE)', async () => {
    const text = '{"a":1}\n'.repeat(10_000);
    await writeFile(join(tmp.dir, 'plain.ndjson'), text);
    await writeFile(join(tmp.dir, 'small.ndjson.gz'), gzipSync(text));
    expect(await estimateInputSize(join(tmp.dir, 'plain.ndjson'))).toEqual({
      bytes: text.length,
      basis: 'file size',
    });
    expect(await estimateInputSize(join(tmp.dir, 'small.ndjson.gz'))).toEqual({
      bytes: text.length,
      basis: 'gzip trailer',
    });
  });

  it('does not trust the trailer of a large gzip file, whose size may have wrapped past 4 GiB', async () => {
    // A sparse 300 MiB "gzip" file whose trailer says 1 MiB: the trailer only knows the size mod 2^32.
    const path = join(tmp.dir, 'large.json.gz');
    const size = 300 * 1024 * 1024;
    const handle = await open(path, 'w');
    await handle.write(Buffer.from([0x1f, 0x8b]), 0, 2, 0);
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(1024 * 1024);
    await handle.write(trailer, 0, 4, size - 4);
    await handle.close();
    const estimate = await estimateInputSize(path);
    expect(estimate.bytes).toBe(size * 8);
    expect(estimate.basis).toMatch(/assumed 8×/);
  });
});

describe('checkFreeSpace', () => {
  const input = { bytes: 1000, basis: 'file size' };

  it('passes when each filesystem has room for the folders on it', async () => {
    const fs = fakeFs({ 1: 700, 2: 300 }, ['/big', '/tmp']);
    await checkFreeSpace(
      [
        { role: 'lake', folder: '/big/lake', bytes: 650 },
        { role: 'scratch', folder: '/tmp', bytes: 250 },
      ],
      input,
      fs,
    );
  });

  it('adds up the needs of folders on one filesystem and names every number and the fix', async () => {
    const fs = fakeFs({ 1: 10_000, 2: 800 }, ['/', '/data', '/tmp']);
    const error = await checkFreeSpace(
      [
        { role: 'lake', folder: '/data/lake', bytes: 650 },
        { role: 'scratch', folder: '/tmp', bytes: 250 },
      ],
      input,
      fs,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InsufficientSpaceError);
    const message = (error as Error).message;
    // The lake does not exist yet: its nearest existing folder, /data, says which filesystem it is on.
    expect(message).toContain('800 B free on the filesystem of /data, about 900 B needed');
    expect(message).toContain('lake /data/lake: 650 B, scratch /tmp: 250 B');
    expect(message).toMatch(/--lake .*TMPDIR.* --no-space-check/);
    expect(message).toContain('Nothing ran');
  });
});
