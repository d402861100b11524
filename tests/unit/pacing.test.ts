import { describe, expect, it } from 'vitest';
import type { StartRequest } from '../../shared/ports/workflow-executions.ts';
import { DEFAULT_DEFERRAL_BACKOFF, deferralDelaySeconds } from '../../shared/workflow/landing-starts.ts';
import {
  type PacingLimits,
  paceStarts,
  starterBatchSize,
  startSlotMs,
} from '../../shared/workflow/pacing.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const named = (name: string) => Object.assign(new Error(name), { name });
const requests = (n: number): StartRequest[] =>
  Array.from({ length: n }, (_, i) => ({ name: `file-${i}`, input: `{"i":${i}}` }));

/** A starter that records the fake time of every call and answers from `answer` (default: started). */
function setup(options: { running?: number; answer?: (name: string) => Error | undefined } = {}) {
  const clock = new FakeClock();
  const calls: { name: string; at: number }[] = [];
  const counted: number[] = [];
  const deps = {
    clock,
    running: {
      countRunning: async (atMost: number) => {
        counted.push(atMost);
        return options.running ?? 0;
      },
    },
    starter: {
      start: async ({ name }: StartRequest) => {
        calls.push({ name, at: clock.elapsed() });
        const error = options.answer?.(name);
        if (error) throw error;
        return { executionArn: `arn:aws:states:us-east-1:1:execution:m:${name}` };
      },
    },
  };
  return { clock, calls, counted, deps };
}

const limits = (overrides: Partial<PacingLimits> = {}): PacingLimits => ({
  maxStartsPerSecond: 2,
  maxRunningExecutions: 50,
  starters: 1,
  ...overrides,
});
const farDeadline = (clock: FakeClock) => new Date(clock.now().getTime() + 3_600_000);

