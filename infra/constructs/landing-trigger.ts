import { Duration, Validations } from 'aws-cdk-lib';
import { Match, Rule } from 'aws-cdk-lib/aws-events';
import { SqsQueue } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { type LogLevel, startExecutionEnvironment } from '../../shared/config/runtime-config.ts';
import { DOWNLOADS_PREFIX } from '../../shared/stages/download/landing-key.ts';
import { starterBatchSize } from '../../shared/workflow/pacing.ts';
import { SluiceFunction } from './sluice-function.ts';

/**
 * Starter invocations at once: the least an SQS event source mapping allows. Each takes half of the
 * configured rate; fewer starters means less overshoot of the running-executions cap when they race.
 */
export const STARTER_CONCURRENCY = 2;
/** Receives of a landing event that failed to start (not deferred) before it is dead-lettered. */
export const LANDING_MAX_RECEIVE_COUNT = 5;

/** Properties of `LandingTrigger`. */
export interface LandingTriggerProps {
  readonly landingBucket: IBucket;
  readonly stateMachine: IStateMachine;
  readonly serviceName: string;
  /** How fast, and how far, bulk drops start (deployment config `pacing`). */
  readonly pacing: { readonly maxStartsPerSecond: number; readonly maxRunningExecutions: number };
  /** @default 'INFO' */
  readonly logLevel?: LogLevel;
  /** @default false */
  readonly tracing?: boolean;
}

/**
 * Landed file -> workflow execution, paced: an EventBridge rule sends the landing bucket's `Object Created`
 * events to the landing queue; the start-execution function reads it (an SQS event source mapping with
 * at most `STARTER_CONCURRENCY` invocations) and starts one execution per object version, at most
 * `pacing.maxStartsPerSecond` and while fewer than `pacing.maxRunningExecutions` run. What it cannot
 * start yet it sends back to the queue, delayed; so 1,000 files dropped at once start in waves.
 *
 * Nothing is lost on the way: events EventBridge cannot deliver go to the delivery dead-letter queue;
 * events that fail to start `LANDING_MAX_RECEIVE_COUNT` times go to the landing dead-letter queue. Either
 * way the message is the original event and can be sent to the landing queue again.
 */
export class LandingTrigger extends Construct {
  readonly startExecution: SluiceFunction;
  readonly rule: Rule;
  readonly landingQueue: Queue;
  readonly deliveryDeadLetterQueue: Queue;
  readonly landingDeadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: LandingTriggerProps) {
    super(scope, id);
    // SQS-managed encryption: messages are S3 event metadata, and EventBridge can write to such a queue
    // without being granted a customer-managed key.
    const queueDefaults = {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    };
    const deadLetterQueue = (queueId: string) => {
      const queue = new Queue(this, queueId, queueDefaults);
      Validations.of(queue).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason: 'This queue is itself a dead-letter queue.',
      });
      return queue;
    };
    this.deliveryDeadLetterQueue = deadLetterQueue('DeliveryDeadLetterQueue');
    this.landingDeadLetterQueue = deadLetterQueue('LandingDeadLetterQueue');

    const timeout = Duration.seconds(60);
    this.landingQueue = new Queue(this, 'LandingQueue', {
      ...queueDefaults,
      // AWS's advice for an event source mapping: six times the function's timeout, so a batch being
      // retried after throttling is not delivered a second time meanwhile.
      visibilityTimeout: Duration.seconds(timeout.toSeconds() * 6),
      deadLetterQueue: { queue: this.landingDeadLetterQueue, maxReceiveCount: LANDING_MAX_RECEIVE_COUNT },
    });

    const pacing = { ...props.pacing, starters: STARTER_CONCURRENCY };
    this.startExecution = new SluiceFunction(this, 'StartExecution', {
      handlerDir: 'start-execution',
      description: 'Starts one workflow execution per landed object version, paced',
      memoryMb: 256,
      timeout,
      tracing: props.tracing,
      environment: startExecutionEnvironment({
        serviceName: props.serviceName,
        logLevel: props.logLevel ?? 'INFO',
        stateMachineArn: props.stateMachine.stateMachineArn,
        landingQueueUrl: this.landingQueue.queueUrl,
        pacing,
      }),
    });
    const role = this.startExecution.role;
    props.stateMachine.grantStartExecution(role);
    role.addToPrincipalPolicy(
      new PolicyStatement({
        sid: 'CountRunningExecutions',
        actions: ['states:ListExecutions'],
        resources: [props.stateMachine.stateMachineArn],
      }),
    );
    // Deferred events go back to the landing queue (receiving and deleting come with the mapping).
    this.landingQueue.grantSendMessages(role);
    this.startExecution.function.addEventSource(
      new SqsEventSource(this.landingQueue, {
        batchSize: starterBatchSize(pacing, timeout.toMilliseconds()),
        reportBatchItemFailures: true,
        maxConcurrency: STARTER_CONCURRENCY,
      }),
    );

    this.rule = new Rule(this, 'ObjectCreated', {
      description: 'Queues the ingest workflow for each object created in the landing bucket',
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
      new SqsQueue(this.landingQueue, {
        deadLetterQueue: this.deliveryDeadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(24),
      }),
    );
  }
}
