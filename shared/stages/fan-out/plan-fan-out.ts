import { isIP } from 'node:net';
import type { BronzeManifest } from '../../contracts/bronze-manifest.ts';
import { ConfigError, PipelineError, UnsafeUrlError } from '../../errors.ts';
import { fanOutReportPrefix } from '../../lake/keys.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectStore } from '../../ports/object-store.ts';
import { writeRunReport } from '../../report/write-run-report.ts';
import { executionName } from '../../workflow/execution.ts';
import {
  FAN_OUT_DATASET,
  FanOutEvent,
  type FanOutOutput,
  LISTED_FILE_DATASET,
  type ListedFile,
  type ListedFileResult,
} from '../../workflow/stage-io.ts';
import { bronzeLines, readBronzeManifest, readBronzePart } from '../bronze/read-bronze.ts';
import { DOWNLOADS_PREFIX, landingKey } from '../download/landing-key.ts';
import {
  allowHint,
  classifyAddress,
  hostOf,
  isAllowed,
  parseSafeUrl,
  redactUrl,
  type UrlSafetyOptions,
} from '../download/url-safety.ts';

/**
 * The table-of-contents fan-out (the workflow's `PlanFanOut` state): a committed TiC table-of-contents run
 * -> the distinct in-network files it lists, handed to the `FanOut` map one page at a time, each page's
 * outcomes recorded in a report beside the run's bronze manifest.
 *
 * The plan is a pure function of the bronze run, the execution's name and the paging options, so every
 * call recomputes it (reading the run's bronze parts) instead of keeping state between pages, and a retried
 * or redriven call hands out the same pages with the same child execution names.
 *
 * - Order: first seen (bronze order: reporting_structure, then in_network_files); a repeated URL is
 *   counted as a duplicate and ingested once.
 * - Safety: each location must pass the download stage's URL checks (`parseSafeUrl`: https unless allowed,
 *   no credentials in it) and, when its host is an IP address, be of an allowed kind. Refused locations
 *   are reported (`plan.json`), never handed out. Host names are checked again, resolved, by `Download`.
 * - Pages: at most `pageSize` files and `pageBytes` of items, so a page and its results stay far below
 *   Step Functions' 256 KiB per state. Files that would land under the same landing key
 *   (`<dataset>/<file name>`) never share a page, so no two concurrent downloads write the same object:
 *   a later one moves to a later page.
 */

/** Listed files per page. */
export const DEFAULT_PAGE_SIZE = 200;
/** Bytes of a page's items (JSON), whatever their number. */
export const DEFAULT_PAGE_BYTES = 64 * 1024;
/** Longer locations are refused: a page must hold a useful number of them. */
export const MAX_URL_LENGTH = 4096;
/** The record stream of a table of contents' `reporting_structure[*]` elements. */
export const STRUCTURE_RECORDS = 'reporting_structure';

/** A listed location that is not handed out, and why. */
export interface RejectedLocation {
  /** Where it is listed: `reporting_structure[structureIndex].in_network_files[fileIndex]`. */
  readonly structureIndex: number;
  readonly fileIndex: number;
  /** The location as shown in messages (credentials and signature-like parameters redacted). */
  readonly url?: string;
  readonly reason: string;
}

/** A listed file as planned: its position in first-seen order and its page. */
export interface PlannedFile extends ListedFile {
  readonly index: number;
  readonly page: number;
}

/** The whole fan-out of one execution over one table-of-contents run. */
export interface FanOutPlan {
  readonly dataset: string;
  readonly runId: string;
  readonly executionName: string;
  readonly files: readonly PlannedFile[];
  /** Indexes into `files`, page by page. */
  readonly pages: readonly (readonly number[])[];
  readonly rejected: readonly RejectedLocation[];
  readonly duplicates: number;
}

export interface PlanFanOutDeps {
  readonly lake: ObjectStore;
  readonly clock: Clock;
  /** What a listed URL may point at. @default https to public hosts only, as deployed */
  readonly urlSafety?: UrlSafetyOptions;
  /** @default DEFAULT_PAGE_SIZE */
  readonly pageSize?: number;
  /** @default DEFAULT_PAGE_BYTES */
  readonly pageBytes?: number;
}

export interface PlanFanOutResult {
  /** The state's result (`$.fanOut`). */
  readonly output: FanOutOutput;
  readonly plan: FanOutPlan;
}

/** One outcome in a page report. */
export type ReportedOutcome = Pick<PlannedFile, 'index' | 'url' | 'executionName'> & ListedFileResult;

/**
 * Hand out page `event.page` of the run's listed files, after recording the outcomes of the page before
 * it. Page 0 writes `plan.json`; the call past the last page writes `summary.json` and returns `done`.
 */
