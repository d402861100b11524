import { tmpdir } from 'node:os';
import { openParquetInspector } from '../adapters/duckdb/parquet-inspector.ts';
import { createParquetTableWriter } from '../adapters/duckdb/parquet-table-writer.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { silverContractFor } from '../contracts/datasets/silver-contracts.ts';
import type { Clock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import {
  type IngestProgress,
  type IngestToBronzeResult,
  ingestToBronze,
} from '../stages/bronze/ingest-to-bronze.ts';
import { type ReconciliationReport, reconcile } from '../stages/reconcile/reconcile.ts';
import { type BuildSilverResult, buildSilver, type SilverProgress } from '../stages/silver/build-silver.ts';

const SILVER_MEMORY_LIMIT = '256MB';

export type Stage = 'bronze' | 'silver' | 'reconcile';

export interface LocalPipelineDeps {
  readonly source: ObjectStore;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** Scratch space for Parquet files and DuckDB spill. @default the OS temp dir */
  readonly workDir?: string;
  readonly onStage?: (stage: Stage) => void;
  readonly onIngestProgress?: (progress: IngestProgress) => void;
  readonly onSilverProgress?: (progress: SilverProgress) => void;
}

export interface LocalPipelineResult {
  readonly bronze: IngestToBronzeResult;
  /** Absent when the dataset has no silver contract (a bronze-only dataset). */
  readonly silver?: BuildSilverResult;
  readonly reconciliation?: ReconciliationReport;
}

/**
 * The whole pipeline for one file, in process: parse → bronze → silver → reconciliation. Each stage is
 * the same function the deployed workflow runs; they hand over through the lake, by manifest key.
 */
export async function runLocalPipeline(
  input: { readonly dataset: DatasetConfig; readonly sourceKey: string },
  deps: LocalPipelineDeps,
): Promise<LocalPipelineResult> {
  const workDir = deps.workDir ?? tmpdir();
  deps.onStage?.('bronze');
  const bronze = await ingestToBronze(input, {
    source: deps.source,
    lake: deps.lake,
    clock: deps.clock,
    onProgress: deps.onIngestProgress,
  });
  const contract = silverContractFor(input.dataset.name);
  if (!contract) return { bronze };

  deps.onStage?.('silver');
  const silver = await buildSilver(
    { bronzeManifestKey: bronze.manifestKey },
    {
      lake: deps.lake,
      clock: deps.clock,
      contract,
      // DuckDB spills to workDir beyond this, keeping the whole run near its 1 GB memory budget.
      createTableWriter: (tables, dir) =>
        createParquetTableWriter(tables, dir, { memoryLimit: SILVER_MEMORY_LIMIT }),
      workDir,
      onProgress: deps.onSilverProgress,
    },
  );
  deps.onStage?.('reconcile');
  const reconciliation = await reconcile(
    { bronzeManifestKey: bronze.manifestKey },
    { lake: deps.lake, clock: deps.clock, contract, openInspector: openParquetInspector, workDir },
  );
  return { bronze, silver, reconciliation };
}
