/**
 * One silver group built in this thread, for profiling the silver hot path:
 *   node --import tsx --cpu-prof scripts/profile-silver-group.ts LAKE MANIFEST_KEY FIRST END [--merge]
 * (LAKE: a local lake of an earlier `sluice run`; parts [FIRST, END) of its bronze manifest). With
 * `--merge`, the group's partial files are then merged into final files as a build's merge does, their
 * sizes and the merge's CPU printed apart, and each final file's sha256 (the same input must give the
 * same bytes after a change).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeParquetPartials } from '../shared/adapters/duckdb/parquet-partials-merge.ts';
import { createPartialParquetTableWriter } from '../shared/adapters/duckdb/parquet-table-writer.ts';
import { FileObjectStore } from '../shared/adapters/local/file-object-store.ts';
import { builtInDataset } from '../shared/contracts/datasets/index.ts';
import { contractForDataset } from '../shared/contracts/datasets/silver-contracts.ts';
import { quarantineTable } from '../shared/stages/silver/quarantine-table.ts';
import { buildSilverGroup } from '../shared/stages/silver/silver-group.ts';

const [lakeDir, manifestKey, first, end, option] = process.argv.slice(2);
const lake = new FileObjectStore(lakeDir!);
const contract = contractForDataset(builtInDataset('tic-in-network'))!;
const workDir = await mkdtemp(join(tmpdir(), 'profile-group-'));
const seconds = (micros: { user: number; system: number }) =>
  ((micros.user + micros.system) / 1e6).toFixed(2);
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
    `${seconds(used)} s CPU, ${rows} rows, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB`,
);
if (option === '--merge') {
  const tables = [...contract.tables, quarantineTable];
  const partials = Object.fromEntries(
    tables.map((t) => [t.name, (result.tables[t.name]?.files ?? []).map((f) => f.file)]),
  );
  for (const [name, files] of Object.entries(partials)) {
    let bytes = 0;
    for (const file of files) bytes += (await stat(file)).size;
    if (bytes > 0) console.log(`  partial files of ${name}: ${(bytes / 1e6).toFixed(1)} MB`);
  }
  const mergeCpu = process.cpuUsage();
  const merged = await mergeParquetPartials(tables, partials, join(workDir, 'merged'));
  console.log(`merge: ${seconds(process.cpuUsage(mergeCpu))} s CPU`);
  for (const [name, { file }] of Object.entries(merged)) {
    if (!file) continue;
    const sha = createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
    console.log(`  ${name}: ${sha.slice(0, 16)}`);
  }
}
await rm(workDir, { recursive: true, force: true });
