import type { Clock } from '../../ports/clock.ts';
import type { SliceBudget } from './ingest-to-bronze.ts';

/**
 * A slice ends once it has used `sliceMs` of time or its process holds more than `maxRssBytes`. Checked
 * only at segment boundaries, so the budget must leave room for one more segment and the part uploads:
 * that is the reserve the Lambda handler keeps (see `lambdaSliceBudget`).
 */
export function timeBudget(
  clock: Clock,
  sliceMs: number,
  maxRssBytes = Number.POSITIVE_INFINITY,
): SliceBudget {
  const deadline = clock.now().getTime() + sliceMs;
  return {
    shouldStop: () => clock.now().getTime() >= deadline || process.memoryUsage.rss() > maxRssBytes,
  };
}

/**
 * Time a Lambda slice keeps in reserve: a 256 MiB segment at the resumable reader's ~60–100 MB/s takes a
 * few seconds, the last part uploads a few more, the checkpoint one write. A minute is ample.
 */
export const LAMBDA_SLICE_RESERVE_MS = 60_000;

/**
 * The budget of one Lambda invocation: its remaining time less the reserve (at most half of it, so a
 * short timeout, e.g. `sluice run --lambda-limits timeout=2`, still slices), 80 % of its memory.
 */
export function lambdaSliceBudget(
  clock: Clock,
  context: { getRemainingTimeInMillis(): number; readonly memoryLimitInMB: string },
): SliceBudget {
  const remainingMs = context.getRemainingTimeInMillis();
  const sliceMs = Math.max(0, remainingMs - Math.min(LAMBDA_SLICE_RESERVE_MS, remainingMs / 2));
  return timeBudget(clock, sliceMs, Number(context.memoryLimitInMB) * 1024 * 1024 * 0.8);
}

/**
 * `budget`, and besides it a bound on the uncompressed input one slice reads (the deployment config's
 * `ingest.sliceMaxMb`, `sluice run --slice-mb`): the slice also ends at the first segment boundary at or
 * past `maxSliceBytes`. The bound only ever ends a slice earlier, never later than its time allows, and
 * it cuts the same slices however fast the machine is: checkpoints at predictable places, and a number
 * of invocations known from the file's size. Without `budget` the bytes alone decide.
 */
export function withSliceMaxBytes(budget: SliceBudget | undefined, maxSliceBytes: number): SliceBudget {
  return {
    shouldStop: (progress) =>
      (progress !== undefined && progress.sliceBytes >= maxSliceBytes) ||
      (budget?.shouldStop(progress) ?? false),
  };
}
