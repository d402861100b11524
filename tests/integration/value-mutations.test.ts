import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLakeQuery } from '../../shared/adapters/duckdb/lake-query.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { contractForDataset } from '../../shared/contracts/datasets/silver-contracts.ts';
import { parseExact, stringifyExact } from '../../shared/contracts/exact-json.ts';
import type { SilverManifest } from '../../shared/contracts/silver-manifest.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { commitVersion } from '../../shared/stages/commit/commit-version.ts';
import { buildSilver } from '../../shared/stages/silver/build-silver.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fixedClock, generateFile, tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

// Issue 14: "a generated mutation test finds no value that reaches silver changed without a counted
// warning, violation or quarantine row". Seeded records and headers full of edge values (integers at
// 2^53 and 2^63, doubles at their range, -0, denormals, long decimals, surrogates, other JSON types,
// duplicate and special keys) go through the real pipeline; every value is then compared with what
// silver holds. Trimming and blank → NULL are the declared normalization of text, and a decimal
// stored as the nearest double is a DOUBLE's declared type: neither counts as a change.

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

/** Number tokens at the edges, as written in the JSON text. */
const NUMBERS = [
  '0',
  '-0',
  '7',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '-9007199254740993',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775808',
  '-9223372036854775809',
  '18446744073709551617',
  '123456789012345678901234567890',
  '1e308',
  '1.7976931348623157e308',
  '1e309',
  '-1e400',
  '5e-324',
  '1e-400',
  '0.1000000000000000055511151231257827',
  '3.14159265358979323846264338327950288',
  '1.0',
  '1e2',
  '2.5',
  '-17.25',
];
/** Strings, as JSON text: numeric spellings, surrogates, blanks. */
const STRINGS = [
  '"9007199254740993"',
  '"12345678901234567890"',
  '"1e400"',
  '"-1e400"',
  '"-0"',
  '"1.5"',
  '"\\ud800"',
  '"x\\udc00y"',
  '"\\ud83d\\ude00"',
  '" padded "',
  '""',
  '"plain"',
  '"__proto__"',
];
/** Other JSON types. */
const OTHERS = ['true', 'false', 'null', '{"x":1}', '[1,"a"]', '[9007199254740993]'];

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const token = (random: Random): string => {
  const r = random();
  return r < 0.5 ? pick(random, NUMBERS) : r < 0.85 ? pick(random, STRINGS) : pick(random, OTHERS);
};

const INTEGER_TOKEN = /^-?\d+$/;
/** What a UTF-8 writer (Parquet) makes of a string: lone surrogates become U+FFFD. */
const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');
const trimmedText = (s: string): string | null => (s.trim() === '' ? null : s.trim());

/**
 * Whether a stored value is the source value, for a column of `type`: integers digit for digit, other
 * numbers as the nearest double, text as written (trimmed), never a silent replacement character.
 */
function faithful(type: 'string' | 'integer' | 'number', source: string, stored: unknown): boolean {
  const value = parseExact(source);
  if (value === null) return stored === null;
  if (typeof value === 'string') {
    const text = trimmedText(value);
    if (text === null) return stored === null;
    if (type === 'string') return stored === text; // a U+FFFD in place of a surrogate is a change
    if (stored === null) return false;
    if (type === 'integer' && INTEGER_TOKEN.test(text)) return BigInt(String(stored)) === BigInt(text);
    return Number(stored) === Number(text);
  }
  if (typeof value === 'number' || typeof value === 'bigint') {
    if (stored === null) return false;
    if (INTEGER_TOKEN.test(source) && type !== 'number') {
      return /^-?\d+$/.test(String(stored)) && BigInt(String(stored)) === BigInt(source);
    }
    if (type === 'string') return Number(stored) === Number(source);
    return Number.isFinite(Number(stored)) && Number(stored) === Number(source);
  }
  if (typeof value === 'boolean') return stored === String(value) || stored === value;
  return false; // an object or array has no column to land in
}

/** The violations and drift a run counted, by path. */
function countedAt(manifest: SilverManifest): Map<string, number> {
  const counted = new Map<string, number>();
  const add = (path: string, n: number) => counted.set(path, (counted.get(path) ?? 0) + n);
  for (const v of Object.values(manifest.violations)) add(v.path, v.count);
  for (const [id, d] of Object.entries(manifest.drift)) add(id.slice(id.indexOf(':') + 1), d.count);
  return counted;
}

async function query(lake: string, sql: string): Promise<Record<string, unknown>[]> {
  const q = await openLakeQuery(lake);
  try {
    const result = await q.query(sql);
    return result.rows.map((row) => Object.fromEntries(result.columns.map((c, i) => [c, row[i]])));
  } finally {
    await q.close();
  }
}

