import { sameJsonValue } from '../../contracts/duplicate-keys.ts';
import { parseExact } from '../../contracts/exact-json.ts';
import { jsonPath } from '../../contracts/silver/normalize.ts';
import { MalformedInputError, NestingTooDeepError, RecordTooLargeError } from '../../errors.ts';
import type { CompiledPaths, PathNode } from './record-paths.ts';

/**
 * A validating, resumable, byte-level JSON scanner that cuts records out of a stream without
 * building objects.
 *
 * Why not a token parser: stream-json and friends allocate per token and run at 20–40 MB/s, too slow
 * for files of hundreds of GB. Why not a bare boundary splitter: splitters that only track quotes and
 * brackets accept invalid JSON and lose records on escaped backslashes. This scanner does both jobs in
 * one pass: it is a complete JSON grammar (RFC 8259: numbers, escapes, control characters, UTF-8
 * well-formedness, nesting) run as an explicit state machine, so a chunk may end on any byte, and it
 * hands out each record's original bytes (zero-copy when a record lies inside one chunk).
 *
 * Decisions where RFC 8259 leaves a choice (the JSONTestSuite's `i_` cases): a leading UTF-8 BOM is
 * skipped; invalid UTF-8 is rejected; lone surrogates in `\u` escapes are accepted (as JSON.parse does);
 * numbers of any size are accepted as written; nesting deeper than `maxDepth` is rejected.
 */

export interface ScannerOptions {
  /** Name of the input, used in error messages. */
  readonly source: string;
  /** `json`: exactly one top-level value. `ndjson`: one value per line, each a record of target 0. */
  readonly format: 'json' | 'ndjson';
  readonly paths: CompiledPaths;
  /** A record (or header value) larger than this fails the run with RecordTooLargeError. */
  readonly maxRecordBytes: number;
  /** Deepest nesting accepted. @default 1000 */
  readonly maxDepth?: number;
  /** Grow the path trie as the document reveals it (`sluice inspect`), instead of following fixed paths. */
  readonly discover?: PathDiscovery;
}

/**
 * Learns a document's skeleton for `sluice inspect`: the scanner asks for a node when a key of a navigated
 * object is not in the trie yet, and for a target when a value lands on a node that has none. The hooks
 * run once per key of the skeleton (never inside records), so the scan stays at full speed.
 */
export interface PathDiscovery {
  /** The node for `key` under `parent` (added to `parent.children`), or undefined to skip its value. */
  learnKey(parent: PathNode, key: string): PathNode | undefined;
  /**
   * A value of `kind` starts at a node without a target: give the node a record target (an array: its
   * elements become records), a header target (a scalar) or leave it (an object is navigated).
   */
  learnValue(node: PathNode, kind: JsonKind): void;
}

/**
 * Receives each record: its target (index into the record paths), its index within that target, the
 * byte offset of its first byte in the (uncompressed) input, and its bytes. Line breaks between tokens
 * inside the record are replaced by spaces, so the bytes fit on one NDJSON line. The buffer may be a
 * view into the input chunk: copy it if you keep it past the call.
 */
export type RecordHandler = (target: number, index: number, byteOffset: number, bytes: Buffer) => void;

/** The JSON type of a value, as error messages name it. */
export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'boolean' | 'null';

/** A kind with its article, for messages: `an array`, `a string`, `null`. */
export function kindName(kind: JsonKind): string {
  return kind === 'null' ? 'null' : kind === 'array' || kind === 'object' ? `an ${kind}` : `a ${kind}`;
}

/** What a document holds at a node of the path trie: the kind of value and its first byte's offset. */
export interface PathValue {
  readonly kind: JsonKind;
  readonly offset: number;
}

/**
 * A value of the document's skeleton that no record or header path names (`$.out_of_network` beside
 * `$.in_network`): skipped, so none of it reaches bronze. Kept so that a run says so instead of
 * dropping it silently. The first occurrence per path.
 */
export interface SkippedValue {
  /** Its JSON path from the top, e.g. `$.out_of_network`. */
  readonly path: string;
  readonly kind: JsonKind;
  readonly offset: number;
  /** A header whose key the document writes again with another value: this later value (the first is kept). */
  readonly repeated?: true;
}

/** Distinct skipped paths kept; more are only counted (`skippedCount`). */
const SKIPPED_KEPT = 20;
/** Longest skipped path kept, in characters (cut with `…`). */
const SKIPPED_PATH_CHARS = 200;

