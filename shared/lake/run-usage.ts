import { z } from 'zod';
import type { ObjectStore } from '../ports/object-store.ts';
import { type RunUsage, type StageUsage, sumRunUsage } from '../workflow/run-cost.ts';
import { readJsonIfValid } from './read-json.ts';

/**
 * The usage records of runs: one small JSON object per invocation, written by the invocation itself,
 * under the run's execution. One object per invocation (keyed by its request id) rather than one
 * read-modify-write total: invocations of one run run in parallel (silver's groups), and a retried
 * invocation is compute paid for, so it is a record of its own.
 */

/** The lake prefix of usage records. */
export const USAGE_PREFIX = '_usage/';

/** Where the records of one execution live. */
export const runUsagePrefix = (executionName: string) => `${USAGE_PREFIX}${executionName}/`;

/** The record of one invocation of one stage. */
export const invocationUsageKey = (executionName: string, stage: string, invocationId: string) =>
  `${runUsagePrefix(executionName)}${stage}/${invocationId}.json`;

const StageUsageRecord = z.object({
  stage: z.string().min(1),
  usage: z.object({
    invocations: z.number().int().nonnegative(),
    billedMs: z.number().nonnegative(),
    gbSeconds: z.number().nonnegative(),
    s3Tier1Requests: z.number().int().nonnegative(),
    s3Tier2Requests: z.number().int().nonnegative(),
  }),
});

/** Write the record of one invocation (a rerun of the same invocation id replaces it). */
export async function recordInvocationUsage(
  store: ObjectStore,
  record: { executionName: string; stage: string; invocationId: string; usage: StageUsage },
): Promise<void> {
  const { executionName, stage, invocationId, usage } = record;
  await store.write(
    invocationUsageKey(executionName, stage, invocationId),
    JSON.stringify({ stage, usage }),
    {
      contentType: 'application/json',
    },
  );
}

/** A run's usage, summed from its records; `unreadable` names the records that could not be read. */
export async function readRunUsage(
  store: ObjectStore,
  executionName: string,
  stateTransitions: number,
): Promise<{ usage: RunUsage; unreadable: string[] }> {
  const records: z.infer<typeof StageUsageRecord>[] = [];
  const unreadable: string[] = [];
  for await (const { key } of store.list(runUsagePrefix(executionName))) {
    const record = await readJsonIfValid(store, key, StageUsageRecord);
    if (record) records.push(record);
    else unreadable.push(key);
  }
  return { usage: sumRunUsage(records, stateTransitions), unreadable };
}
