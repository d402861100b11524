/**
 * Spike for issue 16, item 2 ("columns to Parquet in bulk"): how fast, how heavy and how exact is each
 * way of turning a table's columns, already in JavaScript, into one zstd Parquet file? Measured, not
 * shipped: the production writer (shared/adapters/duckdb/parquet-table-writer.ts) is unchanged.
 *
 *   npm run spike:parquet -- [--rows 2700000] [--only a,b] [--out .bench/spike-parquet]
 *
 * Input: deterministic synthetic columns shaped like sluice's `negotiated_prices` (the 14 columns of
 * shared/contracts/datasets/tic-in-network.tables.ts, `_rescued` and the three lineage columns), as the
 * 1 GB bench file's table: ≈ 2.7 M rows, items of ≈ 15 prices, a provider_group_ids list of 5–15 ids per
 * rate shared by the rate's prices (one array, as the contract shares it). Numbers are typed arrays
 * (BIGINT as BigInt64Array, DOUBLE as Float64Array, DATE as Int32Array of days), texts string arrays,
 * lists arrays of string arrays.
 *
 * Candidates, each in its own child process (so each has its own peak RSS):
 *   a  duckdb-rows     today's way: `createParquetTableWriter`, one row object appended at a time
 *                      (column batches of 64, a partial file, then the final zstd file): the baseline
 *   b  duckdb-chunks   DuckDB's appender fed whole data chunks of 2,048 rows, each vector filled by
 *                      node-api's setItem (numbers: a typed array copied once per vector; texts: one
 *                      native call per string, which is what node-api offers), then one COPY to zstd
 *   c  parquet-wasm    Arrow buffers built from the columns (texts UTF-8-encoded a batch at a time,
 *                      lists as offsets), handed to parquet-wasm (arrow-rs's writer in WebAssembly) as
 *                      Arrow IPC, zstd
 *   d  hyparquet       hyparquet-writer (pure JavaScript) given the columns as they are; zstd from
 *                      node:zlib where this Node has it (22.15+), else its built-in snappy (labelled)
 *
 * Per candidate: CPU seconds (user + system, all threads of the process), wall seconds, peak RSS
 * above the RSS with the input built (Linux: the peak is reset after building the input, via
 * /proc/self/clear_refs), file size, and a check of the file read back by DuckDB: rows, column types
 * and a fingerprint of every value (`bit_xor(hash(row))`), which must equal the baseline's.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as zlib from 'node:zlib';
import { inNetworkTables } from '../shared/contracts/datasets/tic-in-network.tables.ts';
import { Rng } from '../shared/generate/tic-in-network.ts';
import { MALLOC_ENV, NODE_FLAGS } from '../shared/runtime-memory.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '2700000' },
    only: { type: 'string', default: '' },
    out: { type: 'string', default: '.bench/spike-parquet' },
    candidate: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

/** Rows per row group, as sluice's final files (FINAL_ROW_GROUP_ROWS). */
const ROW_GROUP_ROWS = 32_768;
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Input

interface Columns {
  readonly rows: number;
  readonly file_id: string[];
  readonly item_index: BigInt64Array;
  readonly rate_index: BigInt64Array;
  readonly price_index: BigInt64Array;
  readonly billing_code: string[];
  readonly negotiated_type: string[];
  readonly negotiated_rate: Float64Array;
  /** Days since 1970-01-01. */
  readonly expiration_date: Int32Array;
  readonly service_code: (string[] | null)[];
  readonly billing_class: string[];
  readonly setting: string[];
  readonly billing_code_modifier: (string[] | null)[];
  readonly additional_information: (string | null)[];
  readonly provider_group_ids: (string[] | null)[];
  readonly _rescued: (string | null)[];
  readonly _run_id: string[];
  readonly _bronze_part: string[];
  readonly _record_index: BigInt64Array;
}

