import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { PipelineError, PreconditionFailedError } from '../errors.ts';
import type { Clock } from '../ports/clock.ts';
import type { ObjectStore } from '../ports/object-store.ts';
import type { RunLiveness } from '../ports/run-liveness.ts';
import { sourceLeaseKey } from './keys.ts';
import { readJsonIfValid } from './read-json.ts';

/**
 * One run at a time per source. A run holds a lease on its (dataset, source): a small object created
 * with a conditional write (S3 `If-None-Match: *`, an exclusive create locally), naming the holder and
 * an expiry. The holder renews it at every slice and stage and releases it at the end; a second run of
 * the same source finds it held and stops (or waits) instead of interleaving. A lease whose holder died
 * expires, and the next run takes it over with a conditional replace (`If-Match` on its etag), so two
 * runs can never both take it. A holder known to have ended (a killed local process, a failed, timed-out
 * or aborted execution: `LeaseDeps.liveness`) frees its lease at once. Every write is conditional on the etag read just before: whoever loses a
 * race reads again and decides again.
 */

export const SourceLease = z.object({
  leaseVersion: z.literal(1),
  dataset: z.string(),
  sourceId: z.string(),
  /** Where the source is: for messages. */
  location: z.string(),
  /** The stored object the holder works on (its bronze run id), once known. */
  runId: z.string().optional(),
  /** The execution id (AWS) or the local run's id: only the holder may renew or release. */
  holder: z.string(),
  acquiredAt: z.string(),
  renewedAt: z.string(),
  expiresAt: z.string(),
  /** Set when the holder let go: the lease is free. */
  releasedAt: z.string().optional(),
  /** A local holder's host and process: once that process is gone, its lease is free at once. */
  host: z.string().optional(),
  pid: z.number().int().optional(),
});
export type SourceLease = z.infer<typeof SourceLease>;

/** How long a lease lasts unless renewed: longer than one Lambda invocation (15 min) between renewals. */
export const DEFAULT_LEASE_TTL_MS = 20 * 60 * 1000;
/** Lambda's longest invocation: the most time between two points where a run renews its lease. */
export const LONGEST_INVOCATION_MS = 15 * 60 * 1000;

/** Another run holds the source. Not a failure of the data: retry later, or wait (`sluice run --wait`). */
export class SourceBusyError extends PipelineError {
  override name = 'SourceBusyError';
  constructor(readonly lease: SourceLease) {
    super(
      `another run of ${lease.location} is in progress since ${lease.acquiredAt} (${lease.holder}); ` +
        `its lease expires at ${lease.expiresAt} unless renewed. Wait for it to finish (sluice run --wait), ` +
        'or run again later.',
    );
  }
}

/**
 * Another run holds the source and works on this very object (same run id): once it is done, this run
 * would find the source unchanged. On AWS such an execution ends as `DuplicateRun` after its retries.
 */
export class DuplicateRunError extends SourceBusyError {
  override name = 'DuplicateRunError';
}

/** This run's lease was taken over (it was not renewed in time): its work must not be committed. */
export class LeaseLostError extends PipelineError {
  override name = 'LeaseLostError';
  constructor(location: string, holder: string, lease: SourceLease | undefined) {
    super(
      `the lease on ${location} held by ${holder} was lost${lease ? ` to ${lease.holder} at ${lease.acquiredAt}` : ''}: ` +
        'this run stopped without committing. Run it again.',
    );
  }
}

export interface LeaseRef {
  readonly dataset: string;
  readonly sourceId: string;
  readonly location: string;
  readonly holder: string;
  /** The stored object this run works on (`bronzeRunId`), when known. */
  readonly runId?: string;
}

/**
 * The process a local run's lease names: the run's own (the CLI's), also when one of its invocation
 * processes (`--lambda-limits`) writes the renewal; a lease naming the invocation's process would read as
 * free once that invocation ended, while the run goes on.
 */
