import { setTimeout as delay } from 'node:timers/promises';

/** Settings of a `HostLimiter`. */
export interface HostLimiterOptions {
  /** Requests open at once to one host (a request is open until its body is read or abandoned). @default 4 */
  readonly maxConcurrent?: number;
  /** Requests started per second to one host; `Infinity` for no limit. @default 10 */
  readonly requestsPerSecond?: number;
  /** The time in milliseconds. @default Date.now */
  readonly now?: () => number;
  /** Waits; injected by tests. @default `timers/promises` setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

interface HostQueue {
  active: number;
  readonly waiting: (() => void)[];
  /** The earliest time the next request may start. */
  nextStart: number;
}

/**
 * Politeness towards each source host: at most `maxConcurrent` open requests and `requestsPerSecond`
 * request starts, whichever downloads they belong to. Sources are often small public servers that ban
 * clients which open dozens of connections or retry in bursts. Waiters are served first come, first served.
 */
export class HostLimiter {
  readonly #maxConcurrent: number;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #hosts = new Map<string, HostQueue>();

  constructor(options: HostLimiterOptions = {}) {
    this.#maxConcurrent = Math.max(1, options.maxConcurrent ?? 4);
    const rate = options.requestsPerSecond ?? 10;
    this.#intervalMs = rate === Number.POSITIVE_INFINITY || rate <= 0 ? 0 : 1000 / rate;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
  }

  /** Open requests to `host` right now. */
  active(host: string): number {
    return this.#hosts.get(host)?.active ?? 0;
  }

  /**
   * Waits for a free slot and the host's rate limit, then returns the function that frees the slot. The
   * caller must call it exactly once when the request is done (calling it again does nothing).
   */
  async acquire(host: string): Promise<() => void> {
    let queue = this.#hosts.get(host);
    if (!queue) {
      queue = { active: 0, waiting: [], nextStart: 0 };
      this.#hosts.set(host, queue);
    }
    if (queue.active < this.#maxConcurrent) queue.active++;
    // A releasing request hands its slot straight to the first waiter, so `active` stays counted.
    else await new Promise<void>((resolve) => queue.waiting.push(resolve));

    const now = this.#now();
    const start = Math.max(now, queue.nextStart);
    queue.nextStart = start + this.#intervalMs;
    if (start > now) await this.#sleep(start - now);

    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = queue.waiting.shift();
      if (next) return next();
      queue.active--;
      // Forget idle hosts so a long-lived process does not keep one entry per host ever seen.
      if (queue.active === 0 && queue.nextStart <= this.#now() && this.#hosts.get(host) === queue) {
        this.#hosts.delete(host);
      }
    };
  }
}