type Kind = 'text' | 'bigint' | 'double' | 'date' | 'list';
/** The file's columns in table order, with how each is held in `Columns`. */
const COLUMNS: readonly { readonly name: keyof Omit<Columns, 'rows'>; readonly kind: Kind }[] = [
  { name: 'file_id', kind: 'text' },
  { name: 'item_index', kind: 'bigint' },
  { name: 'rate_index', kind: 'bigint' },
  { name: 'price_index', kind: 'bigint' },
  { name: 'billing_code', kind: 'text' },
  { name: 'negotiated_type', kind: 'text' },
  { name: 'negotiated_rate', kind: 'double' },
  { name: 'expiration_date', kind: 'date' },
  { name: 'service_code', kind: 'list' },
  { name: 'billing_class', kind: 'text' },
  { name: 'setting', kind: 'text' },
  { name: 'billing_code_modifier', kind: 'list' },
  { name: 'additional_information', kind: 'text' },
  { name: 'provider_group_ids', kind: 'list' },
  { name: '_rescued', kind: 'text' },
  { name: '_run_id', kind: 'text' },
  { name: '_bronze_part', kind: 'text' },
  { name: '_record_index', kind: 'bigint' },
];

const SQL_TYPES: Record<Kind, string> = {
  text: 'VARCHAR',
  bigint: 'BIGINT',
  double: 'DOUBLE',
  date: 'DATE',
  list: 'VARCHAR[]',
};

const TYPES = ['negotiated', 'derived', 'fee schedule', 'percentage', 'per diem'];
const CLASSES = ['professional', 'institutional', 'both'];
const SETTINGS = ['inpatient', 'outpatient', 'both'];
const RUN_ID = 'tic-in-network-1GB.json.gz-9fb7bb52ead4-52998c48';
/** Items per bronze part: the 1 GB file has 31 parts of in_network. */
const ITEMS_PER_PART = 5_600;

/** Deterministic columns of `rows` rows (seeded; the same on every run). */
function makeColumns(rows: number): Columns {
  const rng = new Rng(16, 2);
  const text = () => new Array<string>(rows);
  const maybe = <T>() => new Array<T | null>(rows);
  const c: Columns = {
    rows,
    file_id: text(),
    item_index: new BigInt64Array(rows),
    rate_index: new BigInt64Array(rows),
    price_index: new BigInt64Array(rows),
    billing_code: text(),
    negotiated_type: text(),
    negotiated_rate: new Float64Array(rows),
    expiration_date: new Int32Array(rows),
    service_code: maybe(),
    billing_class: text(),
    setting: text(),
    billing_code_modifier: maybe(),
    additional_information: maybe(),
    provider_group_ids: maybe(),
    _rescued: maybe(),
    _run_id: text(),
    _bronze_part: text(),
    _record_index: new BigInt64Array(rows),
  };
  const farFuture = Date.UTC(9999, 11, 31) / DAY_MS;
  let item = 0;
  let row = 0;
  let part = '';
  while (row < rows) {
    if (item % ITEMS_PER_PART === 0) {
      part = `bronze/tic-in-network/run=${RUN_ID}/in_network/part-${String(item / ITEMS_PER_PART).padStart(5, '0')}.ndjson.gz`;
    }
    const billingCode = String(rng.range(100, 99_999)).padStart(5, '0');
    const baseCents = rng.range(2_000, 500_000);
    const rates = rng.range(2, 10);
    for (let r = 0; r < rates && row < rows; r++) {
      const ids: string[] = [];
      const idCount = rng.range(5, 15);
      for (let i = 0; i < idCount; i++) ids.push(String(rng.range(1, 200_000)));
      const prices = rng.range(1, 3);
      for (let p = 0; p < prices && row < rows; p++, row++) {
        c.file_id[row] = RUN_ID;
        c.item_index[row] = BigInt(item);
        c.rate_index[row] = BigInt(r);
        c.price_index[row] = BigInt(p);
        c.billing_code[row] = billingCode;
        c.negotiated_type[row] = rng.pick(TYPES);
        c.negotiated_rate[row] = Math.round(baseCents * (0.5 + rng.next())) / 100;
        c.expiration_date[row] = rng.chance(0.5)
          ? farFuture
          : Date.UTC(rng.range(2024, 2027), 11, 31) / DAY_MS;
        c.service_code[row] = rng.chance(0.1)
          ? null
          : Array.from({ length: rng.range(1, 2) }, () => String(rng.range(1, 99)).padStart(2, '0'));
        c.billing_class[row] = rng.pick(CLASSES);
        c.setting[row] = rng.pick(SETTINGS);
        c.billing_code_modifier[row] = rng.chance(0.15) ? [rng.pick(['95', '26', 'TC', 'GT'])] : null;
        c.additional_information[row] = rng.chance(0.03) ? `Rate applies per visit ${rng.range(1, 9)}` : null;
        c.provider_group_ids[row] = ids;
        c._rescued[row] = null;
        c._run_id[row] = RUN_ID;
        c._bronze_part[row] = part;
        c._record_index[row] = BigInt(item);
      }
    }
    item++;
  }
  return c;
}

