import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../shared/adapters/aws/s3-object-store.ts';
import { openParquetInspector } from '../../shared/adapters/duckdb/parquet-inspector.ts';
import { createPartialParquetTableWriter } from '../../shared/adapters/duckdb/parquet-table-writer.ts';
import { builtInDataset } from '../../shared/contracts/datasets/index.ts';
import { silverContractFor } from '../../shared/contracts/datasets/silver-contracts.ts';
import { runReportKey } from '../../shared/lake/keys.ts';
import { ingestToBronze } from '../../shared/stages/bronze/ingest-to-bronze.ts';
import { reconcile } from '../../shared/stages/reconcile/reconcile.ts';
import { buildSilver } from '../../shared/stages/silver/build-silver.ts';
import { TIC_EXAMPLES } from '../helpers/fixtures.ts';
import { fileStore, fixedClock, tempDir } from '../helpers/lake.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

/** On AWS the report is written where the Reconcile Lambda writes reconciliation.json: in the S3 lake. */

const SKIP = motoSkipReason();
const SAMPLE = 'in-network-rates-fee-for-service-single-plan-sample.json';

describe.skipIf(SKIP !== undefined)(`run report on S3 (moto)${SKIP ? ` (skipped: ${SKIP})` : ''}`, () => {
  let server: MotoServer;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    server = await startMotoServer();
    tmp = await tempDir('sluice-report-s3-');
  });
  afterAll(async () => {
    await server?.stop();
    await tmp?.cleanup();
  });

  it('reconcile writes report.html beside reconciliation.json, as HTML, with the run in it', async () => {
    const bucket = await server.createBucket('lake');
    const lake = new S3ObjectStore({ client: server.s3, bucket, prefix: 'lake/' });
    const contract = silverContractFor('tic-in-network')!;
    const bronze = await ingestToBronze(
      { dataset: builtInDataset('tic-in-network'), sourceKey: SAMPLE },
      { source: fileStore(TIC_EXAMPLES), lake, clock: fixedClock },
    );
    const deps = { lake, clock: fixedClock, contract, workDir: join(tmp.dir, 'work') };
    await buildSilver(
      { bronzeManifestKey: bronze.manifestKey },
      { ...deps, createTableWriter: createPartialParquetTableWriter },
    );
    const report = await reconcile(
      { bronzeManifestKey: bronze.manifestKey },
      { ...deps, openInspector: openParquetInspector },
    );

    const key = runReportKey('tic-in-network', bronze.runId);
    const head = await server.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `lake/${key}` }));
    expect(head.ContentType).toBe('text/html; charset=utf-8');
    const html = (await buffer(await lake.read(key))).toString('utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain(`data-field="runId">${bronze.runId}<`);
    expect(html).toContain(`data-field="quality.score">${report.quality.score}<`);
    // Profiles were read from the Parquet files reconciliation downloaded.
    expect(report.profiles?.in_network_items).toMatchObject({ rows: expect.any(Number) });
    expect(html).toContain('data-field="profiles.in_network_items.rows"');
  });
});
