import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecutionError, StateMachine } from 'aws-local-stepfunctions';
import { z } from 'zod';
import { withTransientErrors } from '../adapters/aws/transient.ts';
import { openParquetInspector } from '../adapters/duckdb/parquet-inspector.ts';
import { createPartialParquetTableWriter } from '../adapters/duckdb/parquet-table-writer.ts';
import { EnvSecretStore } from '../adapters/local/env-secret-store.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { builtInDataset } from '../contracts/datasets/index.ts';
import { contractForDataset } from '../contracts/datasets/silver-contracts.ts';
import { ConfigError, ObjectNotFoundError, PipelineError } from '../errors.ts';
import { sourceId } from '../lake/keys.ts';
import { releaseSourceLease, SourceBusyError } from '../lake/source-lease.ts';
import type { DeadLetterStore } from '../ports/dead-letter-store.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { SecretStore } from '../ports/secret-store.ts';
import type { IngestUnchangedResult } from '../stages/bronze/ingest-to-bronze.ts';
import { ingestSlice } from '../stages/bronze/ingest-to-bronze.ts';
import { commitVersion } from '../stages/commit/commit-version.ts';
import {
  type DownloadResult,
  downloadToLanding,
  type FetchOptions,
  type RetryEvent,
} from '../stages/download/download.ts';
import { landingKey } from '../stages/download/landing-key.ts';
import { redactUrl } from '../stages/download/url-safety.ts';
import { type FanOutPlan, planFanOut } from '../stages/fan-out/plan-fan-out.ts';
import { reconcile } from '../stages/reconcile/reconcile.ts';
import { buildSilver } from '../stages/silver/build-silver.ts';
import { mergeCommittedVersions } from '../stages/silver/merge-state.ts';
import { buildSilverGroupToLake, mergeSilver, planSilver } from '../stages/silver/silver-stages.ts';
import { StateName } from '../workflow/definition.ts';
import { ExecutionInput, executionName } from '../workflow/execution.ts';
import { type WorkflowDefinition, workflowDefinition } from '../workflow/local-definition.ts';
import { DownloadEvent, type DownloadStateOutput, Source, sourceSecretId } from '../workflow/source.ts';
import {
  FailureMessage,
  FanOutEvent,
  ingestOutput,
  LakeStageEvent,
  reconcileOutput,
  requireSilverContract,
  SilverStageEvent,
  silverOutput,
  silverPlanOutput,
} from '../workflow/stage-io.ts';
import type {
  ListedFileOutcome,
  LocalPipelineDeps,
  LocalPipelineResult,
  LocalRunResult,
} from './pipeline-types.ts';

/**
 * One workflow, two runtimes: the deployed state machine's definition (extracted from the synthesized
 * CDK app, shared/workflow/local-definition.ts), run in process by aws-local-stepfunctions. Its choices,
 * retries, catches and the failure path are the deployed ones; only the task resources differ:
 *
 *   Download                  -> downloadToLanding into `deps.source`, secrets from the environment
 *                                (source `x` with credentials: `SLUICE_SECRET_SOURCES_X`); with a
 *                                `sliceBudget`, each invocation stops at it and DownloadDone? loops
 *   Ingest, PlanSilver,       -> the stage functions the Lambda handlers call, on local adapters, with
 *   SilverGroup, Silver,         the same event parsing, transient-error mapping and result shapes;
 *   Reconcile                    each SilverGroup item in a worker thread of its own, the SilverGroups
 *                                map running one per core at once
 *   RecordFailure             -> a DeadLetterStore (locally `<lake>/_dead_letters/<execution>.json`)
 *   PlanFanOut                -> planFanOut on the lake, URLs checked with `downloadFetchOptions`
 *   IngestListedFile          -> runWorkflowLocally for the listed file (a child run with the same deps),
 *                                its failure rethrown as the `States.TaskFailed` that `.sync` raises
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

/** Placeholder ARNs of the local "deployment": executions are named like the deployed ones. */
const LOCAL_STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:sluice-local';

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
  /** `Download`'s bytes per part, instead of the size derived from the source's (tests: small parts). */
  readonly downloadPartBytes?: number;
  /** The definition to run. @default the deployed one (`workflowDefinition()`) */
  readonly definition?: WorkflowDefinition;
  /**
   * `Reconcile`: a run that quarantined more than this share of its records fails.
   * @default DEFAULT_QUARANTINE_RATE_THRESHOLD (0.05), as deployed
   */
  readonly quarantineRateThreshold?: number;
  /** Listed files per page of a table of contents' fan-out (tests). @default as deployed (200) */
  readonly fanOutPageSize?: number;
}

