import { type DatasetConfig, type RecordTarget, recordTargets } from '../../contracts/dataset-config.ts';
import { builtInDatasets } from '../../contracts/datasets/index.ts';
import { MissingRecordPathError } from '../../errors.ts';
import { type JsonKind, kindName, type PathValue } from '../parse/json-record-scanner.ts';
import type { CompiledPaths } from '../parse/record-paths.ts';

/** What the scanner saw of a document's shape (see `JsonRecordScanner.pathValues`). */
export interface DocumentShape {
  readonly pathValues: Readonly<Record<number, PathValue>>;
  readonly topLevelKeys: readonly string[];
  readonly topLevelKeyCount: number;
  readonly recordCounts: readonly number[];
}

/** Keys of the top-level object named in a message; the rest are counted. */
const KEYS_SHOWN = 10;

/**
 * Whether a json document holds every required record path of its dataset. Mid-document (`final`
 * false) only what is already certain fails — a record path, or an object on the way to it, holding
 * another kind of value (`{"in_network": {…}}`, a top level that is `null` or an array) — so a wrong
 * file stops at its first bytes rather than after hundreds of GB. At the end of the document a path
 * never reached, and an empty array the config does not allow, fail too. The scanner's observations
 * travel in its checkpoints, so a sliced ingest decides exactly as a single pass does.
 */
export function checkRecordPaths(
  dataset: DatasetConfig,
  paths: CompiledPaths,
  shape: DocumentShape,
  source: string,
  final: boolean,
): MissingRecordPathError | undefined {
  if (dataset.format !== 'json') return undefined;
  const targets = recordTargets(dataset);
  for (let t = 0; t < targets.length; t++) {
    const target = targets[t]!;
    if (!target.required) continue;
    const problem = checkTarget(dataset, target, shape.recordCounts[t] ?? 0, paths, shape, final);
    if (problem) return new MissingRecordPathError(source, target.path, problem.found, problem.hint);
  }
  return undefined;
}

function checkTarget(
  dataset: DatasetConfig,
  target: RecordTarget,
  count: number,
  paths: CompiledPaths,
  shape: DocumentShape,
  final: boolean,
): { found: string; hint: string } | undefined {
  const keys = target.path === '[*]' ? [] : target.path.slice(0, -3).split('.');
  const dotted = keys.join('.');
  const want = keys.length > 0 ? `no "${dotted}" array` : 'no top-level array of records';
  let node = paths.root;
  for (let depth = 0; depth <= keys.length; depth++) {
    const value = shape.pathValues[node.id];
    const atRecords = depth === keys.length;
    if (value === undefined) {
      if (!final) return undefined;
      // The container one level up is an object (checked below) that never had this key.
      const key = keys[depth - 1]!;
      const found =
        depth === 1
          ? `${want}: ${topLevel(shape)}`
          : `${want}: "${keys.slice(0, depth - 1).join('.')}" has no "${key}"`;
      return { found, hint: otherDataset(dataset, shape) ?? checkDataset(dataset) };
    }
    const expected: JsonKind = atRecords ? 'array' : 'object';
    if (value.kind !== expected) {
      const where = depth === 0 ? 'the top level' : `"${keys.slice(0, depth).join('.')}"`;
      const found = `${want}: ${where} is ${kindName(value.kind)} (at byte ${value.offset}), not ${kindName(expected)}`;
      let hint: string;
      if (depth === 0 && value.kind === 'array') {
        hint = `a ${dataset.name} file is one JSON object holding "${dotted}": [ … ]; if the file wraps that object in [ … ], unwrap it`;
      } else if (atRecords && value.kind === 'object') {
        hint = `the records of "${target.path}" are the elements of an array; if this object is a single record, wrap it in [ … ]`;
      } else {
        hint = checkDataset(dataset);
      }
      return { found, hint };
    }
    if (atRecords) break;
    node = node.children.get(keys[depth]!)!;
  }
  if (final && count === 0 && !target.allowEmpty) {
    return {
      found: `"${dotted || '[*]'}" is an empty array: the file has no ${target.name} records`,
      hint:
        'if files without records are expected, set "allowEmpty": true on that record path of the dataset ' +
        'config (--config); otherwise the file is incomplete or not the one meant',
    };
  }
  return undefined;
}

function topLevel(shape: DocumentShape): string {
  if (shape.topLevelKeyCount === 0) return 'the top level is an empty object';
  const shown = shape.topLevelKeys.slice(0, KEYS_SHOWN).map((k) => `"${k}"`);
  const more = shape.topLevelKeyCount - shown.length;
  return `the top level has ${shown.join(', ')}${more > 0 ? ` and ${more} more key${more > 1 ? 's' : ''}` : ''}`;
}

/** A built-in dataset whose required record arrays the document has at its top level. */
function otherDataset(dataset: DatasetConfig, shape: DocumentShape): string | undefined {
  const keys = new Set(shape.topLevelKeys);
  for (const other of Object.values(builtInDatasets)) {
    if (other.name === dataset.name) continue;
    const required = recordTargets(other).filter((t) => t.required);
    const matches =
      required.length > 0 && required.every((t) => keys.has(t.path.slice(0, -3).split('.')[0]!));
    if (matches) {
      const key = required[0]!.path.slice(0, -3);
      return `"${key}" says this looks like a ${other.name} file — use --dataset ${other.name}`;
    }
  }
  return undefined;
}

function checkDataset(dataset: DatasetConfig): string {
  return builtInDatasets[dataset.name] === dataset
    ? `check that this is a ${dataset.name} file (--dataset), or describe the file with --config`
    : `check that this is a ${dataset.name} file, or the record paths ("records") of its config; a path files may lack can be marked "required": false`;
}
