import { parentPort, threadId, workerData } from 'node:worker_threads';
import { CountingObjectStore } from '../../adapters/counting-object-store.ts';
import { createParquetTableWriter } from '../../adapters/duckdb/parquet-table-writer.ts';
import { buildSilverGroup } from './silver-group.ts';
import {
  openLake,
  resolveContract,
  type SilverWorkerCancel,
  type SilverWorkerMessage,
  type SilverWorkerTask,
} from './silver-worker-protocol.ts';
import { serializeError } from './worker-errors.ts';

/**
 * A worker thread that builds one silver group (loaded by silver-worker-bootstrap.mjs): it opens the
 * lake and resolves the contract from the task's descriptions, runs `buildSilverGroup` with its own
 * DuckDB (one thread, the task's memory limit), reports each part, then the result or the error.
 */

const port = parentPort!;
const task = (workerData as { task: SilverWorkerTask }).task;
const post = (message: SilverWorkerMessage) => port.postMessage(message);

const cancelled = new AbortController();
const onCancel = (message: SilverWorkerCancel) => {
  if (message.type === 'cancel') cancelled.abort();
};
port.on('message', onCancel);

// Counted, so the invocation that handed the group here is billed for its reads too.
const lake = new CountingObjectStore(openLake(task.lake));
try {
  const result = await buildSilverGroup(
    { bronzeManifestKey: task.bronzeManifestKey, group: task.group, buckets: task.buckets },
    {
      lake,
      contract: resolveContract(task.contract),
      createTableWriter: (tables, dir, options) =>
        createParquetTableWriter(tables, dir, { ...options, memoryLimit: task.memoryLimit, partial: true }),
      workDir: task.workDir,
      // Worker threads share the cores with each other: overlapping would buy little and cost memory.
      overlapWrites: false,
      bronze: task.bronze,
      onPart: (records) => post({ type: 'part', records }),
      signal: cancelled.signal,
    },
  );
  post({ type: 'done', result: { ...result, threadId, s3Requests: lake.requests() } });
} catch (error) {
  post({ type: 'failed', error: serializeError(error) });
} finally {
  // Nothing else keeps the thread alive: it exits once the answer is sent.
  port.off('message', onCancel);
}
