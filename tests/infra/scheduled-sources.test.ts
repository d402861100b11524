import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DeploymentConfigInput,
  loadDeploymentConfig,
  parseDeploymentConfig,
} from '../../infra/config/deployment-config.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';
import { SluiceStack } from '../../infra/stacks/sluice-stack.ts';
import { LAMBDA_SERVICE_ERRORS, StateName, TRANSIENT_ERRORS } from '../../shared/workflow/definition.ts';

// biome-ignore lint/suspicious/noExplicitAny: a synthesized template is untyped JSON; the assertions check its shape.
type Json = any;
type Resource = { Type: string; Properties: Record<string, Json> };

const CMS_URL = 'https://example.com/tic/in-network.json';
const TOC_URL = 'https://payer.example.org/toc.json';

/** The example deployment plus two sources, one of them with credentials. */
const baseConfig = (): DeploymentConfigInput => {
  const example = JSON.parse(readFileSync(path.join(REPO_ROOT, 'sluice.config.json'), 'utf8'));
  return {
    ...example,
    sources: [
      { name: 'cms-sample', url: CMS_URL, dataset: 'tic-in-network', schedule: 'cron(0 6 * * ? *)' },
      {
        name: 'payer-toc',
        url: TOC_URL,
        dataset: 'tic-table-of-contents',
        schedule: 'rate(1 day)',
        credentials: { kind: 'header', name: 'X-Api-Key' },
      },
    ],
  };
};

