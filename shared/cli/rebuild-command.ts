import { randomUUID } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { openLakeStore } from '../adapters/lake-store.ts';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../adapters/local/folder-dead-letter-store.ts';
import type { DatasetConfig } from '../contracts/dataset-config.ts';
import { contractForDataset } from '../contracts/datasets/silver-contracts.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import { ConfigError, PipelineError } from '../errors.ts';
import { listCurrentVersions, type SourceVersionRecord } from '../lake/source-commits.ts';
import {
  keepSourceLease,
  releaseSourceLease,
  SourceBusyError,
  thisLeaseProcess,
} from '../lake/source-lease.ts';
import { runWorkflowLocally } from '../pipeline/local-runner.ts';
import type { LocalPipelineResult } from '../pipeline/pipeline-types.ts';
import { systemClock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { errorName } from './error-name.ts';
import { inCliTerms } from './option-flags.ts';
import { createProgressReporter } from './progress.ts';
import { resolveDataset, takeLease } from './run-command.ts';
import { jsonSummary, runOutcome, StageTimes, textSummary, writeJsonFailure } from './run-summary.ts';

/** The options of `sluice rebuild`. */
export interface RebuildOptions {
  readonly dataset?: string;
  readonly config?: string;
  /** One committed source: its id, or the path or URI it was read from. @default every committed one */
  readonly source?: string;
  readonly lake: string;
  readonly json: boolean;
  readonly quiet: boolean;
  /** Rebuild a source whose current build is the one this config and contract make. */
  readonly force: boolean;
  /** Wait while another run holds a source, instead of failing at once. */
  readonly wait: boolean;
  readonly quarantineThreshold: number;
}

/**
 * `sluice rebuild`: silver and reconciliation built again for every committed source of a dataset (or
 * the one `--source` names) from the bronze it committed, without reading the sources, through the same
 * workflow as a run (its `PlanRebuild` entry): each source's lease, a new build beside the current one,
 * its reconciliation and report, and the commit that switches the source to it once reconciliation passed.
 * Resolves to whether every source ended well (reconciled or unchanged); throws for a single source's
 * failure as `sluice run` does, so the exit codes are the same.
 */
export async function runRebuild(options: RebuildOptions): Promise<boolean> {
  const dataset = await resolveDataset(options);
  if (!contractForDataset(dataset)) {
    throw new ConfigError(
      `dataset "${dataset.name}" has no silver stage (its config has no "silver" section): there is ` +
        'nothing to rebuild. Add a "silver" section to the config (see `sluice schema`) and rebuild.',
    );
  }
  const lake = openLakeStore(options.lake);
  const sources = await sourcesToRebuild(lake, dataset, options);
  const failures: { readonly source: string; readonly error: Error }[] = [];
  let problems = false;
  for (const record of sources) {
    try {
      if (!(await rebuildSource(record, dataset, lake, options))) problems = true;
    } catch (error) {
      // One source alone: its error is the command's, exactly as `sluice run` reports it.
      if (sources.length === 1) throw error;
      const failure = error instanceof Error ? error : new Error(String(error));
      failures.push({ source: record.sourceId, error: failure });
      process.stderr.write(
        `error: ${record.sourceId}: ${errorName(failure)}: ` + `${inCliTerms(failure.message)}\n`,
      );
    }
  }
  if (failures.length === 0) return !problems;
  // The exit code says the worst: a failed rebuild (1), else bad config (2), else a busy source (3).
  const failed = failures.filter(
    (f) => !(f.error instanceof ConfigError) && !(f.error instanceof SourceBusyError),
  );
  const ids = (list: typeof failures) => list.map((f) => f.source).join(', ');
  if (failed.length > 0) {
    throw new PipelineError(
      `${failed.length} of ${sources.length} sources of ${dataset.name} failed to rebuild (${ids(failed)}); ` +
        'their errors are above, and `sluice dlq list` has them',
    );
  }
  throw (failures.find((f) => f.error instanceof ConfigError) ?? failures[0]!).error;
}

/** The committed sources to rebuild: every one of the dataset, or the one `--source` names. */
async function sourcesToRebuild(
  lake: ObjectStore,
  dataset: DatasetConfig,
  options: RebuildOptions,
): Promise<SourceVersionRecord[]> {
  const committed = await listCurrentVersions(lake, dataset.name);
  if (committed.length === 0) {
    throw new ConfigError(
      `${dataset.name}: the lake ${options.lake} has no committed source of this dataset, so there is ` +
        'nothing to rebuild (runs of a dataset without a "silver" section commit no version). Run a file ' +
        `first: sluice run FILE ${datasetFlag(dataset, options)} --lake ${options.lake}`,
    );
  }
  if (options.source === undefined) return committed;
  const wanted = options.source;
  const path = /^[a-z][a-z0-9+.-]*:\/\//i.test(wanted) ? wanted : resolve(wanted);
  const match = committed.filter(
    (r) => r.sourceId === wanted || r.uri === wanted || r.url === wanted || r.uri === path,
  );
  if (match.length === 0) {
    const known = committed.map((r) => `  ${r.sourceId}  (${r.url ?? r.uri})`).join('\n');
    throw new ConfigError(
      `--source ${wanted}: no committed source of ${dataset.name} in ${options.lake} has this id, path or ` +
        `URL. Committed sources (give the id):\n${known}`,
    );
  }
  return match;
}

const datasetFlag = (dataset: DatasetConfig, options: RebuildOptions) =>
  options.config ? `--config ${options.config}` : `--dataset ${dataset.name}`;

/** One source's rebuild, holding its lease: the workflow from `PlanRebuild`, then the summary. */
async function rebuildSource(
  record: SourceVersionRecord,
  dataset: DatasetConfig,
  lake: ObjectStore,
  options: RebuildOptions,
): Promise<boolean> {
  const talk = !options.quiet && !options.json;
  const lease = {
    dataset: dataset.name,
    sourceId: record.sourceId,
    location: record.url ?? record.uri,
    holder: `local:${hostname()}:${process.pid}:${randomUUID()}`,
  };
  const leaseDeps = { lake, clock: systemClock, localProcess: thisLeaseProcess() };
  await takeLease(lease, leaseDeps, options).catch((error: unknown) => {
    if (options.json) writeJsonFailure(dataset.name, { id: record.sourceId, uri: lease.location }, error);
    throw error;
  });
  const keeper = keepSourceLease(lease, leaseDeps, (error) => {
    process.stderr.write(`warning: ${error.message}\n`);
  });
  const progress = createProgressReporter(process.stderr, talk);
  const started = Date.now();
  const stages = new StageTimes(started);
  if (talk)
    process.stderr.write(`rebuilding ${dataset.name} source ${record.sourceId} (${lease.location})\n`);
  let result: LocalPipelineResult;
  try {
    result = await runWorkflowLocally(
      { dataset, rebuild: { sourceId: record.sourceId, force: options.force } },
      {
        // Nothing is read from a landing area: a rebuild reads committed bronze only.
        source: new FileObjectStore(tmpdir()),
        lake,
        leaseHolder: lease.holder,
        quarantineRateThreshold: options.quarantineThreshold,
        deadLetters: new FolderDeadLetterStore(lake),
        clock: systemClock,
        onStage: (stage) => {
          stages.started(stage, Date.now());
          progress.stage(stage);
        },
        onSilverProgress: (p) => progress.silver(p),
      },
    );
  } catch (error) {
    progress.stop();
    if (options.json) writeJsonFailure(dataset.name, { id: record.sourceId, uri: lease.location }, error);
    throw error;
  } finally {
    keeper.stop();
    await releaseSourceLease(lease, leaseDeps).catch((error: Error) => {
      process.stderr.write(`warning: the source's lease was not released: ${inCliTerms(error.message)}\n`);
    });
  }
  progress.stop();
  const timings = stages.end(Date.now());
  if (options.json) process.stdout.write(`${stringifyLossless(jsonSummary(result, lake, timings))}\n`);
  else process.stdout.write(textSummary(result, lake, options.lake, timings));
  const { problems } = runOutcome(result);
  if (problems.length > 0) process.stderr.write(`error: ${record.sourceId}: ${problems.join('; ')}\n`);
  return problems.length === 0;
}
