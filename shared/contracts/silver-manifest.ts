import { z } from 'zod';

const TableResult = z.object({
  key: z.string().optional(),
  rowsIn: z.number().int().nonnegative(),
  rowsWritten: z.number().int().nonnegative(),
  duplicates: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().optional(),
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
export const SilverManifest = z.object({
  manifestVersion: z.literal(2),
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
export type SilverManifest = z.infer<typeof SilverManifest>;
