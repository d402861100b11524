import type { WaitableClock } from '../ports/clock.ts';
import type {
  ExecutionStarter,
  RunningExecutionCounter,
  StartRequest,
} from '../ports/workflow-executions.ts';

/**
 * Paced starts: one starter invocation starts the executions of its batch no faster than its share of
 * the deployment's rate, and no more than its share of the room left under the running-executions cap.
 * What it cannot start now it hands back as deferred, to be tried again later (never dropped).
 *
 * Why per invocation, with no shared token bucket: the queue's event source mapping runs at most
 * `starters` invocations at once, and each holds a slot of `starters / maxStartsPerSecond` seconds per
 * start (the last one included, so the next invocation of that starter cannot start inside it). Any
 * window of T seconds then sees at most `starters × ceil(T × maxStartsPerSecond / starters)` starts:
 * the configured rate, with no shared state to keep consistent.
 */

/** The limits one starter invocation works under. */
export interface PacingLimits {
  /** Starts per second of the whole deployment; each of the `starters` takes an equal share. */
  readonly maxStartsPerSecond: number;
  /** Running executions of the workflow above which nothing more starts. */
  readonly maxRunningExecutions: number;
  /** Starter invocations that may run at once (the event source mapping's maximum concurrency). */
  readonly starters: number;
}

/** Why a start was deferred. */
export type DeferReason =
  /** `maxRunningExecutions` are running (this invocation's share of the room is used up). */
  | 'full'
  /** Step Functions throttled the call, or has too many open executions. */
  | 'throttled'
  /** The next start's slot would end after the invocation's deadline. */
  | 'out-of-time';

/** What became of one request. */
export type StartOutcome =
  | { readonly status: 'started'; readonly executionArn?: string }
  /** The same name was started before: the same object version, so this is done too. */
  | { readonly status: 'existed' }
  | { readonly status: 'deferred'; readonly reason: DeferReason }
  /** An error that waiting will not fix by itself (permissions, a missing state machine, ...). */
  | { readonly status: 'failed'; readonly error: unknown };

/** What `paceStarts` works with. */
export interface PacingDeps {
  readonly clock: WaitableClock;
  readonly running: RunningExecutionCounter;
  readonly starter: ExecutionStarter;
}

/** Step Functions' answers that mean "not now": the request is fine, the service is busy or full. */
export const THROTTLING_ERRORS: readonly string[] = [
  'ThrottlingException',
  'TooManyRequestsException',
  'ExecutionLimitExceeded',
];

/** The one answer that means "already done": an execution of this name (this object version) exists. */
export const ALREADY_STARTED_ERROR = 'ExecutionAlreadyExists';

/** Time a starter invocation keeps back from its timeout for putting deferred events back and returning. */
export const RETURN_MARGIN_MS = 5000;

/** SQS's largest batch for a standard queue's event source mapping without a batching window. */
const MAX_BATCH = 10;

/**
 * The batch size of the starter's event source mapping: as many landing events as one invocation can
 * start, paced, within `timeoutMs` (at least 1, at most 10). More would only be put back each time.
 */
export function starterBatchSize(limits: PacingLimits, timeoutMs: number): number {
  const fits = Math.floor((timeoutMs - RETURN_MARGIN_MS) / startSlotMs(limits));
  return Math.min(MAX_BATCH, Math.max(1, fits));
}

/** The time one start holds, per starter invocation, in ms. */
export function startSlotMs(limits: PacingLimits): number {
  return (1000 * limits.starters) / limits.maxStartsPerSecond;
}

/**
 * Start the requests in order, paced; one outcome per request, in the same order. Starts nothing whose
 * slot would end after `deadline`. Throws only if the running executions cannot be counted for a reason
 * other than throttling (then nothing was started).
 */
export async function paceStarts(
  requests: readonly StartRequest[],
  deps: PacingDeps,
  limits: PacingLimits,
  deadline: Date,
): Promise<StartOutcome[]> {
  if (requests.length === 0) return [];
  const { clock } = deps;
  const slotMs = startSlotMs(limits);

  let room: number;
  try {
    const running = await deps.running.countRunning(limits.maxRunningExecutions);
    // Each concurrent starter takes its share, rounded up so one free place is never left unused;
    // two starters racing for the last place may overshoot the cap by one.
    room = Math.ceil(Math.max(0, limits.maxRunningExecutions - running) / limits.starters);
  } catch (error) {
    if (!isThrottling(error)) throw error;
    return requests.map(() => ({ status: 'deferred', reason: 'throttled' }));
  }

  const outcomes: StartOutcome[] = [];
  let nextSlot = clock.now().getTime();
  let stopped: DeferReason | undefined;
  let called = false;
  for (const request of requests) {
    if (stopped === undefined && room <= 0) stopped = 'full';
    if (stopped === undefined && Math.max(nextSlot, clock.now().getTime()) + slotMs > deadline.getTime()) {
      stopped = 'out-of-time';
    }
    if (stopped !== undefined) {
      outcomes.push({ status: 'deferred', reason: stopped });
      continue;
    }
    const wait = nextSlot - clock.now().getTime();
    if (wait > 0) await clock.sleep(wait);
    nextSlot = clock.now().getTime() + slotMs;
    called = true;
    try {
      const { executionArn } = await deps.starter.start(request);
      room--;
      outcomes.push({ status: 'started', ...(executionArn !== undefined && { executionArn }) });
    } catch (error) {
      if (errorName(error) === ALREADY_STARTED_ERROR) outcomes.push({ status: 'existed' });
      else if (isThrottling(error)) {
        stopped = 'throttled';
        outcomes.push({ status: 'deferred', reason: stopped });
      } else outcomes.push({ status: 'failed', error });
    }
  }
  // Hold the last slot to its end: the next invocation of this starter may start right after it.
  const rest = nextSlot - clock.now().getTime();
  if (called && rest > 0) await clock.sleep(rest);
  return outcomes;
}

function errorName(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

function isThrottling(error: unknown): boolean {
  return THROTTLING_ERRORS.includes(errorName(error) ?? '');
}
