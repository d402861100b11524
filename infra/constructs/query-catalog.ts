import { Duration, Stack } from 'aws-cdk-lib';
import { CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Bucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { type ColumnType, LINEAGE_COLUMNS, type TableSpec } from '../../shared/contracts/silver/table.ts';
import { quarantineTable } from '../../shared/stages/silver/build-silver.ts';

/** The lake prefix Athena writes query results under (outside `bronze/` and `silver/`). */
export const ATHENA_RESULTS_PREFIX = 'athena-results/';

/** The Glue/Athena (Hive DDL) type of each silver column type. */
export const GLUE_TYPES: Readonly<Record<ColumnType, string>> = {
  VARCHAR: 'string',
  BIGINT: 'bigint',
  DOUBLE: 'double',
  BOOLEAN: 'boolean',
  DATE: 'date',
  TIMESTAMP: 'timestamp',
  'VARCHAR[]': 'array<string>',
  'BIGINT[]': 'array<bigint>',
  'DOUBLE[]': 'array<double>',
};

/** A Glue name: lowercase, `_` for `-` (Athena does not accept `-` in unquoted names). */
export const glueName = (name: string) => name.toLowerCase().replaceAll('-', '_');

/** The Glue table of a silver table: `<dataset_with_underscores>__<table>`, e.g. `tic_in_network___quarantine`. */
export const glueTableName = (dataset: string, table: string) => `${glueName(dataset)}__${table}`;

/** The silver tables of a dataset as the catalog holds them: the contract's tables and the quarantine table. */
export function catalogTables(dataset: string): readonly TableSpec[] {
  const contract = silverContractFor(dataset);
  return contract ? [...contract.tables, quarantineTable] : [];
}

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
 * Makes silver queryable with Athena: a Glue database with one table per silver table of each deployed
 * dataset, and a workgroup whose results are encrypted with the lake's key.
 *
 * The columns come only from the dataset contracts (`TableSpec.columns` + `LINEAGE_COLUMNS`, the same
 * list the Parquet writer uses), so the catalog cannot drift from the files.
 *
 * Partitions: none. Silver writes `silver/<dataset>/<table>/source=<id>/part-00000.parquet`, and each
 * table's LOCATION is `silver/<dataset>/<table>/`. For a non-partitioned table Athena lists and reads
 * every file under the LOCATION, subfolders included, so every source's part is read with no partition
 * to register: no `MSCK REPAIR TABLE`, no crawler, and a new source is queryable as soon as its part
 * is written. A `source` partition key is not an option anyway: Hive forbids a partition key named like
 * a column, and `tic-in-network`'s `provider_groups` has a `source` column. Projection of an `injected`
 * key would also force every query to name one source. The source id is in every row as `_run_id`, and
 * Athena's `"$path"` pseudo-column gives the file, so filter on `"_run_id" = '<id>'`. Lineage column
 * names start with `_`, so quote them in queries (`"_run_id"`). Athena treats files whose names start
 * with `_` or `.` as hidden; silver's parts are `part-*.parquet`, and its manifests live in
 * `silver/<dataset>/_manifests/`, outside every table's LOCATION, so no table reads them.
 *
 * Query with the workgroup (it is enforced, so a client cannot send results elsewhere or unencrypted):
 * `aws athena start-query-execution --work-group <workgroup> --query-execution-context Database=<db>
 *  --query-string 'SELECT count(*) FROM tic_in_network__negotiated_prices'`.
 */
export class QueryCatalog extends Construct {
  readonly database: CfnDatabase;
  readonly databaseName: string;
  /** The Glue tables, by Glue table name. */
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
    for (const dataset of props.datasets) {
      for (const spec of catalogTables(dataset)) {
        const name = glueTableName(dataset, spec.name);
        const table = new CfnTable(this, `Table-${dataset}-${spec.name}`, {
          catalogId,
          // Ref of the database is its name, and makes CloudFormation create the database first.
          databaseName: this.database.ref,
          tableInput: {
            name,
            description: spec.description,
            tableType: 'EXTERNAL_TABLE',
            parameters: { classification: 'parquet', EXTERNAL: 'TRUE' },
            storageDescriptor: {
              location: props.lakeBucket.s3UrlForObject(`silver/${dataset}/${spec.name}/`),
              columns: [...spec.columns, ...LINEAGE_COLUMNS].map((column) => ({
                name: column.name,
                type: GLUE_TYPES[column.type],
                comment: column.description,
              })),
              inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
              outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
              serdeInfo: {
                serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
              },
            },
          },
        });
        tables.set(name, table);
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
}
