import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDeploymentConfig } from '../../infra/config/deployment-config.ts';
import {
  BRONZE_PREFIX,
  FAN_OUT_REPORTS,
  MERGED_STATES,
  RUN_REPORTS,
  SILVER_PREFIX,
  SOURCES_PREFIX,
  TABLE_OF_CONTENTS_RUN_REPORTS,
} from '../../infra/constructs/pipeline-functions.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';
import { SluiceStack } from '../../infra/stacks/sluice-stack.ts';
import { DEFAULT_QUARANTINE_RATE_THRESHOLD } from '../../shared/config/runtime-config.ts';
import {
  bronzeManifestKey,
  bronzePartKey,
  fanOutReportPrefix,
  reconciliationKey,
  runReportKey,
  silverManifestKey,
  silverTableKey,
  sourceCurrentKey,
  sourceLeaseKey,
  sourceVersionKey,
} from '../../shared/lake/keys.ts';
import {
  silverBucketResultKey,
  silverGroupPartialsKey,
  silverGroupStatsKey,
  silverPlanKey,
  silverWorkPrefix,
} from '../../shared/lake/silver-work-keys.ts';
import { DEFAULT_LEASE_TTL_MS } from '../../shared/lake/source-lease.ts';
import {
  silverCurrentStateKey,
  silverDeletesStateKey,
  silverStateManifestKey,
} from '../../shared/lake/state-keys.ts';
import { MALLOC_ENV } from '../../shared/runtime-memory.ts';
import {
  CHILD_START_RETRY,
  ingestWorkflowDefinition,
  LAMBDA_SERVICE_ERRORS,
  LAMBDA_SERVICE_RETRY,
  Placeholder,
  StateName,
  TRANSIENT_ERRORS,
  TRANSIENT_RETRY,
} from '../../shared/workflow/definition.ts';

// biome-ignore lint/suspicious/noExplicitAny: a synthesized template is untyped JSON; the assertions check its shape.
type Json = any;
type Resource = { Type: string; Properties: Record<string, Json>; Metadata?: Record<string, unknown> };

/** A CloudFormation value with its tokens replaced by placeholders, as plain text. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => (typeof part === 'string' ? part : '<TOKEN>')).join(join[0]);
  return '<TOKEN>';
}

/** The feature flags of cdk.json, as `cdk synth` passes them. */
const cdkContext = () => JSON.parse(readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;

/** One synthesis of the example deployment, shared by every test in this file. */
let outdir: string;
let stack: SluiceStack;
let template: Template;
let resources: Record<string, Resource>;

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);

