/**
 * The bench's peer (issue 16, item 4): what a savvy user would do instead of sluice's silver — DuckDB's
 * own JSON reader over sluice's bronze NDJSON parts of `in_network` (already split and gzip'd, so DuckDB
 * reads them in parallel: it is at its best), unnesting negotiated_rates → negotiated_prices into the
 * columns of sluice's `negotiated_prices` table and writing them to zstd Parquet, with DuckDB's default
 * threads and memory.
 *
 * The SQL follows the contract (shared/contracts/datasets/tic-in-network.silver.ts) as far as SQL goes:
 * text trimmed with blank → null, lists without blanks and empty → null, dates in the spellings
 * `parseDate` reads (ISO timestamps aside), a rate's provider references as text followed by the ids of
 * its inline groups (`inlineGroupId`: the same sha256). It does not validate, quarantine, deduplicate,
 * rescue unknown fields or reconcile. On the 100 MB generated file its rows equal sluice's in every one
 * of these columns (checked once by a full join, docs/BENCHMARKS.md); the bench checks the row count.
 *
 * It reads the lake the `sluice-e2e` phase wrote (the source's current version): bronze parts, and the
 * silver manifest whose negotiated_prices rows the peer's must equal.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { literal } from '../shared/adapters/duckdb/final-table.ts';

/** Where the `sluice-e2e` phase writes its lake: the peer reads its bronze parts. */
export const E2E_LAKE_DIR = '.bench/lake-e2e';
const DATASET = 'tic-in-network';
const OUTPUT_DIR = '.bench/duckdb-bronze';

/** The part of each bronze line the query reads: DuckDB parses only these fields, typed as given. */
export const PRICE =
  'STRUCT(negotiated_type VARCHAR, negotiated_rate DOUBLE, expiration_date VARCHAR, service_code VARCHAR[], ' +
  'billing_class VARCHAR, setting VARCHAR, billing_code_modifier VARCHAR[], additional_information VARCHAR)';
const RATE = `STRUCT(provider_references VARCHAR[], provider_groups JSON[], negotiated_prices ${PRICE}[])`;
const BRONZE_LINE = `{'index': 'BIGINT', 'record': 'STRUCT(billing_code VARCHAR, negotiated_rates ${RATE}[])'}`;

/** `text()` of the contract: trimmed, blank → null. */
export const text = (sql: string) => `nullif(trim(${sql}), '')`;
/** `textArray()` of the contract: elements trimmed, blanks dropped, nothing left → null. */
export const textList = (sql: string) =>
  `nullif(list_filter(list_transform(${sql}, s -> ${text('s')}), s -> s IS NOT NULL), [])`;

/** The COPY statement of the peer: bronze parts → negotiated_prices.parquet. */
export function negotiatedPricesCopy(parts: readonly string[], fileId: string, target: string): string {
  const files = `[${parts.map(literal).join(', ')}]`;
  const inlineId = `'inline-' || left(sha256(concat_ws(chr(31), ${literal(fileId)}, item_index, rate_index, g)), 16)`;
  return `COPY (
  WITH rates AS (
    SELECT index AS item_index, ${text('record.billing_code')} AS billing_code,
      unnest(record.negotiated_rates) AS rate, unnest(range(len(record.negotiated_rates))) AS rate_index
    FROM read_ndjson(${files}, columns = ${BRONZE_LINE})
  ), prices AS (
    SELECT item_index, rate_index, billing_code,
      nullif(list_concat(
        list_filter(list_transform(rate.provider_references, r -> ${text('r')}), r -> r IS NOT NULL),
        list_transform(range(coalesce(len(rate.provider_groups), 0)), g -> ${inlineId})
      ), []) AS provider_group_ids,
      unnest(rate.negotiated_prices) AS price, unnest(range(len(rate.negotiated_prices))) AS price_index
    FROM rates
  )
  SELECT ${literal(fileId)} AS file_id, item_index, rate_index, price_index, billing_code,
    ${text('price.negotiated_type')} AS negotiated_type,
    price.negotiated_rate AS negotiated_rate,
    try_strptime(trim(price.expiration_date), ['%Y-%m-%d', '%m/%d/%Y', '%Y/%m/%d', '%Y%m%d'])::DATE AS expiration_date,
    ${textList('price.service_code')} AS service_code,
    ${text('price.billing_class')} AS billing_class,
    ${text('price.setting')} AS setting,
    ${textList('price.billing_code_modifier')} AS billing_code_modifier,
    ${text('price.additional_information')} AS additional_information,
    provider_group_ids
  FROM prices
) TO ${literal(target)} (FORMAT parquet, COMPRESSION zstd)`;
}

