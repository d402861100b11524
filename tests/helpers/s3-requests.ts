import type { StoreCall } from './recording-object-store.ts';

/**
 * What IAM authorizes one S3 request of the S3 adapter by: an action on an object key, or
 * `s3:ListBucket` on the bucket with the request's prefix (the `s3:prefix` condition key).
 */
export type S3Permission =
  | { readonly action: string; readonly key: string; readonly request: string }
  | { readonly action: 's3:ListBucket'; readonly prefix: string; readonly request: string };

/** The S3 adapter's part size: a write larger than one part is a multipart upload (s3-object-store.ts). */
const PART_BYTES = 8 * 1024 * 1024;

/**
 * The permissions the S3 adapter (shared/adapters/aws/s3-object-store.ts) needs for one port call, as it
 * makes its requests:
 * - read: GetObject; head: HeadObject, which s3:GetObject authorizes. An absent key needs s3:ListBucket
 *   with the key as prefix too: S3 answers 404 only to a caller who may list it, and otherwise 403, after
 *   which the adapter lists the key to tell absent from refused.
 * - write: PutObject, or past one part a multipart upload (CreateMultipartUpload, UploadPart and
 *   CompleteMultipartUpload are s3:PutObject; lib-storage aborts a failed one: s3:AbortMultipartUpload);
 *   a stream whose write failed may have been either. A conditional write is one PutObject (If-None-Match,
 *   If-Match). Every successful write then reads its object back (HeadObject: s3:GetObject).
 * - list: ListObjectsV2 with the prefix; delete: DeleteObject.
 * - resumable uploads: start, part and complete are s3:PutObject (complete heads the object as a write
 *   does); listParts is s3:ListMultipartUploadParts, which a failed part or completion also asks;
 *   abort is s3:AbortMultipartUpload.
 */
export function s3PermissionsOf(call: StoreCall): S3Permission[] {
  const on = (action: string, key: string, request: string) => ({ action, key, request });
  const listKey = (key: string) => ({
    action: 's3:ListBucket' as const,
    prefix: key,
    request: 'ListObjectsV2',
  });
  switch (call.op) {
    case 'read':
    case 'head': {
      const request = call.op === 'read' ? 'GetObject' : 'HeadObject';
      return [on('s3:GetObject', call.key, request), ...(call.found ? [] : [listKey(call.key)])];
    }
    case 'write': {
      const multipart = !call.conditional && (call.size === undefined || call.size > PART_BYTES);
      return [
        on('s3:PutObject', call.key, multipart ? 'multipart upload' : 'PutObject'),
        ...(multipart ? [on('s3:AbortMultipartUpload', call.key, 'AbortMultipartUpload')] : []),
        ...(call.ok ? [on('s3:GetObject', call.key, 'HeadObject after the write')] : []),
      ];
    }
    case 'list':
      return [{ action: 's3:ListBucket', prefix: call.prefix, request: 'ListObjectsV2' }];
    case 'delete':
      return [on('s3:DeleteObject', call.key, 'DeleteObject')];
    case 'startUpload':
      return [on('s3:PutObject', call.key, 'CreateMultipartUpload')];
    case 'uploadPart':
    case 'completeUpload': {
      const request = call.op === 'uploadPart' ? 'UploadPart' : 'CompleteMultipartUpload';
      return [
        on('s3:PutObject', call.key, request),
        ...(call.ok ? [] : [on('s3:ListMultipartUploadParts', call.key, 'ListParts after a failure')]),
        ...(call.ok && call.op === 'completeUpload' ? [on('s3:GetObject', call.key, 'HeadObject')] : []),
      ];
    }
    case 'listParts':
      return [on('s3:ListMultipartUploadParts', call.key, 'ListParts')];
    case 'abortUpload':
      return [on('s3:AbortMultipartUpload', call.key, 'AbortMultipartUpload')];
  }
}
