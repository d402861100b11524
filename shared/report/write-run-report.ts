import type { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { SilverManifest } from '../contracts/silver-manifest.ts';
import { bronzeRunPrefix, reconciliationKey, runReportKey, silverManifestsPrefix } from '../lake/keys.ts';
import { readTextIfPresent } from '../lake/read-json.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { readBronzeManifest } from '../stages/bronze/read-bronze.ts';
import type { ReconciliationReport } from '../stages/reconcile/reconcile.ts';
import { type FanOutFacts, type RunReportData, renderRunReport } from './render-run-report.ts';

/** Listed files' outcomes shown in a report: the failures first, then successes up to this many in all. */
export const MAX_FAN_OUT_ROWS = 500;

/**
 * Renders the run report of a bronze run from what the lake holds (its bronze and silver manifests, its
 * reconciliation and fan-out reports) and writes it as `report.html` beside reconciliation.json (or at
 * `key`: a rebuild's, beside its own reconciliation). `known` saves re-reading what the caller holds
 * already. Returns the report's key.
 */
export async function writeRunReport(
  lake: ObjectStore,
  bronzeManifestKey: string,
  known: Partial<Pick<RunReportData, 'bronze' | 'silver' | 'reconciliation'>> = {},
  key?: string,
): Promise<string> {
  const data = await readRunReportData(lake, bronzeManifestKey, known);
  key ??= runReportKey(data.bronze.dataset, data.bronze.runId);
  await lake.write(key, renderRunReport(data), { contentType: 'text/html; charset=utf-8' });
  return key;
}

/** Everything a run report shows, read from the lake (what is absent stays undefined). */
export async function readRunReportData(
  lake: ObjectStore,
  bronzeManifestKey: string,
  known: Partial<Pick<RunReportData, 'bronze' | 'silver' | 'reconciliation'>> = {},
): Promise<RunReportData> {
  const bronze = known.bronze ?? (await readBronzeManifest(lake, bronzeManifestKey));
  const reconciliationText = known.reconciliation
    ? undefined
    : await readTextIfPresent(lake, reconciliationKey(bronze.dataset, bronze.runId));
  const reconciliation =
    known.reconciliation ??
    (reconciliationText === undefined ? undefined : (JSON.parse(reconciliationText) as ReconciliationReport));
  // The build the reconciliation proves, not merely the newest: a rebuild that failed made a newer one.
  // Another run of the same version may have built silver; only this run's numbers belong here.
  const silver = known.silver ?? (await silverOfReport(lake, bronze, reconciliation));
  const ownSilver = silver?.runId === bronze.runId ? silver : undefined;
  return {
    bronze,
    silver: ownSilver,
    reconciliation,
    fanOut: await readFanOut(lake, bronze),
    generatedAt: reconciliation?.checkedAt ?? bronze.timings.finishedAt,
  };
}

/**
 * The silver build a run's report describes: the one its reconciliation names; else (no reconciliation
 * yet, a run in progress or interrupted, or one written before reports named their build) the newest
 * build this run made.
 */
async function silverOfReport(
  lake: ObjectStore,
  bronze: BronzeManifest,
  reconciliation: ReconciliationReport | undefined,
): Promise<SilverManifest | undefined> {
  const key = reconciliation?.silverManifestKey;
  if (key === undefined) return latestSilverOfRun(lake, bronze);
  const text = await readTextIfPresent(lake, key);
  const parsed = text === undefined ? undefined : SilverManifest.safeParse(JSON.parse(text));
  return parsed?.success ? parsed.data : undefined;
}

/**
 * The newest silver build of a run's version that this run built: a version has a build per config and
 * contract it was built under (`sluice rebuild`).
 */
async function latestSilverOfRun(
  lake: ObjectStore,
  bronze: BronzeManifest,
): Promise<SilverManifest | undefined> {
  let latest: SilverManifest | undefined;
  for await (const object of lake.list(
    silverManifestsPrefix(bronze.dataset, bronze.sourceId, bronze.version),
  )) {
    const text = await readTextIfPresent(lake, object.key);
    const parsed = text === undefined ? undefined : SilverManifest.safeParse(JSON.parse(text));
    if (!parsed?.success || parsed.data.runId !== bronze.runId) continue;
    if (!latest || parsed.data.timings.finishedAt > latest.timings.finishedAt) latest = parsed.data;
  }
  return latest;
}

/** The fan-out of the run's latest execution that finished one (its summary and listed files' outcomes). */
async function readFanOut(lake: ObjectStore, bronze: BronzeManifest): Promise<FanOutFacts | undefined> {
  const prefix = `${bronzeRunPrefix(bronze.dataset, bronze.runId)}fan-out/`;
  const summaries: { key: string; writtenAt: string }[] = [];
  for await (const object of lake.list(prefix)) {
    if (!object.key.endsWith('/summary.json')) continue;
    const text = await readTextIfPresent(lake, object.key);
    if (text !== undefined) summaries.push({ key: object.key, writtenAt: JSON.parse(text).writtenAt ?? '' });
  }
  const latest = summaries.sort((a, b) => a.writtenAt.localeCompare(b.writtenAt)).at(-1);
  if (!latest) return undefined;
  const folder = latest.key.slice(0, -'summary.json'.length);
  const summary = JSON.parse((await readTextIfPresent(lake, latest.key)) ?? '{}') as FanOutFacts['summary'];
  const failed: FanOutFacts['outcomes'][number][] = [];
  const succeeded: FanOutFacts['outcomes'][number][] = [];
  for await (const object of lake.list(folder)) {
    if (!/\/page-\d+\.json$/.test(object.key)) continue;
    const page = JSON.parse((await readTextIfPresent(lake, object.key)) ?? '{"outcomes":[]}') as {
      outcomes: FanOutFacts['outcomes'];
    };
    for (const outcome of page.outcomes) (outcome.status === 'failed' ? failed : succeeded).push(outcome);
  }
  const outcomes = [...failed, ...succeeded].slice(0, MAX_FAN_OUT_ROWS);
  // The folder's location from a key in it: a folder itself is not a key.
  const summaryUri = lake.uri(latest.key);
  return { summary, outcomes, folder: summaryUri.slice(0, summaryUri.length - 'summary.json'.length) };
}
