import { createReadStream, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { storedColumns } from '../../contracts/silver/table.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ConfigError, PipelineError } from '../../errors.ts';
import { silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import {
  silverBucketResultKey,
  silverGroupFolder,
  silverGroupPartialsKey,
  silverGroupStatsKey,
  silverPlanKey,
  silverWorkPrefix,
} from '../../lake/silver-work-keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableWriterFactory } from '../../ports/table-writer.ts';
import type { S3Requests } from '../../workflow/run-cost.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';
import { type BuildSilverResult, commitSilverBuild } from './build-silver.ts';
import { quarantineTable } from './quarantine-table.ts';
import {
  buildSilverGroup,
  planSilverGroups,
  type SilverGroupPlan,
  type SilverGroupResult,
} from './silver-group.ts';
import { mergeSilverStats } from './silver-stats.ts';
import {
  BucketFile,
  type BucketSection,
  deleteUnder,
  GroupFile,
  mergeBucketOfPart,
  PlanFile,
  readWorkFile,
  type SectionIndex,
  silverBucketCount,
} from './silver-work-files.ts';
import type { LakeLocation } from './silver-worker-protocol.ts';

/**
 * A silver build as four workflow steps, so that no invocation needs a whole source's work:
 *
 *   PlanSilver    `planSilver`: how many groups of consecutive bronze parts (about `targetGroupBytes` of
 *                 uncompressed bronze each) and merge buckets K (`silverBucketCount`, from the bronze
 *                 bytes); uncommits any earlier build and clears its work prefix.
 *   SilverGroup   `buildSilverGroupToLake`, once per group (a Map item; a worker thread locally): the
 *                 group's part range follows from the bronze manifest, the group count and its index
 *                 alone; its partial Parquet files (keyed tables' rows split into the K buckets by a hash
 *                 of the key) go to the lake as one object, bucket by bucket, under
 *                 `silver/<dataset>/_work/<run>/group-NNNNN/`, its stats last. A rerun rewrites the same keys.
 *   SilverBucket  `mergeSilverBucket` (./silver-bucket.ts), once per bucket (a Map item): its byte range of
 *                 each group's object, merged and deduplicated into the bucket's file of each table.
 *   Silver        `mergeSilver`: the groups' stats and the buckets' files into the manifest, committed as
 *                 `buildSilver` commits; then the work prefix is removed.
 */

/** Bronze (uncompressed) a group of parts is planned to hold on AWS: well within one Lambda's 15 minutes. */
export const DEFAULT_SILVER_GROUP_TARGET_BYTES = 1536 * 1024 * 1024;
/** Most groups a build is split into (items of one inline Map, each a few history events). */
export const MAX_SILVER_GROUPS = 1000;

export interface PlanSilverInput {
  readonly bronzeManifestKey: string;
}

export interface PlanSilverOptions {
  /** Uncompressed bronze bytes per group. @default DEFAULT_SILVER_GROUP_TARGET_BYTES */
  readonly targetGroupBytes?: number;
  /** At least this many groups, parts permitting (locally: one per core). @default 1 */
  readonly minGroups?: number;
  /** @default MAX_SILVER_GROUPS */
  readonly maxGroups?: number;
  /** Uncompressed bronze bytes per merge bucket. @default DEFAULT_SILVER_BUCKET_TARGET_BYTES */
  readonly targetBucketBytes?: number;
  /** @default MAX_SILVER_BUCKETS */
  readonly maxBuckets?: number;
}

export interface PlanSilverDeps extends PlanSilverOptions {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** The contract the build is for: with the bronze's config, it names the build (`silverBuildOf`). */
  readonly contract: SilverContract;
}

export interface SilverPlan {
  readonly runId: string;
  readonly dataset: string;
  /**
   * Groups of the build; each one's parts are `planSilverGroups(parts, groupCount)[group]`. 0 when the
   * build is committed already (an earlier run stopped after it): the merge then only cleans up.
   */
  readonly groupCount: number;
  /** Merge buckets of the build (K); 0 when the build is committed already. */
  readonly bucketCount: number;
  readonly partsTotal: number;
  /** Groups an earlier, interrupted attempt at the same plan finished, which are not built again. */
  readonly groupsDone: number;
  /** The build was committed by an earlier run: nothing to build. */
  readonly reused: boolean;
}

/** How many groups the parts make: by bytes, at least `minGroups`, at most `maxGroups` and one per part. */
export function silverGroupCount(
  parts: readonly { readonly uncompressedBytes: number }[],
  options: PlanSilverOptions = {},
): number {
  const total = parts.reduce((sum, part) => sum + part.uncompressedBytes, 0);
  const target = options.targetGroupBytes ?? DEFAULT_SILVER_GROUP_TARGET_BYTES;
  const byBytes = Math.ceil(total / Math.max(1, target));
  const wanted = Math.max(byBytes, Math.floor(options.minGroups ?? 1));
  return Math.max(1, Math.min(wanted, options.maxGroups ?? MAX_SILVER_GROUPS, parts.length));
}

/**
 * Plans a build in groups and buckets. A build committed already for these bytes is reused
 * (groupCount 0); a plan of an interrupted attempt with the same groups and buckets is kept, with the
 * work it finished; anything else starts over, its work removed first.
 */
export async function planSilver(input: PlanSilverInput, deps: PlanSilverDeps): Promise<SilverPlan> {
  const startedAt = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const { build } = silverBuildOf(bronze, contractFingerprint(deps.contract));
  const manifestKey = silverManifestKey({ ...bronze, build });
  const committed = await readJsonIfValid(deps.lake, manifestKey, SilverManifest);
  // The build's key names the source, the bytes' version, the config and the contract: a manifest there is a complete
  // build of these very bytes, by this run or an earlier one (a source reverted to a version it had).
  // Reusing it keeps that version's committed files as they were, rather than rewriting them in place.
  if (committed) {
    return {
      runId,
      dataset,
      groupCount: 0,
      bucketCount: 0,
      partsTotal: bronze.parts.length,
      groupsDone: 0,
      reused: true,
    };
  }
  await deps.lake.delete(manifestKey);
  const groupCount = silverGroupCount(bronze.parts, deps);
  const bucketCount = silverBucketCount(bronze.parts, deps);
  const groups = planSilverGroups(bronze.parts, groupCount);
  const earlier = await readJsonIfValid(deps.lake, silverPlanKey(dataset, runId), PlanFile);
  const samePlan =
    earlier?.bronzeManifestKey === input.bronzeManifestKey &&
    earlier.build === build &&
    earlier.bucketCount === bucketCount &&
    JSON.stringify(earlier.groups) === JSON.stringify(groups);
  let groupsDone = 0;
  if (samePlan) {
    for (const group of groups) if (await finishedGroup(deps.lake, bronze, group, bucketCount)) groupsDone++;
  } else {
    await deleteUnder(deps.lake, silverWorkPrefix(dataset, runId));
    const plan: PlanFile = {
      startedAt: startedAt.toISOString(),
      bronzeManifestKey: input.bronzeManifestKey,
      build,
      groupCount: groups.length,
      groups,
      bucketCount,
    };
    await deps.lake.write(silverPlanKey(dataset, runId), `${JSON.stringify(plan, null, 2)}\n`, {
      contentType: 'application/json',
    });
  }
  return {
    runId,
    dataset,
    groupCount: groups.length,
    bucketCount,
    partsTotal: bronze.parts.length,
    groupsDone,
    reused: false,
  };
}

/** A group's stats, if an earlier attempt finished it (its stats are written after its files). */
async function finishedGroup(
  lake: ObjectStore,
  bronze: { readonly runId: string; readonly dataset: string },
  plan: SilverGroupPlan,
  bucketCount: number,
): Promise<GroupFile | undefined> {
  const done = await readJsonIfValid(
    lake,
    silverGroupStatsKey(bronze.dataset, bronze.runId, plan.index),
    GroupFile,
  );
  return done &&
    done.firstPart === plan.firstPart &&
    done.endPart === plan.endPart &&
    done.bucketCount === bucketCount
    ? done
    : undefined;
}

export interface SilverGroupInput {
  readonly bronzeManifestKey: string;
  /** This group's index, from 0. */
  readonly group: number;
  /** The plan's group count. */
  readonly groupCount: number;
  /** The plan's merge buckets (K): every group of a build must split its rows the same way. */
  readonly bucketCount: number;
}

/** Running a group in a worker thread (locally): what the worker needs to rebuild the lake and contract. */
export interface SilverGroupWorker {
  readonly datasetConfig?: DatasetConfig;
  readonly lakeLocation?: LakeLocation;
  /** DuckDB `memory_limit` of the worker's writer. @default '256MB' */
  readonly memoryLimit?: string;
  /** The S3 requests the worker made through its own store: its invocation's, to be counted. */
  readonly onRequests?: (requests: S3Requests) => void;
}

export interface SilverGroupDeps {
  readonly lake: ObjectStore;
  readonly contract: SilverContract;
  /** Writer of the group's partial files, in this thread (a Lambda's: `partial: true`). */
  readonly createTableWriter: TableWriterFactory;
  /** Local scratch space; the group's files are removed from it once uploaded. */
  readonly workDir: string;
  /** Run the group in a worker thread, when the lake and contract allow it; else it runs here. */
  readonly worker?: SilverGroupWorker;
  readonly onPart?: (records: number) => void;
  /** Stops the group at its next part. */
  readonly signal?: AbortSignal;
}

export interface SilverGroupSummary {
  readonly group: number;
  readonly firstPart: number;
  readonly endPart: number;
  /** Records the group read (accepted or quarantined). */
  readonly records: number;
  /** The worker thread that built it (absent: the calling thread). */
  readonly threadId?: number;
}

/** Builds one group of a planned build and stores its partial files and stats in the lake. */
export async function buildSilverGroupToLake(
  input: SilverGroupInput,
  deps: SilverGroupDeps,
): Promise<SilverGroupSummary> {
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const plans = planSilverGroups(bronze.parts, input.groupCount);
  const plan = plans[input.group];
  if (!plan || plans.length !== input.groupCount) {
    throw new ConfigError(
      `silver group ${input.group} of ${input.groupCount}: the bronze run has ${bronze.parts.length} part(s), ` +
        `which make ${plans.length} group(s)`,
    );
  }
  const done = await finishedGroup(deps.lake, bronze, plan, input.bucketCount);
  if (done) {
    // Finished by an earlier attempt of the same plan (a crash or a kill after it): not built again.
    const records = Object.values(done.stats.records).reduce((n, r) => n + r.accepted + r.quarantined, 0);
    deps.onPart?.(records);
    return { group: plan.index, ...range(plan), records };
  }
  const workDir = join(deps.workDir, `silver-${runId}`, silverGroupFolder(plan.index));
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const result = await buildGroup(input, bronze, plan, workDir, deps);
    const tableOrder = [...deps.contract.tables, quarantineTable].map((table) => table.name);
    const bundle = bundlePartials(result, tableOrder, (batch) =>
      mergeBucketOfPart(plan.firstPart + batch, bronze.parts.length, input.bucketCount),
    );
    const partialsKey = silverGroupPartialsKey(dataset, runId, plan.index);
    if (bundle.length > 0) {
      await deps.lake.write(partialsKey, Readable.from(bundleBytes(bundle)), {
        contentType: 'application/octet-stream',
      });
    } else {
      await deps.lake.delete(partialsKey);
    }
    const stats: GroupFile = {
      group: plan.index,
      ...range(plan),
      bucketCount: input.bucketCount,
      tables: Object.fromEntries(
        Object.entries(result.tables).map(([name, t]) => [
          name,
          { rowsIn: t.rowsIn, rowsWritten: t.rowsWritten },
        ]),
      ),
      ...(bundle.length > 0 && { partialsKey }),
      sections: bundle.map(({ bucket, offset, length }) => ({ bucket, offset, length })),
      ...bucketHashOf(result),
      stats: result.stats,
    };
    await deps.lake.write(
      silverGroupStatsKey(dataset, runId, plan.index),
      `${JSON.stringify(stats, null, 2)}\n`,
      { contentType: 'application/json' },
    );
    const records = Object.values(result.stats.records).reduce((n, r) => n + r.accepted + r.quarantined, 0);
    return {
      group: plan.index,
      ...range(plan),
      records,
      ...(result.threadId !== undefined && { threadId: result.threadId }),
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

const range = (plan: SilverGroupPlan) => ({ firstPart: plan.firstPart, endPart: plan.endPart });

/** What split the group's rows into buckets, as its stats record it (one for all of its tables). */
function bucketHashOf(result: SilverGroupResult): { bucketHash?: string } {
  const hashes = new Set(Object.values(result.tables).flatMap((t) => t.bucketHash ?? []));
  if (hashes.size > 1) {
    throw new PipelineError(
      `silver group ${result.index}: its tables were split by ${[...hashes].join(' and ')}`,
    );
  }
  const [bucketHash] = hashes;
  return bucketHash === undefined ? {} : { bucketHash };
}

/** A bucket's section of a group's bundle: its index and files, and where it lies in the bundle. */
interface Section extends BucketSection {
  readonly header: Buffer;
  readonly files: readonly string[];
}

/**
 * The group's partial files as the sections of its bundle (see `SectionIndex`), in bucket order; in a
 * section, table by table (contract order), then batch by batch. A file not split by key goes to the
 * bucket of its bronze part (`bucketOfBatch`).
 */
function bundlePartials(
  result: SilverGroupResult,
  tableOrder: readonly string[],
  bucketOfBatch: (batch: number) => number,
): Section[] {
  const byBucket = new Map<number, { table: string; tableIndex: number; batch: number; file: string }[]>();
  for (const [tableIndex, table] of tableOrder.entries()) {
    for (const partial of result.tables[table]?.files ?? []) {
      const bucket = partial.bucket ?? bucketOfBatch(partial.batch);
      const entries = byBucket.get(bucket) ?? [];
      entries.push({ table, tableIndex, batch: partial.batch, file: partial.file });
      byBucket.set(bucket, entries);
    }
  }
  let offset = 0;
  return [...byBucket.keys()]
    .sort((a, b) => a - b)
    .map((bucket) => {
      const entries = byBucket.get(bucket)!;
      entries.sort((a, b) => a.tableIndex - b.tableIndex || a.batch - b.batch);
      const index: SectionIndex = entries.map(({ table, batch, file }) => ({
        table,
        batch,
        length: statSync(file).size,
      }));
      const json = Buffer.from(JSON.stringify(index));
      const header = Buffer.alloc(4 + json.length);
      header.writeUInt32BE(json.length, 0);
      json.copy(header, 4);
      const length = header.length + index.reduce((n, e) => n + e.length, 0);
      const section = { bucket, offset, length, header, files: entries.map((e) => e.file) };
      offset += length;
      return section;
    });
}

/** The bundle's bytes: each section's header, then its files. */
async function* bundleBytes(sections: readonly Section[]): AsyncGenerator<Buffer> {
  for (const section of sections) {
    yield section.header;
    for (const file of section.files) yield* createReadStream(file);
  }
}

/** The group's partial files, built in a worker thread when asked and possible, else in this one. */
async function buildGroup(
  input: SilverGroupInput,
  bronze: Awaited<ReturnType<typeof readBronzeManifest>>,
  plan: SilverGroupPlan,
  workDir: string,
  deps: SilverGroupDeps,
): Promise<SilverGroupResult> {
  const { bronzeManifestKey, bucketCount } = input;
  if (deps.worker) {
    // Loaded only here: the worker machinery is for local runs, the Lambda builds inline.
    const { runSilverGroupsInWorkers, silverWorkerTasks } = await import('./silver-workers.ts');
    const tasks = silverWorkerTasks([plan], {
      bronzeManifestKey,
      bronze,
      lake: deps.lake,
      contract: deps.contract,
      datasetConfig: deps.worker.datasetConfig,
      lakeLocation: deps.worker.lakeLocation,
      workDirOf: () => workDir,
      memoryLimit: deps.worker.memoryLimit ?? '256MB',
      buckets: bucketCount,
    });
    if (tasks) {
      const [result] = await runSilverGroupsInWorkers(tasks, deps.onPart, deps.signal);
      if (result?.s3Requests) deps.worker.onRequests?.(result.s3Requests);
      return result!;
    }
  }
  return buildSilverGroup(
    { bronzeManifestKey, group: plan, buckets: bucketCount },
    {
      lake: deps.lake,
      contract: deps.contract,
      createTableWriter: deps.createTableWriter,
      workDir,
      bronze,
      onPart: deps.onPart,
      signal: deps.signal,
    },
  );
}

export interface MergeSilverInput {
  readonly bronzeManifestKey: string;
  readonly groupCount: number;
  readonly bucketCount: number;
}

export interface MergeSilverDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
}

/**
 * The commit of a build in groups and buckets: the groups' stats in group order and the buckets' table
 * files in bucket order into the manifest, committed as `buildSilver` commits; then the work prefix goes.
 * Every bucket must have been merged (`SilverBucket`). A commit that finds its build committed already
 * (a retry after the commit) only finishes the clean-up.
 */
export async function mergeSilver(
  input: MergeSilverInput,
  deps: MergeSilverDeps,
): Promise<BuildSilverResult> {
  const mergeStarted = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const workPrefix = silverWorkPrefix(dataset, runId);
  const manifestKey = silverManifestKey(silverBuildOf(bronze, contractFingerprint(deps.contract)));
  // A manifest here is a complete build of these bytes: this run's (an earlier attempt committed it), or
  // an earlier run's of the same bytes (see planSilver). Either way it is the result.
  const committed = await readJsonIfValid(deps.lake, manifestKey, SilverManifest);
  if (committed) {
    await deleteUnder(deps.lake, workPrefix);
    return { manifestKey, manifest: committed };
  }
  const plan = await readPlan(deps.lake, bronze, input);
  const groups = await readGroups(deps.lake, bronze, plan);
  const buckets: BucketFile[] = [];
  for (let bucket = 0; bucket < plan.bucketCount; bucket++) {
    const key = silverBucketResultKey(dataset, runId, bucket);
    const done = await readWorkFile(deps.lake, key, BucketFile, `result of merge bucket ${bucket}`);
    if (done.bucketCount !== plan.bucketCount || done.bronzeManifestKey !== input.bronzeManifestKey) {
      throw new PipelineError(
        `silver commit of ${runId}: merge bucket ${bucket} (${key}) belongs to another plan; rerun the silver stage`,
      );
    }
    buckets.push(done);
  }
  const tables: SilverManifest['tables'] = {};
  for (const table of [...deps.contract.tables, quarantineTable]) {
    const rowsIn = groups.reduce((sum, group) => sum + (group.tables[table.name]?.rowsIn ?? 0), 0);
    const files = buckets.flatMap((bucket) => {
      const t = bucket.tables[table.name];
      return t?.key && t.sha256 !== undefined
        ? [{ key: t.key, rows: t.rowsWritten, bytes: t.bytes, sha256: t.sha256 }]
        : [];
    });
    const rowsWritten = files.reduce((sum, file) => sum + file.rows, 0);
    // A key's rows all sit in one bucket: the buckets' counts add up.
    const conflictingKeys = buckets.reduce((sum, b) => sum + (b.tables[table.name]?.conflictingKeys ?? 0), 0);
    tables[table.name] = {
      rowsIn,
      rowsWritten,
      duplicates: rowsIn - rowsWritten,
      ...(conflictingKeys > 0 && { conflictingKeys }),
      bytes: files.reduce((sum, file) => sum + file.bytes, 0),
      files,
      ...(files.length === 0 && { columns: storedColumns(table) }),
    };
  }
  const started = new Date(plan.startedAt);
  const result = await commitSilverBuild(
    {
      bronzeManifestKey: input.bronzeManifestKey,
      bronze,
      startedAt: Number.isNaN(started.getTime()) ? mergeStarted : started,
      tables,
    },
    { ...deps, stats: mergeSilverStats(groups.map((group) => group.stats)) },
  );
  await deleteUnder(deps.lake, workPrefix);
  return result;
}

/** The build's plan, which must be the one the event names (group and bucket counts). */
export async function readPlan(
  lake: ObjectStore,
  bronze: { readonly runId: string; readonly dataset: string },
  expected: { readonly groupCount: number; readonly bucketCount: number },
): Promise<PlanFile> {
  const plan = await readWorkFile(lake, silverPlanKey(bronze.dataset, bronze.runId), PlanFile, 'plan');
  if (plan.groupCount !== expected.groupCount || plan.bucketCount !== expected.bucketCount) {
    throw new PipelineError(
      `silver build of ${bronze.runId}: the event names ${expected.groupCount} group(s) and ` +
        `${expected.bucketCount} bucket(s), the plan ${plan.groupCount} and ${plan.bucketCount}; rerun the silver stage`,
    );
  }
  return plan;
}

/** Every group's stats, in group order, each checked against the plan. */
export async function readGroups(
  lake: ObjectStore,
  bronze: { readonly runId: string; readonly dataset: string },
  plan: PlanFile,
): Promise<GroupFile[]> {
  const groups: GroupFile[] = [];
  for (let index = 0; index < plan.groupCount; index++) {
    const key = silverGroupStatsKey(bronze.dataset, bronze.runId, index);
    const group = await readWorkFile(lake, key, GroupFile, `stats of group ${index}`);
    // A straggler of an earlier build (another group or bucket count) must not be merged into this one.
    const planned = plan.groups[index];
    if (
      !planned ||
      group.firstPart !== planned.firstPart ||
      group.endPart !== planned.endPart ||
      group.bucketCount !== plan.bucketCount
    ) {
      throw new PipelineError(
        `silver build of ${bronze.runId}: group ${index} covers parts [${group.firstPart}, ${group.endPart}) ` +
          `in ${group.bucketCount} bucket(s), the plan [${planned?.firstPart}, ${planned?.endPart}) in ` +
          `${plan.bucketCount}; rerun the silver stage`,
      );
    }
    groups.push(group);
  }
  // A key's duplicates share a bucket only if every group hashed its keys alike (a deployment that
  // changed DuckDB in the middle of a build would break that silently).
  const hashes = [...new Set(groups.flatMap((group) => group.bucketHash ?? []))];
  if (hashes.length > 1) {
    throw new PipelineError(
      `silver build of ${bronze.runId}: its groups split rows into buckets by different hashes ` +
        `(${hashes.join(', ')}), so duplicates could sit in two buckets; rerun the silver stage from PlanSilver`,
    );
  }
  return groups;
}
