import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { sourceLeaseKey } from '../../shared/lake/keys.ts';
import {
  DEFAULT_LEASE_TTL_MS,
  holdSourceLease,
  LeaseLostError,
  releaseSourceLease,
} from '../../shared/lake/source-lease.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import { renewRunLease, runLeaseRef } from '../../shared/stages/run-lease.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, tempDir } from '../helpers/lake.ts';

const SAMPLE = 'in-network-rates-fee-for-service-single-plan-sample.json';

describe('Function: renewRunLease (between a run stages, where nothing else renews the lease on AWS)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-run-lease-');
  });
  afterAll(() => tmp?.cleanup());

  it("extends the run's own lease, and stops a run whose lease another took over since", async () => {
    const lake = fileStore(tmp.dir);
    let now = fixedClock.now();
    const clock = { now: () => now };
    const bronze = await ingestToBronze(
      { dataset: builtInDataset('tic-in-network'), sourceKey: SAMPLE, leaseHolder: 'run-a' },
      { source: fileStore(TIC_EXAMPLES), lake, clock },
    );
    const ref = runLeaseRef(await readBronzeManifest(lake, bronze.manifestKey), 'run-a');
    // The ingest released nothing: the run holds its lease until its commit.
    await holdSourceLease(ref, { lake, clock });
    const leaseOf = async () =>
      JSON.parse((await lake.read(sourceLeaseKey(ref.dataset, ref.sourceId)).then(text)) as string);

    now = new Date(now.getTime() + DEFAULT_LEASE_TTL_MS / 2);
    await renewRunLease({ bronzeManifestKey: bronze.manifestKey, holder: 'run-a' }, { lake, clock });
    expect((await leaseOf()).expiresAt).toBe(new Date(now.getTime() + DEFAULT_LEASE_TTL_MS).toISOString());

    // Run a stalls past its lease; run b takes the source over and lets go of it.
    now = new Date(now.getTime() + DEFAULT_LEASE_TTL_MS + 1000);
    const other = { ...ref, holder: 'run-b' };
    await holdSourceLease(other, { lake, clock });
    await releaseSourceLease(other, { lake, clock });
    await expect(
      renewRunLease({ bronzeManifestKey: bronze.manifestKey, holder: 'run-a' }, { lake, clock }),
    ).rejects.toThrow(LeaseLostError);
    // Without a holder (a handler invoked outside a workflow) there is no lease to renew.
    await renewRunLease({ bronzeManifestKey: bronze.manifestKey, holder: undefined }, { lake, clock });
  });
});

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
