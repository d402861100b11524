import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  SingleValueWidget,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { LogLevel } from '../../shared/config/runtime-config.ts';
import { DEFAULT_QUARANTINE_RATE_THRESHOLD } from '../../shared/config/runtime-config.ts';
import { Dimension, METRICS_NAMESPACE, MetricName } from '../../shared/workflow/metrics.ts';
import { ExecutionWatch } from './execution-watch.ts';

/** A Lambda function to watch. */
export interface MonitoredFunction {
  /** Short name for alarm descriptions and widget titles, e.g. `ingest`. */
  readonly name: string;
  readonly function: IFunction;
  /** Its configured timeout, drawn as a line over its duration. */
  readonly timeout: Duration;
}

/** A dead-letter queue to watch: any message in it is an alarm, and so is one left there too long. */
export interface MonitoredQueue {
  readonly name: string;
  readonly queue: IQueue;
  /** What a message there means and what to do about it, for the alarm description. */
  readonly meaning: string;
}

/**
 * A work queue to watch: its messages are handled within minutes, so one left there for long means its
 * consumer has stopped (e.g. a broken deploy or a missing permission).
 */
export interface MonitoredWorkQueue {
  readonly name: string;
  readonly queue: IQueue;
  /** Alarm when the oldest message is older than this. */
  readonly maxAge: Duration;
  /** What a stalled queue means and what to do about it, for the alarm description. */
  readonly meaning: string;
}

/** A dataset to watch. */
export interface MonitoredDataset {
  readonly name: string;
  /** Alarm when no ingest of the dataset succeeded for this long (whole hours, at most 7 days). */
  readonly freshness: Duration;
  /** Its record streams (`recordName` dimension of the records metric). */
  readonly recordNames: readonly string[];
  /** Alarm when one of its executions has been running for longer than this. */
  readonly maxRunDuration: Duration;
}

/** Properties of `PipelineMonitoring`. */
export interface PipelineMonitoringProps {
  readonly stateMachine: IStateMachine;
  /** The state machine's name (`workflowStateMachineName`), for the execution watch's permissions. */
  readonly stateMachineName: string;
  readonly functions: readonly MonitoredFunction[];
  readonly deadLetterQueues: readonly MonitoredQueue[];
  /** Queues whose consumer must keep up (the landing queue). @default - none */
  readonly workQueues?: readonly MonitoredWorkQueue[];
  readonly datasets: readonly MonitoredDataset[];
  /** The `service` dimension of the custom metrics (the handlers' service name). */
  readonly serviceName: string;
  /**
   * Where alarm notifications are e-mailed (after the address confirms the subscription).
   * @default - no subscription: synth warns, and says how to subscribe to `topic`
   */
  readonly alarmEmail?: string;
  /** The dashboard's name, unique in the account and region. @default - `serviceName` */
  readonly dashboardName?: string;
  /**
   * Alarm when the oldest message of a dead-letter queue is older than this: it is being ignored, and
   * SQS deletes it unseen at the end of the queue's retention (14 days). @default 3 days
   */
  readonly deadLetterMaxAge?: Duration;
  /** Log level of the execution watch. @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** X-Ray tracing of the execution watch. @default false */
  readonly tracing?: boolean;
  /**
   * Alarm when, within an hour, more than this share of a dataset's ingested records is quarantined
   * (`QuarantinedRecords / RecordsIngested`); a single run over it fails in its Reconcile stage.
   * @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05)
   */
  readonly quarantineRateThreshold?: number;
}

