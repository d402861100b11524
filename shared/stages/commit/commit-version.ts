import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { reconciliationKey, silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import {
  commitSourceVersion,
  readCurrentVersion,
  readVersionRecord,
  restoreSourceVersion,
  type SourceVersionRecord,
} from '../../lake/source-commits.ts';
import { holdSourceLease, releaseSourceLease } from '../../lake/source-lease.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { SourceCatalog } from '../../ports/source-catalog.ts';
import { readBronzeManifest, readText } from '../bronze/read-bronze.ts';

export interface CommitVersionInput {
  readonly bronzeManifestKey: string;
  /** The quality score of the reconciliation that passed. */
  readonly quality: number;
  /** The run's lease holder: the lease must still be this run's, and is released after the commit. */
  readonly leaseHolder?: string;
}

export interface CommitVersionDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** The contract the run's silver was built under: with the bronze's config, it names the build. */
  readonly contract: SilverContract;
  /** The query engine's catalog (Glue on AWS), moved to the new version after the commit. */
  readonly catalog?: SourceCatalog;
  /** The lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: boolean;
}

export interface CommitVersionResult {
  readonly sourceId: string;
  readonly version: string;
  /** The version this one replaced, if the source had another; absent for a new source. */
  readonly replaced?: string;
  /** False when this very build was current already (a retried commit). */
  readonly committed: boolean;
  readonly record: SourceVersionRecord;
}

/**
 * The last step of a run, after its reconciliation passed: the source's current version becomes this
 * run's (its version record, then the current record, conditionally), the catalog follows, and the lease
 * is let go. Until this step no reader sees the run's silver; after it, readers see all of it. A retry
 * after a crash anywhere in here commits the same record again, which changes nothing.
 */
export async function commitVersion(
  input: CommitVersionInput,
  deps: CommitVersionDeps,
): Promise<CommitVersionResult> {
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const build = silverBuildOf(bronze, contractFingerprint(deps.contract));
  const silverKey = silverManifestKey(build);
  const silver = SilverManifest.parse(JSON.parse(await readText(deps.lake, silverKey)));
  const lease = input.leaseHolder && {
    dataset: bronze.dataset,
    sourceId: bronze.sourceId,
    location: bronze.source.url ?? bronze.source.uri,
    holder: input.leaseHolder,
  };
  // A run that lost its lease (it stalled past the expiry and another took over) must not commit.
  const leaseDeps = { lake: deps.lake, clock: deps.clock, localProcess: deps.localLease };
  if (lease) await holdSourceLease(lease, leaseDeps, { mustHold: true });

  const current = await readCurrentVersion(deps.lake, bronze.dataset, bronze.sourceId);
  const tables = Object.fromEntries(
    Object.entries(silver.tables).flatMap(([name, table]) =>
      table.files.length > 0 ? [[name, table.files.map((file) => file.key)]] : [],
    ),
  );
  const previous = current?.record;
  const sameBuild =
    previous?.version === bronze.version &&
    previous.silverManifestKey === silverKey &&
    (previous.runId === bronze.runId || previous.seenAs.includes(bronze.runId));
  // These bytes were committed before under this config (the source went back to a version it had):
  // that build was reused (see planSilver), and the version becomes current again as it was committed,
  // its version record untouched, this run remembered as another sighting of it.
  const earlier = sameBuild
    ? undefined
    : await readVersionRecord(deps.lake, bronze.dataset, bronze.sourceId, bronze.version);
  if (earlier && earlier.silverManifestKey === silverKey) {
    const restored: SourceVersionRecord = {
      ...earlier,
      seenAs:
        earlier.runId === bronze.runId ? earlier.seenAs : [...new Set([...earlier.seenAs, bronze.runId])],
      ...(previous && previous.version !== earlier.version
        ? { replaced: { version: previous.version, committedAt: previous.committedAt } }
        : previous?.replaced && { replaced: previous.replaced }),
      ...(previous?.version !== earlier.version && { restoredAt: deps.clock.now().toISOString() }),
    };
    await restoreSourceVersion(deps.lake, restored, current);
    await deps.catalog?.publish(restored);
    if (lease) await releaseSourceLease(lease, leaseDeps);
    return {
      sourceId: restored.sourceId,
      version: restored.version,
      ...(previous && previous.version !== restored.version && { replaced: previous.version }),
      committed: true,
      record: restored,
    };
  }
  const record: SourceVersionRecord = sameBuild
    ? previous
    : {
        commitVersion: 1,
        dataset: bronze.dataset,
        sourceId: bronze.sourceId,
        version: bronze.version,
        sha256: bronze.source.sha256,
        uri: bronze.source.uri,
        ...(bronze.source.url !== undefined && { url: bronze.source.url }),
        size: bronze.source.size,
        runId: bronze.runId,
        bronzeManifestKey: input.bronzeManifestKey,
        datasetConfigSha256: bronze.datasetConfigSha256,
        silverManifestKey: silverKey,
        reconciliationKey: reconciliationKey(bronze.dataset, bronze.runId),
        tables,
        quality: input.quality,
        committedAt: deps.clock.now().toISOString(),
        seenAs: [],
        ...(previous && previous.version !== bronze.version
          ? { replaced: { version: previous.version, committedAt: previous.committedAt } }
          : previous?.replaced && { replaced: previous.replaced }),
      };
  if (!sameBuild) await commitSourceVersion(deps.lake, record, current);
  await deps.catalog?.publish(record);
  if (lease) await releaseSourceLease(lease, leaseDeps);
  return {
    sourceId: record.sourceId,
    version: record.version,
    ...(previous && previous.version !== record.version && { replaced: previous.version }),
    committed: !sameBuild,
    record,
  };
}
