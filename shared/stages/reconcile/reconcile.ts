import { DEFAULT_QUARANTINE_RATE_THRESHOLD } from '../../config/runtime-config.ts';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import type { SilverManifest } from '../../contracts/silver-manifest.ts';
import {
  ObjectNotFoundError,
  PipelineError,
  QuarantineThresholdError,
  ReconciliationError,
} from '../../errors.ts';
import { inPool, mapInPool } from '../../in-pool.ts';
import { QUARANTINE_TABLE, reconciliationReportKey, reportKeyBeside } from '../../lake/keys.ts';
import { reconcileBucketKey, reconcileItemKey } from '../../lake/reconcile-work-keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableInspector } from '../../ports/table-inspector.ts';
import { combineTableFacts, type FileFacts, type TableFacts } from '../../report/table-facts.ts';
import { writeRunReport } from '../../report/write-run-report.ts';
import type { RunCostReport } from '../../workflow/run-cost.ts';
import { readBronzeManifest, readText } from '../bronze/read-bronze.ts';
import { BucketResult, firstExamples, runKeyBucket } from './key-buckets.ts';
import { type Check, check, ItemResult, runReconcileItem } from './reconcile-items.ts';
import {
  deleteReconcileWork,
  type ReconcilePlan,
  type ReconcilePlanOptions,
  readManifests,
  readReconcilePlan,
  reconcilePlan,
  silverTableFiles,
  writeReconcilePlan,
} from './reconcile-plan.ts';

export type { Check } from './reconcile-items.ts';

/**
 * Reconciliation in steps that each re-read only their share, so that it reaches any size:
 *
 *   PlanReconcile        `planReconcile`: the items (groups of bronze parts, silver table files) and the
 *                        key bucket count, written to the run's work prefix.
 *   ReconcileItem        `reconcileItem`, once per item (a Map): re-counts and re-hashes its bronze parts,
 *                        or hashes its silver file, counts its rows from the footer and emits its keys
 *                        into the buckets; writes a small result.
 *   ReconcileKeyBucket   `reconcileKeyBucket`, once per bucket (a Map): joins the bucket's references to
 *                        their targets, counts its distinct quarantined records.
 *   Reconcile            `finishReconcile`: adds the results up into the report, writes it, fails on any
 *                        mismatch.
 *
 * `reconcile` runs all four in one invocation (a small source; the handler's event without `op`): the
 * same functions, so the same report.
 */

export interface ReconcileInput {
  readonly bronzeManifestKey: string;
}

/** The last step's input: a rebuild's evidence goes to a folder of its own (`rebuildEvidencePrefix`). */
export interface FinishReconcileInput extends ReconcileInput {
  /** A rebuild of a committed version (`PlanRebuild`), not the run's own first build. */
  readonly rebuild?: boolean;
}

export interface ReconcileDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
  readonly openInspector: () => Promise<TableInspector>;
  /** Local scratch space: a silver file whose key columns are read is copied here, one at a time per item. */
  readonly workDir: string;
  /**
   * The share of the run's records that may be quarantined (0–1); above it, or when every record was,
   * the run fails with QuarantineThresholdError. @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05)
   */
  readonly quarantineRateThreshold?: number;
  /** How the run is split into items and key buckets. @default by size (see ReconcilePlanOptions) */
  readonly plan?: ReconcilePlanOptions;
  /** Items `reconcile` (all in one invocation) re-reads at once. @default 2 */
  readonly parallelism?: number;
  /** What the run cost so far, for its report (undefined: not known, e.g. outside a workflow). */
  readonly priceRun?: (bronze: BronzeManifest) => Promise<RunCostReport | undefined>;
}

