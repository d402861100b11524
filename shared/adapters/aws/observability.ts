import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { LogLevel } from '../../config/runtime-config.ts';
import { METRICS_NAMESPACE } from '../../workflow/metrics.ts';

/**
 * Logs and metrics for the Lambda handlers, on Powertools for AWS Lambda: structured JSON logs with the
 * Lambda context and a correlation id (the Step Functions execution), and metrics in CloudWatch's
 * Embedded Metric Format (written to the log, so emitting them costs no API call and cannot throttle).
 */

/** What the handlers log and count with. */
export interface Observability {
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/** Settings of `createObservability`. */
export interface ObservabilityOptions {
  /** Names the deployment in every log line and as the `service` metric dimension. */
  readonly serviceName: string;
  readonly logLevel: LogLevel | 'SILENT';
  /** @default 'Sluice' */
  readonly namespace?: string;
}

/** One logger and one metrics buffer per handler, created at cold start. */
export function createObservability(options: ObservabilityOptions): Observability {
  return {
    logger: new Logger({ serviceName: options.serviceName, logLevel: options.logLevel }),
    metrics: new Metrics({
      serviceName: options.serviceName,
      namespace: options.namespace ?? METRICS_NAMESPACE,
    }),
  };
}

/** The parts of the Lambda context the logger reads (the full type lives in `@types/aws-lambda`). */
export interface LambdaContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
  getRemainingTimeInMillis(): number;
}

/** Options of `withObservability`. */
export interface WithObservabilityOptions<E> {
  /** The id that ties this invocation's logs to the work it belongs to (the execution id). */
  readonly correlationId?: (event: E) => string | undefined;
}

/**
 * Wrap a handler so that each invocation logs with its Lambda context and correlation id, logs its
 * failure as structured JSON before rethrowing it (the error's `name` is what Step Functions matches),
 * and flushes its metrics whether it succeeds or fails.
 */
export function withObservability<E, R>(
  { logger, metrics }: Observability,
  handler: (event: E, context: LambdaContext | undefined) => Promise<R>,
  options: WithObservabilityOptions<E> = {},
): (event: E, context?: LambdaContext) => Promise<R> {
  return async (event, context) => {
    if (context) logger.addContext(context);
    const correlationId = options.correlationId?.(event);
    if (correlationId) {
      logger.setCorrelationId(correlationId);
      metrics.addMetadata('correlationId', correlationId);
    }
    try {
      return await handler(event, context);
    } catch (error) {
      logger.error('invocation failed', error as Error);
      throw error;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      else {
        // What publishing would have cleared, so nothing leaks into the next invocation.
        metrics.clearDimensions();
        metrics.clearMetadata();
      }
      logger.resetKeys();
    }
  };
}

/** The correlation id a workflow stage's event carries, if it is an object with `executionId`. */
export function executionIdOf(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const id = (event as { executionId?: unknown }).executionId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}
