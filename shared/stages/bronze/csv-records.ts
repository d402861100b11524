import { parse } from 'csv-parse';
import { CSV_EXTRA_CELLS, type DatasetConfig } from '../../contracts/dataset-config.ts';
import { MalformedInputError, MissingRecordPathError } from '../../errors.ts';
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
  /**
   * Called from the record handler: stop right after this record, so that a checkpoint can continue at
   * `bytesScanned()`. False when there is nothing left to stop before.
   */
  pause(): boolean;
}

/** Where a sliced read of a CSV continues: a row's first byte, the header row's names, rows read before. */
export interface CsvResume {
  readonly position: number;
  readonly columns: readonly string[];
  readonly records: number;
}

export interface CsvReadOptions {
  /** The caller stopped handing over chunks before the end (inspect's byte limit): a cut row is expected. */
  readonly stoppedEarly?: () => boolean;
  /** Continue a sliced read: `chunks` start at `resume.position`, right after a row. */
  readonly resume?: CsvResume;
}

/**
 * CSV rows as JSON objects keyed by the header row (csv-parse does the RFC 4180 work). A row with more
 * fields than the header keeps the extras under `_extra`, and a short row simply lacks the missing
 * columns: bronze keeps every row as it came, and silver decides what is valid. A header row that
 * names a column twice fails the run: one of the two would be lost in every row. A short last row that
 * the file ends inside (no line end after it) fails the run too: that is what a file cut off looks like
 * (a partial copy, an interrupted export), and its rows would otherwise pass as complete. So does a
 * header row that names none of the silver columns: see `headerNamesNoColumn`.
 */
export function readCsvRecords(
  chunks: AsyncIterable<Buffer>,
  dataset: DatasetConfig,
  uri: string,
  options: CsvReadOptions = {},
): RecordSource & { resumeState(): { columns: string[]; records: number } } {
  const { resume } = options;
  const stoppedEarly = options.stoppedEarly ?? (() => false);
  // The parser counts bytes from where this read starts; offsets in the file are `base` further on.
  const base = resume?.position ?? 0;
  let bytes = base;
  let count = resume?.records ?? 0;
  let columns: string[] | undefined = resume && [...resume.columns];
  let pauseRequested = false;
  // Where the row being handed over ends, and where the chunk it was parsed from starts (see `pause`).
  let rowEnd = base;
  let chunkStart = base;
  // The input has ended: the parser is handing over its last rows (see `pause`).
  let ending = false;
  return {
    async *batches(onRecord) {
      let lastByte: number | undefined;
      let parsedThrough = base;
      const parser = parse({
        // A byte-order mark can only open the file, never a later slice.
        bom: resume === undefined,
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
          parsedThrough = base + context.bytes;
          return record;
        },
      });
      // Its error is read from `errored` after each chunk (below); the event itself must not go unheard.
      parser.on('error', () => {});
      let bytesFed = base;
      let rowStart = base;
      let lastRow: { start: number; cells: number } | undefined;
      /** Hands the rows parsed so far to `onRecord`; false when paused right after one of them. */
      const handOver = (): boolean => {
        for (let parsed = parser.read() as Parsed | null; parsed !== null; parsed = parser.read()) {
          const { record, info } = parsed;
          rowEnd = base + info.bytes;
          if (!columns) {
            columns = uniqueColumns(record, uri, rowStart);
            const unnamed = headerNamesNoColumn(columns, dataset, uri);
            if (unnamed) throw unnamed;
          } else {
            // No prototype: a column named `__proto__` or `constructor` is a column like any other.
            const row: Record<string, unknown> = Object.create(null);
            columns.forEach((name, i) => {
              if (i < record.length) row[name] = record[i];
            });
            if (record.length > columns.length) {
              // A column of that name would lose this row's value to the extras, silently.
              if (columns.includes(CSV_EXTRA_CELLS)) throw extraCellsHaveNoPlace(uri, rowStart, columns);
              row[CSV_EXTRA_CELLS] = record.slice(columns.length);
            }
            onRecord(0, count++, rowStart, Buffer.from(JSON.stringify(row)));
            lastRow = { start: rowStart, cells: record.length };
          }
          rowStart = rowEnd;
          bytes = rowEnd;
          // Paused: rows parsed beyond this one are read again by the next slice.
          if (pauseRequested) return false;
        }
        const error = parser.errored;
        if (error) {
          // The failing row starts where the parser's last complete row ended.
          throw new MalformedInputError(uri, parsedThrough, `invalid CSV: ${error.message}`, {
            cause: error,
          });
        }
        return true;
      };
      // The parser is fed one chunk at a time, and each chunk's rows are handed over before the next
      // is read: a slice that pauses after a row has read no chunk past it, so it can resume right there.
      for await (const chunk of utf8Checked(chunks, uri, stoppedEarly)) {
        if (chunk.length > 0) lastByte = chunk[chunk.length - 1];
        chunkStart = bytesFed;
        bytesFed += chunk.length;
        parser.write(chunk);
        const going = handOver();
        yield { bytesScanned: bytes };
        if (!going) return;
      }
      await new Promise((resolve) => {
        parser.once('error', resolve);
        parser.end(resolve);
      });
      // The rows the end brings (the last one, without a line break after it) are handed over with no
      // pause: a later slice would read nothing, and the checks below (a row cut off) would not be made.
      ending = true;
      handOver();
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
    // A slice resumes within the chunk it stopped in (`ResumableSource`); a row that the parser could
    // only finish with the next chunk (its line end is the chunk's last byte, which might be a CR of a
    // CRLF) ends in the chunk before: no pause there, the caller asks again at its next boundary.
    pause: () => {
      if (ending || rowEnd < chunkStart) return false;
      pauseRequested = true;
      return true;
    },
    resumeState: () => ({ columns: [...(columns ?? [])], records: count }),
  };
}

