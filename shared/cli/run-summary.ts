import type { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import type {
  FanOutResult,
  LocalPipelineResult,
  LocalRunResult,
  LocalUnchangedResult,
} from '../pipeline/pipeline-types.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { kindName } from '../stages/parse/json-record-scanner.ts';
import type { MergeSilverStateResult } from '../stages/silver/merge-state.ts';
import { errorName } from './error-name.ts';
import { costLine, formatBytes, formatCount, formatDuration, formatRate } from './format.ts';
import { inCliTerms } from './option-flags.ts';

function countBronze(parts: BronzeManifest['parts']): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const part of parts) counts[part.recordName] = (counts[part.recordName] ?? 0) + part.records;
  return counts;
}

/** How long a run took, in all and per stage (in the order they ran). */
export interface RunTimings {
  readonly totalMs: number;
  readonly stages: readonly { readonly stage: string; readonly ms: number }[];
}

/** Collects the start of each stage as a run announces it; a stage lasts until the next one starts. */
export class StageTimes {
  private readonly starts: { stage: string; at: number }[] = [];

  constructor(private readonly startedAt: number) {}

  started(stage: string, at: number): void {
    // Stages announce themselves once per step (each ingest slice, each silver step): keep the first.
    // The first stage counts from the start of the run (setup included), so the stages add up to the total.
    if (this.starts.at(-1)?.stage !== stage)
      this.starts.push({ stage, at: this.starts.length === 0 ? this.startedAt : at });
  }

  end(at: number): RunTimings {
    const stages = this.starts.map((s, i) => ({ stage: s.stage, ms: (this.starts[i + 1]?.at ?? at) - s.at }));
    return { totalMs: at - this.startedAt, stages };
  }
}

/**
 * How a run that completed ended: `reconciled` (every check passed and nothing failed), `committed` (a
 * bronze-only dataset: bronze committed, no silver to reconcile) or `failed`, with the `problems` that
 * made it fail (a table of contents' listed files that failed). A run that did not complete never gets
 * here: it failed with an error.
 */
export function runOutcome(result: LocalPipelineResult): {
  readonly status: 'reconciled' | 'committed' | 'unchanged' | 'failed';
  readonly problems: readonly string[];
} {
  const problems: string[] = [];
  if (result.fanOut) {
    const files = result.fanOut.files;
    const failed = files.filter((f) => f.status === 'failed').length;
    const refused = files.filter((f) => f.status === 'rejected').length;
    if (failed + refused > 0) {
      problems.push(
        `${formatCount(failed + refused)} of ${formatCount(files.length)} listed files failed` +
          (refused > 0 ? ` (${formatCount(refused)} refused before download)` : ''),
      );
    }
  }
  if (result.reconciliation?.status === 'failed') problems.push('reconciliation failed');
  if (problems.length > 0) return { status: 'failed', problems };
  if (result.outcome === 'unchanged') return { status: 'unchanged', problems };
  return { status: result.reconciliation ? 'reconciled' : 'committed', problems };
}

/** The file's values the run did not read (no path names them, or a header key written twice): said, never passed over silently. */
function notIngestedLines(skipped: BronzeManifest['skipped']): string[] {
  if (!skipped) return [];
  const shown = skipped.values
    .slice(0, 5)
    .map(
      (v) =>
        `${v.path} (${kindName(v.kind)} at byte ${v.offset}${v.repeated ? ', its key written twice' : ''})`,
    );
  const more = skipped.count - shown.length;
  return [
    `  not ingested ${formatCount(skipped.count)} value${skipped.count > 1 ? 's' : ''} of the file that the dataset does not read:`,
    `              ${shown.join(', ')}${more > 0 ? ` and ${formatCount(more)} more` : ''}`,
  ];
}

/** 0.05 → "5%", 0.0725 → "7.25%". */
const percent = (share: number): string => `${Math.round(share * 10_000) / 100}%`;

const seconds = (ms: number): number => Math.round(ms / 100) / 10;

