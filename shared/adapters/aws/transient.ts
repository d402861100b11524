import { PipelineError, TransientError } from '../../errors.ts';

/**
 * Which failures of AWS and the network mean "try again later", and how a handler says so: the state
 * machine retries only errors it knows by name (shared/workflow/definition.ts, TRANSIENT_ERRORS), so a
 * reset connection must reach it as a `TransientError`, not as a nameless `Error` it would send straight
 * to the failure queue.
 */

/** Node's error codes of a connection that broke or never came up. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNREFUSED',
  'EAI_AGAIN',
]);

/** Error names of AWS SDK calls that failed for reasons on AWS's side or in transit. */
const TRANSIENT_NAMES: ReadonlySet<string> = new Set([
  'TimeoutError',
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
]);

/** How deep `isTransient` follows `cause`: a wrapped network error is still a network error. */
const MAX_CAUSE_DEPTH = 5;

/**
 * True when `error` (or what it wraps) is a network-level failure or an AWS SDK error the SDK itself
 * marks retryable (`$retryable`) or names as transient. sluice's own errors keep their verdict: a
 * `MalformedInputError` is permanent whatever it wraps, a `TransientError` is transient.
 */
export function isTransient(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH; depth++) {
    if (typeof current !== 'object' || current === null) return false;
    if (current instanceof TransientError) return true;
    if (current instanceof PipelineError) return false;
    const { code, name, $retryable } = current as { code?: unknown; name?: unknown; $retryable?: unknown };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (typeof name === 'string' && TRANSIENT_NAMES.has(name)) return true;
    if ($retryable) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** `error` as a `TransientError` (with `error` as its cause) if it is transient; otherwise `error` itself. */
export function asTransient(error: unknown): unknown {
  if (error instanceof TransientError || !isTransient(error)) return error;
  const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return new TransientError(`transient failure, worth retrying: ${detail}`, { cause: error });
}

/** Run `work`, rethrowing a transient failure as a `TransientError`, anything else unchanged. */
export async function withTransientErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw asTransient(error);
  }
}
