import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DownloadError, TransientError } from '../../shared/errors.ts';
import {
  CircuitBreaker,
  CircuitOpenError,
  HostLimiter,
  parseRetryAfter,
  retryBackoff,
  retryPolicy,
} from '../../shared/stages/download/resilience.ts';

const BACKOFF = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1_000 };
const NOW = new Date('2026-01-01T00:00:00.000Z');

/** The download's wait before retry number `retry` (1 = the first) after `error`. */
function delayBefore(retry: number, error: unknown = new TransientError('HTTP 503')): number {
  const signal = new AbortController().signal;
  return retryBackoff(BACKOFF).next({ attempt: retry, signal, result: { error } }).duration;
}

/** A transient failure whose server asked to wait `retryAfterMs` (as `HttpStatusError` does). */
function askedToWait(retryAfterMs: number): TransientError {
  return Object.assign(new TransientError('HTTP 429'), { retryAfterMs });
}

/** Lets queued promise callbacks run (only Date is ever faked in this file). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('Function: retryBackoff', () => {
  it('draws from [0, base * 2^(retry-1)), doubling per retry', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    expect([1, 2, 3, 4].map((retry) => delayBefore(retry))).toEqual([99, 199, 399, 799]);
    vi.spyOn(Math, 'random').mockReturnValue(0);
    expect(delayBefore(3)).toBe(0);
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(delayBefore(3)).toBe(200);
  });

  it('never exceeds maxDelayMs, however many retries', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    expect(delayBefore(30)).toBe(999);
    expect(delayBefore(2_000)).toBe(999);
  });

  it('spreads delays over the whole interval with the real random source', () => {
    const delays = Array.from({ length: 2_000 }, () => delayBefore(4));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(800);
    // Full jitter, not "base plus a little": a good share lands in each half.
    expect(delays.filter((d) => d < 400).length).toBeGreaterThan(600);
    expect(delays.filter((d) => d >= 400).length).toBeGreaterThan(600);
  });

  it("uses the server's Retry-After, capped at maxDelayMs", () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.9);
    expect(delayBefore(1, askedToWait(300))).toBe(300);
    expect(delayBefore(1, askedToWait(3_600_000))).toBe(1_000);
    expect(delayBefore(1, askedToWait(0))).toBe(0);
  });

  it('falls back to full jitter without Retry-After', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    expect(delayBefore(2)).toBe(100);
  });
});

describe('Function: retryPolicy', () => {
  const fast = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 };

  it('makes maxAttempts attempts in all, reporting each retry, then throws the last error', async () => {
    const policy = retryPolicy(fast);
    const retries: number[] = [];
    policy.onRetry(({ attempt }) => retries.push(attempt));
    let calls = 0;
    const last = new TransientError('HTTP 502');
    await expect(
      policy.execute(() => {
        calls++;
        throw calls < 3 ? new TransientError('HTTP 500') : last;
      }),
    ).rejects.toBe(last);
    expect(calls).toBe(3);
    expect(retries).toEqual([1, 2]);
  });

  it('waits what the failure asked for', async () => {
    const policy = retryPolicy({ ...fast, maxDelayMs: 50 });
    const delays: number[] = [];
    policy.onRetry(({ delay }) => delays.push(delay));
    let calls = 0;
    await policy.execute(() => {
      if (++calls === 1) throw askedToWait(7);
    });
    expect(delays).toEqual([7]);
  });

  it('does not retry what another attempt cannot fix, nor an open circuit', async () => {
    for (const error of [
      new DownloadError('https://h/f', 404, 'HTTP 404'),
      new CircuitOpenError('h', 5, 5),
    ]) {
      let calls = 0;
      await expect(
        retryPolicy(fast).execute(() => {
          calls++;
          throw error;
        }),
      ).rejects.toBe(error);
      expect(calls, error.message).toBe(1);
    }
  });
});

describe('Function: parseRetryAfter', () => {
  it('reads delay-seconds', () => {
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('7', NOW)).toBe(7_000);
    expect(parseRetryAfter(' 120 ', NOW)).toBe(120_000);
  });

  it('reads an HTTP-date relative to now, and a past date as 0', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', NOW)).toBe(5_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', NOW)).toBe(0);
  });

  it('ignores absent and unreadable values', () => {
    for (const value of [undefined, '', 'soon', '-5', '1.5', 'Thu, 99 Foo 2026']) {
      expect(parseRetryAfter(value, NOW), String(value)).toBeUndefined();
    }
  });
});

describe('Class: CircuitBreaker', () => {
  // cockatiel reads Date.now: the tests move it, nothing else is faked.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(0);
  });
  const advance = (ms: number) => vi.setSystemTime(Date.now() + ms);
  const breaker = () => new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1_000 });
  const fail = (circuits: CircuitBreaker, host = 'a.test') =>
    circuits
      .execute(host, async () => {
        throw new TransientError('HTTP 503');
      })
      .catch((error: unknown) => error);
  const succeed = (circuits: CircuitBreaker, host = 'a.test') => circuits.execute(host, async () => 'ok');

  it('opens after the threshold of consecutive failures and fails fast with a TransientError', async () => {
    const circuits = breaker();
    for (let i = 0; i < 3; i++) await fail(circuits);
    expect(circuits.state('a.test')).toBe('open');
    let sent = false;
    const error = await circuits
      .execute('a.test', async () => {
        sent = true;
      })
      .catch((caught: unknown) => caught as Error);
    expect(sent).toBe(false);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toBeInstanceOf(TransientError);
    expect(error?.name).toBe('TransientError');
    expect(error?.message).toMatch(/circuit open for host a\.test after 3 consecutive failures/);
    // Other hosts are not affected.
    await expect(succeed(circuits, 'b.test')).resolves.toBe('ok');
  });

  it('resets the count on a success', async () => {
    const circuits = breaker();
    await fail(circuits);
    await fail(circuits);
    await succeed(circuits);
    await fail(circuits);
    await fail(circuits);
    expect(circuits.state('a.test')).toBe('closed');
  });

  it('lets one trial through after the cool-down; others wait for it; its success closes the circuit', async () => {
    const circuits = breaker();
    for (let i = 0; i < 3; i++) await fail(circuits);
    advance(999);
    await expect(succeed(circuits)).rejects.toThrow(/another 1 ms/);
    advance(1);
    expect(circuits.state('a.test')).toBe('half-open');
    const trial = deferred();
    const first = circuits.execute('a.test', () => trial.promise);
    const sent: string[] = [];
    const second = circuits.execute('a.test', async () => {
      sent.push('second');
    });
    await settle();
    // Only one trial at a time: the second request waits for its outcome.
    expect(sent).toEqual([]);
    expect(circuits.state('a.test')).toBe('half-open');
    trial.resolve();
    await first;
    await second;
    expect(sent).toEqual(['second']);
    expect(circuits.state('a.test')).toBe('closed');
  });

  it('re-opens when the trial fails, for another full cool-down', async () => {
    const circuits = breaker();
    for (let i = 0; i < 3; i++) await fail(circuits);
    advance(1_000);
    await fail(circuits);
    expect(circuits.state('a.test')).toBe('open');
    advance(500);
    await expect(succeed(circuits)).rejects.toThrow(/after 4 consecutive failures; .* another 500 ms/);
    advance(500);
    await expect(succeed(circuits)).resolves.toBe('ok');
  });

  it('lets the next request through after a trial that says nothing of the host (not a TransientError)', async () => {
    const circuits = breaker();
    for (let i = 0; i < 3; i++) await fail(circuits);
    advance(1_000);
    const refused = new DownloadError('https://a.test/f', undefined, 'certificate has expired');
    await expect(
      circuits.execute('a.test', async () => {
        throw refused;
      }),
    ).rejects.toBe(refused);
    await expect(succeed(circuits)).resolves.toBe('ok');
  });
});

describe('Class: HostLimiter', () => {
  it('caps concurrent requests per host and serves waiters in order', async () => {
    const limiter = new HostLimiter({ maxConcurrent: 2, requestsPerSecond: Number.POSITIVE_INFINITY });
    const order: string[] = [];
    const hold = (name: string) => {
      const open = deferred();
      const done = limiter.run('a.test', async () => {
        order.push(name);
        await open.promise;
      });
      return { finish: open.resolve, done };
    };
    const [first, second, third, fourth] = ['first', 'second', 'third', 'fourth'].map(hold);
    await settle();
    expect(order).toEqual(['first', 'second']);
    expect(limiter.active('a.test')).toBe(2);
    // Another host has its own slots.
    await limiter.run('b.test', async () => {});
    first!.finish();
    await first!.done;
    await settle();
    expect(order).toEqual(['first', 'second', 'third']);
    second!.finish();
    await settle();
    expect(order).toEqual(['first', 'second', 'third', 'fourth']);
    third!.finish();
    fourth!.finish();
    await Promise.all([second!.done, third!.done, fourth!.done]);
    expect(limiter.active('a.test')).toBe(0);
  });

  it('spaces request starts per host by the rate limit', async () => {
    let now = 0;
    const waits: number[] = [];
    const limiter = new HostLimiter({
      maxConcurrent: 10,
      requestsPerSecond: 4,
      now: () => now,
      sleep: async (ms) => {
        waits.push(ms);
        now += ms;
      },
    });
    const request = async () => {};
    for (let i = 0; i < 4; i++) await limiter.run('a.test', request);
    expect(waits).toEqual([250, 250, 250]);
    await limiter.run('b.test', request);
    expect(waits).toEqual([250, 250, 250]);
    now += 1_000;
    await limiter.run('a.test', request);
    expect(waits).toEqual([250, 250, 250]);
  });
});
