import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SilverContext, SilverContract } from '../../contracts/silver/contract.ts';
import type { DriftFinding, Row, RuleViolation, TableSpec } from '../../contracts/silver/table.ts';
import type { SilverManifest } from '../../contracts/silver-manifest.ts';
import { ContractViolationError, PipelineError, SchemaDriftError } from '../../errors.ts';
import { QUARANTINE_TABLE, silverManifestKey, silverTableKey } from '../../lake/keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { TableWriter, TableWriterFactory } from '../../ports/table-writer.ts';
import { readBronzeManifest, readBronzePart } from '../bronze/read-bronze.ts';

export interface BuildSilverInput {
  readonly bronzeManifestKey: string;
}

export interface SilverProgress {
  readonly partsDone: number;
  readonly partsTotal: number;
  readonly records: number;
}

export interface BuildSilverDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly contract: SilverContract;
  readonly createTableWriter: TableWriterFactory;
  /** Local scratch space for Parquet files before upload (Lambda: under /tmp). */
  readonly workDir: string;
  readonly onProgress?: (progress: SilverProgress) => void;
}

export interface BuildSilverResult {
  readonly manifestKey: string;
  readonly manifest: SilverManifest;
}

/** The quarantine table: one row per rule a quarantined record broke, with the record itself. */
export const quarantineTable: TableSpec = {
  name: QUARANTINE_TABLE,
  description:
    'Records set aside by a quarantine rule: which rule, where in the record, why, and the record.',
  columns: [
    { name: 'record_path', type: 'VARCHAR', nullable: false },
    { name: 'rule_id', type: 'VARCHAR', nullable: false },
    { name: 'severity', type: 'VARCHAR', nullable: false },
    { name: 'field_path', type: 'VARCHAR', nullable: false },
    { name: 'message', type: 'VARCHAR', nullable: false },
    { name: 'record', type: 'VARCHAR', nullable: false, description: 'the record as JSON' },
  ],
  key: ['record_path', '_record_index', 'rule_id', 'field_path'],
};

type Counted<T> = T & { count: number; example: string };

/**
 * Bronze → silver for one committed bronze run: every record through the dataset's contract, rows to
 * Parquet per table (deduplicated by key), broken rules to quarantine, drift counted. Each table's
 * partition for this source is one Parquet file written atomically; the silver manifest, written last,
 * commits the build. Rebuilding replaces the partition: same keys, stale tables removed.
 */
export async function buildSilver(
  input: BuildSilverInput,
  deps: BuildSilverDeps,
): Promise<BuildSilverResult> {
  const startedAt = deps.clock.now();
  const bronze = await readBronzeManifest(deps.lake, input.bronzeManifestKey);
  const { runId, dataset } = bronze;
  const manifestKey = silverManifestKey(dataset, runId);
  await deps.lake.delete(manifestKey);

  const { contract } = deps;
  const tables = [...contract.tables, quarantineTable];
  const context: SilverContext = {
    runId,
    sourceUri: bronze.source.uri,
    sourceSha256: bronze.source.sha256,
    headers: bronze.headers,
  };
  const records: SilverManifest['records'] = Object.fromEntries(
    Object.entries(bronze.records).map(([path, n]) => [path, { bronze: n, accepted: 0, quarantined: 0 }]),
  );
  const violations = new Map<string, Counted<Omit<RuleViolation, 'message'>>>();
  const drift = new Map<string, Counted<Omit<DriftFinding, 'example'>>>();

  const workDir = join(deps.workDir, `silver-${runId}`);
  await rm(workDir, { recursive: true, force: true });
  await mkdir(workDir, { recursive: true });
  const writer = await deps.createTableWriter(tables, workDir);
  try {
    for (const [table, rows] of Object.entries(contract.fileRows(context))) {
      for (const row of rows) writer.append(table, withLineage(row, runId, input.bronzeManifestKey, 0));
    }
    let partsDone = 0;
    let recordsDone = 0;
    for (const part of bronze.parts) {
      const content = await readBronzePart(deps.lake, part.key);
      for (const line of content.lines) {
        const { path, index, record } = JSON.parse(line.toString('utf8')) as {
          path: string;
          index: number;
          record: unknown;
        };
        const counts = records[path];
        if (!counts)
          throw new PipelineError(`${part.key}: a record of path "${path}" that the manifest does not list`);
        const normalized = contract.normalize(path, index, record, context);
        let quarantined = false;
        for (const violation of normalized.violations) {
          count(violations, violation.ruleId, violation, violation.message);
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
              record: JSON.stringify(record),
              _run_id: runId,
              _bronze_part: part.key,
              _record_index: index,
            });
          }
        }
        for (const finding of normalized.drift) {
          count(drift, `${finding.kind}:${finding.path}`, finding, finding.example);
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
      recordsDone += content.lines.length;
      deps.onProgress?.({ partsDone: ++partsDone, partsTotal: bronze.parts.length, records: recordsDone });
    }
    const results = await writer.finish();
    const tableResults = await publishTables(deps.lake, dataset, runId, tables, results);
    const finishedAt = deps.clock.now();
    const manifest: SilverManifest = {
      manifestVersion: 1,
      runId,
      dataset,
      bronzeManifestKey: input.bronzeManifestKey,
      records,
      tables: tableResults,
      violations: Object.fromEntries(
        [...violations].map(([id, v]) => [
          id,
          { severity: v.severity, path: v.path, count: v.count, example: v.example },
        ]),
      ),
      drift: Object.fromEntries(
        [...drift].map(([id, d]) => [id, { kind: d.kind, count: d.count, example: d.example }]),
      ),
      timings: {
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        durationMs: finishedAt.getTime() - startedAt.getTime(),
      },
    };
    await deps.lake.write(manifestKey, `${JSON.stringify(manifest, null, 2)}\n`, {
      contentType: 'application/json',
    });
    return { manifestKey, manifest };
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

/** Adds the lineage columns to a row the contract just made (in place: no copy per row). */
function withLineage(row: Row, runId: string, bronzePart: string, recordIndex: number): Row {
  row._run_id = runId;
  row._bronze_part = bronzePart;
  row._record_index = recordIndex;
  return row;
}

function count<T extends object>(map: Map<string, Counted<T>>, id: string, value: T, example: string): void {
  const seen = map.get(id);
  if (seen) seen.count++;
  else map.set(id, { ...value, count: 1, example: example.slice(0, 200) });
}

/** Upload each table's Parquet file to its partition key; remove partitions a table no longer has. */
async function publishTables(
  lake: ObjectStore,
  dataset: string,
  runId: string,
  tables: readonly TableSpec[],
  results: Awaited<ReturnType<TableWriter['finish']>>,
): Promise<SilverManifest['tables']> {
  const published: SilverManifest['tables'] = {};
  for (const table of tables) {
    const result = results[table.name] ?? { rowsIn: 0, rowsWritten: 0, duplicates: 0 };
    const key = silverTableKey(dataset, table.name, runId);
    if (!result.file) {
      await lake.delete(key);
      published[table.name] = {
        rowsIn: result.rowsIn,
        rowsWritten: 0,
        duplicates: result.duplicates,
        bytes: 0,
      };
      continue;
    }
    const sha256 = createHash('sha256')
      .update(await readFile(result.file))
      .digest('hex');
    const info = await lake.write(key, createReadStream(result.file), {
      contentType: 'application/vnd.apache.parquet',
    });
    published[table.name] = {
      key,
      rowsIn: result.rowsIn,
      rowsWritten: result.rowsWritten,
      duplicates: result.duplicates,
      bytes: info.size,
      sha256,
    };
  }
  return published;
}
