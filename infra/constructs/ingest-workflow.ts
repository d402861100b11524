import { type CfnResource, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { DefinitionBody, LogLevel, StateMachine, StateMachineType } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ingestWorkflowDefinition } from '../../shared/workflow/definition.ts';
import { nagRef } from './nag.ts';

/** Metadata key on the state machine resource, so tools can find the workflow in a synthesized template. */
export const WORKFLOW_METADATA_KEY = 'sluice:workflow';

/** Properties of `IngestWorkflow`. */
export interface IngestWorkflowProps {
  readonly downloadFunction: IFunction;
  readonly ingestFunction: IFunction;
  readonly silverFunction: IFunction;
  readonly reconcileFunction: IFunction;
  /** @default false */
  readonly tracing?: boolean;
  /** Longest an execution may run, retries included. @default 6 hours */
  readonly timeout?: Duration;
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

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(
        ingestWorkflowDefinition(this, {
          downloadFunction: props.downloadFunction,
          ingestFunction: props.ingestFunction,
          silverFunction: props.silverFunction,
          reconcileFunction: props.reconcileFunction,
          failureQueue: this.failureQueue,
        }),
      ),
      timeout: props.timeout ?? Duration.hours(6),
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
      ...[props.downloadFunction, props.ingestFunction, props.silverFunction, props.reconcileFunction].map(
        (fn) => ({
          id: `AwsSolutions-IAM5[Resource::${nagRef(this, fn.functionArn)}:*]`,
          reason: 'Invoking a stage function by qualified ARN (version or alias) of that one function only.',
        }),
      ),
    );
  }
}
