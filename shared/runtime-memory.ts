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
