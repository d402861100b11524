#!/usr/bin/env node
// Puts the Lambda platform's native packages into npm's cache (the project's postinstall).
//
// Why: the DuckDB functions run on arm64 Lambda, so their bundle carries
// @duckdb/node-bindings-linux-arm64. The lock file lists it as an optional dependency, which `npm ci`
// skips on any other machine (x86_64 CI, a Mac). Bundling installs it with `npm ci --cpu=arm64`
// (infra/constructs/sluice-function.ts, `lambdaPlatformInstall`), preferring npm's cache: fetching it
// here, while `npm ci` is online anyway, lets `cdk synth` and the infra tests run offline afterwards.
// ≈ 21 MB, about a second. A failure only warns: bundling then downloads the package itself.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const LAMBDA = { os: 'linux', cpu: 'arm64', libc: 'glibc' };
/** Native packages the Lambda bundles install (`nodeModules` in infra/): their platform bindings. */
const NATIVE = /^node_modules\/@duckdb\/node-bindings-/;

const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8'));
const wanted = Object.entries(lock.packages)
  .filter(([location, entry]) => NATIVE.test(location) && entry.optional)
  .filter(([, entry]) => Object.entries(LAMBDA).every(([field, value]) => entry[field]?.includes(value)))
  .map(([location, entry]) => `${location.slice('node_modules/'.length)}@${entry.version}`);

if (wanted.length === 0) {
  console.warn(
    'cache-lambda-binaries: package-lock.json lists no linux-arm64 DuckDB binding; see scripts/prune-lock.mjs',
  );
  process.exit(0);
}
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const result = spawnSync(npm, ['cache', 'add', '--prefer-offline', ...wanted], {
  stdio: ['ignore', 'ignore', 'pipe'],
  encoding: 'utf8',
  shell: process.platform === 'win32',
});
if (result.status === 0) {
  console.log(`cache-lambda-binaries: ${wanted.join(', ')} in npm's cache for the Lambda bundles`);
} else {
  console.warn(
    `cache-lambda-binaries: could not cache ${wanted.join(', ')} (${(result.stderr || String(result.error)).trim().split('\n').at(-1)}); ` +
      'bundling the DuckDB functions will download it from the registry.',
  );
}