export interface LeaseProcess {
  readonly host: string;
  readonly pid: number;
}

/** This process, as a lease names it. */
export function thisLeaseProcess(): LeaseProcess {
  return { host: hostname(), pid: process.pid };
}

export interface LeaseDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** @default DEFAULT_LEASE_TTL_MS */
  readonly ttlMs?: number;
  /** A local holder records its process, so a lease whose process died is free at once. */
  readonly localProcess?: LeaseProcess;
  /** Tells whether another holder has ended (on AWS: its execution is no longer running). */
  readonly liveness?: RunLiveness;
}

/** The lease deps of a stage, from the names stages give them (`localLease`, `runLiveness`). */
export function leaseDepsOf(deps: {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly localLease?: LeaseProcess;
  readonly runLiveness?: RunLiveness;
}): LeaseDeps {
  return { lake: deps.lake, clock: deps.clock, localProcess: deps.localLease, liveness: deps.runLiveness };
}

/** Conditional writes lost this many times in a row mean something is wrong with the store. */
const MAX_RACES = 8;

/**
 * Takes the source's lease for `ref.holder`, or renews it if the holder has it already (with `onlyIfDue`,
 * only once less than `LONGEST_INVOCATION_MS` of it is left). Throws
 * `SourceBusyError` if another holder has a live lease; with `mustHold` (a later stage of a run that took
 * the lease earlier), `LeaseLostError` if another holder has taken the lease since, whether that holder
 * still holds it or has let go of it already: the run must stop without committing.
 */
export async function holdSourceLease(
  ref: LeaseRef,
  deps: LeaseDeps,
  options: { readonly mustHold?: boolean; readonly onlyIfDue?: boolean } = {},
): Promise<SourceLease> {
  const key = sourceLeaseKey(ref.dataset, ref.sourceId);
  const ttlMs = deps.ttlMs ?? DEFAULT_LEASE_TTL_MS;
  for (let race = 0; race < MAX_RACES; race++) {
    const current = await readLease(deps.lake, key);
    const now = deps.clock.now();
    const lease = current?.lease;
    const ours = lease?.holder === ref.holder && !lease.releasedAt;
    // `onlyIfDue`: the many items of a Map renew the one lease of their run. A renewal is written only
    // once less than one invocation's longest time is left (after 5 of the 20 minutes): the next renewal
    // point (the next item or stage) comes within an invocation, so skipping never lets the lease lapse.
    // The others (and the losers of a race to write it) find it fresh and go on.
    if (options.onlyIfDue && ours && Date.parse(lease.expiresAt) - now.getTime() > LONGEST_INVOCATION_MS)
      return lease;
    // Bound by another run's lease unless it was released, expired, or its holder has ended.
    const bound = lease !== undefined && !ours && (await binds(lease, now, deps.liveness));
    // Lost: another run took it over (and may have committed and let go of it since). Taken again, this
    // run could commit over what the other committed meanwhile: it must stop instead. (No lease at all
    // hides no takeover, since leases are never removed: it is taken, as a first stage takes it.)
    if (options.mustHold && lease && lease.holder !== ref.holder) {
      throw new LeaseLostError(ref.location, ref.holder, lease);
    }
    if (lease && bound) {
      throw ref.runId !== undefined && lease.runId === ref.runId
        ? new DuplicateRunError(lease)
        : new SourceBusyError(lease);
    }
    const runId = ref.runId ?? (ours ? lease.runId : undefined);
    const next: SourceLease = {
      leaseVersion: 1,
      dataset: ref.dataset,
      sourceId: ref.sourceId,
      location: ref.location,
      ...(runId !== undefined && { runId }),
      holder: ref.holder,
      acquiredAt: ours ? lease.acquiredAt : now.toISOString(),
      renewedAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
      ...(deps.localProcess && { host: deps.localProcess.host, pid: deps.localProcess.pid }),
    };
    try {
      await deps.lake.write(key, JSON.stringify(next), {
        contentType: 'application/json',
        ...(current ? { ifMatch: current.etag } : { ifAbsent: true }),
      });
      return next;
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Someone wrote the lease between our read and our write: read it again and decide again.
    }
  }
  throw new PipelineError(`${key}: the lease kept changing under ${MAX_RACES} attempts to take it`);
}

