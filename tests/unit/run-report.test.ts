import { describe, expect, it } from 'vitest';
import type { BronzeManifest } from '../../shared/contracts/bronze-manifest.ts';
import type { SilverManifest } from '../../shared/contracts/silver-manifest.ts';
import { escapeHtml } from '../../shared/report/escape-html.ts';
import { type RunReportData, renderRunReport } from '../../shared/report/render-run-report.ts';
import { valueText } from '../../shared/report/table-facts.ts';
import type { ReconciliationReport } from '../../shared/stages/reconcile/reconcile.ts';
import {
  invocationUsage,
  runCostReport,
  sumRunUsage,
  US_EAST_1_PRICE_LIST,
} from '../../shared/workflow/run-cost.ts';

const HOSTILE = `<script>alert(1)</script><img src=x onerror="alert(2)">'"&\``;

const bronze: BronzeManifest = {
  manifestVersion: 2,
  runId: 'run-1',
  dataset: 'tic-in-network',
  sourceId: 'src',
  version: '0123456789abcdef',
  datasetConfigSha256: 'c'.repeat(64),
  source: {
    uri: `/data/${HOSTILE}.json`,
    size: 100,
    etag: 'e',
    sha256: 'a'.repeat(64),
    compression: 'none',
    format: 'json',
    uncompressedBytes: 100,
  },
  headers: { reporting_entity_name: HOSTILE, big: 2n ** 64n },
  records: { [HOSTILE]: 3 },
  parts: [
    {
      key: 'k',
      recordName: HOSTILE,
      part: 0,
      firstRecordIndex: 0,
      records: 3,
      uncompressedBytes: 90,
      bytes: 50,
      sha256: 'b'.repeat(64),
    },
  ],
  parser: 'sluice-scanner/2',
  timings: {
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    durationMs: 1000,
  },
};

const silver: SilverManifest = {
  manifestVersion: 3,
  runId: 'run-1',
  dataset: 'tic-in-network',
  sourceId: 'src',
  version: '0123456789abcdef',
  bronzeManifestKey: 'k',
  records: { [HOSTILE]: { bronze: 3, accepted: 2, quarantined: 1 } },
  tables: { [HOSTILE]: { rowsIn: 2, rowsWritten: 2, duplicates: 0, bytes: 10, files: [] } },
  violations: { [HOSTILE]: { count: 1, example: HOSTILE, severity: 'quarantine', path: HOSTILE } },
  drift: { [`unknown_field:${HOSTILE}`]: { count: 1, example: HOSTILE, kind: 'unknown_field' } },
  timings: {
    startedAt: '2026-01-01T00:00:01.000Z',
    finishedAt: '2026-01-01T00:00:02.000Z',
    durationMs: 1000,
  },
};

const reconciliation: ReconciliationReport = {
  runId: 'run-1',
  dataset: 'tic-in-network',
  status: 'failed',
  checks: [{ name: HOSTILE, expected: HOSTILE, actual: 1, ok: false }],
  quarantine: { records: 3, quarantined: 1, share: 0.3333, threshold: 0.05, ok: false },
  quality: { score: 80, completeness: 1, validity: 0.6667, uniqueness: 1, integrity: 1 },
  checkedAt: '2026-01-01T00:00:03.000Z',
  timings: {
    startedAt: '2026-01-01T00:00:02.000Z',
    finishedAt: '2026-01-01T00:00:03.000Z',
    durationMs: 1000,
  },
  profiles: {
    [HOSTILE]: {
      rows: 2,
      columns: [{ name: HOSTILE, type: 'VARCHAR', nulls: 0, distinct: 2, min: HOSTILE, max: HOSTILE }],
    },
  },
  quarantineExamples: [
    { ruleId: HOSTILE, recordPath: HOSTILE, fieldPath: HOSTILE, message: HOSTILE, value: HOSTILE },
  ],
};

const data: RunReportData = {
  bronze,
  silver,
  reconciliation,
  fanOut: {
    folder: HOSTILE,
    summary: { listed: 1, succeeded: 0, failed: 1 },
    outcomes: [{ index: 0, url: `https://x/${HOSTILE}`, status: 'failed', error: HOSTILE }],
  },
  generatedAt: reconciliation.checkedAt,
};

