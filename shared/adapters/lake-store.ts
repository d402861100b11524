import { type Stats, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
    assertFolderPath(lake);
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

/**
 * A local lake is a folder, or one to be made: a file at its path (or at a folder above it) is a mistake
 * in the command, to be said before anything runs (exit 2), not a run that fails on its first write.
 */
function assertFolderPath(lake: string): void {
  for (let path = resolve(lake); ; path = dirname(path)) {
    const stat = statOrUndefined(path);
    if (stat?.isDirectory()) return;
    if (stat) {
      const where = path === resolve(lake) ? '' : ` (${path} is)`;
      throw new ConfigError(
        `--lake ${lake}: a file, not a folder${where}. A lake is a folder or s3://bucket[/prefix]: give another path.`,
      );
    }
    if (dirname(path) === path) return;
  }
}

/** The path's stat, or undefined when nothing is there (ENOENT) or a file above it is in the way (ENOTDIR). */
function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}
