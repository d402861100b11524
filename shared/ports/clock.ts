/** Time, as a port, so stages can be tested with a fixed clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that can be waited on: pacing holds each start's slot. Tests pass a fake one that jumps. */
export interface WaitableClock extends Clock {
  sleep(ms: number): Promise<void>;
}

export const systemWaitableClock: WaitableClock = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};
