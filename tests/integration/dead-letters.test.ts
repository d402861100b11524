import { execFile, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { createSqsServer } from 'local-aws-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsDeadLetterStore } from '../../shared/adapters/aws/sqs-dead-letter-store.ts';
import { FolderDeadLetterStore } from '../../shared/adapters/local/folder-dead-letter-store.ts';
import { redriveToStateMachine } from '../../shared/cli/dlq-command.ts';
import { InvalidKeyError } from '../../shared/errors.ts';
import type { DeadLetterStore } from '../../shared/ports/dead-letter-store.ts';
import type { FailureMessage } from '../../shared/workflow/stage-io.ts';
import { listFiles, tempDir } from '../helpers/lake.ts';

const BIN = join(import.meta.dirname, '../../bin/sluice.js');
const STATE_MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:sluice-dev';
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/** A failure message as the workflow's RecordFailure state sends it, for execution `name`. */
const failure = (name: string, errorName = 'MalformedInputError'): FailureMessage => ({
  executionId: `arn:aws:states:us-east-1:123456789012:execution:sluice-dev:${name}`,
  input: { bucket: 'landing', key: `tic-in-network/${name}.json`, dataset: 'tic-in-network' },
  error: {
    Error: errorName,
    Cause: JSON.stringify({ errorType: errorName, errorMessage: `${name}: malformed input at byte 7` }),
  },
});

/** The behaviour both adapters share: the port's contract. */
function describeDeadLetterStore(name: string, create: () => Promise<DeadLetterStore>) {
  describe(`Contract: DeadLetterStore (${name})`, () => {
    it('lists what was recorded, by execution name, without consuming it', async () => {
      const store = await create();
      expect(await store.list()).toEqual([]);
      await store.record(failure('tic-a-0001'));
      await store.record(failure('tic-b-0002', 'TransientError'));
      const first = await store.list();
      expect(first.map((l) => l.id).sort()).toEqual(['tic-a-0001', 'tic-b-0002']);
      expect(first.find((l) => l.id === 'tic-a-0001')).toMatchObject(failure('tic-a-0001'));
      // Listing is a look, not a receive: the letters are all still there.
      expect((await store.list()).map((l) => l.id).sort()).toEqual(['tic-a-0001', 'tic-b-0002']);
    });

    it('gets one letter by id, or undefined', async () => {
      const store = await create();
      await store.record(failure('tic-c-0003'));
      expect((await store.get('tic-c-0003'))?.error.Error).toBe('MalformedInputError');
      expect(await store.get('tic-none')).toBeUndefined();
    });

    it('removes one letter and leaves the others', async () => {
      const store = await create();
      await store.record(failure('tic-d-0004'));
      await store.record(failure('tic-e-0005'));
      expect(await store.remove('tic-d-0004')).toBe(true);
      expect(await store.remove('tic-d-0004')).toBe(false);
      expect((await store.list()).map((l) => l.id)).toEqual(['tic-e-0005']);
    });
  });
}

describe('Adapter: FolderDeadLetterStore', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let n = 0;
  beforeAll(async () => {
    tmp = await tempDir('sluice-dead-letters-');
  });
  afterAll(async () => tmp.cleanup());

  describeDeadLetterStore('folder', async () => new FolderDeadLetterStore(join(tmp.dir, `lake-${++n}`)));

  it('keeps one JSON file per execution under <lake>/_dead_letters, replaced by a new failure', async () => {
    const lake = join(tmp.dir, 'files');
    const store = new FolderDeadLetterStore(lake);
    await store.record(failure('tic-f-0006'));
    await store.record(failure('tic-f-0006', 'ReconciliationError'));
    expect(await listFiles(lake)).toEqual(['_dead_letters/tic-f-0006.json']);
    expect((await store.get('tic-f-0006'))?.error.Error).toBe('ReconciliationError');
    expect(store.location).toBe(join(lake, '_dead_letters/'));
  });

  it('refuses ids that are not execution names', async () => {
    const store = new FolderDeadLetterStore(join(tmp.dir, 'ids'));
    await expect(store.get('../../etc/passwd')).rejects.toThrow(InvalidKeyError);
  });

  it('redrives nothing, exit 2, a letter of a config-defined dataset without its --config', async () => {
    const lake = join(tmp.dir, 'own-dataset');
    const store = new FolderDeadLetterStore(lake);
    await store.record({
      ...failure('events-csv-0007'),
      input: { bucket: tmp.dir, key: 'events.csv', dataset: 'events', hasSilver: true },
    });
    for (const which of [['events-csv-0007'], ['--all']]) {
      const result = spawnSync(process.execPath, [BIN, 'dlq', 'redrive', ...which, '--lake', lake], {
        encoding: 'utf8',
      });
      // Nothing ran: bad usage, not an execution that "failed again".
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/unknown dataset "events".*--config FILE/);
      expect(result.stderr).not.toContain('failed again');
    }
    expect((await store.list()).map((l) => l.id)).toEqual(['events-csv-0007']);
  });
});

