import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { sourceLeaseKey } from '../../shared/lake/keys.ts';
import {
  DEFAULT_LEASE_TTL_MS,
  holdSourceLease,
  LeaseLostError,
  LONGEST_INVOCATION_MS,
  releaseSourceLease,
} from '../../shared/lake/source-lease.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import { renewRunLease, renewRunLeaseFromMapItem, runLeaseRef } from '../../shared/stages/run-lease.ts';
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

  it('from Map items: writes a renewal only when due, so that many items at once all go on; a run whose lease was taken stops', async () => {
    const lake = fileStore(tmp.dir);
    let now = fixedClock.now();
    const clock = { now: () => now };
    const bronze = await ingestToBronze(
      { dataset: builtInDataset('tic-in-network'), sourceKey: SAMPLE, leaseHolder: 'map-a' },
      { source: fileStore(TIC_EXAMPLES), lake, clock },
    );
    const ref = runLeaseRef(await readBronzeManifest(lake, bronze.manifestKey), 'map-a');
    await holdSourceLease(ref, { lake, clock });
    const key = sourceLeaseKey(ref.dataset, ref.sourceId);
    const leaseOf = async () => JSON.parse((await lake.read(key).then(text)) as string);
    const items = (count: number, holder = 'map-a') =>
      Promise.allSettled(
        Array.from({ length: count }, () =>
          renewRunLeaseFromMapItem({ bronzeManifestKey: bronze.manifestKey, holder }, { lake, clock }),
        ),
      );

    // Fresh (more than one invocation's longest time left): nothing written, however many items start.
    const taken = await leaseOf();
    const minutes = (n: number) => n * 60_000;
    now = new Date(now.getTime() + DEFAULT_LEASE_TTL_MS - LONGEST_INVOCATION_MS - minutes(1));
    expect((await items(40)).filter((r) => r.status === 'rejected')).toEqual([]);
    expect(await leaseOf()).toEqual(taken);
    // The longest an item can run before the next one starts: the lease it did not renew still holds.
    expect(Date.parse(taken.expiresAt)).toBeGreaterThan(now.getTime() + LONGEST_INVOCATION_MS);

    // Due: 40 items at once race to renew it; every one goes on, and the lease is extended from now.
    now = new Date(now.getTime() + minutes(2));
    expect((await items(40)).filter((r) => r.status === 'rejected')).toEqual([]);
    expect((await leaseOf()).expiresAt).toBe(new Date(now.getTime() + DEFAULT_LEASE_TTL_MS).toISOString());

    // A whole Map phase longer than the lease, items of up to an invocation's longest time each: the
    // lease never lapses before the next item starts.
    for (const gap of [15, 1, 14, 9, 15, 3, 15, 15, 7]) {
      now = new Date(now.getTime() + minutes(gap));
      expect(Date.parse((await leaseOf()).expiresAt), `after a gap of ${gap} min`).toBeGreaterThan(
        now.getTime(),
      );
      expect((await items(3)).filter((r) => r.status === 'rejected')).toEqual([]);
      expect(Date.parse((await leaseOf()).expiresAt)).toBeGreaterThan(now.getTime());
    }

    // Taken over by another run after a stall: every item of this run fails with LeaseLostError.
    now = new Date(now.getTime() + DEFAULT_LEASE_TTL_MS + 1000);
    await holdSourceLease({ ...ref, holder: 'map-b' }, { lake, clock });
    const lost = await items(5);
    expect(lost.every((r) => r.status === 'rejected' && r.reason instanceof LeaseLostError)).toBe(true);
    expect((await leaseOf()).holder).toBe('map-b');
  });
});

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
