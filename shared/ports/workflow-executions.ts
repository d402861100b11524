/**
 * The workflow's executions, as the starter sees them: it starts them, and it counts the running ones
 * so that a bulk drop starts in waves. Step Functions is the adapter on AWS
 * (shared/adapters/aws/step-functions-executions.ts).
 */

/** One execution to start: its deterministic name (shared/workflow/execution.ts) and its input. */
export interface StartRequest {
  readonly name: string;
  /** The execution input, as JSON text. */
  readonly input: string;
}

/** Starts executions of the workflow. */
export interface ExecutionStarter {
  /**
   * Start one execution. Throws the service's error, named as the service names it (e.g.
   * `ExecutionAlreadyExists`, `ThrottlingException`), so the caller can tell what it means.
   */
  start(request: StartRequest): Promise<{ readonly executionArn?: string }>;
}

/** Counts the workflow's running executions. */
export interface RunningExecutionCounter {
  /** The number of RUNNING executions, counted no further than `atMost` (enough to decide). */
  countRunning(atMost: number): Promise<number>;
}
