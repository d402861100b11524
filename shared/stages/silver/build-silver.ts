import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import type { TableSpec } from '../../contracts/silver/table.ts';
import type { SilverManifest } from '../../contracts/silver-manifest.ts';
import { type SilverBuildRef, silverBuildOf, silverManifestKey, silverTableKey } from '../../lake/keys.ts';
import { silverGroupFolder } from '../../lake/silver-work-keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TablePartialsMerger, TableWriteResult, TableWriterFactory } from '../../ports/table-writer.ts';
import { readBronzeManifest } from '../bronze/read-bronze.ts';
import { quarantineTable } from './quarantine-table.ts';
import { buildSilverGroup, planSilverGroups, type SilverGroupResult } from './silver-group.ts';
import { mergeSilverStats, type SilverStats } from './silver-stats.ts';
import type { LakeLocation } from './silver-worker-protocol.ts';

export { quarantineTable } from './quarantine-table.ts';

export interface BuildSilverInput {
  readonly bronzeManifestKey: string;
}

export interface SilverProgress {
  readonly partsDone: number;
  readonly partsTotal: number;
  readonly records: number;
}

export interface BuildSilverDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
  /**
   * The writers of an inline build (parallelism 1): partial files (`partial: true`), one writer per bronze
   * part, merged at the end. Worker threads open DuckDB writers of their own.
   */
  readonly createTableWriter: TableWriterFactory;
  /** Local scratch space for Parquet files before upload (Lambda: under /tmp). */
  readonly workDir: string;
  readonly onProgress?: (progress: SilverProgress) => void;
  /**
   * How many groups of bronze parts to build at once, each in a worker thread, before one merge. 1 builds
   * in this thread, without workers (the Lambda does). Workers need a lake in a local folder and a
   * contract they can rebuild (see `datasetConfig`); without them the build runs inline. @default 1
   */
  readonly parallelism?: number;
  /**
   * The dataset config `contract` was made from, so worker threads can make it again. A contract sluice
   * ships is found by its name; a config-defined (generic) dataset needs this to run in workers.
   */
  readonly datasetConfig?: DatasetConfig;
  /** Where worker threads open the lake. @default the folder of a `FileObjectStore` lake */
  readonly lakeLocation?: LakeLocation;
  /** DuckDB `memory_limit` of each worker's writer: several run at once. @default '256MB' */
  readonly workerMemoryLimit?: string;
  /** Merges the groups' partial files into the tables. @default DuckDB's `mergeParquetPartials` */
  readonly mergeTables?: TablePartialsMerger;
}

export interface BuildSilverResult {
  readonly manifestKey: string;
  readonly manifest: SilverManifest;
}

const DEFAULT_WORKER_MEMORY_LIMIT = '256MB';

/**
 * Bronze → silver for one committed bronze run: every record through the dataset's contract, rows to
 * Parquet per table (deduplicated by key), broken rules to quarantine, drift counted. Each table's
 * partition for this source is one Parquet file written atomically; the silver manifest, written last,
 * commits the build. Rebuilding replaces the partition: same keys, stale tables removed.
 *
 * The parts are built in consecutive groups (`buildSilverGroup`): one group inline, or with
 * `parallelism` > 1 several at once in worker threads, whose partial files one merge then deduplicates
 * across groups. Either way the tables, counts, findings and the Parquet bytes are the same.
 */
export async function buildSilver(
  input: BuildSilverInput,
  deps: BuildSilverDeps,
): Promise<BuildSilverResult> {
  const startedAt = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId } = bronze;
  const manifestKey = silverManifestKey(silverBuildOf(bronze));
  await deps.lake.delete(manifestKey);

  const tables = [...deps.contract.tables, quarantineTable];
  const workDir = join(deps.workDir, `silver-${runId}`);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const groups = await buildGroups(input, bronze, deps, workDir);
    const results = await mergeGroups(tables, groups, deps, workDir);
    return await commitSilverBuild(
      { bronzeManifestKey: input.bronzeManifestKey, bronze, startedAt, tables, results },
      { ...deps, stats: mergeSilverStats(groups.map((group) => group.stats)) },
    );
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** What a silver build has made, ready to publish. */
export interface SilverBuildOutcome {
  readonly bronzeManifestKey: string;
  readonly bronze: BronzeManifest;
  /** When the build started (its manifest's `timings.startedAt`). */
  readonly startedAt: Date;
  /** The contract's tables and quarantine. */
  readonly tables: readonly TableSpec[];
  /** Each table's rows and its local Parquet file (none: no rows). */
  readonly results: Readonly<Record<string, TableWriteResult>>;
}

/**
 * Publishes a build: each table's file to its partition (a table without rows loses its partition),
 * then the silver manifest, last, which commits the build. Shared by the one-call build and the merge of
 * a build in groups, so both commit exactly the same objects.
 */