/** What the phase reports beyond the bench's common fields. */
export interface DuckDbBronzeCounts {
  readonly uncompressedBytes: number;
  /** negotiated_prices rows DuckDB wrote. */
  readonly records: number;
  /** negotiated_prices rows sluice wrote for the same bronze run: `records` must equal it. */
  readonly expectedRecords: number;
}

/**
 * The bronze and silver manifests of `file`'s current version in the lake the `sluice-e2e` phase wrote
 * (`who` names the caller in the error when there is none).
 */
export async function readE2eRun(file: string, who: string) {
  const { FileObjectStore } = await import('../shared/adapters/local/file-object-store.ts');
  const { sourceId } = await import('../shared/lake/keys.ts');
  const { readCurrentVersion } = await import('../shared/lake/source-commits.ts');
  const { readManifests } = await import('../shared/stages/reconcile/reconcile-plan.ts');
  const { builtInDataset } = await import('../shared/contracts/datasets/index.ts');
  const { contractForDataset } = await import('../shared/contracts/datasets/silver-contracts.ts');
  const lakeDir = resolve(E2E_LAKE_DIR);
  const lake = new FileObjectStore(lakeDir);
  const source = sourceId(new FileObjectStore(dirname(file)).uri(basename(file)));
  const current = await readCurrentVersion(lake, DATASET, source);
  if (!current) {
    throw new Error(
      `${who}: ${lakeDir} holds no committed run of ${file}; it reads the bronze parts the sluice-e2e ` +
        'phase writes (the bench runs that phase first, untimed, when it is skipped)',
    );
  }
  const contract = contractForDataset(builtInDataset(DATASET))!;
  return { lakeDir, ...(await readManifests(lake, current.record.bronzeManifestKey, contract)) };
}

/** The `duckdb-bronze` phase: run in its own child process by scripts/bench.ts. */
export async function runDuckDbBronze(file: string): Promise<DuckDbBronzeCounts> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const { lakeDir, bronze, silver } = await readE2eRun(file, 'duckdb-bronze');
  const expectedRecords = silver.tables.negotiated_prices?.rowsWritten;
  if (expectedRecords === undefined) {
    throw new Error(`duckdb-bronze: the silver manifest of ${bronze.runId} has no negotiated_prices table`);
  }
  const parts = bronze.parts.filter((p) => p.recordName === 'in_network').map((p) => join(lakeDir, p.key));
  rmSync(OUTPUT_DIR, { recursive: true, force: true });
  mkdirSync(OUTPUT_DIR, { recursive: true });
  // Defaults on purpose (threads = cores, memory limit 80 % of RAM): the user's tool at its best.
  const instance = await DuckDBInstance.create(':memory:');
  try {
    const connection = await instance.connect();
    const target = resolve(OUTPUT_DIR, 'negotiated_prices.parquet');
    const result = await connection.run(negotiatedPricesCopy(parts, bronze.runId, target));
    connection.closeSync();
    return {
      uncompressedBytes: bronze.source.uncompressedBytes,
      records: Number(result.rowsChanged),
      expectedRecords,
    };
  } finally {
    instance.closeSync();
  }
}
