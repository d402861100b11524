import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSluice } from '../helpers/cli.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

const _BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');
const SECRET = 'sk-live-0123456789abcdef';

/** Runs the CLI without blocking this process, so the test's HTTP server can answer it. */
const sluice = (args: string[], env: Record<string, string>) => runSluice(args, env);

describe('sluice run <url>', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: Server;
  let base: string;
  let body: Buffer;
  const seen: { path: string; authorization?: string }[] = [];

  beforeAll(async () => {
    tmp = await tempDir('sluice-cli-url-');
    body = await readFile(SAMPLE);
    let failures = 0;
    server = createServer((request, response) => {
      seen.push({ path: request.url ?? '', authorization: request.headers.authorization });
      if (request.headers.authorization !== `Bearer ${SECRET}`) {
        response.writeHead(401).end('no');
        return;
      }
      if (request.url === '/flaky/in-network.json.gz' && failures++ === 0) {
        response.writeHead(503, { 'retry-after': '0' }).end('busy');
        return;
      }
      response.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await tmp.cleanup();
  });

  /** The dead letters a run left in its lake. */
  const deadLetters = async (lake: string) =>
    Promise.all(
      (await listFiles(join(tmp.dir, lake)))
        .filter((f) => f.startsWith('_dead_letters/'))
        .map(async (f) => JSON.parse(await readFile(join(tmp.dir, lake, f), 'utf8'))),
    );

  const args = (url: string, lake: string) => [
    'run',
    url,
    '-d',
    'tic-in-network',
    '--lake',
    join(tmp.dir, lake),
    '--landing',
    join(tmp.dir, `${lake}-landing`),
    '--auth',
    'bearer',
    '--secret-id',
    'payer',
    '--allow-http',
    '--allow-loopback',
  ];

  it('downloads with the credential from the environment, retries a 503, then runs the pipeline', async () => {
    const result = await sluice([...args(`${base}/flaky/in-network.json.gz`, 'lake'), '--json'], {
      SLUICE_SECRET_PAYER: SECRET,
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('reconciled');
    expect(summary.counts.parsed.in_network).toBeGreaterThan(0);
    expect(seen.filter((s) => s.path === '/flaky/in-network.json.gz').length).toBe(2);
    expect(result.stdout).not.toContain(SECRET);
  });

  it('refuses a loopback URL unless allowed, and never prints the secret', async () => {
    const refused = await sluice(
      [
        'run',
        `${base}/x.json.gz`,
        '-d',
        'tic-in-network',
        '--lake',
        join(tmp.dir, 'refused'),
        '--allow-http',
      ],
      { SLUICE_SECRET_PAYER: SECRET },
    );
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/UnsafeUrlError/);
    // The hint names the flag a CLI user sets, not the library option behind it.
    expect(refused.stderr).toContain('(run with --allow-loopback to permit it)');
    expect(refused.stderr).not.toContain('allowLoopback');
    const plain = await sluice(
      ['run', `${base}/x.json.gz`, '-d', 'tic-in-network', '--lake', join(tmp.dir, 'refused-http')],
      {},
    );
    expect(plain.status).toBe(1);
    expect(plain.stderr).toContain('plain http is not allowed (run with --allow-http to permit it)');

    const unauthorized = await sluice(args(`${base}/in-network.json.gz`, 'wrong-secret'), {
      SLUICE_SECRET_PAYER: 'wrong-value',
    });
    expect(unauthorized.status).toBe(1);
    expect(unauthorized.stderr).toContain('401');
    expect(`${unauthorized.stdout}${unauthorized.stderr}`).not.toContain('wrong-value');
    expect(await listFiles(join(tmp.dir, 'wrong-secret-landing'))).toEqual([]);
  });

  it('dead-letters a failed download like any failed run, with its input and error, never the secret', async () => {
    const result = await sluice(args(`${base}/in-network.json.gz`, 'unauthorized'), {
      SLUICE_SECRET_PAYER: 'wrong-value',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('DownloadError');
    const letters = await deadLetters('unauthorized');
    expect(letters).toHaveLength(1);
    expect(letters[0].input).toEqual({
      source: {
        url: `${base}/in-network.json.gz`,
        dataset: 'tic-in-network',
        credentials: { kind: 'bearer' },
      },
    });
    expect(letters[0].error.Error).toBe('DownloadError');
    expect(JSON.stringify(letters)).not.toContain('wrong-value');
    // `sluice dlq list` shows it.
    const list = await sluice(['dlq', 'list', '--lake', join(tmp.dir, 'unauthorized')], {});
    expect(list.status).toBe(0);
    expect(list.stdout).toContain(`${base}/in-network.json.gz (download)`);
    // `sluice runs` lists it under its dataset, so a filter by dataset keeps it.
    const runs = await sluice(
      ['runs', '--lake', join(tmp.dir, 'unauthorized'), '--dataset', 'tic-in-network', '--json'],
      {},
    );
    expect(runs.status).toBe(0);
    expect(JSON.parse(runs.stdout)).toMatchObject({
      dataset: 'tic-in-network',
      status: 'failed',
      source: `${base}/in-network.json.gz`,
      error: expect.stringMatching(/^DownloadError: /),
    });
  });

  it('reads the credential from --secrets-file, and checks --sha256 as the file lands', async () => {
    const secrets = join(tmp.dir, 'secrets.json');
    await writeFile(secrets, JSON.stringify({ payer: SECRET }));
    const sha256 = createHash('sha256').update(body).digest('hex');
    const good = await sluice(
      [...args(`${base}/in-network.json.gz`, 'secrets-file'), '--secrets-file', secrets, '--sha256', sha256],
      {},
    );
    expect(good.stderr).toMatch(/^downloaded .* in 1 attempt\(s\)\n/);
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/sluice run reconciled/);

    const wrong = 'ab'.repeat(32);
    const bad = await sluice(
      [...args(`${base}/in-network.json.gz`, 'bad-sha'), '--secrets-file', secrets, '--sha256', wrong],
      {},
    );
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain(`ChecksumMismatchError`);
    expect(bad.stderr).toContain(`expected ${wrong}, got ${sha256}`);
    expect((await deadLetters('bad-sha'))[0].error.Error).toBe('ChecksumMismatchError');
  });

  it('knows a URL as one source whatever folder it lands in: the same bytes from another --landing are unchanged', async () => {
    const url = `${base}/in-network.json.gz`;
    const lake = join(tmp.dir, 'one-url');
    const from = (landing: string) => [
      ...args(url, 'one-url').map((a) => (a.endsWith('one-url-landing') ? join(tmp.dir, landing) : a)),
      '--json',
    ];
    const env = { SLUICE_SECRET_PAYER: SECRET };
    const first = await sluice(from('landing-a'), env);
    expect(first.status, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).status).toBe('reconciled');
    // The default landing folder is ./landing, so running from another folder lands the URL elsewhere.
    const second = await sluice(from('landing-b'), env);
    expect(second.status, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).status).toBe('unchanged');
    const sources = (await listFiles(lake)).filter((f) => /^_sources\/[^/]+\/[^/]+\/current\.json$/.test(f));
    expect(sources).toHaveLength(1);
    const count = await sluice(['query', 'SELECT count(*) AS n FROM files', '--lake', lake, '--json'], {});
    expect(JSON.parse(count.stdout)).toEqual({ n: 1 });
  });
});
