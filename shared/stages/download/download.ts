import type { LookupAddress } from 'node:dns';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import {
  ChecksumMismatchError,
  ConfigError,
  DownloadError,
  TransientError,
  UnsafeUrlError,
} from '../../errors.ts';
import type { Clock } from '../../ports/clock.ts';
import type { ObjectInfo, ObjectStore, UploadingObjectStore } from '../../ports/object-store.ts';
import type { SecretStore } from '../../ports/secret-store.ts';
import type { SliceBudget } from '../bronze/ingest-to-bronze.ts';
import {
  type AppliedCredentials,
  applyCredentials,
  type CredentialsRef,
  scrub,
  scrubError,
} from './credentials.ts';
import { downloadCheckpointKey, readDownloadCheckpoint } from './download-checkpoint.ts';
import { httpGet, networkError, type OpenResponse } from './http-get.ts';
import { landingKey, normalizeSourceUrl } from './landing-key.ts';
import { type DownloadIdentity, LandingUpload, prepareHasher } from './landing-upload.ts';
import { partSizeFor } from './part-size.ts';
import { CircuitBreaker, HostLimiter, isRetryable, parseRetryAfter, retryPolicy } from './resilience.ts';
import { parseSafeUrl, redactUrl, resolveSafeAddress, type UrlSafetyOptions } from './url-safety.ts';

/** What to download, and where it lands. This is a state payload: it names secrets, never holds them. */
export interface DownloadInput {
  /** The source URL; untrusted (see `url-safety.ts`). Must not contain credentials. */
  readonly url: string;
  /** The dataset, the first segment of the landing key. */
  readonly dataset: string;
  /** Expected sha256 of the whole body (hex); on mismatch nothing lands. */
  readonly sha256?: string;
  readonly credentials?: CredentialsRef;
  /** The largest body accepted, in bytes. @default no limit */
  readonly maxBytes?: number;
}

/** How downloads talk to the network. */
export interface FetchOptions extends UrlSafetyOptions {
  /** Milliseconds to connect (TCP + TLS). @default 10_000 */
  readonly connectTimeoutMs?: number;
  /** Milliseconds without a byte (headers or body) before the attempt is abandoned. @default 30_000 */
  readonly idleTimeoutMs?: number;
  /** HTTP attempts in all, the first included. @default 5 */
  readonly maxAttempts?: number;
  /** Backoff ceiling of the first retry, doubling per retry (full jitter). @default 500 */
  readonly baseDelayMs?: number;
  /** The longest wait between attempts, `Retry-After` included. @default 20_000 */
  readonly maxDelayMs?: number;
  /** Redirects followed per attempt, each re-checked like the first URL. @default 5 */
  readonly maxRedirects?: number;
  /** Extra trusted CA certificates (PEM) for https sources behind a private CA. @default none */
  readonly ca?: string | readonly string[];
  /** Per-host circuit breaker. @default one shared by every download in this process */
  readonly circuitBreaker?: CircuitBreaker;
  /** Per-host rate and concurrency limit. @default one shared by every download in this process */
  readonly hostLimiter?: HostLimiter;
}

/** One retry about to happen, for logs; `error` is redacted like every message of this stage. */
export interface RetryEvent {
  /** The attempt that failed (1 = the first). */
  readonly attempt: number;
  readonly delayMs: number;
  /** `<error name>: <message>`. */
  readonly error: string;
}

export interface DownloadDeps {
  readonly landing: UploadingObjectStore;
  readonly secrets: SecretStore;
  readonly clock: Clock;
  readonly fetchOptions?: FetchOptions;
  /** Called before each retry, e.g. to log it. */
  readonly onRetry?: (event: RetryEvent) => void;
  /**
   * This invocation's budget, asked after each part: once it says stop, the download checkpoints and
   * returns `partial`, and the next invocation continues (on Lambda: its remaining time; locally
   * `--slice-seconds`). @default none: the download runs to its end
   */
  readonly budget?: SliceBudget;
  /** Where the part being received is spooled; must hold one part. @default the OS temp dir */
  readonly scratchDir?: string;
  /** Bytes per part, instead of `partSizeFor` the declared size (tests: small parts). */
  readonly partBytes?: number;
}

