/**
 * Merge: one source's silver partition into the current state of a generic dataset's table, by the
 * load pattern its config names (snapshot, cdc, scd2). The per-source partitions the silver build
 * writes stay as they are: for an append load they are the table; for cdc and scd2 they are the raw
 * event history. The state, which users query for the table as it is now, lives beside them:
 *
 *   silver/<dataset>/_state/<table>/current-<state>.parquet   the table now (scd2: every version, `is_current`)
 *   silver/<dataset>/_state/<table>/deletes-<state>.parquet   deletes that won (cdc, scd2): part of the state
 *   silver/<dataset>/_state/<table>.json                      commit marker: sources applied, in order, and
 *                                                             the state files above (`<state>`: a digest
 *                                                             of the sources applied)
 *
 * `sluice query` shows the state as the view `<dataset>__<table>_current`.
 *
 * Crash safety: each merge writes the state to new files, then commits them with one conditional write of
 * the manifest (If-Match the manifest it read). The files the manifest named before are retired, not
 * deleted: a reader that read the old manifest a moment before (`sluice query`) still finds them. The
 * manifest lists the last `RETIRED_GENERATIONS` generations of retired files; a commit deletes those
 * older than that. Readers
 * and merges follow the manifest only: a merge killed before its manifest leaves the old state whole;
 * two merges of one table at once cannot both commit, and the one that lost starts again from the
 * winner's state. Either leaves files no manifest names (a retry of the same sources writes the same
 * names again); they are not deleted on the spot, since a merge of the same sources that won may have
 * committed those very names.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { z } from 'zod';
import { ident, literal } from '../../adapters/duckdb/final-table.ts';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import { genericTable, operationColumnOf, type SilverConfig } from '../../contracts/generic-contract.ts';
import { LINEAGE_COLUMNS } from '../../contracts/silver/table.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ConfigError, ObjectNotFoundError, PipelineError, PreconditionFailedError } from '../../errors.ts';
import { becameCurrentAt, listCurrentVersions } from '../../lake/source-commits.ts';
import {
  silverCurrentStateKey,
  silverDeletesStateKey,
  silverStateManifestKey,
  silverStatePrefix,
} from '../../lake/state-keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { readText } from '../bronze/read-bronze.ts';
import { cdcUpsert, type KeyedLoad, scd2, snapshot } from './load-patterns.ts';

/**
 * Commits after which a state's files are deleted: a reader that read the manifest before the first of
 * them finds every file it names unless that many merges of the table committed while it read.
 */
export const RETIRED_GENERATIONS = 2;

/** The state cannot be merged into: it disagrees with the config, a file is missing, or another merge ran. */
export class MergeStateError extends PipelineError {
  override name = 'MergeStateError';
}

const StateObject = z.object({
  key: z.string(),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string(),
});

/** The commit marker of a table's state. */
export const SilverStateManifest = z.object({
  stateVersion: z.literal(1),
  dataset: z.string(),
  table: z.string(),
  /** The config the state was built with: merging under another one would mix two meanings. */
  load: z.enum(['snapshot', 'cdc', 'scd2']),
  primaryKey: z.array(z.string()),
  orderingColumn: z.string().nullable(),
  operationColumn: z.string().nullable(),
  /** Every source applied, in the order applied; `stale`: a snapshot older than the state, ignored. */
  applied: z.array(
    z.preprocess(
      (applied) => {
        const a = applied as { batchKey?: string | null; batchSha256?: string | null; batchFiles?: unknown };
        if (!a || typeof a !== 'object' || a.batchFiles !== undefined) return applied;
        const { batchKey, batchSha256, ...rest } = a;
        return { ...rest, batchFiles: batchKey ? [{ key: batchKey, sha256: batchSha256 ?? '' }] : [] };
      },
      z.object({
        runId: z.string(),
        silverManifestKey: z.string(),
        /**
         * The source's files of the table (one per merge bucket with rows; none without rows). Written
         * before merge buckets: `batchKey` and `batchSha256` of its one file, read as this.
         */
        batchFiles: z.array(z.object({ key: z.string(), sha256: z.string() })),
        batchRows: z.number().int().nonnegative(),
        outcome: z.enum(['merged', 'stale']),
        appliedAt: z.string(),
      }),
    ),
  ),
  current: StateObject,
  deletes: StateObject.nullable(),
  /**
   * The state files of the last earlier manifests (newest first, one list per commit), kept for readers
   * that read one of those manifests; the next commits delete them. Absent in lakes written before.
   */
  retired: z.array(z.array(z.string())).optional(),
  updatedAt: z.string(),
});
export type SilverStateManifest = z.infer<typeof SilverStateManifest>;