/** Lets go of the lease if this holder has it; a lease taken over meanwhile is left alone. */
export async function releaseSourceLease(ref: LeaseRef, deps: LeaseDeps): Promise<void> {
  const key = sourceLeaseKey(ref.dataset, ref.sourceId);
  const current = await readLease(deps.lake, key);
  if (!current || current.lease.holder !== ref.holder || current.lease.releasedAt) return;
  const released: SourceLease = { ...current.lease, releasedAt: deps.clock.now().toISOString() };
  try {
    await deps.lake.write(key, JSON.stringify(released), {
      contentType: 'application/json',
      ifMatch: current.etag,
    });
  } catch (error) {
    if (!(error instanceof PreconditionFailedError)) throw error;
  }
}

/**
 * Holds the lease for a long local run: renews it every third of its lifetime until stopped. A renewal
 * that fails is reported to `onLost` (the run then must not commit: the next stage's `mustHold` check
 * fails it).
 */
export function keepSourceLease(
  ref: LeaseRef,
  deps: LeaseDeps,
  onLost: (error: Error) => void,
): { stop(): void } {
  const every = Math.max(1000, Math.floor((deps.ttlMs ?? DEFAULT_LEASE_TTL_MS) / 3));
  const timer = setInterval(() => {
    holdSourceLease(ref, deps, { mustHold: true }).catch((error: Error) => onLost(error));
  }, every);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * Whether another holder's lease binds this run: live (below), and its holder not known to have ended
 * (asked only of a live lease, so a finished run costs no call).
 */
async function binds(lease: SourceLease, now: Date, liveness: RunLiveness | undefined): Promise<boolean> {
  if (!isLive(lease, now)) return false;
  return !(await liveness?.hasEnded(lease.holder));
}

/** Whether a lease still binds others: not released, not expired, and (if local) its process alive. */
export function isLive(lease: SourceLease, now: Date): boolean {
  if (lease.releasedAt) return false;
  // An expiry that does not parse (a lease edited or written by something else) has passed: else the
  // lease would bind every run forever.
  if (!(Date.parse(lease.expiresAt) > now.getTime())) return false;
  if (lease.pid !== undefined && lease.host === hostname() && !processAlive(lease.pid)) return false;
  return true;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, it is someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !hasExited(pid);
}

/**
 * Whether process `pid`, though signalable, has ended: a zombie (Linux: state Z or X in /proc). A run
 * killed with SIGKILL leaves its invocation processes (`--lambda-limits`) to be reaped by PID 1, and a
 * container's PID 1 often reaps nothing: their lease would bind the rerun until it expired.
 */
function hasExited(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // Not Linux, or no /proc: signalable is alive.
  }
  // pid (comm) state …: comm may hold spaces and parentheses, so read after the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2)[0];
  return state === 'Z' || state === 'X';
}

async function readLease(
  lake: ObjectStore,
  key: string,
): Promise<{ lease: SourceLease; etag: string } | undefined> {
  const info = await lake.head(key);
  if (!info) return undefined;
  const read = await readJsonIfValid(lake, key, SourceLease);
  // An unreadable lease is treated as expired: it can be taken over (conditionally, on its etag).
  // (Removed between the two reads: the conditional write on its etag fails, and the caller reads again.)
  const lease: SourceLease = read ?? {
    leaseVersion: 1,
    dataset: '',
    sourceId: '',
    location: key,
    holder: '(unreadable lease)',
    acquiredAt: info.lastModified.toISOString(),
    renewedAt: info.lastModified.toISOString(),
    expiresAt: info.lastModified.toISOString(),
  };
  return { lease, etag: info.etag };
}
