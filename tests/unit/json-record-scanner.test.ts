import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { parseExact } from '../../shared/contracts/exact-json.ts';
import { type MalformedInputError, RecordTooLargeError } from '../../shared/errors.ts';
import { generateDocument, HEADER_PATHS, RECORD_PATHS, Rng } from '../helpers/random-json.ts';
import {
  type Decision,
  jsonParseDecision,
  makeScanner,
  type Outcome,
  outcomeOf,
  type ScanOptions,
  type ScanResult,
  scanBuffer,
  scanGzipBuffer,
} from '../helpers/scan.ts';

/** The configuration random documents are scanned with: three record targets, six headers. */
const SCAN: ScanOptions = { records: [...RECORD_PATHS], headers: [...HEADER_PATHS] };

interface Expected {
  /** Per record target, the elements JSON.parse finds at its path (none if the value is not an array). */
  readonly records: unknown[][];
  /** Headers whose path JSON.parse can follow through objects. */
  readonly headers: Record<string, unknown>;
}

/** Follow `keys` through plain objects; undefined (not found) as soon as a step is not an object key. */
function follow(value: unknown, keys: readonly string[]): { found: boolean; value?: unknown } {
  let current = value;
  for (const key of keys) {
    if (current === null || typeof current !== 'object' || Array.isArray(current)) return { found: false };
    if (!Object.hasOwn(current, key)) return { found: false };
    current = (current as Record<string, unknown>)[key];
  }
  return { found: true, value: current };
}

/** What JSON.parse says the scanner should extract from `doc` (headers: `parseExact`). */
function expectedOf(doc: Buffer): Expected {
  const parsed: unknown = JSON.parse(doc.toString('utf8'));
  const records = RECORD_PATHS.map((path) => {
    const at = follow(parsed, path.slice(0, -3).split('.'));
    return at.found && Array.isArray(at.value) ? (at.value as unknown[]) : [];
  });
  // Header values keep the digits of integers beyond 2^53 (bigints), which JSON.parse would round.
  const exact = parseExact(doc.toString('utf8'));
  const headers: Record<string, unknown> = {};
  for (const path of HEADER_PATHS) {
    const at = follow(exact, path.split('.'));
    if (at.found) headers[path] = at.value;
  }
  return { records, headers };
}

/** Bytes of `doc` at [offset, offset + length) with CR and LF turned into spaces, as the scanner hands them out. */
function originalBytes(doc: Buffer, offset: number, length: number): Buffer {
  const bytes = Buffer.from(doc.subarray(offset, offset + length));
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a || bytes[i] === 0x0d) bytes[i] = 0x20;
  return bytes;
}

/** Assert that a scan of `doc` extracted exactly `expected`, with consistent indexes, offsets and texts. */
function expectExtracted(doc: Buffer, result: ScanResult, expected: Expected, label: string): void {
  expect(result.counts, label).toEqual(expected.records.map((r) => r.length));
  expected.records.forEach((elements, target) => {
    const records = result.records.filter((r) => r.target === target);
    expect(
      records.map((r) => r.index),
      label,
    ).toEqual(elements.map((_, i) => i));
    expect(
      records.map((r) => JSON.parse(r.text)),
      label,
    ).toEqual(elements);
    for (const record of records) {
      expect(record.text, label).not.toMatch(/[\r\n]/);
      const bytes = Buffer.from(record.text, 'utf8');
      expect(doc[record.offset], label).toBe(bytes[0]);
      expect(originalBytes(doc, record.offset, bytes.length).equals(bytes), `${label}: bytes at offset`).toBe(
        true,
      );
    }
  });
  // Records come out in document order.
  const offsets = result.records.map((r) => r.offset);
  expect(offsets, label).toEqual([...offsets].sort((a, b) => a - b));
  expect({ ...result.headers }, label).toEqual(expected.headers);
  expect(result.bytesScanned, label).toBe(doc.length);
}

/** Split points inside every multi-byte UTF-8 character and right after every backslash. */
function nastySplits(doc: Buffer): number[] {
  const cuts: number[] = [];
  for (let i = 1; i < doc.length; i++) {
    if ((doc[i]! & 0xc0) === 0x80 || doc[i - 1] === 0x5c) cuts.push(i);
  }
  return cuts;
}

