/**
 * glibc malloc settings for every sluice process (CLI, bench, Lambda). Node, DuckDB and the silver
 * worker threads allocate and free large buffers from many threads; by default glibc gives each thread
 * an arena of its own (up to 8 per core) that keeps what it freed. Two arenas measured ~20 % lower peak
 * RSS on a 1 GB run at no measured cost. (A fixed mmap threshold lowered RSS further but cost gunzip
 * a quarter of its speed: every 1 MiB buffer became an mmap.) `bin/sluice.js` repeats this in its
 * shebang, since it must be set before the process starts.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};

/**
 * V8 flags of the CLI and the bench (`bin/sluice.js` repeats them in its shebang). They are process-wide,
 * so the silver worker threads get them too. Not on Lambda: NODE_OPTIONS refuses the first and the last,
 * and Lambda's bootstrap sizes the heap from the function's memory unless NODE_OPTIONS names a heap size.
 * - `--single-threaded-gc`: on 2 cores, V8's parallel GC threads compete with the scanner and with zlib
 *   on the thread pool; GC on the main thread measured ~8 % faster.
 * - `--max-semi-space-size=32` (MB, default 16): a silver worker's rows, batched by the hundreds, outlive
 *   a small young generation and are copied into the old one only to die there. Twice the space: a
 *   silver group ~10 % faster.
 * - `--heap-growing-percent=25`: after a full GC, the old generation may grow by a quarter before the
 *   next, instead of up to 4×. Its live data is ~20–40 MB, yet it grew to ~160 MB of mostly garbage per
 *   worker; full GCs take ~15 ms, so more of them cost nothing measurable.
 * Together, on a 1 GB run: silver groups −2 s, peak RSS −50 to −170 MB (docs/BENCHMARKS.md, session 5).
 */
export const NODE_FLAGS: readonly string[] = [
  '--single-threaded-gc',
  '--max-semi-space-size=32',
  '--heap-growing-percent=25',
];
