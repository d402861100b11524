import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { type FlakyServer, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

/**
 * Honest outcomes, as a user meets them: exit 0 and status `reconciled` only when every record of every
 * file is accounted for and nothing failed; otherwise a non-zero exit and a first line that says what failed.
 */

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const GOOD = 'in-network-rates-fee-for-service-single-plan-sample.json';

/** Runs the CLI without blocking this process, so the test's HTTP server can answer it. */
function sluice(args: string[]) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

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
    const toc = {
      reporting_entity_name: 'sluice test',
      reporting_entity_type: 'health insurance issuer',
      last_updated_on: '2026-01-01',
      version: '2.0.0',
      reporting_structure: [
        {
          reporting_plans: [
            {
              plan_name: 'plan a',
              plan_id_type: 'hios',
              plan_id: '1111111111',
              plan_market_type: 'individual',
              issuer_name: 'Acme',
            },
          ],
          in_network_files: paths.map((p) => ({ description: p, location: server.url(p) })),
        },
      ],
    };
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
    // Each failed listed file is dead-lettered by its own execution.
    const letters = (await listFiles(join(tmp.dir, 'lake'))).filter((f) => f.startsWith('_dead_letters/'));
    expect(letters).toHaveLength(2);

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
