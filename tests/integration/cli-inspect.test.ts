import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatasetConfigFile } from '../../shared/contracts/dataset-config.ts';
import { runSluice } from '../helpers/cli.ts';
import { type FlakyServer, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

const _BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');

/** Async spawn: the in-process HTTP server must answer while the CLI runs. */
const sluice = (args: string[]) => runSluice(args);

describe('sluice inspect', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: FlakyServer;
  beforeAll(async () => {
    tmp = await tempDir('sluice-cli-inspect-');
    server = await startFlakyServer();
  });
  afterAll(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('says what a TiC file is and how to run it', async () => {
    const result = await sluice(['inspect', SAMPLE]);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('a Transparency in Coverage in-network file, schema version "2.0.0"');
    expect(result.stdout).toMatch(/in_network\[\*\]: 590 elements/);
    expect(result.stdout).toMatch(/provider_references\[\*\]: 355 elements/);
    expect(result.stdout).toContain(`npx sluice run ${SAMPLE} --dataset tic-in-network`);
  });

  it('writes configs that `sluice run --config` reconciles: gzip NDJSON, CSV with another delimiter, nested JSON', async () => {
    const random = seededRandom(3);
    const events = Array.from({ length: 300 }, (_, i) =>
      JSON.stringify({
        id: i,
        Name: `n${i}`,
        score: i % 3 ? random() * 100 : i,
        day: `2024-01-${String(1 + (i % 28)).padStart(2, '0')}`,
        addr: { city: `c${i % 7}` },
        tags: ['a', 'b'],
      }),
    );
    const files = {
      'events.ndjson.gz': gzipSync(`${events.join('\n')}\n`),
      'accounts.csv': `id;Owner Name;balance\n${Array.from({ length: 120 }, (_, i) => `${i};"o ${i}";${i * 1.5}`).join('\n')}\n`,
      'nested.json': JSON.stringify({
        meta: { at: '2024-01-01' },
        data: { items: events.map((e) => JSON.parse(e)) },
      }),
      // A root array: its records are named `records` (on main the name was empty, and the run failed
      // on a bronze key with an empty segment, `run=…//part-00000.ndjson.gz`).
      'list.json': `[${events.join(',')}]`,
    };
    const expectedRows = {
      'events.ndjson.gz': 300,
      'accounts.csv': 120,
      'nested.json': 300,
      'list.json': 300,
    };
    for (const [name, body] of Object.entries(files)) {
      const file = join(tmp.dir, name);
      await writeFile(file, body);
      const config = join(tmp.dir, `${name}.config.json`);
      const inspected = await sluice(['inspect', file, '--write-config', config, '--json']);
      expect(inspected.stderr, name).toBe('');
      expect(inspected.status, name).toBe(0);
      const report = JSON.parse(inspected.stdout);
      expect(report.configWritten).toBe(config);
      const dataset = await loadDatasetConfigFile(config);
      expect(dataset.silver?.columns.length, name).toBeGreaterThanOrEqual(3);
      const run = await sluice(['run', file, '--config', config, '--lake', join(tmp.dir, 'lake'), '--json']);
      expect(run.stderr, name).toBe('');
      expect(run.status, name).toBe(0);
      const summary = JSON.parse(run.stdout);
      expect(summary.status, name).toBe('reconciled');
      const table = dataset.silver!.table;
      expect(summary.counts.tables[table].rows, name).toBe(expectedRows[name as keyof typeof expectedRows]);
      expect(summary.counts.tables._quarantine?.rows ?? 0, name).toBe(0);
    }
    const nested = JSON.parse(await readFile(join(tmp.dir, 'nested.json.config.json'), 'utf8'));
    expect(nested.records).toEqual([{ path: 'data.items[*]' }]);
    const list = JSON.parse(await readFile(join(tmp.dir, 'list.json.config.json'), 'utf8'));
    expect(list.records).toEqual([{ path: '[*]' }]);
  });

  it('reads the first --max-bytes of a URL, says the counts are lower bounds, and reads it all with --all', async () => {
    const random = seededRandom(11);
    // Several MB, so the read stops well before the end however large the chunks a fast loopback
    // delivers (the count is of stored bytes taken in, a chunk at a time).
    const lines = Array.from({ length: 300_000 }, (_, i) =>
      JSON.stringify({ i, r: `${random()}${random()}` }),
    );
    const body = gzipSync(`${lines.join('\n')}\n`);
    server.route('/big.ndjson.gz', { content: { body } });
    const url = server.url('/big.ndjson.gz');
    const allow = ['--allow-http', '--allow-loopback', '--json'];
    const partial = await sluice(['inspect', url, '--max-bytes', '512K', ...allow]);
    expect(partial.stderr).toBe('');
    const report = JSON.parse(partial.stdout);
    expect(report.complete).toBe(false);
    expect(report.storedBytesRead).toBeLessThan(body.length);
    expect(report.arrays[0].count).toBeGreaterThan(0);
    expect(report.arrays[0].count).toBeLessThan(lines.length);
    expect(report.notes[0]).toMatch(/lower bounds/);
    const whole = JSON.parse((await sluice(['inspect', url, '--all', ...allow])).stdout);
    expect(whole.complete).toBe(true);
    expect(whole.arrays[0].count).toBe(lines.length);
    expect(whole.storedBytesRead).toBe(body.length);

    // Loopback is refused unless allowed, as for a download; redirects are followed and checked.
    const refused = await sluice(['inspect', url, '--allow-http']);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/UnsafeUrlError: .*loopback address \(run with --allow-loopback/);
    server.route('/moved', {
      content: { body: Buffer.alloc(0) },
      steps: [{ kind: 'redirect', location: '/big.ndjson.gz' }],
    });
    const moved = JSON.parse(
      (await sluice(['inspect', server.url('/moved'), '--max-bytes', '512K', ...allow])).stdout,
    );
    expect(moved.format).toBe('ndjson');
  });

  it('fails a truncated file with exit 1 and the byte offset', async () => {
    const file = join(tmp.dir, 'cut.json.gz');
    await writeFile(file, (await readFile(SAMPLE)).subarray(0, 60_000));
    const result = await sluice(['inspect', file]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /MalformedInputError: .*cut\.json\.gz \(compressed\): malformed input at byte \d+: the gzip stream ends early/,
    );
  });
});
