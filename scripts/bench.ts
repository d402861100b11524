/**
 * `npm run bench`: parse → bronze throughput against two baselines, measured in the same run.
 *
 *   (a) gunzip   raw decompression to a null sink: the ceiling for any reader of a gzip'd file
 *   (b) stream-json  the usual streaming parser, emitting in_network[*] as objects
 *   (c) sluice   parse → bronze (ingestToBronze into a scratch lake)
 *   (d) sluice-e2e  the whole local pipeline: parse → bronze → silver (Parquet) → reconciliation
 *   (d') duckdb-bronze  the peer: DuckDB's own JSON reader over (d)'s bronze parts, negotiated_prices to
 *       Parquet (./bench-duckdb-bronze.ts); its rows must equal sluice's
 *   (e) sluice-sliced  (c) in slices as on Lambda: one slice per 64 MiB segment, each resumed from the
 *       previous slice's checkpoint by the resumable (pako) reader: the cost of slicing
 *   (f) sluice@1cpu, sluice-e2e@1cpu  (c) and (d) pinned to one core (taskset): the 2-core speed-up
 *
 * Each phase runs in its own child process, so each has its own peak RSS; all read the same file.
 * Throughput is MB/s of uncompressed input. Results go to stdout and .bench/results.json.
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import { MALLOC_ENV, NODE_FLAGS } from '../shared/runtime-memory.ts';
import { runDuckDbBronze } from './bench-duckdb-bronze.ts';

const MiB = 1024 * 1024;

interface PhaseResult {
  phase: string;
  ms: number;
  uncompressedBytes: number;
  records: number;
  /** in_network records seen: every reader must agree on it. */
  inNetwork?: number;
  /** Slices the ingest took (sliced phase). */
  slices?: number;
  /** Rows `records` must equal (duckdb-bronze: sluice's negotiated_prices rows). */
  expectedRecords?: number;
  maxRssMb: number;
  /** sluice-e2e: each stage's wall time and CPU time of the whole process (every thread). */
  stages?: StageCost[];
}

interface StageCost {
  stage: string;
  ms: number;
  cpuMs: number;
}

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1GB' },
    file: { type: 'string' },
    runs: { type: 'string', default: '1' },
    phase: { type: 'string' },
    skip: { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});

async function countGunzip(file: string): Promise<Omit<PhaseResult, 'phase' | 'ms' | 'maxRssMb'>> {
  let bytes = 0;
  await pipeline(
    createReadStream(file, { highWaterMark: MiB }),
    createGunzip({ chunkSize: MiB }),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback();
      },
    }),
  );
  return { uncompressedBytes: bytes, records: 0 };
}

async function countStreamJson(file: string) {
  const { parser } = await import('stream-json');
  const { pick } = await import('stream-json/filters/pick.js');
  const { streamArray } = await import('stream-json/streamers/stream-array.js');
  const { default: chain } = await import('stream-chain');
  let records = 0;
  let bytes = 0;
  const gunzip = createGunzip({ chunkSize: MiB });
  gunzip.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  const items = chain([
    createReadStream(file, { highWaterMark: MiB }),
    gunzip,
    parser(),
    pick({ filter: 'in_network' }),
    streamArray(),
  ]);
  items.on('data', () => {
    records++;
  });
  await finished(items);
  return { uncompressedBytes: bytes, records, inNetwork: records };
}

async function runSluice(file: string) {
  const { FileObjectStore } = await import('../shared/adapters/local/file-object-store.ts');
  const { builtInDataset } = await import('../shared/contracts/datasets/index.ts');
  const { ingestToBronze } = await import('../shared/stages/bronze/ingest-to-bronze.ts');
  const { systemClock } = await import('../shared/ports/clock.ts');
  const lakeDir = resolve('.bench/lake');
  rmSync(lakeDir, { recursive: true, force: true });
  const result = await ingestToBronze(
    { dataset: builtInDataset('tic-in-network'), sourceKey: file.split('/').at(-1)! },
    { source: new FileObjectStore(dirname(file)), lake: new FileObjectStore(lakeDir), clock: systemClock },
  );
  const records = Object.values(result.manifest.records).reduce((a, b) => a + b, 0);
  return {
    uncompressedBytes: result.manifest.source.uncompressedBytes,
    records,
    inNetwork: result.manifest.records.in_network,
  };
}