const dateText = (days: number): string => new Date(days * DAY_MS).toISOString().slice(0, 10);

// ---------------------------------------------------------------------------------------------
// Candidates: each writes `file` from the columns

/** Writes `file`; returns a note (where its CPU time went, or a caveat). */
type Candidate = (c: Columns, file: string, scratch: string) => Promise<string | undefined>;

/** CPU seconds of the process (all threads) between laps: where a candidate's time goes. */
class Laps {
  private last = process.cpuUsage();
  private readonly laps: string[] = [];
  lap(name: string): void {
    const used = process.cpuUsage(this.last);
    this.last = process.cpuUsage();
    this.laps.push(`${name} ${((used.user + used.system) / 1e6).toFixed(1)}`);
  }
  toString(): string {
    return `CPU s: ${this.laps.join(', ')}`;
  }
}

/** a: today's writer, one row object at a time. */
const duckdbRows: Candidate = async (c, file, scratch) => {
  const { createParquetTableWriter } = await import('../shared/adapters/duckdb/parquet-table-writer.ts');
  const spec = inNetworkTables.find((t) => t.name === 'negotiated_prices')!;
  const laps = new Laps();
  const writer = await createParquetTableWriter([spec], scratch);
  const dates = new Map<number, string>();
  for (let r = 0; r < c.rows; r++) {
    const days = c.expiration_date[r]!;
    let date = dates.get(days);
    if (date === undefined) {
      date = dateText(days);
      dates.set(days, date);
    }
    writer.append('negotiated_prices', {
      file_id: c.file_id[r],
      item_index: Number(c.item_index[r]),
      rate_index: Number(c.rate_index[r]),
      price_index: Number(c.price_index[r]),
      billing_code: c.billing_code[r],
      negotiated_type: c.negotiated_type[r],
      negotiated_rate: c.negotiated_rate[r],
      expiration_date: date,
      service_code: c.service_code[r],
      billing_class: c.billing_class[r],
      setting: c.setting[r],
      billing_code_modifier: c.billing_code_modifier[r],
      additional_information: c.additional_information[r],
      provider_group_ids: c.provider_group_ids[r],
      _rescued: c._rescued[r],
      _run_id: c._run_id[r],
      _bronze_part: c._bronze_part[r],
      _record_index: Number(c._record_index[r]),
    });
  }
  laps.lap('appends');
  const written = await writer.finish();
  laps.lap('partial + final file');
  const { renameSync } = await import('node:fs');
  renameSync(written.negotiated_prices!.file!, file);
  return laps.toString();
};

