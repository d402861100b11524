import { z } from 'zod';
import { explainIssues } from '../contracts/dataset-config.ts';
import type { LandingQueue } from '../ports/landing-queue.ts';
import type { StartRequest } from '../ports/workflow-executions.ts';
import { DOWNLOADS_PREFIX } from '../stages/download/landing-key.ts';
import { type ExecutionInput, executionName, landingDataset } from './execution.ts';
import { type DeferReason, type PacingDeps, type PacingLimits, paceStarts } from './pacing.ts';

/**
 * Landing events -> executions, a queue batch at a time: each S3 `Object Created` event (EventBridge's,
 * delivered through the landing queue) becomes a paced start of the execution for that object version.
 * Nothing is dropped: an event is started, found already started, skipped on purpose (folder markers,
 * downloads), put back in the queue for later, or reported failed so the queue delivers it again and,
 * after its last receive, moves it to its dead-letter queue.
 *
 * Deferred events are sent again (with a delay) rather than left to reappear: SQS counts every receive
 * toward the dead-letter queue's `maxReceiveCount`, and a file waiting behind a long backlog is not a
 * failure. Receives are left to count real failures.
 */

/** The part of an EventBridge S3 `Object Created` event the starter reads. */
export const ObjectCreatedEvent = z.object({
  'detail-type': z.literal('Object Created'),
  detail: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z
      .object({
        key: z.string().min(1),
        'version-id': z.string().min(1).optional(),
        etag: z.string().optional(),
      })
      // The execution's name needs one of them (executionName). Checked here, per event, so that such an
      // event is reported failed by itself instead of throwing, which would fail its whole batch.
      .refine((object) => Boolean(object['version-id'] || object.etag), {
        message: 'has neither a version id nor an ETag, so no execution name can tell this object version',
      }),
  }),
});
export type ObjectCreatedEvent = z.infer<typeof ObjectCreatedEvent>;

/** One landing event as the queue delivers it. */
export interface LandingMessage {
  /** The queue's message id: what a batch item failure names. */
  readonly id: string;
  /** The EventBridge event, as JSON text. */
  readonly body: string;
  /** Times this event was deferred before (0 the first time). */
  readonly deferrals: number;
}

/** How long a deferred event waits before it is tried again. */
export interface DeferralBackoff {
  /** Wait after the first deferral, doubled after each further one. @default 15 */
  readonly firstDelaySeconds: number;
  /** The longest wait; SQS delays a message by at most 900 seconds. @default 900 */
  readonly maxDelaySeconds: number;
}

export const DEFAULT_DEFERRAL_BACKOFF: DeferralBackoff = { firstDelaySeconds: 15, maxDelaySeconds: 900 };

/** Where the starter's log lines go (Powertools' logger on Lambda). */
export interface StartLog {
  info(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

/** What `startLandedMessages` works with. */
export interface LandingStartsDeps extends PacingDeps {
  readonly queue: LandingQueue;
  readonly log: StartLog;
}

/** What became of one batch: the ids to report as batch item failures, and counts for the log. */
export interface LandingBatchResult {
  readonly failedMessageIds: string[];
  readonly started: number;
  readonly existed: number;
  readonly skipped: number;
  readonly deferred: number;
}

/**
 * The execution a landed object version starts, or `undefined` for objects that start none: console
 * "folders" (zero-byte keys ending in '/') and the workflow's own downloads (the rule filters those out
 * too; a download is ingested by the execution that downloaded it).
 */
export function startRequestFor(event: ObjectCreatedEvent): StartRequest | undefined {
  const { bucket, object } = event.detail;
  if (object.key.endsWith('/') || object.key.startsWith(DOWNLOADS_PREFIX)) return undefined;
  const input: ExecutionInput = { bucket: bucket.name, key: object.key, dataset: landingDataset(object.key) };
  return {
    name: executionName({
      bucket: bucket.name,
      key: object.key,
      versionId: object['version-id'],
      etag: object.etag,
    }),
    input: JSON.stringify(input),
  };
}

/** Seconds a deferred event waits: at once when only time ran out, else backing off per deferral. */
export function deferralDelaySeconds(
  reason: DeferReason,
  deferrals: number,
  backoff: DeferralBackoff,
): number {
  if (reason === 'out-of-time') return 0;
  return Math.min(backoff.maxDelaySeconds, backoff.firstDelaySeconds * 2 ** Math.min(deferrals, 30));
}

/** Start the executions of one queue batch, paced; put back what waits, report what failed. */
export async function startLandedMessages(
  messages: readonly LandingMessage[],
  deps: LandingStartsDeps,
  limits: PacingLimits,
  deadline: Date,
  backoff: DeferralBackoff = DEFAULT_DEFERRAL_BACKOFF,
): Promise<LandingBatchResult> {
  const failedMessageIds: string[] = [];
  let skipped = 0;
  const toStart: { message: LandingMessage; request: StartRequest }[] = [];
  for (const message of messages) {
    const parsed = parseLandingEvent(message.body);
    if (typeof parsed === 'string') {
      deps.log.error('not an S3 "Object Created" event: it goes to the dead-letter queue after its retries', {
        messageId: message.id,
        problem: parsed,
      });
      failedMessageIds.push(message.id);
      continue;
    }
    const request = startRequestFor(parsed);
    if (request === undefined) {
      skipped++;
      deps.log.info('skipped: a folder marker or a download', { key: parsed.detail.object.key });
    } else toStart.push({ message, request });
  }

  const outcomes = await paceStarts(
    toStart.map((s) => s.request),
    deps,
    limits,
    deadline,
  );
  let started = 0;
  let existed = 0;
  let deferred = 0;
  for (const [i, outcome] of outcomes.entries()) {
    const { message, request } = toStart[i]!;
    const about = { messageId: message.id, executionName: request.name };
    switch (outcome.status) {
      case 'started':
        started++;
        deps.log.info('execution started', { ...about, input: request.input });
        break;
      case 'existed':
        // The same name is the same object version: a repeated delivery finds the first one's run.
        existed++;
        deps.log.info('execution already exists for this object version', about);
        break;
      case 'failed':
        failedMessageIds.push(message.id);
        deps.log.error('could not start the execution: the queue delivers the event again', {
          ...about,
          error: describe(outcome.error),
        });
        break;
      case 'deferred': {
        const delaySeconds = deferralDelaySeconds(outcome.reason, message.deferrals, backoff);
        try {
          await deps.queue.requeue(message.body, message.deferrals + 1, delaySeconds);
          deferred++;
        } catch (error) {
          // Not put back: left in the queue, which delivers it again after its visibility timeout.
          failedMessageIds.push(message.id);
          deps.log.error('could not put a deferred event back in the queue', {
            ...about,
            error: describe(error),
          });
        }
        break;
      }
    }
  }
  if (deferred > 0)
    deps.log.info('deferred events put back in the queue', { deferred, reasons: reasons(outcomes) });
  return { failedMessageIds, started, existed, skipped, deferred };
}

/** The event, or what is wrong with it. */
function parseLandingEvent(body: string): ObjectCreatedEvent | string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (error) {
    return `not JSON: ${describe(error)}`;
  }
  const result = ObjectCreatedEvent.safeParse(value);
  if (result.success) return result.data;
  return `${explainIssues(result.error.issues).join('; ')}; check the EventBridge rule that targets the landing queue`;
}

function reasons(outcomes: readonly { status: string; reason?: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) if (o.reason !== undefined) counts[o.reason] = (counts[o.reason] ?? 0) + 1;
  return counts;
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
