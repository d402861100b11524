import { join } from 'node:path';
import type { TableSpec } from '../../contracts/silver/table.ts';
import { silverBatchFolder } from '../../lake/silver-work-keys.ts';
import type { TableWriteResult, TableWriter, TableWriterFactory } from '../../ports/table-writer.ts';

/** One table's rows of a group: counted, in local Parquet files (none when the group produced no row). */
export interface SilverGroupTable {
  readonly rowsIn: number;
  readonly rowsWritten: number;
  /** In batch order, then bucket order. */
  readonly files: readonly PartialFile[];
  /** What split the files into buckets (`TableWriteResult.bucketHash`), when any was split. */
  readonly bucketHash?: string;
}

/** A partial file: one table's rows of one batch (a bronze part) and, when split, of one merge bucket. */
export interface PartialFile {
  readonly file: string;
  /** The batch, from 0 within its group: the group's `firstPart + batch` is its bronze part. */
  readonly batch: number;
  /** The merge bucket of its rows; absent when the batch's rows were not split (see `mergeBucketOf`). */
  readonly bucket?: number;
}

/**
 * Where a group's rows go: a fresh writer (a batch) per bronze part, of partial files that the merge
 * combines. A writer per part keeps DuckDB as small as one part's rows whatever the size of the file
 * (one thread building a whole 1 GB file peaked at ~2.0 GB RSS with one writer, ~1.1 GB with one per
 * part). With `overlap`, a part's files are written while the next part goes through the contract (at
 * most one finishing): ~10 % faster for a thread with a core to itself, ~300 MB more at peak. Without it,
 * each part's files are written before the next part starts: what worker threads sharing the cores do
 * (measured on 2 cores: +1.2 s of 29 s for the groups, −370 MB peak RSS for the run).
 */
export class SilverGroupOutput {
  private current: TableWriter | undefined;
  private finishing: Promise<void> = Promise.resolve();
  private readonly results: Record<string, TableWriteResult>[] = [];
  /** Every writer opened: the ones not finished are aborted with the group. */
  private readonly writers: TableWriter[] = [];

  constructor(
    private readonly createTableWriter: TableWriterFactory,
    private readonly tables: readonly TableSpec[],
    private readonly workDir: string,
    private readonly overlap: boolean,
    /** Merge buckets a keyed table's rows are split into (see `TableWriterOptions.buckets`). */
    private readonly buckets = 1,
  ) {}

  /** The writer rows go to now. */
  async writer(): Promise<TableWriter> {
    if (!this.current) {
      const dir = join(this.workDir, silverBatchFolder(this.writers.length));
      this.current =
        this.buckets > 1
          ? await this.createTableWriter(this.tables, dir, { buckets: this.buckets })
          : await this.createTableWriter(this.tables, dir);
      this.writers.push(this.current);
    }
    return this.current;
  }

  /** A part is done: its files are written, while the next part is read when overlapping. */
  async partDone(): Promise<void> {
    if (!this.current) return;
    const writer = this.current;
    this.current = undefined;
    // One writer finishing at a time: the next waits, so memory holds at most two parts' rows.
    await this.finishing;
    const finished = writer.finish().then((result) => {
      this.results.push(result);
    });
    // Awaited by the next partDone or by finish; a failure until then must not count as unhandled.
    finished.catch(() => undefined);
    this.finishing = finished;
    if (!this.overlap) await finished;
  }

  /** Every table's rows, files and counts, once all writers have finished. */
  async finish(): Promise<Record<string, SilverGroupTable>> {
    await this.finishing;
    if (this.current) {
      this.results.push(await this.current.finish());
      this.current = undefined;
    }
    const tables: Record<string, SilverGroupTable> = {};
    for (const table of this.tables) {
      const batches = this.results.map((result) => result[table.name]);
      const files: PartialFile[] = [];
      batches.forEach((r, batch) => {
        if (r?.file) files.push({ file: r.file, batch });
        for (const { bucket, file } of r?.bucketFiles ?? []) files.push({ file, batch, bucket });
      });
      const bucketHash = batches.find((r) => r?.bucketHash !== undefined)?.bucketHash;
      tables[table.name] = {
        rowsIn: batches.reduce((sum, r) => sum + (r?.rowsIn ?? 0), 0),
        rowsWritten: batches.reduce((sum, r) => sum + (r?.rowsWritten ?? 0), 0),
        files,
        ...(bucketHash !== undefined && { bucketHash }),
      };
    }
    return tables;
  }

  /** Discards every file of the group. */
  async abort(): Promise<void> {
    await this.finishing.catch(() => undefined);
    // A writer that finished gave its files to the group; the group removes them with its folder.
    await Promise.all(this.writers.map((writer) => writer.abort()));
  }
}
