import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { MalformedInputError } from '../../shared/errors.ts';
import { openSource } from '../../shared/stages/parse/open-source.ts';
import { JSON_TEST_SUITE } from '../helpers/fixtures.ts';
import {
  chunksOf,
  type Decision,
  gzipMembers,
  jsonParseDecision,
  type Outcome,
  outcomeOf,
  outcomeOfAsync,
  type ScanOptions,
  type ScanResult,
  scanAsyncChunks,
  scanBuffer,
  scanChunks,
  scanGzipBuffer,
} from '../helpers/scan.ts';

/**
 * The JSONTestSuite parsing corpus (https://github.com/nst/JSONTestSuite, MIT): `y_` files must be
 * accepted, `n_` files rejected, `i_` files may go either way (the scanner's choices are pinned in
 * I_DECISIONS below). Every file is scanned whole, split in two at every byte, in 1-byte chunks, through
 * gzip, and as multi-member gzip through openSource; all must reach the whole-buffer decision, with the
 * same error offset or the same records.
 */

const DIR = JSON_TEST_SUITE;
const FILES = readdirSync(DIR)
  .filter((name) => name.endsWith('.json'))
  .sort();
const bytesOf = (file: string): Buffer => readFileSync(path.join(DIR, file));

/**
 * The scanner's decision on each implementation-defined (`i_`) file, next to JSON.parse's decision on the
 * file's UTF-8 decoding. A change in either column is a visible behaviour change.
 */
const I_DECISIONS: Record<string, { scanner: Decision; jsonParse: Decision }> = {
  // Numbers of any size or precision are accepted as written (JSON.parse rounds them to ±Infinity / 0).
  'i_number_double_huge_neg_exp.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_huge_exp.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_neg_int_huge_exp.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_pos_double_huge_exp.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_real_neg_overflow.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_real_pos_overflow.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_real_underflow.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_too_big_neg_int.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_too_big_pos_int.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_number_very_big_negative_int.json': { scanner: 'accept', jsonParse: 'accept' },
  // Lone or mismatched surrogates written as \u escapes are accepted, as JSON.parse does.
  'i_object_key_lone_2nd_surrogate.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_1st_surrogate_but_2nd_missing.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_1st_valid_surrogate_2nd_invalid.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_incomplete_surrogate_and_escape_valid.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_incomplete_surrogate_pair.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_incomplete_surrogates_escape_valid.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_invalid_lonely_surrogate.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_invalid_surrogate.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_inverted_surrogates_U+1D11E.json': { scanner: 'accept', jsonParse: 'accept' },
  'i_string_lone_second_surrogate.json': { scanner: 'accept', jsonParse: 'accept' },
  // 500 levels is within the default maxDepth (1000).
  'i_structure_500_nested_arrays.json': { scanner: 'accept', jsonParse: 'accept' },
  // A leading UTF-8 BOM is skipped (JSON.parse rejects U+FEFF).
  'i_structure_UTF-8_BOM_empty_object.json': { scanner: 'accept', jsonParse: 'reject' },
  // Invalid UTF-8 is rejected (Buffer#toString turns it into U+FFFD, so JSON.parse accepts).
  'i_string_UTF-8_invalid_sequence.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_UTF8_surrogate_U+D800.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_invalid_utf-8.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_iso_latin_1.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_lone_utf8_continuation_byte.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_not_in_unicode_range.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_overlong_sequence_2_bytes.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_overlong_sequence_6_bytes.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_overlong_sequence_6_bytes_null.json': { scanner: 'reject', jsonParse: 'accept' },
  'i_string_truncated-utf-8.json': { scanner: 'reject', jsonParse: 'accept' },
  // UTF-16 is not UTF-8.
  'i_string_UTF-16LE_with_BOM.json': { scanner: 'reject', jsonParse: 'reject' },
  'i_string_utf16BE_no_BOM.json': { scanner: 'reject', jsonParse: 'reject' },
  'i_string_utf16LE_no_BOM.json': { scanner: 'reject', jsonParse: 'reject' },
};

