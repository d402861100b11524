import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ConfigError, ObjectNotFoundError, PipelineError } from '../../errors.ts';
import { silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import { readJsonIfValid } from '../../lake/read-json.ts';
import {
  silverGroupFolder,
  silverGroupPrefix,
  silverGroupStatsKey,
  silverPlanKey,
  silverWorkPrefix,
} from '../../lake/silver-work-keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TablePartialsMerger, TableWriterFactory } from '../../ports/table-writer.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';
import { type BuildSilverResult, commitSilverBuild, mergeGroups } from './build-silver.ts';
import { quarantineTable } from './quarantine-table.ts';
import {
  buildSilverGroup,
  planSilverGroups,
  type SilverGroupPlan,
  type SilverGroupResult,
} from './silver-group.ts';
import { mergeSilverStats, type SilverStats } from './silver-stats.ts';
import { type LakeLocation, lakeLocationOf } from './silver-worker-protocol.ts';

/**
 * A silver build as three workflow steps, for a source too large for one Lambda invocation:
 *
 *   PlanSilver   `planSilver`: how many groups of consecutive bronze parts (about `targetGroupBytes` of
 *                uncompressed bronze each); uncommits any earlier build and clears its work prefix.
 *   SilverGroup  `buildSilverGroupToLake`, once per group (a Map item; a worker thread locally): the
 *                group's part range follows from the bronze manifest, the group count and its index
 *                alone; its partial Parquet files and its stats (written last) go to the lake under
 *                `silver/<dataset>/_work/<run>/group-NNNNN/`. A rerun rewrites the same keys.
 *   Silver       `mergeSilver`: one DuckDB merge of every group's partial files, stats merged in group
 *                order, the tables and the manifest committed as `buildSilver` commits them (the same
 *                bytes), then the work prefix removed.
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
}

export interface PlanSilverDeps extends PlanSilverOptions {
  readonly lake: ObjectStore;
  readonly clock: Clock;
}

export interface SilverPlan {
  readonly runId: string;
  readonly dataset: string;
  /**
   * Groups of the build; each one's parts are `planSilverGroups(parts, groupCount)[group]`. 0 when the
   * build is committed already (an earlier run stopped after it): the merge then only cleans up.
   */
  readonly groupCount: number;
  readonly partsTotal: number;
  /** Groups an earlier, interrupted attempt at the same plan finished, which are not built again. */
  readonly groupsDone: number;
  /** The build was committed by an earlier run: nothing to build. */
  readonly reused: boolean;
}

/**
 * What `PlanSilver` leaves in the work prefix: when the build started (for the manifest's timings), and
 * the bronze run and groups planned, so a rerun of the same plan keeps the groups already built.
 */
const PlanFile = z.object({
  startedAt: z.string(),
  bronzeManifestKey: z.string().optional(),
  groupCount: z.number().int().positive(),
  groups: z.array(z.object({ index: z.number(), firstPart: z.number(), endPart: z.number() })),
});

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
 * Plans a build in groups. A build committed already for these bytes is reused (groupCount 0); a
 * plan of an interrupted attempt with the same groups is kept, with the groups it finished; anything
 * else starts over, its work removed first.
 */
