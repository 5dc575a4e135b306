// The compiled binary with a config that has no spec: an Empty compute driven through its HTTP
// API with a JWT signed by a key generated here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  emptyConfig,
  FAST_EXIT_ENV,
  jsonOf,
  minimalSpec,
  type RunningCompute,
  startCompute,
} from "../support/compute.ts";
import { ed25519Key, jwks, type SigningKey } from "../support/jwt.ts";
import { cleanup } from "../support/proc.ts";

let key: SigningKey;
let token: string;
let compute: RunningCompute;

beforeAll(async () => {
  key = await ed25519Key();
  token = await key.sign({ compute_id: "compute-e2e" });
  compute = await startCompute({ config: emptyConfig(jwks(key)), env: FAST_EXIT_ENV });
});
afterAll(cleanup);

const json = (body: unknown): RequestInit => ({
  headers: { "content-type": "application/json" },
  body: typeof body === "string" ? body : JSON.stringify(body),
});

describe("an empty compute", () => {
  test("/status is empty, in the reference's field order, with a start_time ending in Z", async () => {
    const r = await compute.get("/status", token);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    const text = await r.text();
    expect(Object.keys(JSON.parse(text))).toEqual([
      "start_time",
      "tenant",
      "timeline",
      "status",
      "last_active",
      "error",
    ]);
    const body = JSON.parse(text);
    expect(body).toMatchObject({
      tenant: null,
      timeline: null,
      status: "empty",
      last_active: null,
      error: null,
    });
    expect(body.start_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$/);
    expect(Math.abs(Date.parse(body.start_time) - Date.now())).toBeLessThan(60_000);
  });

  test("/metrics needs no token and has exactly one compute_ctl_up series", async () => {
    const r = await compute.get("/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4");
    const text = await r.text();
    const up = text.split("\n").filter((l) => l.startsWith("compute_ctl_up{"));
    expect(up).toEqual(['compute_ctl_up{build_tag="latest",status="empty"} 1']);
  });

  test("/metrics.json has every timing field, all zero before a start", async () => {
    const r = await compute.get("/metrics.json", token);
    expect(r.status).toBe(200);
    expect(await jsonOf(r)).toEqual({
      wait_for_spec_ms: 0,
      sync_sk_check_ms: 0,
      sync_safekeepers_ms: 0,
      pageserver_connect_micros: 0,
      basebackup_ms: 0,
      basebackup_bytes: 0,
      start_postgres_ms: 0,
      config_ms: 0,
      total_startup_ms: 0,
      load_ext_ms: 0,
      num_ext_downloaded: 0,
      largest_ext_size: 0,
      total_ext_download_size: 0,
    });
  });

  test("every response carries a request id, echoed or generated", async () => {
    const echoed = await compute.get("/status", token, { headers: { "x-request-id": "req-42" } });
    expect(echoed.headers.get("x-request-id")).toBe("req-42");
    const generated = await compute.get("/nope");
    expect(generated.headers.get("x-request-id")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    await Bun.sleep(50);
    expect(compute.stderr.text).toMatch(
      /Z {2}INFO request\{method=GET uri=\/status version=HTTP\/1\.1\}: GET \/status request_id=req-42\n/,
    );
    expect(compute.stderr.text).toMatch(
      /request\{method=GET uri=\/status version=HTTP\/1\.1\}: response request_id=req-42 code=200 latency=\d+/,
    );
  });
});

describe("the error surface", () => {
  test("unknown path 404 and wrong method 405, both with empty bodies and no token needed", async () => {
    const r404 = await compute.get("/does-not-exist");
    expect(r404.status).toBe(404);
    expect(await r404.text()).toBe("");
    const r405 = await compute.get("/configure");
    expect(r405.status).toBe(405);
    expect(await r405.text()).toBe("");
    const int404 = await compute.get("internal:/status");
    expect(int404.status).toBe(404);
  });

  test("415 for a body that is not declared JSON", async () => {
    const r = await compute.post("/configure", token, { body: "{}" });
    expect(r.status).toBe(415);
    expect(await jsonOf(r)).toEqual({
      error: "expected request with `content-type: application/json`",
    });
  });

  test("400 for JSON syntax", async () => {
    const r = await compute.post("/configure", token, json("{not json"));
    expect(r.status).toBe(400);
    const body = await jsonOf(r);
    expect(body.error).toStartWith("failed to parse the request body as json: ");
    expect(body.error).toBe(body.error.toLowerCase());
  });

  test("422 for a document of the wrong shape, naming the JSON path", async () => {
    const missing = await compute.post("/configure", token, json({ spec: minimalSpec() }));
    expect(missing.status).toBe(422);
    expect((await jsonOf(missing)).error).toStartWith(
      "failed to deserialize the json body into the target type: compute_ctl_config",
    );
    const spec = minimalSpec();
    delete (spec as Record<string, unknown>).suspend_timeout_seconds;
    const r = await compute.post(
      "/configure",
      token,
      json({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    );
    expect(r.status).toBe(422);
    expect((await jsonOf(r)).error).toContain("spec.suspend_timeout_seconds");
  });

  test("413 above 2 MiB", async () => {
    const big = JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) });
    const r = await compute.post("/configure", token, json(big));
    expect(r.status).toBe(413);
    expect(await jsonOf(r)).toEqual({
      error: "failed to buffer the request body: length limit exceeded",
    });
  });

  test("400 with the reference's text for a spec that fails validation", async () => {
    const spec = minimalSpec({ safekeeper_connstrings: ["sk1:5454", "sk1:5454"] });
    const r = await compute.post(
      "/configure",
      token,
      json({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    );
    expect(r.status).toBe(400);
    expect((await jsonOf(r)).error).toStartWith(
      "duplicate entry in safekeeper_connstrings: sk1:5454!",
    );
  });

  test("400 naming the JSON path for a role option that needs a value sent with null", async () => {
    const spec = minimalSpec();
    (spec.cluster as Record<string, unknown>).roles = [
      { name: "r", options: [{ name: "VALID UNTIL", value: null, vartype: "string" }] },
    ];
    const r = await compute.post(
      "/configure",
      token,
      json({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    );
    expect(r.status).toBe(400);
    expect((await jsonOf(r)).error).toContain(
      'spec.cluster.roles[0].options[0].value: role option "VALID UNTIL" needs a value, got null',
    );
    expect((await jsonOf(await compute.get("/status", token))).status).toBe("empty");
  });

  test("400 for a bad terminate mode", async () => {
    const r = await compute.post("/terminate?mode=slow", token);
    expect(r.status).toBe(400);
    expect((await jsonOf(r)).error).toContain("unknown variant `slow`");
    const noMode = await compute.post("/terminate?foo=1", token);
    expect(noMode.status).toBe(400);
    expect((await jsonOf(noMode)).error).toBe(
      "failed to deserialize query string: missing field `mode`",
    );
  });

  test("unauthenticated calls are refused before the body is looked at", async () => {
    const r = await compute.post("/configure", undefined, json("{not json"));
    expect(r.status).toBe(400);
    expect(await jsonOf(r)).toEqual({ error: "invalid authorization token" });
    expect((await compute.get("/status", "garbage")).status).toBe(401);
  });
});

describe("/configure on an empty compute", () => {
  test("starts it; a start that fails answers 500 with the error chain, then exits 1", async () => {
    // A Replica needs no safekeepers; nothing listens where the pageserver should be.
    const spec = minimalSpec({
      mode: "Replica",
      pageserver_connstring: "postgres://no_user@127.0.0.1:9",
    });
    const r = await compute.post(
      "/configure",
      token,
      json({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
    );
    expect(r.status).toBe(500);
    const { error } = await jsonOf(r);
    // The error is Debug-quoted, as the reference's: a multi-line chain on one line.
    expect(error).toStartWith(
      'compute configuration failed: "failed to get basebackup@0/0\\n\\nCaused by:',
    );
    const status = await jsonOf(compute.get("/status", token));
    expect(status).toMatchObject({
      status: "failed",
      tenant: "b0554b632bd4d547a63b86c3630317e8",
      timeline: "2414a61ffc94e428f14b5758fe308e13",
    });
    expect(status.error).toStartWith("failed to get basebackup@0/0\n\nCaused by:\n    0: ");
    const metrics = await (await compute.get("/metrics")).text();
    expect(metrics).toContain('compute_ctl_up{build_tag="latest",status="failed"} 1');
    const timings = await jsonOf(compute.get("/metrics.json", token));
    expect(timings.wait_for_spec_ms).toBeGreaterThan(0);
    // In the failure window, another /configure or /terminate is refused with the status.
    const again = await compute.post(
      "/configure",
      token,
      json({ spec: minimalSpec(), compute_ctl_config: { jwks: { keys: [] } } }),
    );
    expect(again.status).toBe(412);
    expect(await jsonOf(again)).toEqual({ error: "invalid compute status: failed" });
    const term = await compute.post("/terminate", token);
    expect(term.status).toBe(412);
    expect(await compute.exited).toBe(1);
    for (const line of [
      "Changing compute status from empty to configuration-pending",
      "Changing compute status from configuration-pending to init",
      "Changing compute status from init to failed",
    ]) {
      expect(compute.stderr.text).toContain(line);
    }
  });
});
