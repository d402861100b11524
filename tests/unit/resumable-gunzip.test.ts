import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  decodeCheckpoint,
  encodeCheckpoint,
  type GunzipCheckpoint,
  GzipFormatError,
  ResumableGunzip,
} from '../../shared/stages/parse/resumable-gunzip.ts';
import { seededRandom } from '../helpers/random.ts';

/** The shared seeded generator, with integers: failures reproduce. */
class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

const WORDS = ['alpha', 'provider', 'negotiated_rate', 'billing_code', 'npi', 'tin', 'service', 'ffs', 'CPT'];

/** JSON-lines-like text of about `bytes` bytes, compressible like real data (5-10x). */
function text(rng: Rng, bytes: number): Buffer {
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const line =
      `{"name":"${WORDS[rng.int(0, WORDS.length - 1)]}","code":"${rng.int(0, 99_999)}",` +
      `"rate":${(rng.next() * 1000).toFixed(2)},"npi":[${rng.int(0, 1e9)},${rng.int(0, 1e9)}]}\n`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 255);
  return b;
}

interface HeaderOptions {
  name?: string;
  comment?: string;
  extra?: Buffer;
  hcrc?: boolean;
  text?: boolean;
}

/** One gzip member; with `header`, the header is built by hand with those optional fields. */
function member(data: Buffer, level = 6, header?: HeaderOptions): Buffer {
  if (!header) return zlib.gzipSync(data, { level });
  const flags =
    (header.text ? 0x01 : 0) |
    (header.hcrc ? 0x02 : 0) |
    (header.extra ? 0x04 : 0) |
    (header.name !== undefined ? 0x08 : 0) |
    (header.comment !== undefined ? 0x10 : 0);
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, flags, 0x78, 0x56, 0x34, 0x12, 0, 3])];
  if (header.extra) {
    const xlen = Buffer.alloc(2);
    xlen.writeUInt16LE(header.extra.length);
    parts.push(xlen, header.extra);
  }
  if (header.name !== undefined) parts.push(Buffer.from(`${header.name}\0`, 'latin1'));
  if (header.comment !== undefined) parts.push(Buffer.from(`${header.comment}\0`, 'latin1'));
  if (header.hcrc) {
    const crc = Buffer.alloc(2);
    crc.writeUInt16LE(zlib.crc32(Buffer.concat(parts)) & 0xffff);
    parts.push(crc);
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(zlib.crc32(data), 0);
  trailer.writeUInt32LE(data.length % 2 ** 32, 4);
  return Buffer.concat([...parts, zlib.deflateRawSync(data, { level }), trailer]);
}

const ALL_FLAGS: HeaderOptions = {
  name: 'file.json',
  comment: 'a comment, with\u00e9 latin-1',
  extra: Buffer.from('AB\x04\x00wxyzCD\x00\x00', 'latin1'),
  hcrc: true,
  text: true,
};

/** Chunk sizes: often 1 byte, often small, sometimes up to `max`. */
function chunkSize(rng: Rng, max: number): number {
  const r = rng.next();
  if (r < 0.15) return 1;
  if (r < 0.45) return rng.int(1, 64);
  return rng.int(1, max);
}

/** Feed `gz[from..to)` in random chunks; returns every output chunk. */
function feed(g: ResumableGunzip, gz: Buffer, rng: Rng, max: number, from = 0, to = gz.length): Buffer[] {
  const out: Buffer[] = [];
  for (let i = from; i < to; ) {
    const n = Math.min(chunkSize(rng, max), to - i);
    out.push(...g.write(gz.subarray(i, i + n)));
    i += n;
  }
  return out;
}

function gunzipAll(gz: Buffer, rng: Rng, max: number): Buffer {
  const g = new ResumableGunzip({ source: 'test.gz' });
  const out = feed(g, gz, rng, max);
  out.push(...g.end());
  for (const c of out) expect(Buffer.isBuffer(c)).toBe(true);
  expect(g.compressedOffset).toBe(gz.length);
  const result = Buffer.concat(out);
  expect(g.uncompressedOffset).toBe(result.length);
  return result;
}

