// The /lfc routes in-process: createHttpApp + lfcRoutes, answered through app.handle, with a real
// Postgres (stand-ins loaded) and the fake endpoint storage behind the manager.
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import type { ParsedSpec } from "../../../src/api/parsed-spec.ts";
import { createHttpApp } from "../../../src/http/app.ts";
import { lfcRoutes, prewarmFromEndpoint } from "../../../src/http/routes/lfc.ts";
import { LfcManager } from "../../../src/lfc/manager.ts";
import { log } from "../../../src/log.ts";
import { createMetrics } from "../../../src/metrics/registry.ts";
import {
  type FakeEndpointStorage,
  lfcPath,
  startFakeEndpointStorage,
} from "../../fakes/endpoint-storage.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { cleanup, waitFor } from "../../support/proc.ts";

setDefaultTimeout(30_000);

const TENANT = "0123456789abcdef0123456789abcdef";
const TIMELINE = "fedcba9876543210fedcba9876543210";
const ENDPOINT = "ep-routes-1";
const STANDIN = await Bun.file(`${import.meta.dir}/../../fixtures/neon_lfc_standin.sql`).text();

let pg: TestPostgres;
let storage: FakeEndpointStorage;
let lfc: LfcManager;
let app: ReturnType<typeof makeApp>;

function makeApp(manager: LfcManager) {
  return createHttpApp({ name: "external", logger: log }).use(lfcRoutes(manager));
}

const call = (method: string, path: string) =>
  app.handle(new Request(`http://localhost${path}`, { method }));

async function json(method: string, path: string) {
  const r = await call(method, path);
  return {
    status: r.status,
    type: r.headers.get("content-type"),
    body: (await r.json()) as Record<string, unknown>,
  };
}

async function expectEmpty(r: Response, status: number) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toBeNull();
  expect(await r.text()).toBe("");
}

beforeAll(async () => {
  pg = await startTestPostgres();
  storage = startFakeEndpointStorage({ tokens: { tok: null } });
});

afterAll(async () => {
  lfc?.stop();
  await storage?.stop();
  await pg?.stop();
  await cleanup();
});

beforeEach(async () => {
  await pg.sql.unsafe(STANDIN).simple();
  storage.objects.clear();
  storage.log.length = 0;
  storage.clearForced();
  const spec = {
    tenantId: TENANT,
    timelineId: TIMELINE,
    endpointStorageAddr: storage.addr,
    endpointStorageToken: "tok",
    spec: { endpoint_id: ENDPOINT },
  } as unknown as ParsedSpec;
  lfc = new LfcManager({ connstr: new URL(pg.url), metrics: createMetrics(), getSpec: () => spec });
  app = makeApp(lfc);
});

afterEach(() => lfc.stop());

test("GET reports the initial states in the reference's JSON", async () => {
  expect(await json("GET", "/lfc/prewarm")).toEqual({
    status: 200,
    type: "application/json",
    body: { status: "not_prewarmed" },
  });
  expect(await json("GET", "/lfc/offload")).toEqual({
    status: 200,
    type: "application/json",
    body: { status: "not_offloaded" },
  });
});

test("POST /lfc/offload then POST /lfc/prewarm: 202 with empty bodies, then completed", async () => {
  await expectEmpty(await call("POST", "/lfc/offload"), 202);
  await lfc.waitOffload(10_000);
  const off = await json("GET", "/lfc/offload");
  expect(off.body.status).toBe("completed");
  expect(Object.keys(off.body)).toEqual([
    "status",
    "state_query_time_ms",
    "compress_time_ms",
    "state_upload_time_ms",
  ]);

  await expectEmpty(await call("POST", "/lfc/prewarm"), 202);
  await lfc.waitPrewarm(10_000);
  const text = await (await call("GET", "/lfc/prewarm")).text();
  // Field order is the reference's declaration order; "fake lfc state" is 14 bytes.
  expect(text).toMatch(
    /^\{"status":"completed","total":14,"prewarmed":13,"skipped":1,"state_download_time_ms":\d+,"uncompress_time_ms":\d+,"prewarm_time_ms":\d+\}$/,
  );
});

test("a second POST /lfc/prewarm while one runs: 429", async () => {
  storage.force({ method: "GET", delayMs: 1_000 });
  await expectEmpty(await call("POST", "/lfc/prewarm"), 202);
  expect(await json("POST", "/lfc/prewarm")).toEqual({
    status: 429,
    type: "application/json",
    body: { error: "Multiple requests for prewarm are not allowed" },
  });
  expect((await json("GET", "/lfc/prewarm")).body).toEqual({ status: "prewarming" });
  await lfc.waitPrewarm(10_000);
  expect((await json("GET", "/lfc/prewarm")).body).toEqual({ status: "skipped" });
});

test("a second POST /lfc/offload while one runs: 429", async () => {
  storage.force({ method: "PUT", delayMs: 1_000 });
  await expectEmpty(await call("POST", "/lfc/offload"), 202);
  expect(await json("POST", "/lfc/offload")).toEqual({
    status: 429,
    type: "application/json",
    body: { error: "Multiple requests for prewarm offload are not allowed" },
  });
  await lfc.waitOffload(10_000);
});

test("DELETE /lfc/prewarm cancels a running prewarm: 202, then cancelled", async () => {
  storage.force({ method: "GET", delayMs: 5_000 });
  await expectEmpty(await call("POST", "/lfc/prewarm"), 202);
  // Cancel once the GET is at the storage, so it cannot arrive during the next test.
  await waitFor(() => storage.requests("GET").length === 1, { what: "the GET", timeoutMs: 5_000 });
  await expectEmpty(await call("DELETE", "/lfc/prewarm"), 202);
  await lfc.waitPrewarm(5_000);
  expect((await json("GET", "/lfc/prewarm")).body).toEqual({ status: "cancelled" });
  // DELETE while idle: still 202, and harmless.
  await expectEmpty(await call("DELETE", "/lfc/prewarm"), 202);
});

test("?from_endpoint= picks the state to read; a query string without it is a 400", async () => {
  await expectEmpty(await call("POST", "/lfc/prewarm?from_endpoint=ep-primary-9"), 202);
  await lfc.waitPrewarm(5_000);
  expect(storage.requests("GET").map((r) => r.path)).toEqual([
    lfcPath(TENANT, TIMELINE, "ep-primary-9"),
  ]);
  expect(await json("POST", "/lfc/prewarm?x=1")).toEqual({
    status: 400,
    type: "application/json",
    body: { error: "failed to deserialize query string: missing field `from_endpoint`" },
  });
  expect(lfc.prewarmState()).toEqual({ status: "skipped" });
});

test("the OptionalQuery rule on its own", () => {
  expect(prewarmFromEndpoint("http://h/lfc/prewarm")).toBeUndefined();
  expect(prewarmFromEndpoint("http://h/lfc/prewarm?from_endpoint=ep-1")).toBe("ep-1");
  expect(prewarmFromEndpoint("http://h/lfc/prewarm?from_endpoint=")).toBe("");
  expect(() => prewarmFromEndpoint("http://h/lfc/prewarm?")).toThrow("missing field");
});

test("wrong methods are 405 with an empty body", async () => {
  await expectEmpty(await call("DELETE", "/lfc/offload"), 405);
  await expectEmpty(await call("PUT", "/lfc/prewarm"), 405);
});
