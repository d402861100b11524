import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { ObjectStore } from '../../shared/ports/object-store.ts';

/**
 * The machinery of the SIGKILL drills (tests/integration/kill-drill.test.ts on a folder lake,
 * tests/integration/limits-drill.test.ts on moto_server's S3): run `sluice`, kill it a seeded delay after
 * an anchor shows on its stderr, check that no invocation process it started outlives it, and compare
 * what two lakes hold.
 */

/**
 * Where each run is killed, in the order a resumed run reaches the stages (a rerun skips what is done):
 * twice while parsing, twice in silver groups, in the merge, in reconciliation or its commit. The merge
 * and reconciliation of a small file are short, so their delays are too.
 */
export const KILL_POINTS = [
  { stage: 'parse', anchor: /progress:/, maxDelayMs: 400 },
  { stage: 'parse', anchor: /progress:/, maxDelayMs: 400 },
  { stage: 'silver', anchor: /silver…/, maxDelayMs: 400 },
  { stage: 'silver', anchor: /silver…/, maxDelayMs: 400 },
  { stage: 'merge', anchor: /silver merge…/, maxDelayMs: 150 },
  { stage: 'reconcile', anchor: /reconcile…/, maxDelayMs: 60 },
] as const;

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');

export interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `sluice args` to its end (`env`: added to this process's environment). Asynchronously: a
 * moto_server this process started writes its request log into a pipe that this process reads, and would
 * block on it, the run with it, while a synchronous spawn held the event loop.
 */
export function sluice(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * Runs `sluice args`, killing the process `delayMs` after `anchor` shows on its stderr; resolves at exit
 * with the processes it had started at that moment (`--lambda-limits` invocations).
 */
export function runAndKill(
  args: readonly string[],
  anchor: RegExp,
  delayMs: number,
  env: NodeJS.ProcessEnv = {},
): Promise<{ killed: boolean; children: number[]; status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
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
    child.once('exit', (status, signal) =>
      resolve({ killed: signal === 'SIGKILL', children, status, stderr }),
    ),
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

export async function anyRunning(pids: readonly number[]): Promise<boolean> {
  for (const pid of pids) if (await running(pid)) return true;
  return false;
}

/** Waits up to 30 s for the processes a killed run had started to end; whether any still runs. */
export async function outlived(pids: readonly number[]): Promise<boolean> {
  for (let waited = 0; waited < 600 && (await anyRunning(pids)); waited++) await delay(50);
  return anyRunning(pids);
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

/**
 * What a lake (a folder or an S3 prefix) holds, object by object: data by sha256, JSON records without
 * their times. Who held a source last, scratch, dead letters and usage records are not output; the run
 * report is a page of the run's times (its numbers come from the records compared here).
 */
export async function lakeContents(lake: ObjectStore): Promise<Record<string, unknown>> {
  const contents: Record<string, unknown> = {};
  const keys: string[] = [];
  for await (const { key } of lake.list('')) keys.push(key);
  for (const key of keys.sort()) {
    if (
      key.endsWith('/report.html') ||
      key.endsWith('/lease.json') ||
      key.startsWith('.sluice-tmp') ||
      key.startsWith('_dead_letters/') ||
      key.startsWith('_usage/')
    )
      continue;
    const chunks: Buffer[] = [];
    for await (const chunk of await lake.read(key)) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    contents[key] = key.endsWith('.json')
      ? withoutTimes(JSON.parse(bytes.toString('utf8')))
      : createHash('sha256').update(bytes).digest('hex');
  }
  return contents;
}
