import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { sourceLeaseKey } from '../../shared/lake/keys.ts';
import {
  DuplicateRunError,
  holdSourceLease,
  LeaseLostError,
  releaseSourceLease,
  SourceBusyError,
  SourceLease,
  thisLeaseProcess,
} from '../../shared/lake/source-lease.ts';
import type { Clock } from '../../shared/ports/clock.ts';
import { tempDir } from '../helpers/lake.ts';

/** A clock the test moves. */
function movableClock(start = Date.parse('2026-12-01T00:00:00Z')): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => new Date(now), advance: (ms) => (now += ms) };
}

/** Rewrites the test source's lease with `change`, as a killed process or a hand edit would leave it. */
async function editLease(lake: FileObjectStore, change: Record<string, unknown>): Promise<void> {
  const key = sourceLeaseKey('d', 'file.json-abc');
  const chunks: Buffer[] = [];
  for await (const chunk of await lake.read(key)) chunks.push(chunk as Buffer);
  const lease = SourceLease.parse(JSON.parse(Buffer.concat(chunks).toString()));
  const info = await lake.head(key);
  await lake.write(key, JSON.stringify({ ...lease, ...change }), { ifMatch: info!.etag });
}

describe('Function: holdSourceLease', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-lease-');
  });
  afterAll(async () => tmp.cleanup());

  const ref = (holder: string, runId?: string) => ({
    dataset: 'd',
    sourceId: 'file.json-abc',
    location: '/data/file.json',
    holder,
    ...(runId && { runId }),
  });

  it('lets exactly one of many racing runs take a free source', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/race`);
    const deps = { lake, clock: movableClock() };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => holdSourceLease(ref(`run-${i}`), deps)),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const lost of outcomes.filter((o) => o.status === 'rejected')) {
      expect((lost as PromiseRejectedResult).reason).toBeInstanceOf(SourceBusyError);
    }
  });

  it('renews for its holder, says who holds it to others, and frees it on release', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/renew`);
    const clock = movableClock();
    const deps = { lake, clock, ttlMs: 60_000 };
    const first = await holdSourceLease(ref('a'), deps);
    clock.advance(30_000);
    const renewed = await holdSourceLease(ref('a', 'run-1'), deps);
    expect(renewed.acquiredAt).toBe(first.acquiredAt);
    expect(Date.parse(renewed.expiresAt)).toBe(Date.parse(first.expiresAt) + 30_000);
    const busy = await holdSourceLease(ref('b'), deps).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(SourceBusyError);
    expect((busy as Error).message).toContain(
      `another run of /data/file.json is in progress since ${first.acquiredAt} (a)`,
    );
    // The same object (run id) held by another: a duplicate run, which ends cleanly on AWS.
    expect(await holdSourceLease(ref('c', 'run-1'), deps).catch((e: unknown) => e)).toBeInstanceOf(
      DuplicateRunError,
    );
    await releaseSourceLease(ref('b'), deps); // not b's: nothing happens
    expect(await holdSourceLease(ref('b'), deps).catch((e: unknown) => e)).toBeInstanceOf(SourceBusyError);
    await releaseSourceLease(ref('a'), deps);
    expect((await holdSourceLease(ref('b'), deps)).holder).toBe('b');
  });

  it('takes over an expired lease, and the late holder learns that it lost it', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/expired`);
    const clock = movableClock();
    const deps = { lake, clock, ttlMs: 60_000 };
    await holdSourceLease(ref('stalled'), deps);
    clock.advance(61_000);
    const taken = await holdSourceLease(ref('next'), deps);
    expect(taken.holder).toBe('next');
    const late = await holdSourceLease(ref('stalled'), deps, { mustHold: true }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LeaseLostError);
    expect((late as Error).message).toContain('lost to next');
  });

  it('tells a late holder it lost the lease even when the run that took it over has let go of it', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/taken-and-released`);
    const clock = movableClock();
    const deps = { lake, clock, ttlMs: 60_000 };
    await holdSourceLease(ref('stalled'), deps);
    clock.advance(61_000);
    // Another run takes the expired lease over, commits, and releases it: the lease is free again.
    await holdSourceLease(ref('next'), deps);
    await releaseSourceLease(ref('next'), deps);
    // Free, but not the late holder's any more: it may not take it again to commit over the other's work.
    const late = await holdSourceLease(ref('stalled'), deps, { mustHold: true }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(LeaseLostError);
    expect((late as Error).message).toContain('lost to next');
    // A holder whose own lease expired, untaken, still holds it; a new run takes a free lease as before.
    await holdSourceLease(ref('fresh'), deps);
    clock.advance(61_000);
    expect((await holdSourceLease(ref('fresh'), deps, { mustHold: true })).holder).toBe('fresh');
  });

  it('frees a lease at once when its holder is known to have ended (a failed execution), and only then', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/ended`);
    const clock = movableClock();
    const ended = new Set<string>();
    const asked: string[] = [];
    const liveness = {
      hasEnded: async (holder: string) => {
        asked.push(holder);
        return ended.has(holder);
      },
    };
    const deps = { lake, clock, liveness };
    await holdSourceLease(ref('execution-1'), deps);
    // Still running: the second execution must wait.
    await expect(holdSourceLease(ref('execution-2'), deps)).rejects.toBeInstanceOf(SourceBusyError);
    expect(asked).toEqual(['execution-1']);
    // Failed without releasing: its lease, not yet expired, binds no one.
    ended.add('execution-1');
    const taken = await holdSourceLease(ref('execution-2'), deps);
    expect(taken.holder).toBe('execution-2');
    // The ended holder cannot come back to commit: the new holder runs (liveness says so).
    await expect(holdSourceLease(ref('execution-1'), deps, { mustHold: true })).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    // A holder's own lease, or a released one, is never asked about.
    asked.length = 0;
    await holdSourceLease(ref('execution-2'), deps);
    await releaseSourceLease(ref('execution-2'), deps);
    await holdSourceLease(ref('execution-3'), deps);
    expect(asked).toEqual([]);
  });

  it('takes over a lease whose expiry does not parse, as an expired one', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/bad-expiry`);
    const deps = { lake, clock: movableClock() };
    await holdSourceLease(ref('edited'), deps);
    await editLease(lake, { expiresAt: 'tomorrow' });
    expect((await holdSourceLease(ref('other'), deps)).holder).toBe('other');
  });

  it('frees a local lease at once when its process is gone (kill -9)', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/dead`);
    const deps = { lake, clock: movableClock(), localProcess: thisLeaseProcess() };
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((resolve) => child.once('spawn', resolve));
    await holdSourceLease(ref('killed'), deps);
    // The lease as the killed process would have left it: its pid.
    await editLease(lake, { pid: child.pid });
    expect(await holdSourceLease(ref('other'), deps).catch((e: unknown) => e)).toBeInstanceOf(
      SourceBusyError,
    );
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    expect((await holdSourceLease(ref('other'), deps)).holder).toBe('other');
  });

  // A run killed with SIGKILL leaves its invocation processes (`--lambda-limits`) to PID 1, which in many
  // containers (this machine's too) never reaps them: a zombie is signalable, but has ended.
  it.skipIf(!existsSync('/proc/self/stat'))(
    'frees a local lease whose process is a zombie (ended, not reaped)',
    async () => {
      const lake = new FileObjectStore(`${tmp.dir}/zombie`);
      const deps = { lake, clock: movableClock(), localProcess: thisLeaseProcess() };
      // The inner shell exits once its parent has become `sleep` (exec), which never reaps it.
      const parent = spawn('sh', ['-c', 'sh -c "sleep 0.3" & echo $!; exec sleep 60']);
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', resolve)));
      try {
        for (
          let i = 0;
          i < 100 && !(await readFile(`/proc/${zombie}/stat`, 'utf8').catch(() => '')).includes(') Z');
          i++
        )
          await delay(20);
        expect(await readFile(`/proc/${zombie}/stat`, 'utf8')).toContain(') Z');
        await holdSourceLease(ref('killed'), deps);
        await editLease(lake, { pid: zombie });
        expect((await holdSourceLease(ref('other'), deps)).holder).toBe('other');
      } finally {
        parent.kill('SIGKILL');
      }
    },
  );
});