/**
 * Alarms and a dashboard for the pipeline. Every alarm notifies one SNS topic (on ALARM and on OK), and
 * every alarm is about an outcome someone has to act on: a message in a dead-letter queue, and one left
 * there for days; a failed, timed-out or aborted execution; an execution running longer than its
 * dataset's bound; a dataset going quiet (no successful ingest within its freshness window); a failed
 * reconciliation; a quarantine rate above the threshold.
 *
 * Deliberately not alarmed: Lambda `Errors` and `Throttles`, and throttled executions. The state machine
 * retries transient errors and throttling (`TRANSIENT_RETRY`, `LAMBDA_SERVICE_RETRY`), the landing queue
 * delivers a landing event again, and EventBridge retries its deliveries: an error that a retry fixes
 * needs nobody, and one that no retry fixes ends as a failed execution or a dead-letter message, both
 * alarmed above, with the input and error to act on. (With `ingest.reservedConcurrency` set, throttles
 * are even the intended queueing.) They stay on the dashboard, below the first row.
 */
export class PipelineMonitoring extends Construct {
  readonly topic: Topic;
  readonly alarms: Alarm[] = [];
  readonly dashboard: Dashboard;
  readonly dashboardName: string;
  /** The scheduled function that reports running executions (Step Functions' metrics do not). */
  readonly executionWatch: ExecutionWatch;