/** Runs `f`, which must throw a GzipFormatError; returns it. */
function formatError(f: () => unknown): GzipFormatError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(GzipFormatError);
    const e = error as GzipFormatError;
    expect(Number.isSafeInteger(e.compressedOffset)).toBe(true);
    expect(e.message).toBe(`test.gz: ${e.detail}`);
    expect(e.source).toBe('test.gz');
    return e;
  }
  throw new Error('expected a GzipFormatError, nothing was thrown');
}

/** Decompress all of `gz` (one write per chunk, then end()), expecting a GzipFormatError. */
function decodeError(gz: Buffer, rng: Rng, max = 65_536): GzipFormatError {
  return formatError(() => {
    const g = new ResumableGunzip({ source: 'test.gz' });
    feed(g, gz, rng, max);
    g.end();
  });
}

/** A multi-member file: texts at different levels, empty members, stored blocks, a flagged header. */
function multiMember(rng: Rng): { gz: Buffer; members: Buffer[] } {
  const datas: [Buffer, number, HeaderOptions | undefined][] = [
    [text(rng, 1_500_000), 6, undefined],
    [Buffer.alloc(0), 6, undefined],
    [randomBytes(rng, 200_000), 6, undefined],
    [text(rng, 600_000), 1, ALL_FLAGS],
    [Buffer.alloc(0), 9, { name: 'empty' }],
    [text(rng, 400_000), 9, undefined],
  ];
  const members = datas.map(([d, level, h]) => member(d, level, h));
  return { gz: Buffer.concat(members), members };
}

describe('ResumableGunzip round trips', () => {
  it('decompresses text at levels 1, 6 and 9 like zlib.gunzipSync', () => {
    const rng = new Rng(1);
    const data = text(rng, 3_000_000);
    for (const level of [1, 6, 9]) {
      const gz = zlib.gzipSync(data, { level });
      expect(gunzipAll(gz, rng, 256 * 1024).equals(zlib.gunzipSync(gz))).toBe(true);
    }
  });

  it('decompresses incompressible data (stored blocks) like zlib.gunzipSync', () => {
    const rng = new Rng(2);
    const data = randomBytes(rng, 700_000);
    for (const level of [0, 6]) {
      const gz = zlib.gzipSync(data, { level });
      expect(gunzipAll(gz, rng, 100_000).equals(zlib.gunzipSync(gz))).toBe(true);
    }
  });

  it('decompresses an empty member', () => {
    const gz = zlib.gzipSync(Buffer.alloc(0));
    expect(gunzipAll(gz, new Rng(3), 4).length).toBe(0);
    expect(zlib.gunzipSync(gz).length).toBe(0);
  });

  it('decompresses multi-member files (some members empty) like zlib.gunzipSync', () => {
    const rng = new Rng(4);
    const { gz } = multiMember(rng);
    const expected = zlib.gunzipSync(gz);
    expect(gunzipAll(gz, rng, 200_000).equals(expected)).toBe(true);
    expect(gunzipAll(gz, rng, 5_000).equals(expected)).toBe(true);
  });

  it('parses headers with FNAME, FCOMMENT, FEXTRA, FHCRC and FTEXT, split at every byte', () => {
    const rng = new Rng(5);
    const headers: HeaderOptions[] = [
      ALL_FLAGS,
      { name: '' },
      { comment: 'only a comment' },
      { extra: Buffer.alloc(0) },
      { extra: randomBytes(rng, 300), hcrc: true },
      { hcrc: true },
      { name: 'n', comment: 'c', hcrc: true },
    ];
    const data = text(rng, 20_000);
    const gz = Buffer.concat(headers.map((h, i) => member(i % 2 ? data : data.subarray(0, 100 * i), 6, h)));
    const expected = zlib.gunzipSync(gz);
    // One byte at a time: every header field, the deflate data and every trailer are split at every byte.
    const g = new ResumableGunzip({ source: 'test.gz' });
    const out: Buffer[] = [];
    for (let i = 0; i < gz.length; i++) out.push(...g.write(gz.subarray(i, i + 1)));
    out.push(...g.end());
    expect(Buffer.concat(out).equals(expected)).toBe(true);
    // And in random chunks.
    expect(gunzipAll(gz, rng, 300).equals(expected)).toBe(true);
  });

  it('returns large output chunks (1 MiB) without needing the caller to concatenate', () => {
    const rng = new Rng(6);
    const data = text(rng, 5_000_000);
    const gz = zlib.gzipSync(data);
    const g = new ResumableGunzip({ source: 'test.gz' });
    const chunks = [...g.write(gz), ...g.end()];
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    for (const c of chunks.slice(0, -1)) expect(c.length).toBe(1024 * 1024);
  });
});

