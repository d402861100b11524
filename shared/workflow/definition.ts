import { FAN_OUT_DATASET, FAN_OUT_START } from './stage-io.ts';

/**
 * The one definition of the ingest workflow, as plain Amazon States Language (JSON data, no CDK). The CDK
 * app renders it (`DefinitionBody.fromString` with a substitution per `Placeholder`); the local runner
 * (shared/pipeline/local-runner.ts) runs the same object with local values for the placeholders. Nothing
 * describes the workflow twice, and reading it needs no synthesis.
 *
 *   HasSource? ──($.rebuild)──> PlanRebuild ──> RebuildNeeded? ──(status: unchanged)──> Unchanged (*)
 *        │                                           └──(otherwise)──> PlanSilver (no Download, no Ingest)
 *        ├──($.source.url)──> Download ──> DownloadDone? ──(status: partial)──> Download (the next
 *        │                                          │          invocation resumes the checkpoint)
 *        │                                          └──(otherwise)──> Landed ──┐
 *        └──(otherwise)──> Dropped ────────────────────────────────────────────┴──> Ingest
 *   Ingest ──> IngestDone? ──(status: sliced)──> Ingest (the next slice resumes the checkpoint)
 *                  ├──(status: unchanged)──> Unchanged (*), or for a table of contents StartFanOut (below)
 *                  └──(otherwise)──> HasSilver? ──(hasSilver: false)──> Succeeded
 *                                        └──(otherwise)──> PlanSilver ──> SilverGroups ──┐
 *        (a map: one SilverGroup per group of bronze parts, `MaxConcurrency` at once)     │
 *   ┌─────────────────────────────────────────────────────────────────────────────────────┘
 *   └─> SilverBuckets (a map: one SilverBucket per merge bucket) ──> Silver (commit) ──> PlanReconcile ──> ReconcileItems ──> ReconcileKeyBuckets ──> Reconcile ──┐
 *        (maps: one ReconcileItem per bronze group or silver file, one ReconcileKeyBucket per bucket) │
 *   ┌────────────────────────────────────────────────────────────────────────────────────────────────┘
 *   └─> HasFanOut?
 *   HasFanOut? ──(a table of contents, unless the input says "fanOut": false or is a rebuild)──> StartFanOut ─┐
 *        └──(otherwise)──> Succeeded                                                           │
 *   ┌──────────────────────────────────────────────────────────────────────────────────────────┘
 *   └─> PlanFanOut ──> FanOutDone? ──(done, every listed file ingested)──> Succeeded
 *          ▲               ├──(done, some failed or refused)──> ListedFilesFailed ──> RecordFailure
 *          │               └──(otherwise)──> FanOut (map over one page of listed files)
 *          └────────────────────────────────────┘   each: IngestListedFile (this workflow, as a child
 *                                                    execution) ──(any error)──> ListedFileFailed
 *   every task ──(any error, once retries are spent)──> RecordFailure (SQS) ──> Failed
 *   (*) through CatchUpState first when the dataset keeps a merged state (snapshot, cdc, scd2)
 *
 * Each stage is one Lambda task with the same error policy (`lambdaTask`). States hand each other
 * references only (shared/workflow/stage-io.ts); each result lands under its own key (`$.ingest`,
 * `$.silver`, `$.reconcile`) beside the execution input, which every state keeps.
 */

// biome-ignore lint/suspicious/noExplicitAny: ASL is JSON; Step Functions and the local engine check its shape.
type Json = any;

/** A state machine definition in Amazon States Language. */
export interface WorkflowDefinition {
  readonly StartAt: string;
  readonly States: Record<string, Json>;
  readonly TimeoutSeconds?: number;
  readonly Comment?: string;
}

/** State names: the execution history and the local runner refer to them. */
export const StateName = {
  hasSource: 'HasSource',
  planRebuild: 'PlanRebuild',
  rebuildNeeded: 'RebuildNeeded',
  download: 'Download',
  downloadDone: 'DownloadDone',
  landed: 'Landed',
  dropped: 'Dropped',
  ingest: 'Ingest',
  ingestDone: 'IngestDone',
  hasSilver: 'HasSilver',
  planSilver: 'PlanSilver',
  silverGroups: 'SilverGroups',
  silverGroup: 'SilverGroup',
  silverBuckets: 'SilverBuckets',
  silverBucket: 'SilverBucket',
  silver: 'Silver',
  planReconcile: 'PlanReconcile',
  reconcileItems: 'ReconcileItems',
  reconcileItem: 'ReconcileItem',
  reconcileKeyBuckets: 'ReconcileKeyBuckets',
  reconcileKeyBucket: 'ReconcileKeyBucket',
  reconcile: 'Reconcile',
  hasFanOut: 'HasFanOut',
  startFanOut: 'StartFanOut',
  planFanOut: 'PlanFanOut',
  fanOutDone: 'FanOutDone',
  fanOut: 'FanOut',
  ingestListedFile: 'IngestListedFile',
  listedFileFailed: 'ListedFileFailed',
  listedFilesFailed: 'ListedFilesFailed',
  succeeded: 'Succeeded',
  unchanged: 'Unchanged',
  catchUpState: 'CatchUpState',
  duplicateRun: 'DuplicateRun',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
} as const;