async function runEndToEnd(file: string) {
  const { FileObjectStore } = await import('../shared/adapters/local/file-object-store.ts');
  const { builtInDataset } = await import('../shared/contracts/datasets/index.ts');
  const { runWorkflowLocally } = await import('../shared/pipeline/local-runner.ts');
  const { FolderDeadLetterStore } = await import('../shared/adapters/local/folder-dead-letter-store.ts');
  const { systemClock } = await import('../shared/ports/clock.ts');
  const lakeDir = resolve('.bench/lake-e2e');
  rmSync(lakeDir, { recursive: true, force: true });
  // Stages run one after another locally, so the process's CPU between two stage starts is the first's.
  const stages: StageCost[] = [];
  const stageStarted = (stage: string) => {
    const cpu = process.cpuUsage();
    const now = { stage, ms: performance.now(), cpuMs: (cpu.user + cpu.system) / 1000 };
    const last = stages.at(-1);
    if (last) {
      last.ms = now.ms - last.ms;
      last.cpuMs = now.cpuMs - last.cpuMs;
    }
    if (stage !== '') stages.push(now);
  };
  // The same path as `sluice run`: the deployed workflow definition, run locally.
  const result = await runWorkflowLocally(
    { dataset: builtInDataset('tic-in-network'), sourceKey: file.split('/').at(-1)! },
    {
      source: new FileObjectStore(dirname(file)),
      lake: new FileObjectStore(lakeDir),
      clock: systemClock,
      workDir: resolve('.bench/work'),
      deadLetters: new FolderDeadLetterStore(lakeDir),
      onStage: stageStarted,
    },
  );
  stageStarted('');
  if (result.outcome !== 'committed') throw new Error(`${file}: unchanged in a fresh bench lake`);
  const rows = Object.values(result.silver?.manifest.tables ?? {}).reduce((n, t) => n + t.rowsWritten, 0);
  return { uncompressedBytes: result.bronze.manifest.source.uncompressedBytes, records: rows, stages };
}

/** Segment (and so slice) size of the sliced phase: 16 slices for the 1 GB file. */
const SLICED_SEGMENT_BYTES = 64 * MiB;

async function runSliced(file: string) {
  const { FileObjectStore } = await import('../shared/adapters/local/file-object-store.ts');
  const { builtInDataset } = await import('../shared/contracts/datasets/index.ts');
  const { parseDatasetConfig } = await import('../shared/contracts/dataset-config.ts');
  const { ingestSlice } = await import('../shared/stages/bronze/ingest-to-bronze.ts');
  const { systemClock } = await import('../shared/ports/clock.ts');
  const lakeDir = resolve('.bench/lake-sliced');
  rmSync(lakeDir, { recursive: true, force: true });
  const base = builtInDataset('tic-in-network');
  const dataset = parseDatasetConfig({
    ...base,
    bronze: { ...base.bronze, segmentBytes: SLICED_SEGMENT_BYTES },
  });
  const deps = {
    source: new FileObjectStore(dirname(file)),
    lake: new FileObjectStore(lakeDir),
    clock: systemClock,
    budget: { shouldStop: () => true },
  };
  for (;;) {
    // Every slice starts from its checkpoint object, as a fresh Lambda invocation would.
    const result = await ingestSlice({ dataset, sourceKey: file.split('/').at(-1)! }, deps);
    if (result.status === 'sliced') continue;
    if (result.status === 'unchanged') throw new Error(`${file}: unchanged in a fresh bench lake`);
    const records = Object.values(result.manifest.records).reduce((a, b) => a + b, 0);
    return {
      uncompressedBytes: result.manifest.source.uncompressedBytes,
      records,
      inNetwork: result.manifest.records.in_network,
      slices: result.slices,
    };
  }
}

const phases: Record<string, (file: string) => Promise<Omit<PhaseResult, 'phase' | 'ms' | 'maxRssMb'>>> = {
  gunzip: countGunzip,
  'stream-json': countStreamJson,
  sluice: runSluice,
  'sluice-e2e': runEndToEnd,
  // After sluice-e2e: it reads the bronze parts that phase wrote.
  'duckdb-bronze': runDuckDbBronze,
  'sluice-sliced': runSliced,
  // Pinned to one core by runPhaseInChild: the same work, so the ratio is the speed-up of the second core.
  'sluice@1cpu': runSluice,
  'sluice-e2e@1cpu': runEndToEnd,
};

