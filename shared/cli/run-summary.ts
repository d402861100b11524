import type { FileObjectStore } from '../adapters/local/file-object-store.ts';
import type { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import type { FanOutResult, LocalPipelineResult } from '../pipeline/pipeline-types.ts';
import { formatBytes, formatCount, formatDuration, formatRate } from './format.ts';

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

const seconds = (ms: number): number => Math.round(ms / 100) / 10;

/** The `--json` summary: one object with the run id, status, timings, counts per stage and output locations. */
export function jsonSummary(result: LocalPipelineResult, lake: FileObjectStore, timings: RunTimings) {
  const { bronze, silver, reconciliation } = result;
  const { manifest } = bronze;
  return {
    runId: bronze.runId,
    status: reconciliation ? (reconciliation.status === 'passed' ? 'reconciled' : 'failed') : bronze.status,
    dataset: bronze.dataset,
    source: { uri: manifest.source.uri, bytes: manifest.source.size, sha256: manifest.source.sha256 },
    /** Ingest slices (1 unless run with --slice-seconds or resumed from a checkpoint). */
    slices: bronze.slices,
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
            { rows: t.rowsWritten, duplicates: t.duplicates },
          ]),
        ),
      }),
    },
    headers: manifest.headers,
    ...(reconciliation && { quality: reconciliation.quality }),
    ...(result.fanOut && {
      fanOut: {
        report: folderUri(lake, result.fanOut.report),
        duplicates: result.fanOut.duplicates,
        files: result.fanOut.files,
      },
    }),
    outputs: {
      bronzeManifest: bronze.manifestUri,
      bronze: manifest.parts.map((p) => lake.uri(p.key)),
      ...(silver && {
        silverManifest: lake.uri(silver.manifestKey),
        silver: Object.fromEntries(
          Object.entries(silver.manifest.tables)
            .filter(([, t]) => t.key)
            .map(([table, t]) => [table, lake.uri(t.key!)]),
        ),
      }),
    },
  };
}

/** A table worth a first look: the first with rows that is not bookkeeping. */
function exampleTable(tables: Record<string, { rowsWritten: number }>): string {
  const names = Object.keys(tables).filter((t) => t !== 'files' && !t.startsWith('_'));
  return names.find((t) => (tables[t]?.rowsWritten ?? 0) > 0) ?? names[0] ?? 'files';
}

/** Listed files shown in the text summary; the report and `--json` have them all. */
const FAN_OUT_LINES = 20;

/** A table of contents' fan-out: a tally, then one line per listed file (the first few). */
function fanOutLines(fanOut: FanOutResult, lake: FileObjectStore): string[] {
  const count = (status: string) => fanOut.files.filter((f) => f.status === status).length;
  const listed = fanOut.files.length - count('rejected');
  const duplicates = fanOut.duplicates > 0 ? `, ${formatCount(fanOut.duplicates)} duplicate(s) skipped` : '';
  const lines = [
    `  fan-out     ${formatCount(listed)} listed file(s): ${formatCount(count('succeeded'))} succeeded, ` +
      `${formatCount(count('failed'))} failed, ${formatCount(count('rejected'))} rejected${duplicates}`,
  ];
  for (const file of fanOut.files.slice(0, FAN_OUT_LINES)) {
    const error = (file.error ?? '').split('\n')[0]!;
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
function folderUri(lake: FileObjectStore, prefix: string): string {
  const uri = lake.uri(`${prefix}summary.json`);
  return uri.slice(0, uri.length - 'summary.json'.length);
}

/** The readable summary printed at the end of `sluice run`. */
export function textSummary(
  result: LocalPipelineResult,
  lake: FileObjectStore,
  lakeDir: string,
  timings: RunTimings,
): string {
  const elapsedMs = timings.totalMs;
  const { bronze, silver, reconciliation } = result;
  const { manifest } = bronze;
  const bronzeCounts = countBronze(manifest.parts);
  const stored = manifest.parts.reduce((n, p) => n + p.bytes, 0);
  const status = reconciliation ? `reconciled (quality ${reconciliation.quality.score}/100)` : bronze.status;
  const lines = [
    '',
    `sluice run ${status}: ${manifest.dataset}`,
    `  source      ${manifest.source.uri}`,
    `              ${formatBytes(manifest.source.size)} ${manifest.source.compression === 'gzip' ? 'gzip' : 'uncompressed'}, ` +
      `${formatBytes(manifest.source.uncompressedBytes)} of ${manifest.source.format}, sha256 ${manifest.source.sha256.slice(0, 16)}…`,
    `  run id      ${bronze.runId}`,
    ...Object.entries(manifest.headers).map(
      ([name, value]) => `  ${name.padEnd(26)}${stringifyLossless(value)}`,
    ),
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
    ...(silver
      ? [
          '',
          `  query it:   npx sluice query "SELECT * FROM ${exampleTable(silver.manifest.tables)} LIMIT 5" --lake ${lakeDir}`,
        ]
      : []),
    '',
  );
  return `${lines.join('\n')}\n`;
}