describe('Adapter: SqsDeadLetterStore (against local-aws-sqs)', () => {
  let sqsServer: Server;
  let endpoint: string;
  let client: SQSClient;
  let n = 0;

  beforeAll(async () => {
    sqsServer = await createSqsServer({
      port: 0,
      hostname: '127.0.0.1',
      emulateQueueCreationLifecycle: false,
    });
    endpoint = `http://127.0.0.1:${(sqsServer.address() as AddressInfo).port}`;
    client = new SQSClient({ region: 'us-east-1', endpoint, credentials: CREDENTIALS });
  });
  afterAll(async () => {
    client?.destroy();
    await new Promise((resolve) => sqsServer?.close(resolve));
  });

  const newQueue = async () => {
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: `failures-${++n}` }));
    return QueueUrl!;
  };
  // WaitTimeSeconds 0: this server holds every long poll for its full wait, even with messages waiting.
  const storeOn = (queueUrl: string) => new SqsDeadLetterStore({ client, queueUrl, waitTimeSeconds: 0 });

  describeDeadLetterStore('SQS', async () => storeOn(await newQueue()));

  it('reads the JSON body the state machine sends, and leaves other messages alone', async () => {
    const queueUrl = await newQueue();
    await client.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'not a failure message' }));
    await client.send(
      new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(failure('tic-g-0007')) }),
    );
    const store = storeOn(queueUrl);
    const letters = await store.list();
    expect(letters.map((l) => l.id)).toEqual(['tic-g-0007']);
    expect(letters[0]!.recordedAt).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    await store.remove('tic-g-0007');
    // The foreign message is visible again at once, untouched.
    const { Messages } = await client.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    expect(Messages?.map((m) => m.Body)).toEqual(['not a failure message']);
  });

  it('leaves every message visible after a listing', async () => {
    const queueUrl = await newQueue();
    const store = storeOn(queueUrl);
    for (let i = 0; i < 12; i++) await store.record(failure(`tic-h-${String(i).padStart(4, '0')}`));
    expect(await store.list()).toHaveLength(12);
    const { Attributes } = await client.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    expect(Attributes).toMatchObject({
      ApproximateNumberOfMessages: '12',
      ApproximateNumberOfMessagesNotVisible: '0',
    });
  });

  // A listing that returned part of the queue would let `sluice dlq list` and `redrive --all` end with
  // exit 0 having shown or redriven only some of the failed runs: it fails instead, saying why.
  it('refuses to list more letters than its limit rather than return the first ones', async () => {
    const queueUrl = await newQueue();
    const store = new SqsDeadLetterStore({ client, queueUrl, waitTimeSeconds: 0, maxMessages: 5 });
    for (let i = 0; i < 8; i++) await store.record(failure(`tic-i-${String(i).padStart(4, '0')}`));
    await expect(store.list()).rejects.toThrow(/more than 5 messages/);
    // ...and leaves every message where it was.
    expect(await storeOn(queueUrl).list()).toHaveLength(8);
  });

  it('fails a listing that outlasts its visibility timeout rather than return part of the queue', async () => {
    const queueUrl = await newQueue();
    // Hidden for 0 s: every message a receive returns may come back at the next one, as they do on a
    // real queue when a listing takes longer than the visibility timeout.
    const store = new SqsDeadLetterStore({
      client,
      queueUrl,
      waitTimeSeconds: 0,
      visibilityTimeoutSeconds: 0,
    });
    for (let i = 0; i < 25; i++) await store.record(failure(`tic-j-${String(i).padStart(4, '0')}`));
    await expect(store.list()).rejects.toThrow(/visibility timeout/);
    expect(await storeOn(queueUrl).list()).toHaveLength(25);
  });

  describe('redrive to the deployed state machine', () => {
    let sfnServer: Server;
    let sfnEndpoint: string;
    const started: { target: string; body: Record<string, string> }[] = [];

    // A minimal Step Functions endpoint (AWS JSON 1.0), so the SDK's real request is what is checked.
    beforeAll(async () => {
      sfnServer = createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => {
          body += chunk.toString('utf8');
        });
        request.on('end', () => {
          const parsed = JSON.parse(body) as Record<string, string>;
          started.push({ target: String(request.headers['x-amz-target']), body: parsed });
          response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
          response.end(
            JSON.stringify({
              executionArn: `${parsed.stateMachineArn!.replace(':stateMachine:', ':execution:')}:${parsed.name}`,
              startDate: Date.now() / 1000,
            }),
          );
        });
      });
      await new Promise<void>((resolve) => sfnServer.listen(0, '127.0.0.1', resolve));
      sfnEndpoint = `http://127.0.0.1:${(sfnServer.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      await new Promise((resolve) => sfnServer?.close(resolve));
    });

    it('starts a new execution with the recorded input, then removes the message', async () => {
      const queueUrl = await newQueue();
      const store = storeOn(queueUrl);
      await store.record(failure('tic-i-0008'));
      const sfn = new SFNClient({ region: 'us-east-1', endpoint: sfnEndpoint, credentials: CREDENTIALS });
      const letter = (await store.get('tic-i-0008'))!;
      const out = await redriveToStateMachine(letter, store, {
        stateMachineArn: STATE_MACHINE,
        startExecution: (request) => sfn.send(new StartExecutionCommand(request)),
      });
      sfn.destroy();
      const request = started.at(-1)!;
      expect(request.target).toBe('AWSStepFunctions.StartExecution');
      expect(request.body.stateMachineArn).toBe(STATE_MACHINE);
      expect(request.body.name).toMatch(/^tic-i-0008-redrive-[0-9a-z]+$/);
      expect(request.body.name!.length).toBeLessThanOrEqual(80);
      expect(JSON.parse(request.body.input!)).toEqual(failure('tic-i-0008').input);
      expect(out.executionArn).toBe(`${STATE_MACHINE.replace(':stateMachine:', ':execution:')}:${out.name}`);
      expect(await store.list()).toEqual([]);
    });

    it('works from the CLI: sluice dlq list and redrive --all --queue-url', async () => {
      const queueUrl = await newQueue();
      const store = storeOn(queueUrl);
      await store.record(failure('tic-j-0009'));
      await store.record(failure('tic-k-0010'));
      // The SDK's service-specific endpoint variables point the CLI's clients at the local servers.
      const env = {
        ...process.env,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        AWS_ENDPOINT_URL_SQS: endpoint,
        AWS_ENDPOINT_URL_SFN: sfnEndpoint,
      };
      // Asynchronously: the servers answer from this process, which spawnSync would block.
      const sluice = (args: string[]) =>
        new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
          execFile(
            process.execPath,
            [BIN, 'dlq', ...args],
            { encoding: 'utf8', env },
            (error, stdout, stderr) =>
              resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
          );
        });

      const list = await sluice(['list', '--queue-url', queueUrl, '--json']);
      expect(list.status, list.stderr).toBe(0);
      const listed = list.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { id: string });
      expect(listed.map((l) => l.id).sort()).toEqual(['tic-j-0009', 'tic-k-0010']);

      const before = started.length;
      const redrive = await sluice([
        'redrive',
        '--all',
        '--queue-url',
        queueUrl,
        '--state-machine-arn',
        STATE_MACHINE,
      ]);
      expect(redrive.status, redrive.stderr).toBe(0);
      expect(redrive.stdout).toMatch(/tic-j-0009: started/);
      expect(
        started
          .slice(before)
          .map((s) => s.body.name!.replace(/-redrive-.*/, ''))
          .sort(),
      ).toEqual(['tic-j-0009', 'tic-k-0010']);
      expect(await store.list()).toEqual([]);
    });

    it('refuses a queue redrive without the state machine to start', () => {
      const result = spawnSync(
        process.execPath,
        [BIN, 'dlq', 'redrive', '--all', '--queue-url', 'http://127.0.0.1:1/123456789012/q'],
        { encoding: 'utf8' },
      );
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(/--state-machine-arn/);
    });
  });
});
