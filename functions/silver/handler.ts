import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { createObservability, type Observability } from '../../shared/adapters/aws/observability.ts';
import { createS3Client, S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import {
  onFirstInvocation,
  parseStageEvent,
  type StageHandler,
  stageHandler,
} from '../../shared/adapters/aws/stage-handler.ts';
import { createParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import {
  LAMBDA_WORK_DIR,
  type LakeStageConfig,
  loadLakeStageConfig,
} from '../../shared/config/runtime-config.ts';
import { type Clock, systemClock } from '../../shared/ports/clock.ts';
import type { ObjectStore } from '../../shared/ports/object-store.ts';
import type { TableWriterFactory } from '../../shared/ports/table-writer.ts';
import { buildSilver } from '../../shared/stages/silver/build-silver.ts';
import { Dimension, MetricName } from '../../shared/workflow/metrics.ts';
import {
  LakeStageEvent,
  quarantinedRecords,
  requireSilverContract,
  type SilverOutput,
  silverOutput,
} from '../../shared/workflow/stage-io.ts';

/**
 * The `Silver` state of the workflow: one committed bronze run -> silver Parquet tables and manifest.
 *
 * Event: `{ dataset, bronzeManifestKey, executionId? }` (the `Ingest` state's reference).
 * Result: `{ silverManifestKey, tables: { <table>: rows }, quarantined }`.
 * Errors keep their sluice names (`ContractViolationError`, `SchemaDriftError`, `ConfigError`, ...); network
 * failures become `TransientError`, which the state machine retries.
 */

/** What the silver handler works with; `createDeps` binds it to AWS, tests bind it to anything. */
export interface SilverDeps {
  readonly config: LakeStageConfig;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly observability: Observability;
  readonly createTableWriter: TableWriterFactory;
  /** Scratch space for Parquet files and spill. */
  readonly workDir: string;
}

/** The AWS adapters, created once per cold start. */
export function createDeps(config: LakeStageConfig): SilverDeps {
  const client = createS3Client(config.region ? { region: config.region } : {});
  return {
    config,
    lake: new S3ObjectStore({ client, bucket: config.lakeBucket }),
    clock: systemClock,
    observability: createObservability(config),
    createTableWriter: createParquetTableWriter,
    workDir: LAMBDA_WORK_DIR,
  };
}

/** Build the silver tables of one committed bronze run. */
export async function silver(event: unknown, deps: SilverDeps): Promise<SilverOutput> {
  const { logger, metrics } = deps.observability;
  const input = parseStageEvent(
    LakeStageEvent,
    event,
    'silver',
    '{ "dataset": string, "bronzeManifestKey": string }',
  );
  const contract = requireSilverContract(input.dataset, deps.config.datasets);
  logger.appendKeys({ dataset: input.dataset, bronzeManifestKey: input.bronzeManifestKey });
  metrics.addDimension(Dimension.dataset, input.dataset);
  logger.info('silver started');

  const result = await buildSilver(
    { bronzeManifestKey: input.bronzeManifestKey },
    {
      lake: deps.lake,
      clock: deps.clock,
      contract,
      createTableWriter: deps.createTableWriter,
      workDir: deps.workDir,
    },
  );
  const quarantined = quarantinedRecords(result);
  metrics.addMetric(MetricName.quarantinedRecords, MetricUnit.Count, quarantined);
  logger.info('silver committed', {
    manifestKey: result.manifestKey,
    quarantined,
    durationMs: result.manifest.timings.durationMs,
  });
  return silverOutput(result);
}

/** The handler for one set of dependencies. */
export function createHandler(deps: SilverDeps): StageHandler<SilverOutput> {
  return stageHandler(deps, silver);
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadLakeStageConfig('silver'))));