export async function commitSilverBuild(
  outcome: SilverBuildOutcome,
  deps: { readonly lake: ObjectStore; readonly clock: Clock; readonly stats: SilverStats },
): Promise<BuildSilverResult> {
  const { bronze } = outcome;
  const { stats } = deps;
  const { runId, dataset } = bronze;
  const build = silverBuildOf(bronze);
  const manifestKey = silverManifestKey(build);
  const tableResults = await publishTables(deps.lake, build, outcome.tables, outcome.results);
  const finishedAt = deps.clock.now();
  const manifest: SilverManifest = {
    manifestVersion: 2,
    runId,
    dataset,
    sourceId: build.sourceId,
    version: build.version,
    bronzeManifestKey: outcome.bronzeManifestKey,
    records: Object.fromEntries(
      Object.entries(bronze.records).map(([path, n]) => [
        path,
        {
          bronze: n,
          accepted: stats.records[path]?.accepted ?? 0,
          quarantined: stats.records[path]?.quarantined ?? 0,
        },
      ]),
    ),
    tables: tableResults,
    violations: Object.fromEntries(stats.violations),
    drift: Object.fromEntries(stats.drift),
    timings: {
      startedAt: outcome.startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - outcome.startedAt.getTime(),
    },
  };
  await deps.lake.write(manifestKey, `${JSON.stringify(manifest, null, 2)}\n`, {
    contentType: 'application/json',
  });
  return { manifestKey, manifest };
}

/**
 * Every group's partial files, in part order: several groups built in worker threads when allowed and
 * possible, else one group built inline.
 */
async function buildGroups(
  input: BuildSilverInput,
  bronze: BronzeManifest,
  deps: BuildSilverDeps,
  workDir: string,
): Promise<SilverGroupResult[]> {
  let partsDone = 0;
  let records = 0;
  const onPart = (partRecords: number) => {
    records += partRecords;
    deps.onProgress?.({ partsDone: ++partsDone, partsTotal: bronze.parts.length, records });
  };
  const workDirOf = (group: number) => join(workDir, silverGroupFolder(group));

  const plans = planSilverGroups(bronze.parts, deps.parallelism ?? 1);
  if (plans.length > 1) {
    // Loaded only here: the worker machinery is for local runs, the Lambda builds inline.
    const { runSilverGroupsInWorkers, silverWorkerTasks } = await import('./silver-workers.ts');
    const tasks = silverWorkerTasks(plans, {
      bronzeManifestKey: input.bronzeManifestKey,
      bronze,
      lake: deps.lake,
      contract: deps.contract,
      datasetConfig: deps.datasetConfig,
      lakeLocation: deps.lakeLocation,
      workDirOf,
      memoryLimit: deps.workerMemoryLimit ?? DEFAULT_WORKER_MEMORY_LIMIT,
    });
    if (tasks) return runSilverGroupsInWorkers(tasks, onPart);
  }
  const all = { index: 0, firstPart: 0, endPart: bronze.parts.length };
  const group = await buildSilverGroup(
    { bronzeManifestKey: input.bronzeManifestKey, group: all },
    {
      lake: deps.lake,
      contract: deps.contract,
      createTableWriter: deps.createTableWriter,
      workDir: workDirOf(0),
      bronze,
      onPart,
    },
  );
  return [group];
}

/** Each table from its groups' partial files; rows in are the groups' sum, duplicates all those dropped. */
export async function mergeGroups(
  tables: readonly TableSpec[],
  groups: readonly SilverGroupResult[],
  deps: { readonly mergeTables?: TablePartialsMerger },
  workDir: string,
): Promise<Record<string, TableWriteResult>> {
  const partials: Record<string, string[]> = {};
  for (const table of tables) {
    partials[table.name] = groups.flatMap((group) => group.tables[table.name]?.files ?? []);
  }
  const merge =
    deps.mergeTables ??
    (await import('../../adapters/duckdb/parquet-partials-merge.ts')).mergeParquetPartials;
  const merged = await merge(tables, partials, join(workDir, 'merged'));
  const results: Record<string, TableWriteResult> = {};
  for (const table of tables) {
    const rowsIn = groups.reduce((sum, group) => sum + (group.tables[table.name]?.rowsIn ?? 0), 0);
    const { rowsWritten, file } = merged[table.name] ?? { rowsWritten: 0 };
    results[table.name] = { rowsIn, rowsWritten, duplicates: rowsIn - rowsWritten, file };
  }
  return results;
}

/** Upload each table's Parquet file to its partition key; remove partitions a table no longer has. */
async function publishTables(
  lake: ObjectStore,
  build: SilverBuildRef,
  tables: readonly TableSpec[],
  results: Readonly<Record<string, TableWriteResult>>,
): Promise<SilverManifest['tables']> {
  const published: SilverManifest['tables'] = {};
  for (const table of tables) {
    const result = results[table.name] ?? { rowsIn: 0, rowsWritten: 0, duplicates: 0 };
    const key = silverTableKey(build, table.name);
    if (!result.file) {
      await lake.delete(key);
      published[table.name] = {
        rowsIn: result.rowsIn,
        rowsWritten: 0,
        duplicates: result.duplicates,
        bytes: 0,
      };
      continue;
    }
    const sha256 = createHash('sha256')
      .update(await readFile(result.file))
      .digest('hex');
    const info = await lake.write(key, createReadStream(result.file), {
      contentType: 'application/vnd.apache.parquet',
    });
    published[table.name] = {
      key,
      rowsIn: result.rowsIn,
      rowsWritten: result.rowsWritten,
      duplicates: result.duplicates,
      bytes: info.size,
      sha256,
    };
  }
  return published;
}
