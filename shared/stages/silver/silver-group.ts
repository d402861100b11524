import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import { duplicateKeys, mayHoldDuplicateKey } from '../../contracts/duplicate-keys.ts';
import {
  type ExactParseOptions,
  loneSurrogatePaths,
  mayHoldLoneSurrogate,
  outOfRangePaths,
  parseExact,
} from '../../contracts/exact-json.ts';
import type { SilverContext, SilverContract } from '../../contracts/silver/contract.ts';
import { jsonPath, outOfRangeReason, valueAt } from '../../contracts/silver/normalize.ts';
import type { DriftFinding, Row, RuleViolation } from '../../contracts/silver/table.ts';
import {
  ContractViolationError,
  NestingTooDeepError,
  PipelineError,
  SchemaDriftError,
} from '../../errors.ts';
import { QUARANTINE_TABLE } from '../../lake/keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableWriterFactory } from '../../ports/table-writer.ts';
import type { S3Requests } from '../../workflow/run-cost.ts';
import { bronzeLines, readBronzeManifest, readBronzePart } from '../bronze/read-bronze.ts';
import { kindName } from '../parse/json-record-scanner.ts';
import { quarantineTable } from './quarantine-table.ts';
import { SilverGroupOutput, type SilverGroupTable } from './silver-group-output.ts';
import { type SilverStats, SilverStatsCounter } from './silver-stats.ts';

export type { SilverGroupTable } from './silver-group-output.ts';

/**
 * One group of a silver build: consecutive bronze parts `[firstPart, endPart)` of the manifest. Group 0
 * also writes the contract's file rows, so they appear exactly once across the groups.
 */
export interface SilverGroupPlan {
  readonly index: number;
  readonly firstPart: number;
  /** One past the last part of the group. */
  readonly endPart: number;
}

export interface BuildSilverGroupInput {
  readonly bronzeManifestKey: string;
  readonly group: SilverGroupPlan;
  /** Merge buckets the keyed tables' partial rows are split into (the plan's). @default 1 */
  readonly buckets?: number;
}

export interface BuildSilverGroupDeps {
  readonly lake: ObjectStore;
  readonly contract: SilverContract;
  /** Writers of partial files (`partial: true`), one per bronze part: a merge deduplicates them. */
  readonly createTableWriter: TableWriterFactory;
  /** This group's own folder: its Parquet files and the writer's spill. */
  readonly workDir: string;
  /**
   * Write a part's files while the next part goes through the contract: for a thread with a core to
   * itself; threads that share the cores save memory without it (see `SilverGroupOutput`). @default true
   */
  readonly overlapWrites?: boolean;
  /** The bronze manifest, when the caller has already read it (else it is read from the lake). */
  readonly bronze?: BronzeManifest;
  /** Called after each part with the records it held. */
  readonly onPart?: (records: number) => void;
  /** Checked between parts: a build whose earlier group failed need not finish this one. */
  readonly signal?: AbortSignal;
}

export interface SilverGroupResult {
  readonly index: number;
  readonly tables: Readonly<Record<string, SilverGroupTable>>;
  readonly stats: SilverStats;
  /** The worker thread that built the group (absent: built in the calling thread). */
  readonly threadId?: number;
  /** The S3 requests a worker thread made through its own store (part of its invocation's usage). */
  readonly s3Requests?: S3Requests;
}

/**
 * Bronze → silver for one group of parts: every record through the contract, rows to partial Parquet
 * files per table (rows as appended, one set per part), broken rules to quarantine, findings counted. A
 * `fail` rule or drift under `onDrift: 'fail'` stops the group with the error a single pass over all
 * parts would raise at that record. The files stay local: the caller merges the groups' partial files.
 * On AWS this is what one Map item of a silver build runs.
 */
