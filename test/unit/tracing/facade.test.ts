// The facade with a recording backend: nesting through inSpan, explicit parents, HTTP spans.
import { afterEach, describe, expect, test } from "bun:test";
import {
  type Attributes,
  type BackendSpan,
  inSpan,
  installBackend,
  type SpanParent,
  shutdownTracing,
  startHttpSpan,
  startupTraceParent,
  type TraceBackend,
  tracingEnabled,
} from "../../../src/tracing/index.ts";

interface Recorded {
  name: string;
  kind: string;
  parent: string | null;
  attrs: Attributes;
  failed?: string;
  ended: boolean;
}

function recordingBackend() {
  const spans: Recorded[] = [];
  const ids = new WeakMap<object, string>();
  const backend: TraceBackend = {
    start(name, kind, parent, attrs): BackendSpan {
      const rec: Recorded = {
        name,
        kind,
        parent: parent ? (ids.get(parent) ?? "?") : null,
        attrs: { ...attrs },
        ended: false,
      };
      spans.push(rec);
      const asParent = {} as SpanParent;
      ids.set(asParent, name);
      return {
        asParent,
        setAttribute: (k, v) => {
          rec.attrs[k] = v;
        },
        fail: (m) => {
          rec.failed = m;
        },
        end: () => {
          rec.ended = true;
        },
      };
    },
    remoteParent(traceparent) {
      if (!traceparent) return null;
      const p = {} as SpanParent;
      ids.set(p, `remote:${traceparent}`);
      return p;
    },
    shutdown: async () => {},
  };
  return { backend, spans };
}

afterEach(() => shutdownTracing());

describe("tracing off", () => {
  test("inSpan runs the function and returns its promise; no HTTP span", async () => {
    expect(tracingEnabled()).toBe(false);
    const p = Promise.resolve(42);
    expect(inSpan("x", () => p)).toBe(p);
    expect(startHttpSpan("GET", "/", new Headers())).toBeNull();
    expect(startupTraceParent()).toBeNull();
  });
});

describe("tracing on", () => {
  test("spans nest through async calls, concurrently, and fail with the error", async () => {
    const { backend, spans } = recordingBackend();
    installBackend(backend);
    await inSpan("start_compute", async () => {
      await Promise.all([
        inSpan("prepare_pgdata", async () => {
          await Bun.sleep(5);
          await inSpan("get_basebackup", async () => {}, { attributes: { lsn: "0/1" } });
        }),
        inSpan("other", async () => {
          await Bun.sleep(1);
        }),
      ]);
      await inSpan("start_postgres", async () => {
        throw new Error("boom");
      }).catch(() => {});
    });
    expect(spans.map((s) => [s.name, s.parent])).toEqual([
      ["start_compute", null],
      ["prepare_pgdata", "start_compute"],
      ["other", "start_compute"],
      ["get_basebackup", "prepare_pgdata"],
      ["start_postgres", "start_compute"],
    ]);
    expect(spans.every((s) => s.ended)).toBe(true);
    expect(spans.find((s) => s.name === "start_postgres")?.failed).toBe("boom");
    expect(spans.find((s) => s.name === "get_basebackup")?.attrs).toEqual({ lsn: "0/1" });
  });

  test("an explicit parent wins over the surrounding span", async () => {
    const { backend, spans } = recordingBackend();
    installBackend(backend, { traceparent: "00-env" });
    const envParent = startupTraceParent();
    expect(envParent).not.toBeNull();
    await inSpan("outer", () => inSpan("start_compute", async () => {}, { parent: envParent }));
    expect(spans[1]).toMatchObject({ name: "start_compute", parent: "remote:00-env" });
  });

  test("HTTP spans: method, path, headers but the credentials, status as a number", () => {
    const { backend, spans } = recordingBackend();
    installBackend(backend);
    const span = startHttpSpan(
      "POST",
      "/configure",
      new Headers({
        authorization: "Bearer secret",
        "proxy-authorization": "Basic x",
        traceparent: "00-hdr",
        "x-request-id": "r1",
      }),
    );
    span?.end(500);
    span?.end(200);
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      name: "HTTP",
      kind: "server",
      parent: "remote:00-hdr",
      failed: "HTTP 500",
      ended: true,
    });
    expect(spans[0]!.attrs).toEqual({
      "http.request.method": "POST",
      "url.path": "/configure",
      "http.request.header.traceparent": ["00-hdr"],
      "http.request.header.x-request-id": ["r1"],
      "http.response.status_code": 500,
    });
  });
});
