import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpDom, findChromium, screenshot } from '../helpers/chromium.ts';
import { runSluice } from '../helpers/cli.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';
import { colourCounts, decodePng } from '../helpers/png.ts';

/**
 * The run report as a person sees it: the CLI runs a file, `sluice report` names the page, and a real
 * browser (headless Chromium) loads it from disk. The numbers the browser rendered are read back from its
 * DOM and compared with reconciliation.json and the manifests; a screenshot shows the charts drawn.
 */

const _BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');
const chromium = findChromium();
if (!chromium) {
  console.warn(
    'run-report browser tests skipped: no Chromium found (apt-get install -y chromium, or set SLUICE_CHROMIUM); ' +
      '.ci/run installs it',
  );
}

/** Runs the CLI without blocking this process. */
const sluice = (args: string[]) => runSluice(args);

/** Every `data-field` element's text in a DOM: the numbers and words the page shows. */
function fields(dom: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of dom.matchAll(/<[a-z]+\b[^>]*\bdata-field="([^"]*)"[^>]*>([^<]*)</g)) {
    found.set(fromHtml(match[1]!), fromHtml(match[2]!));
  }
  return found;
}
const fromHtml = (html: string) =>
  html
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&amp;', '&');
/** A shown count (`8,184`) as a number. */
const count = (text: string | undefined) => Number((text ?? 'NaN').replaceAll(',', ''));

async function readJson(file: string) {
  return JSON.parse(await readFile(file, 'utf8'));
}

describe.skipIf(!chromium)('the run report in a browser', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-report-');
  });
  afterAll(async () => tmp.cleanup());

  it('shows the numbers of reconciliation.json and the manifests, and draws its charts', async () => {
    const lake = join(tmp.dir, 'lake');
    const ran = await sluice(['run', SAMPLE, '--dataset', 'tic-in-network', '--lake', lake, '-q']);
    expect(ran.status, ran.stderr).toBe(0);
    const reported = await sluice(['report', '--lake', lake]);
    expect(reported.status, reported.stderr).toBe(0);
    const page = reported.stdout.trim();
    expect(page).toMatch(/\/run=[^/]+\/report\.html$/);
    // A build the lake does not have is named as such, not as a lake without runs.
    const noBuild = await sluice(['report', '--lake', lake, '--build', 'zzz']);
    expect(noBuild.status).toBe(2);
    expect(noBuild.stderr).toContain('has no rebuild with build zzz');
    const folder = page.slice(0, -'report.html'.length);
    const reconciliation = await readJson(`${folder}reconciliation.json`);
    const bronze = await readJson(`${folder}_manifest.json`);
    const silverFile = (await listFiles(lake)).find((f) => f.includes('/_manifests/'))!;
    const silver = await readJson(join(lake, silverFile));

    const shown = fields(await dumpDom(chromium!, page));
    expect(shown.get('status')).toBe('passed');
    expect(shown.get('runId')).toBe(reconciliation.runId);
    expect(count(shown.get('quality.score'))).toBe(reconciliation.quality.score);
    for (const part of ['completeness', 'validity', 'uniqueness', 'integrity']) {
      expect(Number(shown.get(`quality.${part}`)), part).toBe(reconciliation.quality[part]);
    }
    const checks = reconciliation.checks as { ok: boolean }[];
    expect(count(shown.get('checks.total'))).toBe(checks.length);
    expect(count(shown.get('checks.passed'))).toBe(checks.filter((c) => c.ok).length);
    expect(count(shown.get('quarantine.records'))).toBe(reconciliation.quarantine.records);
    expect(count(shown.get('quarantine.quarantined'))).toBe(reconciliation.quarantine.quarantined);
    for (const [path, parsed] of Object.entries(bronze.records as Record<string, number>)) {
      expect(count(shown.get(`records.${path}.parsed`)), path).toBe(parsed);
      expect(count(shown.get(`records.${path}.accepted`)), path).toBe(silver.records[path].accepted);
      expect(count(shown.get(`records.${path}.quarantined`)), path).toBe(silver.records[path].quarantined);
    }
    for (const [table, result] of Object.entries(silver.tables as Record<string, { rowsWritten: number }>)) {
      expect(count(shown.get(`tables.${table}.rowsWritten`)), table).toBe(result.rowsWritten);
      // The profile is read from the Parquet file: the same rows.
      if (result.rowsWritten > 0) {
        expect(count(shown.get(`profiles.${table}.rows`)), table).toBe(result.rowsWritten);
      }
    }
    expect(shown.get('stages.parse → bronze.ms')).toBeDefined();
    const dom = await dumpDom(chromium!, page);
    expect(dom).toContain(`data-ms="${bronze.timings.durationMs}"`);

    // The charts are drawn: each series' colour fills thousands of pixels (bars, not a blank page).
    const png = join(tmp.dir, 'report.png');
    await screenshot(chromium!, page, png, 1100, 2000);
    const colours = colourCounts(decodePng(await readFile(png)));
    for (const [series, colour] of [
      ['parsed', '#0072b2'],
      ['bronze', '#56b4e9'],
      ['accepted / rows written', '#009e73'],
    ]) {
      expect(colours.get(colour!) ?? 0, series).toBeGreaterThan(2000);
    }
    expect(colours.size).toBeGreaterThan(50);
  });

  it('reports a failed run too, and shows hostile names and values as text', async () => {
    const config = join(tmp.dir, 'accounts.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'accounts',
        format: 'csv',
        silver: {
          table: 'accounts',
          columns: [
            { name: 'id', type: 'integer', required: true },
            { name: 'owner', type: 'string', required: true },
          ],
          primaryKey: ['id'],
        },
      }),
    );
    // A file name and values written to become markup if a page took them as HTML.
    const file = join(tmp.dir, '"><svg onload=alert(1)>.csv');
    await writeFile(
      file,
      'id,owner\n1,<script>alert(2)</script>\n<img src=x onerror=alert(3)>,b\n3,c\n<b>4</b>,d\n',
    );
    const lake = join(tmp.dir, 'failed-lake');
    const ran = await sluice(['run', file, '--config', config, '--lake', lake, '-q']);
    expect(ran.status).toBe(1);
    expect(ran.stderr).toMatch(/QuarantineThresholdError: 2 of 4 records/);

    const runs = await sluice(['runs', '--lake', lake, '--json']);
    const [entry, ...others] = runs.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(others).toEqual([]);
    expect(entry).toMatchObject({ dataset: 'accounts', status: 'failed', records: 4, resumed: false });
    expect(entry.error).toMatch(/^QuarantineThresholdError: /);

    const page = (await sluice(['report', entry.runId, '--lake', lake])).stdout.trim();
    expect(page).toBe(join(lake, entry.reportKey));
    const dom = await dumpDom(chromium!, page);
    const shown = fields(dom);
    expect(shown.get('status')).toBe('failed');
    expect(count(shown.get('quarantine.quarantined'))).toBe(2);
    expect(shown.get('source')).toBe(file);
    // Nothing from the file became an element or an attribute.
    expect(dom).not.toMatch(/<(script|img|b)\b/i);
    expect(dom).not.toMatch(/<svg[^>]*onload/i);
    // The quarantined values are shown, as text.
    expect(dom).toContain('&lt;img src=x onerror=alert(3)&gt;');
    expect(dom).toContain('&lt;b&gt;4&lt;/b&gt;');
  });
});
