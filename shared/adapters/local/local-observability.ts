import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { Observability } from '../aws/observability.ts';

/**
 * The handlers' logs and metrics in a local run: none. A local run reports through its own progress and
 * summary; CloudWatch's metric lines (written to stdout) would corrupt `sluice run --json`. Powertools
 * reads POWERTOOLS_METRICS_DISABLED whenever it creates a Metrics (single metrics too), so a process that
 * runs handlers locally disables them for good, unless the environment says otherwise.
 */
export function localObservability(): Observability {
  process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
  return {
    logger: new Logger({ serviceName: 'sluice-local', logLevel: 'SILENT' }),
    metrics: new Metrics({ serviceName: 'sluice-local', namespace: 'SluiceLocal' }),
  };
}
