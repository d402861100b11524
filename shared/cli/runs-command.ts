import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { isS3Lake, lakeLabel } from '../adapters/lake-location.ts';
import { FolderDeadLetterStore } from '../adapters/local/folder-dead-letter-store.ts';
import { ConfigError } from '../errors.ts';
import { listRuns, RUN_STATUSES, type RunEntry, type RunStatus } from '../lake/run-history.ts';
import { formatCount, formatDuration } from './format.ts';

/** `sluice runs`: the runs of a lake (a folder, or on S3), newest first. */
export function runsCommand(): Command {
  return new Command('runs')
    .description(
      'List the runs of the lake, newest first: source, version, status, records, quality, duration, and ' +
        'whether the run resumed. Told from the lake itself: manifests, reconciliation reports, commit ' +
        'records, leases and dead letters.',
    )
    .option(
      '-l, --lake <dir|s3://bucket/prefix>',
      'the lake: a directory, or an S3 bucket and prefix',
      './lake',
    )
    .option('-d, --dataset <name>', 'only the runs of this dataset')
    .addOption(new Option('-s, --status <status>', 'only the runs with this status').choices(RUN_STATUSES))
    .option('--json', 'print one JSON object per run, one per line', false)
    .addHelpText(
      'after',
      `
Statuses:
  committed    its version is the one readers see
  replaced     it was, until a newer version was committed
  failed       its reconciliation failed, or it was dead-lettered (the error is listed)
  unchanged    a touched or re-uploaded file, or one gone back to bytes it had (current again): the lake
               held these bytes already
  in progress  it holds its source's lease now
  interrupted  stopped before its commit: run it again to resume it

A rebuild (sluice rebuild) is listed as a run of its own beside the run it rebuilt, "(rebuild <build>)"
after its source: committed while its build is the one readers see, failed with its reconciliation's
error, replaced once a later commit came. Its report: sluice report <run> --build <build>.

Examples:
  $ sluice runs
  $ sluice runs --dataset tic-in-network --status failed
  $ sluice runs --json | jq -r 'select(.status == "committed") | .reportKey'
`,
    )
    .action(async (options: { lake: string; dataset?: string; status?: RunStatus; json: boolean }) => {
      // An S3 lake is read as one, never as a local folder named `s3:` (which has no runs).
      // Loaded when the command runs: it brings the AWS SDK, which the CLI's start does without.
      const { openLakeStore } = await import('../adapters/lake-store.ts');
      const lake = openLakeStore(options.lake);
      const lakeDir = lakeLabel(options.lake);
      // A folder that is not there is a mistyped --lake, not a lake without failed runs: a script that
      // checks `sluice runs --status failed` must not read "no runs" as all is well.
      if (!isS3Lake(options.lake) && !existsSync(lakeDir)) {
        throw new ConfigError(
          `--lake ${options.lake}: no such folder (${lakeDir}), so no run has written a lake there; ` +
            "give the lake's folder or s3://bucket[/prefix]",
        );
      }
      const runs = await listRuns(lake, {
        ...(options.dataset !== undefined && { dataset: options.dataset }),
        ...(options.status !== undefined && { status: options.status }),
        deadLetters: await new FolderDeadLetterStore(lake).list(),
      });
      if (options.json) {
        for (const run of runs) process.stdout.write(`${JSON.stringify(run)}\n`);
        return;
      }
      process.stdout.write(runsTable(runs, lakeDir));
    });
}

/** The runs as a table for a terminal, each failure's reason below it. */
export function runsTable(runs: readonly RunEntry[], lakeDir: string): string {
  if (runs.length === 0) return `no runs in ${lakeDir} (with these filters)\n`;
  const header = [
    'started',
    'dataset',
    'source',
    'version',
    'status',
    'records',
    'quality',
    'duration',
    'resumed',
  ];
  const rows = runs.map((r) => [
    r.startedAt ? r.startedAt.slice(0, 19).replace('T', ' ') : '–',
    r.dataset,
    cut(r.source.split(/[/\\]/).at(-1) || r.source, 36) + (r.build ? ` (rebuild ${r.build})` : ''),
    r.version ?? '–',
    r.status,
    r.records === undefined ? '–' : formatCount(r.records),
    r.quality === undefined ? '–' : String(r.quality),
    r.durationMs === undefined ? '–' : formatDuration(r.durationMs),
    r.resumed ? 'yes' : r.resumed === false ? 'no' : '–',
  ]);
  const numeric = new Set([5, 6, 7]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const failures = runs
    .filter((r) => r.error)
    .map((r) => `  ${r.runId}${r.build ? ` --build ${r.build}` : ''}\n    ${cut(r.error!, 300)}`);
  return [
    line(header),
    ...rows.map(line),
    `(${runs.length} ${runs.length === 1 ? 'run' : 'runs'}; \`sluice report <run> [--build <build>]\` shows one, \`--json\` gives run ids)`,
    ...(failures.length > 0 ? ['', 'failures:', ...failures] : []),
    '',
  ].join('\n');
}

function cut(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