export async function buildSilverGroup(
  input: BuildSilverGroupInput,
  deps: BuildSilverGroupDeps,
): Promise<SilverGroupResult> {
  const bronze = deps.bronze ?? (await readBronzeManifest(deps.lake, input.bronzeManifestKey));
  const { runId } = bronze;
  const { contract, signal } = deps;
  const { group } = input;
  const context: SilverContext = {
    runId,
    sourceUri: bronze.source.uri,
    sourceSha256: bronze.source.sha256,
    headers: bronze.headers,
  };
  const stats = new SilverStatsCounter(Object.keys(bronze.records));
  const output = new SilverGroupOutput(
    deps.createTableWriter,
    [...contract.tables, quarantineTable],
    deps.workDir,
    deps.overlapWrites ?? true,
    input.buckets ?? 1,
  );
  try {
    if (group.index === 0) {
      for (const warning of headerWarnings(bronze.headers)) stats.violation(warning);
      for (const skipped of skippedValueFindings(bronze)) {
        stats.violation(skipped.violation);
        stats.driftFinding(skipped.drift);
        if (contract.onDrift === 'fail') {
          throw new SchemaDriftError(
            `${bronze.source.uri}: ${skipped.violation.message}; the contract fails on drift`,
          );
        }
      }
      // The file's header values, checked once per file like a record; a file is never quarantined.
      const file = contract.checkFile?.(context);
      for (const violation of file?.violations ?? []) {
        stats.violation(violation);
        if (violation.severity === 'fail') {
          throw new ContractViolationError(
            `${bronze.source.uri} header: ${violation.ruleId} at ${violation.path}: ${violation.message}`,
          );
        }
      }
      for (const finding of file?.drift ?? []) stats.driftFinding(finding);
      const writer = await output.writer();
      for (const [table, rows] of Object.entries(contract.fileRows(context))) {
        for (const row of rows) writer.append(table, withLineage(row, runId, input.bronzeManifestKey, 0));
      }
    }
    const decimals = { decimals: contract.exactDecimals === true };
    for (const part of bronze.parts.slice(group.firstPart, group.endPart)) {
      signal?.throwIfAborted();
      // Not hashed here: reconciliation re-verifies every part's sha256 against the manifest.
      const content = await readBronzePart(deps.lake, part, { sha256: false });
      const writer = await output.writer();
      let lines = 0;
      for (const line of bronzeLines(content.text)) {
        lines++;
        // The record's original bytes follow the lineage: only they decide whether the exact parse is needed.
        const recordStart = line.indexOf(RECORD_FIELD);
        const { path, index, offset, record } = parseBronzeLine(
          line,
          recordStart,
          decimals,
          part.key,
          lines,
          bronze.source.uri,
        );
        const counts = stats.records[path];
        if (!counts)
          throw new PipelineError(`${part.key}: a record of path "${path}" that the manifest does not list`);
        let normalized: ReturnType<SilverContract['normalize']>;
        try {
          normalized = contract.normalize(path, index, record, context);
        } catch (error) {
          // Nothing in sluice recurses on a record's depth; should a contract (or a library under it)
          // still run out of stack, the error names the record instead of nothing.
          if (!(error instanceof RangeError) || !/call stack/i.test(error.message)) throw error;
          throw new NestingTooDeepError(
            bronze.source.uri,
            `record ${path}[${index}]`,
            offset,
            `the silver contract ran out of stack (${error.message}); lower "limits.maxDepth" to reject such records while parsing`,
            { cause: error },
          );
        }
        let violations = mayHoldLoneSurrogate(line, recordStart)
          ? [...normalized.violations, ...loneSurrogateWarnings(record)]
          : normalized.violations;
        const recordText = recordStart + RECORD_FIELD.length;
        if (mayHoldDuplicateKey(line, recordText, record)) {
          violations = [...violations, ...duplicateKeyViolations(line, recordText, offset)];
        }
        let quarantined = false;
        for (const violation of violations) {
          stats.violation(violation);
          if (violation.severity === 'fail') {
            throw new ContractViolationError(
              `${part.key} record ${path}[${index}]: ${violation.ruleId} at ${violation.path}: ${violation.message}`,
            );
          }
          if (violation.severity === 'quarantine') {
            quarantined = true;
            writer.append(QUARANTINE_TABLE, {
              record_path: path,
              rule_id: violation.ruleId,
              severity: violation.severity,
              field_path: violation.path,
              message: violation.message,
              // Its original bytes: a re-serialization would write 1e400 as null.
              record: line.slice(recordStart + RECORD_FIELD.length, -1),
              _run_id: runId,
              _bronze_part: part.key,
              _record_index: index,
            });
          }
        }
        for (const finding of normalized.drift) {
          stats.driftFinding(finding);
          if (contract.onDrift === 'fail') {
            throw new SchemaDriftError(
              `${part.key} record ${path}[${index}]: ${finding.kind} at ${finding.path} (e.g. ${finding.example}); ` +
                'the contract fails on drift — update the contract or set it to rescue or ignore unknown fields',
            );
          }
        }
        if (quarantined) {
          counts.quarantined++;
          continue;
        }
        counts.accepted++;
        for (const [table, rows] of Object.entries(normalized.rows)) {
          for (const row of rows) writer.append(table, withLineage(row, runId, part.key, index));
        }
      }
      await output.partDone();
      deps.onPart?.(lines);
    }
    signal?.throwIfAborted();
    const tables = await output.finish();
    return { index: group.index, tables, stats: stats.toStats() };
  } catch (error) {
    await output.abort();
    throw error;
  }
}

