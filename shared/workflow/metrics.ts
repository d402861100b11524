/**
 * The custom metrics the pipeline's handlers emit (CloudWatch Embedded Metric Format), named once so
 * that the handlers that write them and the dashboard and alarms that read them cannot drift apart.
 *
 * Every metric carries the dimension `service` (the deployment's stack name, so two deployments in one
 * account keep separate series) and `dataset`; per-record-stream counts add `recordName`.
 */

export const METRICS_NAMESPACE = 'Sluice';

export const MetricName = {
  /** 1 per source committed to bronze: what the freshness alarm counts. */
  ingestSucceeded: 'IngestSucceeded',
  /** A run whose source's current version already held its bytes: nothing rebuilt. */
  ingestUnchanged: 'IngestUnchanged',
  /** 1 per failed ingest attempt (retries included). */
  ingestFailed: 'IngestFailed',
  /** Records written to bronze, per record stream (`recordName`). */
  recordsIngested: 'RecordsIngested',
  /** Stored (possibly compressed) size of the source. */
  sourceBytes: 'SourceBytes',
  /** Bytes parsed after decompression. */
  uncompressedBytes: 'UncompressedBytes',
  /** Compressed size of the bronze parts written. */
  bronzeBytes: 'BronzeBytes',
  /** Wall-clock time of the ingest stage, over all its slices (emitted on commit). */
  ingestDuration: 'IngestDuration',
  /** Wall-clock time of one ingest slice (one invocation). */
  ingestSliceDuration: 'IngestSliceDuration',
  /** How far a sliced ingest is, 0–100 % of the stored bytes, emitted after every slice. */
  ingestProgressPercent: 'IngestProgressPercent',
  /** Records the silver stage set aside in quarantine, per build (over `RecordsIngested`: the quarantine rate). */
  quarantinedRecords: 'QuarantinedRecords',
  /** The reconciliation's 0–100 quality score of one file. */
  qualityScore: 'QualityScore',
  /** 1 per reconciliation whose counts or checksums did not add up, 0 per one that passed. */
  reconciliationFailed: 'ReconciliationFailed',
  /**
   * What a run cost up to its reconciliation, in US dollars at the deployment's `prices` (Lambda, S3
   * requests, state transitions: docs/SCALING.md), emitted by Reconcile for a run whose reconciliation
   * passed or failed (when it could be priced).
   */
  runCostUsd: 'RunCostUsd',
  /** `RunCostUsd` per GB (10^9 bytes) of the source as stored. */
  runCostUsdPerGb: 'RunCostUsdPerGb',
  /** Executions running now, per dataset (and in all, without `dataset`): a gauge, every 5 minutes. */
  executionsRunning: 'ExecutionsRunning',
  /** Minutes since the oldest running execution of a dataset started (0 when none runs), every 5 minutes. */
  oldestRunningExecutionMinutes: 'OldestRunningExecutionMinutes',
} as const;

export const Dimension = {
  service: 'service',
  dataset: 'dataset',
  recordName: 'recordName',
} as const;
