import { InvalidTableSpecError } from '../../adapters/duckdb/parquet-table-writer.ts';
import * as sluiceErrors from '../../errors.ts';
import { InvalidRowError, UnknownTableError } from '../../ports/table-writer.ts';

/**
 * Errors across a thread boundary. Structured clone keeps only the built-in error types, and the
 * workflow's Retry/Catch, the CLI's exit codes and the tests all go by a sluice error's name (and
 * `instanceof PipelineError` decides whether an error may be transient), so an error a worker raises
 * is sent as data and rebuilt as an instance of its own class, with the same name and message.
 */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
  /** The error's own fields (`key`, `mismatches`, …), as far as they are plain data. */
  readonly fields: Record<string, unknown>;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/** Every error class a silver worker can raise on purpose, by class name (which is each one's `name`). */
const CLASSES: ReadonlyMap<string, ErrorClass> = new Map(
  [
    ...(Object.values(sluiceErrors) as unknown[]).filter(
      (value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof Error,
    ),
    InvalidRowError,
    UnknownTableError,
    InvalidTableSpecError,
  ].map((type) => [type.name, type]),
);

export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), fields: {} };
  const fields: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(error)) {
    if (field === 'name' || field === 'message' || field === 'stack' || field === 'cause') continue;
    try {
      fields[field] = structuredClone(value);
    } catch {
      // Not plain data (a function, a native handle): the name and message still say what happened.
    }
  }
  return { name: error.name, message: error.message, stack: error.stack, fields };
}

/** The error again, as an instance of its class when it is a known one (else an `Error` with its name). */
export function reviveError(serialized: SerializedError): Error {
  const type = CLASSES.get(serialized.name) ?? builtInErrorClass(serialized.name);
  // Not constructed: several classes build their message from constructor arguments the data lacks.
  const error: Error = type ? Object.create(type.prototype) : new Error(serialized.message);
  // As on a constructed one: `name` is a class field (enumerable), `message` and `stack` are not.
  Object.assign(error, serialized.fields, { name: serialized.name });
  for (const [field, value] of [
    ['message', serialized.message],
    ['stack', serialized.stack],
  ] as const) {
    Object.defineProperty(error, field, { value, writable: true, configurable: true, enumerable: false });
  }
  return error;
}

function builtInErrorClass(name: string): ErrorClass | undefined {
  const candidate = (globalThis as Record<string, unknown>)[name];
  return typeof candidate === 'function' && candidate.prototype instanceof Error
    ? (candidate as ErrorClass)
    : undefined;
}
