import { taskResources, type WorkflowDefinition } from './definition.ts';

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

/** Prices as AWS lists them, each in its usual unit (the deployment config's `prices`). */
export interface PriceList {
  /** Lambda, per GB-second. */
  readonly lambdaGbSecondUsd: number;
  /** Lambda, per million requests. */
  readonly lambdaMillionRequestsUsd: number;
  /** Step Functions standard workflows, per thousand state transitions. */
  readonly thousandStateTransitionsUsd: number;
  /** S3 Standard, per thousand PUT, COPY, POST or LIST requests. */
  readonly s3ThousandPutRequestsUsd: number;
  /** S3 Standard, per thousand GET (and other read) requests. */
  readonly s3ThousandGetRequestsUsd: number;
}

/**
 * us-east-1 list prices (arm64 Lambda's first pricing tier, S3 Standard, standard workflows), as published
 * in December 2026. Other regions and tiers differ: price with your own where it matters.
 */
export const US_EAST_1_PRICE_LIST: PriceList = {
  lambdaGbSecondUsd: 0.0000133334,
  lambdaMillionRequestsUsd: 0.2,
  thousandStateTransitionsUsd: 0.025,
  s3ThousandPutRequestsUsd: 0.005,
  s3ThousandGetRequestsUsd: 0.0004,
};

/** A price list as prices per unit. */
export function unitPrices(list: PriceList): Prices {
  return {
    lambdaGbSecond: list.lambdaGbSecondUsd,
    lambdaRequest: list.lambdaMillionRequestsUsd / 1_000_000,
    stateTransition: list.thousandStateTransitionsUsd / 1000,
    s3Tier1Request: list.s3ThousandPutRequestsUsd / 1000,
    s3Tier2Request: list.s3ThousandGetRequestsUsd / 1000,
  };
}

/** The us-east-1 list prices, per unit. */
export const US_EAST_1_PRICES: Prices = unitPrices(US_EAST_1_PRICE_LIST);

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

/** What a run cost, as its reconciliation report, its summary and its run report give it. */
export interface RunCostReport {
  /** The run's total at `prices`, in US dollars. */
  readonly totalUsd: number;
  /** `totalUsd` per GB (10^9 bytes) of the source as stored; absent for an empty source. */
  readonly perInputGbUsd?: number;
  /** The source's stored size. */
  readonly inputBytes: number;
  /** Lambda invocations, retries and slices included. */
  readonly invocations: number;
  /** Billed duration × configured memory, summed. */
  readonly gbSeconds: number;
  /** S3 requests: `tier1` PUT, COPY, POST and LIST; `tier2` GET and HEAD. */
  readonly s3Requests: { readonly tier1: number; readonly tier2: number };
  readonly stateTransitions: number;
  /**
   * `execution`: counted from the execution's states as they were entered (local runs); `estimate`: from
   * the invocations and the definition (`estimateStateTransitions`, on AWS).
   */
  readonly stateTransitionsFrom: 'execution' | 'estimate';
  readonly stateTransitionsUsd: number;
  /** Per stage (the state machine's task names): its usage and its price. */
  readonly stages: Readonly<Record<string, StageUsage & StageCost>>;
  /** The prices it was priced at. */
  readonly prices: PriceList;
  /** Usage records that could not be read, so are not counted. */
  readonly unreadableRecords?: readonly string[];
}

/** A run's usage priced into its report. */
export function runCostReport(
  usage: RunUsage,
  prices: PriceList,
  facts: {
    readonly inputBytes: number;
    readonly stateTransitionsFrom: RunCostReport['stateTransitionsFrom'];
    readonly unreadableRecords?: readonly string[];
  },
): RunCostReport {
  const cost = costOf(usage, unitPrices(prices), facts.inputBytes);
  const stages = Object.values(usage.stages);
  const sum = (field: keyof StageUsage) => stages.reduce((n, s) => n + s[field], 0);
  return {
    totalUsd: cost.totalUsd,
    ...(cost.perInputGbUsd !== undefined && { perInputGbUsd: cost.perInputGbUsd }),
    inputBytes: facts.inputBytes,
    invocations: sum('invocations'),
    gbSeconds: sum('gbSeconds'),
    s3Requests: { tier1: sum('s3Tier1Requests'), tier2: sum('s3Tier2Requests') },
    stateTransitions: usage.stateTransitions,
    stateTransitionsFrom: facts.stateTransitionsFrom,
    stateTransitionsUsd: cost.stateTransitionsUsd,
    stages: Object.fromEntries(
      Object.entries(usage.stages).map(([stage, u]) => [stage, { ...u, ...cost.perStage[stage]! }]),
    ),
    prices,
    ...(facts.unreadableRecords?.length && { unreadableRecords: facts.unreadableRecords }),
  };
}

