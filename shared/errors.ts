/**
 * Every error sluice raises on purpose. The `name` is stable: the state machine's Retry/Catch and
 * the CLI's exit codes match on it.
 */
export class PipelineError extends Error {
  override name = 'PipelineError';
}

/** The input is not what its format promises (JSON syntax, gzip framing, UTF-8). Not retryable. */
export class MalformedInputError extends PipelineError {
  override name = 'MalformedInputError';
  constructor(
    readonly source: string,
    readonly byteOffset: number,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(`${source}: malformed input at byte ${byteOffset}: ${detail}`, options);
  }
}

/** One record is larger than the configured maximum; raising the limit is the fix. */
export class RecordTooLargeError extends PipelineError {
  override name = 'RecordTooLargeError';
  constructor(
    readonly source: string,
    readonly recordPath: string,
    readonly recordIndex: number,
    readonly byteOffset: number,
    readonly maxRecordBytes: number,
  ) {
    super(
      `${source}: record ${recordPath}[${recordIndex}] starting at byte ${byteOffset} is larger than ` +
        `maxRecordBytes (${maxRecordBytes}). Raise "maxRecordBytes" in the dataset config if such records are expected.`,
    );
  }
}

/** A configuration file or option is invalid; the message lists each problem and how to fix it. */
export class ConfigError extends PipelineError {
  override name = 'ConfigError';
}

/** The requested object does not exist in the store. */
export class ObjectNotFoundError extends PipelineError {
  override name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** A key or path that would escape its root or is otherwise unsafe. */
export class InvalidKeyError extends PipelineError {
  override name = 'InvalidKeyError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
  }
}
