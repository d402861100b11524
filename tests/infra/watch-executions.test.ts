import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createHandler,
  datasetOf,
  type RunningExecution,
  type WatchExecutionsDeps,
} from '../../functions/watch-executions/handler.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import {
  loadWatchExecutionsConfig,
  type WatchExecutionsConfig,
  watchExecutionsEnvironment,
} from '../../shared/config/runtime-config.ts';

// biome-ignore lint/suspicious/noExplicitAny: EMF documents are untyped JSON; the assertions check their shape.
type Json = any;

const MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:ingest';
const NOW = new Date('2026-12-07T12:00:00Z');
const config: WatchExecutionsConfig = {
  serviceName: 'sluice-test',
  logLevel: 'ERROR',
  stateMachineArn: MACHINE,
  datasets: ['tic-in-network', 'tic-table-of-contents'],
};

const execution = (name: string, minutesAgo: number): RunningExecution => ({
  executionArn: `${MACHINE.replace(':stateMachine:', ':execution:')}:${name}`,
  startDate: new Date(NOW.getTime() - minutesAgo * 60_000),
});

describe('Handler: watch-executions', () => {
  let stdout: { mock: { calls: unknown[][] }; mockRestore(): void };
  beforeEach(() => {
    stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(() => stdout.mockRestore());

  /** The gauges it printed as EMF: `metric name / dataset (or "all")` -> value. */
  const gauges = () =>
    Object.fromEntries(
      stdout.mock.calls
        .flatMap((call) => String(call[0]).split('\n'))
        .filter((line) => line.includes('"_aws"'))
        .map((line) => JSON.parse(line) as Record<string, Json>)
        .flatMap((doc) =>
          doc._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => [
            `${m.Name} ${doc.dataset ?? 'all'}`,
            doc[m.Name],
          ]),
        ),
    );

  const deps = (running: RunningExecution[], inputs: Record<string, string>): WatchExecutionsDeps => ({
    config,
    listRunning: async function* () {
      yield* running;
    },
    inputOf: async (arn) => inputs[arn.split(':').at(-1)!],
    now: () => NOW,
    observability: createObservability(config),
  });

  it("emits, per deployed dataset, how many executions run and the oldest one's age in minutes", async () => {
    const running = [execution('a', 30), execution('b', 800), execution('toc', 2000), execution('c', 5)];
    const result = await createHandler(
      deps(running, {
        a: JSON.stringify({ bucket: 'l', key: 'tic-in-network/a.json', dataset: 'tic-in-network' }),
        b: JSON.stringify({ source: { url: 'https://x/b.json', dataset: 'tic-in-network' } }),
        toc: JSON.stringify({
          bucket: 'l',
          key: 'tic-table-of-contents/t.json',
          dataset: 'tic-table-of-contents',
        }),
        c: '{"dataset":"retired-dataset"}',
      }),
    )({});
    expect(result).toEqual([
      {
        dataset: 'tic-in-network',
        running: 2,
        oldestMinutes: 800,
        oldestExecutionArn: running[1]!.executionArn,
      },
      {
        dataset: 'tic-table-of-contents',
        running: 1,
        oldestMinutes: 2000,
        oldestExecutionArn: running[2]!.executionArn,
      },
    ]);
    expect(gauges()).toEqual({
      'ExecutionsRunning all': 4,
      'ExecutionsRunning tic-in-network': 2,
      'OldestRunningExecutionMinutes tic-in-network': 800,
      'ExecutionsRunning tic-table-of-contents': 1,
      'OldestRunningExecutionMinutes tic-table-of-contents': 2000,
    });
  });

  it('emits zeros when nothing runs, so its alarm can tell "all quiet" from "not reporting"', async () => {
    await createHandler(deps([], {}))({});
    expect(gauges()).toEqual({
      'ExecutionsRunning all': 0,
      'ExecutionsRunning tic-in-network': 0,
      'OldestRunningExecutionMinutes tic-in-network': 0,
      'ExecutionsRunning tic-table-of-contents': 0,
      'OldestRunningExecutionMinutes tic-table-of-contents': 0,
    });
  });

  it('reads the dataset of a landed, scheduled or listed file, and none of anything else', () => {
    expect(datasetOf('{"bucket":"b","key":"k/x","dataset":"k"}')).toBe('k');
    expect(datasetOf('{"source":{"name":"cms","dataset":"tic-in-network"}}')).toBe('tic-in-network');
    expect(datasetOf('{"dataset":""}')).toBeUndefined();
    expect(datasetOf('not json')).toBeUndefined();
    expect(datasetOf(undefined)).toBeUndefined();
  });

  it('reads its configuration from the environment the CDK app writes', () => {
    const { region: _, ...written } = config;
    expect(loadWatchExecutionsConfig(watchExecutionsEnvironment(written))).toEqual({
      ...config,
      logLevel: 'ERROR',
    });
  });
});
