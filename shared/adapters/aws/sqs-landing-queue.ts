import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DEFERRALS_ATTRIBUTE, type LandingQueue } from '../../ports/landing-queue.ts';

/** SQS's longest message delay. */
export const MAX_DELAY_SECONDS = 900;

/** The landing queue on SQS: a deferred event goes back as a new message, delayed. */
export class SqsLandingQueue implements LandingQueue {
  readonly #client: SQSClient;
  readonly #queueUrl: string;

  constructor(client: SQSClient, queueUrl: string) {
    this.#client = client;
    this.#queueUrl = queueUrl;
  }

  async requeue(body: string, deferrals: number, delaySeconds: number): Promise<void> {
    await this.#client.send(
      new SendMessageCommand({
        QueueUrl: this.#queueUrl,
        MessageBody: body,
        DelaySeconds: Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.round(delaySeconds))),
        MessageAttributes: {
          [DEFERRALS_ATTRIBUTE]: { DataType: 'Number', StringValue: String(deferrals) },
        },
      }),
    );
  }
}
