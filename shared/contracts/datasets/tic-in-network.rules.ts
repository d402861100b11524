/**
 * TiC in-network rates: zod schemas of the record streams, agreeing with CMS in-network-rates.json
 * (schema 2.x, plus the 1.x shapes still seen: inline `provider_groups` and `location` references),
 * and the rules table that names every check and its severity.
 */
import { z } from 'zod';
import { text } from '../silver/normalize.ts';
import type { EntitySpec, RuleSpec } from '../silver/record-checker.ts';
import {
  absent,
  BILLING_CODE_TYPES,
  type CrossCheck,
  FORMAT,
  isNpi,
  nonBlank,
  quarantine as q,
  SETTINGS,
  schemasFrom,
  TIN_TYPES,
  warn as w,
} from './tic-common.silver.ts';

export const NEGOTIATION_ARRANGEMENTS = ['ffs', 'bundle', 'capitation'] as const;
export const NEGOTIATED_TYPES = ['negotiated', 'derived', 'fee schedule', 'percentage', 'per diem'] as const;
export const BILLING_CLASSES = ['professional', 'institutional', 'both'] as const;

/** CMS place-of-service codes (`service_code` pattern), or the CSTM-00 catch-all. */
const SERVICE_CODE = /^(0[1-9]|1[0-9]|2[0-7]|3[1-4]|4[1-2]|49|5[0-8]|6[0-2]|6[5-6]|7[1-2]|81|99|CSTM-00)$/;
const EIN = /^[0-9]{2}-?[0-9]{7}$/;
const NPI_TEXT = /^[1-9][0-9]{9}$/;

/**
 * The record schemas, defined once; `cross` declares the cross-field refinements (see `schemasFrom`).
 * A `provider_groups[*]` record of a standalone 1.x provider-reference file (the target of a `location`)
 * is a ProviderGroup.
 */
function defineSchemas(cross: CrossCheck) {
  const ProviderGroup = z.strictObject({
    npi: z.array(z.number().int().refine(isNpi, FORMAT)).min(1),
    tin: z
      .strictObject({
        type: z.enum(TIN_TYPES),
        value: nonBlank,
        business_name: z.string().nullish(),
      })
      .refine(
        (tin) => {
          if (typeof tin.value !== 'string') return true;
          return tin.type === 'ein' ? EIN.test(tin.value) : tin.type !== 'npi' || NPI_TEXT.test(tin.value);
        },
        cross('format', ['value']),
      )
      .refine(
        (tin) => tin.type !== 'ein' || text(tin.business_name) !== null,
        cross('required', ['business_name']),
      ),
  });

  const NegotiatedPrice = z
    .strictObject({
      negotiated_type: z.enum(NEGOTIATED_TYPES),
      negotiated_rate: z.number().positive(),
      expiration_date: z.iso.date(),
      service_code: z.array(z.string().regex(SERVICE_CODE)).nullish(),
      billing_class: z.enum(BILLING_CLASSES),
      setting: z.enum(SETTINGS),
      billing_code_modifier: z.array(z.string()).min(1).nullish(),
      additional_information: z.string().nullish(),
    })
    .refine(
      (p) => p.billing_class !== 'professional' || !absent(p, 'service_code'),
      cross('required', ['service_code']),
    );

  const NegotiatedRate = z
    .strictObject({
      negotiated_prices: z.array(NegotiatedPrice).min(1),
      provider_references: z.array(z.number()).min(1).nullish(),
      /** Schema 1.x: provider groups inline instead of referenced. */
      provider_groups: z.array(ProviderGroup).min(1).nullish(),
    })
    .refine(
      (r) => !absent(r, 'provider_references') || !absent(r, 'provider_groups'),
      cross('required', ['provider_references']),
    );

  const ContainedCode = z.strictObject({
    billing_code_type: z.enum(BILLING_CODE_TYPES),
    billing_code_type_version: nonBlank,
    billing_code: nonBlank,
    description: nonBlank,
  });

  /** One `in_network[*]` record. */
  const InNetworkItem = z.strictObject({
    negotiation_arrangement: z.enum(NEGOTIATION_ARRANGEMENTS),
    name: nonBlank,
    billing_code_type: z.enum(BILLING_CODE_TYPES),
    billing_code_type_version: nonBlank,
    billing_code: nonBlank,
    description: nonBlank,
    severity_of_illness: z.string().nullish(),
    negotiated_rates: z.array(NegotiatedRate).min(1),
    covered_services: z.array(ContainedCode).min(1).nullish(),
    bundled_codes: z.array(ContainedCode).min(1).nullish(),
  });

  /** One `provider_references[*]` record: groups inline (2.x) or, in 1.x, a `location` to fetch them from. */
  const ProviderReference = z
    .strictObject({
      provider_group_id: z.number().int(),
      network_name: z.array(nonBlank).nullish(),
      provider_groups: z.array(ProviderGroup).min(1).nullish(),
      /** Schema 1.x: URL of a provider-reference file holding the groups. */
      location: nonBlank.nullish(),
    })
    .refine(
      (r) => !absent(r, 'provider_groups') || !absent(r, 'location'),
      cross('required', ['provider_groups']),
    )
    .refine((r) => !absent(r, 'network_name') || !absent(r, 'location'), cross('required', ['network_name']));
  return { InNetworkItem, NegotiatedRate, NegotiatedPrice, ProviderGroup, ContainedCode, ProviderReference };
}

