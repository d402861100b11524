import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { FileObjectStore } from '../adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../adapters/local/folder-dead-letter-store.ts';
import { type DatasetConfig, loadDatasetConfigFile } from '../contracts/dataset-config.ts';
import { builtInDataset } from '../contracts/datasets/index.ts';
import { ConfigError } from '../errors.ts';
import type { LocalPipelineResult } from '../pipeline/pipeline-types.ts';
import { systemClock } from '../ports/clock.ts';
import type { DeadLetter, DeadLetterStore } from '../ports/dead-letter-store.ts';
import type { FetchOptions } from '../stages/download/index.ts';
import { ExecutionInput, MAX_EXECUTION_NAME_LENGTH, RebuildInput } from '../workflow/execution.ts';
import { Source } from '../workflow/source.ts';

/**
 * `sluice dlq`: the executions that failed for good, and running them again.
 *
 *   list      the dead letters of the local lake (`--lake`) or of a deployment's failure queue (`--queue-url`)
 *   redrive   locally: run the workflow again with the recorded input, and remove the letter on success;
 *             from a queue: start a new execution of the deployed state machine with the recorded input
 *             (`--state-machine-arn`), and remove the message once it has started. Whether that execution
 *             succeeds is the state machine's to say: if it fails, its Catch records a new letter.
 */

/** Options of the `dlq` subcommands. */
export interface DlqOptions {
  readonly lake: string;
  readonly queueUrl?: string;
  readonly stateMachineArn?: string;
  readonly region?: string;
  readonly config?: string;
  readonly all?: boolean;
  readonly json?: boolean;
  readonly landing?: string;
  readonly allowHttp?: boolean;
  readonly allowLoopback?: boolean;
}

/** The `dlq` command with its `list` and `redrive` subcommands, for the CLI program. */
export function dlqCommand(): Command {
  const dlq = new Command('dlq').description(
    'Failed executions (dead letters): list them, or run them again once the cause is fixed.\n' +
      'Locally they are <lake>/_dead_letters/<execution>.json; deployed, the failure queue (stack output FailureQueueUrl).',
  );
  const where = (command: Command) =>
    command
      .option('-l, --lake <dir>', 'the local lake directory', './lake')
      .addOption(
        new Option('--queue-url <url>', "a deployment's failure queue instead of the local lake").conflicts(
          'lake',
        ),
      )
      .option('--region <region>', 'AWS region of the queue (default: the SDK’s, e.g. AWS_REGION)')
      .option('--json', 'print JSON, one object per line', false);

  where(
    dlq.command('list').description('List the dead letters: execution, dataset, source and error.'),
  ).action(async (options: DlqOptions) => {
    await listCommand(options);
  });

  where(
    dlq
      .command('redrive')
      .description('Run failed executions again with their recorded input.')
      .argument('[id]', 'the dead letter to redrive (see `sluice dlq list`)')
      .option('--all', 'redrive every dead letter', false)
      .option(
        '--state-machine-arn <arn>',
        'with --queue-url: the state machine to start (stack output StateMachineArn)',
      )
      .option('-c, --config <file>', 'the dataset config, for a dataset that is not built in')
      .option('--landing <dir>', 'where a download (a failed URL source) lands again', './landing')
      .option('--allow-http', 'URL sources: allow plain http', false)
      .option('--allow-loopback', 'URL sources: allow 127.0.0.1/::1 (local test servers)', false),
  ).action(async (id: string | undefined, options: DlqOptions) => {
    await redriveCommand(id, options);
  });
  return dlq;
}

// The AWS SDK and the local runner load when a subcommand needs them, not with the CLI: `sluice --help`
// and every other command start without them (see docs/BENCHMARKS.md, "Start-up").

/** The store the options name: the failure queue, or the local lake's folder. */
export async function deadLetterStoreFor(options: DlqOptions): Promise<DeadLetterStore> {
  if (options.queueUrl) {
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    const { SqsDeadLetterStore } = await import('../adapters/aws/sqs-dead-letter-store.ts');
    const client = new SQSClient(options.region ? { region: options.region } : {});
    return new SqsDeadLetterStore({ client, queueUrl: options.queueUrl });
  }
  const { openLakeStore } = await import('../adapters/lake-store.ts');
  return new FolderDeadLetterStore(openLakeStore(options.lake));
}

async function listCommand(options: DlqOptions): Promise<void> {
  const store = await deadLetterStoreFor(options);
  const letters = await store.list();
  if (options.json) {
    for (const letter of letters) process.stdout.write(`${JSON.stringify(letter)}\n`);
    return;
  }
  if (letters.length === 0) {
    process.stdout.write(`no dead letters in ${store.location}\n`);
    return;
  }
  process.stdout.write(`${letters.length} dead letter(s) in ${store.location}\n`);
  for (const letter of letters) {
    const input = RecordedInput.safeParse(letter.input);
    const what = !input.success
      ? JSON.stringify(letter.input)
      : 'rebuild' in input.data
        ? `${input.data.rebuild.dataset}: ${input.data.rebuild.source} (rebuild)`
        : 'source' in input.data
          ? `${input.data.source.dataset}: ${input.data.source.url} (download)`
          : `${input.data.dataset}: ${input.data.key}`;
    process.stdout.write(
      `\n  ${letter.id}\n    input   ${what}\n    error   ${letter.error.Error}: ${causeOf(letter)}\n` +
        (letter.recordedAt ? `    failed  ${letter.recordedAt}\n` : ''),
    );
  }
  process.stdout.write(`\nredrive with: sluice dlq redrive <id> (or --all)\n`);
}

