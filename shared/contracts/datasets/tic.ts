import type { DatasetConfigInput } from '../dataset-config.ts';

/** Header scalars common to every TiC file, from the CMS schemas (schema version 2.x). */
const ticHeaders = (names: readonly string[]) => names.map((path) => ({ path }));

const planHeaders = [
  'reporting_entity_name',
  'reporting_entity_type',
  'plan_name',
  'issuer_name',
  'plan_sponsor_name',
  'plan_id_type',
  'plan_id',
  'plan_market_type',
  'last_updated_on',
  'version',
] as const;

/** In-network rates: the large files (1 GB – hundreds of GB). */
export const ticInNetwork: DatasetConfigInput = {
  name: 'tic-in-network',
  description: 'Transparency in Coverage in-network rates (CMS schema in-network-rates.json)',
  format: 'json',
  // The CMS schema requires `in_network`; `provider_references` is optional (inline provider groups).
  records: [{ path: 'in_network[*]' }, { path: 'provider_references[*]', required: false }],
  headers: ticHeaders(planHeaders),
};

/** Allowed amounts for out-of-network services. */
export const ticAllowedAmounts: DatasetConfigInput = {
  name: 'tic-allowed-amounts',
  description: 'Transparency in Coverage allowed amounts (CMS schema allowed-amounts.json)',
  format: 'json',
  records: [{ path: 'out_of_network[*]' }],
  headers: ticHeaders(planHeaders),
};

/** Table of contents: lists the in-network and allowed-amount files of a reporting entity. */
export const ticTableOfContents: DatasetConfigInput = {
  name: 'tic-table-of-contents',
  description: 'Transparency in Coverage table of contents (CMS schema table-of-contents.json)',
  format: 'json',
  records: [{ path: 'reporting_structure[*]' }],
  headers: ticHeaders(['reporting_entity_name', 'reporting_entity_type', 'last_updated_on', 'version']),
};
