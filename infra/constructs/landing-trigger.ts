import { Duration, Validations } from 'aws-cdk-lib';
import { Match, Rule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type LogLevel, startExecutionEnvironment } from '../../shared/config/runtime-config.ts';
import { DOWNLOADS_PREFIX } from '../../shared/stages/download/landing-key.ts';
import { SluiceFunction } from './sluice-function.ts';

/** Properties of `LandingTrigger`. */
export interface LandingTriggerProps {
  readonly landingBucket: IBucket;
  readonly stateMachine: IStateMachine;
  readonly serviceName: string;
  /** @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** @default false */
  readonly tracing?: boolean;
}

/**
 * Landed file -> workflow execution: an EventBridge rule on the landing bucket's `Object Created` events
 * invokes the start-execution function, which starts one execution per object version.
 *
 * Both hops are asynchronous, so each has a dead-letter queue: the rule's target DLQ holds events
 * EventBridge could not deliver to Lambda; the function's DLQ holds events whose invocation failed on
 * every attempt. Either way the message is the original event and can be sent again.
 */
export class LandingTrigger extends Construct {
  readonly startExecution: SluiceFunction;
  readonly rule: Rule;
  readonly deliveryDeadLetterQueue: Queue;
  readonly invocationDeadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: LandingTriggerProps) {
    super(scope, id);
    const deadLetterQueue = (queueId: string) => {
      // SQS-managed encryption: messages are S3 event metadata, and EventBridge and Lambda can write to
      // such a queue without being granted a customer-managed key.
      const queue = new Queue(this, queueId, {
        encryption: QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
        retentionPeriod: Duration.days(14),
      });
      Validations.of(queue).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself a dead-letter queue.',
      });
      return queue;
    };
    this.deliveryDeadLetterQueue = deadLetterQueue('DeliveryDeadLetterQueue');
    this.invocationDeadLetterQueue = deadLetterQueue('InvocationDeadLetterQueue');

    this.startExecution = new SluiceFunction(this, 'StartExecution', {
      handlerDir: 'start-execution',
      description: 'Starts one workflow execution per landed object version',
      memoryMb: 256,
      timeout: Duration.seconds(30),
      tracing: props.tracing,
      environment: startExecutionEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        stateMachineArn: props.stateMachine.stateMachineArn,
      }),
      asyncDeadLetterQueue: this.invocationDeadLetterQueue,
      asyncRetryAttempts: 2,
      asyncMaxEventAge: Duration.hours(6),
    });
    props.stateMachine.grantStartExecution(this.startExecution.role);

    this.rule = new Rule(this, 'ObjectCreated', {
      description: 'Starts the ingest workflow for each object created in the landing bucket',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.landingBucket.bucketName] },
          // Files the workflow downloaded itself are ingested by that same execution.
          object: { key: Match.anythingButPrefix(DOWNLOADS_PREFIX) },
        },
      },
    });
    this.rule.addTarget(
      new LambdaFunction(this.startExecution.function, {
        deadLetterQueue: this.deliveryDeadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(24),
      }),
    );
  }
}