interface Taken {
  position: number;
  checkpoint: GunzipCheckpoint;
  skip: number;
}

/** Decompress `gz` in random chunks, taking checkpointAt(p) for each p in `positions` as soon as it can. */
function takeCheckpoints(gz: Buffer, positions: number[], rng: Rng, max: number): Taken[] {
  const sorted = [...new Set(positions)].sort((a, b) => a - b);
  const taken: Taken[] = [];
  const g = new ResumableGunzip({ source: 'test.gz' });
  let next = 0;
  const take = () => {
    while (next < sorted.length && sorted[next]! <= g.uncompressedOffset) {
      const position = sorted[next++]!;
      taken.push({ position, ...g.checkpointAt(position) });
    }
  };
  take();
  for (let i = 0; i < gz.length; ) {
    const n = Math.min(chunkSize(rng, max), gz.length - i);
    g.write(gz.subarray(i, i + n));
    i += n;
    take();
  }
  g.end();
  take();
  expect(taken.length).toBe(sorted.length);
  return taken;
}

/** Resume from `checkpoint` (through its encoding), feeding gz from its offset; the output after `skip`. */
function resume(gz: Buffer, checkpoint: GunzipCheckpoint, skip: number, rng: Rng, max: number): Buffer {
  const from = decodeCheckpoint(encodeCheckpoint(checkpoint));
  const { window, ...fields } = from;
  const { window: originalWindow, ...originalFields } = checkpoint;
  expect(fields).toEqual(originalFields);
  expect(window.equals(originalWindow)).toBe(true);
  const g = new ResumableGunzip({ source: 'test.gz', from });
  expect(g.uncompressedOffset).toBe(checkpoint.uncompressedOffset);
  expect(g.compressedOffset).toBe(checkpoint.compressedOffset);
  const out = feed(g, gz, rng, max, checkpoint.compressedOffset);
  out.push(...g.end()); // verifies the CRC-32 and length of every member it finishes
  return Buffer.concat(out).subarray(skip);
}

