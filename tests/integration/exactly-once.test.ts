import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { ReconciliationError } from '../../shared/errors.ts';
import { runWorkflowLocally } from '../../shared/pipeline/local-runner.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';

/**
 * Exactly once, as a user meets it: the same file run twice at once, touched, rerun, replaced by a new
 * version, fetched from two URLs with one file name, killed before its commit. After each, `sluice query`
 * shows every source's current version once, never a half-written or unreconciled run.
 */

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function sluice(args: string[]): Finished {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

/** Starts `sluice` in the background; `done` resolves when it exits. */
function start(args: string[]): { child: ChildProcess; done: Promise<Finished>; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<Finished>((resolve) =>
    child.once('exit', (status) => resolve({ status, stdout, stderr })),
  );
  return { child, done, stderr: () => stderr };
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One value of a `sluice query`. */
function queryValue(lake: string, sql: string): unknown {
  const result = sluice(['query', sql, '--lake', lake, '--json']);
  expect(result.status, result.stderr).toBe(0);
  const row = JSON.parse(result.stdout.trim().split('\n')[0]!) as Record<string, unknown>;
  return Object.values(row)[0];
}

const count = (lake: string, view: string) => Number(queryValue(lake, `SELECT count(*) FROM ${view}`));

/** Whether a lake holds the lease of some source (the first run has taken it). */
async function leaseTaken(lake: string): Promise<boolean> {
  return (await listFiles(lake)).some((f) => f.endsWith('/lease.json'));
}

describe('exactly once (sluice run, sluice query)', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let facts: { a: number; b: number };
  beforeAll(async () => {
    tmp = await tempDir('sluice-exactly-once-');
    const a = await generateFile(tmp.dir, 'a.json.gz', { seed: 41, targetBytes: 3_000_000 });
    const b = await generateFile(tmp.dir, 'b.json.gz', { seed: 42, targetBytes: 1_000_000 });
    facts = { a: a.facts.negotiated_prices, b: b.facts.negotiated_prices };
  });
  afterAll(async () => tmp.cleanup());

  const run = (file: string, lake: string, ...more: string[]) => [
    'run',
    file,
    '-d',
    'tic-in-network',
    '--lake',
    lake,
    '--json',
    ...more,
  ];

  it('runs one source twice at once once: the second says who holds it (exit 3), or waits with --wait', async () => {
    const lake = join(tmp.dir, 'one-lake');
    const file = join(tmp.dir, 'a.json.gz');
    const first = start(run(file, lake));
    await until(() => leaseTaken(lake), 'the first run to take the lease');
    const second = sluice(run(file, lake));
    const waiting = start(run(file, lake, '--wait'));
    expect(second.status).toBe(3);
    expect(second.stderr).toMatch(/SourceBusyError: another run of .*a\.json\.gz is in progress since/);
    expect(second.stderr).toContain('--wait');

    const [firstDone, waited] = [await first.done, await waiting.done];
    expect(firstDone.status, firstDone.stderr).toBe(0);
    expect(JSON.parse(firstDone.stdout).status).toBe('reconciled');
    // The waiting run took the source after the first: its bytes are current, nothing to do.
    expect(waited.status, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ status: 'unchanged', read: false });
    expect(count(lake, 'negotiated_prices')).toBe(facts.a);
    expect(count(lake, 'files')).toBe(1);
  });

  it('runs one file into two lakes at once: each run has its own scratch space, both reconcile', async () => {
    const file = join(tmp.dir, 'b.json.gz');
    const [x, y] = [join(tmp.dir, 'lake-x'), join(tmp.dir, 'lake-y')];
    const runs = [start(run(file, x)), start(run(file, y))];
    for (const finished of await Promise.all(runs.map((r) => r.done))) {
      expect(finished.status, finished.stderr).toBe(0);
      expect(JSON.parse(finished.stdout).status).toBe('reconciled');
    }
    expect(count(x, 'negotiated_prices')).toBe(facts.b);
    expect(count(y, 'negotiated_prices')).toBe(facts.b);
  });

  it('never duplicates a source: a touched file is read and found unchanged, five reruns are not read', async () => {
    const lake = join(tmp.dir, 'rerun-lake');
    const file = join(tmp.dir, 'rerun.json.gz');
    await copyFile(join(tmp.dir, 'b.json.gz'), file);
    expect(JSON.parse(sluice(run(file, lake)).stdout).status).toBe('reconciled');
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later);
    const touched = sluice(run(file, lake));
    expect(touched.status).toBe(0);
    expect(JSON.parse(touched.stdout)).toMatchObject({ status: 'unchanged', read: true });
    for (let i = 0; i < 5; i++) {
      const again = sluice(run(file, lake));
      expect(again.status).toBe(0);
      expect(JSON.parse(again.stdout)).toMatchObject({ status: 'unchanged', read: false });
    }
    expect(count(lake, 'negotiated_prices')).toBe(facts.b);
    expect(count(lake, 'negotiated_prices_history')).toBe(facts.b);
    // The touched copy's duplicate bronze was removed: one bronze run for the source.
    const manifests = (await listFiles(lake)).filter((f) => f.endsWith('/_manifest.json'));
    expect(manifests).toHaveLength(1);
  });

  it('reads a file rewritten in place with its size and mtime kept (cp -p, rsync --inplace -t): new bytes are a new version', async () => {
    // The same path, size, mtime and inode made the same run id, so the rerun ended "unchanged" without
    // reading the file, exit 0, and silver kept the old values. The inode's change time moves on every
    // write and no tool sets it back.
    const lake = join(tmp.dir, 'in-place-lake');
    const file = join(tmp.dir, 'in-place.ndjson');
    const config = join(tmp.dir, 'in-place.config.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'in-place',
        format: 'ndjson',
        silver: {
          table: 'in_place',
          columns: [
            { name: 'id', type: 'integer' },
            { name: 'label', type: 'string' },
          ],
        },
      }),
    );
    const stamp = new Date('2024-01-01T00:00:00Z');
    const write = async (label: string) => {
      await writeFile(file, `{"id":1,"label":"${label}"}\n`); // truncates and rewrites the same inode
      await utimes(file, stamp, stamp);
    };
    const runIt = () => sluice(['run', file, '--config', config, '--lake', lake, '--json']);
    await write('old');
    expect(JSON.parse(runIt().stdout).status).toBe('reconciled');
    await write('new');
    const rerun = runIt();
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout).status).toBe('reconciled');
    expect(queryValue(lake, 'SELECT label FROM in_place')).toBe('new');
    // Unchanged since: not read again.
    expect(JSON.parse(runIt().stdout)).toMatchObject({ status: 'unchanged', read: false });
  });

  it('replaces a source by its new version, atomically, and keeps the old one in the history views', async () => {
    const lake = join(tmp.dir, 'version-lake');
    const file = join(tmp.dir, 'versioned.json.gz');
    await copyFile(join(tmp.dir, 'b.json.gz'), file);
    const v1 = JSON.parse(sluice(run(file, lake)).stdout);
    await copyFile(join(tmp.dir, 'a.json.gz'), `${file}.new`);
    await rename(`${file}.new`, file);
    const v2Run = sluice(run(file, lake));
    expect(v2Run.status, v2Run.stderr).toBe(0);
    const v2 = JSON.parse(v2Run.stdout);
    expect(v2).toMatchObject({ status: 'reconciled', replaced: v1.version });
    expect(v2.source.id).toBe(v1.source.id);
    expect(count(lake, 'negotiated_prices')).toBe(facts.a);
    expect(count(lake, 'files')).toBe(1);
    const history = sluice([
      'query',
      'SELECT _version, _is_current, count(*) AS n FROM negotiated_prices_history GROUP BY ALL ORDER BY n',
      '--lake',
      lake,
      '--json',
    ]);
    expect(
      history.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { _version: v1.version, _is_current: false, n: facts.b },
      { _version: v2.version, _is_current: true, n: facts.a },
    ]);
    // Back to the first bytes: that version is current again as it was committed. Its files and version
    // record are not rewritten (its rows name the run that committed them), and the summary says so.
    const committedFiles = () =>
      readdirSync(join(lake, 'silver'), { recursive: true, encoding: 'utf8' })
        .filter((path) => path.includes(`version=${v1.version}`) && path.endsWith('.parquet'))
        .sort()
        .map((path) => [
          path,
          createHash('sha256')
            .update(readFileSync(join(lake, 'silver', path)))
            .digest('hex'),
        ]);
    const versionRecord = () =>
      readFileSync(
        join(lake, '_sources', 'tic-in-network', `source=${v1.source.id}`, 'versions', `${v1.version}.json`),
        'utf8',
      );
    const [filesBefore, recordBefore] = [committedFiles(), versionRecord()];
    expect(filesBefore.length).toBeGreaterThan(0);
    await copyFile(join(tmp.dir, 'b.json.gz'), file);
    const back = sluice(['run', file, '-d', 'tic-in-network', '--lake', lake, '-q']);
    expect(back.status, back.stderr).toBe(0);
    expect(back.stdout).toContain(`version     ${v1.version} is current again, as committed at `);
    expect(back.stdout).toContain(`(replaced ${v2.version}): the source went back to these bytes`);
    expect(count(lake, 'negotiated_prices')).toBe(facts.b);
    expect(committedFiles()).toEqual(filesBefore);
    expect(versionRecord()).toBe(recordBefore);
    const current = sluice([
      'query',
      'SELECT DISTINCT _run_id FROM negotiated_prices',
      '--lake',
      lake,
      '--json',
    ]);
    expect(JSON.parse(current.stdout.trim())._run_id).toBe(v1.runId);
    // And forward again to the second: the same, the other way.
    await copyFile(join(tmp.dir, 'a.json.gz'), file);
    const forward = JSON.parse(sluice(run(file, lake)).stdout);
    expect(forward).toMatchObject({ status: 'reconciled', version: v2.version, replaced: v1.version });
    expect(forward.restoredAt).toBeDefined();
    expect(count(lake, 'negotiated_prices')).toBe(facts.a);
  }, 240_000);

  it('keeps two URLs with the same file name apart, fetched at once', async () => {
    const bodies = new Map([
      [
        '/payer-a/in-network.json',
        await readFile(join(TIC_EXAMPLES, 'in-network-rates-bundle-single-plan-sample.json')),
      ],
      ['/payer-b/in-network.json', await readFile(join(TIC_EXAMPLES, 'in-network-rates-no-npi.json'))],
    ]);
    const answered: number[] = [];
    const server: Server = createServer((req, res) => {
      const body = bodies.get(req.url ?? '');
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
      if (req.headers['if-none-match'] === etag) {
        answered.push(304);
        res.writeHead(304, { etag }).end();
        return;
      }
      answered.push(200);
      // Slow enough that the two downloads overlap.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, etag });
      setTimeout(() => res.end(body), 300);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const lake = join(tmp.dir, 'url-lake');
      const landing = join(tmp.dir, 'url-landing');
      const flags = ['--landing', landing, '--allow-http', '--allow-loopback'];
      const runs = [...bodies.keys()].map((path) =>
        start(run(`http://127.0.0.1:${port}${path}`, lake, ...flags)),
      );
      const results = await Promise.all(runs.map((r) => r.done));
      const summaries = results.map((r) => {
        expect(r.status, r.stderr).toBe(0);
        return JSON.parse(r.stdout);
      });
      expect(summaries.map((s) => s.status)).toEqual(['reconciled', 'reconciled']);
      expect(summaries[0].source.id).not.toBe(summaries[1].source.id);
      expect(summaries.map((s) => s.source.url)).toEqual(
        [...bodies.keys()].map((p) => `http://127.0.0.1:${port}${p}`),
      );
      // Each source's silver holds its own file's rows.
      const plans = sluice(['query', 'SELECT plan_name FROM files ORDER BY 1', '--lake', lake, '--json']);
      const expected = [...bodies.values()].map((b) => JSON.parse(b.toString()).plan_name).sort();
      expect(
        plans.stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).plan_name),
      ).toEqual(expected);
      // The header `version` column keeps the file's own value (not a folder name's).
      const versions = sluice(['query', 'SELECT DISTINCT version FROM files', '--lake', lake, '--json']);
      expect(JSON.parse(versions.stdout.trim()).version).toBe(
        JSON.parse([...bodies.values()][0]!.toString()).version,
      );

      // Again: each server says "not modified" (304) to the stored ETag; nothing is fetched or rebuilt.
      expect(answered).toEqual([200, 200]);
      for (const path of bodies.keys()) {
        // Not spawnSync: the server runs in this process's event loop.
        const again = await start(run(`http://127.0.0.1:${port}${path}`, lake, ...flags)).done;
        expect(again.status, again.stderr).toBe(0);
        expect(JSON.parse(again.stdout)).toMatchObject({ status: 'unchanged', read: false });
      }
      expect(answered).toEqual([200, 200, 304, 304]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('shows the previous version, complete, after a kill before the commit; the rerun reuses committed bronze', async () => {
    const lake = join(tmp.dir, 'killed-lake');
    const file = join(tmp.dir, 'killed.json.gz');
    await copyFile(join(tmp.dir, 'b.json.gz'), file);
    expect(sluice(run(file, lake)).status).toBe(0);
    await copyFile(join(tmp.dir, 'a.json.gz'), file);
    // Not --json: the stages announce themselves on stderr ("silver merge…").
    const doomed = start(['run', file, '-d', 'tic-in-network', '--lake', lake]);
    await until(() => /silver merge…|reconcile…/.test(doomed.stderr()), 'the run to reach its merge');
    doomed.child.kill('SIGKILL');
    await doomed.done;
    // Killed before its reconciliation passed: readers see the previous version, whole.
    expect(count(lake, 'negotiated_prices')).toBe(facts.b);
    expect(count(lake, 'files')).toBe(1);
    const rerun = sluice(run(file, lake));
    expect(rerun.status, rerun.stderr).toBe(0);
    const summary = JSON.parse(rerun.stdout);
    expect(summary).toMatchObject({ status: 'reconciled', resumed: true, slices: 0 });
    expect(count(lake, 'negotiated_prices')).toBe(facts.a);
  });

  it('cdc: a new version of a source replaces its events in the merged state, other sources stay', async () => {
    const lake = join(tmp.dir, 'cdc-lake');
    const config = join(tmp.dir, 'accounts.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'accounts',
        format: 'ndjson',
        silver: {
          table: 'accounts',
          columns: [
            { name: 'id', type: 'integer' },
            { name: 'seq', type: 'integer' },
            { name: 'op', type: 'string' },
            { name: 'owner', type: 'string' },
          ],
          primaryKey: ['id'],
          orderingColumn: 'seq',
          load: 'cdc',
        },
      }),
    );
    const events = (rows: [number, number, string, string][]) =>
      rows.map(([id, seq, op, owner]) => JSON.stringify({ id, seq, op, owner })).join('\n');
    const daily = join(tmp.dir, 'daily.ndjson');
    const other = join(tmp.dir, 'other.ndjson');
    const cdc = (file: string) => sluice(['run', file, '--config', config, '--lake', lake, '--json']);
    await writeFile(other, events([[9, 1, 'insert', 'zoe']]));
    expect(cdc(other).status).toBe(0);
    await writeFile(
      daily,
      events([
        [1, 1, 'insert', 'ann'],
        [2, 1, 'insert', 'bob'],
        [3, 1, 'insert', 'cy'],
      ]),
    );
    expect(cdc(daily).status).toBe(0);
    const state = () =>
      sluice([
        'query',
        'SELECT id, owner FROM accounts__accounts_current ORDER BY id',
        '--lake',
        lake,
        '--json',
      ])
        .stdout.trim()
        .split('\n')
        .map((line) => JSON.parse(line));
    expect(state()).toEqual([
      { id: 1, owner: 'ann' },
      { id: 2, owner: 'bob' },
      { id: 3, owner: 'cy' },
      { id: 9, owner: 'zoe' },
    ]);
    // The publisher corrects the file: account 3 was never there, bob is bea. Its events replace the
    // first version's (a fold on top would keep 3); the other source's stay.
    await writeFile(
      daily,
      events([
        [1, 1, 'insert', 'ann'],
        [2, 1, 'insert', 'bea'],
      ]),
    );
    const corrected = cdc(daily);
    expect(corrected.status, corrected.stderr).toBe(0);
    expect(JSON.parse(corrected.stdout).replaced).toBeDefined();
    expect(state()).toEqual([
      { id: 1, owner: 'ann' },
      { id: 2, owner: 'bea' },
      { id: 9, owner: 'zoe' },
    ]);
  });

  it('leaves the previous version current when a new version fails its reconciliation', async () => {
    const lake = join(tmp.dir, 'failed-lake');
    const sourceDir = join(tmp.dir, 'failed-source');
    const store = fileStore(sourceDir);
    await store.write('in-network.json.gz', await readFile(join(tmp.dir, 'b.json.gz')));
    const deps = {
      source: store,
      lake: fileStore(lake),
      clock: fixedClock,
      deadLetters: new FolderDeadLetterStore(lake),
      retryIntervalMs: 0,
    };
    const input = { dataset: builtInDataset('tic-in-network'), sourceKey: 'in-network.json.gz' };
    const first = await runWorkflowLocally(input, deps);
    if (first.outcome !== 'committed') throw new Error('expected the first version to commit');
    await store.write('in-network.json.gz', await readFile(join(tmp.dir, 'a.json.gz')));
    // Between silver and reconciliation, a bronze part of the new version loses a record.
    const failed = await runWorkflowLocally(input, {
      ...deps,
      onStage: (stage) => {
        if (stage !== 'reconcile') return;
        const part = readdirSync(join(lake, 'bronze'), { recursive: true })
          .map(String)
          .find((f) => f.includes('/in_network/part-') && !f.includes(`run=${first.bronze.runId}/`))!;
        const path = join(lake, 'bronze', part);
        const lines = gunzipSync(readFileSync(path)).toString().split('\n');
        lines.splice(0, 1);
        writeFileSync(path, gzipSync(lines.join('\n')));
      },
    }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(ReconciliationError);
    expect(count(lake, 'negotiated_prices')).toBe(facts.b);
    expect(count(lake, 'negotiated_prices_history')).toBe(facts.b);
  });
});
