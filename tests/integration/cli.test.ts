import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { generateFile, listFiles, readBronze, tempDir } from '../helpers/lake.ts';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(TIC_EXAMPLES, 'in-network-rates-multiple-plans-sample.json');

function sluice(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

describe('sluice CLI', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-cli-');
  });
  afterAll(async () => tmp.cleanup());

  it('run --json prints one object with run id, status, counts per record path and outputs', async () => {
    const lake = join(tmp.dir, 'json-lake');
    const result = sluice(['run', SAMPLE, '--dataset', 'tic-in-network', '--lake', lake, '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    const sample = JSON.parse(await readFile(SAMPLE, 'utf8'));
    expect(summary.status).toBe('reconciled');
    expect(summary.quality.score).toBeGreaterThan(90);
    expect(summary.counts.tables.in_network_items.rows).toBe(sample.in_network.length);
    // Each table's files, one per merge bucket (one for a file this small).
    const silverFiles = Object.values(summary.outputs.silver) as string[][];
    expect(silverFiles.length).toBeGreaterThan(0);
    for (const files of silverFiles) {
      expect(files).toHaveLength(1);
      for (const file of files) expect(existsSync(file)).toBe(true);
    }
    // The run: the source (file name + location hash) and the stored object (size + mtime hash).
    expect(summary.runId).toMatch(/^in-network-rates-multiple-plans-sample\.json-[0-9a-f]{12}-[0-9a-f]{8}$/);
    expect(summary.runId.startsWith(summary.source.id)).toBe(true);
    expect(summary.version).toBe(summary.source.sha256.slice(0, 16));
    expect(summary.counts.parsed).toEqual({
      in_network: sample.in_network.length,
      provider_references: sample.provider_references.length,
    });
    expect(summary.counts.bronze).toEqual(summary.counts.parsed);
    expect(existsSync(summary.outputs.bronzeManifest)).toBe(true);
    // Without limits the ingest has no deadline: one slice, read the fast way (a run once took the
    // resumable reader that slices need, and bronze got 40 % slower).
    expect(summary.slices).toBe(1);
    expect(summary.reader).toBe('native');
    for (const part of summary.outputs.bronze) expect(existsSync(part)).toBe(true);
    // Seconds per stage, in order, adding up to the total.
    const stages = summary.seconds.stages as { stage: string; seconds: number }[];
    expect(stages[0]?.stage).toBe('bronze');
    expect(stages.at(-1)?.stage).toBe('reconcile');
    const sum = stages.reduce((total, s) => total + s.seconds, 0);
    expect(Math.abs(sum - summary.seconds.total)).toBeLessThanOrEqual(0.05 * stages.length + 0.05);
  });

  it('run prints a readable summary by default', () => {
    const result = sluice([
      'run',
      SAMPLE,
      '-d',
      'tic-in-network',
      '--lake',
      join(tmp.dir, 'text-lake'),
      '-q',
    ]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/sluice run reconciled \(quality \d+\/100\): tic-in-network/);
    expect(result.stdout).toMatch(/negotiated_prices\s+\d+/);
    expect(result.stdout).toContain('reconciliation passed');
    expect(result.stdout).toMatch(/in_network\s+\d+\s+\d+\s+\d+\s+0/);
    expect(result.stdout).toContain('_manifest.json');
    // Where the time went, stage by stage.
    expect(result.stdout).toMatch(/\n {14}bronze [\d.]+ m?s, silver [\d.]+ m?s, .*reconcile [\d.]+ m?s\n/);
  });

  it('fails on malformed input with exit code 1, the error name, file and byte offset on stderr', async () => {
    const bad = join(tmp.dir, 'bad.json');
    await writeFile(bad, '{"in_network":[{"a":1},{"a":tru}]}');
    const result = sluice(['run', bad, '-d', 'tic-in-network', '--lake', join(tmp.dir, 'bad-lake')]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('MalformedInputError');
    expect(result.stderr).toContain(`${bad}: malformed input at byte 31`);
    // Nothing in bronze; the failed execution is recorded as a dead letter (see `sluice dlq`), the
    // source's lease is released for the next run, and the failed invocation's usage is recorded (it
    // was paid for).
    const files = await listFiles(join(tmp.dir, 'bad-lake'));
    expect(files).toEqual([
      expect.stringMatching(/^_dead_letters\/bad-json-[0-9a-f]{32}\.json$/),
      expect.stringMatching(/^_sources\/tic-in-network\/source=bad\.json-[0-9a-f]{12}\/lease\.json$/),
      expect.stringMatching(/^_usage\/bad-json-[0-9a-f]{32}\/Ingest\/[0-9a-f-]{36}\.json$/),
    ]);
    const lease = JSON.parse(await readFile(join(tmp.dir, 'bad-lake', files[1]!), 'utf8'));
    expect(lease.releasedAt).toBeDefined();
  });

  it('with --json, also reports a failure as a JSON object on stdout', async () => {
    const bad = join(tmp.dir, 'bad2.json');
    await writeFile(bad, '{"in_network":[');
    const result = sluice([
      'run',
      bad,
      '-d',
      'tic-in-network',
      '--lake',
      join(tmp.dir, 'bad2-lake'),
      '--json',
    ]);
    expect(result.status).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({
      status: 'failed',
      error: { name: 'MalformedInputError' },
    });
  });

  it('checks --sha256 of a local file before ingesting it: a mismatch fails with expected and actual', async () => {
    const actual = createHash('sha256')
      .update(await readFile(SAMPLE))
      .digest('hex');
    const wrong = '0'.repeat(64);
    const lake = join(tmp.dir, 'sha-lake');
    const bad = sluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--sha256', wrong, '-q']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(
      `ChecksumMismatchError: ${SAMPLE}: sha256 mismatch: expected ${wrong}, got ${actual}`,
    );
    expect(existsSync(join(lake, 'bronze'))).toBe(false);

    const good = sluice([
      'run',
      SAMPLE,
      '-d',
      'tic-in-network',
      '--lake',
      lake,
      '--sha256',
      actual.toUpperCase(),
      '-q',
    ]);
    expect(good.status).toBe(0);
    const malformed = sluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--sha256', 'abc']);
    expect(malformed.status).toBe(2);
    expect(malformed.stderr).toContain('64 hex digits');
  });

  it('explains a missing or unknown dataset with exit code 2', () => {
    const none = sluice(['run', SAMPLE, '--lake', join(tmp.dir, 'x')]);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('--dataset');
    const unknown = sluice(['run', SAMPLE, '--dataset', 'nope']);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toContain('tic-in-network');
  });

  it('exits 2 for bad usage of every command and subcommand, after saying what is wrong', () => {
    for (const args of [
      ['bogus'],
      ['run', '--bogus'],
      ['dlq', 'bogus'],
      ['dlq', 'list', '--queue-url', 'x', '--lake', 'y'],
      ['dlq', 'redrive', '--bogus'],
      ['inspect', '--bogus'],
      ['runs', '--bogus'],
      ['report', '--bogus'],
    ]) {
      const result = sluice(args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/^error: .*\n\(run with --help for usage\)/);
    }
  });

  it('query lists the views and runs SQL over the silver tables', () => {
    const lake = join(tmp.dir, 'json-lake');
    const views = sluice(['query', '--lake', lake]);
    expect(views.status).toBe(0);
    expect(views.stdout).toContain('negotiated_prices');
    const result = sluice(['query', 'SELECT count(*) AS n FROM in_network_items', '--lake', lake, '--json']);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ n: 2 });
  });

  it("query with SQL DuckDB refuses is bad usage (exit 2), and a missing table lists the lake's tables", () => {
    const lake = join(tmp.dir, 'json-lake');
    const missing = sluice(['query', 'SELECT * FROM in_network_item', '--lake', lake]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^error: Catalog Error: Table with name in_network_item does not exist/);
    expect(missing.stderr).toMatch(/The lake's tables: .*\bin_network_items\b.*negotiated_prices/);
    for (const sql of ['SELEC 1', 'SELECT no_such_column FROM files']) {
      const refused = sluice(['query', sql, '--lake', lake]);
      expect(refused.status, sql).toBe(2);
      expect(refused.stderr, sql).toMatch(/^error: (Parser|Binder) Error/);
    }
  });

  it('query of a lake whose runs all failed says it has no committed tables (exit 2), not an empty list', async () => {
    // What a failed run leaves for its source: a released lease, no current version.
    const lake = join(tmp.dir, 'failed-only-lake');
    await mkdir(join(lake, '_sources', 'd', 'source=x'), { recursive: true });
    await writeFile(join(lake, '_sources', 'd', 'source=x', 'lease.json'), '{}');
    for (const args of [['query'], ['query', 'SELECT 1']]) {
      const result = sluice([...args, '--lake', lake]);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/has no committed silver tables yet/);
    }
  });

  it('query --json keeps every column of a result whose names repeat (a join): later ones get _1, _2, …', () => {
    // JSON objects hold a name once: {"x":1,"x":2} kept only the last column, so `SELECT *` of a join
    // silently lost the first table's columns of shared names (file_id, _run_id, …).
    const lake = join(tmp.dir, 'json-lake');
    const repeated = sluice([
      'query',
      'SELECT 1 AS x, 2 AS x, 3 AS x_1, 4 AS X FROM in_network_items LIMIT 1',
      '--lake',
      lake,
      '--json',
    ]);
    expect(repeated.status, repeated.stderr).toBe(0);
    expect(JSON.parse(repeated.stdout)).toEqual({ x: 1, x_2: 2, x_1: 3, X: 4 });
    const joined = sluice([
      'query',
      'SELECT * FROM in_network_items i JOIN files f ON f.file_id = i.file_id LIMIT 1',
      '--lake',
      lake,
      '--json',
    ]);
    expect(joined.status, joined.stderr).toBe(0);
    const row = JSON.parse(joined.stdout) as Record<string, unknown>;
    expect(row.file_id).toBe(row.file_id_1);
    const table = sluice([
      'query',
      'SELECT * FROM in_network_items i JOIN files f ON f.file_id = i.file_id LIMIT 1',
      '--lake',
      lake,
    ]);
    const columns = table.stdout.split('\n')[0]!.split(' | ');
    expect(Object.keys(row)).toHaveLength(columns.length);
  });

  it('explains a missing file', () => {
    const result = sluice(['run', join(tmp.dir, 'missing.json'), '-d', 'tic-in-network']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('no such file');
  });

  it('exits 2 when --lake is a file (or under one), for each command that reads or writes a lake', async () => {
    const file = join(tmp.dir, 'not-a-lake');
    await writeFile(file, 'x');
    for (const lake of [file, join(file, 'lake')]) {
      for (const args of [
        ['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake],
        ['rebuild', '-d', 'tic-in-network', '--lake', lake],
        ['query', 'SELECT 1', '--lake', lake],
        ['runs', '--lake', lake],
        ['dlq', 'list', '--lake', lake],
      ]) {
        const result = sluice(args);
        expect(result.status, `${args.join(' ')}: ${result.stderr}`).toBe(2);
        expect(result.stderr).toContain(`--lake ${lake}: a file, not a folder`);
      }
    }
  });

  it('--dry-run says what it would read and write, and writes nothing', () => {
    const lake = join(tmp.dir, 'dry-lake');
    const result = sluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--dry-run']);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('would read');
    expect(result.stdout).toContain('in_network/part-NNNNN.ndjson.gz');
    expect(existsSync(lake)).toBe(false);
  });

  it('--help teaches each command', () => {
    for (const args of [['--help'], ['run', '--help'], ['validate', '--help'], ['schema', '--help']]) {
      const result = sluice(args);
      expect(result.status, args.join(' ')).toBe(0);
      expect(result.stdout).toContain('Usage: sluice');
    }
    expect(sluice(['run', '--help']).stdout).toContain('Examples:');
  });

  it('validate accepts a good config and explains each problem of a bad one', async () => {
    const good = join(tmp.dir, 'good.json');
    await writeFile(good, JSON.stringify({ name: 'events', format: 'ndjson' }));
    const ok = sluice(['validate', '--config', good]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('valid ndjson dataset "events"');

    const bad = join(tmp.dir, 'bad-config.json');
    await writeFile(
      bad,
      JSON.stringify({ name: 'Bad Name', format: 'json', records: [{ path: 'in_network' }], extra: 1 }),
    );
    const result = sluice(['validate', '--config', bad]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('name: use 1–63 lowercase letters');
    expect(result.stderr).toContain('records.0.path: a record path is dot-separated keys ending in [*]');
    expect(result.stderr).toMatch(/extra/);
  });

  it('schema prints the JSON Schema of the dataset config', () => {
    const result = sluice(['schema']);
    expect(result.status).toBe(0);
    const schema = JSON.parse(result.stdout);
    expect(schema.properties.format.enum).toEqual(['json', 'ndjson', 'csv']);
    expect(schema.required).toContain('name');
  });

  it('runs a dataset described only by a config file', async () => {
    const config = join(tmp.dir, 'events.json');
    await writeFile(config, JSON.stringify({ name: 'events', format: 'ndjson', recordName: 'events' }));
    const data = join(tmp.dir, 'events.ndjson');
    await writeFile(data, '{"id":1}\n{"id":2}\n');
    const result = sluice([
      'run',
      data,
      '--config',
      config,
      '--lake',
      join(tmp.dir, 'events-lake'),
      '--json',
    ]);
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout).counts.parsed).toEqual({ events: 2 });
  });
});

