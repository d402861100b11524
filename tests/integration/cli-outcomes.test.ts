import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSluice } from '../helpers/cli.ts';
import { tableOfContents as listing, TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { type FlakyServer, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

/**
 * Honest outcomes, as a user meets them: exit 0 and status `reconciled` only when every record of every
 * file is accounted for and nothing failed; otherwise a non-zero exit and a first line that says what failed.
 */

const _BIN = join(import.meta.dirname, '../../bin/sluice.js');
const GOOD = 'in-network-rates-fee-for-service-single-plan-sample.json';

/** Runs the CLI without blocking this process, so the test's HTTP server can answer it. */
const sluice = (args: string[]) => runSluice(args);

/** The first line of the text summary (after its leading blank line). */
const headline = (stdout: string) => stdout.trimStart().split('\n')[0];

describe('sluice run: a table of contents whose listed files fail', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: FlakyServer;

  beforeAll(async () => {
    tmp = await tempDir('sluice-outcomes-toc-');
    server = await startFlakyServer();
    server.route('/good.json', { content: { body: await readFile(join(TIC_EXAMPLES, GOOD)) } });
    // Cut off inside the in_network array: malformed JSON.
    server.route('/malformed.json', {
      content: {
        body: Buffer.from('{"reporting_entity_name":"x","in_network":[{"negotiation_arrangement":'),
      },
    });
    // `/gone.json` has no route: 404.
  });
  afterAll(async () => {
    await server.close();
    await tmp.cleanup();
  });

  /** A table of contents (a local file) listing `paths` on the test server. */
  async function tableOfContents(name: string, paths: readonly string[]): Promise<string> {
    const file = join(tmp.dir, name);
    const toc = listing(paths.map((p) => ({ description: p, location: server.url(p) })));
    await writeFile(file, JSON.stringify(toc));
    return file;
  }

  const run = (file: string, lake: string, ...more: string[]) =>
    sluice([
      'run',
      file,
      '-d',
      'tic-table-of-contents',
      '--lake',
      join(tmp.dir, lake),
      '--landing',
      join(tmp.dir, `${lake}-landing`),
      '--allow-http',
      '--allow-loopback',
      '-q',
      ...more,
    ]);

  it('exits 1 and says "2 of 3 listed files failed" first, and still shows the rest', async () => {
    const toc = await tableOfContents('toc.json', ['/good.json', '/gone.json', '/malformed.json']);
    const result = await run(toc, 'lake');
    expect(result.status).toBe(1);
    const first = headline(result.stdout);
    expect(first).toBe('sluice run failed: tic-table-of-contents: 2 of 3 listed files failed');
    expect(first).not.toContain('reconciled');
    // The rest of the summary: the table's own reconciliation, and each listed file's outcome.
    expect(result.stdout).toContain('reconciliation passed');
    expect(result.stdout).toContain('fan-out     3 listed file(s): 1 succeeded, 2 failed, 0 rejected');
    expect(result.stdout).toMatch(new RegExp(`succeeded +${server.url('/good.json')} +run `));
    expect(result.stdout).toMatch(new RegExp(`failed +${server.url('/gone.json')} +DownloadError: .*404`));
    expect(result.stdout).toMatch(
      new RegExp(`failed +${server.url('/malformed.json')} +MalformedInputError`),
    );
    expect(result.stderr).toContain('error: 2 of 3 listed files failed');
    // Each failed listed file is dead-lettered by its own execution, and so is the table of contents'.
    const letters = (await listFiles(join(tmp.dir, 'lake'))).filter((f) => f.startsWith('_dead_letters/'));
    expect(letters).toHaveLength(3);
    // Redriven while the files still fail: each listed file's redrive fails again (exit 1) and keeps its letter.
    const redrive = await sluice([
      'dlq',
      'redrive',
      '--all',
      '--lake',
      join(tmp.dir, 'lake'),
      '--landing',
      join(tmp.dir, 'lake-landing'),
      '--allow-http',
      '--allow-loopback',
      '--json',
    ]);
    expect(redrive.status).toBe(1);
    const outcomes = redrive.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    // The listed files fail again and keep their letters; so does the table of contents: unchanged
    // itself, its redrive still fans out, retries the listed files that failed, and fails with them.
    const failedAgain = outcomes.filter((o) => o.status === 'failed');
    expect(failedAgain).toHaveLength(3);
    const after = (await listFiles(join(tmp.dir, 'lake'))).filter((f) => f.startsWith('_dead_letters/'));
    for (const { id } of failedAgain) expect(after.some((f) => f.includes(id))).toBe(true);

    const json = await run(toc, 'json-lake', '--json');
    expect(json.status).toBe(1);
    const summary = JSON.parse(json.stdout);
    expect(summary.status).toBe('failed');
    expect(summary.problems).toEqual(['2 of 3 listed files failed']);
    expect(summary.fanOut.files.map((f: { status: string }) => f.status)).toEqual([
      'succeeded',
      'failed',
      'failed',
    ]);
  });

  it('counts a listed location refused as unsafe as failed, in CLI terms', async () => {
    const toc = await tableOfContents('toc-refused.json', ['/good.json']);
    // Without --allow-loopback the listed file is refused before any download.
    const result = await sluice([
      'run',
      toc,
      '-d',
      'tic-table-of-contents',
      '--lake',
      join(tmp.dir, 'refused-lake'),
      '--landing',
      join(tmp.dir, 'refused-landing'),
      '--allow-http',
      '-q',
    ]);
    expect(result.status).toBe(1);
    expect(headline(result.stdout)).toBe(
      'sluice run failed: tic-table-of-contents: 1 of 1 listed files failed (1 refused before download)',
    );
    expect(result.stdout).toContain('run with --allow-loopback');
  });

  it('reruns an unchanged table of contents: retries a listed file that failed, and does no work for current ones', async () => {
    const good = await readFile(join(TIC_EXAMPLES, GOOD));
    // `/later.json` has no route yet: 404.
    const toc = await tableOfContents('toc-retry.json', ['/good.json', '/later.json']);
    const first = await run(toc, 'retry-lake');
    expect(first.status).toBe(1);
    expect(headline(first.stdout)).toBe(
      'sluice run failed: tic-table-of-contents: 1 of 2 listed files failed',
    );

    // Rerun unchanged while the file is still missing: retried, still failing, so exit 1 (not "unchanged").
    const again = await run(toc, 'retry-lake');
    expect(again.status).toBe(1);
    expect(headline(again.stdout)).toBe(
      'sluice run failed: tic-table-of-contents: 1 of 2 listed files failed',
    );
    expect(again.stdout).toContain('fan-out     2 listed file(s): 1 succeeded, 1 failed, 0 rejected');

    // The file is there now; the table's own bytes did not change. The rerun still fans out, retries the
    // file that failed (and commits it), and exits 0.
    server.route('/later.json', {
      content: { body: Buffer.from(good.toString('utf8').replace('"Acme', '"Later')) },
    });
    const second = await run(toc, 'retry-lake', '--json');
    expect(second.status, second.stderr).toBe(0);
    const retried = JSON.parse(second.stdout);
    expect(retried).toMatchObject({ status: 'unchanged', dataset: 'tic-table-of-contents' });
    expect(retried.fanOut.files).toEqual([
      expect.objectContaining({ url: server.url('/good.json'), status: 'succeeded' }),
      expect.objectContaining({
        url: server.url('/later.json'),
        status: 'succeeded',
        reconciliation: 'passed',
      }),
    ]);
    // The good file was current: its run ended unchanged (not reconciled again).
    expect(retried.fanOut.files[0].reconciliation).toBeUndefined();
    const committed = (await listFiles(join(tmp.dir, 'retry-lake'))).filter((f) =>
      /^_sources\/tic-in-network\/.*\/current\.json$/.test(f),
    );
    expect(committed).toHaveLength(2);

    // Everything current: every listed file ends unchanged (asked with If-None-Match), nothing rebuilt.
    const before = server.requestsTo('/later.json').length;
    const lakeBefore = (await listFiles(join(tmp.dir, 'retry-lake'))).filter(
      (f) => f.startsWith('bronze/tic-in-network/') || f.startsWith('silver/tic-in-network/'),
    );
    const third = await run(toc, 'retry-lake', '--json');
    expect(third.status, third.stderr).toBe(0);
    const current = JSON.parse(third.stdout);
    expect(current.status).toBe('unchanged');
    expect(current.fanOut.files.map((f: { status: string }) => f.status)).toEqual(['succeeded', 'succeeded']);
    expect(
      current.fanOut.files.every((f: { reconciliation?: string }) => f.reconciliation === undefined),
    ).toBe(true);
    const asked = server.requestsTo('/later.json').slice(before);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((r) => r.headers['if-none-match'] !== undefined)).toBe(true);
    const lakeAfter = (await listFiles(join(tmp.dir, 'retry-lake'))).filter(
      (f) => f.startsWith('bronze/tic-in-network/') || f.startsWith('silver/tic-in-network/'),
    );
    expect(lakeAfter).toEqual(lakeBefore);
  });

  it('exits 0, "reconciled", when every listed file succeeded', async () => {
    const toc = await tableOfContents('toc-good.json', ['/good.json']);
    const result = await run(toc, 'good-lake');
    expect(result.status).toBe(0);
    expect(headline(result.stdout)).toMatch(
      /^sluice run reconciled \(quality \d+\/100\): tic-table-of-contents$/,
    );
    expect(result.stderr).toBe('');
  });
});

