import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvSecretStore } from '../../shared/adapters/local/env-secret-store.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { ConfigError } from '../../shared/errors.ts';
import { sourceLeaseKey } from '../../shared/lake/keys.ts';
import { thisLeaseProcess } from '../../shared/lake/source-lease.ts';
import { invokeUnderLimits, parseLambdaLimits } from '../../shared/pipeline/lambda-limits.ts';
import { runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { runSluice } from '../helpers/cli.ts';
import { fixedClock, generateFile, tempDir } from '../helpers/lake.ts';

const KiB = 1024;
/** Each invocation starts a process (tsx, the handlers, DuckDB): minutes on a busy machine. */
const SLOW = 15 * 60_000;

/**
 * `--lambda-limits`: an invocation past its limits fails as on Lambda. The drill of a whole run within
 * them, on moto_server's S3: tests/integration/limits-drill.test.ts.
 */
describe('Lambda limits, enforced locally', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  const base = builtInDataset('tic-in-network');
  const dataset = { ...base, bronze: { ...base.bronze, segmentBytes: 256 * KiB } };

  beforeAll(async () => {
    tmp = await tempDir('sluice-lambda-limits-');
    await generateFile(tmp.dir, 'in-network.json.gz', { seed: 15, targetBytes: 3_000_000 });
  }, 120_000);
  afterAll(async () => {
    await tmp?.cleanup();
  });

  const run = async (lake: ObjectStore, extra: Parameters<typeof runWorkflowLocally>[1] | object = {}) =>
    runWorkflowLocally(
      { dataset, sourceKey: 'in-network.json.gz' },
      {
        source: new FileObjectStore(tmp.dir),
        lake,
        clock: fixedClock,
        deadLetters: new FolderDeadLetterStore(lake),
        retryIntervalMs: 0,
        silverParallelism: 2,
        silverGroupTargetBytes: 512 * KiB,
        workDir: join(tmp.dir, 'work'),
        ...extra,
      },
    );

  it(
    'fails an invocation whose scratch outgrows tmp as a full /tmp does: ENOSPC, naming the folder',
    async () => {
      const lakeDir = join(tmp.dir, 'lake-full');
      await mkdir(lakeDir, { recursive: true });
      const lake = new FileObjectStore(lakeDir);
      const failure = await run(lake, { lambdaLimits: { timeoutSeconds: 300, tmpMb: 0.01 } }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failure?.name).toBe('ENOSPC');
      expect(failure?.message).toMatch(/scratch folder .*work.* holds .* MB, more than its 0\.01 MB/);
      const [letter] = await new FolderDeadLetterStore(lake).list();
      expect(letter?.error.Error).toBe('ENOSPC');
    },
    SLOW,
  );

  it(
    'kills an invocation at its timeout, as Step Functions reports a Lambda that timed out',
    async () => {
      const lake = new FileObjectStore(join(tmp.dir, 'lake-timeout'));
      const failure = await run(lake, { lambdaLimits: { timeoutSeconds: 0.001, tmpMb: 8 } }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failure?.name).toBe('Sandbox.Timedout');
      const [letter] = await new FolderDeadLetterStore(lake).list();
      expect(letter?.error).toMatchObject({ Error: 'Sandbox.Timedout' });
      expect(String(letter?.error.Cause)).toContain('Task timed out after');
    },
    SLOW,
  );

  it(
    "names the run's process in its lease, though invocations in processes of their own renew it",
    async () => {
      const lake = new FileObjectStore(join(tmp.dir, 'lake-lease'));
      const result = await run(lake, { lambdaLimits: { timeoutSeconds: 300, tmpMb: 8 } });
      // Ingest took the lease over from the run, Reconcile renewed it at its commit: each in a process
      // that ended right after. A lease naming such a process would read as free while the run went on.
      const key = sourceLeaseKey(dataset.name, String(result.bronze?.manifest.sourceId));
      const chunks: Buffer[] = [];
      for await (const chunk of await lake.read(key)) chunks.push(chunk as Buffer);
      const lease = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      expect(lease).toMatchObject({ pid: process.pid, releasedAt: expect.any(String) });
    },
    SLOW,
  );

  it(
    "takes an invocation's result though its process exits before the last check of its scratch ends",
    async () => {
      // The process exits right after it sends its result; the check of a scratch folder of many files
      // (≈ 1 s here) ends after that. The exit must not fail an invocation that returned.
      const scratch = join(tmp.dir, 'scratch-many-files');
      await mkdir(scratch, { recursive: true });
      for (let start = 0; start < 20_000; start += 1000) {
        await Promise.all(
          Array.from({ length: 1000 }, (_, i) => writeFile(join(scratch, `f${start + i}`), '')),
        );
      }
      const lake = new FileObjectStore(join(tmp.dir, 'lake-instant'));
      const ignore = () => {};
      const value = await invokeUnderLimits(
        'IngestFunctionArn',
        { probe: 1 },
        {
          env: {
            dataset,
            source: new FileObjectStore(tmp.dir),
            lake,
            clock: fixedClock,
            secrets: new EnvSecretStore({}),
            leaseHolder: 'test',
            leaseProcess: thisLeaseProcess(),
            silverGroups: 1,
            silverGroupWorkers: false,
          },
          hooks: {
            ingestResult: ignore,
            silverPart: ignore,
            silverResult: ignore,
            rebuildPlan: ignore,
            reconcileResult: ignore,
            stateCaughtUp: ignore,
            fanOutPlan: ignore,
            downloaded: ignore,
          },
          limits: { timeoutSeconds: 300, tmpMb: 8 },
          workDir: scratch,
          functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:probe',
          onScratch: ignore,
          onDuration: ignore,
          stateTransitionsSoFar: 0,
          onRequests: ignore,
          child: {
            file: join(import.meta.dirname, '..', 'helpers', 'instant-invocation-child.mjs'),
            execArgv: [],
          },
        },
      );
      expect(value).toEqual({ echoed: { probe: 1 } });
    },
    SLOW,
  );

  it(
    "names the invocation's error in the CLI's --json and on stderr (it comes back from the invocation's own process by name)",
    async () => {
      const sample = join(import.meta.dirname, '..', '..', 'samples', 'tic-in-network-sample.json.gz');
      const args = [
        'run',
        sample,
        '-d',
        'tic-in-network',
        '--lake',
        join(tmp.dir, 'lake-cli'),
        '--json',
        '-q',
      ];
      const ran = await runSluice([...args, '--lambda-limits', 'timeout=0.001,tmp=8']);
      expect(ran.status).toBe(1);
      expect(JSON.parse(ran.stdout)).toMatchObject({
        status: 'failed',
        error: { name: 'Sandbox.Timedout', message: expect.stringContaining('Task timed out') },
      });
      expect(ran.stderr).toContain('error: Sandbox.Timedout: Task timed out');
    },
    SLOW,
  );
});

describe('parseLambdaLimits', () => {
  it('reads timeout, tmp and memory, and says what it expects otherwise', () => {
    expect(parseLambdaLimits('timeout=2,tmp=8')).toEqual({
      timeoutSeconds: 2,
      tmpMb: 8,
      memoryMb: undefined,
    });
    expect(parseLambdaLimits('tmp=10240,timeout=900,memory=3008')).toEqual({
      timeoutSeconds: 900,
      tmpMb: 10240,
      memoryMb: 3008,
    });
    for (const bad of [
      'timeout=2',
      'tmp=8',
      'timeout=0,tmp=8',
      'timeout=x,tmp=8',
      'timeout=2,tmp=8,disk=1',
      '',
    ]) {
      expect(() => parseLambdaLimits(bad)).toThrow(ConfigError);
    }
    expect(() => parseLambdaLimits('timeout=2')).toThrow(/both timeout=SECONDS and tmp=MB/);
  });
});
