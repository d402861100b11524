import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { ConfigError } from '../../shared/errors.ts';
import { parseLambdaLimits } from '../../shared/pipeline/lambda-limits.ts';
import { committedRun, runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import type { LocalRunResult } from '../../shared/pipeline/pipeline-types.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { StateName } from '../../shared/workflow/definition.ts';
import { fixedClock, generateFile, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

const SKIP = motoSkipReason();
const KiB = 1024;
const MiB = 1024 * KiB;
/** Each invocation starts a process (tsx, the handlers, DuckDB): minutes on a busy machine. */
const SLOW = 15 * 60_000;

/**
 * `--lambda-limits`: the workflow's Lambda tasks, each invocation in a process of its own under Lambda's
 * limits scaled down, with the lake on moto_server's S3. Bronze segments (256 KiB) and silver groups
 * (512 KiB) are scaled down as the limits are, so a 3 MB file needs several of each.
 */
describe.skipIf(SKIP !== undefined)('Lambda limits, enforced locally', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let moto: MotoServer;
  const base = builtInDataset('tic-in-network');
  const dataset = { ...base, bronze: { ...base.bronze, segmentBytes: 256 * KiB } };
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    tmp = await tempDir('sluice-lambda-limits-');
    await generateFile(tmp.dir, 'in-network.json.gz', { seed: 15, targetBytes: 3_000_000 });
    moto = await startMotoServer();
    await moto.createBucket('drill');
    // The invocations' processes open the lake again: the standard variables say where and as whom.
    const env = {
      AWS_ENDPOINT_URL_S3: moto.endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
    };
    for (const [name, value] of Object.entries(env)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  }, 120_000);
  afterAll(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await moto?.stop();
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

  /** What must not depend on how the run was cut up: rows per table, and the reconciliation's counts. */
  const outcome = (result: LocalRunResult) => ({
    tables: Object.fromEntries(
      Object.entries(result.silver!.manifest.tables).map(([table, t]) => [
        table,
        [t.rowsWritten, t.duplicates],
      ]),
    ),
    status: result.reconciliation!.status,
    checks: result.reconciliation!.checks.map((c) => [c.name, c.expected, c.actual, c.ok]),
    quarantine: result.reconciliation!.quarantine,
    quality: result.reconciliation!.quality,
  });

  it(
    'runs a file through every stage on an S3 lake, each invocation within its limits, to the same rows and counts',
    async () => {
      const unconstrained = committedRun(await run(new FileObjectStore(join(tmp.dir, 'lake-free'))));
      const lake = new S3ObjectStore({ client: moto.s3, bucket: 'drill', prefix: 'lake/' });
      const limited = committedRun(
        await run(lake, { lambdaLimits: { timeoutSeconds: 120, tmpMb: 8, memoryMb: 1024 } }),
      );
      expect(outcome(limited)).toEqual(outcome(unconstrained));
      expect(limited.reconciliation?.status).toBe('passed');
      const { byState, largestScratchBytes } = limited.invocations!;
      // Several silver groups, each its own invocation; one plan, one merge, one reconciliation.
      expect(byState[StateName.silverGroup]).toBeGreaterThanOrEqual(4);
      expect(byState[StateName.planSilver]).toBe(1);
      expect(byState[StateName.silver]).toBe(1);
      expect(byState[StateName.reconcile]).toBe(1);
      expect(byState[StateName.ingest]).toBeGreaterThanOrEqual(1);
      // The scratch was used, and never past its limit (else the run would have failed).
      expect(largestScratchBytes).toBeGreaterThan(0);
      expect(largestScratchBytes).toBeLessThanOrEqual(8 * MiB);
      // Nothing of the run's bronze or silver outside the prefix, and no dead letter.
      expect(await new FolderDeadLetterStore(lake).list()).toEqual([]);
    },
    SLOW,
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