/**
 * Deepest nesting of a header value. Header values are scalars in every TiC schema; they travel whole in
 * the bronze manifest, checkpoints and summaries, which `JSON.stringify` writes recursively, so a deeper
 * one fails the parse with NestingTooDeepError rather than a stack overflow later.
 */
export const HEADER_MAX_DEPTH = 100;

/** Keys of the top-level object kept for error messages (a TiC file has about a dozen). */
const TOP_LEVEL_KEYS_KEPT = 50;

function kindOfFirstByte(c: number): JsonKind {
  switch (c) {
    case 0x7b:
      return 'object';
    case 0x5b:
      return 'array';
    case 0x22:
      return 'string';
    case 0x74:
    case 0x66:
      return 'boolean';
    case 0x6e:
      return 'null';
    default:
      return 'number';
  }
}

// Parser states.
const START = 0; // before a top-level value
const VALUE = 1; // a value is required (after ':' or ',' in an array)
const ARR_FIRST = 2; // after '[': a value or ']'
const OBJ_FIRST = 3; // after '{': a key or '}'
const OBJ_KEY = 4; // after ',' in an object: a key
const COLON = 5;
const AFTER = 6; // after a value inside a container: ',' or the closing bracket
const DONE = 7; // after the top-level value
const STR = 8;
const STR_ESC = 9;
const STR_HEX = 10;
const STR_UTF8 = 11;
const NUM_MINUS = 12;
const NUM_ZERO = 13;
const NUM_INT = 14;
const NUM_DOT = 15;
const NUM_FRAC = 16;
const NUM_E = 17;
const NUM_ESIGN = 18;
const NUM_EXP = 19;
const LIT = 20;

const OBJECT = 1;
const ARRAY = 2;

// Frame kinds of the containers along the path we still navigate (outside records and skipped values).
const FRAME_NAV = 1; // an object whose keys lead to targets
const FRAME_RECORDS = 2; // an array whose elements are records

/** Bytes that may appear unescaped in a string and need no further check (printable ASCII but " and \). */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c < 0x80; c++) PLAIN[c] = c === 0x22 || c === 0x5c ? 0 : 1;
const WS = new Uint8Array(256);
WS[0x20] = WS[0x09] = WS[0x0a] = WS[0x0d] = 1;
const HEX = new Uint8Array(256);
for (const c of Buffer.from('0123456789abcdefABCDEF')) HEX[c] = 1;
const ESCAPABLE = new Uint8Array(256);
for (const c of Buffer.from('"\\/bfnrtu')) ESCAPABLE[c] = 1;

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const SLICE_BYTES = 64 * 1024;

/** Thrown by `finishCapture` to leave the scan loop right after a record when `pause()` was called. */
const PAUSE = Symbol('pause');

/**
 * The scanner's state between two records, as plain JSON: with the same options, `restore` continues
 * exactly where `snapshot` left off. Between records nothing is half-read (no key, no capture), so the
 * state is small: the open containers, the frames along the path, counts and headers seen so far.
 */
export interface ScannerSnapshot {
  readonly state: number;
  readonly offset: number;
  /** Kinds of the open containers, outermost first. */
  readonly containers: number[];
  readonly frames: { kind: number; node: number; target: number }[];
  readonly recordCounts: number[];
  readonly headers: Record<string, unknown>;
  /** `pathValues`, `topLevelKeys` and `topLevelKeyCount` so far. */
  readonly pathValues: Record<string, PathValue>;
  readonly topLevelKeys: string[];
  readonly topLevelKeyCount: number;
  /** `skipped` and `skippedCount` so far. */
  readonly skipped: SkippedValue[];
  readonly skippedCount: number;
}

function describeByte(c: number): string {
  if (c >= 0x21 && c < 0x7f) return `'${String.fromCharCode(c)}'`;
  return `byte 0x${c.toString(16).padStart(2, '0')}`;
}

/** The keys from `root` down to `node`, or undefined when `node` is not below it. */
function keysTo(root: PathNode, node: PathNode): string[] | undefined {
  if (root === node) return [];
  for (const [key, child] of root.children) {
    const below = keysTo(child, node);
    if (below) return [key, ...below];
  }
  return undefined;
}

/** Longest key (in UTF-8 bytes) anywhere in the path trie. */
function longestKey(node: PathNode): number {
  let longest = 0;
  for (const [key, child] of node.children) {
    longest = Math.max(longest, Buffer.byteLength(key), longestKey(child));
  }
  return longest;
}

export class JsonRecordScanner {
  private readonly maxDepth: number;
  private readonly maxKeyBytes: number;
  private readonly onRecord: RecordHandler;

