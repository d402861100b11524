import { describe, expect, it } from 'vitest';
import type { TableProfile } from '../../shared/ports/table-inspector.ts';
import { combineTableFacts, type FileFacts } from '../../shared/report/table-facts.ts';

const profile = (
  rows: number,
  rate: { min: string; max: string },
  code: { min: string; max: string },
): TableProfile => ({
  rows,
  columns: [
    { name: 'negotiated_rate', type: 'DOUBLE', nulls: 1, distinct: rows, ...rate },
    { name: 'billing_code', type: 'VARCHAR', nulls: 0, distinct: 2, ...code },
    { name: 'provider_group_ids', type: 'VARCHAR[]' },
  ],
});

describe("a table's facts from the facts of its files", () => {
  it("keeps the one file's profile as it is", () => {
    const only = profile(3, { min: '1.5', max: '9' }, { min: 'A', max: 'B' });
    expect(combineTableFacts({ prices: [{ profile: only }] }).profiles.prices).toEqual(only);
  });

  it('adds rows and nulls up, orders numbers as numbers and text by bytes, and claims no distinct count', () => {
    const facts: FileFacts[] = [
      { profile: profile(10, { min: '9.5', max: '100' }, { min: 'b', max: 'é' }) },
      { profile: profile(5, { min: '10', max: '20' }, { min: 'B', max: 'z' }) },
    ];
    expect(combineTableFacts({ prices: facts }).profiles.prices).toEqual({
      rows: 15,
      columns: [
        // As text, '10' < '9.5' and '100' < '20': the numbers decide.
        { name: 'negotiated_rate', type: 'DOUBLE', nulls: 2, min: '9.5', max: '100' },
        // UTF-8 byte order: 'B' < 'b' < 'z' < 'é'.
        { name: 'billing_code', type: 'VARCHAR', nulls: 0, min: 'B', max: 'é' },
        { name: 'provider_group_ids', type: 'VARCHAR[]' },
      ],
    });
  });

  it("shows a file whose profile failed as the table's error", () => {
    const facts: FileFacts[] = [
      { profile: profile(1, { min: '1', max: '1' }, { min: 'a', max: 'a' }) },
      { profile: { error: 'profile not read: bad footer' } },
    ];
    expect(combineTableFacts({ prices: facts }).profiles.prices).toEqual({
      error: 'profile not read: bad footer',
    });
  });

  it('keeps the first three examples per rule across the files, by rule', () => {
    const example = (ruleId: string, n: number) => ({
      ruleId,
      recordPath: 'in_network',
      fieldPath: `x[${n}]`,
      message: `m${n}`,
    });
    const empty: TableProfile = { rows: 0, columns: [] };
    const facts = combineTableFacts({
      _quarantine: [
        { profile: empty, quarantineExamples: [example('b', 1), example('b', 2), example('a', 1)] },
        { profile: empty, quarantineExamples: [example('b', 3), example('b', 4), example('a', 2)] },
      ],
    });
    expect(facts.quarantineExamples.map((e) => `${e.ruleId}${e.fieldPath}`)).toEqual([
      'ax[1]',
      'ax[2]',
      'bx[1]',
      'bx[2]',
      'bx[3]',
    ]);
  });
});