/** Runs the CLI on a file with a config; the silver manifest of the run. */
function runCli(file: string, configFile: string, lake: string): { silverManifest: string } {
  const result = spawnSync(
    process.execPath,
    // Most records are mutated on purpose: no quarantine threshold.
    [BIN, 'run', file, '--config', configFile, '--lake', lake, '--json', '--quarantine-threshold', '1'],
    {
      encoding: 'utf8',
    },
  );
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  return JSON.parse(result.stdout).outputs;
}

const COLUMNS = [
  { name: 's', type: 'string' },
  { name: 'n', type: 'integer' },
  { name: 'x', type: 'number' },
] as const;

describe('mutation test: no value reaches silver changed without being counted', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-mutations-');
  });
  afterAll(async () => tmp.cleanup());

  it.each([1, 2])(
    'NDJSON records of random types and edge values, through the CLI (seed %i)',
    async (seed) => {
      const random = seededRandom(seed);
      const records: { id: string; fields: Record<string, string>; extras: [string, string][] }[] = [];
      const lines: string[] = [];
      for (let i = 0; i < 300; i++) {
        // Keys one apart beyond 2^53: any rounding merges two of them.
        const id = String(9007199254740990n + BigInt(i));
        const fields = Object.fromEntries(COLUMNS.map((c) => [c.name, token(random)]));
        const extras: [string, string][] = [];
        for (const key of ['extra', '__proto__', 'constructor'])
          if (random() < 0.3) extras.push([key, token(random)]);
        const members = [`"id":${random() < 0.5 ? id : `"${id}"`}`];
        for (const [name, text] of Object.entries(fields)) {
          // A duplicate key: the last one is the value (as JSON.parse reads it).
          if (random() < 0.1) members.push(`"${name}":${token(random)}`);
          members.push(`"${name}":${text}`);
        }
        for (const [key, text] of extras) members.push(`"${key}":${text}`);
        lines.push(`{${members.join(',')}}`);
        records.push({ id, fields, extras });
      }
      const file = join(tmp.dir, `mutations-${seed}.ndjson`);
      await writeFile(file, `${lines.join('\n')}\n`);
      const config = {
        name: `mutations-${seed}`,
        format: 'ndjson',
        silver: {
          table: 'mutated',
          columns: [{ name: 'id', type: 'string' }, ...COLUMNS],
          primaryKey: ['id'],
          load: 'append',
          onDrift: 'rescue',
        },
      };
      const configFile = join(tmp.dir, `mutations-${seed}.config.json`);
      await writeFile(configFile, JSON.stringify(config));
      const lake = join(tmp.dir, `mutations-${seed}-lake`);
      const outputs = runCli(file, configFile, lake);
      const manifest = parseExact(await readFile(outputs.silverManifest, 'utf8')) as SilverManifest;

      const rows = new Map(
        (await query(lake, 'SELECT * FROM mutated')).map((row) => [row._record_index as number, row]),
      );
      const quarantined = new Set(
        (await query(lake, 'SELECT DISTINCT _record_index FROM _quarantine')).map((r) => r._record_index),
      );
      // Every record is in silver or in quarantine, and no two keys were merged.
      expect(rows.size + quarantined.size).toBe(records.length);
      expect(manifest.tables.mutated?.duplicates).toBe(0);

      const changed = new Map<string, number>();
      const exactViolations: string[] = [];
      records.forEach((record, index) => {
        const row = rows.get(index);
        if (!row) {
          expect(quarantined.has(index), `record ${index}`).toBe(true);
          return;
        }
        expect(row.id, `record ${index}`).toBe(record.id);
        for (const column of COLUMNS) {
          const source = record.fields[column.name]!;
          if (faithful(column.type, source, row[column.name])) continue;
          changed.set(column.name, (changed.get(column.name) ?? 0) + 1);
          // Integers are never rounded, whatever is counted: their digits reach text and BIGINT exactly.
          if (INTEGER_TOKEN.test(source) && column.type !== 'number') {
            exactViolations.push(`record ${index} ${column.name}: ${source} → ${String(row[column.name])}`);
          }
        }
        const rescued =
          row._rescued === null ? {} : (parseExact(row._rescued as string) as Record<string, unknown>);
        for (const [key, text] of record.extras) {
          expect(Object.hasOwn(rescued, key), `record ${index} rescued ${key}`).toBe(true);
          const value = rescued[key];
          const same = INTEGER_TOKEN.test(text)
            ? String(value) === String(parseExact(text))
            : stringifyExact(value) === stringifyExact(parseExact(text)) && !/\\ud[89a-f]/i.test(text);
          if (!same) changed.set(key, (changed.get(key) ?? 0) + 1);
        }
      });
      expect(exactViolations).toEqual([]);
      const counted = countedAt(manifest);
      for (const [path, count] of changed) {
        expect(
          counted.get(path) ?? 0,
          `${count} changed value(s) at ${path}, counted: ${[...counted]}`,
        ).toBeGreaterThanOrEqual(count);
      }
      // The run did see the edges it was given.
      expect(quarantined.size).toBeGreaterThan(0);
      expect(manifest.violations['value.lone_surrogate']?.count ?? 0).toBeGreaterThan(0);
    },
    60_000,
  );

  it('CSV cells of edge values, through the CLI', async () => {
    const random = seededRandom(3);
    const cells = [...NUMBERS, ...STRINGS.map((s) => JSON.parse(s) as string).filter((s) => utf8(s) === s)];
    const rows: string[][] = [];
    for (let i = 0; i < 200; i++) rows.push([String(i), ...COLUMNS.map(() => pick(random, cells))]);
    const quote = (cell: string) => `"${cell.replaceAll('"', '""')}"`;
    const header = ['id', '__proto__', 'constructor', 'hasOwnProperty'];
    const file = join(tmp.dir, 'mutations.csv');
    await writeFile(file, [header, ...rows].map((r) => r.map(quote).join(',')).join('\n'));
    const config = {
      name: 'mutations-csv',
      format: 'csv',
      silver: {
        table: 'mutated',
        columns: [
          { name: 'id', type: 'string' },
          ...COLUMNS.map((c, i) => ({ name: c.name, type: c.type, source: header[i + 1] })),
        ],
        primaryKey: ['id'],
        load: 'append',
      },
    };
    const configFile = join(tmp.dir, 'mutations-csv.config.json');
    await writeFile(configFile, JSON.stringify(config));
    const lake = join(tmp.dir, 'mutations-csv-lake');
    runCli(file, configFile, lake);
    const stored = new Map(
      (await query(lake, 'SELECT * FROM mutated')).map((row) => [row.id as string, row]),
    );
    const quarantined = new Set(
      (await query(lake, 'SELECT DISTINCT _record_index FROM _quarantine')).map((r) => r._record_index),
    );
    expect(stored.size + quarantined.size).toBe(rows.length);
    for (const [index, row] of rows.entries()) {
      const silver = stored.get(row[0]!);
      if (!silver) continue;
      COLUMNS.forEach((column, i) => {
        // A CSV cell is text: as a JSON string it is what a string column must hold.
        const cell = row[i + 1]!;
        expect(
          faithful(column.type, JSON.stringify(cell), silver[column.name]),
          `row ${index} ${column.name}: ${cell}`,
        ).toBe(true);
      });
    }
    expect(quarantined.size).toBeGreaterThan(0);
  }, 60_000);

  it('TiC negotiated rates at the edges reach negotiated_prices as the nearest double, or are counted', async () => {
    const random = seededRandom(5);
    const dir = join(tmp.dir, 'tic-records');
    const { path } = await generateFile(
      tmp.dir,
      'tic-records.json',
      { seed: 5, targetBytes: 300_000 },
      false,
    );
    const doc = JSON.parse(await readFile(path, 'utf8')) as {
      in_network: { negotiated_rates: { negotiated_prices: Record<string, unknown>[] }[] }[];
    };
    // Some prices' rates get a random token in place of their number.
    const tokens: string[] = [];
    const expected = new Map<string, string>();
    const mutated = new Set<string>();
    for (const [i, item] of doc.in_network.entries()) {
      for (const [r, rate] of item.negotiated_rates.entries()) {
        for (const [p, price] of rate.negotiated_prices.entries()) {
          // Few enough that most items keep all their prices (one refused price quarantines its item).
          const mutate = random() < 0.05;
          const text = mutate ? token(random) : JSON.stringify(price.negotiated_rate);
          if (mutate) mutated.add(`${i}/${r}/${p}`);
          expected.set(`${i}/${r}/${p}`, text);
          price.negotiated_rate = `@@${tokens.push(text) - 1}@@`;
        }
      }
    }
    const text = JSON.stringify(doc).replace(/"@@(\d+)@@"/g, (_, k: string) => tokens[Number(k)]!);
    const source = new FileObjectStore(dir);
    await source.write('in.json', Buffer.from(text));
    const lake = new FileObjectStore(join(dir, 'lake'));
    const dataset = builtInDataset('tic-in-network')!;
    const bronze = await ingestToBronze(
      { dataset, sourceKey: 'in.json' },
      { source, lake, clock: fixedClock },
    );
    const silver = await buildSilver(
      { bronzeManifestKey: bronze.manifestKey },
      {
        lake,
        clock: fixedClock,
        contract: contractForDataset(dataset)!,
        createTableWriter: createPartialParquetTableWriter,
        workDir: join(dir, 'work'),
      },
    );
    // Current, as after a reconciliation: readers see it.
    await commitVersion(
      { bronzeManifestKey: bronze.manifestKey, quality: 100 },
      { lake, clock: fixedClock, contract: contractForDataset(dataset)! },
    );
    const quarantined = new Set(
      (
        await query(
          join(dir, 'lake'),
          "SELECT DISTINCT _record_index FROM _quarantine WHERE record_path = 'in_network'",
        )
      ).map((r) => r._record_index),
    );
    const prices = await query(
      join(dir, 'lake'),
      'SELECT item_index, rate_index, price_index, negotiated_rate FROM negotiated_prices',
    );
    const counted = countedAt(silver.manifest);
    const countedRates = [...counted]
      .filter(([p]) => p.endsWith('.negotiated_rate'))
      .reduce((n, [, c]) => n + c, 0);
    let changed = 0;
    for (const row of prices) {
      const source = expected.get(`${row.item_index}/${row.rate_index}/${row.price_index}`)!;
      if (!faithful('number', source, row.negotiated_rate)) changed++;
      expect(
        Number.isFinite(row.negotiated_rate as number),
        `${source} → ${String(row.negotiated_rate)}`,
      ).toBe(true);
    }
    expect(prices.length).toBeGreaterThan(50);
    const reached = prices.filter((row) =>
      mutated.has(`${row.item_index}/${row.rate_index}/${row.price_index}`),
    );
    expect(reached.length, 'mutated rates that reach silver').toBeGreaterThanOrEqual(3);
    // A price row exists only for a kept record; every changed rate is counted.
    for (const row of prices) expect(quarantined.has(row.item_index)).toBe(false);
    expect(countedRates).toBeGreaterThanOrEqual(changed);
    expect(quarantined.size).toBeGreaterThan(0);
  }, 120_000);

  it('TiC header values at the edges reach the files table exactly, or are counted', async () => {
    const random = seededRandom(4);
    const sample = await readFile(
      join(TIC_EXAMPLES, 'in-network-rates-fee-for-service-single-plan-sample.json'),
      'utf8',
    );
    const headers = [
      'plan_id',
      'plan_name',
      'issuer_name',
      'plan_sponsor_name',
      'reporting_entity_name',
    ] as const;
    const dataset = builtInDataset('tic-in-network')!;
    const contract = contractForDataset(dataset)!;
    const values = [...NUMBERS, ...STRINGS];
    for (let run = 0; run < 6; run++) {
      const dir = join(tmp.dir, `tic-${run}`);
      const lake = new FileObjectStore(join(dir, 'lake'));
      const chosen = Object.fromEntries(headers.map((h) => [h, pick(random, values)]));
      let text = sample;
      for (const h of headers) text = text.replace(new RegExp(`"${h}": "[^"]*"`), `"${h}": ${chosen[h]}`);
      const source = new FileObjectStore(dir);
      await source.write('in.json', Buffer.from(text));
      const bronze = await ingestToBronze(
        { dataset, sourceKey: 'in.json' },
        { source, lake, clock: fixedClock },
      );
      // The manifest keeps each header's value as written.
      const manifestText = await readFile(join(dir, 'lake', bronze.manifestKey), 'utf8');
      for (const h of headers) {
        if (INTEGER_TOKEN.test(chosen[h]!)) expect(manifestText).toContain(`"${h}": ${chosen[h]}`);
      }
      const silver = await buildSilver(
        { bronzeManifestKey: bronze.manifestKey },
        {
          lake,
          clock: fixedClock,
          contract,
          createTableWriter: createPartialParquetTableWriter,
          workDir: join(dir, 'work'),
        },
      );
      await commitVersion(
        { bronzeManifestKey: bronze.manifestKey, quality: 100 },
        { lake, clock: fixedClock, contract },
      );
      const counted = countedAt(silver.manifest);
      const [files] = await query(join(dir, 'lake'), 'SELECT * FROM files');
      for (const h of headers) {
        if (faithful('string', chosen[h]!, files![h])) continue;
        expect(INTEGER_TOKEN.test(chosen[h]!), `${h}: ${chosen[h]} → ${String(files![h])}`).toBe(false);
        expect(counted.get(h) ?? 0, `${h}: ${chosen[h]} → ${String(files![h])}, not counted`).toBeGreaterThan(
          0,
        );
      }
    }
  }, 120_000);
});
