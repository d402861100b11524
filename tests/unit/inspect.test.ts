import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { MalformedInputError } from '../../shared/errors.ts';
import { draftDatasetConfig } from '../../shared/inspect/draft-config.ts';
import { inspectDocument, sniffDelimiter, sniffFormat } from '../../shared/inspect/inspect-document.ts';
import { type InspectReport, inspectSource } from '../../shared/inspect/inspect-source.ts';
import { JSON_TEST_SUITE, TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');
const LIMITS = { maxRecordBytes: 64 * 1024 * 1024, maxDepth: 100_000 };

/** Nesting depth as JSON.parse sees it (containers only), without recursion. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

const arrayCounts = (report: InspectReport) =>
  Object.fromEntries(report.arrays.map((a) => [a.path, a.count]));

describe('inspectSource', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-inspect-');
  });
  afterAll(async () => tmp.cleanup());
  const write = async (name: string, body: string | Buffer) => {
    const path = join(tmp.dir, name);
    await writeFile(path, body);
    return path;
  };

  it('reports every CMS example as JSON.parse sees it: arrays and counts, scalars, depth, TiC kind and version', async () => {
    const expectedKinds: Record<string, string> = {
      'allowed-amounts': 'allowed-amounts',
      'in-network': 'in-network',
      'provider-reference': 'provider-reference',
      'table-of-contents': 'table-of-contents',
    };
    const files = (await readdir(TIC_EXAMPLES)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const file of files) {
      const path = join(TIC_EXAMPLES, file);
      const parsed = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      const report = await inspectSource(path, LIMITS);
      expect(report.format, file).toBe('json');
      expect(report.complete).toBe(true);
      const arrays = Object.entries(parsed).filter(([, v]) => Array.isArray(v));
      expect(arrayCounts(report), file).toEqual(
        Object.fromEntries(arrays.map(([k, v]) => [`${k}[*]`, (v as unknown[]).length])),
      );
      const scalars = Object.entries(parsed).filter(([, v]) => v === null || typeof v !== 'object');
      expect(report.scalars, file).toEqual(Object.fromEntries(scalars));
      expect(report.topLevel?.keys).toEqual(Object.keys(parsed));
      expect(report.depth, file).toBe(depthOf(parsed));
      const kind = Object.keys(expectedKinds).find((k) => file.startsWith(k));
      expect(report.tic?.kind, file).toBe(kind && expectedKinds[kind]);
      expect(report.tic?.version).toBe(parsed.version);
    }
  });

  it('reads the gzip sample in one pass: counts, element bytes, the largest record at its byte offset', async () => {
    const text = gunzipSync(await readFile(SAMPLE));
    const parsed = JSON.parse(text.toString('utf8')) as {
      in_network: unknown[];
      provider_references: unknown[];
    };
    const report = await inspectSource(SAMPLE, LIMITS);
    expect(report.compression).toBe('gzip');
    expect(report.uncompressedBytesRead).toBe(text.length);
    expect(report.tic).toEqual({ kind: 'in-network', dataset: 'tic-in-network', version: '2.0.0' });
    const inNetwork = report.arrays.find((a) => a.path === 'in_network[*]')!;
    expect(inNetwork.count).toBe(parsed.in_network.length);
    // The largest record: its bytes at its offset parse to the element at its index.
    const largest = report.largestRecord!;
    const bytes = text.subarray(largest.offset, largest.offset + largest.bytes).toString('utf8');
    const array = largest.path === 'in_network[*]' ? parsed.in_network : parsed.provider_references;
    expect(JSON.parse(bytes)).toEqual(array[largest.index]);
    for (const element of [...parsed.in_network, ...parsed.provider_references]) {
      expect(JSON.stringify(element).length).toBeLessThanOrEqual(largest.bytes);
    }
    // The sampled shape names the fields of an in_network item, nested arrays with their element shape.
    expect(Object.keys(inNetwork.shape.fields ?? {})).toEqual(
      expect.arrayContaining(['billing_code', 'negotiated_rates', 'name']),
    );
    const prices = inNetwork.shape.fields?.negotiated_rates?.items?.fields?.negotiated_prices?.items;
    expect(prices?.fields?.negotiated_rate?.type).toBe('number');
    expect(prices?.fields?.expiration_date?.type).toBe('string(date)');
  });

  it('finds record arrays under nested objects and at the root, and skips empty ones in a drafted config', async () => {
    const nested = await write(
      'nested.json',
      JSON.stringify({
        meta: { at: '2024-01-01', n: 2 },
        data: { items: [{ a: 1 }, { a: 2.5 }] },
        empty: [],
      }),
    );
    const report = await inspectSource(nested, LIMITS);
    expect(arrayCounts(report)).toEqual({ 'data.items[*]': 2, 'empty[*]': 0 });
    expect(report.scalars).toEqual({ 'meta.at': '2024-01-01', 'meta.n': 2 });
    const config = parseDatasetConfig(draftDatasetConfig(report.structure, 'nested'));
    expect(config.records?.map((r) => r.path)).toEqual(['data.items[*]']);
    expect(config.headers.map((h) => h.path)).toEqual(['meta.at', 'meta.n']);
    expect(config.silver?.columns).toEqual([{ name: 'a', type: 'number', required: false }]);

    const root = await inspectSource(await write('root.json', '[{"x":1},{"x":2},{"x":3}]'), LIMITS);
    expect(root.topLevel?.kind).toBe('array');
    expect(arrayCounts(root)).toEqual({ '[*]': 3 });
    expect(parseDatasetConfig(draftDatasetConfig(root.structure, 'root')).records?.[0]?.path).toBe('[*]');
  });

  it('drafts no column that would be NULL or refused: a key with a dot stays in _rescued, 1e-400 and 2^64 are text', async () => {
    const lines = [
      '{"id":1,"a.b":5,"small":1.5,"huge":1,"far":2.5,"n":{"c.d":1,"e":2}}',
      '{"id":2,"a.b":6,"small":1e-400,"huge":12345678901234567890,"far":1e400,"n":{"c.d":3,"e":4}}',
    ];
    const report = await inspectSource(await write('odd.ndjson', `${lines.join('\n')}\n`), LIMITS);
    // 1e-400 is a number (on main: an object, and the field got no column).
    expect(report.arrays[0]?.shape.fields?.small?.type).toBe('number');
    const config = parseDatasetConfig(draftDatasetConfig(report.structure, 'odd'));
    // On main "a.b" got a column with source "a.b", the key b of an object a: NULL in every row.
    expect(config.silver?.columns.map((c) => [c.name, c.type, c.source])).toEqual([
      ['id', 'integer', undefined],
      ['small', 'string', undefined],
      ['huge', 'string', undefined],
      ['far', 'string', undefined],
      ['n_e', 'integer', 'n.e'],
    ]);
    // An unnamed CSV column: on main the draft gave it source "", which the config refuses (exit 2).
    const csv = await inspectSource(await write('unnamed.csv', 'id,,b\n1,x,2\n'), LIMITS);
    const drafted = parseDatasetConfig(draftDatasetConfig(csv.structure, 'unnamed'));
    expect(drafted.silver?.columns.map((c) => c.name)).toEqual(['id', 'b']);
  });

  it('tells NDJSON from JSON by a second value on a later line, and CSV by its first byte', () => {
    expect(sniffFormat(Buffer.from('{"a":1}\n{"a":2}\n'))).toBe('ndjson');
    expect(sniffFormat(Buffer.from('{"a":\n1}\n'))).toBe('json');
    expect(sniffFormat(Buffer.from('[1,2]'))).toBe('json');
    expect(sniffFormat(Buffer.from('{"a":1}'), 'x.jsonl.gz')).toBe('ndjson');
    expect(sniffFormat(Buffer.from('"id","name"\n1,x\n'))).toBe('csv');
    expect(sniffDelimiter(Buffer.from('a;b;c\n1;2;3\n'))).toBe(';');
    expect(sniffDelimiter(Buffer.from('a\tb\tc,d\n'))).toBe('\t');
  });

  it('types CSV cells as a config would: leading zeros stay text, integers, numbers, dates, booleans', async () => {
    const csv =
      'zip,count,price,day,ok,__proto__\n01234,1,2.5,2024-01-02,true,x\n98765,22,3,2024-02-03,false,yz\n';
    const report = await inspectSource(await write('rows.csv', csv), LIMITS);
    expect(report.format).toBe('csv');
    expect(report.csv?.columns).toEqual(['zip', 'count', 'price', 'day', 'ok', '__proto__']);
    expect(report.arrays[0]?.count).toBe(2);
    // Rows are measured in the file's bytes, from their first byte to the next row's.
    const [header, first, second] = csv.split('\n');
    expect(report.arrays[0]?.largest).toEqual({
      index: 1,
      offset: header!.length + 1 + first!.length + 1,
      bytes: second!.length + 1,
    });
    expect(report.arrays[0]?.bytes).toBe(csv.length - header!.length - 1);
    const config = parseDatasetConfig(draftDatasetConfig(report.structure, 'rows'));
    expect(config.silver?.columns.map((c) => [c.name, c.type, c.source])).toEqual([
      ['zip', 'string', undefined],
      ['count', 'integer', undefined],
      ['price', 'number', undefined],
      ['day', 'date', undefined],
      ['ok', 'boolean', undefined],
      ['proto', 'string', '__proto__'],
    ]);
  });

  it('stops at --max-bytes with counts as lower bounds, and reads everything without it', async () => {
    const random = seededRandom(7);
    const lines: string[] = [];
    // Random digits barely compress: ≈ 3 MB of gzip, to read the first 1 MiB of.
    for (let i = 0; i < 100_000; i++) lines.push(JSON.stringify({ i, r: `${random()}${random()}` }));
    const path = await write('big.ndjson.gz', gzipSync(`${lines.join('\n')}\n`));
    const partial = await inspectSource(path, { ...LIMITS, maxBytes: 1024 * 1024 });
    expect(partial.complete).toBe(false);
    expect(partial.notes[0]).toMatch(/lower bounds/);
    expect(partial.arrays[0]!.count).toBeGreaterThan(0);
    expect(partial.arrays[0]!.count).toBeLessThan(lines.length);
    expect(partial.storedBytesRead).toBeLessThan(partial.storedBytesTotal!);
    const whole = await inspectSource(path, LIMITS);
    expect(whole.complete).toBe(true);
    expect(whole.arrays[0]!.count).toBe(lines.length);
    expect(whole.format).toBe('ndjson');
  });

  it('fails a truncated file with the byte offset where it ends, compressed or not', async () => {
    const text = gunzipSync(await readFile(SAMPLE));
    const cut = await write('cut.json', text.subarray(0, 100_000));
    const error = await inspectSource(cut, LIMITS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as MalformedInputError).byteOffset).toBe(100_000);
    const gz = await readFile(SAMPLE);
    const cutGz = await write('cut.json.gz', gz.subarray(0, 50_000));
    const gzError = await inspectSource(cutGz, LIMITS).catch((e: unknown) => e);
    expect(gzError).toBeInstanceOf(MalformedInputError);
    expect((gzError as Error).message).toMatch(
      /\(compressed\): malformed input at byte \d+: the gzip stream ends early/,
    );
  });

  it('lists at most 1,000 keys of a map-like object and counts the rest', async () => {
    const map: Record<string, unknown> = {};
    for (let i = 0; i < 1500; i++) map[`id${i}`] = { v: i };
    const report = await inspectSource(
      await write('map.json', JSON.stringify({ byId: map, list: [1] })),
      LIMITS,
    );
    expect(report.structure.keysNotLearned).toBe(500);
    expect(report.notes.join(' ')).toMatch(/500 keys/);
    expect(arrayCounts(report)).toEqual({ 'list[*]': 1 });
  });
});

describe('inspectDocument', () => {
  it('accepts what the JSONTestSuite accepts and rejects what it rejects, while learning the skeleton', async () => {
    const files = (await readdir(JSON_TEST_SUITE)).filter((f) => /^[yn]_/.test(f));
    expect(files.length).toBeGreaterThan(250);
    for (const file of files) {
      const bytes = await readFile(join(JSON_TEST_SUITE, file));
      async function* chunks() {
        yield bytes;
      }
      const outcome = await inspectDocument(chunks(), { source: file, format: 'json', ...LIMITS }).then(
        () => 'accepted',
        (error: unknown) => (error instanceof MalformedInputError ? 'rejected' : String(error)),
      );
      expect(outcome, file).toBe(file.startsWith('y_') ? 'accepted' : 'rejected');
    }
  });
});