/** b: whole data chunks through DuckDB's appender, then one COPY. */
const duckdbChunks: Candidate = async (c, file, scratch) => {
  const { DuckDBDataChunk, DuckDBInstance, DuckDBListValue, BIGINT, DOUBLE, INTEGER, LIST, VARCHAR } =
    await import('@duckdb/node-api');
  const { ident, literal, SINGLE_THREAD } = await import('../shared/adapters/duckdb/final-table.ts');
  const instance = await DuckDBInstance.create(':memory:', {
    ...SINGLE_THREAD,
    memory_limit: '512MB',
    temp_directory: join(scratch, 'spill'),
  });
  const connection = await instance.connect();
  // DATE travels as its day number (an INTEGER vector filled from the Int32Array) and is cast in the COPY.
  const staging = { text: VARCHAR, bigint: BIGINT, double: DOUBLE, date: INTEGER, list: LIST(VARCHAR) };
  const stagingSql = (kind: Kind) => (kind === 'date' ? 'INTEGER' : SQL_TYPES[kind]);
  await connection.run(
    `CREATE TABLE t (${COLUMNS.map((col) => `${ident(col.name)} ${stagingSql(col.kind)}`).join(', ')})`,
  );
  const appender = await connection.createAppender('t');
  const laps = new Laps();
  const chunk = DuckDBDataChunk.create(COLUMNS.map((col) => staging[col.kind]));
  const CHUNK_ROWS = 2_048;
  for (let start = 0; start < c.rows; start += CHUNK_ROWS) {
    const length = Math.min(CHUNK_ROWS, c.rows - start);
    chunk.reset();
    chunk.rowCount = length;
    for (let i = 0; i < COLUMNS.length; i++) {
      const { name, kind } = COLUMNS[i]!;
      const source = c[name];
      if (kind === 'text') {
        chunk.setColumnValues(i, (source as (string | null)[]).slice(start, start + length));
      } else if (kind === 'list') {
        const lists = (source as (string[] | null)[]).slice(start, start + length);
        chunk.setColumnValues(
          i,
          lists.map((list) => (list === null ? null : new DuckDBListValue(list))),
        );
      } else {
        // Numbers: setItem writes into the vector's typed array in JavaScript; flush copies it once.
        const vector = chunk.getColumnVector(i);
        const numbers = source as BigInt64Array | Float64Array | Int32Array;
        for (let r = 0; r < length; r++) vector.setItem(r, numbers[start + r]!);
        vector.flush();
      }
    }
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  laps.lap('chunks');
  const select = COLUMNS.map((col) =>
    col.kind === 'date' ? `DATE '1970-01-01' + ${ident(col.name)} AS ${ident(col.name)}` : ident(col.name),
  ).join(', ');
  await connection.run(
    `COPY (SELECT ${select} FROM t) TO ${literal(file)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP_ROWS})`,
  );
  laps.lap('COPY');
  connection.closeSync();
  instance.closeSync();
  return laps.toString();
};

/** Rows per Arrow record batch: bounds the JavaScript strings joined at once. */
const ARROW_BATCH_ROWS = 131_072;
// biome-ignore lint/suspicious/noControlCharactersInRegex: every character outside ASCII, NUL included in the range.
const NON_ASCII = /[^\u0000-\u007f]/;

/** UTF-8 bytes and offsets of texts: one encode per batch when they are ASCII, else one per text. */
function utf8(texts: readonly string[]): { bytes: Uint8Array; offsets: Int32Array } {
  const offsets = new Int32Array(texts.length + 1);
  const joined = texts.join('');
  if (!NON_ASCII.test(joined)) {
    let at = 0;
    for (let i = 0; i < texts.length; i++) {
      at += texts[i]!.length;
      offsets[i + 1] = at;
    }
    return { bytes: Buffer.from(joined, 'latin1'), offsets };
  }
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    at += Buffer.byteLength(texts[i]!);
    offsets[i + 1] = at;
  }
  return { bytes: Buffer.from(joined, 'utf8'), offsets };
}

