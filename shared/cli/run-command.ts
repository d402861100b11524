import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { openLakeStore } from '../adapters/lake-store.ts';
import { EnvSecretStore } from '../adapters/local/env-secret-store.ts';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { FileSecretStore } from '../adapters/local/file-secret-store.ts';
import { FolderDeadLetterStore } from '../adapters/local/folder-dead-letter-store.ts';
import {
  type DatasetConfig,
  datasetConfigSha256,
  loadDatasetConfigFile,
  recordTargets,
} from '../contracts/dataset-config.ts';
import { builtInDataset } from '../contracts/datasets/index.ts';
import { stringifyLossless } from '../contracts/exact-json.ts';
import { ChecksumMismatchError, ConfigError } from '../errors.ts';
import { bronzeManifestKey, bronzePartKey, bronzeRunId } from '../lake/keys.ts';
import {
  holdSourceLease,
  keepSourceLease,
  type LeaseDeps,
  type LeaseRef,
  releaseSourceLease,
  SourceBusyError,
  thisLeaseProcess,
} from '../lake/source-lease.ts';
import {
  type LocalWorkflowInput,
  localSourceRef,
  runWorkflowLocally,
  type WorkflowEvent,
} from '../pipeline/local-runner.ts';
import type { LocalPipelineResult } from '../pipeline/pipeline-types.ts';
import { systemClock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { timeBudget } from '../stages/bronze/slice-budget.ts';
import { redactUrl } from '../stages/download/index.ts';
import type { Source } from '../workflow/source.ts';
import { formatBytes } from './format.ts';
import type { RunOptions } from './main.ts';
import { inCliTerms } from './option-flags.ts';
import {
  checkFreeSpace,
  estimateInputSize,
  LAKE_BYTES_PER_INPUT_BYTE,
  SCRATCH_BYTES_PER_INPUT_BYTE,
} from './preflight.ts';
import { createProgressReporter } from './progress.ts';
import { jsonSummary, runOutcome, StageTimes, textSummary, writeJsonFailure } from './run-summary.ts';

const MiB = 1024 * 1024;

/** The dataset a command names: `--config FILE`, or a built-in `--dataset`. */
export async function resolveDataset(
  options: Pick<RunOptions, 'config' | 'dataset'>,
): Promise<DatasetConfig> {
  if (options.config) return loadDatasetConfigFile(options.config);
  if (options.dataset) return builtInDataset(options.dataset);
  throw new ConfigError(
    'say what the file is: --dataset <name> for a built-in dataset (see `sluice datasets`), or --config <file>.',
  );
}

/**
 * `sluice run <https-url>`: the source of the workflow's own `Download` state (retries, resume, checksum),
 * so that a failed download is dead-lettered by the workflow's catch, as any failed run is.
 */
function urlSource(url: string, options: RunOptions): Omit<Source, 'dataset'> {
  if (options.auth && !options.secretId) {
    throw new ConfigError('--auth needs --secret-id: the id of the secret holding the credential.');
  }
  return {
    url,
    ...(options.sha256 !== undefined && { sha256: options.sha256 }),
    ...(options.auth && { credentials: { kind: options.auth, name: options.authName } }),
  };
}

async function resolveSource(file: string) {
  const path = resolve(file);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile())
    throw new ConfigError(`${file}: no such file. Give the path of a .json, .ndjson or .csv file.`);
  return { store: new FileObjectStore(dirname(path)), key: basename(path), path, size: info.size };
}

/** `--sha256` of a local file: checked before anything is ingested (a download checks it as it lands). */
async function verifySha256(path: string, expected: string): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const actual = hash.digest('hex');
  if (actual !== expected.toLowerCase())
    throw new ChecksumMismatchError(path, expected.toLowerCase(), actual);
}

/**
 * `sluice run`: a file (or URL) through the local workflow (download → parse → bronze → silver →
 * reconciliation). Resolves to whether everything succeeded: `false` when the run completed with a part
 * of it failed (a table of contents' listed files), after printing the summary that says so first.
 */
