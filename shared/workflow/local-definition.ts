import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The deployed workflow's Amazon States Language, for the local runner: taken from the CDK app's
 * synthesized template, not written a second time. The example deployment (`sluice.config.json`) is
 * synthesized in-process without bundling the functions (their code is not part of the definition), the
 * state machine is found by its metadata `sluice:workflow`, and its `DefinitionString` (an `Fn::Join` of
 * text and `Ref`/`Fn::GetAtt` tokens) becomes plain JSON with placeholder ARNs in place of the tokens.
 *
 * A synthesis costs seconds (loading aws-cdk-lib and building the stack), so the result is kept in
 * memory for the process and on disk under `node_modules/.cache/sluice/`, keyed by a hash of every file
 * that can change it: the workflow (`shared/workflow/*.ts`), the CDK app (`infra/**\/*.ts`), the
 * dependency versions (`package-lock.json`) and the app's context and config (`cdk.json`,
 * `sluice.config.json`).
 */

/** The repository root: where `infra/`, `cdk.json` and `package-lock.json` live. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the extracted definition is cached between processes. */
const DEFAULT_CACHE_DIR = path.join(REPO_ROOT, 'node_modules', '.cache', 'sluice');
/** The metadata key that marks the workflow's state machine (infra/constructs/ingest-workflow.ts). */
const WORKFLOW_METADATA_KEY = 'sluice:workflow';
/** Placeholder account and region for the ARNs that stand in for CloudFormation tokens. */
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

// biome-ignore lint/suspicious/noExplicitAny: ASL is JSON; the local runner and its library check its shape.
type Json = any;

/** A state machine definition in Amazon States Language. */
export interface WorkflowDefinition {
  readonly StartAt: string;
  readonly States: Record<string, Json>;
  readonly TimeoutSeconds?: number;
  readonly Comment?: string;
}

/** Options of `workflowDefinition`. */
export interface WorkflowDefinitionOptions {
  /** Where to cache the definition on disk; `false` for no disk cache. @default node_modules/.cache/sluice */
  readonly cacheDir?: string | false;
}

/** How the last call obtained the definition, and how long it took: for logs and the curious. */
export interface DefinitionProvenance {
  readonly from: 'memory' | 'disk' | 'synth';
  readonly ms: number;
}

let inMemory: Promise<WorkflowDefinition> | undefined;
let provenance: DefinitionProvenance | undefined;

/** How the last `workflowDefinition` call got its result. */
export function lastDefinitionProvenance(): DefinitionProvenance | undefined {
  return provenance;
}

/** The workflow's ASL: from this process's memory, else the disk cache, else a fresh synthesis. */
export async function workflowDefinition(
  options: WorkflowDefinitionOptions = {},
): Promise<WorkflowDefinition> {
  const started = performance.now();
  if (inMemory) {
    const definition = await inMemory;
    provenance = { from: 'memory', ms: performance.now() - started };
    return definition;
  }
  inMemory = load(options.cacheDir ?? DEFAULT_CACHE_DIR, started);
  // A failed load must not poison later calls.
  inMemory.catch(() => {
    inMemory = undefined;
  });
  return inMemory;
}

async function load(cacheDir: string | false, started: number): Promise<WorkflowDefinition> {
  const cacheFile = cacheDir ? path.join(cacheDir, `workflow-${await sourceHash()}.asl.json`) : undefined;
  if (cacheFile) {
    const cached = await readFile(cacheFile, 'utf8').catch(() => undefined);
    if (cached !== undefined) {
      provenance = { from: 'disk', ms: performance.now() - started };
      return JSON.parse(cached) as WorkflowDefinition;
    }
  }
  const definition = await synthesizeDefinition();
  provenance = { from: 'synth', ms: performance.now() - started };
  if (cacheFile) {
    // Best effort: a read-only node_modules only costs the next process a synthesis.
    await writeAtomically(cacheFile, `${JSON.stringify(definition, null, 2)}\n`).catch(() => {});
  }
  return definition;
}

/**
 * Synthesize the example deployment and extract its workflow. aws-cdk-lib is loaded only here, so a
 * process that finds the definition cached never loads it.
 */
