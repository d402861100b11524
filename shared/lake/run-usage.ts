import { z } from 'zod';
import type { UsageMeter } from '../adapters/usage-meter.ts';
import { inPool, mapInPool } from '../in-pool.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { ingestWorkflowDefinition } from '../workflow/definition.ts';
import { executionNameOf } from '../workflow/execution.ts';
import {
  addUsage,
  estimateStateTransitions,
  type PriceList,
  type RunCostReport,
  type RunUsage,
  runCostReport,
  type StageUsage,
  statesAfter,
  sumRunUsage,
  taskStates,
} from '../workflow/run-cost.ts';
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
  const keys: string[] = [];
  for await (const { key } of store.list(runUsagePrefix(executionName))) keys.push(key);
  // One record per invocation, thousands for a large file: read several at once.
  const read = await mapInPool(keys, RECORDS_IN_FLIGHT, (key) =>
    readJsonIfValid(store, key, StageUsageRecord),
  );
  const records = read.filter((record) => record !== undefined);
  const unreadable = keys.filter((_, i) => read[i] === undefined);
  return { usage: sumRunUsage(records, stateTransitions), unreadable };
}

/**
 * Removes the records of an execution that ended (priced, or unchanged): a local execution's name is the
 * same for every run of one file, so records left behind would be added to the next run's cost.
 */
export async function deleteRunUsage(store: ObjectStore, executionId: string): Promise<void> {
  const keys: string[] = [];
  for await (const { key } of store.list(runUsagePrefix(executionNameOf(executionId)))) keys.push(key);
  await inPool(keys, RECORDS_IN_FLIGHT, (key) => store.delete(key));
}

/** Usage records read or deleted at once (a run has one per invocation). */
const RECORDS_IN_FLIGHT = 16;

/** One invocation of a stage, as it is recorded. */
export interface InvocationRecord {
  /** The Step Functions execution id (ARN) the invocation belongs to. */
  readonly executionId: string;
  /** The state that invoked it (its event's `state`). */
  readonly stage: string;
  /** Lambda's request id: a retry is an invocation of its own. */
  readonly invocationId: string;
  readonly usage: StageUsage;
}

/** Record an invocation's usage; the record's own PUT is one more request of the invocation. */
export function recordInvocation(records: ObjectStore, invocation: InvocationRecord): Promise<void> {
  const { usage } = invocation;
  return recordInvocationUsage(records, {
    executionName: executionNameOf(invocation.executionId),
    stage: invocation.stage,
    invocationId: invocation.invocationId,
    usage: { ...usage, s3Tier1Requests: usage.s3Tier1Requests + 1 },
  });
}

/** What a stage handler meters its invocations with: the meter, and the lake its records go to. */
export interface InvocationMetering {
  readonly meter: UsageMeter;
  /** Where the records go (the lake, not counted: each record's PUT is added to its usage). */
  readonly records: ObjectStore;
}

/** What the step that prices a run (Reconcile) knows. */
export interface RunPricing {
  readonly executionId: string;
  /** The pricing invocation's stage, and its usage so far: its own record is written when it ends. */
  readonly stage: string;
  readonly usageSoFar: StageUsage;
  readonly prices: PriceList;
  /** The source's stored size, for the cost per GB. */
  readonly inputBytes: number;
  /**
   * States the execution entered so far, retries included (the local runner counts them); absent on
   * AWS, where they are estimated from the invocations (`estimateStateTransitions`).
   */
  readonly stateTransitionsSoFar?: number;
}

/**
 * What a run cost so far: its invocations' records, the pricing invocation's usage so far, and its state
 * transitions (counted, plus the states a run enters after the pricing step; or estimated).
 */
export async function priceRun(records: ObjectStore, pricing: RunPricing): Promise<RunCostReport> {
  const executionName = executionNameOf(pricing.executionId);
  const { usage, unreadable } = await readRunUsage(records, executionName, 0);
  const current = usage.stages[pricing.stage];
  const stages = {
    ...usage.stages,
    [pricing.stage]: current ? addUsage(current, pricing.usageSoFar) : pricing.usageSoFar,
  };
  const definition = ingestWorkflowDefinition();
  const counted = pricing.stateTransitionsSoFar !== undefined;
  const stateTransitions = counted
    ? pricing.stateTransitionsSoFar! + statesAfter(definition, pricing.stage)
    : estimateStateTransitions(
        definition,
        Object.fromEntries(Object.entries(stages).map(([stage, u]) => [stage, u.invocations])),
      );
  // In the order the definition declares its tasks (the order a run takes them), not the records'.
  const order = taskStates(definition);
  const rank = (stage: string) => (order.includes(stage) ? order.indexOf(stage) : order.length);
  const ordered = Object.fromEntries(
    Object.entries(stages).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b)),
  );
  const run: RunUsage = { stages: ordered, stateTransitions };
  return runCostReport(run, pricing.prices, {
    inputBytes: pricing.inputBytes,
    stateTransitionsFrom: counted ? 'execution' : 'estimate',
    unreadableRecords: unreadable,
  });
}
