import type { z } from 'zod';
import { ObjectNotFoundError } from '../errors.ts';
import type { ObjectStore } from '../ports/object-store.ts';

/**
 * Reading the small JSON objects sluice keeps beside its data (checkpoints, manifests, plans, leases,
 * commit records), where "absent" and "not of this shape" both mean "there is none to use".
 */

/** An object's text, or undefined if there is no such object. */
export async function readTextIfPresent(store: ObjectStore, key: string): Promise<string | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await store.read(key)) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined;
    throw error;
  }
}

/**
 * An object parsed as JSON and checked by `schema`, or undefined if absent, not JSON or not of that shape.
 * `parse` reads the text (e.g. `parseExact`, where integers beyond 2^53 must keep their digits).
 */
export async function readJsonIfValid<T>(
  store: ObjectStore,
  key: string,
  schema: z.ZodType<T>,
  parse: (text: string) => unknown = JSON.parse,
): Promise<T | undefined> {
  const text = await readTextIfPresent(store, key);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = parse(text);
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
