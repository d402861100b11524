import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { PipelineError } from '../../errors.ts';
import { type DeadLetter, type DeadLetterStore, deadLetterId } from '../../ports/dead-letter-store.ts';
import { FailureMessage } from '../../workflow/stage-io.ts';

/** Options of `SqsDeadLetterStore`. */
export interface SqsDeadLetterStoreOptions {
  readonly client: SQSClient;
  /** The workflow's failure queue (the stack output `FailureQueueUrl`). */
  readonly queueUrl: string;
  /**
   * Long-poll wait of each receive. Short polls (0) ask only some of SQS's servers and may come back
   * empty while messages wait; a 1 s long poll asks all of them. @default 1
   */
  readonly waitTimeSeconds?: number;
  /**
   * How long received messages stay hidden while a listing pages through the queue; each is made visible
   * again as soon as the listing is done. A listing that takes longer fails (its first messages come back
   * before it is done, and it could not tell the end of the queue), so this is generous: a listing
   * receives 10 messages per request, a few thousand a minute.
   * @default 300
   */
  readonly visibilityTimeoutSeconds?: number;
  /** The most messages a listing takes in; a queue holding more fails the listing. @default 10000 */
  readonly maxMessages?: number;
}

/** SQS's batch limit for receive, delete and change-visibility. */
const BATCH = 10;

/**
 * The failure queue of a deployment as a `DeadLetterStore`. SQS cannot peek, so listing receives every
 * message (hiding it for a moment) and then makes each visible again; nothing is deleted except by
 * `remove`. Messages that are not the workflow's failure messages are left alone and not listed.
 */
export class SqsDeadLetterStore implements DeadLetterStore {
  readonly location: string;
  readonly #client: SQSClient;
  readonly #waitTimeSeconds: number;
  readonly #visibilityTimeoutSeconds: number;
  readonly #maxMessages: number;

  constructor(options: SqsDeadLetterStoreOptions) {
    this.#client = options.client;
    this.location = options.queueUrl;
    this.#waitTimeSeconds = options.waitTimeSeconds ?? 1;
    this.#visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 300;
    this.#maxMessages = options.maxMessages ?? 10_000;
  }

  /** Send a failure message, as the workflow's `RecordFailure` state does. */
  async record(message: FailureMessage): Promise<DeadLetter> {
    const body = FailureMessage.parse(message);
    await this.#client.send(
      new SendMessageCommand({ QueueUrl: this.location, MessageBody: JSON.stringify(body) }),
    );
    return { id: deadLetterId(body.executionId), ...body };
  }

  async list(): Promise<DeadLetter[]> {
    const received = await this.#receiveAll();
    await this.#release(received.map((r) => r.message));
    return received.flatMap((r) => (r.letter ? [r.letter] : []));
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    return (await this.list()).find((letter) => letter.id === id);
  }

  async remove(id: string): Promise<boolean> {
    const received = await this.#receiveAll();
    const matching = received.filter((r) => r.letter?.id === id).map((r) => r.message);
    const others = received.filter((r) => r.letter?.id !== id).map((r) => r.message);
    for (let i = 0; i < matching.length; i += BATCH) {
      const out = await this.#client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.location,
          Entries: matching
            .slice(i, i + BATCH)
            .map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
      if (out.Failed?.length) {
        throw new Error(
          `could not delete ${out.Failed.length} message(s) of ${id}: ${out.Failed[0]?.Message}`,
        );
      }
    }
    await this.#release(others);
    return matching.length > 0;
  }

  /**
   * Every message in the queue, each received once and hidden until released; the listing ends at the
   * first receive that brings no message it has not seen. Whatever could make that end early fails
   * instead (a listing of part of the queue would have `dlq list` and `redrive --all` pass over the rest,
   * exit 0): more than `maxMessages` messages, or a message back from an earlier receive of this
   * listing after its visibility timeout (the listing outlasted it: seen messages are coming back, and
   * unseen ones may still wait behind them).
   */
  async #receiveAll(): Promise<{ message: Message; letter?: DeadLetter }[]> {
    const seen = new Map<string, { message: Message; letter?: DeadLetter; receivedAt: number }>();
    try {
      for (;;) {
        const out = await this.#client.send(
          new ReceiveMessageCommand({
            QueueUrl: this.location,
            MaxNumberOfMessages: BATCH,
            WaitTimeSeconds: this.#waitTimeSeconds,
            VisibilityTimeout: this.#visibilityTimeoutSeconds,
            MessageSystemAttributeNames: ['SentTimestamp'],
            // The deprecated spelling too: some SQS-compatible servers read only this one.
            AttributeNames: ['All'],
          }),
        );
        const now = Date.now();
        let fresh = 0;
        for (const message of out.Messages ?? []) {
          if (!message.MessageId) continue;
          const earlier = seen.get(message.MessageId);
          if (!earlier) {
            fresh++;
            seen.set(message.MessageId, { message, letter: toLetter(message), receivedAt: now });
          } else if (now - earlier.receivedAt >= this.#visibilityTimeoutSeconds * 1000) {
            throw this.#incomplete(
              `the listing took longer than its visibility timeout (${this.#visibilityTimeoutSeconds} s), ` +
                `so messages came back before it was done (${seen.size} seen)`,
              'list again (a slow connection may have been the cause)',
            );
          } else {
            // Delivered twice while hidden (SQS delivers at least once): the newest receipt handle is the
            // one that deletes or releases it.
            earlier.message = message;
          }
        }
        if (seen.size > this.#maxMessages) {
          throw this.#incomplete(
            `the queue holds more than ${this.#maxMessages} messages, the most one listing takes in`,
            'read them with SQS itself (`aws sqs receive-message`, or the console\'s "poll for messages")',
          );
        }
        if (fresh === 0) break;
      }
    } catch (error) {
      await this.#release([...seen.values()].map((r) => r.message)).catch(() => {});
      throw error;
    }
    return [...seen.values()].map(({ message, letter }) => ({ message, ...(letter && { letter }) }));
  }

  /** Why a listing could not see the whole queue, and what to do instead. */
  #incomplete(problem: string, remedy: string): PipelineError {
    return new PipelineError(
      `cannot list the dead letters of ${this.location}: ${problem}. Nothing was listed, redriven or ` +
        `removed, and every message is visible again; ${remedy}.`,
    );
  }

  /** Make received messages visible again at once. */
  async #release(messages: readonly Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += BATCH) {
      await this.#client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.location,
          Entries: messages
            .slice(i, i + BATCH)
            .map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
        }),
      );
    }
  }
}

/** The dead letter a message holds, or undefined when it is not a failure message of the workflow. */
function toLetter(message: Message): DeadLetter | undefined {
  let body: unknown;
  try {
    body = JSON.parse(message.Body ?? '');
  } catch {
    return undefined;
  }
  const parsed = FailureMessage.safeParse(body);
  if (!parsed.success) return undefined;
  const sent = Number(message.Attributes?.SentTimestamp);
  return {
    id: deadLetterId(parsed.data.executionId),
    ...parsed.data,
    ...(Number.isFinite(sent) && sent > 0 ? { recordedAt: new Date(sent).toISOString() } : {}),
  };
}
