import { describe, expect, it } from 'vitest';
import { RETIRED_GENERATIONS, retire } from '../../shared/stages/silver/merge-state.ts';

const object = (key: string) => ({ key, rows: 1, bytes: 1, sha256: 'x' });

describe('Function: retire (a merged state’s files, kept for readers of earlier manifests)', () => {
  it('retires what the replaced manifest named, newest first, and expires generations past the limit', () => {
    let state: Parameters<typeof retire>[0] = { current: object('c0'), deletes: object('d0') };
    const expiredAt: string[][] = [];
    for (let i = 1; i <= RETIRED_GENERATIONS + 2; i++) {
      const { retired, expired } = retire(state, [`c${i}`, `d${i}`]);
      expiredAt.push(expired);
      expect(retired[0]).toEqual([`c${i - 1}`, `d${i - 1}`]);
      expect(retired.length).toBe(Math.min(i, RETIRED_GENERATIONS));
      state = { current: object(`c${i}`), deletes: object(`d${i}`), retired };
    }
    expect(expiredAt.slice(0, RETIRED_GENERATIONS).flat()).toEqual([]);
    expect(expiredAt[RETIRED_GENERATIONS]).toEqual(['c0', 'd0']);
    expect(expiredAt[RETIRED_GENERATIONS + 1]).toEqual(['c1', 'd1']);
  });

  it('never retires or expires a key the new manifest names again (a refold to the same sources)', () => {
    const state = {
      current: object('c2'),
      deletes: null,
      retired: [['c1'], ['c0', 'd0']],
    };
    expect(retire(state, ['c0', 'd0'])).toEqual({ retired: [['c2'], ['c1']], expired: [] });
    expect(retire(state, ['c2', undefined])).toEqual({ retired: [[], ['c1']], expired: ['c0', 'd0'] });
  });

  it('has nothing to retire without a state before', () => {
    expect(retire(undefined, ['c0'])).toEqual({ retired: [], expired: [] });
  });
});
