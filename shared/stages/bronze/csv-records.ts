import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { CSV_EXTRA_CELLS, type DatasetConfig } from '../../contracts/dataset-config.ts';
import { MalformedInputError } from '../../errors.ts';
import type { RecordHandler, SkippedValue } from '../parse/json-record-scanner.ts';
import { utf8Checked } from './utf8-check.ts';

/** Records read from one source, whatever its format, handed over batch by batch. */
export interface RecordSource {
  /** Feeds records to `onRecord`; yields after each input chunk so the caller can apply backpressure. */
  batches(onRecord: RecordHandler): AsyncIterable<{ bytesScanned: number }>;
  bytesScanned(): number;
  recordCounts(): number[];
  headers(): Record<string, unknown>;
  /** Values the input holds outside every record and header path (json only): see SkippedValue. */
  skipped?(): { readonly values: readonly SkippedValue[]; readonly count: number };
}

/**
 * CSV rows as JSON objects keyed by the header row (csv-parse does the RFC 4180 work). A row with more
 * fields than the header keeps the extras under `_extra`, and a short row simply lacks the missing
 * columns: bronze keeps every row as it came, and silver decides what is valid. A header row that
 * names a column twice fails the run: one of the two would be lost in every row. A short last row that
 * the file ends inside (no line end after it) fails the run too: that is what a file cut off looks like
 * (a partial copy, an interrupted export), and its rows would otherwise pass as complete.
 */
export function readCsvRecords(
  chunks: AsyncIterable<Buffer>,
  dataset: DatasetConfig,
  uri: string,
  /** The caller stopped handing over chunks before the end (inspect's byte limit): a cut row is expected. */
  stoppedEarly: () => boolean = () => false,
): RecordSource {
  let bytes = 0;
  let count = 0;
  return {
    async *batches(onRecord) {
      let lastByte: number | undefined;
      let parsedThrough = 0;
      const tracked = async function* () {
        for await (const chunk of utf8Checked(chunks, uri, stoppedEarly)) {
          if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
          yield chunk;
        }
      };
      const parser = parse({
        bom: true,
        info: true,
        delimiter: dataset.csv.delimiter,
        quote: dataset.csv.quote,
        // A quote inside a quoted field is written twice (RFC 4180), whatever the quote character:
        // csv-parse's escape stays `"` otherwise, and with `'` as the quote, `'O''Brien'` fails while
        // `'5"'` reads its `"'` as an escaped quote and runs on into the next cells.
        escape: dataset.csv.quote,
        relax_column_count: true,
        skip_empty_lines: true,
        // Every line end ends a row. Left to discover it, csv-parse takes the first line's (CRLF) as the
        // only one, and a row that ends in a bare LF (an edited or concatenated export) runs into the
        // next: two rows become one, the second's cells shifted into the first's last cell and `_extra`.
        record_delimiter: ['\r\n', '\n', '\r'],
        // Where the parser's last complete row ended, for the offset of an error in the next one.
        on_record: (record, context) => {
          parsedThrough = context.bytes;
          return record;
        },
      });
      // `pipe` does not pass on the input's error (a truncated gzip, a read that failed, bytes that
      // are not UTF-8): it would be an unhandled 'error' event that kills the process. The parser
      // fails with it instead, and it is thrown as it is, not as invalid CSV.
      let inputError: unknown;
      const input = Readable.from(tracked()).on('error', (error) => {
        inputError = error;
        parser.destroy(error);
      });
      input.pipe(parser);
      let columns: string[] | undefined;
      let rowStart = 0;
      let lastRow: { start: number; cells: number } | undefined;
      try {
        for await (const { record, info } of parser as AsyncIterable<{
          record: string[];
          info: { bytes: number };
        }>) {
          if (!columns) {
            columns = uniqueColumns(record, uri, rowStart);
          } else {
            // No prototype: a column named `__proto__` or `constructor` is a column like any other.
            const row: Record<string, unknown> = Object.create(null);
            columns.forEach((name, i) => {
              if (i < record.length) row[name] = record[i];
            });
            if (record.length > columns.length) row[CSV_EXTRA_CELLS] = record.slice(columns.length);
            onRecord(0, count++, rowStart, Buffer.from(JSON.stringify(row)));
            lastRow = { start: rowStart, cells: record.length };
          }
          rowStart = info.bytes;
          bytes = info.bytes;
          if (count % 1024 === 0) yield { bytesScanned: bytes };
        }
      } catch (error) {
        if (error instanceof MalformedInputError || error === inputError) throw error;
        const detail = (error as Error).message;
        // csv-parse fails before the loop has taken the rows it parsed from the same input chunk, so
        // `rowStart` can lag far behind; the failing row starts where the parser's last row ended.
        throw new MalformedInputError(uri, parsedThrough, `invalid CSV: ${detail}`, { cause: error });
      }
      const endsInsideRow = lastByte !== undefined && lastByte !== LF && lastByte !== CR && !stoppedEarly();
      if (columns && lastRow && lastRow.cells < columns.length && endsInsideRow) {
        throw new MalformedInputError(
          uri,
          lastRow.start,
          `the last row has ${lastRow.cells} of ${columns.length} cells and the file ends inside it ` +
            '(truncated file?); if the row is complete, end it with a line break',
        );
      }
      yield { bytesScanned: bytes };
    },
    bytesScanned: () => bytes,
    recordCounts: () => [count],
    headers: () => ({}),
  };
}

const LF = 0x0a;
const CR = 0x0d;

/** The header row's names, each once; a name given twice fails with both positions and what to do. */
function uniqueColumns(names: string[], uri: string, offset: number): string[] {
  const first = new Map<string, number>();
  const duplicates: string[] = [];
  names.forEach((name, i) => {
    const seen = first.get(name);
    if (seen === undefined) first.set(name, i);
    else duplicates.push(`${JSON.stringify(name)} (columns ${seen + 1} and ${i + 1})`);
  });
  if (duplicates.length > 0) {
    throw new MalformedInputError(
      uri,
      offset,
      `the CSV header row names a column twice: ${duplicates.join(', ')}; each column needs its own ` +
        'name (a row would keep only the last of them) — rename the duplicates in the header row',
    );
  }
  return names;
}
