import { createHash } from 'node:crypto';
import type { SilverContract } from './contract.ts';

/**
 * A silver contract's fingerprint: the sha256 of what decides the rows it writes, as data — its
 * `contractVersion` (bumped by hand when normalization code changes), its tables (names, columns, types,
 * nullability, keys), its references, its rules (ids and severities), how it treats drift, and its
 * `definition` (a generic contract's config section). Deterministic: the same contract always gives the
 * same fingerprint, in any process. It is part of every silver build id (`silverBuildOf`), so a contract
 * change builds new files beside the current ones instead of rewriting them.
 */
export function contractFingerprint(contract: SilverContract): string {
  const cached = fingerprints.get(contract);
  if (cached !== undefined) return cached;
  const described = {
    dataset: contract.dataset,
    contractVersion: contract.contractVersion,
    onDrift: contract.onDrift,
    tables: contract.tables.map((table) => ({
      name: table.name,
      key: table.key,
      columns: table.columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable ?? true })),
    })),
    references: contract.references ?? [],
    rules: (contract.rules ?? []).map((rule) => ({ id: rule.id, severity: rule.severity })),
    definition: contract.definition ?? null,
  };
  const fingerprint = createHash('sha256').update(JSON.stringify(described)).digest('hex');
  fingerprints.set(contract, fingerprint);
  return fingerprint;
}

/** Contracts are immutable objects made once per process (or per config): hash each once. */
const fingerprints = new WeakMap<SilverContract, string>();