  // Grammar state.
  private state = START;
  private afterString = AFTER; // where a string returns to: COLON for keys, AFTER for values
  private containers: Uint8Array;
  private depth = 0;
  private hexLeft = 0;
  private utf8Left = 0;
  private utf8Lo = 0x80;
  private utf8Hi = 0xbf;
  private literal: Buffer = TRUE;
  private literalPos = 0;
  private offset = 0; // absolute offset of the current chunk's first byte
  private bomLeft = 3;

  // Navigation: frames for skeleton depths, and "opaque" values (skipped or captured) below them.
  private readonly frameKind: number[] = [];
  private readonly frameNode: (PathNode | undefined)[] = [];
  private readonly frameTarget: number[] = [];
  private pendingNode: PathNode | undefined; // trie node of the key just read in a NAV frame
  private pendingSkipKey: string | undefined; // the key just read in a NAV frame, when no path names it
  private opaqueBase = -1; // depth at which the current opaque value started, -1 when navigating

  // Key capture (only for keys of NAV frames).
  private keyCapturing = false;
  private keyStart = 0;
  private keyPieces: Buffer[] = [];
  private keyHasEscape = false;
  private keyBytes = 0;

  // Value capture (records and header values).
  private capturing = false;
  private capTarget = -1; // record target, or -2 - headerIndex for headers
  private headerNode: PathNode | undefined; // the path node of the header being captured
  private capStart = 0; // position in the current chunk, 0 if it started in an earlier chunk
  private capOffset = 0;
  private capPieces: Buffer[] = [];
  private capBytes = 0;

  // Pausing (see `pause`): where in the current chunk the scan stopped.
  private pauseRequested = false;
  private pausedAt = -1;
  private ending = false;

  /** Records seen per record target. */
  readonly recordCounts: number[];
  /** Header values seen (last one wins, as in JSON.parse). No prototype: `__proto__` is a key like any other. */
  readonly headers: Record<string, unknown> = Object.create(null);
  /**
   * What the document holds at each node of the path trie it reached (by node id): whether a record
   * path is an array, and whether the containers leading to it are objects. A value seen twice (a
   * duplicate key) keeps the first one that is not an array, so a wrong kind is never hidden.
   */
  readonly pathValues: Record<number, PathValue> = Object.create(null);
  /** The first keys of the top-level object (json format), for messages about a wrong document. */
  readonly topLevelKeys: string[] = [];
  /** How many keys the top-level object had so far. */
  topLevelKeyCount = 0;
  /** Skeleton values no path names, first per path (at most SKIPPED_KEPT paths); see `SkippedValue`. */
  readonly skipped: SkippedValue[] = [];
  /** How many such values the document had so far (every one, each path as often as it occurs). */
  skippedCount = 0;
  /** The deepest nesting seen so far (1 for a flat array or object). */
  deepest = 0;

  constructor(
    private readonly options: ScannerOptions,
    onRecord: RecordHandler,
  ) {
    this.maxDepth = options.maxDepth ?? 1000;
    // Discovery keeps every key of the skeleton; a key longer than 64 KiB is not one a path could name.
    this.maxKeyBytes = options.discover ? 64 * 1024 : 6 * longestKey(options.paths.root) + 2;
    this.containers = new Uint8Array(Math.min(this.maxDepth + 1, 64));
    this.onRecord = onRecord;
    this.recordCounts = options.paths.recordNames.map(() => 0);
  }

  /** Bytes consumed so far: the uncompressed offset of the next byte. */
  get bytesScanned(): number {
    return this.offset;
  }

  private fail(position: number, detail: string): never {
    throw new MalformedInputError(this.options.source, this.offset + position, detail);
  }

  /**
   * Feed the next chunk. Throws MalformedInputError at the first byte that cannot be valid JSON.
   * Returns how many bytes of the chunk were consumed: all of them, unless the record handler called
   * `pause()`, in which case the scan stopped right after that record's last byte.
   */
  write(chunk: Buffer): number {
    const len = chunk.length;
    let i = 0;
    // A leading UTF-8 byte-order mark is skipped, even when it is split across chunks.
    while (this.bomLeft > 0 && i < len) {
      if (chunk[i] !== BOM[3 - this.bomLeft]) {
        if (this.bomLeft < 3) this.fail(i, 'incomplete UTF-8 byte-order mark');
        this.bomLeft = 0;
        break;
      }
      i++;
      this.bomLeft--;
    }
    // Scanning in slices keeps each call short: V8 then optimizes `scan` as a whole function rather
    // than by on-stack replacement of one long loop, which measured 3× slower here.
    try {
      for (; i < len; i += SLICE_BYTES) this.scan(chunk, i, Math.min(len, i + SLICE_BYTES));
    } catch (error) {
      if (error !== PAUSE) throw error;
      // Stopped right after a record: nothing is half-read, and the grammar state is the one any value
      // leaves behind (`endValue`), which the thrown-through scan loop could not store itself.
      const consumed = this.pausedAt;
      this.pauseRequested = false;
      this.pausedAt = -1;
      this.state = this.depth > 0 ? AFTER : DONE;
      this.offset += consumed;
      return consumed;
    }
    this.carryOver(chunk);
    this.offset += len;
    return len;
  }

