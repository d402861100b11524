import type { WaitableClock } from '../../shared/ports/clock.ts';

/**
 * A clock whose `sleep` jumps instead of waiting: time moves only when someone sleeps, to the end of
 * their sleep (never backwards). Several callers may share it: each still sees at least the time it
 * slept to. `sleep` yields to the event loop, so concurrent callers interleave as they would for real.
 */
export class FakeClock implements WaitableClock {
  #ms: number;
  readonly #start: number;
  /** Every sleep asked for, in ms. */
  readonly sleeps: number[] = [];

  constructor(start = Date.parse('2026-01-01T00:00:00.000Z')) {
    this.#ms = start;
    this.#start = start;
  }

  now(): Date {
    return new Date(this.#ms);
  }

  /** Milliseconds since the clock's start. */
  elapsed(): number {
    return this.#ms - this.#start;
  }

  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.#ms = Math.max(this.#ms, this.#ms + ms);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