export async function planSilver(input: PlanSilverInput, deps: PlanSilverDeps): Promise<SilverPlan> {
  const startedAt = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const manifestKey = silverManifestKey(silverBuildOf(bronze));
  const committed = await readJsonIfValid(deps.lake, manifestKey, SilverManifest);
  // The build's key names the source, the bytes' version and the config: a manifest there is a complete
  // build of these very bytes, by this run or an earlier one (a source reverted to a version it had).
  // Reusing it keeps that version's committed files as they were, rather than rewriting them in place.
  if (committed) {
    return { runId, dataset, groupCount: 0, partsTotal: bronze.parts.length, groupsDone: 0, reused: true };
  }
  await deps.lake.delete(manifestKey);
  const groupCount = silverGroupCount(bronze.parts, deps);
  const groups = planSilverGroups(bronze.parts, groupCount);
  const earlier = await readJsonIfValid(deps.lake, silverPlanKey(dataset, runId), PlanFile);
  const samePlan =
    earlier?.bronzeManifestKey === input.bronzeManifestKey &&
    JSON.stringify(earlier.groups) === JSON.stringify(groups);
  let groupsDone = 0;
  if (samePlan) {
    for (const group of groups) if (await finishedGroup(deps.lake, bronze, group)) groupsDone++;
  } else {
    await deleteUnder(deps.lake, silverWorkPrefix(dataset, runId));
    const plan = {
      startedAt: startedAt.toISOString(),
      bronzeManifestKey: input.bronzeManifestKey,
      groupCount: groups.length,
      groups,
    };
    await deps.lake.write(silverPlanKey(dataset, runId), `${JSON.stringify(plan, null, 2)}\n`, {
      contentType: 'application/json',
    });
  }
  return {
    runId,
    dataset,
    groupCount: groups.length,
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
): Promise<GroupFile | undefined> {
  const done = await readJsonIfValid(
    lake,
    silverGroupStatsKey(bronze.dataset, bronze.runId, plan.index),
    GroupFile,
  );
  return done && done.firstPart === plan.firstPart && done.endPart === plan.endPart ? done : undefined;
}

export interface SilverGroupInput {
  readonly bronzeManifestKey: string;
  /** This group's index, from 0. */
  readonly group: number;
  /** The plan's group count. */
  readonly groupCount: number;
}

/** Running a group in a worker thread (locally): what the worker needs to rebuild the lake and contract. */
export interface SilverGroupWorker {
  readonly datasetConfig?: DatasetConfig;
  readonly lakeLocation?: LakeLocation;
  /** DuckDB `memory_limit` of the worker's writer. @default '256MB' */
  readonly memoryLimit?: string;
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

/** What a group leaves under its work prefix (`_stats.json`), written after its partial files. */
const GroupFile = z.object({
  group: z.number().int().nonnegative(),
  firstPart: z.number().int().nonnegative(),
  endPart: z.number().int().nonnegative(),
  tables: z.record(
    z.string(),
    z.object({ rowsIn: z.number(), rowsWritten: z.number(), keys: z.array(z.string()) }),
  ),
  /** Written by `buildSilverGroupToLake` itself: checked for its shape only. */
  stats: z.custom<SilverStats>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as SilverStats).records === 'object' &&
      Array.isArray((value as SilverStats).violations) &&
      Array.isArray((value as SilverStats).drift),
    { error: 'expected the stats of a silver group' },
  ),
});
type GroupFile = z.infer<typeof GroupFile>;

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
  const done = await finishedGroup(deps.lake, bronze, plan);
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
    const result = await buildGroup(input.bronzeManifestKey, bronze, plan, workDir, deps);
    const prefix = silverGroupPrefix(dataset, runId, plan.index);
    const tables: GroupFile['tables'] = {};
    for (const [name, table] of Object.entries(result.tables)) {
      const keys: string[] = [];
      for (const file of table.files) {
        const key = `${prefix}${relative(workDir, file).split(sep).join('/')}`;
        await deps.lake.write(key, createReadStream(file), {
          contentType: 'application/vnd.apache.parquet',
        });
        keys.push(key);
      }
      tables[name] = { rowsIn: table.rowsIn, rowsWritten: table.rowsWritten, keys };
    }
    const stats: GroupFile = { group: plan.index, ...range(plan), tables, stats: result.stats };
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

/** The group's partial files, built in a worker thread when asked and possible, else in this one. */
async function buildGroup(
  bronzeManifestKey: string,
  bronze: Awaited<ReturnType<typeof readBronzeManifest>>,
  plan: SilverGroupPlan,
  workDir: string,
  deps: SilverGroupDeps,
): Promise<SilverGroupResult> {
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
    });
    if (tasks) {
      const [result] = await runSilverGroupsInWorkers(tasks, deps.onPart, deps.signal);
      return result!;
    }
  }
  return buildSilverGroup(
    { bronzeManifestKey, group: plan },
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
}

