// The HTTP conventions both compute_ctl servers share: request ids on
// every response, the tracing-shaped access log, empty 404/405 bodies, `{"error": …}` bodies for
// failures, the JSON body extractor's rejections, JWT guarding and the dual-stack listener.
//
// A route group is one Elysia instance (a "controller") plugged into the server app:
//
//   const app = createHttpApp({ name: "external", logger: log })
//     .use(metricsRoutes(ctx))                       // outside the guard
//     .use(new Elysia().use(authGuard(authorize))     // guard covers the routes used after it
//       .use(statusRoutes(ctx)).use(configureRoutes(ctx)));
//   const server = await listen(app, 3080);
//
// Handlers read JSON bodies with `await jsonBody(request, decode)` (never Elysia's `body`, whose
// parser and validation errors have other statuses and texts) and fail with `throw new HttpError`.
import { type AnyElysia, Elysia, StatusMap } from "elysia";
import { type ComputeStatus, displayStatus } from "../api/status.ts";
import { formatOneLine } from "../errors.ts";
import { deferLines, type Logger } from "../log.ts";
import { startHttpSpan } from "../tracing/index.ts";
import { readAllBounded } from "../util/streams.ts";
import type { Authorizer, AuthResult } from "./auth.ts";
import {
  type RequestInfo,
  requestIdOf,
  requestInfo,
  requestUri,
  setRequestInfo,
  uriOfUrl,
  X_REQUEST_ID,
} from "./request-id.ts";

export { requestInfo, X_REQUEST_ID } from "./request-id.ts";

/** axum's default body limit, which compute_ctl keeps. */
export const BODY_LIMIT = 2 * 1024 * 1024;

/** A failure a handler reports: `{"error": message}` with `status`, logged at ERROR. */
export class HttpError extends Error {
  override name = "HttpError";
  /** Whether the failure is logged at ERROR (the reference's GenericAPIError path does). */
  readonly logged: boolean = true;
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The reference's answer when the compute is not in a status a route accepts. */
export function invalidStatus(status: ComputeStatus): HttpError {
  return new HttpError(412, `invalid compute status: ${displayStatus(status)}`);
}

/** Throws the 412 unless the compute is running (the gate of most catalog routes). */
export function requireRunning(state: { status: ComputeStatus }): void {
  if (state.status !== "running") throw invalidStatus(state.status);
}

/**
 * An extractor rejection (body, query or path): the text is ASCII-lower-cased like the
 * reference's wrapped axum rejections, and it is not logged at ERROR.
 */
export class RejectionError extends HttpError {
  override name = "RejectionError";
  override readonly logged: boolean = false;
  constructor(status: number, message: string) {
    super(status, asciiLower(message));
  }
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** A JSON response with exactly `Content-Type: application/json`, as the reference sends. */
export function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** `{"error": message}` with `status`. */
export function errorResponse(status: number, message: string): Response {
  return jsonResponse(status, { error: message });
}

function isJsonContentType(value: string | null): boolean {
  if (value === null) return false;
  const essence = value.split(";")[0]!.trim().toLowerCase();
  const slash = essence.indexOf("/");
  if (slash === -1) return false;
  const type = essence.slice(0, slash);
  const subtype = essence.slice(slash + 1);
  // Like axum: application/json, or any application/*+json.
  return type === "application" && (subtype === "json" || subtype.endsWith("+json"));
}

function tooLarge(): RejectionError {
  return new RejectionError(413, "Failed to buffer the request body: length limit exceeded");
}

async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (request.bodyUsed) {
    // Elysia parsed it already: the handler destructured `body` instead of using jsonBody.
    throw new Error("request body already consumed before jsonBody");
  }
  if (request.body === null) return new Uint8Array(0);
  return readAllBounded(request.body, limit, tooLarge);
}

/**
 * The reference's Json extractor: content type (415), size (413), syntax (400), shape (422), in
 * that order, each as a lower-cased `{"error"}` rejection. `decode` turns the text into T and
 * throws an error named `JsonSyntaxError` (or a native SyntaxError) for bad JSON and one named
 * `SchemaError` (message `<path>: <problem>`) for a document of the wrong shape.
 */
export async function jsonBody<T>(request: Request, decode: (text: string) => T): Promise<T> {
  if (!isJsonContentType(request.headers.get("content-type"))) {
    throw new RejectionError(415, "Expected request with `Content-Type: application/json`");
  }
  const bytes = await readLimited(request, BODY_LIMIT);
  let text: string;
  try {
    // ignoreBOM keeps a byte order mark in the text, where parseJson refuses it (as serde does).
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new RejectionError(400, "Failed to parse the request body as JSON: invalid UTF-8");
  }
  try {
    return decode(text);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    const name = err instanceof Error ? err.name : "";
    const detail = err instanceof Error ? err.message : String(err);
    if (name === "JsonSyntaxError" || name === "SyntaxError") {
      throw new RejectionError(400, `Failed to parse the request body as JSON: ${detail}`);
    }
    if (name === "SchemaError") {
      throw new RejectionError(
        422,
        `Failed to deserialize the JSON body into the target type: ${detail}`,
      );
    }
    throw err;
  }
}

/** Matches a request path against the registered route patterns, to tell 405 from 404. */
class RouteIndex {
  private compiledFor = -1;
  private patterns: { methods: Set<string>; re: RegExp }[] = [];