export async function planFanOut(event: FanOutEvent, deps: PlanFanOutDeps): Promise<PlanFanOutResult> {
  const e = FanOutEvent.parse(event);
  if (e.dataset !== FAN_OUT_DATASET) {
    throw new ConfigError(`only ${FAN_OUT_DATASET} runs fan out; this run is of "${e.dataset}"`);
  }
  const manifest = await readBronzeManifest(deps.lake, e.bronzeManifestKey);
  if (manifest.dataset !== e.dataset) {
    throw new ConfigError(`${e.bronzeManifestKey} is a run of "${manifest.dataset}", not of "${e.dataset}"`);
  }
  const plan = await buildPlan(manifest, e.executionName, deps);
  const pages = plan.pages.length;
  if (e.page > pages) {
    throw new ConfigError(`page ${e.page} asked of a fan-out with ${pages} page(s)`);
  }
  const report = fanOutReportPrefix(manifest.dataset, manifest.runId, e.executionName);
  const now = deps.clock.now().toISOString();
  const written = { executionId: e.executionId, executionName: e.executionName, writtenAt: now };
  let { succeeded, failed } = e;

  if (e.page === 0) {
    if (e.results.length > 0) throw new PipelineError('page 0 of a fan-out has no previous page to record');
    await writeJson(deps.lake, `${report}plan.json`, {
      ...written,
      tableOfContents: { dataset: plan.dataset, runId: plan.runId, bronzeManifestKey: e.bronzeManifestKey },
      listed: plan.files.length,
      duplicates: plan.duplicates,
      pages,
      files: plan.files,
      rejected: plan.rejected,
    });
  } else {
    const previous = plan.pages[e.page - 1]!;
    if (e.results.length !== previous.length) {
      throw new PipelineError(
        `the FanOut map returned ${e.results.length} result(s) for page ${e.page - 1} of ${previous.length} file(s)`,
      );
    }
    const outcomes: ReportedOutcome[] = previous.map((index, i) => {
      const { url, executionName } = plan.files[index]!;
      return { index, url, executionName, ...e.results[i]! };
    });
    succeeded += outcomes.filter((o) => o.status === 'succeeded').length;
    failed += outcomes.filter((o) => o.status === 'failed').length;
    await writeJson(deps.lake, `${report}${pageReportName(e.page - 1)}`, {
      ...written,
      page: e.page - 1,
      outcomes,
    });
  }

  const done = e.page === pages;
  const output: FanOutOutput = {
    page: e.page,
    nextPage: e.page + 1,
    pages,
    done,
    listed: plan.files.length,
    rejected: plan.rejected.length,
    duplicates: plan.duplicates,
    succeeded,
    failed,
    items: done
      ? []
      : plan.pages[e.page]!.map((index) => {
          const { url, dataset, executionName } = plan.files[index]!;
          return { url, dataset, executionName };
        }),
    report,
  };
  if (done) {
    const { listed, rejected, duplicates } = output;
    await writeJson(deps.lake, `${report}summary.json`, {
      ...written,
      listed,
      rejected,
      duplicates,
      pages,
      succeeded,
      failed,
    });
    // The table of contents' run report gains what became of each listed file.
    await writeRunReport(deps.lake, e.bronzeManifestKey, { bronze: manifest });
  }
  return { output, plan };
}

/** The report of one page's outcomes. */
export function pageReportName(page: number): string {
  return `page-${String(page).padStart(5, '0')}.json`;
}

/** The plan of one execution over a committed table-of-contents run. */
export async function buildPlan(
  manifest: BronzeManifest,
  parentExecutionName: string,
  deps: Pick<PlanFanOutDeps, 'lake' | 'urlSafety' | 'pageSize' | 'pageBytes'>,
): Promise<FanOutPlan> {
  const { urls, rejected, duplicates } = await listedUrls(manifest, deps.lake, deps.urlSafety ?? {});
  const files = urls.map((url) => {
    const key = landingKey(LISTED_FILE_DATASET, url);
    // Named like a landed file (`<dataset>/<file>`), so the name reads as the dataset and file it ingests.
    const named = key.slice(DOWNLOADS_PREFIX.length);
    const name = executionName({
      bucket: 'fan-out',
      key: named,
      etag: `${parentExecutionName}\n${url.href}`,
    });
    return { url: url.href, dataset: LISTED_FILE_DATASET, executionName: name, landingKey: key };
  });
  const pages = pageFiles(files, deps.pageSize ?? DEFAULT_PAGE_SIZE, deps.pageBytes ?? DEFAULT_PAGE_BYTES);
  const pageOf = new Map(pages.flatMap((indexes, page) => indexes.map((index) => [index, page] as const)));
  return {
    dataset: manifest.dataset,
    runId: manifest.runId,
    executionName: parentExecutionName,
    files: files.map(({ url, dataset, executionName }, index) => ({
      index,
      url,
      dataset,
      executionName,
      page: pageOf.get(index)!,
    })),
    pages,
    rejected,
    duplicates,
  };
}

