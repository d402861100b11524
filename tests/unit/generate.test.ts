import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generateTicInNetwork,
  type TicExpectedFacts,
  type TicGenerateOptions,
} from '../../shared/generate/tic-in-network.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/** Generates into memory through a plain Writable; `slow` makes the sink apply backpressure. */
async function generate(
  options: TicGenerateOptions,
  slow = false,
): Promise<{ facts: TicExpectedFacts; buf: Buffer }> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: slow ? 1024 : 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      if (slow) setImmediate(callback);
      else callback();
    },
  });
  const facts = await generateTicInNetwork(options, sink);
  return { facts, buf: Buffer.concat(chunks) };
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

interface TicFile {
  [key: string]: unknown;
  in_network: {
    billing_code?: unknown;
    negotiated_rates: { negotiated_prices: unknown[]; provider_groups?: unknown[] }[];
  }[];
  provider_references: { provider_groups: unknown[] }[];
}

/** The facts, computed from JSON.parse's view of the file rather than from the generator. */
function factsOf(text: string) {
  const parsed = JSON.parse(text) as TicFile;
  let rates = 0;
  let prices = 0;
  let groups = 0;
  for (const item of parsed.in_network) {
    rates += item.negotiated_rates.length;
    for (const rate of item.negotiated_rates) {
      prices += rate.negotiated_prices.length;
      groups += rate.provider_groups?.length ?? 0;
    }
  }
  for (const ref of parsed.provider_references) groups += ref.provider_groups.length;
  const headers = Object.fromEntries(Object.entries(parsed).filter(([, v]) => !Array.isArray(v)));
  return {
    parsed,
    records: { in_network: parsed.in_network.length, provider_references: parsed.provider_references.length },
    negotiated_rates: rates,
    negotiated_prices: prices,
    provider_groups: groups,
    headers,
    keyOrder: Object.keys(parsed),
  };
}

function expectFactsMatch(facts: TicExpectedFacts, buf: Buffer): ReturnType<typeof factsOf> {
  const actual = factsOf(buf.toString('utf8'));
  expect(facts.bytes).toBe(buf.length);
  expect(facts.records).toEqual(actual.records);
  expect(facts.negotiated_rates).toBe(actual.negotiated_rates);
  expect(facts.negotiated_prices).toBe(actual.negotiated_prices);
  expect(facts.provider_groups).toBe(actual.provider_groups);
  expect(facts.headers).toEqual(actual.headers);
  expect(facts.keyOrder).toEqual(actual.keyOrder);
  return actual;
}

/** Every value in a parsed JSON tree, depth-first, with its nesting depth. */
function* walk(value: unknown, depth = 0): Generator<[unknown, number]> {
  yield [value, depth];
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) yield* walk(child, depth + 1);
  }
}

