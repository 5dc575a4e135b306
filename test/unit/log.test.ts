import { afterEach, expect, test } from "bun:test";
import { rfc3339Offset, rfc3339Z } from "../../src/api/time.ts";
import { configureLogging, formatMicros, log, parseLevelFilter } from "../../src/log.ts";

// The preload runs tests at "warn"; restore that after each test changes it.
afterEach(() =>
  configureLogging({
    level: "warn",
    format: "text",
    sink: { write: (t) => process.stderr.write(t) },
  }),
);

function capture(): string[] {
  const lines: string[] = [];
  configureLogging({ level: "info", sink: { write: (t) => lines.push(t) } });
  return lines;
}

test("text lines look like the reference's tracing output", () => {
  const lines = capture();
  log
    .span("request", { method: "POST", uri: "/configure", version: "HTTP/1.1" })
    .info("POST /configure", {
      request_id: "abc",
    });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z {2}INFO request\{method=POST uri=\/configure version=HTTP\/1\.1\}: POST \/configure request_id=abc\n$/,
  );
});

test("levels filter and ERROR is right-aligned to five columns", () => {
  const lines = capture();
  configureLogging({ level: "warn" });
  log.info("hidden");
  log.error("shown", { why: "two words" });
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain('Z ERROR shown why="two words"');
});

test("json format is one object per line", () => {
  const lines = capture();
  configureLogging({ format: "json" });
  log.span("start_compute").warn("slow", { ms: 5 });
  const obj = JSON.parse(lines[0] ?? "");
  expect(obj).toMatchObject({ level: "WARN", message: "slow", span: "start_compute", ms: 5 });
  expect(obj.timestamp).toMatch(/\.\d{6}Z$/);
});

test("RUST_LOG-style filters", () => {
  expect(parseLevelFilter(undefined)).toBe("info");
  expect(parseLevelFilter("debug")).toBe("debug");
  expect(parseLevelFilter("warn,compute_ctl=trace")).toBe("trace");
  expect(parseLevelFilter("hyper=debug,error")).toBe("error");
  expect(parseLevelFilter("nonsense")).toBe("info");
});

test("timestamp spellings", () => {
  expect(formatMicros(1_753_963_200_123_456)).toBe("2025-07-31T12:00:00.123456Z");
  expect(rfc3339Z(1_753_963_200_000_000)).toBe("2025-07-31T12:00:00Z");
  expect(rfc3339Z(1_753_963_200_123_000)).toBe("2025-07-31T12:00:00.123Z");
  expect(rfc3339Z(1_753_963_200_123_456)).toBe("2025-07-31T12:00:00.123456Z");
  expect(rfc3339Offset(1_753_963_201_234_567)).toBe("2025-07-31T12:00:01.234567+00:00");
});
