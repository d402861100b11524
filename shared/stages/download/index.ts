/** The download stage: untrusted HTTP(S) sources into the landing store, with credentials from a secret store. */
export {
  CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
  type CircuitState,
} from './circuit-breaker.ts';
export type { CredentialsRef } from './credentials.ts';
export {
  type DownloadDeps,
  type DownloadInput,
  type DownloadOutcome,
  type DownloadPartial,
  type DownloadResult,
  downloadToLanding,
  type FetchOptions,
  type RetryEvent,
} from './download.ts';
export { DownloadCheckpoint, downloadCheckpointKey } from './download-checkpoint.ts';
export { HostLimiter, type HostLimiterOptions } from './host-limiter.ts';
export { landingKey } from './landing-key.ts';
export { DEFAULT_PART_BYTES, partSizeFor } from './part-size.ts';
export { fullJitterDelay, parseRetryAfter, retryDelay } from './retry.ts';
export { classifyAddress, redactUrl, type UrlSafetyOptions } from './url-safety.ts';