export interface ReconciliationReport {
  readonly runId: string;
  readonly dataset: string;
  /** The silver build it proves (its manifest); absent in reports written before builds were named. */
  readonly silverManifestKey?: string;
  /** Set for a rebuild's reconciliation (`sluice rebuild`), whose evidence has a folder of its own. */
  readonly rebuild?: boolean;
  /** `failed` when a check failed or too many records were quarantined (`quarantine.ok`). */
  readonly status: 'passed' | 'failed';
  readonly checks: readonly Check[];
  /** Records of the run set aside in quarantine, against the share allowed. */
  readonly quarantine: {
    readonly records: number;
    readonly quarantined: number;
    /** quarantined / records (0 without records). */
    readonly share: number;
    readonly threshold: number;
    /** Not more than `threshold`, and not every record. */
    readonly ok: boolean;
  };
  readonly quality: {
    readonly score: number;
    readonly completeness: number;
    readonly validity: number;
    readonly uniqueness: number;
    readonly integrity: number;
  };
  readonly checkedAt: string;
  /** When reconciliation started and ended (`finishedAt` = `checkedAt`), where known. */
  readonly timings?: { readonly startedAt: string; readonly finishedAt: string; readonly durationMs: number };
  /** Per silver table, its profile read from its Parquet file (see TableFacts), for the run report. */
  readonly profiles?: TableFacts['profiles'];
  /** A few quarantined records per rule, with the offending value. */
  readonly quarantineExamples?: TableFacts['quarantineExamples'];
  /**
   * What the run cost up to its reconciliation (docs/SCALING.md, "What a run cost"): its Lambda
   * invocations, GB-seconds, S3 requests and state transitions, per stage, priced.
   */
  readonly cost?: RunCostReport;
}

/** What `PlanReconcile` returns: the Map items, indexes only, and their counts. */
export interface ReconcilePlanSummary {
  readonly planId: string;
  readonly items: readonly { readonly item: number }[];
  readonly buckets: readonly { readonly bucket: number }[];
  readonly bronzeGroups: number;
  readonly silverFiles: number;
  readonly keyBuckets: number;
}

/** Plans a run's reconciliation (replacing any earlier attempt's work) and returns the Map items. */
export async function planReconcile(
  input: ReconcileInput,
  deps: Pick<ReconcileDeps, 'lake' | 'contract' | 'plan'>,
): Promise<ReconcilePlanSummary> {
  const manifests = await readManifests(deps.lake, input.bronzeManifestKey, deps.contract);
  const plan = reconcilePlan(manifests, input.bronzeManifestKey, deps.contract, deps.plan);
  await writeReconcilePlan(deps.lake, manifests.bronze, plan);
  return summary(plan);
}

function summary(plan: ReconcilePlan): ReconcilePlanSummary {
  const bronzeGroups = plan.items.filter((i) => i.kind === 'bronze').length;
  return {
    planId: plan.planId,
    items: plan.items.map((_, item) => ({ item })),
    buckets: Array.from({ length: plan.keyBuckets }, (_, bucket) => ({ bucket })),
    bronzeGroups,
    silverFiles: plan.items.length - bronzeGroups,
    keyBuckets: plan.keyBuckets,
  };
}

/** One item of the plan: re-reads its share and writes its result. */
export async function reconcileItem(
  input: ReconcileInput & { readonly item: number },
  deps: Pick<ReconcileDeps, 'lake' | 'contract' | 'openInspector' | 'workDir'>,
): Promise<{ readonly item: number; readonly kind: ItemResult['kind'] }> {
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const plan = await readReconcilePlan(deps.lake, bronze, input.bronzeManifestKey);
  const result = await runReconcileItem(plan, input.item, bronze, deps);
  return { item: input.item, kind: result.kind };
}

/** One key bucket of the plan: joins its keys and writes its result. */
export async function reconcileKeyBucket(
  input: ReconcileInput & { readonly bucket: number },
  deps: Pick<ReconcileDeps, 'lake' | 'contract' | 'openInspector' | 'workDir'>,
): Promise<{ readonly bucket: number; readonly dangling: number }> {
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const plan = await readReconcilePlan(deps.lake, bronze, input.bronzeManifestKey);
  const result = await runKeyBucket(plan, input.bucket, bronze, deps);
  return { bucket: input.bucket, dangling: Object.values(result.refs).reduce((n, r) => n + r.dangling, 0) };
}

/** Every step in this invocation: plan, items (`parallelism` at once), key buckets, the report. */
export async function reconcile(
  input: FinishReconcileInput,
  deps: ReconcileDeps,
): Promise<ReconciliationReport> {
  const planned = await planReconcile(input, deps);
  await inPool(planned.items, deps.parallelism ?? 2, ({ item }) => reconcileItem({ ...input, item }, deps));
  await inPool(planned.buckets, 1, ({ bucket }) => reconcileKeyBucket({ ...input, bucket }, deps));
  return finishReconcile(input, deps);
}