/** c: Arrow buffers → IPC → parquet-wasm. */
const parquetWasm: Candidate = async (c, file) => {
  const arrow = await import('apache-arrow');
  const wasm = await import('parquet-wasm');
  const validity = (length: number, isNull: (i: number) => boolean) => {
    const bitmap = new Uint8Array((length + 7) >> 3);
    let nulls = 0;
    for (let i = 0; i < length; i++) {
      if (isNull(i)) nulls++;
      else bitmap[i >> 3]! |= 1 << (i & 7);
    }
    return { bitmap, nulls };
  };
  const textData = (values: readonly (string | null)[]) => {
    const { bitmap, nulls } = validity(values.length, (i) => values[i] === null);
    const { bytes, offsets } = utf8(values.map((v) => v ?? ''));
    return arrow.makeData({
      type: new arrow.Utf8(),
      length: values.length,
      nullCount: nulls,
      nullBitmap: nulls > 0 ? bitmap : null,
      valueOffsets: offsets,
      data: bytes,
    });
  };
  const listData = (lists: readonly (string[] | null)[]) => {
    const { bitmap, nulls } = validity(lists.length, (i) => lists[i] === null);
    const offsets = new Int32Array(lists.length + 1);
    const elements: string[] = [];
    for (let i = 0; i < lists.length; i++) {
      const list = lists[i];
      if (list) for (const element of list) elements.push(element);
      offsets[i + 1] = elements.length;
    }
    const child = textData(elements);
    return arrow.makeData({
      type: new arrow.List(new arrow.Field('element', new arrow.Utf8(), false)),
      length: lists.length,
      nullCount: nulls,
      nullBitmap: nulls > 0 ? bitmap : null,
      valueOffsets: offsets,
      child,
    });
  };
  const laps = new Laps();
  const batches: InstanceType<typeof arrow.RecordBatch>[] = [];
  for (let start = 0; start < c.rows; start += ARROW_BATCH_ROWS) {
    const end = Math.min(c.rows, start + ARROW_BATCH_ROWS);
    const length = end - start;
    const fields: InstanceType<typeof arrow.Field>[] = [];
    const children: InstanceType<typeof arrow.Data>[] = [];
    for (const { name, kind } of COLUMNS) {
      const source = c[name];
      let data: InstanceType<typeof arrow.Data>;
      if (kind === 'text') data = textData((source as (string | null)[]).slice(start, end));
      else if (kind === 'list') data = listData((source as (string[] | null)[]).slice(start, end));
      else if (kind === 'bigint')
        data = arrow.makeData({
          type: new arrow.Int64(),
          length,
          data: (source as BigInt64Array).subarray(start, end),
        });
      else if (kind === 'double')
        data = arrow.makeData({
          type: new arrow.Float64(),
          length,
          data: (source as Float64Array).subarray(start, end),
        });
      else
        data = arrow.makeData({
          type: new arrow.DateDay(),
          length,
          data: (source as Int32Array).subarray(start, end),
        });
      fields.push(new arrow.Field(name, data.type, true));
      children.push(data);
    }
    const schema = new arrow.Schema(fields);
    const struct = arrow.makeData({ type: new arrow.Struct(fields), length, children });
    batches.push(new arrow.RecordBatch(schema, struct));
  }
  laps.lap('Arrow buffers');
  const ipc = arrow.tableToIPC(new arrow.Table(batches), 'stream');
  batches.length = 0;
  laps.lap('IPC');
  const table = wasm.Table.fromIPCStream(ipc);
  laps.lap('into wasm');
  const properties = new wasm.WriterPropertiesBuilder()
    .setCompression(wasm.Compression.ZSTD)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .build();
  writeFileSync(file, wasm.writeParquet(table, properties));
  laps.lap('writeParquet');
  return laps.toString();
};