export async function synthesizeDefinition(): Promise<WorkflowDefinition> {
  const [{ Annotations, App }, { SluiceStack }, { loadDeploymentConfig }] = await Promise.all([
    import('aws-cdk-lib'),
    import('../../infra/stacks/sluice-stack.ts'),
    import('../../infra/config/deployment-config.ts'),
  ]);
  const cdkJson = JSON.parse(await readFile(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  const outdir = await mkdtemp(path.join(tmpdir(), 'sluice-workflow-synth-'));
  try {
    const app = new App({
      outdir,
      // The same feature flags as `cdk synth`; no stack is bundled (`aws:cdk:bundling-stacks`), since the
      // functions' code is not part of the definition and bundling DuckDB runs `npm ci`.
      context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] },
    });
    const config = loadDeploymentConfig(path.join(REPO_ROOT, 'sluice.config.json'));
    const stack = new SluiceStack(app, config.stackName, { config });
    // A local run deploys nothing: where alarms would go is not its user's concern.
    Annotations.of(stack).acknowledgeWarning('sluice:no-alarm-email', 'a local run reads the workflow only');
    const template = app.synth().getStackByName(stack.stackName).template as {
      Resources: Record<string, { Type: string; Metadata?: Record<string, unknown>; Properties: Json }>;
    };
    return extractDefinition(template);
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

/** The workflow's ASL in a synthesized template, its tokens replaced by placeholder ARNs. */
export function extractDefinition(template: {
  Resources: Record<string, { Type: string; Metadata?: Record<string, unknown>; Properties: Json }>;
}): WorkflowDefinition {
  const machines = Object.values(template.Resources).filter(
    (r) => r.Type === 'AWS::StepFunctions::StateMachine' && r.Metadata?.[WORKFLOW_METADATA_KEY] !== undefined,
  );
  if (machines.length !== 1) {
    throw new Error(
      `expected one state machine with metadata ${WORKFLOW_METADATA_KEY} in the template, found ${machines.length}`,
    );
  }
  const definitionString: unknown = machines[0]!.Properties.DefinitionString;
  const text = flattenTokens(definitionString, (token) => placeholderFor(token, template.Resources));
  return JSON.parse(text) as WorkflowDefinition;
}

/** A CloudFormation string value (`Fn::Join` of text and tokens) as text, each token replaced. */
function flattenTokens(value: unknown, replace: (token: Json) => string): string {
  if (typeof value === 'string') return value;
  const join = (value as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
  if (join) return join[1].map((part) => flattenTokens(part, replace)).join(join[0]);
  return replace(value);
}

/** A stand-in for a `Ref` or `Fn::GetAtt`: shaped like the real value, named after the resource. */
function placeholderFor(token: Json, resources: Record<string, { Type: string }>): string {
  const ref: unknown = token?.Ref;
  if (typeof ref === 'string') {
    const pseudo: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::Region': REGION,
      'AWS::AccountId': ACCOUNT,
      'AWS::URLSuffix': 'amazonaws.com',
    };
    if (pseudo[ref]) return pseudo[ref];
    if (resources[ref]?.Type === 'AWS::SQS::Queue')
      return `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${ref}`;
    return `arn:aws:local:${REGION}:${ACCOUNT}:${ref}`;
  }
  const getAtt: unknown = token?.['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') {
    const [id, attribute] = getAtt as [string, string];
    const type = resources[id]?.Type;
    if (type === 'AWS::Lambda::Function') return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
    if (type === 'AWS::SQS::Queue' && attribute === 'Arn') return `arn:aws:sqs:${REGION}:${ACCOUNT}:${id}`;
    return `arn:aws:local:${REGION}:${ACCOUNT}:${id}/${attribute}`;
  }
  throw new Error(`unexpected token in the workflow definition: ${JSON.stringify(token)}`);
}

/** A hash of every file the synthesized definition depends on (see the module comment). */
export async function sourceHash(root = REPO_ROOT): Promise<string> {
  const workflow = (await readdir(path.join(root, 'shared', 'workflow')))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => path.join('shared', 'workflow', name));
  const infra = (await readdir(path.join(root, 'infra'), { recursive: true }))
    .filter((name) => name.endsWith('.ts'))
    .map((name) => path.join('infra', name));
  const files = [...workflow, ...infra, 'package-lock.json', 'cdk.json', 'sluice.config.json'].sort();
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(file).update('\0');
    hash.update(await readFile(path.join(root, file)).catch(() => Buffer.alloc(0))).update('\0');
  }
  return hash.digest('hex').slice(0, 32);
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, file);
}
