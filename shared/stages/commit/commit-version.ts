import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { PipelineError } from '../../errors.ts';
import {
  buildOfSilverManifestKey,
  reconciliationKey,
  reportKeyBeside,
  silverBuildOf,
  silverManifestKey,
} from '../../lake/keys.ts';
import {
  becameCurrentAt,
  type CurrentVersion,
  commitSourceVersion,
  readCurrentVersion,
  readVersionRecord,
  restoreSourceVersion,
  type SourceVersionRecord,
} from '../../lake/source-commits.ts';
import { holdSourceLease, type LeaseProcess, releaseSourceLease } from '../../lake/source-lease.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { SourceCatalog } from '../../ports/source-catalog.ts';
import { readBronzeManifest, readText } from '../bronze/read-bronze.ts';
import { runLeaseRef } from '../run-lease.ts';

export interface CommitVersionInput {
  readonly bronzeManifestKey: string;
  /** The quality score of the reconciliation that passed. */
  readonly quality: number;
  /** The run's lease holder: the lease must still be this run's, and is released after the commit. */
  readonly leaseHolder?: string;
  /**
   * A rebuild: the version and build that were current when it was planned (`PlanRebuild`). The commit
   * refuses (`SourceChangedError`) unless the source's current record is still that one, so a rebuild
   * never puts an older version back over one that a run committed meanwhile.
   */
  readonly rebuildOf?: { readonly version: string; readonly build: string };
  /** Where this build's reconciliation report is: the version record names it. @default the run's */
  readonly reconciliationKey?: string;
}

export interface CommitVersionDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** The contract the run's silver was built under: with the bronze's config, it names the build. */
  readonly contract: SilverContract;
  /** The query engine's catalog (Glue on AWS), moved to the new version after the commit. */
  readonly catalog?: SourceCatalog;
  /** The lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: LeaseProcess;
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
  const lease = input.leaseHolder && runLeaseRef(bronze, input.leaseHolder);
  // Read once: the commit below is conditional on this very record (its etag), and a rebuild checks that
  // it is still the one it rebuilt.
  const current = await readCurrentVersion(deps.lake, bronze.dataset, bronze.sourceId);
  if (input.rebuildOf) checkRebuiltCurrent(input.rebuildOf, current, silverKey, bronze);
  // A run that lost its lease (it stalled past the expiry and another took over) must not commit.
  const leaseDeps = { lake: deps.lake, clock: deps.clock, localProcess: deps.localLease };
  if (lease) await holdSourceLease(lease, leaseDeps, { mustHold: true });

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
    await adoptRebuildEvidence(deps.lake, input, bronze);
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
        reconciliationKey: input.reconciliationKey ?? reconciliationKey(bronze.dataset, bronze.runId),
        tables,
        quality: input.quality,
        committedAt: deps.clock.now().toISOString(),
        // Another build of the current version (a rebuild): it stays as current as it was, not newer.
        ...(previous?.version === bronze.version && { currentSince: becameCurrentAt(previous) }),
        seenAs: [],
        ...(previous && previous.version !== bronze.version
          ? { replaced: { version: previous.version, committedAt: previous.committedAt } }
          : previous?.replaced && { replaced: previous.replaced }),
      };
  if (!sameBuild) await commitSourceVersion(deps.lake, record, current);
  await adoptRebuildEvidence(deps.lake, input, bronze);
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

/**
 * A committed rebuild's evidence (its own folder, `rebuildEvidencePrefix`) becomes the run's too: the
 * run's reconciliation.json and report.html describe the build readers see. The version record names the
 * rebuild's own copy, written before the commit; these copies follow it (a retried commit copies again).
 */
async function adoptRebuildEvidence(
  lake: ObjectStore,
  input: CommitVersionInput,
  bronze: { readonly dataset: string; readonly runId: string },
): Promise<void> {
  const runKey = reconciliationKey(bronze.dataset, bronze.runId);
  if (input.reconciliationKey === undefined || input.reconciliationKey === runKey) return;
  for (const [from, to] of [
    [input.reconciliationKey, runKey],
    [reportKeyBeside(input.reconciliationKey), reportKeyBeside(runKey)],
  ] as const) {
    const text = await readText(lake, from);
    await lake.write(to, text, {
      contentType: to.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/json',
    });
  }
}

/**
 * A rebuild found the source changed since it was planned: another version (or another build of it) is
 * current now. Nothing was committed: the rebuild's files stay where they are, unreferenced.
 */
export class SourceChangedError extends PipelineError {
  override name = 'SourceChangedError';
}

/** The current record must be the one the rebuild was planned on (or this build: a retried commit). */
function checkRebuiltCurrent(
  planned: NonNullable<CommitVersionInput['rebuildOf']>,
  current: CurrentVersion | undefined,
  silverKey: string,
  bronze: { readonly dataset: string; readonly sourceId: string; readonly version: string },
): void {
  const record = current?.record;
  const build = record?.silverManifestKey ? buildOfSilverManifestKey(record.silverManifestKey) : '';
  if (
    record?.version === planned.version &&
    (build === planned.build || record.silverManifestKey === silverKey)
  ) {
    return;
  }
  const now = record
    ? record.version === planned.version
      ? `build ${build} of version ${record.version} is current now (committed ${record.committedAt})`
      : `a newer version, ${record.version}, is current now (committed ${record.committedAt} by run ${record.runId})`
    : 'the source has no current version now';
  throw new SourceChangedError(
    `${bronze.dataset} source ${bronze.sourceId}: the rebuild of version ${planned.version} (build ` +
      `${planned.build} when it was planned) was not committed: ${now}. Its files were left uncommitted ` +
      'and readers still see the current version. Rebuild again to rebuild the current version ' +
      `(sluice rebuild --source ${bronze.sourceId}).`,
  );
}