/**
 * The resources the definition names, as `${Name}` placeholders (CloudFormation's definition
 * substitutions): the CDK app substitutes the deployed ARNs and URL, the local runner its own.
 */
export const Placeholder = {
  downloadFunctionArn: 'DownloadFunctionArn',
  ingestFunctionArn: 'IngestFunctionArn',
  /** PlanSilver, SilverGroup and Silver: one function, by the event's `op`. */
  silverFunctionArn: 'SilverFunctionArn',
  reconcileFunctionArn: 'ReconcileFunctionArn',
  fanOutFunctionArn: 'FanOutFunctionArn',
  failureQueueUrl: 'FailureQueueUrl',
  /** This state machine, for IngestListedFile's child executions (built from its name: no cycle). */
  stateMachineArn: 'StateMachineArn',
  /** The ARN partition (`aws`, `aws-cn`, `aws-us-gov`) of the service integrations' resources. */
  partition: 'Partition',
} as const;
export type Placeholder = (typeof Placeholder)[keyof typeof Placeholder];

/** The text standing for a placeholder in the definition. */
export const placeholder = (name: Placeholder): string => `\${${name}}`;

/** Where each stage's result lands in the state's JSON (`ResultPath`). */
export const ResultKey = {
  download: 'download',
  ingest: 'ingest',
  silverPlan: 'silverPlan',
  silver: 'silver',
  reconcilePlan: 'reconcilePlan',
  reconcile: 'reconcile',
  state: 'state',
  fanOut: 'fanOut',
  error: 'error',
} as const;

/** Step Functions' `Retry` entry. */
export interface Retrier {
  readonly ErrorEquals: readonly string[];
  readonly IntervalSeconds: number;
  readonly MaxAttempts: number;
  readonly BackoffRate: number;
  readonly MaxDelaySeconds: number;
  readonly JitterStrategy: 'FULL' | 'NONE';
}

/**
 * Failures of the Lambda service itself, before or around the handler: the invocation never ran or
 * its result was lost. Retrying them is always safe because every stage is idempotent (deterministic
 * keys; the manifest is written last).
 */
export const LAMBDA_SERVICE_ERRORS = [
  'Lambda.TooManyRequestsException', // throttled: concurrency limit (e.g. reserved concurrency) reached
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
] as const;

/**
 * Errors a handler raises that mean "try again later". `TransientError` is sluice's own
 * (shared/errors.ts; the handlers wrap network failures into it, see shared/adapters/aws/transient.ts);
 * the others are the names S3 errors keep when they outlast the SDK's own retries (throttling, 5xx,
 * timeouts).
 *
 * Deliberately absent: `States.Timeout` and `Sandbox.Timedout` (a stage that ran out of time will run
 * out again: raise the timeout or memory instead), `Runtime.OutOfMemory`, and sluice's permanent errors
 * (`MalformedInputError`, `RecordTooLargeError`, `MissingRecordPathError`, `NestingTooDeepError`,
 * `ConfigError`, `ContractViolationError`, `SchemaDriftError`, `ReconciliationError`), which no retry
 * can fix.
 */
export const TRANSIENT_ERRORS = [
  'TransientError',
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'TimeoutError',
] as const;

/** Retries of Lambda service errors: quick, many, spread out by full jitter. */
export const LAMBDA_SERVICE_RETRY: Retrier = {
  ErrorEquals: [...LAMBDA_SERVICE_ERRORS],
  IntervalSeconds: 2,
  MaxAttempts: 8,
  BackoffRate: 2,
  MaxDelaySeconds: 300,
  JitterStrategy: 'FULL',
};

/**
 * Another execution holds the source's lease (shared/lake/source-lease.ts): wait for it. The waits add up
 * to an hour (no jitter, so never less), three times a lease's unrenewed lifetime: a holder that died has
 * lost its lease long before, and one that lives has usually finished. Then a run of the same object ends
 * as `DuplicateRun` (the holder ingests it); a run of another version fails into the failure queue, to
 * be redriven, rather than be dropped.
 */
export const SOURCE_BUSY_RETRY: Retrier = {
  ErrorEquals: ['SourceBusyError', 'DuplicateRunError'],
  IntervalSeconds: 60,
  MaxAttempts: 10,
  BackoffRate: 1.5,
  MaxDelaySeconds: 600,
  JitterStrategy: 'NONE',
};

/** Retries of transient handler errors: fewer and slower, since each attempt may redo a long stage. */
export const TRANSIENT_RETRY: Retrier = {
  ErrorEquals: [...TRANSIENT_ERRORS],
  IntervalSeconds: 30,
  MaxAttempts: 3,
  BackoffRate: 2,
  MaxDelaySeconds: 300,
  JitterStrategy: 'FULL',
};

