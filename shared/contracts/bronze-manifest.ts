import { z } from 'zod';
import { ParseSettings } from './dataset-config.ts';

/** Bumped whenever the bronze line format or the scanner's accept/reject decisions change. */
export const PARSER_VERSION = 'sluice-scanner/3';

export const BronzePartSchema = z.object({
  key: z.string(),
  recordName: z.string(),
  part: z.number().int().nonnegative(),
  firstRecordIndex: z.number().int().nonnegative(),
  records: z.number().int().nonnegative(),
  uncompressedBytes: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** The JSON type of a value, as the scanner names it (see JsonKind). */
export const JsonKindSchema = z.enum(['object', 'array', 'string', 'number', 'boolean', 'null']);

/** A value of the document the run did not read into bronze (see SkippedValue). */
export const SkippedValueSchema = z.object({
  path: z.string(),
  kind: JsonKindSchema,
  offset: z.number().int().nonnegative(),
  repeated: z.literal(true).optional(),
});

/**
 * The commit marker of a bronze run, written last. Readers trust a bronze run only through its
 * manifest: the parts it lists, with their counts and checksums. Everything but `timings` is a pure
 * function of the source bytes and the dataset config, so a rerun writes the same manifest.
 */
export const BronzeManifest = z.object({
  manifestVersion: z.literal(2),
  /** This run: one stored object of the source (`bronzeRunId`). */
  runId: z.string(),
  dataset: z.string(),
  /** The logical file (`sourceId` of `source.uri`): every version of it shares this id. */
  sourceId: z.string(),
  /** The source's version: its content (`sourceVersion` of `source.sha256`). */
  version: z.string(),
  datasetConfigSha256: z.string(),
  /**
   * How the source was read into records (format, record paths, headers, CSV dialect): a rebuild under a
   * config that reads it otherwise is refused. Absent in manifests written before it was recorded.
   */
  parse: ParseSettings.optional(),
  source: z.object({
    /** Where the bytes were read from: a local path or `s3://bucket/key` (for a download, the landed object). */
    uri: z.string(),
    /** For a download: the URL it came from, without credentials. */
    url: z.string().optional(),
    size: z.number().int().nonnegative(),
    etag: z.string(),
    sha256: z.string(),
    compression: z.enum(['gzip', 'none']),
    format: z.enum(['json', 'ndjson', 'csv']),
    uncompressedBytes: z.number().int().nonnegative(),
  }),
  headers: z.record(z.string(), z.unknown()),
  records: z.record(z.string(), z.number().int().nonnegative()),
  /**
   * Values of the document that no record or header path names (`$.out_of_network` in an in-network
   * file): none of them is in bronze, so silver reports each. `values` holds the first per path, `count`
   * every one. Absent when there were none.
   */
  skipped: z.object({ count: z.number().int().positive(), values: z.array(SkippedValueSchema) }).optional(),
  parts: z.array(BronzePartSchema),
  parser: z.string(),
  /**
   * Whether the dataset has a silver stage. Without one this manifest is the run's commit; with one the
   * run commits after its reconciliation. Absent in manifests written before it was recorded.
   */
  silver: z.boolean().optional(),
  timings: z.object({
    startedAt: z.string(),
    finishedAt: z.string(),
    durationMs: z.number(),
    /**
     * The parse continued from a checkpoint that an interrupted run left: another lease holder (locally,
     * another `sluice run` process). Absent in manifests written before it was recorded.
     */
    resumed: z.boolean().optional(),
  }),
});
export type BronzeManifest = z.infer<typeof BronzeManifest>;