const schemas = schemasFrom(defineSchemas);
export const { InNetworkItem, ProviderReference } = schemas.reporting;
export const ProviderGroupRecord = schemas.reporting.ProviderGroup;
/** The schemas for validity only, in the shape of `schemas.reporting`. */
export const IN_NETWORK_VALIDATORS = schemas.validating;

type Schemas = typeof schemas.reporting;
export type InNetworkItem = z.input<Schemas['InNetworkItem']>;
export type NegotiatedRate = z.input<Schemas['NegotiatedRate']>;
export type NegotiatedPrice = z.input<Schemas['NegotiatedPrice']>;
export type ProviderGroup = z.input<Schemas['ProviderGroup']>;
export type ContainedCode = z.input<Schemas['ContainedCode']>;
export type ProviderReference = z.input<Schemas['ProviderReference']>;

export const IN_NETWORK_ENTITIES: readonly EntitySpec[] = [
  { path: '', name: 'in_network' },
  { path: 'negotiated_rates', name: 'negotiated_rate' },
  { path: 'negotiated_rates.negotiated_prices', name: 'negotiated_price' },
  { path: 'negotiated_rates.provider_groups', name: 'provider_group' },
  { path: 'bundled_codes', name: 'contained_code' },
  { path: 'covered_services', name: 'contained_code' },
];
export const PROVIDER_REFERENCE_ENTITIES: readonly EntitySpec[] = [
  { path: '', name: 'provider_reference' },
  { path: 'provider_groups', name: 'provider_group' },
];
export const PROVIDER_GROUP_ENTITIES: readonly EntitySpec[] = [{ path: '', name: 'provider_group' }];

/**
 * Every rule of the in-network contract. Quarantine: the record is structurally unusable (a required
 * field missing or blank, a wrong type, a value outside a CMS enum). Warn: the rows are still right,
 * or were made right by a documented normalization.
 */
