import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { contractFingerprint } from '../../contracts/silver/contract-fingerprint.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ConfigError, PipelineError } from '../../errors.ts';
import { inPool } from '../../in-pool.ts';
import { QUARANTINE_TABLE, silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import { reconcilePlanKey, reconcileWorkPrefix } from '../../lake/reconcile-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { readBronzeManifest, readText } from '../bronze/read-bronze.ts';
import { planSilverGroups } from '../silver/silver-group.ts';
import { silverGroupCount } from '../silver/silver-stages.ts';

/**
 * How a run's reconciliation is split so that no invocation re-reads more than its share:
 *
 * - items: each group of consecutive bronze parts (the silver plan's groups: `planSilverGroups`) and each
 *   silver table file; an item re-reads only its own parts or its own file;
 * - key buckets: the reference and quarantine keys the silver files emit, bucketed by a hash of the key,
 *   so that one bucket holds every occurrence of its keys and is joined on its own.
 */

/** Parquet bytes of the key-emitting tables per key bucket, by default: a bucket's keys fit in memory. */
export const DEFAULT_KEY_BUCKET_TARGET_BYTES = 256 * 1024 * 1024;
/** Most key buckets (items of one inline Map). */
export const MAX_KEY_BUCKETS = 1000;

export interface ReconcilePlanOptions {
  /** Uncompressed bronze bytes per group, as the silver plan has it. @default the silver plan's */
  readonly targetGroupBytes?: number;
  /** At least this many bronze groups, parts permitting. @default 1 */
  readonly minGroups?: number;
  /** Parquet bytes of the key-emitting tables per key bucket. @default DEFAULT_KEY_BUCKET_TARGET_BYTES */
  readonly keyBucketTargetBytes?: number;
  /** At least this many key buckets. @default 1 */
  readonly minKeyBuckets?: number;
}

const BronzeGroupItem = z.object({
  kind: z.literal('bronze'),
  group: z.number().int().nonnegative(),
  /** The group's parts in the bronze manifest: `[firstPart, endPart)`. */
  firstPart: z.number().int().nonnegative(),
  endPart: z.number().int().nonnegative(),
});
const SilverFileItem = z.object({
  kind: z.literal('silver'),
  table: z.string(),
  key: z.string(),
  /** What the silver manifest says of the file. */
  sha256: z.string().optional(),
  bytes: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative().optional(),
  /** The file's table is referenced, references another or is the quarantine: its keys go to buckets. */
  emitsKeys: z.boolean(),
});

export const ReconcilePlan = z.object({
  /** Names this plan: every result carries it, so a result of another plan is never added up. */
  planId: z.string(),
  bronzeManifestKey: z.string(),
  silverManifestKey: z.string(),
  items: z.array(z.discriminatedUnion('kind', [BronzeGroupItem, SilverFileItem])),
  keyBuckets: z.number().int().positive(),
});
export type ReconcilePlan = z.infer<typeof ReconcilePlan>;
export type ReconcileItem = ReconcilePlan['items'][number];
export type SilverFileItem = z.infer<typeof SilverFileItem>;

/** A silver table's files, as its manifest lists them. */
export interface SilverTableFile {
  readonly key: string;
  readonly sha256?: string;
  readonly bytes: number;
  /** Rows of this file, when the manifest says (a table of one file: its `rowsWritten`). */
  readonly rows?: number;
}

/** The files of a table: one per merge bucket that got rows (none: a table without rows). */
export function silverTableFiles(table: SilverManifest['tables'][string]): SilverTableFile[] {
  return table.files.map((file) => ({
    key: file.key,
    sha256: file.sha256,
    bytes: file.bytes,
    rows: file.rows,
  }));
}

/** The tables whose keys reconciliation joins: both ends of each reference, and the quarantine. */
export function keyTables(contract: SilverContract): Set<string> {
  const tables = new Set<string>([QUARANTINE_TABLE]);
  for (const r of contract.references ?? []) tables.add(r.from.table).add(r.to.table);
  return tables;
}

/** The run's manifests, read once per invocation. */
export interface ReconcileManifests {
  readonly bronze: BronzeManifest;
  readonly silver: SilverManifest;
  readonly silverManifestKey: string;
  /** The silver manifest's text, as stored (the plan's id hashes it). */
  readonly silverText: string;
}

export async function readManifests(
  lake: ObjectStore,
  bronzeManifestKey: string,
  contract: SilverContract,
): Promise<ReconcileManifests> {
  const bronze = await readBronzeManifest(lake, bronzeManifestKey);
  const key = silverManifestKey(silverBuildOf(bronze, contractFingerprint(contract)));
  const silverText = await readText(lake, key);
  return { bronze, silver: SilverManifest.parse(JSON.parse(silverText)), silverManifestKey: key, silverText };
}

/** Decides the items and key buckets of a run's reconciliation; deterministic for the same manifests. */
export function reconcilePlan(
  manifests: ReconcileManifests,
  bronzeManifestKey: string,
  contract: SilverContract,
  options: ReconcilePlanOptions = {},
): ReconcilePlan {
  const { bronze, silver } = manifests;
  const groupCount = silverGroupCount(bronze.parts, {
    targetGroupBytes: options.targetGroupBytes,
    minGroups: options.minGroups,
  });
  const groups = bronze.parts.length === 0 ? [] : planSilverGroups(bronze.parts, groupCount);
  const withKeys = keyTables(contract);
  const files = Object.entries(silver.tables).flatMap(([table, result]) =>
    silverTableFiles(result).map(
      (file): SilverFileItem => ({
        kind: 'silver',
        table,
        key: file.key,
        ...(file.sha256 !== undefined && { sha256: file.sha256 }),
        bytes: file.bytes,
        ...(file.rows !== undefined && { rows: file.rows }),
        emitsKeys: withKeys.has(table),
      }),
    ),
  );
  const keyBytes = files.filter((f) => f.emitsKeys).reduce((n, f) => n + f.bytes, 0);
  const byBytes = Math.ceil(
    keyBytes / Math.max(1, options.keyBucketTargetBytes ?? DEFAULT_KEY_BUCKET_TARGET_BYTES),
  );
  const keyBuckets = Math.max(
    1,
    Math.min(Math.max(byBytes, Math.floor(options.minKeyBuckets ?? 1)), MAX_KEY_BUCKETS),
  );
  const items = [
    ...groups.map((g) => ({
      kind: 'bronze' as const,
      group: g.index,
      firstPart: g.firstPart,
      endPart: g.endPart,
    })),
    ...files,
  ];
  const planId = createHash('sha256')
    .update(bronzeManifestKey)
    .update('\0')
    .update(manifests.silverText)
    .update('\0')
    .update(JSON.stringify({ items, keyBuckets }))
    .digest('hex')
    .slice(0, 16);
  return { planId, bronzeManifestKey, silverManifestKey: manifests.silverManifestKey, items, keyBuckets };
}

/** Writes a fresh plan: whatever an earlier attempt left in the work prefix is removed first. */
export async function writeReconcilePlan(
  lake: ObjectStore,
  bronze: BronzeManifest,
  plan: ReconcilePlan,
): Promise<void> {
  await deleteReconcileWork(lake, bronze);
  await lake.write(reconcilePlanKey(bronze.dataset, bronze.runId), `${JSON.stringify(plan)}\n`, {
    contentType: 'application/json',
  });
}

/** The plan `PlanReconcile` wrote for this bronze run; an error naming what to do when there is none. */
export async function readReconcilePlan(
  lake: ObjectStore,
  bronze: BronzeManifest,
  bronzeManifestKey: string,
) {
  const key = reconcilePlanKey(bronze.dataset, bronze.runId);
  const text = await readText(lake, key).catch((error: unknown) => {
    throw new PipelineError(
      `${lake.uri(key)}: no reconciliation plan for this run; PlanReconcile (op "plan") must run first`,
      { cause: error },
    );
  });
  const plan = ReconcilePlan.parse(JSON.parse(text));
  if (plan.bronzeManifestKey !== bronzeManifestKey) {
    throw new ConfigError(
      `${lake.uri(key)} plans the reconciliation of ${plan.bronzeManifestKey}, not of ${bronzeManifestKey}`,
    );
  }
  return plan;
}

/** Removes a run's reconciliation work objects. */
export async function deleteReconcileWork(lake: ObjectStore, bronze: BronzeManifest): Promise<void> {
  const keys: string[] = [];
  for await (const object of lake.list(reconcileWorkPrefix(bronze.dataset, bronze.runId)))
    keys.push(object.key);
  // A result per item and key bucket, thousands for a large file: several deletes at once.
  await inPool(keys, WORK_DELETES_IN_FLIGHT, (key) => lake.delete(key));
}

/** Work objects deleted at once. */
const WORK_DELETES_IN_FLIGHT = 16;