/**
 * Failures to start a listed file's child execution that pass (too many open executions). The child's
 * own failure (`States.TaskFailed`) is not retried: the child already retried its stages.
 */
export const CHILD_START_RETRY: Retrier = {
  ErrorEquals: ['StepFunctions.ExecutionLimitExceeded'],
  IntervalSeconds: 30,
  MaxAttempts: 5,
  BackoffRate: 2,
  MaxDelaySeconds: 300,
  JitterStrategy: 'FULL',
};

/**
 * Retries of `RecordFailure`'s SendMessage: whatever fails it (a throttle, a moment of SQS or the network
 * unavailable) would otherwise end the execution with no dead letter, and with the send's error in place
 * of the run's. About two minutes in all; a duplicate message, should a send succeed unseen, is removed
 * with the original (`DeadLetterStore.remove` removes every copy).
 */
export const RECORD_FAILURE_RETRY: Retrier = {
  ErrorEquals: ['States.ALL'],
  IntervalSeconds: 2,
  MaxAttempts: 6,
  BackoffRate: 2,
  MaxDelaySeconds: 60,
  JitterStrategy: 'FULL',
};

/** Listed files of a table of contents ingested at once, by default. */
export const DEFAULT_FAN_OUT_CONCURRENCY = 4;

/** Silver groups built at once (`SilverGroups`), by default. */
export const DEFAULT_SILVER_CONCURRENCY = 8;
/** An inline Map runs at most 40 iterations at once. */
export const MAX_SILVER_CONCURRENCY = 40;

/** How a table of contents' execution fails when some of its listed files failed or were refused. */
export const LISTED_FILES_FAILED_ERROR = 'ListedFilesFailedError';

/** Longest one listed file's child execution may take, by default: 6 hours. */
export const DEFAULT_LISTED_FILE_TIMEOUT_SECONDS = 6 * 3600;
/** Longest an execution may run, retries and a whole fan-out included, by default: 7 days. */
export const DEFAULT_WORKFLOW_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** What the deployment decides about the workflow (the resources are placeholders). */
export interface WorkflowOptions {
  /** Silver groups `SilverGroups` builds at once. @default DEFAULT_SILVER_CONCURRENCY */
  readonly silverConcurrency?: number;
  /** Listed files `FanOut` ingests at once. @default DEFAULT_FAN_OUT_CONCURRENCY */
  readonly fanOutConcurrency?: number;
  /** Longest one listed file's run may take; then its child is stopped. @default 6 hours */
  readonly listedFileTimeoutSeconds?: number;
  /** Longest an execution may run. @default 7 days */
  readonly timeoutSeconds?: number;
}

/** The Catch every stage has: the error lands beside the input (`$.error`), so RecordFailure has both. */
const catchInto = (next: string, errors: readonly string[] = ['States.ALL']) => ({
  ErrorEquals: [...errors],
  ResultPath: `$.${ResultKey.error}`,
  Next: next,
});
const TO_RECORD_FAILURE = catchInto(StateName.recordFailure);

/**
 * A Lambda invocation with sluice's retries: `Resource` is the function ARN itself, so the result is the
 * handler's return value alone (a small reference, never data). Its retries are the explicit ones here
 * (no hidden service retries).
 */
export function lambdaInvoke(
  functionArn: Placeholder,
  parameters: Record<string, Json>,
  extra: { readonly resultPath?: string; readonly retry?: readonly Retrier[] } = {},
): Record<string, Json> {
  return {
    Type: 'Task',
    Resource: placeholder(functionArn),
    Parameters: parameters,
    ...(extra.resultPath !== undefined && { ResultPath: extra.resultPath }),
    Retry: [LAMBDA_SERVICE_RETRY, TRANSIENT_RETRY, ...(extra.retry ?? [])],
  };
}

/**
 * A workflow stage: a Lambda whose return value lands at `$.<resultKey>`, with sluice's error policy
 * (the retries of `lambdaInvoke`; any error then goes to RecordFailure).
 */
export function lambdaTask(
  functionArn: Placeholder,
  parameters: Record<string, Json>,
  resultKey: string,
  next: string,
): Record<string, Json> {
  return {
    ...lambdaInvoke(functionArn, parameters, { resultPath: `$.${resultKey}` }),
    Catch: [TO_RECORD_FAILURE],
    Next: next,
  };
}

/** The execution id, for every stage's event: the correlation id of its logs and the lease's holder. */
const EXECUTION_ID = { 'executionId.$': '$$.Execution.Id' };
/**
 * The execution input says `"fanOut": false` (ExecutionInput): a table of contents is ingested alone.
 * IsPresent first, because comparing a path that does not exist is a runtime error.
 */
const FAN_OUT_SKIPPED = {
  And: [
    { Variable: '$$.Execution.Input.fanOut', IsPresent: true },
    { Variable: '$$.Execution.Input.fanOut', BooleanEquals: false },
  ],
};

