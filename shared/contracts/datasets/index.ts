import { ConfigError } from '../../errors.ts';
import { type DatasetConfig, parseDatasetConfig } from '../dataset-config.ts';
import { ticAllowedAmounts, ticInNetwork, ticTableOfContents } from './tic.ts';

/** The datasets sluice ships, by name. Others come from a config file (`--config`). */
export const builtInDatasets: Readonly<Record<string, DatasetConfig>> = Object.fromEntries(
  [ticInNetwork, ticAllowedAmounts, ticTableOfContents].map((input) => {
    const config = parseDatasetConfig(input, `built-in dataset ${input.name}`);
    return [config.name, config];
  }),
);

/** Look up a built-in dataset, with the list of names when it does not exist. */
export function builtInDataset(name: string): DatasetConfig {
  const config = builtInDatasets[name];
  if (!config) {
    throw new ConfigError(
      `unknown dataset "${name}". Built-in datasets: ${Object.keys(builtInDatasets).join(', ')}; ` +
        'or describe your own with --config FILE (see `sluice schema`).',
    );
  }
  return config;
}

/**
 * A dataset by name: one of `configured` (a local run of a dataset config file), else a built-in one.
 * The handlers take the first from their deps, so a local run's own dataset needs no deployment.
 */
export function datasetNamed(name: string, configured: readonly DatasetConfig[] = []): DatasetConfig {
  return configured.find((dataset) => dataset.name === name) ?? builtInDataset(name);
}
