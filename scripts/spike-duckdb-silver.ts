/**
 * Issue 16's open question, measured (a spike: nothing here changes sluice): what would a "hybrid" silver
 * cost, where DuckDB's JSON reader projects the bronze parts into every table of tic-in-network and
 * JavaScript only parses each record and runs the contract's zod check, to name the quarantined ones?
 *
 *   node --import tsx scripts/spike-duckdb-silver.ts [--file F] [--runs 3] [--variants check,sql,hybrid]
 *     [--shape temp|mixed|view] [--no-lineage]
 *   node --import tsx scripts/spike-duckdb-silver.ts --exactness
 *
 * `--file`: the bench's input whose sluice-e2e lake to read (default: the 300 MB bench file). `--shape`: what
 * the projection keeps between its COPYs (see `projectionSql`). `--no-lineage`: the three lineage columns as
 * NULLs, to see what they cost. `--exactness`: tiny records with extreme values through sluice's contract and
 * through the projection, side by side (docs/BENCHMARKS.md, session 13).
 *
 * Reads the lake the bench's `sluice-e2e` phase wrote (.bench/lake-e2e, the source's current version).
 * Variants, each in its own process, alternated run by run:
 * - `check`: every bronze line read, parsed as silver parses it (`parseExact`) and checked by the contract's
 *   `RecordChecker` (zod), nothing built or written;
 * - `sql`: one DuckDB instance, `read_ndjson` once per record stream into a temp table, one COPY per table
 *   to zstd Parquet (in_network_items, negotiated_prices, provider_groups, contained_codes);
 * - `hybrid`: `check`, then `sql` leaving out the records the check quarantined: its row counts must equal
 *   the silver manifest's.
 * Each prints CPU (process.cpuUsage: every thread), wall and peak RSS; the parent prints core-seconds per GB
 * of JSON (the source's uncompressed bytes, as the bench does) and each table's rows against the manifest.
 *
 * Simplified against sluice's silver (a ceiling, not a replacement): `_rescued` always NULL; no quarantine
 * rows, warnings or drift recorded (the check finds them, nothing keeps them), no lone-surrogate walk, no
 * schema-version mismatch check, no dedup by key; negotiated_rate read as DOUBLE by DuckDB (not the exact
 * parse), dates in the peer's four spellings, numbers used as ids as DuckDB's text of them, npi by DuckDB's
 * BIGINT cast.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { literal } from '../shared/adapters/duckdb/final-table.ts';
import { PRICE, readE2eRun, text, textList } from './bench-duckdb-bronze.ts';

const OUTPUT_DIR = '.bench/spike-duckdb-silver';
const VARIANTS = ['check', 'sql', 'hybrid'] as const;
type Variant = (typeof VARIANTS)[number];
type Shape = 'temp' | 'view' | 'mixed';

// ---------------------------------------------------------------------------------------------
// The SQL: the peer's helpers and price struct (scripts/bench-duckdb-bronze.ts), extended to every table

/** `integerArray()`, loosely: a BIGINT list (DuckDB's cast), empty → null. */
const intList = (sql: string) => `nullif(list_filter(${sql}, n -> n IS NOT NULL), [])`;
/** `parseDate()` as the peer reads it: the common spellings, ISO timestamps aside. */
const date = (sql: string) =>
  `try_strptime(trim(${sql}), ['%Y-%m-%d', '%m/%d/%Y', '%Y/%m/%d', '%Y%m%d'])::DATE`;

const GROUP = 'STRUCT(npi BIGINT[], tin STRUCT(type VARCHAR, value VARCHAR, business_name VARCHAR))';
const CODE =
  'STRUCT(billing_code_type VARCHAR, billing_code_type_version VARCHAR, billing_code VARCHAR, description VARCHAR)';
const RATE = `STRUCT(provider_references VARCHAR[], provider_groups ${GROUP}[], negotiated_prices ${PRICE}[])`;
const ITEM =
  'STRUCT(negotiation_arrangement VARCHAR, name VARCHAR, billing_code_type VARCHAR, billing_code_type_version VARCHAR, ' +
  `billing_code VARCHAR, description VARCHAR, severity_of_illness VARCHAR, negotiated_rates ${RATE}[], ` +
  `bundled_codes ${CODE}[], covered_services ${CODE}[])`;
