import type { Column, TableInput } from '@aws-sdk/client-glue';
import { silverTablePrefix } from '../../lake/keys.ts';
import { quarantineTable } from '../../stages/silver/quarantine-table.ts';
import { silverContractFor } from '../datasets/silver-contracts.ts';
import { type ColumnType, LINEAGE_COLUMNS, type TableSpec } from './table.ts';

/**
 * How the silver tables appear in the Glue catalog (read by Athena): names, columns, partition keys and
 * formats. One definition, used by the CDK app to create the tables (infra/constructs/query-catalog.ts),
 * by the adapter that registers each committed version's partitions
 * (shared/adapters/aws/glue-source-catalog.ts), and by the tests that create the same tables in moto.
 * Plain data, no CDK: the Reconcile Lambda's bundle imports it.
 */

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

/**
 * The partition key of every table: the source id. Not `source`: Hive forbids a partition key named
 * like a column, and `tic-in-network`'s `provider_groups` has a `source` column.
 */
export const SOURCE_PARTITION_KEY = 'sluice_source';
/** The second partition key of the `_history` tables: the source's version (`sourceVersion`). */
export const VERSION_PARTITION_KEY = 'sluice_version';

/** A Glue name: lowercase, `_` for `-` (Athena does not accept `-` in unquoted names). */
export const glueName = (name: string) => name.toLowerCase().replaceAll('-', '_');

/** The Glue table of a silver table: `<dataset_with_underscores>__<table>`, e.g. `tic_in_network___quarantine`. */
export const glueTableName = (dataset: string, table: string) => `${glueName(dataset)}__${table}`;

/** The Glue table holding every committed version of a silver table: `<glue table>_history`. */
export const glueHistoryTableName = (dataset: string, table: string) =>
  `${glueTableName(dataset, table)}_history`;

/** The silver tables of a dataset as the catalog holds them: the contract's tables and the quarantine table. */
export function catalogTables(dataset: string): readonly TableSpec[] {
  const contract = silverContractFor(dataset);
  return contract ? [...contract.tables, quarantineTable] : [];
}

/** What `glueTableInput` needs besides the table. */
export interface GlueTableInputOptions {
  /** The `s3://` URL of a lake key (in CDK a token, in tests a plain URL). */
  readonly lakeUrl: (key: string) => string;
  /** The `_history` table (partitioned by source and version) rather than the current one. @default false */
  readonly history?: boolean;
}

/**
 * The Glue `TableInput` of a silver table, in the Glue API's shape (which CloudFormation's
 * `AWS::Glue::Table` mirrors). Its LOCATION is the table's folder, but Athena reads only the registered
 * partitions' folders, so nothing is read until a version is committed.
 */
export function glueTableInput(dataset: string, spec: TableSpec, options: GlueTableInputOptions): TableInput {
  const columns = [...spec.columns, ...LINEAGE_COLUMNS];
  const partitionKeys: Column[] = [
    { Name: SOURCE_PARTITION_KEY, Type: 'string', Comment: 'the source id (one logical file)' },
    ...(options.history
      ? [{ Name: VERSION_PARTITION_KEY, Type: 'string', Comment: "the source's version (its content)" }]
      : []),
  ];
  const clash = columns.find((column) => partitionKeys.some((key) => key.Name === column.name));
  if (clash) {
    throw new Error(`${dataset}/${spec.name}: column ${clash.name} is named like a Glue partition key`);
  }
  return {
    Name: options.history ? glueHistoryTableName(dataset, spec.name) : glueTableName(dataset, spec.name),
    Description: options.history
      ? `Every committed version of ${glueTableName(dataset, spec.name)}: ${spec.description}`
      : spec.description,
    TableType: 'EXTERNAL_TABLE',
    Parameters: { classification: 'parquet', EXTERNAL: 'TRUE' },
    PartitionKeys: partitionKeys,
    StorageDescriptor: {
      Location: options.lakeUrl(silverTablePrefix(dataset, spec.name)),
      Columns: columns.map((column) => ({
        Name: column.name,
        Type: GLUE_TYPES[column.type],
        ...(column.description !== undefined && { Comment: column.description }),
      })),
      InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
      OutputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
      SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
    },
  };
}

/** Both Glue tables of every catalog table of a dataset: the current one, then its `_history`. */
export function glueTableInputs(dataset: string, lakeUrl: (key: string) => string): TableInput[] {
  return catalogTables(dataset).flatMap((spec) => [
    glueTableInput(dataset, spec, { lakeUrl }),
    glueTableInput(dataset, spec, { lakeUrl, history: true }),
  ]);
}
