import type { Column, TableInput } from '@aws-sdk/client-glue';
import { Duration, Stack } from 'aws-cdk-lib';
import { CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { catalogTables, glueName, glueTableInput } from '../../shared/contracts/silver/glue-catalog.ts';

/** The lake prefix Athena writes query results under (outside `bronze/` and `silver/`). */
export const ATHENA_RESULTS_PREFIX = 'athena-results/';

// The catalog's names and table inputs are plain data shared with the Reconcile Lambda's Glue adapter.
export {
  catalogTables,
  GLUE_TYPES,
  glueHistoryTableName,
  glueName,
  glueTableName,
} from '../../shared/contracts/silver/glue-catalog.ts';

/** Properties of `QueryCatalog`. */
export interface QueryCatalogProps {
  /** The deployment's name (the stack name); the database and workgroup are named after it. */
  readonly serviceName: string;
  /** The deployed datasets; those with a silver contract get one Glue table per silver table. */
  readonly datasets: readonly string[];
  /** The lake bucket: silver tables are read from it, query results written to `athena-results/`. */
  readonly lakeBucket: Bucket;
  /** The lake's KMS key; query results are encrypted with it (SSE-KMS). */
  readonly dataKey: IKey;
  /** How long Athena query results are kept. @default 30 days */
  readonly resultsExpiration?: Duration;
}

/**
 * Makes silver queryable with Athena: a Glue database with two tables per silver table of each deployed
 * dataset, and a workgroup whose results are encrypted with the lake's key.
 *
 * The columns come only from the dataset contracts (`TableSpec.columns` + `LINEAGE_COLUMNS`, the same
 * list the Parquet writer uses), so the catalog cannot drift from the files. The table inputs are built
 * by `glueTableInput` (shared/contracts/silver/glue-catalog.ts), which the Glue adapter's tests use too.
 *
 * Readers see committed, reconciled data only. Silver writes each build of a table to a folder of its own,
 * `silver/<dataset>/<table>/source=<id>/version=<v>/build=<b>/part-NNNNN.parquet` (a file per merge
 * bucket, all in the partition's folder), long before the run is
 * known to be good; a failed or half-written run leaves its files there. So the tables are partitioned,
 * and Athena reads only the folders of registered partitions, never the rest of the LOCATION:
 * - `<dataset>__<table>` is partitioned by `sluice_source` (the source id). When a run's reconciliation
 *   passes, its commit (shared/stages/commit/commit-version.ts, through `GlueSourceCatalog`) creates the
 *   source's partition at the new build's folder, or moves it there: one UpdatePartition per table, so
 *   each table switches from the old version to the new one at once. A version without rows in a table
 *   has its partition removed, so the old version's rows do not linger. A failed run registers nothing and
 *   the previous version stays current. Queries prune by source: `WHERE sluice_source = '<id>'`.
 * - `<dataset>__<table>_history` is partitioned by (`sluice_source`, `sluice_version`) and gets one
 *   partition per committed version, never removed: every version stays queryable.
 * Registered at commit, not discovered: no crawler, no `MSCK REPAIR TABLE` (which would register failed
 * runs too), no partition projection (which reads whatever folder exists). The partition key is not
 * `source`: Hive forbids a partition key named like a column, and `tic-in-network`'s `provider_groups`
 * has a `source` column. Lineage column names start with `_`, so quote them in queries (`"_run_id"`).
 * Athena treats files whose names start with `_` or `.` as hidden; silver's manifests live in
 * `silver/<dataset>/_manifests/`, outside every table's LOCATION, and the commit records in `_sources/`.
 *
 * Query with the workgroup (it is enforced, so a client cannot send results elsewhere or unencrypted):
 * `aws athena start-query-execution --work-group <workgroup> --query-execution-context Database=<db>
 *  --query-string 'SELECT count(*) FROM tic_in_network__negotiated_prices'`.
 */
export class QueryCatalog extends Construct {
  readonly database: CfnDatabase;
  readonly databaseName: string;
  /** The Glue tables (current and `_history`), by Glue table name. */
  readonly tables: ReadonlyMap<string, CfnTable>;
  readonly workGroup: CfnWorkGroup;
  readonly workGroupName: string;

  constructor(scope: Construct, id: string, props: QueryCatalogProps) {
    super(scope, id);
    const catalogId = Stack.of(this).account;
    this.databaseName = glueName(props.serviceName);

    this.database = new CfnDatabase(this, 'Database', {
      catalogId,
      databaseInput: {
        name: this.databaseName,
        description: `Silver tables of ${props.serviceName}, generated from the dataset contracts`,
      },
    });

    const tables = new Map<string, CfnTable>();
    const lakeUrl = (key: string) => props.lakeBucket.s3UrlForObject(key);
    for (const dataset of props.datasets) {
      for (const spec of catalogTables(dataset)) {
        for (const history of [false, true]) {
          const input = glueTableInput(dataset, spec, { lakeUrl, history });
          const name = input.Name as string;
          const table = new CfnTable(this, `Table-${dataset}-${spec.name}${history ? '-history' : ''}`, {
            catalogId,
            // Ref of the database is its name, and makes CloudFormation create the database first.
            databaseName: this.database.ref,
            tableInput: cfnTableInput(input),
          });
          tables.set(name, table);
        }
      }
    }
    this.tables = tables;

    // Results are kept in the lake bucket (TLS-only, no public access, versioned, access-logged), under
    // their own prefix, and expire: they are copies of query output, not data of record.
    props.lakeBucket.addLifecycleRule({
      id: 'expire-athena-results',
      prefix: ATHENA_RESULTS_PREFIX,
      expiration: props.resultsExpiration ?? Duration.days(30),
      noncurrentVersionExpiration: Duration.days(1),
    });

    this.workGroupName = props.serviceName;
    this.workGroup = new CfnWorkGroup(this, 'WorkGroup', {
      name: this.workGroupName,
      description: `Queries the silver tables of ${props.serviceName} (database ${this.databaseName})`,
      state: 'ENABLED',
      // Deleting the stack deletes the workgroup even when it holds saved queries or history.
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: props.lakeBucket.s3UrlForObject(ATHENA_RESULTS_PREFIX),
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: props.dataKey.keyArn },
        },
      },
    });
  }

  /**
   * Lets `grantee` register partitions (`GlueSourceCatalog`): read the tables, and read, create, move
   * and remove their partitions, on this catalog, its database and exactly its tables. Glue authorizes
   * each call on the catalog, the database and the table together, so all three are named.
   */
  grantPublishPartitions(grantee: IGrantable): void {
    const stack = Stack.of(this);
    const arn = (resource: string, resourceName?: string) =>
      stack.formatArn({ service: 'glue', resource, resourceName });
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'PublishGluePartitions',
        actions: [...GLUE_PARTITION_ACTIONS],
        resources: [
          arn('catalog'),
          arn('database', this.databaseName),
          ...[...this.tables.keys()].map((table) => arn('table', `${this.databaseName}/${table}`)),
        ],
      }),
    );
  }
}

