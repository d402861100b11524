import { dirname } from 'node:path';
import { FileObjectStore } from '../../adapters/local/file-object-store.ts';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { DatasetConfig } from '../../contracts/dataset-config.ts';
import { contractForDataset, silverContractFor } from '../../contracts/datasets/silver-contracts.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { ConfigError } from '../../errors.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { SilverGroupPlan, SilverGroupResult } from './silver-group.ts';
import type { SerializedError } from './worker-errors.ts';

/**
 * What a silver worker thread is told, and what it answers. Everything here crosses a thread boundary
 * by structured clone, so it is data: how to open the lake and which contract to use are descriptions,
 * not objects.
 */

/** How to open the lake in another thread: today only a local folder (an S3 lake builds silver inline). */
export interface LakeLocation {
  readonly kind: 'folder';
  readonly root: string;
}

/** Which contract a worker uses: the dataset config (as `contractForDataset` reads it), or a shipped one by name. */
export type SilverContractRef = { readonly datasetConfig: DatasetConfig } | { readonly dataset: string };

/** One group for one worker. */
export interface SilverWorkerTask {
  readonly bronzeManifestKey: string;
  readonly bronze: BronzeManifest;
  readonly group: SilverGroupPlan;
  /** Merge buckets of the build (`BuildSilverGroupInput.buckets`). */
  readonly buckets: number;
  readonly lake: LakeLocation;
  readonly contract: SilverContractRef;
  /** The group's own folder. */
  readonly workDir: string;
  /** The group's DuckDB `memory_limit`: several run at once. */
  readonly memoryLimit: string;
}

/** Worker → main thread. */
export type SilverWorkerMessage =
  | { readonly type: 'part'; readonly records: number }
  | { readonly type: 'done'; readonly result: SilverGroupResult }
  | { readonly type: 'failed'; readonly error: SerializedError };

/** Main thread → worker: stop at the next part (an earlier group failed). */
export interface SilverWorkerCancel {
  readonly type: 'cancel';
}

/** The location of a lake another thread can open, or undefined when it cannot (e.g. S3). */
export function lakeLocationOf(lake: ObjectStore): LakeLocation | undefined {
  if (!(lake instanceof FileObjectStore)) return undefined;
  // `uri` is the key's absolute path, so the folder of a top-level key is the root.
  return { kind: 'folder', root: dirname(lake.uri('probe')) };
}

export function openLake(location: LakeLocation): ObjectStore {
  return new FileObjectStore(location.root);
}

/**
 * A reference another thread can resolve to this very contract, or undefined when there is none: the
 * config it was made from, else the shipped contract of that name — if `contract` is that one.
 */
export function contractRefOf(
  contract: SilverContract,
  datasetConfig: DatasetConfig | undefined,
): SilverContractRef | undefined {
  if (datasetConfig) return { datasetConfig };
  return silverContractFor(contract.dataset) === contract ? { dataset: contract.dataset } : undefined;
}

export function resolveContract(ref: SilverContractRef): SilverContract {
  const contract =
    'datasetConfig' in ref ? contractForDataset(ref.datasetConfig) : silverContractFor(ref.dataset);
  const name = 'datasetConfig' in ref ? ref.datasetConfig.name : ref.dataset;
  if (!contract) throw new ConfigError(`dataset "${name}" has no silver contract`);
  return contract;
}
