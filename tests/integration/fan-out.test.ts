import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { jsonSummary, textSummary } from '../../shared/cli/run-summary.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { contractFingerprint } from '../../shared/contracts/silver/contract-fingerprint.ts';
import {
  bronzeManifestKey,
  reconciliationKey,
  runReportKey,
  silverBuildOf,
  silverManifestKey,
} from '../../shared/lake/keys.ts';
import { localWorkflowDefinition } from '../../shared/pipeline/local-functions.ts';
import {
  committedRun,
  runWorkflowLocally as runAnyWorkflow,
  type WorkflowEvent,
} from '../../shared/pipeline/local-runner.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import { landingKey } from '../../shared/stages/download/landing-key.ts';
import { StateName, type WorkflowDefinition } from '../../shared/workflow/definition.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fixedClock, listFiles, tempDir } from '../helpers/lake.ts';

/** Runs of new sources: each one commits. */
const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

/** The CMS in-network samples the table of contents lists, served by the test server. */
const LISTED = [
  'in-network-rates-fee-for-service-single-plan-sample.json',
  'in-network-rates-multiple-plans-sample.json',
  'in-network-rates-capitation-single-plan-sample.json',
];
const MISSING = 'in-network-rates-gone.json';
const tableOfContents = builtInDataset('tic-table-of-contents');