/** The `--json` summary: one object with the run id, status, timings, counts per stage and output locations. */
export function jsonSummary(result: LocalPipelineResult, lake: ObjectStore, timings: RunTimings) {
  if (result.outcome === 'unchanged') return unchangedJson(result, lake, timings);
  const { bronze, silver, reconciliation, commit } = result;
  const { manifest } = bronze;
  const { status, problems } = runOutcome(result);
  return {
    runId: bronze.runId,
    status,
    /** A rebuild (`sluice rebuild`): the silver build it made, and the one the source had before. */
    ...(result.rebuild && { rebuild: result.rebuild }),
    /** What failed, when `status` is `failed`: e.g. "2 of 3 listed files failed". */
    ...(problems.length > 0 && { problems }),
    dataset: bronze.dataset,
    source: {
      id: manifest.sourceId,
      uri: manifest.source.uri,
      ...(manifest.source.url !== undefined && { url: manifest.source.url }),
      bytes: manifest.source.size,
      sha256: manifest.source.sha256,
    },
    /** The content's version; `replaced`: the source's version it replaced as current. */
    version: manifest.version,
    ...(commit?.replaced !== undefined && { replaced: commit.replaced }),
    /** Set when the version was committed before and became current again (the source was reverted). */
    ...(commit?.record.restoredAt !== undefined && { restoredAt: commit.record.restoredAt }),
    /** Ingest slices (1 unless run with --slice-seconds or resumed from a checkpoint; 0: bronze reused). */
    slices: bronze.slices,
    /** How the last slice read the source: `native` zlib, or the `resumable` reader slices need. */
    ...(bronze.reader !== undefined && { reader: bronze.reader }),
    /**
     * Whether this run went on from an earlier run of the file: its committed bronze reused, or (as
     * `sluice runs` says `resumed`) its parse continued from the checkpoint of an interrupted run.
     */
    resumed: bronze.reused || manifest.timings.resumed === true,
    seconds: {
      total: seconds(timings.totalMs),
      stages: timings.stages.map((s) => ({ stage: s.stage, seconds: seconds(s.ms) })),
    },
    counts: {
      parsed: manifest.records,
      bronze: countBronze(manifest.parts),
      ...(silver && {
        silver: Object.fromEntries(
          Object.entries(silver.manifest.records).map(([path, r]) => [
            path,
            { accepted: r.accepted, quarantined: r.quarantined },
          ]),
        ),
        tables: Object.fromEntries(
          Object.entries(silver.manifest.tables).map(([table, t]) => [
            table,
            {
              rows: t.rowsWritten,
              duplicates: t.duplicates,
              // Keys whose dropped rows held other values than the row kept (absent when none).
              ...(t.conflictingKeys && { conflictingKeys: t.conflictingKeys }),
            },
          ]),
        ),
      }),
    },
    headers: manifest.headers,
    /** Values of the file the dataset does not read (see `SkippedValue`): not ingested (absent when none). */
    ...(manifest.skipped && { notIngested: manifest.skipped }),
    ...(reconciliation && { quality: reconciliation.quality, quarantine: reconciliation.quarantine }),
    /** What the run cost up to its reconciliation, per stage, at the configured prices (reconciliation.json's). */
    ...(reconciliation?.cost && { cost: reconciliation.cost }),
    /** Each state's task invocations (as Lambda would count them), the largest scratch and longest time any used. */
    ...(result.invocations && {
      invocations: result.invocations.byState,
      largestScratchBytes: result.invocations.largestScratchBytes,
      longestInvocationMs: Math.round(result.invocations.longestInvocationMs),
    }),
    ...(result.fanOut && { fanOut: fanOutJson(result.fanOut, lake) }),
    outputs: {
      bronzeManifest: bronze.manifestUri,
      bronze: manifest.parts.map((p) => lake.uri(p.key)),
      ...(silver && {
        silverManifest: lake.uri(silver.manifestKey),
        // Each table's files: one per merge bucket that got rows.
        silver: Object.fromEntries(
          Object.entries(silver.manifest.tables)
            .filter(([, t]) => t.files.length > 0)
            .map(([table, t]) => [table, t.files.map((file) => lake.uri(file.key))]),
        ),
      }),
    },
  };
}