async function redriveCommand(id: string | undefined, options: DlqOptions): Promise<void> {
  if (!id && !options.all) throw new ConfigError('say which dead letter to redrive: an <id>, or --all.');
  if (id && options.all) throw new ConfigError('give an <id> or --all, not both.');
  const sfn = options.queueUrl ? startExecutionsWith(options) : undefined;
  const store = await deadLetterStoreFor(options);
  let letters: DeadLetter[];
  if (id) {
    const letter = await store.get(id);
    if (!letter) throw new ConfigError(`no dead letter ${id} in ${store.location} (see \`sluice dlq list\`)`);
    letters = [letter];
  } else {
    letters = await store.list();
  }
  let failed = 0;
  // Failures that ran nothing (a config error, a busy source): told by their own exit code, not as
  // executions that failed again.
  const notRun: Error[] = [];
  for (const letter of letters) {
    if (sfn) {
      const started = await redriveToStateMachine(letter, store, sfn);
      report(options, { id: letter.id, status: 'started', executionArn: started.executionArn });
      continue;
    }
    try {
      const result = await redriveLocally(letter, store, {
        lake: options.lake,
        config: options.config,
        landing: options.landing,
        fetchOptions: { allowInsecureHttp: options.allowHttp, allowLoopback: options.allowLoopback },
      });
      report(options, {
        id: letter.id,
        status:
          result.outcome === 'unchanged' ? 'unchanged' : result.reconciliation ? 'reconciled' : 'committed',
        runId: result.outcome === 'unchanged' ? result.unchanged.runId : result.bronze.runId,
      });
    } catch (error) {
      failed++;
      const { EXIT_FAILED, exitCodeOf } = await import('./main.ts');
      if (exitCodeOf(error) !== EXIT_FAILED) notRun.push(error as Error);
      const name = error instanceof Error ? error.name : 'Error';
      report(options, {
        id: letter.id,
        status: 'failed',
        error: { name, message: (error as Error).message },
      });
    }
  }
  if (letters.length === 0) report(options, { status: 'nothing to redrive', location: store.location });
  // The only letter asked for, or every letter, not run: exit 2 (or 3) says so, with the reason.
  if (failed > 0 && notRun.length === failed && (letters.length === 1 || notRun.every(isConfigError))) {
    if (letters.length === 1) throw notRun[0];
    throw new ConfigError(
      `${failed} of ${letters.length} dead letter(s) were not redriven, nothing ran: ${notRun[0]!.message}`,
    );
  }
  if (failed > 0) {
    const { WorkflowFailedError } = await import('../pipeline/local-runner.ts');
    throw new WorkflowFailedError(
      `${failed} of ${letters.length} redriven execution(s) failed again` +
        `${notRun.length > 0 ? ` (${notRun.length} could not start: ${notRun[0]!.message})` : ''}; ` +
        `their failures are recorded in ${store.location}`,
    );
  }
}

const isConfigError = (error: Error) => error instanceof ConfigError || error.name === 'ConfigError';

/** Where a redrive may read the source and write the lake, locally. */
export interface LocalRedriveOptions {
  /** The lake directory the letter's execution wrote to. */
  readonly lake: string;
  /** The dataset config file, for a dataset that is not built in. */
  readonly config?: string;
  /** Where a URL source's download lands again. @default ./landing */
  readonly landing?: string;
  /** How URL sources may be fetched (tests: loopback). */
  readonly fetchOptions?: FetchOptions;
}

/**
 * Run a dead letter's execution again, locally, with its recorded input (the source as it is now, so a
 * fixed file is picked up), and remove the letter once the run succeeds. A failed run is recorded by the
 * workflow itself, under the execution's name, and the error is rethrown.
 */