/** Extraction configs: the decision must not depend on which records are extracted. */
const WITH_RECORDS: ScanOptions = { records: ['[*]'] };
const NO_RECORDS: ScanOptions = {};
const CONFIGS = [WITH_RECORDS, NO_RECORDS] as const;

/**
 * Files above this size are split at every byte only up to just past their whole-buffer error offset, and
 * at a stride beyond it: the two 100–250 KB nesting bombs would otherwise take minutes (they fail within
 * their first 2.5 KB, so every later split point puts the error in the first chunk).
 */
const EVERY_BYTE_MAX = 4096;
const STRIDE = 997;

/** What a scan did, in a comparable form: the decision, and the error offset or the records. */
function signature(outcome: Outcome<ScanResult>): string {
  if (outcome.decision === 'reject') return `reject at byte ${outcome.error.byteOffset}`;
  const { records, counts } = outcome.value;
  return `accept ${JSON.stringify(counts)} ${records.map((r) => `${r.target}/${r.index}@${r.offset}:${r.text}`).join('\n')}`;
}

function expectedDecision(file: string): Decision {
  if (file.startsWith('y_')) return 'accept';
  if (file.startsWith('n_')) return 'reject';
  const entry = I_DECISIONS[file];
  if (!entry) throw new Error(`${file} is missing from I_DECISIONS`);
  return entry.scanner;
}

function expectWellFormedError(error: MalformedInputError, file: string, length: number): void {
  expect(error).toBeInstanceOf(MalformedInputError);
  expect(error.source).toBe(file);
  expect(error.byteOffset).toBeGreaterThanOrEqual(0);
  expect(error.byteOffset).toBeLessThanOrEqual(length);
  expect(error.detail.length).toBeGreaterThan(0);
  expect(error.message).toContain(file);
  expect(error.message).toContain(`byte ${error.byteOffset}`);
}

/** Whole-buffer outcomes per file and config, computed once. */
const wholeCache = new Map<string, Outcome<ScanResult>[]>();
function whole(file: string): Outcome<ScanResult>[] {
  let outcomes = wholeCache.get(file);
  if (!outcomes) {
    const buf = bytesOf(file);
    outcomes = CONFIGS.map((config) => outcomeOf(() => scanBuffer(buf, { ...config, source: file })));
    wholeCache.set(file, outcomes);
  }
  return outcomes;
}

/** The split positions tried for a file: every byte, or (for the big ones) see EVERY_BYTE_MAX. */
function splitPositions(file: string, length: number): number[] {
  const positions: number[] = [];
  let dense = length;
  if (length > EVERY_BYTE_MAX) {
    const first = whole(file)[0]!;
    dense = first.decision === 'reject' ? Math.min(length, first.error.byteOffset + 64) : EVERY_BYTE_MAX;
  }
  for (let p = 0; p <= dense; p++) positions.push(p);
  for (let p = dense + STRIDE; p < length; p += STRIDE) positions.push(p);
  if (dense < length) positions.push(length - 1, length);
  return positions;
}

