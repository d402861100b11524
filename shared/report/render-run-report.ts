import {
  costLine,
  formatAmount,
  formatBytes,
  formatCount,
  formatDuration,
  formatRate,
  formatUsd,
} from '../cli/format.ts';
import type { BronzeManifest } from '../contracts/bronze-manifest.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import type { SilverManifest } from '../contracts/silver-manifest.ts';
import { QUARANTINE_TABLE } from '../lake/keys.ts';
import type { TableProfile } from '../ports/table-inspector.ts';
import type { Check, ReconciliationReport } from '../stages/reconcile/reconcile.ts';
import { escapeHtml as esc } from './escape-html.ts';
import { barChart, COLORS } from './svg-charts.ts';
import type { QuarantineExample } from './table-facts.ts';

/** What a run report shows: the lake's records of one bronze run. */
export interface RunReportData {
  readonly bronze: BronzeManifest;
  /** This run's silver build, when it got that far. */
  readonly silver?: SilverManifest;
  readonly reconciliation?: ReconciliationReport;
  readonly fanOut?: FanOutFacts;
  /** When the facts shown were complete (the reconciliation's time), not when the page was rendered. */
  readonly generatedAt: string;
}

/** A table of contents' fan-out: its summary, and the outcomes of (some of) its listed files. */
export interface FanOutFacts {
  readonly folder: string;
  readonly summary: {
    readonly listed?: number;
    readonly rejected?: number;
    readonly duplicates?: number;
    readonly succeeded?: number;
    readonly failed?: number;
  };
  readonly outcomes: readonly {
    readonly index: number;
    readonly url: string;
    readonly status: 'succeeded' | 'failed';
    readonly runId?: string;
    readonly error?: string;
  }[];
}

/**
 * The run report: one HTML page, self-contained (styles inline, charts as inline SVG, no script, no
 * request to anywhere: its Content-Security-Policy forbids them), the same bytes for the same run.
 * Every value from the lake is escaped.
 */
