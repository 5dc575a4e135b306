// Hostile HTTP clients against the compiled binary: routing whatever the Host header says, log
// lines that outside text cannot split, one answer per request on a malformed chunked body, and
// the JSON edge cases answered as serde does.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type RunningCompute, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { cleanup } from "../support/proc.ts";
import { rawHttp } from "../support/raw-http.ts";
import { start, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

let compute: RunningCompute;
let token: string;

beforeAll(async () => {
  const key = await ed25519Key();
  compute = await startCompute({ config: { spec: null, compute_ctl_config: { jwks: jwks(key) } } });
  token = await key.sign({ compute_id: compute.computeId });
});

afterAll(() => {
  compute?.proc.kill("SIGKILL");
});

describe("routing ignores the Host header", () => {
  const get = (target: string, headers: string, version = "1.1") =>
    rawHttp(compute.externalPort, [
      `GET ${target} HTTP/${version}\r\n${headers}Connection: close\r\n\r\n`,
    ]);

  test.each(["x", "abc", "a.b", "x:80", "abcd", "[::1]", "very.long.host.example:1234"])(
    "Host: %s reaches /metrics",
    async (host) => {
      const r = await get("/metrics", `Host: ${host}\r\n`);
      expect(r.statuses).toEqual([200]);
      expect(r.text).toContain("compute_ctl_up");
    },
  );

  test("HTTP/1.0 without a Host header", async () => {
    expect((await get("/metrics", "", "1.0")).statuses).toEqual([200]);
    // A path with a slash beyond the 7th character, which a relative URL would cut wrongly.
    const r = await get("/openapi.json?x=/a/b/c", "", "1.0");
    expect(r.statuses).toEqual([200]);
  });

  test("absolute-form targets", async () => {
    expect((await get(`http://h:${compute.externalPort}/metrics`, "Host: h\r\n")).statuses).toEqual(
      [200],
    );
    expect((await get("http://a/metrics", "", "1.0")).statuses).toEqual([200]);
  });
});

describe("a malformed chunked body gets exactly one answer", () => {
  const next = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
  test.each([
    ["GET /metrics", "zz"],
    ["GET /metrics", "ffffffffffffffff1"],
    ["POST /metrics", "zz"],
    ["POST /metrics", "ffffffffffffffff1"],
    ["GET /no/such/route", "zz"],
    ["POST /no/such/route", "ffffffffffffffff1"],
  ])("%s with chunk size %s, a pipelined request behind it", async (line, size) => {
    const head = `${line} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n`;
    // In one segment, and with the body in a later one.
    const together = await rawHttp(compute.externalPort, [
      `${head}${size}\r\nabc\r\n0\r\n\r\n${next}`,
    ]);
    expect(together.statuses).toHaveLength(1);
    const split = await rawHttp(
      compute.externalPort,
      [head, `${size}\r\nabc\r\n0\r\n\r\n${next}`],
      {
        gapMs: 150,
      },
    );
    expect(split.statuses).toHaveLength(1);
  });

  test("a valid chunked POST body still gets its answer", async () => {
    const body = '{"spec":1}';
    const r = await rawHttp(compute.externalPort, [
      `POST /configure HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ]);
    expect(r.statuses).toEqual([422]);
  });
});

describe("JSON bodies as serde reads them", () => {
  const configure = (body: string) =>
    compute.post("/configure", token, { headers: { "content-type": "application/json" }, body });

  test("integers beyond their Rust type: 422", async () => {
    const { minimalSpec } = await import("../support/compute.ts");
    const spec = minimalSpec() as Record<string, unknown>;
    delete spec.reconfigure_concurrency;
    const text = JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }).replace(
      '"spec":{',
      '"spec":{"reconfigure_concurrency":18446744073709551616,',
    );
    const r = await configure(text);
    expect(r.status).toBe(422);
    expect(((await r.json()) as { error: string }).error).toContain("spec.reconfigure_concurrency");
  });

  test("a byte order mark, deep nesting, lone surrogates: 400; a repeated field: 422", async () => {
    expect((await configure('\ufeff{"spec":null}')).status).toBe(400);
    expect((await configure(`${"[".repeat(200)}${"]".repeat(200)}`)).status).toBe(400);
    expect((await configure('{"spec":"\\ud800"}')).status).toBe(400);
    expect((await configure('{"spec":1,"spec":2}')).status).toBe(422);
  });
});

describe("log lines cannot be forged", () => {
  test("a newline from a request path stays inside its line", async () => {
    const s = await start({
      spec: { remote_extensions: { public_extensions: [], library_index: {}, extension_data: {} } },
      extraArgs: ["--remote-ext-base-url", "http://127.0.0.1:1"],
    });
    await waitStatus(s, "running");
    const forged = "2026-01-01T00:00:00.000000Z  INFO forged";
    await s.compute.post(`internal:/extension_server/x%0a${encodeURIComponent(forged)}%1b[31m`);
    await Bun.sleep(300);
    const lines = s.compute.stderr.text.split("\n");
    expect(lines.filter((l) => l.includes("forged")).length).toBeGreaterThan(0);
    expect(lines.filter((l) => l.startsWith("2026-01-01T00:00:00.000000Z"))).toEqual([]);
    expect(s.compute.stderr.text).not.toContain("\x1b[31m");
  });
});

describe("reserved role names are refused before anything changes", () => {
  test("empty compute: 400 naming the path, status stays empty", async () => {
    const { minimalSpec } = await import("../support/compute.ts");
    const spec = minimalSpec({
      cluster: { roles: [{ name: "neon_superuser" }], databases: [] },
    });
    const r = await compute.post("/configure", token, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toBe(
      'spec.cluster.roles[0].name: role name "neon_superuser" is reserved: it is the privileged role (--privileged-role-name)',
    );
    const st = (await (await compute.get("/status", token)).json()) as { status: string };
    expect(st.status).toBe("empty");
  });

  test("running compute: 400, still running, Postgres untouched", async () => {
    const s = await start();
    await waitStatus(s, "running");
    const base = s.stack.spec as Record<string, unknown> & { cluster: Record<string, unknown> };
    const r = await s.compute.post("/configure", s.token, {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        spec: { ...base, cluster: { ...base.cluster, roles: [{ name: "cloud_admin" }] } },
        compute_ctl_config: { jwks: { keys: [] } },
      }),
    });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toContain("spec.cluster.roles[0].name");
    expect((await waitStatus(s, "running")).status).toBe("running");
  });
});