export interface MergeSilverDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
  /** Local scratch space: partial files downloaded (unless the lake is a local folder), merged tables. */
  readonly workDir: string;
  /** @default DuckDB's `mergeParquetPartials` */
  readonly mergeTables?: TablePartialsMerger;
}

/**
 * The merge of a planned build: every group's partial files into the tables, the groups' stats in group
 * order into the manifest, committed as `buildSilver` commits; then the work prefix goes. A merge that
 * finds its build committed already (a retry after the commit) only finishes the clean-up.
 */
export async function mergeSilver(
  input: MergeSilverInput,
  deps: MergeSilverDeps,
): Promise<BuildSilverResult> {
  const mergeStarted = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const workPrefix = silverWorkPrefix(dataset, runId);
  const manifestKey = silverManifestKey(silverBuildOf(bronze));
  // A manifest here is a complete build of these bytes: this run's (an earlier attempt committed it), or
  // an earlier run's of the same bytes (see planSilver). Either way it is the result.
  if (await deps.lake.head(manifestKey)) {
    const manifest = SilverManifest.parse(JSON.parse(await readText(deps.lake, manifestKey)));
    await deleteUnder(deps.lake, workPrefix);
    return { manifestKey, manifest };
  }
  const plan = PlanFile.parse(JSON.parse(await readText(deps.lake, silverPlanKey(dataset, runId), 'plan')));
  if (plan.groupCount !== input.groupCount) {
    throw new PipelineError(
      `silver merge of ${runId}: the event names ${input.groupCount} group(s), the plan ${plan.groupCount}`,
    );
  }
  const tables = [...deps.contract.tables, quarantineTable];
  const local = lakeLocationOf(deps.lake);
  const workDir = join(deps.workDir, `silver-${runId}`, 'merge');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const groups: SilverGroupResult[] = [];
    for (let index = 0; index < input.groupCount; index++) {
      const key = silverGroupStatsKey(dataset, runId, index);
      const group = GroupFile.parse(JSON.parse(await readText(deps.lake, key, `group ${index}`)));
      // A straggler of an earlier build (another group count) must not be merged into this one.
      const planned = plan.groups[index];
      if (!planned || group.firstPart !== planned.firstPart || group.endPart !== planned.endPart) {
        throw new PipelineError(
          `silver merge of ${runId}: group ${index} covers parts [${group.firstPart}, ${group.endPart}), ` +
            `the plan [${planned?.firstPart}, ${planned?.endPart}); rerun the silver stage`,
        );
      }
      const groupTables: SilverGroupResult['tables'] = Object.fromEntries(
        await Promise.all(
          Object.entries(group.tables).map(async ([name, t]) => [
            name,
            {
              rowsIn: t.rowsIn,
              rowsWritten: t.rowsWritten,
              files: await Promise.all(
                t.keys.map((k) => (local ? join(local.root, k) : download(deps.lake, k, join(workDir, k)))),
              ),
            },
          ]),
        ),
      );
      groups.push({ index, tables: groupTables, stats: group.stats });
    }
    const results = await mergeGroups(tables, groups, deps, join(workDir, 'out'));
    const started = new Date(plan.startedAt);
    const result = await commitSilverBuild(
      {
        bronzeManifestKey: input.bronzeManifestKey,
        bronze,
        startedAt: Number.isNaN(started.getTime()) ? mergeStarted : started,
        tables,
        results,
      },
      { ...deps, stats: mergeSilverStats(groups.map((group) => group.stats)) },
    );
    await deleteUnder(deps.lake, workPrefix);
    return result;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Removes every object under `prefix`. */
async function deleteUnder(lake: ObjectStore, prefix: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of lake.list(prefix)) keys.push(object.key);
  for (const key of keys) await lake.delete(key);
}

async function readText(lake: ObjectStore, key: string, what?: string): Promise<string> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await lake.read(key)) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    if (what && error instanceof ObjectNotFoundError) {
      throw new PipelineError(
        `silver merge: the ${what} of the build is missing (${key}): plan and build it first`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

async function download(lake: ObjectStore, key: string, file: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await pipeline(await lake.read(key), createWriteStream(file));
  return file;
}
