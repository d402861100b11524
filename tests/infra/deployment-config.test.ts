import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type DeploymentConfigInput,
  loadDeploymentConfig,
  parseDeploymentConfig,
} from '../../infra/config/deployment-config.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';
import { ConfigError } from '../../shared/errors.ts';

const EXAMPLE = path.join(REPO_ROOT, 'sluice.config.json');

/** The example config with some fields replaced. */
function configWith(change: (config: DeploymentConfigInput) => void): unknown {
  const config = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as DeploymentConfigInput;
  change(config);
  return config;
}

/** The message of the ConfigError that parsing `value` throws. */
function problemsOf(value: unknown): string {
  try {
    parseDeploymentConfig(value, 'sluice.config.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('Function: loadDeploymentConfig', () => {
  it('accepts the example config and fills in the defaults', () => {
    const config = loadDeploymentConfig(EXAMPLE);
    expect(config).toMatchObject({
      stackName: 'sluice-dev',
      landingExpirationDays: 30,
      datasets: [
        { name: 'tic-in-network', freshnessHours: 48 },
        { name: 'tic-table-of-contents', freshnessHours: 168 },
      ],
      ingest: { memoryMb: 3008, timeoutMinutes: 15 },
      tracing: true,
      logLevel: 'INFO',
    });
  });

  it('defaults the quarantine-rate alarm threshold to 5%', () => {
    expect(loadDeploymentConfig(EXAMPLE).quarantineRateThreshold).toBe(0.05);
    expect(
      parseDeploymentConfig(configWith((c) => (c.quarantineRateThreshold = 0.2))).quarantineRateThreshold,
    ).toBe(0.2);
  });

  it('defaults the ingest sizing to 3008 MB and 15 minutes', () => {
    const config = parseDeploymentConfig(configWith((c) => delete c.ingest));
    expect(config.ingest).toEqual({ memoryMb: 3008, timeoutMinutes: 15 });
  });

  it('names a missing file and how to point at another one', () => {
    expect(() => loadDeploymentConfig('/nonexistent/sluice.config.json')).toThrow(
      /cannot read the deployment config \/nonexistent\/sluice\.config\.json.*-c config=FILE/,
    );
  });
});

describe('Function: parseDeploymentConfig', () => {
  it('names the field of a non-positive freshness window and what to put there', () => {
    const message = problemsOf(configWith((c) => (c.datasets[0]!.freshnessHours = -1)));
    expect(message).toContain('datasets.0.freshnessHours: expected a positive number');
    expect(message).toContain('Fix the fields above in sluice.config.json');
  });

  it('rejects a freshness window longer than CloudWatch can evaluate', () => {
    expect(problemsOf(configWith((c) => (c.datasets[1]!.freshnessHours = 200)))).toContain(
      'datasets.1.freshnessHours: expected at most 168 hours',
    );
  });

  it('accepts only built-in dataset names, and lists them', () => {
    const message = problemsOf(configWith((c) => (c.datasets[0]!.name = 'tic-out-of-network')));
    expect(message).toContain(
      'datasets.0.name: unknown dataset "tic-out-of-network": use one of tic-in-network',
    );
  });

  it('rejects a dataset listed twice', () => {
    const message = problemsOf(configWith((c) => (c.datasets[1]!.name = 'tic-in-network')));
    expect(message).toContain('datasets: each dataset may be listed only once');
  });

  it('rejects a quarantine-rate threshold that is not a share', () => {
    expect(problemsOf(configWith((c) => (c.quarantineRateThreshold = 5)))).toContain(
      'quarantineRateThreshold: expected a share from 0 to 1',
    );
  });

  it('rejects an ingest timeout beyond the Lambda maximum', () => {
    expect(problemsOf(configWith((c) => (c.ingest = { timeoutMinutes: 20 })))).toContain(
      'ingest.timeoutMinutes: expected a positive whole number from 1 to 15',
    );
  });

  it('reports every problem at once, one line per field', () => {
    const message = problemsOf({ stackName: '1-bad', landingExpirationDays: '30', datasets: [] });
    expect(message.split('\n').filter((line) => line.startsWith('  - '))).toEqual([
      expect.stringContaining('stackName: use 1–128 letters'),
      expect.stringContaining('landingExpirationDays: expected a positive whole number'),
      expect.stringContaining('datasets: list at least one dataset'),
    ]);
  });

  it('defaults the fan-out to 4 listed files at once and a week per execution, and checks both', () => {
    expect(loadDeploymentConfig(EXAMPLE).fanOut).toEqual({ maxConcurrency: 4, timeoutHours: 168 });
    const message = problemsOf(configWith((c) => (c.fanOut = { maxConcurrency: 0, timeoutHours: 1.5 })));
    expect(message).toContain('fanOut.maxConcurrency: expected a positive whole number from 1 to 1000');
    expect(message).toContain('fanOut.timeoutHours: expected a positive whole number from 1 to 8760');
  });

  it('defaults silver to 8 groups at once of 1536 MB each, merge buckets of 8192 MB, and checks them', () => {
    expect(loadDeploymentConfig(EXAMPLE).silver).toEqual({
      maxConcurrency: 8,
      groupTargetMb: 1536,
      bucketTargetMb: 8192,
    });
    expect(parseDeploymentConfig(configWith((c) => (c.silver = { maxConcurrency: 40 }))).silver).toEqual({
      maxConcurrency: 40,
      groupTargetMb: 1536,
      bucketTargetMb: 8192,
    });
    expect(problemsOf(configWith((c) => (c.silver = { bucketTargetMb: 10 })))).toContain(
      'silver.bucketTargetMb: expected a positive whole number from 64 to 65536',
    );
    // An inline Map runs at most 40 items at once.
    const message = problemsOf(configWith((c) => (c.silver = { maxConcurrency: 41, groupTargetMb: 10 })));
    expect(message).toContain('silver.maxConcurrency: expected a positive whole number from 1 to 40');
    expect(message).toContain('silver.groupTargetMb: expected a positive whole number from 64 to 4096');
    expect(problemsOf(configWith((c) => Object.assign(c, { silver: { maxConcurency: 2 } })))).toContain(
      'maxConcurency',
    );
  });

  it('defaults the pacing of bulk drops to 5 starts a second and 50 running executions, and checks both', () => {
    expect(loadDeploymentConfig(EXAMPLE).pacing).toEqual({ maxStartsPerSecond: 5, maxRunningExecutions: 50 });
    expect(parseDeploymentConfig(configWith((c) => (c.pacing = { maxStartsPerSecond: 0.5 }))).pacing).toEqual(
      {
        maxStartsPerSecond: 0.5,
        maxRunningExecutions: 50,
      },
    );
    const message = problemsOf(
      configWith((c) => (c.pacing = { maxStartsPerSecond: 0, maxRunningExecutions: 2.5 })),
    );
    expect(message).toContain(
      'pacing.maxStartsPerSecond: expected a number of executions started per second',
    );
    expect(message).toContain(
      'pacing.maxRunningExecutions: expected a positive whole number from 1 to 10000',
    );
  });

  it('refuses reserved concurrency below what the pacing lets run: those runs would fail throttled', () => {
    const message = problemsOf(
      configWith((c) => {
        c.ingest = { reservedConcurrency: 20 };
        c.pacing = { maxRunningExecutions: 30 };
        c.silver = { maxConcurrency: 8, reservedConcurrency: 4 };
      }),
    );
    expect(message).toContain(
      'ingest.reservedConcurrency: 20 is below pacing.maxRunningExecutions (30): each running execution',
    );
    expect(message).toContain('silver.reservedConcurrency: 4 is below silver.maxConcurrency (8)');
    const fits = parseDeploymentConfig(
      configWith((c) => {
        c.ingest = { reservedConcurrency: 30 };
        c.pacing = { maxRunningExecutions: 30 };
        c.silver = { reservedConcurrency: 100 };
      }),
    );
    expect(fits.silver.reservedConcurrency).toBe(100);
  });

  it('refuses a table of contents without the in-network dataset its fan-out ingests', () => {
    const message = problemsOf(configWith((c) => (c.datasets = [c.datasets[1]!])));
    expect(message).toContain('datasets: tic-table-of-contents is deployed without tic-in-network');
  });

  it('refuses a scheduled source whose URL carries a key or a signature in its query, naming it', () => {
    const source = { name: 'payer', dataset: 'tic-in-network', schedule: 'rate(1 day)' };
    for (const [url, named] of [
      ['https://example.com/in-network.json.gz?api_key=abc123', 'api_key'],
      [
        'https://example.com/f.json.gz?X-Amz-Signature=0a1b&X-Amz-Credential=AKIA',
        'X-Amz-Signature, X-Amz-Credential',
      ],
      ['https://example.com/f.json.gz?access_token=t&file=a', 'access_token'],
    ] as const) {
      const message = problemsOf(configWith((c) => Object.assign(c, { sources: [{ ...source, url }] })));
      expect(message, url).toContain(
        `sources.0.url: the URL's query carries a credential or a signature (${named})`,
      );
      expect(message, url).not.toContain('abc123');
    }
    // A parameter that tells files apart is no credential.
    expect(() =>
      parseDeploymentConfig(
        configWith((c) =>
          Object.assign(c, { sources: [{ ...source, url: 'https://example.com/f?file_key=b&page=2' }] }),
        ),
        'sluice.config.json',
      ),
    ).not.toThrow();
  });

  it('rejects an invalid alarm e-mail and unknown fields', () => {
    const message = problemsOf(configWith((c) => Object.assign(c, { alarmEmail: 'ops', alarmSms: '+1555' })));
    expect(message).toContain('alarmEmail: expected an e-mail address');
    expect(message).toContain('alarmSms');
  });
});
