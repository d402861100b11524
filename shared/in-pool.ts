/**
 * Store requests (or any async work) over many items, a bounded number at once: the last steps of a run
 * read and delete one small object per invocation or item, thousands for a large file, and one at a time
 * each costs a round trip (≈ 20–50 ms on S3).
 */

/** `work` of each item, at most `inFlight` at once; every started one settles before a failure is thrown. */
export async function inPool<T>(
  items: readonly T[],
  inFlight: number,
  work: (item: T) => Promise<unknown>,
): Promise<void> {
  await mapInPool(items, inFlight, (item) => work(item));
}

/** `work` of each item, at most `inFlight` at once, results in item order; every started one settles first. */
export async function mapInPool<T, R>(
  items: readonly T[],
  inFlight: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const index = next++;
      try {
        results[index] = await work(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(inFlight, items.length)) }, worker));
  if (failure) throw failure.error;
  return results;
}
