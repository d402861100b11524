import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createHandler } from '../../functions/fan-out/handler.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { ConfigError, PipelineError } from '../../shared/errors.ts';
import { fanOutReportPrefix } from '../../shared/lake/keys.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { readBronzeManifest } from '../../shared/stages/bronze/read-bronze.ts';
import { buildPlan, pageFiles, planFanOut } from '../../shared/stages/fan-out/plan-fan-out.ts';
import { MAX_EXECUTION_NAME_LENGTH } from '../../shared/workflow/execution.ts';
import type { ListedFileResult } from '../../shared/workflow/stage-io.ts';
import { fixedClock, tempDir } from '../helpers/lake.ts';

const A = 'https://files.example.com/2026-01/acme_in-network.json.gz';
const B = 'https://files.example.com/2026-01/acme_behavioral.json.gz';
const C = 'https://cdn.example.org/c.json';
// The same file as A behind a renewed signature: the same source, so the same landing key as A.
const A2 = 'https://files.example.com/2026-01/acme_in-network.json.gz?sig=renewed';

/** A table of contents: duplicates, unsafe and malformed locations, and A2 among the good ones. */
const TOC = {
  reporting_entity_name: 'Acme',
  reporting_entity_type: 'health insurance issuer',
  version: '2.0.0',
  reporting_structure: [
    {
      reporting_plans: [{ plan_name: 'p', plan_id_type: 'ein', plan_id: '1', plan_market_type: 'group' }],
      in_network_files: [
        { description: 'a', location: A },
        { description: 'a again', location: A },
        { description: 'http', location: 'http://files.example.com/plain.json' },
        { description: 'credentials', location: 'https://user:secret@files.example.com/x.json' },
        { description: 'a2', location: A2 },
      ],
      allowed_amount_file: { description: 'aa', location: 'https://files.example.com/aa.json' },
    },
    { reporting_plans: [], allowed_amount_file: { description: 'only', location: 'https://x.example/aa' } },
    {
      reporting_plans: [],
      in_network_files: [
        { description: 'b', location: B },
        { description: 'metadata', location: 'https://169.254.169.254/latest/meta-data' },
        { description: 'private', location: 'https://10.1.2.3/x.json' },
        { description: 'not a string', location: 42 },
        { description: 'a, once more', location: A },
        { description: 'c', location: C },
      ],
    },
  ],
};

