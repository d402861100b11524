import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import {
  rebuildReconciliationKey,
  reconciliationKey,
  reportKeyBeside,
  runReportKey,
  sourceCurrentKey,
} from '../../shared/lake/keys.ts';
import { holdSourceLease, releaseSourceLease, thisLeaseProcess } from '../../shared/lake/source-lease.ts';
import { systemClock } from '../../shared/ports/clock.ts';
import { runSluice, SLUICE_BIN } from '../helpers/cli.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

/**
 * `sluice rebuild`, as a user meets it: silver and reconciliation built again from committed bronze
 * (the source is never read), unchanged when the config and contract make the build that is current, a
 * new build beside the old one when they changed, and the exit codes of `sluice run`.
 */

const SAMPLE = join(import.meta.dirname, '..', '..', 'samples', 'tic-in-network-sample.json.gz');

const ROWS = [
  { id: 1, label: 'one' },
  { id: 2, label: 'two' },
  { id: 3, label: 'three' },
];

/** A dataset config of the `rows` dataset with these columns: a second column is a contract change. */
const rowsConfig = (columns: readonly string[]) => ({
  name: 'rows',
  format: 'ndjson',
  recordName: 'rows',
  silver: {
    table: 'rows',
    columns: columns.map((name) => ({ name, type: name === 'id' ? 'integer' : 'string' })),
    primaryKey: ['id'],
  },
});

/** The JSON line(s) a `--json` command printed. */
const jsonLines = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

