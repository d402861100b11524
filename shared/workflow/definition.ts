import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import {
  Choice,
  Condition,
  Errors,
  Fail,
  type IChainable,
  JitterType,
  JsonPath,
  Pass,
  type RetryProps,
  Succeed,
  TaskInput,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, SqsSendMessage } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';

/**
 * The one definition of the ingest workflow. The CDK stack deploys it; the local runner
 * (shared/pipeline/local-runner.ts) takes the same Amazon States Language from the synthesized template
 * (the state machine carries the metadata `sluice:workflow`), so nothing describes the workflow twice.
 *
 *   HasSource? ──($.source.url)──> Download ──> Landed ──┐
 *        └──(otherwise)──────────────────────────────────┴──> Ingest
 *   Ingest ──> IngestDone? ──(status: sliced)──> Ingest (the next slice resumes the checkpoint)
 *                  └──(otherwise)──> HasSilver? ──(hasSilver: false)──> Succeeded
 *                                        └──(otherwise)──> Silver ──> Reconcile ──> Succeeded
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
  landed: 'Landed',
  ingest: 'Ingest',
  ingestDone: 'IngestDone',
  hasSilver: 'HasSilver',
  silver: 'Silver',
  reconcile: 'Reconcile',
  succeeded: 'Succeeded',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
} as const;

/** Where each stage's result lands in the state's JSON (`ResultPath`). */
export const ResultKey = {
  download: 'download',
  ingest: 'ingest',
  silver: 'silver',
  reconcile: 'reconcile',
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
 * (`MalformedInputError`, `RecordTooLargeError`, `ConfigError`, `ContractViolationError`,
 * `SchemaDriftError`, `ReconciliationError`), which no retry can fix.
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

/** Retries of transient handler errors: fewer and slower, since each attempt may redo a long stage. */
export const TRANSIENT_RETRY: RetryProps = {
  errors: [...TRANSIENT_ERRORS],
  interval: Duration.seconds(30),
  maxAttempts: 3,
  backoffRate: 2,
  maxDelay: Duration.minutes(5),
  jitterStrategy: JitterType.FULL,
};

/** What the workflow runs on. */
export interface WorkflowResources {
  /** The `Download` stage (executions with a `source`): `functions/download/handler.ts`. */
  readonly downloadFunction: IFunction;
  /** The `Ingest` stage: `functions/ingest/handler.ts`. */
  readonly ingestFunction: IFunction;
  /** The `Silver` stage: `functions/silver/handler.ts`. */
  readonly silverFunction: IFunction;
  /** The `Reconcile` stage: `functions/reconcile/handler.ts`. */
  readonly reconcileFunction: IFunction;
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

  /**
   * A workflow stage: a Lambda whose return value lands at `$.<resultKey>`, with sluice's error policy.
   * The Catch writes the error beside the input too (`$.error`), so RecordFailure still has all of it.
   */
  const stageTask = (id: string, fn: IFunction, payload: TaskInput, resultKey: string) =>
    new LambdaInvoke(scope, id, {
      lambdaFunction: fn,
      payload,
      // The result is the handler's return value alone (a small reference, never data).
      payloadResponseOnly: true,
      resultPath: `$.${resultKey}`,
      // Off, so that the only retries are the explicit ones below (CDK's default has no jitter).
      retryOnServiceExceptions: false,
    })
      .addRetry(LAMBDA_SERVICE_RETRY)
      .addRetry(TRANSIENT_RETRY)
      .addCatch(onFailure, { errors: [Errors.ALL], resultPath: `$.${ResultKey.error}` });

  /** The `Silver` and `Reconcile` event: the bronze run `Ingest` committed. */
  const lakeStagePayload = TaskInput.fromObject({
    dataset: JsonPath.stringAt(`$.${ResultKey.ingest}.dataset`),
    bronzeManifestKey: JsonPath.stringAt(`$.${ResultKey.ingest}.manifestKey`),
    executionId: JsonPath.executionId,
  });

  const ingest = stageTask(
    StateName.ingest,
    resources.ingestFunction,
    TaskInput.fromObject({
      bucket: JsonPath.stringAt('$.bucket'),
      key: JsonPath.stringAt('$.key'),
      dataset: JsonPath.stringAt('$.dataset'),
      executionId: JsonPath.executionId,
    }),
    ResultKey.ingest,
  );
  const silver = stageTask(StateName.silver, resources.silverFunction, lakeStagePayload, ResultKey.silver);
  const reconcile = stageTask(
    StateName.reconcile,
    resources.reconcileFunction,
    lakeStagePayload,
    ResultKey.reconcile,
  );
  const succeeded = new Succeed(scope, StateName.succeeded);
  silver.next(reconcile).next(succeeded);

  // `hasSilver` is optional (see ExecutionInput): only an explicit `false` skips the silver stages.
  // IsPresent first, because comparing a path that does not exist is a runtime error.
  const hasSilver = new Choice(scope, StateName.hasSilver)
    .when(
      Condition.and(Condition.isPresent('$.hasSilver'), Condition.booleanEquals('$.hasSilver', false)),
      succeeded,
    )
    .otherwise(silver);

  // A long source is ingested in slices (one invocation each, within Lambda's 15 minutes): a slice that
  // stopped at its budget returns `status: "sliced"` and the next one resumes from its checkpoint.
  const ingestDone = new Choice(scope, StateName.ingestDone)
    .when(Condition.stringEquals(`$.${ResultKey.ingest}.status`, 'sliced'), ingest)
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
    },
  });
  download.next(landed).next(ingest);

  return new Choice(scope, StateName.hasSource)
    .when(Condition.isPresent('$.source.url'), download)
    .otherwise(ingest);
}