describe('Function: planFanOut', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let lake: FileObjectStore;
  let manifestKey: string;

  beforeAll(async () => {
    tmp = await tempDir('sluice-plan-fan-out-');
    await writeFile(join(tmp.dir, 'toc.json'), JSON.stringify(TOC));
    lake = new FileObjectStore(join(tmp.dir, 'lake'));
    // One structure per bronze part, so the order across parts is exercised too.
    const dataset = parseDatasetConfig({
      ...builtInDataset('tic-table-of-contents'),
      bronze: { partMaxRecords: 1, partMaxBytes: 100_000, compressionLevel: 1 },
    });
    const run = await ingestToBronze(
      { dataset, sourceKey: 'toc.json' },
      { source: new FileObjectStore(tmp.dir), lake, clock: fixedClock },
    );
    expect(run.manifest.parts.length).toBe(3);
    manifestKey = run.manifestKey;
  });
  afterAll(async () => tmp.cleanup());

  const event = (page: number, results: ListedFileResult[] = [], succeeded = 0, failed = 0) => ({
    dataset: 'tic-table-of-contents',
    bronzeManifestKey: manifestKey,
    executionName: 'tic-table-of-contents-toc-json-0123456789abcdef',
    executionId: 'arn:aws:states:us-east-1:123456789012:execution:sluice-dev-ingest:parent',
    page,
    results,
    succeeded,
    failed,
  });
  const readJson = async (key: string) =>
    JSON.parse(await readFile(join(tmp.dir, 'lake', key), 'utf8')) as Record<string, unknown>;

  it('lists distinct in-network files in first-seen order and reports refused locations', async () => {
    const { plan } = await planFanOut(event(0), { lake, clock: fixedClock });
    expect(plan.files.map((f) => f.url)).toEqual([A, A2, B, C]);
    expect(plan.files.map((f) => f.index)).toEqual([0, 1, 2, 3]);
    expect(plan.files.every((f) => f.dataset === 'tic-in-network')).toBe(true);
    expect(plan.duplicates).toBe(2);
    expect(plan.rejected).toEqual([
      {
        structureIndex: 0,
        fileIndex: 2,
        url: 'http://files.example.com/plain.json',
        reason: expect.stringMatching(/plain http is not allowed/),
      },
      {
        structureIndex: 0,
        fileIndex: 3,
        url: expect.not.stringContaining('secret'),
        reason: expect.stringMatching(/credentials in the URL/),
      },
      {
        structureIndex: 2,
        fileIndex: 1,
        url: 'https://169.254.169.254/latest/meta-data',
        reason: '169.254.169.254 is a link-local address',
      },
      {
        structureIndex: 2,
        fileIndex: 2,
        url: 'https://10.1.2.3/x.json',
        reason: '10.1.2.3 is a private address (set allowPrivate to permit it)',
      },
      { structureIndex: 2, fileIndex: 3, reason: 'location is not a URL string' },
    ]);
  });

  it('names each child execution after the parent and the URL: deterministic, distinct, valid', async () => {
    const manifest = await readBronzeManifest(lake, manifestKey);
    const once = await buildPlan(manifest, 'parent-1', { lake });
    const again = await buildPlan(manifest, 'parent-1', { lake });
    const other = await buildPlan(manifest, 'parent-2', { lake });
    const names = once.files.map((f) => f.executionName);
    expect(again.files.map((f) => f.executionName)).toEqual(names);
    expect(new Set(names).size).toBe(names.length);
    expect(other.files.map((f) => f.executionName).filter((n) => names.includes(n))).toEqual([]);
    for (const name of names) {
      expect(name).toMatch(/^tic-in-network-[A-Za-z0-9_-]+-[0-9a-f]{32}$/);
      expect(name.length).toBeLessThanOrEqual(MAX_EXECUTION_NAME_LENGTH);
    }
  });

  it('accepts http and private addresses only when allowed, never link-local', async () => {
    const manifest = await readBronzeManifest(lake, manifestKey);
    const plan = await buildPlan(manifest, 'p', {
      lake,
      urlSafety: { allowInsecureHttp: true, allowPrivate: true },
    });
    expect(plan.files.map((f) => f.url)).toEqual([
      A,
      'http://files.example.com/plain.json',
      A2,
      B,
      'https://10.1.2.3/x.json',
      C,
    ]);
    // Never the metadata endpoint.
    expect(plan.rejected.map((r) => r.url)).toContain('https://169.254.169.254/latest/meta-data');
  });

  it('pages by count, keeps files of one landing key on different pages, and records each page', async () => {
    const deps = { lake, clock: fixedClock, pageSize: 2 };
    const report = fanOutReportPrefix(
      'tic-table-of-contents',
      (await readBronzeManifest(lake, manifestKey)).runId,
      event(0).executionName,
    );

    const first = await planFanOut(event(0), deps);
    // A and A2 would land on the same key: A2 waits for the next page.
    expect(first.plan.pages).toEqual([
      [0, 2],
      [1, 3],
    ]);
    expect(first.output).toMatchObject({
      page: 0,
      nextPage: 1,
      pages: 2,
      done: false,
      listed: 4,
      rejected: 5,
    });
    expect(first.output.items.map((i) => i.url)).toEqual([A, B]);
    expect(first.output.report).toBe(report);
    const plan = await readJson(`${report}plan.json`);
    expect(plan).toMatchObject({ listed: 4, duplicates: 2, pages: 2, executionName: event(0).executionName });
    expect((plan.rejected as unknown[]).length).toBe(5);

    const second = await planFanOut(
      event(1, [
        { status: 'succeeded', runId: 'acme_in-network.json.gz-000000000000' },
        { status: 'failed', error: 'States.TaskFailed' },
      ]),
      deps,
    );
    expect(second.output).toMatchObject({ page: 1, nextPage: 2, done: false, succeeded: 1, failed: 1 });
    expect(second.output.items.map((i) => i.url)).toEqual([A2, C]);
    expect(await readJson(`${report}page-00000.json`)).toMatchObject({
      page: 0,
      outcomes: [
        { index: 0, url: A, status: 'succeeded', runId: 'acme_in-network.json.gz-000000000000' },
        { index: 2, url: B, status: 'failed', error: 'States.TaskFailed' },
      ],
    });

    const last = await planFanOut(
      event(
        2,
        [
          { status: 'succeeded', runId: 'r2' },
          { status: 'succeeded', runId: 'r3' },
        ],
        1,
        1,
      ),
      deps,
    );
    expect(last.output).toMatchObject({ page: 2, done: true, items: [], succeeded: 3, failed: 1 });
    expect(await readJson(`${report}summary.json`)).toMatchObject({
      listed: 4,
      rejected: 5,
      duplicates: 2,
      pages: 2,
      succeeded: 3,
      failed: 1,
    });
  });

  it('refuses results that do not match the page, and pages past the end', async () => {
    const deps = { lake, clock: fixedClock, pageSize: 2 };
    await expect(planFanOut(event(1, [{ status: 'failed', error: 'x' }]), deps)).rejects.toBeInstanceOf(
      PipelineError,
    );
    await expect(planFanOut(event(3), deps)).rejects.toBeInstanceOf(ConfigError);
    await expect(planFanOut({ ...event(0), dataset: 'tic-in-network' }, deps)).rejects.toBeInstanceOf(
      ConfigError,
    );
  });

  it('runs as the PlanFanOut Lambda: checks its event and that both datasets are deployed', async () => {
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const handler = (datasets: string[]) =>
        createHandler({
          config: { serviceName: 'sluice-test', logLevel: 'ERROR', lakeBucket: 'lake', datasets },
          lake,
          clock: fixedClock,
          observability: createObservability({ serviceName: 'sluice-test', logLevel: 'SILENT' }),
        });
      const deployed = handler(['tic-in-network', 'tic-table-of-contents']);
      const output = await deployed(event(0));
      // A2 lands on A's key: it waits for the second page.
      expect(output).toMatchObject({ page: 0, pages: 2, done: false, listed: 4 });
      expect(output.items.map((i) => i.url)).toEqual([A, B, C]);
      await expect(deployed({ ...event(0), page: -1 })).rejects.toThrow(/the fan-out event is invalid.*page/);
      await expect(handler(['tic-table-of-contents'])(event(0))).rejects.toThrow(
        /dataset "tic-in-network" is not deployed/,
      );
    } finally {
      stdout.mockRestore();
    }
  });

  it('is done at once for a table of contents that lists no in-network file', async () => {
    // An empty reporting_structure fails the ingest (MissingRecordPathError); a structure that lists only
    // an allowed-amounts file is a table of contents with nothing to fan out.
    const onlyAllowedAmounts = [TOC.reporting_structure[1]];
    await writeFile(
      join(tmp.dir, 'empty.json'),
      JSON.stringify({ ...TOC, reporting_structure: onlyAllowedAmounts }),
    );
    const run = await ingestToBronze(
      { dataset: builtInDataset('tic-table-of-contents'), sourceKey: 'empty.json' },
      { source: new FileObjectStore(tmp.dir), lake, clock: fixedClock },
    );
    const { output } = await planFanOut(
      { ...event(0), bronzeManifestKey: run.manifestKey },
      { lake, clock: fixedClock },
    );
    expect(output).toMatchObject({ page: 0, pages: 0, done: true, listed: 0, items: [] });
  });
});

