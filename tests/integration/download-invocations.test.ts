import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { FileObjectStore, TMP_DIR_NAME } from '../../shared/adapters/local/file-object-store.ts';
import { DownloadError } from '../../shared/errors.ts';
import { MULTIPART_LIMITS, type UploadingObjectStore } from '../../shared/ports/object-store.ts';
import {
  type DownloadOutcome,
  type DownloadResult,
  downloadToLanding,
  type RetryEvent,
} from '../../shared/stages/download/download.ts';
import {
  DownloadCheckpoint,
  downloadCheckpointKey,
} from '../../shared/stages/download/download-checkpoint.ts';
import { landingKey } from '../../shared/stages/download/landing-key.ts';
import { CircuitBreaker, HostLimiter } from '../../shared/stages/download/resilience.ts';
import {
  etagOf,
  type FlakyServer,
  type Route,
  sha256Hex,
  startFlakyServer,
} from '../helpers/flaky-http-server.ts';
import { fixedClock, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/**
 * A download longer than one invocation: each invocation's budget runs out after one part (as a Lambda
 * whose remaining time is spent), checkpoints, and the next continues with Range and If-Range. Against
 * the real misbehaving HTTP server, landing in a local folder and on moto_server's S3.
 */

const KiB = 1024;
const CHILD = path.join(import.meta.dirname, '../helpers/download-child.ts');

let server: FlakyServer;
beforeAll(async () => {
  server = await startFlakyServer();
});
afterAll(async () => {
  await server?.close();
});

/** A landing store, the part size it allows, and how to see the multipart uploads left open in it. */
interface Landing {
  readonly store: UploadingObjectStore;
  readonly partBytes: number;
  openUploads(): Promise<number>;
}

const SKIP_MOTO = motoSkipReason();
let moto: MotoServer | undefined;
let buckets = 0;

const landings: [string, () => Promise<Landing>][] = [
  [
    'a local folder',
    async () => {
      const { dir } = await tempDir('sluice-download-inv-');
      return {
        store: new FileObjectStore(dir),
        partBytes: 64 * KiB,
        openUploads: async () =>
          (await readdir(path.join(dir, TMP_DIR_NAME, 'uploads')).catch(() => [])).length,
      };
    },
  ],
  ...(SKIP_MOTO === undefined
    ? ([
        [
          "moto_server's S3",
          async () => {
            moto ??= await startMotoServer();
            const bucket = await moto.createBucket(`landing-${++buckets}`);
            const s3 = moto.s3;
            return {
              store: new S3ObjectStore({ client: s3, bucket }),
              // S3's smallest part but the last.
              partBytes: MULTIPART_LIMITS.minPartBytes,
              openUploads: async () =>
                (await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0,
            };
          },
        ],
      ] as [string, () => Promise<Landing>][])
    : []),
];
afterAll(async () => {
  await moto?.stop();
});

describe.each(landings)('Function: downloadToLanding across invocations, landing in %s', (_, makeLanding) => {
  let landing: Landing;
  let retries: RetryEvent[];
  /** Four full parts and a short fifth: the body never ends on a part boundary. */
  let body: Buffer;
  let other: Buffer;

  beforeEach(async () => {
    landing = await makeLanding();
    server.reset();
    retries = [];
    body = randomBytes(4 * landing.partBytes + 1000);
    other = randomBytes(3 * landing.partBytes + 77);
  });

  /** One invocation whose budget runs out after each part, or never (`budget: false`). */
  function invoke(url: string, { budget = true } = {}): Promise<DownloadOutcome> {
    return downloadToLanding(
      { url, dataset: 'ds' },
      {
        landing: landing.store,
        secrets: { getSecret: async () => '' },
        clock: fixedClock,
        fetchOptions: {
          allowLoopback: true,
          allowInsecureHttp: true,
          idleTimeoutMs: 5_000,
          baseDelayMs: 5,
          maxDelayMs: 20,
          circuitBreaker: new CircuitBreaker({ failureThreshold: 100 }),
          hostLimiter: new HostLimiter({ requestsPerSecond: Number.POSITIVE_INFINITY }),
        },
        onRetry: (event) => retries.push(event),
        budget: budget ? { shouldStop: () => true } : undefined,
        partBytes: landing.partBytes,
      },
    );
  }

  /** Invocations until the file lands: the partial outcomes, then the landed one. */
  async function invokeUntilLanded(
    url: string,
    between: (partial: DownloadOutcome) => Promise<void> = async () => {},
  ): Promise<{ partials: DownloadOutcome[]; landed: DownloadResult }> {
    const partials: DownloadOutcome[] = [];
    for (let i = 0; i < 20; i++) {
      const outcome = await invoke(url);
      if (outcome.status === 'landed') return { partials, landed: outcome };
      partials.push(outcome);
      await between(outcome);
    }
    throw new Error('the download did not land in 20 invocations');
  }

  function serve(route: Partial<Route>): string {
    server.route('/rates.json.gz', { content: { body }, ...route });
    return server.url('/rates.json.gz');
  }

  async function landedBytes(key: string): Promise<Buffer> {
    return buffer(await landing.store.read(key));
  }

  /** No checkpoint and no multipart upload left behind. */
  async function expectNothingOpen(url: string): Promise<void> {
    const key = landingKey('ds', new URL(url));
    expect(await landing.store.head(downloadCheckpointKey(key))).toBeUndefined();
    expect(await landing.openUploads()).toBe(0);
  }

  it('lands in one invocation per part, each resuming the checkpoint with Range and If-Range', async () => {
    const url = serve({});
    const { partials, landed } = await invokeUntilLanded(url);

    expect(partials).toHaveLength(4);
    partials.forEach((partial, i) => {
      expect(partial).toMatchObject({
        status: 'partial',
        bytes: (i + 1) * landing.partBytes,
        totalBytes: body.length,
        parts: i + 1,
        invocations: i + 1,
      });
    });
    expect(landed).toMatchObject({
      status: 'landed',
      bytes: body.length,
      sha256: sha256Hex(body),
      invocations: 5,
      resumed: true,
    });
    expect(sha256Hex(await landedBytes(landed.key))).toBe(sha256Hex(body));
    const requests = server.requestsTo('/rates.json.gz');
    expect(requests).toHaveLength(5);
    expect(requests[0]?.headers.range).toBeUndefined();
    requests.slice(1).forEach((request, i) => {
      expect(request.headers.range).toBe(`bytes=${(i + 1) * landing.partBytes}-`);
      expect(request.headers['if-range']).toBe(etagOf({ body }));
    });
    await expectNothingOpen(url);
  });

  it('shows nothing under the landing key until the last invocation completes it', async () => {
    const url = serve({});
    const key = landingKey('ds', new URL(url));
    await invokeUntilLanded(url, async () => {
      expect(await landing.store.head(key)).toBeUndefined();
      const checkpoint = DownloadCheckpoint.parse(
        JSON.parse((await landedBytes(downloadCheckpointKey(key))).toString('utf8')),
      );
      expect(checkpoint).toMatchObject({ key, source: { resumable: true, totalBytes: body.length } });
    });
    expect((await landing.store.head(key))?.size).toBe(body.length);
  });

  it('downloads a file that changed between invocations again from byte 0, never splicing versions', async () => {
    // Requests 0 and 1 see version 1; from request 2 on, version 2 (If-Range no longer matches).
    const url = serve({
      content: { body, etag: '"v1"' },
      versions: [undefined, undefined, { body: other, etag: '"v2"' }],
    });
    const { partials, landed } = await invokeUntilLanded(url);

    expect(landed.sha256).toBe(sha256Hex(other));
    expect(sha256Hex(await landedBytes(landed.key))).toBe(sha256Hex(other));
    const requests = server.requestsTo('/rates.json.gz');
    expect(requests[2]?.headers).toMatchObject({
      range: `bytes=${2 * landing.partBytes}-`,
      'if-range': '"v1"',
    });
    // The third invocation got the new version whole, and started a new upload with it.
    expect(partials[2]).toMatchObject({ bytes: landing.partBytes, parts: 1 });
    expect(requests.at(-1)?.headers['if-range']).toBe('"v2"');
    await expectNothingOpen(url);
  });

  it('resumes a body that drops mid-part within the invocation', async () => {
    const url = serve({
      steps: [
        { kind: 'ok' },
        { kind: 'reset', afterBytes: Math.floor(landing.partBytes / 3) },
        { kind: 'truncate', afterBytes: 1000 },
      ],
    });
    const { landed } = await invokeUntilLanded(url);
    expect(landed.sha256).toBe(sha256Hex(body));
    expect(sha256Hex(await landedBytes(landed.key))).toBe(sha256Hex(body));
    expect(retries.map((r) => r.error)).toEqual([
      expect.stringMatching(/ECONNRESET|connection/),
      expect.stringMatching(/the body ended after|connection/),
    ]);
    await expectNothingOpen(url);
  });

  it('discards a checkpoint whose upload is gone and starts again from byte 0', async () => {
    const url = serve({});
    const key = landingKey('ds', new URL(url));
    let invocation = 0;
    const { landed } = await invokeUntilLanded(url, async () => {
      if (++invocation !== 2) return;
      const text = (await landedBytes(downloadCheckpointKey(key))).toString('utf8');
      const { uploadId } = DownloadCheckpoint.parse(JSON.parse(text));
      await landing.store.abortUpload(key, uploadId);
    });
    expect(landed.sha256).toBe(sha256Hex(body));
    expect(sha256Hex(await landedBytes(landed.key))).toBe(sha256Hex(body));
    expect(retries.map((r) => r.error)).toContainEqual(
      expect.stringMatching(
        /checkpoint .* was discarded \(its multipart upload .* is gone\): starting from byte 0/,
      ),
    );
    // The third request started over: no Range.
    expect(server.requestsTo('/rates.json.gz')[2]?.headers.range).toBeUndefined();
    await expectNothingOpen(url);
  });

  it('gives a server without Range support one invocation, then a clear error; nothing is left', async () => {
    const url = serve({ ranges: false });
    const error = await invoke(url).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as Error).message).toMatch(
      /cannot continue in another invocation because it does not answer HTTP Range requests, and this invocation's time ran out after \d+ of \d+ bytes: raise the Download function's timeout .* or host the file where Range requests work/,
    );
    await expectNothingOpen(url);
    // Without a budget, the same server lands the file in one invocation.
    const landed = await invoke(url, { budget: false });
    expect(landed).toMatchObject({ status: 'landed', sha256: sha256Hex(body), invocations: 1 });
  });

  it('fails clearly, leaving nothing, when a server that advertises ranges answers 200 to one', async () => {
    const url = serve({ ranges: 'ignored' });
    expect(await invoke(url)).toMatchObject({ status: 'partial', parts: 1 });
    const error = await invoke(url).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(DownloadError);
    expect((error as Error).message).toMatch(/does not answer HTTP Range requests/);
    expect(server.requestsTo('/rates.json.gz')[1]?.headers.range).toBe(`bytes=${landing.partBytes}-`);
    await expectNothingOpen(url);
  });
});

