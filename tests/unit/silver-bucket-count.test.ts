import { describe, expect, it } from 'vitest';
import {
  DEFAULT_SILVER_BUCKET_TARGET_BYTES,
  MAX_SILVER_BUCKETS,
  mergeBucketOfPart,
  silverBucketCount,
} from '../../shared/stages/silver/silver-work-files.ts';

const GiB = 1024 ** 3;
const parts = (count: number, bytes: number) =>
  Array.from({ length: count }, () => ({ uncompressedBytes: bytes }));

describe('Function: silverBucketCount', () => {
  it('gives one bucket per target of bronze bytes, at least 1 and at most MAX_SILVER_BUCKETS', () => {
    expect(silverBucketCount([])).toBe(1);
    expect(silverBucketCount(parts(10, 1_000))).toBe(1);
    expect(silverBucketCount(parts(32, GiB / 4))).toBe(1); // 8 GiB: the default target exactly
    expect(silverBucketCount(parts(33, GiB / 4))).toBe(2);
    expect(silverBucketCount(parts(4000, GiB / 4))).toBe(
      Math.ceil((1000 * GiB) / DEFAULT_SILVER_BUCKET_TARGET_BYTES),
    );
    expect(silverBucketCount(parts(100_000, GiB))).toBe(MAX_SILVER_BUCKETS);
    expect(silverBucketCount(parts(10, 1_000), { targetBucketBytes: 3_000 })).toBe(4);
    expect(silverBucketCount(parts(10, 1_000), { targetBucketBytes: 1, maxBuckets: 6 })).toBe(6);
  });

  it('depends on the total bytes alone, not on how they are cut into parts', () => {
    const total = 20 * GiB;
    expect(silverBucketCount(parts(80, total / 80))).toBe(silverBucketCount(parts(640, total / 640)));
  });
});

describe('Function: mergeBucketOfPart', () => {
  it('gives consecutive parts to each bucket, about equally many, every bucket some when parts allow', () => {
    const buckets = Array.from({ length: 10 }, (_, part) => mergeBucketOfPart(part, 10, 3));
    expect(buckets).toEqual([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    expect(new Set(Array.from({ length: 7 }, (_, p) => mergeBucketOfPart(p, 7, 7)))).toEqual(
      new Set([0, 1, 2, 3, 4, 5, 6]),
    );
    // More buckets than parts: some get none, none is out of range.
    expect(Array.from({ length: 2 }, (_, p) => mergeBucketOfPart(p, 2, 5))).toEqual([0, 2]);
    expect(mergeBucketOfPart(0, 0, 4)).toBe(0);
  });
});
