import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  DEFAULT_FUNCTION_MEMORY_MB,
  DEFAULT_QUARANTINE_RATE_THRESHOLD,
  ingestEnvironment,
  type LogLevel,
  lakeStageEnvironment,
} from '../../shared/config/runtime-config.ts';
import { USAGE_PREFIX } from '../../shared/lake/run-usage.ts';
import { DOWNLOADS_PREFIX } from '../../shared/stages/download/landing-key.ts';
import type { PriceList } from '../../shared/workflow/run-cost.ts';
import { FAN_OUT_DATASET } from '../../shared/workflow/stage-io.ts';
import { nagRef } from './nag.ts';
import type { QueryCatalog } from './query-catalog.ts';
import { SluiceFunction } from './sluice-function.ts';

/** The lake prefix the bronze layer writes under: the first segment of every key in shared/lake/keys.ts. */
export const BRONZE_PREFIX = 'bronze/';
/** The lake prefix of silver tables and manifests (shared/lake/keys.ts). */
export const SILVER_PREFIX = 'silver/';
/** The lake prefix of the sources' control records: leases and commit records (shared/lake/keys.ts). */
export const SOURCES_PREFIX = '_sources/';
/** The sources' leases (shared/lake/keys.ts `sourceLeaseKey`): a rebuild's first step takes one. */
export const SOURCE_LEASES = `${SOURCES_PREFIX}*/lease.json`;
/** The reconciliation report's key pattern: beside each bronze manifest (shared/lake/keys.ts). */
export const RECONCILIATION_REPORTS = `${BRONZE_PREFIX}*/reconciliation.json`;
/**
 * Reconciliation's intermediate objects: under each run's silver work folder (`reconcileWorkPrefix`,
 * shared/lake/reconcile-work-keys.ts), which a lifecycle rule expires.
 */
export const RECONCILE_WORK = `${SILVER_PREFIX}*/_work/*/_reconcile/*`;
/**
 * The merged states of generic datasets' snapshot, cdc and scd2 tables (shared/lake/state-keys.ts): their
 * files and state manifests, which reconcile folds after each commit.
 */
export const MERGED_STATES = `${SILVER_PREFIX}*/_state/*`;
/** The run report's key pattern: beside each reconciliation report (shared/lake/keys.ts `runReportKey`). */
export const RUN_REPORTS = `${BRONZE_PREFIX}*/report.html`;
/** The bronze runs of tables of contents, which the fan-out reads. */
export const TABLE_OF_CONTENTS_RUNS = `${BRONZE_PREFIX}${FAN_OUT_DATASET}/`;
/** The fan-out reports' key pattern: under each table-of-contents bronze run (shared/lake/keys.ts). */
export const FAN_OUT_REPORTS = `${TABLE_OF_CONTENTS_RUNS}*/fan-out/*`;
/** A table of contents' run report, which its fan-out rewrites with the listed files' outcomes. */
export const TABLE_OF_CONTENTS_RUN_REPORTS = `${TABLE_OF_CONTENTS_RUNS}*/report.html`;
/** The silver manifests of tables of contents, which that report shows. */
export const TABLE_OF_CONTENTS_SILVER_MANIFESTS = `${SILVER_PREFIX}${FAN_OUT_DATASET}/_manifests/`;

/**
 * DuckDB (Parquet writing and reading) is a native module: esbuild cannot inline its binary, so it is
 * installed into the bundle instead (`nodeModules`), with the linux-arm64 binding that the lock file
 * keeps (`@duckdb/node-bindings-linux-arm64`) whatever the host is: these functions run on arm64 too.
 */
const DUCKDB_FUNCTION = { nodeModules: ['@duckdb/node-api'] } as const;

