/**
 * The queue that landing events wait in until the starter can start their executions. The starter puts
 * back what it cannot start yet; SQS is the adapter on AWS (shared/adapters/aws/sqs-landing-queue.ts).
 */
export interface LandingQueue {
  /**
   * Send a landing event to the back of the queue, visible again after `delaySeconds` (0–900), with the
   * number of times it has now been deferred.
   */
  requeue(body: string, deferrals: number, delaySeconds: number): Promise<void>;
}

/** The message attribute that carries how often a landing event was deferred (for its backoff). */
export const DEFERRALS_ATTRIBUTE = 'deferrals';
