// Traces. This module is what the rest of compute_ctl calls; it imports nothing from
// OpenTelemetry. `initTracing` loads the SDK backend (./otel.ts) on demand, so with tracing off
// (OTEL_SDK_DISABLED=true) the SDK is never loaded and `inSpan` is a plain call of its function.
//
// Spans nest through an AsyncLocalStorage: a span started inside `inSpan`'s function is its child.
// A parent that lives elsewhere (an HTTP request's span, TRACEPARENT from the environment) is
// passed explicitly as a `SpanParent`.
import { AsyncLocalStorage } from "node:async_hooks";
import { log } from "../log.ts";

declare const spanParentBrand: unique symbol;
/** A span context that new spans can be started under. Opaque outside the backend. */
export type SpanParent = { readonly [spanParentBrand]: true };

export type AttributeValue = string | number | boolean | string[];
export type Attributes = Record<string, AttributeValue>;

export type SpanKindName = "internal" | "server";

/** One started span, as the backend hands it out. */
export interface BackendSpan {
  /** The context that makes a new span this span's child. */
  readonly asParent: SpanParent;
  setAttribute(key: string, value: AttributeValue): void;
  /** Marks the span as failed (status ERROR) with `message`. */
  fail(message: string): void;
  end(): void;
}

/** What the SDK side provides (./otel.ts); tests may install another. */
export interface TraceBackend {
  start(
    name: string,
    kind: SpanKindName,
    parent: SpanParent | null,
    attrs: Attributes,
  ): BackendSpan;
  /** A W3C `traceparent` (and `tracestate`) as a remote parent; null when absent or invalid. */
  remoteParent(traceparent: string | null, tracestate: string | null): SpanParent | null;
  /** Exports what is queued and stops; may take long when the collector is unreachable. */
  shutdown(): Promise<void>;
}

export interface TracingConfig {
  /** False when OTEL_SDK_DISABLED=true: nothing is loaded and nothing is sent. */
  enabled: boolean;
  serviceName: string;
  /** The OTLP/HTTP traces URL, e.g. http://localhost:4318/v1/traces. */
  tracesUrl: string;
  /** OTEL_BSP_SCHEDULE_DELAY: ms between batch exports (the SDK's default when undefined). */
  scheduleDelayMs?: number;
  /** TRACEPARENT / TRACESTATE from the environment: the parent of the startup. */
  traceparent?: string;
  tracestate?: string;
}

let backend: TraceBackend | null = null;
let current: AsyncLocalStorage<SpanParent> | null = null;
let startupParent: SpanParent | null = null;

/** Loads the OTLP exporter and starts the batch export when `config.enabled`. */
export async function initTracing(config: TracingConfig): Promise<void> {
  if (!config.enabled) return;
  const { createOtelBackend } = await import("./otel.ts");
  installBackend(createOtelBackend(config), config);
}

/** Installs `b` as the backend (initTracing does this with the OpenTelemetry SDK). */
export function installBackend(
  b: TraceBackend,
  env: Pick<TracingConfig, "traceparent" | "tracestate"> = {},
): void {
  backend = b;
  current = new AsyncLocalStorage<SpanParent>();
  startupParent = null;
  if (env.traceparent !== undefined) {
    startupParent = b.remoteParent(env.traceparent, env.tracestate ?? null);
    if (startupParent) log.info("got startup tracing context from env variables");
    else log.warn("ignoring TRACEPARENT: not a valid W3C traceparent", { value: env.traceparent });
  }
}

export function tracingEnabled(): boolean {
  return backend !== null;
}

/** TRACEPARENT/TRACESTATE from the environment, when tracing is on and they were valid. */
export function startupTraceParent(): SpanParent | null {
  return startupParent;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs `fn` inside a span `name`: a child of `opts.parent` when given, else of the span around
 * the caller. The span ends when `fn` settles; a rejection marks it failed and is rethrown.
 */
export function inSpan<T>(
  name: string,
  fn: () => Promise<T>,
  opts: { parent?: SpanParent | null; attributes?: Attributes } = {},
): Promise<T> {
  if (!backend || !current) return fn();
  const als = current;
  const parent = opts.parent !== undefined ? opts.parent : (als.getStore() ?? null);
  const span = backend.start(name, "internal", parent, opts.attributes ?? {});
  return als.run(span.asParent, fn).then(
    (v) => {
      span.end();
      return v;
    },
    (err: unknown) => {
      span.fail(errorMessage(err));
      span.end();
      throw err;
    },
  );
}

/** The server span of one HTTP request. */
export interface HttpSpan {
  /** To start work done on the request's behalf elsewhere (the startup of an Empty compute). */
  readonly asParent: SpanParent;
  end(status: number): void;
}

/** Request headers not recorded on the span: they carry credentials. */
const UNRECORDED_HEADERS = new Set(["authorization", "proxy-authorization"]);

/**
 * Starts the `HTTP` server span of a request: method, path and every request header but the
 * credentials; the parent is the request's `traceparent` when it has a valid one. Null when
 * tracing is off.
 */
export function startHttpSpan(method: string, path: string, headers: Headers): HttpSpan | null {
  if (!backend) return null;
  const attrs: Attributes = { "http.request.method": method, "url.path": path };
  for (const [name, value] of headers) {
    if (!UNRECORDED_HEADERS.has(name)) attrs[`http.request.header.${name}`] = [value];
  }
  const parent = backend.remoteParent(headers.get("traceparent"), headers.get("tracestate"));
  const span = backend.start("HTTP", "server", parent, attrs);
  let ended = false;
  return {
    asParent: span.asParent,
    end(status: number) {
      if (ended) return;
      ended = true;
      span.setAttribute("http.response.status_code", status);
      // Server spans fail on 5xx only: a 4xx is the client's error, not this server's.
      if (status >= 500) span.fail(`HTTP ${status}`);
      span.end();
    },
  };
}

/**
 * Exports what is queued and stops the backend, waiting at most `timeoutMs` (an unreachable
 * collector must not hold up the exit).
 */
export async function shutdownTracing(timeoutMs = 2000): Promise<void> {
  const b = backend;
  if (!b) return;
  backend = null;
  current = null;
  startupParent = null;
  log.info("shutting down tracing");
  let timer: Timer | undefined;
  const timedOut = await Promise.race([
    b.shutdown().then(
      () => false,
      () => false,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) log.error("timed out while shutting down tracing, exiting anyway");
}
