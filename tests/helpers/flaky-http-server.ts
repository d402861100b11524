import { createHash } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the server does for one request; the body is served from the range the request asks for. */
export type Step =
  /** Serve the body (honouring Range when the route supports it). */
  | { readonly kind: 'ok' }
  /** Answer with this status and no body beyond a short text. */
  | { readonly kind: 'status'; readonly status: number; readonly retryAfter?: string }
  /** Send the headers and `afterBytes` bytes, then reset the connection (TCP RST). */
  | { readonly kind: 'reset'; readonly afterBytes: number }
  /** Send the headers (full Content-Length) and `afterBytes` bytes, then close the connection cleanly. */
  | { readonly kind: 'truncate'; readonly afterBytes: number }
  /** Send `bytesPerTick` bytes every `tickMs` ms. */
  | { readonly kind: 'drip'; readonly bytesPerTick: number; readonly tickMs: number }
  /** Redirect to `location` (absolute, or a path on this server). */
  | { readonly kind: 'redirect'; readonly location: string; readonly status?: number }
  /** Accept the request and never answer. */
  | { readonly kind: 'hang' };

/** A version of the served content; a step can switch to another one (a changed ETag between attempts). */
export interface Content {
  readonly body: Buffer;
  /** @default a strong ETag derived from the body's sha256 */
  readonly etag?: string;
  /** @default a fixed date */
  readonly lastModified?: string;
}

/** How one path behaves. */
export interface Route {
  readonly content: Content;
  /**
   * `true`: `Accept-Ranges: bytes` and 206 for `Range: bytes=N-` (if `If-Range` still matches);
   * `false`: no `Accept-Ranges`, Range ignored; `'ignored'`: advertises ranges but always answers 200.
   * @default true
   */
  readonly ranges?: boolean | 'ignored';
  /** Answer 206 even when `If-Range` names another version (a broken server). @default false */
  readonly ignoreIfRange?: boolean;
  /** Send `ETag` and `Last-Modified` (a server without either can only be asked for ranges blindly). @default true */
  readonly validators?: boolean;
  /** Send `Content-Length`; without it the body is chunked. @default true */
  readonly contentLength?: boolean;
  /** Request number i (0-based) to this path follows `steps[i]`; later requests are `ok`. */
  readonly steps?: readonly Step[];
  /** Content served from request number i on, replacing `content`: `versions[i]`, if set. */
  readonly versions?: readonly (Content | undefined)[];
}

/** A request as the server saw it. */
export interface SeenRequest {
  readonly path: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

/** A misbehaving HTTP server on 127.0.0.1. */
export interface FlakyServer {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly port: number;
  /** The absolute URL of a path on this server. */
  url(path: string): string;
  /** Sets how a path behaves (and resets its request count). */
  route(path: string, route: Route): void;
  /** Every request received, in order. */
  readonly requests: readonly SeenRequest[];
  /** Requests received for a path. */
  requestsTo(path: string): SeenRequest[];
  /** The most requests that were being answered at the same time. */
  readonly maxConcurrent: number;
  /** Forgets routes, requests and the concurrency high-water mark. */
  reset(): void;
  close(): Promise<void>;
}

const FIXED_DATE = 'Thu, 01 Jan 2026 00:00:00 GMT';

/** Starts a server on 127.0.0.1 with a free port; unknown paths answer 404. */
export async function startFlakyServer(): Promise<FlakyServer> {
  const routes = new Map<string, Route>();
  const counts = new Map<string, number>();
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let active = 0;
  let maxConcurrent = 0;

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path, url: req.url ?? '', headers: req.headers });
    active++;
    maxConcurrent = Math.max(maxConcurrent, active);
    res.once('close', () => {
      active--;
    });
    const route = routes.get(path);
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such path');
      return;
    }
    const index = counts.get(path) ?? 0;
    counts.set(path, index + 1);
    const content = (route.versions ?? [])
      .slice(0, index + 1)
      .reduce<Content>((c, v) => v ?? c, route.content);
    handle(req, res, route, content, route.steps?.[index] ?? { kind: 'ok' });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;

  return {
    origin,
    port,
    url: (path) => `${origin}${path}`,
    route(path, route) {
      routes.set(path, route);
      counts.delete(path);
    },
    requests,
    requestsTo: (path) => requests.filter((r) => r.path === path),
    get maxConcurrent() {
      return maxConcurrent;
    },
    reset() {
      routes.clear();
      counts.clear();
      requests.length = 0;
      maxConcurrent = active;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function handle(req: IncomingMessage, res: ServerResponse, route: Route, content: Content, step: Step): void {
  if (step.kind === 'status') {
    const headers: Record<string, string> = { 'content-type': 'text/plain' };
    if (step.retryAfter !== undefined) headers['retry-after'] = step.retryAfter;
    res.writeHead(step.status, headers).end(`status ${step.status}`);
    return;
  }
  if (step.kind === 'redirect') {
    res.writeHead(step.status ?? 302, { location: step.location }).end();
    return;
  }
  if (step.kind === 'hang') return;

  const etag = etagOf(content);
  const lastModified = content.lastModified ?? FIXED_DATE;
  const size = content.body.length;
  const ranges = route.ranges ?? true;
  const headers: Record<string, string> =
    (route.validators ?? true) ? { etag, 'last-modified': lastModified } : {};
  if (ranges) headers['accept-ranges'] = 'bytes';

  let start = 0;
  let status = 200;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const ifRange = req.headers['if-range'];
  const sameVersion = ifRange === undefined || ifRange === etag || ifRange === lastModified;
  if (range && ranges === true && (sameVersion || route.ignoreIfRange)) {
    start = Number(range[1]);
    if (start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${size - 1}/${size}`;
  }
  const bytes = content.body.subarray(start);
  if (route.contentLength ?? true) headers['content-length'] = String(bytes.length);
  res.writeHead(status, headers);

  if (step.kind === 'ok') {
    res.end(bytes);
  } else if (step.kind === 'reset' || step.kind === 'truncate') {
    const socket = res.socket;
    res.write(bytes.subarray(0, step.afterBytes), () => {
      // A moment for the client to read what was sent, so the failure comes after a known prefix.
      setTimeout(() => {
        if (step.kind === 'reset') socket?.resetAndDestroy();
        else socket?.end();
      }, 20);
    });
  } else {
    // Headers now, so the client's wait is for body bytes.
    res.flushHeaders();
    drip(res, bytes, step.bytesPerTick, step.tickMs);
  }
}

function drip(res: ServerResponse, bytes: Buffer, bytesPerTick: number, tickMs: number): void {
  let offset = 0;
  const timer = setInterval(() => {
    const chunk = bytes.subarray(offset, offset + bytesPerTick);
    offset += chunk.length;
    if (offset >= bytes.length) {
      clearInterval(timer);
      res.end(chunk);
    } else {
      res.write(chunk);
    }
  }, tickMs);
  res.once('close', () => clearInterval(timer));
}

/** The default ETag of a body: strong, derived from its content. */
export function etagOf(content: Content): string {
  return content.etag ?? `"${createHash('sha256').update(content.body).digest('hex').slice(0, 16)}"`;
}

/** sha256 hex of bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
