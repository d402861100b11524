import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_QUARANTINE_RATE_THRESHOLD } from '../config/runtime-config.ts';
import {
  datasetConfigJsonSchema,
  loadDatasetConfigFile,
  recordTargets,
} from '../contracts/dataset-config.ts';
import { builtInDatasets } from '../contracts/datasets/index.ts';
import { ConfigError } from '../errors.ts';
import { SourceBusyError } from '../lake/source-lease.ts';
import { type LambdaLimits, parseLambdaLimits } from '../pipeline/lambda-limits-option.ts';
import { dlqCommand } from './dlq-command.ts';
import { errorName } from './error-name.ts';
import { inspectCommand } from './inspect-command.ts';
import { inCliTerms } from './option-flags.ts';
import type { RebuildOptions } from './rebuild-command.ts';
import { reportCommand } from './report-command.ts';
import { runsCommand } from './runs-command.ts';

/**
 * Exit codes: 0 the run succeeded and nothing in it failed (every record of every file accounted for),
 * 1 the run failed or a part of it did (bad input, I/O, a failed listed file, too much quarantined),
 * 2 bad usage or config.
 */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
/** Another run holds the source (its lease): nothing ran; run again later, or with `--wait`. */
export const EXIT_BUSY = 3;
/** The errors of another run holding the source (`SourceBusyError` and its subclass). */
const BUSY_ERRORS = ['SourceBusyError', 'DuplicateRunError'];

const EXAMPLES = `
Examples:
  $ sluice run samples/tic-in-network-sample.json.gz --dataset tic-in-network
  $ sluice run events.ndjson --config my-dataset.json --lake /data/lake --json
  $ SLUICE_SECRET_PAYER=… sluice run https://payer.example/mrf/in-network.json.gz -d tic-in-network --auth bearer --secret-id payer
  $ sluice validate --config my-dataset.json
  $ sluice schema > dataset-config.schema.json
`;

