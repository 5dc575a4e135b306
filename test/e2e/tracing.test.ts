// OpenTelemetry traces through the compiled binary, received by a fake OTLP/HTTP collector that
// decodes the protobuf: the startup spans and their parents, TRACEPARENT from the environment,
// the HTTP server spans and their attributes, /configure as the parent of an Empty compute's
// start, nothing sent when disabled, and a collector that is down or failing.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  type DecodedSpan,
  type FakeCollector,
  startFakeCollector,
} from "../fakes/otlp-collector.ts";
import { jsonOf } from "../support/compute.ts";
import { freePort } from "../support/ports.ts";
import { cleanup } from "../support/proc.ts";
import {
  expectNothingLeft,
  type Started,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const ENV_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const ENV_SPAN = "00f067aa0ba902b7";
const HDR_TRACE = "0af7651916cd43dd8448eb211c80319c";
const HDR_SPAN = "b7ad6b7169203331";

function traced(collector: FakeCollector, extra: Record<string, string> = {}) {
  return {
    OTEL_SDK_DISABLED: "false",
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    ...extra,
  };
}

function only(spans: DecodedSpan[], name: string): DecodedSpan {
  const found = spans.filter((s) => s.name === name);
  if (found.length !== 1) {
    throw new Error(`${found.length} spans named ${name}: ${spans.map((s) => s.name).join(", ")}`);
  }
  return found[0]!;
}

function httpSpans(spans: DecodedSpan[], method: string, path: string): DecodedSpan[] {
  return spans.filter(
    (s) =>
      s.name === "HTTP" &&
      s.attributes["http.request.method"] === method &&
      s.attributes["url.path"] === path,
  );
}

async function stopAndCollect(s: Started, collector: FakeCollector): Promise<DecodedSpan[]> {
  expect((await terminate(s, "immediate")).code).toBe(200);
  expect(await s.compute.exited).toBe(0);
  await expectNothingLeft(s);
  return collector.spans;
}

describe("traces on", () => {
  test("startup spans under TRACEPARENT; HTTP spans with their attributes, 404 included", async () => {
    const collector = await startFakeCollector();
    try {
      const s = await start({
        mode: "Replica",
        env: traced(collector, {
          TRACEPARENT: `00-${ENV_TRACE}-${ENV_SPAN}-01`,
          TRACESTATE: "vendor=env",
        }),
      });
      await waitStatus(s, "running");
      const traceparent = `00-${HDR_TRACE}-${HDR_SPAN}-01`;
      const st = await s.compute.get("/status", s.token, {
        headers: { traceparent, "x-request-id": "req-traced" },
      });
      expect(st.status).toBe(200);
      const missing = await s.compute.get("/no/such/route", undefined, {
        headers: { traceparent },
      });
      expect(missing.status).toBe(404);
      const spans = await stopAndCollect(s, collector);
      expect(collector.rejected).toEqual([]);

      const startCompute = only(spans, "start_compute");
      expect(startCompute).toMatchObject({
        traceId: ENV_TRACE,
        parentSpanId: ENV_SPAN,
        traceState: "vendor=env",
        kind: 1,
        statusCode: 0,
      });
      expect(startCompute.resource["service.name"]).toBe("compute_ctl");
      const prepare = only(spans, "prepare_pgdata");
      const basebackup = only(spans, "get_basebackup");
      const postgres = only(spans, "start_postgres");
      for (const child of [prepare, postgres]) {
        expect(child.traceId).toBe(ENV_TRACE);
        expect(child.parentSpanId).toBe(startCompute.spanId);
      }
      expect(basebackup.parentSpanId).toBe(prepare.spanId);
      expect(basebackup.attributes.lsn).toBe("0/0");
      // Children lie within their parent.
      expect(prepare.startNanos).toBeGreaterThanOrEqual(startCompute.startNanos);
      expect(postgres.endNanos).toBeLessThanOrEqual(startCompute.endNanos);
      expect(postgres.startNanos).toBeGreaterThanOrEqual(prepare.endNanos);

      // waitStatus polled /status too; this is the request that carried a traceparent.
      const status = httpSpans(spans, "GET", "/status").find(
        (x) => x.attributes["http.request.header.traceparent"] !== undefined,
      );
      expect(status).toBeDefined();
      expect(status!).toMatchObject({ kind: 2, traceId: HDR_TRACE, parentSpanId: HDR_SPAN });
      expect(status!.attributes["http.response.status_code"]).toBe(200);
      expect(status!.attributes["http.request.header.x-request-id"]).toEqual(["req-traced"]);
      expect(status!.attributes["http.request.header.traceparent"]).toEqual([traceparent]);
      // The bearer token is not recorded (the reference records every header).
      expect(Object.keys(status!.attributes)).not.toContain("http.request.header.authorization");

      const [notFound] = httpSpans(spans, "GET", "/no/such/route");
      expect(notFound).toBeDefined();
      expect(notFound!).toMatchObject({ kind: 2, traceId: HDR_TRACE, parentSpanId: HDR_SPAN });
      expect(notFound!.attributes["http.response.status_code"]).toBe(404);
      expect(notFound!.statusCode).toBe(0);

      // Requests without a traceparent start their own traces.
      const [terminateSpan] = httpSpans(spans, "POST", "/terminate");
      expect(terminateSpan).toBeDefined();
      expect(terminateSpan!.parentSpanId).toBe("");
      expect(terminateSpan!.traceId).not.toBe(HDR_TRACE);
      expect(terminateSpan!.attributes["http.response.status_code"]).toBe(200);
      expect(Object.keys(terminateSpan!.attributes)).not.toContain(
        "http.request.header.authorization",
      );
      expect(s.compute.stderr.text).toContain("got startup tracing context from env variables");
      expect(s.compute.stderr.text).not.toContain("failed to export traces");
    } finally {
      await collector.stop();
    }
  });

  test("an Empty compute started by /configure: start_compute is a child of that request's span", async () => {
    const collector = await startFakeCollector();
    try {
      const s = await start({
        mode: "Replica",
        viaConfigure: true,
        // The request's span wins over the environment's context.
        env: traced(collector, { TRACEPARENT: `00-${ENV_TRACE}-${ENV_SPAN}-01` }),
      });
      expect((await statusOf(s)).status).toBe("empty");
      const r = await s.compute.post("/configure", s.token, {
        headers: {
          "content-type": "application/json",
          traceparent: `00-${HDR_TRACE}-${HDR_SPAN}-01`,
          tracestate: "vendor=hdr",
        },
        body: JSON.stringify({ spec: s.stack.spec, compute_ctl_config: { jwks: { keys: [] } } }),
      });
      expect(r.status).toBe(200);
      expect((await jsonOf(r)).status).toBe("running");
      const spans = await stopAndCollect(s, collector);

      const [configure] = httpSpans(spans, "POST", "/configure");
      expect(configure).toBeDefined();
      expect(configure!).toMatchObject({
        traceId: HDR_TRACE,
        parentSpanId: HDR_SPAN,
        traceState: "vendor=hdr",
      });
      expect(configure!.attributes["http.response.status_code"]).toBe(200);
      const startCompute = only(spans, "start_compute");
      expect(startCompute.traceId).toBe(HDR_TRACE);
      expect(startCompute.parentSpanId).toBe(configure!.spanId);
      expect(only(spans, "prepare_pgdata").parentSpanId).toBe(startCompute.spanId);
      // The request is answered once the compute runs: its span encloses the start.
      expect(configure!.endNanos).toBeGreaterThanOrEqual(startCompute.endNanos);
    } finally {
      await collector.stop();
    }
  });
});

describe("traces off or undeliverable", () => {
  test("OTEL_SDK_DISABLED=true: nothing reaches the collector", async () => {
    const collector = await startFakeCollector();
    try {
      const s = await start({
        mode: "Replica",
        env: { ...traced(collector), OTEL_SDK_DISABLED: "true", OTEL_BSP_SCHEDULE_DELAY: "50" },
      });
      await waitStatus(s, "running");
      expect((await s.compute.get("/status", s.token)).status).toBe(200);
      expect((await s.compute.get("/missing")).status).toBe(404);
      await stopAndCollect(s, collector);
      await Bun.sleep(300);
      expect(collector.requests).toBe(0);
      expect(s.compute.stderr.text).not.toContain("shutting down tracing");
    } finally {
      await collector.stop();
    }
  });

  test("a collector answering 400 to every export: one WARN however many batches fail", async () => {
    const collector = await startFakeCollector({ failWith: 400 });
    try {
      const s = await start({
        mode: "Replica",
        env: traced(collector, { OTEL_BSP_SCHEDULE_DELAY: "50" }),
      });
      await waitStatus(s, "running");
      // Several batches, each refused.
      for (let i = 0; i < 8; i++) {
        await s.compute.get("/metrics");
        await Bun.sleep(150);
      }
      await stopAndCollect(s, collector);
      expect(collector.requests).toBeGreaterThanOrEqual(3);
      expect(collector.rejected).toEqual([]);
      const warnings = s.compute.stderr.text.match(/WARN failed to export traces to .*/g) ?? [];
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`${collector.url}/v1/traces`);
    } finally {
      await collector.stop();
    }
  });

  test("no collector listening: the compute starts all the same and exits within the bound", async () => {
    const port = await freePort();
    const s = await start({
      mode: "Replica",
      env: {
        OTEL_SDK_DISABLED: "false",
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_TIMEOUT: "300",
        OTEL_BSP_SCHEDULE_DELAY: "50",
      },
    });
    await waitStatus(s, "running");
    for (let i = 0; i < 6; i++) {
      await s.compute.get("/metrics");
      await Bun.sleep(250);
    }
    const t0 = performance.now();
    expect((await terminate(s, "immediate")).code).toBe(200);
    expect(await s.compute.exited).toBe(0);
    // The immediate linger (300 ms) plus at most the 2 s bound on the tracing flush.
    expect(performance.now() - t0).toBeLessThan(2000 + 4000);
    await expectNothingLeft(s);
    const warnings = s.compute.stderr.text.match(/WARN failed to export traces/g) ?? [];
    expect(warnings).toHaveLength(1);
  });
});
