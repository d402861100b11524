import { createHash } from 'node:crypto';
import { Arn, ArnFormat, type CfnResource, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ingestWorkflowDefinition, StateName } from '../../shared/workflow/definition.ts';
import { nagRef } from './nag.ts';

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
 * The state machine (definition: shared/workflow/definition.ts), its execution log, and the failure
 * queue that records every execution that failed for good.
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
    const stateMachineName = workflowStateMachineName(Stack.of(this).stackName);
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineName,
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(
        ingestWorkflowDefinition(this, {
          downloadFunction: props.downloadFunction,
          ingestFunction: props.ingestFunction,
          silverFunction: props.silverFunction,
          reconcileFunction: props.reconcileFunction,
          fanOutFunction: props.fanOutFunction,
          stateMachineName,
          fanOutConcurrency: props.fanOutConcurrency,
          silverConcurrency: props.silverConcurrency,
          listedFileTimeout: props.listedFileTimeout,
          failureQueue: this.failureQueue,
        }),
      ),
      timeout: props.timeout ?? Duration.days(7),
      tracingEnabled: props.tracing ?? false,
      logs: {
        destination: logGroup,
        // Every state transition, for debugging, but without the states' input and output: those
        // carry bucket keys and error causes today, and a later stage could pass record values.
        level: LogLevel.ALL,
        includeExecutionData: false,
      },
    });
    (this.stateMachine.node.defaultChild as CfnResource).addMetadata(WORKFLOW_METADATA_KEY, 'ingest');
    Validations.of(this.stateMachine.role).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'CloudWatch Logs delivery (logs:CreateLogDelivery, ...) and X-Ray tracing support no resource-level ' +
          'permissions; these are the statements CDK adds for the logging and tracing configured here.',
      },
      ...[
        props.downloadFunction,
        props.ingestFunction,
        props.silverFunction,
        props.reconcileFunction,
        props.fanOutFunction,
      ].map((fn) => ({
        id: `AwsSolutions-IAM5[Resource::${nagRef(this, fn.functionArn)}:*]`,
        reason: 'Invoking a stage function by qualified ARN (version or alias) of that one function only.',
      })),
      {
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${stateMachineName}:*]`,
        reason:
          `${StateName.ingestListedFile} waits for (describes) and may stop the child executions it starts: ` +
          'executions of this state machine only, whose names are not known in advance.',
      },
    );
    // CDK's own policy for the distributed map (FanOut): its map runs are executions of this state machine.
    const mapPolicy = this.stateMachine.node.tryFindChild('DistributedMapPolicy');
    if (mapPolicy) {
      const executions = `arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${JSON.stringify(
        Stack.of(this).resolve(
          Arn.split(this.stateMachine.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName,
        ),
      )}`;
      Validations.of(mapPolicy).acknowledge(
        {
          id: `AwsSolutions-IAM5[Resource::${executions}:*]`,
          reason: `${StateName.fanOut} (a distributed map) describes and stops executions of this state machine only.`,
        },
        {
          id: `AwsSolutions-IAM5[Resource::${executions}/${StateName.fanOut}:*]`,
          reason: `${StateName.fanOut} redrives the child executions of its own map runs only.`,
        },
      );
    }
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
