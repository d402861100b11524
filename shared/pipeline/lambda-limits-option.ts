import { ConfigError } from '../errors.ts';

/**
 * `sluice run --lambda-limits timeout=SECONDS,tmp=MB[,memory=MB]`: every Lambda task invocation runs as
 * Lambda would under those limits, in a process of its own (so that it can be killed):
 *
 * - its context's `getRemainingTimeInMillis()` counts down from the timeout, from the moment the
 *   invocation starts (the process's start and module loading are Lambda's init phase, not counted);
 * - its scratch folder (the handler's workDir) is watched: past `tmp` MB the invocation is killed and
 *   fails as a full /tmp does (`ENOSPC`, naming the folder);
 * - at its timeout it is killed and fails with `Sandbox.Timedout`, as Step Functions reports a Lambda
 *   that timed out; a process that dies otherwise fails with `Runtime.ExitError`;
 * - `memory` is the context's `memoryLimitInMB` (ingest slices by it) and the process's heap limit.
 *
 * The scratch is measured every SCRATCH_POLL_MS (lambda-limits.ts) and once more at the end, so a burst shorter than that
 * between two polls may pass unseen; what the run reports is the largest use measured.
 */
export interface LambdaLimits {
  readonly timeoutSeconds: number;
  readonly tmpMb: number;
  readonly memoryMb?: number;
}

/** `timeout=2,tmp=8[,memory=256]` -> LambdaLimits; a ConfigError saying what is expected otherwise. */
export function parseLambdaLimits(text: string): LambdaLimits {
  const values: Record<string, number> = {};
  for (const part of text.split(',')) {
    const [key, value, ...rest] = part.split('=');
    const number = Number(value);
    if (!key || rest.length > 0 || !['timeout', 'tmp', 'memory'].includes(key) || !(number > 0)) {
      throw new ConfigError(
        `--lambda-limits ${text}: expected timeout=SECONDS,tmp=MB[,memory=MB] with positive numbers ` +
          '(e.g. timeout=900,tmp=10240,memory=3008 for the largest Lambda)',
      );
    }
    values[key] = number;
  }
  if (values.timeout === undefined || values.tmp === undefined) {
    throw new ConfigError(`--lambda-limits ${text}: both timeout=SECONDS and tmp=MB are required`);
  }
  return { timeoutSeconds: values.timeout, tmpMb: values.tmp, memoryMb: values.memory };
}