export async function redriveLocally(
  letter: DeadLetter,
  store: DeadLetterStore,
  options: LocalRedriveOptions,
): Promise<LocalPipelineResult> {
  const input = recordedInput(letter);
  const datasetName =
    'rebuild' in input ? input.rebuild.dataset : 'source' in input ? input.source.dataset : input.dataset;
  const dataset: DatasetConfig = options.config
    ? await loadDatasetConfigFile(options.config)
    : builtInDataset(datasetName);
  if (dataset.name !== datasetName) {
    throw new ConfigError(
      `${letter.id} is of dataset "${datasetName}", --config describes "${dataset.name}"`,
    );
  }
  const { runWorkflowLocally } = await import('../pipeline/local-runner.ts');
  const { openLakeStore } = await import('../adapters/lake-store.ts');
  const deps = {
    lake: openLakeStore(options.lake),
    clock: systemClock,
    deadLetters: store,
    downloadFetchOptions: options.fetchOptions,
  };
  const result =
    'rebuild' in input
      ? // A rebuild: silver from the source's committed bronze again; nothing is read from a landing area.
        await runWorkflowLocally(
          { dataset, rebuild: { sourceId: input.rebuild.source, force: input.rebuild.force } },
          { ...deps, source: new FileObjectStore(resolve(options.landing ?? './landing')) },
        )
      : 'source' in input
        ? // A scheduled or listed download: fetched again into the landing folder, then the whole workflow.
          await runWorkflowLocally(
            { dataset, source: input.source, fanOut: input.fanOut },
            { ...deps, source: new FileObjectStore(resolve(options.landing ?? './landing')) },
          )
        : // Locally, an execution's "bucket" is the directory of its source file (see runWorkflowLocally).
          await runWorkflowLocally(
            { dataset, sourceKey: input.key, fanOut: input.fanOut },
            { ...deps, source: new FileObjectStore(input.bucket) },
          );
  // A run that completed with a failed part (a table of contents' listed files) failed again: its own
  // execution recorded the letter anew (under the same id), which stays.
  const { runOutcome } = await import('./run-summary.ts');
  const { status, problems } = runOutcome(result);
  if (status === 'failed') {
    const { WorkflowFailedError } = await import('../pipeline/local-runner.ts');
    throw new WorkflowFailedError(`the redriven execution failed again: ${problems.join('; ')}`);
  }
  await store.remove(letter.id);
  return result;
}

/** The one Step Functions call a queue redrive makes. */
export type StartExecution = (request: {
  stateMachineArn: string;
  name: string;
  input: string;
}) => Promise<{ executionArn?: string }>;

/**
 * Start a new execution of the deployed state machine with a dead letter's input, then remove the
 * letter: from here on the new execution owns the work (and records its own letter if it fails).
 */
export async function redriveToStateMachine(
  letter: DeadLetter,
  store: DeadLetterStore,
  sfn: { stateMachineArn: string; startExecution: StartExecution },
): Promise<{ executionArn: string; name: string }> {
  const input = recordedInput(letter);
  // A new name: Step Functions keeps the failed execution's name for 90 days and refuses to reuse it.
  const suffix = `-redrive-${Date.now().toString(36)}`;
  const name = `${letter.id.slice(0, MAX_EXECUTION_NAME_LENGTH - suffix.length)}${suffix}`;
  const out = await sfn.startExecution({
    stateMachineArn: sfn.stateMachineArn,
    name,
    input: JSON.stringify(input),
  });
  await store.remove(letter.id);
  return { executionArn: out.executionArn ?? name, name };
}

function startExecutionsWith(options: DlqOptions): {
  stateMachineArn: string;
  startExecution: StartExecution;
} {
  if (!options.stateMachineArn) {
    throw new ConfigError(
      'redriving from a queue starts a new execution of the deployed workflow: give --state-machine-arn ' +
        '(the stack output StateMachineArn).',
    );
  }
  const region = options.region;
  const client = import('@aws-sdk/client-sfn').then(({ SFNClient, StartExecutionCommand }) => ({
    sfn: new SFNClient(region ? { region } : {}),
    StartExecutionCommand,
  }));
  // The rejection (a broken install) is the first startExecution's to report, not an unhandled one.
  client.catch(() => {});
  return {
    stateMachineArn: options.stateMachineArn,
    startExecution: async (request) => {
      const { sfn, StartExecutionCommand } = await client;
      return sfn.send(new StartExecutionCommand(request));
    },
  };
}

/** A dead letter's execution input: a landed object, a source to download (`{ source }`), or a rebuild. */
const RecordedInput = z.union([
  ExecutionInput,
  z.object({ source: Source, fanOut: z.boolean().optional() }),
  RebuildInput,
]);

function recordedInput(letter: DeadLetter): z.infer<typeof RecordedInput> {
  const input = RecordedInput.safeParse(letter.input);
  if (!input.success) {
    throw new ConfigError(
      `${letter.id}: the recorded input is not a workflow input: ${JSON.stringify(letter.input)}`,
    );
  }
  return input.data;
}

/** The readable part of an error's cause: Lambda's `{ errorMessage }` JSON, or the text itself. */
function causeOf(letter: DeadLetter): string {
  const cause = letter.error.Cause ?? '';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: unknown };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // not JSON: the local runner's cause is the message itself
  }
  return cause;
}

function report(options: DlqOptions, line: Record<string, unknown>): void {
  if (options.json) {
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const detail = Object.entries(line)
    .filter(([key]) => key !== 'status' && key !== 'id')
    .map(([key, value]) =>
      typeof value === 'object' && value !== null
        ? Object.values(value).join(': ')
        : `${key} ${String(value)}`,
    )
    .join(', ');
  process.stdout.write(
    `${line.id ? `${String(line.id)}: ` : ''}${String(line.status)}${detail ? ` (${detail})` : ''}\n`,
  );
}
