import { describe, expect, it } from 'vitest';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { MalformedInputError } from '../../shared/errors.ts';
import { readCsvRecords } from '../../shared/stages/bronze/csv-records.ts';

const dataset = parseDatasetConfig({ name: 'rows', format: 'csv' });

/** The records a CSV text becomes in bronze, as the JSON text bronze stores. */
async function records(csv: string): Promise<string[]> {
  async function* chunks() {
    yield Buffer.from(csv);
  }
  const out: string[] = [];
  const source = readCsvRecords(chunks(), dataset, 'file:///rows.csv');
  for await (const _ of source.batches((_target, _index, _offset, bytes) => out.push(bytes.toString()))) {
    // records are collected by the handler
  }
  return out;
}

describe('readCsvRecords', () => {
  it('keeps columns named __proto__, constructor and hasOwnProperty like any other', async () => {
    expect(await records('__proto__,constructor,hasOwnProperty,toString\na,b,c,d\n')).toEqual([
      '{"__proto__":"a","constructor":"b","hasOwnProperty":"c","toString":"d"}',
    ]);
  });

  it('fails a header row that names a column twice, with the names, positions and what to do', async () => {
    const error = await records('id,a,a,b,b\n1,2,3,4,5\n').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MalformedInputError);
    expect((error as Error).message).toContain('"a" (columns 2 and 3), "b" (columns 4 and 5)');
    expect((error as Error).message).toContain('rename the duplicates in the header row');
  });

  it('still keeps the extras of a long row and lets a short row lack columns', async () => {
    expect(await records('a,b\n1,2,3\n4\n')).toEqual(['{"a":"1","b":"2","_extra":["3"]}', '{"a":"4"}']);
  });
});
