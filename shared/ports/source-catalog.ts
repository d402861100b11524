import type { SourceVersionRecord } from '../lake/source-commits.ts';

/**
 * A query engine's catalog of the silver tables (on AWS: Glue, read by Athena). After a version is
 * committed, the catalog is told, so the engine reads that source's current files and nothing else:
 * one partition per table and source, pointed at the committed version's folder. Locally there is no
 * catalog: `sluice query` reads the commit records themselves.
 */
export interface SourceCatalog {
  /** Point each table's partition for the record's source at the record's files (create or replace). */
  publish(record: SourceVersionRecord): Promise<void>;
}