/** `--json` for a source whose current version had these bytes already. */
function unchangedJson(result: LocalUnchangedResult, lake: ObjectStore, timings: RunTimings) {
  const { unchanged } = result;
  const { status, problems } = runOutcome(result);
  return {
    runId: unchanged.runId,
    status,
    ...(problems.length > 0 && { problems }),
    dataset: unchanged.dataset,
    source: { id: unchanged.sourceId },
    version: unchanged.version,
    currentRunId: unchanged.currentRunId,
    committedAt: unchanged.committedAt,
    read: unchanged.read,
    ...(result.rebuild && { rebuild: result.rebuild }),
    ...(result.state && { state: stateJson(result.state) }),
    ...(result.fanOut && { fanOut: fanOutJson(result.fanOut, lake) }),
    seconds: { total: seconds(timings.totalMs) },
  };
}

/** What an unchanged run did to its dataset's merged state (`CatchUpState`), in `--json`. */
function stateJson(state: MergeSilverStateResult) {
  const { table, outcome, applied, rowsBefore, rowsAfter } = state;
  return { table, outcome, caughtUp: applied, rowsBefore, rowsAfter };
}

/** The line of an unchanged run whose merged state lacked its current version, and now holds it. */
function caughtUpLine(result: LocalUnchangedResult): string {
  const state = result.state;
  if (!state?.applied) return '';
  return (
    `  merged state ${result.unchanged.dataset}__${state.table}_current caught up: ${formatCount(state.rowsBefore)} → ` +
    `${formatCount(state.rowsAfter)} rows (the run that committed a current version had not folded it in)\n`
  );
}

/** A fan-out in `--json`: its report folder and each listed file's outcome. */
function fanOutJson(fanOut: FanOutResult, lake: ObjectStore) {
  return {
    report: folderUri(lake, fanOut.report),
    duplicates: fanOut.duplicates,
    files: fanOut.files.map((f) => (f.error ? { ...f, error: inCliTerms(f.error) } : f)),
  };
}

/** The text summary of an unchanged source: one line says it all. */
function unchangedText(result: LocalUnchangedResult, lake: ObjectStore, timings: RunTimings): string {
  const { unchanged } = result;
  if (result.rebuild) {
    return (
      `\nsluice rebuild unchanged: ${unchanged.dataset}\n` +
      `  source ${result.rebuild.sourceId}: version ${unchanged.version} is current since ${unchanged.committedAt} ` +
      `with build ${result.rebuild.build}, the one this config and contract make: nothing rebuilt ` +
      `(--force rebuilds it anyway) (${formatDuration(timings.totalMs)})\n` +
      caughtUpLine(result)
    );
  }
  const how = unchanged.read ? 'read and found identical' : 'this file was ingested before';
  const { status, problems } = runOutcome(result);
  return (
    `\nsluice run ${status === 'failed' ? `failed: ${unchanged.dataset}: ${problems.join('; ')}` : `unchanged: ${unchanged.dataset}`}\n` +
    `  version ${unchanged.version} is current since ${unchanged.committedAt} (run ${unchanged.currentRunId}); ` +
    `${how}: nothing rebuilt, nothing duplicated (${formatDuration(timings.totalMs)})\n` +
    caughtUpLine(result) +
    (result.fanOut ? ['', ...fanOutLines(result.fanOut, lake), ''].join('\n') : '')
  );
}

/** A table worth a first look: the first with rows that is not bookkeeping. */
function exampleTable(tables: Record<string, { rowsWritten: number }>): string {
  const names = Object.keys(tables).filter((t) => t !== 'files' && !t.startsWith('_'));
  return names.find((t) => (tables[t]?.rowsWritten ?? 0) > 0) ?? names[0] ?? 'files';
}

/** Listed files shown in the text summary; the report and `--json` have them all. */
const FAN_OUT_LINES = 20;

/** A table of contents' fan-out: a tally, then one line per listed file (the first few). */
function fanOutLines(fanOut: FanOutResult, lake: ObjectStore): string[] {
  const count = (status: string) => fanOut.files.filter((f) => f.status === status).length;
  const listed = fanOut.files.length - count('rejected');
  const duplicates = fanOut.duplicates > 0 ? `, ${formatCount(fanOut.duplicates)} duplicate(s) skipped` : '';
  const lines = [
    `  fan-out     ${formatCount(listed)} listed file(s): ${formatCount(count('succeeded'))} succeeded, ` +
      `${formatCount(count('failed'))} failed, ${formatCount(count('rejected'))} rejected${duplicates}`,
  ];
  for (const file of fanOut.files.slice(0, FAN_OUT_LINES)) {
    const error = inCliTerms((file.error ?? '').split('\n')[0]!);
    const detail = file.status === 'succeeded' ? `run ${file.runId}` : error.slice(0, 160);
    lines.push(`    ${file.status.padEnd(10)} ${file.url ?? '(no URL)'}  ${detail}`);
  }
  if (fanOut.files.length > FAN_OUT_LINES) {
    lines.push(`    … ${formatCount(fanOut.files.length - FAN_OUT_LINES)} more in the report`);
  }
  lines.push(`  report      ${folderUri(lake, fanOut.report)}`);
  return lines;
}