/** What one invocation of `downloadToLanding` achieved. */
export type DownloadOutcome = DownloadResult | DownloadPartial;

/**
 * The invocation's budget ran out before the body's end: the parts so far are uploaded and recorded in
 * the checkpoint, and the next invocation (the workflow's `DownloadDone?` loop) continues from there.
 */
export interface DownloadPartial {
  readonly status: 'partial';
  /** The landing key the download will complete into. */
  readonly key: string;
  /** Where the download's state is kept (beside the landing key). */
  readonly checkpointKey: string;
  /** Bytes uploaded so far: the next request's Range offset. */
  readonly bytes: number;
  /** The body's size, when the server said. */
  readonly totalBytes?: number;
  readonly parts: number;
  /** Invocations of this download so far, this one included. */
  readonly invocations: number;
}

export interface DownloadResult {
  readonly status: 'landed';
  /** The landing key: `<dataset>/<safe file name>`. */
  readonly key: string;
  readonly bytes: number;
  /** sha256 of the landed bytes, hex. */
  readonly sha256: string;
  /** HTTP attempts made (redirect hops not counted). */
  readonly attempts: number;
  /** Whether the landed bytes came from more than one response joined with `Range`. */
  readonly resumed: boolean;
  /** Invocations the download took (more than one when it continued from a checkpoint). */
  readonly invocations: number;
  /**
   * The server said the source has not changed since the last download (HTTP 304 to `If-None-Match` /
   * `If-Modified-Since`): nothing was fetched, and the landed object is the one already there.
   */
  readonly notModified?: boolean;
}

/** What a download remembers beside its landed object, to ask the server next time "changed since?". */
interface LandedValidators {
  readonly etag?: string;
  readonly lastModified?: string;
  readonly sha256: string;
  readonly bytes: number;
}

type Optional = 'ca' | 'resolve' | 'circuitBreaker' | 'hostLimiter';
type Settings = Required<Omit<FetchOptions, Optional>> & Pick<FetchOptions, Optional>;

const USER_AGENT = 'sluice (+data ingestion)';
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NO_CREDENTIALS: AppliedCredentials = { headers: {}, redactParams: [], secrets: [] };

/**
 * Politeness and circuit state are per process, not per call: a warm Lambda or a local run with many
 * sources must see every request to a host. Created on first use, and replaceable through `fetchOptions`.
 */
let processHosts: { breaker: CircuitBreaker; limiter: HostLimiter } | undefined;

/**
 * Downloads `input.url` into the landing store under `<dataset>/<file name>`, streaming (the body is never
 * held in memory), with retries, resume, size and checksum checks. The object appears only when complete
 * and verified; on failure nothing is left under the key. Secret values never appear in the result or in
 * any error: URLs are redacted and messages scrubbed.
 *
 * With a `budget`, one call is one invocation: when the budget runs out (asked after each part) it returns
 * `partial`, leaving a checkpoint, and the next call continues from it (see `LandingUpload`).
 *
 * Throws `TransientError` (5xx, 429, resets, timeouts, open circuit, after the attempts run out),
 * `DownloadError` (4xx, too large, too many redirects), `UnsafeUrlError`, `ChecksumMismatchError`,
 * `ConfigError` or `SecretNotFoundError` (credentials), or the landing store's own error.
 */
