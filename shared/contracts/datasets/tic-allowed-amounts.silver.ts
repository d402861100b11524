/**
 * The silver contract of TiC allowed amounts (CMS allowed-amounts.json, schema 2.x): files,
 * out_of_network_items, allowed_amounts, payments and payment_providers.
 */
import { z } from 'zod';
import { integerArray, rescuedJson, text, textArray, toNumber } from '../silver/normalize.ts';
import type { EntitySpec, RuleSpec } from '../silver/record-checker.ts';
import type { Row, TableSpec } from '../silver/table.ts';
import {
  absent,
  BILLING_CODE_TYPES,
  type BuildContext,
  type Built,
  type CrossCheck,
  col,
  FILE_ID_COLUMN,
  FORMAT,
  filesTable,
  isNpi,
  keyCol,
  nonBlank,
  quarantine as q,
  RESCUED_COLUMN,
  SETTINGS,
  schemasFrom,
  TIN_TYPES,
  ticContract,
  warn as w,
} from './tic-common.silver.ts';

const SERVICE_CODE = /^([1-9][0-9]|[0-9][1-9])$/;

/** The record schema, defined once; `cross` declares the cross-field refinements (see `schemasFrom`). */
function defineOutOfNetworkItem(cross: CrossCheck) {
  const PaymentProvider = z.strictObject({
    billed_charge: z.number().min(0),
    npi: z.array(z.number().int().refine(isNpi, FORMAT)).min(1),
  });

  const Payment = z.strictObject({
    allowed_amount: z.number().min(0),
    billing_code_modifier: z.array(nonBlank).min(1).nullish(),
    providers: z.array(PaymentProvider).min(1),
  });

  const AllowedAmount = z
    .strictObject({
      // CMS requires the tin object but none of its fields.
      tin: z.strictObject({ type: z.enum(TIN_TYPES).nullish(), value: z.string().nullish() }),
      service_code: z.array(z.string().regex(SERVICE_CODE)).nullish(),
      billing_class: z.enum(['professional', 'institutional']),
      // Not in allowed-amounts.json, but in the CMS sample files: accepted as a known field.
      setting: z.enum(SETTINGS).nullish(),
      payments: z.array(Payment).min(1),
    })
    .refine(
      (a) => a.billing_class !== 'professional' || !absent(a, 'service_code'),
      cross('required', ['service_code']),
    );

  const OutOfNetworkItem = z.strictObject({
    name: nonBlank,
    billing_code_type: z.enum(BILLING_CODE_TYPES).exclude(['CSTM-ALL']),
    billing_code_type_version: nonBlank,
    billing_code: nonBlank,
    description: nonBlank,
    allowed_amounts: z.array(AllowedAmount),
  });
  return OutOfNetworkItem;
}

const schemas = schemasFrom(defineOutOfNetworkItem);
/** One `out_of_network[*]` record. */
export const OutOfNetworkItem = schemas.reporting;
type OutOfNetworkItem = z.input<typeof OutOfNetworkItem>;

const ENTITIES: readonly EntitySpec[] = [
  { path: '', name: 'out_of_network' },
  { path: 'allowed_amounts', name: 'allowed_amount' },
  { path: 'allowed_amounts.payments', name: 'payment' },
  { path: 'allowed_amounts.payments.providers', name: 'payment_provider' },
];