/**
 * Proves that every record is accounted for, from what the items re-read rather than what the writers
 * said: bronze parts re-counted and their sha256 re-verified against the manifest; per record path,
 * parsed = bronze = accepted + quarantined; per table, rows derived = rows written + duplicates, and the
 * Parquet files hold exactly the rows written; every declared reference resolves. Writes
 * `reconciliation.json` and `report.html` beside the bronze manifest (a rebuild's in its own folder,
 * `rebuildEvidencePrefix`, so that a failed rebuild never replaces the current build's proof), then fails with ReconciliationError on any mismatch,
 * or with QuarantineThresholdError when more than the allowed share of records (or every record) was
 * quarantined: accounted for, but not a success.
 */
export async function finishReconcile(
  input: FinishReconcileInput,
  deps: Pick<ReconcileDeps, 'lake' | 'clock' | 'contract' | 'quarantineRateThreshold' | 'priceRun'>,
): Promise<ReconciliationReport> {
  const { bronze, silver, silverManifestKey } = await readManifests(
    deps.lake,
    input.bronzeManifestKey,
    deps.contract,
  );
  const { runId, dataset } = bronze;
  const plan = await readReconcilePlan(deps.lake, bronze, input.bronzeManifestKey);
  const items = await mapInPool(plan.items, RESULTS_IN_FLIGHT, (_, item) =>
    readResult(deps.lake, plan, reconcileItemKey(dataset, runId, item), ItemResult, `reconcile item ${item}`),
  );
  const buckets = await mapInPool(Array.from({ length: plan.keyBuckets }), RESULTS_IN_FLIGHT, (_, bucket) =>
    readResult(
      deps.lake,
      plan,
      reconcileBucketKey(dataset, runId, bucket),
      BucketResult,
      `key bucket ${bucket}`,
    ),
  );
  const bronzeChecks = addUpBronze(bronze, silver, items);
  const silverChecks = addUpSilver(silver, items, buckets, deps.contract);
  const checks = [...bronzeChecks, ...silverChecks.checks];
  const quarantine = quarantineShare(
    silver,
    deps.quarantineRateThreshold ?? DEFAULT_QUARANTINE_RATE_THRESHOLD,
  );
  // Priced last, so that the reconciliation's own work is in it, as far as it has gone.
  const cost = await deps.priceRun?.(bronze);
  const finishedAt = deps.clock.now();
  const report: ReconciliationReport = {
    runId,
    dataset,
    silverManifestKey,
    ...(input.rebuild && { rebuild: true }),
    status: checks.every((c) => c.ok) && quarantine.ok ? 'passed' : 'failed',
    checks,
    quarantine,
    quality: qualityScore(bronze, silver, silverChecks.referenced, silverChecks.dangling),
    checkedAt: finishedAt.toISOString(),
    ...tableFacts(items),
    ...(cost && { cost }),
  };
  const key = reconciliationReportKey(report);
  await deps.lake.write(key, `${JSON.stringify(report, null, 2)}\n`, { contentType: 'application/json' });
  // The page a person reads, beside the proof; written for a failed reconciliation too.
  await writeRunReport(
    deps.lake,
    input.bronzeManifestKey,
    { bronze, silver, reconciliation: report },
    reportKeyBeside(key),
  );
  await deleteReconcileWork(deps.lake, bronze);
  const failed = checks.filter((c) => !c.ok).map(describeMismatch);
  if (failed.length > 0) throw new ReconciliationError(failed, deps.lake.uri(key));
  if (!quarantine.ok) {
    throw new QuarantineThresholdError(
      quarantine.quarantined,
      quarantine.records,
      quarantine.threshold,
      deps.lake.uri(key),
    );
  }
  return report;
}

/** The run report's table facts, from what the silver items read of their files (in plan order). */
function tableFacts(items: readonly ItemResult[]): TableFacts {
  const files: Record<string, FileFacts[]> = {};
  for (const item of items) {
    if (item.kind !== 'silver' || !item.facts) continue;
    files[item.table] ??= [];
    files[item.table]!.push(item.facts);
  }
  return combineTableFacts(files);
}