async function runPhaseHere(phase: string, file: string): Promise<void> {
  const start = performance.now();
  const counts = await phases[phase]!(file);
  const ms = performance.now() - start;
  const result: PhaseResult = { phase, ms, ...counts, maxRssMb: process.resourceUsage().maxRSS / 1024 };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

function runPhaseInChild(phase: string, file: string): PhaseResult | undefined {
  // Every phase runs with the flags and malloc setting `bin/sluice.js` uses: the comparison is like for like.
  const flags = [...process.execArgv, ...NODE_FLAGS];
  const node = [process.execPath, ...flags, import.meta.filename, '--phase', phase, '--file', file];
  // `@1cpu` phases run on one core only (Linux taskset): libuv's pool, DuckDB and V8 all share it.
  const [command, ...args] = phase.endsWith('@1cpu') ? ['taskset', '-c', '0', ...node] : node;
  const child = spawnSync(command!, args, {
    encoding: 'utf8',
    env: { ...process.env, ...MALLOC_ENV },
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * MiB,
  });
  if (child.status !== 0) {
    process.stderr.write(`phase ${phase} failed with exit code ${child.status}; continuing without it\n`);
    return undefined;
  }
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as PhaseResult;
}

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i.exec(text);
  if (!match) throw new Error(`bad --size ${text}: use e.g. 500MB or 1GB`);
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(match[2] ?? 'B').toUpperCase() as 'B'];
  return Number(match[1]) * unit;
}

async function ensureInput(): Promise<string> {
  if (values.file) return resolve(values.file);
  mkdirSync('.bench', { recursive: true });
  const file = resolve(`.bench/tic-in-network-${values.size}.json.gz`);
  if (!existsSync(file)) {
    process.stderr.write(`generating ${file} (${values.size} uncompressed, seed 1)…\n`);
    const generated = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/generate.ts', '--size', values.size!, '--out', file, '--seed', '1'],
      { stdio: 'inherit' },
    );
    if (generated.status !== 0) throw new Error('generation failed');
  }
  parseSize(values.size!);
  return file;
}

function printHelp(): void {
  process.stdout.write(`npm run bench -- [--size 1GB] [--file F.json.gz] [--runs 3] [--skip stream-json]

Generates (once, cached in .bench/) a seeded TiC in-network file of --size uncompressed bytes, gzip'd,
then measures gunzip, stream-json and sluice on it (phases: ${Object.keys(phases).join(', ')});
with --runs N reports the median of N runs. --skip a,b leaves phases out (e.g. --skip sluice-e2e@1cpu).
`);
}