const REFERENCE = `STRUCT(provider_group_id VARCHAR, network_name VARCHAR[], location VARCHAR, provider_groups ${GROUP}[])`;
const line = (record: string) => `{'index': 'BIGINT', 'record': '${record}'}`;

/** The statements of the projection, in order: temp tables, then one COPY per table. */
export function projectionSql(input: {
  lakeDir: string;
  fileId: string;
  items: readonly string[];
  references: readonly string[];
  /** `record_path\tindex` of quarantined records, to leave out (a file DuckDB reads), or none. */
  quarantinedFile?: string;
  outDir: string;
  /**
   * `temp`: the items and their unnested rates materialized once; `mixed`: the items only (rates a view);
   * `view`: nothing kept, each COPY reads the parts again.
   */
  shape: Shape;
  noLineage?: boolean;
}): string[] {
  const { fileId, outDir, shape } = input;
  const kept = shape === 'view' ? 'VIEW' : 'TABLE';
  const keptRates = shape === 'temp' ? 'TABLE' : 'VIEW';
  const list = (files: readonly string[]) => `[${files.map(literal).join(', ')}]`;
  const lake = `${resolve(input.lakeDir)}/`;
  const keep = (path: string) =>
    input.quarantinedFile
      ? `WHERE index NOT IN (SELECT idx FROM read_csv(${literal(input.quarantinedFile)}, header = false, ` +
        `delim = '\t', columns = {'path': 'VARCHAR', 'idx': 'BIGINT'}) WHERE path = ${literal(path)})`
      : '';
  // `--no-lineage` (to measure what the three lineage columns cost): NULLs instead.
  const lineage = input.noLineage
    ? 'NULL::VARCHAR AS _run_id, NULL::VARCHAR AS _bronze_part, NULL::BIGINT AS _record_index'
    : `${literal(fileId)} AS _run_id, part AS _bronze_part, item_index AS _record_index`;
  const copy = (table: string, select: string) =>
    `COPY (${select}) TO ${literal(join(outDir, `${table}.parquet`))} (FORMAT parquet, COMPRESSION zstd)`;
  const inlineId = `'inline-' || left(sha256(concat_ws(chr(31), ${literal(fileId)}, item_index, rate_index, g)), 16)`;
  const fid = `${literal(fileId)} AS file_id`;
  // read_ndjson of no files is an error: a run without provider_references parts reads none.
  const refs =
    input.references.length === 0
      ? `SELECT NULL::BIGINT AS item_index, NULL::VARCHAR AS part, NULL::${REFERENCE} AS r WHERE false`
      : `SELECT index AS item_index, replace(filename, ${literal(lake)}, '') AS part, record AS r
        FROM read_ndjson(${list(input.references)}, columns = ${line(REFERENCE)}, filename = true)
        ${keep('provider_references')}`;
  const statements = [
    `CREATE TEMP ${kept} items AS SELECT index AS item_index, replace(filename, ${literal(lake)}, '') AS part, record AS r
     FROM read_ndjson(${list(input.items)}, columns = ${line(ITEM)}, filename = true) ${keep('in_network')}`,
    `CREATE TEMP ${keptRates} rates AS SELECT item_index, part, ${text('r.billing_code')} AS billing_code,
       unnest(r.negotiated_rates) AS rate, unnest(range(len(r.negotiated_rates))) AS rate_index FROM items`,
    copy(
      'in_network_items',
      `SELECT ${fid}, item_index, ${literal(`${fileId}:`)} || item_index AS item_id,
        ${text('r.negotiation_arrangement')} AS negotiation_arrangement, ${text('r.name')} AS name,
        ${text('r.billing_code_type')} AS billing_code_type,
        ${text('r.billing_code_type_version')} AS billing_code_type_version,
        ${text('r.billing_code')} AS billing_code, ${text('r.description')} AS description,
        ${text('r.severity_of_illness')} AS severity_of_illness,
        coalesce(len(r.negotiated_rates), 0)::BIGINT AS negotiated_rate_count, NULL::VARCHAR AS _rescued, ${lineage}
      FROM items`,
    ),
    copy(
      'negotiated_prices',
      `WITH prices AS (
        SELECT item_index, part, rate_index, billing_code,
          nullif(list_concat(
            list_filter(list_transform(rate.provider_references, x -> ${text('x')}), x -> x IS NOT NULL),
            list_transform(range(coalesce(len(rate.provider_groups), 0)), g -> ${inlineId})
          ), []) AS provider_group_ids,
          unnest(rate.negotiated_prices) AS price, unnest(range(len(rate.negotiated_prices))) AS price_index
        FROM rates)
      SELECT ${fid}, item_index, rate_index, price_index, billing_code,
        ${text('price.negotiated_type')} AS negotiated_type, price.negotiated_rate AS negotiated_rate,
        ${date('price.expiration_date')} AS expiration_date, ${textList('price.service_code')} AS service_code,
        ${text('price.billing_class')} AS billing_class, ${text('price.setting')} AS setting,
        ${textList('price.billing_code_modifier')} AS billing_code_modifier,
        ${text('price.additional_information')} AS additional_information, provider_group_ids,
        NULL::VARCHAR AS _rescued, ${lineage}
      FROM prices`,
    ),
    copy(
      'provider_groups',
      `WITH inline AS (
        SELECT item_index, part, rate_index, unnest(rate.provider_groups) AS grp,
          unnest(range(len(rate.provider_groups))) AS g
        FROM rates WHERE len(rate.provider_groups) > 0
      ), refs AS (${refs}), ref_groups AS (
        SELECT item_index, part, ${text('r.provider_group_id')} AS id, ${textList('r.network_name')} AS network_name,
          ${text('r.location')} AS location, unnest(r.provider_groups) AS grp, unnest(range(len(r.provider_groups))) AS g
        FROM refs WHERE len(r.provider_groups) > 0
      )
      SELECT ${fid}, ${inlineId} AS provider_group_id, g AS group_index, 'inline' AS source,
        ${intList('grp.npi')} AS npi, ${text('grp.tin.type')} AS tin_type, ${text('grp.tin.value')} AS tin_value,
        ${text('grp.tin.business_name')} AS business_name, NULL::VARCHAR[] AS network_name, NULL::VARCHAR AS location,
        NULL::VARCHAR AS _rescued, ${lineage}
      FROM inline
      UNION ALL
      SELECT ${fid}, id, g, 'provider_references', ${intList('grp.npi')}, ${text('grp.tin.type')},
        ${text('grp.tin.value')}, ${text('grp.tin.business_name')}, network_name, location, NULL, ${lineage}
      FROM ref_groups
      UNION ALL
      SELECT ${fid}, ${text('r.provider_group_id')}, 0, 'provider_references', NULL, NULL, NULL, NULL,
        ${textList('r.network_name')}, ${text('r.location')}, NULL, ${lineage}
      FROM refs WHERE coalesce(len(r.provider_groups), 0) = 0 AND ${text('r.location')} IS NOT NULL`,
    ),
    copy(
      'contained_codes',
      `WITH codes AS (
        SELECT item_index, part, 'bundled' AS kind, unnest(r.bundled_codes) AS c,
          unnest(range(len(r.bundled_codes))) AS code_index FROM items WHERE len(r.bundled_codes) > 0
        UNION ALL
        SELECT item_index, part, 'covered', unnest(r.covered_services), unnest(range(len(r.covered_services)))
        FROM items WHERE len(r.covered_services) > 0)
      SELECT ${fid}, item_index, code_index, kind, ${text('c.billing_code_type')} AS billing_code_type,
        ${text('c.billing_code_type_version')} AS billing_code_type_version, ${text('c.billing_code')} AS billing_code,
        ${text('c.description')} AS description, NULL::VARCHAR AS _rescued, ${lineage}
      FROM codes`,
    ),
  ];
  return statements;
}

