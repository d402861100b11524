import { spawn } from 'node:child_process';
import { cp, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSluice } from '../helpers/cli.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { generateFile, listFiles, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/**
 * `sluice runs` over a lake that saw every kind of run: a version committed and then replaced, a touched
 * file found unchanged, a bad file dead-lettered, a run stopped before its commit, and one in progress.
 */

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

const sluice = (args: string[]) => runSluice(args);

const jsonLines = (text: string) =>
  text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));

describe('sluice runs', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let lake: string;
  let file: string;
  const runIds: Record<string, string> = {};

  beforeAll(async () => {
    tmp = await tempDir('sluice-runs-');
    lake = join(tmp.dir, 'lake');
    const run = async (path: string) => {
      const result = await sluice(['run', path, '--dataset', 'tic-in-network', '--lake', lake, '--json']);
      return { status: result.status, json: result.stdout ? JSON.parse(result.stdout) : undefined };
    };
    // Version 1, then version 2 of the same file (new bytes): 1 is replaced.
    file = (await generateFile(tmp.dir, 'prices.json.gz', { seed: 1, targetBytes: 40_000 })).path;
    runIds.first = (await run(file)).json.runId;
    await generateFile(tmp.dir, 'prices.json.gz', { seed: 2, targetBytes: 40_000 });
    runIds.second = (await run(file)).json.runId;
    // Touched, same bytes: a new stored object, found unchanged.
    await utimes(file, new Date('2030-01-01'), new Date('2030-01-01'));
    runIds.touched = (await run(file)).json.runId;
    // Malformed: fails before bronze, dead-lettered.
    await writeFile(join(tmp.dir, 'broken.json'), '{"in_network":[{"negotiation_arrangement":');
    expect((await run(join(tmp.dir, 'broken.json'))).status).toBe(1);
  }, 300_000);
  afterAll(async () => tmp.cleanup());

  it('lists them newest first, each with its status, as JSON', async () => {
    const result = await sluice(['runs', '--lake', lake, '--json']);
    expect(result.status, result.stderr).toBe(0);
    const runs = jsonLines(result.stdout);
    const byId = new Map(runs.map((r) => [r.runId, r]));
    expect(byId.get(runIds.first)).toMatchObject({ status: 'replaced', resumed: false });
    const firstReport = byId.get(runIds.first).reportKey as string;
    const reconciliation = JSON.parse(
      await readFile(join(lake, firstReport.replace(/report\.html$/, 'reconciliation.json')), 'utf8'),
    );
    expect(byId.get(runIds.first).quality).toBe(reconciliation.quality.score);
    expect(byId.get(runIds.second)).toMatchObject({ status: 'committed', source: file, resumed: false });
    expect(byId.get(runIds.second).records).toBeGreaterThan(0);
    expect(byId.get(runIds.second).durationMs).toBeGreaterThan(0);
    expect(byId.get(runIds.touched)).toMatchObject({ status: 'unchanged' });
    const failed = runs.filter((r) => r.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].error).toMatch(/^MalformedInputError: .*broken\.json: malformed input/);
    // Newest first: the second version after the first.
    const order = runs.map((r) => r.runId);
    expect(order.indexOf(runIds.second)).toBeLessThan(order.indexOf(runIds.first));
    expect(order.indexOf(runIds.touched)).toBeLessThan(order.indexOf(runIds.second));
  });

  it('filters by status and dataset, and prints a table', async () => {
    const committed = jsonLines(
      (await sluice(['runs', '--lake', lake, '--json', '--status', 'committed'])).stdout,
    );
    expect(committed.map((r) => r.runId)).toEqual([runIds.second]);
    const other = await sluice(['runs', '--lake', lake, '--dataset', 'tic-allowed-amounts']);
    expect(other.stdout).toMatch(/^no runs in .* \(with these filters\)\n$/);
    const bad = await sluice(['runs', '--lake', lake, '--status', 'lost']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are committed, replaced, failed/);

    const table = (await sluice(['runs', '--lake', lake])).stdout.split('\n');
    expect(table[0]).toMatch(
      /^started\s+dataset\s+source\s+version\s+status\s+records\s+quality\s+duration\s+resumed$/,
    );
    expect(table.find((l) => l.includes(' committed '))).toMatch(
      /prices\.json\.gz\s+[0-9a-f]{16}\s+committed\s+[\d,]+\s+\d+\s+/,
    );
    expect(table).toContain('failures:');
  });

  it('tells a run stopped before its commit from one still holding its source', async () => {
    // A copy of a committed run's bronze under another object's run id: bronze, and nothing after it.
    const second = runIds.second!;
    const source = second.slice(0, second.lastIndexOf('-'));
    const folder = (run: string) => join(lake, 'bronze/tic-in-network', `source=${source}`, `run=${run}`);
    const stopped = `${source}-0badf00d`;
    await mkdir(folder(stopped), { recursive: true });
    const manifest = JSON.parse(await readFile(join(folder(second), '_manifest.json'), 'utf8'));
    await writeFile(
      join(folder(stopped), '_manifest.json'),
      JSON.stringify({ ...manifest, runId: stopped, timings: { ...manifest.timings, resumed: true } }),
    );
    let runs = jsonLines((await sluice(['runs', '--lake', lake, '--json'])).stdout);
    expect(runs.find((r) => r.runId === stopped)).toMatchObject({ status: 'interrupted', resumed: true });

    // The same run holding its source's lease, held by this (live) process: in progress.
    const leaseFile = join(lake, '_sources/tic-in-network', `source=${source}`, 'lease.json');
    const backup = join(tmp.dir, 'lease.backup');
    await cp(leaseFile, backup).catch(() => undefined);
    const now = Date.now();
    await writeFile(
      leaseFile,
      JSON.stringify({
        leaseVersion: 1,
        dataset: 'tic-in-network',
        sourceId: source,
        location: file,
        runId: stopped,
        holder: 'test',
        acquiredAt: new Date(now).toISOString(),
        renewedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 600_000).toISOString(),
        host: hostname(),
        pid: process.pid,
      }),
    );
    runs = jsonLines((await sluice(['runs', '--lake', lake, '--json', '--status', 'in progress'])).stdout);
    expect(runs.map((r) => r.runId)).toEqual([stopped]);
    expect(runs[0].finishedAt).toBeUndefined();
  });

  it('calls a run that found bytes committed before (the file went back to them) unchanged, not interrupted', async () => {
    const dir = join(tmp.dir, 'went-back');
    await mkdir(dir, { recursive: true });
    const config = join(dir, 'config.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'went-back',
        format: 'ndjson',
        silver: { table: 'items', columns: [{ name: 'id', type: 'integer' }] },
      }),
    );
    const events = join(dir, 'events.ndjson');
    const goBackLake = join(dir, 'lake');
    const run = async (content: string) => {
      await writeFile(events, content);
      const result = await sluice(['run', events, '--config', config, '--lake', goBackLake, '--json']);
      expect(result.status, result.stderr).toBe(0);
      return JSON.parse(result.stdout) as { runId: string; status: string };
    };
    const first = await run('{"id":1}\n');
    const second = await run('{"id":2}\n');
    const back = await run('{"id":1}\n');
    expect(back.status).toBe('reconciled');

    const statuses = async () =>
      new Map(
        jsonLines((await sluice(['runs', '--lake', goBackLake, '--json'])).stdout).map((r) => [
          r.runId,
          r.status,
        ]),
      );
    const byId = await statuses();
    expect(byId.get(first.runId)).toBe('committed');
    expect(byId.get(second.runId)).toBe('replaced');
    // Its bytes are the current version, as first committed: there is nothing to resume.
    expect(byId.get(back.runId)).toBe('unchanged');
    expect([...byId.values()]).not.toContain('interrupted');
  });

  /** A config of in_network records in 256 KiB segments, so that a run writes parts (and checkpoints) early. */
  async function segmentedConfig(name: string): Promise<string> {
    const config = join(tmp.dir, `${name}.json`);
    await writeFile(
      config,
      JSON.stringify({
        name,
        format: 'json',
        records: [{ path: 'in_network[*]' }],
        bronze: { segmentBytes: 256 * 1024 },
      }),
    );
    return config;
  }

  /** Runs `sluice args` and kill -9s it as soon as `lake` holds a file whose name ends with `ending`. */
  async function killOnceWritten(args: string[], lake: string, ending: string): Promise<void> {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    while (!(await listFiles(lake)).some((f) => f.endsWith(ending))) await delay(20);
    child.kill('SIGKILL');
    await exited;
  }

  it('says a run resumed when a killed sliced run was run again', async () => {
    const sliced = join(tmp.dir, 'sliced');
    const config = await segmentedConfig('tic-sliced');
    const big = (await generateFile(tmp.dir, 'big.json.gz', { seed: 7, targetBytes: 4_000_000 })).path;
    const args = ['run', big, '--config', config, '--lake', sliced, '--slice-seconds', '0', '-q'];
    // Killed once its first checkpoint is written: the next run continues from it.
    await killOnceWritten(args, sliced, '/_checkpoint.json');
    let runs = jsonLines((await sluice(['runs', '--lake', sliced, '--json'])).stdout);
    expect(runs).toMatchObject([{ status: 'interrupted', resumed: false }]);

    const rerun = await sluice([...args, '--json']);
    expect(rerun.status).toBe(0);
    // Resumed from the checkpoint: through the resumable reader, as slices must be.
    expect(JSON.parse(rerun.stdout)).toMatchObject({ reader: 'resumable', resumed: true });
    runs = jsonLines((await sluice(['runs', '--lake', sliced, '--json'])).stdout);
    expect(runs).toMatchObject([{ status: 'committed', resumed: true }]);
    expect((await sluice(['runs', '--lake', sliced])).stdout).toMatch(/ committed .* yes\n/);
  }, 120_000);

  it('lists a run killed before its first checkpoint or manifest, and report says why it has none', async () => {
    const unsliced = join(tmp.dir, 'unsliced');
    const config = await segmentedConfig('tic-unsliced');
    const big = (await generateFile(tmp.dir, 'bigger.json.gz', { seed: 8, targetBytes: 30_000_000 })).path;
    // Killed once its first bronze part is written: one pass writes no checkpoint, and no manifest yet.
    await killOnceWritten(['run', big, '--config', config, '--lake', unsliced, '-q'], unsliced, '.ndjson.gz');
    const files = await listFiles(unsliced);
    expect(files.some((f) => /_manifest\.json$|_checkpoint\.json$/.test(f))).toBe(false);
    // On main: "no runs in …", exit 0, as if nothing had been tried.
    const runs = jsonLines((await sluice(['runs', '--lake', unsliced, '--json'])).stdout);
    expect(runs).toMatchObject([{ dataset: 'tic-unsliced', status: 'interrupted', resumed: false }]);
    expect(runs[0].startedAt).toEqual(expect.any(String));
    const report = await sluice(['report', '--lake', unsliced]);
    expect(report.status).toBe(2);
    expect(report.stderr).toContain(
      `Its run ${runs[0].runId} (interrupted) stopped before committing bronze`,
    );
  }, 120_000);
});

