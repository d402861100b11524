import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { CfnSchedule } from 'aws-cdk-lib/aws-scheduler';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  DEFAULT_FUNCTION_MEMORY_MB,
  downloadEnvironment,
  type LogLevel,
} from '../../shared/config/runtime-config.ts';
import { DOWNLOADS_PREFIX } from '../../shared/stages/download/landing-key.ts';
import { type Source, sourceSecretId } from '../../shared/workflow/source.ts';
import type { DeploymentConfig } from '../config/deployment-config.ts';
import { nagRef } from './nag.ts';
import { SluiceFunction } from './sluice-function.ts';

/** A source of the deployment config. */
export type ScheduledSource = DeploymentConfig['sources'][number];

/** Properties of `ScheduledSources`. */
export interface ScheduledSourcesProps {
  readonly sources: readonly ScheduledSource[];
  readonly landingBucket: IBucket;
  /** The key that encrypts the landing bucket. */
  readonly dataKey: IKey;
  /** The datasets this deployment ingests. */
  readonly datasets: readonly string[];
  /**
   * Datasets downloaded besides the sources' own: those of the files a table of contents lists, which the
   * workflow's fan-out downloads (shared/workflow/definition.ts). @default none
   */
  readonly listedDatasets?: readonly string[];
  readonly serviceName: string;
  /** @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** @default false */
  readonly tracing?: boolean;
}

/**
 * HTTP sources downloaded on a schedule: the workflow's `Download` function (functions/download), one
 * Secrets Manager secret per source with credentials, and (`schedule`) one EventBridge Scheduler
 * schedule per source that starts the workflow with `{ "source": { ... } }`.
 *
 * The secrets are created with a generated placeholder value: after the first deploy, put the real
 * credential into `<stackName>/sources/<source name>` (console, or `aws secretsmanager put-secret-value`).
 * For kind `basic` the value is `user:password`. Nothing else ever holds the value: the schedule's input
 * names the source, and the function derives the secret's name from it.
 */
export class ScheduledSources extends Construct {
  readonly download: SluiceFunction;
  /** The secret of each source with credentials, by source name. */
  readonly secrets: ReadonlyMap<string, Secret>;
  readonly secretPrefix: string;
  /** Set by `schedule`. */
  deadLetterQueue?: Queue;
  schedulerRole?: Role;
  readonly schedules: CfnSchedule[] = [];
  private readonly sources: readonly ScheduledSource[];

