import { readdirSync, readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { recordTargets } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { ticAllowedAmountsSilver } from '../../shared/contracts/datasets/tic-allowed-amounts.silver.ts';
import type { TicSilverContract } from '../../shared/contracts/datasets/tic-common.silver.ts';
import {
  danglingProviderGroupIds,
  inlineGroupId,
  ticInNetworkSilver,
} from '../../shared/contracts/datasets/tic-in-network.silver.ts';
import { ticTableOfContentsSilver } from '../../shared/contracts/datasets/tic-table-of-contents.silver.ts';
import type { SilverContext, SilverContract } from '../../shared/contracts/silver/contract.ts';
import type {
  ColumnSpec,
  DriftFinding,
  NormalizedRecord,
  Row,
  RuleViolation,
} from '../../shared/contracts/silver/table.ts';
import { generateTicInNetwork } from '../../shared/generate/tic-in-network.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';

type Json = Record<string, unknown>;
type Contract = TicSilverContract;

const EXAMPLES = `${TIC_EXAMPLES}/`;
const load = (name: string): Json => JSON.parse(readFileSync(EXAMPLES + name, 'utf8')) as Json;
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const sum = (items: Json[], f: (item: Json) => number): number => items.reduce((n, item) => n + f(item), 0);

/** The context the silver stage would build: top-level scalars are the headers. */
function contextOf(doc: Json, overrides: Partial<SilverContext> = {}): SilverContext {
  const headers = Object.fromEntries(
    Object.entries(doc).filter(([, v]) => v === null || typeof v !== 'object'),
  );
  return { runId: 'run-1', sourceUri: 'file:///sample.json', sourceSha256: 'abc', headers, ...overrides };
}

interface FileResult {
  rows: Record<string, Row[]>;
  violations: RuleViolation[];
  drift: DriftFinding[];
}

/** Every record of `streams` through the contract, as the silver stage does. */
function normalizeFile(
  contract: SilverContract,
  doc: Json,
  streams: string[],
  context = contextOf(doc),
): FileResult {
  const result: FileResult = { rows: {}, violations: [], drift: [] };
  const add = (out: NormalizedRecord) => {
    for (const [table, rows] of Object.entries(out.rows)) {
      result.rows[table] = [...(result.rows[table] ?? []), ...rows];
    }
    result.violations.push(...out.violations);
    result.drift.push(...out.drift);
  };
  add({ rows: contract.fileRows(context), violations: [], drift: [] });
  for (const stream of streams)
    arr(doc[stream]).forEach((record, i) => {
      add(contract.normalize(stream, i, record, context));
    });
  return result;
}

const isDate = (v: unknown) => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v);
const TYPE_CHECKS: Record<ColumnSpec['type'], (v: unknown) => boolean> = {
  VARCHAR: (v) => typeof v === 'string',
  BIGINT: (v) => Number.isSafeInteger(v),
  DOUBLE: (v) => typeof v === 'number' && Number.isFinite(v),
  BOOLEAN: (v) => typeof v === 'boolean',
  DATE: isDate,
  TIMESTAMP: (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
  'VARCHAR[]': (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
  'BIGINT[]': (v) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x)),
  'DOUBLE[]': (v) => Array.isArray(v) && v.every((x) => typeof x === 'number'),
};

/** Rows have exactly their table's columns, each null or of its type, keys non-null and unique. */
function expectRowsMatchTables(contract: SilverContract, rows: Record<string, Row[]>): void {
  for (const [tableName, tableRows] of Object.entries(rows)) {
    const table = contract.tables.find((t) => t.name === tableName);
    expect(table, `table ${tableName} is declared`).toBeDefined();
    const names = table!.columns.map((c) => c.name);
    const keys = new Set<string>();
    for (const row of tableRows) {
      expect(Object.keys(row).sort(), `${tableName} columns`).toEqual([...names].sort());
      for (const column of table!.columns) {
        const value = row[column.name];
        if (value === null)
          expect(column.nullable, `${tableName}.${column.name} is nullable`).not.toBe(false);
        else
          expect(TYPE_CHECKS[column.type](value), `${tableName}.${column.name}: ${String(value)}`).toBe(true);
      }
      const key = JSON.stringify(table!.key.map((k) => row[k]));
      expect(keys.has(key), `${tableName} key ${key} is unique`).toBe(false);
      keys.add(key);
    }
  }
}

const expectNoQuarantine = (violations: RuleViolation[]) =>
  expect(violations.filter((v) => v.severity !== 'warn')).toEqual([]);

const count = (result: FileResult, table: string) => result.rows[table]?.length ?? 0;

// ---------------------------------------------------------------------------------------------

