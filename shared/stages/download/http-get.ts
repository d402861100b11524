import type { LookupAddress } from 'node:dns';
import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { DownloadError, TransientError } from '../../errors.ts';
import { hostOf, pinnedLookup } from './url-safety.ts';

/** Settings of one GET. */
export interface HttpGetOptions {
  /** Milliseconds to establish the connection (TCP, and TLS for https). */
  readonly connectTimeoutMs: number;
  /** Milliseconds to wait for the response headers once connected. */
  readonly idleTimeoutMs: number;
  /** Extra trusted CA certificates (PEM) for https, e.g. a private CA. Default: Node's bundled roots. */
  readonly ca?: string | readonly string[];
  /** The URL as shown in messages: redacted. */
  readonly shownUrl: string;
}

/** An open response; its body is not read yet. */
export interface OpenResponse {
  readonly request: ClientRequest;
  readonly response: IncomingMessage;
}

/**
 * Sends one GET to `url`, connecting to `address` (already checked) whatever DNS says now, and resolves
 * when the response headers arrive. One connection per request (`agent: false`): no pooled socket can
 * carry a request to an address other than the pinned one, and a broken connection is never reused.
 * Network failures reject with `TransientError` or `DownloadError` (see `networkError`).
 */
export function httpGet(
  url: URL,
  address: LookupAddress,
  headers: OutgoingHttpHeaders,
  options: HttpGetOptions,
): Promise<OpenResponse> {
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request({
      hostname: hostOf(url),
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers,
      agent: false,
      lookup: pinnedLookup(address),
      ...(secure && options.ca ? { ca: options.ca as string | string[] } : {}),
    });
    let timer = setTimeout(
      () =>
        request.destroy(
          new TransientError(`${options.shownUrl}: no connection within ${options.connectTimeoutMs} ms`),
        ),
      options.connectTimeoutMs,
    );
    request.once('socket', (socket) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            request.destroy(
              new TransientError(
                `${options.shownUrl}: no response headers within ${options.idleTimeoutMs} ms`,
              ),
            ),
          options.idleTimeoutMs,
        );
      });
    });
    request.once('response', (response) => {
      clearTimeout(timer);
      resolve({ request, response });
    });
    // `on`, not `once`: a late second error (after the response) must not become an uncaught exception.
    request.on('error', (error) => {
      clearTimeout(timer);
      reject(networkError(error, options.shownUrl));
    });
    request.end();
  });
}

/** Error codes of failures that another attempt may not meet: the network or the server had a moment. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/**
 * A network error as a pipeline error saying what and where: `TransientError` for resets, refusals,
 * timeouts; `DownloadError` for the rest (unknown host, TLS certificate problems), which retrying will
 * not fix. Our own errors pass through unchanged.
 */
export function networkError(error: unknown, shownUrl: string, receivedBytes?: number): Error {
  if (error instanceof TransientError || error instanceof DownloadError) return error;
  const { code, message } = (error ?? {}) as NodeJS.ErrnoException;
  const after = receivedBytes === undefined ? '' : ` after ${receivedBytes} bytes`;
  const what = code ?? message ?? 'unknown error';
  if (code !== undefined && TRANSIENT_CODES.has(code)) {
    return new TransientError(`${shownUrl}: connection failed${after} (${what})`, { cause: error });
  }
  return new DownloadError(shownUrl, undefined, `request failed${after} (${what})`, { cause: error });
}
