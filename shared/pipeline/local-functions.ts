import { download } from '../../functions/download/handler.ts';
import { fanOut } from '../../functions/fan-out/handler.ts';
import { ingest } from '../../functions/ingest/handler.ts';
import { reconcileRun } from '../../functions/reconcile/handler.ts';
import { silver } from '../../functions/silver/handler.ts';
import { DEFAULT_FUNCTION_MEMORY_MB } from '../config/runtime-config.ts';
import {
  ingestWorkflowDefinition,
  Placeholder,
  substitutePlaceholders,
  type WorkflowDefinition,
  type WorkflowOptions,
} from '../workflow/definition.ts';

/**
 * What each Lambda task of the workflow runs locally: the handler's own exported function
 * (functions/<stage>/handler.ts), by the placeholder its `Resource` has in the definition. Nothing else:
 * no stage's logic exists a second time for local runs. The runner looks a task's function up here at
 * each invocation.
 */
export const localFunctions = {
  [Placeholder.downloadFunctionArn]: download,
  [Placeholder.ingestFunctionArn]: ingest,
  [Placeholder.silverFunctionArn]: silver,
  [Placeholder.reconcileFunctionArn]: reconcileRun,
  [Placeholder.fanOutFunctionArn]: fanOut,
};
export type LocalFunctions = typeof localFunctions;
export type LocalFunctionName = keyof LocalFunctions;

/** The memory each function is deployed with by default (a local invocation is billed at it). */
export function localFunctionMemoryMb(name: LocalFunctionName): number {
  const memory = {
    [Placeholder.downloadFunctionArn]: DEFAULT_FUNCTION_MEMORY_MB.download,
    [Placeholder.ingestFunctionArn]: DEFAULT_FUNCTION_MEMORY_MB.ingest,
    [Placeholder.silverFunctionArn]: DEFAULT_FUNCTION_MEMORY_MB.silver,
    [Placeholder.reconcileFunctionArn]: DEFAULT_FUNCTION_MEMORY_MB.reconcile,
    [Placeholder.fanOutFunctionArn]: DEFAULT_FUNCTION_MEMORY_MB.fanOut,
  } satisfies Record<LocalFunctionName, number>;
  return memory[name];
}

/** Placeholder account and region of the local "deployment": ARNs shaped like the deployed ones. */
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';

/** The local state machine: executions are named like the deployed ones. */
export const LOCAL_STATE_MACHINE_ARN = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:sluice-local`;

/** The local value of each placeholder: a function ARN per stage, the failure queue, this machine. */
export const LOCAL_RESOURCES: Readonly<Record<Placeholder, string>> = {
  [Placeholder.downloadFunctionArn]: localFunctionArn('download'),
  [Placeholder.ingestFunctionArn]: localFunctionArn('ingest'),
  [Placeholder.silverFunctionArn]: localFunctionArn('silver'),
  [Placeholder.reconcileFunctionArn]: localFunctionArn('reconcile'),
  [Placeholder.fanOutFunctionArn]: localFunctionArn('fan-out'),
  [Placeholder.failureQueueUrl]: `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/sluice-local-failures`,
  [Placeholder.stateMachineArn]: LOCAL_STATE_MACHINE_ARN,
  [Placeholder.partition]: 'aws',
};

function localFunctionArn(stage: string): string {
  return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:sluice-local-${stage}`;
}

/** The function a task's `Resource` names, if it is one of the stage functions. */
export function localFunctionOf(resource: unknown): LocalFunctionName | undefined {
  return (Object.keys(localFunctions) as LocalFunctionName[]).find(
    (name) => LOCAL_RESOURCES[name] === resource,
  );
}

/** The workflow's definition as the local runner runs it: the deployed one, with local resources. */
export function localWorkflowDefinition(options: WorkflowOptions = {}): WorkflowDefinition {
  return substitutePlaceholders(ingestWorkflowDefinition(options), LOCAL_RESOURCES);
}
