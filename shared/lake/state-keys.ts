/**
 * Keys of the merged state of a generic dataset's silver table (load snapshot, cdc or scd2), beside the
 * per-source partitions of `keys.ts`. The partitions stay as they are (for cdc and scd2, the raw event
 * history); the state is the table as of every source applied so far. Each merge writes the state to
 * files of its own, and the state manifest, written last with a conditional write, commits them: a reader
 * or a merge that follows the manifest never sees what a merge killed midway wrote, and two merges of one
 * table at once cannot both commit.
 *
 * The state lives outside the table folders (`silver/<dataset>/_state/<table>/`), so a reader that globs
 * every Parquet file under `silver/<dataset>/<table>/` (Athena, DuckDB) sees the partitions only.
 */

/** The folder, beside the table folders of a dataset, holding the merged states. */
export const STATE_FOLDER = '_state';

/** The folder of a table's merged state. */
export const silverStatePrefix = (dataset: string, table: string) =>
  `silver/${dataset}/${STATE_FOLDER}/${table}/`;

/**
 * The table as of every applied source: what users query for the current state, once the state manifest
 * names it. `stateId` names the sources it holds (merge-state.ts), so no merge writes over the files of the
 * committed state. Lakes written before kept one file at a fixed key (`current.parquet`), which their
 * manifests name, so they read on.
 */
export const silverCurrentStateKey = (dataset: string, table: string, stateId: string) =>
  `${silverStatePrefix(dataset, table)}current-${stateId}.parquet`;

/**
 * Deletes that won (key + ordering value), kept so that a late event older than a delete still loses to
 * it: part of the state of cdc and scd2 loads, not a table to query. Named like the current state's file.
 */
export const silverDeletesStateKey = (dataset: string, table: string, stateId: string) =>
  `${silverStatePrefix(dataset, table)}deletes-${stateId}.parquet`;

/**
 * The commit marker of a table's state: the sources applied, in order, and the state objects' keys and
 * sha256. Outside the table folders (like `_manifests`), so globs over tables skip it.
 */
export const silverStateManifestKey = (dataset: string, table: string) =>
  `silver/${dataset}/${STATE_FOLDER}/${table}.json`;
