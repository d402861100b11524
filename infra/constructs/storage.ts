import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type CfnBucket,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

/** Properties of `SluiceStorage`. */
export interface SluiceStorageProps {
  /** How long a landed file stays in the landing bucket after it arrives. */
  readonly landingExpiration: Duration;
  /** How long an overwritten or deleted object version is kept (both buckets). @default 30 days */
  readonly noncurrentVersionExpiration?: Duration;
  /** How long S3 server access logs are kept. @default 365 days */
  readonly accessLogRetention?: Duration;
  /** What happens to the buckets and key when the stack is deleted. @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Where data lives: the landing bucket (files arrive here, named `<dataset>/<file>`), the lake bucket
 * (`bronze/` and `silver/`), one customer-managed KMS key for both, and a bucket for their S3
 * server access logs.
 */
export class SluiceStorage extends Construct {
  readonly key: Key;
  readonly landingBucket: Bucket;
  readonly lakeBucket: Bucket;
  readonly accessLogsBucket: Bucket;

  constructor(scope: Construct, id: string, props: SluiceStorageProps) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const noncurrentVersionExpiration = props.noncurrentVersionExpiration ?? Duration.days(30);

    this.key = new Key(this, 'DataKey', {
      description: 'Encrypts sluice landing and lake objects',
      enableKeyRotation: true,
      removalPolicy,
    });

    // S3 server access logging can only deliver to a bucket encrypted with S3-managed keys (SSE-S3):
    // the logging service cannot use a customer-managed KMS key. The logs hold request metadata
    // (keys, requesters), never object contents.
    this.accessLogsBucket = new Bucket(this, 'AccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: props.accessLogRetention ?? Duration.days(365) },
      ],
      removalPolicy,
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket itself; logging its own access would log forever.',
    });

    const dataBucket = (bucketId: string, logPrefix: string, expiration?: Duration) =>
      new Bucket(this, bucketId, {
        encryption: BucketEncryption.KMS,
        encryptionKey: this.key,
        // One data key per bucket instead of one KMS call per object: ingest writes many parts.
        bucketKeyEnabled: true,
        blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
        enforceSSL: true,
        versioned: true,
        objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
        serverAccessLogsBucket: this.accessLogsBucket,
        serverAccessLogsPrefix: logPrefix,
        lifecycleRules: [
          {
            id: expiration ? 'expire-landed-files' : 'expire-old-versions',
            expiration,
            noncurrentVersionExpiration,
            // An ingest cut off by its timeout can leave a multipart upload open; its parts cost money.
            abortIncompleteMultipartUploadAfter: Duration.days(7),
          },
        ],
        removalPolicy,
      });

    this.landingBucket = dataBucket('Landing', 'landing/', props.landingExpiration);
    this.lakeBucket = dataBucket('Lake', 'lake/');

    // Object Created events go to EventBridge. Set on the bucket resource itself, which CloudFormation
    // supports, rather than with `eventBridgeEnabled`, which adds a custom-resource Lambda to do the same.
    (this.landingBucket.node.defaultChild as CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
  }
}
