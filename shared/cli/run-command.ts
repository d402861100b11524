import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { EnvSecretStore } from '../adapters/local/env-secret-store.ts';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { FileSecretStore } from '../adapters/local/file-secret-store.ts';
import { FolderDeadLetterStore } from '../adapters/local/folder-dead-letter-store.ts';
import { type DatasetConfig, loadDatasetConfigFile, recordTargets } from '../contracts/dataset-config.ts';
import { builtInDataset } from '../contracts/datasets/index.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import { ConfigError, PipelineError } from '../errors.ts';
import { bronzeManifestKey, bronzePartKey, sourceId } from '../lake/keys.ts';
import { runWorkflowLocally } from '../pipeline/local-runner.ts';
import type { LocalPipelineResult } from '../pipeline/pipeline-types.ts';
import { systemClock } from '../ports/clock.ts';
import { timeBudget } from '../stages/bronze/slice-budget.ts';
import { downloadToLanding } from '../stages/download/index.ts';
import { formatBytes } from './format.ts';
import type { RunOptions } from './main.ts';
import { createProgressReporter } from './progress.ts';
import { jsonSummary, StageTimes, textSummary } from './run-summary.ts';

async function resolveDataset(options: RunOptions): Promise<DatasetConfig> {
  if (options.config) return loadDatasetConfigFile(options.config);
  if (options.dataset) return builtInDataset(options.dataset);
  throw new ConfigError(
    'say what the file is: --dataset <name> for a built-in dataset (see `sluice datasets`), or --config <file>.',
  );
}

/** `sluice run <https-url>`: download into the landing folder first (retries, resume, checksum). */
async function downloadSource(url: string, dataset: DatasetConfig, options: RunOptions) {
  const landingDir = resolve(options.landing);
  const landing = new FileObjectStore(landingDir);
  if (options.auth && !options.secretId) {
    throw new ConfigError('--auth needs --secret-id: the id of the secret holding the credential.');
  }
  const secrets = options.secretsFile
    ? new FileSecretStore(options.secretsFile)
    : new EnvSecretStore(process.env);
  const credentials =
    options.auth && options.secretId
      ? { kind: options.auth, secretId: options.secretId, name: options.authName }
      : undefined;
  const result = await downloadToLanding(
    { url, dataset: dataset.name, sha256: options.sha256, credentials },
    {
      landing,
      secrets,
      clock: systemClock,
      fetchOptions: {
        allowInsecureHttp: options.allowHttp,
        allowLoopback: options.allowLoopback,
        allowPrivate: options.allowPrivate,
      },
      onRetry: (event) => {
        if (!options.quiet && !options.json)
          process.stderr.write(
            `download: attempt ${event.attempt} failed (${event.error}); retrying in ${Math.round(event.delayMs)} ms\n`,
          );
      },
    },
  );
  if (!options.quiet && !options.json) {
    const resumed = result.resumed ? ', resumed after a broken connection' : '';
    process.stderr.write(
      `downloaded ${formatBytes(result.bytes)} to ${landing.uri(result.key)} in ${result.attempts} attempt(s)${resumed}\n`,
    );
  }
  const info = await stat(landing.uri(result.key));
  return { store: landing, key: result.key, path: landing.uri(result.key), size: info.size };
}

async function resolveSource(file: string) {
  const path = resolve(file);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile())
    throw new ConfigError(`${file}: no such file. Give the path of a .json, .ndjson or .csv file.`);
  return { store: new FileObjectStore(dirname(path)), key: basename(path), path, size: info.size };
}

/** `sluice run`: a file through the local pipeline (parse → bronze → silver → reconciliation). */
export async function runIngest(file: string, options: RunOptions): Promise<void> {
  const dataset = await resolveDataset(options);
  const source = /^https?:\/\//i.test(file)
    ? await downloadSource(file, dataset, options)
    : await resolveSource(file);
  const lake = new FileObjectStore(resolve(options.lake));

  if (options.dryRun) {
    await printDryRun(dataset, source, lake, options);
    return;
  }

  const progress = createProgressReporter(process.stderr, !options.quiet && !options.json);
  const started = Date.now();
  const stages = new StageTimes(started);
  let result: LocalPipelineResult;
  try {
    result = await runWorkflowLocally(
      { dataset, sourceKey: source.key, fanOut: options.fanOut },
      {
        // What a table of contents' listed files are fetched with (the same flags as a URL source).
        downloadFetchOptions: {
          allowInsecureHttp: options.allowHttp,
          allowLoopback: options.allowLoopback,
          allowPrivate: options.allowPrivate,
        },
        source: source.store,
        lake,
        deadLetters: new FolderDeadLetterStore(resolve(options.lake)),
        clock: systemClock,
        onStage: (stage) => {
          stages.started(stage, Date.now());
          if (stage !== 'bronze') progress.stage(stage);
        },
        onIngestProgress: (p) => progress.update(p),
        sliceBudget:
          options.sliceSeconds === undefined
            ? undefined
            : () => timeBudget(systemClock, options.sliceSeconds! * 1000),
        onSilverProgress: (p) => progress.silver(p),
      },
    );
  } catch (error) {
    progress.stop();
    if (options.json) {
      const name = error instanceof PipelineError ? error.name : 'Error';
      const failure = {
        status: 'failed',
        dataset: dataset.name,
        source: source.path,
        error: { name, message: (error as Error).message },
      };
      process.stdout.write(`${JSON.stringify(failure)}\n`);
    }
    throw error;
  }
  progress.stop();
  const timings = stages.end(Date.now());
  if (options.json) process.stdout.write(`${stringifyLossless(jsonSummary(result, lake, timings))}\n`);
  else process.stdout.write(textSummary(result, lake, options.lake, timings));
}

async function printDryRun(
  dataset: DatasetConfig,
  source: Awaited<ReturnType<typeof resolveSource>>,
  lake: FileObjectStore,
  options: RunOptions,
): Promise<void> {
  // The source id needs the object's etag, which the adapter derives; head() is a read, not a write.
  const info = await source.store.head(source.key);
  {
    const id = sourceId({ uri: source.store.uri(source.key), size: info?.size ?? 0, etag: info?.etag ?? '' });
    const plan = {
      dryRun: true,
      dataset: dataset.name,
      read: { uri: source.path, bytes: source.size, format: dataset.format },
      records: recordTargets(dataset),
      headers: dataset.headers.map((h) => h.path),
      write: {
        parts: recordTargets(dataset).map((t) =>
          lake.uri(bronzePartKey(dataset.name, id, t.name, 0)).replace('00000', 'NNNNN'),
        ),
        manifest: lake.uri(bronzeManifestKey(dataset.name, id)),
      },
    };
    if (options.json) process.stdout.write(`${JSON.stringify(plan)}\n`);
    else {
      process.stdout.write(
        [
          `dry run: nothing is written`,
          `  would read   ${plan.read.uri} (${formatBytes(plan.read.bytes)}, ${plan.read.format})`,
          `  records at   ${plan.records.map((r) => r.path).join(', ')}`,
          `  headers      ${plan.headers.join(', ') || '(none)'}`,
          ...plan.write.parts.map((p) => `  would write  ${p}`),
          `  commit with  ${plan.write.manifest}`,
          '',
        ].join('\n'),
      );
    }
  }
}
