import { posix } from 'node:path';
import {
  CreatePartitionCommand,
  DeletePartitionCommand,
  GetPartitionCommand,
  GetTableCommand,
  GlueClient,
  type Partition,
  type PartitionInput,
  type Table,
  UpdatePartitionCommand,
} from '@aws-sdk/client-glue';
import { catalogTables, glueHistoryTableName, glueTableName } from '../../contracts/silver/glue-catalog.ts';
import { CatalogError } from '../../errors.ts';
import type { SourceVersionRecord } from '../../lake/source-commits.ts';
import type { SourceCatalog } from '../../ports/source-catalog.ts';

/** Partition parameters that say which commit registered a partition. */
const VERSION_PARAMETER = 'sluice_version';
const COMMITTED_AT_PARAMETER = 'sluice_committed_at';

/** Options of `GlueSourceCatalog`. */
export interface GlueSourceCatalogOptions {
  readonly client: GlueClient;
  /** The Glue database of the silver tables (`QueryCatalog.databaseName`). */
  readonly databaseName: string;
  /** The lake bucket the silver files are in. */
  readonly lakeBucket: string;
}

/**
 * The Glue catalog of the silver tables (see infra/constructs/query-catalog.ts), kept to the committed
 * versions: for each table of the record's dataset, the source's partition of the current table is
 * created at, or moved to, the folder of the record's file (one UpdatePartition per table: a query of
 * the table sees the old version or the new one, never both), or removed when the version has no rows
 * in that table; the `_history` table gets the (source, version) partition. History goes first, so a
 * publish that fails part-way has moved nothing readers query by default; a retry completes it.
 *
 * Idempotent: a partition already where the record says is left alone, so a retried publish changes
 * nothing. Each partition records the commit that placed it (`sluice_version`, `sluice_committed_at`):
 * once a later commit of the source has published, a stale retry of an earlier one changes nothing.
 */
export class GlueSourceCatalog implements SourceCatalog {
  readonly #client: GlueClient;
  readonly #database: string;
  readonly #bucket: string;
  /** GetTable per table, once per instance (a cold start): the tables change only with a deployment. */
  readonly #tables = new Map<string, Promise<Table>>();

  constructor(options: GlueSourceCatalogOptions) {
    this.#client = options.client;
    this.#database = options.databaseName;
    this.#bucket = options.lakeBucket;
  }

  async publish(record: SourceVersionRecord): Promise<void> {
    const specs = catalogTables(record.dataset);
    const folderOf = (table: string) => {
      // A table's files of one build share its folder, the partition's location.
      const key = record.tables[table]?.[0];
      return key === undefined ? undefined : `s3://${this.#bucket}/${posix.dirname(key)}/`;
    };
    for (const spec of specs) {
      const location = folderOf(spec.name);
      if (location === undefined) continue; // no rows in this version: nothing to keep
      const table = glueHistoryTableName(record.dataset, spec.name);
      const values = [record.sourceId, record.version];
      const existing = await this.#getPartition(table, values);
      if (existing && isNewer(existing, record)) continue; // the version was rebuilt and committed later
      await this.#place(table, values, location, record, existing);
    }
    const current: { table: string; location?: string; existing?: Partition }[] = [];
    for (const spec of specs) {
      const table = glueTableName(record.dataset, spec.name);
      current.push({
        table,
        location: folderOf(spec.name),
        existing: await this.#getPartition(table, [record.sourceId]),
      });
    }
    // A later commit of this source has published already: this is a stale retry, which must neither move
    // a partition back nor bring back one that the later version removed.
    if (current.some(({ existing }) => existing && isNewer(existing, record))) return;
    for (const { table, location, existing } of current) {
      if (location !== undefined) await this.#place(table, [record.sourceId], location, record, existing);
      else if (existing) await this.#remove(table, [record.sourceId]);
    }
  }