describe('renderRunReport', () => {
  const html = renderRunReport(data);

  it('lets nothing from the lake become markup', () => {
    expect(html).not.toMatch(/<script|<img|onerror="|javascript:/i);
    // Every hostile value is there, escaped, in element text and in attributes alike.
    expect(html).toContain(
      '&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;',
    );
    expect(html).toContain('data-field="records.&lt;script&gt;');
    expect(html).toContain('&#39;&quot;&amp;&#96;');
  });

  it('forbids scripts and requests through its Content-Security-Policy', () => {
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
    expect(html).not.toMatch(/https?:\/\/(?!x\/)(?!www\.w3\.org\/2000\/svg)/);
  });

  it('shows each part of the run, and the same bytes each time', () => {
    for (const id of [
      'records',
      'tables',
      'quality',
      'checks',
      'quarantine',
      'drift',
      'stages',
      'profiles',
      'fan-out',
    ]) {
      expect(html).toContain(`<section id="${id}">`);
    }
    expect(html).toContain('data-field="status">failed<');
    expect(html).toContain('data-field="quality.score">80<');
    expect(html).toContain('data-field="checks.failed">1<');
    // Header integers beyond 2^53 keep their digits.
    expect(html).toContain('18446744073709551616');
    expect(renderRunReport(data)).toBe(html);
  });

  it('shows what the run cost, per stage, when its reconciliation priced it', () => {
    expect(html).not.toContain('<section id="cost">');
    const usage = sumRunUsage(
      [
        { stage: 'Ingest', usage: invocationUsage(60_000, 3008, { tier1: 40, tier2: 3 }) },
        { stage: HOSTILE, usage: invocationUsage(1000, 1024, { tier1: 1, tier2: 1 }) },
      ],
      30,
    );
    const cost = runCostReport(usage, US_EAST_1_PRICE_LIST, {
      inputBytes: 1e9,
      stateTransitionsFrom: 'estimate',
    });
    const page = renderRunReport({ ...data, reconciliation: { ...reconciliation, cost } });
    expect(page).toContain('<section id="cost">');
    expect(page).toContain(`data-usd="${cost.totalUsd}"`);
    expect(page).toContain('30 state transitions (estimated)');
    expect(page).toContain('data-field="cost.stages.Ingest.totalUsd"');
    expect(page).not.toMatch(/<script|<img/i);
  });

  it('renders a run that has bronze only', () => {
    const page = renderRunReport({ bronze, generatedAt: bronze.timings.finishedAt });
    expect(page).toContain('data-field="status">bronze only<');
    expect(page).not.toContain('<section id="quality">');
  });
});

describe('escapeHtml', () => {
  it('escapes the characters that end text or attributes', () => {
    expect(escapeHtml(`<a href="x" title='y'>&\``)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&#96;',
    );
  });
});

describe('valueText', () => {
  const record = JSON.stringify({
    a: { b: [1, { c: 'x' }] },
    'odd.key': { '"q"': true },
    long: 'y'.repeat(500),
  });
  it('finds the value at a path as jsonPath writes it', () => {
    expect(valueText(record, 'a.b[1].c')).toBe('"x"');
    expect(valueText(record, 'a.b[0]')).toBe('1');
    expect(valueText(record, '["odd.key"]["\\"q\\""]')).toBe('true');
    expect(valueText(record, '$')?.startsWith('{"a":')).toBe(true);
  });
  it('says nothing for a path the record lacks, or a record that is not JSON', () => {
    expect(valueText(record, 'a.b[5]')).toBeUndefined();
    expect(valueText(record, 'a.missing.c')).toBeUndefined();
    expect(valueText('{not json', 'a')).toBeUndefined();
    expect(valueText(null, 'a')).toBeUndefined();
  });
  it('cuts long values', () => {
    expect(valueText(record, 'long')).toMatch(/^"y{119}…$/);
  });
});
