import { describe, expect, it } from 'vitest';
import { joinList, numbersFit } from '../../shared/adapters/duckdb/column-batches.ts';

describe('joinList and numbersFit', () => {
  it('joins text lists by U+001F, the empty list to the empty text', () => {
    expect(joinList([])).toBe('');
    expect(joinList(['a'])).toBe('a');
    expect(joinList(['a', 'b c', ''])).toBe('a\u001fb c\u001f');
  });

  it('refuses text lists that would not split back exactly', () => {
    // [''] would read back as []; a separator or marker inside an element would split it or end its row.
    for (const items of [
      [''],
      ['a\u001fb'],
      ['a', '\u001f'],
      ['x\u001ey'],
      ['\u001d'],
      ['a', 'b\u001dc'],
      ['a', 1],
      [null],
    ]) {
      expect(joinList(items), JSON.stringify(items)).toBeUndefined();
    }
  });

  it('lets number lists travel as doubles only when a double carries every element as itself', () => {
    expect(numbersFit('BIGINT', [])).toBe(true);
    expect(numbersFit('BIGINT', [1, -2, 9_007_199_254_740_991])).toBe(true);
    expect(numbersFit('DOUBLE', [0.1, 1e21, -1.5e-7, 1.5])).toBe(true);
    for (const items of [[2 ** 53], [1.5], [1n], ['1'], [null], [-0]]) {
      expect(numbersFit('BIGINT', items), String(items)).toBe(false);
    }
    for (const items of [[-0], [Number.NaN], [Number.POSITIVE_INFINITY], ['1'], [null]]) {
      expect(numbersFit('DOUBLE', items), String(items)).toBe(false);
    }
  });
});
