import { ConfigError } from '../../errors.ts';
import type { SecretStore } from '../../ports/secret-store.ts';

/** Where a source's credential comes from and how it is sent. Only the secret's id is ever in a payload. */
export interface CredentialsRef {
  readonly secretId: string;
  /**
   * `bearer`: `Authorization: Bearer <secret>`; `basic`: the secret is `user:password`;
   * `header`: header `name` set to the secret; `query`: query parameter `name` set to the secret.
   */
  readonly kind: 'bearer' | 'basic' | 'header' | 'query';
  /** The header or query parameter name, for kinds `header` and `query`. */
  readonly name?: string;
}

/** A credential ready to be put on requests, plus what must be scrubbed from anything shown. */
export interface AppliedCredentials {
  /** Headers to send to the source's origin. */
  readonly headers: Readonly<Record<string, string>>;
  /** A query parameter to set on requests to the source's origin. */
  readonly query?: { readonly name: string; readonly value: string };
  /** Query parameter names whose values `redactUrl` must hide. */
  readonly redactParams: readonly string[];
  /** The secret in every form it is sent in; no message, log line or result may contain any of them. */
  readonly secrets: readonly string[];
}

/** Headers the download sets itself (framing, resume); a credential must not replace them. */
const RESERVED_HEADERS = new Set([
  'host',
  'range',
  'if-range',
  'accept-encoding',
  'connection',
  'content-length',
  'transfer-encoding',
  'user-agent',
]);

/** An RFC 9110 token: what a header name may be. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Reads the secret and turns it into headers or a query parameter. Errors name the secret id, never the value. */
export async function applyCredentials(ref: CredentialsRef, store: SecretStore): Promise<AppliedCredentials> {
  const where = `credentials (secret ${JSON.stringify(ref.secretId)}, kind ${ref.kind})`;
  if ((ref.kind === 'header' || ref.kind === 'query') && !ref.name) {
    throw new ConfigError(
      `${where}: "name" is required: the ${ref.kind === 'header' ? 'header' : 'query parameter'} to send`,
    );
  }
  if (ref.kind === 'header' && !TOKEN.test(ref.name ?? '')) {
    throw new ConfigError(`${where}: ${JSON.stringify(ref.name)} is not a valid header name`);
  }
  if (ref.kind === 'header' && RESERVED_HEADERS.has(ref.name!.toLowerCase())) {
    throw new ConfigError(`${where}: header ${JSON.stringify(ref.name)} is set by the download itself`);
  }
  // A trailing newline is what `echo secret > file` and many consoles leave; it is never part of a token.
  const secret = (await store.getSecret(ref.secretId)).replace(/\r?\n$/, '');
  if (secret === '') throw new ConfigError(`${where}: the secret is empty`);
  const forms = [secret, encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)];
  if (ref.kind === 'query') {
    return {
      headers: {},
      query: { name: ref.name!, value: secret },
      redactParams: [ref.name!],
      secrets: unique(forms),
    };
  }
  // Control characters would split or corrupt the header (and Node would throw naming the header anyway).
  // biome-ignore lint/suspicious/noControlCharactersInRegex: that is exactly what is looked for
  if (/[\u0000-\u001f\u007f]/.test(secret)) {
    throw new ConfigError(`${where}: the secret contains control characters and cannot be sent in a header`);
  }
  if (ref.kind === 'bearer') {
    return { headers: { authorization: `Bearer ${secret}` }, redactParams: [], secrets: unique(forms) };
  }
  if (ref.kind === 'header') {
    return { headers: { [ref.name!.toLowerCase()]: secret }, redactParams: [], secrets: unique(forms) };
  }
  const colon = secret.indexOf(':');
  if (colon <= 0) throw new ConfigError(`${where}: the secret must have the form user:password`);
  const encoded = Buffer.from(secret, 'utf8').toString('base64');
  const password = secret.slice(colon + 1);
  return {
    headers: { authorization: `Basic ${encoded}` },
    redactParams: [],
    secrets: unique([...forms, encoded, ...(password.length >= MIN_SCRUB_LENGTH ? [password] : [])]),
  };
}

/** Shorter strings are not scrubbed from messages: replacing every `a` would only garble them. */
const MIN_SCRUB_LENGTH = 4;

function unique(values: string[]): string[] {
  return [...new Set(values)].filter((v) => v.length >= MIN_SCRUB_LENGTH);
}

/**
 * Replaces every secret form in the error's message and stack, and in its causes', with `***`: a last
 * line of defence should some lower layer ever quote a request. Returns the same error.
 */
export function scrubError<E>(error: E, secrets: readonly string[]): E {
  if (secrets.length === 0) return error;
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current instanceof Error && !seen.has(current)) {
    seen.add(current);
    current.message = scrub(current.message, secrets);
    if (current.stack) current.stack = scrub(current.stack, secrets);
    // Own string properties too (`url`, `reason`, …): they are what JSON.stringify and loggers print.
    const fields = current as unknown as Record<string, unknown>;
    for (const name of Object.keys(fields)) {
      const value = fields[name];
      if (typeof value === 'string') fields[name] = scrub(value, secrets);
    }
    current = current.cause;
  }
  return error;
}

/** `text` with every secret form replaced by `***`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}