/** d: hyparquet-writer, columns as they are. */
const hyparquet: Candidate = async (c, file) => {
  const { parquetWriteFile } = await import('hyparquet-writer');
  // node:zlib has zstd from Node 22.15 (Lambda's runtime); older Nodes get hyparquet's own snappy.
  const zstd = (zlib as { zstdCompressSync?: (input: Uint8Array) => Buffer }).zstdCompressSync;
  const schema: Record<string, unknown>[] = [{ name: 'root', num_children: COLUMNS.length }];
  for (const { name, kind } of COLUMNS) {
    if (kind === 'list') {
      schema.push(
        { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      );
    } else {
      const type = { text: 'BYTE_ARRAY', bigint: 'INT64', double: 'DOUBLE', date: 'INT32' }[kind];
      const converted = { text: 'UTF8', bigint: undefined, double: undefined, date: 'DATE' }[kind];
      schema.push({
        name,
        type,
        repetition_type: 'OPTIONAL',
        ...(converted && { converted_type: converted }),
      });
    }
  }
  await parquetWriteFile({
    filename: file,
    columnData: COLUMNS.map(({ name }) => ({ name, data: c[name] as never })),
    schema: schema as never,
    codec: zstd ? 'ZSTD' : 'SNAPPY',
    ...(zstd && { compressors: { ZSTD: (input: Uint8Array) => new Uint8Array(zstd(input)) } }),
    rowGroupSize: ROW_GROUP_ROWS,
  });
  return zstd ? undefined : 'snappy: this Node has no zstd';
};

/** Each candidate, and the modules it loads (loaded before the clock starts: start-up is not measured). */
const CANDIDATES: Record<
  string,
  { readonly name: string; readonly write: Candidate; readonly load: () => Promise<unknown> }
> = {
  a: {
    name: 'duckdb-rows (today)',
    write: duckdbRows,
    load: () => import('../shared/adapters/duckdb/parquet-table-writer.ts'),
  },
  b: { name: 'duckdb-chunks', write: duckdbChunks, load: () => import('@duckdb/node-api') },
  c: {
    name: 'parquet-wasm + arrow',
    write: parquetWasm,
    load: () => Promise.all([import('apache-arrow'), import('parquet-wasm')]),
  },
  d: { name: 'hyparquet-writer', write: hyparquet, load: () => import('hyparquet-writer') },
};

// ---------------------------------------------------------------------------------------------
// Measuring

interface Measured {
  readonly candidate: string;
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly inputRssMb: number;
  readonly peakRssDeltaMb: number;
  readonly fileMb: number;
  readonly note?: string;
}

/** A /proc/self/status field in MB (Linux). */
function statusMb(field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!match) throw new Error(`/proc/self/status has no ${field}: this spike measures memory on Linux only`);
  return Number(match[1]) / 1024;
}

async function measureHere(key: string, rows: number, dir: string): Promise<Measured> {
  const candidate = CANDIDATES[key]!;
  await candidate.load();
  const columns = makeColumns(rows);
  (globalThis as { gc?: () => void }).gc?.();
  // Resets the peak RSS (VmHWM) to the current RSS: what follows is the writer's own peak.
  writeFileSync('/proc/self/clear_refs', '5');
  const inputRssMb = statusMb('VmRSS');
  const scratch = join(dir, `scratch-${key}`);
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const file = join(dir, `${key}.parquet`);
  rmSync(file, { force: true });
  const cpu = process.cpuUsage();
  const start = performance.now();
  const note = await candidate.write(columns, file, scratch);
  const wallSeconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const peakRssDeltaMb = statusMb('VmHWM') - inputRssMb;
  rmSync(scratch, { recursive: true, force: true });
  return {
    candidate: candidate.name,
    cpuSeconds: (used.user + used.system) / 1e6,
    wallSeconds,
    inputRssMb,
    peakRssDeltaMb,
    fileMb: statSync(file).size / 1e6,
    ...(note && { note }),
  };
}

interface Checked {
  readonly rows: number;
  readonly types: string;
  readonly fingerprint: string;
}