  constructor(scope: Construct, id: string, props: PipelineMonitoringProps) {
    super(scope, id);
    const { stateMachine } = props;

    // A key of its own: CloudWatch must be allowed to use the topic's key, and it has no business with
    // the data key. (The AWS-managed SNS key cannot be used: its policy cannot admit CloudWatch.)
    const topicKey = new Key(this, 'AlarmTopicKey', {
      description: 'Encrypts sluice alarm notifications',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    topicKey.addToResourcePolicy(
      new PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, '*' means this key
      }),
    );
    this.topic = new Topic(this, 'AlarmTopic', { masterKey: topicKey, enforceSSL: true });
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'AllowThisAccountsAlarms',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          ArnLike: {
            'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*`,
          },
          StringEquals: { 'aws:SourceAccount': stack.account },
        },
      }),
    );
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail));
    else {
      Annotations.of(this).addWarningV2(
        'sluice:no-alarm-email',
        'No "alarmEmail" in the deployment config: alarms go to the SNS topic of stack output ' +
          '"AlarmTopicArn" and reach nobody until someone subscribes. Set "alarmEmail" and deploy again, or ' +
          'subscribe yourself: aws sns subscribe --topic-arn <AlarmTopicArn> --protocol email ' +
          '--notification-endpoint <you@your-company>. Either way, follow the link in the confirmation mail ' +
          'AWS sends, or no alarm is delivered (docs/DEPLOY.md, "Alarms").',
      );
    }
    const notify = new SnsAction(this.topic);

    const alarm = (
      alarmId: string,
      metric: IMetric,
      description: string,
      options: {
        threshold?: number;
        below?: boolean;
        atLeast?: boolean;
        periods?: number;
        breachWhenMissing?: boolean;
      } = {},
    ) => {
      const created = new Alarm(this, alarmId, {
        metric,
        alarmDescription: description,
        threshold: options.threshold ?? 0,
        comparisonOperator: options.below
          ? ComparisonOperator.LESS_THAN_THRESHOLD
          : options.atLeast
            ? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            : ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: options.periods ?? 1,
        datapointsToAlarm: options.periods ?? 1,
        treatMissingData: options.breachWhenMissing
          ? TreatMissingData.BREACHING
          : TreatMissingData.NOT_BREACHING,
      });
      created.addAlarmAction(notify);
      created.addOkAction(notify);
      this.alarms.push(created);
      return created;
    };

    const fiveMinutes = Duration.minutes(5);
    const deadLetterMaxAge = props.deadLetterMaxAge ?? Duration.days(3);
    for (const { name, queue, meaning } of props.deadLetterQueues) {
      alarm(
        `${name}NotEmpty`,
        queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
        `Messages in the ${name} queue: ${meaning}`,
      );
      alarm(
        `${name}OldestMessageAge`,
        queue.metricApproximateAgeOfOldestMessage({ period: fiveMinutes, statistic: 'Maximum' }),
        `A message has waited in the ${name} queue for more than ${deadLetterMaxAge.toHumanString()}; SQS ` +
          `deletes it unseen after 14 days. ${meaning}`,
        { threshold: deadLetterMaxAge.toSeconds() },
      );
    }

    for (const { name, queue, maxAge, meaning } of props.workQueues ?? []) {
      alarm(
        `${name}Stalled`,
        queue.metricApproximateAgeOfOldestMessage({ period: fiveMinutes, statistic: 'Maximum' }),
        `A message has waited in the ${name} queue for more than ${maxAge.toHumanString()}: ${meaning}`,
        { threshold: maxAge.toSeconds() },
      );
    }

    // Outcomes only: ExecutionThrottled counts state transitions Step Functions delayed, not lost work.
    const executionAlarms = {
      Failed: stateMachine.metricFailed({ period: fiveMinutes }),
      TimedOut: stateMachine.metricTimedOut({ period: fiveMinutes }),
      Aborted: stateMachine.metricAborted({ period: fiveMinutes }),
    };
    for (const [what, metric] of Object.entries(executionAlarms)) {
      alarm(
        `Executions${what}`,
        metric,
        `Workflow executions ${what.toLowerCase()}. Failed executions are in the failure queue with their error; ` +
          'fix the cause, then redrive the execution or land the file again.',
      );
    }

    this.executionWatch = new ExecutionWatch(this, 'ExecutionWatch', {
      stateMachine,
      stateMachineName: props.stateMachineName,
      datasets: props.datasets.map((d) => d.name),
      serviceName: props.serviceName,
      logLevel: props.logLevel,
      tracing: props.tracing,
    });

    /**
     * A custom metric of one dataset (dimensions `service`, `dataset` and any `extra`). No label: an alarm
     * on a labelled metric is rendered as metric math, which hides the metric's name in the alarm.
     */
    const datasetMetric = (
      metricName: string,
      dataset: string,
      options: { statistic?: string; period?: Duration; extra?: Record<string, string> } = {},
    ) =>
      new Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: {
          [Dimension.service]: props.serviceName,
          [Dimension.dataset]: dataset,
          ...options.extra,
        },
        statistic: options.statistic ?? 'Sum',
        period: options.period ?? Duration.hours(1),
      });

    /**
     * Hourly share of a dataset's ingested records that silver quarantined. RecordsIngested is counted per
     * record stream, so the streams are added up; an hour without ingests counts as a rate of 0.
     */
    const quarantineRate = (dataset: MonitoredDataset) => {
      // Ids are unique per dataset, because one graph draws the rates of every dataset.
      const n = props.datasets.indexOf(dataset);
      const usingMetrics: Record<string, IMetric> = {
        [`quarantined${n}`]: datasetMetric(MetricName.quarantinedRecords, dataset.name),
      };
      dataset.recordNames.forEach((recordName, i) => {
        usingMetrics[`ingested${n}_${i}`] = datasetMetric(MetricName.recordsIngested, dataset.name, {
          extra: { [Dimension.recordName]: recordName },
        });
      });
      const ingested = dataset.recordNames.map((_, i) => `FILL(ingested${n}_${i}, 0)`).join(' + ') || '0';
      return new MathExpression({
        expression: `IF((${ingested}) > 0, FILL(quarantined${n}, 0) / (${ingested}), 0)`,
        usingMetrics,
        period: Duration.hours(1),
        label: `${dataset.name} quarantine rate`,
      });
    };
    const quarantineRateThreshold = props.quarantineRateThreshold ?? DEFAULT_QUARANTINE_RATE_THRESHOLD;

    for (const dataset of props.datasets) {
      const hours = dataset.freshness.toHours();
      const id = dataset.name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase());
      // Hourly sums, all of the last `hours` below 1; an hour without data counts as zero ingests.
      alarm(
        `${id}Stale`,
        datasetMetric(MetricName.ingestSucceeded, dataset.name),
        `No ${dataset.name} file was ingested in the last ${hours} hours: check that files still land ` +
          'and that executions succeed.',
        { threshold: 1, below: true, periods: hours, breachWhenMissing: true },
      );
      alarm(
        `${id}ReconciliationFailed`,
        datasetMetric(MetricName.reconciliationFailed, dataset.name, { period: fiveMinutes }),
        `A ${dataset.name} file did not reconcile: its bronze and silver counts or checksums differ. The ` +
          'report (reconciliation.json beside the bronze manifest) lists each mismatch; the execution is in ' +
          'the failure queue.',
        { threshold: 1, atLeast: true },
      );
      // The execution watch reports every 5 minutes, for every dataset (0 when nothing runs): a 15-minute
      // period always holds a report, and one without any means the watch itself stopped.
      const maxMinutes = dataset.maxRunDuration.toMinutes();
      alarm(
        `${id}RunningTooLong`,
        datasetMetric(MetricName.oldestRunningExecutionMinutes, dataset.name, {
          statistic: 'Maximum',
          period: Duration.minutes(15),
        }),
        `An execution of ${dataset.name} has been running for more than ${dataset.maxRunDuration.toHumanString()} ` +
          `(the dataset's maxRunHours). The watch-executions log names it; its execution history shows the ` +
          'state it is stuck in. Stop it, or raise maxRunHours if such runs are expected. (Missing reports ' +
          'alarm too: then the watch-executions function itself is failing.)',
        { threshold: maxMinutes, breachWhenMissing: true },
      );
      alarm(
        `${id}QuarantineRate`,
        quarantineRate(dataset),
        `More than ${quarantineRateThreshold * 100}% of the ${dataset.name} records ingested within an hour ` +
          'were quarantined: the _quarantine table says which rules they broke.',
        { threshold: quarantineRateThreshold },
      );
    }

    this.dashboardName = props.dashboardName ?? props.serviceName;
    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: this.dashboardName,
      defaultInterval: Duration.days(7),
    });
    const custom = (
      metricName: string,
      dataset: string,
      statistic = 'Sum',
      extra: Record<string, string> = {},
    ) =>
      datasetMetric(metricName, dataset, { statistic, extra }).with({
        label: [dataset, ...Object.values(extra), metricName].join(' '),
      });
    const wide = { width: 12, height: 6 };

    // The first row answers "is it healthy?" at a glance: what is alarming, what runs now, what ended
    // how in the last 24 hours, what waits in a dead-letter queue, and how long each dataset has gone
    // without a success.
    const running = (dataset?: string) =>
      new Metric({
        namespace: METRICS_NAMESPACE,
        metricName: MetricName.executionsRunning,
        dimensionsMap: {
          [Dimension.service]: props.serviceName,
          ...(dataset ? { [Dimension.dataset]: dataset } : {}),
        },
        statistic: 'Maximum',
        period: fiveMinutes,
        label: dataset ?? 'all',
      });
    /**
     * Hours since the dataset's last successful ingest, from the hourly IngestSucceeded sums: each hour's
     * time (EPOCH) minus the time of the last hour with a success, carried forward (FILL … REPEAT). Blank
     * when there was none within the dashboard's time range.
     */
    const hoursSinceSuccess = (dataset: MonitoredDataset) => {
      const id = `succeeded${props.datasets.indexOf(dataset)}`;
      const hourly = `FILL(${id}, 0)`;
      return new MathExpression({
        expression: `(EPOCH(${hourly}) - FILL(IF(${hourly} > 0, EPOCH(${hourly})), REPEAT)) / 3600`,
        usingMetrics: { [id]: datasetMetric(MetricName.ingestSucceeded, dataset.name) },
        period: Duration.hours(1),
        label: `${dataset.name} (freshness ${dataset.freshness.toHours()} h)`,
      });
    };
    const lastDay = { start: '-PT24H', setPeriodToTimeRange: true };
    this.dashboard.addWidgets(
      new AlarmStatusWidget({
        title: 'Alarms (red: read its description)',
        alarms: this.alarms,
        width: 6,
        height: 6,
      }),
      new SingleValueWidget({
        title: 'Executions running now',
        metrics: [running(), ...props.datasets.map((d) => running(d.name))],
        width: 4,
        height: 6,
      }),
      new SingleValueWidget({
        title: 'Executions ended, last 24 h',
        metrics: [
          stateMachine.metricSucceeded({ label: 'succeeded' }),
          stateMachine.metricFailed({ label: 'failed' }),
          stateMachine.metricTimedOut({ label: 'timed out' }),
          stateMachine.metricAborted({ label: 'aborted' }),
        ],
        ...lastDay,
        width: 6,
        height: 6,
      }),
      new SingleValueWidget({
        title: 'Dead-letter queues (messages)',
        metrics: props.deadLetterQueues.map(({ name, queue }) =>
          queue.metricApproximateNumberOfMessagesVisible({
            period: fiveMinutes,
            statistic: 'Maximum',
            label: name,
          }),
        ),
        width: 4,
        height: 6,
      }),
      new SingleValueWidget({
        title: 'Hours since last success',
        metrics: props.datasets.map(hoursSinceSuccess),
        width: 4,
        height: 6,
      }),
    );
    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          `**sluice: ${props.serviceName}** — landing → ingest (bronze) → silver → reconciliation. Alarms ` +
          'notify the SNS topic (stack output AlarmTopicArn). A failed execution is in the Failure queue with ' +
          'its input and error: fix the cause, then redrive it (docs/DEPLOY.md). Lambda errors and throttles ' +
          'below are retried by the workflow; only what retries cannot fix reaches the alarms.',
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Executions',
        left: [
          stateMachine.metricStarted({ period: fiveMinutes, label: 'started' }),
          stateMachine.metricSucceeded({ period: fiveMinutes, label: 'succeeded' }),
          stateMachine.metricFailed({ period: fiveMinutes, label: 'failed' }),
          stateMachine.metricTimedOut({ period: fiveMinutes, label: 'timed out' }),
          stateMachine.metricAborted({ period: fiveMinutes, label: 'aborted' }),
          stateMachine.metricThrottled({ period: fiveMinutes, label: 'throttled transitions' }),
        ],
        ...wide,
      }),
      new GraphWidget({
        title: 'Dead-letter queues: depth / age of the oldest message (hours)',
        left: props.deadLetterQueues.map(({ name, queue }) =>
          queue.metricApproximateNumberOfMessagesVisible({
            period: Duration.minutes(1),
            statistic: 'Maximum',
            label: name,
          }),
        ),
        // Ids are unique per queue: one graph draws them all.
        right: props.deadLetterQueues.map(
          ({ name, queue }, i) =>
            new MathExpression({
              expression: `age${i} / 3600`,
              usingMetrics: {
                [`age${i}`]: queue.metricApproximateAgeOfOldestMessage({
                  period: fiveMinutes,
                  statistic: 'Maximum',
                }),
              },
              label: `${name} oldest (h)`,
              period: fiveMinutes,
            }),
        ),
        rightAnnotations: [{ value: deadLetterMaxAge.toHours(), label: 'alarm' }],
        ...wide,
      }),
    );
    if (props.workQueues?.length) {
      this.dashboard.addWidgets(
        new GraphWidget({
          title: 'Work queues: waiting (visible + delayed) / being started (in flight)',
          left: props.workQueues.flatMap(({ name, queue }) => [
            new MathExpression({
              expression: 'visible + delayed',
              usingMetrics: {
                visible: queue.metricApproximateNumberOfMessagesVisible({
                  period: fiveMinutes,
                  statistic: 'Maximum',
                }),
                delayed: queue.metric('ApproximateNumberOfMessagesDelayed', {
                  period: fiveMinutes,
                  statistic: 'Maximum',
                }),
              },
              label: `${name} waiting`,
              period: fiveMinutes,
            }),
            queue.metricApproximateNumberOfMessagesNotVisible({
              period: fiveMinutes,
              statistic: 'Maximum',
              label: `${name} in flight`,
            }),
          ]),
          ...wide,
        }),
      );
    }
    this.dashboard.addWidgets(
      ...props.functions.map(
        ({ name, function: fn, timeout }) =>
          new GraphWidget({
            title: `${name}: duration vs timeout (ms)`,
            left: [
              fn.metricDuration({ period: fiveMinutes, statistic: 'Maximum', label: 'max' }),
              fn.metricDuration({ period: fiveMinutes, statistic: 'p90', label: 'p90' }),
            ],
            leftAnnotations: [{ value: timeout.toMilliseconds(), label: 'timeout' }],
            ...wide,
          }),
      ),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Lambda errors and throttles (retried: not alarmed)',
        left: props.functions.flatMap(({ name, function: fn }) => [
          fn.metricErrors({ period: fiveMinutes, label: `${name} errors` }),
          fn.metricThrottles({ period: fiveMinutes, label: `${name} throttles` }),
        ]),
        ...wide,
      }),
      new GraphWidget({
        title: 'Oldest running execution per dataset (minutes) vs its bound',
        left: props.datasets.map((d) =>
          custom(MetricName.oldestRunningExecutionMinutes, d.name, 'Maximum').with({ period: fiveMinutes }),
        ),
        leftAnnotations: props.datasets.map((d) => ({
          value: d.maxRunDuration.toMinutes(),
          label: `${d.name} maxRunHours`,
        })),
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Records ingested per dataset and record stream (hourly)',
        left: props.datasets.flatMap((d) =>
          d.recordNames.map((recordName) =>
            custom(MetricName.recordsIngested, d.name, 'Sum', { [Dimension.recordName]: recordName }),
          ),
        ),
        ...wide,
      }),
      new GraphWidget({
        title: 'Bytes ingested per dataset (hourly)',
        left: props.datasets.flatMap((d) => [
          custom(MetricName.sourceBytes, d.name),
          custom(MetricName.uncompressedBytes, d.name),
        ]),
        right: props.datasets.map((d) => custom(MetricName.bronzeBytes, d.name)),
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Ingests per dataset (hourly): succeeded / failed attempts',
        left: props.datasets.flatMap((d) => [
          custom(MetricName.ingestSucceeded, d.name),
          custom(MetricName.ingestFailed, d.name),
        ]),
        ...wide,
      }),
      new GraphWidget({
        title: 'Ingest duration per dataset (ms, max): whole run / one slice',
        left: props.datasets.map((d) => custom(MetricName.ingestDuration, d.name, 'Maximum')),
        right: props.datasets.map((d) => custom(MetricName.ingestSliceDuration, d.name, 'Maximum')),
        ...wide,
      }),
    );
    // A file bigger than one Lambda is ingested in slices: how far the longest-running one is.
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Sliced ingest progress per dataset (% of the stored bytes, latest slice)',
        left: props.datasets.map((d) => custom(MetricName.ingestProgressPercent, d.name, 'Maximum')),
        leftYAxis: { min: 0, max: 100 },
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Quality score per dataset (0–100, hourly minimum)',
        left: props.datasets.map((d) => custom(MetricName.qualityScore, d.name, 'Minimum')),
        leftYAxis: { min: 0, max: 100 },
        ...wide,
      }),
      new GraphWidget({
        title: 'Quarantine rate per dataset (hourly)',
        left: props.datasets.map(quarantineRate),
        leftAnnotations: [{ value: quarantineRateThreshold, label: 'alarm threshold' }],
        leftYAxis: { min: 0 },
        ...wide,
      }),
    );
    // What the runs cost, at the deployment's prices (docs/SCALING.md, "What a run cost").
    this.dashboard.addWidgets(
      new GraphWidget({
        title: 'Run cost per dataset (US$, hourly sum) / per GB of input (hourly maximum)',
        left: props.datasets.map((d) => custom(MetricName.runCostUsd, d.name, 'Sum')),
        right: props.datasets.map((d) => custom(MetricName.runCostUsdPerGb, d.name, 'Maximum')),
        ...wide,
      }),
    );
  }
}