  constructor(scope: Construct, id: string, props: ScheduledSourcesProps) {
    super(scope, id);
    this.sources = props.sources;
    this.secretPrefix = `${props.serviceName}/sources/`;

    this.download = new SluiceFunction(this, 'Download', {
      handlerDir: 'download',
      description: 'Downloads one HTTP source into the landing bucket',
      memoryMb: DEFAULT_FUNCTION_MEMORY_MB.download,
      timeout: Duration.minutes(15),
      // One part is spooled here before it is uploaded: parts grow with the source, to 525 MiB for 5 TiB.
      ephemeralStorageMb: 1024,
      tracing: props.tracing,
      environment: downloadEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        landingBucket: props.landingBucket.bucketName,
        datasets: props.datasets,
        sourceSecretPrefix: this.secretPrefix,
      }),
    });
    const role = this.download.role;

    const secrets = new Map<string, Secret>();
    for (const source of props.sources) {
      if (!source.credentials) continue;
      const secret = new Secret(this, `Secret-${source.name}`, {
        secretName: sourceSecretId(this.secretPrefix, source.name),
        description:
          `Credential of sluice source "${source.name}" (${source.credentials.kind}). Created with a ` +
          'placeholder: put the real value here.',
        generateSecretString: { passwordLength: 32, excludePunctuation: true },
      });
      secret.grantRead(role);
      Validations.of(secret).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason:
          "The credential is issued by the source's operator; sluice cannot rotate it. Users replace the " +
          'value when the operator issues a new one.',
      });
      secrets.set(source.name, secret);
    }
    this.secrets = secrets;

    // Land files of the sources' (and listed files') datasets only; the write reads the object back. A
    // download longer than one invocation keeps its multipart upload and a checkpoint beside the landing
    // key (ListMultipartUploadParts to check the upload, DeleteObject to remove the checkpoint at the end),
    // and lists its folder to learn what is there (a listing decides absence, not a 403-or-404 GET).
    const datasets = [...new Set([...props.sources.map((s) => s.dataset), ...(props.listedDatasets ?? [])])];
    if (datasets.length > 0) {
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'WriteLanding',
          actions: [
            's3:GetObject',
            's3:PutObject',
            's3:DeleteObject',
            's3:AbortMultipartUpload',
            's3:ListMultipartUploadParts',
          ],
          // Downloads land under their own prefix, which the landing trigger ignores (see DOWNLOADS_PREFIX).
          resources: datasets.map((dataset) =>
            props.landingBucket.arnForObjects(`${DOWNLOADS_PREFIX}${dataset}/*`),
          ),
        }),
      );
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'ListLanding',
          actions: ['s3:ListBucket'],
          resources: [props.landingBucket.bucketArn],
          conditions: {
            StringLike: { 's3:prefix': datasets.map((dataset) => `${DOWNLOADS_PREFIX}${dataset}/*`) },
          },
        }),
      );
      role.addToPrincipalPolicy(
        new PolicyStatement({
          sid: 'UseDataKeyThroughS3',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.dataKey.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
        }),
      );
      Validations.of(role).acknowledge(
        ...datasets.map((dataset) => ({
          id: `AwsSolutions-IAM5[Resource::${nagRef(this, props.landingBucket.bucketArn)}/${DOWNLOADS_PREFIX}${dataset}/*]`,
          reason: `Downloads land under ${DOWNLOADS_PREFIX}${dataset}/ with names derived from the URL; writes are limited to that prefix.`,
        })),
      );
    }
  }

  /** One EventBridge Scheduler schedule per source, each starting `stateMachine` with its source. */
  schedule(stateMachine: IStateMachine): void {
    if (this.sources.length === 0) return;
    const dlq = new Queue(this, 'ScheduleDeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(dlq).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter queue of the schedules; nothing consumes it automatically.',
    });
    const role = new Role(this, 'SchedulerRole', {
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
      description: 'Starts the sluice workflow for scheduled sources',
    });
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'StartWorkflow',
        actions: ['states:StartExecution'],
        resources: [stateMachine.stateMachineArn],
      }),
    );
    // EventBridge Scheduler sends undeliverable invocations to the DLQ with the schedule's role.
    role.addToPrincipalPolicy(
      new PolicyStatement({ sid: 'DeadLetter', actions: ['sqs:SendMessage'], resources: [dlq.queueArn] }),
    );
    this.deadLetterQueue = dlq;
    this.schedulerRole = role;

    for (const source of this.sources) {
      const input: { source: Source } = {
        source: {
          name: source.name,
          url: source.url,
          dataset: source.dataset,
          ...(source.sha256 ? { sha256: source.sha256 } : {}),
          ...(source.credentials ? { credentials: source.credentials } : {}),
        },
      };
      this.schedules.push(
        new CfnSchedule(this, `Schedule-${source.name}`, {
          description: `Downloads and ingests sluice source "${source.name}" (${source.dataset})`,
          scheduleExpression: source.schedule,
          scheduleExpressionTimezone: 'UTC',
          flexibleTimeWindow: { mode: 'OFF' },
          state: 'ENABLED',
          target: {
            arn: stateMachine.stateMachineArn,
            roleArn: role.roleArn,
            input: JSON.stringify(input),
            deadLetterConfig: { arn: dlq.queueArn },
            retryPolicy: { maximumEventAgeInSeconds: 3600, maximumRetryAttempts: 10 },
          },
        }),
      );
    }
  }
}