export async function downloadToLanding(input: DownloadInput, deps: DownloadDeps): Promise<DownloadOutcome> {
  const settings = withDefaults(deps.fetchOptions);
  const url = parseSafeUrl(input.url, settings);
  const key = landingKey(input.dataset, url);
  if (input.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(input.sha256)) {
    throw new ConfigError(`download ${redactUrl(url)}: sha256 must be 64 hex digits`);
  }
  if (input.maxBytes !== undefined && !(Number.isSafeInteger(input.maxBytes) && input.maxBytes >= 0)) {
    throw new ConfigError(`download ${redactUrl(url)}: maxBytes must be an integer >= 0`);
  }
  const credentials = input.credentials
    ? await applyCredentials(input.credentials, deps.secrets)
    : NO_CREDENTIALS;
  // One listing of the URL's folder says what is there: the landed object, its validators, a checkpoint.
  const folder = new Map<string, ObjectInfo>();
  for await (const object of deps.landing.list(key.slice(0, key.lastIndexOf('/') + 1))) {
    folder.set(object.key, object);
  }
  const previous = await readValidators(deps.landing, key, folder);
  await prepareHasher();
  try {
    return await new Transfer(input, deps, settings, url, key, credentials, previous, folder).run();
  } catch (error) {
    throw scrubError(error, credentials.secrets);
  }
}

/** The final response of a request (after its redirects), and the URL that gave it. */
interface Hop extends OpenResponse {
  readonly url: URL;
}

/** A retryable HTTP status; its name stays `TransientError`. */
class HttpStatusError extends TransientError {
  constructor(
    shownUrl: string,
    readonly status: number,
    statusText: string | undefined,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`${shownUrl}: HTTP ${status}${statusText ? ` ${statusText}` : ''}`);
  }
}

/**
 * One download across its attempts in this invocation, continuing a checkpoint when there is one.
 *
 * The body goes straight into a `LandingUpload`: a multipart upload fed part by part (each part spooled
 * to scratch space, uploaded when full, then recorded in the checkpoint with the sha256 state at its
 * end), rather than downloaded to a temp file and uploaded afterwards. Sources are huge and Lambda's /tmp
 * is small, and the upload runs while the download does. A dropped connection resumes with `Range` from
 * the last byte received; an invocation whose budget runs out stops after a part and the next one resumes
 * with `Range` from the checkpoint, `If-Range` on the first response's validator. When resuming is
 * impossible (no range support, a 200 to a Range request, a changed ETag) the upload is aborted and a new
 * one starts from byte 0. The checksum is checked before the upload completes, so a mismatch lands nothing.
 */
class Transfer {
  readonly #input: DownloadInput;
  readonly #deps: DownloadDeps;
  readonly #settings: Settings;
  readonly #url: URL;
  readonly #key: string;
  readonly #credentials: AppliedCredentials;
  readonly #breaker: CircuitBreaker;
  readonly #limiter: HostLimiter;
  /** The objects in the landing key's folder when the download began. */
  readonly #folder: ReadonlyMap<string, ObjectInfo>;

  #upload: LandingUpload | undefined;
  /** Size of the whole body, when the server said. */
  #total: number | undefined;
  #etag: string | undefined;
  #lastModified: string | undefined;
  #acceptsRanges = false;
  /** A 200 with the same validators answered a Range request: the server does not do ranges. */
  #rangesIgnored = false;
  #resumed = false;
  /** The budget ran out: the invocation ends after the part it just uploaded. */
  #paused = false;
  /** The last download's validators (sent as If-None-Match / If-Modified-Since), and whether a 304 came. */
  readonly #previous: LandedValidators | undefined;
  #notModified = false;

  constructor(
    input: DownloadInput,
    deps: DownloadDeps,
    settings: Settings,
    url: URL,
    key: string,
    credentials: AppliedCredentials,
    previous: LandedValidators | undefined,
    folder: ReadonlyMap<string, ObjectInfo>,
  ) {
    this.#previous = previous;
    this.#input = input;
    this.#deps = deps;
    this.#settings = settings;
    this.#url = url;
    this.#key = key;
    this.#credentials = credentials;
    this.#folder = folder;
    processHosts ??= { breaker: new CircuitBreaker(), limiter: new HostLimiter() };
    this.#breaker = settings.circuitBreaker ?? processHosts.breaker;
    this.#limiter = settings.hostLimiter ?? processHosts.limiter;
  }