export async function runIngest(file: string, options: RunOptions): Promise<boolean> {
  const dataset = await resolveDataset(options);
  if (options.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(options.sha256)) {
    throw new ConfigError(`--sha256 ${options.sha256}: expected the file's sha256 as 64 hex digits.`);
  }
  const isUrl = /^https?:\/\//i.test(file);
  const url = isUrl ? urlSource(file, options) : undefined;
  const local = isUrl ? undefined : await resolveSource(file);
  const lake = openLakeStore(options.lake);

  if (options.dryRun) {
    if (local) await printDryRun(dataset, local, lake, options);
    else printUrlDryRun(dataset, file, options);
    return true;
  }
  if (local && options.sha256 !== undefined) await verifySha256(local.path, options.sha256);
  if (local && options.spaceCheck) await checkSpaceFor(local.path, options);

  // One run per source at a time in this lake: taken before the download, held (renewed) to the end.
  const workflowInput = {
    dataset,
    ...(url ? { source: url } : { sourceKey: local!.key }),
    // Only `--no-fan-out` is part of the execution input (and of a dead letter's).
    fanOut: options.fanOut ? undefined : false,
  } as const;
  const sourceStore = local ? local.store : new FileObjectStore(resolve(options.landing));
  const lease = {
    ...(await localSourceRef(workflowInput, sourceStore, lake)),
    holder: `local:${hostname()}:${process.pid}:${randomUUID()}`,
  };
  const leaseDeps = { lake, clock: systemClock, localProcess: thisLeaseProcess() };
  await takeLease(lease, leaseDeps, options).catch((error: unknown) => {
    if (options.json) writeJsonFailure(dataset.name, local?.path ?? shownUrl(file), error);
    throw error;
  });
  const keeper = keepSourceLease(lease, leaseDeps, (error) => {
    process.stderr.write(`warning: ${error.message}\n`);
  });
  let failed = false;
  try {
    return await runSource(
      workflowInput,
      sourceStore,
      lake,
      lease.holder,
      local?.path ?? shownUrl(file),
      options,
    );
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    keeper.stop();
    await releaseSourceLease(lease, leaseDeps).catch((error: Error) => {
      // The run's own error says what went wrong (a full disk fails the release too): keep it.
      if (!failed) throw error;
      process.stderr.write(`warning: the source's lease was not released: ${inCliTerms(error.message)}\n`);
    });
  }
}

/** The pre-flight disk check of a local file's run: the lake and scratch space (TMPDIR). */
async function checkSpaceFor(path: string, options: RunOptions): Promise<void> {
  const input = await estimateInputSize(path);
  await checkFreeSpace(
    [
      { role: 'lake', folder: resolve(options.lake), bytes: input.bytes * LAKE_BYTES_PER_INPUT_BYTE },
      { role: 'scratch', folder: tmpdir(), bytes: input.bytes * SCRATCH_BYTES_PER_INPUT_BYTE },
    ],
    input,
  );
}

/**
 * The source's lease, or an error saying who holds it; with `--wait`, waits until it is free (checking
 * every few seconds, up to a minute apart, and saying so).
 */
export async function takeLease(
  lease: LeaseRef,
  deps: LeaseDeps,
  options: Pick<RunOptions, 'wait' | 'quiet' | 'json'>,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await holdSourceLease(lease, deps);
      return;
    } catch (error) {
      if (!(error instanceof SourceBusyError) || !options.wait) throw error;
      const waitMs = Math.min(60_000, 2_000 * 1.5 ** attempt);
      if (!options.quiet && !options.json) {
        process.stderr.write(
          `waiting: ${error.lease.holder} has held ${error.lease.location} since ${error.lease.acquiredAt}; ` +
            `checking again in ${Math.round(waitMs / 1000)} s\n`,
        );
      }
      await delay(waitMs);
    }
  }
}

