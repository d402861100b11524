import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles, tempDir } from '../helpers/lake.ts';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');
const SECRET = 'sk-live-0123456789abcdef';

/** Runs the CLI without blocking this process, so the test's HTTP server can answer it. */
function sluice(args: string[], env: Record<string, string>) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
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

    const unauthorized = await sluice(args(`${base}/in-network.json.gz`, 'wrong-secret'), {
      SLUICE_SECRET_PAYER: 'wrong-value',
    });
    expect(unauthorized.status).toBe(1);
    expect(unauthorized.stderr).toContain('401');
    expect(`${unauthorized.stdout}${unauthorized.stderr}`).not.toContain('wrong-value');
    expect(await listFiles(join(tmp.dir, 'wrong-secret-landing'))).toEqual([]);
  });
});
