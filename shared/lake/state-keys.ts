/**
 * Keys of the merged state of a generic dataset's silver table (load snapshot, cdc or scd2), beside the
 * per-source partitions of `keys.ts`. The partitions stay as they are (for cdc and scd2, the raw event
 * history); the state is the table as of every source applied so far. Keys are fixed, so each merge
 * overwrites the state in place, and the state manifest, written last, commits it.
 *
 * The state lives outside the table folders (`silver/<dataset>/_state/<table>/`), so a reader that globs
 * every Parquet file under `silver/<dataset>/<table>/` (Athena, DuckDB) sees the partitions only.
 */

/** The folder, beside the table folders of a dataset, holding the merged states. */
export const STATE_FOLDER = '_state';

/** File name of the current state inside `STATE_FOLDER`. */
export const CURRENT_STATE_FILE = 'current.parquet';

/** File name of the remembered deletes (cdc and scd2) inside `STATE_FOLDER`. */
export const DELETES_STATE_FILE = 'deletes.parquet';

/** The folder of a table's merged state. */
export const silverStatePrefix = (dataset: string, table: string) =>
  `silver/${dataset}/${STATE_FOLDER}/${table}/`;

/** The table as of every applied source: what users query for the current state. */
export const silverCurrentStateKey = (dataset: string, table: string) =>
  `${silverStatePrefix(dataset, table)}${CURRENT_STATE_FILE}`;

/**
 * Deletes that won (key + ordering value), kept so that a late event older than a delete still loses to
 * it: part of the state of cdc and scd2 loads, not a table to query.
 */
export const silverDeletesStateKey = (dataset: string, table: string) =>
  `${silverStatePrefix(dataset, table)}${DELETES_STATE_FILE}`;

/**
 * The commit marker of a table's state: the sources applied, in order, and the state objects' sha256.
 * Outside the table folders (like `_manifests`), so globs over tables skip it.
 */
export const silverStateManifestKey = (dataset: string, table: string) =>
  `silver/${dataset}/${STATE_FOLDER}/${table}.json`;