beforeAll(() => {
  outdir = mkdtempSync(path.join(tmpdir(), 'sluice-cdk-'));
  const app = new App({ outdir, context: cdkContext() });
  const config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
  stack = new SluiceStack(app, 'SluiceTest', { config });
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources;
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('Stack: SluiceStack (example config)', () => {
  describe('storage', () => {
    it('encrypts the landing and lake buckets with the customer-managed key, which rotates', () => {
      template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      const dataKey = logicalId(stack.storage.key);
      for (const bucket of [stack.storage.landingBucket, stack.storage.lakeBucket]) {
        const props = resources[logicalId(bucket)]!.Properties;
        expect(props.BucketEncryption.ServerSideEncryptionConfiguration[0]).toEqual({
          BucketKeyEnabled: true,
          ServerSideEncryptionByDefault: {
            SSEAlgorithm: 'aws:kms',
            KMSMasterKeyID: { 'Fn::GetAtt': [dataKey, 'Arn'] },
          },
        });
      }
    });

    it('encrypts the access-log bucket with S3-managed keys, the only kind S3 log delivery supports', () => {
      const props = resources[logicalId(stack.storage.accessLogsBucket)]!.Properties;
      expect(
        props.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault,
      ).toEqual({
        SSEAlgorithm: 'AES256',
      });
    });

    it('blocks public access on every bucket', () => {
      const buckets = ofType('AWS::S3::Bucket');
      expect(buckets).toHaveLength(3);
      for (const [, bucket] of buckets) {
        expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
      }
    });

    it('denies every request without TLS, on every bucket', () => {
      const policies = ofType('AWS::S3::BucketPolicy');
      expect(policies).toHaveLength(3);
      for (const [, policy] of policies) {
        expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
          expect.objectContaining({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        );
      }
    });

    it('versions the data buckets, logs their access, and expires landed files and old versions within days', () => {
      const landing = resources[logicalId(stack.storage.landingBucket)]!.Properties;
      const lake = resources[logicalId(stack.storage.lakeBucket)]!.Properties;
      for (const props of [landing, lake]) {
        expect(props.VersioningConfiguration).toEqual({ Status: 'Enabled' });
        expect(props.LoggingConfiguration.DestinationBucketName).toEqual({
          Ref: logicalId(stack.storage.accessLogsBucket),
        });
        // storage.noncurrentVersionExpirationDays: its default.
        expect(props.LifecycleConfiguration.Rules[0]).toMatchObject({
          Status: 'Enabled',
          NoncurrentVersionExpiration: { NoncurrentDays: 7 },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
        });
        expect(props.LifecycleConfiguration.Rules[0].Prefix).toBeUndefined();
      }
      expect(landing.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(30);
      expect(lake.LifecycleConfiguration.Rules[0]).toMatchObject({ ExpiredObjectDeleteMarker: true });
      expect(lake.LifecycleConfiguration.Rules[0].ExpirationInDays).toBeUndefined();
    });

    const lakeRule = (id: string) =>
      resources[logicalId(stack.storage.lakeBucket)]!.Properties.LifecycleConfiguration.Rules.find(
        (rule: Json) => rule.Id === id,
      );

    it("expires silver's scratch files (_work/) and their old versions after a day, per dataset", () => {
      for (const dataset of ['tic-in-network', 'tic-table-of-contents']) {
        // The prefix every silver build's scratch keys start with (shared/lake/silver-work-keys.ts).
        expect(silverGroupPartialsKey(dataset, 'src', 0).startsWith(`silver/${dataset}/_work/`)).toBe(true);
        expect(lakeRule(`expire-silver-work-${dataset}`)).toEqual({
          Id: `expire-silver-work-${dataset}`,
          Status: 'Enabled',
          Prefix: `silver/${dataset}/_work/`,
          ExpirationInDays: 1,
          NoncurrentVersionExpiration: { NoncurrentDays: 1 },
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
        });
      }
    });

    it('moves bronze to S3 Intelligent-Tiering after the configured age', () => {
      expect(lakeRule('tier-bronze')).toEqual({
        Id: 'tier-bronze',
        Status: 'Enabled',
        Prefix: BRONZE_PREFIX,
        Transitions: [{ StorageClass: 'INTELLIGENT_TIERING', TransitionInDays: 30 }],
      });
    });

    it('cancels an Athena query of the workgroup past the configured bytes scanned', () => {
      const workGroup = resources[logicalId({ node: { defaultChild: stack.queryCatalog.workGroup } })]!;
      expect(workGroup.Properties.WorkGroupConfiguration).toMatchObject({
        EnforceWorkGroupConfiguration: true,
        BytesScannedCutoffPerQuery: 100 * 1024 ** 3,
        ResultConfiguration: { EncryptionConfiguration: { EncryptionOption: 'SSE_KMS' } },
      });
    });

    it('sends landing events to EventBridge without a custom resource', () => {
      const landing = resources[logicalId(stack.storage.landingBucket)]!.Properties;
      expect(landing.NotificationConfiguration).toEqual({
        EventBridgeConfiguration: { EventBridgeEnabled: true },
      });
      template.resourceCountIs('Custom::S3BucketNotifications', 0);
    });
  });

  /** The statements of the policies attached to one role. */
  const statementsOf = (role: { node: { defaultChild?: unknown } }) =>
    ofType('AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: logicalId(role) }]))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Record<string, Json>[]);
  const actions = (s: Record<string, Json>) => [s.Action].flat() as string[];
  const targets = (s: Record<string, Json>) => [s.Resource].flat().map(flatten);

  describe('functions', () => {
    it('runs every Lambda on Node.js 22 and arm64, the DuckDB functions included', () => {
      const functions = ofType('AWS::Lambda::Function');
      // ingest, silver, reconcile, fan-out, download, start-execution, watch-executions
      expect(functions).toHaveLength(7);
      for (const [, fn] of functions) {
        expect(fn.Properties.Runtime).toBe('nodejs22.x');
        expect(fn.Properties.Architectures).toEqual(['arm64']);
        expect(fn.Properties.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
        // The malloc settings the CLI runs with (shared/runtime-memory.ts).
        expect(fn.Properties.Environment.Variables).toMatchObject(MALLOC_ENV);
      }
    });

    // The code asset `<hash>.zip` is staged in the output directory as `asset.<hash>`.
    const assetDir = (fn: { function: { node: { defaultChild?: unknown } } }) => {
      const key = resources[logicalId(fn.function)]!.Properties.Code.S3Key as string;
      return path.join(outdir, `asset.${key.replace(/\.zip$/, '')}`);
    };
    /** ELF `e_machine` (bytes 18–19, little-endian) of a shared object; 0xB7 is AArch64, 0x3E x86-64. */
    const elfMachine = (file: string) => {
      const header = readFileSync(file).subarray(0, 20);
      expect([...header.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]); // "\x7fELF"
      expect(header[4]).toBe(2); // 64-bit
      expect(header[5]).toBe(1); // little-endian
      return header.readUInt16LE(18);
    };

    it("bundles DuckDB as a node module with linux-arm64's binary (an AArch64 ELF), and nothing native into the others", () => {
      const bindings = '@duckdb/node-bindings-linux-arm64';
      for (const fn of [stack.functions.silver, stack.functions.reconcile]) {
        const dir = assetDir(fn);
        expect(JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))).toEqual({
          dependencies: { '@duckdb/node-api': expect.any(String) },
        });
        // Whatever machine synthesizes, only Lambda's platform binding is installed.
        expect(readdirSync(path.join(dir, 'node_modules/@duckdb')).sort()).toEqual([
          'node-api',
          'node-bindings',
          'node-bindings-linux-arm64',
        ]);
        expect(elfMachine(path.join(dir, 'node_modules', bindings, 'duckdb.node'))).toBe(0xb7);
        expect(elfMachine(path.join(dir, 'node_modules', bindings, 'libduckdb.so'))).toBe(0xb7);
        // The bundle imports DuckDB from node_modules instead of inlining it.
        expect(readFileSync(path.join(dir, 'index.mjs'), 'utf8')).toContain('@duckdb/node-api');
      }
      for (const fn of [
        stack.functions.ingest,
        stack.functions.fanOut,
        stack.trigger.startExecution,
        stack.monitoring.executionWatch.watcher,
      ]) {
        expect(existsSync(path.join(assetDir(fn), 'node_modules'))).toBe(false);
      }
    });

    it('keeps the linux-arm64 DuckDB binding in the lock file, which bundling installs from', () => {
      const lock = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8'));
      const bindings = lock.packages['node_modules/@duckdb/node-bindings'];
      const arm64 = lock.packages['node_modules/@duckdb/node-bindings-linux-arm64'];
      expect(arm64).toMatchObject({
        version: bindings.version,
        integrity: expect.stringMatching(/^sha512-/),
        os: ['linux'],
        cpu: ['arm64'],
        libc: ['glibc'],
        optional: true,
      });
      expect(bindings.optionalDependencies['@duckdb/node-bindings-linux-arm64']).toBe(bindings.version);
    });

    it('gives the silver and reconcile functions room in /tmp for Parquet files', () => {
      for (const fn of [stack.functions.silver, stack.functions.reconcile]) {
        const props = resources[logicalId(fn.function)]!.Properties;
        expect(props.EphemeralStorage).toEqual({ Size: 4096 });
        expect(props.Timeout).toBe(900);
        expect(Object.keys(props.Environment.Variables).sort()).toEqual(
          [
            'DATASETS',
            'LAKE_BUCKET',
            'NODE_OPTIONS',
            ...Object.keys(MALLOC_ENV),
            'POWERTOOLS_LOG_LEVEL',
            'POWERTOOLS_SERVICE_NAME',
            // How much bronze PlanSilver puts in one group and one merge bucket: the config's defaults.
            ...(fn === stack.functions.silver ? ['SILVER_BUCKET_TARGET_MB', 'SILVER_GROUP_TARGET_MB'] : []),
            // The share of a run's records that may be quarantined: the quarantine alarm's threshold; and
            // where each commit registers the source's partitions.
            // where each commit registers the source's partitions; and the prices of a run's cost.
            ...(fn === stack.functions.reconcile
              ? ['QUARANTINE_RATE_THRESHOLD', 'GLUE_DATABASE', 'RUN_COST_PRICES']
              : []),
          ].sort(),
        );
      }
      const silverEnv = resources[logicalId(stack.functions.silver.function)]!.Properties.Environment;
      expect(silverEnv.Variables.SILVER_GROUP_TARGET_MB).toBe('1536');
      expect(silverEnv.Variables.SILVER_BUCKET_TARGET_MB).toBe('8192');
      const reconcileEnv = resources[logicalId(stack.functions.reconcile.function)]!.Properties.Environment;
      expect(reconcileEnv.Variables.QUARANTINE_RATE_THRESHOLD).toBe(
        String(DEFAULT_QUARANTINE_RATE_THRESHOLD),
      );
      expect(reconcileEnv.Variables.GLUE_DATABASE).toBe(stack.queryCatalog.databaseName);
      expect(reconcileEnv.Variables.GLUE_DATABASE).toBe('sluice_dev');
    });

    it('sizes the ingest function from the config and passes only non-secret settings', () => {
      const ingest = resources[logicalId(stack.functions.ingest.function)]!.Properties;
      expect(ingest.MemorySize).toBe(3008);
      expect(ingest.Timeout).toBe(900);
      expect(Object.keys(ingest.Environment.Variables).sort()).toEqual(
        [
          'DATASETS',
          'LAKE_BUCKET',
          'LANDING_BUCKET',
          'NODE_OPTIONS',
          ...Object.keys(MALLOC_ENV),
          'POWERTOOLS_LOG_LEVEL',
          'POWERTOOLS_SERVICE_NAME',
        ].sort(),
      );
      expect(ingest.Environment.Variables.DATASETS).toBe('tic-in-network,tic-table-of-contents');
    });

    it('scopes the ingest role to landing prefixes of deployed datasets, bronze/, and S3 use of the key', () => {
      const statements = statementsOf(stack.functions.ingest.role);

      for (const s of statements.filter((s) => actions(s).some((a) => a.startsWith('s3:')))) {
        expect(targets(s)).not.toContain('*');
      }
      const sid = (id: string) => statements.find((s) => s.Sid === id)!;
      expect(actions(sid('ReadLandedFiles'))).toEqual(['s3:GetObject']);
      expect(targets(sid('ReadLandedFiles'))).toEqual([
        '<TOKEN>/_downloads/tic-in-network/*',
        '<TOKEN>/_downloads/tic-table-of-contents/*',
        '<TOKEN>/tic-in-network/*',
        '<TOKEN>/tic-table-of-contents/*',
      ]);
      expect(targets(sid('WriteBronze'))).toEqual(['<TOKEN>/bronze/*']);
      expect(actions(sid('WriteBronze')).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:DeleteObject',
        's3:GetObject',
        's3:PutObject',
      ]);
      // Its lease and the source's current version: read and written, never deleted.
      expect(actions(sid('ReadWriteSourceRecords')).sort()).toEqual(['s3:GetObject', 's3:PutObject']);
      expect(targets(sid('ReadWriteSourceRecords'))).toEqual(['<TOKEN>/_sources/*']);
      expect(sid('ListBronze').Condition).toEqual({
        StringLike: { 's3:prefix': ['bronze/*', '_sources/*'] },
      });
      // Deleting (a duplicate run's bronze, stale parts) stays within bronze/.
      const deletes = statements.filter((s) => actions(s).includes('s3:DeleteObject'));
      expect(deletes.flatMap(targets)).toEqual(['<TOKEN>/bronze/*']);
      expect(sid('UseDataKeyThroughS3').Resource).toEqual({
        'Fn::GetAtt': [logicalId(stack.storage.key), 'Arn'],
      });
      expect(sid('UseDataKeyThroughS3').Condition.StringEquals['kms:ViaService']).toBeDefined();
      // The only '*' left is X-Ray's, which has no resource-level permissions.
      const wildcard = statements.filter((s) => targets(s).includes('*')).flatMap(actions);
      expect(wildcard.every((a) => a.startsWith('xray:'))).toBe(true);
    });

    it("lets silver read bronze/ and write and delete only under silver/, and take a source's lease to rebuild it", () => {
      const statements = statementsOf(stack.functions.silver.role);
      const sid = (id: string) => statements.find((s) => s.Sid === id)!;
      expect(actions(sid('ReadBronze'))).toEqual(['s3:GetObject']);
      expect(targets(sid('ReadBronze'))).toEqual(['<TOKEN>/bronze/*']);
      expect(actions(sid('WriteSilver')).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:DeleteObject',
        's3:GetObject',
        's3:PutObject',
      ]);
      expect(targets(sid('WriteSilver'))).toEqual(['<TOKEN>/silver/*']);
      expect(sid('ListLake').Condition).toEqual({
        StringLike: { 's3:prefix': ['bronze/*', 'silver/*', '_sources/*'] },
      });
      const writes = statements.filter((s) => actions(s).some((a) => /^s3:(Put|Delete)/.test(a)));
      expect(writes.flatMap(targets)).toEqual([
        '<TOKEN>/silver/*',
        '<TOKEN>/_sources/*/lease.json',
        '<TOKEN>/_usage/*',
      ]);
      expect(actions(sid('TakeSourceLease'))).toEqual(['s3:PutObject']);
      expect(actions(sid('ReadSourceRecords'))).toEqual(['s3:GetObject']);
      expect(sid('UseDataKeyThroughS3').Condition.StringEquals['kms:ViaService']).toBeDefined();
    });

    it('lets reconcile read bronze/ and silver/ and write only reconciliation reports, its work objects and commit records', () => {
      const statements = statementsOf(stack.functions.reconcile.role);
      const sid = (id: string) => statements.find((s) => s.Sid === id)!;
      expect(actions(sid('ReadLake'))).toEqual(['s3:GetObject']);
      expect(targets(sid('ReadLake'))).toEqual(['<TOKEN>/bronze/*', '<TOKEN>/silver/*']);
      expect(actions(sid('WriteReconciliationReport')).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:PutObject',
      ]);
      expect(targets(sid('WriteReconciliationReport'))).toEqual([
        '<TOKEN>/bronze/*/reconciliation.json',
        '<TOKEN>/bronze/*/report.html',
      ]);
      expect(runReportKey('d', 'r')).toMatch(new RegExp(`^${RUN_REPORTS.split('*').join('.*')}$`));
      // The commit: version and current records, and the lease it checks and releases.
      expect(actions(sid('CommitSourceVersions')).sort()).toEqual(['s3:GetObject', 's3:PutObject']);
      expect(targets(sid('CommitSourceVersions'))).toEqual(['<TOKEN>/_sources/*']);
      // Its steps' intermediate results, under each run's silver work folder (removed by the last step).
      expect(actions(sid('ReconcileWork')).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:DeleteObject',
        's3:PutObject',
      ]);
      expect(targets(sid('ReconcileWork'))).toEqual(['<TOKEN>/silver/*/_work/*/_reconcile/*']);
      // The merged states of generic datasets, folded after the commit: their files and manifests.
      expect(actions(sid('MergeSilverState')).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:DeleteObject',
        's3:PutObject',
      ]);
      expect(targets(sid('MergeSilverState'))).toEqual(['<TOKEN>/silver/*/_state/*']);
      for (const key of [
        silverStateManifestKey('d', 't'),
        silverCurrentStateKey('d', 't', 'r'),
        silverDeletesStateKey('d', 't', 'r'),
      ]) {
        expect(key).toMatch(new RegExp(`^${MERGED_STATES.split('*').join('[^]*')}$`));
      }
      const writes = statements.filter((s) => actions(s).some((a) => /^s3:(Put|Delete)/.test(a)));
      expect(writes.flatMap(targets).sort()).toEqual([
        '<TOKEN>/_sources/*',
        '<TOKEN>/_usage/*',
        '<TOKEN>/bronze/*/reconciliation.json',
        '<TOKEN>/bronze/*/report.html',
        '<TOKEN>/silver/*/_state/*',
        '<TOKEN>/silver/*/_work/*/_reconcile/*',
      ]);
      const deletes = statements.filter((s) => actions(s).includes('s3:DeleteObject'));
      expect(deletes.flatMap(targets).sort()).toEqual([
        '<TOKEN>/silver/*/_state/*',
        '<TOKEN>/silver/*/_work/*/_reconcile/*',
      ]);
      expect(sid('ListLake').Condition).toEqual({
        StringLike: { 's3:prefix': ['bronze/*', 'silver/*', '_sources/*', '_usage/*'] },
      });
    });

    it('lets every stage function write its usage records under _usage/ only, and reconcile read them', () => {
      const { ingest, silver, reconcile, fanOut } = stack.functions;
      for (const fn of [ingest, silver, reconcile, fanOut]) {
        const statement = statementsOf(fn.role).find((s) => s.Sid === 'WriteUsageRecords')!;
        // GetObject: the S3 adapter reads each written object back (HeadObject) to return what S3 stored.
        expect(actions(statement).sort()).toEqual(['s3:GetObject', 's3:PutObject']);
        expect(targets(statement)).toEqual(['<TOKEN>/_usage/*']);
      }
      const read = statementsOf(reconcile.role).find((s) => s.Sid === 'ReadUsageRecords')!;
      expect([actions(read), targets(read)]).toEqual([['s3:GetObject'], ['<TOKEN>/_usage/*']]);
    });

    it('lets reconcile register partitions of exactly the deployed Glue tables, and nothing else in Glue', () => {
      const statements = statementsOf(stack.functions.reconcile.role);
      const glue = statements.filter((s) => actions(s).some((a) => a.startsWith('glue:')));
      expect(glue).toHaveLength(1);
      const [statement] = glue;
      expect(statement!.Effect).toBe('Allow');
      expect(actions(statement!).sort()).toEqual([
        'glue:CreatePartition',
        'glue:DeletePartition',
        'glue:GetPartition',
        'glue:GetTable',
        'glue:UpdatePartition',
      ]);
      const database = stack.queryCatalog.databaseName;
      const tables = [...stack.queryCatalog.tables.keys()];
      expect(tables).toContain('tic_in_network__files');
      expect(tables).toContain('tic_in_network__files_history');
      expect(targets(statement!).sort()).toEqual(
        [
          'arn:<TOKEN>:glue:<TOKEN>:<TOKEN>:catalog',
          `arn:<TOKEN>:glue:<TOKEN>:<TOKEN>:database/${database}`,
          ...tables.map((table) => `arn:<TOKEN>:glue:<TOKEN>:<TOKEN>:table/${database}/${table}`),
        ].sort(),
      );
      expect(targets(statement!).some((t) => t.includes('*'))).toBe(false);
      // No other function touches Glue.
      for (const fn of [stack.functions.ingest, stack.functions.silver, stack.functions.fanOut]) {
        expect(
          statementsOf(fn.role)
            .flatMap(actions)
            .some((a) => a.startsWith('glue:')),
        ).toBe(false);
      }
    });

    it('uses the same bronze and silver prefixes and report key as the key layout', () => {
      expect(bronzeManifestKey('d', 's').startsWith(BRONZE_PREFIX)).toBe(true);
      expect(bronzePartKey('d', 's', 'r', 0).startsWith(BRONZE_PREFIX)).toBe(true);
      const build = { dataset: 'd', sourceId: 's', version: 'v', build: 'b' };
      expect(silverTableKey(build, 't').startsWith(SILVER_PREFIX)).toBe(true);
      expect(silverManifestKey(build).startsWith(SILVER_PREFIX)).toBe(true);
      // A build in groups keeps its partial files, stats and plan under silver/ too: the role suffices.
      for (const key of [
        silverGroupPartialsKey('d', 's', 0),
        silverGroupStatsKey('d', 's', 0),
        silverBucketResultKey('d', 's', 0),
        silverPlanKey('d', 's'),
      ]) {
        expect(key.startsWith(silverWorkPrefix('d', 's'))).toBe(true);
        expect(key.startsWith(SILVER_PREFIX)).toBe(true);
      }
      expect(reconciliationKey('d', 's')).toMatch(/^bronze\/[^*]+\/reconciliation\.json$/);
      // Leases and commit records: the prefix ingest and reconcile may read and write.
      for (const key of [
        sourceLeaseKey('d', 's'),
        sourceCurrentKey('d', 's'),
        sourceVersionKey('d', 's', 'v'),
      ]) {
        expect(key.startsWith(SOURCES_PREFIX)).toBe(true);
      }
    });

    it('lets the fan-out read table-of-contents runs in bronze and write only their fan-out reports', () => {
      const statements = statementsOf(stack.functions.fanOut.role);
      const sid = (id: string) => statements.find((s) => s.Sid === id)!;
      expect(actions(sid('ReadTableOfContentsRuns'))).toEqual(['s3:GetObject']);
      expect(targets(sid('ReadTableOfContentsRuns'))).toEqual([
        '<TOKEN>/bronze/tic-table-of-contents/*',
        '<TOKEN>/silver/tic-table-of-contents/_manifests/*',
      ]);
      const writes = statements.filter((s) => actions(s).some((a) => /^s3:(Put|Delete)/.test(a)));
      expect(writes.flatMap(actions).sort()).toEqual([
        's3:AbortMultipartUpload',
        's3:GetObject', // its usage record, read back after the write (WriteUsageRecords)
        's3:PutObject',
        's3:PutObject',
      ]);
      expect(writes.flatMap(targets)).toEqual([
        '<TOKEN>/bronze/tic-table-of-contents/*/fan-out/*',
        '<TOKEN>/bronze/tic-table-of-contents/*/report.html',
        '<TOKEN>/_usage/*',
      ]);
      expect(runReportKey('tic-table-of-contents', 'r')).toMatch(
        new RegExp(`^${TABLE_OF_CONTENTS_RUN_REPORTS.split('*').join('.*')}$`),
      );
      // The report keys fall under the pattern the role may write.
      const glob = new RegExp(`^${FAN_OUT_REPORTS.split('*').join('.*')}$`);
      expect(`${fanOutReportPrefix('tic-table-of-contents', 'r', 'e')}plan.json`).toMatch(glob);
      expect(sid('ListLake').Condition).toEqual({
        StringLike: {
          's3:prefix': ['bronze/tic-table-of-contents/*', 'silver/tic-table-of-contents/_manifests/*'],
        },
      });
      expect(sid('UseDataKeyThroughS3').Condition.StringEquals['kms:ViaService']).toBeDefined();
    });

    it("lets the download function land the files a table of contents lists, under their dataset's prefix", () => {
      const statements = statementsOf(stack.sources.download.role);
      const write = statements.find((s) => s.Sid === 'WriteLanding')!;
      expect(targets(write)).toEqual(['<TOKEN>/_downloads/tic-in-network/*']);
    });

    it('gives no managed policies to the functions', () => {
      for (const fn of [
        stack.functions.ingest,
        stack.functions.fanOut,
        stack.functions.silver,
        stack.functions.reconcile,
        stack.trigger.startExecution,
      ]) {
        expect(resources[logicalId(fn.role)]!.Properties.ManagedPolicyArns).toBeUndefined();
      }
    });
  });

  describe('state machine', () => {
    /** The deployed definition: the template's text with its substitutions applied (tokens: `TOKEN`). */
    const definition = () => {
      const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0]!;
      const substitutions = machine.Properties.DefinitionSubstitutions as Record<string, Json>;
      const text = (machine.Properties.DefinitionString as string).replace(/\$\{(\w+)\}/g, (_, name) =>
        flatten(substitutions[name]),
      );
      return JSON.parse(text.replaceAll('<TOKEN>', 'TOKEN')) as {
        StartAt: string;
        States: Record<string, Record<string, Json>>;
      };
    };

    it('renders the one definition (shared/workflow/definition.ts), each placeholder a deployed resource', () => {
      const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0]!;
      // The text is the builder's ASL itself, with the deployment's options: nothing else describes it.
      expect(JSON.parse(machine.Properties.DefinitionString)).toEqual(
        ingestWorkflowDefinition({
          silverConcurrency: 8,
          fanOutConcurrency: 4,
          listedFileTimeoutSeconds: 6 * 3600,
          timeoutSeconds: 7 * 24 * 3600,
        }),
      );
      const arnOf = (construct: { function: { node: { defaultChild?: unknown } } }) => ({
        'Fn::GetAtt': [logicalId(construct.function), 'Arn'],
      });
      expect(machine.Properties.DefinitionSubstitutions).toEqual({
        [Placeholder.downloadFunctionArn]: arnOf(stack.sources.download),
        [Placeholder.ingestFunctionArn]: arnOf(stack.functions.ingest),
        [Placeholder.silverFunctionArn]: arnOf(stack.functions.silver),
        [Placeholder.reconcileFunctionArn]: arnOf(stack.functions.reconcile),
        [Placeholder.fanOutFunctionArn]: arnOf(stack.functions.fanOut),
        [Placeholder.failureQueueUrl]: { Ref: logicalId(stack.workflow.failureQueue) },
        [Placeholder.stateMachineArn]: expect.objectContaining({ 'Fn::Join': expect.anything() }),
        [Placeholder.partition]: { Ref: 'AWS::Partition' },
      });
      expect(flatten(machine.Properties.DefinitionSubstitutions[Placeholder.stateMachineArn])).toBe(
        'arn:<TOKEN>:states:<TOKEN>:<TOKEN>:stateMachine:SluiceTest-ingest',
      );
    });

    it('grants the state machine exactly what its tasks call: each stage function, the failure queue', () => {
      const statements = statementsOf(stack.workflow.stateMachine.role);
      const invoke = statements.filter((s) => actions(s).includes('lambda:InvokeFunction'));
      expect(invoke).toHaveLength(1);
      expect(actions(invoke[0]!)).toEqual(['lambda:InvokeFunction']);
      const substitutions = ofType('AWS::StepFunctions::StateMachine')[0]![1].Properties
        .DefinitionSubstitutions as Record<string, Json>;
      expect(
        [invoke[0]!.Resource]
          .flat()
          .map((r) => JSON.stringify(r))
          .sort(),
      ).toEqual(
        Object.entries(substitutions)
          .filter(([name]) => name.endsWith('FunctionArn'))
          .map(([, value]) => JSON.stringify(value))
          .sort(),
      );
      const sqs = statements.filter((s) => actions(s).some((a) => a.startsWith('sqs:')));
      expect(sqs.map((s) => [actions(s), s.Resource])).toEqual([
        [['sqs:SendMessage'], { 'Fn::GetAtt': [logicalId(stack.workflow.failureQueue), 'Arn'] }],
      ]);
    });

    const stageTasks = [
      StateName.ingest,
      StateName.planRebuild,
      StateName.planSilver,
      StateName.silver,
      StateName.planReconcile,
      StateName.reconcile,
    ];
    /** The task of each SilverGroups item. */
    const silverGroupTask = () =>
      definition().States[StateName.silverGroups]!.ItemProcessor.States[StateName.silverGroup] as Record<
        string,
        Json
      >;
    /** The task of each SilverBuckets item. */
    const silverBucketTask = () =>
      definition().States[StateName.silverBuckets]!.ItemProcessor.States[StateName.silverBucket] as Record<
        string,
        Json
      >;

    it('runs Ingest (looped by IngestDone while sliced) → HasSilver → PlanSilver → SilverGroups → SilverBuckets → Silver → Reconcile → HasFanOut, each result under its own key', () => {
      const { StartAt, States } = definition();
      expect(StartAt).toBe(StateName.hasSource);
      expect(States[StateName.hasSource]).toMatchObject({ Type: 'Choice', Default: StateName.dropped });
      // A dropped file has no URL: `Dropped` says so ('') for Ingest, whose payload reads `$.origin.url`.
      expect(States[StateName.dropped]).toEqual({
        Type: 'Pass',
        Result: { url: '' },
        ResultPath: '$.origin',
        Next: StateName.ingest,
      });
      const ingest = States[StateName.ingest]!;
      expect(ingest).toMatchObject({ Type: 'Task', ResultPath: '$.ingest', Next: StateName.ingestDone });
      // A slice that stopped at its time budget runs Ingest again; the next slice resumes its checkpoint.
      expect(States[StateName.ingestDone]).toEqual({
        Type: 'Choice',
        Choices: [
          { Variable: '$.ingest.status', StringEquals: 'sliced', Next: StateName.ingest },
          // A table of contents with these bytes still fans out (unless the input says fanOut: false):
          // its listed files are each skipped when current, retried when they failed.
          {
            And: [
              { Variable: '$.ingest.status', StringEquals: 'unchanged' },
              { Variable: '$.ingest.dataset', StringEquals: 'tic-table-of-contents' },
              {
                Not: {
                  And: [
                    { Variable: '$$.Execution.Input.fanOut', IsPresent: true },
                    { Variable: '$$.Execution.Input.fanOut', BooleanEquals: false },
                  ],
                },
              },
            ],
            Next: StateName.startFanOut,
          },
          // The same, for a dataset with a merged state: caught up first (its fold may have died).
          {
            And: [
              { Variable: '$.ingest.status', StringEquals: 'unchanged' },
              { Variable: '$.ingest.mergedState', IsPresent: true },
              { Variable: '$.ingest.mergedState', BooleanEquals: true },
            ],
            Next: StateName.catchUpState,
          },
          // The source's current version has these bytes: nothing to rebuild.
          { Variable: '$.ingest.status', StringEquals: 'unchanged', Next: StateName.unchanged },
        ],
        Default: StateName.hasSilver,
      });
      expect(ingest.Resource).toBe('TOKEN'); // the function ARN itself: payloadResponseOnly
      expect(ingest.Parameters).toEqual({
        // Which state invoked the function: its usage record's stage (what the run cost).
        state: StateName.ingest,
        'bucket.$': '$.bucket',
        'key.$': '$.key',
        'dataset.$': '$.dataset',
        'sourceUrl.$': '$.origin.url',
        'executionId.$': '$$.Execution.Id',
      });
      expect(States[StateName.unchanged]).toEqual({ Type: 'Succeed' });
      const stageEvent = {
        'dataset.$': '$.ingest.dataset',
        'bronzeManifestKey.$': '$.ingest.manifestKey',
        'executionId.$': '$$.Execution.Id',
      };
      expect(States[StateName.planSilver]).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: { ...stageEvent, op: 'plan' },
        ResultPath: '$.silverPlan',
        Next: StateName.silverGroups,
      });
      // The Map's items are indexes ({ group }); ItemSelector makes each the group's event, without data.
      const groups = States[StateName.silverGroups]!;
      expect(groups).toMatchObject({
        Type: 'Map',
        ItemsPath: '$.silverPlan.groups',
        ItemSelector: {
          'dataset.$': '$.ingest.dataset',
          'bronzeManifestKey.$': '$.ingest.manifestKey',
          'executionId.$': '$$.Execution.Id',
          'group.$': '$$.Map.Item.Value.group',
          'groupCount.$': '$.silverPlan.groupCount',
          'bucketCount.$': '$.silverPlan.bucketCount',
        },
        MaxConcurrency: 8,
        ResultPath: null,
        Next: StateName.silverBuckets,
      });
      expect(groups.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'INLINE' });
      expect(groups.ItemProcessor.StartAt).toBe(StateName.silverGroup);
      expect(Object.keys(groups.ItemProcessor.States)).toEqual([StateName.silverGroup]);
      expect(silverGroupTask()).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: {
          op: 'group',
          'dataset.$': '$.dataset',
          'bronzeManifestKey.$': '$.bronzeManifestKey',
          'executionId.$': '$.executionId',
          'group.$': '$.group',
          'groupCount.$': '$.groupCount',
          'bucketCount.$': '$.bucketCount',
        },
        End: true,
      });
      expect(silverGroupTask().ResultPath).toBeUndefined();
      // Then one item per merge bucket ({ bucket }), each merging its share of every group's files.
      const buckets = States[StateName.silverBuckets]!;
      expect(buckets).toMatchObject({
        Type: 'Map',
        ItemsPath: '$.silverPlan.buckets',
        ItemSelector: {
          'dataset.$': '$.ingest.dataset',
          'bronzeManifestKey.$': '$.ingest.manifestKey',
          'executionId.$': '$$.Execution.Id',
          'bucket.$': '$$.Map.Item.Value.bucket',
          'groupCount.$': '$.silverPlan.groupCount',
          'bucketCount.$': '$.silverPlan.bucketCount',
        },
        MaxConcurrency: 8,
        ResultPath: null,
        Next: StateName.silver,
      });
      expect(buckets.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'INLINE' });
      expect(Object.keys(buckets.ItemProcessor.States)).toEqual([StateName.silverBucket]);
      expect(silverBucketTask()).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: {
          op: 'bucket',
          'dataset.$': '$.dataset',
          'bronzeManifestKey.$': '$.bronzeManifestKey',
          'executionId.$': '$.executionId',
          'bucket.$': '$.bucket',
          'groupCount.$': '$.groupCount',
          'bucketCount.$': '$.bucketCount',
        },
        End: true,
      });
      expect(silverBucketTask().ResultPath).toBeUndefined();
      expect(States[StateName.silver]).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: {
          ...stageEvent,
          op: 'merge',
          'groupCount.$': '$.silverPlan.groupCount',
          'bucketCount.$': '$.silverPlan.bucketCount',
        },
        ResultPath: '$.silver',
        Next: StateName.planReconcile,
      });
      // Reconciliation: a plan, a Map over its items, a Map over its key buckets, then the report.
      expect(States[StateName.planReconcile]).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: { ...stageEvent, op: 'plan' },
        ResultPath: '$.reconcilePlan',
        Next: StateName.reconcileItems,
      });
      const reconcileMaps = [
        [
          StateName.reconcileItems,
          'items',
          'item',
          StateName.reconcileItem,
          'item',
          StateName.reconcileKeyBuckets,
        ],
        [
          StateName.reconcileKeyBuckets,
          'buckets',
          'bucket',
          StateName.reconcileKeyBucket,
          'keys',
          StateName.reconcile,
        ],
      ] as const;
      for (const [name, list, field, task, op, next] of reconcileMaps) {
        expect(States[name]).toMatchObject({
          Type: 'Map',
          ItemsPath: `$.reconcilePlan.${list}`,
          ItemSelector: {
            'dataset.$': '$.ingest.dataset',
            'bronzeManifestKey.$': '$.ingest.manifestKey',
            'executionId.$': '$$.Execution.Id',
            [`${field}.$`]: `$$.Map.Item.Value.${field}`,
          },
          MaxConcurrency: 8,
          ResultPath: null,
          Next: next,
          Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.recordFailure }],
        });
        expect(Object.keys(States[name]!.ItemProcessor.States)).toEqual([task]);
        expect(States[name]!.ItemProcessor.States[task]).toMatchObject({
          Type: 'Task',
          Resource: 'TOKEN',
          Parameters: {
            op,
            'dataset.$': '$.dataset',
            'bronzeManifestKey.$': '$.bronzeManifestKey',
            'executionId.$': '$.executionId',
            [`${field}.$`]: `$.${field}`,
          },
          End: true,
        });
      }
      expect(States[StateName.reconcile]).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        // `ingest`: what Ingest or PlanRebuild said of the run (a rebuild commits only over what it planned on).
        Parameters: { ...stageEvent, op: 'finish', 'ingest.$': '$.ingest' },
        ResultPath: '$.reconcile',
        Next: StateName.hasFanOut,
      });
      expect(States[StateName.succeeded]).toEqual({ Type: 'Succeed' });
    });

    it('skips silver and reconciliation only for an explicit hasSilver: false', () => {
      expect(definition().States[StateName.hasSilver]).toEqual({
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.hasSilver', IsPresent: true },
              { Variable: '$.hasSilver', BooleanEquals: false },
            ],
            Next: StateName.succeeded,
          },
        ],
        Default: StateName.planSilver,
      });
    });

    it('invokes each stage task with its own function', () => {
      const { States } = definition();
      const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0]!;
      const substitutions = machine.Properties.DefinitionSubstitutions as Record<string, Json>;
      const tokens = [...(machine.Properties.DefinitionString as string).matchAll(/\$\{(\w+)\}/g)].map(
        ([, name]) => JSON.stringify(substitutions[name!]),
      );
      for (const fn of [stack.functions.ingest, stack.functions.silver, stack.functions.reconcile]) {
        expect(tokens).toContain(JSON.stringify({ 'Fn::GetAtt': [logicalId(fn.function), 'Arn'] }));
      }
      expect(tokens).toContain(
        JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.functions.fanOut.function), 'Arn'] }),
      );
      expect(Object.values(States).filter((state) => state.Type === 'Task')).toHaveLength(10);
      // PlanRebuild, PlanSilver, each SilverGroup, each SilverBucket and the Silver commit: one function.
      const silverArn = JSON.stringify({ 'Fn::GetAtt': [logicalId(stack.functions.silver.function), 'Arn'] });
      expect(tokens.filter((t) => t === silverArn)).toHaveLength(5);
    });

    it('retries named transient errors only, on every task, with exponential backoff and full jitter', () => {
      const tasks = [
        ...stageTasks.map((name) => ({ name, task: definition().States[name]! })),
        { name: StateName.silverGroup, task: silverGroupTask() },
        { name: StateName.silverBucket, task: silverBucketTask() },
      ];
      for (const { name, task } of tasks) {
        const all = task.Retry as Record<string, Json>[];
        // Ingest and PlanRebuild also wait for a source another execution holds (below).
        const waits = name === StateName.ingest || name === StateName.planRebuild;
        const retry = waits ? all.slice(0, 2) : all;
        if (retry !== all) {
          expect(all[2]).toEqual({
            ErrorEquals: ['SourceBusyError', 'DuplicateRunError'],
            IntervalSeconds: 60,
            MaxAttempts: 10,
            BackoffRate: 1.5,
            MaxDelaySeconds: 600,
            JitterStrategy: 'NONE',
          });
          // Without jitter the waits add up to more than the lease's lifetime, however they fall.
          let waited = 0;
          for (let i = 0; i < 10; i++) waited += Math.min(600, 60 * 1.5 ** i);
          expect(waited * 1000).toBeGreaterThan(3 * DEFAULT_LEASE_TTL_MS);
        }
        expect(retry.map((r) => r.ErrorEquals)).toEqual([[...LAMBDA_SERVICE_ERRORS], [...TRANSIENT_ERRORS]]);
        expect(retry.map((r) => r.MaxAttempts)).toEqual([
          LAMBDA_SERVICE_RETRY.MaxAttempts,
          TRANSIENT_RETRY.MaxAttempts,
        ]);
        for (const r of retry) {
          expect(r).toMatchObject({ JitterStrategy: 'FULL', BackoffRate: 2 });
          expect(r.ErrorEquals).not.toContain('States.ALL');
          expect(r.ErrorEquals).not.toContain('States.Timeout');
          for (const permanent of [
            'MalformedInputError',
            'RecordTooLargeError',
            'ConfigError',
            'ContractViolationError',
            'ReconciliationError',
          ]) {
            expect(r.ErrorEquals).not.toContain(permanent);
          }
        }
        expect(retry.flatMap((r) => r.ErrorEquals)).toEqual(
          expect.arrayContaining(['Lambda.TooManyRequestsException', 'TransientError']),
        );
      }
    });

    it('catches everything of every task into RecordFailure (SQS, execution id + input + error), then Fail', () => {
      const { States } = definition();
      // A state inside a Map cannot reach RecordFailure: the Maps catch their items' errors.
      for (const name of [...stageTasks, StateName.silverGroups, StateName.silverBuckets]) {
        expect(States[name]!.Catch).toEqual([
          // Ingest: a second execution of an object another one is ingesting ends as a clean duplicate.
          ...(name === StateName.ingest
            ? [{ ErrorEquals: ['DuplicateRunError'], ResultPath: '$.error', Next: StateName.duplicateRun }]
            : []),
          { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.recordFailure },
        ]);
      }
      expect(States[StateName.duplicateRun]).toMatchObject({ Type: 'Succeed' });
      expect(silverGroupTask().Catch).toBeUndefined();
      expect(silverBucketTask().Catch).toBeUndefined();
      const record = States[StateName.recordFailure]!;
      expect(record.Resource).toMatch(/:states:::sqs:sendMessage$/);
      expect(record.Parameters.MessageBody).toEqual({
        'executionId.$': '$$.Execution.Id',
        'input.$': '$$.Execution.Input',
        'error.$': '$.error',
      });
      expect(record.Next).toBe(StateName.failed);
      expect(States[StateName.failed]).toEqual({
        Type: 'Fail',
        ErrorPath: '$.error.Error',
        CausePath: '$.error.Cause',
      });
    });

    it('fans a table of contents out after Reconcile, unless the execution input says "fanOut": false or is a rebuild', () => {
      const { States } = definition();
      expect(States[StateName.hasFanOut]).toEqual({
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$$.Execution.Input.fanOut', IsPresent: true },
              { Variable: '$$.Execution.Input.fanOut', BooleanEquals: false },
            ],
            Next: StateName.succeeded,
          },
          { Variable: '$$.Execution.Input.rebuild', IsPresent: true, Next: StateName.succeeded },
          {
            Variable: '$.ingest.dataset',
            StringEquals: 'tic-table-of-contents',
            Next: StateName.startFanOut,
          },
        ],
        Default: StateName.succeeded,
      });
      expect(States[StateName.startFanOut]).toEqual({
        Type: 'Pass',
        Result: { nextPage: 0, results: [], succeeded: 0, failed: 0 },
        ResultPath: '$.fanOut',
        Next: StateName.planFanOut,
      });
    });

    it('pages through the listed files: PlanFanOut → FanOutDone → FanOut (distributed map) → PlanFanOut', () => {
      const { States } = definition();
      expect(States[StateName.planFanOut]).toMatchObject({
        Type: 'Task',
        Resource: 'TOKEN',
        Parameters: {
          'dataset.$': '$.ingest.dataset',
          'bronzeManifestKey.$': '$.ingest.manifestKey',
          'executionId.$': '$$.Execution.Id',
          'executionName.$': '$$.Execution.Name',
          'page.$': '$.fanOut.nextPage',
          'results.$': '$.fanOut.results',
          'succeeded.$': '$.fanOut.succeeded',
          'failed.$': '$.fanOut.failed',
        },
        ResultPath: '$.fanOut',
        Next: StateName.fanOutDone,
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.recordFailure }],
      });
      // Done succeeds only when no listed file failed or was refused; otherwise the execution fails.
      expect(States[StateName.fanOutDone]).toEqual({
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.fanOut.done', BooleanEquals: true },
              { Variable: '$.fanOut.failed', NumericEquals: 0 },
              { Variable: '$.fanOut.rejected', NumericEquals: 0 },
            ],
            Next: StateName.succeeded,
          },
          { Variable: '$.fanOut.done', BooleanEquals: true, Next: StateName.listedFilesFailed },
        ],
        Default: StateName.fanOut,
      });
      expect(States[StateName.listedFilesFailed]).toMatchObject({
        Type: 'Pass',
        Parameters: { Error: 'ListedFilesFailedError' },
        ResultPath: '$.error',
        Next: StateName.recordFailure,
      });
      const map = States[StateName.fanOut]!;
      expect(map).toMatchObject({
        Type: 'Map',
        ItemsPath: '$.fanOut.items',
        MaxConcurrency: 4,
        Label: StateName.fanOut,
        ResultPath: '$.fanOut.results',
        Next: StateName.planFanOut,
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.recordFailure }],
      });
      expect(map.ItemProcessor.ProcessorConfig).toEqual({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
      expect(map.ItemProcessor.StartAt).toBe(StateName.ingestListedFile);
    });

    it('runs each listed file as a child execution of this state machine, its failure caught per item', () => {
      const { States, TimeoutSeconds } = definition() as Json;
      const { States: item } = States[StateName.fanOut].ItemProcessor;
      const task = item[StateName.ingestListedFile];
      expect(task).toMatchObject({
        Type: 'Task',
        Resource: 'arn:TOKEN:states:::states:startExecution.sync:2',
        Parameters: {
          StateMachineArn: 'arn:TOKEN:states:TOKEN:TOKEN:stateMachine:SluiceTest-ingest',
          'Name.$': '$.executionName',
          Input: { source: { 'url.$': '$.url', 'dataset.$': '$.dataset' } },
        },
        ResultSelector: { status: 'succeeded', 'runId.$': '$.Output.ingest.runId' },
        TimeoutSeconds: 6 * 3600,
        End: true,
      });
      // Only a refused start is retried; the child retried its own stages already.
      expect(task.Retry).toEqual([
        expect.objectContaining({
          ErrorEquals: CHILD_START_RETRY.ErrorEquals,
          MaxAttempts: CHILD_START_RETRY.MaxAttempts,
          JitterStrategy: 'FULL',
        }),
      ]);
      expect(task.Catch).toEqual([
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: StateName.listedFileFailed },
      ]);
      expect(item[StateName.listedFileFailed]).toEqual({
        Type: 'Pass',
        Parameters: { status: 'failed', 'error.$': '$.error.Error' },
        End: true,
      });
      // The state machine is named, so its definition can start it; a run may last a whole fan-out.
      const [, machine] = ofType('AWS::StepFunctions::StateMachine')[0]!;
      expect(machine.Properties.StateMachineName).toBe('SluiceTest-ingest');
      expect(TimeoutSeconds).toBe(7 * 24 * 3600);
    });

    it("limits the state machine's Step Functions permissions to its own executions", () => {
      const statements = statementsOf(stack.workflow.stateMachine.role);
      const self = logicalId(stack.workflow.stateMachine);
      const named = 'arn:<TOKEN>:states:<TOKEN>:<TOKEN>:stateMachine:SluiceTest-ingest';
      const states = statements.filter((s) => actions(s).some((a) => a.startsWith('states:')));
      for (const s of states) {
        for (const resource of [s.Resource].flat()) {
          const text = flatten(resource);
          const own =
            text === named ||
            text.startsWith('arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest:') ||
            // FanOut's map runs, whose items it may redrive.
            text === `arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest/${StateName.fanOut}:*` ||
            JSON.stringify(resource).includes(`"Ref":"${self}"`);
          expect(own, JSON.stringify(resource)).toBe(true);
        }
      }
      const grants = (action: string) =>
        states.filter((s) => actions(s).includes(action)).flatMap((s) => [s.Resource].flat().map(flatten));
      expect(grants('states:StartExecution')).toContain(named);
      expect(grants('states:DescribeExecution')).toContain(
        'arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest:*',
      );
      expect(grants('states:StopExecution')).toContain(
        'arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest:*',
      );
      const events = statements.find((s) => actions(s).includes('events:PutRule'))!;
      expect(actions(events).sort()).toEqual(['events:DescribeRule', 'events:PutRule', 'events:PutTargets']);
      expect(targets(events)).toEqual([
        'arn:<TOKEN>:events:<TOKEN>:<TOKEN>:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule',
      ]);
    });

    it("lets Ingest ask only whether this workflow's executions still run (a failed holder's lease is free)", () => {
      const statements = statementsOf(stack.functions.ingest.function.role!);
      const states = statements.filter((s) => actions(s).some((a) => a.startsWith('states:')));
      expect(states.flatMap(actions)).toEqual(['states:DescribeExecution']);
      expect(states.flatMap((s) => [s.Resource].flat().map(flatten))).toEqual([
        'arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest:*',
      ]);
    });

    it('is a standard workflow that logs every event without execution data, traced, and findable', () => {
      template.hasResource('AWS::StepFunctions::StateMachine', {
        Metadata: Match.objectLike({ 'sluice:workflow': 'ingest' }),
        Properties: Match.objectLike({
          StateMachineType: 'STANDARD',
          LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: false }),
          TracingConfiguration: { Enabled: true },
        }),
      });
    });
  });

  describe('trigger', () => {
    it('matches Object Created events of the landing bucket, except the files the workflow downloaded', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        EventPattern: {
          source: ['aws.s3'],
          'detail-type': ['Object Created'],
          detail: {
            bucket: { name: [{ Ref: logicalId(stack.storage.landingBucket) }] },
            // Otherwise each download would start a second execution for the same object.
            object: { key: [{ 'anything-but': { prefix: '_downloads/' } }] },
          },
        },
      });
    });

    it('sends the events to the landing queue, with retries and a dead-letter queue for failed deliveries', () => {
      template.hasResourceProperties('AWS::Events::Rule', {
        Targets: [
          Match.objectLike({
            Arn: { 'Fn::GetAtt': [logicalId(stack.trigger.landingQueue), 'Arn'] },
            DeadLetterConfig: {
              Arn: { 'Fn::GetAtt': [logicalId(stack.trigger.deliveryDeadLetterQueue), 'Arn'] },
            },
            RetryPolicy: { MaximumRetryAttempts: 8, MaximumEventAgeInSeconds: 86_400 },
          }),
        ],
      });
      // Only this rule may send to the queue.
      const policy = ofType('AWS::SQS::QueuePolicy').find(([, p]) =>
        JSON.stringify(p.Properties.Queues).includes(logicalId(stack.trigger.landingQueue)),
      )![1].Properties.PolicyDocument.Statement as Record<string, Json>[];
      expect(policy).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
          Condition: {
            ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(stack.trigger.rule), 'Arn'] } },
          },
        }),
      );
      expect(policy).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    });

    it('keeps landing events encrypted for 14 days, dead-lettered after 5 failed starts', () => {
      const queue = resources[logicalId(stack.trigger.landingQueue)]!.Properties;
      expect(queue).toMatchObject({
        SqsManagedSseEnabled: true,
        MessageRetentionPeriod: 14 * 24 * 3600,
        // Six times the starter's 60 s timeout.
        VisibilityTimeout: 360,
        RedrivePolicy: {
          deadLetterTargetArn: { 'Fn::GetAtt': [logicalId(stack.trigger.landingDeadLetterQueue), 'Arn'] },
          maxReceiveCount: 5,
        },
      });
    });

    it('feeds the starter from the queue: batch item failures, at most 2 at once, 10 events a batch', () => {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        EventSourceArn: { 'Fn::GetAtt': [logicalId(stack.trigger.landingQueue), 'Arn'] },
        FunctionName: { Ref: logicalId(stack.trigger.startExecution.function) },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 2 },
        // At 5 starts a second shared by 2 starters, 10 starts take 4 s of the 60 s timeout.
        BatchSize: 10,
      });
      const start = resources[logicalId(stack.trigger.startExecution.function)]!.Properties;
      expect(start.Timeout).toBe(60);
      expect(start.Environment.Variables).toMatchObject({
        STATE_MACHINE_ARN: { Ref: logicalId(stack.workflow.stateMachine) },
        LANDING_QUEUE_URL: { Ref: logicalId(stack.trigger.landingQueue) },
        MAX_STARTS_PER_SECOND: '5',
        MAX_RUNNING_EXECUTIONS: '50',
        STARTERS: '2',
      });
    });

    it('lets the starter start and count executions of the workflow, and use the landing queue, only', () => {
      const statements = statementsOf(stack.trigger.startExecution.role);
      const machine = { Ref: logicalId(stack.workflow.stateMachine) };
      const queue = { 'Fn::GetAtt': [logicalId(stack.trigger.landingQueue), 'Arn'] };
      const byResource = new Map<string, string[]>();
      for (const statement of statements) {
        for (const resource of [statement.Resource].flat()) {
          const key = JSON.stringify(resource);
          byResource.set(key, [...(byResource.get(key) ?? []), ...actions(statement)]);
        }
      }
      expect(byResource.get(JSON.stringify(machine))?.sort()).toEqual([
        'states:ListExecutions',
        'states:StartExecution',
      ]);
      expect(byResource.get(JSON.stringify(queue))?.sort()).toEqual([
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
      ]);
      const others = [...byResource.entries()].filter(
        ([resource]) => resource !== JSON.stringify(machine) && resource !== JSON.stringify(queue),
      );
      // The rest: its own log group, and X-Ray (which has no resource-level permissions).
      for (const [resource, granted] of others) {
        if (resource === '"*"') expect(granted.every((a) => a.startsWith('xray:'))).toBe(true);
        else expect(granted.every((a) => a.startsWith('logs:'))).toBe(true);
      }
    });

    it('leaves no function invoked asynchronously: no Lambda dead-letter queues, no async retries', () => {
      for (const fn of [
        stack.trigger.startExecution,
        stack.functions.ingest,
        stack.functions.silver,
        stack.functions.reconcile,
      ]) {
        expect(resources[logicalId(fn.function)]!.Properties.DeadLetterConfig).toBeUndefined();
      }
      const invokeConfigs = ofType('AWS::Lambda::EventInvokeConfig').map(([, c]) =>
        flatten(c.Properties.FunctionName),
      );
      expect(invokeConfigs).not.toContain(logicalId(stack.trigger.startExecution.function));
    });

    it('reserves no concurrency by default: the account keeps it all', () => {
      for (const fn of [stack.functions.ingest, stack.functions.silver]) {
        expect(resources[logicalId(fn.function)]!.Properties.ReservedConcurrentExecutions).toBeUndefined();
      }
    });

    it('reserves the configured concurrency for ingest and silver, and warns past a default account', () => {
      // Bundling skipped: only the functions' properties matter here.
      const synth = (id: string, ingest: number, silver: number) => {
        const app = new App({ context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] } });
        const config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
        return new SluiceStack(app, id, {
          config: {
            ...config,
            ingest: { ...config.ingest, reservedConcurrency: ingest },
            silver: { ...config.silver, reservedConcurrency: silver },
          },
        });
      };
      const reserved = synth('SluiceReserved', 60, 120);
      const json = Template.fromStack(reserved).toJSON().Resources as Record<string, Resource>;
      const reservedOf = (fn: { function: { node: { defaultChild?: unknown } } }) =>
        json[reserved.getLogicalId(fn.function.node.defaultChild as never)]!.Properties
          .ReservedConcurrentExecutions;
      expect(reservedOf(reserved.functions.ingest)).toBe(60);
      expect(reservedOf(reserved.functions.silver)).toBe(120);
      const warning = Match.stringLikeRegexp('reserve .* concurrent executions');
      expect(Annotations.fromStack(reserved).findWarning('*', warning)).toEqual([]);
      expect(Annotations.fromStack(synth('SluiceGreedy', 500, 500)).findWarning('*', warning)).toHaveLength(
        1,
      );
    });
    it("bounds an ingest slice's input when the config says so (ingest.sliceMaxMb), else by time alone", () => {
      const ingestEnv = (target: SluiceStack) =>
        (Template.fromStack(target).toJSON().Resources as Record<string, Resource>)[
          target.getLogicalId(target.functions.ingest.function.node.defaultChild as never)
        ]!.Properties.Environment.Variables;
      expect(ingestEnv(stack).INGEST_SLICE_MAX_MB).toBeUndefined();
      const app = new App({ context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] } });
      const config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
      const bounded = new SluiceStack(app, 'SluiceBoundedSlices', {
        config: { ...config, ingest: { ...config.ingest, sliceMaxMb: 20480 } },
      });
      expect(ingestEnv(bounded).INGEST_SLICE_MAX_MB).toBe('20480');
    });
  });

  describe('monitoring', () => {
    const alarms = () => ofType('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    const deadLetterQueues = () => [
      stack.workflow.failureQueue,
      stack.trigger.deliveryDeadLetterQueue,
      stack.trigger.landingDeadLetterQueue,
    ];
    const queueDimensions = (queue: { node: { defaultChild?: unknown } }) => [
      { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(queue), 'QueueName'] } },
    ];

    it('alarms on any message in any dead-letter queue', () => {
      for (const queue of deadLetterQueues()) {
        expect(alarms()).toContainEqual(
          expect.objectContaining({
            Namespace: 'AWS/SQS',
            MetricName: 'ApproximateNumberOfMessagesVisible',
            Dimensions: queueDimensions(queue),
            ComparisonOperator: 'GreaterThanThreshold',
            Threshold: 0,
          }),
        );
      }
    });

    it('alarms when the oldest message of a dead-letter queue has waited 3 days (SQS drops it at 14)', () => {
      for (const queue of deadLetterQueues()) {
        expect(alarms()).toContainEqual(
          expect.objectContaining({
            Namespace: 'AWS/SQS',
            MetricName: 'ApproximateAgeOfOldestMessage',
            Dimensions: queueDimensions(queue),
            Statistic: 'Maximum',
            ComparisonOperator: 'GreaterThanThreshold',
            Threshold: 3 * 24 * 3600,
          }),
        );
        expect(resources[logicalId(queue)]!.Properties.MessageRetentionPeriod).toBe(14 * 24 * 3600);
      }
    });

    it('alarms when a landing event has waited an hour: the starter is not taking them', () => {
      expect(alarms()).toContainEqual(
        expect.objectContaining({
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateAgeOfOldestMessage',
          Dimensions: queueDimensions(stack.trigger.landingQueue),
          Statistic: 'Maximum',
          ComparisonOperator: 'GreaterThanThreshold',
          Threshold: 3600,
        }),
      );
    });

    it('alarms on failed, timed-out and aborted executions: outcomes, not throttled transitions', () => {
      const names = alarms()
        .filter((a) => a.Namespace === 'AWS/States')
        .map((a) => a.MetricName)
        .sort();
      expect(names).toEqual(['ExecutionsAborted', 'ExecutionsFailed', 'ExecutionsTimedOut']);
    });

    it('does not alarm on Lambda errors or throttles, which the workflow retries', () => {
      expect(alarms().filter((a) => a.Namespace === 'AWS/Lambda')).toEqual([]);
    });

    it('alarms when an execution of a dataset runs longer than its bound, or the watch stops reporting', () => {
      const tooLong = alarms().filter((a) => a.MetricName === 'OldestRunningExecutionMinutes');
      const byDataset = Object.fromEntries(
        tooLong.map((a) => [a.Dimensions.find((d: Json) => d.Name === 'dataset').Value, a]),
      );
      expect(Object.keys(byDataset).sort()).toEqual(['tic-in-network', 'tic-table-of-contents']);
      for (const [dataset, hours] of [
        ['tic-in-network', 12],
        ['tic-table-of-contents', 48],
      ] as const) {
        expect(byDataset[dataset]).toMatchObject({
          Namespace: 'Sluice',
          Statistic: 'Maximum',
          Period: 900,
          Threshold: hours * 60,
          ComparisonOperator: 'GreaterThanThreshold',
          TreatMissingData: 'breaching',
          Dimensions: expect.arrayContaining([{ Name: 'service', Value: 'sluice-dev' }]),
        });
      }
    });

    it('runs the execution watch every 5 minutes, allowed to list and describe only its executions', () => {
      const watcher = stack.monitoring.executionWatch.watcher;
      const fn = logicalId(watcher.function);
      const [, rule] = ofType('AWS::Events::Rule').find(([, r]) =>
        JSON.stringify(r.Properties.Targets).includes(fn),
      )!;
      expect(rule.Properties.ScheduleExpression).toBe('rate(5 minutes)');
      expect(resources[fn]!.Properties.Environment.Variables).toMatchObject({
        STATE_MACHINE_ARN: { Ref: logicalId(stack.workflow.stateMachine) },
        DATASETS: 'tic-in-network,tic-table-of-contents',
      });
      const statements = statementsOf(watcher.role).filter((st) =>
        actions(st).some((a) => a.startsWith('states:')),
      );
      expect(statements.map((st) => [actions(st), targets(st)])).toEqual([
        [['states:ListExecutions'], ['<TOKEN>']],
        [['states:DescribeExecution'], ['arn:<TOKEN>:states:<TOKEN>:<TOKEN>:execution:SluiceTest-ingest:*']],
      ]);
    });

    it('alarms when a dataset has no successful ingest within its freshness window', () => {
      const stale = alarms().filter((a) => a.MetricName === 'IngestSucceeded');
      expect(stale.map((a) => a.Dimensions.find((d: Json) => d.Name === 'dataset').Value).sort()).toEqual([
        'tic-in-network',
        'tic-table-of-contents',
      ]);
      expect(stale.find((a) => JSON.stringify(a.Dimensions).includes('"tic-in-network"'))).toMatchObject({
        Namespace: 'Sluice',
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 48,
        DatapointsToAlarm: 48,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
        Dimensions: expect.arrayContaining([{ Name: 'service', Value: 'sluice-dev' }]),
      });
    });

    it('alarms on any failed reconciliation, per dataset', () => {
      const failed = alarms().filter((a) => a.MetricName === 'ReconciliationFailed');
      expect(failed.map((a) => a.Dimensions.find((d: Json) => d.Name === 'dataset').Value).sort()).toEqual([
        'tic-in-network',
        'tic-table-of-contents',
      ]);
      for (const alarm of failed) {
        expect(alarm).toMatchObject({
          Namespace: 'Sluice',
          Statistic: 'Sum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
        });
      }
    });

    it('alarms when the quarantined share of ingested records passes the configured threshold', () => {
      const rates = alarms().filter((a) => a.Metrics?.some((m: Json) => m.Expression));
      expect(rates).toHaveLength(2);
      for (const alarm of rates) {
        expect(alarm).toMatchObject({ Threshold: 0.05, ComparisonOperator: 'GreaterThanThreshold' });
        const expression = alarm.Metrics.find((m: Json) => m.Expression);
        expect(expression.Expression).toMatch(
          /^IF\(\(FILL\(ingested\d_0, 0\).*\) > 0, FILL\(quarantined\d, 0\) \//,
        );
        const names = alarm.Metrics.filter((m: Json) => m.MetricStat).map(
          (m: Json) => m.MetricStat.Metric.MetricName,
        );
        expect(names[0]).toBe('QuarantinedRecords');
        expect(new Set(names.slice(1))).toEqual(new Set(['RecordsIngested']));
      }
      // The same threshold fails a single run over it, in its Reconcile stage.
      const reconcileEnv = resources[logicalId(stack.functions.reconcile.function)]!.Properties.Environment;
      expect(reconcileEnv.Variables.QUARANTINE_RATE_THRESHOLD).toBe(String(rates[0]!.Threshold));
      const inNetwork = rates.find((a) => JSON.stringify(a.Metrics).includes('"tic-in-network"'))!;
      // One RecordsIngested series per record stream of the dataset, added up.
      expect(inNetwork.Metrics.filter((m: Json) => m.MetricStat).length).toBeGreaterThan(2);
    });

    it('notifies the KMS-encrypted alarm topic on ALARM and OK, every alarm', () => {
      const topic = logicalId(stack.monitoring.topic);
      // DLQs × (depth, age), the landing queue stalled, executions (failed, timed out, aborted), datasets ×
      // (stale, reconciliation, running too long, quarantine rate)
      expect(alarms().length).toBe(3 * 2 + 1 + 3 + 2 * 4);
      for (const alarm of alarms()) {
        expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
        expect(alarm.OKActions).toEqual([{ Ref: topic }]);
        expect(alarm.AlarmDescription.length).toBeGreaterThan(40);
      }
      expect(resources[topic]!.Properties.KmsMasterKeyId).toBeDefined();
    });

    it('subscribes no example address: without alarmEmail, synth warns where alarms go and how to subscribe', () => {
      template.resourceCountIs('AWS::SNS::Subscription', 0);
      const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('alarmEmail'));
      expect(warnings).toHaveLength(1);
      const text = String(warnings[0]!.entry.data);
      for (const part of ['AlarmTopicArn', 'aws sns subscribe', 'confirmation', 'docs/DEPLOY.md']) {
        expect(text).toContain(part);
      }
      expect(readFileSync(path.join(REPO_ROOT, 'sluice.config.json'), 'utf8')).not.toContain('example.com');
    });

    it('e-mails the configured address, without the warning', () => {
      // Bundling skipped: only the topic matters here.
      const app = new App({ context: { ...cdkContext(), 'aws:cdk:bundling-stacks': [] } });
      const config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
      const withEmail = new SluiceStack(app, 'SluiceMail', {
        config: { ...config, alarmEmail: 'oncall@sluice.test' },
      });
      Template.fromStack(withEmail).hasResourceProperties('AWS::SNS::Subscription', {
        Protocol: 'email',
        Endpoint: 'oncall@sluice.test',
      });
      expect(Annotations.fromStack(withEmail).findWarning('*', Match.stringLikeRegexp('alarmEmail'))).toEqual(
        [],
      );
    });

    /** The dashboard body as JSON, its tokens replaced by "<TOKEN>". */
    const dashboardBody = () => {
      const [, dashboard] = ofType('AWS::CloudWatch::Dashboard')[0]!;
      return JSON.parse(flatten(dashboard.Properties.DashboardBody)) as { widgets: Json[] };
    };

    it('has a named dashboard whose first row answers "is it healthy?"', () => {
      const [, dashboard] = ofType('AWS::CloudWatch::Dashboard')[0]!;
      expect(dashboard.Properties.DashboardName).toBe('sluice-dev');
      const firstRow = dashboardBody()
        .widgets.filter((w) => w.y === 0)
        .sort((a, b) => a.x - b.x);
      expect(firstRow.map((w) => [w.type, w.properties.title])).toEqual([
        ['alarm', 'Alarms (red: read its description)'],
        ['metric', 'Executions running now'],
        ['metric', 'Executions ended, last 24 h'],
        ['metric', 'Dead-letter queues (messages)'],
        ['metric', 'Hours since last success'],
      ]);
      expect(firstRow.reduce((width, w) => width + w.width, 0)).toBe(24);
      const [status, running, ended, dlq, hours] = firstRow;
      // Every alarm, in the status widget.
      expect(status.properties.alarms).toHaveLength(alarms().length);
      const metricNames = (w: Json) =>
        w.properties.metrics.flatMap((m: Json[]) => m.filter((part) => typeof part === 'string'));
      expect(metricNames(running)).toContain('ExecutionsRunning');
      expect(running.properties.metrics).toHaveLength(3); // all, and per dataset
      expect(ended.properties).toMatchObject({
        view: 'singleValue',
        setPeriodToTimeRange: true,
        start: '-PT24H',
      });
      for (const name of [
        'ExecutionsSucceeded',
        'ExecutionsFailed',
        'ExecutionsTimedOut',
        'ExecutionsAborted',
      ]) {
        expect(metricNames(ended)).toContain(name);
      }
      expect(dlq.properties.metrics).toHaveLength(3);
      expect(metricNames(dlq)).toContain('ApproximateNumberOfMessagesVisible');
      // Per dataset: hours since the last hour with a successful ingest.
      const expressions = hours.properties.metrics
        .map((m: Json[]) => m.find((part) => typeof part === 'object' && part.expression))
        .filter(Boolean);
      expect(expressions).toHaveLength(2);
      expect(expressions[0].expression).toBe(
        '(EPOCH(FILL(succeeded0, 0)) - FILL(IF(FILL(succeeded0, 0) > 0, EPOCH(FILL(succeeded0, 0))), REPEAT)) / 3600',
      );
      expect(metricNames(hours)).toContain('IngestSucceeded');
    });

    it('puts its URL in the stack outputs, beside the alarm topic', () => {
      const outputs = template.toJSON().Outputs;
      expect(flatten(outputs.DashboardUrl.Value)).toBe(
        'https://<TOKEN>.console.aws.amazon.com/cloudwatch/home?region=<TOKEN>#dashboards/dashboard/sluice-dev',
      );
      expect(outputs.AlarmTopicArn.Value).toEqual({ Ref: logicalId(stack.monitoring.topic) });
    });

    it('graphs executions, durations vs timeouts, retried errors, records, bytes, DLQ age, run ages and run costs below', () => {
      const body = JSON.stringify(dashboardBody());
      for (const text of [
        'ExecutionsStarted',
        'ExecutionThrottled',
        'Duration',
        '"label":"timeout"',
        'Errors',
        'Throttles',
        'RecordsIngested',
        'SourceBytes',
        'ApproximateAgeOfOldestMessage',
        'OldestRunningExecutionMinutes',
        'QualityScore',
        'QuarantinedRecords',
        'quarantine rate',
        'IngestSliceDuration',
        'IngestProgressPercent',
        'RunCostUsd',
        'RunCostUsdPerGb',
      ]) {
        expect(body).toContain(text);
      }
    });
  });

  describe('cdk-nag', () => {
    it('passes the AWS Solutions checks, every remaining finding acknowledged with a reason', () => {
      const report = new AwsSolutionsChecks().validateScope(stack);
      expect(report.violations).toEqual([]);
      expect(report.success).toBe(true);
    });
  });
});