/**
 * The path a plain run takes through the definition: from `StartAt`, each state's `Next`, a Choice's
 * `Default`, until a state that ends the execution. For the ingest workflow: HasSource, Dropped, Ingest,
 * IngestDone, HasSilver, PlanSilver, the Maps, Silver, the reconcile steps, HasFanOut, Succeeded.
 */
export function defaultPath(definition: WorkflowDefinition): string[] {
  const path: string[] = [];
  let name: string | undefined = definition.StartAt;
  while (name !== undefined && !path.includes(name)) {
    path.push(name);
    const state: WorkflowDefinition['States'][string] | undefined = definition.States[name];
    name = state?.Type === 'Choice' ? state.Default : state?.End ? undefined : state?.Next;
  }
  return path;
}

/**
 * The states a run entered once each, as far as its invocations tell: from `StartAt`, each Choice takes the
 * branch whose first task was invoked (a rebuild's `PlanRebuild`, a scheduled run's `Download`), else its
 * `Default`; a branch back to a state already on the path (a slice loop) is counted by the invocations.
 */
export function executedPath(
  definition: WorkflowDefinition,
  invocations: Readonly<Record<string, number>>,
): string[] {
  const states = definition.States;
  /** The first Task (or a Map's tasks) from `name` on, following Next and Default. */
  const firstTasks = (name: string | undefined, seen: string[]): string[] => {
    const state = name === undefined ? undefined : states[name];
    if (!state || seen.includes(name!)) return [];
    if (state.Type === 'Task') return [name!];
    if (state.Type === 'Map') return Object.keys((state.ItemProcessor ?? state.Iterator).States);
    const next = state.Type === 'Choice' ? state.Default : state.End ? undefined : state.Next;
    return firstTasks(next, [...seen, name!]);
  };
  const path: string[] = [];
  let name: string | undefined = definition.StartAt;
  while (name !== undefined && !path.includes(name)) {
    path.push(name);
    const state: WorkflowDefinition['States'][string] | undefined = states[name];
    if (state?.Type === 'Choice') {
      const branches = [...(state.Choices ?? []).map((c: { Next: string }) => c.Next), state.Default];
      const open = branches.filter((b: string | undefined) => b !== undefined && !path.includes(b));
      name =
        open.find((b: string) => firstTasks(b, path).some((task) => (invocations[task] ?? 0) > 0)) ??
        state.Default;
    } else name = state?.End ? undefined : state?.Next;
  }
  return path;
}

/** The definition's Task states, those inside Maps included, in the order it declares them. */
export function taskStates(definition: WorkflowDefinition): string[] {
  return taskResources(definition).map(([name]) => name);
}

/** The states a plain run enters after `state` (the pricing step's own end: HasFanOut, Succeeded). */
export function statesAfter(definition: WorkflowDefinition, state: string): number {
  const path = defaultPath(definition);
  const at = path.indexOf(state);
  return at < 0 ? 0 : path.length - at - 1;
}

/**
 * State transitions of a run, estimated from its invocations per task state and the definition (on AWS,
 * where the stages record their invocations but nobody counts the states): every state on the path the
 * invocations show (`executedPath`: a plain run's, a download's, a rebuild's) once; each further
 * invocation of a task on it (a slice, a retry) once more, and once more again when the task's `Next` is
 * a Choice (the slice loops' IngestDone and DownloadDone); each invocation of a task off the path once,
 * plus its Choice; each Map item's task once. Exact for a run without retries
 * (tests/integration/run-cost.test.ts compares it with a local run's count); a retry counts one transition
 * too many, and a table of contents' fan-out is not counted (each listed file's run has its own cost).
 */
export function estimateStateTransitions(
  definition: WorkflowDefinition,
  invocations: Readonly<Record<string, number>>,
): number {
  const path = executedPath(definition, invocations);
  let transitions = path.length;
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Map') {
      for (const inner of Object.keys((state.ItemProcessor ?? state.Iterator).States)) {
        transitions += invocations[inner] ?? 0;
      }
      continue;
    }
    if (state.Type !== 'Task' || invocations[name] === undefined) continue;
    const extra = path.includes(name) ? Math.max(0, invocations[name] - 1) : invocations[name];
    const nextIsChoice = definition.States[state.Next]?.Type === 'Choice';
    transitions += extra * (nextIsChoice ? 2 : 1);
  }
  return transitions;
}