/** A step's result, checked to belong to this plan; an error saying which step did not run. */
async function readResult<T extends { planId: string }>(
  lake: ObjectStore,
  plan: ReconcilePlan,
  key: string,
  schema: { parse(value: unknown): T },
  what: string,
): Promise<T> {
  const text = await readText(lake, key).catch((error: unknown) => {
    if (!(error instanceof ObjectNotFoundError)) throw error;
    throw new PipelineError(
      `${lake.uri(key)}: ${what} left no result; every item and bucket must finish first`,
      {
        cause: error,
      },
    );
  });
  const result = schema.parse(JSON.parse(text));
  if (result.planId !== plan.planId) {
    throw new PipelineError(
      `${lake.uri(key)}: ${what} ran for plan ${result.planId}, not ${plan.planId}: rerun from PlanReconcile`,
    );
  }
  return result;
}

/** The bronze groups' checks in part order, then per record path the records' accounting. */
function addUpBronze(bronze: BronzeManifest, silver: SilverManifest, items: readonly ItemResult[]): Check[] {
  const checks: Check[] = [];
  const bronzeCounts: Record<string, number> = {};
  for (const item of items) {
    if (item.kind !== 'bronze') continue;
    checks.push(...item.checks);
    for (const [path, n] of Object.entries(item.records)) bronzeCounts[path] = (bronzeCounts[path] ?? 0) + n;
  }
  for (const [path, parsed] of Object.entries(bronze.records)) {
    checks.push(check(`${path}: parsed = bronze records`, parsed, bronzeCounts[path] ?? 0));
    const records = silver.records[path];
    checks.push(check(`${path}: bronze = silver input`, parsed, records?.bronze ?? 0));
    checks.push(
      check(
        `${path}: bronze = accepted + quarantined`,
        parsed,
        (records?.accepted ?? 0) + (records?.quarantined ?? 0),
      ),
    );
  }
  return checks;
}

/** Each table's accounting, its files' checksums and rows, the quarantine's records, the references. */
function addUpSilver(
  silver: SilverManifest,
  items: readonly ItemResult[],
  buckets: readonly BucketResult[],
  contract: SilverContract,
): { checks: Check[]; referenced: number; dangling: number } {
  const checks: Check[] = [];
  const filesOf = (table: string) =>
    items.filter(
      (i): i is Extract<ItemResult, { kind: 'silver' }> => i.kind === 'silver' && i.table === table,
    );
  for (const [table, result] of Object.entries(silver.tables)) {
    checks.push(
      check(
        `${table}: rows derived = written + duplicates`,
        result.rowsIn,
        result.rowsWritten + result.duplicates,
      ),
    );
    const files = filesOf(table);
    if (files.length === 0) {
      checks.push(check(`${table}: rows written`, 0, result.rowsWritten));
      continue;
    }
    // One file keeps the check names of a table of one file; K files name each one.
    const name = (key: string) => (files.length === 1 ? table : `${table} ${key.split('/').at(-1)}`);
    for (const file of files) {
      const listed: { sha256?: string; rows?: number } =
        silverTableFiles(result).find((f) => f.key === file.key) ?? {};
      checks.push(check(`${name(file.key)}: parquet sha256`, listed.sha256 ?? '', file.sha256));
      if (file.keys !== undefined)
        checks.push(check(`${name(file.key)}: key columns`, 'readable', file.keys));
      if (files.length > 1 && listed.rows !== undefined) {
        checks.push(check(`${name(file.key)}: parquet rows`, listed.rows, file.rows));
      }
    }
    const unreadable = files.find((f) => typeof f.rows === 'string');
    const rows = unreadable ? unreadable.rows : files.reduce((n, f) => n + (f.rows as number), 0);
    checks.push(check(`${table}: parquet rows = rows written`, result.rowsWritten, rows));
  }
  const quarantined = Object.values(silver.records).reduce((n, r) => n + r.quarantined, 0);
  checks.push(
    check(
      'quarantined records = records in the quarantine table',
      quarantined,
      buckets.reduce((n, b) => n + b.quarantined, 0),
    ),
  );
  let referenced = 0;
  let dangling = 0;
  for (const [i, reference] of (contract.references ?? []).entries()) {
    if (filesOf(reference.from.table).length === 0) continue;
    const found = buckets.map((b) => b.refs[i] ?? { referenced: 0, dangling: 0, examples: [] });
    const refs = found.reduce((n, f) => n + f.referenced, 0);
    const dangles = found.reduce((n, f) => n + f.dangling, 0);
    const examples = firstExamples(found.map((f) => f.examples));
    referenced += refs;
    dangling += dangles;
    checks.push(
      check(
        `${reference.from.table}.${reference.from.column} → ${reference.to.table}.${reference.to.column}: dangling references` +
          (examples.length > 0 ? ` (e.g. ${examples.join(', ')})` : ''),
        0,
        dangles,
      ),
    );
  }
  return { checks, referenced, dangling };
}