/** Size and time limit of a stage function. */
export interface StageSizing {
  /** Memory in MB; CPU grows with it. */
  readonly memoryMb?: number;
  readonly timeout?: Duration;
  /** Size of `/tmp` in MB, where Parquet files are staged. */
  readonly ephemeralStorageMb?: number;
}

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
    /** Uncompressed input per slice at most (it ends at the next segment boundary). @default - time alone */
    readonly sliceMaxMb?: number;
  };
  /**
   * The silver stage; `groupTargetMb`: uncompressed bronze per group when `PlanSilver` splits a build,
   * `bucketTargetMb`: per merge bucket; `reservedConcurrency`: most silver invocations at once, across
   * all runs. @default 3008 MB, 15 minutes, 4096 MB of /tmp, groups of 1536 MB, buckets of 8192 MB, no
   * reserved concurrency
   */
  readonly silver?: StageSizing & {
    readonly groupTargetMb?: number;
    readonly bucketTargetMb?: number;
    readonly reservedConcurrency?: number;
  };
  /**
   * The reconcile stage; `quarantineRateThreshold`: a run that quarantined more than this share of its
   * records fails; `prices`: what a run's cost is priced at. @default 2048 MB, 15 minutes, 4096 MB of
   * /tmp, DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05), us-east-1 list prices
   */
  readonly reconcile?: StageSizing & {
    readonly quarantineRateThreshold?: number;
    readonly prices?: PriceList;
  };
  /** The table-of-contents fan-out (`PlanFanOut`). @default 1024 MB, 5 minutes */
  readonly fanOut?: Omit<StageSizing, 'ephemeralStorageMb'>;
  /** @default false */
  readonly tracing?: boolean;
  /**
   * The Glue catalog of the silver tables: the reconcile function registers each committed version's
   * partitions in it, so Athena reads committed versions only.
   * @default - none: no function touches Glue
   */
  readonly queryCatalog?: QueryCatalog;
}

/**
 * The Lambda functions of the workflow's stages (ingest, silver, reconcile, fan-out), each with only the
 * permissions its stage needs. The state machine invokes them synchronously, so they have no dead-letter
 * queues: a Lambda DLQ only ever receives failed asynchronous invocations.
 */
export class PipelineFunctions extends Construct {
  readonly ingest: SluiceFunction;
  readonly silver: SluiceFunction;
  readonly reconcile: SluiceFunction;
  readonly fanOut: SluiceFunction;
  private readonly lakeBucketArn: string;