/** Every rule of the allowed-amounts contract (severities as in the in-network contract). */
export const ALLOWED_AMOUNTS_RULES: readonly RuleSpec[] = [
  q('out_of_network.type', 'The record, or a required field of it, has the wrong JSON type.'),
  q(
    'out_of_network.required',
    'A required field is missing, null or blank: name, billing_code_type, billing_code_type_version, billing_code, description, allowed_amounts.',
  ),
  q('out_of_network.billing_code_type.enum', 'billing_code_type is not one of the CMS billing code types.'),
  q('allowed_amount.type', 'An allowed_amounts element, or a required field of it, has the wrong JSON type.'),
  q('allowed_amount.required', 'An allowed amount lacks tin, billing_class or payments.'),
  q('allowed_amount.tin.type.enum', 'tin.type is not ein or npi.'),
  q('allowed_amount.billing_class.enum', 'billing_class is not professional or institutional.'),
  w(
    'allowed_amount.setting.enum',
    'setting (not in the CMS schema; in its samples) is not inpatient, outpatient or both.',
  ),
  w('allowed_amount.setting.type', 'setting is not a string: null in the row, value kept in _rescued.'),
  w(
    'allowed_amount.service_code.required',
    'billing_class is professional but service_code is missing (CMS requires it then).',
  ),
  w('allowed_amount.service_code.format', 'A service_code is not a two-digit place-of-service code.'),
  w(
    'allowed_amount.service_code.type',
    'service_code is not an array of strings: null in the row, value kept in _rescued.',
  ),
  w('allowed_amount.payments.empty', 'payments is an empty array (CMS: minItems 1).'),
  q('payment.type', 'A payments element, or a required field of it, has the wrong JSON type.'),
  q('payment.required', 'A payment lacks allowed_amount or providers.'),
  w('payment.allowed_amount.numeric_string', 'allowed_amount is a numeric string; converted to a number.'),
  w('payment.allowed_amount.range', 'allowed_amount is negative (CMS: minimum 0).'),
  w('payment.providers.empty', 'providers is an empty array (CMS: minItems 1).'),
  w(
    'payment.billing_code_modifier.empty',
    'billing_code_modifier is an empty array (CMS: minItems 1); null in the row.',
  ),
  w('payment.billing_code_modifier.required', 'A billing_code_modifier entry is blank; dropped.'),
  w(
    'payment.billing_code_modifier.type',
    'billing_code_modifier is not an array of strings: null in the row, value kept in _rescued.',
  ),
  q('payment_provider.type', 'A providers element, or a required field of it, has the wrong JSON type.'),
  q('payment_provider.required', 'A provider lacks billed_charge or npi.'),
  w(
    'payment_provider.billed_charge.numeric_string',
    'billed_charge is a numeric string; converted to a number.',
  ),
  w('payment_provider.billed_charge.range', 'billed_charge is negative (CMS: minimum 0).'),
  w('payment_provider.npi.format', 'An NPI is not 10 digits (and not the [0] "no NPI" placeholder).'),
  w('payment_provider.npi.numeric_string', 'An NPI is written as a string; converted to a number.'),
  w('payment_provider.npi.empty', 'npi is an empty array (CMS: minItems 1); null in the row.'),
];

const ITEM_INDEX = keyCol('item_index', 'BIGINT', 'index of the out_of_network element in the file');
const AMOUNT_INDEX = keyCol('amount_index', 'BIGINT', 'index in allowed_amounts');
const PAYMENT_INDEX = keyCol('payment_index', 'BIGINT', 'index in payments');

