import { describe, expect, it } from 'vitest';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { genericContract } from '../../shared/contracts/generic-contract.ts';
import type { SilverContract } from '../../shared/contracts/silver/contract.ts';
import { contractFingerprint } from '../../shared/contracts/silver/contract-fingerprint.ts';
import { silverBuildOf, silverManifestKey } from '../../shared/lake/keys.ts';

const inNetwork = silverContractFor('tic-in-network')!;
const bronze = { dataset: 'd', sourceId: 's', version: 'v', datasetConfigSha256: 'a'.repeat(64) };
const buildOf = (contract: SilverContract, configSha = bronze.datasetConfigSha256) =>
  silverBuildOf({ ...bronze, datasetConfigSha256: configSha }, contractFingerprint(contract)).build;

/** The contract with one thing changed: a copy, so the shipped one stays as it is. */
const changed = (patch: Partial<SilverContract>): SilverContract => ({ ...inNetwork, ...patch });

describe('Function: contractFingerprint, and the silver build id it is part of', () => {
  it('is deterministic: the same contract, or an equal copy of it, gives the same fingerprint and build', () => {
    expect(contractFingerprint(inNetwork)).toMatch(/^[0-9a-f]{64}$/);
    expect(contractFingerprint(changed({}))).toBe(contractFingerprint(inNetwork));
    expect(buildOf(changed({}))).toBe(buildOf(inNetwork));
    expect(buildOf(inNetwork)).toMatch(/^[0-9a-f]{8}$/);
  });

  it('changes with the contractVersion, a column type, a new column, a key, a rule severity', () => {
    const [first, ...rest] = inNetwork.tables;
    const variants: SilverContract[] = [
      changed({ contractVersion: 'tic-in-network/999' }),
      changed({
        tables: [
          { ...first!, columns: first!.columns.map((c, i) => (i === 0 ? { ...c, type: 'BIGINT' } : c)) },
          ...rest,
        ],
      }),
      changed({
        tables: [
          { ...first!, columns: [...first!.columns, { name: 'new_column', type: 'VARCHAR' }] },
          ...rest,
        ],
      }),
      changed({ tables: [{ ...first!, key: [...first!.key, 'extra'] }, ...rest] }),
      changed({
        rules: inNetwork.rules!.map((r, i) =>
          i === 0 ? { ...r, severity: r.severity === 'warn' ? 'quarantine' : 'warn' } : r,
        ),
      }),
    ];
    const builds = new Set([buildOf(inNetwork), ...variants.map((v) => buildOf(v))]);
    expect(builds.size).toBe(variants.length + 1);
  });

  it('changes with a generic dataset config: a new column, or a changed source mapping', () => {
    const config = (columns: Record<string, unknown>[]) =>
      genericContract(
        parseDatasetConfig({ name: 'rows', format: 'ndjson', silver: { table: 'rows', columns } }),
      );
    const base = config([{ name: 'id', type: 'integer' }]);
    const builds = [
      base,
      config([{ name: 'id', type: 'integer' }]),
      config([{ name: 'id', type: 'integer', source: 'ident' }]),
      config([
        { name: 'id', type: 'integer' },
        { name: 'label', type: 'string' },
      ]),
    ].map((contract) => buildOf(contract));
    expect(builds[1]).toBe(builds[0]);
    expect(new Set(builds).size).toBe(3);
  });

  it('also changes with the config bronze was parsed under, and names the manifest key', () => {
    expect(buildOf(inNetwork, 'b'.repeat(64))).not.toBe(buildOf(inNetwork));
    const ref = silverBuildOf(bronze, contractFingerprint(inNetwork));
    expect(silverManifestKey(ref)).toBe(`silver/d/_manifests/source=s/version=v/${ref.build}.json`);
  });

  it('is declared by every shipped contract', () => {
    for (const name of ['tic-in-network', 'tic-allowed-amounts', 'tic-table-of-contents']) {
      expect(silverContractFor(name)!.contractVersion).toMatch(new RegExp(`^${name}/\\d+$`));
    }
  });
});