/**
 * `Ingest` or `PlanRebuild` found the source unchanged, and its dataset keeps a merged state
 * (`mergedState`, IsPresent first: an output without it is never compared).
 */
const UNCHANGED_WITH_MERGED_STATE = {
  And: [
    { Variable: `$.${ResultKey.ingest}.status`, StringEquals: 'unchanged' },
    { Variable: `$.${ResultKey.ingest}.mergedState`, IsPresent: true },
    { Variable: `$.${ResultKey.ingest}.mergedState`, BooleanEquals: true },
  ],
};

/** The bronze run `Ingest` committed, as the later stages' events name it. */
const BRONZE_RUN = {
  'dataset.$': `$.${ResultKey.ingest}.dataset`,
  'bronzeManifestKey.$': `$.${ResultKey.ingest}.manifestKey`,
};

/** The workflow's ASL, its resources as `Placeholder`s. */
export function ingestWorkflowDefinition(options: WorkflowOptions = {}): WorkflowDefinition {
  return {
    StartAt: StateName.hasSource,
    States: taskStatesNamed({
      // A rebuild (`{ rebuild: { dataset, source } }`) starts from the source's committed bronze; a scheduled
      // run (`{ source: { url, dataset, ... } }`) downloads into landing first.
      [StateName.hasSource]: {
        Type: 'Choice',
        Choices: [
          { Variable: '$.rebuild', IsPresent: true, Next: StateName.planRebuild },
          { Variable: '$.source.url', IsPresent: true, Next: StateName.download },
        ],
        Default: StateName.dropped,
      },
      ...rebuildStates(),
      ...downloadStates(),
      ...ingestStates(),
      ...silverStates(options),
      ...reconcileStates(options),
      ...tableOfContentsFanOut(options),
      [StateName.succeeded]: { Type: 'Succeed' },
      ...failureStates(),
    }),
    TimeoutSeconds: options.timeoutSeconds ?? DEFAULT_WORKFLOW_TIMEOUT_SECONDS,
  };
}

/**
 * A rebuild: silver and reconciliation built again for a source's committed bronze, without reading the
 * source (shared/stages/silver/plan-rebuild.ts). `PlanRebuild` takes the source's lease (waiting for
 * another run as `Ingest` does) and puts the committed bronze run where `Ingest` puts its own
 * (`$.ingest`: `dataset`, `manifestKey`), so the silver and reconcile states that follow are the run's
 * own; a source whose current build is the one this config and contract make ends at `Unchanged`.
 */
function rebuildStates(): Record<string, Json> {
  return {
    [StateName.planRebuild]: {
      ...lambdaInvoke(
        Placeholder.silverFunctionArn,
        { op: 'rebuild', 'rebuild.$': '$.rebuild', ...EXECUTION_ID },
        { resultPath: `$.${ResultKey.ingest}`, retry: [SOURCE_BUSY_RETRY] },
      ),
      Catch: [TO_RECORD_FAILURE],
      Next: StateName.rebuildNeeded,
    },
    [StateName.rebuildNeeded]: {
      Type: 'Choice',
      Choices: [
        { ...UNCHANGED_WITH_MERGED_STATE, Next: StateName.catchUpState },
        { Variable: `$.${ResultKey.ingest}.status`, StringEquals: 'unchanged', Next: StateName.unchanged },
      ],
      Default: StateName.planSilver,
    },
  };
}

/**
 * Every Lambda task tells its function which state invokes it (`"state": "<name>"` in its event): the
 * invocation's usage record is kept under that stage (shared/lake/run-usage.ts), which the function
 * could not tell otherwise (one function serves PlanSilver, SilverGroup, SilverBucket and Silver). A
 * constant rather than `$$.State.Name`, which the local engine does not know.
 */
function taskStatesNamed(states: Record<string, Json>): Record<string, Json> {
  return Object.fromEntries(
    Object.entries(states).map(([name, state]) => {
      if (state.Type === 'Map') {
        const processor = state.ItemProcessor;
        return [
          name,
          { ...state, ItemProcessor: { ...processor, States: taskStatesNamed(processor.States) } },
        ];
      }
      const invokesFunction =
        state.Type === 'Task' &&
        (Object.values(Placeholder) as string[]).some(
          (p) => p.endsWith('FunctionArn') && state.Resource === placeholder(p as Placeholder),
        );
      return [name, invokesFunction ? { ...state, Parameters: { state: name, ...state.Parameters } } : state];
    }),
  );
}

/**
 * `Download` lands an HTTP source; `Landed` shapes the landed object into the input Ingest expects, as
 * if the object had landed by itself. A dropped file has no URL; JSONPath has no default value, so
 * `Dropped` sets it to '' for Ingest.
 */
