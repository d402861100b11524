import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  DEFAULT_FUNCTION_MEMORY_MB,
  DEFAULT_QUARANTINE_RATE_THRESHOLD,
  PriceListSchema,
} from '../../shared/config/runtime-config.ts';
import { explainIssues } from '../../shared/contracts/dataset-config.ts';
import { builtInDatasets } from '../../shared/contracts/datasets/index.ts';
import { ConfigError } from '../../shared/errors.ts';
import { credentialParams } from '../../shared/stages/download/landing-key.ts';
import {
  DEFAULT_FAN_OUT_CONCURRENCY,
  DEFAULT_SILVER_CONCURRENCY,
  MAX_SILVER_CONCURRENCY,
} from '../../shared/workflow/definition.ts';
import { US_EAST_1_PRICE_LIST } from '../../shared/workflow/run-cost.ts';
import { CREDENTIAL_KINDS, SOURCE_NAME } from '../../shared/workflow/source.ts';
import { FAN_OUT_DATASET, LISTED_FILE_DATASET } from '../../shared/workflow/stage-io.ts';

/**
 * The deployment config (`sluice.config.json`): what one deployment of sluice ingests and how it is
 * sized and watched. Checked when the CDK app synthesizes, so a bad value fails `cdk synth` with the
 * field's path and how to fix it, before anything reaches AWS.
 */

/** Uncompressed bronze per silver group: comfortably within one 15-minute Lambda invocation. */
const DEFAULT_SILVER_GROUP_TARGET_MB = 1536;
/** Uncompressed bronze per merge bucket (shared/stages/silver/silver-work-files.ts: 8 GiB). */
const DEFAULT_SILVER_BUCKET_TARGET_MB = 8192;

/** A table of contents' execution lasts as long as its whole fan-out: a week, by default. */
const DEFAULT_EXECUTION_TIMEOUT_HOURS = 7 * 24;

/** The longest freshness window CloudWatch can evaluate: an alarm looks back at most 7 days. */
const MAX_FRESHNESS_HOURS = 7 * 24;

/**
 * A file's run: a 100 GB gzip'd file takes ≈ 3.5 h to ingest and ≈ 2.7 h of silver at the default
 * concurrency (docs/SCALING.md), so 12 hours leaves room before calling it stuck.
 */
export const DEFAULT_MAX_RUN_HOURS = 12;
/** A table of contents' run lasts its whole fan-out (many file runs, a few at a time). */
export const DEFAULT_FAN_OUT_MAX_RUN_HOURS = 48;

/**
 * Bulk drops: 5 starts a second is far below Step Functions' StartExecution quota (a refill of 150–300 a
 * second, by region), and 50 running executions, each running at most one ingest or `silver.maxConcurrency`
 * silver groups (8) at a time, stay well inside a default account's 1,000 concurrent Lambda invocations.
 */
export const DEFAULT_MAX_STARTS_PER_SECOND = 5;
export const DEFAULT_MAX_RUNNING_EXECUTIONS = 50;

/** Old versions of rewritten or deleted objects: a week to notice a mistake and restore them. */
const DEFAULT_NONCURRENT_VERSION_DAYS = 7;
/** Bronze is read again only to rebuild silver or to audit: after a month it rarely is. */
const DEFAULT_BRONZE_TIERING_DAYS = 30;
/** 100 GB scanned costs $0.50 in Athena: generous for silver tables, a stop for a runaway query. */
const DEFAULT_BYTES_SCANNED_CUTOFF_GB = 100;

/** A whole number in [min, max]; every message says what is expected and what the field is for. */
const wholeNumber = (min: number, max: number, meaning: string) => {
  const expected = `expected a ${min > 0 ? 'positive ' : ''}whole number from ${min} to ${max}`;
  return z
    .number({ error: `${expected} (${meaning})` })
    .int(`${expected} (${meaning})`)
    .min(min, `${expected} (${meaning})`)
    .max(max, `${expected} (${meaning})`)
    .describe(`${meaning[0]!.toUpperCase()}${meaning.slice(1)}.`);
};

const datasetNames = Object.keys(builtInDatasets);