  /**
   * Called from the record handler: stop the current `write` right after this record, so that the
   * caller can take a `snapshot` at a record boundary. The rest of the chunk is left unconsumed.
   * Returns false when there is no `write` to stop (the last record ends only in `end()`).
   */
  pause(): boolean {
    // Inside `end()` there is nothing left to stop before: the record handler is told so.
    if (this.ending) return false;
    this.pauseRequested = true;
    return true;
  }

  /** The state after the last record, to `restore` later. Only valid after a paused `write`. */
  snapshot(): ScannerSnapshot {
    if (this.capturing || this.keyCapturing || this.pendingNode !== undefined || this.opaqueBase >= 0) {
      throw new Error('a scanner snapshot is only possible at a record boundary (after pause())');
    }
    return {
      state: this.state,
      offset: this.offset,
      containers: [...this.containers.subarray(0, this.depth)],
      frames: this.frameKind.map((kind, i) => ({
        kind,
        node: this.frameNode[i]?.id ?? -1,
        target: this.frameTarget[i]!,
      })),
      recordCounts: [...this.recordCounts],
      headers: { ...this.headers },
      pathValues: { ...this.pathValues },
      topLevelKeys: [...this.topLevelKeys],
      topLevelKeyCount: this.topLevelKeyCount,
      skipped: [...this.skipped],
      skippedCount: this.skippedCount,
    };
  }

  /** A scanner that continues from `snapshot`, fed the input from `snapshot.offset` on. */
  static restore(
    options: ScannerOptions,
    onRecord: RecordHandler,
    snapshot: ScannerSnapshot,
  ): JsonRecordScanner {
    const scanner = new JsonRecordScanner(options, onRecord);
    const { nodes } = options.paths;
    scanner.state = snapshot.state;
    scanner.offset = snapshot.offset;
    scanner.bomLeft = 0;
    for (const kind of snapshot.containers) scanner.open(0, kind);
    for (const frame of snapshot.frames) {
      if (frame.node >= nodes.length) throw new Error('scanner snapshot does not match the record paths');
      scanner.frameKind.push(frame.kind);
      scanner.frameNode.push(frame.node < 0 ? undefined : nodes[frame.node]);
      scanner.frameTarget.push(frame.target);
    }
    snapshot.recordCounts.forEach((n, i) => {
      scanner.recordCounts[i] = n;
    });
    Object.assign(scanner.headers, snapshot.headers);
    Object.assign(scanner.pathValues, snapshot.pathValues);
    scanner.topLevelKeys.push(...snapshot.topLevelKeys);
    scanner.topLevelKeyCount = snapshot.topLevelKeyCount;
    scanner.skipped.push(...snapshot.skipped);
    scanner.skippedCount = snapshot.skippedCount;
    return scanner;
  }