function downloadStates(): Record<string, Json> {
  const download = `$.${ResultKey.download}`;
  return {
    [StateName.download]: lambdaTask(
      Placeholder.downloadFunctionArn,
      { 'source.$': '$.source', ...EXECUTION_ID },
      ResultKey.download,
      StateName.downloadDone,
    ),
    // A download longer than one invocation returns `status: "partial"` when its time runs out, and the
    // next invocation continues from its checkpoint (as Ingest's slices do).
    [StateName.downloadDone]: {
      Type: 'Choice',
      Choices: [{ Variable: `${download}.status`, StringEquals: 'partial', Next: StateName.download }],
      Default: StateName.landed,
    },
    [StateName.landed]: {
      Type: 'Pass',
      Parameters: {
        'bucket.$': `${download}.bucket`,
        'key.$': `${download}.key`,
        'dataset.$': `${download}.dataset`,
        'hasSilver.$': `${download}.hasSilver`,
        origin: { 'url.$': `${download}.url` },
      },
      Next: StateName.ingest,
    },
    [StateName.dropped]: {
      Type: 'Pass',
      Result: { url: '' },
      ResultPath: '$.origin',
      Next: StateName.ingest,
    },
  };
}

/**
 * A long source is ingested in slices (one invocation each, within Lambda's 15 minutes): a slice that
 * stopped at its budget returns `status: "sliced"` and the next one resumes from its checkpoint. A
 * source whose current version has these bytes already ends at `Unchanged`: nothing is rebuilt. Another
 * execution of the same source (a second drop, a schedule overlapping a manual run) waits for the first
 * (SOURCE_BUSY_RETRY), then ends as a clean `DuplicateRun` instead of interleaving with it or failing.
 */
function ingestStates(): Record<string, Json> {
  const status = `$.${ResultKey.ingest}.status`;
  return {
    [StateName.ingest]: {
      ...lambdaInvoke(
        Placeholder.ingestFunctionArn,
        {
          'bucket.$': '$.bucket',
          'key.$': '$.key',
          'dataset.$': '$.dataset',
          // The URL of a download (`Landed`), or '' for a dropped file (`Dropped`).
          'sourceUrl.$': '$.origin.url',
          ...EXECUTION_ID,
        },
        { resultPath: `$.${ResultKey.ingest}`, retry: [SOURCE_BUSY_RETRY] },
      ),
      Catch: [catchInto(StateName.duplicateRun, ['DuplicateRunError']), TO_RECORD_FAILURE],
      Next: StateName.ingestDone,
    },
    [StateName.ingestDone]: {
      Type: 'Choice',
      Choices: [
        { Variable: status, StringEquals: 'sliced', Next: StateName.ingest },
        // A table of contents whose own bytes did not change still fans out from its current version: a
        // listed file that failed last time is retried, one that is current ends unchanged by itself.
        {
          And: [
            { Variable: status, StringEquals: 'unchanged' },
            { Variable: `$.${ResultKey.ingest}.dataset`, StringEquals: FAN_OUT_DATASET },
            { Not: FAN_OUT_SKIPPED },
          ],
          Next: StateName.startFanOut,
        },
        { ...UNCHANGED_WITH_MERGED_STATE, Next: StateName.catchUpState },
        { Variable: status, StringEquals: 'unchanged', Next: StateName.unchanged },
      ],
      Default: StateName.hasSilver,
    },
    // The run that committed the current version may have died between its commit and its fold of the
    // merged state: an unchanged run of a snapshot, cdc or scd2 dataset folds what the state lacks.
    [StateName.catchUpState]: lambdaTask(
      Placeholder.reconcileFunctionArn,
      { op: 'state', ...BRONZE_RUN, ...EXECUTION_ID },
      ResultKey.state,
      StateName.unchanged,
    ),
    [StateName.unchanged]: { Type: 'Succeed' },
    [StateName.duplicateRun]: {
      Type: 'Succeed',
      Comment: 'Another execution held this source until the retries ran out; it ingests the source.',
    },
    // `hasSilver` is optional (see ExecutionInput): only an explicit `false` skips the silver stages.
    // IsPresent first, because comparing a path that does not exist is a runtime error.
    [StateName.hasSilver]: {
      Type: 'Choice',
      Choices: [
        {
          And: [
            { Variable: '$.hasSilver', IsPresent: true },
            { Variable: '$.hasSilver', BooleanEquals: false },
          ],
          Next: StateName.succeeded,
        },
      ],
      Default: StateName.planSilver,
    },
  };
}

/** One Map of a stage (`stageMap`): its items, the task each runs, and what it hands that task. */
interface StageMap {
  readonly functionArn: Placeholder;
  /** Where the plan's items are, e.g. `$.silverPlan.groups`: `[{ <index>: 0 }, ...]`. */
  readonly items: string;
  readonly task: string;
  /** The function's `op` for one item. */
  readonly op: string;
  /** The item's index field, handed to the task under the same name. */
  readonly index: string;
  /** More of the plan every item needs (name -> path outside the Map), e.g. the group count. */
  readonly carried?: Readonly<Record<string, string>>;
  readonly next: string;
}

