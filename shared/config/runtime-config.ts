import { z } from 'zod';
import { explainIssues } from '../contracts/dataset-config.ts';
import { ConfigError } from '../errors.ts';
import type { PacingLimits } from '../workflow/pacing.ts';
import { type PriceList, US_EAST_1_PRICE_LIST } from '../workflow/run-cost.ts';

/**
 * The configuration of the Lambda handlers, read from their environment and checked once at cold
 * start. This is the only module that reads `process.env`; the CDK app writes the same variables
 * through the `…Environment` functions below, so names and meanings are defined once. Nothing here is
 * secret: secrets would come from a secret store, never from the environment.
 */

type Env = Readonly<Record<string, string | undefined>>;

/** Lambda's only writable place: the silver and reconcile stages stage Parquet files (and spill) here. */
export const LAMBDA_WORK_DIR = '/tmp/sluice';

/**
 * The share of a run's records that may be quarantined before the run fails (its Reconcile stage) and,
 * over an hour, before the quarantine alarm fires. One default for both: the deployment config's
 * `quarantineRateThreshold` and `sluice run --quarantine-threshold`.
 */
export const DEFAULT_QUARANTINE_RATE_THRESHOLD = 0.05;

/**
 * The memory each stage function is deployed with, by default, in MB (CPU grows with it): the CDK app
 * sizes the functions with it, and a local run bills its invocations as if they had it.
 */
export const DEFAULT_FUNCTION_MEMORY_MB = {
  download: 512,
  ingest: 3008,
  silver: 3008,
  reconcile: 2048,
  fanOut: 1024,
} as const;

const price = (unit: string, example: number) =>
  z
    .number({ error: `expected a price in US dollars ${unit}, e.g. ${example}` })
    .nonnegative(`expected a price in US dollars ${unit}, e.g. ${example}`)
    .describe(`US dollars ${unit}.`);

/**
 * The prices a run's cost is given at (shared/workflow/run-cost.ts), each in the unit AWS lists it in;
 * the deployment config's `prices`, with us-east-1's list prices as defaults.
 */
export const PriceListSchema = z
  .object({
    lambdaGbSecondUsd: price('per Lambda GB-second (arm64)', US_EAST_1_PRICE_LIST.lambdaGbSecondUsd),
    lambdaMillionRequestsUsd: price(
      'per million Lambda requests',
      US_EAST_1_PRICE_LIST.lambdaMillionRequestsUsd,
    ),
    thousandStateTransitionsUsd: price(
      'per thousand Step Functions (standard) state transitions',
      US_EAST_1_PRICE_LIST.thousandStateTransitionsUsd,
    ),
    s3ThousandPutRequestsUsd: price(
      'per thousand S3 PUT, COPY, POST or LIST requests',
      US_EAST_1_PRICE_LIST.s3ThousandPutRequestsUsd,
    ),
    s3ThousandGetRequestsUsd: price(
      'per thousand S3 GET (and other read) requests',
      US_EAST_1_PRICE_LIST.s3ThousandGetRequestsUsd,
    ),
  })
  .strict() satisfies z.ZodType<PriceList>;

const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const required = (what: string) =>
  z.string({ error: `missing: set it to ${what}` }).min(1, `empty: set it to ${what}`);

const Common = {
  POWERTOOLS_SERVICE_NAME: required('the service name used in logs and metric dimensions'),
  POWERTOOLS_LOG_LEVEL: z.enum(LOG_LEVELS, { error: `use one of ${LOG_LEVELS.join(', ')}` }).default('INFO'),
  /** Set by the Lambda runtime; optional so the handlers also run locally with the SDK's defaults. */
  AWS_REGION: z.string().min(1).optional(),
};

const IngestEnv = z.object({
  ...Common,
  LANDING_BUCKET: required('the landing bucket name'),
  LAKE_BUCKET: required('the lake bucket name'),
  DATASETS: required('a comma-separated list of dataset names').transform((value) =>
    value
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean),
  ),
  /** Uncompressed input per ingest slice at most, in MB (absent: slices end by time alone). */
  INGEST_SLICE_MAX_MB: z.coerce
    .number({ error: 'expected a positive number of MB' })
    .positive('expected a positive number of MB')
    .optional(),
});

