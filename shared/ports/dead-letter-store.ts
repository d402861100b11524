import { executionNameOf } from '../workflow/execution.ts';
import type { FailureMessage } from '../workflow/stage-io.ts';

/**
 * One execution that failed for good: what the workflow's `RecordFailure` state recorded (the execution
 * id, its input, the error), under the execution's name.
 */
export interface DeadLetter extends FailureMessage {
  /** The failed execution's name (the last segment of its id): one per landed object version. */
  readonly id: string;
  /** When it was recorded (ISO 8601), where the backend keeps that. */
  readonly recordedAt?: string;
}

/**
 * Where failed executions wait to be looked at and redriven: a folder in the local lake, or the failure
 * queue of a deployment. Letters are found by id; recording a letter with an id already present replaces
 * it where the backend allows (a folder), or adds a duplicate that `remove` also removes (a queue).
 */
export interface DeadLetterStore {
  /** Where the letters are, for messages: a folder or a queue URL. */
  readonly location: string;
  /** Keep the failure of one execution. */
  record(message: FailureMessage): Promise<DeadLetter>;
  /** Every letter, oldest first where the backend knows the order. */
  list(): Promise<DeadLetter[]>;
  /** The letter with this id, or undefined. */
  get(id: string): Promise<DeadLetter | undefined>;
  /** Remove the letter (all copies of it); false if there was none. */
  remove(id: string): Promise<boolean>;
}

/** The id of a dead letter: the execution's name, i.e. the last `:` segment of its id (ARN). */
export function deadLetterId(executionId: string): string {
  return executionNameOf(executionId);
}
