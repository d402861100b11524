import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileObjectStore } from '../../shared/adapters/local/file-object-store.ts';
import { sourceId, sourceLeaseKey } from '../../shared/lake/keys.ts';
import {
  commitSourceVersion,
  type SourceVersionRecord,
  sourceIdentity,
} from '../../shared/lake/source-commits.ts';
import { tempDir } from '../helpers/lake.ts';

const DATASET = 'tic-in-network';
const KEY = '_downloads/tic-in-network/0123abcd/in-network.json.gz';

/** A committed current version of the source whose id is made of `location` (a landed file's uri, or a key). */
async function commitCurrent(lake: FileObjectStore, location: string): Promise<void> {
  const id = sourceId(location);
  const record: SourceVersionRecord = {
    commitVersion: 1,
    dataset: DATASET,
    sourceId: id,
    version: 'v1',
    sha256: '0'.repeat(64),
    uri: location,
    size: 1,
    runId: `${id}-00000000`,
    bronzeManifestKey: 'bronze/x/_manifest.json',
    datasetConfigSha256: 'b'.repeat(64),
    tables: {},
    committedAt: '2026-01-01T00:00:00.000Z',
    seenAs: [],
  };
  await commitSourceVersion(lake, record, undefined);
}

describe('sourceIdentity', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    tmp = await tempDir('sluice-identity-');
  });
  afterAll(async () => tmp.cleanup());

  it('is a file’s location, and a download’s landing key wherever the landing folder is', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/fresh`);
    expect(await sourceIdentity(lake, DATASET, 'data/in-network.json', '/home/a/data/in-network.json')).toBe(
      '/home/a/data/in-network.json',
    );
    expect(await sourceIdentity(lake, DATASET, KEY, `/home/a/landing/${KEY}`)).toBe(KEY);
    expect(await sourceIdentity(lake, DATASET, KEY, `/tmp/b/landing/${KEY}`)).toBe(KEY);
  });

  it('keeps the full location of a download committed before ids were by landing key, and the key once that is current', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/upgraded`);
    const uri = `s3://landing-bucket/${KEY}`;
    await commitCurrent(lake, uri);
    expect(await sourceIdentity(lake, DATASET, KEY, uri)).toBe(uri);
    // Landed in another folder now: the committed record that names the same landing key is found.
    expect(await sourceIdentity(lake, DATASET, KEY, `/tmp/landing/${KEY}`)).toBe(uri);
    // Another URL of the same file name is another source.
    const other = KEY.replace('0123abcd', '4567ef01');
    expect(await sourceIdentity(lake, DATASET, other, `s3://landing-bucket/${other}`)).toBe(other);
    await commitCurrent(lake, KEY);
    expect(await sourceIdentity(lake, DATASET, KEY, uri)).toBe(KEY);
  });

  it('keeps the full location of a download whose run under it is under way or was killed (its lease)', async () => {
    const lake = new FileObjectStore(`${tmp.dir}/in-flight`);
    const uri = `/home/a/landing/${KEY}`;
    expect(await sourceIdentity(lake, DATASET, KEY, uri)).toBe(KEY);
    await lake.write(sourceLeaseKey(DATASET, sourceId(uri)), '{}');
    expect(await sourceIdentity(lake, DATASET, KEY, uri)).toBe(uri);
  });
});
