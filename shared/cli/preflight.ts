import { open, stat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InsufficientSpaceError } from '../errors.ts';
import { formatBytes } from './format.ts';

/**
 * `sluice run`'s pre-flight disk check: before a local run starts, the free space of the lake and of the
 * scratch folder is compared with what the run will write, so that a disk too small fails at once with
 * the numbers instead of with ENOSPC hours later.
 *
 * What a run writes, per byte of uncompressed input, measured on a 100 MB generated TiC file (a 2 MB one
 * gave the same final size): the lake peaks at 0.54 (bronze parts 0.15 and silver 0.16 stay; silver's
 * `_work` files exist until the merge), scratch space (TMPDIR: DuckDB's Parquet files and spill) at 0.15.
 * The factors below add a margin to both.
 */
export const LAKE_BYTES_PER_INPUT_BYTE = 0.65;
export const SCRATCH_BYTES_PER_INPUT_BYTE = 0.25;
/** The gzip ratio assumed when the trailer cannot be trusted (JSON compresses 5–20×; this errs high). */
const ASSUMED_GZIP_RATIO = 8;
/** Above this compressed size the uncompressed size may exceed 4 GiB, where gzip's ISIZE wraps around. */
const ISIZE_TRUSTED_BELOW = 256 * 1024 * 1024;

/** The uncompressed size of a local source, exact or estimated, and how it was found. */
export interface InputSize {
  readonly bytes: number;
  readonly basis: string;
}

/**
 * The uncompressed size of a file: its size, or for gzip the ISIZE trailer (the last member's size mod
 * 2^32) as a hint — trusted only when it is plausible (at least the compressed size) and cannot have
 * wrapped; otherwise (and never below it for large files) an assumed 8× ratio.
 */
export async function estimateInputSize(path: string): Promise<InputSize> {
  const { size } = await stat(path);
  const handle = await open(path, 'r');
  try {
    const magic = Buffer.alloc(2);
    await handle.read(magic, 0, 2, 0);
    if (size < 20 || magic[0] !== 0x1f || magic[1] !== 0x8b) return { bytes: size, basis: 'file size' };
    const trailer = Buffer.alloc(4);
    await handle.read(trailer, 0, 4, size - 4);
    const isize = trailer.readUInt32LE(0);
    const assumed = size * ASSUMED_GZIP_RATIO;
    if (isize >= size && size < ISIZE_TRUSTED_BELOW) return { bytes: isize, basis: 'gzip trailer' };
    return {
      bytes: Math.max(assumed, isize),
      basis: `gzip, assumed ${ASSUMED_GZIP_RATIO}× (its trailer cannot say beyond 4 GiB)`,
    };
  } finally {
    await handle.close();
  }
}

/** A folder a run writes to, and how much. */
export interface SpaceNeed {
  readonly role: string;
  readonly folder: string;
  readonly bytes: number;
}

/** What `checkFreeSpace` needs of the filesystem: Node's `fs.statfs`, or a fake in tests. */
export type StatFs = (path: string) => Promise<{ bavail: number; bsize: number }>;
export type StatDev = (path: string) => Promise<{ dev: number }>;

/** The folder itself, or its nearest ancestor that exists (the lake may not exist yet). */
async function existingAncestor(folder: string, statDev: StatDev): Promise<{ path: string; dev: number }> {
  let path = resolve(folder);
  for (;;) {
    try {
      return { path, dev: (await statDev(path)).dev };
    } catch (error) {
      const parent = dirname(path);
      if (parent === path) throw error;
      path = parent;
    }
  }
}

/**
 * Fail with InsufficientSpaceError (exit 2: nothing ran) when a filesystem has less free space than the
 * folders on it need together (the lake and TMPDIR are often one disk), naming each number and the fix.
 */
export async function checkFreeSpace(
  needs: readonly SpaceNeed[],
  input: InputSize,
  fs: { statfs: StatFs; stat: StatDev } = { statfs, stat },
): Promise<void> {
  const byDevice = new Map<number, { path: string; needs: SpaceNeed[] }>();
  for (const need of needs) {
    const { path, dev } = await existingAncestor(need.folder, fs.stat);
    const entry = byDevice.get(dev) ?? { path, needs: [] };
    entry.needs.push(need);
    byDevice.set(dev, entry);
  }
  const problems: string[] = [];
  for (const { path, needs: onDevice } of byDevice.values()) {
    const { bavail, bsize } = await fs.statfs(path);
    const free = bavail * bsize;
    const needed = onDevice.reduce((sum, n) => sum + n.bytes, 0);
    if (free >= needed) continue;
    const parts = onDevice.map((n) => `${n.role} ${n.folder}: ${formatBytes(n.bytes)}`).join(', ');
    problems.push(
      `${formatBytes(free)} free on the filesystem of ${path}, about ${formatBytes(needed)} needed (${parts})`,
    );
  }
  if (problems.length === 0) return;
  throw new InsufficientSpaceError(
    `not enough free disk space for this run: ${problems.join('; ')}. The estimate is for ` +
      `${formatBytes(input.bytes)} of uncompressed input (${input.basis}): the lake takes about ` +
      `${LAKE_BYTES_PER_INPUT_BYTE}× that at its peak, scratch space ${SCRATCH_BYTES_PER_INPUT_BYTE}×. ` +
      'Free space, point --lake (or TMPDIR, for scratch) at a larger disk, or run with --no-space-check ' +
      'if you know better. Nothing ran.',
  );
}
