import type { DriftFinding, RuleViolation } from '../../contracts/silver/table.ts';
import type { SilverManifest } from '../../contracts/silver-manifest.ts';

type Violation = SilverManifest['violations'][string];
type Drift = SilverManifest['drift'][string];

/** Longest example kept per violation or drift finding. */
const EXAMPLE_CHARS = 200;

/**
 * What a run over some bronze parts found, as plain data (it crosses worker threads and, on AWS, Step
 * Functions states). Findings are entry lists rather than objects so that their order — first seen
 * first — survives any transport; merged in part order, that order and the examples are exactly those
 * of one pass over all parts.
 */
export interface SilverStats {
  /** Per record path: records accepted into silver and records quarantined. */
  readonly records: Readonly<Record<string, { readonly accepted: number; readonly quarantined: number }>>;
  /** Per rule id, in the order first seen: severity, path, count and the first example. */
  readonly violations: readonly (readonly [string, Violation])[];
  /** Per `<kind>:<path>`, in the order first seen: count and the first example. */
  readonly drift: readonly (readonly [string, Drift])[];
}

/** Counts records and findings while a group of bronze parts goes through the contract. */
export class SilverStatsCounter {
  readonly records: Record<string, { accepted: number; quarantined: number }>;
  private readonly violations = new Map<string, Violation>();
  private readonly drift = new Map<string, Drift>();

  constructor(recordPaths: Iterable<string>) {
    this.records = Object.fromEntries(
      [...recordPaths].map((path) => [path, { accepted: 0, quarantined: 0 }]),
    );
  }

  violation(violation: RuleViolation): void {
    const seen = this.violations.get(violation.ruleId);
    if (seen) seen.count++;
    else {
      this.violations.set(violation.ruleId, {
        severity: violation.severity,
        path: violation.path,
        count: 1,
        example: violation.message.slice(0, EXAMPLE_CHARS),
      });
    }
  }

  driftFinding(finding: DriftFinding): void {
    const id = `${finding.kind}:${finding.path}`;
    const seen = this.drift.get(id);
    if (seen) seen.count++;
    else
      this.drift.set(id, { kind: finding.kind, count: 1, example: finding.example.slice(0, EXAMPLE_CHARS) });
  }

  toStats(): SilverStats {
    return { records: this.records, violations: [...this.violations], drift: [...this.drift] };
  }
}

/** Stats of consecutive groups of parts, given in part order, as one pass over all of them would count. */
export function mergeSilverStats(groups: readonly SilverStats[]): SilverStats {
  const records: Record<string, { accepted: number; quarantined: number }> = {};
  const violations = new Map<string, Violation>();
  const drift = new Map<string, Drift>();
  for (const group of groups) {
    for (const [path, counts] of Object.entries(group.records)) {
      const total = records[path] ?? { accepted: 0, quarantined: 0 };
      total.accepted += counts.accepted;
      total.quarantined += counts.quarantined;
      records[path] = total;
    }
    addFindings(violations, group.violations);
    addFindings(drift, group.drift);
  }
  return { records, violations: [...violations], drift: [...drift] };
}

/** Adds counts; an id already seen keeps its first example (from an earlier group). */
function addFindings<T extends { count: number }>(
  into: Map<string, T>,
  findings: readonly (readonly [string, T])[],
): void {
  for (const [id, finding] of findings) {
    const seen = into.get(id);
    if (seen) seen.count += finding.count;
    else into.set(id, { ...finding });
  }
}
