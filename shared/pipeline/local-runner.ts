import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import { z } from 'zod';
import type { LambdaContext } from '../adapters/aws/observability.ts';
import { withTransientErrors } from '../adapters/aws/transient.ts';
import { EnvSecretStore } from '../adapters/local/env-secret-store.ts';
import { UsageMeter } from '../adapters/usage-meter.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { builtInDataset } from '../contracts/datasets/index.ts';
import { contractForDataset } from '../contracts/datasets/silver-contracts.ts';
import { ObjectNotFoundError, PipelineError } from '../errors.ts';
import { sourceId } from '../lake/keys.ts';
import { deleteRunUsage, recordInvocation } from '../lake/run-usage.ts';
import { sourceIdentity } from '../lake/source-commits.ts';
import { releaseSourceLease, SourceBusyError, thisLeaseProcess } from '../lake/source-lease.ts';
import type { DeadLetterStore } from '../ports/dead-letter-store.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { SecretStore } from '../ports/secret-store.ts';
import type { IngestUnchangedResult } from '../stages/bronze/ingest-to-bronze.ts';
import type { DownloadResult, FetchOptions, RetryEvent } from '../stages/download/download.ts';
import { landingKey } from '../stages/download/landing-key.ts';
import { redactUrl } from '../stages/download/url-safety.ts';
import type { FanOutPlan } from '../stages/fan-out/plan-fan-out.ts';
import type { ReconcilePlanOptions } from '../stages/reconcile/reconcile-plan.ts';
import {
  LISTED_FILES_FAILED_ERROR,
  StateName,
  taskResources,
  type WorkflowDefinition,
} from '../workflow/definition.ts';
import { type ExecutionInput, executionName, type RebuildInput } from '../workflow/execution.ts';
import { Source } from '../workflow/source.ts';
import { FailureMessage, type FanOutOutput, ingestOutput } from '../workflow/stage-io.ts';
import { everyWithoutOverlap, folderBytes, invokeUnderLimits, type LambdaLimits } from './lambda-limits.ts';
import {
  LOCAL_RESOURCES,
  LOCAL_STATE_MACHINE_ARN,
  type LocalFunctionName,
  localFunctionMemoryMb,
  localFunctionOf,
  localFunctions,
  localWorkflowDefinition,
} from './local-functions.ts';
import { type LocalStageEnv, type LocalStageHooks, localStageDeps } from './local-stage-deps.ts';
import type {
  FanOutResult,
  ListedFileOutcome,
  LocalPipelineDeps,
  LocalPipelineResult,
  LocalRunResult,
  Stage,
} from './pipeline-types.ts';

/**
 * One workflow, two runtimes: the deployed state machine's definition (shared/workflow/definition.ts,
 * plain data: nothing is synthesized), its placeholders given local values (./local-functions.ts), run in
 * process by aws-local-stepfunctions. Its choices, retries, catches and the failure path are the deployed
 * ones, and so is the code of every task:
 *
 *   a Lambda task (Download, Ingest,  -> the handler's own exported function (functions/<stage>/handler.ts,
 *   PlanSilver, SilverGroup, Silver,     by the task's Resource in `localFunctions`), called as Lambda
 *   Reconcile, PlanFanOut)               would: the event, a Lambda context, a scratch folder of its own
 *                                        (its workDir), network failures renamed TransientError; its
 *                                        deps are the run's stores (a folder or S3) and secrets, plus
 *                                        hooks for the run's progress and summary. SilverGroup items
 *                                        run in worker threads, the SilverGroups map one per core.
 *   RecordFailure (sqs:sendMessage)   -> a DeadLetterStore (locally `<lake>/_dead_letters/<execution>.json`)
 *   IngestListedFile (.sync:2)        -> runWorkflowLocally for the listed file (a child run with the same
 *                                        deps), its failure rethrown as the `States.TaskFailed` of `.sync`
 *
 * A Task without a local handler would call real AWS, so the runner refuses a definition with a Task it
 * does not know.
 */

