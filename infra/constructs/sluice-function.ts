import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Duration, RemovalPolicy, Size, Validations } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { MALLOC_ENV } from '../../shared/runtime-memory.ts';

/** The repository root: where `functions/` and `package-lock.json` live. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * ESM bundles have no `require`; some dependencies (CJS parts of the AWS SDK's dependency tree) call it.
 * The alias keeps the banner's import from colliding with an import of the same name in the bundle.
 */
const ESM_REQUIRE_BANNER =
  "import { createRequire as __sluiceCreateRequire } from 'node:module'; " +
  'const require = __sluiceCreateRequire(import.meta.url);';

/** Properties of a `SluiceFunction`. */
export interface SluiceFunctionProps {
  /** The handler's directory under `functions/`, e.g. `ingest`; the entry is its `handler.ts`. */
  readonly handlerDir: string;
  readonly description: string;
  /** Memory in MB; CPU scales with it. @default 256 */
  readonly memoryMb?: number;
  /** Size of `/tmp` in MB (512–10240). @default 512 */
  readonly ephemeralStorageMb?: number;
  /**
   * The instruction set. Native modules (`nodeModules`) are installed into the bundle with the binaries
   * of this architecture (on Linux, glibc), whatever the machine that synthesizes.
   * @default Architecture.ARM_64
   */
  readonly architecture?: Architecture;
  /**
   * Packages installed into the bundle's `node_modules` instead of bundled, for native modules that
   * esbuild cannot inline (their `.node` binaries). Versions and integrity come from `package-lock.json`,
   * which must list the platform package of `architecture` (see `lambdaPlatformInstall`).
   * @default - none: everything is bundled
   */
  readonly nodeModules?: readonly string[];
  readonly timeout: Duration;
  /** Non-secret settings only: everything here is readable by anyone who can read the function. */
  readonly environment: Record<string, string>;
  /** Most invocations running at once. @default - the account's unreserved concurrency */
  readonly reservedConcurrency?: number;
  /** Active X-Ray tracing. @default false */
  readonly tracing?: boolean;
  /** Retention of the function's log group. @default three months */
  readonly logRetention?: RetentionDays;
  /**
   * Where asynchronous invocations that failed all their attempts go. Only for functions invoked
   * asynchronously (e.g. by EventBridge): a Lambda DLQ never sees synchronous invocations, which is how
   * Step Functions calls the pipeline's stages (the state machine's Catch handles those).
   * @default - none
   */
  readonly asyncDeadLetterQueue?: IQueue;
  /** Retries of a failed asynchronous invocation (0–2). @default 2 */
  readonly asyncRetryAttempts?: number;
  /** How long an asynchronous event may wait to be processed. @default 6 hours (the Lambda maximum) */
  readonly asyncMaxEventAge?: Duration;
}

/**
 * A Lambda function with sluice's defaults: one handler of `functions/`, bundled locally with esbuild
 * as ESM for Node.js 22 on arm64 (Graviton: about 20 % cheaper per GB-second for the same work), native
 * modules included, its own log group with a retention, and its own role that may write only to that log
 * group until granted more.
 */
export class SluiceFunction extends Construct {
  readonly function: NodejsFunction;
  readonly role: Role;
  readonly logGroup: LogGroup;
  readonly timeout: Duration;

  constructor(scope: Construct, id: string, props: SluiceFunctionProps) {
    super(scope, id);
    this.timeout = props.timeout;
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      // Logs outlive a deleted stack: they are the record of what ran.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // An own role instead of the default one, which carries the AWS managed policy
    // AWSLambdaBasicExecutionRole (logs:* on every log group of the account).
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs the ${props.handlerDir} handler`,
    });
    this.logGroup.grantWrite(this.role);
    const architecture = props.architecture ?? Architecture.ARM_64;

    this.function = new NodejsFunction(this, 'Function', {
      description: props.description,
      entry: path.join(REPO_ROOT, 'functions', props.handlerDir, 'handler.ts'),
      handler: 'handler',
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      runtime: Runtime.NODEJS_22_X,
      architecture,
      memorySize: props.memoryMb ?? 256,
      ephemeralStorageSize: props.ephemeralStorageMb ? Size.mebibytes(props.ephemeralStorageMb) : undefined,
      timeout: props.timeout,
      // Stack traces of the minified bundle point at the TypeScript sources through the source map.
      environment: { NODE_OPTIONS: '--enable-source-maps', ...MALLOC_ENV, ...props.environment },
      role: this.role,
      logGroup: this.logGroup,
      reservedConcurrentExecutions: props.reservedConcurrency,
      tracing: props.tracing ? Tracing.ACTIVE : Tracing.DISABLED,
      deadLetterQueue: props.asyncDeadLetterQueue,
      retryAttempts: props.asyncDeadLetterQueue ? (props.asyncRetryAttempts ?? 2) : undefined,
      maxEventAge: props.asyncDeadLetterQueue ? props.asyncMaxEventAge : undefined,
      bundling: {
        // The esbuild in node_modules: synth needs neither Docker nor network.
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: ESM_REQUIRE_BANNER,
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // Bundle everything, the AWS SDK included: the versions that were tested are the ones that run,
        // and @aws-sdk/lib-storage is not part of the Lambda runtime anyway.
        externalModules: [],
        // Without Docker, CDK installs these by running `npm ci` in the bundle folder on this machine,
        // with the project's lock file; the environment makes npm pick Lambda's platform packages
        // instead of the host's.
        ...(props.nodeModules
          ? { nodeModules: [...props.nodeModules], environment: lambdaPlatformInstall(architecture) }
          : {}),
      },
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Node.js 22 is the runtime the code is built and tested for (engines >= 22, bundled for node22); ' +
        'moving to Node.js 24 is a deliberate upgrade with its own test run.',
    });
    if (props.tracing) {
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions; ' +
          'this role has no other statement on "*".',
      });
    }
  }
}

/**
 * npm settings (as `npm_config_*` variables) for the bundle's `npm ci` that install the optional platform
 * packages of Lambda (Linux, glibc, `architecture`) rather than those of the host: on an x86_64 laptop or
 * CI runner an arm64 bundle gets `@duckdb/node-bindings-linux-arm64`, not `-linux-x64`. npm checks each
 * package against the integrity in `package-lock.json`. `prefer-offline` takes the tarball from npm's
 * cache, where `npm ci` of the project put it (`scripts/cache-lambda-binaries.mjs`, the postinstall), so
 * `cdk synth` needs no network; without it in the cache npm downloads it from the registry once.
 */
export function lambdaPlatformInstall(architecture: Architecture): Record<string, string> {
  return {
    npm_config_os: 'linux',
    npm_config_cpu: architecture.name === Architecture.X86_64.name ? 'x64' : 'arm64',
    npm_config_libc: 'glibc',
    npm_config_prefer_offline: 'true',
  };
}