/**
 * An inline Map over a plan's items, one Lambda invocation per item, `silverConcurrency` at once. Inside
 * the Map `$` is the item as ItemSelector makes it: the run, the item's index and what is carried. The
 * item's output is its summary, which the Map discards (its work goes to the lake); a state inside a Map
 * cannot reach RecordFailure, so the Map catches what its items raise (the error keeps its name).
 */
function stageMap(options: WorkflowOptions, map: StageMap): Record<string, Json> {
  const carried = Object.keys(map.carried ?? {});
  return {
    Type: 'Map',
    ItemsPath: map.items,
    ItemSelector: {
      ...BRONZE_RUN,
      ...EXECUTION_ID,
      [`${map.index}.$`]: `$$.Map.Item.Value.${map.index}`,
      ...Object.fromEntries(Object.entries(map.carried ?? {}).map(([name, path]) => [`${name}.$`, path])),
    },
    ItemProcessor: {
      ProcessorConfig: { Mode: 'INLINE' },
      StartAt: map.task,
      States: {
        [map.task]: {
          ...lambdaInvoke(map.functionArn, {
            op: map.op,
            'dataset.$': '$.dataset',
            'bronzeManifestKey.$': '$.bronzeManifestKey',
            'executionId.$': '$.executionId',
            ...Object.fromEntries([map.index, ...carried].map((name) => [`${name}.$`, `$.${name}`])),
          }),
          End: true,
        },
      },
    },
    MaxConcurrency: options.silverConcurrency ?? DEFAULT_SILVER_CONCURRENCY,
    ResultPath: null,
    Catch: [TO_RECORD_FAILURE],
    Next: map.next,
  };
}

/**
 * Silver in groups of bronze parts and merge buckets, so that no source is too large for one Lambda
 * invocation, and no invocation handles all of a source's partial files:
 *
 * - `PlanSilver` (`op: "plan"`) splits the bronze run into groups (by uncompressed bytes) and picks the
 *   merge buckets K (by the run's uncompressed bytes and `silverBucketTargetMb`), and returns
 *   `{ groups: [{ group: 0 }, ...], groupCount, buckets: [{ bucket: 0 }, ...], bucketCount }` at
 *   `$.silverPlan`: indexes, never part lists.
 * - `SilverGroups`, an inline Map over the groups (`MaxConcurrency` from the deployment), runs
 *   `SilverGroup` (`op: "group"`) per group: its part range follows from the bronze manifest, the group
 *   count and its index; its partial Parquet files (keyed tables' rows split into the K buckets by a hash
 *   of the key) go to the lake as one object, bucket by bucket, with its stats (silver/<dataset>/_work/).
 * - `SilverBuckets`, an inline Map over the buckets, runs `SilverBucket` (`op: "bucket"`) per bucket: its
 *   byte range of each group's object merged and deduplicated into its file of each table
 *   (`part-<bucket>.parquet`), its result written last.
 * - `Silver` (`op: "merge"`) only commits: the silver manifest from the groups' stats and the buckets'
 *   files, the work prefix removed; returns the stage's result at `$.silver`.
 *
 * Items' summaries are discarded. Their tasks retry as every stage does; a state inside a Map cannot reach
 * RecordFailure, so each Map catches what its items raise (the error keeps its name).
 */
function silverStates(options: WorkflowOptions): Record<string, Json> {
  const plan = `$.${ResultKey.silverPlan}`;
  return {
    [StateName.planSilver]: lambdaTask(
      Placeholder.silverFunctionArn,
      { op: 'plan', ...BRONZE_RUN, ...EXECUTION_ID },
      ResultKey.silverPlan,
      StateName.silverGroups,
    ),
    [StateName.silverGroups]: stageMap(options, {
      functionArn: Placeholder.silverFunctionArn,
      items: `${plan}.groups`,
      task: StateName.silverGroup,
      op: 'group',
      index: 'group',
      carried: { groupCount: `${plan}.groupCount`, bucketCount: `${plan}.bucketCount` },
      next: StateName.silverBuckets,
    }),
    [StateName.silverBuckets]: stageMap(options, {
      functionArn: Placeholder.silverFunctionArn,
      items: `${plan}.buckets`,
      task: StateName.silverBucket,
      op: 'bucket',
      index: 'bucket',
      carried: { groupCount: `${plan}.groupCount`, bucketCount: `${plan}.bucketCount` },
      next: StateName.silver,
    }),
    [StateName.silver]: lambdaTask(
      Placeholder.silverFunctionArn,
      {
        op: 'merge',
        ...BRONZE_RUN,
        ...EXECUTION_ID,
        'groupCount.$': `${plan}.groupCount`,
        'bucketCount.$': `${plan}.bucketCount`,
      },
      ResultKey.silver,
      StateName.planReconcile,
    ),
  };
}

