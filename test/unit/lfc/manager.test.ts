// LfcManager against a real Postgres 15 with the SQL stand-ins of the neon extension's LFC
// functions, and the strict fake endpoint storage.
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import type { ParsedSpec } from "../../../src/api/parsed-spec.ts";
import { initFailpoints, resetFailpoints } from "../../../src/failpoints.ts";
import { LfcManager, MAX_STATE_BYTES } from "../../../src/lfc/manager.ts";
import { createMetrics, type Metrics } from "../../../src/metrics/registry.ts";
import {
  type FakeEndpointStorage,
  lfcPath,
  startFakeEndpointStorage,
} from "../../fakes/endpoint-storage.ts";
import { startTestPostgres, type TestPostgres } from "../../support/pg.ts";
import { freePort } from "../../support/ports.ts";
import { cleanup, waitFor } from "../../support/proc.ts";
import { zstdZeroBomb } from "../../support/zstd-bomb.ts";

const TENANT = "3b1f8d1c2a9e4f5d8c7b6a5f4e3d2c1b";
const TIMELINE = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5";
const ENDPOINT = "ep-quiet-lake-123456";
const TOKEN = "storage-token";
const STANDIN = await Bun.file(`${import.meta.dir}/../../fixtures/neon_lfc_standin.sql`).text();
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

// The periodic-offload tests watch several one-second ticks.
setDefaultTimeout(30_000);

let pg: TestPostgres;
let storage: FakeEndpointStorage;
let metrics: Metrics;
let lfc: LfcManager;
let spec: ParsedSpec | null;

function makeSpec(over: Partial<ParsedSpec> & { endpoint_id?: string | null } = {}): ParsedSpec {
  const { endpoint_id = ENDPOINT, ...rest } = over;
  return {
    tenantId: TENANT,
    timelineId: TIMELINE,
    endpointStorageAddr: storage.addr,
    endpointStorageToken: TOKEN,
    spec: { endpoint_id },
    ...rest,
  } as unknown as ParsedSpec;
}

function newManager(
  opts: { fetchTimeoutMs?: number; connstr?: string; maxStateBytes?: number } = {},
): LfcManager {
  lfc?.stop();
  lfc = new LfcManager({
    connstr: new URL(opts.connstr ?? pg.url),
    metrics,
    getSpec: () => spec,
    fetchTimeoutMs: opts.fetchTimeoutMs ?? 5_000,
    maxStateBytes: opts.maxStateBytes,
  });
  return lfc;
}

const own = () => lfcPath(TENANT, TIMELINE, ENDPOINT);

async function counters() {
  const v = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
    (await c.get()).values[0]?.value ?? 0;
  return {
    prewarms: await v(metrics.lfcPrewarms),
    prewarmErrors: await v(metrics.lfcPrewarmErrors),
    offloads: await v(metrics.lfcOffloads),
    offloadErrors: await v(metrics.lfcOffloadErrors),
  };
}

async function setState(bytes: Uint8Array | null) {
  await pg.sql`update neon.fake_lfc set lfc_state = ${bytes === null ? null : Buffer.from(bytes)} where id = 1`;
}

async function setPrewarmSleep(seconds: number) {
  await pg.sql`update neon.fake_lfc set prewarm_sleep = ${seconds} where id = 1`;
}

async function lastLoaded(): Promise<Buffer | null> {
  const [row] = await pg.sql`select last_loaded from neon.fake_lfc where id = 1`;
  return (row?.last_loaded as Buffer | null) ?? null;
}

async function store(path: string, raw: Uint8Array) {
  storage.objects.set(path, await Bun.zstdCompress(raw, { level: 3 }));
}

async function prewarmAndWait(from?: string) {
  expect(lfc.prewarm(from)).toBe("started");
  return lfc.waitPrewarm(20_000);
}

async function offloadAndWait() {
  expect(lfc.offload()).toBe("started");
  return lfc.waitOffload(20_000);
}

beforeAll(async () => {
  pg = await startTestPostgres();
  storage = startFakeEndpointStorage({ tokens: { [TOKEN]: null } });
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
  storage.violations.length = 0;
  storage.clearForced();
  metrics = createMetrics();
  spec = makeSpec();
  resetFailpoints();
  newManager();
});

