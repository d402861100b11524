import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLakeQuery, plainValue, type QueryResult } from '../../shared/adapters/duckdb/lake-query.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import {
  type DatasetConfig,
  type DatasetConfigInput,
  datasetConfigJsonSchema,
  parseDatasetConfig,
} from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { contractForDataset, silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { genericContract } from '../../shared/contracts/generic-contract.ts';
import { ConfigError, SchemaDriftError } from '../../shared/errors.ts';
import { listCurrentVersions } from '../../shared/lake/source-commits.ts';
import { silverStateManifestKey, silverStatePrefix } from '../../shared/lake/state-keys.ts';
import { runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import { systemClock } from '../../shared/ports/clock.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { commitVersion } from '../../shared/stages/commit/commit-version.ts';
import { buildSilver } from '../../shared/stages/silver/build-silver.ts';
import {
  MergeStateError,
  mergeCommittedVersions,
  mergeSilverState,
  RETIRED_GENERATIONS,
} from '../../shared/stages/silver/merge-state.ts';
import { fileStore, fixedClock, tempDir } from '../helpers/lake.ts';
import { seededRandom as random } from '../helpers/random.ts';

// ---------------------------------------------------------------------------------------------
// Two datasets defined by config alone: the same accounts, as CSV (flat, all text) and as NDJSON
// (nested, typed JSON). Every value the tests expect is computed from the events they generate.

type Load = 'append' | 'snapshot' | 'cdc' | 'scd2';
type Format = 'csv' | 'ndjson';

const LINEAGE = ['_run_id', '_bronze_part', '_record_index'];
const context = { runId: 'run', sourceUri: 'file:///x', sourceSha256: '0', headers: {} };

function csvConfig(load: Load, onDrift: 'rescue' | 'ignore' | 'fail' = 'rescue'): DatasetConfig {
  return parseDatasetConfig({
    name: 'accounts-csv',
    format: 'csv',
    silver: {
      table: 'accounts',
      columns: [
        { name: 'account_id', type: 'integer', source: 'Account Id' },
        { name: 'region', type: 'string', source: 'Region' },
        { name: 'seq', type: 'integer', source: 'Seq' },
        { name: 'op', type: 'string', source: 'Op' },
        { name: 'owner', type: 'string', source: 'Owner', required: true },
        { name: 'balance', type: 'number', source: 'Balance' },
        { name: 'opened_on', type: 'date', source: 'Opened On' },
        { name: 'active', type: 'boolean', source: 'Active' },
        { name: 'updated_at', type: 'timestamp', source: 'Updated At' },
        { name: 'tags', type: 'string[]', source: 'Tags' },
      ],
      primaryKey: ['account_id', 'region'],
      ...(load === 'append' ? {} : { orderingColumn: 'seq' }),
      load,
      onDrift,
    },
  });
}

function ndjsonConfig(load: Load, onDrift: 'rescue' | 'ignore' | 'fail' = 'rescue'): DatasetConfig {
  return parseDatasetConfig({
    name: 'accounts-ndjson',
    format: 'ndjson',
    silver: {
      table: 'accounts',
      columns: [
        { name: 'account_id', type: 'integer', source: 'account.id' },
        { name: 'region', type: 'string', source: 'account.region' },
        { name: 'seq', type: 'integer', source: 'change.seq' },
        { name: 'op', type: 'string', source: 'change.op' },
        { name: 'owner', type: 'string', required: true },
        { name: 'balance', type: 'number' },
        { name: 'opened_on', type: 'date' },
        { name: 'active', type: 'boolean' },
        { name: 'updated_at', type: 'timestamp' },
        { name: 'tags', type: 'string[]' },
      ],
      primaryKey: ['account_id', 'region'],
      ...(load === 'append' ? {} : { orderingColumn: 'seq' }),
      load,
      onDrift,
    },
  });
}

const configFor = (format: Format, load: Load) => (format === 'csv' ? csvConfig(load) : ndjsonConfig(load));

/** One change event (or snapshot row) of an account, with its values as typed silver holds them. */
interface Event {
  readonly accountId: number;
  readonly region: 'eu' | 'us';
  readonly seq: number;
  readonly op: 'insert' | 'update' | 'delete';
  /** How the source spells the operation: the contract accepts any case and I/U/D. */
  readonly opText: string;
  readonly owner: string | null;
  readonly balance: number | null;
  readonly openedOn: string | null;
  readonly active: boolean | null;
  readonly updatedAt: string | null;
  readonly tags: string[] | null;
}

function shuffle<T>(items: readonly T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** `items` cut into `parts` non-empty pieces at seeded places. */
function split<T>(items: readonly T[], parts: number, next: () => number): T[][] {
  const cuts = new Set<number>();
  while (cuts.size < parts - 1) cuts.add(1 + Math.floor(next() * (items.length - 1)));
  const ends = [...cuts].sort((a, b) => a - b);
  return [0, ...ends].map((start, i) => items.slice(start, ends[i] ?? items.length));
}

const OP_SPELLINGS = {
  insert: ['insert', 'I', 'INSERT'],
  update: ['update', 'U', 'Update'],
  delete: ['delete', 'D'],
};

function eventValues(
  next: () => number,
  accountId: number,
  region: 'eu' | 'us',
  seq: number,
  op: Event['op'],
) {
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!;
  const live = op !== 'delete';
  return {
    accountId,
    region,
    seq,
    op,
    opText: pick(OP_SPELLINGS[op]),
    owner: live ? pick(['ann', 'bob', 'cy', 'dee']) : null,
    balance: live ? pick([0, 12.5, 100, -3.25, null]) : null,
    openedOn: live ? pick(['2023-01-31', '2024-02-29', null]) : null,
    active: live ? pick([true, false, null]) : null,
    updatedAt: live
      ? `2024-05-${String(1 + (seq % 28)).padStart(2, '0')}T10:${String(seq % 60).padStart(2, '0')}:00Z`
      : null,
    tags: live ? pick([['gold'], ['gold', 'eu-west'], [], null]) : null,
  };
}

const KEYS: readonly (readonly [number, 'eu' | 'us'])[] = [
  [1, 'eu'],
  [1, 'us'],
  [2, 'eu'],
  [3, 'us'],
  [40000000000, 'eu'],
];

/**
 * A change log: per account, events with distinct sequence numbers (first an insert, then updates and
 * deletes, an insert after a delete), plus exact repeats of some events, as at-least-once delivery gives.
 */
function changeEvents(seed: number): Event[] {
  const next = random(seed);
  const events: Event[] = [];
  for (const [id, region] of KEYS) {
    let seq = 0;
    let deleted = true;
    for (let n = 0; n < 5; n++) {
      seq += 1 + Math.floor(next() * 4);
      const op: Event['op'] = deleted ? 'insert' : next() < 0.3 ? 'delete' : 'update';
      deleted = op === 'delete';
      events.push(eventValues(next, id, region, seq, op));
    }
  }
  for (let n = 0; n < 4; n++) events.push(events[Math.floor(next() * events.length)]!);
  return events;
}

/** Snapshots: each a full copy of the accounts as of its sequence number (10, 20, 30, 40). */
function snapshots(seed: number): Event[][] {
  const next = random(seed);
  return [10, 20, 30, 40].map((seq) =>
    KEYS.filter((_, i) => i === 0 || next() < 0.8).map(([id, region]) =>
      eventValues(next, id, region, seq, 'insert'),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Files

function csvCell(value: string | null): string {
  if (value === null) return '';
  return /[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

const CSV_HEADER = [
  'Account Id',
  'Region',
  'Seq',
  'Op',
  'Owner',
  'Balance',
  'Opened On',
  'Active',
  'Updated At',
  'Tags',
];

/** CSV as exporters write it: US dates now and then, yes/no booleans, padded numbers, lists as JSON. */
function csvRow(e: Event, spell: number): (string | null)[] {
  const usDate = (iso: string) => `${iso.slice(5, 7)}/${iso.slice(8, 10)}/${iso.slice(0, 4)}`;
  return [
    String(e.accountId),
    e.region,
    String(e.seq),
    e.opText,
    e.owner,
    e.balance === null ? null : ` ${e.balance} `,
    e.openedOn === null ? null : spell % 2 === 0 ? e.openedOn : usDate(e.openedOn),
    e.active === null ? null : e.active ? (spell % 2 ? 'yes' : 'TRUE') : spell % 2 ? 'no' : '0',
    e.updatedAt,
    e.tags === null ? null : JSON.stringify(e.tags),
  ];
}

function csvText(header: readonly string[], rows: readonly (readonly (string | null)[])[]): string {
  return [header, ...rows].map((cells) => `${cells.map(csvCell).join(',')}\n`).join('');
}

/** The events as CSV; `extraColumn` adds a column the config does not declare. */
function toCsv(events: readonly Event[], extraColumn?: (e: Event) => string): string {
  const header = extraColumn ? [...CSV_HEADER, 'Notes'] : CSV_HEADER;
  const rows = events.map((e) => [
    ...csvRow(e, e.seq + e.accountId),
    ...(extraColumn ? [extraColumn(e)] : []),
  ]);
  return csvText(header, rows);
}

/** NDJSON as an application logs it: nested keys, and a number written as a string now and then. */
function toNdjson(events: readonly Event[]): string {
  return events
    .map((e) =>
      JSON.stringify({
        account: { id: e.accountId, region: e.region },
        change: { seq: e.seq, op: e.opText },
        owner: e.owner,
        balance: e.balance === null ? null : e.seq % 3 === 0 ? String(e.balance) : e.balance,
        opened_on: e.openedOn,
        active: e.active,
        updated_at: e.updatedAt,
        tags: e.tags,
      }),
    )
    .map((line) => `${line}\n`)
    .join('');
}

const serialize = (format: Format, events: readonly Event[]) =>
  format === 'csv' ? toCsv(events) : toNdjson(events);

// ---------------------------------------------------------------------------------------------
// The pipeline: a file lands, becomes bronze, silver, and is merged into the state

interface Lake {
  readonly source: string;
  readonly lake: string;
  readonly work: string;
}

async function newLake(root: string, name: string): Promise<Lake> {
  const lake = {
    source: join(root, name, 'landing'),
    lake: join(root, name, 'lake'),
    work: join(root, name, 'work'),
  };
  await mkdir(lake.source, { recursive: true });
  return lake;
}

/** Writes a file into the landing area and runs it through the pipeline. */
async function land(at: Lake, config: DatasetConfig, file: string, content: string) {
  await writeFile(join(at.source, file), content);
  return run(at, config, file);
}

/** Makes a run's version current, as the workflow does once its reconciliation passed: readers see it. */
async function commit(at: Lake, config: DatasetConfig, ran: { bronze: { manifestKey: string } }) {
  await commitVersion(
    { bronzeManifestKey: ran.bronze.manifestKey, quality: 100 },
    { lake: fileStore(at.lake), clock: fixedClock, contract: contractForDataset(config)! },
  );
}

/** Runs a landed file through bronze, silver and merge (again, when it ran before: same source id). */
async function run(at: Lake, config: DatasetConfig, file: string) {
  const { bronze, silver } = await build(at, config, file);
  const merged = await merge(at, config, silver.manifestKey);
  return { bronze, silver, merged };
}

/** A landed file through bronze and silver, not merged. */
async function build(at: Lake, config: DatasetConfig, file: string) {
  const lake = fileStore(at.lake);
  const bronze = await ingestToBronze(
    { dataset: config, sourceKey: file },
    { source: fileStore(at.source), lake, clock: fixedClock },
  );
  const silver = await buildSilver(
    { bronzeManifestKey: bronze.manifestKey },
    {
      lake,
      clock: fixedClock,
      contract: contractForDataset(config)!,
      createTableWriter: createPartialParquetTableWriter,
      workDir: at.work,
    },
  );
  return { bronze, silver };
}

const merge = (
  at: Lake,
  config: DatasetConfig,
  silverManifestKey: string,
  lake: ObjectStore = fileStore(at.lake),
) => mergeSilverState({ dataset: config, silverManifestKey }, { lake, clock: fixedClock, workDir: at.work });

/** SQL over one Parquet file (or glob) of the lake, values as plain JSON data. */
async function sql(file: string, query: (from: string) => string): Promise<unknown[][]> {
  const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(query(`read_parquet('${file.replaceAll("'", "''")}')`));
    return reader.getRowsJS().map((row) => row.map((v) => (typeof v === 'bigint' ? Number(v) : v)));
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

async function describeParquet(file: string): Promise<Record<string, string>> {
  const rows = await sql(file, (from) => `DESCRIBE SELECT * FROM ${from}`);
  return Object.fromEntries(rows.map((row) => [String(row[0]), String(row[1])]));
}

/** The current state through `sluice query`'s view, without lineage (which says which file an event came in). */
/**
 * The merged state's rows (these tests merge sources they do not commit: `sluice query` shows the state of
 * committed sources only, see the views test below).
 */
async function currentState(at: Lake, config: DatasetConfig): Promise<QueryResult> {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const file = await currentStateFile(at, config);
    const reader = await connection.runAndReadAll(
      `SELECT * EXCLUDE (${LINEAGE.join(', ')}) FROM read_parquet('${file}') ORDER BY ALL`,
    );
    return { columns: reader.columnNames(), rows: reader.getRows().map((row) => row.map(plainValue)) };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** The lake of a merge that dies at the write of `key` (its commit), as a kill would stop it there. */
function dyingAt(lakeDir: string, key: string): ObjectStore {
  return new (class extends FileObjectStore {
    override write(...args: Parameters<FileObjectStore['write']>) {
      if (args[0] === key) return Promise.reject(new Error('killed before the commit'));
      return super.write(...args);
    }
  })(lakeDir);
}

/** The merged state's file, as its state manifest names it. */
async function currentStateFile(at: Lake, config: DatasetConfig): Promise<string> {
  const manifest = JSON.parse(
    await readFile(join(at.lake, silverStateManifestKey(config.name, 'accounts')), 'utf8'),
  );
  return join(at.lake, manifest.current.key);
}

const stateFiles = async (at: Lake, config: DatasetConfig) => ({
  current: await readFile(await currentStateFile(at, config)),
  manifest: await readFile(join(at.lake, silverStateManifestKey(config.name, 'accounts')), 'utf8'),
});

// What the state must be, computed straight from the events.

const keyOf = (e: Event) => `${e.accountId}/${e.region}`;

function byKey(events: readonly Event[]): Map<string, Event[]> {
  const groups = new Map<string, Event[]>();
  for (const e of events) groups.set(keyOf(e), [...(groups.get(keyOf(e)) ?? []), e]);
  for (const group of groups.values()) group.sort((a, b) => a.seq - b.seq);
  return groups;
}

const sortRows = (rows: unknown[][]) =>
  rows.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

function expectedCdc(events: readonly Event[]): unknown[][] {
  const rows: unknown[][] = [];
  for (const group of byKey(events).values()) {
    const latest = group.at(-1)!;
    if (latest.op !== 'delete')
      rows.push([latest.accountId, latest.region, latest.seq, latest.owner, latest.balance]);
  }
  return sortRows(rows);
}

function expectedScd2(events: readonly Event[]): unknown[][] {
  const rows: unknown[][] = [];
  for (const group of byKey(events).values()) {
    const distinct = group.filter((e, i) => i === 0 || e.seq !== group[i - 1]!.seq);
    distinct.forEach((e, i) => {
      if (e.op === 'delete') return;
      const nextSeq = distinct[i + 1]?.seq ?? null;
      rows.push([e.accountId, e.region, e.owner, e.seq, nextSeq, nextSeq === null]);
    });
  }
  return sortRows(rows);
}

// ---------------------------------------------------------------------------------------------

describe('Generic datasets defined by config alone', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-generic-');
  });
  afterAll(async () => tmp.cleanup());

  describe('Function: parseDatasetConfig (the silver section)', () => {
    const base = (silver: Record<string, unknown>, rest: Partial<DatasetConfigInput> = {}): unknown => ({
      name: 'orders',
      format: 'ndjson',
      ...rest,
      silver: {
        table: 'orders',
        columns: [
          { name: 'id', type: 'integer' },
          { name: 'seq', type: 'integer' },
          { name: 'op', type: 'string' },
          { name: 'tags', type: 'string[]' },
        ],
        primaryKey: ['id'],
        ...silver,
      },
    });

    it.each([
      [
        'a primary key naming no column',
        { primaryKey: ['order_id'] },
        'silver.primaryKey.0: "order_id" is not a declared column; the columns are: id, seq, op, tags',
      ],
      ['a list as primary key', { primaryKey: ['tags'] }, 'silver.primaryKey.0: "tags" is a list'],
      [
        'an ordering column naming no column',
        { load: 'cdc', orderingColumn: 'version' },
        'silver.orderingColumn: "version" is not a declared column',
      ],
      [
        'cdc without an ordering column',
        { load: 'cdc' },
        'silver.orderingColumn: a cdc load needs "orderingColumn"',
      ],
      [
        'scd2 without an ordering column',
        { load: 'scd2' },
        'silver.orderingColumn: a scd2 load needs "orderingColumn"',
      ],
      [
        'cdc without a primary key',
        { load: 'cdc', orderingColumn: 'seq', primaryKey: [] },
        'silver.primaryKey: a cdc load needs "primaryKey"',
      ],
      [
        'an ordering column inside the key',
        { load: 'cdc', orderingColumn: 'id' },
        'silver.orderingColumn: "id" is part of primaryKey',
      ],
      [
        'an ordering column of a list type',
        { load: 'snapshot', orderingColumn: 'tags' },
        'silver.orderingColumn: "tags" is string[]',
      ],
      [
        'an ordering column for an append load',
        { orderingColumn: 'seq' },
        'silver.orderingColumn: applies to snapshot, cdc and scd2 loads',
      ],
      [
        'an undeclared operation column',
        { load: 'cdc', orderingColumn: 'seq', operationColumn: 'kind' },
        'silver.operationColumn: operation column "kind" is not a declared column',
      ],
      [
        'an operation column for a snapshot',
        { load: 'snapshot', operationColumn: 'op' },
        'silver.operationColumn: applies to cdc and scd2 loads only',
      ],
      [
        'an unknown load',
        { load: 'merge' },
        'silver.load: Invalid option: expected one of "append"|"snapshot"|"cdc"|"scd2"',
      ],
      ['an unknown key', { primary_key: ['id'] }, 'silver: Unrecognized key: "primary_key"'],
    ])('explains %s, naming the field', (_what, silver, message) => {
      expect(() => parseDatasetConfig(base(silver), 'orders.json')).toThrow(ConfigError);
      expect(() => parseDatasetConfig(base(silver), 'orders.json')).toThrow(message);
    });

    it('explains bad columns: names, types, duplicates, reserved names, dot paths', () => {
      const config = {
        name: 'orders',
        format: 'ndjson',
        silver: {
          table: 'orders',
          columns: [
            { name: 'Order Id', type: 'integer' },
            { name: 'id', type: 'int' },
            { name: 'id', type: 'integer', source: 'order..id' },
            { name: 'valid_from', type: 'date' },
            { name: 'source', type: 'string' },
          ],
          primaryKey: ['id'],
          load: 'scd2',
          orderingColumn: 'valid_from',
          operationColumn: null,
        },
      };
      const error = (() => {
        try {
          parseDatasetConfig(config, 'orders.json');
        } catch (e) {
          return e as Error;
        }
      })();
      expect(error?.message.split('\n')).toEqual([
        'orders.json is invalid:',
        '  - silver.columns.0.name: use 1–63 lowercase letters, digits or "_", starting with a letter (it becomes a Parquet and SQL name); map a field named otherwise with "source"',
        '  - silver.columns.1.type: Invalid option: expected one of "string"|"integer"|"number"|"boolean"|"date"|"timestamp"|"string[]"|"integer[]"|"number[]"',
      ]);
      // Once the names and types parse, the checks across columns run.
      config.silver.columns[0]!.name = 'order_id';
      config.silver.columns[1]!.type = 'integer';
      expect(() => parseDatasetConfig(config, 'orders.json')).toThrow(
        [
          'orders.json is invalid:',
          '  - silver.columns.2.name: column "id" is declared twice',
          '  - silver.columns.3.name: "valid_from" is reserved (added by the scd2 load); name the column otherwise and map the field with "source"',
          '  - silver.columns.4.name: "source" is reserved (the partition column readers derive from source=<run id> folders); name the column otherwise and map the field with "source"',
          '  - silver.columns.2.source: "order..id" is not a dot path: use keys separated by single dots, e.g. "customer.id"',
        ].join('\n'),
      );
    });

    it('refuses a silver table over several json record paths', () => {
      const config = base({}, { format: 'json', records: [{ path: 'a[*]' }, { path: 'b[*]' }] });
      expect(() => parseDatasetConfig(config)).toThrow(
        'silver: a silver table is filled from one record path',
      );
    });

    it('fills the defaults and documents the section in the JSON Schema', () => {
      const config = parseDatasetConfig(base({}));
      expect(config.silver).toMatchObject({ load: 'append', onDrift: 'rescue' });
      expect(config.silver?.columns[0]).toEqual({ name: 'id', type: 'integer', required: false });
      const schema = JSON.stringify(datasetConfigJsonSchema());
      expect(schema).toContain('orderingColumn');
      expect(schema).toContain('the highest wins, whatever order the files arrive in');
    });
  });

  describe('Function: contractForDataset', () => {
    it('gives the shipped contract by name, the generic one for a silver section, else none', () => {
      expect(contractForDataset(builtInDataset('tic-in-network'))).toBe(silverContractFor('tic-in-network'));
      const contract = contractForDataset(csvConfig('cdc'))!;
      expect(contract.tables.map((t) => t.name)).toEqual(['accounts']);
      expect(contract.fileRows({ runId: 'r', sourceUri: 'u', sourceSha256: 's', headers: {} })).toEqual({});
      expect(contractForDataset(parseDatasetConfig({ name: 'raw', format: 'ndjson' }))).toBeUndefined();
    });
  });

  describe('Function: genericContract', () => {
    const record = {
      account: { id: 7, region: 'eu' },
      change: { seq: 1, op: 'I' },
      owner: ' ann ',
      extra: 1,
    };

    it('converts values, and keeps unknown fields in _rescued, drops them, or fails as onDrift says', () => {
      const rescue = genericContract(ndjsonConfig('cdc')).normalize('records', 0, record, context);
      expect(rescue.rows.accounts).toEqual([
        {
          account_id: 7,
          region: 'eu',
          seq: 1,
          op: 'insert',
          owner: 'ann',
          balance: null,
          opened_on: null,
          active: null,
          updated_at: null,
          tags: null,
          _rescued: '{"extra":1}',
        },
      ]);
      expect(rescue.drift).toEqual([{ kind: 'unknown_field', path: 'extra', example: '1' }]);
      const ignore = genericContract(ndjsonConfig('cdc', 'ignore'));
      expect(ignore.tables[0]!.columns.map((c) => c.name)).not.toContain('_rescued');
      expect(ignore.normalize('records', 0, record, context).rows.accounts?.[0]).not.toHaveProperty(
        '_rescued',
      );
      expect(genericContract(ndjsonConfig('cdc', 'fail')).onDrift).toBe('fail');
    });

    it('lets a delete event leave its other columns empty, but not its key', () => {
      const contract = genericContract(ndjsonConfig('cdc'));
      const deleted = contract.normalize(
        'records',
        0,
        { account: { id: 7, region: 'eu' }, change: { seq: 2, op: 'd' } },
        context,
      );
      expect(deleted.violations).toEqual([]);
      expect(deleted.rows.accounts?.[0]).toMatchObject({ op: 'delete', owner: null });
      const keyless = contract.normalize(
        'records',
        0,
        { account: { id: 7 }, change: { seq: 2, op: 'delete' } },
        context,
      );
      expect(keyless.violations.map((v) => v.ruleId)).toEqual(['accounts.region.required']);
    });
  });

  describe.each(['csv', 'ndjson'] as const)('a %s dataset through bronze, silver and merge', (format) => {
    it('types every column in Parquet as declared, in the partitions and in the state', async () => {
      const at = await newLake(tmp.dir, `${format}-types`);
      for (const load of ['cdc', 'scd2'] as const) {
        const config = configFor(format, load);
        const { silver } = await land(at, config, `${load}.${format}`, serialize(format, changeEvents(1)));
        const declared = {
          account_id: 'BIGINT',
          region: 'VARCHAR',
          seq: 'BIGINT',
          owner: 'VARCHAR',
          balance: 'DOUBLE',
          opened_on: 'DATE',
          active: 'BOOLEAN',
          updated_at: 'TIMESTAMP',
          tags: 'VARCHAR[]',
          _rescued: 'VARCHAR',
          _run_id: 'VARCHAR',
          _record_index: 'BIGINT',
        };
        const partition = await describeParquet(
          join(at.lake, silver.manifest.tables.accounts!.files[0]!.key),
        );
        expect(partition).toMatchObject({ ...declared, op: 'VARCHAR' });
        const state = await describeParquet(await currentStateFile(at, config));
        expect(state).toMatchObject(declared);
        // The operation is not kept in the state; scd2 adds its interval, typed as the ordering column.
        expect(state).not.toHaveProperty('op');
        if (load === 'scd2')
          expect(state).toMatchObject({ valid_from: 'BIGINT', valid_to: 'BIGINT', is_current: 'BOOLEAN' });
        // A state built with other settings cannot take more sources: start the next load afresh.
        await rm(join(at.lake, 'silver'), { recursive: true, force: true });
      }
    });

    it('quarantines missing required values and values that cannot be converted, with rule ids; keeps drift in _rescued', async () => {
      const at = await newLake(tmp.dir, `${format}-rules`);
      const config = configFor(format, 'cdc');
      const good = eventValues(random(5), 1, 'eu', 1, 'insert');
      const events: Event[] = [
        { ...good, owner: 'ann' },
        { ...good, seq: 2, owner: null }, // required owner missing
        { ...good, seq: 3, owner: 'bob' }, // balance not a number (below)
        { ...good, seq: 4, owner: 'cy' }, // operation unknown (below)
        { ...good, seq: 5, owner: 'dee', opText: 'U' },
      ];
      let content: string;
      if (format === 'csv') {
        const rows = events.map((e, i) => [...csvRow(e, i), i === 0 ? 'vip' : '']);
        rows[2]![5] = '12,50';
        rows[3]![3] = 'upsert';
        content = csvText([...CSV_HEADER, 'Notes'], rows);
      } else {
        type Line = { account: Record<string, unknown>; change: Record<string, unknown> } & Record<
          string,
          unknown
        >;
        const lines = toNdjson(events)
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l) as Line);
        lines[0]!.extra = { note: 'vip' };
        lines[0]!.account.branch = 'north';
        lines[2]!.balance = '12,50';
        lines[3]!.change.op = 'upsert';
        content = `${lines.map((l) => JSON.stringify(l)).join('\n')}\n42\n`;
      }
      const { silver, merged } = await land(at, config, `rules.${format}`, content);
      const manifest = silver.manifest;
      expect(manifest.records.records).toEqual(
        format === 'csv'
          ? { bronze: 5, accepted: 2, quarantined: 3 }
          : { bronze: 6, accepted: 2, quarantined: 4 },
      );
      expect(
        Object.keys(manifest.violations)
          .filter((id) => manifest.violations[id]!.severity === 'quarantine')
          .sort(),
      ).toEqual(
        [
          'accounts.balance.type',
          'accounts.op.enum',
          'accounts.owner.required',
          ...(format === 'ndjson' ? ['accounts.type'] : []),
        ].sort(),
      );
      const quarantine = await sql(
        join(at.lake, manifest.tables._quarantine!.files[0]!.key),
        (from) => `SELECT _record_index, rule_id, field_path FROM ${from} ORDER BY ALL`,
      );
      expect(quarantine).toEqual([
        [1, 'accounts.owner.required', format === 'csv' ? 'Owner' : 'owner'],
        [2, 'accounts.balance.type', format === 'csv' ? 'Balance' : 'balance'],
        [3, 'accounts.op.enum', format === 'csv' ? 'Op' : 'change.op'],
        ...(format === 'ndjson' ? [[5, 'accounts.type', '$']] : []),
      ]);
      const drift =
        format === 'csv'
          ? { 'unknown_field:Notes': 5 }
          : { 'unknown_field:extra': 1, 'unknown_field:account.branch': 1 };
      expect(Object.fromEntries(Object.entries(manifest.drift).map(([id, d]) => [id, d.count]))).toEqual(
        drift,
      );
      const rows = await sql(
        join(at.lake, manifest.tables.accounts!.files[0]!.key),
        (from) => `SELECT seq, op, _rescued FROM ${from} ORDER BY seq`,
      );
      expect(rows).toEqual([
        [
          1,
          'insert',
          format === 'csv' ? '{"Notes":"vip"}' : '{"account.branch":"north","extra":{"note":"vip"}}',
        ],
        [5, 'update', format === 'csv' ? '{"Notes":""}' : null],
      ]);
      expect(merged).toMatchObject({ applied: true, outcome: 'merged', rowsBefore: 0, rowsAfter: 1 });
      // JSON numbers written as strings are converted, with a warning; CSV text is no such oddity.
      const warned = Object.keys(manifest.violations).filter(
        (id) => manifest.violations[id]!.severity === 'warn',
      );
      expect(warned.every((id) => id.endsWith('.coerced'))).toBe(true);
    });

    it('fails the build on an unknown field when onDrift is fail', async () => {
      const at = await newLake(tmp.dir, `${format}-drift-fail`);
      const config = format === 'csv' ? csvConfig('append', 'fail') : ndjsonConfig('append', 'fail');
      const content =
        format === 'csv'
          ? toCsv(changeEvents(3).slice(0, 2), () => 'x')
          : toNdjson(changeEvents(3).slice(0, 2)).replace('}\n', ',"surprise":1}\n');
      await expect(land(at, config, `fail.${format}`, content)).rejects.toThrow(SchemaDriftError);
    });

    it.each(['cdc', 'scd2'] as const)(
      '%s: the same events in any order and any split into files give the same state',
      async (load) => {
        const config = configFor(format, load);
        const events = changeEvents(42);
        const states: QueryResult[] = [];
        for (const seed of [1, 2, 3]) {
          const at = await newLake(tmp.dir, `${format}-${load}-${seed}`);
          const next = random(seed);
          const files = split(shuffle(events, next), 3 + (seed % 2), next);
          const results = [];
          for (const [i, batch] of files.entries()) {
            results.push(await land(at, config, `changes-${i}.${format}`, serialize(format, batch)));
          }
          expect(results.map((r) => r.merged.outcome)).toEqual(files.map(() => 'merged'));
          expect(results.map((r) => r.merged.rowsBefore).slice(1)).toEqual(
            results.map((r) => r.merged.rowsAfter).slice(0, -1),
          );
          const state = await currentState(at, config);
          states.push(state);

          // Re-merging a source already applied, or landing the same file again, changes nothing.
          const before = await stateFiles(at, config);
          const again = await merge(at, config, results[0]!.silver.manifestKey);
          expect(again).toMatchObject({ applied: false, outcome: 'already-applied' });
          expect(again.rowsAfter).toBe(results.at(-1)!.merged.rowsAfter);
          const relanded = await run(at, config, `changes-1.${format}`);
          expect(relanded.merged.outcome).toBe('already-applied');
          expect(await stateFiles(at, config)).toEqual(before);
          expect(JSON.parse(before.manifest).applied.map((a: { runId: string }) => a.runId)).toEqual(
            results.map((r) => r.silver.manifest.runId),
          );
        }
        expect(states[1]).toEqual(states[0]);
        expect(states[2]).toEqual(states[0]);

        // The events have what makes order matter: deletes, and exact repeats.
        expect(events.filter((e) => e.op === 'delete').length).toBeGreaterThan(1);
        expect(new Set(events).size).toBeLessThan(events.length);
        const columns = states[0]!.columns;
        const pick = (names: string[]) =>
          states[0]!.rows.map((row) => names.map((n) => row[columns.indexOf(n)]));
        if (load === 'cdc') {
          expect(sortRows(pick(['account_id', 'region', 'seq', 'owner', 'balance']))).toEqual(
            expectedCdc(events),
          );
        } else {
          expect(
            sortRows(pick(['account_id', 'region', 'owner', 'valid_from', 'valid_to', 'is_current'])),
          ).toEqual(expectedScd2(events));
        }
      },
    );

    it('snapshot: the latest snapshot is the state, whatever order the files arrive in', async () => {
      const config = configFor(format, 'snapshot');
      const all = snapshots(7);
      const states: QueryResult[] = [];
      const stale: number[] = [];
      for (const seed of [1, 2, 3]) {
        const at = await newLake(tmp.dir, `${format}-snapshot-${seed}`);
        const next = random(seed);
        const arrival = shuffle([0, 1, 2, 3], next);
        const outcomes = [];
        for (const i of arrival) {
          const content = serialize(format, shuffle(all[i]!, next));
          outcomes.push((await land(at, config, `snapshot-${i}.${format}`, content)).merged.outcome);
        }
        // A snapshot older than one applied before is recorded, and ignored.
        const newest = (n: number) => Math.max(...arrival.slice(0, n));
        expect(outcomes).toEqual(arrival.map((i, n) => (n > 0 && i < newest(n) ? 'stale' : 'merged')));
        states.push(await currentState(at, config));
        stale.push(outcomes.filter((o) => o === 'stale').length);
      }
      expect(Math.max(...stale)).toBeGreaterThan(0);
      expect(states[1]).toEqual(states[0]);
      expect(states[2]).toEqual(states[0]);
      const latest = all[3]!;
      expect(sortRows(states[0]!.rows.map((row) => [row[0], row[1], row[2], row[4]]))).toEqual(
        sortRows(latest.map((e) => [e.accountId, e.region, 40, e.owner])),
      );
    });
  });

  it.each(['cdc', 'scd2'] as const)(
    '%s: the CSV and the NDJSON of the same events give the same state',
    async (load) => {
      const events = changeEvents(77);
      const states: QueryResult[] = [];
      for (const format of ['csv', 'ndjson'] as const) {
        const at = await newLake(tmp.dir, `same-${load}-${format}`);
        const config = configFor(format, load);
        for (const [i, batch] of split(events, 2, random(3)).entries()) {
          await land(at, config, `part-${i}.${format}`, serialize(format, batch));
        }
        states.push(await currentState(at, config));
      }
      // Text in CSV ("yes", " 12.5 ", "02/29/2024", "[...]") typed like the JSON values.
      expect(states[1]).toEqual(states[0]);
      expect(states[0]!.rows.length).toBeGreaterThan(0);
    },
  );

  it('append: merging has nothing to do, the partitions are the table', async () => {
    const at = await newLake(tmp.dir, 'append');
    const config = ndjsonConfig('append');
    const events = changeEvents(5).filter((e) => e.op !== 'delete');
    const files = split(events, 2, random(2));
    for (const [i, batch] of files.entries()) {
      const ran = await land(at, config, `part-${i}.ndjson`, toNdjson(batch));
      await commit(at, config, ran);
      const { merged } = ran;
      expect(merged).toEqual({
        table: 'accounts',
        load: 'append',
        rowsBefore: 0,
        rowsAfter: 0,
        applied: false,
        outcome: 'append',
      });
    }
    const query = await openLakeQuery(at.lake);
    try {
      // The quarantine table has no rows: its views are of no rows, and there all the same.
      expect(query.views()).toEqual([
        '_quarantine',
        '_quarantine_history',
        'accounts',
        'accounts_history',
        'accounts_ndjson___quarantine',
        'accounts_ndjson___quarantine_history',
        'accounts_ndjson__accounts',
        'accounts_ndjson__accounts_history',
      ]);
      // Rows with the same key are kept once per source, not across sources.
      const perFile = files.map((batch) => new Set(batch.map(keyOf)).size);
      const rows = await query.query('SELECT count(*) FROM accounts');
      expect(rows.rows[0]![0]).toBe(perFile[0]! + perFile[1]!);
    } finally {
      await query.close();
    }
  });

  it('refuses to merge into a state built with other load settings, saying how to rebuild it', async () => {
    const at = await newLake(tmp.dir, 'settings');
    const { silver } = await land(at, csvConfig('cdc'), 'part-0.csv', toCsv(changeEvents(4)));
    const error = await merge(at, csvConfig('scd2'), silver.manifestKey).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MergeStateError);
    expect((error as Error).message).toBe(
      'the state of accounts-csv/accounts was built with other settings (load was "cdc", the config says "scd2"). ' +
        'To rebuild it, delete silver/accounts-csv/_state/accounts.json and silver/accounts-csv/_state/accounts/, ' +
        'then merge every source again.',
    );
  });

  it('shows the partitions and the merged state as separate views in sluice query', async () => {
    const at = await newLake(tmp.dir, 'views');
    const config = csvConfig('cdc');
    const events = changeEvents(9);
    for (const [i, batch] of split(events, 2, random(1)).entries()) {
      await commit(at, config, await land(at, config, `part-${i}.csv`, toCsv(batch)));
    }
    const query = await openLakeQuery(at.lake);
    try {
      expect(query.views()).toEqual([
        '_quarantine',
        '_quarantine_history',
        'accounts',
        'accounts_csv___quarantine',
        'accounts_csv___quarantine_history',
        'accounts_csv__accounts',
        'accounts_csv__accounts_current',
        'accounts_csv__accounts_history',
        'accounts_history',
      ]);
      const count = async (view: string) => (await query.query(`SELECT count(*) FROM ${view}`)).rows[0]![0];
      expect(await count('accounts_csv__accounts')).toBe(events.length);
      expect(await count('accounts_csv__accounts_current')).toBe(expectedCdc(events).length);
    } finally {
      await query.close();
    }
  });

  it(`keeps a state's files for a reader of its manifest through ${RETIRED_GENERATIONS} more merges, and deletes them at the next`, async () => {
    const at = await newLake(tmp.dir, 'retired');
    const config = csvConfig('cdc');
    const batches = split(changeEvents(11), RETIRED_GENERATIONS + 2, random(3));
    await commit(at, config, await land(at, config, 'part-0.csv', toCsv(batches[0]!)));
    // A reader opens the lake (its views name this state's file), then merges commit while it reads.
    const query = await openLakeQuery(at.lake);
    try {
      const rows = async () =>
        (await query.query('SELECT count(*) FROM accounts_csv__accounts_current')).rows;
      const first = await rows();
      const firstFile = await currentStateFile(at, config);
      for (const [i, batch] of batches.slice(1, RETIRED_GENERATIONS + 1).entries()) {
        await commit(at, config, await land(at, config, `part-${i + 1}.csv`, toCsv(batch)));
        expect(await currentStateFile(at, config)).not.toBe(firstFile);
        expect(await rows()).toEqual(first);
      }
      await commit(at, config, await land(at, config, 'part-last.csv', toCsv(batches.at(-1)!)));
      await expect(rows()).rejects.toThrow(/No files found|does not exist|not found/i);
      const manifest = JSON.parse(
        await readFile(join(at.lake, silverStateManifestKey(config.name, 'accounts')), 'utf8'),
      );
      expect(manifest.retired).toHaveLength(RETIRED_GENERATIONS);
      expect(manifest.retired.flat()).not.toContain(firstFile.slice(at.lake.length + 1));
    } finally {
      await query.close();
    }
  });

  describe.each(['cdc', 'scd2', 'snapshot'] as const)(
    '%s: the merged state under crashes and races',
    (load) => {
      const events = changeEvents(7);
      const files = split(events, 3, random(7)).map((batch, i) => ({ name: `part-${i}.ndjson`, batch }));

      /** A lake with `files` landed and merged one by one, uninterrupted: the state every drill must end with. */
      async function reference(name: string) {
        const at = await newLake(tmp.dir, `${load}-${name}-reference`);
        for (const file of files) await land(at, ndjsonConfig(load), file.name, toNdjson(file.batch));
        return currentState(at, ndjsonConfig(load));
      }

      it('a merge killed before its commit leaves the state as it was, and its retry ends as if never killed', async () => {
        const config = ndjsonConfig(load);
        const at = await newLake(tmp.dir, `${load}-killed`);
        for (const file of files.slice(0, 2)) await land(at, config, file.name, toNdjson(file.batch));
        const before = await currentState(at, config);
        const last = files[2]!;
        await writeFile(join(at.source, last.name), toNdjson(last.batch));
        const { silver } = await build(at, config, last.name);

        // The merge dies after writing its state files, at the state manifest's write.
        const manifestKey = silverStateManifestKey(config.name, 'accounts');
        const dying = dyingAt(at.lake, manifestKey);
        await expect(merge(at, config, silver.manifestKey, dying)).rejects.toThrow(
          'killed before the commit',
        );
        expect(await currentState(at, config)).toEqual(before);

        const retried = await merge(at, config, silver.manifestKey);
        expect(retried.outcome).toBe('merged');
        expect(await currentState(at, config)).toEqual(await reference('killed'));
        // Only the files the manifest names or retires (for readers of the manifests before) are left in
        // the state's folder: not what the killed merge wrote.
        const manifest = JSON.parse(await readFile(join(at.lake, manifestKey), 'utf8'));
        const named = [manifest.current.key, manifest.deletes?.key, ...manifest.retired.flat()]
          .filter(Boolean)
          .sort();
        const kept = (await readdir(join(at.lake, silverStatePrefix(config.name, 'accounts')))).map(
          (f) => `${silverStatePrefix(config.name, 'accounts')}${f}`,
        );
        expect(kept.sort()).toEqual(named);
      });

      it('a source replaced by a new version folds the state again in one commit: killed midway, the old state stays whole', async () => {
        const config = ndjsonConfig(load);
        const at = await newLake(tmp.dir, `${load}-refold`);
        const [first, second, third] = files;
        await commit(at, config, await land(at, config, 'a.ndjson', toNdjson(first!.batch)));
        await commit(at, config, await land(at, config, 'b.ndjson', toNdjson(second!.batch)));
        const lake = fileStore(at.lake);
        await mergeCommittedVersions({ dataset: config }, { lake, clock: fixedClock, workDir: at.work });
        const before = await currentState(at, config);
        // The publisher replaces a.ndjson: its events leave the state, the new ones come in.
        await writeFile(join(at.source, 'a.ndjson'), toNdjson(third!.batch));
        await commit(at, config, await build(at, config, 'a.ndjson'));
        const manifestKey = silverStateManifestKey(config.name, 'accounts');
        const dying = dyingAt(at.lake, manifestKey);
        await expect(
          mergeCommittedVersions({ dataset: config }, { lake: dying, clock: fixedClock, workDir: at.work }),
        ).rejects.toThrow('killed before the commit');
        expect(await currentState(at, config)).toEqual(before);

        const refolded = await mergeCommittedVersions(
          { dataset: config },
          { lake, clock: fixedClock, workDir: at.work },
        );
        expect(refolded?.applied).toBe(true);
        // The same state as a lake that only ever saw b.ndjson and the new a.ndjson, in that order.
        const fresh = await newLake(tmp.dir, `${load}-refold-reference`);
        await commit(fresh, config, await land(fresh, config, 'b.ndjson', toNdjson(second!.batch)));
        await commit(fresh, config, await land(fresh, config, 'a.ndjson', toNdjson(third!.batch)));
        expect(await currentState(at, config)).toEqual(await currentState(fresh, config));
      });

      it('a run killed between its commit and its fold: its rerun finds the source unchanged and folds it', async () => {
        const config = ndjsonConfig(load);
        const at = await newLake(tmp.dir, `${load}-unfolded`);
        const workflow = (file: string, lake: ObjectStore) =>
          runWorkflowLocally(
            { dataset: config, sourceKey: file },
            {
              source: fileStore(at.source),
              lake,
              clock: systemClock,
              workDir: at.work,
              deadLetters: new FolderDeadLetterStore(at.lake),
              retryIntervalMs: 0,
              // A snapshot of these events quarantines a quarter of them (rows of an older snapshot).
              quarantineRateThreshold: 1,
            },
          );
        const lake = fileStore(at.lake);
        for (const file of files) await writeFile(join(at.source, file.name), toNdjson(file.batch));
        for (const file of files.slice(0, 2)) await workflow(file.name, lake);
        const before = await currentState(at, config);

        // The last file's run commits its version, then dies at the fold's commit (its state manifest).
        const last = files[2]!.name;
        const dying = dyingAt(at.lake, silverStateManifestKey(config.name, 'accounts'));
        await expect(workflow(last, dying)).rejects.toThrow('killed before the commit');
        expect((await listCurrentVersions(lake, config.name)).map((r) => r.sourceId)).toHaveLength(3);
        expect(await currentState(at, config)).toEqual(before);

        // Its rerun: the source is unchanged (its version is current), and the state catches up.
        const rerun = await workflow(last, lake);
        expect(rerun.outcome).toBe('unchanged');
        expect(rerun.state).toMatchObject({ outcome: 'merged', applied: true });
        expect(await currentState(at, config)).toEqual(await reference('unfolded'));
        // Once caught up, a rerun has nothing to fold.
        const again = await workflow(last, lake);
        expect(again.state).toMatchObject({ outcome: 'already-applied', applied: false });
      });

      it.each(['its read of the state', 'its listing of the current versions'] as const)(
        'a catch-up beside another source committing and folding (just before %s): no version is lost',
        async (moment) => {
          const config = ndjsonConfig(load);
          const at = await newLake(tmp.dir, `${load}-catch-up-race-${moment.split(' ')[1]}`);
          const lake = fileStore(at.lake);
          const commitAndFold = async (file: (typeof files)[number]) => {
            await writeFile(join(at.source, file.name), toNdjson(file.batch));
            await commit(at, config, await build(at, config, file.name));
            await mergeCommittedVersions({ dataset: config }, { lake, clock: fixedClock, workDir: at.work });
          };
          for (const file of files.slice(0, 2)) await commitAndFold(file);
          // The third source's run commits and folds at the moment named, inside the catch-up.
          const stateKey = silverStateManifestKey(config.name, 'accounts');
          let fired = false;
          const third = async () => {
            if (fired) return;
            fired = true;
            await commitAndFold(files[2]!);
          };
          const racing = new (class extends FileObjectStore {
            override async head(key: string) {
              if (moment === 'its read of the state' && key === stateKey) await third();
              return super.head(key);
            }
            override async *list(prefix: string) {
              if (moment === 'its listing of the current versions' && prefix.startsWith('_sources/'))
                await third();
              yield* super.list(prefix);
            }
          })(at.lake);
          await mergeCommittedVersions(
            { dataset: config },
            { lake: racing, clock: fixedClock, workDir: at.work },
          );
          expect(fired).toBe(true);
          const manifest = JSON.parse(await readFile(join(at.lake, stateKey), 'utf8'));
          expect(manifest.applied).toHaveLength(3);
          expect(await currentState(at, config)).toEqual(await reference(`catch-up-race-${moment.length}`));
        },
      );

      it('two sources merged into one table at once: both are applied, none is lost', async () => {
        const config = ndjsonConfig(load);
        const at = await newLake(tmp.dir, `${load}-race`);
        await land(at, config, files[0]!.name, toNdjson(files[0]!.batch));
        const built = [];
        for (const file of files.slice(1)) {
          await writeFile(join(at.source, file.name), toNdjson(file.batch));
          built.push(await build(at, config, file.name));
        }
        const merged = await Promise.all(built.map(({ silver }) => merge(at, config, silver.manifestKey)));
        expect(merged.map((m) => m.applied)).toEqual([true, true]);
        const manifest = JSON.parse(
          await readFile(join(at.lake, silverStateManifestKey(config.name, 'accounts')), 'utf8'),
        );
        expect(manifest.applied).toHaveLength(3);
        // cdc and scd2 states do not depend on the order sources arrive in; a snapshot is the latest one.
        if (load !== 'snapshot') expect(await currentState(at, config)).toEqual(await reference('race'));
      });
    },
  );
});
