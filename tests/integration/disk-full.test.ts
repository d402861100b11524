import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSluice } from '../helpers/cli.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

const _BIN = join(import.meta.dirname, '../../bin/sluice.js');
const SAMPLE = join(import.meta.dirname, '../../samples/tic-in-network-sample.json.gz');

const sluice = (args: string[]) => runSluice(args);

/** A real full disk: a tmpfs of `size` (needs root, or CAP_SYS_ADMIN; the test says when it cannot). */
function mountTmpfs(dir: string, size: string, remount = false): boolean {
  const options = remount ? `remount,size=${size}` : `size=${size}`;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]).status === 0;
}

describe('a full disk', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let disk: string;
  let mounted = false;
  beforeAll(async () => {
    tmp = await tempDir('sluice-disk-full-');
    disk = join(tmp.dir, 'disk');
    await mkdir(disk);
    // The sample needs ≈ 650 KB of lake; 340 KB holds its bronze (and the invocations' usage records, a
    // 4 KB page each on tmpfs), not its silver, and leaves room for the dead letter once a write failed.
    mounted = mountTmpfs(disk, '340k');
    if (!mounted) console.warn('disk-full tests skipped: cannot mount a tmpfs here (not root?)');
  });
  afterAll(async () => {
    if (mounted) spawnSync('umount', [disk]);
    await tmp.cleanup();
  });

  it('is found before the run when too small for it: exit 2, the numbers and the fix, nothing written', async ({
    skip,
  }) => {
    if (!mounted) skip();
    const lake = join(disk, 'lake-preflight');
    const result = await sluice(['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(
      /^error: not enough free disk space for this run: .* free on the filesystem of .*disk, about 1\.3 MB needed \(lake .*lake-preflight: 1\.3 MB/,
    );
    expect(result.stderr).toContain('2.0 MB of uncompressed input (gzip trailer)');
    expect(await listFiles(lake)).toEqual([]);
  });

  it('mid-run fails naming the path and what was written, commits nothing, and resumes once there is room', async ({
    skip,
  }) => {
    if (!mounted) skip();
    const lake = join(disk, 'lake');
    const run = ['run', SAMPLE, '-d', 'tic-in-network', '--lake', lake, '--json'];
    const full = await sluice([...run, '--no-space-check']);
    expect(full.status).toBe(1);
    expect(full.stderr).toMatch(
      /error: DiskFullError: no space left on the device writing (object|silver table) \S+ \(\/\S+\/lake\/\S+\): .*run again/,
    );
    const files = await listFiles(lake);
    // Nothing became current, and no write was left half-done under a name of its own.
    expect(files.filter((f) => f.includes('current.json') || f.includes('/versions/'))).toEqual([]);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(files.some((f) => f.startsWith('_dead_letters/'))).toBe(true);

    expect(mountTmpfs(disk, '20m', true)).toBe(true);
    const rerun = await sluice(run);
    expect(rerun.stderr).toBe('');
    expect(rerun.status).toBe(0);
    const summary = JSON.parse(rerun.stdout);
    expect(summary.status).toBe('reconciled');
    expect(summary.resumed).toBeTruthy();
  });
});
