import { randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHandler, type DownloadDeps } from '../../functions/download/handler.ts';
import { createObservability, type LambdaContext } from '../../shared/adapters/aws/observability.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { downloadCheckpointKey } from '../../shared/stages/download/download-checkpoint.ts';
import { landingKey } from '../../shared/stages/download/landing-key.ts';
import { CircuitBreaker } from '../../shared/stages/download/resilience.ts';
import type { DownloadStateOutput } from '../../shared/workflow/source.ts';
import { type FlakyServer, sha256Hex, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { fixedClock, tempDir } from '../helpers/lake.ts';

/** A Lambda context with `remainingMs` left: less than the budget's reserve means "stop after a part". */
const contextWith = (remainingMs: number): LambdaContext => ({
  functionName: 'sluice-download',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:sluice-download',
  // Plenty, so that only the time left decides (the budget also stops at 80 % of memory).
  memoryLimitInMB: '10240',
  awsRequestId: 'request-1',
  getRemainingTimeInMillis: () => remainingMs,
});

describe('Handler: download (the Download state)', () => {
  let server: FlakyServer;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    server = await startFlakyServer();
    tmp = await tempDir('sluice-download-handler-');
  });
  afterAll(async () => {
    await server?.close();
    await tmp?.cleanup();
  });

  it("returns partial while the Lambda's remaining time is short, then the landed object", async () => {
    const body = randomBytes(3 * 64 * 1024 + 10);
    server.route('/rates.json', { content: { body } });
    const url = server.url('/rates.json');
    const landing = new FileObjectStore(tmp.dir);
    const deps: DownloadDeps = {
      config: {
        serviceName: 'sluice-test',
        logLevel: 'ERROR',
        landingBucket: 'landing-bucket',
        datasets: ['tic-in-network'],
        sourceSecretPrefix: 'sluice/sources/',
      },
      landing,
      secrets: { getSecret: async () => '' },
      clock: fixedClock,
      observability: createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' }),
      fetchOptions: {
        allowLoopback: true,
        allowInsecureHttp: true,
        circuitBreaker: new CircuitBreaker({ failureThreshold: 100 }),
      },
      partBytes: 64 * 1024,
    };
    const handler = createHandler(deps);
    const event = { source: { url, dataset: 'tic-in-network' }, executionId: 'exec-1' };
    // The handlers print their metrics (EMF) to stdout.
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const outputs: DownloadStateOutput[] = [];
    try {
      // No time left (the test's clock stands still, so only a spent budget stops): each invocation
      // stops after its first part, as one always lands at least a part.
      for (let i = 0; i < 3; i++) outputs.push(await handler(event, contextWith(0)));
      // 14 minutes left: the rest in one go.
      outputs.push(await handler(event, contextWith(14 * 60_000)));
    } finally {
      stdout.mockRestore();
    }
    const key = landingKey('tic-in-network', new URL(url));
    expect(outputs.slice(0, 3)).toEqual(
      [1, 2, 3].map((n) => ({
        status: 'partial',
        checkpointKey: downloadCheckpointKey(key),
        progress: { bytes: n * 64 * 1024, totalBytes: body.length, parts: n, invocations: n },
      })),
    );
    expect(outputs[3]).toEqual({
      status: 'landed',
      bucket: 'landing-bucket',
      key,
      dataset: 'tic-in-network',
      hasSilver: true,
      url,
    });
    expect(sha256Hex(await buffer(await landing.read(key)))).toBe(sha256Hex(body));
  });
});
