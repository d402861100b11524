#!/usr/bin/env node
// Removes optional dependencies that the lock file lists but cannot resolve.
//
// Why: the npm registry this project's machines reach carries only some platforms' binaries of
// packages such as @biomejs/biome and @duckdb/node-bindings. `npm install` then writes a lock whose
// optional edges point at packages it could not record, and `npm ci` refuses such a lock ("Missing: …
// from lock file"). Dropping the unresolvable optional edges keeps `npm ci` working; the platforms
// the registry does carry (linux x64/arm64) stay locked. Run after changing dependencies:
//   npm install && node scripts/prune-lock.mjs
//
// Keep @duckdb/node-bindings-linux-arm64 in the lock: the Silver and Reconcile Lambdas run on arm64 and
// their bundles install it (infra/constructs/sluice-function.ts). This script keeps every optional
// package the lock records; should an install drop it, put its entry back (version, integrity from
// `npm view @duckdb/node-bindings-linux-arm64@<version> dist.integrity`, os/cpu/libc, optional) and
// the edge from @duckdb/node-bindings. tests/infra/sluice-stack.test.ts fails while it is missing.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
let pruned = 0;
for (const [location, entry] of Object.entries(packages)) {
  const optional = entry.optionalDependencies;
  if (!optional) continue;
  for (const name of Object.keys(optional)) {
    const base = location === '' ? '' : `${location}/`;
    if (!(`${base}node_modules/${name}` in packages) && !(`node_modules/${name}` in packages)) {
      delete optional[name];
      pruned++;
    }
  }
  if (Object.keys(optional).length === 0) delete entry.optionalDependencies;
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`prune-lock: removed ${pruned} unresolvable optional dependencies`);
