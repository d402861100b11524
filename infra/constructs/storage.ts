import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { Key } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type CfnBucket,
  type LifecycleRule,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { USAGE_PREFIX } from '../../shared/lake/run-usage.ts';
import { silverWorkPrefix } from '../../shared/lake/silver-work-keys.ts';
import { BRONZE_PREFIX } from './pipeline-functions.ts';

/** Properties of `SluiceStorage`. */
export interface SluiceStorageProps {
  /** How long a landed file stays in the landing bucket after it arrives. */
  readonly landingExpiration: Duration;
  /**
   * How long an overwritten or deleted object version is kept (both buckets): a rerun rewrites bronze
   * parts and silver partitions in place, and every old copy is billed until it expires. @default 7 days
   */
  readonly noncurrentVersionExpiration?: Duration;
  /**
   * The datasets deployed: each gets a rule that expires its silver scratch files
   * (`silver/<dataset>/_work/`, see `silverWorkPrefix`) after a day. @default - none
   */
  readonly datasets?: readonly string[];
  /** Age at which bronze objects move to S3 Intelligent-Tiering. @default 30 days */
  readonly bronzeIntelligentTieringAfter?: Duration;
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
    const noncurrentVersionExpiration = props.noncurrentVersionExpiration ?? Duration.days(7);

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

    const dataBucket = (bucketId: string, logPrefix: string, rules: LifecycleRule[]) =>
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
        lifecycleRules: rules,
        removalPolicy,
      });

    // An ingest cut off by its timeout can leave a multipart upload open; its parts cost money.
    const abortIncompleteMultipartUploadAfter = Duration.days(7);
    this.landingBucket = dataBucket('Landing', 'landing/', [
      {
        id: 'expire-landed-files',
        expiration: props.landingExpiration,
        noncurrentVersionExpiration,
        abortIncompleteMultipartUploadAfter,
      },
    ]);
    this.lakeBucket = dataBucket('Lake', 'lake/', [
      {
        // A delete marker left alone once its versions expired is removed too (S3 does that only for
        // rules without a current-version expiration, like this one).
        id: 'expire-old-versions',
        noncurrentVersionExpiration,
        expiredObjectDeleteMarker: true,
        abortIncompleteMultipartUploadAfter,
      },
      {
        // Bronze is written once per source and read again by silver and reconcile within the run, then
        // rarely: Intelligent-Tiering moves what nobody reads to cheaper tiers, with no retrieval fee.
        // (Objects under 128 KB, manifests and reports, stay in its frequent tier, unmonitored.)
        id: 'tier-bronze',
        prefix: BRONZE_PREFIX,
        transitions: [
          {
            storageClass: StorageClass.INTELLIGENT_TIERING,
            transitionAfter: props.bronzeIntelligentTieringAfter ?? Duration.days(30),
          },
        ],
      },
      {
        // Each invocation's usage record (a few hundred bytes), read by its run's Reconcile to price the
        // run: kept as long as the longest run may take (a week's fan-out) and a little more.
        id: 'expire-usage-records',
        prefix: USAGE_PREFIX,
        expiration: Duration.days(USAGE_RECORD_DAYS),
        noncurrentVersionExpiration: Duration.days(1),
      },
      // Silver's scratch files (≈ 150 MB per GB of input) live only during one build: Silver deletes them
      // when it merges, and the noncurrent versions that leaves are gone a day later instead of a week;
      // those of a failed build expire after a day too (a rerun plans and builds them again). Lifecycle
      // filters take prefixes, not patterns: one rule per dataset.
      ...(props.datasets ?? []).map((dataset) => ({
        id: `expire-silver-work-${dataset}`,
        prefix: silverWorkFolder(dataset),
        expiration: Duration.days(1),
        noncurrentVersionExpiration: Duration.days(1),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      })),
    ]);

    // Object Created events go to EventBridge. Set on the bucket resource itself, which CloudFormation
    // supports, rather than with `eventBridgeEnabled`, which adds a custom-resource Lambda to do the same.
    (this.landingBucket.node.defaultChild as CfnBucket).notificationConfiguration = {
      eventBridgeConfiguration: { eventBridgeEnabled: true },
    };
  }
}

/** Days a usage record (`_usage/`) is kept: longer than any execution may run (7 days by default). */
export const USAGE_RECORD_DAYS = 14;

/** `silver/<dataset>/_work/`: the folder of every silver build's scratch files of a dataset. */
export const silverWorkFolder = (dataset: string) => silverWorkPrefix(dataset, '').replace(/\/$/, '');