let outdir: string;
let stack: SluiceStack;
let resources: Record<string, Resource>;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);
const statements = (role: { node: { defaultChild?: unknown } }) =>
  ofType('AWS::IAM::Policy')
    .filter(([, p]) => p.Properties.Roles.some((r: Json) => r.Ref === logicalId(role)))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[]);

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'sluice-cdk-sources-'));
  const cdkJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8'));
  const app = new App({ outdir, context: cdkJson.context });
  stack = new SluiceStack(app, 'SluiceSources', { config: parseDeploymentConfig(baseConfig()) });
  resources = Template.fromStack(stack).toJSON().Resources;
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('Construct: ScheduledSources (two sources, one with credentials)', () => {
  it('schedules each source with EventBridge Scheduler, its input naming the source and no secret', () => {
    const schedules = ofType('AWS::Scheduler::Schedule').map(([, r]) => r.Properties);
    expect(schedules.map((s) => s.ScheduleExpression).sort()).toEqual(['cron(0 6 * * ? *)', 'rate(1 day)']);
    const machine = logicalId(stack.workflow.stateMachine);
    const dlq = logicalId(stack.sources.deadLetterQueue!);
    const role = logicalId(stack.sources.schedulerRole!);
    for (const s of schedules) {
      expect(s.FlexibleTimeWindow).toEqual({ Mode: 'OFF' });
      expect(s.Target.Arn).toEqual({ Ref: machine });
      expect(s.Target.RoleArn).toEqual({ 'Fn::GetAtt': [role, 'Arn'] });
      expect(s.Target.DeadLetterConfig).toEqual({ Arn: { 'Fn::GetAtt': [dlq, 'Arn'] } });
      expect(s.Target.RetryPolicy.MaximumRetryAttempts).toBeGreaterThan(0);
      expect(s.Target.RetryPolicy.MaximumEventAgeInSeconds).toBeGreaterThan(0);
    }
    const inputs = schedules
      .map((s) => JSON.parse(s.Target.Input))
      .sort((a, b) => a.source.name.localeCompare(b.source.name));
    expect(inputs).toEqual([
      { source: { name: 'cms-sample', url: CMS_URL, dataset: 'tic-in-network' } },
      {
        source: {
          name: 'payer-toc',
          url: TOC_URL,
          dataset: 'tic-table-of-contents',
          credentials: { kind: 'header', name: 'X-Api-Key' },
        },
      },
    ]);
    expect(resources[dlq]!.Type).toBe('AWS::SQS::Queue');
  });

  it("gives the schedules' role only StartExecution on this state machine (and SendMessage to its DLQ)", () => {
    const role = stack.sources.schedulerRole!;
    const trust = resources[logicalId(role)]!.Properties.AssumeRolePolicyDocument.Statement;
    expect(trust.map((s: Json) => s.Principal.Service)).toEqual(['scheduler.amazonaws.com']);
    const granted = statements(role).map((s) => ({ Action: s.Action, Resource: s.Resource }));
    expect(granted).toEqual([
      { Action: 'states:StartExecution', Resource: { Ref: logicalId(stack.workflow.stateMachine) } },
      {
        Action: 'sqs:SendMessage',
        Resource: { 'Fn::GetAtt': [logicalId(stack.sources.deadLetterQueue!), 'Arn'] },
      },
    ]);
  });

  it('creates one secret per source with credentials, with a generated placeholder', () => {
    const secrets = ofType('AWS::SecretsManager::Secret');
    expect(secrets).toHaveLength(1);
    const [, secret] = secrets[0]!;
    expect(secret.Properties.Name).toBe('sluice-dev/sources/payer-toc');
    expect(secret.Properties.GenerateSecretString).toBeDefined();
    expect(secret.Properties.SecretString).toBeUndefined();
    expect([...stack.sources.secrets.keys()]).toEqual(['payer-toc']);
  });

  it('lets the download function read only those secrets and write only to landing/_downloads/<dataset>/*', () => {
    const fn = resources[logicalId(stack.sources.download.function)]!;
    expect(fn.Properties.Architectures).toEqual(['arm64']);
    expect(fn.Properties.Environment.Variables.SOURCE_SECRET_PREFIX).toBe('sluice-dev/sources/');
    const all = statements(stack.sources.download.role);
    const secretId = logicalId(stack.sources.secrets.get('payer-toc')!);
    const secretStatements = all.filter((s) =>
      [s.Action].flat().some((a: string) => a.startsWith('secretsmanager:')),
    );
    expect(secretStatements.flatMap((s) => [s.Action].flat())).toContain('secretsmanager:GetSecretValue');
    for (const s of secretStatements) expect(s.Resource).toEqual({ Ref: secretId });
    const s3 = all.filter((s) => [s.Action].flat().some((a: string) => a.startsWith('s3:')));
    expect(s3.map((s) => s.Sid)).toEqual(['WriteLanding', 'ListLanding']);
    // Delete: only the download's own checkpoint beside its landing key, so only under _downloads/.
    expect([s3[0]!.Action].flat().sort()).toEqual([
      's3:AbortMultipartUpload',
      's3:DeleteObject',
      's3:GetObject',
      's3:ListMultipartUploadParts',
      's3:PutObject',
    ]);
    const landing = logicalId(stack.storage.landingBucket);
    // Listing (to learn whether a checkpoint exists without a 403-or-404 GET) under the same prefixes.
    expect(s3[1]).toMatchObject({
      Action: 's3:ListBucket',
      Resource: { 'Fn::GetAtt': [landing, 'Arn'] },
      Condition: {
        StringLike: { 's3:prefix': ['_downloads/tic-in-network/*', '_downloads/tic-table-of-contents/*'] },
      },
    });
    // One part is spooled to /tmp: up to 525 MiB for a source of unknown size.
    expect(fn.Properties.EphemeralStorage).toEqual({ Size: 1024 });
    expect(s3[0]!.Resource).toEqual(
      ['tic-in-network', 'tic-table-of-contents'].map((dataset) => ({
        'Fn::Join': ['', [{ 'Fn::GetAtt': [landing, 'Arn'] }, `/_downloads/${dataset}/*`]],
      })),
    );
    // Nothing else: no other bucket, no wildcard on secrets.
    const lake = logicalId(stack.storage.lakeBucket);
    expect(JSON.stringify(all)).not.toContain(lake);
  });

  it('starts the workflow with HasSource → Download → DownloadDone? → Landed → Ingest, Download retried, caught and looped', () => {
    const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0]!;
    // The definition's text, its placeholders (`${...}`, the deployed resources) as they are.
    const definition = JSON.parse(machine.Properties.DefinitionString) as {
      StartAt: string;
      States: Record<string, Json>;
    };
    expect(definition.StartAt).toBe(StateName.hasSource);
    expect(definition.States[StateName.hasSource]).toEqual({
      Type: 'Choice',
      Choices: [
        { Variable: '$.rebuild', IsPresent: true, Next: StateName.planRebuild },
        { Variable: '$.source.url', IsPresent: true, Next: StateName.download },
      ],
      Default: StateName.dropped,
    });
    const download = definition.States[StateName.download];
    expect(download).toMatchObject({
      Type: 'Task',
      Parameters: { 'source.$': '$.source', 'executionId.$': '$$.Execution.Id' },
      ResultPath: '$.download',
      Next: StateName.downloadDone,
    });
    // A download whose invocation ran out of time returns `partial` and runs again from its checkpoint.
    expect(definition.States[StateName.downloadDone]).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.download.status', StringEquals: 'partial', Next: StateName.download }],
      Default: StateName.landed,
    });
    expect(download.Retry.map((r: Json) => r.ErrorEquals)).toEqual([
      [...LAMBDA_SERVICE_ERRORS],
      [...TRANSIENT_ERRORS],
    ]);
    expect(download.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.recordFailure },
    ]);
    expect(definition.States[StateName.landed]).toEqual({
      Type: 'Pass',
      Parameters: {
        'bucket.$': '$.download.bucket',
        'key.$': '$.download.key',
        'dataset.$': '$.download.dataset',
        'hasSilver.$': '$.download.hasSilver',
        // The source's URL (credentials redacted) is recorded with the run.
        origin: { 'url.$': '$.download.url' },
      },
      Next: StateName.ingest,
    });
  });

  it("alarms on the schedules' dead-letter queue (depth and oldest age), not on retried download errors", () => {
    const alarms = Object.values(resources)
      .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
      .map((r) => JSON.stringify(r.Properties));
    const dlq = logicalId(stack.sources.deadLetterQueue!);
    for (const metric of ['ApproximateNumberOfMessagesVisible', 'ApproximateAgeOfOldestMessage']) {
      expect(alarms.some((a) => a.includes(metric) && a.includes(dlq))).toBe(true);
    }
    // A download that fails for good fails its execution, which is alarmed (ExecutionsFailed).
    const download = logicalId(stack.sources.download.function);
    expect(alarms.filter((a) => a.includes(download))).toEqual([]);
  });

  it('passes cdk-nag (AwsSolutions)', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations).toEqual([]);
    expect(report.success).toBe(true);
  });
});

describe('Deployment config: sources', () => {
  const withSource = (patch: Record<string, unknown>, index = 0) => {
    const config = baseConfig();
    const sources = [...(config.sources ?? [])] as Record<string, unknown>[];
    sources[index] = { ...sources[index], ...patch };
    return { ...config, sources };
  };

  it.each<[string, Record<string, unknown>, number]>([
    ['sources.0.url', { url: 'http://example.com/x.json' }, 0],
    ['sources.0.dataset', { dataset: 'tic-allowed-amounts' }, 0],
    ['sources.0.schedule', { schedule: 'every day' }, 0],
    ['sources.1.name', { name: 'cms-sample' }, 1],
    ['sources.1.credentials.kind', { credentials: { kind: 'oauth' } }, 1],
    ['sources.1.credentials.name', { credentials: { kind: 'query' } }, 1],
  ])('names the field of a bad source: %s', (field, patch, index) => {
    expect(() => parseDeploymentConfig(withSource(patch, index))).toThrow(field);
  });

  it('leaves sources out by default: the example config has none', () => {
    expect(loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json')).sources).toEqual([]);
  });
});
