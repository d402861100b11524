import { readdirSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { ObjectNotFoundError, ReconciliationError } from '../../shared/errors.ts';
import { committedRun, runWorkflowLocally as runAnyWorkflow } from '../../shared/pipeline/local-runner.ts';
import { reconcile } from '../../shared/stages/reconcile/reconcile.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';

/** Runs of new sources: each one commits. */
const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

const EXAMPLES = TIC_EXAMPLES;

type Json = Record<string, unknown>;
const list = (value: unknown): Json[] => (Array.isArray(value) ? (value as Json[]) : []);

/** What the silver tables of an in-network file must hold, computed straight from the JSON. */
function expectedInNetworkCounts(doc: Json) {
  const items = list(doc.in_network);
  const rates = items.flatMap((item) => list(item.negotiated_rates));
  return {
    in_network_items: items.length,
    negotiated_prices: rates.flatMap((rate) => list(rate.negotiated_prices)).length,
    provider_groups:
      list(doc.provider_references).reduce(
        (n, ref) => n + Math.max(list(ref.provider_groups).length, ref.location ? 1 : 0),
        0,
      ) + rates.reduce((n, rate) => n + list(rate.provider_groups).length, 0),
    contained_codes: items.reduce(
      (n, item) => n + list(item.bundled_codes).length + list(item.covered_services).length,
      0,
    ),
  };
}

async function run(
  sourceDir: string,
  key: string,
  lakeDir: string,
  dataset = 'tic-in-network',
  quarantineRateThreshold?: number,
) {
  return runWorkflowLocally(
    // The CMS table of contents lists files on www.some_site.com: no fan-out here (tests/integration/fan-out.test.ts).
    { dataset: builtInDataset(dataset), sourceKey: key, fanOut: false },
    {
      source: fileStore(sourceDir),
      lake: fileStore(lakeDir),
      clock: fixedClock,
      workDir: join(lakeDir, '..', 'work'),
      deadLetters: new FolderDeadLetterStore(lakeDir),
      retryIntervalMs: 0,
      quarantineRateThreshold,
    },
  );
}

async function describeTable(file: string): Promise<Record<string, string>> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`);
  const types = Object.fromEntries(reader.getRowsJS().map((row) => [String(row[0]), String(row[1])]));
  connection.closeSync();
  instance.closeSync();
  return types;
}

describe('the local workflow (parse → bronze → silver → reconciliation)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-pipeline-');
  });
  afterAll(async () => tmp.cleanup());

  const inNetworkSamples = readdirSync(EXAMPLES).filter((f) => f.startsWith('in-network'));

  it.each(inNetworkSamples)(
    '%s: silver row counts equal what the file contains, and reconciliation passes',
    async (file) => {
      const lake = join(tmp.dir, `lake-${file}`);
      const result = await run(EXAMPLES, file, lake);
      const doc = JSON.parse(await readFile(join(EXAMPLES, file), 'utf8')) as Json;
      const tables = result.silver!.manifest.tables;
      for (const [table, rows] of Object.entries(expectedInNetworkCounts(doc))) {
        expect(tables[table]?.rowsWritten ?? 0, table).toBe(rows);
      }
      expect(tables.files?.rowsWritten).toBe(1);
      expect(result.reconciliation!.status).toBe('passed');
      expect(result.reconciliation!.quality.score).toBeGreaterThan(90);
    },
  );

  it.each([
    [
      'allowed-amounts-single-plan-sample.json',
      'tic-allowed-amounts',
      'out_of_network_items',
      'out_of_network',
    ],
    [
      'allowed-amounts-multiple-plan-sample.json',
      'tic-allowed-amounts',
      'out_of_network_items',
      'out_of_network',
    ],
    ['table-of-contents-sample.json', 'tic-table-of-contents', 'in_network_files', null],
  ])('%s runs end to end and reconciles', async (file, dataset, table, path) => {
    const lake = join(tmp.dir, `lake-${file}`);
    const result = await run(EXAMPLES, file, lake, dataset);
    const doc = JSON.parse(await readFile(join(EXAMPLES, file), 'utf8')) as Json;
    expect(result.reconciliation!.status).toBe('passed');
    const expected = path
      ? list(doc[path]).length
      : list(doc.reporting_structure).reduce((n, s) => n + list(s.in_network_files).length, 0);
    expect(result.silver!.manifest.tables[table]?.rowsWritten).toBe(expected);
  });

  describe('on a generated file', () => {
    let lake: string;
    let facts: Awaited<ReturnType<typeof generateFile>>['facts'];
    let result: Awaited<ReturnType<typeof run>>;
    beforeAll(async () => {
      const generated = await generateFile(tmp.dir, 'gen.json.gz', { seed: 21, targetBytes: 4_000_000 });
      facts = generated.facts;
      lake = join(tmp.dir, 'gen-lake');
      result = await run(tmp.dir, 'gen.json.gz', lake);
    });

    it('writes as many rows as the generator put in, and reconciles', () => {
      const tables = result.silver!.manifest.tables;
      expect(tables.in_network_items?.rowsWritten).toBe(facts.records.in_network);
      expect(tables.negotiated_prices?.rowsWritten).toBe(facts.negotiated_prices);
      expect(tables.provider_groups?.rowsWritten).toBe(facts.provider_groups);
      expect(result.reconciliation!.status).toBe('passed');
      expect(result.reconciliation!.checks.length).toBeGreaterThan(10);
    });

    it('writes Parquet with the documented column types, readable by DuckDB', async () => {
      const key = result.silver!.manifest.tables.negotiated_prices!.files[0]!.key;
      const types = await describeTable(join(lake, key));
      expect(types).toMatchObject({
        negotiated_rate: 'DOUBLE',
        expiration_date: 'DATE',
        service_code: 'VARCHAR[]',
        provider_group_ids: 'VARCHAR[]',
        _record_index: 'BIGINT',
      });
      const files = await describeTable(join(lake, result.silver!.manifest.tables.files!.files[0]!.key));
      expect(files.last_updated_on).toBe('DATE');
    });

    it('rebuilds byte-identical silver on a rerun, with no duplicates', async () => {
      const again = await run(tmp.dir, 'gen.json.gz', join(tmp.dir, 'gen-lake-2'));
      for (const [table, t] of Object.entries(result.silver!.manifest.tables)) {
        expect(again.silver!.manifest.tables[table]?.files, table).toEqual(t.files);
      }
      // The same file again in the same lake: its version is current, so nothing is read or rebuilt.
      const rerun = await runAnyWorkflow(
        { dataset: builtInDataset('tic-in-network'), sourceKey: 'gen.json.gz', fanOut: false },
        {
          source: fileStore(tmp.dir),
          lake: fileStore(lake),
          clock: fixedClock,
          deadLetters: new FolderDeadLetterStore(lake),
        },
      );
      expect(rerun.outcome).toBe('unchanged');
      expect(rerun.outcome === 'unchanged' && rerun.unchanged).toMatchObject({
        read: false,
        currentRunId: result.bronze.runId,
      });
      const parquet = (await listFiles(join(lake, 'silver'))).filter((f) => f.endsWith('.parquet'));
      expect(parquet.length).toBe(
        Object.values(result.silver!.manifest.tables).flatMap((t) => t.files).length,
      );
    });

    /** Reconciles with the first in_network part's lines rewritten by `edit`; the part is restored after. */
    async function reconcileWithEditedPart(edit: (lines: string[]) => void) {
      const part = result.bronze.manifest.parts.find((p) => p.recordName === 'in_network')!;
      const path = join(lake, part.key);
      const original = await readFile(path);
      const lines = gunzipSync(original).toString('utf8').split('\n');
      edit(lines);
      await writeFile(path, gzipSync(lines.join('\n')));
      try {
        const error = await reconcileAgain(lake, result.bronze.manifestKey).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ReconciliationError);
        return { part, message: (error as Error).message };
      } finally {
        await writeFile(path, original);
      }
    }

    it('fails reconciliation, saying which count is off, when a bronze record goes missing', async () => {
      const { part, message } = await reconcileWithEditedPart((lines) => lines.splice(1, 1));
      expect(message).toContain(
        `bronze part ${part.key} records: expected ${part.records}, found ${part.records - 1} (-1)`,
      );
      expect(message).toContain('sha256');
      expect(message).toContain(
        `bronze part ${part.key} uncompressed bytes: expected ${part.uncompressedBytes}`,
      );
      const report = join(lake, result.bronze.manifestKey.replace('_manifest.json', 'reconciliation.json'));
      expect(JSON.parse(await readFile(report, 'utf8')).status).toBe('failed');
    });

    it('fails reconciliation when a bronze record is changed in place, every line still there', async () => {
      const { part, message } = await reconcileWithEditedPart((lines) => {
        lines[0] = lines[0]!.replace('{', '{ '); // still the same JSON, one byte longer
      });
      expect(message).toContain(
        `bronze part ${part.key} uncompressed bytes: expected ${part.uncompressedBytes}, found ${part.uncompressedBytes + 1} (+1)`,
      );
      expect(message).toContain(`bronze part ${part.key} sha256`);
      expect(message).not.toContain(`bronze part ${part.key} records`);
    });

    it('fails reconciliation, naming the part, when a bronze part is gone (while silver is checked too)', async () => {
      const reconciliation = join(
        lake,
        result.bronze.manifestKey.replace('_manifest.json', 'reconciliation.json'),
      );
      const before = await readFile(reconciliation, 'utf8');
      const part = result.bronze.manifest.parts.at(-1)!;
      const path = join(lake, part.key);
      const original = await readFile(path);
      await rm(path);
      try {
        const error = await reconcileAgain(lake, result.bronze.manifestKey).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ObjectNotFoundError);
        expect((error as Error).message).toContain(part.key);
        // No new report: the one there is the last complete one.
        expect(await readFile(reconciliation, 'utf8')).toBe(before);
      } finally {
        await writeFile(path, original);
      }
    });

    it('fails reconciliation when a silver Parquet file is corrupted', async () => {
      const key = result.silver!.manifest.tables.in_network_items!.files[0]!.key;
      const path = join(lake, key);
      const original = await readFile(path);
      const corrupted = Buffer.from(original);
      corrupted[Math.floor(corrupted.length / 2)]! ^= 0xff;
      await writeFile(path, corrupted);
      try {
        const error = await reconcileAgain(lake, result.bronze.manifestKey).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ReconciliationError);
        expect((error as Error).message).toContain('in_network_items: parquet sha256');
      } finally {
        await writeFile(path, original);
      }
    });
  });

  it('quarantines a record that breaks a rule, with the rule id and path, and reconciles within the threshold', async () => {
    const doc = {
      reporting_entity_name: 'x',
      reporting_entity_type: 'health insurance issuer',
      last_updated_on: '2024-01-01',
      version: '2.0.0',
      provider_references: [
        {
          provider_group_id: 1,
          provider_groups: [{ npi: [1234567890], tin: { type: 'ein', value: '12-3456789' } }],
        },
      ],
      in_network: [
        {
          negotiation_arrangement: 'ffs',
          name: 'Knee',
          billing_code_type: 'CPT',
          billing_code_type_version: '2024',
          billing_code: '27447',
          description: 'Knee replacement',
          negotiated_rates: [
            {
              provider_references: [1],
              negotiated_prices: [
                {
                  negotiated_type: 'negotiated',
                  negotiated_rate: 100,
                  expiration_date: '9999-12-31',
                  billing_class: 'professional',
                  setting: 'outpatient',
                  service_code: ['11'],
                },
              ],
            },
          ],
        },
        {
          negotiation_arrangement: 'not-an-arrangement',
          name: 'Bad',
          billing_code_type: 'CPT',
          billing_code_type_version: '2024',
          billing_code: '1',
          description: 'd',
          negotiated_rates: [],
        },
      ],
    };
    await writeFile(join(tmp.dir, 'quarantine.json'), JSON.stringify(doc));
    const lake = join(tmp.dir, 'quarantine-lake');
    // 1 of 2 records quarantined: over the default threshold (5%), the run fails, dead-lettered.
    const failed = join(tmp.dir, 'quarantine-failed-lake');
    await expect(run(tmp.dir, 'quarantine.json', failed)).rejects.toThrow(
      expect.objectContaining({ name: 'QuarantineThresholdError' }),
    );
    expect((await new FolderDeadLetterStore(failed).list()).map((l) => l.error.Error)).toEqual([
      'QuarantineThresholdError',
    ]);
    // Within a threshold that allows half, it reconciles.
    const result = await run(tmp.dir, 'quarantine.json', lake, 'tic-in-network', 0.5);
    expect(result.silver!.manifest.records.in_network).toEqual({ bronze: 2, accepted: 1, quarantined: 1 });
    const rules = Object.entries(result.silver!.manifest.violations).filter(
      ([, v]) => v.severity === 'quarantine',
    );
    expect(rules.length).toBeGreaterThan(0);
    expect(rules[0]![1].path).toContain('negotiation_arrangement');
    expect(result.reconciliation!.status).toBe('passed');
    const inspector = await openParquetInspector();
    try {
      const quarantine = join(lake, result.silver!.manifest.tables._quarantine!.files[0]!.key);
      const keys = join(tmp.dir, 'quarantine-keys.parquet');
      await inspector.writeKeyBuckets(
        quarantine,
        { refs: [], quarantine: ['record_path', '_record_index'] },
        [keys],
        'p',
      );
      expect((await inspector.joinKeyBuckets([keys], 0, 0)).quarantined).toBe(1);
    } finally {
      await inspector.close();
    }
  });
});

async function reconcileAgain(lake: string, bronzeManifestKey: string) {
  return reconcile(
    { bronzeManifestKey },
    {
      lake: fileStore(lake),
      clock: fixedClock,
      contract: silverContractFor('tic-in-network')!,
      openInspector: openParquetInspector,
      workDir: join(lake, '..', 'work'),
    },
  );
}
