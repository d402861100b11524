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

/**
 * The document does not hold the records its dataset says it has: a required record path is missing,
 * holds something other than an array, or is an empty array the config does not allow; or the top level
 * is not what the path needs. The message says what was found instead and what to do (often: the file
 * belongs to another dataset). Not retryable.
 */
export class MissingRecordPathError extends PipelineError {
  override name = 'MissingRecordPathError';
  constructor(
    readonly source: string,
    /** The record path, as configured (`in_network[*]`). */
    readonly recordPath: string,
    /** What was found instead, e.g. `the top level has "out_of_network", "version"`. */
    readonly found: string,
    /** What to do about it. */
    readonly hint: string,
  ) {
    super(`${source}: ${found}; ${hint}`);
  }
}

/**
 * A value nested deeper than sluice can carry: a header value beyond `HEADER_MAX_DEPTH` (header values
 * are scalars in every TiC schema, and travel in manifests and summaries), or a record some stage ran
 * out of stack on. Named by file, value and byte offset instead of a bare "Maximum call stack size
 * exceeded". Not retryable.
 */
export class NestingTooDeepError extends PipelineError {
  override name = 'NestingTooDeepError';
  constructor(
    readonly source: string,
    /** Which value: `record in_network[3]`, `header reporting_entity_name`. */
    readonly value: string,
    readonly byteOffset: number,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${source}: ${value} starting at byte ${byteOffset} is nested too deeply: ${detail}`, options);
  }
}

/** A configuration file or option is invalid; the message lists each problem and how to fix it. */
export class ConfigError extends PipelineError {
  override name = 'ConfigError';
}

/**
 * The disk filled up while something was being written (ENOSPC, or a quota: EDQUOT). Says what was being
 * written, where, and how full that filesystem is. The write was abandoned whole (nothing half-written
 * stays under its name) and the run never commits, so freeing space and running again is safe.
 */
export class DiskFullError extends PipelineError {
  override name = 'DiskFullError';
  constructor(
    readonly path: string,
    readonly what: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `no space left on the device writing ${what} (${path}): ${detail}. Free space there, or point ` +
        '--lake (the lake) or TMPDIR (scratch space) at a larger disk, and run again: no version of this ' +
        'run became current, and the rerun resumes from what it finished',
      options,
    );
  }
}

/** Whether an error is a full disk or quota: from Node (`code`) or from DuckDB (only its message says). */
export function isDiskFull(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: string; message?: string };
  return (
    code === 'ENOSPC' ||
    code === 'EDQUOT' ||
    /No space left on device|Disk quota exceeded/.test(message ?? '')
  );
}

/** There is too little free space for a run, found before it starts (`sluice run`'s pre-flight check). */
export class InsufficientSpaceError extends ConfigError {
  override name = 'InsufficientSpaceError';
}

/** The requested object does not exist in the store. */
export class ObjectNotFoundError extends PipelineError {
  override name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** A multipart upload that no longer exists: completed, aborted, or removed by a lifecycle rule. */
export class UploadNotFoundError extends PipelineError {
  override name = 'UploadNotFoundError';
  constructor(
    readonly key: string,
    readonly uploadId: string,
    options?: ErrorOptions,
  ) {
    super(`multipart upload ${uploadId} of ${key} no longer exists (completed, aborted or expired)`, options);
  }
}

/**
 * A conditional write lost: `ifAbsent` found an object already there, or `ifMatch` found another version
 * (or none). Another writer got there first; S3 answers `412 Precondition Failed` (or `409` while a
 * concurrent conditional write is in flight).
 */
export class PreconditionFailedError extends PipelineError {
  override name = 'PreconditionFailedError';
  constructor(
    readonly key: string,
    readonly condition: 'ifAbsent' | 'ifMatch',
    options?: ErrorOptions,
  ) {
    super(
      condition === 'ifAbsent'
        ? `precondition failed for ${key}: ifAbsent, but an object with this key exists`
        : `precondition failed for ${key}: ifMatch, but the object is absent or has another etag`,
      options,
    );
  }
}

/**
 * The store refused an action on a key (S3 `403 Access Denied`) for an object that exists, or refused the
 * listing that tells whether it exists. Not retried: the role's policy must grant the action.
 */
export class PermissionDeniedError extends PipelineError {
  override name = 'PermissionDeniedError';
  constructor(
    readonly key: string,
    readonly action: string,
    options?: ErrorOptions,
  ) {
    super(
      `permission denied: ${action} on ${key}. Grant ${action} on this key (or its prefix) to the role ` +
        'that runs this stage; see docs/DEPLOY.md for the policies sluice deploys',
      options,
    );
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

/**
 * An HTTP download failed for a reason retrying will not fix: a 4xx answer, a body over the size limit,
 * too many redirects. `url` never carries credentials (userinfo and secret query values are redacted).
 */
export class DownloadError extends PipelineError {
  override name = 'DownloadError';
  constructor(
    readonly url: string,
    readonly status: number | undefined,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`download ${url}: ${detail}`, options);
  }
}

/**
 * A failure that may go away on its own (5xx, 429, reset connection, timeout, open circuit): the state
 * machine retries on this name. The message says what failed and where, without credentials.
 */
export class TransientError extends PipelineError {
  override name = 'TransientError';
}

/** A URL that sluice refuses to fetch: wrong scheme, credentials in it, or a host that resolves to a non-public address. */
export class UnsafeUrlError extends PipelineError {
  override name = 'UnsafeUrlError';
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`refusing to fetch ${url}: ${reason}`);
  }
}

/** Downloaded bytes do not hash to the declared sha256; nothing was stored. */
export class ChecksumMismatchError extends PipelineError {
  override name = 'ChecksumMismatchError';
  constructor(
    readonly source: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${source}: sha256 mismatch: expected ${expected}, got ${actual}`);
  }
}

