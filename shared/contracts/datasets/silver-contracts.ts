import type { DatasetConfig } from '../dataset-config.ts';
import { genericContract } from '../generic-contract.ts';
import type { SilverContract } from '../silver/contract.ts';
import { ticAllowedAmountsSilver } from './tic-allowed-amounts.silver.ts';
import { ticInNetworkSilver } from './tic-in-network.silver.ts';
import { ticTableOfContentsSilver } from './tic-table-of-contents.silver.ts';

/** The silver contracts sluice ships, by dataset name. */
const contracts: ReadonlyMap<string, SilverContract> = new Map(
  [ticInNetworkSilver, ticAllowedAmountsSilver, ticTableOfContentsSilver].map((c) => [c.dataset, c]),
);

/** The silver contract of a dataset, or undefined when it has none (its data stays in bronze). */
export function silverContractFor(datasetName: string): SilverContract | undefined {
  return contracts.get(datasetName);
}

/**
 * The silver contract of a dataset config: the contract sluice ships under its name, else the generic
 * contract its `silver` section defines, else undefined (its data stays in bronze).
 */
export function contractForDataset(config: DatasetConfig): SilverContract | undefined {
  return silverContractFor(config.name) ?? (config.silver ? genericContract(config) : undefined);
}
