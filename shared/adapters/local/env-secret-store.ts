import { SecretNotFoundError } from '../../errors.ts';
import type { SecretStore } from '../../ports/secret-store.ts';

/** The prefix of the environment variables that hold secrets. */
export const SECRET_ENV_PREFIX = 'SLUICE_SECRET_';

/** The variable that holds secret `id`: `SLUICE_SECRET_` + the id uppercased, every non-alphanumeric as `_`. */
export function secretEnvName(id: string): string {
  return SECRET_ENV_PREFIX + id.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * A `SecretStore` over environment variables, for local runs: secret `source/api-token` is
 * `SLUICE_SECRET_SOURCE_API_TOKEN`. The environment is passed in (usually `process.env` at the
 * composition root) so that this adapter is not a hidden reader of the process environment.
 */
export class EnvSecretStore implements SecretStore {
  readonly #env: Readonly<Record<string, string | undefined>>;

  constructor(env: Readonly<Record<string, string | undefined>>) {
    this.#env = env;
  }

  async getSecret(id: string): Promise<string> {
    const name = secretEnvName(id);
    const value = this.#env[name];
    // An empty variable is as good as none: an empty credential would only fail later, less clearly.
    if (value === undefined || value === '')
      throw new SecretNotFoundError(id, `environment variable ${name}`);
    return value;
  }
}
