import { resolve } from 'node:path';
import { ConfigError } from '../errors.ts';
import type { UploadingObjectStore } from '../ports/object-store.ts';
import { createS3Client, S3ObjectStore } from './aws/s3-object-store.ts';
import { FileObjectStore } from './local/file-object-store.ts';

/**
 * The lake `--lake` names: a local folder, or `s3://bucket[/prefix]` on AWS or any S3-compatible server.
 * The endpoint comes from the standard variables (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), with
 * path-style requests, which S3-compatible servers expect; credentials and region from the SDK's usual
 * chain (`AWS_PROFILE`, `AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...).
 */
export function openLakeStore(lake: string): UploadingObjectStore {
  const s3 = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(lake);
  if (!s3) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(lake)) {
      throw new ConfigError(`--lake ${lake}: a lake is a folder or s3://bucket[/prefix]`);
    }
    return new FileObjectStore(resolve(lake));
  }
  const [, bucket, path = ''] = s3;
  // A prefix is a folder of the bucket: `s3://b/lake` and `s3://b/lake/` are the same lake.
  const prefix = path === '' || path.endsWith('/') ? path : `${path}/`;
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
  const client = createS3Client({
    ...(endpoint && { endpoint, forcePathStyle: true }),
    // The SDK requires a region even for an endpoint that ignores it.
    ...(!process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION && { region: 'us-east-1' }),
  });
  return new S3ObjectStore({ client, bucket: bucket!, prefix });
}