/**
 * The input of one local execution, as a dataset: either a landed object in `deps.source` (`sourceKey`),
 * or an HTTP source that the workflow's `Download` state first downloads into `deps.source`.
 */
export type LocalWorkflowInput = (
  | { readonly dataset: DatasetConfig; readonly sourceKey: string; readonly source?: undefined }
  | {
      readonly dataset: DatasetConfig;
      readonly source: Omit<Source, 'dataset'>;
      readonly sourceKey?: undefined;
    }
) & {
  /** `false` skips a table of contents' fan-out (the execution input's `fanOut`). @default true */
  readonly fanOut?: boolean;
  /** The execution's name. @default derived from the landed object or the source and the time */
  readonly executionName?: string;
};

/** A local source's secret: `sources/<name>`, read from `SLUICE_SECRET_SOURCES_<NAME>`. */
const LOCAL_SOURCE_SECRET_PREFIX = 'sources/';

/** The local execution failed with an error that no stage raised (a timeout, a failed RecordFailure). */
export class WorkflowFailedError extends PipelineError {
  override name = 'WorkflowFailedError';
}

/** The `Ingest` event: the execution input plus the execution id (as functions/ingest/handler.ts reads it). */
const IngestEvent = ExecutionInput.extend({
  executionId: z.string().min(1).optional(),
  sourceUrl: z.string().optional(),
});

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
  let executionInput: ExecutionInput | { source: Source; fanOut?: boolean };
  let name: string;
  if (input.source) {
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
  const executionId = `${LOCAL_STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${name}`;
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
      const ref = localSourceRef(input, deps.source);
      await releaseSourceLease({ ...ref, holder: leaseHolder }, { lake: deps.lake, clock: deps.clock });
    }
  }

  async function runExecution(): Promise<LocalPipelineResult> {
    const results: {
      -readonly [K in keyof LocalRunResult]?: LocalRunResult[K];
    } & { unchanged?: IngestUnchangedResult } = {};
    /** The last error a task raised: rethrown when the execution fails with its name. */
    let taskError: Error | undefined;
    const task =
      <T>(work: (event: unknown) => Promise<T>) =>
      async (event: unknown): Promise<T> => {
        try {
          return await withTransientErrors(() => work(event));
        } catch (error) {
          taskError = error instanceof Error ? error : new Error(String(error));
          throw error;
        }
      };

    /** A `Silver`/`Reconcile` event, with the run's contract (a ConfigError when it has none). */
    const lakeStageEvent = (event: unknown) => {
      const e = LakeStageEvent.parse(event);
      if (e.dataset !== dataset.name) {
        throw new ConfigError(
          `the stage event names dataset "${e.dataset}", this run is of "${dataset.name}"`,
        );
      }
      return { ...e, contract: contract ?? requireSilverContract(e.dataset) };
    };

    /** An event of the silver function (PlanSilver, SilverGroup, Silver), with the run's contract. */
    const silverStageEvent = <Op extends SilverStageEvent['op']>(event: unknown, op?: Op) => {
      const e = SilverStageEvent.parse(event) as Extract<SilverStageEvent, { op: Op }>;
      if (op && e.op !== op) throw new ConfigError(`expected a silver "${op}" event, got "${e.op}"`);
      return { ...e, ...lakeStageEvent({ dataset: e.dataset, bronzeManifestKey: e.bronzeManifestKey }) };
    };
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
    const rawDefinition = deps.definition ?? (await workflowDefinition());

    const handlers: Record<string, (event: unknown) => Promise<unknown>> = {
      [StateName.download]: task(async (event): Promise<DownloadStateOutput> => {
        const { source } = DownloadEvent.parse(event);
        if (source.dataset !== dataset.name) {
          throw new ConfigError(
            `the Download event names dataset "${source.dataset}", this run is of "${dataset.name}"`,
          );
        }
        const secretId = deps.downloadSecrets?.secretId;
        if (source.credentials && !source.name && !secretId) {
          throw new ConfigError('source.name is required with credentials: it names the secret');
        }
        const landed = await downloadToLanding(
          {
            url: source.url,
            dataset: source.dataset,
            sha256: source.sha256,
            credentials: source.credentials && {
              ...source.credentials,
              secretId: secretId?.(source) ?? sourceSecretId(LOCAL_SOURCE_SECRET_PREFIX, source.name!),
            },
          },
          {
            landing: deps.source,
            secrets: deps.downloadSecrets?.store ?? new EnvSecretStore(process.env),
            clock: deps.clock,
            fetchOptions: deps.downloadFetchOptions,
            onRetry: deps.onDownloadRetry,
            // As on Lambda: an invocation that runs out of budget checkpoints, and DownloadDone? loops.
            budget: deps.sliceBudget?.(),
            scratchDir: workDir,
            partBytes: deps.downloadPartBytes,
          },
        );
        if (landed.status === 'partial') {
          const { checkpointKey, status, key: _key, ...progress } = landed;
          return { status, checkpointKey, progress };
        }
        deps.onDownloaded?.(landed, deps.source.uri(landed.key));
        return {
          status: 'landed',
          bucket: locationOf(deps.source.uri(landed.key), landed.key),
          key: landed.key,
          dataset: source.dataset,
          hasSilver: contract !== undefined,
          url: redactUrl(source.url),
        };
      }),
      [StateName.ingest]: task(async (event) => {
        const e = IngestEvent.parse(event);
        if (e.dataset !== dataset.name) {
          throw new ConfigError(
            `the Ingest event names dataset "${e.dataset}", this run is of "${dataset.name}"`,
          );
        }
        deps.onStage?.('bronze');
        const slice = await ingestSlice(
          { dataset, sourceKey: e.key, sourceUrl: e.sourceUrl || undefined, leaseHolder },
          {
            source: deps.source,
            lake: deps.lake,
            clock: deps.clock,
            onProgress: deps.onIngestProgress,
            budget: deps.sliceBudget?.(),
            localLease: true,
          },
        );
        if (slice.status === 'committed') results.bronze = slice;
        if (slice.status === 'unchanged') results.unchanged = slice;
        return ingestOutput(slice);
      }),
      [StateName.planSilver]: task(async (event) => {
        const e = silverStageEvent(event, 'plan');
        deps.onStage?.('silver');
        const plan = await planSilver(
          { bronzeManifestKey: e.bronzeManifestKey },
          // Locally a group per core (as the Map runs as many at once), however small the groups.
          { lake: deps.lake, clock: deps.clock, minGroups: silverParallelism, targetGroupBytes: Infinity },
        );
        silverProgress = { partsDone: 0, partsTotal: plan.partsTotal, records: 0 };
        return silverPlanOutput(plan.groupCount);
      }),
      // One item of the SilverGroups map: in a worker thread of its own (when more than one run at once).
      [StateName.silverGroup]: task(async (event) => {
        silverCancel.signal.throwIfAborted();
        const e = silverStageEvent(event, 'group');
        const running = buildSilverGroupToLake(
          { bronzeManifestKey: e.bronzeManifestKey, group: e.group, groupCount: e.groupCount },
          {
            lake: deps.lake,
            contract: e.contract,
            createTableWriter: createPartialParquetTableWriter,
            workDir,
            worker: silverParallelism > 1 ? { datasetConfig: dataset } : undefined,
            onPart: (records) => {
              const p = silverProgress;
              silverProgress = { ...p, partsDone: p.partsDone + 1, records: p.records + records };
              deps.onSilverProgress?.(silverProgress);
            },
            signal: silverCancel.signal,
          },
        );
        silverGroups.add(running);
        try {
          return await running;
        } finally {
          silverGroups.delete(running);
        }
      }),
      [StateName.silver]: task(async (event) => {
        const e = silverStageEvent(event);
        deps.onStage?.(e.op === 'merge' ? 'silver merge' : 'silver');
        results.silver =
          e.op === 'merge'
            ? await mergeSilver(
                { bronzeManifestKey: e.bronzeManifestKey, groupCount: e.groupCount },
                {
                  lake: deps.lake,
                  clock: deps.clock,
                  contract: e.contract,
                  workDir,
                  mergeTables: deps.mergeTables,
                },
              )
            : await buildSilver(
                { bronzeManifestKey: e.bronzeManifestKey },
                {
                  lake: deps.lake,
                  clock: deps.clock,
                  contract: e.contract,
                  createTableWriter: createPartialParquetTableWriter,
                  workDir,
                  onProgress: deps.onSilverProgress,
                  parallelism: silverParallelism,
                  datasetConfig: dataset,
                  mergeTables: deps.mergeTables,
                },
              );
        return silverOutput(results.silver);
      }),
      [StateName.reconcile]: task(async (event) => {
        const e = lakeStageEvent(event);
        deps.onStage?.('reconcile');
        results.reconciliation = await reconcile(
          { bronzeManifestKey: e.bronzeManifestKey },
          {
            lake: deps.lake,
            clock: deps.clock,
            contract: e.contract,
            openInspector: openParquetInspector,
            workDir,
            quarantineRateThreshold: deps.quarantineRateThreshold,
          },
        );
        results.commit = await commitVersion(
          {
            bronzeManifestKey: e.bronzeManifestKey,
            quality: results.reconciliation.quality.score,
            leaseHolder,
          },
          { lake: deps.lake, clock: deps.clock, localLease: true },
        );
        // Generic datasets with a snapshot, cdc or scd2 load fold every source's current version into
        // their state (after the commit, so the state never holds a run that failed its reconciliation;
        // a replaced version's events leave the state with it).
        if (dataset.silver && dataset.silver.load !== 'append') {
          results.state = await mergeCommittedVersions(
            { dataset },
            { lake: deps.lake, clock: deps.clock, workDir },
          );
        }
        return reconcileOutput(results.reconciliation, results.commit);
      }),
      [StateName.planFanOut]: task(async (event) => {
        const e = FanOutEvent.parse(event);
        if (e.dataset !== dataset.name) {
          throw new ConfigError(
            `the PlanFanOut event names dataset "${e.dataset}", this run is of "${dataset.name}"`,
          );
        }
        const { output, plan } = await planFanOut(e, {
          lake: deps.lake,
          clock: deps.clock,
          urlSafety: deps.downloadFetchOptions,
          pageSize: deps.fanOutPageSize,
        });
        fanOutPlan = plan;
        fanOutReport = output.report;
        return output;
      }),
      // states:startExecution.sync:2 of this workflow: { StateMachineArn, Name, Input }. The child runs here,
      // with the same stores, dead letters and fetch options; its result has the shape `.sync:2` returns.
      [StateName.ingestListedFile]: async (parameters) => {
        const { Name, Input } = StartExecutionParameters.parse(parameters);
        const { source } = Input;
        const childId = `${LOCAL_STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${Name}`;
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
            Output: { ingest: ingestOutput(child.outcome === 'unchanged' ? child.unchanged : child.bronze) },
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
      },
      // sqs:sendMessage's parameters: { QueueUrl, MessageBody }; its result is discarded (ResultPath null).
      [StateName.recordFailure]: async (parameters) => {
        const body = (parameters as { MessageBody?: unknown }).MessageBody;
        const letter = await deps.deadLetters.record(FailureMessage.parse(body));
        return { MessageId: letter.id };
      },
    };

    const definition = localized(rawDefinition, Object.keys(handlers), {
      [StateName.silverGroups]: silverParallelism,
    });
    const taskStates = taskStateNames(definition);
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
    if (deps.onEvent) {
      const onEvent = deps.onEvent;
      void (async () => {
        for await (const event of execution.eventLogs) onEvent(event as WorkflowEvent);
      })().catch(() => {});
    }

    try {
      await execution.result;
    } catch (error) {
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
    if (results.unchanged) return { outcome: 'unchanged', unchanged: results.unchanged };
    // Ended at DuplicateRun: another run holds the source. Not a success of this run.
    if (taskError instanceof SourceBusyError && !results.bronze) throw taskError;
    if (!results.bronze) throw new WorkflowFailedError(`execution ${name} succeeded without running Ingest`);
    if (fanOutPlan) {
      const plan: FanOutPlan = fanOutPlan;
      results.fanOut = {
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
    return { ...results, outcome: 'committed' } as LocalPipelineResult;
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
export function localSourceRef(
  input: LocalWorkflowInput,
  landing: ObjectStore,
): { readonly dataset: string; readonly sourceId: string; readonly location: string } {
  const key = input.sourceKey ?? landingKey(input.dataset.name, new URL(input.source.url));
  const uri = landing.uri(key);
  return {
    dataset: input.dataset.name,
    sourceId: sourceId(uri),
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

/** Every Task state of a definition, those in Map item processors included. */
function taskStateNames(definition: WorkflowDefinition): string[] {
  return Object.entries(definition.States).flatMap(([name, state]) => {
    if (state.Type === 'Task') return [name];
    if (state.Type === 'Map') return taskStateNames(state.ItemProcessor ?? state.Iterator);
    return [];
  });
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