export interface MergeSilverStateInput {
  readonly dataset: DatasetConfig;
  /** The silver manifest of the source to apply (`silver/<dataset>/_manifests/source=<runId>.json`). */
  readonly silverManifestKey: string;
}

export interface MergeSilverStateDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Local scratch space for the Parquet files and DuckDB spill (Lambda: under /tmp). */
  readonly workDir: string;
  /** DuckDB's `memory_limit`; beyond it, DuckDB spills into `workDir`. @default '512MB' */
  readonly memoryLimit?: string;
}

export interface MergeSilverStateResult {
  readonly table: string;
  readonly load: SilverConfig['load'];
  /** Rows of the state before and after the merge (scd2: versions); 0 and 0 for an append load. */
  readonly rowsBefore: number;
  readonly rowsAfter: number;
  /** Whether the source was applied now: false for an append load and for a source applied before. */
  readonly applied: boolean;
  /**
   * merged: the state now includes the source; stale: a snapshot older than the state, recorded and
   * ignored; already-applied: nothing done; append: nothing to do, the partitions are the table.
   */
  readonly outcome: 'merged' | 'stale' | 'already-applied' | 'append';
  /** The state manifest (absent for an append load). */
  readonly stateManifestKey?: string;
}

/**
 * The retired generations of the manifest that replaces `state`, whose files are `named`: the files
 * `state` named become the newest generation; those past `RETIRED_GENERATIONS` expire (to be deleted once
 * the new manifest is committed). A key the new manifest names or still retires is never expired.
 */
export function retire(
  state: Pick<SilverStateManifest, 'current' | 'deletes' | 'retired'> | undefined,
  named: readonly (string | undefined)[],
): { retired: string[][]; expired: string[] } {
  if (!state) return { retired: [], expired: [] };
  const live = new Set(named.filter((key) => key !== undefined));
  const replaced = [state.current.key, state.deletes?.key].filter(
    (key): key is string => key !== undefined && !live.has(key),
  );
  const generations = [replaced, ...(state.retired ?? [])].map((keys) => keys.filter((k) => !live.has(k)));
  const retired = generations.slice(0, RETIRED_GENERATIONS);
  const kept = new Set(retired.flat());
  const expired = [...new Set(generations.slice(RETIRED_GENERATIONS).flat())].filter((k) => !kept.has(k));
  return { retired, expired };
}

/** DuckDB table names of the merge; the deletes table is the load patterns' default for the target. */
const TARGET = 'current_state';
const DELETES = `${TARGET}__deletes`;
const BATCH = 'batch';

/**
 * Apply one source's silver partition to the table's state with its load pattern, then commit the new
 * state with its manifest. Idempotent: a source already listed in the state manifest is not applied again.
 */
export async function mergeSilverState(
  input: MergeSilverStateInput,
  deps: MergeSilverStateDeps,
): Promise<MergeSilverStateResult> {
  const merged = await withRetriedRace(() =>
    mergeSources(input.dataset, async () => [input.silverManifestKey], { onlyThese: false }, deps),
  );
  // One source to merge: mergeSources always has a result for it.
  return merged!;
}

/**
 * The state of a generic dataset's table as of every source's *current* version (the commit records,
 * shared/lake/source-commits.ts): applies the committed versions the state lacks, in the order they became
 * current (`becameCurrentAt`: a rebuild keeps its version's place); and
 * when the state holds a version that is no longer current (its source got a new one, whose events
 * replace the old one's), folds every current version again from scratch, since a fold cannot take a
 * batch back out. Either way one commit: readers see the old state until the new one is whole.
 */
