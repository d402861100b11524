import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../shared/adapters/aws/s3-object-store.ts';

const STARTUP_TIMEOUT_MS = 30_000;
const START_ATTEMPTS = 3;

export const MOTO_MISSING =
  'moto_server not found: install it with `pipx install "moto[server]"` (or pip install "moto[server]")';

/**
 * Why tests that need moto_server are skipped, or `undefined` to run them. They are skipped only when
 * moto_server is missing and `SLUICE_SKIP_MOTO=1` says so; otherwise a missing moto_server fails them,
 * with `MOTO_MISSING`, when `startMotoServer` runs.
 */
export function motoSkipReason(): string | undefined {
  if (process.env.SLUICE_SKIP_MOTO !== '1' || findMotoServer() !== undefined) return undefined;
  return `${MOTO_MISSING} (skipped because SLUICE_SKIP_MOTO=1)`;
}

/** A running moto_server (a real AWS API emulator: S3, SQS, Glue, ... in one process) on 127.0.0.1. */
export interface MotoServer {
  readonly endpoint: string;
  /** An S3 client for this server: path-style, dummy credentials, us-east-1. */
  readonly s3: S3Client;
  /** The variables a child process (the CLI, an invocation) needs to reach this server as the S3 client does. */
  readonly env: Readonly<Record<string, string>>;
  /** Creates an empty S3 bucket and returns its name. */
  createBucket(name: string): Promise<string>;
  /** Stops the server; its state (in memory) goes with it. */
  stop(): Promise<void>;
}

/**
 * Starts moto_server on a free port and waits until it answers. Call it once per test file (in
 * `beforeAll`) and `stop()` it after. Throws `MOTO_MISSING` if moto_server is not on PATH.
 */
export async function startMotoServer(): Promise<MotoServer> {
  const executable = findMotoServer();
  if (executable === undefined) throw new Error(MOTO_MISSING);
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startOn(executable, port);
    } catch (error) {
      // Another process may have taken the port between freePort() and moto binding it.
      if (attempt >= START_ATTEMPTS) throw error;
    }
  }
}

async function startOn(executable: string, port: number): Promise<MotoServer> {
  // The shell runs moto_server and kills it when its stdin closes: when stop() ends it, or when this
  // test process dies, so no server outlives its tests. (A background job's stdin would be /dev/null,
  // hence the copy on fd 3.)
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'exec 3<&0; "$1" -H 127.0.0.1 -p "$2" </dev/null & pid=$!; (cat <&3 >/dev/null; kill "$pid" 2>/dev/null) & wait "$pid"',
      'moto-lifeline',
      executable,
      String(port),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const output = collectOutput(child);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntilAnswering(endpoint, child, output);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  const s3 = createS3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  return {
    endpoint,
    s3,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: 'us-east-1',
    },
    async createBucket(name) {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      s3.destroy();
      await stopChild(child);
    },
  };
}

/** The moto_server executable on PATH, or `undefined`. */
function findMotoServer(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, 'moto_server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function collectOutput(child: ChildProcessWithoutNullStreams): { text: string } {
  const output = { text: '' };
  const append = (chunk: string) => {
    // Keep the end: that is where a failure to start is explained.
    output.text = (output.text + chunk).slice(-4000);
  };
  child.stdout.setEncoding('utf8').on('data', append);
  child.stderr.setEncoding('utf8').on('data', append);
  return output;
}

/** Polls the endpoint until moto answers; fails with moto's output if it exits or takes too long. */
async function waitUntilAnswering(
  endpoint: string,
  child: ChildProcessWithoutNullStreams,
  output: { text: string },
): Promise<void> {
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new Error(`moto_server exited before answering:\n${output.text}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `moto_server did not answer on ${endpoint} within ${STARTUP_TIMEOUT_MS} ms:\n${output.text}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Closing stdin makes the shell kill moto_server and exit once it has.
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
