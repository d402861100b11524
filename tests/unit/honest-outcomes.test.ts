import { describe, expect, it } from 'vitest';
import { errorName } from '../../shared/cli/error-name.ts';
import { exitCodeOf } from '../../shared/cli/main.ts';
import { inCliTerms } from '../../shared/cli/option-flags.ts';
import { ConfigError, QuarantineThresholdError } from '../../shared/errors.ts';
import { SourceBusyError } from '../../shared/lake/source-lease.ts';
import { LambdaRuntimeError } from '../../shared/pipeline/lambda-runtime-error.ts';
import { qualityScore } from '../../shared/stages/reconcile/reconcile.ts';

/** A bronze and silver manifest's counts: one record path, one table of `accepted` rows. */
function counts(parsed: number, accepted: number, quarantined: number, warnings = 0, duplicates = 0) {
  return {
    bronze: { records: { items: parsed } },
    silver: {
      records: { items: { bronze: parsed, accepted, quarantined } },
      tables: {
        items: { rowsIn: accepted, rowsWritten: accepted - duplicates, duplicates },
        _quarantine: { rowsIn: quarantined, rowsWritten: quarantined, duplicates: 0 },
      },
      violations: warnings > 0 ? { 'items.x.format': { severity: 'warn', count: warnings, path: 'x' } } : {},
    },
  } as unknown as {
    bronze: Parameters<typeof qualityScore>[0];
    silver: Parameters<typeof qualityScore>[1];
  };
}

describe('Function: qualityScore', () => {
  it('counts quarantined records against validity: 4 of 8 quarantined is validity 0.5', () => {
    const { bronze, silver } = counts(8, 4, 4);
    expect(qualityScore(bronze, silver, 0, 0)).toEqual({
      score: 85,
      completeness: 1,
      validity: 0.5,
      uniqueness: 1,
      integrity: 1,
    });
  });

  it('gives validity 0 when every record was quarantined', () => {
    const { bronze, silver } = counts(3, 0, 3);
    expect(qualityScore(bronze, silver, 0, 0)).toMatchObject({ validity: 0, completeness: 1, score: 70 });
  });

  it('multiplies in rows kept with warnings, and is 100 for a clean file', () => {
    expect(qualityScore(counts(10, 10, 0).bronze, counts(10, 10, 0).silver, 5, 0).score).toBe(100);
    const { bronze, silver } = counts(10, 8, 2, 4);
    // 8/10 accepted × (1 − 4/8) rows without warnings.
    expect(qualityScore(bronze, silver, 0, 0).validity).toBe(0.4);
  });

  it('counts parsed records that silver did not account for against completeness', () => {
    const { bronze, silver } = counts(10, 5, 0);
    expect(qualityScore(bronze, silver, 0, 0).completeness).toBe(0.5);
  });
});

describe('Function: inCliTerms', () => {
  it('names the flag a CLI user sets instead of the option behind it', () => {
    expect(inCliTerms('127.0.0.1, a loopback address (set allowLoopback to permit it)')).toBe(
      '127.0.0.1, a loopback address (run with --allow-loopback to permit it)',
    );
    expect(inCliTerms('plain http is not allowed (set allowInsecureHttp to permit it)')).toBe(
      'plain http is not allowed (run with --allow-http to permit it)',
    );
    expect(inCliTerms('(set allowPrivate to permit it)')).toBe('(run with --allow-private to permit it)');
    expect(inCliTerms(new QuarantineThresholdError(4, 8, 0.05).message)).toBe(
      "4 of 8 records (50%) were quarantined, more than the threshold of 5%: the run's report lists " +
        'the rules they broke, with examples. If that share is expected, run with --quarantine-threshold 0.5 or more.',
    );
  });

  it('leaves other text alone', () => {
    expect(inCliTerms('set the allowLoopbackX option; reset allowLoopback')).toBe(
      'set the allowLoopbackX option; reset allowLoopback',
    );
  });
});

describe('Function: exitCodeOf (the CLI exit code of a failed command)', () => {
  it('gives 2, 3 or 1 by the error, also when it comes back by name from an invocation process', () => {
    const lease = {
      leaseVersion: 1 as const,
      dataset: 'd',
      sourceId: 's',
      location: 'file.json',
      holder: 'other-run',
      acquiredAt: '2026-01-01T00:00:00.000Z',
      renewedAt: '2026-01-01T00:00:00.000Z',
      expiresAt: '2026-01-01T00:20:00.000Z',
    };
    expect(exitCodeOf(new ConfigError('bad config'))).toBe(2);
    expect(exitCodeOf(new SourceBusyError(lease))).toBe(3);
    expect(exitCodeOf(new QuarantineThresholdError(7, 27, 0.05))).toBe(1);
    expect(exitCodeOf(new Error('anything else'))).toBe(1);
    // Under --lambda-limits: the same errors, thrown in the invocation's own process.
    expect(exitCodeOf(new LambdaRuntimeError('ConfigError', 'bad config'))).toBe(2);
    expect(exitCodeOf(new LambdaRuntimeError('SourceBusyError', 'held'))).toBe(3);
    expect(exitCodeOf(new LambdaRuntimeError('DuplicateRunError', 'held'))).toBe(3);
    expect(exitCodeOf(new LambdaRuntimeError('Sandbox.Timedout', 'Task timed out'))).toBe(1);
    expect(errorName(new LambdaRuntimeError('Sandbox.Timedout', 'Task timed out'))).toBe('Sandbox.Timedout');
    expect(errorName(new TypeError('x'))).toBe('Error');
  });
});