afterEach(() => {
  lfc.stop();
  resetFailpoints();
});

describe("round trip", () => {
  test("offload uploads the zstd state; prewarm loads exactly those bytes back", async () => {
    const raw = new Uint8Array(100_000).map((_, i) => (i * 7) % 251);
    await setState(raw);
    expect(lfc.offloadState()).toEqual({ status: "not_offloaded" });
    const off = await offloadAndWait();
    expect(Object.keys(off)).toEqual([
      "status",
      "state_query_time_ms",
      "compress_time_ms",
      "state_upload_time_ms",
    ]);
    expect(off.status).toBe("completed");

    const [put] = storage.requests("PUT");
    expect(put).toMatchObject({ path: own(), authorization: `Bearer ${TOKEN}`, status: 200 });
    expect(put?.contentType).toBeNull();
    const stored = storage.objects.get(own())!;
    expect([...stored.subarray(0, 4)]).toEqual(ZSTD_MAGIC);
    expect(Buffer.from(await Bun.zstdDecompress(stored)).equals(Buffer.from(raw))).toBe(true);

    expect(lfc.prewarmState()).toEqual({ status: "not_prewarmed" });
    const pre = await prewarmAndWait();
    expect(Object.keys(pre)).toEqual([
      "status",
      "total",
      "prewarmed",
      "skipped",
      "state_download_time_ms",
      "uncompress_time_ms",
      "prewarm_time_ms",
    ]);
    // The stand-in reports total=len, prewarmed=len-1, skipped=1.
    expect(pre).toMatchObject({
      status: "completed",
      total: raw.length,
      prewarmed: raw.length - 1,
      skipped: 1,
    });
    expect((await lastLoaded())?.equals(Buffer.from(raw))).toBe(true);
    const get = storage.requests("GET")[0];
    expect(get).toMatchObject({ path: own(), authorization: `Bearer ${TOKEN}`, status: 200 });
    expect(await counters()).toEqual({
      prewarms: 1,
      prewarmErrors: 0,
      offloads: 1,
      offloadErrors: 0,
    });
    expect(storage.violations).toEqual([]);
  });

  test("an empty (not NULL) state is offloaded as an empty zstd frame", async () => {
    await setState(new Uint8Array(0));
    expect((await offloadAndWait()).status).toBe("completed");
    const stored = storage.objects.get(own())!;
    expect([...stored.subarray(0, 4)]).toEqual(ZSTD_MAGIC);
    expect((await Bun.zstdDecompress(stored)).length).toBe(0);
  });

  test("a state of many 1 MiB rows round-trips, and the compressor collects no listeners", async () => {
    // Incompressible, so every row's write fills the compressor's buffer and waits for a drain.
    const raw = new Uint8Array(24 << 20);
    for (let off = 0; off < raw.length; off += 65536) {
      crypto.getRandomValues(raw.subarray(off, off + 65536));
    }
    await setState(raw);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    try {
      expect((await offloadAndWait()).status).toBe("completed");
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings).toEqual([]);
    const stored = storage.objects.get(own())!;
    expect(Buffer.from(await Bun.zstdDecompress(stored)).equals(Buffer.from(raw))).toBe(true);
  });

  test("the maintenance connection names itself and turns DDL forwarding off", async () => {
    await pg.sql.unsafe(`CREATE OR REPLACE FUNCTION neon.get_local_cache_state(max_chunks integer DEFAULT NULL)
      RETURNS bytea LANGUAGE sql AS $$ SELECT pg_catalog.convert_to(
        pg_catalog.current_setting('application_name') || ' ' ||
        pg_catalog.current_setting('neon.forward_ddl'), 'UTF8') $$`);
    expect((await offloadAndWait()).status).toBe("completed");
    const text = Buffer.from(await Bun.zstdDecompress(storage.objects.get(own())!)).toString();
    expect(text).toBe("compute_ctl:apply_config false");
  });

  test("from_endpoint reads another endpoint's state; offload always writes the own one", async () => {
    const other = lfcPath(TENANT, TIMELINE, "ep-other-1");
    await store(other, Buffer.from("other endpoint's state"));
    expect((await prewarmAndWait("ep-other-1")).status).toBe("completed");
    expect(storage.requests("GET").map((r) => r.path)).toEqual([other]);
    expect((await lastLoaded())?.toString()).toBe("other endpoint's state");
    await offloadAndWait();
    expect(storage.requests("PUT").map((r) => r.path)).toEqual([own()]);
  });
});

