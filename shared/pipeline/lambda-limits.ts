import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { S3ObjectStore } from '../adapters/aws/s3-object-store.ts';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { FileSecretStore } from '../adapters/local/file-secret-store.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { ConfigError } from '../errors.ts';
import type { LeaseProcess } from '../lake/source-lease.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { FetchOptions } from '../stages/download/download.ts';
import type { S3Requests } from '../workflow/run-cost.ts';
import type { Source } from '../workflow/source.ts';
import type { LambdaLimits } from './lambda-limits-option.ts';
import { LambdaRuntimeError } from './lambda-runtime-error.ts';
import type { LocalFunctionName } from './local-functions.ts';
import { type LocalStageEnv, type LocalStageHooks, storeLocation } from './local-stage-deps.ts';

export { type LambdaLimits, parseLambdaLimits } from './lambda-limits-option.ts';

const SCRATCH_POLL_MS = 50;
const MiB = 1024 * 1024;

/** A store another process can open again: a folder, or an S3 bucket and prefix. */
export type StoreSpec =
  | { readonly kind: 'folder'; readonly root: string }
  | { readonly kind: 's3'; readonly uri: string };

function storeSpecOf(store: ObjectStore, what: string): StoreSpec {
  if (store instanceof FileObjectStore) return { kind: 'folder', root: storeLocation(store) };
  if (store instanceof S3ObjectStore) return { kind: 's3', uri: storeLocation(store) };
  throw new ConfigError(
    `--lambda-limits runs each invocation in a process of its own, which must open the ${what} again: ` +
      'it must be a folder or an S3 bucket',
  );
}

/** What the invocation's process needs to rebuild the run's deps (./local-stage-deps.ts). */
export interface InvocationSpec {
  readonly name: LocalFunctionName;
  readonly event: unknown;
  readonly workDir: string;
  readonly functionArn: string;
  readonly requestId: string;
  readonly timeoutMs: number;
  readonly memoryMb?: number;
  /** States the execution entered before this invocation (Reconcile prices the run with them). */
  readonly stateTransitionsSoFar: number;
  readonly env: {
    readonly dataset: DatasetConfig;
    readonly source: StoreSpec;
    readonly lake: StoreSpec;
    /** Secrets from this file, else from the environment. */
    readonly secretsFile?: string;
    /** The id of the download's secret, when the run names it (`--secret-id`). */
    readonly secretId?: string;
    readonly fetchOptions?: FetchOptions;
    readonly leaseHolder: string;
    readonly leaseProcess: LeaseProcess;
    readonly quarantineRateThreshold?: number;
    readonly fanOutPageSize?: number;
    readonly silverGroups: number;
    readonly silverGroupTargetBytes?: number;
    readonly silverBucketTargetBytes?: number;
    readonly reconcilePlan?: LocalStageEnv['reconcilePlan'];
    readonly downloadPartBytes?: number;
    readonly ingestSliceMaxBytes?: number;
  };
}

/** Messages of the invocation's process. */
export type ChildMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'hook'; readonly hook: keyof LocalStageHooks; readonly args: unknown[] }
  | { readonly type: 'result'; readonly value: unknown }
  | { readonly type: 'error'; readonly name: string; readonly message: string; readonly stack?: string }
  /** The S3 requests the invocation made, sent before its result or error. */
  | { readonly type: 'requests'; readonly requests: S3Requests };

/** Set (to true) by the CLI's bundle (scripts/cli-bundle.mjs); absent when the TypeScript runs as it is. */
declare const SLUICE_BUNDLED: boolean | undefined;

/**
 * The invocation's process: in the CLI's bundle, the bundled child beside it; from the sources, the
 * TypeScript through tsx. Its start is Lambda's init (not timed), but its CPU is taken from the
 * invocations running meanwhile: ≈ 1.7 s through tsx, ≈ 0.9 s bundled (mostly loading the AWS SDK and
 * DuckDB), measured on 2 cores (docs/SCALING.md, "Lambda's limits, locally").
 */
const CHILD =
  typeof SLUICE_BUNDLED !== 'undefined' && SLUICE_BUNDLED
    ? { file: fileURLToPath(new URL('./lambda-invocation-child.mjs', import.meta.url)), execArgv: [] }
    : {
        file: fileURLToPath(new URL('./lambda-invocation-child.ts', import.meta.url)),
        execArgv: ['--import', 'tsx'],
      };

/** The error of an invocation's process, with the name it had there. */
function errorFrom(message: Extract<ChildMessage, { type: 'error' }>): Error {
  const error = new LambdaRuntimeError(message.name, message.message);
  if (message.stack) error.stack = message.stack;
  return error;
}

/**
 * One invocation of the stage function `name` in a process of its own, under `limits`. Resolves to the
 * function's return value; its hooks reach `hooks` here as they happen. `onScratch` gets the largest
 * scratch use measured, `onDuration` the time it ran (if it started).
 */