const LakeStageEnv = z.object({
  ...Common,
  LAKE_BUCKET: required('the lake bucket name'),
  DATASETS: IngestEnv.shape.DATASETS,
  /** Silver only: uncompressed bronze per group of a build in groups, in MB. */
  SILVER_GROUP_TARGET_MB: z.coerce
    .number({ error: 'expected a whole number of MB' })
    .int('expected a whole number of MB')
    .positive('expected a positive number of MB')
    .optional(),
  /** Silver only: uncompressed bronze per merge bucket of a build, in MB. */
  SILVER_BUCKET_TARGET_MB: z.coerce
    .number({ error: 'expected a whole number of MB' })
    .int('expected a whole number of MB')
    .positive('expected a positive number of MB')
    .optional(),
  /** Reconcile only: the share of a run's records that may be quarantined (0–1). */
  QUARANTINE_RATE_THRESHOLD: z.coerce
    .number({ error: 'expected a share from 0 to 1, e.g. 0.05' })
    .min(0, 'expected a share from 0 to 1, e.g. 0.05')
    .max(1, 'expected a share from 0 to 1, e.g. 0.05')
    .optional(),
  /** Reconcile only: the prices of a run's cost, a JSON PriceList (absent: us-east-1 list prices). */
  RUN_COST_PRICES: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a JSON object of prices' });
        return z.NEVER;
      }
    })
    .pipe(PriceListSchema)
    .optional(),
  /** Reconcile only: the Glue database whose partitions each commit moves (absent: no catalog). */
  GLUE_DATABASE: z
    .string()
    .regex(/^[a-z0-9_]{1,255}$/, 'expected a Glue database name: lowercase letters, digits and _')
    .optional(),
});

const DownloadEnv = z.object({
  ...Common,
  LANDING_BUCKET: required('the landing bucket name'),
  DATASETS: IngestEnv.shape.DATASETS,
  SOURCE_SECRET_PREFIX: required("the prefix of the sources' Secrets Manager secret names"),
});

const positiveNumber = (what: string) =>
  z.coerce.number({ error: `expected ${what}` }).positive(`expected ${what}`);
const wholePositive = (what: string) => positiveNumber(what).int(`expected ${what}`);

const StartExecutionEnv = z.object({
  ...Common,
  STATE_MACHINE_ARN: required('the ARN of the workflow state machine'),
  LANDING_QUEUE_URL: required('the URL of the landing queue, where deferred events go back'),
  MAX_STARTS_PER_SECOND: positiveNumber('a positive number of executions started per second, e.g. 5'),
  MAX_RUNNING_EXECUTIONS: wholePositive('a positive whole number of running executions, e.g. 50'),
  STARTERS: wholePositive("the landing queue mapping's maximum concurrency, a positive whole number"),
});

/** Settings every handler shares. */
export interface HandlerConfig {
  readonly serviceName: string;
  readonly logLevel: LogLevel;
  readonly region?: string;
}

/** Settings of the ingest handler. */
export interface IngestConfig extends HandlerConfig {
  readonly landingBucket: string;
  readonly lakeBucket: string;
  /** The datasets this deployment ingests; landed files of any other dataset fail with a ConfigError. */
  readonly datasets: readonly string[];
  /**
   * Uncompressed input one slice reads at most, in MB: it then ends at the next segment boundary, even
   * with time left (`withSliceMaxBytes`). @default - no bound: a slice lasts as long as its time allows
   */
  readonly sliceMaxMb?: number;
}

/** Settings of the handlers that work on the lake alone: silver, reconcile and fan-out. */
export interface LakeStageConfig extends HandlerConfig {
  readonly lakeBucket: string;
  /** The datasets this deployment ingests; events of any other dataset fail with a ConfigError. */
  readonly datasets: readonly string[];
  /** Silver: uncompressed bronze per group when `PlanSilver` splits a build. @default 1536 */
  readonly silverGroupTargetMb?: number;
  /** Silver: uncompressed bronze per merge bucket when `PlanSilver` plans a build. @default 8192 */
  readonly silverBucketTargetMb?: number;
  /**
   * Reconcile: a run that quarantined more than this share of its records fails.
   * @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05)
   */
  readonly quarantineRateThreshold?: number;
  /**
   * Reconcile: the Glue database of the silver tables; each commit registers the source's partitions
   * there, so Athena reads committed versions only. @default - no catalog is told (local runs, tests)
   */
  readonly glueDatabase?: string;
  /** Reconcile: the prices of a run's cost. @default US_EAST_1_PRICE_LIST */
  readonly prices?: PriceList;
}

