/**
 * Deterministic generator of CMS Transparency-in-Coverage in-network-rates files (schema 2.x shape).
 *
 * The same options always give byte-identical output: every random choice comes from small seeded
 * PRNG streams, one per top-level array, so a record's bytes do not depend on where its array sits
 * in the file (the `in_network` array of seed 7 is identical for every header/array position).
 * Records are built directly as compact JSON text rather than with JSON.stringify: it is faster, and
 * the point is to produce spellings JSON.stringify never emits (`1.25e2`, `\/`, `\u00e9`, escaped
 * keys). Pretty and odd whitespace are added afterwards by re-spacing that text.
 *
 * The file is streamed in ~1 MB chunks with backpressure; memory stays flat whatever the size.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export type HeaderPosition = 'before' | 'after' | 'split';

export interface TicGenerateOptions {
  /** 32-bit unsigned integer; same seed + same options = same bytes. */
  seed: number;
  /** Approximate uncompressed size; the file ends up within a few KB of it (or one record over). */
  targetBytes: number;
  /** Header scalars before both arrays, after both, or split: some before, one between, one after. */
  headerPosition?: HeaderPosition;
  /** Whether `provider_references` comes before or after `in_network`. */
  providerReferencesPosition?: 'before' | 'after';
  /** Add parser traps: escaped keys, odd whitespace, deep nesting, 100 KB strings, look-alike text. */
  nasty?: boolean;
  /** Indented output with newlines, two spaces per level. */
  pretty?: boolean;
  /** Called after each chunk handed to the sink, with the uncompressed bytes written so far. */
  onProgress?: (bytesWritten: number) => void;
}

/** What a correct reader of the generated file must find; written by the CLI as `<out>.expected.json`. */
export interface TicExpectedFacts {
  seed: number;
  bytes: number;
  records: { in_network: number; provider_references: number };
  /** Sum over in_network[*].negotiated_rates. */
  negotiated_rates: number;
  /** Sum over in_network[*].negotiated_rates[*].negotiated_prices. */
  negotiated_prices: number;
  /** Elements of every provider_groups array: provider_references[*] plus inline ones in negotiated_rates. */
  provider_groups: number;
  /** Decoded values of the top-level scalar members, in file order. */
  headers: Record<string, string>;
  /** Bytes of the largest array element (from its `{` to its `}`), and which one it is. */
  largestRecordBytes: number;
  largestRecord: string;
  /** Top-level keys in file order. */
  keyOrder: string[];
  options: {
    targetBytes: number;
    headerPosition: HeaderPosition;
    providerReferencesPosition: 'before' | 'after';
    nasty: boolean;
    pretty: boolean;
  };
}

