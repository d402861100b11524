/** When to try an HTTP request again: exponential backoff with full jitter, or what the server asked for. */

/** Settings of the backoff between attempts. */
export interface BackoffOptions {
  /** Delay cap of the first retry; it doubles with each attempt. */
  readonly baseDelayMs: number;
  /** No wait is longer than this, including one a server asked for with `Retry-After`. */
  readonly maxDelayMs: number;
}

/**
 * The wait before retry number `retry` (1 = the first retry): a uniform random value in
 * `[0, min(maxDelayMs, baseDelayMs * 2^(retry-1)))` ("full jitter"). Randomising the whole interval
 * spreads out clients that failed together, so they do not come back in lockstep.
 */
export function fullJitterDelay(retry: number, options: BackoffOptions, random: () => number = Math.random) {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, retry - 1));
  return Math.floor(random() * ceiling);
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

/**
 * The wait before retry number `retry`: the server's `Retry-After` when it gave one, else full-jitter
 * backoff; capped at `maxDelayMs` either way so one answer cannot park a Lambda for an hour (the
 * attempt budget still bounds how often we ask again).
 */
export function retryDelay(
  retry: number,
  retryAfterMs: number | undefined,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, options.maxDelayMs);
  return fullJitterDelay(retry, options, random);
}