describe('sluice run: quarantined records', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let config: string;
  beforeAll(async () => {
    tmp = await tempDir('sluice-outcomes-quarantine-');
    config = join(tmp.dir, 'accounts.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'accounts',
        format: 'csv',
        silver: {
          table: 'accounts',
          columns: [
            { name: 'id', type: 'integer', required: true },
            { name: 'owner', type: 'string', required: true },
          ],
          primaryKey: ['id'],
        },
      }),
    );
  });
  afterAll(async () => tmp.cleanup());

  /** A CSV of `rows` accounts, the first `missing` of them without the required owner. */
  async function csv(name: string, rows: number, missing: number): Promise<string> {
    const file = join(tmp.dir, name);
    const lines = Array.from({ length: rows }, (_, i) => `${i + 1},${i < missing ? '' : `owner ${i}`}`);
    await writeFile(file, `id,owner\n${lines.join('\n')}\n`);
    return file;
  }
  const run = (file: string, lake: string, ...more: string[]) =>
    sluice(['run', file, '--config', config, '--lake', join(tmp.dir, lake), '-q', ...more]);

  it('fails a run that quarantined more than the threshold, saying the numbers and how to allow it', async () => {
    const file = await csv('half.csv', 8, 4);
    const result = await run(file, 'half');
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    const first = result.stderr.split('\n')[0];
    expect(first).toMatch(
      /^error: QuarantineThresholdError: 4 of 8 records \(50%\) were quarantined, more than the threshold of 5%: the run's report lists the rules they broke, with examples \(.*reconciliation\.json; `sluice report` shows it\)\. If that share is expected, run with --quarantine-threshold 0\.5 or more\.$/,
    );
    // Dead-lettered like any failed run, with the error's name.
    const letters = (await listFiles(join(tmp.dir, 'half'))).filter((f) => f.startsWith('_dead_letters/'));
    expect(letters).toHaveLength(1);
    const letter = JSON.parse(await readFile(join(tmp.dir, 'half', letters[0]!), 'utf8'));
    expect(letter.error.Error).toBe('QuarantineThresholdError');
    // The report says why, and its validity counts the quarantined records.
    const reportFile = (await listFiles(join(tmp.dir, 'half'))).find((f) =>
      f.endsWith('reconciliation.json'),
    )!;
    const report = JSON.parse(await readFile(join(tmp.dir, 'half', reportFile), 'utf8'));
    expect(report.status).toBe('failed');
    expect(report.quarantine).toEqual({ records: 8, quarantined: 4, share: 0.5, threshold: 0.05, ok: false });
    expect(report.quality).toMatchObject({ completeness: 1, validity: 0.5 });

    // With the threshold raised, the same file reconciles, and its validity still says half.
    const allowed = await run(file, 'half-allowed', '--quarantine-threshold', '0.5', '--json');
    expect(allowed.status).toBe(0);
    const summary = JSON.parse(allowed.stdout);
    expect(summary.status).toBe('reconciled');
    expect(summary.quality.validity).toBe(0.5);
    expect(summary.quality.score).toBeLessThan(100);
  });

  it('fails a run whose every record was quarantined, whatever the threshold', async () => {
    const file = await csv('none.csv', 3, 3);
    for (const threshold of ['0.05', '1']) {
      const result = await run(file, `none-${threshold}`, '--quarantine-threshold', threshold, '--json');
      expect(result.status).toBe(1);
      const failure = JSON.parse(result.stdout);
      expect(failure).toMatchObject({ status: 'failed', error: { name: 'QuarantineThresholdError' } });
      expect(failure.error.message).toMatch(/^all 3 records were quarantined, so nothing reached silver/);
    }
  });

  it('passes a run within the threshold, and rejects a threshold that is not a share', async () => {
    const file = await csv('few.csv', 40, 1);
    const result = await run(file, 'few', '--json');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('reconciled');
    expect(summary.quality.validity).toBe(0.975);
    for (const share of ['5', '0x1', '0b1', ' ']) {
      const bad = await run(file, 'few-bad', '--quarantine-threshold', share);
      expect(bad.status, share).toBe(2);
      expect(bad.stderr).toContain('not a share from 0 to 1');
    }
  });
});