// ---------------------------------------------------------------------------------------------
// One variant, in this process

interface Lake {
  lakeDir: string;
  fileId: string;
  uncompressedBytes: number;
  parts: { key: string; recordName: string; uncompressedBytes: number }[];
  expected: Record<string, number>;
}

async function openLake(file: string): Promise<Lake> {
  const { lakeDir, bronze, silver } = await readE2eRun(file, 'spike-duckdb-silver');
  const expected = Object.fromEntries(Object.entries(silver.tables).map(([t, s]) => [t, s.rowsWritten]));
  return {
    lakeDir,
    fileId: bronze.runId,
    uncompressedBytes: bronze.source.uncompressedBytes,
    parts: bronze.parts.map((p) => ({
      key: p.key,
      recordName: p.recordName,
      uncompressedBytes: p.uncompressedBytes,
    })),
    expected,
  };
}

/** Silver's parse and the contract's zod check of every bronze line; the quarantined records' paths and indexes. */
async function checkPass(lake: Lake): Promise<{ lines: number; quarantined: string[] }> {
  const { FileObjectStore } = await import('../shared/adapters/local/file-object-store.ts');
  const { readBronzePart, bronzeLines } = await import('../shared/stages/bronze/read-bronze.ts');
  const { parseExact } = await import('../shared/contracts/exact-json.ts');
  const { RecordChecker } = await import('../shared/contracts/silver/record-checker.ts');
  const { ticInNetworkSilver } = await import('../shared/contracts/datasets/tic-in-network.silver.ts');
  const store = new FileObjectStore(lake.lakeDir);
  // The checkers `ticContract` builds: the same schema, validator, entities and rules.
  const checkers = new Map(
    Object.entries(ticInNetworkSilver.streams).map(([name, s]) => [
      name,
      new RecordChecker(s.schema, s.entities, ticInNetworkSilver.rules, 'record.schema', s.validator),
    ]),
  );
  const options = { rescue: true, schemaMajor: 2 };
  const quarantined: string[] = [];
  let lines = 0;
  for (const part of lake.parts) {
    const checker = checkers.get(part.recordName)!;
    const content = await readBronzePart(store, part, { sha256: false });
    for (const text of bronzeLines(content.text)) {
      lines++;
      const recordStart = text.indexOf(',"record":');
      const { path, index, record } = parseExact(text, recordStart, { decimals: false }) as {
        path: string;
        index: number;
        record: unknown;
      };
      if (checker.check(record, options).quarantined) quarantined.push(`${path}\t${index}`);
    }
  }
  return { lines, quarantined };
}

