import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../shared/adapters/aws/s3-object-store.ts';

const SERVER_SCRIPT = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
const STARTUP_TIMEOUT_MS = 15_000;

/** A running s3rver in a child process, with its data in a temp directory. */
export interface S3TestServer {
  readonly endpoint: string;
  /** A client for this server: path-style, dummy credentials (s3rver's well-known S3RVER/S3RVER). */
  readonly client: S3Client;
  /** Creates an empty bucket and returns its name. */
  createBucket(name: string): Promise<string>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/**
 * Starts s3rver on 127.0.0.1 with a free port. It runs in its own `node --openssl-legacy-provider`
 * process because s3rver's ListObjectsV2 paging uses DES, which needs that flag; the test process
 * itself then needs no special flags.
 */
export async function startS3Server(): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 'sluice-s3rver-'));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', SERVER_SCRIPT, directory], {
    // stdin stays open as a lifeline: the server exits when this process goes away.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let port: number;
  try {
    port = await readPort(child);
  } catch (error) {
    child.kill();
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const client = createS3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  return {
    endpoint,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    async stop() {
      client.destroy();
      await stopChild(child);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Waits for the server's `{"port": n}` line, failing with its stderr if it exits or takes too long. */
function readPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(
      () => fail(`s3rver did not start within ${STARTUP_TIMEOUT_MS} ms`),
      STARTUP_TIMEOUT_MS,
    );
    const fail = (message: string) => {
      clearTimeout(timer);
      reject(new Error(`${message}${stderr ? `\n${stderr}` : ''}`));
    };
    child.once('error', (error) => fail(`could not start s3rver: ${error.message}`));
    child.once('exit', (code, signal) => fail(`s3rver exited early (code ${code}, signal ${signal})`));
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      clearTimeout(timer);
      lines.close();
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        fail(`unexpected s3rver output: ${line}`);
      }
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
