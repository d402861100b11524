import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PipelineError, SecretNotFoundError, TransientError } from '../../errors.ts';
import type { SecretStore } from '../../ports/secret-store.ts';

/** Settings of a `SecretsManagerStore`. */
export interface SecretsManagerStoreOptions {
  readonly client: SecretsManagerClient;
  /** How long a fetched value is reused before it is fetched again. @default 300_000 (5 minutes) */
  readonly ttlMs?: number;
  /** The time in milliseconds, for the cache. @default Date.now */
  readonly now?: () => number;
}

interface CacheEntry {
  readonly value: Promise<string>;
  readonly expiresAt: number;
}

/** AWS error names worth retrying: the service or the network had a bad moment. */
const TRANSIENT_ERRORS = new Set([
  'InternalServiceError',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

/**
 * A `SecretStore` on AWS Secrets Manager (`GetSecretValue`, current version), with an in-memory cache per
 * secret id. The cache keeps a warm Lambda from calling Secrets Manager on every download (cost, latency,
 * API throttling) while a rotated secret is still picked up within `ttlMs`. Concurrent reads of one id
 * share one request; failures are not cached.
 */
export class SecretsManagerStore implements SecretStore {
  readonly #client: SecretsManagerClient;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();

  constructor(options: SecretsManagerStoreOptions) {
    this.#client = options.client;
    this.#ttlMs = options.ttlMs ?? 300_000;
    this.#now = options.now ?? Date.now;
  }

  async getSecret(id: string): Promise<string> {
    const now = this.#now();
    const cached = this.#cache.get(id);
    if (cached && cached.expiresAt > now) return cached.value;
    const value = this.#fetch(id);
    const entry = { value, expiresAt: now + this.#ttlMs };
    this.#cache.set(id, entry);
    value.catch(() => {
      // Only drop our own entry: a newer fetch may have replaced it meanwhile.
      if (this.#cache.get(id) === entry) this.#cache.delete(id);
    });
    return value;
  }

  async #fetch(id: string): Promise<string> {
    let out: { SecretString?: string; SecretBinary?: Uint8Array };
    try {
      out = await this.#client.send(new GetSecretValueCommand({ SecretId: id }));
    } catch (error) {
      throw mapError(id, error);
    }
    if (out.SecretString !== undefined) return out.SecretString;
    if (out.SecretBinary !== undefined) return Buffer.from(out.SecretBinary).toString('utf8');
    throw new PipelineError(
      `Secrets Manager: secret ${JSON.stringify(id)} has neither a string nor a binary value`,
    );
  }
}

/** Turns an SDK error into one that names the secret id; SDK errors carry request details, never the value. */
function mapError(id: string, error: unknown): Error {
  const { name = 'Error', message = '' } = (error ?? {}) as { name?: string; message?: string };
  if (name === 'ResourceNotFoundException') return new SecretNotFoundError(id, 'AWS Secrets Manager');
  const detail = `Secrets Manager: reading secret ${JSON.stringify(id)} failed: ${name}${message ? `: ${message}` : ''}`;
  const status = (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata
    ?.httpStatusCode;
  const transient =
    TRANSIENT_ERRORS.has(name) || (status !== undefined && status >= 500) || isNetworkError(error);
  return transient
    ? new TransientError(detail, { cause: error })
    : new PipelineError(detail, { cause: error });
}

function isNetworkError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'ECONNREFUSED' || code === 'ETIMEDOUT' || code === 'EPIPE';
}
