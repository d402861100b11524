import type { S3Permission } from './s3-requests.ts';

/** A policy statement as the synthesized template holds it (CloudFormation JSON). */
export type TemplateStatement = Record<string, unknown>;

/**
 * Whether a role's identity-policy statements let it make one S3 request on `bucket`, evaluated as IAM
 * does for what these policies use: an explicit Deny wins, else some Allow must match the action (`*`
 * and `?` wildcards, case-insensitive), the resource (the object's ARN, or for s3:ListBucket the
 * bucket's) and every condition. The request's context has `s3:prefix` for a listing and no other key,
 * so a condition on any other key (or an operator other than StringLike/StringEquals) does not hold:
 * an Allow that needs one grants nothing here, which errs towards reporting a gap.
 *
 * `bucketOf` names the buckets the template's `Fn::GetAtt [<logical id>, Arn]` refers to; their ARNs
 * become `arn:aws:s3:::<name>`, and any other token an unmatchable `<TOKEN>`.
 */
export function allows(
  statements: readonly TemplateStatement[],
  bucket: string,
  permission: S3Permission,
  bucketOf: (logicalId: string) => string | undefined,
): boolean {
  const isList = 'prefix' in permission;
  const arn = isList ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${permission.key}`;
  const context: Record<string, string> = isList ? { 's3:prefix': permission.prefix } : {};
  const applies = (s: TemplateStatement) => {
    if ('NotAction' in s || 'NotResource' in s || 'NotPrincipal' in s) {
      throw new Error(
        `iam-policy: statement ${String(s.Sid)} uses Not*, which this evaluator does not model`,
      );
    }
    const actions = [s.Action].flat() as string[];
    const resources = [s.Resource].flat().map((r) => resolve(r, bucketOf));
    return (
      actions.some((a) => glob(a, true).test(permission.action)) &&
      resources.some((r) => glob(r, false).test(arn)) &&
      conditionsHold(s.Condition as Record<string, Record<string, unknown>> | undefined, context)
    );
  };
  if (statements.some((s) => s.Effect === 'Deny' && applies(s))) return false;
  return statements.some((s) => s.Effect === 'Allow' && applies(s));
}

function conditionsHold(
  condition: Record<string, Record<string, unknown>> | undefined,
  context: Record<string, string>,
): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operator, keys]) =>
    Object.entries(keys).every(([key, values]) => {
      const value = context[key];
      if (value === undefined) return false;
      const patterns = [values].flat() as string[];
      if (operator === 'StringLike') return patterns.some((p) => glob(p, false).test(value));
      if (operator === 'StringEquals') return patterns.includes(value);
      return false;
    }),
  );
}

/** A CloudFormation value as text: bucket ARNs by name, the partition as `aws`, other tokens unmatchable. */
function resolve(value: unknown, bucketOf: (logicalId: string) => string | undefined): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  const getAtt = v['Fn::GetAtt'] as [string, string] | undefined;
  if (getAtt?.[1] === 'Arn') {
    const name = bucketOf(getAtt[0]);
    if (name) return `arn:aws:s3:::${name}`;
  }
  if (v.Ref === 'AWS::Partition') return 'aws';
  const join = v['Fn::Join'] as [string, unknown[]] | undefined;
  if (join) return join[1].map((part) => resolve(part, bucketOf)).join(join[0]);
  return '<TOKEN>';
}

/** An IAM pattern (`*`: any characters, `/` included; `?`: one) as a whole-string regular expression. */
function glob(pattern: string, ignoreCase: boolean): RegExp {
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '[^]*' : c === '?' ? '[^]' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, ignoreCase ? 'i' : '');
}
