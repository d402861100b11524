import { setTimeout as delay } from 'node:timers/promises';

/**
 * The spacing of request starts to one host: `requestsPerSecond` at most, evenly spaced.
 *
 * Hand-written because cockatiel has no rate limiter: its bulkhead caps requests in flight (used for
 * `maxConcurrent`, see `resilience.ts`), not starts per second. A host that answers quickly would
 * otherwise see bursts of requests, and small public servers ban clients that burst.
 */
export class RequestSpacing {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  /** The earliest time the next request may start. */
  #nextStart = 0;

  constructor(
    requestsPerSecond: number,
    now: () => number = Date.now,
    sleep: (ms: number) => Promise<void> = (ms) => delay(ms),
  ) {
    const unlimited = requestsPerSecond === Number.POSITIVE_INFINITY || requestsPerSecond <= 0;
    this.#intervalMs = unlimited ? 0 : 1000 / requestsPerSecond;
    this.#now = now;
    this.#sleep = sleep;
  }

  /** Waits until the next start is due, and books the one after it. */
  async wait(): Promise<void> {
    const now = this.#now();
    const start = Math.max(now, this.#nextStart);
    this.#nextStart = start + this.#intervalMs;
    if (start > now) await this.#sleep(start - now);
  }
}