  private scan(chunk: Buffer, from: number, len: number): void {
    let i = from;
    let state = this.state;
    while (i < len) {
      let c = chunk[i]!;
      switch (state) {
        case STR: {
          // Hot path: skip plain bytes in bulk.
          while (PLAIN[c] === 1) {
            if (++i === len) break;
            c = chunk[i]!;
          }
          if (i === len) continue;
          if (c === 0x22) {
            state = this.afterString;
            if (state === COLON) {
              if (this.keyCapturing) this.finishKey(chunk, i);
            } else {
              state = this.endValue(chunk, i + 1);
            }
          } else if (c === 0x5c) {
            state = STR_ESC;
            if (this.keyCapturing) this.keyHasEscape = true;
          } else if (c < 0x20) {
            this.fail(i, `control character ${describeByte(c)} inside a string; it must be escaped`);
          } else {
            // Start of a multi-byte UTF-8 sequence: set the allowed range of the next byte.
            this.utf8Lo = 0x80;
            this.utf8Hi = 0xbf;
            if (c >= 0xc2 && c <= 0xdf) this.utf8Left = 1;
            else if (c >= 0xe0 && c <= 0xef) {
              this.utf8Left = 2;
              if (c === 0xe0) this.utf8Lo = 0xa0;
              else if (c === 0xed) this.utf8Hi = 0x9f; // no UTF-16 surrogates
            } else if (c >= 0xf0 && c <= 0xf4) {
              this.utf8Left = 3;
              if (c === 0xf0) this.utf8Lo = 0x90;
              else if (c === 0xf4) this.utf8Hi = 0x8f; // nothing above U+10FFFF
            } else this.fail(i, `invalid UTF-8 lead ${describeByte(c)} inside a string`);
            state = STR_UTF8;
          }
          i++;
          continue;
        }
        case STR_UTF8:
          if (c < this.utf8Lo || c > this.utf8Hi)
            this.fail(i, `invalid UTF-8 continuation ${describeByte(c)}`);
          this.utf8Lo = 0x80;
          this.utf8Hi = 0xbf;
          if (--this.utf8Left === 0) state = STR;
          i++;
          continue;
        case STR_ESC:
          if (ESCAPABLE[c] !== 1) this.fail(i, `invalid escape sequence \\${String.fromCharCode(c)}`);
          if (c === 0x75) {
            this.hexLeft = 4;
            state = STR_HEX;
          } else state = STR;
          i++;
          continue;
        case STR_HEX:
          if (HEX[c] !== 1) this.fail(i, `invalid \\u escape: ${describeByte(c)} is not a hex digit`);
          if (--this.hexLeft === 0) state = STR;
          i++;
          continue;
        case AFTER:
          if (c === 0x2c) {
            state = this.containers[this.depth - 1] === OBJECT ? OBJ_KEY : VALUE;
          } else if (c === 0x7d || c === 0x5d) {
            state = this.close(chunk, i, c);
          } else if (WS[c] !== 1) {
            this.fail(i, `unexpected ${describeByte(c)} after a value; expected ',' or a closing bracket`);
          } else if (this.capturing && (c === 0x0a || c === 0x0d)) this.lineBreakInRecord(chunk, i);
          i++;
          continue;
        case NUM_INT:
        case NUM_FRAC:
        case NUM_EXP:
          while (c >= 0x30 && c <= 0x39) {
            if (++i === len) break;
            c = chunk[i]!;
          }
          if (i === len) continue;
          if (state === NUM_INT && c === 0x2e) {
            state = NUM_DOT;
            i++;
          } else if (state !== NUM_EXP && (c === 0x65 || c === 0x45)) {
            state = NUM_E;
            i++;
          } else state = this.endValue(chunk, i); // the delimiter is handled by the next state
          continue;
        case NUM_ZERO:
          if (c === 0x2e) state = NUM_DOT;
          else if (c === 0x65 || c === 0x45) state = NUM_E;
          else if (c >= 0x30 && c <= 0x39) this.fail(i, 'numbers cannot have leading zeros');
          else {
            state = this.endValue(chunk, i);
            continue;
          }
          i++;
          continue;
        case NUM_MINUS:
          if (c === 0x30) state = NUM_ZERO;
          else if (c >= 0x31 && c <= 0x39) state = NUM_INT;
          else this.fail(i, `expected a digit after '-', found ${describeByte(c)}`);
          i++;
          continue;
        case NUM_DOT:
          if (c < 0x30 || c > 0x39) this.fail(i, `expected a digit after '.', found ${describeByte(c)}`);
          state = NUM_FRAC;
          i++;
          continue;
        case NUM_E:
          if (c === 0x2b || c === 0x2d) state = NUM_ESIGN;
          else if (c >= 0x30 && c <= 0x39) state = NUM_EXP;
          else this.fail(i, `expected an exponent, found ${describeByte(c)}`);
          i++;
          continue;
        case NUM_ESIGN:
          if (c < 0x30 || c > 0x39) this.fail(i, `expected an exponent digit, found ${describeByte(c)}`);
          state = NUM_EXP;
          i++;
          continue;
        case LIT:
          if (c !== this.literal[this.literalPos]) {
            this.fail(i, `invalid literal; expected '${this.literal.toString()}'`);
          }
          if (++this.literalPos === this.literal.length) state = this.endValue(chunk, i + 1);
          i++;
          continue;
        case COLON:
          if (c === 0x3a) state = VALUE;
          else if (WS[c] !== 1) this.fail(i, `expected ':' after an object key, found ${describeByte(c)}`);
          else if (this.capturing && (c === 0x0a || c === 0x0d)) this.lineBreakInRecord(chunk, i);
          i++;
          continue;
        case OBJ_FIRST:
        case OBJ_KEY:
          if (c === 0x22) {
            this.afterString = COLON;
            state = STR;
            if (this.opaqueBase < 0) this.startKey(i + 1);
          } else if (c === 0x7d && state === OBJ_FIRST) {
            state = this.close(chunk, i, c);
          } else if (WS[c] !== 1) {
            this.fail(
              i,
              `expected a string key${state === OBJ_FIRST ? " or '}'" : ''}, found ${describeByte(c)}`,
            );
          } else if (this.capturing && (c === 0x0a || c === 0x0d)) this.lineBreakInRecord(chunk, i);
          i++;
          continue;
        case DONE:
          if (WS[c] !== 1) {
            this.fail(
              i,
              this.options.format === 'ndjson'
                ? `unexpected ${describeByte(c)} after a record on the same line; NDJSON needs one value per line`
                : `unexpected ${describeByte(c)} after the end of the top-level value (trailing data)`,
            );
          }
          if (c === 0x0a && this.options.format === 'ndjson') state = START;
          i++;
          continue;
        default: {
          // START, VALUE, ARR_FIRST: a value begins here (or the array closes).
          if (WS[c] === 1) {
            if (this.capturing && (c === 0x0a || c === 0x0d)) this.lineBreakInRecord(chunk, i);
            i++;
            continue;
          }
          if (c === 0x5d && state === ARR_FIRST) {
            state = this.close(chunk, i, c);
            i++;
            continue;
          }
          if (this.opaqueBase < 0) this.enterValue(i, c);
          switch (c) {
            case 0x7b:
            case 0x5b:
              this.open(i, c === 0x7b ? OBJECT : ARRAY);
              state = c === 0x7b ? OBJ_FIRST : ARR_FIRST;
              break;
            case 0x22:
              this.afterString = AFTER;
              state = STR;
              break;
            case 0x2d:
              state = NUM_MINUS;
              break;
            case 0x30:
              state = NUM_ZERO;
              break;
            case 0x74:
            case 0x66:
            case 0x6e:
              this.literal = c === 0x74 ? TRUE : c === 0x66 ? FALSE : NULL;
              this.literalPos = 1;
              state = LIT;
              break;
            default:
              if (c >= 0x31 && c <= 0x39) state = NUM_INT;
              else this.fail(i, `expected a value, found ${describeByte(c)}`);
          }
          i++;
        }
      }
    }
    this.state = state;
  }

