import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_QUARANTINE_RATE_THRESHOLD } from '../../config/runtime-config.ts';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { SilverManifest } from '../../contracts/silver-manifest.ts';
import { QuarantineThresholdError, ReconciliationError } from '../../errors.ts';
import { QUARANTINE_TABLE, reconciliationKey, silverBuildOf, silverManifestKey } from '../../lake/keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableInspector } from '../../ports/table-inspector.ts';
import { readTableFacts, type TableFacts } from '../../report/table-facts.ts';
import { writeRunReport } from '../../report/write-run-report.ts';
import { lineEnds, readBronzeManifest, readBronzePart, readText } from '../bronze/read-bronze.ts';

export interface ReconcileInput {
  readonly bronzeManifestKey: string;
}

export interface ReconcileDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
  readonly openInspector: () => Promise<TableInspector>;
  /** Local scratch space: Parquet files are downloaded here and checked where they are read. */
  readonly workDir: string;
  /**
   * The share of the run's records that may be quarantined (0–1); above it, or when every record was,
   * the run fails with QuarantineThresholdError. @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05)
   */
  readonly quarantineRateThreshold?: number;
}

/** One thing reconciliation checked. */
export interface Check {
  readonly name: string;
  readonly expected: number | string;
  readonly actual: number | string;
  readonly ok: boolean;
}

export interface ReconciliationReport {
  readonly runId: string;
  readonly dataset: string;
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
  /** When reconciliation started and ended (`finishedAt` = `checkedAt`). */
  readonly timings?: { readonly startedAt: string; readonly finishedAt: string; readonly durationMs: number };
  /** Per silver table, its profile read from its Parquet file (see TableFacts), for the run report. */
  readonly profiles?: TableFacts['profiles'];
  /** A few quarantined records per rule, with the offending value. */
  readonly quarantineExamples?: TableFacts['quarantineExamples'];
}

/**
 * Proves that every record is accounted for, re-reading what was written rather than trusting the
 * writers: bronze parts re-counted and their sha256 re-verified against the manifest; per record path,
 * parsed = bronze = accepted + quarantined; per table, rows derived = rows written + duplicates, and the
 * Parquet files hold exactly the rows written; every declared reference resolves. Writes
 * `reconciliation.json` beside the bronze manifest, then fails with ReconciliationError on any mismatch,
 * or with QuarantineThresholdError when more than the allowed share of records (or every record) was
 * quarantined: accounted for, but not a success.
 */
