import type { ObjectStore } from '../ports/object-store.ts';
import { invocationUsage, type S3Requests, type StageUsage } from '../workflow/run-cost.ts';
import { CountingObjectStore } from './counting-object-store.ts';

/**
 * The usage of the invocation that is running: the time since it began, its configured memory, and the
 * S3 requests made through the stores it counts. A Lambda execution environment runs one invocation at
 * a time, so the handler's stores (created once per cold start) are counted from where they stood when
 * the invocation began; a local run makes a meter per invocation.
 */
export class UsageMeter {
  readonly #stores: CountingObjectStore[] = [];
  readonly #now: () => number;
  #startedAt = 0;
  #memoryMb = 0;
  #baseline: S3Requests = { tier1: 0, tier2: 0 };
  #extra: S3Requests = { tier1: 0, tier2: 0 };

  /** `now`: a monotonic clock in milliseconds. */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** `store`, its requests counted from now on. */
  count(store: ObjectStore): ObjectStore {
    const counting = new CountingObjectStore(store);
    this.#stores.push(counting);
    return counting;
  }

  /** An invocation begins, with this much memory configured. */
  begin(memoryMb: number): void {
    this.#startedAt = this.#now();
    this.#memoryMb = memoryMb;
    this.#baseline = this.#requests();
    this.#extra = { tier1: 0, tier2: 0 };
  }

  /** Requests made on the invocation's behalf elsewhere (a worker thread with a store of its own). */
  add(requests: S3Requests): void {
    this.#extra = { tier1: this.#extra.tier1 + requests.tier1, tier2: this.#extra.tier2 + requests.tier2 };
  }

  /** The invocation's usage so far. */
  usage(): StageUsage {
    const now = this.#requests();
    return invocationUsage(this.#now() - this.#startedAt, this.#memoryMb, {
      tier1: now.tier1 - this.#baseline.tier1 + this.#extra.tier1,
      tier2: now.tier2 - this.#baseline.tier2 + this.#extra.tier2,
    });
  }

  #requests(): S3Requests {
    return this.#stores.reduce(
      (sum, store) => {
        const r = store.requests();
        return { tier1: sum.tier1 + r.tier1, tier2: sum.tier2 + r.tier2 };
      },
      { tier1: 0, tier2: 0 },
    );
  }
}
