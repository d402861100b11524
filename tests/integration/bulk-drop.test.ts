import {
  CreateStateMachineCommand,
  type ExecutionListItem,
  paginateListExecutions,
  SFNClient,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler, type StartExecutionDeps } from '../../functions/start-execution/handler.ts';
import { createObservability } from '../../shared/adapters/aws/observability.ts';
import { SqsLandingQueue } from '../../shared/adapters/aws/sqs-landing-queue.ts';
import { StepFunctionsExecutions } from '../../shared/adapters/aws/step-functions-executions.ts';
import { executionName } from '../../shared/workflow/execution.ts';
import { type PacingLimits, starterBatchSize } from '../../shared/workflow/pacing.ts';
import { FakeClock } from '../helpers/fake-clock.ts';
import { type MotoServer, motoSkipReason, startMotoServer } from '../helpers/moto-server.ts';
import { drainQueue, messagesLeft } from '../helpers/sqs-event-source.ts';

/**
 * A bulk drop, end to end on moto_server: 200 landing events (and repeated deliveries of some) in a real
 * SQS queue, read by the real starter through an emulated event source mapping, starting executions of
 * a real (moto) state machine; executions "finish" when the test stops them, a few after each batch.
 */

const FILES = 200;
const REPEATED = 20;
const LIMITS: PacingLimits = { maxStartsPerSecond: 10, maxRunningExecutions: 40, starters: 2 };
/** Executions the test stops after each starter invocation: fewer than it starts, so waves form. */
const FINISHED_PER_INVOCATION = 4;
const BUCKET = 'landing';

const skip = motoSkipReason();

