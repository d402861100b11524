import { Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * How cdk-nag writes a CloudFormation reference inside a finding id, e.g. the `<LakeXYZ.Arn>` of
 * `AwsSolutions-IAM5[Resource::<LakeXYZ.Arn>/bronze/*]`, so acknowledgements can name the exact
 * finding instead of silencing a rule for a whole resource.
 */
export function nagRef(scope: IConstruct, token: string): string {
  const resolved = Stack.of(scope).resolve(token) as { 'Fn::GetAtt'?: [string, string]; Ref?: string };
  if (resolved['Fn::GetAtt']) return `<${resolved['Fn::GetAtt'][0]}.${resolved['Fn::GetAtt'][1]}>`;
  if (resolved.Ref) return `<${resolved.Ref}>`;
  throw new TypeError(`not a resource reference: ${JSON.stringify(resolved)}`);
}
