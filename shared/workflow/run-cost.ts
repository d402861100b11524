/**
 * What a run cost: the compute it used, per stage, and its price. Usage is measured where it happens
 * (each invocation's duration and configured memory, the S3 requests it made, the state transitions of
 * its execution) and priced at the end, so the same record can be priced again at other prices.
 *
 * Only what grows with the file is counted: Lambda GB-seconds and requests, S3 requests, Step Functions
 * state transitions. Storage, KMS requests and CloudWatch are per month or per deployment (docs/DEPLOY.md).
 */

/** The compute one stage of one run used (or one invocation: then `invocations` is 1). */
export interface StageUsage {
  readonly invocations: number;
  /** Lambda's billed duration: each invocation's duration rounded up to the millisecond, summed. */
  readonly billedMs: number;
  /** Billed duration × configured memory, in GB-seconds (1 GB = 1,024 MB, as Lambda bills). */
  readonly gbSeconds: number;
  /** S3 PUT, COPY, POST and LIST requests (multipart parts each count). */
  readonly s3Tier1Requests: number;
  /** S3 GET and HEAD requests. */
  readonly s3Tier2Requests: number;
}

/** The compute of a whole run. */
export interface RunUsage {
  /** Per stage name (the state machine's task names, e.g. `Ingest`, `SilverGroup`). */
  readonly stages: Readonly<Record<string, StageUsage>>;
  /** Step Functions (standard) state transitions of the run's execution, Map iterations included. */
  readonly stateTransitions: number;
}

/** Unit prices in US dollars. */
export interface Prices {
  /** Per GB-second of Lambda on arm64. */
  readonly lambdaGbSecond: number;
  /** Per Lambda request. */
  readonly lambdaRequest: number;
  /** Per Step Functions standard-workflow state transition. */
  readonly stateTransition: number;
  /** Per S3 Standard PUT, COPY, POST or LIST request. */
  readonly s3Tier1Request: number;
  /** Per S3 Standard GET (or other read) request. */
  readonly s3Tier2Request: number;
}

/**
 * us-east-1 list prices (arm64 Lambda's first pricing tier, S3 Standard, standard workflows), as published
 * in December 2026. Other regions and tiers differ: price with your own where it matters.
 */
export const US_EAST_1_PRICES: Prices = {
  lambdaGbSecond: 0.0000133334,
  lambdaRequest: 0.2 / 1_000_000,
  stateTransition: 0.025 / 1000,
  s3Tier1Request: 0.005 / 1000,
  s3Tier2Request: 0.0004 / 1000,
};

export const NO_USAGE: StageUsage = {
  invocations: 0,
  billedMs: 0,
  gbSeconds: 0,
  s3Tier1Requests: 0,
  s3Tier2Requests: 0,
};

/** S3 requests, by billing class. */
export interface S3Requests {
  readonly tier1: number;
  readonly tier2: number;
}

/** The usage of one invocation: measured duration, configured memory, the S3 requests it made. */
export function invocationUsage(durationMs: number, memoryMb: number, s3: S3Requests): StageUsage {
  const billedMs = Math.max(1, Math.ceil(durationMs));
  return {
    invocations: 1,
    billedMs,
    gbSeconds: (billedMs / 1000) * (memoryMb / 1024),
    s3Tier1Requests: s3.tier1,
    s3Tier2Requests: s3.tier2,
  };
}

/** Two usages added up. */
export function addUsage(a: StageUsage, b: StageUsage): StageUsage {
  return {
    invocations: a.invocations + b.invocations,
    billedMs: a.billedMs + b.billedMs,
    gbSeconds: a.gbSeconds + b.gbSeconds,
    s3Tier1Requests: a.s3Tier1Requests + b.s3Tier1Requests,
    s3Tier2Requests: a.s3Tier2Requests + b.s3Tier2Requests,
  };
}

/** A run's usage from its invocations' records, in any order. */
export function sumRunUsage(
  invocations: Iterable<{ readonly stage: string; readonly usage: StageUsage }>,
  stateTransitions: number,
): RunUsage {
  const stages: Record<string, StageUsage> = {};
  for (const { stage, usage } of invocations) stages[stage] = addUsage(stages[stage] ?? NO_USAGE, usage);
  return { stages, stateTransitions };
}

/** The price of one stage's compute. */
export interface StageCost {
  readonly lambdaUsd: number;
  readonly s3Usd: number;
  readonly totalUsd: number;
}

/** The price of a run. */
export interface RunCost {
  readonly perStage: Readonly<Record<string, StageCost>>;
  readonly stateTransitionsUsd: number;
  readonly totalUsd: number;
  /** `totalUsd` per GB (10^9 bytes) of input as stored; absent without the input's size. */
  readonly perInputGbUsd?: number;
}

/** Price a run's usage. `inputBytes`: the source's stored size, for the cost per GB of input. */
export function costOf(usage: RunUsage, prices: Prices, inputBytes?: number): RunCost {
  const perStage: Record<string, StageCost> = {};
  let totalUsd = usage.stateTransitions * prices.stateTransition;
  for (const [stage, u] of Object.entries(usage.stages)) {
    const lambdaUsd = u.gbSeconds * prices.lambdaGbSecond + u.invocations * prices.lambdaRequest;
    const s3Usd = u.s3Tier1Requests * prices.s3Tier1Request + u.s3Tier2Requests * prices.s3Tier2Request;
    perStage[stage] = { lambdaUsd, s3Usd, totalUsd: lambdaUsd + s3Usd };
    totalUsd += lambdaUsd + s3Usd;
  }
  return {
    perStage,
    stateTransitionsUsd: usage.stateTransitions * prices.stateTransition,
    totalUsd,
    ...(inputBytes !== undefined && inputBytes > 0 && { perInputGbUsd: totalUsd / (inputBytes / 1e9) }),
  };
}

/** One event of an execution's history (GetExecutionHistory), as far as billing goes. */
export interface HistoryEvent {
  readonly id?: number;
  readonly previousEventId?: number;
  readonly type?: string;
}

/**
 * State transitions Step Functions bills for an execution, from its history: one per state entered
 * (Map iterations' states included), and one per retry of a task: a scheduling that follows a failure or
 * a timeout of the same task (events of parallel iterations interleave, so it goes by `previousEventId`).
 */
export function billedStateTransitions(history: Iterable<HistoryEvent>): number {
  const types = new Map<number, string>();
  let transitions = 0;
  for (const { id, previousEventId, type = '' } of history) {
    if (id !== undefined) types.set(id, type);
    if (type.endsWith('StateEntered')) transitions++;
    else if (type.endsWith('Scheduled') && previousEventId !== undefined) {
      const previous = types.get(previousEventId) ?? '';
      if (previous.endsWith('Failed') || previous.endsWith('TimedOut')) transitions++;
    }
  }
  return transitions;
}