async function sqlPass(lake: Lake, shape: Shape, quarantinedFile?: string): Promise<Record<string, number>> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const outDir = resolve(OUTPUT_DIR);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const of = (name: string) =>
    lake.parts.filter((p) => p.recordName === name).map((p) => join(lake.lakeDir, p.key));
  const statements = projectionSql({
    lakeDir: lake.lakeDir,
    fileId: lake.fileId,
    items: of('in_network'),
    references: of('provider_references'),
    quarantinedFile,
    outDir,
    shape,
    noLineage: process.argv.includes('--no-lineage'),
  });
  // Defaults (threads = cores, memory limit 80 % of RAM), as the peer runs.
  const instance = await DuckDBInstance.create(':memory:');
  const rows: Record<string, number> = {};
  try {
    const connection = await instance.connect();
    for (const sql of statements) {
      const cpu = process.cpuUsage();
      const result = await connection.run(sql);
      const used = process.cpuUsage(cpu);
      console.error(
        `    ${((used.user + used.system) / 1e6).toFixed(2)} CPU s: ${sql.slice(0, 60).replace(/\s+/g, ' ')}`,
      );
      const table = /TO '.*\/(\w+)\.parquet'/.exec(sql.split('\n').at(-1) ?? '')?.[1];
      if (sql.startsWith('COPY') && table) rows[table] = Number(result.rowsChanged);
    }
    connection.closeSync();
  } finally {
    instance.closeSync();
  }
  return rows;
}

interface VariantResult {
  variant: Variant;
  cpuS: number;
  wallS: number;
  peakRssMb: number;
  uncompressedBytes: number;
  rows: Record<string, number>;
  expected: Record<string, number>;
  quarantined: number;
  checkCpuS?: number;
}

async function runVariant(variant: Variant, file: string, shape: Shape): Promise<VariantResult> {
  const lake = await openLake(file);
  const started = performance.now();
  const cpu = process.cpuUsage();
  const seconds = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1e6;
  let rows: Record<string, number> = {};
  let quarantined = 0;
  let checkCpuS: number | undefined;
  if (variant === 'check' || variant === 'hybrid') {
    const check = await checkPass(lake);
    quarantined = check.quarantined.length;
    checkCpuS = seconds(process.cpuUsage(cpu));
    if (variant === 'hybrid') {
      const { writeFileSync } = await import('node:fs');
      mkdirSync(resolve('.bench'), { recursive: true });
      const listFile = resolve('.bench/spike-duckdb-silver-quarantined.tsv');
      // A record id no stream has keeps the file non-empty (DuckDB cannot sniff an empty CSV).
      writeFileSync(listFile, [...check.quarantined, 'none\t-1'].join('\n'));
      rows = await sqlPass(lake, shape, listFile);
    }
  } else {
    rows = await sqlPass(lake, shape);
  }
  return {
    variant,
    cpuS: seconds(process.cpuUsage(cpu)),
    wallS: (performance.now() - started) / 1000,
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    uncompressedBytes: lake.uncompressedBytes,
    rows,
    expected: lake.expected,
    quarantined,
    checkCpuS,
  };
}