describe('sluice rebuild', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let lake: string;
  let file: string;
  let v1: string;
  let v2: string;
  beforeAll(async () => {
    tmp = await tempDir('sluice-cli-rebuild-');
    lake = join(tmp.dir, 'lake');
    file = join(tmp.dir, 'rows.ndjson');
    v1 = join(tmp.dir, 'rows-v1.json');
    v2 = join(tmp.dir, 'rows-v2.json');
    await writeFile(file, ROWS.map((row) => JSON.stringify(row)).join('\n'));
    await writeFile(v1, JSON.stringify(rowsConfig(['id'])));
    await writeFile(v2, JSON.stringify(rowsConfig(['id', 'label'])));
    const ran = await runSluice(['run', file, '--config', v1, '--lake', lake, '--json']);
    expect(ran.status, ran.stderr).toBe(0);
    expect(jsonLines(ran.stdout)[0]).toMatchObject({ status: 'reconciled' });
  });
  afterAll(async () => tmp.cleanup());

  /** The source's current record: the version and build readers see. */
  const current = async () => {
    const text = await readFile(
      join(lake, sourceCurrentKey('rows', sourceOf(await listFiles(lake)))),
      'utf8',
    );
    return JSON.parse(text) as { silverManifestKey: string; tables: Record<string, string[]> };
  };
  const sourceOf = (files: readonly string[]) =>
    /^_sources\/rows\/source=([^/]+)\/current\.json$/.exec(
      files.find((f) => f.endsWith('current.json'))!,
    )![1]!;

  it('ends unchanged when the config and contract make the build that is current', async () => {
    const before = await current();
    const rebuilt = await runSluice(['rebuild', '--config', v1, '--lake', lake, '--json']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    const [summary] = jsonLines(rebuilt.stdout);
    expect(summary).toMatchObject({ status: 'unchanged', dataset: 'rows' });
    const { build, previousBuild } = summary!.rebuild as { build: string; previousBuild: string };
    expect(build).toBe(previousBuild);
    expect(before.silverManifestKey.endsWith(`/${build}.json`)).toBe(true);
    expect(await current()).toEqual(before);
  });

  it('builds a changed contract anew beside the old build, reconciles it, and switches readers to it', async () => {
    const before = await current();
    const oldFiles = Object.values(before.tables).flat();
    const rebuilt = await runSluice(['rebuild', '--config', v2, '--lake', lake, '--json']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    const [summary] = jsonLines(rebuilt.stdout);
    expect(summary).toMatchObject({ status: 'reconciled', dataset: 'rows', resumed: true });
    const { build, previousBuild } = summary!.rebuild as { build: string; previousBuild: string };
    expect(build).not.toBe(previousBuild);

    // The new build is current; the old build's files are still there, untouched.
    const after = await current();
    expect(after.silverManifestKey.endsWith(`/${build}.json`)).toBe(true);
    const files = await listFiles(lake);
    for (const old of oldFiles) expect(files).toContain(old);
    expect(oldFiles.every((key) => key.includes(`/build=${previousBuild}/`))).toBe(true);
    expect(
      Object.values(after.tables)
        .flat()
        .every((key) => key.includes(`/build=${build}/`)),
    ).toBe(true);

    // Readers see the new column; the reconciliation of the rebuild passed.
    const query = await runSluice([
      'query',
      'SELECT id, label FROM rows ORDER BY id',
      '--lake',
      lake,
      '--json',
    ]);
    expect(query.status, query.stderr).toBe(0);
    expect(jsonLines(query.stdout)).toEqual(ROWS);
    const runId = summary!.runId as string;
    const proof = JSON.parse(await readFile(join(lake, reconciliationKey('rows', runId)), 'utf8'));
    expect(proof.status).toBe('passed');

    // Rebuilt once, the new build is the current one: a second rebuild has nothing to do.
    const again = await runSluice(['rebuild', '--config', v2, '--lake', lake, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(jsonLines(again.stdout)[0]).toMatchObject({ status: 'unchanged' });
  });

  it('exits 3 without touching the source while another run holds its lease, with --json a failed object', async () => {
    const before = await current();
    const lease = {
      dataset: 'rows',
      sourceId: sourceOf(await listFiles(lake)),
      location: file,
      holder: 'another-run',
    };
    const leaseDeps = {
      lake: new FileObjectStore(lake),
      clock: systemClock,
      localProcess: thisLeaseProcess(),
    };
    // Held by this (live) test process, as a run in progress holds it.
    await holdSourceLease(lease, leaseDeps);
    try {
      const busy = await runSluice(['rebuild', '--config', v1, '--lake', lake]);
      expect(busy.status).toBe(3);
      expect(busy.stderr).toContain('SourceBusyError');
      expect(busy.stderr).toContain('another-run');
      // With --json, rebuild and run each say so on stdout too, as one object (never an empty stdout).
      for (const args of [
        ['rebuild', '--config', v1, '--lake', lake, '--json'],
        ['run', file, '--config', v1, '--lake', lake, '--json'],
      ]) {
        const json = await runSluice(args);
        expect(json.status, args[0]).toBe(3);
        expect(JSON.parse(json.stdout)).toMatchObject({
          status: 'failed',
          dataset: 'rows',
          error: { name: 'SourceBusyError', message: expect.stringContaining('another-run') },
        });
      }
    } finally {
      await releaseSourceLease(lease, leaseDeps);
    }
    expect(await current()).toEqual(before);
  });

  it('exits 2 for a --source that is not a committed source, listing the committed ones', async () => {
    const unknown = await runSluice(['rebuild', '--config', v2, '--lake', lake, '--source', 'nope.ndjson-0']);
    expect(unknown.status).toBe(2);
    const source = sourceOf(await listFiles(lake));
    expect(unknown.stderr).toContain('--source nope.ndjson-0');
    expect(unknown.stderr).toContain(source);
    // A lake without a committed source of the dataset has nothing to rebuild, and says how to get one.
    const empty = await runSluice(['rebuild', '--config', v2, '--lake', join(tmp.dir, 'empty-lake')]);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toContain('has no committed source of this dataset');
    expect(empty.stderr).toContain('sluice run FILE --config');
    // The id, or the path the source was read from, names it.
    const byPath = await runSluice(['rebuild', '--config', v2, '--lake', lake, '--source', file, '--json']);
    expect(byPath.status, byPath.stderr).toBe(0);
    expect(jsonLines(byPath.stdout)[0]).toMatchObject({ status: 'unchanged', source: { id: source } });
  });

  it('leaves the current build current when the rebuild fails, dead-letters it, and redrives it once fixed', async () => {
    const before = await current();
    // Every label is text: as an integer column every record is quarantined, which fails reconciliation.
    const broken = join(tmp.dir, 'rows-broken.json');
    const config = rowsConfig(['id', 'label']);
    config.silver.columns[1]!.type = 'integer';
    await writeFile(broken, JSON.stringify(config));
    const failed = await runSluice(['rebuild', '--config', broken, '--lake', lake]);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('QuarantineThresholdError');
    expect(await current()).toEqual(before);
    const query = await runSluice(['query', 'SELECT label FROM rows ORDER BY id', '--lake', lake, '--json']);
    expect(jsonLines(query.stdout)).toEqual(ROWS.map(({ label }) => ({ label })));

    const letters = await runSluice(['dlq', 'list', '--lake', lake]);
    expect(letters.stdout).toContain(`rows: ${sourceOf(await listFiles(lake))} (rebuild)`);
    // Fixed (the column is text again), the redrive rebuilds and commits, and the letter is gone.
    config.silver.columns[1]!.type = 'string';
    config.silver.columns.push({ name: 'note', type: 'string' });
    await writeFile(broken, JSON.stringify(config));
    const redriven = await runSluice(['dlq', 'redrive', '--all', '--lake', lake, '--config', broken]);
    expect(redriven.status, redriven.stderr).toBe(0);
    expect((await current()).silverManifestKey).not.toBe(before.silverManifestKey);
    expect((await runSluice(['dlq', 'list', '--lake', lake])).stdout).toContain('no dead letters');
  });

  it('leaves the committed bronze of a file untouched when a run of it under another config fails', async () => {
    const dir = join(tmp.dir, 'other-config');
    const clake = join(dir, 'lake');
    const cfile = join(dir, 'rows.ndjson');
    await mkdir(dir, { recursive: true });
    await writeFile(cfile, ROWS.map((row) => JSON.stringify(row)).join('\n'));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify(rowsConfig(['id', 'label'])));
    expect((await runSluice(['run', cfile, '--config', good, '--lake', clake, '-q'])).status).toBe(0);
    const record = JSON.parse(
      await readFile(join(clake, sourceCurrentKey('rows', sourceOf(await listFiles(clake)))), 'utf8'),
    );
    const manifestBefore = await readFile(join(clake, record.bronzeManifestKey), 'utf8');
    const bronzeBefore = (await listFiles(clake)).filter((f) => f.startsWith('bronze/')).sort();

    // The same file under a config whose label is an integer: every record quarantined, the run fails.
    const broken = rowsConfig(['id', 'label']);
    broken.silver.columns[1]!.type = 'integer';
    const brokenFile = join(dir, 'broken.json');
    await writeFile(brokenFile, JSON.stringify(broken));
    const failed = await runSluice(['run', cfile, '--config', brokenFile, '--lake', clake, '-q']);
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('QuarantineThresholdError');
    // The current version's bronze is still the one it committed, byte for byte, with every part.
    expect(await readFile(join(clake, record.bronzeManifestKey), 'utf8')).toBe(manifestBefore);
    const bronzeAfter = (await listFiles(clake)).filter((f) => f.startsWith('bronze/'));
    for (const file of bronzeBefore) expect(bronzeAfter).toContain(file);
    const rebuilt = await runSluice(['rebuild', '--config', good, '--lake', clake, '--force', '-q']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
  });

  it("keeps a failed rebuild's evidence apart: the committed build's reconciliation and report still describe it", async () => {
    const runLevel = async () => {
      const files = await listFiles(lake);
      const key = files.find((f) => /\/run=[^/]+\/reconciliation\.json$/.test(f))!;
      return {
        runId: /\/run=([^/]+)\//.exec(key)![1]!,
        reconciliation: await readFile(join(lake, key), 'utf8'),
        report: await readFile(join(lake, reportKeyBeside(key)), 'utf8'),
      };
    };
    const before = await runLevel();
    const committed = await current();
    expect(JSON.parse(before.reconciliation)).toMatchObject({
      status: 'passed',
      silverManifestKey: committed.silverManifestKey,
    });
    const earlier = (await listFiles(lake)).join('\n');
    // A rebuild whose reconciliation fails (every label quarantined as an integer).
    const broken = join(tmp.dir, 'rows-broken-again.json');
    const config = rowsConfig(['id', 'label', 'other']);
    config.silver.columns[1]!.type = 'integer';
    await writeFile(broken, JSON.stringify(config));
    const failed = await runSluice(['rebuild', '--config', broken, '--lake', lake]);
    expect(failed.status).toBe(1);
    expect(await current()).toEqual(committed);

    // The run's own evidence is the committed build's, as it was, byte for byte.
    const after = await runLevel();
    expect(after).toEqual(before);
    // The failed rebuild's evidence is kept in a folder of its own, and says it failed.
    const rebuilds = (files: readonly string[]) =>
      files
        .map((f) => /\/run=[^/]+\/rebuild=([^/]+)\/reconciliation\.json$/.exec(f)?.[1])
        .filter((b): b is string => b !== undefined);
    const added = rebuilds(await listFiles(lake)).filter((b) => !earlier.includes(b));
    expect(added).toHaveLength(1);
    const failedBuild = added[0]!;
    const proof = JSON.parse(
      await readFile(join(lake, rebuildReconciliationKey('rows', before.runId, failedBuild)), 'utf8'),
    );
    expect(proof).toMatchObject({ status: 'failed', rebuild: true });

    // `sluice runs` lists the attempt beside the run, with its outcome; the run is still committed.
    const runs = await runSluice(['runs', '--lake', lake, '--json']);
    expect(runs.status, runs.stderr).toBe(0);
    const entries = jsonLines(runs.stdout);
    expect(entries.find((e) => e.runId === before.runId && e.build === undefined)).toMatchObject({
      status: 'committed',
    });
    expect(entries.find((e) => e.build === failedBuild)).toMatchObject({
      runId: before.runId,
      status: 'failed',
      error: expect.stringContaining('QuarantineThresholdError'),
    });
    const table = await runSluice(['runs', '--lake', lake]);
    expect(table.stdout).toContain(`(rebuild ${failedBuild})`);

    // `sluice report` shows the run's report, or the attempt's with --build.
    const report = await runSluice(['report', before.runId, '--lake', lake]);
    expect(report.stdout.trim()).toBe(join(lake, runReportKey('rows', before.runId)));
    const attempt = await runSluice(['report', before.runId, '--build', failedBuild, '--lake', lake]);
    expect(attempt.status, attempt.stderr).toBe(0);
    const attemptReport = await readFile(attempt.stdout.trim(), 'utf8');
    expect(attemptReport).toContain('data-field="tables.rows.rowsWritten">0<');
    // An attempt whose report is gone (killed between its two writes) gets its own rendered again, in its
    // own folder, from its own reconciliation: never the run's.
    await rm(attempt.stdout.trim());
    const again = await runSluice(['report', before.runId, '--build', failedBuild, '--lake', lake]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe(attempt.stdout.trim());
    expect(await readFile(again.stdout.trim(), 'utf8')).toContain('data-field="status">failed<');

    // Rendered again from the lake, the run's report shows the build its reconciliation proves (the
    // committed one, 3 rows), not the newest build of the version (the failed one, 0 rows).
    await rm(join(lake, runReportKey('rows', before.runId)));
    const rendered = await runSluice(['report', before.runId, '--lake', lake]);
    expect(rendered.status, rendered.stderr).toBe(0);
    const html = await readFile(rendered.stdout.trim(), 'utf8');
    expect(html).toContain('data-field="tables.rows.rowsWritten">3<');
  });

  it('folds a rebuilt cdc source into the merged state (a rebuild is a new build of the same run)', async () => {
    const dir = join(tmp.dir, 'cdc');
    const clake = join(dir, 'lake');
    const cfile = join(dir, 'changes.ndjson');
    await mkdir(dir, { recursive: true });
    const changes = [
      { id: 1, seq: 1, label: 'one' },
      { id: 2, seq: 1, label: 'two' },
      { id: 1, seq: 2, label: 'uno' },
    ];
    await writeFile(cfile, changes.map((row) => JSON.stringify(row)).join('\n'));
    const cdcConfig = (columns: readonly string[]) => ({
      name: 'changes',
      format: 'ndjson',
      recordName: 'changes',
      silver: {
        table: 'changes',
        columns: columns.map((name) => ({ name, type: name === 'label' ? 'string' : 'integer' })),
        primaryKey: ['id'],
        orderingColumn: 'seq',
        operationColumn: null,
        load: 'cdc',
      },
    });
    const c1 = join(dir, 'v1.json');
    const c2 = join(dir, 'v2.json');
    await writeFile(c1, JSON.stringify(cdcConfig(['id', 'seq'])));
    await writeFile(c2, JSON.stringify(cdcConfig(['id', 'seq', 'label'])));
    const ran = await runSluice(['run', cfile, '--config', c1, '--lake', clake, '-q']);
    expect(ran.status, ran.stderr).toBe(0);
    const rebuilt = await runSluice(['rebuild', '--config', c2, '--lake', clake, '-q']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    // The merged state is the new build's: the new column, each key at its highest seq.
    const state = await runSluice([
      'query',
      'SELECT id, seq, label FROM changes__changes_current ORDER BY id',
      '--lake',
      clake,
      '--json',
    ]);
    expect(state.status, state.stderr).toBe(0);
    expect(jsonLines(state.stdout)).toEqual([
      { id: 1, seq: 2, label: 'uno' },
      { id: 2, seq: 1, label: 'two' },
    ]);
    // Rebuilt again: unchanged, through CatchUpState, which finds the state holding the build already.
    const again = await runSluice(['rebuild', '--config', c2, '--lake', clake, '--json']);
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      status: 'unchanged',
      state: { table: 'changes', outcome: 'already-applied', caughtUp: false },
    });
  });

  it('exits 2 for a config that reads the file differently (another record path, CSV delimiter), whatever its stream names', async () => {
    // Bronze holds the records of the config it was parsed under. A record path or a delimiter changed
    // under the same stream name used to pass as a rebuild, which built silver from the old records
    // and exited 0 ("reconciled", or "unchanged" when the silver section stayed the same).
    const dir = join(tmp.dir, 'parse-changed');
    await mkdir(dir, { recursive: true });
    const document = join(dir, 'doc.json');
    await writeFile(
      document,
      JSON.stringify({ old: { items: [{ id: 1, v: 'stale' }] }, new: { items: [{ id: 10, v: 'wanted' }] } }),
    );
    const items = (path: string, columns: readonly string[]) => ({
      name: 'items',
      format: 'json',
      records: [{ path }],
      silver: {
        table: 'items',
        columns: columns.map((name) => ({ name, type: name === 'id' ? 'integer' : 'string' })),
      },
    });
    const table = join(dir, 'table.csv');
    await writeFile(table, 'id;v\n1;x\n');
    const semicolons = (delimiter: string) => ({
      name: 'semicolons',
      format: 'csv',
      csv: { delimiter },
      silver: { table: 'semicolons', columns: [{ name: 'id', type: 'integer' }] },
    });
    const cases = [
      { file: document, before: items('old.items[*]', ['id']), after: items('new.items[*]', ['id', 'v']) },
      { file: document, before: items('old.items[*]', ['id']), after: items('new.items[*]', ['id']) },
      // Parsed under ';' first: under ',' the header row "id;v" names no column, which fails the run.
      { file: table, before: semicolons(';'), after: semicolons(',') },
    ];
    for (const [i, { file: input, before, after }] of cases.entries()) {
      const clake = join(dir, `lake-${i}`);
      const configBefore = join(dir, `before-${i}.json`);
      const configAfter = join(dir, `after-${i}.json`);
      await writeFile(configBefore, JSON.stringify(before));
      await writeFile(configAfter, JSON.stringify(after));
      const ran = await runSluice(['run', input, '--config', configBefore, '--lake', clake, '-q']);
      expect(ran.status, ran.stderr).toBe(0);
      const currentKey = (await listFiles(clake)).find((f) => f.endsWith('/current.json'))!;
      const committed = await readFile(join(clake, currentKey), 'utf8');

      const rebuilt = await runSluice(['rebuild', '--config', configAfter, '--lake', clake]);
      expect(rebuilt.status, rebuilt.stdout).toBe(2);
      expect(rebuilt.stderr).toContain('Run the file again instead');
      expect(await readFile(join(clake, currentKey), 'utf8')).toBe(committed);
      const forced = await runSluice(['rebuild', '--config', configAfter, '--lake', clake, '--force']);
      expect(forced.status, forced.stdout).toBe(2);
    }
  });

  it('keeps a snapshot without an ordering column on the file that became current last: a rebuild of every source, or a source reverted to bytes it had, does not move it', async () => {
    // The merged state folded the sources in the order their versions were first committed: a rebuild
    // (a new commit of the same version) moved a source to the end, and a reverted source (committed
    // before) to the front, so `_current` silently showed an older file's snapshot (exit 0).
    const dir = join(tmp.dir, 'snapshot-order');
    await mkdir(dir, { recursive: true });
    const snapshotConfig = (columns: readonly string[]) => ({
      name: 'snap',
      format: 'ndjson',
      silver: {
        table: 'snap',
        columns: columns.map((name) => ({ name, type: name === 'id' ? 'integer' : 'string' })),
        primaryKey: ['id'],
        load: 'snapshot',
      },
    });
    const before = join(dir, 'snap-v1.json');
    const after = join(dir, 'snap-v2.json');
    await writeFile(before, JSON.stringify(snapshotConfig(['id', 'label'])));
    await writeFile(after, JSON.stringify(snapshotConfig(['id', 'label', 'note'])));
    const slake = join(dir, 'lake');
    // Source ids sort "a…" before "z…": the older file is z, the newer a.
    const older = join(dir, 'z.ndjson');
    const newer = join(dir, 'a.ndjson');
    const land = async (file: string, label: string, config = before) => {
      await writeFile(file, `${JSON.stringify({ id: 1, label })}\n`);
      const ran = await runSluice(['run', file, '--config', config, '--lake', slake, '-q']);
      expect(ran.status, ran.stderr).toBe(0);
    };
    const snapshotNow = async () => {
      const query = await runSluice([
        'query',
        'SELECT label FROM snap__snap_current',
        '--lake',
        slake,
        '--json',
      ]);
      expect(query.status, query.stderr).toBe(0);
      return jsonLines(query.stdout).map((row) => row.label);
    };
    await land(older, 'z1');
    await land(newer, 'a1');
    expect(await snapshotNow()).toEqual(['a1']);

    const rebuilt = await runSluice(['rebuild', '--config', after, '--lake', slake, '--json']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    expect(jsonLines(rebuilt.stdout).map((summary) => summary.status)).toEqual(['reconciled', 'reconciled']);
    expect(await snapshotNow()).toEqual(['a1']);

    // z changes, then goes back to the bytes it had: each time it is the newest file.
    await land(older, 'z2', after);
    expect(await snapshotNow()).toEqual(['z2']);
    await land(older, 'z1', after);
    expect(await snapshotNow()).toEqual(['z1']);
  });

  it('teaches itself with --help', async () => {
    const help = await runSluice(['rebuild', '--help']);
    expect(help.status).toBe(0);
    for (const phrase of ['--source', '--force', 'contractVersion', 'unchanged', 'Exit codes']) {
      expect(help.stdout).toContain(phrase);
    }
  });

  it('runs a built-in dataset: the bundled sample, rebuilt, is unchanged', async () => {
    const sampleLake = join(tmp.dir, 'sample-lake');
    const ran = await runSluice(['run', SAMPLE, '--dataset', 'tic-in-network', '--lake', sampleLake, '-q']);
    expect(ran.status, ran.stderr).toBe(0);
    const rebuilt = await runSluice(['rebuild', '--dataset', 'tic-in-network', '--lake', sampleLake]);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    expect(rebuilt.stdout).toContain('sluice rebuild unchanged: tic-in-network');
  });

  it('stops a rebuild whose lease a run took over mid-rebuild, before it can commit over the newer version', async () => {
    const dir = join(tmp.dir, 'interleaved');
    const ilake = join(dir, 'lake');
    const ifile = join(dir, 'rows.ndjson');
    await mkdir(dir, { recursive: true });
    await writeFile(ifile, ROWS.map((row) => JSON.stringify(row)).join('\n'));
    const ran = await runSluice(['run', ifile, '--config', v1, '--lake', ilake, '-q']);
    expect(ran.status, ran.stderr).toBe(0);
    const currentOf = async () => {
      const key = (await listFiles(ilake)).find((f) => f.endsWith('/current.json'))!;
      return { key, record: JSON.parse(await readFile(join(ilake, key), 'utf8')) as { version: string } };
    };
    const planned = await currentOf();

    // The rebuild is stopped once PlanRebuild is done (its silver stage has started), as if it stalled.
    const rebuild = spawn(process.execPath, [SLUICE_BIN, 'rebuild', '--config', v2, '--lake', ilake], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const exited = new Promise<number | null>((done) => rebuild.once('close', done));
    try {
      await new Promise<void>((stopped, failed) => {
        rebuild.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk;
          if (/silver…/.test(stderr) && !rebuild.killed) {
            rebuild.kill('SIGSTOP');
            stopped();
          }
        });
        rebuild.once('close', () =>
          failed(new Error(`the rebuild ended before its silver stage: ${stderr}`)),
        );
      });
      // Its lease expires meanwhile (stalled past its lifetime), and a run of new bytes takes the source
      // over and commits them.
      const leaseKey = planned.key.replace(/current\.json$/, 'lease.json');
      const lease = JSON.parse(await readFile(join(ilake, leaseKey), 'utf8'));
      await writeFile(
        join(ilake, leaseKey),
        JSON.stringify({ ...lease, expiresAt: '2020-01-01T00:00:00.000Z' }),
      );
      await writeFile(
        ifile,
        [...ROWS, { id: 4, label: 'four' }].map((row) => JSON.stringify(row)).join('\n'),
      );
      const newer = await runSluice(['run', ifile, '--config', v1, '--lake', ilake, '--json']);
      expect(newer.status, newer.stderr).toBe(0);
      const committed = await currentOf();
      expect(committed.record.version).not.toBe(planned.record.version);

      // Resumed, the rebuild must not put the older version back: its next stage renews its lease, finds
      // that the other run took it, and stops (the commit's own check, SourceChangedError, is the guard
      // behind this one).
      rebuild.kill('SIGCONT');
      expect(await exited).toBe(1);
      expect(stderr).toContain('LeaseLostError');
      expect(stderr).toMatch(/this run stopped without committing/);
      expect(await currentOf()).toEqual(committed);
      const query = await runSluice(['query', 'SELECT count(*) AS n FROM rows', '--lake', ilake, '--json']);
      expect(jsonLines(query.stdout)).toEqual([{ n: 4 }]);
    } finally {
      if (rebuild.exitCode === null) {
        rebuild.kill('SIGKILL');
        await exited;
      }
    }
  });
});
