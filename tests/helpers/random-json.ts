/**
 * A seeded generator of nasty but valid JSON documents shaped like the files sluice ingests:
 * `{ headers…, in_network: [...], provider_references: [...], nested: { count, items: [...] }, noise… }`.
 *
 * The generator writes JSON text directly (it never calls JSON.stringify on the document), choosing at
 * random: whitespace between any two tokens (space, tab, CR, LF), `\uXXXX` escapes for any character
 * (also inside keys, so `"in\u005fnetwork"` must still match `in_network`), surrogate pairs, raw 2/3/4-byte
 * UTF-8, strings that end in an escaped backslash, the text `"in_network": [` inside strings, exponent
 * forms of numbers, empty and nested arrays, scalar records, and keys order. Tests compare what the
 * scanner extracts with what JSON.parse makes of the same text, so the generator only has to produce valid
 * JSON, not to predict the result.
 */

/** mulberry32: a tiny, fast, seedable PRNG. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** Pieces that strings are made of: JSON metacharacters, escapes-to-be, multibyte UTF-8, decoys. */
const STRING_PIECES = [
  'plain',
  'x',
  ' ',
  'C:\\',
  '\\\\server\\share',
  '"',
  '\\"',
  '""',
  '"in_network": [',
  '"in_network":[{"billing_code":"',
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '/',
  '</script>',
  'é', // 2-byte UTF-8
  'ß',
  'Ω',
  '€', // 3-byte UTF-8
  '中文',
  '\u2028\u2029',
  '\uffff',
  '😀', // 4-byte UTF-8
  '𝄞',
  '\u{10ffff}',
  '\u0000',
  '\n',
  '\r\n',
  '\t',
  '\b\f',
  '\u001f',
  '\u007f',
  '\ud800', // lone surrogates: only writable as \u escapes
  '\udfff',
  'in_network',
];

const KEY_WORDS = ['billing_code', 'name', 'rate', 'npi', 'tin', 'arrangement', 'description', 'x', ''];

export interface GenerateOptions {
  /** Rough number of records per record array. @default 6 */
  readonly records?: number;
  /** Maximum nesting inside a record. @default 4 */
  readonly depth?: number;
}

export interface GeneratedDocument {
  readonly text: string;
  readonly bytes: Buffer;
}

/** The record and header paths generated documents are scanned with. */
export const RECORD_PATHS = ['in_network[*]', 'provider_references[*]', 'nested.items[*]'] as const;
export const HEADER_PATHS = [
  'reporting_entity_name',
  'version',
  'plan.id',
  'plan.meta.deep',
  'meta',
  'nested.count',
] as const;

class Writer {
  /** Probability of whitespace between two tokens, and of a `\u` escape per character. */
  private readonly wsRate: number;
  private readonly escapeRate: number;

  constructor(
    private readonly rng: Rng,
    private readonly options: Required<GenerateOptions>,
  ) {
    this.wsRate = rng.pick([0, 0.2, 0.6, 1]);
    this.escapeRate = rng.pick([0, 0.05, 0.3]);
  }

  ws(): string {
    if (!this.rng.chance(this.wsRate)) return '';
    let out = '';
    const n = 1 + this.rng.int(3);
    for (let i = 0; i < n; i++) out += this.rng.pick([' ', ' ', '\t', '\n', '\r\n', '\r', '  ']);
    return out;
  }

  hex4(code: number): string {
    const hex = code.toString(16).padStart(4, '0');
    return `\\u${this.rng.chance(0.5) ? hex.toUpperCase() : hex}`;
  }

  /** A JSON string literal for `value`, with random (valid) escaping. */
  string(value: string, escapeRate = this.escapeRate): string {
    let out = '"';
    for (const ch of value) {
      const code = ch.codePointAt(0)!;
      const lone = code >= 0xd800 && code <= 0xdfff;
      if (ch === '"') out += this.rng.chance(escapeRate) ? this.hex4(code) : '\\"';
      else if (ch === '\\') out += this.rng.chance(escapeRate) ? this.hex4(code) : '\\\\';
      else if (code < 0x20 || lone || this.rng.chance(escapeRate)) {
        const short: Record<string, string> = {
          '\b': 'b',
          '\f': 'f',
          '\n': 'n',
          '\r': 'r',
          '\t': 't',
          '/': '/',
        };
        if (short[ch] !== undefined && this.rng.chance(0.6)) out += `\\${short[ch]}`;
        else if (code > 0xffff) {
          const hi = 0xd800 + ((code - 0x10000) >> 10);
          const lo = 0xdc00 + ((code - 0x10000) & 0x3ff);
          out += this.hex4(hi) + this.hex4(lo);
        } else out += this.hex4(code);
      } else out += ch;
    }
    return `${out}"`;
  }

  stringValue(): string {
    const n = this.rng.int(5);
    let s = '';
    for (let i = 0; i < n; i++) s += this.rng.pick(STRING_PIECES);
    // Strings that end in a backslash (written as an escaped backslash right before the closing quote).
    if (this.rng.chance(0.2)) s += 'C:\\';
    return s;
  }

  number(): string {
    if (this.rng.chance(0.3)) {
      return this.rng.pick([
        '0',
        '-0',
        '1E+2',
        '-0.5e-3',
        '1e2',
        '1E-2',
        '0.0',
        '-1.25E10',
        '0e0',
        '-0E-0',
        '123456789012345678901234567890',
        '1.7976931348623157e308',
        '5e-324',
        '1e400',
        '-1e-400',
        '9007199254740993',
      ]);
    }
    let out = this.rng.chance(0.3) ? '-' : '';
    out += this.rng.chance(0.2) ? '0' : String(1 + this.rng.int(9)) + this.digits(this.rng.int(6));
    if (this.rng.chance(0.4)) out += `.${this.digits(1 + this.rng.int(5))}`;
    if (this.rng.chance(0.3)) {
      out += this.rng.pick(['e', 'E']) + this.rng.pick(['', '+', '-']) + this.digits(1 + this.rng.int(3));
    }
    return out;
  }