const CHUNKINGS: { name: string; options: (doc: Buffer) => ScanOptions }[] = [
  { name: 'whole', options: () => ({}) },
  { name: '1-byte chunks', options: () => ({ chunkSize: 1 }) },
  { name: '7-byte chunks', options: () => ({ chunkSize: 7 }) },
  { name: '64-byte chunks', options: () => ({ chunkSize: 64 }) },
  { name: '4096-byte chunks', options: () => ({ chunkSize: 4096 }) },
  { name: 'split inside every multibyte char and escape', options: (doc) => ({ splitAt: nastySplits(doc) }) },
];

/** Bytes a mutation likes to write: JSON syntax, number and literal letters, escapes, control bytes. */
const INTERESTING = [...Buffer.from('{}[]:,"\\ \t\r\n0123456789-+.eEtrufalsn/xbu\x00\x1f\x7f')];
const STRUCTURAL = new Set([...Buffer.from('{}[]:,"\\')]);

/**
 * One random mutation of `doc`: replace, insert or delete a byte, truncate, delete a short span, or copy
 * a short span elsewhere. Positions are biased towards structural bytes (where `[1,]`-style errors hide).
 */
function mutate(rng: Rng, doc: Buffer): { mutated: Buffer; how: string } | undefined {
  let pos = rng.int(doc.length + 1);
  if (rng.chance(0.5)) {
    for (let tries = 0; tries < 20; tries++) {
      const p = rng.int(doc.length);
      if (STRUCTURAL.has(doc[p]!)) {
        pos = Math.min(doc.length, p + rng.int(2));
        break;
      }
    }
  }
  const byte = rng.chance(0.8) ? rng.pick(INTERESTING) : rng.int(256);
  const hex = `0x${byte.toString(16)}`;
  const span = 2 + rng.int(11);
  switch (rng.int(6)) {
    case 0: {
      if (pos === doc.length) return undefined;
      const mutated = Buffer.from(doc);
      mutated[pos] = byte;
      return { mutated, how: `byte ${pos} := ${hex}` };
    }
    case 1:
      return {
        mutated: Buffer.concat([doc.subarray(0, pos), Buffer.from([byte]), doc.subarray(pos)]),
        how: `insert ${hex} at ${pos}`,
      };
    case 2:
      if (pos === doc.length) return undefined;
      return {
        mutated: Buffer.concat([doc.subarray(0, pos), doc.subarray(pos + 1)]),
        how: `delete byte ${pos}`,
      };
    case 3:
      return { mutated: doc.subarray(0, pos), how: `truncate at ${pos}` };
    case 4:
      return {
        mutated: Buffer.concat([doc.subarray(0, pos), doc.subarray(pos + span)]),
        how: `delete bytes ${pos}..${pos + span}`,
      };
    default: {
      const from = rng.int(doc.length);
      const piece = doc.subarray(from, from + span);
      return {
        mutated: Buffer.concat([doc.subarray(0, pos), piece, doc.subarray(pos)]),
        how: `copy bytes ${from}..${from + span} to ${pos}`,
      };
    }
  }
}

const SEEDS = Array.from({ length: 200 }, (_, i) => 1000 + i);

function expectRejectedAt(outcome: Outcome<unknown>, offset: number, label = ''): MalformedInputError {
  expect(outcome.decision, label).toBe('reject');
  if (outcome.decision !== 'reject') throw new Error('unreachable');
  expect(outcome.error.byteOffset, `${label}: ${outcome.error.message}`).toBe(offset);
  return outcome.error;
}

/** Scan `text` whole and split at every byte; all must reject at `offset`. */
function expectRejectedAtEverySplit(text: string | Buffer, offset: number, options: ScanOptions = {}): void {
  const buf = Buffer.from(text);
  expectRejectedAt(
    outcomeOf(() => scanBuffer(buf, options)),
    offset,
    'whole',
  );
  for (let p = 0; p <= buf.length; p++) {
    expectRejectedAt(
      outcomeOf(() => scanBuffer(buf, { ...options, splitAt: p })),
      offset,
      `split at ${p}`,
    );
  }
}

/** Scan `text` whole and split at every byte; all must give the same result, which is returned. */
function scanAtEverySplit(text: string | Buffer, options: ScanOptions): ScanResult {
  const result = scanBuffer(text, options);
  const buf = Buffer.from(text);
  for (let p = 0; p <= buf.length; p++) {
    expect(scanBuffer(buf, { ...options, splitAt: p }), `split at ${p}`).toEqual(result);
  }
  return result;
}