describe('TiC silver contracts on the CMS sample files', () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));

  it('covers every sample file', () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  for (const name of files.filter((f) => f.startsWith('in-network-rates'))) {
    it(`in-network: ${name} gives the rows its content implies, none quarantined`, () => {
      const doc = load(name);
      const result = normalizeFile(ticInNetworkSilver, doc, ['provider_references', 'in_network']);
      const items = arr(doc.in_network);
      const rates = items.flatMap((i) => arr(i.negotiated_rates));
      const refs = arr(doc.provider_references);
      expect(count(result, 'in_network_items')).toBe(items.length);
      expect(count(result, 'negotiated_prices')).toBe(sum(rates, (r) => arr(r.negotiated_prices).length));
      expect(count(result, 'provider_groups')).toBe(
        sum(refs, (r) => arr(r.provider_groups).length || (r.location ? 1 : 0)) +
          sum(rates, (r) => arr(r.provider_groups).length),
      );
      expect(count(result, 'contained_codes')).toBe(
        sum(items, (i) => arr(i.bundled_codes).length + arr(i.covered_services).length),
      );
      expect(result.violations).toEqual([]);
      expect(result.drift).toEqual([]);
      expectRowsMatchTables(ticInNetworkSilver, result.rows);
      expect(danglingProviderGroupIds(result.rows.negotiated_prices!, result.rows.provider_groups!)).toEqual(
        [],
      );
      expect(result.rows.files).toEqual([
        {
          file_id: 'run-1',
          source_uri: 'file:///sample.json',
          source_sha256: 'abc',
          reporting_entity_name: doc.reporting_entity_name,
          reporting_entity_type: doc.reporting_entity_type,
          plan_name: doc.plan_name ?? null,
          plan_id: doc.plan_id ?? null,
          plan_id_type: doc.plan_id_type ?? null,
          plan_market_type: doc.plan_market_type ?? null,
          issuer_name: doc.issuer_name ?? null,
          plan_sponsor_name: doc.plan_sponsor_name ?? null,
          last_updated_on: doc.last_updated_on,
          version: doc.version,
          schema_version: '2.x',
          schema_version_source: 'header',
        },
      ]);
    });
  }

  it('in-network: the values of a negotiated price row are those of the file', () => {
    const result = normalizeFile(
      ticInNetworkSilver,
      load('in-network-rates-fee-for-service-single-plan-sample.json'),
      ['provider_references', 'in_network'],
    );
    expect(result.rows.negotiated_prices![0]).toEqual({
      file_id: 'run-1',
      item_index: 0,
      rate_index: 0,
      price_index: 0,
      billing_code: '27447',
      negotiated_type: 'negotiated',
      negotiated_rate: 123.45,
      expiration_date: '2022-01-01',
      service_code: ['18', '19', '11'],
      billing_class: 'professional',
      setting: 'inpatient',
      billing_code_modifier: ['AS'],
      additional_information: null,
      provider_group_ids: ['1'],
      _rescued: null,
    });
    expect(result.rows.provider_groups![1]).toMatchObject({
      provider_group_id: '1',
      group_index: 1,
      source: 'provider_references',
      npi: [1111111111, 2222222222, 3333333333, 4444444444, 5555555555],
      tin_type: 'ein',
      tin_value: '22-2222222',
      business_name: 'Midland Medical Group',
      network_name: ['ACME Choice Provider Group'],
      location: null,
    });
  });

  it('in-network: the 1.x provider-reference file gives one provider group row per group', () => {
    const doc = load('provider-reference-v1.4-sample.json');
    const context = contextOf(doc, { sourceUri: 'https://example.com/refs/1.json' });
    const result = normalizeFile(ticInNetworkSilver, doc, ['provider_groups'], context);
    expect(count(result, 'provider_groups')).toBe(arr(doc.provider_groups).length);
    expectNoQuarantine(result.violations);
    expect(result.violations).toEqual([]); // business_name is a 2.x requirement
    expectRowsMatchTables(ticInNetworkSilver, result.rows);
    expect(result.rows.provider_groups![1]).toMatchObject({
      provider_group_id: 'https://example.com/refs/1.json',
      group_index: 1,
      source: 'provider_reference_file',
      npi: [2222222222],
    });
    expect(result.rows.files![0]).toMatchObject({
      version: '1.4.0',
      schema_version: '1.x',
      schema_version_source: 'header',
    });
  });

  for (const name of files.filter((f) => f.startsWith('allowed-amounts'))) {
    it(`allowed amounts: ${name} gives the rows its content implies, none quarantined`, () => {
      const doc = load(name);
      const result = normalizeFile(ticAllowedAmountsSilver, doc, ['out_of_network']);
      const items = arr(doc.out_of_network);
      const amounts = items.flatMap((i) => arr(i.allowed_amounts));
      const payments = amounts.flatMap((a) => arr(a.payments));
      expect(count(result, 'out_of_network_items')).toBe(items.length);
      expect(count(result, 'allowed_amounts')).toBe(amounts.length);
      expect(count(result, 'payments')).toBe(payments.length);
      expect(count(result, 'payment_providers')).toBe(sum(payments, (p) => arr(p.providers).length));
      expect(result.violations).toEqual([]);
      expect(result.drift).toEqual([]);
      expectRowsMatchTables(ticAllowedAmountsSilver, result.rows);
      expect(result.rows.files![0]).toMatchObject({
        file_id: 'run-1',
        reporting_entity_name: doc.reporting_entity_name,
        plan_name: doc.plan_name ?? null,
        last_updated_on: doc.last_updated_on,
        schema_version: '2.x',
      });
      expect(result.rows.allowed_amounts![0]).toMatchObject({
        tin_type: 'ein',
        tin_value: '1234567890',
        service_code: ['01', '02', '03'],
        billing_class: 'professional',
        setting: 'outpatient',
      });
      expect(result.rows.payment_providers![0]).toMatchObject({
        billed_charge: 50,
        npi: [1234567891, 1234567892, 1234567893],
      });
    });
  }

  it('table of contents: the sample gives the rows its content implies, none quarantined', () => {
    const doc = load('table-of-contents-sample.json');
    const result = normalizeFile(ticTableOfContentsSilver, doc, ['reporting_structure']);
    const structures = arr(doc.reporting_structure);
    expect(count(result, 'reporting_plans')).toBe(sum(structures, (s) => arr(s.reporting_plans).length));
    expect(count(result, 'in_network_files')).toBe(sum(structures, (s) => arr(s.in_network_files).length));
    expect(count(result, 'allowed_amount_files')).toBe(
      structures.filter((s) => s.allowed_amount_file).length,
    );
    expect(result.violations).toEqual([]);
    expect(result.drift).toEqual([]);
    expectRowsMatchTables(ticTableOfContentsSilver, result.rows);
    expect(result.rows.files).toEqual([
      {
        file_id: 'run-1',
        source_uri: 'file:///sample.json',
        source_sha256: 'abc',
        reporting_entity_name: 'medicare',
        reporting_entity_type: 'medicare',
        last_updated_on: '2023-04-19',
        version: '2.0.0',
        schema_version: '2.x',
        schema_version_source: 'header',
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Factories: valid records to break one rule at a time

const price = (): Json => ({
  negotiated_type: 'negotiated',
  negotiated_rate: 123.45,
  expiration_date: '2025-12-31',
  service_code: ['11'],
  billing_class: 'professional',
  setting: 'outpatient',
});
const group = (): Json => ({
  npi: [1234567890],
  tin: { type: 'ein', value: '12-3456789', business_name: 'Clinic' },
});
const inNetworkItem = (): Json => ({
  negotiation_arrangement: 'bundle',
  name: 'Knee',
  billing_code_type: 'CPT',
  billing_code_type_version: '2024',
  billing_code: '27447',
  description: 'Knee replacement',
  negotiated_rates: [
    { provider_references: [1, 2], negotiated_prices: [price(), price()] },
    { provider_groups: [group(), group()], negotiated_prices: [price()] },
  ],
  bundled_codes: [
    {
      billing_code_type: 'CPT',
      billing_code_type_version: '2024',
      billing_code: '27446',
      description: 'Femur',
    },
  ],
});
const providerReference = (): Json => ({
  provider_group_id: 7,
  network_name: ['Net'],
  provider_groups: [group()],
});
const outOfNetworkItem = (): Json => ({
  name: 'Visit',
  billing_code_type: 'CPT',
  billing_code_type_version: '2024',
  billing_code: '99214',
  description: 'Office visit',
  allowed_amounts: [
    {
      tin: { type: 'ein', value: '12-3456789' },
      service_code: ['11'],
      billing_class: 'professional',
      payments: [{ allowed_amount: 25, providers: [{ billed_charge: 50, npi: [1234567890] }] }],
    },
  ],
});
const reportingStructure = (): Json => ({
  reporting_plans: [
    { plan_name: 'P', plan_id_type: 'hios', plan_id: '1', plan_market_type: 'group', issuer_name: 'I' },
  ],
  in_network_files: [{ description: 'in-network', location: 'https://example.com/in.json' }],
  allowed_amount_file: { description: 'allowed', location: 'https://example.com/aa.json' },
});

/** A copy of `record` with the value at `path` replaced (undefined: removed). */
/** Every copy of `record` with one value (or key) changed: removed, null, blank, of another type, or an unknown key added. */
function mutations(record: unknown): unknown[] {
  const out: unknown[] = [];
  const replacements: unknown[] = [undefined, null, '', ' ', 0, -1, 1.5, 'x', [], {}, [null], true];
  const visit = (value: unknown, path: (string | number)[]) => {
    if (path.length > 0) for (const r of replacements) out.push(withValue(record as Json, path, r));
    if (Array.isArray(value)) for (const [i, v] of value.entries()) visit(v, [...path, i]);
    else if (value !== null && typeof value === 'object') {
      out.push(path.length === 0 ? { ...value, extra: 1 } : withValue(record as Json, [...path, 'extra'], 1));
      for (const [k, v] of Object.entries(value)) visit(v, [...path, k]);
    }
  };
  visit(record, []);
  return out;
}

function withValue(record: Json, path: (string | number)[], value: unknown): Json {
  const copy = structuredClone(record);
  let node = copy as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) node = node[seg] as Record<string | number, unknown>;
  const last = path.at(-1)!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

const V2: SilverContext = {
  runId: 'run-1',
  sourceUri: 'file:///f.json',
  sourceSha256: 'abc',
  headers: { version: '2.0.0' },
};
const V1: SilverContext = { ...V2, headers: { version: '1.0.0' } };

interface RuleCase {
  contract: Contract;
  stream: string;
  record: unknown;
  ruleId: string;
  path: string;
}
const inNetwork = (ruleId: string, path: string, record: unknown): RuleCase => ({
  contract: ticInNetworkSilver,
  stream: 'in_network',
  record,
  ruleId,
  path,
});
const reference = (ruleId: string, path: string, record: unknown): RuleCase => ({
  contract: ticInNetworkSilver,
  stream: 'provider_references',
  record,
  ruleId,
  path,
});
const allowed = (ruleId: string, path: string, record: unknown): RuleCase => ({
  contract: ticAllowedAmountsSilver,
  stream: 'out_of_network',
  record,
  ruleId,
  path,
});
const toc = (ruleId: string, path: string, record: unknown): RuleCase => ({
  contract: ticTableOfContentsSilver,
  stream: 'reporting_structure',
  record,
  ruleId,
  path,
});
const P0 = ['negotiated_rates', 0, 'negotiated_prices', 0];
const AA = ['allowed_amounts', 0];
const PAY = [...AA, 'payments', 0];

/** One fixture per quarantine (and fail) rule. */
const QUARANTINE_CASES: RuleCase[] = [
  inNetwork('in_network.type', 'name', withValue(inNetworkItem(), ['name'], 5)),
  inNetwork('in_network.required', 'billing_code', withValue(inNetworkItem(), ['billing_code'], undefined)),
  inNetwork(
    'in_network.negotiation_arrangement.enum',
    'negotiation_arrangement',
    withValue(inNetworkItem(), ['negotiation_arrangement'], 'FFS'),
  ),
  inNetwork(
    'in_network.billing_code_type.enum',
    'billing_code_type',
    withValue(inNetworkItem(), ['billing_code_type'], 'XYZ'),
  ),
  inNetwork(
    'contained_code.type',
    'bundled_codes[0].description',
    withValue(inNetworkItem(), ['bundled_codes', 0, 'description'], 7),
  ),
  inNetwork(
    'contained_code.required',
    'bundled_codes[0].billing_code',
    withValue(inNetworkItem(), ['bundled_codes', 0, 'billing_code'], undefined),
  ),
  inNetwork(
    'contained_code.billing_code_type.enum',
    'bundled_codes[0].billing_code_type',
    withValue(inNetworkItem(), ['bundled_codes', 0, 'billing_code_type'], 'nope'),
  ),
  inNetwork(
    'negotiated_rate.type',
    'negotiated_rates[0].provider_references',
    withValue(inNetworkItem(), ['negotiated_rates', 0, 'provider_references'], 'abc'),
  ),
  inNetwork(
    'negotiated_rate.required',
    'negotiated_rates[0].provider_references',
    withValue(inNetworkItem(), ['negotiated_rates', 0, 'provider_references'], undefined),
  ),
  inNetwork(
    'negotiated_price.type',
    'negotiated_rates[0].negotiated_prices[0]',
    withValue(inNetworkItem(), P0, 'x'),
  ),
  inNetwork(
    'negotiated_price.required',
    'negotiated_rates[0].negotiated_prices[0].setting',
    withValue(inNetworkItem(), [...P0, 'setting'], undefined),
  ),
  inNetwork(
    'negotiated_price.negotiated_type.enum',
    'negotiated_rates[0].negotiated_prices[0].negotiated_type',
    withValue(inNetworkItem(), [...P0, 'negotiated_type'], 'NEGOTIATED'),
  ),
  inNetwork(
    'negotiated_price.billing_class.enum',
    'negotiated_rates[0].negotiated_prices[0].billing_class',
    withValue(inNetworkItem(), [...P0, 'billing_class'], 'facility'),
  ),
  inNetwork(
    'negotiated_price.setting.enum',
    'negotiated_rates[0].negotiated_prices[0].setting',
    withValue(inNetworkItem(), [...P0, 'setting'], 'home'),
  ),
  inNetwork(
    'negotiated_price.negotiated_rate.type',
    'negotiated_rates[0].negotiated_prices[0].negotiated_rate',
    withValue(inNetworkItem(), [...P0, 'negotiated_rate'], 'lots'),
  ),
  inNetwork(
    'negotiated_price.expiration_date.invalid',
    'negotiated_rates[0].negotiated_prices[0].expiration_date',
    withValue(inNetworkItem(), [...P0, 'expiration_date'], '2024-02-30'),
  ),
  inNetwork(
    'provider_group.type',
    'negotiated_rates[1].provider_groups[0].tin',
    withValue(inNetworkItem(), ['negotiated_rates', 1, 'provider_groups', 0, 'tin'], 'x'),
  ),
  inNetwork(
    'provider_group.required',
    'negotiated_rates[1].provider_groups[1].npi',
    withValue(inNetworkItem(), ['negotiated_rates', 1, 'provider_groups', 1, 'npi'], undefined),
  ),
  inNetwork(
    'provider_group.tin.type.enum',
    'negotiated_rates[1].provider_groups[0].tin.type',
    withValue(inNetworkItem(), ['negotiated_rates', 1, 'provider_groups', 0, 'tin', 'type'], 'EIN'),
  ),
  inNetwork('record.stream', '$', inNetworkItem()),
  reference(
    'provider_reference.type',
    'provider_group_id',
    withValue(providerReference(), ['provider_group_id'], 'abc'),
  ),
  reference(
    'provider_reference.required',
    'provider_group_id',
    withValue(providerReference(), ['provider_group_id'], undefined),
  ),
  allowed('out_of_network.type', 'name', withValue(outOfNetworkItem(), ['name'], 5)),
  allowed(
    'out_of_network.required',
    'allowed_amounts',
    withValue(outOfNetworkItem(), ['allowed_amounts'], undefined),
  ),
  allowed(
    'out_of_network.billing_code_type.enum',
    'billing_code_type',
    withValue(outOfNetworkItem(), ['billing_code_type'], 'CSTM-ALL'),
  ),
  allowed('allowed_amount.type', 'allowed_amounts[0]', withValue(outOfNetworkItem(), AA, 3)),
  allowed(
    'allowed_amount.required',
    'allowed_amounts[0].tin',
    withValue(outOfNetworkItem(), [...AA, 'tin'], undefined),
  ),
  allowed(
    'allowed_amount.tin.type.enum',
    'allowed_amounts[0].tin.type',
    withValue(outOfNetworkItem(), [...AA, 'tin', 'type'], 'ssn'),
  ),
  allowed(
    'allowed_amount.billing_class.enum',
    'allowed_amounts[0].billing_class',
    withValue(outOfNetworkItem(), [...AA, 'billing_class'], 'both'),
  ),
  allowed('payment.type', 'allowed_amounts[0].payments[0]', withValue(outOfNetworkItem(), PAY, 'x')),
  allowed(
    'payment.required',
    'allowed_amounts[0].payments[0].allowed_amount',
    withValue(outOfNetworkItem(), [...PAY, 'allowed_amount'], undefined),
  ),
  allowed(
    'payment_provider.type',
    'allowed_amounts[0].payments[0].providers[0].npi',
    withValue(outOfNetworkItem(), [...PAY, 'providers', 0, 'npi'], 'abc'),
  ),
  allowed(
    'payment_provider.required',
    'allowed_amounts[0].payments[0].providers[0].billed_charge',
    withValue(outOfNetworkItem(), [...PAY, 'providers', 0, 'billed_charge'], undefined),
  ),
  toc(
    'reporting_structure.type',
    'reporting_plans',
    withValue(reportingStructure(), ['reporting_plans'], {}),
  ),
  toc(
    'reporting_structure.required',
    'in_network_files',
    withValue(
      withValue(reportingStructure(), ['in_network_files'], undefined),
      ['allowed_amount_file'],
      undefined,
    ),
  ),
  toc(
    'reporting_plan.type',
    'reporting_plans[0].plan_name',
    withValue(reportingStructure(), ['reporting_plans', 0, 'plan_name'], 5),
  ),
  toc(
    'reporting_plan.required',
    'reporting_plans[0].issuer_name',
    withValue(reportingStructure(), ['reporting_plans', 0, 'issuer_name'], undefined),
  ),
  toc(
    'reporting_plan.plan_id_type.enum',
    'reporting_plans[0].plan_id_type',
    withValue(reportingStructure(), ['reporting_plans', 0, 'plan_id_type'], 'EIN'),
  ),
  toc(
    'reporting_plan.plan_market_type.enum',
    'reporting_plans[0].plan_market_type',
    withValue(reportingStructure(), ['reporting_plans', 0, 'plan_market_type'], 'small group'),
  ),
  toc(
    'in_network_file.type',
    'in_network_files[0].location',
    withValue(reportingStructure(), ['in_network_files', 0, 'location'], 5),
  ),
  toc(
    'in_network_file.required',
    'in_network_files[0].description',
    withValue(reportingStructure(), ['in_network_files', 0, 'description'], ''),
  ),
  toc(
    'allowed_amount_file.type',
    'allowed_amount_file.description',
    withValue(reportingStructure(), ['allowed_amount_file', 'description'], 5),
  ),
  toc(
    'allowed_amount_file.required',
    'allowed_amount_file.location',
    withValue(reportingStructure(), ['allowed_amount_file', 'location'], undefined),
  ),
];

describe('TiC silver contracts: rules', () => {
  for (const { contract, stream, record, ruleId, path } of QUARANTINE_CASES) {
    it(`${contract.dataset}: ${ruleId} at ${path}`, () => {
      const out = contract.normalize(ruleId === 'record.stream' ? 'in_network_typo' : stream, 3, record, V2);
      expect(out.violations).toContainEqual(expect.objectContaining({ ruleId, path }));
      const severity = contract.rules.find((r) => r.id === ruleId)!.severity;
      expect(out.violations.find((v) => v.ruleId === ruleId)!.severity).toBe(severity);
      expect(out.rows).toEqual({}); // a quarantined record contributes no rows
    });
  }

  it('has a fixture for every quarantine and fail rule of every contract', () => {
    for (const contract of [ticInNetworkSilver, ticAllowedAmountsSilver, ticTableOfContentsSilver]) {
      const covered = new Set(QUARANTINE_CASES.filter((c) => c.contract === contract).map((c) => c.ruleId));
      const hard = contract.rules.filter((r) => r.severity !== 'warn' && r.id !== 'record.schema');
      const uncovered = hard.map((r) => r.id).filter((id) => !covered.has(id) && id !== 'record.stream');
      expect(uncovered, contract.dataset).toEqual([]);
    }
  });

  it('documents every rule once, with a severity and a description', () => {
    for (const contract of [ticInNetworkSilver, ticAllowedAmountsSilver, ticTableOfContentsSilver]) {
      const ids = contract.rules.map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      for (const rule of contract.rules) {
        expect(rule.id).toMatch(/^[a-z_]+(\.[a-z_]+)+$/);
        expect(['warn', 'quarantine', 'fail']).toContain(rule.severity);
        expect(rule.description.length).toBeGreaterThan(10);
      }
    }
  });

  it('accepts the valid fixtures as they are', () => {
    for (const [contract, stream, record] of [
      [ticInNetworkSilver, 'in_network', inNetworkItem()],
      [ticInNetworkSilver, 'provider_references', providerReference()],
      [ticAllowedAmountsSilver, 'out_of_network', outOfNetworkItem()],
      [ticTableOfContentsSilver, 'reporting_structure', reportingStructure()],
    ] as const) {
      const out = contract.normalize(stream, 0, record, V2);
      expect(out.violations.filter((v) => v.ruleId !== 'schema_version.content_mismatch')).toEqual([]);
      expect(out.drift).toEqual([]);
    }
  });

  it('has validity schemas that zod compiles whole and that accept exactly what the reporting schemas accept', () => {
    // The fast path trusts `validator`: a record it accepts is never parsed for issues. So it must accept
    // no record the reporting schema rejects, on valid records, every rule fixture, the CMS samples and
    // every single-field mutation of the valid fixtures.
    const records: Record<string, unknown[]> = {
      in_network: [inNetworkItem()],
      provider_references: [providerReference()],
      provider_groups: [group()],
      out_of_network: [outOfNetworkItem()],
      reporting_structure: [reportingStructure()],
    };
    for (const c of QUARANTINE_CASES) records[c.stream]?.push(c.record);
    for (const file of readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'))) {
      const doc = load(file);
      for (const [stream, list] of Object.entries(records)) list.push(...arr(doc[stream]));
    }
    for (const list of Object.values(records)) list.push(...list.slice(0, 1).flatMap(mutations));
    let outcomes = 0;
    for (const contract of [ticInNetworkSilver, ticAllowedAmountsSilver, ticTableOfContentsSilver]) {
      for (const [name, stream] of Object.entries(contract.streams)) {
        const compiled = z.compile(stream.validator, { strict: true });
        const seen = new Set<boolean>();
        for (const record of records[name] ?? []) {
          const valid = stream.schema.safeParse(record).success;
          seen.add(valid);
          expect(z.validate(compiled, record), `${name}: ${JSON.stringify(record)}`).toBe(valid);
        }
        outcomes += seen.size;
      }
    }
    expect(outcomes).toBe(10); // both answers seen for each of the five streams
  });

  const warnings = (record: unknown, context = V2, stream = 'in_network') =>
    ticInNetworkSilver.normalize(stream, 0, record, context);

  it('converts a numeric-string rate to a number, with a warning', () => {
    const out = warnings(withValue(inNetworkItem(), [...P0, 'negotiated_rate'], ' 99.50 '));
    expect(out.violations).toContainEqual(
      expect.objectContaining({
        ruleId: 'negotiated_price.negotiated_rate.numeric_string',
        severity: 'warn',
      }),
    );
    expect(out.drift).toContainEqual(expect.objectContaining({ kind: 'wrong_type', example: '" 99.50 "' }));
    expect(out.rows.negotiated_prices![0]!.negotiated_rate).toBe(99.5);
  });

  it('converts a US-style expiration date to ISO, with a warning', () => {
    const out = warnings(withValue(inNetworkItem(), [...P0, 'expiration_date'], '12/31/2025'));
    expect(out.violations).toContainEqual(
      expect.objectContaining({
        ruleId: 'negotiated_price.expiration_date.format',
        severity: 'warn',
        path: 'negotiated_rates[0].negotiated_prices[0].expiration_date',
      }),
    );
    expect(out.rows.negotiated_prices![0]!.expiration_date).toBe('2025-12-31');
  });

  it('warns on an NPI that is not 10 digits, and keeps the row', () => {
    const out = warnings(
      withValue(inNetworkItem(), ['negotiated_rates', 1, 'provider_groups', 0, 'npi'], [123]),
    );
    expect(out.violations).toContainEqual({
      ruleId: 'provider_group.npi.format',
      severity: 'warn',
      path: 'negotiated_rates[1].provider_groups[0].npi[0]',
      message: expect.any(String),
    });
    expect(out.rows.provider_groups![0]!.npi).toEqual([123]);
  });

  it('warns on other CMS checks that do not make rows wrong', () => {
    const cases: [Json, string][] = [
      [
        withValue(inNetworkItem(), [...P0, 'service_code'], undefined),
        'negotiated_price.service_code.required',
      ],
      [
        withValue(inNetworkItem(), [...P0, 'service_code'], ['11', '98']),
        'negotiated_price.service_code.format',
      ],
      [withValue(inNetworkItem(), [...P0, 'negotiated_rate'], 0), 'negotiated_price.negotiated_rate.range'],
      [
        withValue(inNetworkItem(), ['negotiated_rates', 0, 'provider_references'], []),
        'negotiated_rate.provider_references.empty',
      ],
      [
        withValue(inNetworkItem(), ['negotiated_rates', 1, 'provider_groups', 0, 'tin', 'value'], '123'),
        'provider_group.tin.value.format',
      ],
      [
        withValue(
          inNetworkItem(),
          ['negotiated_rates', 1, 'provider_groups', 0, 'tin', 'business_name'],
          undefined,
        ),
        'provider_group.tin.business_name.required',
      ],
    ];
    for (const [record, ruleId] of cases) {
      const out = warnings(record);
      expect(out.violations.map((v) => [v.ruleId, v.severity])).toContainEqual([ruleId, 'warn']);
      expect(out.rows.in_network_items, ruleId).toHaveLength(1);
    }
  });

  it('applies 2.x-only rules to 2.x files only', () => {
    const noBusinessName = withValue(group(), ['tin', 'business_name'], undefined);
    const ruleIds = (context: SilverContext) =>
      warnings(noBusinessName, context, 'provider_groups').violations.map((v) => v.ruleId);
    expect(ruleIds(V2)).toContain('provider_group.tin.business_name.required');
    expect(ruleIds(V1)).not.toContain('provider_group.tin.business_name.required');
  });
});

// ---------------------------------------------------------------------------------------------

describe('TiC silver contracts: drift', () => {
  it('reports an unknown field of an in_network item and keeps it in the item row', () => {
    const out = ticInNetworkSilver.normalize(
      'in_network',
      0,
      { ...inNetworkItem(), plan_tier: { level: 2 } },
      V2,
    );
    expect(out.drift).toEqual([{ kind: 'unknown_field', path: 'plan_tier', example: '{"level":2}' }]);
    expect(out.violations.filter((v) => v.severity !== 'warn')).toEqual([]);
    expect(JSON.parse(out.rows.in_network_items![0]!._rescued as string)).toEqual({
      plan_tier: { level: 2 },
    });
    expect(out.rows.negotiated_prices!.map((r) => r._rescued)).toEqual([null, null, null]);
  });

  it('keeps an unknown price field in that price row, and rate fields in the rate’s price rows', () => {
    let record = withValue(inNetworkItem(), [...P0, 'discount'], 'x'.repeat(500));
    record = withValue(record, ['negotiated_rates', 0, 'tier'], 'gold');
    const out = ticInNetworkSilver.normalize('in_network', 0, record, V2);
    expect(out.drift).toEqual([
      {
        kind: 'unknown_field',
        path: 'negotiated_rates[0].negotiated_prices[0].discount',
        example: `"${'x'.repeat(199)}`,
      },
      { kind: 'unknown_field', path: 'negotiated_rates[0].tier', example: '"gold"' },
    ]);
    const [first, second, third] = out.rows.negotiated_prices!.map((r) => r._rescued);
    expect(JSON.parse(first as string)).toEqual({
      'negotiated_rates[0].tier': 'gold',
      'negotiated_rates[0].negotiated_prices[0].discount': 'x'.repeat(500),
    });
    expect(JSON.parse(second as string)).toEqual({ 'negotiated_rates[0].tier': 'gold' });
    expect(third).toBeNull();
    expect(out.rows.in_network_items![0]!._rescued).toBeNull();
  });

  it('reports a value of the wrong type, with its violation, and rescues it', () => {
    const out = ticInNetworkSilver.normalize(
      'in_network',
      0,
      withValue(inNetworkItem(), [...P0, 'additional_information'], { note: 'x' }),
      V2,
    );
    const path = 'negotiated_rates[0].negotiated_prices[0].additional_information';
    expect(out.drift).toEqual([{ kind: 'wrong_type', path, example: '{"note":"x"}' }]);
    expect(out.violations).toContainEqual(
      expect.objectContaining({
        ruleId: 'negotiated_price.additional_information.type',
        severity: 'warn',
        path,
      }),
    );
    const row = out.rows.negotiated_prices![0]!;
    expect(row.additional_information).toBeNull();
    expect(JSON.parse(row._rescued as string)).toEqual({ [path]: { note: 'x' } });
  });

  it('reports drift of quarantined records too', () => {
    const record = { ...withValue(inNetworkItem(), ['name'], undefined), extra: 1 };
    const out = ticInNetworkSilver.normalize('in_network', 0, record, V2);
    expect(out.rows).toEqual({});
    expect(out.drift).toEqual([{ kind: 'unknown_field', path: 'extra', example: '1' }]);
  });

  it('keeps unknown fields of a provider reference in each of its group rows', () => {
    const record = { ...providerReference(), provider_groups: [group(), group()], tier: 'A' };
    const out = ticInNetworkSilver.normalize('provider_references', 0, record, V2);
    expect(out.rows.provider_groups!.map((r) => r._rescued)).toEqual(['{"tier":"A"}', '{"tier":"A"}']);
  });
});

// ---------------------------------------------------------------------------------------------

describe('TiC in-network: provider groups and schema versions', () => {
  it('gives inline provider groups deterministic ids that the rate’s prices reference', () => {
    const out = ticInNetworkSilver.normalize('in_network', 4, inNetworkItem(), V2);
    const ids = [inlineGroupId('run-1', 4, 1, 0), inlineGroupId('run-1', 4, 1, 1)];
    expect(ids[0]).toMatch(/^inline-[0-9a-f]{16}$/);
    expect(new Set(ids).size).toBe(2);
    expect(out.rows.provider_groups!.map((g) => [g.provider_group_id, g.group_index, g.source])).toEqual([
      [ids[0], 0, 'inline'],
      [ids[1], 1, 'inline'],
    ]);
    expect(out.rows.negotiated_prices!.map((p) => p.provider_group_ids)).toEqual([
      ['1', '2'],
      ['1', '2'],
      ids,
    ]);
    expect(ticInNetworkSilver.normalize('in_network', 4, inNetworkItem(), V2)).toEqual(out);
  });

  it('flags inline provider groups as a 1.x shape in a 2.x file', () => {
    const out = ticInNetworkSilver.normalize('in_network', 0, inNetworkItem(), V2);
    expect(out.violations).toEqual([
      expect.objectContaining({
        ruleId: 'schema_version.content_mismatch',
        severity: 'warn',
        path: 'negotiated_rates[1].provider_groups',
      }),
    ]);
    expect(ticInNetworkSilver.normalize('in_network', 0, inNetworkItem(), V1).violations).toEqual([]);
  });

  it('turns a 1.x provider reference with only a location into one row with the location', () => {
    const record = { provider_group_id: 3, location: 'https://example.com/refs/3.json' };
    const out = ticInNetworkSilver.normalize('provider_references', 0, record, V1);
    expect(out.violations).toEqual([]);
    expect(out.rows.provider_groups).toEqual([
      {
        file_id: 'run-1',
        provider_group_id: '3',
        group_index: 0,
        source: 'provider_references',
        npi: null,
        tin_type: null,
        tin_value: null,
        business_name: null,
        network_name: null,
        location: 'https://example.com/refs/3.json',
        _rescued: null,
      },
    ]);
  });

  it("takes the schema version from the header's version, and leaves it NULL without one", () => {
    const files = (context: SilverContext) => ticInNetworkSilver.fileRows(context).files![0]!;
    expect(files(V2)).toMatchObject({ schema_version: '2.x', schema_version_source: 'header' });
    const noHeader = { ...V2, headers: {} };
    expect(files(noHeader)).toMatchObject({
      version: null,
      schema_version: null,
      schema_version_source: null,
    });
    expect(files({ ...V2, headers: { version: 'v2', last_updated_on: '08/27/2020' } })).toMatchObject({
      schema_version: '2.x',
      last_updated_on: '2020-08-27',
    });
  });
});

describe('TiC contracts: checkFile (header values, object kind `file`)', () => {
  const headers = {
    reporting_entity_name: 'Acme',
    reporting_entity_type: 'health insurance issuer',
    plan_name: 'Plan',
    plan_id_type: 'ein',
    plan_id: '123',
    plan_market_type: 'group',
    last_updated_on: '2024-01-31',
    version: '2.0.0',
  };
  const check = (contract: TicSilverContract, h: Record<string, unknown>) => {
    const result = contract.checkFile!({ ...V2, headers: h });
    return {
      rules: result.violations.map((v) => `${v.ruleId} ${v.severity} ${v.path}`),
      drift: result.drift.map((d) => `${d.kind}:${d.path} ${d.example}`),
    };
  };

  it('finds nothing in the headers of the CMS samples', () => {
    for (const name of readdirSync(TIC_EXAMPLES)) {
      const doc = JSON.parse(readFileSync(`${TIC_EXAMPLES}/${name}`, 'utf8'));
      const contract = name.startsWith('allowed')
        ? ticAllowedAmountsSilver
        : name.startsWith('table')
          ? ticTableOfContentsSilver
          : ticInNetworkSilver;
      const { in_network, provider_references, out_of_network, reporting_structure, ...h } = doc;
      if (name.startsWith('provider-reference')) continue; // a 1.x provider reference file, not a whole file
      expect(check(contract, h), name).toEqual({ rules: [], drift: [] });
    }
  });

  it('counts each wrong type, enum, date and missing required header as a warning with its path', () => {
    expect(
      check(ticInNetworkSilver, {
        ...headers,
        reporting_entity_name: { x: 1 },
        reporting_entity_type: undefined,
        plan_name: true,
        plan_id: 12345,
        plan_market_type: 'Group',
        last_updated_on: 20240101,
        version: ' ',
      }),
    ).toEqual({
      rules: [
        'file.reporting_entity_name.type warn reporting_entity_name',
        'file.reporting_entity_type.required warn reporting_entity_type',
        'file.plan_name.type warn plan_name',
        'file.plan_id.type warn plan_id',
        'file.plan_market_type.enum warn plan_market_type',
        'file.last_updated_on.type warn last_updated_on',
        'file.version.required warn version',
      ],
      drift: [
        'wrong_type:reporting_entity_name {"x":1}',
        'wrong_type:plan_name true',
        'wrong_type:plan_id 12345',
        'wrong_type:last_updated_on 20240101',
      ],
    });
  });

  it('tells a date in another spelling (converted) from one that is no date', () => {
    expect(check(ticInNetworkSilver, { ...headers, last_updated_on: '01/31/2024' }).rules).toEqual([
      'file.last_updated_on.format warn last_updated_on',
    ]);
    expect(check(ticInNetworkSilver, { ...headers, last_updated_on: '2024-02-30' }).rules).toEqual([
      'file.last_updated_on.invalid warn last_updated_on',
    ]);
  });

  it('lets optional plan headers be absent, and checks only the headers a table of contents has', () => {
    const { plan_name, plan_id_type, plan_id, plan_market_type, ...required } = headers;
    expect(check(ticInNetworkSilver, required).rules).toEqual([]);
    expect(check(ticTableOfContentsSilver, { ...required, plan_name: 7 }).rules).toEqual([]);
    expect(check(ticAllowedAmountsSilver, { ...headers, plan_id_type: 'EIN' }).rules).toEqual([
      'file.plan_id_type.enum warn plan_id_type',
    ]);
  });

  it("documents every header rule in the contract's rules table", () => {
    const ids = ticInNetworkSilver.rules.map((r) => r.id);
    for (const id of ['file.reporting_entity_name.type', 'file.last_updated_on.format', 'file.schema'])
      expect(ids).toContain(id);
  });
});

describe('Function: danglingProviderGroupIds', () => {
  const priceRow = (file: string, ids: string[] | null): Row => ({ file_id: file, provider_group_ids: ids });
  const groupRow = (file: string, id: string): Row => ({ file_id: file, provider_group_id: id });

  it('finds nothing when every referenced group exists in the same file', () => {
    expect(
      danglingProviderGroupIds(
        [priceRow('a', ['1', '2']), priceRow('a', null)],
        [groupRow('a', '1'), groupRow('a', '2')],
      ),
    ).toEqual([]);
  });

  it('lists each missing id once per file, sorted, and does not resolve across files', () => {
    const prices = [priceRow('b', ['9', '1']), priceRow('a', ['1', '3']), priceRow('b', ['9'])];
    const groups = [groupRow('a', '1'), groupRow('c', '9')];
    expect(danglingProviderGroupIds(prices, groups)).toEqual([
      { file_id: 'a', provider_group_id: '3' },
      { file_id: 'b', provider_group_id: '1' },
      { file_id: 'b', provider_group_id: '9' },
    ]);
  });
});

describe('Function: silverContractFor', () => {
  it('has a contract for each TiC dataset, handling each of its record streams', () => {
    for (const name of ['tic-in-network', 'tic-allowed-amounts', 'tic-table-of-contents']) {
      const contract = silverContractFor(name)!;
      expect(contract.dataset).toBe(name);
      for (const target of recordTargets(builtInDataset(name))) {
        const out = contract.normalize(target.name, 0, {}, V2);
        expect(
          out.violations.map((v) => v.ruleId),
          target.name,
        ).not.toContain('record.stream');
      }
    }
  });

  it('has none for other datasets', () => {
    expect(silverContractFor('my-csv')).toBeUndefined();
  });

  it('declares the provider group reference that reconciliation checks', () => {
    expect(ticInNetworkSilver.references).toEqual([
      {
        from: { table: 'negotiated_prices', column: 'provider_group_ids' },
        to: { table: 'provider_groups', column: 'provider_group_id' },
      },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('TiC in-network contract on a generated 50 MB file', () => {
  it('derives as many negotiated prices and provider groups as the generator wrote', async () => {
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    const facts = await generateTicInNetwork({ seed: 1, targetBytes: 50_000_000 }, sink);
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
    chunks.length = 0;
    const context = contextOf(doc);
    const counts: Record<string, number> = {};
    const quarantined: RuleViolation[] = [];
    const prices: Row[] = [];
    const groups: Row[] = [];
    for (const stream of ['provider_references', 'in_network']) {
      arr(doc[stream]).forEach((record, i) => {
        const out = ticInNetworkSilver.normalize(stream, i, record, context);
        for (const [table, rows] of Object.entries(out.rows))
          counts[table] = (counts[table] ?? 0) + rows.length;
        quarantined.push(...out.violations.filter((v) => v.severity !== 'warn'));
        prices.push(...(out.rows.negotiated_prices ?? []));
        groups.push(...(out.rows.provider_groups ?? []));
      });
    }
    expect(quarantined).toEqual([]);
    expect(counts.in_network_items).toBe(facts.records.in_network);
    expect(counts.negotiated_prices).toBe(facts.negotiated_prices);
    expect(counts.provider_groups).toBe(facts.provider_groups);
    expect(danglingProviderGroupIds(prices, groups)).toEqual([]);
  });
});
