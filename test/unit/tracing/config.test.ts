import { describe, expect, test } from "bun:test";
import { tracesUrl, tracingConfigFromEnv } from "../../../src/tracing/config.ts";
import { rateLimited } from "../../../src/tracing/otel.ts";

describe("tracing settings from the environment", () => {
  test("on by default, to OpenTelemetry's default endpoint", () => {
    const { config, problem } = tracingConfigFromEnv({}, "compute_ctl");
    expect(problem).toBeUndefined();
    expect(config).toEqual({
      enabled: true,
      serviceName: "compute_ctl",
      tracesUrl: "http://localhost:4318/v1/traces",
    });
  });

  test("only OTEL_SDK_DISABLED=true turns it off", () => {
    for (const v of ["true", "TRUE", " True "]) {
      expect(tracingConfigFromEnv({ OTEL_SDK_DISABLED: v }, "x").config.enabled).toBe(false);
    }
    for (const v of ["false", "1", "yes", ""]) {
      expect(tracingConfigFromEnv({ OTEL_SDK_DISABLED: v }, "x").config.enabled).toBe(true);
    }
  });

  test("the endpoint gets /v1/traces; the traces endpoint is used as given", () => {
    expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://jaeger:4318" })).toBe(
      "http://jaeger:4318/v1/traces",
    );
    expect(tracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/otlp/" })).toBe(
      "http://c:4318/otlp/v1/traces",
    );
    expect(
      tracesUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:1",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://c.example/custom",
      }),
    ).toBe("https://c.example/custom");
  });

  test("a malformed endpoint turns tracing off with a reason instead of failing", () => {
    const { config, problem } = tracingConfigFromEnv(
      { OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" },
      "x",
    );
    expect(config.enabled).toBe(false);
    expect(problem).toBe("tracing is off: OTEL_EXPORTER_OTLP_ENDPOINT is not a URL");
  });

  test("TRACEPARENT, TRACESTATE and the batch delay are passed on", () => {
    const { config } = tracingConfigFromEnv(
      { TRACEPARENT: "00-a-b-01", TRACESTATE: "k=v", OTEL_BSP_SCHEDULE_DELAY: "250" },
      "x",
    );
    expect(config).toMatchObject({
      traceparent: "00-a-b-01",
      tracestate: "k=v",
      scheduleDelayMs: 250,
    });
    expect(
      tracingConfigFromEnv({ OTEL_BSP_SCHEDULE_DELAY: "soon" }, "x").config.scheduleDelayMs,
    ).toBeUndefined();
  });
});

describe("export failure warnings", () => {
  test("at most one a minute, the next one counting those held back", () => {
    let now = 0;
    const seen: string[] = [];
    const warn = rateLimited(
      60_000,
      (m, n) => seen.push(`${m}+${n}`),
      () => now,
    );
    warn("a");
    now = 1000;
    warn("b");
    now = 59_999;
    warn("c");
    expect(seen).toEqual(["a+0"]);
    now = 60_000;
    warn("d");
    now = 60_001;
    warn("e");
    expect(seen).toEqual(["a+0", "d+2"]);
  });
});
