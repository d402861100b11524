import { spawn } from 'node:child_process';
import { join } from 'node:path';

/** The CLI as a user runs it. */
export const SLUICE_BIN = join(import.meta.dirname, '..', '..', 'bin', 'sluice.js');

/** What a finished CLI run printed, and its exit code. */
export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the CLI without blocking this process (unlike spawnSync), so a server the test runs in this
 * process (HTTP, moto's helpers) can answer it. `env` is added to this process's environment.
 */
export function runSluice(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SLUICE_BIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}
