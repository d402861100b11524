import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { type DatasetConfig, parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { bronzeRunPrefix, ingestCheckpointKey, sourceId } from '../../shared/lake/keys.ts';
import {
  DEFAULT_LEASE_TTL_MS,
  holdSourceLease,
  LeaseLostError,
  releaseSourceLease,
} from '../../shared/lake/source-lease.ts';
import { committedRun, runWorkflowLocally as runAnyWorkflow } from '../../shared/pipeline/local-runner.ts';
import {
  type IngestSlicedResult,
  ingestSlice,
  ingestToBronze,
  type SliceBudget,
} from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { withSliceMaxBytes } from '../../shared/stages/bronze/slice-budget.ts';
import { StateName } from '../../shared/workflow/definition.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';

/** Runs of new sources: each one commits. */
const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

/** Stop at every segment boundary: as many slices as the file has segments. */
const everySegment: SliceBudget = { shouldStop: () => true };

/** The built-in TiC dataset with tiny segments and parts, so a small file has many of both. */
function slicedDataset(base: DatasetConfig, segmentBytes: number): DatasetConfig {
  return parseDatasetConfig({
    ...base,
    bronze: { ...base.bronze, segmentBytes, partMaxRecords: 40 },
  });
}

/**
 * Every file under `dir`, relative path → bytes; but the source's lease (it names its last holder) and
 * what a run's cost is made of, which grows with its invocations: usage records, the reconciliation's
 * `cost`, and the report that shows it (its numbers come from the records compared here).
 */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const file of await listFiles(dir)) {
    if (file.endsWith('/lease.json') || file.startsWith('_usage/') || file.endsWith('/report.html')) continue;
    const bytes = await readFile(join(dir, file));
    if (!file.endsWith('/reconciliation.json')) files.set(file, bytes);
    else {
      const { cost: _, ...report } = JSON.parse(bytes.toString('utf8'));
      files.set(file, Buffer.from(JSON.stringify(report)));
    }
  }
  return files;
}

function expectIdentical(actual: Map<string, Buffer>, expected: Map<string, Buffer>) {
  expect([...actual.keys()]).toEqual([...expected.keys()]);
  for (const [file, bytes] of expected) {
    expect(actual.get(file)?.equals(bytes), `${file} differs`).toBe(true);
  }
}

