import { Worker } from 'node:worker_threads';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { PipelineError } from '../../errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { SilverGroupPlan, SilverGroupResult } from './silver-group.ts';
import {
  contractRefOf,
  type LakeLocation,
  lakeLocationOf,
  type SilverWorkerCancel,
  type SilverWorkerMessage,
  type SilverWorkerTask,
} from './silver-worker-protocol.ts';
import { reviveError } from './worker-errors.ts';

/** Set (to true) by the CLI's bundle (scripts/cli-bundle.mjs); absent when the TypeScript runs as it is. */
declare const SLUICE_BUNDLED: boolean | undefined;

/**
 * The worker's JavaScript entry. In the CLI's bundle: the bundled worker beside it. From the sources:
 * a bootstrap that registers tsx, then loads `ENTRY`.
 */
const BOOTSTRAP =
  typeof SLUICE_BUNDLED !== 'undefined' && SLUICE_BUNDLED
    ? new URL('./silver-worker.mjs', import.meta.url)
    : new URL('./silver-worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL('./silver-worker.ts', import.meta.url).href;

/**
 * Runs each group in a worker thread of its own, all at once, and resolves to their results in group
 * order. When a group fails, the groups after it are cancelled (they stop at their next part) and the
 * groups before it still finish, so the error thrown is the one of the first failing group in part
 * order: the error a single pass over all parts would have raised. Resolves only once every worker has
 * exited, so their memory is free for what comes next.
 */
export async function runSilverGroupsInWorkers(
  tasks: readonly SilverWorkerTask[],
  onPart?: (records: number) => void,
  /** Cancels every group (each stops at its next part and fails with the abort's reason). */
  signal?: AbortSignal,
): Promise<SilverGroupResult[]> {
  const results: (SilverGroupResult | undefined)[] = tasks.map(() => undefined);
  const failures = new Map<number, unknown>();
  const workers: Worker[] = [];
  const cancel: SilverWorkerCancel = { type: 'cancel' };
  const fail = (index: number, error: unknown) => {
    if (results[index] || failures.has(index)) return;
    failures.set(index, error);
    for (const [later, worker] of workers.entries()) if (later > index) worker.postMessage(cancel);
  };

  const exited = tasks.map(
    (task, index) =>
      new Promise<void>((resolve) => {
        let worker: Worker;
        try {
          worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY, task } });
        } catch (error) {
          fail(index, error);
          resolve();
          return;
        }
        workers[index] = worker;
        worker.on('message', (message: SilverWorkerMessage) => {
          if (message.type === 'part') onPart?.(message.records);
          else if (message.type === 'done') results[index] = message.result;
          else fail(index, reviveError(message.error));
        });
        // An uncaught error or running out of heap: the worker exits after this.
        worker.on('error', (error) => fail(index, error));
        worker.on('exit', (code) => {
          fail(
            index,
            new PipelineError(
              `silver group ${index}: its worker thread exited (code ${code}) without a result`,
            ),
          );
          resolve();
        });
      }),
  );
  const onAbort = () => {
    for (const [index, worker] of workers.entries()) {
      fail(index, signal?.reason);
      worker?.postMessage(cancel);
    }
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) onAbort();
  try {
    await Promise.all(exited);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }

  if (failures.size > 0) throw failures.get(Math.min(...failures.keys()));
  return results as SilverGroupResult[];
}

/** What it takes to hand groups to worker threads. */
export interface SilverWorkerSetup {
  readonly bronzeManifestKey: string;
  readonly bronze: BronzeManifest;
  readonly lake: ObjectStore;
  readonly contract: SilverContract;
  readonly datasetConfig?: DatasetConfig;
  readonly lakeLocation?: LakeLocation;
  /** The group's folder, by group index. */
  readonly workDirOf: (group: number) => string;
  readonly memoryLimit: string;
  /** Merge buckets of the build. @default 1 */
  readonly buckets?: number;
}

/**
 * The worker tasks of these groups, or undefined when workers cannot rebuild what the build uses: a lake
 * that is not a local folder, or a contract that no config or name describes.
 */
export function silverWorkerTasks(
  groups: readonly SilverGroupPlan[],
  setup: SilverWorkerSetup,
): SilverWorkerTask[] | undefined {
  const lake = setup.lakeLocation ?? lakeLocationOf(setup.lake);
  const contract = contractRefOf(setup.contract, setup.datasetConfig);
  if (!lake || !contract) return undefined;
  return groups.map((group) => ({
    bronzeManifestKey: setup.bronzeManifestKey,
    bronze: setup.bronze,
    group,
    buckets: setup.buckets ?? 1,
    lake,
    contract,
    workDir: setup.workDirOf(group.index),
    memoryLimit: setup.memoryLimit,
  }));
}