/** The run's quarantined records against the share allowed; all of them is never allowed. */
function quarantineShare(silver: SilverManifest, threshold: number): ReconciliationReport['quarantine'] {
  const records = Object.values(silver.records);
  const quarantined = records.reduce((n, r) => n + r.quarantined, 0);
  const total = records.reduce((n, r) => n + r.accepted + r.quarantined, 0);
  const share = total === 0 ? 0 : quarantined / total;
  return {
    records: total,
    quarantined,
    share: Math.round(share * 10_000) / 10_000,
    threshold,
    ok: share <= threshold && (quarantined === 0 || quarantined < total),
  };
}

/** Small results read at once by the last step (thousands of items must not open thousands of sockets). */
const RESULTS_IN_FLIGHT = 16;

function describeMismatch(c: Check): string {
  if (typeof c.expected === 'number' && typeof c.actual === 'number') {
    const off = c.actual - c.expected;
    return `${c.name}: expected ${c.expected}, found ${c.actual} (${off > 0 ? '+' : ''}${off})`;
  }
  return `${c.name}: expected ${c.expected}, found ${c.actual}`;
}

/**
 * A 0–100 score per file from four shares, each 0–1:
 * - completeness: parsed records that silver accounted for (accepted or quarantined);
 * - validity: records accepted rather than quarantined, times rows kept without a warning
 *   (`accepted / (accepted + quarantined) × (1 − warnings / rows)`);
 * - uniqueness: rows not duplicated;
 * - integrity: references that resolve.
 * score = 100 × (0.3 completeness + 0.3 validity + 0.2 uniqueness + 0.2 integrity), rounded.
 */
export function qualityScore(
  bronze: Pick<BronzeManifest, 'records'>,
  silver: Pick<SilverManifest, 'records' | 'tables' | 'violations'>,
  referenced: number,
  dangling: number,
): ReconciliationReport['quality'] {
  const parsed = Object.values(bronze.records).reduce((n, r) => n + r, 0);
  const records = Object.values(silver.records);
  const accepted = records.reduce((n, r) => n + r.accepted, 0);
  const quarantined = records.reduce((n, r) => n + r.quarantined, 0);
  const tables = Object.entries(silver.tables).filter(([name]) => name !== QUARANTINE_TABLE);
  const rowsIn = tables.reduce((n, [, t]) => n + t.rowsIn, 0);
  const duplicates = tables.reduce((n, [, t]) => n + t.duplicates, 0);
  const warnings = Object.values(silver.violations)
    .filter((v) => v.severity === 'warn')
    .reduce((n, v) => n + v.count, 0);
  const share = (part: number, whole: number) => (whole === 0 ? 1 : Math.max(0, 1 - part / whole));
  const completeness = parsed === 0 ? 1 : Math.min(1, (accepted + quarantined) / parsed);
  const validity = share(quarantined, accepted + quarantined) * share(warnings, rowsIn);
  const uniqueness = share(duplicates, rowsIn);
  const integrity = share(dangling, referenced);
  const score = Math.round(100 * (0.3 * completeness + 0.3 * validity + 0.2 * uniqueness + 0.2 * integrity));
  const round = (x: number) => Math.round(x * 10_000) / 10_000;
  return {
    score,
    completeness: round(completeness),
    validity: round(validity),
    uniqueness: round(uniqueness),
    integrity: round(integrity),
  };
}
