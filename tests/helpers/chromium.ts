import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The system's headless-capable Chromium (Debian package `chromium`; `.ci/run` installs it), if any. */
export function findChromium(): string | undefined {
  if (process.env.SLUICE_CHROMIUM) return process.env.SLUICE_CHROMIUM;
  const names = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Runs headless Chromium on a local file with a throwaway profile (tests may run it at once). `--no-sandbox`:
 * CI containers run as root, where Chromium's sandbox refuses to start.
 */
async function headless(chromium: string, file: string, args: readonly string[]): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'sluice-chromium-'));
  try {
    const { stdout } = await run(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--hide-scrollbars',
        `--user-data-dir=${profile}`,
        ...args,
        pathToFileURL(file).href,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** The DOM as the browser built it from the file (after parsing, as `--dump-dom` serializes it). */
export const dumpDom = (chromium: string, file: string) => headless(chromium, file, ['--dump-dom']);

/** A PNG screenshot of the page at `width`×`height` CSS pixels, written to `png`. */
export async function screenshot(
  chromium: string,
  file: string,
  png: string,
  width: number,
  height: number,
): Promise<void> {
  await headless(chromium, file, [`--screenshot=${png}`, `--window-size=${width},${height}`]);
}