/** A bronze line's lineage and record; a line that is not one names its part and line (a damaged part). */
function parseBronzeLine(
  line: string,
  recordStart: number,
  options: ExactParseOptions,
  partKey: string,
  lineNumber: number,
  sourceUri: string,
): { path: string; index: number; offset: number; record: unknown } {
  try {
    return parseExact(line, recordStart, options) as ReturnType<typeof parseBronzeLine>;
  } catch (error) {
    // The exact parse (a long number, 1e-400) recurses: a record nested deep enough runs out of stack.
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      const lineage = JSON.parse(`${line.slice(0, recordStart)}}`) as {
        path: string;
        index: number;
        offset: number;
      };
      throw new NestingTooDeepError(
        sourceUri,
        `record ${lineage.path}[${lineage.index}]`,
        lineage.offset,
        `its exact number parse ran out of stack (${error.message}); lower "limits.maxDepth" to reject such records while parsing`,
        { cause: error },
      );
    }
    throw new PipelineError(
      `${partKey} line ${lineNumber} is not a bronze record (${(error as Error).message}): bronze parts are ` +
        'written once, with their sha256 in the bronze manifest, so this one was changed or damaged since. ' +
        'Run the source again to parse it anew.',
      { cause: error },
    );
  }
}

/**
 * Splits the parts into at most `groups` runs of consecutive parts with about equal uncompressed bytes
 * (the work of a part grows with its bytes, not its record count). Never an empty group, except the
 * single group of a run without parts.
 */
export function planSilverGroups(
  parts: readonly { readonly uncompressedBytes: number }[],
  groups: number,
): SilverGroupPlan[] {
  const count = Math.max(1, Math.min(Math.floor(groups), parts.length));
  const total = parts.reduce((sum, part) => sum + part.uncompressedBytes, 0);
  const cuts = [0];
  let done = 0;
  let next = 0;
  for (let g = 1; g < count; g++) {
    const target = (total * g) / count;
    const last = parts.length - (count - g);
    // A part joins this group when most of it lies before the target; each group keeps at least one part.
    while (next < last && done + parts[next]!.uncompressedBytes / 2 < target) {
      done += parts[next]!.uncompressedBytes;
      next++;
    }
    if (next === cuts.at(-1)) done += parts[next++]!.uncompressedBytes;
    cuts.push(next);
  }
  cuts.push(parts.length);
  return cuts.slice(1).map((endPart, index) => ({ index, firstPart: cuts[index]!, endPart }));
}

/** The rule of a key written twice in one object with different values: any dataset, any contract. */
export const DUPLICATE_KEY_RULE = 'record.duplicate_key';

/**
 * A quarantine per key a record's JSON holds twice with different values (see `duplicateKeys`): JSON
 * keeps the last one without a word, and neither is sluice's to choose. Offsets are the source file's:
 * bronze keeps each record's bytes as the file wrote them, from its own offset on.
 */
