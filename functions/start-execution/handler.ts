import { SFNClient } from '@aws-sdk/client-sfn';
import { SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import {
  createObservability,
  type LambdaContext,
  type Observability,
  withObservability,
} from '../../shared/adapters/aws/observability.ts';
import { SqsLandingQueue } from '../../shared/adapters/aws/sqs-landing-queue.ts';
import { StepFunctionsExecutions } from '../../shared/adapters/aws/step-functions-executions.ts';
import { loadStartExecutionConfig, type StartExecutionConfig } from '../../shared/config/runtime-config.ts';
import { explainIssues } from '../../shared/contracts/dataset-config.ts';
import { ConfigError } from '../../shared/errors.ts';
import { systemWaitableClock, type WaitableClock } from '../../shared/ports/clock.ts';
import { DEFERRALS_ATTRIBUTE, type LandingQueue } from '../../shared/ports/landing-queue.ts';
import type { ExecutionStarter, RunningExecutionCounter } from '../../shared/ports/workflow-executions.ts';
import {
  DEFAULT_DEFERRAL_BACKOFF,
  type DeferralBackoff,
  type LandingMessage,
  startLandedMessages,
} from '../../shared/workflow/landing-starts.ts';
import { RETURN_MARGIN_MS } from '../../shared/workflow/pacing.ts';

/**
 * The starter: a batch of landing events from the landing queue (an SQS event source mapping) -> paced
 * workflow executions, one per object version (shared/workflow/landing-starts.ts).
 *
 * Event: an SQS event; each record's body is an EventBridge S3 `Object Created` event.
 * Result: `{ batchItemFailures }` (the mapping has ReportBatchItemFailures): the messages to deliver
 *   again. Deferred events are not among them: they were sent back to the queue with a delay.
 */

/** The budget when there is no Lambda context to ask (local runs, tests). */
const DEFAULT_BUDGET_MS = 25_000;

/** The part of an SQS event the starter reads. */
const SqsEvent = z.object({
  Records: z.array(
    z.object({
      messageId: z.string().min(1),
      body: z.string(),
      messageAttributes: z
        .record(z.string(), z.object({ stringValue: z.string().optional() }).loose())
        .optional(),
    }),
  ),
});

/** What the starter returns to the event source mapping. */
export interface StarterResult {
  readonly batchItemFailures: { readonly itemIdentifier: string }[];
}

/** What the start-execution handler works with. */
export interface StartExecutionDeps {
  readonly config: StartExecutionConfig;
  readonly executions: ExecutionStarter & RunningExecutionCounter;
  readonly queue: LandingQueue;
  readonly clock: WaitableClock;
  readonly observability: Observability;
  /** @default DEFAULT_DEFERRAL_BACKOFF */
  readonly backoff?: DeferralBackoff;
}

/** The AWS clients, created once per cold start. */
export function createDeps(config: StartExecutionConfig): StartExecutionDeps {
  const region = config.region ? { region: config.region } : {};
  return {
    config,
    executions: new StepFunctionsExecutions(new SFNClient(region), config.stateMachineArn),
    queue: new SqsLandingQueue(new SQSClient(region), config.landingQueueUrl),
    clock: systemWaitableClock,
    observability: createObservability(config),
  };
}

/** Start the executions of one batch of landing events, paced. */
export async function startFromQueue(
  event: unknown,
  deps: StartExecutionDeps,
  context?: Pick<LambdaContext, 'getRemainingTimeInMillis'>,
): Promise<StarterResult> {
  const messages = parseEvent(event);
  const budgetMs = context ? context.getRemainingTimeInMillis() - RETURN_MARGIN_MS : DEFAULT_BUDGET_MS;
  const deadline = new Date(deps.clock.now().getTime() + budgetMs);
  const { logger } = deps.observability;
  const result = await startLandedMessages(
    messages,
    {
      clock: deps.clock,
      running: deps.executions,
      starter: deps.executions,
      queue: deps.queue,
      log: {
        info: (message, extra) => logger.info(message, { ...extra }),
        error: (message, extra) => logger.error(message, { ...extra }),
      },
    },
    deps.config.pacing,
    deadline,
    deps.backoff ?? DEFAULT_DEFERRAL_BACKOFF,
  );
  const { failedMessageIds, ...counts } = result;
  logger.info('batch done', { messages: messages.length, failed: failedMessageIds.length, ...counts });
  return { batchItemFailures: failedMessageIds.map((itemIdentifier) => ({ itemIdentifier })) };
}

/** The handler for one set of dependencies. */
export function createHandler(
  deps: StartExecutionDeps,
): (event: unknown, context?: LambdaContext) => Promise<StarterResult> {
  return withObservability(deps.observability, (event: unknown, context) =>
    startFromQueue(event, deps, context),
  );
}

// Built on the first invocation (once per cold start), so importing this module needs no environment.
let live: ReturnType<typeof createHandler> | undefined;

/** The Lambda entry point. */
export const handler = (event: unknown, context: LambdaContext): Promise<StarterResult> => {
  live ??= createHandler(createDeps(loadStartExecutionConfig()));
  return live(event, context);
};

function parseEvent(event: unknown): LandingMessage[] {
  const result = SqsEvent.safeParse(event);
  if (!result.success) {
    throw new ConfigError(
      `not an SQS event (${explainIssues(result.error.issues).join('; ')}); ` +
        "the start-execution function is invoked by the landing queue's event source mapping only",
    );
  }
  return result.data.Records.map((record) => {
    const deferrals = Number(record.messageAttributes?.[DEFERRALS_ATTRIBUTE]?.stringValue ?? 0);
    return {
      id: record.messageId,
      body: record.body,
      deferrals: Number.isInteger(deferrals) && deferrals >= 0 ? deferrals : 0,
    };
  });
}
