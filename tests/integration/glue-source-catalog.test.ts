import {
  CreateDatabaseCommand,
  CreateTableCommand,
  GetPartitionCommand,
  GetPartitionsCommand,
  GlueClient,
  type Partition,
} from '@aws-sdk/client-glue';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GlueSourceCatalog } from '../../shared/adapters/aws/glue-source-catalog.ts';
import {
  catalogTables,
  glueHistoryTableName,
  glueTableInputs,
  glueTableName,
} from '../../shared/contracts/silver/glue-catalog.ts';
import { CatalogError } from '../../shared/errors.ts';
import { silverTableKey } from '../../shared/lake/keys.ts';
import type { SourceVersionRecord } from '../../shared/lake/source-commits.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

const SKIP = motoSkipReason();
const DATASET = 'tic-in-network';
const DATABASE = 'sluice_test';
const BUCKET = 'lake';
const BUILD = 'cafe0001';

/** A committed version of a source whose files are in `tables` (a table without rows is left out). */
function versionRecord(
  sourceId: string,
  version: string,
  tables: readonly string[],
  committedAt: string,
  dataset = DATASET,
): SourceVersionRecord {
  const ref = { dataset, sourceId, version, build: BUILD };
  return {
    commitVersion: 1,
    dataset,
    sourceId,
    version,
    sha256: `${version}${'0'.repeat(48)}`,
    uri: `s3://landing/${dataset}/${sourceId}.json`,
    size: 1,
    runId: `${sourceId}-00000000`,
    bronzeManifestKey: `bronze/${dataset}/source=${sourceId}/run=${sourceId}-00000000/_manifest.json`,
    datasetConfigSha256: `${BUILD}${'0'.repeat(56)}`,
    tables: Object.fromEntries(tables.map((table) => [table, [silverTableKey(ref, table)]])),
    committedAt,
    seenAs: [],
  };
}

/** The folder a partition of this version must point at. */
const folder = (sourceId: string, version: string, table: string) =>
  `s3://${BUCKET}/${silverTableKey({ dataset: DATASET, sourceId, version, build: BUILD }, table).replace(/part-00000\.parquet$/, '')}`;

