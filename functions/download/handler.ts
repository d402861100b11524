import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  createObservability,
  type LambdaContext,
  type Observability,
} from '../../shared/adapters/aws/observability.ts';
import { createS3Client, S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { SecretsManagerStore } from '../../shared/adapters/aws/secrets-manager-store.ts';
import {
  onFirstInvocation,
  parseStageEvent,
  type StageHandler,
  stageHandler,
} from '../../shared/adapters/aws/stage-handler.ts';
import { type DownloadConfig, loadDownloadConfig } from '../../shared/config/runtime-config.ts';
import type { DatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { datasetNamed } from '../../shared/contracts/datasets/index.ts';
import { contractForDataset } from '../../shared/contracts/datasets/silver-contracts.ts';
import { ConfigError } from '../../shared/errors.ts';
import { type Clock, systemClock } from '../../shared/ports/clock.ts';
import type { UploadingObjectStore } from '../../shared/ports/object-store.ts';
import type { SecretStore } from '../../shared/ports/secret-store.ts';
import type { SliceBudget } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { lambdaSliceBudget } from '../../shared/stages/bronze/slice-budget.ts';
import {
  type DownloadResult,
  downloadToLanding,
  type FetchOptions,
  type RetryEvent,
} from '../../shared/stages/download/download.ts';
import { redactUrl } from '../../shared/stages/download/url-safety.ts';
import {
  DownloadEvent,
  type DownloadStateOutput,
  type Source,
  sourceSecretId,
} from '../../shared/workflow/source.ts';

/**
 * The `Download` state of the workflow (executions started with `{ source }`, e.g. by a schedule): one
 * HTTP source -> one object in the landing bucket, which the workflow then ingests.
 *
 * Event: `{ source: { name?, url, dataset, sha256?, credentials?: { kind, name? } }, executionId? }`.
 * The credential's secret is `<SOURCE_SECRET_PREFIX><source name>`: the event never names another one.
 * Result: `{ status: "landed", bucket, key, dataset, hasSilver, url }` of the landed object, or
 * `{ status: "partial", checkpointKey, progress }` when the Lambda's remaining time ran out first: the
 * workflow invokes it again and it continues from the checkpoint (shared/workflow/source.ts).
 */

/** What the download handler works with; `createDeps` binds it to AWS, tests bind it to anything. */
export interface DownloadDeps {
  readonly config: DownloadConfig;
  readonly landing: UploadingObjectStore;
  readonly secrets: SecretStore;
  readonly clock: Clock;
  readonly observability: Observability;
  readonly fetchOptions?: FetchOptions;
  /** Datasets beyond the built-in ones (a local run of a dataset config file), by name. */
  readonly datasetConfigs?: readonly DatasetConfig[];
  /**
   * The id of a source's secret. @default `<sourceSecretPrefix><source name>`: the event never names
   * another one (`sluice run --secret-id` names it on the command line)
   */
  readonly secretIdOf?: (source: Source) => string;
  /** Before each retry of an HTTP attempt. @default a log line */
  readonly onRetry?: (event: RetryEvent) => void;
  /** The landed object, in full (a local run's messages). */
  readonly onResult?: (result: DownloadResult) => void;
  /** Each invocation's budget; by default the Lambda's remaining time (see lambdaSliceBudget). */
  readonly budget?: () => SliceBudget | undefined;
  /** Bytes per part instead of the size derived from the source's (tests: small parts). */
  readonly partBytes?: number;
  /** Scratch space for the part being uploaded. @default the system's temporary folder (Lambda: /tmp) */
  readonly workDir?: string;
}

/** The AWS adapters, created once per cold start. */
export function createDeps(config: DownloadConfig): DownloadDeps {
  const region = config.region ? { region: config.region } : {};
  return {
    config,
    landing: new S3ObjectStore({ client: createS3Client(region), bucket: config.landingBucket }),
    secrets: new SecretsManagerStore({ client: new SecretsManagerClient(region) }),
    clock: systemClock,
    observability: createObservability(config),
  };
}

/** Download one source into the landing bucket. */
export async function download(
  event: unknown,
  deps: DownloadDeps,
  context?: LambdaContext,
): Promise<DownloadStateOutput> {
  const { logger } = deps.observability;
  const { source } = parseStageEvent(
    DownloadEvent,
    event,
    'download',
    '{ "source": { "name", "url", "dataset", "sha256"?, "credentials"? } }',
  );
  if (!deps.config.datasets.includes(source.dataset)) {
    throw new ConfigError(
      `dataset "${source.dataset}" is not deployed (deployed: ${deps.config.datasets.join(', ')})`,
    );
  }
  if (source.credentials && !source.name && !deps.secretIdOf) {
    throw new ConfigError('source.name is required with credentials: it names the secret');
  }
  logger.appendKeys({ dataset: source.dataset, source: source.name });
  const result = await downloadToLanding(
    {
      url: source.url,
      dataset: source.dataset,
      sha256: source.sha256,
      credentials: source.credentials && {
        ...source.credentials,
        secretId: deps.secretIdOf?.(source) ?? sourceSecretId(deps.config.sourceSecretPrefix, source.name!),
      },
    },
    {
      landing: deps.landing,
      secrets: deps.secrets,
      clock: deps.clock,
      fetchOptions: deps.fetchOptions,
      onRetry: deps.onRetry ?? ((retry) => logger.warn('download retry', { ...retry })),
      budget: deps.budget ? deps.budget() : context ? lambdaSliceBudget(deps.clock, context) : undefined,
      partBytes: deps.partBytes,
      scratchDir: deps.workDir,
    },
  );
  if (result.status === 'partial') {
    const { checkpointKey, status, key, ...progress } = result;
    logger.info('download continues in the next invocation', { key, checkpointKey, ...progress });
    return { status, checkpointKey, progress };
  }
  deps.onResult?.(result);
  logger.info('download landed', {
    key: result.key,
    bytes: result.bytes,
    attempts: result.attempts,
    invocations: result.invocations,
  });
  return {
    status: 'landed',
    bucket: deps.config.landingBucket,
    key: result.key,
    dataset: source.dataset,
    hasSilver: contractForDataset(datasetNamed(source.dataset, deps.datasetConfigs)) !== undefined,
    url: redactUrl(source.url),
  };
}

/** The handler for one set of dependencies. */
export function createHandler(deps: DownloadDeps): StageHandler<DownloadStateOutput> {
  return stageHandler(deps, download);
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadDownloadConfig())));
