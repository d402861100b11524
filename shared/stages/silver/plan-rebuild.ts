import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import {
  type DatasetConfig,
  ParseSettings,
  parseSettingsOf,
  recordTargets,
} from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { ConfigError } from '../../errors.ts';
import { buildOfSilverManifestKey, silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import { listCurrentVersions, readCurrentVersion } from '../../lake/source-commits.ts';
import {
  holdSourceLease,
  type LeaseProcess,
  leaseDepsOf,
  releaseSourceLease,
} from '../../lake/source-lease.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { RunLiveness } from '../../ports/run-liveness.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';

export interface PlanRebuildInput {
  readonly dataset: DatasetConfig;
  /** The committed source to rebuild (its source id). */
  readonly sourceId: string;
  /** Rebuild even when the source's current build is the one this config and contract make. */
  readonly force?: boolean;
  /**
   * Who holds the source's lease for this rebuild (the execution id, or `sluice rebuild`'s own): taken
   * here, renewed by nothing else until the commit, which must still hold it. Absent: no lease (tests).
   */
  readonly leaseHolder?: string;
}

export interface PlanRebuildDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** The contract silver is rebuilt under: with the bronze's config it names the new build. */
  readonly contract: SilverContract;
  /** The lease records this process (local runs; see `LeaseDeps.localProcess`). */
  readonly localLease?: LeaseProcess;
  readonly runLiveness?: RunLiveness;
}

/** What `planRebuild` decided: build silver again from this committed bronze, or nothing to do. */
export type RebuildPlan = RebuildNeeded | RebuildUnchanged;

interface RebuildFacts {
  readonly dataset: string;
  readonly sourceId: string;
  readonly version: string;
  /** The bronze run of the source's current version, and its manifest's key. */
  readonly runId: string;
  readonly manifestKey: string;
  /** The build this config and contract make (`silverBuildOf`). */
  readonly build: string;
  /** The build the source's current version was committed with. */
  readonly currentBuild: string;
  /** When the current version was committed. */
  readonly committedAt: string;
}

export interface RebuildNeeded extends RebuildFacts {
  readonly status: 'rebuild';
  readonly manifest: BronzeManifest;
}

export interface RebuildUnchanged extends RebuildFacts {
  readonly status: 'unchanged';
}

/**
 * The first step of a rebuild: silver and reconciliation built again for a source's committed bronze,
 * without reading the source (after a contract or config change, or to backfill a new table). Takes the
 * source's lease (`SourceBusyError` while another run holds it), reads its current version and that
 * version's bronze manifest, and decides: if the current build is the one this config and contract make,
 * the source is `unchanged` (unless `force`: the build is then planned again, and planSilver reuses its
 * committed files rather than rewrite them, so only its reconciliation and report are redone); else the
 * silver stages build it beside the current files, and the commit switches the source to it once its
 * reconciliation passed, as any run's commit does.
 *
 * Bronze holds the records of the config it was parsed under: a config that reads the file otherwise
 * (another format, record path, header path or CSV dialect) cannot be rebuilt from it (a `ConfigError`
 * saying to run the file again instead).
 */
export async function planRebuild(input: PlanRebuildInput, deps: PlanRebuildDeps): Promise<RebuildPlan> {
  const dataset = input.dataset.name;
  const before = await readCurrentVersion(deps.lake, dataset, input.sourceId);
  if (!before) throw await unknownSource(deps.lake, dataset, input.sourceId);
  const lease = input.leaseHolder && {
    dataset,
    sourceId: input.sourceId,
    location: before.record.url ?? before.record.uri,
    holder: input.leaseHolder,
  };
  const leaseDeps = leaseDepsOf(deps);
  if (lease) await holdSourceLease(lease, leaseDeps);
  try {
    // Read again under the lease: a run that held it may have committed another version meanwhile.
    const current = (await readCurrentVersion(deps.lake, dataset, input.sourceId)) ?? before;
    const { record } = current;
    const manifest = await readBronzeManifest(deps.lake, record.bronzeManifestKey);
    checkParsedAlike(input.dataset, manifest);
    const build = silverBuildOf(manifest, contractFingerprint(deps.contract)).build;
    const facts: RebuildFacts = {
      dataset,
      sourceId: input.sourceId,
      version: record.version,
      runId: manifest.runId,
      manifestKey: record.bronzeManifestKey,
      build,
      currentBuild: record.silverManifestKey ? buildOfSilverManifestKey(record.silverManifestKey) : '',
      committedAt: record.committedAt,
    };
    const same = record.silverManifestKey === silverManifestKey({ ...manifest, build });
    if (same && !input.force) {
      if (lease) await releaseSourceLease(lease, leaseDeps);
      return { ...facts, status: 'unchanged' };
    }
    return { ...facts, status: 'rebuild', manifest };
  } catch (error) {
    // Nothing was started: let the next run in (a failed rebuild's later stages release it as a run's do).
    if (lease) await releaseSourceLease(lease, leaseDeps);
    throw error;
  }
}

/** A source with no committed version: nothing to rebuild. Names the sources that have one. */
async function unknownSource(lake: ObjectStore, dataset: string, sourceId: string): Promise<ConfigError> {
  const known = (await listCurrentVersions(lake, dataset)).map((record) => record.sourceId);
  return new ConfigError(
    `${dataset}: source "${sourceId}" has no committed version in this lake, so there is nothing to rebuild. ` +
      ` ${
        known.length > 0
          ? `Committed sources: ${known.join(', ')}.`
          : 'The dataset has no committed source: run a file first (sluice run FILE).'
      }`,
  );
}

/**
 * The config must read the file as bronze was parsed, or silver would be built from other records than
 * the config names (a changed record path under the same stream name, another CSV delimiter) while
 * claiming to be this config's build. Manifests written before they recorded their parse settings are
 * checked by their record streams' names only.
 */
function checkParsedAlike(dataset: DatasetConfig, manifest: BronzeManifest): void {
  const parsed = manifest.parse;
  if (!parsed) {
    checkRecordStreams(dataset, manifest);
    return;
  }
  const wanted = ParseSettings.parse(parseSettingsOf(dataset)); // keys in the order a read manifest has them
  const settings = new Set([...Object.keys(parsed), ...Object.keys(wanted)] as (keyof ParseSettings)[]);
  const differences = [...settings]
    .filter((setting) => JSON.stringify(parsed[setting]) !== JSON.stringify(wanted[setting]))
    .map(
      (setting) =>
        `${setting} ${JSON.stringify(parsed[setting] ?? null)} → ${JSON.stringify(wanted[setting] ?? null)}`,
    );
  if (differences.length === 0) return;
  throw new ConfigError(
    `${dataset.name}: the config reads the file otherwise than the source's bronze was parsed (run ` +
      `${manifest.runId}; ${differences.join('; ')}): silver cannot be rebuilt from it. ` +
      'Run the file again instead (sluice run FILE), which parses it under this config.',
  );
}

/** The config's record streams must be those bronze was parsed into, or silver would miss records. */
function checkRecordStreams(dataset: DatasetConfig, manifest: BronzeManifest): void {
  const wanted = recordTargets(dataset)
    .map((target) => target.name)
    .sort();
  const parsed = Object.keys(manifest.records).sort();
  if (JSON.stringify(wanted) === JSON.stringify(parsed)) return;
  throw new ConfigError(
    `${dataset.name}: the config's record streams (${wanted.join(', ')}) are not those the source's bronze ` +
      `was parsed into (${parsed.join(', ')}, run ${manifest.runId}): silver cannot be rebuilt from it. ` +
      'Run the file again instead (sluice run FILE), which parses it under this config.',
  );
}