  digits(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += String(this.rng.int(10));
    return out;
  }

  scalar(): string {
    switch (this.rng.int(6)) {
      case 0:
      case 1:
        return this.string(this.stringValue());
      case 2:
      case 3:
        return this.number();
      default:
        return this.rng.pick(['true', 'false', 'null']);
    }
  }

  array(items: readonly string[]): string {
    if (items.length === 0) return `[${this.ws()}]`;
    return `[${items.map((item) => `${this.ws()}${item}${this.ws()}`).join(',')}]`;
  }

  /** An object from [written key, value] pairs (keys are written through `string`, so may be escaped). */
  object(entries: readonly (readonly [string, string])[]): string {
    if (entries.length === 0) return `{${this.ws()}}`;
    const parts = entries.map(
      ([key, value]) => `${this.ws()}${this.string(key)}${this.ws()}:${this.ws()}${value}${this.ws()}`,
    );
    return `{${parts.join(',')}}`;
  }

  value(depth: number): string {
    if (depth <= 0 || this.rng.chance(0.5)) return this.scalar();
    const count = this.rng.int(4);
    if (this.rng.chance(0.5)) {
      return this.array(Array.from({ length: count }, () => this.value(depth - 1)));
    }
    const keys = this.rng.shuffle([...KEY_WORDS, 'in_network', 'version']).slice(0, count);
    return this.object(keys.map((key) => [key, this.value(depth - 1)] as const));
  }

  /** A record: usually an object like an in_network item, sometimes a scalar or an array of arrays. */
  record(): string {
    const depth = this.options.depth;
    const roll = this.rng.int(10);
    if (roll === 0) return this.scalar();
    if (roll === 1) {
      // Nested arrays of arrays.
      return this.array([this.array([this.value(1), this.array([])]), this.array([this.value(depth - 1)])]);
    }
    const entries: [string, string][] = [
      ['billing_code', this.string(this.stringValue(), 0.5)],
      ['negotiated_rates', this.array(Array.from({ length: this.rng.int(3) }, () => this.value(depth - 1)))],
      ['description', this.string(this.stringValue())],
    ];
    if (this.rng.chance(0.5)) entries.push(['rate', this.number()]);
    if (this.rng.chance(0.3)) entries.push(['in_network', this.array([this.value(1)])]);
    if (this.rng.chance(0.3)) entries.push(['empty', this.rng.pick(['[]', '{}', '""'])]);
    return this.object(this.rng.shuffle(entries));
  }

  records(): string {
    const n = this.rng.chance(0.15) ? 0 : this.rng.int(this.options.records * 2 + 1);
    return this.array(Array.from({ length: n }, () => this.record()));
  }
}

/** Generate one document from `seed`. The same seed always yields the same bytes. */
export function generateDocument(seed: number, options: GenerateOptions = {}): GeneratedDocument {
  const rng = new Rng(seed);
  const w = new Writer(rng, { records: options.records ?? 6, depth: options.depth ?? 4 });
  const entries: [string, string][] = [];
  const maybe = (p: number, key: string, value: () => string): void => {
    if (rng.chance(p)) entries.push([key, value()]);
  };
  maybe(0.9, 'reporting_entity_name', () => w.string(w.stringValue()));
  maybe(0.8, 'version', () => w.scalar());
  maybe(0.8, 'plan', () => {
    // Sometimes the header's parent has the wrong type: then the header is absent.
    if (rng.chance(0.15)) return rng.pick(['[]', '"plan"', 'null', '[{"id":1}]']);
    const plan: [string, string][] = [['name', w.string(w.stringValue())]];
    if (rng.chance(0.8)) plan.push(['id', w.value(2)]);
    if (rng.chance(0.5)) plan.push(['meta', w.object([['deep', w.value(2)]])]);
    return w.object(rng.shuffle(plan));
  });
  maybe(0.6, 'meta', () => (rng.chance(0.5) ? w.value(3) : w.array([w.value(2), w.value(2)])));
  maybe(0.9, 'in_network', () => w.records());
  maybe(0.8, 'provider_references', () => w.records());
  maybe(0.5, 'nested', () => {
    const nested: [string, string][] = [['items', w.records()]];
    if (rng.chance(0.5)) nested.push(['count', w.number()]);
    if (rng.chance(0.3)) nested.push(['in_network', w.records()]); // not a configured path
    return w.object(rng.shuffle(nested));
  });
  // Decoys: keys near the configured ones, and configured keys at depths that are not configured.
  maybe(0.4, 'in_network_x', () => w.records());
  maybe(0.3, 'In_network', () => w.records());
  maybe(0.4, 'noise', () =>
    w.object([
      ['in_network', w.records()],
      ['text', w.string('"in_network": [{"a":1}], "version": "fake"')],
    ]),
  );
  maybe(0.3, 'tail', () => w.value(3));
  let body: string;
  if (entries.length === 0) body = `{${w.ws()}}`;
  else {
    // The top-level keys are often escaped, so `"in\u005fnetwork"` and friends are common.
    const keyEscapeRate = rng.pick([0, 0.1, 0.3]);
    const parts = rng
      .shuffle(entries)
      .map(([key, value]) => `${w.ws()}${w.string(key, keyEscapeRate)}${w.ws()}:${w.ws()}${value}${w.ws()}`);
    body = `{${parts.join(',')}}`;
  }
  const text = `${w.ws()}${body}${w.ws()}`;
  return { text, bytes: Buffer.from(text, 'utf8') };
}
