#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --single-threaded-gc --max-semi-space-size=32 --heap-growing-percent=25
// The V8 flags (GC tuned for 2 cores and for silver's row batches) and MALLOC_ARENA_MAX (memory freed
// by many threads must not pile up): why and how much in shared/runtime-memory.ts, whose NODE_FLAGS and
// MALLOC_ENV the bench uses (Lambda: MALLOC_ENV only); a test keeps this line and them in step.
// Runs the CLI compiled once into dist/ (rebuilt when a source changed; see scripts/cli-bundle.mjs), or
// the TypeScript sources through tsx when it cannot be built: no build step between a clone and a run.
import { loadCli } from '../scripts/cli-bundle.mjs';

const { main } = await loadCli();
process.exitCode = await main(process.argv);
