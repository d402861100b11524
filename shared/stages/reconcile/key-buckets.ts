import { z } from 'zod';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { ConfigError, ObjectNotFoundError, PipelineError } from '../../errors.ts';
import { reconcileBucketKey, reconcileKeysKey } from '../../lake/reconcile-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { readText } from '../bronze/read-bronze.ts';
import type { ReconcilePlan } from './reconcile-plan.ts';

/**
 * Referential integrity and the quarantine's distinct records, per key bucket: every silver file whose
 * keys matter emits them into buckets by a hash of the key (`keyBucketOf`), so each bucket holds every
 * occurrence of its keys, and one invocation per bucket joins references to targets. Added up over the
 * buckets, the counts are those of one join over whole tables.
 */

/** A quarantined record: its path and index (a record broken several ways has several rows). */
export const QUARANTINE_KEY_COLUMNS = ['record_path', '_record_index'] as const;
/** Dangling references named in the report. */
export const DANGLING_EXAMPLES = 5;

/** The keys one silver file emits into one bucket. */
export const KeysOfFile = z.object({
  planId: z.string(),
  item: z.number().int().nonnegative(),
  /** Per reference (its index in the contract's `references`): values referenced with their counts, targets. */
  refs: z.record(
    z.string(),
    z.object({
      from: z.array(z.tuple([z.string(), z.number().int().positive()])).optional(),
      to: z.array(z.string()).optional(),
    }),
  ),
  /** Distinct quarantined records (`QUARANTINE_KEY_COLUMNS` as JSON). */
  quarantine: z.array(z.string()).optional(),
});
export type KeysOfFile = z.infer<typeof KeysOfFile>;

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

/** The bucket of a key: FNV-1a over its UTF-16 code units, deterministic in every process. */
export function keyBucketOf(key: string, buckets: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % buckets;
}

/** Text in byte order of its UTF-8 (as DuckDB sorts VARCHAR), not JavaScript's UTF-16 order. */
export const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** The first examples of the sorted union of `lists`. */
export function firstExamples(lists: readonly (readonly string[])[]): string[] {
  return [...new Set(lists.flat())].sort(byteOrder).slice(0, DANGLING_EXAMPLES);
}

/** Joins the keys every file emitted into one bucket, and writes the bucket's result. */
export async function runKeyBucket(
  plan: ReconcilePlan,
  bucket: number,
  bronze: BronzeManifest,
  deps: { readonly lake: ObjectStore; readonly contract: SilverContract },
): Promise<BucketResult> {
  if (bucket >= plan.keyBuckets) {
    throw new ConfigError(`key bucket ${bucket}: the plan ${plan.planId} has ${plan.keyBuckets} bucket(s)`);
  }
  const files: KeysOfFile[] = [];
  for (const [item, planned] of plan.items.entries()) {
    if (planned.kind !== 'silver' || !planned.emitsKeys) continue;
    files.push(await readKeys(deps.lake, plan, bronze, bucket, item));
  }
  const result = joinBucket(plan, bucket, files, deps.contract);
  await deps.lake.write(
    reconcileBucketKey(bronze.dataset, bronze.runId, bucket),
    `${JSON.stringify(result)}\n`,
    {
      contentType: 'application/json',
    },
  );
  return result;
}

/** The join of one bucket's keys: a reference resolves when some file of its target table has the value. */
export function joinBucket(
  plan: Pick<ReconcilePlan, 'planId'>,
  bucket: number,
  files: readonly KeysOfFile[],
  contract: SilverContract,
): BucketResult {
  const refs: BucketResult['refs'] = {};
  for (const i of (contract.references ?? []).keys()) {
    const targets = new Set<string>();
    for (const file of files) for (const value of file.refs[i]?.to ?? []) targets.add(value);
    let referenced = 0;
    let dangling = 0;
    const danglingValues = new Set<string>();
    for (const file of files) {
      for (const [value, count] of file.refs[i]?.from ?? []) {
        referenced += count;
        if (!targets.has(value)) {
          dangling += count;
          danglingValues.add(value);
        }
      }
    }
    refs[i] = { referenced, dangling, examples: firstExamples([[...danglingValues]]) };
  }
  const quarantined = new Set(files.flatMap((f) => f.quarantine ?? [])).size;
  return { planId: plan.planId, bucket, refs, quarantined };
}

async function readKeys(
  lake: ObjectStore,
  plan: ReconcilePlan,
  bronze: BronzeManifest,
  bucket: number,
  item: number,
): Promise<KeysOfFile> {
  const key = reconcileKeysKey(bronze.dataset, bronze.runId, bucket, item);
  const text = await readText(lake, key).catch((error: unknown) => {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    throw new PipelineError(
      `${lake.uri(key)}: reconcile item ${item} left no keys for bucket ${bucket}; every ReconcileItem must ` +
        'finish before the key buckets are joined',
      { cause: error },
    );
  });
  const keys = KeysOfFile.parse(JSON.parse(text));
  if (keys.planId !== plan.planId) {
    throw new PipelineError(
      `${lake.uri(key)} belongs to reconciliation plan ${keys.planId}, not ${plan.planId}: rerun from PlanReconcile`,
    );
  }
  return keys;
}
