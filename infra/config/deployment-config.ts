import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { explainIssues } from '../../shared/contracts/dataset-config.ts';
import { builtInDatasets } from '../../shared/contracts/datasets/index.ts';
import { ConfigError } from '../../shared/errors.ts';

/**
 * The deployment config (`sluice.config.json`): what one deployment of sluice ingests and how it is
 * sized and watched. Checked when the CDK app synthesizes, so a bad value fails `cdk synth` with the
 * field's path and how to fix it, before anything reaches AWS.
 */

/** The longest freshness window CloudWatch can evaluate: an alarm looks back at most 7 days. */
const MAX_FRESHNESS_HOURS = 7 * 24;

/** A whole number in [min, max]; every message says what is expected and what the field is for. */
const wholeNumber = (min: number, max: number, meaning: string) => {
  const expected = `expected a ${min > 0 ? 'positive ' : ''}whole number from ${min} to ${max}`;
  return z
    .number({ error: `${expected} (${meaning})` })
    .int(`${expected} (${meaning})`)
    .min(min, `${expected} (${meaning})`)
    .max(max, `${expected} (${meaning})`);
};

const datasetNames = Object.keys(builtInDatasets);

const DatasetDeployment = z
  .object({
    name: z
      .string({ error: `expected a dataset name, one of: ${datasetNames.join(', ')}` })
      .refine((name) => datasetNames.includes(name), {
        error: (issue) => `unknown dataset "${String(issue.input)}": use one of ${datasetNames.join(', ')}`,
      }),
    freshnessHours: z
      .number({ error: 'expected a positive number of hours, e.g. 24' })
      .positive('expected a positive number of hours, e.g. 24')
      .int('expected a whole number of hours (CloudWatch evaluates the freshness alarm hour by hour)')
      .max(
        MAX_FRESHNESS_HOURS,
        `expected at most ${MAX_FRESHNESS_HOURS} hours (CloudWatch alarms look back at most 7 days)`,
      )
      .describe('Hours without a successful ingest of this dataset before the freshness alarm fires.'),
  })
  .strict();

export const DeploymentConfig = z
  .object({
    $schema: z.string().optional(),
    stackName: z
      .string({ error: 'expected a CloudFormation stack name, e.g. "sluice-dev"' })
      .regex(
        /^[A-Za-z][A-Za-z0-9-]{0,127}$/,
        'use 1–128 letters, digits or "-", starting with a letter (a CloudFormation stack name)',
      ),
    landingExpirationDays: wholeNumber(1, 3650, 'days a landed file is kept after it arrives, e.g. 30'),
    alarmEmail: z
      .email({ error: 'expected an e-mail address for alarm notifications, or leave the field out' })
      .optional(),
    datasets: z
      .array(DatasetDeployment, { error: 'expected a list of { "name", "freshnessHours" }' })
      .min(1, 'list at least one dataset to ingest')
      .refine((list) => new Set(list.map((d) => d.name)).size === list.length, {
        error: 'each dataset may be listed only once',
      }),
    ingest: z
      .object({
        memoryMb: wholeNumber(128, 10_240, 'Lambda memory in MB; CPU grows with it, e.g. 3008').default(3008),
        timeoutMinutes: wholeNumber(1, 15, 'Lambda timeout in minutes; 15 is the Lambda maximum').default(15),
        reservedConcurrency: wholeNumber(
          1,
          1000,
          'most ingests running at once; leave it out for no limit',
        ).optional(),
      })
      .strict()
      .default({ memoryMb: 3008, timeoutMinutes: 15 }),
    quarantineRateThreshold: z
      .number({ error: 'expected a share from 0 to 1, e.g. 0.05 for 5%' })
      .min(0, 'expected a share from 0 to 1, e.g. 0.05 for 5%')
      .max(1, 'expected a share from 0 to 1, e.g. 0.05 for 5%')
      .default(0.05)
      .describe("Alarm when more than this share of a dataset's ingested records is quarantined (hourly)."),
    tracing: z.boolean({ error: 'expected true or false' }).default(true).describe('AWS X-Ray tracing.'),
    logLevel: z
      .enum(['DEBUG', 'INFO', 'WARN', 'ERROR'], { error: 'use one of DEBUG, INFO, WARN, ERROR' })
      .default('INFO'),
  })
  .strict();

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
