/**
 * The silver contract of TiC tables of contents (CMS table-of-contents.json, schema 2.x): files,
 * reporting_plans, in_network_files and allowed_amount_files.
 */
import { z } from 'zod';
import { rescuedJson, text } from '../silver/normalize.ts';
import type { EntitySpec, RuleSpec } from '../silver/record-checker.ts';
import type { Row, TableSpec } from '../silver/table.ts';
import {
  absent,
  type BuildContext,
  type Built,
  type CrossCheck,
  col,
  FILE_ID_COLUMN,
  filesTable,
  keyCol,
  nonBlank,
  PLAN_ID_TYPES,
  PLAN_MARKET_TYPES,
  quarantine as q,
  RESCUED_COLUMN,
  schemasFrom,
  ticContract,
  warn as w,
} from './tic-common.silver.ts';

/** The record schema, defined once; `cross` declares the cross-field refinements (see `schemasFrom`). */
function defineReportingStructure(cross: CrossCheck) {
  const FileLocation = z.strictObject({
    description: nonBlank,
    location: nonBlank.regex(/^https:\/\//),
  });

  const ReportingPlan = z
    .strictObject({
      plan_name: nonBlank,
      plan_id_type: z.enum(PLAN_ID_TYPES),
      plan_id: nonBlank,
      plan_market_type: z.enum(PLAN_MARKET_TYPES),
      issuer_name: nonBlank,
      plan_sponsor_name: z.string().nullish(),
    })
    .refine(
      (p) => p.plan_id_type !== 'ein' || text(p.plan_sponsor_name) !== null,
      cross('required', ['plan_sponsor_name']),
    );

  const ReportingStructure = z
    .strictObject({
      reporting_plans: z.array(ReportingPlan).min(1),
      in_network_files: z.array(FileLocation).min(1).nullish(),
      allowed_amount_file: FileLocation.nullish(),
    })
    .refine(
      (s) => !absent(s, 'in_network_files') || !absent(s, 'allowed_amount_file'),
      cross('required', ['in_network_files']),
    );
  return ReportingStructure;
}

const schemas = schemasFrom(defineReportingStructure);
/** One `reporting_structure[*]` record. */
export const ReportingStructure = schemas.reporting;
type ReportingStructure = z.input<typeof ReportingStructure>;

const ENTITIES: readonly EntitySpec[] = [
  { path: '', name: 'reporting_structure' },
  { path: 'reporting_plans', name: 'reporting_plan' },
  { path: 'in_network_files', name: 'in_network_file' },
  { path: 'allowed_amount_file', name: 'allowed_amount_file' },
];

/** Every rule of the table-of-contents contract. */
export const TABLE_OF_CONTENTS_RULES: readonly RuleSpec[] = [
  q('reporting_structure.type', 'The record, or a required field of it, has the wrong JSON type.'),
  q(
    'reporting_structure.required',
    'A reporting structure lacks reporting_plans, or has neither in_network_files nor allowed_amount_file.',
  ),
  w('reporting_structure.reporting_plans.empty', 'reporting_plans is an empty array (CMS: minItems 1).'),
  w('reporting_structure.in_network_files.empty', 'in_network_files is an empty array (CMS: minItems 1).'),
  q('reporting_plan.type', 'A reporting_plans element, or a field of it, has the wrong JSON type.'),
  q(
    'reporting_plan.required',
    'A reporting plan lacks plan_name, plan_id_type, plan_id, plan_market_type or issuer_name.',
  ),
  q('reporting_plan.plan_id_type.enum', 'plan_id_type is not ein or hios.'),
  q('reporting_plan.plan_market_type.enum', 'plan_market_type is not group or individual.'),
  w(
    'reporting_plan.plan_sponsor_name.required',
    'plan_id_type is ein but plan_sponsor_name is missing (CMS requires it then).',
  ),
  w(
    'reporting_plan.plan_sponsor_name.type',
    'plan_sponsor_name is not a string: null in the row, value kept in _rescued.',
  ),
  q('in_network_file.type', 'An in_network_files element, or a field of it, has the wrong JSON type.'),
  q('in_network_file.required', 'An in-network file entry lacks description or location.'),
  w('in_network_file.location.format', 'An in-network file location is not an https:// URL.'),
  q('allowed_amount_file.type', 'A field of allowed_amount_file has the wrong JSON type.'),
  q('allowed_amount_file.required', 'allowed_amount_file lacks description or location.'),
  w('allowed_amount_file.location.format', 'The allowed-amount file location is not an https:// URL.'),
];

const STRUCTURE_INDEX = keyCol('structure_index', 'BIGINT', 'index of the reporting_structure element');

export const tableOfContentsTables: readonly TableSpec[] = [
  filesTable(false),
  {
    name: 'reporting_plans',
    description: 'One row per plan of each reporting_structure element.',
    columns: [
      FILE_ID_COLUMN,
      STRUCTURE_INDEX,
      keyCol('plan_index', 'BIGINT', 'index in reporting_plans'),
      ...['plan_name', 'plan_id_type', 'plan_id', 'plan_market_type', 'issuer_name', 'plan_sponsor_name'].map(
        (n) => col(n, 'VARCHAR'),
      ),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'structure_index', 'plan_index'],
  },
  {
    name: 'in_network_files',
    description: 'One row per in_network_files entry of each reporting_structure element.',
    columns: [
      FILE_ID_COLUMN,
      STRUCTURE_INDEX,
      keyCol('file_index', 'BIGINT', 'index in in_network_files'),
      col('description', 'VARCHAR'),
      col('location', 'VARCHAR'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'structure_index', 'file_index'],
  },
  {
    name: 'allowed_amount_files',
    description: 'One row per reporting_structure element that has an allowed_amount_file.',
    columns: [
      FILE_ID_COLUMN,
      STRUCTURE_INDEX,
      col('description', 'VARCHAR'),
      col('location', 'VARCHAR'),
      RESCUED_COLUMN,
    ],
    key: ['file_id', 'structure_index'],
  },
];

function buildStructure(
  structure: ReportingStructure,
  { fileId, recordIndex, rescued }: BuildContext,
): Built {
  // The structure has no row: its unknown fields go with each of its plans.
  const plans: Row[] = structure.reporting_plans.map((plan, i) => ({
    file_id: fileId,
    structure_index: recordIndex,
    plan_index: i,
    plan_name: text(plan.plan_name),
    plan_id_type: text(plan.plan_id_type),
    plan_id: text(plan.plan_id),
    plan_market_type: text(plan.plan_market_type),
    issuer_name: text(plan.issuer_name),
    plan_sponsor_name: text(plan.plan_sponsor_name),
    _rescued: rescuedJson(rescued, '', `reporting_plans[${i}]`),
  }));
  const inNetworkFiles: Row[] = (structure.in_network_files ?? []).map((file, i) => ({
    file_id: fileId,
    structure_index: recordIndex,
    file_index: i,
    description: text(file.description),
    location: text(file.location),
    _rescued: rescuedJson(rescued, `in_network_files[${i}]`),
  }));
  const allowed = structure.allowed_amount_file;
  const allowedAmountFiles: Row[] = allowed
    ? [
        {
          file_id: fileId,
          structure_index: recordIndex,
          description: text(allowed.description),
          location: text(allowed.location),
          _rescued: rescuedJson(rescued, 'allowed_amount_file'),
        },
      ]
    : [];
  return {
    rows: {
      reporting_plans: plans,
      in_network_files: inNetworkFiles,
      allowed_amount_files: allowedAmountFiles,
    },
  };
}

/** The tic-table-of-contents silver contract. Record stream: reporting_structure. */
export const ticTableOfContentsSilver = ticContract({
  dataset: 'tic-table-of-contents',
  // Bump when normalization changes the rows a record yields (see SilverContract.contractVersion).
  contractVersion: 'tic-table-of-contents/3',
  tables: tableOfContentsTables,
  rules: TABLE_OF_CONTENTS_RULES,
  withPlan: false,
  streams: {
    reporting_structure: {
      schema: ReportingStructure,
      validator: schemas.validating,
      entities: ENTITIES,
      build: buildStructure,
    },
  },
});
