import { createHash } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatasetConfigInput, parseDatasetConfig } from '../../shared/contracts/dataset-config.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { MalformedInputError, RecordTooLargeError, SourceModifiedError } from '../../shared/errors.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, generateFile, listFiles, readBronze, tempDir } from '../helpers/lake.ts';

const EXAMPLES = TIC_EXAMPLES;

async function ingest(
  sourceDir: string,
  key: string,
  lakeDir: string,
  dataset = builtInDataset('tic-in-network'),
) {
  return ingestToBronze(
    { dataset, sourceKey: key },
    { source: fileStore(sourceDir), lake: fileStore(lakeDir), clock: fixedClock },
  );
}

describe('ingestToBronze', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir();
  });
  afterAll(async () => tmp.cleanup());

  describe('on the CMS sample files', () => {
    const datasetOf = (file: string) =>
      file.startsWith('in-network')
        ? 'tic-in-network'
        : file.startsWith('allowed')
          ? 'tic-allowed-amounts'
          : 'tic-table-of-contents';
    const arraysOf: Record<string, string[]> = {
      'tic-in-network': ['in_network', 'provider_references'],
      'tic-allowed-amounts': ['out_of_network'],
      'tic-table-of-contents': ['reporting_structure'],
    };
    const samples = readdirSync(EXAMPLES).filter((f) => !f.startsWith('provider-reference'));

    it.each(samples)('%s: counts, headers and records equal what JSON.parse finds', async (file) => {
      const dataset = builtInDataset(datasetOf(file));
      const lake = join(tmp.dir, `cms-${file}`);
      const result = await ingest(EXAMPLES, file, lake, dataset);
      const expected = JSON.parse(await readFile(join(EXAMPLES, file), 'utf8')) as Record<string, unknown>;
      const { manifest, lines } = await readBronze(lake, result.manifestKey);

      for (const name of arraysOf[dataset.name]!) {
        const elements = (expected[name] as unknown[] | undefined) ?? [];
        expect(manifest.records[name]).toBe(elements.length);
        expect(lines.filter((l) => l.path === name).map((l) => l.record)).toEqual(elements);
      }
      for (const header of dataset.headers) {
        expect(manifest.headers[header.path]).toEqual(expected[header.path]);
      }
      expect(manifest.source.sha256).toBe(
        createHash('sha256')
          .update(await readFile(join(EXAMPLES, file)))
          .digest('hex'),
      );
    });
  });

  describe('on a generated gzip file', () => {
    let source: Awaited<ReturnType<typeof generateFile>>;
    const small = parseDatasetConfig({
      ...builtInDataset('tic-in-network'),
      bronze: { partMaxRecords: 40, partMaxBytes: 200_000, compressionLevel: 1 },
    });

    beforeAll(async () => {
      source = await generateFile(tmp.dir, 'gen.json.gz', {
        seed: 11,
        targetBytes: 3_000_000,
        nasty: true,
        headerPosition: 'split',
      });
    });

    it('writes every record once, in order, with its lineage and original content', async () => {
      const lake = join(tmp.dir, 'gen-lake');
      const result = await ingest(tmp.dir, 'gen.json.gz', lake, small);
      const { manifest, lines } = await readBronze(lake, result.manifestKey);
      const document = JSON.parse(
        (await import('node:zlib')).gunzipSync(await readFile(source.path)).toString('utf8'),
      ) as Record<string, unknown[]>;

      expect(manifest.records).toEqual(source.facts.records);
      expect(manifest.headers).toEqual(source.facts.headers);
      expect(manifest.source.uncompressedBytes).toBe(source.facts.bytes);
      expect(manifest.parts.length).toBeGreaterThan(3);
      for (const name of ['in_network', 'provider_references']) {
        const ofPath = lines.filter((l) => l.path === name);
        expect(ofPath.map((l) => l.index)).toEqual(ofPath.map((_, i) => i));
        expect(ofPath.map((l) => l.record)).toEqual(document[name]);
      }
      expect(new Set(lines.map((l) => l.source))).toEqual(new Set([source.path]));
    });

    it('records each part with its count and the sha256 of its stored bytes', async () => {
      const lake = join(tmp.dir, 'gen-lake-parts');
      const result = await ingest(tmp.dir, 'gen.json.gz', lake, small);
      for (const part of result.manifest.parts) {
        const bytes = await readFile(join(lake, part.key));
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(part.sha256);
        expect(bytes.length).toBe(part.bytes);
        expect(part.records).toBeLessThanOrEqual(40);
      }
      const files = await listFiles(lake);
      expect(files).toEqual([...result.manifest.parts.map((p) => p.key), result.manifestKey].sort());
    });

    it('gives byte-identical parts and manifest when the same source runs twice', async () => {
      const first = join(tmp.dir, 'twice-1');
      const second = join(tmp.dir, 'twice-2');
      const a = await ingest(tmp.dir, 'gen.json.gz', first, small);
      const b = await ingest(tmp.dir, 'gen.json.gz', second, small);
      await ingest(tmp.dir, 'gen.json.gz', second, small); // a rerun into the same lake
      expect(b.runId).toBe(a.runId);
      const filesA = await listFiles(first);
      expect(await listFiles(second)).toEqual(filesA);
      for (const file of filesA) {
        expect(await readFile(join(second, file)), file).toEqual(await readFile(join(first, file)));
      }
    });

    it('gives a run under another config a folder of its own, and removes parts a run did not write from its folder', async () => {
      const lake = join(tmp.dir, 'shrink');
      const tiny = parseDatasetConfig({ ...small, bronze: { ...small.bronze, partMaxRecords: 5 } });
      const before = await ingest(tmp.dir, 'gen.json.gz', lake, tiny);
      const after = await ingest(tmp.dir, 'gen.json.gz', lake, small);
      expect(before.manifest.parts.length).toBeGreaterThan(after.manifest.parts.length);
      // The first run's bronze is as it wrote it: the second did not parse into its folder.
      expect(after.runId).not.toBe(before.runId);
      const ownFiles = (run: typeof before) => [...run.manifest.parts.map((p) => p.key), run.manifestKey];
      expect(await listFiles(lake)).toEqual([...ownFiles(before), ...ownFiles(after)].sort());

      // An earlier attempt in the second run's folder left more parts (a killed parse, another parser):
      // parsed again there, the run keeps only the parts it wrote.
      const extra = after.manifest.parts[0]!.key.replace(/part-\d+/, 'part-99999');
      await writeFile(join(lake, extra), 'left over');
      await rm(join(lake, after.manifestKey));
      const again = await ingest(tmp.dir, 'gen.json.gz', lake, small);
      expect(again.runId).toBe(after.runId);
      expect(await listFiles(lake)).toEqual([...ownFiles(before), ...ownFiles(again)].sort());
    });
  });

  describe('on bad input', () => {
    async function expectNothingLeft(lake: string) {
      expect((await listFiles(lake)).filter((f) => !f.startsWith('.sluice-tmp'))).toEqual([]);
    }

    it('rejects a truncated gzip file with MalformedInputError and leaves nothing behind', async () => {
      const { path } = await generateFile(tmp.dir, 'whole.json.gz', { seed: 3, targetBytes: 400_000 });
      const bytes = await readFile(path);
      await writeFile(join(tmp.dir, 'truncated.json.gz'), bytes.subarray(0, Math.floor(bytes.length * 0.7)));
      const lake = join(tmp.dir, 'truncated-lake');
      const error = await ingest(tmp.dir, 'truncated.json.gz', lake).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MalformedInputError);
      expect((error as Error).message).toMatch(/truncated\.json\.gz.*byte \d+/);
      await expectNothingLeft(lake);
    });

    it('rejects trailing garbage after the object, naming its byte offset', async () => {
      const text = '{"version":"1","in_network":[{"a":1},{"a":2}]}';
      await writeFile(join(tmp.dir, 'garbage.json'), `${text}\n  x`);
      const lake = join(tmp.dir, 'garbage-lake');
      const error = (await ingest(tmp.dir, 'garbage.json', lake).catch(
        (e: unknown) => e,
      )) as MalformedInputError;
      expect(error).toBeInstanceOf(MalformedInputError);
      expect(error.byteOffset).toBe(text.length + 3);
      expect(error.message).toContain('garbage.json');
      await expectNothingLeft(lake);
    });

    it('rejects a second gzip member that is corrupt, after a valid first one', async () => {
      const whole = Buffer.from('{"version":"1","in_network":[{"a":1},{"a":2}]}');
      const body = Buffer.concat([
        gzipSync(whole.subarray(0, 20)),
        gzipSync(whole.subarray(20)).subarray(0, 12),
        Buffer.from('nonsense'),
      ]);
      await writeFile(join(tmp.dir, 'corrupt.json.gz'), body);
      const lake = join(tmp.dir, 'corrupt-lake');
      await expect(ingest(tmp.dir, 'corrupt.json.gz', lake)).rejects.toBeInstanceOf(MalformedInputError);
      await expectNothingLeft(lake);
    });

    it('reads multi-member gzip as one stream', async () => {
      const whole = Buffer.from(
        '{"version":"1","in_network":[{"a":"x"},{"a":"y"}],"provider_references":[]}',
      );
      const body = Buffer.concat([gzipSync(whole.subarray(0, 33)), gzipSync(whole.subarray(33))]);
      await writeFile(join(tmp.dir, 'members.json.gz'), body);
      const result = await ingest(tmp.dir, 'members.json.gz', join(tmp.dir, 'members-lake'));
      expect(result.manifest.records).toEqual({ in_network: 2, provider_references: 0 });
      expect(result.manifest.source.compression).toBe('gzip');
    });

    it('fails a record over maxRecordBytes with RecordTooLargeError naming the record', async () => {
      const big = `{"in_network":[{"a":1},{"b":"${'x'.repeat(5000)}"}]}`;
      await writeFile(join(tmp.dir, 'big.json'), big);
      const dataset = parseDatasetConfig({
        ...builtInDataset('tic-in-network'),
        limits: { maxRecordBytes: 1000, maxDepth: 100 },
      });
      const lake = join(tmp.dir, 'big-lake');
      const error = (await ingest(tmp.dir, 'big.json', lake, dataset).catch(
        (e: unknown) => e,
      )) as RecordTooLargeError;
      expect(error).toBeInstanceOf(RecordTooLargeError);
      expect(error.recordPath).toBe('in_network');
      expect(error.recordIndex).toBe(1);
      expect(error.byteOffset).toBe(big.indexOf('{"b"'));
      await expectNothingLeft(lake);
    });
  });

  describe('on NDJSON and CSV datasets defined by config', () => {
    const config = (format: 'ndjson' | 'csv'): DatasetConfigInput => ({
      name: `events-${format}`,
      format,
      recordName: 'events',
    });

    it('takes every NDJSON line as a record, with CRLF and blank lines', async () => {
      await writeFile(join(tmp.dir, 'e.ndjson'), '{"id":1}\r\n\r\n{"id":2,"s":"é"}\n[3]\n"four"\n5');
      const lake = join(tmp.dir, 'ndjson-lake');
      const result = await ingest(tmp.dir, 'e.ndjson', lake, parseDatasetConfig(config('ndjson')));
      const { lines } = await readBronze(lake, result.manifestKey);
      expect(lines.map((l) => l.record)).toEqual([{ id: 1 }, { id: 2, s: 'é' }, [3], 'four', 5]);
      expect(lines.map((l) => l.offset)).toEqual([0, 12, 30, 34, 41]);
    });

    it('names the line of a bad NDJSON record by byte offset', async () => {
      await writeFile(join(tmp.dir, 'bad.ndjson'), '{"id":1}\n{"id":2 "x":3}\n');
      const error = (await ingest(
        tmp.dir,
        'bad.ndjson',
        join(tmp.dir, 'bad-ndjson-lake'),
        parseDatasetConfig(config('ndjson')),
      ).catch((e: unknown) => e)) as MalformedInputError;
      expect(error).toBeInstanceOf(MalformedInputError);
      expect(error.byteOffset).toBe(17); // the `"` after `2` where a `,` belongs
    });

    it('turns CSV rows into records keyed by the header row, keeping extra fields', async () => {
      await writeFile(join(tmp.dir, 'e.csv'), 'id,name\n1,"a, b"\n2,"say ""hi"""\n3,c,surplus\n');
      const lake = join(tmp.dir, 'csv-lake');
      const result = await ingest(tmp.dir, 'e.csv', lake, parseDatasetConfig(config('csv')));
      const { lines } = await readBronze(lake, result.manifestKey);
      expect(lines.map((l) => l.record)).toEqual([
        { id: '1', name: 'a, b' },
        { id: '2', name: 'say "hi"' },
        { id: '3', name: 'c', _extra: ['surplus'] },
      ]);
      expect(lines.map((l) => l.offset)).toEqual([8, 17, 32]);
    });

    it('rejects data after a gzip member that begins with a 0x00 byte, instead of ending there', async () => {
      // Node's gunzip stops quietly at a member followed by 0x00: on main the rows of the members after
      // it were dropped and the run reconciled with half the file.
      const first = gzipSync('id\n1\n2\n');
      for (const [name, tail] of [
        ['nul-then-member', Buffer.concat([Buffer.alloc(4), gzipSync('3\n4\n')])],
        ['nul-then-garbage', Buffer.from('\0garbage')],
        ['zero-padding', Buffer.alloc(512)],
      ] as const) {
        await writeFile(join(tmp.dir, `${name}.csv.gz`), Buffer.concat([first, tail]));
        const lake = join(tmp.dir, `${name}-lake`);
        const error = (await ingest(tmp.dir, `${name}.csv.gz`, lake, parseDatasetConfig(config('csv'))).catch(
          (e: unknown) => e,
        )) as MalformedInputError;
        expect(error, name).toBeInstanceOf(MalformedInputError);
        expect(error.byteOffset).toBe(first.length);
        expect(error.message).toContain(
          `trailing data after the last gzip member at compressed byte ${first.length}`,
        );
      }
    });

    it('fails, committing nothing, a file rewritten in place while it is read', async () => {
      // `cat new.csv > file.csv` during a run: on main the run read the start of one file and the rest of
      // the other, and committed the mix as a version of its own (exit 0, "reconciled").
      const rows = (prefix: string) =>
        `id,v\n${Array.from({ length: 200_000 }, (_, i) => `${i},${prefix}${i}`).join('\n')}\n`;
      const file = join(tmp.dir, 'rewritten.csv');
      await writeFile(file, rows('old'));
      const lake = join(tmp.dir, 'rewritten-lake');
      let rewritten = false;
      const error = await ingestToBronze(
        { dataset: parseDatasetConfig(config('csv')), sourceKey: 'rewritten.csv' },
        {
          source: fileStore(tmp.dir),
          lake: fileStore(lake),
          clock: fixedClock,
          // After the first batch: the writer starts over with other bytes (same inode, longer).
          onProgress: () => {
            if (rewritten) return;
            rewritten = true;
            writeFileSync(file, rows('newer'));
          },
        },
      ).catch((e: unknown) => e);
      expect(rewritten).toBe(true);
      expect(error).toBeInstanceOf(SourceModifiedError);
      expect((error as Error).message).toMatch(/rewritten\.csv: the file changed while it was read/);
      expect((await listFiles(lake)).filter((f) => !f.startsWith('.sluice-tmp'))).toEqual([]);
    });

    it('rejects a CSV file with an unclosed quote', async () => {
      await writeFile(join(tmp.dir, 'bad.csv'), 'id,name\n1,"open\n');
      await expect(
        ingest(tmp.dir, 'bad.csv', join(tmp.dir, 'bad-csv-lake'), parseDatasetConfig(config('csv'))),
      ).rejects.toBeInstanceOf(MalformedInputError);
    });
  });
});