describe('sluice runs: two failures of one source', () => {
  it('lists each failed run once, with its own error', async () => {
    const tmp = await tempDir('sluice-runs-failures-');
    try {
      const lake = join(tmp.dir, 'lake');
      const file = join(tmp.dir, 'amounts.json');
      const run = async () =>
        (await sluice(['run', file, '--dataset', 'tic-allowed-amounts', '--lake', lake, '-q'])).status;
      const sample = await readFile(join(TIC_EXAMPLES, 'allowed-amounts-multiple-plan-sample.json'), 'utf8');
      await writeFile(file, sample);
      expect(await run()).toBe(0);
      // A version whose every record is quarantined: it has a run folder, and fails at its reconciliation.
      await writeFile(file, sample.replaceAll('"CPT"', '"XXX"'));
      expect(await run()).toBe(1);
      // Then the file emptied: it fails before bronze, with no run folder of its own.
      await writeFile(file, '');
      expect(await run()).toBe(1);

      const failed = jsonLines((await sluice(['runs', '--lake', lake, '--json'])).stdout).filter(
        (r) => r.status === 'failed',
      );
      expect(failed.map((r) => r.error.split(':')[0])).toEqual([
        'MalformedInputError',
        'QuarantineThresholdError',
      ]);
      // The quarantined version's row keeps its own reason, not the empty file's.
      expect(failed[1]).toMatchObject({
        records: 1,
        error: expect.stringMatching(/all 1 records were quarantined/),
      });
    } finally {
      await tmp.cleanup();
    }
  }, 120_000);
});

