import { InvalidKeyError } from '../errors.ts';
import type { ByteRange } from '../ports/object-store.ts';

/** S3's limit on a key's UTF-8 length; the local store enforces it too so both accept the same keys. */
export const MAX_KEY_BYTES = 1024;

/**
 * Checks that `key` is a safe object key, the same way for every adapter: non-empty, `/`-separated,
 * relative, no `\`, no control characters, no empty, `.` or `..` segments, at most 1024 UTF-8 bytes.
 * Such a key can be joined onto a directory without escaping it. Throws `InvalidKeyError` with the reason.
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError(String(key), 'key is empty');
  assertSafeCharacters(key, key);
  for (const segment of key.split('/')) assertValidSegment(key, segment);
}

/**
 * Checks a prefix for `list`: `''` or a key-like string that may end with `/` or stop in the middle of a
 * segment (`bronze/ds/part-0` matches `bronze/ds/part-00001.gz`). Every complete segment follows the key
 * rules. Throws `InvalidKeyError` with the reason.
 */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'prefix is not a string');
  if (prefix === '') return;
  assertSafeCharacters(prefix, prefix);
  const segments = prefix.split('/');
  // The last piece is either '' (prefix ends with '/') or the start of a name, which may be anything.
  segments.pop();
  for (const segment of segments) assertValidSegment(prefix, segment);
}

/** Checks an inclusive byte range; adapters check it first because S3 silently ignores a malformed Range. */
export function assertValidRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`byte range start must be an integer >= 0, got ${start}`);
  }
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new RangeError(`byte range end must be an integer >= start (${start}), got ${end}`);
  }
}

function assertSafeCharacters(value: string, key: string): void {
  if (value.startsWith('/')) throw new InvalidKeyError(key, "starts with '/' (keys are relative)");
  if (value.includes('\\')) throw new InvalidKeyError(key, "contains '\\' (use '/' to separate segments)");
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    // C0 controls (incl. NUL), DEL and C1 controls: invisible in logs and unsafe in file names.
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
      throw new InvalidKeyError(key, `contains control character U+${code.toString(16).padStart(4, '0')}`);
    }
  }
  // A lone surrogate has no UTF-8 encoding; S3 would reject it and a file name would be mangled.
  if (/\p{Cs}/u.test(value)) throw new InvalidKeyError(key, 'is not valid Unicode (lone surrogate)');
  if (Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) {
    throw new InvalidKeyError(key, `is longer than ${MAX_KEY_BYTES} bytes in UTF-8`);
  }
}

function assertValidSegment(key: string, segment: string): void {
  if (segment === '') throw new InvalidKeyError(key, "has an empty segment ('//' or a trailing '/')");
  if (segment === '.' || segment === '..') throw new InvalidKeyError(key, `has a '${segment}' segment`);
}