function duplicateKeyViolations(line: string, recordText: number, recordOffset: number): RuleViolation[] {
  const byteOffset = (at: number) => recordOffset + Buffer.byteLength(line.slice(recordText, at));
  return duplicateKeys(line, recordText, line.length - 1).map(({ path, firstAt, againAt }) => ({
    ruleId: DUPLICATE_KEY_RULE,
    severity: 'quarantine',
    path: jsonPath(path),
    message:
      `key ${JSON.stringify(String(path.at(-1)))} is written twice in one object with different values ` +
      `(at byte ${byteOffset(firstAt)}, then at byte ${byteOffset(againAt)} of the file). A JSON reader keeps ` +
      'one of them without a word, so the record is quarantined rather than ingested with either: fix the ' +
      "file's writer to write each key once",
  }));
}

/** Where a bronze line's record starts (lineage first, see `PartWriter`): its original bytes. */
const RECORD_FIELD = ',"record":';

/** The rule of a lone surrogate in a record: any dataset, any contract (see `loneSurrogatePaths`). */
export const LONE_SURROGATE_RULE = 'value.lone_surrogate';

/** A warning per string of a record (or of the headers) holding a lone surrogate, which silver stores as U+FFFD. */
function loneSurrogateWarnings(value: unknown, what = ''): RuleViolation[] {
  return loneSurrogatePaths(value).map((segments) => {
    const path = segments.length === 0 ? '$' : jsonPath(segments);
    return {
      ruleId: LONE_SURROGATE_RULE,
      severity: 'warn',
      path,
      message: `${what}${path}: a lone surrogate (an unpaired \\uD800–\\uDFFF escape), stored as U+FFFD`,
    };
  });
}

/** The rule of a header value beyond the double range: its column is left empty (never Infinity). */
export const OUT_OF_RANGE_RULE = 'value.out_of_range';

/** Header values no column can hold as written: lone surrogates, numbers beyond the double range. */
function headerWarnings(headers: Readonly<Record<string, unknown>>): RuleViolation[] {
  const warnings = loneSurrogateWarnings(headers, 'header ');
  for (const segments of outOfRangePaths(headers)) {
    const path = jsonPath(segments);
    warnings.push({
      ruleId: OUT_OF_RANGE_RULE,
      severity: 'warn',
      path,
      message: `header ${path}: ${outOfRangeReason(valueAt(headers, segments))}, stored as NULL`,
    });
  }
  return warnings;
}

/** The rule of a document value the run did not read (see `SkippedValue`). */
export const UNREAD_VALUE_RULE = 'document.unread_value';

/**
 * A warning and a drift finding per value the parse skipped (no path of the dataset names it, or it is a
 * header key's second value): its data is in neither bronze nor silver, which a run must say rather than
 * pass as complete.
 */
function skippedValueFindings(bronze: BronzeManifest): { violation: RuleViolation; drift: DriftFinding }[] {
  const skipped = bronze.skipped;
  if (!skipped) return [];
  const more = skipped.count - skipped.values.length;
  return skipped.values.map(({ path, kind, offset, repeated }, i) => {
    const value = `${kindName(kind)} at byte ${offset}`;
    const others = i === 0 && more > 0 ? ` (and ${more} more such values in the file)` : '';
    const message = repeated
      ? `${path}: ${value} that writes this header's key a second time, with another value than the first; ` +
        `the first was ingested and this one was not${others}. Fix the file's writer to write each key once`
      : `${path}: ${value} that no record or header path of dataset ${bronze.dataset} names, so it was not ` +
        `ingested${others}; if it holds data you need, describe the file with a dataset config (--config) ` +
        'that names it as a record or header path';
    return {
      violation: { ruleId: UNREAD_VALUE_RULE, severity: 'warn', path, message },
      drift: repeated
        ? { kind: 'wrong_type', path, example: `${value}, a second value of the key, not ingested` }
        : { kind: 'unknown_field', path, example: `${value}, not ingested` },
    };
  });
}

/** Adds the lineage columns to a row the contract just made (in place: no copy per row). */
function withLineage(row: Row, runId: string, bronzePart: string, recordIndex: number): Row {
  row._run_id = runId;
  row._bronze_part = bronzePart;
  row._record_index = recordIndex;
  return row;
}
