import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';

/**
 * What Lambda's SQS event source mapping does, for tests against a real queue (moto_server): up to
 * `concurrency` pollers each receive a batch, invoke the function with an SQS event, and delete every
 * message the function did not report in `batchItemFailures` (those reappear after their visibility
 * timeout, as on AWS). A thrown invocation leaves the whole batch.
 */

/** The result a function with ReportBatchItemFailures returns. */
export interface BatchResult {
  readonly batchItemFailures: readonly { readonly itemIdentifier: string }[];
}

/** Options of `drainQueue`. */
export interface EventSourceOptions {
  readonly sqs: SQSClient;
  readonly queueUrl: string;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly invoke: (event: unknown) => Promise<BatchResult>;
  /** Called after each invocation, before the poller receives again (e.g. to let executions end). */
  readonly afterInvocation?: () => Promise<void>;
  /** Give up (and throw) after this many receives that found messages. @default 10_000 */
  readonly maxInvocations?: number;
}

/** What a drain did. */
export interface DrainReport {
  readonly invocations: number;
  readonly batchItemFailures: string[];
}

/** Poll until the queue holds nothing (visible, in flight or delayed); every poller stops then. */
export async function drainQueue(options: EventSourceOptions): Promise<DrainReport> {
  const maxInvocations = options.maxInvocations ?? 10_000;
  const report = { invocations: 0, batchItemFailures: [] as string[] };
  const poller = async () => {
    for (;;) {
      const { Messages = [] } = await options.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: options.queueUrl,
          MaxNumberOfMessages: options.batchSize,
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
        }),
      );
      if (Messages.length === 0) {
        if ((await messagesLeft(options.sqs, options.queueUrl)) === 0) return;
        // Delayed or in another poller's hands: look again shortly.
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (++report.invocations > maxInvocations) {
        throw new Error(`the queue did not drain within ${maxInvocations} invocations`);
      }
      const result = await options.invoke(sqsEvent(Messages, options.queueUrl));
      const failed = new Set(result.batchItemFailures.map((f) => f.itemIdentifier));
      report.batchItemFailures.push(...failed);
      const done = Messages.filter((m) => !failed.has(m.MessageId!));
      if (done.length > 0) {
        await options.sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: options.queueUrl,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
          }),
        );
      }
      await options.afterInvocation?.();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, poller));
  return report;
}

/** Messages the queue still holds: visible, in flight and delayed. */
export async function messagesLeft(sqs: SQSClient, queueUrl: string): Promise<number> {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  return (
    Number(Attributes.ApproximateNumberOfMessages ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
    Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
  );
}

/** The SQS event Lambda builds from received messages. */
function sqsEvent(messages: readonly Message[], queueUrl: string) {
  return {
    Records: messages.map((m) => ({
      messageId: m.MessageId,
      receiptHandle: m.ReceiptHandle,
      body: m.Body,
      attributes: m.Attributes ?? {},
      messageAttributes: Object.fromEntries(
        Object.entries(m.MessageAttributes ?? {}).map(([name, value]) => [
          name,
          { stringValue: value.StringValue, dataType: value.DataType },
        ]),
      ),
      eventSource: 'aws:sqs',
      eventSourceARN: queueUrl,
    })),
  };
}