/** Settings of the download handler. */
export interface DownloadConfig extends HandlerConfig {
  readonly landingBucket: string;
  /** The datasets this deployment ingests; sources of any other dataset fail with a ConfigError. */
  readonly datasets: readonly string[];
  /** A source's secret is `<prefix><source name>` (shared/workflow/source.ts). */
  readonly sourceSecretPrefix: string;
}

/** Settings of the start-execution handler. */
export interface StartExecutionConfig extends HandlerConfig {
  readonly stateMachineArn: string;
  /** The queue the landing events arrive from; deferred events are sent back to it. */
  readonly landingQueueUrl: string;
  /** How fast, and how far, bulk drops start (shared/workflow/pacing.ts). */
  readonly pacing: PacingLimits;
}

/** Read the ingest handler's configuration (default: `process.env`). */
export function loadIngestConfig(env: Env = process.env): IngestConfig {
  const e = parseEnv(IngestEnv, env, 'ingest');
  return {
    ...common(e),
    landingBucket: e.LANDING_BUCKET,
    lakeBucket: e.LAKE_BUCKET,
    datasets: e.DATASETS,
    ...(e.INGEST_SLICE_MAX_MB !== undefined && { sliceMaxMb: e.INGEST_SLICE_MAX_MB }),
  };
}

/** Read the silver, reconcile or fan-out handler's configuration (default: `process.env`). */
export function loadLakeStageConfig(
  handler: 'silver' | 'reconcile' | 'fan-out',
  env: Env = process.env,
): LakeStageConfig {
  const e = parseEnv(LakeStageEnv, env, handler);
  return {
    ...common(e),
    lakeBucket: e.LAKE_BUCKET,
    datasets: e.DATASETS,
    ...(e.SILVER_GROUP_TARGET_MB !== undefined && { silverGroupTargetMb: e.SILVER_GROUP_TARGET_MB }),
    ...(e.SILVER_BUCKET_TARGET_MB !== undefined && { silverBucketTargetMb: e.SILVER_BUCKET_TARGET_MB }),
    ...(e.QUARANTINE_RATE_THRESHOLD !== undefined && {
      quarantineRateThreshold: e.QUARANTINE_RATE_THRESHOLD,
    }),
    ...(e.GLUE_DATABASE !== undefined && { glueDatabase: e.GLUE_DATABASE }),
    ...(e.RUN_COST_PRICES !== undefined && { prices: e.RUN_COST_PRICES }),
  };
}

/** Read the download handler's configuration (default: `process.env`). */
export function loadDownloadConfig(env: Env = process.env): DownloadConfig {
  const e = parseEnv(DownloadEnv, env, 'download');
  return {
    ...common(e),
    landingBucket: e.LANDING_BUCKET,
    datasets: e.DATASETS,
    sourceSecretPrefix: e.SOURCE_SECRET_PREFIX,
  };
}

/** The environment that `loadDownloadConfig` reads, for the CDK app to set. */
export function downloadEnvironment(config: Omit<DownloadConfig, 'region'>): Record<string, string> {
  return {
    ...commonEnvironment(config),
    LANDING_BUCKET: config.landingBucket,
    DATASETS: config.datasets.join(','),
    SOURCE_SECRET_PREFIX: config.sourceSecretPrefix,
  };
}

/** Read the start-execution handler's configuration (default: `process.env`). */
export function loadStartExecutionConfig(env: Env = process.env): StartExecutionConfig {
  const e = parseEnv(StartExecutionEnv, env, 'start-execution');
  return {
    ...common(e),
    stateMachineArn: e.STATE_MACHINE_ARN,
    landingQueueUrl: e.LANDING_QUEUE_URL,
    pacing: {
      maxStartsPerSecond: e.MAX_STARTS_PER_SECOND,
      maxRunningExecutions: e.MAX_RUNNING_EXECUTIONS,
      starters: e.STARTERS,
    },
  };
}

