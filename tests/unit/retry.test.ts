import { describe, expect, it } from 'vitest';
import { TransientError } from '../../shared/errors.ts';
import { CircuitBreaker, CircuitOpenError } from '../../shared/stages/download/circuit-breaker.ts';
import { HostLimiter } from '../../shared/stages/download/host-limiter.ts';
import { fullJitterDelay, parseRetryAfter, retryDelay } from '../../shared/stages/download/retry.ts';

const BACKOFF = { baseDelayMs: 100, maxDelayMs: 1_000 };
const NOW = new Date('2026-01-01T00:00:00.000Z');

describe('Function: fullJitterDelay', () => {
  it('draws from [0, base * 2^(retry-1)), doubling per retry', () => {
    const almostOne = () => 0.999_999;
    expect([1, 2, 3, 4].map((retry) => fullJitterDelay(retry, BACKOFF, almostOne))).toEqual([
      99, 199, 399, 799,
    ]);
    expect(fullJitterDelay(3, BACKOFF, () => 0)).toBe(0);
    expect(fullJitterDelay(3, BACKOFF, () => 0.5)).toBe(200);
  });

  it('never exceeds maxDelayMs, however many retries', () => {
    expect(fullJitterDelay(30, BACKOFF, () => 0.999_999)).toBe(999);
    expect(fullJitterDelay(2_000, BACKOFF, () => 0.999_999)).toBe(999);
  });

  it('spreads delays over the whole interval with the real random source', () => {
    const delays = Array.from({ length: 2_000 }, () => fullJitterDelay(4, BACKOFF));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(800);
    // Full jitter, not "base plus a little": a good share lands in each half.
    expect(delays.filter((d) => d < 400).length).toBeGreaterThan(600);
    expect(delays.filter((d) => d >= 400).length).toBeGreaterThan(600);
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

describe('Function: retryDelay', () => {
  it("uses the server's Retry-After, capped at maxDelayMs", () => {
    expect(retryDelay(1, 300, BACKOFF, () => 0.9)).toBe(300);
    expect(retryDelay(1, 3_600_000, BACKOFF, () => 0.9)).toBe(1_000);
    expect(retryDelay(1, 0, BACKOFF, () => 0.9)).toBe(0);
  });

  it('falls back to full jitter without Retry-After', () => {
    expect(retryDelay(2, undefined, BACKOFF, () => 0.5)).toBe(100);
  });
});

describe('Class: CircuitBreaker', () => {
  const setup = () => {
    let now = 0;
    const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1_000, now: () => now });
    return { breaker, advance: (ms: number) => (now += ms) };
  };

  it('opens after the threshold of consecutive failures and fails fast with a TransientError', () => {
    const { breaker } = setup();
    for (let i = 0; i < 3; i++) {
      breaker.acquire('a.test');
      breaker.onFailure('a.test');
    }
    expect(breaker.state('a.test')).toBe('open');
    const error = catchError(() => breaker.acquire('a.test'));
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect(error).toBeInstanceOf(TransientError);
    expect(error.name).toBe('TransientError');
    expect(error.message).toMatch(/circuit open for host a\.test after 3 consecutive failures/);
    // Other hosts are not affected.
    expect(() => breaker.acquire('b.test')).not.toThrow();
  });

  it('resets the count on a success', () => {
    const { breaker } = setup();
    breaker.onFailure('a.test');
    breaker.onFailure('a.test');
    breaker.onSuccess('a.test');
    breaker.onFailure('a.test');
    breaker.onFailure('a.test');
    expect(breaker.state('a.test')).toBe('closed');
  });

  it('lets one trial through after the cool-down; its success closes the circuit', () => {
    const { breaker, advance } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure('a.test');
    advance(999);
    expect(() => breaker.acquire('a.test')).toThrow(/another 1 ms/);
    advance(1);
    expect(breaker.state('a.test')).toBe('half-open');
    breaker.acquire('a.test');
    // Only one trial at a time.
    expect(() => breaker.acquire('a.test')).toThrow(CircuitOpenError);
    breaker.onSuccess('a.test');
    expect(breaker.state('a.test')).toBe('closed');
    breaker.acquire('a.test');
  });

  it('re-opens when the trial fails, for another full cool-down', () => {
    const { breaker, advance } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure('a.test');
    advance(1_000);
    breaker.acquire('a.test');
    breaker.onFailure('a.test');
    expect(breaker.state('a.test')).toBe('open');
    advance(500);
    expect(() => breaker.acquire('a.test')).toThrow(CircuitOpenError);
    advance(500);
    expect(() => breaker.acquire('a.test')).not.toThrow();
  });

  it('frees the trial slot on a neutral release', () => {
    const { breaker, advance } = setup();
    for (let i = 0; i < 3; i++) breaker.onFailure('a.test');
    advance(1_000);
    breaker.acquire('a.test');
    breaker.release('a.test');
    expect(() => breaker.acquire('a.test')).not.toThrow();
  });
});

describe('Class: HostLimiter', () => {
  it('caps concurrent requests per host and serves waiters in order', async () => {
    const limiter = new HostLimiter({ maxConcurrent: 2, requestsPerSecond: Number.POSITIVE_INFINITY });
    const order: string[] = [];
    const first = await limiter.acquire('a.test');
    const second = await limiter.acquire('a.test');
    expect(limiter.active('a.test')).toBe(2);
    const third = limiter.acquire('a.test').then((release) => {
      order.push('third');
      return release;
    });
    const fourth = limiter.acquire('a.test').then((release) => {
      order.push('fourth');
      return release;
    });
    // Another host has its own slots.
    (await limiter.acquire('b.test'))();
    await Promise.resolve();
    expect(order).toEqual([]);
    first();
    first(); // a second call frees nothing more
    (await third)();
    expect(order).toEqual(['third']);
    second();
    (await fourth)();
    expect(order).toEqual(['third', 'fourth']);
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
    for (let i = 0; i < 4; i++) (await limiter.acquire('a.test'))();
    expect(waits).toEqual([250, 250, 250]);
    (await limiter.acquire('b.test'))();
    expect(waits).toEqual([250, 250, 250]);
    now += 1_000;
    (await limiter.acquire('a.test'))();
    expect(waits).toEqual([250, 250, 250]);
  });
});

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}
