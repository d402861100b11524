import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import type { SilverContract } from '../../contracts/silver/contract.ts';
import { ConfigError } from '../../errors.ts';
import { QUARANTINE_TABLE } from '../../lake/keys.ts';
import { reconcileItemKey, reconcileKeysKey } from '../../lake/reconcile-work-keys.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import type { KeysToWrite, TableInspector } from '../../ports/table-inspector.ts';
import { readFileFacts } from '../../report/table-facts.ts';
import { type BronzePartContent, lineEnds, readBronzePart } from '../bronze/read-bronze.ts';
import { QUARANTINE_KEY_COLUMNS } from './key-buckets.ts';
import { ParquetFooterError, parquetRowCount, type ReadRange } from './parquet-footer.ts';
import type { ReconcilePlan, SilverFileItem } from './reconcile-plan.ts';

/** One thing reconciliation checked. */
export interface Check {
  readonly name: string;
  readonly expected: number | string;
  readonly actual: number | string;
  readonly ok: boolean;
}

/** A check made: ok when `actual` is `expected`. */
export const check = (name: string, expected: number | string, actual: number | string): Check => ({
  name,
  expected,
  actual,
  ok: expected === actual,
});

const CheckSchema = z.object({
  name: z.string(),
  expected: z.union([z.number(), z.string()]),
  actual: z.union([z.number(), z.string()]),
  ok: z.boolean(),
});

const ColumnProfileSchema = z.object({
  name: z.string(),
  type: z.string(),
  nulls: z.number().optional(),
  distinct: z.number().optional(),
  min: z.string().optional(),
  max: z.string().optional(),
});

/** The run report's facts of one silver file (`FileFacts`). */
const FileFactsSchema = z.object({
  profile: z.union([
    z.object({
      rows: z.number(),
      columns: z.array(ColumnProfileSchema).readonly(),
      distinctOverRows: z.number().optional(),
    }),
    z.object({ error: z.string() }),
  ]),
  quarantineExamples: z
    .array(
      z.object({
        ruleId: z.string(),
        recordPath: z.string(),
        fieldPath: z.string(),
        message: z.string(),
        value: z.string().optional(),
      }),
    )
    .readonly()
    .optional(),
});

/** What an item leaves in the lake: small, whatever the size of what it re-read. */
export const ItemResult = z.discriminatedUnion('kind', [
  z.object({
    planId: z.string(),
    item: z.number().int().nonnegative(),
    kind: z.literal('bronze'),
    /** Per part of the group, in manifest order: sha256, uncompressed bytes, records, record indexes. */
    checks: z.array(CheckSchema),
    /** Lines re-counted per record path. */
    records: z.record(z.string(), z.number().int().nonnegative()),
  }),
  z.object({
    planId: z.string(),
    item: z.number().int().nonnegative(),
    kind: z.literal('silver'),
    table: z.string(),
    key: z.string(),
    /** The stored bytes' sha256, re-computed. */
    sha256: z.string(),
    /** Rows by the file's footer, or why the footer could not be read. */
    rows: z.union([z.number().int().nonnegative(), z.string()]),
    /** Why the key columns of a file that failed its sha256 check could not be read (keys: none). */
    keys: z.string().optional(),
    /** For the run report: the file's profile (and quarantine examples), read while it is at hand. */
    facts: FileFactsSchema.optional(),
  }),
]);
export type ItemResult = z.infer<typeof ItemResult>;

export interface ReconcileItemDeps {
  readonly lake: ObjectStore;
  readonly contract: SilverContract;
  readonly openInspector: () => Promise<TableInspector>;
  /** Scratch space: a file whose keys are read is copied here while it is hashed, then removed. */
  readonly workDir: string;
}

/** Re-reads one item of the plan (its bronze parts, or its silver file) and writes its result. */
export async function runReconcileItem(
  plan: ReconcilePlan,
  index: number,
  bronze: BronzeManifest,
  deps: ReconcileItemDeps,
): Promise<ItemResult> {
  const item = plan.items[index];
  if (!item) {
    throw new ConfigError(
      `reconcile item ${index}: the plan ${plan.planId} has ${plan.items.length} item(s)`,
    );
  }
  const result =
    item.kind === 'bronze'
      ? await checkBronzeParts(plan, index, bronze.parts.slice(item.firstPart, item.endPart), deps.lake)
      : await checkSilverFile(plan, index, item, bronze, deps);
  await deps.lake.write(
    reconcileItemKey(bronze.dataset, bronze.runId, index),
    `${JSON.stringify(result)}\n`,
    {
      contentType: 'application/json',
    },
  );
  return result;
}

