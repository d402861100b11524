// The CLI compiled once, not at every start: esbuild bundles the TypeScript sources of `sluice` (and of
// the silver worker thread) into plain JavaScript under dist/cli-<stamp>/, where <stamp> is a hash of
// the sources' paths, sizes and mtimes. `bin/sluice.js` runs the bundle of the current sources, building
// it first when the sources changed (≈ 1 s, once); `npm ci` builds it in postinstall. Compiling through
// tsx at every start cost ≈ 1.4 s of CPU before the first line ran (docs/BENCHMARKS.md, "Start-up").
//
// Dependencies stay outside the bundle (node_modules), and code split into chunks that load when a
// command needs them, so `sluice --help` never loads DuckDB, the AWS SDK or the local workflow runner.
// The output sits two folders below the repository root, as the sources do (shared/<x>/), so paths
// computed from `import.meta.url` (the repository root, the worker's file) are the same in both.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
/** The folders whose files make the CLI. */
const SOURCE_DIRS = ['shared', 'functions', 'infra'];
/** Bundles of other sources are removed once this old (a process may still be running one). */
const STALE_BUNDLE_MS = 24 * 3600 * 1000;

/** A hash of every source file's path, size and mtime: changes whenever a source does. */
export async function sourceStamp() {
  const hash = createHash('sha256');
  for (const dir of SOURCE_DIRS) {
    const names = (await readdir(join(ROOT, dir), { recursive: true })).sort();
    for (const name of names) {
      const info = await stat(join(ROOT, dir, name));
      hash.update(`${dir}/${name}\0${info.size}\0${info.mtimeMs}\0`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

/** The folder of the bundle for `stamp`. */
function bundleDir(stamp) {
  return join(DIST, `cli-${stamp}`);
}

/**
 * Build the bundle for the current sources unless it exists; resolves to its folder. Safe when several
 * processes build at once: each builds into a folder of its own and renames it into place; the first
 * rename wins, the others find the same bytes there and remove theirs.
 */
export async function buildCli({ stamp, quiet = true } = {}) {
  const current = stamp ?? (await sourceStamp());
  const target = bundleDir(current);
  if (existsSync(join(target, 'sluice.mjs'))) return target;
  const { build } = await import('esbuild');
  await mkdir(DIST, { recursive: true });
  const building = join(DIST, `.building-${process.pid}-${Date.now()}`);
  await build({
    absWorkingDir: ROOT,
    entryPoints: {
      sluice: 'shared/cli/main.ts',
      'silver-worker': 'shared/stages/silver/silver-worker.ts',
      'lambda-invocation-child': 'shared/pipeline/lambda-invocation-child.ts',
    },
    outdir: building,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    // silver-workers.ts and lambda-limits.ts start the bundled worker and invocation process instead of
    // the TypeScript ones through tsx.
    define: { SLUICE_BUNDLED: 'true' },
    logLevel: quiet ? 'error' : 'warning',
  });
  try {
    await rename(building, target);
  } catch (error) {
    // Another process got there first with the same sources.
    if (!existsSync(join(target, 'sluice.mjs'))) throw error;
    await rm(building, { recursive: true, force: true });
  }
  await removeStaleBundles(target);
  return target;
}

async function removeStaleBundles(keep) {
  const now = Date.now();
  for (const name of await readdir(DIST).catch(() => [])) {
    const dir = join(DIST, name);
    if (dir === keep || !/^(cli-|\.building-)/.test(name)) continue;
    const info = await stat(dir).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_BUNDLE_MS) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The CLI's `main` and the file it comes from: the bundle of the current sources (built first if need
 * be), or — when it cannot be built (no esbuild, a read-only checkout) — the TypeScript through tsx.
 */
export async function loadCli() {
  let dir;
  try {
    dir = await buildCli();
  } catch (error) {
    if (process.env.SLUICE_DEBUG) process.stderr.write(`sluice: running from sources: ${error}\n`);
  }
  if (dir) {
    const file = join(dir, 'sluice.mjs');
    return { main: (await import(pathToFileURL(file).href)).main, file };
  }
  const { register } = await import('tsx/esm/api');
  register();
  const file = fileURLToPath(new URL('../shared/cli/main.ts', import.meta.url));
  return { main: (await import(pathToFileURL(file).href)).main, file };
}

// `node scripts/cli-bundle.mjs`: build now (npm's postinstall), saying where.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const dir = await buildCli({ quiet: false });
  console.log(
    `sluice CLI compiled into ${dir.slice(ROOT.length)} (${Math.round(performance.now() - started)} ms)`,
  );
}