describe('sluice run: a file without records', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-empty-');
  });
  afterAll(async () => tmp.cleanup());

  const cases = [
    { format: 'ndjson', file: 'events.ndjson', body: '', found: 'no lines that hold a value' },
    { format: 'ndjson', file: 'blank.ndjson', body: '\n\n  \n', found: 'no lines that hold a value' },
    { format: 'csv', file: 'rows.csv', body: 'id,amount\n', found: 'no rows after the header row' },
  ] as const;

  for (const { format, file, body, found } of cases) {
    it(`fails an ${format} file with no records (${JSON.stringify(body)}), unless the config allows it`, async () => {
      const path = join(tmp.dir, file);
      await writeFile(path, body);
      const strict = join(tmp.dir, `${format}-strict.json`);
      const lenient = join(tmp.dir, `${format}-lenient.json`);
      await writeFile(strict, JSON.stringify({ name: 'events', format }));
      await writeFile(lenient, JSON.stringify({ name: 'events', format, allowEmpty: true }));
      const lake = join(tmp.dir, `lake-${file}`);

      const failed = await sluice(['run', path, '--config', strict, '--lake', lake, '-q']);
      expect(failed.status).toBe(1);
      expect(failed.stderr).toContain(`MissingRecordPathError: ${path}: the file has no records: ${found}`);
      expect(failed.stderr).toContain('"allowEmpty": true');
      // Nothing that looks like a run was left behind.
      expect((await listFiles(lake)).filter((f) => f.endsWith('_manifest.json'))).toEqual([]);

      const allowed = await sluice(['run', path, '--config', lenient, '--lake', lake, '--json']);
      expect(allowed.status, allowed.stderr).toBe(0);
      expect(JSON.parse(allowed.stdout).counts.parsed).toEqual({ records: 0 });
    });
  }
});
