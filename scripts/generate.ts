/**
 * CLI around the deterministic TiC in-network generator: writes the file (gzipped if it ends in .gz)
 * and `<file>.expected.json` with the facts a correct reader must find in it.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import { generateTicInNetwork, type HeaderPosition } from '../shared/generate/tic-in-network.ts';

const HELP = `Usage: npm run generate -- --size SIZE --out FILE [options]

Writes a synthetic but realistic CMS Transparency-in-Coverage in-network-rates JSON file
(schema 2.x: header scalars, provider_references[], in_network[]). The same options always
produce byte-identical output. Beside it, FILE.expected.json records what the file contains:
seed, uncompressed bytes, record counts, negotiated_rates/prices and provider_groups totals,
the header values, the top-level key order and the largest record's size.

Options:
  --size SIZE        Approximate uncompressed size (required). A number with an optional unit:
                     B, KB, MB, GB are decimal (1 MB = 1,000,000 bytes); KiB, MiB, GiB are
                     binary (1 MiB = 1,048,576 bytes). E.g. 500KB, 20MB, 1GB, 1.5GB, 300000.
  --out FILE         Output path (required). If it ends in .gz the output is gzipped on the fly.
  --seed N           PRNG seed, an integer 0..4294967295 (default 1).
  --nasty            Add parser traps: \\u-escaped keys, odd whitespace (tabs, CR, CRLF) between
                     tokens, empty arrays/objects, ~20-deep nested objects holding "in_network"
                     keys, '"in_network": [' text inside strings, 100 KB strings.
  --pretty           Indented output (2 spaces, one member per line).
  --header-position before|after|split
                     Where the header scalars go: before both arrays (default), after both, or
                     split (plan fields before, last_updated_on between the arrays, version last).
  --provider-references-position before|after
                     provider_references before (default) or after in_network.
  --level N          gzip level 0-9 for .gz output (default 6).
  -h, --help         Show this help.

Always present: escapes (\\" \\\\ \\n \\t \\/ \\u00e9 and strings ending in an escaped backslash),
accents, CJK and emoji (4-byte UTF-8), numbers like 123.40, 1.2345e2 and 12345e-2, and from
20 MB on at least one in_network record of several MB.

Example:
  npm run generate -- --size 1GB --out /tmp/tic-1g.json.gz --seed 42 --nasty
  (writes /tmp/tic-1g.json.gz and /tmp/tic-1g.json.gz.expected.json)
`;

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses `1.5GB`-style sizes; KB/MB/GB are decimal, KiB/MiB/GiB binary. */
function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match ? UNITS[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || factor === undefined) {
    throw new UsageError(`invalid --size ${JSON.stringify(text)}: use e.g. 500KB, 20MB, 1.5GB or 1GiB`);
  }
  const bytes = Math.round(Number(match[1]) * factor);
  if (bytes <= 0) throw new UsageError('--size must be more than 0 bytes');
  return bytes;
}

class UsageError extends Error {}

