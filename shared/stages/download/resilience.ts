import {
  BrokenCircuitError,
  type BulkheadPolicy,
  bulkhead,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  fullJitterGenerator,
  handleWhen,
  type IRetryBackoffContext,
  type RetryPolicy,
  retry,
} from 'cockatiel';
import { TransientError } from '../../errors.ts';
import { RequestSpacing } from './request-spacing.ts';

/**
 * The download's resilience, built from its settings with cockatiel: retries with exponential backoff and
 * full jitter or the server's `Retry-After` (`retryPolicy`), a circuit breaker per host (`CircuitBreaker`)
 * and a bulkhead per host (`HostLimiter`). What cockatiel has no policy for stays hand-written: the
 * spacing of request starts (`request-spacing.ts`); the connect and idle timeouts (`http-get.ts`,
 * `download.ts`: cockatiel's `timeout` bounds a whole call, while an idle timeout restarts with every
 * chunk of the body); reading `Retry-After` (below); and DNS pinning (`url-safety.ts`).
 */

/** Settings of the retries of one download. */
export interface RetrySettings {
  /** HTTP attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Delay cap of the first retry; it doubles with each retry. */
  readonly baseDelayMs: number;
  /** No wait is longer than this, including one a server asked for with `Retry-After`. */
  readonly maxDelayMs: number;
}

/** Whether another attempt may succeed: a `TransientError`, except an open circuit (it would only burn attempts). */
export function isRetryable(error: unknown): boolean {
  return error instanceof TransientError && !(error instanceof CircuitOpenError);
}

/** Tries a download's attempt up to `maxAttempts` times in all, waiting `retryBackoff` between them. */
export function retryPolicy(settings: RetrySettings): RetryPolicy {
  // cockatiel's maxAttempts counts retries, ours counts attempts.
  const maxAttempts = Math.max(0, settings.maxAttempts - 1);
  return retry(handleWhen(isRetryable), { maxAttempts, backoff: retryBackoff(settings) });
}

/**
 * The wait before each retry: the server's `Retry-After` when the failure carries one (`retryAfterMs`),
 * else full jitter, a uniform random value in `[0, min(maxDelayMs, baseDelayMs * 2^(retry-1)))`:
 * randomising the whole interval spreads out clients that failed together, so they do not come back in
 * lockstep. Capped at `maxDelayMs` either way, so one answer cannot park a Lambda for an hour (the
 * attempt budget still bounds how often we ask again).
 */
export function retryBackoff(settings: RetrySettings): DelegateBackoff<IRetryBackoffContext<unknown>> {
  const exponential = {
    generator: fullJitterGenerator,
    initialDelay: settings.baseDelayMs,
    maxDelay: settings.maxDelayMs,
    exponent: 2,
  };
  return new DelegateBackoff((context) => {
    const asked = 'error' in context.result ? retryAfterOf(context.result.error) : undefined;
    if (asked !== undefined) return Math.min(asked, settings.maxDelayMs);
    // The generator's state is the number of retries before this one.
    return fullJitterGenerator(context.attempt - 1, exponential)[0];
  });
}

function retryAfterOf(error: unknown): number | undefined {
  const ms = (error as { retryAfterMs?: unknown } | null | undefined)?.retryAfterMs;
  return typeof ms === 'number' ? ms : undefined;
}

/**
 * A `Retry-After` header in milliseconds from `now`: delay-seconds (`120`) or an HTTP-date. A date in the
 * past means "now" (0). Undefined when absent or unreadable, so the caller falls back to backoff.
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // Only the HTTP-date forms, not everything Date.parse would guess at (`1.5` is a date to V8).
  if (!/^[A-Za-z]{3},? /.test(text)) return undefined;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now.getTime());
}

/** Settings of a `CircuitBreaker`. */
export interface CircuitBreakerOptions {
  /** Consecutive failures of a host that open its circuit. @default 5 */
  readonly failureThreshold?: number;
  /** How long an open circuit refuses requests before letting one trial through. @default 30_000 */
  readonly cooldownMs?: number;
}

/** The state of one host's circuit. */
export type CircuitStateName = 'closed' | 'open' | 'half-open';

interface HostCircuit {
  readonly policy: CircuitBreakerPolicy;
  readonly breaker: ConsecutiveBreaker;
  /** When the circuit last opened (`Date.now`, the clock cockatiel reads). */
  openedAt: number;
}

