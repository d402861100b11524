import { type Duration, Stack, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ingestEnvironment, type LogLevel } from '../../shared/config/runtime-config.ts';
import { nagRef } from './nag.ts';
import { SluiceFunction } from './sluice-function.ts';

/** The lake prefix the bronze layer writes under: the first segment of every key in shared/lake/keys.ts. */
export const BRONZE_PREFIX = 'bronze/';

/** Properties of `PipelineFunctions`. */
export interface PipelineFunctionsProps {
  readonly landingBucket: IBucket;
  readonly lakeBucket: IBucket;
  /** The key that encrypts both buckets. */
  readonly dataKey: IKey;
  /** The datasets this deployment ingests; the ingest role may read only their landing prefixes. */
  readonly datasets: readonly string[];
  /** Names the deployment in logs and metric dimensions. */
  readonly serviceName: string;
  /** @default 'INFO' */
  readonly logLevel?: LogLevel;
  readonly ingest: {
    /** @default 3008 */
    readonly memoryMb?: number;
    readonly timeout: Duration;
    /** @default - no reserved concurrency */
    readonly reservedConcurrency?: number;
  };
  /** @default false */
  readonly tracing?: boolean;
}

/**
 * The Lambda functions of the workflow's stages (today: ingest), each with only the permissions its
 * stage needs. The state machine invokes them synchronously, so they have no dead-letter queues: a
 * Lambda DLQ only ever receives failed asynchronous invocations.
 */
export class PipelineFunctions extends Construct {
  readonly ingest: SluiceFunction;

  constructor(scope: Construct, id: string, props: PipelineFunctionsProps) {
    super(scope, id);
    const { landingBucket, lakeBucket, dataKey } = props;

    // Bronze parts are written from memory and streamed to S3, so the default 512 MB of /tmp suffices.
    this.ingest = new SluiceFunction(this, 'Ingest', {
      handlerDir: 'ingest',
      description: 'Parses one landed file and writes its records to bronze',
      memoryMb: props.ingest.memoryMb ?? 3008,
      timeout: props.ingest.timeout,
      reservedConcurrency: props.ingest.reservedConcurrency,
      tracing: props.tracing,
      environment: ingestEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        landingBucket: landingBucket.bucketName,
        lakeBucket: lakeBucket.bucketName,
        datasets: props.datasets,
      }),
    });

    const role = this.ingest.role;
    // Read landed files, of the deployed datasets only (HeadObject is authorized by s3:GetObject).
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadLandedFiles',
        actions: ['s3:GetObject'],
        resources: props.datasets.map((dataset) => landingBucket.arnForObjects(`${dataset}/*`)),
      }),
    );
    // Write, replace and clean up bronze objects; abort the multipart uploads of a failed write.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'WriteBronze',
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [lakeBucket.arnForObjects(`${BRONZE_PREFIX}*`)],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ListBronze',
        actions: ['s3:ListBucket'],
        resources: [lakeBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${BRONZE_PREFIX}*`] } },
      }),
    );
    // SSE-KMS: reading needs Decrypt, writing GenerateDataKey (and Decrypt, for multipart uploads), and
    // only through S3, never directly against the key.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'UseDataKeyThroughS3',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [dataKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );

    // The role's policy statements end in `/*` on purpose: objects under one prefix.
    Validations.of(role).acknowledge(
      ...props.datasets.map((dataset) => ({
        id: `AwsSolutions-IAM5[Resource::${nagRef(this, landingBucket.bucketArn)}/${dataset}/*]`,
        reason: `Files land under ${dataset}/ with names not known in advance; reads are limited to that prefix.`,
      })),
      {
        id: `AwsSolutions-IAM5[Resource::${nagRef(this, lakeBucket.bucketArn)}/${BRONZE_PREFIX}*]`,
        reason: 'Bronze keys are derived per source and run; access is limited to the bronze/ prefix.',
      },
    );
  }
}
