import { z } from 'zod';
import { BronzePartSchema, JsonKindSchema, SkippedValueSchema } from './bronze-manifest.ts';

/**
 * Where a sliced ingest stopped, stored as one object beside the bronze run it builds
 * (`ingestCheckpointKey`). The next slice — the next Lambda invocation, or a rerun after a crash —
 * continues from it: the parts listed here are durable and final, and reading restarts at `resume`.
 * It travels as an object (tens of KiB with the gzip window), never in the state machine's payload.
 */
export const IngestCheckpoint = z.object({
  checkpointVersion: z.literal(1),
  runId: z.string(),
  /** What the checkpoint is only valid for: the same source version, config and parser. */
  datasetConfigSha256: z.string(),
  parser: z.string(),
  source: z.object({ size: z.number().int().nonnegative(), etag: z.string() }),
  /** Slices completed so far. */
  slices: z.number().int().positive(),
  startedAt: z.string(),
  /** Who wrote it (the lease holder): a slice of another holder that continues it has resumed the run. */
  holder: z.string().optional(),
  /** An earlier slice of the run had resumed it already. */
  resumed: z.boolean().optional(),
  /** Where reading resumes (see SourceResumePoint). */
  resume: z.object({
    position: z.number().int().nonnegative(),
    storedOffset: z.number().int().nonnegative(),
    sha256State: z.string(),
    gunzip: z.string().optional(),
    skip: z.number().int().nonnegative(),
  }),
  /** JSON and NDJSON: the scanner's state at `resume.position` (see ScannerSnapshot). */
  scanner: z
    .object({
      state: z.number().int(),
      offset: z.number().int().nonnegative(),
      containers: z.array(z.number().int()),
      frames: z.array(z.object({ kind: z.number().int(), node: z.number().int(), target: z.number().int() })),
      recordCounts: z.array(z.number().int().nonnegative()),
      headers: z.record(z.string(), z.unknown()),
      /**
       * What the document held along the record paths so far (see JsonRecordScanner.pathValues): required.
       * A checkpoint without it (written before required record paths) cannot decide them, so it does not
       * parse and the run starts over.
       */
      pathValues: z.record(
        z.string(),
        z.object({
          kind: JsonKindSchema,
          offset: z.number().int().nonnegative(),
        }),
      ),
      topLevelKeys: z.array(z.string()),
      topLevelKeyCount: z.number().int().nonnegative(),
      /** Skeleton values no path names (see SkippedValue); absent in checkpoints written before. */
      skipped: z.array(SkippedValueSchema).default([]),
      skippedCount: z.number().int().nonnegative().default(0),
    })
    .optional(),
  /** CSV: the header row's names, and the rows read before `resume.position` (see CsvResume). */
  csv: z.object({ columns: z.array(z.string()), records: z.number().int().nonnegative() }).optional(),
  /** The next segment boundary (uncompressed bytes). */
  nextSegmentAt: z.number().int().positive(),
  /** Next part number per record stream, in record-target order. */
  nextPart: z.array(z.number().int().nonnegative()),
  /** Parts written by the slices so far, all sealed and uploaded. */
  parts: z.array(BronzePartSchema),
});
export type IngestCheckpoint = z.infer<typeof IngestCheckpoint>;