describe('sliced ingest (bounded slices, resumed from checkpoints)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let lakes = 0;
  const newLake = () => join(tmp.dir, `lake-${lakes++}`);
  beforeAll(async () => {
    tmp = await tempDir('sluice-sliced-');
  });
  afterAll(async () => tmp.cleanup());

  /** Ingest `key` in one go and in slices of one segment each; returns the slice count and both lakes. */
  async function wholeAndSliced(dataset: DatasetConfig, key: string) {
    const deps = (lake: string, budget?: SliceBudget) => ({
      source: fileStore(tmp.dir),
      lake: fileStore(lake),
      clock: fixedClock,
      budget,
    });
    const wholeLake = newLake();
    const whole = await ingestToBronze({ dataset, sourceKey: key }, deps(wholeLake));
    const slicedLake = newLake();
    let result: Awaited<ReturnType<typeof ingestSlice>>;
    do result = await ingestSlice({ dataset, sourceKey: key }, deps(slicedLake, everySegment));
    while (result.status === 'sliced' && result.slices < 1000);
    if (result.status !== 'committed') throw new Error(`expected a committed run, got ${result.status}`);
    return { whole, slices: result.slices, wholeLake, slicedLake };
  }

  /** The whole workflow on `sourceKey` into a new lake; `ingests`: how often it entered the Ingest state. */
  async function runWorkflow(dataset: DatasetConfig, sourceKey: string, sliceBudget?: () => SliceBudget) {
    const lake = newLake();
    let ingests = 0;
    const result = await runWorkflowLocally(
      { dataset, sourceKey },
      {
        source: fileStore(tmp.dir),
        lake: fileStore(lake),
        deadLetters: new FolderDeadLetterStore(lake),
        clock: fixedClock,
        workDir: join(tmp.dir, 'work'),
        sliceBudget,
        onEvent: (event) => {
          if (event.type === 'StateEntered' && event.state?.name === StateName.ingest) ingests++;
        },
      },
    );
    return { lake, result, ingests };
  }

  it('runs the deployed workflow in ≥ 20 slices and writes bronze, silver and reconciliation byte-identical to one slice', async () => {
    const { facts } = await generateFile(tmp.dir, 'in-network.json.gz', {
      seed: 20261122,
      targetBytes: 1_500_000,
      headerPosition: 'split',
    });
    const dataset = slicedDataset(builtInDataset('tic-in-network'), 48 * 1024);
    const whole = await runWorkflow(dataset, 'in-network.json.gz');
    const sliced = await runWorkflow(dataset, 'in-network.json.gz', () => everySegment);

    expect(whole.result.bronze.slices).toBe(1);
    expect(whole.ingests).toBe(1);
    expect(sliced.result.bronze.slices).toBeGreaterThanOrEqual(20);
    // Each slice was one pass of the state machine's Ingest → IngestDone loop.
    expect(sliced.ingests).toBe(sliced.result.bronze.slices);
    expect(sliced.result.bronze.manifest.records.in_network).toBe(facts.records.in_network);
    expect(sliced.result.reconciliation?.status).toBe('passed');
    expectIdentical(await snapshot(sliced.lake), await snapshot(whole.lake));
  });

  const sources: [string, () => Buffer, string][] = [
    [
      'plain pretty-printed JSON',
      () => Buffer.from(JSON.stringify(sampleDocument(400), null, 2)),
      'tic-in-network',
    ],
    [
      'multi-member gzip with empty members',
      () => {
        const text = Buffer.from(JSON.stringify(sampleDocument(400)));
        const cut = [0, 1000, 1000, 25_000, 80_000, text.length];
        return Buffer.concat(cut.slice(1).map((end, i) => gzipSync(text.subarray(cut[i], end))));
      },
      'tic-in-network',
    ],
  ];
  it.each(sources)('%s: every slicing gives the same bronze', async (_name, make, datasetName) => {
    await writeFile(join(tmp.dir, 'source.bin'), make());
    const dataset = slicedDataset(builtInDataset(datasetName), 8 * 1024);
    const { slices, wholeLake, slicedLake } = await wholeAndSliced(dataset, 'source.bin');
    expect(slices).toBeGreaterThanOrEqual(10);
    expectIdentical(await snapshot(slicedLake), await snapshot(wholeLake));
  });

  it('resumes through parser traps (escaped keys, deep nesting, 100 KB strings, pretty-printing)', async () => {
    await generateFile(tmp.dir, 'nasty.json.gz', {
      seed: 99,
      targetBytes: 900_000,
      nasty: true,
      pretty: true,
      headerPosition: 'split',
      providerReferencesPosition: 'after',
    });
    const dataset = slicedDataset(builtInDataset('tic-in-network'), 16 * 1024);
    const { slices, wholeLake, slicedLake } = await wholeAndSliced(dataset, 'nasty.json.gz');
    expect(slices).toBeGreaterThanOrEqual(20);
    expectIdentical(await snapshot(slicedLake), await snapshot(wholeLake));
  });

  it('slices NDJSON the same way', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ id: i, text: `row ${i} ✓` }));
    await writeFile(join(tmp.dir, 'rows.ndjson.gz'), gzipSync(`${lines.join('\n')}\n`));
    const dataset = parseDatasetConfig({
      name: 'rows',
      format: 'ndjson',
      bronze: { segmentBytes: 4096, partMaxRecords: 100 },
    });
    const { whole, slices, wholeLake, slicedLake } = await wholeAndSliced(dataset, 'rows.ndjson.gz');
    expect(whole.manifest.records.records).toBe(3000);
    expect(slices).toBeGreaterThanOrEqual(20);
    expectIdentical(await snapshot(slicedLake), await snapshot(wholeLake));
  });

  it('slices CSV the same way: quoted line breaks, mixed line ends, a byte-order mark, gzip, and silver', async () => {
    // A row that starts with U+FEFF at a slice's start must stay as it is (only the file's first bytes
    // can be a byte-order mark); a quoted cell holds line breaks; rows end in CRLF, LF or CR.
    const ends = ['\r\n', '\n', '\r\n', '\r'];
    const rows = Array.from({ length: 3000 }, (_, i) => {
      const note = i % 7 === 0 ? `"line one\nline ""two"" ✓"` : i % 11 === 0 ? '\ufeffmark' : `note ${i}`;
      return `${i},${note},${i * 1.5}${ends[i % ends.length]}`;
    });
    await writeFile(join(tmp.dir, 'rows.csv.gz'), gzipSync(`\ufeffid,note,amount\r\n${rows.join('')}`));
    const dataset = parseDatasetConfig({
      name: 'csv-rows',
      format: 'csv',
      bronze: { segmentBytes: 4096, partMaxRecords: 100 },
      silver: {
        table: 'rows',
        columns: [
          { name: 'id', type: 'integer' },
          { name: 'note', type: 'string' },
          { name: 'amount', type: 'number' },
        ],
        primaryKey: ['id'],
      },
    });
    const { whole, slices, wholeLake, slicedLake } = await wholeAndSliced(dataset, 'rows.csv.gz');
    expect(whole.manifest.records.records).toBe(3000);
    expect(slices).toBeGreaterThanOrEqual(10);
    expectIdentical(await snapshot(slicedLake), await snapshot(wholeLake));

    // The whole workflow: bronze, silver and reconciliation identical to one slice.
    const one = await runWorkflow(dataset, 'rows.csv.gz');
    const many = await runWorkflow(dataset, 'rows.csv.gz', () => everySegment);
    expect(many.result.bronze.slices).toBe(slices);
    expect(many.result.reconciliation?.status).toBe('passed');
    expect(many.result.silver?.manifest.tables.rows?.rowsWritten).toBe(3000);
    expectIdentical(await snapshot(many.lake), await snapshot(one.lake));
  });

  it("a CSV slice that starts at a row with a cell that is not valid CSV names that row's byte offset", async () => {
    // ≈ 3 MB of good rows: later input chunks than the first slices read.
    const good = Array.from({ length: 200_000 }, (_, i) => `${i},note ${i}\n`).join('');
    const content = `id,note\n${good}7,"bad"x\n8,ok\n`;
    await writeFile(join(tmp.dir, 'bad.csv'), content);
    const dataset = parseDatasetConfig({
      name: 'bad-rows',
      format: 'csv',
      bronze: { segmentBytes: 256 * 1024 },
    });
    const lake = newLake();
    const deps = {
      source: fileStore(tmp.dir),
      lake: fileStore(lake),
      clock: fixedClock,
      budget: everySegment,
    };
    let error: unknown;
    let slices = 0;
    for (; slices < 100 && error === undefined; slices++) {
      error = await ingestSlice({ dataset, sourceKey: 'bad.csv' }, deps).then(
        (r) => (r.status === 'sliced' ? undefined : new Error(`expected a failure, got ${r.status}`)),
        (e: unknown) => e,
      );
    }
    // Slices of one 256 KB segment each came before the one that read the bad row.
    expect(slices).toBeGreaterThan(3);
    expect(String(error)).toContain(`malformed input at byte ${content.indexOf('7,"bad"x')}: invalid CSV`);
  });

  it('a byte bound (ingest.sliceMaxMb) ends each slice at the first segment boundary past it, never later than the time budget', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => JSON.stringify({ id: i, text: `row ${i} ✓` }));
    const body = `${lines.join('\n')}\n`;
    await writeFile(join(tmp.dir, 'bounded.ndjson.gz'), gzipSync(body));
    const segmentBytes = 4096;
    const dataset = parseDatasetConfig({
      name: 'rows',
      format: 'ndjson',
      bronze: { segmentBytes, partMaxRecords: 100 },
    });
    /** Slices of a run under `budget`, each slice's uncompressed bytes, and its lake. */
    const sliced = async (budget: SliceBudget) => {
      const lake = newLake();
      const sizes: number[] = [];
      let at = 0;
      let result: Awaited<ReturnType<typeof ingestSlice>>;
      do {
        result = await ingestSlice(
          { dataset, sourceKey: 'bounded.ndjson.gz' },
          { source: fileStore(tmp.dir), lake: fileStore(lake), clock: fixedClock, budget },
        );
        const end = result.status === 'sliced' ? result.progress.uncompressedBytes : Buffer.byteLength(body);
        sizes.push(end - at);
        at = end;
      } while (result.status === 'sliced' && sizes.length < 1000);
      return { sizes, lake };
    };
    const never: SliceBudget = { shouldStop: () => false };
    const bound = 3 * segmentBytes;
    const bounded = await sliced(withSliceMaxBytes(never, bound));
    // Every slice but the last read at least the bound, and at most one segment (and a record) more.
    expect(bounded.sizes.length).toBeGreaterThanOrEqual(
      Math.floor(Buffer.byteLength(body) / (4 * segmentBytes)),
    );
    for (const size of bounded.sizes.slice(0, -1)) {
      expect(size).toBeGreaterThanOrEqual(bound);
      expect(size).toBeLessThan(bound + segmentBytes + 100);
    }
    // The same slices again: nothing but the bytes decides.
    expect((await sliced(withSliceMaxBytes(never, bound))).sizes).toEqual(bounded.sizes);
    // A time budget that is spent ends the slice at its first boundary, whatever the bound.
    const spent = await sliced(withSliceMaxBytes(everySegment, 1_000_000_000));
    expect(spent.sizes.length).toBeGreaterThan(2 * bounded.sizes.length);
    expectIdentical(await snapshot(bounded.lake), await snapshot(spent.lake));
  });

  it('commits when the last record ends only at the end of input, right at a segment boundary', async () => {
    // NDJSON without a final newline whose last line is a number: the scanner finishes that record only
    // when told the input ended, where there is nothing left to pause.
    const body = `${Array.from({ length: 50 }, (_, i) => JSON.stringify({ id: i })).join('\n')}\n1234567`;
    await writeFile(join(tmp.dir, 'tail.ndjson'), body);
    const dataset = parseDatasetConfig({
      name: 'tail',
      format: 'ndjson',
      bronze: { segmentBytes: body.length - 3, partMaxRecords: 10 },
    });
    const { whole, wholeLake, slicedLake } = await wholeAndSliced(dataset, 'tail.ndjson');
    expect(whole.manifest.records.records).toBe(51);
    expectIdentical(await snapshot(slicedLake), await snapshot(wholeLake));
  });

  it('leaves what is not its own output under the run prefix (fan-out reports) when rerun or failing', async () => {
    await writeFile(join(tmp.dir, 'keep.json'), JSON.stringify(sampleDocument(50)));
    const dataset = slicedDataset(builtInDataset('tic-in-network'), 8 * 1024);
    const lake = fileStore(newLake());
    const deps = { source: fileStore(tmp.dir), lake, clock: fixedClock };
    const first = await ingestToBronze({ dataset, sourceKey: 'keep.json' }, deps);
    const prefix = bronzeRunPrefix(dataset.name, first.runId);
    const report = `${prefix}fan-out/exec-1/summary.json`;
    const stalePart = `${prefix}in_network/part-99999.ndjson.gz`;
    await lake.write(report, '{}');
    await lake.write(stalePart, 'stale');
    // A committed run is reused as it is; one that died before its manifest is redone, and its
    // leftovers (a part beyond the new count) go.
    const reused = await ingestToBronze({ dataset, sourceKey: 'keep.json' }, deps);
    expect(reused).toMatchObject({ reused: true, slices: 0 });
    await lake.delete(first.manifestKey);
    const second = await ingestToBronze({ dataset, sourceKey: 'keep.json' }, deps);
    expect(second.reused).toBe(false);
    expect(second.manifest.parts).toEqual(first.manifest.parts);
    expect(await lake.head(report)).toBeDefined();
    expect(await lake.head(stalePart)).toBeUndefined();
    // A malformed source removes its run's output, and only that.
    await writeFile(join(tmp.dir, 'keep.json'), '{"in_network": [1, 2,');
    await expect(ingestToBronze({ dataset, sourceKey: 'keep.json' }, deps)).rejects.toThrow(
      /truncated|end of input/,
    );
    expect(await lake.head(report)).toBeDefined();
  });

  it('reports progress across slices and removes the checkpoint on commit', async () => {
    await writeFile(join(tmp.dir, 'progress.json'), JSON.stringify(sampleDocument(300)));
    const dataset = slicedDataset(builtInDataset('tic-in-network'), 8 * 1024);
    const lake = newLake();
    const deps = {
      source: fileStore(tmp.dir),
      lake: fileStore(lake),
      clock: fixedClock,
      budget: everySegment,
    };
    const first = (await ingestSlice({ dataset, sourceKey: 'progress.json' }, deps)) as IngestSlicedResult;
    expect(first.status).toBe('sliced');
    const checkpoint = JSON.parse(await readFile(join(lake, first.checkpointKey), 'utf8'));
    expect(checkpoint.slices).toBe(1);
    const second = (await ingestSlice({ dataset, sourceKey: 'progress.json' }, deps)) as IngestSlicedResult;
    expect(second.slices).toBe(2);
    expect(second.progress.slicesDone).toBe(1);
    expect(second.progress.uncompressedBytes).toBeGreaterThan(first.progress.uncompressedBytes);
    expect(second.progress.records).toBeGreaterThan(first.progress.records);
    const done = await ingestToBronze(
      { dataset, sourceKey: 'progress.json' },
      { ...deps, budget: undefined },
    );
    expect(done.slices).toBeGreaterThan(2);
    expect(await fileStore(lake).head(ingestCheckpointKey(dataset.name, done.runId))).toBeUndefined();
  });

  it('stops a later slice whose lease another run took over and let go of (it may have committed since)', async () => {
    await writeFile(join(tmp.dir, 'stalled.json'), JSON.stringify(sampleDocument(300)));
    const dataset = slicedDataset(builtInDataset('tic-in-network'), 8 * 1024);
    const lake = fileStore(newLake());
    let now = fixedClock.now();
    const clock = { now: () => now };
    const deps = { source: fileStore(tmp.dir), lake, clock, budget: everySegment };
    const input = { dataset, sourceKey: 'stalled.json', leaseHolder: 'run-a' };
    expect((await ingestSlice(input, deps)).status).toBe('sliced');
    // The same run's next slice renews its own lease.
    expect((await ingestSlice(input, deps)).status).toBe('sliced');
    // Run a stalls past its lease; run b takes the source over and lets go of it.
    now = new Date(now.getTime() + DEFAULT_LEASE_TTL_MS + 1000);
    const uri = deps.source.uri('stalled.json');
    const taken = { dataset: dataset.name, sourceId: sourceId(uri), location: uri, holder: 'run-b' };
    await holdSourceLease(taken, { lake, clock });
    await releaseSourceLease(taken, { lake, clock });
    await expect(ingestSlice(input, deps)).rejects.toThrow(LeaseLostError);
    // A run that never sliced before takes the released lease as any first slice does.
    expect((await ingestSlice({ ...input, leaseHolder: 'run-c' }, deps)).status).toBe('sliced');
  });

  it('ignores a checkpoint written under another dataset config and starts over', async () => {
    await writeFile(join(tmp.dir, 'stale.json'), JSON.stringify(sampleDocument(300)));
    const lake = newLake();
    const deps = (budget?: SliceBudget) => ({
      source: fileStore(tmp.dir),
      lake: fileStore(lake),
      clock: fixedClock,
      budget,
    });
    const before = slicedDataset(builtInDataset('tic-in-network'), 8 * 1024);
    expect((await ingestSlice({ dataset: before, sourceKey: 'stale.json' }, deps(everySegment))).status).toBe(
      'sliced',
    );
    const after = slicedDataset(builtInDataset('tic-in-network'), 16 * 1024);
    const resumed = await ingestToBronze({ dataset: after, sourceKey: 'stale.json' }, deps());
    const fresh = await ingestToBronze({ dataset: after, sourceKey: 'stale.json' }, deps());
    expect(resumed.slices).toBe(1);
    expect(resumed.manifest.parts).toEqual(fresh.manifest.parts);
  });
});

/** A small in-network document built in memory (for sources that are not the generator's gzip). */
function sampleDocument(items: number) {
  return {
    reporting_entity_name: 'Example Health Plan',
    reporting_entity_type: 'health insurance issuer',
    last_updated_on: '2026-01-01',
    version: '1.0.0',
    provider_references: Array.from({ length: 20 }, (_, i) => ({
      provider_group_id: i + 1,
      provider_groups: [{ npi: [1000000000 + i], tin: { type: 'ein', value: `12-34567${i % 10}` } }],
    })),
    in_network: Array.from({ length: items }, (_, i) => ({
      negotiation_arrangement: 'ffs',
      name: `Service ${i} "quoted" \u00e9`,
      billing_code_type: 'CPT',
      billing_code_type_version: '2026',
      billing_code: String(10000 + i),
      description: `Description of service ${i}`,
      negotiated_rates: [
        {
          provider_references: [(i % 20) + 1],
          negotiated_prices: [
            {
              negotiated_type: 'negotiated',
              negotiated_rate: 100 + i / 4,
              expiration_date: '2027-12-31',
              billing_class: 'professional',
            },
          ],
        },
      ],
    })),
  };
}