describe('ResumableGunzip checkpoints', () => {
  it('resumes from checkpoints at many positions and reproduces the output', () => {
    const rng = new Rng(10);
    const { gz, members } = multiMember(rng);
    const expected = zlib.gunzipSync(gz);
    const memberEnds: number[] = [];
    let end = 0;
    for (const m of members) {
      end += zlib.gunzipSync(m).length;
      memberEnds.push(end);
    }
    const positions = [0, expected.length, ...memberEnds, ...memberEnds.map((e) => Math.max(0, e - 1))];
    for (let k = 0; k < 60; k++) positions.push(rng.int(0, expected.length));
    const taken = takeCheckpoints(gz, positions, rng, 100_000);

    const kinds = new Set<string>();
    let unaligned = 0;
    for (const { position, checkpoint: c, skip } of taken) {
      kinds.add(c.at);
      if (c.bitOffset !== 0) unaligned++;
      expect(c.uncompressedOffset + skip).toBe(position);
      expect(skip).toBeGreaterThanOrEqual(0);
      expect(skip).toBeLessThan(4 * 1024 * 1024); // a block boundary is near
      expect(c.window.length).toBe(c.at === 'deflate' ? Math.min(32_768, c.memberBytes) : 0);
      expect(
        c.window.equals(expected.subarray(c.uncompressedOffset - c.window.length, c.uncompressedOffset)),
      ).toBe(true);
      // Everything but the window survives JSON.
      const { window: _window, ...plain } = c;
      expect(JSON.parse(JSON.stringify(plain))).toEqual(plain);
      const out = resume(gz, c, skip, rng, 150_000);
      expect(out.length).toBe(expected.length - position);
      expect(out.equals(expected.subarray(position))).toBe(true);
    }
    expect(kinds).toEqual(new Set(['deflate', 'member-start']));
    expect(unaligned).toBeGreaterThan(10); // resuming mid-byte is exercised
  });

  it('resumes with every write one byte long', () => {
    const rng = new Rng(11);
    const gz = Buffer.concat([member(text(rng, 150_000), 6, ALL_FLAGS), member(text(rng, 80_000), 9)]);
    const expected = zlib.gunzipSync(gz);
    const positions = [0, expected.length];
    for (let k = 0; k < 10; k++) positions.push(rng.int(0, expected.length));
    for (const { position, checkpoint, skip } of takeCheckpoints(gz, positions, rng, 1)) {
      expect(resume(gz, checkpoint, skip, rng, 1).equals(expected.subarray(position))).toBe(true);
    }
  });

  it('resumes from checkpoints taken between the last deflate block and the end of the trailer', () => {
    const rng = new Rng(15);
    const first = member(text(rng, 200_000), 6);
    const gz = Buffer.concat([first, member(text(rng, 50_000), 6, ALL_FLAGS)]);
    const expected = zlib.gunzipSync(gz);
    const firstEnd = zlib.gunzipSync(first).length;
    for (const stop of [first.length - 8, first.length - 3, first.length, first.length + 5]) {
      const g = new ResumableGunzip({ source: 'test.gz' });
      g.write(gz.subarray(0, stop));
      expect(g.uncompressedOffset).toBe(firstEnd);
      for (const position of [firstEnd - 1, firstEnd]) {
        const { checkpoint, skip } = g.checkpointAt(position);
        expect(resume(gz, checkpoint, skip, rng, 10_000).equals(expected.subarray(position))).toBe(true);
      }
    }
  });

  it('decompresses in 20+ chained slices, each resuming from the checkpoint of the one before', () => {
    const rng = new Rng(12);
    const { gz } = multiMember(rng);
    const expected = zlib.gunzipSync(gz);
    const historyBytes = 256 * 1024;
    const kept: Buffer[] = [];
    let from: GunzipCheckpoint | undefined;
    let skip = 0;
    let slices = 0;
    for (;;) {
      slices++;
      const g = new ResumableGunzip({
        source: 'test.gz',
        from: from && decodeCheckpoint(encodeCheckpoint(from)),
        historyBytes,
      });
      const start = from?.compressedOffset ?? 0;
      const stop = Math.min(gz.length, start + rng.int(20_000, 2 * Math.ceil(gz.length / 25)));
      const out = Buffer.concat(feed(g, gz, rng, 50_000, start, stop));
      const resumedAt = g.uncompressedOffset - out.length + skip; // the position this slice must continue from
      if (stop === gz.length) {
        expect(g.end()).toEqual([]);
        kept.push(out.subarray(skip));
        break;
      }
      // Stop at a random position within the output so far (reachable: within historyBytes).
      const lowest = Math.max(resumedAt, g.uncompressedOffset - historyBytes);
      const position = rng.int(lowest, g.uncompressedOffset);
      const next = g.checkpointAt(position);
      kept.push(out.subarray(skip, skip + (position - resumedAt)));
      from = next.checkpoint;
      skip = next.skip;
    }
    expect(slices).toBeGreaterThanOrEqual(20);
    expect(Buffer.concat(kept).equals(expected)).toBe(true);
  });

  it('throws for positions outside the kept history', () => {
    const rng = new Rng(13);
    const data = text(rng, 3_000_000);
    const gz = zlib.gzipSync(data);
    const g = new ResumableGunzip({ source: 'test.gz' });
    expect(() => g.checkpointAt(1)).toThrow(RangeError); // beyond the output so far
    for (let i = 0; i < gz.length; i += 65_536) g.write(gz.subarray(i, i + 65_536));
    expect(() => g.checkpointAt(0)).toThrow(RangeError); // long dropped
    expect(() => g.checkpointAt(10)).toThrow(RangeError);
    expect(() => g.checkpointAt(g.uncompressedOffset + 1)).toThrow(RangeError);
    expect(() => g.checkpointAt(0.5)).toThrow(RangeError);
    expect(g.checkpointAt(g.uncompressedOffset).skip).toBeGreaterThanOrEqual(0);

    // With historyBytes, positions that far back stay reachable.
    const h = new ResumableGunzip({ source: 'test.gz', historyBytes: 1_000_000 });
    for (let i = 0; i < gz.length; i += 65_536) h.write(gz.subarray(i, i + 65_536));
    const { checkpoint, skip } = h.checkpointAt(data.length - 1_000_000);
    expect(resume(gz, checkpoint, skip, rng, 100_000).equals(data.subarray(data.length - 1_000_000))).toBe(
      true,
    );
    expect(() => h.checkpointAt(0)).toThrow(RangeError);
  });

  it('rejects damaged or inconsistent checkpoints', () => {
    const rng = new Rng(14);
    const gz = zlib.gzipSync(text(rng, 500_000));
    const g = new ResumableGunzip({ source: 'test.gz' });
    g.write(gz);
    const { checkpoint } = g.checkpointAt(400_000);
    expect(checkpoint.at).toBe('deflate');
    const encoded = encodeCheckpoint(checkpoint);
    for (const at of [0, 10, 40, encoded.length - 1]) {
      const damaged = Buffer.from(encoded);
      damaged[at]! ^= 0x10;
      expect(() => decodeCheckpoint(damaged)).toThrow(/invalid gunzip checkpoint/);
    }
    expect(() => decodeCheckpoint(encoded.subarray(0, 100))).toThrow(/invalid gunzip checkpoint/);
    expect(
      () => new ResumableGunzip({ source: 'x', from: { ...checkpoint, window: Buffer.alloc(5) } }),
    ).toThrow(/window/);
    expect(() => new ResumableGunzip({ source: 'x', from: { ...checkpoint, bitOffset: 8 } })).toThrow(
      /bitOffset/,
    );
  });
});

