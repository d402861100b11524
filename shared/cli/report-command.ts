import { spawn } from 'node:child_process';
import { Command } from 'commander';
import { isS3Lake, lakeLabel } from '../adapters/lake-location.ts';
import { ConfigError } from '../errors.ts';
import { bronzeManifestKey, rebuildReconciliationKey, reportKeyBeside } from '../lake/keys.ts';
import { readTextIfPresent } from '../lake/read-json.ts';
import { listRuns, type RunEntry } from '../lake/run-history.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import { writeRunReport } from '../report/write-run-report.ts';
import type { ReconciliationReport } from '../stages/reconcile/reconcile.ts';

/** `sluice report [run]`: where a run's report is (rendered now if the run has none yet), or open it. */
export function reportCommand(): Command {
  return new Command('report')
    .description(
      "Print the path of a run's report (report.html beside its reconciliation.json): counts per stage " +
        'and record path, the reconciliation checks, quality, quarantine by rule with examples, drift, stage ' +
        'times, silver table profiles and fan-out outcomes. One self-contained HTML file: no network needed.',
    )
    .argument('[run]', 'a run id, or the start of one (see `sluice runs`); default: the newest run')
    .option(
      '-l, --lake <dir|s3://bucket/prefix>',
      'the lake: a directory, or an S3 bucket and prefix',
      './lake',
    )
    .option('-d, --dataset <name>', 'the newest run of this dataset (without [run])')
    .option('-b, --build <build>', "a rebuild of the run: that build's own report (see `sluice runs`)")
    .option('--open', "open it in the system's browser (xdg-open, open or start)", false)
    .addHelpText(
      'after',
      `
Examples:
  $ sluice report                      # the newest run's report
  $ sluice report --open
  $ sluice report tic-in-network-sample.json.gz-21992ef37bea-a3f2bc07
  $ sluice report --dataset tic-in-network
  $ sluice report tic-in-network-sample.json.gz-21992ef37bea-a3f2bc07 --build 1a2b3c4d   # a rebuild's

A run's report describes the build of its version that is committed; a rebuild (sluice rebuild) that
failed or was not committed has its own report, by --build.
`,
    )
    .action(
      async (
        run: string | undefined,
        options: { lake: string; dataset?: string; build?: string; open: boolean },
      ) => {
        if (options.open && isS3Lake(options.lake)) {
          throw new ConfigError(
            `--open: a report in an S3 lake (${options.lake}) is no local file; without --open its s3:// ` +
              'location is printed, to copy (aws s3 cp) and open.',
          );
        }
        // An S3 lake is read as one, never as a local folder named `s3:` (which has no runs).
        const lakeDir = lakeLabel(options.lake);
        const { openLakeStore } = await import('../adapters/lake-store.ts');
        const lake = openLakeStore(options.lake);
        const entry = await findRun(lake, lakeDir, run, options.dataset, options.build);
        const key = entry.reportKey ?? (await renderMissingReport(lake, entry));
        const path = lake.uri(key);
        process.stdout.write(`${path}\n`);
        if (options.open) await openInBrowser(path);
      },
    );
}

/** The run asked for: by id or unique id prefix, else the newest run (of a dataset) that has bronze. */
async function findRun(
  lake: ObjectStore,
  lakeDir: string,
  run: string | undefined,
  dataset: string | undefined,
  build: string | undefined,
): Promise<RunEntry> {
  // A run, or with --build one of its rebuilds; without a run, the newest of either.
  const all = await listRuns(lake, dataset ? { dataset } : {});
  const runs = all.filter(
    (r) =>
      r.startedAt !== undefined &&
      r.records !== undefined &&
      (build === undefined ? run === undefined || r.build === undefined : r.build === build),
  );
  // Runs stopped before their bronze was committed (killed, or failed while parsing) have no report.
  const withoutBronze = all.filter(
    (r) => r.records === undefined && (run === undefined || r.runId.startsWith(run)),
  );
  const stoppedEarly =
    withoutBronze.length === 0
      ? ''
      : ` ${withoutBronze.length === 1 ? 'Its run' : `Its ${withoutBronze.length} runs`} ${withoutBronze
          .slice(0, 3)
          .map((r) => `${r.runId} (${r.status})`)
          .join(', ')} stopped before committing bronze, so there is no report to show: ` +
        '`sluice runs` says why, and running the file again resumes or retries it.';
  if (runs.length === 0) {
    throw new ConfigError(
      build === undefined
        ? `${lakeDir} has no run with bronze${dataset ? ` of dataset ${dataset}` : ''}.${stoppedEarly}` +
            (stoppedEarly ? '' : ' Run `sluice run <file> --dataset <name>` first, or give --lake.')
        : `${lakeDir} has no rebuild with build ${build}${run === undefined ? '' : ` of run ${run}`}; ` +
            '`sluice runs` lists the runs and their rebuilds (`(rebuild <b>)`).',
    );
  }
  if (run === undefined) return runs[0]!;
  const exact = runs.find((r) => r.runId === run);
  if (exact) return exact;
  const matches = runs.filter((r) => r.runId.startsWith(run));
  if (matches.length === 1) return matches[0]!;
  throw new ConfigError(
    matches.length === 0
      ? `no run "${run}" with bronze in ${lakeDir}.${stoppedEarly || ' `sluice runs` lists them.'}`
      : `"${run}" is the start of ${matches.length} runs (${matches
          .slice(0, 3)
          .map((r) => r.runId)
          .join(', ')}…): give more of it`,
  );
}

/** The platform's opener, detached; a failure to start it names the file to open by hand. */
function openInBrowser(path: string): Promise<void> {
  const [command, args] =
    process.platform === 'darwin'
      ? ['open', [path]]
      : process.platform === 'win32'
        ? ['cmd', ['/c', 'start', '', path]]
        : ['xdg-open', [path]];
  return new Promise((done, fail) => {
    const child = spawn(command, args, { detached: true, stdio: 'ignore' });
    child.once('error', (error) =>
      fail(new ConfigError(`could not start ${command} (${error.message}); open ${path} in a browser`)),
    );
    child.once('spawn', () => {
      child.unref();
      done();
    });
  });
}

/**
 * A report that is not in the lake (a run or rebuild killed before writing it, or written before reports
 * existed), rendered now and written where it belongs: a rebuild's beside its own reconciliation, from
 * that reconciliation, never over the run's.
 */
async function renderMissingReport(lake: ObjectStore, entry: RunEntry): Promise<string> {
  const bronzeKey = bronzeManifestKey(entry.dataset, entry.runId);
  if (entry.build === undefined) return writeRunReport(lake, bronzeKey);
  const reconciliationKey = rebuildReconciliationKey(entry.dataset, entry.runId, entry.build);
  const text = await readTextIfPresent(lake, reconciliationKey);
  if (text === undefined) {
    throw new ConfigError(
      `rebuild ${entry.build} of run ${entry.runId} has no report: it stopped before its reconciliation ` +
        `(status: ${entry.status}). \`sluice rebuild\` builds it again.`,
    );
  }
  return writeRunReport(
    lake,
    bronzeKey,
    { reconciliation: JSON.parse(text) as ReconciliationReport },
    reportKeyBeside(reconciliationKey),
  );
}