describe('JsonRecordScanner on the JSONTestSuite parsing corpus', () => {
  it('finds all 318 files, and pins a decision for exactly the i_ files', () => {
    expect(FILES).toHaveLength(318);
    const iFiles = FILES.filter((f) => f.startsWith('i_'));
    expect(Object.keys(I_DECISIONS).sort()).toEqual(iFiles);
    expect(FILES.every((f) => /^[yni]_/.test(f))).toBe(true);
  });

  it('pins JSON.parse’s decision on every i_ file (so differences from the scanner are deliberate)', () => {
    for (const [file, { jsonParse }] of Object.entries(I_DECISIONS)) {
      expect({ file, decision: jsonParseDecision(bytesOf(file)) }).toEqual({ file, decision: jsonParse });
    }
  });

  describe.each(FILES)('%s', (file) => {
    const buf = bytesOf(file);
    const expected = expectedDecision(file);

    it(`is ${expected === 'accept' ? 'accepted' : 'rejected'} whole, with and without record extraction`, () => {
      const [withRecords, noRecords] = whole(file) as [Outcome<ScanResult>, Outcome<ScanResult>];
      expect(withRecords.decision).toBe(expected);
      expect(noRecords.decision).toBe(expected);
      if (!file.startsWith('i_')) expect(jsonParseDecision(buf)).toBe(expected);
      if (withRecords.decision === 'reject' && noRecords.decision === 'reject') {
        expectWellFormedError(withRecords.error, file, buf.length);
        expectWellFormedError(noRecords.error, file, buf.length);
        expect(noRecords.error.byteOffset).toBe(withRecords.error.byteOffset);
      }
      if (withRecords.decision === 'accept' && noRecords.decision === 'accept') {
        expect(noRecords.value.records).toEqual([]);
        // The `[*]` records are the root array's elements, each with its own offset.
        let parsed: unknown;
        try {
          parsed = JSON.parse(buf.toString('utf8'));
        } catch {
          parsed = undefined; // the BOM case: JSON.parse rejects what the scanner skips
        }
        if (Array.isArray(parsed)) {
          const { records, counts } = withRecords.value;
          expect(counts).toEqual([parsed.length]);
          expect(records.map((r) => JSON.parse(r.text))).toEqual(parsed);
          records.forEach((record, index) => {
            expect(record.index).toBe(index);
            expect(record.target).toBe(0);
            expect(record.text).not.toMatch(/[\r\n]/);
            expect(buf[record.offset]).toBe(Buffer.from(record.text)[0]);
          });
        } else if (file.startsWith('y_')) {
          expect(withRecords.value.records).toEqual([]);
          expect(withRecords.value.counts).toEqual([0]);
        }
      }
    });

    it('reaches the same decision, error offset and records when split in two at every byte', () => {
      const hasLineBreaks = buf.includes(0x0a) || buf.includes(0x0d);
      const mismatches: string[] = [];
      CONFIGS.forEach((config, c) => {
        const base = signature(whole(file)[c]!);
        for (const p of splitPositions(file, buf.length)) {
          // The scanner overwrites line breaks inside records in its input: copy only when there are any.
          const input = hasLineBreaks ? Buffer.from(buf) : buf;
          const got = signature(
            outcomeOf(() => scanChunks(chunksOf(input, { splitAt: p }), { ...config, source: file })),
          );
          if (got !== base) mismatches.push(`config ${c}, split at ${p}: ${got} (whole: ${base})`);
        }
      });
      expect(mismatches).toEqual([]);
      expect(readFileSync(path.join(DIR, file)).equals(buf)).toBe(true);
    });

    it('reaches the same decision, error offset and records in 1-byte chunks', () => {
      CONFIGS.forEach((config, c) => {
        const got = outcomeOf(() => scanBuffer(buf, { ...config, source: file, chunkSize: 1 }));
        expect(signature(got)).toBe(signature(whole(file)[c]!));
      });
    });

    it('reaches the same decision after gzip, gunzipped in 64-byte chunks', async () => {
      for (const [c, config] of CONFIGS.entries()) {
        const got = await outcomeOfAsync(() =>
          scanGzipBuffer(buf, { ...config, source: file, gunzipChunkSize: 64 }),
        );
        expect(signature(got)).toBe(signature(whole(file)[c]!));
      }
    });
  });
});

describe('JsonRecordScanner fed by openSource from a FileObjectStore', () => {
  let root: string;
  let store: FileObjectStore;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'sluice-json-test-suite-'));
    store = new FileObjectStore(root);
    // Each file as two gzip members (its first and second half), concatenated.
    for (let i = 0; i < FILES.length; i += 32) {
      await Promise.all(
        FILES.slice(i, i + 32).map((file) => store.write(`suite/${file}.gz`, gzipMembers(bytesOf(file), 2))),
      );
    }
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it.each(FILES)('reaches the whole-buffer decision on %s stored as multi-member gzip', async (file) => {
    for (const [c, config] of CONFIGS.entries()) {
      const source = await openSource(store, `suite/${file}.gz`);
      expect(source.compression).toBe('gzip');
      const got = await outcomeOfAsync(() => scanAsyncChunks(source.chunks, { ...config, source: file }));
      expect(signature(got)).toBe(signature(whole(file)[c]!));
    }
  });
});