/**
 * Split files (in order) into pages of at most `pageSize` files and `pageBytes` bytes of items, each file in
 * the first page with room after the last page holding its landing key. Returns indexes, page by page.
 */
export function pageFiles(
  files: readonly (ListedFile & { readonly landingKey: string })[],
  pageSize: number,
  pageBytes: number,
): number[][] {
  if (!(Number.isSafeInteger(pageSize) && pageSize >= 1)) {
    throw new ConfigError(`the fan-out page size must be a whole number >= 1, got ${pageSize}`);
  }
  const pages: { indexes: number[]; bytes: number }[] = [];
  const lastPageOf = new Map<string, number>();
  let firstOpen = 0;
  files.forEach((file, index) => {
    const { url, dataset, executionName } = file;
    // The item as the state carries it, with a comma between items.
    const bytes = Buffer.byteLength(JSON.stringify({ url, dataset, executionName })) + 1;
    let p = Math.max(firstOpen, (lastPageOf.get(file.landingKey) ?? -1) + 1);
    for (; ; p++) {
      pages[p] ??= { indexes: [], bytes: 0 };
      const page = pages[p]!;
      if (page.indexes.length === 0) break;
      if (page.indexes.length < pageSize && page.bytes + bytes <= pageBytes) break;
    }
    pages[p]!.indexes.push(index);
    pages[p]!.bytes += bytes;
    lastPageOf.set(file.landingKey, p);
    while (pages[firstOpen] && pages[firstOpen]!.indexes.length >= pageSize) firstOpen++;
  });
  return pages.map((page) => page.indexes);
}

/** The distinct acceptable in-network file URLs of a run, in first-seen order, and what was refused. */
async function listedUrls(
  manifest: BronzeManifest,
  lake: ObjectStore,
  safety: UrlSafetyOptions,
): Promise<{ urls: URL[]; rejected: RejectedLocation[]; duplicates: number }> {
  const urls: URL[] = [];
  const seen = new Set<string>();
  const rejected: RejectedLocation[] = [];
  let duplicates = 0;
  for (const part of manifest.parts.filter((p) => p.recordName === STRUCTURE_RECORDS)) {
    const content = await readBronzePart(lake, part);
    if (content.sha256 !== part.sha256) {
      throw new PipelineError(`${part.key} does not match its manifest (sha256); re-ingest the run`);
    }
    for (const line of bronzeLines(content.text)) {
      if (line.length === 0) continue;
      const { index: structureIndex, record } = JSON.parse(line) as {
        index: number;
        record: unknown;
      };
      const listed = (record as { in_network_files?: unknown } | null)?.in_network_files;
      if (!Array.isArray(listed)) continue;
      listed.forEach((entry: unknown, fileIndex) => {
        const checked = checkLocation((entry as { location?: unknown } | null)?.location, safety);
        if ('reason' in checked) {
          rejected.push({ structureIndex, fileIndex, ...checked });
        } else if (seen.has(checked.url.href)) {
          duplicates++;
        } else {
          seen.add(checked.url.href);
          urls.push(checked.url);
        }
      });
    }
  }
  return { urls, rejected, duplicates };
}

/** A listed location as a URL to download, or why not. */
function checkLocation(
  location: unknown,
  safety: UrlSafetyOptions,
): { url: URL } | { url?: string; reason: string } {
  if (typeof location !== 'string' || location.trim() === '') {
    return { reason: 'location is not a URL string' };
  }
  if (location.length > MAX_URL_LENGTH) {
    return {
      url: `${redactUrl(location).slice(0, 200)}…`,
      reason: `longer than ${MAX_URL_LENGTH} characters`,
    };
  }
  try {
    const url = parseSafeUrl(location, safety);
    const host = hostOf(url);
    if (isIP(host) !== 0) {
      const kind = classifyAddress(host);
      if (!isAllowed(kind, safety))
        return { url: redactUrl(url), reason: `${host} is a ${kind} address${allowHint(kind)}` };
    }
    return { url };
  } catch (error) {
    if (error instanceof UnsafeUrlError) return { url: error.url, reason: error.reason };
    throw error;
  }
}

async function writeJson(lake: ObjectStore, key: string, value: unknown): Promise<void> {
  await lake.write(key, `${JSON.stringify(value, null, 2)}\n`, { contentType: 'application/json' });
}