// aws-local-stepfunctions 3 calls Promise.withResolvers (Node 22+) for every task; Node 20 lacks it.
const promiseStatics = Promise as unknown as { withResolvers?: () => unknown };
promiseStatics.withResolvers ??= () => {
  let resolve!: (value: unknown) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

/** How often an in-process invocation's scratch folder is measured, for the run's largest scratch. */
const SCRATCH_SAMPLE_MS = 200;

/**
 * The longest task timeout the engine can wait for (Node's timers hold at most 2^31 − 1 ms). The engine
 * gives a Task without `TimeoutSeconds` the States Language spec's 60 s; Step Functions gives it
 * 99,999,999 s, and the Lambda's own timeout is what bounds a stage there. Locally nothing does, so the
 * runner fills in this limit rather than fail a large file after a minute.
 */
const MAX_TASK_TIMEOUT_SECONDS = 2_147_483;

/** One event of a local execution (state entered, exited, failed, retried, caught; execution ended). */
export interface WorkflowEvent {
  readonly type: string;
  readonly state?: { readonly name: string; readonly type: string };
  readonly retry?: { readonly attempt: number; readonly retrier: { readonly ErrorEquals: string[] } };
  readonly Error?: string;
  readonly Cause?: unknown;
}

/** What `runWorkflowLocally` works with. */
export interface LocalWorkflowDeps extends LocalPipelineDeps {
  /** Where failed executions are recorded (the deployed workflow's failure queue). */
  readonly deadLetters: DeadLetterStore;
  /** Wait between retries, instead of the definition's backoff (tests use 0). @default the definition's */
  readonly retryIntervalMs?: number;
  /** Every event of the execution, as it happens. */
  readonly onEvent?: (event: WorkflowEvent) => void;
  /**
   * How `Download` fetches. Tests only: e.g. `{ allowLoopback: true, allowInsecureHttp: true }` for a
   * local server. @default https to public hosts only, as deployed
   */
  readonly downloadFetchOptions?: FetchOptions;
  /**
   * Where `Download` reads a source's credential, and under which id. @default the environment, id
   * `sources/<source name>` (as deployed: one secret per named source)
   */
  readonly downloadSecrets?: {
    readonly store: SecretStore;
    readonly secretId?: (source: Source) => string;
  };
  /** `Download`: before each retry of an HTTP attempt, and once the file has landed (e.g. to log them). */
  readonly onDownloadRetry?: (event: RetryEvent) => void;
  readonly onDownloaded?: (landed: DownloadResult, uri: string) => void;
  /** The definition to run. @default the deployed one (`workflowDefinition()`) */
  readonly definition?: WorkflowDefinition;
  /**
   * `Reconcile`: a run that quarantined more than this share of its records fails.
   * @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05), as deployed
   */
  readonly quarantineRateThreshold?: number;
  /** Listed files per page of a table of contents' fan-out (tests). @default as deployed (200) */
  readonly fanOutPageSize?: number;
  /** `Download`'s bytes per part, instead of the size derived from the source's (tests: small parts). */
  readonly downloadPartBytes?: number;
  /** How reconciliation is split into items and key buckets (tests). @default as deployed, by size */
  readonly reconcilePlan?: ReconcilePlanOptions;
  /**
   * Run every Lambda task invocation as Lambda would under these limits, each in a process of its own
   * (./lambda-limits.ts). @default none: in process, as long and as large as the machine allows
   */
  readonly lambdaLimits?: LambdaLimits;
  /**
   * Bronze bytes per silver group, as a deployment sizes them (`silver.groupTargetMb`), e.g. to run a
   * file in groups that each fit `lambdaLimits`. @default one group per core, however large
   */
  readonly silverGroupTargetBytes?: number;
}

/**
 * The input of one local execution, as a dataset: either a landed object in `deps.source` (`sourceKey`),
 * or an HTTP source that the workflow's `Download` state first downloads into `deps.source`.
 */
export type LocalWorkflowInput = (
  | {
      readonly dataset: DatasetConfig;
      readonly sourceKey: string;
      readonly source?: undefined;
      readonly rebuild?: undefined;
    }
  | {
      readonly dataset: DatasetConfig;
      readonly source: Omit<Source, 'dataset'>;
      readonly sourceKey?: undefined;
      readonly rebuild?: undefined;
    }
  | {
      readonly dataset: DatasetConfig;
      /** A rebuild of a committed source (`sluice rebuild`): the execution input's `rebuild`. */
      readonly rebuild: { readonly sourceId: string; readonly force?: boolean };
      readonly sourceKey?: undefined;
      readonly source?: undefined;
    }
) & {
  /** `false` skips a table of contents' fan-out (the execution input's `fanOut`). @default true */
  readonly fanOut?: boolean;
  /** The execution's name. @default derived from the landed object or the source and the time */
  readonly executionName?: string;
};

/** The local execution failed with an error that no stage raised (a timeout, a failed RecordFailure). */
export class WorkflowFailedError extends PipelineError {
  override name = 'WorkflowFailedError';
}

/**
 * Run the deployed workflow for one source, in process. Resolves to what each stage produced;
 * on failure the execution is recorded in `deps.deadLetters` (by the workflow's own Catch) and the
 * stage's error is rethrown, with its sluice name.
 */
export async function runWorkflowLocally(
  input: LocalWorkflowInput,
  deps: LocalWorkflowDeps,
): Promise<LocalPipelineResult> {
  const { dataset } = input;
  // The contract the run uses, and so whether the workflow's HasSilver choice takes the silver stages.
  const contract = contractForDataset(dataset);
  let executionInput: ExecutionInput | { source: Source; fanOut?: boolean } | RebuildInput;
  let name: string;
  if (input.rebuild) {
    const { sourceId: source, force } = input.rebuild;
    executionInput = { rebuild: { dataset: dataset.name, source, ...(force && { force }) } };
    // Nothing landed: the name is per source and start time.
    name = executionName({
      bucket: 'rebuild',
      key: `${dataset.name}/rebuild-${source}`,
      etag: deps.clock.now().toISOString(),
    });
  } else if (input.source) {
    const source: Source = { ...input.source, dataset: dataset.name };
    executionInput = { source };
    // A download has no object version yet: the name is per source and start time.
    name = executionName({
      bucket: 'download',
      key: `${dataset.name}/${source.name ?? 'source'}`,
      etag: `${source.url}\0${deps.clock.now().toISOString()}`,
    });
  } else {
    const { sourceKey } = input;
    const info = await deps.source.head(sourceKey);
    if (!info) throw new ObjectNotFoundError(sourceKey);
    const bucket = locationOf(deps.source.uri(sourceKey), sourceKey);
    executionInput = { bucket, key: sourceKey, dataset: dataset.name, hasSilver: contract !== undefined };
    name = executionName({ bucket, key: sourceKey, etag: info.etag });
  }
  if (input.fanOut !== undefined) executionInput = { ...executionInput, fanOut: input.fanOut };
  name = input.executionName ?? name;
  const executionId = `${LOCAL_STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${name}`;
  // Scratch space private to this run (two runs of one file at once, into one lake or two, never share
  // it), removed at the end.
  const scratchRoot = deps.workDir ?? tmpdir();
  await mkdir(scratchRoot, { recursive: true });
  const workDir = await mkdtemp(join(scratchRoot, 'sluice-run-'));
  /** Who holds the source's lease in the stages: the CLI's run, else this call (released at its end). */
  const leaseHolder = deps.leaseHolder ?? `${executionId}#${randomUUID()}`;
  try {
    return await runExecution();
  } finally {
    await rm(workDir, { recursive: true, force: true });
    // A failed run lets go of its source (a commit or an unchanged source already did).
    if (!deps.leaseHolder) {
      const ref = await localSourceRef(input, deps.source, deps.lake);
      await releaseSourceLease({ ...ref, holder: leaseHolder }, { lake: deps.lake, clock: deps.clock });
    }
  }

  async function runExecution(): Promise<LocalPipelineResult> {
    const results: {
      -readonly [K in keyof LocalRunResult]?: LocalRunResult[K];
    } & { unchanged?: IngestUnchangedResult } = {};
    /** The last error a task raised: rethrown when the execution fails with its name. */
    let taskError: Error | undefined;

    // Silver groups: one per core, as many built at once (the SilverGroups map's local MaxConcurrency).
    const silverParallelism = Math.max(1, deps.silverParallelism ?? availableParallelism());
    let silverProgress = { partsDone: 0, partsTotal: 0, records: 0 };
    /** Groups being built; once the execution has failed, the rest are cancelled and awaited. */
    const silverGroups = new Set<Promise<unknown>>();
    const silverCancel = new AbortController();

    // A table of contents' fan-out: its plan (from page 0) and each child's outcome, by execution name.
    let fanOutPlan: FanOutPlan | undefined;
    let fanOutReport = '';
    const listedOutcomes = new Map<string, ListedFileOutcome>();
    const rawDefinition = deps.definition ?? localWorkflowDefinition();

    /** The run, as each stage function's deps see it (./local-stage-deps.ts). */
    const stageEnv: LocalStageEnv = {
      dataset,
      source: deps.source,
      lake: deps.lake,
      clock: deps.clock,
      secrets: deps.downloadSecrets?.store ?? new EnvSecretStore(process.env),
      secretIdOf: deps.downloadSecrets?.secretId,
      fetchOptions: deps.downloadFetchOptions,
      // In process and without limits nothing has a deadline: one slice, through native zlib (3× faster
      // than the resumable reader a budget needs). Under limits, the invocation's context decides.
      sliceBudget: deps.sliceBudget ?? (deps.lambdaLimits ? undefined : () => undefined),
      ingestSliceMaxBytes: deps.ingestSliceMaxBytes,
      leaseHolder,
      // This process, which holds the lease for the run and renews it (`keepSourceLease`).
      leaseProcess: thisLeaseProcess(),
      quarantineRateThreshold: deps.quarantineRateThreshold,
      fanOutPageSize: deps.fanOutPageSize,
      reconcilePlan: deps.reconcilePlan,
      silverBucketTargetBytes: deps.silverBucketTargetBytes,
      downloadPartBytes: deps.downloadPartBytes,
      silverGroups: silverParallelism,
      silverGroupTargetBytes: deps.silverGroupTargetBytes,
      silverGroupWorkers: silverParallelism > 1,
      mergeTables: deps.mergeTables,
      signal: silverCancel.signal,
      functionStores: deps.functionStores,
    };
    /** What the invocations tell the run. */
    const hooks: LocalStageHooks = {
      ingestProgress: deps.onIngestProgress,
      ingestResult: (slice) => {
        if (slice.status === 'committed') results.bronze = slice;
        if (slice.status === 'unchanged') results.unchanged = slice;
      },
      silverPart: (records) => {
        const p = silverProgress;
        silverProgress = { ...p, partsDone: p.partsDone + 1, records: p.records + records };
        deps.onSilverProgress?.(silverProgress);
      },
      silverResult: (built) => {
        results.silver = built;
      },
      rebuildPlan: (plan) => {
        results.rebuild = { sourceId: plan.sourceId, build: plan.build, previousBuild: plan.currentBuild };
        if (plan.status === 'unchanged') {
          results.unchanged = {
            runId: plan.runId,
            dataset: plan.dataset,
            status: 'unchanged',
            sourceId: plan.sourceId,
            version: plan.version,
            currentRunId: plan.runId,
            committedAt: plan.committedAt,
            currentManifestKey: plan.manifestKey,
            read: false,
          };
          return;
        }
        // The committed bronze the rebuild starts from, as a run that reused it would report it.
        results.bronze = {
          runId: plan.runId,
          dataset: plan.dataset,
          status: 'committed',
          manifestKey: plan.manifestKey,
          manifestUri: deps.lake.uri(plan.manifestKey),
          manifest: plan.manifest,
          slices: 0,
          reused: true,
        };
      },
      reconcileResult: ({ report, commit, state }) => {
        results.reconciliation = report;
        results.commit = commit;
        if (state) results.state = state;
      },
      stateCaughtUp: (state) => {
        results.state = state;
      },
      fanOutPlan: (plan) => {
        fanOutPlan = plan;
      },
      downloadRetry: deps.onDownloadRetry,
      downloaded: (landed) => deps.onDownloaded?.(landed, deps.source.uri(landed.key)),
    };

    /** The stage each state starts, for the run's progress. */
    const stageOf: Partial<Record<string, Stage>> = {
      [StateName.ingest]: 'bronze',
      [StateName.planSilver]: 'silver',
      [StateName.silverBucket]: 'silver merge',
      [StateName.planReconcile]: 'reconcile',
    };
    let invocation = 0;
    let currentStage: Stage | undefined;
    const invocations: Record<string, number> = {};
    let largestScratchBytes = 0;
    let longestInvocationMs = 0;
    /** States entered and retries, as Step Functions bills them (read from the engine's events). */
    let stateTransitions = 0;
    const limits = deps.lambdaLimits;
    /**
     * One invocation of a stage function, as Lambda makes it: the event, the function's deps, a context,
     * a scratch folder of its own (removed afterwards), and the runtime's transient-error mapping.
     */
    const invoke = (state: string, name: LocalFunctionName) => async (event: unknown) => {
      if (state === StateName.silverGroup) silverCancel.signal.throwIfAborted();
      // A stage starts once, however many invocations it takes (slices, buckets).
      const stage = stageOf[state];
      if (stage && stage !== currentStage) {
        currentStage = stage;
        deps.onStage?.(stage);
      }
      const scratch = join(workDir, `${String(++invocation).padStart(4, '0')}-${state}`);
      await mkdir(scratch, { recursive: true });
      invocations[state] = (invocations[state] ?? 0) + 1;
      // Metered as the stage handler meters a Lambda invocation: billed at the memory the function is
      // deployed with (or the limits' memory), so that the run's cost estimates the bill on AWS.
      // Timed by the run's clock, as every other time of the run is.
      const meter = new UsageMeter(() => deps.clock.now().getTime());
      const memoryMb = limits?.memoryMb ?? localFunctionMemoryMb(name);
      // The engine's events of the states before this one reach the count first (they are in its queue).
      await new Promise((resolve) => setImmediate(resolve));
      const metering = { meter, stateTransitionsSoFar: () => stateTransitions };
      meter.begin(memoryMb);
      const onScratch = (bytes: number) => {
        largestScratchBytes = Math.max(largestScratchBytes, bytes);
      };
      const onDuration = (ms: number) => {
        longestInvocationMs = Math.max(longestInvocationMs, ms);
      };
      const called = performance.now();
      const running = limits
        ? invokeUnderLimits(name, event, {
            env: stageEnv,
            hooks,
            limits,
            workDir: scratch,
            functionArn: LOCAL_RESOURCES[name],
            signal: state === StateName.silverGroup ? silverCancel.signal : undefined,
            onScratch,
            onDuration,
            stateTransitionsSoFar: stateTransitions,
            onRequests: (requests) => meter.add(requests),
          })
        : withTransientErrors(() => {
            // Looked up at each invocation: the table is the one place a task's function comes from.
            const fn = localFunctions[name] as (
              event: unknown,
              deps: unknown,
              context: LambdaContext,
            ) => unknown;
            const context = localContext(LOCAL_RESOURCES[name]);
            const stageDeps = localStageDeps(name, stageEnv, scratch, hooks, metering);
            return Promise.resolve(fn(event, stageDeps, context));
          });
      if (state === StateName.silverGroup) silverGroups.add(running);
      // Under limits the invocation's watcher measures its scratch; here, a sample now and then.
      const sampling = limits
        ? undefined
        : everyWithoutOverlap(() => folderBytes(scratch).then(onScratch), SCRATCH_SAMPLE_MS);
      const t0 = Date.now();
      try {
        const output = await running;
        if (TRACE) traceInvocation(state, t0);
        if (state === StateName.planSilver) {
          const partsTotal = results.bronze?.manifest.parts.length ?? 0;
          silverProgress = { partsDone: 0, partsTotal, records: 0 };
        }
        if (state === StateName.planFanOut) fanOutReport = (output as FanOutOutput).report;
        return output;
      } catch (error) {
        taskError = error instanceof Error ? error : new Error(String(error));
        throw error;
      } finally {
        // As on Lambda, a record that cannot be written costs the run's cost a record, not the run.
        await recordInvocation(deps.lake, {
          executionId,
          stage: state,
          invocationId: randomUUID(),
          usage: meter.usage(),
        }).catch(() => {});
        silverGroups.delete(running);
        clearInterval(sampling);
        if (!limits) {
          onDuration(performance.now() - called);
          onScratch(await folderBytes(scratch));
        }
        await rm(scratch, { recursive: true, force: true });
      }
    };

    // states:startExecution.sync:2 of this workflow: { StateMachineArn, Name, Input }. The child runs here,
    // with the same stores, dead letters and fetch options; its result has the shape `.sync:2` returns.
    const ingestListedFile = async (parameters: unknown) => {
      const { Name, Input } = StartExecutionParameters.parse(parameters);
      const { source } = Input;
      const childId = `${LOCAL_STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${Name}`;
      try {
        const child = await runWorkflowLocally(
          { dataset: builtInDataset(source.dataset), source: { url: source.url }, executionName: Name },
          {
            ...deps,
            definition: rawDefinition,
            onEvent: undefined,
            onStage: undefined,
            onIngestProgress: undefined,
            onSilverProgress: undefined,
            onDownloadRetry: undefined,
            onDownloaded: undefined,
          },
        );
        listedOutcomes.set(Name, {
          url: source.url,
          status: 'succeeded',
          executionName: Name,
          runId: child.outcome === 'unchanged' ? child.unchanged.runId : child.bronze.runId,
          reconciliation: child.reconciliation?.status,
        });
        return {
          ExecutionArn: childId,
          Name,
          Status: 'SUCCEEDED',
          Output: {
            ingest: ingestOutput(
              child.outcome === 'unchanged' ? child.unchanged : child.bronze,
              builtInDataset(source.dataset),
            ),
          },
        };
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        listedOutcomes.set(Name, {
          url: source.url,
          status: 'failed',
          executionName: Name,
          error: `${failure.name}: ${failure.message}`,
        });
        throw new ChildExecutionFailedError(childId, failure);
      }
    };
    // sqs:sendMessage's parameters: { QueueUrl, MessageBody }; its result is discarded (ResultPath null).
    const recordFailure = async (parameters: unknown) => {
      const body = (parameters as { MessageBody?: unknown }).MessageBody;
      const letter = await deps.deadLetters.record(FailureMessage.parse(body));
      return { MessageId: letter.id };
    };

    /** Each Task state's local handler, by its Resource: a stage function, or a service integration. */
    const handlers: Record<string, (event: unknown) => Promise<unknown>> = {};
    for (const [state, resource] of taskResources(rawDefinition)) {
      const name = localFunctionOf(resource);
      if (name) handlers[state] = invoke(state, name);
      else if (String(resource).endsWith(':states:::sqs:sendMessage')) handlers[state] = recordFailure;
      else if (String(resource).endsWith(':states:::states:startExecution.sync:2')) {
        handlers[state] = ingestListedFile;
      }
    }

    // Map items one per core at once, as the deployed MaxConcurrency would on a machine this size.
    const definition = localized(rawDefinition, Object.keys(handlers), {
      [StateName.silverGroups]: silverParallelism,
      [StateName.silverBuckets]: silverParallelism,
      [StateName.reconcileItems]: silverParallelism,
      [StateName.reconcileKeyBuckets]: silverParallelism,
    });
    const taskStates = taskResources(definition).map(([state]) => state);
    const execution = new StateMachine(definition as never).run(executionInput as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        ...(deps.retryIntervalMs !== undefined && {
          retryIntervalOverrides: Object.fromEntries(taskStates.map((s) => [s, deps.retryIntervalMs!])),
        }),
      },
      context: {
        Execution: { Id: executionId, Name: name, RoleArn: 'arn:aws:iam::123456789012:role/local' },
      },
    });
    void (async () => {
      for await (const event of execution.eventLogs) {
        if (event.type === 'StateEntered' || event.type === 'StateRetried') stateTransitions++;
        deps.onEvent?.(event as WorkflowEvent);
      }
    })().catch(() => {});

    try {
      await execution.result;
    } catch (error) {
      // A table of contents whose listed files did not all make it: its run completed, and the summary
      // says which files failed (runOutcome), as the failed execution does on AWS.
      const listedFilesFailed =
        error instanceof ExecutionError &&
        (error as { cause?: Error }).cause?.name === LISTED_FILES_FAILED_ERROR &&
        fanOutPlan !== undefined;
      if (!listedFilesFailed) await failedExecution(error);
    }
    async function failedExecution(error: unknown): Promise<never> {
      const stageError = taskError;
      // Groups of a failed silver build still running (the engine abandons a failed Map's items): stop
      // them at their next part and let them end before the run reports its failure.
      silverCancel.abort(
        new WorkflowFailedError(`execution ${name} failed: its silver groups are cancelled`),
      );
      await Promise.allSettled([...silverGroups]);
      taskError = stageError;
      if (!(error instanceof ExecutionError)) throw error;
      const failed = (error as { cause?: Error }).cause;
      // The Fail state reports the caught error's name: rethrow the stage's own error, with its type.
      if (taskError && failed?.name === taskError.name) throw taskError;
      throw new WorkflowFailedError(
        `execution ${name} failed: ${failed?.name ?? 'Error'}: ${failed?.message ?? error.message}`,
        { cause: error },
      );
    }
    // The run ended and its cost is in its report: its usage records are spent. (Not when another run of
    // this file holds the source: that run shares this execution name, and its records are its own.)
    if (!(taskError instanceof SourceBusyError)) await deleteRunUsage(deps.lake, executionId);
    const taskInvocations = { byState: invocations, largestScratchBytes, longestInvocationMs };
    // A table of contents fans out whether its own bytes changed or not (each listed file is its own run).
    const fanOut = fanOutPlan && fanOutResult(fanOutPlan);
    if (results.unchanged) {
      return {
        outcome: 'unchanged',
        unchanged: results.unchanged,
        invocations: taskInvocations,
        ...(results.state && { state: results.state }),
        ...(results.rebuild && { rebuild: results.rebuild }),
        ...(fanOut && { fanOut }),
      };
    }
    // Ended at DuplicateRun: another run holds the source. Not a success of this run.
    if (taskError instanceof SourceBusyError && !results.bronze) throw taskError;
    if (!results.bronze) throw new WorkflowFailedError(`execution ${name} succeeded without running Ingest`);
    if (fanOut) results.fanOut = fanOut;
    return { ...results, outcome: 'committed', invocations: taskInvocations } as LocalPipelineResult;

    /** What became of each listed file of the fan-out (a file the map never reached: `not run`). */
    function fanOutResult(plan: FanOutPlan): FanOutResult {
      return {
        report: fanOutReport,
        files: [
          ...plan.files.map(
            (f): ListedFileOutcome =>
              listedOutcomes.get(f.executionName) ?? {
                url: f.url,
                status: 'failed',
                executionName: f.executionName,
                error: 'not run',
              },
          ),
          ...plan.rejected.map(
            (r): ListedFileOutcome => ({ url: r.url, status: 'rejected', error: r.reason }),
          ),
        ],
        duplicates: plan.duplicates,
      };
    }
  }
}