describe("skipped", () => {
  test("404 from endpoint storage: prewarm is skipped, not an error", async () => {
    expect(await prewarmAndWait()).toEqual({ status: "skipped" });
    expect(storage.requests("GET")[0]?.status).toBe(404);
    expect(await lastLoaded()).toBeNull();
    expect(await counters()).toMatchObject({ prewarms: 1, prewarmErrors: 0 });
  });

  test("a NULL LFC state: offload is skipped and nothing is uploaded", async () => {
    await setState(null);
    expect(await offloadAndWait()).toEqual({ status: "skipped" });
    expect(storage.requests("PUT")).toEqual([]);
    expect(await counters()).toMatchObject({ offloads: 1, offloadErrors: 0 });
  });
});

describe("failures end in failed, with the error, and count", () => {
  test("500 on GET", async () => {
    storage.force({ method: "GET", status: 500 });
    expect(await prewarmAndWait()).toEqual({
      status: "failed",
      error: "500 Internal Server Error querying endpoint storage",
    });
    expect(await counters()).toEqual({
      prewarms: 1,
      prewarmErrors: 1,
      offloads: 0,
      offloadErrors: 0,
    });
  });

  test("500 on PUT", async () => {
    storage.force({ method: "PUT", status: 500 });
    expect(await offloadAndWait()).toEqual({
      status: "failed",
      error: "request to endpoint storage failed: 500 Internal Server Error",
    });
    expect(await counters()).toMatchObject({ offloads: 1, offloadErrors: 1 });
  });

  test("a token the storage refuses", async () => {
    spec = makeSpec({ endpointStorageToken: "wrong" });
    expect(await prewarmAndWait()).toEqual({
      status: "failed",
      error: "400 Bad Request querying endpoint storage",
    });
    expect(storage.requests("GET")[0]?.authorization).toBe("Bearer wrong");
  });

  test("a corrupt zstd body", async () => {
    storage.objects.set(own(), new TextEncoder().encode("this is not zstd"));
    const s = await prewarmAndWait();
    expect(s.status).toBe("failed");
    expect(s.status === "failed" && s.error).toStartWith("decoding LFC state: ");
    expect(await lastLoaded()).toBeNull();
    expect(await counters()).toMatchObject({ prewarmErrors: 1 });
  });

  test("a state that unpacks past the cap (a zstd bomb) is refused as it unpacks", async () => {
    newManager({ maxStateBytes: 1 << 20 });
    // 1 GiB of zeros in about 32 KiB: only the first MiB or so is ever unpacked.
    storage.objects.set(own(), zstdZeroBomb(new Uint8Array(0), 1 << 30));
    const t0 = performance.now();
    const s = await prewarmAndWait();
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(s).toEqual({
      status: "failed",
      error: `decoding LFC state: LFC state expands to more than ${1 << 20} bytes`,
    });
    expect(await lastLoaded()).toBeNull();
  });

  test("a download past the cap is refused before it is all read", async () => {
    newManager({ maxStateBytes: 1000 });
    storage.objects.set(own(), Bun.zstdCompressSync(crypto.getRandomValues(new Uint8Array(5000))));
    const s = await prewarmAndWait();
    expect(s).toEqual({
      status: "failed",
      error:
        "getting request body from endpoint storage: endpoint storage sent more than 1000 bytes",
    });
  });

  test("the default cap is Postgres's MaxAllocSize, the largest bytea", () => {
    expect(MAX_STATE_BYTES).toBe(1024 * 1024 * 1024 - 1);
  });

  test("slow storage is bounded by the timeout, for GET and PUT", async () => {
    newManager({ fetchTimeoutMs: 300 });
    storage.force({ delayMs: 3_000 });
    const t0 = performance.now();
    const s = await prewarmAndWait();
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(s).toEqual({
      status: "failed",
      error: `querying endpoint storage: error sending request for url (http://${storage.addr}${own()}): timed out after 300 ms`,
    });
    const o = await offloadAndWait();
    expect(o.status === "failed" && o.error).toStartWith("writing to endpoint storage: ");
    expect(o.status === "failed" && o.error).toEndWith("timed out after 300 ms");
    expect(await counters()).toMatchObject({ prewarmErrors: 1, offloadErrors: 1 });
  });

  test("endpoint storage down", async () => {
    spec = makeSpec({ endpointStorageAddr: `127.0.0.1:${await freePort()}` });
    const s = await prewarmAndWait();
    expect(s.status === "failed" && s.error).toStartWith(
      "querying endpoint storage: error sending request for url (",
    );
    const o = await offloadAndWait();
    expect(o.status === "failed" && o.error).toStartWith("writing to endpoint storage: ");
  });

  test("a Postgres function error carries Postgres's message", async () => {
    await store(own(), Buffer.from("state"));
    await pg.sql.unsafe(`CREATE OR REPLACE FUNCTION neon.prewarm_local_cache(state bytea, n_workers integer DEFAULT 1)
      RETURNS void LANGUAGE sql AS $$ SELECT 1/0 $$`);
    expect(await prewarmAndWait()).toEqual({
      status: "failed",
      error: "loading LFC state into postgres: db error: ERROR: division by zero",
    });
    await pg.sql.unsafe("DROP FUNCTION neon.get_local_cache_state(integer)");
    const o = await offloadAndWait();
    expect(o.status === "failed" && o.error).toStartWith(
      "querying LFC state: db error: ERROR: function neon.get_local_cache_state() does not exist",
    );
    expect(await counters()).toEqual({
      prewarms: 1,
      prewarmErrors: 1,
      offloads: 1,
      offloadErrors: 1,
    });
  });

  test("Postgres unreachable", async () => {
    newManager({ connstr: `postgresql://cloud_admin@127.0.0.1:${await freePort()}/postgres` });
    await setState(Buffer.from("x"));
    await store(own(), Buffer.from("state"));
    const s = await prewarmAndWait();
    expect(s.status === "failed" && s.error).toStartWith("connecting to postgres: ");
    const o = await offloadAndWait();
    expect(o.status === "failed" && o.error).toStartWith("connecting to postgres: ");
  });

  test("no spec, or a spec without the storage pieces: failed, never a crash", async () => {
    const cases: [ParsedSpec | null, string][] = [
      [null, "compute spec missing"],
      [
        makeSpec({ endpoint_id: null }),
        "pspec.endpoint_id missing, other endpoint_id not provided",
      ],
      [makeSpec({ endpointStorageAddr: null }), "pspec.endpoint_storage_addr missing"],
      [makeSpec({ endpointStorageToken: null }), "pspec.endpoint_storage_token missing"],
      [makeSpec({ tenantId: "" }), "pspec.tenant_id missing"],
      [makeSpec({ timelineId: "" }), "pspec.timeline_id missing"],
    ];
    for (const [s, error] of cases) {
      spec = s;
      expect(await prewarmAndWait()).toEqual({ status: "failed", error });
      expect(await offloadAndWait()).toEqual({ status: "failed", error });
    }
    expect(await counters()).toEqual({
      prewarms: cases.length,
      prewarmErrors: cases.length,
      offloads: cases.length,
      offloadErrors: cases.length,
    });
    expect(storage.log).toEqual([]);
  });

  test("the compute-prewarm failpoint fails the prewarm before any request", async () => {
    initFailpoints({ COMPUTE_CTL_TESTING: "1", FAILPOINTS: "compute-prewarm=return(0)" });
    await store(own(), Buffer.from("state"));
    expect(await prewarmAndWait()).toEqual({
      status: "failed",
      error: "compute-prewarm failpoint",
    });
    expect(storage.log).toEqual([]);
    expect(await counters()).toMatchObject({ prewarms: 1, prewarmErrors: 1 });
  });

  test("the failpoint is inert without the testing switch", async () => {
    initFailpoints({ FAILPOINTS: "compute-prewarm=return(0)" });
    await store(own(), Buffer.from("state"));
    expect((await prewarmAndWait()).status).toBe("completed");
  });
});