/**
 * Reconciliation in steps that each re-read only their share (shared/stages/reconcile/reconcile.ts):
 *
 * - `PlanReconcile` (`op: "plan"`) writes the plan to the lake and returns `{ items: [{ item }, ...],
 *   buckets: [{ bucket }, ...], ... }` at `$.reconcilePlan`: indexes, never data.
 * - `ReconcileItems`, an inline Map over the items, runs `ReconcileItem` (`op: "item"`) per group of bronze
 *   parts or silver table file; `ReconcileKeyBuckets`, one over the buckets, runs `ReconcileKeyBucket`
 *   (`op: "keys"`) per key bucket once every file has emitted its keys. Their results go to the lake;
 *   the Maps discard the summaries and catch what their items raise (as `SilverGroups` does).
 * - `Reconcile` (`op: "finish"`) adds the results up into the report, fails on any mismatch, and
 *   commits the version, its result at `$.reconcile`.
 */
function reconcileStates(options: WorkflowOptions): Record<string, Json> {
  const plan = `$.${ResultKey.reconcilePlan}`;
  return {
    [StateName.planReconcile]: lambdaTask(
      Placeholder.reconcileFunctionArn,
      { op: 'plan', ...BRONZE_RUN, ...EXECUTION_ID },
      ResultKey.reconcilePlan,
      StateName.reconcileItems,
    ),
    [StateName.reconcileItems]: stageMap(options, {
      functionArn: Placeholder.reconcileFunctionArn,
      items: `${plan}.items`,
      task: StateName.reconcileItem,
      op: 'item',
      index: 'item',
      next: StateName.reconcileKeyBuckets,
    }),
    [StateName.reconcileKeyBuckets]: stageMap(options, {
      functionArn: Placeholder.reconcileFunctionArn,
      items: `${plan}.buckets`,
      task: StateName.reconcileKeyBucket,
      op: 'keys',
      index: 'bucket',
      next: StateName.reconcile,
    }),
    // `ingest`: what Ingest or PlanRebuild said of the run; a rebuild commits only over the current
    // version and build it was planned on.
    [StateName.reconcile]: lambdaTask(
      Placeholder.reconcileFunctionArn,
      { op: 'finish', ...BRONZE_RUN, ...EXECUTION_ID, 'ingest.$': `$.${ResultKey.ingest}` },
      ResultKey.reconcile,
      StateName.hasFanOut,
    ),
  };
}

/**
 * After a table of contents' own run: one child execution of this workflow per in-network file it lists
 * (`{ source: { url, dataset } }`: download, ingest, silver, reconcile), a page of files at a time.
 *
 * - `PlanFanOut` (shared/stages/fan-out/plan-fan-out.ts) hands out page `$.fanOut.nextPage` of the run's
 *   distinct, safe URLs, after recording the previous page's outcomes in the run's fan-out report; once
 *   past the last page it returns `done`.
 * - `FanOut` is a distributed map over the page, so each file's start-and-wait runs in a map-run child
 *   execution with its own history: the parent's history grows by a few events per page, not per file
 *   (an inline map would stop a table of contents at about 3,000 files, at 25,000 events).
 * - `IngestListedFile` starts this state machine for the file (`.sync:2`: waits for it) under a name
 *   derived from the parent's name and the URL, so a retried or redriven start cannot run a file twice.
 *   Any failure is caught into `ListedFileFailed`, the item's result: one bad file does not fail the
 *   others, and the child recorded its own failure (with the cause) in the failure queue.
 *
 * `fanOut` is optional in the execution input (ExecutionInput): only an explicit `false` skips the
 * fan-out. It is read from the execution's input, which `Landed` does not carry along for a download.
 */