  /** Signal the end of input. Throws MalformedInputError if the document is incomplete. */
  end(): void {
    this.ending = true;
    let state = this.state;
    if (state === NUM_ZERO || state === NUM_INT || state === NUM_FRAC || state === NUM_EXP) {
      if (this.depth === 0) state = this.endValue(Buffer.alloc(0), 0);
    }
    this.state = state;
    if (state === DONE || (state === START && this.options.format === 'ndjson')) return;
    const detail =
      state === START
        ? 'the input is empty; expected a JSON value'
        : state >= STR && state <= STR_UTF8
          ? 'unexpected end of input inside a string (truncated file?)'
          : 'unexpected end of input (truncated file?)';
    throw new MalformedInputError(this.options.source, this.offset, detail);
  }

  // ---- containers ----

  private open(i: number, kind: number): void {
    if (this.depth >= this.maxDepth) this.fail(i, `nesting deeper than ${this.maxDepth} levels`);
    if (this.capTarget < -1 && this.capturing && this.depth - this.opaqueBase >= HEADER_MAX_DEPTH) {
      throw new NestingTooDeepError(
        this.options.source,
        `header ${this.options.paths.headerNames[-2 - this.capTarget]}`,
        this.capOffset,
        `more than ${HEADER_MAX_DEPTH} levels (at byte ${this.offset + i}); header values are kept whole in ` +
          'the manifest, and the CMS schemas make them strings',
      );
    }
    if (this.depth === this.containers.length) {
      const grown = new Uint8Array(Math.min(this.containers.length * 2, this.maxDepth + 1));
      grown.set(this.containers);
      this.containers = grown;
    }
    this.containers[this.depth++] = kind;
    if (this.depth > this.deepest) this.deepest = this.depth;
  }