  /** Creates the partition at `location`, or moves it there; `existing` is the partition as read before. */
  async #place(
    table: string,
    values: string[],
    location: string,
    record: SourceVersionRecord,
    existing: Partition | undefined,
  ): Promise<void> {
    if (existing && isSame(existing, location, record)) return;
    const input: PartitionInput = {
      Values: values,
      StorageDescriptor: { ...(await this.#getTable(table)).StorageDescriptor, Location: location },
      Parameters: { [VERSION_PARAMETER]: record.version, [COMMITTED_AT_PARAMETER]: record.committedAt },
    };
    if (!existing) {
      try {
        await this.#call('glue:CreatePartition', table, () =>
          this.#client.send(
            new CreatePartitionCommand({
              DatabaseName: this.#database,
              TableName: table,
              PartitionInput: input,
            }),
          ),
        );
        return;
      } catch (error) {
        // Created meanwhile (a concurrent retry): move it like any existing partition.
        if (errorName(error) !== 'AlreadyExistsException') throw error;
      }
    }
    await this.#call('glue:UpdatePartition', table, () =>
      this.#client.send(
        new UpdatePartitionCommand({
          DatabaseName: this.#database,
          TableName: table,
          PartitionValueList: values,
          PartitionInput: input,
        }),
      ),
    );
  }

  /** Removes the partition: the record's version has no rows in this table. */
  async #remove(table: string, values: string[]): Promise<void> {
    try {
      await this.#call('glue:DeletePartition', table, () =>
        this.#client.send(
          new DeletePartitionCommand({
            DatabaseName: this.#database,
            TableName: table,
            PartitionValues: values,
          }),
        ),
      );
    } catch (error) {
      if (errorName(error) !== 'EntityNotFoundException') throw error;
    }
  }

  async #getPartition(table: string, values: string[]): Promise<Partition | undefined> {
    try {
      const out = await this.#call('glue:GetPartition', table, () =>
        this.#client.send(
          new GetPartitionCommand({
            DatabaseName: this.#database,
            TableName: table,
            PartitionValues: values,
          }),
        ),
      );
      return out.Partition;
    } catch (error) {
      if (errorName(error) === 'EntityNotFoundException') {
        // The partition is absent, or the table itself: GetTable tells which.
        await this.#getTable(table);
        return undefined;
      }
      throw error;
    }
  }

  #getTable(table: string): Promise<Table> {
    let cached = this.#tables.get(table);
    if (!cached) {
      cached = this.#call('glue:GetTable', table, async () => {
        try {
          const out = await this.#client.send(
            new GetTableCommand({ DatabaseName: this.#database, Name: table }),
          );
          if (!out.Table?.StorageDescriptor) throw new Error('GetTable returned no storage descriptor');
          return out.Table;
        } catch (error) {
          if (errorName(error) !== 'EntityNotFoundException') throw error;
          throw new CatalogError(
            'glue:GetTable',
            `${this.#database}.${table}`,
            'no such table: the stack deploys one per silver table of each deployed dataset; deploy it ' +
              '(or check GLUE_DATABASE)',
            { cause: error },
          );
        }
      });
      // A failed lookup is not kept: the next publish asks again.
      cached.catch(() => this.#tables.delete(table));
      this.#tables.set(table, cached);
    }
    return cached;
  }

  /** Runs one Glue call, turning a denied one into a `CatalogError` naming the action and table. */
  async #call<T>(action: string, table: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (errorName(error) !== 'AccessDeniedException') throw error;
      throw new CatalogError(
        action,
        `${this.#database}.${table}`,
        "access denied: the Reconcile function's role needs it on the catalog, the database and the " +
          'table (QueryCatalog.grantPublishPartitions, infra/constructs/query-catalog.ts); redeploy',
        { cause: error },
      );
    }
  }
}

/** A Glue client for sluice (credentials from the SDK's provider chain). */
export function createGlueClient(options: { readonly region?: string } = {}): GlueClient {
  return new GlueClient(options.region === undefined ? {} : { region: options.region });
}

const errorName = (error: unknown) => (error as { name?: unknown } | undefined)?.name;

/** Registered by a commit later than the record's. */
function isNewer(partition: Partition, record: SourceVersionRecord): boolean {
  const committedAt = partition.Parameters?.[COMMITTED_AT_PARAMETER];
  return committedAt !== undefined && committedAt > record.committedAt;
}

/** Already where, and as, the record would put it. */
function isSame(partition: Partition, location: string, record: SourceVersionRecord): boolean {
  return (
    partition.StorageDescriptor?.Location === location &&
    partition.Parameters?.[VERSION_PARAMETER] === record.version &&
    partition.Parameters?.[COMMITTED_AT_PARAMETER] === record.committedAt
  );
}