/** Human-readable decimal size, e.g. 1.23 GB. */
function human(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} KB`;
  return `${bytes} B`;
}

function parseCli(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: '1' },
      nasty: { type: 'boolean', default: false },
      pretty: { type: 'boolean', default: false },
      'header-position': { type: 'string', default: 'before' },
      'provider-references-position': { type: 'string', default: 'before' },
      level: { type: 'string', default: '6' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;
  if (!values.size) throw new UsageError('--size is required');
  if (!values.out) throw new UsageError('--out is required');
  const seed = Number(values.seed);
  if (!/^\d+$/.test(values.seed) || seed > 0xffffffff) {
    throw new UsageError(`--seed must be an integer 0..4294967295, got ${values.seed}`);
  }
  const level = Number(values.level);
  if (!/^\d$/.test(values.level)) throw new UsageError(`--level must be 0..9, got ${values.level}`);
  const headerPosition = values['header-position'];
  if (headerPosition !== 'before' && headerPosition !== 'after' && headerPosition !== 'split') {
    throw new UsageError(`--header-position must be before, after or split, got ${headerPosition}`);
  }
  const refsPosition = values['provider-references-position'];
  if (refsPosition !== 'before' && refsPosition !== 'after') {
    throw new UsageError(`--provider-references-position must be before or after, got ${refsPosition}`);
  }
  return {
    out: values.out,
    level,
    gzip: values.out.endsWith('.gz'),
    generate: {
      seed,
      targetBytes: parseSize(values.size),
      headerPosition: headerPosition as HeaderPosition,
      providerReferencesPosition: refsPosition as 'before' | 'after',
      nasty: values.nasty,
      pretty: values.pretty,
    },
  };
}

/** Reports progress on stderr: a rewritten line on a terminal, an occasional line otherwise. */
function progressReporter(target: number, started: number): (bytes: number) => void {
  const tty = process.stderr.isTTY;
  const every = tty ? 500 : 10_000;
  let last = started;
  return (bytes) => {
    const now = Date.now();
    if (now - last < every) return;
    last = now;
    const rate = bytes / 1e6 / ((now - started) / 1000);
    const line = `generate: ${human(bytes)} / ${human(target)} (${Math.min(100, Math.floor((bytes / target) * 100))}%) ${rate.toFixed(0)} MB/s`;
    process.stderr.write(tty ? `\r${line}  ` : `${line}\n`);
  };
}

async function main(): Promise<void> {
  const cli = parseCli(process.argv.slice(2));
  if (!cli) {
    process.stdout.write(HELP);
    return;
  }
  await mkdir(dirname(cli.out), { recursive: true });
  const started = Date.now();
  const onProgress =
    cli.generate.targetBytes >= 50e6 ? progressReporter(cli.generate.targetBytes, started) : undefined;

  const file = createWriteStream(cli.out);
  const gzip = cli.gzip ? createGzip({ level: cli.level }) : undefined;
  const sink: Writable = gzip ?? file;
  const done = gzip ? pipeline(gzip, file) : undefined;
  // Awaited together so a failing file or gzip stream surfaces as one error rather than a hang.
  const [facts] = await Promise.all([
    generateTicInNetwork({ ...cli.generate, onProgress }, sink).finally(() => sink.end()),
    done ?? finished(file),
  ]);

  const seconds = (Date.now() - started) / 1000;
  await writeFile(`${cli.out}.expected.json`, `${JSON.stringify(facts, null, 2)}\n`);
  const onDisk = (await stat(cli.out)).size;
  if (onProgress && process.stderr.isTTY) process.stderr.write('\n');
  process.stderr.write(
    `wrote ${cli.out}: ${human(facts.bytes)} uncompressed${cli.gzip ? `, ${human(onDisk)} gzipped` : ''}; ` +
      `${facts.records.in_network} in_network, ${facts.records.provider_references} provider_references, ` +
      `largest record ${human(facts.largestRecordBytes)}; ${seconds.toFixed(1)} s ` +
      `(${(facts.bytes / 1e6 / seconds).toFixed(0)} MB/s)\nfacts: ${cli.out}.expected.json\n`,
  );
}

main().catch((err: unknown) => {
  if (err instanceof UsageError || (err instanceof TypeError && 'code' in err)) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown or malformed options.
    process.stderr.write(`generate: ${err.message}\nRun with --help for usage.\n`);
    process.exitCode = 2;
    return;
  }
  // File-system errors (ENOSPC, EACCES...) explain themselves; anything else is a bug worth a stack.
  const systemError = err instanceof Error && 'syscall' in err;
  const detail =
    err instanceof Error ? (systemError ? err.message : (err.stack ?? err.message)) : String(err);
  process.stderr.write(`generate: ${detail}\n`);
  process.exitCode = 1;
});
