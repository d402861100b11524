import {
  Annotations,
  ArnFormat,
  CfnOutput,
  Duration,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import type { CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { recordTargets } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { FAN_OUT_DATASET, LISTED_FILE_DATASET } from '../../shared/workflow/stage-io.ts';
import {
  DEFAULT_FAN_OUT_MAX_RUN_HOURS,
  DEFAULT_MAX_RUN_HOURS,
  type DeploymentConfig,
} from '../config/deployment-config.ts';
import { IngestWorkflow, workflowStateMachineName } from '../constructs/ingest-workflow.ts';
import { LandingTrigger } from '../constructs/landing-trigger.ts';
import { PipelineMonitoring } from '../constructs/monitoring.ts';
import { PipelineFunctions } from '../constructs/pipeline-functions.ts';
import { QueryCatalog } from '../constructs/query-catalog.ts';
import { ScheduledSources } from '../constructs/scheduled-sources.ts';
import { SluiceStorage } from '../constructs/storage.ts';

/** A new account's concurrent Lambda executions, and what Lambda keeps out of any reservation. */
const DEFAULT_ACCOUNT_CONCURRENCY = 1000;
const UNRESERVED_MINIMUM = 100;

/** Properties of `SluiceStack`. */
export interface SluiceStackProps extends StackProps {
  /** The validated deployment config (`sluice.config.json`). */
  readonly config: DeploymentConfig;
}

/**
 * One deployment of sluice: landing -> ingest (parse -> bronze) -> silver -> reconciliation, with its
 * storage, trigger, monitoring and Athena query catalog. Environment-agnostic (no account or region), so it synthesizes offline; the account and
 * region come from the credentials `cdk deploy` runs with.
 */
export class SluiceStack extends Stack {
  readonly storage: SluiceStorage;
  readonly functions: PipelineFunctions;
  readonly sources: ScheduledSources;
  readonly workflow: IngestWorkflow;
  readonly trigger: LandingTrigger;
  readonly monitoring: PipelineMonitoring;
  readonly queryCatalog: QueryCatalog;

  constructor(scope: Construct, id: string, props: SluiceStackProps) {
    super(scope, id, props);
    const { config } = props;
    const serviceName = config.stackName;
    const datasets = config.datasets.map((d) => d.name);

    this.storage = new SluiceStorage(this, 'Storage', {
      landingExpiration: Duration.days(config.landingExpirationDays),
      noncurrentVersionExpiration: Duration.days(config.storage.noncurrentVersionExpirationDays),
      bronzeIntelligentTieringAfter: Duration.days(config.storage.bronzeIntelligentTieringDays),
      datasets,
    });

    // Before the functions: the reconcile function registers partitions in it.
    this.queryCatalog = new QueryCatalog(this, 'QueryCatalog', {
      serviceName,
      datasets,
      lakeBucket: this.storage.lakeBucket,
      dataKey: this.storage.key,
    });

    this.functions = new PipelineFunctions(this, 'Functions', {
      landingBucket: this.storage.landingBucket,
      lakeBucket: this.storage.lakeBucket,
      dataKey: this.storage.key,
      datasets,
      serviceName,
      logLevel: config.logLevel,
      tracing: config.tracing,
      ingest: {
        memoryMb: config.ingest.memoryMb,
        timeout: Duration.minutes(config.ingest.timeoutMinutes),
        reservedConcurrency: config.ingest.reservedConcurrency,
        sliceMaxMb: config.ingest.sliceMaxMb,
      },
      silver: {
        groupTargetMb: config.silver.groupTargetMb,
        bucketTargetMb: config.silver.bucketTargetMb,
        reservedConcurrency: config.silver.reservedConcurrency,
      },
      // The share the quarantine alarm watches fails a run over it, too.
      reconcile: { quarantineRateThreshold: config.quarantineRateThreshold, prices: config.prices },
      queryCatalog: this.queryCatalog,
    });

    const reserved = (config.ingest.reservedConcurrency ?? 0) + (config.silver.reservedConcurrency ?? 0);
    if (reserved > DEFAULT_ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM) {
      Annotations.of(this).addWarningV2(
        'sluice:reserved-concurrency',
        `ingest and silver reserve ${reserved} concurrent executions: Lambda keeps ${UNRESERVED_MINIMUM} of ` +
          `the account's limit unreserved, and a default account's limit is ${DEFAULT_ACCOUNT_CONCURRENCY}, ` +
          'so the deploy fails unless the limit was raised (Service Quotas: "Concurrent executions").',
      );
    }

    this.sources = new ScheduledSources(this, 'Sources', {
      sources: config.sources,
      landingBucket: this.storage.landingBucket,
      dataKey: this.storage.key,
      datasets,
      // A table of contents' fan-out downloads the in-network files it lists.
      listedDatasets: datasets.includes(FAN_OUT_DATASET) ? [LISTED_FILE_DATASET] : [],
      serviceName,
      logLevel: config.logLevel,
      tracing: config.tracing,
    });

    this.workflow = new IngestWorkflow(this, 'Workflow', {
      downloadFunction: this.sources.download.function,
      ingestFunction: this.functions.ingest.function,
      silverFunction: this.functions.silver.function,
      reconcileFunction: this.functions.reconcile.function,
      fanOutFunction: this.functions.fanOut.function,
      fanOutConcurrency: config.fanOut.maxConcurrency,
      silverConcurrency: config.silver.maxConcurrency,
      timeout: Duration.hours(config.fanOut.timeoutHours),
      tracing: config.tracing,
    });

    this.sources.schedule(this.workflow.stateMachine);

    // Ingest asks whether the execution holding a source's lease still runs: one that failed, timed out
    // or was aborted frees its source at once instead of when its lease expires. The ARN is built from
    // the state machine's fixed name (a reference to it would make a cycle: the machine names the function).
    this.functions.ingest.function.addToRolePolicy(
      new PolicyStatement({
        sid: 'DescribeLeaseHolders',
        actions: ['states:DescribeExecution'],
        resources: [
          Stack.of(this).formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${workflowStateMachineName(this.stackName)}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );
    Validations.of(this.functions.ingest.function.role!).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${workflowStateMachineName(this.stackName)}:*]`,
      reason:
        "Ingest describes the execution that holds a source's lease (is it still running?): executions of " +
        'this state machine only, whose names are not known in advance.',
    });

    this.trigger = new LandingTrigger(this, 'Trigger', {
      landingBucket: this.storage.landingBucket,
      stateMachine: this.workflow.stateMachine,
      serviceName,
      pacing: config.pacing,
      logLevel: config.logLevel,
      tracing: config.tracing,
    });

    this.monitoring = new PipelineMonitoring(this, 'Monitoring', {
      stateMachine: this.workflow.stateMachine,
      stateMachineName: workflowStateMachineName(this.stackName),
      serviceName,
      logLevel: config.logLevel,
      tracing: config.tracing,
      alarmEmail: config.alarmEmail,
      functions: [
        { name: 'ingest', function: this.functions.ingest.function, timeout: this.functions.ingest.timeout },
        { name: 'silver', function: this.functions.silver.function, timeout: this.functions.silver.timeout },
        {
          name: 'reconcile',
          function: this.functions.reconcile.function,
          timeout: this.functions.reconcile.timeout,
        },
        {
          name: 'fan-out',
          function: this.functions.fanOut.function,
          timeout: this.functions.fanOut.timeout,
        },
        {
          name: 'start-execution',
          function: this.trigger.startExecution.function,
          timeout: this.trigger.startExecution.timeout,
        },
        {
          name: 'download',
          function: this.sources.download.function,
          timeout: this.sources.download.timeout,
        },
      ],
      deadLetterQueues: [
        {
          name: 'Failure',
          queue: this.workflow.failureQueue,
          meaning:
            'executions that failed for good, with their input and error. Fix the cause, then redrive.',
        },
        {
          name: 'TriggerDelivery',
          queue: this.trigger.deliveryDeadLetterQueue,
          meaning: 'landing events EventBridge could not deliver to the start-execution function.',
        },
        {
          name: 'Landing',
          queue: this.trigger.landingDeadLetterQueue,
          meaning:
            'landing events whose execution failed to start on every attempt (the start-execution logs say ' +
            'why). Fix the cause, then move them back to the landing queue (a DLQ redrive).',
        },
        ...(this.sources.deadLetterQueue
          ? [
              {
                name: 'ScheduleDelivery',
                queue: this.sources.deadLetterQueue,
                meaning: 'scheduled runs EventBridge Scheduler could not start, with their source.',
              },
            ]
          : []),
      ],
      workQueues: [
        {
          name: 'LandingQueue',
          queue: this.trigger.landingQueue,
          // Waiting files are sent back every 15 minutes at most, and a failing one is dead-lettered
          // within half an hour: an hour-old message means the starter is not running at all.
          maxAge: Duration.hours(1),
          meaning:
            'the start-execution function is not taking landing events (check its errors, its event source ' +
            'mapping and its permissions); landed files wait there, nothing is lost for 14 days.',
        },
      ],
      quarantineRateThreshold: config.quarantineRateThreshold,
      datasets: config.datasets.map((d) => ({
        name: d.name,
        freshness: Duration.hours(d.freshnessHours),
        maxRunDuration: Duration.hours(
          d.maxRunHours ??
            (d.name === FAN_OUT_DATASET ? DEFAULT_FAN_OUT_MAX_RUN_HOURS : DEFAULT_MAX_RUN_HOURS),
        ),
        recordNames: recordTargets(builtInDataset(d.name)).map((t) => t.name),
      })),
    });

    // Every query of the workgroup is cancelled once it has scanned this much (the workgroup enforces its
    // configuration, so a client cannot lift it).
    const workGroup = this.queryCatalog.workGroup;
    workGroup.workGroupConfiguration = {
      ...(workGroup.workGroupConfiguration as CfnWorkGroup.WorkGroupConfigurationProperty),
      bytesScannedCutoffPerQuery: config.athena.bytesScannedCutoffGb * 1024 ** 3,
    };

    new CfnOutput(this, 'LandingBucketName', {
      value: this.storage.landingBucket.bucketName,
      description: 'Land files here as <dataset>/<file>',
    });
    new CfnOutput(this, 'LakeBucketName', { value: this.storage.lakeBucket.bucketName });
    new CfnOutput(this, 'StateMachineArn', { value: this.workflow.stateMachine.stateMachineArn });
    new CfnOutput(this, 'FailureQueueUrl', { value: this.workflow.failureQueue.queueUrl });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.monitoring.topic.topicArn,
      description: 'Every alarm notifies this SNS topic; subscribe to it (and confirm) to receive them',
    });
    new CfnOutput(this, 'DashboardUrl', {
      value: dashboardUrl(this.region, this.monitoring.dashboardName),
      description: 'Where to watch: the first row says whether the pipeline is healthy',
    });
    new CfnOutput(this, 'GlueDatabaseName', { value: this.queryCatalog.databaseName });
    new CfnOutput(this, 'AthenaWorkGroupName', { value: this.queryCatalog.workGroupName });
  }
}

/** The CloudWatch console's address of a dashboard (standard AWS partition). */
export function dashboardUrl(region: string, dashboardName: string): string {
  return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#dashboards/dashboard/${dashboardName}`;
}