const SKIP = motoSkipReason();

describe.skipIf(SKIP !== undefined)(`sluice runs: an S3 lake${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMotoServer();
    await moto.createBucket('lakes');
  }, 120_000);
  afterAll(() => moto?.stop());

  it('lists the runs of the bucket, and finds their reports, not a local folder named s3:', async () => {
    const lake = 's3://lakes/runs';
    const file = join(TIC_EXAMPLES, 'allowed-amounts-multiple-plan-sample.json');
    const run = await runSluice(
      ['run', file, '--dataset', 'tic-allowed-amounts', '--lake', lake, '--json', '-q'],
      moto.env,
    );
    expect(run.status, run.stderr).toBe(0);
    const runs = await runSluice(['runs', '--lake', lake, '--json'], moto.env);
    expect(runs.status, runs.stderr).toBe(0);
    expect(jsonLines(runs.stdout)).toMatchObject([
      {
        runId: JSON.parse(run.stdout).runId,
        dataset: 'tic-allowed-amounts',
        status: 'committed',
        records: 1,
      },
    ]);
    // `sluice report` finds it there too, and prints its S3 location.
    const report = await runSluice(['report', '--lake', lake], moto.env);
    expect(report.status, report.stderr).toBe(0);
    expect(report.stdout).toMatch(/^s3:\/\/lakes\/runs\/bronze\/tic-allowed-amounts\/.*\/report\.html\n$/);
  }, 180_000);
});
