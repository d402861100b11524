import { createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import type { BronzeManifest } from '../../shared/contracts/bronze-manifest.ts';
import { generateTicInNetwork, type TicGenerateOptions } from '../../shared/generate/tic-in-network.ts';
import type { Clock } from '../../shared/ports/clock.ts';

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(
  prefix = 'sluice-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Generate a TiC in-network file (gzip'd when `gzip`), returning its path and the facts it contains. */
export async function generateFile(dir: string, name: string, options: TicGenerateOptions, gzip = true) {
  const path = join(dir, name);
  const body = new PassThrough();
  const written = gzip
    ? pipeline(body, createGzip({ level: 1 }), createWriteStream(path))
    : pipeline(body, createWriteStream(path));
  const facts = await generateTicInNetwork(options, body);
  body.end();
  await written;
  return { path, facts };
}

/** A clock that always says the same time, so manifests are comparable byte for byte. */
export const fixedClock: Clock = { now: () => new Date('2026-01-01T00:00:00.000Z') };

/** Every file under a directory, as relative paths, sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** One bronze line, parsed. */
export interface BronzeLine {
  source: string;
  path: string;
  index: number;
  offset: number;
  record: unknown;
}

/** Read a committed bronze run back: its manifest and every line of every part, in manifest order. */
export async function readBronze(lakeDir: string, manifestKey: string) {
  const manifest = JSON.parse(await readFile(join(lakeDir, manifestKey), 'utf8')) as BronzeManifest;
  const lines: BronzeLine[] = [];
  for (const part of manifest.parts) {
    const text = gunzipSync(await readFile(join(lakeDir, part.key))).toString('utf8');
    for (const line of text.split('\n')) if (line !== '') lines.push(JSON.parse(line) as BronzeLine);
  }
  return { manifest, lines };
}

export const fileStore = (dir: string) => new FileObjectStore(dir);