const DatasetDeployment = z
  .object({
    name: z
      .string({ error: `expected a dataset name, one of: ${datasetNames.join(', ')}` })
      .refine((name) => datasetNames.includes(name), {
        error: (issue) => `unknown dataset "${String(issue.input)}": use one of ${datasetNames.join(', ')}`,
      })
      .describe(
        `A built-in dataset: ${datasetNames.join(', ')}. Files land under \`<name>/\` in the landing bucket.`,
      ),
    freshnessHours: z
      .number({ error: 'expected a positive number of hours, e.g. 24' })
      .positive('expected a positive number of hours, e.g. 24')
      .int('expected a whole number of hours (CloudWatch evaluates the freshness alarm hour by hour)')
      .max(
        MAX_FRESHNESS_HOURS,
        `expected at most ${MAX_FRESHNESS_HOURS} hours (CloudWatch alarms look back at most 7 days)`,
      )
      .describe('Hours without a successful ingest of this dataset before the freshness alarm fires.'),
    maxRunHours: wholeNumber(1, 8760, 'hours one execution of this dataset may run before an alarm, e.g. 12')
      .optional()
      .describe(
        `Alarm when an execution of this dataset has been running for longer than this (checked every 5 minutes). ` +
          `Default ${DEFAULT_MAX_RUN_HOURS}; ${DEFAULT_FAN_OUT_MAX_RUN_HOURS} for ${FAN_OUT_DATASET}, whose run lasts its whole fan-out.`,
      ),
  })
  .strict();

