/**
 * The silver contract of TiC in-network rates: files, in_network_items, negotiated_prices,
 * provider_groups and contained_codes, one row per object of the grain each table names.
 * Schemas and rules: ./tic-in-network.rules.ts; tables: ./tic-in-network.tables.ts.
 */
import {
  integerArray,
  parseDate,
  type RescuedValues,
  rescuedJson,
  scalarText,
  stableId,
  text,
  textArray,
  toNumber,
} from '../silver/normalize.ts';
import type { Row } from '../silver/table.ts';
import { type BuildContext, type Built, ticContract } from './tic-common.silver.ts';
import {
  IN_NETWORK_ENTITIES,
  IN_NETWORK_RULES,
  IN_NETWORK_VALIDATORS,
  InNetworkItem,
  PROVIDER_GROUP_ENTITIES,
  PROVIDER_REFERENCE_ENTITIES,
  type ProviderGroup,
  ProviderGroupRecord,
  ProviderReference,
} from './tic-in-network.rules.ts';
import { inNetworkTables } from './tic-in-network.tables.ts';

export { inNetworkTables };

/** The id of an inline provider group: deterministic, so a rebuild gives the same id. */
export const inlineGroupId = (fileId: string, item: number, rate: number, group: number): string =>
  stableId('inline-', [fileId, item, rate, group]);

function groupRow(
  fileId: string,
  id: string,
  groupIndex: number,
  source: string,
  group: ProviderGroup | undefined,
  networkName: string[] | null,
  location: string | null,
  rescued: string | null,
): Row {
  const tin = group?.tin;
  return {
    file_id: fileId,
    provider_group_id: id,
    group_index: groupIndex,
    source,
    npi: integerArray(group?.npi),
    tin_type: text(tin?.type),
    tin_value: text(tin?.value),
    business_name: text(tin?.business_name),
    network_name: networkName,
    location,
    _rescued: rescued,
  };
}

function buildItem(item: InNetworkItem, { fileId, recordIndex, rescued }: BuildContext): Built {
  const tracking = rescued.size > 0;
  const billingCode = text(item.billing_code);
  const prices: Row[] = [];
  const groups: Row[] = [];
  let inlineAt: string | undefined;
  const rates = item.negotiated_rates;
  for (let r = 0; r < rates.length; r++) {
    const rate = rates[r]!;
    const ratePath = tracking ? `negotiated_rates[${r}]` : '';
    const ids: string[] = [];
    for (const ref of rate.provider_references ?? []) {
      const id = scalarText(ref);
      if (id !== null) ids.push(id);
    }
    const inline = rate.provider_groups ?? [];
    if (inline.length > 0) inlineAt ??= `negotiated_rates[${r}].provider_groups`;
    for (let g = 0; g < inline.length; g++) {
      const id = inlineGroupId(fileId, recordIndex, r, g);
      ids.push(id);
      const rescuedText = tracking ? rescuedJson(rescued, `${ratePath}.provider_groups[${g}]`) : null;
      groups.push(groupRow(fileId, id, g, 'inline', inline[g], null, null, rescuedText));
    }
    const groupIds = ids.length > 0 ? ids : null;
    const list = rate.negotiated_prices;
    for (let p = 0; p < list.length; p++) {
      const price = list[p]!;
      prices.push({
        file_id: fileId,
        item_index: recordIndex,
        rate_index: r,
        price_index: p,
        billing_code: billingCode,
        negotiated_type: text(price.negotiated_type),
        negotiated_rate: toNumber(price.negotiated_rate),
        expiration_date: parseDate(price.expiration_date),
        service_code: textArray(price.service_code),
        billing_class: text(price.billing_class),
        setting: text(price.setting),
        billing_code_modifier: textArray(price.billing_code_modifier),
        additional_information: text(price.additional_information),
        // Shared by the rate's prices: rows are read, never mutated.
        provider_group_ids: groupIds,
        _rescued: tracking ? rescuedJson(rescued, ratePath, `${ratePath}.negotiated_prices[${p}]`) : null,
      });
    }
  }
  const rows = {
    in_network_items: [
      {
        file_id: fileId,
        item_index: recordIndex,
        item_id: `${fileId}:${recordIndex}`,
        negotiation_arrangement: text(item.negotiation_arrangement),
        name: text(item.name),
        billing_code_type: text(item.billing_code_type),
        billing_code_type_version: text(item.billing_code_type_version),
        billing_code: billingCode,
        description: text(item.description),
        severity_of_illness: text(item.severity_of_illness),
        negotiated_rate_count: rates.length,
        _rescued: tracking ? rescuedJson(rescued, '') : null,
      },
    ],
    negotiated_prices: prices,
    provider_groups: groups,
    contained_codes: containedCodes(item, fileId, recordIndex, rescued),
  };
  // Inline provider groups are a schema 1.x shape.
  return inlineAt === undefined ? { rows } : { rows, contentMajor: 1, evidencePath: inlineAt };
}