/** `outcome.failed`: a run completed with a part of it failed (it printed its summary, and exits 1). */
function buildProgram(outcome: { failed: boolean }): Command {
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
    .option(
      '-l, --lake <dir|s3://bucket/prefix>',
      'the lake: a directory, or an S3 bucket and prefix (endpoint: AWS_ENDPOINT_URL_S3)',
      './lake',
    )
    .option('--json', 'print one JSON object with the run id, status, counts and output locations', false)
    .option('--dry-run', 'show what would be read and written, and write nothing', false)
    .option(
      '--wait',
      'if another run of the same source is in progress in this lake, wait for it to finish instead of ' +
        'failing at once (the source is then usually unchanged, and this run ends in seconds)',
      false,
    )
    .option('-q, --quiet', 'no progress output', false)
    .option(
      '--no-space-check',
      'skip the pre-flight check of free disk space in the lake and TMPDIR (estimated from the input size)',
    )
    .option(
      '--slice-seconds <n>',
      'parse (and download a URL) in slices of about n seconds, checkpointing between them, as on AWS ' +
        'Lambda (a killed run, rerun, resumes from its last checkpoint; any interrupted sliced run does, ' +
        'with or without this)',
      parsePositiveNumber,
    )
    .option(
      '--slice-mb <n>',
      'parse in slices of at most about n MB of uncompressed input each (ending at the first segment ' +
        "boundary past it), checkpointing between them: slices that do not depend on the machine's speed " +
        "(the deployment config's ingest.sliceMaxMb; with --slice-seconds or --lambda-limits, whichever " +
        'ends a slice first)',
      (value: string) => parsePositiveSize(value, '--slice-mb'),
    )
    .option(
      '--silver-group-mb <n>',
      "MB of uncompressed bronze per silver group, as the deployment config's silver.groupTargetMb " +
        '(default locally: one group per core, however large)',
      (value: string) => parsePositiveSize(value, '--silver-group-mb'),
    )
    .option(
      '--silver-bucket-mb <n>',
      "MB of uncompressed bronze per silver merge bucket, as the deployment config's silver.bucketTargetMb " +
        '(default 8192)',
      (value: string) => parsePositiveSize(value, '--silver-bucket-mb'),
    )
    .option(
      '--lambda-limits <limits>',
      'run every task as Lambda would under these limits, each invocation in a process of its own: ' +
        'timeout=SECONDS,tmp=MB[,memory=MB] (its remaining time, its scratch folder, killed at its timeout)',
      parseLimits,
    )
    .option(
      '--quarantine-threshold <share>',
      'fail the run when more than this share of its records (0–1) is quarantined; a run whose every ' +
        'record is quarantined always fails (the AWS deployment: quarantineRateThreshold)',
      parseShare,
      DEFAULT_QUARANTINE_RATE_THRESHOLD,
    )
    .option(
      '--no-fan-out',
      'tables of contents: ingest the table itself only, not the in-network files it lists',
    )
    .option('--landing <dir>', 'where downloads land (URL sources)', './landing')
    .option(
      '--sha256 <hex>',
      'the expected sha256 of the file (local, or as downloaded); a mismatch fails the run before ingest',
    )
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
Sources, versions, leases:
  A source is a file's path (or its URL without credentials); its version is its content (sha256).
  Running a source whose current version has the same bytes ends as "unchanged": nothing is rebuilt or
  duplicated, however often you rerun or touch it. A new version replaces the old one in every view of
  \`sluice query\` at once, and only after its reconciliation passed; \`<table>_history\` keeps them all.
  One run per source at a time: another run of it exits 3 and says who holds it, or waits with --wait.
  A killed or failed run, rerun, continues where it stopped (committed bronze and silver groups reused).

Output layout (under --lake):
  bronze/<dataset>/source=<source>/run=<run>/…/part-NNNNN.ndjson.gz   records, one per line, with lineage
  bronze/<dataset>/source=<source>/run=<run>/_manifest.json           the bronze commit marker
  bronze/<dataset>/source=<source>/run=<run>/reconciliation.json      the proof: every record accounted for
  bronze/<dataset>/source=<source>/run=<run>/report.html              the run report (sluice report --open)
  silver/<dataset>/<table>/source=<source>/version=<v>/build=<b>/…   typed tables (query: sluice query)
  _sources/<dataset>/source=<source>/current.json                     the version readers see (the commit)

Exit codes: 0 reconciled, committed or unchanged; 1 failed; 2 bad usage or config, or too little disk
space (nothing ran); 3 source busy.
${EXAMPLES}`,
    )
    .action(async (file: string, options: RunOptions) => {
      // Commands load their modules when they run: `--help` and the others start without them.
      const { runIngest } = await import('./run-command.ts');
      if (!(await runIngest(file, options))) outcome.failed = true;
    });

  program
    .command('rebuild')
    .description(
      'Build silver and reconciliation again for committed sources of a dataset, from the bronze they ' +
        'committed, without reading the sources: after a change of the dataset config or of its silver ' +
        "contract, or to backfill a new table. Each source's new build is written beside its current one and " +
        'becomes current only once its reconciliation passed, as a run does.\n' +
        'Progress goes to stderr; a summary per source (or, with --json, one JSON object per line) to stdout.',
    )
    .addOption(
      new Option('-d, --dataset <name>', 'a built-in dataset')
        .choices(Object.keys(builtInDatasets))
        .conflicts('config'),
    )
    .option('-c, --config <file>', 'the dataset config file (its new version, for a changed config)')
    .option(
      '-s, --source <id|path|url>',
      'rebuild this committed source only: its id (as `sluice runs` shows it), or the path or URL it was ' +
        'read from (default: every committed source of the dataset)',
    )
    .option(
      '-l, --lake <dir|s3://bucket/prefix>',
      'the lake: a directory, or an S3 bucket and prefix (endpoint: AWS_ENDPOINT_URL_S3)',
      './lake',
    )
    .option('--json', 'print one JSON object per source: status, builds, counts, quality, outputs', false)
    .option(
      '--force',
      'rebuild a source whose current build is already the one this config and contract make (its files ' +
        'are kept, not rewritten; its reconciliation and report are done again)',
      false,
    )
    .option('--wait', 'if another run holds a source, wait for it instead of failing at once', false)
    .option('-q, --quiet', 'no progress output', false)
    .option(
      '--quarantine-threshold <share>',
      'fail a source when more than this share of its records (0–1) is quarantined',
      parseShare,
      DEFAULT_QUARANTINE_RATE_THRESHOLD,
    )
    .addHelpText(
      'after',
      `
What it does, per source (the workflow of \`sluice run\` from its PlanRebuild state: no Download, no Ingest):
  1. takes the source's lease (exit 3 if another run holds it, or --wait);
  2. reads the source's current version and the bronze manifest it committed;
  3. computes the build id: a hash of the config bronze was parsed under and of the silver contract's
     fingerprint (its contractVersion, tables, columns, types, keys and rules). If the current version has
     that build already, the source is "unchanged" (unless --force);
  4. builds silver from bronze into silver/<dataset>/<table>/source=<s>/version=<v>/build=<new>/, beside
     the current build's files, which stay as they are;
  5. reconciles, writes its reconciliation.json and report.html under bronze/…/run=<run>/rebuild=<new>/
     (sluice runs lists the attempt; sluice report <run> --build <new> shows it), and commits: one
     conditional write of the source's current.json makes the new build what \`sluice query\` reads, and
     the run's own reconciliation.json and report.html then describe it. A failed reconciliation leaves
     the current build current, and the run's evidence as it was. The commit is refused
     (SourceChangedError, exit 1) if another version or build became current since step 2.

A config whose record paths differ from those bronze was parsed into cannot be rebuilt from it: run
the file again instead (sluice run FILE). Built-in contracts declare a contractVersion; it is bumped
whenever their normalization changes, so a rebuild after an upgrade builds anew.

Exit codes: 0 reconciled or unchanged; 1 a rebuild failed; 2 bad usage or config (an unknown --source:
the message lists the committed ones); 3 a source is busy.

Examples:
  $ sluice rebuild --dataset tic-in-network
  $ sluice rebuild --config my-dataset.json --source events.ndjson-3f2a9c1b7e04
  $ sluice rebuild --dataset tic-in-network --source samples/tic-in-network-sample.json.gz --json
`,
    )
    .action(async (options: RebuildOptions) => {
      const { runRebuild } = await import('./rebuild-command.ts');
      if (!(await runRebuild(options))) outcome.failed = true;
    });

  program
    .command('query')
    .description(
      "Query the lake with SQL (DuckDB): each silver table is a view of every source's current, reconciled version.",
    )
    .argument('[sql]', 'the SQL to run; omit it to list the views')
    .option(
      '-l, --lake <dir|s3://bucket/prefix>',
      "the lake: a folder, or S3 (endpoint from AWS_ENDPOINT_URL_S3 when set); an S3 lake's tables that the SQL names are fetched to a temporary folder first",
      './lake',
    )
    .option(
      '--json',
      'print rows as JSON objects, one per line (a column name that repeats, as in a join, gets _1, _2, …)',
      false,
    )
    .addHelpText(
      'after',
      `
Views:
  <table>, <dataset>__<table>   every source's current version (by table name when no other dataset has it)
  <table>_history               every version ever committed, with _source_id, _version, _committed_at and
                                _is_current
  <dataset>__<table>_current    snapshot, cdc and scd2 loads: the merged state
A run still writing, failed or killed is never shown: views are built from the commit records.
On S3 the files are fetched (for big tables, query with Athena or DuckDB's httpfs instead).

Examples:
  $ sluice query "SELECT billing_code, count(*) FROM negotiated_prices GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
  $ sluice query "SELECT rule_id, count(*) FROM tic_in_network___quarantine GROUP BY 1"
  $ sluice query "SELECT _source_id, _version, _is_current, count(*) FROM files_history GROUP BY ALL"
`,
    )
    .action(async (sql: string | undefined, options: { lake: string; json: boolean }) => {
      const { runQuery } = await import('./query-command.ts');
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
  // Added commands take the program's settings (exit codes, help after an error) as `.command()`'s do,
  // their own subcommands too (`dlq list` once exited 1 on a bad option, not 2).
  for (const command of [dlqCommand(), inspectCommand(), runsCommand(), reportCommand()])
    program.addCommand(inheritSettings(command, program));
  return program;
}

function inheritSettings(command: Command, parent: Command): Command {
  command.copyInheritedSettings(parent);
  for (const sub of command.commands) inheritSettings(sub, command);
  return command;
}

export interface RunOptions {
  readonly landing: string;
  readonly sha256?: string;
  readonly auth?: 'bearer' | 'basic' | 'header' | 'query';
  readonly secretId?: string;
  readonly authName?: string;
  readonly secretsFile?: string;
  readonly lambdaLimits?: LambdaLimits;
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
  /** MB of uncompressed input per ingest slice at most (`--slice-mb`). */
  readonly sliceMb?: number;
  /** MB of uncompressed bronze per silver group (`--silver-group-mb`). */
  readonly silverGroupMb?: number;
  /** MB of uncompressed bronze per silver merge bucket (`--silver-bucket-mb`). */
  readonly silverBucketMb?: number;
  /** Wait while another run holds the source, instead of failing at once. */
  readonly wait: boolean;
  /** false with --no-fan-out. */
  readonly fanOut: boolean;
  /** false with --no-space-check: no pre-flight check of free disk space. */
  readonly spaceCheck: boolean;
  /** The share of a run's records that may be quarantined. */
  readonly quarantineThreshold: number;
}

function parseLimits(value: string): LambdaLimits {
  try {
    return parseLambdaLimits(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** A decimal number as written (`0.05`, `1e3`), else NaN: `Number` also reads `0x1`, `0b1` and `''` as numbers. */
function decimalNumber(value: string): number {
  return /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value) ? Number(value) : Number.NaN;
}

function parseShare(value: string): number {
  const n = decimalNumber(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidArgumentError(`"${value}" is not a share from 0 to 1 (e.g. 0.05 for 5%)`);
  }
  return n;
}

/** A positive number of MB; fractions too (`0.25`: 256 KiB), for files scaled down in drills. */
function parsePositiveSize(value: string, flag: string): number {
  const n = decimalNumber(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`${flag} "${value}" is not a positive number of MB (e.g. 1024, or 0.25)`);
  }
  return n;
}

function parsePositiveNumber(value: string): number {
  const n = decimalNumber(value);
  if (!Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError(
      `"${value}" is not a number of seconds (e.g. 60, or 0 for one segment per slice)`,
    );
  }
  return n;
}

/** Run the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const outcome = { failed: false };
  const program = buildProgram(outcome);
  try {
    await program.parseAsync(argv as string[]);
    return outcome.failed ? EXIT_FAILED : 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (or the help, whose exit code is 0).
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    const code = exitCodeOf(error);
    // A usage or config error says what to fix; anything else also says what kind of failure it is.
    const what = code === EXIT_USAGE ? '' : `${errorName(error)}: `;
    process.stderr.write(`error: ${what}${inCliTerms((error as Error).message)}\n`);
    return code;
  }
}

/**
 * The exit code of a failed command: 2 for a config error, 3 while another run holds the source, else
 * 1. By name too: under --lambda-limits a stage's error comes back from its own process as a name.
 */
export function exitCodeOf(error: unknown): number {
  const name = errorName(error);
  if (error instanceof ConfigError || name === 'ConfigError') return EXIT_USAGE;
  if (error instanceof SourceBusyError || BUSY_ERRORS.includes(name)) return EXIT_BUSY;
  return EXIT_FAILED;
}