export function renderRunReport(data: RunReportData): string {
  const { bronze, silver, reconciliation } = data;
  const status = reconciliation?.status ?? (silver ? 'not reconciled' : 'bronze only');
  const title = `${bronze.dataset} · ${sourceName(bronze)}`;
  const sections = [
    header(data, status),
    recordsSection(bronze, silver),
    silver ? tablesSection(silver) : '',
    reconciliation ? qualitySection(reconciliation) : '',
    reconciliation ? checksSection(reconciliation.checks) : '',
    silver ? quarantineSection(silver, reconciliation) : '',
    silver ? driftSection(silver) : '',
    stagesSection(bronze, silver, reconciliation),
    reconciliation?.cost ? costSection(reconciliation.cost) : '',
    reconciliation?.profiles ? profilesSection(reconciliation.profiles) : '',
    data.fanOut ? fanOutSection(data.fanOut) : '',
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sluice run report: ${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${sections.filter(Boolean).join('\n')}
<footer>sluice run report · facts as of ${esc(data.generatedAt)} · from ${esc(bronze.parser)}</footer>
</body>
</html>
`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d232a;margin:0 auto;padding:24px;max-width:1100px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde3;padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eceff2;text-align:left;vertical-align:top}
th{font-weight:600;background:#f5f7f9}td.n,th.n{text-align:right}
code,.mono{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:break-word}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.passed{background:#1a7f37}.failed{background:#c62828}.other{background:#6e7781}
.bad{color:#c62828;font-weight:600}.muted{color:#6e7781}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0}dl.meta dt{color:#6e7781}dl.meta dd{margin:0}
svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}svg text{font:12px system-ui,sans-serif;fill:#1d232a}
svg text.value{fill:#444}.score{font-size:30px;font-weight:700}
footer{margin-top:32px;color:#6e7781;font-size:12px}
`;

function sourceName(bronze: BronzeManifest): string {
  const where = bronze.source.url ?? bronze.source.uri;
  return where.split(/[/\\]/).at(-1) || where;
}

function header(data: RunReportData, status: string): string {
  const { bronze } = data;
  const s = bronze.source;
  const badge = status === 'passed' ? 'passed' : status === 'failed' ? 'failed' : 'other';
  const headerValues = Object.entries(bronze.headers).slice(0, 20);
  return `<header>
<h1>${esc(bronze.dataset)}: ${esc(sourceName(bronze))}</h1>
<p>reconciliation <span class="badge ${badge}" data-field="status">${esc(status)}</span></p>
${fanOutHeadline(data.fanOut)}<dl class="meta">
<dt>source</dt><dd class="mono" data-field="source">${esc(s.url ?? s.uri)}</dd>
${s.url ? `<dt>landed as</dt><dd class="mono">${esc(s.uri)}</dd>` : ''}
<dt>size</dt><dd>${esc(formatBytes(s.size))} ${esc(s.compression === 'gzip' ? 'gzip' : '')} · ${esc(formatBytes(s.uncompressedBytes))} of ${esc(s.format)}</dd>
<dt>sha256</dt><dd class="mono">${esc(s.sha256)}</dd>
<dt>version</dt><dd class="mono" data-field="version">${esc(bronze.version)}</dd>
<dt>run</dt><dd class="mono" data-field="runId">${esc(bronze.runId)}</dd>
${headerValues.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(shown(v))}</dd>`).join('\n')}
</dl>
</header>`;
}

/**
 * A table of contents whose listed files did not all succeed: its own reconciliation may pass, but the run
 * failed (exit 1), and the first line of its report says so.
 */
function fanOutHeadline(fanOut: FanOutFacts | undefined): string {
  const failed = fanOut?.summary.failed ?? 0;
  const refused = fanOut?.summary.rejected ?? 0;
  if (failed + refused === 0) return '';
  const what = [
    ...(failed > 0 ? [`${formatCount(failed)} failed`] : []),
    ...(refused > 0 ? [`${formatCount(refused)} refused before download`] : []),
  ].join(', ');
  return (
    `<p>listed files <span class="badge failed" data-field="fanOut.headline">${what}</span>: the run failed ` +
    '(see <a href="#fan-out">Listed files</a>)</p>\n'
  );
}

/** A header value as text: strings as they are, anything else as JSON (integers beyond 2^53 exact). */
function shown(value: unknown): string {
  if (typeof value === 'string') return value.length > 200 ? `${value.slice(0, 200)}…` : value;
  // As the source wrote it: integers beyond 2^53, 1e400 and 1e-400 too (JSON.stringify: null and 0).
  const text = value === undefined ? String(value) : stringifyLossless(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

function recordsSection(bronze: BronzeManifest, silver: SilverManifest | undefined): string {
  const paths = Object.keys(bronze.records);
  const rows = paths.map((path) => {
    const r = silver?.records[path];
    return { path, parsed: bronze.records[path] ?? 0, silver: r };
  });
  const series = [
    { name: 'parsed', color: COLORS.blue },
    { name: 'bronze', color: COLORS.sky },
    ...(silver
      ? [
          { name: 'accepted', color: COLORS.green },
          { name: 'quarantined', color: COLORS.red },
        ]
      : []),
  ];
  const bronzeCounts = bronzeRecordCounts(bronze);
  const chart = barChart({
    title: 'records per stage and record path',
    series,
    groups: rows.map((r) => ({
      label: r.path,
      values: [r.parsed, bronzeCounts[r.path] ?? 0, r.silver?.accepted ?? 0, r.silver?.quarantined ?? 0],
    })),
    format: formatCount,
  });
  const cell = (path: string, field: string, value: number | undefined) =>
    value === undefined
      ? '<td class="n muted">–</td>'
      : `<td class="n" data-field="records.${esc(path)}.${field}">${formatCount(value)}</td>`;
  return `<section id="records">
<h2>Records per stage</h2>
${chart}
<table>
<tr><th>record path</th><th class="n">parsed</th><th class="n">bronze</th><th class="n">accepted</th><th class="n">quarantined</th></tr>
${rows
  .map(
    (r) =>
      `<tr><td class="mono">${esc(r.path)}</td>${cell(r.path, 'parsed', r.parsed)}${cell(r.path, 'bronze', bronzeCounts[r.path])}${cell(r.path, 'accepted', r.silver?.accepted)}${cell(r.path, 'quarantined', r.silver?.quarantined)}</tr>`,
  )
  .join('\n')}
</table>
</section>`;
}

/** Records per path as the bronze parts list them. */
function bronzeRecordCounts(bronze: BronzeManifest): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const part of bronze.parts) counts[part.recordName] = (counts[part.recordName] ?? 0) + part.records;
  return counts;
}

function tablesSection(silver: SilverManifest): string {
  const tables = Object.entries(silver.tables);
  const chart = barChart({
    title: 'rows per silver table',
    series: [
      { name: 'rows written', color: COLORS.green },
      { name: 'duplicates', color: COLORS.orange },
    ],
    groups: tables.map(([name, t]) => ({ label: name, values: [t.rowsWritten, t.duplicates] })),
    format: formatCount,
  });
  return `<section id="tables">
<h2>Silver tables</h2>
${chart}
<table>
<tr><th>table</th><th class="n">rows derived</th><th class="n">rows written</th><th class="n">duplicates</th><th class="n">Parquet</th></tr>
${tables
  .map(
    ([name, t]) =>
      `<tr><td class="mono">${esc(name)}</td><td class="n">${formatCount(t.rowsIn)}</td><td class="n" data-field="tables.${esc(name)}.rowsWritten">${formatCount(t.rowsWritten)}</td><td class="n" data-field="tables.${esc(name)}.duplicates">${formatCount(t.duplicates)}</td><td class="n">${esc(formatBytes(t.bytes))}</td></tr>`,
  )
  .join('\n')}
</table>
</section>`;
}

const QUALITY_PARTS = [
  ['completeness', 0.3, 'parsed records silver accounted for (accepted or quarantined)'],
  ['validity', 0.3, 'records accepted rather than quarantined, times rows kept without a warning'],
  ['uniqueness', 0.2, 'rows not duplicated'],
  ['integrity', 0.2, 'references that resolve'],
] as const;

function qualitySection(report: ReconciliationReport): string {
  const q = report.quality;
  const chart = barChart({
    title: 'quality score parts',
    series: [{ name: 'share', color: COLORS.blue }],
    groups: QUALITY_PARTS.map(([part]) => ({ label: part, values: [q[part]] })),
    format: (v) => v.toFixed(4),
    max: 1,
  });
  const share = report.quarantine;
  return `<section id="quality">
<h2>Quality</h2>
<p><span class="score" data-field="quality.score">${q.score}</span> / 100
<span class="muted">= 100 × (0.3 completeness + 0.3 validity + 0.2 uniqueness + 0.2 integrity)</span></p>
${chart}
<table>
<tr><th>part</th><th class="n">share</th><th class="n">weight</th><th>what it measures</th></tr>
${QUALITY_PARTS.map(
  ([part, weight, what]) =>
    `<tr><td>${part}</td><td class="n" data-field="quality.${part}">${q[part]}</td><td class="n">${weight}</td><td>${what}</td></tr>`,
).join('\n')}
</table>
<p>quarantined <span data-field="quarantine.quarantined">${formatCount(share.quarantined)}</span> of
<span data-field="quarantine.records">${formatCount(share.records)}</span> records
(<span data-field="quarantine.share">${share.share}</span>; allowed: ${share.threshold})
${share.ok ? '' : '<span class="bad">— above the threshold, or every record: the run failed</span>'}</p>
</section>`;
}

/** A bronze part's own checks (four per part): summarized, so that a run of thousands of parts stays light. */
const PART_CHECK = /^bronze part .+ (sha256|uncompressed bytes|records|record indexes)$/;

function checksSection(checks: readonly Check[]): string {
  const passed = checks.filter((c) => c.ok).length;
  const failed = checks.filter((c) => !c.ok);
  const partChecks = checks.filter((c) => PART_CHECK.test(c.name));
  const shownChecks = checks.filter((c) => !c.ok || !PART_CHECK.test(c.name));
  const row = (c: Check) =>
    `<tr${c.ok ? '' : ' class="bad"'}><td>${c.ok ? '✓' : '✗'}</td><td class="mono">${esc(c.name)}</td>${checkValue(c.expected)}${checkValue(c.actual)}</tr>`;
  const partsPassed = partChecks.filter((c) => c.ok).length;
  return `<section id="checks">
<h2>Reconciliation checks</h2>
<p><span data-field="checks.passed">${passed}</span> of <span data-field="checks.total">${checks.length}</span> passed${failed.length > 0 ? `; <span class="bad" data-field="checks.failed">${failed.length}</span> failed` : ''}.
Bronze parts re-read and re-hashed: ${formatCount(partsPassed)} of ${formatCount(partChecks.length)} part checks passed${partChecks.length > partsPassed ? ' (the failures are listed)' : ''}.</p>
<table>
<tr><th></th><th>check</th><th class="n">expected</th><th class="n">found</th></tr>
${shownChecks.map(row).join('\n')}
</table>
</section>`;
}

/** A check's value: a checksum shown by its first 16 digits (all of them on hover). */
function checkValue(value: number | string): string {
  if (typeof value === 'number') return `<td class="n">${formatCount(value)}</td>`;
  return value.length > 24
    ? `<td class="mono" title="${esc(value)}">${esc(value.slice(0, 16))}…</td>`
    : `<td class="mono">${esc(value)}</td>`;
}

function quarantineSection(silver: SilverManifest, reconciliation: ReconciliationReport | undefined): string {
  const rules = Object.entries(silver.violations).sort(([, a], [, b]) => b.count - a.count);
  if (rules.length === 0) return '<section id="quarantine"><h2>Rules that fired</h2><p>None.</p></section>';
  const examples = new Map<string, QuarantineExample[]>();
  for (const e of reconciliation?.quarantineExamples ?? []) {
    examples.set(e.ruleId, [...(examples.get(e.ruleId) ?? []), e]);
  }
  const chart = barChart({
    title: 'records per rule',
    series: [{ name: 'records', color: COLORS.red }],
    groups: rules.slice(0, 20).map(([rule, v]) => ({ label: rule, values: [v.count] })),
    format: formatCount,
  });
  return `<section id="quarantine">
<h2>Rules that fired</h2>
<p class="muted">quarantine: the record is set aside in <code>${QUARANTINE_TABLE}</code>; warn: the row is kept.</p>
${chart}
<table>
<tr><th>rule</th><th>severity</th><th>path</th><th class="n">count</th><th>examples (value at path: why)</th></tr>
${rules
  .map(([rule, v]) => {
    const shownExamples = examples.get(rule) ?? [];
    const list =
      shownExamples.length > 0
        ? shownExamples
            .map(
              (e) =>
                `<div><code data-example="value">${esc(e.value ?? '(absent)')}</code> at <code>${esc(e.recordPath)}</code> <code>${esc(e.fieldPath)}</code>: ${esc(e.message)}</div>`,
            )
            .join('')
        : `<div>${esc(v.example)}</div>`;
    return `<tr><td class="mono">${esc(rule)}</td><td>${esc(v.severity)}</td><td class="mono">${esc(v.path)}</td><td class="n" data-field="rules.${esc(rule)}">${formatCount(v.count)}</td><td>${list}</td></tr>`;
  })
  .join('\n')}
</table>
</section>`;
}

function driftSection(silver: SilverManifest): string {
  const drift = Object.entries(silver.drift);
  if (drift.length === 0) {
    return '<section id="drift"><h2>Drift</h2><p>None: every field is known to the contract, with its type.</p></section>';
  }
  return `<section id="drift">
<h2>Drift</h2>
<p class="muted">Fields the contract does not know, and values of another type than it expects.</p>
<table>
<tr><th>kind</th><th>path</th><th class="n">count</th><th>example</th></tr>
${drift
  .map(
    ([id, d]) =>
      `<tr><td>${esc(d.kind)}</td><td class="mono">${esc(id.slice(id.indexOf(':') + 1))}</td><td class="n">${formatCount(d.count)}</td><td><code>${esc(d.example)}</code></td></tr>`,
  )
  .join('\n')}
</table>
</section>`;
}

function stagesSection(
  bronze: BronzeManifest,
  silver: SilverManifest | undefined,
  reconciliation: ReconciliationReport | undefined,
): string {
  const bronzeBytes = bronze.parts.reduce((n, p) => n + p.uncompressedBytes, 0);
  const parquetBytes = Object.values(silver?.tables ?? {}).reduce((n, t) => n + t.bytes, 0);
  const rows = Object.values(silver?.tables ?? {}).reduce((n, t) => n + t.rowsWritten, 0);
  const stages: { name: string; ms: number; read: string; rate: string }[] = [
    {
      name: 'parse → bronze',
      ms: bronze.timings.durationMs,
      read: `${formatBytes(bronze.source.uncompressedBytes)} of ${bronze.source.format}`,
      rate: formatRate(bronze.source.uncompressedBytes, bronze.timings.durationMs),
    },
  ];
  if (silver) {
    const ms = silver.timings.durationMs;
    stages.push({
      name: 'silver',
      ms,
      read: `${formatBytes(bronzeBytes)} of bronze → ${formatCount(rows)} rows`,
      rate: `${formatRate(bronzeBytes, ms)} · ${ms > 0 ? formatCount(Math.round((rows * 1000) / ms)) : '–'} rows/s`,
    });
  }
  if (reconciliation?.timings) {
    const ms = reconciliation.timings.durationMs;
    stages.push({
      name: 'reconcile',
      ms,
      read: `${formatBytes(bronzeBytes)} of bronze, ${formatBytes(parquetBytes)} of Parquet`,
      rate: formatRate(bronzeBytes + parquetBytes, ms),
    });
  }
  const chart = barChart({
    title: 'time per stage',
    series: [{ name: 'time', color: COLORS.purple }],
    groups: stages.map((s) => ({ label: s.name, values: [s.ms] })),
    format: formatDuration,
  });
  return `<section id="stages">
<h2>Stages: time and throughput</h2>
${chart}
<table>
<tr><th>stage</th><th class="n">time</th><th>read</th><th>throughput</th></tr>
${stages
  .map(
    (s) =>
      `<tr><td>${esc(s.name)}</td><td class="n" data-field="stages.${esc(s.name)}.ms" data-ms="${s.ms}">${esc(formatDuration(s.ms))}</td><td>${esc(s.read)}</td><td>${esc(s.rate)}</td></tr>`,
  )
  .join('\n')}
</table>
</section>`;
}

/** What the run cost up to its reconciliation, per stage (docs/SCALING.md, "What a run cost"). */
function costSection(cost: NonNullable<ReconciliationReport['cost']>): string {
  const rows = Object.entries(cost.stages).map(
    ([stage, s]) =>
      `<tr><td>${esc(stage)}</td><td class="n">${formatCount(s.invocations)}</td><td class="n">${esc(formatAmount(s.gbSeconds))}</td><td class="n">${formatCount(s.s3Tier1Requests)}</td><td class="n">${formatCount(s.s3Tier2Requests)}</td><td class="n" data-field="cost.stages.${esc(stage)}.totalUsd">${esc(formatUsd(s.totalUsd))}</td></tr>`,
  );
  const transitions = `${formatCount(cost.stateTransitions)} state transitions (${cost.stateTransitionsFrom === 'execution' ? 'counted' : 'estimated'})`;
  return `<section id="cost">
<h2>Cost</h2>
<p data-field="cost.totalUsd" data-usd="${cost.totalUsd}">${esc(costLine(cost))}; ${esc(transitions)}: $${esc(formatUsd(cost.stateTransitionsUsd))}.
<span class="muted">Lambda, S3 requests and Step Functions at the configured prices; not data transfer, KMS, storage or CloudWatch.</span></p>
<table>
<tr><th>stage</th><th class="n">invocations</th><th class="n">GB-s</th><th class="n">S3 PUT/LIST</th><th class="n">S3 GET</th><th class="n">$</th></tr>
${rows.join('\n')}
</table>
</section>`;
}

function profilesSection(profiles: NonNullable<ReconciliationReport['profiles']>): string {
  const tables = Object.entries(profiles).map(([table, profile]) => {
    if ('error' in profile) return `<h3>${esc(table)}</h3><p class="bad">${esc(profile.error)}</p>`;
    const sampled = profile.distinctOverRows
      ? ` · distinct values over the first ${formatCount(profile.distinctOverRows)}`
      : '';
    return `<h3>${esc(table)} <span class="muted">· <span data-field="profiles.${esc(table)}.rows">${formatCount(profile.rows)}</span> rows${sampled}</span></h3>
${columnsTable(profile)}`;
  });
  return `<section id="profiles">
<h2>Silver table profiles</h2>
<p class="muted">Read back from each table's Parquet file: rows, nulls, min and max from its statistics (min and max cut to 60 characters), distinct values estimated (HyperLogLog; over its first rows only where a table says so). List and struct columns: their type.</p>
${tables.join('\n')}
</section>`;
}

function columnsTable(profile: TableProfile): string {
  return `<table>
<tr><th>column</th><th>type</th><th class="n">nulls</th><th class="n">distinct ≈</th><th>min</th><th>max</th></tr>
${profile.columns
  .map(
    (c) =>
      `<tr><td class="mono">${esc(c.name)}</td><td class="mono">${esc(c.type)}</td><td class="n">${c.nulls === undefined ? '–' : formatCount(c.nulls)}</td><td class="n">${c.distinct === undefined ? '–' : formatCount(c.distinct)}</td><td class="mono">${esc(c.min ?? '')}</td><td class="mono">${esc(c.max ?? '')}</td></tr>`,
  )
  .join('\n')}
</table>`;
}

function fanOutSection(fanOut: FanOutFacts): string {
  const s = fanOut.summary;
  const chart = barChart({
    title: 'listed files by outcome',
    series: [{ name: 'files', color: COLORS.blue }],
    groups: [
      { label: 'succeeded', values: [s.succeeded ?? 0] },
      { label: 'failed', values: [s.failed ?? 0] },
      { label: 'refused (unsafe location)', values: [s.rejected ?? 0] },
      { label: 'listed twice', values: [s.duplicates ?? 0] },
    ],
    format: formatCount,
  });
  return `<section id="fan-out">
<h2>Listed files (fan-out)</h2>
<p><span data-field="fanOut.listed">${formatCount(s.listed ?? 0)}</span> listed:
<span data-field="fanOut.succeeded">${formatCount(s.succeeded ?? 0)}</span> succeeded,
<span data-field="fanOut.failed">${formatCount(s.failed ?? 0)}</span> failed. Report: <code>${esc(fanOut.folder)}</code></p>
${chart}
<table>
<tr><th class="n">#</th><th>url</th><th>outcome</th><th>run or error</th></tr>
${fanOut.outcomes
  .map(
    (o) =>
      `<tr${o.status === 'failed' ? ' class="bad"' : ''}><td class="n">${o.index}</td><td class="mono">${esc(o.url)}</td><td>${esc(o.status)}</td><td class="mono">${esc(o.runId ?? o.error ?? '')}</td></tr>`,
  )
  .join('\n')}
</table>
</section>`;
}
