/**
 * glibc malloc settings for every sluice process (CLI, bench, Lambda). Node, DuckDB and the silver
 * worker threads allocate and free many large buffers from many threads; with glibc's defaults each
 * thread gets an arena of its own that keeps what it freed, and the mmap threshold adapts upwards, so
 * freed 1 MiB buffers stay in the heap. Measured on a 1 GB run (docs/BENCHMARKS.md): peak RSS
 * 1.59 → 1.21 GB, time unchanged within noise. `bin/sluice.js` repeats them in its shebang, since they
 * must be set before the process starts.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  /** At most two arenas, whatever the thread count. */
  MALLOC_ARENA_MAX: '2',
  /** Allocations of 256 KiB and more are mmap'd, so freeing gives them back (a fixed threshold). */
  MALLOC_MMAP_THRESHOLD_: '262144',
  /** Free memory above 1 MiB at the top of the heap is returned to the system. */
  MALLOC_TRIM_THRESHOLD_: '1048576',
};
