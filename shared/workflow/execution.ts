import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * What starts one run of the workflow: its input and its name. The trigger (a landed object) and the
 * workflow's first stage meet here, so both sides read one definition.
 */

/** The input of one execution: which landed object to ingest, as which dataset. */
export const ExecutionInput = z.object({
  /** The landing bucket. */
  bucket: z.string().min(1),
  /** The landed object's key, `<dataset>/<anything>`. */
  key: z.string().min(1),
  /** The dataset named by the key's first segment; `''` when the key has none (the run then fails). */
  dataset: z.string(),
  /**
   * `false` for a dataset without a silver contract: the workflow stops after bronze (its `HasSilver`
   * choice). Absent means true, so inputs written before the flag existed (and the trigger's, since
   * every dataset a deployment accepts has a contract) still run every stage.
   */
  hasSilver: z.boolean().optional(),
  /**
   * `false` skips a table of contents' fan-out (the workflow's `HasFanOut` choice): the table is ingested,
   * the files it lists are not. Absent means true. An execution started with `{ source }` may carry it too.
   */
  fanOut: z.boolean().optional(),
});
export type ExecutionInput = z.infer<typeof ExecutionInput>;

/**
 * What a rebuild execution is asked to rebuild: one committed source of a dataset, its silver and
 * reconciliation built again from the bronze it committed, without reading the source
 * (`{ "rebuild": { "dataset": "tic-in-network", "source": "<source id>" } }`; `sluice rebuild` locally).
 */
export const RebuildRequest = z.object({
  dataset: z.string().min(1),
  /** The source id, as `_sources/<dataset>/source=<id>/` and `sluice runs` name it. */
  source: z.string().min(1),
  /** Rebuild even when the source's current build is the one this config and contract make. */
  force: z.boolean().optional(),
});
export type RebuildRequest = z.infer<typeof RebuildRequest>;

/**
 * The input of a rebuild execution: the workflow's first choice sends it to `PlanRebuild` and the silver
 * stages, skipping `Download` and `Ingest`.
 */
export const RebuildInput = z.object({ rebuild: RebuildRequest });
export type RebuildInput = z.infer<typeof RebuildInput>;

/**
 * The dataset a landing key names: its first `/`-separated segment (`tic-in-network/2026/x.json.gz`).
 * A key without a `/` names no dataset and yields `''`, which no deployment accepts.
 */
export function landingDataset(key: string): string {
  const slash = key.indexOf('/');
  return slash > 0 ? key.slice(0, slash) : '';
}

/** One version of one landed object, as an `Object Created` event describes it. */
export interface LandedObject {
  readonly bucket: string;
  readonly key: string;
  /** S3 version id; present on versioned buckets, which landing is. */
  readonly versionId?: string;
  /** Content hash S3 reports; identifies the version when there is no version id. */
  readonly etag?: string;
}

/** Step Functions' limit on execution names. */
export const MAX_EXECUTION_NAME_LENGTH = 80;
/** Hex digits of the hash in a name: 128 bits, so distinct versions never collide in practice. */
const HASH_LENGTH = 32;

/**
 * A deterministic execution name for one object version: a readable part (dataset and file name) and
 * a hash of bucket, key, version id and ETag. Step Functions refuses a second execution of the same
 * name, so a duplicated `Object Created` delivery starts one run, while a new version of the same key
 * (new version id) starts another. Only `A-Z a-z 0-9 - _` are used: the names also appear in CloudWatch
 * Logs and X-Ray, which reject some characters Step Functions itself would allow.
 */
export function executionName(object: LandedObject): string {
  if (!object.versionId && !object.etag) {
    throw new TypeError(
      `cannot name an execution for s3://${object.bucket}/${object.key}: no version id or ETag`,
    );
  }
  const hash = createHash('sha256')
    .update([object.bucket, object.key, object.versionId ?? '', object.etag ?? ''].join('\0'))
    .digest('hex')
    .slice(0, HASH_LENGTH);
  const fileName = object.key.split('/').at(-1) ?? '';
  const readable = `${landingDataset(object.key)}-${fileName}`
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+/, '')
    .slice(0, MAX_EXECUTION_NAME_LENGTH - HASH_LENGTH - 1)
    .replace(/-+$/, '');
  return readable ? `${readable}-${hash}` : hash;
}

/** The name of an execution, from its id (ARN): its last `:` segment. */
export function executionNameOf(executionId: string): string {
  return executionId.slice(executionId.lastIndexOf(':') + 1);
}