  /** Bytes received (hashed) so far, checkpointed ones included. */
  get #received(): number {
    return this.#upload?.bytes ?? 0;
  }

  async run(): Promise<DownloadOutcome> {
    let attempts = 0;
    try {
      await this.#continueCheckpoint();
      const retries = retryPolicy(this.#settings);
      retries.onRetry((event) => {
        const { name, message } = ('error' in event ? event.error : {}) as Partial<Error>;
        this.#deps.onRetry?.({
          attempt: event.attempt,
          delayMs: event.delay,
          error: scrub(`${name}: ${message}`, this.#credentials.secrets),
        });
      });
      try {
        await retries.execute(({ attempt }) => {
          attempts = attempt + 1;
          return this.#attempt();
        });
      } catch (error) {
        if (!isRetryable(error)) throw error;
        throw new TransientError(
          `download of ${this.#show(this.#url)} to landing key ${this.#key} gave up after ${attempts} attempts: ${(error as Error).message}`,
          { cause: error },
        );
      }
      if (this.#paused) return this.#partial();
      return await this.#complete(attempts);
    } catch (error) {
      await this.#afterFailure(error);
      throw error;
    } finally {
      await this.#upload?.close();
    }
  }

  /**
   * A failed invocation keeps what a retry can continue (a transient failure after whole parts of a
   * resumable source); anything else is aborted, checkpoint included, so nothing is left behind.
   */
  async #afterFailure(error: unknown): Promise<void> {
    const upload = this.#upload;
    if (!upload) return;
    const keep =
      error instanceof TransientError &&
      upload.checkpoint.parts.length > 0 &&
      upload.checkpoint.source.resumable;
    if (!keep) await upload.discard().catch(() => {});
  }

  /**
   * Continues the checkpoint an earlier invocation left, if it still matches its upload; one that does
   * not (its upload gone, another source, unreadable) is removed and its upload aborted: this download
   * then starts from byte 0.
   */
  async #continueCheckpoint(): Promise<void> {
    const { landing } = this.#deps;
    const checkpointKey = downloadCheckpointKey(this.#key);
    const listed = this.#folder.get(checkpointKey);
    if (!listed) return;
    const found = await readDownloadCheckpoint(landing, listed);
    const resumed = found
      ? await LandingUpload.resume(this.#uploadDeps(), this.#identity(), found.checkpoint, found.etag)
      : 'it is unreadable';
    if (typeof resumed !== 'string') {
      this.#upload = resumed;
      const { source } = resumed.checkpoint;
      this.#etag = source.etag;
      this.#lastModified = source.lastModified;
      this.#total = source.totalBytes;
      this.#acceptsRanges = true;
      return;
    }
    if (found) await landing.abortUpload(found.checkpoint.key, found.checkpoint.uploadId).catch(() => {});
    await landing.delete(checkpointKey);
    this.#deps.onRetry?.({
      attempt: 0,
      delayMs: 0,
      error: `the checkpoint ${landing.uri(checkpointKey)} was discarded (${resumed}): starting from byte 0`,
    });
  }

  /** One HTTP attempt: from byte `#received` when resuming, else from 0. Resolves when the body is complete. */
  async #attempt(): Promise<void> {
    // Without range support, or without a validator that tells the rest is of the same version (a file
    // replaced between two ranges would be spliced: the old one's head, the new one's tail), the bytes
    // already written are of no use: begin again.
    if (this.#received > 0 && !this.#resumable()) await this.#restart();
    const resuming = this.#received > 0;
    const headers: OutgoingHttpHeaders = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity' };
    // A scheduled or repeated download of an unchanged source costs a request, not the whole file.
    if (!resuming && this.#previous?.etag) headers['if-none-match'] = this.#previous.etag;
    if (!resuming && this.#previous?.lastModified) headers['if-modified-since'] = this.#previous.lastModified;
    if (resuming) {
      headers.range = `bytes=${this.#received}-`;
      // If-Range: "send the rest if it is still the same version, else all of it" (a 200 we restart on).
      const validator = this.#etag && !this.#etag.startsWith('W/') ? this.#etag : this.#lastModified;
      if (validator) headers['if-range'] = validator;
    }
    await this.#request(headers, (hop) => this.#receive(hop, resuming));
  }

  /**
   * Sends the request, following redirects (each hop checked and pinned like the first URL), and hands
   * the final response to `receive`. Each hop holds a slot of its host's limiter while it is open, the
   * final one until `receive` is done; its host's circuit judges it by its response headers.
   */
  async #request(headers: OutgoingHttpHeaders, receive: (hop: Hop) => Promise<void>): Promise<void> {
    let url = this.#url;
    let from: URL | undefined;
    for (let redirects = 0; ; redirects++) {
      const shown = this.#show(url);
      const address = await resolveSafeAddress(url, this.#settings).catch((error: unknown) => {
        if (!(error instanceof UnsafeUrlError)) throw networkError(error, shown);
        throw from
          ? new UnsafeUrlError(shown, `${error.reason}; redirected to by ${this.#show(from)}`)
          : error;
      });
      const hopUrl = url;
      const host = hopUrl.host;
      const next = await this.#limiter.run(host, async () => {
        const opened = await this.#breaker.execute(host, () => this.#send(hopUrl, address, headers, shown));
        try {
          const status = opened.response.statusCode ?? 0;
          if (REDIRECT_STATUSES.has(status)) return this.#redirectTarget(hopUrl, opened.response, redirects);
          await receive({ ...opened, url: hopUrl });
          return undefined;
        } finally {
          // No-ops after a complete body; otherwise they close the connection (agent: false, nothing pooled).
          opened.response.destroy();
          opened.request.destroy();
        }
      });
      if (next === undefined) return;
      from = url;
      url = next;
    }
  }

  /**
   * One GET to its response headers. A retryable status is thrown as `HttpStatusError`, carrying the
   * server's `Retry-After`: a failure for the host's circuit and for the retry policy alike.
   */
  async #send(
    url: URL,
    address: LookupAddress,
    headers: OutgoingHttpHeaders,
    shown: string,
  ): Promise<OpenResponse> {
    const s = this.#settings;
    const opened = await httpGet(this.#withQueryCredential(url), address, this.#headersFor(url, headers), {
      connectTimeoutMs: s.connectTimeoutMs,
      idleTimeoutMs: s.idleTimeoutMs,
      ca: s.ca,
      shownUrl: shown,
    });
    const { request, response } = opened;
    const status = response.statusCode ?? 0;
    if (!isRetryableStatus(status)) return opened;
    const retryAfter = parseRetryAfter(header(response, 'retry-after'), this.#deps.clock.now());
    response.destroy();
    request.destroy();
    throw new HttpStatusError(shown, status, response.statusMessage, retryAfter);
  }

  /** The checked URL a redirect points to. */
  #redirectTarget(from: URL, response: IncomingMessage, redirects: number): URL {
    const status = response.statusCode;
    const shown = this.#show(from);
    if (redirects >= this.#settings.maxRedirects) {
      throw new DownloadError(
        this.#show(this.#url),
        status,
        `more than ${this.#settings.maxRedirects} redirects (the last from ${shown})`,
      );
    }
    const location = response.headers.location;
    if (!location)
      throw new DownloadError(shown, status, `HTTP ${status} redirect without a Location header`);
    let target: URL;
    try {
      target = new URL(location, from);
    } catch {
      throw new DownloadError(shown, status, `HTTP ${status} redirect to an invalid Location`);
    }
    try {
      // Scheme (no https -> http downgrade unless allowed) and userinfo here; the address at the next hop.
      return parseSafeUrl(target.href, this.#settings);
    } catch (error) {
      if (!(error instanceof UnsafeUrlError)) throw error;
      throw new UnsafeUrlError(this.#show(target), `${error.reason}; redirected to by ${shown}`);
    }
  }

  /** Reads one response into the upload, or throws why it cannot. */
  async #receive(hop: Hop, resuming: boolean): Promise<void> {
    const { response } = hop;
    const status = response.statusCode ?? 0;
    const shown = this.#show(hop.url);
    if (status === 304 && !resuming && this.#previous) {
      this.#notModified = true;
      return;
    }
    if (status === 200) {
      // A 200 to a Range request: If-Range saw a new version, or the server does not do ranges after
      // all (the same validators as before), which then holds for the rest of this download.
      if (resuming) {
        this.#rangesIgnored ||=
          header(response, 'etag') === this.#etag && header(response, 'last-modified') === this.#lastModified;
        await this.#restart();
      }
      this.#etag = header(response, 'etag');
      this.#lastModified = header(response, 'last-modified');
      this.#acceptsRanges =
        header(response, 'accept-ranges')?.toLowerCase() === 'bytes' && !this.#rangesIgnored;
      this.#total = contentLength(response);
    } else if (status === 206 && resuming) {
      const problem = this.#resumeProblem(response);
      if (problem) {
        await this.#restart();
        throw new TransientError(`${shown}: cannot resume (${problem}); starting again from byte 0`);
      }
      this.#total ??= parseContentRange(header(response, 'content-range'))?.total;
      this.#resumed = true;
    } else if (status === 416 && resuming) {
      // The checkpoint ended exactly at the end of a body of unknown length: nothing is missing.
      const unsatisfied = /^bytes \*\/(\d+)$/.exec(header(response, 'content-range')?.trim() ?? '');
      if (unsatisfied && Number(unsatisfied[1]) === this.#received) {
        this.#total = this.#received;
        return;
      }
      const from = this.#received;
      await this.#restart();
      throw new TransientError(`${shown}: HTTP 416 for bytes=${from}-; starting again from byte 0`);
    } else {
      const text = response.statusMessage ? ` ${response.statusMessage}` : '';
      throw new DownloadError(shown, status, `HTTP ${status}${text}`);
    }

    const { maxBytes } = this.#input;
    if (maxBytes !== undefined && this.#total !== undefined && this.#total > maxBytes) {
      throw new DownloadError(
        shown,
        status,
        `the body is ${this.#total} bytes, more than maxBytes (${maxBytes})`,
      );
    }
    this.#upload ??= await this.#startUpload(shown, status);
    const upload = this.#upload;
    try {
      await readBody(response, this.#settings.idleTimeoutMs, shown, async (chunk) => {
        if (maxBytes !== undefined && this.#received + chunk.length > maxBytes) {
          throw new DownloadError(shown, status, `the body is more than maxBytes (${maxBytes}) bytes`);
        }
        if (await upload.push(chunk, () => this.#shouldPause(shown))) throw new PausedSignal();
      });
    } catch (error) {
      if (error instanceof PausedSignal) {
        this.#paused = true;
        return;
      }
      if (!(error instanceof NetworkReadError)) throw error;
      throw networkError(error.cause, shown, this.#received);
    }
    if (this.#total !== undefined && this.#received < this.#total) {
      throw new TransientError(`${shown}: the body ended after ${this.#received} of ${this.#total} bytes`);
    }
  }

  /** The upload of a new download, its parts sized for the declared body. */
  async #startUpload(shown: string, status: number): Promise<LandingUpload> {
    const partBytes = this.#deps.partBytes ?? partSizeFor(this.#total);
    if (partBytes === undefined) {
      throw new DownloadError(
        shown,
        status,
        `the body is ${this.#total} bytes, more than the largest object S3 can store (5 TiB)`,
      );
    }
    return LandingUpload.start(this.#uploadDeps(), this.#identity(), partBytes, {
      ...(this.#etag !== undefined && { etag: this.#etag }),
      ...(this.#lastModified !== undefined && { lastModified: this.#lastModified }),
      ...(this.#total !== undefined && { totalBytes: this.#total }),
      resumable: this.#resumable(),
    });
  }

  /**
   * Whether the rest of the body can be asked for by Range: the server does ranges, and gave a strong
   * ETag or a Last-Modified, which the request's If-Range and the 206's own validators are checked against.
   */
  #resumable(): boolean {
    const strongEtag = this.#etag !== undefined && !this.#etag.startsWith('W/');
    return this.#acceptsRanges && (strongEtag || this.#lastModified !== undefined);
  }

  /**
   * Asked after each part: whether to stop here for the next invocation. A source that cannot be resumed
   * (no ranges, or no validator to resume safely with) has this invocation only: it fails, saying why.
   */
  #shouldPause(shown: string): boolean {
    const more = this.#total === undefined || this.#received < this.#total;
    if (!more || !this.#deps.budget?.shouldStop()) return false;
    if (this.#upload?.checkpoint.source.resumable) return true;
    const why = this.#acceptsRanges
      ? 'it sends neither a strong ETag nor Last-Modified to resume with safely'
      : 'it does not answer HTTP Range requests';
    const of = this.#total === undefined ? '' : ` of ${this.#total}`;
    throw new DownloadError(
      shown,
      undefined,
      `the download cannot continue in another invocation because ${why}, and this invocation's time ` +
        `ran out after ${this.#received}${of} bytes: raise the Download function's timeout (at most 15 ` +
        'minutes) or memory, or host the file where Range requests work',
    );
  }

  /** Why a 206 does not continue what we have, or undefined if it does. */
  #resumeProblem(response: IncomingMessage): string | undefined {
    // A server that ignores If-Range can answer with another version's bytes: compare validators first.
    const etag = header(response, 'etag');
    if (this.#etag && etag && etag !== this.#etag) return `the ETag changed from ${this.#etag} to ${etag}`;
    const lastModified = header(response, 'last-modified');
    if (this.#lastModified && lastModified && lastModified !== this.#lastModified) {
      return `Last-Modified changed from ${this.#lastModified} to ${lastModified}`;
    }
    const range = parseContentRange(header(response, 'content-range'));
    if (!range) return `unreadable Content-Range ${JSON.stringify(header(response, 'content-range') ?? '')}`;
    if (this.#total !== undefined && range.total !== undefined && range.total !== this.#total) {
      return `the size changed from ${this.#total} to ${range.total} bytes`;
    }
    if (range.start !== this.#received) {
      return `the server sent bytes from ${range.start}, not ${this.#received}`;
    }
    return undefined;
  }

  /** Verifies the checksum, then lets the object appear. */
  async #complete(attempts: number): Promise<DownloadResult> {
    const expected = this.#input.sha256?.toLowerCase();
    if (this.#notModified && this.#previous) {
      const { sha256, bytes } = this.#previous;
      if (expected !== undefined && expected !== sha256) {
        throw new ChecksumMismatchError(this.#show(this.#url), expected, sha256);
      }
      return {
        status: 'landed',
        key: this.#key,
        bytes,
        sha256,
        attempts,
        resumed: false,
        invocations: 1,
        notModified: true,
      };
    }
    // A 200 with an empty body pushed nothing, but the upload was started when its headers came.
    const upload = this.#upload!;
    const sha256 = upload.digest();
    if (expected !== undefined && expected !== sha256) {
      throw new ChecksumMismatchError(this.#show(this.#url), expected, sha256);
    }
    const bytes = this.#received;
    const { invocations } = upload.checkpoint;
    await upload.finish();
    const validators: LandedValidators = {
      ...(this.#etag !== undefined && { etag: this.#etag }),
      ...(this.#lastModified !== undefined && { lastModified: this.#lastModified }),
      sha256,
      bytes,
    };
    // Kept only when the server gave something to ask with next time.
    if (validators.etag !== undefined || validators.lastModified !== undefined) {
      await this.#deps.landing.write(validatorsKey(this.#key), JSON.stringify(validators), {
        contentType: 'application/json',
      });
    }
    return {
      status: 'landed',
      key: this.#key,
      bytes,
      sha256,
      attempts,
      resumed: this.#resumed || invocations > 1,
      invocations,
    };
  }

  /** Where the download stands when this invocation's budget ran out. */
  #partial(): DownloadPartial {
    const upload = this.#upload!;
    const { checkpoint } = upload;
    return {
      status: 'partial',
      key: this.#key,
      checkpointKey: upload.checkpointKey,
      bytes: checkpoint.bytes,
      ...(this.#total !== undefined && { totalBytes: this.#total }),
      parts: checkpoint.parts.length,
      invocations: checkpoint.invocations,
    };
  }

  /** Throws away what was received: aborts the upload; the next bytes start a new one. */
  async #restart(): Promise<void> {
    await this.#upload?.discard();
    this.#upload = undefined;
    this.#total = undefined;
    this.#etag = undefined;
    this.#lastModified = undefined;
    this.#resumed = false;
  }

  #uploadDeps() {
    return {
      landing: this.#deps.landing,
      clock: this.#deps.clock,
      scratchDir: this.#deps.scratchDir ?? tmpdir(),
    };
  }

  #identity(): DownloadIdentity {
    return { key: this.#key, url: normalizeSourceUrl(this.#url), shownUrl: this.#show(this.#url) };
  }

  /** Credential headers go only to the source's own origin, never to a host it redirects to. */
  #headersFor(url: URL, headers: OutgoingHttpHeaders): OutgoingHttpHeaders {
    return url.origin === this.#url.origin ? { ...headers, ...this.#credentials.headers } : headers;
  }

  #withQueryCredential(url: URL): URL {
    const query = this.#credentials.query;
    if (!query || url.origin !== this.#url.origin) return url;
    const withSecret = new URL(url);
    withSecret.searchParams.set(query.name, query.value);
    return withSecret;
  }

  #show(url: URL): string {
    return redactUrl(url, this.#credentials.redactParams);
  }
}

