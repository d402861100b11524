#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --single-threaded-gc
// --single-threaded-gc: on 2 cores, V8's parallel GC threads compete with the scanner and with zlib on
// the thread pool; keeping GC on the main thread measured ~8 % faster (docs/BENCHMARKS.md).
// MALLOC_ARENA_MAX: keeps memory freed by many threads from piling up (why and how much:
// shared/runtime-memory.ts, which the bench and the Lambda functions use; keep the two in step).
// Runs the TypeScript sources directly through tsx's loader: no build step between a clone and a run.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../shared/cli/main.ts');
process.exitCode = await main(process.argv);