function median(results: PhaseResult[]): PhaseResult {
  const sorted = [...results].sort((a, b) => a.ms - b.ms);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  if (values.help) {
    printHelp();
    return;
  }
  if (values.phase) {
    await runPhaseHere(values.phase, values.file!);
    return;
  }
  const file = await ensureInput();
  const runs = Number(values.runs);
  const skip = new Set(values.skip!.split(',').filter(Boolean));
  const results: Record<string, PhaseResult> = {};
  for (const phase of Object.keys(phases)) {
    if (skip.has(phase)) continue;
    if (phase === 'duckdb-bronze' && !results['sluice-e2e']) {
      // Its input is sluice-e2e's lake: written here, untimed, when that phase was skipped (or failed).
      process.stderr.write(`${phase}: running sluice-e2e once, untimed, for the bronze parts it reads…\n`);
      runPhaseInChild('sluice-e2e', file);
    }
    const samples: PhaseResult[] = [];
    for (let run = 0; run < runs; run++) {
      process.stderr.write(`${phase}: run ${run + 1}/${runs}…\n`);
      const sample = runPhaseInChild(phase, file);
      if (sample) samples.push(sample);
    }
    if (samples.length > 0) results[phase] = median(samples);
  }
  const mbps = (r: PhaseResult) => r.uncompressedBytes / 1e6 / (r.ms / 1000);
  const rows = Object.values(results).map((r) => ({
    phase: r.phase,
    seconds: (r.ms / 1000).toFixed(1),
    'MB/s': mbps(r).toFixed(1),
    // For sluice-e2e, "records" are silver rows written (all tables); for duckdb-bronze, negotiated_prices rows.
    'records/s': r.records ? Math.round(r.records / (r.ms / 1000)).toLocaleString('en-US') : '–',
    'peak RSS MB': r.maxRssMb.toFixed(0),
  }));
  console.table(rows);
  const e2e = results['sluice-e2e'];
  if (e2e?.stages) {
    // What issue 16 asks to report: each stage's CPU per GB of JSON (all threads), beside its wall time.
    const gb = e2e.uncompressedBytes / 1e9;
    console.table(
      e2e.stages.map((s) => ({
        'sluice-e2e stage': s.stage,
        seconds: (s.ms / 1000).toFixed(1),
        'core-seconds': (s.cpuMs / 1000).toFixed(1),
        'cores busy': (s.cpuMs / s.ms).toFixed(2),
        'core-seconds per GB': (s.cpuMs / 1000 / gb).toFixed(1),
      })),
    );
  }
  const peer = results['duckdb-bronze'];
  const peerAgrees = peer !== undefined && peer.records === peer.expectedRecords;
  if (peer && !peerAgrees) {
    process.stderr.write(
      `duckdb-bronze wrote ${peer.records} negotiated_prices rows where sluice wrote ${peer.expectedRecords}: ` +
        'the peer does not do the same work, so its ratios are left out. Compare the two tables ' +
        '(.bench/duckdb-bronze/negotiated_prices.parquet and the lake in .bench/lake-e2e) and fix the ' +
        "peer's SQL in scripts/bench-duckdb-bronze.ts\n",
    );
    process.exitCode = 1;
  }
  const ratios: Record<string, string> = {};
  if (results.sluice && results.gunzip)
    ratios['sluice / gunzip'] = (mbps(results.sluice) / mbps(results.gunzip)).toFixed(3);
  if (results.sluice && results['stream-json']) {
    ratios['sluice / stream-json'] = (mbps(results.sluice) / mbps(results['stream-json'])).toFixed(2);
    ratios['in_network records agree'] = String(
      results['stream-json'].inNetwork === results.sluice.inNetwork,
    );
  }
  if (results['sluice-sliced'] && results.sluice) {
    ratios[`sluice-sliced (${results['sluice-sliced'].slices} slices) / sluice (1 slice)`] = (
      mbps(results['sluice-sliced']) / mbps(results.sluice)
    ).toFixed(3);
  }
  if (results.sluice && results['sluice@1cpu']) {
    ratios['sluice speed-up, 2 cores / 1'] = (mbps(results.sluice) / mbps(results['sluice@1cpu'])).toFixed(2);
  }
  if (results['sluice-e2e'] && results['sluice-e2e@1cpu']) {
    ratios['sluice-e2e speed-up, 2 cores / 1'] = (
      mbps(results['sluice-e2e']) / mbps(results['sluice-e2e@1cpu'])
    ).toFixed(2);
  }
  if (results['sluice-e2e'] && results.gunzip) {
    ratios['sluice-e2e / gunzip'] = (mbps(results['sluice-e2e']) / mbps(results.gunzip)).toFixed(3);
  }
  if (results['sluice-e2e'] && results['stream-json']) {
    ratios['sluice-e2e / stream-json'] = (mbps(results['sluice-e2e']) / mbps(results['stream-json'])).toFixed(
      2,
    );
  }
  if (peer && peerAgrees) {
    ratios['negotiated_prices rows: duckdb-bronze = sluice-e2e'] =
      `${peer.records.toLocaleString('en-US')}, yes`;
    if (results['sluice-e2e']) {
      ratios['sluice-e2e / duckdb-bronze, time'] = (results['sluice-e2e'].ms / peer.ms).toFixed(2);
    }
    if (results.gunzip) ratios['duckdb-bronze / gunzip'] = (mbps(peer) / mbps(results.gunzip)).toFixed(3);
    if (results['stream-json']) {
      ratios['duckdb-bronze / stream-json'] = (mbps(peer) / mbps(results['stream-json'])).toFixed(2);
    }
  }
  console.table(ratios);
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 1e9),
    node: process.version,
  };
  writeFileSync(
    '.bench/results.json',
    `${JSON.stringify({ file, runs, machine, results, ratios }, null, 2)}\n`,
  );
  process.stdout.write(`machine: ${JSON.stringify(machine)}\nresults written to .bench/results.json\n`);
}

await main();
