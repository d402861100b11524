import {
  CreateStateMachineCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StepFunctionsLiveness } from '../../shared/adapters/aws/step-functions-liveness.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';

const SKIP = motoSkipReason();

describe.skipIf(SKIP !== undefined)(
  `Class: StepFunctionsLiveness on moto_server${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  () => {
    let server: MotoServer;
    let sfn: SFNClient;
    let machineArn: string;

    beforeAll(async () => {
      server = await startMotoServer();
      sfn = new SFNClient({
        endpoint: server.endpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      });
      const machine = await sfn.send(
        new CreateStateMachineCommand({
          name: 'sluice-test-ingest',
          definition: JSON.stringify({
            StartAt: 'Wait',
            States: { Wait: { Type: 'Wait', Seconds: 3600, End: true } },
          }),
          roleArn: 'arn:aws:iam::123456789012:role/sluice-test',
        }),
      );
      machineArn = machine.stateMachineArn!;
    });
    afterAll(async () => {
      sfn?.destroy();
      await server?.stop();
    });

    it('answers "running" for a running execution and "ended" once it is stopped', async () => {
      const errors: unknown[] = [];
      const liveness = new StepFunctionsLiveness(sfn, (_holder, error) => errors.push(error));
      const { executionArn } = await sfn.send(
        new StartExecutionCommand({ stateMachineArn: machineArn, input: '{}' }),
      );
      expect(await liveness.hasEnded(executionArn!)).toBe(false);
      await sfn.send(new StopExecutionCommand({ executionArn, error: 'Test', cause: 'stopped by the test' }));
      expect(await liveness.hasEnded(executionArn!)).toBe(true);
      expect(errors).toEqual([]);
    });

    it('answers "ended" for an execution Step Functions does not know (past its retention)', async () => {
      const gone = `${machineArn.replace(':stateMachine:', ':execution:')}:no-such-execution`;
      expect(await new StepFunctionsLiveness(sfn).hasEnded(gone)).toBe(true);
    });

    it('never calls AWS for a holder that is not an execution ARN (a local run id), and says "not ended"', async () => {
      const errors: unknown[] = [];
      const liveness = new StepFunctionsLiveness(sfn, (_holder, error) => errors.push(error));
      expect(await liveness.hasEnded('local-6f1c2a')).toBe(false);
      expect(await liveness.hasEnded('arn:aws:states:us-east-1:123456789012:stateMachine:x')).toBe(false);
      expect(errors).toEqual([]);
    });

    it('says "not ended" when it cannot ask (the service refuses or is unreachable), and reports why', async () => {
      const unreachable = new SFNClient({
        endpoint: 'http://127.0.0.1:9',
        region: 'us-east-1',
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
        maxAttempts: 1,
      });
      const errors: unknown[] = [];
      const liveness = new StepFunctionsLiveness(unreachable, (_holder, error) => errors.push(error));
      const arn = `${machineArn.replace(':stateMachine:', ':execution:')}:some-execution`;
      expect(await liveness.hasEnded(arn)).toBe(false);
      expect(errors).toHaveLength(1);
      unreachable.destroy();
    });
  },
);
