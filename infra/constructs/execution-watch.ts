import { ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type LogLevel, watchExecutionsEnvironment } from '../../shared/config/runtime-config.ts';
import { SluiceFunction } from './sluice-function.ts';

/** Properties of `ExecutionWatch`. */
export interface ExecutionWatchProps {
  readonly stateMachine: IStateMachine;
  /** The state machine's name (`workflowStateMachineName`): its executions' ARNs start with it. */
  readonly stateMachineName: string;
  /** The deployed datasets: each gets its running-executions gauges. */
  readonly datasets: readonly string[];
  readonly serviceName: string;
  /** @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** @default false */
  readonly tracing?: boolean;
  /** How often the running executions are counted. @default 5 minutes */
  readonly every?: Duration;
}

/**
 * A small scheduled function that counts the workflow's running executions and how long the oldest of
 * each dataset has run (functions/watch-executions), because Step Functions' own metrics say nothing
 * about an execution until it ends. About 8,900 invocations a month of well under a second at 256 MB:
 * inside Lambda's free tier, and cents beyond it.
 */
export class ExecutionWatch extends Construct {
  readonly watcher: SluiceFunction;
  readonly every: Duration;

  constructor(scope: Construct, id: string, props: ExecutionWatchProps) {
    super(scope, id);
    this.every = props.every ?? Duration.minutes(5);
    this.watcher = new SluiceFunction(this, 'WatchExecutions', {
      handlerDir: 'watch-executions',
      description: 'Counts the running executions of the workflow and the age of the oldest, per dataset',
      timeout: Duration.minutes(1),
      tracing: props.tracing,
      environment: watchExecutionsEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        stateMachineArn: props.stateMachine.stateMachineArn,
        datasets: props.datasets,
      }),
    });
    const role = this.watcher.role;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ListExecutions',
        actions: ['states:ListExecutions'],
        resources: [props.stateMachine.stateMachineArn],
      }),
    );
    const executions = Stack.of(this).formatArn({
      service: 'states',
      resource: 'execution',
      resourceName: `${props.stateMachineName}:*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'ReadExecutionInput',
        actions: ['states:DescribeExecution'],
        resources: [executions],
      }),
    );
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:${props.stateMachineName}:*]`,
      reason:
        "Reads the input of this state machine's running executions (to tell their dataset), whose names " +
        'are not known in advance.',
    });

    // A missed run is harmless (the next one is minutes away): no retries, no dead-letter queue.
    new Rule(this, 'Schedule', {
      description: 'Counts the running executions of the sluice workflow',
      schedule: Schedule.rate(this.every),
      targets: [new LambdaFunction(this.watcher.function, { retryAttempts: 0 })],
    });
  }
}