  constructor(scope: Construct, id: string, props: PipelineFunctionsProps) {
    super(scope, id);
    const { landingBucket, lakeBucket, dataKey } = props;
    this.lakeBucketArn = lakeBucket.bucketArn;

    // Bronze parts are written from memory and streamed to S3, so the default 512 MB of /tmp suffices.
    this.ingest = new SluiceFunction(this, 'Ingest', {
      handlerDir: 'ingest',
      description: 'Parses one landed file and writes its records to bronze',
      memoryMb: props.ingest.memoryMb ?? DEFAULT_FUNCTION_MEMORY_MB.ingest,
      timeout: props.ingest.timeout,
      reservedConcurrency: props.ingest.reservedConcurrency,
      tracing: props.tracing,
      environment: ingestEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        landingBucket: landingBucket.bucketName,
        lakeBucket: lakeBucket.bucketName,
        datasets: props.datasets,
        sliceMaxMb: props.ingest.sliceMaxMb,
      }),
    });

    const role = this.ingest.role;
    // Read landed files, of the deployed datasets only (HeadObject is authorized by s3:GetObject): those
    // dropped as <dataset>/<file>, and those the Download stage fetched (_downloads/<dataset>/<file>).
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadLandedFiles',
        actions: ['s3:GetObject'],
        resources: props.datasets.flatMap((dataset) => [
          landingBucket.arnForObjects(`${dataset}/*`),
          landingBucket.arnForObjects(`${DOWNLOADS_PREFIX}${dataset}/*`),
        ]),
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
    // The source's lease (taken, renewed, released) and its current-version record (read; `seenAs` added
    // when another object holds the same bytes): small JSON objects, written with conditional PutObject.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadWriteSourceRecords',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [lakeBucket.arnForObjects(`${SOURCES_PREFIX}*`)],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ListBronze',
        actions: ['s3:ListBucket'],
        resources: [lakeBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${BRONZE_PREFIX}*`, `${SOURCES_PREFIX}*`] } },
      }),
    );
    this.useDataKeyThroughS3(role, dataKey);
    this.recordUsage(role);

    // The role's policy statements end in `/*` on purpose: objects under one prefix.
    Validations.of(role).acknowledge(
      ...props.datasets.flatMap((dataset) =>
        [`${dataset}/`, `${DOWNLOADS_PREFIX}${dataset}/`].map((prefix) => ({
          id: `AwsSolutions-IAM5[Resource::${nagRef(this, landingBucket.bucketArn)}/${prefix}*]`,
          reason: `Files land under ${prefix} with names not known in advance; reads are limited to that prefix.`,
        })),
      ),
      {
        id: `AwsSolutions-IAM5[Resource::${nagRef(this, lakeBucket.bucketArn)}/${BRONZE_PREFIX}*]`,
        reason: 'Bronze keys are derived per source and run; access is limited to the bronze/ prefix.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::${nagRef(this, lakeBucket.bucketArn)}/${SOURCES_PREFIX}*]`,
        reason: `Lease and commit records are keyed per dataset and source; access is limited to ${SOURCES_PREFIX}.`,
      },
    );

    const lake = (pattern: string) => lakeBucket.arnForObjects(pattern);
    const lakeAck = (pattern: string, reason: string) => ({
      id: `AwsSolutions-IAM5[Resource::${nagRef(this, lakeBucket.bucketArn)}/${pattern}]`,
      reason,
    });
    const environment = lakeStageEnvironment({
      serviceName: props.serviceName,
      logLevel: props.logLevel ?? 'INFO',
      lakeBucket: lakeBucket.bucketName,
      datasets: props.datasets,
    });

    this.silver = new SluiceFunction(this, 'Silver', {
      handlerDir: 'silver',
      description:
        'Plans, builds in groups, merges in buckets and commits the silver Parquet tables of one committed bronze run',
      memoryMb: props.silver?.memoryMb ?? DEFAULT_FUNCTION_MEMORY_MB.silver,
      timeout: props.silver?.timeout ?? Duration.minutes(15),
      ephemeralStorageMb: props.silver?.ephemeralStorageMb ?? 4096,
      reservedConcurrency: props.silver?.reservedConcurrency,
      tracing: props.tracing,
      environment: lakeStageEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        lakeBucket: lakeBucket.bucketName,
        datasets: props.datasets,
        silverGroupTargetMb: props.silver?.groupTargetMb,
        silverBucketTargetMb: props.silver?.bucketTargetMb,
      }),
      ...DUCKDB_FUNCTION,
    });
    const silverRole = this.silver.role;
    silverRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadBronze',
        actions: ['s3:GetObject'],
        resources: [lake(`${BRONZE_PREFIX}*`)],
      }),
    );
    // Write and replace table partitions and manifests, remove stale partitions; a write reads its
    // object back (HeadObject, authorized by s3:GetObject) to report what S3 stored.
    silverRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'WriteSilver',
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [lake(`${SILVER_PREFIX}*`)],
      }),
    );
    // A rebuild (`PlanRebuild`) reads the source's commit records and takes its lease; the commit that
    // follows is the reconcile function's.
    silverRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadSourceRecords',
        actions: ['s3:GetObject'],
        resources: [lake(`${SOURCES_PREFIX}*`)],
      }),
    );
    silverRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'TakeSourceLease',
        actions: ['s3:PutObject'],
        resources: [lake(SOURCE_LEASES)],
      }),
    );
    this.listLake(silverRole, [BRONZE_PREFIX, SILVER_PREFIX, SOURCES_PREFIX]);
    this.useDataKeyThroughS3(silverRole, dataKey);
    this.recordUsage(silverRole);
    Validations.of(silverRole).acknowledge(
      lakeAck(
        `${SOURCES_PREFIX}*`,
        `Reads a source's commit records to rebuild it; keyed per dataset and source, limited to ${SOURCES_PREFIX}.`,
      ),
      lakeAck(SOURCE_LEASES, "Writes only a source's lease, to rebuild it (one run per source at a time)."),
      lakeAck(`${BRONZE_PREFIX}*`, 'Reads the bronze run named in its event; reads are limited to bronze/.'),
      lakeAck(
        `${SILVER_PREFIX}*`,
        'Silver keys are derived per dataset, table and source; access is limited to the silver/ prefix.',
      ),
    );

    this.reconcile = new SluiceFunction(this, 'Reconcile', {
      handlerDir: 'reconcile',
      description: "Checks that a run's bronze and silver account for every record",
      memoryMb: props.reconcile?.memoryMb ?? DEFAULT_FUNCTION_MEMORY_MB.reconcile,
      timeout: props.reconcile?.timeout ?? Duration.minutes(15),
      ephemeralStorageMb: props.reconcile?.ephemeralStorageMb ?? 4096,
      tracing: props.tracing,
      environment: {
        ...environment,
        ...lakeStageEnvironment({
          serviceName: props.serviceName,
          logLevel: props.logLevel ?? 'INFO',
          lakeBucket: lakeBucket.bucketName,
          datasets: props.datasets,
          quarantineRateThreshold:
            props.reconcile?.quarantineRateThreshold ?? DEFAULT_QUARANTINE_RATE_THRESHOLD,
          glueDatabase: props.queryCatalog?.databaseName,
          prices: props.reconcile?.prices,
        }),
      },
      ...DUCKDB_FUNCTION,
    });
    const reconcileRole = this.reconcile.role;
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadLake',
        actions: ['s3:GetObject'],
        resources: [lake(`${BRONZE_PREFIX}*`), lake(`${SILVER_PREFIX}*`)],
      }),
    );
    // The reports are the only objects it writes in bronze/: two key patterns, beside each bronze manifest.
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'WriteReconciliationReport',
        actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
        resources: [lake(RECONCILIATION_REPORTS), lake(RUN_REPORTS)],
      }),
    );
    // Its steps hand each other small results (plan, item and bucket results, emitted keys) through the
    // lake; the last step removes them.
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReconcileWork',
        actions: ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [lake(RECONCILE_WORK)],
      }),
    );
    // After the commit it folds the source into its table's merged state (generic datasets): new state
    // files, the state manifest (conditionally), then the replaced files removed.
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'MergeSilverState',
        actions: ['s3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [lake(MERGED_STATES)],
      }),
    );
    // The commit: the version and current-version records, conditionally, and the lease (checked and
    // released), all small JSON objects under the source's control folder.
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CommitSourceVersions',
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [lake(`${SOURCES_PREFIX}*`)],
      }),
    );
    // It prices the run from the usage records of the run's invocations (and writes its own).
    reconcileRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadUsageRecords',
        actions: ['s3:GetObject'],
        resources: [lake(`${USAGE_PREFIX}*`)],
      }),
    );
    this.recordUsage(reconcileRole);
    this.listLake(reconcileRole, [BRONZE_PREFIX, SILVER_PREFIX, SOURCES_PREFIX, USAGE_PREFIX]);
    props.queryCatalog?.grantPublishPartitions(reconcileRole);
    this.useDataKeyThroughS3(reconcileRole, dataKey);
    Validations.of(reconcileRole).acknowledge(
      lakeAck(`${BRONZE_PREFIX}*`, 'Re-reads the bronze run it checks; reads are limited to bronze/.'),
      lakeAck(`${SILVER_PREFIX}*`, 'Re-reads the silver tables it checks; reads are limited to silver/.'),
      lakeAck(
        RECONCILIATION_REPORTS,
        'Writes only reconciliation.json beside a bronze manifest, whose folder is per dataset and source.',
      ),
      lakeAck(RUN_REPORTS, 'Writes only the run report (report.html) beside a reconciliation report.'),
      lakeAck(
        RECONCILE_WORK,
        "Writes and removes only its own small intermediate results, under each run's silver work folder.",
      ),
      lakeAck(
        MERGED_STATES,
        "Writes and replaces only the merged states of generic datasets' tables, under each dataset's _state folder.",
      ),
      lakeAck(
        `${SOURCES_PREFIX}*`,
        `Commit and lease records are keyed per dataset and source; access is limited to ${SOURCES_PREFIX}.`,
      ),
    );

    // Reads table-of-contents runs from bronze, lists their files a page at a time, reports their runs.
    this.fanOut = new SluiceFunction(this, 'FanOut', {
      handlerDir: 'fan-out',
      description: 'Hands out the in-network files a table of contents lists, a page at a time',
      memoryMb: props.fanOut?.memoryMb ?? DEFAULT_FUNCTION_MEMORY_MB.fanOut,
      timeout: props.fanOut?.timeout ?? Duration.minutes(5),
      tracing: props.tracing,
      environment,
    });
    const fanOutRole = this.fanOut.role;
    fanOutRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadTableOfContentsRuns',
        actions: ['s3:GetObject'],
        resources: [lake(`${TABLE_OF_CONTENTS_RUNS}*`), lake(`${TABLE_OF_CONTENTS_SILVER_MANIFESTS}*`)],
      }),
    );
    // The fan-out report is the only thing it writes (one folder per run and execution), and, once the
    // fan-out ends, the table of contents' run report with the listed files' outcomes.
    fanOutRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'WriteFanOutReport',
        actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
        resources: [lake(FAN_OUT_REPORTS), lake(TABLE_OF_CONTENTS_RUN_REPORTS)],
      }),
    );
    this.listLake(fanOutRole, [TABLE_OF_CONTENTS_RUNS, TABLE_OF_CONTENTS_SILVER_MANIFESTS]);
    this.useDataKeyThroughS3(fanOutRole, dataKey);
    this.recordUsage(fanOutRole);
    Validations.of(fanOutRole).acknowledge(
      lakeAck(
        `${TABLE_OF_CONTENTS_RUNS}*`,
        `Reads the ${FAN_OUT_DATASET} bronze run named in its event; reads are limited to that dataset.`,
      ),
      lakeAck(
        FAN_OUT_REPORTS,
        'Writes only the fan-out report folder beside a table-of-contents bronze manifest.',
      ),
      lakeAck(
        TABLE_OF_CONTENTS_RUN_REPORTS,
        "Rewrites only a table of contents' run report (report.html), adding its listed files' outcomes.",
      ),
      lakeAck(
        `${TABLE_OF_CONTENTS_SILVER_MANIFESTS}*`,
        "Reads the silver manifest of a table of contents, for its run report; limited to that dataset's.",
      ),
    );
  }

  /**
   * Each invocation writes its usage record (what the run cost, shared/lake/run-usage.ts) under
   * `_usage/<execution>/<state>/<request id>.json`: PutObject there and nowhere else. The S3 adapter
   * reads every object it writes back (HeadObject, authorized by s3:GetObject) to return what S3 stored;
   * without GetObject that read is refused, and the record counts as failed (a warning on every
   * invocation of a function that may not read `_usage/`), although its PUT succeeded.
   */
  private recordUsage(role: IRole): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'WriteUsageRecords',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [`${this.lakeBucketArn}/${USAGE_PREFIX}*`],
      }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${nagRef(this, this.lakeBucketArn)}/${USAGE_PREFIX}*]`,
      reason: `Usage records are keyed per execution, state and request; writes are limited to ${USAGE_PREFIX}.`,
    });
  }

  /**
   * ListBucket under the given prefixes, so that absence is decided without guessing: S3 answers 404 for an
   * absent key, and where it answers 403 anyway the object store lists the key as a prefix to tell an
   * absent key from a refused one (shared/adapters/aws/s3-object-store.ts).
   */
  private listLake(role: IRole, prefixes: readonly string[]): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ListLake',
        actions: ['s3:ListBucket'],
        resources: [this.lakeBucketArn],
        conditions: { StringLike: { 's3:prefix': prefixes.map((p) => `${p}*`) } },
      }),
    );
  }

  /**
   * SSE-KMS: reading needs Decrypt, writing GenerateDataKey (and Decrypt, for multipart uploads), and
   * only through S3, never directly against the key.
   */
  private useDataKeyThroughS3(role: IRole, dataKey: IKey): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'UseDataKeyThroughS3',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [dataKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
  }
}