describe('a download killed with SIGKILL between invocations', () => {
  it('resumes from its checkpoint and lands the same bytes', async () => {
    const tmp = await tempDir('sluice-download-kill-');
    try {
      const partBytes = 32 * KiB;
      const body = randomBytes(10 * partBytes + 5);
      server.reset();
      server.route('/killed.bin', { content: { body } });
      const url = server.url('/killed.bin');
      const landingDir = path.join(tmp.dir, 'landing');
      const args = [url, landingDir, tmp.dir, String(partBytes)];

      const first = await runChild(args, 3);
      expect(first.killed).toBe(true);
      expect(first.lines.slice(0, 3)).toEqual([
        `partial ${partBytes} 1`,
        `partial ${2 * partBytes} 2`,
        `partial ${3 * partBytes} 3`,
      ]);
      const second = await runChild(args, Number.POSITIVE_INFINITY);
      // The first invocation after the kill continues the checkpoint rather than starting over.
      const [bytes, invocations] = second.lines[0]!.split(' ').slice(1).map(Number) as [number, number];
      expect(invocations).toBeGreaterThan(3);
      expect(bytes).toBeGreaterThan(3 * partBytes);
      expect(second.lines.at(-1)).toBe(
        `landed ${body.length} ${invocations + second.lines.length - 1} ${sha256Hex(body)}`,
      );
      const landing = new FileObjectStore(landingDir);
      expect(sha256Hex(await buffer(await landing.read(landingKey('ds', new URL(url)))))).toBe(
        sha256Hex(body),
      );
    } finally {
      await tmp.cleanup();
    }
  });
});

/** Runs the child, SIGKILLing it once it has printed `killAfterLines` lines. */
function runChild(args: string[], killAfterLines: number): Promise<{ lines: string[]; killed: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n').filter(Boolean)) {
        lines.push(line);
        if (lines.length === killAfterLines) child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.once('error', reject);
    child.once('exit', (exitCode, signal) => {
      if (signal === 'SIGKILL') resolve({ lines, killed: true });
      else if (exitCode === 0) resolve({ lines, killed: false });
      else reject(new Error(`child failed (${exitCode}): ${stderr}`));
    });
  });
}
