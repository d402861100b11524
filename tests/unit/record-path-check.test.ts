import { describe, expect, it } from 'vitest';
import {
  type DatasetConfig,
  type DatasetConfigInput,
  parseDatasetConfig,
  recordTargets,
} from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { MissingRecordPathError } from '../../shared/errors.ts';
import { checkRecordPaths } from '../../shared/stages/bronze/record-path-check.ts';
import { JsonRecordScanner } from '../../shared/stages/parse/json-record-scanner.ts';
import { compilePaths } from '../../shared/stages/parse/record-paths.ts';

const dataset = (input: Partial<DatasetConfigInput>): DatasetConfig =>
  parseDatasetConfig({ name: 'd', format: 'json', records: [{ path: 'items[*]' }], ...input });

/**
 * Scan `text` one byte at a time, checking after each byte as the ingest does after each chunk; returns
 * the first problem and how many bytes it took to be certain (the whole text plus one for the end).
 */
function check(config: DatasetConfig, text: string): { error?: MissingRecordPathError; afterBytes: number } {
  const paths = compilePaths(recordTargets(config), []);
  const scanner = new JsonRecordScanner(
    { source: 'doc.json', format: 'json', paths, maxRecordBytes: 1 << 20 },
    () => {},
  );
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i++) {
    scanner.write(bytes.subarray(i, i + 1));
    const error = checkRecordPaths(config, paths, scanner, 'doc.json', false);
    if (error) return { error, afterBytes: i + 1 };
  }
  scanner.end();
  return { error: checkRecordPaths(config, paths, scanner, 'doc.json', true), afterBytes: bytes.length + 1 };
}

describe('Function: checkRecordPaths', () => {
  it('accepts a document that has each required array, with records', () => {
    expect(check(dataset({}), '{"a":1,"items":[{"id":1}],"b":[]}').error).toBeUndefined();
  });

  it('fails a wrong kind as soon as its first byte is read, not at the end of the document', () => {
    const text = '{"items":{"id":1}, "rest": "x"}';
    const { error, afterBytes } = check(dataset({}), text);
    expect(error).toBeInstanceOf(MissingRecordPathError);
    expect(afterBytes).toBe(text.indexOf('{"id"') + 1);
    expect(error!.message).toBe(
      'doc.json: no "items" array: "items" is an object (at byte 9), not an array; the records of ' +
        '"items[*]" are the elements of an array; if this object is a single record, wrap it in [ … ]',
    );
    expect(error!.recordPath).toBe('items[*]');
  });

  it('fails a top level that is not an object at its first byte', () => {
    for (const [text, kind] of [
      ['null', 'null'],
      ['[{"items":[1]}]', 'an array'],
      ['"items"', 'a string'],
      ['42', 'a number'],
      ['true', 'a boolean'],
    ] as const) {
      const { error, afterBytes } = check(dataset({}), text);
      expect(error?.message, text).toContain(`the top level is ${kind} (at byte 0), not an object`);
      expect(afterBytes, text).toBeLessThanOrEqual(Math.max(1, text.length + 1));
    }
  });

  it('decides a missing path only at the end, naming the top-level keys (the first ten, then how many more)', () => {
    const keys = Array.from({ length: 13 }, (_, i) => `"k${i}":${i}`).join(',');
    const { error, afterBytes } = check(dataset({}), `{${keys}}`);
    expect(afterBytes).toBe(`{${keys}}`.length + 1);
    expect(error?.message).toContain(
      'no "items" array: the top level has "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9" and 3 more keys',
    );
    expect(check(dataset({}), '{}').error?.message).toContain('the top level is an empty object');
  });

  it('names a nested path, and the container on the way that is not an object', () => {
    const nested = dataset({ records: [{ path: 'data.claims[*]' }] });
    expect(check(nested, '{"data":{"other":[]}}').error?.message).toContain(
      'no "data.claims" array: "data" has no "claims"',
    );
    expect(check(nested, '{"data":[1]}').error?.message).toContain(
      'no "data.claims" array: "data" is an array (at byte 8), not an object',
    );
  });

  it('fails an empty array unless allowEmpty, and never checks a path that is not required', () => {
    expect(check(dataset({}), '{"items":[]}').error?.message).toContain(
      '"items" is an empty array: the file has no items records',
    );
    const lenient = dataset({ records: [{ path: 'items[*]', allowEmpty: true }] });
    expect(check(lenient, '{"items":[]}').error).toBeUndefined();
    const optional = dataset({ records: [{ path: 'items[*]', required: false }, { path: 'more[*]' }] });
    expect(check(optional, '{"items":{},"more":[1]}').error).toBeUndefined();
  });

  it('checks a root array path: the top level must be an array', () => {
    const root = dataset({ records: [{ path: '[*]' }] });
    expect(check(root, '[{"a":1}]').error).toBeUndefined();
    expect(check(root, '{"a":[1]}').error?.message).toContain(
      'no top-level array of records: the top level is an object (at byte 0), not an array',
    );
  });

  it('does not hide a wrong kind behind a duplicate key that is an array', () => {
    expect(check(dataset({}), '{"items":[1],"items":{"a":1}}').error?.message).toContain(
      '"items" is an object (at byte 21)',
    );
  });

  it("tells which built-in dataset a file with another dataset's arrays belongs to", () => {
    const tic = builtInDataset('tic-in-network');
    expect(check(tic, '{"version":"2","out_of_network":[{}]}').error?.message).toContain(
      '"out_of_network" says this looks like a tic-allowed-amounts file — use --dataset tic-allowed-amounts',
    );
    expect(
      check(builtInDataset('tic-allowed-amounts'), '{"in_network":[{}],"provider_references":[]}').error
        ?.message,
    ).toContain('use --dataset tic-in-network');
    expect(check(tic, '{"reporting_structure":[{}]}').error?.message).toContain(
      'use --dataset tic-table-of-contents',
    );
    // A file of only provider references is not a tic-in-network file: in_network is required.
    expect(check(tic, '{"provider_references":[{"provider_group_id":1}]}').error?.message).toContain(
      'no "in_network" array: the top level has "provider_references"; check that this is a tic-in-network file',
    );
  });

  it('decides the same after a scanner snapshot and restore (a sliced ingest)', () => {
    const config = dataset({ records: [{ path: 'items[*]' }, { path: 'other[*]' }] });
    const paths = compilePaths(recordTargets(config), []);
    const options = { source: 'doc.json', format: 'json', paths, maxRecordBytes: 1 << 20 } as const;
    let first: JsonRecordScanner | undefined;
    first = new JsonRecordScanner(options, () => first!.pause());
    const text = Buffer.from('{"zz":0,"items":[{"id":1},{"id":2}],"other":[]}');
    const consumed = first.write(text);
    expect(consumed).toBeLessThan(text.length);
    const snapshot = JSON.parse(JSON.stringify(first.snapshot()));
    const second = JsonRecordScanner.restore(options, () => {}, snapshot);
    second.write(text.subarray(consumed));
    second.end();
    expect(second.topLevelKeys).toEqual(['zz', 'items', 'other']);
    expect(second.topLevelKeyCount).toBe(3);
    expect(checkRecordPaths(config, paths, second, 'doc.json', true)?.message).toContain(
      '"other" is an empty array',
    );
  });
});
