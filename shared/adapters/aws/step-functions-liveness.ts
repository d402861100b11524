import { DescribeExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { RunLiveness } from '../../ports/run-liveness.ts';

/** An execution ARN: `arn:<partition>:states:<region>:<account>:execution:<machine>:<name>`. */
const EXECUTION_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/;

/**
 * Asks Step Functions whether a lease's holder (an execution ARN) still runs. Any status but RUNNING
 * (SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE) has ended: its lease is free at once, so a
 * redrive or the next scheduled run need not wait out the lease's expiry. An execution Step Functions no
 * longer knows (past its retention) has ended too. Anything else (another holder format, a refused or
 * failed call) is "not known to have ended".
 */
export class StepFunctionsLiveness implements RunLiveness {
  readonly #client: SFNClient;
  readonly #onError: (holder: string, error: unknown) => void;

  constructor(client: SFNClient, onError: (holder: string, error: unknown) => void = () => {}) {
    this.#client = client;
    this.#onError = onError;
  }

  async hasEnded(holder: string): Promise<boolean> {
    if (!EXECUTION_ARN.test(holder)) return false;
    try {
      const out = await this.#client.send(new DescribeExecutionCommand({ executionArn: holder }));
      return out.status !== undefined && out.status !== 'RUNNING';
    } catch (error) {
      if ((error as { name?: string }).name === 'ExecutionDoesNotExist') return true;
      this.#onError(holder, error);
      return false;
    }
  }
}
