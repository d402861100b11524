import { z } from 'zod';
import type { ColumnType } from './silver/table.ts';

/** One Parquet file of a table: one merge bucket's rows (`silverTableKey`). */
const TableFile = z.object({
  key: z.string(),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string(),
});
export type SilverTableFile = z.infer<typeof TableFile>;

const TableResult = z.object({
  rowsIn: z.number().int().nonnegative(),
  rowsWritten: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  /**
   * Keys among the duplicates whose rows held other values than the row kept: values dropped, not
   * copies. Absent when none (and in manifests written before it was counted).
   */
  conflictingKeys: z.number().int().positive().optional(),
  /** Over all of its files. */
  bytes: z.number().int().nonnegative(),
  /** One per merge bucket that got rows, in bucket order; none when the table got no rows. */
  files: z.array(TableFile),
  /**
   * A table without files: its columns as its files would have them (lineage included), so that readers
   * show it as a table of no rows rather than no table. Absent in manifests written before.
   */
  columns: z
    .array(
      z.object({
        name: z.string(),
        type: z.enum([
          'VARCHAR',
          'BIGINT',
          'DOUBLE',
          'BOOLEAN',
          'DATE',
          'TIMESTAMP',
          'VARCHAR[]',
          'BIGINT[]',
          'DOUBLE[]',
        ] satisfies ColumnType[]),
      }),
    )
    .optional(),
});

const RecordResult = z.object({
  bronze: z.number().int().nonnegative(),
  accepted: z.number().int().nonnegative(),
  quarantined: z.number().int().nonnegative(),
});

const Finding = z.object({ count: z.number().int().positive(), example: z.string() });

/**
 * The commit marker of a source's silver build: what was read from bronze and what each table got.
 * Reconciliation checks these numbers against bronze and against the Parquet files themselves.
 */
const SilverManifestV3 = z.object({
  manifestVersion: z.literal(3),
  runId: z.string(),
  dataset: z.string(),
  /** The source and the version (content) this build is of. */
  sourceId: z.string(),
  version: z.string(),
  bronzeManifestKey: z.string(),
  /** Per record path: records in bronze, accepted into silver, quarantined. */
  records: z.record(z.string(), RecordResult),
  /** Per table (including the quarantine table). */
  tables: z.record(z.string(), TableResult),
  /** Per rule id: how often it fired and its severity (warn: row kept; quarantine: record set aside). */
  violations: z.record(
    z.string(),
    Finding.extend({ severity: z.enum(['warn', 'quarantine', 'fail']), path: z.string() }),
  ),
  /** Per path: fields the contract does not know, and values of the wrong type. */
  drift: z.record(z.string(), Finding.extend({ kind: z.enum(['unknown_field', 'wrong_type']) })),
  timings: z.object({ startedAt: z.string(), finishedAt: z.string(), durationMs: z.number() }),
});

/**
 * Version 2 (before merge buckets) named one file per table (`key`, `sha256`): read as version 3 with
 * that file as the table's only one.
 */
function upgradeV2(manifest: unknown): unknown {
  const m = manifest as { manifestVersion?: unknown; tables?: Record<string, Record<string, unknown>> };
  if (!m || typeof m !== 'object' || m.manifestVersion !== 2 || typeof m.tables !== 'object') return manifest;
  const tables = Object.fromEntries(
    Object.entries(m.tables).map(([name, { key, sha256, ...table }]) => [
      name,
      {
        ...table,
        files:
          typeof key === 'string'
            ? [{ key, rows: table.rowsWritten, bytes: table.bytes, sha256: sha256 ?? '' }]
            : [],
      },
    ]),
  );
  return { ...m, manifestVersion: 3, tables };
}

export const SilverManifest = z.preprocess(upgradeV2, SilverManifestV3);
export type SilverManifest = z.infer<typeof SilverManifestV3>;