describe.skipIf(skip !== undefined)(
  'Bulk drop: landing queue -> paced starter -> Step Functions (moto_server)',
  () => {
    let moto: MotoServer;
    let sfn: SFNClient;
    let sqs: SQSClient;

    beforeAll(async () => {
      moto = await startMotoServer();
      const client = {
        region: 'us-east-1',
        endpoint: moto.endpoint,
        credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      };
      sfn = new SFNClient(client);
      sqs = new SQSClient(client);
    }, 60_000);

    afterAll(async () => {
      sfn?.destroy();
      sqs?.destroy();
      await moto?.stop();
    });

    const landingEvent = (i: number) => ({
      version: '0',
      'detail-type': 'Object Created',
      source: 'aws.s3',
      detail: {
        bucket: { name: BUCKET },
        object: { key: `tic-in-network/drop/file-${i}.json.gz`, etag: `etag-${i}`, 'version-id': `v${i}` },
      },
    });

    it('starts every file exactly once, never faster than the rate nor past the cap, and drains the queue', async () => {
      // A state machine whose executions run until stopped.
      const { stateMachineArn } = await sfn.send(
        new CreateStateMachineCommand({
          name: 'sluice-bulk',
          definition: JSON.stringify({
            StartAt: 'Run',
            States: { Run: { Type: 'Wait', Seconds: 86_400, End: true } },
          }),
          roleArn: 'arn:aws:iam::123456789012:role/sluice-bulk',
        }),
      );
      const dlq = await sqs.send(new CreateQueueCommand({ QueueName: 'landing-dlq' }));
      const dlqArn = (
        await sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: dlq.QueueUrl, AttributeNames: ['QueueArn'] }),
        )
      ).Attributes!.QueueArn!;
      const { QueueUrl: queueUrl } = await sqs.send(
        new CreateQueueCommand({
          QueueName: 'landing',
          Attributes: {
            VisibilityTimeout: '5',
            RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: 5 }),
          },
        }),
      );

      // The drop: every file once, some delivered twice (EventBridge delivers at least once).
      const bodies = [
        ...Array.from({ length: FILES }, (_, i) => landingEvent(i)),
        ...Array.from({ length: REPEATED }, (_, i) => landingEvent(i * 7)),
      ].map((event) => JSON.stringify(event));
      for (let i = 0; i < bodies.length; i += 10) {
        await sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: bodies.slice(i, i + 10).map((body, j) => ({ Id: String(j), MessageBody: body })),
          }),
        );
      }

      const clock = new FakeClock();
      const calls: number[] = [];
      const executions = new StepFunctionsExecutions(sfn, stateMachineArn!);
      let requeued = 0;
      const queue = new SqsLandingQueue(sqs, queueUrl!);
      const deps: StartExecutionDeps = {
        config: {
          serviceName: 'sluice-bulk',
          logLevel: 'ERROR',
          stateMachineArn: stateMachineArn!,
          landingQueueUrl: queueUrl!,
          pacing: LIMITS,
        },
        executions: {
          countRunning: (atMost) => executions.countRunning(atMost),
          start: (request) => {
            calls.push(clock.elapsed()); // when the pacing let it start, on the injected clock
            return executions.start(request);
          },
        },
        queue: {
          requeue: (body, deferrals, delaySeconds) => {
            requeued++;
            return queue.requeue(body, deferrals, delaySeconds);
          },
        },
        clock,
        observability: createObservability({ serviceName: 'sluice-bulk', logLevel: 'SILENT' }),
        // Seconds on the real queue: short, so the test does not wait for SQS.
        backoff: { firstDelaySeconds: 1, maxDelaySeconds: 1 },
      };

      const handler = createHandler(deps);
      const report = await drainQueue({
        sqs,
        queueUrl: queueUrl!,
        batchSize: starterBatchSize(LIMITS, 60_000),
        concurrency: LIMITS.starters,
        invoke: (event) => handler(event),
        afterInvocation: async () => {
          const running: ExecutionListItem[] = [];
          for await (const page of paginateListExecutions(
            { client: sfn },
            { stateMachineArn, statusFilter: 'RUNNING' },
          )) {
            running.push(...(page.executions ?? []));
          }
          running.sort((a, b) => a.startDate!.getTime() - b.startDate!.getTime());
          for (const execution of running.slice(0, FINISHED_PER_INVOCATION)) {
            await sfn.send(new StopExecutionCommand({ executionArn: execution.executionArn }));
          }
        },
      });

      // Every file's execution exists, exactly once, and no other.
      const all: ExecutionListItem[] = [];
      for await (const page of paginateListExecutions({ client: sfn }, { stateMachineArn })) {
        all.push(...(page.executions ?? []));
      }
      const expected = Array.from({ length: FILES }, (_, i) =>
        executionName({
          bucket: BUCKET,
          key: `tic-in-network/drop/file-${i}.json.gz`,
          versionId: `v${i}`,
          etag: `etag-${i}`,
        }),
      ).sort();
      expect(all.map((e) => e.name).sort()).toEqual(expected);
      expect(report.batchItemFailures).toEqual([]);

      // None started faster than the rate: any second (on the injected clock) holds at most 10 starts.
      expect(calls.length).toBeGreaterThanOrEqual(FILES);
      const busiest = Math.max(...calls.map((at) => calls.filter((t) => t >= at && t < at + 1000).length));
      expect(busiest).toBeLessThanOrEqual(LIMITS.maxStartsPerSecond);
      // ...and the pacing is what bounded them: the drop took at least FILES / rate seconds.
      expect(Math.max(...calls) - Math.min(...calls)).toBeGreaterThanOrEqual(
        ((FILES - LIMITS.maxStartsPerSecond) / LIMITS.maxStartsPerSecond) * 1000,
      );

      // Never more running than the cap (two starters racing for the last place may add one), and the
      // cap was reached: the drop started in waves, the rest waiting in the queue meanwhile.
      const edges = all.flatMap((e) => [
        { at: e.startDate!.getTime(), delta: 1 },
        ...(e.stopDate ? [{ at: e.stopDate.getTime(), delta: -1 }] : []),
      ]);
      // A start and a stop at the same instant (the emulator's clock) are in no known order: each bound
      // is checked with the order that is kinder to it, stops first for the cap, starts first for "reached".
      const mostRunning = (startsFirst: boolean) => {
        const sign = startsFirst ? -1 : 1;
        const ordered = [...edges].sort((a, b) => a.at - b.at || sign * (a.delta - b.delta));
        let running = 0;
        let most = 0;
        for (const edge of ordered) {
          running += edge.delta;
          most = Math.max(most, running);
        }
        return most;
      };
      expect(mostRunning(false)).toBeLessThanOrEqual(LIMITS.maxRunningExecutions + LIMITS.starters - 1);
      // "Reached" allows for the test itself: after each invocation it stops a few executions, and with
      // two starters those stops can land between the other starter's count and its starts, so a wave
      // can top out up to FINISHED_PER_INVOCATION below the cap (CI once saw 39 of 40).
      expect(mostRunning(true)).toBeGreaterThanOrEqual(LIMITS.maxRunningExecutions - FINISHED_PER_INVOCATION);
      expect(requeued).toBeGreaterThan(0);

      // The queue drained, and nothing was dead-lettered.
      expect(await messagesLeft(sqs, queueUrl!)).toBe(0);
      expect(await messagesLeft(sqs, dlq.QueueUrl!)).toBe(0);
    }, 600_000);

    it('starts the rest of a batch when one event names no object version, and reports only that one failed', async () => {
      const { stateMachineArn } = await sfn.send(
        new CreateStateMachineCommand({
          name: 'sluice-unnamed',
          definition: JSON.stringify({ StartAt: 'Run', States: { Run: { Type: 'Succeed' } } }),
          roleArn: 'arn:aws:iam::123456789012:role/sluice-unnamed',
        }),
      );
      const { QueueUrl: queueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: 'landing-unnamed' }));
      // Neither a version id nor an ETag: no execution name can tell this object version from another.
      const unnamed = landingEvent(1);
      delete (unnamed.detail.object as { etag?: string }).etag;
      delete (unnamed.detail.object as { 'version-id'?: string })['version-id'];
      const event = {
        Records: [landingEvent(0), unnamed, landingEvent(2)].map((body, i) => ({
          messageId: `m${i}`,
          body: JSON.stringify(body),
        })),
      };
      const handler = createHandler({
        config: {
          serviceName: 'sluice-unnamed',
          logLevel: 'ERROR',
          stateMachineArn: stateMachineArn!,
          landingQueueUrl: queueUrl!,
          pacing: LIMITS,
        },
        executions: new StepFunctionsExecutions(sfn, stateMachineArn!),
        queue: new SqsLandingQueue(sqs, queueUrl!),
        clock: new FakeClock(),
        observability: createObservability({ serviceName: 'sluice-unnamed', logLevel: 'SILENT' }),
      });

      // The unnamed event is reported, so the queue delivers it again and then dead-letters it; its
      // batch-mates are started now, not failed with it (a thrown batch fails every message in it).
      expect(await handler(event)).toEqual({ batchItemFailures: [{ itemIdentifier: 'm1' }] });
      const started: ExecutionListItem[] = [];
      for await (const page of paginateListExecutions({ client: sfn }, { stateMachineArn })) {
        started.push(...(page.executions ?? []));
      }
      const named = (i: number) =>
        executionName({
          bucket: BUCKET,
          key: `tic-in-network/drop/file-${i}.json.gz`,
          versionId: `v${i}`,
          etag: `etag-${i}`,
        });
      expect(started.map((e) => e.name).sort()).toEqual([named(0), named(2)].sort());
    }, 60_000);
  },
);
