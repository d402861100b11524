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