/** Bronze parts read at once: each is held whole (≈ 30 MB uncompressed), gunzip'd on libuv's pool. */
const PARTS_IN_FLIGHT = 3;

/** A group's bronze parts re-read (a few at once), re-counted and re-hashed against the manifest. */
async function checkBronzeParts(
  plan: ReconcilePlan,
  item: number,
  parts: BronzeManifest['parts'],
  lake: ObjectStore,
): Promise<ItemResult> {
  const checks: Check[] = [];
  const records: Record<string, number> = {};
  for await (const [part, content] of readAhead(parts, PARTS_IN_FLIGHT, (p) => readPart(lake, p))) {
    checks.push(check(`bronze part ${part.key} sha256`, part.sha256, content.sha256 ?? 'not hashed'));
    if ('unreadable' in content) {
      // Its records cannot be counted: the path's counts below fail too, by the part's records.
      checks.push(check(`bronze part ${part.key} gzip`, 'readable', `unreadable: ${content.unreadable}`));
      continue;
    }
    checks.push(
      check(`bronze part ${part.key} uncompressed bytes`, part.uncompressedBytes, content.text.length),
    );
    // Counted and checked in the uncompressed bytes: no line is decoded.
    let lines = 0;
    let inOrder = true;
    let start = 0;
    for (const end of lineEnds(content.text)) {
      if (lineIndex(content.text, start, end) !== part.firstRecordIndex + lines) inOrder = false;
      start = end + 1;
      lines++;
    }
    checks.push(check(`bronze part ${part.key} records`, part.records, lines));
    checks.push(
      check(
        `bronze part ${part.key} record indexes`,
        'consecutive',
        inOrder ? 'consecutive' : 'gaps or repeats',
      ),
    );
    records[part.recordName] = (records[part.recordName] ?? 0) + lines;
  }
  return { planId: plan.planId, item, kind: 'bronze', checks, records };
}

/**
 * One silver file, copied to scratch once (hashed on the way): its rows from the footer, its keys emitted
 * into the plan's key buckets when they are joined, and its profile for the run report.
 */
async function checkSilverFile(
  plan: ReconcilePlan,
  item: number,
  file: SilverFileItem,
  bronze: BronzeManifest,
  deps: ReconcileItemDeps,
): Promise<ItemResult> {
  const { lake } = deps;
  const hash = createHash('sha256');
  await mkdir(deps.workDir, { recursive: true });
  const local = join(deps.workDir, `reconcile-${bronze.runId}-item-${item}.parquet`);
  try {
    const copy = createWriteStream(local);
    await pipeline(
      await lake.read(file.key),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          yield chunk;
        }
      },
      copy,
    );
    const handle = await open(local);
    const rows = await footerRows((await handle.stat()).size, async (range) => {
      const buffer = Buffer.alloc(range.end - range.start + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, range.start);
      return buffer.subarray(0, bytesRead);
    }).finally(() => handle.close());
    const sha256 = hash.digest('hex');
    const inspector = await deps.openInspector();
    try {
      // A file that is not what the manifest says (its sha256 check fails) may not be readable at all:
      // then that is a failed check with its reason, and its keys count as none. Otherwise it is a crash.
      const unreadableKeys = file.emitsKeys
        ? await emitKeys(plan, item, file, local, sha256 !== file.sha256, bronze, { ...deps, inspector })
        : undefined;
      const facts = await readFileFacts(inspector, file.table, local).catch((error: unknown) => ({
        profile: { error: `profile not read: ${(error as Error).message}` },
      }));
      return {
        planId: plan.planId,
        item,
        kind: 'silver',
        table: file.table,
        key: file.key,
        sha256,
        rows,
        ...(unreadableKeys !== undefined && { keys: unreadableKeys }),
        facts,
      };
    } finally {
      await inspector.close();
    }
  } finally {
    await rm(local, { force: true });
  }
}

/**
 * A part read back; one whose gzip stream is corrupt is a failed check (its stored bytes still hashed),
 * not a crash that would hide what else is wrong.
 */