function tableOfContentsFanOut(options: WorkflowOptions): Record<string, Json> {
  const fanOut = `$.${ResultKey.fanOut}`;
  return {
    [StateName.hasFanOut]: {
      Type: 'Choice',
      Choices: [
        { ...FAN_OUT_SKIPPED, Next: StateName.succeeded },
        // A rebuild rebuilds the table's own silver: its listed files are sources of their own.
        { Variable: '$$.Execution.Input.rebuild', IsPresent: true, Next: StateName.succeeded },
        {
          Variable: `$.${ResultKey.ingest}.dataset`,
          StringEquals: FAN_OUT_DATASET,
          Next: StateName.startFanOut,
        },
      ],
      Default: StateName.succeeded,
    },
    [StateName.startFanOut]: {
      Type: 'Pass',
      Result: FAN_OUT_START,
      ResultPath: fanOut,
      Next: StateName.planFanOut,
    },
    [StateName.planFanOut]: lambdaTask(
      Placeholder.fanOutFunctionArn,
      {
        ...BRONZE_RUN,
        ...EXECUTION_ID,
        'executionName.$': '$$.Execution.Name',
        'page.$': `${fanOut}.nextPage`,
        'results.$': `${fanOut}.results`,
        'succeeded.$': `${fanOut}.succeeded`,
        'failed.$': `${fanOut}.failed`,
      },
      ResultKey.fanOut,
      StateName.fanOutDone,
    ),
    [StateName.fanOutDone]: {
      Type: 'Choice',
      Choices: [
        {
          And: [
            { Variable: `${fanOut}.done`, BooleanEquals: true },
            { Variable: `${fanOut}.failed`, NumericEquals: 0 },
            { Variable: `${fanOut}.rejected`, NumericEquals: 0 },
          ],
          Next: StateName.succeeded,
        },
        { Variable: `${fanOut}.done`, BooleanEquals: true, Next: StateName.listedFilesFailed },
      ],
      Default: StateName.fanOut,
    },
    // A table of contents whose listed files did not all make it is not a success, though its own run
    // committed: the execution fails (and alarms), naming the counts and the fan-out report. Each failed
    // child recorded its own failure; a refused URL has no child, so this is its only record.
    [StateName.listedFilesFailed]: {
      Type: 'Pass',
      Parameters: {
        Error: LISTED_FILES_FAILED_ERROR,
        'Cause.$':
          `States.Format('{} of {} listed files failed, {} more were refused before download (the ` +
          `fan-out report: {}); each failed file has its own execution in the failure queue', ` +
          `${fanOut}.failed, ${fanOut}.listed, ${fanOut}.rejected, ${fanOut}.report)`,
      },
      ResultPath: `$.${ResultKey.error}`,
      Next: StateName.recordFailure,
    },
    [StateName.fanOut]: {
      Type: 'Map',
      ItemsPath: `${fanOut}.items`,
      ItemProcessor: {
        ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
        StartAt: StateName.ingestListedFile,
        States: {
          [StateName.ingestListedFile]: {
            Type: 'Task',
            Resource: `arn:${placeholder(Placeholder.partition)}:states:::states:startExecution.sync:2`,
            Parameters: {
              StateMachineArn: placeholder(Placeholder.stateMachineArn),
              'Name.$': '$.executionName',
              Input: { source: { 'url.$': '$.url', 'dataset.$': '$.dataset' } },
            },
            // `.sync:2` returns the child's description, its output parsed: keep the bronze run id only.
            ResultSelector: { status: 'succeeded', 'runId.$': '$.Output.ingest.runId' },
            TimeoutSeconds: options.listedFileTimeoutSeconds ?? DEFAULT_LISTED_FILE_TIMEOUT_SECONDS,
            Retry: [CHILD_START_RETRY],
            Catch: [catchInto(StateName.listedFileFailed)],
            End: true,
          },
          [StateName.listedFileFailed]: {
            Type: 'Pass',
            Parameters: { status: 'failed', 'error.$': `$.${ResultKey.error}.Error` },
            End: true,
          },
        },
      },
      MaxConcurrency: options.fanOutConcurrency ?? DEFAULT_FAN_OUT_CONCURRENCY,
      Label: StateName.fanOut,
      ResultPath: `${fanOut}.results`,
      Catch: [TO_RECORD_FAILURE],
      Next: StateName.planFanOut,
    },
  };
}

/** Every failure ends here: one message per failed execution in the failure queue, then `Failed`. */
function failureStates(): Record<string, Json> {
  return {
    [StateName.recordFailure]: {
      Type: 'Task',
      Resource: `arn:${placeholder(Placeholder.partition)}:states:::sqs:sendMessage`,
      Parameters: {
        QueueUrl: placeholder(Placeholder.failureQueueUrl),
        // `$$` is the execution's context object, `$.error` the Catch's { Error, Cause }.
        MessageBody: {
          'executionId.$': '$$.Execution.Id',
          'input.$': '$$.Execution.Input',
          'error.$': `$.${ResultKey.error}`,
        },
      },
      // Keep the state's input (with `error`) as its output, so `Failed` can report the original error.
      ResultPath: null,
      Retry: [RECORD_FAILURE_RETRY],
      Next: StateName.failed,
    },
    [StateName.failed]: {
      Type: 'Fail',
      ErrorPath: `$.${ResultKey.error}.Error`,
      CausePath: `$.${ResultKey.error}.Cause`,
    },
  };
}

/** Every Task state of a definition and its Resource, those in Map item processors included. */
export function taskResources(definition: WorkflowDefinition): [string, unknown][] {
  return Object.entries(definition.States).flatMap(([name, state]): [string, unknown][] => {
    if (state.Type === 'Task') return [[name, state.Resource]];
    if (state.Type === 'Map') return taskResources(state.ItemProcessor ?? state.Iterator);
    return [];
  });
}

/**
 * The definition with each `${Placeholder}` replaced by its value (as CloudFormation's definition
 * substitutions do); a placeholder without a value is an error, so nothing runs half-substituted.
 */
export function substitutePlaceholders(
  definition: WorkflowDefinition,
  values: Readonly<Record<Placeholder, string>>,
): WorkflowDefinition {
  const text = JSON.stringify(definition).replace(/\$\{(\w+)\}/g, (_match, name: string) => {
    const value = values[name as Placeholder];
    if (value === undefined) {
      throw new Error(
        `the workflow definition names \${${name}}, which has no value; add it to the substitutions`,
      );
    }
    // The value sits inside a JSON string: escape it as one.
    return JSON.stringify(value).slice(1, -1);
  });
  return JSON.parse(text) as WorkflowDefinition;
}
