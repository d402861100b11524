import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { committedRun, runWorkflowLocally as runAnyWorkflow } from '../../shared/pipeline/local-runner.ts';
import { fileStore, fixedClock, generateFile, listFiles, tempDir } from '../helpers/lake.ts';
import { seededRandom as random } from '../helpers/random.ts';

/** Runs of new sources: each one commits. */
const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

const CHILD = fileURLToPath(new URL('../helpers/sliced-run-child.ts', import.meta.url));
const SEGMENT_BYTES = 64 * 1024;

interface Attempt {
  /** Lines the child printed (state names as it entered them, then `done …`). */
  lines: string[];
  exitCode: number | null;
  killed: boolean;
}

/**
 * Start the child and SIGKILL it once it has entered `killAfterStates` states plus `delayMs`: at a
 * random point of a random slice (or of Silver/Reconcile). `Infinity` lets it finish.
 */
function attempt(args: string[], killAfterStates: number, delayMs: number): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n').filter(Boolean)) {
        lines.push(line);
        if (!killed && lines.length === killAfterStates) {
          killed = true;
          setTimeout(() => child.kill('SIGKILL'), delayMs);
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
    });
    child.once('error', reject);
    child.once('exit', (exitCode) => {
      if (exitCode !== 0 && exitCode !== null) reject(new Error(`child failed (${exitCode}): ${stderr}`));
      else resolve({ lines, exitCode, killed: exitCode === null });
    });
  });
}

describe('a sliced run killed with SIGKILL at random points and resumed', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-sliced-kill-');
    await generateFile(tmp.dir, 'source.json.gz', { seed: 424242, targetBytes: 1_600_000 });
  });
  afterAll(async () => tmp.cleanup());

  it('ends with the output of an uninterrupted run, and reconciliation passes', async () => {
    const base = builtInDataset('tic-in-network');
    const dataset = parseDatasetConfig({
      ...base,
      bronze: { ...base.bronze, segmentBytes: SEGMENT_BYTES, partMaxRecords: 40 },
    });
    const reference = join(tmp.dir, 'reference');
    const expected = await runWorkflowLocally(
      { dataset, sourceKey: 'source.json.gz' },
      {
        source: fileStore(tmp.dir),
        lake: fileStore(reference),
        deadLetters: new FolderDeadLetterStore(reference),
        clock: fixedClock,
        workDir: join(tmp.dir, 'work-reference'),
      },
    );
    expect(expected.reconciliation?.status).toBe('passed');

    const lake = join(tmp.dir, 'drill');
    const args = [tmp.dir, 'source.json.gz', lake, join(tmp.dir, 'work-drill'), String(SEGMENT_BYTES)];
    const next = random(20261122);
    const kills: string[] = [];
    const resumedAt: number[] = [];
    let finished: Attempt | undefined;
    for (let i = 0; i < 12 && !finished; i++) {
      // The first attempts are killed; then one runs to the end. Each kill lands after 1–16 lines
      // (mostly Ingest slices) plus 0–25 ms: inside a slice, a part upload or a checkpoint write. Few
      // enough that a rerun, which reuses what earlier attempts committed, is still killed.
      const last = i === 11 || kills.length === 8;
      const states = last ? Number.POSITIVE_INFINITY : 1 + Math.floor(next() * 16);
      const result = await attempt(args, states, Math.floor(next() * 25));
      resumedAt.push(Number(result.lines[0]?.split(' ')[1] ?? 0));
      if (result.killed) kills.push(`${result.lines.at(-1) ?? '(start)'} +${result.lines.length}`);
      else finished = result;
    }
    expect(kills.length).toBeGreaterThanOrEqual(5);
    // Some attempts continued a checkpoint rather than starting over.
    expect(resumedAt.filter((slices) => slices > 0).length).toBeGreaterThanOrEqual(2);
    expect(finished?.lines.at(-1)).toMatch(/^done \d+ passed$/);

    // Everything but the scratch folder, the source's lease (which names who held it last) and the usage
    // records (what each attempt cost).
    const output = (f: string) =>
      !f.startsWith('.sluice-tmp') && !f.endsWith('/lease.json') && !f.startsWith('_usage/');
    const expectedFiles = (await listFiles(reference)).filter(output);
    const actualFiles = (await listFiles(lake)).filter(output);
    expect(actualFiles).toEqual(expectedFiles);
    for (const file of expectedFiles) {
      const [a, b] = [await readFile(join(reference, file)), await readFile(join(lake, file))];
      if (file.endsWith('/_manifest.json')) {
        // Its timings say how the run went (whether the attempt that committed it resumed a checkpoint,
        // which depends on where the kills fell; tests/integration/cli-runs.test.ts checks it).
        const [reference, drill] = [JSON.parse(a.toString()), JSON.parse(b.toString())];
        expect(reference.timings.resumed).toBe(false);
        expect({ ...drill, timings: { ...drill.timings, resumed: false } }).toEqual(reference);
        continue;
      }
      // The run report shows that cost too; its other numbers come from the records compared here.
      if (file.endsWith('/report.html')) continue;
      if (file.endsWith('/reconciliation.json')) {
        // Its cost adds up every attempt's invocations, the killed ones included: they were paid for.
        const [reference, drill] = [JSON.parse(a.toString()), JSON.parse(b.toString())];
        expect(drill.cost.invocations).toBeGreaterThan(reference.cost.invocations);
        expect({ ...drill, cost: undefined }).toEqual({ ...reference, cost: undefined });
        continue;
      }
      expect(b.equals(a), `${file} differs after kills at ${kills.join(', ')}`).toBe(true);
    }
  }, 240_000);
});