/** A row as csv-parse gives it with `info`: its cells, and the input's bytes read up to its end. */
type Parsed = { record: string[]; info: { bytes: number } };

const LF = 0x0a;
const CR = 0x0d;

/** A row longer than the header row, whose extra cells' field `_extra` the header row names as a column. */
function extraCellsHaveNoPlace(uri: string, offset: number, columns: readonly string[]): MalformedInputError {
  return new MalformedInputError(
    uri,
    offset,
    `the row has more cells than the header row, whose column ${columns.indexOf(CSV_EXTRA_CELLS) + 1} is ` +
      `named "${CSV_EXTRA_CELLS}", the field that keeps a long row's extra cells (the column's value would ` +
      `be lost to them): rename that column in the header row, or quote the field whose delimiter split the row`,
  );
}

/**
 * The failure of a header row that names none of the silver table's columns (by their `source`), or
 * undefined. Every column of every row would be NULL, and the run would pass with warnings: what a file
 * read with the wrong delimiter (`a;b;c` is one column named "a;b;c"), an HTML error page saved as the
 * file, or another dataset's export looks like. A header naming some of the columns is the config's
 * business (each column it lacks is counted as `<table>.<column>.absent`).
 */
function headerNamesNoColumn(
  names: readonly string[],
  dataset: DatasetConfig,
  uri: string,
): MissingRecordPathError | undefined {
  const sources = dataset.silver?.columns.map((c) => c.source ?? c.name) ?? [];
  if (sources.length === 0 || sources.some((source) => names.includes(source))) return undefined;
  const shown = (list: readonly string[]) =>
    list
      .slice(0, 5)
      .map((name) => JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name))
      .join(', ') + (list.length > 5 ? `, … (${list.length})` : '');
  const lowerCase = new Set(names.map((name) => name.toLowerCase()));
  const joined = names.join(dataset.csv.delimiter);
  const delimiter = [',', ';', '\t', '|'].find((d) => d !== dataset.csv.delimiter && joined.includes(d));
  const hint = /^\s*<(?:!doctype|html|\?xml|head|body)\b/i.test(joined)
    ? 'the file is an HTML or XML page (an error or sign-in page saved in its place?), not the CSV export'
    : delimiter !== undefined
      ? `the header row looks delimited by ${JSON.stringify(delimiter)}, not ${JSON.stringify(dataset.csv.delimiter)}: ` +
        `set "csv": { "delimiter": ${JSON.stringify(delimiter)} } in the dataset config`
      : sources.some((source) => lowerCase.has(source.toLowerCase()))
        ? 'the header row names them in another case: set each column\'s "source" to the header name as written'
        : 'the file belongs to another dataset, or the config\'s columns need a "source" naming their header';
  return new MissingRecordPathError(
    uri,
    '[*]',
    `the CSV header row names none of the columns of table ${dataset.silver!.table} ` +
      `(it has ${shown(names)}; the columns read ${shown(sources)}), so every value would be NULL`,
    hint,
  );
}

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
