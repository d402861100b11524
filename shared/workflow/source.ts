import { z } from 'zod';

/**
 * An HTTP source the workflow downloads before it ingests (its `Download` state). A scheduled run's
 * execution input is `{ "source": Source }`; it names the source and how its credential is sent, never
 * the credential: the secret's id is derived from the source's name (`sourceSecretId`).
 */

/** How a source's credential is sent (shared/stages/download/credentials.ts). */
export const CREDENTIAL_KINDS = ['bearer', 'basic', 'header', 'query'] as const;

export const SourceCredentials = z
  .object({
    kind: z.enum(CREDENTIAL_KINDS, { error: `use one of ${CREDENTIAL_KINDS.join(', ')}` }),
    /** The header or query parameter name, for kinds `header` and `query`. */
    name: z.string().min(1).optional(),
  })
  .strict();
export type SourceCredentials = z.infer<typeof SourceCredentials>;

/** A source's name: it names its schedule and its secret. */
export const SOURCE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const Source = z.object({
  /** Required for sources with credentials: the secret is derived from it. */
  name: z.string().regex(SOURCE_NAME, 'use 1–63 lowercase letters, digits or "-"').optional(),
  url: z.string().min(1),
  dataset: z.string().min(1),
  sha256: z.string().optional(),
  credentials: SourceCredentials.optional(),
});
export type Source = z.infer<typeof Source>;

/** The event of the `Download` state. */
export const DownloadEvent = z.object({
  source: Source,
  executionId: z.string().min(1).optional(),
});
export type DownloadEvent = z.infer<typeof DownloadEvent>;

/**
 * What `Download` returns (kept at `$.download`): the landed object, shaped into Ingest's input next, or
 * `partial` when the invocation's time ran out first; the workflow then runs `Download` again, which
 * continues from the checkpoint (`DownloadDone?`).
 */
export type DownloadStateOutput = DownloadOutput | DownloadPartialOutput;

/** The download continues in the next invocation, from `checkpointKey`. */
export interface DownloadPartialOutput {
  readonly status: 'partial';
  /** The checkpoint's key in the landing store. */
  readonly checkpointKey: string;
  readonly progress: {
    /** Bytes landed in parts so far. */
    readonly bytes: number;
    /** The body's size, when the server said. */
    readonly totalBytes?: number;
    readonly parts: number;
    /** Invocations so far, this one included. */
    readonly invocations: number;
  };
}

/** The landed object. */
export interface DownloadOutput {
  readonly status: 'landed';
  readonly bucket: string;
  readonly key: string;
  readonly dataset: string;
  /** Whether the dataset has a silver stage (the execution input's `hasSilver`). */
  readonly hasSilver: boolean;
  /** The source's URL with credentials and secret parameters redacted: recorded with the run. */
  readonly url: string;
}

/** The secret of a source with credentials: one per source, `<prefix><source name>`. */
export function sourceSecretId(prefix: string, sourceName: string): string {
  return `${prefix}${sourceName}`;
}