/** Where a landed object's validators are kept: beside it, in its URL's own folder. */
const validatorsKey = (key: string) => `${key.slice(0, key.lastIndexOf('/') + 1)}_validators.json`;

/**
 * The validators of the object landed under `key` by an earlier download, if it is still there, whole
 * (same size). Anything unreadable means "no previous download": only an optimization is lost (a full
 * GET), never a byte.
 */
async function readValidators(
  landing: ObjectStore,
  key: string,
  folder: ReadonlyMap<string, ObjectInfo>,
): Promise<LandedValidators | undefined> {
  const object = folder.get(key);
  if (!object || !folder.has(validatorsKey(key))) return undefined;
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of await landing.read(validatorsKey(key)))
      chunks.push(Buffer.from(chunk as Uint8Array));
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as LandedValidators;
    const usable =
      typeof parsed.sha256 === 'string' &&
      parsed.bytes === object.size &&
      (typeof parsed.etag === 'string' || typeof parsed.lastModified === 'string');
    return usable ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Thrown from the chunk handler to stop reading once the invocation's budget has run out. */
class PausedSignal extends Error {
  override name = 'PausedSignal';
}

/** A failure reading the response stream (as opposed to one raised by the chunk handler). */
class NetworkReadError extends Error {
  override name = 'NetworkReadError';
}

