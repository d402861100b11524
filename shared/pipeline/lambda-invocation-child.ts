import type { LambdaContext } from '../adapters/aws/observability.ts';
import { withTransientErrors } from '../adapters/aws/transient.ts';
import { openLakeStore } from '../adapters/lake-store.ts';
import { EnvSecretStore } from '../adapters/local/env-secret-store.ts';
import { FileSecretStore } from '../adapters/local/file-secret-store.ts';
import { UsageMeter } from '../adapters/usage-meter.ts';
import { systemClock } from '../ports/clock.ts';
import type { ChildMessage, InvocationSpec, StoreSpec } from './lambda-limits.ts';
import { localFunctionMemoryMb, localFunctions } from './local-functions.ts';
import { type LocalStageHooks, localStageDeps } from './local-stage-deps.ts';

/**
 * One Lambda invocation under `--lambda-limits`, in a process of its own (./lambda-limits.ts): loads the
 * stage functions (Lambda's init), says `ready`, runs the one invocation it is sent with deps rebuilt
 * from its spec, relays the hooks, sends the result or the error, and exits.
 */

const send = (message: ChildMessage) =>
  new Promise<void>((resolve) => {
    process.send?.(message, undefined, {}, () => resolve());
  });

function storeOf(spec: StoreSpec) {
  return openLakeStore(spec.kind === 'folder' ? spec.root : spec.uri);
}

/** Counts the invocation's S3 requests; the run records its usage with them. */
const meter = new UsageMeter();

async function invoke(spec: InvocationSpec): Promise<unknown> {
  const started = Date.now();
  meter.begin(spec.memoryMb ?? localFunctionMemoryMb(spec.name));
  const context: LambdaContext = {
    functionName: spec.functionArn.slice(spec.functionArn.lastIndexOf(':') + 1),
    functionVersion: '$LATEST',
    invokedFunctionArn: spec.functionArn,
    memoryLimitInMB: String(spec.memoryMb ?? 10_240),
    awsRequestId: spec.requestId,
    getRemainingTimeInMillis: () => Math.max(0, started + spec.timeoutMs - Date.now()),
  };
  const relay =
    (hook: keyof LocalStageHooks) =>
    (...args: unknown[]) =>
      void send({ type: 'hook', hook, args });
  const hooks: LocalStageHooks = {
    ingestProgress: relay('ingestProgress'),
    ingestResult: relay('ingestResult'),
    silverPart: relay('silverPart'),
    silverResult: relay('silverResult'),
    rebuildPlan: relay('rebuildPlan'),
    reconcileResult: relay('reconcileResult'),
    stateCaughtUp: relay('stateCaughtUp'),
    fanOutPlan: relay('fanOutPlan'),
    downloadRetry: relay('downloadRetry'),
    downloaded: relay('downloaded'),
  };
  const { env } = spec;
  const deps = localStageDeps(
    spec.name,
    {
      dataset: env.dataset,
      source: storeOf(env.source),
      lake: storeOf(env.lake),
      clock: systemClock,
      secrets: env.secretsFile ? new FileSecretStore(env.secretsFile) : new EnvSecretStore(process.env),
      ...(env.secretId !== undefined && { secretIdOf: () => env.secretId! }),
      fetchOptions: env.fetchOptions,
      leaseHolder: env.leaseHolder,
      leaseProcess: env.leaseProcess,
      quarantineRateThreshold: env.quarantineRateThreshold,
      fanOutPageSize: env.fanOutPageSize,
      silverGroups: env.silverGroups,
      silverGroupTargetBytes: env.silverGroupTargetBytes,
      silverBucketTargetBytes: env.silverBucketTargetBytes,
      reconcilePlan: env.reconcilePlan,
      downloadPartBytes: env.downloadPartBytes,
      ingestSliceMaxBytes: env.ingestSliceMaxBytes,
      // One invocation, one process: a group is built here, as the Lambda builds it.
      silverGroupWorkers: false,
    },
    spec.workDir,
    hooks,
    { meter, stateTransitionsSoFar: () => spec.stateTransitionsSoFar },
  );
  const fn = localFunctions[spec.name] as (event: unknown, deps: unknown, context: LambdaContext) => unknown;
  return withTransientErrors(async () => fn(spec.event, deps, context));
}

process.on('message', (message: { type: 'invoke'; spec: InvocationSpec }) => {
  if (message.type !== 'invoke') return;
  const requests = () => {
    const usage = meter.usage();
    return send({
      type: 'requests',
      requests: { tier1: usage.s3Tier1Requests, tier2: usage.s3Tier2Requests },
    });
  };
  invoke(message.spec).then(
    async (value) => {
      await requests();
      await send({ type: 'result', value });
      process.exit(0);
    },
    async (error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      await requests();
      await send({ type: 'error', name: e.name, message: e.message, stack: e.stack });
      process.exit(0);
    },
  );
});
// The run that started this invocation is gone (killed, crashed): so is the invocation, as a Lambda's
// sandbox goes with its runtime. Left running, it would write to the lake beside the rerun that now
// holds the source, with no deadline (the run kept the timer).
process.on('disconnect', () => process.exit(1));
void send({ type: 'ready' });