  private close(chunk: Buffer, i: number, c: number): number {
    const expected = c === 0x7d ? OBJECT : ARRAY;
    if (this.containers[this.depth - 1] !== expected) {
      this.fail(
        i,
        `unexpected ${describeByte(c)}; it does not close the open ${expected === OBJECT ? 'array' : 'object'}`,
      );
    }
    this.depth--;
    if (this.opaqueBase < 0) {
      // Leaving a navigated container.
      this.frameKind.pop();
      this.frameNode.pop();
      this.frameTarget.pop();
    }
    return this.endValue(chunk, i + 1);
  }

  /** A value just ended at `end` (exclusive). Finish a capture or an opaque value, pick the next state. */
  private endValue(chunk: Buffer, end: number): number {
    if (this.opaqueBase === this.depth) {
      this.opaqueBase = -1;
      if (this.capturing) this.finishCapture(chunk, end);
    }
    return this.depth > 0 ? AFTER : DONE;
  }

  // ---- navigation ----

  /** A value starts at `i` while we are still navigating: decide whether to capture, navigate or skip it. */
  private enterValue(i: number, c: number): void {
    const depth = this.depth;
    let node: PathNode | undefined;
    let record = -1;
    if (depth === 0 && this.options.format === 'json') {
      node = this.options.paths.root;
    } else if (depth === 0 || this.frameKind[depth - 1] === FRAME_RECORDS) {
      record = depth === 0 ? 0 : this.frameTarget[depth - 1]!;
    } else if (this.frameKind[depth - 1] === FRAME_NAV) {
      node = this.pendingNode;
      this.pendingNode = undefined;
      if (this.pendingSkipKey !== undefined) {
        this.skip(this.frameNode[depth - 1]!, this.pendingSkipKey, kindOfFirstByte(c), this.offset + i);
        this.pendingSkipKey = undefined;
      }
    }
    if (record >= 0) {
      this.startCapture(i, record);
      return;
    }
    if (node === undefined) {
      this.opaqueBase = depth; // not on any path: validate only
      return;
    }
    const discover = this.options.discover;
    if (discover && node.recordTarget < 0 && node.headerTarget < 0) {
      discover.learnValue(node, kindOfFirstByte(c));
      while (this.recordCounts.length < this.options.paths.recordNames.length) this.recordCounts.push(0);
    }
    const seen = this.pathValues[node.id];
    if (seen === undefined || seen.kind === 'array') {
      this.pathValues[node.id] = { kind: kindOfFirstByte(c), offset: this.offset + i };
    }
    if (node.headerTarget >= 0) {
      this.headerNode = node;
      this.startCapture(i, -2 - node.headerTarget);
    } else if (c === 0x5b && node.recordTarget >= 0) {
      this.frameKind.push(FRAME_RECORDS);
      this.frameNode.push(undefined);
      this.frameTarget.push(node.recordTarget);
    } else if (c === 0x7b && (node.children.size > 0 || discover)) {
      this.frameKind.push(FRAME_NAV);
      this.frameNode.push(node);
      this.frameTarget.push(-1);
    } else {
      // A value a path names, of a kind it cannot be read as (`"provider_references": {}`, a string where
      // an object leads on to records): nothing of it is read. A required path's check fails the run;
      // for an optional one, the run says so. Null is an absent value.
      if (!discover && c !== 0x6e) this.skip(node, undefined, kindOfFirstByte(c), this.offset + i);
      this.opaqueBase = depth;
    }
  }

  private startKey(start: number): void {
    if (this.depth === 1) this.topLevelKeyCount++;
    this.keyCapturing = true;
    this.keyStart = start;
    this.keyPieces = [];
    this.keyBytes = 0;
    this.keyHasEscape = false;
  }

  /** A record inside a value is whitespace to JSON; it becomes a space so the record fits on one line. */
  private lineBreakInRecord(chunk: Buffer, i: number): void {
    if (chunk[i] === 0x0a && this.options.format === 'ndjson') {
      this.fail(i, 'line break inside a record; NDJSON needs each record on one line');
    }
    chunk[i] = 0x20;
  }

  private finishKey(chunk: Buffer, end: number): void {
    this.keyCapturing = false;
    const piece = chunk.subarray(this.keyStart, end);
    const raw = this.keyPieces.length === 0 ? piece : Buffer.concat([...this.keyPieces, piece]);
    this.keyPieces = [];
    const key = this.keyHasEscape
      ? (JSON.parse(`"${raw.toString('utf8')}"`) as string)
      : raw.toString('utf8');
    const parent = this.frameNode[this.depth - 1];
    this.pendingNode = parent?.children.get(key) ?? (parent && this.options.discover?.learnKey(parent, key));
    if (this.pendingNode === undefined && parent !== undefined && !this.options.discover) {
      // A key too long for any path is named as when it was too long to keep (`carryOver`): by its start.
      this.pendingSkipKey = raw.length > this.maxKeyBytes ? this.longKeyName(raw) : key;
    }
    if (this.depth === 1 && this.topLevelKeys.length < TOP_LEVEL_KEYS_KEPT) this.topLevelKeys.push(key);
  }

