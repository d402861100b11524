import type { LakeStageConfig } from '../../config/runtime-config.ts';
import type { InvocationMetering } from '../../lake/run-usage.ts';
import { type Clock, systemClock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { UsageMeter } from '../usage-meter.ts';
import { createObservability, type Observability } from './observability.ts';
import { createS3Client, S3ObjectStore } from './s3-object-store.ts';

/** What every stage working on the lake (silver, reconcile, fan-out) has on AWS. */
export interface LakeStageDeps {
  readonly config: LakeStageConfig;
  readonly lake: ObjectStore;
  readonly clock: Clock;
  readonly observability: Observability;
  /** Each invocation's usage, recorded for the run's cost (its S3 requests counted through `lake`). */
  readonly usage?: InvocationMetering;
}

/** The AWS adapters of a lake stage, created once per cold start. */
export function createLakeStageDeps(config: LakeStageConfig): LakeStageDeps {
  const client = createS3Client(config.region ? { region: config.region } : {});
  const lake = new S3ObjectStore({ client, bucket: config.lakeBucket });
  const meter = new UsageMeter();
  return {
    config,
    lake: meter.count(lake),
    clock: systemClock,
    observability: createObservability(config),
    usage: { meter, records: lake },
  };
}
