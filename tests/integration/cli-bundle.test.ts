import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types (the bin and npm's postinstall run it)
import { buildCli, loadCli, sourceStamp } from '../../scripts/cli-bundle.mjs';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');

/** The packages a bundled file loads before its code runs: its static imports, through its chunks. */
async function staticPackages(dir: string, file: string, seen = new Set<string>()): Promise<Set<string>> {
  const packages = new Set<string>();
  if (seen.has(file)) return packages;
  seen.add(file);
  const code = await readFile(join(dir, file), 'utf8');
  for (const match of code.matchAll(/^import\s(?:[^;]*?\sfrom\s*)?["']([^"']+)["']/gm)) {
    const target = match[1]!;
    if (target.startsWith('./')) {
      for (const p of await staticPackages(dir, target.slice(2), seen)) packages.add(p);
    } else if (!target.startsWith('node:')) packages.add(target);
  }
  return packages;
}

describe('the compiled CLI', () => {
  it('is built once per state of the sources, with the silver worker beside it', async () => {
    const stamp = await sourceStamp();
    expect(await sourceStamp()).toBe(stamp);
    const dir = await buildCli();
    expect(dir.endsWith(`cli-${stamp}`)).toBe(true);
    expect(await buildCli()).toBe(dir);
    await expect(readFile(join(dir, 'silver-worker.mjs'), 'utf8')).resolves.toContain('workerData');
  });

  it('starts without DuckDB, the AWS SDK, CDK or the local workflow runner: commands load them when they run', async () => {
    const dir = await buildCli();
    const packages = [...(await staticPackages(dir, 'sluice.mjs'))];
    expect(packages).toContain('commander');
    for (const heavy of ['@duckdb/node-api', '@aws-sdk/', 'aws-cdk-lib', 'aws-local-stepfunctions', 'tsx']) {
      expect(
        packages.filter((p) => p.startsWith(heavy)),
        heavy,
      ).toEqual([]);
    }
    // The bin runs that bundle, not the sources through tsx.
    const { file } = await loadCli();
    expect(file).toBe(join(dir, 'sluice.mjs'));
    const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: sluice');
  });
});