describe('Function: paceStarts', () => {
  it('starts one request per slot, and holds the last slot to its end', async () => {
    const { clock, calls, deps } = setup();
    const outcomes = await paceStarts(requests(5), deps, limits(), farDeadline(clock));
    expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill('started'));
    expect(calls.map((c) => c.at)).toEqual([0, 500, 1000, 1500, 2000]);
    // The next invocation of this starter may start at 2500 at the earliest.
    expect(clock.elapsed()).toBe(2500);
  });

  it('gives each of several starters its share of the rate', async () => {
    const { clock, calls, deps } = setup();
    await paceStarts(requests(3), deps, limits({ maxStartsPerSecond: 10, starters: 2 }), farDeadline(clock));
    expect(startSlotMs(limits({ maxStartsPerSecond: 10, starters: 2 }))).toBe(200);
    expect(calls.map((c) => c.at)).toEqual([0, 200, 400]);
  });

  it('starts no more than the room under maxRunningExecutions, and defers the rest as full', async () => {
    const { clock, calls, counted, deps } = setup({ running: 47 });
    const outcomes = await paceStarts(requests(6), deps, limits(), farDeadline(clock));
    expect(counted).toEqual([50]);
    expect(calls).toHaveLength(3);
    expect(outcomes.slice(3)).toEqual(Array(3).fill({ status: 'deferred', reason: 'full' }));
  });

  it('takes its share of the room when several starters run, rounded up', async () => {
    const { clock, calls, deps } = setup({ running: 45 });
    await paceStarts(requests(10), deps, limits({ starters: 2 }), farDeadline(clock));
    expect(calls).toHaveLength(3); // ceil(5 / 2)
  });

  it('starts nothing when the cap is reached, and then holds no slot', async () => {
    const { clock, calls, deps } = setup({ running: 50 });
    const outcomes = await paceStarts(requests(2), deps, limits(), farDeadline(clock));
    expect(calls).toEqual([]);
    expect(outcomes).toEqual(Array(2).fill({ status: 'deferred', reason: 'full' }));
    expect(clock.elapsed()).toBe(0);
  });

  it('counts an existing execution (the same object version) as done, without using room', async () => {
    const { clock, calls, deps } = setup({
      running: 49,
      answer: (name) => (name === 'file-0' ? named('ExecutionAlreadyExists') : undefined),
    });
    const outcomes = await paceStarts(requests(3), deps, limits(), farDeadline(clock));
    expect(outcomes.map((o) => o.status)).toEqual(['existed', 'started', 'deferred']);
    // The call still took its slot.
    expect(calls.map((c) => c.at)).toEqual([0, 500]);
  });

  it('defers the rest of the batch once Step Functions throttles', async () => {
    const { clock, calls, deps } = setup({
      answer: (name) => (name === 'file-1' ? named('ThrottlingException') : undefined),
    });
    const outcomes = await paceStarts(requests(4), deps, limits(), farDeadline(clock));
    expect(outcomes).toEqual([
      { status: 'started', executionArn: 'arn:aws:states:us-east-1:1:execution:m:file-0' },
      { status: 'deferred', reason: 'throttled' },
      { status: 'deferred', reason: 'throttled' },
      { status: 'deferred', reason: 'throttled' },
    ]);
    expect(calls).toHaveLength(2);
  });

  it('reports other errors per request and goes on with the next', async () => {
    const denied = named('AccessDeniedException');
    const { clock, deps } = setup({ answer: (name) => (name === 'file-0' ? denied : undefined) });
    const outcomes = await paceStarts(requests(2), deps, limits(), farDeadline(clock));
    expect(outcomes[0]).toEqual({ status: 'failed', error: denied });
    expect(outcomes[1]?.status).toBe('started');
  });

  it('starts nothing whose slot would end after the deadline', async () => {
    const { clock, calls, deps } = setup();
    const deadline = new Date(clock.now().getTime() + 1600);
    const outcomes = await paceStarts(requests(5), deps, limits(), deadline);
    expect(calls.map((c) => c.at)).toEqual([0, 500, 1000]);
    expect(outcomes.slice(3)).toEqual(Array(2).fill({ status: 'deferred', reason: 'out-of-time' }));
    expect(clock.elapsed()).toBeLessThanOrEqual(1600);
  });

  it('defers everything when counting is throttled, and throws other counting errors', async () => {
    const { clock, calls, deps } = setup();
    const throttled = {
      ...deps,
      running: { countRunning: async () => Promise.reject(named('ThrottlingException')) },
    };
    expect(await paceStarts(requests(2), throttled, limits(), farDeadline(clock))).toEqual(
      Array(2).fill({ status: 'deferred', reason: 'throttled' }),
    );
    const denied = { ...deps, running: { countRunning: async () => Promise.reject(named('AccessDenied')) } };
    await expect(paceStarts(requests(2), denied, limits(), farDeadline(clock))).rejects.toThrow(
      'AccessDenied',
    );
    expect(calls).toEqual([]);
  });
});

describe('Function: starterBatchSize', () => {
  it('fits the batch into one invocation at its share of the rate, between 1 and 10', () => {
    expect(starterBatchSize(limits({ maxStartsPerSecond: 5, starters: 2 }), 60_000)).toBe(10);
    // 0.1 a second over 2 starters: a 20 s slot, two of which fit in 55 s.
    expect(starterBatchSize(limits({ maxStartsPerSecond: 0.1, starters: 2 }), 60_000)).toBe(2);
    expect(starterBatchSize(limits({ maxStartsPerSecond: 0.01, starters: 2 }), 60_000)).toBe(1);
  });
});

describe('Function: deferralDelaySeconds', () => {
  it('retries a full or throttled start after 15 s, doubling per deferral up to SQS’s 15 minutes', () => {
    const delays = [0, 1, 2, 5, 6, 40].map((n) => deferralDelaySeconds('full', n, DEFAULT_DEFERRAL_BACKOFF));
    expect(delays).toEqual([15, 30, 60, 480, 900, 900]);
    expect(deferralDelaySeconds('throttled', 1, DEFAULT_DEFERRAL_BACKOFF)).toBe(30);
  });

  it('retries at once what only ran out of the invocation’s time', () => {
    expect(deferralDelaySeconds('out-of-time', 7, DEFAULT_DEFERRAL_BACKOFF)).toBe(0);
  });
});