describe('Fan-out: a table of contents, run locally through the deployed definition', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let definition: WorkflowDefinition;
  let server: Server;
  let base: string;
  /** Paths the server was asked for. */
  const requested: string[] = [];
  let runNumber = 0;

  beforeAll(async () => {
    tmp = await tempDir('sluice-fan-out-');
    definition = localWorkflowDefinition();
    const files = new Map<string, Buffer>();
    for (const name of LISTED) files.set(`/files/${name}`, await readFile(join(TIC_EXAMPLES, name)));
    server = createServer((req, res) => {
      requested.push(req.url ?? '');
      if (req.url === '/toc.json' || req.url === '/toc-good.json') {
        const body = Buffer.from(JSON.stringify(toc(base, req.url === '/toc-good.json')));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
        res.end(body);
        return;
      }
      const body = files.get(req.url ?? '');
      if (!body) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await tmp.cleanup();
  });

  /**
   * A table of contents in the CMS shape: the three samples (one listed twice), a file the server does not
   * have, and the cloud metadata endpoint, which must never be fetched.
   */
  const toc = (at: string, goodOnly = false) => ({
    reporting_entity_name: 'sluice test',
    reporting_entity_type: 'health insurance issuer',
    last_updated_on: '2026-01-01',
    version: '2.0.0',
    reporting_structure: [
      {
        reporting_plans: [
          {
            plan_name: 'plan a',
            plan_id_type: 'hios',
            plan_id: '1111111111',
            plan_market_type: 'individual',
            issuer_name: 'Acme',
          },
        ],
        in_network_files: [
          { description: 'fee for service', location: `${at}/files/${LISTED[0]}` },
          { description: 'gone', location: `${at}/files/${MISSING}` },
          { description: 'multiple plans', location: `${at}/files/${LISTED[1]}` },
        ].filter((f) => !goodOnly || f.description !== 'gone'),
      },
      {
        reporting_plans: [
          {
            plan_name: 'plan b',
            plan_id_type: 'hios',
            plan_id: '2222222222',
            plan_market_type: 'group',
            issuer_name: 'Acme',
          },
        ],
        in_network_files: [
          { description: 'multiple plans, shared', location: `${at}/files/${LISTED[1]}` },
          { description: 'metadata', location: 'http://169.254.169.254/latest/meta-data/' },
          { description: 'capitation', location: `${at}/files/${LISTED[2]}` },
        ].filter((f) => !goodOnly || f.description !== 'metadata'),
      },
    ],
  });

  /** A fresh landing folder, lake and dead letters, and the parent execution's events. */
  const setup = () => {
    const n = ++runNumber;
    const lakeDir = join(tmp.dir, `lake-${n}`);
    const landingDir = join(tmp.dir, `landing-${n}`);
    const events: WorkflowEvent[] = [];
    const deps = {
      source: new FileObjectStore(landingDir),
      lake: new FileObjectStore(lakeDir),
      clock: fixedClock,
      workDir: join(tmp.dir, `work-${n}`),
      deadLetters: new FolderDeadLetterStore(lakeDir),
      definition,
      retryIntervalMs: 0,
      silverParallelism: 1,
      downloadFetchOptions: { allowLoopback: true, allowInsecureHttp: true },
      onEvent: (event: WorkflowEvent) => events.push(event),
    };
    const entered = () => events.filter((e) => e.type === 'StateEntered').map((e) => e.state!.name);
    return { lakeDir, landingDir, deps, events, entered };
  };
  const settle = () => new Promise((resolve) => setImmediate(resolve));

  it('ingests each listed file as its own run, records the bad one, and fails the execution', async () => {
    const { lakeDir, landingDir, deps, events, entered } = setup();
    const lake = deps.lake;
    // Two files a page: the four distinct listed files take two pages.
    const result = await runWorkflowLocally(
      { dataset: tableOfContents, source: { url: `${base}/toc.json` } },
      { ...deps, fanOutPageSize: 2 },
    );
    await settle();

    // The table of contents' own run.
    expect(result.bronze.dataset).toBe('tic-table-of-contents');
    expect(result.reconciliation?.status).toBe('passed');
    // Its own run committed, but a table of contents whose files did not all make it is no success.
    expect(events.at(-1)?.type).toBe('ExecutionFailed');

    // Each good file: its own committed bronze run, silver build and passing reconciliation.
    const fanOut = result.fanOut!;
    expect(fanOut.duplicates).toBe(1);
    expect(fanOut.files.map((f) => [f.url, f.status])).toEqual([
      [`${base}/files/${LISTED[0]}`, 'succeeded'],
      [`${base}/files/${MISSING}`, 'failed'],
      [`${base}/files/${LISTED[1]}`, 'succeeded'],
      [`${base}/files/${LISTED[2]}`, 'succeeded'],
      ['http://169.254.169.254/latest/meta-data/', 'rejected'],
    ]);
    for (const file of fanOut.files.filter((f) => f.status === 'succeeded')) {
      const runId = file.runId!;
      expect(file.reconciliation).toBe('passed');
      const bronze = await readBronzeManifest(lake, bronzeManifestKey('tic-in-network', runId));
      expect(
        await lake.head(
          silverManifestKey(silverBuildOf(bronze, contractFingerprint(silverContractFor('tic-in-network')!))),
        ),
      ).toBeDefined();
      const report = JSON.parse(
        await readFile(join(lakeDir, reconciliationKey('tic-in-network', runId)), 'utf8'),
      ) as { status: string };
      expect(report.status).toBe('passed');
    }
    expect(new Set(fanOut.files.map((f) => f.runId).filter(Boolean)).size).toBe(3);
    // Each listed file was downloaded once, into landing under its own dataset; the unsafe one never.
    expect(requested.filter((p) => p.startsWith('/files/')).sort()).toEqual(
      [...LISTED, MISSING].map((name) => `/files/${name}`).sort(),
    );
    expect(
      (await listFiles(landingDir)).filter((f) => f.startsWith('_downloads/tic-in-network/')).sort(),
    ).toEqual(LISTED.map((name) => landingKey('tic-in-network', new URL(`${base}/files/${name}`))).sort());

    // The bad one: failed in the result, and its child execution dead-lettered with its input and error.
    const failed = fanOut.files.find((f) => f.status === 'failed')!;
    expect(failed.error).toMatch(/^DownloadError: .*HTTP 404/);
    const letters = await deps.deadLetters.list();
    expect(letters).toHaveLength(2);
    const child = letters.find((l) => l.id === failed.executionName)!;
    expect(child.input).toEqual({
      source: { url: `${base}/files/${MISSING}`, dataset: 'tic-in-network' },
    });
    expect(child.error.Error).toBe('DownloadError');
    // And the table of contents' own execution, with the counts and where the report is.
    const parent = letters.find((l) => l.id !== failed.executionName)!;
    expect(parent.error.Error).toBe('ListedFilesFailedError');
    expect(parent.error.Cause).toBe(
      `1 of 4 listed files failed, 1 more were refused before download (the fan-out report: ${fanOut.report}); ` +
        'each failed file has its own execution in the failure queue',
    );

    // The state machine went through the pages: plan, map, plan, map, plan (done).
    const states = entered();
    expect(states.slice(states.indexOf(StateName.reconcile))).toEqual(
      expect.arrayContaining([StateName.hasFanOut, StateName.startFanOut]),
    );
    const count = (name: string) => states.filter((s) => s === name).length;
    expect(count(StateName.planFanOut)).toBe(3);
    expect(count(StateName.fanOut)).toBe(2);
    expect(count(StateName.fanOutDone)).toBe(3);
    expect(count(StateName.ingestListedFile)).toBe(4);
    expect(count(StateName.listedFileFailed)).toBe(1);
    expect(states.slice(-3)).toEqual([
      StateName.listedFilesFailed,
      StateName.recordFailure,
      StateName.failed,
    ]);

    // The report beside the table of contents' bronze run: the plan, each page's outcomes, the tally.
    const reportFiles = (await listFiles(join(lakeDir, fanOut.report))).sort();
    expect(reportFiles).toEqual(['page-00000.json', 'page-00001.json', 'plan.json', 'summary.json']);
    const pages = await Promise.all(
      ['page-00000.json', 'page-00001.json'].map(
        async (name) =>
          JSON.parse(await readFile(join(lakeDir, fanOut.report, name), 'utf8')) as {
            outcomes: { url: string; status: string }[];
          },
      ),
    );
    expect(
      pages
        .flatMap((p) => p.outcomes)
        .map((o) => o.status)
        .sort(),
    ).toEqual(['failed', 'succeeded', 'succeeded', 'succeeded']);

    // The table of contents' run report, rewritten when the fan-out ended, shows the outcomes.
    const page = await readFile(
      join(lakeDir, runReportKey('tic-table-of-contents', result.bronze.runId)),
      'utf8',
    );
    expect(page).toContain('<section id="fan-out">');
    expect(page).toContain('data-field="fanOut.succeeded">3<');
    expect(page).toContain('data-field="fanOut.failed">1<');
    // Its first lines say the run failed, though the table of contents' own reconciliation passed.
    expect(page).toContain(
      'data-field="fanOut.headline">1 failed, 1 refused before download</span>: the run failed',
    );
    // With the error its page report recorded.
    const gone = pages.flatMap((p) => p.outcomes).find((o) => o.status === 'failed') as unknown as {
      error: string;
    };
    expect(page).toContain(`${MISSING}</td><td>failed</td><td class="mono">${gone.error}</td>`);

    // `sluice run` prints them.
    const timings = { totalMs: 1000, stages: [] };
    const text = textSummary(result, lake, lakeDir, timings);
    expect(text).toContain(
      'fan-out     4 listed file(s): 3 succeeded, 1 failed, 1 rejected, 1 duplicate(s) skipped',
    );
    expect(text).toMatch(new RegExp(`failed +${base}/files/${MISSING} +DownloadError`));
    expect(text).toContain(`report      ${join(lakeDir, fanOut.report)}`);
    const summary = jsonSummary(result, lake, timings);
    expect('fanOut' in summary && summary.fanOut?.files).toHaveLength(5);
  });

  it('succeeds when every listed file is ingested', async () => {
    const { deps, events, entered } = setup();
    const result = await runWorkflowLocally(
      { dataset: tableOfContents, source: { url: `${base}/toc-good.json` } },
      deps,
    );
    await settle();
    expect(result.fanOut!.files.map((f) => f.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(events.at(-1)?.type).toBe('ExecutionSucceeded');
    expect(entered().at(-1)).toBe(StateName.succeeded);
    expect(await deps.deadLetters.list()).toEqual([]);
  });

  it('skips the fan-out when the execution input says "fanOut": false', async () => {
    const { lakeDir, deps, entered } = setup();
    const result = await runWorkflowLocally(
      { dataset: tableOfContents, source: { url: `${base}/toc.json` }, fanOut: false },
      deps,
    );
    await settle();
    expect(result.reconciliation?.status).toBe('passed');
    expect(result.fanOut).toBeUndefined();
    expect(entered().slice(-3)).toEqual([StateName.reconcile, StateName.hasFanOut, StateName.succeeded]);
    expect((await listFiles(lakeDir)).filter((f) => f.includes('tic-in-network'))).toEqual([]);
  });
});
