import { createLakeStageDeps, type LakeStageDeps } from '../../shared/adapters/aws/lake-stage-deps.ts';
import {
  onFirstInvocation,
  parseStageEvent,
  type StageHandler,
  stageHandler,
} from '../../shared/adapters/aws/stage-handler.ts';
import { type LakeStageConfig, loadLakeStageConfig } from '../../shared/config/runtime-config.ts';
import { ConfigError } from '../../shared/errors.ts';
import type { FetchOptions } from '../../shared/stages/download/download.ts';
import { type FanOutPlan, planFanOut } from '../../shared/stages/fan-out/plan-fan-out.ts';
import { FanOutEvent, type FanOutOutput, LISTED_FILE_DATASET } from '../../shared/workflow/stage-io.ts';

/**
 * The `PlanFanOut` state of the workflow: a committed table-of-contents run -> one page of the in-network
 * files it lists, for the `FanOut` map to ingest as child executions, after recording the outcomes of the
 * page before in the run's fan-out report (shared/stages/fan-out/plan-fan-out.ts).
 *
 * Event: `{ dataset, bronzeManifestKey, executionName, page, results?, succeeded?, failed?, executionId? }`.
 * Result: `{ page, nextPage, pages, done, listed, rejected, duplicates, succeeded, failed, items, report }`.
 */

/** What the fan-out handler works with: the lake stage's adapters (AWS), or any (tests). */
export interface FanOutDeps extends LakeStageDeps {
  /** Which listed URLs are fetchable (a local run's `--allow-*`). @default https to public hosts only */
  readonly urlSafety?: FetchOptions;
  /** Listed files per page (tests). @default as planFanOut's */
  readonly pageSize?: number;
  /** The page's full plan (a local run's summary of every listed file). */
  readonly onResult?: (plan: FanOutPlan) => void;
}

/** The AWS adapters, created once per cold start. */
export const createDeps: (config: LakeStageConfig) => FanOutDeps = createLakeStageDeps;

/** Hand out the next page of a table of contents' listed files. */
export async function fanOut(event: unknown, deps: FanOutDeps): Promise<FanOutOutput> {
  const { logger } = deps.observability;
  const input = parseStageEvent(
    FanOutEvent,
    event,
    'fan-out',
    '{ "dataset", "bronzeManifestKey", "executionName", "page": number, "results"?: [...] }',
  );
  for (const dataset of [input.dataset, LISTED_FILE_DATASET]) {
    if (!deps.config.datasets.includes(dataset)) {
      throw new ConfigError(
        `dataset "${dataset}" is not deployed (deployed: ${deps.config.datasets.join(', ')}); ` +
          'a table of contents fans out into its in-network files only where both datasets are deployed',
      );
    }
  }
  logger.appendKeys({ dataset: input.dataset, bronzeManifestKey: input.bronzeManifestKey });
  const { output, plan } = await planFanOut(input, {
    lake: deps.lake,
    clock: deps.clock,
    urlSafety: deps.urlSafety,
    pageSize: deps.pageSize,
  });
  deps.onResult?.(plan);
  logger.info('fan-out page planned', {
    page: output.page,
    pages: output.pages,
    items: output.items.length,
    listed: output.listed,
    rejected: output.rejected,
    succeeded: output.succeeded,
    failed: output.failed,
    report: output.report,
  });
  return output;
}

/** The handler for one set of dependencies. */
export function createHandler(deps: FanOutDeps): StageHandler<FanOutOutput> {
  return stageHandler(deps, fanOut);
}

/** The Lambda entry point. */
export const handler = onFirstInvocation(() => createHandler(createDeps(loadLakeStageConfig('fan-out'))));
