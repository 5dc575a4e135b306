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
import type { Logger } from "../log.ts";
import { startHttpSpan } from "../tracing/index.ts";
import { readAllBounded } from "../util/streams.ts";
import type { Authorizer } from "./auth.ts";
import {
  type RequestInfo,
  requestIdOf,
  requestInfo,
  requestUri,
  setRequestInfo,
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

const appNames = new WeakMap<AnyElysia, { name: string; logger: Logger }>();

/**
 * An Elysia app with compute_ctl's conventions; route groups are added with `.use(group)`.
 * Paths are strict (`/status/` is not `/status`), as with axum.
 */
export function createHttpApp(opts: { name: "external" | "internal"; logger: Logger }) {
  // standardHostname: false, or Elysia looks for the path's first "/" from the 12th character of
  // the URL on, assuming a host of at least 4 characters: `Host: x` would then 404 every route.
  const app = new Elysia({ strictPath: true, handler: { standardHostname: false } });
  const index = new RouteIndex(app);
  appNames.set(app, opts);

  return app
    .onRequest(({ request, set }) => {
      const id = requestIdOf(request);
      const uri = requestUri(request);
      const log = opts.logger.span("request", {
        method: request.method,
        uri,
        version: "HTTP/1.1",
      });
      const span = startHttpSpan(request.method, pathOf(uri), request.headers);
      const info: RequestInfo = { id, log, start: performance.now(), span };
      setRequestInfo(request, info);
      set.headers[X_REQUEST_ID] = id;
      log.info(`${request.method} ${uri}`, { request_id: id });
    })
    .onError({ as: "global" }, ({ code, error, request, set }) => {
      const log = requestInfo(request)?.log ?? opts.logger;
      let status: number;
      let response: Response;
      if (code === "NOT_FOUND") {
        const path = pathOf(requestUri(request));
        status = index.otherMethodServes(path, request.method) ? 405 : 404;
        response = new Response(null, { status });
      } else if (error instanceof HttpError) {
        status = error.status;
        if (error.logged) log.error(error.message);
        response = errorResponse(status, error.message);
      } else if (code === "PARSE") {
        // Only reachable when a handler used Elysia's `body`; keep the reference's shape anyway.
        status = 400;
        response = errorResponse(
          status,
          asciiLower(`failed to parse the request body as json: ${error.message}`),
        );
      } else if (code === "VALIDATION") {
        const where = error.type;
        const first = error.valueError;
        const detail = first ? `${first.path || "/"}: ${first.message}` : error.message;
        if (where === "response") {
          status = 500;
          log.error(`response validation failed: ${detail}`);
          response = errorResponse(status, `response validation failed: ${detail}`);
        } else if (where === "body") {
          status = 422;
          response = errorResponse(
            status,
            asciiLower(`Failed to deserialize the JSON body into the target type: ${detail}`),
          );
        } else {
          status = 400;
          const what = where === "query" ? "query string" : where;
          response = errorResponse(status, asciiLower(`Failed to deserialize ${what}: ${detail}`));
        }
      } else if (typeof code === "number") {
        // Elysia's own `status(…)` thrown by a handler: leave it to Elysia.
        return;
      } else {
        status = 500;
        const message = error instanceof Error ? error.message : String(error);
        log.error(message, { error: formatOneLine(error) });
        response = errorResponse(status, message);
      }
      set.status = status;
      return response;
    })
    .onAfterResponse({ as: "global" }, ({ request, set, responseValue }) => {
      const info = requestInfo(request);
      if (!info) return;
      const code =
        responseValue instanceof Response ? responseValue.status : statusCode(set.status);
      info.log.info("response", {
        request_id: info.id,
        code,
        latency: Math.floor(performance.now() - info.start),
      });
      info.span?.end(code);
    });
}

/**
 * A plugin that makes every route registered after it, on the instance that uses it, require
 * the JWT check. Failures answer `{"error": …}` with 400/401/403 and are logged
 * at ERROR, like the reference. Unknown paths and wrong methods are decided before it runs.
 */
export function authGuard(authorize: Authorizer) {
  // Unnamed on purpose: a named plugin is deduplicated, and each guarded group needs its own.
  return new Elysia().onBeforeHandle({ as: "scoped" }, async ({ request }) => {
    const result = await authorize(request.headers.get("authorization"));
    if (!result.ok) throw new HttpError(result.status, result.error);
  });
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
async function serveOne(app: AnyElysia, raw: Request): Promise<Response> {
  const request = withAbsoluteUrl(raw);
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
      fetch: (request) => serveOne(app, request),
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
