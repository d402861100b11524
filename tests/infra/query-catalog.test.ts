import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeploymentConfig, loadDeploymentConfig } from '../../infra/config/deployment-config.ts';
import { ATHENA_RESULTS_PREFIX, GLUE_TYPES, glueTableName } from '../../infra/constructs/query-catalog.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';
import { SluiceStack } from '../../infra/stacks/sluice-stack.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { LINEAGE_COLUMNS } from '../../shared/contracts/silver/table.ts';
import { QUARANTINE_TABLE, silverTableKey } from '../../shared/lake/keys.ts';
import { quarantineTable } from '../../shared/stages/silver/build-silver.ts';

// biome-ignore lint/suspicious/noExplicitAny: a synthesized template is untyped JSON; the assertions check its shape.
type Json = any;
type Resource = { Type: string; Properties: Record<string, Json> };

/** A CloudFormation value with its tokens replaced by `<TOKEN>`, as plain text. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => (typeof part === 'string' ? part : '<TOKEN>')).join(join[0]);
  return '<TOKEN>';
}

/** One synthesis of the example deployment, shared by every test in this file. */
let outdir: string;
let config: DeploymentConfig;
let stack: SluiceStack;
let resources: Record<string, Resource>;

const ofType = (type: string) => Object.values(resources).filter((r) => r.Type === type);
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);
const glueTable = (name: string) =>
  ofType('AWS::Glue::Table').find((r) => r.Properties.TableInput.Name === name);

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'sluice-cdk-'));
  const cdkJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8'));
  const app = new App({ outdir, context: cdkJson.context });
  config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
  stack = new SluiceStack(app, 'SluiceTest', { config });
  resources = Template.fromStack(stack).toJSON().Resources;
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('Construct: QueryCatalog (example config)', () => {
  const deployedWithContract = () =>
    config.datasets.map((d) => d.name).filter((name) => silverContractFor(name) !== undefined);

  it('creates one Glue database named after the stack, lowercase with _ for -', () => {
    const databases = ofType('AWS::Glue::Database');
    expect(databases).toHaveLength(1);
    const name = config.stackName.toLowerCase().replaceAll('-', '_');
    expect(databases[0]!.Properties.DatabaseInput.Name).toBe(name);
    expect(name).toBe('sluice_dev');
  });

  it('deploys at least one dataset with a silver contract (else the table tests prove nothing)', () => {
    expect(deployedWithContract().length).toBeGreaterThan(0);
  });

  it('has one table per contract table and quarantine table of each deployed dataset, and no other', () => {
    const expected = deployedWithContract().flatMap((dataset) =>
      [...silverContractFor(dataset)!.tables.map((t) => t.name), QUARANTINE_TABLE].map((table) =>
        glueTableName(dataset, table),
      ),
    );
    const actual = ofType('AWS::Glue::Table').map((r) => r.Properties.TableInput.Name);
    expect(actual.sort()).toEqual([...expected].sort());
    expect(actual).toContain('tic_in_network__negotiated_prices');
    expect(actual).toContain('tic_in_network___quarantine');
  });

  it('gives each table exactly the contract columns and the lineage columns, with their Glue types', () => {
    const database = stack.getLogicalId(stack.queryCatalog.database);
    for (const dataset of deployedWithContract()) {
      for (const spec of [...silverContractFor(dataset)!.tables, quarantineTable]) {
        const resource = glueTable(glueTableName(dataset, spec.name));
        expect(resource, `${dataset}/${spec.name}`).toBeDefined();
        const input = resource!.Properties.TableInput;
        expect(resource!.Properties.DatabaseName).toEqual({ Ref: database });
        expect(input.TableType).toBe('EXTERNAL_TABLE');
        expect(input.PartitionKeys).toBeUndefined();
        expect(input.StorageDescriptor.Columns.map((c: Json) => ({ name: c.Name, type: c.Type }))).toEqual(
          [...spec.columns, ...LINEAGE_COLUMNS].map((c) => ({ name: c.name, type: GLUE_TYPES[c.type] })),
        );
      }
    }
  });

  it('maps the silver types to Glue types (negotiated_prices)', () => {
    const columns: Json[] = glueTable('tic_in_network__negotiated_prices')!.Properties.TableInput
      .StorageDescriptor.Columns;
    const type = (name: string) => columns.find((c) => c.Name === name)?.Type;
    expect(type('negotiated_rate')).toBe('double');
    expect(type('expiration_date')).toBe('date');
    expect(type('service_code')).toBe('array<string>');
    expect(type('billing_code')).toBe('string');
    expect(type('_record_index')).toBe('bigint');
    expect(type('_run_id')).toBe('string');
  });

  it('reads Parquet from the folder silver writes each table to, in the lake bucket', () => {
    const lake = logicalId(stack.storage.lakeBucket);
    for (const dataset of deployedWithContract()) {
      for (const spec of [...silverContractFor(dataset)!.tables, quarantineTable]) {
        const descriptor = glueTable(glueTableName(dataset, spec.name))!.Properties.TableInput
          .StorageDescriptor;
        expect(descriptor.InputFormat).toBe('org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat');
        expect(descriptor.OutputFormat).toBe(
          'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
        );
        expect(descriptor.SerdeInfo.SerializationLibrary).toBe(
          'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
        );
        const location = descriptor.Location;
        expect(flatten(location)).toBe(`s3://<TOKEN>/silver/${dataset}/${spec.name}/`);
        expect(JSON.stringify(location)).toContain(`"Ref":"${lake}"`);
        // Every part silver writes for the table lies under its location.
        expect(
          silverTableKey({ dataset, sourceId: 's-abc123', version: 'v', build: 'b' }, spec.name),
        ).toMatch(new RegExp(`^silver/${dataset}/${spec.name}/[^/]+/[^/]+/[^/]+/[^/]+\\.parquet$`));
      }
    }
  });

  it('has an Athena workgroup that enforces its config and encrypts results with the lake key', () => {
    const workGroups = ofType('AWS::Athena::WorkGroup');
    expect(workGroups).toHaveLength(1);
    const wg = workGroups[0]!.Properties.WorkGroupConfiguration;
    expect(wg.EnforceWorkGroupConfiguration).toBe(true);
    expect(wg.PublishCloudWatchMetricsEnabled).toBe(true);
    expect(wg.ResultConfiguration.EncryptionConfiguration).toEqual({
      EncryptionOption: 'SSE_KMS',
      KmsKey: { 'Fn::GetAtt': [logicalId(stack.storage.key), 'Arn'] },
    });
    expect(flatten(wg.ResultConfiguration.OutputLocation)).toBe(`s3://<TOKEN>/${ATHENA_RESULTS_PREFIX}`);
    expect(JSON.stringify(wg.ResultConfiguration.OutputLocation)).toContain(
      `"Ref":"${logicalId(stack.storage.lakeBucket)}"`,
    );
  });

  it('expires query results in the lake, leaving the lake rules before it as they were', () => {
    const rules: Json[] =
      resources[logicalId(stack.storage.lakeBucket)]!.Properties.LifecycleConfiguration.Rules;
    expect(rules[0].Id).toBe('expire-old-versions');
    expect(rules).toContainEqual(
      expect.objectContaining({
        Id: 'expire-athena-results',
        Prefix: ATHENA_RESULTS_PREFIX,
        ExpirationInDays: 30,
      }),
    );
  });

  it('passes the AWS Solutions checks (cdk-nag)', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations).toEqual([]);
    expect(report.success).toBe(true);
  });
});
