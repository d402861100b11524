import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import {
  createObservability,
  type LambdaContext,
  type Observability,
  withObservability,
} from '../../shared/adapters/aws/observability.ts';
import { loadStartExecutionConfig, type StartExecutionConfig } from '../../shared/config/runtime-config.ts';
import { explainIssues } from '../../shared/contracts/dataset-config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { DOWNLOADS_PREFIX } from '../../shared/stages/download/landing-key.ts';
import { type ExecutionInput, executionName, landingDataset } from '../../shared/workflow/execution.ts';

/**
 * The trigger: an S3 `Object Created` event (from EventBridge, invoked asynchronously) -> one workflow
 * execution for that object version.
 *
 * Event: the EventBridge event, of which it reads `detail.bucket.name` and
 *   `detail.object.{ key, version-id, etag }`.
 * Result: `{ executionArn, executionName, started }`; `started` is false when this object version already
 *   has an execution (a duplicate delivery), which counts as success.
 *
 * The key is used as delivered. Unlike S3's own notifications (SQS/SNS/Lambda), whose keys are
 * URL-encoded, EventBridge's S3 events are documented with the plain key.
 */

/** The part of an EventBridge S3 `Object Created` event this handler reads. */
export const ObjectCreatedEvent = z.object({
  'detail-type': z.literal('Object Created'),
  detail: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      'version-id': z.string().min(1).optional(),
      etag: z.string().optional(),
    }),
  }),
});
export type ObjectCreatedEvent = z.infer<typeof ObjectCreatedEvent>;

/** What the start-execution handler returns. */
export interface StartResult {
  readonly executionArn: string;
  readonly executionName: string;
  /** false when the execution already existed (duplicate delivery of the same object version). */
  readonly started: boolean;
}

/** The one Step Functions call this handler makes; tests replace it. */
export type StartExecution = (request: {
  stateMachineArn: string;
  name: string;
  input: string;
}) => Promise<{ executionArn?: string }>;

/** What the start-execution handler works with. */
export interface StartExecutionDeps {
  readonly config: StartExecutionConfig;
  readonly startExecution: StartExecution;
  readonly observability: Observability;
}

/** The AWS client, created once per cold start. */
export function createDeps(config: StartExecutionConfig): StartExecutionDeps {
  const client = new SFNClient(config.region ? { region: config.region } : {});
  return {
    config,
    startExecution: (request) => client.send(new StartExecutionCommand(request)),
    observability: createObservability(config),
  };
}

/** Start the workflow for one landed object version, once. */
export async function startForObject(
  event: unknown,
  deps: StartExecutionDeps,
): Promise<StartResult | undefined> {
  const { logger } = deps.observability;
  const { bucket, object } = parseEvent(event).detail;
  // Console "folders" are zero-byte objects whose key ends in '/': nothing to ingest.
  if (object.key.endsWith('/')) {
    logger.info('skipped a folder marker', { bucket: bucket.name, key: object.key });
    return undefined;
  }
  // The rule already filters these out; a download is ingested by the execution that downloaded it.
  if (object.key.startsWith(DOWNLOADS_PREFIX)) {
    logger.info('skipped a downloaded file', { bucket: bucket.name, key: object.key });
    return undefined;
  }
  const name = executionName({
    bucket: bucket.name,
    key: object.key,
    versionId: object['version-id'],
    etag: object.etag,
  });
  const executionArn = executionArnOf(deps.config.stateMachineArn, name);
  logger.setCorrelationId(executionArn);
  const input: ExecutionInput = { bucket: bucket.name, key: object.key, dataset: landingDataset(object.key) };
  try {
    const out = await deps.startExecution({
      stateMachineArn: deps.config.stateMachineArn,
      name,
      input: JSON.stringify(input),
    });
    logger.info('execution started', { ...input, executionName: name });
    return { executionArn: out.executionArn ?? executionArn, executionName: name, started: true };
  } catch (error) {
    // The same name means the same object version: EventBridge delivers at least once, so a second
    // delivery finds the execution of the first. That is the deduplication working, not a failure.
    if ((error as { name?: string }).name !== 'ExecutionAlreadyExists') throw error;
    logger.info('execution already exists for this object version', { ...input, executionName: name });
    return { executionArn, executionName: name, started: false };
  }
}

/** The handler for one set of dependencies. */
export function createHandler(
  deps: StartExecutionDeps,
): (event: unknown, context?: LambdaContext) => Promise<StartResult | undefined> {
  return withObservability(deps.observability, (event: unknown) => startForObject(event, deps));
}

// Built on the first invocation (once per cold start), so importing this module needs no environment.
let live: ReturnType<typeof createHandler> | undefined;

/** The Lambda entry point. */
export const handler = (event: unknown, context: LambdaContext): Promise<StartResult | undefined> => {
  live ??= createHandler(createDeps(loadStartExecutionConfig()));
  return live(event, context);
};

/** `arn:…:stateMachine:<machine>` + name -> `arn:…:execution:<machine>:<name>`. */
export function executionArnOf(stateMachineArn: string, name: string): string {
  return `${stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
}

function parseEvent(event: unknown): ObjectCreatedEvent {
  const result = ObjectCreatedEvent.safeParse(event);
  if (result.success) return result.data;
  throw new ConfigError(
    `not an S3 "Object Created" event (${explainIssues(result.error.issues).join('; ')}); ` +
      'check the EventBridge rule that targets this function',
  );
}
