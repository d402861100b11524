import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { bronzeLines, lineEnds, readBronzePart } from '../../shared/stages/bronze/read-bronze.ts';
import { tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

/** Reading bronze parts back from a real (folder) object store. */
describe('readBronzePart', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let store: FileObjectStore;
  const random = seededRandom(7);
  // Lines of random lengths with multi-byte characters, ≈ 6 MB: several default 1 MiB gunzip chunks.
  const lines = Array.from({ length: 4000 }, (_, i) =>
    JSON.stringify({ index: i, text: 'é€😀x'.repeat(Math.floor(random() * 300)) }),
  );
  const text = Buffer.from(`${lines.join('\n')}\n`);
  // As the part writer stores them: gzip members one after another (cut here mid-line and mid-character).
  const cuts = [0, 1_000_003, 2_500_001, 4_000_000, text.length];
  const stored = Buffer.concat(
    cuts.slice(1).map((end, i) => gzipSync(text.subarray(cuts[i], end), { level: 1 })),
  );
  const sha256 = createHash('sha256').update(stored).digest('hex');

  beforeAll(async () => {
    tmp = await tempDir('sluice-read-bronze-');
    store = new FileObjectStore(tmp.dir);
    await store.write('part.ndjson.gz', stored);
  });
  afterAll(async () => {
    await tmp.cleanup();
  });

  it.each([
    ['the manifest size', text.length],
    ['no size', undefined],
    ['a size too small (a wrong manifest)', 1000],
    ['a size too large', text.length * 3],
    ['a size of zero', 0],
  ])('gives back the exact text and hash with %s', async (_, uncompressedBytes) => {
    const content = await readBronzePart(store, { key: 'part.ndjson.gz', uncompressedBytes });
    expect(content.text.equals(text)).toBe(true);
    expect(content.sha256).toBe(sha256);
    expect(content.bytes).toBe(stored.length);
    expect([...bronzeLines(content.text)]).toEqual(lines);
  });

  it('inflates into one buffer of the manifest size (no chunks to join)', async () => {
    const content = await readBronzePart(store, { key: 'part.ndjson.gz', uncompressedBytes: text.length });
    expect(content.text.buffer.byteLength).toBe(text.length + 1);
  });

  it('skips the hash when asked, and only the hash', async () => {
    const content = await readBronzePart(
      store,
      { key: 'part.ndjson.gz', uncompressedBytes: text.length },
      { sha256: false },
    );
    expect(content.sha256).toBeUndefined();
    expect(content.text.equals(text)).toBe(true);
  });

  it('finds every line end, and a last line without a newline', () => {
    const partial = Buffer.from('a\nbb\n\nccc');
    expect([...lineEnds(partial)]).toEqual([1, 4, 5, 9]);
    expect([...bronzeLines(partial)]).toEqual(['a', 'bb', '', 'ccc']);
  });
});
