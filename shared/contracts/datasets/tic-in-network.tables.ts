/**
 * The tables of the tic-in-network silver contract. Their grains are fixed: users rely on them.
 */
import type { TableSpec } from '../silver/table.ts';
import { col, FILE_ID_COLUMN, filesTable, keyCol, RESCUED_COLUMN } from './tic-common.silver.ts';

const FILE_ID = FILE_ID_COLUMN;
const RESCUED = RESCUED_COLUMN;
const ITEM_INDEX = keyCol('item_index', 'BIGINT', 'index of the in_network element in the file');

export const inNetworkTables: readonly TableSpec[] = [
  filesTable(true),
  {
    name: 'in_network_items',
    description: 'One row per in_network element: the billing code and how it is priced.',
    columns: [
      FILE_ID,
      ITEM_INDEX,
      keyCol('item_id', 'VARCHAR', '`<file_id>:<item_index>`, unique across files'),
      ...['negotiation_arrangement', 'name', 'billing_code_type', 'billing_code_type_version'].map((n) =>
        col(n, 'VARCHAR'),
      ),
      ...['billing_code', 'description', 'severity_of_illness'].map((n) => col(n, 'VARCHAR')),
      col('negotiated_rate_count', 'BIGINT', 'elements of negotiated_rates'),
      RESCUED,
    ],
    key: ['file_id', 'item_index'],
  },
  {
    name: 'negotiated_prices',
    description:
      'One row per negotiated price object (in_network[*].negotiated_rates[*].negotiated_prices[*]).',
    columns: [
      FILE_ID,
      ITEM_INDEX,
      keyCol('rate_index', 'BIGINT', 'index in negotiated_rates'),
      keyCol('price_index', 'BIGINT', 'index in negotiated_prices'),
      col('billing_code', 'VARCHAR', "the item's billing_code, denormalized"),
      col('negotiated_type', 'VARCHAR'),
      col('negotiated_rate', 'DOUBLE'),
      col('expiration_date', 'DATE'),
      col('service_code', 'VARCHAR[]'),
      col('billing_class', 'VARCHAR'),
      col('setting', 'VARCHAR'),
      col('billing_code_modifier', 'VARCHAR[]'),
      col('additional_information', 'VARCHAR'),
      col(
        'provider_group_ids',
        'VARCHAR[]',
        "the rate's provider_references (as text) and the generated ids of its inline provider_groups",
      ),
      RESCUED,
    ],
    key: ['file_id', 'item_index', 'rate_index', 'price_index'],
  },
  {
    name: 'provider_groups',
    description:
      'One row per provider group object: from provider_references[*].provider_groups[*], inline in a negotiated rate, ' +
      'or (1.x) a provider_references element that only has a location.',
    columns: [
      FILE_ID,
      keyCol('provider_group_id', 'VARCHAR', 'reference id as text; `inline-<hash>` for inline groups'),
      keyCol('group_index', 'BIGINT', 'index in its provider_groups array'),
      col('source', 'VARCHAR', "'provider_references', 'inline' or 'provider_reference_file'"),
      col('npi', 'BIGINT[]'),
      col('tin_type', 'VARCHAR'),
      col('tin_value', 'VARCHAR'),
      col('business_name', 'VARCHAR'),
      col('network_name', 'VARCHAR[]'),
      col('location', 'VARCHAR', '1.x: URL of the provider-reference file holding the groups'),
      RESCUED,
    ],
    key: ['file_id', 'provider_group_id', 'group_index'],
  },
  {
    name: 'contained_codes',
    description: 'One row per bundled_codes or covered_services entry of an in_network element.',
    columns: [
      FILE_ID,
      ITEM_INDEX,
      keyCol('code_index', 'BIGINT'),
      keyCol('kind', 'VARCHAR', "'bundled' or 'covered'"),
      ...['billing_code_type', 'billing_code_type_version', 'billing_code', 'description'].map((n) =>
        col(n, 'VARCHAR'),
      ),
      RESCUED,
    ],
    key: ['file_id', 'item_index', 'kind', 'code_index'],
  },
];
