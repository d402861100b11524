import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { DescribeExecutionCommand, paginateListExecutions, SFNClient } from '@aws-sdk/client-sfn';
import {
  createObservability,
  type LambdaContext,
  type Observability,
  withObservability,
} from '../../shared/adapters/aws/observability.ts';
import { loadWatchExecutionsConfig, type WatchExecutionsConfig } from '../../shared/config/runtime-config.ts';
import { Dimension, MetricName } from '../../shared/workflow/metrics.ts';

/**
 * The execution watch: every 5 minutes (an EventBridge schedule), how many executions of the workflow
 * are running and how long the oldest of each dataset has been running, as CloudWatch gauges.
 *
 * Why a function: AWS/States reports executions when they start and when they end (`ExecutionTime` too
 * is emitted only at the end), never while they run. An execution stuck in a loop or waiting on a child
 * would show up only when it times out, after up to `fanOut.timeoutHours` (a week). Listing the running
 * executions is the one way to see it sooner; the alarm on `OldestRunningExecutionMinutes` does the rest.
 *
 * Event: ignored (the schedule's). Result: the gauges it emitted.
 */

/** Inputs kept between warm invocations (a few hundred bytes each), then forgotten all at once. */
const MAX_REMEMBERED_INPUTS = 10_000;

/** One running execution, as ListExecutions describes it. */
export interface RunningExecution {
  readonly executionArn: string;
  readonly startDate: Date;
}

/** The gauges of one dataset. */
export interface DatasetGauge {
  readonly dataset: string;
  readonly running: number;
  readonly oldestMinutes: number;
  /** The oldest running execution's ARN, for the log line an on-call engineer follows. */
  readonly oldestExecutionArn?: string;
}

/** What the watch-executions handler works with. */
export interface WatchExecutionsDeps {
  readonly config: WatchExecutionsConfig;
  /** The RUNNING executions of the state machine, every page. */
  readonly listRunning: () => AsyncIterable<RunningExecution>;
  /** An execution's input (a JSON string), to tell its dataset. */
  readonly inputOf: (executionArn: string) => Promise<string | undefined>;
  readonly now: () => Date;
  readonly observability: Observability;
}

/** The AWS client, created once per cold start. */
export function createDeps(config: WatchExecutionsConfig): WatchExecutionsDeps {
  const client = new SFNClient(config.region ? { region: config.region } : {});
  const inputs = new Map<string, string | undefined>();
  return {
    config,
    listRunning: async function* () {
      const pages = paginateListExecutions(
        { client },
        { stateMachineArn: config.stateMachineArn, statusFilter: 'RUNNING' },
      );
      for await (const page of pages) {
        for (const execution of page.executions ?? []) {
          if (execution.executionArn && execution.startDate) {
            yield { executionArn: execution.executionArn, startDate: execution.startDate };
          }
        }
      }
    },
    // An execution's input never changes: a warm function asks once per execution, not every 5 minutes.
    inputOf: async (executionArn) => {
      if (!inputs.has(executionArn)) {
        if (inputs.size >= MAX_REMEMBERED_INPUTS) inputs.clear();
        inputs.set(executionArn, (await client.send(new DescribeExecutionCommand({ executionArn }))).input);
      }
      return inputs.get(executionArn);
    },
    now: () => new Date(),
    observability: createObservability(config),
  };
}

/**
 * The dataset an execution works on: `dataset` of a landed file's input, `source.dataset` of a scheduled
 * or listed file's. Undefined for an input that names none (it fails at its first state anyway).
 */
export function datasetOf(input: string | undefined): string | undefined {
  try {
    const value = JSON.parse(input ?? '') as { dataset?: unknown; source?: { dataset?: unknown } };
    const dataset = value.dataset ?? value.source?.dataset;
    return typeof dataset === 'string' && dataset !== '' ? dataset : undefined;
  } catch {
    return undefined;
  }
}

/** Count the running executions per dataset and emit the gauges (every deployed dataset, 0 included). */
export async function watchExecutions(deps: WatchExecutionsDeps): Promise<DatasetGauge[]> {
  const { logger, metrics } = deps.observability;
  const now = deps.now().getTime();
  const byDataset = new Map<string, RunningExecution[]>(deps.config.datasets.map((d) => [d, []]));
  let total = 0;
  for await (const execution of deps.listRunning()) {
    total++;
    const dataset = datasetOf(await deps.inputOf(execution.executionArn));
    const list = dataset === undefined ? undefined : byDataset.get(dataset);
    if (list) list.push(execution);
    else logger.warn('running execution of no deployed dataset', { executionArn: execution.executionArn });
  }

  metrics.addMetric(MetricName.executionsRunning, MetricUnit.Count, total);
  const gauges: DatasetGauge[] = [];
  for (const [dataset, running] of byDataset) {
    const oldest = running.reduce<RunningExecution | undefined>(
      (a, b) => (a === undefined || b.startDate < a.startDate ? b : a),
      undefined,
    );
    const gauge: DatasetGauge = {
      dataset,
      running: running.length,
      oldestMinutes: oldest ? Math.max(0, Math.floor((now - oldest.startDate.getTime()) / 60_000)) : 0,
      ...(oldest && { oldestExecutionArn: oldest.executionArn }),
    };
    gauges.push(gauge);
    // A single metric is published (and its dimensions cleared) as soon as its value is added: one each.
    const gaugeOf = (name: string, value: number) =>
      metrics
        .singleMetric()
        .addDimensions({ [Dimension.dataset]: dataset })
        .addMetric(name, MetricUnit.Count, value);
    gaugeOf(MetricName.executionsRunning, gauge.running);
    gaugeOf(MetricName.oldestRunningExecutionMinutes, gauge.oldestMinutes);
  }
  logger.info('running executions', { total, datasets: gauges });
  return gauges;
}

/** The handler for one set of dependencies. */
export function createHandler(
  deps: WatchExecutionsDeps,
): (event: unknown, context?: LambdaContext) => Promise<DatasetGauge[]> {
  return withObservability(deps.observability, () => watchExecutions(deps));
}

// Built on the first invocation (once per cold start), so importing this module needs no environment.
let live: ReturnType<typeof createHandler> | undefined;

/** The Lambda entry point. */
export const handler = (event: unknown, context: LambdaContext): Promise<DatasetGauge[]> => {
  live ??= createHandler(createDeps(loadWatchExecutionsConfig()));
  return live(event, context);
};
