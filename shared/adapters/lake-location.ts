import { resolve } from 'node:path';

// Kept apart from lake-store.ts, which loads the AWS SDK: the CLI's light commands name lakes too.

/** Whether `--lake` names an S3 lake. */
export const isS3Lake = (lake: string) => /^s3:\/\//i.test(lake);

/** The lake as messages name it: the S3 location as given, or the folder's absolute path. */
export const lakeLabel = (lake: string) => (isS3Lake(lake) ? lake : resolve(lake));
