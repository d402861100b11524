import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDeploymentConfig } from '../../infra/config/deployment-config.ts';
import { REPO_ROOT } from '../../infra/constructs/sluice-function.ts';
import { SluiceStack } from '../../infra/stacks/sluice-stack.ts';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset, builtInDatasets } from '../../shared/contracts/datasets/index.ts';
import { USAGE_PREFIX } from '../../shared/lake/run-usage.ts';
import { silverStateManifestKey } from '../../shared/lake/state-keys.ts';
import {
  type LocalFunctionName,
  localFunctionOf,
  localWorkflowDefinition,
} from '../../shared/pipeline/local-functions.ts';
import {
  committedRun,
  type LocalWorkflowDeps,
  runWorkflowLocally,
} from '../../shared/pipeline/local-runner.ts';
import { RETIRED_GENERATIONS } from '../../shared/stages/silver/merge-state.ts';
import { Placeholder, taskResources } from '../../shared/workflow/definition.ts';
import { TIC_EXAMPLES, tableOfContents } from '../helpers/fixtures.ts';
import { type FlakyServer, startFlakyServer } from '../helpers/flaky-http-server.ts';
import { allows, type TemplateStatement } from '../helpers/iam-policy.ts';
import { fixedClock, generateFile, tempDir } from '../helpers/lake.ts';
import { RecordingObjectStore, type StoreCall } from '../helpers/recording-object-store.ts';
import { s3PermissionsOf } from '../helpers/s3-requests.ts';

/**
 * moto does not enforce IAM: a stage that touches a lake key its Lambda role does not grant passes every
 * local test and fails only on AWS. This runs the deployed workflow locally (each task its function's
 * handler) on inputs that reach every stage and path that touches the lake or the landing bucket,
 * records each function's object-store calls, turns them into the S3 requests the S3 adapter makes, and
 * checks each against that function's role in the synthesized stack.
 */

type Bucket = 'lake' | 'landing';
/** One object-store call of one function, in one scenario. */
interface Touch {
  readonly fn: LocalFunctionName;
  readonly bucket: Bucket;
  readonly call: StoreCall;
  readonly scenario: string;
}

/** Short names of the functions, for the report. */
const FUNCTION_NAMES: Record<LocalFunctionName, string> = {
  [Placeholder.downloadFunctionArn]: 'Download',
  [Placeholder.ingestFunctionArn]: 'Ingest',
  [Placeholder.silverFunctionArn]: 'Silver',
  [Placeholder.reconcileFunctionArn]: 'Reconcile',
  [Placeholder.fanOutFunctionArn]: 'FanOut',
};

/**
 * The functions whose handler records its invocations' usage on AWS (its deps' `usage`: ingest's
 * createDeps and createLakeStageDeps); Download's meters nothing. Locally the runner writes every
 * state's record, which on AWS the function of that state writes with its own role.
 */
const RECORDS_USAGE: readonly LocalFunctionName[] = [
  Placeholder.ingestFunctionArn,
  Placeholder.silverFunctionArn,
  Placeholder.reconcileFunctionArn,
  Placeholder.fanOutFunctionArn,
];

/** The function each Lambda task state invokes. */
const functionOfState = new Map(
  taskResources(localWorkflowDefinition()).flatMap(([state, resource]) => {
    const fn = localFunctionOf(resource);
    return fn ? [[state, fn] as const] : [];
  }),
);

/**
 * The deployment the runs are checked against: the example config, plus scheduled sources of a table of
 * contents and of an in-network file (the URL scenarios download both datasets; without a source, the
 * download function may land only the files tables of contents list).
 */
function deploymentConfig() {
  const example = JSON.parse(readFileSync(join(REPO_ROOT, 'sluice.config.json'), 'utf8'));
  return parseDeploymentConfig({
    ...example,
    sources: [
      {
        name: 'toc',
        url: 'https://example.org/toc.json',
        dataset: 'tic-table-of-contents',
        schedule: 'rate(1 day)',
      },
      {
        name: 'in-network',
        url: 'https://example.org/in-network.json.gz',
        dataset: 'tic-in-network',
        schedule: 'rate(1 day)',
      },
    ],
  });
}