describe('sluice run, killed with SIGKILL at any point and rerun', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let config: string;
  beforeAll(async () => {
    tmp = await tempDir('sluice-kill-');
    await generateFile(tmp.dir, 'big.json.gz', { seed: 5, targetBytes: 12_000_000 });
    config = join(tmp.dir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'tic-small-parts',
        format: 'json',
        records: [{ path: 'in_network[*]' }, { path: 'provider_references[*]' }],
        headers: [{ path: 'version' }],
        bronze: { partMaxRecords: 200 },
      }),
    );
  });
  afterAll(async () => tmp.cleanup());

  const run = (lake: string) => [
    'run',
    join(tmp.dir, 'big.json.gz'),
    '--config',
    config,
    '--lake',
    lake,
    '--json',
    '-q',
  ];

  /** A committed run is one whose manifest lists parts that all exist with their recorded checksums. */
  async function expectNothingHalfCommitted(lake: string) {
    const manifests = (await listFiles(lake)).filter((f) => f.endsWith('_manifest.json'));
    for (const manifestKey of manifests) {
      const { manifest } = await readBronze(lake, manifestKey);
      for (const part of manifest.parts) {
        const bytes = await readFile(join(lake, part.key));
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(part.sha256);
      }
    }
  }

  it('leaves nothing that looks committed, and the rerun equals a clean run', async () => {
    const reference = join(tmp.dir, 'reference');
    const clean = sluice(run(reference));
    expect(clean.status).toBe(0);
    const referenceFiles = await listFiles(reference);

    const lake = join(tmp.dir, 'killed');
    // Kill points spread over start-up, parsing, part uploads and commit (the run takes ~1–2 s).
    for (const delayMs of [150, 400, 700, 900, 1100, 1300, 1600, 2000]) {
      const child = spawn(process.execPath, [BIN, ...run(lake)], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      child.kill('SIGKILL'); // a no-op if the run already finished: then its commit must be complete
      await exited;
      await expectNothingHalfCommitted(lake);
    }
    const rerun = sluice(run(lake));
    expect(rerun.status).toBe(0);
    // The lease names who held the source last, and the usage records what each attempt cost: not output.
    const output = (files: string[]) =>
      files.filter(
        (f) => !f.startsWith('.sluice-tmp') && !f.endsWith('/lease.json') && !f.startsWith('_usage/'),
      );
    expect(output(await listFiles(lake))).toEqual(output(referenceFiles));
    for (const file of output(referenceFiles)) {
      const [a, b] = [await readFile(join(reference, file)), await readFile(join(lake, file))];
      if (file.endsWith('_manifest.json')) {
        const strip = (m: Buffer) => ({ ...JSON.parse(m.toString()), timings: null });
        expect(strip(b)).toEqual(strip(a));
      } else {
        expect(b.equals(a), file).toBe(true);
      }
    }
  });
});
