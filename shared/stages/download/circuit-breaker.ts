import { TransientError } from '../../errors.ts';

/** Settings of a `CircuitBreaker`. */
export interface CircuitBreakerOptions {
  /** Consecutive failures of a host that open its circuit. @default 5 */
  readonly failureThreshold?: number;
  /** How long an open circuit refuses requests before letting one trial through. @default 30_000 */
  readonly cooldownMs?: number;
  /** The time in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** The state of one host's circuit. */
export type CircuitState = 'closed' | 'open' | 'half-open';

interface HostCircuit {
  failures: number;
  state: CircuitState;
  openedAt: number;
  trialInFlight: boolean;
}

/**
 * A circuit breaker per host. After `failureThreshold` consecutive failures a host's circuit opens and
 * requests to it fail at once with `CircuitOpenError`, instead of piling more load on a struggling server
 * and burning the Lambda's time; after `cooldownMs` one trial request is let through (half-open): its
 * success closes the circuit, its failure opens it again. Shared by all downloads in a process.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  readonly #hosts = new Map<string, HostCircuit>();

  constructor(options: CircuitBreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 5;
    this.#cooldownMs = options.cooldownMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** The state of `host`'s circuit, as the next `acquire` would see it. */
  state(host: string): CircuitState {
    const circuit = this.#hosts.get(host);
    if (!circuit) return 'closed';
    if (circuit.state === 'open' && this.#now() - circuit.openedAt >= this.#cooldownMs) return 'half-open';
    return circuit.state;
  }

  /**
   * Asks to send a request to `host`. Throws `CircuitOpenError` (a `TransientError`) while the circuit is open, or half-open
   * with its one trial already under way. Every allowed request must be followed by `onSuccess`,
   * `onFailure` or `release`.
   */
  acquire(host: string): void {
    const circuit = this.#hosts.get(host);
    if (!circuit || circuit.state === 'closed') return;
    const waited = this.#now() - circuit.openedAt;
    if (circuit.state === 'open' && waited >= this.#cooldownMs) circuit.state = 'half-open';
    if (circuit.state === 'half-open' && !circuit.trialInFlight) {
      circuit.trialInFlight = true;
      return;
    }
    const retryIn = Math.max(0, this.#cooldownMs - waited);
    throw new CircuitOpenError(host, retryIn, circuit.failures);
  }

  /** The request ended without saying anything about the host's health (e.g. we aborted it): no change. */
  release(host: string): void {
    const circuit = this.#hosts.get(host);
    if (circuit) circuit.trialInFlight = false;
  }

  /** The host answered as a healthy server does (even with a 4xx): close its circuit. */
  onSuccess(host: string): void {
    this.#hosts.delete(host);
  }

  /** The host failed (5xx, 429, reset, timeout): count it, and open the circuit at the threshold. */
  onFailure(host: string): void {
    const circuit = this.#hosts.get(host) ?? {
      failures: 0,
      state: 'closed',
      openedAt: 0,
      trialInFlight: false,
    };
    circuit.failures++;
    circuit.trialInFlight = false;
    if (circuit.state === 'half-open' || circuit.failures >= this.#threshold) {
      circuit.state = 'open';
      circuit.openedAt = this.#now();
    }
    this.#hosts.set(host, circuit);
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