/** Streams a TiC in-network file to `sink` (which it does not end) and returns the facts it contains. */
export async function generateTicInNetwork(
  options: TicGenerateOptions,
  sink: Writable,
): Promise<TicExpectedFacts> {
  const { seed, targetBytes } = options;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in 0..4294967295, got ${seed}`);
  }
  if (!Number.isFinite(targetBytes) || targetBytes <= 0) {
    throw new RangeError(`targetBytes must be a positive number, got ${targetBytes}`);
  }
  const opts: TicExpectedFacts['options'] = {
    targetBytes,
    headerPosition: options.headerPosition ?? 'before',
    providerReferencesPosition: options.providerReferencesPosition ?? 'before',
    nasty: options.nasty ?? false,
    pretty: options.pretty ?? false,
  };
  const facts: TicExpectedFacts = {
    seed,
    bytes: 0,
    records: { in_network: 0, provider_references: 0 },
    negotiated_rates: 0,
    negotiated_prices: 0,
    provider_groups: 0,
    headers: {},
    largestRecordBytes: 0,
    largestRecord: '',
    keyOrder: [],
    options: opts,
  };
  const frame = new Frame(opts.pretty, opts.nasty ? new Rng(seed, 3) : undefined);
  const headers = makeHeaders(new Rng(seed, 1), opts.nasty);
  const headerBytes = headers.reduce((n, h) => n + byteLength(h.json) + h.key.length + 4, 0);
  const refsBudget = Math.max(1, Math.floor(targetBytes * REFS_SHARE));
  const refsFirst = opts.providerReferencesPosition === 'before';
  const pool = new GroupPool(seed, opts.nasty);
  const newRefs = (): ProviderReferences => new ProviderReferences(seed, opts, frame.recordIndent, pool);
  const out = new Output(sink, options.onProgress);

  // 'split' puts last_updated_on between the two arrays and version after both: readers that stop
  // at the first array, or that expect all scalars up front, both get caught.
  const split = opts.headerPosition === 'split';
  const before = opts.headerPosition === 'before' ? headers : split ? headers.slice(0, -2) : [];
  const between = split ? headers.slice(-2, -1) : [];
  const after = opts.headerPosition === 'after' ? headers : split ? headers.slice(-1) : [];

  // in_network refers to provider groups by id, so it must know how many there are; when
  // provider_references comes last it is generated once up front just to count (a tenth of the file).
  let refs: ArrayResult | undefined = refsFirst ? undefined : await emitArray(frame, newRefs(), refsBudget);

  let members = 0;
  const writeHeaders = async (list: Header[]): Promise<void> => {
    for (const h of list) {
      out.add(frame.member(members++, h.key) + h.json);
      facts.headers[h.key] = h.value;
      facts.keyOrder.push(h.key);
      if (out.full()) await out.flush();
    }
  };
  const writeRefs = async (): Promise<void> => {
    const source = newRefs();
    out.add(`${frame.member(members++, 'provider_references')}[`);
    facts.keyOrder.push('provider_references');
    refs = noteArray(facts, 'provider_references', await emitArray(frame, source, refsBudget, out));
    facts.provider_groups += source.groups;
  };
  const writeInNetwork = async (): Promise<void> => {
    // Depends only on position-free byte counts, so every position gets the same in_network records.
    const budget = targetBytes - (refs?.bytes ?? 0) - headerBytes - FRAME_ALLOWANCE;
    const source = new InNetwork(seed, opts, frame.recordIndent, pool, refs?.count ?? 1);
    out.add(`${frame.member(members++, 'in_network')}[`);
    facts.keyOrder.push('in_network');
    noteArray(facts, 'in_network', await emitArray(frame, source, budget, out));
    facts.negotiated_rates += source.rates;
    facts.negotiated_prices += source.prices;
    facts.provider_groups += source.groups;
  };

  out.add(frame.open());
  await writeHeaders(before);
  await (refsFirst ? writeRefs() : writeInNetwork());
  await writeHeaders(between);
  await (refsFirst ? writeInNetwork() : writeRefs());
  await writeHeaders(after);
  out.add(frame.close());
  await out.flush();
  facts.bytes = out.bytes;
  return facts;
}

/** Copies one array's count and largest record into the facts; returns the result. */
function noteArray(
  facts: TicExpectedFacts,
  key: 'in_network' | 'provider_references',
  result: ArrayResult,
): ArrayResult {
  facts.records[key] = result.count;
  if (result.largestBytes > facts.largestRecordBytes) {
    facts.largestRecordBytes = result.largestBytes;
    facts.largestRecord = `${key}[${result.largestIndex}]`;
  }
  return result;
}

/** Share of the target given to provider_references; real files range from ~0 to most of the file. */
const REFS_SHARE = 0.1;
/** Bytes reserved for braces, member names and whitespace between top-level members. */
const FRAME_ALLOWANCE = 256;
/** Output is handed to the sink in chunks of this many bytes (or single records, if larger). */
const CHUNK_BYTES = 1 << 20;
/** Size of the multi-MB records, and the file size from which at least one is guaranteed. */
const HUGE_MIN_BYTES = 2_500_000;
const HUGE_MAX_BYTES = 6_000_000;
const HUGE_GUARANTEED_FROM = 20_000_000;
const HUGE_CHANCE = 1 / 2000;

// ---------------------------------------------------------------------------------------------
// Output and top-level framing

/**
 * Encodes text straight into large Buffers (one UTF-8 pass that also yields the byte count) and
 * hands them to the sink, respecting its backpressure.
 */
class Output {
  bytes = 0;
  private chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  private used = 0;
  private readonly ready: Buffer[] = [];

  constructor(
    private readonly sink: Writable,
    private readonly onProgress?: (bytes: number) => void,
  ) {}

  /** Appends text; returns its UTF-8 byte length. */
  add(text: string): number {
    // A UTF-16 unit never takes more than 3 bytes, so this guarantees write() won't truncate.
    if (text.length * 3 > CHUNK_BYTES - this.used) {
      this.seal();
      if (text.length * 3 > CHUNK_BYTES) {
        const big = Buffer.from(text, 'utf8');
        this.ready.push(big);
        this.bytes += big.length;
        return big.length;
      }
    }
    const n = this.chunk.write(text, this.used, 'utf8');
    this.used += n;
    this.bytes += n;
    return n;
  }

  full(): boolean {
    return this.ready.length > 0;
  }

  async flush(): Promise<void> {
    this.seal();
    for (const buffer of this.ready.splice(0)) {
      if (this.sink.destroyed) throw new Error('generateTicInNetwork: sink was destroyed');
      // events.once rejects if the sink emits 'error' while we wait, so a failed pipeline can't hang us.
      if (!this.sink.write(buffer)) await once(this.sink, 'drain');
    }
    this.onProgress?.(this.bytes);
  }

  /** Moves the filled part of the current chunk to the ready list and starts a fresh chunk. */
  private seal(): void {
    if (this.used === 0) return;
    this.ready.push(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.used = 0;
  }
}

/** Whitespace and punctuation around top-level members and array elements. */
class Frame {
  readonly recordIndent: string;
  constructor(
    private readonly pretty: boolean,
    /** Set in nasty mode: draws odd whitespace between top-level tokens. */
    private readonly odd: Rng | undefined,
  ) {
    this.recordIndent = pretty ? '    ' : '';
  }

  open(): string {
    if (this.odd) return `${this.odd.pick(ODD_SPACE)}{${this.odd.pick(ODD_SPACE)}`;
    return this.pretty ? '{\n' : '{';
  }

  member(index: number, key: string): string {
    const comma = index === 0 ? '' : ',';
    const odd = this.odd;
    if (odd) return `${comma}${odd.pick(ODD_SPACE)}"${key}"${odd.pick(ODD_SPACE)}:${odd.pick(ODD_SPACE)}`;
    return this.pretty ? `${comma ? ',\n' : ''}  "${key}": ` : `${comma}"${key}":`;
  }

  /** Text before element `index` of a top-level array; drawn from the array's own PRNG so it's position-free. */
  element(index: number, rng: Rng): string {
    if (this.odd && rng.chance(0.05)) return `${index === 0 ? '' : ','}${rng.pick(ODD_SPACE)}`;
    if (this.pretty) return index === 0 ? '\n    ' : ',\n    ';
    return index === 0 ? '' : ',';
  }

  arrayEnd(): string {
    return this.pretty ? '\n  ]' : ']';
  }

  /** Nasty files end in trailing whitespace, which JSON allows after the root value. */
  close(): string {
    if (this.odd) return `${this.odd.pick(ODD_SPACE)}}\r\n\t \n`;
    return this.pretty ? '\n}\n' : '}';
  }
}

/** A top-level array's records, produced one serialized record at a time. */
interface RecordSource {
  readonly rng: Rng;
  /** JSON text of record `index`; `budgetLeft` lets a source avoid records that would overshoot. */
  next(index: number, budgetLeft: number): string;
}

/** What writing (or measuring) one top-level array produced. */
interface ArrayResult {
  count: number;
  bytes: number;
  largestBytes: number;
  largestIndex: number;
}

/**
 * Serializes records until `budget` bytes (records + separators) are produced, writing them to `out`
 * or, without `out`, only measuring. Both runs draw the same random numbers, so they agree exactly.
 */
async function emitArray(
  frame: Frame,
  source: RecordSource,
  budget: number,
  out?: Output,
): Promise<ArrayResult> {
  const result: ArrayResult = { count: 0, bytes: 0, largestBytes: 0, largestIndex: 0 };
  // At least one record: the schema wants non-empty arrays and readers deserve something to read.
  while (result.count === 0 || result.bytes < budget) {
    const index = result.count;
    const record = source.next(index, budget - result.bytes);
    const sep = frame.element(index, source.rng);
    const sepBytes = out ? out.add(sep) : byteLength(sep);
    const recordBytes = out ? out.add(record) : byteLength(record);
    if (recordBytes > result.largestBytes) {
      result.largestBytes = recordBytes;
      result.largestIndex = index;
    }
    result.bytes += sepBytes + recordBytes;
    result.count++;
    if (out?.full()) await out.flush();
  }
  out?.add(frame.arrayEnd());
  return result;
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

// ---------------------------------------------------------------------------------------------
// PRNG

/** mulberry32: tiny, fast, and good enough to make data look varied. */
export class Rng {
  private state: number;
  constructor(seed: number, stream: number) {
    // Mix seed and stream so neighbouring seeds and streams start far apart.
    let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(stream + 1, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
    this.state = (h ^ (h >>> 15)) >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  digits(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += this.int(10);
    return s;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON text: records are built as compact text, then re-spaced for pretty or nasty output

/** A vocabulary entry already spelled as JSON text, for escapes JSON.stringify would normalize away. */
class Raw {
  constructor(readonly json: string) {}
}
/** JSON text of a vocabulary entry. */
const enc = (v: string | Raw): string => (v instanceof Raw ? v.json : JSON.stringify(v));

// Compact JSON text has no whitespace, so it splits cleanly into strings, scalars and punctuation.
const STRING = String.raw`"(?:[^"\\]+|\\.)*"`;
const SCALAR = String.raw`[^{}[\],:"]+`;
/** All tokens, for match(). */
const TOKENS = new RegExp(`${STRING}|${SCALAR}|[{}[\\],:]`, 'gy');
/** One string or scalar at lastIndex. */
const TOKEN = new RegExp(`${STRING}|${SCALAR}`, 'y');
/** The rest of an array that holds only scalars, up to and including its `]`. */
const SCALAR_ARRAY_REST = new RegExp(`(?:${STRING}|${SCALAR}|,)*\\]`, 'y');
/** Separator commas (group 1 keeps strings, whose commas are content, as they are). */
const SEPARATOR_COMMA = new RegExp(`(${STRING})|,`, 'g');

/** Like JSON.stringify(value, null, 2) at `indent`, except arrays of scalars stay on one line (as in CMS's samples). */
function pretty(json: string, indent: string): string {
  let out = '';
  let pad = indent;
  let pos = 0;
  // Punctuation is handled char by char; only strings and scalars need the regex.
  while (pos < json.length) {
    const c = json[pos++];
    if (c === '[') {
      SCALAR_ARRAY_REST.lastIndex = pos;
      const rest = SCALAR_ARRAY_REST.exec(json)?.[0];
      if (rest !== undefined) {
        out += `[${rest.replace(SEPARATOR_COMMA, (_comma, string?: string) => string ?? ', ')}`;
        pos += rest.length;
        continue;
      }
    }
    if (c === '{' && json[pos] === '}') {
      out += '{}';
      pos++;
    } else if (c === '{' || c === '[') {
      pad += '  ';
      out += `${c}\n${pad}`;
    } else if (c === '}' || c === ']') {
      pad = pad.slice(2);
      out += `\n${pad}${c}`;
    } else if (c === ',') {
      out += `,\n${pad}`;
    } else if (c === ':') {
      out += ': ';
    } else {
      TOKEN.lastIndex = pos - 1;
      const token = TOKEN.exec(json)![0];
      out += token;
      pos += token.length - 1;
    }
  }
  return out;
}

/** All four JSON whitespace characters in unusual runs, including none at all. */
const ODD_SPACE = ['', '', ' ', '\t', '\r\n', '\n', '   ', ' \t ', '\r\n\t\t', '\n\n', '\r'];

/** Random legal whitespace between every pair of tokens. */
function oddlySpaced(json: string, rng: Rng): string {
  const tokens = json.match(TOKENS) ?? [];
  let out = tokens[0] ?? '';
  for (let i = 1; i < tokens.length; i++) out += rng.pick(ODD_SPACE) + tokens[i]!;
  return out;
}

interface RecordStyle {
  pretty: boolean;
  indent: string;
}

function styled(json: string, style: RecordStyle, oddSpace: Rng | undefined): string {
  if (oddSpace) return oddlySpaced(json, oddSpace);
  return style.pretty ? pretty(json, style.indent) : json;
}

// ---------------------------------------------------------------------------------------------
// Headers

interface Header {
  key: string;
  /** Decoded value, as JSON.parse would return it. */
  value: string;
  json: string;
}

function makeHeaders(rng: Rng, nasty: boolean): Header[] {
  const entity = rng.pick(ENTITIES);
  const members: [string, string | Raw][] = [
    [
      'reporting_entity_name',
      // Escapes, 4-byte UTF-8 and a trailing escaped backslash right where header scanners look.
      nasty ? new Raw(`"${entity.name} \\"Sa\\u00fade\\" \\/ 医疗 🏥\\tC:\\\\"`) : entity.name,
    ],
    ['reporting_entity_type', entity.type],
  ];
  // Most files describe one plan; the rest (multi-plan files, TPAs) carry no plan fields.
  if (rng.chance(0.7)) {
    const ein = rng.chance(0.5);
    const planName = `${rng.pick(PLAN_WORDS)} ${rng.pick(['PPO', 'HMO', 'EPO', 'POS', 'HDHP'])}`;
    const lookalike = new Raw(`"${planName} \\"in_network\\": [ \\"provider_references\\":[ é"`);
    members.push(['plan_name', nasty ? lookalike : planName]);
    members.push(['issuer_name', `${entity.name} Issuer`]);
    if (ein) members.push(['plan_sponsor_name', rng.pick(SPONSORS)]);
    members.push(['plan_id_type', ein ? 'ein' : 'hios']);
    const hios = `${rng.digits(5)}${rng.pick(['AL', 'TX', 'NY', 'CA'])}${rng.digits(7)}`;
    members.push(['plan_id', ein ? rng.digits(10) : hios]);
    members.push(['plan_market_type', ein ? 'group' : 'individual']);
  }
  const date = `${rng.range(2022, 2025)}-${pad2(rng.range(1, 12))}-${pad2(rng.range(1, 28))}`;
  members.push(['last_updated_on', date]);
  members.push(['version', rng.pick(['2.0.0', '2.0.0', '2.0.1', '2.0'])]);
  return members.map(([key, v]) => {
    const json = enc(v);
    return { key, json, value: JSON.parse(json) as string };
  });
}

const pad2 = (n: number): string => String(n).padStart(2, '0');

// ---------------------------------------------------------------------------------------------
// Provider groups, shared by provider_references and inline negotiated_rates

/** Serialized provider groups to draw from: real files repeat the same groups heavily (and so compress well). */
class GroupPool {
  /** One to a dozen NPIs each. */
  readonly small: string[] = [];
  /** Tens of NPIs each, for the multi-MB records. */
  readonly large: string[] = [];

  constructor(seed: number, nasty: boolean) {
    const rng = new Rng(seed, 5);
    for (let i = 0; i < 4096; i++)
      this.small.push(providerGroup(rng, rng.range(1, 12), nasty && rng.chance(0.05)));
    for (let i = 0; i < 256; i++) this.large.push(providerGroup(rng, rng.range(20, 80), false));
  }

  /** `count` groups from `list`, comma-separated. */
  pick(rng: Rng, list: string[], count: number): string {
    let out = list[rng.int(list.length)]!;
    for (let i = 1; i < count; i++) out += `,${list[rng.int(list.length)]!}`;
    return out;
  }
}

function providerGroup(rng: Rng, npis: number, escapedKey: boolean): string {
  const npi: number[] = [];
  for (let i = 0; i < npis; i++) npi.push(1_000_000_000 + Math.floor(rng.next() * 8_999_999_999));
  // Individual providers report their NPI as TIN; organisations an EIN with a business name.
  const tin = rng.chance(0.15)
    ? `{"type":"npi","value":"${npi[0]}"}`
    : `{"type":"ein","value":"${rng.digits(2)}-${rng.digits(7)}","business_name":${rng.pick(BUSINESSES)}}`;
  return `{${escapedKey ? '"\\u006epi"' : '"npi"'}:[${npi.join(',')}],"tin":${tin}}`;
}

// ---------------------------------------------------------------------------------------------
// provider_references

class ProviderReferences implements RecordSource {
  readonly rng: Rng;
  groups = 0;
  private readonly style: RecordStyle;

  constructor(
    seed: number,
    private readonly opts: TicExpectedFacts['options'],
    indent: string,
    private readonly pool: GroupPool,
  ) {
    this.rng = new Rng(seed, 2);
    this.style = { pretty: opts.pretty, indent };
  }

  next(index: number): string {
    const rng = this.rng;
    // A few references list hundreds of groups (large health systems), most one to three.
    const count = rng.chance(1 / 500) ? rng.range(100, 400) : rng.range(1, 3);
    this.groups += count;
    const groups = this.pool.pick(rng, this.pool.small, count);
    const json = `{"provider_group_id":${index + 1},"network_name":[${rng.pick(NETWORKS)}],"provider_groups":[${groups}]}`;
    const odd = this.opts.nasty && (index === 0 || rng.chance(0.03));
    return styled(json, this.style, odd ? rng : undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// in_network

/** Which parser traps a nasty record carries. */
interface Traps {
  escapedKeys: boolean;
  oddSpace: boolean;
  deep: boolean;
  lookalike: boolean;
  empty: boolean;
  long: boolean;
}
const NO_TRAPS: Traps = {
  escapedKeys: false,
  oddSpace: false,
  deep: false,
  lookalike: false,
  empty: false,
  long: false,
};
const ALL_TRAPS: Traps = {
  escapedKeys: true,
  oddSpace: true,
  deep: true,
  lookalike: true,
  empty: true,
  long: true,
};

class InNetwork implements RecordSource {
  readonly rng: Rng;
  rates = 0;
  prices = 0;
  groups = 0;
  private readonly style: RecordStyle;
  /** Index of the record forced to be multi-MB, so big files always have one; -1 for none. */
  private readonly hugeAt: number;
  /** The current record's base price and its reusable negotiated_prices arrays. */
  private baseCents = 0;
  private sharedPrices: { json: string; count: number }[] = [];

  constructor(
    seed: number,
    private readonly opts: TicExpectedFacts['options'],
    indent: string,
    private readonly pool: GroupPool,
    /** provider_group_ids run from 1 to this. */
    private readonly groupIds: number,
  ) {
    this.rng = new Rng(seed, 4);
    this.style = { pretty: opts.pretty, indent };
    this.hugeAt = opts.targetBytes >= HUGE_GUARANTEED_FROM ? this.rng.range(2, 12) : -1;
  }

  next(index: number, budgetLeft: number): string {
    const rng = this.rng;
    // Random huge records only where they fit, so the file stays near its target size.
    const huge = index === this.hugeAt || (rng.chance(HUGE_CHANCE) && budgetLeft > 2 * HUGE_MAX_BYTES);
    const traps = this.opts.nasty && !huge ? this.traps(index) : NO_TRAPS;
    const system = rng.pick(CODE_SYSTEMS);
    // Log-uniform base price from $10 to about $30,000.
    this.baseCents = Math.round(10 ** (3 + rng.next() * 3.5));
    this.sharedPrices = [];
    const roll = rng.next();
    const arrangement = roll < 0.9 ? 'ffs' : roll < 0.95 ? 'bundle' : 'capitation';

    let rates = this.rate(huge, traps, true);
    let count = 1;
    if (huge) {
      const size = rng.range(HUGE_MIN_BYTES, HUGE_MAX_BYTES);
      for (; rates.length < size; count++) rates += `,${this.rate(true, traps, false)}`;
    } else {
      // Mostly a handful of rates, sometimes a few dozen.
      const target = rng.chance(0.1) ? rng.range(10, 40) : rng.range(1, 6);
      for (; count < target; count++) rates += `,${this.rate(false, traps, false)}`;
    }
    if (traps.empty) {
      rates += ',{"provider_references":[],"negotiated_prices":[]}';
      count++;
    }
    this.rates += count;

    const description = traps.long ? longString(rng) : traps.lookalike ? LOOKALIKE : rng.pick(DESCRIPTIONS);
    let json =
      `{"negotiation_arrangement":"${arrangement}","name":${rng.pick(NAMES)},` +
      `"billing_code_type":"${system.type}","billing_code_type_version":"${system.version}",` +
      `${traps.escapedKeys ? '"billing\\u005fcode"' : '"billing_code"'}:"${system.code(rng)}",` +
      `"description":${description},` +
      `${traps.escapedKeys ? '"negotiated\\u005frates"' : '"negotiated_rates"'}:[${rates}]`;
    if (arrangement === 'bundle') json += `,"bundled_codes":[${containedCodes(rng)}]`;
    if (arrangement === 'capitation') json += `,"covered_services":[${containedCodes(rng)}]`;
    if (traps.empty && arrangement === 'ffs') json += ',"bundled_codes":[]';
    return styled(`${json}}`, this.style, traps.oddSpace ? rng : undefined);
  }

  /** Record 1 carries every trap so even tiny nasty files have them all; later ones get a few at random. */
  private traps(index: number): Traps {
    if (index === 1) return ALL_TRAPS;
    const rng = this.rng;
    return {
      escapedKeys: rng.chance(0.05),
      oddSpace: rng.chance(0.03),
      deep: rng.chance(0.01),
      lookalike: rng.chance(0.02),
      empty: rng.chance(0.03),
      long: rng.chance(0.002),
    };
  }

  /** One negotiated_rates element. */
  private rate(huge: boolean, traps: Traps, first: boolean): string {
    const rng = this.rng;
    let who: string;
    // Some payers inline provider groups instead of referencing them (schema 1.x style, still seen).
    if (rng.chance(huge ? 0.6 : 0.08)) {
      const count = huge ? rng.range(3, 8) : rng.range(1, 3);
      this.groups += count;
      who = `"provider_groups":[${this.pool.pick(rng, huge ? this.pool.large : this.pool.small, count)}]`;
    } else {
      who = `"provider_references":[${pickIds(rng, huge ? rng.range(50, 300) : rng.range(1, 5), this.groupIds)}]`;
    }
    // A contract usually prices a code the same for many provider sets, so most rates reuse one of
    // the record's few negotiated_prices arrays (and real files compress well because of it).
    const shared = this.sharedPrices;
    const prices =
      first || shared.length < 3 || rng.chance(0.2) ? this.freshPrices(traps, first) : rng.pick(shared);
    if (!first && shared.length < 3) shared.push(prices);
    this.prices += prices.count;
    return `{${who},"negotiated_prices":[${prices.json}]}`;
  }

  /** A fresh negotiated_prices array, with the record's traps in its first price if `first`. */
  private freshPrices(traps: Traps, first: boolean): { json: string; count: number } {
    const count = this.rng.range(1, 4);
    let json = price(this.rng, this.baseCents, first ? traps : NO_TRAPS);
    for (let i = 1; i < count; i++) json += `,${price(this.rng, this.baseCents, NO_TRAPS)}`;
    return { json, count };
  }
}

/** Contracted rates cluster around a code's base price: percentages of a reference fee schedule. */
const RATE_FACTORS = [0.8, 0.9, 1, 1, 1.1, 1.15, 1.25, 1.5, 2];

function price(rng: Rng, baseCents: number, traps: Traps): string {
  const type = rng.pick(NEGOTIATED_TYPES);
  const billingClass = rng.pick(BILLING_CLASSES);
  const factor = rng.pick(RATE_FACTORS);
  const cents = type === 'percentage' ? factor * 10_000 : Math.max(1, Math.round(baseCents * factor));
  const expires = rng.chance(0.5) ? '9999-12-31' : `${rng.range(2024, 2027)}-12-31`;
  let p = `{"negotiated_type":"${type}","negotiated_rate":${rateText(rng, cents)},"expiration_date":"${expires}"`;
  if (billingClass === 'professional' || rng.chance(0.3)) p += `,"service_code":[${serviceCodes(rng)}]`;
  p += `,"billing_class":"${billingClass}","setting":"${rng.pick(SETTINGS)}"`;
  if (traps.empty) return `${p},"billing_code_modifier":[],"additional_information":{}}`;
  if (rng.chance(0.2)) {
    p += `,"billing_code_modifier":[${rng.chance(0.5) ? rng.pick(MODIFIERS) : `${rng.pick(MODIFIERS)},"59"`}]`;
  }
  if (traps.deep) p += `,"additional_information":${deep(20)}`;
  else if (rng.chance(0.03)) p += `,"additional_information":${rng.pick(ADDITIONAL_INFO)}`;
  return `${p}}`;
}

/** Prices are whole cents, spelled every way JSON allows: 123.45, 123.40, 123, 1.2345e2, 1.2345E+2, 12345e-2. */
function rateText(rng: Rng, cents: number): string {
  const roll = rng.next();
  const value = cents / 100;
  if (roll < 0.7) return value.toFixed(2);
  if (roll < 0.8) return String(Math.max(1, Math.round(value)));
  if (roll < 0.87) return value.toExponential().replace('e+', 'e');
  if (roll < 0.93) return value.toExponential().toUpperCase();
  return `${cents}e-2`;
}

/**
 * About `count` distinct provider_group_ids from 1..max, ascending and comma-separated. One id from
 * each of `count` equal slices of the range: sorted and distinct by construction, no Set or sort
 * (this is the hot loop of the multi-MB records). Rare neighbours that round alike are dropped.
 */
function pickIds(rng: Rng, count: number, max: number): string {
  const n = Math.min(count, max);
  const width = max / n;
  let out = '';
  let last = 0;
  for (let i = 0; i < n; i++) {
    const id = 1 + Math.floor((i + rng.next()) * width);
    if (id === last) continue;
    out += last === 0 ? id : `,${id}`;
    last = id;
  }
  return out;
}

function serviceCodes(rng: Rng): string {
  if (rng.chance(0.05)) return '"CSTM-00"';
  const first = rng.pick(PLACES_OF_SERVICE);
  const second = rng.chance(0.5) ? rng.pick(PLACES_OF_SERVICE) : first;
  return second === first ? first : `${first},${second}`;
}

function containedCodes(rng: Rng): string {
  const codes: string[] = [];
  for (let i = rng.range(1, 4); i > 0; i--) {
    const system = rng.pick(CODE_SYSTEMS);
    codes.push(
      `{"billing_code_type":"${system.type}","billing_code_type_version":"${system.version}",` +
        `"billing_code":"${system.code(rng)}","description":${rng.pick(DESCRIPTIONS)}}`,
    );
  }
  return codes.join(',');
}

/** Objects nested `depth` levels down, with top-level key names at every level to fool naive scanners. */
function deep(depth: number): string {
  if (depth === 0) return '"the bottom: \\"in_network\\": [ C:\\\\"';
  return `{"level":${depth},"in_network":[${deep(depth - 1)}],"provider_references":[],"reporting\\u005fentity\\u005fname":"not a header","empty":{}}`;
}

/** About 100 KB of mixed escapes and multi-byte characters in one string. */
function longString(rng: Rng): string {
  const unit = 'Lorem ipsum \\"quoted\\" \\\\ back\\/slash \\u00e9t\\u00e9 naïve café 東京都 😀🏥 \\n\\t';
  return `"${rng.pick(NAMES).slice(1, -1)}: ${unit.repeat(1400)}end C:\\\\"`;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary. Lists used inside records hold JSON text (see enc); header lists hold plain strings.

const ENTITIES = [
  { name: 'Acme Health Insurance Company', type: 'health insurance issuer' },
  { name: 'Blue Meridian Health Plan', type: 'health insurance issuer' },
  { name: 'Cascade Benefit Administrators', type: 'third party administrator' },
  { name: 'Großmann & Søn Employee Health Trust', type: 'group health plan' },
  { name: 'Lakeshore Mutual Health', type: 'health insurance issuer' },
  { name: 'Pacífico Salud Cooperative', type: 'health insurance issuer' },
];
const PLAN_WORDS = ['Choice', 'Select', 'Premier', 'Essential', 'Gold', 'Silver', 'Bronze', 'Élan'];
const SPONSORS = [
  'ACME Auto Parts',
  'Widget Works Inc.',
  'Café Lumière LLC',
  'Northwind Traders',
  '東京 Trading Co.',
];
const NETWORKS = [
  'Choice Network',
  'Choice Plus Network',
  'Réseau Santé Plus',
  'Open Access',
  'Narrow 🌿 Network',
].map(enc);
const BUSINESSES = [
  'Premier Medical Associates',
  'Regional Healthcare Group',
  'City General Hospital',
  'Clínica São João',
  'Müller Orthopädie GmbH',
  'Sunrise "Family" Practice',
  'Smith \\ Jones Pediatrics',
  '北京 Acupuncture Center',
  'Heart ❤️ & Vascular 🫀 Institute',
].map(enc);
const NAMES = [
  'Office Visit, Established Patient, Moderate Complexity',
  'Total Knee Replacement',
  'Outpatient Physical Therapy',
  'Échographie abdominale complète',
  'MRI Brain without Contrast',
  'Consulta de urgência',
  '内視鏡検査 (Upper GI Endoscopy)',
  'Dental Cleaning 🦷',
  'Annual Physical 健康检查 🩺',
  'Allergy Test "Panel A"',
  'Insulin, 5 units \\ per dose',
  'Chest X-Ray, 2 Views',
  'Colonoscopy, Screening',
  'Emergency Dept Visit, Level 4',
].map(enc);
const DESCRIPTIONS = [
  'Office or other outpatient visit for the evaluation and management of an established patient',
  'Arthroplasty, knee condyle and plateau; medial and lateral compartments',
  'Therapeutic exercises to develop strength and endurance, range of motion and flexibility, each 15 minutes',
  'Magnetic resonance imaging, brain; without contrast material',
  'Radiologic examination, chest; 2 views',
  'Colonoscopy, flexible; diagnostic, including collection of specimen(s)',
  'Nasal "spray" administration\twith tab and\nnewline',
  'Rééducation fonctionnelle – séance de kinésithérapie',
  '歯科 cleaning and exam; 预防性 care 🦷',
  'Emergency department visit 🚑 for a problem of high severity',
  new Raw('"Evaluation w\\/ management \\u00e9valuation d\\u00e9taill\\u00e9e"'),
  new Raw('"Stethoscope \\ud83e\\ude7a escaped as a surrogate pair"'),
  new Raw('"Imaging stored under C:\\\\"'),
].map(enc);
const LOOKALIKE =
  '"Looks like structure: \\"in_network\\": [ {\\"negotiated_rates\\": []} ], \\"provider_references\\":[ 1 ] and \\"version\\": \\"9\\"}"';
const ADDITIONAL_INFO = [
  'Rate applies per 15-minute unit',
  'Percentage of billed charges; see contract §4.2',
  new Raw('"Formula: base \\u00d7 1.25\\nCap: $5,000\\ttier 2"'),
  new Raw('"Path of the fee schedule: \\\\\\\\fileserver\\\\rates\\\\"'),
].map(enc);

interface CodeSystem {
  type: string;
  version: string;
  code: (rng: Rng) => string;
}
const cpt: CodeSystem = { type: 'CPT', version: '2024', code: (r) => String(r.range(10000, 99499)) };
const hcpcs: CodeSystem = {
  type: 'HCPCS',
  version: '2024',
  code: (r) => `${r.pick(['A', 'E', 'G', 'J', 'L', 'Q'])}${r.digits(4)}`,
};
/** Weighted towards CPT and HCPCS, as real files are. */
const CODE_SYSTEMS: CodeSystem[] = [
  cpt,
  cpt,
  cpt,
  cpt,
  hcpcs,
  hcpcs,
  { type: 'MS-DRG', version: '41', code: (r) => r.digits(3) },
  { type: 'RC', version: '2024', code: (r) => `0${r.digits(3)}` },
  { type: 'NDC', version: '2024', code: (r) => `${r.digits(5)}-${r.digits(4)}-${r.digits(2)}` },
  { type: 'CDT', version: '2024', code: (r) => `D${r.digits(4)}` },
  { type: 'APC', version: '2024', code: (r) => r.digits(4) },
  { type: 'ICD', version: '10', code: (r) => `S${r.digits(2)}.${r.digits(3)}` },
];
/** Weighted: mostly plain negotiated rates. */
const NEGOTIATED_TYPES = [
  'negotiated',
  'negotiated',
  'negotiated',
  'negotiated',
  'fee schedule',
  'derived',
  'percentage',
  'per diem',
];
const BILLING_CLASSES = ['professional', 'professional', 'institutional', 'both'];
const SETTINGS = ['outpatient', 'outpatient', 'inpatient', 'both'];
const MODIFIERS = ['26', 'TC', 'AS', 'GT', '95', 'LT', 'RT'].map(enc);
const PLACES_OF_SERVICE =
  '01 02 03 04 05 06 07 08 09 10 11 12 19 20 21 22 23 24 31 32 41 49 50 57 61 65 72 81 99'
    .split(' ')
    .map(enc);
