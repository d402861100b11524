import { ListExecutionsCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type {
  ExecutionStarter,
  RunningExecutionCounter,
  StartRequest,
} from '../../ports/workflow-executions.ts';

/** ListExecutions' largest page. */
const PAGE = 1000;

/**
 * The workflow's executions on Step Functions: StartExecution, and ListExecutions of the RUNNING ones,
 * paged only as far as the count matters. Errors pass through with the service's names
 * (`ExecutionAlreadyExists`, `ThrottlingException`, ...), which the pacing reads.
 */
export class StepFunctionsExecutions implements ExecutionStarter, RunningExecutionCounter {
  readonly #client: SFNClient;
  readonly #stateMachineArn: string;

  constructor(client: SFNClient, stateMachineArn: string) {
    this.#client = client;
    this.#stateMachineArn = stateMachineArn;
  }

  async start(request: StartRequest): Promise<{ executionArn?: string }> {
    const out = await this.#client.send(
      new StartExecutionCommand({ stateMachineArn: this.#stateMachineArn, ...request }),
    );
    return out.executionArn === undefined ? {} : { executionArn: out.executionArn };
  }

  async countRunning(atMost: number): Promise<number> {
    let count = 0;
    let nextToken: string | undefined;
    do {
      const page = await this.#client.send(
        new ListExecutionsCommand({
          stateMachineArn: this.#stateMachineArn,
          statusFilter: 'RUNNING',
          maxResults: Math.min(PAGE, Math.max(1, atMost - count)),
          nextToken,
        }),
      );
      count += page.executions?.length ?? 0;
      nextToken = page.nextToken;
    } while (nextToken !== undefined && count < atMost);
    return count;
  }
}