// ---------------------------------------------------------------------------------------------
// Exactness: one tiny record per case, through sluice's contract and through the projection

/** A valid in_network record with one value replaced: `[where, raw JSON text]`. */
const EXACTNESS_CASES: readonly [string, string, string][] = [
  ['negotiated_rate', 'a halfway decimal', '1.00000000000000011102230246251565404236316680908203125'],
  ['negotiated_rate', 'the smallest normal, long form', '2.2250738585072011e-308'],
  ['negotiated_rate', '-0', '-0'],
  ['negotiated_rate', '1e-400', '1e-400'],
  ['negotiated_rate', '1e400', '1e400'],
  ['provider_references', 'an id beyond 2^53', '[9007199254740993]'],
  ['provider_references', 'ids -0, 1.0, 1e2', '[-0, 1.0, 1e2]'],
  ['npi', 'an NPI beyond 2^53', '[9007199254740993]'],
  ['npi', 'an NPI of 2^63', '[9223372036854775808]'],
  ['additional_information', 'a lone surrogate', '"a\\ud800b"'],
  ['expiration_date', 'Feb 30', '"2025-02-30"'],
  ['expiration_date', 'an ISO timestamp', '"2025-12-31T10:00:00Z"'],
  ['expiration_date', 'm/d/yyyy, one digit', '"1/2/2025"'],
];

function exactnessRecord(where: string, raw: string): string {
  const price = (key: string, fallback: string) => (where === key ? raw : fallback);
  const refs = where === 'provider_references' ? raw : '[1]';
  const groups =
    where === 'npi' ? `, "provider_groups": [{"npi": ${raw}, "tin": {"type": "ein", "value": "1"}}]` : '';
  return (
    '{"negotiation_arrangement": "ffs", "name": "x", "billing_code_type": "CPT", "billing_code_type_version": "2024", ' +
    `"billing_code": "1", "description": "d", "negotiated_rates": [{"provider_references": ${refs}${groups}, ` +
    `"negotiated_prices": [{"negotiated_type": "negotiated", "negotiated_rate": ${price('negotiated_rate', '1')}, ` +
    `"expiration_date": ${price('expiration_date', '"9999-12-31"')}, "service_code": ["01"], ` +
    `"billing_class": "professional", "setting": "both", "additional_information": ${price('additional_information', '"i"')}}]}]}`
  );
}

