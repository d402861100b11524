/**
 * A child process for the SIGKILL drill (tests/integration/sliced-resume.test.ts): runs the deployed
 * workflow locally on one source, one segment per ingest slice, and exits 0 when the execution succeeded.
 * The test kills it at random moments and starts it again, as a Lambda timeout or crash would.
 *
 *   node --import tsx sliced-run-child.ts <source dir> <source key> <lake dir> <work dir> <segment bytes>
 *     [<silver parallelism> <rows per final row group> [<bronze bytes per merge bucket>]]
 *
 * The optional arguments are those of the same-bytes drill (tests/integration/silver-same-bytes.test.ts).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mergeParquetPartials } from '../../shared/adapters/duckdb/parquet-partials-merge.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { committedRun, runWorkflowLocally as runAnyWorkflow } from '../../shared/pipeline/local-runner.ts';
import { fileStore, fixedClock } from './lake.ts';

/** Runs of new sources: each one commits. */
const runWorkflowLocally = async (...args: Parameters<typeof runAnyWorkflow>) =>
  committedRun(await runAnyWorkflow(...args));

const [sourceDir, sourceKey, lakeDir, workDir, segmentBytes, parallelism, rowGroupRows, bucketBytes] =
  process.argv.slice(2) as [string, string, string, string, string, string?, string?, string?];
const base = builtInDataset('tic-in-network');
const dataset = parseDatasetConfig({
  ...base,
  bronze: { ...base.bronze, segmentBytes: Number(segmentBytes), partMaxRecords: 40 },
});
// First line: the slices an earlier, killed attempt checkpointed (0 if none): proof the drill resumes.
let resumedAt = 0;
for await (const object of fileStore(lakeDir).list('bronze/')) {
  if (!object.key.endsWith('/_checkpoint.json')) continue;
  const text = await readFile(join(lakeDir, object.key), 'utf8');
  resumedAt = (JSON.parse(text) as { slices: number }).slices;
}
process.stdout.write(`resume ${resumedAt}\n`);
const result = await runWorkflowLocally(
  { dataset, sourceKey },
  {
    source: fileStore(sourceDir),
    lake: fileStore(lakeDir),
    deadLetters: new FolderDeadLetterStore(lakeDir),
    clock: fixedClock,
    workDir,
    sliceBudget: () => ({ shouldStop: () => true }),
    silverParallelism: parallelism === undefined ? undefined : Number(parallelism),
    silverBucketTargetBytes: bucketBytes === undefined ? undefined : Number(bucketBytes),
    mergeTables:
      rowGroupRows === undefined
        ? undefined
        : (tables, partials, dir) =>
            mergeParquetPartials(tables, partials, dir, { rowGroupRows: Number(rowGroupRows) }),
    onEvent: (event) => {
      if (event.type === 'StateEntered') process.stdout.write(`${event.state?.name}\n`);
    },
  },
);
process.stdout.write(`done ${result.bronze.slices} ${result.reconciliation?.status}\n`);
