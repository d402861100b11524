import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ParquetFooterError, parquetRowCount } from '../../shared/stages/reconcile/parquet-footer.ts';
import { tempDir } from '../helpers/lake.ts';

/** The footer reader against Parquet files DuckDB writes (as silver's writer does). */
describe('parquetRowCount', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-footer-test-');
  });
  afterAll(async () => tmp.cleanup());

  /** `select` written by DuckDB, then its bytes, and every range the reader asked for. */
  async function written(name: string, select: string, options = '') {
    const file = join(tmp.dir, `${name}.parquet`);
    const instance = await DuckDBInstance.create(':memory:');
    const connection = await instance.connect();
    await connection.run(`COPY (${select}) TO '${file}' (FORMAT parquet${options})`);
    connection.closeSync();
    instance.closeSync();
    return readFile(file);
  }
  const rowsOf = async (bytes: Buffer) => {
    const ranges: { start: number; end: number }[] = [];
    const rows = await parquetRowCount(bytes.length, async (range) => {
      ranges.push(range);
      return bytes.subarray(range.start, range.end + 1);
    });
    return { rows, ranges };
  };

  it.each([0, 1, 4_321, 250_000])(
    'reads %i rows of nested, list and boolean columns in many row groups from the footer alone',
    async (n) => {
      const bytes = await written(
        `rows-${n}`,
        `SELECT range AS a, [range::VARCHAR, 'x'] AS l, {'s': range, 'm': MAP {'k': range}} AS s,
                range % 2 = 0 AS b, 'text' || range AS t FROM range(${n})`,
        ', ROW_GROUP_SIZE 10000, COMPRESSION zstd',
      );
      const { rows, ranges } = await rowsOf(bytes);
      expect(rows).toBe(n);
      // Two reads, both in the file's tail: never the row data.
      expect(ranges).toHaveLength(2);
      const read = ranges.reduce((sum, r) => sum + r.end - r.start + 1, 0);
      if (n >= 4_321) expect(read).toBeLessThan(bytes.length / 2);
    },
  );

  it('fails with ParquetFooterError on a file that is not Parquet, or whose footer is cut or corrupt', async () => {
    const bytes = await written('corrupt', 'SELECT range AS a FROM range(100)');
    await expect(rowsOf(Buffer.from('not a parquet file at all'))).rejects.toThrow(ParquetFooterError);
    await expect(rowsOf(bytes.subarray(0, bytes.length - 1))).rejects.toThrow(ParquetFooterError);
    const footerLength = bytes.readUInt32LE(bytes.length - 8);
    const truncated = Buffer.from(bytes);
    truncated.writeUInt32LE(footerLength + bytes.length, bytes.length - 8);
    await expect(rowsOf(truncated)).rejects.toThrow(/footer length/);
    const garbled = Buffer.from(bytes);
    garbled.fill(0xff, bytes.length - 8 - footerLength, bytes.length - 8);
    await expect(rowsOf(garbled)).rejects.toThrow(ParquetFooterError);
  });
});
