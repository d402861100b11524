import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { generateFile, listFiles, tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

/**
 * The whole pipeline, killed with SIGKILL at seeded random moments of every stage (parsing and its
 * checkpoints, silver groups, the merge, reconciliation and the commit), each time run again by the same
 * command: between kills a reader sees the source whole or not at all, and the final lake holds the same
 * bytes as a run that was never interrupted. The stages announce themselves on stderr ("silver…",
 * "silver merge…", "reconcile…"); a kill lands a seeded delay after one of them, so it hits that stage
 * however fast the machine is.
 */

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');
/**
 * Where each run is killed, in the order a resumed run reaches the stages (a rerun skips what is done):
 * twice while parsing, twice in silver groups, in the merge, in reconciliation or its commit. The merge
 * and reconciliation of a small file are short, so their delays are too.
 */
const KILL_POINTS = [
  { stage: 'parse', anchor: /progress:/, maxDelayMs: 400 },
  { stage: 'parse', anchor: /progress:/, maxDelayMs: 400 },
  { stage: 'silver', anchor: /silver…/, maxDelayMs: 400 },
  { stage: 'silver', anchor: /silver…/, maxDelayMs: 400 },
  { stage: 'merge', anchor: /silver merge…/, maxDelayMs: 150 },
  { stage: 'reconcile', anchor: /reconcile…/, maxDelayMs: 60 },
] as const;

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function sluice(args: string[]): Finished {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

/**
 * Runs `args`, killing the process `delayMs` after `anchor` shows on its stderr; resolves at exit with
 * the processes it had started at that moment (`--lambda-limits` invocations).
 */
function runAndKill(
  args: string[],
  anchor: RegExp,
  delayMs: number,
): Promise<{ killed: boolean; children: number[] }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let killed = false;
  let children: number[] = [];
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
    if (!killed && anchor.test(stderr)) {
      killed = true;
      setTimeout(async () => {
        children = await childrenOf(child.pid!);
        child.kill('SIGKILL');
      }, delayMs);
    }
  });
  return new Promise((resolve) =>
    child.once('exit', (_code, signal) => resolve({ killed: signal === 'SIGKILL', children })),
  );
}

/** The processes whose parent is `pid` (Linux: from /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

/** Whether process `pid` still runs (a zombie, whose parent has not reaped it, has ended). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Drops what differs between two equal runs by nature: times, durations, costs, and lease holders. */
function withoutTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutTimes);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(
          ([key, v]) =>
            !/(At|timings|durationMs|Ms|^cost)$/.test(key) && !(typeof v === 'string' && ISO_TIME.test(v)),
        )
        .map(([key, v]) => [key, withoutTimes(v)]),
    );
  }
  return value;
}
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/;

/** What a lake holds, file by file: data files by sha256, JSON records without their times. */
async function lakeContents(lake: string): Promise<Record<string, unknown>> {
  const contents: Record<string, unknown> = {};
  for (const file of await listFiles(lake)) {
    // Who held the source last, and the runner's scratch, are not output; the run report is a page of
    // the run's times (its numbers come from the records compared here).
    if (
      file.endsWith('/report.html') ||
      file.endsWith('/lease.json') ||
      file.startsWith('.sluice-tmp') ||
      file.startsWith('_dead_letters/') ||
      file.startsWith('_usage/')
    )
      continue;
    const bytes = await readFile(join(lake, file));
    contents[file] = file.endsWith('.json')
      ? withoutTimes(JSON.parse(bytes.toString('utf8')))
      : createHash('sha256').update(bytes).digest('hex');
  }
  return contents;
}

/**
 * In process (ingest sliced every second), and as Lambda runs it (`--lambda-limits`: each invocation a
 * process of its own, which must end with the run that started it).
 */
const MODES = [
  { mode: 'in process', args: ['--slice-seconds', '1'], killPoints: KILL_POINTS, invocationProcesses: false },
  {
    mode: 'under --lambda-limits',
    args: ['--lambda-limits', 'timeout=300,tmp=64'],
    killPoints: KILL_POINTS,
    invocationProcesses: true,
  },
] as const;

describe.each(MODES)(
  'sluice run $mode, killed at seeded random points of every stage and rerun',
  ({ args, killPoints, invocationProcesses }) => {
    let tmp: Awaited<ReturnType<typeof tempDir>>;
    let file: string;
    let config: string;
    let prices: number;
    beforeAll(async () => {
      tmp = await tempDir('sluice-kill-drill-');
      const generated = await generateFile(tmp.dir, 'rates.json.gz', { seed: 77, targetBytes: 4_000_000 });
      file = join(tmp.dir, 'rates.json.gz');
      prices = generated.facts.negotiated_prices;
      // The built-in dataset in small parts and segments: several slices, silver groups and checkpoints.
      const base = builtInDataset('tic-in-network');
      config = join(tmp.dir, 'tic-in-network.json');
      await writeFile(
        config,
        JSON.stringify({
          ...base,
          bronze: { ...base.bronze, segmentBytes: 512 * 1024, partMaxRecords: 150 },
        }),
      );
    });
    afterAll(async () => tmp.cleanup());

    const run = (lake: string) => ['run', file, '--config', config, '--lake', lake, ...args];

    /** The source as a reader sees it: all of its rows, or (before the first commit) no table at all. */
    function visiblePrices(lake: string): number | 'none' {
      const result = sluice([
        'query',
        'SELECT count(*) AS n FROM negotiated_prices',
        '--lake',
        lake,
        '--json',
      ]);
      if (result.status !== 0) return 'none';
      return Number(JSON.parse(result.stdout.trim().split('\n')[0]!).n);
    }

    it('never shows half a run, and ends with the bytes of an uninterrupted run', async () => {
      const reference = join(tmp.dir, 'reference');
      const clean = sluice([...run(reference), '--json']);
      expect(clean.status, clean.stderr).toBe(0);
      expect(visiblePrices(reference)).toBe(prices);

      const lake = join(tmp.dir, 'killed');
      const random = seededRandom(20261207);
      const killedIn = new Set<string>();
      let invocationsKilled = 0;
      for (const point of killPoints) {
        const { killed, children } = await runAndKill(
          run(lake),
          point.anchor,
          Math.floor(random() * point.maxDelayMs),
        );
        if (killed) killedIn.add(point.stage);
        invocationsKilled += children.length;
        // An invocation the killed run had started ends with it: none writes beside the rerun.
        for (let waited = 0; waited < 600 && (await anyRunning(children)); waited++) await delay(50);
        expect(await anyRunning(children)).toBe(false);
        expect([prices, 'none']).toContain(visiblePrices(lake));
      }
      // The drill means something only if runs were in fact killed in most stages.
      expect([...killedIn].length, [...killedIn].join(', ')).toBeGreaterThanOrEqual(3);
      // Under limits, kills caught invocations running in their own processes (so the check above bit).
      expect(invocationsKilled > 0).toBe(invocationProcesses);

      const rerun = sluice([...run(lake), '--json']);
      expect(rerun.status, rerun.stderr).toBe(0);
      expect(['reconciled', 'unchanged']).toContain(JSON.parse(rerun.stdout).status);
      expect(visiblePrices(lake)).toBe(prices);
      expect(await lakeContents(lake)).toEqual(await lakeContents(reference));
    }, 900_000);
  },
);

async function anyRunning(pids: readonly number[]): Promise<boolean> {
  for (const pid of pids) if (await running(pid)) return true;
  return false;
}