  constructor(private readonly app: AnyElysia) {}

  /** True when some route other than `method` serves `path`. */
  otherMethodServes(path: string, method: string): boolean {
    this.refresh();
    return this.patterns.some((p) => p.re.test(path) && !p.methods.has(method));
  }

  private refresh(): void {
    const routes = this.app.routes as { method: string; path: string }[];
    if (routes.length === this.compiledFor) return;
    const byPath = new Map<string, Set<string>>();
    for (const r of routes) {
      if (r.method === "WS") continue;
      const set = byPath.get(r.path) ?? new Set<string>();
      set.add(r.method);
      // Elysia answers HEAD for GET routes itself.
      if (r.method === "GET") set.add("HEAD");
      byPath.set(r.path, set);
    }
    this.patterns = [...byPath].map(([path, methods]) => ({ methods, re: patternToRegExp(path) }));
    this.compiledFor = routes.length;
  }
}

function patternToRegExp(path: string): RegExp {
  const quote = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  let src = "";
  for (const seg of path.split("/").slice(1)) {
    if (seg === "*") src += "(?:/.*)?";
    else if (seg.startsWith(":") && seg.endsWith("?")) src += "(?:/[^/]+)?";
    else if (seg.startsWith(":")) src += "/[^/]+";
    else src += `/${quote(seg)}`;
  }
  return new RegExp(`^${src || "/"}$`);
}

function pathOf(uri: string): string {
  const q = uri.indexOf("?");
  return q === -1 ? uri : uri.slice(0, q);
}

function statusCode(status: unknown): number {
  if (typeof status === "number") return status;
  if (typeof status === "string") return (StatusMap as Record<string, number>)[status] ?? 200;
  return 200;
}

interface AppMeta {
  name: string;
  logger: Logger;
  index: RouteIndex;
  requestLoggers: Map<string, Logger>;
  lastLogger: { method: string; uri: string; log: Logger } | null;
}

const appNames = new WeakMap<AnyElysia, AppMeta>();

/**
 * Arrival of a request: its id, its `request{…}` log span, its trace span and the first access
 * log line. Both ways of serving a request (Elysia's hooks and the hot routes) begin here.
 */
function beginRequest(request: Request, uri: string, meta: AppMeta): RequestInfo {
  const method = request.method;
  const id = requestIdOf(request);
  const log = requestLogger(meta, method, uri);
  const span = startHttpSpan(method, pathOf(uri), request.headers);
  const info: RequestInfo = { id, log, start: performance.now(), span };
  setRequestInfo(request, info);
  log.info(`${method} ${uri}`, { request_id: id });
  return info;
}

/** How many request loggers an app keeps for reuse before it starts over. */
const REQUEST_LOGGERS_MAX = 256;

/**
 * The `request{method=… uri=… version=…}` logger; the same request line (the control plane's
 * `GET /status`) gets the same logger, built once.
 */
function requestLogger(meta: AppMeta, method: string, uri: string): Logger {
  const last = meta.lastLogger;
  if (last !== null && last.method === method && last.uri === uri) return last.log;
  const key = `${method} ${uri}`;
  let log = meta.requestLoggers.get(key);
  if (log === undefined) {
    log = meta.logger.span("request", { method, uri, version: "HTTP/1.1" });
    if (meta.requestLoggers.size >= REQUEST_LOGGERS_MAX) meta.requestLoggers.clear();
    meta.requestLoggers.set(key, log);
  }
  meta.lastLogger = { method, uri, log };
  return log;
}

/** The answer's access log line, and the end of the trace span. */
function finishRequest(info: RequestInfo, code: number): void {
  info.log.info("response", {
    request_id: info.id,
    code,
    latency: Math.floor(performance.now() - info.start),
  });
  info.span?.end(code);
}

/**
 * The answer to a failure: empty 404/405 for routing misses, `{"error": …}` otherwise, logged at
 * ERROR where the reference logs it. `code` is Elysia's error code; undefined means Elysia's own
 * `status(…)` throw, which Elysia answers itself.
 */
function failureResponse(
  code: unknown,
  error: unknown,
  request: Request,
  log: Logger,
  index: RouteIndex,
): Response | undefined {
  if (code === "NOT_FOUND") {
    const path = pathOf(requestUri(request));
    const status = index.otherMethodServes(path, request.method) ? 405 : 404;
    return new Response(null, { status });
  }
  if (error instanceof HttpError) {
    if (error.logged) log.error(error.message);
    return errorResponse(error.status, error.message);
  }
  if (code === "PARSE") {
    // Only reachable when a handler used Elysia's `body`; keep the reference's shape anyway.
    const message = error instanceof Error ? error.message : String(error);
    return errorResponse(400, asciiLower(`failed to parse the request body as json: ${message}`));
  }
  if (code === "VALIDATION") {
    const v = error as {
      type: string;
      valueError?: { path: string; message: string };
      message: string;
    };
    const where = v.type;
    const first = v.valueError;
    const detail = first ? `${first.path || "/"}: ${first.message}` : v.message;
    if (where === "response") {
      log.error(`response validation failed: ${detail}`);
      return errorResponse(500, `response validation failed: ${detail}`);
    }
    if (where === "body") {
      return errorResponse(
        422,
        asciiLower(`Failed to deserialize the JSON body into the target type: ${detail}`),
      );
    }
    const what = where === "query" ? "query string" : where;
    return errorResponse(400, asciiLower(`Failed to deserialize ${what}: ${detail}`));
  }
  // Elysia's own `status(…)` thrown by a handler: leave it to Elysia.
  if (typeof code === "number") return undefined;
  const message = error instanceof Error ? error.message : String(error);
  log.error(message, { error: formatOneLine(error) });
  return errorResponse(500, message);
}

/** The hook functions of each app from createHttpApp, to tell its own hooks from others. */
const ownHooks = new WeakMap<AnyElysia, Set<unknown>>();

/**
 * An Elysia app with compute_ctl's conventions; route groups are added with `.use(group)`.
 * Paths are strict (`/status/` is not `/status`), as with axum.
 */
export function createHttpApp(opts: { name: "external" | "internal"; logger: Logger }) {
  // standardHostname: false, or Elysia looks for the path's first "/" from the 12th character of
  // the URL on, assuming a host of at least 4 characters: `Host: x` would then 404 every route.
  const app = new Elysia({ strictPath: true, handler: { standardHostname: false } });
  const index = new RouteIndex(app);
  const meta: AppMeta = {
    name: opts.name,
    logger: opts.logger,
    index,
    requestLoggers: new Map(),
    lastLogger: null,
  };
  appNames.set(app, meta);

  const onRequest = ({
    request,
    set,
  }: {
    request: Request;
    set: { headers: Record<string, unknown> };
  }) => {
    set.headers[X_REQUEST_ID] = beginRequest(request, requestUri(request), meta).id;
  };
  const onError = ({
    code,
    error,
    request,
    set,
  }: {
    code: unknown;
    error: unknown;
    request: Request;
    set: { status?: unknown };
  }) => {
    const log = requestInfo(request)?.log ?? opts.logger;
    const response = failureResponse(code, error, request, log, index);
    if (response === undefined) return;
    set.status = response.status;
    return response;
  };
  const onAfterResponse = ({
    request,
    set,
    responseValue,
  }: {
    request: Request;
    set: { status?: unknown };
    responseValue: unknown;
  }) => {
    const info = requestInfo(request);
    if (!info) return;
    finishRequest(
      info,
      responseValue instanceof Response ? responseValue.status : statusCode(set.status),
    );
  };
  ownHooks.set(app, new Set<unknown>([onRequest, onError, onAfterResponse]));

  return app
    .onRequest(onRequest)
    .onError({ as: "global" }, onError)
    .onAfterResponse({ as: "global" }, onAfterResponse);
}

/**
 * A plugin that makes every route registered after it, on the instance that uses it, require
 * the JWT check. Failures answer `{"error": …}` with 400/401/403 and are logged
 * at ERROR, like the reference. Unknown paths and wrong methods are decided before it runs.
 */
export function authGuard(authorize: Authorizer) {
  const guard = async ({ request }: { request: Request }) => {
    const result = await authorize(request.headers.get("authorization"));
    if (!result.ok) throw new HttpError(result.status, result.error);
  };
  guards.set(guard, authorize);
  // Unnamed on purpose: a named plugin is deduplicated, and each guarded group needs its own.
  return new Elysia().onBeforeHandle({ as: "scoped" }, guard);
}

/** Each authGuard's hook and the check it runs, for the hot routes. */
const guards = new WeakMap<object, Authorizer>();

/** What a plain handler answers: the status, and the body with its content type. */
export interface PlainAnswer {
  status: number;
  body: string;
  contentType: string;
}

/** A handler that needs nothing from Elysia's context but the request, and answers at once. */
export type PlainAnswerer = (context: { request: Request }) => PlainAnswer;

/** The Elysia handler plain() makes. */
export type PlainHandler = (context: { request: Request }) => Response;
const plainAnswerers = new WeakMap<PlainHandler, PlainAnswerer>();

/**
 * A route handler from `answer`, which reads nothing from Elysia's context but `request` and
 * answers synchronously. A GET route with a plain handler, a static path, no schema and no hooks
 * but createHttpApp's and an authGuard is served without Elysia's router (see hotRoutes): the
 * control plane polls /status several times a second, so its cost is compute_ctl's idle cost.
 */
export function plain(answer: PlainAnswerer): PlainHandler {
  // Destructured, so Elysia builds only `request` for it.
  const handler: PlainHandler = ({ request }) => {
    const a = answer({ request });
    return new Response(a.body, { status: a.status, headers: { "content-type": a.contentType } });
  };
  plainAnswerers.set(handler, answer);
  return handler;
}

interface HotRoute {
  answer: PlainAnswerer;
  /** The authGuard's check, or null for an unguarded route. */
  authorize: Authorizer | null;
}

// Per-route hook lists and schemas of Elysia's route table; any of them makes a route not hot.
const ROUTE_EXTRAS = [
  "start",
  "parse",
  "transform",
  "afterHandle",
  "mapResponse",
  "trace",
  "stop",
  "body",
  "headers",
  "params",
  "query",
  "cookie",
  "response",
  "type",
  "standaloneSchema",
] as const;

type HookEntry = { fn?: unknown } | ((...args: never[]) => unknown);
const hookFn = (h: HookEntry) => (typeof h === "function" ? h : h.fn);
const hookList = (v: unknown): HookEntry[] =>
  v === undefined || v === null ? [] : Array.isArray(v) ? v : [v as HookEntry];

/**
 * The routes of `app` that can be served by `serveHot` with exactly the behaviour Elysia gives
 * them: GET, static path, plain handler, and no hook but createHttpApp's own and at most one
 * authGuard. Every other request goes through Elysia.
 */
function hotRoutes(app: AnyElysia): Map<string, HotRoute> {
  const hot = new Map<string, HotRoute>();
  const own = ownHooks.get(app);
  if (!own) return hot;
  const event = app.event as Record<string, unknown>;
  for (const name of Object.keys(event)) {
    // A global hook other than ours would have to run for hot routes too.
    if (!hookList(event[name]).every((h) => own.has(hookFn(h)))) return hot;
  }
  const routes = app.routes as {
    method: string;
    path: string;
    handler: unknown;
    hooks?: Record<string, unknown>;
  }[];
  for (const r of routes) {
    if (r.method !== "GET" || /[:*]/.test(r.path)) continue;
    const answer = plainAnswerers.get(r.handler as PlainHandler);
    if (answer === undefined) continue;
    const hooks = r.hooks ?? {};
    if (ROUTE_EXTRAS.some((k) => hookList(hooks[k]).length > 0)) continue;
    if (!hookList(hooks.request).every((h) => own.has(hookFn(h)))) continue;
    if (!hookList(hooks.error).every((h) => own.has(hookFn(h)))) continue;
    if (!hookList(hooks.afterResponse).every((h) => own.has(hookFn(h)))) continue;
    const before = hookList(hooks.beforeHandle).map(hookFn);
    if (before.length > 1) continue;
    const authorize = before.length === 1 ? guards.get(before[0] as object) : null;
    if (authorize === undefined) continue;
    hot.set(r.path, { answer, authorize });
  }
  return hot;
}

/** The paths `app` serves without Elysia (for tests). */
export function hotPaths(app: AnyElysia): string[] {
  return [...hotRoutes(app).keys()];
}

/**
 * A hot route's request, with the middleware Elysia would run for it, in the same order: the
 * arrival line, the authGuard, the handler, the failure mapping, the request id header, the
 * answer line.
 */
function serveHot(
  route: HotRoute,
  request: Request,
  uri: string,
  meta: AppMeta,
): Response | Promise<Response> {
  const info = beginRequest(request, uri, meta);
  if (route.authorize === null) return answerHot(route, request, info, null, meta);
  let auth: AuthResult | Promise<AuthResult>;
  try {
    auth = route.authorize(request.headers.get("authorization"));
  } catch (err) {
    return answerHot(route, request, info, err, meta);
  }
  if (auth instanceof Promise) {
    return auth.then(
      (a) => answerHot(route, request, info, authFailure(a), meta),
      (err) => answerHot(route, request, info, err, meta),
    );
  }
  return answerHot(route, request, info, authFailure(auth), meta);
}

function authFailure(result: AuthResult): HttpError | null {
  return result.ok ? null : new HttpError(result.status, result.error);
}

/** The handler's answer, or the answer to `failure` (the guard's refusal or throw) when not null. */
function answerHot(
  route: HotRoute,
  request: Request,
  info: RequestInfo,
  failure: unknown,
  meta: AppMeta,
): Response {
  let res: Response;
  try {
    if (failure !== null) throw failure;
    const a = route.answer({ request });
    // The headers in Elysia's order: the handler's, then the request id.
    res = new Response(a.body, {
      status: a.status,
      headers: { "content-type": a.contentType, "x-request-id": info.id },
    });
  } catch (err) {
    res = failureResponse("UNKNOWN", err, request, info.log, meta.index) as Response;
    res.headers.set(X_REQUEST_ID, info.id);
  }
  finishRequest(info, res.status);
  return res;
}

/**
 * Bun gives an HTTP/1.0 request without a Host header a relative URL (`/status`); routing and the
 * query parsers want an absolute one. Only the path and query matter, so any host does.
 */
function withAbsoluteUrl(request: Request): Request {
  const url = request.url;
  if (url.startsWith("http://") || url.startsWith("https://")) return request;
  return new Request(`http://localhost${url.startsWith("/") ? "" : "/"}${url}`, request);
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function withConnectionClose(res: Response): Response {
  const headers = new Headers(res.headers);
  headers.set("connection", "close");
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/**
 * One request through `app`, guarding against Bun answering twice: Bun's parser reports a
 * malformed chunked body with its own 400 after the route's answer when the route never read the
 * body. So a body the route left unread is drained here (up to the body limit) before the answer
 * goes out: a malformed one then makes Bun's 400 the only answer. For a GET or HEAD Bun exposes
 * no body at all; if such a request announces one, the answer waits a turn (a malformed chunk
 * that arrived with the head is found first) and closes the connection (one that arrives later
 * is never parsed).
 */
async function serveOne(app: AnyElysia, request: Request): Promise<Response> {
  const hiddenBody = request.body === null && request.headers.has("transfer-encoding");
  if (hiddenBody) await nextTurn();
  const res: Response = await app.fetch(request);
  if (hiddenBody) return withConnectionClose(res);
  if (request.body !== null && !request.bodyUsed) {
    try {
      await readAllBounded(request.body, BODY_LIMIT, () => new Error("body too large"));
    } catch {
      return withConnectionClose(res);
    }
  }
  return res;
}

/**
 * What the server calls for each request of `app`: a GET of a hot route without a body is served
 * by serveHot, everything else by Elysia through serveOne. Exported for tests that compare both.
 */
export function requestHandler(app: AnyElysia): (request: Request) => Response | Promise<Response> {
  const meta = appNames.get(app);
  const hot = meta ? hotRoutes(app) : new Map<string, HotRoute>();
  if (!meta || hot.size === 0) return (raw) => serveOne(app, withAbsoluteUrl(raw));
  return (raw) => {
    if (raw.method === "GET") {
      const url = raw.url;
      const uri = uriOfUrl(url);
      const route = hot.get(pathOf(uri));
      if (
        route !== undefined &&
        (url.startsWith("http://") || url.startsWith("https://")) &&
        raw.body === null &&
        !raw.headers.has("transfer-encoding")
      ) {
        // Its access log lines go out at the end of the turn, with those of the other requests
        // answered in it: the answer is sent after this returns anyway.
        return deferLines(() => serveHot(route, raw, uri, meta));
      }
    }
    return serveOne(app, withAbsoluteUrl(raw));
  };
}

export interface HttpServer {
  port: number;
  stop(): Promise<void>;
}

/**
 * Serves `app` on `[::]:port` (dual stack: IPv4 clients arrive as mapped addresses). Port 0
 * picks a free port. A port in use rejects instead of silently sharing it (no SO_REUSEPORT).
 */
export async function listen(app: AnyElysia, port: number): Promise<HttpServer> {
  const meta = appNames.get(app);
  const name = meta ? `compute_ctl ${meta.name} HTTP server` : "HTTP server";
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: "::",
      port,
      reusePort: false,
      // /configure and /terminate hold the request open until the compute settles; never cut
      // them off for idleness (Bun's default is 10 s).
      idleTimeout: 0,
      development: false,
      fetch: requestHandler(app),
    });
  } catch (err) {
    throw new Error(`failed to bind the ${name} to [::]:${port}`, { cause: err });
  }
  app.server = server;
  meta?.logger.info(`${name} listening at [::]:${server.port}`);
  return {
    port: server.port ?? port,
    stop: async () => {
      await server.stop(true);
    },
  };
}
