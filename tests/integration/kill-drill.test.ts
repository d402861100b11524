import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { KILL_POINTS, lakeContents, runAndKill, sluice } from '../helpers/kill-drill.ts';
import { generateFile, tempDir } from '../helpers/lake.ts';
import { seededRandom } from '../helpers/random.ts';

/**
 * The whole pipeline in process, killed with SIGKILL at seeded random moments of every stage (parsing and
 * its checkpoints, silver groups, the merge, reconciliation and the commit), each time run again by the
 * same command: between kills a reader sees the source whole or not at all, and the final lake holds the
 * same bytes as a run that was never interrupted. The stages announce themselves on stderr ("silver…",
 * "silver merge…", "reconcile…"); a kill lands a seeded delay after one of them, so it hits that stage
 * however fast the machine is. The same drill under `--lambda-limits` on moto_server's S3, each
 * invocation a process of its own: tests/integration/limits-drill.test.ts.
 */

describe('sluice run in process, killed at seeded random points of every stage and rerun', () => {
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

  // Ingest sliced every second.
  const run = (lake: string) => ['run', file, '--config', config, '--lake', lake, '--slice-seconds', '1'];

  /** The source as a reader sees it: all of its rows, or (before the first commit) no table at all. */
  async function visiblePrices(lake: string): Promise<number | 'none'> {
    const result = await sluice([
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
    const clean = await sluice([...run(reference), '--json']);
    expect(clean.status, clean.stderr).toBe(0);
    expect(await visiblePrices(reference)).toBe(prices);

    const lake = join(tmp.dir, 'killed');
    const random = seededRandom(20261207);
    const killedIn = new Set<string>();
    for (const point of KILL_POINTS) {
      const { killed } = await runAndKill(run(lake), point.anchor, Math.floor(random() * point.maxDelayMs));
      if (killed) killedIn.add(point.stage);
      expect([prices, 'none']).toContain(await visiblePrices(lake));
    }
    // The drill means something only if runs were in fact killed in most stages.
    expect([...killedIn].length, [...killedIn].join(', ')).toBeGreaterThanOrEqual(3);

    const rerun = await sluice([...run(lake), '--json']);
    expect(rerun.status, rerun.stderr).toBe(0);
    expect(['reconciled', 'unchanged']).toContain(JSON.parse(rerun.stdout).status);
    expect(await visiblePrices(lake)).toBe(prices);
    expect(await lakeContents(new FileObjectStore(lake))).toEqual(
      await lakeContents(new FileObjectStore(reference)),
    );
  }, 900_000);
});
