#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --single-threaded-gc
// --single-threaded-gc: on 2 cores, V8's parallel GC threads compete with the scanner and with zlib on
// the thread pool; keeping GC on the main thread measured ~8 % faster (docs/BENCHMARKS.md).
// MALLOC_ARENA_MAX=2: glibc gives every thread (silver workers, DuckDB's, libuv's) an arena of its own
// and keeps what they free; two arenas cut the peak RSS of a 1 GB run by ~20 % at no measured cost.
// Runs the TypeScript sources directly through tsx's loader: no build step between a clone and a run.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../shared/cli/main.ts');
process.exitCode = await main(process.argv);
