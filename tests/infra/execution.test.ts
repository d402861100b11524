import { describe, expect, it } from 'vitest';
import { executionName, type LandedObject, landingDataset } from '../../shared/workflow/execution.ts';

const landed = (overrides: Partial<LandedObject> = {}): LandedObject => ({
  bucket: 'sluice-landing',
  key: 'tic-in-network/2026-01/acme_in-network-rates.json.gz',
  versionId: 'IYV3p45BT0ac8hjHg1houSdS1a.Mro8e',
  etag: 'b1946ac92492d2347c6235b4d2611184',
  ...overrides,
});

/** Step Functions accepts more, but CloudWatch Logs and X-Ray only these. */
const SAFE_NAME = /^[A-Za-z0-9_-]{1,80}$/;

describe('Function: executionName', () => {
  it('is the same for the same object version, so a duplicate delivery starts no second run', () => {
    expect(executionName(landed())).toBe(executionName(landed()));
  });

  it('differs for another version of the same key', () => {
    expect(executionName(landed({ versionId: 'other-version' }))).not.toBe(executionName(landed()));
  });

  it('uses the ETag to tell versions apart when there is no version id', () => {
    const a = landed({ versionId: undefined });
    expect(executionName(a)).toBe(executionName({ ...a }));
    expect(executionName(landed({ versionId: undefined, etag: 'ffff' }))).not.toBe(executionName(a));
  });

  it('differs for another key or bucket', () => {
    const base = executionName(landed());
    expect(executionName(landed({ key: 'tic-in-network/2026-02/acme_in-network-rates.json.gz' }))).not.toBe(
      base,
    );
    expect(executionName(landed({ bucket: 'other-landing' }))).not.toBe(base);
  });

  it('reads as dataset and file name, followed by the hash', () => {
    expect(executionName(landed())).toMatch(/^tic-in-network-acme_in-network-rates-json-gz-[0-9a-f]{32}$/);
  });

  it('stays within 80 allowed characters for any key', () => {
    const keys = [
      `tic-in-network/${'x'.repeat(1000)}.json`,
      'tic-in-network/dir with spaces/ünïcödé (1) [copy] {x} <y> #%&*?.json',
      'no-dataset.json',
      '////',
      '../../etc/passwd',
      '-/-/-',
    ];
    for (const key of keys) expect(executionName(landed({ key }))).toMatch(SAFE_NAME);
  });

  it('cannot name an object with neither version id nor ETag', () => {
    expect(() => executionName(landed({ versionId: undefined, etag: undefined }))).toThrow(
      /no version id or ETag/,
    );
  });
});

describe('Function: landingDataset', () => {
  it('is the first segment of the key', () => {
    expect(landingDataset('tic-in-network/2026/a.json')).toBe('tic-in-network');
    expect(landingDataset('tic-in-network/a.json')).toBe('tic-in-network');
  });

  it('is empty when the key names no dataset', () => {
    expect(landingDataset('a.json')).toBe('');
    expect(landingDataset('/a.json')).toBe('');
  });
});
