// Per-request bookkeeping shared by the access log, the error mapping and handlers: the request id
// (echoed from `x-request-id` or generated), the request's logger span and its start.
import type { Logger } from "../log.ts";
import type { HttpSpan } from "../tracing/index.ts";

export const X_REQUEST_ID = "x-request-id";

export interface RequestInfo {
  id: string;
  /** The `request{method=… uri=… version=…}` span; handlers may log through it. */
  log: Logger;
  /** performance.now() at arrival, for the latency field. */
  start: number;
  /** The request's `HTTP` trace span; null when tracing is off. */
  span: HttpSpan | null;
}

// Carried by the Request object itself, so it goes when the request goes (cheaper for the
// collector than a WeakMap entry per request).
const INFO = Symbol("compute_ctl.requestInfo");
type WithInfo = Request & { [INFO]?: RequestInfo };

/** The id a request carries, or a fresh UUIDv4 when it has none (the neon extension never sends one). */
export function requestIdOf(request: Request): string {
  return request.headers.get(X_REQUEST_ID) ?? crypto.randomUUID();
}

export function setRequestInfo(request: Request, info: RequestInfo): void {
  (request as WithInfo)[INFO] = info;
}

/** The bookkeeping for a request seen by an app from createHttpApp; undefined otherwise. */
export function requestInfo(request: Request): RequestInfo | undefined {
  return (request as WithInfo)[INFO];
}

/** The origin-form target as sent on the request line (path plus query), like `http::Uri`. */
export function requestUri(request: Request): string {
  return uriOfUrl(request.url);
}

/** The path and query of an absolute or origin-form URL. */
export function uriOfUrl(url: string): string {
  const scheme = url.indexOf("://");
  const slash = url.indexOf("/", scheme === -1 ? 0 : scheme + 3);
  return slash === -1 ? "/" : url.slice(slash);
}
