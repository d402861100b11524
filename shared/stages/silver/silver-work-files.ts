import { z } from 'zod';
import { ObjectNotFoundError, PipelineError } from '../../errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { SilverStats } from './silver-stats.ts';

/**
 * What a build in groups and buckets leaves in its work prefix (`silver/<dataset>/_work/<run>/`, see
 * shared/lake/silver-work-keys.ts) for its later steps, and how many merge buckets a build has.
 */

/** Uncompressed bronze a merge bucket is planned to hold: ≈ 1.2 GB of partial files, ≈ 1 minute to merge. */
export const DEFAULT_SILVER_BUCKET_TARGET_BYTES = 8 * 1024 * 1024 * 1024;
/** Most merge buckets a build is split into (items of one inline Map, each a few history events). */
export const MAX_SILVER_BUCKETS = 1000;

/**
 * How many merge buckets a build has: by the run's uncompressed bronze bytes (the same however the run
 * was sliced or grouped), at least 1, at most `maxBuckets`. Every group splits its keyed tables' rows
 * into this many buckets by a hash of the key, so each bucket is deduplicated on its own.
 */
export function silverBucketCount(
  parts: readonly { readonly uncompressedBytes: number }[],
  options: { readonly targetBucketBytes?: number; readonly maxBuckets?: number } = {},
): number {
  const total = parts.reduce((sum, part) => sum + part.uncompressedBytes, 0);
  const target = options.targetBucketBytes ?? DEFAULT_SILVER_BUCKET_TARGET_BYTES;
  const byBytes = Math.ceil(total / Math.max(1, target));
  return Math.max(1, Math.min(byBytes, Math.floor(options.maxBuckets ?? MAX_SILVER_BUCKETS)));
}

/**
 * The merge bucket of a bronze part's rows in a table that is not split by key (one without a key, or a
 * build of one bucket): consecutive parts, about equally many per bucket, so such a table's rows also
 * reach each bucket's merge in part order, and nothing needs deduplicating across buckets.
 */
export function mergeBucketOfPart(part: number, partsTotal: number, buckets: number): number {
  return partsTotal === 0 ? 0 : Math.min(buckets - 1, Math.floor((part * buckets) / partsTotal));
}

/**
 * What `PlanSilver` leaves in the work prefix: when the build started (for the manifest's timings), and
 * the bronze run, groups and buckets planned, so a rerun of the same plan keeps the work already done.
 */
export const PlanFile = z.object({
  startedAt: z.string(),
  bronzeManifestKey: z.string().optional(),
  /**
   * The silver build the plan's work is for (`silverBuildOf`): a plan of another build (another config or
   * contract) is started over, never finished with its groups. Absent in plans written before it was.
   */
  build: z.string().optional(),
  groupCount: z.number().int().positive(),
  groups: z.array(z.object({ index: z.number(), firstPart: z.number(), endPart: z.number() })),
  bucketCount: z.number().int().positive(),
});
export type PlanFile = z.infer<typeof PlanFile>;

/**
 * One partial file in a bucket's section of a group's `partials.bin`: its table, batch (its bronze part
 * within the group) and length. A section is a 4-byte big-endian length, that many bytes of JSON listing
 * its files (`SectionIndex`), then the files' bytes in that order: a bucket's merge reads its section
 * alone, and the group's stats stay small however many files the sections hold.
 */
export const SectionIndex = z.array(
  z.object({
    table: z.string(),
    batch: z.number().int().nonnegative(),
    length: z.number().int().positive(),
  }),
);
export type SectionIndex = z.infer<typeof SectionIndex>;

/** Where a bucket's section lies in a group's `partials.bin`. */
const BucketSection = z.object({
  bucket: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  length: z.number().int().positive(),
});
export type BucketSection = z.infer<typeof BucketSection>;

/** What a group leaves under its work prefix (`_stats.json`), written after its `partials.bin`. */
export const GroupFile = z.object({
  group: z.number().int().nonnegative(),
  firstPart: z.number().int().nonnegative(),
  endPart: z.number().int().nonnegative(),
  bucketCount: z.number().int().positive(),
  tables: z.record(z.string(), z.object({ rowsIn: z.number(), rowsWritten: z.number() })),
  /** The key of the group's bundle of partial files (none when the group wrote no rows). */
  partialsKey: z.string().optional(),
  /** The bundle's sections, in bucket order: one per bucket that got rows of this group. */
  sections: z.array(BucketSection),
  /** What split its keyed tables' rows into buckets (`TableWriteResult.bucketHash`); absent: none split. */
  bucketHash: z.string().optional(),
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
export type GroupFile = z.infer<typeof GroupFile>;

/** A table's file of one merge bucket, as published to its key. */
const BucketTable = z.object({
  rowsWritten: z.number().int().nonnegative(),
  conflictingKeys: z.number().int().positive().optional(),
  key: z.string().optional(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().optional(),
});

/** What a merge bucket leaves in the work prefix once its tables' files are published: its commit marker. */
export const BucketFile = z.object({
  bucket: z.number().int().nonnegative(),
  bucketCount: z.number().int().positive(),
  bronzeManifestKey: z.string(),
  tables: z.record(z.string(), BucketTable),
});
export type BucketFile = z.infer<typeof BucketFile>;

/** A work file the later steps need, parsed; a missing or broken one names the step that makes it. */
export async function readWorkFile<T extends z.ZodType>(
  lake: ObjectStore,
  key: string,
  schema: T,
  what: string,
): Promise<z.infer<T>> {
  let text: string;
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await lake.read(key)) chunks.push(Buffer.from(chunk as Uint8Array));
    text = Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    throw new PipelineError(
      `silver: the ${what} is missing (${key}): rerun the silver stage from PlanSilver`,
      {
        cause: error,
      },
    );
  }
  const parsed = schema.safeParse(safeJson(text));
  if (!parsed.success) {
    throw new PipelineError(
      `silver: the ${what} (${key}) is not what this version of sluice writes: rerun the silver stage from PlanSilver`,
    );
  }
  return parsed.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Removes every object under `prefix`. */
export async function deleteUnder(lake: ObjectStore, prefix: string): Promise<void> {
  const keys: string[] = [];
  for await (const object of lake.list(prefix)) keys.push(object.key);
  for (const key of keys) await lake.delete(key);
}