export const IN_NETWORK_RULES: readonly RuleSpec[] = [
  q('in_network.type', 'The record, or a required field of it, has the wrong JSON type.'),
  q(
    'in_network.required',
    'A required field is missing, null or blank: negotiation_arrangement, name, billing_code_type, billing_code_type_version, billing_code, description, negotiated_rates.',
  ),
  q('in_network.negotiation_arrangement.enum', 'negotiation_arrangement is not ffs, bundle or capitation.'),
  q('in_network.billing_code_type.enum', 'billing_code_type is not one of the CMS billing code types.'),
  w(
    'in_network.negotiated_rates.empty',
    'negotiated_rates is an empty array (CMS: minItems 1); the item has no prices.',
  ),
  w('in_network.bundled_codes.empty', 'bundled_codes is an empty array (CMS: minItems 1).'),
  w('in_network.covered_services.empty', 'covered_services is an empty array (CMS: minItems 1).'),
  w(
    'in_network.severity_of_illness.type',
    'severity_of_illness is not a string: null in the row, value kept in _rescued.',
  ),
  q(
    'contained_code.type',
    'A bundled_codes/covered_services entry, or a field of it, has the wrong JSON type.',
  ),
  q(
    'contained_code.required',
    'A bundled_codes/covered_services entry lacks billing_code_type, billing_code_type_version, billing_code or description.',
  ),
  q(
    'contained_code.billing_code_type.enum',
    'A contained code has a billing_code_type outside the CMS enum.',
  ),
  q('negotiated_rate.type', 'A negotiated_rates element, or a field of it, has the wrong JSON type.'),
  q(
    'negotiated_rate.required',
    'A negotiated rate lacks negotiated_prices, or has neither provider_references nor (1.x) provider_groups.',
  ),
  w('negotiated_rate.negotiated_prices.empty', 'negotiated_prices is an empty array (CMS: minItems 1).'),
  w(
    'negotiated_rate.provider_references.empty',
    'provider_references is an empty array (CMS: minItems 1): the prices apply to no provider.',
  ),
  w('negotiated_rate.provider_groups.empty', 'Inline provider_groups is an empty array.'),
  w(
    'negotiated_rate.provider_references.numeric_string',
    'A provider reference id is written as a string; read as the id.',
  ),
  q('negotiated_price.type', 'A negotiated price, or a required field of it, has the wrong JSON type.'),
  q(
    'negotiated_price.required',
    'A negotiated price lacks negotiated_type, negotiated_rate, expiration_date, billing_class or setting.',
  ),
  q(
    'negotiated_price.negotiated_type.enum',
    'negotiated_type is not negotiated, derived, fee schedule, percentage or per diem.',
  ),
  q('negotiated_price.billing_class.enum', 'billing_class is not professional, institutional or both.'),
  q('negotiated_price.setting.enum', 'setting is not inpatient, outpatient or both.'),
  q('negotiated_price.negotiated_rate.type', 'negotiated_rate is neither a number nor a numeric string.'),
  w(
    'negotiated_price.negotiated_rate.numeric_string',
    'negotiated_rate is a numeric string; converted to a number.',
  ),
  w('negotiated_price.negotiated_rate.range', 'negotiated_rate is not above 0 (CMS: exclusiveMinimum 0).'),
  w(
    'negotiated_price.expiration_date.format',
    'expiration_date is a date but not YYYY-MM-DD (e.g. MM/DD/YYYY); converted.',
  ),
  q(
    'negotiated_price.expiration_date.invalid',
    'expiration_date is not a date (or not a real one, e.g. 2024-02-30).',
  ),
  w(
    'negotiated_price.service_code.required',
    'billing_class is professional but service_code is missing (CMS requires it then).',
  ),
  w(
    'negotiated_price.service_code.format',
    'A service_code is not a CMS place-of-service code (01–99 list) nor CSTM-00.',
  ),
  w(
    'negotiated_price.service_code.type',
    'service_code is not an array of strings: null in the row, value kept in _rescued.',
  ),
  w(
    'negotiated_price.billing_code_modifier.type',
    'billing_code_modifier is not an array of strings: null in the row, value kept in _rescued.',
  ),
  w(
    'negotiated_price.billing_code_modifier.empty',
    'billing_code_modifier is an empty array (CMS: minItems 1); null in the row.',
  ),
  w(
    'negotiated_price.additional_information.type',
    'additional_information is not a string: null in the row, value kept in _rescued.',
  ),
  q('provider_reference.type', 'A provider_references element, or a field of it, has the wrong JSON type.'),
  q(
    'provider_reference.required',
    'A provider reference lacks provider_group_id, or has neither provider_groups nor (1.x) location.',
  ),
  w(
    'provider_reference.provider_group_id.numeric_string',
    'provider_group_id is written as a string; read as the id.',
  ),
  w(
    'provider_reference.network_name.required',
    'A 2.x provider reference lacks network_name (CMS 2.x requires it).',
    2,
  ),
  w('provider_reference.provider_groups.empty', 'provider_groups is an empty array (CMS: minItems 1).'),
  q('provider_group.type', 'A provider group, or a field of it (npi, tin), has the wrong JSON type.'),
  q('provider_group.required', 'A provider group lacks npi or tin, or its tin lacks type or value.'),
  q('provider_group.tin.type.enum', 'tin.type is not ein or npi.'),
  w(
    'provider_group.tin.value.format',
    'tin.value does not match its type: EIN ^[0-9]{2}-?[0-9]{7}$, NPI ^[1-9][0-9]{9}$.',
  ),
  w('provider_group.tin.business_name.required', 'An EIN tin lacks business_name (CMS 2.x requires it).', 2),
  w(
    'provider_group.tin.business_name.type',
    'tin.business_name is not a string: null in the row, value kept in _rescued.',
  ),
  w('provider_group.npi.format', 'An NPI is not 10 digits (and not the [0] "no NPI" placeholder).'),
  w('provider_group.npi.numeric_string', 'An NPI is written as a string; converted to a number.'),
  w('provider_group.npi.empty', 'npi is an empty array (CMS: minItems 1); null in the row.'),
];
