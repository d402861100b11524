import { describe, expect, it } from 'vitest';
import { allows, type TemplateStatement } from '../helpers/iam-policy.ts';
import { s3PermissionsOf } from '../helpers/s3-requests.ts';

/** A bucket's ARN as a synthesized template spells it, and an object pattern under it. */
const bucketArn = { 'Fn::GetAtt': ['LakeBucket', 'Arn'] };
const under = (pattern: string) => ({ 'Fn::Join': ['', [bucketArn, `/${pattern}`]] });
const bucketOf = (id: string) => (id === 'LakeBucket' ? 'lake' : undefined);
const object = (action: string, key: string) => ({ action, key, request: 'test' });
const listing = (prefix: string) => ({ action: 's3:ListBucket' as const, prefix, request: 'test' });

describe('Function: allows (the IAM evaluation of the coverage test)', () => {
  const statements: TemplateStatement[] = [
    { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: [under('silver/*/_state/*')] },
    {
      Effect: 'Allow',
      Action: 's3:ListBucket',
      Resource: bucketArn,
      Condition: { StringLike: { 's3:prefix': ['bronze/*'] } },
    },
    { Effect: 'Allow', Action: 's3:Get*', Resource: under('bronze/*') },
    { Effect: 'Deny', Action: 's3:GetObject', Resource: under('bronze/secret/*') },
    {
      Effect: 'Allow',
      Action: 's3:DeleteObject',
      Resource: under('*'),
      Condition: { StringEquals: { 'aws:SourceVpce': 'vpce-1' } },
    },
  ];
  const allowed = (permission: Parameters<typeof allows>[2], bucket = 'lake') =>
    allows(statements, bucket, permission, bucketOf);

  it('matches `*` across `/` in resources, and action wildcards', () => {
    expect(allowed(object('s3:PutObject', 'silver/d/_state/t/current-r.parquet'))).toBe(true);
    expect(allowed(object('s3:PutObject', 'silver/d/t/part-0.parquet'))).toBe(false);
    expect(allowed(object('s3:GetObject', 'bronze/d/run=r/part-0.ndjson.gz'))).toBe(true);
    expect(allowed(object('s3:DeleteObject', 'silver/d/_state/t.json'))).toBe(false);
  });

  it('grants a listing only under the prefixes its s3:prefix condition names', () => {
    expect(allowed(listing('bronze/d/run=r/'))).toBe(true);
    expect(allowed(listing('silver/d/'))).toBe(false);
  });

  it('lets an explicit Deny win, and an Allow with a condition the request cannot meet grant nothing', () => {
    expect(allowed(object('s3:GetObject', 'bronze/secret/k'))).toBe(false);
    expect(allowed(object('s3:DeleteObject', 'bronze/d/k'))).toBe(false);
  });

  it("checks the bucket: another bucket's keys are not granted by this one's ARNs", () => {
    expect(allowed(object('s3:PutObject', 'silver/d/_state/t.json'), 'landing')).toBe(false);
  });
});

describe('Function: s3PermissionsOf (the requests of the S3 adapter for each port call)', () => {
  const actions = (call: Parameters<typeof s3PermissionsOf>[0]) =>
    s3PermissionsOf(call).map((p) => ('prefix' in p ? `ListBucket ${p.prefix}` : `${p.action} ${p.key}`));

  it('reads its writes back (HeadObject: s3:GetObject), and writes past one part as a multipart upload', () => {
    expect(actions({ op: 'write', key: 'k', conditional: false, size: 10, ok: true })).toEqual([
      's3:PutObject k',
      's3:GetObject k',
    ]);
    expect(actions({ op: 'write', key: 'k', conditional: false, size: 9 * 1024 * 1024, ok: true })).toEqual([
      's3:PutObject k',
      's3:AbortMultipartUpload k',
      's3:GetObject k',
    ]);
    // A conditional write is one PutObject, whatever its size; a refused one reads nothing back.
    expect(actions({ op: 'write', key: 'k', conditional: true, size: 9 * 1024 * 1024, ok: false })).toEqual([
      's3:PutObject k',
    ]);
  });

  it('needs a listing of the key to tell an absent object from a refused one', () => {
    expect(actions({ op: 'head', key: 'k', found: true })).toEqual(['s3:GetObject k']);
    expect(actions({ op: 'read', key: 'k', found: false })).toEqual(['s3:GetObject k', 'ListBucket k']);
  });
});
