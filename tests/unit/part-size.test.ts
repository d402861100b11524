import { describe, expect, it } from 'vitest';
import { MULTIPART_LIMITS } from '../../shared/ports/object-store.ts';
import { DEFAULT_PART_BYTES, partSizeFor } from '../../shared/stages/download/part-size.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

describe('Function: partSizeFor', () => {
  it('keeps the default part size for bodies that fit 10,000 default parts', () => {
    expect(partSizeFor(0)).toBe(DEFAULT_PART_BYTES);
    expect(partSizeFor(1)).toBe(DEFAULT_PART_BYTES);
    expect(partSizeFor(10_000 * DEFAULT_PART_BYTES)).toBe(DEFAULT_PART_BYTES);
  });

  it.each([
    ['just past 10,000 default parts', 10_000 * DEFAULT_PART_BYTES + 1],
    ['100 GiB', 100 * GiB],
    ['1 TB', 1e12],
    ['S3 largest object, 5 TiB', 5 * TiB],
  ])('grows with the declared size so that %s fits in 10,000 parts', (_, bytes) => {
    const part = partSizeFor(bytes)!;
    expect(Math.ceil(bytes / part)).toBeLessThanOrEqual(MULTIPART_LIMITS.maxParts);
    expect(part % MiB).toBe(0);
    expect(part).toBeGreaterThanOrEqual(MULTIPART_LIMITS.minPartBytes);
    expect(part).toBeLessThanOrEqual(MULTIPART_LIMITS.maxPartBytes);
    // The smallest such size in whole MiB: one MiB less would need more than 10,000 parts.
    if (part > DEFAULT_PART_BYTES) expect(Math.ceil(bytes / (part - MiB))).toBeGreaterThan(10_000);
  });

  it('gives a body of unknown length parts that reach 5 TiB', () => {
    const part = partSizeFor(undefined)!;
    expect(part).toBe(525 * MiB);
    expect(part * MULTIPART_LIMITS.maxParts).toBeGreaterThanOrEqual(5 * TiB);
  });

  it('refuses a body larger than S3 can hold', () => {
    expect(partSizeFor(5 * TiB + 1)).toBeUndefined();
  });

  it('never goes below S3 minimum, whatever is preferred', () => {
    expect(partSizeFor(100, 1024)).toBe(MULTIPART_LIMITS.minPartBytes);
  });
});