describe('JsonRecordScanner', () => {
  describe('differential tests against JSON.parse on random documents', () => {
    it('generates varied documents: escaped keys, multibyte text, exponents, CR/LF/tab whitespace', () => {
      const all = SEEDS.map((seed) => generateDocument(seed).text).join('\n');
      for (const needle of ['\\u005f', '\\\\"', '"in_network": [', 'E+', 'e-', '\t', '\r', '😀', '€', 'é']) {
        expect(all, needle).toContain(needle);
      }
      // Every document is valid JSON, and some have each record path populated.
      const expected = SEEDS.map((seed) => expectedOf(generateDocument(seed).bytes));
      for (let target = 0; target < RECORD_PATHS.length; target++) {
        expect(expected.filter((e) => e.records[target]!.length > 0).length).toBeGreaterThan(20);
      }
      for (const path of HEADER_PATHS) {
        expect(expected.filter((e) => Object.hasOwn(e.headers, path)).length, path).toBeGreaterThan(20);
      }
      // The in_network key is often written with escapes (`"in\u005fnetwork"`-style), yet has records.
      const escapedKey = SEEDS.filter(
        (seed, i) =>
          expected[i]!.records[0]!.length > 0 && !generateDocument(seed).text.includes('"in_network"'),
      );
      expect(escapedKey.length).toBeGreaterThan(10);
    });

    it.each(SEEDS)(
      'extracts the records and headers JSON.parse sees, in every chunking (seed %i)',
      (seed) => {
        const { bytes } = generateDocument(seed);
        const expected = expectedOf(bytes);
        for (const chunking of CHUNKINGS) {
          const result = scanBuffer(bytes, { ...SCAN, ...chunking.options(bytes) });
          expectExtracted(bytes, result, expected, `seed ${seed}, ${chunking.name}`);
        }
      },
    );

    it('extracts the same through gzip, gunzipped in 64-byte chunks, single- and multi-member', async () => {
      for (const seed of SEEDS.filter((s) => s % 10 === 0)) {
        const { bytes } = generateDocument(seed);
        const expected = expectedOf(bytes);
        for (const members of [1, 3]) {
          const result = await scanGzipBuffer(bytes, { ...SCAN, members, gunzipChunkSize: 64 });
          expectExtracted(bytes, result, expected, `seed ${seed}, ${members} gzip member(s)`);
        }
      }
    });

    it('accepts and rejects exactly what JSON.parse does on 2500 seeded mutations of valid documents', () => {
      const docs = Array.from(
        { length: 60 },
        (_, i) => generateDocument(5000 + i, { records: 2, depth: 2 }).bytes,
      );
      const rng = new Rng(0xc0ffee);
      const mismatches: string[] = [];
      const decisions: Record<Decision, number> = { accept: 0, reject: 0 };
      let kept = 0;
      for (let tries = 0; kept < 2500 && tries < 50_000; tries++) {
        const doc = rng.pick(docs);
        const mutation = mutate(rng, doc);
        if (!mutation) continue;
        const { mutated, how } = mutation;
        // JSON.parse sees invalid UTF-8 as U+FFFD (and accepts), and rejects a BOM the scanner skips.
        if (!isUtf8(mutated) || (mutated[0] === 0xef && mutated[1] === 0xbb && mutated[2] === 0xbf)) continue;
        kept++;
        const expected = jsonParseDecision(mutated);
        const whole = outcomeOf(() => scanBuffer(mutated, SCAN));
        const chunkSize = 1 + rng.int(16);
        const chunked = outcomeOf(() => scanBuffer(mutated, { ...SCAN, chunkSize }));
        const bare = outcomeOf(() => scanBuffer(mutated, {}));
        decisions[whole.decision]++;
        const text = JSON.stringify(mutated.toString('utf8')).slice(0, 3000);
        if (whole.decision !== expected) {
          mismatches.push(`${how}: scanner ${whole.decision}s, JSON.parse ${expected}s ${text}`);
          continue;
        }
        if (chunked.decision !== whole.decision || bare.decision !== whole.decision) {
          mismatches.push(`${how}: decision changes with chunking (${chunkSize}) or config: ${text}`);
          continue;
        }
        if (whole.decision === 'reject') {
          const offset = whole.error.byteOffset;
          const others = [chunked, bare].map((o) => (o.decision === 'reject' ? o.error.byteOffset : -1));
          if (offset < 0 || offset > mutated.length || others.some((o) => o !== offset)) {
            mismatches.push(`${how}: error offsets ${offset}, ${others} differ or out of range: ${text}`);
            continue;
          }
          // The offset is the first byte that cannot be valid: the bytes before it are a valid prefix.
          const prefix = outcomeOf(() => scanBuffer(mutated.subarray(0, offset), SCAN));
          if (prefix.decision === 'reject' && prefix.error.byteOffset !== offset) {
            mismatches.push(
              `${how}: the prefix before the error offset ${offset} is itself invalid: ${text}`,
            );
          }
        } else if (whole.decision === 'accept' && chunked.decision === 'accept') {
          // (Not compared with JSON.parse: a mutation can create a duplicate key, e.g. In_network → in_network.)
          expect(chunked.value, how).toEqual(whole.value);
        }
      }
      expect(mismatches).toEqual([]);
      expect(kept).toBe(2500);
      // Both outcomes are well exercised.
      expect(decisions.accept).toBeGreaterThan(250);
      expect(decisions.reject).toBeGreaterThan(1000);
    });

    it('rejects every truncation of a valid document at its end, with offset = the truncated length', () => {
      for (const seed of SEEDS.slice(0, 10)) {
        const { bytes } = generateDocument(seed, { records: 2, depth: 3 });
        const end = bytes.lastIndexOf(0x7d) + 1; // after the closing brace: complete
        for (let length = 0; length < bytes.length; length++) {
          const prefix = bytes.subarray(0, length);
          const outcome = outcomeOf(() => scanBuffer(prefix, { ...SCAN, chunkSize: 5 }));
          if (length >= end) {
            expect(outcome.decision, `seed ${seed}, length ${length}`).toBe('accept');
          } else {
            const error = expectRejectedAt(outcome, length, `seed ${seed}, length ${length}`);
            expect(error.detail).toMatch(/end of input|empty/);
          }
        }
      }
    });
  });

  describe('keys, strings and values', () => {
    it('finds top-level and record keys written with \\u escapes, and keeps record bytes verbatim', () => {
      const doc =
        '{"in\\u005fnetwork":[{"billing\\u005Fcode":"1"}],"\\u0076ersion":"v","pl\\u0061n":{"\\u0069d":7}}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'], headers: ['version', 'plan.id'] });
      const offset = doc.indexOf('[{') + 1;
      expect(result.records).toEqual([{ target: 0, index: 0, offset, text: '{"billing\\u005Fcode":"1"}' }]);
      expect(JSON.parse(result.records[0]!.text)).toEqual({ billing_code: '1' });
      expect(result.headers).toEqual({ version: 'v', 'plan.id': 7 });
    });

    it('handles strings ending in an escaped backslash, and escaped quotes', () => {
      const doc = String.raw`{"in_network":["C:\\",{"p":"C:\\","q":"\"]}\\\""},"\\\\"],"version":"\\"}`;
      expect(JSON.parse(doc)).toBeTruthy();
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'], headers: ['version'] });
      expect(result.records.map((r) => JSON.parse(r.text))).toEqual(JSON.parse(doc).in_network);
      expect(result.headers).toEqual({ version: '\\' });
    });

    it('ignores "in_network": [ inside strings, and in_network keys at other depths', () => {
      const doc =
        '{"note":"\\"in_network\\": [1,2]","x":{"in_network":[9]},"in_network":[3,{"in_network":[8]}],"y":[{"in_network":[7]}]}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'] });
      expect(result.records.map((r) => r.text)).toEqual(['3', '{"in_network":[8]}']);
    });

    it('emits records that are scalars, empty containers and nested arrays of arrays', () => {
      const doc =
        '{"in_network":[1,-0.5e-3,1E+2,"s",true,false,null,[],{},[[1,[2]],[]],[[[]]]],"provider_references":[]}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]', 'provider_references[*]'] });
      expect(result.records.map((r) => r.text)).toEqual([
        '1',
        '-0.5e-3',
        '1E+2',
        '"s"',
        'true',
        'false',
        'null',
        '[]',
        '{}',
        '[[1,[2]],[]]',
        '[[[]]]',
      ]);
      expect(result.counts).toEqual([11, 0]);
    });

    it('turns line breaks between tokens of a record into spaces, in the record and in the caller’s chunk', () => {
      const doc = Buffer.from('{"in_network":\r\n[\n{\r\n"a":\n[1,\r2]\n}\n,\t3\n]}');
      const { scanner, records } = makeScanner({ records: ['in_network[*]'] });
      const chunk = Buffer.from(doc);
      scanner.write(chunk);
      scanner.end();
      expect(records.map((r) => r.text)).toEqual(['{  "a": [1, 2] }', '3']);
      expect(records[0]!.offset).toBe(doc.indexOf('{', 1));
      // Documented: the scanner writes the spaces into the chunk it was given (outside records: untouched).
      expect(chunk.toString()).toBe('{"in_network":\r\n[\n{  "a": [1, 2] }\n,\t3\n]}');
    });

    it('skips a leading UTF-8 BOM (also when split across chunks) and counts it in offsets', () => {
      const json = '{"in_network":[1]}';
      const doc = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]);
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'] });
      expect(result.records).toEqual([{ target: 0, index: 0, offset: 3 + json.indexOf('1'), text: '1' }]);
      expectRejectedAtEverySplit('\ufeff\ufeff{}', 3);
      expectRejectedAtEverySplit('{}\ufeff', 2);
      expectRejectedAtEverySplit('{"a":\ufeff1}', 5);
    });

    it('accepts big numbers, exponent forms and lone surrogate escapes; rejects invalid UTF-8', () => {
      const doc = '{"in_network":[1e999,-123456789012345678901234567890,0E-0,"\\ud800","\\uDC00x"]}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'] });
      expect(result.records.map((r) => r.text)).toEqual([
        '1e999',
        '-123456789012345678901234567890',
        '0E-0',
        '"\\ud800"',
        '"\\uDC00x"',
      ]);
      // Raw UTF-8 surrogate, overlong '/', byte above U+10FFFF, truncated 4-byte char.
      for (const bad of [
        [0xed, 0xa0, 0x80],
        [0xc0, 0xaf],
        [0xf4, 0x90, 0x80, 0x80],
        [0xf0, 0x9f, 0x98],
      ]) {
        const buf = Buffer.concat([Buffer.from('["a'), Buffer.from(bad), Buffer.from('"]')]);
        const outcome = outcomeOf(() => scanBuffer(buf, { records: ['[*]'] }));
        expect(outcome.decision, Buffer.from(bad).toString('hex')).toBe('reject');
      }
    });

    it('rejects an empty or whitespace-only JSON input at its end', () => {
      expectRejectedAtEverySplit('', 0);
      expectRejectedAtEverySplit(' \r\n\t', 4);
    });
  });

  describe('record paths and headers', () => {
    it('captures header values that are objects or arrays, before or after the records, at nested paths', () => {
      const doc =
        '{"in_network":[{"a":1}],"meta":{"list":[1,{"b":[]}]},"plan":{"name":"p","meta":{"deep":[true,null]},"id":"X1"},"version":"1.0.0"}';
      const result = scanAtEverySplit(doc, {
        records: ['in_network[*]'],
        headers: ['version', 'meta', 'plan.id', 'plan.meta.deep', 'plan.missing', 'absent'],
      });
      expect(result.headers).toEqual({
        version: '1.0.0',
        meta: { list: [1, { b: [] }] },
        'plan.id': 'X1',
        'plan.meta.deep': [true, null],
      });
      expect(result.counts).toEqual([1]);
    });

    it('finds no header under a parent of the wrong type', () => {
      for (const plan of ['[{"id":1}]', '"id"', 'null', '1']) {
        const result = scanAtEverySplit(`{"plan":${plan},"in_network":[1]}`, {
          records: ['in_network[*]'],
          headers: ['plan.id'],
        });
        expect(result.headers, plan).toEqual({});
        expect(result.counts).toEqual([1]);
      }
    });

    it('yields 0 records, without error, when the record path holds something other than an array', () => {
      for (const value of ['{}', '{"in_network":[1]}', '"x"', '"[1,2]"', 'null', '5', 'true', '{"a":[1]}']) {
        const result = scanAtEverySplit(`{"in_network":${value},"after":[1]}`, {
          records: ['in_network[*]'],
        });
        expect(result.records, value).toEqual([]);
        expect(result.counts, value).toEqual([0]);
      }
      // A root-array path on an object root, and an object path on an array root.
      expect(scanAtEverySplit('{"a":[1]}', { records: ['[*]'] }).counts).toEqual([0]);
      expect(scanAtEverySplit('[{"in_network":[1]}]', { records: ['in_network[*]'] }).counts).toEqual([0]);
    });

    it('extracts several targets, including a nested record path, each with its own index sequence', () => {
      const doc = '{"b":[10,11],"data":{"items":[20],"n":2},"a":[1],"b2":[0]}';
      const result = scanAtEverySplit(doc, {
        records: ['a[*]', 'b[*]', 'data.items[*]'],
        headers: ['data.n'],
      });
      expect(result.records.map((r) => [r.target, r.index, r.text])).toEqual([
        [1, 0, '10'],
        [1, 1, '11'],
        [2, 0, '20'],
        [0, 0, '1'],
      ]);
      expect(result.counts).toEqual([1, 2, 1]);
      expect(result.headers).toEqual({ 'data.n': 2 });
    });

    it('with duplicated top-level keys, emits the records of every occurrence and says which header value it did not keep', () => {
      // Documented behaviour: JSON.parse keeps only the last "in_network"; a streaming scanner cannot know
      // a key repeats, so it emits the records of both arrays, numbering them on. JSON.parse also keeps
      // the last "version" without a word; the scanner keeps the first and notes the other as not read.
      const doc = '{"in_network":[1,2],"version":"a","in_network":[3],"version":"b","version":"a"}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'], headers: ['version'] });
      expect(result.records.map((r) => [r.index, r.text])).toEqual([
        [0, '1'],
        [1, '2'],
        [2, '3'],
      ]);
      expect(result.headers).toEqual({ version: 'a' });
      // The third "version" repeats the first value: nothing is lost there.
      expect(result.skipped).toEqual({
        count: 1,
        values: [{ path: '$.version', kind: 'string', offset: doc.indexOf('"b"'), repeated: true }],
      });
      expect(JSON.parse(doc)).toEqual({ in_network: [3], version: 'a' });
    });

    it('notes a header written again only when its value differs, not its spelling', () => {
      const doc = '{"version":1.0,"version":1,"version":"x","version":"y"}';
      const result = scanAtEverySplit(doc, { records: ['in_network[*]'], headers: ['version'] });
      expect(result.headers).toEqual({ version: 1 });
      expect(result.skipped).toEqual({
        count: 2,
        values: [{ path: '$.version', kind: 'string', offset: doc.indexOf('"x"'), repeated: true }],
      });
      const escaped = scanAtEverySplit('{"version":"a","version":"\\u0061"}', {
        records: [],
        headers: ['version'],
      });
      expect(escaped.headers).toEqual({ version: 'a' });
      expect(escaped.skipped.count).toBe(0);
    });
  });

  describe('values no path reads', () => {
    const options: ScanOptions = { records: ['items[*]', 'more.list[*]'], headers: ['version'] };

    it('are counted with their path, kind and offset, the same at every split', () => {
      const text =
        '{"version":"1","extra":[1,2],"items":[{"a":1}],"more":{"list":{"id":7},"note":"x"},"z":null}';
      const result = scanAtEverySplit(text, options);
      expect(result.skipped).toEqual({
        count: 4,
        values: [
          { path: '$.extra', kind: 'array', offset: text.indexOf('[1,2]') },
          // An optional record path holding an object: none of it is a record.
          { path: '$.more.list', kind: 'object', offset: text.indexOf('{"id":7}') },
          { path: '$.more.note', kind: 'string', offset: text.indexOf('"x"') },
          { path: '$.z', kind: 'null', offset: text.indexOf('null') },
        ],
      });
      expect(result.counts).toEqual([1, 0]);
    });

    it('include a path holding another kind than it leads to, but not a null one', () => {
      expect(scanBuffer('{"items":[],"more":"text"}', options).skipped.values).toEqual([
        { path: '$.more', kind: 'string', offset: 19 },
      ]);
      expect(scanBuffer('{"items":[],"more":null,"version":null}', options).skipped).toEqual({
        values: [],
        count: 0,
      });
      // A key given twice, the second time with a value of another kind: that value is not read.
      expect(scanBuffer('{"items":[{"a":1}],"items":"x"}', options).skipped.values).toEqual([
        { path: '$.items', kind: 'string', offset: 27 },
      ]);
    });

    it('include a value under a key longer than any path could name, wherever the chunks split it', () => {
      const long = 'k'.repeat(300);
      const text = `{"items":[],"${long}":{"deep":[1]},"version":"2"}`;
      const result = scanAtEverySplit(text, options);
      expect(result.skipped.count).toBe(1);
      expect(result.skipped.values[0]).toMatchObject({ kind: 'object', offset: text.indexOf('{"deep"') });
      expect(result.skipped.values[0]!.path).toMatch(/^\$\.k{20,}…$/);
      expect(result.skipped.values[0]!.path.length).toBeLessThanOrEqual(200);
      expect(result.headers).toEqual({ version: '2' });
    });
  });

  describe('errors', () => {
    it('rejects trailing data after the top-level value at the offset of its first byte', () => {
      expectRejectedAtEverySplit('{"a":1} x', 8);
      expectRejectedAtEverySplit('[] []', 3);
      expectRejectedAtEverySplit('{} x', 3);
      expectRejectedAtEverySplit('{}}', 2);
      expectRejectedAtEverySplit('{}\n\t]', 4);
      expectRejectedAtEverySplit('1 2', 2);
      expectRejectedAtEverySplit('"a""b"', 3);
      expectRejectedAtEverySplit('{}\u0000', 2);
      expectRejectedAtEverySplit('{"in_network":[1]},', 18, { records: ['in_network[*]'] });
    });

    it('rejects truncated input at its end, with offset = total length', () => {
      for (const doc of [
        '{"in_network":[{"a":"b',
        '{"in_network":[1',
        '[1.',
        '[-',
        '{"a":tru',
        '{"a"',
        '["\\u12',
      ]) {
        const buf = Buffer.from(doc);
        expectRejectedAtEverySplit(buf, buf.length, { records: ['in_network[*]'] });
      }
      const cut = Buffer.from('["😀"]').subarray(0, 4); // inside a 4-byte character
      expectRejectedAtEverySplit(cut, 4);
    });

    it('puts the source name and the byte offset in error messages', () => {
      const source = 's3://landing/2024-01/acme_in-network.json';
      const outcome = outcomeOf(() =>
        scanBuffer('{"in_network":[1,2,]}', { source, records: ['in_network[*]'] }),
      );
      const error = expectRejectedAt(outcome, 19);
      expect(error.source).toBe(source);
      expect(error.message).toContain(source);
      expect(error.message).toContain('byte 19');
      expect(error.message).toContain("']'");
    });

    it('respects maxDepth, counting arrays and objects, inside and outside records', () => {
      const ok = ['[[[1]]]', '{"a":{"b":[1]}}', '{"in_network":[[]]}', '{"x":[{"y":2}]}'];
      for (const doc of ok)
        expect(scanAtEverySplit(doc, { records: ['in_network[*]'], maxDepth: 3 })).toBeTruthy();
      expectRejectedAtEverySplit('[[[[1]]]]', 3, { maxDepth: 3 });
      expectRejectedAtEverySplit('{"a":{"b":[[1]]}}', 11, { maxDepth: 3 });
      expectRejectedAtEverySplit('{"in_network":[[[]]]}', 16, { records: ['in_network[*]'], maxDepth: 3 });
      expectRejectedAtEverySplit('{"x":[{"y":{}}]}', 11, { records: ['in_network[*]'], maxDepth: 3 });
      const error = expectRejectedAt(
        outcomeOf(() => scanBuffer('[[[[1]]]]', { maxDepth: 3 })),
        3,
      );
      expect(error.message).toContain('3');
      // The default is 1000 levels.
      expect(outcomeOf(() => scanBuffer(`${'['.repeat(1000)}${']'.repeat(1000)}`, {})).decision).toBe(
        'accept',
      );
      expectRejectedAt(
        outcomeOf(() => scanBuffer(`${'['.repeat(1001)}${']'.repeat(1001)}`, {})),
        1000,
      );
    });
  });

  describe('maxRecordBytes', () => {
    it('throws RecordTooLargeError naming the record path, index and byte offset', () => {
      const doc = '{"version":"1","in_network":[1,{"a":"b"},"0123456789",2]}';
      const offset = doc.indexOf('"0123');
      for (const chunkSize of [undefined, 1, 3, 7]) {
        const error = (() => {
          try {
            scanBuffer(doc, { records: ['in_network[*]'], maxRecordBytes: 11, chunkSize, source: 'f.json' });
          } catch (e) {
            return e;
          }
          return undefined;
        })();
        expect(error, `chunkSize ${chunkSize}`).toBeInstanceOf(RecordTooLargeError);
        const tooLarge = error as RecordTooLargeError;
        expect(tooLarge.recordPath).toBe('in_network');
        expect(tooLarge.recordIndex).toBe(2);
        expect(tooLarge.byteOffset).toBe(offset);
        expect(tooLarge.maxRecordBytes).toBe(11);
        expect(tooLarge.message).toContain('f.json');
        expect(tooLarge.message).toContain(`in_network[2]`);
        expect(tooLarge.message).toContain(`byte ${offset}`);
      }
      // A record of exactly maxRecordBytes bytes is fine.
      expect(scanAtEverySplit(doc, { records: ['in_network[*]'], maxRecordBytes: 12 }).counts).toEqual([4]);
    });

    it('applies the limit to header values too', () => {
      const doc = '{"plan":{"id":"a long header value"},"in_network":[]}';
      for (const chunkSize of [undefined, 4]) {
        expect(() =>
          scanBuffer(doc, { records: ['in_network[*]'], headers: ['plan.id'], maxRecordBytes: 8, chunkSize }),
        ).toThrow(RecordTooLargeError);
      }
    });

    it('throws for a 50 MB record with a 1 MB limit before the input is all fed, buffering ≤ limit + a chunk', () => {
      const head = Buffer.from('{"in_network":[{"a":1},{"big":"');
      const doc = Buffer.alloc(head.length + 50 * 1024 * 1024 + 4, 0x78);
      head.copy(doc);
      doc.write('"}]}', doc.length - 4);
      const { scanner } = makeScanner({ records: ['in_network[*]'], maxRecordBytes: 1024 * 1024 });
      const chunk = 64 * 1024;
      let fed = 0;
      let error: unknown;
      try {
        for (; fed < doc.length; fed += chunk) scanner.write(doc.subarray(fed, fed + chunk));
        scanner.end();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(RecordTooLargeError);
      expect((error as RecordTooLargeError).recordIndex).toBe(1);
      expect((error as RecordTooLargeError).byteOffset).toBe(head.indexOf('{"big"'));
      expect(fed).toBeLessThan(1024 * 1024 + 2 * chunk);
    });

    it('does not buffer values it skips: a 20 MB unconfigured value passes a 1 MB limit', () => {
      const head = Buffer.from('{"notes":"');
      const tail = Buffer.from('","in_network":[{"a":1}]}');
      const doc = Buffer.concat([head, Buffer.alloc(20 * 1024 * 1024, 0x61), tail]);
      const result = scanBuffer(doc, {
        records: ['in_network[*]'],
        maxRecordBytes: 1024 * 1024,
        chunkSize: 65536,
      });
      expect(result.records.map((r) => r.text)).toEqual(['{"a":1}']);
    });

    it('decides a document with a key longer than maxRecordBytes the same way in any chunking', () => {
      // A valid document; only the chunking differs.
      const doc = `{"${'k'.repeat(3000)}":1,"in_network":[1]}`;
      const options = { records: ['in_network[*]'], maxRecordBytes: 1000 };
      const whole = outcomeOf(() => scanBuffer(doc, options));
      const chunked = outcomeOf(() => scanBuffer(doc, { ...options, chunkSize: 512 }));
      expect(chunked.decision).toBe(whole.decision);
    });
  });

  describe('NDJSON', () => {
    const NDJSON: ScanOptions = { format: 'ndjson', records: ['[*]'] };

    it('emits one record per line with its offset; blank lines and a last line without newline are fine', () => {
      const doc = '{"a":1}\n\n[1, 2]\n  \t\n"s"\n3\nnull\n{"last":true}';
      const result = scanAtEverySplit(doc, NDJSON);
      expect(result.records.map((r) => [r.index, r.offset, r.text])).toEqual([
        [0, 0, '{"a":1}'],
        [1, 9, '[1, 2]'],
        [2, 20, '"s"'],
        [3, 24, '3'],
        [4, 26, 'null'],
        [5, 31, '{"last":true}'],
      ]);
      expect(result.counts).toEqual([6]);
    });

    it('accepts CRLF line endings, and keeps CR out of the records', () => {
      const result = scanAtEverySplit('{"a":1}\r\n12\r\n\r\n"x"\r\n', NDJSON);
      expect(result.records.map((r) => [r.offset, r.text])).toEqual([
        [0, '{"a":1}'],
        [9, '12'],
        [15, '"x"'],
      ]);
    });

    it('accepts an empty input as zero records', () => {
      expect(scanAtEverySplit('', NDJSON).counts).toEqual([0]);
      expect(scanAtEverySplit('\n\r\n  \n', NDJSON).counts).toEqual([0]);
    });

    it('rejects two values on one line, and invalid lines, at the offending byte', () => {
      expectRejectedAtEverySplit('1 2\n', 2, NDJSON);
      expectRejectedAtEverySplit('{"a":1}{"b":2}\n', 7, NDJSON);
      expectRejectedAtEverySplit('{"a":1}\n{"b":}\n', 13, NDJSON);
      expectRejectedAtEverySplit('1\n2\r3\n', 4, NDJSON);
      expectRejectedAtEverySplit('{"a":1}\n{"b"', 12, NDJSON);
    });

    it('rejects a value that spans several lines (each line must be one JSON value)', () => {
      // Line 1 is `["a",`, which is not a JSON value; neither is line 3's `{"x":`.
      for (const doc of ['["a",\n"b"]\n', '{"x":\n1}\n', '{"x"\r\n:1}\n']) {
        expect(outcomeOf(() => scanBuffer(doc, NDJSON)).decision, JSON.stringify(doc)).toBe('reject');
      }
    });
  });
});