export async function mergeCommittedVersions(
  input: { readonly dataset: DatasetConfig },
  deps: MergeSilverStateDeps,
): Promise<MergeSilverStateResult | undefined> {
  const config = input.dataset;
  const table = config.silver?.table;
  if (!table || config.silver?.load === 'append') return undefined;
  const { lake } = deps;
  // Listed after the state is read (mergeSources): a state read first can only hold versions the list
  // has, or has replaced since. Listed before, another run's commit and fold in between would make this
  // merge refold the state from a list without that version, and commit it (the etag it read is the new one).
  const currentBuilds = async () =>
    (await listCurrentVersions(lake, config.name))
      .filter((r) => r.silverManifestKey !== undefined)
      .sort(
        (a, b) =>
          becameCurrentAt(a).localeCompare(becameCurrentAt(b)) || a.sourceId.localeCompare(b.sourceId),
      )
      .map((r) => r.silverManifestKey!);
  return withRetriedRace(() => mergeSources(config, currentBuilds, { onlyThese: true }, deps));
}

/**
 * Whether the table's state holds this build already (a source's current silver manifest): what a rerun
 * that found its source unchanged asks first, for the price of one read, before listing every source's
 * current version (a bulk drop of N unchanged files would otherwise list N versions N times).
 */
export async function stateHoldsBuild(
  config: DatasetConfig,
  silverManifestKey: string,
  lake: ObjectStore,
): Promise<MergeSilverStateResult | undefined> {
  const silver = config.silver;
  if (!silver || silver.load === 'append') return undefined;
  const stateManifestKey = silverStateManifestKey(config.name, silver.table);
  if (!(await lake.head(stateManifestKey))) return undefined;
  const state = await readStateManifest(lake, stateManifestKey);
  if (!state.applied.some((a) => a.silverManifestKey === silverManifestKey)) return undefined;
  return alreadyApplied(silver.table, silver.load, state.current.rows, stateManifestKey);
}

/** A merge that had nothing to apply: the state holds every source asked for. */
function alreadyApplied(
  table: string,
  load: SilverConfig['load'],
  rows: number,
  stateManifestKey: string,
): MergeSilverStateResult {
  return {
    table,
    load,
    rowsBefore: rows,
    rowsAfter: rows,
    applied: false,
    outcome: 'already-applied',
    stateManifestKey,
  };
}

/** Runs `merge` again while another merge of the same table commits first (it starts from the winner's state). */
async function withRetriedRace<T>(merge: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await merge();
    } catch (error) {
      if (!(error instanceof MergeRaceLostError) || attempt >= MAX_MERGE_ATTEMPTS) throw error;
    }
  }
}

/** Merges of one table at once that may each lose the race to commit before one gives up. */
const MAX_MERGE_ATTEMPTS = 8;

/** Another merge of the same table committed its state between this merge's read and its commit. */
class MergeRaceLostError extends MergeStateError {}

/**
 * Folds the sources (silver manifests, in order) into the table's state and commits the result once.
 * Sources the state holds already are skipped: a source is its build (its silver manifest), so a rebuilt
 * source is a new one. With `onlyThese` the sources are every source the state may hold: a state that
 * holds another (a version since replaced, a build since rebuilt) is folded again from scratch, decided
 * from the very manifest the commit is conditional on. The sources are asked for after that manifest is
 * read (see `mergeCommittedVersions`); none (no committed version yet): no result.
 */