/**
 * The source was written to while a run read it (its size, ETag or change time moved): the bytes read are
 * of no one version, so nothing of them may be committed. The next run reads the file as it is then.
 */
export class SourceModifiedError extends PipelineError {
  override name = 'SourceModifiedError';
  constructor(
    readonly source: string,
    what: string,
  ) {
    super(
      `${source}: the file changed while it was read (${what}): nothing of this run was committed. ` +
        'Run it again once the file is completely written (write it elsewhere and rename it into place).',
    );
  }
}

/** A secret store has no secret with this id. The message names the id, never a value. */
export class SecretNotFoundError extends PipelineError {
  override name = 'SecretNotFoundError';
  constructor(
    readonly secretId: string,
    where: string,
  ) {
    super(`secret ${JSON.stringify(secretId)} not found in ${where}`);
  }
}

/** A record broke a contract rule whose severity is `fail`: the run stops rather than publish it. */
export class ContractViolationError extends PipelineError {
  override name = 'ContractViolationError';
}

/** The data has fields or types the contract does not know, and the contract says to fail on drift. */
export class SchemaDriftError extends PipelineError {
  override name = 'SchemaDriftError';
}

/**
 * The query catalog (Glue) refused or lacks what a commit needs: a denied action, a table that is not
 * there. Retrying will not help; the message names the action and the table, and what to fix.
 */
export class CatalogError extends PipelineError {
  override name = 'CatalogError';
  constructor(
    readonly action: string,
    readonly table: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`${action} on ${table}: ${detail}`, options);
  }
}

/** Counts or checksums do not add up: a run never reports success with a hole in it. */
export class ReconciliationError extends PipelineError {
  override name = 'ReconciliationError';
  constructor(
    readonly mismatches: readonly string[],
    readonly reportKey?: string,
  ) {
    super(`reconciliation failed: ${mismatches.join('; ')}${reportKey ? ` (report: ${reportKey})` : ''}`);
  }
}

/**
 * A run set aside more of its records in quarantine than its threshold allows (or all of them): the
 * records are accounted for, but the run is not a success. `threshold` is the share allowed (0–1).
 */
export class QuarantineThresholdError extends PipelineError {
  override name = 'QuarantineThresholdError';
  constructor(
    readonly quarantined: number,
    readonly records: number,
    readonly threshold: number,
    readonly reportKey?: string,
  ) {
    const share = records === 0 ? 0 : quarantined / records;
    // The run failed, so no reader sees its _quarantine table: its report has examples of each rule.
    const where = `the run's report lists the rules they broke, with examples${reportKey ? ` (${reportKey}; \`sluice report\` shows it)` : ''}`;
    super(
      quarantined === records
        ? `all ${records} records were quarantined, so nothing reached silver: ${where}`
        : `${quarantined} of ${records} records (${percent(share)}) were quarantined, more than the ` +
            `threshold of ${percent(threshold)}: ${where}. If that share is expected, set ` +
            `quarantineRateThreshold to ${Math.ceil(share * 1000) / 1000} or more.`,
    );
  }
}

/** 0.05 → "5%", 0.3333 → "33.33%". */
function percent(share: number): string {
  return `${Math.round(share * 10_000) / 100}%`;
}