export const allowedAmountsTables: readonly TableSpec[] = [
  filesTable(true),
  {
    name: 'out_of_network_items',
    description: 'One row per out_of_network element: the billing code whose allowed amounts follow.',
    columns: [
      FILE_ID_COLUMN,
      ITEM_INDEX,
      keyCol('item_id', 'VARCHAR', '`<file_id>:<item_index>`, unique across files'),
      ...['name', 'billing_code_type', 'billing_code_type_version', 'billing_code', 'description'].map((n) =>
        col(n, 'VARCHAR'),
      ),
      col('allowed_amount_count', 'BIGINT', 'elements of allowed_amounts'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'item_index'],
  },
  {
    name: 'allowed_amounts',
    description: 'One row per allowed_amounts element: who was paid (tin), where and for which class.',
    columns: [
      FILE_ID_COLUMN,
      ITEM_INDEX,
      AMOUNT_INDEX,
      col('billing_code', 'VARCHAR', "the item's billing_code, denormalized"),
      col('tin_type', 'VARCHAR'),
      col('tin_value', 'VARCHAR'),
      col('service_code', 'VARCHAR[]'),
      col('billing_class', 'VARCHAR'),
      col('setting', 'VARCHAR'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'item_index', 'amount_index'],
  },
  {
    name: 'payments',
    description: 'One row per payments element: an allowed amount and its modifiers.',
    columns: [
      FILE_ID_COLUMN,
      ITEM_INDEX,
      AMOUNT_INDEX,
      PAYMENT_INDEX,
      col('allowed_amount', 'DOUBLE'),
      col('billing_code_modifier', 'VARCHAR[]'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'item_index', 'amount_index', 'payment_index'],
  },
  {
    name: 'payment_providers',
    description: 'One row per providers element of a payment: the billed charge and the NPIs that billed it.',
    columns: [
      FILE_ID_COLUMN,
      ITEM_INDEX,
      AMOUNT_INDEX,
      PAYMENT_INDEX,
      keyCol('provider_index', 'BIGINT', 'index in providers'),
      col('billed_charge', 'DOUBLE'),
      col('npi', 'BIGINT[]'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'item_index', 'amount_index', 'payment_index', 'provider_index'],
  },
];

function buildItem(item: OutOfNetworkItem, { fileId, recordIndex, rescued }: BuildContext): Built {
  const billingCode = text(item.billing_code);
  const amounts: Row[] = [];
  const payments: Row[] = [];
  const providers: Row[] = [];
  const list = item.allowed_amounts;
  for (let a = 0; a < list.length; a++) {
    const amount = list[a]!;
    const at = `allowed_amounts[${a}]`;
    amounts.push({
      file_id: fileId,
      item_index: recordIndex,
      amount_index: a,
      billing_code: billingCode,
      tin_type: text(amount.tin.type),
      tin_value: text(amount.tin.value),
      service_code: textArray(amount.service_code),
      billing_class: text(amount.billing_class),
      setting: text(amount.setting),
      _rescued: rescuedJson(rescued, at),
    });
    for (let p = 0; p < amount.payments.length; p++) {
      const payment = amount.payments[p]!;
      const pat = `${at}.payments[${p}]`;
      payments.push({
        file_id: fileId,
        item_index: recordIndex,
        amount_index: a,
        payment_index: p,
        allowed_amount: toNumber(payment.allowed_amount),
        billing_code_modifier: textArray(payment.billing_code_modifier),
        _rescued: rescuedJson(rescued, pat),
      });
      for (let v = 0; v < payment.providers.length; v++) {
        const provider = payment.providers[v]!;
        providers.push({
          file_id: fileId,
          item_index: recordIndex,
          amount_index: a,
          payment_index: p,
          provider_index: v,
          billed_charge: toNumber(provider.billed_charge),
          npi: integerArray(provider.npi),
          _rescued: rescuedJson(rescued, `${pat}.providers[${v}]`),
        });
      }
    }
  }
  const itemRow: Row = {
    file_id: fileId,
    item_index: recordIndex,
    item_id: `${fileId}:${recordIndex}`,
    name: text(item.name),
    billing_code_type: text(item.billing_code_type),
    billing_code_type_version: text(item.billing_code_type_version),
    billing_code: billingCode,
    description: text(item.description),
    allowed_amount_count: list.length,
    _rescued: rescuedJson(rescued, ''),
  };
  return {
    rows: {
      out_of_network_items: [itemRow],
      allowed_amounts: amounts,
      payments,
      payment_providers: providers,
    },
  };
}

/** The tic-allowed-amounts silver contract. Record stream: out_of_network. */
export const ticAllowedAmountsSilver = ticContract({
  dataset: 'tic-allowed-amounts',
  // Bump when normalization changes the rows a record yields (see SilverContract.contractVersion).
  contractVersion: 'tic-allowed-amounts/3',
  tables: allowedAmountsTables,
  rules: ALLOWED_AMOUNTS_RULES,
  withPlan: true,
  streams: {
    out_of_network: {
      schema: OutOfNetworkItem,
      validator: schemas.validating,
      entities: ENTITIES,
      build: buildItem,
    },
  },
});