/** What `GlueSourceCatalog` calls: GetTable (cached), and Get/Create/Update/DeletePartition. */
export const GLUE_PARTITION_ACTIONS = [
  'glue:GetTable',
  'glue:GetPartition',
  'glue:CreatePartition',
  'glue:UpdatePartition',
  'glue:DeletePartition',
] as const;

/** A Glue API `TableInput` as CDK's L1 takes it (camelCase; CloudFormation's names are the API's). */
function cfnTableInput(input: TableInput): CfnTable.TableInputProperty {
  const descriptor = input.StorageDescriptor;
  const column = (c: Column): CfnTable.ColumnProperty => ({
    name: c.Name as string,
    type: c.Type,
    comment: c.Comment,
  });
  return {
    name: input.Name,
    description: input.Description,
    tableType: input.TableType,
    parameters: input.Parameters,
    partitionKeys: input.PartitionKeys?.map(column),
    storageDescriptor: descriptor && {
      location: descriptor.Location,
      columns: descriptor.Columns?.map(column),
      inputFormat: descriptor.InputFormat,
      outputFormat: descriptor.OutputFormat,
      serdeInfo: descriptor.SerdeInfo && {
        serializationLibrary: descriptor.SerdeInfo.SerializationLibrary,
        parameters: descriptor.SerdeInfo.Parameters,
      },
    },
  };
}