function containedCodes(
  item: InNetworkItem,
  fileId: string,
  itemIndex: number,
  rescued: RescuedValues,
): Row[] {
  const rows: Row[] = [];
  for (const [field, kind] of [
    ['bundled_codes', 'bundled'],
    ['covered_services', 'covered'],
  ] as const) {
    const codes = item[field] ?? [];
    for (let c = 0; c < codes.length; c++) {
      const code = codes[c]!;
      rows.push({
        file_id: fileId,
        item_index: itemIndex,
        code_index: c,
        kind,
        billing_code_type: text(code.billing_code_type),
        billing_code_type_version: text(code.billing_code_type_version),
        billing_code: text(code.billing_code),
        description: text(code.description),
        _rescued: rescuedJson(rescued, `${field}[${c}]`),
      });
    }
  }
  return rows;
}

function buildReference(ref: ProviderReference, { fileId, rescued }: BuildContext): Built {
  const id = scalarText(ref.provider_group_id)!;
  const network = textArray(ref.network_name);
  const location = text(ref.location);
  const groups = ref.provider_groups ?? [];
  const rows: Row[] = [];
  for (let g = 0; g < groups.length; g++) {
    const rescuedText = rescuedJson(rescued, '', `provider_groups[${g}]`);
    rows.push(groupRow(fileId, id, g, 'provider_references', groups[g], network, location, rescuedText));
  }
  // 1.x: the groups live in the file at `location`; this row is what the reference resolves to here.
  if (rows.length === 0 && location !== null) {
    rows.push(
      groupRow(fileId, id, 0, 'provider_references', undefined, network, location, rescuedJson(rescued, '')),
    );
  }
  const built = { rows: { provider_groups: rows } };
  return location === null ? built : { ...built, contentMajor: 1, evidencePath: 'location' };
}

/**
 * A record of a standalone provider-reference file (1.x, what a `location` points at). The file is
 * one reference; its groups take the file's URI as provider_group_id, so they join to the
 * in-network file's `provider_groups.location`.
 */
function buildStandaloneGroup(
  group: ProviderGroup,
  { fileId, recordIndex, rescued, context }: BuildContext,
): Built {
  const row = groupRow(
    fileId,
    context.sourceUri,
    recordIndex,
    'provider_reference_file',
    group,
    null,
    null,
    rescuedJson(rescued, ''),
  );
  return { rows: { provider_groups: [row] }, contentMajor: 1, evidencePath: '$' };
}

/** The tic-in-network silver contract. Record streams: in_network, provider_references, provider_groups. */
export const ticInNetworkSilver = ticContract({
  dataset: 'tic-in-network',
  // Bump when normalization changes the rows a record yields (see SilverContract.contractVersion).
  contractVersion: 'tic-in-network/3',
  tables: inNetworkTables,
  rules: IN_NETWORK_RULES,
  withPlan: true,
  streams: {
    in_network: {
      schema: InNetworkItem,
      validator: IN_NETWORK_VALIDATORS.InNetworkItem,
      entities: IN_NETWORK_ENTITIES,
      build: buildItem,
    },
    provider_references: {
      schema: ProviderReference,
      validator: IN_NETWORK_VALIDATORS.ProviderReference,
      entities: PROVIDER_REFERENCE_ENTITIES,
      build: buildReference,
    },
    provider_groups: {
      schema: ProviderGroupRecord,
      validator: IN_NETWORK_VALIDATORS.ProviderGroup,
      entities: PROVIDER_GROUP_ENTITIES,
      build: buildStandaloneGroup,
    },
  },
  references: [
    {
      from: { table: 'negotiated_prices', column: 'provider_group_ids' },
      to: { table: 'provider_groups', column: 'provider_group_id' },
    },
  ],
});

/** The rules of the tic-in-network contract (id, severity, description), CMS rules first. */
export const inNetworkRules = ticInNetworkSilver.rules;

/**
 * Provider group ids referenced by negotiated prices that no provider_groups row of the same file
 * defines: referential integrity of the in-network tables. Sorted by file, then id.
 */
export function danglingProviderGroupIds(
  negotiatedPrices: readonly Row[],
  providerGroups: readonly Row[],
): { file_id: string; provider_group_id: string }[] {
  const known = new Set<string>();
  for (const g of providerGroups) known.add(`${String(g.file_id)}\u0000${String(g.provider_group_id)}`);
  const dangling = new Map<string, { file_id: string; provider_group_id: string }>();
  for (const p of negotiatedPrices) {
    const ids = p.provider_group_ids;
    if (!Array.isArray(ids)) continue;
    for (const id of ids) {
      const k = `${String(p.file_id)}\u0000${String(id)}`;
      if (!known.has(k) && !dangling.has(k))
        dangling.set(k, { file_id: String(p.file_id), provider_group_id: String(id) });
    }
  }
  return [...dangling.values()].sort(
    (a, b) => a.file_id.localeCompare(b.file_id) || a.provider_group_id.localeCompare(b.provider_group_id),
  );
}