describe("concurrency and cancellation", () => {
  test("a second prewarm while one runs is refused; so is a second offload", async () => {
    await store(own(), Buffer.from("state"));
    await setPrewarmSleep(1);
    expect(lfc.prewarm()).toBe("started");
    expect(lfc.prewarmState()).toEqual({ status: "prewarming" });
    expect(lfc.prewarm()).toBe("already-running");
    expect(lfc.prewarm("ep-other")).toBe("already-running");
    storage.force({ method: "PUT", delayMs: 500 });
    expect(lfc.offload()).toBe("started");
    expect(lfc.offloadState()).toEqual({ status: "offloading" });
    expect(lfc.offload()).toBe("already-running");
    expect((await lfc.waitPrewarm(10_000)).status).toBe("completed");
    expect((await lfc.waitOffload(10_000)).status).toBe("completed");
    // Refusals are not counted.
    expect(await counters()).toMatchObject({ prewarms: 1, offloads: 1 });
    // Completed states can be re-run.
    expect((await prewarmAndWait()).status).toBe("completed");
  });

  test("cancel during neon.prewarm_local_cache sends a Postgres cancel: cancelled, quickly", async () => {
    await store(own(), Buffer.from("state"));
    await setPrewarmSleep(30);
    expect(lfc.prewarm()).toBe("started");
    await waitFor(
      async () => {
        const [r] =
          await pg.sql`select count(*)::int as n from pg_stat_activity where query like 'select neon.prewarm_local_cache%' and state = 'active'`;
        return r?.n === 1;
      },
      { what: "the prewarm query to run", timeoutMs: 10_000 },
    );
    const t0 = performance.now();
    lfc.cancelPrewarm();
    expect(await lfc.waitPrewarm(10_000)).toEqual({ status: "cancelled" });
    expect(performance.now() - t0).toBeLessThan(3_000);
    // The server-side query is gone too, not left sleeping.
    await waitFor(
      async () => {
        const [r] =
          await pg.sql`select count(*)::int as n from pg_stat_activity where query like 'select neon.prewarm_local_cache%' and state = 'active'`;
        return r?.n === 0;
      },
      { what: "the prewarm query to end", timeoutMs: 5_000 },
    );
    expect(await lastLoaded()).toBeNull();
    expect(await counters()).toMatchObject({ prewarms: 1, prewarmErrors: 0 });
    // A re-run completes.
    await setPrewarmSleep(0);
    expect((await prewarmAndWait()).status).toBe("completed");
  });

  test("cancel during the download: cancelled at once", async () => {
    await store(own(), Buffer.from("state"));
    storage.force({ method: "GET", delayMs: 3_000 });
    expect(lfc.prewarm()).toBe("started");
    await waitFor(() => storage.requests("GET").length === 1, { what: "the GET" });
    const t0 = performance.now();
    lfc.cancelPrewarm();
    expect(await lfc.waitPrewarm(5_000)).toEqual({ status: "cancelled" });
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  test("a cancel while idle does not poison the next prewarm (per-run token)", async () => {
    await store(own(), Buffer.from("state"));
    lfc.cancelPrewarm();
    expect((await prewarmAndWait()).status).toBe("completed");
  });

  test("a manual offload is allowed while prewarming", async () => {
    await store(own(), Buffer.from("state"));
    await setPrewarmSleep(1);
    expect(lfc.prewarm()).toBe("started");
    expect((await offloadAndWait()).status).toBe("completed");
    expect(lfc.prewarmState().status).toBe("prewarming");
    await lfc.waitPrewarm(10_000);
  });

  test("stop() cancels a running prewarm and ends periodic offloads", async () => {
    await store(own(), Buffer.from("state"));
    await setPrewarmSleep(30);
    lfc.prewarm();
    lfc.startPeriodicOffload(1);
    await Bun.sleep(300);
    lfc.stop();
    expect((await lfc.waitPrewarm(10_000)).status).toBe("cancelled");
    await Bun.sleep(1_500);
    expect(storage.requests("PUT")).toEqual([]);
  });
});

describe("THE RULE: the periodic offloader never uploads over a good state with a bad one", () => {
  test("no PUT while prewarming; PUTs resume after completed", async () => {
    await store(own(), Buffer.from("the previous complete state"));
    await setPrewarmSleep(3);
    const start = Date.now();
    expect(lfc.prewarm()).toBe("started");
    lfc.startPeriodicOffload(1);
    const settled = await lfc.waitPrewarm(20_000);
    const end = Date.now();
    expect(settled.status).toBe("completed");
    expect(end - start).toBeGreaterThanOrEqual(2_900);
    // Ticks at ~1 s and ~2 s fell inside the prewarm: nothing reached storage.
    expect(storage.requests("PUT")).toEqual([]);
    const put = await storage.nextRequest("PUT", 3_000);
    expect(put.at).toBeGreaterThanOrEqual(end);
    expect(put.status).toBe(200);
    await storage.nextRequest("PUT", 3_000);
    expect(storage.requests("PUT").every((r) => r.at > end)).toBe(true);
    expect((await counters()).offloads).toBeGreaterThanOrEqual(2);
  });

  test("after a failed prewarm no periodic PUT happens at all", async () => {
    storage.force({ method: "GET", status: 503 });
    expect((await prewarmAndWait()).status).toBe("failed");
    lfc.startPeriodicOffload(1);
    await Bun.sleep(3_500);
    expect(storage.requests("PUT")).toEqual([]);
    expect(await counters()).toMatchObject({ offloads: 0 });
    expect(lfc.offloadState()).toEqual({ status: "not_offloaded" });
  });

  test("after a cancelled prewarm no periodic PUT happens", async () => {
    await store(own(), Buffer.from("state"));
    storage.force({ method: "GET", delayMs: 2_000 });
    lfc.prewarm();
    lfc.cancelPrewarm();
    expect((await lfc.waitPrewarm(5_000)).status).toBe("cancelled");
    lfc.startPeriodicOffload(1);
    await Bun.sleep(2_500);
    expect(storage.requests("PUT")).toEqual([]);
  });

  test("after skipped, and without any prewarm, periodic offloads run", async () => {
    lfc.startPeriodicOffload(1);
    const first = await storage.nextRequest("PUT", 3_000);
    expect(lfc.prewarmState()).toEqual({ status: "not_prewarmed" });
    expect(first.status).toBe(200);
    expect((await prewarmAndWait()).status).toBe("completed"); // the state just uploaded
    storage.objects.clear();
    expect((await prewarmAndWait()).status).toBe("skipped");
    const n = storage.requests("PUT").length;
    await storage.nextRequest("PUT", 3_000);
    expect(storage.requests("PUT").length).toBeGreaterThan(n);
  });

  test("the first periodic offload waits one interval, and errors never stop the loop", async () => {
    storage.force({ method: "PUT", status: 500, times: 2 });
    const t0 = Date.now();
    lfc.startPeriodicOffload(1);
    const first = await storage.nextRequest("PUT", 3_000);
    expect(first.at - t0).toBeGreaterThanOrEqual(900);
    expect(first.status).toBe(500);
    await waitFor(() => lfc.offloadState().status === "completed", {
      what: "a periodic offload to succeed after two failures",
      timeoutMs: 6_000,
    });
    expect(await counters()).toMatchObject({ offloadErrors: 2 });
    expect((await counters()).offloads).toBeGreaterThanOrEqual(3);
  });

  test("an interval longer than setTimeout's range does not fire at once; zero is refused", async () => {
    expect(() => lfc.startPeriodicOffload(0)).toThrow("invalid LFC offload interval 0");
    lfc.startPeriodicOffload(30 * 86_400);
    await Bun.sleep(300);
    expect(storage.log).toEqual([]);
  });

  test("a tick skips while a manual offload still runs; runs never overlap", async () => {
    storage.force({ method: "PUT", delayMs: 2_500, times: 1 });
    expect(lfc.offload()).toBe("started");
    const handle = lfc.startPeriodicOffload(1);
    await lfc.waitOffload(10_000);
    await storage.nextRequest("PUT", 3_000);
    handle.stop();
    const puts = storage.requests("PUT");
    for (let i = 1; i < puts.length; i++) {
      expect(puts[i]!.at).toBeGreaterThanOrEqual(puts[i - 1]!.doneAt);
    }
    const n = puts.length;
    await Bun.sleep(1_500);
    expect(storage.requests("PUT").length).toBe(n);
  });
});