/** Where a key prefix (`a/b/`) is in the lake: the URI of a key in it, without the key's name. */
function folderUri(lake: ObjectStore, prefix: string): string {
  const uri = lake.uri(`${prefix}summary.json`);
  return uri.slice(0, uri.length - 'summary.json'.length);
}

/** The readable summary printed at the end of `sluice run`. */
export function textSummary(
  result: LocalPipelineResult,
  lake: ObjectStore,
  lakeDir: string,
  timings: RunTimings,
): string {
  if (result.outcome === 'unchanged') return unchangedText(result, lake, timings);
  return runText(result, lake, lakeDir, timings);
}

function runText(result: LocalRunResult, lake: ObjectStore, lakeDir: string, timings: RunTimings): string {
  const elapsedMs = timings.totalMs;
  const { bronze, silver, reconciliation, commit } = result;
  const { manifest } = bronze;
  const bronzeCounts = countBronze(manifest.parts);
  const stored = manifest.parts.reduce((n, p) => n + p.bytes, 0);
  const outcome = runOutcome(result);
  // The first line says how the run ended; never "reconciled" when anything failed.
  const headline =
    outcome.status === 'failed'
      ? `failed: ${manifest.dataset}: ${outcome.problems.join('; ')}`
      : outcome.status === 'reconciled'
        ? `reconciled (quality ${reconciliation!.quality.score}/100): ${manifest.dataset}`
        : `${outcome.status}: ${manifest.dataset}`;
  const lines = [
    '',
    `sluice ${result.rebuild ? 'rebuild' : 'run'} ${headline}`,
    `  source      ${manifest.source.uri}`,
    `              ${formatBytes(manifest.source.size)} ${manifest.source.compression === 'gzip' ? 'gzip' : 'uncompressed'}, ` +
      `${formatBytes(manifest.source.uncompressedBytes)} of ${manifest.source.format}, sha256 ${manifest.source.sha256.slice(0, 16)}…`,
    `  run id      ${bronze.runId}`,
    ...(commit
      ? [
          result.rebuild && !commit.committed
            ? `  version     ${commit.version} stays current with its build, reconciled again (--force)`
            : commit.record.restoredAt
              ? `  version     ${commit.version} is current again, as committed at ${commit.record.committedAt}` +
                `${commit.replaced ? ` (replaced ${commit.replaced})` : ''}: the source went back to these bytes`
              : `  version     ${commit.version} is now current${commit.replaced ? ` (replaced ${commit.replaced})` : ''}`,
        ]
      : []),
    ...(result.rebuild
      ? [
          `  rebuilt     silver build ${result.rebuild.build} from the committed bronze (the source was not read)` +
            `${result.rebuild.previousBuild && result.rebuild.previousBuild !== result.rebuild.build ? `; build ${result.rebuild.previousBuild} is kept, no longer current` : ''}`,
        ]
      : bronze.reused
        ? ['  resumed     bronze committed by an earlier run of this file was reused']
        : manifest.timings.resumed
          ? ['  resumed     the parse went on from the checkpoint of an interrupted run of this file']
          : []),
    ...Object.entries(manifest.headers).map(
      ([name, value]) => `  ${name.padEnd(26)}${stringifyLossless(value)}`,
    ),
    ...notIngestedLines(manifest.skipped),
    '',
    `  records ${''.padEnd(20)} ${'parsed'.padStart(12)} ${'bronze'.padStart(12)}${silver ? `${'silver'.padStart(12)} ${'quarantined'.padStart(12)}` : ''}`,
    ...Object.entries(manifest.records).map(([name, n]) => {
      const s = silver?.manifest.records[name];
      const silverColumns = s
        ? `${formatCount(s.accepted).padStart(12)} ${formatCount(s.quarantined).padStart(12)}`
        : '';
      return `    ${name.padEnd(24)} ${formatCount(n).padStart(12)} ${formatCount(bronzeCounts[name] ?? 0).padStart(12)}${silverColumns}`;
    }),
  ];
  if (silver) {
    lines.push('', `  silver tables ${''.padEnd(14)} ${'rows'.padStart(12)} ${'duplicates'.padStart(12)}`);
    for (const [table, t] of Object.entries(silver.manifest.tables)) {
      lines.push(
        `    ${table.padEnd(24)} ${formatCount(t.rowsWritten).padStart(12)} ${formatCount(t.duplicates).padStart(12)}`,
      );
    }
    for (const [table, t] of Object.entries(silver.manifest.tables)) {
      if (!t.conflictingKeys) continue;
      lines.push(
        `    ${table}: ${formatCount(t.conflictingKeys)} key${t.conflictingKeys > 1 ? 's' : ''} of its duplicates held ` +
          'other values than the row kept (the first by record index): the file says two things for one key',
      );
    }
    const warnings = Object.entries(silver.manifest.violations);
    if (warnings.length > 0) {
      lines.push('', '  rules broken');
      for (const [rule, v] of warnings.slice(0, 10)) {
        lines.push(
          `    ${rule.padEnd(44)} ${v.severity.padEnd(10)} ${formatCount(v.count).padStart(8)}  e.g. ${v.path}`,
        );
      }
    }
    const drift = Object.entries(silver.manifest.drift);
    if (drift.length > 0) {
      lines.push('', '  schema drift');
      for (const [id, d] of drift.slice(0, 10))
        lines.push(`    ${id.padEnd(44)} ${formatCount(d.count).padStart(8)}  e.g. ${d.example}`);
    }
  }
  if (reconciliation) {
    const failed = reconciliation.checks.filter((c) => !c.ok).length;
    const q = reconciliation.quality;
    lines.push(
      '',
      `  reconciliation ${reconciliation.status}: ${reconciliation.checks.length - failed}/${reconciliation.checks.length} checks`,
      `    quality ${q.score}/100 (completeness ${q.completeness}, validity ${q.validity}, uniqueness ${q.uniqueness}, integrity ${q.integrity})`,
    );
    const { quarantine } = reconciliation;
    if (quarantine.quarantined > 0) {
      lines.push(
        `    quarantined ${formatCount(quarantine.quarantined)} of ${formatCount(quarantine.records)} records ` +
          `(${percent(quarantine.share)}; the run fails above ${percent(quarantine.threshold)})`,
      );
    }
  }
  if (result.fanOut) lines.push('', ...fanOutLines(result.fanOut, lake));
  lines.push(
    '',
    `  bronze      ${manifest.parts.length} part(s), ${formatBytes(stored)} gzip → ${bronze.manifestUri}`,
    ...(bronze.slices > 1
      ? [`              parsed in ${bronze.slices} slices, each resumed from a checkpoint`]
      : []),
    ...(silver ? [`  silver      ${lake.uri(silver.manifestKey)}`] : []),
    `  time        ${formatDuration(elapsedMs)} (${formatRate(manifest.source.uncompressedBytes, elapsedMs)} uncompressed)`,
    ...(timings.stages.length > 1
      ? [`              ${timings.stages.map((s) => `${s.stage} ${formatDuration(s.ms)}`).join(', ')}`]
      : []),
    ...(reconciliation?.cost ? [`  cost        ${costLine(reconciliation.cost)}`] : []),
    ...(silver
      ? [
          '',
          `  query it:   npx sluice query "SELECT * FROM ${exampleTable(silver.manifest.tables)} LIMIT 5" --lake ${lakeDir}`,
          `  see it:     npx sluice report --open --lake ${lakeDir}`,
        ]
      : []),
    '',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * With `--json`, a run (or a source's rebuild) that failed, or could not start because another run holds
 * its source (exit 3), is one JSON object on stdout too: `status: "failed"` and the error, as the README's
 * exit code table promises, so a script never parses an empty stdout.
 */
export function writeJsonFailure(dataset: string, source: unknown, error: unknown): void {
  const failure = {
    status: 'failed',
    dataset,
    source,
    error: { name: errorName(error), message: inCliTerms((error as Error).message) },
  };
  process.stdout.write(`${JSON.stringify(failure)}\n`);
}
