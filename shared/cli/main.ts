import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  datasetConfigJsonSchema,
  loadDatasetConfigFile,
  recordTargets,
} from '../contracts/dataset-config.ts';
import { builtInDatasets } from '../contracts/datasets/index.ts';
import { ConfigError, PipelineError } from '../errors.ts';
import { dlqCommand } from './dlq-command.ts';
import { runQuery } from './query-command.ts';
import { runIngest } from './run-command.ts';

/** Exit codes: 0 success, 1 the pipeline failed (bad input, I/O), 2 bad usage or config. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const EXAMPLES = `
Examples:
  $ sluice run samples/tic-in-network-sample.json.gz --dataset tic-in-network
  $ sluice run events.ndjson --config my-dataset.json --lake /data/lake --json
  $ SLUICE_SECRET_PAYER=… sluice run https://payer.example/mrf/in-network.json.gz -d tic-in-network --auth bearer --secret-id payer
  $ sluice validate --config my-dataset.json
  $ sluice schema > dataset-config.schema.json
`;

function buildProgram(): Command {
  const program = new Command('sluice')
    .description(
      'Ingest huge JSON, NDJSON and CSV files into a medallion lake: a streaming parse into ' +
        'immutable, checksummed bronze parts, typed and validated silver Parquet tables, and a ' +
        'reconciliation that proves every record is accounted for.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', EXAMPLES)
    .exitOverride();

  program
    .command('run')
    .description(
      'Run a file (or URL) through the pipeline into the local lake: parse → bronze → silver → ' +
        'reconciliation (the stages and state machine the AWS deployment runs).\n' +
        'Progress goes to stderr; a summary (or, with --json, one JSON object) to stdout.',
    )
    .argument(
      '<file>',
      'the source file: .json, .ndjson or .csv, optionally gzip-compressed (detected from content)',
    )
    .addOption(
      new Option('-d, --dataset <name>', 'a built-in dataset')
        .choices(Object.keys(builtInDatasets))
        .conflicts('config'),
    )
    .option('-c, --config <file>', 'a dataset config file describing your own dataset (see `sluice schema`)')
    .option('-l, --lake <dir>', 'the lake directory', './lake')
    .option('--json', 'print one JSON object with the run id, status, counts and output locations', false)
    .option('--dry-run', 'show what would be read and written, and write nothing', false)
    .option('-q, --quiet', 'no progress output', false)
    .option(
      '--slice-seconds <n>',
      'parse in slices of about n seconds, checkpointing between them, as on AWS Lambda (a killed run, ' +
        'rerun, resumes from its last checkpoint; any interrupted sliced run does, with or without this)',
      parsePositiveNumber,
    )
    .option(
      '--no-fan-out',
      'tables of contents: ingest the table itself only, not the in-network files it lists',
    )
    .option('--landing <dir>', 'where downloads land (URL sources)', './landing')
    .option('--sha256 <hex>', 'URL sources: the expected sha256 of the file; a mismatch fails the run')
    .addOption(
      new Option('--auth <kind>', 'URL sources: how to send the credential').choices([
        'bearer',
        'basic',
        'header',
        'query',
      ]),
    )
    .option(
      '--secret-id <id>',
      'URL sources: the secret holding the credential (env SLUICE_SECRET_<ID>, or --secrets-file)',
    )
    .option('--auth-name <name>', 'URL sources: the header or query parameter name (--auth header|query)')
    .option(
      '--secrets-file <file>',
      'URL sources: a JSON file of secret id → value, instead of the environment',
    )
    .option('--allow-http', 'URL sources: allow plain http (credentials travel in clear)', false)
    .option('--allow-loopback', 'URL sources: allow 127.0.0.1/::1 (local test servers)', false)
    .option(
      '--allow-private',
      'URL sources: allow private network addresses (10/8, 172.16/12, 192.168/16)',
      false,
    )
    .addHelpText(
      'after',
      `
Output layout (under --lake):
  bronze/<dataset>/source=<source-id>/<record-name>/part-00000.ndjson.gz   records, one per line, with lineage
  bronze/<dataset>/source=<source-id>/_manifest.json                       the bronze commit marker, written last
  bronze/<dataset>/source=<source-id>/reconciliation.json                  the proof: every record accounted for
  silver/<dataset>/<table>/source=<source-id>/part-00000.parquet           typed tables (query: sluice query)
  silver/<dataset>/_quarantine/source=<source-id>/part-00000.parquet       records set aside, with the rule broken

Rerunning the same file rewrites the same keys: no duplicates. A run killed with --slice-seconds
resumes from its last checkpoint when rerun.
${EXAMPLES}`,
    )
    .action(async (file: string, options: RunOptions) => {
      await runIngest(file, options);
    });

  program
    .command('query')
    .description(
      'Query the local lake with SQL (DuckDB). Every silver table is a view: by its name when that is\n' +
        'unique (in_network_items, negotiated_prices, …), and always as <dataset>__<table>.',
    )
    .argument('[sql]', 'the SQL to run; omit it to list the views')
    .option('-l, --lake <dir>', 'the lake directory', './lake')
    .option('--json', 'print rows as JSON objects, one per line', false)
    .addHelpText(
      'after',
      `
Examples:
  $ sluice query "SELECT billing_code, count(*) FROM negotiated_prices GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
  $ sluice query "SELECT rule_id, count(*) FROM tic_in_network___quarantine GROUP BY 1"
`,
    )
    .action(async (sql: string | undefined, options: { lake: string; json: boolean }) => {
      await runQuery(sql, options);
    });

  program
    .command('validate')
    .description('Check a dataset config file and explain each problem.')
    .requiredOption('-c, --config <file>', 'the dataset config file')
    .action(async (options: { config: string }) => {
      const config = await loadDatasetConfigFile(options.config);
      const records = recordTargets(config)
        .map((t) => `${t.name} (${t.path})`)
        .join(', ');
      process.stdout.write(
        `${options.config}: valid ${config.format} dataset "${config.name}"; records: ${records}\n`,
      );
    });

  program
    .command('schema')
    .description("Print the dataset config's JSON Schema, for editors and CI.")
    .action(() => {
      process.stdout.write(`${JSON.stringify(datasetConfigJsonSchema(), null, 2)}\n`);
    });

  program
    .command('datasets')
    .description('List the built-in datasets and where their records are.')
    .action(() => {
      for (const config of Object.values(builtInDatasets)) {
        const records = recordTargets(config)
          .map((t) => (t.required ? t.path : `${t.path} (optional)`))
          .join(', ');
        process.stdout.write(`${config.name}\n  ${config.description ?? ''}\n  records: ${records}\n`);
      }
    });
  program.addCommand(dlqCommand());
  return program;
}

export interface RunOptions {
  readonly landing: string;
  readonly sha256?: string;
  readonly auth?: 'bearer' | 'basic' | 'header' | 'query';
  readonly secretId?: string;
  readonly authName?: string;
  readonly secretsFile?: string;
  readonly allowHttp: boolean;
  readonly allowLoopback: boolean;
  readonly allowPrivate: boolean;
  readonly dataset?: string;
  readonly config?: string;
  readonly lake: string;
  readonly json: boolean;
  readonly dryRun: boolean;
  readonly quiet: boolean;
  readonly sliceSeconds?: number;
  /** false with --no-fan-out. */
  readonly fanOut: boolean;
}

function parsePositiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(
      `"${value}" is not a number of seconds (e.g. 60, or 0 for one segment per slice)`,
    );
  }
  return n;
}

/** Run the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (or the help, whose exit code is 0).
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`error: ${error.message}\n`);
      return EXIT_USAGE;
    }
    const name = error instanceof PipelineError ? error.name : 'Error';
    process.stderr.write(`error: ${name}: ${(error as Error).message}\n`);
    return EXIT_FAILED;
  }
}