/** A run's result, known to have committed (not `unchanged`): for callers that ran a new source. */
export function committedRun(result: LocalPipelineResult): LocalRunResult {
  if (result.outcome !== 'committed') {
    throw new WorkflowFailedError(
      `expected a committed run, but the source was unchanged (version ${result.unchanged.version})`,
    );
  }
  return result;
}

/**
 * The source a local execution works on, as its lease and commit records key it: the landed file, or for
 * a URL the object it lands as (its key is unique per URL).
 */
export async function localSourceRef(
  input: LocalWorkflowInput,
  landing: ObjectStore,
  lake: ObjectStore,
): Promise<{ readonly dataset: string; readonly sourceId: string; readonly location: string }> {
  if (input.rebuild) {
    const { sourceId } = input.rebuild;
    return { dataset: input.dataset.name, sourceId, location: `${input.dataset.name} source ${sourceId}` };
  }
  const key = input.sourceKey ?? landingKey(input.dataset.name, new URL(input.source.url));
  const uri = landing.uri(key);
  return {
    dataset: input.dataset.name,
    sourceId: sourceId(await sourceIdentity(lake, input.dataset.name, key, uri)),
    location: input.source ? redactUrl(input.source.url) : uri,
  };
}

/**
 * The definition as the local engine must see it: every Task has a local handler (else the engine would
 * call AWS), and every Task has an explicit timeout (see MAX_TASK_TIMEOUT_SECONDS).
 */
