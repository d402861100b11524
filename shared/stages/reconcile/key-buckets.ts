import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { ConfigError, ObjectNotFoundError, PipelineError } from '../../errors.ts';
import { reconcileBucketKey, reconcileKeysKey } from '../../lake/reconcile-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableInspector } from '../../ports/table-inspector.ts';
import type { ReconcilePlan } from './reconcile-plan.ts';

/**
 * Referential integrity and the quarantine's distinct records, per key bucket: every silver file whose
 * keys matter emits them into buckets by DuckDB's hash of the key (one Parquet file per bucket, written
 * and joined by DuckDB, so no invocation holds the keys in its heap), so each bucket holds every
 * occurrence of its keys, and one invocation per bucket joins references to targets. Added up over the
 * buckets, the counts are those of one join over whole tables.
 */

/** A quarantined record: its path and index (a record broken several ways has several rows). */
export const QUARANTINE_KEY_COLUMNS = ['record_path', '_record_index'] as const;
/** Dangling references named in the report. */
export const DANGLING_EXAMPLES = 5;

/** What one bucket found: per reference, references and dangling ones; distinct quarantined records. */
export const BucketResult = z.object({
  planId: z.string(),
  bucket: z.number().int().nonnegative(),
  refs: z.record(
    z.string(),
    z.object({ referenced: z.number(), dangling: z.number(), examples: z.array(z.string()) }),
  ),
  quarantined: z.number().int().nonnegative(),
});
export type BucketResult = z.infer<typeof BucketResult>;

/** Text in byte order of its UTF-8 (as DuckDB sorts VARCHAR), not JavaScript's UTF-16 order. */
export const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** The first examples of the sorted union of `lists`. */
export function firstExamples(lists: readonly (readonly string[])[]): string[] {
  return [...new Set(lists.flat())].sort(byteOrder).slice(0, DANGLING_EXAMPLES);
}

/**
 * Joins the keys every file emitted into one bucket (their Parquet files copied to scratch, joined by
 * DuckDB: `TableInspector.joinKeyBuckets`), and writes the bucket's result.
 */
export async function runKeyBucket(
  plan: ReconcilePlan,
  bucket: number,
  bronze: BronzeManifest,
  deps: {
    readonly lake: ObjectStore;
    readonly contract: SilverContract;
    readonly openInspector: () => Promise<TableInspector>;
    readonly workDir: string;
  },
): Promise<BucketResult> {
  if (bucket >= plan.keyBuckets) {
    throw new ConfigError(`key bucket ${bucket}: the plan ${plan.planId} has ${plan.keyBuckets} bucket(s)`);
  }
  const dir = join(deps.workDir, `reconcile-${bronze.runId}-bucket-${bucket}`);
  await mkdir(dir, { recursive: true });
  const inspector = await deps.openInspector();
  try {
    const files: string[] = [];
    const keys: string[] = [];
    for (const [item, planned] of plan.items.entries()) {
      if (planned.kind !== 'silver' || !planned.emitsKeys) continue;
      const key = reconcileKeysKey(bronze.dataset, bronze.runId, bucket, item);
      const local = join(dir, `item-${item}.parquet`);
      await copyKeys(deps.lake, key, local, item, bucket);
      files.push(local);
      keys.push(key);
    }
    for (const [at, label] of (await inspector.keyFileLabels(files)).entries()) {
      if (label !== plan.planId) {
        throw new PipelineError(
          `${deps.lake.uri(keys[at]!)} belongs to reconciliation plan ${label ?? '(none)'}, not ${plan.planId}: ` +
            'rerun from PlanReconcile',
        );
      }
    }
    const joined = await inspector.joinKeyBuckets(
      files,
      (deps.contract.references ?? []).length,
      DANGLING_EXAMPLES,
    );
    const result: BucketResult = { planId: plan.planId, bucket, ...joined };
    await deps.lake.write(
      reconcileBucketKey(bronze.dataset, bronze.runId, bucket),
      `${JSON.stringify(result)}\n`,
      { contentType: 'application/json' },
    );
    return result;
  } finally {
    await inspector.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function copyKeys(lake: ObjectStore, key: string, local: string, item: number, bucket: number) {
  try {
    await pipeline(await lake.read(key), createWriteStream(local));
  } catch (error) {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    throw new PipelineError(
      `${lake.uri(key)}: reconcile item ${item} left no keys for bucket ${bucket}; every ReconcileItem must ` +
        'finish before the key buckets are joined',
      { cause: error },
    );
  }
}
