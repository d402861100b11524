import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import {
  Choice,
  Condition,
  DistributedMap,
  Errors,
  Fail,
  type IChainable,
  IntegrationPattern,
  JitterType,
  JsonPath,
  Map as MapState,
  Pass,
  Result,
  type RetryProps,
  StateMachine,
  StateMachineType,
  Succeed,
  TaskInput,
  type TaskStateBase,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import {
  LambdaInvoke,
  SqsSendMessage,
  StepFunctionsStartExecution,
  type StepFunctionsStartExecutionProps,
} from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { FAN_OUT_DATASET, FAN_OUT_START } from './stage-io.ts';

/**
 * The one definition of the ingest workflow. The CDK stack deploys it; the local runner
 * (shared/pipeline/local-runner.ts) takes the same Amazon States Language from the synthesized template
 * (the state machine carries the metadata `sluice:workflow`), so nothing describes the workflow twice.
 *
 *   HasSource? ──($.source.url)──> Download ──> DownloadDone? ──(status: partial)──> Download (the next
 *        │                                          │          invocation resumes the checkpoint)
 *        │                                          └──(otherwise)──> Landed ──┐
 *        └──(otherwise)──> Dropped ────────────────────────────────────────────┴──> Ingest
 *   Ingest ──> IngestDone? ──(status: sliced)──> Ingest (the next slice resumes the checkpoint)
 *                  └──(otherwise)──> HasSilver? ──(hasSilver: false)──> Succeeded
 *                                        └──(otherwise)──> PlanSilver ──> SilverGroups ──┐
 *        (a map: one SilverGroup per group of bronze parts, `MaxConcurrency` at once)     │
 *   ┌─────────────────────────────────────────────────────────────────────────────────────┘
 *   └─> Silver (merge) ──> Reconcile ──> HasFanOut?
 *   HasFanOut? ──(a table of contents, unless the input says "fanOut": false)──> StartFanOut ──┐
 *        └──(otherwise)──> Succeeded                                                           │
 *   ┌──────────────────────────────────────────────────────────────────────────────────────────┘
 *   └─> PlanFanOut ──> FanOutDone? ──(done)──> Succeeded
 *          ▲               └──(otherwise)──> FanOut (map over one page of listed files)
 *          └────────────────────────────────────┘   each: IngestListedFile (this workflow, as a child
 *                                                    execution) ──(any error)──> ListedFileFailed
 *   every task ──(any error, once retries are spent)──> RecordFailure (SQS) ──> Failed
 *
 * Each stage is one Lambda task with the same error policy (`stageTask`). States hand each other
 * references only (shared/workflow/stage-io.ts); each result lands under its own key (`$.ingest`,
 * `$.silver`, `$.reconcile`) beside the execution input, which every state keeps.
 */

/** State names: the execution history and the local runner refer to them. */
export const StateName = {
  hasSource: 'HasSource',
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
  silver: 'Silver',
  reconcile: 'Reconcile',
  hasFanOut: 'HasFanOut',
  startFanOut: 'StartFanOut',
  planFanOut: 'PlanFanOut',
  fanOutDone: 'FanOutDone',
  fanOut: 'FanOut',
  ingestListedFile: 'IngestListedFile',
  listedFileFailed: 'ListedFileFailed',
  succeeded: 'Succeeded',
  unchanged: 'Unchanged',
  duplicateRun: 'DuplicateRun',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
} as const;

/** Where each stage's result lands in the state's JSON (`ResultPath`). */
export const ResultKey = {
  download: 'download',
  ingest: 'ingest',
  silverPlan: 'silverPlan',
  silver: 'silver',
  reconcile: 'reconcile',
  fanOut: 'fanOut',
  error: 'error',
} as const;

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
export const LAMBDA_SERVICE_RETRY: RetryProps = {
  errors: [...LAMBDA_SERVICE_ERRORS],
  interval: Duration.seconds(2),
  maxAttempts: 8,
  backoffRate: 2,
  maxDelay: Duration.minutes(5),
  jitterStrategy: JitterType.FULL,
};

/**
 * Another execution holds the source's lease (shared/lake/source-lease.ts): wait for it. The waits add up
 * to an hour (no jitter, so never less), three times a lease's unrenewed lifetime: a holder that died has
 * lost its lease long before, and one that lives has usually finished. Then a run of the same object ends
 * as `DuplicateRun` (the holder ingests it); a run of another version fails into the failure queue, to
 * be redriven, rather than be dropped.
 */
export const SOURCE_BUSY_RETRY: RetryProps = {
  errors: ['SourceBusyError', 'DuplicateRunError'],
  interval: Duration.seconds(60),
  maxAttempts: 10,
  backoffRate: 1.5,
  maxDelay: Duration.minutes(10),
  jitterStrategy: JitterType.NONE,
};

/** Retries of transient handler errors: fewer and slower, since each attempt may redo a long stage. */
export const TRANSIENT_RETRY: RetryProps = {
  errors: [...TRANSIENT_ERRORS],
  interval: Duration.seconds(30),
  maxAttempts: 3,
  backoffRate: 2,
  maxDelay: Duration.minutes(5),
  jitterStrategy: JitterType.FULL,
};

/**
 * Failures to start a listed file's child execution that pass (too many open executions). The child's
 * own failure (`States.TaskFailed`) is not retried: the child already retried its stages.
 */
export const CHILD_START_RETRY: RetryProps = {
  errors: ['StepFunctions.ExecutionLimitExceeded'],
  interval: Duration.seconds(30),
  maxAttempts: 5,
  backoffRate: 2,
  maxDelay: Duration.minutes(5),
  jitterStrategy: JitterType.FULL,
};

/** Listed files of a table of contents ingested at once, by default. */
export const DEFAULT_FAN_OUT_CONCURRENCY = 4;

/** Silver groups built at once (`SilverGroups`), by default. */
export const DEFAULT_SILVER_CONCURRENCY = 8;
/** An inline Map runs at most 40 iterations at once. */
export const MAX_SILVER_CONCURRENCY = 40;

/** What the workflow runs on. */
export interface WorkflowResources {
  /** The `Download` stage (executions with a `source`): `functions/download/handler.ts`. */
  readonly downloadFunction: IFunction;
  /** The `Ingest` stage: `functions/ingest/handler.ts`. */
  readonly ingestFunction: IFunction;
  /** The `PlanSilver`, `SilverGroup` and `Silver` states (by the event's `op`): `functions/silver/handler.ts`. */
  readonly silverFunction: IFunction;
  /** Silver groups `SilverGroups` builds at once. @default DEFAULT_SILVER_CONCURRENCY */
  readonly silverConcurrency?: number;
  /** The `Reconcile` stage: `functions/reconcile/handler.ts`. */
  readonly reconcileFunction: IFunction;
  /** The `PlanFanOut` stage of table-of-contents runs: `functions/fan-out/handler.ts`. */
  readonly fanOutFunction: IFunction;
  /**
   * The name of the state machine this definition is deployed as. `IngestListedFile` starts it again (a
   * child execution per listed file) by an ARN built from this name, since a reference to the state
   * machine's own ARN inside its definition would be a cycle.
   */
  readonly stateMachineName: string;
  /** Listed files `FanOut` ingests at once. @default DEFAULT_FAN_OUT_CONCURRENCY */
  readonly fanOutConcurrency?: number;
  /** Longest one listed file's run may take; then its child execution is stopped. @default 6 hours */
  readonly listedFileTimeout?: Duration;
  /** Receives one message per failed execution: the execution id, its input, and the error. */
  readonly failureQueue: IQueue;
}

/** Build the workflow's states in `scope`; pass the result to `DefinitionBody.fromChainable`. */
export function ingestWorkflowDefinition(scope: Construct, resources: WorkflowResources): IChainable {
  const recordFailure = new SqsSendMessage(scope, StateName.recordFailure, {
    queue: resources.failureQueue,
    // JSONPath: `$$` is the execution's context object, `$.error` the Catch's { Error, Cause }.
    messageBody: TaskInput.fromObject({
      executionId: JsonPath.executionId,
      input: JsonPath.objectAt('$$.Execution.Input'),
      error: JsonPath.objectAt(`$.${ResultKey.error}`),
    }),
    // Keep the state's input (with `error`) as its output, so `Failed` can report the original error.
    resultPath: JsonPath.DISCARD,
  });
  const failed = new Fail(scope, StateName.failed, {
    errorPath: `$.${ResultKey.error}.Error`,
    causePath: `$.${ResultKey.error}.Cause`,
  });
  const onFailure = recordFailure.next(failed);

  /** A Lambda invocation with sluice's retries; its return value lands at `resultPath` (default: is the output). */
  const stageInvoke = (id: string, fn: IFunction, payload: TaskInput, resultPath?: string) =>
    new LambdaInvoke(scope, id, {
      lambdaFunction: fn,
      payload,
      // The result is the handler's return value alone (a small reference, never data).
      payloadResponseOnly: true,
      resultPath,
      // Off, so that the only retries are the explicit ones below (CDK's default has no jitter).
      retryOnServiceExceptions: false,
    })
      .addRetry(LAMBDA_SERVICE_RETRY)
      .addRetry(TRANSIENT_RETRY);

  /**
   * A workflow stage: a Lambda whose return value lands at `$.<resultKey>`, with sluice's error policy.
   * The Catch writes the error beside the input too (`$.error`), so RecordFailure still has all of it.
   */
  const stageTask = (id: string, fn: IFunction, payload: TaskInput, resultKey: string) =>
    stageInvoke(id, fn, payload, `$.${resultKey}`).addCatch(onFailure, {
      errors: [Errors.ALL],
      resultPath: `$.${ResultKey.error}`,
    });

  /** The `Silver` and `Reconcile` event: the bronze run `Ingest` committed. */
  const lakeStagePayload = TaskInput.fromObject({
    dataset: JsonPath.stringAt(`$.${ResultKey.ingest}.dataset`),
    bronzeManifestKey: JsonPath.stringAt(`$.${ResultKey.ingest}.manifestKey`),
    executionId: JsonPath.executionId,
  });

  // Another execution of the same source (a second drop, a schedule overlapping a manual run) waits for
  // the first, then ends as a clean duplicate instead of interleaving with it or failing.
  const duplicateRun = new Succeed(scope, StateName.duplicateRun, {
    comment: 'Another execution held this source until the retries ran out; it ingests the source.',
  });
  const ingest = stageInvoke(
    StateName.ingest,
    resources.ingestFunction,
    TaskInput.fromObject({
      bucket: JsonPath.stringAt('$.bucket'),
      key: JsonPath.stringAt('$.key'),
      dataset: JsonPath.stringAt('$.dataset'),
      // The URL of a download (`Landed`), or '' for a dropped file (`Dropped`).
      sourceUrl: JsonPath.stringAt('$.origin.url'),
      executionId: JsonPath.executionId,
    }),
    `$.${ResultKey.ingest}`,
  )
    .addRetry(SOURCE_BUSY_RETRY)
    .addCatch(duplicateRun, { errors: ['DuplicateRunError'], resultPath: `$.${ResultKey.error}` })
    .addCatch(onFailure, { errors: [Errors.ALL], resultPath: `$.${ResultKey.error}` });
  const silver = silverStates(scope, resources, stageInvoke, stageTask, onFailure);
  const reconcile = stageTask(
    StateName.reconcile,
    resources.reconcileFunction,
    lakeStagePayload,
    ResultKey.reconcile,
  );
  const succeeded = new Succeed(scope, StateName.succeeded);
  silver.end.next(reconcile).next(tableOfContentsFanOut(scope, resources, stageTask, onFailure, succeeded));

  // `hasSilver` is optional (see ExecutionInput): only an explicit `false` skips the silver stages.
  // IsPresent first, because comparing a path that does not exist is a runtime error.
  const hasSilver = new Choice(scope, StateName.hasSilver)
    .when(
      Condition.and(Condition.isPresent('$.hasSilver'), Condition.booleanEquals('$.hasSilver', false)),
      succeeded,
    )
    .otherwise(silver.start);

  // A long source is ingested in slices (one invocation each, within Lambda's 15 minutes): a slice that
  // stopped at its budget returns `status: "sliced"` and the next one resumes from its checkpoint.
  // A source whose current version has these bytes already ends at `Unchanged`: nothing is rebuilt.
  const ingestDone = new Choice(scope, StateName.ingestDone)
    .when(Condition.stringEquals(`$.${ResultKey.ingest}.status`, 'sliced'), ingest)
    .when(
      Condition.stringEquals(`$.${ResultKey.ingest}.status`, 'unchanged'),
      new Succeed(scope, StateName.unchanged),
    )
    .otherwise(hasSilver);
  ingest.next(ingestDone);

  // A scheduled run (`{ source: { url, dataset, ... } }`) downloads into landing first; `Landed` shapes
  // the landed object into the input Ingest expects, as if the object had landed by itself.
  const download = stageTask(
    StateName.download,
    resources.downloadFunction,
    TaskInput.fromObject({
      source: JsonPath.objectAt('$.source'),
      executionId: JsonPath.executionId,
    }),
    ResultKey.download,
  );
  const landed = new Pass(scope, StateName.landed, {
    parameters: {
      'bucket.$': `$.${ResultKey.download}.bucket`,
      'key.$': `$.${ResultKey.download}.key`,
      'dataset.$': `$.${ResultKey.download}.dataset`,
      'hasSilver.$': `$.${ResultKey.download}.hasSilver`,
      origin: { 'url.$': `$.${ResultKey.download}.url` },
    },
  });
  // A download longer than one invocation returns `status: "partial"` when its time runs out, and the
  // next invocation continues from its checkpoint (as Ingest's slices do).
  const downloadDone = new Choice(scope, StateName.downloadDone)
    .when(Condition.stringEquals(`$.${ResultKey.download}.status`, 'partial'), download)
    .otherwise(landed);
  download.next(downloadDone);
  landed.next(ingest);

  // A dropped file has no URL; JSONPath has no default value, so `Dropped` sets it to '' for Ingest.
  const dropped = new Pass(scope, StateName.dropped, {
    result: Result.fromObject({ url: '' }),
    resultPath: '$.origin',
  });
  dropped.next(ingest);
  return new Choice(scope, StateName.hasSource)
    .when(Condition.isPresent('$.source.url'), download)
    .otherwise(dropped);
}

/**
 * Silver in groups of bronze parts, so that no source is too large for one Lambda invocation:
 *
 * - `PlanSilver` (`op: "plan"`) splits the bronze run into groups (by uncompressed bytes) and returns
 *   `{ groups: [{ group: 0 }, ...], groupCount }` at `$.silverPlan`: indexes, never part lists.
 * - `SilverGroups`, an inline Map over those items (`MaxConcurrency` from the deployment), runs
 *   `SilverGroup` (`op: "group"`) per group: its part range follows from the bronze manifest, the group
 *   count and its index; its partial Parquet files and stats go to the lake (silver/<dataset>/_work/).
 *   Their summaries are discarded. The task retries as every stage does; a state inside a Map cannot reach
 *   RecordFailure, so the Map catches what its items raise (the error keeps its name).
 * - `Silver` (`op: "merge"`) merges the groups' files into the tables, commits the silver manifest,
 *   removes the work prefix, and returns the stage's result at `$.silver`.
 */
function silverStates(
  scope: Construct,
  resources: WorkflowResources,
  stageInvoke: (id: string, fn: IFunction, payload: TaskInput, resultPath?: string) => TaskStateBase,
  stageTask: (id: string, fn: IFunction, payload: TaskInput, resultKey: string) => TaskStateBase,
  onFailure: IChainable,
): { start: TaskStateBase; end: TaskStateBase } {
  const planKey = `$.${ResultKey.silverPlan}`;
  const event = (op: string, extra: Record<string, unknown> = {}) =>
    TaskInput.fromObject({
      op,
      dataset: JsonPath.stringAt(`$.${ResultKey.ingest}.dataset`),
      bronzeManifestKey: JsonPath.stringAt(`$.${ResultKey.ingest}.manifestKey`),
      executionId: JsonPath.executionId,
      ...extra,
    });
  const plan = stageTask(StateName.planSilver, resources.silverFunction, event('plan'), ResultKey.silverPlan);
  // Inside the Map, `$` is the item as ItemSelector made it: the run, the group's index and the count.
  const group = stageInvoke(
    StateName.silverGroup,
    resources.silverFunction,
    TaskInput.fromObject({
      op: 'group',
      dataset: JsonPath.stringAt('$.dataset'),
      bronzeManifestKey: JsonPath.stringAt('$.bronzeManifestKey'),
      executionId: JsonPath.stringAt('$.executionId'),
      group: JsonPath.numberAt('$.group'),
      groupCount: JsonPath.numberAt('$.groupCount'),
    }),
    // No ResultPath: the item's output is its summary, which the Map then discards.
  );
  const groups = new MapState(scope, StateName.silverGroups, {
    itemsPath: JsonPath.stringAt(`${planKey}.groups`),
    itemSelector: {
      dataset: JsonPath.stringAt(`$.${ResultKey.ingest}.dataset`),
      bronzeManifestKey: JsonPath.stringAt(`$.${ResultKey.ingest}.manifestKey`),
      executionId: JsonPath.executionId,
      group: JsonPath.numberAt('$$.Map.Item.Value.group'),
      groupCount: JsonPath.numberAt(`${planKey}.groupCount`),
    },
    maxConcurrency: resources.silverConcurrency ?? DEFAULT_SILVER_CONCURRENCY,
    resultPath: JsonPath.DISCARD,
  })
    .itemProcessor(group)
    .addCatch(onFailure, { errors: [Errors.ALL], resultPath: `$.${ResultKey.error}` });
  const merge = stageTask(
    StateName.silver,
    resources.silverFunction,
    event('merge', { groupCount: JsonPath.numberAt(`${planKey}.groupCount`) }),
    ResultKey.silver,
  );
  plan.next(groups).next(merge);
  return { start: plan, end: merge };
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
 */
function tableOfContentsFanOut(
  scope: Construct,
  resources: WorkflowResources,
  stageTask: (id: string, fn: IFunction, payload: TaskInput, resultKey: string) => TaskStateBase,
  onFailure: IChainable,
  succeeded: Succeed,
): IChainable {
  const fanOutKey = `$.${ResultKey.fanOut}`;
  const start = new Pass(scope, StateName.startFanOut, {
    result: Result.fromObject(FAN_OUT_START),
    resultPath: fanOutKey,
  });
  const plan = stageTask(
    StateName.planFanOut,
    resources.fanOutFunction,
    TaskInput.fromObject({
      dataset: JsonPath.stringAt(`$.${ResultKey.ingest}.dataset`),
      bronzeManifestKey: JsonPath.stringAt(`$.${ResultKey.ingest}.manifestKey`),
      executionId: JsonPath.executionId,
      executionName: JsonPath.executionName,
      page: JsonPath.numberAt(`${fanOutKey}.nextPage`),
      results: JsonPath.listAt(`${fanOutKey}.results`),
      succeeded: JsonPath.numberAt(`${fanOutKey}.succeeded`),
      failed: JsonPath.numberAt(`${fanOutKey}.failed`),
    }),
    ResultKey.fanOut,
  );

  const listedFileFailed = new Pass(scope, StateName.listedFileFailed, {
    parameters: { status: 'failed', 'error.$': `$.${ResultKey.error}.Error` },
  });
  const ingestListedFile = new StartOwnExecution(scope, StateName.ingestListedFile, {
    stateMachineName: resources.stateMachineName,
    integrationPattern: IntegrationPattern.RUN_JOB,
    name: JsonPath.stringAt('$.executionName'),
    input: TaskInput.fromObject({
      source: { url: JsonPath.stringAt('$.url'), dataset: JsonPath.stringAt('$.dataset') },
    }),
    // `.sync:2` returns the child's description, its output parsed: keep the bronze run id only.
    resultSelector: { status: 'succeeded', runId: JsonPath.stringAt('$.Output.ingest.runId') },
    taskTimeout: Timeout.duration(resources.listedFileTimeout ?? Duration.hours(6)),
  })
    .addRetry(CHILD_START_RETRY)
    .addCatch(listedFileFailed, { errors: [Errors.ALL], resultPath: `$.${ResultKey.error}` });

  const fanOut = new DistributedMap(scope, StateName.fanOut, {
    itemsPath: JsonPath.stringAt(`${fanOutKey}.items`),
    maxConcurrency: resources.fanOutConcurrency ?? DEFAULT_FAN_OUT_CONCURRENCY,
    mapExecutionType: StateMachineType.STANDARD,
    label: StateName.fanOut,
    resultPath: `${fanOutKey}.results`,
  })
    .itemProcessor(ingestListedFile)
    .addCatch(onFailure, { errors: [Errors.ALL], resultPath: `$.${ResultKey.error}` });

  const done = new Choice(scope, StateName.fanOutDone)
    .when(Condition.booleanEquals(`${fanOutKey}.done`, true), succeeded)
    .otherwise(fanOut);
  start.next(plan).next(done);
  fanOut.next(plan);

  // `fanOut` is optional in the execution input (ExecutionInput): only an explicit `false` skips the
  // fan-out. Read from the execution's input, which `Landed` does not carry along for a download.
  const fanOutInput = '$$.Execution.Input.fanOut';
  return new Choice(scope, StateName.hasFanOut)
    .when(
      Condition.and(Condition.isPresent(fanOutInput), Condition.booleanEquals(fanOutInput, false)),
      succeeded,
    )
    .when(Condition.stringEquals(`$.${ResultKey.ingest}.dataset`, FAN_OUT_DATASET), start)
    .otherwise(succeeded);
}

/**
 * `StepFunctionsStartExecution` of this state machine, by name, with permissions limited to it: CDK's own
 * statements would allow describing and stopping the executions of every state machine whose name
 * merely starts with this one's (`execution:<name>*`).
 */
class StartOwnExecution extends StepFunctionsStartExecution {
  protected override readonly taskPolicies: PolicyStatement[];

  constructor(
    scope: Construct,
    id: string,
    props: Omit<StepFunctionsStartExecutionProps, 'stateMachine'> & { readonly stateMachineName: string },
  ) {
    const { stateMachineName, ...rest } = props;
    const stateMachine = StateMachine.fromStateMachineName(scope, `${id}Target`, stateMachineName);
    super(scope, id, { ...rest, stateMachine });
    const stack = Stack.of(scope);
    this.taskPolicies = [
      new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachine.stateMachineArn] }),
      new PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [
          stack.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${stateMachineName}:*`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
      // `.sync` learns that the child ended from an EventBridge rule that Step Functions manages.
      new PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule',
          }),
        ],
      }),
    ];
  }
}
