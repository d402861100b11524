import type { DatasetConfigInput } from '../contracts/dataset-config.ts';
import { parseDatasetConfig } from '../contracts/dataset-config.ts';
import type { DocumentStructure, RecordArray } from './inspect-document.ts';
import { kindsOf, type ValueKind, type ValueShape } from './value-shape.ts';

/**
 * `sluice inspect --write-config`: a dataset config for what the file holds, ready for `sluice run
 * --config` — its record arrays and header scalars, and (for a single record stream) a silver table of
 * the records' scalar fields, typed from the sampled values. Every column is optional and the load is
 * `append`: a draft that quarantines nothing it was not told to; keys, required fields and the load
 * pattern are the user's to add (`sluice validate` checks the edits).
 */

/** Columns at most; fields beyond them are kept in `_rescued` (drift), as any field no column picks. */
const MAX_COLUMNS = 200;
/** Fields of nested objects become columns down to this many keys (`address.city` → `address_city`). */
const MAX_COLUMN_PATH = 2;
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

type ColumnType =
  | 'string'
  | 'integer'
  | 'number'
  | 'boolean'
  | 'date'
  | 'timestamp'
  | 'string[]'
  | 'integer[]'
  | 'number[]';

/** A dataset, table or column name from any text: lowercase, `_` for the rest, starting with a letter. */
function sqlName(text: string, fallback: string): string {
  const name = text
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 60);
  if (name === '') return fallback;
  return /^[a-z]/.test(name) ? name : `c_${name}`.slice(0, 63);
}

/** A dataset name from a file name: `In-Network.2024.json.gz` → `in-network-2024`. */
export function datasetNameFor(fileName: string): string {
  const stem = fileName.replace(/(\.(json|ndjson|jsonl|csv|gz|gzip|txt))+$/i, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|[-_]+$/g, '')
    .slice(0, 63);
  return NAME.test(name) ? name : 'my-dataset';
}

/** A scalar shape's column type, or undefined when its values have no one type a column could hold. */
function scalarType(shape: ValueShape): ColumnType | undefined {
  const kinds = kindsOf(shape).filter((k) => k !== 'null');
  const only = (...allowed: ValueKind[]) => kinds.length > 0 && kinds.every((k) => allowed.includes(k));
  if (kinds.length === 0) return 'string';
  // A number column would refuse some of them (1e400, 1e-400, 2^64): text keeps each as written.
  if (only('integer', 'number') && shape.unrepresentable) return 'string';
  if (only('integer')) return 'integer';
  if (only('integer', 'number')) return 'number';
  if (only('boolean')) return 'boolean';
  if (only('string')) {
    const strings = shape.kinds.string ?? 0;
    if (shape.dates === strings) return 'date';
    if (shape.timestamps === strings) return 'timestamp';
    return 'string';
  }
  // Mixed scalars (ids written as numbers in some records and text in others) read as text.
  if (only('string', 'integer', 'number', 'boolean')) return 'string';
  if (only('array') && shape.items) {
    const items = scalarType(shape.items);
    if (items === 'integer') return 'integer[]';
    if (items === 'number') return 'number[]';
    if (items === 'string' || items === 'date' || items === 'timestamp') return 'string[]';
  }
  return undefined;
}

interface DraftColumn {
  name: string;
  type: ColumnType;
  source?: string;
}

/** Columns for the scalar fields of a record shape (and of its nested objects, `MAX_COLUMN_PATH` deep). */
function draftColumns(shape: ValueShape, format: 'json' | 'ndjson' | 'csv'): DraftColumn[] {
  const columns: DraftColumn[] = [];
  const taken = new Set<string>(['source', '_rescued']);
  const visit = (fields: Map<string, ValueShape>, prefix: string[]) => {
    for (const [key, field] of fields) {
      if (columns.length >= MAX_COLUMNS) return;
      if (key === '_extra') continue;
      const path = [...prefix, key];
      // A JSON key with a dot in it has no column source: "a.b" is the key b of the object a, so such a
      // column would be NULL in every row; nor has an empty key (an unnamed CSV column). Their values
      // stay in `_rescued`, as any field no column picks.
      if (key === '' || (format !== 'csv' && key.includes('.'))) continue;
      const type = scalarType(field);
      if (type) {
        let name = sqlName(path.join('_'), 'field');
        for (let n = 2; taken.has(name); n++) name = `${sqlName(path.join('_'), 'field').slice(0, 58)}_${n}`;
        taken.add(name);
        const source = format === 'csv' ? key : path.join('.');
        columns.push({ name, type, ...(source !== name && { source }) });
      } else if (
        format !== 'csv' &&
        field.fields &&
        path.length < MAX_COLUMN_PATH &&
        kindsOf(field).every((k) => k === 'object' || k === 'null')
      ) {
        visit(field.fields, path);
      }
    }
  };
  if (shape.fields) visit(shape.fields, []);
  return columns;
}

/** The record arrays worth a record path: those of objects, or every non-empty one if none holds objects. */
function recordArrays(structure: DocumentStructure): RecordArray[] {
  const ofObjects = structure.arrays.filter((a) => kindsOf(a.shape)[0] === 'object');
  if (ofObjects.length > 0) return ofObjects;
  const nonEmpty = structure.arrays.filter((a) => a.count > 0);
  return nonEmpty.length > 0 ? nonEmpty : structure.arrays;
}

/** A config for `structure`, validated (a draft that `sluice run --config` would refuse is a bug). */
export function draftDatasetConfig(structure: DocumentStructure, datasetName: string): DatasetConfigInput {
  const config: Record<string, unknown> = {
    name: datasetName,
    description: `Drafted by sluice inspect; check the record paths, add keys and required columns.`,
    format: structure.format,
  };
  let records: RecordArray[];
  if (structure.format === 'json') {
    records = recordArrays(structure);
    if (records.length === 0) {
      throw new Error('the document holds no array: there are no records to describe');
    }
    const names = new Set<string>();
    config.records = records.map((array) => {
      const keys = array.path.slice(0, -3).split('.').filter(Boolean);
      const last = keys.at(-1) ?? 'records';
      let name = NAME.test(last) ? last : sqlName(last, 'records');
      for (let n = 2; names.has(name); n++) name = `${sqlName(keys.join('_') || 'records', 'records')}_${n}`;
      names.add(name);
      return {
        path: array.path,
        ...(name !== last && { name }),
        // An array seen empty (or not at all) in this file may be empty or missing in the next one.
        ...(array.count === 0 && { required: false }),
      };
    });
    const headers = Object.keys(structure.scalars);
    if (headers.length > 0) config.headers = headers.map((path) => ({ path }));
  } else {
    records = structure.arrays;
    if (structure.format === 'csv' && structure.csv?.delimiter !== ',') {
      config.csv = { delimiter: structure.csv?.delimiter };
    }
  }
  if (structure.depth > 1000) config.limits = { maxDepth: Math.min(100_000, structure.depth * 2) };
  if (records.length === 1) {
    const columns = draftColumns(records[0]!.shape, structure.format);
    if (columns.length > 0) {
      const recordName =
        structure.format === 'json'
          ? ((config.records as { name?: string; path: string }[])[0]!.name ??
            records[0]!.path.slice(0, -3).split('.').at(-1))
          : undefined;
      config.silver = {
        table: sqlName(recordName ?? datasetName, 'records'),
        columns,
        load: 'append',
      };
    }
  }
  parseDatasetConfig(config, 'the drafted config');
  return config as DatasetConfigInput;
}
