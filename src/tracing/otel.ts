// The OpenTelemetry SDK behind the tracing facade: spans batched and exported as OTLP/HTTP
// protobuf, the W3C trace-context format for remote parents, `service.name` on the resource.
// Loaded only when tracing is on. Export failures are logged at WARN, at most once a minute.
import {
  type Context,
  defaultTextMapGetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import {
  type ExportResult,
  ExportResultCode,
  W3CTraceContextPropagator,
} from "@opentelemetry/core";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  TracerProvider,
} from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";
import { log } from "../log.ts";
import type { BackendSpan, SpanParent, TraceBackend, TracingConfig } from "./index.ts";

/** How often an export failure may be logged. */
export const EXPORT_WARN_INTERVAL_MS = 60_000;

/** Calls `warn` at most once per interval; the next call reports how many were held back. */
export function rateLimited(
  intervalMs: number,
  warn: (message: string, suppressed: number) => void,
  now: () => number = () => performance.now(),
): (message: string) => void {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (message) => {
    const t = now();
    if (t - last < intervalMs) {
      suppressed++;
      return;
    }
    last = t;
    warn(message, suppressed);
    suppressed = 0;
  };
}

/** Passes spans on to `inner` and reports failed exports to `onFailure`. */
class ReportingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly onFailure: (error: string) => void,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.onFailure(result.error?.message ?? "export failed");
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

const asParent = (ctx: Context) => ctx as unknown as SpanParent;
const asContext = (parent: SpanParent | null) =>
  parent === null ? ROOT_CONTEXT : (parent as unknown as Context);

export function createOtelBackend(config: TracingConfig): TraceBackend {
  const warn = rateLimited(EXPORT_WARN_INTERVAL_MS, (message, suppressed) => {
    const more = suppressed > 0 ? ` (${suppressed} more failures since the last warning)` : "";
    log.warn(`failed to export traces to ${config.tracesUrl}: ${message}${more}`);
  });
  const exporter = new ReportingExporter(new OTLPTraceExporter({ url: config.tracesUrl }), warn);
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    spanProcessors: [
      new BatchSpanProcessor({
        exporter,
        ...(config.scheduleDelayMs !== undefined
          ? { scheduledDelayMillis: config.scheduleDelayMs }
          : {}),
      }),
    ],
  });
  const tracer = provider.getTracer(config.serviceName);
  const propagator = new W3CTraceContextPropagator();

  // The SDK anchors every span on its own Date.now() reading (whole milliseconds), so a child
  // can seem to end after its parent. Here a trace's spans share one anchor, the wall clock minus
  // the monotonic clock taken when its first local span starts, and their times are given
  // explicitly from the monotonic clock.
  const anchors = new WeakMap<Context, number>();

  return {
    start(name, kind, parent, attrs): BackendSpan {
      const ctx = asContext(parent);
      const anchor = anchors.get(ctx) ?? Date.now() - performance.now();
      const span = tracer.startSpan(
        name,
        {
          kind: kind === "server" ? SpanKind.SERVER : SpanKind.INTERNAL,
          attributes: attrs,
          startTime: anchor + performance.now(),
        },
        ctx,
      );
      const own = trace.setSpan(ROOT_CONTEXT, span);
      anchors.set(own, anchor);
      return {
        asParent: asParent(own),
        setAttribute: (key, value) => span.setAttribute(key, value),
        fail: (message) => span.setStatus({ code: SpanStatusCode.ERROR, message }),
        end: () => span.end(anchor + performance.now()),
      };
    },
    remoteParent(traceparent, tracestate) {
      if (!traceparent) return null;
      const carrier: Record<string, string> = { traceparent };
      if (tracestate) carrier.tracestate = tracestate;
      const ctx = propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
      return trace.getSpanContext(ctx) ? asParent(ctx) : null;
    },
    shutdown: () => provider.shutdown(),
  };
}