async function readPart(
  lake: ObjectStore,
  part: BronzeManifest['parts'][number],
): Promise<BronzePartContent | { readonly sha256: string; readonly unreadable: string }> {
  try {
    return await readBronzePart(lake, part);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('Z_')) throw error;
    const stored = await readAll(await lake.read(part.key));
    return {
      sha256: createHash('sha256').update(stored).digest('hex'),
      unreadable: (error as Error).message,
    };
  }
}

/** Rows by the footer; a footer that cannot be read is a failed check (with the reason), not a crash. */
async function footerRows(size: number, read: ReadRange): Promise<number | string> {
  try {
    return await parquetRowCount(size, read);
  } catch (error) {
    if (error instanceof ParquetFooterError) return `unreadable footer: ${error.message}`;
    throw error;
  }
}

/**
 * The file's reference and quarantine keys, one Parquet file per key bucket (empty ones too: absence is
 * an error), written by DuckDB and uploaded: the keys never enter this process's heap. When `suspect` (it
 * failed its sha256 check) a file whose keys cannot be read emits none, and the reason is returned.
 */
async function emitKeys(
  plan: ReconcilePlan,
  item: number,
  file: SilverFileItem,
  local: string,
  suspect: boolean,
  bronze: BronzeManifest,
  deps: { readonly lake: ObjectStore; readonly contract: SilverContract; readonly inspector: TableInspector },
): Promise<string | undefined> {
  const keys: KeysToWrite = {
    refs: (deps.contract.references ?? []).flatMap((reference, index) => [
      ...(reference.from.table === file.table
        ? [{ index, role: 'from' as const, column: reference.from.column }]
        : []),
      ...(reference.to.table === file.table
        ? [{ index, role: 'to' as const, column: reference.to.column }]
        : []),
    ]),
    ...(file.table === QUARANTINE_TABLE && { quarantine: QUARANTINE_KEY_COLUMNS }),
  };
  const outFiles = Array.from({ length: plan.keyBuckets }, (_, bucket) => `${local}.keys-${bucket}.parquet`);
  let unreadable: string | undefined;
  try {
    try {
      await deps.inspector.writeKeyBuckets(local, keys, outFiles, plan.planId);
    } catch (error) {
      if (!suspect) throw error;
      // Named by its lake key, not the scratch copy's path (which differs between plans).
      unreadable = `unreadable: ${(error as Error).message.split('\n')[0]!.replaceAll(local, file.key)}`;
      await deps.inspector.writeKeyBuckets(local, { refs: [] }, outFiles, plan.planId);
    }
    for (const [bucket, out] of outFiles.entries()) {
      await deps.lake.write(
        reconcileKeysKey(bronze.dataset, bronze.runId, bucket, item),
        await readFile(out),
        { contentType: 'application/vnd.apache.parquet' },
      );
    }
  } finally {
    await Promise.all(outFiles.map((out) => rm(out, { force: true })));
  }
  return unreadable;
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `read` of each item, at most `inFlight` at once, yielded in item order. */
async function* readAhead<T, R>(
  items: readonly T[],
  inFlight: number,
  read: (item: T) => Promise<R>,
): AsyncGenerator<[T, R]> {
  const pending: Promise<R>[] = [];
  const start = (i: number) => {
    const reading = read(items[i]!);
    // Awaited in turn below; until then a failure must not count as unhandled.
    reading.catch(() => undefined);
    pending.push(reading);
  };
  for (let i = 0; i < Math.min(inFlight, items.length); i++) start(i);
  for (let i = 0; i < items.length; i++) {
    const value = await pending.shift()!;
    if (i + inFlight < items.length) start(i + inFlight);
    yield [items[i]!, value];
  }
}

const INDEX_FIELD = Buffer.from(',"index":');

/**
 * The record index from a bronze line's lineage prefix, without parsing the record. The prefix is
 * `{"source":…,"path":…,"index":N,…`; inside the JSON strings before it a quote is always escaped, so
 * the first `,"index":` is the field itself.
 */
function lineIndex(text: Buffer, start: number, end: number): number {
  const at = text.indexOf(INDEX_FIELD, start);
  if (at < 0 || at >= end) return -1;
  let index = 0;
  for (let i = at + INDEX_FIELD.length; i < end; i++) {
    const c = text[i]!;
    if (c < 0x30 || c > 0x39) break;
    index = index * 10 + (c - 0x30);
  }
  return index;
}