describe('ResumableGunzip errors', () => {
  const rng = new Rng(20);
  const first = member(text(rng, 300_000), 6, ALL_FLAGS);
  const second = zlib.gzipSync(text(rng, 100_000));
  const gz = Buffer.concat([first, second]);
  const deflateStart =
    10 + 2 + ALL_FLAGS.extra!.length + ALL_FLAGS.name!.length + 1 + ALL_FLAGS.comment!.length + 3;
  const firstTrailer = first.length - 8;

  it('reports truncation in the header, the deflate data and the trailer', () => {
    const cuts = [
      1,
      5,
      11, // in the extra field
      deflateStart - 1, // in the header CRC
      deflateStart + 1,
      Math.floor(first.length / 2),
      firstTrailer, // right before the trailer
      firstTrailer + 3,
      first.length + 4, // in the second member's header
      gz.length - 1000,
      gz.length - 1,
    ];
    const expected = zlib.gunzipSync(gz);
    for (const cut of cuts) {
      const g = new ResumableGunzip({ source: 'test.gz' });
      const out = feed(g, gz, rng, 30_000, 0, cut);
      expect(expected.subarray(0, Buffer.concat(out).length).equals(Buffer.concat(out))).toBe(true);
      const e = formatError(() => g.end());
      expect(e.message).toMatch(/ends early \(truncated file\?\) at compressed byte \d+/);
      expect(e.compressedOffset).toBe(cut);
    }
    expect(decodeError(Buffer.alloc(0), rng).message).toMatch(/empty/);
  });

  it('reports corrupt deflate data at or after the damaged byte', () => {
    let dataErrors = 0;
    for (let k = 0; k < 40; k++) {
      const at = rng.int(deflateStart + 1, firstTrailer - 2);
      const bad = Buffer.from(gz);
      bad[at]! ^= rng.int(1, 255);
      const e = decodeError(bad, rng);
      expect(e.message).toMatch(/at compressed byte \d+/);
      expect(e.compressedOffset).toBeGreaterThanOrEqual(at);
      expect(e.compressedOffset).toBeLessThanOrEqual(gz.length);
      if (/corrupt gzip data/.test(e.message)) dataErrors++;
    }
    expect(dataErrors).toBeGreaterThan(0);
  });

  it('checks the CRC-32, the length and the header CRC', () => {
    const badCrc = Buffer.from(gz);
    badCrc[firstTrailer + 1]! ^= 1;
    let e = decodeError(badCrc, rng);
    expect(e.message).toMatch(/CRC-32 mismatch/);
    expect(e.compressedOffset).toBe(firstTrailer);

    const badLength = Buffer.from(gz);
    badLength[gz.length - 2]! ^= 1;
    e = decodeError(badLength, rng);
    expect(e.message).toMatch(/length mismatch/);

    const badHeaderCrc = Buffer.from(gz);
    badHeaderCrc[deflateStart - 1]! ^= 1;
    expect(decodeError(badHeaderCrc, rng).message).toMatch(/header CRC mismatch/);

    const badMethod = Buffer.from(gz);
    badMethod[first.length + 2] = 7;
    expect(decodeError(badMethod, rng).message).toMatch(/compression method 7/);

    const badFlags = Buffer.from(gz);
    badFlags[3]! |= 0x80;
    expect(decodeError(badFlags, rng).message).toMatch(/reserved gzip header flags/);

    expect(decodeError(Buffer.from('{"not":"gzip"}'), rng).message).toMatch(/not gzip data/);
  });

  it('rejects trailing data after the last member', () => {
    for (const tail of [Buffer.from('garbage'), Buffer.alloc(512), Buffer.from([0x1f, 0x8b, 9])]) {
      const e = decodeError(Buffer.concat([gz, tail]), rng);
      if (tail[0] === 0x1f) {
        expect(e.message).toMatch(/compression method 9/);
      } else {
        expect(e.message).toContain(
          `trailing data after the last gzip member at compressed byte ${gz.length}`,
        );
        expect(e.compressedOffset).toBe(gz.length);
      }
    }
    // A lone first magic byte: an incomplete header.
    expect(decodeError(Buffer.concat([gz, Buffer.from([0x1f])]), rng).message).toMatch(/ends early/);
  });

  it('detects corruption after a resume, and a wrong CRC carried by a checkpoint', () => {
    const g = new ResumableGunzip({ source: 'test.gz' });
    g.write(gz.subarray(0, firstTrailer - 20_000));
    const { checkpoint } = g.checkpointAt(g.uncompressedOffset - 1);
    expect(checkpoint.at).toBe('deflate');

    const bad = Buffer.from(gz);
    const at = checkpoint.compressedOffset + 3000;
    bad[at]! ^= 0x5a;
    const e = formatError(() => resume(bad, checkpoint, 0, rng, 10_000));
    expect(e.compressedOffset).toBeGreaterThanOrEqual(at);

    const wrongCrc = { ...checkpoint, memberCrc32: (checkpoint.memberCrc32 ^ 1) >>> 0 };
    expect(formatError(() => resume(gz, wrongCrc, 0, rng, 10_000)).message).toMatch(/CRC-32 mismatch/);
    const wrongLength = {
      ...checkpoint,
      memberBytes: checkpoint.memberBytes + 1,
      uncompressedOffset: checkpoint.uncompressedOffset + 1,
    };
    expect(formatError(() => resume(gz, wrongLength, 0, rng, 10_000)).message).toMatch(/length mismatch/);
  });

  it('keeps failing after an error', () => {
    const g = new ResumableGunzip({ source: 'test.gz' });
    const e = formatError(() => g.write(Buffer.from('nope')));
    expect(() => g.write(gz)).toThrow(e);
    expect(() => g.end()).toThrow(e);
  });
});