/** A generic dataset whose cdc load folds each source into the table's merged state after its commit. */
const accounts = parseDatasetConfig({
  name: 'accounts',
  format: 'ndjson',
  silver: {
    table: 'accounts',
    columns: [
      { name: 'account_id', type: 'integer', source: 'id' },
      { name: 'seq', type: 'integer' },
      { name: 'op', type: 'string' },
      { name: 'owner', type: 'string', required: true },
    ],
    primaryKey: ['account_id'],
    orderingColumn: 'seq',
    load: 'cdc',
  },
});
/** Change events of accounts 1..n at sequence `seq`; `ownerless` of them without their required owner. */
const changes = (n: number, seq: number, ownerless = 0) =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      id: i + 1,
      seq,
      op: seq === 1 ? 'insert' : 'update',
      owner: i < ownerless ? null : `o${i}`,
    }),
  ).join('\n');

/** The in-network samples the table of contents lists (beside a file the server does not have). */
const LISTED = [
  'in-network-rates-fee-for-service-single-plan-sample.json',
  'in-network-rates-capitation-single-plan-sample.json',
];

describe('IAM coverage: every S3 request of each function is granted by its role', () => {
  const touches: Touch[] = [];
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let server: FlakyServer;
  let stack: SluiceStack;
  let template: ReturnType<Template['toJSON']>;

  beforeAll(async () => {
    tmp = await tempDir('sluice-iam-');
    // Files served with Range support, so that a download can continue in another invocation.
    server = await startFlakyServer();
    const serve = (path: string, body: Buffer) => server.route(path, { content: { body } });
    const generated = await generateFile(tmp.dir, 'in-network.json.gz', {
      seed: 20261207,
      targetBytes: 200_000,
    });
    serve('/in-network.json.gz', await readFile(generated.path));
    for (const name of LISTED) serve(`/files/${name}`, await readFile(join(TIC_EXAMPLES, name)));
    serve('/toc.json', Buffer.from(JSON.stringify(listing(server.origin))));

    // Synthesized without bundling the functions' code: only the roles are read.
    const context = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
    const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
    stack = new SluiceStack(app, 'SluiceIam', { config: deploymentConfig() });
    template = Template.fromStack(stack).toJSON();

    await runScenarios();
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await tmp?.cleanup();
  });

  /**
   * One scenario's stores: a landing folder and a lake folder, which each function gets wrapped in a
   * recording store (through the runner's `functionStores` seam). The runner's own lake calls are the
   * local runtime's (its lease release, its clean-up of usage records), except the usage records it
   * writes for each invocation, which on AWS the invoked function writes: those count as that function's.
   */
  function scenario(name: string): LocalWorkflowDeps {
    const dir = join(tmp.dir, name.replace(/\W+/g, '-'));
    const lake = new FileObjectStore(join(dir, 'lake'));
    const landing = new FileObjectStore(join(dir, 'landing'));
    const recorder = (fn: LocalFunctionName, bucket: Bucket) => (call: StoreCall) =>
      touches.push({ fn, bucket, call, scenario: name });
    const runnerLake = new RecordingObjectStore(lake, (call) => {
      if (call.op !== 'write' || !call.key.startsWith(USAGE_PREFIX)) return;
      const fn = functionOfState.get(call.key.split('/')[2] ?? '');
      if (fn && RECORDS_USAGE.includes(fn)) recorder(fn, 'lake')(call);
    });
    return {
      source: landing,
      lake: runnerLake,
      clock: fixedClock,
      workDir: join(dir, 'work'),
      deadLetters: new FolderDeadLetterStore(join(dir, 'dead-letters')),
      retryIntervalMs: 0,
      // No worker threads: a silver group in a worker opens the lake itself, past the recording store.
      silverParallelism: 1,
      downloadFetchOptions: { allowLoopback: true, allowInsecureHttp: true },
      functionStores: {
        lake: (fn) => new RecordingObjectStore(lake, recorder(fn, 'lake')),
        landing: (fn) => new RecordingObjectStore(landing, recorder(fn, 'landing')),
      },
    };
  }

  async function runScenarios(): Promise<void> {
    const tic = builtInDataset('tic-in-network');
    const sample = await readFile(join(TIC_EXAMPLES, 'in-network-rates-multiple-plans-sample.json'));

    // A built-in sample: a run, the same file again (unchanged), the same bytes landed under another key
    // (a source of its own, whose bronze is the first one's), and a forced rebuild of its silver from
    // committed bronze (`sluice rebuild`).
    // Several merge buckets, reconcile items and key buckets: every intermediate key is written.
    const builtIn = {
      ...scenario('built-in sample'),
      silverBucketTargetBytes: 2048,
      reconcilePlan: { minGroups: 2, minKeyBuckets: 2 },
    };
    await builtIn.source.write('tic-in-network/sample.json', sample);
    const ran = committedRun(
      await runWorkflowLocally({ dataset: tic, sourceKey: 'tic-in-network/sample.json' }, builtIn),
    );
    const again = await runWorkflowLocally(
      { dataset: tic, sourceKey: 'tic-in-network/sample.json' },
      builtIn,
    );
    expect(again.outcome).toBe('unchanged');
    await builtIn.source.write('tic-in-network/copy.json', sample);
    await runWorkflowLocally({ dataset: tic, sourceKey: 'tic-in-network/copy.json' }, builtIn);
    const rebuilt = await runWorkflowLocally(
      { dataset: tic, rebuild: { sourceId: ran.commit!.sourceId, force: true } },
      builtIn,
    );
    expect(rebuilt.outcome).toBe('committed');

    // A generic cdc dataset, four sources: each folds into the merged state the one before made, the last
    // deleting the state files retired `RETIRED_GENERATIONS` merges before. A fifth, mostly without the
    // required owner, fails in Reconcile on its quarantine rate (a failed run).
    const generic = scenario('generic cdc');
    const sources = Array.from({ length: RETIRED_GENERATIONS + 2 }, (_, i) => changes(6, i + 1));
    for (const [n, body] of sources.entries()) {
      await generic.source.write(`accounts/changes-${n}.ndjson`, body);
      const run = committedRun(
        await runWorkflowLocally({ dataset: accounts, sourceKey: `accounts/changes-${n}.ndjson` }, generic),
      );
      expect(run.state).toBeDefined();
    }
    // A rerun of the second: unchanged, and its merged state current already (CatchUpState, in Reconcile).
    const rerun = () =>
      runWorkflowLocally({ dataset: accounts, sourceKey: 'accounts/changes-1.ndjson' }, generic);
    expect(await rerun()).toMatchObject({ outcome: 'unchanged', state: { outcome: 'already-applied' } });
    // As if its run had died between its commit and its fold: the state manifest never written. The
    // rerun folds every current version again, writing the state from CatchUpState.
    await generic.lake.delete(silverStateManifestKey(accounts.name, 'accounts'));
    expect(await rerun()).toMatchObject({
      outcome: 'unchanged',
      state: { outcome: 'merged', applied: true },
    });
    await generic.source.write('accounts/ownerless.ndjson', changes(6, sources.length + 1, 5));
    await expect(
      runWorkflowLocally({ dataset: accounts, sourceKey: 'accounts/ownerless.ndjson' }, generic),
    ).rejects.toThrow(/quarantine/i);

    // A table of contents by URL: downloaded, ingested, and fanned out a page at a time; each listed
    // file downloaded and run as its own execution, one of them missing (a failed child, dead-lettered).
    const fanOut = scenario('table of contents');
    const toc = committedRun(
      await runWorkflowLocally(
        { dataset: builtInDataset('tic-table-of-contents'), source: { url: `${server.origin}/toc.json` } },
        { ...fanOut, fanOutPageSize: 1 },
      ),
    );
    expect(toc.fanOut?.files.map((f) => f.status)).toEqual(['succeeded', 'failed', 'succeeded']);

    // A download and an ingest longer than one invocation: a multipart upload and its checkpoint, resumed
    // part by part; the ingest in slices (of small segments), each ending at a checkpoint.
    const sliced = scenario('sliced download and ingest');
    const slicedRun = committedRun(
      await runWorkflowLocally(
        {
          dataset: parseDatasetConfig({ ...tic, bronze: { ...tic.bronze, segmentBytes: 32 * 1024 } }),
          source: { url: `${server.origin}/in-network.json.gz` },
        },
        {
          ...sliced,
          downloadPartBytes: 16 * 1024,
          sliceBudget: () => ({ shouldStop: () => true }),
        },
      ),
    );
    expect(slicedRun.bronze.slices).toBeGreaterThan(1);

    // A failed ingest: an allowed-amounts file landed as an in-network one.
    const failed = scenario('failed ingest');
    const allowed = await readFile(join(TIC_EXAMPLES, 'allowed-amounts-single-plan-sample.json'));
    await failed.source.write('tic-in-network/allowed.json', allowed);
    await expect(
      runWorkflowLocally({ dataset: tic, sourceKey: 'tic-in-network/allowed.json' }, failed),
    ).rejects.toThrow(/in_network/);
  }

  /** A table of contents listing the two samples and a file the server does not have. */
  const listing = (at: string) =>
    tableOfContents([
      { description: 'fee for service', location: `${at}/files/${LISTED[0]}` },
      { description: 'gone', location: `${at}/files/in-network-rates-gone.json` },
      { description: 'capitation', location: `${at}/files/${LISTED[1]}` },
    ]);

  /** Each function's role in the synthesized stack. */
  const roleOf = (fn: LocalFunctionName): IRole =>
    ({
      [Placeholder.downloadFunctionArn]: stack.sources.download.role,
      [Placeholder.ingestFunctionArn]: stack.functions.ingest.role,
      [Placeholder.silverFunctionArn]: stack.functions.silver.role,
      [Placeholder.reconcileFunctionArn]: stack.functions.reconcile.role,
      [Placeholder.fanOutFunctionArn]: stack.functions.fanOut.role,
    })[fn];

  /** The statements of the identity policies attached to a role. */
  const statementsOf = (role: IRole): TemplateStatement[] => {
    const ref = JSON.stringify({ Ref: stack.getLogicalId(role.node.defaultChild as never) });
    type Policy = {
      Type: string;
      Properties: { Roles: unknown[]; PolicyDocument: { Statement: TemplateStatement[] } };
    };
    return Object.values(template.Resources as Record<string, Policy>)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((p) => p.Properties.Roles.some((r) => JSON.stringify(r) === ref))
      .flatMap((p) => p.Properties.PolicyDocument.Statement);
  };

  const bucketOf = (logicalId: string): Bucket | undefined => {
    if (logicalId === stack.getLogicalId(stack.storage.lakeBucket.node.defaultChild as never)) return 'lake';
    if (logicalId === stack.getLogicalId(stack.storage.landingBucket.node.defaultChild as never)) {
      return 'landing';
    }
    return undefined;
  };

  /**
   * A generic dataset cannot be deployed (the deployment config names built-in datasets only), so no role
   * grants its landing prefix: its landing reads are left out; its lake keys are checked as any other.
   */
  const deployable = (bucket: Bucket, key: string) =>
    bucket === 'lake' || key.replace(/^_downloads\//, '').split('/')[0]! in builtInDatasets;

  /**
   * Each (function, action, bucket key or listed prefix) that no statement of the function's role grants,
   * with the request and the scenario that made it; keys that differ only in their ids (runs, sources,
   * executions: segments other than plain names) are reported once, with how many there were.
   */
  function gaps(statements: (fn: LocalFunctionName) => TemplateStatement[]): string[] {
    const found = new Map<string, { example: string; count: number }>();
    for (const { fn, bucket, call, scenario } of touches) {
      for (const permission of s3PermissionsOf(call)) {
        const target = 'prefix' in permission ? permission.prefix : permission.key;
        if (!deployable(bucket, target)) continue;
        if (allows(statements(fn), bucket, permission, bucketOf)) continue;
        const what = `${FUNCTION_NAMES[fn]}: ${permission.action} ${bucket}:${'prefix' in permission ? 'list ' : ''}`;
        const shape = `${what}${target
          .split('/')
          .map((s) => (/^[A-Za-z_.-]*$/.test(s) ? s : '*'))
          .join('/')}`;
        const seen = found.get(shape);
        if (seen) seen.count++;
        else found.set(shape, { example: `${what}${target} (${permission.request}; ${scenario})`, count: 1 });
      }
    }
    return [...found.values()]
      .map(({ example, count }) => (count > 1 ? `${example} and ${count - 1} more like it` : example))
      .sort();
  }

  it('reaches every function, on the lake and the landing bucket, through every kind of request', () => {
    const {
      downloadFunctionArn,
      ingestFunctionArn,
      silverFunctionArn,
      reconcileFunctionArn,
      fanOutFunctionArn,
    } = Placeholder;
    const expected: [LocalFunctionName, StoreCall['op'], RegExp][] = [
      // Download: a multipart upload resumed from its checkpoint, which it removes at the end.
      [downloadFunctionArn, 'uploadPart', /^_downloads\/tic-in-network\//],
      [downloadFunctionArn, 'listParts', /^_downloads\/tic-in-network\//],
      [downloadFunctionArn, 'completeUpload', /^_downloads\/tic-in-network\//],
      [downloadFunctionArn, 'delete', /^_downloads\/tic-in-network\/.*checkpoint/],
      [downloadFunctionArn, 'list', /^_downloads\/tic-table-of-contents\//],
      // Ingest: landed and downloaded files read, bronze and checkpoints written, source records committed.
      [ingestFunctionArn, 'read', /^tic-in-network\//],
      [ingestFunctionArn, 'read', /^_downloads\/tic-table-of-contents\//],
      [ingestFunctionArn, 'write', /^bronze\/.*checkpoint/],
      [ingestFunctionArn, 'delete', /^bronze\//],
      [ingestFunctionArn, 'write', /^_sources\/.*lease/],
      // Silver: a rebuild's lease; work files, tables and manifests.
      [silverFunctionArn, 'write', /^_sources\/.*lease/],
      [silverFunctionArn, 'write', /^silver\/.*\/_work\//],
      [silverFunctionArn, 'write', /^silver\/.*_manifests\//],
      // Reconcile: merged states folded and replaced, its work removed, reports, commits, usage read.
      [reconcileFunctionArn, 'write', /^silver\/accounts\/_state\//],
      [reconcileFunctionArn, 'delete', /^silver\/accounts\/_state\//],
      [reconcileFunctionArn, 'delete', /\/_reconcile\//],
      [reconcileFunctionArn, 'write', /^bronze\/.*\/report\.html$/],
      [reconcileFunctionArn, 'write', /^bronze\/.*\/rebuild=[^/]+\/reconciliation\.json$/],
      [reconcileFunctionArn, 'write', /^_sources\/.*version/],
      [reconcileFunctionArn, 'list', /^_usage\//],
      // FanOut: its reports, and the table of contents' run report rewritten.
      [fanOutFunctionArn, 'write', /^bronze\/tic-table-of-contents\/.*\/fan-out\//],
      [fanOutFunctionArn, 'write', /^bronze\/tic-table-of-contents\/.*\/report\.html$/],
      // Every function that records its usage on AWS.
      ...RECORDS_USAGE.map((fn): [LocalFunctionName, StoreCall['op'], RegExp] => [fn, 'write', /^_usage\//]),
    ];
    const unreached = expected.filter(
      ([fn, op, pattern]) =>
        !touches.some(
          (t) =>
            t.fn === fn && t.call.op === op && pattern.test('key' in t.call ? t.call.key : t.call.prefix),
        ),
    );
    expect(unreached.map(([fn, op, pattern]) => `${FUNCTION_NAMES[fn]} ${op} ${pattern}`)).toEqual([]);
  });

  it('finds no request of any function that its role does not grant', () => {
    expect(gaps((fn) => statementsOf(roleOf(fn)))).toEqual([]);
  });

  it("reports Reconcile's merged-state writes once its MergeSilverState grant is removed", () => {
    const withoutMergeState = (fn: LocalFunctionName) =>
      statementsOf(roleOf(fn)).filter(
        (s) => !(fn === Placeholder.reconcileFunctionArn && s.Sid === 'MergeSilverState'),
      );
    const baseline = new Set(gaps((fn) => statementsOf(roleOf(fn))));
    const found = gaps(withoutMergeState).filter((gap) => !baseline.has(gap));
    expect(found.length).toBeGreaterThan(0);
    for (const gap of found)
      expect(gap).toMatch(/^Reconcile: s3:(PutObject|DeleteObject) lake:silver\/accounts\/_state\//);
  });
});