/** An EventBridge Scheduler expression: `cron(...)` (six fields), `rate(<n> <unit>)` or `at(...)`. */
const SCHEDULE_EXPRESSION =
  /^(cron\((\S+ ){5}\S+\)|rate\([1-9]\d* (minute|minutes|hour|hours|day|days)\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$/;

/** An HTTP source downloaded on a schedule (the workflow's `Download` state). */
const SourceDeployment = z
  .object({
    name: z
      .string({ error: 'expected a source name, e.g. "cms-in-network"' })
      .regex(SOURCE_NAME, 'use 1–63 lowercase letters, digits or "-" (it names the schedule and secret)')
      .describe('Names the schedule and, with credentials, the Secrets Manager secret of the source.'),
    url: z
      .string({ error: 'expected the https URL to download' })
      .refine(
        (value) => {
          try {
            const url = new URL(value);
            return url.protocol === 'https:' && url.username === '' && url.password === '';
          } catch {
            return false;
          }
        },
        { error: "expected an https URL without credentials in it (put those in the source's secret)" },
      )
      .superRefine((value, ctx) => {
        // A key or a signature in the query would sit in the template, every execution's input and
        // every dead letter: the secret store is where it belongs.
        const found = URL.canParse(value) ? credentialParams(new URL(value)) : [];
        if (found.length > 0) {
          ctx.addIssue({
            code: 'custom',
            message:
              `the URL's query carries a credential or a signature (${found.join(', ')}): remove it, and put ` +
              `the key in the source's secret ("credentials": {"kind": "query", ...} sends it as a query parameter)`,
          });
        }
      })
      .describe(
        'The https URL to download; no credentials in it (neither user:password@ nor a key, token or signature in its query).',
      ),
    dataset: z
      .string({ error: 'expected the name of a dataset listed in "datasets"' })
      .describe('The dataset the file is ingested as; one listed in "datasets".'),
    schedule: z
      .string({ error: 'expected an EventBridge Scheduler expression, e.g. "cron(0 6 * * ? *)"' })
      .regex(
        SCHEDULE_EXPRESSION,
        'expected an EventBridge Scheduler expression: "cron(0 6 * * ? *)", "rate(1 day)" or "at(2030-01-01T06:00:00)"',
      )
      .describe('When to download (UTC): "cron(0 6 * * ? *)", "rate(1 day)" or "at(2030-01-01T06:00:00)".'),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'expected the sha256 of the file as 64 hex digits, or leave it out')
      .optional()
      .describe('The expected sha256 of the file: a download that differs fails.'),
    credentials: z
      .object({
        kind: z
          .enum(CREDENTIAL_KINDS, { error: `use one of ${CREDENTIAL_KINDS.join(', ')}` })
          .describe('How the secret is sent.'),
        name: z
          .string()
          .min(1, 'expected the header or query parameter name')
          .optional()
          .describe('The header or query parameter name; kinds "header" and "query" only.'),
      })
      .strict()
      .refine((c) => (c.kind !== 'header' && c.kind !== 'query') || c.name !== undefined, {
        error: 'kinds "header" and "query" need "name": the header or query parameter to send',
        path: ['name'],
      })
      .optional()
      .describe('How the credential is sent; its value lives in the Secrets Manager secret of the source.'),
  })
  .strict();

export const DeploymentConfig = z
  .object({
    $schema: z.string().optional().describe('A JSON Schema for editors; ignored.'),
    stackName: z
      .string({ error: 'expected a CloudFormation stack name, e.g. "sluice-dev"' })
      .regex(
        /^[A-Za-z][A-Za-z0-9-]{0,127}$/,
        'use 1–128 letters, digits or "-", starting with a letter (a CloudFormation stack name)',
      )
      .describe(
        'The CloudFormation stack; also names the dashboard, the Athena workgroup, the Glue database and ' +
          'the service dimension of the metrics.',
      ),
    landingExpirationDays: wholeNumber(1, 3650, 'days a landed file is kept after it arrives, e.g. 30'),
    alarmEmail: z
      .email({ error: 'expected an e-mail address for alarm notifications, or leave the field out' })
      .optional()
      .describe(
        'E-mail address subscribed to the alarm topic; AWS sends it a confirmation mail first, and nothing ' +
          'arrives until the link in it is followed. Without it, synth warns and you subscribe to the topic yourself.',
      ),
    datasets: z
      .array(DatasetDeployment, { error: 'expected a list of { "name", "freshnessHours" }' })
      .min(1, 'list at least one dataset to ingest')
      .refine((list) => new Set(list.map((d) => d.name)).size === list.length, {
        error: 'each dataset may be listed only once',
      })
      .describe('The datasets this deployment ingests, each with its alarm bounds.'),
    ingest: z
      .object({
        memoryMb: wholeNumber(128, 10_240, 'Lambda memory in MB; CPU grows with it, e.g. 3008').default(
          DEFAULT_FUNCTION_MEMORY_MB.ingest,
        ),
        timeoutMinutes: wholeNumber(1, 15, 'Lambda timeout in minutes; 15 is the Lambda maximum').default(15),
        reservedConcurrency: wholeNumber(
          1,
          1000,
          'most ingests running at once; leave it out for no limit',
        ).optional(),
        sliceMaxMb: wholeNumber(
          1,
          10_000_000,
          'MB of uncompressed input one ingest slice reads at most before it checkpoints (at the next ' +
            "segment boundary, see a dataset's bronze.segmentBytes), e.g. 20480 for a checkpoint every " +
            '20 GB; leave it out to slice by time alone (each invocation as long as its timeout allows)',
        ).optional(),
      })
      .strict()
      .default({ memoryMb: DEFAULT_FUNCTION_MEMORY_MB.ingest, timeoutMinutes: 15 })
      .describe('The Ingest Lambda (parse → bronze, in slices).'),
    quarantineRateThreshold: z
      .number({ error: 'expected a share from 0 to 1, e.g. 0.05 for 5%' })
      .min(0, 'expected a share from 0 to 1, e.g. 0.05 for 5%')
      .max(1, 'expected a share from 0 to 1, e.g. 0.05 for 5%')
      .default(DEFAULT_QUARANTINE_RATE_THRESHOLD)
      .describe(
        "Alarm when more than this share of a dataset's ingested records is quarantined (hourly), and fail " +
          'a run (its Reconcile stage, so it is dead-lettered) that quarantines more than this share of its records.',
      ),
    tracing: z.boolean({ error: 'expected true or false' }).default(true).describe('AWS X-Ray tracing.'),
    logLevel: z
      .enum(['DEBUG', 'INFO', 'WARN', 'ERROR'], { error: 'use one of DEBUG, INFO, WARN, ERROR' })
      .default('INFO')
      .describe("The Lambda functions' log level."),
    fanOut: z
      .object({
        maxConcurrency: wholeNumber(
          1,
          1000,
          'listed files of one table of contents downloaded and ingested at once, e.g. 4',
        ).default(DEFAULT_FAN_OUT_CONCURRENCY),
        timeoutHours: wholeNumber(
          1,
          8760,
          "hours one execution may take, a table of contents' whole fan-out included, e.g. 168",
        ).default(DEFAULT_EXECUTION_TIMEOUT_HOURS),
      })
      .strict()
      .default({ maxConcurrency: DEFAULT_FAN_OUT_CONCURRENCY, timeoutHours: DEFAULT_EXECUTION_TIMEOUT_HOURS })
      .describe(
        `How a ${FAN_OUT_DATASET} run expands into one ${LISTED_FILE_DATASET} run per listed file. ` +
          "timeoutHours is the state machine's execution timeout, so it bounds every execution; each listed " +
          "file's own run is stopped after 6 hours.",
      ),
    silver: z
      .object({
        maxConcurrency: wholeNumber(
          1,
          MAX_SILVER_CONCURRENCY,
          'groups of bronze parts of one silver build run at once, e.g. 8 (an inline Map runs at most 40)',
        ).default(DEFAULT_SILVER_CONCURRENCY),
        groupTargetMb: wholeNumber(
          64,
          4096,
          'MB of uncompressed bronze per silver group, each group one Lambda invocation, e.g. 1536',
        ).default(DEFAULT_SILVER_GROUP_TARGET_MB),
        bucketTargetMb: wholeNumber(
          64,
          65536,
          'MB of uncompressed bronze per merge bucket, each bucket one Lambda invocation that holds ' +
            '≈ 15 % of it as partial files in /tmp, e.g. 8192',
        ).default(DEFAULT_SILVER_BUCKET_TARGET_MB),
        reservedConcurrency: wholeNumber(
          1,
          1000,
          'most silver invocations running at once, at least maxConcurrency; leave it out for no limit',
        ).optional(),
      })
      .strict()
      .default({
        maxConcurrency: DEFAULT_SILVER_CONCURRENCY,
        groupTargetMb: DEFAULT_SILVER_GROUP_TARGET_MB,
        bucketTargetMb: DEFAULT_SILVER_BUCKET_TARGET_MB,
      })
      .describe(
        'How a silver build is split: PlanSilver cuts the bronze run into groups of about groupTargetMb ' +
          'and its dedup keys into merge buckets of about bucketTargetMb; SilverGroups builds ' +
          'maxConcurrency groups at once, SilverBuckets merges as many buckets at once, Silver commits. ' +
          'reservedConcurrency caps the ' +
          'silver function across all runs (invocations over it wait and retry, for about 9 minutes at most).',
      ),
    pacing: z
      .object({
        maxStartsPerSecond: z
          .number({ error: 'expected a number of executions started per second from 0.1 to 100, e.g. 5' })
          .min(0.1, 'expected a number of executions started per second from 0.1 to 100, e.g. 5')
          .max(100, 'expected a number of executions started per second from 0.1 to 100, e.g. 5')
          .default(DEFAULT_MAX_STARTS_PER_SECOND)
          .describe('Most executions the landing queue starts per second, e.g. 5.'),
        maxRunningExecutions: wholeNumber(
          1,
          10_000,
          'running executions above which landed files wait in the landing queue, e.g. 50',
        ).default(DEFAULT_MAX_RUNNING_EXECUTIONS),
      })
      .strict()
      .default({
        maxStartsPerSecond: DEFAULT_MAX_STARTS_PER_SECOND,
        maxRunningExecutions: DEFAULT_MAX_RUNNING_EXECUTIONS,
      })
      .describe(
        'How bulk drops start: landing events wait in the landing queue, and the starter starts their ' +
          'executions at most maxStartsPerSecond, while fewer than maxRunningExecutions run (executions of ' +
          'scheduled sources and listed files count, though they do not wait in the queue).',
      ),
    storage: z
      .object({
        noncurrentVersionExpirationDays: wholeNumber(
          1,
          365,
          'days an overwritten or deleted object version is kept, in both buckets, e.g. 7',
        ).default(DEFAULT_NONCURRENT_VERSION_DAYS),
        bronzeIntelligentTieringDays: wholeNumber(
          0,
          3650,
          'days after which bronze objects move to S3 Intelligent-Tiering, e.g. 30 (0: at once)',
        ).default(DEFAULT_BRONZE_TIERING_DAYS),
      })
      .strict()
      .default({
        noncurrentVersionExpirationDays: DEFAULT_NONCURRENT_VERSION_DAYS,
        bronzeIntelligentTieringDays: DEFAULT_BRONZE_TIERING_DAYS,
      })
      .describe(
        "Lifecycle of the landing and lake buckets. Silver's scratch files (`silver/<dataset>/_work/`) always " +
          'expire after 1 day, the S3 minimum; a rerun rebuilds them.',
      ),
    athena: z
      .object({
        bytesScannedCutoffGb: wholeNumber(
          1,
          1_000_000,
          'GB one Athena query of the workgroup may scan before it is cancelled, e.g. 100',
        ).default(DEFAULT_BYTES_SCANNED_CUTOFF_GB),
      })
      .strict()
      .default({ bytesScannedCutoffGb: DEFAULT_BYTES_SCANNED_CUTOFF_GB })
      .describe(
        'The Athena workgroup: a query that would scan more is cancelled (Athena bills $5 per TB scanned).',
      ),
    prices: z
      .object(
        Object.fromEntries(
          Object.entries(PriceListSchema.shape).map(([name, price]) => [
            name,
            price.default(US_EAST_1_PRICE_LIST[name as keyof typeof US_EAST_1_PRICE_LIST]),
          ]),
        ) as { [K in keyof typeof PriceListSchema.shape]: z.ZodDefault<(typeof PriceListSchema.shape)[K]> },
      )
      .strict()
      .default(US_EAST_1_PRICE_LIST)
      .describe(
        "What each run's cost (reconciliation.json, the RunCostUsd metric) is priced at. The defaults are " +
          "us-east-1's list prices of December 2026 (arm64 Lambda, S3 Standard, standard workflows); " +
          "set your region's. Data transfer, KMS, storage and CloudWatch are not in the cost (docs/SCALING.md).",
      ),
    sources: z
      .array(SourceDeployment, {
        error: 'expected a list of { "name", "url", "dataset", "schedule", "sha256"?, "credentials"? }',
      })
      .default([])
      .describe(
        'HTTP sources downloaded and ingested on a schedule (EventBridge Scheduler), one schedule each.',
      ),
  })
  .strict()
  .superRefine((config, ctx) => {
    const deployed = config.datasets.map((d) => d.name);
    // A stage throttled by its reserved concurrency is retried for about 9 minutes
    // (LAMBDA_SERVICE_RETRY), then the run fails: what the pacing lets run must fit.
    const { reservedConcurrency: ingestReserved } = config.ingest;
    if (ingestReserved !== undefined && ingestReserved < config.pacing.maxRunningExecutions) {
      ctx.addIssue({
        code: 'custom',
        path: ['ingest', 'reservedConcurrency'],
        message:
          `${ingestReserved} is below pacing.maxRunningExecutions (${config.pacing.maxRunningExecutions}): ` +
          'each running execution ingests one slice at a time, and a throttled ingest fails its run after ' +
          'its retries; raise it, lower pacing.maxRunningExecutions, or leave it out',
      });
    }
    const { reservedConcurrency: silverReserved, maxConcurrency: silverConcurrency } = config.silver;
    if (silverReserved !== undefined && silverReserved < silverConcurrency) {
      ctx.addIssue({
        code: 'custom',
        path: ['silver', 'reservedConcurrency'],
        message:
          `${silverReserved} is below silver.maxConcurrency (${silverConcurrency}): one build alone would be ` +
          'throttled; raise it, lower silver.maxConcurrency, or leave it out',
      });
    }
    if (deployed.includes(FAN_OUT_DATASET) && !deployed.includes(LISTED_FILE_DATASET)) {
      ctx.addIssue({
        code: 'custom',
        path: ['datasets'],
        message:
          `${FAN_OUT_DATASET} is deployed without ${LISTED_FILE_DATASET}: a table of contents expands into ` +
          `one ${LISTED_FILE_DATASET} run per listed file, so list ${LISTED_FILE_DATASET} too`,
      });
    }
    config.sources.forEach((source, i) => {
      if (!deployed.includes(source.dataset)) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'dataset'],
          message: `dataset "${source.dataset}" is not deployed: use one of ${deployed.join(', ')}`,
        });
      }
      if (config.sources.findIndex((s) => s.name === source.name) !== i) {
        ctx.addIssue({
          code: 'custom',
          path: ['sources', i, 'name'],
          message: `source name "${source.name}" is used twice; each source needs its own name`,
        });
      }
    });
  });

export type DeploymentConfigInput = z.input<typeof DeploymentConfig>;
export type DeploymentConfig = z.output<typeof DeploymentConfig>;

/** Validate a parsed config value; the ConfigError lists every problem, one line per field. */
export function parseDeploymentConfig(value: unknown, origin = 'deployment config'): DeploymentConfig {
  const result = DeploymentConfig.safeParse(value);
  if (result.success) return result.data;
  const lines = explainIssues(result.error.issues).map((line) => `  - ${line}`);
  throw new ConfigError(
    `${origin} is invalid:\n${lines.join('\n')}\n` +
      `Fix the fields above in ${origin} (schema: infra/config/deployment-config.ts) and synthesize again.`,
  );
}

/** Read and validate a deployment config file. */
export function loadDeploymentConfig(path: string): DeploymentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `cannot read the deployment config ${path}: ${(error as Error).message}. ` +
        'Create it (see sluice.config.json) or pass another file with `cdk synth -c config=FILE`.',
      { cause: error },
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return parseDeploymentConfig(value, path);
}