/**
 * A circuit breaker per host: cockatiel's `circuitBreaker` with a `ConsecutiveBreaker`. After
 * `failureThreshold` consecutive failures a host's circuit opens and requests to it fail at once with
 * `CircuitOpenError`, instead of piling more load on a struggling server and burning the Lambda's time;
 * after `cooldownMs` one trial request goes through (half-open) while others wait for its outcome: its
 * success closes the circuit, its failure opens it again. Shared by all downloads in a process. A host's
 * state is kept for the process's life: a few hundred bytes per source host.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #hosts = new Map<string, HostCircuit>();

  constructor(options: CircuitBreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 5;
    this.#cooldownMs = options.cooldownMs ?? 30_000;
  }

  /** The state of `host`'s circuit, as the next request would see it. */
  state(host: string): CircuitStateName {
    const circuit = this.#hosts.get(host);
    if (!circuit) return 'closed';
    if (circuit.policy.state === CircuitState.HalfOpen) return 'half-open';
    if (circuit.policy.state !== CircuitState.Open) return 'closed';
    return Date.now() - circuit.openedAt >= this.#cooldownMs ? 'half-open' : 'open';
  }

  /**
   * Sends a request to `host` through its circuit: `send` resolves when the host has answered as a
   * healthy server does (even with a 4xx) and throws a `TransientError` when it failed (5xx, 429, reset,
   * timeout). Any other error says nothing of the host's health. Throws `CircuitOpenError` (a
   * `TransientError`) while the circuit is open.
   */
  async execute<T>(host: string, send: () => Promise<T>): Promise<T> {
    const circuit = this.#circuit(host);
    try {
      return await circuit.policy.execute(send);
    } catch (error) {
      if (!(error instanceof BrokenCircuitError)) throw error;
      const retryIn = Math.max(0, this.#cooldownMs - (Date.now() - circuit.openedAt));
      throw new CircuitOpenError(host, retryIn, circuit.breaker.state);
    }
  }

  #circuit(host: string): HostCircuit {
    const known = this.#hosts.get(host);
    if (known) return known;
    const breaker = new ConsecutiveBreaker(this.#threshold);
    const policy = circuitBreaker(
      handleWhen((error) => error instanceof TransientError),
      {
        breaker,
        halfOpenAfter: this.#cooldownMs,
      },
    );
    const circuit: HostCircuit = { policy, breaker, openedAt: 0 };
    policy.onBreak(() => {
      circuit.openedAt = Date.now();
    });
    this.#hosts.set(host, circuit);
    return circuit;
  }
}

/**
 * Thrown while a host's circuit is open. Its name stays `TransientError` (the state machine retries it
 * later); the class lets the download stop at once instead of spending its attempts against the circuit.
 */
export class CircuitOpenError extends TransientError {
  constructor(
    readonly host: string,
    readonly retryInMs: number,
    failures: number,
  ) {
    super(
      `circuit open for host ${host} after ${failures} consecutive failures; ` +
        `not sending requests to it for another ${retryInMs} ms`,
    );
  }
}

/** Settings of a `HostLimiter`. */
export interface HostLimiterOptions {
  /** Requests open at once to one host (a request is open until its body is read or abandoned). @default 4 */
  readonly maxConcurrent?: number;
  /** Requests started per second to one host; `Infinity` for no limit. @default 10 */
  readonly requestsPerSecond?: number;
  /** The time in milliseconds, for the spacing of starts. @default Date.now */
  readonly now?: () => number;
  /** Waits between starts; injected by tests. @default `timers/promises` setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

interface HostSlots {
  readonly bulkhead: BulkheadPolicy;
  readonly spacing: RequestSpacing;
}

/**
 * Politeness towards each source host: at most `maxConcurrent` open requests (cockatiel's `bulkhead`,
 * with an unbounded queue: a download waits its turn rather than fail) and `requestsPerSecond` request
 * starts (`RequestSpacing`), whichever downloads they belong to. Sources are often small public servers
 * that ban clients which open dozens of connections or retry in bursts. Like the circuits, a host's
 * slots are kept for the process's life.
 */
export class HostLimiter {
  readonly #maxConcurrent: number;
  readonly #options: HostLimiterOptions;
  readonly #hosts = new Map<string, HostSlots>();

  constructor(options: HostLimiterOptions = {}) {
    this.#maxConcurrent = Math.max(1, options.maxConcurrent ?? 4);
    this.#options = options;
  }

  /** Open requests to `host` right now. */
  active(host: string): number {
    const slots = this.#hosts.get(host);
    return slots ? this.#maxConcurrent - slots.bulkhead.executionSlots : 0;
  }

  /** Runs `request` (open until it returns) in a slot of `host`, once its start is due. */
  run<T>(host: string, request: () => Promise<T>): Promise<T> {
    const slots = this.#slots(host);
    return slots.bulkhead.execute(async () => {
      await slots.spacing.wait();
      return request();
    });
  }

  #slots(host: string): HostSlots {
    const known = this.#hosts.get(host);
    if (known) return known;
    const { requestsPerSecond = 10, now, sleep } = this.#options;
    const slots: HostSlots = {
      bulkhead: bulkhead(this.#maxConcurrent, Number.POSITIVE_INFINITY),
      spacing: new RequestSpacing(requestsPerSecond, now, sleep),
    };
    this.#hosts.set(host, slots);
    return slots;
  }
}
