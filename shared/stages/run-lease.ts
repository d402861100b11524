import type { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { holdSourceLease, type LeaseProcess, type LeaseRef, leaseDepsOf } from '../lake/source-lease.ts';
import type { Clock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { readBronzeManifest } from './bronze/read-bronze.ts';

/** The lease a run of a source holds from its first stage to its commit: the source's, held by the run. */
export function runLeaseRef(
  bronze: Pick<BronzeManifest, 'dataset' | 'sourceId' | 'source'>,
  holder: string,
): LeaseRef {
  return {
    dataset: bronze.dataset,
    sourceId: bronze.sourceId,
    location: bronze.source.url ?? bronze.source.uri,
    holder,
  };
}

/**
 * Renews the run's lease between its stages (PlanSilver, Silver, PlanReconcile) and from the items of
 * its Maps (`renewRunLeaseFromMapItem`): on AWS nothing else
 * renews it after Ingest or PlanRebuild, and silver and reconciliation of a large file can outlast its
 * 20 minutes; an expired lease would let a second execution of the source start over beside this one,
 * which then fails at its commit. A run whose lease another holder took meanwhile stops here
 * (`LeaseLostError`), before spending more on a build it may not commit.
 */
export async function renewRunLease(
  input: { readonly bronzeManifestKey: string; readonly holder: string | undefined },
  deps: { readonly lake: ObjectStore; readonly clock: Clock; readonly localLease?: LeaseProcess },
  options: { readonly onlyIfDue?: boolean } = {},
): Promise<void> {
  if (input.holder === undefined) return;
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  await holdSourceLease(runLeaseRef(bronze, input.holder), leaseDepsOf(deps), { mustHold: true, ...options });
}

/**
 * `renewRunLease` from each item of a Map (SilverGroup, SilverBucket, ReconcileItem, ReconcileKeyBucket):
 * a Map phase of a large file (hundreds of groups, `MaxConcurrency` at a time) can outlast the lease by
 * itself, while no item lasts longer than one invocation (15 min). An item writes a renewal only once
 * less than that is left of the lease (`onlyIfDue`), so siblings do not race to write it; an item of a
 * run whose lease was taken over fails with `LeaseLostError`, and with it the run, before it builds more.
 */
export function renewRunLeaseFromMapItem(
  input: { readonly bronzeManifestKey: string; readonly holder: string | undefined },
  deps: { readonly lake: ObjectStore; readonly clock: Clock; readonly localLease?: LeaseProcess },
): Promise<void> {
  return renewRunLease(input, deps, { onlyIfDue: true });
}