export async function reconcile(input: ReconcileInput, deps: ReconcileDeps): Promise<ReconciliationReport> {
  const startedAt = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const silver = SilverManifest.parse(
    JSON.parse(await readText(deps.lake, silverManifestKey(silverBuildOf(bronze)))),
  );
  // Bronze and silver are re-read at once: gunzip runs on libuv's pool, the Parquet checks in DuckDB.
  const [bronzeChecks, silverChecks] = await settleBoth(
    checkBronze(bronze, silver, deps.lake),
    checkSilver(silver, deps, join(deps.workDir, `reconcile-${runId}`)),
  );
  const checks = [...bronzeChecks.checks, ...silverChecks.checks];
  const { referenced, dangling } = silverChecks;

  const quarantine = quarantineShare(
    silver,
    deps.quarantineRateThreshold ?? DEFAULT_QUARANTINE_RATE_THRESHOLD,
  );
  const finishedAt = deps.clock.now();
  const report: ReconciliationReport = {
    runId,
    dataset,
    status: checks.every((c) => c.ok) && quarantine.ok ? 'passed' : 'failed',
    checks,
    quarantine,
    quality: qualityScore(bronze, silver, referenced, dangling),
    checkedAt: finishedAt.toISOString(),
    timings: {
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
    },
    profiles: silverChecks.facts.profiles,
    quarantineExamples: silverChecks.facts.quarantineExamples,
  };
  const key = reconciliationKey(dataset, runId);
  await deps.lake.write(key, `${JSON.stringify(report, null, 2)}\n`, { contentType: 'application/json' });
  // The page a person reads, beside the proof; written for a failed reconciliation too.
  await writeRunReport(deps.lake, input.bronzeManifestKey, { bronze, silver, reconciliation: report });
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

/** Collects checks in the order they are made. */
class Checks {
  readonly checks: Check[] = [];
  add(name: string, expected: number | string, actual: number | string): void {
    this.checks.push({ name, expected, actual, ok: expected === actual });
  }
}

/** Bronze parts re-read (a few at once), re-counted and re-hashed; per path, the records' accounting. */
async function checkBronze(
  bronze: BronzeManifest,
  silver: SilverManifest,
  lake: ObjectStore,
): Promise<Checks> {
  const result = new Checks();
  const check = result.add.bind(result);
  const bronzeCounts: Record<string, number> = {};
  const parts = readAhead(bronze.parts, PARTS_IN_FLIGHT, (part) => readBronzePart(lake, part));
  for await (const [part, content] of parts) {
    check(`bronze part ${part.key} sha256`, part.sha256, content.sha256 ?? 'not hashed');
    check(`bronze part ${part.key} uncompressed bytes`, part.uncompressedBytes, content.text.length);
    // Counted and checked in the uncompressed bytes: no line is decoded.
    let lines = 0;
    let inOrder = true;
    let start = 0;
    for (const end of lineEnds(content.text)) {
      if (lineIndex(content.text, start, end) !== part.firstRecordIndex + lines) inOrder = false;
      start = end + 1;
      lines++;
    }
    check(`bronze part ${part.key} records`, part.records, lines);
    check(
      `bronze part ${part.key} record indexes`,
      'consecutive',
      inOrder ? 'consecutive' : 'gaps or repeats',
    );
    bronzeCounts[part.recordName] = (bronzeCounts[part.recordName] ?? 0) + lines;
  }
  for (const [path, parsed] of Object.entries(bronze.records)) {
    check(`${path}: parsed = bronze records`, parsed, bronzeCounts[path] ?? 0);
    const records = silver.records[path];
    check(`${path}: bronze = silver input`, parsed, records?.bronze ?? 0);
    check(
      `${path}: bronze = accepted + quarantined`,
      parsed,
      (records?.accepted ?? 0) + (records?.quarantined ?? 0),
    );
  }

  return result;
}

/** Each table's accounting, its Parquet file re-hashed and re-counted, quarantine and references. */
async function checkSilver(
  silver: SilverManifest,
  deps: ReconcileDeps,
  workDir: string,
): Promise<Checks & { referenced: number; dangling: number; facts: TableFacts }> {
  const outcome = Object.assign(new Checks(), {
    referenced: 0,
    dangling: 0,
    facts: { profiles: {}, quarantineExamples: [] } as TableFacts,
  });
  const check = outcome.add.bind(outcome);
  await mkdir(workDir, { recursive: true });
  const inspector = await deps.openInspector();
  const localFiles: Record<string, string | undefined> = {};
  try {
    for (const [table, result] of Object.entries(silver.tables)) {
      check(
        `${table}: rows derived = written + duplicates`,
        result.rowsIn,
        result.rowsWritten + result.duplicates,
      );
      if (!result.key) {
        check(`${table}: rows written`, 0, result.rowsWritten);
        continue;
      }
      const file = join(workDir, `${table}.parquet`);
      const bytes = await readAll(deps.lake, result.key);
      await writeFile(file, bytes);
      localFiles[table] = file;
      check(
        `${table}: parquet sha256`,
        result.sha256 ?? '',
        createHash('sha256').update(bytes).digest('hex'),
      );
      check(`${table}: parquet rows = rows written`, result.rowsWritten, await inspector.countRows(file));
    }
    const quarantined = Object.values(silver.records).reduce((n, r) => n + r.quarantined, 0);
    const quarantineFile = localFiles[QUARANTINE_TABLE];
    const quarantinedInTable = quarantineFile
      ? await inspector.countDistinct(quarantineFile, ['record_path', '_record_index'])
      : 0;
    check('quarantined records = records in the quarantine table', quarantined, quarantinedInTable);

    for (const reference of deps.contract.references ?? []) {
      const fromFile = localFiles[reference.from.table];
      if (!fromFile) continue;
      const found = await inspector.danglingReferences(
        { file: fromFile, column: reference.from.column },
        { file: localFiles[reference.to.table], column: reference.to.column },
      );
      outcome.referenced += found.referenced;
      outcome.dangling += found.dangling;
      check(
        `${reference.from.table}.${reference.from.column} → ${reference.to.table}.${reference.to.column}: dangling references` +
          (found.examples.length > 0 ? ` (e.g. ${found.examples.join(', ')})` : ''),
        0,
        found.dangling,
      );
    }
    // Read while the files are on local scratch: one more scan of each, never a download of its own.
    outcome.facts = await readTableFacts(inspector, localFiles);
  } finally {
    await inspector.close();
    await rm(workDir, { recursive: true, force: true });
  }

  return outcome;
}

/** Bronze parts read at once: each is held whole (≈ 30 MB uncompressed), gunzip'd on libuv's pool. */
const PARTS_IN_FLIGHT = 3;

/** `read` of each item, at most `inFlight` at once, yielded in item order. */
async function* readAhead<T, R>(
  items: readonly T[],
  inFlight: number,
  read: (item: T) => Promise<R>,
): AsyncGenerator<[T, R]> {
  const pending: Promise<R>[] = [];
  const start = (i: number) => {
    const reading = read(items[i]!);
    // Awaited in turn below; until then a failure must not count as unhandled.
    reading.catch(() => undefined);
    pending.push(reading);
  };
  for (let i = 0; i < Math.min(inFlight, items.length); i++) start(i);
  for (let i = 0; i < items.length; i++) {
    const value = await pending.shift()!;
    if (i + inFlight < items.length) start(i + inFlight);
    yield [items[i]!, value];
  }
}

/** Both results once both have finished (neither left running), or the first failure. */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}

const INDEX_FIELD = Buffer.from(',"index":');

/**
 * The record index from a bronze line's lineage prefix, without parsing the record. The prefix is
 * `{"source":…,"path":…,"index":N,…`; inside the JSON strings before it a quote is always escaped, so
 * the first `,"index":` is the field itself.
 */
function lineIndex(text: Buffer, start: number, end: number): number {
  const at = text.indexOf(INDEX_FIELD, start);
  if (at < 0 || at >= end) return -1;
  let index = 0;
  for (let i = at + INDEX_FIELD.length; i < end; i++) {
    const c = text[i]!;
    if (c < 0x30 || c > 0x39) break;
    index = index * 10 + (c - 0x30);
  }
  return index;
}

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

async function readAll(store: ObjectStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