describe.skipIf(SKIP !== undefined)(
  `Class: GlueSourceCatalog on moto_server${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    let server: MotoServer;
    let glue: GlueClient;
    /** The Glue operations sent through `glue`, in order. */
    const sent: string[] = [];
    const tables = catalogTables(DATASET).map((spec) => spec.name);
    // Version A has rows in every table but the quarantine; B none in provider_groups either.
    const [SOURCE, OTHER] = ['in-network-rates.json-0123456789ab', 'in-network-rates.json-ba9876543210'];
    const inA = tables.filter((table) => table !== '_quarantine');
    const inB = inA.filter((table) => table !== 'provider_groups');
    const recordA = versionRecord(SOURCE, 'aaaaaaaaaaaaaaaa', inA, '2026-01-01T00:00:00.000Z');
    const recordB = versionRecord(SOURCE, 'bbbbbbbbbbbbbbbb', inB, '2026-02-01T00:00:00.000Z');

    const catalog = () => new GlueSourceCatalog({ client: glue, databaseName: DATABASE, lakeBucket: BUCKET });

    async function partition(table: string, values: string[]): Promise<Partition | undefined> {
      try {
        const out = await glue.send(
          new GetPartitionCommand({ DatabaseName: DATABASE, TableName: table, PartitionValues: values }),
        );
        return out.Partition;
      } catch (error) {
        if ((error as Error).name === 'EntityNotFoundException') return undefined;
        throw error;
      }
    }

    /** Every partition of a table: its values and location. */
    async function partitions(table: string): Promise<{ values: string[]; location: string }[]> {
      const out = await glue.send(new GetPartitionsCommand({ DatabaseName: DATABASE, TableName: table }));
      return (out.Partitions ?? [])
        .map((p) => ({ values: p.Values ?? [], location: p.StorageDescriptor?.Location ?? '' }))
        .sort((a, b) => a.values.join('/').localeCompare(b.values.join('/')));
    }

    beforeAll(async () => {
      server = await startMotoServer();
      glue = new GlueClient({
        region: 'us-east-1',
        endpoint: server.endpoint,
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      });
      glue.middlewareStack.add(
        (next, context) => (args) => {
          sent.push(context.commandName ?? '?');
          return next(args);
        },
        { step: 'initialize', name: 'recordGlueCommands' },
      );
      // The very tables the CDK app creates (query-catalog.ts builds each with glueTableInput too).
      await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: DATABASE } }));
      for (const input of glueTableInputs(DATASET, (key) => `s3://${BUCKET}/${key}`)) {
        await glue.send(new CreateTableCommand({ DatabaseName: DATABASE, TableInput: input }));
      }
    });
    afterAll(async () => {
      glue?.destroy();
      await server?.stop();
    });

    it('registers version A: a partition per table with a file, at its folder, in the current and _history tables', async () => {
      await catalog().publish(recordA);
      for (const table of inA) {
        const current = await partition(glueTableName(DATASET, table), [SOURCE]);
        expect(current?.StorageDescriptor?.Location, table).toBe(folder(SOURCE, recordA.version, table));
        expect(current?.Parameters).toMatchObject({ sluice_version: recordA.version });
        const history = await partition(glueHistoryTableName(DATASET, table), [SOURCE, recordA.version]);
        expect(history?.StorageDescriptor?.Location, table).toBe(folder(SOURCE, recordA.version, table));
      }
      // No rows in the quarantine: no partition, so Athena reads nothing there for this source.
      expect(await partitions(glueTableName(DATASET, '_quarantine'))).toEqual([]);
      expect(await partitions(glueHistoryTableName(DATASET, '_quarantine'))).toEqual([]);
    });

    it("copies the table's storage descriptor (columns, formats, serde) into the partition, with its own location", async () => {
      const current = await partition(glueTableName(DATASET, 'negotiated_prices'), [SOURCE]);
      const descriptor = current!.StorageDescriptor!;
      expect(descriptor.SerdeInfo?.SerializationLibrary).toBe(
        'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
      );
      expect(descriptor.InputFormat).toBe('org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat');
      const spec = catalogTables(DATASET).find((t) => t.name === 'negotiated_prices')!;
      expect(descriptor.Columns?.map((c) => c.Name)).toEqual([
        ...spec.columns.map((c) => c.name),
        '_run_id',
        '_bronze_part',
        '_record_index',
      ]);
    });

    it('moves each current partition to version B, keeps both versions in _history, and drops the partition of a table B has no rows in', async () => {
      await catalog().publish(recordB);
      for (const table of inB) {
        expect(await partitions(glueTableName(DATASET, table)), table).toEqual([
          { values: [SOURCE], location: folder(SOURCE, recordB.version, table) },
        ]);
        expect(await partitions(glueHistoryTableName(DATASET, table)), table).toEqual([
          { values: [SOURCE, recordA.version], location: folder(SOURCE, recordA.version, table) },
          { values: [SOURCE, recordB.version], location: folder(SOURCE, recordB.version, table) },
        ]);
      }
      // A's provider groups must vanish from the current table; its history keeps them.
      expect(await partitions(glueTableName(DATASET, 'provider_groups'))).toEqual([]);
      expect(await partitions(glueHistoryTableName(DATASET, 'provider_groups'))).toEqual([
        {
          values: [SOURCE, recordA.version],
          location: folder(SOURCE, recordA.version, 'provider_groups'),
        },
      ]);
    });

    it('changes nothing when B is published again (a retried commit), only reads', async () => {
      const before = await Promise.all(tables.map((t) => partitions(glueTableName(DATASET, t))));
      sent.length = 0;
      await catalog().publish(recordB);
      expect(sent.length).toBeGreaterThan(0);
      expect(new Set(sent)).toEqual(new Set(['GetPartitionCommand', 'GetTableCommand']));
      expect(await Promise.all(tables.map((t) => partitions(glueTableName(DATASET, t))))).toEqual(before);
    });

    it('never moves a partition back to A, nor brings back one B removed, when a stale publish of A comes after B', async () => {
      sent.length = 0;
      await catalog().publish(recordA);
      expect(sent.filter((name) => !name.startsWith('Get'))).toEqual([]);
      const current = await partition(glueTableName(DATASET, 'negotiated_prices'), [SOURCE]);
      expect(current?.StorageDescriptor?.Location).toBe(folder(SOURCE, recordB.version, 'negotiated_prices'));
      // Nor brings back the partition B removed.
      expect(await partitions(glueTableName(DATASET, 'provider_groups'))).toEqual([]);
    });

    it('gives a second source its own partition, leaving the first as it was', async () => {
      const other = versionRecord(OTHER, 'cccccccccccccccc', ['files'], '2026-03-01T00:00:00.000Z');
      await catalog().publish(other);
      expect(await partitions(glueTableName(DATASET, 'files'))).toEqual([
        { values: [SOURCE], location: folder(SOURCE, recordB.version, 'files') },
        { values: [OTHER], location: folder(OTHER, other.version, 'files') },
      ]);
      expect(await partitions(glueTableName(DATASET, 'negotiated_prices'))).toEqual([
        { values: [SOURCE], location: folder(SOURCE, recordB.version, 'negotiated_prices') },
      ]);
    });

    it('fails with a CatalogError naming the table when the Glue table is not deployed', async () => {
      const record = versionRecord(
        SOURCE,
        'dddddddddddddddd',
        ['files'],
        '2026-04-01T00:00:00.000Z',
        'tic-table-of-contents',
      );
      const error = await catalog()
        .publish(record)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CatalogError);
      expect((error as CatalogError).message).toMatch(
        /glue:GetTable on sluice_test\.tic_table_of_contents__\w+: no such table/,
      );
    });
  },
);

describe('Class: GlueSourceCatalog (a role without the permission)', () => {
  it('fails with a CatalogError naming the denied action and table', async () => {
    const denied = {
      send: async () => {
        throw Object.assign(new Error('User is not authorized to perform: glue:GetPartition'), {
          name: 'AccessDeniedException',
        });
      },
    } as unknown as GlueClient;
    const catalog = new GlueSourceCatalog({ client: denied, databaseName: DATABASE, lakeBucket: BUCKET });
    const record = versionRecord('s-1', 'aaaaaaaaaaaaaaaa', ['files'], '2026-01-01T00:00:00.000Z');
    const error = await catalog.publish(record).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CatalogError);
    expect(error).toMatchObject({
      name: 'CatalogError',
      action: 'glue:GetPartition',
      table: `${DATABASE}.${glueHistoryTableName(DATASET, 'files')}`,
    });
    expect((error as Error).message).toMatch(/access denied: the Reconcile function's role needs it/);
    expect((error as Error).cause).toMatchObject({ name: 'AccessDeniedException' });
  });
});
