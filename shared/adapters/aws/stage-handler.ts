import type { z } from 'zod';
import { explainIssues } from '../../contracts/dataset-config.ts';
import { ConfigError } from '../../errors.ts';
import { executionIdOf, type LambdaContext, type Observability, withObservability } from './observability.ts';
import { withTransientErrors } from './transient.ts';

/** A Lambda handler as the state machine calls it. */
export type StageHandler<R> = (event: unknown, context?: LambdaContext) => Promise<R>;

/**
 * The seam every workflow stage's Lambda shares: structured logs and metrics with the execution id as
 * correlation id, and network-level failures renamed TransientError so the state machine retries them.
 */
export function stageHandler<D extends { readonly observability: Observability }, R>(
  deps: D,
  run: (event: unknown, deps: D, context?: LambdaContext) => Promise<R>,
): StageHandler<R> {
  return withObservability(
    deps.observability,
    (event: unknown, context) => withTransientErrors(() => run(event, deps, context)),
    {
      correlationId: executionIdOf,
    },
  );
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
