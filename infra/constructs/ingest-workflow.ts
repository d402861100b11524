import { createHash } from 'node:crypto';
import { ArnFormat, type CfnResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ingestWorkflowDefinition, Placeholder, StateName } from '../../shared/workflow/definition.ts';

/** Metadata key on the state machine resource, so tools can find the workflow in a synthesized template. */
export const WORKFLOW_METADATA_KEY = 'sluice:workflow';

/** Properties of `IngestWorkflow`. */
export interface IngestWorkflowProps {
  readonly downloadFunction: IFunction;
  readonly ingestFunction: IFunction;
  readonly silverFunction: IFunction;
  readonly reconcileFunction: IFunction;
  /** The `PlanFanOut` stage of table-of-contents runs. */
  readonly fanOutFunction: IFunction;
  /** Listed files of a table of contents ingested at once. @default 4 */
  readonly fanOutConcurrency?: number;
  /** Groups of bronze parts one silver build runs at once (`SilverGroups`). @default 8 */
  readonly silverConcurrency?: number;
  /** @default false */
  readonly tracing?: boolean;
  /**
   * Longest an execution may run, retries included: for a table of contents, its whole fan-out.
   * @default 7 days
   */
  readonly timeout?: Duration;
  /** Longest the run of one file a table of contents lists may take; then it is stopped. @default 6 hours */
  readonly listedFileTimeout?: Duration;
  /** @default three months */
  readonly logRetention?: RetentionDays;
}

/**
 * The state machine (definition: shared/workflow/definition.ts, rendered with the deployed resources in
 * place of its placeholders), its execution log, and the failure queue that records every execution
 * that failed for good.
 */
export class IngestWorkflow extends Construct {
  readonly stateMachine: StateMachine;
  readonly failureQueue: Queue;

  constructor(scope: Construct, id: string, props: IngestWorkflowProps) {
    super(scope, id);

    // SQS-managed encryption: the messages are references (execution id, bucket and key, error), never
    // data, and a customer-managed key would have to trust each AWS service that writes to the queue.
    this.failureQueue = new Queue(this, 'FailureQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.failureQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the dead-letter destination of the workflow; nothing consumes it automatically.',
    });

    const logGroup = new LogGroup(this, 'ExecutionLogs', {
      retention: props.logRetention ?? RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // A fixed name: the fan-out starts this state machine from its own definition, by an ARN built from
    // the name (its own ARN attribute there would be a reference cycle).
    const stack = Stack.of(this);
    const stateMachineName = workflowStateMachineName(stack.stackName);
    const arnOf = (service: string, resource: string, resourceName: string) =>
      stack.formatArn({ service, resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const stateMachineArn = arnOf('states', 'stateMachine', stateMachineName);
    const functions = {
      [Placeholder.downloadFunctionArn]: props.downloadFunction,
      [Placeholder.ingestFunctionArn]: props.ingestFunction,
      [Placeholder.silverFunctionArn]: props.silverFunction,
      [Placeholder.reconcileFunctionArn]: props.reconcileFunction,
      [Placeholder.fanOutFunctionArn]: props.fanOutFunction,
    };
    const substitutions: Record<Placeholder, string> = {
      ...(Object.fromEntries(Object.entries(functions).map(([name, fn]) => [name, fn.functionArn])) as Record<
        keyof typeof functions,
        string
      >),
      [Placeholder.failureQueueUrl]: this.failureQueue.queueUrl,
      [Placeholder.stateMachineArn]: stateMachineArn,
      [Placeholder.partition]: stack.partition,
    };
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      // The definition is data (shared/workflow/definition.ts); its resources are substitutions.
      definitionBody: DefinitionBody.fromString(
        JSON.stringify(
          ingestWorkflowDefinition({
            fanOutConcurrency: props.fanOutConcurrency,
            silverConcurrency: props.silverConcurrency,
            listedFileTimeoutSeconds: props.listedFileTimeout?.toSeconds(),
            timeoutSeconds: (props.timeout ?? Duration.days(7)).toSeconds(),
          }),
        ),
      ),
      definitionSubstitutions: substitutions,
      tracingEnabled: props.tracing ?? false,
      logs: {
        destination: logGroup,
        // Every state transition, for debugging, but without the states' input and output: those
        // carry bucket keys and error causes today, and a later stage could pass record values.
        level: LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    // A definition given as text grants nothing by itself: exactly what its tasks call, here.
    const role = this.stateMachine.role;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: Object.values(functions).map((fn) => fn.functionArn),
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [this.failureQueue.queueArn] }),
    );
    // IngestListedFile (`.sync:2`) starts, waits for (describes) and may stop child executions of this
    // state machine; FanOut, a distributed map, does the same for its map runs and redrives their items.
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['states:StartExecution'], resources: [stateMachineArn] }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [arnOf('states', 'execution', `${stateMachineName}:*`)],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['states:RedriveExecution'],
        resources: [arnOf('states', 'execution', `${stateMachineName}/${StateName.fanOut}:*`)],
      }),
    );
    // `.sync` learns that the child ended from an EventBridge rule that Step Functions manages.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule',
          }),
        ],
      }),
    );
    (this.stateMachine.node.defaultChild as CfnResource).addMetadata(WORKFLOW_METADATA_KEY, 'ingest');
    Validations.of(this.stateMachine.role).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'CloudWatch Logs delivery (logs:CreateLogDelivery, ...) and X-Ray tracing support no resource-level ' +
          'permissions; these are the statements CDK adds for the logging and tracing configured here.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${stateMachineName}:*]`,
        reason:
          `${StateName.ingestListedFile} waits for (describes) and may stop the child executions it starts: ` +
          'executions of this state machine only, whose names are not known in advance.',
      },
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${stateMachineName}/${StateName.fanOut}:*]`,
        reason: `${StateName.fanOut} (a distributed map) redrives the child executions of its own map runs only.`,
      },
    );
  }
}

/** Step Functions' limit on state machine names. */
const MAX_STATE_MACHINE_NAME_LENGTH = 80;

/**
 * The workflow's state machine name: `<stack name>-ingest`, unique per account and region as stack names
 * are; a stack name too long for that keeps its first characters and a hash of the whole.
 */
export function workflowStateMachineName(stackName: string): string {
  const name = `${stackName}-ingest`;
  if (name.length <= MAX_STATE_MACHINE_NAME_LENGTH) return name;
  const hash = createHash('sha256').update(stackName).digest('hex').slice(0, 8);
  return `${stackName.slice(0, MAX_STATE_MACHINE_NAME_LENGTH - '-ingest'.length - hash.length - 1)}-${hash}-ingest`;
}