export async function invokeUnderLimits(
  name: LocalFunctionName,
  event: unknown,
  run: {
    readonly env: LocalStageEnv;
    readonly hooks: LocalStageHooks;
    readonly limits: LambdaLimits;
    readonly workDir: string;
    readonly functionArn: string;
    readonly signal?: AbortSignal;
    readonly onScratch: (bytes: number) => void;
    /** How long the invocation ran, from its start (after the process's init) to its end. */
    readonly onDuration: (ms: number) => void;
    readonly stateTransitionsSoFar: number;
    /** The S3 requests the invocation made (for its usage record). */
    readonly onRequests: (requests: S3Requests) => void;
    /** The invocation's process instead of ./lambda-invocation-child.ts (tests of the protocol). */
    readonly child?: { readonly file: string; readonly execArgv: readonly string[] };
  },
): Promise<unknown> {
  const { env, limits } = run;
  const source = (event as { source?: Source } | undefined)?.source;
  const spec: InvocationSpec = {
    name,
    event,
    workDir: run.workDir,
    functionArn: run.functionArn,
    requestId: randomUUID(),
    timeoutMs: limits.timeoutSeconds * 1000,
    memoryMb: limits.memoryMb,
    stateTransitionsSoFar: run.stateTransitionsSoFar,
    env: {
      dataset: env.dataset,
      source: storeSpecOf(env.source, 'landing store'),
      lake: storeSpecOf(env.lake, 'lake'),
      ...(env.secrets instanceof FileSecretStore && { secretsFile: env.secrets.path }),
      ...(env.secretIdOf && source && { secretId: env.secretIdOf(source) }),
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
    },
  };
  const program = run.child ?? CHILD;
  const child = fork(program.file, [], {
    execArgv: [...program.execArgv, ...(limits.memoryMb ? [`--max-old-space-size=${limits.memoryMb}`] : [])],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  let largest = 0;
  let startedAt: number | undefined;
  try {
    return await new Promise<unknown>((resolve, reject) => {
      let done = false;
      /** The process sent its result (it exits right after). */
      let returned = false;
      let timer: NodeJS.Timeout | undefined;
      let poll: NodeJS.Timeout | undefined;
      const end = (error: Error | undefined, value?: unknown) => {
        if (done) return;
        done = true;
        if (startedAt !== undefined) run.onDuration(performance.now() - startedAt);
        clearTimeout(timer);
        clearInterval(poll);
        run.signal?.removeEventListener('abort', onAbort);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        if (error) reject(error);
        else resolve(value);
      };
      const onAbort = () => end(run.signal?.reason ?? new Error('the run failed: invocation cancelled'));
      run.signal?.addEventListener('abort', onAbort);
      const checkScratch = async () => {
        const bytes = await folderBytes(run.workDir);
        largest = Math.max(largest, bytes);
        if (bytes > limits.tmpMb * MiB) {
          end(
            new LambdaRuntimeError(
              'ENOSPC',
              `ENOSPC: no space left on device: the invocation's scratch folder ${run.workDir} holds ` +
                `${(bytes / MiB).toFixed(1)} MB, more than its ${limits.tmpMb} MB (--lambda-limits tmp=` +
                `${limits.tmpMb}, Lambda's ephemeral storage)`,
            ),
          );
        }
      };
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'ready') {
          child.send({ type: 'invoke', spec });
          // The invocation starts now: the process's start was Lambda's init phase.
          startedAt = performance.now();
          timer = setTimeout(
            () =>
              end(
                new LambdaRuntimeError(
                  'Sandbox.Timedout',
                  `Task timed out after ${limits.timeoutSeconds.toFixed(2)} seconds (--lambda-limits timeout=` +
                    `${limits.timeoutSeconds}, the function's timeout)`,
                ),
              ),
            spec.timeoutMs,
          );
          poll = everyWithoutOverlap(checkScratch, SCRATCH_POLL_MS);
        } else if (message.type === 'requests') {
          run.onRequests(message.requests);
        } else if (message.type === 'hook') {
          (run.hooks[message.hook] as ((...args: unknown[]) => void) | undefined)?.(...message.args);
        } else if (message.type === 'result') {
          // Returned: its time ends here (the last scratch check is not the function's), and so does
          // its timeout.
          returned = true;
          clearInterval(poll);
          clearTimeout(timer);
          void checkScratch()
            .catch(() => {})
            .then(() => end(undefined, message.value));
        } else if (message.type === 'error') {
          end(errorFrom(message));
        }
      });
      child.on('error', (error) => end(error));
      // 'close', not 'exit': it comes after the process's pipes, the message channel among them, are
      // drained, so a result sent just before the exit is never taken for a crash.
      child.on('close', (code, signal) => {
        // The process exits once it has sent its result, maybe before the last scratch check is done:
        // the result's own path ends the invocation.
        if (returned) return;
        end(
          new LambdaRuntimeError(
            'Runtime.ExitError',
            `the invocation's process ${child.pid} exited (${signal ?? `code ${code}`}) before it returned: ${stderr.trim()}`,
          ),
        );
      });
    });
  } finally {
    run.onScratch(largest);
  }
}

/**
 * Runs `task` every `ms`, skipping a tick while the last run is still going: a scratch folder of many
 * files takes longer to walk than the interval, and overlapping walks would pile up. Errors are ignored
 * (a sample missed). Stop it with `clearInterval`.
 */
export function everyWithoutOverlap(task: () => Promise<unknown>, ms: number): NodeJS.Timeout {
  let running = false;
  return setInterval(() => {
    if (running) return;
    running = true;
    void task()
      .catch(() => {})
      .finally(() => {
        running = false;
      });
  }, ms);
}

/** Bytes of the files under `dir` (0 once it is gone). */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await folderBytes(path);
    else
      total += await stat(path).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}