  /** A key longer than any path's (its raw bytes): its first `maxKeyBytes` bytes and `…`. */
  private longKeyName(raw: Buffer): string {
    return `${raw
      .subarray(0, this.maxKeyBytes)
      .toString('utf8')
      .replace(/\uFFFD$/, '')}…`;
  }

  /** Notes a skeleton value the run does not read: no path names it, or it repeats a header (see `SkippedValue`). */
  private skip(
    parent: PathNode,
    key: string | undefined,
    kind: JsonKind,
    offset: number,
    repeated = false,
  ): void {
    this.skippedCount++;
    if (this.skipped.length >= SKIPPED_KEPT) return;
    const keys = keysTo(this.options.paths.root, parent)!;
    if (key !== undefined) keys.push(key);
    let path = keys.length === 0 ? '$' : `$.${jsonPath(keys)}`.replace('$.[', '$[');
    // A key may be as long as a record: the path travels in manifests and state machine payloads.
    if (path.length > SKIPPED_PATH_CHARS) path = `${path.slice(0, SKIPPED_PATH_CHARS - 1)}…`;
    if (!this.skipped.some((s) => s.path === path)) {
      this.skipped.push(repeated ? { path, kind, offset, repeated } : { path, kind, offset });
    }
  }

  // ---- capture ----

  private startCapture(i: number, target: number): void {
    this.opaqueBase = this.depth;
    this.capturing = true;
    this.capTarget = target;
    this.capStart = i;
    this.capOffset = this.offset + i;
    this.capPieces = [];
    this.capBytes = 0;
  }

  private checkSize(extra: number): void {
    if (this.capBytes + extra <= this.options.maxRecordBytes) return;
    const target = this.capTarget;
    const isHeader = target < 0;
    const name = isHeader
      ? this.options.paths.headerNames[-2 - target]!
      : this.options.paths.recordNames[target]!;
    throw new RecordTooLargeError(
      this.options.source,
      name,
      isHeader ? 0 : this.recordCounts[target]!,
      this.capOffset,
      this.options.maxRecordBytes,
    );
  }

  private finishCapture(chunk: Buffer, end: number): void {
    this.capturing = false;
    const piece = chunk.subarray(this.capStart, end);
    this.checkSize(piece.length);
    const bytes = this.capPieces.length === 0 ? piece : Buffer.concat([...this.capPieces, piece]);
    this.capPieces = [];
    const target = this.capTarget;
    if (target >= 0) {
      const index = this.recordCounts[target]!;
      this.recordCounts[target] = index + 1;
      this.onRecord(target, index, this.capOffset, bytes);
      if (this.pauseRequested) {
        this.pausedAt = end;
        throw PAUSE;
      }
    } else {
      const name = this.options.paths.headerNames[-2 - target]!;
      const value = parseExact(bytes.toString('utf8'));
      if (Object.hasOwn(this.headers, name) && !sameJsonValue(this.headers[name], value)) {
        // The header's key is written twice with different values. A JSON reader keeps one without a
        // word; here the first is kept and the second is said, like any value the run does not read.
        this.skip(this.headerNode!, undefined, kindOfFirstByte(bytes[0]!), this.capOffset, true);
      } else this.headers[name] = value;
    }
  }

  /** At the end of a chunk, keep the unfinished parts of a key or a capture. */
  private carryOver(chunk: Buffer): void {
    if (this.keyCapturing) {
      const piece = chunk.subarray(this.keyStart);
      this.keyPieces.push(piece);
      this.keyBytes += piece.length;
      this.keyStart = 0;
      // A key longer than any key on our paths (even fully \u-escaped) cannot match one: stop keeping it.
      if (this.keyBytes > this.maxKeyBytes) {
        this.keyCapturing = false;
        // Its value is skipped like any other no path names, and said: by the key's start.
        if (!this.options.discover) this.pendingSkipKey = this.longKeyName(Buffer.concat(this.keyPieces));
        this.keyPieces = [];
      }
    }
    if (this.capturing) {
      const piece = chunk.subarray(this.capStart);
      this.checkSize(piece.length);
      this.capPieces.push(piece);
      this.capBytes += piece.length;
      this.capStart = 0;
    }
  }
}