/**
 * Reads `response` chunk by chunk into `onChunk`, waiting for it (backpressure). The idle timer runs only
 * while waiting for the network, not while `onChunk` waits for the landing store, so a slow store does
 * not look like a slow server.
 */
async function readBody(
  response: IncomingMessage,
  idleTimeoutMs: number,
  shown: string,
  onChunk: (chunk: Buffer) => Promise<void>,
): Promise<void> {
  const chunks = response[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      timer = setTimeout(
        () => response.destroy(new TransientError(`${shown}: no data for ${idleTimeoutMs} ms`)),
        idleTimeoutMs,
      );
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        throw new NetworkReadError('reading the response failed', { cause: error });
      } finally {
        clearTimeout(timer);
      }
      if (next.done) return;
      await onChunk(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function contentLength(response: IncomingMessage): number | undefined {
  const value = header(response, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** `bytes <start>-<end>/<total or *>`. */
function parseContentRange(value: string | undefined): { start: number; total?: number } | undefined {
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

function withDefaults(options: FetchOptions = {}): Settings {
  return {
    ...options,
    allowInsecureHttp: options.allowInsecureHttp ?? false,
    allowLoopback: options.allowLoopback ?? false,
    allowPrivate: options.allowPrivate ?? false,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
    maxAttempts: Math.max(1, options.maxAttempts ?? 5),
    baseDelayMs: options.baseDelayMs ?? 500,
    maxDelayMs: options.maxDelayMs ?? 20_000,
    maxRedirects: options.maxRedirects ?? 5,
  };
}