/** The environment that `loadIngestConfig` reads, for the CDK app to set. */
export function ingestEnvironment(config: Omit<IngestConfig, 'region'>): Record<string, string> {
  return {
    ...commonEnvironment(config),
    LANDING_BUCKET: config.landingBucket,
    LAKE_BUCKET: config.lakeBucket,
    DATASETS: config.datasets.join(','),
    ...(config.sliceMaxMb !== undefined && { INGEST_SLICE_MAX_MB: String(config.sliceMaxMb) }),
  };
}

/** The environment that `loadLakeStageConfig` reads, for the CDK app to set. */
export function lakeStageEnvironment(config: Omit<LakeStageConfig, 'region'>): Record<string, string> {
  return {
    ...commonEnvironment(config),
    LAKE_BUCKET: config.lakeBucket,
    DATASETS: config.datasets.join(','),
    ...(config.silverGroupTargetMb !== undefined && {
      SILVER_GROUP_TARGET_MB: String(config.silverGroupTargetMb),
    }),
    ...(config.silverBucketTargetMb !== undefined && {
      SILVER_BUCKET_TARGET_MB: String(config.silverBucketTargetMb),
    }),
    ...(config.quarantineRateThreshold !== undefined && {
      QUARANTINE_RATE_THRESHOLD: String(config.quarantineRateThreshold),
    }),
    ...(config.glueDatabase !== undefined && { GLUE_DATABASE: config.glueDatabase }),
    ...(config.prices !== undefined && { RUN_COST_PRICES: JSON.stringify(config.prices) }),
  };
}

/** The environment that `loadStartExecutionConfig` reads, for the CDK app to set. */
export function startExecutionEnvironment(
  config: Omit<StartExecutionConfig, 'region'>,
): Record<string, string> {
  return {
    ...commonEnvironment(config),
    STATE_MACHINE_ARN: config.stateMachineArn,
    LANDING_QUEUE_URL: config.landingQueueUrl,
    MAX_STARTS_PER_SECOND: String(config.pacing.maxStartsPerSecond),
    MAX_RUNNING_EXECUTIONS: String(config.pacing.maxRunningExecutions),
    STARTERS: String(config.pacing.starters),
  };
}

function commonEnvironment(config: Omit<HandlerConfig, 'region'>): Record<string, string> {
  return { POWERTOOLS_SERVICE_NAME: config.serviceName, POWERTOOLS_LOG_LEVEL: config.logLevel };
}

function common(e: z.output<z.ZodObject<typeof Common>>): HandlerConfig {
  return {
    serviceName: e.POWERTOOLS_SERVICE_NAME,
    logLevel: e.POWERTOOLS_LOG_LEVEL,
    ...(e.AWS_REGION ? { region: e.AWS_REGION } : {}),
  };
}

function parseEnv<T extends z.ZodType>(schema: T, env: Env, handler: string): z.output<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const lines = explainIssues(result.error.issues).map((line) => `  - ${line}`);
  throw new ConfigError(
    `the ${handler} handler's environment is invalid:\n${lines.join('\n')}\n` +
      'These variables are set by the CDK app (infra/); redeploy, or set them when running locally.',
  );
}

const WatchExecutionsEnv = z.object({
  ...Common,
  STATE_MACHINE_ARN: StartExecutionEnv.shape.STATE_MACHINE_ARN,
  DATASETS: IngestEnv.shape.DATASETS,
});

/** Settings of the watch-executions handler. */
export interface WatchExecutionsConfig extends HandlerConfig {
  readonly stateMachineArn: string;
  /** The deployed datasets: each gets its gauges every time, 0 when nothing of it runs. */
  readonly datasets: readonly string[];
}

/** Read the watch-executions handler's configuration (default: `process.env`). */
export function loadWatchExecutionsConfig(env: Env = process.env): WatchExecutionsConfig {
  const e = parseEnv(WatchExecutionsEnv, env, 'watch-executions');
  return { ...common(e), stateMachineArn: e.STATE_MACHINE_ARN, datasets: e.DATASETS };
}

/** The environment that `loadWatchExecutionsConfig` reads, for the CDK app to set. */
export function watchExecutionsEnvironment(
  config: Omit<WatchExecutionsConfig, 'region'>,
): Record<string, string> {
  return {
    ...commonEnvironment(config),
    STATE_MACHINE_ARN: config.stateMachineArn,
    DATASETS: config.datasets.join(','),
  };
}
