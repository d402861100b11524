import { readFile } from 'node:fs/promises';
import { ConfigError, SecretNotFoundError } from '../../errors.ts';
import type { SecretStore } from '../../ports/secret-store.ts';

/**
 * A `SecretStore` over a JSON file `{ "<id>": "<value>", … }`, for local runs. The file is read once, on
 * the first `getSecret`. Errors about the file never quote its content: a JSON syntax error from V8
 * would show the text around the problem, which may be a secret.
 */
export class FileSecretStore implements SecretStore {
  readonly #path: string;
  /** The file the secrets are read from. */
  get path(): string {
    return this.#path;
  }
  #secrets: Promise<ReadonlyMap<string, string>> | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  async getSecret(id: string): Promise<string> {
    // A failed load is not cached: the next call retries, e.g. after the file has been fixed.
    this.#secrets ??= this.#load().catch((error: unknown) => {
      this.#secrets = undefined;
      throw error;
    });
    const value = (await this.#secrets).get(id);
    if (value === undefined) throw new SecretNotFoundError(id, `secrets file ${this.#path}`);
    return value;
  }

  async #load(): Promise<ReadonlyMap<string, string>> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new ConfigError(`secrets file ${this.#path}: cannot read it (${code})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ConfigError(
        `secrets file ${this.#path}: not valid JSON (content not shown: it holds secrets)`,
      );
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(
        `secrets file ${this.#path}: expected a JSON object of secret id to string value`,
      );
    }
    const secrets = new Map<string, string>();
    for (const [id, value] of Object.entries(parsed)) {
      if (typeof value !== 'string') {
        throw new ConfigError(
          `secrets file ${this.#path}: the value of ${JSON.stringify(id)} is not a string`,
        );
      }
      secrets.set(id, value);
    }
    return secrets;
  }
}