function localized(
  definition: WorkflowDefinition,
  handled: readonly string[],
  mapConcurrency: Readonly<Record<string, number>> = {},
): WorkflowDefinition {
  const states: Record<string, Record<string, unknown>> = {};
  for (const [name, state] of Object.entries(definition.States) as [string, Record<string, unknown>][]) {
    if (state.Type === 'Parallel') {
      throw new WorkflowFailedError(`state ${name}: the local runner does not run ${state.Type} states`);
    }
    if (state.Type === 'Map') {
      // Inline, or distributed over items of the state input: the engine runs both in process.
      const processor = (state.ItemProcessor ?? state.Iterator) as WorkflowDefinition | undefined;
      if (!processor || state.ItemReader || state.ItemBatcher || state.ResultWriter) {
        throw new WorkflowFailedError(
          `state ${name}: the local runner runs a Map over items of its input only (no ItemReader, ` +
            'ItemBatcher or ResultWriter)',
        );
      }
      states[name] = {
        ...state,
        ...(mapConcurrency[name] !== undefined && { MaxConcurrency: mapConcurrency[name] }),
        [state.ItemProcessor ? 'ItemProcessor' : 'Iterator']: localized(processor, handled, mapConcurrency),
      };
      continue;
    }
    if (state.Type === 'Task' && !handled.includes(name)) {
      throw new WorkflowFailedError(
        `state ${name} (${String(state.Resource)}) has no local handler; locally it would call AWS`,
      );
    }
    const timed =
      state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined
        ? { ...state, TimeoutSeconds: MAX_TASK_TIMEOUT_SECONDS }
        : state;
    // Locally nobody waits for a busy source inside the workflow: `sluice run` fails at once with who
    // holds it, or waits itself (`--wait`), before it starts the execution.
    const retries = timed.Retry as { ErrorEquals: string[] }[] | undefined;
    states[name] = retries
      ? { ...timed, Retry: retries.filter((r) => !r.ErrorEquals.includes('SourceBusyError')) }
      : timed;
  }
  return { ...definition, States: states };
}

