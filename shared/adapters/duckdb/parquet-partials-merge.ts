import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { TableSpec } from '../../contracts/silver/table.ts';
import { DiskFullError, isDiskFull, PipelineError } from '../../errors.ts';
import type { MergedTableResult } from '../../ports/table-writer.ts';
import { SINGLE_THREAD, writeFinalTable } from './final-table.ts';
import { planTable } from './parquet-table-writer.ts';

export interface ParquetMergeOptions {
  /** DuckDB's `memory_limit`; beyond it a deduplication spills to a folder inside `workDir`. @default '512MB' */
  readonly memoryLimit?: string;
  /** Rows per row group of the final files. @default FINAL_ROW_GROUP_ROWS (32,768) */
  readonly rowGroupRows?: number;
}

/** Spill folder inside the work dir; removed when the merge ends. */
const SPILL_DIR = '.duckdb-merge-spill';

/**
 * A `TablePartialsMerger` on DuckDB: per table, `writeFinalTable` over its partial files in the order
 * given (group, then part), the very statements a `ParquetTableWriter` runs over its own table, so the
 * file is byte for byte the one a single writer given every row writes. Partials may be deduplicated
 * already or not: the survivor order is total (lineage, then every column), so a key's survivor overall
 * is the survivor of any split's survivors.
 */
export async function mergeParquetPartials(
  tables: readonly TableSpec[],
  partials: Readonly<Record<string, readonly string[]>>,
  workDir: string,
  options: ParquetMergeOptions = {},
): Promise<Record<string, MergedTableResult>> {
  const plans = tables.map(planTable);
  await mkdir(workDir, { recursive: true });
  const spillDir = join(workDir, SPILL_DIR);
  const outputs: string[] = [];
  // One thread, so row groups do not depend on timing (./final-table.ts); tables still merge at once.
  const instance = await DuckDBInstance.create(':memory:', {
    ...SINGLE_THREAD,
    memory_limit: options.memoryLimit ?? '512MB',
    temp_directory: spillDir,
  });
  try {
    const results: Record<string, MergedTableResult> = {};
    // Tables are merged at once, each on a connection of its own, whose statements run on a thread of
    // libuv's pool: with DuckDB on one thread per statement, the tables share the cores between them.
    const merging = plans.map(async (plan) => {
      const { name } = plan.spec;
      const files = partials[name] ?? [];
      if (files.length === 0) {
        results[name] = { rowsWritten: 0 };
        return;
      }
      const file = join(workDir, `${name}.parquet`);
      // Written under a temporary name and renamed, so a `<table>.parquet` on disk is always complete.
      const temporary = `${file}.tmp`;
      outputs.push(temporary, file);
      const connection = await instance.connect();
      try {
        const written = await writeFinalTable(connection, plan, files, temporary, options.rowGroupRows);
        results[name] = { ...written, file };
      } catch (error) {
        if (isDiskFull(error)) {
          throw new DiskFullError(file, `silver table ${name}`, message(error), { cause: error });
        }
        throw new PipelineError(
          `silver table ${name}: merging ${files.length} partial files failed: ${message(error)}`,
          { cause: error },
        );
      } finally {
        connection.closeSync();
      }
      await rename(temporary, file);
    });
    // Every merge settles before the instance closes; then the first failure, if any, is thrown.
    const settled = await Promise.allSettled(merging);
    const failed = settled.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    return results;
  } catch (error) {
    await Promise.all(outputs.map((file) => rm(file, { force: true })));
    throw error;
  } finally {
    instance.closeSync();
    await rm(spillDir, { recursive: true, force: true });
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