describe('Function: pageFiles', () => {
  const file = (url: string, landingKey: string) => ({ url, dataset: 'd', executionName: 'n', landingKey });

  it('fills pages in order up to the page size', () => {
    const files = ['a', 'b', 'c', 'd', 'e'].map((k) => file(`https://h/${k}`, k));
    expect(pageFiles(files, 2, 1_000_000)).toEqual([[0, 1], [2, 3], [4]]);
  });

  it('starts a new page when the next item would pass the byte budget', () => {
    const files = ['a', 'b', 'c'].map((k) => file(`https://h/${k.repeat(100)}`, k));
    const oneItem =
      Buffer.byteLength(JSON.stringify({ url: files[0]!.url, dataset: 'd', executionName: 'n' })) + 1;
    expect(pageFiles(files, 200, oneItem * 2)).toEqual([[0, 1], [2]]);
    expect(pageFiles(files, 200, 10)).toEqual([[0], [1], [2]]);
  });

  it('moves a file whose landing key is already on a page to the first later page with room', () => {
    const files = [
      file('https://h/1/x', 'x'),
      file('https://h/2/x', 'x'),
      file('https://h/y', 'y'),
      file('https://h/3/x', 'x'),
    ];
    expect(pageFiles(files, 3, 1_000_000)).toEqual([[0, 2], [1], [3]]);
  });
});
