import { describe, expect, it } from 'vitest';
import { joinList } from '../../shared/adapters/duckdb/column-batches.ts';

describe('joinList', () => {
  it('joins text lists by U+001F, the empty list to the empty text', () => {
    expect(joinList('VARCHAR', [])).toBe('');
    expect(joinList('VARCHAR', ['a'])).toBe('a');
    expect(joinList('VARCHAR', ['a', 'b c', ''])).toBe('a\u001fb c\u001f');
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
      expect(joinList('VARCHAR', items), JSON.stringify(items)).toBeUndefined();
    }
  });

  it('joins numbers by commas when text round-trips them, and refuses the rest', () => {
    expect(joinList('BIGINT', [])).toBe('');
    expect(joinList('BIGINT', [1, -2, 9_007_199_254_740_991])).toBe('1,-2,9007199254740991');
    expect(joinList('DOUBLE', [0.1, 1e21, -1.5e-7])).toBe('0.1,1e+21,-1.5e-7');
    for (const items of [[2 ** 53], [1.5], [1n], ['1'], [null]]) {
      expect(joinList('BIGINT', items), String(items)).toBeUndefined();
    }
    for (const items of [[-0], [Number.NaN], [Number.POSITIVE_INFINITY], ['1']]) {
      expect(joinList('DOUBLE', items), String(items)).toBeUndefined();
    }
  });
});
