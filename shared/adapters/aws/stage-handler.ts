import type { z } from 'zod';
import { explainIssues } from '../../contracts/dataset-config.ts';
import { ConfigError } from '../../errors.ts';
import { type InvocationMetering, recordInvocation } from '../../lake/run-usage.ts';
import { executionIdOf, type LambdaContext, type Observability, withObservability } from './observability.ts';
import { withTransientErrors } from './transient.ts';

/** A Lambda handler as the state machine calls it. */
export type StageHandler<R> = (event: unknown, context?: LambdaContext) => Promise<R>;

/**
 * The seam every workflow stage's Lambda shares: structured logs and metrics with the execution id as
 * correlation id, network-level failures renamed TransientError so the state machine retries them, and,
 * with `deps.usage`, the invocation's usage recorded in the lake (what the run cost: its duration, its
 * configured memory, the S3 requests of its counted stores), whether it succeeds or fails.
 */
export function stageHandler<
  D extends { readonly observability: Observability; readonly usage?: InvocationMetering },
  R,
>(deps: D, run: (event: unknown, deps: D, context?: LambdaContext) => Promise<R>): StageHandler<R> {
  return withObservability(
    deps.observability,
    async (event: unknown, context) => {
      deps.usage?.meter.begin(Number(context?.memoryLimitInMB ?? 0));
      try {
        return await withTransientErrors(() => run(event, deps, context));
      } finally {
        if (deps.usage && context) await recordUsage(deps.usage, event, context, deps.observability);
      }
    },
    {
      correlationId: executionIdOf,
    },
  );
}

/**
 * The invocation's usage record, for an event of the workflow (`executionId` and `state`). A record that
 * cannot be written costs the run's cost its precision, never the invocation its result: it is logged.
 */
async function recordUsage(
  { meter, records }: InvocationMetering,
  event: unknown,
  context: LambdaContext,
  { logger }: Observability,
): Promise<void> {
  const executionId = executionIdOf(event);
  const stage = (event as { state?: unknown } | null)?.state;
  if (executionId === undefined || typeof stage !== 'string') return;
  try {
    await recordInvocation(records, {
      executionId,
      stage,
      invocationId: context.awsRequestId,
      usage: meter.usage(),
    });
  } catch (error) {
    logger.warn("could not record the invocation's usage: the run's cost will miss it", {
      error: error as Error,
    });
  }
}

/**
 * The Lambda entry point: the handler (and its AWS adapters) is built on the first invocation, once per
 * cold start, rather than at import, so importing a handler module needs no environment and tests call
 * `createHandler` with their own dependencies instead of mocking modules.
 */
export function onFirstInvocation<R>(
  build: () => StageHandler<R>,
): (event: unknown, context: LambdaContext) => Promise<R> {
  let live: StageHandler<R> | undefined;
  return (event, context) => {
    live ??= build();
    return live(event, context);
  };
}

/** A stage's event, checked: a malformed event is a ConfigError (permanent) saying what was expected. */
export function parseStageEvent<S extends z.ZodType>(
  schema: S,
  event: unknown,
  stage: string,
  shape: string,
): z.output<S> {
  const result = schema.safeParse(event);
  if (result.success) return result.data;
  throw new ConfigError(
    `the ${stage} event is invalid (${explainIssues(result.error.issues).join('; ')}); it must be ${shape}`,
  );
}