/** The file read back by DuckDB: rows, column types, and a fingerprint of every value. */
async function check(file: string): Promise<Checked> {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const { ident, literal } = await import('../shared/adapters/duckdb/final-table.ts');
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const from = `read_parquet(${literal(file)})`;
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${from}`);
  const types = described
    .getRows()
    .map((r) => `${r[0]} ${r[1]}`)
    .join(', ');
  const row = `row(${COLUMNS.map((col) => ident(col.name)).join(', ')})`;
  const result = await connection.runAndReadAll(
    `SELECT count(*), bit_xor(hash(${row}, file_row_number))::VARCHAR FROM read_parquet(${literal(file)}, file_row_number = true)`,
  );
  const [rows, fingerprint] = result.getRows()[0]!;
  connection.closeSync();
  instance.closeSync();
  return { rows: Number(rows), types, fingerprint: String(fingerprint) };
}

function measureInChild(key: string, rows: number, dir: string): Measured | undefined {
  const child = spawnSync(
    process.execPath,
    [
      // The flags and malloc setting `bin/sluice.js` runs with, as in the bench.
      ...process.execArgv,
      ...NODE_FLAGS,
      '--expose-gc',
      import.meta.filename,
      '--candidate',
      key,
      '--rows',
      String(rows),
      '--out',
      dir,
    ],
    {
      encoding: 'utf8',
      env: { ...process.env, ...MALLOC_ENV },
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  if (child.status !== 0) {
    process.stderr.write(`candidate ${key} failed with exit code ${child.status}; continuing without it\n`);
    return undefined;
  }
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as Measured;
}

async function main(): Promise<void> {
  if (values.help) {
    process.stdout.write(
      'npm run spike:parquet -- [--rows 2700000] [--only a,b,c,d] [--out .bench/spike-parquet]\n',
    );
    return;
  }
  const rows = Number(values.rows);
  if (!Number.isSafeInteger(rows) || rows <= 0) {
    process.stderr.write(`bad --rows ${values.rows}: give a positive whole number, e.g. --rows 2700000\n`);
    process.exitCode = 2;
    return;
  }
  const dir = resolve(values.out!);
  mkdirSync(dir, { recursive: true });
  if (values.candidate) {
    process.stdout.write(`${JSON.stringify(await measureHere(values.candidate, rows, dir))}\n`);
    return;
  }
  const only = values.only!.split(',').filter(Boolean);
  const unknown = only.filter((key) => !(key in CANDIDATES));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown candidate ${unknown.join(', ')}: use ${Object.keys(CANDIDATES).join(', ')}\n`,
    );
    process.exitCode = 2;
    return;
  }
  const table: Record<string, unknown>[] = [];
  let baseline: Checked | undefined;
  for (const key of Object.keys(CANDIDATES)) {
    if (only.length > 0 && !only.includes(key)) continue;
    process.stderr.write(`${key} ${CANDIDATES[key]!.name}: ${rows.toLocaleString('en-US')} rows…\n`);
    const measured = measureInChild(key, rows, dir);
    if (!measured) continue;
    const checked = await check(join(dir, `${key}.parquet`));
    baseline ??= key === 'a' ? checked : undefined;
    table.push({
      candidate: `${key} ${measured.candidate}`,
      'CPU s': measured.cpuSeconds.toFixed(1),
      'wall s': measured.wallSeconds.toFixed(1),
      'peak RSS +MB': measured.peakRssDeltaMb.toFixed(0),
      'file MB': measured.fileMb.toFixed(1),
      rows: checked.rows === rows ? 'all' : `${checked.rows} of ${rows}`,
      'same values as a': baseline ? String(checked.fingerprint === baseline.fingerprint) : '–',
      note: measured.note ?? '',
    });
    process.stderr.write(`  ${JSON.stringify(measured)}\n  types: ${checked.types}\n`);
  }
  console.table(table);
}

await main();
