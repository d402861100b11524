/**
 * One silver group built in this thread, for profiling the silver hot path:
 *   node --import tsx --cpu-prof scripts/profile-silver-group.ts LAKE MANIFEST_KEY FIRST END
 * (LAKE: a local lake of an earlier `sluice run`; parts [FIRST, END) of its bronze manifest).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPartialParquetTableWriter } from '../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../shared/adapters/local/file-object-store.ts';
import { builtInDataset } from '../shared/contracts/datasets/index.ts';
import { contractForDataset } from '../shared/contracts/datasets/silver-contracts.ts';
import { buildSilverGroup } from '../shared/stages/silver/silver-group.ts';

const [lakeDir, manifestKey, first, end] = process.argv.slice(2);
const lake = new FileObjectStore(lakeDir!);
const contract = contractForDataset(builtInDataset('tic-in-network'))!;
const workDir = await mkdtemp(join(tmpdir(), 'profile-group-'));
const started = performance.now();
const cpu = process.cpuUsage();
const result = await buildSilverGroup(
  { bronzeManifestKey: manifestKey!, group: { index: 1, firstPart: Number(first), endPart: Number(end) } },
  { lake, contract, createTableWriter: createPartialParquetTableWriter, workDir, overlapWrites: false },
);
const used = process.cpuUsage(cpu);
const rows = Object.values(result.tables).reduce((sum, t) => sum + t.rowsIn, 0);
console.log(
  `group of parts [${first}, ${end}): ${((performance.now() - started) / 1000).toFixed(2)} s wall, ` +
    `${((used.user + used.system) / 1e6).toFixed(2)} s CPU, ${rows} rows, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`,
);
await rm(workDir, { recursive: true, force: true });
