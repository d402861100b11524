/**
 * Reads secret values (API tokens, passwords) by id. Values stay in memory: callers must never put
 * them in errors, logs, return values or state payloads; ids are safe to show.
 */
export interface SecretStore {
  /** The secret's value. Throws `SecretNotFoundError` (naming the id, not a value) if there is none. */
  getSecret(id: string): Promise<string>;
}