async function mergeSources(
  config: DatasetConfig,
  sourcesAfterStateRead: () => Promise<readonly string[]>,
  options: { readonly onlyThese: boolean },
  deps: MergeSilverStateDeps,
): Promise<MergeSilverStateResult | undefined> {
  const silver = config.silver;
  if (!silver)
    throw new ConfigError(`dataset ${config.name} has no "silver" section: there is no state to merge`);
  const { table, load } = silver;
  if (load === 'append')
    return { table, load, rowsBefore: 0, rowsAfter: 0, applied: false, outcome: 'append' };

  const { lake } = deps;
  const dataset = config.name;
  // The commit below is conditional on this read: read first, everything it decides follows from it.
  const stateManifestKey = silverStateManifestKey(dataset, table);
  const stateInfo = await lake.head(stateManifestKey);
  const state = stateInfo ? await readStateManifest(lake, stateManifestKey) : undefined;
  const silverManifestKeys = await sourcesAfterStateRead();
  if (silverManifestKeys.length === 0) return undefined;
  const sources: { key: string; manifest: SilverManifest; partition: SilverManifest['tables'][string] }[] =
    [];
  for (const key of silverManifestKeys) {
    const manifest = await readSilverManifest(lake, key);
    if (manifest.dataset !== dataset) {
      throw new MergeStateError(`${key} belongs to dataset ${manifest.dataset}, not ${dataset}`);
    }
    const partition = manifest.tables[table];
    if (!partition) {
      throw new MergeStateError(
        `${key} has no table ${table}: was the source built with another contract? ` +
          'Rebuild its silver with contractForDataset(config).',
      );
    }
    sources.push({ key, manifest, partition });
  }
  const settings = {
    load,
    primaryKey: silver.primaryKey,
    orderingColumn: silver.orderingColumn ?? null,
    operationColumn: operationColumnOf(silver),
  };
  const fromScratch =
    options.onlyThese &&
    (state?.applied.some((a) => !silverManifestKeys.includes(a.silverManifestKey)) ?? false);
  const base = fromScratch ? undefined : state;
  if (base) checkSameSettings(base, settings, dataset, table);
  const toApply = sources.filter((source) => !base?.applied.some((a) => a.silverManifestKey === source.key));
  if (toApply.length === 0) return alreadyApplied(table, load, state?.current.rows ?? 0, stateManifestKey);

  const work = join(deps.workDir, `merge-${dataset}-${table}-${toApply.at(-1)!.manifest.runId}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    threads: '2',
    memory_limit: deps.memoryLimit ?? '512MB',
    temp_directory: join(work, '.duckdb-spill'),
  });
  try {
    const connection = await instance.connect();
    try {
      const keyed = load !== 'snapshot';
      // The state the manifest names, never a file a merge killed before its commit left behind.
      const rebuildHint =
        `To rebuild the state, delete ${stateManifestKey} and ${silverStatePrefix(dataset, table)}, ` +
        'then merge every source again.';
      // A state object that is gone or changed, while the manifest moved on since this merge read it, was
      // replaced by another merge's commit (which deletes the files it no longer names): a lost race.
      const download = (object: z.infer<typeof StateObject>, file: string) =>
        downloadStateObject(lake, object, file, rebuildHint).catch(async (error: unknown) => {
          const now = await lake.head(stateManifestKey);
          if (!(error instanceof MergeStateError) || now?.etag === stateInfo?.etag) throw error;
          throw new MergeRaceLostError(
            `${stateManifestKey} changed while this merge read the state it named: another merge of ` +
              `${dataset}/${table} committed first`,
            { cause: error },
          );
        });
      const currentFile = base
        ? await download(base.current, join(work, 'current-before.parquet'))
        : undefined;
      if (currentFile)
        await connection.run(`CREATE TABLE ${TARGET} AS SELECT * FROM ${parquet(currentFile)}`);
      const deletesFile =
        keyed && base?.deletes
          ? await download(base.deletes, join(work, 'deletes-before.parquet'))
          : undefined;
      if (deletesFile)
        await connection.run(`CREATE TABLE ${DELETES} AS SELECT * FROM ${parquet(deletesFile)}`);
      const rowsBefore = state?.current.rows ?? 0;

      const now = deps.clock.now().toISOString();
      const applied: SilverStateManifest['applied'] = [];
      let hasTarget = currentFile !== undefined;
      for (const [index, source] of toApply.entries()) {
        await connection.run(`DROP TABLE IF EXISTS ${BATCH}`);
        const batchWork = join(work, `source-${index}`);
        await mkdir(batchWork, { recursive: true });
        const batch = await stageBatch(connection, lake, config, source.partition, batchWork);
        let outcome: 'merged' | 'stale' = 'merged';
        if (load === 'snapshot') {
          if (hasTarget && settings.orderingColumn && (await isStale(connection, settings.orderingColumn)))
            outcome = 'stale';
          else await snapshot(connection, { target: TARGET, staging: BATCH });
        } else {
          const keyedLoad: KeyedLoad = {
            target: TARGET,
            staging: BATCH,
            key: silver.primaryKey,
            orderBy: settings.orderingColumn!,
            operationColumn: settings.operationColumn,
            deletesTable: DELETES,
          };
          await (load === 'cdc' ? cdcUpsert : scd2)(connection, keyedLoad);
        }
        hasTarget = true;
        applied.push({
          runId: source.manifest.runId,
          silverManifestKey: source.key,
          batchFiles: source.partition.files.map(({ key, sha256 }) => ({ key, sha256 })),
          batchRows: batch.rows,
          outcome,
          appliedAt: now,
        });
      }
      const merged = applied.some((a) => a.outcome === 'merged');
      const rowsAfter = merged ? await countRows(connection, TARGET) : rowsBefore;
      const allApplied = [...(base?.applied ?? []), ...applied];

      let current = base?.current;
      let deletes = base?.deletes ?? null;
      if (merged || !current) {
        const order = [...silver.primaryKey, ...(settings.orderingColumn ? [settings.orderingColumn] : [])];
        // Named by the sources the state holds: never the name of the committed state's files.
        const stateId = stateIdOf(allApplied);
        if (keyed) {
          deletes = await publish(
            connection,
            lake,
            DELETES,
            order,
            silverDeletesStateKey(dataset, table, stateId),
            work,
          );
        }
        current = await publish(
          connection,
          lake,
          TARGET,
          order,
          silverCurrentStateKey(dataset, table, stateId),
          work,
        );
      }
      const { retired, expired } = retire(state, [current.key, deletes?.key]);
      const manifest: SilverStateManifest = {
        stateVersion: 1,
        dataset,
        table,
        ...settings,
        applied: allApplied,
        current,
        deletes,
        retired,
        updatedAt: now,
      };
      try {
        await lake.write(stateManifestKey, `${JSON.stringify(manifest, null, 2)}\n`, {
          contentType: 'application/json',
          ...(stateInfo ? { ifMatch: stateInfo.etag } : { ifAbsent: true }),
        });
      } catch (error) {
        if (!(error instanceof PreconditionFailedError)) throw error;
        throw new MergeRaceLostError(
          `${stateManifestKey} changed while ${toApply.map((s) => s.manifest.runId).join(', ')} was being ` +
            `merged: another merge of ${dataset}/${table} committed first`,
          { cause: error },
        );
      }
      // Committed: the files retired `RETIRED_GENERATIONS` commits ago are no reader's now.
      for (const key of expired) await lake.delete(key);
      return {
        table,
        load,
        rowsBefore,
        rowsAfter,
        applied: true,
        outcome: merged ? 'merged' : 'stale',
        stateManifestKey,
      };
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
    await rm(work, { recursive: true, force: true });
  }
}

/** A state's name: a digest of the sources (their builds) it holds, in the order applied. */
function stateIdOf(applied: SilverStateManifest['applied']): string {
  return createHash('sha256')
    .update(applied.map((a) => a.silverManifestKey).join('\n'))
    .digest('hex')
    .slice(0, 16);
}

async function readSilverManifest(lake: ObjectStore, key: string): Promise<SilverManifest> {
  const parsed = SilverManifest.safeParse(JSON.parse(await readText(lake, key)));
  if (!parsed.success)
    throw new MergeStateError(`${lake.uri(key)} is not a valid silver manifest: ${parsed.error.message}`);
  return parsed.data;
}

async function readStateManifest(lake: ObjectStore, key: string): Promise<SilverStateManifest> {
  const parsed = SilverStateManifest.safeParse(JSON.parse(await readText(lake, key)));
  if (!parsed.success)
    throw new MergeStateError(`${lake.uri(key)} is not a valid state manifest: ${parsed.error.message}`);
  return parsed.data;
}

type Settings = Pick<SilverStateManifest, 'load' | 'primaryKey' | 'orderingColumn' | 'operationColumn'>;

/** A state built under other load settings cannot take more sources: the two would mean different things. */
function checkSameSettings(
  state: SilverStateManifest,
  settings: Settings,
  dataset: string,
  table: string,
): void {
  const differences = (Object.keys(settings) as (keyof Settings)[])
    .filter((name) => JSON.stringify(state[name]) !== JSON.stringify(settings[name]))
    .map(
      (name) =>
        `${name} was ${JSON.stringify(state[name])}, the config says ${JSON.stringify(settings[name])}`,
    );
  if (differences.length === 0) return;
  throw new MergeStateError(
    `the state of ${dataset}/${table} was built with other settings (${differences.join('; ')}). To rebuild it, ` +
      `delete ${silverStateManifestKey(dataset, table)} and ${silverStatePrefix(dataset, table)}, then merge every source again.`,
  );
}

/** Creates the batch table from the source's files (or empty, with the table's columns, when it has no rows). */
async function stageBatch(
  connection: DuckDBConnection,
  lake: ObjectStore,
  config: DatasetConfig,
  partition: SilverManifest['tables'][string],
  work: string,
): Promise<{ rows: number }> {
  if (partition.files.length === 0) {
    const columns = [...genericTable(config).columns, ...LINEAGE_COLUMNS];
    await connection.run(
      `CREATE TABLE ${BATCH} (${columns.map((c) => `${ident(c.name)} ${c.type}`).join(', ')})`,
    );
    return { rows: 0 };
  }
  const files: string[] = [];
  for (const [index, published] of partition.files.entries()) {
    const file = await download(lake, published.key, join(work, `batch-${index}.parquet`));
    if (!file)
      throw new MergeStateError(
        `silver partition ${published.key} is missing: rebuild silver for this source`,
      );
    const sha256 = await sha256Of(file);
    if (sha256 !== published.sha256) {
      throw new MergeStateError(
        `silver partition ${published.key} does not match its manifest (sha256 ${sha256}, expected ${published.sha256}): rebuild silver for this source`,
      );
    }
    files.push(file);
  }
  await connection.run(
    `CREATE TABLE ${BATCH} AS SELECT * FROM read_parquet([${files.map(literal).join(', ')}], hive_partitioning = false)`,
  );
  return { rows: await countRows(connection, BATCH) };
}

/**
 * A snapshot is stale when its latest ordering value is older than the state's, or when it has none (an
 * empty source cannot be placed in time). Equal values: the later arrival wins.
 */
async function isStale(connection: DuckDBConnection, orderingColumn: string): Promise<boolean> {
  const column = ident(orderingColumn);
  const reader = await connection.runAndReadAll(
    `SELECT (SELECT max(${column}) FROM ${BATCH}) IS NULL OR (SELECT max(${column}) FROM ${BATCH}) < (SELECT max(${column}) FROM ${TARGET})`,
  );
  return reader.getRowsJS()[0]?.[0] === true;
}

/** Writes a table as Parquet (rows sorted by `order`, then every column: same state, same bytes) and uploads it. */
async function publish(
  connection: DuckDBConnection,
  lake: ObjectStore,
  table: string,
  order: readonly string[],
  key: string,
  work: string,
): Promise<z.infer<typeof StateObject>> {
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${ident(table)}`);
  const columns = described.getRowsJS().map((row) => String(row[0]));
  const sortBy = [...order.filter((c) => columns.includes(c)), ...columns.filter((c) => !order.includes(c))];
  const file = join(work, `${table}.parquet`);
  // With more than one thread DuckDB cuts an ordered COPY's row groups by timing: the same state would
  // be different bytes from one merge to the next (see adapters/duckdb/final-table.ts). The fold above
  // keeps both threads; only the write is single-threaded.
  await connection.run('SET threads = 1');
  await connection.run(
    `COPY (SELECT * FROM ${ident(table)} ORDER BY ${sortBy.map((c) => `${ident(c)} ASC NULLS LAST`).join(', ')})
     TO ${literal(file)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  const sha256 = await sha256Of(file);
  const info = await lake.write(key, createReadStream(file), {
    contentType: 'application/vnd.apache.parquet',
  });
  return { key, rows: await countRows(connection, table), bytes: info.size, sha256 };
}

/** Copies an object to a local file; undefined when the object does not exist. */
async function download(lake: ObjectStore, key: string, file: string): Promise<string | undefined> {
  let body: Awaited<ReturnType<ObjectStore['read']>>;
  try {
    body = await lake.read(key);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined;
    throw error;
  }
  await pipeline(body, createWriteStream(file));
  return file;
}

/** Copies a state object the manifest names to a local file, checking that its bytes are the ones committed. */
async function downloadStateObject(
  lake: ObjectStore,
  object: z.infer<typeof StateObject>,
  file: string,
  rebuildHint: string,
): Promise<string> {
  if (!(await download(lake, object.key, file))) {
    throw new MergeStateError(`the state manifest names ${object.key}, which is missing. ${rebuildHint}`);
  }
  const sha256 = await sha256Of(file);
  if (sha256 !== object.sha256) {
    throw new MergeStateError(
      `${object.key} has sha256 ${sha256}, not the ${object.sha256} its state manifest committed: it was ` +
        `changed outside sluice. ${rebuildHint}`,
    );
  }
  return file;
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function countRows(connection: DuckDBConnection, table: string): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT count(*) FROM ${ident(table)}`);
  return Number(reader.getRowsJS()[0]?.[0] ?? 0);
}

const parquet = (file: string) => `read_parquet(${literal(file)}, hive_partitioning = false)`;