/** `SLUICE_TRACE=1`: a line per task invocation on stderr (when it started, how long, the RSS after). */
const TRACE = Boolean(process.env.SLUICE_TRACE);

function traceInvocation(state: string, startedAt: number): void {
  const started = ((startedAt - performance.timeOrigin) / 1000).toFixed(1);
  const rssMb = Math.round(process.memoryUsage.rss() / 2 ** 20);
  process.stderr.write(
    `trace: ${state} started at ${started} s, took ${Date.now() - startedAt} ms, rss ${rssMb} MB\n`,
  );
}

/**
 * The Lambda context of one local invocation. Without limits, a local task may take as long as it needs
 * and use the machine's memory: its remaining time is the longest task timeout the engine can wait for.
 */
function localContext(functionArn: string): LambdaContext {
  const deadline = Date.now() + MAX_TASK_TIMEOUT_SECONDS * 1000;
  return {
    functionName: functionArn.slice(functionArn.lastIndexOf(':') + 1),
    functionVersion: '$LATEST',
    invokedFunctionArn: functionArn,
    memoryLimitInMB: String(Math.floor(totalmem() / (1024 * 1024))),
    awsRequestId: randomUUID(),
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

/** The parameters of a `states:startExecution.sync:2` task of this workflow. */
const StartExecutionParameters = z.object({
  StateMachineArn: z.string().min(1),
  Name: z.string().min(1),
  Input: z.object({ source: Source }),
});

/**
 * A child execution that failed, as a `.sync` task reports it: `States.TaskFailed`, with the child's
 * description (its ARN, status, error and cause) as JSON in the cause.
 */
class ChildExecutionFailedError extends Error {
  override name = 'States.TaskFailed';
  constructor(executionArn: string, error: Error) {
    super(
      JSON.stringify({
        ExecutionArn: executionArn,
        Status: 'FAILED',
        Error: error.name,
        Cause: error.message,
      }),
      { cause: error },
    );
  }
}

/** The store location of a source: its URI without the key (`/abs/dir`, `s3://bucket`). */
function locationOf(uri: string, key: string): string {
  return uri.endsWith(key) ? uri.slice(0, uri.length - key.length).replace(/[/\\]+$/, '') || uri : uri;
}
