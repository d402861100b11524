/** The download stage: untrusted HTTP(S) sources into the landing store, with credentials from a secret store. */
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
export { landingKey } from './landing-key.ts';
export { DEFAULT_PART_BYTES, partSizeFor } from './part-size.ts';
export {
  CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
  type CircuitStateName,
  HostLimiter,
  type HostLimiterOptions,
  parseRetryAfter,
  retryBackoff,
  retryPolicy,
} from './resilience.ts';
export { classifyAddress, redactUrl, type UrlSafetyOptions } from './url-safety.ts';