async function exactness(): Promise<void> {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { parseExact, loneSurrogatePaths } = await import('../shared/contracts/exact-json.ts');
  const { ticInNetworkSilver } = await import('../shared/contracts/datasets/tic-in-network.silver.ts');
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const dir = mkdtempSync(join(tmpdir(), 'spike-exactness-'));
  const context = { runId: 'f', sourceUri: 'file:///x', sourceSha256: '0', headers: { version: '2.0' } };
  const show = (v: unknown) =>
    typeof v === 'number' && Object.is(v, -0)
      ? '-0'
      : JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));
  const column = (where: string) =>
    where === 'npi'
      ? ['provider_groups', 'npi']
      : where === 'provider_references'
        ? ['negotiated_prices', 'provider_group_ids']
        : ['negotiated_prices', where];
  const rows: Record<string, string>[] = [];
  for (const [i, [where, what, raw]] of EXACTNESS_CASES.entries()) {
    const record = exactnessRecord(where, raw);
    const [table, name] = column(where) as [string, string];
    const parsed = parseExact(record, 0, {});
    const normalized = ticInNetworkSilver.normalize('in_network', 0, parsed, context);
    const value = normalized.rows[table]?.[0]?.[name];
    // Silver groups add this warning beside the contract's (and the writer stores U+FFFD).
    const surrogates =
      loneSurrogatePaths(parsed).length > 0 ? ['warn value.lone_surrogate (U+FFFD stored)'] : [];
    const findings = [...normalized.violations.map((v) => `${v.severity} ${v.ruleId}`), ...surrogates];
    const stored = value === undefined ? 'no row' : show(value);
    const sluice = findings.length > 0 ? `${stored}; ${findings.join(', ')}` : stored;
    const part = join(dir, `case-${i}.ndjson`);
    writeFileSync(part, `{"index": 0, "record": ${record}}\n`);
    const outDir = join(dir, `out-${i}`);
    mkdirSync(outDir);
    const instance = await DuckDBInstance.create(':memory:');
    let duckdb: string;
    try {
      const connection = await instance.connect();
      const sql = projectionSql({
        lakeDir: dir,
        fileId: 'f',
        items: [part],
        references: [],
        outDir,
        shape: 'temp',
      });
      for (const statement of sql) await connection.run(statement);
      const read = await connection.runAndReadAll(
        `SELECT ${name}::VARCHAR AS v, ${name} IS NULL AS n FROM read_parquet(${literal(join(outDir, `${table}.parquet`))})`,
      );
      const [v, n] = read.getRows()[0] ?? [];
      duckdb = n ? 'NULL' : String(v);
    } catch (error) {
      duckdb = `error: ${(error as Error).message.split('\n')[0]!.slice(0, 90)}`;
    } finally {
      instance.closeSync();
    }
    rows.push({ column: name, case: what, 'sluice silver': sluice, 'DuckDB projection': duckdb });
  }
  rmSync(dir, { recursive: true, force: true });
  console.table(rows);
}

// ---------------------------------------------------------------------------------------------
// The parent: alternated runs, each variant in its own process

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}

async function main(): Promise<void> {
  const file = resolve(option('file') ?? '.bench/tic-in-network-300MB.json.gz');
  if (process.argv.includes('--exactness')) return exactness();
  const shape = (option('shape') ?? 'temp') as Shape;
  const child = option('variant') as Variant | undefined;
  if (child) {
    console.log(JSON.stringify(await runVariant(child, file, shape)));
    return;
  }
  const runs = Number(option('runs') ?? 3);
  const variants = (option('variants')?.split(',') ?? [...VARIANTS]) as Variant[];
  const results: VariantResult[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const variant of variants) {
      console.error(`${variant}: run ${run}/${runs}…`);
      const out = spawnSync(
        process.execPath,
        [
          ...process.execArgv,
          process.argv[1]!,
          '--variant',
          variant,
          '--file',
          file,
          '--shape',
          shape,
          ...process.argv.filter((a) => a === '--no-lineage'),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1e8 },
      );
      if (out.status !== 0) throw new Error(`variant ${variant} exited with ${out.status}`);
      const result = JSON.parse(out.stdout.trim().split('\n').at(-1)!) as VariantResult;
      results.push(result);
      console.error(
        `  ${result.cpuS.toFixed(2)} CPU s, ${result.wallS.toFixed(2)} s wall, ${result.peakRssMb} MB` +
          (result.checkCpuS === undefined ? '' : `, check ${result.checkCpuS.toFixed(2)} CPU s`),
      );
    }
  }
  const gb = results[0]!.uncompressedBytes / 1e9;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const table = variants.map((variant) => {
    const mine = results.filter((r) => r.variant === variant);
    const cpu = mine.map((r) => r.cpuS);
    return {
      variant,
      'CPU s (median)': median(cpu).toFixed(2),
      'CPU s (all)': cpu.map((c) => c.toFixed(2)).join(' / '),
      'core-seconds per GB': (median(cpu) / gb).toFixed(1),
      'wall s (median)': median(mine.map((r) => r.wallS)).toFixed(2),
      'peak RSS MB (max)': Math.max(...mine.map((r) => r.peakRssMb)),
    };
  });
  console.table(table);
  for (const variant of ['sql', 'hybrid'] as const) {
    const last = results.findLast((r) => r.variant === variant);
    if (!last) continue;
    console.log(
      `${variant}: rows per table against the silver manifest (quarantined records: ${last.quarantined})`,
    );
    console.table(
      Object.entries(last.rows).map(([t, n]) => ({
        table: t,
        rows: n,
        'silver manifest': last.expected[t],
        equal: n === last.expected[t],
      })),
    );
  }
  console.log(`JSON: ${(gb * 1e3).toFixed(0)} MB (the source's uncompressed bytes)`);
}

await main();