describe('generateTicInNetwork', () => {
  it('gives byte-identical output for the same seed and different output for another', async () => {
    const a = await generate({ seed: 42, targetBytes: 1_000_000 });
    const b = await generate({ seed: 42, targetBytes: 1_000_000 }, true);
    const c = await generate({ seed: 43, targetBytes: 1_000_000 });
    expect(sha256(a.buf)).toBe(sha256(b.buf));
    expect(a.facts).toEqual(b.facts);
    expect(sha256(c.buf)).not.toBe(sha256(a.buf));
  });

  it('is deterministic in nasty and pretty modes too', async () => {
    const options = { seed: 5, targetBytes: 500_000, nasty: true, pretty: true };
    expect(sha256((await generate(options)).buf)).toBe(sha256((await generate(options, true)).buf));
  });

  it.each([
    { name: 'compact', options: {} },
    { name: 'pretty', options: { pretty: true } },
    { name: 'nasty', options: { nasty: true } },
    { name: 'nasty + pretty', options: { nasty: true, pretty: true } },
  ])('reports exactly what JSON.parse finds ($name)', async ({ options }) => {
    for (const seed of [1, 2, 3]) {
      const { facts, buf } = await generate({ seed, targetBytes: 2_000_000, ...options });
      expectFactsMatch(facts, buf);
      expect(facts.seed).toBe(seed);
      expect(Math.abs(facts.bytes - 2_000_000)).toBeLessThan(100_000);
    }
  });

  it('writes realistic content: escapes, 4-byte UTF-8 and exponent numbers even when not nasty', async () => {
    const { buf } = await generate({ seed: 9, targetBytes: 2_000_000 });
    const text = buf.toString('utf8');
    expect(text).toMatch(/[\u{10000}-\u{10FFFF}]/u);
    for (const spelling of ['\\"', '\\\\', '\\n', '\\t', '\\/', '\\u00e9', 'C:\\\\"'])
      expect(text).toContain(spelling);
    expect(text).toMatch(/"negotiated_rate":\d+(\.\d+)?[eE][+-]?\d+[,}]/);
    expect(text).toMatch(/"negotiated_rate":\d+[,}]/);
    expect(text).not.toMatch(/\r|\t/); // compact output: no whitespace between tokens
  });

  describe.each(['before', 'after'] as const)('with provider_references %s in_network', (refsPosition) => {
    const arrays =
      refsPosition === 'before'
        ? ['provider_references', 'in_network']
        : ['in_network', 'provider_references'];

    it.each(['before', 'after', 'split'] as const)(
      'puts the headers %s the arrays',
      async (headerPosition) => {
        const options = {
          seed: 11,
          targetBytes: 300_000,
          headerPosition,
          providerReferencesPosition: refsPosition,
        };
        const { facts, buf } = await generate(options);
        const { keyOrder, parsed } = expectFactsMatch(facts, buf);
        const headerKeys = Object.keys(facts.headers);
        expect(headerKeys).toContain('reporting_entity_name');
        expect(headerKeys.slice(-2)).toEqual(['last_updated_on', 'version']);
        if (headerPosition === 'before') expect(keyOrder).toEqual([...headerKeys, ...arrays]);
        if (headerPosition === 'after') expect(keyOrder).toEqual([...arrays, ...headerKeys]);
        if (headerPosition === 'split') {
          const leading = headerKeys.slice(0, -2);
          expect(keyOrder).toEqual([...leading, arrays[0], 'last_updated_on', arrays[1], 'version']);
        }
        // Records don't depend on where their array sits.
        const reference = JSON.parse(
          (await generate({ seed: 11, targetBytes: 300_000 })).buf.toString('utf8'),
        );
        expect(parsed.in_network).toEqual(reference.in_network);
        expect(parsed.provider_references).toEqual(reference.provider_references);
      },
    );
  });

  it('indents pretty output', async () => {
    const { buf } = await generate({ seed: 3, targetBytes: 200_000, pretty: true, headerPosition: 'after' });
    const text = buf.toString('utf8');
    expect(text.startsWith('{\n  "provider_references": [\n    {\n      "provider_group_id": 1,\n')).toBe(
      true,
    );
    expect(text).toMatch(/\n {10}"npi": \[\d{10}(, \d{10})*\],\n/);
    expect(text.endsWith('\n}\n')).toBe(true);
  });

  it('plants every parser trap in nasty mode and still parses', async () => {
    const { facts, buf } = await generate({ seed: 4, targetBytes: 400_000, nasty: true });
    const text = buf.toString('utf8');
    const { parsed } = expectFactsMatch(facts, buf);

    expect(text).toContain('"billing\\u005fcode"'); // \u escapes in keys...
    expect(parsed.in_network.every((item) => typeof item.billing_code === 'string')).toBe(true); // ...decode
    expect(text).toMatch(/[^\\](\\\\)+"/); // a string ending in an escaped backslash
    expect(facts.headers.reporting_entity_name).toMatch(/\\$/);
    expect(text).toMatch(/[\u{10000}-\u{10FFFF}]/u); // 4-byte UTF-8
    expect(text).toMatch(/[{[,:]\r\n/);
    expect(text).toMatch(/[{[,:]\t/);

    const values = [...walk(parsed)];
    const strings = values.map(([v]) => v).filter((v): v is string => typeof v === 'string');
    expect(strings.some((s) => s.includes('"in_network": ['))).toBe(true);
    expect(strings.some((s) => s.includes('"provider_references":['))).toBe(true);
    expect(Math.max(...strings.map((s) => Buffer.byteLength(s)))).toBeGreaterThanOrEqual(100_000);
    expect(Math.max(...values.map(([, depth]) => depth))).toBeGreaterThanOrEqual(40); // ~20 nested objects
    expect(values.some(([v]) => Array.isArray(v) && v.length === 0)).toBe(true);
    expect(values.some(([v]) => v !== null && typeof v === 'object' && Object.keys(v).length === 0)).toBe(
      true,
    );
    // Top-level keys stay literal; look-alike keys only appear nested.
    expect(Object.keys(parsed)).toEqual(facts.keyOrder);
  });

  it('writes a multi-MB record from 20 MB on', async () => {
    const { facts, buf } = await generate({ seed: 1, targetBytes: 20_000_000 });
    const { parsed } = expectFactsMatch(facts, buf);
    expect(facts.largestRecordBytes).toBeGreaterThan(2_000_000);
    const match = /^in_network\[(\d+)\]$/.exec(facts.largestRecord);
    expect(match).not.toBeNull();
    const largest = parsed.in_network[Number(match![1])]!;
    expect(Buffer.byteLength(JSON.stringify(largest))).toBeGreaterThan(1_500_000);
    expect(Math.abs(facts.bytes - 20_000_000)).toBeLessThan(1_000_000);
  });

  it('rejects bad options', async () => {
    await expect(generate({ seed: -1, targetBytes: 1000 })).rejects.toThrow(/seed/);
    await expect(generate({ seed: 1.5, targetBytes: 1000 })).rejects.toThrow(/seed/);
    await expect(generate({ seed: 1, targetBytes: 0 })).rejects.toThrow(/targetBytes/);
  });
});

describe('scripts/generate.ts', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-generate-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cli = (...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'scripts/generate.ts', ...args], { cwd: repoRoot });

  it('gzips .gz output and writes matching expected facts', async () => {
    const out = join(dir, 'tic.json.gz');
    await cli('--size', '300KB', '--out', out, '--seed', '7', '--nasty', '--header-position', 'split');
    const json = gunzipSync(await readFile(out));
    const expected = JSON.parse(await readFile(`${out}.expected.json`, 'utf8')) as TicExpectedFacts;
    expectFactsMatch(expected, json);
    expect(expected.options).toEqual({
      targetBytes: 300_000,
      headerPosition: 'split',
      providerReferencesPosition: 'before',
      nasty: true,
      pretty: false,
    });
    // The CLI and the library agree byte for byte.
    const direct = await generate({ seed: 7, targetBytes: 300_000, nasty: true, headerPosition: 'split' });
    expect(sha256(json)).toBe(sha256(direct.buf));
  });

  it('prints help and rejects bad arguments with exit code 2', async () => {
    const help = await cli('--help');
    expect(help.stdout).toContain('--size');
    expect(help.stdout).toContain('Example');
    await expect(cli('--size', '12XB', '--out', join(dir, 'x.json'))).rejects.toMatchObject({ code: 2 });
    await expect(cli('--out', join(dir, 'x.json'))).rejects.toMatchObject({ code: 2 });
    await expect(cli('--size', '1MB', '--out', join(dir, 'x.json'), '--bogus')).rejects.toMatchObject({
      code: 2,
    });
  });
});
