import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { storedColumns, type TableSpec } from '../../contracts/silver/table.ts';
import type { SilverManifest } from '../../contracts/silver-manifest.ts';
import {
  type SilverBuildRef,
  silverBuildOf,
  silverManifestKey,
  silverTableBuildPrefix,
  silverTableKey,
} from '../../lake/keys.ts';
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
 * partition for this source is one Parquet file written atomically (a build in buckets writes one per
 * bucket; this one-call build is one bucket); the silver manifest, written last, commits the build. Rebuilding replaces the partition: same keys, stale tables removed.
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
  const manifestKey = silverManifestKey(silverBuildOf(bronze, contractFingerprint(deps.contract)));
  await deps.lake.delete(manifestKey);

  const tables = [...deps.contract.tables, quarantineTable];
  const workDir = join(deps.workDir, `silver-${runId}`);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  try {
    const groups = await buildGroups(input, bronze, deps, workDir);
    const results = await mergeGroups(tables, groups, deps, workDir);
    const build = silverBuildOf(bronze, contractFingerprint(deps.contract));
    const published: SilverManifest['tables'] = {};
    for (const table of tables) {
      const result = results[table.name] ?? { rowsIn: 0, rowsWritten: 0, duplicates: 0 };
      const file = await publishTableFile(deps.lake, build, table.name, 0, result.file);
      published[table.name] = {
        rowsIn: result.rowsIn,
        rowsWritten: result.rowsWritten,
        duplicates: result.duplicates,
        ...(result.conflictingKeys && { conflictingKeys: result.conflictingKeys }),
        bytes: file?.bytes ?? 0,
        files: file
          ? [{ key: file.key, rows: result.rowsWritten, bytes: file.bytes, sha256: file.sha256 }]
          : [],
        ...(!file && { columns: storedColumns(table) }),
      };
    }
    return await commitSilverBuild(
      { bronzeManifestKey: input.bronzeManifestKey, bronze, startedAt, tables: published },
      { ...deps, stats: mergeSilverStats(groups.map((group) => group.stats)) },
    );
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** What a silver build has made and published, ready to commit. */
export interface SilverBuildOutcome {
  readonly bronzeManifestKey: string;
  readonly bronze: BronzeManifest;
  /** When the build started (its manifest's `timings.startedAt`). */
  readonly startedAt: Date;
  /** Each table's (quarantine included) counts and published files, in contract order. */
  readonly tables: SilverManifest['tables'];
}

/**
 * Commits a build whose table files are published: any other file in the tables' build folders (of an
 * earlier build with more buckets) is removed, then the silver manifest is written, last. Shared by the
 * one-call build and the build in groups and buckets, so both commit exactly the same objects.
 */
export async function commitSilverBuild(
  outcome: SilverBuildOutcome,
  deps: {
    readonly lake: ObjectStore;
    readonly clock: Clock;
    readonly contract: SilverContract;
    readonly stats: SilverStats;
  },
): Promise<BuildSilverResult> {
  const { bronze } = outcome;
  const { stats } = deps;
  const { runId, dataset } = bronze;
  const build = silverBuildOf(bronze, contractFingerprint(deps.contract));
  const manifestKey = silverManifestKey(build);
  const tableResults = outcome.tables;
  for (const [table, result] of Object.entries(tableResults)) {
    const keep = new Set(result.files.map((file) => file.key));
    const stale: string[] = [];
    for await (const object of deps.lake.list(silverTableBuildPrefix(build, table))) {
      if (!keep.has(object.key)) stale.push(object.key);
    }
    for (const key of stale) await deps.lake.delete(key);
  }
  const finishedAt = deps.clock.now();
  const manifest: SilverManifest = {
    manifestVersion: 3,
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
    partials[table.name] = groups.flatMap((group) =>
      (group.tables[table.name]?.files ?? []).map((p) => p.file),
    );
  }
  const merge =
    deps.mergeTables ??
    (await import('../../adapters/duckdb/parquet-partials-merge.ts')).mergeParquetPartials;
  const merged = await merge(tables, partials, join(workDir, 'merged'));
  const results: Record<string, TableWriteResult> = {};
  for (const table of tables) {
    const rowsIn = groups.reduce((sum, group) => sum + (group.tables[table.name]?.rowsIn ?? 0), 0);
    const { rowsWritten, conflictingKeys, file } = merged[table.name] ?? { rowsWritten: 0 };
    results[table.name] = {
      rowsIn,
      rowsWritten,
      duplicates: rowsIn - rowsWritten,
      ...(conflictingKeys && { conflictingKeys }),
      file,
    };
  }
  return results;
}

/**
 * Uploads one table's Parquet file of one merge bucket to its key, or removes the key when the bucket
 * got no rows of the table (an earlier build's file). Returns what the manifest records of it.
 */
export async function publishTableFile(
  lake: ObjectStore,
  build: SilverBuildRef,
  table: string,
  bucket: number,
  file: string | undefined,
): Promise<{ readonly key: string; readonly bytes: number; readonly sha256: string } | undefined> {
  const key = silverTableKey(build, table, bucket);
  if (!file) {
    await lake.delete(key);
    return undefined;
  }
  const sha256 = createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
  const info = await lake.write(key, createReadStream(file), {
    contentType: 'application/vnd.apache.parquet',
  });
  return { key, bytes: info.size, sha256 };
}