/** The run itself, holding the source's lease: the workflow, then the summary. */
async function runSource(
  workflowInput: LocalWorkflowInput,
  sourceStore: FileObjectStore,
  lake: ObjectStore,
  leaseHolder: string,
  shownSource: string,
  options: RunOptions,
): Promise<boolean> {
  const { dataset } = workflowInput;
  const talk = !options.quiet && !options.json;
  const progress = createProgressReporter(process.stderr, talk);
  const started = Date.now();
  const stages = new StageTimes(started);
  let result: LocalPipelineResult;
  try {
    result = await runWorkflowLocally(workflowInput, {
      // What a URL source and a table of contents' listed files are fetched with.
      downloadFetchOptions: {
        allowInsecureHttp: options.allowHttp,
        allowLoopback: options.allowLoopback,
        allowPrivate: options.allowPrivate,
      },
      lambdaLimits: options.lambdaLimits,
      ...(options.sliceMb !== undefined && { ingestSliceMaxBytes: Math.round(options.sliceMb * MiB) }),
      ...(options.silverGroupMb !== undefined && {
        silverGroupTargetBytes: Math.round(options.silverGroupMb * MiB),
      }),
      ...(options.silverBucketMb !== undefined && {
        silverBucketTargetBytes: Math.round(options.silverBucketMb * MiB),
      }),
      // Every download's credential (a URL source's, a listed file's) comes from `--secrets-file` if given.
      downloadSecrets: {
        store: options.secretsFile
          ? new FileSecretStore(options.secretsFile)
          : new EnvSecretStore(process.env),
        ...(options.secretId && { secretId: () => options.secretId! }),
      },
      onDownloadRetry: (event) => {
        if (talk)
          process.stderr.write(
            `download: attempt ${event.attempt} failed (${event.error}); retrying in ${Math.round(event.delayMs)} ms\n`,
          );
      },
      // The workflow's own retries (after a stage's): a failed download waits minutes between them.
      onEvent: talk ? announceRetries() : undefined,
      onDownloaded: (landed, uri) => {
        if (!talk) return;
        if (landed.notModified) {
          process.stderr.write(`not modified since the last download (HTTP 304): ${uri} is current\n`);
          return;
        }
        const resumed = landed.resumed ? ', resumed after a broken connection' : '';
        process.stderr.write(
          `downloaded ${formatBytes(landed.bytes)} to ${uri} in ${landed.attempts} attempt(s)${resumed}\n`,
        );
      },
      source: sourceStore,
      lake,
      leaseHolder,
      quarantineRateThreshold: options.quarantineThreshold,
      deadLetters: new FolderDeadLetterStore(lake),
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
    });
  } catch (error) {
    progress.stop();
    if (options.json) writeJsonFailure(dataset.name, shownSource, error);
    throw error;
  }
  progress.stop();
  const timings = stages.end(Date.now());
  if (options.json) process.stdout.write(`${stringifyLossless(jsonSummary(result, lake, timings))}\n`);
  else process.stdout.write(textSummary(result, lake, options.lake, timings));
  const { problems } = runOutcome(result);
  if (problems.length > 0) {
    process.stderr.write(
      `error: ${problems.join('; ')} (the summary lists them; see also \`sluice dlq list\`)\n`,
    );
    return false;
  }
  return true;
}

/** A URL as messages show it: without credentials or secret query values. */
function shownUrl(url: string): string {
  try {
    return redactUrl(new URL(url));
  } catch {
    return '<invalid URL>';
  }
}

/** Says on stderr when the workflow retries a failed state, with the error it failed with. */
function announceRetries(): (event: WorkflowEvent) => void {
  let failed = '';
  return (event) => {
    if (event.type === 'StateFailed') {
      const cause = String(event.Cause ?? '');
      failed = inCliTerms(cause.startsWith(`${event.Error}: `) ? cause : `${event.Error}: ${cause}`);
    }
    if (event.type === 'StateRetried' && event.state && event.retry) {
      const max = (event.retry.retrier as { MaxAttempts?: number }).MaxAttempts;
      process.stderr.write(
        `${event.state.name} failed (${failed.split('\n')[0]!.slice(0, 300)}); the workflow retries it ` +
          `(retry ${event.retry.attempt}${max ? ` of ${max}` : ''}), as deployed\n`,
      );
    }
  };
}

/** `--dry-run` of a URL: nothing is downloaded, so only the plan. */
function printUrlDryRun(dataset: DatasetConfig, url: string, options: RunOptions): void {
  const plan = {
    dryRun: true,
    dataset: dataset.name,
    download: { url: shownUrl(url), into: resolve(options.landing) },
    read: { format: dataset.format },
    records: recordTargets(dataset),
    headers: dataset.headers.map((h) => h.path),
    write: { bronze: resolve(options.lake, 'bronze', dataset.name) },
  };
  if (options.json) process.stdout.write(`${JSON.stringify(plan)}\n`);
  else
    process.stdout.write(
      [
        `dry run: nothing is downloaded or written`,
        `  would download  ${plan.download.url} into ${plan.download.into}`,
        `  records at      ${plan.records.map((r) => r.path).join(', ')}`,
        `  headers         ${plan.headers.join(', ') || '(none)'}`,
        `  would write     ${plan.write.bronze}/source=<source id>/…`,
        '',
      ].join('\n'),
    );
}

async function printDryRun(
  dataset: DatasetConfig,
  source: Awaited<ReturnType<typeof resolveSource>>,
  lake: ObjectStore,
  options: RunOptions,
): Promise<void> {
  // The source id needs the object's etag, which the adapter derives; head() is a read, not a write.
  const info = await source.store.head(source.key);
  {
    const id = bronzeRunId(
      {
        location: source.store.uri(source.key),
        size: info?.size ?? 0,
        etag: info?.etag ?? '',
        ...(info?.changeTag !== undefined && { changeTag: info.changeTag }),
      },
      datasetConfigSha256(dataset),
    );
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
